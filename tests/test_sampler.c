/* test_sampler.c - lib/sample/sampler.c against a plain reimplementation of its
 * contract: penalties, then greedy, or sort all candidates by logit (ties by id) ->
 * top-k -> softmax -> top-p -> min-p -> softmax at the temperature -> a draw from
 * xoshiro256** seeded by splitmix64. The library selects the top k without sorting
 * the whole vocabulary; the token drawn must be the same for every seed, logits
 * (ties and -inf included) and setting. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "base/error.h"
#include "sample/sampler.h"

/* ---- the reference ------------------------------------------------------------- */

typedef struct ref_cand {
    int32_t id;
    float logit, p;
} ref_cand;

static uint64_t ref_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t ref_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static double ref_uniform(uint64_t s[4])
{
    uint64_t result = ref_rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = ref_rotl(s[3], 45);
    return (double)(result >> 11) * 0x1.0p-53;
}

static int ref_desc(const void *a, const void *b)
{
    const ref_cand *x = a, *y = b;
    if (x->logit != y->logit)
        return x->logit < y->logit ? 1 : -1;
    return (x->id > y->id) - (x->id < y->id);
}

static void ref_softmax(ref_cand *c, size_t n, float temperature)
{
    float max = c[0].logit;
    for (size_t i = 1; i < n; i++)
        if (c[i].logit > max)
            max = c[i].logit;
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        c[i].p = expf((c[i].logit - max) / temperature);
        sum += c[i].p;
    }
    for (size_t i = 0; i < n; i++)
        c[i].p = (float)(c[i].p / sum);
}

/* No penalties (the cases below leave them off). */
static int32_t ref_sample(const sampler_config *cfg, uint64_t rng[4], const float *logits,
                          int32_t n_vocab, ref_cand *c)
{
    for (int32_t i = 0; i < n_vocab; i++)
        c[i] = (ref_cand){i, logits[i], 0};
    if (cfg->temperature <= 0) {
        int32_t best = 0;
        for (int32_t i = 1; i < n_vocab; i++)
            if (c[i].logit > c[best].logit)
                best = i;
        return best;
    }
    size_t n = (size_t)n_vocab;
    qsort(c, n, sizeof *c, ref_desc);
    if (cfg->top_k > 0 && (size_t)cfg->top_k < n)
        n = (size_t)cfg->top_k;
    ref_softmax(c, n, 1.0f);
    if (cfg->top_p < 1.0f) {
        double cum = 0;
        for (size_t i = 0; i < n; i++) {
            cum += c[i].p;
            if (cum >= cfg->top_p) {
                n = i + 1;
                break;
            }
        }
    }
    if (cfg->min_p > 0.0f) {
        float threshold = c[0].p * cfg->min_p;
        size_t keep = 1;
        while (keep < n && c[keep].p >= threshold)
            keep++;
        n = keep;
    }
    ref_softmax(c, n, cfg->temperature);
    double r = ref_uniform(rng), cum = 0;
    for (size_t i = 0; i < n; i++) {
        cum += c[i].p;
        if (r < cum)
            return c[i].id;
    }
    return c[n - 1].id;
}

/* ---- the comparison ---------------------------------------------------------------- */

static uint64_t lcg_state = 12345;

static uint32_t lcg(void)
{
    lcg_state = lcg_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(lcg_state >> 33);
}

/* Logits with many exact ties (values on a coarse grid) and a few -inf. */
static void make_logits(float *l, int32_t n, int grid)
{
    for (int32_t i = 0; i < n; i++) {
        l[i] = grid ? (float)(lcg() % (uint32_t)grid) * 0.5f - 4.0f
                    : (float)lcg() / 4294967296.0f * 20.0f - 10.0f;
        if (lcg() % 50 == 0)
            l[i] = -INFINITY;
    }
    l[lcg() % (uint32_t)n] = 3.0f;   /* at least one finite logit */
}

