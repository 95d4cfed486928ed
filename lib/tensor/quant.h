/* quant.h - half-precision conversions and the dequantizers of the GGML block
 * formats lmrt computes on (F32 F16 BF16 Q8_0 Q4_0 Q4_K Q6_K), plus the scalar
 * dot of one stored row with a float vector. These are the reference definitions:
 * every faster kernel is tested against them. Block sizes live in types.h. */
#ifndef LMRT_TENSOR_QUANT_H
#define LMRT_TENSOR_QUANT_H

#include <stdbool.h>
#include <stdint.h>

#include "lmrt.h"

/* IEEE binary16 <-> binary32. Exact in the widening direction (subnormals,
 * infinities, NaN payloads kept); fp32_to_fp16 rounds to nearest, ties to even,
 * overflows to infinity and keeps NaNs NaN (payload truncated, never turned
 * into an infinity). fp16 -> fp32 -> fp16 is the identity on all 65536 values. */
float fp16_to_fp32(uint16_t h);
uint16_t fp32_to_fp16(float f);

/* bfloat16 <-> binary32: the upper half of the float. bf16 -> fp32 is exact;
 * fp32_to_bf16 rounds to nearest even and keeps NaNs NaN (quiet). */
float bf16_to_fp32(uint16_t h);
uint16_t fp32_to_bf16(float f);

/* Whether dequantize_row / vec_dot_row handle this GGML type. */
bool quant_type_supported(uint32_t type);

/* out[0..n) = the n elements stored in `row` (n / block_elems whole blocks).
 * LMRT_E_UNSUPPORTED for another type, LMRT_E_INVALID_ARG when n is negative
 * or not a whole number of blocks. `row` needs no alignment. */
lmrt_status dequantize_row(uint32_t type, const void *row, float *out, int64_t n);

/* sum_i row[i] * x[i] over n elements, accumulated in float as dot_f32 does,
 * so that it equals dot_f32(dequantized row, x) bit for bit (the CPU matmul
 * computes exactly that). Returns 0 for an unsupported type or a bad n. */
float vec_dot_row(uint32_t type, const void *row, const float *x, int64_t n);

/* Activations quantized for integer dot products, exactly as ggml's reference
 * quantize_row_q8_0 / quantize_row_q8_K define them (n a multiple of 32 / 256):
 *   Q8_0: per 32 values, f16 d = amax / 127, q = round(x / d)      (34 bytes)
 *   Q8_K: per 256 values, f32 d = max / -127 of the value with the largest
 *         magnitude, q = min(127, round(x / d)), int16 sums of each 16 q (292 bytes)
 * They are the reference every SIMD quantizer must match byte for byte. */
void quantize_row_q8_0(const float *x, void *out, int64_t n);
void quantize_row_q8_K(const float *x, void *out, int64_t n);

/* The float dot product every scalar kernel uses: element i goes to one of
 * DOT_LANES float accumulators (i % DOT_LANES), which are summed pairwise at the
 * end. The split into lanes bounds the rounding error by about
 * (n/DOT_LANES + 3) * 2^-24 * sum|a_i b_i| and lets the compiler vectorize
 * without -ffast-math. The order is fixed, so results are reproducible. */
#define DOT_LANES 8
float dot_f32(const float *a, const float *b, int64_t n);

/* Streaming form of dot_f32: feeding a vector in pieces whose lengths (all but
 * the last) are multiples of DOT_LANES gives the same bits as one dot_f32 call. */
typedef struct dot_acc {
    float lane[DOT_LANES];
    int64_t n;                   /* elements fed so far */
} dot_acc;
void dot_acc_init(dot_acc *acc);
void dot_acc_feed(dot_acc *acc, const float *a, const float *b, int64_t n);
float dot_acc_sum(const dot_acc *acc);

#endif
