/* cpu_features.c - run-time CPU feature detection for kernel dispatch.
 * Uses the compiler's cpuid support, which also checks that the OS saves the
 * AVX/AVX-512 register state; valgrind reports no AVX-512, so it gets AVX2 or scalar.
 * AMX is asked for (Linux's arch_prctl permission) only at the AVX-512 level. */
#include "backend/cpu/cpu_features.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
/* The kernel's bit for the dotprod extension (asm/hwcap.h), should libc not name it. */
#if defined(HWCAP_ASIMDDP)
#define LMRT_HWCAP_ASIMDDP HWCAP_ASIMDDP
#else
#define LMRT_HWCAP_ASIMDDP (1ul << 20)
#endif
#endif

#if (defined(__x86_64__) || defined(__i386__)) && defined(__linux__)
#include <cpuid.h>
#include <sys/syscall.h>
#define LMRT_DETECT_AMX 1
#endif

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

#if defined(LMRT_DETECT_AMX)
/* AMX-TILE and AMX-INT8 in cpuid, the tile state enabled in XCR0 (bits 17, 18), and
 * Linux's per-process permission for the tile data (arch_prctl ARCH_REQ_XCOMP_PERM,
 * XFEATURE_XTILEDATA), without which the first tile instruction faults. Asked once. */
static bool amx_usable(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(d & (1u << 24)) || !(d & (1u << 25)))
        return false;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27)))   /* OSXSAVE */
        return false;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & (3u << 17)) != (3u << 17))
        return false;
    return syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XTILEDATA */) == 0;
}
#endif

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
#if defined(__linux__)
    detected.neon_dotprod = (getauxval(AT_HWCAP) & LMRT_HWCAP_ASIMDDP) != 0;
#endif
#endif
    detected.level = level_from_env(hw);
    if (detected.level != CPU_LEVEL_AVX512)
        detected.avx512_vnni = detected.avx512_bf16 = false;
    if (detected.level != CPU_LEVEL_NEON)
        detected.neon_dotprod = false;
#if defined(LMRT_DETECT_AMX)
    const char *want = getenv("LMRT_CPU");
    if (detected.level == CPU_LEVEL_AVX512 && (!want || !*want || strcmp(want, "amx") == 0))
        detected.amx_int8 = amx_usable();
#endif
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
    case CPU_LEVEL_NEON: return f->neon_dotprod ? "neon-dotprod" : "neon";
    case CPU_LEVEL_AVX2: return "avx2";
    case CPU_LEVEL_AVX512:
        if (f->avx512_vnni && f->avx512_bf16)
            return f->amx_int8 ? "avx512-vnni-bf16-amx" : "avx512-vnni-bf16";
        if (f->avx512_vnni)
            return f->amx_int8 ? "avx512-vnni-amx" : "avx512-vnni";
        if (f->avx512_bf16)
            return "avx512-bf16";
        return "avx512";
    }
    return "scalar";
}
