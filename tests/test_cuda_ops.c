/* test_cuda_ops.c - every op of the CUDA backend against the CPU backend (and, for the
 * matmuls, a double-precision reference with the error bound of each kernel), on random
 * inputs of awkward sizes: every weight type and batch size through each matmul kernel,
 * get_rows, rmsnorm, rope, causal attention (GQA, split keys), the encoder ops, memory,
 * the converted-input cache and argument errors. Needs a GPU: without one it exits 77
 * (meson: skipped) with "no CUDA device". */
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
#include "backend/cuda/cuda_backend.h"
#include "base/error.h"
#include "tensor/quant.h"
#include "tensor/types.h"

static const backend_vtable *const CPU = &cpu_backend;
static const backend_vtable *const GPU = &cuda_backend;
static backend_ctx *cpu, *gpu;

/* ---- helpers ---------------------------------------------------------------------------- */

static uint64_t rng_state = 7;

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

static float *frand(int64_t n, float lo, float hi)
{
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    assert_non_null(p);
    for (int64_t i = 0; i < n; i++)
        p[i] = rng_uniform(lo, hi);
    return p;
}

/* Device copy of n host floats (n may be 0). */
static float *dev_from(const float *h, int64_t n)
{
    void *d = NULL;
    assert_int_equal(GPU->alloc(gpu, (size_t)(n > 0 ? n : 1) * sizeof(float), &d), LMRT_OK);
    assert_int_equal(GPU->upload(gpu, d, h, (size_t)n * sizeof(float)), LMRT_OK);
    return d;
}

static float *host_from(const float *d, int64_t n)
{
    float *h = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    assert_non_null(h);
    lmrt_status st = GPU->download(gpu, h, d, (size_t)n * sizeof(float));
    if (st)
        fail_msg("download: %s", lmrt_last_error());
    return h;
}

/* |got - want| <= atol + rtol |want| everywhere; reports the worst element. */
static void check_close(const char *what, const float *got, const float *want, int64_t n,
                        double atol, double rtol)
{
    double worst = 0.0;
    int64_t at = -1;
    for (int64_t i = 0; i < n; i++) {
        const double e = fabs((double)got[i] - want[i]), lim = atol + rtol * fabs(want[i]);
        if (!(e <= lim) && (at < 0 || e - lim > worst)) {
            worst = e - lim;
            at = i;
        }
    }
    if (at >= 0)
        fail_msg("%s: element %lld is %.9g, the CPU gives %.9g (atol %g, rtol %g)", what,
                 (long long)at, (double)got[at], (double)want[at], atol, rtol);
}

/* A row of random blocks of `type` in the file's layout (finite f16 scales). */
static void random_row(uint32_t type, int64_t n_cols, uint8_t *row)
{
    const tensor_type_traits *tt = tensor_type_get(type);
    const size_t nb = (size_t)(n_cols / tt->block_elems);
    for (size_t i = 0; i < nb * tt->block_bytes; i++)
        row[i] = (uint8_t)rng_u32();
    for (size_t b = 0; b < nb; b++) {
        uint8_t *blk = row + b * tt->block_bytes;
        const uint16_t h1 = fp32_to_fp16(rng_uniform(-0.05f, 0.05f));
        const uint16_t h2 = fp32_to_fp16(rng_uniform(0.0f, 0.02f));
        const uint16_t hb = fp32_to_bf16(rng_uniform(-1.0f, 1.0f));
        const float f = rng_uniform(-1.0f, 1.0f);
        switch (type) {
        case GGML_TYPE_Q8_0: case GGML_TYPE_Q4_0: case GGML_TYPE_F16:
            memcpy(blk, &h1, 2);
            break;
        case GGML_TYPE_Q4_K:
            memcpy(blk, &h1, 2);
            memcpy(blk + 2, &h2, 2);
            break;
        case GGML_TYPE_Q6_K:
            memcpy(blk + 208, &h1, 2);
            break;
        case GGML_TYPE_BF16:
            memcpy(blk, &hb, 2);
            break;
        default:
            memcpy(blk, &f, 4);
            break;
        }
    }
}

