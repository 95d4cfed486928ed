/* vocab_map.h - an open-addressing hash from byte strings to uint32 values, for
 * token text -> id and merge pair -> rank. The map stores only values (and hash
 * bits); the key of a value comes from the caller's key_of function, so the
 * strings themselves live once, in the tokenizer. Fixed capacity, set at init. */
#ifndef LMRT_TOKENIZER_VOCAB_MAP_H
#define LMRT_TOKENIZER_VOCAB_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lmrt.h"

/* The key bytes of a stored value. */
typedef void (*vocab_key_fn)(const void *ctx, uint32_t value, const void **key, size_t *len);

typedef struct vocab_map {
    uint64_t *slots;             /* [mask + 1]: hash << 32 | (value + 1); 0 = empty */
    size_t mask;
    size_t n;                    /* values stored */
    size_t max_n;                /* capacity given to vocab_map_init */
    vocab_key_fn key_of;
    const void *ctx;
} vocab_map;

/* A map for up to max_n values (max_n < UINT32_MAX) with a load factor of at most 1/2. */
lmrt_status vocab_map_init(vocab_map *m, size_t max_n, vocab_key_fn key_of, const void *ctx);
void vocab_map_free(vocab_map *m);

uint32_t vocab_hash(const void *key, size_t len);

/* Stores `value` under its key. When the key is already there, `replace` decides
 * which value stays; returns the value that was there, or -1. Never fails for
 * up to max_n distinct keys (extra ones are dropped, returning -2). */
int64_t vocab_map_put(vocab_map *m, uint32_t value, bool replace);
/* The value stored under `key`, or -1. */
int64_t vocab_map_get(const vocab_map *m, const void *key, size_t len);

#endif
