/* threadpool.c - persistent pthread workers for the CPU kernels. Workers sleep on
 * a condition variable between runs; nothing here knows about tensors. A fixed run's
 * split is a pure function of (n_tasks, n_threads); a balanced run starts from the
 * same split and moves pieces of it to threads that finish early. */
#include "backend/cpu/threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/alloc.h"
#include "base/error.h"

typedef struct worker {
    threadpool *pool;
    int index;                   /* 1 .. n_threads-1; 0 is the caller */
    pthread_t thread;
} worker;

/* A thread's range in a balanced run, {begin, end} in one word so that its owner
 * (taking from the front) and a thief (from the back) agree by compare-and-swap;
 * a cache line each. */
typedef struct range_slot {
    _Alignas(64) atomic_uint_fast64_t range;   /* begin | end << 32 */
} range_slot;

/* Workers spin briefly on `generation` before sleeping, and the caller spins on
 * `done` before sleeping, so that the hundreds of small runs of one forward pass
 * do not each pay a futex wake-up (tens of microseconds on a VM).
 *
 * Why no wake-up is lost (the classic Dekker argument, all atomics seq_cst):
 *   worker: sleepers++; then reads generation      caller: generation++; then reads sleepers
 * In the single total order of seq_cst operations one of the two reads comes
 * after the other side's write: either the worker sees the new generation and
 * does not sleep, or the caller sees sleepers > 0 and broadcasts, under the
 * mutex the worker holds until cond_wait releases it. The caller's sleep on
 * `done` mirrors it with caller_sleeping. */
struct threadpool {
    int32_t n_threads;
    worker *workers;             /* [n_threads - 1] */
    int32_t n_started;

    pthread_mutex_t run_lock;    /* one run at a time, single-threaded ones too */
    pthread_mutex_t lock;        /* for the condition variables only */
    pthread_cond_t work_cv;      /* generation changed or stop */
    pthread_cond_t done_cv;      /* every worker finished the run */

    /* The current job: written before the generation bump, read after seeing it. */
    threadpool_fn fn;            /* a fixed-split run, or */
    threadpool_chunk_fn chunk_fn; /* a balanced run (the other is NULL) */
    void *arg;
    int64_t n_tasks;
    int64_t grain;               /* balanced: tasks per piece */
    int32_t n_used;
    range_slot *slots;           /* [n_threads]: balanced runs' ranges, 64-byte aligned */
    void *slots_raw;             /* the allocation behind slots */

    atomic_uint_fast64_t generation; /* bumped once per run */
    atomic_int done;                 /* workers that finished this run */
    atomic_int sleepers;             /* workers inside the sleep below */
    atomic_bool caller_sleeping;
    atomic_bool stop;
};

/* Before sleeping, a waiter polls SPIN_POLLS times with a pause (microseconds,
 * enough to bridge two ops of a forward pass), then YIELD_POLLS times giving its
 * core away: with more threads than cores, a thread that only spun would hold
 * the core the thread it waits for needs. */
#define SPIN_POLLS 300
#define YIELD_POLLS 5

/* Spins until *(cond)(pool) holds; false when it never did (then sleep). */
#define POLL_UNTIL(condition)                                                                \
    ({                                                                                       \
        bool met_ = false;                                                                   \
        for (int i_ = 0; i_ < SPIN_POLLS + YIELD_POLLS && !(met_ = (condition)); i_++) {     \
            if (i_ < SPIN_POLLS)                                                             \
                cpu_relax();                                                                 \
            else                                                                             \
                sched_yield();                                                               \
        }                                                                                    \
        met_;                                                                                \
    })

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static inline void task_range(int64_t n_tasks, int32_t n_used, int32_t i, int64_t *begin,
                              int64_t *end)
{
    /* floor(n_tasks * i / n_used), without forming the product that could
     * overflow: n_tasks = q * n_used + r, so it is q * i + floor(r * i / n_used). */
    int64_t q = n_tasks / n_used, r = n_tasks % n_used;
    *begin = q * i + r * i / n_used;
    *end = q * (i + 1) + r * (i + 1) / n_used;
}

