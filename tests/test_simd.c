/* test_simd.c - the x86 SIMD kernel tables against the scalar reference, on every level
 * this CPU has (AVX2, AVX-512 + VNNI, AVX-512 + AMX; the others are skipped and the ones
 * that ran are printed): byte-exact activation quantizers, float matmuls bit for bit,
 * quantized matmuls bit for bit against their integer definition (backend/cpu/cpu_simd.h)
 * and within a derived bound of the float64 product, the batch/row-split contract,
 * attention, silu_mul, rmsnorm, rope and add, and the op path with 1-3 threads. */
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
#include "base/error.h"
#include "lmrt.h"
#include "tensor/quant.h"
#include "tensor/types.h"

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

static uint32_t bits_of(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static void *xalloc(size_t bytes)
{
    void *p = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    assert_non_null(p);
    return p;
}

static void put_f16(uint8_t *p, float v)
{
    uint16_t h = fp32_to_fp16(v);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

static float get_f16(const uint8_t *p)
{
    return fp16_to_fp32((uint16_t)(p[0] | p[1] << 8));
}

/* Random valid rows: random quant bytes, plain values and scales in ranges like
 * test_kernels.c's (never inf or NaN). */
static uint8_t *random_weights(uint32_t type, int64_t n_cols, int64_t n_rows)
{
    const tensor_type_traits *tt = tensor_type_get(type);
    int64_t n_blocks = n_cols / tt->block_elems * n_rows;
    size_t bytes = (size_t)n_blocks * tt->block_bytes;
    uint8_t *w = xalloc(bytes + 1);
    for (size_t i = 0; i < bytes; i++)
        w[i] = (uint8_t)rng_u32();
    for (int64_t b = 0; b < n_blocks; b++) {
        uint8_t *blk = w + (size_t)b * tt->block_bytes;
        switch (type) {
        case GGML_TYPE_F32: {
            float v = rng_uniform(-1, 1);
            memcpy(blk, &v, 4);
            break;
        }
        case GGML_TYPE_F16: put_f16(blk, rng_uniform(-1, 1)); break;
        case GGML_TYPE_BF16: {
            uint16_t h = fp32_to_bf16(rng_uniform(-1, 1));
            blk[0] = (uint8_t)h;
            blk[1] = (uint8_t)(h >> 8);
            break;
        }
        case GGML_TYPE_Q8_0: put_f16(blk, rng_uniform(-0.02f, 0.02f)); break;
        case GGML_TYPE_Q4_0: put_f16(blk, rng_uniform(-0.2f, 0.2f)); break;
        case GGML_TYPE_Q4_K:   /* d and dmin of either sign */
            put_f16(blk, rng_uniform(-0.01f, 0.01f));
            put_f16(blk + 2, rng_uniform(-0.01f, 0.01f));
            break;
        case GGML_TYPE_Q6_K: put_f16(blk + 208, rng_uniform(-0.001f, 0.001f)); break;
        default: fail_msg("random_weights: type %u", (unsigned)type);
        }
    }
    return w;
}

static const uint32_t all_types[] = {
    GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16, GGML_TYPE_Q8_0,
    GGML_TYPE_Q4_0, GGML_TYPE_Q4_K, GGML_TYPE_Q6_K,
};
#define N_TYPES (sizeof all_types / sizeof all_types[0])

/* ---- the levels under test ----------------------------------------------------------- */

static const cpu_kernels *levels[4];
static int n_levels;

/* Every distinct table at or below the detected level, and the VNNI table beside the
 * AMX one (cpu_kernels_for hands out only one of them). */
static int setup_levels(void **state)
{
    (void)state;
    const cpu_features *f = cpu_features_get();
    n_levels = 0;
    for (int l = CPU_LEVEL_AVX2; l <= (int)f->level; l++) {
        const cpu_kernels *k = cpu_kernels_for((cpu_level)l);
        if (k != &cpu_kernels_scalar && (n_levels == 0 || levels[n_levels - 1] != k))
            levels[n_levels++] = k;
    }
#if defined(LMRT_HAVE_AMX_KERNELS)
    if (n_levels && levels[n_levels - 1] == &cpu_kernels_avx512_amx)
        levels[n_levels++] = &cpu_kernels_avx512;
#endif
#if defined(__aarch64__)
    /* NEON computes the same definitions (backend/cpu/cpu_neon.h); both of its tables
     * (SDOT where the CPU has it, and widening multiplies only). */
    levels[n_levels++] = &cpu_kernels_neon;
    levels[n_levels++] = &cpu_kernels_neon_nodot;
#endif
    char names[128] = "";
    for (int i = 0; i < n_levels; i++) {
        strcat(names, " ");
        strcat(names, levels[i]->name);
    }
    print_message("CPU %s; SIMD tables under test:%s\n", cpu_features_describe(f),
                  n_levels ? names : " none (skipped)");
    return 0;
}

/* ---- quantizers ------------------------------------------------------------------- */

/* Inputs that reach every branch: uniform, all zeros, one outlier, ties at .5 after
 * scaling (x = k + 0.5 with amax 127 gives id = 1), a negative extreme before an equal
 * positive one (Q8_K keeps the first), and tiny values (half-precision subnormal d). */
static void fill_quant_input(float *x, int64_t n, int pattern)
{
    fill_uniform(x, n, -1, 1);
    switch (pattern) {
    case 1: memset(x, 0, (size_t)n * sizeof *x); break;
    case 2: x[n / 3] = 1000.0f; break;
    case 3:
        for (int64_t i = 0; i < n; i++)
            x[i] = (float)((int)(rng_u32() % 254) - 127) + ((i & 1) ? 0.5f : 0.0f);
        for (int64_t i = 0; i < n; i += 32)
            x[i] = 127.0f;
        break;
    case 4:
        for (int64_t i = 0; i < n; i += 256) {
            x[i + 5] = -3.0f;
            x[i + 77] = 3.0f;
        }
        break;
    case 5:
        for (int64_t i = 0; i < n; i++)
            x[i] *= 1e-9f;
        break;
    }
}

static void quantizers_give_the_reference_bytes(void **state)
{
    (void)state;
    rng_seed(11);
    enum { N = 2048 + 256 };
    float *x = xalloc(N * sizeof(float));
    uint8_t *want = xalloc(N / 32 * 34 + N / 256 * 292), *got = xalloc(N / 32 * 34 + N / 256 * 292);
    for (int li = 0; li < n_levels; li++)
        for (int pattern = 0; pattern < 6; pattern++)
            for (int rep = 0; rep < 4; rep++) {
                fill_quant_input(x, N, pattern);
                quantize_row_q8_0(x, want, N);
                levels[li]->quantize_row[GGML_TYPE_Q8_0](x, got, N);
                if (memcmp(want, got, N / 32 * 34))
                    fail_msg("%s Q8_0 pattern %d differs", levels[li]->name, pattern);
                quantize_row_q8_K(x, want, N);
                levels[li]->quantize_row[GGML_TYPE_Q8_K](x, got, N);
                if (memcmp(want, got, N / 256 * 292))
                    fail_msg("%s Q8_K pattern %d differs", levels[li]->name, pattern);
            }
    free(got);
    free(want);
    free(x);
}

/* ---- matmul ----------------------------------------------------------------------- */

typedef struct mm_case {
    uint32_t type;
    int64_t n_cols, n_rows;
    int32_t n_tok;
    uint8_t *w;                  /* [n_rows][row_bytes] */
    tensor_view view;
    float *x;                    /* [n_tok][n_cols] */
} mm_case;

static mm_case mm_make(uint32_t type, int64_t n_cols, int64_t n_rows, int32_t n_tok)
{
    mm_case c = {type, n_cols, n_rows, n_tok, random_weights(type, n_cols, n_rows), {0}, NULL};
    const tensor_type_traits *tt = tensor_type_get(type);
    c.view = (tensor_view){type, n_cols, n_rows,
                           (size_t)(n_cols / tt->block_elems) * tt->block_bytes, c.w, "simd"};
    c.x = xalloc(sizeof(float) * (size_t)(n_cols * n_tok));
    fill_uniform(c.x, n_cols * n_tok, -1, 1);
    if (n_tok > 2) {   /* one token of zeros, one with an outlier */
        memset(c.x + n_cols, 0, sizeof(float) * (size_t)n_cols);
        c.x[2 * n_cols + n_cols / 2] = -40.0f;
    }
    return c;
}

static void mm_free(mm_case *c)
{
    free(c->w);
    free(c->x);
}

/* y = x W^T through one table's kernel directly, over rows [r0, r1) for tokens
 * [t0, t0 + nt), x quantized by the table's own quantizer as the op does. */
static void mm_run_part(const cpu_kernels *k, const mm_case *c, int32_t t0, int32_t nt,
                        int64_t r0, int64_t r1, float *y /* [nt][n_rows] */)
{
    const matmul_kernel *mk = &k->matmul[c->type];
    assert_non_null(mk->rows);
    matmul_input in = {c->x + (size_t)t0 * (size_t)c->n_cols, nt, c->n_cols, mk->vec_type, NULL, 0,
                       false};
    void *xq = NULL;
    if (mk->vec_type != GGML_TYPE_F32) {
        const tensor_type_traits *vt = tensor_type_get(mk->vec_type);
        in.xq_row_bytes = (size_t)(c->n_cols / vt->block_elems) * vt->block_bytes;
        xq = xalloc(in.xq_row_bytes * (size_t)nt);
        for (int32_t t = 0; t < nt; t++)
            k->quantize_row[mk->vec_type](in.x + (size_t)t * (size_t)c->n_cols,
                                          (uint8_t *)xq + (size_t)t * in.xq_row_bytes, c->n_cols);
        in.xq = xq;
    }
    int64_t floats = k->matmul_scratch[c->type] ? k->matmul_scratch[c->type](&c->view, nt)
                                                : c->n_cols;
    float *scratch = xalloc(sizeof(float) * (size_t)floats);
    mk->rows(&c->view, &in, y, r0, r1, scratch);
    free(scratch);
    free(xq);
}

static float *mm_run(const cpu_kernels *k, const mm_case *c)
{
    float *y = xalloc(sizeof(float) * (size_t)(c->n_rows * c->n_tok));
    mm_run_part(k, c, 0, c->n_tok, 0, c->n_rows, y);
    return y;
}

/* The integer-then-float definition of cpu_simd.h, written plainly from the block
 * layouts, for one weight row and one quantized token row. *mag gets sum |term| of
 * the float steps (for the rounding bound below). */
static float canonical_dot(uint32_t type, const uint8_t *row, const uint8_t *xq, int64_t n_cols,
                           double *mag)
{
    float acc = 0.0f;
    *mag = 0;
    if (type == GGML_TYPE_Q8_0 || type == GGML_TYPE_Q4_0) {
        for (int64_t b = 0; b < n_cols / 32; b++) {
            const uint8_t *wb = row + b * (type == GGML_TYPE_Q8_0 ? 34 : 18);
            const uint8_t *xb = xq + b * 34;
            int32_t isum = 0;
            for (int i = 0; i < 32; i++) {
                int w = type == GGML_TYPE_Q8_0 ? (int8_t)wb[2 + i]
                        : i < 16 ? (wb[2 + i] & 15) - 8 : (wb[2 + i - 16] >> 4) - 8;
                isum += w * (int8_t)xb[2 + i];
            }
            float dd = get_f16(wb) * get_f16(xb);
            acc = fmaf(dd, (float)isum, acc);
            *mag += fabs((double)dd * isum);
        }
        return acc;
    }
    for (int64_t b = 0; b < n_cols / 256; b++) {
        const uint8_t *xb = xq + b * 292;
        float dx;
        memcpy(&dx, xb, 4);
        const int8_t *xs = (const int8_t *)(xb + 4);
        int16_t bs[16];
        memcpy(bs, xb + 260, sizeof bs);
        if (type == GGML_TYPE_Q4_K) {
            const uint8_t *wb = row + b * 144, *s = wb + 4;
            int32_t isum = 0, imin = 0;
            for (int j = 0; j < 8; j++) {
                int sc = j < 4 ? s[j] & 63 : (s[j + 4] & 15) | (s[j - 4] >> 6) << 4;
                int m = j < 4 ? s[j + 4] & 63 : (s[j + 4] >> 4) | (s[j] >> 6) << 4;
                int32_t dot = 0;
                for (int l = 0; l < 32; l++) {
                    uint8_t byte = wb[16 + 32 * (j / 2) + l];
                    dot += ((j & 1) ? byte >> 4 : byte & 15) * xs[32 * j + l];
                }
                isum += sc * dot;
                imin += m * (bs[2 * j] + bs[2 * j + 1]);
            }
            float d = get_f16(wb), dmin = get_f16(wb + 2);
            acc = fmaf(d * dx, (float)isum, acc);
            acc = fmaf(-(dmin * dx), (float)imin, acc);
            *mag += fabs((double)d * dx * isum) + fabs((double)dmin * dx * imin);
        } else {
            const uint8_t *wb = row + b * 210;
            const int8_t *sc = (const int8_t *)(wb + 192);
            int32_t isum = 0;
            for (int e = 0; e < 256; e++) {
                int h = e / 128, l = e % 32, quarter = (e % 128) / 32;
                uint8_t ql = wb[64 * h + 32 * (quarter & 1) + l];
                int lo = quarter < 2 ? ql & 15 : ql >> 4;
                int hi = (wb[128 + 32 * h + l] >> (2 * quarter)) & 3;
                isum += sc[e / 16] * ((lo | hi << 4) - 32) * xs[e];
            }
            float d = get_f16(wb + 208);
            acc = fmaf(d * dx, (float)isum, acc);
            *mag += fabs((double)d * dx * isum);
        }
    }
    return acc;
}

/* Checks one table on one case:
 *  - F32/F16/BF16: the same bits as the scalar kernel (dot_f32's order, cpu_simd.h).
 *  - quantized: the same bits as canonical_dot on the reference quantizer's bytes,
 *    and |y - sum w x| (float64, exact weights and x) within
 *        sum_b e_b * sum_{i in b} |w_i|  +  (n_steps + 3) * 2^-24 * mag
 *    The first term is x's int8 rounding, which is what moves these results away from
 *    the scalar kernel: per element, |x - dx q| <= e_b with, for Q8_0 (d = amax / 127,
 *    q = round(x / d), dx = d rounded to half), 0.5 d + 127 d 2^-11 + (float slack) <=
 *    0.5625 d (dx a normal half: amax >= 127 * 2^-14), and for Q8_K (q = rint(x * iscale),
 *    dx = 1 / iscale in float; the product's rounding is <= 127 * 2^-24) 0.5 |dx| (1 + 2^-15). It
 *    scales with the block's largest |x| (amax / 254 at best), not with |x_i|, so no
 *    bound relative to sum |w x| alone holds: a block with one outlier rounds all its
 *    small entries to 0. For uniform x in [-1, 1] it is <= 0.0044 sum |w|, about 0.9% of
 *    sum |w x|; the real error is a random walk, typically 10-30x below that.
 *    The second term is the float steps: each block's product and FMA round once
 *    (2^-24 of the running sum, which is at most mag), n_steps = blocks (x2 for Q4_K),
 *    +3 for the int-to-float conversion above 2^24 and the product d * dx. */
static void check_level_matmul(const cpu_kernels *k, const mm_case *c, const float *y)
{
    const uint32_t type = c->type;
    if (type == GGML_TYPE_F32 || type == GGML_TYPE_F16 || type == GGML_TYPE_BF16) {
        float *want = mm_run(&cpu_kernels_scalar, c);
        for (int64_t i = 0; i < c->n_rows * c->n_tok; i++)
            if (bits_of(y[i]) != bits_of(want[i]))
                fail_msg("%s %s %lldx%lld n_tok %d: y[%lld] = %.9g, scalar %.9g", k->name,
                         tensor_type_name(type), (long long)c->n_rows, (long long)c->n_cols,
                         (int)c->n_tok, (long long)i, (double)y[i], (double)want[i]);
        free(want);
        return;
    }
    const bool q80 = type == GGML_TYPE_Q8_0 || type == GGML_TYPE_Q4_0;
    const int64_t blk = q80 ? 32 : 256, bbx = q80 ? 34 : 292, nb = c->n_cols / blk;
    uint8_t *xq = xalloc((size_t)(nb * bbx));
    float *wf = xalloc(sizeof(float) * (size_t)c->n_cols);
    double *xerr = xalloc(sizeof(double) * (size_t)c->n_cols);
    double *ebound = xalloc(sizeof(double) * (size_t)nb);
    for (int32_t t = 0; t < c->n_tok; t++) {
        const float *x = c->x + (size_t)t * (size_t)c->n_cols;
        (q80 ? quantize_row_q8_0 : quantize_row_q8_K)(x, xq, c->n_cols);
        for (int64_t b = 0; b < nb; b++) {
            const uint8_t *xb = xq + b * bbx;
            float dx;
            if (q80) {
                dx = get_f16(xb);
                float amax = 0;
                for (int i = 0; i < 32; i++)
                    amax = fmaxf(amax, fabsf(x[b * 32 + i]));
                ebound[b] = 0.5625 * amax / 127.0;
            } else {
                memcpy(&dx, xb, 4);
                ebound[b] = 0.5 * fabs((double)dx) * (1 + 0x1p-15);
            }
            for (int i = 0; i < blk; i++) {
                int8_t q = (int8_t)xb[(q80 ? 2 : 4) + i];
                xerr[b * blk + i] = fabs((double)x[b * blk + i] - (double)dx * q);
                if (xerr[b * blk + i] > ebound[b])   /* the quantizer keeps its bound */
                    fail_msg("x[%lld] rounds by %.3g > %.3g", (long long)(b * blk + i),
                             xerr[b * blk + i], ebound[b]);
            }
        }
        for (int64_t r = 0; r < c->n_rows; r++) {
            const uint8_t *row = c->w + (size_t)r * c->view.row_bytes;
            double mag;
            float want = canonical_dot(type, row, xq, c->n_cols, &mag);
            float got = y[(size_t)t * (size_t)c->n_rows + (size_t)r];
            /* Bits, except that a zero may carry either sign: valgrind's emulation of
             * FMA gives -0 for fma(-0, 0, +0) (an all-zero token's Q4_K mins term). */
            if (bits_of(got) != bits_of(want) && !(got == 0.0f && want == 0.0f))
                fail_msg("%s %s %lldx%lld n_tok %d: y[%d][%lld] = %.9g, definition %.9g",
                         k->name, tensor_type_name(type), (long long)c->n_rows,
                         (long long)c->n_cols, (int)c->n_tok, (int)t, (long long)r,
                         (double)got, (double)want);
            assert_int_equal(dequantize_row(type, row, wf, c->n_cols), LMRT_OK);
            double exact = 0, quant = 0;
            for (int64_t b = 0; b < nb; b++)
                for (int i = 0; i < blk; i++) {
                    exact += (double)wf[b * blk + i] * x[b * blk + i];
                    quant += fabs((double)wf[b * blk + i]) * ebound[b];
                }
            double steps = (double)(type == GGML_TYPE_Q4_K ? 2 * nb : nb) + 3;
            double tol = quant + steps * 0x1p-24 * mag + 1e-30;
            if (fabs(got - exact) > tol)
                fail_msg("%s %s: y[%d][%lld] = %.9g, exact %.9g, tolerance %.3g", k->name,
                         tensor_type_name(type), (int)t, (long long)r, (double)got, exact, tol);
        }
    }
    free(ebound);
    free(xerr);
    free(wf);
    free(xq);
}

/* The contract of cpu_ops.h: y[t][r] the same bits for any rows [r0, r1), any token
 * count (each token alone gives what it gets in the batch) and so any thread split. */
static void check_contract(const cpu_kernels *k, const mm_case *c, const float *y)
{
    const size_t nr = (size_t)c->n_rows;
    float *part = xalloc(sizeof(float) * nr * (size_t)c->n_tok);
    static const int64_t cuts[] = {1, 5, 16, 17, 31};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        if (cuts[i] >= c->n_rows)
            continue;
        memset(part, 0xff, sizeof(float) * nr * (size_t)c->n_tok);
        mm_run_part(k, c, 0, c->n_tok, 0, cuts[i], part);
        mm_run_part(k, c, 0, c->n_tok, cuts[i], c->n_rows, part);
        if (memcmp(part, y, sizeof(float) * nr * (size_t)c->n_tok))
            fail_msg("%s %s: rows split at %lld differ", k->name, tensor_type_name(c->type),
                     (long long)cuts[i]);
    }
    for (int32_t t = 0; t < c->n_tok; t++) {
        mm_run_part(k, c, t, 1, 0, c->n_rows, part);
        if (memcmp(part, y + (size_t)t * nr, sizeof(float) * nr))
            fail_msg("%s %s: token %d alone differs from the batch of %d", k->name,
                     tensor_type_name(c->type), (int)t, (int)c->n_tok);
    }
    free(part);
}

static void matmul_matches_reference_and_keeps_the_contract(void **state)
{
    (void)state;
    rng_seed(12);
    static const int64_t rows[] = {1, 7, 33};
    static const int32_t toks[] = {1, 3, 17};
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        const uint32_t type = all_types[ti];
        const int64_t blk = tensor_type_get(type)->block_elems;
        /* One block, three, and 2048 + one block (plain types: lengths off the 8 grid). */
        const int64_t cols[3] = {blk == 1 ? 37 : blk, blk == 1 ? 301 : 3 * blk,
                                 blk == 1 ? 2051 : 2048 + blk};
        for (int ci = 0; ci < 3; ci++)
            for (int ri = 0; ri < 3; ri++)
                for (int ki = 0; ki < 3; ki++) {
                    mm_case c = mm_make(type, cols[ci], rows[ri], toks[ki]);
                    float *first = NULL;
                    for (int li = 0; li < n_levels; li++) {
                        float *y = mm_run(levels[li], &c);
                        check_level_matmul(levels[li], &c, y);
                        if (ci < 2 || ki == 2)
                            check_contract(levels[li], &c, y);
                        /* Every level computes the same definition: the same bits. */
                        if (first && memcmp(first, y, sizeof(float) * (size_t)(c.n_rows * c.n_tok)))
                            fail_msg("%s and %s differ on %s", levels[0]->name,
                                     levels[li]->name, tensor_type_name(type));
                        if (!first)
                            first = y;
                        else
                            free(y);
                    }
                    free(first);
                    mm_free(&c);
                }
    }
}

