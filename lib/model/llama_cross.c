/* llama_cross.c - the cross-attention side of the mllama decoder (Llama 3.2
 * Vision; doc/formats.md "mllama text decoder"): reading which layers are cross
 * layers and their gates, one cross layer's forward pass, and a sequence's image
 * states (K/V of every cross layer) set from projected image features. The rest
 * of the decoder is llama.c. */
#include "model/llama_cross.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/error.h"
#include "tensor/types.h"

/* ---- binding ------------------------------------------------------------------ */

/* mllama: marks the layers that mllama.attention.cross_attention_layers lists
 * (an array of distinct layer indices) as cross-attention layers. */
lmrt_status llama_cross_read_layers(const model *m, llama_weights *w)
{
    const char *path = m->file->path;
    char key[96];
    snprintf(key, sizeof key, "%s.attention.cross_attention_layers", m->architecture);
    const gguf_kv *kv = gguf_find(m->file, key);
    if (!kv)
        return lmrt_fail(LMRT_E_FORMAT, "%s: an mllama decoder needs key '%s' (the indices "
                         "of its cross-attention layers)", path, key);
    const gguf_value *v = &kv->value;
    uint32_t et = v->type == GGUF_TYPE_ARRAY ? v->v.arr.elem_type : GGUF_TYPE_COUNT;
    bool integer = et == GGUF_TYPE_UINT8 || et == GGUF_TYPE_INT8 || et == GGUF_TYPE_UINT16 ||
                   et == GGUF_TYPE_INT16 || et == GGUF_TYPE_UINT32 || et == GGUF_TYPE_INT32 ||
                   et == GGUF_TYPE_UINT64 || et == GGUF_TYPE_INT64;
    if (!integer)
        return lmrt_fail(LMRT_E_FORMAT, "%s: key '%s' is not an array of integers", path, key);
    if (v->v.arr.count > (uint64_t)w->hp.n_layer)
        return lmrt_fail(LMRT_E_FORMAT, "%s: key '%s' lists %" PRIu64 " layers, the decoder "
                         "has %d", path, key, v->v.arr.count, (int)w->hp.n_layer);
    for (uint64_t i = 0; i < v->v.arr.count; i++) {
        int64_t l = gguf_array_int(v, i);
        /* UINT64 values above INT64_MAX read back negative: out of range too. */
        if (l < 0 || l >= w->hp.n_layer)
            return lmrt_fail(LMRT_E_FORMAT, "%s: key '%s' element %" PRIu64 " is layer %"
                             PRId64 ", outside 0..%d", path, key, i, l, (int)w->hp.n_layer - 1);
        if (w->layers[l].cross)
            return lmrt_fail(LMRT_E_FORMAT, "%s: key '%s' lists layer %" PRId64 " twice",
                             path, key, l);
        w->layers[l].cross = true;
    }
    for (int32_t l = 0; l < w->hp.n_layer; l++) {
        w->layers[l].cross_index = w->layers[l].cross ? w->n_cross++ : -1;
    }
    return LMRT_OK;
}

/* Reads a cross layer's gate (a one-element F32 tensor, stored before tanh) from
 * the mapped file into *out as tanh(gate). */
lmrt_status llama_cross_read_gate(const model *m, const char *name, float *out)
{
    const gguf_tensor *t = gguf_find_tensor(m->file, name);
    if (!t)
        return lmrt_fail(LMRT_E_FORMAT, "%s: the mllama decoder needs tensor '%s', which the "
                         "file does not have", m->file->path, name);
    if (t->n_elements != 1 || t->type != GGML_TYPE_F32)
        return lmrt_fail(LMRT_E_FORMAT, "%s: gate tensor '%s' is %s with %" PRId64 " elements; "
                         "a gate is one F32 value", m->file->path, name,
                         tensor_type_name(t->type), t->n_elements);
    float g;
    memcpy(&g, t->data, sizeof g);
    if (!isfinite(g))
        return lmrt_fail(LMRT_E_FORMAT, "%s: gate tensor '%s' is not finite", m->file->path,
                         name);
    *out = tanhf(g);
    return LMRT_OK;
}

/* ---- forward ------------------------------------------------------------------ */

/* An mllama cross-attention layer over the n rows of the batch, against the
 * image states (st->n_cross_kv > 0). No positions, no KV cache, no mask: every
 * row sees every state row.
 *   x += tanh(g_attn) Wo attn_full(q_norm(Wq norm(x)), K, V)
 *   x += tanh(g_mlp) ffn(x) */
lmrt_status llama_cross_layer(const llama_weights *w, llama_state *st, const llama_layer *L,
                              int32_t n)
{
    const backend_vtable *be = w->be;
    backend_ctx *c = w->bctx;
    const llama_hparams *hp = &w->hp;
    const int32_t E = hp->n_embd, hd = w->head_dim;
    const size_t off = (size_t)L->cross_index * (size_t)st->n_cross_kv * (size_t)st->kv_dim;
    const attention_params ap = {
        .n_tok = n, .n_past = 0, .n_head = hp->n_head, .n_head_kv = hp->n_head_kv,
        .head_dim = hd, .kv_stride = st->kv_dim, .scale = 1.0f / sqrtf((float)hd),
    };
    lmrt_status s;
    if ((s = be->rmsnorm(c, st->x, L->attn_norm.data, E, n, hp->rms_eps, st->xn)) ||
        (s = be->matmul(c, &L->wq, st->xn, n, st->att)) ||
        (s = be->rmsnorm(c, st->att, L->q_norm.data, hd, n * hp->n_head, hp->rms_eps,
                         st->q)) ||
        (s = be->attention_full(c, &ap, st->n_cross_kv, st->q, st->cross_k + off,
                                st->cross_v + off, st->att)) ||
        (s = be->matmul(c, &L->wo, st->att, n, st->tmp)) ||
        (s = be->add_scaled(c, st->x, st->tmp, L->attn_gate, (int64_t)n * E)) ||
        (s = llama_ffn_branch(w, st, L, n)) ||
        (s = be->add_scaled(c, st->x, st->tmp, L->mlp_gate, (int64_t)n * E)))
        return s;
    return LMRT_OK;
}

