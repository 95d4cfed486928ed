/* cpu_matmul_avx512.c - AVX-512 matmul kernels: F32/F16/BF16 in dot_f32's order on
 * pairs of rows per zmm, and Q8_0/Q4_0 against int8 x with VNNI (vpdpbusd) on
 * 16-row panels. Built with -mavx512f/bw/vl/vnni -ffp-contract=off; reached only
 * through cpu_kernels_avx512 (AVX-512 F/BW/VL + VNNI detected). Numerics as
 * cpu_simd.h defines them; the AMX kernel (cpu_amx.c) reuses the panel code. */
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "backend/cpu/cpu_q8_avx512.h"
#include "backend/cpu/cpu_simd.h"
#include "tensor/types.h"

#define INLINE static inline __attribute__((always_inline))

/* ---- F32, F16, BF16 ------------------------------------------------------------------ */

/* 8 weights of two rows, a in lanes 0-7 and b in lanes 8-15, widened exactly. */
INLINE __m512 load8x2_w(uint32_t type, const uint8_t *a, const uint8_t *b)
{
    if (type == GGML_TYPE_F16)
        return _mm512_cvtph_ps(_mm256_loadu2_m128i((const __m128i *)(const void *)b,
                                                   (const __m128i *)(const void *)a));
    if (type == GGML_TYPE_BF16)
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(
            _mm256_loadu2_m128i((const __m128i *)(const void *)b,
                                (const __m128i *)(const void *)a)), 16));
    return _mm512_castpd_ps(_mm512_insertf64x4(
        _mm512_castpd256_pd512(_mm256_loadu_pd((const double *)(const void *)a)),
        _mm256_loadu_pd((const double *)(const void *)b), 1));
}

INLINE float sum_lanes_dot_order(__m256 acc)
{
    __m128 v = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    __m128 h = _mm_add_ps(v, _mm_movehl_ps(v, v));
    return _mm_cvtss_f32(_mm_add_ss(h, _mm_shuffle_ps(h, h, 1)));
}

/* 8 rows (4 pairs) x NT tokens; each zmm accumulator holds two outputs' 8 lanes, so
 * every output follows dot_f32 exactly (mul, then add; -ffp-contract=off). Bound by
 * the two FP ports: 2 ops per 16 multiply-adds, ~32 per cycle per core at best;
 * NT = 6 uses 24 accumulators + 4 weight pairs of the 32 registers. pf_ahead: the
 * distance to the next tile's rows, to prefetch as these are read (0: none). */
