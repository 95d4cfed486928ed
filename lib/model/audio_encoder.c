/* audio_encoder.c - the Whisper encoder and Ultravox projector of an mmproj GGUF:
 * reads and checks its keys and tensor shapes, binds the weights to a backend, and
 * runs one 30 s window at a time as one backend op per line, like the math:
 *   x = gelu(conv1d(mel, k3, pad 1)); x = gelu(conv1d(x, k3, stride 2, pad 1)) + pos
 *   per block: x += Wo attn(Wq ln1(x) + bq, Wk ln1(x), Wv ln1(x) + bv) + bo
 *              x += Wdown gelu(Wup ln2(x) + bup) + bdown
 *   x = post_ln(x); stack sf frames per token (zero-padded);
 *   y = rmsnorm(x) * norm_pre; h = W1 y; y = h[:P/2] * silu(h[P/2:]);
 *   embd = W2 (rmsnorm(y) * norm_mid)
 * The tensor names, shapes and the projector are llama.cpp's (doc/formats.md). */
#include "model/audio_encoder.h"

#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "model/audio_mel.h"
#include "tensor/types.h"

#define N_POS (AUDIO_WINDOW_FRAMES / 2)   /* encoder positions per window: 1500 */
#define PROJ_RMS_EPS 1e-6f                /* Ultravox's RMSNorm default, not in the file */

typedef struct audio_layer {
    tensor_view ln1_w, ln1_b;    /* [1 row][d] F32 */
    tensor_view wq, wk, wv, wo;  /* [d rows][d] */
    tensor_view bq, bv, bo;      /* [1 row][d] F32 (K has no bias in Whisper) */
    tensor_view ln2_w, ln2_b;    /* [1 row][d] F32 */
    tensor_view w_up;            /* [n_ff rows][d] */
    tensor_view b_up;            /* [1 row][n_ff] F32 */
    tensor_view w_down;          /* [d rows][n_ff] */
    tensor_view b_down;          /* [1 row][d] F32 */
} audio_layer;

struct audio_encoder {
    const backend_vtable *be;
    backend_ctx *bctx;
    const char *path;
    int32_t n_mel, d, n_head, head_dim, n_ff, n_layer;
    int32_t stack;               /* frames per projected token */
    int32_t n_stk;               /* tokens per window: ceil(1500 / stack) */
    int32_t n_proj;              /* P: rows of mm.a.mlp.1 (x and gate halves) */
    int32_t n_embd_text;
    float eps;                   /* the encoder's layernorm epsilon */
    int32_t n_bound;
    tensor_view conv1_w;         /* [d rows][n_mel * 3]: W[o][c][k] at c * 3 + k */
    tensor_view conv1_b;         /* [1 row][d] F32 */
    tensor_view conv2_w;         /* [d rows][d * 3] */
    tensor_view conv2_b;         /* [1 row][d] F32 */
    tensor_view pos;             /* [>= 1500 rows][d] learned positions */
    tensor_view post_w, post_b;  /* [1 row][d] F32 */
    tensor_view norm_pre;        /* [1 row][d * stack] F32 */
    tensor_view mlp1_x;          /* [P/2 rows][d * stack]: first half of mm.a.mlp.1 */
    tensor_view mlp1_gate;       /* [P/2 rows][d * stack]: second half, through silu */
    tensor_view norm_mid;        /* [1 row][P/2] F32 */
    tensor_view mlp2;            /* [n_embd_text rows][P/2] */
    audio_layer *layers;         /* [n_layer] */
    audio_mel *mel;
};

/* ---- keys ---------------------------------------------------------------- */

/* A query: it leaves the thread's error message alone. */
bool audio_file_has_encoder(const gguf_file *f)
{
    const gguf_kv *kv = f ? gguf_find(f, "clip.has_audio_encoder") : NULL;
    return kv && kv->value.type == GGUF_TYPE_BOOL && kv->value.v.b;
}

