/* mllama_preprocess.h - Llama 3.2 Vision's image preprocessing: choosing the tile
 * grid (the "aspect ratio") for a picture, resizing it into that canvas, padding,
 * normalizing and cutting it into square tiles, as Hugging Face's
 * MllamaImageProcessor does (doc/formats.md says where lmrt differs and why). */
#ifndef LMRT_MODEL_MLLAMA_PREPROCESS_H
#define LMRT_MODEL_MLLAMA_PREPROCESS_H

#include <stdint.h>

#include "format/image.h"
#include "lmrt.h"

#define MLLAMA_MAX_TILES 64        /* most tiles per image lmrt accepts in a file */
#define MLLAMA_MAX_TILE_SIZE 4096  /* largest tile side (image_size) lmrt accepts */

/* How one picture is laid out on the tiled canvas. */
typedef struct mllama_tiling {
    int32_t tiles_h, tiles_w;      /* the grid: canvas = tiles_h x tiles_w tiles */
    int32_t resize_w, resize_h;    /* the picture's size on the canvas, at its top left */
    int32_t aspect_ratio_id;       /* 1 + index of (tiles_h, tiles_w) among the supported
                                    * grids; 0 is never used (HF keeps it for padding) */
} mllama_tiling;

/* Number of supported grids (h, w) with h * w <= max_tiles (8 for 4 tiles). */
int32_t mllama_aspect_ratio_count(int32_t max_tiles);

/* The grid of aspect-ratio id `id` (1 .. count): HF's order, h outer, w inner,
 * (1,1) (1,2) (1,3) (1,4) (2,1) (2,2) (3,1) (4,1) for 4 tiles. Errors:
 * LMRT_E_INVALID_ARG for an id or max_tiles out of range. */
lmrt_status mllama_aspect_ratio(int32_t max_tiles, int32_t id, int32_t *tiles_h,
                                int32_t *tiles_w);

/* Chooses the canvas and the resized size for an img_w x img_h picture: among the
 * supported grids, the smallest upscale >= 1 of the picture that fits (else the
 * mildest downscale), ties to the smallest canvas area; then the picture keeps its
 * aspect ratio, at least one tile side wide/high where the canvas allows. Errors:
 * LMRT_E_INVALID_ARG (sizes < 1, tile_size or max_tiles out of range). */
lmrt_status mllama_plan_tiling(int32_t img_w, int32_t img_h, int32_t tile_size,
                               int32_t max_tiles, mllama_tiling *out);

/* Plans the tiling of img, resizes it (bilinear, antialiased like PIL) onto the
 * canvas's top left, fills the rest with black, normalizes every channel to
 * (x / 255 - mean) / std and cuts the canvas into tiles, row by row.
 * *tiles: lmrt_malloc'd [tiles_h * tiles_w][tile_size][tile_size][3]; *tiling: the
 * plan. Both are written only on success. Errors: LMRT_E_INVALID_ARG, LMRT_E_NOMEM. */
lmrt_status mllama_preprocess(const image_rgb8 *img, int32_t tile_size, int32_t max_tiles,
                              const float mean[3], const float std[3], mllama_tiling *tiling,
                              float **tiles);

#endif
