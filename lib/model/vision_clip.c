/* vision_clip.c - the CLIP ViT + LLaVA MLP projector of llama.cpp mmproj files:
 * reads the clip.* keys, binds the v.* and mm.* tensors, and runs one image as one
 * backend op per line:
 *   pix = normalize(resize(pad_square(img)))           [S][S][3]
 *   x   = [cls ;] Wpatch im2col(pix) + bpatch, + pos    [n_pos][n_embd]
 *   x   = pre_ln(x); per run block: x += attn(ln1 x); x += mlp(ln2 x); post_ln(x)
 *   out = W2 gelu(W0 x[patches] + b0) + b2              [n_patches][n_embd_text]
 * Which backend runs an op is not this file's business. */
#include "model/vision_clip.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "model/image_preprocess.h"
#include "tensor/types.h"

#define CLIP_MAX_DIM (1 << 16)       /* sanity bounds on sizes read from the file */
#define CLIP_MAX_PATCHES (1 << 16)

typedef struct clip_layer {
    tensor_view ln1_w, ln1_b;        /* [1 row][n_embd] F32 */
    tensor_view wq, bq;              /* [n_embd rows][n_embd], [1][n_embd] (bias optional) */
    tensor_view wk, bk;
    tensor_view wv, bv;
    tensor_view wo, bo;
    tensor_view ln2_w, ln2_b;
    tensor_view fc1_w, fc1_b;        /* [n_ff rows][n_embd], [1][n_ff] */
    tensor_view fc2_w, fc2_b;        /* [n_embd rows][n_ff], [1][n_embd] */
} clip_layer;

struct clip_encoder {
    const backend_vtable *be;
    backend_ctx *bctx;
    const char *path;                /* the file's, for messages */
    int32_t image_size, patch_size, n_side;  /* n_side = image_size / patch_size */
    int32_t n_embd, n_ff, n_head, head_dim;
    int32_t n_run;                   /* blocks run (<= block_count) */
    int32_t n_patches, n_pos;        /* n_pos = n_patches (+1 with a class token) */
    int32_t n_mm, n_text;            /* projector hidden and output widths */
    float eps, mean[3], std[3];
    uint8_t pad_fill[3];
    int32_t ffn_act;                 /* backend_gelu_kind */
    tensor_view patch_w;             /* [n_embd rows][3 * p * p], columns [c][kh][kw] */
    tensor_view patch_b;             /* [1][n_embd] F32, optional */
    tensor_view class_embd;          /* [1 row][n_embd], optional */
    tensor_view pos_embd;            /* [n_pos rows][n_embd] */
    tensor_view pre_w, pre_b;        /* [1][n_embd] F32, optional */
    tensor_view post_w, post_b;      /* [1][n_embd] F32, optional */
    tensor_view mm0_w, mm0_b;        /* [n_mm rows][n_embd], [1][n_mm] */
    tensor_view mm2_w, mm2_b;        /* [n_text rows][n_mm], [1][n_text] */
    clip_layer *layers;              /* [n_run] */
    int32_t *pos_ids;                /* [n_pos] host: 0 .. n_pos-1 */
    tensor_view **bound;             /* every view bound, to unbind */
    int32_t n_bound, cap_bound;
};

/* ---- keys ---------------------------------------------------------------- */

bool clip_file_has_vision(const gguf_file *f)
{
    bool b = false;
    return f && gguf_get_bool(f, "clip.has_vision_encoder", &b) == LMRT_OK && b;
}

static lmrt_status key_int(const gguf_file *f, const char *key, int64_t lo, int64_t hi,
                           int32_t *out)
{
    int64_t v;
    lmrt_status st = gguf_get_int(f, key, &v);
    if (st == LMRT_E_NOT_FOUND)
        return lmrt_fail(LMRT_E_FORMAT, "%s: the CLIP encoder needs key '%s', which the file "
                         "does not have", f->path, key);
    if (st)
        return st;
    if (v < lo || v > hi)
        return lmrt_fail(LMRT_E_FORMAT, "%s: key '%s' is %" PRId64 " (must be %" PRId64
                         "..%" PRId64 ")", f->path, key, v, lo, hi);
    *out = (int32_t)v;
    return LMRT_OK;
}

