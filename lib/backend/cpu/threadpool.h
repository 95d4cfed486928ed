/* threadpool.h - the CPU backend's persistent worker threads. One pool per
 * backend context, created once; ops hand it a range of tasks, split into
 * contiguous pieces by a fixed rule (or, for a balanced run, starting from it), and
 * the calling thread works on the first. */
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

/* A piece of a balanced run: tasks [begin, end) on thread `thread`; the thread's own
 * range continues to `run_end` (>= end) unless another thread takes its tail, so a
 * kernel may prefetch up to there. */
typedef void (*threadpool_chunk_fn)(void *arg, int64_t begin, int64_t end, int64_t run_end,
                                    int thread);

/* As threadpool_run, but for loads that one slow thread would hold up (a vCPU that
 * the host takes away for a while): each thread starts on the range the fixed rule
 * gives it and works through it in pieces of `grain` tasks from the front; a thread
 * that runs out takes pieces of `grain` from the back of the range with the most
 * left. With one thread in use, [0, n_tasks) is one piece. Every task runs exactly
 * once; which thread runs it varies from run to run, so results must not depend on
 * the thread (as for threadpool_run). */
void threadpool_run_balanced(threadpool *pool, int64_t n_tasks, int64_t grain,
                             threadpool_chunk_fn fn, void *arg);

#endif
