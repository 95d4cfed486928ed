/* quant.c - fp16/bf16 conversions and the reference dequantizers of the GGML
 * blocks lmrt computes on, byte for byte as ggml lays them out (little-endian,
 * read through byte loads so that rows need no alignment). No allocation, no
 * threads; the CPU backend calls these from its worker threads. */
#include "tensor/quant.h"

#include <math.h>
#include <string.h>

#include "base/error.h"
#include "tensor/types.h"

/* ---- half-precision conversions ---------------------------------------- */

static inline uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float f32_from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Branch-free so that loops over it vectorize: move the exponent and mantissa
 * into place and rebias (15 -> 127); inf/NaN get the rest of the exponent; a
 * zero or subnormal is built as 2^-14 * (1 + m/1024) - 2^-14 = m * 2^-24, which
 * is exact. */
float fp16_to_fp32(uint16_t h)
{
    uint32_t o = (uint32_t)(h & 0x7fffu) << 13;
    uint32_t exp = o & 0x0f800000u;
    o += (uint32_t)(127 - 15) << 23;
    if (exp == 0x0f800000u)
        o += (uint32_t)(128 - 16) << 23;
    if (exp == 0)
        o = f32_bits(f32_from_bits(o + (1u << 23)) - 0x1p-14f);
    return f32_from_bits(o | (uint32_t)(h & 0x8000u) << 16);
}

/* Rounds `v >> shift` to nearest, ties to even. */
static inline uint32_t shift_rne(uint32_t v, unsigned shift)
{
    uint32_t q = v >> shift;
    uint32_t rem = v & ((1u << shift) - 1);
    uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1)))
        q++;
    return q;
}

uint16_t fp32_to_fp16(float f)
{
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) {               /* NaN: keep the top payload bits, stay NaN */
        uint32_t m = (ax >> 13) & 0x3ffu;
        return (uint16_t)(sign | 0x7c00u | (m ? m : 0x200u));
    }
    if (ax >= 0x477ff000u)                /* >= 65520 (halfway past 65504) or inf */
        return (uint16_t)(sign | 0x7c00u);
    if (ax >= 0x38800000u) {              /* normal half: rebias, round 13 bits away */
        uint32_t rebased = ax - ((uint32_t)(127 - 15) << 23);
        /* A carry out of the mantissa bumps the exponent, which is the right result. */
        return (uint16_t)(sign | shift_rne(rebased, 13));
    }
    if (ax <= 0x33000000u)                /* <= 2^-25: rounds to (signed) zero */
        return sign;
    /* Subnormal half: value * 2^24 = mant * 2^(e - 126) with the implicit bit,
     * e in 102..112, so a right shift of 14..24. Rounding up to 0x400 gives the
     * smallest normal, which is correct. */
    uint32_t e = ax >> 23;
    uint32_t mant = (ax & 0x7fffffu) | 0x800000u;
    return (uint16_t)(sign | shift_rne(mant, 126 - e));
}

float bf16_to_fp32(uint16_t h)
{
    return f32_from_bits((uint32_t)h << 16);
}

uint16_t fp32_to_bf16(float f)
{
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u)  /* NaN: truncate and force quiet */
        return (uint16_t)((x >> 16) | 0x40u);
    /* Overflow past the largest finite bf16 carries into +-inf, as RNE should. */
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

/* ---- block formats ------------------------------------------------------ */

static inline float load_f16(const uint8_t *p)
{
    return fp16_to_fp32((uint16_t)(p[0] | (p[1] << 8)));
}

static void deq_f32(const uint8_t *restrict row, float *restrict y, int64_t n)
{
    memcpy(y, row, (size_t)n * sizeof(float));
}

static void deq_f16(const uint8_t *restrict row, float *restrict y, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = load_f16(row + 2 * i);
}

static void deq_bf16(const uint8_t *restrict row, float *restrict y, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = bf16_to_fp32((uint16_t)(row[2 * i] | (row[2 * i + 1] << 8)));
}

/* Q8_0, 34 bytes per 32 elements: f16 d, int8 q[32]; y = q * d. */
static void deq_q8_0(const uint8_t *restrict row, float *restrict y, int64_t n)
{
    for (int64_t b = 0; b < n / 32; b++, row += 34, y += 32) {
        float d = load_f16(row);
        const int8_t *q = (const int8_t *)(row + 2);
        for (int i = 0; i < 32; i++)
            y[i] = (float)q[i] * d;
    }
}

/* Q4_0, 18 bytes per 32 elements: f16 d, 16 bytes; byte j holds element j in
 * its low nibble and element j + 16 in its high nibble; y = (q - 8) * d. */
static void deq_q4_0(const uint8_t *restrict row, float *restrict y, int64_t n)
{
    for (int64_t b = 0; b < n / 32; b++, row += 18, y += 32) {
        float d = load_f16(row);
        const uint8_t *qs = row + 2;
        for (int j = 0; j < 16; j++) {
            y[j] = (float)((qs[j] & 0x0f) - 8) * d;
            y[j + 16] = (float)((qs[j] >> 4) - 8) * d;
        }
    }
}

