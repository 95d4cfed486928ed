/* test_kernels.c - the CPU backend's reference kernels: fp16/bf16 conversion,
 * the dequantizers on hand-built blocks, every op against a float64 reference,
 * bitwise-identical results for any thread count, the thread pool's split rule,
 * argument checks and weight binding. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "backend/backend.h"
#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/threadpool.h"
#include "base/alloc.h"
#include "base/error.h"
#include "tensor/quant.h"
#include "tensor/types.h"

static const backend_vtable *const B = &cpu_backend;

/* ---- helpers -------------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static void rng_seed(uint64_t s)
{
    rng_state = s * 0x9e3779b97f4a7c15ull + 1;
}

static uint32_t rng_u32(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

/* Uniform in [lo, hi). */
static float rng_uniform(float lo, float hi)
{
    return lo + (hi - lo) * (float)(rng_u32() >> 8) * 0x1p-24f;
}

static void fill_uniform(float *x, int64_t n, float lo, float hi)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = rng_uniform(lo, hi);
}

static uint32_t bits_of(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float float_of(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static backend_ctx *ctx_new(int32_t n_threads)
{
    backend_ctx *ctx = NULL;
    lmrt_status st = B->ctx_create(0, n_threads, &ctx);
    if (st != LMRT_OK)
        fail_msg("ctx_create(%d): %s", (int)n_threads, lmrt_last_error());
    return ctx;
}

static void put_f16(uint8_t *p, float v)
{
    uint16_t h = fp32_to_fp16(v);
    p[0] = (uint8_t)(h & 0xff);
    p[1] = (uint8_t)(h >> 8);
}

static tensor_view view_of(uint32_t type, int64_t n_cols, int64_t n_rows, const void *data,
                           const char *name)
{
    const tensor_type_traits *tt = tensor_type_get(type);
    tensor_view v = {type, n_cols, n_rows, (size_t)(n_cols / tt->block_elems) * tt->block_bytes,
                     data, name};
    return v;
}

/* A random, valid row set of `type`: plain types get values in [-1, 1); block
 * types get random quant bytes and small random scales (never inf or NaN). */
static uint8_t *random_weights(uint32_t type, int64_t n_cols, int64_t n_rows)
{
    const tensor_type_traits *tt = tensor_type_get(type);
    int64_t n_blocks = n_cols / tt->block_elems * n_rows;
    size_t bytes = (size_t)n_blocks * tt->block_bytes;
    uint8_t *w = malloc(bytes ? bytes : 1);
    assert_non_null(w);
    for (size_t i = 0; i < bytes; i++)
        w[i] = (uint8_t)rng_u32();
    for (int64_t b = 0; b < n_blocks; b++) {
        uint8_t *blk = w + (size_t)b * tt->block_bytes;
        switch (type) {
        case GGML_TYPE_F32: {
            float v = rng_uniform(-1, 1);
            memcpy(blk, &v, 4);
            break;
        }
        case GGML_TYPE_F16: put_f16(blk, rng_uniform(-1, 1)); break;
        case GGML_TYPE_BF16: {
            uint16_t h = fp32_to_bf16(rng_uniform(-1, 1));
            blk[0] = (uint8_t)h;
            blk[1] = (uint8_t)(h >> 8);
            break;
        }
        case GGML_TYPE_Q8_0: put_f16(blk, rng_uniform(-0.02f, 0.02f)); break;
        case GGML_TYPE_Q4_0: put_f16(blk, rng_uniform(-0.2f, 0.2f)); break;
        case GGML_TYPE_Q4_K:
            put_f16(blk, rng_uniform(0.0f, 0.01f));
            put_f16(blk + 2, rng_uniform(0.0f, 0.01f));
            break;
        case GGML_TYPE_Q6_K: put_f16(blk + 208, rng_uniform(-0.001f, 0.001f)); break;
        default: fail_msg("random_weights: type %u", (unsigned)type);
        }
    }
    return w;
}

static const uint32_t all_types[] = {
    GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16, GGML_TYPE_Q8_0,
    GGML_TYPE_Q4_0, GGML_TYPE_Q4_K, GGML_TYPE_Q6_K,
};
#define N_TYPES (sizeof all_types / sizeof all_types[0])

/* ---- fp16 / bf16 ------------------------------------------------------------ */

static void fp16_known_values_convert_exactly(void **state)
{
    (void)state;
    static const struct { uint16_t h; float f; } known[] = {
        {0x0000, 0.0f}, {0x3c00, 1.0f}, {0xbc00, -1.0f}, {0x4000, 2.0f}, {0xc000, -2.0f},
        {0x3555, 0x1.554p-2f}, {0x7bff, 65504.0f}, {0xfbff, -65504.0f},
        {0x0400, 0x1p-14f},              /* smallest normal */
        {0x0001, 0x1p-24f},              /* smallest subnormal */
        {0x03ff, 0x1.ff8p-15f},          /* largest subnormal: 1023 * 2^-24 */
        {0x0200, 0x1p-15f}, {0x3800, 0.5f}, {0x5640, 100.0f},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        assert_int_equal(bits_of(fp16_to_fp32(known[i].h)), bits_of(known[i].f));
        assert_int_equal(fp32_to_fp16(known[i].f), known[i].h);
    }
    assert_int_equal(bits_of(fp16_to_fp32(0x8000)), 0x80000000u);           /* -0 */
    assert_int_equal(fp32_to_fp16(-0.0f), 0x8000);
    assert_true(isinf(fp16_to_fp32(0x7c00)) && fp16_to_fp32(0x7c00) > 0);
    assert_true(isinf(fp16_to_fp32(0xfc00)) && fp16_to_fp32(0xfc00) < 0);
    assert_true(isnan(fp16_to_fp32(0x7e00)) && isnan(fp16_to_fp32(0x7c01)));
    assert_int_equal(fp32_to_fp16(INFINITY), 0x7c00);
    assert_int_equal(fp32_to_fp16(-INFINITY), 0xfc00);
    assert_int_equal(fp32_to_fp16(NAN) & 0x7c00, 0x7c00);
    assert_int_not_equal(fp32_to_fp16(NAN) & 0x03ff, 0);
    /* A NaN whose payload sits only in the low 13 bits must not become inf. */
    assert_int_not_equal(fp32_to_fp16(float_of(0x7f800001u)) & 0x3ff, 0);
}

static void fp16_round_trip_is_exact_for_all_65536_values(void **state)
{
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = fp16_to_fp32((uint16_t)h);
        assert_int_equal(fp32_to_fp16(f), h);
        /* Also check the value against the definition, computed in double. */
        int e = (int)((h >> 10) & 0x1f), m = (int)(h & 0x3ff);
        double want = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY)
                                                       : ldexp(1024 + m, e - 25);
        if (h & 0x8000)
            want = -want;
        if (isnan(want))
            assert_true(isnan(f));
        else
            assert_true((double)f == want);
    }
}

static void fp32_to_fp16_rounds_to_nearest_even(void **state)
{
    (void)state;
    /* Between every pair of adjacent positive finite halves: the midpoint (exact in
     * float) goes to the even one, a float ulp either side goes to the nearer one. */
    for (uint32_t h = 0; h < 0x7bff; h++) {
        double lo = fp16_to_fp32((uint16_t)h), hi = fp16_to_fp32((uint16_t)(h + 1));
        float mid = (float)((lo + hi) / 2);
        assert_true((double)mid == (lo + hi) / 2);
        uint16_t even = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
        assert_int_equal(fp32_to_fp16(mid), even);
        assert_int_equal(fp32_to_fp16(-mid), even | 0x8000);
        assert_int_equal(fp32_to_fp16(nextafterf(mid, 0.0f)), h);
        assert_int_equal(fp32_to_fp16(nextafterf(mid, INFINITY)), h + 1);
    }
    /* Overflow: 65520 is halfway from 65504 (odd mantissa) to 65536, so it rounds up
     * to inf; anything below stays 65504. */
    assert_int_equal(fp32_to_fp16(65520.0f), 0x7c00);
    assert_int_equal(fp32_to_fp16(nextafterf(65520.0f, 0.0f)), 0x7bff);
    assert_int_equal(fp32_to_fp16(1e10f), 0x7c00);
    assert_int_equal(fp32_to_fp16(-1e10f), 0xfc00);
    /* Underflow: 2^-25 is halfway between 0 and the smallest subnormal: to 0 (even). */
    assert_int_equal(fp32_to_fp16(0x1p-25f), 0x0000);
    assert_int_equal(fp32_to_fp16(nextafterf(0x1p-25f, 1.0f)), 0x0001);
    assert_int_equal(fp32_to_fp16(0x1.8p-24f), 0x0002);  /* 1.5 ulps: tie, to even 2 */
    assert_int_equal(fp32_to_fp16(1e-30f), 0x0000);
    assert_int_equal(fp32_to_fp16(-1e-30f), 0x8000);
    assert_int_equal(fp32_to_fp16(0x1p-149f), 0x0000);   /* float subnormal */
    /* The largest subnormal rounding up into the smallest normal. */
    assert_int_equal(fp32_to_fp16(nextafterf(0x1p-14f, 0.0f)), 0x0400);
}

