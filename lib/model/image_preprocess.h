/* image_preprocess.h - what image encoders do to a decoded picture before the
 * ViT sees it: resampling (as PIL's resize), cropping, padding to a square and
 * mean/std normalization. All output is float RGB, channels last. */
#ifndef LMRT_MODEL_IMAGE_PREPROCESS_H
#define LMRT_MODEL_IMAGE_PREPROCESS_H

#include <stdint.h>

#include "format/image.h"
#include "lmrt.h"

typedef enum image_filter {
    IMAGE_FILTER_BILINEAR = 0,
    IMAGE_FILTER_BICUBIC = 1,
} image_filter;

/* Resamples img (lib/format/image.h image_rgb8) to out_w x out_h: separable,
 * antialiased like PIL's resize (support widened by the scale factor when
 * shrinking; bicubic a = -0.5), computed in float without intermediate rounding.
 * out: [out_h][out_w][3], values 0..255 (clamped). Errors: LMRT_E_INVALID_ARG
 * (NULL, empty image, out_w or out_h < 1 or > 65536), LMRT_E_NOMEM. */
lmrt_status image_resize(const image_rgb8 *img, int32_t out_w, int32_t out_h,
                         image_filter filter, float *out);

/* x = (x / 255 - mean[c]) / std[c], in place over [n_pixels][3] */
void image_normalize(float *pixels, int64_t n_pixels, const float mean[3], const float std[3]);

/* The size HF's "shortest_edge" resize gives: the shorter side becomes `shortest`,
 * the longer one keeps the aspect ratio (truncated, as int() does, at least 1). */
void image_fit_shortest_edge(int32_t w, int32_t h, int32_t shortest, int32_t *out_w,
                             int32_t *out_h);

/* Copies the centred crop_w x crop_h window of src ([src_h][src_w][3] floats) to
 * out ([crop_h][crop_w][3]); the window starts at ((src - crop) / 2) rounded down
 * as HF's center_crop does. Where the crop is larger than src the outside is
 * filled with 0. */
void image_center_crop(const float *src, int32_t src_w, int32_t src_h, int32_t crop_w,
                       int32_t crop_h, float *out);

/* Pads img to a square of side max(w, h), the picture centred (offset
 * (side - w) / 2 rounded down, likewise y), the border filled with `fill`
 * (LLaVA's expand2square with the mean colour). `out` gets a new image the
 * caller frees with image_rgb8_free. Errors: LMRT_E_INVALID_ARG, LMRT_E_NOMEM. */
lmrt_status image_pad_square(const image_rgb8 *img, const uint8_t fill[3], image_rgb8 *out);

#endif
