/* cpu_avx2_math.h - small AVX2 helpers shared by the AVX2 and AVX-512 kernel files:
 * lane masks, horizontal sums, e^x on 8 lanes. Include only from files built with
 * -mavx2 -mfma (the functions are static inline and use those instructions). */
#ifndef LMRT_BACKEND_CPU_AVX2_MATH_H
#define LMRT_BACKEND_CPU_AVX2_MATH_H

#include <immintrin.h>
#include <stdint.h>

/* Lanes 0 .. n-1 all ones (n in 0..8). */
static inline __m256i avx2_lane_mask(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

static inline float avx2_hsum_ps(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)));
}

/* Lane i of the result = the sum of the 8 lanes of p[i]. */
static inline __m256 avx2_transpose_sum8(const __m256 p[8])
{
    __m256 a0 = _mm256_hadd_ps(p[0], p[1]), a1 = _mm256_hadd_ps(p[2], p[3]);
    __m256 a2 = _mm256_hadd_ps(p[4], p[5]), a3 = _mm256_hadd_ps(p[6], p[7]);
    __m256 b0 = _mm256_hadd_ps(a0, a1), b1 = _mm256_hadd_ps(a2, a3);
    return _mm256_add_ps(_mm256_permute2f128_ps(b0, b1, 0x20),
                         _mm256_permute2f128_ps(b0, b1, 0x31));
}

/* e^x, Cephes' expf on 8 lanes: n = round(x log2 e), r = x - n ln 2 in two steps,
 * a degree-7 polynomial, times 2^n applied as two exact power-of-two scalings (so
 * that 2^128 and subnormal results come out right). Within 1.3 ulps of e^x (measured
 * over the float range); +inf from ln(FLT_MAX), exactly 0 below -103.9 and for -inf,
 * NaN stays NaN. */
static inline __m256 avx2_exp_ps(__m256 x)
{
    const __m256 lo = _mm256_set1_ps(-103.9f), hi = _mm256_set1_ps(89.0f);
    __m256 xc = _mm256_min_ps(hi, _mm256_max_ps(lo, x));   /* NaN passes through */
    __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), xc);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i ni = _mm256_cvtps_epi32(n);                    /* -150 .. 128 */
    __m256i n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
    const __m256i bias = _mm256_set1_epi32(127);
    __m256 y = _mm256_mul_ps(p, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23)));
    y = _mm256_mul_ps(y, _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23)));
    return _mm256_andnot_ps(_mm256_cmp_ps(x, lo, _CMP_LT_OQ), y);   /* x < lo (or -inf): 0 */
}

#endif
