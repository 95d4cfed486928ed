/* session_state.c - copying a session: fork, and save/restore through a blob.
 *
 * Blob layout (little-endian):
 *   header, 40 bytes, uncompressed:
 *     char magic[8] "LMRTSES\0", u32 format version (2), u32 CRC32 of the blob
 *     (every byte but these four, so that no flipped bit goes unnoticed),
 *     u64 model hash, u64 payload size (uncompressed), u64 compressed size
 *   payload, zlib-compressed:
 *     i32 n_ctx, i32 n_past, i32 n_vocab, i32 kv_dim, i32 n_layer,
 *     u8 keep_all_logits, u8 has_logits, u8 text_started, u8 n_pending, u8 pending[4],
 *     i32 n_cross (rows of Llama 3.2 Vision image states; 0 for other models),
 *     sampler (8 x i32/f32, u64 seed, 4 x u64 rng state),
 *     i32 tokens[n_past] (-1 for a position fed as an image/audio embedding),
 *     f32 last logits[n_vocab] (only when has_logits),
 *     per layer: f32 k[n_past][kv_dim], f32 v[n_past][kv_dim],
 *     f32 cross k[n_cross_layers][n_cross][kv_dim], then cross v likewise
 * Every field is checked against the model and the sizes before it is used. */
#include <string.h>
#include <zlib.h>

#include "api/session.h"
#include "base/alloc.h"

#define BLOB_MAGIC "LMRTSES"
#define BLOB_VERSION 2u      /* 2: Llama 3.2 Vision cross-attention states */
#define BLOB_HEADER 40

/* Copies positions [0, n) of one layer's cache from src to dst (backend memory). */
static lmrt_status copy_layer(const llama_weights *w, float *dst, const float *src, size_t n,
                              void *tmp)
{
    lmrt_status st = w->be->download(w->bctx, tmp, src, n);
    return st ? st : w->be->upload(w->bctx, dst, tmp, n);
}

/* Downloads a state's cross-attention states into k, v (host memory, each
 * llama_state_cross_bytes long). */
static lmrt_status download_cross(const llama_weights *w, const llama_state *st, void *k,
                                  void *v)
{
    size_t bytes = llama_state_cross_bytes(w, st->n_cross_kv);
    lmrt_status s = w->be->download(w->bctx, k, st->cross_k, bytes);
    return s ? s : w->be->download(w->bctx, v, st->cross_v, bytes);
}

/* Gives dst the cross-attention states of src (none: nothing to do). */
static lmrt_status copy_cross(const llama_weights *w, const llama_state *src, llama_state *dst)
{
    if (src->n_cross_kv == 0)
        return LMRT_OK;
    size_t bytes = llama_state_cross_bytes(w, src->n_cross_kv);
    uint8_t *tmp = lmrt_malloc(2 * bytes);
    if (!tmp)
        return lmrt_fail(LMRT_E_NOMEM, "out of memory copying the image states");
    lmrt_status st = download_cross(w, src, tmp, tmp + bytes);
    if (!st)
        st = llama_state_restore_cross(w, dst, src->n_cross_kv, (const float *)tmp,
                                       (const float *)(tmp + bytes));
    lmrt_mem_free(tmp);
    return st;
}

