/* cpu_matmul_neon.c - arm64 NEON matmul kernels for F32/F16/BF16 (float x) and
 * Q8_0/Q4_0 (int8 x, vec_type Q8_0), with the numerics cpu_neon.h states. Built for
 * aarch64 only; the SDOT variant runs only where cpu_features saw the dotprod
 * extension. No allocation, no threads: the op hands each call a row range. */
#include <arm_neon.h>
#include <stdint.h>
#include <string.h>

#include "backend/cpu/cpu_neon.h"
#include "tensor/quant.h"
#include "tensor/types.h"

#define INLINE static inline __attribute__((always_inline))
/* Fixed-count loops over rows, tokens and lanes are unrolled, so that the tiles
 * live in registers (gcc -O2 leaves them rolled, with the vectors on the stack). */
#define UNROLL _Pragma("GCC unroll 8")

/* ---- F32, F16, BF16: dot_f32's order, tiled 4 rows x 2 tokens ------------------ */

/* 4 weights from byte offset p, widened exactly to float (byte loads: rows need no
 * alignment). */
INLINE float32x4_t load4_w(uint32_t type, const uint8_t *p)
{
    if (type == GGML_TYPE_F16)
        return vcvt_f32_f16(vreinterpret_f16_u8(vld1_u8(p)));
    if (type == GGML_TYPE_BF16)
        return vreinterpretq_f32_u32(vshll_n_u16(vreinterpret_u16_u8(vld1_u8(p)), 16));
    return vreinterpretq_f32_u8(vld1q_u8(p));
}

INLINE float load1_w(uint32_t type, const uint8_t *p)
{
    uint16_t h;
    if (type == GGML_TYPE_F32) {
        float f;
        memcpy(&f, p, 4);
        return f;
    }
    memcpy(&h, p, 2);
    return type == GGML_TYPE_F16 ? fp16_to_fp32(h) : bf16_to_fp32(h);
}

/* y for 4 rows x NT tokens. Lane j of the accumulator pair (lo: 0-3, hi: 4-7) takes
 * elements j, j + 8, ... by a rounded multiply then a rounded add, as dot_acc_feed;
 * the column tail (< 8) goes lane by lane in scalar, then the lanes are summed
 * ((l0+l4)+(l2+l6))+((l1+l5)+(l3+l7)) as dot_acc_sum does.
 * Bound: the float unit at large n_tok (2 ops per 4 multiply-adds, 4 weight loads
 * shared by NT tokens); memory at n_tok = 1. 16 accumulators + 8 weight vectors +
 * 4 of x fit the 32 vector registers. */
INLINE void f_tile(uint32_t type, const uint8_t *const *rows, const float *const *xs,
                   int64_t n_cols, int NT, float *out /* [NT][4] */)
{
    const int es = type == GGML_TYPE_F32 ? 4 : 2;
    float32x4_t acc[4][2][2];
    UNROLL for (int r = 0; r < 4; r++)
        UNROLL for (int t = 0; t < NT; t++)
            acc[r][t][0] = acc[r][t][1] = vdupq_n_f32(0.0f);
    const int64_t n8 = n_cols & ~(int64_t)7;
    for (int64_t c = 0; c < n8; c += 8) {
        float32x4_t w[4][2];
        UNROLL for (int r = 0; r < 4; r++) {
            w[r][0] = load4_w(type, rows[r] + c * es);
            w[r][1] = load4_w(type, rows[r] + (c + 4) * es);
        }
        UNROLL for (int t = 0; t < NT; t++) {
            const float32x4_t x0 = vld1q_f32(xs[t] + c), x1 = vld1q_f32(xs[t] + c + 4);
            UNROLL for (int r = 0; r < 4; r++) {
                acc[r][t][0] = vaddq_f32(acc[r][t][0], vmulq_f32(w[r][0], x0));
                acc[r][t][1] = vaddq_f32(acc[r][t][1], vmulq_f32(w[r][1], x1));
            }
        }
    }
    for (int t = 0; t < NT; t++)
        for (int r = 0; r < 4; r++) {
            float l[8];
            vst1q_f32(l, acc[r][t][0]);
            vst1q_f32(l + 4, acc[r][t][1]);
            for (int64_t c = n8; c < n_cols; c++)
                l[c - n8] += load1_w(type, rows[r] + c * es) * xs[t][c];
            out[t * 4 + r] = ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]));
        }
}

