/* mllama_preprocess.c - Llama 3.2 Vision's tile-grid choice and tiling of a decoded
 * picture (HF MllamaImageProcessor semantics, float throughout). Knows nothing about
 * GGUF, weights or backends: vision_mllama.c passes the file's numbers in. */
#include "model/mllama_preprocess.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "model/image_preprocess.h"

static bool args_ok(int32_t tile_size, int32_t max_tiles)
{
    return tile_size >= 1 && tile_size <= MLLAMA_MAX_TILE_SIZE && max_tiles >= 1 &&
           max_tiles <= MLLAMA_MAX_TILES;
}

int32_t mllama_aspect_ratio_count(int32_t max_tiles)
{
    int32_t n = 0;
    for (int32_t h = 1; h <= max_tiles; h++)
        n += max_tiles / h;
    return n;
}

lmrt_status mllama_aspect_ratio(int32_t max_tiles, int32_t id, int32_t *tiles_h,
                                int32_t *tiles_w)
{
    if (max_tiles < 1 || max_tiles > MLLAMA_MAX_TILES || id < 1 ||
        id > mllama_aspect_ratio_count(max_tiles))
        return lmrt_fail(LMRT_E_INVALID_ARG, "mllama: aspect ratio id %d is outside 1..%d "
                         "(max_num_tiles %d)", (int)id,
                         (int)(max_tiles >= 1 && max_tiles <= MLLAMA_MAX_TILES
                                   ? mllama_aspect_ratio_count(max_tiles) : 0),
                         (int)max_tiles);
    int32_t k = 0;
    for (int32_t h = 1; h <= max_tiles; h++)
        for (int32_t w = 1; w * h <= max_tiles; w++)
            if (++k == id) {
                *tiles_h = h;
                *tiles_w = w;
                return LMRT_OK;
            }
    return lmrt_fail(LMRT_E_INTERNAL, "mllama: aspect ratio id %d not enumerated", (int)id);
}