/* Prompt-sized batches: 16-token AMX tiles with a VNNI tail (n_tok 35 = 2 * 16 + 3),
 * a short last panel (rows 40 = 2 * 16 + 8), all equal to token-by-token. */
static void prompt_batches_equal_token_by_token(void **state)
{
    (void)state;
    rng_seed(13);
    static const uint32_t types[] = {GGML_TYPE_Q8_0, GGML_TYPE_Q4_0, GGML_TYPE_Q4_K,
                                     GGML_TYPE_Q6_K, GGML_TYPE_F16};
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        mm_case c = mm_make(types[ti], 512, 40, 35);
        for (int li = 0; li < n_levels; li++) {
            float *y = mm_run(levels[li], &c);
            check_contract(levels[li], &c, y);
            check_level_matmul(levels[li], &c, y);
            free(y);
        }
        mm_free(&c);
    }
}

/* ---- weights repacked at bind time (cpu_repack.c) ---------------------------------- */

/* The packed kernel of level k on c's weight, bound in a context that uses k, over panels
 * [p0, p1) and tokens [t0, t0 + nt); y: [nt][n_rows]. */
static void packed_run_part(const cpu_kernels *k, const cpu_packed *pk, const mm_case *c,
                            int32_t t0, int32_t nt, int64_t p0, int64_t p1, float *y)
{
    const uint32_t vec = k->matmul[c->type].vec_type;   /* Q8_0, or Q8_K for Q4_K/Q6_K */
    const tensor_type_traits *vt = tensor_type_get(vec);
    matmul_input in = {c->x + (size_t)t0 * (size_t)c->n_cols, nt, c->n_cols, vec, NULL,
                       (size_t)(c->n_cols / vt->block_elems) * vt->block_bytes, false};
    uint8_t *xq = xalloc(in.xq_row_bytes * (size_t)nt);
    for (int32_t t = 0; t < nt; t++)
        k->quantize_row[vec](in.x + (size_t)t * (size_t)c->n_cols,
                             xq + (size_t)t * in.xq_row_bytes, c->n_cols);
    in.xq = xq;
    float *scratch = xalloc(sizeof(float) * (size_t)k->matmul_scratch[c->type](&c->view, nt));
    k->matmul_packed[c->type](pk, &in, y, p0, p1, p1, scratch);
    free(scratch);
    free(xq);
}

