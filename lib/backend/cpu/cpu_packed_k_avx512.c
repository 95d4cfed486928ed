/* cpu_packed_k_avx512.c - Q4_K and Q6_K matmul by VNNI over weights repacked at bind
 * time (cpu_repack.c): each 256-block of a 16-row panel is a run of vectors, lane n
 * holding row n's dword j of the block. Q4_K: 36 vectors (j = 0: d and dmin; 1-3: the
 * twelve bytes of 6-bit scales and mins; 4-35: the 128 bytes of nibbles). Q6_K: 52
 * vectors (ql 0-31, qh 32-47, the int8 scales 48-51) and its f16 d in the panel's
 * scales region, as Q8_0/Q4_0 keep theirs. With rows in lanes one load feeds 16 rows,
 * and nothing is unpacked into scratch per call as the AVX2 kernel does row by row
 * (which held generation to ~40% of the memory's speed). Built with the AVX-512 flags,
 * reached only through the AVX-512 tables. Same bits as cpu_matmul_k_avx2 (cpu_simd.h):
 * the integer sums are exact in any order, and each lane takes that kernel's float
 * steps. */
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "backend/cpu/cpu_simd.h"
#include "tensor/types.h"

#define INLINE static inline __attribute__((always_inline))

/* A Q8_K block of x: f32 d at 0, int8 qs[256] at X_QS, int16 bsums[16] at X_BSUMS. */
#define X_BLOCK 292
#define X_QS 4
#define X_BSUMS 260

/* As for Q8_0/Q4_0 (cpu_packed_avx512.c): a prefetch run one panel ahead into L2, a
 * slice per block. */
#define PF_PANELS 1

/* The scales of one block's 16 rows, decoded from vectors 1-3 (bytes s[0..11] of each
 * row): for sub-block j < 4, sc = s[j] & 63, m = s[j + 4] & 63; for j >= 4,
 * sc = (s[j + 4] & 15) | (s[j - 4] >> 6) << 4, m = (s[j + 4] >> 4) | (s[j] >> 6) << 4.
 * sc[j] is an int32 per lane; mm[j] holds m_j in both int16 halves, so that one
 * vpdpwssd against the bsums pair (2j, 2j+1) gives m_j * (bsum_2j + bsum_2j+1). */
typedef struct q4k_scales {
    __m512 d, dmin;
    __m512i sc[8], mm[8];
} q4k_scales;

INLINE void decode_scales(const uint8_t *blk, q4k_scales *s)
{
    const __m512i v0 = _mm512_load_si512((const void *)blk);
    s->d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(v0));
    s->dmin = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(v0, 16)));
    const __m512i a = _mm512_load_si512((const void *)(blk + 64));    /* s[0..3] */
    const __m512i b = _mm512_load_si512((const void *)(blk + 128));   /* s[4..7] */
    const __m512i c = _mm512_load_si512((const void *)(blk + 192));   /* s[8..11] */
    const __m512i m6 = _mm512_set1_epi32(63), m4 = _mm512_set1_epi32(15);
    const __m512i m2 = _mm512_set1_epi32(3), lo16 = _mm512_set1_epi32(0x00010001);
    CPU_UNROLL
    for (int j = 0; j < 4; j++) {
        const int sh = 8 * j;
        s->sc[j] = _mm512_and_si512(_mm512_srli_epi32(a, sh), m6);
        const __m512i m = _mm512_and_si512(_mm512_srli_epi32(b, sh), m6);
        s->mm[j] = _mm512_mullo_epi32(m, lo16);
        s->sc[j + 4] = _mm512_or_si512(
            _mm512_and_si512(_mm512_srli_epi32(c, sh), m4),
            _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(a, sh + 6), m2), 4));
        const __m512i mh = _mm512_or_si512(
            _mm512_and_si512(_mm512_srli_epi32(c, sh + 4), m4),
            _mm512_slli_epi32(_mm512_and_si512(_mm512_srli_epi32(b, sh + 6), m2), 4));
        s->mm[j + 4] = _mm512_mullo_epi32(mh, lo16);
    }
}

/* Token t's block b, whose weights' sub-block pair c (nibble vectors 8c..8c+7) are in
 * lo (the low nibbles: sub-block 2c) and hi (the high ones times 16: sub-block 2c+1,
 * masked in place; the dot is divided by 16 once, exactly). Adds sc_2c * dot_2c +
 * sc_2c+1 * dot_2c+1 to isum. */