static lmrt_status key_bool(const gguf_file *f, const char *key, bool *out)
{
    *out = false;
    lmrt_status st = gguf_get_bool(f, key, out);
    return st == LMRT_E_NOT_FOUND ? LMRT_OK : st;
}

/* A 3-float array key (image_mean, image_std); std must be positive. */
static lmrt_status key_rgb(const gguf_file *f, const char *key, bool positive, float out[3])
{
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv)
        return lmrt_fail(LMRT_E_FORMAT, "%s: the CLIP encoder needs key '%s', which the file "
                         "does not have", f->path, key);
    const gguf_value *v = &kv->value;
    if (v->type != GGUF_TYPE_ARRAY || v->v.arr.count != 3 ||
        (v->v.arr.elem_type != GGUF_TYPE_FLOAT32 && v->v.arr.elem_type != GGUF_TYPE_FLOAT64))
        return lmrt_fail(LMRT_E_FORMAT, "%s: key '%s' must be an array of 3 floats", f->path,
                         key);
    for (int c = 0; c < 3; c++) {
        double x = gguf_array_float(v, (uint64_t)c);
        if (!isfinite(x) || (positive && !(x > 0.0)) || fabs(x) > 1e6)
            return lmrt_fail(LMRT_E_FORMAT, "%s: key '%s' element %d is %g", f->path, key, c, x);
        out[c] = (float)x;
    }
    return LMRT_OK;
}

/* The projector type: clip.projector_type, else clip.vision.projector_type, else
 * "mlp" for old LLaVA files that only set clip.has_llava_projector. */
static lmrt_status check_projector(const gguf_file *f)
{
    gguf_str s = {0};
    lmrt_status st = gguf_get_str(f, "clip.projector_type", &s);
    if (st == LMRT_E_NOT_FOUND)
        st = gguf_get_str(f, "clip.vision.projector_type", &s);
    if (st == LMRT_E_NOT_FOUND) {
        bool llava = false;
        if ((st = key_bool(f, "clip.has_llava_projector", &llava)))
            return st;
        if (!llava)
            return lmrt_fail(LMRT_E_FORMAT, "%s: the file has no 'clip.projector_type' (nor "
                             "clip.vision.projector_type or clip.has_llava_projector)", f->path);
        return LMRT_OK;
    }
    if (st)
        return st;
    if (s.len != 3 || memcmp(s.ptr, "mlp", 3) != 0)
        return lmrt_fail(LMRT_E_UNSUPPORTED, "%s: projector type '%.*s' is not supported "
                         "(lmrt runs 'mlp', the LLaVA 1.5 projector)", f->path,
                         (int)(s.len > 64 ? 64 : s.len), s.ptr);
    return LMRT_OK;
}