static lmrt_status read_key(const gguf_file *f, const char *key, int64_t max, int32_t *out)
{
    int64_t v = 0;
    lmrt_status st = gguf_get_int(f, key, &v);
    if (st == LMRT_E_NOT_FOUND)
        return lmrt_fail(LMRT_E_FORMAT, "%s: the audio encoder needs key '%s', which the file "
                         "does not have", f->path, key);
    if (st)
        return st;
    if (v < 1 || v > max)
        return lmrt_fail(LMRT_E_FORMAT, "%s: key '%s' = %" PRId64 " is outside 1..%" PRId64,
                         f->path, key, v, max);
    *out = (int32_t)v;
    return LMRT_OK;
}

static lmrt_status check_projector_type(const gguf_file *f)
{
    gguf_str s = {0};
    lmrt_status st = gguf_get_str(f, "clip.audio.projector_type", &s);
    if (st == LMRT_E_NOT_FOUND)
        st = gguf_get_str(f, "clip.projector_type", &s);
    if (st == LMRT_E_NOT_FOUND)
        return lmrt_fail(LMRT_E_FORMAT, "%s: the audio encoder needs key 'clip.projector_type'",
                         f->path);
    if (st)
        return st;
    if (s.len != 8 || memcmp(s.ptr, "ultravox", 8) != 0)
        return lmrt_fail(LMRT_E_UNSUPPORTED, "%s: audio projector type '%.*s' is not supported "
                         "(lmrt runs 'ultravox')", f->path, (int)(s.len > 64 ? 64 : s.len),
                         s.ptr);
    return LMRT_OK;
}

static lmrt_status read_hparams(const gguf_file *f, int32_t n_embd_text, audio_encoder *e)
{
    lmrt_status st;
    if (!audio_file_has_encoder(f))
        return lmrt_fail(LMRT_E_FORMAT, "%s: clip.has_audio_encoder is not true: the file has "
                         "no audio encoder", f->path);
    if ((st = check_projector_type(f)) ||
        (st = read_key(f, "clip.audio.num_mel_bins", 512, &e->n_mel)) ||
        (st = read_key(f, "clip.audio.embedding_length", 16384, &e->d)) ||
        (st = read_key(f, "clip.audio.feed_forward_length", 65536, &e->n_ff)) ||
        (st = read_key(f, "clip.audio.block_count", 256, &e->n_layer)) ||
        (st = read_key(f, "clip.audio.attention.head_count", 1024, &e->n_head)) ||
        (st = read_key(f, "clip.audio.projector.stack_factor", 1500, &e->stack)))
        return st;
    double eps = 0.0;
    if ((st = gguf_get_float(f, "clip.audio.attention.layer_norm_epsilon", &eps)))
        return st == LMRT_E_NOT_FOUND
                   ? lmrt_fail(LMRT_E_FORMAT, "%s: the audio encoder needs key "
                               "'clip.audio.attention.layer_norm_epsilon'", f->path)
                   : st;
    if (!(eps > 0.0 && eps < 1.0))
        return lmrt_fail(LMRT_E_FORMAT, "%s: clip.audio.attention.layer_norm_epsilon = %g is "
                         "outside (0, 1)", f->path, eps);
    e->eps = (float)eps;
    if (e->d % e->n_head)
        return lmrt_fail(LMRT_E_FORMAT, "%s: clip.audio.embedding_length %d is not a multiple "
                         "of clip.audio.attention.head_count %d", f->path, (int)e->d,
                         (int)e->n_head);
    e->head_dim = e->d / e->n_head;
    int64_t proj_dim = 0;
    st = gguf_get_int(f, "clip.audio.projection_dim", &proj_dim);
    if (st && st != LMRT_E_NOT_FOUND)
        return st;
    if (st == LMRT_OK && proj_dim != n_embd_text)
        return lmrt_fail(LMRT_E_FORMAT, "%s: clip.audio.projection_dim is %" PRId64 ", but the "
                         "text model's embedding_length is %d: the projector belongs to "
                         "another model", f->path, proj_dim, (int)n_embd_text);
    e->n_embd_text = n_embd_text;
    e->n_stk = (N_POS + e->stack - 1) / e->stack;
    return LMRT_OK;
}

/* ---- binding weights ----------------------------------------------------- */

/* What shape a tensor must have. */
enum shape_kind {
    SHAPE_MATRIX,   /* [n_cols, rows_total] */
    SHAPE_VECTOR,   /* n_cols F32 values in any shape with at most one dimension not 1
                     * (the converter stores the conv biases as [1, d]) */
    SHAPE_CONV,     /* [3, n_cols / 3, rows_total]: torch's Conv1d [out][in][kernel] */
};

