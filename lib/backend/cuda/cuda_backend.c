/* cuda_backend.c - the CUDA backend's vtable: argument checks (the same contracts and
 * status codes as the CPU backend), planning (cuda_plan.c) and the calls into the .cu
 * launchers, one op at a time under the context's lock. Weights are uploaded once, in
 * the device layout of cuda_quant.h; activations, the KV cache and scratch live on the
 * device; only what download asks for comes back. Plain C: no CUDA header here. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/cuda_quant.h"
#include "backend/op_shapes.h"
#include "base/alloc.h"
#include "base/error.h"
#include "tensor/types.h"

/* ---- devices and context ------------------------------------------------------------ */

static int32_t cu_device_count(void)
{
    return cuda_rt_device_count();
}

static lmrt_status cu_device_info(int32_t index, lmrt_device_info *out)
{
    if (!out)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cuda backend: device_info: out is NULL");
    return cuda_rt_device_info(index, out);
}

static lmrt_status cu_ctx_create(int32_t device, int32_t n_threads, backend_ctx **out)
{
    (void)n_threads;   /* the host threads of the CPU backend; the device needs none */
    if (!out)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cuda backend: ctx_create: out is NULL");
    const int32_t n = cuda_rt_device_count();
    if (device < 0 || device >= n) {
        if (n == 0)
            return lmrt_fail(LMRT_E_NOT_FOUND, "cuda backend: no device %d: this machine has no "
                             "CUDA device (or no NVIDIA driver)", (int)device);
        return lmrt_fail(LMRT_E_NOT_FOUND, "cuda backend: no device %d (it has %d)",
                         (int)device, (int)n);
    }
    backend_ctx *ctx = lmrt_calloc(1, sizeof *ctx);
    if (!ctx)
        return lmrt_fail(LMRT_E_NOMEM, "cuda backend: out of memory for a context");
    ctx->device = device;
    lmrt_status st = cuda_rt_ctx_open(ctx);
    if (!st)
        st = cuda_attention_setup(ctx);
    if (st) {
        cuda_rt_ctx_close(ctx);
        lmrt_mem_free(ctx);
        return st;
    }
    pthread_mutex_init(&ctx->lock, NULL);
    *out = ctx;
    return LMRT_OK;
}

static void cu_ctx_free(backend_ctx *ctx)
{
    if (!ctx)
        return;
    if (!cuda_rt_use(ctx, "ctx_free")) {
        cuda_rt_scratch_free(ctx, &ctx->x_buf);
        cuda_rt_scratch_free(ctx, &ctx->att_buf);
        cuda_rt_scratch_free(ctx, &ctx->idx_buf);
    }
    cuda_rt_ctx_close(ctx);
    pthread_mutex_destroy(&ctx->lock);
    lmrt_mem_free(ctx);
}

/* Takes the lock and makes the device current; every op's device work runs between
 * begin and end. */
static lmrt_status begin(backend_ctx *ctx, const char *op)
{
    pthread_mutex_lock(&ctx->lock);
    lmrt_status st = cuda_rt_use(ctx, op);
    if (st)
        pthread_mutex_unlock(&ctx->lock);
    return st;
}

static lmrt_status end(backend_ctx *ctx, lmrt_status st)
{
    pthread_mutex_unlock(&ctx->lock);
    return st;
}

/* begin() for the ops that write device memory other than a matmul's output: the
 * converted-input cache no longer describes a known x. */
static lmrt_status begin_write(backend_ctx *ctx, const char *op)
{
    lmrt_status st = begin(ctx, op);
    if (!st)
        cuda_x_cache_clear(&ctx->xcache);
    return st;
}

/* ---- memory ---------------------------------------------------------------------------- */

static lmrt_status cu_alloc(backend_ctx *ctx, size_t bytes, void **out)
{
    if (!ctx || !out)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cuda backend: alloc: NULL %s",
                         !ctx ? "context" : "out");
    char what[64];
    snprintf(what, sizeof what, "an allocation of %zu bytes", bytes);
    lmrt_status st = begin_write(ctx, "alloc");
    if (st)
        return st;
    return end(ctx, cuda_rt_alloc(ctx, bytes, true, what, out));
}

