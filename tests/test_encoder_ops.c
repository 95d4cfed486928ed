/* test_encoder_ops.c - the CPU backend's encoder ops (layernorm, add_bias, add_scaled,
 * gelu, attention_full, im2col) against straightforward double-precision references, on
 * awkward sizes, with every kernel table this CPU has (scalar included; LMRT_CPU lowers
 * the set), bit-identical results for 1 and 2 threads, and argument errors. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backend/backend.h"
#include "backend/cpu/cpu_features.h"
#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/cpu_simd.h"
#if defined(__aarch64__)
#include "backend/cpu/cpu_neon.h"
#endif
#include "base/alloc.h"
#include "base/error.h"

static const backend_vtable *const B = &cpu_backend;

/* ---- helpers ------------------------------------------------------------------ */

static uint64_t rng_state;

static void rng_seed(uint64_t s)
{
    rng_state = s * 0x9e3779b97f4a7c15ull + 1;
}

static uint32_t rng_u32(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

static float rng_uniform(float lo, float hi)
{
    return lo + (hi - lo) * (float)(rng_u32() >> 8) * 0x1p-24f;
}

static void fill_uniform(float *x, int64_t n, float lo, float hi)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = rng_uniform(lo, hi);
}

static float *falloc(int64_t n)
{
    float *p = aligned_alloc(64, ((size_t)(n > 0 ? n : 1) * sizeof(float) + 63) & ~(size_t)63);
    assert_non_null(p);
    return p;
}

static float *fdup(const float *x, int64_t n)
{
    float *p = falloc(n);
    memcpy(p, x, (size_t)n * sizeof(float));
    return p;
}

/* Every distinct kernel table at or below the detected level, the scalar one first, and
 * the VNNI table beside the AMX one; the ops are run with each through ctx->k. */
static const cpu_kernels *levels[6];
static int n_levels;

static int setup_levels(void **state)
{
    (void)state;
    const cpu_features *f = cpu_features_get();
    levels[0] = &cpu_kernels_scalar;
    n_levels = 1;
    for (int l = CPU_LEVEL_NEON; l <= (int)f->level; l++) {
        const cpu_kernels *k = cpu_kernels_for((cpu_level)l);
        if (levels[n_levels - 1] != k)
            levels[n_levels++] = k;
    }
#if defined(LMRT_HAVE_AMX_KERNELS)
    if (levels[n_levels - 1] == &cpu_kernels_avx512_amx)
        levels[n_levels++] = &cpu_kernels_avx512;
#endif
#if defined(__aarch64__)
    if (levels[n_levels - 1] == &cpu_kernels_neon)
        levels[n_levels++] = &cpu_kernels_neon_nodot;
#endif
    char names[128] = "";
    for (int i = 0; i < n_levels; i++) {
        strcat(names, " ");
        strcat(names, levels[i]->name);
    }
    print_message("CPU %s; kernel tables under test:%s\n", cpu_features_describe(f), names);
    return 0;
}

static backend_ctx *ctx_new(int32_t n_threads, const cpu_kernels *k)
{
    backend_ctx *ctx = NULL;
    assert_int_equal(B->ctx_create(0, n_threads, &ctx), LMRT_OK);
    if (k)
        ctx->k = k;
    return ctx;
}

/* ---- layernorm ------------------------------------------------------------------ */

/* The op computes in double and rounds once, so it is within half an ulp of the exact
 * value plus the double rounding of two passes over n elements; 2^-24 |want| covers
 * the first, 2^-40 of the magnitudes involved the second (n * 2^-52 for n < 4096). */
static void layernorm_check(const float *x, const float *w, const float *b, int n, int n_tok,
                            float eps, const float *y)
{
    for (int t = 0; t < n_tok; t++) {
        const float *xt = x + (size_t)t * n;
        double mean = 0, var = 0;
        for (int i = 0; i < n; i++)
            mean += xt[i];
        mean /= n;
        for (int i = 0; i < n; i++)
            var += (xt[i] - mean) * (xt[i] - mean);
        var /= n;
        for (int i = 0; i < n; i++) {
            double xh = (xt[i] - mean) / sqrt(var + eps) * w[i];
            double want = xh + (b ? b[i] : 0.0);
            double tol = 0x1p-24 * fabs(want) + 0x1p-40 * (fabs(xh) + (b ? fabs(b[i]) : 0) + 1);
            double got = y[(size_t)t * n + i];
            if (!(fabs(got - want) <= tol))
                fail_msg("layernorm n %d t %d i %d: %.9g, want %.9g", n, t, i, got, want);
        }
    }
}

