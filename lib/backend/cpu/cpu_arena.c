/* cpu_arena.c - the memory the repacked weights live in (cpu_repack.c).
 *
 * Why not a mapping per weight: the kernel backs anonymous memory with huge pages only
 * over whole 2 MiB-aligned ranges, and a mapping of its own starts wherever the kernel
 * puts it. So each packed weight lost its head and tail to 4 KiB pages, and a weight
 * under 2 MiB (k and v of the 1B model: 0.56 MiB in Q4_0) all of it: 30% of the 1B
 * Q4_0 model's packed bytes. A streaming read of 4 KiB pages ran 12-15% slower than of
 * huge pages on our KVM guest (a TLB miss costs a nested page walk), and generation
 * with every packed byte in huge pages 5.3% faster for Q4_0 and 2.2% for Q8_0 (tg64, 2
 * threads, the two builds alternated in one process). Rounding each mapping up to 2 MiB
 * would do that too, but it costs up to 2 MiB of resident memory per weight (150 MiB
 * for the 1B model) against lmrt-bench's RSS budget; carving the weights end to end out
 * of large chunks costs one partly used huge page, at the end of the open chunk.
 *
 * Allocations over CPU_ARENA_OWN_MAPPING_ABOVE get a 2 MiB-aligned mapping of their own
 * (they lose at most their last 2 MiB); the rest come from the open chunk, in order.
 * When it has no room left its unused tail is unmapped and a new chunk opened. Freeing
 * hands an allocation's pages back at once (MADV_DONTNEED; addresses are never handed
 * out twice, so the zero fill holds) and a chunk's mapping goes with its last
 * allocation. */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/mman.h>

#include "backend/cpu/cpu_arena.h"
#include "base/alloc.h"

#define HUGE_PAGE ((size_t)2 << 20)
#define PAGE ((size_t)4096)

typedef struct arena_chunk {
    uint8_t *base;     /* 2 MiB-aligned */
    size_t mapped;     /* bytes mapped from base */
    size_t used;       /* bytes handed out from base, a multiple of PAGE */
    int32_t live;      /* allocations in it not yet freed */
} arena_chunk;

static pthread_mutex_t arena_lock = PTHREAD_MUTEX_INITIALIZER;
static arena_chunk *chunks;        /* [n_chunks], in no order */
static int32_t n_chunks, cap_chunks;
static int32_t open_chunk = -1;    /* where small allocations come from; -1: none */

/* `bytes` (a multiple of PAGE) mapped at a 2 MiB-aligned address, asked for huge
 * pages; NULL when refused. Maps a range one huge page larger and trims both ends. */
static uint8_t *map_aligned(size_t bytes)
{
    size_t reserve;
    if (__builtin_add_overflow(bytes, HUGE_PAGE - PAGE, &reserve))
        return NULL;
    uint8_t *raw = mmap(NULL, reserve, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED)
        return NULL;
    uint8_t *base = (uint8_t *)(((uintptr_t)raw + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
    if (base > raw)
        munmap(raw, (size_t)(base - raw));
    if (raw + reserve > base + bytes)
        munmap(base + bytes, (size_t)(raw + reserve - (base + bytes)));
#if defined(MADV_HUGEPAGE)
    (void)madvise(base, bytes, MADV_HUGEPAGE);
#endif
    return base;
}

/* Room for one more chunk in the table; false when memory is short. */
static bool reserve_chunk_entry(void)
{
    if (n_chunks < cap_chunks)
        return true;
    const int32_t cap = cap_chunks ? 2 * cap_chunks : 16;
    arena_chunk *t = lmrt_realloc(chunks, (size_t)cap * sizeof *t);
    if (!t)
        return false;
    chunks = t;
    cap_chunks = cap;
    return true;
}

static void add_chunk(uint8_t *base, size_t mapped, size_t used, int32_t live)
{
    chunks[n_chunks++] = (arena_chunk){.base = base, .mapped = mapped, .used = used,
                                       .live = live};
}

static void remove_chunk(int32_t i)
{
    munmap(chunks[i].base, chunks[i].mapped);
    if (open_chunk == i)
        open_chunk = -1;
    chunks[i] = chunks[--n_chunks];
    if (open_chunk == n_chunks)   /* the last entry moved to i */
        open_chunk = i;
    if (n_chunks == 0) {
        lmrt_mem_free(chunks);
        chunks = NULL;
        cap_chunks = 0;
    }
}

/* The open chunk takes no more allocations: its unused tail goes back. */
static void close_open_chunk(void)
{
    arena_chunk *c = &chunks[open_chunk];
    if (c->mapped > c->used)
        munmap(c->base + c->used, c->mapped - c->used);
    c->mapped = c->used;
    open_chunk = -1;
}

void *cpu_arena_alloc(size_t bytes)
{
    if (bytes == 0 || bytes > SIZE_MAX - HUGE_PAGE)
        return NULL;
    const size_t size = (bytes + PAGE - 1) & ~(PAGE - 1);
    uint8_t *p = NULL;
    pthread_mutex_lock(&arena_lock);
    if (!reserve_chunk_entry()) {
        pthread_mutex_unlock(&arena_lock);
        return NULL;
    }
    if (size <= CPU_ARENA_OWN_MAPPING_ABOVE) {
        if (open_chunk >= 0 && chunks[open_chunk].mapped - chunks[open_chunk].used < size)
            close_open_chunk();
        if (open_chunk < 0) {
            uint8_t *base = map_aligned(CPU_ARENA_CHUNK_BYTES);
            if (base) {
                open_chunk = n_chunks;
                add_chunk(base, CPU_ARENA_CHUNK_BYTES, 0, 0);
            }
        }
        if (open_chunk >= 0) {
            arena_chunk *c = &chunks[open_chunk];
            p = c->base + c->used;
            c->used += size;
            c->live++;
        }
    }
    /* a large allocation, or no chunk to be had (a strict overcommit limit): a mapping
     * of its own */
    if (!p && (p = map_aligned(size)))
        add_chunk(p, size, size, 1);
    pthread_mutex_unlock(&arena_lock);
    return p;
}

void cpu_arena_free(void *p, size_t bytes)
{
    if (!p)
        return;
    uint8_t *at = p;
    const size_t size = (bytes + PAGE - 1) & ~(PAGE - 1);
    pthread_mutex_lock(&arena_lock);
    for (int32_t i = 0; i < n_chunks; i++) {
        arena_chunk *c = &chunks[i];
        if (at < c->base || at >= c->base + c->used)
            continue;
        if (--c->live == 0)
            remove_chunk(i);
        else
            (void)madvise(at, size, MADV_DONTNEED);
        break;
    }
    pthread_mutex_unlock(&arena_lock);
}

int32_t cpu_arena_chunk_count(void)
{
    pthread_mutex_lock(&arena_lock);
    const int32_t n = n_chunks;
    pthread_mutex_unlock(&arena_lock);
    return n;
}
