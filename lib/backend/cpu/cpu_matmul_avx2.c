/* cpu_matmul_avx2.c - AVX2 matmul kernels for F32/F16/BF16 (float x) and Q8_0/Q4_0
 * (int8 x, vec_type Q8_0). Built with -mavx2 -mfma -mf16c -ffp-contract=off and called
 * only at CPU_LEVEL_AVX2 or above. Numerics as cpu_simd.h defines them; no allocation,
 * no threads: the op hands each call a row range and a scratch buffer. */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "backend/cpu/cpu_q8_avx2.h"
#include "backend/cpu/cpu_simd.h"
#include "tensor/types.h"

#define INLINE static inline __attribute__((always_inline))

/* ---- F32, F16, BF16: dot_f32's order, tiled 4 rows x 2 tokens ------------------ */

/* 8 weights of a row from byte offset `p`, widened exactly to float. */
INLINE __m256 load8_w(uint32_t type, const uint8_t *p)
{
    if (type == GGML_TYPE_F16)
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)p));
    if (type == GGML_TYPE_BF16)
        return _mm256_castsi256_ps(_mm256_slli_epi32(
            _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(const void *)p)), 16));
    return _mm256_loadu_ps((const float *)(const void *)p);
}

/* ((l0+l4)+(l2+l6))+((l1+l5)+(l3+l7)), the order of dot_acc_sum. */
INLINE float sum_lanes_dot_order(__m256 acc)
{
    __m128 v = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    __m128 h = _mm_add_ps(v, _mm_movehl_ps(v, v));      /* [v0+v2, v1+v3, ...] */
    return _mm_cvtss_f32(_mm_add_ss(h, _mm_shuffle_ps(h, h, 1)));
}

/* y for NR rows x NT tokens. Per output: acc = acc + w*x on 8 lanes (mul, then add:
 * -ffp-contract=off keeps them apart), then the lane sum; the column tail (< 8) is
 * read from zero-padded copies, and a padded lane adds +0, which changes nothing.
 * Bound: the float unit, 2 ops per 8 multiply-adds per output. 4x2 keeps 8
 * accumulators + 4 weight rows in the 16 ymm registers. pf_ahead: the distance to the
 * next tile's rows, to prefetch as these are read (0: none). */
INLINE void f_tile(uint32_t type, const uint8_t *const *rows, const float *const *xs,
                   int64_t n_cols, int NR, int NT, float *out /* [NT][NR] */, size_t pf_ahead)
{
    const int es = type == GGML_TYPE_F32 ? 4 : 2;
    __m256 acc[4][2];
    CPU_UNROLL
    for (int r = 0; r < NR; r++)
        CPU_UNROLL
        for (int t = 0; t < NT; t++)
            acc[r][t] = _mm256_setzero_ps();
    const int64_t n8 = n_cols & ~(int64_t)7;
    for (int64_t c = 0; c < n8; c += 8) {
        __m256 w[4];
        if (pf_ahead && ((size_t)(c * es) & 63) == 0)   /* a new line of each row */
            cpu_prefetch_rows_l2(rows, NR, (size_t)(c * es), pf_ahead);
        CPU_UNROLL
        for (int r = 0; r < NR; r++)
            w[r] = load8_w(type, rows[r] + c * es);
        CPU_UNROLL
        for (int t = 0; t < NT; t++) {
            __m256 x = _mm256_loadu_ps(xs[t] + c);
            CPU_UNROLL
            for (int r = 0; r < NR; r++)
                acc[r][t] = _mm256_add_ps(acc[r][t], _mm256_mul_ps(w[r], x));
        }
    }
    if (n8 < n_cols) {
        const int rem = (int)(n_cols - n8);
        CPU_UNROLL
        for (int r = 0; r < NR; r++) {
            uint8_t wb[32] = {0};
            memcpy(wb, rows[r] + n8 * es, (size_t)rem * (size_t)es);
            __m256 wv = load8_w(type, wb);
            CPU_UNROLL
            for (int t = 0; t < NT; t++) {
                float xb[8] = {0};
                memcpy(xb, xs[t] + n8, (size_t)rem * sizeof(float));
                acc[r][t] = _mm256_add_ps(acc[r][t], _mm256_mul_ps(wv, _mm256_loadu_ps(xb)));
            }
        }
    }
    CPU_UNROLL
    for (int t = 0; t < NT; t++)
        CPU_UNROLL
        for (int r = 0; r < NR; r++)
            out[t * NR + r] = sum_lanes_dot_order(acc[r][t]);
}