/* A random weight of n_rows x n_cols, bound to both backends; host memory in *file. */
typedef struct weight {
    tensor_view host, on_cpu, on_gpu;
    uint8_t *file;
    float *deq;                  /* [n_rows][n_cols] reference values */
} weight;

static void weight_make(weight *w, uint32_t type, int64_t n_rows, int64_t n_cols)
{
    const tensor_type_traits *tt = tensor_type_get(type);
    const size_t rb = (size_t)(n_cols / tt->block_elems) * tt->block_bytes;
    w->file = malloc(rb * (size_t)n_rows + 1);
    w->deq = malloc((size_t)(n_rows * n_cols) * sizeof(float) + 1);
    assert_non_null(w->file);
    assert_non_null(w->deq);
    for (int64_t r = 0; r < n_rows; r++) {
        random_row(type, n_cols, w->file + (size_t)r * rb);
        assert_int_equal(dequantize_row(type, w->file + (size_t)r * rb, w->deq + r * n_cols,
                                        n_cols), LMRT_OK);
    }
    w->host = (tensor_view){type, n_cols, n_rows, rb, w->file, "test.weight"};
    assert_int_equal(CPU->bind_weight(cpu, &w->host, &w->on_cpu), LMRT_OK);
    lmrt_status st = GPU->bind_weight(gpu, &w->host, &w->on_gpu);
    if (st)
        fail_msg("bind_weight: %s", lmrt_last_error());
}

static void weight_free(weight *w)
{
    CPU->unbind_weight(cpu, &w->on_cpu);
    GPU->unbind_weight(gpu, &w->on_gpu);
    free(w->file);
    free(w->deq);
}

static const uint32_t all_types[] = {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16,
                                     GGML_TYPE_Q8_0, GGML_TYPE_Q4_0, GGML_TYPE_Q4_K,
                                     GGML_TYPE_Q6_K};

static bool quantized(uint32_t t)
{
    return t == GGML_TYPE_Q8_0 || t == GGML_TYPE_Q4_0 || t == GGML_TYPE_Q4_K ||
           t == GGML_TYPE_Q6_K;
}

static int setup(void **state)
{
    (void)state;
    if (CPU->ctx_create(0, 2, &cpu) || GPU->ctx_create(0, 0, &gpu)) {
        print_error("context: %s\n", lmrt_last_error());
        return -1;
    }
    lmrt_device_info info;
    if (!GPU->device_info(0, &info))
        print_message("device 0: %s (%s)\n", info.name, info.description);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    CPU->ctx_free(cpu);
    GPU->ctx_free(gpu);
    return 0;
}

/* ---- memory ------------------------------------------------------------------------------ */

static void memory_round_trips_and_alloc_is_zeroed(void **state)
{
    (void)state;
    void *d = NULL;
    assert_int_equal(GPU->alloc(gpu, 1001, &d), LMRT_OK);
    uint8_t h[1001];
    memset(h, 0xff, sizeof h);
    assert_int_equal(GPU->download(gpu, h, d, sizeof h), LMRT_OK);
    for (size_t i = 0; i < sizeof h; i++)
        assert_int_equal(h[i], 0);
    for (size_t i = 0; i < sizeof h; i++)
        h[i] = (uint8_t)(i * 7);
    assert_int_equal(GPU->upload(gpu, d, h, sizeof h), LMRT_OK);
    uint8_t back[1001];
    assert_int_equal(GPU->download(gpu, back, d, sizeof back), LMRT_OK);
    assert_memory_equal(back, h, sizeof h);
    GPU->free(gpu, d);
    GPU->free(gpu, NULL);
    /* refused before cudaMalloc, with the sizes in the message */
    d = NULL;
    assert_int_equal(GPU->alloc(gpu, (size_t)1 << 60, &d), LMRT_E_NOMEM);
    assert_null(d);
    assert_non_null(strstr(lmrt_last_error(), "MiB free"));
}

/* ---- get_rows and matmul -------------------------------------------------------------------- */

