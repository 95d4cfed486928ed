/* cpu_matmul.c - y = x W^T on the CPU, the hot spot of every forward pass.
 * The op splits the weight's output rows over the thread pool; the scalar
 * kernel dequantizes each weight row once (straight from the mapping, no copy of
 * the tensor) and dots it with every token. The SIMD kernels (cpu_matmul_*_avx2.c,
 * cpu_matmul_avx512.c, cpu_amx.c; numerics in cpu_simd.h) replace the dot with
 * int8 dots on x quantized once per op, and are tested against this one. Q8_0/Q4_0
 * weights that bind_weight repacked (cpu_repack.c) go to the table's matmul_packed
 * kernel instead, split by 16-row panels. */
#include <stdalign.h>
#include <stdint.h>

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
    const cpu_packed *packed;    /* w repacked (cpu_repack.c): tasks are its panels */
    matmul_packed_fn rows_packed;
    matmul_input in;
    float *y;
} matmul_job;

static void matmul_range(void *arg, int64_t begin, int64_t end, int thread)
{
    const matmul_job *j = arg;
    j->rows(j->w, &j->in, j->y, begin, end, cpu_scratch(j->ctx, thread));
}

static void matmul_panels(void *arg, int64_t begin, int64_t end, int64_t run_end, int thread)
{
    const matmul_job *j = arg;
    j->rows_packed(j->packed, &j->in, j->y, begin, end, run_end, cpu_scratch(j->ctx, thread));
}

/* Generation's pieces of a balanced run (threadpool_run_balanced): 256 KiB of weights,
 * ~20 us of streaming for one thread, so that a thread the host stalls holds the
 * other up by at most that; each piece repeats the per-call setup (n_tok x blocks,
 * well under 1% at this size). Prompt batches take whole ranges as pieces (a thread
 * may still take a range its owner has not started): their per-call setup is a copy
 * of every token. */
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

lmrt_status cpu_matmul(backend_ctx *ctx, const tensor_view *w, const float *x, int32_t n_tok,
                       float *y)
{
    if (!ctx)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cpu backend: matmul: context is NULL");
    lmrt_status st = cpu_check_view(w, LMRT_E_INVALID_ARG, "matmul");
    if (st)
        return st;
    if (n_tok < 0)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cpu backend: matmul: negative n_tok %d",
                         (int)n_tok);
    if (n_tok > 0 && (!x || !y))
        return lmrt_fail(LMRT_E_INVALID_ARG, "cpu backend: matmul: NULL %s (tensor '%s')",
                         !x ? "x" : "y", w->name ? w->name : "(unnamed)");
    if (n_tok == 0 || w->n_rows == 0)
        return LMRT_OK;
    const matmul_kernel *k = &ctx->k->matmul[w->type];
    if (!k->rows)
        return lmrt_fail(LMRT_E_UNSUPPORTED, "cpu backend: matmul: no %s kernel for %s",
                         ctx->k->name, tensor_type_name(w->type));
    matmul_job job = {
        .ctx = ctx, .rows = k->rows, .w = w, .y = y,
        .in = {.x = x, .n_tok = n_tok, .n_cols = w->n_cols, .vec_type = k->vec_type},
    };
    if (k->vec_type != GGML_TYPE_F32) {
        const tensor_type_traits *vt = tensor_type_get(k->vec_type);
        if (!vt || w->n_cols % vt->block_elems)
            return lmrt_fail(LMRT_E_INTERNAL, "cpu backend: matmul: '%s' rows of %lld do not "
                             "split into %s blocks", w->name ? w->name : "(unnamed)",
                             (long long)w->n_cols, vt ? vt->name : "?");
        job.in.xq_row_bytes = (size_t)(w->n_cols / vt->block_elems) * vt->block_bytes;
        job.quantize = ctx->k->quantize_row[k->vec_type] ? ctx->k->quantize_row[k->vec_type]
                       : k->vec_type == GGML_TYPE_Q8_0 ? quantize_row_q8_0
                                                       : quantize_row_q8_K;
    }
    pthread_mutex_lock(&ctx->op_lock);
    int64_t (*scratch_floats)(const tensor_view *, int32_t) = ctx->k->matmul_scratch[w->type];
    st = cpu_scratch_reserve(ctx, scratch_floats ? scratch_floats(w, n_tok) : w->n_cols, "matmul");
    if (!st && job.quantize)
        st = reserve_xq(ctx, job.in.xq_row_bytes * (size_t)n_tok);
    if (!st) {
        if (job.quantize) {
            job.in.xq = ctx->xq;
            threadpool_run(ctx->pool, n_tok, quantize_range, &job);
        }
        /* Repacked weights split by whole panels: each thread streams its own
         * contiguous run of them; in generation a thread that finishes early takes
         * pieces from the back of the other's run. */
        job.packed = ctx->k->matmul_packed[w->type] ? cpu_pack_find(ctx, w) : NULL;
        job.rows_packed = ctx->k->matmul_packed[w->type];
        if (job.packed) {
            const int64_t n = job.packed->n_panels, piece = (int64_t)(BALANCED_PIECE_BYTES /
                                                                      job.packed->panel_bytes);
            /* (a piece under one panel is taken as one) */
            const int64_t grain = n_tok > BALANCED_MAX_TOKENS ? n : piece;
            threadpool_run_balanced(ctx->pool, n, grain, matmul_panels, &job);
        } else {
            threadpool_run(ctx->pool, w->n_rows, matmul_range, &job);
        }
    }
    pthread_mutex_unlock(&ctx->op_lock);
    return st;
}
