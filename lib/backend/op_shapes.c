/* op_shapes.c - the shape checks of op_shapes.h. Computes nothing but sizes. */
#include "backend/op_shapes.h"

#include <stddef.h>

#include "base/error.h"

lmrt_status backend_im2col_shape(const char *backend, int32_t c_in, int32_t h, int32_t w,
                                 int32_t kh, int32_t kw, int32_t stride_h, int32_t stride_w,
                                 int32_t pad_h, int32_t pad_w, int64_t *h_out, int64_t *w_out,
                                 int64_t *row)
{
    if (c_in <= 0 || h <= 0 || w <= 0 || kh <= 0 || kw <= 0 || stride_h <= 0 ||
        stride_w <= 0 || pad_h < 0 || pad_w < 0)
        return lmrt_fail(LMRT_E_INVALID_ARG, "%s backend: im2col: bad shape c_in %d, h %d, "
                         "w %d, kernel %dx%d, stride %dx%d, pad %dx%d", backend, (int)c_in,
                         (int)h, (int)w, (int)kh, (int)kw, (int)stride_h, (int)stride_w,
                         (int)pad_h, (int)pad_w);
    const int64_t span_h = (int64_t)h + 2 * (int64_t)pad_h - kh;
    const int64_t span_w = (int64_t)w + 2 * (int64_t)pad_w - kw;
    if (span_h < 0 || span_w < 0)
        return lmrt_fail(LMRT_E_INVALID_ARG, "%s backend: im2col: kernel %dx%d is larger "
                         "than the padded input %lldx%lld", backend, (int)kh, (int)kw,
                         (long long)h + 2 * (long long)pad_h, (long long)w + 2 * (long long)pad_w);
    const int64_t ho = span_h / stride_h + 1, wo = span_w / stride_w + 1;
    int64_t n_pos, r, total, in;
    if (__builtin_mul_overflow(ho, wo, &n_pos) ||
        __builtin_mul_overflow((int64_t)c_in, (int64_t)kh * kw, &r) ||
        __builtin_mul_overflow(n_pos, r, &total) || (uint64_t)total > SIZE_MAX / sizeof(float) ||
        __builtin_mul_overflow((int64_t)h * w, (int64_t)c_in, &in) ||
        (uint64_t)in > SIZE_MAX / sizeof(float))
        return lmrt_fail(LMRT_E_INVALID_ARG, "%s backend: im2col: %lldx%lld positions of "
                         "%d x %dx%d taps are too large", backend, (long long)ho,
                         (long long)wo, (int)c_in, (int)kh, (int)kw);
    *h_out = ho;
    *w_out = wo;
    *row = r;
    return LMRT_OK;
}