INLINE __m512i pair_dot(const __m512i lo[8], const __m512i hi[8], const int8_t *xq,
                        const q4k_scales *s, int c, __m512i isum)
{
    __m512i d0 = _mm512_setzero_si512(), d1 = _mm512_setzero_si512();
    CPU_UNROLL
    for (int g = 0; g < 8; g++) {
        int32_t x0, x1;
        memcpy(&x0, xq + 64 * c + 4 * g, 4);
        memcpy(&x1, xq + 64 * c + 32 + 4 * g, 4);
        d0 = _mm512_dpbusd_epi32(d0, lo[g], _mm512_set1_epi32(x0));
        d1 = _mm512_dpbusd_epi32(d1, hi[g], _mm512_set1_epi32(x1));
    }
    isum = _mm512_add_epi32(isum, _mm512_mullo_epi32(s->sc[2 * c], d0));
    return _mm512_add_epi32(isum, _mm512_mullo_epi32(s->sc[2 * c + 1], _mm512_srai_epi32(d1, 4)));
}

/* The float steps of one block for one token: acc = fma(d dx, isum, acc), then
 * acc = fma(-(dmin dx), imin, acc), imin from the bsums. */
INLINE __m512 finish_block(const q4k_scales *s, const uint8_t *xb, __m512i isum, __m512 acc)
{
    float dx;
    memcpy(&dx, xb, 4);
    __m512i imin = _mm512_setzero_si512();
    CPU_UNROLL
    for (int j = 0; j < 8; j++) {
        int32_t bs;
        memcpy(&bs, xb + X_BSUMS + 4 * j, 4);   /* bsum 2j, bsum 2j+1 */
        imin = _mm512_dpwssd_epi32(imin, s->mm[j], _mm512_set1_epi32(bs));
    }
    const __m512 vdx = _mm512_set1_ps(dx);
    acc = _mm512_fmadd_ps(_mm512_mul_ps(s->d, vdx), _mm512_cvtepi32_ps(isum), acc);
    const __m512 nmin = _mm512_castsi512_ps(_mm512_xor_si512(   /* exact negation */
        _mm512_castps_si512(_mm512_mul_ps(s->dmin, vdx)), _mm512_set1_epi32(INT32_MIN)));
    return _mm512_fmadd_ps(nmin, _mm512_cvtepi32_ps(imin), acc);
}

/* NT tokens from t0 against one Q4_K panel (y: [n_tok][n_rows], rows r0.. under keep):
 * per block the scales once, per sub-block pair
 * eight loads and sixteen masks, then per token 16 vpdpbusd and the scale products. */
INLINE void chunk_q4k(const cpu_packed *w, const uint8_t *panel, const matmul_input *in, int32_t t0,
                  int NT, float *y, int64_t r0, __mmask16 keep, cpu_prefetch_run *pf)
{
    __m512 acc[8];
    CPU_UNROLL
    for (int j = 0; j < NT; j++)
        acc[j] = _mm512_setzero_ps();
    const __m512i m_lo = _mm512_set1_epi8(0x0f), m_hi = _mm512_set1_epi8((char)0xf0);
    for (int64_t b = 0; b < w->nb; b++) {
        const uint8_t *blk = panel + (size_t)b * w->wq_bytes;
        if (pf)   /* into L2, as the Q8_0/Q4_0 kernel does */
            cpu_prefetch_run_step_l2(pf);
        q4k_scales s;
        decode_scales(blk, &s);
        __m512i isum[8];
        CPU_UNROLL
        for (int j = 0; j < NT; j++)
            isum[j] = _mm512_setzero_si512();
        CPU_UNROLL
        for (int c = 0; c < 4; c++) {
            __m512i lo[8], hi[8];
            CPU_UNROLL
            for (int g = 0; g < 8; g++) {
                const __m512i v = _mm512_load_si512((const void *)(blk + 64 * (4 + 8 * c + g)));
                lo[g] = _mm512_and_si512(v, m_lo);
                hi[g] = _mm512_and_si512(v, m_hi);
            }
            CPU_UNROLL
            for (int j = 0; j < NT; j++) {
                const uint8_t *xb = (const uint8_t *)in->xq +
                                    (size_t)(t0 + j) * in->xq_row_bytes + (size_t)b * X_BLOCK;
                isum[j] = pair_dot(lo, hi, (const int8_t *)(xb + X_QS), &s, c, isum[j]);
            }
        }
        CPU_UNROLL
        for (int j = 0; j < NT; j++)
            acc[j] = finish_block(&s, (const uint8_t *)in->xq + (size_t)(t0 + j) * in->xq_row_bytes +
                                          (size_t)b * X_BLOCK,
                                  isum[j], acc[j]);
    }
    CPU_UNROLL
    for (int j = 0; j < NT; j++)
        _mm512_mask_storeu_ps(y + (size_t)(t0 + j) * (size_t)w->n_rows + (size_t)r0, keep, acc[j]);
}

/* ---- Q6_K -------------------------------------------------------------------------- */

