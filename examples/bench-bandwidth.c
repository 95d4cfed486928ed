/* bench-bandwidth.c - lmrt-bench's measurement of the machine's read bandwidth, the
 * denominator of its roofline: n threads each read their own slice of a buffer, the
 * best pass counts. Plain C and pthreads; no lmrt. */
#include "bench-bandwidth.h"
#include "bench-stats.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

/* The roofline needs the best read rate the machine gives, so the loop uses the
 * widest loads this CPU has and prefetches: on a 2-core Sapphire Rapids VM a loop
 * of 16-byte adds reads ~18-20 GB/s where 64-byte loads with prefetch read
 * 26-32 GB/s. Each thread reads its slice as
 * two halves in step, a unit from each in turn: on the 2-core Emerald Rapids VM that
 * read 3% faster than one stream (median of 7 alternated runs, 1.00-1.05), and the
 * matmul kernels, which stream a panel while prefetching the next, beat the one-stream
 * loop (a paired roofline over 100% for Q8_0). */
#define BW_UNIT BENCH_BW_UNIT
#define BW_PREFETCH 65536       /* how far ahead each line is prefetched */

/* Sums n bytes at p (64-byte aligned, n a multiple of BW_UNIT). */
typedef uint64_t (*bw_read_fn)(const unsigned char *p, size_t n);

/* The two halves of n bytes: [0, h) and [h, 2h), then a unit left over when n is an
 * odd number of units. */
static size_t bw_half(size_t n)
{
    return n / 2 / BW_UNIT * BW_UNIT;
}

/* Where prefetching stops in a half of h bytes: nothing past it is prefetched. */
static size_t bw_prefetch_end(size_t h)
{
    return h > BW_PREFETCH ? h - BW_PREFETCH : 0;
}

/* A 16-byte vector: one SSE2 or NEON register, whatever -march says (wider
 * generic vectors are spilled to the stack without AVX). */
typedef uint64_t u64x2 __attribute__((vector_size(16)));

/* The loops below add each unit into named accumulators (a0..): an array of them
 * passed to a helper is kept in memory by gcc -O2, which halves the read rate. */

/* 128 bytes (two cache lines) at q into the eight accumulators a0..a7. */
#define GENERIC_LINES(q)                                                                   \
    do {                                                                                   \
        const u64x2 *v_ = (const u64x2 *)(const void *)(q);                                \
        a0 += v_[0], a1 += v_[1], a2 += v_[2], a3 += v_[3];                                \
        a4 += v_[4], a5 += v_[5], a6 += v_[6], a7 += v_[7];                                \
    } while (0)

/* Any CPU: 128 bytes of each half per iteration, each line prefetched BW_PREFETCH
 * ahead. */
static uint64_t bw_read_generic(const unsigned char *p, size_t n)
{
    const size_t h = bw_half(n), pf_end = bw_prefetch_end(h);
    u64x2 a0 = {0, 0}, a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    for (size_t i = 0; i < h; i += 128) {
        if (i < pf_end) {
            __builtin_prefetch(p + i + BW_PREFETCH, 0, 2);
            __builtin_prefetch(p + i + BW_PREFETCH + 64, 0, 2);
            __builtin_prefetch(p + h + i + BW_PREFETCH, 0, 2);
            __builtin_prefetch(p + h + i + BW_PREFETCH + 64, 0, 2);
        }
        GENERIC_LINES(p + i);
        GENERIC_LINES(p + h + i);
    }
    for (size_t i = 2 * h; i < n; i += 128)
        GENERIC_LINES(p + i);
    a0 += a1 + a2 + a3 + a4 + a5 + a6 + a7;
    return a0[0] ^ a0[1];
}

#if defined(__x86_64__)
/* The BW_UNIT bytes BW_PREFETCH ahead of q, a line at a time, into L2 (T1). */
static inline void bw_prefetch_unit(const unsigned char *q)
{
    for (int l = 0; l < BW_UNIT; l += 64)
        _mm_prefetch((const char *)q + BW_PREFETCH + l, _MM_HINT_T1);
}

/* One unit at q: four 64-byte loads, one into each of a0..a3. */
#define AVX512_UNIT(q)                                                                     \
    do {                                                                                   \
        const unsigned char *q_ = (q);                                                     \
        a0 = _mm512_add_epi64(a0, _mm512_load_si512((const void *)q_));                    \
        a1 = _mm512_add_epi64(a1, _mm512_load_si512((const void *)(q_ + 64)));            \
        a2 = _mm512_add_epi64(a2, _mm512_load_si512((const void *)(q_ + 128)));           \
        a3 = _mm512_add_epi64(a3, _mm512_load_si512((const void *)(q_ + 192)));           \
    } while (0)

