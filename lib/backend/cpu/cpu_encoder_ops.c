/* cpu_encoder_ops.c - the CPU ops the image and audio encoders add: layernorm, add_bias,
 * add_scaled, gelu (erf, tanh, quick) and im2col (attention_full is in cpu_attention.c).
 * Each op checks its arguments, then splits its outputs over the thread pool in fixed
 * chunks; every element is computed in double from its float inputs and rounded once,
 * so results are the formulas' values to float rounding, at any level and thread count. */
#include <math.h>
#include <stdint.h>

#include "backend/cpu/cpu_ops.h"
#include "backend/op_shapes.h"
#include "base/error.h"

/* Elements per task: small vectors run on the caller without waking the pool. */
#define ENC_CHUNK 16384

/* Tasks of `per` items each over n items. */
static int64_t n_chunks(int64_t n, int64_t per)
{
    return n / per + (n % per != 0);
}

/* Items [lo, hi) of task range [begin, end), `per` items a task, n in all. */
static void chunk_bounds(int64_t begin, int64_t end, int64_t per, int64_t n, int64_t *lo,
                         int64_t *hi)
{
    *lo = begin * per;
    *hi = end * per < n ? end * per : n;
}

/* ---- layernorm -------------------------------------------------------------------- */

/* Two passes in double: the mean, then the biased variance of x - mean (no cancellation
 * between sum x^2 and mean^2); y is (x - mean) * rstd * weight + bias in double, rounded
 * once. x may equal y: the row is read whole before it is written. */
static void layernorm_row(const float *x, const float *weight, const float *bias, int32_t n,
                          float eps, float *y)
{
    double sum = 0.0;
    for (int32_t i = 0; i < n; i++)
        sum += x[i];
    const double mean = sum / n;
    double ss = 0.0;
    for (int32_t i = 0; i < n; i++) {
        const double d = x[i] - mean;
        ss += d * d;
    }
    const double rstd = 1.0 / sqrt(ss / n + (double)eps);
    if (bias)
        for (int32_t i = 0; i < n; i++)
            y[i] = (float)((x[i] - mean) * rstd * weight[i] + bias[i]);
    else
        for (int32_t i = 0; i < n; i++)
            y[i] = (float)((x[i] - mean) * rstd * weight[i]);
}

typedef struct layernorm_job {
    const float *x, *weight, *bias;   /* x: [n_tok][n]; weight, bias: [n] */
    int32_t n;
    float eps;
    float *y;                         /* [n_tok][n] */
} layernorm_job;

static void layernorm_range(void *arg, int64_t begin, int64_t end, int thread)
{
    (void)thread;
    const layernorm_job *j = arg;
    for (int64_t t = begin; t < end; t++)
        layernorm_row(j->x + t * j->n, j->weight, j->bias, j->n, j->eps, j->y + t * j->n);
}

lmrt_status cpu_layernorm(backend_ctx *ctx, const float *x, const float *weight,
                          const float *bias, int32_t n, int32_t n_tok, float eps, float *y)
{
    if (!ctx || !x || !weight || !y)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cpu backend: layernorm: NULL %s",
                         !ctx ? "context" : !x ? "x" : !weight ? "weight" : "y");
    if (n <= 0 || n_tok < 0 || !(eps >= 0.0f) || isinf(eps))
        return lmrt_fail(LMRT_E_INVALID_ARG, "cpu backend: layernorm: bad n %d, n_tok %d or "
                         "eps %g", (int)n, (int)n_tok, (double)eps);
    layernorm_job job = {x, weight, bias, n, eps, y};
    pthread_mutex_lock(&ctx->op_lock);
    threadpool_run(ctx->pool, n_tok, layernorm_range, &job);
    pthread_mutex_unlock(&ctx->op_lock);
    return LMRT_OK;
}

/* ---- add_bias, add_scaled, gelu ------------------------------------------------------ */

typedef enum enc_elem_op { ENC_ADD_BIAS, ENC_ADD_SCALED, ENC_GELU } enc_elem_op;

