/* cpu_kernels_neon.c - the arm64 NEON kernel tables (CPU_LEVEL_NEON) and their small
 * kernels: byte-exact Q8_0/Q8_K activation quantizers and add. rmsnorm, rope,
 * attention and silu_mul stay the scalar reference's (called through its table, so
 * the bits are the reference's). Built for aarch64 only; the matmuls live in
 * cpu_matmul_neon.c and cpu_matmul_k_neon.c. */
#include <arm_neon.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "backend/cpu/cpu_neon.h"
#include "tensor/quant.h"
#include "tensor/types.h"

bool cpu_neon_built_with_sdot(void)
{
    return LMRT_NEON_SDOT;
}

/* ---- activation quantizers ------------------------------------------------------ */

/* Four vectors of int32 (each within int8) to 16 bytes in element order. */
static inline int8x16_t narrow4(int32x4_t a, int32x4_t b, int32x4_t c, int32x4_t d)
{
    int16x8_t lo = vcombine_s16(vmovn_s32(a), vmovn_s32(b));
    int16x8_t hi = vcombine_s16(vmovn_s32(c), vmovn_s32(d));
    return vcombine_s8(vmovn_s16(lo), vmovn_s16(hi));
}

/* quantize_row_q8_0, byte for byte: the max is order-free, d = amax / 127 (a division,
 * as in the reference), its half by the reference's fp32_to_fp16, q = roundf(x * id),
 * which is FCVTAS (nearest, ties away from zero). A block holding an inf or NaN goes
 * to the reference itself (vmaxq keeps NaN where fmaxf drops it).
 * Bound: a few vector ops per 4 values, against a matmul that reads the whole weight. */
void cpu_quantize_q8_0_neon(const float *x, void *out, int64_t n)
{
    uint8_t *blk = out;
    for (int64_t b = 0; b < n / 32; b++, x += 32, blk += 34) {
        float32x4_t v[8], m = vdupq_n_f32(0.0f);
        for (int i = 0; i < 8; i++) {
            v[i] = vld1q_f32(x + 4 * i);
            m = vmaxq_f32(m, vabsq_f32(v[i]));
        }
        const float amax = vmaxvq_f32(m);
        if (!isfinite(amax)) {
            quantize_row_q8_0(x, blk, 32);
            continue;
        }
        const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        const uint16_t dh = fp32_to_fp16(d);
        memcpy(blk, &dh, 2);
        int32x4_t q[8];
        for (int i = 0; i < 8; i++)
            q[i] = vcvtaq_s32_f32(vmulq_n_f32(v[i], id));
        vst1q_s8((int8_t *)(blk + 2), narrow4(q[0], q[1], q[2], q[3]));
        vst1q_s8((int8_t *)(blk + 18), narrow4(q[4], q[5], q[6], q[7]));
    }
}

/* quantize_row_q8_K, byte for byte: max = the first value of the largest magnitude,
 * iscale = -127 / max, q = min(127, rintf(iscale * x)) (FCVTNS: nearest, ties to
 * even), bsums the int16 sums of each 16 q, d = 1 / iscale. Non-finite blocks go to
 * the reference. */
void cpu_quantize_q8_K_neon(const float *x, void *out, int64_t n)
{
    uint8_t *blk = out;   /* f32 d, int8 qs[256], int16 bsums[16] */
    for (int64_t b = 0; b < n / 256; b++, x += 256, blk += 292) {
        float32x4_t m = vdupq_n_f32(0.0f);
        for (int i = 0; i < 256; i += 4)
            m = vmaxq_f32(m, vabsq_f32(vld1q_f32(x + i)));
        const float amax = vmaxvq_f32(m);
        if (!isfinite(amax)) {
            quantize_row_q8_K(x, blk, 256);
            continue;
        }
        int16_t bsums[16] = {0};
        float d = 0.0f;
        if (amax == 0.0f) {
            memset(blk + 4, 0, 256);
        } else {
            int j = 0;
            while (fabsf(x[j]) != amax)
                j++;
            const float iscale = -127.0f / x[j];
            const int32x4_t top = vdupq_n_s32(127);
            for (int g = 0; g < 16; g++) {
                int32x4_t q[4];
                for (int i = 0; i < 4; i++)
                    q[i] = vminq_s32(vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x + 16 * g + 4 * i),
                                                                iscale)), top);
                const int8x16_t qv = narrow4(q[0], q[1], q[2], q[3]);
                vst1q_s8((int8_t *)(blk + 4 + 16 * g), qv);
                bsums[g] = vaddlvq_s8(qv);
            }
            d = 1.0f / iscale;
        }
        memcpy(blk, &d, 4);
        memcpy(blk + 4 + 256, bsums, sizeof bsums);
    }
}