/* Binds rows [row_lo, row_lo + n_rows) of tensor `name` (mm.a.mlp.1 is bound as
 * two halves) as a matrix of n_cols columns, after checking its shape. */
static lmrt_status bind_part(audio_encoder *e, const gguf_file *f, const char *name,
                             enum shape_kind kind, int64_t n_cols, int64_t rows_total, int64_t row_lo,
                             int64_t n_rows, tensor_view *out)
{
    const gguf_tensor *t = gguf_find_tensor(f, name);
    if (!t)
        return lmrt_fail(LMRT_E_FORMAT, "%s: the audio encoder needs tensor '%s', which the "
                         "file does not have", f->path, name);
    if (kind == SHAPE_VECTOR) {
        int n_big = 0;
        for (uint32_t i = 0; i < t->n_dims; i++)
            n_big += t->ne[i] != 1;
        if (t->n_elements != n_cols || n_big > 1)
            return lmrt_fail(LMRT_E_FORMAT, "%s: tensor '%s' has %" PRId64 " elements in %u "
                             "dims [%" PRId64 " %" PRId64 " %" PRId64 "], the hyperparameters "
                             "need a vector of %" PRId64, f->path, name, t->n_elements,
                             t->n_dims, t->ne[0], t->ne[1], t->ne[2], n_cols);
        if (t->type != GGML_TYPE_F32)
            return lmrt_fail(LMRT_E_UNSUPPORTED, "%s: tensor '%s' is %s; lmrt expects F32 "
                             "for biases and norm weights", f->path, name,
                             tensor_type_name(t->type));
    } else if (kind == SHAPE_CONV) {
        if (t->n_dims != 3 || t->ne[0] != 3 || t->ne[1] * 3 != n_cols || t->ne[2] != rows_total)
            return lmrt_fail(LMRT_E_FORMAT, "%s: tensor '%s' is [%" PRId64 " %" PRId64 " %"
                             PRId64 "] in %u dims, the hyperparameters need the kernel [3 %"
                             PRId64 " %" PRId64 "]", f->path, name, t->ne[0], t->ne[1],
                             t->ne[2], t->n_dims, n_cols / 3, rows_total);
    } else {
        int64_t rows = t->n_elements / (t->ne[0] ? t->ne[0] : 1);
        if (t->ne[0] != n_cols || rows != rows_total)
            return lmrt_fail(LMRT_E_FORMAT, "%s: tensor '%s' is %" PRId64 " x %" PRId64 ", the "
                             "hyperparameters need %" PRId64 " x %" PRId64 " (columns x rows)",
                             f->path, name, t->ne[0], rows, n_cols, rows_total);
    }
    if (!e->be->supports_type(t->type))
        return lmrt_fail(LMRT_E_UNSUPPORTED, "%s: tensor '%s' is %s, which the %s backend "
                         "cannot compute with", f->path, name, tensor_type_name(t->type),
                         e->be->name);
    const size_t row_bytes = (size_t)(t->n_bytes / (uint64_t)rows_total);
    tensor_view host = {
        .type = t->type,
        .n_cols = n_cols,
        .n_rows = n_rows,
        .row_bytes = row_bytes,
        .data = t->data + (size_t)row_lo * row_bytes,
        .name = t->name,
    };
    lmrt_status st = e->be->bind_weight(e->bctx, &host, out);
    if (st == LMRT_OK && row_lo == 0)
        e->n_bound++;
    return st;
}

static lmrt_status bind(audio_encoder *e, const gguf_file *f, const char *name, int64_t n_cols,
                        int64_t n_rows, tensor_view *out)
{
    return bind_part(e, f, name, SHAPE_MATRIX, n_cols, n_rows, 0, n_rows, out);
}

static lmrt_status bind_vec(audio_encoder *e, const gguf_file *f, const char *name, int64_t n,
                            tensor_view *out)
{
    return bind_part(e, f, name, SHAPE_VECTOR, n, 1, 0, 1, out);
}

