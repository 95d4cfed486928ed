/* cpu_matmul_k_neon.c - arm64 NEON matmul for Q4_K and Q6_K weights against Q8_K
 * activations (vec_type Q8_K), with the numerics cpu_neon.h states. Each weight row
 * is unpacked once into int8 values and integer scales in the thread's scratch, then
 * dotted with every token. Built for aarch64 only; no allocation, no threads. */
#include <arm_neon.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "backend/cpu/cpu_neon.h"
#include "tensor/quant.h"
#include "tensor/types.h"

#define INLINE static inline __attribute__((always_inline))
/* The fixed-count group loops are unrolled (gcc -O2 leaves them rolled). */
#define UNROLL _Pragma("GCC unroll 16")

/* One 256-block unpacked: q in element order (Q4_K: the nibble 0..15; Q6_K: the
 * 6-bit value - 32), the integer scale of each 32 (Q4_K) or 16 (Q6_K) elements,
 * Q4_K's mins, and the block's d and dmin as floats. 328 bytes, within the n_cols
 * floats (1024 bytes per block) of scratch the op provides. */
typedef struct kblock {
    int8_t q[256];
    int32_t sc[16];
    int32_t m[8];
    float d, dmin;
} kblock;

_Static_assert(sizeof(kblock) <= 256 * sizeof(float), "an unpacked block fits the scratch");

/* A half from p, widened by FCVTL (exact, as fp16_to_fp32). */
INLINE float load_f16(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h))), 0);
}

/* Q4_K, 144 bytes: f16 d, f16 dmin, 12 bytes of 6-bit scales and mins, 128 bytes of
 * nibbles; chunk c (64 elements) is 32 bytes, low nibbles first. Scales as quant.c. */
static void unpack_q4_k(const uint8_t *blk, kblock *k)
{
    k->d = load_f16(blk);
    k->dmin = load_f16(blk + 2);
    const uint8_t *s = blk + 4;
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            k->sc[j] = s[j] & 63;
            k->m[j] = s[j + 4] & 63;
        } else {
            k->sc[j] = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
            k->m[j] = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
        }
    }
    const uint8_t *qs = blk + 16;
    const uint8x16_t m4 = vdupq_n_u8(0x0f);
    for (int c = 0; c < 4; c++)
        for (int h = 0; h < 2; h++) {
            uint8x16_t v = vld1q_u8(qs + 32 * c + 16 * h);
            vst1q_s8(k->q + 64 * c + 16 * h, vreinterpretq_s8_u8(vandq_u8(v, m4)));
            vst1q_s8(k->q + 64 * c + 32 + 16 * h, vreinterpretq_s8_u8(vshrq_n_u8(v, 4)));
        }
}

/* Q6_K, 210 bytes: ql[128], qh[64], int8 scales[16], f16 d. Per half (128 elements,
 * 64 of ql, 32 of qh), for l < 32: element l = ql[l] low | qh[l] bits 0-1, l + 32 =
 * ql[l+32] low | bits 2-3, l + 64 = ql[l] high | bits 4-5, l + 96 = ql[l+32] high |
 * bits 6-7; q = that - 32, scale of element e = scales[e / 16]. */
static void unpack_q6_k(const uint8_t *blk, kblock *k)
{
    const uint8x16_t m4 = vdupq_n_u8(0x0f), m3 = vdupq_n_u8(0x03);
    const int8x16_t off = vdupq_n_s8(32);
    for (int half = 0; half < 2; half++) {
        const uint8_t *ql = blk + 64 * half, *qh = blk + 128 + 32 * half;
        int8_t *q = k->q + 128 * half;
        for (int h = 0; h < 2; h++) {
            uint8x16_t lo = vld1q_u8(ql + 16 * h), hi = vld1q_u8(ql + 32 + 16 * h);
            uint8x16_t bits = vld1q_u8(qh + 16 * h);
            uint8x16_t e[4] = {
                vorrq_u8(vandq_u8(lo, m4), vshlq_n_u8(vandq_u8(bits, m3), 4)),
                vorrq_u8(vandq_u8(hi, m4), vshlq_n_u8(vandq_u8(vshrq_n_u8(bits, 2), m3), 4)),
                vorrq_u8(vshrq_n_u8(lo, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(bits, 4), m3), 4)),
                vorrq_u8(vshrq_n_u8(hi, 4), vshlq_n_u8(vshrq_n_u8(bits, 6), 4)),
            };
            for (int i = 0; i < 4; i++)
                vst1q_s8(q + 32 * i + 16 * h, vsubq_s8(vreinterpretq_s8_u8(e[i]), off));
        }
    }
    const int8_t *sc = (const int8_t *)(blk + 192);
    for (int g = 0; g < 16; g++)
        k->sc[g] = sc[g];
    k->d = load_f16(blk + 208);
    k->dmin = 0.0f;
}

/* Exact int8 dot of 16 elements, as 4 int32 lanes (which lanes hold what differs
 * between the two; only their total is used). |w| <= 32, |x| <= 127. */
#if LMRT_NEON_SDOT
LMRT_SDOT_TARGET static inline int32x4_t dot16_sdot(const int8_t *w, const int8_t *x)
{
    return vdotq_s32(vdupq_n_s32(0), vld1q_s8(w), vld1q_s8(x));
}
#endif

