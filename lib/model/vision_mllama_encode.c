/* vision_mllama_encode.c - the forward pass of the Llama 3.2 Vision image encoder on
 * the backend vtable: patch embedding, gated tile and position embeddings, the local
 * and global transformers over every tile slot with HF's attention mask, the
 * intermediate-layer concatenation and the projector. Binding is vision_mllama.c.
 *
 * Token layout. HF runs max_num_tiles tiles of n_pos positions, each padded with
 * zero slots to a multiple of 8, through both transformers as one sequence. Its
 * mask blocks a query from a key only when both are "invalid" (a pad slot or a tile
 * the image does not use): valid queries see every key, invalid ones see only the
 * valid keys. Attention does not care about order, so lmrt keeps the rows permuted:
 *   rows [0, Nv)            the image's tiles, tile by tile, n_pos rows each (Nv = tiles * n_pos)
 *   rows [Nv, T * n_pos)    the unused tiles' positions, tile by tile
 *   rows [T * n_pos, N)     the pad slots, n_pad per tile, tile by tile
 * and the mask becomes two unmasked attention calls: rows [0, Nv) over all N keys, rows
 * [Nv, N) over the first Nv keys. Rows [0, Nv) are also the output, in order. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "model/mllama_preprocess.h"
#include "model/vision_mllama.h"
#include "model/vision_mllama_impl.h"

/* Backend buffers of one encode. E = n_embd, F = n_ff, N = all rows. */
typedef struct enc_bufs {
    float *x;        /* [N][E] the residual stream */
    float *h;        /* [N][E] normed input / block outputs / gathered embeddings */
    float *q, *k, *vv, *att;  /* [N][E] */
    float *ff;       /* [N][F] */
    float *pix;      /* [tiles][S][S][3] normalized pixels */
    float *cols;     /* [n_side^2][3 p p] one tile unfolded */
    float *cat;      /* [Nv][E (1 + n_inter)] projector input (after the blocks) */
    float *proj;     /* [Nv][n_embd_text] */
} enc_bufs;

static lmrt_status buf_alloc(const mllama_vision *v, size_t rows, size_t cols, float **out)
{
    size_t n, bytes;
    if (__builtin_mul_overflow(rows, cols, &n) || __builtin_mul_overflow(n, sizeof(float), &bytes))
        return lmrt_fail(LMRT_E_NOMEM, "mllama vision: %zu x %zu floats overflow", rows, cols);
    void *p;
    lmrt_status st = v->be->alloc(v->bctx, bytes, &p);
    if (st)
        return st;
    *out = p;
    return LMRT_OK;
}

static void bufs_free_blocks(const mllama_vision *v, enc_bufs *b)
{
    float **p[] = {&b->h, &b->q, &b->k, &b->vv, &b->att, &b->ff, &b->pix, &b->cols};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) {
        v->be->free(v->bctx, *p[i]);
        *p[i] = NULL;
    }
}

static void bufs_free(const mllama_vision *v, enc_bufs *b)
{
    bufs_free_blocks(v, b);
    v->be->free(v->bctx, b->x);
    v->be->free(v->bctx, b->cat);
    v->be->free(v->bctx, b->proj);
    memset(b, 0, sizeof *b);
}

/* y += g * x over n floats; a gate of exactly 1 is a plain add. */
static lmrt_status add_gated(const mllama_vision *v, float *y, const float *x, float g, int64_t n)
{
    return g == 1.0f ? v->be->add(v->bctx, y, x, n) : v->be->add_scaled(v->bctx, y, x, g, n);
}