static void cu_free(backend_ctx *ctx, void *ptr)
{
    if (!ctx || !ptr || begin_write(ctx, "free"))
        return;
    cuda_rt_free(ctx, ptr);
    end(ctx, LMRT_OK);
}

static lmrt_status cu_upload(backend_ctx *ctx, void *dst, const void *host_src, size_t bytes)
{
    if (!ctx || (bytes && (!dst || !host_src)))
        return lmrt_fail(LMRT_E_INVALID_ARG, "cuda backend: upload: NULL %s",
                         !ctx ? "context" : dst ? "source" : "destination");
    lmrt_status st = begin(ctx, "upload");
    if (st)
        return st;
    cuda_x_cache_wrote(&ctx->xcache, dst, bytes);
    return end(ctx, cuda_rt_upload(ctx, dst, host_src, bytes, "upload"));
}

static lmrt_status cu_download(backend_ctx *ctx, void *host_dst, const void *src, size_t bytes)
{
    if (!ctx || (bytes && (!host_dst || !src)))
        return lmrt_fail(LMRT_E_INVALID_ARG, "cuda backend: download: NULL %s",
                         !ctx ? "context" : host_dst ? "source" : "destination");
    lmrt_status st = begin(ctx, "download");
    if (st)
        return st;
    return end(ctx, cuda_rt_download(ctx, host_dst, src, bytes));
}

/* ---- weights ----------------------------------------------------------------------------- */

static bool cu_supports_type(uint32_t type)
{
    return cuda_plan_type_supported(type);
}

/* Checks a view: supported type, whole blocks, row_bytes as `row_bytes_of` gives
 * (the file's blocks for bind_weight, the device layout for the ops), data present. */
static lmrt_status check_view(const tensor_view *w, bool device, lmrt_status status,
                              const char *op)
{
    if (!w)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cuda backend: %s: weight view is NULL", op);
    const char *name = w->name ? w->name : "(unnamed)";
    if (!cuda_plan_type_supported(w->type))
        return lmrt_fail(LMRT_E_UNSUPPORTED, "cuda backend: %s: tensor '%s' has type %s (%u), "
                         "which the CUDA backend cannot compute with", op, name,
                         tensor_type_name(w->type), (unsigned)w->type);
    const tensor_type_traits *tt = tensor_type_get(w->type);
    if (w->n_cols <= 0 || w->n_rows < 0 || w->n_cols % tt->block_elems != 0)
        return lmrt_fail(status, "cuda backend: %s: tensor '%s' has shape %lld x %lld, not "
                         "whole %s blocks of %u", op, name, (long long)w->n_rows,
                         (long long)w->n_cols, tt->name, (unsigned)tt->block_elems);
    uint64_t want = device ? cq_row_bytes(w->type, w->n_cols)
                           : (uint64_t)(w->n_cols / tt->block_elems) * tt->block_bytes;
    if (w->row_bytes != want)
        return lmrt_fail(status, "cuda backend: %s: tensor '%s': row_bytes %zu, but %lld %s "
                         "elements take %llu bytes%s", op, name, w->row_bytes,
                         (long long)w->n_cols, tt->name, (unsigned long long)want,
                         device ? " on the device (was it bound by this backend?)" : "");
    uint64_t total;
    if (__builtin_mul_overflow((uint64_t)w->n_rows, want, &total) || total > SIZE_MAX)
        return lmrt_fail(status, "cuda backend: %s: tensor '%s': %lld rows of %llu bytes "
                         "overflow", op, name, (long long)w->n_rows, (unsigned long long)want);
    if (!w->data && w->n_rows > 0)
        return lmrt_fail(status, "cuda backend: %s: tensor '%s' has no data", op, name);
    return LMRT_OK;
}