static void unbind_all(audio_encoder *e)
{
    tensor_view *top[] = {&e->conv1_w, &e->conv1_b, &e->conv2_w, &e->conv2_b, &e->pos,
                          &e->post_w, &e->post_b, &e->norm_pre, &e->mlp1_x, &e->mlp1_gate,
                          &e->norm_mid, &e->mlp2};
    for (size_t i = 0; i < sizeof top / sizeof top[0]; i++)
        if (top[i]->data)
            e->be->unbind_weight(e->bctx, top[i]);
    for (int32_t l = 0; e->layers && l < e->n_layer; l++) {
        audio_layer *L = &e->layers[l];
        tensor_view *v[] = {&L->ln1_w, &L->ln1_b, &L->wq, &L->bq, &L->wk, &L->wv, &L->bv,
                            &L->wo, &L->bo, &L->ln2_w, &L->ln2_b, &L->w_up, &L->b_up,
                            &L->w_down, &L->b_down};
        for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
            if (v[i]->data)
                e->be->unbind_weight(e->bctx, v[i]);
    }
}

static lmrt_status bind_weights(audio_encoder *e, const gguf_file *f)
{
    lmrt_status st;
    const int64_t d = e->d, F = e->n_ff, S = (int64_t)e->d * e->stack;
    if ((st = bind_part(e, f, "a.conv1d.1.weight", SHAPE_CONV, (int64_t)e->n_mel * 3, d, 0, d,
                        &e->conv1_w)) ||
        (st = bind_vec(e, f, "a.conv1d.1.bias", d, &e->conv1_b)) ||
        (st = bind_part(e, f, "a.conv1d.2.weight", SHAPE_CONV, d * 3, d, 0, d, &e->conv2_w)) ||
        (st = bind_vec(e, f, "a.conv1d.2.bias", d, &e->conv2_b)))
        return st;
    const gguf_tensor *pt = gguf_find_tensor(f, "a.position_embd.weight");
    int64_t n_pos = pt && pt->ne[0] ? pt->n_elements / pt->ne[0] : 0;
    if (pt && n_pos < N_POS)
        return lmrt_fail(LMRT_E_FORMAT, "%s: tensor 'a.position_embd.weight' has %" PRId64
                         " positions; a 30 s window needs %d", f->path, n_pos, N_POS);
    if ((st = bind(e, f, "a.position_embd.weight", d, n_pos, &e->pos)))
        return st;
    for (int32_t l = 0; l < e->n_layer; l++) {
        audio_layer *L = &e->layers[l];
        char name[96];
#define BIND(call)                                                                           \
    if ((st = call))                                                                         \
        return st;
#define NAME(suffix) (snprintf(name, sizeof name, "a.blk.%d." suffix, (int)l), name)
        BIND(bind_vec(e, f, NAME("ln1.weight"), d, &L->ln1_w))
        BIND(bind_vec(e, f, NAME("ln1.bias"), d, &L->ln1_b))
        BIND(bind(e, f, NAME("attn_q.weight"), d, d, &L->wq))
        BIND(bind_vec(e, f, NAME("attn_q.bias"), d, &L->bq))
        BIND(bind(e, f, NAME("attn_k.weight"), d, d, &L->wk))
        BIND(bind(e, f, NAME("attn_v.weight"), d, d, &L->wv))
        BIND(bind_vec(e, f, NAME("attn_v.bias"), d, &L->bv))
        BIND(bind(e, f, NAME("attn_out.weight"), d, d, &L->wo))
        BIND(bind_vec(e, f, NAME("attn_out.bias"), d, &L->bo))
        BIND(bind_vec(e, f, NAME("ln2.weight"), d, &L->ln2_w))
        BIND(bind_vec(e, f, NAME("ln2.bias"), d, &L->ln2_b))
        BIND(bind(e, f, NAME("ffn_up.weight"), d, F, &L->w_up))
        BIND(bind_vec(e, f, NAME("ffn_up.bias"), F, &L->b_up))
        BIND(bind(e, f, NAME("ffn_down.weight"), F, d, &L->w_down))
        BIND(bind_vec(e, f, NAME("ffn_down.bias"), d, &L->b_down))
#undef NAME
#undef BIND
    }
    if ((st = bind_vec(e, f, "a.post_ln.weight", d, &e->post_w)) ||
        (st = bind_vec(e, f, "a.post_ln.bias", d, &e->post_b)) ||
        (st = bind_vec(e, f, "mm.a.norm_pre.weight", S, &e->norm_pre)))
        return st;
    /* The projector's inner size P is only in the shapes: mm.a.mlp.1 is [P][d sf],
     * mm.a.mlp.2 [n_embd_text][P/2]. */
    const gguf_tensor *t1 = gguf_find_tensor(f, "mm.a.mlp.1.weight");
    int64_t P = t1 && t1->ne[0] ? t1->n_elements / t1->ne[0] : 0;
    if (t1 && (P < 2 || P % 2 || P > INT32_MAX))
        return lmrt_fail(LMRT_E_FORMAT, "%s: tensor 'mm.a.mlp.1.weight' has %" PRId64 " rows; "
                         "the SwiGLU projector needs an even number", f->path, P);
    e->n_proj = (int32_t)P;
    if ((st = bind_part(e, f, "mm.a.mlp.1.weight", SHAPE_MATRIX, S, P, 0, P / 2, &e->mlp1_x)) ||
        (st = bind_part(e, f, "mm.a.mlp.1.weight", SHAPE_MATRIX, S, P, P / 2, P / 2, &e->mlp1_gate)) ||
        (st = bind_vec(e, f, "mm.a.norm_mid.weight", P / 2, &e->norm_mid)) ||
        (st = bind(e, f, "mm.a.mlp.2.weight", P / 2, e->n_embd_text, &e->mlp2)))
        return st;
    return LMRT_OK;
}