static void get_rows_dequantizes_every_type(void **state)
{
    (void)state;
    for (size_t ti = 0; ti < sizeof all_types / sizeof all_types[0]; ti++) {
        const uint32_t type = all_types[ti];
        const int64_t n_cols = quantized(type) ? 3 * tensor_type_get(type)->block_elems : 37;
        weight w;
        weight_make(&w, type, 11, n_cols);
        int32_t ids[40];
        for (int i = 0; i < 40; i++)
            ids[i] = (int32_t)(rng_u32() % 11);
        const int counts[] = {1, 5, 40};   /* 40: ids copied to the device */
        for (int c = 0; c < 3; c++) {
            const int n = counts[c];
            float *want = malloc((size_t)(n * n_cols) * sizeof(float));
            void *d = NULL;
            assert_int_equal(GPU->alloc(gpu, (size_t)(n * n_cols) * sizeof(float), &d), LMRT_OK);
            assert_int_equal(CPU->get_rows(cpu, &w.on_cpu, ids, n, want), LMRT_OK);
            assert_int_equal(GPU->get_rows(gpu, &w.on_gpu, ids, n, d), LMRT_OK);
            float *got = host_from(d, n * n_cols);
            char what[64];
            snprintf(what, sizeof what, "get_rows %s x%d", tensor_type_name(type), n);
            check_close(what, got, want, n * n_cols, 2e-7, 1e-6);   /* Q4_K may fuse d*q - m */
            free(got);
            free(want);
            GPU->free(gpu, d);
        }
        const int32_t bad = 11;
        assert_int_equal(GPU->get_rows(gpu, &w.on_gpu, &bad, 1, w.deq), LMRT_E_INVALID_ARG);
        weight_free(&w);
    }
}

/* Per 32-block of one token's x: its amax, and the amax of the 256-block around it. */
static void block_amax(const float *x, int64_t n, float *am32, float *am256)
{
    for (int64_t b = 0; b < n; b += 32) {
        float a = 0.0f;
        for (int64_t i = b; i < b + 32 && i < n; i++)
            a = fabsf(x[i]) > a ? fabsf(x[i]) : a;
        am32[b / 32] = a;
    }
    for (int64_t b = 0; b < n; b += 32) {
        float a = 0.0f;
        for (int64_t j = b / 256 * 8; j < b / 256 * 8 + 8 && j * 32 < n; j++)
            a = am32[j] > a ? am32[j] : a;
        am256[b / 32] = a;
    }
}

/* Bound on |kernel - exact| for one output: int8 x moves each x_i by at most amax/254 of
 * its 32-block (matvec, quantized); f16 rounding of x and w, 2^-11 each (tensor cores);
 * float rounding otherwise. `cpu_slack` adds what the CPU's own x quantization may move
 * (Q8_K per 256, or Q8_0 with its f16 scale: up to 0.57 of the step). */
static double bound(uint32_t type, int32_t n_tok, const float *w, const float *x, int64_t n,
                    const float *am32, const float *am256, bool cpu_slack)
{
    double sum_wx = 0.0, q8 = 0.0, cpu_q8 = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double aw = fabs((double)w[i]);
        sum_wx += aw * fabs((double)x[i]);
        q8 += aw * am32[i / 32];
        cpu_q8 += aw * am256[i / 32];
    }
    q8 /= 254.0;
    cpu_q8 /= 254.0;
    double e;
    if (quantized(type) && n_tok <= CUDA_MATVEC_MAX_TOK)
        e = 1.01 * q8 + 1e-5 * sum_wx;
    else if (type != GGML_TYPE_F32 && n_tok > CUDA_MATVEC_MAX_TOK)
        e = 0x1p-10 * 1.05 * sum_wx;
    else
        e = 1e-5 * sum_wx;
    if (cpu_slack)
        e += quantized(type) ? 1.15 * cpu_q8 + 1e-5 * sum_wx : 1e-5 * sum_wx;
    return e + 1e-6;
}

