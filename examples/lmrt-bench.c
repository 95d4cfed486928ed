/* lmrt-bench - how fast lmrt runs a model on this machine, in the spirit of llama-bench,
 * through the public API only, and how close generation comes to the memory roofline.
 *
 *   lmrt-bench [-m MODEL] [-p N_PROMPT] [-n N_GEN] [-t THREADS] [-r REPEATS]
 *              [--bw-mib MIB] [--bw-seconds S] [--json] [--backend auto|cpu|cuda]
 *
 * No -m: the built-in model. Defaults: -p 512 -n 128 -r 5, -t 0 (one thread per core).
 * After one untimed warm-up token (it faults the mapped weights in), each repeat runs
 * three tests, each on a fresh session with n_ctx = p + n, as llama-bench names them:
 *
 *   ppP       P fixed pseudo-random token ids fed in one lmrt_session_feed_tokens call;
 *   tgN       N tokens decoded one at a time from an empty context (positions
 *             0 .. N-1: the first token fed, then N-1 lmrt_session_next_token, greedy),
 *             which is llama-bench's tgN;
 *   tgN@pP    N tokens generated with lmrt_session_next_token after the ppP prompt
 *             (positions P .. P+N-1): the same weights plus attention over P more
 *             positions, the case of a chat after a long prompt.
 *
 * Reported: medians and min..max over the repeats, the bytes one generated token
 * reads, the machine's read bandwidth measured here with the same thread count, and
 * the fraction of that roofline each generation test reaches:
 *
 *   weight bytes/token = sum(blk.*) + output.weight (token_embd.weight when tied)
 *                        + output_norm + rope_freqs + one token_embd row
 *   KV bytes/token     = n_layer * (past + (n + 1) / 2) * n_head_kv * head_dim * 2 * 4
 *                        (K and V in F32, read up to the average decoded position;
 *                        past = 0 for tgN, P for tgN@pP)
 *   roofline fraction  = tokens/s * (weight + KV bytes/token) / read bandwidth
 *
 * The bandwidth is the best read rate the machine gives (a weaker loop understates
 * it and puts the fraction above 100%): wide loads (AVX-512, else AVX2, chosen at
 * run time) with software prefetch, measured before loading the model (in a forked
 * child) and after the runs, the larger kept. Each is the best of at least 5 passes
 * over --bw-seconds, default 3, of a buffer of --bw-mib, default max(1 GiB,
 * weights); before loading, max(1 GiB, model file).
 *
 * The paired roofline measures its two sides alike: right after each repeat's tgN,
 * a forked child reads the same buffer for as long as tgN took (at most --bw-seconds,
 * at least 5 passes) and its mean rate divides that repeat's tokens/s x bytes/token
 * (tgN@pP's too); the median over the repeats is reported. On a shared host the best
 * pass above catches a quiet moment that a several-second tgN median does not, so the
 * fraction against it is biased low; the paired one sees the same neighbours.
 *
 * Peak RSS is VmHWM (getrusage's ru_maxrss where /proc is missing), taken before the
 * bandwidth buffer is allocated (the first one lives in the child, which neither
 * VmHWM nor ru_maxrss counts); the budget is model file + KV cache + 64 MiB.
 * --json prints one JSON object on stdout; progress goes to stderr. Exit status:
 * 0 done, 1 an lmrt call failed, 2 bad arguments. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lmrt.h>

#include "bench-bandwidth.h"
#include "bench-stats.h"

#define MIB (1024.0 * 1024.0)
#define RSS_SLACK ((uint64_t)64 << 20)   /* the budget's allowance beyond file + KV */

typedef struct options {
    const char *model;
    long n_prompt, n_gen, threads, repeats, bw_mib;
    double bw_seconds;
    int json;
    int backend;           /* --backend: LMRT_BACKEND_AUTO (default), _CPU or _CUDA */
} options;