/* Patch, class, tile and position embeddings of every tile slot, then ln_pre. */
static lmrt_status embed(const mllama_vision *v, enc_bufs *b, const mllama_tiling *tl,
                         int32_t *ids)
{
    const backend_vtable *be = v->be;
    backend_ctx *c = v->bctx;
    const int32_t E = v->n_embd, P = v->n_pos, T = v->max_tiles, S = v->image_size;
    const int32_t p = v->patch_size, n_tiles = tl->tiles_h * tl->tiles_w;
    const size_t tile_px = (size_t)S * (size_t)S * 3;
    float *pos = b->att, *rows = b->h;        /* [P][E] scratch, free until the blocks */
    lmrt_status st;
    for (int32_t q = 0; q < P; q++)
        ids[q] = q;
    if ((st = be->get_rows(c, &v->pos_embd, ids, P, pos)))
        return st;
    for (int32_t t = 0; t < T; t++) {
        float *x = b->x + (size_t)t * (size_t)P * (size_t)E;   /* tile t's P rows */
        const int32_t slot = (tl->aspect_ratio_id * T + t);  /* row of the tile tables */
        /* Unused tiles are zero pixels (HF pads with zeros after normalizing): zero
         * patch embeddings, which the fresh buffer already holds. */
        if (t < n_tiles) {
            if ((st = be->im2col(c, b->pix + (size_t)t * tile_px, 3, S, S, p, p, p, p, 0, 0,
                                 b->cols)) ||
                (st = be->matmul(c, &v->patch_embd, b->cols, P - 1, x + E)))
                return st;
        }
        /* pre-tile embedding on the patches (not the class token, added after it) */
        if ((st = be->get_rows(c, &v->pre_tile, &slot, 1, rows)))
            return st;
        for (int32_t q = 1; q < P; q++)
            if ((st = add_gated(v, x + (size_t)q * E, rows, v->g_pre, E)))
                return st;
        int32_t zero = 0;
        if ((st = be->get_rows(c, &v->class_embd, &zero, 1, x)))
            return st;
        for (int32_t q = 0; q < P; q++)
            ids[q] = slot * P + q;
        if ((st = add_gated(v, x, pos, v->g_pos, (int64_t)P * E)) ||
            (st = be->get_rows(c, &v->tile_pos, ids, P, rows)) ||
            (st = add_gated(v, x, rows, v->g_tile, (int64_t)P * E)))
            return st;
    }
    /* ln_pre over the tiles' positions; the pad slots stay zero, as HF pads after it. */
    return be->layernorm(c, b->x, (const float *)v->pre_ln_w.data, (const float *)v->pre_ln_b.data,
                         E, T * P, v->eps, b->x);
}

/* One pre-norm block over all N rows; the mask as the header comment explains. */
static lmrt_status run_block(const mllama_vision *v, const mllama_block *L, enc_bufs *b,
                             int32_t N, int32_t Nv)
{
    const backend_vtable *be = v->be;
    backend_ctx *c = v->bctx;
    const int32_t E = v->n_embd, F = v->n_ff;
    lmrt_status st;
    attention_params ap = {
        .n_tok = Nv,
        .n_past = 0,
        .n_head = v->n_head,
        .n_head_kv = v->n_head,
        .head_dim = v->head_dim,
        .kv_stride = E,
        .scale = (float)(1.0 / sqrt((double)v->head_dim)),
    };
    if ((st = be->layernorm(c, b->x, (const float *)L->attn_norm_w.data,
                            (const float *)L->attn_norm_b.data, E, N, v->eps, b->h)) ||
        (st = be->matmul(c, &L->wq, b->h, N, b->q)) ||
        (st = be->matmul(c, &L->wk, b->h, N, b->k)) ||
        (st = be->matmul(c, &L->wv, b->h, N, b->vv)) ||
        (st = be->attention_full(c, &ap, N, b->q, b->k, b->vv, b->att)))
        return st;
    ap.n_tok = N - Nv;
    if (ap.n_tok > 0 && (st = be->attention_full(c, &ap, Nv, b->q + (size_t)Nv * E, b->k,
                                                 b->vv, b->att + (size_t)Nv * E)))
        return st;
    if ((st = be->matmul(c, &L->wo, b->att, N, b->h)) ||
        (st = add_gated(v, b->x, b->h, L->gate_attn, (int64_t)N * E)) ||
        (st = be->layernorm(c, b->x, (const float *)L->ffn_norm_w.data,
                            (const float *)L->ffn_norm_b.data, E, N, v->eps, b->h)) ||
        (st = be->matmul(c, &L->fc1_w, b->h, N, b->ff)) ||
        (st = be->add_bias(c, b->ff, (const float *)L->fc1_b.data, F, N)) ||
        (st = be->gelu(c, b->ff, (int64_t)N * F, BACKEND_GELU_ERF)) ||
        (st = be->matmul(c, &L->fc2_w, b->ff, N, b->h)) ||
        (st = be->add_bias(c, b->h, (const float *)L->fc2_b.data, E, N)))
        return st;
    return add_gated(v, b->x, b->h, L->gate_ffn, (int64_t)N * E);
}

