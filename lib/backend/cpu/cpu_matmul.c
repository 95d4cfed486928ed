/* cpu_matmul.c - y = x W^T on the CPU, the hot spot of every forward pass.
 * The op splits the weight's output rows over the thread pool; the scalar
 * kernel dequantizes each weight row once (straight from the mapping, no copy of
 * the tensor) and dots it with every token. The SIMD kernels (cpu_matmul_*_avx2.c,
 * cpu_matmul_avx512.c, cpu_amx.c; numerics in cpu_simd.h) replace the dot with
 * int8 dots on x quantized once per op, and are tested against this one. Q8_0, Q4_0,
 * Q4_K and Q6_K weights that bind_weight repacked (cpu_repack.c) go to the table's
 * matmul_packed kernel instead, split by 16-row panels. */
#include <stdalign.h>
#include <stdint.h>
#include <string.h>

#include "backend/cpu/cpu_ops.h"
#include "base/alloc.h"
#include "base/error.h"
#include "tensor/quant.h"

/* For each row: dequantize (row_bytes from memory, n_cols floats to L1) then
 * n_tok dots of n_cols (2 flops per element, vectorized by the compiler across
 * dot_f32's 8 lanes with SSE2 only). Each y[t][r] is dot_f32(row r, x[t]): the
 * same bits as vec_dot_row, whatever the range or thread.
 * Bound: at n_tok = 1 by the dequantization (F32: by memory bandwidth); at
 * larger n_tok by the dot. Measured on 2048 x 2048, one thread of a 2.1 GHz Xeon:
 *   F32  n_tok 1: 1.1 ms, 15 GB/s of weights    n_tok 64: 50 ms, 11 GFLOP/s
 *   Q8_0 n_tok 1: 1.9 ms, 2.4 GB/s (4.5 GFLOP/s) n_tok 64: 35 ms, 15 GFLOP/s
 * Tiling rows x tokens would keep more in cache; the SIMD kernels replace this. */
void cpu_matmul_rows_scalar(const tensor_view *w, const matmul_input *in, float *y, int64_t r0,
                            int64_t r1, float *scratch)
{
    const int64_t n_cols = w->n_cols, n_rows = w->n_rows;
    const float *x = in->x;
    const int32_t n_tok = in->n_tok;
    /* F32 rows are used in place when the mapping is float-aligned (GGUF aligns
     * tensor data to 32 bytes); otherwise they are copied like any other type. */
    const bool in_place = w->type == GGML_TYPE_F32 && (uintptr_t)w->data % alignof(float) == 0;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)w->data + (size_t)r * w->row_bytes;
        const float *wr = scratch;
        if (in_place)
            wr = (const float *)(const void *)row;
        else
            (void)dequantize_row(w->type, row, scratch, n_cols);  /* checked by the op */
        for (int32_t t = 0; t < n_tok; t++)
            y[(size_t)t * (size_t)n_rows + (size_t)r] = dot_f32(wr, x + (size_t)t * (size_t)n_cols,
                                                               n_cols);
    }
}

typedef struct matmul_job {
    backend_ctx *ctx;
    matmul_rows_fn rows;
    void (*quantize)(const float *x, void *out, int64_t n);
    const tensor_view *w;
    matmul_input in;
    float *y;
    /* Weights that bind_weight repacked (cpu_repack.c): the tasks are the panels of
     * n_packed weights of one input laid end to end, weight i's from first_panel[i]. */
    matmul_packed_fn rows_packed;
    int32_t n_packed;
    const cpu_packed *packed[BACKEND_MATMUL_N_MAX];
    float *packed_y[BACKEND_MATMUL_N_MAX];
    int64_t first_panel[BACKEND_MATMUL_N_MAX + 1];
    size_t max_panel_bytes;
} matmul_job;

static void matmul_range(void *arg, int64_t begin, int64_t end, int thread)
{
    const matmul_job *j = arg;
    j->rows(j->w, &j->in, j->y, begin, end, cpu_scratch(j->ctx, thread));
}

/* Panels [begin, end) of the weights end to end: each weight's part in one call, which
 * prefetches up to run_end (the end of this thread's run) within that weight. */
static void matmul_panels(void *arg, int64_t begin, int64_t end, int64_t run_end, int thread)
{
    const matmul_job *j = arg;
    float *scratch = cpu_scratch(j->ctx, thread);
    uint8_t *tables = &j->ctx->tables_type[thread];
    for (int32_t i = 0; i < j->n_packed && begin < end; i++) {
        const int64_t lo = j->first_panel[i], hi = j->first_panel[i + 1];
        if (begin >= hi)
            continue;
        const int64_t e = end < hi ? end : hi, re = run_end < hi ? run_end : hi;
        matmul_input in = j->in;
        in.tables_ready = *tables == j->packed[i]->type;
        *tables = (uint8_t)j->packed[i]->type;
        j->rows_packed(j->packed[i], &in, j->packed_y[i], begin - lo, e - lo, re - lo,
                       scratch);
        begin = e;
    }
}