static bool has_encoder_ops(const backend_vtable *be)
{
    return be->size >= offsetof(backend_vtable, im2col) + sizeof be->im2col && be->layernorm &&
           be->add_bias && be->gelu && be->attention_full && be->im2col && be->matmul &&
           be->rmsnorm && be->silu_mul && be->add && be->get_rows;
}

lmrt_status audio_encoder_bind(const gguf_file *f, int32_t n_embd_text, const backend_vtable *be,
                               backend_ctx *bctx, audio_encoder **out)
{
    if (!f || !be || !out || n_embd_text < 1)
        return lmrt_fail(LMRT_E_INVALID_ARG, "audio_encoder_bind: bad arguments");
    if (!has_encoder_ops(be))
        return lmrt_fail(LMRT_E_UNSUPPORTED, "the %s backend has no encoder ops (layernorm, "
                         "gelu, attention_full, im2col)", be->name);
    audio_encoder *e = lmrt_calloc(1, sizeof *e);
    if (!e)
        return lmrt_fail(LMRT_E_NOMEM, "out of memory binding the audio encoder");
    e->be = be;
    e->bctx = bctx;
    e->path = f->path;
    lmrt_status st = read_hparams(f, n_embd_text, e);
    if (st)
        goto fail;
    e->layers = lmrt_calloc((size_t)e->n_layer, sizeof *e->layers);
    if (!e->layers) {
        st = lmrt_fail(LMRT_E_NOMEM, "out of memory binding the audio encoder");
        goto fail;
    }
    if ((st = bind_weights(e, f)) || (st = audio_mel_create(e->n_mel, &e->mel)))
        goto fail;
    *out = e;
    return LMRT_OK;
fail:
    audio_encoder_free(e);
    return st;
}

void audio_encoder_free(audio_encoder *e)
{
    if (!e)
        return;
    unbind_all(e);
    audio_mel_free(e->mel);
    lmrt_mem_free(e->layers);
    lmrt_mem_free(e);
}

int32_t audio_encoder_n_bound(const audio_encoder *e)
{
    return e ? e->n_bound : 0;
}

int32_t audio_encoder_n_tokens(const audio_encoder *e, size_t n_samples)
{
    size_t n = audio_mel_n_windows(n_samples), tok;
    if (!e || __builtin_mul_overflow(n, (size_t)e->n_stk, &tok) || tok > INT32_MAX)
        return -1;
    return (int32_t)tok;
}

/* ---- the forward pass ---------------------------------------------------- */

