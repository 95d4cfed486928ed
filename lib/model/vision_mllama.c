/* vision_mllama.c - binds the Llama 3.2 Vision (mllama) image encoder of an Ollama
 * GGUF: reads and range-checks the mllama.vision.* keys, checks every v.* and mm.0
 * tensor's shape and type against them, reads the gate scalars from the mapping and
 * binds the weights to the backend. The forward pass is vision_mllama_encode.c. */
#include "model/vision_mllama.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "model/mllama_preprocess.h"
#include "model/vision_mllama_impl.h"
#include "tensor/types.h"

#define KEY(suffix) "mllama.vision." suffix

/* OpenAI CLIP's statistics, which Llama 3.2 Vision's preprocessor uses; Ollama's files
 * carry none, so they apply unless the file has mllama.vision.image_mean/_std. */
static const float CLIP_MEAN[3] = {0.48145466f, 0.4578275f, 0.40821073f};
static const float CLIP_STD[3] = {0.26862954f, 0.26130258f, 0.27577711f};

/* Tensor names of the two layouts Ollama has shipped: its converter's (one file with
 * the text model) and the older vision-only projector blob. */
typedef struct block_names {
    const char *attn_norm, *attn_out, *ffn_norm, *fc1, *fc2;
} block_names;
static const block_names NAMES_UNIFIED = {"attn_norm", "attn_output", "ffn_norm", "ffn_up",
                                          "ffn_down"};
static const block_names NAMES_LEGACY = {"ln1", "attn_out", "ln2", "ffn_down", "ffn_up"};

bool mllama_file_has_vision(const gguf_file *f)
{
    int64_t n;
    return f && gguf_get_int(f, KEY("block_count"), &n) == LMRT_OK && n > 0;
}

static lmrt_status get_hparam(const gguf_file *f, const char *key, int64_t lo, int64_t hi,
                              int32_t *out)
{
    int64_t v;
    lmrt_status st = gguf_get_int(f, key, &v);
    if (st == LMRT_E_NOT_FOUND)
        return lmrt_fail(LMRT_E_FORMAT, "%s: the mllama vision encoder needs key '%s'",
                         f->path, key);
    if (st)
        return st;
    if (v < lo || v > hi)
        return lmrt_fail(LMRT_E_FORMAT, "%s: key '%s' is %" PRId64 ", outside %" PRId64
                         "..%" PRId64, f->path, key, v, lo, hi);
    *out = (int32_t)v;
    return LMRT_OK;
}

/* An optional array of 3 positive (std) or any finite (mean) floats. */
static lmrt_status get_rgb(const gguf_file *f, const char *key, bool positive,
                           const float fallback[3], float out[3])
{
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv) {
        memcpy(out, fallback, 3 * sizeof(float));
        return LMRT_OK;
    }
    const gguf_value *a = &kv->value;
    if (a->type != GGUF_TYPE_ARRAY || a->v.arr.count != 3 ||
        (a->v.arr.elem_type != GGUF_TYPE_FLOAT32 && a->v.arr.elem_type != GGUF_TYPE_FLOAT64))
        return lmrt_fail(LMRT_E_FORMAT, "%s: key '%s' must be an array of 3 floats", f->path,
                         key);
    for (int c = 0; c < 3; c++) {
        double x = gguf_array_float(a, (uint64_t)c);
        if (!isfinite(x) || (positive && !(x > 0.0)) || fabs(x) > 1e6)
            return lmrt_fail(LMRT_E_FORMAT, "%s: key '%s' element %d is %g", f->path, key, c,
                             x);
        out[c] = (float)x;
    }
    return LMRT_OK;
}