static lmrt_status cu_bind_weight(backend_ctx *ctx, const tensor_view *host, tensor_view *out)
{
    if (!ctx || !host || !out)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cuda backend: bind_weight: NULL %s",
                         !ctx ? "context" : !host ? "view" : "out");
    lmrt_status st = check_view(host, false, LMRT_E_FORMAT, "bind_weight");
    if (st)
        return st;
    const char *name = host->name ? host->name : "(unnamed)";
    uint64_t bytes;
    if (!cuda_weight_bytes(host->type, host->n_cols, host->n_rows, &bytes) || bytes > SIZE_MAX)
        return lmrt_fail(LMRT_E_FORMAT, "cuda backend: tensor '%s' is too large", name);
    const size_t row = (size_t)cq_row_bytes(host->type, host->n_cols);
    char what[160];
    snprintf(what, sizeof what, "tensor '%s' (%s, %lld x %lld)", name,
             tensor_type_name(host->type), (long long)host->n_rows, (long long)host->n_cols);
    void *dev = NULL;
    if ((st = begin(ctx, "bind_weight")))
        return st;
    st = cuda_rt_alloc(ctx, (size_t)bytes, false, what, &dev);
    if (!st && (st = cuda_rt_upload_weight(ctx, host, dev, row))) {
        cuda_rt_free(ctx, dev);
        st = lmrt_fail_prefix(st, "binding %s", what);
    }
    end(ctx, st);
    if (st)
        return st;
    *out = *host;
    out->data = dev;
    out->row_bytes = row;
    return LMRT_OK;
}

static void cu_unbind_weight(backend_ctx *ctx, tensor_view *bound)
{
    /* bound->data stays as it is: the decoder compares a tied output's pointer with
     * token_embd's after unbinding it. */
    if (!ctx || !bound || !bound->data || begin_write(ctx, "unbind_weight"))
        return;
    cuda_rt_free(ctx, (void *)bound->data);
    end(ctx, LMRT_OK);
}

/* ---- get_rows, matmul ------------------------------------------------------------------ */

/* ids or positions for a kernel: in its parameters when few, else copied into idx_buf.
 * Lock held. */
static lmrt_status stage_ids(backend_ctx *ctx, const int32_t *ids, int32_t n, cuda_ids *inl,
                             const int32_t **dev, const char *op)
{
    *dev = NULL;
    if (n <= CUDA_INLINE_IDS) {
        memset(inl, 0, sizeof *inl);
        if (n > 0)
            memcpy(inl->v, ids, (size_t)n * sizeof *ids);
        return LMRT_OK;
    }
    lmrt_status st = cuda_rt_scratch(ctx, &ctx->idx_buf, (size_t)n * sizeof *ids, op);
    if (!st)
        st = cuda_rt_upload(ctx, ctx->idx_buf.p, ids, (size_t)n * sizeof *ids, op);
    *dev = ctx->idx_buf.p;
    return st;
}

static lmrt_status cu_get_rows(backend_ctx *ctx, const tensor_view *table, const int32_t *ids,
                               int32_t n, float *out)
{
    if (!ctx)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cuda backend: get_rows: context is NULL");
    lmrt_status st = check_view(table, true, LMRT_E_INVALID_ARG, "get_rows");
    if (st)
        return st;
    if (n < 0 || (n > 0 && (!ids || !out)))
        return lmrt_fail(LMRT_E_INVALID_ARG, "cuda backend: get_rows: %s",
                         n < 0 ? "negative row count" : "ids or out is NULL");
    for (int32_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= table->n_rows)
            return lmrt_fail(LMRT_E_INVALID_ARG, "cuda backend: get_rows: id %d (at %d) is "
                             "outside tensor '%s' of %lld rows", (int)ids[i], (int)i,
                             table->name ? table->name : "(unnamed)", (long long)table->n_rows);
    if (n == 0)
        return LMRT_OK;
    if ((st = begin_write(ctx, "get_rows")))
        return st;
    cuda_ids inl;
    const int32_t *dev;
    st = stage_ids(ctx, ids, n, &inl, &dev, "get_rows");
    if (!st)
        st = cuda_launch_get_rows(ctx, table, &inl, dev, n, out);
    return end(ctx, st);
}