/* Activations of one window, backend memory (floats), and the host side. */
typedef struct enc_bufs {
    float *mel;                  /* [3000][n_mel] */
    float *col;                  /* [3000][n_mel * 3] or [1500][d * 3] im2col rows */
    float *h1;                   /* [3000][d] first convolution */
    float *x;                    /* [n_stk * stack][d] residual stream; rows past 1500 zero */
    float *xn;                   /* [1500][d] normed input of a sublayer */
    float *q, *k, *v, *att;      /* [1500][d] */
    float *tmp;                  /* [1500][d] sublayer output */
    float *ff;                   /* [1500][n_ff] */
    float *pos;                  /* [1500][d] rows 0..1499 of the position table */
    float *y;                    /* [n_stk][d * stack] stacked and normed */
    float *pa, *pg, *pz;         /* [n_stk][P/2] */
    float *pout;                 /* [n_stk][n_embd_text] */
    float *host_mel;             /* host [3000][n_mel] */
    float *host_zero;            /* host [stack][d] zeros for the stacking pad */
    int32_t *ids;                /* host [1500] 0..1499 */
} enc_bufs;

static void bufs_free(const audio_encoder *e, enc_bufs *b)
{
    float **dev[] = {&b->mel, &b->col, &b->h1, &b->x, &b->xn, &b->q, &b->k, &b->v, &b->att,
                     &b->tmp, &b->ff, &b->pos, &b->y, &b->pa, &b->pg, &b->pz, &b->pout};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
        e->be->free(e->bctx, *dev[i]);
    lmrt_mem_free(b->host_mel);
    lmrt_mem_free(b->host_zero);
    lmrt_mem_free(b->ids);
}

static lmrt_status dev_alloc(const audio_encoder *e, size_t rows, size_t cols, float **out)
{
    size_t n;
    if (__builtin_mul_overflow(rows, cols, &n) || __builtin_mul_overflow(n, sizeof(float), &n))
        return lmrt_fail(LMRT_E_NOMEM, "%s: audio encoder buffer of %zu x %zu floats is too "
                         "large", e->path, rows, cols);
    return e->be->alloc(e->bctx, n, (void **)out);
}

static lmrt_status bufs_alloc(const audio_encoder *e, enc_bufs *b)
{
    const size_t T = AUDIO_WINDOW_FRAMES, N = N_POS, d = (size_t)e->d;
    const size_t S = d * (size_t)e->stack, P2 = (size_t)e->n_proj / 2;
    const size_t col1 = T * (size_t)e->n_mel * 3, col2 = N * d * 3;
    lmrt_status st;
    memset(b, 0, sizeof *b);
    if ((st = dev_alloc(e, T, (size_t)e->n_mel, &b->mel)) ||
        (st = dev_alloc(e, col1 > col2 ? col1 : col2, 1, &b->col)) ||
        (st = dev_alloc(e, T, d, &b->h1)) ||
        (st = dev_alloc(e, (size_t)e->n_stk, S, &b->x)) ||
        (st = dev_alloc(e, N, d, &b->xn)) || (st = dev_alloc(e, N, d, &b->q)) ||
        (st = dev_alloc(e, N, d, &b->k)) || (st = dev_alloc(e, N, d, &b->v)) ||
        (st = dev_alloc(e, N, d, &b->att)) || (st = dev_alloc(e, N, d, &b->tmp)) ||
        (st = dev_alloc(e, N, (size_t)e->n_ff, &b->ff)) || (st = dev_alloc(e, N, d, &b->pos)) ||
        (st = dev_alloc(e, (size_t)e->n_stk, S, &b->y)) ||
        (st = dev_alloc(e, (size_t)e->n_stk, P2, &b->pa)) ||
        (st = dev_alloc(e, (size_t)e->n_stk, P2, &b->pg)) ||
        (st = dev_alloc(e, (size_t)e->n_stk, P2, &b->pz)) ||
        (st = dev_alloc(e, (size_t)e->n_stk, (size_t)e->n_embd_text, &b->pout)))
        goto fail;
    b->host_mel = lmrt_malloc(T * (size_t)e->n_mel * sizeof(float));
    b->host_zero = lmrt_calloc(S, sizeof(float));
    b->ids = lmrt_malloc(N * sizeof(int32_t));
    if (!b->host_mel || !b->host_zero || !b->ids) {
        st = lmrt_fail(LMRT_E_NOMEM, "out of memory for the audio encoder's buffers");
        goto fail;
    }
    for (int32_t i = 0; i < N_POS; i++)
        b->ids[i] = i;
    return LMRT_OK;
fail:
    bufs_free(e, b);
    return st;
}