/* ---- mllama cross-attention states ------------------------------------------ */

size_t llama_state_cross_bytes(const llama_weights *w, int32_t n_rows)
{
    return (size_t)w->n_cross * (size_t)(n_rows > 0 ? n_rows : 0) * (size_t)w->hp.n_head_kv *
           (size_t)w->head_dim * sizeof(float);
}

void llama_state_clear_cross(const llama_weights *w, llama_state *st)
{
    if (!st)
        return;
    w->be->free(w->bctx, st->cross_k);
    w->be->free(w->bctx, st->cross_v);
    st->cross_k = st->cross_v = NULL;
    st->n_cross_kv = 0;
}

/* Checks a request for n_rows rows of states and allocates their K and V. */
static lmrt_status alloc_cross(const llama_weights *w, const llama_state *st, int32_t n_rows,
                               float **k, float **v)
{
    if (!w->n_cross)
        return lmrt_fail(LMRT_E_UNSUPPORTED, "this decoder has no cross-attention layers: "
                         "image states need an mllama model");
    if (n_rows <= 0 || (int64_t)n_rows * w->hp.n_head_kv > INT32_MAX)
        return lmrt_fail(LMRT_E_INVALID_ARG, "image states: %d rows is not a usable count",
                         (int)n_rows);
    size_t rows;
    if (__builtin_mul_overflow((size_t)w->n_cross, (size_t)n_rows, &rows))
        return lmrt_fail(LMRT_E_NOMEM, "image states: %d rows are too many", (int)n_rows);
    lmrt_status s;
    *k = *v = NULL;
    if ((s = llama_alloc_floats(w, rows, (size_t)st->kv_dim, k)) ||
        (s = llama_alloc_floats(w, rows, (size_t)st->kv_dim, v))) {
        w->be->free(w->bctx, *k);
        *k = NULL;
        return s;
    }
    return LMRT_OK;
}

static void replace_cross(const llama_weights *w, llama_state *st, int32_t n_rows, float *k,
                          float *v)
{
    llama_state_clear_cross(w, st);
    st->cross_k = k;
    st->cross_v = v;
    st->n_cross_kv = n_rows;
}

lmrt_status llama_state_set_cross(const llama_weights *w, llama_state *st,
                                  const float *features_host, int32_t n)
{
    if (!features_host)
        return lmrt_fail(LMRT_E_INVALID_ARG, "image states: NULL features");
    const backend_vtable *be = w->be;
    backend_ctx *c = w->bctx;
    const size_t E = (size_t)w->hp.n_embd, kvd = (size_t)st->kv_dim;
    float *feat = NULL, *k = NULL, *v = NULL;
    lmrt_status s = alloc_cross(w, st, n, &k, &v);
    if (s)
        return s;
    if ((s = llama_alloc_floats(w, (size_t)n, E, &feat)) ||
        (s = be->upload(c, feat, features_host, (size_t)n * E * sizeof(float))))
        goto fail;
    for (int32_t l = 0; l < w->hp.n_layer; l++) {
        const llama_layer *L = &w->layers[l];
        if (!L->cross)
            continue;
        float *kl = k + (size_t)L->cross_index * (size_t)n * kvd;   /* [n][kv_dim] */
        float *vl = v + (size_t)L->cross_index * (size_t)n * kvd;   /* [n][kv_dim] */
        /* Wk S goes through vl (free until Wv S) so that k_norm never runs in place. */
        if ((s = be->matmul(c, &L->wk, feat, n, vl)) ||
            (s = be->rmsnorm(c, vl, L->k_norm.data, w->head_dim, n * w->hp.n_head_kv,
                             w->hp.rms_eps, kl)) ||
            (s = be->matmul(c, &L->wv, feat, n, vl)))
            goto fail;
    }
    be->free(c, feat);
    replace_cross(w, st, n, k, v);
    return LMRT_OK;
fail:
    be->free(c, feat);
    be->free(c, k);
    be->free(c, v);
    return s;
}

lmrt_status llama_state_restore_cross(const llama_weights *w, llama_state *st, int32_t n_rows,
                                      const float *k_host, const float *v_host)
{
    if (n_rows == 0) {
        llama_state_clear_cross(w, st);
        return LMRT_OK;
    }
    if (!k_host || !v_host)
        return lmrt_fail(LMRT_E_INVALID_ARG, "image states: NULL %s", !k_host ? "K" : "V");
    float *k, *v;
    lmrt_status s = alloc_cross(w, st, n_rows, &k, &v);
    if (s)
        return s;
    size_t bytes = llama_state_cross_bytes(w, n_rows);
    if ((s = w->be->upload(w->bctx, k, k_host, bytes)) ||
        (s = w->be->upload(w->bctx, v, v_host, bytes))) {
        w->be->free(w->bctx, k);
        w->be->free(w->bctx, v);
        return s;
    }
    replace_cross(w, st, n_rows, k, v);
    return LMRT_OK;
}
