/* cuda_quant.h - the CUDA backend's weight rows as the device holds them, and the
 * decoders its kernels run, written once for both sides: nvcc compiles them as
 * __host__ __device__ functions, gcc as static inline C, so that the unit tests check
 * every decoder on the CPU against tensor/quant.h's reference dequantizers.
 *
 * Device row layouts (cuda_repack_row in cuda_plan.c writes them; every row starts
 * 16-byte aligned, so the kernels read 128-bit words; n = n_cols):
 *   F32   n floats, the file's own layout (norms and biases are used as float arrays)
 *   F16, BF16  n halves, zero-padded to a multiple of 8
 *   Q8_0  qs[n/32][32] int8, then d[n/32] f16, padded to 16 bytes
 *   Q4_0  qs[n/32][16] (byte j: element j low nibble, j + 16 high), then d[n/32] f16
 *   Q4_K  the file's 144-byte blocks (already 16-byte multiples)
 *   Q6_K  per 256: ql[128] qh[64] scales[16] (208 bytes), then d[n/256] f16
 * A quantized row is read in sub-blocks of 32 elements (cq_w32): int8 values q with
 * element value (i < 16 ? d0 : d1) * q[i] - m, which is the reference's formula, in
 * its order of operations, for every type. */
#ifndef LMRT_BACKEND_CUDA_QUANT_H
#define LMRT_BACKEND_CUDA_QUANT_H

#include <stdint.h>

#include "tensor/types.h"

#include <math.h>
#include <string.h>

#if defined(__CUDACC__)
#include <cuda_fp16.h>
#define CQ_HD static __host__ __device__ __forceinline__
#else
#include "tensor/quant.h"
#define CQ_HD static inline
#endif

/* Bytes of the per-row d arrays' offset and of each layout's parts. */
#define CQ_Q8_0_QS 32
#define CQ_Q4_0_QS 16
#define CQ_Q6_K_BLOCK 208

/* One sub-block of 32 elements: q packed four to a word (element i in byte i % 4 of
 * q[i / 4]), signed. */
typedef struct cq_w32 {
    int32_t q[8];
    float d0, d1;                /* scale of elements 0..15 and 16..31 */
    float m;                     /* subtracted from every element (Q4_K's dmin * min) */
} cq_w32;

/* ---- loads: aligned words on the device, memcpy on the host ---------------- */

CQ_HD uint32_t cq_ld32(const uint8_t *p)
{
#if defined(__CUDA_ARCH__)
    return *(const uint32_t *)p;
#else
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
#endif
}

/* Four words from a 16-byte aligned address (one 128-bit load on the device). */
CQ_HD void cq_ld128(const uint8_t *p, uint32_t v[4])
{
#if defined(__CUDA_ARCH__)
    const uint4 w = *(const uint4 *)p;
    v[0] = w.x;
    v[1] = w.y;
    v[2] = w.z;
    v[3] = w.w;
#else
    memcpy(v, p, 16);
#endif
}

CQ_HD float cq_f16(const uint8_t *p)
{
#if defined(__CUDACC__)
    return __half2float(*(const __half *)p);
#else
    return fp16_to_fp32((uint16_t)(p[0] | (p[1] << 8)));
#endif
}

CQ_HD float cq_bf16_bits(uint32_t h)
{
#if defined(__CUDA_ARCH__)
    return __uint_as_float(h << 16);
#else
    const uint32_t u = (h & 0xffffu) << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
#endif
}

/* ---- byte-wise integer helpers (the device's SIMD-in-a-word instructions) --- */

/* Per byte a - b, wrapping, no borrow between bytes. */
CQ_HD uint32_t cq_vsub4(uint32_t a, uint32_t b)
{
#if defined(__CUDA_ARCH__)
    return __vsub4(a, b);
#else
    uint32_t r = 0;
    for (int i = 0; i < 4; i++)
        r |= (((a >> (8 * i)) - (b >> (8 * i))) & 0xffu) << (8 * i);
    return r;
#endif
}