/* Generation's pieces of a balanced run (threadpool_run_balanced): 256 KiB of weights,
 * ~20 us of streaming for one thread, so that a thread the host stalls holds the
 * other up by at most that. A thread builds the kernel's per-token tables (x's scales
 * and bias terms) at its first piece of a weight type and reuses them for the rest of
 * the run (ctx->tables_type): built per piece, they took 1% of a 1B token in Q4_0.
 * Prompt batches take whole ranges as pieces (a thread may still take a range its
 * owner has not started): their per-call setup is a copy of every token. */
#define BALANCED_PIECE_BYTES ((size_t)256 << 10)
#define BALANCED_MAX_TOKENS 8

/* Quantizes token rows [begin, end) of x to the kernel's vec_type. */
static void quantize_range(void *arg, int64_t begin, int64_t end, int thread)
{
    (void)thread;
    const matmul_job *j = arg;
    for (int64_t t = begin; t < end; t++)
        j->quantize(j->in.x + (size_t)t * (size_t)j->in.n_cols,
                    (uint8_t *)j->in.xq + (size_t)t * j->in.xq_row_bytes, j->in.n_cols);
}

/* Makes room for n_tok quantized rows in ctx->xq; op_lock held. */
static lmrt_status reserve_xq(backend_ctx *ctx, size_t bytes)
{
    if (bytes <= ctx->xq_bytes)
        return LMRT_OK;
    void *p = lmrt_malloc(bytes);
    if (!p)
        return lmrt_fail(LMRT_E_NOMEM, "cpu backend: matmul: out of memory for %zu bytes of "
                         "quantized activations", bytes);
    lmrt_mem_free(ctx->xq);
    ctx->xq = p;
    ctx->xq_bytes = bytes;
    return LMRT_OK;
}

/* Checks the arguments of one product y = x w^T and fills in its job: the kernel, and
 * how x is quantized for it. */
static lmrt_status matmul_setup(backend_ctx *ctx, const tensor_view *w, const float *x,
                                int32_t n_tok, float *y, const char *op, matmul_job *job)
{
    lmrt_status st = cpu_check_view(w, LMRT_E_INVALID_ARG, op);
    if (st)
        return st;
    if (n_tok < 0)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cpu backend: %s: negative n_tok %d", op,
                         (int)n_tok);
    if (n_tok > 0 && (!x || !y))
        return lmrt_fail(LMRT_E_INVALID_ARG, "cpu backend: %s: NULL %s (tensor '%s')", op,
                         !x ? "x" : "y", w->name ? w->name : "(unnamed)");
    const matmul_kernel *k = &ctx->k->matmul[w->type];
    if (!k->rows)
        return lmrt_fail(LMRT_E_UNSUPPORTED, "cpu backend: %s: no %s kernel for %s", op,
                         ctx->k->name, tensor_type_name(w->type));
    *job = (matmul_job){
        .ctx = ctx, .rows = k->rows, .w = w, .y = y,
        .in = {.x = x, .n_tok = n_tok, .n_cols = w->n_cols, .vec_type = k->vec_type},
    };
    if (k->vec_type != GGML_TYPE_F32) {
        const tensor_type_traits *vt = tensor_type_get(k->vec_type);
        if (!vt || w->n_cols % vt->block_elems)
            return lmrt_fail(LMRT_E_INTERNAL, "cpu backend: %s: '%s' rows of %lld do not "
                             "split into %s blocks", op, w->name ? w->name : "(unnamed)",
                             (long long)w->n_cols, vt ? vt->name : "?");
        job->in.xq_row_bytes = (size_t)(w->n_cols / vt->block_elems) * vt->block_bytes;
        job->quantize = ctx->k->quantize_row[k->vec_type] ? ctx->k->quantize_row[k->vec_type]
                        : k->vec_type == GGML_TYPE_Q8_0 ? quantize_row_q8_0
                                                        : quantize_row_q8_K;
    }
    return LMRT_OK;
}

static int64_t matmul_scratch_floats(const backend_ctx *ctx, const tensor_view *w,
                                     int32_t n_tok)
{
    int64_t (*floats)(const tensor_view *, int32_t) = ctx->k->matmul_scratch[w->type];
    return floats ? floats(w, n_tok) : w->n_cols;
}

/* Runs a set-up job: x quantized once, then the panels of job->packed (when
 * n_packed > 0) or the rows of job->w split over the threads. op_lock held. */
static lmrt_status matmul_run(backend_ctx *ctx, matmul_job *job, int64_t scratch_floats)
{
    lmrt_status st = cpu_scratch_reserve(ctx, scratch_floats, "matmul");
    if (!st && job->quantize)
        st = reserve_xq(ctx, job->in.xq_row_bytes * (size_t)job->in.n_tok);
    if (st)
        return st;
    if (job->quantize) {
        job->in.xq = ctx->xq;
        threadpool_run(ctx->pool, job->in.n_tok, quantize_range, job);
    }
    if (job->n_packed) {
        /* Each thread streams its own contiguous run of panels; in generation a
         * thread that finishes early takes pieces from the back of the other's run. */
        const int64_t n = job->first_panel[job->n_packed];
        const int64_t piece = (int64_t)(BALANCED_PIECE_BYTES / job->max_panel_bytes);
        /* (a piece under one panel is taken as one) */
        const int64_t grain = job->in.n_tok > BALANCED_MAX_TOKENS ? n : piece;
        memset(ctx->tables_type, GGML_TYPE_COUNT, (size_t)ctx->n_threads);
        threadpool_run_balanced(ctx->pool, n, grain, matmul_panels, job);
    } else {
        threadpool_run(ctx->pool, job->w->n_rows, matmul_range, job);
    }
    return LMRT_OK;
}