/* y[t][o] = W [t-th im2col row] + bias, then GELU: a 1-D convolution over the
 * frames of x [w][c_in] with kernel 3, padding 1 and the given stride. */
static lmrt_status conv1d_gelu(const audio_encoder *e, const float *x, int32_t c_in, int32_t w,
                               int32_t stride, const tensor_view *wt, const tensor_view *bias,
                               float *col, float *y)
{
    const backend_vtable *be = e->be;
    backend_ctx *c = e->bctx;
    const int32_t w_out = (w + 2 - 3) / stride + 1;
    lmrt_status st;
    if ((st = be->im2col(c, x, c_in, 1, w, 1, 3, 1, stride, 0, 1, col)) ||
        (st = be->matmul(c, wt, col, w_out, y)) ||
        (st = be->add_bias(c, y, bias->data, e->d, w_out)) ||
        (st = be->gelu(c, y, (int64_t)w_out * e->d, BACKEND_GELU_ERF)))
        return st;
    return LMRT_OK;
}

/* x: [1500][d] -> x += attention and MLP of block L (pre-LN, Whisper). */
static lmrt_status run_block(const audio_encoder *e, const audio_layer *L, enc_bufs *b)
{
    const backend_vtable *be = e->be;
    backend_ctx *c = e->bctx;
    const int32_t d = e->d, n = N_POS;
    const attention_params ap = {
        .n_tok = n, .n_past = 0, .n_head = e->n_head, .n_head_kv = e->n_head,
        .head_dim = e->head_dim, .kv_stride = d, .scale = 1.0f / sqrtf((float)e->head_dim),
    };
    lmrt_status st;
    if ((st = be->layernorm(c, b->x, L->ln1_w.data, L->ln1_b.data, d, n, e->eps, b->xn)) ||
        (st = be->matmul(c, &L->wq, b->xn, n, b->q)) ||
        (st = be->add_bias(c, b->q, L->bq.data, d, n)) ||
        (st = be->matmul(c, &L->wk, b->xn, n, b->k)) ||
        (st = be->matmul(c, &L->wv, b->xn, n, b->v)) ||
        (st = be->add_bias(c, b->v, L->bv.data, d, n)) ||
        (st = be->attention_full(c, &ap, n, b->q, b->k, b->v, b->att)) ||
        (st = be->matmul(c, &L->wo, b->att, n, b->tmp)) ||
        (st = be->add_bias(c, b->tmp, L->bo.data, d, n)) ||
        (st = be->add(c, b->x, b->tmp, (int64_t)n * d)))
        return st;
    if ((st = be->layernorm(c, b->x, L->ln2_w.data, L->ln2_b.data, d, n, e->eps, b->xn)) ||
        (st = be->matmul(c, &L->w_up, b->xn, n, b->ff)) ||
        (st = be->add_bias(c, b->ff, L->b_up.data, e->n_ff, n)) ||
        (st = be->gelu(c, b->ff, (int64_t)n * e->n_ff, BACKEND_GELU_ERF)) ||
        (st = be->matmul(c, &L->w_down, b->ff, n, b->tmp)) ||
        (st = be->add_bias(c, b->tmp, L->b_down.data, d, n)) ||
        (st = be->add(c, b->x, b->tmp, (int64_t)n * d)))
        return st;
    return LMRT_OK;
}