static void bf16_converts_exactly_and_rounds_to_nearest_even(void **state)
{
    (void)state;
    assert_int_equal(bits_of(bf16_to_fp32(0x3f80)), bits_of(1.0f));
    assert_int_equal(bits_of(bf16_to_fp32(0xc040)), bits_of(-3.0f));
    assert_int_equal(bits_of(bf16_to_fp32(0x0001)), 0x00010000u);  /* subnormal */
    assert_true(isinf(bf16_to_fp32(0x7f80)));
    assert_int_equal(fp32_to_bf16(1.0f), 0x3f80);
    assert_int_equal(fp32_to_bf16(-3.0f), 0xc040);
    /* 1 + 2^-8 is halfway between 1 (0x3f80, even) and 1 + 2^-7 (0x3f81): down. */
    assert_int_equal(fp32_to_bf16(1.0f + 0x1p-8f), 0x3f80);
    assert_int_equal(fp32_to_bf16(nextafterf(1.0f + 0x1p-8f, 2.0f)), 0x3f81);
    /* 1 + 3*2^-8 is halfway between 0x3f81 (odd) and 0x3f82: up. */
    assert_int_equal(fp32_to_bf16(1.0f + 0x3p-8f), 0x3f82);
    assert_int_equal(fp32_to_bf16(nextafterf(1.0f + 0x3p-8f, 0.0f)), 0x3f81);
    /* FLT_MAX is past the last bf16 plus half an ulp: inf. */
    assert_int_equal(fp32_to_bf16(float_of(0x7f7fffffu)), 0x7f80);
    assert_int_equal(fp32_to_bf16(INFINITY), 0x7f80);
    assert_int_equal(fp32_to_bf16(-INFINITY), 0xff80);
    /* NaNs stay NaN even when the payload is only in the low half. */
    uint16_t n = fp32_to_bf16(float_of(0x7f800001u));
    assert_true(isnan(bf16_to_fp32(n)));
    for (uint32_t h = 0; h < 65536; h++) {
        float f = bf16_to_fp32((uint16_t)h);
        if (isnan(f))
            assert_true(isnan(bf16_to_fp32(fp32_to_bf16(f))));
        else
            assert_int_equal(fp32_to_bf16(f), h);
    }
}

/* ---- dequantizers on hand-built blocks ------------------------------------------ */

static void supported_types_are_the_seven(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_TYPES; i++) {
        assert_true(quant_type_supported(all_types[i]));
        assert_true(B->supports_type(all_types[i]));
    }
    static const uint32_t others[] = {GGML_TYPE_Q4_1, GGML_TYPE_Q5_0, GGML_TYPE_Q5_K,
                                      GGML_TYPE_Q8_K, GGML_TYPE_I32, GGML_TYPE_F64, 4, 31, 9999};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        assert_false(quant_type_supported(others[i]));
        assert_false(B->supports_type(others[i]));
    }
    float out[32];
    uint8_t row[64] = {0};
    assert_int_equal(dequantize_row(GGML_TYPE_Q5_K, row, out, 256), LMRT_E_UNSUPPORTED);
    assert_int_equal(dequantize_row(GGML_TYPE_Q8_0, row, out, 31), LMRT_E_INVALID_ARG);
    assert_int_equal(dequantize_row(GGML_TYPE_Q8_0, row, out, -32), LMRT_E_INVALID_ARG);
    assert_int_equal(dequantize_row(GGML_TYPE_Q8_0, NULL, out, 32), LMRT_E_INVALID_ARG);
    assert_int_equal(dequantize_row(GGML_TYPE_Q8_0, row, out, 0), LMRT_OK);
}

static void plain_rows_dequantize_exactly(void **state)
{
    (void)state;
    /* F16, little-endian: 1, -2, 65504, 2^-24, -0, inf. */
    const uint8_t f16[] = {0x00, 0x3c, 0x00, 0xc0, 0xff, 0x7b, 0x01, 0x00, 0x00, 0x80,
                           0x00, 0x7c};
    float out[6];
    assert_int_equal(dequantize_row(GGML_TYPE_F16, f16, out, 6), LMRT_OK);
    assert_true(out[0] == 1.0f && out[1] == -2.0f && out[2] == 65504.0f);
    assert_true(out[3] == 0x1p-24f && out[4] == 0.0f && signbit(out[4]) && isinf(out[5]));
    /* BF16: 1, -3, 0.5 (0x3f00). */
    const uint8_t bf16[] = {0x80, 0x3f, 0x40, 0xc0, 0x00, 0x3f};
    assert_int_equal(dequantize_row(GGML_TYPE_BF16, bf16, out, 3), LMRT_OK);
    assert_true(out[0] == 1.0f && out[1] == -3.0f && out[2] == 0.5f);
    /* F32 from an odd (unaligned) address. */
    uint8_t buf[1 + 8];
    const float f32[2] = {1.5f, -7.25f};
    memcpy(buf + 1, f32, sizeof f32);
    assert_int_equal(dequantize_row(GGML_TYPE_F32, buf + 1, out, 2), LMRT_OK);
    assert_true(out[0] == 1.5f && out[1] == -7.25f);
}

static void q8_0_blocks_dequantize_as_d_times_q(void **state)
{
    (void)state;
    /* Block 0: d = 0.5 (f16 0x3800), q[i] = i - 16. Block 1: d = -2 (0xc000), q[i] = 3i - 128 + 32
     * except q[0] = -128 and q[31] = 127 (the int8 extremes). */
    uint8_t row[2 * 34];
    row[0] = 0x00; row[1] = 0x38;
    for (int i = 0; i < 32; i++)
        row[2 + i] = (uint8_t)(int8_t)(i - 16);
    row[34] = 0x00; row[35] = 0xc0;
    for (int i = 0; i < 32; i++)
        row[36 + i] = (uint8_t)(int8_t)(3 * i - 96);
    row[36] = 0x80;   /* -128 */
    row[67] = 0x7f;   /* 127 */
    float out[64];
    assert_int_equal(dequantize_row(GGML_TYPE_Q8_0, row, out, 64), LMRT_OK);
    for (int i = 0; i < 32; i++)
        assert_true(out[i] == (float)(i - 16) * 0.5f);
    assert_true(out[32] == 256.0f && out[63] == -254.0f);
    for (int i = 1; i < 31; i++)
        assert_true(out[32 + i] == (float)(3 * i - 96) * -2.0f);
}

static void q4_0_low_nibbles_are_0_to_15_high_are_16_to_31(void **state)
{
    (void)state;
    /* d = 0.25 (0x3400); byte j = j | (15 - j) << 4, so element j = (j - 8) / 4 and
     * element j + 16 = (15 - j - 8) / 4 = (7 - j) / 4. */
    uint8_t row[18];
    row[0] = 0x00; row[1] = 0x34;
    for (int j = 0; j < 16; j++)
        row[2 + j] = (uint8_t)(j | ((15 - j) << 4));
    float out[32];
    assert_int_equal(dequantize_row(GGML_TYPE_Q4_0, row, out, 32), LMRT_OK);
    for (int j = 0; j < 16; j++) {
        assert_true(out[j] == (float)(j - 8) * 0.25f);
        assert_true(out[j + 16] == (float)(7 - j) * 0.25f);
    }
    assert_true(out[0] == -2.0f && out[15] == 1.75f && out[16] == 1.75f && out[31] == -2.0f);
}

/* Q4_K with d = 1 (0x3c00), dmin = 0.5 (0x3800) and eight 6-bit (scale, min) pairs
 * chosen so that sub-blocks 4..7 need their top two bits:
 *   scale = {1, 2, 3, 4, 17, 33, 50, 63}, min = {0, 5, 10, 63, 20, 36, 48, 1}.
 * Packed by hand (ggml get_scale_min_k4):
 *   bytes 0..3  = scale[j] | (scale[j+4] >> 4) << 6 = 1|1<<6, 2|2<<6, 3|3<<6, 4|3<<6
 *               = 0x41, 0x82, 0xc3, 0xc4
 *   bytes 4..7  = min[j] | (min[j+4] >> 4) << 6    = 0|1<<6, 5|2<<6, 10|3<<6, 63|0<<6
 *               = 0x40, 0x85, 0xca, 0x3f
 *   bytes 8..11 = (scale[j+4] & 15) | (min[j+4] & 15) << 4 = 1|4<<4, 1|4<<4, 2|0<<4, 15|1<<4
 *               = 0x41, 0x41, 0x02, 0x1f
 * qs[i] = 7i mod 256. Element e is in chunk c = e / 64; within it, the first 32 take
 * the low nibbles of qs[32c .. 32c+31] with sub-block 2c, the next 32 the high nibbles
 * with sub-block 2c+1; value = d * scale * q - dmin * min. */
