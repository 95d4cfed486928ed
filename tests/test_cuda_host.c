/* test_cuda_host.c - the CUDA backend's host-side logic, on any machine (no GPU needed):
 * the device row layouts and the decoders the kernels run (cuda_quant.h, compiled here as
 * C) against tensor/quant.h's reference, the int8 dot products, the kernel and tile
 * choice, attention's key split, the memory fit check, the converted-input cache, and,
 * through the public API, device listing and the fallback when CUDA has no device.
 * Meson runs it twice: as is, and with CUDA_VISIBLE_DEVICES="" so that a GPU machine
 * checks the no-device paths too. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api/handles.h"
#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_plan.h"
#include "backend/cuda/cuda_quant.h"
#include "base/error.h"
#include "lmrt.h"
#include "tensor/quant.h"
#include "tensor/types.h"

static uint64_t rng_state = 1;

static uint32_t rng_u32(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

static float rng_uniform(float lo, float hi)
{
    return lo + (hi - lo) * (float)(rng_u32() >> 8) * 0x1p-24f;
}

/* A row of random blocks of `type` in the file's layout: random bytes, with every f16
 * scale replaced by a finite one (random bytes could be NaN or inf). */
static void random_row(uint32_t type, int64_t n_cols, uint8_t *row)
{
    const tensor_type_traits *tt = tensor_type_get(type);
    const size_t bytes = (size_t)(n_cols / tt->block_elems) * tt->block_bytes;
    for (size_t i = 0; i < bytes; i++)
        row[i] = (uint8_t)rng_u32();
    for (size_t b = 0; b < bytes / tt->block_bytes; b++) {
        uint8_t *blk = row + b * tt->block_bytes;
        uint16_t h1 = fp32_to_fp16(rng_uniform(-0.05f, 0.05f));
        uint16_t h2 = fp32_to_fp16(rng_uniform(0.0f, 0.02f));
        switch (type) {
        case GGML_TYPE_Q8_0:
        case GGML_TYPE_Q4_0:
            memcpy(blk, &h1, 2);
            break;
        case GGML_TYPE_Q4_K:
            memcpy(blk, &h1, 2);
            memcpy(blk + 2, &h2, 2);
            break;
        case GGML_TYPE_Q6_K:
            memcpy(blk + 208, &h1, 2);
            break;
        case GGML_TYPE_F16:
            memcpy(blk, &h1, 2);
            break;
        case GGML_TYPE_BF16: {
            uint16_t b16 = fp32_to_bf16(rng_uniform(-2.0f, 2.0f));
            memcpy(blk, &b16, 2);
            break;
        }
        case GGML_TYPE_F32: {
            float f = rng_uniform(-2.0f, 2.0f);
            memcpy(blk, &f, 4);
            break;
        }
        }
    }
}

static const uint32_t quant_types[] = {GGML_TYPE_Q8_0, GGML_TYPE_Q4_0, GGML_TYPE_Q4_K,
                                       GGML_TYPE_Q6_K};

/* ---- layouts and decoders ------------------------------------------------------------- */

static void repacked_quant_rows_decode_like_the_reference(void **state)
{
    (void)state;
    for (size_t ti = 0; ti < sizeof quant_types / sizeof quant_types[0]; ti++) {
        const uint32_t type = quant_types[ti];
        const int64_t block = tensor_type_get(type)->block_elems;
        const int64_t sizes[] = {block, 3 * block, 8 * block};
        for (size_t si = 0; si < 3; si++) {
            const int64_t n = sizes[si];
            const size_t rb = (size_t)cq_row_bytes(type, n);
            assert_int_equal(rb % 16, 0);
            uint8_t *src = malloc((size_t)(n / block) * tensor_type_get(type)->block_bytes);
            uint8_t *dst = malloc(rb);
            float *want = malloc((size_t)n * sizeof(float));
            assert_non_null(src);
            assert_non_null(dst);
            assert_non_null(want);
            for (int rep = 0; rep < 20; rep++) {
                random_row(type, n, src);
                memset(dst, 0xa5, rb);
                cuda_repack_row(type, n, src, dst);
                assert_int_equal(dequantize_row(type, src, want, n), LMRT_OK);
                for (int64_t u = 0; u < n / 32; u++) {
                    cq_w32 w;
                    cq_load32(type, dst, n, u, &w);
                    for (int i = 0; i < 32; i++) {
                        const float got = cq_value(&w, i);
                        if (memcmp(&got, &want[32 * u + i], sizeof got) != 0)
                            fail_msg("%s n %lld: element %lld is %.9g, the reference %.9g",
                                     tensor_type_name(type), (long long)n, (long long)(32 * u + i),
                                     (double)got, (double)want[32 * u + i]);
                    }
                }
            }
            /* The padding after the last scale is zero (the layout's own bytes are data). */
            size_t used = type == GGML_TYPE_Q8_0   ? (size_t)n / 32 * 34
                          : type == GGML_TYPE_Q4_0 ? (size_t)n / 32 * 18
                          : type == GGML_TYPE_Q6_K ? (size_t)n / 256 * 210
                                                   : rb;
            for (size_t i = used; i < rb; i++)
                assert_int_equal(dst[i], 0);
            free(src);
            free(dst);
            free(want);
        }
    }
}

