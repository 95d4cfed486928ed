/* cpu_ops.h - inside the CPU backend: its context, the kernel table chosen per
 * cpu_level, and the vtable slots that cpu_backend.c wires up. Kernels are plain
 * loops over a range of output rows; the op functions validate, split the work
 * over the thread pool and call the kernels. Nothing outside backend/cpu/ sees this. */
#ifndef LMRT_BACKEND_CPU_OPS_H
#define LMRT_BACKEND_CPU_OPS_H

#include <pthread.h>

#include "backend/backend.h"
#include "backend/cpu/cpu_features.h"
#include "backend/cpu/threadpool.h"
#include "tensor/types.h"

/* One set of kernels. Each computes a range of independent outputs, single-threaded;
 * every output element is computed the same way whatever the range, so results do
 * not depend on how the ops split the work.
 *
 * Where SIMD plugs in: a file per level (cpu_matmul_avx2.c, ...) defines its own
 * cpu_kernels, filling the slots it improves and copying the scalar ones for the
 * rest, and cpu_ops.c lists it in kernels_by_level[]. SIMD kernels are tested
 * against cpu_kernels_scalar, which is the reference. */
/* The activations of one matmul, prepared once per op before the rows are
 * split over threads: x as floats and, when the kernel's dot product wants it,
 * x quantized per token row to `vec_type` (ggml's Q8_0 or Q8_K layouts, made by
 * quantize_row_q8_0 / quantize_row_q8_K in tensor/quant.h). */
typedef struct matmul_input {
    const float *x;              /* [n_tok][n_cols] */
    int32_t n_tok;
    int64_t n_cols;
    uint32_t vec_type;           /* GGML_TYPE_F32 (xq unused), GGML_TYPE_Q8_0 or GGML_TYPE_Q8_K */
    const void *xq;              /* [n_tok][xq_row_bytes] */
    size_t xq_row_bytes;
    /* Packed kernels: this thread's scratch already holds the per-token tables of this
     * x for w->type (cpu_q8_avx512_setup), left by an earlier piece of the same run
     * (cpu_matmul.c); false makes the kernel build them. */
    bool tables_ready;
} matmul_input;

/* y[t][r] for rows r in [r0, r1) and every token t < in->n_tok.
 * y: [n_tok][w->n_rows]; scratch: this thread's matmul_scratch[type](w, n_tok) floats
 * (w->n_cols without that hook), 64-byte aligned.
 * Contract that keeps results exact and reproducible: y[t][r] must be the same
 * bits whatever r0, r1 and n_tok are (a batch gives each token what it would get
 * alone), so tiles over tokens must accumulate each output in the same order as
 * the single-token path. */
typedef void (*matmul_rows_fn)(const tensor_view *w, const matmul_input *in, float *y,
                               int64_t r0, int64_t r1, float *scratch);

typedef struct matmul_kernel {
    matmul_rows_fn rows;         /* NULL for a type the level does not handle */
    uint32_t vec_type;           /* what the op quantizes x to first (GGML_TYPE_F32: nothing) */
} matmul_kernel;

/* A Q8_0, Q4_0, Q4_K or Q6_K weight repacked when it was bound (cpu_repack.c), for the levels
 * whose table has a matmul_packed slot: 16-row panels, each panel_bytes long, holding
 * per block b the 16 rows' quants transposed for int8 dots with rows in lanes
 * (wq_bytes per block at b * wq_bytes: vector j of 64 bytes, lane n = row n's quant
 * bytes 4j..4j+3 as stored, Q8_0 int8 and Q4_0 nibble pairs), then at nb * wq_bytes
 * the 16 rows' f16 scales per block (32 bytes at + 32 b). Q4_K (256-blocks) transposes
 * the whole 144-byte block the same way, 36 vectors with d/dmin and the scales first,
 * and has no separate scales; Q6_K transposes its first 208 bytes (ql, qh, scales: 52
 * vectors) and keeps its f16 d, the last 2, in the scales region. Rows past n_rows
 * are zero. The same bytes as the file,
 * rearranged: the same results, bit for bit. */
typedef struct cpu_packed {
    const void *src;             /* the bound view's data (the key); its shape below */
    uint32_t type;
    int64_t n_cols, n_rows;
    size_t row_bytes;
    uint8_t *data;               /* [n_panels][panel_bytes], page-aligned */
    size_t bytes;                /* mapped length of data */
    int64_t nb, n_panels;
    size_t wq_bytes, panel_bytes;
    int32_t refs;                /* binds of this view in a context's table; contexts
                                    holding the copy in the registry's (cpu_repack.c) */
} cpu_packed;

#define CPU_PANEL_ROWS 16