INLINE void f_rows(uint32_t type, const tensor_view *w, const matmul_input *in, float *y,
                   int64_t r0, int64_t r1)
{
    const int64_t n_rows = w->n_rows, n_cols = in->n_cols;
    const int32_t n_tok = in->n_tok;
    for (int64_t r = r0; r < r1; r += 4) {
        const int nr = r1 - r < 4 ? (int)(r1 - r) : 4;
        const uint8_t *rows[4];
        CPU_UNROLL
        for (int i = 0; i < 4; i++)   /* a short tile repeats its last row */
            rows[i] = (const uint8_t *)w->data + (size_t)(r + (i < nr ? i : nr - 1)) * w->row_bytes;
        /* the first token pass prefetches the next tile, if this range has all of it */
        size_t pf = r + 8 <= r1 ? 4 * w->row_bytes : 0;
        for (int32_t t = 0; t < n_tok; t += 2) {
            const int nt = n_tok - t < 2 ? 1 : 2;
            const float *xs[2] = {in->x + (size_t)t * (size_t)n_cols,
                                  in->x + (size_t)(t + nt - 1) * (size_t)n_cols};
            float out[8];
            if (nt == 2)
                f_tile(type, rows, xs, n_cols, 4, 2, out, pf);
            else
                f_tile(type, rows, xs, n_cols, 4, 1, out, pf);
            pf = 0;
            for (int j = 0; j < nt; j++)
                for (int i = 0; i < nr; i++)
                    y[(size_t)(t + j) * (size_t)n_rows + (size_t)(r + i)] = out[j * 4 + i];
        }
    }
}

/* Measured on the 2-core Xeon (shared with other jobs; 8192 x 2048 F16, one thread):
 * n_tok 1 11.0 GB/s, 73% of a streaming read at the same moment; n_tok 128 23.8 GMAC/s,
 * about 2 ops per 8 multiply-adds as above (the scalar kernel: 5.3 GMAC/s). */
void cpu_matmul_f_avx2(const tensor_view *w, const matmul_input *in, float *y, int64_t r0,
                       int64_t r1, float *scratch)
{
    (void)scratch;
    switch (w->type) {
    case GGML_TYPE_F16: f_rows(GGML_TYPE_F16, w, in, y, r0, r1); break;
    case GGML_TYPE_BF16: f_rows(GGML_TYPE_BF16, w, in, y, r0, r1); break;
    default: f_rows(GGML_TYPE_F32, w, in, y, r0, r1); break;
    }
}

/* ---- Q8_0 / Q4_0 against Q8_0 activations: 8-row panels ------------------------ */

/* A panel holds 8 weight rows transposed so that 32-bit lane r of a vector is row r:
 * per block, 8 vectors W_g (g = 0..7) whose lane r has the row's 4 weights of x's
 * dword g, then the 8 row scales as floats. The int8 dot of token t is then
 * sum_g maddubs(W_g, broadcast(x dword g)), giving 8 rows at once; the transpose is
 * paid once per panel and reused by every token.
 *   Q8_0: W_g = the signed weights; the dot uses maddubs(|W|, sign(x, W)), which is
 *         exact (|w| <= 128, |x| <= 127: a pair sum is at most 32512).
 *   Q4_0: W_g = the nibbles 0..15; maddubs(W, x) pairs are at most 3810, so 8 groups
 *         sum in int16 (30480), and isum = that - 8 * sum(x). */

INLINE void transpose8x8_epi32(__m256i r[8], __m256i t[8])
{
    __m256i a0 = _mm256_unpacklo_epi32(r[0], r[1]), a1 = _mm256_unpackhi_epi32(r[0], r[1]);
    __m256i a2 = _mm256_unpacklo_epi32(r[2], r[3]), a3 = _mm256_unpackhi_epi32(r[2], r[3]);
    __m256i a4 = _mm256_unpacklo_epi32(r[4], r[5]), a5 = _mm256_unpackhi_epi32(r[4], r[5]);
    __m256i a6 = _mm256_unpacklo_epi32(r[6], r[7]), a7 = _mm256_unpackhi_epi32(r[6], r[7]);
    __m256i u0 = _mm256_unpacklo_epi64(a0, a2), u1 = _mm256_unpackhi_epi64(a0, a2);
    __m256i u2 = _mm256_unpacklo_epi64(a1, a3), u3 = _mm256_unpackhi_epi64(a1, a3);
    __m256i u4 = _mm256_unpacklo_epi64(a4, a6), u5 = _mm256_unpackhi_epi64(a4, a6);
    __m256i u6 = _mm256_unpacklo_epi64(a5, a7), u7 = _mm256_unpackhi_epi64(a5, a7);
    t[0] = _mm256_permute2x128_si256(u0, u4, 0x20);
    t[4] = _mm256_permute2x128_si256(u0, u4, 0x31);
    t[1] = _mm256_permute2x128_si256(u1, u5, 0x20);
    t[5] = _mm256_permute2x128_si256(u1, u5, 0x31);
    t[2] = _mm256_permute2x128_si256(u2, u6, 0x20);
    t[6] = _mm256_permute2x128_si256(u2, u6, 0x31);
    t[3] = _mm256_permute2x128_si256(u3, u7, 0x20);
    t[7] = _mm256_permute2x128_si256(u3, u7, 0x31);
}

