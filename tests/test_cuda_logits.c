/* test_cuda_logits.c - a model's logits on the CUDA backend against the CPU backend,
 * through the public API: the same prompt fed to a session on each (one batch, every
 * position's logits), then N greedy steps of one token (the CPU's argmax fed to both).
 * Prints, per phase, the largest and the RMS difference; tests/test_cuda_logits.py runs
 * it on the tiny models and applies the per-type tolerances.
 *
 *   test_cuda_logits --probe                      exit 77 (and says so) without a device
 *   test_cuda_logits MODEL ID,ID,... N_GEN
 * Exit status: 0 done, 1 an lmrt call failed, 2 bad arguments, 77 no CUDA device. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmrt.h"

typedef struct run {
    lmrt_context *ctx;
    lmrt_session *s;
} run;

static int fail(const char *what, lmrt_status st)
{
    fprintf(stderr, "test_cuda_logits: %s: %s: %s\n", what, lmrt_status_str(st), lmrt_last_error());
    return 1;
}

static int open_run(lmrt_model *m, int32_t backend, run *r)
{
    lmrt_context_params cp;
    lmrt_context_params_init(&cp, sizeof cp);
    cp.backend = backend;
    lmrt_status st = lmrt_context_create(m, &cp, &r->ctx);
    if (st)
        return fail("lmrt_context_create", st);
    lmrt_session_params sp;
    lmrt_session_params_init(&sp, sizeof sp);
    sp.keep_all_logits = true;
    if ((st = lmrt_session_create(r->ctx, &sp, &r->s)))
        return fail("lmrt_session_create", st);
    return 0;
}

/* Feeds ids to both and compares every row of logits; *next is the CPU's last argmax. */
static int feed_and_compare(run *cpu, run *gpu, const int32_t *ids, size_t n, const char *phase,
                            double *max_diff, double *sum_sq, long *count, int32_t *next)
{
    const float *a, *b;
    int64_t ra, rb;
    int32_t va, vb;
    lmrt_status st;
    if ((st = lmrt_session_feed_tokens(cpu->s, ids, n)) ||
        (st = lmrt_session_feed_tokens(gpu->s, ids, n)) ||
        (st = lmrt_session_logits(cpu->s, &a, &ra, &va)) ||
        (st = lmrt_session_logits(gpu->s, &b, &rb, &vb)))
        return fail(phase, st);
    if (ra != rb || va != vb) {
        fprintf(stderr, "test_cuda_logits: %s: shapes %lldx%d and %lldx%d\n", phase,
                (long long)ra, (int)va, (long long)rb, (int)vb);
        return 1;
    }
    for (int64_t i = 0; i < ra * va; i++) {
        const double d = fabs((double)a[i] - b[i]);
        if (!(d <= *max_diff))
            *max_diff = d;   /* NaN sticks */
        *sum_sq += d * d;
    }
    *count += (long)(ra * va);
    const float *last = a + (ra - 1) * va;
    int32_t best = 0;
    for (int32_t i = 1; i < va; i++)
        if (last[i] > last[best])
            best = i;
    *next = best;
    return 0;
}

int main(int argc, char **argv)
{
    int32_t n_dev = 0;
    if (lmrt_device_count(LMRT_BACKEND_CUDA, &n_dev) || n_dev == 0) {
        printf("no CUDA device (or no NVIDIA driver, or a build without CUDA): skipped\n");
        return 77;
    }
    if (argc == 2 && !strcmp(argv[1], "--probe"))
        return 0;
    if (argc != 4) {
        fprintf(stderr, "usage: test_cuda_logits --probe | MODEL ID,ID,... N_GEN\n");
        return 2;
    }
    int32_t ids[1024];
    size_t n = 0;
    for (char *p = argv[2]; *p && n < 1024;) {
        char *end;
        ids[n++] = (int32_t)strtol(p, &end, 10);
        if (end == p)
            return 2;
        p = *end == ',' ? end + 1 : end;
    }
    const long n_gen = strtol(argv[3], NULL, 10);
    lmrt_model *m = NULL;
    lmrt_status st = lmrt_model_load(argv[1], NULL, &m);
    if (st)
        return fail("lmrt_model_load", st);
    run cpu = {0}, gpu = {0};
    int rc = open_run(m, LMRT_BACKEND_CPU, &cpu);
    if (!rc)
        rc = open_run(m, LMRT_BACKEND_CUDA, &gpu);
    double pmax = 0, psq = 0, gmax = 0, gsq = 0;
    long pn = 0, gn = 0;
    int32_t next = 0;
    if (!rc)
        rc = feed_and_compare(&cpu, &gpu, ids, n, "prompt", &pmax, &psq, &pn, &next);
    for (long g = 0; !rc && g < n_gen; g++) {
        const int32_t tok = next;
        rc = feed_and_compare(&cpu, &gpu, &tok, 1, "decode", &gmax, &gsq, &gn, &next);
    }
    if (!rc) {
        printf("prompt %zu max %.6g rms %.6g\n", n, pmax, sqrt(psq / (double)(pn ? pn : 1)));
        printf("decode %ld max %.6g rms %.6g\n", n_gen, gmax, sqrt(gsq / (double)(gn ? gn : 1)));
    }
    lmrt_session_free(cpu.s);
    lmrt_session_free(gpu.s);
    lmrt_context_free(cpu.ctx);
    lmrt_context_free(gpu.ctx);
    lmrt_model_free(m);
    return rc;
}
