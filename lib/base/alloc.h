/* alloc.h - the one allocator of lmrt, with a failure-injection hook for tests.
 * Every heap allocation in lib/ goes through these so that tests can make the
 * Nth allocation fail and check that nothing leaks or crashes. */
#ifndef LMRT_BASE_ALLOC_H
#define LMRT_BASE_ALLOC_H

#include <stddef.h>

void *lmrt_malloc(size_t size);
void *lmrt_calloc(size_t count, size_t size);   /* count*size overflow -> NULL */
void *lmrt_realloc(void *ptr, size_t size);
void lmrt_mem_free(void *ptr);
char *lmrt_strndup(const char *s, size_t n);    /* NUL-terminated copy of n bytes */
char *lmrt_strdup(const char *s);

/* Test hook (not exported from the shared library): after `n` more successful
 * allocations, every allocation fails; n < 0 turns injection off. Returns the
 * number of allocations made since the last call. Process-wide, not thread-safe. */
long lmrt_alloc_fail_after(long n);

#endif