static lmrt_status read_intermediate(const gguf_file *f, mllama_vision *v)
{
    const char *key = KEY("intermediate_layers_indices");
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv)
        return lmrt_fail(LMRT_E_FORMAT, "%s: the mllama vision encoder needs key '%s'",
                         f->path, key);
    const gguf_value *a = &kv->value;
    uint32_t et = a->type == GGUF_TYPE_ARRAY ? a->v.arr.elem_type : GGUF_TYPE_COUNT;
    bool integer = et == GGUF_TYPE_UINT8 || et == GGUF_TYPE_INT8 || et == GGUF_TYPE_UINT16 ||
                   et == GGUF_TYPE_INT16 || et == GGUF_TYPE_UINT32 || et == GGUF_TYPE_INT32 ||
                   et == GGUF_TYPE_UINT64 || et == GGUF_TYPE_INT64;
    if (!integer || a->v.arr.count > MLLAMA_MAX_INTERMEDIATE)
        return lmrt_fail(LMRT_E_FORMAT, "%s: key '%s' must be an array of at most %d "
                         "integers", f->path, key, MLLAMA_MAX_INTERMEDIATE);
    v->n_inter = (int32_t)a->v.arr.count;
    for (int32_t i = 0; i < v->n_inter; i++) {
        int64_t x = gguf_array_int(a, (uint64_t)i);
        /* Index i is the input of local block i (n_layer: the last block's output). */
        if (x < 0 || x > v->n_layer || (i > 0 && x <= v->inter[i - 1]))
            return lmrt_fail(LMRT_E_FORMAT, "%s: key '%s' element %d is %" PRId64 "; the "
                             "indices must ascend strictly within 0..%d (block_count)",
                             f->path, key, (int)i, x, (int)v->n_layer);
        v->inter[i] = (int32_t)x;
    }
    return LMRT_OK;
}

static lmrt_status read_hparams(const gguf_file *f, mllama_vision *v)
{
    lmrt_status st;
    int32_t channels = 3;
    if ((st = get_hparam(f, KEY("embedding_length"), 1, 16384, &v->n_embd)) ||
        (st = get_hparam(f, KEY("attention.head_count"), 1, 1024, &v->n_head)) ||
        (st = get_hparam(f, KEY("feed_forward_length"), 1, 262144, &v->n_ff)) ||
        (st = get_hparam(f, KEY("block_count"), 1, 1024, &v->n_layer)) ||
        (st = get_hparam(f, KEY("global.block_count"), 0, 1024, &v->n_global)) ||
        (st = get_hparam(f, KEY("image_size"), 1, MLLAMA_MAX_TILE_SIZE, &v->image_size)) ||
        (st = get_hparam(f, KEY("patch_size"), 1, MLLAMA_MAX_TILE_SIZE, &v->patch_size)) ||
        (st = get_hparam(f, KEY("max_num_tiles"), 1, MLLAMA_MAX_TILES, &v->max_tiles)))
        return st;
    if (gguf_find(f, KEY("num_channels")) &&
        (st = get_hparam(f, KEY("num_channels"), 3, 3, &channels)))
        return st;
    if (v->n_embd % v->n_head)
        return lmrt_fail(LMRT_E_FORMAT, "%s: " KEY("embedding_length") " %d is not a multiple "
                         "of " KEY("attention.head_count") " %d", f->path, (int)v->n_embd,
                         (int)v->n_head);
    if (v->image_size % v->patch_size)
        return lmrt_fail(LMRT_E_FORMAT, "%s: " KEY("image_size") " %d is not a multiple of "
                         KEY("patch_size") " %d", f->path, (int)v->image_size,
                         (int)v->patch_size);
    double eps;
    if ((st = gguf_get_float(f, KEY("attention.layer_norm_epsilon"), &eps))) {
        if (st == LMRT_E_NOT_FOUND)
            return lmrt_fail(LMRT_E_FORMAT, "%s: the mllama vision encoder needs key '%s'",
                             f->path, KEY("attention.layer_norm_epsilon"));
        return st;
    }
    if (!(eps > 0.0 && eps < 1.0))
        return lmrt_fail(LMRT_E_FORMAT, "%s: key '%s' is %g, not in (0, 1)", f->path,
                         KEY("attention.layer_norm_epsilon"), eps);
    v->eps = (float)eps;
    v->head_dim = v->n_embd / v->n_head;
    v->n_side = v->image_size / v->patch_size;
    v->n_pos = v->n_side * v->n_side + 1;
    v->n_pad = (8 - v->n_pos % 8) % 8;
    v->n_ratio = mllama_aspect_ratio_count(v->max_tiles);
    if ((st = read_intermediate(f, v)) ||
        (st = get_rgb(f, KEY("image_mean"), false, CLIP_MEAN, v->mean)) ||
        (st = get_rgb(f, KEY("image_std"), true, CLIP_STD, v->std)))
        return st;
    return LMRT_OK;
}

