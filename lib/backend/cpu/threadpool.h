/* threadpool.h - the CPU backend's persistent worker threads. One pool per
 * backend context, created once; ops hand it a range of tasks, split into
 * contiguous pieces by a fixed rule, and the calling thread works on the first. */
#ifndef LMRT_BACKEND_CPU_THREADPOOL_H
#define LMRT_BACKEND_CPU_THREADPOOL_H

#include <stdint.h>

#include "lmrt.h"

typedef struct threadpool threadpool;

/* Runs tasks [begin, end) on thread `thread` (0 = the caller, < n_threads).
 * A task's result must not depend on which range or thread it falls in: that is
 * what makes results identical for every thread count. */
typedef void (*threadpool_fn)(void *arg, int64_t begin, int64_t end, int thread);

/* A pool of n_threads (>= 1) threads including the caller: n_threads - 1
 * workers are started now and sleep until work arrives; n_threads == 1 starts
 * none. LMRT_E_NOMEM / LMRT_E_BACKEND when memory or a thread is refused. */
lmrt_status threadpool_create(int32_t n_threads, threadpool **out);
/* Wakes the workers, lets them exit and joins them. NULL is fine. */
void threadpool_free(threadpool *pool);
int32_t threadpool_n_threads(const threadpool *pool);

/* Calls fn on [0, n_tasks) and returns when all of it is done. With
 * u = min(n_threads, n_tasks) threads in use, thread i gets
 * [n_tasks * i / u, n_tasks * (i + 1) / u). n_tasks <= 1 (or a one-thread pool)
 * runs on the caller without waking anyone. Runs from different threads on the
 * same pool take turns; fn must not call threadpool_run on the same pool. */
void threadpool_run(threadpool *pool, int64_t n_tasks, threadpool_fn fn, void *arg);

#endif
