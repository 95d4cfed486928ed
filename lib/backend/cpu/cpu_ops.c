/* cpu_ops.c - the CPU backend's context, memory, weight binding, kernel table and
 * the small ops (get_rows, rmsnorm, rope, silu_mul, add). Each op checks its
 * arguments, then splits its outputs over the thread pool; the kernels it calls
 * compute a range of outputs and know nothing about threads. matmul and
 * attention live in cpu_matmul.c and cpu_attention.c. */
#include "backend/cpu/cpu_ops.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "backend/cpu/cpu_neon.h"
#include "backend/cpu/cpu_simd.h"
#include "base/alloc.h"
#include "base/error.h"
#include "tensor/quant.h"

/* ---- kernel dispatch ---------------------------------------------------- */

static void rmsnorm_scalar(const float *x, const float *weight, int32_t n, float eps, float *y);
static void rope_scalar(float *x, int32_t n_head, int32_t head_dim, int32_t n_rot, int32_t pos,
                        float freq_base, const float *freq_factors);
static void silu_mul_scalar(float *gate, const float *up, int64_t n);
static void add_scalar(float *y, const float *x, int64_t n);

const cpu_kernels cpu_kernels_scalar = {
    .name = "scalar",
    /* The reference dequantizes each weight row and dots it with float x. */
    .matmul = {
        [GGML_TYPE_F32] = {cpu_matmul_rows_scalar, GGML_TYPE_F32},
        [GGML_TYPE_F16] = {cpu_matmul_rows_scalar, GGML_TYPE_F32},
        [GGML_TYPE_BF16] = {cpu_matmul_rows_scalar, GGML_TYPE_F32},
        [GGML_TYPE_Q8_0] = {cpu_matmul_rows_scalar, GGML_TYPE_F32},
        [GGML_TYPE_Q4_0] = {cpu_matmul_rows_scalar, GGML_TYPE_F32},
        [GGML_TYPE_Q4_K] = {cpu_matmul_rows_scalar, GGML_TYPE_F32},
        [GGML_TYPE_Q6_K] = {cpu_matmul_rows_scalar, GGML_TYPE_F32},
    },
    .rmsnorm = rmsnorm_scalar,
    .rope = rope_scalar,
    .attention = cpu_attention_head_scalar,
    .silu_mul = silu_mul_scalar,
    .add = add_scalar,
};

/* One table per cpu_level; NULL until that level's kernels exist, and a NULL
 * entry falls back along level_fallback (AVX-512 -> AVX2 -> scalar, NEON ->
 * scalar). LMRT_CPU=scalar forces the reference. The SIMD tables come from
 * cpu_*_avx2.c / cpu_*_avx512.c, built with their -m flags on those files only
 * (never -march=native) when meson finds the compiler supports them. */
static const cpu_kernels *const kernels_by_level[] = {
    [CPU_LEVEL_SCALAR] = &cpu_kernels_scalar,
#if defined(__aarch64__)
    [CPU_LEVEL_NEON] = &cpu_kernels_neon,
#else
    [CPU_LEVEL_NEON] = NULL,
#endif
#if defined(LMRT_HAVE_AVX2_KERNELS)
    [CPU_LEVEL_AVX2] = &cpu_kernels_avx2,
#else
    [CPU_LEVEL_AVX2] = NULL,
#endif
#if defined(LMRT_HAVE_AVX512_KERNELS)
    [CPU_LEVEL_AVX512] = &cpu_kernels_avx512,   /* needs VNNI: see cpu_kernels_for */
#else
    [CPU_LEVEL_AVX512] = NULL,
#endif
};

/* Where a level without its own table goes instead. */
static const cpu_level level_fallback[] = {
    [CPU_LEVEL_SCALAR] = CPU_LEVEL_SCALAR,
    [CPU_LEVEL_NEON] = CPU_LEVEL_SCALAR,
    [CPU_LEVEL_AVX2] = CPU_LEVEL_SCALAR,
    [CPU_LEVEL_AVX512] = CPU_LEVEL_AVX2,
};

