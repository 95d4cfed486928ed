/* cpu_arena.h - the memory the repacked weights live in: zero-filled, page-aligned,
 * carved end to end from 2 MiB-aligned chunks so that the kernel can back nearly all of
 * it with huge pages (cpu_arena.c says why). Thread-safe. */
#ifndef LMRT_BACKEND_CPU_ARENA_H
#define LMRT_BACKEND_CPU_ARENA_H

#include <stddef.h>
#include <stdint.h>

/* `bytes` (> 0) of zero-filled memory at a 4 KiB-aligned address, or NULL when the
 * system refuses the mapping or memory is short. */
void *cpu_arena_alloc(size_t bytes);

/* Gives back what cpu_arena_alloc(bytes) returned at p: its pages go back to the system
 * at once, its chunk's address range when the chunk's last allocation goes. */
void cpu_arena_free(void *p, size_t bytes);

/* Chunks mapped now (an open chunk, closed ones still holding allocations, and the
 * mappings of single large allocations), for tests. */
int32_t cpu_arena_chunk_count(void);

/* A chunk's size, and the size above which an allocation gets a mapping of its own:
 * for tests. */
#define CPU_ARENA_CHUNK_BYTES ((size_t)256 << 20)
#define CPU_ARENA_OWN_MAPPING_ABOVE (CPU_ARENA_CHUNK_BYTES / 4)

#endif