static void layernorm_matches_float64_reference(void **state)
{
    (void)state;
    rng_seed(1);
    static const int shapes[][2] = {{1, 3}, {7, 5}, {100, 1}, {1283, 33}, {4096, 2}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const int n = shapes[si][0], n_tok = shapes[si][1];
        const int64_t nx = (int64_t)n * n_tok;
        float *x = falloc(nx), *w = falloc(n), *b = falloc(n);
        /* a large common offset: a one-pass float variance would lose it all */
        for (int64_t i = 0; i < nx; i++)
            x[i] = 1000.0f + rng_uniform(-1, 1);
        fill_uniform(x, n, -3, 3);   /* the first row without the offset */
        fill_uniform(w, n, -2, 2);
        fill_uniform(b, n, -1, 1);
        for (int with_bias = 0; with_bias < 2; with_bias++) {
            const float *bias = with_bias ? b : NULL;
            float *ref = NULL;
            for (int li = 0; li < n_levels; li++)
                for (int32_t nt = 1; nt <= 2; nt++) {
                    backend_ctx *ctx = ctx_new(nt, levels[li]);
                    float *y = falloc(nx);
                    assert_int_equal(B->layernorm(ctx, x, w, bias, n, n_tok, 1e-5f, y), LMRT_OK);
                    layernorm_check(x, w, bias, n, n_tok, 1e-5f, y);
                    float *in_place = fdup(x, nx);   /* y == x */
                    assert_int_equal(B->layernorm(ctx, in_place, w, bias, n, n_tok, 1e-5f,
                                                  in_place), LMRT_OK);
                    assert_memory_equal(in_place, y, (size_t)nx * sizeof(float));
                    free(in_place);
                    if (!ref)
                        ref = y;
                    else {
                        assert_memory_equal(ref, y, (size_t)nx * sizeof(float));
                        free(y);
                    }
                    B->ctx_free(ctx);
                }
            free(ref);
        }
        free(b);
        free(w);
        free(x);
    }
    /* eps matters for a constant row: (x - mean) = 0 gives 0 * weight + bias. */
    backend_ctx *ctx = ctx_new(1, NULL);
    float x[5] = {2, 2, 2, 2, 2}, w[5] = {1, 2, 3, 4, 5}, b[5] = {1, -1, 0.5f, 0, 3}, y[5];
    assert_int_equal(B->layernorm(ctx, x, w, b, 5, 1, 1e-6f, y), LMRT_OK);
    assert_memory_equal(y, b, sizeof y);
    B->ctx_free(ctx);
}

/* ---- add_bias, add_scaled ---------------------------------------------------------- */

