/* backend.h - the backend vtable: device discovery, memory, and the ops the
 * models need. Every table starts with its size so that slots can be appended
 * without breaking an older backend; a NULL slot means "not supported".
 *
 * Memory model: a backend owns "device memory" (host memory for the CPU). The
 * model code allocates activations and caches through alloc/free, moves data
 * with upload/download, and passes device pointers to the ops. Weights are
 * tensor_views whose data the backend has bound (for the CPU: the mmap itself,
 * zero-copy). Every op is a pure function of its inputs, and splits its work
 * so that each output element is computed by exactly one thread in a fixed
 * order: results do not depend on the thread count. */
#ifndef LMRT_BACKEND_H
#define LMRT_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lmrt.h"

/* A 2-D weight as stored in the file: n_rows rows of n_cols elements, each row
 * row_bytes long in the blocks of `type` (GGML numbering, see tensor/types.h). */
typedef struct tensor_view {
    uint32_t type;
    int64_t n_cols;              /* ne[0]: elements per row (the contiguous dim) */
    int64_t n_rows;              /* ne[1] (times ne[2], ne[3] for higher ranks) */
    size_t row_bytes;
    const void *data;            /* backend memory: n_rows * row_bytes */
    const char *name;            /* for messages */
} tensor_view;

/* Per-context backend state (thread pool, scratch, device handle). */
typedef struct backend_ctx backend_ctx;

typedef struct attention_params {
    int32_t n_tok;               /* new positions (queries) */
    int32_t n_past;              /* positions already in the cache before them */
    int32_t n_head;
    int32_t n_head_kv;           /* n_head % n_head_kv == 0 (grouped-query) */
    int32_t head_dim;
    int32_t kv_stride;           /* floats between positions in the cache rows */
    float scale;                 /* 1/sqrt(head_dim) */
} attention_params;