static int32_t clamp_i32(int32_t v, int32_t lo, int32_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

lmrt_status mllama_plan_tiling(int32_t img_w, int32_t img_h, int32_t tile_size,
                               int32_t max_tiles, mllama_tiling *out)
{
    if (img_w < 1 || img_h < 1 || !args_ok(tile_size, max_tiles))
        return lmrt_fail(LMRT_E_INVALID_ARG, "mllama: cannot tile a %dx%d picture into at "
                         "most %d tiles of %d (1..%d tiles of 1..%d pixels)", (int)img_w,
                         (int)img_h, (int)max_tiles, (int)tile_size, MLLAMA_MAX_TILES,
                         MLLAMA_MAX_TILE_SIZE);
    /* The scale that fits the picture into each candidate canvas without distortion
     * is the smaller of the two axis scales. Doubles, divided as numpy divides, so
     * that equal scales compare equal exactly as in HF. */
    double best_up = 0.0, best_down = 0.0;
    bool have_up = false, have_down = false;
    for (int32_t h = 1; h <= max_tiles; h++)
        for (int32_t w = 1; w * h <= max_tiles; w++) {
            double sh = (double)(h * tile_size) / img_h;
            double sw = (double)(w * tile_size) / img_w;
            double s = sw > sh ? sh : sw;
            if (s >= 1.0) {
                if (!have_up || s < best_up)
                    best_up = s;
                have_up = true;
            } else {
                if (!have_down || s > best_down)
                    best_down = s;
                have_down = true;
            }
        }
    double chosen = have_up ? best_up : best_down;
    int32_t id = 0, k = 0, th = 0, tw = 0;
    int64_t best_area = INT64_MAX;
    for (int32_t h = 1; h <= max_tiles; h++)
        for (int32_t w = 1; w * h <= max_tiles; w++) {
            k++;
            double sh = (double)(h * tile_size) / img_h;
            double sw = (double)(w * tile_size) / img_w;
            double s = sw > sh ? sh : sw;
            int64_t area = (int64_t)h * w;
            if (s == chosen && area < best_area) {   /* first of the smallest canvases */
                best_area = area;
                id = k;
                th = h;
                tw = w;
            }
        }
    if (!id)
        return lmrt_fail(LMRT_E_INTERNAL, "mllama: no canvas chosen for %dx%d", (int)img_w,
                         (int)img_h);

    /* Fit into the canvas: each side aims between one tile and the canvas side, and
     * the tighter of the two scales wins (HF get_image_size_fit_to_canvas). */
    int32_t canvas_w = tw * tile_size, canvas_h = th * tile_size;
    int32_t target_w = clamp_i32(img_w, tile_size, canvas_w);
    int32_t target_h = clamp_i32(img_h, tile_size, canvas_h);
    double scale_h = (double)target_h / img_h, scale_w = (double)target_w / img_w;
    int32_t new_w, new_h;
    if (scale_w < scale_h) {
        new_w = target_w;
        double f = floor((double)img_h * scale_w);
        new_h = f < (double)target_h ? (int32_t)f : target_h;
    } else {
        new_h = target_h;
        double f = floor((double)img_w * scale_h);
        new_w = f < (double)target_w ? (int32_t)f : target_w;
    }
    /* HF would hand PIL a zero side for extreme panoramas and fail; keep one pixel. */
    out->tiles_h = th;
    out->tiles_w = tw;
    out->resize_w = new_w < 1 ? 1 : new_w;
    out->resize_h = new_h < 1 ? 1 : new_h;
    out->aspect_ratio_id = id;
    return LMRT_OK;
}

lmrt_status mllama_preprocess(const image_rgb8 *img, int32_t tile_size, int32_t max_tiles,
                              const float mean[3], const float std[3], mllama_tiling *tiling,
                              float **tiles)
{
    if (!img || !img->pixels || !mean || !std || !tiling || !tiles)
        return lmrt_fail(LMRT_E_INVALID_ARG, "mllama_preprocess: NULL argument");
    mllama_tiling plan;
    lmrt_status st = mllama_plan_tiling(img->width, img->height, tile_size, max_tiles, &plan);
    if (st)
        return st;
    float *resized = NULL, *out = NULL;
    /* Bounded by MLLAMA_MAX_TILES * MLLAMA_MAX_TILE_SIZE^2 * 3 floats: no overflow in
     * size_t, but possibly too much memory, which lmrt_malloc reports. */
    size_t t = (size_t)tile_size, n_tiles = (size_t)plan.tiles_h * (size_t)plan.tiles_w;
    size_t n_resized = (size_t)plan.resize_w * (size_t)plan.resize_h * 3;
    resized = lmrt_malloc(n_resized * sizeof(float));
    out = lmrt_malloc(n_tiles * t * t * 3 * sizeof(float));
    if (!resized || !out) {
        st = lmrt_fail(LMRT_E_NOMEM, "mllama: out of memory for a %dx%d tile canvas",
                       (int)(plan.tiles_w * tile_size), (int)(plan.tiles_h * tile_size));
        goto fail;
    }
    if ((st = image_resize(img, plan.resize_w, plan.resize_h, IMAGE_FILTER_BILINEAR, resized)))
        goto fail;
    /* Tile (i, j) covers canvas rows i*t .. and columns j*t ..; outside the picture
     * the canvas is black (0) before normalization, as HF pads. */
    for (int32_t i = 0; i < plan.tiles_h; i++)
        for (int32_t j = 0; j < plan.tiles_w; j++) {
            float *dst = out + ((size_t)i * (size_t)plan.tiles_w + (size_t)j) * t * t * 3;
            for (size_t y = 0; y < t; y++) {
                size_t cy = (size_t)i * t + y;
                for (size_t x = 0; x < t; x++) {
                    size_t cx = (size_t)j * t + x;
                    float *px = dst + (y * t + x) * 3;
                    if (cy < (size_t)plan.resize_h && cx < (size_t)plan.resize_w)
                        memcpy(px, resized + (cy * (size_t)plan.resize_w + cx) * 3,
                               3 * sizeof(float));
                    else
                        px[0] = px[1] = px[2] = 0.0f;
                }
            }
        }
    image_normalize(out, (int64_t)(n_tiles * t * t), mean, std);
    lmrt_mem_free(resized);
    *tiling = plan;
    *tiles = out;
    return LMRT_OK;
fail:
    lmrt_mem_free(out);
    lmrt_mem_free(resized);
    return st;
}
