/* threadpool.c - persistent pthread workers for the CPU kernels. Workers sleep on
 * a condition variable between runs; nothing here knows about tensors. The work
 * split is a pure function of (n_tasks, n_threads). */
#include "backend/cpu/threadpool.h"

#include <pthread.h>
#include <stdbool.h>

#include "base/alloc.h"
#include "base/error.h"

typedef struct worker {
    threadpool *pool;
    int index;                   /* 1 .. n_threads-1; 0 is the caller */
    pthread_t thread;
} worker;

/* Every shared field is read and written under `lock`: the pool is simple on
 * purpose (a lock-free spinning version lost a wake-up under load). A wake-up
 * costs microseconds per op; spinning belongs to the speed work, and only with
 * an argument that no wake-up can be lost. */
struct threadpool {
    int32_t n_threads;
    worker *workers;             /* [n_threads - 1] */
    int32_t n_started;

    pthread_mutex_t run_lock;    /* one run at a time, single-threaded ones too */
    pthread_mutex_t lock;        /* guards everything below */
    pthread_cond_t work_cv;      /* generation changed or stop */
    pthread_cond_t done_cv;      /* pending reached 0 */
    threadpool_fn fn;            /* the current job */
    void *arg;
    int64_t n_tasks;
    int32_t n_used;
    uint64_t generation;         /* bumped once per run */
    int32_t pending;             /* workers that have not finished this run */
    bool stop;
};

static inline void task_range(int64_t n_tasks, int32_t n_used, int32_t i, int64_t *begin,
                              int64_t *end)
{
    /* floor(n_tasks * i / n_used), without forming the product that could
     * overflow: n_tasks = q * n_used + r, so it is q * i + floor(r * i / n_used). */
    int64_t q = n_tasks / n_used, r = n_tasks % n_used;
    *begin = q * i + r * i / n_used;
    *end = q * (i + 1) + r * (i + 1) / n_used;
}

static void *worker_main(void *p)
{
    worker *w = p;
    threadpool *pool = w->pool;
    uint64_t seen = 0;
    pthread_mutex_lock(&pool->lock);
    for (;;) {
        while (pool->generation == seen && !pool->stop)
            pthread_cond_wait(&pool->work_cv, &pool->lock);
        if (pool->stop)
            break;
        seen = pool->generation;
        threadpool_fn fn = pool->fn;
        void *arg = pool->arg;
        int64_t begin = 0, end = 0;
        if (w->index < pool->n_used)
            task_range(pool->n_tasks, pool->n_used, w->index, &begin, &end);
        pthread_mutex_unlock(&pool->lock);
        if (begin < end)
            fn(arg, begin, end, w->index);
        pthread_mutex_lock(&pool->lock);
        if (--pool->pending == 0)
            pthread_cond_signal(&pool->done_cv);
    }
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

static void stop_workers(threadpool *pool)
{
    pthread_mutex_lock(&pool->lock);
    pool->stop = true;
    pthread_cond_broadcast(&pool->work_cv);
    pthread_mutex_unlock(&pool->lock);
    for (int32_t i = 0; i < pool->n_started; i++)
        pthread_join(pool->workers[i].thread, NULL);
    pool->n_started = 0;
}

lmrt_status threadpool_create(int32_t n_threads, threadpool **out)
{
    if (n_threads < 1 || !out)
        return lmrt_fail(LMRT_E_INVALID_ARG, "threadpool_create: %s",
                         out ? "n_threads must be at least 1" : "out is NULL");
    threadpool *pool = lmrt_calloc(1, sizeof *pool);
    if (!pool)
        return lmrt_fail(LMRT_E_NOMEM, "threadpool_create: out of memory");
    pool->n_threads = n_threads;
    pthread_mutex_init(&pool->run_lock, NULL);
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->work_cv, NULL);
    pthread_cond_init(&pool->done_cv, NULL);
    if (n_threads > 1) {
        pool->workers = lmrt_calloc((size_t)n_threads - 1, sizeof *pool->workers);
        if (!pool->workers) {
            threadpool_free(pool);
            return lmrt_fail(LMRT_E_NOMEM, "threadpool_create: out of memory");
        }
        for (int32_t i = 0; i < n_threads - 1; i++) {
            worker *w = &pool->workers[i];
            w->pool = pool;
            w->index = i + 1;
            int err = pthread_create(&w->thread, NULL, worker_main, w);
            if (err) {
                threadpool_free(pool);
                return lmrt_fail(LMRT_E_BACKEND, "threadpool_create: starting thread %d of "
                                 "%d failed (error %d)", (int)i + 2, (int)n_threads, err);
            }
            pool->n_started++;
        }
    }
    *out = pool;
    return LMRT_OK;
}

void threadpool_free(threadpool *pool)
{
    if (!pool)
        return;
    stop_workers(pool);
    pthread_cond_destroy(&pool->done_cv);
    pthread_cond_destroy(&pool->work_cv);
    pthread_mutex_destroy(&pool->lock);
    pthread_mutex_destroy(&pool->run_lock);
    lmrt_mem_free(pool->workers);
    lmrt_mem_free(pool);
}

int32_t threadpool_n_threads(const threadpool *pool)
{
    return pool->n_threads;
}

void threadpool_run(threadpool *pool, int64_t n_tasks, threadpool_fn fn, void *arg)
{
    if (n_tasks <= 0)
        return;
    int32_t n_used = pool->n_threads < n_tasks ? pool->n_threads : (int32_t)n_tasks;
    pthread_mutex_lock(&pool->run_lock);
    if (n_used == 1) {
        fn(arg, 0, n_tasks, 0);
        pthread_mutex_unlock(&pool->run_lock);
        return;
    }
    pthread_mutex_lock(&pool->lock);
    pool->fn = fn;
    pool->arg = arg;
    pool->n_tasks = n_tasks;
    pool->n_used = n_used;
    pool->pending = pool->n_started;
    pool->generation++;
    pthread_cond_broadcast(&pool->work_cv);
    pthread_mutex_unlock(&pool->lock);

    int64_t begin, end;
    task_range(n_tasks, n_used, 0, &begin, &end);
    if (begin < end)
        fn(arg, begin, end, 0);

    pthread_mutex_lock(&pool->lock);
    while (pool->pending != 0)
        pthread_cond_wait(&pool->done_cv, &pool->lock);
    pthread_mutex_unlock(&pool->lock);
    pthread_mutex_unlock(&pool->run_lock);
}