typedef struct backend_vtable {
    size_t size;                 /* sizeof(backend_vtable) the backend was built with */
    const char *name;            /* "cpu", "cuda" */
    uint32_t id;                 /* LMRT_BACKEND_* bit */

    /* Devices this backend can use now; 0 when none (not an error). */
    int32_t (*device_count)(void);
    lmrt_status (*device_info)(int32_t index, lmrt_device_info *out);

    /* Context: one per lmrt_context; n_threads as resolved by the API. */
    lmrt_status (*ctx_create)(int32_t device, int32_t n_threads, backend_ctx **out);
    void (*ctx_free)(backend_ctx *ctx);

    /* Memory. alloc returns zeroed memory; free accepts NULL. */
    lmrt_status (*alloc)(backend_ctx *ctx, size_t bytes, void **out);
    void (*free)(backend_ctx *ctx, void *ptr);
    lmrt_status (*upload)(backend_ctx *ctx, void *dst, const void *host_src, size_t bytes);
    lmrt_status (*download)(backend_ctx *ctx, void *host_dst, const void *src, size_t bytes);
    /* Makes a weight usable by the ops. For the CPU this is the identity on the
     * mapped file (zero-copy); a GPU uploads it. `out` gets the bound view. */
    lmrt_status (*bind_weight)(backend_ctx *ctx, const tensor_view *host, tensor_view *out);
    void (*unbind_weight)(backend_ctx *ctx, tensor_view *bound);
    /* Whether the backend can compute with weights of this type. */
    bool (*supports_type)(uint32_t type);

    /* ---- ops; all shapes row-major, one row per token ---- */

    /* out[i][:] = row ids[i] of `table`, dequantized to float. out: [n][table.n_cols];
     * ids: host memory */
    lmrt_status (*get_rows)(backend_ctx *ctx, const tensor_view *table, const int32_t *ids,
                            int32_t n, float *out);
    /* y[t][r] = sum_c w[r][c] * x[t][c].  x: [n_tok][w.n_cols], y: [n_tok][w.n_rows] */
    lmrt_status (*matmul)(backend_ctx *ctx, const tensor_view *w, const float *x, int32_t n_tok,
                          float *y);
    /* y[t] = x[t] / sqrt(mean(x[t]^2) + eps) * weight.  x, y: [n_tok][n]; weight: [n] */
    lmrt_status (*rmsnorm)(backend_ctx *ctx, const float *x, const float *weight, int32_t n,
                           int32_t n_tok, float eps, float *y);
    /* Rotary embedding in place, GGUF "normal" (adjacent pairs) convention:
     * x: [n_tok][n_head][head_dim]; the first n_rot dims of each head rotate by
     * pos[t] * base^(-2i/n_rot) / freq_factors[i] (freq_factors NULL = 1).
     * pos: host memory; freq_factors: backend memory (a bound F32 weight). */
    lmrt_status (*rope)(backend_ctx *ctx, float *x, int32_t n_tok, int32_t n_head,
                        int32_t head_dim, int32_t n_rot, const int32_t *pos, float freq_base,
                        const float *freq_factors);
    /* Causal grouped-query attention of n_tok new queries over the cache, which
     * already holds their keys and values at positions n_past .. n_past+n_tok-1.
     *   q:   [n_tok][n_head][head_dim]
     *   k,v: [n_past + n_tok][kv_stride], head h_kv at offset h_kv * head_dim
     *   out: [n_tok][n_head][head_dim] */
    lmrt_status (*attention)(backend_ctx *ctx, const attention_params *p, const float *q,
                             const float *k, const float *v, float *out);
    /* gate[i] = silu(gate[i]) * up[i], i < n */
    lmrt_status (*silu_mul)(backend_ctx *ctx, float *gate, const float *up, int64_t n);
    /* y[i] += x[i], i < n */
    lmrt_status (*add)(backend_ctx *ctx, float *y, const float *x, int64_t n);

    /* ---- ops the image and audio encoders add ---- */

    /* y[t] = (x[t] - mean(x[t])) / sqrt(var(x[t]) + eps) * weight + bias, with the
     * biased (1/n) variance. x, y: [n_tok][n] (y may equal x); weight, bias: [n],
     * backend memory; bias NULL = no bias. */
    lmrt_status (*layernorm)(backend_ctx *ctx, const float *x, const float *weight,
                             const float *bias, int32_t n, int32_t n_tok, float eps, float *y);
    /* y[t][i] += b[i].  y: [n_tok][n]; b: [n], backend memory */
    lmrt_status (*add_bias)(backend_ctx *ctx, float *y, const float *b, int32_t n,
                            int32_t n_tok);
    /* y[i] += scale * x[i], i < n (gated residuals and gated embeddings) */
    lmrt_status (*add_scaled)(backend_ctx *ctx, float *y, const float *x, float scale,
                              int64_t n);
    /* x[i] = act(x[i]) in place, i < n; act is one of backend_gelu_kind. */
    lmrt_status (*gelu)(backend_ctx *ctx, float *x, int64_t n, int32_t kind);
    /* Non-causal multi-head attention (encoders, cross-attention): each of the n_tok
     * queries sees all n_kv keys; p->n_past is ignored.
     *   q:   [n_tok][n_head][head_dim]
     *   k,v: [n_kv][kv_stride], head h_kv at offset h_kv * head_dim
     *   out: [n_tok][n_head][head_dim] */
    lmrt_status (*attention_full)(backend_ctx *ctx, const attention_params *p, int32_t n_kv,
                                  const float *q, const float *k, const float *v, float *out);
    /* Unfolds a convolution's input into one row per output position, so that the
     * convolution is a matmul with the weight seen as [c_out][c_in * kh * kw]:
     *   x:   [h][w][c_in] (channels last; a 1-D signal has h = 1, kh = 1, pad_h = 0)
     *   out: [h_out][w_out][c_in][kh][kw], h_out = (h + 2 pad_h - kh) / stride_h + 1,
     *        likewise w_out; taps outside x read 0. */
    lmrt_status (*im2col)(backend_ctx *ctx, const float *x, int32_t c_in, int32_t h, int32_t w,
                          int32_t kh, int32_t kw, int32_t stride_h, int32_t stride_w,
                          int32_t pad_h, int32_t pad_w, float *out);

    /* ---- optional ops (NULL, or a table too old to have them: callers fall back) ---- */

    /* y[i] = the matmul of w[i] and x for the n_w (1 .. 4, BACKEND_MATMUL_N_MAX) weights
     * of one input, such as a layer's q, k and v: the same results as n_w matmul calls,
     * in one pass that prepares x once and splits all the rows over the threads at once.
     *   x: [n_tok][n_cols] (every w[i].n_cols equal), y[i]: [n_tok][w[i].n_rows]
     * The y[i] overlap neither x nor each other. On an error some y[i] may be written. */
    lmrt_status (*matmul_n)(backend_ctx *ctx, const tensor_view *const *w, int32_t n_w,
                            const float *x, int32_t n_tok, float *const *y);
} backend_vtable;

#define BACKEND_MATMUL_N_MAX 4

/* The activations of backend_vtable.gelu. */
typedef enum backend_gelu_kind {
    BACKEND_GELU_ERF = 0,        /* x/2 (1 + erf(x / sqrt 2)): Whisper, SigLIP, mllama */
    BACKEND_GELU_TANH = 1,       /* x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
    BACKEND_GELU_QUICK = 2,      /* x * sigmoid(1.702 x): OpenAI CLIP */
} backend_gelu_kind;

/* The backend with id LMRT_BACKEND_*, or NULL when it is not built in. */
const backend_vtable *backend_find(uint32_t id);
/* LMRT_BACKEND_* bits of the backends built in that have at least one device. */
uint32_t backend_available_mask(void);

extern const backend_vtable cpu_backend;

#endif
