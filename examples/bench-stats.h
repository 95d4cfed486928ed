/* bench-stats.h - what lmrt-bench and lmrt-ab share: a clock and the summary of a
 * measurement repeated n times. */
#ifndef LMRT_EXAMPLES_BENCH_STATS_H
#define LMRT_EXAMPLES_BENCH_STATS_H

/* Seconds on the monotonic clock. */
double bench_now(void);

typedef struct bench_stats {
    double median, min, max;
} bench_stats;

/* Median (the mean of the middle two for even n), min and max of samples[0..n), n >= 1. */
bench_stats bench_summarize(const double *samples, long n);

#endif
