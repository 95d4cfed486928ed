/* cpu_attention.c - grouped-query attention on the CPU: causal over the KV cache
 * (attention) and non-causal over n_kv keys (attention_full, for encoders). The ops
 * split the (token, head) pairs over the thread pool - or, for a table with
 * attention_group, groups of up to 16 queries that share a kv head, so that the keys
 * are read once per group; the scalar kernel computes one pair: scores,
 * max-subtracted softmax, weighted sum of values.
 * It reads q, k and v as laid out in backend.h and writes nothing but out. */
#include <math.h>
#include <stdint.h>

#include "backend/cpu/cpu_ops.h"
#include "base/error.h"
#include "tensor/quant.h"

/* Query t of head h sits at absolute position n_past + t and sees cache
 * positions 0 .. n_past + t; head h reads kv head h / (n_head / n_head_kv).
 * Scores are dot_f32 * scale (float); the exponentials are float (expf), their
 * sum is accumulated in double; the weighted sum of values is accumulated in
 * float in position order and divided by the sum at the end. Bound by reading
 * K and V once per query head: 2 * (n_past + t + 1) * head_dim floats. */
void cpu_attention_head_scalar(const attention_params *p, const float *q, const float *k,
                               const float *v, float *out, int32_t t, int32_t h,
                               float *scratch)
{
    const int32_t hd = p->head_dim;
    const int32_t kv_head = h / (p->n_head / p->n_head_kv);
    const int64_t n_kv = (int64_t)p->n_past + t + 1;
    const size_t kv_off = (size_t)kv_head * (size_t)hd;
    const float *qh = q + ((size_t)t * (size_t)p->n_head + (size_t)h) * (size_t)hd;
    float *oh = out + ((size_t)t * (size_t)p->n_head + (size_t)h) * (size_t)hd;
    float *score = scratch;  /* [n_kv] */

    float max = -INFINITY;
    for (int64_t j = 0; j < n_kv; j++) {
        const float *kj = k + (size_t)j * (size_t)p->kv_stride + kv_off;
        score[j] = dot_f32(qh, kj, hd) * p->scale;
        if (score[j] > max)
            max = score[j];
    }
    double sum = 0.0;
    for (int64_t j = 0; j < n_kv; j++) {
        score[j] = expf(score[j] - max);
        sum += score[j];
    }
    for (int32_t d = 0; d < hd; d++)
        oh[d] = 0.0f;
    for (int64_t j = 0; j < n_kv; j++) {
        const float *vj = v + (size_t)j * (size_t)p->kv_stride + kv_off;
        const float w = score[j];
        for (int32_t d = 0; d < hd; d++)
            oh[d] += w * vj[d];
    }
    const float inv = (float)(1.0 / sum);
    for (int32_t d = 0; d < hd; d++)
        oh[d] *= inv;
}

typedef struct attention_job {
    backend_ctx *ctx;
    const attention_params *p;
    const float *q, *k, *v;
    float *out;
    /* attention_group: heads per group (within one kv head), tokens per group, and the
     * counts of head groups and token blocks */
    int32_t hb, tb, n_hg, n_tb;
} attention_job;

static void attention_range(void *arg, int64_t begin, int64_t end, int thread)
{
    const attention_job *j = arg;
    float *scratch = cpu_scratch(j->ctx, thread);
    for (int64_t i = begin; i < end; i++)
        j->ctx->k->attention(j->p, j->q, j->k, j->v, j->out, (int32_t)(i / j->p->n_head),
                             (int32_t)(i % j->p->n_head), scratch);
}

/* Task i: head group i % n_hg and token block k = i / n_hg, taken from both ends in turn
 * (0, last, 1, last - 1, ...) so that each thread's contiguous share mixes short and
 * long causal rows. */
static void attention_group_range(void *arg, int64_t begin, int64_t end, int thread)
{
    const attention_job *j = arg;
    const attention_params *p = j->p;
    float *scratch = cpu_scratch(j->ctx, thread);
    const int32_t group = p->n_head / p->n_head_kv, per_kv = (group + j->hb - 1) / j->hb;
    for (int64_t i = begin; i < end; i++) {
        const int32_t hg = (int32_t)(i % j->n_hg), k = (int32_t)(i / j->n_hg);
        const int32_t blk = k % 2 == 0 ? k / 2 : j->n_tb - 1 - k / 2;
        const int32_t h0 = hg / per_kv * group + hg % per_kv * j->hb;
        const int32_t h1 = h0 + j->hb < (hg / per_kv + 1) * group ? h0 + j->hb
                                                                  : (hg / per_kv + 1) * group;
        const int32_t t0 = blk * j->tb, t1 = t0 + j->tb < p->n_tok ? t0 + j->tb : p->n_tok;
        j->ctx->k->attention_group(p, j->q, j->k, j->v, j->out, t0, t1, h0, h1, scratch);
    }
}