const cpu_kernels *cpu_kernels_for(cpu_level level)
{
    unsigned l = (unsigned)level;
    if (l >= sizeof kernels_by_level / sizeof kernels_by_level[0])
        return &cpu_kernels_scalar;
#if defined(LMRT_HAVE_AVX512_KERNELS)
    /* The AVX-512 table's int8 dots are VNNI; with AMX-INT8 too, the variant whose
     * Q8_0/Q4_0 prompt tiles run on AMX (the same bits). */
    if (l == CPU_LEVEL_AVX512) {
        const cpu_features *f = cpu_features_get();
        if (!f->avx512_vnni)
            l = CPU_LEVEL_AVX2;
#if defined(LMRT_HAVE_AMX_KERNELS)
        else if (f->amx_int8)
            return &cpu_kernels_avx512_amx;
#endif
    }
#endif
    while (!kernels_by_level[l] && l != CPU_LEVEL_SCALAR)
        l = level_fallback[l];
    return kernels_by_level[l];
}

/* ---- context and scratch ------------------------------------------------ */

lmrt_status cpu_ctx_create(int32_t device, int32_t n_threads, backend_ctx **out)
{
    if (!out)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cpu backend: ctx_create: out is NULL");
    if (device != 0)
        return lmrt_fail(LMRT_E_NOT_FOUND, "cpu backend: no device %d (it has one, index 0)",
                         (int)device);
    if (n_threads < 0 || n_threads > CPU_MAX_THREADS)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cpu backend: n_threads %d is outside 0..%d",
                         (int)n_threads, CPU_MAX_THREADS);
    const cpu_features *f = cpu_features_get();
    if (n_threads == 0)
        n_threads = f->n_cores > 0 ? f->n_cores : 1;
    backend_ctx *ctx = lmrt_calloc(1, sizeof *ctx);
    if (!ctx)
        return lmrt_fail(LMRT_E_NOMEM, "cpu backend: out of memory for a context");
    lmrt_status st = threadpool_create(n_threads, &ctx->pool);
    if (st) {
        lmrt_mem_free(ctx);
        return lmrt_fail_prefix(st, "cpu backend");
    }
    pthread_mutex_init(&ctx->op_lock, NULL);
    ctx->k = cpu_kernels_for(f->level);
    ctx->n_threads = n_threads;
    *out = ctx;
    return LMRT_OK;
}

void cpu_ctx_free(backend_ctx *ctx)
{
    if (!ctx)
        return;
    threadpool_free(ctx->pool);
    cpu_pack_free_all(ctx);
    pthread_mutex_destroy(&ctx->op_lock);
    lmrt_mem_free(ctx->xq);
    lmrt_mem_free(ctx->scratch_raw);
    lmrt_mem_free(ctx);
}

lmrt_status cpu_scratch_reserve(backend_ctx *ctx, int64_t floats, const char *op)
{
    if (floats < 0)
        floats = 0;
    if ((uint64_t)floats <= ctx->scratch_stride && ctx->scratch)
        return LMRT_OK;
    /* Round up to 16 floats (64 bytes) so that every thread's row starts aligned. */
    size_t stride = ((size_t)floats + 15) & ~(size_t)15;
    size_t total;
    if ((uint64_t)floats > SIZE_MAX / 8 ||
        __builtin_mul_overflow(stride, (size_t)ctx->n_threads * sizeof(float), &total) ||
        __builtin_add_overflow(total, (size_t)64, &total))
        return lmrt_fail(LMRT_E_NOMEM, "cpu backend: %s: scratch of %lld floats per thread "
                         "is too large", op, (long long)floats);
    void *raw = lmrt_malloc(total);
    if (!raw)
        return lmrt_fail(LMRT_E_NOMEM, "cpu backend: %s: out of memory for %zu bytes of "
                         "scratch", op, total);
    lmrt_mem_free(ctx->scratch_raw);
    ctx->scratch_raw = raw;
    ctx->scratch = (float *)(((uintptr_t)raw + 63) & ~(uintptr_t)63);
    ctx->scratch_stride = stride;
    return LMRT_OK;
}

