/* sampler.c - penalties, then greedy, or top-k -> softmax -> top-p -> min-p ->
 * temperature -> a draw from the xoshiro256** RNG. The order follows what
 * llama.cpp users expect: the filters see the untempered distribution and the
 * temperature shapes only what survives them. */
#include "sample/sampler.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

typedef struct candidate {
    int32_t id;
    float logit;
    float p;
} candidate;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t xoshiro_next(uint64_t s[4])
{
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform in [0, 1) with 53 random bits. */
static double next_uniform(uint64_t s[4])
{
    return (double)(xoshiro_next(s) >> 11) * 0x1.0p-53;
}

lmrt_status sampler_configure(sampler *s, const sampler_config *cfg)
{
    const float fs[] = {cfg->temperature, cfg->top_p, cfg->min_p, cfg->repeat_penalty,
                        cfg->frequency_penalty, cfg->presence_penalty};
    for (size_t i = 0; i < sizeof fs / sizeof fs[0]; i++)
        if (!isfinite(fs[i]))
            return lmrt_fail(LMRT_E_INVALID_ARG, "sampler: parameters must be finite numbers");
    if (cfg->temperature < 0 || cfg->top_k < 0 || cfg->top_p < 0 || cfg->min_p < 0 ||
        cfg->min_p > 1 || cfg->repeat_penalty <= 0 || cfg->repeat_last_n < -1)
        return lmrt_fail(LMRT_E_INVALID_ARG, "sampler: out of range (temperature %g >= 0, "
                         "top_k %d >= 0, top_p %g >= 0, 0 <= min_p %g <= 1, repeat_penalty %g "
                         "> 0, repeat_last_n %d >= -1)", cfg->temperature, (int)cfg->top_k,
                         cfg->top_p, cfg->min_p, cfg->repeat_penalty, (int)cfg->repeat_last_n);
    s->cfg = *cfg;
    uint64_t x = cfg->seed;
    for (int i = 0; i < 4; i++)
        s->rng[i] = splitmix64(&x);
    return LMRT_OK;
}

size_t sampler_scratch_bytes(int32_t n_vocab)
{
    return (size_t)(n_vocab > 0 ? n_vocab : 1) * sizeof(candidate);
}

/* Descending by logit; ties by ascending id, so the order is total. */
static int by_logit_desc(const void *a, const void *b)
{
    const candidate *x = a, *y = b;
    if (x->logit != y->logit)
        return x->logit < y->logit ? 1 : -1;
    return (x->id > y->id) - (x->id < y->id);
}

/* Moves the k best of cand[0..n) (by by_logit_desc) to cand[0..k), in no particular
 * order: a heap of the k best so far with the worst at its root, O(n log k). Sorting
 * all n (128256 for Llama 3) took ~30 ms a token, halving generation speed with
 * the default top_k of 40; since the order is total, the k selected and then
 * sorted are exactly the first k of the full sort. */
static void heap_sift_down(candidate *h, size_t k, size_t i)
{
    for (;;) {
        size_t worst = i, l = 2 * i + 1, r = l + 1;
        if (l < k && by_logit_desc(&h[l], &h[worst]) > 0)
            worst = l;
        if (r < k && by_logit_desc(&h[r], &h[worst]) > 0)
            worst = r;
        if (worst == i)
            return;
        candidate t = h[i];
        h[i] = h[worst];
        h[worst] = t;
        i = worst;
    }
}

static void select_best(candidate *cand, size_t n, size_t k)
{
    for (size_t i = k / 2; i-- > 0;)
        heap_sift_down(cand, k, i);
    for (size_t i = k; i < n; i++) {
        if (by_logit_desc(&cand[i], &cand[0]) < 0) {   /* better than the worst kept */
            cand[0] = cand[i];
            heap_sift_down(cand, k, 0);
        }
    }
}

/* Repetition, frequency and presence penalties over the recent history. */
static bool penalties_off(const sampler_config *c)
{
    return c->repeat_penalty == 1.0f && c->frequency_penalty == 0.0f &&
           c->presence_penalty == 0.0f;
}

static void apply_penalties(const sampler_config *c, candidate *cand, int32_t n_vocab,
                            const int32_t *history, size_t n_history)
{
    if (penalties_off(c))
        return;
    size_t from = 0;
    if (c->repeat_last_n >= 0 && n_history > (size_t)c->repeat_last_n)
        from = n_history - (size_t)c->repeat_last_n;
    /* cand[i].p is free until the softmax: use it as the occurrence count. */
    for (size_t i = from; i < n_history; i++)
        if (history[i] >= 0 && history[i] < n_vocab)
            cand[history[i]].p += 1.0f;
    for (int32_t i = 0; i < n_vocab; i++) {
        float count = cand[i].p;
        if (count == 0.0f)
            continue;
        float l = cand[i].logit;
        l = l > 0 ? l / c->repeat_penalty : l * c->repeat_penalty;
        cand[i].logit = l - count * c->frequency_penalty - c->presence_penalty;
        cand[i].p = 0.0f;
    }
}

/* Softmax over cand[0..n) with the given temperature, into .p. */
static void softmax(candidate *cand, size_t n, float temperature)
{
    float max = cand[0].logit;
    for (size_t i = 1; i < n; i++)
        if (cand[i].logit > max)
            max = cand[i].logit;
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        cand[i].p = expf((cand[i].logit - max) / temperature);
        sum += cand[i].p;
    }
    for (size_t i = 0; i < n; i++)
        cand[i].p = (float)(cand[i].p / sum);
}