/* How a tensor's elements must line up with the view the encoder uses. */
typedef enum bind_mode {
    BIND_MATRIX,     /* ne[0] == n_cols exactly, n_rows rows */
    BIND_RESHAPE,    /* any shape of n_cols * n_rows elements (embedding tables, the conv) */
    BIND_VECTOR,     /* F32, n_cols elements, used as a plain float array */
} bind_mode;

static lmrt_status bind_tensor(const gguf_file *f, mllama_vision *v, const char *name,
                               int64_t n_cols, int64_t n_rows, bind_mode mode, tensor_view *out)
{
    const gguf_tensor *t = gguf_find_tensor(f, name);
    if (!t)
        return lmrt_fail(LMRT_E_FORMAT, "%s: the mllama vision encoder needs tensor '%s', "
                         "which the file does not have", f->path, name);
    int64_t want;
    if (__builtin_mul_overflow(n_cols, n_rows, &want) || t->n_elements != want ||
        (mode == BIND_MATRIX && t->ne[0] != n_cols))
        return lmrt_fail(LMRT_E_FORMAT, "%s: tensor '%s' has shape [%" PRId64 ", %" PRId64
                         ", %" PRId64 ", %" PRId64 "]; the hyperparameters need %s%" PRId64
                         " x %" PRId64 " (columns x rows)", f->path, name, t->ne[0], t->ne[1],
                         t->ne[2], t->ne[3], mode == BIND_MATRIX ? "" : "elements of ",
                         n_cols, n_rows);
    if (mode == BIND_VECTOR && t->type != GGML_TYPE_F32)
        return lmrt_fail(LMRT_E_UNSUPPORTED, "%s: tensor '%s' is %s; lmrt expects F32 for "
                         "norm and bias vectors", f->path, name, tensor_type_name(t->type));
    const tensor_type_traits *tt = tensor_type_get(t->type);
    if (!tt || n_cols % tt->block_elems)
        return lmrt_fail(LMRT_E_UNSUPPORTED, "%s: tensor '%s' is %s, whose blocks do not "
                         "divide its rows of %" PRId64, f->path, name,
                         tensor_type_name(t->type), n_cols);
    if (!v->be->supports_type(t->type))
        return lmrt_fail(LMRT_E_UNSUPPORTED, "%s: tensor '%s' is %s, which the %s backend "
                         "cannot compute with", f->path, name, tensor_type_name(t->type),
                         v->be->name);
    tensor_view host = {
        .type = t->type,
        .n_cols = n_cols,
        .n_rows = n_rows,
        .row_bytes = (size_t)(n_cols / tt->block_elems) * tt->block_bytes,
        .data = t->data,
        .name = t->name,
    };
    lmrt_status st = v->be->bind_weight(v->bctx, &host, out);
    if (st)
        return st;
    v->n_bound++;
    return LMRT_OK;
}

/* A residual or embedding gate: one F32 scalar, read from the mapping. Ollama's
 * converter stores it with tanh already applied (1 - tanh for the position gate). */
static lmrt_status read_gate(const gguf_file *f, const char *name, bool required, float *out)
{
    const gguf_tensor *t = gguf_find_tensor(f, name);
    if (!t) {
        if (!required) {
            *out = 1.0f;
            return LMRT_OK;
        }
        return lmrt_fail(LMRT_E_FORMAT, "%s: the mllama vision encoder needs gate tensor "
                         "'%s', which the file does not have", f->path, name);
    }
    if (t->type != GGML_TYPE_F32 || t->n_elements != 1)
        return lmrt_fail(LMRT_E_FORMAT, "%s: gate tensor '%s' must be one F32 value (it is "
                         "%" PRId64 " of %s)", f->path, name, t->n_elements,
                         tensor_type_name(t->type));
    float g;
    memcpy(&g, t->data, sizeof g);
    if (!isfinite(g))
        return lmrt_fail(LMRT_E_FORMAT, "%s: gate tensor '%s' is not finite", f->path, name);
    *out = g;
    return LMRT_OK;
}