static void q4_k_block_uses_packed_6_bit_scales_and_mins(void **state)
{
    (void)state;
    static const int scale[8] = {1, 2, 3, 4, 17, 33, 50, 63};
    static const int min[8] = {0, 5, 10, 63, 20, 36, 48, 1};
    uint8_t blk[144] = {0x00, 0x3c, 0x00, 0x38,
                        0x41, 0x82, 0xc3, 0xc4, 0x40, 0x85, 0xca, 0x3f, 0x41, 0x41, 0x02, 0x1f};
    for (int i = 0; i < 128; i++)
        blk[16 + i] = (uint8_t)(7 * i);
    uint8_t row[2 * 144];
    memcpy(row, blk, 144);
    memcpy(row + 144, blk, 144);
    row[144 + 1] = 0x40;  /* second block: d = 2 (0x4000) */
    float out[512];
    assert_int_equal(dequantize_row(GGML_TYPE_Q4_K, row, out, 512), LMRT_OK);
    for (int b = 0; b < 2; b++) {
        float d = b ? 2.0f : 1.0f;
        for (int e = 0; e < 256; e++) {
            int c = e / 64, in = e % 64, sub = 2 * c + (in >= 32);
            uint8_t byte = (uint8_t)(7 * (32 * c + in % 32));
            int q = in < 32 ? (byte & 15) : (byte >> 4);
            float want = d * (float)scale[sub] * (float)q - 0.5f * (float)min[sub];
            if (out[256 * b + e] != want)
                fail_msg("block %d element %d: %g, want %g", b, e, (double)out[256 * b + e],
                         (double)want);
        }
    }
    /* Spot checks worked out by hand:
     *   e=0:   sub 0, q = low(qs[0]=0) = 0           -> 1*1*0 - 0.5*0   = 0
     *   e=33:  sub 1, q = high(qs[1]=7) = 0          -> 0 - 0.5*5       = -2.5
     *   e=100: sub 3, q = high(qs[36]=0xfc) = 15     -> 4*15 - 0.5*63   = 28.5
     *   e=200: sub 6, q = low(qs[104]=0xd8) = 8      -> 50*8 - 0.5*48   = 376
     *   e=255: sub 7, q = high(qs[127]=0x79) = 7     -> 63*7 - 0.5*1    = 440.5 */
    assert_true(out[0] == 0.0f && out[33] == -2.5f && out[100] == 28.5f);
    assert_true(out[200] == 376.0f && out[255] == 440.5f);
    assert_true(out[256 + 255] == 2.0f * 63 * 7 - 0.5f);
}

/* Q6_K with d = 0.5 (0x3800), ql[i] = 13i, qh[i] = 29i (mod 256) and signed scales
 * {1,-1,2,-2,3,-3,4,-4,5,-5,6,-6,7,-7,8,-128}. Element e: half = e / 128, r = e % 128,
 * quarter = r / 32, l = r % 32; its low 4 bits are ql[64*half + l + 32*(quarter & 1)]
 * (low nibble for quarters 0, 1, high for 2, 3); its top 2 bits are bits
 * 2*quarter .. 2*quarter+1 of qh[32*half + l]; its scale is scales[e / 16];
 * value = d * scale * (q - 32). */
static void q6_k_block_interleaves_low_and_high_bits(void **state)
{
    (void)state;
    static const int8_t sc[16] = {1, -1, 2, -2, 3, -3, 4, -4, 5, -5, 6, -6, 7, -7, 8, -128};
    uint8_t blk[210];
    for (int i = 0; i < 128; i++)
        blk[i] = (uint8_t)(13 * i);
    for (int i = 0; i < 64; i++)
        blk[128 + i] = (uint8_t)(29 * i);
    memcpy(blk + 192, sc, 16);
    blk[208] = 0x00;
    blk[209] = 0x38;
    float out[256];
    assert_int_equal(dequantize_row(GGML_TYPE_Q6_K, blk, out, 256), LMRT_OK);
    for (int e = 0; e < 256; e++) {
        int half = e / 128, r = e % 128, quarter = r / 32, l = r % 32;
        uint8_t lo = (uint8_t)(13 * (64 * half + l + 32 * (quarter & 1)));
        uint8_t hi = (uint8_t)(29 * (32 * half + l));
        int q = (quarter < 2 ? (lo & 15) : (lo >> 4)) | (((hi >> (2 * quarter)) & 3) << 4);
        float want = 0.5f * (float)sc[e / 16] * (float)(q - 32);
        if (out[e] != want)
            fail_msg("element %d: %g, want %g", e, (double)out[e], (double)want);
    }
    /* By hand:
     *   e=0:   ql[0]=0 low 0, qh[0]=0 bits 0-1 = 0: q = 0, scale 1       -> 0.5*1*(-32) = -16
     *   e=70:  quarter 2, l 6: ql[6]=78=0x4e high 4; qh[6]=174=0b10101110 bits 4-5 = 2:
     *          q = 4 + 32 = 36, scale[4] = 3                           -> 0.5*3*4 = 6
     *   e=255: half 1, quarter 3, l 31: ql[127]=0x73 high 7; qh[63]=35=0b00100011 bits 6-7 = 0:
     *          q = 7, scale[15] = -128                                  -> 0.5*-128*-25 = 1600 */
    assert_true(out[0] == -16.0f && out[70] == 6.0f && out[255] == 1600.0f);
}

/* ---- matmul --------------------------------------------------------------------- */

/* Checks y = x W^T against a float64 reference. The weights are the dequantized
 * values (checked above on hand-built blocks), so the only error is the kernel's
 * float accumulation: dot_f32 sums n products into 8 lanes of n/8 terms each and
 * adds the lanes in 3 pairwise steps, so |y - exact| <= (n/8 + 4) * 2^-24 *
 * sum |w_i x_i| (standard bound gamma_k with k = n/8 + 3 additions plus the
 * rounding of the product); we allow exactly that. */
static void check_matmul(backend_ctx *ctx, uint32_t type, int64_t n_cols, int64_t n_rows,
                         int32_t n_tok)
{
    uint8_t *wdata = random_weights(type, n_cols, n_rows);
    tensor_view host = view_of(type, n_cols, n_rows, wdata, "blk.0.test.weight"), w;
    assert_int_equal(B->bind_weight(ctx, &host, &w), LMRT_OK);
    float *x = malloc(sizeof(float) * (size_t)(n_cols * n_tok));
    float *y = malloc(sizeof(float) * (size_t)(n_rows * n_tok));
    float *wf = malloc(sizeof(float) * (size_t)(n_cols * n_rows));
    assert_true(x && y && wf);
    fill_uniform(x, n_cols * n_tok, -1, 1);
    assert_int_equal(dequantize_row(type, wdata, wf, n_cols * n_rows), LMRT_OK);
    assert_int_equal(B->matmul(ctx, &w, x, n_tok, y), LMRT_OK);
    for (int32_t t = 0; t < n_tok; t++)
        for (int64_t r = 0; r < n_rows; r++) {
            double exact = 0, mag = 0;
            for (int64_t c = 0; c < n_cols; c++) {
                exact += (double)wf[r * n_cols + c] * x[t * n_cols + c];
                mag += fabs((double)wf[r * n_cols + c] * x[t * n_cols + c]);
            }
            double got = y[t * n_rows + r];
            double tol = (double)(n_cols / 8 + 4) * 0x1p-24 * mag + 1e-30;
            if (fabs(got - exact) > tol)
                fail_msg("%s %lldx%lld n_tok %d: y[%d][%lld] = %.9g, want %.9g (tol %.3g)",
                         tensor_type_name(type), (long long)n_rows, (long long)n_cols,
                         (int)n_tok, (int)t, (long long)r, got, exact, tol);
            /* The same bits as the one-row dot of quant.h. */
            const uint8_t *row = wdata + (size_t)r * w.row_bytes;
            assert_int_equal(bits_of(y[t * n_rows + r]),
                             bits_of(vec_dot_row(type, row, x + t * n_cols, n_cols)));
        }
    B->unbind_weight(ctx, &w);
    free(wf);
    free(y);
    free(x);
    free(wdata);
}

static void matmul_matches_float64_reference_for_every_type(void **state)
{
    (void)state;
    rng_seed(1);
    backend_ctx *ctx = ctx_new(3);
    static const int32_t rows[] = {1, 7, 33}, toks[] = {1, 3, 17};
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        uint32_t type = all_types[ti];
        int64_t blk = tensor_type_get(type)->block_elems;
        /* One block and several; plain types get lengths that are not multiples of 8. */
        int64_t cols[2] = {blk == 1 ? 37 : blk, blk == 1 ? 301 : 3 * blk};
        for (int ci = 0; ci < 2; ci++)
            for (int ri = 0; ri < 3; ri++)
                for (int ki = 0; ki < 3; ki++)
                    check_matmul(ctx, type, cols[ci], rows[ri], toks[ki]);
    }
    B->ctx_free(ctx);
}

static void matmul_reads_unaligned_f32_weights(void **state)
{
    (void)state;
    rng_seed(2);
    backend_ctx *ctx = ctx_new(2);
    enum { C = 40, R = 5 };
    float wf[R * C], x[C], y[R];
    fill_uniform(wf, R * C, -1, 1);
    fill_uniform(x, C, -1, 1);
    uint8_t *buf = malloc(sizeof wf + 1);
    assert_non_null(buf);
    memcpy(buf + 1, wf, sizeof wf);
    tensor_view w = view_of(GGML_TYPE_F32, C, R, buf + 1, "odd");
    assert_int_equal(B->matmul(ctx, &w, x, 1, y), LMRT_OK);
    for (int r = 0; r < R; r++)
        assert_int_equal(bits_of(y[r]), bits_of(dot_f32(wf + r * C, x, C)));
    free(buf);
    B->ctx_free(ctx);
}