/* ---- memory -------------------------------------------------------------- */

/* Allocations are 64-byte aligned: the raw pointer sits in the word just
 * before the aligned block, which cpu_free reads back. */
#define CPU_ALIGN 64

lmrt_status cpu_alloc(backend_ctx *ctx, size_t bytes, void **out)
{
    (void)ctx;
    if (!out)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cpu backend: alloc: out is NULL");
    size_t total;
    if (__builtin_add_overflow(bytes, (size_t)CPU_ALIGN + sizeof(void *), &total))
        return lmrt_fail(LMRT_E_NOMEM, "cpu backend: alloc of %zu bytes is too large", bytes);
    void *raw = lmrt_calloc(1, total);
    if (!raw)
        return lmrt_fail(LMRT_E_NOMEM, "cpu backend: out of memory allocating %zu bytes", bytes);
    uintptr_t aligned = ((uintptr_t)raw + sizeof(void *) + CPU_ALIGN - 1) & ~(uintptr_t)(CPU_ALIGN - 1);
    memcpy((void *)(aligned - sizeof(void *)), &raw, sizeof raw);
    *out = (void *)aligned;
    return LMRT_OK;
}

void cpu_free(backend_ctx *ctx, void *ptr)
{
    (void)ctx;
    if (!ptr)
        return;
    void *raw;
    memcpy(&raw, (char *)ptr - sizeof(void *), sizeof raw);
    lmrt_mem_free(raw);
}

lmrt_status cpu_upload(backend_ctx *ctx, void *dst, const void *host_src, size_t bytes)
{
    (void)ctx;
    if (bytes && (!dst || !host_src))
        return lmrt_fail(LMRT_E_INVALID_ARG, "cpu backend: upload: NULL %s",
                         dst ? "source" : "destination");
    if (bytes)
        memmove(dst, host_src, bytes);
    return LMRT_OK;
}

lmrt_status cpu_download(backend_ctx *ctx, void *host_dst, const void *src, size_t bytes)
{
    (void)ctx;
    if (bytes && (!host_dst || !src))
        return lmrt_fail(LMRT_E_INVALID_ARG, "cpu backend: download: NULL %s",
                         host_dst ? "source" : "destination");
    if (bytes)
        memmove(host_dst, src, bytes);
    return LMRT_OK;
}

/* ---- weights ------------------------------------------------------------- */

bool cpu_supports_type(uint32_t type)
{
    return quant_type_supported(type) && cpu_kernels_scalar.matmul[type].rows != NULL;
}

lmrt_status cpu_check_view(const tensor_view *w, lmrt_status status, const char *op)
{
    if (!w)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cpu backend: %s: weight view is NULL", op);
    const char *name = w->name ? w->name : "(unnamed)";
    if (!cpu_supports_type(w->type))
        return lmrt_fail(LMRT_E_UNSUPPORTED, "cpu backend: %s: tensor '%s' has type %s (%u), "
                         "which the CPU backend cannot compute with", op, name,
                         tensor_type_name(w->type), (unsigned)w->type);
    const tensor_type_traits *tt = tensor_type_get(w->type);
    if (w->n_cols <= 0 || w->n_rows < 0)
        return lmrt_fail(status, "cpu backend: %s: tensor '%s' has shape %lld x %lld", op,
                         name, (long long)w->n_rows, (long long)w->n_cols);
    if (w->n_cols % tt->block_elems != 0)
        return lmrt_fail(status, "cpu backend: %s: tensor '%s': %lld columns is not a "
                         "whole number of %s blocks of %u", op, name, (long long)w->n_cols,
                         tt->name, (unsigned)tt->block_elems);
    uint64_t want = (uint64_t)(w->n_cols / tt->block_elems) * tt->block_bytes;
    if (w->row_bytes != want)
        return lmrt_fail(status, "cpu backend: %s: tensor '%s': row_bytes %zu, but %lld %s "
                         "elements take %llu bytes", op, name, w->row_bytes,
                         (long long)w->n_cols, tt->name, (unsigned long long)want);
    uint64_t total;
    if (__builtin_mul_overflow((uint64_t)w->n_rows, want, &total) || total > SIZE_MAX)
        return lmrt_fail(status, "cpu backend: %s: tensor '%s': %lld rows of %llu bytes "
                         "overflow", op, name, (long long)w->n_rows, (unsigned long long)want);
    if (!w->data && w->n_rows > 0)
        return lmrt_fail(status, "cpu backend: %s: tensor '%s' has no data", op, name);
    return LMRT_OK;
}

