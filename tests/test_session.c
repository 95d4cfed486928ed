/* test_session.c - sessions on the real stories260K model: greedy generation
 * against the published reference, sampling determinism across runs, threads
 * and sessions, save/restore/fork, stop conditions, and every bad input. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/alloc.h"
#include "lmrt.h"

#define DATA LMRT_SOURCE_ROOT "/tests/data/"
#define STORIES LMRT_SOURCE_ROOT "/lib/model/builtin/stories260K.gguf"
#define N_REF 256

static int32_t ref_ids[N_REF];

/* Reads "generated_ids": [...] from the reference JSON. */
static void load_reference(void)
{
    FILE *f = fopen(DATA "greedy_t0_n256.ids.json", "rb");
    assert_non_null(f);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strstr(buf, "\"generated_ids\"");
    assert_non_null(p);
    p = strchr(p, '[');
    assert_non_null(p);
    for (int i = 0; i < N_REF; i++) {
        p++;
        ref_ids[i] = (int32_t)strtol(p, &p, 10);
        assert_true(*p == ',' || (*p == ']' && i == N_REF - 1));
    }
}

typedef struct fixture {
    lmrt_model *model;
    lmrt_context *ctx;
} fixture;

static lmrt_context *make_context(lmrt_model *m, int32_t threads)
{
    lmrt_context_params cp;
    lmrt_context_params_init(&cp, sizeof cp);
    cp.n_threads = threads;
    cp.region = "US";
    lmrt_context *ctx = NULL;
    assert_int_equal(lmrt_context_create(m, &cp, &ctx), LMRT_OK);
    return ctx;
}

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    if (lmrt_model_load_builtin(NULL, &fx->model) != LMRT_OK)
        return -1;
    fx->ctx = make_context(fx->model, 2);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    lmrt_context_free(fx->ctx);
    lmrt_model_free(fx->model);
    free(fx);
    return 0;
}

static lmrt_session *new_session(lmrt_context *ctx, int32_t n_ctx, bool all_logits)
{
    lmrt_session_params sp;
    lmrt_session_params_init(&sp, sizeof sp);
    sp.n_ctx = n_ctx;
    sp.keep_all_logits = all_logits;
    lmrt_session *s = NULL;
    assert_int_equal(lmrt_session_create(ctx, &sp, &s), LMRT_OK);
    return s;
}

static void set_sampling(lmrt_session *s, float temp, uint64_t seed)
{
    lmrt_sampler_params p;
    lmrt_sampler_params_init(&p, sizeof p);
    p.temperature = temp;
    p.seed = seed;
    assert_int_equal(lmrt_session_set_sampler(s, &p), LMRT_OK);
}

static void feed_bos(lmrt_session *s)
{
    int32_t bos = 1;
    assert_int_equal(lmrt_session_feed_tokens(s, &bos, 1), LMRT_OK);
}

static void next_ids(lmrt_session *s, int32_t *ids, int n)
{
    for (int i = 0; i < n; i++)
        assert_int_equal(lmrt_session_next_token(s, &ids[i], NULL, 0, NULL), LMRT_OK);
}

static void greedy_from_bos_matches_llama2c_reference(void **state)
{
    fixture *fx = *state;
    lmrt_session *s = new_session(fx->ctx, 0, false);
    set_sampling(s, 0.0f, 0);
    feed_bos(s);
    int32_t ids[N_REF];
    next_ids(s, ids, N_REF);
    for (int i = 0; i < N_REF; i++)
        if (ids[i] != ref_ids[i])
            fail_msg("token %d: got %d, reference %d", i, ids[i], ref_ids[i]);
    lmrt_session_free(s);
}

typedef struct collect {
    int32_t ids[1024];
    int n;
    char text[8192];
    size_t len;
    int abort_after;
    int polls;
} collect;

static bool collect_token(void *user, int32_t token, const char *text, size_t len)
{
    collect *c = user;
    if (token >= 0)
        c->ids[c->n++] = token;
    assert_true(c->len + len < sizeof c->text);
    memcpy(c->text + c->len, text, len);
    c->len += len;
    c->text[c->len] = '\0';
    return true;
}

static bool abort_after(void *user)
{
    collect *c = user;
    return c->abort_after >= 0 && c->n >= c->abort_after;
}