INLINE int32x4_t dot16_mull(const int8_t *w, const int8_t *x)
{
    int8x16_t a = vld1q_s8(w), b = vld1q_s8(x);
    return vpaddlq_s16(vmlal_high_s8(vmull_s8(vget_low_s8(a), vget_low_s8(b)), a, b));
}

/* sum_g sc[g] * (dot of the g-th `group` elements), exact: Q4_K 8 x 32 (at most
 * 63 * 32 * 15 * 127 per group), Q6_K 16 x 16 (at most 128 * 16 * 32 * 127). Taken
 * 16 elements at a time, each 16 with its group's scale. */
INLINE int32_t isum_block(bool sdot, int group, const kblock *k, const int8_t *xq)
{
    int32x4_t acc = vdupq_n_s32(0);
    UNROLL for (int c = 0; c < 16; c++) {
        int32x4_t p;
#if LMRT_NEON_SDOT
        if (sdot)
            p = dot16_sdot(k->q + 16 * c, xq + 16 * c);
        else
#endif
            p = dot16_mull(k->q + 16 * c, xq + 16 * c);
        acc = vmlaq_n_s32(acc, p, k->sc[16 * c / group]);
    }
    (void)sdot;
    return vaddvq_s32(acc);
}

/* Q8_K block: f32 d, int8 qs[256], int16 bsums[16] (sums of each 16 qs). */
#define Q8K_BYTES 292

/* Per output, over the 256-blocks in order:
 *   Q4_K: acc = fmaf(d * dx, isum, acc); acc = fmaf(-(dmin * dx), imin, acc) with
 *         imin = sum_j m_j * (bsum_2j + bsum_2j+1);
 *   Q6_K: acc = fmaf(d * dx, isum, acc).
 * Bound: memory at n_tok = 1 (144 / 210 bytes per 256 multiply-adds, plus the unpack
 * into L1); at large n_tok the int8 dots, 16 per block per token. */
INLINE void k_rows(uint32_t type, bool sdot, const tensor_view *w, const matmul_input *in,
                   float *y, int64_t r0, int64_t r1, float *scratch)
{
    const int64_t nb = in->n_cols / 256, n_rows = w->n_rows;
    const size_t bb = type == GGML_TYPE_Q4_K ? 144 : 210;
    const int group = type == GGML_TYPE_Q4_K ? 32 : 16;
    kblock *kb = (kblock *)(void *)scratch;   /* [nb] */
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)w->data + (size_t)r * w->row_bytes;
        for (int64_t b = 0; b < nb; b++) {
            if (type == GGML_TYPE_Q4_K)
                unpack_q4_k(row + (size_t)b * bb, &kb[b]);
            else
                unpack_q6_k(row + (size_t)b * bb, &kb[b]);
        }
        for (int32_t t = 0; t < in->n_tok; t++) {
            const uint8_t *xr = (const uint8_t *)in->xq + (size_t)t * in->xq_row_bytes;
            float acc = 0.0f;
            for (int64_t b = 0; b < nb; b++) {
                const uint8_t *xb = xr + (size_t)b * Q8K_BYTES;
                float dx;
                memcpy(&dx, xb, 4);
                const int32_t isum = isum_block(sdot, group, &kb[b], (const int8_t *)(xb + 4));
                acc = fmaf(kb[b].d * dx, (float)isum, acc);
                if (type == GGML_TYPE_Q4_K) {
                    int16_t bs[16];
                    memcpy(bs, xb + 4 + 256, sizeof bs);
                    int32_t imin = 0;
                    for (int j = 0; j < 8; j++)
                        imin += kb[b].m[j] * (bs[2 * j] + bs[2 * j + 1]);
                    acc = fmaf(-(kb[b].dmin * dx), (float)imin, acc);
                }
            }
            y[(size_t)t * (size_t)n_rows + (size_t)r] = acc;
        }
    }
}

#if LMRT_NEON_SDOT
LMRT_SDOT_TARGET static void k_rows_sdot(const tensor_view *w, const matmul_input *in, float *y,
                                         int64_t r0, int64_t r1, float *scratch)
{
    if (w->type == GGML_TYPE_Q4_K)
        k_rows(GGML_TYPE_Q4_K, true, w, in, y, r0, r1, scratch);
    else
        k_rows(GGML_TYPE_Q6_K, true, w, in, y, r0, r1, scratch);
}
#endif

void cpu_matmul_k_neon_nodot(const tensor_view *w, const matmul_input *in, float *y,
                             int64_t r0, int64_t r1, float *scratch)
{
    if (w->type == GGML_TYPE_Q4_K)
        k_rows(GGML_TYPE_Q4_K, false, w, in, y, r0, r1, scratch);
    else
        k_rows(GGML_TYPE_Q6_K, false, w, in, y, r0, r1, scratch);
}

void cpu_matmul_k_neon(const tensor_view *w, const matmul_input *in, float *y, int64_t r0,
                       int64_t r1, float *scratch)
{
#if LMRT_NEON_SDOT
    if (cpu_features_get()->neon_dotprod) {
        k_rows_sdot(w, in, y, r0, r1, scratch);
        return;
    }
#endif
    cpu_matmul_k_neon_nodot(w, in, y, r0, r1, scratch);
}