static void usage(void)
{
    fprintf(stderr, "usage: lmrt-bench [-m MODEL] [-p N_PROMPT] [-n N_GEN] [-t THREADS] "
                    "[-r REPEATS]\n                  [--bw-mib MIB] [--bw-seconds S] [--json]"
                    " [--backend auto|cpu|cuda]\n");
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

/* 0 to run, 1 for --help, -1 for a bad option. */
static int parse_args(int argc, char **argv, options *o)
{
    *o = (options){.n_prompt = 512, .n_gen = 128, .repeats = 5, .bw_seconds = 3};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long secs;
        if (!strcmp(a, "-h") || !strcmp(a, "--help"))
            return 1;
        if (!strcmp(a, "--json")) {
            o->json = 1;
            continue;
        }
        if (!v)
            goto bad;
        i++;
        if (!strcmp(a, "-m") || !strcmp(a, "--model"))
            o->model = v;
        else if ((!strcmp(a, "-p") || !strcmp(a, "--n-prompt")) &&
                 !parse_long(v, 1, 1L << 20, &o->n_prompt))
            ;
        else if ((!strcmp(a, "-n") || !strcmp(a, "--n-gen")) &&
                 !parse_long(v, 1, 1L << 20, &o->n_gen))
            ;
        else if ((!strcmp(a, "-t") || !strcmp(a, "--threads")) &&
                 !parse_long(v, 0, 1024, &o->threads))
            ;
        else if ((!strcmp(a, "-r") || !strcmp(a, "--repeats")) &&
                 !parse_long(v, 1, 1000, &o->repeats))
            ;
        else if (!strcmp(a, "--bw-mib") && !parse_long(v, 1, 1L << 20, &o->bw_mib))
            ;
        else if (!strcmp(a, "--bw-seconds") && !parse_long(v, 0, 3600, &secs))
            o->bw_seconds = (double)secs;
        else if (!strcmp(a, "--backend") && (!strcmp(v, "auto") || !strcmp(v, "cpu") ||
                                             !strcmp(v, "cuda")))
            o->backend = !strcmp(v, "cpu")    ? LMRT_BACKEND_CPU
                         : !strcmp(v, "cuda") ? LMRT_BACKEND_CUDA
                                              : LMRT_BACKEND_AUTO;
        else
            goto bad;
        continue;
    bad:
        fprintf(stderr, "lmrt-bench: bad or incomplete option '%s'\n", a);
        return -1;
    }
    return 0;
}

/* ---- memory: resident set sizes ------------------------------------------ */

/* The "Key:   N kB" lines of a /proc file named by keys[0..n), in bytes, into
 * bytes[0..n) (0 where a key has none), reading the file once. */
static void proc_kb_lines(const char *path, const char *const *keys, int n, uint64_t *bytes)
{
    for (int i = 0; i < n; i++)
        bytes[i] = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char line[256];
    while (fgets(line, sizeof line, f))
        for (int i = 0; i < n; i++) {
            size_t klen = strlen(keys[i]);
            if (!strncmp(line, keys[i], klen) && line[klen] == ':')
                bytes[i] = strtoull(line + klen + 1, NULL, 10) * 1024;
        }
    fclose(f);
}

/* The 1-minute load average (other work competing for the cores), or -1. */
static double load_average(void)
{
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1)
            l = -1;
        fclose(f);
    }
    return l;
}

static uint64_t peak_rss_bytes(void)
{
    uint64_t hwm;
    proc_kb_lines("/proc/self/status", (const char *const[]){"VmHWM"}, 1, &hwm);
    if (hwm)
        return hwm;
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (uint64_t)ru.ru_maxrss * 1024;   /* Linux and the BSDs: kilobytes */
}

/* ---- what one generated token reads ---------------------------------------- */

typedef struct model_bytes {
    uint64_t weights;      /* weight bytes the decoder reads per generated token */
    uint64_t kv_per_pos;   /* K and V bytes of one position over all layers */
} model_bytes;