INLINE void f_tile(uint32_t type, const uint8_t *const *rows, const float *x, int64_t n_cols,
                   int NT, float *out /* [NT][8] */, size_t pf_ahead)
{
    const int es = type == GGML_TYPE_F32 ? 4 : 2;
    __m512 acc[4][6];
    CPU_UNROLL
    for (int p = 0; p < 4; p++)
        CPU_UNROLL
        for (int t = 0; t < NT; t++)
            acc[p][t] = _mm512_setzero_ps();
    const int64_t n8 = n_cols & ~(int64_t)7;
    for (int64_t c = 0; c < n8; c += 8) {
        __m512 w[4];
        if (pf_ahead && ((size_t)(c * es) & 63) == 0)   /* a new line of each row */
            cpu_prefetch_rows_l2(rows, 8, (size_t)(c * es), pf_ahead);
        CPU_UNROLL
        for (int p = 0; p < 4; p++)
            w[p] = load8x2_w(type, rows[2 * p] + c * es, rows[2 * p + 1] + c * es);
        CPU_UNROLL
        for (int t = 0; t < NT; t++) {
            __m512 xv = _mm512_castpd_ps(_mm512_broadcast_f64x4(
                _mm256_loadu_pd((const double *)(const void *)(x + (size_t)t * (size_t)n_cols + c))));
            CPU_UNROLL
            for (int p = 0; p < 4; p++)
                acc[p][t] = _mm512_add_ps(acc[p][t], _mm512_mul_ps(w[p], xv));
        }
    }
    if (n8 < n_cols) {   /* zero-padded tail: a padded lane adds +0 */
        const int rem = (int)(n_cols - n8);
        CPU_UNROLL
        for (int p = 0; p < 4; p++) {
            uint8_t wa[32] = {0}, wb[32] = {0};
            memcpy(wa, rows[2 * p] + n8 * es, (size_t)rem * (size_t)es);
            memcpy(wb, rows[2 * p + 1] + n8 * es, (size_t)rem * (size_t)es);
            __m512 wv = load8x2_w(type, wa, wb);
            CPU_UNROLL
            for (int t = 0; t < NT; t++) {
                float xb[8] = {0};
                memcpy(xb, x + (size_t)t * (size_t)n_cols + n8, (size_t)rem * sizeof(float));
                __m512 xv = _mm512_castpd_ps(
                    _mm512_broadcast_f64x4(_mm256_loadu_pd((const double *)(const void *)xb)));
                acc[p][t] = _mm512_add_ps(acc[p][t], _mm512_mul_ps(wv, xv));
            }
        }
    }
    CPU_UNROLL
    for (int t = 0; t < NT; t++)
        CPU_UNROLL
        for (int p = 0; p < 4; p++) {
            out[t * 8 + 2 * p] = sum_lanes_dot_order(_mm512_castps512_ps256(acc[p][t]));
            out[t * 8 + 2 * p + 1] = sum_lanes_dot_order(
                _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc[p][t]), 1)));
        }
}

INLINE void f_rows(uint32_t type, const tensor_view *w, const matmul_input *in, float *y,
                   int64_t r0, int64_t r1)
{
    const int64_t n_rows = w->n_rows, n_cols = in->n_cols;
    for (int64_t r = r0; r < r1; r += 8) {
        const int nr = r1 - r < 8 ? (int)(r1 - r) : 8;
        const uint8_t *rows[8];
        CPU_UNROLL
        for (int i = 0; i < 8; i++)   /* a short tile repeats its last row */
            rows[i] = (const uint8_t *)w->data + (size_t)(r + (i < nr ? i : nr - 1)) * w->row_bytes;
        /* the first token pass streams the tile and prefetches the next one, if this
         * range has a whole next tile (a distance of 2 tiles measured no better) */
        size_t pf = r + 16 <= r1 ? 8 * w->row_bytes : 0;
        for (int32_t t = 0; t < in->n_tok;) {
            const int left = in->n_tok - t, nt = left >= 6 ? 6 : left >= 3 ? 3 : 1;
            const float *x = in->x + (size_t)t * (size_t)n_cols;
            float out[6 * 8];
            if (nt == 6)
                f_tile(type, rows, x, n_cols, 6, out, pf);
            else if (nt == 3)
                f_tile(type, rows, x, n_cols, 3, out, pf);
            else
                f_tile(type, rows, x, n_cols, 1, out, pf);
            pf = 0;
            for (int j = 0; j < nt; j++)
                for (int i = 0; i < nr; i++)
                    y[(size_t)(t + j) * (size_t)n_rows + (size_t)(r + i)] = out[j * 8 + i];
            t += nt;
        }
    }
}

/* Measured on the 2-core Xeon (shared with other jobs; 8192 x 2048, one thread): F16 and
 * BF16 n_tok 1 at 10.6-11.1 GB/s, 85% or more of a streaming read at the same moment;
 * F16 n_tok 128 at 24-31 GMAC/s (the scalar kernel: 5.3). */
void cpu_matmul_f_avx512(const tensor_view *w, const matmul_input *in, float *y, int64_t r0,
                         int64_t r1, float *scratch)
{
    (void)scratch;
    switch (w->type) {
    case GGML_TYPE_F16: f_rows(GGML_TYPE_F16, w, in, y, r0, r1); break;
    case GGML_TYPE_BF16: f_rows(GGML_TYPE_BF16, w, in, y, r0, r1); break;
    default: f_rows(GGML_TYPE_F32, w, in, y, r0, r1); break;
    }
}

