/* cpu_packed_avx512.c - Q8_0/Q4_0 matmul by VNNI over weights repacked at bind time
 * (cpu_repack.c; layout in cpu_ops.h): generation and the token tails of the AMX
 * kernel. Built with the AVX-512 flags (-mavx512f/bw/vl/vnni -ffp-contract=off), reached
 * only through the AVX-512 tables. Same bits as cpu_matmul_q8_avx512 (cpu_simd.h). */
#include <immintrin.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "backend/cpu/cpu_q8_avx512.h"
#include "backend/cpu/cpu_simd.h"
#include "tensor/types.h"

#define INLINE static inline __attribute__((always_inline))

/* Generation streams the panels from memory: per block, the same block of the next
 * panel into L2 (cpu_prefetch_next_panel_l2). Measured on the 1B layer sequence (16 x
 * q, k, v, o, gate, up, down + output, 2 threads): no prefetch reads at ~75% of the
 * prefetched speed; PREFETCHT1 1 panel ahead beat 2, 4 and 8 panels by 2-6% (Q4_0 and
 * Q8_0, medians of interleaved passes), and a fixed 4-16 KiB distance by 1-4%; NTA
 * halved the speed. */

/* Block b's 16 rows as the u8 operands of vpdpbusd: Q8_0 as w + 128 (bias 128), Q4_0 as
 * the low nibbles 0..15 (bias 8) in wv[0..3] and the high ones as 16 x (0..15), masked
 * in place, in wv[4..7] (step divides their sum by 16: one shift per block instead of
 * one per vector); tk->corr takes the bias off (cpu_q8_avx512_setup). */
INLINE void load_block(uint32_t type, const uint8_t *q, __m512i wv[8])
{
    if (type == GGML_TYPE_Q8_0) {
        CPU_UNROLL
        for (int g = 0; g < 8; g++)
            wv[g] = _mm512_xor_si512(_mm512_load_si512((const void *)(q + 64 * g)),
                                     _mm512_set1_epi8((char)0x80));
        return;
    }
    const __m512i m4 = _mm512_set1_epi8(0x0f);
    CPU_UNROLL
    for (int g = 0; g < 4; g++) {
        __m512i v = _mm512_load_si512((const void *)(q + 64 * g));
        wv[g] = _mm512_and_si512(v, m4);
        wv[g + 4] = _mm512_and_si512(v, _mm512_set1_epi8((char)0xf0));
    }
}

/* One block of token t: the exact isum of the 16 rows (two chains of four vpdpbusd, the
 * first starting at -corr; Q4_0's second holds 16 x the high nibbles' sum, an exact
 * multiple of 16; integers, so any order gives the same isum), then
 * acc = fma(dw * dx, isum, acc) as cpu_simd.h says. */
INLINE __m512 step(uint32_t type, const __m512i wv[8], __m512 dw, const q8_tokens *tk, int32_t t,
                   int64_t b, __m512 acc)
{
    const uint8_t *xb = tk->xq + (size_t)t * tk->row_bytes + (size_t)b * 34 + 2;
    __m512i s0 = _mm512_set1_epi32(-tk->corr[t * tk->nb + b]), s1 = _mm512_setzero_si512();
    __m512i s;
    if (type == GGML_TYPE_Q4_0) {
        CPU_UNROLL
        for (int g = 0; g < 4; g++) {
            int32_t x0, x1;
            memcpy(&x0, xb + 4 * g, 4);
            memcpy(&x1, xb + 16 + 4 * g, 4);
            s0 = _mm512_dpbusd_epi32(s0, wv[g], _mm512_set1_epi32(x0));
            s1 = _mm512_dpbusd_epi32(s1, wv[g + 4], _mm512_set1_epi32(x1));
        }
        s = _mm512_add_epi32(s0, _mm512_srai_epi32(s1, 4));
    } else {
        CPU_UNROLL
        for (int g = 0; g < 8; g += 2) {
            int32_t x0, x1;
            memcpy(&x0, xb + 4 * g, 4);
            memcpy(&x1, xb + 4 * g + 4, 4);
            s0 = _mm512_dpbusd_epi32(s0, wv[g], _mm512_set1_epi32(x0));
            s1 = _mm512_dpbusd_epi32(s1, wv[g + 1], _mm512_set1_epi32(x1));
        }
        s = _mm512_add_epi32(s0, s1);
    }
    __m512 sc = _mm512_mul_ps(dw, _mm512_set1_ps(tk->dx[t * tk->nb + b]));
    return _mm512_fmadd_ps(sc, _mm512_cvtepi32_ps(s), acc);
}

/* NT tokens from t0 against one panel. Per block: 4 or 8 loads, 8-12 ops to make the
 * operands, then per token 8 vpdpbusd and 5 ops; no transpose, no gather. `stream`: this
 * pass reads the panel from beyond L1 (the first over it). */