/* Every level with packed kernels: the same bits as its kernel on the mapping, for any
 * panel split and token subset; rows back from the panels (get_rows) are the file's;
 * two binds share one copy, and the last unbind drops it. */
static void packed_weights_give_the_same_bits(void **state)
{
    (void)state;
    rng_seed(15);
    static const uint32_t types[] = {GGML_TYPE_Q8_0, GGML_TYPE_Q4_0, GGML_TYPE_Q4_K, GGML_TYPE_Q6_K};
    static const int64_t rows[] = {1, 16, 40, 67};
    static const int64_t cols[] = {1, 3, 65};   /* blocks: 32 or 256 columns each */
    static const int32_t toks[] = {1, 5, 35};
    int ran = 0;
    for (int li = 0; li < n_levels; li++) {
        const cpu_kernels *k = levels[li];
        for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
            if (!k->matmul_packed[types[ti]])
                continue;
            const int64_t blk = tensor_type_get(types[ti])->block_elems;
            for (size_t ri = 0; ri < 4; ri++)
                for (size_t ci = 0; ci < 3; ci++)
                    for (size_t ki = 0; ki < 3; ki++) {
                        mm_case c = mm_make(types[ti], blk * cols[ci], rows[ri], toks[ki]);
                        backend_ctx *ctx = NULL;
                        assert_int_equal(cpu_ctx_create(0, 2, &ctx), LMRT_OK);
                        ctx->k = k;
                        tensor_view w, w2;
                        assert_int_equal(cpu_bind_weight(ctx, &c.view, &w), LMRT_OK);
                        assert_int_equal(cpu_bind_weight(ctx, &c.view, &w2), LMRT_OK);
                        assert_int_equal(ctx->n_packed, 1);
                        const cpu_packed *pk = cpu_pack_find(ctx, &w);
                        assert_non_null(pk);
                        assert_int_equal(pk->refs, 2);
                        float *want = mm_run(k, &c);
                        const size_t nr = (size_t)c.n_rows, n = nr * (size_t)c.n_tok;
                        float *y = xalloc(sizeof(float) * n);
                        for (int64_t cut = 0; cut < pk->n_panels; cut++) {
                            memset(y, 0xff, sizeof(float) * n);
                            packed_run_part(k, pk, &c, 0, c.n_tok, 0, cut, y);
                            packed_run_part(k, pk, &c, 0, c.n_tok, cut, pk->n_panels, y);
                            if (memcmp(y, want, sizeof(float) * n))
                                fail_msg("%s packed %s %lldx%lld n_tok %d split at panel %lld "
                                         "differs", k->name, tensor_type_name(c.type),
                                         (long long)c.n_rows, (long long)c.n_cols, (int)c.n_tok,
                                         (long long)cut);
                        }
                        for (int32_t t = 0; t < c.n_tok; t += 4) {
                            packed_run_part(k, pk, &c, t, 1, 0, pk->n_panels, y);
                            assert_memory_equal(y, want + (size_t)t * nr, sizeof(float) * nr);
                        }
                        /* the op: the packed copy, through the thread pool */
                        assert_int_equal(cpu_matmul(ctx, &w, c.x, c.n_tok, y), LMRT_OK);
                        assert_memory_equal(y, want, sizeof(float) * n);
                        /* get_rows reads the panels: the rows of the file */
                        int32_t ids[3] = {0, (int32_t)(c.n_rows - 1), (int32_t)(c.n_rows / 2)};
                        float *got = xalloc(sizeof(float) * 3 * (size_t)c.n_cols);
                        float *ref = xalloc(sizeof(float) * (size_t)c.n_cols);
                        assert_int_equal(cpu_get_rows(ctx, &w, ids, 3, got), LMRT_OK);
                        for (int i = 0; i < 3; i++) {
                            assert_int_equal(dequantize_row(c.type, c.w + (size_t)ids[i] *
                                                            c.view.row_bytes, ref, c.n_cols),
                                             LMRT_OK);
                            assert_memory_equal(got + (size_t)i * (size_t)c.n_cols, ref,
                                                sizeof(float) * (size_t)c.n_cols);
                        }
                        cpu_unbind_weight(ctx, &w2);
                        assert_int_equal(ctx->n_packed, 1);
                        cpu_unbind_weight(ctx, &w);
                        assert_int_equal(ctx->n_packed, 0);
                        assert_null(cpu_pack_find(ctx, &w));
                        cpu_ctx_free(ctx);
                        free(ref);
                        free(got);
                        free(y);
                        free(want);
                        mm_free(&c);
                        ran++;
                    }
        }
    }
    if (!ran)
        print_message("packed weights: no level with packed kernels on this CPU\n");
}