/* The index of the first of the largest of x[0..n), n > 0; *nan_at is the first NaN's
 * index, or -1 when there is none (then the index is meaningless). Chunk by chunk: a
 * chunk's largest value on 8 independent maxima (the compiler makes them one vector
 * max), and a search for its first index only when it beats the best so far. A plain
 * loop, one compare and branch per logit on a chain, took ~0.5 ms for Llama 3's 128256
 * logits on the 2.1 GHz Xeon (1.5% of a token of the 1B in Q4_0); this ~0.03 ms. */
#define LARGEST_CHUNK 256

static int32_t first_largest(const float *x, int32_t n, int32_t *nan_at)
{
    int32_t best = 0;
    float best_v = x[0];
    *nan_at = -1;
    for (int32_t c0 = 0; c0 < n; c0 += LARGEST_CHUNK) {
        const int32_t c1 = n - c0 < LARGEST_CHUNK ? n : c0 + LARGEST_CHUNK;
        float m[8];
        int nan = 0;
        int32_t i = c0;
        for (int k = 0; k < 8; k++)
            m[k] = x[c0];
        for (; i + 8 <= c1; i += 8)
            for (int k = 0; k < 8; k++) {
                const float v = x[i + k];
                nan |= v != v;
                m[k] = v > m[k] ? v : m[k];
            }
        for (; i < c1; i++) {
            nan |= x[i] != x[i];
            m[0] = x[i] > m[0] ? x[i] : m[0];
        }
        if (nan) {
            for (i = c0; x[i] == x[i]; i++)
                ;
            *nan_at = i;
            return 0;
        }
        for (int k = 1; k < 8; k++)
            m[0] = m[k] > m[0] ? m[k] : m[0];
        if (c0 == 0 || m[0] > best_v) {   /* strictly larger: an equal later one loses */
            for (i = c0; !(x[i] == m[0]); i++)
                ;
            best = i;
            best_v = m[0];
        }
    }
    return best;
}

lmrt_status sampler_sample(sampler *s, const float *logits, int32_t n_vocab,
                           const int32_t *history, size_t n_history, void *scratch,
                           int32_t *out_token)
{
    const sampler_config *c = &s->cfg;
    if (n_vocab <= 0)
        return lmrt_fail(LMRT_E_INVALID_ARG, "sampler: empty vocabulary");
    if (c->temperature <= 0.0f && penalties_off(c)) {
        /* Greedy on the logits as they are: no candidate table (1.5 MB to write for
         * Llama 3, ~0.8 ms a token). */
        int32_t nan_at;
        const int32_t best = first_largest(logits, n_vocab, &nan_at);
        if (nan_at >= 0)   /* *out_token untouched, as on every error */
            return lmrt_fail(LMRT_E_INTERNAL, "sampler: logit %d is NaN", (int)nan_at);
        *out_token = best;
        return LMRT_OK;
    }
    candidate *cand = scratch;
    for (int32_t i = 0; i < n_vocab; i++) {
        if (isnan(logits[i]))
            return lmrt_fail(LMRT_E_INTERNAL, "sampler: logit %d is NaN", (int)i);
        cand[i] = (candidate){i, logits[i], 0.0f};
    }
    apply_penalties(c, cand, n_vocab, history, n_history);

    if (c->temperature <= 0.0f) {
        int32_t best = 0;
        for (int32_t i = 1; i < n_vocab; i++)
            if (cand[i].logit > cand[best].logit)
                best = i;
        *out_token = best;
        return LMRT_OK;
    }

    size_t n = (size_t)n_vocab;
    if (c->top_k > 0 && (size_t)c->top_k < n) {
        n = (size_t)c->top_k;
        select_best(cand, (size_t)n_vocab, n);
    }
    qsort(cand, n, sizeof *cand, by_logit_desc);
    softmax(cand, n, 1.0f);
    if (c->top_p < 1.0f) {
        double cum = 0;
        size_t keep = n;
        for (size_t i = 0; i < n; i++) {
            cum += cand[i].p;
            if (cum >= c->top_p) {
                keep = i + 1;
                break;
            }
        }
        n = keep;
    }
    if (c->min_p > 0.0f) {
        float threshold = cand[0].p * c->min_p;
        size_t keep = 1;
        while (keep < n && cand[keep].p >= threshold)
            keep++;
        n = keep;
    }
    softmax(cand, n, c->temperature);
    double r = next_uniform(s->rng), cum = 0;
    for (size_t i = 0; i < n; i++) {
        cum += cand[i].p;
        if (r < cum) {
            *out_token = cand[i].id;
            return LMRT_OK;
        }
    }
    *out_token = cand[n - 1].id; /* r landed in the rounding slack at the top */
    return LMRT_OK;
}