lmrt_status lmrt_session_fork(const lmrt_session *s, lmrt_session **out)
{
    lmrt_error_clear();
    lmrt_status st;
    if ((st = session_live(s, "lmrt_session_fork")) ||
        (st = api_require(out, "lmrt_session_fork", "out")))
        return st;
    const llama_weights *w = s->ctx->decoder;
    lmrt_session *f = NULL;
    if ((st = session_new(s->ctx, s->n_ctx, s->keep_all_logits, "lmrt_session_fork", &f)))
        return st;
    size_t n = s->history.n, layer_bytes = llama_state_kv_bytes(w, (int32_t)n);
    size_t stride = (size_t)s->n_ctx * (size_t)s->state->kv_dim;
    void *tmp = lmrt_malloc(layer_bytes);
    if (!tmp) {
        st = lmrt_fail(LMRT_E_NOMEM, "lmrt_session_fork: out of memory");
        goto fail;
    }
    for (int32_t l = 0; l < w->hp.n_layer && !st; l++) {
        st = copy_layer(w, f->state->k_cache + l * stride, s->state->k_cache + l * stride,
                        layer_bytes, tmp);
        if (!st)
            st = copy_layer(w, f->state->v_cache + l * stride, s->state->v_cache + l * stride,
                            layer_bytes, tmp);
    }
    lmrt_mem_free(tmp);
    if (!st)
        st = copy_cross(w, s->state, f->state);
    for (size_t i = 0; i < n && !st; i++)
        st = token_vec_push(&f->history, s->history.ids[i]);
    if (!st && s->logits_rows > s->logits_cap)
        st = lmrt_fail(LMRT_E_INTERNAL, "lmrt_session_fork: inconsistent logits");
    if (!st && s->logits_rows > f->logits_cap) {
        float *bigger = lmrt_realloc(f->logits, (size_t)s->logits_rows *
                                                    (size_t)w->hp.n_vocab * sizeof(float));
        if (!bigger)
            st = lmrt_fail(LMRT_E_NOMEM, "lmrt_session_fork: out of memory");
        else {
            f->logits = bigger;
            f->logits_cap = s->logits_rows;
        }
    }
    if (st)
        goto fail;
    memcpy(f->logits, s->logits, (size_t)s->logits_rows * (size_t)w->hp.n_vocab * sizeof(float));
    f->logits_rows = s->logits_rows;
    f->state->n_past = (int32_t)n;
    f->smp = s->smp;
    f->detok = s->detok;
    f->text_started = s->text_started;
    *out = f;
    return LMRT_OK;
fail:
    lmrt_session_free(f);
    return st;
}

/* ---- a byte writer and reader over the payload -------------------------- */

typedef struct bytes_out {
    uint8_t *p;
    size_t len;
} bytes_out;

static void put(bytes_out *b, const void *src, size_t n)
{
    memcpy(b->p + b->len, src, n);
    b->len += n;
}
static void put_i32(bytes_out *b, int32_t v) { put(b, &v, 4); }
static void put_u64(bytes_out *b, uint64_t v) { put(b, &v, 8); }
static void put_f32(bytes_out *b, float v) { put(b, &v, 4); }

typedef struct bytes_in {
    const uint8_t *p;
    size_t len, at;
} bytes_in;

static bool get(bytes_in *b, void *dst, size_t n)
{
    if (n > b->len - b->at)
        return false;
    memcpy(dst, b->p + b->at, n);
    b->at += n;
    return true;
}

static void put_sampler(bytes_out *b, const sampler *smp)
{
    const sampler_config *c = &smp->cfg;
    put_f32(b, c->temperature);
    put_i32(b, c->top_k);
    put_f32(b, c->top_p);
    put_f32(b, c->min_p);
    put_f32(b, c->repeat_penalty);
    put_i32(b, c->repeat_last_n);
    put_f32(b, c->frequency_penalty);
    put_f32(b, c->presence_penalty);
    put_u64(b, c->seed);
    for (int i = 0; i < 4; i++)
        put_u64(b, smp->rng[i]);
}

static bool get_sampler(bytes_in *b, sampler *smp)
{
    sampler_config c;
    bool ok = get(b, &c.temperature, 4) && get(b, &c.top_k, 4) && get(b, &c.top_p, 4) &&
              get(b, &c.min_p, 4) && get(b, &c.repeat_penalty, 4) &&
              get(b, &c.repeat_last_n, 4) && get(b, &c.frequency_penalty, 4) &&
              get(b, &c.presence_penalty, 4) && get(b, &c.seed, 8);
    uint64_t rng[4];
    for (int i = 0; ok && i < 4; i++)
        ok = get(b, &rng[i], 8);
    if (!ok || sampler_configure(smp, &c) != LMRT_OK)
        return false;
    memcpy(smp->rng, rng, sizeof rng);
    return true;
}

#define SAMPLER_BYTES (8 * 4 + 8 + 4 * 8)
#define FIXED_BYTES (5 * 4 + 3 + 1 + 4 + 4 + SAMPLER_BYTES)
#define CROSS_ROWS_MAX (1 << 20) /* image-state rows a blob may claim */

/* Payload size for n positions and n_cross rows of image states; false on
 * overflow. */