/* y[t][r] for the rows of panels [p0, p1), every token; the same bits as the
 * table's matmul[type].rows on the unpacked weight. scratch as for that kernel.
 * pf_end (>= p1): the panel where software prefetching stops - the end of the calling
 * thread's range, when it is likely to go on with the panels after p1. */
typedef void (*matmul_packed_fn)(const cpu_packed *w, const matmul_input *in, float *y,
                                 int64_t p0, int64_t p1, int64_t pf_end, float *scratch);

typedef struct cpu_kernels {
    const char *name;
    matmul_kernel matmul[GGML_TYPE_COUNT];
    /* Floats of per-thread scratch matmul[type].rows needs for n_tok tokens of w (a NULL
     * slot: w->n_cols). */
    int64_t (*matmul_scratch[GGML_TYPE_COUNT])(const tensor_view *w, int32_t n_tok);
    /* x[0..n) to one row of `vec_type` blocks (Q8_0 or Q8_K; NULL slots use the
     * reference quantizers). Must give the same bytes as the reference. */
    void (*quantize_row[GGML_TYPE_COUNT])(const float *x, void *out, int64_t n);
    /* Kernels over repacked Q8_0/Q4_0/Q4_K/Q6_K weights (NULL: bind_weight keeps the
     * mapping). */
    matmul_packed_fn matmul_packed[GGML_TYPE_COUNT];
    /* One token: y[i] = x[i] * rsqrt(mean(x^2) + eps) * weight[i]. x may equal y. */
    void (*rmsnorm)(const float *x, const float *weight, int32_t n, float eps, float *y);
    /* One token's heads, in place. */
    void (*rope)(float *x, int32_t n_head, int32_t head_dim, int32_t n_rot, int32_t pos,
                 float freq_base, const float *freq_factors);
    /* One (token t, head h) query; scratch: n_past + t + 1 floats. */
    void (*attention)(const attention_params *p, const float *q, const float *k,
                      const float *v, float *out, int32_t t, int32_t h, float *scratch);
    void (*silu_mul)(float *gate, const float *up, int64_t n);
    void (*add)(float *y, const float *x, int64_t n);
    /* Optional (NULL: the op calls `attention` once per query): the queries of tokens
     * [t0, t1) and heads [h0, h1), all reading one kv head, at most CPU_ATT_GROUP of them,
     * in one pass over the cache. Each output must be the same bits as `attention` gives
     * for that query alone. scratch: cpu_attention_group_scratch(head_dim) floats. */
    void (*attention_group)(const attention_params *p, const float *q, const float *k,
                            const float *v, float *out, int32_t t0, int32_t t1, int32_t h0,
                            int32_t h1, float *scratch);
} cpu_kernels;

#define CPU_ATT_GROUP 16
/* Per-query output accumulators and one transposed block of 16 keys. */
static inline int64_t cpu_attention_group_scratch(int32_t head_dim)
{
    return 2 * CPU_ATT_GROUP * (((int64_t)head_dim + 15) & ~(int64_t)15) + 64;
}

extern const cpu_kernels cpu_kernels_scalar;

/* The kernels to use at `level`: the best table at or below it. */
const cpu_kernels *cpu_kernels_for(cpu_level level);

/* The scalar kernels, shared with the SIMD tables for the slots they keep. */
void cpu_matmul_rows_scalar(const tensor_view *w, const matmul_input *in, float *y, int64_t r0,
                            int64_t r1, float *scratch);
void cpu_attention_head_scalar(const attention_params *p, const float *q, const float *k,
                               const float *v, float *out, int32_t t, int32_t h,
                               float *scratch);

#define CPU_MAX_THREADS 1024

struct backend_ctx {
    const cpu_kernels *k;        /* chosen once, from cpu_features, at ctx_create */
    threadpool *pool;
    int32_t n_threads;
    /* Ops on one context may come from several threads (sessions sharing a
     * context): they take turns on op_lock, which also guards the scratch. */
    pthread_mutex_t op_lock;
    void *scratch_raw;           /* allocation behind `scratch` */
    float *scratch;              /* [n_threads][scratch_stride], 64-byte aligned rows */
    size_t scratch_stride;       /* floats per thread, a multiple of 16 */
    void *xq;                    /* quantized activations of the current matmul */
    size_t xq_bytes;
    cpu_packed *packed;          /* repacked weights, sorted by src (cpu_repack.c) */
    int32_t n_packed, cap_packed;
    /* Per thread, during a packed matmul run: the weight type whose per-token tables
     * the thread's scratch holds (GGML_TYPE_COUNT: none yet). cpu_matmul.c. */
    uint8_t tables_type[CPU_MAX_THREADS];
};

/* cpu_repack.c. Repacks `w` for ctx's kernels if they have a packed slot for its type
 * (nothing otherwise, and nothing when memory is short: the mapping still works);
 * a second bind of the same view counts a reference. op_lock not held. */