static lmrt_status count_model_bytes(const lmrt_model *m, const lmrt_model_info *mi,
                                     model_bytes *out)
{
    uint64_t blocks = 0, others = 0, embd = 0, output = 0;
    int has_output = 0;
    for (int64_t i = 0; i < mi->n_tensors; i++) {
        lmrt_tensor_info t;
        lmrt_tensor_info_init(&t, sizeof t);
        lmrt_status st = lmrt_model_tensor_info(m, i, &t);
        if (st != LMRT_OK)
            return st;
        if (!strncmp(t.name, "blk.", 4))
            blocks += t.n_bytes;
        else if (!strcmp(t.name, "output_norm.weight") || !strcmp(t.name, "rope_freqs.weight"))
            others += t.n_bytes;
        else if (!strcmp(t.name, "token_embd.weight"))
            embd = t.n_bytes;
        else if (!strcmp(t.name, "output.weight")) {
            output = t.n_bytes;
            has_output = 1;
        }
    }
    /* The output matmul reads its whole matrix (token_embd when tied); the
     * embedding lookup reads one row of token_embd. */
    uint64_t row = mi->n_vocab > 0 ? embd / (uint64_t)mi->n_vocab : 0;
    out->weights = blocks + others + (has_output ? output : embd) + row;
    uint64_t head_dim = mi->n_head > 0 ? (uint64_t)(mi->n_embd / mi->n_head) : 0;
    out->kv_per_pos = (uint64_t)mi->n_layer * (uint64_t)mi->n_head_kv * head_dim * 2 *
                      sizeof(float);
    return LMRT_OK;
}

/* ---- one repeat ------------------------------------------------------------ */

typedef struct bench {
    lmrt_context *ctx;
    int32_t n_ctx;
    const int32_t *prompt;     /* [n_prompt] */
    long n_prompt, n_gen;
} bench;

static lmrt_status new_session(const bench *b, lmrt_session **out)
{
    lmrt_session_params sp;
    lmrt_session_params_init(&sp, sizeof sp);
    sp.n_ctx = b->n_ctx;
    lmrt_sampler_params greedy;
    lmrt_sampler_params_init(&greedy, sizeof greedy);
    greedy.temperature = 0.0f;
    lmrt_session *s = NULL;
    lmrt_status st = lmrt_session_create(b->ctx, &sp, &s);
    if (st == LMRT_OK && (st = lmrt_session_set_sampler(s, &greedy)) != LMRT_OK) {
        lmrt_session_free(s);
        return st;
    }
    if (st == LMRT_OK)
        *out = s;
    return st;
}

/* Resident memory: anonymous and file-backed, and of each what is mapped as 2 MiB
 * huge pages. */
typedef struct rss_parts {
    uint64_t anon, anon_huge, file, file_huge;
} rss_parts;

/* ppP then tgN@pP on a fresh session; tokens per second of each. *rss gets the
 * process's resident memory at the end, session still open (its cache is as full as a
 * run's gets). */
static lmrt_status run_prompt_then_gen(const bench *b, double *pp, double *tg, rss_parts *rss)
{
    lmrt_session *s = NULL;
    lmrt_status st = new_session(b, &s);
    if (st != LMRT_OK)
        return st;
    double t0 = bench_now();
    st = lmrt_session_feed_tokens(s, b->prompt, (size_t)b->n_prompt);
    double t1 = bench_now();
    for (long i = 0; st == LMRT_OK && i < b->n_gen; i++) {
        int32_t token;   /* end-of-generation tokens do not stop us: next_token ignores them */
        st = lmrt_session_next_token(s, &token, NULL, 0, NULL);
    }
    double t2 = bench_now();
    uint64_t v[2];
    proc_kb_lines("/proc/self/status", (const char *const[]){"RssAnon", "RssFile"}, 2, v);
    rss->anon = v[0];
    rss->file = v[1];
    /* Weights stream faster from huge pages: how many the repacked ones got, and the
     * weights read in place from the file (F16, BF16), which get them only where the
     * page cache holds the file in 2 MiB folios. */
    proc_kb_lines("/proc/self/smaps_rollup",
                  (const char *const[]){"AnonHugePages", "FilePmdMapped"}, 2, v);
    rss->anon_huge = v[0];
    rss->file_huge = v[1];
    lmrt_session_free(s);
    *pp = (double)b->n_prompt / (t1 - t0 > 0 ? t1 - t0 : 1e-9);
    *tg = (double)b->n_gen / (t2 - t1 > 0 ? t2 - t1 : 1e-9);
    return st;
}

/* tgN on a fresh session: N single-token decodes from position 0, as llama-bench's
 * test_gen does (the first token is fed, each later one sampled and decoded). */
static lmrt_status run_gen(const bench *b, double *tg)
{
    lmrt_session *s = NULL;
    lmrt_status st = new_session(b, &s);
    if (st != LMRT_OK)
        return st;
    double t0 = bench_now();
    st = lmrt_session_feed_tokens(s, b->prompt, 1);
    for (long i = 1; st == LMRT_OK && i < b->n_gen; i++) {
        int32_t token;
        st = lmrt_session_next_token(s, &token, NULL, 0, NULL);
    }
    double t1 = bench_now();
    lmrt_session_free(s);
    *tg = (double)b->n_gen / (t1 - t0 > 0 ? t1 - t0 : 1e-9);
    return st;
}