static void add_bias_and_add_scaled_match_reference(void **state)
{
    (void)state;
    rng_seed(2);
    static const int shapes[][2] = {{1, 1}, {17, 3}, {1280, 13}, {20000, 2}, {5, 7001}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const int n = shapes[si][0], n_tok = shapes[si][1];
        const int64_t ny = (int64_t)n * n_tok;
        float *y0 = falloc(ny), *x = falloc(ny), *b = falloc(n);
        fill_uniform(y0, ny, -10, 10);
        fill_uniform(x, ny, -10, 10);
        fill_uniform(b, n, -1, 1);
        const float scale = -0.7615942f;   /* tanh(-1), a typical gate */
        float *ref_b = NULL, *ref_s = NULL;
        for (int li = 0; li < n_levels; li++)
            for (int32_t nt = 1; nt <= 2; nt++) {
                backend_ctx *ctx = ctx_new(nt, levels[li]);
                float *yb = fdup(y0, ny), *ys = fdup(y0, ny);
                assert_int_equal(B->add_bias(ctx, yb, b, n, n_tok), LMRT_OK);
                assert_int_equal(B->add_scaled(ctx, ys, x, scale, ny), LMRT_OK);
                for (int64_t i = 0; i < ny; i++) {
                    /* a float sum of two floats: exact to compare */
                    if (yb[i] != y0[i] + b[i % n])
                        fail_msg("add_bias n %d i %lld: %.9g, want %.9g", n, (long long)i,
                                 (double)yb[i], (double)(y0[i] + b[i % n]));
                    /* y + scale x in double (the product is exact), rounded once:
                     * within 2^-24 |want| and the double rounding of the sum */
                    double p = (double)scale * x[i], want = y0[i] + p;
                    double tol = 0x1p-24 * fabs(want) + 0x1p-52 * (fabs(p) + fabs(y0[i]));
                    if (!(fabs(ys[i] - want) <= tol))
                        fail_msg("add_scaled i %lld: %.9g, want %.9g", (long long)i,
                                 (double)ys[i], want);
                }
                if (!ref_b) {
                    ref_b = yb;
                    ref_s = ys;
                } else {
                    assert_memory_equal(ref_b, yb, (size_t)ny * sizeof(float));
                    assert_memory_equal(ref_s, ys, (size_t)ny * sizeof(float));
                    free(yb);
                    free(ys);
                }
                B->ctx_free(ctx);
            }
        free(ref_b);
        free(ref_s);
        free(b);
        free(x);
        free(y0);
    }
}

/* ---- gelu --------------------------------------------------------------------------- */

/* The formulas as backend.h writes them, in double. */
static double gelu_ref(double x, int kind)
{
    switch (kind) {
    case BACKEND_GELU_ERF:
        return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
    case BACKEND_GELU_TANH:
        return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
    default:
        return x / (1.0 + exp(-1.702 * x));
    }
}

static void gelu_matches_float64_formulas(void **state)
{
    (void)state;
    rng_seed(3);
    static const int64_t sizes[] = {1, 15, 17, 40001};
    for (int kind = 0; kind < 3; kind++)
        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
            const int64_t n = sizes[si];
            float *x = falloc(n);
            fill_uniform(x, n, -12, 12);
            /* zero signs, tails where exp overflows, and the far negative tail */
            static const float special[] = {0.0f, -0.0f, 100.0f, -100.0f, -5.5f, 3e38f,
                                            -3e38f, 1e-30f};
            for (int64_t i = 0; i < n && i < 8; i++)
                x[n - 1 - i] = special[i];
            float *ref = NULL;
            for (int li = 0; li < n_levels; li++)
                for (int32_t nt = 1; nt <= 2; nt++) {
                    backend_ctx *ctx = ctx_new(nt, levels[li]);
                    float *y = fdup(x, n);
                    assert_int_equal(B->gelu(ctx, y, n, kind), LMRT_OK);
                    for (int64_t i = 0; i < n; i++) {
                        double want = gelu_ref(x[i], kind);
                        /* Rounded once from double, so half an ulp, 2^-24 |want|; the
                         * reference's own 1 + erf (tanh) cancels for x < 0 and is only
                         * good to 2^-52 |x| absolutely. */
                        double tol = 0x1p-24 * fabs(want) + 0x1p-51 * fabs((double)x[i]);
                        if (!(fabs(y[i] - want) <= tol))
                            fail_msg("gelu kind %d x %.9g: %.9g, want %.9g", kind,
                                     (double)x[i], (double)y[i], want);
                    }
                    if (!ref)
                        ref = y;
                    else {
                        assert_memory_equal(ref, y, (size_t)n * sizeof(float));
                        free(y);
                    }
                    B->ctx_free(ctx);
                }
            free(ref);
            free(x);
        }
    /* Known values: gelu(1) with erf is 0.8413447460685429, tanh 0.8411919906082768;
     * quick gelu(1) = 1 / (1 + e^-1.702) = 0.845796... */
    backend_ctx *ctx = ctx_new(1, NULL);
    float v[3] = {1, 1, 1};
    for (int kind = 0; kind < 3; kind++)
        assert_int_equal(B->gelu(ctx, v + kind, 1, kind), LMRT_OK);
    assert_true(v[0] == (float)0.8413447460685429);
    assert_true(v[1] == (float)0.8411919906082768);
    assert_true(v[2] == (float)(1.0 / (1.0 + exp(-1.702))));
    B->ctx_free(ctx);
}