/* Transposes block b of the 8 rows into dst (PANEL_BLOCK_BYTES). */
INLINE void panel_block(uint32_t type, const uint8_t *const *rows, int64_t b, uint8_t *dst)
{
    __m256i t[8];
    if (type == GGML_TYPE_Q8_0) {
        __m256i r[8];
        CPU_UNROLL
        for (int i = 0; i < 8; i++)
            r[i] = _mm256_loadu_si256((const __m256i *)(const void *)(rows[i] + b * 34 + 2));
        transpose8x8_epi32(r, t);
    } else {
        __m256i z[4];
        CPU_UNROLL
        for (int a = 0; a < 4; a++)
            z[a] = _mm256_loadu2_m128i((const __m128i *)(const void *)(rows[a + 4] + b * 18 + 2),
                                       (const __m128i *)(const void *)(rows[a] + b * 18 + 2));
        __m256i a0 = _mm256_unpacklo_epi32(z[0], z[1]), a1 = _mm256_unpackhi_epi32(z[0], z[1]);
        __m256i a2 = _mm256_unpacklo_epi32(z[2], z[3]), a3 = _mm256_unpackhi_epi32(z[2], z[3]);
        __m256i p[4] = {_mm256_unpacklo_epi64(a0, a2), _mm256_unpackhi_epi64(a0, a2),
                        _mm256_unpacklo_epi64(a1, a3), _mm256_unpackhi_epi64(a1, a3)};
        const __m256i m4 = _mm256_set1_epi8(0x0f);
        CPU_UNROLL
        for (int g = 0; g < 4; g++) {
            t[g] = _mm256_and_si256(p[g], m4);
            t[g + 4] = _mm256_and_si256(_mm256_srli_epi32(p[g], 4), m4);
        }
    }
    CPU_UNROLL
    for (int g = 0; g < 8; g++)
        _mm256_store_si256((__m256i *)(void *)(dst + 32 * g), t[g]);
    const int64_t bb = type == GGML_TYPE_Q8_0 ? 34 : 18;
    float *d = (float *)(void *)(dst + 256);
    CPU_UNROLL
    for (int i = 0; i < 8; i++)
        d[i] = q8_load_f16(rows[i] + b * bb);
}

int64_t cpu_matmul_q8_avx2_scratch(const tensor_view *w, int32_t n_tok)
{
    const int64_t nb = w->n_cols / 32;
    /* panel + per-token scales and 8 * sum(x), + alignment slack */
    return nb * (PANEL_BLOCK_BYTES / 4) + 2 * (int64_t)n_tok * nb + 16;
}

/* Bound: at n_tok = 1 by memory (the transpose and 8 maddubs per 8 row-blocks are a
 * few cycles per row-block); at large n_tok by maddubs (4 ops per 4-byte group per
 * token for Q8_0, 2 for Q4_0). Measured (8192 x 2048, one thread, shared machine):
 * n_tok 1 Q4_0 9.2 GB/s, Q8_0 8.9 GB/s (63% of a streaming read then); n_tok 128
 * Q4_0 80 GMAC/s, Q8_0 40 GMAC/s (scalar: 8 GMAC/s). */
INLINE void q8_rows(uint32_t type, const tensor_view *w, const matmul_input *in, float *y,
                    int64_t r0, int64_t r1, float *scratch)
{
    const int64_t nb = in->n_cols / 32, n_rows = w->n_rows;
    float *dx;
    int32_t *sx8;
    uint8_t *panel = q8_token_tables(in, scratch, &dx, &sx8);   /* 64-byte aligned */
    const uint8_t *end = (const uint8_t *)w->data + (size_t)w->n_rows * w->row_bytes;
    for (int64_t r = r0; r < r1; r += P8) {
        const int nr = r1 - r < P8 ? (int)(r1 - r) : P8;
        const uint8_t *rows[P8];
        for (int i = 0; i < P8; i++)
            rows[i] = (const uint8_t *)w->data + (size_t)(r + (i < nr ? i : nr - 1)) * w->row_bytes;
        /* the next panel's rows (up to r1), in order: see cpu_prefetch_run */
        const size_t next = (size_t)(r1 - r > 2 * P8 ? P8 : r1 - r - nr) * w->row_bytes;
        cpu_prefetch_run pf = cpu_prefetch_run_init(rows[0] + P8 * w->row_bytes, next, end, nb);
        for (int64_t b = 0; b < nb; b++) {
            cpu_prefetch_run_step(&pf);
            panel_block(type, rows, b, panel + b * PANEL_BLOCK_BYTES);
        }
        q8_panel_tokens(type, panel, in, dx, sx8, y, n_rows, r, nr);
    }
}

void cpu_matmul_q8_avx2(const tensor_view *w, const matmul_input *in, float *y, int64_t r0,
                        int64_t r1, float *scratch)
{
    if (w->type == GGML_TYPE_Q8_0)
        q8_rows(GGML_TYPE_Q8_0, w, in, y, r0, r1, scratch);
    else
        q8_rows(GGML_TYPE_Q4_0, w, in, y, r0, r1, scratch);
}
