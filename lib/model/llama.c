/* llama.c - the Llama decoder (general.architecture "llama", and "mllama": Llama
 * 3.2 Vision's decoder with cross-attention layers): binds its weights to a
 * backend, owns the per-sequence KV cache, image states and activations, and
 * runs the forward pass as one backend op per line, like the math:
 *   x = embd[ids]
 *   per layer: x += Wo attn(rope(Wq norm(x)), rope(Wk norm(x)), Wv norm(x))
 *              x += Wdown (silu(Wgate norm(x)) * Wup norm(x))
 *   cross layer (only once image states S are set; doc/formats.md):
 *              x += tanh(g_attn) Wo attn_full(qnorm(Wq norm(x)), knorm(Wk S), Wv S)
 *              x += tanh(g_mlp) Wdown (silu(Wgate norm(x)) * Wup norm(x))
 *   logits = Wout norm(x)
 * Which backend runs an op is not this file's business. */
#include "model/llama.h"
#include "model/llama_cross.h"

#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "tensor/types.h"

/* ---- binding weights ---------------------------------------------------- */

/* Describes tensor `name` as a matrix of n_rows x n_cols and binds it. Missing
 * and optional: *out stays zeroed. */
static lmrt_status bind_matrix(const model *m, const backend_vtable *be, backend_ctx *bctx,
                               const char *name, int64_t n_cols, int64_t n_rows, bool required,
                               bool f32_only, tensor_view *out)
{
    const gguf_tensor *t = gguf_find_tensor(m->file, name);
    if (!t) {
        if (!required)
            return LMRT_OK;
        return lmrt_fail(LMRT_E_FORMAT, "%s: the llama decoder needs tensor '%s', which the "
                         "file does not have", m->file->path, name);
    }
    int64_t rows = t->n_elements / (t->ne[0] ? t->ne[0] : 1);
    if (t->ne[0] != n_cols || rows != n_rows)
        return lmrt_fail(LMRT_E_FORMAT, "%s: tensor '%s' is %" PRId64 " x %" PRId64 ", the "
                         "hyperparameters need %" PRId64 " x %" PRId64 " (columns x rows)",
                         m->file->path, name, t->ne[0], rows, n_cols, n_rows);
    if (f32_only && t->type != GGML_TYPE_F32)
        return lmrt_fail(LMRT_E_UNSUPPORTED, "%s: tensor '%s' is %s; lmrt expects F32 for "
                         "norm and rope-factor vectors", m->file->path, name,
                         tensor_type_name(t->type));
    if (!be->supports_type(t->type))
        return lmrt_fail(LMRT_E_UNSUPPORTED, "%s: tensor '%s' is %s, which the %s backend "
                         "cannot compute with", m->file->path, name, tensor_type_name(t->type),
                         be->name);
    tensor_view host = {
        .type = t->type,
        .n_cols = n_cols,
        .n_rows = n_rows,
        .row_bytes = (size_t)(t->n_bytes / (uint64_t)n_rows),
        .data = t->data,
        .name = t->name,
    };
    return be->bind_weight(bctx, &host, out);
}

static lmrt_status check_hparams(const model *m, int32_t *head_dim)
{
    const llama_hparams *hp = &m->hp;
    const char *path = m->file->path;
    if (!hp->n_embd || !hp->n_layer || !hp->n_head || !hp->n_ff || !hp->n_vocab)
        return lmrt_fail(LMRT_E_FORMAT, "%s: the llama decoder needs embedding_length, "
                         "block_count, attention.head_count, feed_forward_length and a "
                         "vocabulary", path);
    if (hp->n_embd % hp->n_head)
        return lmrt_fail(LMRT_E_FORMAT, "%s: embedding_length %d is not a multiple of "
                         "head_count %d", path, (int)hp->n_embd, (int)hp->n_head);
    if (hp->n_head % hp->n_head_kv)
        return lmrt_fail(LMRT_E_FORMAT, "%s: head_count %d is not a multiple of "
                         "head_count_kv %d", path, (int)hp->n_head, (int)hp->n_head_kv);
    int32_t hd = hp->n_embd / hp->n_head;
    if (hd % 2 || hp->n_rot % 2 || hp->n_rot > hd)
        return lmrt_fail(LMRT_E_FORMAT, "%s: rope dimension %d must be even and at most the "
                         "head size %d (itself even)", path, (int)hp->n_rot, (int)hd);
    *head_dim = hd;
    return LMRT_OK;
}