/* Hyperparameters: sizes, eps, normalization, activation, blocks to run. */
static lmrt_status read_hparams(const gguf_file *f, clip_encoder *e)
{
    int32_t n_block = 0;
    lmrt_status st;
    if ((st = check_projector(f)) ||
        (st = key_int(f, "clip.vision.image_size", 1, 8192, &e->image_size)) ||
        (st = key_int(f, "clip.vision.patch_size", 1, e->image_size, &e->patch_size)) ||
        (st = key_int(f, "clip.vision.embedding_length", 1, CLIP_MAX_DIM, &e->n_embd)) ||
        (st = key_int(f, "clip.vision.feed_forward_length", 1, 4 * CLIP_MAX_DIM, &e->n_ff)) ||
        (st = key_int(f, "clip.vision.attention.head_count", 1, e->n_embd, &e->n_head)) ||
        (st = key_int(f, "clip.vision.block_count", 1, 1024, &n_block)) ||
        (st = key_rgb(f, "clip.vision.image_mean", false, e->mean)) ||
        (st = key_rgb(f, "clip.vision.image_std", true, e->std)))
        return st;
    if (e->n_embd % e->n_head != 0)
        return lmrt_fail(LMRT_E_FORMAT, "%s: embedding_length %d is not a multiple of "
                         "head_count %d", f->path, (int)e->n_embd, (int)e->n_head);
    e->head_dim = e->n_embd / e->n_head;
    double eps;
    st = gguf_get_float(f, "clip.vision.attention.layer_norm_epsilon", &eps);
    if (st == LMRT_E_NOT_FOUND)
        return lmrt_fail(LMRT_E_FORMAT, "%s: the CLIP encoder needs key "
                         "'clip.vision.attention.layer_norm_epsilon'", f->path);
    if (st)
        return st;
    if (!(eps > 0.0 && eps < 1.0))
        return lmrt_fail(LMRT_E_FORMAT, "%s: layer_norm_epsilon %g (must be in (0, 1))",
                         f->path, eps);
    e->eps = (float)eps;
    bool gelu, silu;
    if ((st = key_bool(f, "clip.use_gelu", &gelu)) || (st = key_bool(f, "clip.use_silu", &silu)))
        return st;
    if (silu)
        return lmrt_fail(LMRT_E_UNSUPPORTED, "%s: clip.use_silu: a SiLU encoder MLP is not "
                         "supported (lmrt runs GELU and quick GELU)", f->path);
    e->ffn_act = gelu ? BACKEND_GELU_ERF : BACKEND_GELU_QUICK;
    const char *unsupported[] = {"clip.vision.image_grid_pinpoints",
                                 "clip.vision.mm_patch_merge_type"};
    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++)
        if (gguf_find(f, unsupported[i]))
            return lmrt_fail(LMRT_E_UNSUPPORTED, "%s: key '%s': LLaVA-NeXT style tiled input is "
                             "not supported (lmrt runs one %d x %d view)", f->path,
                             unsupported[i], (int)e->image_size, (int)e->image_size);
    /* Which block's output feeds the projector: an explicit single feature layer, or
     * LLaVA's default, the input of the last block (hidden_states[-2]). */
    const gguf_kv *fl = gguf_find(f, "clip.vision.feature_layer");
    if (fl) {
        const gguf_value *v = &fl->value;
        if (v->type != GGUF_TYPE_ARRAY || v->v.arr.strs || v->v.arr.count < 1 ||
            v->v.arr.elem_type == GGUF_TYPE_FLOAT32 || v->v.arr.elem_type == GGUF_TYPE_FLOAT64)
            return lmrt_fail(LMRT_E_FORMAT, "%s: key 'clip.vision.feature_layer' must be an "
                             "array of integers", f->path);
        if (v->v.arr.count != 1)
            return lmrt_fail(LMRT_E_UNSUPPORTED, "%s: clip.vision.feature_layer lists %" PRIu64
                             " layers; stacking several layers' features is not supported",
                             f->path, v->v.arr.count);
        int64_t k = gguf_array_int(v, 0);
        if (k < 1 || k > n_block)
            return lmrt_fail(LMRT_E_FORMAT, "%s: clip.vision.feature_layer %" PRId64 " is not "
                             "a block output (1..%d)", f->path, k, (int)n_block);
        e->n_run = (int32_t)k;
    } else {
        if (n_block < 2)
            return lmrt_fail(LMRT_E_FORMAT, "%s: block_count %d: a LLaVA projector reads the "
                             "next-to-last block, so at least 2 are needed", f->path,
                             (int)n_block);
        e->n_run = n_block - 1;
    }
    e->n_side = e->image_size / e->patch_size;
    e->n_patches = e->n_side * e->n_side;
    if (e->n_patches > CLIP_MAX_PATCHES)
        return lmrt_fail(LMRT_E_FORMAT, "%s: image_size %d / patch_size %d gives %d patches "
                         "(lmrt takes at most %d)", f->path, (int)e->image_size,
                         (int)e->patch_size, (int)e->n_patches, CLIP_MAX_PATCHES);
    for (int c = 0; c < 3; c++) {
        float v = e->mean[c] * 255.0f;
        e->pad_fill[c] = (uint8_t)(v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v);
    }
    return LMRT_OK;
}

/* ---- binding ------------------------------------------------------------- */