/* Converts x for the plan into x_buf unless it already holds that conversion. */
static lmrt_status prepare_x(backend_ctx *ctx, const cuda_mm_plan *plan, const float *x,
                             int32_t n_tok, int64_t n_cols)
{
    const int32_t kind = plan->kind == CUDA_MM_MATVEC_Q ? CUDA_X_Q8 : CUDA_X_F16;
    if (cuda_x_cache_hit(&ctx->xcache, x, n_tok, n_cols, kind))
        return LMRT_OK;
    cuda_x_cache_clear(&ctx->xcache);
    lmrt_status st = cuda_rt_scratch(ctx, &ctx->x_buf, plan->x_bytes, "matmul");
    if (st)
        return st;
    if (kind == CUDA_X_Q8)
        st = cuda_launch_quantize_x(ctx, x, n_tok, n_cols, ctx->x_buf.p);
    else
        st = cuda_launch_convert_x(ctx, x, n_tok, n_cols, plan->x_stride, ctx->x_buf.p);
    if (!st)
        cuda_x_cache_set(&ctx->xcache, x, n_tok, n_cols, kind);
    return st;
}

static lmrt_status cu_matmul(backend_ctx *ctx, const tensor_view *w, const float *x,
                             int32_t n_tok, float *y)
{
    if (!ctx)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cuda backend: matmul: context is NULL");
    lmrt_status st = check_view(w, true, LMRT_E_INVALID_ARG, "matmul");
    if (st)
        return st;
    if (n_tok < 0)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cuda backend: matmul: negative n_tok %d",
                         (int)n_tok);
    if (n_tok == 0 || w->n_rows == 0)
        return LMRT_OK;
    if (!x || !y)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cuda backend: matmul: NULL %s", !x ? "x" : "y");
    if ((st = begin(ctx, "matmul")))
        return st;
    cuda_mm_plan plan;
    if (!(st = cuda_plan_matmul(w->type, w->n_rows, w->n_cols, n_tok, (uintptr_t)x, ctx->n_sm,
                                &plan))) {
        switch (plan.kind) {
        case CUDA_MM_MATVEC_Q:
            if (!(st = prepare_x(ctx, &plan, x, n_tok, w->n_cols)))
                st = cuda_launch_matvec_q(ctx, w, ctx->x_buf.p, n_tok, &plan, y);
            break;
        case CUDA_MM_MATVEC_F:
            st = cuda_launch_matvec_f(ctx, w, x, n_tok, &plan, y);
            break;
        case CUDA_MM_GEMM_TC:
            if (!(st = prepare_x(ctx, &plan, x, n_tok, w->n_cols)))
                st = cuda_launch_gemm_tc(ctx, w, ctx->x_buf.p, n_tok, &plan, y);
            break;
        case CUDA_MM_GEMM_F32:
            st = cuda_launch_gemm_f32(ctx, w, x, n_tok, y);
            break;
        }
    }
    if (st)
        cuda_x_cache_clear(&ctx->xcache);
    else
        cuda_x_cache_wrote(&ctx->xcache, y, (size_t)n_tok * (size_t)w->n_rows * sizeof(float));
    return end(ctx, st);
}

/* ---- rmsnorm, rope, silu_mul, add ------------------------------------------------------- */

static lmrt_status cu_rmsnorm(backend_ctx *ctx, const float *x, const float *weight, int32_t n,
                              int32_t n_tok, float eps, float *y)
{
    if (!ctx || !x || !weight || !y)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cuda backend: rmsnorm: NULL %s",
                         !ctx ? "context" : !x ? "x" : !weight ? "weight" : "y");
    if (n <= 0 || n_tok < 0 || !(eps >= 0.0f) || isinf(eps))
        return lmrt_fail(LMRT_E_INVALID_ARG, "cuda backend: rmsnorm: bad n %d, n_tok %d or "
                         "eps %g", (int)n, (int)n_tok, (double)eps);
    if (n_tok == 0)
        return LMRT_OK;
    lmrt_status st = begin_write(ctx, "rmsnorm");
    return st ? st : end(ctx, cuda_launch_rmsnorm(ctx, x, weight, n, n_tok, eps, y));
}