lmrt_status cpu_bind_weight(backend_ctx *ctx, const tensor_view *host, tensor_view *out)
{
    if (!ctx || !host || !out)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cpu backend: bind_weight: NULL %s",
                         !ctx ? "context" : !host ? "view" : "out");
    lmrt_status st = cpu_check_view(host, LMRT_E_FORMAT, "bind_weight");
    if (st)
        return st;
    /* The view stays the mapping's (zero-copy: every op can read it); Q8_0, Q4_0, Q4_K
     * and Q6_K get a repacked copy for the matmul kernels where the level has them
     * (cpu_repack.c). */
    *out = *host;
    cpu_pack_bind(ctx, out);
    return LMRT_OK;
}

void cpu_unbind_weight(backend_ctx *ctx, tensor_view *bound)
{
    if (ctx && bound)
        cpu_pack_unbind(ctx, bound);
}

/* ---- get_rows ------------------------------------------------------------- */

typedef struct get_rows_job {
    const tensor_view *table;
    const cpu_packed *packed;    /* the table's repacked copy, or NULL */
    const int32_t *ids;
    float *out;
} get_rows_job;

static void get_rows_range(void *arg, int64_t begin, int64_t end, int thread)
{
    (void)thread;
    const get_rows_job *j = arg;
    const tensor_view *t = j->table;
    for (int64_t i = begin; i < end; i++) {
        float *out = j->out + i * t->n_cols;
        if (j->packed) {
            /* From the repacked copy (whose source pages were handed back), one block
             * at a time: the same bytes, so the same floats. */
            const cpu_packed *pk = j->packed;
            const tensor_type_traits *tt = tensor_type_get(t->type);
            uint8_t blk[288];   /* 8-16 Q8_0/Q4_0 blocks, 2 Q4_K, 1 Q6_K */
            _Static_assert(sizeof blk >= 210, "holds a block of every packed type");
            const int64_t step = (int64_t)(sizeof blk / tt->block_bytes);
            for (int64_t b = 0; b < pk->nb; b += step) {
                int64_t n = pk->nb - b < step ? pk->nb - b : step;
                cpu_pack_unpack_blocks(pk, j->ids[i], b, n, blk);
                (void)dequantize_row(t->type, blk, out + tt->block_elems * b,
                                     tt->block_elems * n);
            }
            continue;
        }
        const uint8_t *row = (const uint8_t *)t->data + (size_t)j->ids[i] * t->row_bytes;
        /* Cannot fail: type and n_cols were checked. */
        (void)dequantize_row(t->type, row, out, t->n_cols);
    }
}

lmrt_status cpu_get_rows(backend_ctx *ctx, const tensor_view *table, const int32_t *ids,
                         int32_t n, float *out)
{
    if (!ctx)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cpu backend: get_rows: context is NULL");
    lmrt_status st = cpu_check_view(table, LMRT_E_INVALID_ARG, "get_rows");
    if (st)
        return st;
    if (n < 0 || (n > 0 && (!ids || !out)))
        return lmrt_fail(LMRT_E_INVALID_ARG, "cpu backend: get_rows: %s",
                         n < 0 ? "negative row count" : "ids or out is NULL");
    for (int32_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= table->n_rows)
            return lmrt_fail(LMRT_E_INVALID_ARG, "cpu backend: get_rows: id %d (at %d) is "
                             "outside tensor '%s' of %lld rows", (int)ids[i], (int)i,
                             table->name ? table->name : "(unnamed)", (long long)table->n_rows);
    get_rows_job job = {table, NULL, ids, out};
    pthread_mutex_lock(&ctx->op_lock);
    job.packed = cpu_pack_find(ctx, table);
    threadpool_run(ctx->pool, n, get_rows_range, &job);
    pthread_mutex_unlock(&ctx->op_lock);
    return LMRT_OK;
}