/* Two contexts binding the same weight read one packed copy; each keeps working when
 * the other unbinds or is freed first, and the copy goes with the last hold. A
 * different view (other bytes) gets a copy of its own. */
static void contexts_share_one_packed_copy(void **state)
{
    (void)state;
    rng_seed(16);
    const cpu_kernels *k = NULL;
    for (int li = 0; li < n_levels; li++)
        if (levels[li]->matmul_packed[GGML_TYPE_Q4_0])
            k = levels[li];
    if (!k) {
        print_message("shared packed copies: no level with packed kernels on this CPU\n");
        return;
    }
    const int32_t before = cpu_pack_shared_count();
    for (int order = 0; order < 2; order++) {
        mm_case c = mm_make(GGML_TYPE_Q4_0, 96, 40, 3), d = mm_make(GGML_TYPE_Q4_0, 96, 40, 3);
        backend_ctx *a = NULL, *b = NULL;
        assert_int_equal(cpu_ctx_create(0, 2, &a), LMRT_OK);
        assert_int_equal(cpu_ctx_create(0, 1, &b), LMRT_OK);
        a->k = b->k = k;
        tensor_view wa, wb, wd;
        assert_int_equal(cpu_bind_weight(a, &c.view, &wa), LMRT_OK);
        assert_int_equal(cpu_bind_weight(b, &c.view, &wb), LMRT_OK);
        const cpu_packed *pa = cpu_pack_find(a, &wa), *pb = cpu_pack_find(b, &wb);
        assert_non_null(pa);
        assert_non_null(pb);
        assert_ptr_equal(pa->data, pb->data);
        assert_int_equal(cpu_pack_shared_count(), before + 1);
        assert_int_equal(cpu_bind_weight(b, &d.view, &wd), LMRT_OK);
        assert_ptr_not_equal(cpu_pack_find(b, &wd)->data, pa->data);
        assert_int_equal(cpu_pack_shared_count(), before + 2);
        float *want = mm_run(k, &c);
        const size_t n = (size_t)c.n_rows * (size_t)c.n_tok;
        float *y = xalloc(sizeof(float) * n);
        backend_ctx *first = order ? b : a, *second = order ? a : b;
        tensor_view *w_first = order ? &wb : &wa, *w_second = order ? &wa : &wb;
        cpu_unbind_weight(first, w_first);
        assert_null(cpu_pack_find(first, w_first));
        assert_int_equal(cpu_pack_shared_count(), before + 2);   /* the other still holds it */
        assert_int_equal(cpu_matmul(second, w_second, c.x, c.n_tok, y), LMRT_OK);
        assert_memory_equal(y, want, sizeof(float) * n);
        assert_int_equal(cpu_matmul(first, w_first, c.x, c.n_tok, y), LMRT_OK);   /* file layout */
        assert_memory_equal(y, want, sizeof(float) * n);
        cpu_ctx_free(second);   /* without unbinding: ctx_free lets go of its holds */
        assert_int_equal(cpu_pack_shared_count(), order ? before + 1 : before);
        cpu_ctx_free(first);
        assert_int_equal(cpu_pack_shared_count(), before);
        free(y);
        free(want);
        mm_free(&d);
        mm_free(&c);
    }
}