void cpu_pack_bind(backend_ctx *ctx, const tensor_view *w);
/* Drops a reference taken by cpu_pack_bind; frees the copy at the last. */
void cpu_pack_unbind(backend_ctx *ctx, const tensor_view *w);
/* The packed copy of exactly this view (data and shape), or NULL; op_lock held. */
const cpu_packed *cpu_pack_find(const backend_ctx *ctx, const tensor_view *w);
/* Contexts share a packed copy of the same view (one model's mapping): the number of
 * copies alive in the process, for tests. */
int32_t cpu_pack_shared_count(void);
/* Lets go of every packed copy the context holds (ctx_free). */
void cpu_pack_free_all(backend_ctx *ctx);
/* Blocks [b0, b0 + n) of row r of a packed weight back in their GGUF layout, at out. */
void cpu_pack_unpack_blocks(const cpu_packed *w, int64_t r, int64_t b0, int64_t n, uint8_t *out);

/* Grows the per-thread scratch to at least `floats` floats; op_lock held. */
lmrt_status cpu_scratch_reserve(backend_ctx *ctx, int64_t floats, const char *op);
static inline float *cpu_scratch(backend_ctx *ctx, int thread)
{
    return ctx->scratch + (size_t)thread * ctx->scratch_stride;
}

/* Checks a weight view the ops were handed: supported type, whole blocks,
 * row_bytes matching the block math, data present. `status` is what a bad view
 * returns (LMRT_E_FORMAT from bind_weight, LMRT_E_INVALID_ARG from an op). */
lmrt_status cpu_check_view(const tensor_view *w, lmrt_status status, const char *op);

/* The vtable slots. */
lmrt_status cpu_ctx_create(int32_t device, int32_t n_threads, backend_ctx **out);
void cpu_ctx_free(backend_ctx *ctx);
lmrt_status cpu_alloc(backend_ctx *ctx, size_t bytes, void **out);
void cpu_free(backend_ctx *ctx, void *ptr);
lmrt_status cpu_upload(backend_ctx *ctx, void *dst, const void *host_src, size_t bytes);
lmrt_status cpu_download(backend_ctx *ctx, void *host_dst, const void *src, size_t bytes);
lmrt_status cpu_bind_weight(backend_ctx *ctx, const tensor_view *host, tensor_view *out);
void cpu_unbind_weight(backend_ctx *ctx, tensor_view *bound);
bool cpu_supports_type(uint32_t type);
lmrt_status cpu_get_rows(backend_ctx *ctx, const tensor_view *table, const int32_t *ids,
                         int32_t n, float *out);
lmrt_status cpu_matmul(backend_ctx *ctx, const tensor_view *w, const float *x, int32_t n_tok,
                       float *y);
lmrt_status cpu_matmul_n(backend_ctx *ctx, const tensor_view *const *w, int32_t n_w,
                         const float *x, int32_t n_tok, float *const *y);
lmrt_status cpu_rmsnorm(backend_ctx *ctx, const float *x, const float *weight, int32_t n,
                        int32_t n_tok, float eps, float *y);
lmrt_status cpu_rope(backend_ctx *ctx, float *x, int32_t n_tok, int32_t n_head,
                     int32_t head_dim, int32_t n_rot, const int32_t *pos, float freq_base,
                     const float *freq_factors);
lmrt_status cpu_attention(backend_ctx *ctx, const attention_params *p, const float *q,
                          const float *k, const float *v, float *out);
lmrt_status cpu_silu_mul(backend_ctx *ctx, float *gate, const float *up, int64_t n);
lmrt_status cpu_add(backend_ctx *ctx, float *y, const float *x, int64_t n);
/* The encoder ops: cpu_encoder_ops.c, and attention_full in cpu_attention.c. */
lmrt_status cpu_layernorm(backend_ctx *ctx, const float *x, const float *weight,
                          const float *bias, int32_t n, int32_t n_tok, float eps, float *y);
lmrt_status cpu_add_bias(backend_ctx *ctx, float *y, const float *b, int32_t n, int32_t n_tok);
lmrt_status cpu_add_scaled(backend_ctx *ctx, float *y, const float *x, float scale, int64_t n);
lmrt_status cpu_gelu(backend_ctx *ctx, float *x, int64_t n, int32_t kind);
lmrt_status cpu_attention_full(backend_ctx *ctx, const attention_params *p, int32_t n_kv,
                               const float *q, const float *k, const float *v, float *out);
lmrt_status cpu_im2col(backend_ctx *ctx, const float *x, int32_t c_in, int32_t h, int32_t w,
                       int32_t kh, int32_t kw, int32_t stride_h, int32_t stride_w,
                       int32_t pad_h, int32_t pad_w, float *out);

#endif
