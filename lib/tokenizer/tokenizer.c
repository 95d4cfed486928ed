/* tokenizer.c - builds a tokenizer from tokenizer.ggml.* metadata (validating every
 * id, type and count), finds special tokens in text, and turns ids back into bytes.
 * The encoders themselves are bpe.c and spm.c; the chat layout is chat.c. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "tokenizer/tokenizer_impl.h"

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */
/* ------------------------------------------------------------------------ */

lmrt_status token_vec_push(token_vec *v, int32_t id)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? 2 * v->cap : 64;
        int32_t *ids = lmrt_realloc(v->ids, cap * sizeof *ids);
        if (!ids)
            return lmrt_fail(LMRT_E_NOMEM, "out of memory for %zu token ids", cap);
        v->ids = ids;
        v->cap = cap;
    }
    v->ids[v->n++] = id;
    return LMRT_OK;
}

void token_vec_free(token_vec *v)
{
    if (!v)
        return;
    lmrt_mem_free(v->ids);
    v->ids = NULL;
    v->n = v->cap = 0;
}

uint32_t tok_arena_put(tokenizer *t, const void *bytes, size_t len)
{
    uint32_t off = (uint32_t)t->arena_len;
    if (len)
        memcpy(t->arena + t->arena_len, bytes, len);
    t->arena_len += len;
    return off;
}

int32_t tok_find_normal(const tokenizer *t, const void *text, size_t len)
{
    int64_t id = vocab_map_get(&t->by_text, text, len);
    return id >= 0 && t->tokens[id].kind == TOKEN_KIND_NORMAL ? (int32_t)id : -1;
}

static void text_key(const void *ctx, uint32_t id, const void **key, size_t *len)
{
    const tokenizer *t = ctx;
    *key = t->arena + t->tokens[id].text;
    *len = t->tokens[id].text_len;
}

static int32_t find_text(const tokenizer *t, const char *text)
{
    return (int32_t)vocab_map_get(&t->by_text, text, strlen(text));
}

/* ------------------------------------------------------------------------ */
/* Loading                                                                  */
/* ------------------------------------------------------------------------ */

/* The array under `key` when it has `n` elements of a numeric type; NULL when absent. */
static lmrt_status find_numeric_array(const gguf_file *f, const char *key, uint64_t n,
                                      bool want_float, const gguf_value **out)
{
    *out = NULL;
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv)
        return LMRT_OK;
    uint32_t et = kv->value.type == GGUF_TYPE_ARRAY ? kv->value.v.arr.elem_type : GGUF_TYPE_ARRAY;
    bool is_float = et == GGUF_TYPE_FLOAT32 || et == GGUF_TYPE_FLOAT64;
    bool is_int = gguf_type_size(et) && et != GGUF_TYPE_BOOL && !is_float;
    if (!(want_float ? is_float : is_int))
        return lmrt_fail(LMRT_E_FORMAT, "%s: key '%s' is not an array of %s", f->path, key,
                         want_float ? "floats" : "integers");
    if (kv->value.v.arr.count != n)
        return lmrt_fail(LMRT_E_FORMAT, "%s: key '%s' has %" PRIu64 " entries, but the "
                         "vocabulary has %" PRIu64 " tokens", f->path, key,
                         kv->value.v.arr.count, n);
    *out = &kv->value;
    return LMRT_OK;
}

