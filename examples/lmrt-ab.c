/* lmrt-ab - compares the generation speed of two builds of liblmrt in one process.
 *
 *   lmrt-ab LIB_A LIB_B [-m MODEL] [-n 64] [-r 15] [-t 2] [--json]
 *
 * Both shared libraries are opened (dlopen, each keeping its own symbols), each loads
 * MODEL (default: the built-in model) into a context of -t threads, and then -r rounds
 * run tgN (N tokens decoded from an empty context, greedy, as lmrt-bench's tgN) on
 * both, A first in even rounds and B first in odd ones. On a shared host the speed of
 * memory moves from one minute to the next by more than most changes; two builds run
 * side by side, round by round, see the same minutes, so the median of the per-round
 * ratios B/A (and how many rounds B won) measures the change where two lmrt-bench runs
 * cannot. doc/performance.md's "alternated in one process" figures come from it.
 *
 * It also says whether the two builds generated the same tokens. LIB_A and LIB_B must
 * be different files: the same path twice gives one library (copy it to compare a build
 * with itself, which shows the tool's noise). Exits 1 on an error, 2 on bad arguments. */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmrt.h"

#include "bench-stats.h"

#define MAX_ROUNDS 999

/* The calls made into one library, looked up by name. */
typedef struct build {
    const char *path;
    void *handle;
    int32_t (*abi_version)(void);
    const char *(*version)(void);
    const char *(*status_str)(lmrt_status);
    const char *(*last_error)(void);
    lmrt_status (*model_load)(const char *, const lmrt_model_params *, lmrt_model **);
    lmrt_status (*model_load_builtin)(const lmrt_model_params *, lmrt_model **);
    void (*model_free)(lmrt_model *);
    void (*context_params_init)(lmrt_context_params *, size_t);
    lmrt_status (*context_create)(lmrt_model *, const lmrt_context_params *, lmrt_context **);
    void (*context_free)(lmrt_context *);
    void (*session_params_init)(lmrt_session_params *, size_t);
    lmrt_status (*session_create)(lmrt_context *, const lmrt_session_params *, lmrt_session **);
    void (*sampler_params_init)(lmrt_sampler_params *, size_t);
    lmrt_status (*session_set_sampler)(lmrt_session *, const lmrt_sampler_params *);
    lmrt_status (*feed_tokens)(lmrt_session *, const int32_t *, size_t);
    lmrt_status (*next_token)(lmrt_session *, int32_t *, char *, size_t, size_t *);
    void (*session_free)(lmrt_session *);
    lmrt_model *model;
    lmrt_context *ctx;
} build;

typedef struct options {
    const char *lib[2], *model;
    long n_gen, rounds, threads;
    int json;
} options;

static int usage(const char *why)
{
    fprintf(stderr, "lmrt-ab: %s\nusage: lmrt-ab LIB_A LIB_B [-m MODEL] [-n TOKENS] "
            "[-r ROUNDS] [-t THREADS] [--json]\n", why);
    return 2;
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || errno || end == s || *end || v < lo || v > hi)
        return 0;
    *out = v;
    return 1;
}

static int parse_options(int argc, char **argv, options *o)
{
    *o = (options){.n_gen = 64, .rounds = 15, .threads = 2};
    int n_libs = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--json")) {
            o->json = 1;
        } else if (!strcmp(a, "-m") && v) {
            o->model = argv[++i];
        } else if (!strcmp(a, "-n") || !strcmp(a, "-r") || !strcmp(a, "-t")) {
            long *dst = a[1] == 'n' ? &o->n_gen : a[1] == 'r' ? &o->rounds : &o->threads;
            long hi = a[1] == 'n' ? 100000 : a[1] == 'r' ? MAX_ROUNDS : 1024;
            if (!parse_long(v, 1, hi, dst))
                return usage("-n, -r and -t take a positive whole number (-r at most 999)");
            i++;
        } else if (a[0] != '-' && n_libs < 2) {
            o->lib[n_libs++] = a;
        } else {
            fprintf(stderr, "lmrt-ab: unknown or incomplete argument '%s'\n", a);
            return usage("see above");
        }
    }
    if (n_libs != 2)
        return usage("two shared libraries are needed");
    return 0;
}

