/* cuda_plan.c - the CUDA backend's host-side decisions (cuda_plan.h): kernel and tile
 * choice per matmul, attention's key split, memory fit, weight repacking and the
 * converted-input cache. Plain C with no CUDA calls: tested on any machine. */
#include "backend/cuda/cuda_plan.h"

#include <string.h>

#include "backend/cuda/cuda_quant.h"
#include "base/error.h"
#include "tensor/types.h"

/* Rows of the weight per matvec block: one warp each (cuda_matvec.cu). */
#define CUDA_MV_ROWS 4

static int64_t ceil_div(int64_t a, int64_t b)
{
    return (a + b - 1) / b;
}

static bool is_quantized(uint32_t type)
{
    return type == GGML_TYPE_Q8_0 || type == GGML_TYPE_Q4_0 || type == GGML_TYPE_Q4_K ||
           type == GGML_TYPE_Q6_K;
}

/* ---- matmul ---------------------------------------------------------------------- */

bool cuda_plan_type_supported(uint32_t type)
{
    return type == GGML_TYPE_F32 || type == GGML_TYPE_F16 || type == GGML_TYPE_BF16 ||
           is_quantized(type);
}

lmrt_status cuda_plan_matmul(uint32_t type, int64_t n_rows, int64_t n_cols, int32_t n_tok,
                             uintptr_t x_addr, int32_t n_sm, cuda_mm_plan *out)
{
    const tensor_type_traits *tt = tensor_type_get(type);
    if (!cuda_plan_type_supported(type))
        return lmrt_fail(LMRT_E_UNSUPPORTED, "cuda backend: matmul: no kernels for type %s "
                         "(%u)", tensor_type_name(type), (unsigned)type);
    if (n_rows < 0 || n_cols <= 0 || n_tok < 0 || n_cols % tt->block_elems != 0)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cuda backend: matmul: bad shape %lld x %lld "
                         "of %s for %d tokens", (long long)n_rows, (long long)n_cols,
                         tt->name, (int)n_tok);
    if (n_sm < 1)
        n_sm = 1;
    cuda_mm_plan p;
    memset(&p, 0, sizeof p);
    const bool small = n_tok <= CUDA_MATVEC_MAX_TOK;
    int64_t x_elems = 0;      /* bytes per element of the converted x, times elements */
    size_t x_elem_bytes = 0;
    if (small) {
        p.nt = n_tok <= 1 ? 1 : n_tok <= 2 ? 2 : n_tok <= 4 ? 4 : 8;
        p.blocks = ceil_div(n_rows, CUDA_MV_ROWS);
        if (is_quantized(type)) {
            /* int8 x, then a float2 (d, s) per 32 */
            p.kind = CUDA_MM_MATVEC_Q;
            p.x_stride = n_cols;
            x_elems = n_cols + n_cols / 32 * 8;
            x_elem_bytes = 1;
        } else {
            p.kind = CUDA_MM_MATVEC_F;
            p.x_vec = x_addr % 16 == 0 && n_cols % 8 == 0;
        }
    } else if (type == GGML_TYPE_F32) {
        p.kind = CUDA_MM_GEMM_F32;
        p.bm = p.bn = 64;
        p.blocks = ceil_div(n_rows, 64) * ceil_div(n_tok, 64);
    } else {
        /* Tiles from the largest down: the first that still gives every SM a block;
         * 128 tokens only when there are more than 64. */
        static const int32_t tiles[][2] = {{128, 128}, {128, 64}, {64, 64}};
        p.kind = CUDA_MM_GEMM_TC;
        for (size_t i = 0; i < sizeof tiles / sizeof tiles[0]; i++) {
            if (tiles[i][1] == 128 && n_tok <= 64)
                continue;
            p.bm = tiles[i][0];
            p.bn = tiles[i][1];
            p.blocks = ceil_div(n_rows, p.bm) * ceil_div(n_tok, p.bn);
            if (p.blocks >= n_sm)
                break;
        }
        p.x_stride = ceil_div(n_cols, 64) * 64;
        x_elems = p.x_stride;
        x_elem_bytes = 2;
    }
    if (x_elems) {
        uint64_t bytes;
        if (__builtin_mul_overflow((uint64_t)x_elems, (uint64_t)n_tok, &bytes) ||
            __builtin_mul_overflow(bytes, (uint64_t)x_elem_bytes, &bytes) || bytes > SIZE_MAX)
            return lmrt_fail(LMRT_E_INVALID_ARG, "cuda backend: matmul: %d tokens of %lld "
                             "columns overflow the scratch size", (int)n_tok,
                             (long long)n_cols);
        p.x_bytes = (size_t)bytes;
    }
    *out = p;
    return LMRT_OK;
}