/* ---- Q8_0 / Q4_0 against Q8_0 activations --------------------------------------------- */

INLINE float load_f16(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

int64_t cpu_matmul_q8_avx512_scratch(const tensor_view *w, int32_t n_tok)
{
    const int64_t nb = w->n_cols / 32;
    return nb * (Q8P_BLOCK / 4) + 2 * (int64_t)n_tok * nb + 16;
}

uint8_t *cpu_q8_avx512_setup(const matmul_input *in, uint32_t type, float *scratch, q8_tokens *tk)
{
    const int32_t bias = type == GGML_TYPE_Q8_0 ? 128 : 8;
    const int64_t nb = in->n_cols / 32;
    float *dx = scratch + nb * (Q8P_BLOCK / 4);
    int32_t *corr = (int32_t *)(void *)(dx + (int64_t)in->n_tok * nb);
    *tk = (q8_tokens){in->xq, in->xq_row_bytes, nb, in->n_tok, dx, corr};
    for (int32_t t = 0; t < in->n_tok && !in->tables_ready; t++)
        for (int64_t b = 0; b < nb; b++) {
            const uint8_t *xb = (const uint8_t *)in->xq + (size_t)t * in->xq_row_bytes + (size_t)b * 34;
            dx[t * nb + b] = load_f16(xb);
            __m256i v = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(const void *)(xb + 2)),
                                         _mm256_set1_epi8((char)0x80));
            __m256i s = _mm256_sad_epu8(v, _mm256_setzero_si256());
            __m128i s2 = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
            int64_t sum = _mm_cvtsi128_si64(s2) + _mm_extract_epi64(s2, 1) - 32 * 128;
            corr[t * nb + b] = (int32_t)(bias * sum);
        }
    return (uint8_t *)scratch;
}

/* The transposes: 16 rows x 32 bytes (Q8_0: two rows per zmm, an 8x8 dword transpose in
 * each half, then a 2-source qword permute to put rows 0..15 in lane order) or
 * 16 rows x 16 bytes (Q4_0: four rows per zmm, a 4x4 transpose per 128-bit lane, then
 * the nibbles split). ~36 shuffles per 16 row-blocks. Q8_0 comes out as the stored int8,
 * Q4_0 as the nibbles 0..15 (the - 8 is taken off the dot as 8 * sum(x)). */
