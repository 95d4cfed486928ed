/* test_neon.c - the arm64 NEON kernel tables against the scalar reference: byte-exact
 * activation quantizers, float matmuls bit for bit, quantized matmuls bit for bit
 * against their integer definition (backend/cpu/cpu_neon.h) and within a derived bound
 * of the float64 product, the SDOT and widening-multiply tables bit for bit, the
 * batch/row-split contract, the small kernels, and the op path. Built for aarch64
 * only (tests/meson.build); elsewhere it reports itself skipped. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#if defined(__aarch64__)

#include "backend/backend.h"
#include "backend/cpu/cpu_features.h"
#include "backend/cpu/cpu_neon.h"
#include "backend/cpu/cpu_ops.h"
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
    void *p = malloc(bytes ? bytes : 1);
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

/* Random valid rows: random quant bytes, plain values in [-1, 1), small scales. */
static void random_weights(uint32_t type, int64_t n_cols, int64_t n_rows, uint8_t *w)
{
    const tensor_type_traits *tt = tensor_type_get(type);
    int64_t n_blocks = n_cols / tt->block_elems * n_rows;
    size_t bytes = (size_t)n_blocks * tt->block_bytes;
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
        case GGML_TYPE_Q4_K:
            put_f16(blk, rng_uniform(0.0f, 0.01f));
            put_f16(blk + 2, rng_uniform(0.0f, 0.01f));
            break;
        case GGML_TYPE_Q6_K: put_f16(blk + 208, rng_uniform(-0.001f, 0.001f)); break;
        default: fail_msg("random_weights: type %u", (unsigned)type);
        }
    }
}

static const uint32_t all_types[] = {
    GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_BF16, GGML_TYPE_Q8_0,
    GGML_TYPE_Q4_0, GGML_TYPE_Q4_K, GGML_TYPE_Q6_K,
};
#define N_TYPES (sizeof all_types / sizeof all_types[0])

/* The two tables: with SDOT where this CPU has it, and widening multiplies only. */
static const cpu_kernels *const tables[] = {&cpu_kernels_neon, &cpu_kernels_neon_nodot};
#define N_TABLES 2

static int report_cpu(void **state)
{
    (void)state;
    const cpu_features *f = cpu_features_get();
    print_message("CPU %s; SDOT kernels %s\n", cpu_features_describe(f),
                  !cpu_neon_built_with_sdot() ? "not built"
                  : f->neon_dotprod           ? "built and used"
                                              : "built, not used (no dotprod)");
    return 0;
}

static void neon_level_uses_the_neon_table(void **state)
{
    (void)state;
    assert_ptr_equal(cpu_kernels_for(CPU_LEVEL_NEON), &cpu_kernels_neon);
    for (size_t i = 0; i < N_TYPES; i++)
        for (int k = 0; k < N_TABLES; k++)
            assert_non_null(tables[k]->matmul[all_types[i]].rows);
}

/* ---- quantizers ------------------------------------------------------------------- */

/* Inputs that reach every branch: uniform; all zeros; one outlier; values that land on
 * .5 after scaling (ties: away from zero for Q8_0, to even for Q8_K); a negative
 * extreme before an equal positive one (Q8_K keeps the first); tiny values (a
 * subnormal half d); -0 and an inf and a NaN (those blocks go to the reference). */
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
    case 6:
        for (int64_t i = 0; i < n; i += 7)
            x[i] = -0.0f;
        x[40] = INFINITY;
        x[300] = NAN;
        break;
    }
}