/* The 6-bit scale and min of sub-block j (0..7) from Q4_K's 12 packed bytes:
 * j < 4: scale = s[j] & 63, min = s[j+4] & 63; else the low 4 bits come from
 * s[j+4] (scale: low nibble, min: high nibble) and the top 2 bits from the top
 * bits of s[j-4] (scale) and s[j] (min). */
static inline void q4_k_scale_min(int j, const uint8_t *s, uint8_t *sc, uint8_t *m)
{
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (uint8_t)((s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4));
        *m = (uint8_t)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
}

/* Q4_K, 144 bytes per 256 elements: f16 d, f16 dmin, 12 bytes of scales/mins,
 * 128 bytes qs. Four chunks of 64 elements, each reading 32 bytes of qs: the low
 * nibbles are sub-block 2c (elements 0..31 of the chunk), the high nibbles
 * sub-block 2c+1 (elements 32..63). y = d*sc * q - dmin*m. */
static void deq_q4_k(const uint8_t *restrict row, float *restrict y, int64_t n)
{
    for (int64_t b = 0; b < n / 256; b++, row += 144) {
        float d = load_f16(row);
        float dmin = load_f16(row + 2);
        const uint8_t *scales = row + 4;
        const uint8_t *q = row + 16;
        for (int c = 0; c < 4; c++, q += 32) {
            uint8_t sc, m;
            q4_k_scale_min(2 * c, scales, &sc, &m);
            float d1 = d * sc, m1 = dmin * m;
            q4_k_scale_min(2 * c + 1, scales, &sc, &m);
            float d2 = d * sc, m2 = dmin * m;
            for (int l = 0; l < 32; l++)
                *y++ = d1 * (float)(q[l] & 0x0f) - m1;
            for (int l = 0; l < 32; l++)
                *y++ = d2 * (float)(q[l] >> 4) - m2;
        }
    }
}

/* Q6_K, 210 bytes per 256 elements: ql[128] (low 4 bits), qh[64] (high 2 bits),
 * int8 scales[16] (one per 16 elements), f16 d. Two halves of 128 elements, each
 * with 64 bytes of ql, 32 of qh and 8 scales; for l in 0..31:
 *   element l      = ql[l]    low nibble  | qh[l] bits 0-1
 *   element l + 32 = ql[l+32] low nibble  | qh[l] bits 2-3
 *   element l + 64 = ql[l]    high nibble | qh[l] bits 4-5
 *   element l + 96 = ql[l+32] high nibble | qh[l] bits 6-7
 * and y = d * scale[element / 16] * (q - 32). */
static void deq_q6_k(const uint8_t *restrict row, float *restrict y, int64_t n)
{
    for (int64_t b = 0; b < n / 256; b++, row += 210) {
        const uint8_t *ql = row;
        const uint8_t *qh = row + 128;
        const int8_t *sc = (const int8_t *)(row + 192);
        float d = load_f16(row + 208);
        for (int half = 0; half < 2; half++, y += 128, ql += 64, qh += 32, sc += 8) {
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                int q1 = ((ql[l] & 0x0f) | (((qh[l] >> 0) & 3) << 4)) - 32;
                int q2 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32;
                int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l] = d * (float)sc[is] * (float)q1;
                y[l + 32] = d * (float)sc[is + 2] * (float)q2;
                y[l + 64] = d * (float)sc[is + 4] * (float)q3;
                y[l + 96] = d * (float)sc[is + 6] * (float)q4;
            }
        }
    }
}

typedef void (*deq_fn)(const uint8_t *row, float *y, int64_t n);

static deq_fn deq_for(uint32_t type)
{
    switch (type) {
    case GGML_TYPE_F32: return deq_f32;
    case GGML_TYPE_F16: return deq_f16;
    case GGML_TYPE_BF16: return deq_bf16;
    case GGML_TYPE_Q8_0: return deq_q8_0;
    case GGML_TYPE_Q4_0: return deq_q4_0;
    case GGML_TYPE_Q4_K: return deq_q4_k;
    case GGML_TYPE_Q6_K: return deq_q6_k;
    default: return NULL;
    }
}

bool quant_type_supported(uint32_t type)
{
    return deq_for(type) != NULL;
}

/* Checks type and n; on success *fn and *tt are set. */
static lmrt_status check_row(uint32_t type, int64_t n, deq_fn *fn, const tensor_type_traits **tt)
{
    *fn = deq_for(type);
    if (!*fn)
        return lmrt_fail(LMRT_E_UNSUPPORTED, "dequantize: type %s (%u) is not supported",
                         tensor_type_name(type), (unsigned)type);
    *tt = tensor_type_get(type);
    if (n < 0 || n % (*tt)->block_elems != 0)
        return lmrt_fail(LMRT_E_INVALID_ARG, "dequantize: %lld elements is not a whole "
                         "number of %s blocks (%u elements)", (long long)n, (*tt)->name,
                         (unsigned)(*tt)->block_elems);
    return LMRT_OK;
}