INLINE void transpose_block(uint32_t type, const uint8_t *const *rows, size_t off, __m512i t[8])
{
    if (type == GGML_TYPE_Q8_0) {
        const __m512i lo_idx = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13);
        const __m512i hi_idx = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
        __m512i z[8];
        CPU_UNROLL
        for (int a = 0; a < 8; a++)
            z[a] = _mm512_inserti64x4(
                _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(const void *)(rows[a] + off + 2))),
                _mm256_loadu_si256((const __m256i *)(const void *)(rows[a + 8] + off + 2)), 1);
        __m512i u[8];
        CPU_UNROLL
        for (int hh = 0; hh < 2; hh++) {
            const __m512i *zz = z + 4 * hh;
            __m512i a0 = _mm512_unpacklo_epi32(zz[0], zz[1]), a1 = _mm512_unpackhi_epi32(zz[0], zz[1]);
            __m512i a2 = _mm512_unpacklo_epi32(zz[2], zz[3]), a3 = _mm512_unpackhi_epi32(zz[2], zz[3]);
            u[4 * hh + 0] = _mm512_unpacklo_epi64(a0, a2);
            u[4 * hh + 1] = _mm512_unpackhi_epi64(a0, a2);
            u[4 * hh + 2] = _mm512_unpacklo_epi64(a1, a3);
            u[4 * hh + 3] = _mm512_unpackhi_epi64(a1, a3);
        }
        CPU_UNROLL
        for (int m = 0; m < 4; m++) {
            t[m] = _mm512_permutex2var_epi64(u[m], lo_idx, u[4 + m]);
            t[4 + m] = _mm512_permutex2var_epi64(u[m], hi_idx, u[4 + m]);
        }
        return;
    }
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    __m512i z[4];
    CPU_UNROLL
    for (int a = 0; a < 4; a++) {
        __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)(const void *)(rows[a] + off + 2)));
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(const void *)(rows[a + 4] + off + 2)), 1);
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(const void *)(rows[a + 8] + off + 2)), 2);
        z[a] = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(const void *)(rows[a + 12] + off + 2)), 3);
    }
    __m512i a0 = _mm512_unpacklo_epi32(z[0], z[1]), a1 = _mm512_unpackhi_epi32(z[0], z[1]);
    __m512i a2 = _mm512_unpacklo_epi32(z[2], z[3]), a3 = _mm512_unpackhi_epi32(z[2], z[3]);
    __m512i p[4] = {_mm512_unpacklo_epi64(a0, a2), _mm512_unpackhi_epi64(a0, a2),
                    _mm512_unpacklo_epi64(a1, a3), _mm512_unpackhi_epi64(a1, a3)};
    CPU_UNROLL
    for (int g = 0; g < 4; g++) {
        t[g] = _mm512_and_si512(p[g], m4);
        t[g + 4] = _mm512_and_si512(_mm512_srli_epi32(p[g], 4), m4);
    }
}

void cpu_q8_avx512_panel(uint32_t type, const uint8_t *const *rows, int64_t nb, uint8_t *panel,
                         cpu_prefetch_run *pf)
{
    const size_t bb = type == GGML_TYPE_Q8_0 ? 34 : 18;
    const q8_scale_gather sg = cpu_q8_avx512_scale_gather(rows);
    for (int64_t b = 0; b < nb; b++) {
        uint8_t *dst = panel + b * Q8P_BLOCK;
        const size_t off = (size_t)b * bb;
        if (pf)
            cpu_prefetch_run_step(pf);
        __m512i t[8];
        if (type == GGML_TYPE_Q8_0)
            transpose_block(GGML_TYPE_Q8_0, rows, off, t);
        else
            transpose_block(GGML_TYPE_Q4_0, rows, off, t);
        CPU_UNROLL
        for (int g = 0; g < 8; g++)
            _mm512_store_si512((void *)(dst + 64 * g), t[g]);
        _mm512_store_ps((void *)(dst + 512), cpu_q8_avx512_scales(rows, &sg, off));
    }
}

/* One block of one token against the 16 transposed rows: vpdpbusd multiplies u8 by s8,
 * so Q8_0's weights go in as u8 = w + 128 (w ^ 0x80) and Q4_0's as the nibbles, and
 * the bias comes off as tk->corr = 128 * sum(x) or 8 * sum(x): the exact isum of 16
 * rows. Then acc = fma(dw * dx, isum, acc) per lane. */
INLINE __m512 q8_step(const __m512i wv[8], __m512 dw, const q8_tokens *tk, int32_t t, int64_t b,
                      __m512 acc)
{
    const uint8_t *xb = tk->xq + (size_t)t * tk->row_bytes + (size_t)b * 34 + 2;
    __m512i s = _mm512_setzero_si512();
    CPU_UNROLL
    for (int g = 0; g < 8; g++) {
        int32_t xd;
        memcpy(&xd, xb + 4 * g, 4);
        s = _mm512_dpbusd_epi32(s, wv[g], _mm512_set1_epi32(xd));
    }
    s = _mm512_sub_epi32(s, _mm512_set1_epi32(tk->corr[t * tk->nb + b]));
    __m512 sc = _mm512_mul_ps(dw, _mm512_set1_ps(tk->dx[t * tk->nb + b]));
    return _mm512_fmadd_ps(sc, _mm512_cvtepi32_ps(s), acc);
}