/* ---- attention_full ------------------------------------------------------------------- */

typedef struct attn_case {
    attention_params p;
    int32_t n_kv;
    float *q, *k, *v;
} attn_case;

static attn_case attn_make(int n_tok, int n_kv, int n_head, int n_head_kv, int head_dim)
{
    attn_case c;
    const int pad = 5;   /* rows wider than the heads, padding NaN: must never be read */
    c.p = (attention_params){n_tok, 12345 /* ignored */, n_head, n_head_kv, head_dim,
                             n_head_kv * head_dim + pad, 1.0f / sqrtf((float)head_dim)};
    c.n_kv = n_kv;
    int64_t nq = (int64_t)n_tok * n_head * head_dim, nkv = (int64_t)n_kv * c.p.kv_stride;
    c.q = falloc(nq);
    c.k = falloc(nkv);
    c.v = falloc(nkv);
    fill_uniform(c.q, nq, -2, 2);
    fill_uniform(c.k, nkv, -2, 2);
    fill_uniform(c.v, nkv, -1, 1);
    for (int64_t j = 0; j < n_kv; j++)
        for (int i = n_head_kv * head_dim; i < c.p.kv_stride; i++)
            c.k[j * c.p.kv_stride + i] = c.v[j * c.p.kv_stride + i] = NAN;
    return c;
}

static void attn_free(attn_case *c)
{
    free(c->q);
    free(c->k);
    free(c->v);
}

/* Against softmax(q k^T scale) v in double, every query over all n_kv keys. Tolerance
 * as tests/test_simd.c derives it for the causal kernels (which this op runs): the float
 * score error (head_dim/8 + 4) * 2^-24 * scale * sum|q k| moves a weight by twice that
 * relative amount; exp, the online rescaling, the float sum of n_kv weighted values and
 * the final scaling stay within (n_kv + 4) * 2^-24 of max|v| = 1. Four times the sum. */
static void attn_check(const char *name, const attn_case *c, const float *out)
{
    const attention_params *p = &c->p;
    const int group = p->n_head / p->n_head_kv, hd = p->head_dim;
    double *s = malloc(sizeof(double) * (size_t)c->n_kv);
    assert_non_null(s);
    for (int t = 0; t < p->n_tok; t++)
        for (int h = 0; h < p->n_head; h++) {
            const int kvh = h / group;
            const float *q = c->q + ((size_t)t * p->n_head + h) * hd;
            double max = -INFINITY, sum = 0, mag = 0;
            for (int j = 0; j < c->n_kv; j++) {
                const float *kk = c->k + (size_t)j * p->kv_stride + (size_t)kvh * hd;
                double d = 0, m = 0;
                for (int i = 0; i < hd; i++) {
                    d += (double)q[i] * kk[i];
                    m += fabs((double)q[i] * kk[i]);
                }
                s[j] = d * p->scale;
                mag = fmax(mag, m * p->scale);
                max = fmax(max, s[j]);
            }
            for (int j = 0; j < c->n_kv; j++)
                sum += (s[j] = exp(s[j] - max));
            const double ds = (hd / 8 + 4) * 0x1p-24 * mag;
            const double tol = 4 * (2 * ds + (c->n_kv + 4) * 0x1p-24);
            for (int i = 0; i < hd; i++) {
                double want = 0;
                for (int j = 0; j < c->n_kv; j++)
                    want += s[j] * c->v[(size_t)j * p->kv_stride + (size_t)kvh * hd + i];
                want /= sum;
                double got = out[((size_t)t * p->n_head + h) * hd + i];
                if (!(fabs(got - want) <= tol))
                    fail_msg("%s n_kv %d hd %d t %d h %d i %d: %.9g, want %.9g (tol %.3g)",
                             name, c->n_kv, hd, t, h, i, got, want, tol);
            }
        }
    free(s);
}