/* Adds w (the product into y) to job's packed weights when it has a packed copy for
 * the kernel of those already there, which reads x quantized the same way (Q8_0 with
 * Q4_0, and Q4_K with Q6_K, share both); op_lock held. */
static bool matmul_add_packed(backend_ctx *ctx, matmul_job *job, const tensor_view *w, float *y)
{
    const matmul_packed_fn fn = ctx->k->matmul_packed[w->type];
    const cpu_packed *pk = fn ? cpu_pack_find(ctx, w) : NULL;
    if (!pk || job->n_packed == BACKEND_MATMUL_N_MAX ||
        (job->n_packed && (fn != job->rows_packed ||
                           ctx->k->matmul[w->type].vec_type != job->in.vec_type)))
        return false;
    const int32_t i = job->n_packed++;
    job->rows_packed = fn;
    job->packed[i] = pk;
    job->packed_y[i] = y;
    job->first_panel[i + 1] = job->first_panel[i] + pk->n_panels;
    if (pk->panel_bytes > job->max_panel_bytes)
        job->max_panel_bytes = pk->panel_bytes;
    return true;
}

lmrt_status cpu_matmul(backend_ctx *ctx, const tensor_view *w, const float *x, int32_t n_tok,
                       float *y)
{
    if (!ctx)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cpu backend: matmul: context is NULL");
    matmul_job job;
    lmrt_status st = matmul_setup(ctx, w, x, n_tok, y, "matmul", &job);
    if (st || n_tok == 0 || w->n_rows == 0)
        return st;
    pthread_mutex_lock(&ctx->op_lock);
    (void)matmul_add_packed(ctx, &job, w, y);
    st = matmul_run(ctx, &job, matmul_scratch_floats(ctx, w, n_tok));
    pthread_mutex_unlock(&ctx->op_lock);
    return st;
}

/* Fused when every weight has a packed copy for the same kernel (a layer's q, k, v or
 * gate, up of one file type): one quantization of x and one balanced run over all
 * their panels - the small k and v alone would each pay a thread hand-off and a
 * prefetch ramp for ~0.3 MB. Otherwise the products run one after another. Either
 * way each y[i] gets the bits cpu_matmul gives. */
lmrt_status cpu_matmul_n(backend_ctx *ctx, const tensor_view *const *w, int32_t n_w,
                         const float *x, int32_t n_tok, float *const *y)
{
    if (!ctx)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cpu backend: matmul_n: context is NULL");
    if (!w || !y)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cpu backend: matmul_n: NULL %s list",
                         !w ? "weight" : "output");
    if (n_w < 1 || n_w > BACKEND_MATMUL_N_MAX)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cpu backend: matmul_n: %d weights; it takes "
                         "1 to %d", (int)n_w, BACKEND_MATMUL_N_MAX);
    matmul_job jobs[BACKEND_MATMUL_N_MAX];
    for (int32_t i = 0; i < n_w; i++) {
        lmrt_status st = matmul_setup(ctx, w[i], x, n_tok, y[i], "matmul_n", &jobs[i]);
        if (st)
            return st;
        if (w[i]->n_cols != w[0]->n_cols)   /* both checked by matmul_setup */
            return lmrt_fail(LMRT_E_INVALID_ARG, "cpu backend: matmul_n: '%s' has %lld "
                             "columns and '%s' %lld; one input needs equal ones",
                             w[i]->name ? w[i]->name : "(unnamed)", (long long)w[i]->n_cols,
                             w[0]->name ? w[0]->name : "(unnamed)", (long long)w[0]->n_cols);
    }
    if (n_tok == 0)
        return LMRT_OK;
    pthread_mutex_lock(&ctx->op_lock);
    matmul_job fused = jobs[0];
    bool all_packed = true;
    int64_t scratch = 0;
    for (int32_t i = 0; i < n_w && all_packed; i++) {
        all_packed = matmul_add_packed(ctx, &fused, w[i], y[i]);
        int64_t f = matmul_scratch_floats(ctx, w[i], n_tok);
        scratch = f > scratch ? f : scratch;
    }
    lmrt_status st = LMRT_OK;
    if (all_packed) {
        st = matmul_run(ctx, &fused, scratch);
    } else {
        for (int32_t i = 0; i < n_w && !st; i++) {
            if (w[i]->n_rows == 0)
                continue;
            (void)matmul_add_packed(ctx, &jobs[i], w[i], y[i]);
            st = matmul_run(ctx, &jobs[i], matmul_scratch_floats(ctx, w[i], n_tok));
        }
    }
    pthread_mutex_unlock(&ctx->op_lock);
    return st;
}