static void quantizers_give_the_reference_bytes(void **state)
{
    (void)state;
    rng_seed(21);
    enum { N = 2048 + 256, B0 = N / 32 * 34, BK = N / 256 * 292 };
    float *x = xalloc(N * sizeof(float));
    uint8_t *want = xalloc(B0 + BK), *got = xalloc(B0 + BK);
    for (int k = 0; k < N_TABLES; k++)
        for (int pattern = 0; pattern < 7; pattern++)
            for (int rep = 0; rep < 4; rep++) {
                fill_quant_input(x, N, pattern);
                quantize_row_q8_0(x, want, N);
                tables[k]->quantize_row[GGML_TYPE_Q8_0](x, got, N);
                if (memcmp(want, got, B0))
                    fail_msg("%s Q8_0 pattern %d differs", tables[k]->name, pattern);
                quantize_row_q8_K(x, want, N);
                tables[k]->quantize_row[GGML_TYPE_Q8_K](x, got, N);
                if (memcmp(want, got, BK))
                    fail_msg("%s Q8_K pattern %d differs", tables[k]->name, pattern);
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
    uint8_t *raw;                /* w starts at raw + 1: rows are not even 2-byte aligned */
    tensor_view view;
    float *x;                    /* [n_tok][n_cols] */
} mm_case;

static mm_case mm_make(uint32_t type, int64_t n_cols, int64_t n_rows, int32_t n_tok)
{
    const tensor_type_traits *tt = tensor_type_get(type);
    const size_t row_bytes = (size_t)(n_cols / tt->block_elems) * tt->block_bytes;
    mm_case c = {type, n_cols, n_rows, n_tok, xalloc(row_bytes * (size_t)n_rows + 1), {0}, NULL};
    random_weights(type, n_cols, n_rows, c.raw + 1);
    c.view = (tensor_view){type, n_cols, n_rows, row_bytes, c.raw + 1, "neon"};
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
    free(c->raw);
    free(c->x);
}

/* y = x W^T through a table's kernel directly, rows [r0, r1) and tokens [t0, t0 + nt),
 * x quantized by the table's own quantizer as the op does. */
static void mm_run_part(const cpu_kernels *k, const mm_case *c, int32_t t0, int32_t nt,
                        int64_t r0, int64_t r1, float *y /* [nt][n_rows] */)
{
    const matmul_kernel *mk = &k->matmul[c->type];
    matmul_input in = {c->x + (size_t)t0 * (size_t)c->n_cols, nt, c->n_cols, mk->vec_type,
                       NULL, 0, false};
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
    float *scratch = xalloc(sizeof(float) * (size_t)c->n_cols);   /* what the op gives */
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

/* Element i of a quantized weight row as the integer the kernels multiply by, written
 * from the block layouts of tensor/quant.c. Q4_K: the nibble (its scale and min apart);
 * Q6_K: the 6-bit value - 32. */
static int weight_int(uint32_t type, const uint8_t *row, int64_t i)
{
    if (type == GGML_TYPE_Q8_0)
        return (int8_t)row[i / 32 * 34 + 2 + i % 32];
    if (type == GGML_TYPE_Q4_0) {
        const uint8_t *qs = row + i / 32 * 18 + 2;
        return (i % 32 < 16 ? qs[i % 32] & 15 : qs[i % 32 - 16] >> 4) - 8;
    }
    const int e = (int)(i % 256);
    if (type == GGML_TYPE_Q4_K) {
        uint8_t byte = row[i / 256 * 144 + 16 + 32 * (e / 64) + e % 32];
        return (e % 64) < 32 ? byte & 15 : byte >> 4;
    }
    const uint8_t *b = row + i / 256 * 210;
    const int h = e / 128, l = e % 32, quarter = (e % 128) / 32;
    const uint8_t ql = b[64 * h + 32 * (quarter & 1) + l];
    const int lo = quarter < 2 ? ql & 15 : ql >> 4;
    return (lo | ((b[128 + 32 * h + l] >> (2 * quarter)) & 3) << 4) - 32;
}

/* The definition of cpu_neon.h for one weight row and one quantized token row, from
 * plain loops. *mag: sum |term| of its float steps (for the rounding bound below). */
static float definition_dot(uint32_t type, const uint8_t *row, const uint8_t *xq, int64_t n,
                            double *mag)
{
    float acc = 0.0f;
    *mag = 0;
    if (type == GGML_TYPE_Q8_0 || type == GGML_TYPE_Q4_0) {
        const int64_t bb = type == GGML_TYPE_Q8_0 ? 34 : 18;
        for (int64_t b = 0; b < n / 32; b++) {
            int32_t isum = 0;
            for (int i = 0; i < 32; i++)
                isum += weight_int(type, row, b * 32 + i) * (int8_t)xq[b * 34 + 2 + i];
            const float dd = get_f16(row + b * bb) * get_f16(xq + b * 34);
            acc = fmaf(dd, (float)isum, acc);
            *mag += fabs((double)dd * isum);
        }
        return acc;
    }
    for (int64_t b = 0; b < n / 256; b++) {
        const uint8_t *xb = xq + b * 292;
        float dx;
        memcpy(&dx, xb, 4);
        int16_t bs[16];
        memcpy(bs, xb + 260, sizeof bs);
        int32_t isum = 0, imin = 0;
        if (type == GGML_TYPE_Q4_K) {
            const uint8_t *s = row + b * 144 + 4;
            for (int j = 0; j < 8; j++) {
                const int sc = j < 4 ? s[j] & 63 : (s[j + 4] & 15) | (s[j - 4] >> 6) << 4;
                const int m = j < 4 ? s[j + 4] & 63 : (s[j + 4] >> 4) | (s[j] >> 6) << 4;
                int32_t dot = 0;
                for (int l = 0; l < 32; l++)
                    dot += weight_int(type, row, b * 256 + 32 * j + l) * (int8_t)xb[4 + 32 * j + l];
                isum += sc * dot;
                imin += m * (bs[2 * j] + bs[2 * j + 1]);
            }
            const float d = get_f16(row + b * 144), dmin = get_f16(row + b * 144 + 2);
            acc = fmaf(d * dx, (float)isum, acc);
            acc = fmaf(-(dmin * dx), (float)imin, acc);
            *mag += fabs((double)d * dx * isum) + fabs((double)dmin * dx * imin);
        } else {
            const int8_t *sc = (const int8_t *)(row + b * 210 + 192);
            for (int e = 0; e < 256; e++)
                isum += sc[e / 16] * weight_int(type, row, b * 256 + e) * (int8_t)xb[4 + e];
            const float d = get_f16(row + b * 210 + 208);
            acc = fmaf(d * dx, (float)isum, acc);
            *mag += fabs((double)d * dx * isum);
        }
    }
    return acc;
}

/* One table on one case:
 *  - F32/F16/BF16: the same bits as the scalar kernel (dot_f32's order, no FMA).
 *  - quantized: the same bits as definition_dot on the reference quantizer's bytes,
 *    and |y - sum w x| (float64, exact weights and x) within
 *        sum_b e_b * sum_{i in b} |w_i|  +  (steps + 3) * 2^-24 * mag.
 *    First term: x rounded to int8, which is what moves these results away from the
 *    scalar kernel. Per element |x - dx q| <= e_b:
 *      Q8_0 (d = amax/127, q = round(x/d), dx = d rounded to a half):
 *        0.5 d + 127 |dx - d| <= 0.5 d + 127 max(d 2^-11, 2^-25)   (2^-25: half of a
 *        subnormal half's spacing, for tiny blocks)
 *      Q8_K (q = rint(x * iscale), dx = 1/iscale rounded to float): |dx| (0.5 + 2^-15)
 *        (x/dx differs from x*iscale by < 127 * 2^-23, the product rounds by < 127 * 2^-24).
 *    It scales with the block's largest |x|, not with |x_i|: for uniform x in [-1, 1)
 *    about 0.004 sum |w|, near 1% of sum |w x|.
 *    Second term: the float steps, each rounding once by 2^-24 of the running sum
 *    (at most mag): steps = blocks (x2 for Q4_K), + 3 for d * dx and int-to-float
 *    conversion above 2^24. */
static void check_matmul(const cpu_kernels *k, const mm_case *c, const float *y)
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
    double *ebound = xalloc(sizeof(double) * (size_t)nb);
    for (int32_t t = 0; t < c->n_tok; t++) {
        const float *x = c->x + (size_t)t * (size_t)c->n_cols;
        (q80 ? quantize_row_q8_0 : quantize_row_q8_K)(x, xq, c->n_cols);
        for (int64_t b = 0; b < nb; b++) {
            const uint8_t *xb = xq + b * bbx;
            float dx;
            if (q80) {
                dx = get_f16(xb);
                double amax = 0;   /* (an fmax reduction here crashes aarch64 gcc 12.2) */
                for (int i = 0; i < 32; i++)
                    if (fabs((double)x[b * 32 + i]) > amax)
                        amax = fabs((double)x[b * 32 + i]);
                double d = amax / 127;
                ebound[b] = 0.5 * d + 127 * fmax(d * 0x1p-11, 0x1p-25);
            } else {
                memcpy(&dx, xb, 4);
                ebound[b] = fabs((double)dx) * (0.5 + 0x1p-15);
            }
            for (int i = 0; i < blk; i++) {   /* the quantizer keeps its bound */
                double err = fabs((double)x[b * blk + i] - (double)dx * (int8_t)xb[(q80 ? 2 : 4) + i]);
                if (err > ebound[b])
                    fail_msg("x[%lld] rounds by %.3g > %.3g", (long long)(b * blk + i), err,
                             ebound[b]);
            }
        }
        for (int64_t r = 0; r < c->n_rows; r++) {
            const uint8_t *row = (const uint8_t *)c->view.data + (size_t)r * c->view.row_bytes;
            double mag;
            const float want = definition_dot(type, row, xq, c->n_cols, &mag);
            const float got = y[(size_t)t * (size_t)c->n_rows + (size_t)r];
            if (bits_of(got) != bits_of(want))
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
            const double steps = (double)(type == GGML_TYPE_Q4_K ? 2 * nb : nb) + 3;
            const double tol = quant + steps * 0x1p-24 * mag + 1e-30;
            if (fabs(got - exact) > tol)
                fail_msg("%s %s: y[%d][%lld] = %.9g, exact %.9g, tolerance %.3g", k->name,
                         tensor_type_name(type), (int)t, (long long)r, (double)got, exact, tol);
        }
    }
    free(ebound);
    free(wf);
    free(xq);
}

/* The contract of cpu_ops.h: y[t][r] the same bits for any rows [r0, r1) and any token
 * count (each token alone, or a middle slice of the batch, gives what the batch gave). */
static void check_contract(const cpu_kernels *k, const mm_case *c, const float *y)
{
    const size_t nr = (size_t)c->n_rows;
    float *part = xalloc(sizeof(float) * nr * (size_t)c->n_tok);
    static const int64_t cuts[] = {1, 3, 4, 5, 17, 31};
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
    if (c->n_tok > 6) {   /* tokens 1..5 as a batch of their own */
        mm_run_part(k, c, 1, 5, 0, c->n_rows, part);
        if (memcmp(part, y + nr, sizeof(float) * nr * 5))
            fail_msg("%s %s: tokens 1-5 differ from the batch", k->name,
                     tensor_type_name(c->type));
    }
    free(part);
}

static void matmul_matches_reference_and_keeps_the_contract(void **state)
{
    (void)state;
    rng_seed(22);
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
                    if (ci == 2 && ki == 1)
                        continue;
                    mm_case c = mm_make(type, cols[ci], rows[ri], toks[ki]);
                    float *y[N_TABLES];
                    for (int k = 0; k < N_TABLES; k++) {
                        y[k] = mm_run(tables[k], &c);
                        check_matmul(tables[k], &c, y[k]);
                        if (ci < 2 || ki == 2)
                            check_contract(tables[k], &c, y[k]);
                    }
                    /* SDOT and widening multiplies form the same integers: same bits. */
                    if (memcmp(y[0], y[1], sizeof(float) * (size_t)(c.n_rows * c.n_tok)))
                        fail_msg("%s and %s differ on %s", tables[0]->name, tables[1]->name,
                                 tensor_type_name(type));
                    for (int k = 0; k < N_TABLES; k++)
                        free(y[k]);
                    mm_free(&c);
                }
    }
}