static void same_token_as_the_full_sort_for_every_setting(void **state)
{
    (void)state;
    static const int32_t vocab[] = {1, 2, 7, 40, 41, 300, 1000};
    static const int32_t top_ks[] = {0, 1, 2, 5, 40, 1000, 100000};
    static const float top_ps[] = {1.0f, 0.95f, 0.5f, 0.0f};
    static const float min_ps[] = {0.0f, 0.05f, 0.5f, 1.0f};
    static const float temps[] = {0.0f, 0.3f, 0.8f, 1.5f};
    float *logits = malloc(sizeof(float) * 1000);
    ref_cand *rc = malloc(sizeof(ref_cand) * 1000);
    void *scratch = malloc(sampler_scratch_bytes(1000));
    assert_true(logits && rc && scratch);
    long compared = 0;
    for (size_t vi = 0; vi < sizeof vocab / sizeof vocab[0]; vi++)
        for (int grid = 0; grid <= 9; grid += 3)
            for (size_t ki = 0; ki < sizeof top_ks / sizeof top_ks[0]; ki++)
                for (size_t pi = 0; pi < sizeof top_ps / sizeof top_ps[0]; pi++)
                    for (size_t mi = 0; mi < sizeof min_ps / sizeof min_ps[0]; mi++)
                        for (size_t ti = 0; ti < sizeof temps / sizeof temps[0]; ti++) {
                            const int32_t n = vocab[vi];
                            make_logits(logits, n, grid);
                            sampler_config cfg = {.temperature = temps[ti],
                                                  .top_k = top_ks[ki],
                                                  .top_p = top_ps[pi],
                                                  .min_p = min_ps[mi],
                                                  .repeat_penalty = 1.0f,
                                                  .repeat_last_n = 64,
                                                  .seed = lcg()};
                            sampler s;
                            assert_int_equal(sampler_configure(&s, &cfg), LMRT_OK);
                            uint64_t rng[4], x = cfg.seed;
                            for (int i = 0; i < 4; i++)
                                rng[i] = ref_splitmix64(&x);
                            for (int draw = 0; draw < 3; draw++) {
                                int32_t got = -1;
                                assert_int_equal(sampler_sample(&s, logits, n, NULL, 0, scratch,
                                                                &got),
                                                 LMRT_OK);
                                int32_t want = ref_sample(&cfg, rng, logits, n, rc);
                                if (got != want)
                                    fail_msg("n_vocab %d grid %d top_k %d top_p %g min_p %g "
                                             "temp %g draw %d: token %d, want %d", (int)n, grid,
                                             (int)cfg.top_k, (double)cfg.top_p,
                                             (double)cfg.min_p, (double)cfg.temperature, draw,
                                             (int)got, (int)want);
                                compared++;
                            }
                        }
    assert_int_equal(compared, 7 * 4 * 7 * 4 * 4 * 4 * 3);   /* every case, three draws each */
    free(scratch);
    free(rc);
    free(logits);
}

/* Greedy without penalties reads the logits in place, a chunk at a time: the first of
 * equal maxima wherever the chunks fall (ties within and across chunks, -0 and +0,
 * every logit -inf), and a NaN anywhere is an error naming its index. */
static int32_t ref_first_largest(const float *l, int32_t n)
{
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (l[i] > l[best])
            best = i;
    return best;
}