static int32_t generate(lmrt_session *s, int max_tokens, const char *const *stop, size_t n_stop,
                        collect *c)
{
    lmrt_generate_params gp;
    lmrt_generate_params_init(&gp, sizeof gp);
    gp.max_tokens = max_tokens;
    gp.stop = stop;
    gp.n_stop = n_stop;
    gp.on_token = collect_token;
    gp.should_abort = abort_after;
    gp.user = c;
    int32_t reason = -1;
    assert_int_equal(lmrt_session_generate(s, &gp, &reason), LMRT_OK);
    return reason;
}

static void generated_text_matches_reference_text(void **state)
{
    fixture *fx = *state;
    lmrt_session *s = new_session(fx->ctx, 0, false);
    set_sampling(s, 0.0f, 0);
    feed_bos(s);
    collect *c = calloc(1, sizeof *c);
    c->abort_after = -1;
    int32_t reason = generate(s, N_REF, NULL, 0, c);
    assert_int_equal(reason, LMRT_STOP_MAX_TOKENS);
    assert_int_equal(c->n, N_REF);
    assert_memory_equal(c->ids, ref_ids, sizeof ref_ids);
    FILE *f = fopen(DATA "greedy_t0_n256.txt", "rb");
    assert_non_null(f);
    char want[4096];
    size_t n = fread(want, 1, sizeof want - 1, f);
    fclose(f);
    want[n] = '\0';
    /* SentencePiece's dummy prefix space before the first word is not text. */
    const char *got = c->text;
    while (n && (want[n - 1] == '\n'))
        want[--n] = '\0';
    assert_string_equal(got, want);
    free(c);
    lmrt_session_free(s);
}

static void sampling_is_reproducible_for_a_seed(void **state)
{
    fixture *fx = *state;
    int32_t a[64], b[64], other[64];
    for (int run = 0; run < 3; run++) {
        lmrt_session *s = new_session(fx->ctx, 0, false);
        set_sampling(s, 0.9f, run == 2 ? 43 : 42);
        assert_int_equal(lmrt_session_feed_text(s, "Once upon a time", LMRT_TOKENIZE_ADD_BOS),
                         LMRT_OK);
        next_ids(s, run == 0 ? a : run == 1 ? b : other, 64);
        lmrt_session_free(s);
    }
    assert_memory_equal(a, b, sizeof a);
    assert_memory_not_equal(a, other, sizeof a);
}

static void same_tokens_at_every_thread_count(void **state)
{
    fixture *fx = *state;
    int32_t base[48];
    for (int32_t threads = 1; threads <= 4; threads++) {
        lmrt_context *ctx = make_context(fx->model, threads);
        lmrt_session *s = new_session(ctx, 0, false);
        set_sampling(s, 0.8f, 7);
        assert_int_equal(lmrt_session_feed_text(s, "The cat", LMRT_TOKENIZE_ADD_BOS), LMRT_OK);
        int32_t ids[48];
        next_ids(s, ids, 48);
        if (threads == 1)
            memcpy(base, ids, sizeof ids);
        else
            assert_memory_equal(ids, base, sizeof ids);
        lmrt_session_free(s);
        lmrt_context_free(ctx);
    }
}

typedef struct worker {
    lmrt_context *ctx;
    uint64_t seed;
    int32_t ids[4][40];
} worker;

/* One thread, four sessions, interleaved token by token. */
static void *run_worker(void *arg)
{
    worker *w = arg;
    lmrt_session *s[4];
    for (int i = 0; i < 4; i++) {
        s[i] = new_session(w->ctx, 128, false);
        set_sampling(s[i], 0.7f, w->seed * 10 + (uint64_t)i);
        assert_int_equal(lmrt_session_feed_text(s[i], "A little dog", LMRT_TOKENIZE_ADD_BOS),
                         LMRT_OK);
    }
    for (int t = 0; t < 40; t++)
        for (int i = 0; i < 4; i++)
            assert_int_equal(lmrt_session_next_token(s[i], &w->ids[i][t], NULL, 0, NULL),
                             LMRT_OK);
    for (int i = 0; i < 4; i++)
        lmrt_session_free(s[i]);
    return NULL;
}