static void attention_full_matches_reference_with_gqa_and_any_threads(void **state)
{
    (void)state;
    rng_seed(4);
    /* n_tok, n_kv, n_head, n_head_kv, head_dim: one key, 7 keys, 1000 keys; GQA 2 and 4;
     * head_dim 80 (mllama's vision heads), 20, 8, and 300 (over the SIMD kernels' 256) */
    static const int shapes[][5] = {
        {1, 1, 2, 2, 64}, {3, 7, 4, 2, 20}, {17, 1000, 4, 1, 64}, {5, 1000, 2, 2, 128},
        {33, 7, 6, 3, 8}, {19, 61, 3, 3, 80}, {2, 37, 2, 1, 300}, {40, 1, 1, 1, 16},
    };
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const int *sh = shapes[si];
        attn_case c = attn_make(sh[0], sh[1], sh[2], sh[3], sh[4]);
        const int64_t n_out = (int64_t)sh[0] * sh[2] * sh[4], row = (int64_t)sh[2] * sh[4];
        for (int li = 0; li < n_levels; li++) {
            float *ref = NULL;
            for (int32_t nt = 1; nt <= 2; nt++) {
                backend_ctx *ctx = ctx_new(nt, levels[li]);
                float *out = falloc(n_out);
                assert_int_equal(B->attention_full(ctx, &c.p, c.n_kv, c.q, c.k, c.v, out),
                                 LMRT_OK);
                if (!ref) {
                    attn_check(levels[li]->name, &c, out);
                    ref = out;
                    /* Each token gets the causal op's bits for a query that sees the
                     * same n_kv keys: one token at n_past = n_kv - 1. */
                    attention_params one = c.p;
                    one.n_tok = 1;
                    one.n_past = c.n_kv - 1;
                    float *o1 = falloc(row);
                    for (int t = 0; t < sh[0]; t++) {
                        assert_int_equal(B->attention(ctx, &one, c.q + t * row, c.k, c.v, o1),
                                         LMRT_OK);
                        assert_memory_equal(o1, ref + t * row, (size_t)row * sizeof(float));
                    }
                    free(o1);
                } else {
                    assert_memory_equal(ref, out, (size_t)n_out * sizeof(float));
                    free(out);
                }
                B->ctx_free(ctx);
            }
            free(ref);
        }
        attn_free(&c);
    }
}

/* A scratch allocation that fails is LMRT_E_NOMEM, and the context works afterwards. */
static void attention_full_out_of_memory_is_nomem(void **state)
{
    (void)state;
    rng_seed(5);
    attn_case c = attn_make(3, 50, 2, 1, 16);
    backend_ctx *ctx = ctx_new(2, NULL);
    float *out = falloc(3 * 2 * 16);
    lmrt_alloc_fail_after(0);
    assert_int_equal(B->attention_full(ctx, &c.p, c.n_kv, c.q, c.k, c.v, out), LMRT_E_NOMEM);
    lmrt_alloc_fail_after(-1);
    assert_int_equal(B->attention_full(ctx, &c.p, c.n_kv, c.q, c.k, c.v, out), LMRT_OK);
    attn_check("default", &c, out);
    free(out);
    B->ctx_free(ctx);
    attn_free(&c);
}

/* ---- im2col ------------------------------------------------------------------------- */

