/* cpu_kernels_avx2.c - the AVX2 kernel table (CPU_LEVEL_AVX2: AVX2 + FMA + F16C) and
 * its small kernels: byte-exact Q8_0/Q8_K activation quantizers, one-pass attention,
 * silu_mul, rmsnorm, rope and add. Built with -mavx2 -mfma -mf16c -ffp-contract=off
 * and only called after cpu_features found those; the matmuls live in
 * cpu_matmul_avx2.c and cpu_matmul_k_avx2.c. */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "backend/cpu/cpu_avx2_math.h"
#include "backend/cpu/cpu_simd.h"
#include "tensor/types.h"


/* ---- activation quantizers ------------------------------------------------------ */

/* roundf (half away from zero) on 8 lanes, as int32: truncate v + copysign(0.5 - 2^-25, v),
 * exact for |v| < 2^23 (a fraction below .5 cannot round the sum up to the next
 * integer, exactly .5 rounds it there, by ties-to-even at the top of the binade). */
static inline __m256i round_half_away_epi32(__m256 v)
{
    const __m256 half = _mm256_set1_ps(0.49999997f);
    __m256 bias = _mm256_or_ps(half, _mm256_and_ps(v, _mm256_set1_ps(-0.0f)));
    return _mm256_cvttps_epi32(_mm256_add_ps(v, bias));
}

/* Four vectors of 8 int32 (each within int8) to 32 bytes in element order. */
static inline __m256i pack_epi32_epi8(__m256i a, __m256i b, __m256i c, __m256i d)
{
    __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d));
    return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

static inline float hmax_ps(__m256 v)
{
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}

/* quantize_row_q8_0, byte for byte: the max is order-free, d = amax / 127 (a division,
 * as in the reference), its half by F16C's round-to-nearest-even, q = roundf(x * id). */
void cpu_quantize_q8_0_avx2(const float *x, void *out, int64_t n)
{
    uint8_t *blk = out;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t b = 0; b < n / 32; b++, x += 32, blk += 34) {
        __m256 v[4], m = _mm256_setzero_ps();
        CPU_UNROLL
        for (int i = 0; i < 4; i++) {
            v[i] = _mm256_loadu_ps(x + 8 * i);
            m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v[i]));
        }
        float amax = hmax_ps(m);
        float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        uint16_t dh = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
        memcpy(blk, &dh, 2);
        __m256i q[4];
        CPU_UNROLL
        for (int i = 0; i < 4; i++)
            q[i] = round_half_away_epi32(_mm256_mul_ps(v[i], _mm256_set1_ps(id)));
        _mm256_storeu_si256((__m256i *)(void *)(blk + 2), pack_epi32_epi8(q[0], q[1], q[2], q[3]));
    }
}

/* quantize_row_q8_K, byte for byte: `max` is the first element of largest magnitude
 * (its sign matters), q = min(127, rint(iscale * x)) with the current (nearest-even)
 * rounding like rintf, d = 1 / iscale, bsums exact. Finite inputs. */