/* The untimed first token: faults in every weight page a token reads. */
static lmrt_status warm_up(lmrt_session *s, const bench *b)
{
    int32_t token;
    lmrt_status st = lmrt_session_feed_tokens(s, b->prompt, 1);
    return st == LMRT_OK ? lmrt_session_next_token(s, &token, NULL, 0, NULL) : st;
}

/* ---- output ---------------------------------------------------------------- */

typedef struct report {
    const options *o;
    const char *model_path;
    lmrt_model_info mi;
    lmrt_capabilities caps;
    const char *lmrt_cpu;
    int n_threads;
    int32_t n_ctx;
    const double *pp, *tg, *tgp;         /* ppP, tgN, tgN@pP */
    bench_stats pps, tgs, tgps;
    uint64_t file_bytes, kv_cache_bytes, weight_bytes, peak_rss;
    rss_parts rss;                       /* at the end of the last ppP + tgN@pP */
    uint64_t kv_bytes, kv_bytes_p;       /* KV read per token by tgN, by tgN@pP */
    size_t bw_buffer;
    double bandwidth;                    /* max(bw_before, bw_after) */
    const double *bwp;                   /* [repeats] the mean bandwidth after each tgN, or
                                            NULL where one could not be measured */
    bench_stats bwps;                    /* of bwp */
    double bw_before, bw_after;          /* before loading (0: not measured), after the runs */
    double load_s, warmup_s, loadavg_start, loadavg_end;
} report;

static uint64_t budget(const report *r)
{
    return r->file_bytes + r->kv_cache_bytes + RSS_SLACK;
}

static double roofline(const report *r, double tokens_per_s, uint64_t kv_bytes)
{
    return r->bandwidth > 0 ? tokens_per_s * (double)(r->weight_bytes + kv_bytes) /
                              r->bandwidth : 0;
}

/* The median (and spread) over the repeats of tokens/s x bytes/token / the bandwidth
 * measured right after that repeat's tgN. */
static bench_stats roofline_paired(const report *r, const double *tokens_per_s,
                                   uint64_t kv_bytes)
{
    long n = r->o->repeats;
    double *f = malloc((size_t)n * sizeof *f);
    if (!f || !r->bwp) {
        free(f);
        return (bench_stats){0, 0, 0};
    }
    for (long i = 0; i < n; i++)
        f[i] = tokens_per_s[i] * (double)(r->weight_bytes + kv_bytes) / r->bwp[i];
    bench_stats st = bench_summarize(f, n);
    free(f);
    return st;
}

static void json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void json_samples(const char *key, const double *v, long n, bench_stats s)
{
    printf("  \"%s_tokens_per_s\": %.4f,\n  \"%s_tokens_per_s_min\": %.4f,\n"
           "  \"%s_tokens_per_s_max\": %.4f,\n  \"%s_samples\": [", key, s.median, key, s.min,
           key, s.max, key);
    for (long i = 0; i < n; i++)
        printf(i ? ", %.4f" : "%.4f", v[i]);
    printf("],\n");
}

