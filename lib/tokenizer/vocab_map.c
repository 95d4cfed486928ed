/* vocab_map.c - open-addressing (linear probing) hash from byte strings to uint32
 * values. Keys are not stored: a slot holds 32 hash bits and the value, and the
 * caller's key_of function gives the key of a value for the final comparison. */
#include "tokenizer/vocab_map.h"

#include <string.h>

#include "base/alloc.h"
#include "base/error.h"

lmrt_status vocab_map_init(vocab_map *m, size_t max_n, vocab_key_fn key_of, const void *ctx)
{
    memset(m, 0, sizeof *m);
    if (max_n >= UINT32_MAX)
        return lmrt_fail(LMRT_E_FORMAT, "vocab_map: %zu entries is more than lmrt supports",
                         max_n);
    size_t cap = 16;
    while (cap < 2 * max_n)
        cap *= 2;
    m->slots = lmrt_calloc(cap, sizeof *m->slots);
    if (!m->slots)
        return lmrt_fail(LMRT_E_NOMEM, "out of memory for a %zu-entry vocabulary map", max_n);
    m->mask = cap - 1;
    m->max_n = max_n;
    m->key_of = key_of;
    m->ctx = ctx;
    return LMRT_OK;
}

void vocab_map_free(vocab_map *m)
{
    if (!m)
        return;
    lmrt_mem_free(m->slots);
    m->slots = NULL;
}

/* A 64-bit multiply-mix over 8-byte words (wyhash-like); plenty for token texts. */
uint32_t vocab_hash(const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (len * 0xC2B2AE3D27D4EB4Full);
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xFF51AFD7ED558CCDull;
        h ^= h >> 29;
        p += 8;
        len -= 8;
    }
    uint64_t tail = 0;
    if (len)
        memcpy(&tail, p, len);
    h = (h ^ tail) * 0xC4CEB9FE1A85EC53ull;
    h ^= h >> 32;
    h *= 0x9E3779B97F4A7C15ull;
    return (uint32_t)(h >> 32);
}

static bool key_equals(const vocab_map *m, uint32_t value, const void *key, size_t len)
{
    const void *k;
    size_t n;
    m->key_of(m->ctx, value, &k, &n);
    return n == len && (len == 0 || memcmp(k, key, len) == 0);
}

int64_t vocab_map_put(vocab_map *m, uint32_t value, bool replace)
{
    const void *key;
    size_t len;
    m->key_of(m->ctx, value, &key, &len);
    uint32_t h = vocab_hash(key, len);
    for (size_t i = h & m->mask;; i = (i + 1) & m->mask) {
        uint64_t s = m->slots[i];
        if (s == 0) {
            if (m->n >= m->max_n)
                return -2;
            m->slots[i] = (uint64_t)h << 32 | ((uint64_t)value + 1);
            m->n++;
            return -1;
        }
        uint32_t old = (uint32_t)s - 1;
        if ((uint32_t)(s >> 32) == h && key_equals(m, old, key, len)) {
            if (replace)
                m->slots[i] = (uint64_t)h << 32 | ((uint64_t)value + 1);
            return old;
        }
    }
}

int64_t vocab_map_get(const vocab_map *m, const void *key, size_t len)
{
    uint32_t h = vocab_hash(key, len);
    for (size_t i = h & m->mask;; i = (i + 1) & m->mask) {
        uint64_t s = m->slots[i];
        if (s == 0)
            return -1;
        uint32_t value = (uint32_t)s - 1;
        if ((uint32_t)(s >> 32) == h && key_equals(m, value, key, len))
            return value;
    }
}