static lmrt_status load_tokens(tokenizer *t, const gguf_file *f)
{
    static const char key[] = "tokenizer.ggml.tokens";
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv)
        return lmrt_fail(LMRT_E_FORMAT, "%s: the vocabulary has no '%s'", f->path, key);
    if (kv->value.type != GGUF_TYPE_ARRAY || kv->value.v.arr.elem_type != GGUF_TYPE_STRING)
        return lmrt_fail(LMRT_E_FORMAT, "%s: key '%s' is not an array of strings", f->path, key);
    uint64_t n = kv->value.v.arr.count;
    if (n == 0 || n >= INT32_MAX)
        return lmrt_fail(LMRT_E_FORMAT, "%s: '%s' has %" PRIu64 " tokens", f->path, key, n);
    const gguf_str *strs = kv->value.v.arr.strs;

    lmrt_status st;
    const gguf_value *types, *scores;
    if ((st = find_numeric_array(f, "tokenizer.ggml.token_type", n, false, &types)) ||
        (st = find_numeric_array(f, "tokenizer.ggml.scores", n, true, &scores)))
        return st;

    /* Texts, then pieces, which are never longer than their texts. */
    uint64_t total = 0;
    for (uint64_t i = 0; i < n; i++)
        total += strs[i].len;
    if (total > UINT32_MAX / 2 - 1)
        return lmrt_fail(LMRT_E_FORMAT, "%s: '%s' holds %" PRIu64 " bytes of text, more than "
                         "lmrt supports", f->path, key, total);
    t->n_vocab = (int32_t)n;
    t->tokens = lmrt_calloc(n, sizeof *t->tokens);
    t->arena_cap = 2 * (size_t)total + 1;
    t->arena = lmrt_malloc(t->arena_cap);
    if (!t->tokens || !t->arena)
        return lmrt_fail(LMRT_E_NOMEM, "%s: out of memory for %" PRIu64 " tokens", f->path, n);
    if ((st = vocab_map_init(&t->by_text, (size_t)n, text_key, t)))
        return st;
    for (uint64_t i = 0; i < n; i++) {
        tok_entry *e = &t->tokens[i];
        e->text = tok_arena_put(t, strs[i].ptr, (size_t)strs[i].len);
        e->text_len = (uint32_t)strs[i].len;
        e->piece = e->text;          /* control, unknown, user-defined: the text itself */
        e->piece_len = e->text_len;
        e->kind = TOKEN_KIND_NORMAL;
        if (types) {
            int64_t k = gguf_array_int(types, i);
            if (k < 0 || k > TOKEN_KIND_BYTE)
                return lmrt_fail(LMRT_E_FORMAT, "%s: tokenizer.ggml.token_type[%" PRIu64 "] = "
                                 "%" PRId64 " is not a token type (1..6)", f->path, i, k);
            e->kind = k == 0 ? TOKEN_KIND_NORMAL : (uint8_t)k;   /* 0: llama.cpp's "undefined" */
        }
        if (e->kind == TOKEN_KIND_UNUSED)
            e->piece_len = 0;
        if (scores) {
            double s = gguf_array_float(scores, i);
            if (isnan(s))
                return lmrt_fail(LMRT_E_FORMAT, "%s: tokenizer.ggml.scores[%" PRIu64 "] is "
                                 "not a number", f->path, i);
            e->score = (float)s;
        }
        vocab_map_put(&t->by_text, (uint32_t)i, true);   /* as llama.cpp: the last id wins */
    }
    return LMRT_OK;
}

/* A special id from `key`: absent keeps *id; -1 (also as UINT32) means none. */
static lmrt_status read_special(const tokenizer *t, const gguf_file *f, const char *key,
                                int32_t *id)
{
    int64_t v;
    lmrt_status st = gguf_get_int(f, key, &v);
    if (st == LMRT_E_NOT_FOUND)
        return LMRT_OK;
    if (st)
        return st;
    if (v == -1 || v == UINT32_MAX) {
        *id = -1;
        return LMRT_OK;
    }
    if (v < 0 || v >= t->n_vocab)
        return lmrt_fail(LMRT_E_FORMAT, "%s: key '%s' = %" PRId64 " is not a token id (the "
                         "vocabulary has %d tokens)", f->path, key, v, (int)t->n_vocab);
    *id = (int32_t)v;
    return LMRT_OK;
}

static lmrt_status read_flag(const gguf_file *f, const char *key, bool *flag)
{
    lmrt_status st = gguf_get_bool(f, key, flag);
    return st == LMRT_E_NOT_FOUND ? LMRT_OK : st;
}