/* Element e of a Q6_K block is ql's nibble | qh's 2-bit field << 4, minus 32. In half h
 * (128 elements), ql dword g (bytes 4g.., g < 8) and ql dword 8 + g (bytes 32 + 4g..)
 * with qh dword g give four vectors of 6-bit values: elements 128h + 4g + {0, 32, 64,
 * 96}, in 16-element groups 8h + g/4 + {0, 2, 4, 6}. */
INLINE void q6_quads(const uint8_t *blk, int h, int g, __m512i w[4])
{
    const __m512i lo = _mm512_load_si512((const void *)(blk + 64 * (16 * h + g)));
    const __m512i hi = _mm512_load_si512((const void *)(blk + 64 * (16 * h + 8 + g)));
    const __m512i qh = _mm512_load_si512((const void *)(blk + 64 * (32 + 8 * h + g)));
    const __m512i m4 = _mm512_set1_epi8(0x0f), m30 = _mm512_set1_epi8(0x30);
    /* dword shifts, then byte masks that keep only bits that stayed in their byte */
    w[0] = _mm512_or_si512(_mm512_and_si512(lo, m4), _mm512_and_si512(_mm512_slli_epi32(qh, 4), m30));
    w[1] = _mm512_or_si512(_mm512_and_si512(hi, m4), _mm512_and_si512(_mm512_slli_epi32(qh, 2), m30));
    w[2] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(lo, 4), m4), _mm512_and_si512(qh, m30));
    w[3] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32(hi, 4), m4),
                           _mm512_and_si512(_mm512_srli_epi32(qh, 2), m30));
}

/* NT tokens from t0 against one Q6_K panel. Per block: the 16 scales per lane (int32)
 * and as int16 pairs; per quarter (h, 4 dwords) 12 loads and 16 six-bit vectors, then
 * per token 16 vpdpbusd into four group sums, each times its scale into isum. Then
 * isum - 32 * sum_j sc_j bsum_j (by vpdpwssd against the bsum pairs) is the contract's
 * sum_j sc_j sum (q - 32) x, and acc = fma(d dx, isum, acc). */
INLINE void chunk_q6(const cpu_packed *w, const uint8_t *panel, const matmul_input *in, int32_t t0,
                     int NT, float *y, int64_t r0, __mmask16 keep, cpu_prefetch_run *pf)
{
    const uint8_t *scales = panel + (size_t)w->nb * w->wq_bytes;
    __m512 acc[4];
    CPU_UNROLL
    for (int j = 0; j < NT; j++)
        acc[j] = _mm512_setzero_ps();
    for (int64_t b = 0; b < w->nb; b++) {
        const uint8_t *blk = panel + (size_t)b * w->wq_bytes;
        if (pf)
            cpu_prefetch_run_step_l2(pf);
        __m512i sc[16], scp[8];
        CPU_UNROLL
        for (int k = 0; k < 4; k++) {
            const __m512i v = _mm512_load_si512((const void *)(blk + 64 * (48 + k)));
            CPU_UNROLL
            for (int i = 0; i < 4; i++)
                sc[4 * k + i] = _mm512_srai_epi32(_mm512_slli_epi32(v, 24 - 8 * i), 24);
            /* (sc 4k, sc 4k+1) and (sc 4k+2, sc 4k+3) as int16 pairs: a = the low
             * bytes of the two 16-bit halves sign-extended (sc 4k, sc 4k+2), b = the high
             * ones (sc 4k+1, sc 4k+3) */
            const __m512i a = _mm512_srai_epi16(_mm512_slli_epi16(v, 8), 8);
            const __m512i bh = _mm512_srai_epi16(v, 8);
            const __m512i lo16 = _mm512_set1_epi32(0xffff);
            scp[2 * k] = _mm512_or_si512(_mm512_and_si512(a, lo16), _mm512_slli_epi32(bh, 16));
            scp[2 * k + 1] = _mm512_or_si512(_mm512_srli_epi32(a, 16), _mm512_andnot_si512(lo16, bh));
        }
        __m512i isum[4];
        CPU_UNROLL
        for (int j = 0; j < NT; j++)
            isum[j] = _mm512_setzero_si512();
        CPU_UNROLL
        for (int h = 0; h < 2; h++)
            CPU_UNROLL
            for (int gq = 0; gq < 2; gq++) {
                __m512i dot[4][4];
                CPU_UNROLL
                for (int j = 0; j < NT; j++)
                    dot[j][0] = dot[j][1] = dot[j][2] = dot[j][3] = _mm512_setzero_si512();
                CPU_UNROLL
                for (int g = 4 * gq; g < 4 * gq + 4; g++) {
                    __m512i wv[4];
                    q6_quads(blk, h, g, wv);
                    CPU_UNROLL
                    for (int j = 0; j < NT; j++) {
                        const uint8_t *xq = (const uint8_t *)in->xq +
                                            (size_t)(t0 + j) * in->xq_row_bytes +
                                            (size_t)b * X_BLOCK + X_QS + 128 * h + 4 * g;
                        CPU_UNROLL
                        for (int f = 0; f < 4; f++) {
                            int32_t x;
                            memcpy(&x, xq + 32 * f, 4);
                            dot[j][f] = _mm512_dpbusd_epi32(dot[j][f], wv[f], _mm512_set1_epi32(x));
                        }
                    }
                }
                CPU_UNROLL
                for (int j = 0; j < NT; j++)
                    CPU_UNROLL
                    for (int f = 0; f < 4; f++)
                        isum[j] = _mm512_add_epi32(
                            isum[j], _mm512_mullo_epi32(sc[8 * h + gq + 2 * f], dot[j][f]));
            }
        const __m512 d = _mm512_cvtph_ps(
            _mm256_load_si256((const __m256i *)(const void *)(scales + 32 * b)));
        CPU_UNROLL
        for (int j = 0; j < NT; j++) {
            const uint8_t *xb = (const uint8_t *)in->xq + (size_t)(t0 + j) * in->xq_row_bytes +
                                (size_t)b * X_BLOCK;
            __m512i m = _mm512_setzero_si512();
            CPU_UNROLL
            for (int i = 0; i < 8; i++) {
                int32_t bs;
                memcpy(&bs, xb + X_BSUMS + 4 * i, 4);   /* bsum 2i, bsum 2i+1 */
                m = _mm512_dpwssd_epi32(m, scp[i], _mm512_set1_epi32(bs));
            }
            float dx;
            memcpy(&dx, xb, 4);
            const __m512i is = _mm512_sub_epi32(isum[j], _mm512_slli_epi32(m, 5));
            acc[j] = _mm512_fmadd_ps(_mm512_mul_ps(d, _mm512_set1_ps(dx)), _mm512_cvtepi32_ps(is),
                                     acc[j]);
        }
    }
    CPU_UNROLL
    for (int j = 0; j < NT; j++)
        _mm512_mask_storeu_ps(y + (size_t)(t0 + j) * (size_t)w->n_rows + (size_t)r0, keep, acc[j]);
}