static bool payload_size(const llama_weights *w, size_t n, bool has_logits, int32_t n_cross,
                         size_t *out)
{
    size_t kv = llama_state_kv_bytes(w, 1), total = FIXED_BYTES, part;
    size_t cross = llama_state_cross_bytes(w, 1), cross_part;
    if (__builtin_mul_overflow(n, 4 + 2 * (size_t)w->hp.n_layer * kv, &part) ||
        __builtin_add_overflow(total, part, &total) ||
        __builtin_add_overflow(total, has_logits ? (size_t)w->hp.n_vocab * 4 : 0, &total) ||
        __builtin_mul_overflow((size_t)n_cross, 2 * cross, &cross_part) ||
        __builtin_add_overflow(total, cross_part, &total))
        return false;
    *out = total;
    return true;
}

/* CRC32 of a whole blob except its own CRC field (bytes 12..15). */
static uint32_t blob_crc(const uint8_t *blob, size_t size)
{
    uLong crc = crc32(0L, blob, 12);
    const uint8_t *rest = blob + 16;
    size_t left = size - 16;
    while (left) {  /* zlib takes uInt lengths */
        uInt n = left > 0x40000000u ? 0x40000000u : (uInt)left;
        crc = crc32(crc, rest, n);
        rest += n;
        left -= n;
    }
    return (uint32_t)crc;
}

lmrt_status lmrt_session_save(const lmrt_session *s, void **out_data, size_t *out_size)
{
    lmrt_error_clear();
    lmrt_status st;
    if ((st = session_live(s, "lmrt_session_save")) ||
        (st = api_require(out_data, "lmrt_session_save", "out_data")) ||
        (st = api_require(out_size, "lmrt_session_save", "out_size")))
        return st;
    const llama_weights *w = s->ctx->decoder;
    size_t n = s->history.n, raw_size;
    bool has_logits = s->logits_rows > 0;
    if (!payload_size(w, n, has_logits, s->state->n_cross_kv, &raw_size))
        return lmrt_fail(LMRT_E_NOMEM, "lmrt_session_save: state too large");
    bytes_out b = {lmrt_malloc(raw_size), 0};
    uLongf zcap = compressBound((uLong)raw_size);
    uint8_t *blob = lmrt_malloc(BLOB_HEADER + (size_t)zcap);
    if (!b.p || !blob) {
        st = lmrt_fail(LMRT_E_NOMEM, "lmrt_session_save: out of memory for %zu bytes", raw_size);
        goto done;
    }
    put_i32(&b, s->n_ctx);
    put_i32(&b, (int32_t)n);
    put_i32(&b, w->hp.n_vocab);
    put_i32(&b, s->state->kv_dim);
    put_i32(&b, w->hp.n_layer);
    uint8_t flags[3] = {s->keep_all_logits, has_logits, s->text_started};
    put(&b, flags, 3);
    uint8_t pend = (uint8_t)s->detok.n_pending;
    put(&b, &pend, 1);
    put(&b, s->detok.pending, 4);
    put_i32(&b, s->state->n_cross_kv);
    put_sampler(&b, &s->smp);
    put(&b, s->history.ids, n * 4);
    if (has_logits)
        put(&b, s->logits + (size_t)(s->logits_rows - 1) * (size_t)w->hp.n_vocab,
            (size_t)w->hp.n_vocab * 4);
    size_t layer_bytes = llama_state_kv_bytes(w, (int32_t)n);
    size_t stride = (size_t)s->n_ctx * (size_t)s->state->kv_dim;
    for (int32_t l = 0; l < w->hp.n_layer && !st; l++) {
        st = w->be->download(w->bctx, b.p + b.len, s->state->k_cache + l * stride, layer_bytes);
        b.len += layer_bytes;
        if (!st)
            st = w->be->download(w->bctx, b.p + b.len, s->state->v_cache + l * stride,
                                 layer_bytes);
        b.len += layer_bytes;
    }
    if (!st && s->state->n_cross_kv) {
        size_t cross_bytes = llama_state_cross_bytes(w, s->state->n_cross_kv);
        st = download_cross(w, s->state, b.p + b.len, b.p + b.len + cross_bytes);
        b.len += 2 * cross_bytes;
    }
    if (st)
        goto done;
    if (compress2(blob + BLOB_HEADER, &zcap, b.p, (uLong)b.len, 6) != Z_OK) {
        st = lmrt_fail(LMRT_E_NOMEM, "lmrt_session_save: zlib could not compress the state");
        goto done;
    }
    uint32_t version = BLOB_VERSION;
    uint64_t hash = s->ctx->model->m->hash, raw = b.len, zlen = zcap;
    memcpy(blob, BLOB_MAGIC, 8);
    memcpy(blob + 8, &version, 4);
    memcpy(blob + 16, &hash, 8);
    memcpy(blob + 24, &raw, 8);
    memcpy(blob + 32, &zlen, 8);
    uint32_t crc = blob_crc(blob, BLOB_HEADER + (size_t)zcap);
    memcpy(blob + 12, &crc, 4);
    *out_data = blob;
    *out_size = BLOB_HEADER + (size_t)zcap;
    blob = NULL;
done:
    lmrt_mem_free(b.p);
    lmrt_mem_free(blob);
    return st;
}