INLINE void vnni_operand(uint32_t type, __m512i wv[8])
{
    if (type == GGML_TYPE_Q8_0)
        CPU_UNROLL
        for (int g = 0; g < 8; g++)
            wv[g] = _mm512_xor_si512(wv[g], _mm512_set1_epi8((char)0x80));
}

/* NT tokens against a stored panel. Bound: vpdpbusd, 8 per block per token (32 x 16
 * multiply-adds), plus 4 ops of scaling per block per token. Measured (8192 x 2048,
 * n_tok 128, one thread, shared machine): Q4_0 139 GMAC/s, Q8_0 118 GMAC/s. */
INLINE void q8_chunk(uint32_t type, const uint8_t *panel, const q8_tokens *tk, int32_t t, int NT,
                     float *y, int64_t n_rows, int64_t r0, __mmask16 keep)
{
    __m512 acc[8];
    CPU_UNROLL
    for (int j = 0; j < NT; j++)
        acc[j] = _mm512_setzero_ps();
    for (int64_t b = 0; b < tk->nb; b++) {
        const uint8_t *pb = panel + b * Q8P_BLOCK;
        __m512i wv[8];
        CPU_UNROLL
        for (int g = 0; g < 8; g++)
            wv[g] = _mm512_load_si512((const void *)(pb + 64 * g));
        vnni_operand(type, wv);
        const __m512 dw = _mm512_load_ps((const void *)(pb + 512));
        CPU_UNROLL
        for (int j = 0; j < NT; j++)
            acc[j] = q8_step(wv, dw, tk, t + j, b, acc[j]);
    }
    CPU_UNROLL
    for (int j = 0; j < NT; j++)
        _mm512_mask_storeu_ps(y + (size_t)(t + j) * (size_t)n_rows + (size_t)r0, keep, acc[j]);
}

INLINE void q8_tokens_t(uint32_t type, const uint8_t *panel, const q8_tokens *tk, int32_t t0,
                        int32_t t1, float *y, int64_t n_rows, int64_t r0, __mmask16 keep)
{
    for (int32_t t = t0; t < t1;) {
        const int left = t1 - t, nt = left >= 8 ? 8 : left >= 4 ? 4 : left >= 2 ? 2 : 1;
        switch (nt) {
        case 8: q8_chunk(type, panel, tk, t, 8, y, n_rows, r0, keep); break;
        case 4: q8_chunk(type, panel, tk, t, 4, y, n_rows, r0, keep); break;
        case 2: q8_chunk(type, panel, tk, t, 2, y, n_rows, r0, keep); break;
        default: q8_chunk(type, panel, tk, t, 1, y, n_rows, r0, keep); break;
        }
        t += nt;
    }
}

void cpu_q8_avx512_tokens(uint32_t type, const uint8_t *panel, const q8_tokens *tk, int32_t t0,
                          int32_t t1, float *y, int64_t n_rows, int64_t r0, int nr)
{
    const __mmask16 keep = (__mmask16)((1u << nr) - 1);
    if (type == GGML_TYPE_Q8_0)
        q8_tokens_t(GGML_TYPE_Q8_0, panel, tk, t0, t1, y, n_rows, r0, keep);
    else
        q8_tokens_t(GGML_TYPE_Q4_0, panel, tk, t0, t1, y, n_rows, r0, keep);
}

/* Generation (NT <= 4 tokens): the transposed block goes straight from registers into
 * the dot, no panel in memory. Bound by memory: ~5 ops per row-block (the transpose,
 * 8 vpdpbusd per 16 rows, the scale gather, prefetch). Measured (8192 x 2048, 600 MB of
 * copies, shared machine): Q4_0 10.7-11.2 GB/s, Q8_0 10.6-11.6 GB/s on 1-2 threads,
 * 76-88% of a streaming read at the same moment (without the prefetch: ~35%). */