/* A unit of each half per iteration; each line prefetched BW_PREFETCH ahead into L2
 * (T1). */
__attribute__((target("avx512f"))) static uint64_t bw_read_avx512(const unsigned char *p,
                                                                  size_t n)
{
    const size_t h = bw_half(n), pf_end = bw_prefetch_end(h);
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i < h; i += BW_UNIT) {
        if (i < pf_end) {
            bw_prefetch_unit(p + i);
            bw_prefetch_unit(p + h + i);
        }
        AVX512_UNIT(p + i);
        AVX512_UNIT(p + h + i);
    }
    if (2 * h < n)
        AVX512_UNIT(p + 2 * h);
    __m512i s = _mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3));
    uint64_t lanes[8], sum = 0;
    _mm512_storeu_si512((void *)lanes, s);
    for (int i = 0; i < 8; i++)
        sum ^= lanes[i];
    return sum;
}

/* One unit at q with 32-byte loads: eight, two into each of a0..a3. */
#define AVX2_UNIT(q)                                                                       \
    do {                                                                                   \
        const __m256i *v_ = (const __m256i *)(const void *)(q);                            \
        a0 = _mm256_add_epi64(a0, _mm256_load_si256(v_));                                  \
        a1 = _mm256_add_epi64(a1, _mm256_load_si256(v_ + 1));                              \
        a2 = _mm256_add_epi64(a2, _mm256_load_si256(v_ + 2));                              \
        a3 = _mm256_add_epi64(a3, _mm256_load_si256(v_ + 3));                              \
        a0 = _mm256_add_epi64(a0, _mm256_load_si256(v_ + 4));                              \
        a1 = _mm256_add_epi64(a1, _mm256_load_si256(v_ + 5));                              \
        a2 = _mm256_add_epi64(a2, _mm256_load_si256(v_ + 6));                              \
        a3 = _mm256_add_epi64(a3, _mm256_load_si256(v_ + 7));                              \
    } while (0)

/* The same as bw_read_avx512 with 32-byte loads. */
__attribute__((target("avx2"))) static uint64_t bw_read_avx2(const unsigned char *p, size_t n)
{
    const size_t h = bw_half(n), pf_end = bw_prefetch_end(h);
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i < h; i += BW_UNIT) {
        if (i < pf_end) {
            bw_prefetch_unit(p + i);
            bw_prefetch_unit(p + h + i);
        }
        AVX2_UNIT(p + i);
        AVX2_UNIT(p + h + i);
    }
    if (2 * h < n)
        AVX2_UNIT(p + 2 * h);
    __m256i s = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
    uint64_t lanes[4];
    _mm256_storeu_si256((__m256i *)(void *)lanes, s);
    return lanes[0] ^ lanes[1] ^ lanes[2] ^ lanes[3];
}
#endif

/* The widest loop this CPU runs (checked at run time: the build targets the
 * baseline ISA). */
static bw_read_fn bw_pick_read(void)
{
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        return bw_read_avx512;
    if (__builtin_cpu_supports("avx2"))
        return bw_read_avx2;
#endif
    return bw_read_generic;
}

typedef struct bw_worker {
    pthread_t thread;
    pthread_barrier_t *start;
    unsigned char *p;      /* this thread's slice, 256-byte aligned */
    size_t n;              /* bytes, a multiple of BW_UNIT */
    int write;             /* 1: first touch (memset), 0: read */
    bw_read_fn read;
    uint64_t sum;
    double t_start, t_end; /* this thread's own clock readings around its work */
} bw_worker;

/* Faults the slice in, or reads it; bound by memory bandwidth, which is the point. */
static void *bw_run(void *arg)
{
    bw_worker *w = arg;
    pthread_barrier_wait(w->start);
    w->t_start = bench_now();
    if (w->write)
        memset(w->p, 1, w->n);
    else
        w->sum = w->read(w->p, w->n);
    w->t_end = bench_now();
    return NULL;
}

/* One pass of n_threads threads over their slices; seconds, or -1 if a thread
 * could not start. */