static void dot_f32_gives_the_same_bits_fed_in_any_pieces(void **state)
{
    (void)state;
    rng_seed(3);
    float a[203], b[203];
    fill_uniform(a, 203, -1, 1);
    fill_uniform(b, 203, -1, 1);
    float whole = dot_f32(a, b, 203);
    static const int cuts[][3] = {{1, 2, 200}, {7, 9, 187}, {8, 64, 131}, {100, 3, 100}};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        dot_acc acc;
        dot_acc_init(&acc);
        int off = 0;
        for (int p = 0; p < 3; p++) {
            dot_acc_feed(&acc, a + off, b + off, cuts[i][p]);
            off += cuts[i][p];
        }
        assert_int_equal(off, 203);
        assert_int_equal(bits_of(dot_acc_sum(&acc)), bits_of(whole));
    }
    assert_true(dot_f32(a, b, 0) == 0.0f);
}

/* ---- small ops ---------------------------------------------------------------- */

static void rmsnorm_matches_float64_reference(void **state)
{
    (void)state;
    rng_seed(4);
    backend_ctx *ctx = ctx_new(2);
    enum { N = 77, T = 5 };
    float x[T * N], w[N], y[T * N];
    fill_uniform(x, T * N, -3, 3);
    fill_uniform(w, N, 0.5f, 2);
    const float eps = 1e-5f;
    assert_int_equal(B->rmsnorm(ctx, x, w, N, T, eps, y), LMRT_OK);
    for (int t = 0; t < T; t++) {
        double ss = 0;
        for (int i = 0; i < N; i++)
            ss += (double)x[t * N + i] * x[t * N + i];
        double s = 1.0 / sqrt(ss / N + eps);
        /* The scale is rounded to float once, then two float products: 3 roundings
         * of 2^-24 relative each (plus the double sum, far below that). */
        for (int i = 0; i < N; i++) {
            double want = x[t * N + i] * s * w[i];
            assert_true(fabs(y[t * N + i] - want) <= 3.01 * 0x1p-24 * fabs(want));
        }
    }
    /* In place gives the same bits. */
    float z[T * N];
    memcpy(z, x, sizeof z);
    assert_int_equal(B->rmsnorm(ctx, z, w, N, T, eps, z), LMRT_OK);
    assert_memory_equal(z, y, sizeof z);
    B->ctx_free(ctx);
}

/* x: [n_tok][n_head][head_dim]; the reference formula in double. */
static void rope_reference(const float *x, double *out, int n_tok, int n_head, int head_dim,
                           int n_rot, const int32_t *pos, double base, const float *ff)
{
    for (int t = 0; t < n_tok; t++)
        for (int h = 0; h < n_head; h++) {
            const float *p = x + ((size_t)t * n_head + h) * head_dim;
            double *o = out + ((size_t)t * n_head + h) * head_dim;
            for (int d = 0; d < head_dim; d++)
                o[d] = p[d];
            for (int i = 0; i < n_rot / 2; i++) {
                double theta = pos[t] * pow(base, -2.0 * i / n_rot) / (ff ? ff[i] : 1.0);
                o[2 * i] = p[2 * i] * cos(theta) - p[2 * i + 1] * sin(theta);
                o[2 * i + 1] = p[2 * i] * sin(theta) + p[2 * i + 1] * cos(theta);
            }
        }
}

static void rope_matches_formula_with_and_without_freq_factors(void **state)
{
    (void)state;
    rng_seed(5);
    backend_ctx *ctx = ctx_new(2);
    enum { T = 4, H = 3, D = 16 };
    const int32_t pos[T] = {0, 1, 17, 5000};
    float ff[D / 2];
    fill_uniform(ff, D / 2, 1, 8);
    const int n_rots[] = {D, 8, 0};
    for (int fi = 0; fi < 2; fi++)
        for (size_t ri = 0; ri < 3; ri++) {
            int n_rot = n_rots[ri];
            const float *f = fi ? ff : NULL;
            float x[T * H * D], y[T * H * D];
            double want[T * H * D];
            fill_uniform(x, T * H * D, -2, 2);
            memcpy(y, x, sizeof y);
            rope_reference(x, want, T, H, D, n_rot, pos, 500000.0, f);
            assert_int_equal(B->rope(ctx, y, T, H, D, n_rot, pos, 500000.0f, f), LMRT_OK);
            for (int i = 0; i < T * H * D; i++) {
                int d = i % D;
                if (d >= n_rot) {  /* dims past n_rot are untouched */
                    assert_int_equal(bits_of(y[i]), bits_of(x[i]));
                    continue;
                }
                /* Computed in double and rounded once: half an ulp of the result, plus
                 * the double rounding of the rotation (~2^-52 of |x0| + |x1|). */
                int p0 = i - (d % 2);
                double mag = fabs(x[p0]) + fabs(x[p0 + 1]);
                double tol = 0x1p-24 * fabs(want[i]) + 0x1p-48 * mag;
                if (fabs(y[i] - want[i]) > tol)
                    fail_msg("n_rot %d ff %d: x[%d] = %.9g, want %.9g", n_rot, fi, i,
                             (double)y[i], want[i]);
            }
        }
    B->ctx_free(ctx);
}

static void silu_mul_and_add_match_reference(void **state)
{
    (void)state;
    rng_seed(6);
    backend_ctx *ctx = ctx_new(2);
    enum { N = 1000 };
    float g[N], u[N], y[N], x[N];
    fill_uniform(g, N, -20, 20);
    fill_uniform(u, N, -2, 2);
    g[0] = -200.0f;  /* e^200 overflows float: silu must be -0, not NaN */
    g[1] = 200.0f;
    float g0[N];
    memcpy(g0, g, sizeof g);
    assert_int_equal(B->silu_mul(ctx, g, u, N), LMRT_OK);
    for (int i = 0; i < N; i++) {
        double want = g0[i] / (1.0 + exp(-(double)g0[i])) * u[i];
        /* expf is within 1 ulp here; with the add, divide and multiply: < 5 ulps. */
        assert_true(fabs(g[i] - want) <= 5 * 0x1p-24 * fabs(want) + 1e-37);
    }
    assert_false(isnan(g[0]));
    fill_uniform(y, N, -1, 1);
    fill_uniform(x, N, -1, 1);
    float y0[N];
    memcpy(y0, y, sizeof y);
    assert_int_equal(B->add(ctx, y, x, N), LMRT_OK);
    for (int i = 0; i < N; i++)
        assert_true(y[i] == y0[i] + x[i]);  /* one float addition: exact */
    assert_int_equal(B->add(ctx, y, x, 0), LMRT_OK);
    assert_int_equal(B->silu_mul(ctx, NULL, NULL, 0), LMRT_OK);
    B->ctx_free(ctx);
}

static void get_rows_dequantizes_the_chosen_rows(void **state)
{
    (void)state;
    rng_seed(7);
    backend_ctx *ctx = ctx_new(3);
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        uint32_t type = all_types[ti];
        int64_t cols = tensor_type_get(type)->block_elems == 256 ? 512 : 64, rows = 11;
        uint8_t *data = random_weights(type, cols, rows);
        tensor_view v = view_of(type, cols, rows, data, "token_embd.weight");
        const int32_t ids[5] = {10, 0, 3, 3, 7};
        float out[5 * 512], want[512];
        assert_int_equal(B->get_rows(ctx, &v, ids, 5, out), LMRT_OK);
        for (int i = 0; i < 5; i++) {
            assert_int_equal(dequantize_row(type, data + (size_t)ids[i] * v.row_bytes, want,
                                            cols), LMRT_OK);
            assert_memory_equal(out + i * cols, want, sizeof(float) * (size_t)cols);
        }
        const int32_t bad_hi[2] = {0, 11}, bad_lo[1] = {-1};
        assert_int_equal(B->get_rows(ctx, &v, bad_hi, 2, out), LMRT_E_INVALID_ARG);
        assert_non_null(strstr(lmrt_last_error(), "token_embd.weight"));
        assert_int_equal(B->get_rows(ctx, &v, bad_lo, 1, out), LMRT_E_INVALID_ARG);
        assert_int_equal(B->get_rows(ctx, &v, ids, 0, NULL), LMRT_OK);
        free(data);
    }
    B->ctx_free(ctx);
}

/* ---- attention ----------------------------------------------------------------- */

typedef struct attn_case {
    attention_params p;
    float *q, *k, *v;            /* k, v: [n_past + n_tok][kv_stride] */
} attn_case;

/* Random q, k, v; the padding past n_head_kv * head_dim in each cache row is NaN,
 * so that reading it would show. */
