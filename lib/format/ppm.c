/* ppm.c - decode Netpbm PPM (P6, P3) and PGM (P5, P2) images to 8-bit RGB.
 * Bounds every number and checks the data is all there before allocating; reads
 * only the first image of a multi-image file. PBM and PAM are not decoded. */
#include <inttypes.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "format/image.h"

typedef struct ppm_cursor {
    const uint8_t *data;
    size_t size, pos;
} ppm_cursor;

static bool is_space(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Skips whitespace and '#' comments (to the end of their line). */
static void skip_space(ppm_cursor *c)
{
    while (c->pos < c->size) {
        if (is_space(c->data[c->pos])) {
            c->pos++;
        } else if (c->data[c->pos] == '#') {
            while (c->pos < c->size && c->data[c->pos] != '\n' && c->data[c->pos] != '\r')
                c->pos++;
        } else {
            break;
        }
    }
}

/* One decimal number in [lo, hi] after optional whitespace and comments. */
static lmrt_status read_number(ppm_cursor *c, const char *what, uint32_t lo, uint32_t hi,
                               uint32_t *out)
{
    skip_space(c);
    size_t at = c->pos;
    if (at >= c->size)
        return lmrt_fail(LMRT_E_FORMAT, "PPM: offset %zu: file ends before the %s", at, what);
    uint64_t v = 0;
    while (c->pos < c->size && c->data[c->pos] >= '0' && c->data[c->pos] <= '9') {
        v = v * 10 + (uint64_t)(c->data[c->pos] - '0');
        c->pos++;
        if (v > hi)
            return lmrt_fail(LMRT_E_FORMAT, "PPM: offset %zu: %s is larger than %" PRIu32, at,
                             what, hi);
    }
    if (c->pos == at)
        return lmrt_fail(LMRT_E_FORMAT, "PPM: offset %zu: %s expected, found byte 0x%02x", at,
                         what, c->data[at]);
    if (c->pos < c->size && !is_space(c->data[c->pos]) && c->data[c->pos] != '#')
        return lmrt_fail(LMRT_E_FORMAT, "PPM: offset %zu: %s is followed by byte 0x%02x, not "
                         "whitespace", c->pos, what, c->data[c->pos]);
    if (v < lo)
        return lmrt_fail(LMRT_E_FORMAT, "PPM: offset %zu: %s is %" PRIu64 " (at least %" PRIu32
                         " allowed)", at, what, v, lo);
    *out = (uint32_t)v;
    return LMRT_OK;
}

/* Scales a sample of 0..maxval to 0..255, rounding to nearest. */
static uint8_t scale(uint32_t v, uint32_t maxval)
{
    return (uint8_t)((v * 255u + maxval / 2) / maxval);
}

static lmrt_status read_header(ppm_cursor *c, bool *plain, uint32_t *channels, uint32_t *width,
                               uint32_t *height, uint32_t *maxval)
{
    const uint8_t *d = c->data;
    if (c->size < 2 || d[0] != 'P' || d[1] < '1' || d[1] > '7')
        return lmrt_fail(LMRT_E_FORMAT, "PPM: offset 0: not a Netpbm magic number (P1 to P7)");
    *plain = d[1] == '2' || d[1] == '3';
    *channels = d[1] == '3' || d[1] == '6' ? 3 : 1;
    c->pos = 2;
    if (c->pos < c->size && !is_space(d[c->pos]) && d[c->pos] != '#')
        return lmrt_fail(LMRT_E_FORMAT, "PPM: offset 2: magic P%c is followed by byte 0x%02x, "
                         "not whitespace", d[1], d[2]);
    if (d[1] == '1' || d[1] == '4')
        return lmrt_fail(LMRT_E_UNSUPPORTED, "PPM: offset 0: P%c (PBM bitmap) is not supported",
                         d[1]);
    if (d[1] == '7')
        return lmrt_fail(LMRT_E_UNSUPPORTED, "PPM: offset 0: P7 (PAM) is not supported");
    lmrt_status st = read_number(c, "width", 1, INT32_MAX, width);
    if (st == LMRT_OK)
        st = read_number(c, "height", 1, INT32_MAX, height);
    if (st == LMRT_OK)
        st = read_number(c, "maxval", 1, 65535, maxval);
    if (st != LMRT_OK)
        return st;
    if (!*plain) {   /* exactly one whitespace byte separates the header from the raster */
        if (c->pos >= c->size || !is_space(d[c->pos]))
            return lmrt_fail(LMRT_E_FORMAT, "PPM: offset %zu: no whitespace byte after maxval",
                             c->pos);
        c->pos++;
    }
    return LMRT_OK;
}

lmrt_status image_decode_ppm(const uint8_t *data, size_t size, int64_t max_pixels,
                             image_rgb8 *out)
{
    if (!out || (!data && size))
        return lmrt_fail(LMRT_E_INVALID_ARG, "image_decode_ppm: NULL %s", out ? "data" : "out");
    ppm_cursor c = {data, size, 0};
    bool plain = false;
    uint32_t channels = 0, width = 0, height = 0, maxval = 0;
    lmrt_status st = read_header(&c, &plain, &channels, &width, &height, &maxval);
    if (st != LMRT_OK)
        return st;
    if ((st = image_check_size("PPM", width, height, max_pixels)) != LMRT_OK)
        return st;
    size_t samples = (size_t)width * height * channels;   /* <= 3 * pixels, checked */
    size_t left = size - c.pos, need;
    if (plain) {   /* each sample takes a digit and the whitespace before it */
        if (samples > left / 2)
            return lmrt_fail(LMRT_E_FORMAT, "PPM: offset %zu: %zu bytes cannot hold %zu plain "
                             "samples", c.pos, left, samples);
    } else {
        size_t bps = maxval > 255 ? 2 : 1;
        if (__builtin_mul_overflow(samples, bps, &need) || need > left)
            return lmrt_fail(LMRT_E_FORMAT, "PPM: offset %zu: raster needs %zu x %zu bytes, "
                             "but only %zu remain", c.pos, samples, bps, left);
    }
    image_rgb8 img = {0, 0, NULL};
    if ((st = image_alloc("PPM", width, height, max_pixels, &img)) != LMRT_OK)
        return st;
    uint8_t *px = img.pixels;
    for (size_t i = 0; i < samples; i++) {
        size_t at = c.pos;
        uint32_t v;
        if (plain) {
            if ((st = read_number(&c, "sample", 0, 65535, &v)) != LMRT_OK)
                goto fail;
        } else if (maxval > 255) {
            v = (uint32_t)data[c.pos] << 8 | data[c.pos + 1];
            c.pos += 2;
        } else {
            v = data[c.pos++];
        }
        if (v > maxval) {
            st = lmrt_fail(LMRT_E_FORMAT, "PPM: offset %zu: sample %zu is %" PRIu32 ", above "
                           "maxval %" PRIu32, at, i, v, maxval);
            goto fail;
        }
        uint8_t s = maxval == 255 ? (uint8_t)v : scale(v, maxval);
        if (channels == 3) {
            *px++ = s;
        } else {
            px[0] = px[1] = px[2] = s;
            px += 3;
        }
    }
    *out = img;
    return LMRT_OK;
fail:
    image_rgb8_free(&img);
    return st;
}