static void print_json(const report *r)
{
    const options *o = r->o;
    printf("{\n  \"model\": ");
    json_string(r->model_path);
    printf(",\n  \"model_name\": ");
    json_string(r->mi.name);
    printf(",\n  \"file_type\": ");
    json_string(r->mi.file_type);
    printf(",\n  \"n_params\": %lld,\n  \"model_bytes\": %lld,\n  \"model_file_bytes\": %llu,\n",
           (long long)r->mi.n_params, (long long)r->mi.n_bytes,
           (unsigned long long)r->file_bytes);
    printf("  \"lmrt_version\": ");
    json_string(lmrt_version());
    printf(",\n  \"cpu_simd\": ");
    json_string(r->caps.cpu_simd);
    printf(",\n  \"lmrt_cpu_env\": ");
    if (r->lmrt_cpu)
        json_string(r->lmrt_cpu);
    else
        printf("null");
    printf(",\n  \"n_threads\": %d,\n  \"repeats\": %ld,\n  \"n_prompt\": %ld,\n"
           "  \"n_gen\": %ld,\n  \"n_ctx\": %d,\n", r->n_threads, o->repeats, o->n_prompt,
           o->n_gen, (int)r->n_ctx);
    json_samples("pp", r->pp, o->repeats, r->pps);
    json_samples("tg", r->tg, o->repeats, r->tgs);
    json_samples("tg_after_prompt", r->tgp, o->repeats, r->tgps);
    printf("  \"weight_bytes_per_token\": %llu,\n  \"kv_bytes_per_token\": %llu,\n"
           "  \"bytes_per_token\": %llu,\n  \"kv_bytes_per_token_after_prompt\": %llu,\n"
           "  \"bytes_per_token_after_prompt\": %llu,\n", (unsigned long long)r->weight_bytes,
           (unsigned long long)r->kv_bytes, (unsigned long long)(r->weight_bytes + r->kv_bytes),
           (unsigned long long)r->kv_bytes_p,
           (unsigned long long)(r->weight_bytes + r->kv_bytes_p));
    printf("  \"bandwidth_gb_s\": %.3f,\n  \"bandwidth_before_gb_s\": %.3f,\n"
           "  \"bandwidth_after_gb_s\": %.3f,\n  \"bandwidth_buffer_bytes\": %zu,\n"
           "  \"roofline_fraction\": %.6g,\n  \"roofline_fraction_after_prompt\": %.6g,\n",
           r->bandwidth / 1e9, r->bw_before / 1e9, r->bw_after / 1e9, r->bw_buffer,
           roofline(r, r->tgs.median, r->kv_bytes), roofline(r, r->tgps.median, r->kv_bytes_p));
    if (r->bwp) {
        bench_stats f = roofline_paired(r, r->tg, r->kv_bytes);
        printf("  \"bandwidth_paired_gb_s\": %.3f,\n  \"bandwidth_paired_samples_gb_s\": [",
               r->bwps.median / 1e9);
        for (long i = 0; i < o->repeats; i++)
            printf(i ? ", %.3f" : "%.3f", r->bwp[i] / 1e9);
        printf("],\n  \"roofline_fraction_paired\": %.6g,\n"
               "  \"roofline_fraction_paired_min\": %.6g,\n"
               "  \"roofline_fraction_paired_max\": %.6g,\n"
               "  \"roofline_fraction_after_prompt_paired\": %.6g,\n", f.median, f.min, f.max,
               roofline_paired(r, r->tgp, r->kv_bytes_p).median);
    } else {
        printf("  \"bandwidth_paired_gb_s\": null,\n  \"bandwidth_paired_samples_gb_s\": null,\n"
               "  \"roofline_fraction_paired\": null,\n  \"roofline_fraction_paired_min\": null,\n"
               "  \"roofline_fraction_paired_max\": null,\n"
               "  \"roofline_fraction_after_prompt_paired\": null,\n");
    }
    printf("  \"kv_cache_bytes\": %llu,\n  \"peak_rss_bytes\": %llu,\n"
           "  \"rss_anon_bytes\": %llu,\n  \"rss_anon_huge_bytes\": %llu,\n"
           "  \"rss_file_bytes\": %llu,\n  \"rss_file_huge_bytes\": %llu,\n"
           "  \"rss_budget_bytes\": %llu,\n  \"rss_within_budget\": %s,\n",
           (unsigned long long)r->kv_cache_bytes, (unsigned long long)r->peak_rss,
           (unsigned long long)r->rss.anon, (unsigned long long)r->rss.anon_huge,
           (unsigned long long)r->rss.file, (unsigned long long)r->rss.file_huge,
           (unsigned long long)budget(r), r->peak_rss <= budget(r) ? "true" : "false");
    printf("  \"load_s\": %.4f,\n  \"warmup_s\": %.4f,\n", r->load_s, r->warmup_s);
    printf("  \"loadavg_start\": %.2f,\n  \"loadavg_end\": %.2f\n}\n", r->loadavg_start,
           r->loadavg_end);
}

