/* token_api.c - public entry points for tokens: special ids, end-of-generation,
 * text <-> ids and the chat format. Argument checks and caller buffers only; the
 * tokenizers themselves are lib/tokenizer/. */
#include <inttypes.h>
#include <string.h>

#include "api/handles.h"
#include "base/alloc.h"

static const char *const special_keys[] = {
    [LMRT_TOKEN_BOS] = "tokenizer.ggml.bos_token_id",
    [LMRT_TOKEN_EOS] = "tokenizer.ggml.eos_token_id",
    [LMRT_TOKEN_EOT] = "tokenizer.ggml.eot_token_id",
    [LMRT_TOKEN_PAD] = "tokenizer.ggml.padding_token_id",
};

lmrt_status lmrt_model_special_token(const lmrt_model *model, int32_t which, int32_t *out_id)
{
    lmrt_error_clear();
    lmrt_status st;
    if ((st = api_model_live(model, "lmrt_model_special_token")) ||
        (st = api_require(out_id, "lmrt_model_special_token", "out_id")))
        return st;
    if (which < 0 || which > LMRT_TOKEN_PAD)
        return lmrt_fail(LMRT_E_INVALID_ARG, "lmrt_model_special_token: %d is not an "
                         "LMRT_TOKEN_* value", (int)which);
    const struct model *m = model->m;
    int64_t id;
    if (m->tok) {
        const tokenizer *t = m->tok;
        id = which == LMRT_TOKEN_BOS ? tokenizer_bos(t) : which == LMRT_TOKEN_EOS ? tokenizer_eos(t)
           : which == LMRT_TOKEN_EOT ? tokenizer_eot(t) : tokenizer_pad(t);
        if (id < 0)
            return lmrt_fail(LMRT_E_NOT_FOUND, "lmrt_model_special_token: the vocabulary of %s "
                             "has no %s token", m->file->path,
                             (const char *[]){"BOS", "EOS", "EOT", "PAD"}[which]);
        *out_id = (int32_t)id;
        return LMRT_OK;
    }
    /* No tokenizer (e.g. tokenizer.ggml.model missing): the raw keys, if usable. */
    st = gguf_get_int(m->file, special_keys[which], &id);
    if (st == LMRT_E_NOT_FOUND || (st == LMRT_OK && (id < 0 || id >= m->hp.n_vocab)))
        return lmrt_fail(LMRT_E_NOT_FOUND, "lmrt_model_special_token: %s has no usable '%s'",
                         m->file->path, special_keys[which]);
    if (st)
        return st;
    *out_id = (int32_t)id;
    return LMRT_OK;
}

bool lmrt_model_token_is_eog(const lmrt_model *model, int32_t id)
{
    if (!model || atomic_load(&model->released))
        return false;
    if (model->m->tok)
        return tokenizer_is_eog(model->m->tok, id);
    for (int32_t which = LMRT_TOKEN_EOS; which <= LMRT_TOKEN_EOT; which++) {
        int64_t eog;
        if (gguf_get_int(model->m->file, special_keys[which], &eog) == LMRT_OK && eog == id)
            return true;
    }
    return false;
}

/* The model's tokenizer, or LMRT_E_UNSUPPORTED. */
static lmrt_status model_tokenizer(const lmrt_model *model, const char *function,
                                   const tokenizer **out)
{
    lmrt_status st = api_model_live(model, function);
    if (st)
        return st;
    if (!model->m->tok)
        return lmrt_fail(LMRT_E_UNSUPPORTED, "%s: model has no tokenizer (%s has no "
                         "tokenizer.ggml.model)", function, model->m->file->path);
    *out = model->m->tok;
    return LMRT_OK;
}

/* A caller's output buffer: NULL with cap 0 only counts; a buffer must be non-NULL. */
static lmrt_status check_buffer(const void *buf, size_t cap, const char *function,
                                const char *what)
{
    if (!buf && cap)
        return lmrt_fail(LMRT_E_INVALID_ARG, "%s: %s is NULL but its capacity is %zu",
                         function, what, cap);
    return LMRT_OK;
}

/* Copies `len` bytes of text into the caller's buffer as lmrt_detokenize promises:
 * NUL-terminated when there is room, LMRT_E_BUFFER_TOO_SMALL (only *out_len set) when
 * the text does not fit, a count when buf is NULL. */