void cpu_quantize_q8_K_avx2(const float *x, void *out, int64_t n)
{
    uint8_t *blk = out;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t b = 0; b < n / 256; b++, x += 256, blk += 292) {
        __m256 m = _mm256_setzero_ps();
        for (int i = 0; i < 32; i++)
            m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + 8 * i)));
        const float amax = hmax_ps(m);
        float d = 0.0f;
        int16_t bsums[16] = {0};
        if (amax == 0.0f) {
            memset(blk + 4, 0, 256);
        } else {
            float max = 0.0f;
            const __m256 va = _mm256_set1_ps(amax);
            for (int i = 0; i < 32; i++) {
                __m256 a = _mm256_andnot_ps(sign, _mm256_loadu_ps(x + 8 * i));
                int mask = _mm256_movemask_ps(_mm256_cmp_ps(a, va, _CMP_EQ_OQ));
                if (mask) {
                    max = x[8 * i + __builtin_ctz((unsigned)mask)];
                    break;
                }
            }
            const float iscale = -127.0f / max;
            const __m256 vs = _mm256_set1_ps(iscale);
            const __m256i lim = _mm256_set1_epi32(127);
            CPU_UNROLL
            for (int i = 0; i < 8; i++) {
                __m256i q[4];
                CPU_UNROLL
                for (int j = 0; j < 4; j++)
                    q[j] = _mm256_min_epi32(
                        _mm256_cvtps_epi32(_mm256_mul_ps(vs, _mm256_loadu_ps(x + 32 * i + 8 * j))),
                        lim);
                __m256i p = pack_epi32_epi8(q[0], q[1], q[2], q[3]);
                _mm256_storeu_si256((__m256i *)(void *)(blk + 4 + 32 * i), p);
                /* Sums of 16 int8: sad of the biased bytes, minus 16 * 128. */
                __m256i s = _mm256_sad_epu8(_mm256_xor_si256(p, _mm256_set1_epi8((char)0x80)),
                                            _mm256_setzero_si256());
                bsums[2 * i] = (int16_t)(_mm256_extract_epi64(s, 0) + _mm256_extract_epi64(s, 1) - 2048);
                bsums[2 * i + 1] =
                    (int16_t)(_mm256_extract_epi64(s, 2) + _mm256_extract_epi64(s, 3) - 2048);
            }
            d = 1.0f / iscale;
        }
        memcpy(blk, &d, 4);
        memcpy(blk + 260, bsums, sizeof bsums);
    }
}

/* ---- attention -------------------------------------------------------------------- */

#define ATT_MAX_DIM 256   /* larger heads use the scalar kernel */

/* One query against its cache in a single pass (online softmax, 8 keys at a time):
 * scores by FMA dots, a running max m and sum l; when m grows, the sum and the
 * output so far are scaled by e^(m_old - m_new). Reads K and V once per query; bound
 * by that (2 * n_kv * head_dim floats from L2) and by ~3 ops per key per 8 dims.
 * Measured (32/8 heads of 64, 128 queries after 384 positions, one thread of the shared
 * 2-core Xeon): 27 ns per query-key, the scalar kernel 57. */