lmrt_status cpu_attention(backend_ctx *ctx, const attention_params *p, const float *q,
                          const float *k, const float *v, float *out)
{
    if (!ctx || !p)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cpu backend: attention: NULL %s",
                         !ctx ? "context" : "params");
    if (p->n_tok < 0 || p->n_past < 0 || p->head_dim <= 0 || p->n_head <= 0 ||
        p->n_head_kv <= 0)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cpu backend: attention: bad shape n_tok %d, "
                         "n_past %d, n_head %d, n_head_kv %d, head_dim %d", (int)p->n_tok,
                         (int)p->n_past, (int)p->n_head, (int)p->n_head_kv, (int)p->head_dim);
    if (p->n_head % p->n_head_kv != 0)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cpu backend: attention: n_head %d is not a "
                         "multiple of n_head_kv %d", (int)p->n_head, (int)p->n_head_kv);
    if ((int64_t)p->kv_stride < (int64_t)p->n_head_kv * p->head_dim)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cpu backend: attention: kv_stride %d is less "
                         "than n_head_kv * head_dim = %lld", (int)p->kv_stride,
                         (long long)p->n_head_kv * p->head_dim);
    if ((int64_t)p->n_past + p->n_tok > INT32_MAX)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cpu backend: attention: n_past %d + n_tok %d "
                         "overflows", (int)p->n_past, (int)p->n_tok);
    if (!isfinite(p->scale))
        return lmrt_fail(LMRT_E_INVALID_ARG, "cpu backend: attention: scale %g is not finite",
                         (double)p->scale);
    if (p->n_tok == 0)
        return LMRT_OK;
    if (!q || !k || !v || !out)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cpu backend: attention: NULL %s",
                         !q ? "q" : !k ? "k" : !v ? "v" : "out");
    attention_job job = {ctx, p, q, k, v, out, 0, 0, 0, 0};
    int64_t scratch = (int64_t)p->n_past + p->n_tok;
    if (ctx->k->attention_group) {
        const int32_t group = p->n_head / p->n_head_kv;
        job.hb = group < CPU_ATT_GROUP ? group : CPU_ATT_GROUP;
        job.tb = CPU_ATT_GROUP / job.hb;
        job.n_hg = p->n_head_kv * ((group + job.hb - 1) / job.hb);
        job.n_tb = (p->n_tok + job.tb - 1) / job.tb;
        int64_t need = cpu_attention_group_scratch(p->head_dim);
        if (need > scratch)
            scratch = need;
    }
    pthread_mutex_lock(&ctx->op_lock);
    lmrt_status st = cpu_scratch_reserve(ctx, scratch, "attention");
    if (!st && ctx->k->attention_group)
        threadpool_run(ctx->pool, (int64_t)job.n_tb * job.n_hg, attention_group_range, &job);
    else if (!st)
        threadpool_run(ctx->pool, (int64_t)p->n_tok * p->n_head, attention_range, &job);
    pthread_mutex_unlock(&ctx->op_lock);
    return st;
}

/* ---- attention_full ------------------------------------------------------------------ */

/* Non-causal attention runs on the causal kernels. A query at position n_past + t sees
 * keys 0 .. n_past + t, so a block of up to CPU_ATT_GROUP queries that share a kv head,
 * copied to [1][nq][head_dim], is one causal token with n_past = n_kv - 1, nq heads and
 * one kv head (k and v offset to that head): each query sees all n_kv keys, through the
 * table's one-pass group kernel where it has one (online softmax, no row of scores) and
 * its per-query kernel (a row of n_kv scores in the thread's scratch) where not. The
 * queries of kv head g are (t, h) for h in g's group, t-major; block b of them is task
 * g * n_blk + b, so that a thread's share walks one head's keys while they are warm.
 * Each query's bits depend on its q, k and v only: not on the block or the thread. */
typedef struct attention_full_job {
    backend_ctx *ctx;
    const attention_params *p;
    int32_t n_kv;
    const float *q, *k, *v;      /* q: [n_tok][n_head][head_dim]; k, v: [n_kv][kv_stride] */
    float *out;                  /* [n_tok][n_head][head_dim] */
    int64_t n_q;                 /* queries per kv head: n_tok * group */
    int64_t n_blk;               /* blocks of CPU_ATT_GROUP per kv head */
    int64_t kernel_scratch;      /* floats of the kernel's scratch, a multiple of 16 */
} attention_full_job;

