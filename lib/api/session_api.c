/* session_api.c - public entry points for sessions: create, fork, reset, feed
 * tokens/text/chat, logits, sampling and one-token steps. Generation loops are
 * in generate_api.c, saved state in session_blob.c, media in media_api.c. */
#include <string.h>

#include "api/session.h"
#include "base/alloc.h"
#include "base/log.h"

/* Context length used when neither the caller nor a small model says less. */
#define SESSION_DEFAULT_CTX 4096
/* Tokens per decoder batch: enough to reuse each weight row many times. */
#define SESSION_BATCH 128

static const lmrt_session_params session_params_default = {
    .size = sizeof(lmrt_session_params),
    .n_ctx = 0,
    .keep_all_logits = false,
};

static const lmrt_sampler_params sampler_params_default = {
    .size = sizeof(lmrt_sampler_params),
    .temperature = 0.8f,
    .top_k = 40,
    .top_p = 0.95f,
    .min_p = 0.05f,
    .repeat_penalty = 1.0f,
    .repeat_last_n = 64,
    .frequency_penalty = 0.0f,
    .presence_penalty = 0.0f,
    .seed = 0,
};

void lmrt_session_params_init(lmrt_session_params *params, size_t size)
{
    api_struct_init(params, size, &session_params_default, sizeof session_params_default);
}

void lmrt_sampler_params_init(lmrt_sampler_params *params, size_t size)
{
    api_struct_init(params, size, &sampler_params_default, sizeof sampler_params_default);
}

static sampler_config sampler_config_from(const lmrt_sampler_params *p)
{
    return (sampler_config){
        .temperature = p->temperature, .top_k = p->top_k, .top_p = p->top_p,
        .min_p = p->min_p, .repeat_penalty = p->repeat_penalty,
        .repeat_last_n = p->repeat_last_n, .frequency_penalty = p->frequency_penalty,
        .presence_penalty = p->presence_penalty, .seed = p->seed,
    };
}

lmrt_status session_live(const lmrt_session *s, const char *function)
{
    if (!s)
        return lmrt_fail(LMRT_E_INVALID_ARG, "%s: session is NULL", function);
    return api_context_live(s->ctx, function);
}

/* The context length a session gets: the caller's, else the default, never
 * more than the model was trained for. */
static int32_t choose_n_ctx(const llama_weights *w, int32_t asked)
{
    int32_t train = w->hp.n_ctx_train > 0 ? w->hp.n_ctx_train : SESSION_DEFAULT_CTX;
    int32_t n = asked > 0 ? asked : SESSION_DEFAULT_CTX;
    if (n > train) {
        if (asked > 0)
            lmrt_log(LMRT_LOG_WARN, "session: n_ctx %d capped to the model's context length %d",
                     (int)asked, (int)train);
        n = train;
    }
    return n;
}

/* Bytes of the longest token text, so that one step's text always fits. */
static size_t longest_piece(const tokenizer *tok)
{
    size_t longest = 0;
    for (int32_t id = 0; tok && id < tokenizer_n_vocab(tok); id++) {
        char scratch[4];
        const char *bytes;
        size_t len;
        if (tokenizer_token_bytes(tok, id, false, scratch, &bytes, &len) == LMRT_OK &&
            len > longest)
            longest = len;
    }
    return longest;
}