INLINE void f_rows(uint32_t type, const tensor_view *w, const matmul_input *in, float *y,
                   int64_t r0, int64_t r1)
{
    const int64_t n_rows = w->n_rows, n_cols = in->n_cols;
    const int32_t n_tok = in->n_tok;
    for (int64_t r = r0; r < r1; r += 4) {
        const int nr = r1 - r < 4 ? (int)(r1 - r) : 4;
        const uint8_t *rows[4];
        for (int i = 0; i < 4; i++)   /* a short tile repeats its last row */
            rows[i] = (const uint8_t *)w->data + (size_t)(r + (i < nr ? i : nr - 1)) * w->row_bytes;
        for (int32_t t = 0; t < n_tok; t += 2) {
            const int nt = n_tok - t < 2 ? 1 : 2;
            const float *xs[2] = {in->x + (size_t)t * (size_t)n_cols,
                                  in->x + (size_t)(t + nt - 1) * (size_t)n_cols};
            float out[8];
            if (nt == 2)
                f_tile(type, rows, xs, n_cols, 2, out);
            else
                f_tile(type, rows, xs, n_cols, 1, out);
            for (int j = 0; j < nt; j++)
                for (int i = 0; i < nr; i++)
                    y[(size_t)(t + j) * (size_t)n_rows + (size_t)(r + i)] = out[j * 4 + i];
        }
    }
}

void cpu_matmul_f_neon(const tensor_view *w, const matmul_input *in, float *y, int64_t r0,
                       int64_t r1, float *scratch)
{
    (void)scratch;
    switch (w->type) {
    case GGML_TYPE_F16: f_rows(GGML_TYPE_F16, w, in, y, r0, r1); break;
    case GGML_TYPE_BF16: f_rows(GGML_TYPE_BF16, w, in, y, r0, r1); break;
    default: f_rows(GGML_TYPE_F32, w, in, y, r0, r1); break;
    }
}

/* ---- Q8_0 / Q4_0 against Q8_0 activations: 4 rows x 4 tokens -------------------- */

/* The exact int8 dots of one 32-block of 4 rows (w[2i], w[2i+1]: row i's elements
 * 0-15 and 16-31) with one token's block (x0, x1), as [isum_row0 .. isum_row3].
 * Weights are -128..127 (Q4_0: -8..7), x is -127..127 (the quantizer's range). */
#if LMRT_NEON_SDOT
LMRT_SDOT_TARGET static inline int32x4_t isum4_sdot(const int8x16_t *w, int8x16_t x0,
                                                    int8x16_t x1)
{
    int32x4_t p[4];
    UNROLL for (int i = 0; i < 4; i++)
        p[i] = vdotq_s32(vdotq_s32(vdupq_n_s32(0), w[2 * i], x0), w[2 * i + 1], x1);
    return vpaddq_s32(vpaddq_s32(p[0], p[1]), vpaddq_s32(p[2], p[3]));
}
#endif

/* Without SDOT: 8 int8 products widened to int16 and one more added per lane (two
 * products are at most 2 * 128 * 127 = 32512, inside int16), then pairwise into int32. */
INLINE int32x4_t isum4_mull(const int8x16_t *w, int8x16_t x0, int8x16_t x1)
{
    int32x4_t p[4];
    UNROLL for (int i = 0; i < 4; i++) {
        int16x8_t a = vmlal_high_s8(vmull_s8(vget_low_s8(w[2 * i]), vget_low_s8(x0)), w[2 * i], x0);
        int16x8_t b = vmlal_high_s8(vmull_s8(vget_low_s8(w[2 * i + 1]), vget_low_s8(x1)),
                                    w[2 * i + 1], x1);
        p[i] = vpadalq_s16(vpaddlq_s16(a), b);
    }
    return vpaddq_s32(vpaddq_s32(p[0], p[1]), vpaddq_s32(p[2], p[3]));
}

INLINE float32x4_t load4_f16(const uint8_t *const *rows, int64_t off)
{
    uint16_t h[4];
    UNROLL for (int i = 0; i < 4; i++)
        memcpy(&h[i], rows[i] + off, 2);
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(h)));
}

/* A half from p, widened by FCVTL (exact, as fp16_to_fp32). */
INLINE float load_f16(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h))), 0);
}

/* Block b of 4 rows as 8 int8 vectors (see isum4_*) and the rows' scales. Q4_0's
 * byte j holds element j (low nibble) and j + 16 (high); w = nibble - 8. */
INLINE float32x4_t load_block4(uint32_t type, const uint8_t *const *rows, int64_t b,
                               int8x16_t *w)
{
    if (type == GGML_TYPE_Q8_0) {
        UNROLL for (int i = 0; i < 4; i++) {
            w[2 * i] = vld1q_s8((const int8_t *)(rows[i] + b * 34 + 2));
            w[2 * i + 1] = vld1q_s8((const int8_t *)(rows[i] + b * 34 + 18));
        }
        return load4_f16(rows, b * 34);
    }
    const uint8x16_t m4 = vdupq_n_u8(0x0f);
    const int8x16_t eight = vdupq_n_s8(8);
    UNROLL for (int i = 0; i < 4; i++) {
        uint8x16_t q = vld1q_u8(rows[i] + b * 18 + 2);
        w[2 * i] = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(q, m4)), eight);
        w[2 * i + 1] = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(q, 4)), eight);
    }
    return load4_f16(rows, b * 18);
}