static void four_threads_of_four_sessions_match_sequential_runs(void **state)
{
    fixture *fx = *state;
    worker seq[4], par[4];
    for (int i = 0; i < 4; i++) {
        seq[i] = (worker){.ctx = fx->ctx, .seed = (uint64_t)i};
        run_worker(&seq[i]);
    }
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        par[i] = (worker){.ctx = fx->ctx, .seed = (uint64_t)i};
        assert_int_equal(pthread_create(&th[i], NULL, run_worker, &par[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++)
        assert_memory_equal(seq[i].ids, par[i].ids, sizeof seq[i].ids);
}

static void save_restore_continue_equals_uninterrupted(void **state)
{
    fixture *fx = *state;
    lmrt_session *a = new_session(fx->ctx, 0, false);
    set_sampling(a, 0.8f, 99);
    assert_int_equal(lmrt_session_feed_text(a, "Tim and Sue", LMRT_TOKENIZE_ADD_BOS), LMRT_OK);
    int32_t first[20], rest_a[30], rest_b[30], rest_f[30];
    next_ids(a, first, 20);
    void *blob = NULL;
    size_t size = 0;
    assert_int_equal(lmrt_session_save(a, &blob, &size), LMRT_OK);
    assert_true(size > 40);
    lmrt_session *f = NULL;
    assert_int_equal(lmrt_session_fork(a, &f), LMRT_OK);
    next_ids(a, rest_a, 30);
    lmrt_session *b = NULL;
    assert_int_equal(lmrt_session_restore(fx->ctx, blob, size, &b), LMRT_OK);
    int64_t n_b = 0;
    assert_int_equal(lmrt_session_n_tokens(b, &n_b), LMRT_OK);
    next_ids(b, rest_b, 30);
    next_ids(f, rest_f, 30);
    assert_memory_equal(rest_a, rest_b, sizeof rest_a);
    assert_memory_equal(rest_a, rest_f, sizeof rest_a);
    lmrt_free(blob);
    lmrt_session_free(a);
    lmrt_session_free(b);
    lmrt_session_free(f);
}

static void corrupted_or_foreign_blobs_are_refused(void **state)
{
    fixture *fx = *state;
    lmrt_session *a = new_session(fx->ctx, 64, false);
    feed_bos(a);
    void *blob = NULL;
    size_t size = 0;
    assert_int_equal(lmrt_session_save(a, &blob, &size), LMRT_OK);
    unsigned char *bad = malloc(size);
    lmrt_session *b = NULL;
    /* Every single-byte flip and every truncation is refused, none crashes. */
    for (size_t i = 0; i < size; i++) {
        memcpy(bad, blob, size);
        bad[i] ^= 0x5a;
        lmrt_status st = lmrt_session_restore(fx->ctx, bad, size, &b);
        if (st != LMRT_E_FORMAT)
            fail_msg("byte %zu of %zu flipped: %s (%s)", i, size, lmrt_status_str(st), lmrt_last_error());
        assert_null(b);
        st = lmrt_session_restore(fx->ctx, blob, i, &b);
        assert_true(st == LMRT_E_FORMAT);
    }
    /* The same shapes but another model file: the hash tells them apart. */
    FILE *f = fopen(STORIES, "rb");
    assert_non_null(f);
    static unsigned char other[1 << 21];
    size_t n = fread(other, 1, sizeof other, f);
    fclose(f);
    unsigned char *name = memmem(other, n, "general.name", 12);
    assert_non_null(name);
    name[12 + 4 + 8 + 4] ^= 1; /* a letter of its value "llama" */
    lmrt_model *m2 = NULL;
    assert_int_equal(lmrt_model_load_memory(other, n, NULL, &m2), LMRT_OK);
    lmrt_context *c2 = make_context(m2, 1);
    assert_int_equal(lmrt_session_restore(c2, blob, size, &b), LMRT_E_MISMATCH);
    assert_non_null(strstr(lmrt_last_error(), "another model"));
    lmrt_context_free(c2);
    lmrt_model_free(m2);
    free(bad);
    lmrt_free(blob);
    lmrt_session_free(a);
}

static void stop_strings_end_generation_before_them(void **state)
{
    fixture *fx = *state;
    lmrt_session *s = new_session(fx->ctx, 0, false);
    set_sampling(s, 0.0f, 0);
    feed_bos(s);
    collect *c = calloc(1, sizeof *c);
    c->abort_after = -1;
    const char *stop[] = {"xyzzy", "Lily"};
    assert_int_equal(generate(s, 100, stop, 2, c), LMRT_STOP_STRING);
    assert_string_equal(c->text, "Once upon a time, there was a little girl named ");
    free(c);
    lmrt_session_free(s);
}

static void abort_callback_stops_with_aborted(void **state)
{
    fixture *fx = *state;
    lmrt_session *s = new_session(fx->ctx, 0, false);
    feed_bos(s);
    collect *c = calloc(1, sizeof *c);
    c->abort_after = 5;
    lmrt_generate_params gp;
    lmrt_generate_params_init(&gp, sizeof gp);
    gp.max_tokens = 50;
    gp.on_token = collect_token;
    gp.should_abort = abort_after;
    gp.user = c;
    int32_t reason = 1234;
    assert_int_equal(lmrt_session_generate(s, &gp, &reason), LMRT_E_ABORTED);
    assert_int_equal(reason, 1234);
    int64_t n = 0;
    assert_int_equal(lmrt_session_n_tokens(s, &n), LMRT_OK);
    assert_int_equal(n, 1 + 5);
    free(c);
    lmrt_session_free(s);
}

static void all_logits_rows_agree_with_last_position(void **state)
{
    fixture *fx = *state;
    const int32_t ids[] = {1, 403, 407, 261, 378};
    lmrt_session *all = new_session(fx->ctx, 0, true);
    lmrt_session *last = new_session(fx->ctx, 0, false);
    assert_int_equal(lmrt_session_feed_tokens(all, ids, 5), LMRT_OK);
    const float *la, *ll;
    int64_t rows;
    int32_t nv;
    assert_int_equal(lmrt_session_logits(all, &la, &rows, &nv), LMRT_OK);
    assert_int_equal(rows, 5);
    assert_int_equal(nv, 512);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(lmrt_session_feed_tokens(last, &ids[i], 1), LMRT_OK);
        assert_int_equal(lmrt_session_logits(last, &ll, &rows, &nv), LMRT_OK);
        assert_int_equal(rows, 1);
        /* Batched and one-by-one runs do the same float operations per row. */
        assert_memory_equal(ll, la + (size_t)i * 512, 512 * sizeof(float));
    }
    lmrt_session_free(all);
    lmrt_session_free(last);
}

static void bad_inputs_are_clear_errors(void **state)
{
    fixture *fx = *state;
    lmrt_session *s = new_session(fx->ctx, 16, false);
    int32_t tok;
    /* Nothing fed yet. */
    assert_int_equal(lmrt_session_next_token(s, &tok, NULL, 0, NULL), LMRT_E_INVALID_STATE);
    /* Out-of-vocabulary ids. */
    const int32_t oov[] = {1, 512};
    assert_int_equal(lmrt_session_feed_tokens(s, oov, 2), LMRT_E_INVALID_ARG);
    assert_non_null(strstr(lmrt_last_error(), "512"));
    const int32_t neg[] = {-1};
    assert_int_equal(lmrt_session_feed_tokens(s, neg, 1), LMRT_E_INVALID_ARG);
    /* Empty prompts. */
    assert_int_equal(lmrt_session_feed_tokens(s, oov, 0), LMRT_E_INVALID_ARG);
    assert_int_equal(lmrt_session_feed_text(s, "", 0), LMRT_E_INVALID_ARG);
    int64_t n = -1;
    assert_int_equal(lmrt_session_n_tokens(s, &n), LMRT_OK);
    assert_int_equal(n, 0);
    /* Longer than the context, then filling it exactly and going on. */
    int32_t many[17];
    for (int i = 0; i < 17; i++)
        many[i] = 100 + i;
    assert_int_equal(lmrt_session_feed_tokens(s, many, 17), LMRT_E_CONTEXT_FULL);
    assert_int_equal(lmrt_session_feed_tokens(s, many, 15), LMRT_OK);
    assert_int_equal(lmrt_session_next_token(s, &tok, NULL, 0, NULL), LMRT_OK);
    assert_int_equal(lmrt_session_next_token(s, &tok, NULL, 0, NULL), LMRT_E_CONTEXT_FULL);
    collect *c = calloc(1, sizeof *c);
    c->abort_after = -1;
    lmrt_generate_params gp;
    lmrt_generate_params_init(&gp, sizeof gp);
    gp.on_token = collect_token;
    gp.user = c;
    int32_t reason;
    assert_int_equal(lmrt_session_generate(s, &gp, &reason), LMRT_E_CONTEXT_FULL);
    free(c);
    /* NULL handles and arguments. */
    assert_int_equal(lmrt_session_feed_text(NULL, "x", 0), LMRT_E_INVALID_ARG);
    assert_int_equal(lmrt_session_feed_text(s, NULL, 0), LMRT_E_INVALID_ARG);
    assert_int_equal(lmrt_session_generate(NULL, NULL, NULL), LMRT_E_INVALID_ARG);
    assert_int_equal(lmrt_session_create(NULL, NULL, &s), LMRT_E_INVALID_ARG);
    assert_int_equal(lmrt_session_save(NULL, NULL, NULL), LMRT_E_INVALID_ARG);
    /* A text buffer too small for a piece says how big it must be. */
    lmrt_session_reset(s);
    feed_bos(s);
    char small[2];
    size_t need = 0;
    assert_int_equal(lmrt_session_next_token(s, &tok, small, sizeof small, &need),
                     LMRT_E_BUFFER_TOO_SMALL);
    assert_true(need > 2);
    /* Sampler values out of range. */
    lmrt_sampler_params p;
    lmrt_sampler_params_init(&p, sizeof p);
    p.top_p = -1;
    assert_int_equal(lmrt_session_set_sampler(s, &p), LMRT_E_INVALID_ARG);
    lmrt_session_free(s);
}

static void session_outliving_its_model_is_invalid_state(void **state)
{
    (void)state;
    lmrt_model *m = NULL;
    assert_int_equal(lmrt_model_load(STORIES, NULL, &m), LMRT_OK);
    lmrt_context *ctx = make_context(m, 1);
    lmrt_session *s = new_session(ctx, 32, false);
    lmrt_model_free(m);
    lmrt_context_free(ctx);
    int32_t bos = 1;
    assert_int_equal(lmrt_session_feed_tokens(s, &bos, 1), LMRT_E_INVALID_STATE);
    lmrt_session_free(s);
}

/* Every allocation of a session's life fails in turn: each is LMRT_E_NOMEM,
 * nothing leaks (ASan) and the session is still usable afterwards. */
static void allocation_failures_are_nomem_everywhere(void **state)
{
    fixture *fx = *state;
    for (long n = 0;; n++) {
        lmrt_session *s = NULL, *r = NULL, *f = NULL;
        void *blob = NULL;
        size_t size = 0;
        int32_t tok;
        const char *roles[] = {"user"}, *contents[] = {"Hi"};
        lmrt_sampler_params p;
        lmrt_sampler_params_init(&p, sizeof p);
        lmrt_session_params sp;
        lmrt_session_params_init(&sp, sizeof sp);
        sp.n_ctx = 64;
        lmrt_alloc_fail_after(n);
        lmrt_status st = lmrt_session_create(fx->ctx, &sp, &s);
        if (!st)
            st = lmrt_session_set_sampler(s, &p);
        if (!st)
            st = lmrt_session_feed_text(s, "Once upon", LMRT_TOKENIZE_ADD_BOS);
        if (!st)
            st = lmrt_session_feed_chat(s, roles, contents, 1, true);
        if (!st)
            st = lmrt_session_next_token(s, &tok, NULL, 0, NULL);
        if (!st)
            st = lmrt_session_save(s, &blob, &size);
        if (!st)
            st = lmrt_session_restore(fx->ctx, blob, size, &r);
        if (!st)
            st = lmrt_session_fork(r, &f);
        lmrt_alloc_fail_after(-1);
        if (st) {
            assert_int_equal(st, LMRT_E_NOMEM);
            /* Whatever failed, a session that exists still works. */
            if (s && lmrt_session_feed_tokens(s, &(int32_t){1}, 1) == LMRT_OK)
                assert_int_equal(lmrt_session_next_token(s, &tok, NULL, 0, NULL), LMRT_OK);
        }
        lmrt_free(blob);
        lmrt_session_free(f);
        lmrt_session_free(r);
        lmrt_session_free(s);
        if (!st)
            break;
        assert_true(n < 100000);
    }
}

int main(void)
{
    load_reference();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(greedy_from_bos_matches_llama2c_reference),
        cmocka_unit_test(generated_text_matches_reference_text),
        cmocka_unit_test(sampling_is_reproducible_for_a_seed),
        cmocka_unit_test(same_tokens_at_every_thread_count),
        cmocka_unit_test(four_threads_of_four_sessions_match_sequential_runs),
        cmocka_unit_test(save_restore_continue_equals_uninterrupted),
        cmocka_unit_test(corrupted_or_foreign_blobs_are_refused),
        cmocka_unit_test(stop_strings_end_generation_before_them),
        cmocka_unit_test(abort_callback_stops_with_aborted),
        cmocka_unit_test(all_logits_rows_agree_with_last_position),
        cmocka_unit_test(bad_inputs_are_clear_errors),
        cmocka_unit_test(session_outliving_its_model_is_invalid_state),
        cmocka_unit_test(allocation_failures_are_nomem_everywhere),
    };
    return cmocka_run_group_tests_name("session", tests, setup, teardown);
}