lmrt_status session_new(lmrt_context *ctx, int32_t n_ctx_asked, bool keep_all_logits,
                        const char *function, lmrt_session **out)
{
    llama_weights *w;
    lmrt_status st = api_context_decoder(ctx, function, &w);
    if (st)
        return st;
    lmrt_session *s = lmrt_calloc(1, sizeof *s);
    if (!s)
        return lmrt_fail(LMRT_E_NOMEM, "%s: out of memory", function);
    s->ctx = ctx;
    atomic_fetch_add(&ctx->refs, 1);
    s->n_ctx = choose_n_ctx(w, n_ctx_asked);
    s->keep_all_logits = keep_all_logits;
    s->logits_cap = keep_all_logits ? 0 : 1;
    sampler_config cfg = sampler_config_from(&sampler_params_default);
    if ((st = sampler_configure(&s->smp, &cfg)) ||
        (st = llama_state_create(w, s->n_ctx, SESSION_BATCH, keep_all_logits, &s->state)))
        goto fail;
    s->piece_max = longest_piece(ctx->model->m->tok) + 4;  /* + a pending partial char */
    s->piece = lmrt_malloc(s->piece_max + 1);
    s->sampler_scratch = lmrt_malloc(sampler_scratch_bytes(w->hp.n_vocab));
    s->logits = lmrt_calloc((size_t)w->hp.n_vocab, sizeof(float));
    if (!s->sampler_scratch || !s->logits || !s->piece) {
        st = lmrt_fail(LMRT_E_NOMEM, "%s: out of memory", function);
        goto fail;
    }
    s->logits_cap = 1;
    *out = s;
    return LMRT_OK;
fail:
    lmrt_session_free(s);
    return st;
}

lmrt_status lmrt_session_create(lmrt_context *ctx, const lmrt_session_params *params,
                                lmrt_session **out)
{
    lmrt_error_clear();
    lmrt_session_params p = session_params_default;
    lmrt_status st;
    if ((st = api_context_live(ctx, "lmrt_session_create")) ||
        (st = api_require(out, "lmrt_session_create", "out")) ||
        (st = api_params_in(&p, sizeof p, params, "lmrt_session_create", "params")))
        return st;
    if (p.n_ctx < 0)
        return lmrt_fail(LMRT_E_INVALID_ARG, "lmrt_session_create: n_ctx %d is negative",
                         (int)p.n_ctx);
    return session_new(ctx, p.n_ctx, p.keep_all_logits, "lmrt_session_create", out);
}

void lmrt_session_free(lmrt_session *s)
{
    if (!s)
        return;
    if (s->state)
        llama_state_free(s->ctx->decoder, s->state);
    token_vec_free(&s->history);
    lmrt_mem_free(s->logits);
    lmrt_mem_free(s->piece);
    lmrt_mem_free(s->sampler_scratch);
    api_context_unref(s->ctx);
    lmrt_mem_free(s);
}

/* Makes room for `rows` rows of host logits. */
static lmrt_status ensure_logit_rows(lmrt_session *s, int64_t rows)
{
    if (rows <= s->logits_cap)
        return LMRT_OK;
    size_t n_vocab = (size_t)s->ctx->decoder->hp.n_vocab, bytes;
    if (__builtin_mul_overflow((size_t)rows, n_vocab * sizeof(float), &bytes))
        return lmrt_fail(LMRT_E_NOMEM, "logits for %lld positions do not fit in memory",
                         (long long)rows);
    float *bigger = lmrt_realloc(s->logits, bytes);
    if (!bigger)
        return lmrt_fail(LMRT_E_NOMEM, "out of memory for the logits of %lld positions",
                         (long long)rows);
    s->logits = bigger;
    s->logits_cap = rows;
    return LMRT_OK;
}

