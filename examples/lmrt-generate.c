/* lmrt-generate - generate text with lmrt, the way an application would.
 *
 *   lmrt-generate [-m MODEL] [-p PROMPT | --tokens ID,ID,...] [-n N] [--chat]
 *                 [--temp T] [--top-k K] [--top-p P] [--min-p P] [--repeat-penalty R]
 *                 [--seed S] [-t THREADS] [-c CTX] [--region CC] [--ids]
 *                 [--dump-logits FILE] [--image FILE] [--audio FILE] [--mmproj FILE] [-v]
 *
 * No -m: the built-in stories260K model. No prompt: generation starts from BOS.
 * --ids prints the generated ids on one line instead of text. --dump-logits
 * writes the logits of every fed position as little-endian float32
 * [n_tokens][n_vocab]. Speed goes to stderr.
 *
 * --image / --audio feed the file after BOS (or at the start of the user turn
 * with --chat) and before the prompt; --mmproj loads the encoder file (llama.cpp
 * mmproj). Where the region does not license the modality, the feed fails with
 * the licensing message and the exit status is 1. -v prints what the context
 * bound (tensors per modality) and the peak resident memory. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lmrt.h>

typedef struct options {
    const char *model, *prompt, *tokens, *dump_logits, *region, *image, *audio, *mmproj;
    int n_predict, threads, n_ctx, ids, chat, verbose;
    lmrt_sampler_params sampling;
    int seed_given;
} options;

static void usage(void)
{
    fprintf(stderr,
            "usage: lmrt-generate [-m MODEL] [-p PROMPT | --tokens ID,ID,...] [-n N] [--chat]\n"
            "                     [--temp T] [--top-k K] [--top-p P] [--min-p P]\n"
            "                     [--repeat-penalty R] [--seed S] [-t THREADS] [-c CTX]\n"
            "                     [--region CC] [--ids] [--dump-logits FILE]\n"
            "                     [--image FILE] [--audio FILE] [--mmproj FILE] [-v]\n");
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
        if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            o->verbose = 1;
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
        else if (!strcmp(a, "--image"))
            o->image = v;
        else if (!strcmp(a, "--audio"))
            o->audio = v;
        else if (!strcmp(a, "--mmproj"))
            o->mmproj = v;
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

/* BOS (or the start of a Llama 3 user turn with --chat), the image and/or the
 * audio, then the prompt (and the assistant header with --chat). */
static lmrt_status feed_media_prompt(lmrt_model *model, lmrt_session *s, const options *o)
{
    lmrt_status st;
    if (o->chat) {
        st = lmrt_session_feed_text(s, "<|start_header_id|>user<|end_header_id|>\n\n",
                                    LMRT_TOKENIZE_ADD_BOS | LMRT_TOKENIZE_PARSE_SPECIAL);
    } else {
        int32_t bos;
        st = lmrt_model_special_token(model, LMRT_TOKEN_BOS, &bos);
        if (st == LMRT_OK)
            st = lmrt_session_feed_tokens(s, &bos, 1);
    }
    if (st == LMRT_OK && o->image)
        st = lmrt_session_feed_image_file(s, o->image);
    if (st == LMRT_OK && o->audio)
        st = lmrt_session_feed_audio_file(s, o->audio);
    if (st == LMRT_OK && o->prompt)
        st = lmrt_session_feed_text(s, o->prompt, 0);
    if (st == LMRT_OK && o->tokens) {
        int32_t *ids = NULL;
        long n = parse_ids(o->tokens, &ids);
        st = n < 0 ? LMRT_E_INVALID_ARG : lmrt_session_feed_tokens(s, ids, (size_t)n);
        free(ids);
    }
    if (st == LMRT_OK && o->chat)
        st = lmrt_session_feed_text(s, "<|eot_id|><|start_header_id|>assistant"
                                    "<|end_header_id|>\n\n", LMRT_TOKENIZE_PARSE_SPECIAL);
    return st;
}

/* Sums Size and Rss (kB) of this process's mappings of `path`, from
 * /proc/self/smaps: how much of a mapped model file was ever paged in. */
static void mapped_kib(const char *path, long *size_kb, long *rss_kb)
{
    *size_kb = *rss_kb = 0;
    char want[4096];
    if (!path || !realpath(path, want))
        return;
    FILE *f = fopen("/proc/self/smaps", "r");
    char line[4352];
    int match = 0;
    while (f && fgets(line, sizeof line, f)) {
        long kb;
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {   /* a mapping's header line */
            char *name = strchr(line, '/');
            if (name)
                name[strcspn(name, "\n")] = '\0';
            match = name && !strcmp(name, want);
        } else if (match && sscanf(line, "Size: %ld kB", &kb) == 1) {
            *size_kb += kb;
        } else if (match && sscanf(line, "Rss: %ld kB", &kb) == 1) {
            *rss_kb += kb;
        }
    }
    if (f)
        fclose(f);
}

/* -v: what the context bound, how much of each mapped file is resident, and the
 * peak resident set (VmHWM). */
static void print_bound(const lmrt_context *ctx, const options *o)
{
    const char *files[] = {o->model, o->mmproj};
    for (int i = 0; i < 2; i++) {
        long size_kb, rss_kb;
        mapped_kib(files[i], &size_kb, &rss_kb);
        if (size_kb)
            fprintf(stderr, "lmrt-generate: %s mapped %ld KiB, resident %ld KiB\n", files[i],
                    size_kb, rss_kb);
    }
    lmrt_context_info info;
    lmrt_context_info_init(&info, sizeof info);
    if (lmrt_context_get_info(ctx, &info) != LMRT_OK)
        return;
    fprintf(stderr, "lmrt-generate: tensors bound: text %lld, image %lld, audio %lld "
            "(licensed here:%s%s%s)\n", (long long)info.tensors_bound[0],
            (long long)info.tensors_bound[1], (long long)info.tensors_bound[2],
            info.modalities_licensed & LMRT_MODALITY_TEXT ? " text" : "",
            info.modalities_licensed & LMRT_MODALITY_IMAGE ? " image" : "",
            info.modalities_licensed & LMRT_MODALITY_AUDIO ? " audio" : "");
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6) || !strncmp(line, "VmRSS:", 6))
            fprintf(stderr, "lmrt-generate: %s", line);
    if (f)
        fclose(f);
}

/* Feeds the prompt as the options say; returns the number of tokens fed or -1. */
static lmrt_status feed_prompt(lmrt_model *model, lmrt_session *s, const options *o,
                               int64_t *n_fed)
{
    lmrt_status st;
    if (o->image || o->audio) {
        st = feed_media_prompt(model, s, o);
    } else if (o->tokens) {
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
    lmrt_model_params mp;
    lmrt_model_params_init(&mp, sizeof mp);
    mp.projector_path = o.mmproj;
    lmrt_status st = o.model ? lmrt_model_load(o.model, &mp, &model)
                             : lmrt_model_load_builtin(&mp, &model);
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
    if (st != LMRT_OK)   /* before -v's calls, which clear lmrt_last_error() */
        fprintf(stderr, "lmrt-generate: %s: %s\n", lmrt_status_str(st), lmrt_last_error());
    if (o.verbose && ctx)
        print_bound(ctx, &o);
    if (st != LMRT_OK)
        goto out;
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
