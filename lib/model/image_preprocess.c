/* image_preprocess.c - resampling, cropping, padding and normalization of decoded
 * RGB8 images for the image encoders. The resampler follows PIL's resize (separable
 * convolution, the kernel widened by the scale factor when shrinking, weights
 * normalized per output pixel) but keeps floats between the passes. Knows nothing
 * about models or backends. */
#include "model/image_preprocess.h"

#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"

#define RESIZE_MAX_SIDE 65536

/* The filters, as PIL defines them: support (half-width at scale 1) and kernel. */
static double filter_bilinear(double x)
{
    x = fabs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}

static double filter_bicubic(double x)
{
    const double a = -0.5;
    x = fabs(x);
    if (x < 1.0)
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    if (x < 2.0)
        return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
    return 0.0;
}

/* One axis of the resample: output pixel o reads inputs first[o] .. first[o] +
 * count[o] - 1 with weights w[o * k_max ..]. */
typedef struct resample_axis {
    int32_t k_max;               /* taps per output pixel, at most */
    int32_t *first;              /* [n_out] */
    int32_t *count;              /* [n_out] */
    double *w;                   /* [n_out][k_max] */
} resample_axis;

static void axis_free(resample_axis *a)
{
    lmrt_mem_free(a->first);
    lmrt_mem_free(a->count);
    lmrt_mem_free(a->w);
    memset(a, 0, sizeof *a);
}

static lmrt_status axis_init(int32_t n_in, int32_t n_out, image_filter filter, resample_axis *a)
{
    double (*kernel)(double) = filter == IMAGE_FILTER_BICUBIC ? filter_bicubic : filter_bilinear;
    double support = filter == IMAGE_FILTER_BICUBIC ? 2.0 : 1.0;
    double scale = (double)n_in / (double)n_out;
    double fscale = scale < 1.0 ? 1.0 : scale;     /* widen the kernel only when shrinking */
    support *= fscale;
    /* support <= 2 n_in: taps fit an int64; the weight table is checked below. */
    int64_t k_max = (int64_t)ceil(support) * 2 + 1;
    size_t w_row;
    if (k_max > INT32_MAX || __builtin_mul_overflow((size_t)k_max, sizeof *a->w, &w_row))
        return lmrt_fail(LMRT_E_NOMEM, "image resize: %d -> %d pixels needs too many filter "
                         "taps", (int)n_in, (int)n_out);
    a->k_max = (int32_t)k_max;
    a->first = lmrt_calloc((size_t)n_out, sizeof *a->first);
    a->count = lmrt_calloc((size_t)n_out, sizeof *a->count);
    a->w = lmrt_calloc((size_t)n_out, w_row);
    if (!a->first || !a->count || !a->w) {
        axis_free(a);
        return lmrt_fail(LMRT_E_NOMEM, "image resize: out of memory for the filter weights");
    }
    for (int32_t o = 0; o < n_out; o++) {
        double center = ((double)o + 0.5) * scale;
        double lo = center - support + 0.5, hi = center + support + 0.5;
        int64_t x0 = lo < 0.0 ? 0 : (int64_t)lo;
        int64_t x1 = hi > (double)n_in ? n_in : (int64_t)hi;
        if (x1 - x0 > a->k_max)
            x1 = x0 + a->k_max;
        double *w = a->w + (size_t)o * (size_t)a->k_max, sum = 0.0;
        for (int64_t x = x0; x < x1; x++) {
            w[x - x0] = kernel(((double)x - center + 0.5) / fscale);
            sum += w[x - x0];
        }
        if (sum != 0.0)
            for (int64_t x = x0; x < x1; x++)
                w[x - x0] /= sum;
        a->first[o] = (int32_t)x0;
        a->count[o] = (int32_t)(x1 - x0);
    }
    return LMRT_OK;
}

static float clamp255(double v)
{
    return v < 0.0 ? 0.0f : v > 255.0 ? 255.0f : (float)v;
}

