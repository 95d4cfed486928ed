/* vision_mllama_impl.h - the bound mllama vision encoder, shared by the binding
 * (vision_mllama.c) and the forward pass (vision_mllama_encode.c). Not for other users:
 * vision_mllama.h is the interface. */
#ifndef LMRT_MODEL_VISION_MLLAMA_IMPL_H
#define LMRT_MODEL_VISION_MLLAMA_IMPL_H

#include <stdint.h>

#include "backend/backend.h"
#include "model/vision_mllama.h"

#define MLLAMA_MAX_INTERMEDIATE 64   /* most entries of intermediate_layers_indices */

/* One transformer block (local or global). E = n_embd, F = n_ff. */
typedef struct mllama_block {
    tensor_view attn_norm_w, attn_norm_b;   /* [E] F32 */
    tensor_view wq, wk, wv, wo;             /* [E][E], one row per output */
    tensor_view ffn_norm_w, ffn_norm_b;     /* [E] F32 */
    tensor_view fc1_w;                      /* [F][E] */
    tensor_view fc1_b;                      /* [F] F32 */
    tensor_view fc2_w;                      /* [E][F] */
    tensor_view fc2_b;                      /* [E] F32 */
    float gate_attn, gate_ffn;              /* residual gates, tanh already applied (1: none) */
} mllama_block;

struct mllama_vision {
    const backend_vtable *be;
    backend_ctx *bctx;

    int32_t n_embd, n_head, head_dim, n_ff;
    int32_t n_layer, n_global;              /* local, global blocks */
    int32_t image_size, patch_size;         /* tile side, patch side (pixels) */
    int32_t n_side;                         /* patches per tile side */
    int32_t n_pos;                          /* n_side^2 patches + the class token */
    int32_t n_pad;                          /* zero slots padding a tile to a multiple of 8 */
    int32_t max_tiles, n_ratio;             /* max_num_tiles, supported grids */
    int32_t n_inter;                        /* intermediate layers concatenated */
    int32_t inter[MLLAMA_MAX_INTERMEDIATE]; /* their indices, ascending, 0..n_layer */
    int32_t n_embd_text;
    float eps;
    float mean[3], std[3];

    tensor_view patch_embd;    /* [E][3 * p * p]: channel, then kernel row, then column */
    tensor_view class_embd;    /* [1][E] */
    tensor_view pos_embd;      /* [n_pos][E] */
    tensor_view tile_pos;      /* [(n_ratio + 1) * max_tiles * n_pos][E] */
    tensor_view pre_tile;      /* [(n_ratio + 1) * max_tiles][E] */
    tensor_view post_tile;     /* [(n_ratio + 1) * max_tiles][E] */
    tensor_view pre_ln_w, pre_ln_b, post_ln_w, post_ln_b;   /* [E] F32 */
    tensor_view mm_w;          /* [n_embd_text][E * (1 + n_inter)] */
    tensor_view mm_b;          /* [n_embd_text] F32 */
    float g_pos, g_tile, g_pre, g_post;     /* embedding gates as stored (tanh applied) */
    mllama_block *blocks;      /* [n_layer + n_global]: local ones first */
    int32_t n_bound;
};

#endif