INLINE void chunk(uint32_t type, const cpu_packed *w, const uint8_t *panel, const q8_tokens *tk,
                  int32_t t0, int NT, float *y, int64_t r0, __mmask16 keep, bool prefetch,
                  bool stream)
{
    const uint8_t *scales = panel + (size_t)tk->nb * w->wq_bytes;
    const int lines = type == GGML_TYPE_Q8_0 ? 8 : 4;   /* 64-byte lines per block */
    __m512 acc[8];
    CPU_UNROLL
    for (int j = 0; j < NT; j++)
        acc[j] = _mm512_setzero_ps();
    for (int64_t b = 0; b < tk->nb; b++) {
        const uint8_t *q = panel + (size_t)b * w->wq_bytes;
        if (prefetch)   /* into L2: L1 has too few miss buffers for this distance */
            cpu_prefetch_next_panel_l2(q, lines, scales + 32 * b, w->panel_bytes);
        if (stream)
            cpu_prefetch_panel_l1(q, lines);
        __m512i wv[8];
        load_block(type, q, wv);
        const __m512 dw = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(const void *)(scales + 32 * b)));
        CPU_UNROLL
        for (int j = 0; j < NT; j++)
            acc[j] = step(type, wv, dw, tk, t0 + j, b, acc[j]);
    }
    CPU_UNROLL
    for (int j = 0; j < NT; j++)
        _mm512_mask_storeu_ps(y + (size_t)(t0 + j) * (size_t)w->n_rows + (size_t)r0, keep, acc[j]);
}

/* Tokens [t0, t1) in chunks of up to 8. The first chunk streams the panel in; one of at
 * most 4 tokens also asks for the next panel if `prefetch`. The others find it in cache. */
INLINE void tokens_t(uint32_t type, const cpu_packed *w, const uint8_t *panel, const q8_tokens *tk,
                     int32_t t0, int32_t t1, float *y, int64_t r0, __mmask16 keep,
                     bool prefetch)
{
    for (int32_t t = t0; t < t1;) {
        const int left = t1 - t, nt = left >= 8 ? 8 : left >= 4 ? 4 : left >= 2 ? 2 : 1;
        const bool stream = t == t0;
        switch (nt) {
        case 8: chunk(type, w, panel, tk, t, 8, y, r0, keep, false, stream); break;
        case 4: chunk(type, w, panel, tk, t, 4, y, r0, keep, prefetch, stream); break;
        case 2: chunk(type, w, panel, tk, t, 2, y, r0, keep, prefetch, stream); break;
        default: chunk(type, w, panel, tk, t, 1, y, r0, keep, prefetch, stream); break;
        }
        prefetch = false;
        t += nt;
    }
}

/* Panel p, tokens [t0, t1); pf_end: where prefetching stops (the end of this thread's
 * panels), or NULL for none. */
static void panel_tokens(const cpu_packed *w, const q8_tokens *tk, int64_t p, int32_t t0,
                         int32_t t1, float *y, const uint8_t *pf_end)
{
    const uint8_t *panel = w->data + (size_t)p * w->panel_bytes;
    const int64_t r0 = p * CPU_PANEL_ROWS;
    const int nr = w->n_rows - r0 < CPU_PANEL_ROWS ? (int)(w->n_rows - r0) : CPU_PANEL_ROWS;
    const __mmask16 keep = (__mmask16)((1u << nr) - 1);
    const bool prefetch = cpu_next_panel_is_ours(w, panel, pf_end);
    if (w->type == GGML_TYPE_Q8_0)
        tokens_t(GGML_TYPE_Q8_0, w, panel, tk, t0, t1, y, r0, keep, prefetch);
    else
        tokens_t(GGML_TYPE_Q4_0, w, panel, tk, t0, t1, y, r0, keep, prefetch);
}

void cpu_packed_avx512_tokens(const cpu_packed *w, const q8_tokens *tk, int64_t p, int32_t t0,
                              int32_t t1, float *y)
{
    panel_tokens(w, tk, p, t0, t1, y, NULL);
}

/* Measured: see doc/performance.md (generation at the memory's speed). */
void cpu_matmul_packed_avx512(const cpu_packed *w, const matmul_input *in, float *y, int64_t p0,
                              int64_t p1, int64_t pf_panel_end, float *scratch)
{
    q8_tokens tk;
    (void)cpu_q8_avx512_setup(in, w->type, scratch, &tk);
    const uint8_t *pf_end = w->data + (size_t)(pf_panel_end > p1 ? pf_panel_end : p1) * w->panel_bytes;
    for (int64_t p = p0; p < p1; p++)
        panel_tokens(w, &tk, p, 0, in->n_tok, y, pf_end);
}