static attn_case attn_make(int n_tok, int n_past, int n_head, int n_head_kv, int head_dim,
                           int pad)
{
    attn_case c;
    c.p = (attention_params){n_tok, n_past, n_head, n_head_kv, head_dim,
                             n_head_kv * head_dim + pad, 1.0f / sqrtf((float)head_dim)};
    size_t nq = (size_t)n_tok * n_head * head_dim, nkv = (size_t)(n_past + n_tok) * c.p.kv_stride;
    c.q = malloc(nq * sizeof(float));
    c.k = malloc(nkv * sizeof(float));
    c.v = malloc(nkv * sizeof(float));
    assert_true(c.q && c.k && c.v);
    fill_uniform(c.q, (int64_t)nq, -2, 2);
    fill_uniform(c.k, (int64_t)nkv, -2, 2);
    fill_uniform(c.v, (int64_t)nkv, -1, 1);
    for (size_t j = 0; j < (size_t)(n_past + n_tok); j++)
        for (int i = n_head_kv * head_dim; i < c.p.kv_stride; i++)
            c.k[j * c.p.kv_stride + i] = c.v[j * c.p.kv_stride + i] = NAN;
    return c;
}

static void attn_free(attn_case *c)
{
    free(c->q);
    free(c->k);
    free(c->v);
}

static float *attn_run(backend_ctx *ctx, const attn_case *c)
{
    float *out = malloc(sizeof(float) * (size_t)c->p.n_tok * c->p.n_head * c->p.head_dim + 1);
    assert_non_null(out);
    lmrt_status st = B->attention(ctx, &c->p, c->q, c->k, c->v, out);
    if (st != LMRT_OK)
        fail_msg("attention: %s", lmrt_last_error());
    return out;
}

/* Naive causal GQA in double; checks out against it. The tolerance: each score
 * has the float dot error (head_dim/8 + 4) * 2^-24 * scale * sum|q k| (see
 * check_matmul), which moves each softmax weight by about twice that relative
 * amount; exp, the final scaling and the float accumulation over n_kv values add
 * (n_kv + 4) * 2^-24 relative to max|v|. We allow four times the sum. */
static void attn_check(const attn_case *c, const float *out)
{
    const attention_params *p = &c->p;
    int group = p->n_head / p->n_head_kv;
    double *s = malloc(sizeof(double) * (size_t)(p->n_past + p->n_tok));
    assert_non_null(s);
    for (int t = 0; t < p->n_tok; t++)
        for (int h = 0; h < p->n_head; h++) {
            int kvh = h / group, n_kv = p->n_past + t + 1;
            const float *q = c->q + ((size_t)t * p->n_head + h) * p->head_dim;
            double max = -INFINITY, sum = 0, mag = 0;
            for (int j = 0; j < n_kv; j++) {
                const float *k = c->k + (size_t)j * p->kv_stride + kvh * p->head_dim;
                double d = 0, m = 0;
                for (int i = 0; i < p->head_dim; i++) {
                    d += (double)q[i] * k[i];
                    m += fabs((double)q[i] * k[i]);
                }
                s[j] = d * p->scale;
                mag = fmax(mag, m * p->scale);
                max = fmax(max, s[j]);
            }
            for (int j = 0; j < n_kv; j++)
                sum += (s[j] = exp(s[j] - max));
            double ds = (p->head_dim / 8 + 4) * 0x1p-24 * mag;
            double tol = 4 * (2 * ds + (n_kv + 4) * 0x1p-24);  /* times max|v| = 1 */
            for (int i = 0; i < p->head_dim; i++) {
                double want = 0;
                for (int j = 0; j < n_kv; j++)
                    want += s[j] * c->v[(size_t)j * p->kv_stride + kvh * p->head_dim + i];
                want /= sum;
                double got = out[((size_t)t * p->n_head + h) * p->head_dim + i];
                if (!(fabs(got - want) <= tol))
                    fail_msg("t %d h %d i %d: %.9g, want %.9g (tol %.3g)", t, h, i, got, want,
                             tol);
            }
        }
    free(s);
}

static void attention_matches_float64_reference_with_gqa_and_history(void **state)
{
    (void)state;
    rng_seed(8);
    backend_ctx *ctx = ctx_new(3);
    static const int ratios[] = {1, 2, 4};
    static const int shapes[][3] = {{1, 0, 0}, {1, 9, 1}, {5, 0, 3}, {5, 13, 0}, {17, 40, 5}};
    for (int ri = 0; ri < 3; ri++)
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            int n_head_kv = 2, n_head = n_head_kv * ratios[ri];
            attn_case c = attn_make(shapes[si][0], shapes[si][1], n_head, n_head_kv, 16,
                                    shapes[si][2]);
            float *out = attn_run(ctx, &c);
            attn_check(&c, out);
            free(out);
            attn_free(&c);
        }
    B->ctx_free(ctx);
}

static void attention_ignores_positions_after_the_query(void **state)
{
    (void)state;
    rng_seed(9);
    backend_ctx *ctx = ctx_new(2);
    attn_case c = attn_make(4, 3, 4, 2, 8, 0);
    float *a = attn_run(ctx, &c);
    /* Change the newest position's key and value: only the last query sees it. */
    for (int i = 0; i < c.p.kv_stride; i++) {
        c.k[(size_t)6 * c.p.kv_stride + i] = 50.0f;
        c.v[(size_t)6 * c.p.kv_stride + i] = -50.0f;
    }
    float *b = attn_run(ctx, &c);
    size_t per_tok = (size_t)c.p.n_head * c.p.head_dim;
    assert_memory_equal(a, b, 3 * per_tok * sizeof(float));
    assert_memory_not_equal(a + 3 * per_tok, b + 3 * per_tok, per_tok * sizeof(float));
    free(a);
    free(b);
    attn_free(&c);
    B->ctx_free(ctx);
}

/* ---- thread counts --------------------------------------------------------------- */

/* Every op's output for one fixed input set, concatenated. */
static float *run_all_ops(backend_ctx *ctx, size_t *out_n)
{
    rng_seed(10);
    enum { C = 512, R = 33, T = 17, EW = 40000 };
    size_t n_mm = (size_t)T * R;
    float *x = malloc(sizeof(float) * C * T);
    assert_non_null(x);
    fill_uniform(x, C * T, -1, 1);
    static const uint32_t types[] = {GGML_TYPE_F32, GGML_TYPE_Q8_0, GGML_TYPE_Q4_K,
                                     GGML_TYPE_Q6_K, GGML_TYPE_BF16};
    size_t total = 5 * n_mm + (size_t)T * C + 3 * 4 * 64 + (size_t)EW * 2 + 3 * C;
    attn_case ac = attn_make(9, 30, 8, 2, 32, 3);
    size_t n_attn = (size_t)9 * 8 * 32;
    total += n_attn;
    float *all = malloc(sizeof(float) * total), *o = all;
    assert_non_null(all);
    for (int i = 0; i < 5; i++) {
        uint8_t *wd = random_weights(types[i], C, R);
        tensor_view w = view_of(types[i], C, R, wd, "w");
        assert_int_equal(B->matmul(ctx, &w, x, T, o), LMRT_OK);
        o += n_mm;
        if (types[i] == GGML_TYPE_Q4_K) {
            const int32_t ids[3] = {32, 1, 0};
            assert_int_equal(B->get_rows(ctx, &w, ids, 3, o), LMRT_OK);
            o += 3 * C;
        }
        free(wd);
    }
    float wn[C];
    fill_uniform(wn, C, 0.5f, 1.5f);
    assert_int_equal(B->rmsnorm(ctx, x, wn, C, T, 1e-6f, o), LMRT_OK);
    o += (size_t)T * C;
    float r[3 * 4 * 64];
    fill_uniform(r, 3 * 4 * 64, -1, 1);
    const int32_t pos[3] = {7, 8, 9};
    const float ff[16] = {1, 1, 2, 2, 4, 4, 8, 8, 1, 2, 3, 4, 5, 6, 7, 8};
    assert_int_equal(B->rope(ctx, r, 3, 4, 64, 32, pos, 10000.0f, ff), LMRT_OK);
    memcpy(o, r, sizeof r);
    o += 3 * 4 * 64;
    float *g = o, *y = o + EW;
    fill_uniform(g, EW, -5, 5);
    fill_uniform(y, EW, -5, 5);
    float *u = malloc(sizeof(float) * EW);
    assert_non_null(u);
    fill_uniform(u, EW, -1, 1);
    assert_int_equal(B->silu_mul(ctx, g, u, EW), LMRT_OK);
    assert_int_equal(B->add(ctx, y, u, EW), LMRT_OK);
    o += 2 * (size_t)EW;
    float *a = attn_run(ctx, &ac);
    memcpy(o, a, n_attn * sizeof(float));
    o += n_attn;
    assert_int_equal((size_t)(o - all), total);
    free(a);
    free(u);
    attn_free(&ac);
    free(x);
    *out_n = total;
    return all;
}

static void results_are_bitwise_identical_for_1_2_3_4_7_threads(void **state)
{
    (void)state;
    backend_ctx *c1 = ctx_new(1);
    size_t n1;
    float *ref = run_all_ops(c1, &n1);
    B->ctx_free(c1);
    static const int32_t counts[] = {2, 3, 4, 7};
    for (size_t i = 0; i < 4; i++) {
        backend_ctx *ctx = ctx_new(counts[i]);
        size_t n;
        float *got = run_all_ops(ctx, &n);
        assert_int_equal(n, n1);
        if (memcmp(ref, got, n * sizeof(float)) != 0)
            fail_msg("%d threads differ from 1 thread", (int)counts[i]);
        free(got);
        B->ctx_free(ctx);
    }
    free(ref);
}

