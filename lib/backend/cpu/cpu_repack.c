/* cpu_repack.c - Q8_0/Q4_0/Q4_K/Q6_K weights repacked at bind time into the 16-row panels the
 * AVX-512 VNNI and AMX kernels read (layout: cpu_packed in cpu_ops.h), the per-context
 * table that finds them again by the bound view, and the process-wide registry that
 * lets every context of one model share one copy. Portable C: only the kernels that
 * read the panels are ISA-specific. */
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "backend/cpu/cpu_arena.h"
#include "backend/cpu/cpu_ops.h"
#include "base/alloc.h"
#include "base/error.h"

/* Why repack: the kernels want each block of 16 rows as vectors with rows in lanes.
 * Built from the mapping that takes a transpose and a scale gather per block on every
 * call (about half of the generation kernel's work, so it fell behind memory), and the
 * AMX prompt kernel rebuilt its weight tiles on every call. The panels are the file's
 * bytes rearranged, no larger (but for the zero rows that pad the last panel), so the
 * source pages are handed back to the kernel as each chunk is packed (MADV_PAGEOUT,
 * which never changes the contents: a later read of the mapping faults them in again)
 * and peak RSS stays within the file size plus one chunk. Not MADV_DONTNEED, which
 * would keep the page cache warm: the source may be the caller's own memory
 * (lmrt_model_load_memory, use_mmap = false), whose contents DONTNEED would discard. */
#define PACK_CHUNK_BYTES ((size_t)8 << 20)   /* source bytes packed between page-outs */

static size_t block_bytes(uint32_t type)
{
    switch (type) {
    case GGML_TYPE_Q8_0: return 34;
    case GGML_TYPE_Q4_0: return 18;
    case GGML_TYPE_Q4_K: return 144;
    default: return 210;   /* Q6_K */
    }
}

/* Where a block keeps its f16 scale d, which goes to the panel's scales region (Q8_0,
 * Q4_0: first; Q6_K: last); the rest is transposed dword by dword. Q4_K keeps no
 * separate scales: its whole block (d and dmin first) is transposed. */
static size_t head_offset(uint32_t type)
{
    return type == GGML_TYPE_Q6_K ? 208 : 0;
}

#define Q4K_BLOCK_BYTES 144

/* Same view: data and shape. */
static int key_cmp(const cpu_packed *p, const tensor_view *w)
{
    uintptr_t a = (uintptr_t)p->src, b = (uintptr_t)w->data;
    if (a != b)
        return a < b ? -1 : 1;
    if (p->type != w->type)
        return p->type < w->type ? -1 : 1;
    if (p->n_rows != w->n_rows)
        return p->n_rows < w->n_rows ? -1 : 1;
    if (p->n_cols != w->n_cols)
        return p->n_cols < w->n_cols ? -1 : 1;
    if (p->row_bytes != w->row_bytes)
        return p->row_bytes < w->row_bytes ? -1 : 1;
    return 0;
}

/* Index of the entry for w in table[0..n) (sorted by key_cmp), or of where it would go
 * (*found false). */