/* ---- elementwise and per-token ----------------------------------------------------- */

/* y += x, exact (one rounded add per element). Bound: memory, 12 bytes per element. */
static void add_neon(float *y, const float *x, int64_t n)
{
    int64_t i = 0;
    for (; i + 4 <= n; i += 4)
        vst1q_f32(y + i, vaddq_f32(vld1q_f32(y + i), vld1q_f32(x + i)));
    for (; i < n; i++)
        y[i] += x[i];
}

/* The scalar reference's kernels, which are static in cpu_ops.c: one indirect call per
 * token, against n or n_head * head_dim elements of work. */
static void rmsnorm_ref(const float *x, const float *weight, int32_t n, float eps, float *y)
{
    cpu_kernels_scalar.rmsnorm(x, weight, n, eps, y);
}

static void rope_ref(float *x, int32_t n_head, int32_t head_dim, int32_t n_rot, int32_t pos,
                     float freq_base, const float *freq_factors)
{
    cpu_kernels_scalar.rope(x, n_head, head_dim, n_rot, pos, freq_base, freq_factors);
}

static void silu_mul_ref(float *gate, const float *up, int64_t n)
{
    cpu_kernels_scalar.silu_mul(gate, up, n);
}

/* ---- the tables ---------------------------------------------------------------------- */

#define NEON_TABLE(q8_fn, k_fn)                                                             \
    .matmul = {                                                                             \
        [GGML_TYPE_F32] = {.rows = cpu_matmul_f_neon, .vec_type = GGML_TYPE_F32},           \
        [GGML_TYPE_F16] = {.rows = cpu_matmul_f_neon, .vec_type = GGML_TYPE_F32},           \
        [GGML_TYPE_BF16] = {.rows = cpu_matmul_f_neon, .vec_type = GGML_TYPE_F32},          \
        [GGML_TYPE_Q8_0] = {.rows = q8_fn, .vec_type = GGML_TYPE_Q8_0},                     \
        [GGML_TYPE_Q4_0] = {.rows = q8_fn, .vec_type = GGML_TYPE_Q8_0},                     \
        [GGML_TYPE_Q4_K] = {.rows = k_fn, .vec_type = GGML_TYPE_Q8_K},                      \
        [GGML_TYPE_Q6_K] = {.rows = k_fn, .vec_type = GGML_TYPE_Q8_K},                      \
    },                                                                                      \
    .quantize_row = {                                                                       \
        [GGML_TYPE_Q8_0] = cpu_quantize_q8_0_neon,                                          \
        [GGML_TYPE_Q8_K] = cpu_quantize_q8_K_neon,                                          \
    },                                                                                      \
    .rmsnorm = rmsnorm_ref, .rope = rope_ref, .attention = cpu_attention_head_scalar,       \
    .silu_mul = silu_mul_ref, .add = add_neon

const cpu_kernels cpu_kernels_neon = {
    .name = "neon",
    NEON_TABLE(cpu_matmul_q8_neon, cpu_matmul_k_neon),
};

const cpu_kernels cpu_kernels_neon_nodot = {
    .name = "neon-nodot",
    NEON_TABLE(cpu_matmul_q8_neon_nodot, cpu_matmul_k_neon_nodot),
};