/* ---- the thread pool ---------------------------------------------------------- */

enum { POOL_MAX_TASKS = 1000 };

typedef struct pool_log {
    int64_t n_tasks;
    int hits[POOL_MAX_TASKS];
    int thread_of[POOL_MAX_TASKS];
    int64_t begin_of[64], end_of[64];
    pthread_t caller;
    int on_caller[64];
} pool_log;

static void pool_record(void *arg, int64_t begin, int64_t end, int thread)
{
    pool_log *log = arg;
    log->begin_of[thread] = begin;
    log->end_of[thread] = end;
    log->on_caller[thread] = pthread_equal(pthread_self(), log->caller);
    for (int64_t i = begin; i < end; i++) {
        log->hits[i]++;
        log->thread_of[i] = thread;
    }
}

/* Threads of this process from /proc/self/status; -1 where that is not available. */
static int process_threads(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    int n = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %d", &n) == 1)
            break;
    fclose(f);
    return n;
}

/* The thread count once it reads `want`, or after 2 s: a joined thread leaves the
 * count a moment after pthread_join returns (under qemu-user, milliseconds later). */
static int process_threads_when(int want)
{
    int n = process_threads();
    for (int i = 0; i < 200 && n != want; i++) {
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
        n = process_threads();
    }
    return n;
}

/* The count once two reads 20 ms apart agree (threads of earlier tests gone). */
static int process_threads_settled(void)
{
    int n = process_threads(), prev;
    do {
        prev = n;
        nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
        n = process_threads();
    } while (n != prev);
    return n;
}

static void one_thread_context_starts_no_threads_and_free_joins_them(void **state)
{
    (void)state;
    int before = process_threads_settled();
    if (before < 0)
        skip();
    backend_ctx *one = ctx_new(1);
    assert_int_equal(process_threads_when(before), before);
    B->ctx_free(one);
    backend_ctx *four = ctx_new(4);
    assert_int_equal(process_threads_when(before + 3), before + 3);
    B->ctx_free(four);
    assert_int_equal(process_threads_when(before), before);
}

/* Adds the number of tasks each thread ran to its own counter. */
static void pool_count(void *arg, int64_t begin, int64_t end, int thread)
{
    ((int64_t *)arg)[thread] += end - begin;
}

static void threadpool_splits_tasks_by_the_fixed_rule(void **state)
{
    (void)state;
    static const int32_t counts[] = {1, 2, 3, 4, 7};
    static const int64_t tasks[] = {0, 1, 2, 5, 7, 8, 33, 999};
    pool_log *log = malloc(sizeof *log);
    assert_non_null(log);
    for (size_t ci = 0; ci < 5; ci++) {
        threadpool *pool = NULL;
        assert_int_equal(threadpool_create(counts[ci], &pool), LMRT_OK);
        assert_int_equal(threadpool_n_threads(pool), counts[ci]);
        for (int rep = 0; rep < 3; rep++)
            for (size_t ti = 0; ti < sizeof tasks / sizeof tasks[0]; ti++) {
                memset(log, 0, sizeof *log);
                for (int i = 0; i < 64; i++)
                    log->begin_of[i] = log->end_of[i] = -1;
                log->caller = pthread_self();
                int64_t n = tasks[ti];
                threadpool_run(pool, n, pool_record, log);
                int32_t used = n < counts[ci] ? (int32_t)n : counts[ci];
                for (int64_t i = 0; i < n; i++)
                    assert_int_equal(log->hits[i], 1);
                for (int32_t t = 0; t < used; t++) {
                    int64_t b = n * t / used, e = n * (t + 1) / used;
                    if (b == e)
                        continue;
                    assert_int_equal(log->begin_of[t], b);
                    assert_int_equal(log->end_of[t], e);
                    /* Thread 0 is the caller; the others are not. */
                    assert_int_equal(log->on_caller[t], t == 0);
                }
            }
        threadpool_free(pool);
    }
    free(log);
    /* Many back-to-back runs of every size: a lost wake-up would hang here. */
    threadpool *pool = NULL;
    assert_int_equal(threadpool_create(3, &pool), LMRT_OK);
    int64_t counts_seen[4] = {0};
    for (int i = 0; i < 5000; i++)
        threadpool_run(pool, i % 4, pool_count, counts_seen);
    for (int t = 0; t < 3; t++)
        assert_true(counts_seen[t] > 0);
    assert_int_equal(counts_seen[0] + counts_seen[1] + counts_seen[2],
                     1250 * (0 + 1 + 2 + 3));
    threadpool_free(pool);
    threadpool_free(NULL);
    threadpool *p = NULL;
    assert_int_equal(threadpool_create(0, &p), LMRT_E_INVALID_ARG);
    assert_null(p);
}

/* Balanced runs: per task, how often it ran and on which thread; per piece, that it
 * lies within [0, n), is at most `grain` long (any length when one thread runs it all)
 * and that run_end >= end. */
typedef struct balanced_log {
    int64_t n, grain;
    bool one_thread;
    atomic_int hits[POOL_MAX_TASKS];
    atomic_int thread_of[POOL_MAX_TASKS];
    atomic_int bad_pieces;
    int slow_thread;             /* sleeps in its first piece; -1: none */
    atomic_int slept;
} balanced_log;

static void balanced_record(void *arg, int64_t begin, int64_t end, int64_t run_end, int thread)
{
    balanced_log *log = arg;
    if (begin < 0 || end > log->n || begin >= end ||
        (end - begin > log->grain && !log->one_thread) || run_end < end || run_end > log->n)
        atomic_fetch_add(&log->bad_pieces, 1);
    if (thread == log->slow_thread && atomic_exchange(&log->slept, 1) == 0)
        nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
    for (int64_t i = begin; i < end && i < log->n && i >= 0; i++) {
        atomic_fetch_add(&log->hits[i], 1);
        atomic_store(&log->thread_of[i], thread);
    }
}

static void balanced_reset(balanced_log *log, int64_t n, int64_t grain, int slow_thread,
                           int32_t n_threads)
{
    log->n = n;
    log->one_thread = n_threads == 1 || n == 1;
    log->grain = grain;
    log->slow_thread = slow_thread;
    atomic_store(&log->bad_pieces, 0);
    atomic_store(&log->slept, 0);
    for (int64_t i = 0; i < POOL_MAX_TASKS; i++) {
        atomic_store(&log->hits[i], 0);
        atomic_store(&log->thread_of[i], -1);
    }
}

static void threadpool_balanced_runs_each_task_once_and_rebalance(void **state)
{
    (void)state;
    static const int32_t counts[] = {1, 2, 3, 4, 7};
    static const int64_t tasks[] = {0, 1, 2, 5, 7, 8, 33, 999};
    static const int64_t grains[] = {1, 2, 3, 16, 1000};
    balanced_log *log = malloc(sizeof *log);
    assert_non_null(log);
    for (size_t ci = 0; ci < 5; ci++) {
        threadpool *pool = NULL;
        assert_int_equal(threadpool_create(counts[ci], &pool), LMRT_OK);
        for (size_t ti = 0; ti < sizeof tasks / sizeof tasks[0]; ti++)
            for (size_t gi = 0; gi < sizeof grains / sizeof grains[0]; gi++)
                for (int rep = 0; rep < 3; rep++) {
                    const int64_t n = tasks[ti], g = grains[gi];
                    balanced_reset(log, n, g, -1, counts[ci]);
                    threadpool_run_balanced(pool, n, g, balanced_record, log);
                    assert_int_equal(atomic_load(&log->bad_pieces), 0);
                    for (int64_t i = 0; i < n; i++)
                        assert_int_equal(atomic_load(&log->hits[i]), 1);
                }
        threadpool_free(pool);
    }
    /* A thread that stalls in its first piece: the other takes the rest of its range. */
    threadpool *pool = NULL;
    assert_int_equal(threadpool_create(2, &pool), LMRT_OK);
    for (int slow = 0; slow < 2; slow++) {
        balanced_reset(log, 400, 4, slow, 2);
        threadpool_run_balanced(pool, 400, 4, balanced_record, log);
        assert_int_equal(atomic_load(&log->bad_pieces), 0);
        int64_t by_slow = 0;
        for (int64_t i = 0; i < 400; i++) {
            assert_int_equal(atomic_load(&log->hits[i]), 1);
            by_slow += atomic_load(&log->thread_of[i]) == slow;
        }
        /* Its own range was 200 tasks; in 100 ms the other thread has time for all but
         * the piece the sleeper holds (loose bound: a loaded CI machine). */
        assert_true(by_slow < 200);
    }
    /* Back-to-back balanced and fixed runs on one pool: a lost wake-up would hang. */
    int64_t counts_seen[4] = {0};
    for (int i = 0; i < 3000; i++) {
        balanced_reset(log, i % 9, 2, -1, 2);
        threadpool_run_balanced(pool, i % 9, 2, balanced_record, log);
        threadpool_run(pool, i % 4, pool_count, counts_seen);
        for (int64_t t = 0; t < i % 9; t++)
            assert_int_equal(atomic_load(&log->hits[t]), 1);
    }
    threadpool_free(pool);
    free(log);
}