static inline uint64_t range_pack(int64_t begin, int64_t end)
{
    return (uint64_t)begin | (uint64_t)end << 32;
}

/* Thread `self`'s part of a balanced run: pieces from the front of its own range,
 * then pieces from the back of whichever range has the most left, until none has. */
static void run_balanced_share(threadpool *pool, int32_t self)
{
    const int64_t grain = pool->grain;
    atomic_uint_fast64_t *own = &pool->slots[self].range;
    for (;;) {
        uint_fast64_t r = atomic_load(own);
        int64_t b = (int64_t)(r & 0xffffffffu), e = (int64_t)(r >> 32);
        if (b >= e)
            break;
        int64_t nb = e - b > grain ? b + grain : e;
        if (atomic_compare_exchange_weak(own, &r, range_pack(nb, e)))
            pool->chunk_fn(pool->arg, b, nb, e, self);
    }
    for (;;) {
        int32_t victim = -1;
        int64_t most = 0;
        for (int32_t i = 0; i < pool->n_used; i++) {
            uint_fast64_t r = atomic_load(&pool->slots[i].range);
            int64_t left = (int64_t)(r >> 32) - (int64_t)(r & 0xffffffffu);
            if (left > most) {
                most = left;
                victim = i;
            }
        }
        if (victim < 0)
            return;
        atomic_uint_fast64_t *slot = &pool->slots[victim].range;
        uint_fast64_t r = atomic_load(slot);
        int64_t b = (int64_t)(r & 0xffffffffu), e = (int64_t)(r >> 32);
        if (b >= e)
            continue;
        int64_t ne = e - b > grain ? e - grain : b;
        if (atomic_compare_exchange_weak(slot, &r, range_pack(b, ne)))
            pool->chunk_fn(pool->arg, ne, e, e, self);
    }
}

/* Runs thread `index`'s part of the current job. */
static void run_share(threadpool *pool, int32_t index)
{
    if (index >= pool->n_used)
        return;
    int64_t begin, end;
    if (pool->chunk_fn && pool->grain > 0) {
        run_balanced_share(pool, index);
        return;
    }
    task_range(pool->n_tasks, pool->n_used, index, &begin, &end);
    if (begin < end && pool->chunk_fn)
        pool->chunk_fn(pool->arg, begin, end, end, index);
    else if (begin < end)
        pool->fn(pool->arg, begin, end, index);
}

/* Waits until generation differs from `seen` or stop is set; returns it. */
static uint64_t wait_for_work(threadpool *pool, uint64_t seen)
{
    if (POLL_UNTIL(atomic_load(&pool->generation) != seen || atomic_load(&pool->stop)))
        return atomic_load(&pool->generation);
    pthread_mutex_lock(&pool->lock);
    atomic_fetch_add(&pool->sleepers, 1);
    uint64_t g;
    while ((g = atomic_load(&pool->generation)) == seen && !atomic_load(&pool->stop))
        pthread_cond_wait(&pool->work_cv, &pool->lock);
    atomic_fetch_sub(&pool->sleepers, 1);
    pthread_mutex_unlock(&pool->lock);
    return g;
}

static void *worker_main(void *p)
{
    worker *w = p;
    threadpool *pool = w->pool;
    uint64_t seen = 0;
    for (;;) {
        uint64_t g = wait_for_work(pool, seen);
        if (atomic_load(&pool->stop))
            return NULL;
        seen = g;
        run_share(pool, w->index);
        if (atomic_fetch_add(&pool->done, 1) + 1 == pool->n_started &&
            atomic_load(&pool->caller_sleeping)) {
            pthread_mutex_lock(&pool->lock);
            pthread_cond_signal(&pool->done_cv);
            pthread_mutex_unlock(&pool->lock);
        }
    }
}