/* matmul_n: each output the bits matmul gives its weight alone, fused (every weight with
 * a packed copy for one kernel: Q8_0 with Q4_0, Q4_K with Q6_K) or one product after
 * another (a set whose kernels differ), for 1 and 35 tokens on 1-3 threads, at every
 * level; bad lists are refused. */
static void matmul_n_gives_each_weight_its_matmul_bits(void **state)
{
    (void)state;
    rng_seed(17);
    static const uint32_t sets[][3] = {
        {GGML_TYPE_Q4_0, GGML_TYPE_Q4_0, GGML_TYPE_Q4_0},
        {GGML_TYPE_Q8_0, GGML_TYPE_Q4_0, GGML_TYPE_Q8_0},
        {GGML_TYPE_Q4_K, GGML_TYPE_Q6_K, GGML_TYPE_Q4_K},   /* a Q4_K_M layer's q, k, v */
        {GGML_TYPE_Q4_0, GGML_TYPE_Q4_K, GGML_TYPE_F16},    /* kernels differ: in turn */
    };
    static const int64_t rows[3] = {40, 16, 67};   /* 256 columns: whole blocks of each */
    static const int32_t toks[] = {1, 35};
    for (size_t si = 0; si < sizeof sets / sizeof sets[0]; si++)
        for (size_t ki = 0; ki < 2; ki++) {
            mm_case c[3];
            for (int i = 0; i < 3; i++)
                c[i] = mm_make(sets[si][i], 256, rows[i], toks[ki]);
            const int32_t n_tok = toks[ki];
            for (int li = 0; li < n_levels; li++)
                for (int32_t n_threads = 1; n_threads <= 3; n_threads++) {
                    backend_ctx *ctx = NULL;
                    assert_int_equal(cpu_ctx_create(0, n_threads, &ctx), LMRT_OK);
                    ctx->k = levels[li];
                    tensor_view w[3];
                    const tensor_view *ws[3] = {&w[0], &w[1], &w[2]};
                    float *want[3], *y[3];
                    for (int i = 0; i < 3; i++) {
                        assert_int_equal(cpu_bind_weight(ctx, &c[i].view, &w[i]), LMRT_OK);
                        const size_t n = (size_t)rows[i] * (size_t)n_tok;
                        want[i] = xalloc(sizeof(float) * n);
                        y[i] = xalloc(sizeof(float) * n);
                        assert_int_equal(cpu_matmul(ctx, &w[i], c[0].x, n_tok, want[i]),
                                         LMRT_OK);
                    }
                    for (int32_t n_w = 1; n_w <= 3; n_w++) {
                        for (int i = 0; i < 3; i++)
                            memset(y[i], 0xff, sizeof(float) * (size_t)rows[i] * (size_t)n_tok);
                        assert_int_equal(cpu_matmul_n(ctx, ws, n_w, c[0].x, n_tok, y), LMRT_OK);
                        for (int i = 0; i < 3; i++) {
                            const size_t bytes = sizeof(float) * (size_t)rows[i] * (size_t)n_tok;
                            if (i < n_w && memcmp(y[i], want[i], bytes))
                                fail_msg("%s matmul_n set %zu n_tok %d, %d threads: output %d "
                                         "differs", levels[li]->name, si, (int)n_tok,
                                         (int)n_threads, i);
                            if (i >= n_w)   /* outputs past n_w untouched */
                                assert_int_equal(((uint32_t *)(void *)y[i])[0], 0xffffffffu);
                        }
                    }
                    for (int i = 0; i < 3; i++) {
                        cpu_unbind_weight(ctx, &w[i]);
                        free(want[i]);
                        free(y[i]);
                    }
                    cpu_ctx_free(ctx);
                }
            for (int i = 0; i < 3; i++)
                mm_free(&c[i]);
        }

    /* Refused: no weights, too many, NULL lists, inputs of different widths. */
    mm_case a = mm_make(GGML_TYPE_Q4_0, 64, 16, 2), b = mm_make(GGML_TYPE_Q4_0, 96, 16, 2);
    backend_ctx *ctx = NULL;
    assert_int_equal(cpu_ctx_create(0, 2, &ctx), LMRT_OK);
    tensor_view wa, wb;
    assert_int_equal(cpu_bind_weight(ctx, &a.view, &wa), LMRT_OK);
    assert_int_equal(cpu_bind_weight(ctx, &b.view, &wb), LMRT_OK);
    float *ya = xalloc(sizeof(float) * 32), *yb = xalloc(sizeof(float) * 32);
    const tensor_view *five[5] = {&wa, &wa, &wa, &wa, &wa}, *mixed[2] = {&wa, &wb};
    float *ys[5] = {ya, ya, ya, ya, ya};
    assert_int_equal(cpu_matmul_n(ctx, five, 0, a.x, 2, ys), LMRT_E_INVALID_ARG);
    assert_int_equal(cpu_matmul_n(ctx, five, 5, a.x, 2, ys), LMRT_E_INVALID_ARG);
    assert_int_equal(cpu_matmul_n(ctx, NULL, 1, a.x, 2, ys), LMRT_E_INVALID_ARG);
    assert_int_equal(cpu_matmul_n(ctx, five, 1, a.x, 2, NULL), LMRT_E_INVALID_ARG);
    assert_int_equal(cpu_matmul_n(NULL, five, 1, a.x, 2, ys), LMRT_E_INVALID_ARG);
    float *yab[2] = {ya, yb};
    assert_int_equal(cpu_matmul_n(ctx, mixed, 2, a.x, 2, yab), LMRT_E_INVALID_ARG);
    assert_non_null(strstr(lmrt_last_error(), "columns"));
    assert_int_equal(cpu_matmul_n(ctx, five, 2, a.x, 0, ys), LMRT_OK);   /* no tokens */
    assert_ptr_equal(cpu_backend.matmul_n, cpu_matmul_n);
    cpu_unbind_weight(ctx, &wb);
    cpu_unbind_weight(ctx, &wa);
    cpu_ctx_free(ctx);
    free(yb);
    free(ya);
    mm_free(&b);
    mm_free(&a);
}