static lmrt_status remember_bound(clip_encoder *e, tensor_view *v)
{
    if (e->n_bound == e->cap_bound) {
        int32_t cap = e->cap_bound ? 2 * e->cap_bound : 32;
        tensor_view **p = lmrt_realloc(e->bound, (size_t)cap * sizeof *p);
        if (!p)
            return lmrt_fail(LMRT_E_NOMEM, "out of memory binding the CLIP encoder");
        e->bound = p;
        e->cap_bound = cap;
    }
    e->bound[e->n_bound++] = v;
    return LMRT_OK;
}

/* Binds tensor `name` seen as n_rows x n_cols. dims (n_dims, ne[]) must match the
 * file exactly; f32_only for vectors the ops read directly. Missing and optional:
 * *out stays zeroed. */
static lmrt_status bind_tensor(const gguf_file *f, clip_encoder *e, const char *name,
                               uint32_t n_dims, const int64_t *ne, int64_t n_cols,
                               int64_t n_rows, bool required, bool f32_only, tensor_view *out)
{
    const gguf_tensor *t = gguf_find_tensor(f, name);
    if (!t) {
        if (!required)
            return LMRT_OK;
        return lmrt_fail(LMRT_E_FORMAT, "%s: the CLIP encoder needs tensor '%s', which the "
                         "file does not have", f->path, name);
    }
    bool ok = t->n_dims == n_dims;
    for (uint32_t d = 0; ok && d < n_dims; d++)
        ok = t->ne[d] == ne[d];
    if (!ok) {
        char want[96] = "", have[96] = "";
        for (uint32_t d = 0; d < n_dims; d++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%" PRId64,
                     d ? ", " : "", ne[d]);
        for (uint32_t d = 0; d < t->n_dims; d++)
            snprintf(have + strlen(have), sizeof have - strlen(have), "%s%" PRId64,
                     d ? ", " : "", t->ne[d]);
        return lmrt_fail(LMRT_E_FORMAT, "%s: tensor '%s' has shape [%s], the hyperparameters "
                         "need [%s]", f->path, name, have, want);
    }
    if (f32_only && t->type != GGML_TYPE_F32)
        return lmrt_fail(LMRT_E_UNSUPPORTED, "%s: tensor '%s' is %s; lmrt expects F32 for "
                         "norm and bias vectors", f->path, name, tensor_type_name(t->type));
    if (!e->be->supports_type(t->type))
        return lmrt_fail(LMRT_E_UNSUPPORTED, "%s: tensor '%s' is %s, which the %s backend "
                         "cannot compute with", f->path, name, tensor_type_name(t->type),
                         e->be->name);
    const tensor_type_traits *tt = tensor_type_get(t->type);
    if (!tt || n_cols % tt->block_elems != 0 || t->n_bytes % (uint64_t)n_rows != 0)
        return lmrt_fail(LMRT_E_FORMAT, "%s: tensor '%s' (%s) cannot be read as %" PRId64
                         " rows of %" PRId64, f->path, name, tensor_type_name(t->type), n_rows,
                         n_cols);
    tensor_view host = {
        .type = t->type,
        .n_cols = n_cols,
        .n_rows = n_rows,
        .row_bytes = (size_t)(t->n_bytes / (uint64_t)n_rows),
        .data = t->data,
        .name = t->name,
    };
    lmrt_status st = e->be->bind_weight(e->bctx, &host, out);
    if (st)
        return st;
    if ((st = remember_bound(e, out))) {
        e->be->unbind_weight(e->bctx, out);
        memset(out, 0, sizeof *out);
    }
    return st;
}

static lmrt_status bind_vec(const gguf_file *f, clip_encoder *e, const char *name, int64_t n,
                            bool required, tensor_view *out)
{
    const int64_t ne[1] = {n};
    return bind_tensor(f, e, name, 1, ne, n, 1, required, true, out);
}

static lmrt_status bind_mat(const gguf_file *f, clip_encoder *e, const char *name,
                            int64_t n_cols, int64_t n_rows, tensor_view *out)
{
    const int64_t ne[2] = {n_cols, n_rows};
    return bind_tensor(f, e, name, 2, ne, n_cols, n_rows, true, false, out);
}

