/* lmrt-generate - generate text with lmrt, the way an application would.
 *
 *   lmrt-generate [-m MODEL] [-p PROMPT | --tokens ID,ID,...] [-n N] [--chat]
 *                 [--temp T] [--top-k K] [--top-p P] [--min-p P] [--repeat-penalty R]
 *                 [--seed S] [-t THREADS] [-c CTX] [--region CC] [--ids]
 *                 [--dump-logits FILE]
 *
 * No -m: the built-in stories260K model. No prompt: generation starts from BOS.
 * --ids prints the generated ids on one line instead of text. --dump-logits
 * writes the logits of every fed position as little-endian float32
 * [n_tokens][n_vocab]. Speed goes to stderr. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lmrt.h>

typedef struct options {
    const char *model, *prompt, *tokens, *dump_logits, *region;
    int n_predict, threads, n_ctx, ids, chat;
    lmrt_sampler_params sampling;
    int seed_given;
} options;

static void usage(void)
{
    fprintf(stderr,
            "usage: lmrt-generate [-m MODEL] [-p PROMPT | --tokens ID,ID,...] [-n N] [--chat]\n"
            "                     [--temp T] [--top-k K] [--top-p P] [--min-p P]\n"
            "                     [--repeat-penalty R] [--seed S] [-t THREADS] [-c CTX]\n"
            "                     [--region CC] [--ids] [--dump-logits FILE]\n");
}

static int parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_float(const char *s, float *out)
{
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || end == s || *end)
        return -1;
    *out = v;
    return 0;
}

static int parse_args(int argc, char **argv, options *o)
{
    lmrt_sampler_params_init(&o->sampling, sizeof o->sampling);
    o->n_predict = 256;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n;
        float f;
        if (!strcmp(a, "--ids")) {
            o->ids = 1;
            continue;
        }
        if (!strcmp(a, "--chat")) {
            o->chat = 1;
            continue;
        }
        if (!v)
            goto bad;
        i++;
        if (!strcmp(a, "-m") || !strcmp(a, "--model"))
            o->model = v;
        else if (!strcmp(a, "-p") || !strcmp(a, "--prompt"))
            o->prompt = v;
        else if (!strcmp(a, "--tokens"))
            o->tokens = v;
        else if (!strcmp(a, "--dump-logits"))
            o->dump_logits = v;
        else if (!strcmp(a, "--region"))
            o->region = v;
        else if ((!strcmp(a, "-n") || !strcmp(a, "--n-predict")) && !parse_long(v, 0, 1 << 30, &n))
            o->n_predict = (int)n;
        else if ((!strcmp(a, "-t") || !strcmp(a, "--threads")) && !parse_long(v, 0, 1024, &n))
            o->threads = (int)n;
        else if ((!strcmp(a, "-c") || !strcmp(a, "--ctx")) && !parse_long(v, 0, 1 << 30, &n))
            o->n_ctx = (int)n;
        else if (!strcmp(a, "--top-k") && !parse_long(v, 0, 1 << 30, &n))
            o->sampling.top_k = (int32_t)n;
        else if (!strcmp(a, "--seed") && !parse_long(v, 0, 0x7fffffffL, &n)) {
            o->sampling.seed = (uint64_t)n;
            o->seed_given = 1;
        } else if (!strcmp(a, "--temp") && !parse_float(v, &f))
            o->sampling.temperature = f;
        else if (!strcmp(a, "--top-p") && !parse_float(v, &f))
            o->sampling.top_p = f;
        else if (!strcmp(a, "--min-p") && !parse_float(v, &f))
            o->sampling.min_p = f;
        else if (!strcmp(a, "--repeat-penalty") && !parse_float(v, &f))
            o->sampling.repeat_penalty = f;
        else
            goto bad;
        continue;
    bad:
        fprintf(stderr, "lmrt-generate: bad or incomplete option '%s'\n", a);
        usage();
        return -1;
    }
    if (o->prompt && o->tokens) {
        fprintf(stderr, "lmrt-generate: give -p or --tokens, not both\n");
        return -1;
    }
    return 0;
}

/* "1,2,3" -> ids; returns the count or -1. */
static long parse_ids(const char *s, int32_t **out)
{
    size_t cap = 16, n = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    while (ids && *s) {
        char *end;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (errno || end == s || v < INT32_MIN || v > INT32_MAX || (*end && *end != ',')) {
            free(ids);
            return -1;
        }
        if (n == cap) {
            int32_t *bigger = realloc(ids, (cap *= 2) * sizeof *ids);
            if (!bigger) {
                free(ids);
                return -1;
            }
            ids = bigger;
        }
        ids[n++] = (int32_t)v;
        s = *end ? end + 1 : end;
    }
    *out = ids;
    return ids ? (long)n : -1;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct printer {
    int ids;
    int first;
    long n_tokens;
} printer;

static bool on_token(void *user, int32_t token, const char *text, size_t len)
{
    printer *p = user;
    if (token >= 0)
        p->n_tokens++;
    if (p->ids) {
        if (token >= 0)
            printf(p->first++ ? " %d" : "%d", (int)token);
    } else {
        fwrite(text, 1, len, stdout);
        fflush(stdout);
    }
    return true;
}

static int dump_logits(lmrt_session *s, const char *path)
{
    const float *logits;
    int64_t rows;
    int32_t n_vocab;
    if (lmrt_session_logits(s, &logits, &rows, &n_vocab) != LMRT_OK)
        return -1;
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "lmrt-generate: cannot write %s: %s\n", path, strerror(errno));
        return -2;
    }
    size_t n = (size_t)rows * (size_t)n_vocab;
    int ok = fwrite(logits, sizeof *logits, n, f) == n; /* x86-64 and arm64: little-endian */
    ok &= fclose(f) == 0;
    return ok ? 0 : -2;
}

