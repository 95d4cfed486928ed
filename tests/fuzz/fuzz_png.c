/* fuzz_png.c - libFuzzer harness for the image decoders (PNG, PPM/PGM and, when
 * built with libjpeg, JPEG) behind image_decode: any input either fails cleanly
 * or yields an image within the pixel budget whose every pixel is readable.
 * Mutations rarely keep CRCs and zlib checksums valid, so a PNG is also decoded
 * with its CRCs repaired, and an input starting with 'Z' is a PNG spelled out:
 *   'Z', IHDR data (13), n, PLTE (3n), m, tRNS (m), scanlines (compressed here). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "format/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_PIXELS ((int64_t)1 << 22)   /* 4 Mpixel */

static volatile uint64_t sink;

static void decode(const uint8_t *data, size_t size)
{
    image_rgb8 img = {-1, -1, NULL};
    lmrt_status st = image_decode(data, size, FUZZ_MAX_PIXELS, &img);
    if (st != LMRT_OK) {
        if (img.width != -1 || img.height != -1 || img.pixels)
            __builtin_trap();   /* out must be untouched on failure */
        if (st != LMRT_E_FORMAT && st != LMRT_E_UNSUPPORTED && st != LMRT_E_NOMEM)
            __builtin_trap();
        return;
    }
    if (img.width < 1 || img.height < 1 || !img.pixels ||
        (int64_t)img.width * img.height > FUZZ_MAX_PIXELS)
        __builtin_trap();
    uint64_t sum = 0;
    size_t n = (size_t)img.width * (size_t)img.height * 3;
    for (size_t i = 0; i < n; i++)
        sum += img.pixels[i];
    sink += sum;
    image_rgb8_free(&img);
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Rewrites the CRC of every whole chunk; true when any changed. */
static int repair_crcs(uint8_t *p, size_t size)
{
    int changed = 0;
    for (size_t pos = 8; size - pos >= 12;) {
        uint32_t len = (uint32_t)p[pos] << 24 | (uint32_t)p[pos + 1] << 16 |
                       (uint32_t)p[pos + 2] << 8 | p[pos + 3];
        if (len > size - pos - 12)
            break;
        uint8_t crc[4];
        put_be32(crc, (uint32_t)crc32(0, p + pos + 4, (uInt)len + 4));
        changed |= memcmp(p + pos + 8 + len, crc, 4) != 0;
        memcpy(p + pos + 8 + len, crc, 4);
        pos += 12 + (size_t)len;
    }
    return changed;
}

static size_t put_chunk(uint8_t *out, const char *type, const uint8_t *data, size_t n)
{
    put_be32(out, (uint32_t)n);
    memcpy(out + 4, type, 4);
    if (n)
        memcpy(out + 8, data, n);
    put_be32(out + 8 + n, (uint32_t)crc32(0, out + 4, (uInt)n + 4));
    return 12 + n;
}

/* The 'Z' form: a PNG with valid CRCs and zlib stream around the fuzzer's fields. */
static void decode_spelled_out(const uint8_t *data, size_t size)
{
    size_t at = 1 + 13;
    if (size < at + 1 || size - at - 1 < 3u * data[at])
        return;
    const uint8_t *ihdr = data + 1, *plte = data + at + 1;
    size_t n_plte = 3u * data[at];
    at += 1 + n_plte;
    if (size < at + 1 || size - at - 1 < data[at])
        return;
    const uint8_t *trns = data + at + 1;
    size_t n_trns = data[at];
    at += 1 + n_trns;
    uLongf z_n = compressBound((uLong)(size - at));
    uint8_t *png = malloc(8 + 4 * 12 + 13 + n_plte + n_trns + z_n + 12);
    if (!png)
        return;
    size_t n = 0;
    memcpy(png, "\x89PNG\r\n\x1a\n", 8);
    n = 8 + put_chunk(png + 8, "IHDR", ihdr, 13);
    if (n_plte)
        n += put_chunk(png + n, "PLTE", plte, n_plte);
    if (n_trns)
        n += put_chunk(png + n, "tRNS", trns, n_trns);
    /* compressed straight behind the IDAT header, which is filled in after */
    if (compress2(png + n + 8, &z_n, data + at, (uLong)(size - at), 1) == Z_OK) {
        put_be32(png + n, (uint32_t)z_n);
        memcpy(png + n + 4, "IDAT", 4);
        put_be32(png + n + 8 + z_n, (uint32_t)crc32(0, png + n + 4, (uInt)z_n + 4));
        n += 12 + z_n;
        n += put_chunk(png + n, "IEND", NULL, 0);
        decode(png, n);
    }
    free(png);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    decode(data, size);
    if (size >= 8 && memcmp(data, "\x89PNG", 4) == 0) {
        uint8_t *copy = malloc(size);
        if (!copy)
            return 0;
        memcpy(copy, data, size);
        if (repair_crcs(copy, size))
            decode(copy, size);
        free(copy);
    } else if (size >= 1 && data[0] == 'Z') {
        decode_spelled_out(data, size);
    }
    return 0;
}