/* A layernorm's weight and bias, both or neither (when optional). */
static lmrt_status bind_norm(const gguf_file *f, clip_encoder *e, const char *prefix,
                             bool required, tensor_view *w, tensor_view *b)
{
    char name[96];
    snprintf(name, sizeof name, "%s.weight", prefix);
    lmrt_status st = bind_vec(f, e, name, e->n_embd, required, w);
    if (st || !w->data)
        return st;
    snprintf(name, sizeof name, "%s.bias", prefix);
    return bind_vec(f, e, name, e->n_embd, true, b);
}

/* A linear layer n_in -> n_out: weight required, bias optional. */
static lmrt_status bind_linear(const gguf_file *f, clip_encoder *e, const char *prefix,
                               int64_t n_in, int64_t n_out, bool bias_required, tensor_view *w,
                               tensor_view *b)
{
    char name[96];
    snprintf(name, sizeof name, "%s.weight", prefix);
    lmrt_status st = bind_mat(f, e, name, n_in, n_out, w);
    if (st)
        return st;
    snprintf(name, sizeof name, "%s.bias", prefix);
    return bind_vec(f, e, name, n_out, bias_required, b);
}

/* fc1 (n_embd -> n_ff) is "ffn_up" in today's converters and "ffn_down" in the
 * legacy LLaVA converter; the shapes tell which (a square MLP keeps today's names). */
static bool ffn_names_swapped(const gguf_file *f, const clip_encoder *e, int32_t l)
{
    char name[96];
    snprintf(name, sizeof name, "v.blk.%d.ffn_down.weight", (int)l);
    const gguf_tensor *down = gguf_find_tensor(f, name);
    return e->n_ff != e->n_embd && down && down->n_dims == 2 && down->ne[0] == e->n_embd &&
           down->ne[1] == e->n_ff;
}

static lmrt_status bind_layer(const gguf_file *f, clip_encoder *e, int32_t l)
{
    clip_layer *L = &e->layers[l];
    const int64_t E = e->n_embd, F = e->n_ff;
    bool swapped = ffn_names_swapped(f, e, l);
    char p[64], name[96];
    snprintf(p, sizeof p, "v.blk.%d", (int)l);
    lmrt_status st;
#define PFX(suffix) (snprintf(name, sizeof name, "%s." suffix, p), name)
    if ((st = bind_norm(f, e, PFX("ln1"), true, &L->ln1_w, &L->ln1_b)) ||
        (st = bind_linear(f, e, PFX("attn_q"), E, E, false, &L->wq, &L->bq)) ||
        (st = bind_linear(f, e, PFX("attn_k"), E, E, false, &L->wk, &L->bk)) ||
        (st = bind_linear(f, e, PFX("attn_v"), E, E, false, &L->wv, &L->bv)) ||
        (st = bind_linear(f, e, PFX("attn_out"), E, E, false, &L->wo, &L->bo)) ||
        (st = bind_norm(f, e, PFX("ln2"), true, &L->ln2_w, &L->ln2_b)) ||
        (st = bind_linear(f, e, swapped ? PFX("ffn_down") : PFX("ffn_up"), E, F, false,
                          &L->fc1_w, &L->fc1_b)) ||
        (st = bind_linear(f, e, swapped ? PFX("ffn_up") : PFX("ffn_down"), F, E, false,
                          &L->fc2_w, &L->fc2_b)))
        return st;
#undef PFX
    return LMRT_OK;
}

