/* alloc.c - malloc wrappers with failure injection for the out-of-memory tests. */
#include "base/alloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "lmrt.h"

/* Atomics, so that threads allocating at once stay race-free; injection itself
 * is meant for single-threaded tests. */
static atomic_long fail_countdown = -1;  /* < 0: never fail */
static atomic_long alloc_count;

static int should_fail(void)
{
    atomic_fetch_add_explicit(&alloc_count, 1, memory_order_relaxed);
    long left = atomic_load_explicit(&fail_countdown, memory_order_relaxed);
    if (left < 0)
        return 0;
    if (left == 0)
        return 1;
    atomic_fetch_sub_explicit(&fail_countdown, 1, memory_order_relaxed);
    return 0;
}

long lmrt_alloc_fail_after(long n)
{
    long made = atomic_exchange(&alloc_count, 0);
    atomic_store(&fail_countdown, n);
    return made;
}

void *lmrt_malloc(size_t size)
{
    if (should_fail())
        return NULL;
    return malloc(size ? size : 1);
}

void *lmrt_calloc(size_t count, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(count, size, &total))
        return NULL;
    if (should_fail())
        return NULL;
    return calloc(total ? total : 1, 1);
}

void *lmrt_realloc(void *ptr, size_t size)
{
    if (should_fail())
        return NULL;
    return realloc(ptr, size ? size : 1);
}

void lmrt_mem_free(void *ptr)
{
    free(ptr);
}

void lmrt_free(void *ptr)
{
    free(ptr);
}

char *lmrt_strndup(const char *s, size_t n)
{
    if (n == SIZE_MAX)
        return NULL;
    char *copy = lmrt_malloc(n + 1);
    if (!copy)
        return NULL;
    memcpy(copy, s, n);
    copy[n] = '\0';
    return copy;
}

char *lmrt_strdup(const char *s)
{
    return lmrt_strndup(s, strlen(s));
}
