/* cpu_avx512_math.h - small AVX-512 helpers shared by the AVX-512 kernel files: e^x on
 * 16 lanes and a 16 x 16 float transpose. Include only from files built with the
 * AVX-512 flags (the functions are static inline and use those instructions). */
#ifndef LMRT_BACKEND_CPU_AVX512_MATH_H
#define LMRT_BACKEND_CPU_AVX512_MATH_H

#include <immintrin.h>

#include "backend/cpu/cpu_simd.h"

/* e^x on 16 lanes: the polynomial of cpu_avx2_math.h, scaled by vscalefps (which
 * overflows to +inf and underflows gradually); within 1.3 ulps of e^x, exactly 0
 * below -103.9 and for -inf, +inf from ln(FLT_MAX), NaN stays NaN. */
static inline __m512 avx512_exp_ps(__m512 x)
{
    const __m512 lo = _mm512_set1_ps(-103.9f);
    __m512 xc = _mm512_min_ps(_mm512_set1_ps(89.0f), _mm512_max_ps(lo, x));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), xc);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, lo, _CMP_NLT_UQ), _mm512_scalef_ps(p, n));
}

/* 16 x 16 floats transposed in registers (m[i][j] -> m[j][i]): pairs of rows
 * interleaved, then pairs of pairs, which leaves u[4k + c] holding column 4L + c of
 * rows 4k..4k+3 in 128-bit lane L; a 4 x 4 transpose of lanes finishes it. */
static inline void avx512_transpose16_ps(__m512 m[16])
{
    __m512 t[16], u[16];
    CPU_UNROLL
    for (int k = 0; k < 8; k++) {
        t[2 * k] = _mm512_unpacklo_ps(m[2 * k], m[2 * k + 1]);
        t[2 * k + 1] = _mm512_unpackhi_ps(m[2 * k], m[2 * k + 1]);
    }
    CPU_UNROLL
    for (int k = 0; k < 4; k++) {
        __m512d a = _mm512_castps_pd(t[4 * k]), b = _mm512_castps_pd(t[4 * k + 1]);
        __m512d c = _mm512_castps_pd(t[4 * k + 2]), d = _mm512_castps_pd(t[4 * k + 3]);
        u[4 * k + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        u[4 * k + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        u[4 * k + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        u[4 * k + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    CPU_UNROLL
    for (int c = 0; c < 4; c++) {
        __m512 ab0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x44);
        __m512 ab1 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xee);
        __m512 cd0 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x44);
        __m512 cd1 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xee);
        m[c] = _mm512_shuffle_f32x4(ab0, cd0, 0x88);
        m[4 + c] = _mm512_shuffle_f32x4(ab0, cd0, 0xdd);
        m[8 + c] = _mm512_shuffle_f32x4(ab1, cd1, 0x88);
        m[12 + c] = _mm512_shuffle_f32x4(ab1, cd1, 0xdd);
    }
}

#endif