static lmrt_status bind_all(const gguf_file *f, clip_encoder *e)
{
    const int64_t E = e->n_embd, P = e->patch_size;
    const gguf_tensor *cls = gguf_find_tensor(f, "v.class_embd");
    e->n_pos = e->n_patches + (cls ? 1 : 0);
    const int64_t patch_ne[4] = {P, P, 3, E}, cls_ne[1] = {E}, pos_ne[2] = {E, e->n_pos};
    lmrt_status st;
    if ((st = bind_tensor(f, e, "v.patch_embd.weight", 4, patch_ne, 3 * P * P, E, true, false,
                          &e->patch_w)) ||
        (st = bind_vec(f, e, "v.patch_embd.bias", E, false, &e->patch_b)) ||
        (st = bind_tensor(f, e, "v.class_embd", 1, cls_ne, E, 1, false, false,
                          &e->class_embd)) ||
        (st = bind_tensor(f, e, "v.position_embd.weight", 2, pos_ne, E, e->n_pos, true, false,
                          &e->pos_embd)) ||
        (st = bind_norm(f, e, "v.pre_ln", false, &e->pre_w, &e->pre_b)) ||
        (st = bind_norm(f, e, "v.post_ln", false, &e->post_w, &e->post_b)))
        return st;
    for (int32_t l = 0; l < e->n_run; l++)
        if ((st = bind_layer(f, e, l)))
            return st;
    /* mm.0's output width is the projector's hidden size; mm.2 must end in the text
     * model's embedding width. */
    const gguf_tensor *mm0 = gguf_find_tensor(f, "mm.0.weight");
    if (!mm0)
        return lmrt_fail(LMRT_E_FORMAT, "%s: the CLIP encoder needs tensor 'mm.0.weight', which "
                         "the file does not have", f->path);
    if (mm0->n_dims != 2 || mm0->ne[1] < 1 || mm0->ne[1] > 4 * CLIP_MAX_DIM)
        return lmrt_fail(LMRT_E_FORMAT, "%s: tensor 'mm.0.weight' must be a matrix of [%d, N] "
                         "(N <= %d)", f->path, (int)e->n_embd, 4 * CLIP_MAX_DIM);
    e->n_mm = (int32_t)mm0->ne[1];
    const gguf_tensor *mm2 = gguf_find_tensor(f, "mm.2.weight");
    if (mm2 && mm2->n_dims == 2 && mm2->ne[0] == e->n_mm && mm2->ne[1] != e->n_text)
        return lmrt_fail(LMRT_E_FORMAT, "%s: the projector's output 'mm.2.weight' is %" PRId64
                         " wide, the text model's embeddings %d", f->path, mm2->ne[1],
                         (int)e->n_text);
    if ((st = bind_linear(f, e, "mm.0", E, e->n_mm, true, &e->mm0_w, &e->mm0_b)) ||
        (st = bind_linear(f, e, "mm.2", e->n_mm, e->n_text, true, &e->mm2_w, &e->mm2_b)))
        return st;
    return LMRT_OK;
}

lmrt_status clip_encoder_bind(const gguf_file *f, int32_t n_embd_text, const backend_vtable *be,
                              backend_ctx *bctx, clip_encoder **out)
{
    if (!f || !be || !out || n_embd_text < 1)
        return lmrt_fail(LMRT_E_INVALID_ARG, "clip_encoder_bind: NULL argument or text "
                         "n_embd %d", (int)n_embd_text);
    if (!clip_file_has_vision(f))
        return lmrt_fail(LMRT_E_FORMAT, "%s: clip.has_vision_encoder is not true: the file has "
                         "no image encoder", f->path);
    if (be->size < sizeof *be)
        return lmrt_fail(LMRT_E_UNSUPPORTED, "the %s backend predates the encoder ops the "
                         "CLIP encoder needs", be->name);
    const char *ops[] = {"layernorm", "add_bias", "gelu", "attention_full", "im2col"};
    bool have[] = {be->layernorm, be->add_bias, be->gelu, be->attention_full, be->im2col};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (!have[i])
            return lmrt_fail(LMRT_E_UNSUPPORTED, "the %s backend has no '%s' op, which the "
                             "CLIP encoder needs", be->name, ops[i]);
    clip_encoder *e = lmrt_calloc(1, sizeof *e);
    if (!e)
        return lmrt_fail(LMRT_E_NOMEM, "out of memory binding the CLIP encoder");
    e->be = be;
    e->bctx = bctx;
    e->path = f->path;
    e->n_text = n_embd_text;
    lmrt_status st = read_hparams(f, e);
    if (st)
        goto fail;
    e->layers = lmrt_calloc((size_t)e->n_run, sizeof *e->layers);
    if (!e->layers) {
        st = lmrt_fail(LMRT_E_NOMEM, "out of memory binding the CLIP encoder");
        goto fail;
    }
    if ((st = bind_all(f, e)))
        goto fail;
    e->pos_ids = lmrt_calloc((size_t)e->n_pos, sizeof *e->pos_ids);
    if (!e->pos_ids) {
        st = lmrt_fail(LMRT_E_NOMEM, "out of memory binding the CLIP encoder");
        goto fail;
    }
    for (int32_t i = 0; i < e->n_pos; i++)
        e->pos_ids[i] = i;
    *out = e;
    return LMRT_OK;
fail:
    clip_encoder_free(e);
    return st;
}

