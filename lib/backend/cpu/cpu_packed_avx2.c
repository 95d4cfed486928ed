/* cpu_packed_avx2.c - Q8_0/Q4_0 matmul by AVX2 maddubs over the 16-row panels that
 * bind_weight repacked (cpu_repack.c; layout in cpu_ops.h): each 64-byte vector of a
 * block is two 32-byte halves, rows 0-7 and rows 8-15 in lanes, which is what an 8-lane
 * AVX2 dot wants. The unpacked kernel (cpu_matmul_avx2.c) transposes 8 rows into
 * scratch on every call, which held generation to about half of the memory's speed.
 * Built with the AVX2 flags. Same bits as cpu_matmul_q8_avx2 (cpu_simd.h): exact
 * integer sums per block, then acc = fma(dw * dx, isum, acc) lane by lane. */
#include <immintrin.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "backend/cpu/cpu_q8_avx2.h"
#include "backend/cpu/cpu_simd.h"
#include "tensor/types.h"

#define INLINE static inline __attribute__((always_inline))

/* The exact int8 dots of block b's 16 rows (two halves of 8 lanes) with NT tokens'
 * 32 int8 x at xb[j]: s[j][h] for half h.
 *   Q8_0: vector g (64 bytes) holds the rows' weights under x's dword g; per half,
 *         maddubs(|w|, sign(x, w)) is exact (|w| <= 128, |x| <= 127).
 *   Q4_0: vector g (g < 4) holds the nibble pairs of x's dwords g (low) and 4 + g
 *         (high); eight maddubs pairs stay within int16 (8 * 3810), and the caller
 *         takes 8 * sum(x) off.
 * Each weight vector is loaded (and split) once for the NT tokens. */
INLINE void block_dots(uint32_t type, const uint8_t *q, const uint8_t *const *xb, int NT,
                       __m256i s[2][2])
{
    const __m256i ones = _mm256_set1_epi16(1);
    CPU_UNROLL
    for (int h = 0; h < 2; h++) {
        __m256i a[2];
        CPU_UNROLL
        for (int j = 0; j < NT; j++)
            a[j] = _mm256_setzero_si256();
        if (type == GGML_TYPE_Q8_0) {
            CPU_UNROLL
            for (int g = 0; g < 8; g++) {
                const __m256i w = _mm256_load_si256((const __m256i *)(const void *)(q + 64 * g + 32 * h));
                const __m256i aw = _mm256_abs_epi8(w);
                CPU_UNROLL
                for (int j = 0; j < NT; j++) {
                    int32_t xd;
                    memcpy(&xd, xb[j] + 4 * g, 4);
                    a[j] = _mm256_add_epi32(a[j], _mm256_madd_epi16(
                        _mm256_maddubs_epi16(aw, _mm256_sign_epi8(_mm256_set1_epi32(xd), w)), ones));
                }
            }
            CPU_UNROLL
            for (int j = 0; j < NT; j++)
                s[j][h] = a[j];
            continue;
        }
        const __m256i m4 = _mm256_set1_epi8(0x0f);
        CPU_UNROLL
        for (int g = 0; g < 4; g++) {
            const __m256i v = _mm256_load_si256((const __m256i *)(const void *)(q + 64 * g + 32 * h));
            const __m256i lo = _mm256_and_si256(v, m4);
            const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
            CPU_UNROLL
            for (int j = 0; j < NT; j++) {
                int32_t x0, x1;
                memcpy(&x0, xb[j] + 4 * g, 4);
                memcpy(&x1, xb[j] + 16 + 4 * g, 4);
                a[j] = _mm256_add_epi16(a[j], _mm256_maddubs_epi16(lo, _mm256_set1_epi32(x0)));
                a[j] = _mm256_add_epi16(a[j], _mm256_maddubs_epi16(hi, _mm256_set1_epi32(x1)));
            }
        }
        CPU_UNROLL
        for (int j = 0; j < NT; j++)
            s[j][h] = _mm256_madd_epi16(a[j], ones);
    }
}