lmrt_status dequantize_row(uint32_t type, const void *row, float *out, int64_t n)
{
    deq_fn fn;
    const tensor_type_traits *tt;
    lmrt_status st = check_row(type, n, &fn, &tt);
    if (st)
        return st;
    if (n > 0 && (!row || !out))
        return lmrt_fail(LMRT_E_INVALID_ARG, "dequantize: NULL row or output");
    fn(row, out, n);
    return LMRT_OK;
}

/* ---- dot products ------------------------------------------------------- */

void dot_acc_init(dot_acc *acc)
{
    memset(acc, 0, sizeof *acc);
}

/* Element k (counted over everything fed) always goes to lane k % DOT_LANES, in
 * order, so any split of the input gives the same sums. Compute-bound: about one
 * multiply-add per element, which the compiler may vectorize across the lanes. */
void dot_acc_feed(dot_acc *acc, const float *a, const float *b, int64_t n)
{
    int64_t i = 0;
    int lane = (int)(acc->n % DOT_LANES);
    for (; i < n && lane != 0; i++, lane = (lane + 1) % DOT_LANES)
        acc->lane[lane] += a[i] * b[i];
    float s[DOT_LANES];
    memcpy(s, acc->lane, sizeof s);
    for (; i + DOT_LANES <= n; i += DOT_LANES)
        for (int j = 0; j < DOT_LANES; j++)
            s[j] += a[i + j] * b[i + j];
    memcpy(acc->lane, s, sizeof s);
    for (int j = 0; i < n; i++, j++)
        acc->lane[j] += a[i] * b[i];
    acc->n += n;
}

float dot_acc_sum(const dot_acc *acc)
{
    const float *l = acc->lane;
    return ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]));
}

float dot_f32(const float *a, const float *b, int64_t n)
{
    dot_acc acc;
    dot_acc_init(&acc);
    dot_acc_feed(&acc, a, b, n);
    return dot_acc_sum(&acc);
}

float vec_dot_row(uint32_t type, const void *row, const float *x, int64_t n)
{
    deq_fn fn = deq_for(type);
    const tensor_type_traits *tt = tensor_type_get(type);
    if (!fn || n < 0 || n % tt->block_elems != 0)
        return 0.0f;
    /* Dequantize a piece at a time (one K-block, or 256 plain elements) and
     * stream it into the same accumulator dot_f32 uses. */
    float buf[256];
    int64_t piece = 256;
    size_t piece_bytes = (size_t)(piece / tt->block_elems) * tt->block_bytes;
    const uint8_t *p = row;
    dot_acc acc;
    dot_acc_init(&acc);
    for (int64_t i = 0; i < n; i += piece, p += piece_bytes) {
        int64_t len = n - i < piece ? n - i : piece;
        fn(p, buf, len);
        dot_acc_feed(&acc, buf, x + i, len);
    }
    return dot_acc_sum(&acc);
}

/* ---- activation quantizers (ggml's reference definitions) --------------- */

void quantize_row_q8_0(const float *x, void *out, int64_t n)
{
    uint8_t *block = out;
    for (int64_t b = 0; b < n / 32; b++, x += 32, block += 34) {
        float amax = 0.0f;
        for (int j = 0; j < 32; j++)
            amax = fmaxf(amax, fabsf(x[j]));
        float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        uint16_t dh = fp32_to_fp16(d);
        memcpy(block, &dh, 2);
        for (int j = 0; j < 32; j++)
            block[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
    }
}

void quantize_row_q8_K(const float *x, void *out, int64_t n)
{
    uint8_t *block = out;   /* f32 d, int8 qs[256], int16 bsums[16] */
    for (int64_t b = 0; b < n / 256; b++, x += 256, block += 292) {
        float max = 0.0f, amax = 0.0f;
        for (int j = 0; j < 256; j++)
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                max = x[j];
            }
        int8_t *qs = (int8_t *)(block + 4);
        int16_t bsums[16] = {0};
        float d = 0.0f;
        if (amax != 0.0f) {
            float iscale = -127.0f / max;
            for (int j = 0; j < 256; j++) {
                int v = (int)rintf(iscale * x[j]);   /* nearest, ties to even */
                qs[j] = (int8_t)(v < 127 ? v : 127);
                bsums[j / 16] = (int16_t)(bsums[j / 16] + qs[j]);
            }
            d = 1.0f / iscale;
        } else {
            memset(qs, 0, 256);
        }
        memcpy(block, &d, 4);
        memcpy(block + 4 + 256, bsums, sizeof bsums);
    }
}