/* Header checks: magic, version, model, sizes. Fills raw/zlen/crc. */
static lmrt_status check_header(const uint8_t *d, size_t size, uint64_t model_hash,
                                uint64_t *raw, uint64_t *zlen, uint32_t *crc)
{
    if (size < BLOB_HEADER || memcmp(d, BLOB_MAGIC, 8) != 0)
        return lmrt_fail(LMRT_E_FORMAT, "lmrt_session_restore: not an lmrt session blob (bad "
                         "magic or shorter than its %d-byte header)", BLOB_HEADER);
    uint32_t version;
    uint64_t hash;
    memcpy(crc, d + 12, 4);
    /* The CRC first: a damaged blob is a format error, whatever field it hit. */
    if (blob_crc(d, size) != *crc)
        return lmrt_fail(LMRT_E_FORMAT, "lmrt_session_restore: CRC32 mismatch: the blob is "
                         "damaged");
    memcpy(&version, d + 8, 4);
    memcpy(&hash, d + 16, 8);
    memcpy(raw, d + 24, 8);
    memcpy(zlen, d + 32, 8);
    if (version != BLOB_VERSION)
        return lmrt_fail(LMRT_E_MISMATCH, "lmrt_session_restore: blob format version %u; this "
                         "lmrt reads version %u", (unsigned)version, BLOB_VERSION);
    if (hash != model_hash)
        return lmrt_fail(LMRT_E_MISMATCH, "lmrt_session_restore: the blob was saved from "
                         "another model (hash %016llx, this model %016llx)",
                         (unsigned long long)hash, (unsigned long long)model_hash);
    if (*zlen != size - BLOB_HEADER)
        return lmrt_fail(LMRT_E_FORMAT, "lmrt_session_restore: the header says %llu compressed "
                         "bytes, the blob has %zu", (unsigned long long)*zlen,
                         size - BLOB_HEADER);
    return LMRT_OK;
}

/* Fills a fresh session from a decompressed payload. */
static lmrt_status load_payload(lmrt_session *s, bytes_in *b)
{
    const llama_weights *w = s->ctx->decoder;
    int32_t n_ctx, n, n_vocab, kv_dim, n_layer, n_cross;
    uint8_t flags[3], pend, pending[4];
    if (!get(b, &n_ctx, 4) || !get(b, &n, 4) || !get(b, &n_vocab, 4) || !get(b, &kv_dim, 4) ||
        !get(b, &n_layer, 4) || !get(b, flags, 3) || !get(b, &pend, 1) || !get(b, pending, 4) ||
        !get(b, &n_cross, 4))
        return lmrt_fail(LMRT_E_FORMAT, "lmrt_session_restore: payload too short");
    if (n_vocab != w->hp.n_vocab || kv_dim != s->state->kv_dim || n_layer != w->hp.n_layer ||
        n_ctx != s->n_ctx || n < 0 || n > n_ctx || pend > 4 || flags[0] > 1 || flags[1] > 1 ||
        flags[2] > 1 || n_cross < 0 || n_cross > CROSS_ROWS_MAX ||
        (n_cross > 0 && !llama_is_cross_model(w)))
        return lmrt_fail(LMRT_E_FORMAT, "lmrt_session_restore: payload fields do not fit the "
                         "model (n_ctx %d, n_past %d, vocab %d, kv %d, layers %d)", (int)n_ctx,
                         (int)n, (int)n_vocab, (int)kv_dim, (int)n_layer);
    size_t expect = 0;
    if (!payload_size(w, (size_t)n, flags[1], n_cross, &expect) || expect != b->len)
        return lmrt_fail(LMRT_E_FORMAT, "lmrt_session_restore: payload is %zu bytes, its "
                         "fields need %zu", b->len, expect);
    if (!get_sampler(b, &s->smp))
        return lmrt_fail(LMRT_E_FORMAT, "lmrt_session_restore: bad sampler settings");
    s->text_started = flags[2];
    s->detok.n_pending = pend;
    memcpy(s->detok.pending, pending, 4);
    lmrt_status st;
    for (int32_t i = 0; i < n; i++) {
        int32_t id;
        get(b, &id, 4);
        if ((id < 0 && id != SESSION_MEDIA_POSITION) || id >= w->n_tok_rows)
            return lmrt_fail(LMRT_E_FORMAT, "lmrt_session_restore: token %d out of range", id);
        if ((st = token_vec_push(&s->history, id)))
            return st;
    }
    if (flags[1]) {
        get(b, s->logits, (size_t)n_vocab * 4);
        s->logits_rows = 1;
    }
    size_t layer_bytes = llama_state_kv_bytes(w, n);
    size_t stride = (size_t)n_ctx * (size_t)kv_dim;
    for (int32_t l = 0; l < n_layer; l++) {
        if ((st = w->be->upload(w->bctx, s->state->k_cache + l * stride, b->p + b->at,
                                layer_bytes)))
            return st;
        b->at += layer_bytes;
        if ((st = w->be->upload(w->bctx, s->state->v_cache + l * stride, b->p + b->at,
                                layer_bytes)))
            return st;
        b->at += layer_bytes;
    }
    if (n_cross > 0) {
        size_t cross_bytes = llama_state_cross_bytes(w, n_cross);
        st = llama_state_restore_cross(w, s->state, n_cross, (const float *)(b->p + b->at),
                                       (const float *)(b->p + b->at + cross_bytes));
        if (st)
            return st;
        b->at += 2 * cross_bytes;
    }
    s->state->n_past = n;
    return LMRT_OK;
}