/* Tokens [t0, t0 + NT) against panel p (y: [n_tok][n_rows]); stream: the first pass
 * over the panel, which reads it from memory, and asks for its blocks a little ahead
 * into L1; prefetch (that pass, when the next panel is this run's): asks for the next
 * panel block by block. dx and sx8: per token and block, x's scale and 8 * sum(x). */
INLINE void panel_tokens(uint32_t type, const cpu_packed *w, const matmul_input *in, int64_t p,
                         int32_t t0, int NT, const float *dx, const int32_t *sx8, float *y,
                         bool stream, bool prefetch)
{
    const uint8_t *panel = w->data + (size_t)p * w->panel_bytes;
    const uint8_t *scales = panel + (size_t)w->nb * w->wq_bytes;
    const int64_t r0 = p * CPU_PANEL_ROWS, nb = w->nb;
    const int lines = type == GGML_TYPE_Q8_0 ? 8 : 4;   /* 64-byte lines per block */
    const int nr = w->n_rows - r0 < CPU_PANEL_ROWS ? (int)(w->n_rows - r0) : CPU_PANEL_ROWS;
    __m256 acc[2][2];
    CPU_UNROLL
    for (int j = 0; j < NT; j++)
        acc[j][0] = acc[j][1] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        if (prefetch)
            cpu_prefetch_next_panel_l2(panel + (size_t)b * w->wq_bytes, lines, scales + 32 * b,
                                       w->panel_bytes);
        if (stream)
            cpu_prefetch_panel_l1(panel + (size_t)b * w->wq_bytes, lines);
        const uint8_t *xb[2];
        CPU_UNROLL
        for (int j = 0; j < NT; j++)
            xb[j] = (const uint8_t *)in->xq + (size_t)(t0 + j) * in->xq_row_bytes + (size_t)b * 34 + 2;
        __m256i is[2][2];
        block_dots(type, panel + (size_t)b * w->wq_bytes, xb, NT, is);
        CPU_UNROLL
        for (int h = 0; h < 2; h++) {
            const __m256 dw = _mm256_cvtph_ps(_mm_load_si128(
                (const __m128i *)(const void *)(scales + 32 * (size_t)b + 16 * (size_t)h)));
            CPU_UNROLL
            for (int j = 0; j < NT; j++) {
                const int64_t k = (int64_t)(t0 + j) * nb + b;
                __m256i v = is[j][h];
                if (type == GGML_TYPE_Q4_0)
                    v = _mm256_sub_epi32(v, _mm256_set1_epi32(sx8[k]));
                acc[j][h] = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_set1_ps(dx[k])),
                                            _mm256_cvtepi32_ps(v), acc[j][h]);
            }
        }
    }
    CPU_UNROLL
    for (int j = 0; j < NT; j++) {
        float out[16];
        _mm256_storeu_ps(out, acc[j][0]);
        _mm256_storeu_ps(out + 8, acc[j][1]);
        memcpy(y + (size_t)(t0 + j) * (size_t)w->n_rows + (size_t)r0, out, sizeof(float) * (size_t)nr);
    }
}

/* Panel p, every token: passes of 2 tokens (and 1); the first reads the panel from
 * memory and, if `prefetch`, asks for the next. */
INLINE void panel_all(uint32_t type, const cpu_packed *w, const matmul_input *in, int64_t p,
                      const float *dx, const int32_t *sx8, float *y, bool prefetch)
{
    for (int32_t t = 0; t < in->n_tok;) {
        const int left = in->n_tok - t, nt = left >= 2 ? 2 : 1;
        switch (nt) {
        case 2: panel_tokens(type, w, in, p, t, 2, dx, sx8, y, t == 0, prefetch); break;
        default: panel_tokens(type, w, in, p, t, 1, dx, sx8, y, t == 0, prefetch); break;
        }
        prefetch = false;
        t += nt;
    }
}

/* Half h (rows 8h..8h+7) of panel p as the unpacked kernel's 8-row panel (cpu_q8_avx2.h):
 * per block 8 vectors (Q4_0: the nibbles split, low then high) and 8 float scales. */
