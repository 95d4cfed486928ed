/* image.c - picks the image decoder by magic bytes, reads image files, and holds the
 * size checks every decoder shares. Decodes nothing itself (png.c, ppm.c, jpeg.c
 * do) and knows nothing about models. */
#include "format/image.h"

#include "format/file_read.h"

#include <inttypes.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"

void image_rgb8_free(image_rgb8 *img)
{
    if (!img)
        return;
    lmrt_mem_free(img->pixels);
    img->pixels = NULL;
    img->width = img->height = 0;
}

lmrt_status image_check_size(const char *what, int64_t width, int64_t height,
                             int64_t max_pixels)
{
    int64_t pixels;
    if (width < 1 || height < 1)
        return lmrt_fail(LMRT_E_FORMAT, "%s: image is %" PRId64 " x %" PRId64 " pixels "
                         "(both must be at least 1)", what, width, height);
    if (width > INT32_MAX || height > INT32_MAX)
        return lmrt_fail(LMRT_E_FORMAT, "%s: image is %" PRId64 " x %" PRId64 " pixels "
                         "(at most %" PRId32 " each)", what, width, height, INT32_MAX);
    if (__builtin_mul_overflow(width, height, &pixels) || pixels > max_pixels)
        return lmrt_fail(LMRT_E_FORMAT, "%s: image is %" PRId64 " x %" PRId64 " pixels, more "
                         "than the budget of %" PRId64 " pixels", what, width, height, max_pixels);
    size_t bytes;
    if (__builtin_mul_overflow((size_t)pixels, (size_t)3, &bytes))
        return lmrt_fail(LMRT_E_FORMAT, "%s: image of %" PRId64 " x %" PRId64 " pixels is too "
                         "large for this address space", what, width, height);
    return LMRT_OK;
}

lmrt_status image_alloc(const char *what, int64_t width, int64_t height, int64_t max_pixels,
                        image_rgb8 *img)
{
    lmrt_status st = image_check_size(what, width, height, max_pixels);
    if (st != LMRT_OK)
        return st;
    size_t bytes = (size_t)width * (size_t)height * 3;   /* checked above */
    img->pixels = lmrt_malloc(bytes);
    if (!img->pixels)
        return lmrt_fail(LMRT_E_NOMEM, "%s: out of memory for %" PRId64 " x %" PRId64 " pixels",
                         what, width, height);
    img->width = (int32_t)width;
    img->height = (int32_t)height;
    return LMRT_OK;
}

static bool starts_with(const uint8_t *p, size_t size, const char *magic, size_t n)
{
    return size >= n && memcmp(p, magic, n) == 0;
}

lmrt_status image_decode(const void *data, size_t size, int64_t max_pixels, image_rgb8 *out)
{
    if (!out || (!data && size))
        return lmrt_fail(LMRT_E_INVALID_ARG, "image_decode: NULL %s", out ? "data" : "out");
    if (max_pixels <= 0)
        return lmrt_fail(LMRT_E_INVALID_ARG, "image_decode: pixel budget %" PRId64
                         " (must be positive)", max_pixels);
    const uint8_t *p = data;
    if (starts_with(p, size, "\x89PNG", 4))
        return image_decode_png(p, size, max_pixels, out);
    if (starts_with(p, size, "\xff\xd8\xff", 3))
        return image_decode_jpeg(p, size, max_pixels, out);
    if (size >= 2 && p[0] == 'P' && p[1] >= '1' && p[1] <= '7')
        return image_decode_ppm(p, size, max_pixels, out);
    if (size < 4)
        return lmrt_fail(LMRT_E_FORMAT, "image: %zu bytes are too few for any image format",
                         size);
    return lmrt_fail(LMRT_E_FORMAT, "image: offset 0: magic bytes %02x %02x %02x %02x are "
                     "not PNG, JPEG or PPM/PGM", p[0], p[1], p[2], p[3]);
}

lmrt_status image_load_file(const char *path, int64_t max_pixels, image_rgb8 *out)
{
    if (!path || !out)
        return lmrt_fail(LMRT_E_INVALID_ARG, "image_load_file: NULL %s", path ? "out" : "path");
    uint8_t *bytes = NULL;
    size_t size = 0;
    lmrt_status st = format_read_file(path, &bytes, &size);
    if (st != LMRT_OK)
        return st;
    st = image_decode(bytes, size, max_pixels, out);
    lmrt_mem_free(bytes);
    if (st != LMRT_OK)
        return lmrt_fail_prefix(st, "%s", path);
    return LMRT_OK;
}