static lmrt_status cu_rope(backend_ctx *ctx, float *x, int32_t n_tok, int32_t n_head,
                           int32_t head_dim, int32_t n_rot, const int32_t *pos, float freq_base,
                           const float *freq_factors)
{
    if (!ctx || (n_tok > 0 && (!x || !pos)))
        return lmrt_fail(LMRT_E_INVALID_ARG, "cuda backend: rope: NULL %s",
                         !ctx ? "context" : !x ? "x" : "pos");
    if (n_tok < 0 || n_head <= 0 || head_dim <= 0 || n_rot < 0 || n_rot > head_dim ||
        n_rot % 2 != 0)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cuda backend: rope: bad shape n_tok %d, n_head "
                         "%d, head_dim %d, n_rot %d (even, at most head_dim)", (int)n_tok,
                         (int)n_head, (int)head_dim, (int)n_rot);
    if ((int64_t)n_head * head_dim > INT32_MAX)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cuda backend: rope: %d heads of %d too large",
                         (int)n_head, (int)head_dim);
    if (!(freq_base > 0.0f) || isinf(freq_base))
        return lmrt_fail(LMRT_E_INVALID_ARG, "cuda backend: rope: freq_base %g is not a "
                         "positive number", (double)freq_base);
    if (n_tok == 0 || n_rot == 0)
        return LMRT_OK;
    lmrt_status st = begin_write(ctx, "rope");
    if (st)
        return st;
    cuda_ids inl;
    const int32_t *dev = NULL;
    /* The decoder's positions are consecutive: the first one is all the kernel needs. */
    const bool run = n_tok > CUDA_INLINE_IDS && cuda_plan_ids_consecutive(pos, n_tok);
    if (run) {
        memset(&inl, 0, sizeof inl);
        inl.v[0] = pos[0];
    } else {
        st = stage_ids(ctx, pos, n_tok, &inl, &dev, "rope");
    }
    if (!st)
        st = cuda_launch_rope(ctx, x, n_tok, n_head, head_dim, n_rot, &inl, dev, run, freq_base,
                              freq_factors);
    return end(ctx, st);
}

static lmrt_status elemwise_check(backend_ctx *ctx, const float *a, const float *b, int64_t n,
                                  const char *op)
{
    if (!ctx || (n > 0 && (!a || !b)))
        return lmrt_fail(LMRT_E_INVALID_ARG, "cuda backend: %s: NULL %s", op,
                         !ctx ? "context" : "vector");
    if (n < 0)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cuda backend: %s: negative length %lld", op,
                         (long long)n);
    return LMRT_OK;
}

static lmrt_status cu_silu_mul(backend_ctx *ctx, float *gate, const float *up, int64_t n)
{
    lmrt_status st = elemwise_check(ctx, gate, up, n, "silu_mul");
    if (st || n == 0 || (st = begin_write(ctx, "silu_mul")))
        return st;
    return end(ctx, cuda_launch_silu_mul(ctx, gate, up, n));
}

static lmrt_status cu_add(backend_ctx *ctx, float *y, const float *x, int64_t n)
{
    lmrt_status st = elemwise_check(ctx, y, x, n, "add");
    if (st || n == 0 || (st = begin_write(ctx, "add")))
        return st;
    return end(ctx, cuda_launch_add(ctx, y, x, n));
}

/* ---- attention ------------------------------------------------------------------------- */