static void greedy_takes_the_first_largest_logit(void **state)
{
    (void)state;
    static const int32_t sizes[] = {1, 7, 8, 9, 255, 256, 257, 511, 512, 513, 1000, 128256};
    sampler_config cfg = {.temperature = 0, .repeat_penalty = 1.0f, .repeat_last_n = 64};
    sampler s;
    assert_int_equal(sampler_configure(&s, &cfg), LMRT_OK);
    float *l = malloc(sizeof(float) * 128256);
    assert_non_null(l);
    long compared = 0;
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
        for (int trial = 0; trial < 200; trial++) {
            const int32_t n = sizes[si];
            const int kind = trial % 5;
            for (int32_t i = 0; i < n; i++)   /* a coarse grid: many ties */
                l[i] = kind == 4 ? -INFINITY : (float)(lcg() % 9) - 8.0f;
            if (kind == 1)   /* the top value twice (in different chunks, mostly) */
                for (int k = 0; k < 2; k++)
                    l[lcg() % (uint32_t)n] = 0.5f;
            if (kind == 2)   /* zeros of both signs on top */
                for (int k = 0; k < 3; k++)
                    l[lcg() % (uint32_t)n] = k % 2 ? -0.0f : 0.0f;
            if (kind == 3)
                l[n - 1] = 1.0f;   /* the largest last, in a tail */
            int32_t got = -1;
            assert_int_equal(sampler_sample(&s, l, n, NULL, 0, NULL, &got), LMRT_OK);
            assert_int_equal(got, ref_first_largest(l, n));
            compared++;
            if (trial % 10 == 0) {   /* a NaN, possibly after the largest */
                const int32_t at = (int32_t)(lcg() % (uint32_t)n);
                l[at] = NAN;
                got = -7;
                assert_int_equal(sampler_sample(&s, l, n, NULL, 0, NULL, &got),
                                 LMRT_E_INTERNAL);
                assert_int_equal(got, -7);   /* an error leaves the token alone */
                char want[64];
                snprintf(want, sizeof want, "logit %d is NaN", (int)at);
                assert_non_null(strstr(lmrt_last_error(), want));
            }
        }
    assert_int_equal(compared, 12 * 200);
    free(l);
}

/* The point of the selection: a Llama 3 vocabulary with the default top_k of 40 must
 * not cost a sort of 128256 candidates. Measured here as CPU time against greedy
 * over the candidate table (a penalty is set, with no history, so that greedy builds
 * the table too) on the same logits: a ratio, not a wall-clock limit, since the
 * machines are shared. */
static double thread_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void top_k_costs_about_a_pass_over_the_vocabulary(void **state)
{
    (void)state;
    const int32_t n = 128256;
    float *logits = malloc(sizeof(float) * (size_t)n);
    void *scratch = malloc(sampler_scratch_bytes(n));
    assert_true(logits && scratch);
    make_logits(logits, n, 0);
    sampler_config greedy = {.temperature = 0, .repeat_penalty = 1.1f, .repeat_last_n = 64},
                   topk = {.temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f,
                           .repeat_penalty = 1, .repeat_last_n = 64, .seed = 7};
    sampler sg, sk;
    assert_int_equal(sampler_configure(&sg, &greedy), LMRT_OK);
    assert_int_equal(sampler_configure(&sk, &topk), LMRT_OK);
    int32_t tok;
    /* Both once untimed: the first call faults the scratch in. */
    assert_int_equal(sampler_sample(&sg, logits, n, NULL, 0, scratch, &tok), LMRT_OK);
    assert_int_equal(sampler_sample(&sk, logits, n, NULL, 0, scratch, &tok), LMRT_OK);
    double t0 = thread_seconds();
    for (int i = 0; i < 20; i++)
        assert_int_equal(sampler_sample(&sg, logits, n, NULL, 0, scratch, &tok), LMRT_OK);
    double t1 = thread_seconds();
    for (int i = 0; i < 20; i++)
        assert_int_equal(sampler_sample(&sk, logits, n, NULL, 0, scratch, &tok), LMRT_OK);
    double t2 = thread_seconds();
    /* A full qsort of the candidates measured ~30x greedy; the selection ~1-2x. */
    print_message("top-k sampling %.3f ms per token, greedy over the table %.3f ms\n",
                  (t2 - t1) * 50, (t1 - t0) * 50);
    if (t2 - t1 > 8 * (t1 - t0) + 1e-3)
        fail_msg("top-k sampling took %.2f ms per token against %.2f ms greedy",
                 (t2 - t1) * 50, (t1 - t0) * 50);
    free(scratch);
    free(logits);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(same_token_as_the_full_sort_for_every_setting),
        cmocka_unit_test(greedy_takes_the_first_largest_logit),
        cmocka_unit_test(top_k_costs_about_a_pass_over_the_vocabulary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