static void print_text(const report *r)
{
    const options *o = r->o;
    uint64_t limit = budget(r);
    printf("model:     %s (%s, %s, %.3f B params, %.1f MiB of tensors, file %.1f MiB)\n",
           r->model_path, r->mi.name, r->mi.file_type, (double)r->mi.n_params / 1e9,
           (double)r->mi.n_bytes / MIB, (double)r->file_bytes / MIB);
    printf("runtime:   lmrt %s, %s kernels (LMRT_CPU=%s), %d threads\n", lmrt_version(),
           r->caps.cpu_simd, r->lmrt_cpu ? r->lmrt_cpu : "unset", r->n_threads);
    printf("load:      %.3f s (model + context + first session); warm-up token %.3f s\n",
           r->load_s, r->warmup_s);
    printf("machine:   1-minute load average %.2f before, %.2f after (other work on the "
           "cores)\n\n", r->loadavg_start, r->loadavg_end);
    char name[3][48];
    snprintf(name[0], sizeof name[0], "pp%ld", o->n_prompt);
    snprintf(name[1], sizeof name[1], "tg%ld", o->n_gen);
    snprintf(name[2], sizeof name[2], "tg%ld@p%ld", o->n_gen, o->n_prompt);
    const bench_stats *st[3] = {&r->pps, &r->tgs, &r->tgps};
    printf("| test         | tokens/s (median) | min .. max          | repeats |\n"
           "|--------------|------------------:|---------------------|--------:|\n");
    for (int i = 0; i < 3; i++)
        printf("| %-12s | %17.2f | %8.2f .. %-8.2f | %7ld |\n", name[i], st[i]->median,
               st[i]->min, st[i]->max, o->repeats);
    printf("\n(%s: from an empty context, as llama-bench; %s: after the %s prompt)\n\n",
           name[1], name[2], name[0]);
    printf("bytes/token: %s %.1f MiB, %s %.1f MiB = %.1f MiB weights + KV %.2f, %.2f MiB\n"
           "  weights = sum(blk.*) + output.weight (token_embd.weight if tied)"
           " + output_norm + rope_freqs + one token_embd row\n"
           "  KV      = n_layer x (past + (n+1)/2) x n_head_kv x head_dim x 2 x 4 bytes"
           " (past = 0 for %s, p for %s)\n", name[1],
           (double)(r->weight_bytes + r->kv_bytes) / MIB, name[2],
           (double)(r->weight_bytes + r->kv_bytes_p) / MIB, (double)r->weight_bytes / MIB,
           (double)r->kv_bytes / MIB, (double)r->kv_bytes_p / MIB, name[1], name[2]);
    printf("bandwidth: %.2f GB/s read (", r->bandwidth / 1e9);
    if (r->bw_before > 0)
        printf("best of %.2f before and %.2f after the runs", r->bw_before / 1e9,
               r->bw_after / 1e9);
    else
        printf("after the runs; none measured before them");
    printf("; %d threads, %.0f MiB buffer, best pass of %.0f s each)\n", r->n_threads,
           (double)r->bw_buffer / MIB, o->bw_seconds);
    printf("roofline:  tokens/s x bytes/token / bandwidth: %s %.1f%%, %s %.1f%%\n", name[1],
           100 * roofline(r, r->tgs.median, r->kv_bytes), name[2],
           100 * roofline(r, r->tgps.median, r->kv_bytes_p));
    if (r->bwp) {
        bench_stats f = roofline_paired(r, r->tg, r->kv_bytes);
        printf("paired:    each tgN / the mean bandwidth read right after it (median %.2f GB/s,"
               " %.2f .. %.2f): %s %.1f%% (%.1f .. %.1f%%), %s %.1f%%\n", r->bwps.median / 1e9,
               r->bwps.min / 1e9, r->bwps.max / 1e9, name[1], 100 * f.median, 100 * f.min,
               100 * f.max, name[2], 100 * roofline_paired(r, r->tgp, r->kv_bytes_p).median);
    } else {
        printf("paired:    not measured (the bandwidth after a tgN could not be measured)\n");
    }
    printf("memory:    peak RSS %.1f MiB (anon %.1f + file %.1f at the end of a run, in huge "
           "pages %.1f + %.1f); budget file %.1f + KV %.1f + 64 = %.1f MiB: %s\n",
           (double)r->peak_rss / MIB, (double)r->rss.anon / MIB, (double)r->rss.file / MIB,
           (double)r->rss.anon_huge / MIB, (double)r->rss.file_huge / MIB,
           (double)r->file_bytes / MIB,
           (double)r->kv_cache_bytes / MIB, (double)limit / MIB,
           r->peak_rss <= limit ? "within" : "OVER");
}