static void matmul_case(uint32_t type, int64_t n_rows, int64_t n_cols, int32_t n_tok, int x_off)
{
    weight w;
    weight_make(&w, type, n_rows, n_cols);
    float *x = frand(n_tok * n_cols, -1.0f, 1.0f);
    float *want = malloc((size_t)(n_tok * n_rows) * sizeof(float));
    float *am32 = malloc((size_t)(n_cols / 32 + 1) * sizeof(float));
    float *am256 = malloc((size_t)(n_cols / 32 + 1) * sizeof(float));
    assert_non_null(want);
    assert_non_null(am32);
    assert_non_null(am256);
    assert_int_equal(CPU->matmul(cpu, &w.on_cpu, x, n_tok, want), LMRT_OK);
    /* x at an offset of x_off floats in its buffer: the unaligned paths */
    void *xb = NULL, *yd = NULL;
    assert_int_equal(GPU->alloc(gpu, (size_t)(n_tok * n_cols + x_off) * sizeof(float), &xb),
                     LMRT_OK);
    float *xd = (float *)xb + x_off;
    assert_int_equal(GPU->upload(gpu, xd, x, (size_t)(n_tok * n_cols) * sizeof(float)), LMRT_OK);
    assert_int_equal(GPU->alloc(gpu, (size_t)(n_tok * n_rows) * sizeof(float), &yd), LMRT_OK);
    lmrt_status st = GPU->matmul(gpu, &w.on_gpu, xd, n_tok, yd);
    if (st)
        fail_msg("matmul: %s", lmrt_last_error());
    float *got = host_from(yd, n_tok * n_rows);
    for (int32_t t = 0; t < n_tok; t++) {
        const float *xt = x + t * n_cols;
        block_amax(xt, n_cols, am32, am256);
        for (int64_t r = 0; r < n_rows; r++) {
            if (n_rows > 4096 && r % 7 != 0 && r < n_rows - 200)
                continue;   /* big cases: every 7th row and the last tiles */
            const float *wr = w.deq + r * n_cols;
            double exact = 0.0;
            for (int64_t c = 0; c < n_cols; c++)
                exact += (double)wr[c] * xt[c];
            const double g = got[t * n_rows + r];
            const double b = bound(type, n_tok, wr, xt, n_cols, am32, am256, false);
            const double bc = bound(type, n_tok, wr, xt, n_cols, am32, am256, true);
            if (!(fabs(g - exact) <= b) || !(fabs(g - want[t * n_rows + r]) <= bc))
                fail_msg("matmul %s %lldx%lld, %d tokens (x offset %d): y[%d][%lld] = %.8g, "
                         "exact %.8g (bound %.3g), CPU %.8g (bound %.3g)",
                         tensor_type_name(type), (long long)n_rows, (long long)n_cols,
                         (int)n_tok, x_off, (int)t, (long long)r, g, exact, b,
                         (double)want[t * n_rows + r], bc);
        }
    }
    free(got);
    free(want);
    free(x);
    free(am32);
    free(am256);
    GPU->free(gpu, xb);
    GPU->free(gpu, yd);
    weight_free(&w);
}

static void matmul_matches_every_type_and_batch(void **state)
{
    (void)state;
    const int32_t toks[] = {1, 2, 5, 8, 9, 33, 130};
    for (size_t ti = 0; ti < sizeof all_types / sizeof all_types[0]; ti++) {
        const uint32_t type = all_types[ti];
        const int64_t blk = tensor_type_get(type)->block_elems;
        const int64_t cols = quantized(type) ? (blk == 32 ? 160 : 512) : 37;
        for (size_t k = 0; k < sizeof toks / sizeof toks[0]; k++) {
            matmul_case(type, 67, cols, toks[k], 0);
            matmul_case(type, 1, quantized(type) ? blk : 64, toks[k], 1);
        }
        matmul_case(type, 300, quantized(type) ? 4 * 256 : 200, 3, 0);
        matmul_case(type, 129, quantized(type) ? 4 * 256 : 200, 200, 0);
        /* enough rows for the large tiles on any device up to 140 SMs: 128 x 128 for 130
         * tokens, 128 x 64 for 40 (cuda_plan_matmul) */
        if (type != GGML_TYPE_F32) {
            matmul_case(type, 128 * 140 + 5, 256, 130, 0);
            matmul_case(type, 128 * 140 + 5, 256, 40, 0);
        }
    }
}