/* c + the dot product of a's and b's four signed bytes. */
CQ_HD int32_t cq_dp4a(uint32_t a, uint32_t b, int32_t c)
{
#if defined(__CUDA_ARCH__)
    return __dp4a((int)a, (int)b, c);
#else
    for (int i = 0; i < 4; i++)
        c += (int32_t)(int8_t)(a >> (8 * i)) * (int32_t)(int8_t)(b >> (8 * i));
    return c;
#endif
}

/* ---- device row layout ------------------------------------------------------- */

/* Bytes of one device row of n_cols elements; 0 for a type the backend does not hold.
 * n_cols must be a whole number of the type's blocks (the callers check). */
CQ_HD uint64_t cq_row_bytes(uint32_t type, int64_t n_cols)
{
    uint64_t n = (uint64_t)n_cols, b;
    switch (type) {
    case GGML_TYPE_F32: return 4 * n;
    case GGML_TYPE_F16:
    case GGML_TYPE_BF16: return 2 * ((n + 7) / 8 * 8);
    case GGML_TYPE_Q8_0: b = n / 32 * (CQ_Q8_0_QS + 2); break;
    case GGML_TYPE_Q4_0: b = n / 32 * (CQ_Q4_0_QS + 2); break;
    case GGML_TYPE_Q4_K: return n / 256 * 144;
    case GGML_TYPE_Q6_K: b = n / 256 * (CQ_Q6_K_BLOCK + 2); break;
    default: return 0;
    }
    return (b + 15) / 16 * 16;
}

/* Sub-block u (elements 32u .. 32u+31) of a device row of a quantized type. */
CQ_HD void cq_load32(uint32_t type, const uint8_t *row, int64_t n_cols, int64_t u, cq_w32 *w)
{
    uint32_t v[4], h[4];
    w->m = 0.0f;
    switch (type) {
    case GGML_TYPE_Q8_0: {
        const uint8_t *qs = row + u * CQ_Q8_0_QS;
        cq_ld128(qs, v);
        cq_ld128(qs + 16, h);
        for (int k = 0; k < 4; k++) {
            w->q[k] = (int32_t)v[k];
            w->q[k + 4] = (int32_t)h[k];
        }
        w->d0 = w->d1 = cq_f16(row + (n_cols / 32) * CQ_Q8_0_QS + 2 * u);
        break;
    }
    case GGML_TYPE_Q4_0: {
        cq_ld128(row + u * CQ_Q4_0_QS, v);
        for (int k = 0; k < 4; k++) {
            w->q[k] = (int32_t)cq_vsub4(v[k] & 0x0f0f0f0fu, 0x08080808u);
            w->q[k + 4] = (int32_t)cq_vsub4((v[k] >> 4) & 0x0f0f0f0fu, 0x08080808u);
        }
        w->d0 = w->d1 = cq_f16(row + (n_cols / 32) * CQ_Q4_0_QS + 2 * u);
        break;
    }
    case GGML_TYPE_Q4_K: {
        /* Sub-block j of the 256-block: 32 bytes of qs from chunk j/2, nibble j&1;
         * its 6-bit scale and min from the 12 packed bytes (tensor/quant.c). */
        const uint8_t *blk = row + (u / 8) * 144;
        const int j = (int)(u % 8), shift = 4 * (j & 1);
        const uint8_t *qs = blk + 16 + 32 * (j / 2);
        cq_ld128(qs, v);
        cq_ld128(qs + 16, h);
        for (int k = 0; k < 4; k++) {
            w->q[k] = (int32_t)((v[k] >> shift) & 0x0f0f0f0fu);
            w->q[k + 4] = (int32_t)((h[k] >> shift) & 0x0f0f0f0fu);
        }
        const uint8_t *s = blk + 4;
        int sc, mn;
        if (j < 4) {
            sc = s[j] & 63;
            mn = s[j + 4] & 63;
        } else {
            sc = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
            mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
        }
        const float d = cq_f16(blk), dmin = cq_f16(blk + 2);
        w->d0 = w->d1 = d * (float)sc;
        w->m = dmin * (float)mn;
        break;
    }
    default: {   /* GGML_TYPE_Q6_K */
        /* Sub-block j = 4 n + g of the 256-block: element l (0..31) is
         * ql[64n + 32(g&1) + l] >> 4(g>>1) (low 4 bits) | qh[32n + l] >> 2g (2 bits),
         * minus 32, scaled by scales[8n + 2g + l/16]. */
        const uint8_t *blk = row + (u / 8) * CQ_Q6_K_BLOCK;
        const int j = (int)(u % 8), n = j / 4, g = j % 4;
        const int sl = 4 * (g >> 1), sh = 2 * g;
        const uint8_t *ql = blk + 64 * n + 32 * (g & 1), *qh = blk + 128 + 32 * n;
        uint32_t l2[4], h2[4];
        cq_ld128(ql, v);
        cq_ld128(ql + 16, l2);
        cq_ld128(qh, h);
        cq_ld128(qh + 16, h2);
        for (int k = 0; k < 4; k++) {
            uint32_t lo = ((v[k] >> sl) & 0x0f0f0f0fu) | (((h[k] >> sh) & 0x03030303u) << 4);
            uint32_t hi = ((l2[k] >> sl) & 0x0f0f0f0fu) | (((h2[k] >> sh) & 0x03030303u) << 4);
            w->q[k] = (int32_t)cq_vsub4(lo, 0x20202020u);
            w->q[k + 4] = (int32_t)cq_vsub4(hi, 0x20202020u);
        }
        const int8_t *sc = (const int8_t *)(blk + 192 + 8 * n + 2 * g);
        const float d = cq_f16(row + (n_cols / 256) * CQ_Q6_K_BLOCK + 2 * (u / 8));
        w->d0 = d * (float)sc[0];
        w->d1 = d * (float)sc[1];
        break;
    }
    }
}