/* Extreme weights: Q8_0 full of -128 against x at +-127 (the widening path's int16
 * pair sums reach 2 * 128 * 127), Q4_K/Q6_K with every scale at its largest. */
static void extreme_blocks_stay_exact(void **state)
{
    (void)state;
    rng_seed(23);
    static const uint32_t types[] = {GGML_TYPE_Q8_0, GGML_TYPE_Q4_0, GGML_TYPE_Q4_K,
                                     GGML_TYPE_Q6_K};
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const uint32_t type = types[ti];
        mm_case c = mm_make(type, 512, 9, 5);
        const tensor_type_traits *tt = tensor_type_get(type);
        uint8_t *w = c.raw + 1;
        for (int64_t b = 0; b < 512 / tt->block_elems * 9; b++) {
            uint8_t *blk = w + (size_t)b * tt->block_bytes;
            if (type == GGML_TYPE_Q8_0)
                memset(blk + 2, 0x80, 32);
            else if (type == GGML_TYPE_Q4_0)
                memset(blk + 2, (b & 1) ? 0x00 : 0xff, 16);
            else if (type == GGML_TYPE_Q4_K)
                memset(blk + 4, 0xff, 140);
            else
                memset(blk + 192, (b & 1) ? 0x80 : 0x7f, 16);
        }
        for (int i = 0; i < 512 * 5; i++)
            c.x[i] = (i & 1) ? 1.0f : -1.0f;
        float *y[N_TABLES];
        for (int k = 0; k < N_TABLES; k++) {
            y[k] = mm_run(tables[k], &c);
            check_matmul(tables[k], &c, y[k]);
        }
        assert_memory_equal(y[0], y[1], sizeof(float) * 9 * 5);
        for (int k = 0; k < N_TABLES; k++)
            free(y[k]);
        mm_free(&c);
    }
}