/* The converted x is reused by matmuls of the same input, and forgotten when anything
 * writes it: an upload, another op, or a matmul. */
static void converted_input_is_refreshed_when_x_changes(void **state)
{
    (void)state;
    const uint32_t types[] = {GGML_TYPE_Q8_0, GGML_TYPE_F16};
    const int32_t toks[] = {2, 20};
    for (int ti = 0; ti < 2; ti++)
        for (int k = 0; k < 2; k++) {
            const int64_t n = 64;
            const int32_t nt = toks[k];
            weight w;
            weight_make(&w, types[ti], n, n);
            float *x = frand(nt * n, -1.0f, 1.0f), *want = malloc((size_t)(nt * n) * 4);
            float *xd = dev_from(x, nt * n), *ones = dev_from(x, nt * n);
            void *yd = NULL;
            assert_int_equal(GPU->alloc(gpu, (size_t)(nt * n) * 4, &yd), LMRT_OK);
            for (int step = 0; step < 4; step++) {
                if (step == 1) {          /* the host writes x */
                    for (int64_t i = 0; i < nt * n; i++)
                        x[i] = -x[i] * 0.5f;
                    assert_int_equal(GPU->upload(gpu, xd, x, (size_t)(nt * n) * 4), LMRT_OK);
                } else if (step == 2) {   /* an op writes x */
                    assert_int_equal(GPU->add(gpu, xd, ones, nt * n), LMRT_OK);
                    free(x);
                    x = host_from(xd, nt * n);
                } else if (step == 3) {   /* a matmul writes x */
                    assert_int_equal(GPU->matmul(gpu, &w.on_gpu, ones, nt, xd), LMRT_OK);
                    free(x);
                    x = host_from(xd, nt * n);
                }
                assert_int_equal(CPU->matmul(cpu, &w.on_cpu, x, nt, want), LMRT_OK);
                assert_int_equal(GPU->matmul(gpu, &w.on_gpu, xd, nt, yd), LMRT_OK);
                assert_int_equal(GPU->matmul(gpu, &w.on_gpu, xd, nt, yd), LMRT_OK);  /* cached */
                float *got = host_from(yd, nt * n);
                check_close("matmul after x changed", got, want, nt * n, 0.05, 0.02);
                free(got);
            }
            free(x);
            free(want);
            GPU->free(gpu, xd);
            GPU->free(gpu, ones);
            GPU->free(gpu, yd);
            weight_free(&w);
        }
}

/* ---- rmsnorm, rope, elementwise ------------------------------------------------------------ */

static void rmsnorm_and_rope_match_the_cpu(void **state)
{
    (void)state;
    const int32_t ns[] = {1, 7, 4099};
    for (int i = 0; i < 3; i++)
        for (int32_t n_tok = 1; n_tok <= 5; n_tok += 4) {
            const int32_t n = ns[i];
            float *x = frand(n * n_tok, -3.0f, 3.0f), *wt = frand(n, 0.5f, 1.5f);
            float *want = malloc((size_t)(n * n_tok) * 4);
            assert_int_equal(CPU->rmsnorm(cpu, x, wt, n, n_tok, 1e-5f, want), LMRT_OK);
            float *xd = dev_from(x, n * n_tok), *wd = dev_from(wt, n);
            assert_int_equal(GPU->rmsnorm(gpu, xd, wd, n, n_tok, 1e-5f, xd), LMRT_OK); /* in place */
            float *got = host_from(xd, n * n_tok);
            check_close("rmsnorm", got, want, n * n_tok, 1e-7, 2e-6);
            free(got), free(x), free(wt), free(want);
            GPU->free(gpu, xd);
            GPU->free(gpu, wd);
        }
    /* rope: few tokens (positions in the kernel's parameters) and many (copied up), with
     * and without frequency factors, n_rot below head_dim, positions up to 2^17 */
    const int32_t cases[][4] = {{5, 3, 10, 6}, {40, 4, 128, 128}, {1, 32, 64, 64}};
    for (int c = 0; c < 3; c++)
        for (int ff = 0; ff < 2; ff++) {
            const int32_t n_tok = cases[c][0], n_head = cases[c][1], hd = cases[c][2],
                          n_rot = cases[c][3];
            const int64_t n = (int64_t)n_tok * n_head * hd;
            float *x = frand(n, -2.0f, 2.0f), *factors = frand(n_rot / 2, 1.0f, 8.0f);
            int32_t *pos = malloc((size_t)n_tok * sizeof *pos);
            /* case 2 with factors: 40 consecutive positions (rope's run path) */
            for (int32_t t = 0; t < n_tok; t++)
                pos[t] = c == 1 && ff ? 1000 + t : t == 0 ? 131071 : (int32_t)(rng_u32() % 5000);
            float *fd = ff ? dev_from(factors, n_rot / 2) : NULL;
            float *xd = dev_from(x, n);
            assert_int_equal(CPU->rope(cpu, x, n_tok, n_head, hd, n_rot, pos, 500000.0f,
                                       ff ? factors : NULL), LMRT_OK);
            assert_int_equal(GPU->rope(gpu, xd, n_tok, n_head, hd, n_rot, pos, 500000.0f, fd),
                             LMRT_OK);
            float *got = host_from(xd, n);
            check_close("rope", got, x, n, 2e-6, 2e-6);
            free(got), free(x), free(factors), free(pos);
            GPU->free(gpu, xd);
            GPU->free(gpu, fd);
        }
}