INLINE void build_half(uint32_t type, const cpu_packed *w, int64_t p, int h, uint8_t *dst)
{
    const uint8_t *panel = w->data + (size_t)p * w->panel_bytes;
    const uint8_t *scales = panel + (size_t)w->nb * w->wq_bytes;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    for (int64_t b = 0; b < w->nb; b++) {
        const uint8_t *q = panel + (size_t)b * w->wq_bytes + 32 * (size_t)h;
        uint8_t *o = dst + b * PANEL_BLOCK_BYTES;
        if (type == GGML_TYPE_Q8_0) {
            CPU_UNROLL
            for (int g = 0; g < 8; g++)
                _mm256_store_si256((__m256i *)(void *)(o + 32 * g),
                                   _mm256_load_si256((const __m256i *)(const void *)(q + 64 * g)));
        } else {
            CPU_UNROLL
            for (int g = 0; g < 4; g++) {
                const __m256i v = _mm256_load_si256((const __m256i *)(const void *)(q + 64 * g));
                _mm256_store_si256((__m256i *)(void *)(o + 32 * g), _mm256_and_si256(v, m4));
                _mm256_store_si256((__m256i *)(void *)(o + 32 * (g + 4)),
                                   _mm256_and_si256(_mm256_srli_epi16(v, 4), m4));
            }
        }
        _mm256_store_ps((float *)(void *)(o + 256), _mm256_cvtph_ps(_mm_load_si128(
            (const __m128i *)(const void *)(scales + 32 * (size_t)b + 16 * (size_t)h))));
    }
}

/* Prompt batches: more tokens than this take the unpacked kernel's route, a panel of
 * split nibbles built once per 8 rows and reused by every token (in-process on
 * 8192 x 2048 Q4_0, 128 tokens, the passes above ran at 70% of its speed); generation
 * reads the panels directly. */
#define BUILT_PANEL_MIN_TOKENS 8

/* Measured: see doc/performance.md (the AVX2 level). scratch: cpu_matmul_q8_avx2_scratch
 * floats, laid out as that kernel's (a built panel, then the per-token tables). */
void cpu_matmul_packed_avx2(const cpu_packed *w, const matmul_input *in, float *y, int64_t p0,
                            int64_t p1, int64_t pf_panel_end, float *scratch)
{
    float *dx;
    int32_t *sx8;
    uint8_t *built = q8_token_tables(in, scratch, &dx, &sx8);   /* [w->nb][PANEL_BLOCK_BYTES] */
    const uint8_t *pf_end = w->data + (size_t)(pf_panel_end > p1 ? pf_panel_end : p1) * w->panel_bytes;
    if (in->n_tok > BUILT_PANEL_MIN_TOKENS) {
        for (int64_t p = p0; p < p1; p++)
            for (int h = 0; h < 2; h++) {
                const int64_t r = p * CPU_PANEL_ROWS + 8 * h;
                if (r >= w->n_rows)
                    break;
                const int nr = w->n_rows - r < P8 ? (int)(w->n_rows - r) : P8;
                if (w->type == GGML_TYPE_Q8_0) {
                    build_half(GGML_TYPE_Q8_0, w, p, h, built);
                    q8_panel_tokens(GGML_TYPE_Q8_0, built, in, dx, sx8, y, w->n_rows, r, nr);
                } else {
                    build_half(GGML_TYPE_Q4_0, w, p, h, built);
                    q8_panel_tokens(GGML_TYPE_Q4_0, built, in, dx, sx8, y, w->n_rows, r, nr);
                }
            }
        return;
    }
    for (int64_t p = p0; p < p1; p++) {
        const bool prefetch = cpu_next_panel_is_ours(w, w->data + (size_t)p * w->panel_bytes,
                                                     pf_end);
        if (w->type == GGML_TYPE_Q8_0)
            panel_all(GGML_TYPE_Q8_0, w, in, p, dx, sx8, y, prefetch);
        else
            panel_all(GGML_TYPE_Q4_0, w, in, p, dx, sx8, y, prefetch);
    }
}