/* Visits every bound weight once (a tied output is tok_embd's rows, not a
 * binding of its own); unbinds each when `unbind`. Returns how many. */
static int32_t visit_bound(llama_weights *w, bool unbind)
{
    const backend_vtable *be = w->be;
    int32_t n = 0;
    tensor_view *top[] = {&w->tok_embd, &w->output_norm, &w->output, &w->rope_freqs};
    for (size_t i = 0; i < sizeof top / sizeof top[0]; i++)
        if (top[i]->data && !(top[i] == &w->output && w->output.data == w->tok_embd.data)) {
            n++;
            if (unbind)
                be->unbind_weight(w->bctx, top[i]);
        }
    for (int32_t l = 0; w->layers && l < w->hp.n_layer; l++) {
        llama_layer *L = &w->layers[l];
        tensor_view *v[] = {&L->attn_norm, &L->wq, &L->wk, &L->wv, &L->wo, &L->q_norm,
                            &L->k_norm, &L->ffn_norm, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
            if (v[i]->data) {
                n++;
                if (unbind)
                    be->unbind_weight(w->bctx, v[i]);
            }
    }
    return n;
}

static void unbind_all(llama_weights *w)
{
    (void)visit_bound(w, true);
}

int32_t llama_weights_n_bound(const llama_weights *w)
{
    return w ? visit_bound((llama_weights *)w, false) : 0;
}

/* The ops a cross-attention layer adds to those of the plain decoder. */
static bool backend_has_cross_ops(const backend_vtable *be)
{
    return be->size >= offsetof(backend_vtable, attention_full) + sizeof be->attention_full &&
           be->add_scaled && be->attention_full;
}

static lmrt_status bind_layer(const model *m, llama_weights *w, int32_t l)
{
    const backend_vtable *be = w->be;
    backend_ctx *bctx = w->bctx;
    llama_layer *L = &w->layers[l];
    const int64_t E = m->hp.n_embd, F = m->hp.n_ff, hd = w->head_dim;
    const int64_t QD = (int64_t)m->hp.n_head * hd, KVD = (int64_t)m->hp.n_head_kv * hd;
    lmrt_status st;
    char name[96];
#define BIND(field, suffix, cols, rows, f32)                                                 \
    snprintf(name, sizeof name, "blk.%d." suffix, (int)l);                                   \
    if ((st = bind_matrix(m, be, bctx, name, cols, rows, true, f32, &L->field)))             \
        return st;
    BIND(attn_norm, "attn_norm.weight", E, 1, true)
    if (L->cross) {
        BIND(wq, "cross_attn_q_proj.weight", E, QD, false)
        BIND(wk, "cross_attn_k_proj.weight", E, KVD, false)
        BIND(wv, "cross_attn_v_proj.weight", E, KVD, false)
        BIND(wo, "cross_attn_o_proj.weight", QD, E, false)
        BIND(q_norm, "cross_attn_q_norm.weight", hd, 1, true)
        BIND(k_norm, "cross_attn_k_norm.weight", hd, 1, true)
        snprintf(name, sizeof name, "blk.%d.cross_attn_attn_gate", (int)l);
        if ((st = llama_cross_read_gate(m, name, &L->attn_gate)))
            return st;
        snprintf(name, sizeof name, "blk.%d.cross_attn_mlp_gate", (int)l);
        if ((st = llama_cross_read_gate(m, name, &L->mlp_gate)))
            return st;
    } else {
        BIND(wq, "attn_q.weight", E, QD, false)
        BIND(wk, "attn_k.weight", E, KVD, false)
        BIND(wv, "attn_v.weight", E, KVD, false)
        BIND(wo, "attn_output.weight", QD, E, false)
    }
    BIND(ffn_norm, "ffn_norm.weight", E, 1, true)
    BIND(w_gate, "ffn_gate.weight", E, F, false)
    BIND(w_up, "ffn_up.weight", E, F, false)
    BIND(w_down, "ffn_down.weight", F, E, false)
#undef BIND
    return LMRT_OK;
}

/* Rows of token_embd: n_vocab for llama; for mllama whatever the file has, at
 * least n_vocab (Ollama's converter writes n_vocab + 8: <|image|> and 7 more). */
static lmrt_status token_rows(const model *m, bool mllama, int32_t *out)
{
    const gguf_tensor *t = gguf_find_tensor(m->file, "token_embd.weight");
    *out = m->hp.n_vocab;
    if (!mllama || !t || !t->ne[0])
        return LMRT_OK;   /* bind_matrix reports a missing or empty tensor */
    int64_t rows = t->n_elements / t->ne[0];
    if (rows < m->hp.n_vocab || rows > INT32_MAX)
        return lmrt_fail(LMRT_E_FORMAT, "%s: tensor 'token_embd.weight' has %" PRId64 " rows; "
                         "an mllama decoder with vocab_size %d needs at least that many",
                         m->file->path, rows, (int)m->hp.n_vocab);
    *out = (int32_t)rows;
    return LMRT_OK;
}

lmrt_status llama_weights_bind(const model *m, const backend_vtable *be, backend_ctx *bctx,
                               llama_weights **out)
{
    bool mllama = strcmp(m->architecture, "mllama") == 0;
    if (!mllama && strcmp(m->architecture, "llama") != 0)
        return lmrt_fail(LMRT_E_UNSUPPORTED, "%s: architecture '%s' is not supported (lmrt "
                         "runs 'llama' and 'mllama')", m->file->path, m->architecture);
    int32_t hd = 0;
    lmrt_status st = check_hparams(m, &hd);
    if (st)
        return st;
    llama_weights *w = lmrt_calloc(1, sizeof *w);
    if (!w)
        return lmrt_fail(LMRT_E_NOMEM, "out of memory binding the decoder");
    w->be = be;
    w->bctx = bctx;
    w->hp = m->hp;
    w->head_dim = hd;
    w->layers = lmrt_calloc((size_t)m->hp.n_layer, sizeof *w->layers);
    if (!w->layers) {
        st = lmrt_fail(LMRT_E_NOMEM, "out of memory binding the decoder");
        goto fail;
    }
    for (int32_t l = 0; l < m->hp.n_layer; l++)
        w->layers[l].cross_index = -1;
    if (mllama && (st = llama_cross_read_layers(m, w)))
        goto fail;
    if (w->n_cross && !backend_has_cross_ops(be)) {
        st = lmrt_fail(LMRT_E_UNSUPPORTED, "the %s backend lacks the attention_full and "
                       "add_scaled ops that cross-attention layers need", be->name);
        goto fail;
    }
    if ((st = token_rows(m, mllama, &w->n_tok_rows)))
        goto fail;
    const int64_t E = m->hp.n_embd, V = m->hp.n_vocab;
    if ((st = bind_matrix(m, be, bctx, "token_embd.weight", E, w->n_tok_rows, true, false,
                          &w->tok_embd)) ||
        (st = bind_matrix(m, be, bctx, "output_norm.weight", E, 1, true, true,
                          &w->output_norm)) ||
        (st = bind_matrix(m, be, bctx, "output.weight", E, V, false, false, &w->output)) ||
        (st = bind_matrix(m, be, bctx, "rope_freqs.weight", m->hp.n_rot / 2, 1, false, true,
                          &w->rope_freqs)))
        goto fail;
    if (!w->output.data) {
        w->output = w->tok_embd;  /* tied output: the first n_vocab rows */
        w->output.n_rows = V;
    }
    for (int32_t l = 0; l < m->hp.n_layer; l++)
        if ((st = bind_layer(m, w, l)))
            goto fail;
    *out = w;
    return LMRT_OK;
fail:
    llama_weights_free(w);
    return st;
}

bool llama_is_cross_model(const llama_weights *w)
{
    return w && w->n_cross > 0;
}

void llama_weights_free(llama_weights *w)
{
    if (!w)
        return;
    unbind_all(w);
    lmrt_mem_free(w->layers);
    lmrt_mem_free(w);
}

/* ---- per-sequence state ------------------------------------------------- */

size_t llama_state_kv_bytes(const llama_weights *w, int32_t n_positions)
{
    return (size_t)n_positions * (size_t)w->hp.n_head_kv * (size_t)w->head_dim * sizeof(float);
}

/* alloc with size-overflow checking: count * elems floats. */
lmrt_status llama_alloc_floats(const llama_weights *w, size_t count, size_t elems,
                               float **out)
{
    size_t n, bytes;
    if (__builtin_mul_overflow(count, elems, &n) ||
        __builtin_mul_overflow(n, sizeof(float), &bytes))
        return lmrt_fail(LMRT_E_NOMEM, "decoder state: %zu x %zu floats overflow", count,
                         elems);
    void *p;
    lmrt_status st = w->be->alloc(w->bctx, bytes, &p);
    if (st)
        return st;
    *out = p;
    return LMRT_OK;
}

lmrt_status llama_state_create(const llama_weights *w, int32_t n_ctx, int32_t n_batch,
                               bool all_logits, llama_state **out)
{
    if (n_ctx <= 0 || n_batch <= 0)
        return lmrt_fail(LMRT_E_INVALID_ARG, "decoder state: n_ctx %d and n_batch %d must be "
                         "positive", (int)n_ctx, (int)n_batch);
    const llama_hparams *hp = &w->hp;
    /* A cross layer normalizes its queries as n_batch * n_head rows of head_dim. */
    if (w->n_cross && (int64_t)n_batch * hp->n_head > INT32_MAX)
        return lmrt_fail(LMRT_E_INVALID_ARG, "decoder state: n_batch %d is too large",
                         (int)n_batch);
    llama_state *st = lmrt_calloc(1, sizeof *st);
    if (!st)
        return lmrt_fail(LMRT_E_NOMEM, "out of memory creating a decoder state");
    st->n_ctx = n_ctx;
    st->n_batch = n_batch;
    st->kv_dim = hp->n_head_kv * w->head_dim;
    st->logits_rows = all_logits ? n_batch : 1;
    size_t B = (size_t)n_batch, QD = (size_t)hp->n_head * (size_t)w->head_dim;
    size_t kv_elems = (size_t)hp->n_layer * (size_t)n_ctx;
    lmrt_status s;
    if ((s = llama_alloc_floats(w, kv_elems, (size_t)st->kv_dim, &st->k_cache)) ||
        (s = llama_alloc_floats(w, kv_elems, (size_t)st->kv_dim, &st->v_cache)) ||
        (s = llama_alloc_floats(w, B, (size_t)hp->n_embd, &st->x)) ||
        (s = llama_alloc_floats(w, B, (size_t)hp->n_embd, &st->xn)) ||
        (s = llama_alloc_floats(w, B, QD, &st->q)) ||
        (s = llama_alloc_floats(w, B, QD, &st->att)) ||
        (s = llama_alloc_floats(w, B, (size_t)hp->n_embd, &st->tmp)) ||
        (s = llama_alloc_floats(w, B, (size_t)hp->n_ff, &st->gate)) ||
        (s = llama_alloc_floats(w, B, (size_t)hp->n_ff, &st->up)) ||
        (s = llama_alloc_floats(w, (size_t)st->logits_rows, (size_t)hp->n_vocab, &st->logits)))
        goto fail;
    st->pos = lmrt_calloc(B, sizeof *st->pos);
    if (!st->pos) {
        s = lmrt_fail(LMRT_E_NOMEM, "out of memory creating a decoder state");
        goto fail;
    }
    *out = st;
    return LMRT_OK;
fail:
    llama_state_free(w, st);
    return s;
}

void llama_state_free(const llama_weights *w, llama_state *st)
{
    if (!st)
        return;
    float *bufs[] = {st->k_cache, st->v_cache, st->x, st->xn, st->q, st->att,
                     st->tmp, st->gate, st->up, st->logits, st->cross_k, st->cross_v};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        w->be->free(w->bctx, bufs[i]);
    lmrt_mem_free(st->pos);
    lmrt_mem_free(st);
}

/* ---- the forward pass --------------------------------------------------- */

/* y[i] = x w[i]^T for n weights of one input: in one op where the backend has
 * matmul_n, else one matmul each (the same results). */
static lmrt_status matmul_shared_input(const llama_weights *w, const tensor_view *const *ws,
                                       int32_t n, const float *x, int32_t n_tok,
                                       float *const *y)
{
    const backend_vtable *be = w->be;
    if (be->size >= offsetof(backend_vtable, matmul_n) + sizeof be->matmul_n && be->matmul_n)
        return be->matmul_n(w->bctx, ws, n, x, n_tok, y);
    for (int32_t i = 0; i < n; i++) {
        lmrt_status s = be->matmul(w->bctx, ws[i], x, n_tok, y[i]);
        if (s)
            return s;
    }
    return LMRT_OK;
}

/* tmp = Wdown (silu(Wgate norm(x)) * Wup norm(x)) for the n rows of the batch. */
lmrt_status llama_ffn_branch(const llama_weights *w, llama_state *st, const llama_layer *L,
                             int32_t n)
{
    const backend_vtable *be = w->be;
    backend_ctx *c = w->bctx;
    const int32_t E = w->hp.n_embd, F = w->hp.n_ff;
    lmrt_status s;
    const tensor_view *ws[] = {&L->w_gate, &L->w_up};
    float *ys[] = {st->gate, st->up};
    if ((s = be->rmsnorm(c, st->x, L->ffn_norm.data, E, n, w->hp.rms_eps, st->xn)) ||
        (s = matmul_shared_input(w, ws, 2, st->xn, n, ys)) ||
        (s = be->silu_mul(c, st->gate, st->up, (int64_t)n * F)) ||
        (s = be->matmul(c, &L->w_down, st->gate, n, st->tmp)))
        return s;
    return LMRT_OK;
}

/* One batch of n <= n_batch positions at st->n_past ...: token ids, or (ids
 * NULL) input embeddings embd_host [n][n_embd] in host memory. logits_host NULL
 * when this batch's logits are not wanted. */
static lmrt_status forward_batch(const llama_weights *w, llama_state *st, const int32_t *ids,
                                 const float *embd_host, int32_t n, bool all_logits,
                                 float *logits_host, llama_abort_fn should_abort,
                                 void *abort_user)
{
    const backend_vtable *be = w->be;
    backend_ctx *c = w->bctx;
    const llama_hparams *hp = &w->hp;
    const int32_t E = hp->n_embd, hd = w->head_dim, kvd = st->kv_dim;
    const float *freqs = w->rope_freqs.data;
    lmrt_status s;
    for (int32_t t = 0; t < n; t++)
        st->pos[t] = st->n_past + t;
    attention_params ap = {
        .n_tok = n, .n_past = st->n_past, .n_head = hp->n_head, .n_head_kv = hp->n_head_kv,
        .head_dim = hd, .kv_stride = kvd, .scale = 1.0f / sqrtf((float)hd),
    };

    if (ids)
        s = be->get_rows(c, &w->tok_embd, ids, n, st->x);
    else
        s = be->upload(c, st->x, embd_host, (size_t)n * (size_t)E * sizeof(float));
    if (s)
        return s;
    for (int32_t l = 0; l < hp->n_layer; l++) {
        const llama_layer *L = &w->layers[l];
        float *k_layer = st->k_cache + (size_t)l * (size_t)st->n_ctx * (size_t)kvd;
        float *v_layer = st->v_cache + (size_t)l * (size_t)st->n_ctx * (size_t)kvd;
        float *k_new = k_layer + (size_t)st->n_past * (size_t)kvd;   /* [n][kvd] */
        float *v_new = v_layer + (size_t)st->n_past * (size_t)kvd;   /* [n][kvd] */
        if (should_abort && should_abort(abort_user))
            return lmrt_fail(LMRT_E_ABORTED, "aborted by the caller's callback");
        if (L->cross) {
            /* Without image states a cross layer is the identity: skipped. */
            if (st->n_cross_kv && (s = llama_cross_layer(w, st, L, n)))
                return s;
            continue;
        }
        /* attention */
        const tensor_view *qkv[] = {&L->wq, &L->wk, &L->wv};
        float *qkv_out[] = {st->q, k_new, v_new};
        if ((s = be->rmsnorm(c, st->x, L->attn_norm.data, E, n, hp->rms_eps, st->xn)) ||
            (s = matmul_shared_input(w, qkv, 3, st->xn, n, qkv_out)) ||
            (s = be->rope(c, st->q, n, hp->n_head, hd, hp->n_rot, st->pos,
                          hp->rope_freq_base, freqs)) ||
            (s = be->rope(c, k_new, n, hp->n_head_kv, hd, hp->n_rot, st->pos,
                          hp->rope_freq_base, freqs)) ||
            (s = be->attention(c, &ap, st->q, k_layer, v_layer, st->att)) ||
            (s = be->matmul(c, &L->wo, st->att, n, st->tmp)) ||
            (s = be->add(c, st->x, st->tmp, (int64_t)n * E)))
            return s;
        /* feed-forward */
        if ((s = llama_ffn_branch(w, st, L, n)) ||
            (s = be->add(c, st->x, st->tmp, (int64_t)n * E)))
            return s;
    }
    st->n_past += n;
    if (!logits_host)
        return LMRT_OK;
    /* Only the rows whose logits are wanted go through the output matrix. */
    int32_t first = all_logits ? 0 : n - 1, rows = n - first;
    const float *x_out = st->x + (size_t)first * (size_t)E;
    if ((s = be->rmsnorm(c, x_out, w->output_norm.data, E, rows, hp->rms_eps, st->xn)) ||
        (s = be->matmul(c, &w->output, st->xn, rows, st->logits)) ||
        (s = be->download(c, logits_host, st->logits,
                          (size_t)rows * (size_t)hp->n_vocab * sizeof(float)))) {
        st->n_past -= n;
        return s;
    }
    return LMRT_OK;
}

/* Runs n positions in chunks of n_batch: ids[0..n) or embd[0..n)[n_embd]. */
static lmrt_status forward_chunks(const llama_weights *w, llama_state *st, const int32_t *ids,
                                  const float *embd, int32_t n, bool all_logits, float *logits,
                                  llama_abort_fn should_abort, void *abort_user)
{
    if (n <= 0)
        return lmrt_fail(LMRT_E_INVALID_ARG, "decoder: no positions to run");
    if (all_logits && st->logits_rows < st->n_batch)
        return lmrt_fail(LMRT_E_INTERNAL, "decoder: state was created without all_logits");
    if ((int64_t)st->n_past + n > st->n_ctx)
        return lmrt_fail(LMRT_E_CONTEXT_FULL, "the context holds %d tokens: %d are in it and "
                         "%d more do not fit", (int)st->n_ctx, (int)st->n_past, (int)n);
    const size_t E = (size_t)w->hp.n_embd;
    for (int32_t done = 0; done < n;) {
        int32_t chunk = n - done < st->n_batch ? n - done : st->n_batch;
        bool last = done + chunk == n;
        /* Without all_logits only the last position's logits are computed at all. */
        float *dst = all_logits ? logits + (size_t)done * (size_t)w->hp.n_vocab
                                : last ? logits : NULL;
        lmrt_status s = forward_batch(w, st, ids ? ids + done : NULL,
                                      ids ? NULL : embd + (size_t)done * E, chunk, all_logits,
                                      dst, should_abort, abort_user);
        if (s)
            return s;
        done += chunk;
    }
    return LMRT_OK;
}

lmrt_status llama_forward(const llama_weights *w, llama_state *st, const int32_t *ids, int32_t n,
                          bool all_logits, float *logits, llama_abort_fn should_abort,
                          void *abort_user)
{
    if (!ids && n > 0)
        return lmrt_fail(LMRT_E_INVALID_ARG, "decoder: NULL token ids");
    for (int32_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= w->n_tok_rows)
            return lmrt_fail(LMRT_E_INVALID_ARG, "token %d (at index %d) is outside the "
                             "vocabulary of %d", (int)ids[i], (int)i, (int)w->n_tok_rows);
    return forward_chunks(w, st, ids, NULL, n, all_logits, logits, should_abort, abort_user);
}

lmrt_status llama_forward_embd(const llama_weights *w, llama_state *st, const float *embd,
                               int32_t n, bool all_logits, float *logits,
                               llama_abort_fn should_abort, void *abort_user)
{
    if (!embd && n > 0)
        return lmrt_fail(LMRT_E_INVALID_ARG, "decoder: NULL input embeddings");
    return forward_chunks(w, st, NULL, embd, n, all_logits, logits, should_abort, abort_user);
}
