/* generate_api.c - lmrt_session_generate: the token loop with stop conditions
 * (end of generation, max tokens, stop strings, the caller's callbacks).
 * Text that could still turn into a stop string is held back until it cannot. */
#include <string.h>

#include "api/session.h"
#include "base/alloc.h"

static const lmrt_generate_params generate_params_default = {
    .size = sizeof(lmrt_generate_params),
    .max_tokens = 256,
};

void lmrt_generate_params_init(lmrt_generate_params *params, size_t size)
{
    api_struct_init(params, size, &generate_params_default, sizeof generate_params_default);
}

/* Generated text not yet handed to the caller. */
typedef struct held_text {
    char *buf;
    size_t len, cap;
} held_text;

static lmrt_status held_append(held_text *h, const char *bytes, size_t n)
{
    if (h->len + n > h->cap) {
        size_t cap = (h->len + n) * 2 + 64;
        char *bigger = lmrt_realloc(h->buf, cap);
        if (!bigger)
            return lmrt_fail(LMRT_E_NOMEM, "lmrt_session_generate: out of memory");
        h->buf = bigger;
        h->cap = cap;
    }
    memcpy(h->buf + h->len, bytes, n);
    h->len += n;
    return LMRT_OK;
}

/* Earliest complete stop string in the text: its start, or -1. */
static long find_stop(const held_text *h, const lmrt_generate_params *p)
{
    long best = -1;
    for (size_t i = 0; i < p->n_stop; i++) {
        size_t sl = strlen(p->stop[i]);
        for (size_t at = 0; sl <= h->len && at + sl <= h->len; at++)
            if (memcmp(h->buf + at, p->stop[i], sl) == 0) {
                if (best < 0 || (long)at < best)
                    best = (long)at;
                break;
            }
    }
    return best;
}

/* How much of the text can be released: all but the longest tail that is the
 * start of some stop string. */
static size_t releasable(const held_text *h, const lmrt_generate_params *p)
{
    size_t keep = 0;
    for (size_t i = 0; i < p->n_stop; i++) {
        size_t sl = strlen(p->stop[i]);
        for (size_t k = sl - 1; k > keep; k--)
            if (k <= h->len && memcmp(h->buf + h->len - k, p->stop[i], k) == 0) {
                keep = k;
                break;
            }
    }
    return h->len - keep;
}

/* Hands n bytes to the callback and drops them; false when it asks to stop. */
static bool release(held_text *h, size_t n, const lmrt_generate_params *p, int32_t token)
{
    bool go_on = true;
    if (p->on_token)
        go_on = p->on_token(p->user, token, h->buf, n);
    memmove(h->buf, h->buf + n, h->len - n);
    h->len -= n;
    return go_on;
}

static lmrt_status check_params(const lmrt_generate_params *p)
{
    if (p->max_tokens < 0)
        return lmrt_fail(LMRT_E_INVALID_ARG, "lmrt_session_generate: max_tokens %d is "
                         "negative", (int)p->max_tokens);
    if (p->n_stop && !p->stop)
        return lmrt_fail(LMRT_E_INVALID_ARG, "lmrt_session_generate: n_stop is %zu but stop "
                         "is NULL", p->n_stop);
    for (size_t i = 0; i < p->n_stop; i++)
        if (!p->stop[i] || !p->stop[i][0])
            return lmrt_fail(LMRT_E_INVALID_ARG, "lmrt_session_generate: stop string %zu is "
                             "NULL or empty", i);
    return LMRT_OK;
}

lmrt_status lmrt_session_generate(lmrt_session *s, const lmrt_generate_params *params,
                                  int32_t *out_stop_reason)
{
    lmrt_error_clear();
    lmrt_generate_params p = generate_params_default;
    lmrt_status st;
    if ((st = session_live(s, "lmrt_session_generate")) ||
        (st = api_params_in(&p, sizeof p, params, "lmrt_session_generate", "params")) ||
        (st = check_params(&p)))
        return st;
    const tokenizer *tok = s->ctx->model->m->tok;
    held_text held = {0};
    int32_t reason = LMRT_STOP_MAX_TOKENS;
    int32_t token = -1;
    for (int32_t i = 0; i < p.max_tokens; i++) {
        if (p.should_abort && p.should_abort(p.user)) {
            st = lmrt_fail(LMRT_E_ABORTED, "lmrt_session_generate: aborted by the caller's "
                           "callback after %d tokens", (int)i);
            break;
        }
        size_t len;
        if ((st = session_step(s, &token, &len, p.should_abort, p.user)))
            break;
        if (tok && tokenizer_is_eog(tok, token)) {
            reason = LMRT_STOP_EOG;
            break;
        }
        if ((st = held_append(&held, s->piece, len)))
            break;
        long stop_at = find_stop(&held, &p);
        if (stop_at >= 0) {
            held.len = (size_t)stop_at;
            release(&held, held.len, &p, token);
            reason = LMRT_STOP_STRING;
            break;
        }
        if (!release(&held, releasable(&held, &p), &p, token)) {
            reason = LMRT_STOP_CALLBACK;
            break;
        }
    }
    /* Text held back for a stop string that never came is the caller's too. */
    if (held.len && reason != LMRT_STOP_STRING && reason != LMRT_STOP_CALLBACK)
        release(&held, held.len, &p, -1);
    lmrt_mem_free(held.buf);
    if (st)
        return st;
    if (out_stop_reason)
        *out_stop_reason = reason;
    return LMRT_OK;
}