/* Copies rows [0, Nv) of the stream into column block `k` of the host projector input:
 * HF stacks the chosen layers on a last axis, so feature j of layer k lands at
 * E + j * n_inter + k (k = -1: the final states, at 0 .. E-1). */
static lmrt_status gather(const mllama_vision *v, const enc_bufs *b, int32_t Nv, int32_t k,
                          float *tmp, float *cat)
{
    const size_t E = (size_t)v->n_embd, width = E * (size_t)(1 + v->n_inter);
    lmrt_status st = v->be->download(v->bctx, tmp, b->x, (size_t)Nv * E * sizeof(float));
    if (st)
        return st;
    for (size_t r = 0; r < (size_t)Nv; r++) {
        const float *src = tmp + r * E;
        float *dst = cat + r * width;
        if (k < 0)
            memcpy(dst, src, E * sizeof(float));
        else
            for (size_t j = 0; j < E; j++)
                dst[E + j * (size_t)v->n_inter + (size_t)k] = src[j];
    }
    return LMRT_OK;
}

/* Adds tile t's post-tile embedding to its n_pos rows and its pad slots, every tile. */
static lmrt_status post_tile(const mllama_vision *v, enc_bufs *b, int32_t id)
{
    const int32_t E = v->n_embd, P = v->n_pos, T = v->max_tiles;
    lmrt_status st;
    for (int32_t t = 0; t < T; t++) {
        int32_t slot = id * T + t;
        if ((st = v->be->get_rows(v->bctx, &v->post_tile, &slot, 1, b->h)))
            return st;
        for (int32_t q = 0; q < P + v->n_pad; q++) {
            size_t row = q < P ? (size_t)t * P + (size_t)q
                               : (size_t)T * P + (size_t)t * v->n_pad + (size_t)(q - P);
            if ((st = add_gated(v, b->x + row * (size_t)E, b->h, v->g_post, E)))
                return st;
        }
    }
    return LMRT_OK;
}