lmrt_status session_feed(lmrt_session *s, const int32_t *ids, size_t n, lmrt_abort_fn abort_fn,
                         void *abort_user)
{
    const llama_weights *w = s->ctx->decoder;
    if (n == 0)
        return lmrt_fail(LMRT_E_INVALID_ARG, "nothing to feed: the prompt is empty");
    if (n > (size_t)INT32_MAX || s->history.n + n > (size_t)s->n_ctx)
        return lmrt_fail(LMRT_E_CONTEXT_FULL, "the context holds %d tokens: %zu are in it and "
                         "%zu more do not fit", (int)s->n_ctx, s->history.n, n);
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= w->n_tok_rows)
            return lmrt_fail(LMRT_E_INVALID_ARG, "token id %d (at index %zu) is outside the "
                             "vocabulary of %d", (int)ids[i], i, (int)w->n_tok_rows);
    size_t before = s->history.n;
    bool text_started = s->text_started;
    lmrt_status st;
    if (s->keep_all_logits && (st = ensure_logit_rows(s, (int64_t)n)))
        return st;
    for (size_t i = 0; i < n; i++)
        if ((st = token_vec_push(&s->history, ids[i])))
            goto fail;
    st = llama_forward(w, s->state, ids, (int32_t)n, s->keep_all_logits, s->logits, abort_fn,
                       abort_user);
    if (st)
        goto fail;
    s->logits_rows = s->keep_all_logits ? (int64_t)n : 1;
    const tokenizer *tok = s->ctx->model->m->tok;
    for (size_t i = 0; tok && i < n && !s->text_started; i++) {
        char scratch[4];
        const char *bytes;
        size_t len;
        s->text_started = tokenizer_token_bytes(tok, ids[i], false, scratch, &bytes, &len) ==
                              LMRT_OK && len > 0;
    }
    return LMRT_OK;
fail:
    /* The cache beyond the old length is simply ignored from now on. */
    s->history.n = before;
    s->state->n_past = (int32_t)before;
    s->text_started = text_started;
    return st;
}

lmrt_status session_feed_embd(lmrt_session *s, const float *embd, int32_t n,
                              lmrt_abort_fn abort_fn, void *abort_user)
{
    const llama_weights *w = s->ctx->decoder;
    if (n <= 0)
        return lmrt_fail(LMRT_E_INVALID_ARG, "nothing to feed: no embeddings");
    if (s->history.n + (size_t)n > (size_t)s->n_ctx)
        return lmrt_fail(LMRT_E_CONTEXT_FULL, "the context holds %d tokens: %zu are in it and "
                         "the %d positions of this input do not fit", (int)s->n_ctx,
                         s->history.n, (int)n);
    size_t before = s->history.n;
    lmrt_status st;
    if (s->keep_all_logits && (st = ensure_logit_rows(s, (int64_t)n)))
        return st;
    for (int32_t i = 0; i < n; i++)
        if ((st = token_vec_push(&s->history, SESSION_MEDIA_POSITION)))
            goto fail;
    st = llama_forward_embd(w, s->state, embd, n, s->keep_all_logits, s->logits, abort_fn,
                            abort_user);
    if (st)
        goto fail;
    s->logits_rows = s->keep_all_logits ? (int64_t)n : 1;
    return LMRT_OK;
fail:
    s->history.n = before;
    s->state->n_past = (int32_t)before;
    return st;
}

lmrt_status lmrt_session_feed_tokens(lmrt_session *s, const int32_t *ids, size_t n)
{
    lmrt_error_clear();
    lmrt_status st;
    if ((st = session_live(s, "lmrt_session_feed_tokens")) ||
        (n && (st = api_require(ids, "lmrt_session_feed_tokens", "ids"))))
        return st;
    return session_feed(s, ids, n, NULL, NULL);
}

/* Tokenizes and feeds; flags as for lmrt_tokenize. A BOS the text itself
 * yields (a chat template's <|begin_of_text|>) is dropped unless the session is
 * empty: BOS only ever starts a sequence. */
static lmrt_status feed_text_flags(lmrt_session *s, const char *text, bool add_bos,
                                   bool parse_special, const char *function)
{
    const tokenizer *tok = s->ctx->model->m->tok;
    if (!tok)
        return lmrt_fail(LMRT_E_UNSUPPORTED, "%s: the model has no tokenizer; feed token ids",
                         function);
    token_vec ids = {0};
    lmrt_status st = tokenizer_encode(tok, text, strlen(text), add_bos, parse_special, &ids);
    size_t skip = 0;
    if (st == LMRT_OK && s->history.n > 0 && ids.n > 0 && ids.ids[0] == tokenizer_bos(tok))
        skip = 1;
    if (st == LMRT_OK && ids.n == skip)
        st = lmrt_fail(LMRT_E_INVALID_ARG, "%s: the text gives no tokens", function);
    if (st == LMRT_OK)
        st = session_feed(s, ids.ids + skip, ids.n - skip, NULL, NULL);
    token_vec_free(&ids);
    return st;
}

