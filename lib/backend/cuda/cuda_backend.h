/* cuda_backend.h - inside the CUDA backend: its context and the functions the .cu files
 * give the C side. cuda_backend.c checks every op's arguments, plans (cuda_plan.h) and
 * calls these under the context's lock; they enqueue work on the context's stream and
 * return LMRT_E_BACKEND (LMRT_E_NOMEM for device memory) with CUDA's own error text.
 * Plain C: the .cu files include it inside extern "C". Nothing outside backend/cuda/
 * sees it. */
#ifndef LMRT_BACKEND_CUDA_BACKEND_H
#define LMRT_BACKEND_CUDA_BACKEND_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "backend/cuda/cuda_plan.h"

extern const backend_vtable cuda_backend;

/* A device buffer that grows on demand (scratch of the ops). */
typedef struct cuda_buf {
    void *p;
    size_t bytes;
} cuda_buf;

struct backend_ctx {
    int32_t device;
    void *stream;                /* cudaStream_t: every op of this context, in order */
    int32_t n_sm;
    int32_t cc;                  /* compute capability, major * 10 + minor */
    size_t smem_optin;           /* shared memory a block may opt in to */
    /* Sessions on several threads share a context: ops take turns on the lock, which
     * also guards the scratch and the cache below. */
    pthread_mutex_t lock;
    cuda_buf x_buf;              /* the converted input of the current matmul */
    cuda_buf att_buf;            /* attention's split partials */
    cuda_buf idx_buf;            /* ids and positions copied from the host */
    cuda_x_cache xcache;         /* what x_buf holds */
    uint8_t *staging;            /* pinned host memory through which weights go up */
    size_t staging_bytes;
};

/* Up to this many ids or positions travel in the kernel's parameters; more are
 * copied into idx_buf first, except consecutive positions, which rope takes as the
 * first one (v[0]) plus the token's index. */
#define CUDA_INLINE_IDS 32
typedef struct cuda_ids {
    int32_t v[CUDA_INLINE_IDS];
} cuda_ids;