static void plain_rows_are_copied_and_zero_padded(void **state)
{
    (void)state;
    const uint32_t types[] = {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16};
    const int64_t sizes[] = {1, 7, 8, 37};
    for (size_t ti = 0; ti < 3; ti++)
        for (size_t si = 0; si < 4; si++) {
            const uint32_t type = types[ti];
            const int64_t n = sizes[si];
            const size_t es = type == GGML_TYPE_F32 ? 4 : 2;
            const size_t rb = (size_t)cq_row_bytes(type, n);
            assert_true(rb >= es * (size_t)n);
            if (type != GGML_TYPE_F32)
                assert_int_equal(rb % 16, 0);
            else
                assert_int_equal(rb, 4 * (size_t)n);   /* norms stay float arrays */
            uint8_t src[37 * 4], dst[160];
            random_row(type, n, src);
            memset(dst, 0xa5, sizeof dst);
            cuda_repack_row(type, n, src, dst);
            assert_memory_equal(dst, src, es * (size_t)n);
            for (size_t i = es * (size_t)n; i < rb; i++)
                assert_int_equal(dst[i], 0);
        }
    assert_int_equal(cq_row_bytes(GGML_TYPE_Q4_1, 32), 0);
    assert_false(cuda_plan_type_supported(GGML_TYPE_Q4_1));
    assert_true(cuda_plan_type_supported(GGML_TYPE_Q6_K));
}

/* The activations' quantization: zeros stay zero, values round to even. */
static void quantize32_matches_its_definition(void **state)
{
    (void)state;
    float x[32];
    int8_t q[32];
    float d, s;
    memset(x, 0, sizeof x);
    cq_quantize32(x, q, &d, &s);
    assert_true(d == 0.0f && s == 0.0f);
    for (int i = 0; i < 32; i++)
        assert_int_equal(q[i], 0);
    for (int i = 0; i < 32; i++)
        x[i] = (float)(i - 16) * 0.25f;   /* amax 4: d = 4/127 */
    cq_quantize32(x, q, &d, &s);
    assert_true(d == 4.0f / 127.0f);
    int32_t sum = 0;
    for (int i = 0; i < 32; i++) {
        assert_int_equal(q[i], (int)lrintf(x[i] * (1.0f / d)));
        sum += q[i];
    }
    assert_int_equal(q[0], -127);
    assert_true(s == d * (float)sum);
}

/* cq_dot32 is the integer dot of the weights' and x's int8 values, scaled; and it is
 * close to the float dot of the dequantized weights with x, within the quantization of
 * x (each x_i moves by at most d/2). */