static void attention_avx2(const attention_params *p, const float *q, const float *k,
                           const float *v, float *out, int32_t t, int32_t h, float *scratch)
{
    const int32_t hd = p->head_dim;
    if (hd > ATT_MAX_DIM) {
        cpu_attention_head_scalar(p, q, k, v, out, t, h, scratch);
        return;
    }
    const int32_t kv_head = h / (p->n_head / p->n_head_kv);
    const int64_t n_kv = (int64_t)p->n_past + t + 1;
    const float *kb = k + (size_t)kv_head * (size_t)hd, *vb = v + (size_t)kv_head * (size_t)hd;
    const float *qh = q + ((size_t)t * (size_t)p->n_head + (size_t)h) * (size_t)hd;
    float *oh = out + ((size_t)t * (size_t)p->n_head + (size_t)h) * (size_t)hd;
    const int nv = (hd + 7) / 8;
    const __m256i tail = avx2_lane_mask(hd - 8 * (nv - 1));
    __m256 qv[ATT_MAX_DIM / 8], acc[ATT_MAX_DIM / 8];
    for (int c = 0; c < nv; c++) {
        qv[c] = _mm256_maskload_ps(qh + 8 * c, c == nv - 1 ? tail : _mm256_set1_epi32(-1));
        acc[c] = _mm256_setzero_ps();
    }
    float m = -INFINITY, l = 0.0f;
    for (int64_t j0 = 0; j0 < n_kv; j0 += 8) {
        const int cnt = n_kv - j0 < 8 ? (int)(n_kv - j0) : 8;
        cpu_prefetch_kv_rows(kb, vb, j0 + 8, j0 + 16 < n_kv ? j0 + 16 : n_kv, p->kv_stride,
                             (size_t)hd * sizeof(float));   /* the next block */
        __m256 part[8];
        CPU_UNROLL
        for (int i = 0; i < 8; i++) {
            const float *kj = kb + (size_t)(j0 + (i < cnt ? i : cnt - 1)) * (size_t)p->kv_stride;
            __m256 s = _mm256_setzero_ps();
            for (int c = 0; c < nv - 1; c++)
                s = _mm256_fmadd_ps(qv[c], _mm256_loadu_ps(kj + 8 * c), s);
            part[i] = _mm256_fmadd_ps(qv[nv - 1], _mm256_maskload_ps(kj + 8 * (nv - 1), tail), s);
        }
        __m256 s = _mm256_mul_ps(avx2_transpose_sum8(part), _mm256_set1_ps(p->scale));
        s = _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), s,
                             _mm256_castsi256_ps(avx2_lane_mask(cnt)));
        const float m_new = fmaxf(m, hmax_ps(s));
        __m256 e = avx2_exp_ps(_mm256_sub_ps(s, _mm256_set1_ps(m_new)));
        if (m_new > m) {
            const float corr = _mm256_cvtss_f32(avx2_exp_ps(_mm256_set1_ps(m - m_new)));
            l *= corr;
            for (int c = 0; c < nv; c++)
                acc[c] = _mm256_mul_ps(acc[c], _mm256_set1_ps(corr));
            m = m_new;
        }
        l += avx2_hsum_ps(e);
        float pe[8];
        _mm256_storeu_ps(pe, e);
        for (int i = 0; i < cnt; i++) {
            const float *vj = vb + (size_t)(j0 + i) * (size_t)p->kv_stride;
            const __m256 w = _mm256_set1_ps(pe[i]);
            for (int c = 0; c < nv - 1; c++)
                acc[c] = _mm256_fmadd_ps(w, _mm256_loadu_ps(vj + 8 * c), acc[c]);
            acc[nv - 1] = _mm256_fmadd_ps(w, _mm256_maskload_ps(vj + 8 * (nv - 1), tail),
                                          acc[nv - 1]);
        }
    }
    const __m256 inv = _mm256_set1_ps(1.0f / l);
    for (int c = 0; c < nv; c++)
        _mm256_maskstore_ps(oh + 8 * c, c == nv - 1 ? tail : _mm256_set1_epi32(-1),
                            _mm256_mul_ps(acc[c], inv));
}

/* ---- elementwise and per-token ops ------------------------------------------------ */

/* gate = gate / (1 + e^-gate) * up; the tail through masked loads, so every element
 * is computed the same way wherever the op's chunks fall. e^-g = inf gives -0. */
static void silu_mul_avx2(float *gate, const float *up, int64_t n)
{
    const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
    for (int64_t i = 0; i < n; i += 8) {
        const __m256i mk = avx2_lane_mask(n - i < 8 ? (int)(n - i) : 8);
        __m256 g = _mm256_maskload_ps(gate + i, mk), u = _mm256_maskload_ps(up + i, mk);
        __m256 e = avx2_exp_ps(_mm256_xor_ps(g, sign));
        _mm256_maskstore_ps(gate + i, mk, _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), u));
    }
}

void cpu_add_avx2(float *y, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i += 8) {
        const __m256i mk = avx2_lane_mask(n - i < 8 ? (int)(n - i) : 8);
        _mm256_maskstore_ps(y + i, mk, _mm256_add_ps(_mm256_maskload_ps(y + i, mk),
                                                     _mm256_maskload_ps(x + i, mk)));
    }
}

/* The reference's formula with the sum of squares in double on 4 lanes: the same
 * scale as the scalar kernel up to the double rounding (far below float's ulp). */