lmrt_status lmrt_session_restore(lmrt_context *ctx, const void *data, size_t size,
                                 lmrt_session **out)
{
    lmrt_error_clear();
    lmrt_status st;
    if ((st = api_context_live(ctx, "lmrt_session_restore")) ||
        (st = api_require(data, "lmrt_session_restore", "data")) ||
        (st = api_require(out, "lmrt_session_restore", "out")))
        return st;
    uint64_t raw = 0, zlen = 0;
    uint32_t crc;
    if ((st = check_header(data, size, ctx->model->m->hash, &raw, &zlen, &crc)))
        return st;
    /* n_ctx is inside the payload; peek it after inflating. Bound the inflated
     * size by the largest state this model can have before allocating it. */
    lmrt_session *s = NULL;
    llama_weights *w;
    if ((st = api_context_decoder(ctx, "lmrt_session_restore", &w)))
        return st;
    size_t limit;
    if (!payload_size(w, (size_t)(w->hp.n_ctx_train > 0 ? w->hp.n_ctx_train : 1 << 20), true,
                      llama_is_cross_model(w) ? CROSS_ROWS_MAX : 0, &limit) || raw > limit || raw < FIXED_BYTES)
        return lmrt_fail(LMRT_E_FORMAT, "lmrt_session_restore: payload size %llu is impossible "
                         "for this model", (unsigned long long)raw);
    uint8_t *payload = lmrt_malloc((size_t)raw);
    if (!payload)
        return lmrt_fail(LMRT_E_NOMEM, "lmrt_session_restore: out of memory for %llu bytes",
                         (unsigned long long)raw);
    uLongf got = (uLongf)raw;
    int z = uncompress(payload, &got, (const uint8_t *)data + BLOB_HEADER, (uLong)zlen);
    if (z != Z_OK || got != raw) {
        st = lmrt_fail(LMRT_E_FORMAT, "lmrt_session_restore: the compressed state is damaged "
                       "(zlib: %s)", z == Z_OK ? "short" : zError(z));
        goto done;
    }
    int32_t n_ctx;
    uint8_t keep_all;
    memcpy(&n_ctx, payload, 4);
    memcpy(&keep_all, payload + 20, 1);
    if (n_ctx <= 0 || keep_all > 1) {
        st = lmrt_fail(LMRT_E_FORMAT, "lmrt_session_restore: bad context length %d",
                       (int)n_ctx);
        goto done;
    }
    if ((st = session_new(ctx, n_ctx, keep_all, "lmrt_session_restore", &s)))
        goto done;
    bytes_in b = {payload, (size_t)raw, 0};
    if ((st = load_payload(s, &b))) {
        lmrt_session_free(s);
        goto done;
    }
    *out = s;
done:
    lmrt_mem_free(payload);
    return st;
}