static int32_t table_search(const cpu_packed *table, int32_t n, const tensor_view *w, bool *found)
{
    int32_t lo = 0, hi = n;
    while (lo < hi) {
        int32_t mid = lo + (hi - lo) / 2;
        int c = key_cmp(&table[mid], w);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

/* Makes room for one more entry in *table (capacity *cap); false when memory is short. */
static bool table_reserve(cpu_packed **table, int32_t n, int32_t *cap)
{
    if (n < *cap)
        return true;
    int32_t c = *cap ? 2 * *cap : 64;
    cpu_packed *t = lmrt_realloc(*table, (size_t)c * sizeof *t);
    if (!t)
        return false;
    *table = t;
    *cap = c;
    return true;
}

/* Every context that binds the same view (the same model's mapping) reads one packed
 * copy: the process-wide registry below holds each copy once, with `refs` counting
 * the contexts that hold it; a context's own table (ctx->packed) counts its binds.
 * Lock order: a context's op_lock, then registry_lock (held only for the table). */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static cpu_packed *registry;
static int32_t n_registry, cap_registry;

int32_t cpu_pack_shared_count(void)
{
    pthread_mutex_lock(&registry_lock);
    int32_t n = n_registry;
    pthread_mutex_unlock(&registry_lock);
    return n;
}

/* Drops one context's hold on pk's copy; the last one frees it. */
static void shared_release(const cpu_packed *pk)
{
    const tensor_view key = {.type = pk->type, .n_cols = pk->n_cols, .n_rows = pk->n_rows,
                             .row_bytes = pk->row_bytes, .data = pk->src};
    pthread_mutex_lock(&registry_lock);
    bool found;
    int32_t at = table_search(registry, n_registry, &key, &found);
    if (found && --registry[at].refs == 0) {
        cpu_arena_free(registry[at].data, registry[at].bytes);
        memmove(registry + at, registry + at + 1,
                (size_t)(n_registry - at - 1) * sizeof *registry);
        if (--n_registry == 0) {
            lmrt_mem_free(registry);
            registry = NULL;
            cap_registry = 0;
        }
    }
    pthread_mutex_unlock(&registry_lock);
}

const cpu_packed *cpu_pack_find(const backend_ctx *ctx, const tensor_view *w)
{
    if (!ctx->n_packed)
        return NULL;
    bool found;
    int32_t i = table_search(ctx->packed, ctx->n_packed, w, &found);
    return found ? &ctx->packed[i] : NULL;
}

/* ---- the layout -------------------------------------------------------------------- */

/* Panel p's rows from the source, one row at a time (the source is read in order). */
static void pack_panel(const cpu_packed *pk, int64_t p)
{
    const size_t bb = block_bytes(pk->type), qb = bb - 2;
    if (pk->type == GGML_TYPE_Q4_K) {
        uint8_t *dst = pk->data + (size_t)p * pk->panel_bytes;
        for (int n = 0; n < CPU_PANEL_ROWS && p * CPU_PANEL_ROWS + n < pk->n_rows; n++) {
            const uint8_t *row = (const uint8_t *)pk->src +
                                 (size_t)(p * CPU_PANEL_ROWS + n) * pk->row_bytes;
            for (int64_t b = 0; b < pk->nb; b++)
                for (size_t j = 0; j < Q4K_BLOCK_BYTES / 4; j++)
                    memcpy(dst + (size_t)b * pk->wq_bytes + 64 * j + 4 * (size_t)n,
                           row + (size_t)b * bb + 4 * j, 4);
        }
        return;
    }
    const size_t head = head_offset(pk->type), quants = head ? 0 : 2;
    uint8_t *dst = pk->data + (size_t)p * pk->panel_bytes;
    uint8_t *scales = dst + (size_t)pk->nb * pk->wq_bytes;
    for (int n = 0; n < CPU_PANEL_ROWS; n++) {
        const int64_t r = p * CPU_PANEL_ROWS + n;
        if (r >= pk->n_rows)
            break;   /* the mapping is zero-filled */
        const uint8_t *row = (const uint8_t *)pk->src + (size_t)r * pk->row_bytes;
        for (int64_t b = 0; b < pk->nb; b++) {
            const uint8_t *blk = row + (size_t)b * bb;
            uint8_t *q = dst + (size_t)b * pk->wq_bytes + 4 * (size_t)n;
            for (size_t j = 0; j < qb / 4; j++)
                memcpy(q + 64 * j, blk + quants + 4 * j, 4);
            memcpy(scales + 32 * (size_t)b + 2 * (size_t)n, blk + head, 2);
        }
    }
}

void cpu_pack_unpack_blocks(const cpu_packed *w, int64_t r, int64_t b0, int64_t n_blocks,
                            uint8_t *out)
{
    const size_t bb = block_bytes(w->type), qb = bb - 2;
    const int64_t p = r / CPU_PANEL_ROWS, n = r % CPU_PANEL_ROWS;
    const uint8_t *src = w->data + (size_t)p * w->panel_bytes;
    if (w->type == GGML_TYPE_Q4_K) {
        for (int64_t b = b0; b < b0 + n_blocks; b++)
            for (size_t j = 0; j < Q4K_BLOCK_BYTES / 4; j++)
                memcpy(out + (size_t)(b - b0) * bb + 4 * j,
                       src + (size_t)b * w->wq_bytes + 64 * j + 4 * (size_t)n, 4);
        return;
    }
    const uint8_t *scales = src + (size_t)w->nb * w->wq_bytes;
    const size_t head = head_offset(w->type), quants = head ? 0 : 2;
    for (int64_t b = b0; b < b0 + n_blocks; b++) {
        uint8_t *blk = out + (size_t)(b - b0) * bb;
        const uint8_t *q = src + (size_t)b * w->wq_bytes + 4 * (size_t)n;
        memcpy(blk + head, scales + 32 * (size_t)b + 2 * (size_t)n, 2);
        for (size_t j = 0; j < qb / 4; j++)
            memcpy(blk + quants + 4 * j, q + 64 * j, 4);
    }
}

typedef struct pack_job {
    const cpu_packed *pk;
    int64_t p0;
} pack_job;

static void pack_range(void *arg, int64_t begin, int64_t end, int thread)
{
    (void)thread;
    const pack_job *j = arg;
    for (int64_t p = begin; p < end; p++)
        pack_panel(j->pk, j->p0 + p);
}

/* Hands the whole pages of source bytes [from, to) back (advice only: see above). */
static void page_out(const uint8_t *from, const uint8_t *to)
{
#if defined(MADV_PAGEOUT)
    const uintptr_t page = 4096;
    uintptr_t a = ((uintptr_t)from + page - 1) & ~(page - 1), b = (uintptr_t)to & ~(page - 1);
    if (a < b)
        (void)madvise((void *)a, b - a, MADV_PAGEOUT);
#else
    (void)from;
    (void)to;
#endif
}

/* Sizes of w's panels; false when w is not a packable view or a size overflows. */
static bool pack_layout(const tensor_view *w, cpu_packed *pk)
{
    const bool k4 = w->type == GGML_TYPE_Q4_K, k6 = w->type == GGML_TYPE_Q6_K;
    const int64_t elems = k4 || k6 ? 256 : 32;
    if ((w->type != GGML_TYPE_Q8_0 && w->type != GGML_TYPE_Q4_0 && !k4 && !k6) ||
        w->n_cols <= 0 || w->n_cols % elems || w->n_rows <= 0 || !w->data)
        return false;
    const int64_t nb = w->n_cols / elems;
    if ((uint64_t)nb > SIZE_MAX / (16 * Q4K_BLOCK_BYTES) ||
        w->row_bytes != (size_t)nb * block_bytes(w->type))
        return false;
    *pk = (cpu_packed){.src = w->data, .type = w->type, .n_cols = w->n_cols,
                       .n_rows = w->n_rows, .row_bytes = w->row_bytes, .nb = nb, .refs = 1};
    pk->wq_bytes = CPU_PANEL_ROWS * (k4 ? Q4K_BLOCK_BYTES : block_bytes(w->type) - 2);
    pk->n_panels = (w->n_rows + CPU_PANEL_ROWS - 1) / CPU_PANEL_ROWS;
    /* scales padded to whole cache lines: every panel and vector stays 64-byte aligned */
    size_t scale_bytes = k4 ? 0 : ((size_t)nb * 32 + 63) & ~(size_t)63;
    if (__builtin_mul_overflow((size_t)nb, pk->wq_bytes, &pk->panel_bytes) ||
        __builtin_add_overflow(pk->panel_bytes, scale_bytes, &pk->panel_bytes) ||
        __builtin_mul_overflow(pk->panel_bytes, (size_t)pk->n_panels, &pk->bytes))
        return false;
    return true;
}

/* Allocates and fills pk->data with w's panels, on ctx's threads; false when memory is
 * refused (then the kernels read the file's layout). */
static bool pack_new(backend_ctx *ctx, const tensor_view *w, cpu_packed *pk)
{
    /* zero-filled, page-aligned, in huge pages where the system allows (fewer TLB
     * misses for the generation kernel's stream: cpu_arena.c), and returned to the
     * system when the last context lets go of it */
    pk->data = cpu_arena_alloc(pk->bytes);
    if (!pk->data)
        return false;
    const size_t panel_src = (size_t)CPU_PANEL_ROWS * w->row_bytes;
    const int64_t chunk = panel_src >= PACK_CHUNK_BYTES ? 1 : (int64_t)(PACK_CHUNK_BYTES / panel_src);
    for (int64_t p0 = 0; p0 < pk->n_panels; p0 += chunk) {
        const int64_t n = pk->n_panels - p0 < chunk ? pk->n_panels - p0 : chunk;
        pack_job job = {pk, p0};
#if defined(MADV_POPULATE_READ)
        /* one call maps the chunk's source pages instead of a fault per page */
        const size_t pg = 4096;
        const uintptr_t s0 = (uintptr_t)w->data + (size_t)p0 * panel_src;
        const uint64_t s1 = (uint64_t)(p0 + n) * panel_src;
        const uintptr_t se = (uintptr_t)w->data +
                             (size_t)(s1 < (uint64_t)w->n_rows * w->row_bytes
                                      ? s1 : (uint64_t)w->n_rows * w->row_bytes);
        (void)madvise((void *)(s0 & ~(pg - 1)), se - (s0 & ~(pg - 1)), MADV_POPULATE_READ);
#endif
        threadpool_run(ctx->pool, n, pack_range, &job);
        const int64_t r1 = (p0 + n) * CPU_PANEL_ROWS;
        page_out((const uint8_t *)w->data,
                 (const uint8_t *)w->data + (size_t)(r1 < w->n_rows ? r1 : w->n_rows) * w->row_bytes);
    }
    return true;
}

/* pk->data = the registry's copy of w's panels, packed now if no context holds one;
 * false when memory is short. Packing (seconds for a large model) runs outside the
 * registry's lock, so that binds of other models do not wait for it; two contexts
 * packing the same view at once both finish, and the second keeps the first's copy. */
static bool shared_acquire(backend_ctx *ctx, const tensor_view *w, cpu_packed *pk)
{
    bool found;
    pthread_mutex_lock(&registry_lock);
    int32_t at = table_search(registry, n_registry, w, &found);
    if (found) {
        registry[at].refs++;
        pk->data = registry[at].data;
    }
    pthread_mutex_unlock(&registry_lock);
    if (found)
        return true;
    if (!pack_new(ctx, w, pk))
        return false;
    bool ok = true;
    pthread_mutex_lock(&registry_lock);
    at = table_search(registry, n_registry, w, &found);
    if (found) {   /* another context registered it meanwhile */
        cpu_arena_free(pk->data, pk->bytes);
        registry[at].refs++;
        pk->data = registry[at].data;
    } else if (table_reserve(&registry, n_registry, &cap_registry)) {
        memmove(registry + at + 1, registry + at, (size_t)(n_registry - at) * sizeof *registry);
        registry[at] = *pk;
        registry[at].refs = 1;
        n_registry++;
    } else {
        cpu_arena_free(pk->data, pk->bytes);
        ok = false;
    }
    pthread_mutex_unlock(&registry_lock);
    return ok;
}

void cpu_pack_bind(backend_ctx *ctx, const tensor_view *w)
{
    cpu_packed pk;
    if (!ctx->k->matmul_packed[w->type] || !pack_layout(w, &pk))
        return;
    pthread_mutex_lock(&ctx->op_lock);
    bool found;
    int32_t at = table_search(ctx->packed, ctx->n_packed, w, &found);
    if (found)
        ctx->packed[at].refs++;
    else if (table_reserve(&ctx->packed, ctx->n_packed, &ctx->cap_packed) &&
             shared_acquire(ctx, w, &pk)) {
        memmove(ctx->packed + at + 1, ctx->packed + at, (size_t)(ctx->n_packed - at) * sizeof pk);
        ctx->packed[at] = pk;
        ctx->n_packed++;
    }
    /* otherwise no copy: the kernels read the mapping */
    pthread_mutex_unlock(&ctx->op_lock);
}

void cpu_pack_unbind(backend_ctx *ctx, const tensor_view *w)
{
    pthread_mutex_lock(&ctx->op_lock);
    bool found = false;
    int32_t at = ctx->n_packed ? table_search(ctx->packed, ctx->n_packed, w, &found) : 0;
    if (ctx->n_packed && found && --ctx->packed[at].refs == 0) {
        shared_release(&ctx->packed[at]);
        memmove(ctx->packed + at, ctx->packed + at + 1,
                (size_t)(ctx->n_packed - at - 1) * sizeof *ctx->packed);
        ctx->n_packed--;
    }
    pthread_mutex_unlock(&ctx->op_lock);
}

void cpu_pack_free_all(backend_ctx *ctx)
{
    for (int32_t i = 0; i < ctx->n_packed; i++)
        shared_release(&ctx->packed[i]);
    lmrt_mem_free(ctx->packed);
    ctx->packed = NULL;
    ctx->n_packed = ctx->cap_packed = 0;
}