/* ---- the op path: scratch sizing, quantization and threads ---------------------- */

static void ops_give_the_same_bits_for_1_2_3_threads(void **state)
{
    (void)state;
    rng_seed(14);
    const backend_vtable *B = &cpu_backend;
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        const int64_t blk = tensor_type_get(all_types[ti])->block_elems;
        mm_case c = mm_make(all_types[ti], blk == 1 ? 2048 + 8 : 2048 + blk, 45, 37);
        float *ref = NULL;
        for (int32_t n_threads = 1; n_threads <= 3; n_threads++) {
            backend_ctx *ctx = NULL;
            assert_int_equal(B->ctx_create(0, n_threads, &ctx), LMRT_OK);
            tensor_view w;
            assert_int_equal(B->bind_weight(ctx, &c.view, &w), LMRT_OK);
            float *y = xalloc(sizeof(float) * 45 * 37);
            assert_int_equal(B->matmul(ctx, &w, c.x, c.n_tok, y), LMRT_OK);
            if (!ref) {
                ref = y;
                const cpu_kernels *k = cpu_kernels_for(cpu_features_get()->level);
                float *direct = mm_run(k, &c);   /* the op is the default table's kernel */
                assert_memory_equal(direct, ref, sizeof(float) * 45 * 37);
                free(direct);
            } else {
                assert_memory_equal(ref, y, sizeof(float) * 45 * 37);
                free(y);
            }
            B->unbind_weight(ctx, &w);
            B->ctx_free(ctx);
        }
        free(ref);
        mm_free(&c);
    }
}