static lmrt_status bind_block(const gguf_file *f, mllama_vision *v, const block_names *nm,
                              int32_t i, bool global, mllama_block *b)
{
    const int64_t E = v->n_embd, F = v->n_ff;
    char name[128];
    lmrt_status st;
    const char *pre = global ? "v.global.blk" : "v.blk";
#define BIND(field, part, suffix, cols, rows, mode)                                          \
    snprintf(name, sizeof name, "%s.%d.%s.%s", pre, (int)i, part, suffix);                   \
    if ((st = bind_tensor(f, v, name, cols, rows, mode, &b->field)))                         \
        return st;
    BIND(attn_norm_w, nm->attn_norm, "weight", E, 1, BIND_VECTOR)
    BIND(attn_norm_b, nm->attn_norm, "bias", E, 1, BIND_VECTOR)
    BIND(wq, "attn_q", "weight", E, E, BIND_MATRIX)
    BIND(wk, "attn_k", "weight", E, E, BIND_MATRIX)
    BIND(wv, "attn_v", "weight", E, E, BIND_MATRIX)
    BIND(wo, nm->attn_out, "weight", E, E, BIND_MATRIX)
    BIND(ffn_norm_w, nm->ffn_norm, "weight", E, 1, BIND_VECTOR)
    BIND(ffn_norm_b, nm->ffn_norm, "bias", E, 1, BIND_VECTOR)
    BIND(fc1_w, nm->fc1, "weight", E, F, BIND_MATRIX)
    BIND(fc1_b, nm->fc1, "bias", F, 1, BIND_VECTOR)
    BIND(fc2_w, nm->fc2, "weight", F, E, BIND_MATRIX)
    BIND(fc2_b, nm->fc2, "bias", E, 1, BIND_VECTOR)
#undef BIND
    /* HF gates the global blocks only; a gate on a local block is used if present. */
    snprintf(name, sizeof name, "%s.%d.attn_gate", pre, (int)i);
    if ((st = read_gate(f, name, global, &b->gate_attn)))
        return st;
    snprintf(name, sizeof name, "%s.%d.ffn_gate", pre, (int)i);
    return read_gate(f, name, global, &b->gate_ffn);
}

static void unbind_view(mllama_vision *v, tensor_view *t)
{
    if (t->data)
        v->be->unbind_weight(v->bctx, t);
}

void mllama_vision_free(mllama_vision *v)
{
    if (!v)
        return;
    tensor_view *top[] = {&v->patch_embd, &v->class_embd, &v->pos_embd, &v->tile_pos,
                          &v->pre_tile, &v->post_tile, &v->pre_ln_w, &v->pre_ln_b,
                          &v->post_ln_w, &v->post_ln_b, &v->mm_w, &v->mm_b};
    for (size_t i = 0; i < sizeof top / sizeof top[0]; i++)
        unbind_view(v, top[i]);
    for (int32_t l = 0; v->blocks && l < v->n_layer + v->n_global; l++) {
        mllama_block *b = &v->blocks[l];
        tensor_view *w[] = {&b->attn_norm_w, &b->attn_norm_b, &b->wq, &b->wk, &b->wv, &b->wo,
                            &b->ffn_norm_w, &b->ffn_norm_b, &b->fc1_w, &b->fc1_b, &b->fc2_w,
                            &b->fc2_b};
        for (size_t i = 0; i < sizeof w / sizeof w[0]; i++)
            unbind_view(v, w[i]);
    }
    lmrt_mem_free(v->blocks);
    lmrt_mem_free(v);
}