static void stop_workers(threadpool *pool)
{
    pthread_mutex_lock(&pool->lock);
    atomic_store(&pool->stop, true);
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
    atomic_init(&pool->generation, 0);
    atomic_init(&pool->done, 0);
    atomic_init(&pool->sleepers, 0);
    atomic_init(&pool->caller_sleeping, false);
    atomic_init(&pool->stop, false);
    pthread_mutex_init(&pool->run_lock, NULL);
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->work_cv, NULL);
    pthread_cond_init(&pool->done_cv, NULL);
    if (n_threads > 1) {
        pool->workers = lmrt_calloc((size_t)n_threads - 1, sizeof *pool->workers);
        pool->slots_raw = lmrt_calloc((size_t)n_threads + 1, sizeof(range_slot));
        pool->slots = (range_slot *)(((uintptr_t)pool->slots_raw + 63) & ~(uintptr_t)63);
        if (!pool->workers || !pool->slots_raw) {
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
    lmrt_mem_free(pool->slots_raw);
    lmrt_mem_free(pool);
}

int32_t threadpool_n_threads(const threadpool *pool)
{
    return pool->n_threads;
}

/* Publishes the job set in pool (run_lock held), does the caller's share and waits
 * for the workers. */
static void run_job(threadpool *pool)
{
    atomic_store(&pool->done, 0);
    atomic_fetch_add(&pool->generation, 1);   /* publishes the job */
    if (atomic_load(&pool->sleepers) > 0) {
        pthread_mutex_lock(&pool->lock);
        pthread_cond_broadcast(&pool->work_cv);
        pthread_mutex_unlock(&pool->lock);
    }
    run_share(pool, 0);

    const int want = pool->n_started;
    if (!POLL_UNTIL(atomic_load(&pool->done) == want)) {
        pthread_mutex_lock(&pool->lock);
        /* An exchange, not a store: qemu-user was seen to let the load of `done`
         * below pass a plain seq_cst store, losing the wake-up. */
        (void)atomic_exchange(&pool->caller_sleeping, true);
        while (atomic_load(&pool->done) != want)
            pthread_cond_wait(&pool->done_cv, &pool->lock);
        atomic_store(&pool->caller_sleeping, false);
        pthread_mutex_unlock(&pool->lock);
    }
}

void threadpool_run(threadpool *pool, int64_t n_tasks, threadpool_fn fn, void *arg)
{
    if (n_tasks <= 0)
        return;
    int32_t n_used = pool->n_threads < n_tasks ? pool->n_threads : (int32_t)n_tasks;
    pthread_mutex_lock(&pool->run_lock);
    if (n_used == 1 || pool->n_started == 0) {
        fn(arg, 0, n_tasks, 0);
        pthread_mutex_unlock(&pool->run_lock);
        return;
    }
    pool->fn = fn;
    pool->chunk_fn = NULL;
    pool->arg = arg;
    pool->n_tasks = n_tasks;
    pool->n_used = n_used;
    run_job(pool);
    pthread_mutex_unlock(&pool->run_lock);
}

void threadpool_run_balanced(threadpool *pool, int64_t n_tasks, int64_t grain,
                             threadpool_chunk_fn fn, void *arg)
{
    if (n_tasks <= 0)
        return;
    if (grain < 1)
        grain = 1;
    int32_t n_used = pool->n_threads < n_tasks ? pool->n_threads : (int32_t)n_tasks;
    pthread_mutex_lock(&pool->run_lock);
    if (n_used == 1 || pool->n_started == 0) {
        fn(arg, 0, n_tasks, n_tasks, 0);
        pthread_mutex_unlock(&pool->run_lock);
        return;
    }
    pool->fn = NULL;
    pool->chunk_fn = fn;
    pool->arg = arg;
    pool->n_tasks = n_tasks;
    /* Ranges are 32-bit halves of a word; a run too long for that (never, for the
     * panels of a weight) goes as the fixed split (grain 0). */
    pool->grain = n_tasks > INT32_MAX ? 0 : grain;
    pool->n_used = n_used;
    for (int32_t i = 0; i < n_used && pool->grain > 0; i++) {
        int64_t b, e;
        task_range(n_tasks, n_used, i, &b, &e);
        atomic_store(&pool->slots[i].range, range_pack(b, e));
    }
    run_job(pool);
    pthread_mutex_unlock(&pool->run_lock);
}