/* Per output: acc = fmaf(dw_b * dx_b, (float)isum_b, acc) over the blocks in order,
 * 4 rows in the lanes (vfmaq is the fused multiply-add); the 4 rows' block is loaded
 * once for NT tokens (xr: NT quantized token rows). out: [NT][4].
 * Bound: memory at n_tok = 1 (34 or 18 bytes per 32 multiply-adds); at large n_tok
 * the int8 dots (SDOT: 2 per row-block per token; without: 4 multiplies + 2 pairwise
 * adds). */
INLINE void q8_tile(uint32_t type, bool sdot, const uint8_t *const *rows,
                    const uint8_t *const *xr, int64_t nb, int NT, float *out)
{
    float32x4_t acc[4];
    UNROLL for (int j = 0; j < NT; j++)
        acc[j] = vdupq_n_f32(0.0f);
    for (int64_t b = 0; b < nb; b++) {
        int8x16_t wv[8];
        const float32x4_t dw = load_block4(type, rows, b, wv);
        UNROLL for (int j = 0; j < NT; j++) {
            const uint8_t *xb = xr[j] + b * 34;
            const int8x16_t x0 = vld1q_s8((const int8_t *)(xb + 2));
            const int8x16_t x1 = vld1q_s8((const int8_t *)(xb + 18));
            int32x4_t is;
#if LMRT_NEON_SDOT
            if (sdot)
                is = isum4_sdot(wv, x0, x1);
            else
#endif
                is = isum4_mull(wv, x0, x1);
            acc[j] = vfmaq_f32(acc[j], vmulq_n_f32(dw, load_f16(xb)), vcvtq_f32_s32(is));
        }
    }
    UNROLL for (int j = 0; j < NT; j++)
        vst1q_f32(out + 4 * j, acc[j]);
    (void)sdot;
}

/* Tiles of 4 rows x 4 tokens, the last tokens one at a time (the same steps per
 * output either way). */
INLINE void q8_rows(uint32_t type, bool sdot, const tensor_view *w, const matmul_input *in,
                    float *y, int64_t r0, int64_t r1)
{
    const int64_t nb = in->n_cols / 32, n_rows = w->n_rows;
    const int32_t n_tok = in->n_tok;
    const uint8_t *xq = in->xq;
    for (int64_t r = r0; r < r1; r += 4) {
        const int nr = r1 - r < 4 ? (int)(r1 - r) : 4;
        const uint8_t *rows[4];
        for (int i = 0; i < 4; i++)
            rows[i] = (const uint8_t *)w->data + (size_t)(r + (i < nr ? i : nr - 1)) * w->row_bytes;
        for (int32_t t = 0; t < n_tok;) {
            const int nt = n_tok - t >= 4 ? 4 : 1;
            const uint8_t *xr[4];
            for (int j = 0; j < 4; j++)
                xr[j] = xq + (size_t)(t + (j < nt ? j : 0)) * in->xq_row_bytes;
            float out[16];
            if (nt == 4)
                q8_tile(type, sdot, rows, xr, nb, 4, out);
            else
                q8_tile(type, sdot, rows, xr, nb, 1, out);
            for (int j = 0; j < nt; j++)
                for (int i = 0; i < nr; i++)
                    y[(size_t)(t + j) * (size_t)n_rows + (size_t)(r + i)] = out[4 * j + i];
            t += nt;
        }
    }
}

#if LMRT_NEON_SDOT
LMRT_SDOT_TARGET static void q8_rows_sdot(const tensor_view *w, const matmul_input *in,
                                          float *y, int64_t r0, int64_t r1)
{
    if (w->type == GGML_TYPE_Q8_0)
        q8_rows(GGML_TYPE_Q8_0, true, w, in, y, r0, r1);
    else
        q8_rows(GGML_TYPE_Q4_0, true, w, in, y, r0, r1);
}
#endif

void cpu_matmul_q8_neon_nodot(const tensor_view *w, const matmul_input *in, float *y,
                              int64_t r0, int64_t r1, float *scratch)
{
    (void)scratch;
    if (w->type == GGML_TYPE_Q8_0)
        q8_rows(GGML_TYPE_Q8_0, false, w, in, y, r0, r1);
    else
        q8_rows(GGML_TYPE_Q4_0, false, w, in, y, r0, r1);
}

void cpu_matmul_q8_neon(const tensor_view *w, const matmul_input *in, float *y, int64_t r0,
                        int64_t r1, float *scratch)
{
#if LMRT_NEON_SDOT
    if (cpu_features_get()->neon_dotprod) {
        q8_rows_sdot(w, in, y, r0, r1);
        return;
    }
#endif
    cpu_matmul_q8_neon_nodot(w, in, y, r0, r1, scratch);
}
