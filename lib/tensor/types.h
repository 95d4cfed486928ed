/* types.h - the GGML tensor type table: names, block sizes and block byte sizes.
 * The table covers every type GGUF files carry, whether or not lmrt computes on it. */
#ifndef LMRT_TENSOR_TYPES_H
#define LMRT_TENSOR_TYPES_H

#include <stdbool.h>
#include <stdint.h>

/* GGML type numbers as stored in GGUF tensor infos. Gaps (4, 5) were removed upstream. */
enum ggml_type {
    GGML_TYPE_F32 = 0, GGML_TYPE_F16 = 1, GGML_TYPE_Q4_0 = 2, GGML_TYPE_Q4_1 = 3,
    GGML_TYPE_Q5_0 = 6, GGML_TYPE_Q5_1 = 7, GGML_TYPE_Q8_0 = 8, GGML_TYPE_Q8_1 = 9,
    GGML_TYPE_Q2_K = 10, GGML_TYPE_Q3_K = 11, GGML_TYPE_Q4_K = 12, GGML_TYPE_Q5_K = 13,
    GGML_TYPE_Q6_K = 14, GGML_TYPE_Q8_K = 15,
    GGML_TYPE_IQ2_XXS = 16, GGML_TYPE_IQ2_XS = 17, GGML_TYPE_IQ3_XXS = 18, GGML_TYPE_IQ1_S = 19,
    GGML_TYPE_IQ4_NL = 20, GGML_TYPE_IQ3_S = 21, GGML_TYPE_IQ2_S = 22, GGML_TYPE_IQ4_XS = 23,
    GGML_TYPE_I8 = 24, GGML_TYPE_I16 = 25, GGML_TYPE_I32 = 26, GGML_TYPE_I64 = 27,
    GGML_TYPE_F64 = 28, GGML_TYPE_IQ1_M = 29, GGML_TYPE_BF16 = 30,
    GGML_TYPE_COUNT = 31
};

typedef struct tensor_type_traits {
    const char *name;        /* "Q4_K"; NULL for numbers that are not a type */
    uint32_t block_elems;    /* elements per block (1 for plain types) */
    uint32_t block_bytes;    /* bytes per block */
} tensor_type_traits;

/* Traits of a type number, or NULL when the number is not a known type. */
const tensor_type_traits *tensor_type_get(uint32_t type);
const char *tensor_type_name(uint32_t type);   /* "unknown" when not known */

#endif