static void elementwise_ops_match_the_cpu(void **state)
{
    (void)state;
    const int64_t n = 100003;
    float *a = frand(n, -6.0f, 6.0f), *b = frand(n, -2.0f, 2.0f);
    float *ad = dev_from(a, n), *bd = dev_from(b, n);
    assert_int_equal(CPU->silu_mul(cpu, a, b, n), LMRT_OK);
    assert_int_equal(GPU->silu_mul(gpu, ad, bd, n), LMRT_OK);
    float *got = host_from(ad, n);
    check_close("silu_mul", got, a, n, 1e-7, 1e-6);
    free(got);
    assert_int_equal(CPU->add(cpu, a, b, n), LMRT_OK);
    assert_int_equal(GPU->add(gpu, ad, bd, n), LMRT_OK);
    got = host_from(ad, n);
    check_close("add", got, a, n, 0, 0);
    free(got);
    assert_int_equal(CPU->add_scaled(cpu, a, b, -0.37f, n), LMRT_OK);
    assert_int_equal(GPU->add_scaled(gpu, ad, bd, -0.37f, n), LMRT_OK);
    got = host_from(ad, n);
    check_close("add_scaled", got, a, n, 0, 0);
    free(got);
    assert_int_equal(CPU->add_bias(cpu, a, b, 1009, 99), LMRT_OK);   /* 99 rows of 1009 */
    assert_int_equal(GPU->add_bias(gpu, ad, bd, 1009, 99), LMRT_OK);
    got = host_from(ad, n);
    check_close("add_bias", got, a, n, 0, 0);
    free(got);
    for (int32_t kind = 0; kind < 3; kind++) {
        float *c = frand(n, -8.0f, 8.0f), *cd = dev_from(c, n);
        assert_int_equal(CPU->gelu(cpu, c, n, kind), LMRT_OK);
        assert_int_equal(GPU->gelu(gpu, cd, n, kind), LMRT_OK);
        got = host_from(cd, n);
        check_close("gelu", got, c, n, 1e-30, 1e-6);   /* double libm vs CUDA's: an ulp */
        free(got), free(c);
        GPU->free(gpu, cd);
    }
    assert_int_equal(GPU->gelu(gpu, ad, n, 3), LMRT_E_INVALID_ARG);
    /* layernorm with and without bias, in place and not */
    for (int bias = 0; bias < 2; bias++) {
        const int32_t dim = 1283, rows = 7;
        float *x = frand(dim * rows, -4.0f, 5.0f), *w = frand(dim, 0.5f, 1.5f);
        float *bb = frand(dim, -1.0f, 1.0f), *want = malloc((size_t)(dim * rows) * 4);
        float *xd = dev_from(x, dim * rows), *wd = dev_from(w, dim), *bdv = dev_from(bb, dim);
        assert_int_equal(CPU->layernorm(cpu, x, w, bias ? bb : NULL, dim, rows, 1e-6f, want),
                         LMRT_OK);
        assert_int_equal(GPU->layernorm(gpu, xd, wd, bias ? bdv : NULL, dim, rows, 1e-6f, xd),
                         LMRT_OK);
        got = host_from(xd, dim * rows);
        check_close("layernorm", got, want, dim * rows, 1e-6, 1e-6);
        free(got), free(x), free(w), free(bb), free(want);
        GPU->free(gpu, xd), GPU->free(gpu, wd), GPU->free(gpu, bdv);
    }
    free(a), free(b);
    GPU->free(gpu, ad);
    GPU->free(gpu, bd);
}

