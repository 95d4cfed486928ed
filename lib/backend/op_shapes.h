/* op_shapes.h - argument and shape checks an op's contract implies, shared by
 * every backend so that each refuses the same calls with the same message. */
#ifndef LMRT_BACKEND_OP_SHAPES_H
#define LMRT_BACKEND_OP_SHAPES_H

#include <stdint.h>

#include "lmrt.h"

/* The output shape of backend_vtable.im2col: h_out x w_out positions of `row`
 * (c_in * kh * kw) floats each. LMRT_E_INVALID_ARG, prefixed "<backend> backend:
 * im2col:", for non-positive sizes or strides, negative padding, a kernel larger
 * than the padded input, or sizes whose byte counts overflow. */
lmrt_status backend_im2col_shape(const char *backend, int32_t c_in, int32_t h, int32_t w,
                                 int32_t kh, int32_t kw, int32_t stride_h, int32_t stride_w,
                                 int32_t pad_h, int32_t pad_w, int64_t *h_out, int64_t *w_out,
                                 int64_t *row);

#endif