lmrt_status lmrt_session_feed_text(lmrt_session *s, const char *text, uint32_t flags)
{
    lmrt_error_clear();
    lmrt_status st;
    if ((st = session_live(s, "lmrt_session_feed_text")) ||
        (st = api_require(text, "lmrt_session_feed_text", "text")))
        return st;
    if (flags & ~(uint32_t)(LMRT_TOKENIZE_ADD_BOS | LMRT_TOKENIZE_PARSE_SPECIAL))
        return lmrt_fail(LMRT_E_INVALID_ARG, "lmrt_session_feed_text: unknown flags 0x%x",
                         (unsigned)flags);
    /* BOS only ever starts a sequence. */
    bool add_bos = (flags & LMRT_TOKENIZE_ADD_BOS) && s->history.n == 0;
    return feed_text_flags(s, text, add_bos, flags & LMRT_TOKENIZE_PARSE_SPECIAL,
                           "lmrt_session_feed_text");
}

lmrt_status lmrt_session_feed_chat(lmrt_session *s, const char *const *roles,
                                   const char *const *contents, size_t n_messages,
                                   bool add_assistant_turn)
{
    lmrt_error_clear();
    lmrt_status st;
    if ((st = session_live(s, "lmrt_session_feed_chat")))
        return st;
    const tokenizer *tok = s->ctx->model->m->tok;
    if (!tok)
        return lmrt_fail(LMRT_E_UNSUPPORTED, "lmrt_session_feed_chat: the model has no "
                         "tokenizer");
    token_vec ids = {0};
    if ((st = chat_encode(tok, roles, contents, n_messages, add_assistant_turn, &ids))) {
        token_vec_free(&ids);
        return lmrt_fail_prefix(st, "lmrt_session_feed_chat");
    }
    /* BOS only ever starts a sequence: a continuing conversation drops it. */
    size_t skip = s->history.n > 0 && ids.n > 0 && ids.ids[0] == tokenizer_bos(tok);
    if (ids.n == skip)
        st = lmrt_fail(LMRT_E_INVALID_ARG, "lmrt_session_feed_chat: no messages");
    else
        st = session_feed(s, ids.ids + skip, ids.n - skip, NULL, NULL);
    token_vec_free(&ids);
    return st;
}

lmrt_status lmrt_session_reset(lmrt_session *s)
{
    lmrt_error_clear();
    lmrt_status st = session_live(s, "lmrt_session_reset");
    if (st)
        return st;
    s->history.n = 0;
    s->state->n_past = 0;
    llama_state_clear_cross(s->ctx->decoder, s->state);
    s->logits_rows = 0;
    s->text_started = false;
    memset(&s->detok, 0, sizeof s->detok);
    return LMRT_OK;
}

lmrt_status lmrt_session_logits(const lmrt_session *s, const float **out_logits,
                                int64_t *out_rows, int32_t *out_n_vocab)
{
    lmrt_error_clear();
    lmrt_status st;
    if ((st = session_live(s, "lmrt_session_logits")) ||
        (st = api_require(out_logits, "lmrt_session_logits", "out_logits")))
        return st;
    if (s->logits_rows == 0)
        return lmrt_fail(LMRT_E_INVALID_STATE, "lmrt_session_logits: nothing has been fed yet");
    *out_logits = s->logits;
    if (out_rows)
        *out_rows = s->logits_rows;
    if (out_n_vocab)
        *out_n_vocab = s->ctx->decoder->hp.n_vocab;
    return LMRT_OK;
}