/* ---- attention -------------------------------------------------------------------- */

typedef struct attn_case {
    attention_params p;
    float *q, *k, *v;
} attn_case;

static attn_case attn_make(int n_tok, int n_past, int n_head, int n_head_kv, int head_dim)
{
    attn_case c;
    const int pad = 3;   /* cache rows wider than the heads, padding NaN */
    c.p = (attention_params){n_tok, n_past, n_head, n_head_kv, head_dim,
                             n_head_kv * head_dim + pad, 1.0f / sqrtf((float)head_dim)};
    size_t nq = (size_t)n_tok * n_head * head_dim, nkv = (size_t)(n_past + n_tok) * c.p.kv_stride;
    c.q = xalloc(nq * sizeof(float));
    c.k = xalloc(nkv * sizeof(float));
    c.v = xalloc(nkv * sizeof(float));
    fill_uniform(c.q, (int64_t)nq, -2, 2);
    fill_uniform(c.k, (int64_t)nkv, -2, 2);
    fill_uniform(c.v, (int64_t)nkv, -1, 1);
    for (size_t j = 0; j < (size_t)(n_past + n_tok); j++)
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

static float *attn_run(const cpu_kernels *k, const attn_case *c)
{
    const attention_params *p = &c->p;
    float *out = xalloc(sizeof(float) * (size_t)p->n_tok * p->n_head * p->head_dim);
    float *scratch = xalloc(sizeof(float) * (size_t)(p->n_past + p->n_tok));
    for (int t = 0; t < p->n_tok; t++)
        for (int h = 0; h < p->n_head; h++)
            k->attention(p, c->q, c->k, c->v, out, t, h, scratch);
    free(scratch);
    return out;
}

/* Against causal GQA in double. Tolerance as in test_kernels.c: each score carries the
 * float dot error (head_dim/8 + 4) * 2^-24 * scale * sum|q k| (the SIMD dot's FMA chains
 * of head_dim/16 plus a 4-level tree are within that), which moves a softmax weight by
 * twice that relative amount; exp (1.3 ulps here), the online rescaling (one rounding
 * per growth of the max, and the same factor on the sum and the output, so its own
 * error cancels), the float sum of n_kv weights and the output scaling stay within
 * (n_kv + 4) * 2^-24 of max|v| = 1. Four times the sum. */
static void attn_check(const char *name, const attn_case *c, const float *out)
{
    const attention_params *p = &c->p;
    int group = p->n_head / p->n_head_kv;
    double *s = xalloc(sizeof(double) * (size_t)(p->n_past + p->n_tok));
    for (int t = 0; t < p->n_tok; t++)
        for (int h = 0; h < p->n_head; h++) {
            int kvh = h / group, n_kv = p->n_past + t + 1;
            const float *q = c->q + ((size_t)t * p->n_head + h) * p->head_dim;
            double max = -INFINITY, sum = 0, mag = 0;
            for (int j = 0; j < n_kv; j++) {
                const float *kk = c->k + (size_t)j * p->kv_stride + kvh * p->head_dim;
                double d = 0, m = 0;
                for (int i = 0; i < p->head_dim; i++) {
                    d += (double)q[i] * kk[i];
                    m += fabs((double)q[i] * kk[i]);
                }
                s[j] = d * p->scale;
                mag = fmax(mag, m * p->scale);
                max = fmax(max, s[j]);
            }
            for (int j = 0; j < n_kv; j++)
                sum += (s[j] = exp(s[j] - max));
            double ds = (p->head_dim / 8 + 4) * 0x1p-24 * mag;
            double tol = 4 * (2 * ds + (n_kv + 4) * 0x1p-24);
            for (int i = 0; i < p->head_dim; i++) {
                double want = 0;
                for (int j = 0; j < n_kv; j++)
                    want += s[j] * c->v[(size_t)j * p->kv_stride + kvh * p->head_dim + i];
                want /= sum;
                double got = out[((size_t)t * p->n_head + h) * p->head_dim + i];
                if (!(fabs(got - want) <= tol))
                    fail_msg("%s n_past %d hd %d t %d h %d i %d: %.9g, want %.9g (tol %.3g)",
                             name, p->n_past, p->head_dim, t, h, i, got, want, tol);
            }
        }
    free(s);
}

static void attention_matches_reference_for_history_0_to_300_and_gqa(void **state)
{
    (void)state;
    rng_seed(15);
    static const int ratios[] = {1, 2, 4}, dims[] = {64, 8, 20, 128};
    static const int shapes[][2] = {{1, 0}, {3, 0}, {1, 15}, {2, 16}, {5, 40}, {1, 300}, {4, 297}};
    for (int li = 0; li < n_levels; li++)
        for (int di = 0; di < 4; di++)
            for (int ri = 0; ri < 3; ri++)
                for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
                    attn_case c = attn_make(shapes[si][0], shapes[si][1], 2 * ratios[ri], 2,
                                            dims[di]);
                    float *out = attn_run(levels[li], &c);
                    attn_check(levels[li]->name, &c, out);
                    /* Query t of the batch gets what it gets alone at n_past + t. */
                    attn_case one = c;
                    for (int t = 0; t < c.p.n_tok; t++) {
                        one.p.n_tok = 1;
                        one.p.n_past = c.p.n_past + t;
                        one.q = c.q + (size_t)t * c.p.n_head * c.p.head_dim;
                        float *o1 = attn_run(levels[li], &one);
                        assert_memory_equal(o1, out + (size_t)t * c.p.n_head * c.p.head_dim,
                                            sizeof(float) * (size_t)c.p.n_head * c.p.head_dim);
                        free(o1);
                    }
                    free(out);
                    attn_free(&c);
                }
}

/* attention_group (one pass over the cache for up to CPU_ATT_GROUP queries of a kv head)
 * gives each query the bits it gets alone, for any grouping of tokens and heads; and the
 * op, which groups them, gives the same with 1, 2 or 3 threads. */