/* Element i (0..31) of a sub-block, as the reference dequantizer computes it. */
CQ_HD float cq_value(const cq_w32 *w, int i)
{
    const int q = (int)(int8_t)(w->q[i / 4] >> (8 * (i % 4)));
    return (i < 16 ? w->d0 : w->d1) * (float)q - w->m;
}

/* sum_i value_i * x_i for x quantized as x_i = dx * xq_i, sx = dx * sum(xq): the two
 * halves' integer dots scaled by their d, minus m times the sum of x. */
CQ_HD float cq_dot32(const cq_w32 *w, const int32_t xq[8], float dx, float sx)
{
    int32_t lo = 0, hi = 0;
    for (int k = 0; k < 4; k++) {
        lo = cq_dp4a((uint32_t)w->q[k], (uint32_t)xq[k], lo);
        hi = cq_dp4a((uint32_t)w->q[k + 4], (uint32_t)xq[k + 4], hi);
    }
    return dx * (w->d0 * (float)lo + w->d1 * (float)hi) - w->m * sx;
}

/* The activations' quantization for cq_dot32, per 32 values: d = amax / 127,
 * xq = round-to-even(x / d) (0 when d is 0), s = d * sum(xq). The device kernel
 * (cuda_matvec.cu) computes the same per lane with warp reductions. */
CQ_HD int32_t cq_quant_elem(float x, float id)
{
#if defined(__CUDA_ARCH__)
    return __float2int_rn(x * id);
#else
    return (int32_t)lrintf(x * id);
#endif
}

#if !defined(__CUDACC__)
static inline void cq_quantize32(const float *x, int8_t *q, float *d, float *s)
{
    float amax = 0.0f;
    for (int i = 0; i < 32; i++)
        amax = fabsf(x[i]) > amax ? fabsf(x[i]) : amax;
    const float dd = amax / 127.0f, id = dd != 0.0f ? 1.0f / dd : 0.0f;
    int32_t sum = 0;
    for (int i = 0; i < 32; i++) {
        q[i] = (int8_t)cq_quant_elem(x[i], id);
        sum += q[i];
    }
    *d = dd;
    *s = dd * (float)sum;
}
#endif

#endif