void cpu_rmsnorm_avx2(const float *x, const float *weight, int32_t n, float eps, float *y)
{
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    int32_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
        __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
        s0 = _mm256_fmadd_pd(lo, lo, s0);
        s1 = _mm256_fmadd_pd(hi, hi, s1);
    }
    double lanes[4];
    _mm256_storeu_pd(lanes, _mm256_add_pd(s0, s1));
    double ss = (lanes[0] + lanes[2]) + (lanes[1] + lanes[3]);
    for (; i < n; i++)
        ss += (double)x[i] * x[i];
    const float scale = (float)(1.0 / sqrt(ss / n + (double)eps));
    const __m256 vs = _mm256_set1_ps(scale);
    for (i = 0; i < n; i += 8) {
        const __m256i mk = avx2_lane_mask(n - i < 8 ? n - i : 8);
        __m256 v = _mm256_mul_ps(_mm256_maskload_ps(x + i, mk), vs);
        _mm256_maskstore_ps(y + i, mk, _mm256_mul_ps(v, _mm256_maskload_ps(weight + i, mk)));
    }
}

/* The scalar rope, operation for operation (the same bits; test_simd checks): angles
 * in double once per pair, the rotation in double, one rounding to float. */
void cpu_rope_avx2(float *x, int32_t n_head, int32_t head_dim, int32_t n_rot, int32_t pos,
                   float freq_base, const float *freq_factors)
{
    for (int32_t i = 0; i < n_rot / 2; i++) {
        double theta = (double)pos * pow((double)freq_base, -2.0 * i / n_rot);
        if (freq_factors)
            theta /= (double)freq_factors[i];
        double c = cos(theta), s = sin(theta);
        for (int32_t hh = 0; hh < n_head; hh++) {
            float *pp = x + (size_t)hh * head_dim + 2 * i;
            double x0 = pp[0], x1 = pp[1];
            pp[0] = (float)(x0 * c - x1 * s);
            pp[1] = (float)(x0 * s + x1 * c);
        }
    }
}

const cpu_kernels cpu_kernels_avx2 = {
    .name = "avx2",
    .matmul = {
        [GGML_TYPE_F32] = {cpu_matmul_f_avx2, GGML_TYPE_F32},
        [GGML_TYPE_F16] = {cpu_matmul_f_avx2, GGML_TYPE_F32},
        [GGML_TYPE_BF16] = {cpu_matmul_f_avx2, GGML_TYPE_F32},
        [GGML_TYPE_Q8_0] = {cpu_matmul_q8_avx2, GGML_TYPE_Q8_0},
        [GGML_TYPE_Q4_0] = {cpu_matmul_q8_avx2, GGML_TYPE_Q8_0},
        [GGML_TYPE_Q4_K] = {cpu_matmul_k_avx2, GGML_TYPE_Q8_K},
        [GGML_TYPE_Q6_K] = {cpu_matmul_k_avx2, GGML_TYPE_Q8_K},
    },
    .matmul_scratch = {
        [GGML_TYPE_Q8_0] = cpu_matmul_q8_avx2_scratch,
        [GGML_TYPE_Q4_0] = cpu_matmul_q8_avx2_scratch,
        [GGML_TYPE_Q4_K] = cpu_matmul_k_avx2_scratch,
        [GGML_TYPE_Q6_K] = cpu_matmul_k_avx2_scratch,
    },
    .quantize_row = {
        [GGML_TYPE_Q8_0] = cpu_quantize_q8_0_avx2,
        [GGML_TYPE_Q8_K] = cpu_quantize_q8_K_avx2,
    },
    .matmul_packed = {
        [GGML_TYPE_Q8_0] = cpu_matmul_packed_avx2,
        [GGML_TYPE_Q4_0] = cpu_matmul_packed_avx2,
    },
    .rmsnorm = cpu_rmsnorm_avx2,
    .rope = cpu_rope_avx2,
    .attention = attention_avx2,
    .silu_mul = silu_mul_avx2,
    .add = cpu_add_avx2,
};
