/* sampler.h - choose the next token from logits: penalties, greedy or top-k /
 * top-p / min-p / temperature sampling with a seeded RNG. Single-threaded and
 * deterministic: the same seed and logits give the same token everywhere. */
#ifndef LMRT_SAMPLE_SAMPLER_H
#define LMRT_SAMPLE_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "lmrt.h"

typedef struct sampler_config {
    float temperature;          /* <= 0: greedy */
    int32_t top_k;              /* 0: off */
    float top_p;                /* >= 1: off */
    float min_p;                /* <= 0: off */
    float repeat_penalty;       /* 1: off */
    int32_t repeat_last_n;      /* how far back penalties look; -1 = whole history */
    float frequency_penalty;
    float presence_penalty;
    uint64_t seed;
} sampler_config;

typedef struct sampler {
    sampler_config cfg;
    uint64_t rng[4];            /* xoshiro256** state; saved with the session */
} sampler;

/* Checks the values (finite, in range) and seeds the RNG. */
lmrt_status sampler_configure(sampler *s, const sampler_config *cfg);

/* Picks a token. `logits` [n_vocab] is not modified; `scratch` holds
 * n_vocab candidates (sampler_scratch_bytes). `history` are the tokens so far,
 * for the penalties. */
size_t sampler_scratch_bytes(int32_t n_vocab);
lmrt_status sampler_sample(sampler *s, const float *logits, int32_t n_vocab,
                           const int32_t *history, size_t n_history, void *scratch,
                           int32_t *out_token);

#endif
