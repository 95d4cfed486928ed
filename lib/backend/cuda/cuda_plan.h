/* cuda_plan.h - the CUDA backend's host-side decisions, in plain C so that the unit
 * tests check them without a GPU: which kernel a matmul runs and with what tiles,
 * how attention splits its keys, whether an allocation fits the device, the repacking
 * of weight rows into the device layout (cuda_quant.h), and the cache that lets the
 * q/k/v (and gate/up) matmuls share one conversion of their input. */
#ifndef LMRT_BACKEND_CUDA_PLAN_H
#define LMRT_BACKEND_CUDA_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"

/* Tokens up to which a matmul runs as a matrix-vector product that reads each weight
 * once for all tokens (generation, small batches); above it, a tiled GEMM. */
#define CUDA_MATVEC_MAX_TOK 8

/* The weight types the backend holds and computes with: F32 F16 BF16 Q8_0 Q4_0 Q4_K Q6_K. */
bool cuda_plan_type_supported(uint32_t type);

typedef enum cuda_mm_kind {
    CUDA_MM_MATVEC_Q,            /* quantized weights, x quantized to int8 (dp4a) */
    CUDA_MM_MATVEC_F,            /* F32 / F16 / BF16 weights, float x */
    CUDA_MM_GEMM_TC,             /* tensor cores: x and weight tiles in f16 */
    CUDA_MM_GEMM_F32,            /* F32 weights, CUDA-core FP32 tiles */
} cuda_mm_kind;

typedef struct cuda_mm_plan {
    cuda_mm_kind kind;
    int32_t nt;                  /* matvec: tokens per kernel instance (1, 2, 4 or 8) */
    bool x_vec;                  /* matvec_f: x rows may be read as float4 */
    int32_t bm, bn;              /* gemm_tc: weight rows and tokens per block */
    int64_t x_stride;            /* elements per row of the converted x (0: none) */
    size_t x_bytes;              /* device scratch for the converted x */
    int64_t blocks;              /* thread blocks launched */
} cuda_mm_plan;

/* The kernel for y[n_tok][n_rows] = x[n_tok][n_cols] w^T with w of `type`, on a device
 * of n_sm multiprocessors; x_addr is x's address (alignment decides x_vec).
 * LMRT_E_UNSUPPORTED for a type without kernels, LMRT_E_INVALID_ARG for sizes that
 * overflow. */
lmrt_status cuda_plan_matmul(uint32_t type, int64_t n_rows, int64_t n_cols, int32_t n_tok,
                             uintptr_t x_addr, int32_t n_sm, cuda_mm_plan *out);

/* Flash-style attention: blocks of CUDA_ATT_ROWS query rows (the queries of one kv
 * head, token-major) stream the keys in tiles of CUDA_ATT_TILE through shared memory
 * with an online softmax; when that gives too few blocks for the device, the keys are
 * split and a second kernel merges the partial softmaxes. */
#define CUDA_ATT_ROWS 16
#define CUDA_ATT_TILE 32
#define CUDA_ATT_MAX_HEAD_DIM 256
#define CUDA_ATT_MAX_SPLIT 64

typedef struct cuda_att_plan {
    int32_t chunks;              /* head_dim / 32 rounded up to 2, 4 or 8 (the kernel's) */
    int32_t n_q;                 /* query rows per kv head: n_tok * (n_head / n_head_kv) */
    int32_t q_blocks;            /* blocks of CUDA_ATT_ROWS rows per kv head */
    int32_t n_keys;              /* keys the last query sees */
    int32_t n_split, tiles_per_split;
    size_t smem_bytes;           /* dynamic shared memory per block */
    size_t partial_bytes;        /* device scratch for the split partials (0: none) */
} cuda_att_plan;

/* causal: queries at n_past + t see keys 0 .. n_past + t (n_kv ignored); otherwise
 * every query sees n_kv keys. smem_optin: the device's per-block shared memory limit.
 * LMRT_E_UNSUPPORTED for a head_dim over CUDA_ATT_MAX_HEAD_DIM or over the limit. */
lmrt_status cuda_plan_attention(const attention_params *p, int32_t n_kv, bool causal,
                                int32_t n_sm, size_t smem_optin, cuda_att_plan *out);

/* Shared memory the attention kernel needs for a head_dim. */
size_t cuda_att_smem_bytes(int32_t head_dim);

/* Device memory kept free for the CUDA context, kernels' scratch and fragmentation:
 * max(256 MiB, 1/64 of the device). */
uint64_t cuda_plan_reserve(uint64_t total_bytes);
/* Whether `bytes` more fit now, keeping the reserve. */
bool cuda_plan_fits(uint64_t bytes, uint64_t free_bytes, uint64_t total_bytes);

/* Device bytes of a weight of n_rows rows; false when the product overflows or the
 * type is not held (cq_row_bytes 0). */
bool cuda_weight_bytes(uint32_t type, int64_t n_cols, int64_t n_rows, uint64_t *out);
/* Writes one row from the file's layout (src, the type's blocks) into the device
 * layout (dst, cq_row_bytes(type, n_cols) bytes, padding zeroed). */
void cuda_repack_row(uint32_t type, int64_t n_cols, const uint8_t *src, uint8_t *dst);

/* Whether ids[t] = ids[0] + t for every t < n: positions of consecutive tokens, which
 * rope then takes as ids[0] alone instead of a copy to the device. */
bool cuda_plan_ids_consecutive(const int32_t *ids, int32_t n);

/* What the converted-x scratch holds: the matmuls of one input (q, k and v of one
 * normalized x) convert it once. Any op other than a matmul clears it; a matmul whose
 * output overlaps the cached input clears it too. */
typedef enum cuda_x_kind { CUDA_X_Q8 = 1, CUDA_X_F16 = 2 } cuda_x_kind;

typedef struct cuda_x_cache {
    const float *x;              /* device address of the input; NULL: nothing cached */
    int64_t n_cols;
    int32_t n_tok;
    int32_t kind;                /* cuda_x_kind */
} cuda_x_cache;

bool cuda_x_cache_hit(const cuda_x_cache *c, const float *x, int32_t n_tok, int64_t n_cols,
                      int32_t kind);
void cuda_x_cache_set(cuda_x_cache *c, const float *x, int32_t n_tok, int64_t n_cols,
                      int32_t kind);
void cuda_x_cache_clear(cuda_x_cache *c);
/* Clears the cache when [dst, dst + bytes) overlaps the cached input. */
void cuda_x_cache_wrote(cuda_x_cache *c, const void *dst, size_t bytes);

#endif
