/* cpu_q8_avx2.h - the 8-row panel of the AVX2 Q8_0/Q4_0 matmul and its token loop,
 * shared by the kernel that builds panels from the mapping (cpu_matmul_avx2.c) and the
 * one that builds them from repacked weights for prompt batches (cpu_packed_avx2.c).
 * Files built with the AVX2 flags only. Layout and numerics: cpu_matmul_avx2.c. */
#ifndef LMRT_BACKEND_CPU_Q8_AVX2_H
#define LMRT_BACKEND_CPU_Q8_AVX2_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/cpu_simd.h"
#include "tensor/types.h"

#define P8 8
#define PANEL_BLOCK_BYTES (8 * 32 + 8 * 4)   /* 8 vectors of 8 rows' dwords, 8 scales */

static inline float q8_load_f16(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

/* The scratch of both AVX2 kernels (cpu_matmul_q8_avx2_scratch floats): a built 8-row
 * panel, then per token and block x's scale (*dx) and 8 * sum(x) (*sx8, Q4_0's bias),
 * which this fills from in->xq (unless in->tables_ready: an earlier piece of the same
 * run left them). Returns the panel. */
static inline uint8_t *q8_token_tables(const matmul_input *in, float *scratch, float **dx,
                                       int32_t **sx8)
{
    const int64_t nb = in->n_cols / 32;
    float *d = scratch + nb * (PANEL_BLOCK_BYTES / 4);              /* [n_tok][nb] */
    int32_t *s8 = (int32_t *)(void *)(d + (int64_t)in->n_tok * nb); /* [n_tok][nb] */
    for (int32_t t = 0; t < in->n_tok && !in->tables_ready; t++)
        for (int64_t b = 0; b < nb; b++) {
            const uint8_t *xb = (const uint8_t *)in->xq + (size_t)t * in->xq_row_bytes + (size_t)b * 34;
            d[t * nb + b] = q8_load_f16(xb);
            /* sum(x) by sad of x + 128, less 32 * 128 */
            __m256i v = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(const void *)(xb + 2)),
                                         _mm256_set1_epi8((char)0x80));
            __m256i s = _mm256_sad_epu8(v, _mm256_setzero_si256());
            __m128i s2 = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
            int64_t sum = _mm_cvtsi128_si64(s2) + _mm_extract_epi64(s2, 1) - 32 * 128;
            s8[t * nb + b] = (int32_t)(8 * sum);
        }
    *dx = d;
    *sx8 = s8;
    return (uint8_t *)scratch;
}

/* Exact int8 dot of the panel's block (8 rows) with one token's block xb (32 int8). */
static inline __attribute__((always_inline)) __m256i panel_dot(uint32_t type, const uint8_t *pb, const uint8_t *xb)
{
    if (type == GGML_TYPE_Q8_0) {
        const __m256i ones = _mm256_set1_epi16(1);
        __m256i s = _mm256_setzero_si256();
        CPU_UNROLL
        for (int g = 0; g < 8; g++) {
            __m256i wv = _mm256_load_si256((const __m256i *)(const void *)(pb + 32 * g));
            int32_t xd;
            memcpy(&xd, xb + 4 * g, 4);
            __m256i xv = _mm256_sign_epi8(_mm256_set1_epi32(xd), wv);
            s = _mm256_add_epi32(s, _mm256_madd_epi16(
                                        _mm256_maddubs_epi16(_mm256_abs_epi8(wv), xv), ones));
        }
        return s;
    }
    __m256i s16 = _mm256_setzero_si256();
    CPU_UNROLL
    for (int g = 0; g < 8; g++) {
        __m256i wv = _mm256_load_si256((const __m256i *)(const void *)(pb + 32 * g));
        int32_t xd;
        memcpy(&xd, xb + 4 * g, 4);
        s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(wv, _mm256_set1_epi32(xd)));
    }
    return _mm256_madd_epi16(s16, _mm256_set1_epi16(1));
}

/* y[t][r..r+nr) for every token from one built panel (nb blocks of PANEL_BLOCK_BYTES);
 * dx and sx8: per token and block, x's scale and 8 * sum(x) (Q4_0's bias). */
static inline __attribute__((always_inline)) void
q8_panel_tokens(uint32_t type, const uint8_t *panel, const matmul_input *in, const float *dx,
                const int32_t *sx8, float *y, int64_t n_rows, int64_t r, int nr)
{
    const int64_t nb = in->n_cols / 32;
    for (int32_t t = 0; t < in->n_tok; t++) {
        __m256 acc = _mm256_setzero_ps();
        const uint8_t *xrow = (const uint8_t *)in->xq + (size_t)t * in->xq_row_bytes;
        for (int64_t b = 0; b < nb; b++) {
            const uint8_t *pb = panel + b * PANEL_BLOCK_BYTES;
            __m256i is = panel_dot(type, pb, xrow + b * 34 + 2);
            if (type == GGML_TYPE_Q4_0)
                is = _mm256_sub_epi32(is, _mm256_set1_epi32(sx8[t * nb + b]));
            __m256 s = _mm256_mul_ps(_mm256_load_ps((const float *)(const void *)(pb + 256)),
                                     _mm256_set1_ps(dx[t * nb + b]));
            acc = _mm256_fmadd_ps(s, _mm256_cvtepi32_ps(is), acc);
        }
        float out[8];
        _mm256_storeu_ps(out, acc);
        for (int i = 0; i < nr; i++)
            y[(size_t)t * (size_t)n_rows + (size_t)(r + i)] = out[i];
    }
}

#endif