static void attention_full_range(void *arg, int64_t begin, int64_t end, int thread)
{
    const attention_full_job *j = arg;
    const attention_params *p = j->p;
    const cpu_kernels *kern = j->ctx->k;
    const int32_t hd = p->head_dim, group = p->n_head / p->n_head_kv;
    float *scratch = cpu_scratch(j->ctx, thread);
    float *qb = scratch + j->kernel_scratch;                  /* [nq][head_dim] */
    float *ob = qb + (((int64_t)CPU_ATT_GROUP * hd + 15) & ~(int64_t)15);  /* [nq][hd] */
    for (int64_t task = begin; task < end; task++) {
        const int32_t g = (int32_t)(task / j->n_blk);
        const int64_t i0 = task % j->n_blk * CPU_ATT_GROUP;
        const int32_t nq = (int32_t)(j->n_q - i0 < CPU_ATT_GROUP ? j->n_q - i0 : CPU_ATT_GROUP);
        for (int32_t i = 0; i < nq; i++) {
            const int64_t t = (i0 + i) / group, h = (int64_t)g * group + (i0 + i) % group;
            const float *src = j->q + ((size_t)t * (size_t)p->n_head + (size_t)h) * (size_t)hd;
            for (int32_t d = 0; d < hd; d++)
                qb[(size_t)i * hd + d] = src[d];
        }
        const attention_params one = {1, j->n_kv - 1, nq, 1, hd, p->kv_stride, p->scale};
        const float *kg = j->k + (size_t)g * (size_t)hd, *vg = j->v + (size_t)g * (size_t)hd;
        if (kern->attention_group)
            kern->attention_group(&one, qb, kg, vg, ob, 0, 1, 0, nq, scratch);
        else
            for (int32_t i = 0; i < nq; i++)
                kern->attention(&one, qb, kg, vg, ob, 0, i, scratch);
        for (int32_t i = 0; i < nq; i++) {
            const int64_t t = (i0 + i) / group, h = (int64_t)g * group + (i0 + i) % group;
            float *dst = j->out + ((size_t)t * (size_t)p->n_head + (size_t)h) * (size_t)hd;
            for (int32_t d = 0; d < hd; d++)
                dst[d] = ob[(size_t)i * hd + d];
        }
    }
}

lmrt_status cpu_attention_full(backend_ctx *ctx, const attention_params *p, int32_t n_kv,
                               const float *q, const float *k, const float *v, float *out)
{
    if (!ctx || !p)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cpu backend: attention_full: NULL %s",
                         !ctx ? "context" : "params");
    if (p->n_tok < 0 || n_kv <= 0 || p->head_dim <= 0 || p->n_head <= 0 || p->n_head_kv <= 0)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cpu backend: attention_full: bad shape n_tok "
                         "%d, n_kv %d, n_head %d, n_head_kv %d, head_dim %d", (int)p->n_tok,
                         (int)n_kv, (int)p->n_head, (int)p->n_head_kv, (int)p->head_dim);
    if (p->n_head % p->n_head_kv != 0)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cpu backend: attention_full: n_head %d is not "
                         "a multiple of n_head_kv %d", (int)p->n_head, (int)p->n_head_kv);
    if ((int64_t)p->kv_stride < (int64_t)p->n_head_kv * p->head_dim)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cpu backend: attention_full: kv_stride %d is "
                         "less than n_head_kv * head_dim = %lld", (int)p->kv_stride,
                         (long long)p->n_head_kv * p->head_dim);
    if (!isfinite(p->scale))
        return lmrt_fail(LMRT_E_INVALID_ARG, "cpu backend: attention_full: scale %g is not "
                         "finite", (double)p->scale);
    if (p->n_tok == 0)
        return LMRT_OK;
    if (!q || !k || !v || !out)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cpu backend: attention_full: NULL %s",
                         !q ? "q" : !k ? "k" : !v ? "v" : "out");
    const int32_t group = p->n_head / p->n_head_kv;
    attention_full_job job = {ctx, p, n_kv, q, k, v, out, 0, 0, 0};
    job.n_q = (int64_t)p->n_tok * group;
    job.n_blk = (job.n_q + CPU_ATT_GROUP - 1) / CPU_ATT_GROUP;
    /* The kernels' scratch (the per-query kernel's row of n_kv scores, which the group
     * kernels also fall back to for heads over their limit), then the query and output
     * blocks. */
    int64_t need = n_kv;
    if (ctx->k->attention_group && cpu_attention_group_scratch(p->head_dim) > need)
        need = cpu_attention_group_scratch(p->head_dim);
    job.kernel_scratch = (need + 15) & ~(int64_t)15;
    const int64_t block = ((int64_t)CPU_ATT_GROUP * p->head_dim + 15) & ~(int64_t)15;
    pthread_mutex_lock(&ctx->op_lock);
    lmrt_status st = cpu_scratch_reserve(ctx, job.kernel_scratch + 2 * block, "attention_full");
    if (!st)
        threadpool_run(ctx->pool, (int64_t)p->n_head_kv * job.n_blk, attention_full_range, &job);
    pthread_mutex_unlock(&ctx->op_lock);
    return st;
}
