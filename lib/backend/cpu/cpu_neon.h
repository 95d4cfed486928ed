/* cpu_neon.h - the arm64 NEON kernel table and the functions behind it. Built only
 * for aarch64 (lib/meson.build); cpu_ops.c lists cpu_kernels_neon at CPU_LEVEL_NEON.
 *
 * Numerics: exactly those cpu_simd.h defines for every SIMD level, so that NEON,
 * AVX2 and AVX-512 give the same bits:
 *   F32, F16, BF16 (vec_type F32): dot_f32(dequantized row, x), mul then add, no FMA
 *     (lmrt builds with -ffp-contract=off) - the scalar kernel's bits.
 *   Q8_0, Q4_0 (vec_type Q8_0): exact int32 block sums, then in block order
 *     acc = fmaf(dw_b * dx_b, (float)isum_b, acc).
 *   Q4_K, Q6_K (vec_type Q8_K): exact isum (and imin for Q4_K) per 256-block, then
 *     acc = fmaf(d * dx, isum, acc) (Q4_K: then acc = fmaf(-(dmin * dx), imin, acc)).
 * The int8 dots use SDOT where the CPU has the dotprod extension (cpu_features'
 * neon_dotprod) and widening multiplies otherwise; integer sums are exact, so both
 * give the same bits.
 * Speed: not measured yet. The project has no arm64 machine, and qemu's timings say
 * nothing about one; the "Bound" notes in the kernel files are the design intent. */
#ifndef LMRT_BACKEND_CPU_NEON_H
#define LMRT_BACKEND_CPU_NEON_H

#include "backend/cpu/cpu_ops.h"

#if defined(__aarch64__)
/* Uses SDOT when cpu_features_get()->neon_dotprod. */
extern const cpu_kernels cpu_kernels_neon;
/* The same kernels with the widening-multiply int8 dots only (for tests: must
 * match cpu_kernels_neon bit for bit). */
extern const cpu_kernels cpu_kernels_neon_nodot;

/* Whether this build has the SDOT kernels at all (gcc always; clang only when
 * built for a dotprod -march, as clang < 16 cannot target one function). */
bool cpu_neon_built_with_sdot(void);

/* cpu_matmul_neon.c */
void cpu_matmul_f_neon(const tensor_view *w, const matmul_input *in, float *y, int64_t r0,
                       int64_t r1, float *scratch);
void cpu_matmul_q8_neon(const tensor_view *w, const matmul_input *in, float *y, int64_t r0,
                        int64_t r1, float *scratch);
void cpu_matmul_q8_neon_nodot(const tensor_view *w, const matmul_input *in, float *y,
                              int64_t r0, int64_t r1, float *scratch);
/* cpu_matmul_k_neon.c: Q4_K and Q6_K against Q8_K activations. */
void cpu_matmul_k_neon(const tensor_view *w, const matmul_input *in, float *y, int64_t r0,
                       int64_t r1, float *scratch);
void cpu_matmul_k_neon_nodot(const tensor_view *w, const matmul_input *in, float *y,
                             int64_t r0, int64_t r1, float *scratch);
/* cpu_kernels_neon.c: byte-exact copies of quantize_row_q8_0 / quantize_row_q8_K. */
void cpu_quantize_q8_0_neon(const float *x, void *out, int64_t n);
void cpu_quantize_q8_K_neon(const float *x, void *out, int64_t n);

/* SDOT on one function at a time: gcc needs the architecture, not just "+dotprod",
 * for arm_neon.h's vdotq_s32 to inline. */
#if defined(__ARM_FEATURE_DOTPROD)
#define LMRT_NEON_SDOT 1
#define LMRT_SDOT_TARGET
#elif defined(__GNUC__) && !defined(__clang__)
#define LMRT_NEON_SDOT 1
#define LMRT_SDOT_TARGET __attribute__((target("arch=armv8.2-a+dotprod")))
#else
#define LMRT_NEON_SDOT 0
#define LMRT_SDOT_TARGET
#endif
#endif

#endif
