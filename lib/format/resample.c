/* resample.c - windowed-sinc (Kaiser) polyphase resampling of mono float audio at an
 * exact rational ratio; the filter is documented in resample.h. Owns no state between
 * calls and knows nothing about files or models. */
#include "format/resample.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"

#define RS_ZEROS 64                     /* zero crossings of the sinc per side */
#define RS_BETA 10.06                   /* Kaiser beta: 0.1102 * (100 dB - 8.7) */
#define RS_TABLE_MAX ((size_t)1 << 20)  /* floats in an exact phase table */
#define RS_FINE 2048                    /* kernel points per zero crossing otherwise */
#define RS_I0_TERMS 34                  /* I0's series to x = RS_BETA: last term < 1e-25 */

/* One conversion: ratio L / M in lowest terms and the taps around each output. */
typedef struct rs_plan {
    uint64_t L, M;          /* rate_out / rate_in = L / M */
    double scale;           /* input samples -> zero crossings: min(L, M) / M */
    size_t half;            /* H: output k reads inputs n0 - H .. n0 + H, n0 = k*M/L */
    size_t taps;            /* 2H + 1 */
    double i0_coef[RS_I0_TERMS];   /* 1 / (k!)^2: I0(x) = sum of i0_coef[k] (x^2 / 4)^k */
    double inv_i0_beta;     /* 1 / I0(RS_BETA) */
} rs_plan;