void clip_encoder_free(clip_encoder *e)
{
    if (!e)
        return;
    for (int32_t i = e->n_bound - 1; i >= 0; i--)
        e->be->unbind_weight(e->bctx, e->bound[i]);
    lmrt_mem_free(e->bound);
    lmrt_mem_free(e->pos_ids);
    lmrt_mem_free(e->layers);
    lmrt_mem_free(e);
}

int32_t clip_encoder_n_tokens(const clip_encoder *e)
{
    return e ? e->n_patches : 0;
}

int32_t clip_encoder_n_bound(const clip_encoder *e)
{
    return e ? e->n_bound : 0;
}

/* ---- the forward pass ---------------------------------------------------- */

/* y (+)= W x + b for n rows; b may be absent. */
static lmrt_status linear(const clip_encoder *e, const tensor_view *w, const tensor_view *b,
                          const float *x, int32_t n, float *y)
{
    lmrt_status st = e->be->matmul(e->bctx, w, x, n, y);
    if (st || !b->data)
        return st;
    return e->be->add_bias(e->bctx, y, b->data, (int32_t)w->n_rows, n);
}

enum { B_PIX, B_COLS, B_X, B_XN, B_Q, B_K, B_V, B_ATT, B_TMP, B_H, B_OUT, B_COUNT };

static lmrt_status run(clip_encoder *e, float *const *b, const float *pix_host, float *out_host)
{
    const backend_vtable *be = e->be;
    backend_ctx *c = e->bctx;
    const int32_t E = e->n_embd, N = e->n_pos, S = e->image_size, P = e->patch_size;
    const int32_t first = e->class_embd.data ? 1 : 0;     /* row of patch 0 in x */
    float *x = b[B_X], *xn = b[B_XN], *tmp = b[B_TMP], *h = b[B_H];
    attention_params ap = {
        .n_tok = N, .n_past = 0, .n_head = e->n_head, .n_head_kv = e->n_head,
        .head_dim = e->head_dim, .kv_stride = E, .scale = 1.0f / sqrtf((float)e->head_dim),
    };
    lmrt_status st;
    static const int32_t zero = 0;
    /* embeddings: [class;] patches, plus positions */
    if ((st = be->upload(c, b[B_PIX], pix_host, (size_t)S * (size_t)S * 3 * sizeof(float))) ||
        (st = be->im2col(c, b[B_PIX], 3, S, S, P, P, P, P, 0, 0, b[B_COLS])) ||
        (st = linear(e, &e->patch_w, &e->patch_b, b[B_COLS], e->n_patches,
                     x + (size_t)first * (size_t)E)) ||
        (first && (st = be->get_rows(c, &e->class_embd, &zero, 1, x))) ||
        (st = be->get_rows(c, &e->pos_embd, e->pos_ids, N, tmp)) ||
        (st = be->add(c, x, tmp, (int64_t)N * E)))
        return st;
    if (e->pre_w.data && (st = be->layernorm(c, x, e->pre_w.data, e->pre_b.data, E, N, e->eps,
                                             x)))
        return st;
    for (int32_t l = 0; l < e->n_run; l++) {
        const clip_layer *L = &e->layers[l];
        if ((st = be->layernorm(c, x, L->ln1_w.data, L->ln1_b.data, E, N, e->eps, xn)) ||
            (st = linear(e, &L->wq, &L->bq, xn, N, b[B_Q])) ||
            (st = linear(e, &L->wk, &L->bk, xn, N, b[B_K])) ||
            (st = linear(e, &L->wv, &L->bv, xn, N, b[B_V])) ||
            (st = be->attention_full(c, &ap, N, b[B_Q], b[B_K], b[B_V], b[B_ATT])) ||
            (st = linear(e, &L->wo, &L->bo, b[B_ATT], N, tmp)) ||
            (st = be->add(c, x, tmp, (int64_t)N * E)))
            return st;
        if ((st = be->layernorm(c, x, L->ln2_w.data, L->ln2_b.data, E, N, e->eps, xn)) ||
            (st = linear(e, &L->fc1_w, &L->fc1_b, xn, N, h)) ||
            (st = be->gelu(c, h, (int64_t)N * e->n_ff, e->ffn_act)) ||
            (st = linear(e, &L->fc2_w, &L->fc2_b, h, N, tmp)) ||
            (st = be->add(c, x, tmp, (int64_t)N * E)))
            return st;
    }
    if (e->post_w.data && (st = be->layernorm(c, x, e->post_w.data, e->post_b.data, E, N,
                                              e->eps, x)))
        return st;
    /* projector over the patch rows (the class token is dropped) */
    const int32_t NP = e->n_patches;
    if ((st = linear(e, &e->mm0_w, &e->mm0_b, x + (size_t)first * (size_t)E, NP, h)) ||
        (st = be->gelu(c, h, (int64_t)NP * e->n_mm, BACKEND_GELU_ERF)) ||
        (st = linear(e, &e->mm2_w, &e->mm2_b, h, NP, b[B_OUT])))
        return st;
    return be->download(c, out_host, b[B_OUT], (size_t)NP * (size_t)e->n_text * sizeof(float));
}