#ifdef __cplusplus
extern "C" {
#endif

/* ---- cuda_device.cu: devices, context, memory ---------------------------------- */

/* 0 without a driver or a device (not an error). */
int32_t cuda_rt_device_count(void);
lmrt_status cuda_rt_device_info(int32_t index, lmrt_device_info *out);
/* Fills the context's device fields and creates its stream (ctx->device set). */
lmrt_status cuda_rt_ctx_open(backend_ctx *ctx);
void cuda_rt_ctx_close(backend_ctx *ctx);
/* Makes ctx's device current on this thread (ops may come from any thread). */
lmrt_status cuda_rt_use(backend_ctx *ctx, const char *op);
/* Device memory, refused with LMRT_E_NOMEM before cudaMalloc when it would not fit
 * (cuda_plan_fits); `what` names it in the message. Zeroed on the stream if `zero`. */
lmrt_status cuda_rt_alloc(backend_ctx *ctx, size_t bytes, bool zero, const char *what,
                          void **out);
void cuda_rt_free(backend_ctx *ctx, void *p);
/* Grows b to at least `bytes` (contents lost when it grows). */
lmrt_status cuda_rt_scratch(backend_ctx *ctx, cuda_buf *b, size_t bytes, const char *op);
void cuda_rt_scratch_free(backend_ctx *ctx, cuda_buf *b);
lmrt_status cuda_rt_upload(backend_ctx *ctx, void *dst, const void *src, size_t bytes,
                           const char *op);
/* Waits for the stream: the bytes are in host memory on return. */
lmrt_status cuda_rt_download(backend_ctx *ctx, void *dst, const void *src, size_t bytes);
/* Copies a weight's rows from the file's layout into `dev` in the device layout
 * (cuda_repack_row, dev_row_bytes a row), through the pinned staging buffer. */
lmrt_status cuda_rt_upload_weight(backend_ctx *ctx, const tensor_view *host, void *dev,
                                  size_t dev_row_bytes);
/* The status of the kernels just launched. */
lmrt_status cuda_rt_launched(const char *op);
/* Device-to-device copy bandwidth (bytes read + written per second) of `bytes`. */
lmrt_status cuda_rt_copy_bandwidth(int32_t device, size_t bytes, double *out_bytes_per_s);

/* ---- cuda_norm.cu: get_rows, rmsnorm, rope, silu_mul, add ----------------------- */

/* ids_dev NULL: the n <= CUDA_INLINE_IDS ids are in `inline_ids`. */
lmrt_status cuda_launch_get_rows(backend_ctx *ctx, const tensor_view *table,
                                 const cuda_ids *inline_ids, const int32_t *ids_dev, int32_t n,
                                 float *out);
lmrt_status cuda_launch_rmsnorm(backend_ctx *ctx, const float *x, const float *weight,
                                int32_t n, int32_t n_tok, float eps, float *y);
/* Positions: pos_dev[t]; or, pos_dev NULL, inline_pos->v[t] (run false) or
 * inline_pos->v[0] + t (run true). */
lmrt_status cuda_launch_rope(backend_ctx *ctx, float *x, int32_t n_tok, int32_t n_head,
                             int32_t head_dim, int32_t n_rot, const cuda_ids *inline_pos,
                             const int32_t *pos_dev, bool run, float freq_base,
                             const float *freq_factors);
lmrt_status cuda_launch_silu_mul(backend_ctx *ctx, float *gate, const float *up, int64_t n);
lmrt_status cuda_launch_add(backend_ctx *ctx, float *y, const float *x, int64_t n);

/* ---- cuda_encoder.cu: layernorm, add_bias, add_scaled, gelu, im2col -------------- */

lmrt_status cuda_launch_layernorm(backend_ctx *ctx, const float *x, const float *weight,
                                  const float *bias, int32_t n, int32_t n_tok, float eps,
                                  float *y);
lmrt_status cuda_launch_add_bias(backend_ctx *ctx, float *y, const float *b, int32_t n,
                                 int32_t n_tok);
lmrt_status cuda_launch_add_scaled(backend_ctx *ctx, float *y, const float *x, float scale,
                                   int64_t n);
lmrt_status cuda_launch_gelu(backend_ctx *ctx, float *x, int64_t n, int32_t kind);
lmrt_status cuda_launch_im2col(backend_ctx *ctx, const float *x, int32_t c_in, int32_t h,
                               int32_t w, int32_t kh, int32_t kw, int32_t stride_h,
                               int32_t stride_w, int32_t pad_h, int32_t pad_w, int64_t h_out,
                               int64_t w_out, float *out);

/* ---- cuda_matvec.cu: small batches --------------------------------------------- */

/* x [n_tok][n_cols] (n_cols a multiple of 32) to int8 [n_tok][n_cols] followed by
 * float2 (d, s) [n_tok][n_cols / 32], at xq. */
lmrt_status cuda_launch_quantize_x(backend_ctx *ctx, const float *x, int32_t n_tok,
                                   int64_t n_cols, void *xq);
lmrt_status cuda_launch_matvec_q(backend_ctx *ctx, const tensor_view *w, const void *xq,
                                 int32_t n_tok, const cuda_mm_plan *plan, float *y);
lmrt_status cuda_launch_matvec_f(backend_ctx *ctx, const tensor_view *w, const float *x,
                                 int32_t n_tok, const cuda_mm_plan *plan, float *y);

/* ---- cuda_gemm.cu: prompt batches ---------------------------------------------- */

/* x [n_tok][n_cols] to f16 [n_tok][stride], zero beyond n_cols. */
lmrt_status cuda_launch_convert_x(backend_ctx *ctx, const float *x, int32_t n_tok,
                                  int64_t n_cols, int64_t stride, void *xh);
lmrt_status cuda_launch_gemm_tc(backend_ctx *ctx, const tensor_view *w, const void *xh,
                                int32_t n_tok, const cuda_mm_plan *plan, float *y);
lmrt_status cuda_launch_gemm_f32(backend_ctx *ctx, const tensor_view *w, const float *x,
                                 int32_t n_tok, float *y);

/* ---- cuda_attention.cu ------------------------------------------------------------ */

/* Lets the attention kernels use the shared memory cuda_att_smem_bytes asks for. */
lmrt_status cuda_attention_setup(backend_ctx *ctx);
/* partial: plan->partial_bytes of scratch when plan->n_split > 1. */
lmrt_status cuda_launch_attention(backend_ctx *ctx, const attention_params *p, int32_t n_kv,
                                  bool causal, const cuda_att_plan *plan, const float *q,
                                  const float *k, const float *v, float *out, void *partial);

#ifdef __cplusplus
}
#endif

#endif