/* ---- rmsnorm --------------------------------------------------------------- */

/* The sum of squares is accumulated in double: n is small (one embedding), the
 * cost is nothing next to the matmuls, and the result is then correctly rounded
 * for practical purposes, which makes this the reference for SIMD versions. */
static void rmsnorm_scalar(const float *x, const float *weight, int32_t n, float eps, float *y)
{
    double ss = 0.0;
    for (int32_t i = 0; i < n; i++)
        ss += (double)x[i] * x[i];
    float scale = (float)(1.0 / sqrt(ss / n + (double)eps));
    for (int32_t i = 0; i < n; i++)
        y[i] = x[i] * scale * weight[i];
}

typedef struct rmsnorm_job {
    const cpu_kernels *k;
    const float *x, *weight;
    int32_t n;
    float eps;
    float *y;
} rmsnorm_job;

static void rmsnorm_range(void *arg, int64_t begin, int64_t end, int thread)
{
    (void)thread;
    const rmsnorm_job *j = arg;
    for (int64_t t = begin; t < end; t++)
        j->k->rmsnorm(j->x + t * j->n, j->weight, j->n, j->eps, j->y + t * j->n);
}

lmrt_status cpu_rmsnorm(backend_ctx *ctx, const float *x, const float *weight, int32_t n,
                        int32_t n_tok, float eps, float *y)
{
    if (!ctx || !x || !weight || !y)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cpu backend: rmsnorm: NULL %s",
                         !ctx ? "context" : !x ? "x" : !weight ? "weight" : "y");
    if (n <= 0 || n_tok < 0 || !(eps >= 0.0f) || isinf(eps))
        return lmrt_fail(LMRT_E_INVALID_ARG, "cpu backend: rmsnorm: bad n %d, n_tok %d or "
                         "eps %g", (int)n, (int)n_tok, (double)eps);
    rmsnorm_job job = {ctx->k, x, weight, n, eps, y};
    pthread_mutex_lock(&ctx->op_lock);
    threadpool_run(ctx->pool, n_tok, rmsnorm_range, &job);
    pthread_mutex_unlock(&ctx->op_lock);
    return LMRT_OK;
}

/* ---- rope ------------------------------------------------------------------ */

/* Angles, cosines, sines and the rotation itself in double, rounded once at the
 * end: the result is the formula's value to within an ulp, the same for every
 * head, token order and thread count. One token per call; the n_rot/2 angles
 * are computed once and applied to every head. */
static void rope_scalar(float *x, int32_t n_head, int32_t head_dim, int32_t n_rot, int32_t pos,
                        float freq_base, const float *freq_factors)
{
    for (int32_t i = 0; i < n_rot / 2; i++) {
        double theta = (double)pos * pow((double)freq_base, -2.0 * i / n_rot);
        if (freq_factors)
            theta /= (double)freq_factors[i];
        double c = cos(theta), s = sin(theta);
        for (int32_t h = 0; h < n_head; h++) {
            float *p = x + (size_t)h * head_dim + 2 * i;
            double x0 = p[0], x1 = p[1];
            p[0] = (float)(x0 * c - x1 * s);
            p[1] = (float)(x0 * s + x1 * c);
        }
    }
}

typedef struct rope_job {
    const cpu_kernels *k;
    float *x;
    int32_t n_head, head_dim, n_rot;
    const int32_t *pos;
    float freq_base;
    const float *freq_factors;
} rope_job;

static void rope_range(void *arg, int64_t begin, int64_t end, int thread)
{
    (void)thread;
    const rope_job *j = arg;
    for (int64_t t = begin; t < end; t++)
        j->k->rope(j->x + t * j->n_head * j->head_dim, j->n_head, j->head_dim, j->n_rot,
                   j->pos[t], j->freq_base, j->freq_factors);
}