typedef struct contend_arg {
    backend_ctx *ctx;
    int ok;
} contend_arg;

static void *contend_main(void *p)
{
    contend_arg *a = p;
    float x[64 * 4], y[64 * 4], w[64];
    for (int i = 0; i < 64 * 4; i++)
        x[i] = (float)(i % 13) - 6.0f;
    for (int i = 0; i < 64; i++)
        w[i] = 1.0f;
    float first[64 * 4];
    a->ok = 1;
    for (int it = 0; it < 200; it++) {
        if (B->rmsnorm(a->ctx, x, w, 64, 4, 1e-5f, y) != LMRT_OK)
            a->ok = 0;
        if (it == 0)
            memcpy(first, y, sizeof y);
        else if (memcmp(first, y, sizeof y) != 0)
            a->ok = 0;
    }
    return NULL;
}

static void ops_from_two_threads_on_one_context_take_turns(void **state)
{
    (void)state;
    backend_ctx *ctx = ctx_new(3);
    pthread_t th[2];
    contend_arg args[2] = {{ctx, 0}, {ctx, 0}};
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, contend_main, &args[i]), 0);
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        assert_true(args[i].ok);
    }
    B->ctx_free(ctx);
}

/* ---- context, memory, binding ---------------------------------------------------- */

static void ctx_create_checks_device_and_threads(void **state)
{
    (void)state;
    backend_ctx *ctx = NULL;
    assert_int_equal(B->ctx_create(1, 1, &ctx), LMRT_E_NOT_FOUND);
    assert_int_equal(B->ctx_create(0, -1, &ctx), LMRT_E_INVALID_ARG);
    assert_int_equal(B->ctx_create(0, 1, NULL), LMRT_E_INVALID_ARG);
    assert_null(ctx);
    assert_int_equal(B->ctx_create(0, 0, &ctx), LMRT_OK);  /* 0 = one per core */
    assert_non_null(ctx);
    B->ctx_free(ctx);
    B->ctx_free(NULL);
}

static void out_of_memory_is_nomem_without_leaks(void **state)
{
    (void)state;
    backend_ctx *ctx = NULL;
    for (long n = 0; n < 3; n++) {
        lmrt_alloc_fail_after(n);
        lmrt_status st = B->ctx_create(0, 4, &ctx);
        lmrt_alloc_fail_after(-1);
        if (st == LMRT_OK) {
            B->ctx_free(ctx);
            ctx = NULL;
            continue;
        }
        assert_int_equal(st, LMRT_E_NOMEM);
        assert_null(ctx);
    }
    ctx = ctx_new(2);
    float x[32] = {1}, y[4];
    uint8_t wd[4 * 34] = {0};
    tensor_view w = view_of(GGML_TYPE_Q8_0, 32, 4, wd, "w");
    lmrt_alloc_fail_after(0);
    assert_int_equal(B->matmul(ctx, &w, x, 1, y), LMRT_E_NOMEM);
    void *p = NULL;
    assert_int_equal(B->alloc(ctx, 16, &p), LMRT_E_NOMEM);
    assert_null(p);
    lmrt_alloc_fail_after(-1);
    assert_int_equal(B->matmul(ctx, &w, x, 1, y), LMRT_OK);
    assert_true(y[0] == 0.0f);
    B->ctx_free(ctx);
}

static void alloc_is_zeroed_and_64_byte_aligned(void **state)
{
    (void)state;
    backend_ctx *ctx = ctx_new(1);
    static const size_t sizes[] = {0, 1, 63, 64, 65, 4096, 1 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        void *p = NULL;
        assert_int_equal(B->alloc(ctx, sizes[i], &p), LMRT_OK);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % 64, 0);
        for (size_t j = 0; j < sizes[i]; j++)
            assert_int_equal(((unsigned char *)p)[j], 0);
        if (sizes[i] >= 8) {
            const char msg[8] = "weights";
            char back[8];
            assert_int_equal(B->upload(ctx, p, msg, 8), LMRT_OK);
            assert_int_equal(B->download(ctx, back, p, 8), LMRT_OK);
            assert_memory_equal(back, msg, 8);
        }
        B->free(ctx, p);
    }
    B->free(ctx, NULL);
    void *p = NULL;
    assert_int_equal(B->alloc(ctx, SIZE_MAX - 8, &p), LMRT_E_NOMEM);
    assert_int_equal(B->alloc(ctx, 8, NULL), LMRT_E_INVALID_ARG);
    assert_int_equal(B->upload(ctx, NULL, "x", 1), LMRT_E_INVALID_ARG);
    assert_int_equal(B->download(ctx, NULL, "x", 1), LMRT_E_INVALID_ARG);
    assert_int_equal(B->upload(ctx, NULL, NULL, 0), LMRT_OK);
    B->ctx_free(ctx);
}

static void bind_weight_is_zero_copy_and_rejects_inconsistent_views(void **state)
{
    (void)state;
    backend_ctx *ctx = ctx_new(1);
    static uint8_t data[4 * 144];
    tensor_view host = view_of(GGML_TYPE_Q4_K, 256, 4, data, "blk.3.ffn_down.weight"), out;
    memset(&out, 0, sizeof out);
    assert_int_equal(B->bind_weight(ctx, &host, &out), LMRT_OK);
    assert_ptr_equal(out.data, data);
    assert_int_equal(out.row_bytes, 144);
    B->unbind_weight(ctx, &out);

    tensor_view bad = host;
    bad.row_bytes = 143;
    tensor_view untouched = {0};
    assert_int_equal(B->bind_weight(ctx, &bad, &untouched), LMRT_E_FORMAT);
    assert_non_null(strstr(lmrt_last_error(), "blk.3.ffn_down.weight"));
    assert_null(untouched.data);
    bad = host;
    bad.n_cols = 128;               /* half a Q4_K block */
    bad.row_bytes = 72;
    assert_int_equal(B->bind_weight(ctx, &bad, &untouched), LMRT_E_FORMAT);
    assert_non_null(strstr(lmrt_last_error(), "blk.3.ffn_down.weight"));
    bad = view_of(GGML_TYPE_Q8_0, 32, 2, data, "q8");
    bad.n_cols = 48;                /* 1.5 blocks */
    assert_int_equal(B->bind_weight(ctx, &bad, &untouched), LMRT_E_FORMAT);
    bad = host;
    bad.n_cols = 0;
    assert_int_equal(B->bind_weight(ctx, &bad, &untouched), LMRT_E_FORMAT);
    bad = host;
    bad.data = NULL;
    assert_int_equal(B->bind_weight(ctx, &bad, &untouched), LMRT_E_FORMAT);
    bad = host;
    bad.type = GGML_TYPE_Q5_K;
    assert_int_equal(B->bind_weight(ctx, &bad, &untouched), LMRT_E_UNSUPPORTED);
    assert_non_null(strstr(lmrt_last_error(), "blk.3.ffn_down.weight"));
    bad.type = 77;
    assert_int_equal(B->bind_weight(ctx, &bad, &untouched), LMRT_E_UNSUPPORTED);
    assert_int_equal(B->bind_weight(ctx, NULL, &untouched), LMRT_E_INVALID_ARG);
    assert_int_equal(B->bind_weight(ctx, &host, NULL), LMRT_E_INVALID_ARG);
    assert_null(untouched.data);
    B->ctx_free(ctx);
}

/* ---- bad arguments ---------------------------------------------------------------- */

