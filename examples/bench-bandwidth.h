/* bench-bandwidth.h - the machine's read bandwidth for lmrt-bench's roofline. */
#ifndef LMRT_EXAMPLES_BENCH_BANDWIDTH_H
#define LMRT_EXAMPLES_BENCH_BANDWIDTH_H

#include <stddef.h>

/* Best read bandwidth in bytes per second of n_threads threads over a buffer of about
 * `bytes` (at least 5 passes, and as many more as fit in `seconds`), or 0. */
double bench_measure_bandwidth(size_t bytes, int n_threads, double seconds);

/* The same in a forked child, whose buffer never counts in this process's peak RSS;
 * 0 where fork or pipe fails. */
double bench_measure_bandwidth_forked(size_t bytes, int n_threads, double seconds);

/* The mean read bandwidth over passes that fill at least `seconds` (at least 5), in a
 * forked child: the rate under the conditions of a test that just ran as long, for a
 * fraction whose two sides are measured alike (lmrt-bench's paired roofline). */
double bench_measure_bandwidth_mean_forked(size_t bytes, int n_threads, double seconds);

/* Bytes per loop iteration: each thread's slice is a multiple of it. */
#define BENCH_BW_UNIT 256

#endif