/* ---- main ------------------------------------------------------------------ */

static int32_t *make_prompt(long n, int32_t n_vocab)
{
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    uint64_t x = 0x9E3779B97F4A7C15u;   /* xorshift64: the same ids every run */
    for (long i = 0; ids && i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ids[i] = (int32_t)(x % (uint64_t)n_vocab);
    }
    return ids;
}

static int fail(lmrt_status st)
{
    fprintf(stderr, "lmrt-bench: %s: %s\n", lmrt_status_str(st), lmrt_last_error());
    return 1;
}

/* Loads the model and opens the context and the first session (which binds the
 * weights): what an application waits for before its first token. */
static lmrt_status load(const options *o, report *r, lmrt_model **model, lmrt_context **ctx,
                        bench *b, lmrt_session **first)
{
    lmrt_status st = o->model ? lmrt_model_load(o->model, NULL, model)
                              : lmrt_model_load_builtin(NULL, model);
    if (st != LMRT_OK || (st = lmrt_model_get_info(*model, &r->mi)) != LMRT_OK ||
        (st = lmrt_query_capabilities(*model, NULL, &r->caps)) != LMRT_OK)
        return st;
    if (r->mi.n_ctx_train > 0 && o->n_prompt + o->n_gen > r->mi.n_ctx_train)
        return LMRT_E_CONTEXT_FULL;
    lmrt_context_params cp;
    lmrt_context_params_init(&cp, sizeof cp);
    cp.n_threads = (int32_t)o->threads;
    cp.backend = o->backend;
    if ((st = lmrt_context_create(*model, &cp, ctx)) != LMRT_OK)
        return st;
    b->ctx = *ctx;
    return new_session(b, first);
}