INLINE void q8_gemv(uint32_t type, const uint8_t *const *rows, const q8_tokens *tk, int NT,
                    float *y, int64_t n_rows, int64_t r0, __mmask16 keep, cpu_prefetch_run *pf)
{
    const size_t bb = type == GGML_TYPE_Q8_0 ? 34 : 18;
    const q8_scale_gather sg = cpu_q8_avx512_scale_gather(rows);
    __m512 acc[4];
    CPU_UNROLL
    for (int j = 0; j < NT; j++)
        acc[j] = _mm512_setzero_ps();
    for (int64_t b = 0; b < tk->nb; b++) {
        const size_t off = (size_t)b * bb;
        cpu_prefetch_run_step(pf);
        __m512i wv[8];
        transpose_block(type, rows, off, wv);
        vnni_operand(type, wv);
        const __m512 dw = cpu_q8_avx512_scales(rows, &sg, off);
        CPU_UNROLL
        for (int j = 0; j < NT; j++)
            acc[j] = q8_step(wv, dw, tk, j, b, acc[j]);
    }
    CPU_UNROLL
    for (int j = 0; j < NT; j++)
        _mm512_mask_storeu_ps(y + (size_t)j * (size_t)n_rows + (size_t)r0, keep, acc[j]);
}

INLINE void q8_rows(uint32_t type, const tensor_view *w, const matmul_input *in, float *y,
                    int64_t r0, int64_t r1, float *scratch)
{
    q8_tokens tk;
    uint8_t *panel = cpu_q8_avx512_setup(in, type, scratch, &tk);
    const uint8_t *end = (const uint8_t *)w->data + (size_t)w->n_rows * w->row_bytes;
    for (int64_t r = r0; r < r1; r += Q8P_ROWS) {
        const int nr = r1 - r < Q8P_ROWS ? (int)(r1 - r) : Q8P_ROWS;
        const __mmask16 keep = (__mmask16)((1u << nr) - 1);
        const uint8_t *rows[Q8P_ROWS];
        for (int i = 0; i < Q8P_ROWS; i++)
            rows[i] = (const uint8_t *)w->data + (size_t)(r + (i < nr ? i : nr - 1)) * w->row_bytes;
        /* the next panel: the rows after this one's, up to r1 */
        const size_t next = (size_t)(r1 - r > 2 * Q8P_ROWS ? Q8P_ROWS : r1 - r - nr) * w->row_bytes;
        cpu_prefetch_run pf = cpu_prefetch_run_init(rows[0] + Q8P_ROWS * w->row_bytes, next, end, tk.nb);
        switch (in->n_tok) {
        case 1: q8_gemv(type, rows, &tk, 1, y, w->n_rows, r, keep, &pf); break;
        case 2: q8_gemv(type, rows, &tk, 2, y, w->n_rows, r, keep, &pf); break;
        case 3: q8_gemv(type, rows, &tk, 3, y, w->n_rows, r, keep, &pf); break;
        case 4: q8_gemv(type, rows, &tk, 4, y, w->n_rows, r, keep, &pf); break;
        default:
            cpu_q8_avx512_panel(type, rows, tk.nb, panel, &pf);
            q8_tokens_t(type, panel, &tk, 0, in->n_tok, y, w->n_rows, r, keep);
        }
    }
}

/* Per 16-row panel: up to 4 tokens straight from the transposed registers; more, from a
 * panel transposed once into scratch and reused by every token. */
void cpu_matmul_q8_avx512(const tensor_view *w, const matmul_input *in, float *y, int64_t r0,
                          int64_t r1, float *scratch)
{
    if (w->type == GGML_TYPE_Q8_0)
        q8_rows(GGML_TYPE_Q8_0, w, in, y, r0, r1, scratch);
    else
        q8_rows(GGML_TYPE_Q4_0, w, in, y, r0, r1, scratch);
}