static lmrt_status load_specials(tokenizer *t, const gguf_file *f)
{
    bool spm = t->type == TOK_SPM;
    t->bos = spm && t->n_vocab > 1 ? 1 : -1;   /* llama.cpp's SentencePiece defaults */
    t->eos = spm && t->n_vocab > 2 ? 2 : -1;
    t->unk = spm ? 0 : -1;
    t->eot = find_text(t, "<|eot_id|>");
    t->eom = find_text(t, "<|eom_id|>");
    t->pad = -1;
    t->add_bos = true;
    t->add_space_prefix = spm;
    lmrt_status st;
    if ((st = read_special(t, f, "tokenizer.ggml.bos_token_id", &t->bos)) ||
        (st = read_special(t, f, "tokenizer.ggml.eos_token_id", &t->eos)) ||
        (st = read_special(t, f, "tokenizer.ggml.eot_token_id", &t->eot)) ||
        (st = read_special(t, f, "tokenizer.ggml.eom_token_id", &t->eom)) ||
        (st = read_special(t, f, "tokenizer.ggml.unknown_token_id", &t->unk)) ||
        (st = read_special(t, f, "tokenizer.ggml.padding_token_id", &t->pad)) ||
        (st = read_flag(f, "tokenizer.ggml.add_bos_token", &t->add_bos)) ||
        (st = read_flag(f, "tokenizer.ggml.add_space_prefix", &t->add_space_prefix)))
        return st;

    int32_t candidates[4] = {t->eos, t->eot, t->eom, find_text(t, "<|end_of_text|>")};
    for (int i = 0; i < 4; i++) {
        bool seen = candidates[i] < 0;
        for (int j = 0; j < t->n_eog && !seen; j++)
            seen = t->eog[j] == candidates[i];
        if (!seen)
            t->eog[t->n_eog++] = candidates[i];
    }
    return LMRT_OK;
}

static bool is_special_kind(uint8_t kind)
{
    return kind == TOKEN_KIND_CONTROL || kind == TOKEN_KIND_USER_DEFINED ||
           kind == TOKEN_KIND_UNKNOWN;
}

static bool in_set(const uint64_t set[4], unsigned char b)
{
    return set[b >> 6] >> (b & 63) & 1;
}

static lmrt_status load_special_lens(tokenizer *t)
{
    size_t n = 0;
    for (int32_t id = 0; id < t->n_vocab; id++)
        n += is_special_kind(t->tokens[id].kind) && t->tokens[id].text_len > 0;
    t->special_lens = lmrt_calloc(n ? n : 1, sizeof *t->special_lens);
    if (!t->special_lens)
        return lmrt_fail(LMRT_E_NOMEM, "out of memory for %zu special tokens", n);
    for (int32_t id = 0; id < t->n_vocab; id++) {
        const tok_entry *e = &t->tokens[id];
        if (!is_special_kind(e->kind) || e->text_len == 0)
            continue;
        size_t i = 0;   /* its length's entry, kept in descending order */
        while (i < t->n_special_lens && t->special_lens[i].len > e->text_len)
            i++;
        if (i == t->n_special_lens || t->special_lens[i].len != e->text_len) {
            memmove(&t->special_lens[i + 1], &t->special_lens[i],
                    (t->n_special_lens - i) * sizeof *t->special_lens);
            memset(&t->special_lens[i], 0, sizeof *t->special_lens);
            t->special_lens[i].len = e->text_len;
            t->n_special_lens++;
        }
        unsigned char first = (unsigned char)t->arena[e->text];
        unsigned char last = (unsigned char)t->arena[e->text + e->text_len - 1];
        t->special_lens[i].first[first >> 6] |= 1ull << (first & 63);
        t->special_lens[i].last[last >> 6] |= 1ull << (last & 63);
    }
    return LMRT_OK;
}

lmrt_status tokenizer_load(const gguf_file *f, tokenizer **out)
{
    gguf_str model;
    lmrt_status st = gguf_get_str(f, "tokenizer.ggml.model", &model);
    if (st == LMRT_E_NOT_FOUND) {
        *out = NULL;
        return LMRT_OK;
    }
    if (st)
        return st;
    enum tok_type type;
    if (model.len == 4 && memcmp(model.ptr, "gpt2", 4) == 0) {
        type = TOK_BPE;
    } else if (model.len == 5 && memcmp(model.ptr, "llama", 5) == 0) {
        type = TOK_SPM;
    } else if ((model.len == 4 && memcmp(model.ptr, "none", 4) == 0) ||
               (model.len == 8 && memcmp(model.ptr, "no_vocab", 8) == 0)) {
        *out = NULL;
        return LMRT_OK;
    } else {
        return lmrt_fail(LMRT_E_UNSUPPORTED, "%s: tokenizer.ggml.model = '%.*s' is not "
                         "supported by lmrt (it knows 'gpt2' and 'llama')", f->path,
                         (int)(model.len > 64 ? 64 : model.len), model.ptr);
    }

    tokenizer *t = lmrt_calloc(1, sizeof *t);
    if (!t)
        return lmrt_fail(LMRT_E_NOMEM, "%s: out of memory for the tokenizer", f->path);
    t->type = type;
    for (unsigned b = 0; b < 256; b++)
        t->byte_token[b] = -1;
    if ((st = load_tokens(t, f)) ||
        (st = load_specials(t, f)) ||
        (st = type == TOK_BPE ? bpe_load(t, f) : spm_load(t, f)) ||
        (st = load_special_lens(t)))
        goto fail;
    *out = t;
    return LMRT_OK;
fail:
    tokenizer_free(t);
    return st;
}