/* ---- attention --------------------------------------------------------------------- */

size_t cuda_att_smem_bytes(int32_t head_dim)
{
    const size_t hd = (size_t)head_dim;
    return sizeof(float) * ((size_t)CUDA_ATT_ROWS * hd + (size_t)CUDA_ATT_TILE * (hd | 1) +
                            (size_t)CUDA_ATT_TILE * hd);
}

lmrt_status cuda_plan_attention(const attention_params *p, int32_t n_kv, bool causal,
                                int32_t n_sm, size_t smem_optin, cuda_att_plan *out)
{
    if (p->head_dim > CUDA_ATT_MAX_HEAD_DIM)
        return lmrt_fail(LMRT_E_UNSUPPORTED, "cuda backend: attention: head_dim %d is over "
                         "the %d the kernel holds", (int)p->head_dim, CUDA_ATT_MAX_HEAD_DIM);
    cuda_att_plan a;
    memset(&a, 0, sizeof a);
    a.smem_bytes = cuda_att_smem_bytes(p->head_dim);
    if (a.smem_bytes > smem_optin)
        return lmrt_fail(LMRT_E_UNSUPPORTED, "cuda backend: attention: head_dim %d needs %zu "
                         "bytes of shared memory, the device gives a block %zu",
                         (int)p->head_dim, a.smem_bytes, smem_optin);
    a.chunks = p->head_dim <= 64 ? 2 : p->head_dim <= 128 ? 4 : 8;
    const int64_t group = p->n_head / p->n_head_kv;
    const int64_t n_q = (int64_t)p->n_tok * group;
    const int64_t n_keys = causal ? (int64_t)p->n_past + p->n_tok : n_kv;
    if (n_q > INT32_MAX || (int64_t)p->n_tok * p->n_head > INT32_MAX || n_keys > INT32_MAX)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cuda backend: attention: %d tokens of %d heads "
                         "over %lld keys are too many", (int)p->n_tok, (int)p->n_head,
                         (long long)n_keys);
    a.n_q = (int32_t)n_q;
    a.n_keys = (int32_t)n_keys;
    a.q_blocks = (int32_t)ceil_div(n_q, CUDA_ATT_ROWS);
    const int64_t n_tiles = ceil_div(n_keys, CUDA_ATT_TILE);
    const int64_t base = (int64_t)a.q_blocks * p->n_head_kv;
    const int64_t target = 2 * (int64_t)(n_sm > 0 ? n_sm : 1);
    int64_t split = 1;
    if (base > 0 && base < target && n_tiles >= 4) {
        /* Enough blocks for two per SM, each with at least two tiles of keys. */
        split = ceil_div(target, base);
        if (split > n_tiles / 2)
            split = n_tiles / 2;
        if (split > CUDA_ATT_MAX_SPLIT)
            split = CUDA_ATT_MAX_SPLIT;
    }
    const int64_t per = ceil_div(n_tiles > 0 ? n_tiles : 1, split);
    a.tiles_per_split = (int32_t)per;
    a.n_split = (int32_t)ceil_div(n_tiles > 0 ? n_tiles : 1, per);
    if (a.n_split > 1) {
        /* acc [rows][head_dim] floats, rounded up to an even count, then (max, sum)
         * float pairs [rows] (cuda_attention.cu) */
        uint64_t rows = (uint64_t)p->n_tok * (uint64_t)p->n_head * (uint64_t)a.n_split, bytes;
        if (__builtin_mul_overflow(rows, ((uint64_t)p->head_dim + 2) * sizeof(float), &bytes) ||
            __builtin_add_overflow(bytes, sizeof(float), &bytes) || bytes > SIZE_MAX)
            return lmrt_fail(LMRT_E_INVALID_ARG, "cuda backend: attention: split partials "
                             "overflow");
        a.partial_bytes = (size_t)bytes;
    }
    *out = a;
    return LMRT_OK;
}

/* ---- memory ------------------------------------------------------------------------ */