int main(int argc, char **argv)
{
    options o;
    int parsed = parse_args(argc, argv, &o);
    if (parsed) {
        usage();
        return parsed > 0 ? 0 : 2;
    }
    report r = {.o = &o, .model_path = o.model ? o.model : "builtin",
                .lmrt_cpu = getenv("LMRT_CPU"), .n_ctx = (int32_t)(o.n_prompt + o.n_gen)};
    lmrt_model_info_init(&r.mi, sizeof r.mi);
    lmrt_capabilities_init(&r.caps, sizeof r.caps);
    long n_cpus = sysconf(_SC_NPROCESSORS_ONLN);
    r.n_threads = o.threads ? (int)o.threads : n_cpus > 0 ? (int)n_cpus : 1;
    bench b = {.n_ctx = r.n_ctx, .n_prompt = o.n_prompt, .n_gen = o.n_gen};
    lmrt_model *model = NULL;
    lmrt_context *ctx = NULL;
    lmrt_session *first = NULL;
    double *pp = calloc(4 * (size_t)o.repeats, sizeof *pp), *tg = pp ? pp + o.repeats : NULL;
    double *tgp = pp ? pp + 2 * o.repeats : NULL, *bwp = pp ? pp + 3 * o.repeats : NULL;
    int paired = 1;   /* every repeat's paired bandwidth measured */
    int32_t *prompt = NULL;
    model_bytes mb = {0, 0};
    int rc = 1;

    r.loadavg_start = load_average();
    /* The first bandwidth measurement: before the model (the forked child copies
     * little) and before lmrt starts its threads. The weights' size is not known
     * yet, the file's is; no file, no measurement (the load fails anyway). */
    struct stat sb;
    if (!o.model || stat(o.model, &sb) == 0) {
        size_t bw0 = (size_t)1 << 30;
        if (o.bw_mib)
            bw0 = (size_t)o.bw_mib << 20;
        else if (o.model && (uint64_t)sb.st_size > bw0)
            bw0 = (size_t)sb.st_size;
        r.bw_before = bench_measure_bandwidth_forked(bw0, r.n_threads, o.bw_seconds);
    }
    double t0 = bench_now();
    lmrt_status st = load(&o, &r, &model, &ctx, &b, &first);
    r.load_s = bench_now() - t0;
    if (st == LMRT_E_CONTEXT_FULL && !first) {
        fprintf(stderr, "lmrt-bench: -p %ld + -n %ld exceeds the model's context of %d\n",
                o.n_prompt, o.n_gen, (int)r.mi.n_ctx_train);
        rc = 2;
        goto out;
    }
    if (st != LMRT_OK) {
        rc = fail(st);
        goto out;
    }
    if (!pp || !(prompt = make_prompt(o.n_prompt, r.mi.n_vocab))) {
        fprintf(stderr, "lmrt-bench: out of memory\n");
        goto out;
    }
    b.prompt = prompt;
    if ((st = count_model_bytes(model, &r.mi, &mb)) != LMRT_OK) {
        rc = fail(st);
        goto out;
    }
    /* At least 1 GiB and at least the weights, so that no cache holds it. */
    size_t bw = (size_t)1 << 30;
    if (o.bw_mib)
        bw = (size_t)o.bw_mib << 20;
    else if (mb.weights > bw)
        bw = (size_t)mb.weights;
    double w0 = bench_now();
    st = warm_up(first, &b);
    r.warmup_s = bench_now() - w0;
    lmrt_session_free(first);
    first = NULL;
    for (long i = 0; st == LMRT_OK && i < o.repeats; i++) {
        st = run_prompt_then_gen(&b, &pp[i], &tgp[i], &r.rss);
        if (st == LMRT_OK)
            st = run_gen(&b, &tg[i]);
        if (st != LMRT_OK)
            break;
        /* As long as tgN took, now (a child's buffer: not in this process's RSS). */
        double gen_s = (double)o.n_gen / tg[i];
        bwp[i] = bench_measure_bandwidth_mean_forked(bw, r.n_threads, gen_s < o.bw_seconds
                                                                          ? gen_s
                                                                          : o.bw_seconds);
        paired = paired && bwp[i] > 0;
        fprintf(stderr, "lmrt-bench: repeat %ld/%ld: pp%ld %.2f tokens/s, tg%ld %.2f "
                "tokens/s, tg%ld@p%ld %.2f tokens/s, then %.2f GB/s\n", i + 1, o.repeats,
                o.n_prompt, pp[i], o.n_gen, tg[i], o.n_gen, o.n_prompt, tgp[i], bwp[i] / 1e9);
    }
    r.peak_rss = peak_rss_bytes();   /* before the bandwidth buffer exists */
    if (st != LMRT_OK) {
        rc = fail(st);
        goto out;
    }
    r.pp = pp;
    r.tg = tg;
    r.tgp = tgp;
    r.pps = bench_summarize(pp, o.repeats);
    r.tgs = bench_summarize(tg, o.repeats);
    r.tgps = bench_summarize(tgp, o.repeats);
    if (paired) {
        r.bwp = bwp;
        r.bwps = bench_summarize(bwp, o.repeats);
    }
    r.weight_bytes = mb.weights;
    /* Decoding the token at position q reads q + 1 cached positions; q runs 0 .. n-1
     * (tgN) or p .. p+n-1 (tgN@pP). */
    r.kv_bytes = mb.kv_per_pos * (uint64_t)(o.n_gen + 1) / 2;
    r.kv_bytes_p = mb.kv_per_pos * (uint64_t)o.n_prompt + r.kv_bytes;
    r.kv_cache_bytes = mb.kv_per_pos * (uint64_t)r.n_ctx;
    r.file_bytes = o.model && stat(o.model, &sb) == 0 ? (uint64_t)sb.st_size
                                                     : (uint64_t)r.mi.n_bytes;

    r.bw_buffer = bw / (size_t)r.n_threads / BENCH_BW_UNIT * BENCH_BW_UNIT * (size_t)r.n_threads;
    r.bw_after = bench_measure_bandwidth(bw, r.n_threads, o.bw_seconds);
    /* Other work on the cores only ever lowers a measurement: keep the larger. */
    r.bandwidth = r.bw_after > r.bw_before ? r.bw_after : r.bw_before;
    if (r.bandwidth <= 0) {
        fprintf(stderr, "lmrt-bench: could not measure the read bandwidth (%zu bytes)\n", bw);
        goto out;
    }
    r.loadavg_end = load_average();
    if (o.json)
        print_json(&r);
    else
        print_text(&r);
    rc = 0;
out:
    lmrt_session_free(first);
    lmrt_context_free(ctx);
    lmrt_model_free(model);
    free(prompt);
    free(pp);
    return rc;
}