/* Feeds the prompt as the options say; returns the number of tokens fed or -1. */
static lmrt_status feed_prompt(lmrt_model *model, lmrt_session *s, const options *o,
                               int64_t *n_fed)
{
    lmrt_status st;
    if (o->tokens) {
        int32_t *ids = NULL;
        long n = parse_ids(o->tokens, &ids);
        if (n < 0) {
            fprintf(stderr, "lmrt-generate: --tokens wants comma-separated integers\n");
            return LMRT_E_INVALID_ARG;
        }
        st = lmrt_session_feed_tokens(s, ids, (size_t)n);
        free(ids);
    } else if (o->prompt && o->chat) {
        const char *roles[] = {"user"};
        const char *contents[] = {o->prompt};
        st = lmrt_session_feed_chat(s, roles, contents, 1, true);
    } else if (o->prompt) {
        st = lmrt_session_feed_text(s, o->prompt, LMRT_TOKENIZE_ADD_BOS);
    } else {
        int32_t bos;
        st = lmrt_model_special_token(model, LMRT_TOKEN_BOS, &bos);
        if (st == LMRT_OK)
            st = lmrt_session_feed_tokens(s, &bos, 1);
    }
    if (st == LMRT_OK)
        st = lmrt_session_n_tokens(s, n_fed);
    return st;
}

int main(int argc, char **argv)
{
    options o = {0};
    if (parse_args(argc, argv, &o))
        return 2;
    if (!o.seed_given)
        o.sampling.seed = (uint64_t)time(NULL);

    lmrt_model *model = NULL;
    lmrt_context *ctx = NULL;
    lmrt_session *s = NULL;
    int rc = 1;
    double t0 = now();
    lmrt_status st = o.model ? lmrt_model_load(o.model, NULL, &model)
                             : lmrt_model_load_builtin(NULL, &model);
    if (st == LMRT_OK) {
        lmrt_context_params cp;
        lmrt_context_params_init(&cp, sizeof cp);
        cp.n_threads = o.threads;
        cp.region = o.region;
        st = lmrt_context_create(model, &cp, &ctx);
    }
    if (st == LMRT_OK) {
        lmrt_session_params sp;
        lmrt_session_params_init(&sp, sizeof sp);
        sp.n_ctx = o.n_ctx;
        sp.keep_all_logits = o.dump_logits != NULL;
        st = lmrt_session_create(ctx, &sp, &s);
    }
    if (st == LMRT_OK)
        st = lmrt_session_set_sampler(s, &o.sampling);
    int64_t n_prompt = 0;
    double t1 = now();
    if (st == LMRT_OK)
        st = feed_prompt(model, s, &o, &n_prompt);
    double t2 = now();
    if (st == LMRT_OK && o.dump_logits) {
        int r = dump_logits(s, o.dump_logits);
        if (r == -1)
            st = LMRT_E_INTERNAL;
        else if (r == -2)
            goto out;
    }
    printer pr = {o.ids, 0, 0};
    int32_t reason = LMRT_STOP_NONE;
    if (st == LMRT_OK && o.n_predict > 0) {
        if (o.prompt && !o.ids && !o.chat)
            fputs(o.prompt, stdout);
        lmrt_generate_params gp;
        lmrt_generate_params_init(&gp, sizeof gp);
        gp.max_tokens = o.n_predict;
        gp.on_token = on_token;
        gp.user = &pr;
        st = lmrt_session_generate(s, &gp, &reason);
        putchar('\n');
    }
    double t3 = now();
    if (st != LMRT_OK) {
        fprintf(stderr, "lmrt-generate: %s: %s\n", lmrt_status_str(st), lmrt_last_error());
        goto out;
    }
    fprintf(stderr, "lmrt-generate: load %.3f s; prompt %lld tokens, %.1f tok/s; generated %ld "
            "tokens, %.1f tok/s; seed %llu\n", t1 - t0, (long long)n_prompt,
            (double)n_prompt / (t2 - t1 > 0 ? t2 - t1 : 1e-9), pr.n_tokens,
            (double)pr.n_tokens / (t3 - t2 > 0 ? t3 - t2 : 1e-9),
            (unsigned long long)o.sampling.seed);
    rc = 0;
out:
    lmrt_session_free(s);
    lmrt_context_free(ctx);
    lmrt_model_free(model);
    return rc;
}