void tokenizer_free(tokenizer *t)
{
    if (!t)
        return;
    vocab_map_free(&t->merges);
    lmrt_mem_free(t->merge_result);
    lmrt_mem_free(t->merge_pair);
    lmrt_mem_free(t->special_lens);
    vocab_map_free(&t->by_text);
    lmrt_mem_free(t->arena);
    lmrt_mem_free(t->tokens);
    lmrt_mem_free(t);
}

int32_t tokenizer_n_vocab(const tokenizer *t) { return t->n_vocab; }
int32_t tokenizer_bos(const tokenizer *t) { return t->bos; }
int32_t tokenizer_eos(const tokenizer *t) { return t->eos; }
int32_t tokenizer_eot(const tokenizer *t) { return t->eot; }
int32_t tokenizer_pad(const tokenizer *t) { return t->pad; }
bool tokenizer_adds_bos(const tokenizer *t) { return t->add_bos; }
bool tokenizer_adds_space_prefix(const tokenizer *t) { return t->add_space_prefix; }

bool tokenizer_is_eog(const tokenizer *t, int32_t id)
{
    for (int i = 0; i < t->n_eog; i++)
        if (t->eog[i] == id)
            return true;
    return false;
}

/* ------------------------------------------------------------------------ */
/* Encoding                                                                 */
/* ------------------------------------------------------------------------ */

/* The longest special token that starts at text[0..len), or -1. */
static int32_t match_special(const tokenizer *t, const char *text, size_t len, size_t *match_len)
{
    for (size_t i = 0; i < t->n_special_lens; i++) {
        const struct tok_special_len *sl = &t->special_lens[i];
        if (sl->len > len || !in_set(sl->first, (unsigned char)text[0]) ||
            !in_set(sl->last, (unsigned char)text[sl->len - 1]))
            continue;
        int64_t id = vocab_map_get(&t->by_text, text, sl->len);
        if (id >= 0 && is_special_kind(t->tokens[id].kind)) {
            *match_len = sl->len;
            return (int32_t)id;
        }
    }
    return -1;
}

static lmrt_status encode_plain(const tokenizer *t, const char *text, size_t len,
                                bool after_special, token_vec *out)
{
    if (t->type == TOK_BPE)
        return bpe_encode(t, text, len, out);
    return spm_encode(t, text, len, t->add_space_prefix && after_special, out);
}

lmrt_status tokenizer_encode(const tokenizer *t, const char *text, size_t len, bool add_bos,
                             bool parse_special, token_vec *out)
{
    if (len > INT32_MAX / 4)
        return lmrt_fail(LMRT_E_INVALID_ARG, "text of %zu bytes is more than lmrt tokenizes "
                         "at once (512 MiB)", len);
    size_t n_entry = out->n;
    lmrt_status st = LMRT_OK;
    if (add_bos && t->add_bos && t->bos >= 0)
        st = token_vec_push(out, t->bos);
    /* Text between special tokens is encoded on its own; SentencePiece puts its dummy
     * prefix before the first stretch and before each one that follows a special token. */
    bool after_special = true;
    size_t start = 0;
    for (size_t pos = 0; pos < len && parse_special && !st;) {
        size_t n;
        int32_t id = match_special(t, text + pos, len - pos, &n);
        if (id < 0) {
            pos++;
            continue;
        }
        if (pos > start)
            st = encode_plain(t, text + start, pos - start, after_special, out);
        if (!st)
            st = token_vec_push(out, id);
        after_special = true;
        pos += n;
        start = pos;
    }
    if (!st && start < len)
        st = encode_plain(t, text + start, len - start, after_special, out);
    if (st)
        out->n = n_entry;
    return st;
}

