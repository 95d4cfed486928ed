/* test_arena.c - the memory of the repacked weights (lib/backend/cpu/cpu_arena.c):
 * zero-filled, page-aligned, carved end to end from 2 MiB-aligned chunks, pages handed
 * back on free, chunks unmapped with their last allocation. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "backend/cpu/cpu_arena.h"
#include "base/alloc.h"

#define HUGE ((size_t)2 << 20)
#define PAGE ((size_t)4096)

static size_t round_page(size_t n)
{
    return (n + PAGE - 1) & ~(PAGE - 1);
}

/* Pages of [p, p + bytes) resident now, or -1 where part of the range is unmapped. */
static long resident_pages(const void *p, size_t bytes)
{
    unsigned char vec[1024];
    const size_t pages = round_page(bytes) / PAGE;
    assert_true(pages <= sizeof vec);
    if (mincore((void *)p, bytes, vec) != 0)
        return errno == ENOMEM ? -1 : -2;
    long n = 0;
    for (size_t i = 0; i < pages; i++)
        n += vec[i] & 1;
    return n;
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

/* Allocations follow each other in one chunk, whose start is 2 MiB-aligned: the ranges
 * between them are whole huge pages. */
static void test_small_allocations_are_adjacent(void **state)
{
    (void)state;
    assert_int_equal(cpu_arena_chunk_count(), 0);   /* each test frees what it takes */
    const size_t sizes[4] = {590 * 1024 + 17, 3 * PAGE, 2359296, 1};
    uint8_t *p[4];
    for (int i = 0; i < 4; i++) {
        p[i] = cpu_arena_alloc(sizes[i]);
        assert_non_null(p[i]);
        assert_int_equal((uintptr_t)p[i] % PAGE, 0);
        assert_true(all_zero(p[i], sizes[i]));
        memset(p[i], 0xa0 + i, sizes[i]);
        if (i > 0)
            assert_ptr_equal(p[i], p[i - 1] + round_page(sizes[i - 1]));
    }
    assert_int_equal(cpu_arena_chunk_count(), 1);
    assert_int_equal((uintptr_t)p[0] % HUGE, 0);
    for (int i = 0; i < 4; i++)
        for (size_t j = 0; j < sizes[i]; j += 4093)
            assert_int_equal(p[i][j], 0xa0 + i);
    for (int i = 0; i < 4; i++)
        cpu_arena_free(p[i], sizes[i]);
    assert_int_equal(cpu_arena_chunk_count(), 0);
}

/* A freed allocation's pages go back while its chunk lives on; the chunk's mapping goes
 * with its last allocation. */
static void test_free_hands_pages_back(void **state)
{
    (void)state;
    const size_t n = 64 * PAGE;
    uint8_t *a = cpu_arena_alloc(n), *b = cpu_arena_alloc(n);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(cpu_arena_chunk_count(), 1);
    memset(a, 1, n);
    memset(b, 2, n);
    assert_int_equal(resident_pages(a, n), 64);
    cpu_arena_free(a, n);
    assert_int_equal(resident_pages(a, n), 0);
    assert_int_equal(b[n - 1], 2);
    assert_int_equal(cpu_arena_chunk_count(), 1);
    cpu_arena_free(b, n);
    assert_int_equal(cpu_arena_chunk_count(), 0);
    assert_int_equal(resident_pages(b, n), -1);   /* unmapped */
}

/* An allocation the open chunk has no room for opens a new one; the old chunk's unused
 * tail is unmapped, its allocations stay. */
static void test_full_chunk_gives_its_tail_back(void **state)
{
    (void)state;
    const size_t big = CPU_ARENA_OWN_MAPPING_ABOVE;   /* the largest from a chunk */
    uint8_t *p[5];
    for (int i = 0; i < 3; i++) {
        p[i] = cpu_arena_alloc(big);
        assert_non_null(p[i]);
    }
    assert_int_equal(cpu_arena_chunk_count(), 1);
    p[3] = cpu_arena_alloc(PAGE);   /* fits the last quarter */
    assert_ptr_equal(p[3], p[2] + big);
    p[4] = cpu_arena_alloc(big);    /* does not */
    assert_non_null(p[4]);
    assert_int_equal(cpu_arena_chunk_count(), 2);
    assert_int_equal((uintptr_t)p[4] % HUGE, 0);
    assert_int_equal(resident_pages(p[3] + PAGE, PAGE), -1);   /* the old tail: unmapped */
    p[3][PAGE - 1] = 7;                                         /* its allocations: not */
    assert_int_equal(p[3][PAGE - 1], 7);
    for (int i = 0; i < 5; i++)
        cpu_arena_free(p[i], i == 3 ? PAGE : big);
    assert_int_equal(cpu_arena_chunk_count(), 0);
}

/* Larger allocations get a 2 MiB-aligned mapping of their own, outside the chunks. */
static void test_large_allocation_maps_its_own(void **state)
{
    (void)state;
    const size_t n = CPU_ARENA_OWN_MAPPING_ABOVE + 5;
    uint8_t *small = cpu_arena_alloc(PAGE), *large = cpu_arena_alloc(n);
    assert_non_null(small);
    assert_non_null(large);
    assert_int_equal(cpu_arena_chunk_count(), 2);
    assert_int_equal((uintptr_t)large % HUGE, 0);
    assert_int_equal(large[n - 1], 0);
    large[n - 1] = 3;
    cpu_arena_free(large, n);
    assert_int_equal(cpu_arena_chunk_count(), 1);
    cpu_arena_free(small, PAGE);
    assert_int_equal(cpu_arena_chunk_count(), 0);
}

/* Sizes the arena cannot serve, and a chunk table that cannot grow: NULL, nothing
 * mapped. */
static void test_refusals(void **state)
{
    (void)state;
    assert_null(cpu_arena_alloc(0));
    assert_null(cpu_arena_alloc(SIZE_MAX));
    assert_null(cpu_arena_alloc(SIZE_MAX - PAGE));
    assert_int_equal(cpu_arena_chunk_count(), 0);
    lmrt_alloc_fail_after(0);
    void *p = cpu_arena_alloc(PAGE);
    lmrt_alloc_fail_after(-1);
    assert_null(p);
    assert_int_equal(cpu_arena_chunk_count(), 0);
    cpu_arena_free(NULL, PAGE);   /* nothing to do */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_small_allocations_are_adjacent),
        cmocka_unit_test(test_free_hands_pages_back),
        cmocka_unit_test(test_full_chunk_gives_its_tail_back),
        cmocka_unit_test(test_large_allocation_maps_its_own),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