static void im2col_matches_direct_indexing(void **state)
{
    (void)state;
    rng_seed(6);
    /* c_in, h, w, kh, kw, stride_h, stride_w, pad_h, pad_w */
    static const int shapes[][9] = {
        {3, 7, 9, 3, 3, 1, 1, 1, 1},        /* same-size 3x3 */
        {2, 8, 8, 4, 4, 4, 4, 0, 0},        /* patch embedding */
        {3, 14, 15, 5, 5, 5, 5, 0, 0},      /* patches with a remainder (dropped) */
        {5, 1, 30, 1, 3, 1, 2, 0, 1},       /* 1-D, stride 2, pad 1 (Whisper conv2) */
        {80, 1, 11, 1, 3, 1, 1, 0, 1},      /* 1-D, pad 1 (Whisper conv1) */
        {1, 2, 2, 4, 4, 1, 1, 1, 1},        /* kernel = padded input: one position */
        {4, 9, 10, 2, 2, 3, 3, 0, 0},       /* stride > kernel: skipped pixels */
        {2, 5, 6, 3, 2, 2, 1, 3, 2},        /* padding > kernel: all-zero rows */
        {2000, 4, 4, 3, 3, 1, 1, 1, 1},     /* a row over the chunk size */
    };
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const int *s = shapes[si];
        const int c_in = s[0], h = s[1], w = s[2], kh = s[3], kw = s[4];
        const int sh = s[5], sw = s[6], ph = s[7], pw = s[8];
        const int h_out = (h + 2 * ph - kh) / sh + 1, w_out = (w + 2 * pw - kw) / sw + 1;
        const int64_t n_in = (int64_t)h * w * c_in, n = (int64_t)h_out * w_out * c_in * kh * kw;
        float *x = falloc(n_in);
        fill_uniform(x, n_in, 1, 2);   /* never 0: a tap read as padding shows */
        float *want = falloc(n);
        int64_t o = 0;
        for (int oy = 0; oy < h_out; oy++)
            for (int ox = 0; ox < w_out; ox++)
                for (int c = 0; c < c_in; c++)
                    for (int ky = 0; ky < kh; ky++)
                        for (int kx = 0; kx < kw; kx++) {
                            int iy = oy * sh - ph + ky, ix = ox * sw - pw + kx;
                            want[o++] = iy < 0 || iy >= h || ix < 0 || ix >= w
                                            ? 0.0f
                                            : x[((int64_t)iy * w + ix) * c_in + c];
                        }
        for (int li = 0; li < n_levels; li++)
            for (int32_t nt = 1; nt <= 2; nt++) {
                backend_ctx *ctx = ctx_new(nt, levels[li]);
                float *out = falloc(n + 16);
                for (int64_t i = 0; i < n + 16; i++)
                    out[i] = -7.0f;
                assert_int_equal(B->im2col(ctx, x, c_in, h, w, kh, kw, sh, sw, ph, pw, out),
                                 LMRT_OK);
                if (memcmp(out, want, (size_t)n * sizeof(float)))
                    fail_msg("im2col shape %zu (%s, %d threads) differs", si,
                             levels[li]->name, (int)nt);
                for (int64_t i = n; i < n + 16; i++)
                    assert_true(out[i] == -7.0f);   /* nothing written past the end */
                free(out);
                B->ctx_free(ctx);
            }
        free(want);
        free(x);
    }
}

/* ---- argument errors ------------------------------------------------------------------ */