lmrt_status clip_encode_image(clip_encoder *e, const image_rgb8 *img, float *out_host)
{
    if (!e || !img || !img->pixels || img->width < 1 || img->height < 1 || !out_host)
        return lmrt_fail(LMRT_E_INVALID_ARG, "clip_encode_image: NULL or empty argument");
    const uint64_t S = (uint64_t)e->image_size, N = (uint64_t)e->n_pos, E = (uint64_t)e->n_embd;
    const uint64_t F = (uint64_t)e->n_ff, MM = (uint64_t)e->n_mm, NP = (uint64_t)e->n_patches;
    const uint64_t H = F > MM ? F : MM, P = (uint64_t)e->patch_size;
    /* read_hparams bounds every factor (sizes <= 2^18, patches <= 2^16, n_text < 2^31):
     * the products fit 64 bits. */
    const uint64_t floats[B_COUNT] = {
        [B_PIX] = S * S * 3, [B_COLS] = NP * 3 * P * P, [B_X] = N * E, [B_XN] = N * E,
        [B_Q] = N * E, [B_K] = N * E, [B_V] = N * E, [B_ATT] = N * E, [B_TMP] = N * E,
        [B_H] = N * H, [B_OUT] = NP * (uint64_t)e->n_text,
    };
    float *buf[B_COUNT] = {0};
    image_rgb8 square = {0};
    float *pix = NULL;                   /* host [S][S][3] */
    lmrt_status st;
    for (int i = 0; i < B_COUNT; i++)
        if (floats[i] > SIZE_MAX / sizeof(float))
            return lmrt_fail(LMRT_E_NOMEM, "CLIP encoder: activations too large for this "
                             "address space");
    if ((st = image_pad_square(img, e->pad_fill, &square)))
        goto done;
    pix = lmrt_malloc((size_t)floats[B_PIX] * sizeof(float));
    if (!pix) {
        st = lmrt_fail(LMRT_E_NOMEM, "out of memory for a %d x %d image", (int)e->image_size,
                       (int)e->image_size);
        goto done;
    }
    if ((st = image_resize(&square, e->image_size, e->image_size, IMAGE_FILTER_BICUBIC, pix)))
        goto done;
    image_normalize(pix, (int64_t)(S * S), e->mean, e->std);
    for (int i = 0; i < B_COUNT; i++) {
        void *p;
        if ((st = e->be->alloc(e->bctx, (size_t)floats[i] * sizeof(float), &p)))
            goto done;
        buf[i] = p;
    }
    st = run(e, buf, pix, out_host);
done:
    for (int i = B_COUNT - 1; i >= 0; i--)
        e->be->free(e->bctx, buf[i]);
    lmrt_mem_free(pix);
    image_rgb8_free(&square);
    return st;
}