static uint64_t gcd_u64(uint64_t a, uint64_t b)
{
    while (b) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* Modified Bessel function of the first kind, order 0, for 0 <= x <= RS_BETA: its power
 * series, evaluated by Horner's rule (no division: the kernel tables call it often). */
static double bessel_i0(const rs_plan *r, double x)
{
    double q = x * x / 4.0, sum = 0.0;
    for (int k = RS_I0_TERMS - 1; k >= 0; k--)
        sum = sum * q + r->i0_coef[k];
    return sum;
}

/* The kernel at `u` zero crossings from its centre (resample.h). */
static double kernel(const rs_plan *r, double u)
{
    u = fabs(u);
    if (u >= RS_ZEROS)
        return 0.0;
    double t = u / RS_ZEROS;
    double sinc = u == 0.0 ? 1.0 : sin(M_PI * u) / (M_PI * u);
    return sinc * bessel_i0(r, RS_BETA * sqrt(1.0 - t * t)) * r->inv_i0_beta;
}

/* Fills c[plan->taps] for the output at input time n0 + p / L: tap j weighs input
 * n0 - H + j. Normalized to sum to 1. */
static void phase_taps(const rs_plan *r, uint64_t p, float *c)
{
    double frac = (double)p / (double)r->L, sum = 0.0;
    for (size_t j = 0; j < r->taps; j++) {
        double v = kernel(r, (frac + (double)r->half - (double)j) * r->scale);
        c[j] = (float)v;
        sum += v;
    }
    for (size_t j = 0; j < r->taps; j++)   /* rounds twice: within 2 float ulps */
        c[j] = (float)(c[j] / sum);
}

/* Inputs n0 - H + j exist for j in [*lo, *hi). */
static void tap_range(const rs_plan *r, uint64_t n0, size_t n_in, size_t *lo, size_t *hi)
{
    *lo = n0 < r->half ? r->half - (size_t)n0 : 0;
    size_t avail = n_in - (size_t)n0 + r->half;   /* n0 < n_in */
    *hi = avail < r->taps ? avail : r->taps;
}

/* Every phase in a table: [L][taps]. One multiply-add per tap: 355 per output at
 * 44.1 -> 16 kHz, about 0.4 s for 30 s of audio on one core here. */
static void run_table(const rs_plan *r, const float *table, const float *in, size_t n_in,
                      float *out, size_t n_out)
{
    for (size_t k = 0; k < n_out; k++) {
        uint64_t num = (uint64_t)k * r->M, n0 = num / r->L;
        const float *c = table + (size_t)(num % r->L) * r->taps;
        size_t lo, hi;
        tap_range(r, n0, n_in, &lo, &hi);
        const float *x = in + ((size_t)n0 + lo - r->half);   /* input n0 - H + lo */
        double acc = 0.0;
        for (size_t j = lo; j < hi; j++)
            acc += (double)x[j - lo] * c[j];
        out[k] = (float)acc;
    }
}

/* Taps interpolated from `fine` ([RS_ZEROS * RS_FINE + 2], the kernel at u = i / RS_FINE),
 * or computed exactly when `fine` is NULL; normalized per output sample. */
static void run_direct(const rs_plan *r, const double *fine, const float *in, size_t n_in,
                       float *out, size_t n_out)
{
    const double limit = (double)RS_ZEROS * RS_FINE;
    for (size_t k = 0; k < n_out; k++) {
        uint64_t num = (uint64_t)k * r->M, n0 = num / r->L;
        double frac = (double)(num % r->L) / (double)r->L;
        size_t lo, hi;
        tap_range(r, n0, n_in, &lo, &hi);
        double acc = 0.0, sum = 0.0;
        for (size_t j = 0; j < r->taps; j++) {
            double u = (frac + (double)r->half - (double)j) * r->scale, w;
            if (!fine) {
                w = kernel(r, u);
            } else {
                double pos = fabs(u) * RS_FINE;
                if (pos >= limit)
                    continue;
                size_t i = (size_t)pos;
                w = fine[i] + (pos - (double)i) * (fine[i + 1] - fine[i]);
            }
            sum += w;
            if (j >= lo && j < hi)
                acc += w * in[n0 - r->half + j];
        }
        out[k] = (float)(acc / sum);
    }
}

lmrt_status audio_resample(const float *in, size_t n_in, int32_t rate_in, int32_t rate_out,
                           float **out, size_t *n_out)
{
    if (!in || !out || !n_out)
        return lmrt_fail(LMRT_E_INVALID_ARG, "audio_resample: NULL %s",
                         !in ? "input" : !out ? "out" : "n_out");
    if (n_in == 0)
        return lmrt_fail(LMRT_E_INVALID_ARG, "audio_resample: no input samples");
    if (rate_in < 1 || rate_in > AUDIO_RESAMPLE_MAX_RATE || rate_out < 1 ||
        rate_out > AUDIO_RESAMPLE_MAX_RATE)
        return lmrt_fail(LMRT_E_INVALID_ARG, "audio_resample: rates %d -> %d Hz (each must be "
                         "1 to %d)", (int)rate_in, (int)rate_out, AUDIO_RESAMPLE_MAX_RATE);
    uint64_t g = gcd_u64((uint64_t)rate_in, (uint64_t)rate_out);
    rs_plan r = {.L = (uint64_t)rate_out / g, .M = (uint64_t)rate_in / g};
    uint64_t prod, len;
    size_t bytes;
    if (__builtin_mul_overflow((uint64_t)n_in, r.L, &prod) || prod > UINT64_MAX - r.M ||
        (len = (prod + r.M - 1) / r.M) > SIZE_MAX ||
        __builtin_mul_overflow((size_t)len, sizeof(float), &bytes))
        return lmrt_fail(LMRT_E_NOMEM, "audio_resample: %zu samples at %d -> %d Hz are too many "
                         "for this address space", n_in, (int)rate_in, (int)rate_out);
    float *y = lmrt_malloc(bytes);
    if (!y)
        return lmrt_fail(LMRT_E_NOMEM, "audio_resample: out of memory for %" PRIu64 " samples",
                         len);
    if (r.L == r.M) {
        memcpy(y, in, n_in * sizeof(float));
        *out = y;
        *n_out = n_in;
        return LMRT_OK;
    }
    uint64_t lower = r.L < r.M ? r.L : r.M;
    r.scale = (double)lower / (double)r.M;
    r.half = (size_t)((RS_ZEROS * r.M + lower - 1) / lower);   /* ceil(Z * M / min(L, M)) */
    r.taps = 2 * r.half + 1;
    r.i0_coef[0] = 1.0;
    for (int k = 1; k < RS_I0_TERMS; k++)
        r.i0_coef[k] = r.i0_coef[k - 1] / ((double)k * k);
    r.inv_i0_beta = 1.0 / bessel_i0(&r, RS_BETA);
    /* the exact table when it is small and has no more phases than there are outputs */
    if (r.L <= RS_TABLE_MAX / r.taps && r.L <= len) {
        float *table = lmrt_malloc((size_t)r.L * r.taps * sizeof(float));
        if (!table) {
            lmrt_mem_free(y);
            return lmrt_fail(LMRT_E_NOMEM, "audio_resample: out of memory for %" PRIu64 " x "
                             "%zu filter taps", r.L, r.taps);
        }
        for (uint64_t p = 0; p < r.L; p++)
            phase_taps(&r, p, table + (size_t)p * r.taps);
        run_table(&r, table, in, n_in, y, (size_t)len);
        lmrt_mem_free(table);
    } else if (len <= (RS_ZEROS * RS_FINE + 2) / r.taps) {
        run_direct(&r, NULL, in, n_in, y, (size_t)len);   /* fewer taps than a fine table */
    } else {
        size_t n_fine = (size_t)RS_ZEROS * RS_FINE + 2;
        double *fine = lmrt_malloc(n_fine * sizeof(double));
        if (!fine) {
            lmrt_mem_free(y);
            return lmrt_fail(LMRT_E_NOMEM, "audio_resample: out of memory for the filter kernel");
        }
        for (size_t i = 0; i < n_fine; i++)
            fine[i] = kernel(&r, (double)i / RS_FINE);
        run_direct(&r, fine, in, n_in, y, (size_t)len);
        lmrt_mem_free(fine);
    }
    *out = y;
    *n_out = (size_t)len;
    return LMRT_OK;
}