static void dot32_matches_integer_arithmetic(void **state)
{
    (void)state;
    for (size_t ti = 0; ti < sizeof quant_types / sizeof quant_types[0]; ti++) {
        const uint32_t type = quant_types[ti];
        const int64_t n = tensor_type_get(type)->block_elems;
        uint8_t src[256], dst[512];
        float wv[256];
        for (int rep = 0; rep < 50; rep++) {
            random_row(type, n, src);
            cuda_repack_row(type, n, src, dst);
            assert_int_equal(dequantize_row(type, src, wv, n), LMRT_OK);
            for (int64_t u = 0; u < n / 32; u++) {
                float x[32], d, s;
                int8_t q[32];
                for (int i = 0; i < 32; i++)
                    x[i] = rng_uniform(-3.0f, 3.0f);
                cq_quantize32(x, q, &d, &s);
                int32_t xq[8];
                memcpy(xq, q, sizeof xq);
                cq_w32 w;
                cq_load32(type, dst, n, u, &w);
                int32_t lo = 0, hi = 0;
                for (int i = 0; i < 32; i++) {
                    const int wi = (int8_t)(w.q[i / 4] >> (8 * (i % 4)));
                    *(i < 16 ? &lo : &hi) += wi * q[i];
                }
                const float want = d * (w.d0 * (float)lo + w.d1 * (float)hi) - w.m * s;
                const float got = cq_dot32(&w, xq, d, s);
                assert_true(got == want);
                double exact = 0.0, bound = 0.0;
                for (int i = 0; i < 32; i++) {
                    exact += (double)wv[32 * u + i] * x[i];
                    bound += fabs((double)wv[32 * u + i]) * d * 0.5;
                }
                if (fabs(got - exact) > bound * 1.01 + 1e-5)
                    fail_msg("%s: dot %.7g vs exact %.7g, bound %.3g", tensor_type_name(type),
                             (double)got, exact, bound);
            }
        }
    }
}

/* ---- plans -------------------------------------------------------------------------------- */

static void matmul_plan_picks_kernel_and_tiles(void **state)
{
    (void)state;
    cuda_mm_plan p;
    /* generation: matvec; int8 x for quantized types */
    assert_int_equal(cuda_plan_matmul(GGML_TYPE_Q4_0, 4096, 4096, 1, 256, 132, &p), LMRT_OK);
    assert_int_equal(p.kind, CUDA_MM_MATVEC_Q);
    assert_int_equal(p.nt, 1);
    assert_int_equal(p.blocks, 1024);
    assert_int_equal(p.x_bytes, 4096 + 4096 / 32 * 8);
    assert_int_equal(cuda_plan_matmul(GGML_TYPE_Q6_K, 100, 512, 5, 256, 132, &p), LMRT_OK);
    assert_int_equal(p.kind, CUDA_MM_MATVEC_Q);
    assert_int_equal(p.nt, 8);
    assert_int_equal(p.blocks, 25);
    assert_int_equal(cuda_plan_matmul(GGML_TYPE_F16, 10, 64, 3, 256, 132, &p), LMRT_OK);
    assert_int_equal(p.kind, CUDA_MM_MATVEC_F);
    assert_int_equal(p.nt, 4);
    assert_true(p.x_vec);
    assert_int_equal(p.x_bytes, 0);
    assert_int_equal(cuda_plan_matmul(GGML_TYPE_F16, 10, 64, 3, 260, 132, &p), LMRT_OK);
    assert_false(p.x_vec);   /* x not 16-byte aligned */
    assert_int_equal(cuda_plan_matmul(GGML_TYPE_BF16, 10, 60, 2, 256, 132, &p), LMRT_OK);
    assert_false(p.x_vec);   /* rows of x not a multiple of 8 floats */
    /* prompts: tensor cores, x in f16 rows padded to 64 */
    assert_int_equal(cuda_plan_matmul(GGML_TYPE_Q8_0, 14336, 4096, 512, 256, 132, &p), LMRT_OK);
    assert_int_equal(p.kind, CUDA_MM_GEMM_TC);
    assert_true(p.bm == 128 && p.bn == 128);
    assert_int_equal(p.x_stride, 4096);
    assert_int_equal(p.x_bytes, (size_t)512 * 4096 * 2);
    /* too few 128 x 128 tiles for 132 SMs: smaller ones */
    assert_int_equal(cuda_plan_matmul(GGML_TYPE_F16, 4096, 4096, 128, 256, 132, &p), LMRT_OK);
    assert_true(p.bm == 64 && p.bn == 64);
    assert_int_equal(p.blocks, 128);
    assert_int_equal(cuda_plan_matmul(GGML_TYPE_F16, 4096, 4096, 128, 256, 60, &p), LMRT_OK);
    assert_true(p.bm == 128 && p.bn == 64);
    assert_int_equal(cuda_plan_matmul(GGML_TYPE_BF16, 30, 100, 9, 256, 132, &p), LMRT_OK);
    assert_true(p.kind == CUDA_MM_GEMM_TC && p.bn == 64 && p.x_stride == 128);
    assert_int_equal(cuda_plan_matmul(GGML_TYPE_F32, 30, 100, 9, 256, 132, &p), LMRT_OK);
    assert_int_equal(p.kind, CUDA_MM_GEMM_F32);
    assert_int_equal(p.x_bytes, 0);
    /* refusals */
    assert_int_equal(cuda_plan_matmul(GGML_TYPE_Q4_1, 8, 32, 1, 256, 132, &p), LMRT_E_UNSUPPORTED);
    assert_non_null(strstr(lmrt_last_error(), "Q4_1"));
    assert_int_equal(cuda_plan_matmul(GGML_TYPE_Q4_K, 8, 100, 1, 256, 132, &p),
                     LMRT_E_INVALID_ARG);
    assert_int_equal(cuda_plan_matmul(GGML_TYPE_Q8_0, 8, (int64_t)1 << 40, INT32_MAX, 256, 132,
                                      &p), LMRT_E_INVALID_ARG);
}