static lmrt_status text_out(const char *function, const char *text, size_t len, char *buf,
                            size_t cap, size_t *out_len)
{
    if (buf && len > cap) {
        *out_len = len;
        return lmrt_fail(LMRT_E_BUFFER_TOO_SMALL, "%s: the text needs %zu bytes, the buffer "
                         "has %zu", function, len, cap);
    }
    if (buf) {
        if (text && len)
            memcpy(buf, text, len);
        if (len < cap)
            buf[len] = '\0';
    }
    *out_len = len;
    return LMRT_OK;
}

lmrt_status lmrt_tokenize(const lmrt_model *model, const char *text, size_t len, uint32_t flags,
                          int32_t *out_ids, size_t cap, size_t *out_n)
{
    static const char fn[] = "lmrt_tokenize";
    lmrt_error_clear();
    const tokenizer *t = NULL;
    lmrt_status st;
    if ((st = model_tokenizer(model, fn, &t)) || (st = api_require(out_n, fn, "out_n")) ||
        (st = check_buffer(out_ids, cap, fn, "out_ids")))
        return st;
    if (!text && len)
        return lmrt_fail(LMRT_E_INVALID_ARG, "%s: text is NULL but len is %zu", fn, len);
    if (flags & ~(uint32_t)(LMRT_TOKENIZE_ADD_BOS | LMRT_TOKENIZE_PARSE_SPECIAL))
        return lmrt_fail(LMRT_E_INVALID_ARG, "%s: unknown flags 0x%" PRIx32, fn, flags);

    token_vec v = {0};
    st = tokenizer_encode(t, text ? text : "", len, flags & LMRT_TOKENIZE_ADD_BOS,
                          flags & LMRT_TOKENIZE_PARSE_SPECIAL, &v);
    if (st) {
        token_vec_free(&v);
        return lmrt_fail_prefix(st, "%s", fn);
    }
    if (out_ids && v.n > cap) {
        *out_n = v.n;
        token_vec_free(&v);
        return lmrt_fail(LMRT_E_BUFFER_TOO_SMALL, "%s: the text is %zu tokens, the buffer "
                         "holds %zu", fn, v.n, cap);
    }
    if (out_ids && v.n)
        memcpy(out_ids, v.ids, v.n * sizeof *v.ids);
    *out_n = v.n;
    token_vec_free(&v);
    return LMRT_OK;
}

lmrt_status lmrt_detokenize(const lmrt_model *model, const int32_t *ids, size_t n,
                            uint32_t flags, char *buf, size_t cap, size_t *out_len)
{
    static const char fn[] = "lmrt_detokenize";
    lmrt_error_clear();
    const tokenizer *t = NULL;
    lmrt_status st;
    if ((st = model_tokenizer(model, fn, &t)) || (st = api_require(out_len, fn, "out_len")) ||
        (st = check_buffer(buf, cap, fn, "buf")))
        return st;
    if (!ids && n)
        return lmrt_fail(LMRT_E_INVALID_ARG, "%s: ids is NULL but n is %zu", fn, n);
    if (flags & ~(uint32_t)LMRT_DETOKENIZE_SPECIAL)
        return lmrt_fail(LMRT_E_INVALID_ARG, "%s: unknown flags 0x%" PRIx32, fn, flags);

    size_t len;
    if ((st = tokenizer_decode(t, ids, n, flags & LMRT_DETOKENIZE_SPECIAL, buf, cap, &len)))
        return lmrt_fail_prefix(st, "%s", fn);
    /* tokenizer_decode wrote the bytes when they fit; only the NUL and status remain. */
    return text_out(fn, NULL, len, buf, cap, out_len);
}

lmrt_status lmrt_chat_format(const lmrt_model *model, const char *const *roles,
                             const char *const *contents, size_t n_messages,
                             bool add_assistant_turn, char *buf, size_t cap, size_t *out_len)
{
    static const char fn[] = "lmrt_chat_format";
    lmrt_error_clear();
    const tokenizer *t = NULL;
    lmrt_status st;
    if ((st = model_tokenizer(model, fn, &t)) || (st = api_require(out_len, fn, "out_len")) ||
        (st = check_buffer(buf, cap, fn, "buf")))
        return st;
    char *text = NULL;
    size_t len = 0;
    if ((st = chat_format(t, roles, contents, n_messages, add_assistant_turn, &text, &len)))
        return lmrt_fail_prefix(st, "%s", fn);
    st = text_out(fn, text, len, buf, cap, out_len);
    lmrt_mem_free(text);
    return st;
}
