/* tokenizer_impl.h - what a tokenizer holds, shared by tokenizer.c (loading, special
 * tokens, detokenizing), bpe.c and spm.c (the two encoders). Only lib/tokenizer/
 * includes this file. Everything here is read-only once tokenizer_load returns. */
#ifndef LMRT_TOKENIZER_IMPL_H
#define LMRT_TOKENIZER_IMPL_H

#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab_map.h"

enum tok_type { TOK_BPE, TOK_SPM };

typedef struct tok_entry {
    uint32_t text;               /* offset of the token's text (as stored in the file) in arena */
    uint32_t text_len;
    uint32_t piece;              /* offset of the bytes it stands for in arena */
    uint32_t piece_len;
    float score;                 /* SPM merge priority (higher merges first) */
    uint8_t kind;                /* enum token_kind */
} tok_entry;

struct tokenizer {
    enum tok_type type;
    int32_t n_vocab;
    tok_entry *tokens;           /* [n_vocab] */
    char *arena;                 /* texts, then pieces; see tok_entry */
    size_t arena_len;
    size_t arena_cap;
    vocab_map by_text;           /* text -> id; for a duplicated text the last id wins */

    int32_t bos, eos, eot, eom, unk, pad;   /* -1: none */
    int32_t eog[4];              /* end-of-generation ids */
    int n_eog;
    bool add_bos;
    bool add_space_prefix;       /* SPM's dummy prefix (tokenizer.ggml.add_space_prefix) */

    /* The token of each byte: BPE the token of its GPT-2 character, SPM <0xNN>; -1: none. */
    int32_t byte_token[256];

    /* The lengths of the tokens parse_special finds in text (control, user-defined,
     * unknown), longest first, each with the sets of first and last bytes of its tokens:
     * a candidate is looked up in by_text only when both bytes fit. */
    struct tok_special_len {
        uint32_t len;
        uint64_t first[4], last[4];   /* 256-bit sets */
    } *special_lens;
    size_t n_special_lens;

    /* SPM: no normal piece has U+2581 after another character, so no merge crosses
     * the start of a "▁word" and the text can be merged word by word (much faster
     * than one queue over the whole text, and the same result). */
    bool spm_word_split;

    /* BPE: merge rank r joins merge_pair[2r] and merge_pair[2r + 1] into merge_result[r]
     * (-1 when the joined text is no token); merges maps the pair to r. */
    bool ignore_merges;          /* a pre-token that is a whole token skips merging (Llama 3) */
    uint32_t n_merges;
    uint32_t *merge_pair;
    int32_t *merge_result;
    vocab_map merges;
};

static inline const char *tok_text(const tokenizer *t, int32_t id)
{
    return t->arena + t->tokens[id].text;
}

/* Appends `len` bytes to the arena (capacity reserved at load); returns the offset. */
uint32_t tok_arena_put(tokenizer *t, const void *bytes, size_t len);

/* The id of a NORMAL token with exactly this text, or -1. */
int32_t tok_find_normal(const tokenizer *t, const void *text, size_t len);

/* Model-specific parts of tokenizer_load: pieces of normal tokens, byte_token, merges. */
lmrt_status bpe_load(tokenizer *t, const gguf_file *f);
lmrt_status spm_load(tokenizer *t, const gguf_file *f);

/* Encode one stretch of ordinary text (no special tokens) onto `out`. On failure
 * `out` may hold extra ids; the caller restores its length. */
lmrt_status bpe_encode(const tokenizer *t, const char *text, size_t len, token_vec *out);
/* prefix_space: put SentencePiece's dummy-prefix space before the text. */
lmrt_status spm_encode(const tokenizer *t, const char *text, size_t len, bool prefix_space,
                       token_vec *out);

#endif
