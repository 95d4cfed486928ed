/* types.c - sizes of the GGML block formats, as llama.cpp's ggml defines them.
 * Sizes only; (de)quantization lives beside each format's kernels. */
#include "tensor/types.h"

#include <stddef.h>

static const tensor_type_traits type_table[GGML_TYPE_COUNT] = {
    [GGML_TYPE_F32] = {"F32", 1, 4},
    [GGML_TYPE_F16] = {"F16", 1, 2},
    [GGML_TYPE_Q4_0] = {"Q4_0", 32, 2 + 16},          /* f16 d, 32 x 4-bit */
    [GGML_TYPE_Q4_1] = {"Q4_1", 32, 2 + 2 + 16},      /* f16 d, f16 m, 32 x 4-bit */
    [GGML_TYPE_Q5_0] = {"Q5_0", 32, 2 + 4 + 16},      /* f16 d, 32 high bits, 32 x 4-bit */
    [GGML_TYPE_Q5_1] = {"Q5_1", 32, 2 + 2 + 4 + 16},
    [GGML_TYPE_Q8_0] = {"Q8_0", 32, 2 + 32},          /* f16 d, 32 x int8 */
    [GGML_TYPE_Q8_1] = {"Q8_1", 32, 4 + 32},          /* f16 d, f16 s, 32 x int8 */
    [GGML_TYPE_Q2_K] = {"Q2_K", 256, 16 + 64 + 2 + 2},
    [GGML_TYPE_Q3_K] = {"Q3_K", 256, 32 + 64 + 12 + 2},
    [GGML_TYPE_Q4_K] = {"Q4_K", 256, 2 + 2 + 12 + 128},
    [GGML_TYPE_Q5_K] = {"Q5_K", 256, 2 + 2 + 12 + 32 + 128},
    [GGML_TYPE_Q6_K] = {"Q6_K", 256, 128 + 64 + 16 + 2},
    [GGML_TYPE_Q8_K] = {"Q8_K", 256, 4 + 256 + 32},   /* f32 d, 256 x int8, 16 x int16 sums */
    [GGML_TYPE_IQ2_XXS] = {"IQ2_XXS", 256, 2 + 64},
    [GGML_TYPE_IQ2_XS] = {"IQ2_XS", 256, 2 + 64 + 8},
    [GGML_TYPE_IQ3_XXS] = {"IQ3_XXS", 256, 2 + 96},
    [GGML_TYPE_IQ1_S] = {"IQ1_S", 256, 2 + 32 + 16},
    [GGML_TYPE_IQ4_NL] = {"IQ4_NL", 32, 2 + 16},
    [GGML_TYPE_IQ3_S] = {"IQ3_S", 256, 2 + 64 + 8 + 32 + 4},
    [GGML_TYPE_IQ2_S] = {"IQ2_S", 256, 2 + 64 + 16},
    [GGML_TYPE_IQ4_XS] = {"IQ4_XS", 256, 2 + 2 + 4 + 128},
    [GGML_TYPE_I8] = {"I8", 1, 1},
    [GGML_TYPE_I16] = {"I16", 1, 2},
    [GGML_TYPE_I32] = {"I32", 1, 4},
    [GGML_TYPE_I64] = {"I64", 1, 8},
    [GGML_TYPE_F64] = {"F64", 1, 8},
    [GGML_TYPE_IQ1_M] = {"IQ1_M", 256, 32 + 16 + 8},
    [GGML_TYPE_BF16] = {"BF16", 1, 2},
};

const tensor_type_traits *tensor_type_get(uint32_t type)
{
    if (type >= GGML_TYPE_COUNT || type_table[type].name == NULL)
        return NULL;
    return &type_table[type];
}

const char *tensor_type_name(uint32_t type)
{
    const tensor_type_traits *t = tensor_type_get(type);
    return t ? t->name : "unknown";
}