static lmrt_status attention_check(backend_ctx *ctx, const attention_params *p, int32_t n_kv,
                                   bool causal, const char *op)
{
    if (!ctx || !p)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cuda backend: %s: NULL %s", op,
                         !ctx ? "context" : "params");
    if (p->n_tok < 0 || (causal ? p->n_past < 0 : n_kv <= 0) || p->head_dim <= 0 ||
        p->n_head <= 0 || p->n_head_kv <= 0)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cuda backend: %s: bad shape n_tok %d, n_past %d, "
                         "n_kv %d, n_head %d, n_head_kv %d, head_dim %d", op, (int)p->n_tok,
                         (int)p->n_past, (int)n_kv, (int)p->n_head, (int)p->n_head_kv,
                         (int)p->head_dim);
    if (p->n_head % p->n_head_kv != 0)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cuda backend: %s: n_head %d is not a multiple of "
                         "n_head_kv %d", op, (int)p->n_head, (int)p->n_head_kv);
    if ((int64_t)p->kv_stride < (int64_t)p->n_head_kv * p->head_dim)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cuda backend: %s: kv_stride %d is less than "
                         "n_head_kv * head_dim = %lld", op, (int)p->kv_stride,
                         (long long)p->n_head_kv * p->head_dim);
    if (causal && (int64_t)p->n_past + p->n_tok > INT32_MAX)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cuda backend: %s: n_past %d + n_tok %d "
                         "overflows", op, (int)p->n_past, (int)p->n_tok);
    if (!isfinite(p->scale))
        return lmrt_fail(LMRT_E_INVALID_ARG, "cuda backend: %s: scale %g is not finite", op,
                         (double)p->scale);
    return LMRT_OK;
}

static lmrt_status run_attention(backend_ctx *ctx, const attention_params *p, int32_t n_kv,
                                 bool causal, const float *q, const float *k, const float *v,
                                 float *out, const char *op)
{
    lmrt_status st = attention_check(ctx, p, n_kv, causal, op);
    if (st || p->n_tok == 0)
        return st;
    if (!q || !k || !v || !out)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cuda backend: %s: NULL %s", op,
                         !q ? "q" : !k ? "k" : !v ? "v" : "out");
    cuda_att_plan plan;
    if ((st = cuda_plan_attention(p, n_kv, causal, ctx->n_sm, ctx->smem_optin, &plan)) ||
        (st = begin_write(ctx, op)))
        return st;
    if (plan.partial_bytes)
        st = cuda_rt_scratch(ctx, &ctx->att_buf, plan.partial_bytes, op);
    if (!st)
        st = cuda_launch_attention(ctx, p, n_kv, causal, &plan, q, k, v, out, ctx->att_buf.p);
    return end(ctx, st);
}

static lmrt_status cu_attention(backend_ctx *ctx, const attention_params *p, const float *q,
                                const float *k, const float *v, float *out)
{
    return run_attention(ctx, p, 0, true, q, k, v, out, "attention");
}

static lmrt_status cu_attention_full(backend_ctx *ctx, const attention_params *p, int32_t n_kv,
                                     const float *q, const float *k, const float *v, float *out)
{
    return run_attention(ctx, p, n_kv, false, q, k, v, out, "attention_full");
}

/* ---- encoder ops -------------------------------------------------------------------------- */

static lmrt_status cu_layernorm(backend_ctx *ctx, const float *x, const float *weight,
                                const float *bias, int32_t n, int32_t n_tok, float eps, float *y)
{
    if (!ctx || !x || !weight || !y)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cuda backend: layernorm: NULL %s",
                         !ctx ? "context" : !x ? "x" : !weight ? "weight" : "y");
    if (n <= 0 || n_tok < 0 || !(eps >= 0.0f) || isinf(eps))
        return lmrt_fail(LMRT_E_INVALID_ARG, "cuda backend: layernorm: bad n %d, n_tok %d or "
                         "eps %g", (int)n, (int)n_tok, (double)eps);
    if (n_tok == 0)
        return LMRT_OK;
    lmrt_status st = begin_write(ctx, "layernorm");
    return st ? st : end(ctx, cuda_launch_layernorm(ctx, x, weight, bias, n, n_tok, eps, y));
}