typedef struct elem_job {
    enc_elem_op op;
    float *y;                    /* add_bias: [n_tok][n_bias]; others: [n] */
    const float *src;            /* add_bias: b [n_bias]; add_scaled: x [n]; gelu: unused */
    int64_t n;                   /* elements of y */
    int64_t per;                 /* elements per task (add_bias: whole rows) */
    int32_t n_bias;
    int32_t kind;                /* gelu: backend_gelu_kind */
    float scale;                 /* add_scaled */
} elem_job;

/* erf: x/2 (1 + erf(x/sqrt 2)) written as x/2 erfc(-x/sqrt 2), which is the same value
 * without the cancellation of 1 + erf near -1 (relative accuracy kept for x < 0).
 * tanh: x/2 (1 + tanh u) = x / (1 + e^(-2u)), likewise. quick: x / (1 + e^(-1.702 x)).
 * All in double, rounded once; e^(...) overflowing to inf gives -0, as it should. */
static void gelu_range(float *x, int64_t n, int32_t kind)
{
    switch (kind) {
    case BACKEND_GELU_ERF:
        for (int64_t i = 0; i < n; i++) {
            const double v = x[i];
            x[i] = (float)(0.5 * v * erfc(-v * M_SQRT1_2));
        }
        break;
    case BACKEND_GELU_TANH: {
        const double c = sqrt(2.0 / M_PI);
        for (int64_t i = 0; i < n; i++) {
            const double v = x[i], u = c * (v + 0.044715 * v * v * v);
            x[i] = (float)(v / (1.0 + exp(-2.0 * u)));
        }
        break;
    }
    default:   /* BACKEND_GELU_QUICK; the op rejected anything else */
        for (int64_t i = 0; i < n; i++) {
            const double v = x[i];
            x[i] = (float)(v / (1.0 + exp(-1.702 * v)));
        }
        break;
    }
}

static void elem_range(void *arg, int64_t begin, int64_t end, int thread)
{
    (void)thread;
    const elem_job *j = arg;
    int64_t lo, hi;
    chunk_bounds(begin, end, j->per, j->n, &lo, &hi);
    float *y = j->y;
    switch (j->op) {
    case ENC_ADD_BIAS:   /* lo, hi are whole rows */
        for (int64_t r = lo; r < hi; r += j->n_bias)
            for (int32_t i = 0; i < j->n_bias; i++)
                y[r + i] += j->src[i];
        break;
    case ENC_ADD_SCALED:
        for (int64_t i = lo; i < hi; i++)
            y[i] = (float)((double)y[i] + (double)j->scale * j->src[i]);
        break;
    case ENC_GELU:
        gelu_range(y + lo, hi - lo, j->kind);
        break;
    }
}

static void elem_run(backend_ctx *ctx, elem_job *job)
{
    pthread_mutex_lock(&ctx->op_lock);
    threadpool_run(ctx->pool, n_chunks(job->n, job->per), elem_range, job);
    pthread_mutex_unlock(&ctx->op_lock);
}

lmrt_status cpu_add_bias(backend_ctx *ctx, float *y, const float *b, int32_t n, int32_t n_tok)
{
    if (!ctx || !y || !b)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cpu backend: add_bias: NULL %s",
                         !ctx ? "context" : !y ? "y" : "b");
    if (n <= 0 || n_tok < 0)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cpu backend: add_bias: bad n %d or n_tok %d",
                         (int)n, (int)n_tok);
    /* Whole rows per task, about ENC_CHUNK elements. */
    const int64_t rows = n < ENC_CHUNK ? ENC_CHUNK / n : 1;
    elem_job job = {ENC_ADD_BIAS, y, b, (int64_t)n * n_tok, rows * n, n, 0, 0.0f};
    elem_run(ctx, &job);
    return LMRT_OK;
}

lmrt_status cpu_add_scaled(backend_ctx *ctx, float *y, const float *x, float scale, int64_t n)
{
    if (!ctx || (n > 0 && (!y || !x)))
        return lmrt_fail(LMRT_E_INVALID_ARG, "cpu backend: add_scaled: NULL %s",
                         !ctx ? "context" : !y ? "y" : "x");
    if (n < 0)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cpu backend: add_scaled: negative length %lld",
                         (long long)n);
    if (!isfinite(scale))
        return lmrt_fail(LMRT_E_INVALID_ARG, "cpu backend: add_scaled: scale %g is not "
                         "finite", (double)scale);
    elem_job job = {ENC_ADD_SCALED, y, x, n, ENC_CHUNK, 0, 0, scale};
    elem_run(ctx, &job);
    return LMRT_OK;
}