static void im2col_matches_the_cpu(void **state)
{
    (void)state;
    const int32_t cases[][9] = {
        /* c_in h w kh kw sh sw ph pw */
        {3, 17, 23, 4, 5, 2, 3, 1, 2},
        {5, 1, 100, 1, 3, 1, 2, 0, 1},     /* 1-D, as Whisper's convolutions */
        {3, 32, 32, 16, 16, 16, 16, 0, 0}, /* patches */
    };
    for (int c = 0; c < 3; c++) {
        const int32_t *k = cases[c];
        const int64_t h_out = (k[1] + 2 * k[7] - k[3]) / k[5] + 1;
        const int64_t w_out = (k[2] + 2 * k[8] - k[4]) / k[6] + 1;
        const int64_t n_in = (int64_t)k[0] * k[1] * k[2], n_out = h_out * w_out * k[0] * k[3] * k[4];
        float *x = frand(n_in, -1.0f, 1.0f), *want = malloc((size_t)n_out * 4);
        float *xd = dev_from(x, n_in), *od = dev_from(want, n_out);
        assert_int_equal(CPU->im2col(cpu, x, k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7], k[8],
                                     want), LMRT_OK);
        assert_int_equal(GPU->im2col(gpu, xd, k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7],
                                     k[8], od), LMRT_OK);
        float *got = host_from(od, n_out);
        check_close("im2col", got, want, n_out, 0, 0);
        free(got), free(x), free(want);
        GPU->free(gpu, xd);
        GPU->free(gpu, od);
    }
}

/* ---- attention ----------------------------------------------------------------------------- */

static void attention_case(bool causal, int32_t n_tok, int32_t n_past_or_kv, int32_t n_head,
                           int32_t n_head_kv, int32_t hd)
{
    const int32_t stride = n_head_kv * hd + 3;   /* rows of the cache wider than the heads */
    const int64_t n_keys = causal ? (int64_t)n_past_or_kv + n_tok : n_past_or_kv;
    attention_params p = {n_tok, causal ? n_past_or_kv : 0, n_head, n_head_kv, hd, stride,
                          1.0f / sqrtf((float)hd)};
    float *q = frand((int64_t)n_tok * n_head * hd, -2.0f, 2.0f);
    float *k = frand(n_keys * stride, -2.0f, 2.0f), *v = frand(n_keys * stride, -1.0f, 1.0f);
    float *want = malloc((size_t)n_tok * n_head * hd * 4);
    float *qd = dev_from(q, (int64_t)n_tok * n_head * hd), *kd = dev_from(k, n_keys * stride);
    float *vd = dev_from(v, n_keys * stride), *od = dev_from(want, (int64_t)n_tok * n_head * hd);
    lmrt_status st;
    if (causal) {
        assert_int_equal(CPU->attention(cpu, &p, q, k, v, want), LMRT_OK);
        st = GPU->attention(gpu, &p, qd, kd, vd, od);
    } else {
        assert_int_equal(CPU->attention_full(cpu, &p, n_past_or_kv, q, k, v, want), LMRT_OK);
        st = GPU->attention_full(gpu, &p, n_past_or_kv, qd, kd, vd, od);
    }
    if (st)
        fail_msg("attention: %s", lmrt_last_error());
    float *got = host_from(od, (int64_t)n_tok * n_head * hd);
    char what[128];
    snprintf(what, sizeof what, "attention%s n_tok %d, %s %d, heads %d/%d, head_dim %d",
             causal ? "" : "_full", (int)n_tok, causal ? "n_past" : "n_kv", (int)n_past_or_kv,
             (int)n_head, (int)n_head_kv, (int)hd);
    /* Outputs are weighted means of values in [-1, 1]; float scores and exponentials in
     * another order than the CPU's differ by a few ulps of the scores. */
    check_close(what, got, want, (int64_t)n_tok * n_head * hd, 2e-5, 1e-4);
    free(got), free(q), free(k), free(v), free(want);
    GPU->free(gpu, qd), GPU->free(gpu, kd), GPU->free(gpu, vd), GPU->free(gpu, od);
}