uint64_t cuda_plan_reserve(uint64_t total_bytes)
{
    const uint64_t floor = (uint64_t)256 << 20;
    return total_bytes / 64 > floor ? total_bytes / 64 : floor;
}

bool cuda_plan_fits(uint64_t bytes, uint64_t free_bytes, uint64_t total_bytes)
{
    const uint64_t reserve = cuda_plan_reserve(total_bytes);
    return free_bytes >= reserve && bytes <= free_bytes - reserve;
}

bool cuda_weight_bytes(uint32_t type, int64_t n_cols, int64_t n_rows, uint64_t *out)
{
    const uint64_t row = cq_row_bytes(type, n_cols);
    if (row == 0 || n_rows < 0)
        return false;
    return !__builtin_mul_overflow(row, (uint64_t)n_rows, out);
}

void cuda_repack_row(uint32_t type, int64_t n_cols, const uint8_t *src, uint8_t *dst)
{
    const size_t rb = (size_t)cq_row_bytes(type, n_cols);
    const size_t nb = (size_t)n_cols / 32, nbk = (size_t)n_cols / 256;
    size_t used = 0;
    switch (type) {
    case GGML_TYPE_F32:
    case GGML_TYPE_Q4_K:
        used = rb;
        memcpy(dst, src, rb);
        break;
    case GGML_TYPE_F16:
    case GGML_TYPE_BF16:
        used = 2 * (size_t)n_cols;
        memcpy(dst, src, used);
        break;
    case GGML_TYPE_Q8_0:
        for (size_t b = 0; b < nb; b++) {
            memcpy(dst + CQ_Q8_0_QS * b, src + 34 * b + 2, CQ_Q8_0_QS);
            memcpy(dst + CQ_Q8_0_QS * nb + 2 * b, src + 34 * b, 2);
        }
        used = (CQ_Q8_0_QS + 2) * nb;
        break;
    case GGML_TYPE_Q4_0:
        for (size_t b = 0; b < nb; b++) {
            memcpy(dst + CQ_Q4_0_QS * b, src + 18 * b + 2, CQ_Q4_0_QS);
            memcpy(dst + CQ_Q4_0_QS * nb + 2 * b, src + 18 * b, 2);
        }
        used = (CQ_Q4_0_QS + 2) * nb;
        break;
    case GGML_TYPE_Q6_K:
        for (size_t b = 0; b < nbk; b++) {
            memcpy(dst + CQ_Q6_K_BLOCK * b, src + 210 * b, CQ_Q6_K_BLOCK);
            memcpy(dst + CQ_Q6_K_BLOCK * nbk + 2 * b, src + 210 * b + CQ_Q6_K_BLOCK, 2);
        }
        used = (CQ_Q6_K_BLOCK + 2) * nbk;
        break;
    default:
        return;
    }
    if (used < rb)
        memset(dst + used, 0, rb - used);
}

bool cuda_plan_ids_consecutive(const int32_t *ids, int32_t n)
{
    for (int32_t t = 1; t < n; t++)
        if ((int64_t)ids[t] != (int64_t)ids[0] + t)
            return false;
    return n > 0;
}

/* ---- converted-input cache ----------------------------------------------------------- */

bool cuda_x_cache_hit(const cuda_x_cache *c, const float *x, int32_t n_tok, int64_t n_cols,
                      int32_t kind)
{
    return c->x && c->x == x && c->n_tok == n_tok && c->n_cols == n_cols && c->kind == kind;
}

void cuda_x_cache_set(cuda_x_cache *c, const float *x, int32_t n_tok, int64_t n_cols,
                      int32_t kind)
{
    c->x = x;
    c->n_tok = n_tok;
    c->n_cols = n_cols;
    c->kind = kind;
}

void cuda_x_cache_clear(cuda_x_cache *c)
{
    memset(c, 0, sizeof *c);
}

void cuda_x_cache_wrote(cuda_x_cache *c, const void *dst, size_t bytes)
{
    if (!c->x || !dst || !bytes)
        return;
    const uintptr_t lo = (uintptr_t)c->x;
    const uintptr_t hi = lo + (uintptr_t)c->n_tok * (uintptr_t)c->n_cols * sizeof(float);
    const uintptr_t a = (uintptr_t)dst, b = a + bytes;
    if (a < hi && lo < b)
        cuda_x_cache_clear(c);
}