static void bad_arguments_are_invalid_arg(void **state)
{
    (void)state;
    backend_ctx *ctx = ctx_new(2);
    float buf[4096] = {0};
    int32_t pos[4] = {0, 1, 2, 3};
    static uint8_t wd[8 * 34];
    tensor_view w = view_of(GGML_TYPE_Q8_0, 64, 4, wd, "w");
    const int E = LMRT_E_INVALID_ARG;

    /* matmul */
    assert_int_equal(B->matmul(NULL, &w, buf, 1, buf + 100), E);
    assert_int_equal(B->matmul(ctx, NULL, buf, 1, buf + 100), E);
    assert_int_equal(B->matmul(ctx, &w, NULL, 1, buf + 100), E);
    assert_int_equal(B->matmul(ctx, &w, buf, 1, NULL), E);
    assert_int_equal(B->matmul(ctx, &w, buf, -1, buf + 100), E);
    tensor_view bw = w;
    bw.row_bytes = 66;
    assert_int_equal(B->matmul(ctx, &bw, buf, 1, buf + 100), E);
    bw = w;
    bw.n_rows = -1;
    assert_int_equal(B->matmul(ctx, &bw, buf, 1, buf + 100), E);
    bw = w;
    bw.type = GGML_TYPE_Q4_1;
    assert_int_equal(B->matmul(ctx, &bw, buf, 1, buf + 100), LMRT_E_UNSUPPORTED);
    assert_int_equal(B->matmul(ctx, &w, buf, 0, NULL), LMRT_OK);

    /* get_rows */
    int32_t ids[1] = {0};
    assert_int_equal(B->get_rows(NULL, &w, ids, 1, buf), E);
    assert_int_equal(B->get_rows(ctx, NULL, ids, 1, buf), E);
    assert_int_equal(B->get_rows(ctx, &w, NULL, 1, buf), E);
    assert_int_equal(B->get_rows(ctx, &w, ids, 1, NULL), E);
    assert_int_equal(B->get_rows(ctx, &w, ids, -1, buf), E);

    /* rmsnorm */
    assert_int_equal(B->rmsnorm(NULL, buf, buf, 8, 1, 1e-5f, buf), E);
    assert_int_equal(B->rmsnorm(ctx, NULL, buf, 8, 1, 1e-5f, buf), E);
    assert_int_equal(B->rmsnorm(ctx, buf, NULL, 8, 1, 1e-5f, buf), E);
    assert_int_equal(B->rmsnorm(ctx, buf, buf, 8, 1, 1e-5f, NULL), E);
    assert_int_equal(B->rmsnorm(ctx, buf, buf, 0, 1, 1e-5f, buf), E);
    assert_int_equal(B->rmsnorm(ctx, buf, buf, 8, -1, 1e-5f, buf), E);
    assert_int_equal(B->rmsnorm(ctx, buf, buf, 8, 1, -1.0f, buf), E);
    assert_int_equal(B->rmsnorm(ctx, buf, buf, 8, 1, NAN, buf), E);

    /* rope */
    assert_int_equal(B->rope(NULL, buf, 1, 2, 8, 8, pos, 1e4f, NULL), E);
    assert_int_equal(B->rope(ctx, NULL, 1, 2, 8, 8, pos, 1e4f, NULL), E);
    assert_int_equal(B->rope(ctx, buf, 1, 2, 8, 8, NULL, 1e4f, NULL), E);
    assert_int_equal(B->rope(ctx, buf, -1, 2, 8, 8, pos, 1e4f, NULL), E);
    assert_int_equal(B->rope(ctx, buf, 1, 0, 8, 8, pos, 1e4f, NULL), E);
    assert_int_equal(B->rope(ctx, buf, 1, 2, 0, 0, pos, 1e4f, NULL), E);
    assert_int_equal(B->rope(ctx, buf, 1, 2, 8, 7, pos, 1e4f, NULL), E);   /* odd */
    assert_int_equal(B->rope(ctx, buf, 1, 2, 8, 10, pos, 1e4f, NULL), E);  /* > head_dim */
    assert_int_equal(B->rope(ctx, buf, 1, 2, 8, -2, pos, 1e4f, NULL), E);
    assert_int_equal(B->rope(ctx, buf, 1, 2, 8, 8, pos, 0.0f, NULL), E);
    assert_int_equal(B->rope(ctx, buf, 1, 2, 8, 8, pos, NAN, NULL), E);

    /* attention */
    attention_params p = {2, 1, 4, 2, 8, 16, 0.35f};
    float *q = buf, *k = buf + 512, *v = buf + 1024, *o = buf + 2048;
    assert_int_equal(B->attention(ctx, &p, q, k, v, o), LMRT_OK);
    assert_int_equal(B->attention(NULL, &p, q, k, v, o), E);
    assert_int_equal(B->attention(ctx, NULL, q, k, v, o), E);
    assert_int_equal(B->attention(ctx, &p, NULL, k, v, o), E);
    assert_int_equal(B->attention(ctx, &p, q, NULL, v, o), E);
    assert_int_equal(B->attention(ctx, &p, q, k, NULL, o), E);
    assert_int_equal(B->attention(ctx, &p, q, k, v, NULL), E);
    attention_params bp = p;
    bp.n_head = 6;                  /* 6 % 4 */
    bp.n_head_kv = 4;
    bp.kv_stride = 32;
    assert_int_equal(B->attention(ctx, &bp, q, k, v, o), E);
    assert_non_null(strstr(lmrt_last_error(), "n_head_kv"));
    bp = p;
    bp.n_head_kv = 0;
    assert_int_equal(B->attention(ctx, &bp, q, k, v, o), E);
    bp = p;
    bp.n_tok = -1;
    assert_int_equal(B->attention(ctx, &bp, q, k, v, o), E);
    bp = p;
    bp.n_past = -3;
    assert_int_equal(B->attention(ctx, &bp, q, k, v, o), E);
    bp = p;
    bp.head_dim = 0;
    assert_int_equal(B->attention(ctx, &bp, q, k, v, o), E);
    bp = p;
    bp.kv_stride = 15;              /* < n_head_kv * head_dim */
    assert_int_equal(B->attention(ctx, &bp, q, k, v, o), E);
    bp = p;
    bp.n_past = INT32_MAX;
    assert_int_equal(B->attention(ctx, &bp, q, k, v, o), E);
    bp = p;
    bp.scale = INFINITY;
    assert_int_equal(B->attention(ctx, &bp, q, k, v, o), E);

    /* elementwise */
    assert_int_equal(B->silu_mul(NULL, buf, buf, 4), E);
    assert_int_equal(B->silu_mul(ctx, NULL, buf, 4), E);
    assert_int_equal(B->silu_mul(ctx, buf, NULL, 4), E);
    assert_int_equal(B->silu_mul(ctx, buf, buf, -4), E);
    assert_int_equal(B->add(NULL, buf, buf, 4), E);
    assert_int_equal(B->add(ctx, NULL, buf, 4), E);
    assert_int_equal(B->add(ctx, buf, NULL, 4), E);
    assert_int_equal(B->add(ctx, buf, buf, -4), E);
    B->ctx_free(ctx);
}

static void vtable_has_every_slot(void **state)
{
    (void)state;
    assert_int_equal(B->size, sizeof(backend_vtable));
    assert_non_null(B->ctx_create);
    assert_non_null(B->ctx_free);
    assert_non_null(B->alloc);
    assert_non_null(B->free);
    assert_non_null(B->upload);
    assert_non_null(B->download);
    assert_non_null(B->bind_weight);
    assert_non_null(B->unbind_weight);
    assert_non_null(B->supports_type);
    assert_non_null(B->get_rows);
    assert_non_null(B->matmul);
    assert_non_null(B->rmsnorm);
    assert_non_null(B->rope);
    assert_non_null(B->attention);
    assert_non_null(B->silu_mul);
    assert_non_null(B->add);
    /* Every level resolves to a table that covers the seven types. */
    for (int l = CPU_LEVEL_SCALAR; l <= CPU_LEVEL_AVX512; l++) {
        const cpu_kernels *k = cpu_kernels_for((cpu_level)l);
        assert_non_null(k);
        for (size_t i = 0; i < N_TYPES; i++)
            assert_non_null(k->matmul[all_types[i]].rows);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fp16_known_values_convert_exactly),
        cmocka_unit_test(fp16_round_trip_is_exact_for_all_65536_values),
        cmocka_unit_test(fp32_to_fp16_rounds_to_nearest_even),
        cmocka_unit_test(bf16_converts_exactly_and_rounds_to_nearest_even),
        cmocka_unit_test(supported_types_are_the_seven),
        cmocka_unit_test(plain_rows_dequantize_exactly),
        cmocka_unit_test(q8_0_blocks_dequantize_as_d_times_q),
        cmocka_unit_test(q4_0_low_nibbles_are_0_to_15_high_are_16_to_31),
        cmocka_unit_test(q4_k_block_uses_packed_6_bit_scales_and_mins),
        cmocka_unit_test(q6_k_block_interleaves_low_and_high_bits),
        cmocka_unit_test(dot_f32_gives_the_same_bits_fed_in_any_pieces),
        cmocka_unit_test(matmul_matches_float64_reference_for_every_type),
        cmocka_unit_test(matmul_reads_unaligned_f32_weights),
        cmocka_unit_test(rmsnorm_matches_float64_reference),
        cmocka_unit_test(rope_matches_formula_with_and_without_freq_factors),
        cmocka_unit_test(silu_mul_and_add_match_reference),
        cmocka_unit_test(get_rows_dequantizes_the_chosen_rows),
        cmocka_unit_test(attention_matches_float64_reference_with_gqa_and_history),
        cmocka_unit_test(attention_ignores_positions_after_the_query),
        cmocka_unit_test(results_are_bitwise_identical_for_1_2_3_4_7_threads),
        cmocka_unit_test(threadpool_splits_tasks_by_the_fixed_rule),
        cmocka_unit_test(threadpool_balanced_runs_each_task_once_and_rebalance),
        cmocka_unit_test(one_thread_context_starts_no_threads_and_free_joins_them),
        cmocka_unit_test(ops_from_two_threads_on_one_context_take_turns),
        cmocka_unit_test(ctx_create_checks_device_and_threads),
        cmocka_unit_test(out_of_memory_is_nomem_without_leaks),
        cmocka_unit_test(alloc_is_zeroed_and_64_byte_aligned),
        cmocka_unit_test(bind_weight_is_zero_copy_and_rejects_inconsistent_views),
        cmocka_unit_test(bad_arguments_are_invalid_arg),
        cmocka_unit_test(vtable_has_every_slot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