static void attention_matches_the_cpu(void **state)
{
    (void)state;
    attention_case(true, 1, 0, 4, 2, 64);
    attention_case(true, 7, 13, 8, 2, 80);
    attention_case(true, 1, 3000, 32, 8, 128);     /* keys split over blocks */
    attention_case(true, 3, 777, 8, 8, 64);        /* split, several tokens */
    attention_case(true, 40, 100, 6, 3, 256);
    attention_case(true, 130, 0, 4, 4, 32);
    attention_case(false, 50, 77, 4, 2, 64);
    attention_case(false, 1, 1, 1, 1, 8);
    attention_case(false, 300, 1601, 16, 16, 80);
    attention_case(false, 2, 5000, 8, 1, 128);     /* split, non-causal */
}

/* ---- errors ---------------------------------------------------------------------------- */

static void bad_arguments_are_clear_errors(void **state)
{
    (void)state;
    weight w;
    weight_make(&w, GGML_TYPE_Q8_0, 4, 64);
    void *y = NULL;
    assert_int_equal(GPU->alloc(gpu, 4096, &y), LMRT_OK);
    /* the file's layout is not the device's */
    assert_int_equal(GPU->matmul(gpu, &w.host, y, 1, y), LMRT_E_INVALID_ARG);
    assert_non_null(strstr(lmrt_last_error(), "bound by this backend"));
    attention_params p = {1, 0, 1, 1, 300, 300, 0.05f};
    assert_int_equal(GPU->attention(gpu, &p, y, y, y, y), LMRT_E_UNSUPPORTED);
    assert_non_null(strstr(lmrt_last_error(), "head_dim 300"));
    p.head_dim = 64;
    p.n_head = 3;
    p.n_head_kv = 2;
    assert_int_equal(GPU->attention(gpu, &p, y, y, y, y), LMRT_E_INVALID_ARG);
    tensor_view bad = w.host;
    bad.type = GGML_TYPE_Q4_1;
    tensor_view out;
    assert_int_equal(GPU->bind_weight(gpu, &bad, &out), LMRT_E_UNSUPPORTED);
    bad = w.host;
    bad.row_bytes += 2;
    assert_int_equal(GPU->bind_weight(gpu, &bad, &out), LMRT_E_FORMAT);
    assert_int_equal(GPU->rmsnorm(gpu, y, y, 0, 1, 1e-5f, y), LMRT_E_INVALID_ARG);
    assert_int_equal(GPU->rope(gpu, y, 1, 1, 8, 9, (const int32_t[]){0}, 1e4f, NULL),
                     LMRT_E_INVALID_ARG);
    GPU->free(gpu, y);
    weight_free(&w);
}

int main(void)
{
    if (cuda_backend.device_count() == 0) {
        printf("no CUDA device (or no NVIDIA driver): the CUDA device tests are skipped\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(memory_round_trips_and_alloc_is_zeroed),
        cmocka_unit_test(get_rows_dequantizes_every_type),
        cmocka_unit_test(matmul_matches_every_type_and_batch),
        cmocka_unit_test(converted_input_is_refreshed_when_x_changes),
        cmocka_unit_test(rmsnorm_and_rope_match_the_cpu),
        cmocka_unit_test(elementwise_ops_match_the_cpu),
        cmocka_unit_test(im2col_matches_the_cpu),
        cmocka_unit_test(attention_matches_the_cpu),
        cmocka_unit_test(bad_arguments_are_clear_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