/* ------------------------------------------------------------------------ */
/* Decoding                                                                 */
/* ------------------------------------------------------------------------ */

lmrt_status tokenizer_token_bytes(const tokenizer *t, int32_t id, bool render_special,
                                  char scratch[4], const char **out_bytes, size_t *out_len)
{
    (void)scratch;   /* every piece, byte tokens included, lives in the arena */
    if (id < 0 || id >= t->n_vocab)
        return lmrt_fail(LMRT_E_INVALID_ARG, "token id %d is outside the vocabulary "
                         "(%d tokens)", (int)id, (int)t->n_vocab);
    const tok_entry *e = &t->tokens[id];
    *out_bytes = t->arena + e->piece;
    *out_len = e->kind == TOKEN_KIND_CONTROL && !render_special ? 0 : e->piece_len;
    return LMRT_OK;
}

lmrt_status tokenizer_decode(const tokenizer *t, const int32_t *ids, size_t n,
                             bool render_special, char *buf, size_t cap, size_t *out_len)
{
    size_t total = 0;
    for (int pass = 0; pass < 2; pass++) {
        bool strip = t->add_space_prefix;
        size_t at = 0;
        for (size_t i = 0; i < n; i++) {
            const char *bytes = NULL;
            char scratch[4];
            size_t len = 0;
            lmrt_status st = tokenizer_token_bytes(t, ids[i], render_special, scratch, &bytes,
                                                   &len);
            if (st)
                return lmrt_fail_prefix(st, "ids[%zu]", i);
            /* Undo the dummy prefix: one space off the first token that is not control. */
            if (strip && t->tokens[ids[i]].kind != TOKEN_KIND_CONTROL) {
                strip = false;
                if (len && bytes[0] == ' ')
                    bytes++, len--;
            }
            if (pass == 1 && len)
                memcpy(buf + at, bytes, len);
            at += len;
        }
        total = at;
        if (!buf || total > cap)
            break;
    }
    *out_len = total;
    return LMRT_OK;
}

/* ------------------------------------------------------------------------ */
/* UTF-8 safe streaming                                                     */
/* ------------------------------------------------------------------------ */

/* Bytes a sequence starting with `lead` has, 0 for a byte that cannot start one. */
static size_t utf8_seq_len(unsigned char lead)
{
    if (lead < 0x80)
        return 1;
    if (lead >= 0xC2 && lead <= 0xDF)
        return 2;
    if (lead >= 0xE0 && lead <= 0xEF)
        return 3;
    if (lead >= 0xF0 && lead <= 0xF4)
        return 4;
    return 0;
}

/* Whether `c` may follow the pending bytes (the second byte is narrower after
 * E0, ED, F0 and F4: no overlong forms, surrogates or values past U+10FFFF). */
static bool utf8_continues(const utf8_stream *s, unsigned char c)
{
    if ((c & 0xC0) != 0x80)
        return false;
    if (s->n_pending != 1)
        return true;
    switch (s->pending[0]) {
    case 0xE0: return c >= 0xA0;
    case 0xED: return c <= 0x9F;
    case 0xF0: return c >= 0x90;
    case 0xF4: return c <= 0x8F;
    default: return true;
    }
}

size_t utf8_stream_push(utf8_stream *s, const char *bytes, size_t len, char *out)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)bytes[i];
        if (s->n_pending) {
            if (utf8_continues(s, c)) {
                s->pending[s->n_pending++] = c;
                if (s->n_pending == utf8_seq_len(s->pending[0])) {
                    memcpy(out + n, s->pending, s->n_pending);
                    n += s->n_pending;
                    s->n_pending = 0;
                }
                continue;
            }
            /* It can no longer become valid: pass it through as it is. */
            memcpy(out + n, s->pending, s->n_pending);
            n += s->n_pending;
            s->n_pending = 0;
        }
        if (utf8_seq_len(c) > 1)
            s->pending[s->n_pending++] = c;
        else
            out[n++] = (char)c;
    }
    return n;
}

size_t utf8_stream_flush(utf8_stream *s, char *out)
{
    size_t n = s->n_pending;
    memcpy(out, s->pending, n);
    s->n_pending = 0;
    return n;
}