static void attention_plan_splits_long_generation(void **state)
{
    (void)state;
    cuda_att_plan a;
    /* 8B shape, one new token after 4095: 8 blocks alone would leave most SMs idle */
    attention_params p = {1, 4095, 32, 8, 128, 1024, 0.088f};
    assert_int_equal(cuda_plan_attention(&p, 0, true, 132, 227 * 1024, &a), LMRT_OK);
    assert_int_equal(a.chunks, 4);
    assert_int_equal(a.n_q, 4);
    assert_int_equal(a.q_blocks, 1);
    assert_int_equal(a.n_keys, 4096);
    assert_true(a.n_split > 1 && a.n_split <= CUDA_ATT_MAX_SPLIT);
    const int tiles = 4096 / CUDA_ATT_TILE;
    assert_true(a.n_split * a.tiles_per_split >= tiles);
    assert_true((a.n_split - 1) * a.tiles_per_split < tiles);   /* no empty split */
    assert_true(a.n_split >= 16);   /* about two blocks per SM */
    assert_int_equal(a.partial_bytes, (size_t)a.n_split * 32 * (128 + 2) * 4 + 4);
    assert_int_equal(a.smem_bytes, cuda_att_smem_bytes(128));
    /* a prompt of 512 already fills the device: no split */
    p.n_tok = 512;
    p.n_past = 0;
    assert_int_equal(cuda_plan_attention(&p, 0, true, 132, 227 * 1024, &a), LMRT_OK);
    assert_int_equal(a.n_split, 1);
    assert_int_equal(a.partial_bytes, 0);
    assert_int_equal(a.q_blocks, 512 * 4 / CUDA_ATT_ROWS);
    /* short context: at most one split per two tiles */
    p.n_tok = 1;
    p.n_past = 40;
    assert_int_equal(cuda_plan_attention(&p, 0, true, 132, 227 * 1024, &a), LMRT_OK);
    assert_int_equal(a.n_split, 1);
    /* non-causal: n_kv keys, n_past ignored */
    attention_params e = {577, 123, 16, 16, 64, 1024, 0.125f};
    assert_int_equal(cuda_plan_attention(&e, 577, false, 132, 227 * 1024, &a), LMRT_OK);
    assert_int_equal(a.n_keys, 577);
    assert_int_equal(a.chunks, 2);
    assert_int_equal(a.q_blocks * CUDA_ATT_ROWS >= 577, true);
    /* refusals: head_dim over 256, or shared memory the device does not have */
    e.head_dim = 257;
    assert_int_equal(cuda_plan_attention(&e, 577, false, 132, 227 * 1024, &a), LMRT_E_UNSUPPORTED);
    e.head_dim = 256;
    assert_int_equal(cuda_plan_attention(&e, 577, false, 132, 227 * 1024, &a), LMRT_OK);
    assert_int_equal(a.chunks, 8);
    assert_int_equal(cuda_plan_attention(&e, 577, false, 132, 48 * 1024, &a), LMRT_E_UNSUPPORTED);
    assert_non_null(strstr(lmrt_last_error(), "shared memory"));
}

