/* image.h - encoded images (PNG, PPM/PGM, JPEG) decoded to 8-bit RGB.
 * Every decoder trusts nothing in its input and refuses an image larger than the
 * caller's pixel budget before allocating for it. Knows nothing about models:
 * resizing and normalizing for an encoder happen above, in model/. */
#ifndef LMRT_FORMAT_IMAGE_H
#define LMRT_FORMAT_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lmrt.h"

/* One decoded image. Alpha never survives decoding: transparent and translucent
 * pixels are composited over white, as Hugging Face's convert_to_rgb (used by the
 * Llama 3.2 Vision preprocessor) does. Samples wider than 8 bits keep their high
 * byte (PNG 16-bit, as PIL does) or are rescaled with rounding (PPM maxval != 255).
 * Gamma, colour profiles and other colour metadata are ignored. */
typedef struct image_rgb8 {
    int32_t width, height;          /* both >= 1 after a successful decode */
    uint8_t *pixels;                /* [height][width][3], R G B, rows packed */
} image_rgb8;

/* Frees the pixels and zeroes *img; NULL and an already freed image are fine. */
void image_rgb8_free(image_rgb8 *img);

/* Decodes PNG, PPM/PGM (P6, P5, P3, P2) or JPEG, chosen by the leading magic bytes.
 * `max_pixels` (> 0) bounds width * height; larger images are LMRT_E_FORMAT before
 * anything is allocated for them. Errors: LMRT_E_FORMAT for malformed input (the
 * message names the format, offset and field; a truncated file, a bad CRC or zlib
 * checksum, IDAT that inflates to more or less than IHDR implies and corrupt JPEG
 * entropy data all count), LMRT_E_UNSUPPORTED for valid input this build cannot
 * decode (an unknown critical PNG chunk, PBM/PAM, a JPEG in an unknown colour space,
 * any JPEG without libjpeg), LMRT_E_NOMEM, LMRT_E_INVALID_ARG. `out` is written only
 * on success; free it with image_rgb8_free. */
lmrt_status image_decode(const void *data, size_t size, int64_t max_pixels, image_rgb8 *out);

/* Reads `path` whole and decodes it; LMRT_E_IO names the path, and every other
 * message is prefixed with it. */
lmrt_status image_load_file(const char *path, int64_t max_pixels, image_rgb8 *out);

/* The decoders behind image_decode, with the same contract; each expects its own
 * magic and says so when it is missing. */
lmrt_status image_decode_png(const uint8_t *data, size_t size, int64_t max_pixels,
                             image_rgb8 *out);
lmrt_status image_decode_ppm(const uint8_t *data, size_t size, int64_t max_pixels,
                             image_rgb8 *out);
lmrt_status image_decode_jpeg(const uint8_t *data, size_t size, int64_t max_pixels,
                              image_rgb8 *out);

/* True when this build decodes JPEG (libjpeg found at configure time). */
bool image_jpeg_supported(void);

/* For the decoders: checks width, height (1..INT32_MAX) against the budget, then
 * allocates img->pixels for them. `what` ("PNG", "PPM", ...) starts the message. */
lmrt_status image_alloc(const char *what, int64_t width, int64_t height, int64_t max_pixels,
                        image_rgb8 *img);

/* For the decoders: LMRT_E_FORMAT when width x height exceeds the budget or the
 * limits above; allocates nothing. */
lmrt_status image_check_size(const char *what, int64_t width, int64_t height,
                             int64_t max_pixels);

#endif