static double bw_pass(bw_worker *w, int n_threads, pthread_barrier_t *start, int write)
{
    int started = 0;
    for (; started < n_threads; started++) {
        w[started].write = write;
        if (pthread_create(&w[started].thread, NULL, bw_run, &w[started]) != 0)
            break;
    }
    if (started < n_threads) {
        /* The barrier never opens: cannot happen after the first pass succeeded. */
        fprintf(stderr, "lmrt-bench: cannot start %d threads for the bandwidth test\n",
                n_threads);
        return -1;
    }
    pthread_barrier_wait(start);
    /* Timed by the workers themselves, from the first start to the last end: the
     * caller may not run at all while its workers fill the cores (a clock read here
     * after the barrier once made a 64 MiB pass look like 0.5 us). */
    double first = 0, last = 0;
    for (int i = 0; i < n_threads; i++) {
        pthread_join(w[i].thread, NULL);
        if (i == 0 || w[i].t_start < first)
            first = w[i].t_start;
        if (i == 0 || w[i].t_end > last)
            last = w[i].t_end;
    }
    return last - first;
}

static volatile uint64_t bw_sink;

/* The buffer asks for transparent huge pages, as lmrt's repacked weights do
 * (cpu_repack.c): with 4 KiB pages the loop read ~5% slower on this VM (2 MiB-aligned,
 * madvise'd: 1.045-1.051 of the same loop over 4 KiB pages, median of 15 alternated
 * passes, twice) and the Q8_0 kernel outran it. */
#define BW_ALIGN ((size_t)2 << 20)
#define BW_MIN_PASSES 5
#define BW_MAX_PASSES 100

/* Passes for at least `seconds` (and at least BW_MIN_PASSES): the best pass's rate, or
 * with `mean` the rate over all of them (bytes read / seconds spent in passes). */
static double measure(size_t bytes, int n_threads, double seconds, bool mean)
{
    size_t per = bytes / (size_t)n_threads / BW_UNIT * BW_UNIT;
    bw_read_fn fn = bw_pick_read();
    unsigned char *buf = NULL;
    bw_worker *w = calloc((size_t)n_threads, sizeof *w);
    pthread_barrier_t start;
    double best = 0, pass_s = 0, bytes_read = 0;
    if (!w || per == 0 || posix_memalign((void **)&buf, BW_ALIGN, per * (size_t)n_threads) != 0) {
        free(w);
        return 0;
    }
#if defined(MADV_HUGEPAGE)
    (void)madvise(buf, per * (size_t)n_threads, MADV_HUGEPAGE);   /* before first touch */
#endif
    pthread_barrier_init(&start, NULL, (unsigned)n_threads + 1);
    for (int i = 0; i < n_threads; i++)
        w[i] = (bw_worker){.start = &start, .p = buf + per * (size_t)i, .n = per, .read = fn};
    if (bw_pass(w, n_threads, &start, 1) >= 0) {   /* each thread faults its own slice in */
        /* Other work on the cores only ever lowers a pass: keep passing for at
         * least `seconds` so that some pass lands in a quiet moment (best), or so
         * that the mean spans as long a time as what it is compared with. */
        double t_end = bench_now() + seconds;
        for (int pass = 0; pass < BW_MAX_PASSES && (pass < BW_MIN_PASSES || bench_now() < t_end);
             pass++) {
            double s = bw_pass(w, n_threads, &start, 0);
            if (s <= 0)
                break;
            double rate = (double)(per * (size_t)n_threads) / s;
            if (rate > best)
                best = rate;
            pass_s += s;
            bytes_read += (double)(per * (size_t)n_threads);
            for (int i = 0; i < n_threads; i++)
                bw_sink ^= w[i].sum;
        }
    }
    pthread_barrier_destroy(&start);
    free(buf);
    free(w);
    return mean ? (pass_s > 0 ? bytes_read / pass_s : 0) : best;
}

double bench_measure_bandwidth(size_t bytes, int n_threads, double seconds)
{
    return measure(bytes, n_threads, seconds, false);
}

/* measure() in a forked child, its rate back through a pipe. */
static double measure_forked(size_t bytes, int n_threads, double seconds, bool mean)
{
    int fd[2];
    if (pipe(fd) != 0)
        return 0;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]);
        close(fd[1]);
        return 0;
    }
    if (pid == 0) {
        close(fd[0]);
        double rate = measure(bytes, n_threads, seconds, mean);
        _exit(write(fd[1], &rate, sizeof rate) == (ssize_t)sizeof rate ? 0 : 1);
    }
    close(fd[1]);
    double rate = 0;
    ssize_t got;
    do
        got = read(fd[0], &rate, sizeof rate);
    while (got < 0 && errno == EINTR);
    close(fd[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (got != (ssize_t)sizeof rate || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return 0;
    return rate > 0 ? rate : 0;
}


double bench_measure_bandwidth_forked(size_t bytes, int n_threads, double seconds)
{
    return measure_forked(bytes, n_threads, seconds, false);
}

double bench_measure_bandwidth_mean_forked(size_t bytes, int n_threads, double seconds)
{
    return measure_forked(bytes, n_threads, seconds, true);
}