static lmrt_status cu_add_bias(backend_ctx *ctx, float *y, const float *b, int32_t n,
                               int32_t n_tok)
{
    if (!ctx || (n_tok > 0 && (!y || !b)))
        return lmrt_fail(LMRT_E_INVALID_ARG, "cuda backend: add_bias: NULL %s",
                         !ctx ? "context" : !y ? "y" : "b");
    if (n <= 0 || n_tok < 0)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cuda backend: add_bias: bad n %d or n_tok %d",
                         (int)n, (int)n_tok);
    if (n_tok == 0)
        return LMRT_OK;
    lmrt_status st = begin_write(ctx, "add_bias");
    return st ? st : end(ctx, cuda_launch_add_bias(ctx, y, b, n, n_tok));
}

static lmrt_status cu_add_scaled(backend_ctx *ctx, float *y, const float *x, float scale,
                                 int64_t n)
{
    lmrt_status st = elemwise_check(ctx, y, x, n, "add_scaled");
    if (st)
        return st;
    if (!isfinite(scale))
        return lmrt_fail(LMRT_E_INVALID_ARG, "cuda backend: add_scaled: scale %g is not "
                         "finite", (double)scale);
    if (n == 0 || (st = begin_write(ctx, "add_scaled")))
        return st;
    return end(ctx, cuda_launch_add_scaled(ctx, y, x, scale, n));
}

static lmrt_status cu_gelu(backend_ctx *ctx, float *x, int64_t n, int32_t kind)
{
    if (!ctx || (n > 0 && !x))
        return lmrt_fail(LMRT_E_INVALID_ARG, "cuda backend: gelu: NULL %s",
                         !ctx ? "context" : "x");
    if (n < 0)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cuda backend: gelu: negative length %lld",
                         (long long)n);
    if (kind != BACKEND_GELU_ERF && kind != BACKEND_GELU_TANH && kind != BACKEND_GELU_QUICK)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cuda backend: gelu: unknown kind %d (erf 0, "
                         "tanh 1, quick 2)", (int)kind);
    if (n == 0)
        return LMRT_OK;
    lmrt_status st = begin_write(ctx, "gelu");
    return st ? st : end(ctx, cuda_launch_gelu(ctx, x, n, kind));
}

static lmrt_status cu_im2col(backend_ctx *ctx, const float *x, int32_t c_in, int32_t h,
                             int32_t w, int32_t kh, int32_t kw, int32_t stride_h,
                             int32_t stride_w, int32_t pad_h, int32_t pad_w, float *out)
{
    if (!ctx || !x || !out)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cuda backend: im2col: NULL %s",
                         !ctx ? "context" : !x ? "x" : "out");
    int64_t h_out, w_out, row;
    lmrt_status st = backend_im2col_shape("cuda", c_in, h, w, kh, kw, stride_h, stride_w,
                                          pad_h, pad_w, &h_out, &w_out, &row);
    if (st)
        return st;
    st = begin_write(ctx, "im2col");
    return st ? st : end(ctx, cuda_launch_im2col(ctx, x, c_in, h, w, kh, kw, stride_h, stride_w,
                                                 pad_h, pad_w, h_out, w_out, out));
}

const backend_vtable cuda_backend = {
    .size = sizeof(backend_vtable),
    .name = "cuda",
    .id = LMRT_BACKEND_CUDA,
    .device_count = cu_device_count,
    .device_info = cu_device_info,
    .ctx_create = cu_ctx_create,
    .ctx_free = cu_ctx_free,
    .alloc = cu_alloc,
    .free = cu_free,
    .upload = cu_upload,
    .download = cu_download,
    .bind_weight = cu_bind_weight,
    .unbind_weight = cu_unbind_weight,
    .supports_type = cu_supports_type,
    .get_rows = cu_get_rows,
    .matmul = cu_matmul,
    .rmsnorm = cu_rmsnorm,
    .rope = cu_rope,
    .attention = cu_attention,
    .silu_mul = cu_silu_mul,
    .add = cu_add,
    .layernorm = cu_layernorm,
    .add_bias = cu_add_bias,
    .add_scaled = cu_add_scaled,
    .gelu = cu_gelu,
    .attention_full = cu_attention_full,
    .im2col = cu_im2col,
};