lmrt_status image_resize(const image_rgb8 *img, int32_t out_w, int32_t out_h,
                         image_filter filter, float *out)
{
    if (!img || !img->pixels || !out || img->width < 1 || img->height < 1)
        return lmrt_fail(LMRT_E_INVALID_ARG, "image resize: NULL or empty image");
    if (out_w < 1 || out_h < 1 || out_w > RESIZE_MAX_SIDE || out_h > RESIZE_MAX_SIDE)
        return lmrt_fail(LMRT_E_INVALID_ARG, "image resize: output size %d x %d (each side "
                         "must be 1..%d)", (int)out_w, (int)out_h, RESIZE_MAX_SIDE);
    if (filter != IMAGE_FILTER_BILINEAR && filter != IMAGE_FILTER_BICUBIC)
        return lmrt_fail(LMRT_E_INVALID_ARG, "image resize: unknown filter %d", (int)filter);
    const int32_t in_w = img->width, in_h = img->height;
    size_t tmp_elems;
    if (__builtin_mul_overflow((size_t)in_h, (size_t)out_w * 3, &tmp_elems) ||
        tmp_elems > SIZE_MAX / sizeof(float))
        return lmrt_fail(LMRT_E_NOMEM, "image resize: %d x %d -> %d x %d is too large",
                         (int)in_w, (int)in_h, (int)out_w, (int)out_h);
    resample_axis ax = {0}, ay = {0};
    float *tmp = NULL;                 /* [in_h][out_w][3]: after the horizontal pass */
    lmrt_status st;
    if ((st = axis_init(in_w, out_w, filter, &ax)) || (st = axis_init(in_h, out_h, filter, &ay)))
        goto done;
    tmp = lmrt_malloc(tmp_elems * sizeof(float));
    if (!tmp) {
        st = lmrt_fail(LMRT_E_NOMEM, "image resize: out of memory for %d x %d pixels",
                       (int)out_w, (int)in_h);
        goto done;
    }
    /* Horizontal pass, then vertical, each clamped to 0..255 as PIL's 8-bit passes are
     * (PIL also rounds there; we do not). */
    for (int32_t y = 0; y < in_h; y++) {
        const uint8_t *row = img->pixels + (size_t)y * (size_t)in_w * 3;
        float *dst = tmp + (size_t)y * (size_t)out_w * 3;
        for (int32_t o = 0; o < out_w; o++) {
            const double *w = ax.w + (size_t)o * (size_t)ax.k_max;
            const uint8_t *src = row + (size_t)ax.first[o] * 3;
            double r = 0.0, g = 0.0, b = 0.0;
            for (int32_t k = 0; k < ax.count[o]; k++) {
                r += w[k] * src[3 * k];
                g += w[k] * src[3 * k + 1];
                b += w[k] * src[3 * k + 2];
            }
            dst[3 * o] = clamp255(r);
            dst[3 * o + 1] = clamp255(g);
            dst[3 * o + 2] = clamp255(b);
        }
    }
    for (int32_t o = 0; o < out_h; o++) {
        const double *w = ay.w + (size_t)o * (size_t)ay.k_max;
        float *dst = out + (size_t)o * (size_t)out_w * 3;
        for (int32_t i = 0; i < out_w * 3; i++) {
            double acc = 0.0;
            for (int32_t k = 0; k < ay.count[o]; k++)
                acc += w[k] * tmp[((size_t)ay.first[o] + (size_t)k) * (size_t)out_w * 3 + (size_t)i];
            dst[i] = clamp255(acc);
        }
    }
    st = LMRT_OK;
done:
    lmrt_mem_free(tmp);
    axis_free(&ay);
    axis_free(&ax);
    return st;
}

void image_normalize(float *pixels, int64_t n_pixels, const float mean[3], const float std[3])
{
    for (int64_t i = 0; i < n_pixels; i++)
        for (int c = 0; c < 3; c++)
            pixels[3 * i + c] = (pixels[3 * i + c] / 255.0f - mean[c]) / std[c];
}

void image_fit_shortest_edge(int32_t w, int32_t h, int32_t shortest, int32_t *out_w,
                             int32_t *out_h)
{
    int64_t lw, lh;
    if (w <= h) {
        lw = shortest;
        lh = (int64_t)shortest * h / w;
    } else {
        lh = shortest;
        lw = (int64_t)shortest * w / h;
    }
    *out_w = (int32_t)(lw < 1 ? 1 : lw > INT32_MAX ? INT32_MAX : lw);
    *out_h = (int32_t)(lh < 1 ? 1 : lh > INT32_MAX ? INT32_MAX : lh);
}

void image_center_crop(const float *src, int32_t src_w, int32_t src_h, int32_t crop_w,
                       int32_t crop_h, float *out)
{
    /* Window origin in source coordinates; negative where the crop is larger. */
    int64_t x0 = ((int64_t)src_w - crop_w) / 2, y0 = ((int64_t)src_h - crop_h) / 2;
    if ((int64_t)src_w - crop_w < 0)
        x0 = -((crop_w - (int64_t)src_w + 1) / 2);
    if ((int64_t)src_h - crop_h < 0)
        y0 = -((crop_h - (int64_t)src_h + 1) / 2);
    for (int32_t y = 0; y < crop_h; y++) {
        int64_t sy = y0 + y;
        float *dst = out + (size_t)y * (size_t)crop_w * 3;
        for (int32_t x = 0; x < crop_w; x++) {
            int64_t sx = x0 + x;
            if (sy < 0 || sy >= src_h || sx < 0 || sx >= src_w) {
                dst[3 * x] = dst[3 * x + 1] = dst[3 * x + 2] = 0.0f;
                continue;
            }
            memcpy(dst + 3 * x, src + ((size_t)sy * (size_t)src_w + (size_t)sx) * 3,
                   3 * sizeof(float));
        }
    }
}

lmrt_status image_pad_square(const image_rgb8 *img, const uint8_t fill[3], image_rgb8 *out)
{
    if (!img || !img->pixels || !out || !fill || img->width < 1 || img->height < 1)
        return lmrt_fail(LMRT_E_INVALID_ARG, "image pad: NULL or empty image");
    int32_t side = img->width > img->height ? img->width : img->height;
    size_t pixels, bytes;
    if (__builtin_mul_overflow((size_t)side, (size_t)side, &pixels) ||
        __builtin_mul_overflow(pixels, (size_t)3, &bytes))
        return lmrt_fail(LMRT_E_NOMEM, "image pad: a %d x %d square is too large", (int)side,
                         (int)side);
    uint8_t *p = lmrt_malloc(bytes);
    if (!p)
        return lmrt_fail(LMRT_E_NOMEM, "image pad: out of memory for %d x %d pixels", (int)side,
                         (int)side);
    for (size_t i = 0; i < pixels; i++)
        memcpy(p + 3 * i, fill, 3);
    int32_t x0 = (side - img->width) / 2, y0 = (side - img->height) / 2;
    for (int32_t y = 0; y < img->height; y++)
        memcpy(p + ((size_t)(y0 + y) * (size_t)side + (size_t)x0) * 3,
               img->pixels + (size_t)y * (size_t)img->width * 3, (size_t)img->width * 3);
    out->pixels = p;
    out->width = out->height = side;
    return LMRT_OK;
}