static void attention_groups_give_each_query_its_bits_alone(void **state)
{
    (void)state;
    rng_seed(17);
    static const int dims[] = {64, 8, 20};
    for (int li = 0; li < n_levels; li++) {
        const cpu_kernels *k = levels[li];
        for (int di = 0; di < 3; di++) {
            attn_case c = attn_make(7, 37, 8, 2, dims[di]);   /* 4 query heads per kv head */
            float *alone = attn_run(k, &c);
            if (k->attention_group) {
                const attention_params *p = &c.p;
                size_t n_out = (size_t)p->n_tok * p->n_head * p->head_dim;
                float *out = xalloc(sizeof(float) * n_out);
                float *scratch = xalloc(sizeof(float) * (size_t)cpu_attention_group_scratch(p->head_dim));
                static const int shapes[][2] = {{1, 1}, {4, 4}, {3, 2}, {4, 1}, {2, 3}};
                for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
                    const int tb = shapes[si][0], hb = shapes[si][1];
                    memset(out, 0xff, sizeof(float) * n_out);
                    for (int hk = 0; hk < p->n_head_kv; hk++)
                        for (int h0 = hk * 4; h0 < hk * 4 + 4; h0 += hb)
                            for (int t0 = 0; t0 < p->n_tok; t0 += tb)
                                k->attention_group(p, c.q, c.k, c.v, out, t0,
                                                   t0 + tb < p->n_tok ? t0 + tb : p->n_tok, h0,
                                                   h0 + hb < hk * 4 + 4 ? h0 + hb : hk * 4 + 4,
                                                   scratch);
                    if (memcmp(out, alone, sizeof(float) * n_out))
                        fail_msg("%s: groups of %d tokens x %d heads differ from one query "
                                 "at a time (head_dim %d)", k->name, tb, hb, p->head_dim);
                }
                free(scratch);
                free(out);
            }
            if (k == cpu_kernels_for(cpu_features_get()->level)) {   /* the op's table */
                for (int32_t n_threads = 1; n_threads <= 3; n_threads++) {
                    backend_ctx *ctx = NULL;
                    assert_int_equal(cpu_backend.ctx_create(0, n_threads, &ctx), LMRT_OK);
                    float *out = xalloc(sizeof(float) * (size_t)c.p.n_tok * c.p.n_head * c.p.head_dim);
                    assert_int_equal(cpu_backend.attention(ctx, &c.p, c.q, c.k, c.v, out), LMRT_OK);
                    assert_memory_equal(out, alone,
                                        sizeof(float) * (size_t)c.p.n_tok * c.p.n_head * c.p.head_dim);
                    free(out);
                    cpu_backend.ctx_free(ctx);
                }
            }
            free(alone);
            attn_free(&c);
        }
    }
}

/* ---- small ops ---------------------------------------------------------------------- */

static void small_ops_match_the_scalar_kernels(void **state)
{
    (void)state;
    rng_seed(16);
    enum { N = 2048 + 13 };
    float *g = xalloc(N * sizeof(float)), *g0 = xalloc(N * sizeof(float));
    float *u = xalloc(N * sizeof(float)), *a = xalloc(N * sizeof(float));
    float *b = xalloc(N * sizeof(float)), *w = xalloc(N * sizeof(float));
    for (int li = 0; li < n_levels; li++) {
        const cpu_kernels *k = levels[li];
        /* silu_mul: within 5 ulps of the double formula, like the scalar kernel's test
         * (e^x within 1.3 ulps, then add, divide, multiply). Below g = -ln(FLT_MAX) =
         * -88.72, e^-g overflows float and the result is -0 (as with expf), where the
         * exact value is under |g u| e^g < 89 * 2 * 2.95e-39: 1e-36 of absolute slack. */
        fill_uniform(g, N, -20, 20);
        fill_uniform(u, N, -2, 2);
        g[0] = -200.0f;   /* e^200 overflows: -0, not NaN */
        g[1] = 200.0f;
        g[2] = -88.8f;    /* e^88.8 just past FLT_MAX */
        g[3] = 0.0f;
        memcpy(g0, g, N * sizeof(float));
        for (int64_t off = 0; off < N; off += 1000)   /* in pieces: the tails agree */
            k->silu_mul(g + off, u + off, N - off < 1000 ? N - off : 1000);
        for (int i = 0; i < N; i++) {
            double want = g0[i] / (1.0 + exp(-(double)g0[i])) * u[i];
            if (!(fabs(g[i] - want) <= 5 * 0x1p-24 * fabs(want) + 1e-36))
                fail_msg("%s silu_mul(%.9g) = %.9g, want %.9g", k->name, (double)g0[i],
                         (double)g[i], want);
        }
        assert_true(g[0] == 0.0f && signbit(g[0]) == signbit(-u[0]));
        /* add: one float addition, exact. */
        fill_uniform(a, N, -1, 1);
        fill_uniform(b, N, -1, 1);
        memcpy(g0, a, N * sizeof(float));
        k->add(a, b, N);
        for (int i = 0; i < N; i++)
            assert_true(a[i] == g0[i] + b[i]);
        /* rmsnorm: the sum of squares in double in another order, so the scale may
         * differ from the scalar kernel's by an ulp; x * scale * w then by 2 ulps. */
        fill_uniform(a, N, -3, 3);
        fill_uniform(w, N, 0.5f, 1.5f);
        for (int n = 1; n <= N; n += n < 40 ? 1 : 511) {
            cpu_kernels_scalar.rmsnorm(a, w, n, 1e-5f, b);
            k->rmsnorm(a, w, n, 1e-5f, g);
            for (int i = 0; i < n; i++)
                if (!(fabs(g[i] - b[i]) <= 2 * 0x1p-24 * fabs(b[i])))
                    fail_msg("%s rmsnorm n %d: y[%d] = %.9g, scalar %.9g", k->name, n, i,
                             (double)g[i], (double)b[i]);
        }
        /* rope: the scalar kernel's operations, the same bits. */
        float ff[32];
        fill_uniform(ff, 32, 1, 8);
        static const int32_t pos[] = {0, 1, 17, 5000, 131071};
        for (int pi = 0; pi < 5; pi++)
            for (int fi = 0; fi < 2; fi++) {
                fill_uniform(a, 4 * 64, -2, 2);
                memcpy(b, a, 4 * 64 * sizeof(float));
                cpu_kernels_scalar.rope(a, 4, 64, 64, pos[pi], 500000.0f, fi ? ff : NULL);
                k->rope(b, 4, 64, 64, pos[pi], 500000.0f, fi ? ff : NULL);
                assert_memory_equal(a, b, 4 * 64 * sizeof(float));
            }
    }
    free(w);
    free(b);
    free(a);
    free(u);
    free(g0);
    free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(quantizers_give_the_reference_bytes),
        cmocka_unit_test(matmul_matches_reference_and_keeps_the_contract),
        cmocka_unit_test(prompt_batches_equal_token_by_token),
        cmocka_unit_test(ops_give_the_same_bits_for_1_2_3_threads),
        cmocka_unit_test(packed_weights_give_the_same_bits),
        cmocka_unit_test(contexts_share_one_packed_copy),
        cmocka_unit_test(matmul_n_gives_each_weight_its_matmul_bits),
        cmocka_unit_test(attention_matches_reference_for_history_0_to_300_and_gqa),
        cmocka_unit_test(attention_groups_give_each_query_its_bits_alone),
        cmocka_unit_test(small_ops_match_the_scalar_kernels),
    };
    return cmocka_run_group_tests(tests, setup_levels, NULL);
}