/* One 30 s window -> n_stk embeddings, written to host `out` [n_stk][n_embd_text]. */
static lmrt_status encode_window(const audio_encoder *e, enc_bufs *b, const float *pcm,
                                 size_t n_samples, size_t w, float *out)
{
    const backend_vtable *be = e->be;
    backend_ctx *c = e->bctx;
    const int32_t d = e->d, n = N_POS, S = e->d * e->stack, P2 = e->n_proj / 2;
    const size_t pad_rows = (size_t)e->n_stk * (size_t)e->stack - N_POS;
    lmrt_status st;
    if ((st = audio_mel_window(e->mel, pcm, n_samples, w, b->host_mel)) ||
        (st = be->upload(c, b->mel, b->host_mel,
                         (size_t)AUDIO_WINDOW_FRAMES * (size_t)e->n_mel * sizeof(float))))
        return st;
    /* conv1d k3 pad 1 over the 3000 frames, then k3 stride 2 pad 1 down to 1500 */
    if ((st = conv1d_gelu(e, b->mel, e->n_mel, AUDIO_WINDOW_FRAMES, 1, &e->conv1_w,
                          &e->conv1_b, b->col, b->h1)) ||
        (st = conv1d_gelu(e, b->h1, d, AUDIO_WINDOW_FRAMES, 2, &e->conv2_w, &e->conv2_b,
                          b->col, b->x)) ||
        (st = be->get_rows(c, &e->pos, b->ids, n, b->pos)) ||
        (st = be->add(c, b->x, b->pos, (int64_t)n * d)))
        return st;
    for (int32_t l = 0; l < e->n_layer; l++)
        if ((st = run_block(e, &e->layers[l], b)))
            return st;
    if ((st = be->layernorm(c, b->x, e->post_w.data, e->post_b.data, d, n, e->eps, b->x)))
        return st;
    /* StackAudioFrames: x [1500][d] is [n_stk][stack * d] once padded with zero frames */
    if (pad_rows &&
        (st = be->upload(c, b->x + (size_t)N_POS * d, b->host_zero, pad_rows * d * sizeof(float))))
        return st;
    /* UltravoxProjector: rmsnorm, W1, SwiGLU (x half times silu of the gate half),
     * rmsnorm, W2 */
    if ((st = be->rmsnorm(c, b->x, e->norm_pre.data, S, e->n_stk, PROJ_RMS_EPS, b->y)) ||
        (st = be->matmul(c, &e->mlp1_x, b->y, e->n_stk, b->pa)) ||
        (st = be->matmul(c, &e->mlp1_gate, b->y, e->n_stk, b->pg)) ||
        (st = be->silu_mul(c, b->pg, b->pa, (int64_t)e->n_stk * P2)) ||
        (st = be->rmsnorm(c, b->pg, e->norm_mid.data, P2, e->n_stk, PROJ_RMS_EPS, b->pz)) ||
        (st = be->matmul(c, &e->mlp2, b->pz, e->n_stk, b->pout)))
        return st;
    return be->download(c, out, b->pout, (size_t)e->n_stk * e->n_embd_text * sizeof(float));
}

lmrt_status audio_encode(audio_encoder *e, const float *pcm16k, size_t n_samples, float **embd,
                         int32_t *n_tok)
{
    if (!e || !pcm16k || !embd || !n_tok)
        return lmrt_fail(LMRT_E_INVALID_ARG, "audio_encode: bad arguments");
    if (n_samples == 0)
        return lmrt_fail(LMRT_E_INVALID_ARG, "audio_encode: no samples");
    const int32_t total = audio_encoder_n_tokens(e, n_samples);
    size_t bytes;
    if (total < 0 ||
        __builtin_mul_overflow((size_t)total, (size_t)e->n_embd_text * sizeof(float), &bytes))
        return lmrt_fail(LMRT_E_INVALID_ARG, "audio_encode: %zu samples are too long to encode",
                         n_samples);
    float *result = lmrt_malloc(bytes);
    if (!result)
        return lmrt_fail(LMRT_E_NOMEM, "out of memory for %d audio embeddings", (int)total);
    enc_bufs b;
    lmrt_status st = bufs_alloc(e, &b);
    if (st)
        goto fail;
    const size_t n_win = audio_mel_n_windows(n_samples);
    for (size_t w = 0; w < n_win; w++) {
        float *dst = result + w * (size_t)e->n_stk * (size_t)e->n_embd_text;
        if ((st = encode_window(e, &b, pcm16k, n_samples, w, dst)))
            break;
    }
    bufs_free(e, &b);
    if (st)
        goto fail;
    *embd = result;
    *n_tok = total;
    return LMRT_OK;
fail:
    lmrt_mem_free(result);
    return st;
}