static void memory_plan_keeps_a_reserve(void **state)
{
    (void)state;
    const uint64_t MiB = 1 << 20, GiB = (uint64_t)1 << 30;
    assert_int_equal(cuda_plan_reserve(8 * GiB), 256 * MiB);
    assert_int_equal(cuda_plan_reserve(80 * GiB), 80 * GiB / 64);
    assert_true(cuda_plan_fits(GiB, 10 * GiB, 80 * GiB));
    assert_true(cuda_plan_fits(10 * GiB - 80 * GiB / 64, 10 * GiB, 80 * GiB));
    assert_false(cuda_plan_fits(10 * GiB - 80 * GiB / 64 + 1, 10 * GiB, 80 * GiB));
    assert_false(cuda_plan_fits(1, 100 * MiB, 8 * GiB));   /* free below the reserve */
    assert_false(cuda_plan_fits(UINT64_MAX, 80 * GiB, 80 * GiB));
    uint64_t b;
    assert_true(cuda_weight_bytes(GGML_TYPE_Q4_0, 4096, 14336, &b));
    assert_int_equal(b, (uint64_t)14336 * 2304);
    assert_true(cuda_weight_bytes(GGML_TYPE_Q6_K, 256, 3, &b));
    assert_int_equal(b, 3 * 224);
    assert_false(cuda_weight_bytes(GGML_TYPE_Q4_1, 32, 1, &b));
    assert_false(cuda_weight_bytes(GGML_TYPE_F32, (int64_t)1 << 40, (int64_t)1 << 40, &b));
}

static void consecutive_positions_are_recognized(void **state)
{
    (void)state;
    const int32_t run[] = {7, 8, 9, 10}, gap[] = {7, 8, 10, 11}, back[] = {5, 4};
    assert_true(cuda_plan_ids_consecutive(run, 4));
    assert_true(cuda_plan_ids_consecutive(run, 1));
    assert_false(cuda_plan_ids_consecutive(run, 0));
    assert_false(cuda_plan_ids_consecutive(gap, 4));
    assert_false(cuda_plan_ids_consecutive(back, 2));
    const int32_t wrap[] = {INT32_MAX, INT32_MIN};   /* no overflow into a "run" */
    assert_false(cuda_plan_ids_consecutive(wrap, 2));
}

static void x_cache_tracks_its_input(void **state)
{
    (void)state;
    cuda_x_cache c;
    float buf[64];
    cuda_x_cache_clear(&c);
    assert_false(cuda_x_cache_hit(&c, buf, 2, 16, CUDA_X_Q8));
    cuda_x_cache_set(&c, buf, 2, 16, CUDA_X_Q8);
    assert_true(cuda_x_cache_hit(&c, buf, 2, 16, CUDA_X_Q8));
    assert_false(cuda_x_cache_hit(&c, buf, 2, 16, CUDA_X_F16));   /* other conversion */
    assert_false(cuda_x_cache_hit(&c, buf, 3, 16, CUDA_X_Q8));
    assert_false(cuda_x_cache_hit(&c, buf + 1, 2, 16, CUDA_X_Q8));
    cuda_x_cache_wrote(&c, buf + 32, 32 * sizeof(float));         /* past the input */
    assert_true(cuda_x_cache_hit(&c, buf, 2, 16, CUDA_X_Q8));
    cuda_x_cache_wrote(&c, buf + 31, sizeof(float));              /* its last element */
    assert_false(cuda_x_cache_hit(&c, buf, 2, 16, CUDA_X_Q8));
    cuda_x_cache_set(&c, buf + 16, 1, 16, CUDA_X_F16);
    cuda_x_cache_wrote(&c, buf, 16 * sizeof(float));               /* just before it */
    assert_true(cuda_x_cache_hit(&c, buf + 16, 1, 16, CUDA_X_F16));
    cuda_x_cache_wrote(&c, buf, 17 * sizeof(float));
    assert_false(cuda_x_cache_hit(&c, buf + 16, 1, 16, CUDA_X_F16));
}

/* ---- devices and the public API ---------------------------------------------------------- */