static lmrt_status bind_embeddings(const gguf_file *f, mllama_vision *v)
{
    const int64_t E = v->n_embd, p = v->patch_size;
    int64_t tile_rows, pos_rows;   /* (n_ratio + 1) * max_tiles, times n_pos */
    if (__builtin_mul_overflow((int64_t)v->n_ratio + 1, (int64_t)v->max_tiles, &tile_rows) ||
        __builtin_mul_overflow(tile_rows, (int64_t)v->n_pos, &pos_rows) || pos_rows > INT32_MAX)
        return lmrt_fail(LMRT_E_FORMAT, "%s: mllama tile embedding tables of %d grids x %d "
                         "tiles x %d positions are too large", f->path, (int)v->n_ratio + 1,
                         (int)v->max_tiles, (int)v->n_pos);
    lmrt_status st;
    if ((st = bind_tensor(f, v, "v.patch_embd.weight", 3 * p * p, E, BIND_RESHAPE,
                          &v->patch_embd)) ||
        (st = bind_tensor(f, v, "v.class_embd", E, 1, BIND_RESHAPE, &v->class_embd)) ||
        (st = bind_tensor(f, v, "v.position_embd.weight", E, v->n_pos, BIND_MATRIX,
                          &v->pos_embd)) ||
        (st = bind_tensor(f, v, "v.tile_position_embd.weight", E, pos_rows, BIND_RESHAPE,
                          &v->tile_pos)) ||
        (st = bind_tensor(f, v, "v.pre_tile_position_embd.weight", E, tile_rows, BIND_RESHAPE,
                          &v->pre_tile)) ||
        (st = bind_tensor(f, v, "v.post_tile_position_embd.weight", E, tile_rows,
                          BIND_RESHAPE, &v->post_tile)) ||
        (st = bind_tensor(f, v, "v.pre_ln.weight", E, 1, BIND_VECTOR, &v->pre_ln_w)) ||
        (st = bind_tensor(f, v, "v.pre_ln.bias", E, 1, BIND_VECTOR, &v->pre_ln_b)) ||
        (st = bind_tensor(f, v, "v.post_ln.weight", E, 1, BIND_VECTOR, &v->post_ln_w)) ||
        (st = bind_tensor(f, v, "v.post_ln.bias", E, 1, BIND_VECTOR, &v->post_ln_b)) ||
        (st = read_gate(f, "v.position_embd.gate", true, &v->g_pos)) ||
        (st = read_gate(f, "v.tile_position_embd.gate", true, &v->g_tile)) ||
        (st = read_gate(f, "v.pre_tile_position_embd.gate", true, &v->g_pre)) ||
        (st = read_gate(f, "v.post_tile_position_embd.gate", true, &v->g_post)))
        return st;
    return LMRT_OK;
}

lmrt_status mllama_vision_bind(const gguf_file *f, int32_t n_embd_text, const backend_vtable *be,
                               backend_ctx *bctx, mllama_vision **out)
{
    if (!f || !be || !out || n_embd_text < 1)
        return lmrt_fail(LMRT_E_INVALID_ARG, "mllama_vision_bind: NULL argument or text "
                         "width %d", (int)n_embd_text);
    if (!be->layernorm || !be->add_bias || !be->add_scaled || !be->gelu ||
        !be->attention_full || !be->im2col)
        return lmrt_fail(LMRT_E_UNSUPPORTED, "the %s backend lacks the encoder ops the mllama "
                         "vision encoder needs", be->name);
    mllama_vision *v = lmrt_calloc(1, sizeof *v);
    if (!v)
        return lmrt_fail(LMRT_E_NOMEM, "out of memory binding the mllama vision encoder");
    v->be = be;
    v->bctx = bctx;
    v->n_embd_text = n_embd_text;
    lmrt_status st;
    if ((st = read_hparams(f, v)))
        goto fail;
    v->blocks = lmrt_calloc((size_t)(v->n_layer + v->n_global), sizeof *v->blocks);
    if (!v->blocks) {
        st = lmrt_fail(LMRT_E_NOMEM, "out of memory binding the mllama vision encoder");
        goto fail;
    }
    const block_names *nm = gguf_find_tensor(f, "v.blk.0.ln1.weight") ? &NAMES_LEGACY
                                                                       : &NAMES_UNIFIED;
    if ((st = bind_embeddings(f, v)))
        goto fail;
    for (int32_t l = 0; l < v->n_layer + v->n_global; l++) {
        bool global = l >= v->n_layer;
        if ((st = bind_block(f, v, nm, global ? l - v->n_layer : l, global, &v->blocks[l])))
            goto fail;
    }
    int64_t n_cat = (int64_t)v->n_embd * (1 + v->n_inter);
    if ((st = bind_tensor(f, v, "mm.0.weight", n_cat, n_embd_text, BIND_MATRIX, &v->mm_w)) ||
        (st = bind_tensor(f, v, "mm.0.bias", n_embd_text, 1, BIND_VECTOR, &v->mm_b)))
        goto fail;
    *out = v;
    return LMRT_OK;
fail:
    mllama_vision_free(v);
    return st;
}

int32_t mllama_vision_n_bound(const mllama_vision *v)
{
    return v ? v->n_bound : 0;
}

int32_t mllama_vision_tokens_per_tile(const mllama_vision *v)
{
    return v ? v->n_pos : 0;
}

int32_t mllama_vision_max_tiles(const mllama_vision *v)
{
    return v ? v->max_tiles : 0;
}
