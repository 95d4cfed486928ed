/* cpu_features.c - run-time CPU feature detection for kernel dispatch.
 * Uses the compiler's cpuid support, which also checks that the OS saves the
 * AVX/AVX-512 register state; valgrind reports no AVX-512, so it gets AVX2 or scalar. */
#include "backend/cpu/cpu_features.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static cpu_features detected;
static pthread_once_t detect_once = PTHREAD_ONCE_INIT;

static cpu_level level_from_env(cpu_level hw)
{
    const char *want = getenv("LMRT_CPU");
    if (!want || !*want)
        return hw;
    cpu_level asked = hw;
    if (strcmp(want, "scalar") == 0)
        asked = CPU_LEVEL_SCALAR;
    else if (strcmp(want, "neon") == 0)
        asked = CPU_LEVEL_NEON;
    else if (strcmp(want, "avx2") == 0)
        asked = CPU_LEVEL_AVX2;
    else if (strcmp(want, "avx512") == 0)
        asked = CPU_LEVEL_AVX512;
    return asked < hw ? asked : hw;
}

static void detect(void)
{
    cpu_level hw = CPU_LEVEL_SCALAR;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        hw = CPU_LEVEL_AVX2;
    if (hw == CPU_LEVEL_AVX2 && __builtin_cpu_supports("avx512f") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")) {
        hw = CPU_LEVEL_AVX512;
        detected.avx512_vnni = __builtin_cpu_supports("avx512vnni");
        detected.avx512_bf16 = __builtin_cpu_supports("avx512bf16");
    }
#elif defined(__aarch64__)
    hw = CPU_LEVEL_NEON;
#endif
    detected.level = level_from_env(hw);
    if (detected.level != CPU_LEVEL_AVX512)
        detected.avx512_vnni = detected.avx512_bf16 = false;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    detected.n_cores = n > 0 ? (int)n : 1;
}

const cpu_features *cpu_features_get(void)
{
    pthread_once(&detect_once, detect);
    return &detected;
}

const char *cpu_features_describe(const cpu_features *f)
{
    switch (f->level) {
    case CPU_LEVEL_SCALAR: return "scalar";
    case CPU_LEVEL_NEON: return "neon";
    case CPU_LEVEL_AVX2: return "avx2";
    case CPU_LEVEL_AVX512:
        if (f->avx512_vnni && f->avx512_bf16)
            return "avx512-vnni-bf16";
        if (f->avx512_vnni)
            return "avx512-vnni";
        if (f->avx512_bf16)
            return "avx512-bf16";
        return "avx512";
    }
    return "scalar";
}