lmrt_status mllama_vision_encode(mllama_vision *v, const image_rgb8 *img, float **features,
                                 int32_t *n_tok)
{
    if (!v || !img || !features || !n_tok)
        return lmrt_fail(LMRT_E_INVALID_ARG, "mllama_vision_encode: NULL argument");
    const backend_vtable *be = v->be;
    backend_ctx *c = v->bctx;
    mllama_tiling tl;
    float *pix_host = NULL, *tmp = NULL, *cat = NULL, *out = NULL;
    int32_t *ids = NULL;
    enc_bufs b = {0};
    lmrt_status st = mllama_preprocess(img, v->image_size, v->max_tiles, v->mean, v->std, &tl,
                                       &pix_host);
    if (st)
        return st;
    const int32_t E = v->n_embd, P = v->n_pos, T = v->max_tiles;
    const int32_t n_tiles = tl.tiles_h * tl.tiles_w, K = 3 * v->patch_size * v->patch_size;
    /* bind() bounds T <= 64 and P + pad <= 4096^2 / 1 + 8: N fits in int32. */
    const int32_t N = T * (P + v->n_pad), Nv = n_tiles * P;
    const size_t width = (size_t)E * (size_t)(1 + v->n_inter), S = (size_t)v->image_size;
    if ((st = buf_alloc(v, (size_t)N, (size_t)E, &b.x)) ||
        (st = buf_alloc(v, (size_t)N, (size_t)E, &b.h)) ||
        (st = buf_alloc(v, (size_t)N, (size_t)E, &b.q)) ||
        (st = buf_alloc(v, (size_t)N, (size_t)E, &b.k)) ||
        (st = buf_alloc(v, (size_t)N, (size_t)E, &b.vv)) ||
        (st = buf_alloc(v, (size_t)N, (size_t)E, &b.att)) ||
        (st = buf_alloc(v, (size_t)N, (size_t)v->n_ff, &b.ff)) ||
        (st = buf_alloc(v, (size_t)n_tiles, S * S * 3, &b.pix)) ||
        (st = buf_alloc(v, (size_t)(P - 1), (size_t)K, &b.cols)))
        goto done;
    ids = lmrt_malloc((size_t)P * sizeof *ids);
    tmp = lmrt_malloc((size_t)Nv * (size_t)E * sizeof *tmp);
    cat = lmrt_calloc((size_t)Nv, width * sizeof *cat);
    if (!ids || !tmp || !cat) {
        st = lmrt_fail(LMRT_E_NOMEM, "mllama vision: out of memory for %d states of %zu",
                       (int)Nv, width);
        goto done;
    }
    if ((st = be->upload(c, b.pix, pix_host, (size_t)n_tiles * S * S * 3 * sizeof(float))) ||
        (st = embed(v, &b, &tl, ids)))
        goto done;
    lmrt_mem_free(pix_host);
    pix_host = NULL;

    int32_t next = 0;   /* next entry of v->inter to capture */
    for (int32_t l = 0; l < v->n_layer + v->n_global; l++) {
        if (l == v->n_layer) {
            if (next < v->n_inter && v->inter[next] == l &&
                (st = gather(v, &b, Nv, next++, tmp, cat)))
                goto done;
            if ((st = be->layernorm(c, b.x, (const float *)v->post_ln_w.data,
                                    (const float *)v->post_ln_b.data, E, N, v->eps, b.x)) ||
                (st = post_tile(v, &b, tl.aspect_ratio_id)))
                goto done;
        }
        if (l < v->n_layer && next < v->n_inter && v->inter[next] == l &&
            (st = gather(v, &b, Nv, next++, tmp, cat)))
            goto done;
        if ((st = run_block(v, &v->blocks[l], &b, N, Nv)))
            goto done;
    }
    if (v->n_global == 0) {   /* the loop above never reached its l == n_layer step */
        if (next < v->n_inter && (st = gather(v, &b, Nv, next++, tmp, cat)))
            goto done;
        if ((st = be->layernorm(c, b.x, (const float *)v->post_ln_w.data,
                                (const float *)v->post_ln_b.data, E, N, v->eps, b.x)) ||
            (st = post_tile(v, &b, tl.aspect_ratio_id)))
            goto done;
    }
    if ((st = gather(v, &b, Nv, -1, tmp, cat)))
        goto done;

    /* The projector: mm.0 over [final ; intermediates], rows [0, Nv) only. */
    bufs_free_blocks(v, &b);
    out = lmrt_malloc((size_t)Nv * (size_t)v->n_embd_text * sizeof *out);
    if (!out) {
        st = lmrt_fail(LMRT_E_NOMEM, "mllama vision: out of memory for %d x %d features",
                       (int)Nv, (int)v->n_embd_text);
        goto done;
    }
    if ((st = buf_alloc(v, (size_t)Nv, width, &b.cat)) ||
        (st = buf_alloc(v, (size_t)Nv, (size_t)v->n_embd_text, &b.proj)) ||
        (st = be->upload(c, b.cat, cat, (size_t)Nv * width * sizeof(float))) ||
        (st = be->matmul(c, &v->mm_w, b.cat, Nv, b.proj)) ||
        (st = be->add_bias(c, b.proj, (const float *)v->mm_b.data, v->n_embd_text, Nv)) ||
        (st = be->download(c, out, b.proj,
                           (size_t)Nv * (size_t)v->n_embd_text * sizeof(float))))
        goto done;
    *features = out;
    *n_tok = Nv;
    out = NULL;
done:
    lmrt_mem_free(out);
    bufs_free(v, &b);
    lmrt_mem_free(cat);
    lmrt_mem_free(tmp);
    lmrt_mem_free(ids);
    lmrt_mem_free(pix_host);
    return st;
}