static void backend_lists_devices_and_refuses_bad_indices(void **state)
{
    (void)state;
    const backend_vtable *cu = backend_find(LMRT_BACKEND_CUDA);
    assert_ptr_equal(cu, &cuda_backend);
    assert_string_equal(cu->name, "cuda");
    assert_int_equal(cu->size, sizeof(backend_vtable));
    const int32_t n = cu->device_count();
    print_message("CUDA devices: %d\n", (int)n);
    for (int32_t i = 0; i < n; i++) {
        lmrt_device_info info;
        memset(&info, 0, sizeof info);
        assert_int_equal(cu->device_info(i, &info), LMRT_OK);
        assert_int_equal(info.backend, LMRT_BACKEND_CUDA);
        assert_int_equal(info.index, i);
        assert_true(info.name[0] != '\0');
        assert_true(info.total_memory > 0 && info.free_memory <= info.total_memory);
        assert_non_null(strstr(info.description, "sm_"));
        print_message("  %d: %s, %.1f GiB (%s)\n", (int)i, info.name,
                      (double)info.total_memory / (1 << 30), info.description);
    }
    lmrt_device_info info;
    assert_int_equal(cu->device_info(n, &info), LMRT_E_NOT_FOUND);
    assert_int_equal(cu->device_info(-1, &info), LMRT_E_NOT_FOUND);
    backend_ctx *ctx = NULL;
    assert_int_equal(cu->ctx_create(n, 0, &ctx), LMRT_E_NOT_FOUND);
    assert_null(ctx);
    if (n == 0)
        assert_non_null(strstr(lmrt_last_error(), "no CUDA device"));
    assert_int_equal(cu->ctx_create(-1, 0, &ctx), LMRT_E_NOT_FOUND);
    assert_true(cu->supports_type(GGML_TYPE_Q4_K));
    assert_false(cu->supports_type(GGML_TYPE_Q5_0));
}

static void public_api_lists_devices_and_falls_back_to_the_cpu(void **state)
{
    (void)state;
    const int32_t n = cuda_backend.device_count();
    int32_t count = -1;
    assert_int_equal(lmrt_device_count(LMRT_BACKEND_CUDA, &count), LMRT_OK);
    assert_int_equal(count, n);
    lmrt_device_info info;
    lmrt_device_info_init(&info, sizeof info);
    assert_int_equal(lmrt_device_get_info(LMRT_BACKEND_CUDA, n, &info), LMRT_E_NOT_FOUND);
    if (n > 0) {
        assert_int_equal(lmrt_device_get_info(LMRT_BACKEND_CUDA, 0, &info), LMRT_OK);
        assert_int_equal(info.backend, LMRT_BACKEND_CUDA);
    }

    lmrt_model *m = NULL;
    assert_int_equal(lmrt_model_load_builtin(NULL, &m), LMRT_OK);
    lmrt_capabilities caps;
    lmrt_capabilities_init(&caps, sizeof caps);
    assert_int_equal(lmrt_query_capabilities(m, "US", &caps), LMRT_OK);
    assert_int_equal(caps.n_cuda_devices, n);
    assert_int_equal((caps.backends & LMRT_BACKEND_CUDA) != 0, n > 0);
    assert_true(caps.backends & LMRT_BACKEND_CPU);

    /* AUTO: the GPU when there is one, else the CPU */
    lmrt_context_params cp;
    lmrt_context_params_init(&cp, sizeof cp);
    lmrt_context *ctx = NULL;
    assert_int_equal(lmrt_context_create(m, &cp, &ctx), LMRT_OK);
    assert_int_equal(ctx->backend, n > 0 ? LMRT_BACKEND_CUDA : LMRT_BACKEND_CPU);
    lmrt_context_free(ctx);

    /* CUDA by name: a device that does not exist is LMRT_E_NOT_FOUND, with the reason */
    cp.backend = LMRT_BACKEND_CUDA;
    cp.device = n;
    ctx = NULL;
    assert_int_equal(lmrt_context_create(m, &cp, &ctx), LMRT_E_NOT_FOUND);
    assert_null(ctx);
    assert_non_null(strstr(lmrt_last_error(), "cuda"));
    if (n > 0) {
        cp.device = 0;
        assert_int_equal(lmrt_context_create(m, &cp, &ctx), LMRT_OK);
        assert_int_equal(ctx->backend, LMRT_BACKEND_CUDA);
        lmrt_context_free(ctx);
    }
    lmrt_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(repacked_quant_rows_decode_like_the_reference),
        cmocka_unit_test(plain_rows_are_copied_and_zero_padded),
        cmocka_unit_test(quantize32_matches_its_definition),
        cmocka_unit_test(dot32_matches_integer_arithmetic),
        cmocka_unit_test(matmul_plan_picks_kernel_and_tiles),
        cmocka_unit_test(attention_plan_splits_long_generation),
        cmocka_unit_test(memory_plan_keeps_a_reserve),
        cmocka_unit_test(consecutive_positions_are_recognized),
        cmocka_unit_test(x_cache_tracks_its_input),
        cmocka_unit_test(backend_lists_devices_and_refuses_bad_indices),
        cmocka_unit_test(public_api_lists_devices_and_falls_back_to_the_cpu),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
