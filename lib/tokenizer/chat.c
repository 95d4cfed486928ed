/* chat.c - renders a conversation in the model's chat format: Llama 3's header and
 * end-of-turn tokens when the vocabulary has them, else a plain "role: content" layout.
 * Produces text only; the caller encodes it with parse_special. */
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "tokenizer/tokenizer_impl.h"

typedef struct chat_out {
    char *buf;                   /* NULL while measuring */
    size_t len;
} chat_out;

static void put(chat_out *o, const char *s, size_t n)
{
    if (o->buf && n)
        memcpy(o->buf + o->len, s, n);
    o->len += n;
}

static void puts_(chat_out *o, const char *s)
{
    put(o, s, strlen(s));
}

static bool has_token(const tokenizer *t, const char *text)
{
    return vocab_map_get(&t->by_text, text, strlen(text)) >= 0;
}

static void render(const tokenizer *t, bool llama3, const char *const *roles,
                   const char *const *contents, size_t n, bool add_assistant_turn, chat_out *o)
{
    if (!llama3) {
        for (size_t i = 0; i < n; i++) {
            puts_(o, roles[i]);
            puts_(o, ": ");
            puts_(o, contents[i]);
            puts_(o, "\n");
        }
        if (add_assistant_turn)
            puts_(o, "assistant:");
        return;
    }
    if (t->bos >= 0)
        put(o, tok_text(t, t->bos), t->tokens[t->bos].text_len);   /* <|begin_of_text|> */
    for (size_t i = 0; i < n; i++) {
        puts_(o, "<|start_header_id|>");
        puts_(o, roles[i]);
        puts_(o, "<|end_header_id|>\n\n");
        puts_(o, contents[i]);
        puts_(o, "<|eot_id|>");
    }
    if (add_assistant_turn)
        puts_(o, "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

lmrt_status chat_format(const tokenizer *t, const char *const *roles,
                        const char *const *contents, size_t n, bool add_assistant_turn,
                        char **out, size_t *out_len)
{
    if (n && (!roles || !contents))
        return lmrt_fail(LMRT_E_INVALID_ARG, "%s is NULL for %zu messages",
                         roles ? "contents" : "roles", n);
    for (size_t i = 0; i < n; i++)
        if (!roles[i] || !contents[i])
            return lmrt_fail(LMRT_E_INVALID_ARG, "%s[%zu] is NULL",
                             roles[i] ? "contents" : "roles", i);
    bool llama3 = has_token(t, "<|start_header_id|>") && has_token(t, "<|end_header_id|>") &&
                  has_token(t, "<|eot_id|>");
    chat_out o = {NULL, 0};
    render(t, llama3, roles, contents, n, add_assistant_turn, &o);

    /* Append to what *out already holds (a NULL *out is an empty string). */
    size_t old = *out ? *out_len : 0, total;
    if (__builtin_add_overflow(old, o.len, &total) || total == SIZE_MAX)
        return lmrt_fail(LMRT_E_NOMEM, "the conversation is too long");
    char *buf = lmrt_realloc(*out, total + 1);
    if (!buf)
        return lmrt_fail(LMRT_E_NOMEM, "out of memory for %zu bytes of chat text", total + 1);
    o.buf = buf + old;
    o.len = 0;
    render(t, llama3, roles, contents, n, add_assistant_turn, &o);
    buf[total] = '\0';
    *out = buf;
    *out_len = total;
    return LMRT_OK;
}

/* Appends the ids of `s` as plain text (no special tokens recognised). */
static lmrt_status encode_text(const tokenizer *t, const char *s, size_t len, token_vec *out)
{
    return len ? tokenizer_encode(t, s, len, false, false, out) : LMRT_OK;
}

static lmrt_status encode_special(const tokenizer *t, const char *text, token_vec *out)
{
    int32_t id = vocab_map_get(&t->by_text, text, strlen(text));
    return token_vec_push(out, id);
}

lmrt_status chat_encode(const tokenizer *t, const char *const *roles,
                        const char *const *contents, size_t n, bool add_assistant_turn,
                        token_vec *out)
{
    if (n && (!roles || !contents))
        return lmrt_fail(LMRT_E_INVALID_ARG, "%s is NULL for %zu messages",
                         roles ? "contents" : "roles", n);
    for (size_t i = 0; i < n; i++)
        if (!roles[i] || !contents[i])
            return lmrt_fail(LMRT_E_INVALID_ARG, "%s[%zu] is NULL",
                             roles[i] ? "contents" : "roles", i);
    size_t start = out->n;
    lmrt_status st = LMRT_OK;
    bool llama3 = has_token(t, "<|start_header_id|>") && has_token(t, "<|end_header_id|>") &&
                  has_token(t, "<|eot_id|>");
    if (!llama3) {
        /* The plain layout is text through and through. */
        char *text = NULL;
        size_t len = 0;
        if ((st = chat_format(t, roles, contents, n, add_assistant_turn, &text, &len)) == LMRT_OK)
            st = encode_text(t, text, len, out);
        lmrt_mem_free(text);
    } else {
        /* The template's tokens are special; what the caller wrote never is: a
         * message containing "<|eot_id|>" cannot end its turn early. Fragments
         * between special tokens are encoded separately, as llama.cpp does. */
        if (t->bos >= 0)
            st = token_vec_push(out, t->bos);
        for (size_t i = 0; i < n && !st; i++) {
            size_t clen = strlen(contents[i]);
            char *body = lmrt_malloc(clen + 2);
            if (!body) {
                st = lmrt_fail(LMRT_E_NOMEM, "out of memory encoding a chat message");
                break;
            }
            memcpy(body, "\n\n", 2);
            memcpy(body + 2, contents[i], clen);
            if (!(st = encode_special(t, "<|start_header_id|>", out)) &&
                !(st = encode_text(t, roles[i], strlen(roles[i]), out)) &&
                !(st = encode_special(t, "<|end_header_id|>", out)) &&
                !(st = encode_text(t, body, clen + 2, out)))
                st = encode_special(t, "<|eot_id|>", out);
            lmrt_mem_free(body);
        }
        if (!st && add_assistant_turn &&
            !(st = encode_special(t, "<|start_header_id|>", out)) &&
            !(st = encode_text(t, "assistant", 9, out)) &&
            !(st = encode_special(t, "<|end_header_id|>", out)))
            st = encode_text(t, "\n\n", 2, out);
    }
    if (st)
        out->n = start;
    return st;
}