static void bad_arguments_are_invalid_arg(void **state)
{
    (void)state;
    backend_ctx *ctx = ctx_new(2, NULL);
    float buf[4096] = {0};
    const int E = LMRT_E_INVALID_ARG;

    /* layernorm */
    assert_int_equal(B->layernorm(NULL, buf, buf, buf, 8, 1, 1e-5f, buf), E);
    assert_int_equal(B->layernorm(ctx, NULL, buf, buf, 8, 1, 1e-5f, buf), E);
    assert_int_equal(B->layernorm(ctx, buf, NULL, buf, 8, 1, 1e-5f, buf), E);
    assert_int_equal(B->layernorm(ctx, buf, buf, buf, 8, 1, 1e-5f, NULL), E);
    assert_int_equal(B->layernorm(ctx, buf, buf, buf, 0, 1, 1e-5f, buf), E);
    assert_int_equal(B->layernorm(ctx, buf, buf, buf, -8, 1, 1e-5f, buf), E);
    assert_int_equal(B->layernorm(ctx, buf, buf, buf, 8, -1, 1e-5f, buf), E);
    assert_int_equal(B->layernorm(ctx, buf, buf, buf, 8, 1, -1.0f, buf), E);
    assert_int_equal(B->layernorm(ctx, buf, buf, buf, 8, 1, NAN, buf), E);
    assert_int_equal(B->layernorm(ctx, buf, buf, buf, 8, 1, INFINITY, buf), E);
    assert_non_null(strstr(lmrt_last_error(), "layernorm"));
    assert_int_equal(B->layernorm(ctx, buf, buf, NULL, 8, 0, 0.0f, buf), LMRT_OK);

    /* add_bias */
    assert_int_equal(B->add_bias(NULL, buf, buf, 8, 1), E);
    assert_int_equal(B->add_bias(ctx, NULL, buf, 8, 1), E);
    assert_int_equal(B->add_bias(ctx, buf, NULL, 8, 1), E);
    assert_int_equal(B->add_bias(ctx, buf, buf, 0, 1), E);
    assert_int_equal(B->add_bias(ctx, buf, buf, 8, -1), E);
    assert_int_equal(B->add_bias(ctx, buf, buf, 8, 0), LMRT_OK);

    /* add_scaled */
    assert_int_equal(B->add_scaled(NULL, buf, buf, 0.5f, 4), E);
    assert_int_equal(B->add_scaled(ctx, NULL, buf, 0.5f, 4), E);
    assert_int_equal(B->add_scaled(ctx, buf, NULL, 0.5f, 4), E);
    assert_int_equal(B->add_scaled(ctx, buf, buf, 0.5f, -4), E);
    assert_int_equal(B->add_scaled(ctx, buf, buf, NAN, 4), E);
    assert_int_equal(B->add_scaled(ctx, buf, buf, -INFINITY, 4), E);
    assert_int_equal(B->add_scaled(ctx, NULL, NULL, 0.5f, 0), LMRT_OK);

    /* gelu */
    assert_int_equal(B->gelu(NULL, buf, 4, BACKEND_GELU_ERF), E);
    assert_int_equal(B->gelu(ctx, NULL, 4, BACKEND_GELU_ERF), E);
    assert_int_equal(B->gelu(ctx, buf, -4, BACKEND_GELU_ERF), E);
    assert_int_equal(B->gelu(ctx, buf, 4, 3), E);
    assert_non_null(strstr(lmrt_last_error(), "kind 3"));
    assert_int_equal(B->gelu(ctx, buf, 4, -1), E);
    assert_int_equal(B->gelu(ctx, NULL, 0, 7), E);
    assert_int_equal(B->gelu(ctx, NULL, 0, BACKEND_GELU_QUICK), LMRT_OK);

    /* attention_full */
    attention_params p = {2, 0, 4, 2, 8, 16, 0.35f};
    float *q = buf, *k = buf + 512, *v = buf + 1024, *o = buf + 2048;
    assert_int_equal(B->attention_full(ctx, &p, 3, q, k, v, o), LMRT_OK);
    assert_int_equal(B->attention_full(NULL, &p, 3, q, k, v, o), E);
    assert_int_equal(B->attention_full(ctx, NULL, 3, q, k, v, o), E);
    assert_int_equal(B->attention_full(ctx, &p, 3, NULL, k, v, o), E);
    assert_int_equal(B->attention_full(ctx, &p, 3, q, NULL, v, o), E);
    assert_int_equal(B->attention_full(ctx, &p, 3, q, k, NULL, o), E);
    assert_int_equal(B->attention_full(ctx, &p, 3, q, k, v, NULL), E);
    assert_int_equal(B->attention_full(ctx, &p, 0, q, k, v, o), E);
    assert_int_equal(B->attention_full(ctx, &p, -1, q, k, v, o), E);
    attention_params bp = p;
    bp.n_head = 6;                  /* 6 % 4 */
    bp.n_head_kv = 4;
    bp.kv_stride = 32;
    assert_int_equal(B->attention_full(ctx, &bp, 3, q, k, v, o), E);
    assert_non_null(strstr(lmrt_last_error(), "n_head_kv"));
    bp = p;
    bp.n_head_kv = 0;
    assert_int_equal(B->attention_full(ctx, &bp, 3, q, k, v, o), E);
    bp = p;
    bp.n_head = -4;
    assert_int_equal(B->attention_full(ctx, &bp, 3, q, k, v, o), E);
    bp = p;
    bp.n_tok = -1;
    assert_int_equal(B->attention_full(ctx, &bp, 3, q, k, v, o), E);
    bp = p;
    bp.head_dim = 0;
    assert_int_equal(B->attention_full(ctx, &bp, 3, q, k, v, o), E);
    bp = p;
    bp.kv_stride = 15;              /* < n_head_kv * head_dim */
    assert_int_equal(B->attention_full(ctx, &bp, 3, q, k, v, o), E);
    bp = p;
    bp.scale = NAN;
    assert_int_equal(B->attention_full(ctx, &bp, 3, q, k, v, o), E);
    bp = p;
    bp.n_past = -5;                 /* ignored */
    assert_int_equal(B->attention_full(ctx, &bp, 3, q, k, v, o), LMRT_OK);
    bp = p;
    bp.n_tok = 0;
    assert_int_equal(B->attention_full(ctx, &bp, 3, NULL, NULL, NULL, NULL), LMRT_OK);

    /* im2col: c_in, h, w, kh, kw, stride_h, stride_w, pad_h, pad_w */
    assert_int_equal(B->im2col(ctx, buf, 2, 4, 4, 3, 3, 1, 1, 1, 1, buf + 100), LMRT_OK);
    assert_int_equal(B->im2col(NULL, buf, 2, 4, 4, 3, 3, 1, 1, 1, 1, buf + 100), E);
    assert_int_equal(B->im2col(ctx, NULL, 2, 4, 4, 3, 3, 1, 1, 1, 1, buf + 100), E);
    assert_int_equal(B->im2col(ctx, buf, 2, 4, 4, 3, 3, 1, 1, 1, 1, NULL), E);
    assert_int_equal(B->im2col(ctx, buf, 0, 4, 4, 3, 3, 1, 1, 1, 1, buf + 100), E);
    assert_int_equal(B->im2col(ctx, buf, 2, 0, 4, 3, 3, 1, 1, 1, 1, buf + 100), E);
    assert_int_equal(B->im2col(ctx, buf, 2, 4, -4, 3, 3, 1, 1, 1, 1, buf + 100), E);
    assert_int_equal(B->im2col(ctx, buf, 2, 4, 4, 0, 3, 1, 1, 1, 1, buf + 100), E);
    assert_int_equal(B->im2col(ctx, buf, 2, 4, 4, 3, 0, 1, 1, 1, 1, buf + 100), E);
    assert_int_equal(B->im2col(ctx, buf, 2, 4, 4, 3, 3, 0, 1, 1, 1, buf + 100), E);
    assert_int_equal(B->im2col(ctx, buf, 2, 4, 4, 3, 3, 1, -1, 1, 1, buf + 100), E);
    assert_int_equal(B->im2col(ctx, buf, 2, 4, 4, 3, 3, 1, 1, -1, 1, buf + 100), E);
    assert_int_equal(B->im2col(ctx, buf, 2, 4, 4, 3, 3, 1, 1, 1, -1, buf + 100), E);
    assert_int_equal(B->im2col(ctx, buf, 2, 4, 4, 7, 3, 1, 1, 1, 1, buf + 100), E);  /* 7 > 6 */
    assert_non_null(strstr(lmrt_last_error(), "larger than the padded input"));
    assert_int_equal(B->im2col(ctx, buf, 2, 4, 4, 3, 9, 1, 1, 1, 1, buf + 100), E);
    /* 2^31-1 wide with 2^31-1 channels and a 3x3 kernel: the sizes overflow */
    assert_int_equal(B->im2col(ctx, buf, INT32_MAX, 4, INT32_MAX, 3, 3, 1, 1, 1, 1, buf), E);
    assert_non_null(strstr(lmrt_last_error(), "too large"));
    B->ctx_free(ctx);
}

static void vtable_has_the_encoder_slots(void **state)
{
    (void)state;
    assert_int_equal(B->size, sizeof(backend_vtable));
    assert_non_null(B->layernorm);
    assert_non_null(B->add_bias);
    assert_non_null(B->add_scaled);
    assert_non_null(B->gelu);
    assert_non_null(B->attention_full);
    assert_non_null(B->im2col);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(vtable_has_the_encoder_slots),
        cmocka_unit_test(layernorm_matches_float64_reference),
        cmocka_unit_test(add_bias_and_add_scaled_match_reference),
        cmocka_unit_test(gelu_matches_float64_formulas),
        cmocka_unit_test(attention_full_matches_reference_with_gqa_and_any_threads),
        cmocka_unit_test(attention_full_out_of_memory_is_nomem),
        cmocka_unit_test(im2col_matches_direct_indexing),
        cmocka_unit_test(bad_arguments_are_invalid_arg),
    };
    return cmocka_run_group_tests(tests, setup_levels, NULL);
}