/* dlsym into a function pointer (the cast through void * is what POSIX allows). */
#define LOOK_UP(b, field, name)                                                        \
    do {                                                                               \
        void *sym_ = dlsym((b)->handle, name);                                         \
        if (!sym_) {                                                                   \
            fprintf(stderr, "lmrt-ab: %s has no %s\n", (b)->path, name);               \
            return 0;                                                                  \
        }                                                                              \
        memcpy(&(b)->field, &sym_, sizeof sym_);                                       \
    } while (0)

static int open_build(build *b, const char *path)
{
    b->path = path;
    /* RTLD_LOCAL: neither library's symbols become global, so each one's calls to
     * its own exported functions find itself (this program defines none of them). Not
     * RTLD_DEEPBIND, which the sanitizers' runtimes refuse. */
    b->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!b->handle) {
        fprintf(stderr, "lmrt-ab: %s\n", dlerror());
        return 0;
    }
    LOOK_UP(b, abi_version, "lmrt_abi_version");
    LOOK_UP(b, version, "lmrt_version");
    LOOK_UP(b, status_str, "lmrt_status_str");
    LOOK_UP(b, last_error, "lmrt_last_error");
    LOOK_UP(b, model_load, "lmrt_model_load");
    LOOK_UP(b, model_load_builtin, "lmrt_model_load_builtin");
    LOOK_UP(b, model_free, "lmrt_model_free");
    LOOK_UP(b, context_params_init, "lmrt_context_params_init");
    LOOK_UP(b, context_create, "lmrt_context_create");
    LOOK_UP(b, context_free, "lmrt_context_free");
    LOOK_UP(b, session_params_init, "lmrt_session_params_init");
    LOOK_UP(b, session_create, "lmrt_session_create");
    LOOK_UP(b, sampler_params_init, "lmrt_sampler_params_init");
    LOOK_UP(b, session_set_sampler, "lmrt_session_set_sampler");
    LOOK_UP(b, feed_tokens, "lmrt_session_feed_tokens");
    LOOK_UP(b, next_token, "lmrt_session_next_token");
    LOOK_UP(b, session_free, "lmrt_session_free");
    if (b->abi_version() != LMRT_ABI_VERSION) {
        fprintf(stderr, "lmrt-ab: %s has ABI version %d, this tool %d\n", path,
                (int)b->abi_version(), LMRT_ABI_VERSION);
        return 0;
    }
    return 1;
}

static int fail(const build *b, lmrt_status st, const char *what)
{
    fprintf(stderr, "lmrt-ab: %s: %s: %s: %s\n", b->path, what, b->status_str(st),
            b->last_error());
    return 0;
}

static int load(build *b, const options *o)
{
    lmrt_status st = o->model ? b->model_load(o->model, NULL, &b->model)
                              : b->model_load_builtin(NULL, &b->model);
    if (st != LMRT_OK)
        return fail(b, st, "loading the model");
    lmrt_context_params cp;
    b->context_params_init(&cp, sizeof cp);
    cp.n_threads = (int32_t)o->threads;
    if ((st = b->context_create(b->model, &cp, &b->ctx)) != LMRT_OK)
        return fail(b, st, "creating a context");
    return 1;
}

/* tgN on a fresh session: the first token fed, n - 1 greedy next_token calls; tokens/s,
 * or 0 on an error. tokens[0..n) get the tokens decoded. */
static double run_tg(const build *b, long n, int32_t *tokens)
{
    lmrt_session_params sp;
    b->session_params_init(&sp, sizeof sp);
    sp.n_ctx = (int32_t)n;
    lmrt_sampler_params greedy;
    b->sampler_params_init(&greedy, sizeof greedy);
    greedy.temperature = 0.0f;
    lmrt_session *s = NULL;
    lmrt_status st = b->session_create(b->ctx, &sp, &s);
    if (st == LMRT_OK)
        st = b->session_set_sampler(s, &greedy);
    tokens[0] = 1;   /* a fixed first token */
    double t0 = bench_now();
    if (st == LMRT_OK)
        st = b->feed_tokens(s, tokens, 1);
    for (long i = 1; st == LMRT_OK && i < n; i++)
        st = b->next_token(s, &tokens[i], NULL, 0, NULL);
    double t1 = bench_now();
    if (s)
        b->session_free(s);
    if (st != LMRT_OK) {
        fail(b, st, "generating");
        return 0;
    }
    return (double)n / (t1 - t0 > 0 ? t1 - t0 : 1e-9);
}

