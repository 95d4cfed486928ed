/* bench-stats.c - the clock and the repeat summary of lmrt-bench and lmrt-ab. */
#include "bench-stats.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

bench_stats bench_summarize(const double *samples, long n)
{
    double *s = malloc((size_t)n * sizeof *s);
    if (!s)
        return (bench_stats){samples[0], samples[0], samples[0]};
    memcpy(s, samples, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    bench_stats r = {n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2, s[0], s[n - 1]};
    free(s);
    return r;
}