/* ---- the small kernels and the op path ------------------------------------------- */

static void small_kernels_give_the_scalar_bits(void **state)
{
    (void)state;
    rng_seed(24);
    enum { N = 4099, HEADS = 4, HD = 64 };
    float *a = xalloc(N * sizeof(float)), *b = xalloc(N * sizeof(float));
    float *ya = xalloc(N * sizeof(float)), *yb = xalloc(N * sizeof(float));
    float *w = xalloc(N * sizeof(float));
    fill_uniform(a, N, -4, 4);
    fill_uniform(b, N, -4, 4);
    fill_uniform(w, N, 0.5f, 1.5f);
    for (int n = 1; n <= N; n += 1023) {
        memcpy(ya, a, N * sizeof(float));
        memcpy(yb, a, N * sizeof(float));
        cpu_kernels_neon.add(ya, b, n);
        cpu_kernels_scalar.add(yb, b, n);
        assert_memory_equal(ya, yb, N * sizeof(float));
        cpu_kernels_neon.silu_mul(ya, b, n);
        cpu_kernels_scalar.silu_mul(yb, b, n);
        assert_memory_equal(ya, yb, N * sizeof(float));
        cpu_kernels_neon.rmsnorm(a, w, n, 1e-5f, ya);
        cpu_kernels_scalar.rmsnorm(a, w, n, 1e-5f, yb);
        assert_memory_equal(ya, yb, (size_t)n * sizeof(float));
    }
    memcpy(ya, a, HEADS * HD * sizeof(float));
    memcpy(yb, a, HEADS * HD * sizeof(float));
    cpu_kernels_neon.rope(ya, HEADS, HD, HD, 77, 500000.0f, NULL);
    cpu_kernels_scalar.rope(yb, HEADS, HD, HD, 77, 500000.0f, NULL);
    assert_memory_equal(ya, yb, HEADS * HD * sizeof(float));
    free(w);
    free(yb);
    free(ya);
    free(b);
    free(a);
}