static void report(const options *o, const build b[2], const double *tps[2],
                   const double *ratio, long wins, long differ)
{
    const bench_stats sa = bench_summarize(tps[0], o->rounds),
                      sb = bench_summarize(tps[1], o->rounds),
                      sr = bench_summarize(ratio, o->rounds);
    if (o->json) {
        printf("{\n  \"lib_a\": \"%s\",\n  \"lib_b\": \"%s\",\n  \"model\": \"%s\",\n",
               b[0].path, b[1].path, o->model ? o->model : "builtin");
        printf("  \"n_gen\": %ld,\n  \"rounds\": %ld,\n  \"n_threads\": %ld,\n", o->n_gen,
               o->rounds, o->threads);
        printf("  \"a_tokens_per_s\": %.4f,\n  \"b_tokens_per_s\": %.4f,\n", sa.median, sb.median);
        printf("  \"ratio\": %.5f,\n  \"ratio_min\": %.5f,\n  \"ratio_max\": %.5f,\n", sr.median,
               sr.min, sr.max);
        printf("  \"b_wins\": %ld,\n  \"rounds_with_other_tokens\": %ld,\n  \"ratios\": [",
               wins, differ);
        for (long r = 0; r < o->rounds; r++)
            printf("%s%.5f", r ? ", " : "", ratio[r]);
        printf("]\n}\n");
        return;
    }
    printf("A %s (%s)\nB %s (%s)\nmodel %s, tg%ld, %ld threads, %ld rounds, order "
           "alternating\n", b[0].path, b[0].version(), b[1].path, b[1].version(),
           o->model ? o->model : "builtin", o->n_gen, o->threads, o->rounds);
    printf("A %.2f tok/s (%.2f .. %.2f), B %.2f tok/s (%.2f .. %.2f), medians\n", sa.median,
           sa.min, sa.max, sb.median, sb.min, sb.max);
    printf("B/A per round: median %.3f (%.3f .. %.3f), B faster in %ld of %ld rounds\n",
           sr.median, sr.min, sr.max, wins, o->rounds);
    printf("tokens: %s\n", differ ? "DIFFER between the builds" : "the same in every round");
}

int main(int argc, char **argv)
{
    options o;
    int rc = parse_options(argc, argv, &o);
    if (rc)
        return rc;
    static build b[2];
    static double tps[2][MAX_ROUNDS], ratio[MAX_ROUNDS];
    int32_t *tok[2] = {calloc((size_t)o.n_gen, sizeof(int32_t)),
                       calloc((size_t)o.n_gen, sizeof(int32_t))};
    int ok = tok[0] && tok[1] && open_build(&b[0], o.lib[0]) && open_build(&b[1], o.lib[1]);
    if (ok && b[0].handle == b[1].handle) {
        fprintf(stderr, "lmrt-ab: both paths name one library; copy it to compare a build "
                "with itself\n");
        ok = 0;
    }
    ok = ok && load(&b[0], &o) && load(&b[1], &o);
    /* an untimed round: faults the weights in, packs nothing twice */
    ok = ok && run_tg(&b[0], o.n_gen, tok[0]) > 0 && run_tg(&b[1], o.n_gen, tok[1]) > 0;
    long wins = 0, differ = 0;
    for (long r = 0; ok && r < o.rounds; r++) {
        for (int k = 0; ok && k < 2; k++) {
            const int which = (int)(r % 2) ^ k;   /* A first in even rounds */
            ok = (tps[which][r] = run_tg(&b[which], o.n_gen, tok[which])) > 0;
        }
        if (!ok)
            break;
        ratio[r] = tps[1][r] / tps[0][r];
        wins += ratio[r] > 1;
        differ += memcmp(tok[0], tok[1], (size_t)o.n_gen * sizeof(int32_t)) != 0;
    }
    if (ok)
        report(&o, b, (const double *[2]){tps[0], tps[1]}, ratio, wins, differ);
    for (int k = 0; k < 2; k++) {
        if (b[k].ctx)
            b[k].context_free(b[k].ctx);
        if (b[k].model)
            b[k].model_free(b[k].model);
        free(tok[k]);
    }
    /* the libraries stay open: their threads are gone, but unloading buys nothing */
    return ok ? 0 : 1;
}