lmrt_status lmrt_session_n_tokens(const lmrt_session *s, int64_t *out_n)
{
    lmrt_error_clear();
    lmrt_status st;
    if ((st = session_live(s, "lmrt_session_n_tokens")) ||
        (st = api_require(out_n, "lmrt_session_n_tokens", "out_n")))
        return st;
    *out_n = (int64_t)s->history.n;
    return LMRT_OK;
}

lmrt_status lmrt_session_set_sampler(lmrt_session *s, const lmrt_sampler_params *params)
{
    lmrt_error_clear();
    lmrt_sampler_params p = sampler_params_default;
    lmrt_status st;
    if ((st = session_live(s, "lmrt_session_set_sampler")) ||
        (st = api_require(params, "lmrt_session_set_sampler", "params")) ||
        (st = api_params_in(&p, sizeof p, params, "lmrt_session_set_sampler", "params")))
        return st;
    sampler_config cfg = sampler_config_from(&p);
    sampler fresh;
    if ((st = sampler_configure(&fresh, &cfg)))
        return lmrt_fail_prefix(st, "lmrt_session_set_sampler");
    s->smp = fresh;
    return LMRT_OK;
}

lmrt_status session_step(lmrt_session *s, int32_t *out_token, size_t *text_len,
                         lmrt_abort_fn abort_fn, void *abort_user)
{
    const llama_weights *w = s->ctx->decoder;
    if (s->logits_rows == 0)
        return lmrt_fail(LMRT_E_INVALID_STATE, "feed a prompt before generating");
    if (s->history.n >= (size_t)s->n_ctx)
        return lmrt_fail(LMRT_E_CONTEXT_FULL, "the context of %d tokens is full",
                         (int)s->n_ctx);
    const float *last = s->logits + (size_t)(s->logits_rows - 1) * (size_t)w->hp.n_vocab;
    int32_t token;
    sampler saved = s->smp;
    bool first_text = !s->text_started;
    lmrt_status st = sampler_sample(&s->smp, last, w->hp.n_vocab, s->history.ids,
                                    s->history.n, s->sampler_scratch, &token);
    if (st == LMRT_OK)
        st = session_feed(s, &token, 1, abort_fn, abort_user);
    if (st) {
        s->smp = saved; /* the step never happened */
        return st;
    }
    *text_len = 0;
    const tokenizer *tok = s->ctx->model->m->tok;
    if (tok && !tokenizer_is_eog(tok, token)) {
        char scratch[4];
        const char *bytes;
        size_t len;
        if (tokenizer_token_bytes(tok, token, false, scratch, &bytes, &len) == LMRT_OK) {
            /* As lmrt_detokenize does: the space SentencePiece put before the first
             * word is not part of the text. */
            if (first_text && len && bytes[0] == ' ' && tokenizer_adds_space_prefix(tok)) {
                bytes++;
                len--;
            }
            *text_len = utf8_stream_push(&s->detok, bytes, len, s->piece);
        }
    }
    *out_token = token;
    return LMRT_OK;
}

lmrt_status lmrt_session_next_token(lmrt_session *s, int32_t *out_token, char *text, size_t cap,
                                    size_t *out_len)
{
    lmrt_error_clear();
    lmrt_status st;
    if ((st = session_live(s, "lmrt_session_next_token")) ||
        (st = api_require(out_token, "lmrt_session_next_token", "out_token")))
        return st;
    if (text && cap <= s->piece_max) {
        if (out_len)
            *out_len = s->piece_max + 1;
        return lmrt_fail(LMRT_E_BUFFER_TOO_SMALL, "lmrt_session_next_token: the text buffer "
                         "must hold %zu bytes (the longest token's text, a partial "
                         "character and a NUL)", s->piece_max + 1);
    }
    size_t len = 0;
    int32_t token;
    if ((st = session_step(s, &token, &len, NULL, NULL)))
        return st;
    if (text) {
        memcpy(text, s->piece, len);
        text[len] = '\0';
    }
    if (out_len)
        *out_len = len;
    *out_token = token;
    return LMRT_OK;
}
