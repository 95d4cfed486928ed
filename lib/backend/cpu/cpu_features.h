/* cpu_features.h - what the CPU can run, detected once from cpuid (or the OS on arm64).
 * The kernels are chosen from this at run time, never at compile time. */
#ifndef LMRT_BACKEND_CPU_FEATURES_H
#define LMRT_BACKEND_CPU_FEATURES_H

#include <stdbool.h>

typedef enum cpu_level {
    CPU_LEVEL_SCALAR = 0,     /* portable C reference kernels */
    CPU_LEVEL_NEON = 1,       /* arm64 Advanced SIMD */
    CPU_LEVEL_AVX2 = 2,       /* AVX2 + FMA + F16C */
    CPU_LEVEL_AVX512 = 3      /* AVX-512 F/BW/VL (+ VNNI, BF16 flags below) */
} cpu_level;

typedef struct cpu_features {
    cpu_level level;
    bool avx512_vnni;
    bool avx512_bf16;
    bool amx_int8;            /* AMX-TILE + AMX-INT8, enabled by the OS and permitted to
                               * this process (arch_prctl); only at CPU_LEVEL_AVX512 */
    bool neon_dotprod;        /* arm64 SDOT/UDOT (HWCAP_ASIMDDP); only at CPU_LEVEL_NEON */
    int n_cores;              /* online logical processors */
} cpu_features;

/* Detected once per process. LMRT_CPU=scalar|avx2|avx512|neon in the environment
 * lowers (never raises) the level, for tests and benchmarks; AMX is used only when
 * LMRT_CPU is unset or "amx" (so LMRT_CPU=avx512 means AVX-512 without AMX). */
const cpu_features *cpu_features_get(void);
/* "scalar", "avx2", "avx512", "avx512-vnni-bf16", "avx512-vnni-bf16-amx", "neon",
 * "neon-dotprod", ... */
const char *cpu_features_describe(const cpu_features *f);

#endif