/* Panel p, every token: chunks of 8 (Q4_K), 4, 2 and 1; the first reads the panel from memory
 * and steps the prefetch run, which stops at pf_end. */
static void panel_tokens(const cpu_packed *w, const matmul_input *in, int64_t p, float *y,
                         const uint8_t *pf_end)
{
    const uint8_t *panel = w->data + (size_t)p * w->panel_bytes;
    const int64_t r0 = p * CPU_PANEL_ROWS;
    const int nr = w->n_rows - r0 < CPU_PANEL_ROWS ? (int)(w->n_rows - r0) : CPU_PANEL_ROWS;
    const __mmask16 keep = (__mmask16)((1u << nr) - 1);
    cpu_prefetch_run run = cpu_prefetch_run_init(panel + PF_PANELS * w->panel_bytes,
                                                 w->panel_bytes, pf_end, w->nb);
    cpu_prefetch_run *pf = &run;
    for (int32_t t = 0; t < in->n_tok;) {
        /* Q4_K takes 8 tokens at a time (6% faster prompts than 4); Q6_K's 4 group
         * sums per token leave registers for 4 */
        const int left = in->n_tok - t;
        const int nt = left >= 8 && w->type == GGML_TYPE_Q4_K ? 8
                       : left >= 4                               ? 4
                       : left >= 2                               ? 2
                                                                 : 1;
        if (w->type == GGML_TYPE_Q6_K) {
            switch (nt) {
            case 4: chunk_q6(w, panel, in, t, 4, y, r0, keep, pf); break;
            case 2: chunk_q6(w, panel, in, t, 2, y, r0, keep, pf); break;
            default: chunk_q6(w, panel, in, t, 1, y, r0, keep, pf); break;
            }
        } else {
            switch (nt) {
            case 8: chunk_q4k(w, panel, in, t, 8, y, r0, keep, pf); break;
            case 4: chunk_q4k(w, panel, in, t, 4, y, r0, keep, pf); break;
            case 2: chunk_q4k(w, panel, in, t, 2, y, r0, keep, pf); break;
            default: chunk_q4k(w, panel, in, t, 1, y, r0, keep, pf); break;
            }
        }
        pf = NULL;
        t += nt;
    }
}

/* Measured: see doc/performance.md (Q4_K, Q6_K). */
void cpu_matmul_packed_k_avx512(const cpu_packed *w, const matmul_input *in, float *y,
                                  int64_t p0, int64_t p1, int64_t pf_panel_end, float *scratch)
{
    (void)scratch;
    const uint8_t *pf_end = w->data + (size_t)(pf_panel_end > p1 ? pf_panel_end : p1) * w->panel_bytes;
    for (int64_t p = p0; p < p1; p++)
        panel_tokens(w, in, p, y, pf_end);
}