lmrt_status cpu_rope(backend_ctx *ctx, float *x, int32_t n_tok, int32_t n_head,
                     int32_t head_dim, int32_t n_rot, const int32_t *pos, float freq_base,
                     const float *freq_factors)
{
    if (!ctx || (n_tok > 0 && (!x || !pos)))
        return lmrt_fail(LMRT_E_INVALID_ARG, "cpu backend: rope: NULL %s",
                         !ctx ? "context" : !x ? "x" : "pos");
    if (n_tok < 0 || n_head <= 0 || head_dim <= 0 || n_rot < 0 || n_rot > head_dim ||
        n_rot % 2 != 0)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cpu backend: rope: bad shape n_tok %d, n_head "
                         "%d, head_dim %d, n_rot %d (even, at most head_dim)", (int)n_tok,
                         (int)n_head, (int)head_dim, (int)n_rot);
    if ((int64_t)n_head * head_dim > INT32_MAX)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cpu backend: rope: %d heads of %d too large",
                         (int)n_head, (int)head_dim);
    if (!(freq_base > 0.0f) || isinf(freq_base))
        return lmrt_fail(LMRT_E_INVALID_ARG, "cpu backend: rope: freq_base %g is not a "
                         "positive number", (double)freq_base);
    rope_job job = {ctx->k, x, n_head, head_dim, n_rot, pos, freq_base, freq_factors};
    pthread_mutex_lock(&ctx->op_lock);
    threadpool_run(ctx->pool, n_tok, rope_range, &job);
    pthread_mutex_unlock(&ctx->op_lock);
    return LMRT_OK;
}

/* ---- elementwise ------------------------------------------------------------ */

/* silu(g) = g / (1 + e^-g), in float; e^-g overflowing to inf gives -0, as it should. */
static void silu_mul_scalar(float *gate, const float *up, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        gate[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

static void add_scalar(float *y, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] += x[i];
}

/* Elements per task: small vectors run on the caller without waking the pool. */
#define ELEMWISE_CHUNK 16384

typedef struct elemwise_job {
    const cpu_kernels *k;
    float *dst;
    const float *src;
    int64_t n;
    bool silu;
} elemwise_job;

static void elemwise_range(void *arg, int64_t begin, int64_t end, int thread)
{
    (void)thread;
    const elemwise_job *j = arg;
    int64_t lo = begin * ELEMWISE_CHUNK;
    int64_t hi = end * ELEMWISE_CHUNK < j->n ? end * ELEMWISE_CHUNK : j->n;
    if (j->silu)
        j->k->silu_mul(j->dst + lo, j->src + lo, hi - lo);
    else
        j->k->add(j->dst + lo, j->src + lo, hi - lo);
}

static lmrt_status elemwise(backend_ctx *ctx, float *dst, const float *src, int64_t n, bool silu)
{
    const char *op = silu ? "silu_mul" : "add";
    if (!ctx || (n > 0 && (!dst || !src)))
        return lmrt_fail(LMRT_E_INVALID_ARG, "cpu backend: %s: NULL %s", op,
                         !ctx ? "context" : "vector");
    if (n < 0)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cpu backend: %s: negative length %lld", op,
                         (long long)n);
    elemwise_job job = {ctx->k, dst, src, n, silu};
    pthread_mutex_lock(&ctx->op_lock);
    threadpool_run(ctx->pool, n / ELEMWISE_CHUNK + (n % ELEMWISE_CHUNK != 0), elemwise_range, &job);
    pthread_mutex_unlock(&ctx->op_lock);
    return LMRT_OK;
}

lmrt_status cpu_silu_mul(backend_ctx *ctx, float *gate, const float *up, int64_t n)
{
    return elemwise(ctx, gate, up, n, true);
}

lmrt_status cpu_add(backend_ctx *ctx, float *y, const float *x, int64_t n)
{
    return elemwise(ctx, y, x, n, false);
}
