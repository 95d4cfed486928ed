/* clip_dump.c - writes what lmrt's CLIP encoder and resampler compute to raw float32
 * files, for tests/vision/test_clip_reference.py to compare with the float64
 * reference (scripts/reference_clip.py). A test helper, not an example:
 *   clip_dump encode MODEL.gguf IMAGE N_EMBD_TEXT OUT   [n_tokens][n_embd_text]
 *   clip_dump resize IMAGE W H bicubic|bilinear OUT     [H][W][3]
 * Runs on the CPU backend with 2 threads; exits 1 with lmrt's message on error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "base/alloc.h"
#include "base/error.h"
#include "format/gguf.h"
#include "format/image.h"
#include "model/image_preprocess.h"
#include "model/vision_clip.h"

static int write_floats(const char *path, const float *x, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(x, sizeof *x, n, f) != n) {
        fprintf(stderr, "clip_dump: cannot write %s\n", path);
        if (f)
            fclose(f);
        return 1;
    }
    return fclose(f) != 0;
}

static int fail(lmrt_status st)
{
    fprintf(stderr, "clip_dump: status %d: %s\n", (int)st, lmrt_last_error());
    return 1;
}

static int do_resize(char **argv)
{
    image_rgb8 img = {0};
    lmrt_status st = image_load_file(argv[0], 1 << 24, &img);
    if (st)
        return fail(st);
    int w = atoi(argv[1]), h = atoi(argv[2]);
    image_filter filt = strcmp(argv[3], "bilinear") == 0 ? IMAGE_FILTER_BILINEAR
                                                          : IMAGE_FILTER_BICUBIC;
    float *out = malloc((size_t)(w > 0 ? w : 1) * (size_t)(h > 0 ? h : 1) * 3 * sizeof *out);
    int rc = 1;
    if (out && !(st = image_resize(&img, w, h, filt, out)))
        rc = write_floats(argv[4], out, (size_t)w * (size_t)h * 3);
    else if (out)
        rc = fail(st);
    free(out);
    image_rgb8_free(&img);
    return rc;
}

static int do_encode(char **argv)
{
    const backend_vtable *be = backend_find(LMRT_BACKEND_CPU);
    backend_ctx *bctx = NULL;
    gguf_file *f = NULL;
    clip_encoder *enc = NULL;
    image_rgb8 img = {0};
    float *out = NULL;
    int rc = 1;
    int n_text = atoi(argv[2]);
    lmrt_status st;
    if ((st = be->ctx_create(0, 2, &bctx)) || (st = gguf_open(argv[0], true, &f)) ||
        (st = clip_encoder_bind(f, n_text, be, bctx, &enc)) ||
        (st = image_load_file(argv[1], 1 << 24, &img))) {
        rc = fail(st);
        goto done;
    }
    size_t n = (size_t)clip_encoder_n_tokens(enc) * (size_t)n_text;
    out = malloc(n * sizeof *out);
    if (!out)
        goto done;
    if ((st = clip_encode_image(enc, &img, out))) {
        rc = fail(st);
        goto done;
    }
    rc = write_floats(argv[3], out, n);
done:
    free(out);
    image_rgb8_free(&img);
    clip_encoder_free(enc);
    gguf_close(f);
    if (bctx)
        be->ctx_free(bctx);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc == 6 && strcmp(argv[1], "encode") == 0)
        return do_encode(argv + 2);
    if (argc == 7 && strcmp(argv[1], "resize") == 0)
        return do_resize(argv + 2);
    fprintf(stderr, "usage: clip_dump encode MODEL IMAGE N_EMBD_TEXT OUT\n"
                    "       clip_dump resize IMAGE W H bicubic|bilinear OUT\n");
    return 2;
}
