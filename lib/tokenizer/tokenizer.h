/* tokenizer.h - text <-> token ids for the vocabularies GGUF files carry:
 * byte-level BPE (tokenizer.ggml.model = "gpt2", e.g. Llama 3) and SentencePiece
 * BPE (model = "llama", e.g. Llama 2, stories260K). Built once per model from
 * its metadata; read-only afterwards and safe to share between threads. */
#ifndef LMRT_TOKENIZER_H
#define LMRT_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "format/gguf.h"

typedef struct tokenizer tokenizer;

/* Token kinds, as tokenizer.ggml.token_type numbers them. */
enum token_kind {
    TOKEN_KIND_NORMAL = 1, TOKEN_KIND_UNKNOWN = 2, TOKEN_KIND_CONTROL = 3,
    TOKEN_KIND_USER_DEFINED = 4, TOKEN_KIND_UNUSED = 5, TOKEN_KIND_BYTE = 6
};

/* Builds the tokenizer from tokenizer.ggml.* keys. A file without them is
 * LMRT_OK with *out = NULL (no tokenizer); a model or pre-tokenizer name lmrt
 * does not know is LMRT_E_UNSUPPORTED; malformed keys are LMRT_E_FORMAT. */
lmrt_status tokenizer_load(const gguf_file *f, tokenizer **out);
void tokenizer_free(tokenizer *tok);

int32_t tokenizer_n_vocab(const tokenizer *tok);
/* Special ids, -1 when the vocabulary has none. */
int32_t tokenizer_bos(const tokenizer *tok);
int32_t tokenizer_eos(const tokenizer *tok);
int32_t tokenizer_eot(const tokenizer *tok);   /* <|eot_id|> */
int32_t tokenizer_pad(const tokenizer *tok);
/* EOS, EOT and the other end-of-generation tokens (e.g. <|eom_id|>). */
bool tokenizer_is_eog(const tokenizer *tok, int32_t id);
/* Whether BOS is prepended (tokenizer.ggml.add_bos_token, default true). */
bool tokenizer_adds_bos(const tokenizer *tok);
/* Whether encoding puts SentencePiece's dummy-prefix space before the text (and after
 * each special token parse_special finds): tokenizer.ggml.add_space_prefix, default
 * true for "llama" vocabularies, false for "gpt2". A detokenizer then drops one
 * leading space from the first token that is not a control token (as tokenizer_decode). */
bool tokenizer_adds_space_prefix(const tokenizer *tok);

/* A growable array of ids, freed with token_vec_free. */
typedef struct token_vec {
    int32_t *ids;
    size_t n;
    size_t cap;
} token_vec;
lmrt_status token_vec_push(token_vec *v, int32_t id);
void token_vec_free(token_vec *v);

/* Appends the ids of `len` bytes of text (any bytes; invalid UTF-8 is encoded
 * byte-wise where the vocabulary allows) to `out`. With add_bos and a vocabulary
 * that adds BOS, BOS comes first. With parse_special, the text of control and
 * user-defined tokens ("<|eot_id|>") becomes those tokens; otherwise it is
 * ordinary text. On failure `out` is restored to its length on entry. */
lmrt_status tokenizer_encode(const tokenizer *tok, const char *text, size_t len, bool add_bos,
                             bool parse_special, token_vec *out);

/* The bytes a token stands for: byte-level BPE undone, SentencePiece's U+2581
 * turned into a space, <0xNN> into that byte. Control tokens give their text
 * when render_special, else nothing. An id outside the vocabulary is
 * LMRT_E_INVALID_ARG. The bytes stay valid while the tokenizer lives, or are
 * written to `scratch` (4 bytes) for byte tokens. */
lmrt_status tokenizer_token_bytes(const tokenizer *tok, int32_t id, bool render_special,
                                  char scratch[4], const char **out_bytes, size_t *out_len);

/* ids[0..n) to bytes: the tokens' bytes (tokenizer_token_bytes) concatenated, with
 * the dummy prefix undone (see tokenizer_adds_space_prefix). Sets *out_len to the
 * full length and writes the bytes to buf only when they fit in `cap` (no NUL).
 * An id outside the vocabulary is LMRT_E_INVALID_ARG naming its index. */
lmrt_status tokenizer_decode(const tokenizer *tok, const int32_t *ids, size_t n,
                             bool render_special, char *buf, size_t cap, size_t *out_len);

/* Streaming detokenization that only ever emits whole UTF-8 characters:
 * bytes of a character split across tokens wait for the rest. Invalid
 * sequences are passed through byte for byte once they cannot become valid. */
typedef struct utf8_stream {
    unsigned char pending[4];
    size_t n_pending;
} utf8_stream;
/* Feeds `len` bytes; writes what is complete to out (room for len + 4 bytes)
 * and returns its length. */
size_t utf8_stream_push(utf8_stream *s, const char *bytes, size_t len, char *out);
/* Emits whatever is still pending (at the end of generation). out: 4 bytes. */
size_t utf8_stream_flush(utf8_stream *s, char *out);

/* The Llama 3 chat format:
 *   <|begin_of_text|> then per message
 *   <|start_header_id|>ROLE<|end_header_id|>\n\nCONTENT<|eot_id|>
 * and, with add_assistant_turn, "<|start_header_id|>assistant<|end_header_id|>\n\n".
 * Vocabularies without those tokens use a plain "ROLE: CONTENT\n" layout.
 * The text is meant to be encoded with parse_special (and without add_bos: the
 * Llama 3 layout already starts with BOS's text). Appends to a malloc'd,
 * NUL-terminated string *out of length *out_len (caller frees with lmrt_mem_free);
 * a NULL *out starts a new one. On failure *out and *out_len are unchanged. */
lmrt_status chat_format(const tokenizer *tok, const char *const *roles,
                        const char *const *contents, size_t n, bool add_assistant_turn,
                        char **out, size_t *out_len);

/* The same conversation as ids, appended to `out`: the template's tokens are
 * special, the roles and contents are always plain text, so a message cannot
 * smuggle in "<|eot_id|>" or a header. This is what sessions feed. On failure
 * `out` is restored to its length on entry. */
lmrt_status chat_encode(const tokenizer *tok, const char *const *roles,
                        const char *const *contents, size_t n, bool add_assistant_turn,
                        token_vec *out);

#endif