lmrt_status cpu_gelu(backend_ctx *ctx, float *x, int64_t n, int32_t kind)
{
    if (!ctx || (n > 0 && !x))
        return lmrt_fail(LMRT_E_INVALID_ARG, "cpu backend: gelu: NULL %s",
                         !ctx ? "context" : "x");
    if (n < 0)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cpu backend: gelu: negative length %lld",
                         (long long)n);
    if (kind != BACKEND_GELU_ERF && kind != BACKEND_GELU_TANH && kind != BACKEND_GELU_QUICK)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cpu backend: gelu: unknown kind %d (erf 0, "
                         "tanh 1, quick 2)", (int)kind);
    elem_job job = {ENC_GELU, x, NULL, n, ENC_CHUNK, 0, kind, 0.0f};
    elem_run(ctx, &job);
    return LMRT_OK;
}

/* ---- im2col ------------------------------------------------------------------------- */

typedef struct im2col_job {
    const float *x;              /* [h][w][c_in] */
    int32_t c_in, h, w, kh, kw, stride_h, stride_w, pad_h, pad_w;
    int64_t w_out, n_pos;        /* output positions: h_out * w_out */
    int64_t row;                 /* c_in * kh * kw: floats per output position */
    int64_t per;                 /* positions per task */
    float *out;                  /* [n_pos][c_in][kh][kw] */
} im2col_job;

/* Output position p = (oy, ox) reads x at (oy * stride_h - pad_h + ky, ox * stride_w -
 * pad_w + kx) for every channel and tap, 0 outside; bound by the writes (one row of
 * c_in * kh * kw floats per position, the reads gathered from kh * kw pixels). */
static void im2col_range(void *arg, int64_t begin, int64_t end, int thread)
{
    (void)thread;
    const im2col_job *j = arg;
    int64_t lo, hi;
    chunk_bounds(begin, end, j->per, j->n_pos, &lo, &hi);
    for (int64_t p = lo; p < hi; p++) {
        const int64_t iy0 = p / j->w_out * j->stride_h - j->pad_h;
        const int64_t ix0 = p % j->w_out * j->stride_w - j->pad_w;
        float *o = j->out + p * j->row;
        for (int32_t c = 0; c < j->c_in; c++)
            for (int32_t ky = 0; ky < j->kh; ky++) {
                const int64_t iy = iy0 + ky;
                const bool row_in = iy >= 0 && iy < j->h;
                for (int32_t kx = 0; kx < j->kw; kx++) {
                    const int64_t ix = ix0 + kx;
                    *o++ = row_in && ix >= 0 && ix < j->w
                               ? j->x[(iy * j->w + ix) * j->c_in + c]
                               : 0.0f;
                }
            }
    }
}

lmrt_status cpu_im2col(backend_ctx *ctx, const float *x, int32_t c_in, int32_t h, int32_t w,
                       int32_t kh, int32_t kw, int32_t stride_h, int32_t stride_w,
                       int32_t pad_h, int32_t pad_w, float *out)
{
    if (!ctx || !x || !out)
        return lmrt_fail(LMRT_E_INVALID_ARG, "cpu backend: im2col: NULL %s",
                         !ctx ? "context" : !x ? "x" : "out");
    int64_t h_out, w_out, row;
    lmrt_status st = backend_im2col_shape("cpu", c_in, h, w, kh, kw, stride_h, stride_w, pad_h,
                                          pad_w, &h_out, &w_out, &row);
    if (st)
        return st;
    const int64_t n_pos = h_out * w_out;
    const int64_t per = row < ENC_CHUNK ? ENC_CHUNK / row : 1;
    im2col_job job = {x, c_in, h, w, kh, kw, stride_h, stride_w, pad_h, pad_w,
                      w_out, n_pos, row, per, out};
    pthread_mutex_lock(&ctx->op_lock);
    threadpool_run(ctx->pool, n_chunks(n_pos, per), im2col_range, &job);
    pthread_mutex_unlock(&ctx->op_lock);
    return LMRT_OK;
}