/* Through the backend's matmul op (LMRT_CPU unset: the NEON table), 1 and 3 threads:
 * the op's quantization and row split give what the kernel gives. */
static void op_path_gives_the_kernel_bits_on_any_thread_count(void **state)
{
    (void)state;
    if (cpu_features_get()->level != CPU_LEVEL_NEON)
        skip();
    rng_seed(25);
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        const int64_t blk = tensor_type_get(all_types[ti])->block_elems;
        mm_case c = mm_make(all_types[ti], blk == 1 ? 301 : 2 * blk, 37, 9);
        float *want = mm_run(&cpu_kernels_neon, &c);
        float *got = xalloc(sizeof(float) * 37 * 9);
        static const int32_t threads[] = {1, 3};
        for (int i = 0; i < 2; i++) {
            backend_ctx *ctx = NULL;
            assert_int_equal(cpu_backend.ctx_create(0, threads[i], &ctx), LMRT_OK);
            tensor_view bound;
            assert_int_equal(cpu_backend.bind_weight(ctx, &c.view, &bound), LMRT_OK);
            assert_int_equal(cpu_backend.matmul(ctx, &bound, c.x, 9, got), LMRT_OK);
            if (memcmp(got, want, sizeof(float) * 37 * 9))
                fail_msg("%s: the op on %d threads differs from the kernel",
                         tensor_type_name(all_types[ti]), (int)threads[i]);
            cpu_backend.unbind_weight(ctx, &bound);
            cpu_backend.ctx_free(ctx);
        }
        free(got);
        free(want);
        mm_free(&c);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(neon_level_uses_the_neon_table),
        cmocka_unit_test(quantizers_give_the_reference_bytes),
        cmocka_unit_test(matmul_matches_reference_and_keeps_the_contract),
        cmocka_unit_test(extreme_blocks_stay_exact),
        cmocka_unit_test(small_kernels_give_the_scalar_bits),
        cmocka_unit_test(op_path_gives_the_kernel_bits_on_any_thread_count),
    };
    return cmocka_run_group_tests(tests, report_cpu, NULL);
}

#else

int main(void)
{
    printf("test_neon: not an aarch64 build, skipped\n");
    return 77;   /* meson's "skipped" */
}

#endif
