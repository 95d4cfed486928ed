/* mllama_dump.c - writes what lmrt's mllama vision encoder and tiling planner compute,
 * for tests/vision/test_mllama_reference.py to compare with the float64 reference
 * (scripts/reference_mllama_vision.py). A test helper, not an example:
 *   mllama_dump encode MODEL.gguf IMAGE N_EMBD_TEXT OUT [--crop X Y W H] [--transpose]
 *       OUT: raw float32 [n_tok][n_embd_text]; prints "tiles_h tiles_w id n_tok"
 *   mllama_dump plan TILE MAX_TILES     reads "W H" lines on stdin, prints
 *       "tiles_h tiles_w id resize_w resize_h" for each
 * The crop (applied first) and the transpose make derived pictures of the photos:
 * a 2:1 strip, a tall image. Runs on the CPU backend with 2 threads; exits 1 with
 * lmrt's message on error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "base/alloc.h"
#include "base/error.h"
#include "format/gguf.h"
#include "format/image.h"
#include "model/mllama_preprocess.h"
#include "model/vision_mllama.h"

static int fail(lmrt_status st)
{
    fprintf(stderr, "mllama_dump: status %d: %s\n", (int)st, lmrt_last_error());
    return 1;
}

/* Replaces img by its crop and/or transpose (lmrt_malloc'd, as image_rgb8_free
 * expects). */
static int derive(image_rgb8 *img, const int crop[4], int transpose)
{
    int x0 = 0, y0 = 0, w = img->width, h = img->height;
    if (crop) {
        x0 = crop[0], y0 = crop[1], w = crop[2], h = crop[3];
        if (x0 < 0 || y0 < 0 || w < 1 || h < 1 || x0 + w > img->width ||
            y0 + h > img->height) {
            fprintf(stderr, "mllama_dump: crop outside the %dx%d image\n", img->width,
                    img->height);
            return 1;
        }
    }
    uint8_t *px = lmrt_malloc((size_t)w * (size_t)h * 3);
    if (!px)
        return 1;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            const uint8_t *s = img->pixels + (((size_t)(y0 + y) * img->width) + (size_t)(x0 + x)) * 3;
            size_t d = transpose ? (size_t)x * (size_t)h + (size_t)y : (size_t)y * (size_t)w + (size_t)x;
            memcpy(px + d * 3, s, 3);
        }
    image_rgb8_free(img);
    img->pixels = px;
    img->width = transpose ? h : w;
    img->height = transpose ? w : h;
    return 0;
}

static int do_encode(int argc, char **argv)
{
    int crop[4], have_crop = 0, transpose = 0;
    for (int i = 4; i < argc; i++) {
        if (strcmp(argv[i], "--crop") == 0 && i + 4 < argc) {
            for (int k = 0; k < 4; k++)
                crop[k] = atoi(argv[++i]);
            have_crop = 1;
        } else if (strcmp(argv[i], "--transpose") == 0) {
            transpose = 1;
        } else {
            fprintf(stderr, "mllama_dump: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    const backend_vtable *be = backend_find(LMRT_BACKEND_CPU);
    backend_ctx *bctx = NULL;
    gguf_file *f = NULL;
    mllama_vision *v = NULL;
    image_rgb8 img = {0};
    float *feat = NULL;
    int32_t n = 0;
    int rc = 1;
    lmrt_status st;
    if ((st = be->ctx_create(0, 2, &bctx)) || (st = gguf_open(argv[0], true, &f)) ||
        (st = mllama_vision_bind(f, atoi(argv[2]), be, bctx, &v)) ||
        (st = image_load_file(argv[1], 1 << 24, &img))) {
        rc = fail(st);
        goto done;
    }
    if (derive(&img, have_crop ? crop : NULL, transpose))
        goto done;
    mllama_tiling tl;
    int64_t tile, max_tiles;
    if ((st = gguf_get_int(f, "mllama.vision.image_size", &tile)) ||
        (st = gguf_get_int(f, "mllama.vision.max_num_tiles", &max_tiles)) ||
        (st = mllama_plan_tiling(img.width, img.height, (int32_t)tile, (int32_t)max_tiles, &tl)) ||
        (st = mllama_vision_encode(v, &img, &feat, &n))) {
        rc = fail(st);
        goto done;
    }
    FILE *out = fopen(argv[3], "wb");
    size_t count = (size_t)n * (size_t)atoi(argv[2]);
    if (!out || fwrite(feat, sizeof *feat, count, out) != count || fclose(out) != 0) {
        fprintf(stderr, "mllama_dump: cannot write %s\n", argv[3]);
        goto done;
    }
    printf("%d %d %d %d\n", (int)tl.tiles_h, (int)tl.tiles_w, (int)tl.aspect_ratio_id, (int)n);
    rc = 0;
done:
    lmrt_mem_free(feat);
    image_rgb8_free(&img);
    mllama_vision_free(v);
    gguf_close(f);
    if (bctx)
        be->ctx_free(bctx);
    return rc;
}

static int do_plan(char **argv)
{
    int tile = atoi(argv[0]), max_tiles = atoi(argv[1]), w, h;
    while (scanf("%d %d", &w, &h) == 2) {
        mllama_tiling tl;
        lmrt_status st = mllama_plan_tiling(w, h, tile, max_tiles, &tl);
        if (st)
            return fail(st);
        printf("%d %d %d %d %d\n", (int)tl.tiles_h, (int)tl.tiles_w, (int)tl.aspect_ratio_id,
               (int)tl.resize_w, (int)tl.resize_h);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 6 && strcmp(argv[1], "encode") == 0)
        return do_encode(argc - 2, argv + 2);
    if (argc == 4 && strcmp(argv[1], "plan") == 0)
        return do_plan(argv + 2);
    fprintf(stderr, "usage: mllama_dump encode MODEL IMAGE N_EMBD_TEXT OUT [--crop X Y W H] "
            "[--transpose]\n       mllama_dump plan TILE MAX_TILES < sizes\n");
    return 2;
}
