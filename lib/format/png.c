/* png.c - decode PNG (every colour type and bit depth, Adam7 too) to 8-bit RGB.
 * Walks and CRC-checks every chunk before allocating, inflates IDAT into a buffer
 * sized from IHDR and stops at that size; never trusts a length, index or filter. */
#include <inttypes.h>
#include <limits.h>
#include <string.h>
#include <zlib.h>

#include "base/alloc.h"
#include "base/error.h"
#include "format/image.h"

/* Deflate cannot expand one input byte to more than 1032 output bytes (a 258-byte
 * match in 2 bits); fewer IDAT bytes than this bound allows is a format error
 * before the inflate buffer is allocated. */
#define PNG_MAX_INFLATE_RATIO 1032u
#define PNG_MAX_CHUNK_LEN 0x7fffffffu

enum { PNG_GREY = 0, PNG_RGB = 2, PNG_PALETTE = 3, PNG_GREY_ALPHA = 4, PNG_RGBA = 6 };

typedef struct png_info {
    const uint8_t *data;             /* the whole file, size bytes */
    size_t size;
    uint32_t width, height;
    uint8_t depth, colour, interlace;
    uint8_t channels;                /* samples per pixel */
    uint8_t palette[256][3];
    uint8_t palette_alpha[256];      /* 255 unless tRNS says otherwise */
    uint32_t n_palette;              /* 0: no PLTE */
    bool have_trns;
    uint16_t trns[3];                /* grey or RGB transparent colour, raw sample values */
    size_t idat_first;               /* offset of the first IDAT chunk */
    uint64_t idat_bytes;             /* sum of IDAT lengths */
} png_info;

static uint32_t load_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The chunk type as printable text for messages: letters stay, others become '?'. */
static void type_name(const uint8_t *p, char name[5])
{
    for (int i = 0; i < 4; i++) {
        uint8_t c = p[i];
        name[i] = (char)(((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')) ? c : '?');
    }
    name[4] = '\0';
}

static bool is_type(const uint8_t *p, const char *t)
{
    return memcmp(p, t, 4) == 0;
}

/* Checks the IHDR fields and fills width .. channels. */
static lmrt_status read_ihdr(png_info *png, size_t at, const uint8_t *p, uint32_t len,
                             int64_t max_pixels)
{
    if (len != 13)
        return lmrt_fail(LMRT_E_FORMAT, "PNG: offset %zu: IHDR is %" PRIu32 " bytes, not 13", at,
                         len);
    png->width = load_be32(p);
    png->height = load_be32(p + 4);
    png->depth = p[8];
    png->colour = p[9];
    png->interlace = p[12];
    if (png->width == 0 || png->height == 0 || png->width > PNG_MAX_CHUNK_LEN ||
        png->height > PNG_MAX_CHUNK_LEN)
        return lmrt_fail(LMRT_E_FORMAT, "PNG: offset %zu: IHDR size %" PRIu32 " x %" PRIu32
                         " (each must be 1 to 2^31-1)", at + 8, png->width, png->height);
    /* colour type, samples per pixel, allowed bit depths as a mask of 1 << depth */
    static const struct { uint8_t colour, channels; uint32_t depths; } kinds[] = {
        {PNG_GREY, 1, 1u << 1 | 1u << 2 | 1u << 4 | 1u << 8 | 1u << 16},
        {PNG_RGB, 3, 1u << 8 | 1u << 16},
        {PNG_PALETTE, 1, 1u << 1 | 1u << 2 | 1u << 4 | 1u << 8},
        {PNG_GREY_ALPHA, 2, 1u << 8 | 1u << 16},
        {PNG_RGBA, 4, 1u << 8 | 1u << 16},
    };
    uint32_t depths = 0;
    png->channels = 0;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (kinds[i].colour == png->colour) {
            png->channels = kinds[i].channels;
            depths = kinds[i].depths;
        }
    if (!png->channels)
        return lmrt_fail(LMRT_E_FORMAT, "PNG: offset %zu: IHDR colour type %u (0, 2, 3, 4 or 6 "
                         "allowed)", at + 17, png->colour);
    if (png->depth > 16 || !((depths >> png->depth) & 1))
        return lmrt_fail(LMRT_E_FORMAT, "PNG: offset %zu: IHDR bit depth %u is not allowed "
                         "with colour type %u", at + 16, png->depth, png->colour);
    if (p[10] != 0 || p[11] != 0)
        return lmrt_fail(LMRT_E_FORMAT, "PNG: offset %zu: IHDR compression method %u / filter "
                         "method %u (only 0 is defined)", at + 18, p[10], p[11]);
    if (png->interlace > 1)
        return lmrt_fail(LMRT_E_FORMAT, "PNG: offset %zu: IHDR interlace method %u (0 or 1 "
                         "allowed)", at + 20, png->interlace);
    return image_check_size("PNG", png->width, png->height, max_pixels);
}

static lmrt_status read_plte(png_info *png, size_t at, const uint8_t *p, uint32_t len)
{
    if (png->colour == PNG_GREY || png->colour == PNG_GREY_ALPHA)
        return lmrt_fail(LMRT_E_FORMAT, "PNG: offset %zu: PLTE in a greyscale image", at);
    if (png->n_palette)
        return lmrt_fail(LMRT_E_FORMAT, "PNG: offset %zu: second PLTE chunk", at);
    if (len == 0 || len % 3 != 0 || len > 256 * 3)
        return lmrt_fail(LMRT_E_FORMAT, "PNG: offset %zu: PLTE is %" PRIu32 " bytes (1 to 256 "
                         "RGB entries of 3 bytes)", at, len);
    png->n_palette = len / 3;
    memcpy(png->palette, p, len);
    return LMRT_OK;
}

static lmrt_status read_trns(png_info *png, size_t at, const uint8_t *p, uint32_t len)
{
    if (png->have_trns)
        return lmrt_fail(LMRT_E_FORMAT, "PNG: offset %zu: second tRNS chunk", at);
    png->have_trns = true;
    switch (png->colour) {
    case PNG_PALETTE:
        if (!png->n_palette)
            return lmrt_fail(LMRT_E_FORMAT, "PNG: offset %zu: tRNS before PLTE", at);
        if (len > png->n_palette)
            return lmrt_fail(LMRT_E_FORMAT, "PNG: offset %zu: tRNS has %" PRIu32 " entries but "
                             "PLTE only %" PRIu32, at, len, png->n_palette);
        memcpy(png->palette_alpha, p, len);
        return LMRT_OK;
    case PNG_GREY:
    case PNG_RGB: {
        uint32_t want = png->colour == PNG_GREY ? 2 : 6;
        if (len != want)
            return lmrt_fail(LMRT_E_FORMAT, "PNG: offset %zu: tRNS is %" PRIu32 " bytes, not %"
                             PRIu32, at, len, want);
        for (uint32_t i = 0; i < want / 2; i++)
            png->trns[i] = (uint16_t)(p[2 * i] << 8 | p[2 * i + 1]);
        return LMRT_OK;
    }
    default:
        return lmrt_fail(LMRT_E_FORMAT, "PNG: offset %zu: tRNS in an image with an alpha "
                         "channel (colour type %u)", at, png->colour);
    }
}

/* Walks every chunk: bounds, CRC, order, IHDR/PLTE/tRNS contents, IEND. */
static lmrt_status read_chunks(png_info *png, int64_t max_pixels)
{
    size_t pos = 8;
    bool seen_ihdr = false, seen_idat = false, idat_done = false;
    for (;;) {
        if (png->size - pos < 12)
            return lmrt_fail(LMRT_E_FORMAT, "PNG: offset %zu: file ends inside a chunk header "
                             "(%zu bytes left, IEND missing)", pos, png->size - pos);
        const uint8_t *h = png->data + pos;
        uint32_t len = load_be32(h);
        char name[5];
        type_name(h + 4, name);
        if (len > PNG_MAX_CHUNK_LEN)
            return lmrt_fail(LMRT_E_FORMAT, "PNG: offset %zu: chunk '%s' length %" PRIu32
                             " exceeds 2^31-1", pos, name, len);
        if (png->size - pos - 12 < len)
            return lmrt_fail(LMRT_E_FORMAT, "PNG: offset %zu: chunk '%s' of %" PRIu32 " bytes "
                             "runs past the end of the file (%zu bytes)", pos, name, len,
                             png->size);
        for (int i = 4; i < 8; i++)
            if (!((h[i] >= 'A' && h[i] <= 'Z') || (h[i] >= 'a' && h[i] <= 'z')))
                return lmrt_fail(LMRT_E_FORMAT, "PNG: offset %zu: chunk type byte %d is 0x%02x, "
                                 "not a letter", pos, i - 4, h[i]);
        uint32_t stored = load_be32(h + 8 + len);
        uint32_t computed = (uint32_t)crc32(crc32(0, NULL, 0), h + 4, (uInt)len + 4);
        if (stored != computed)
            return lmrt_fail(LMRT_E_FORMAT, "PNG: offset %zu: chunk '%s' CRC is 0x%08" PRIx32
                             ", computed 0x%08" PRIx32, pos, name, stored, computed);
        const uint8_t *p = h + 8, *type = h + 4;
        lmrt_status st = LMRT_OK;
        if (!seen_ihdr && !is_type(type, "IHDR"))
            return lmrt_fail(LMRT_E_FORMAT, "PNG: offset %zu: first chunk is '%s', not IHDR", pos,
                             name);
        if (seen_idat && !is_type(type, "IDAT"))
            idat_done = true;
        if (is_type(type, "IHDR")) {
            if (seen_ihdr)
                return lmrt_fail(LMRT_E_FORMAT, "PNG: offset %zu: second IHDR chunk", pos);
            seen_ihdr = true;
            st = read_ihdr(png, pos, p, len, max_pixels);
        } else if (is_type(type, "PLTE")) {
            if (seen_idat)
                return lmrt_fail(LMRT_E_FORMAT, "PNG: offset %zu: PLTE after IDAT", pos);
            st = read_plte(png, pos, p, len);
        } else if (is_type(type, "tRNS")) {
            if (seen_idat)
                return lmrt_fail(LMRT_E_FORMAT, "PNG: offset %zu: tRNS after IDAT", pos);
            st = read_trns(png, pos, p, len);
        } else if (is_type(type, "IDAT")) {
            if (idat_done)
                return lmrt_fail(LMRT_E_FORMAT, "PNG: offset %zu: IDAT chunks are not "
                                 "consecutive", pos);
            if (png->colour == PNG_PALETTE && !png->n_palette)
                return lmrt_fail(LMRT_E_FORMAT, "PNG: offset %zu: IDAT before PLTE in a "
                                 "palette image", pos);
            if (!seen_idat)
                png->idat_first = pos;
            seen_idat = true;
            png->idat_bytes += len;
        } else if (is_type(type, "IEND")) {
            if (len != 0)
                return lmrt_fail(LMRT_E_FORMAT, "PNG: offset %zu: IEND has %" PRIu32 " bytes of "
                                 "data (0 allowed)", pos, len);
            if (!seen_idat)
                return lmrt_fail(LMRT_E_FORMAT, "PNG: offset %zu: IEND before any IDAT", pos);
            return LMRT_OK;   /* whatever follows IEND is not part of the image */
        } else if (!(type[0] & 0x20)) {
            return lmrt_fail(LMRT_E_UNSUPPORTED, "PNG: offset %zu: critical chunk '%s' is not "
                             "known to this decoder", pos, name);
        }   /* else an ancillary chunk we do not need (gAMA, iCCP, tEXt, ...): skipped */
        if (st != LMRT_OK)
            return st;
        pos += 12 + (size_t)len;
    }
}

/* The filtered (inflated) size of one pass or image of w x h pixels: h rows of a
 * filter byte plus the packed samples. */
static bool scanlines_size(const png_info *png, uint64_t w, uint64_t h, uint64_t *bytes)
{
    uint64_t bits, row;
    if (w == 0 || h == 0) {
        *bytes = 0;
        return true;
    }
    if (__builtin_mul_overflow(w, (uint64_t)png->channels * png->depth, &bits))
        return false;
    row = bits / 8 + (bits % 8 != 0) + 1;
    return !__builtin_mul_overflow(row, h, bytes);
}

/* Adam7: pass p covers x = x0 + k * dx, y = y0 + k * dy. Pass 0 is "no interlace". */
static const uint8_t adam7[8][4] = {
    {0, 0, 1, 1}, {0, 0, 8, 8}, {4, 0, 8, 8}, {0, 4, 4, 8},
    {2, 0, 4, 4}, {0, 2, 2, 4}, {1, 0, 2, 2}, {0, 1, 1, 2},
};

static uint32_t pass_extent(uint32_t full, uint32_t start, uint32_t step)
{
    return full > start ? (full - start + step - 1) / step : 0;
}

typedef struct inflater {
    z_stream zs;
    uint8_t *buf;                    /* [size] filtered scanlines of all passes */
    size_t size, done;
    bool ended;                      /* Z_STREAM_END seen */
    uint8_t probe;                   /* one byte of room past the end, to catch excess */
} inflater;

static voidpf zalloc_cb(voidpf opaque, uInt items, uInt size)
{
    (void)opaque;
    return lmrt_calloc(items, size);
}

static void zfree_cb(voidpf opaque, voidpf p)
{
    (void)opaque;
    lmrt_mem_free(p);
}

/* Inflates `len` bytes of the IDAT chunk at `at` into inf->buf; never writes past
 * its size, and fails as soon as the stream would produce more. */
static lmrt_status pump(inflater *inf, size_t at, const uint8_t *p, uint32_t len)
{
    inf->zs.next_in = (Bytef *)(uintptr_t)p;
    inf->zs.avail_in = len;
    for (;;) {
        if (inf->ended) {
            if (inf->zs.avail_in)
                return lmrt_fail(LMRT_E_FORMAT, "PNG: offset %zu: IDAT continues after the end "
                                 "of its zlib stream", at);
            return LMRT_OK;
        }
        size_t room = inf->size - inf->done;
        uInt avail = room > (1u << 30) ? (1u << 30) : (uInt)room;
        inf->zs.next_out = room ? inf->buf + inf->done : &inf->probe;
        inf->zs.avail_out = room ? avail : 1;
        uInt before = inf->zs.avail_out;
        int zr = inflate(&inf->zs, Z_NO_FLUSH);
        size_t made = before - inf->zs.avail_out;
        if (!room && made)
            return lmrt_fail(LMRT_E_FORMAT, "PNG: offset %zu: IDAT inflates to more than the "
                             "%zu bytes that IHDR implies", at, inf->size);
        inf->done += made;
        switch (zr) {
        case Z_STREAM_END:
            inf->ended = true;
            break;
        case Z_OK:
            if (inf->zs.avail_in == 0 && inf->zs.avail_out > 0)
                return LMRT_OK;   /* all input used, all output flushed */
            break;
        case Z_BUF_ERROR:          /* no progress possible: more input needed */
            return LMRT_OK;
        case Z_MEM_ERROR:
            return lmrt_fail(LMRT_E_NOMEM, "PNG: offset %zu: out of memory in inflate", at);
        case Z_NEED_DICT:
            return lmrt_fail(LMRT_E_FORMAT, "PNG: offset %zu: IDAT zlib stream asks for a "
                             "preset dictionary", at);
        default:
            return lmrt_fail(LMRT_E_FORMAT, "PNG: offset %zu: IDAT zlib data is corrupt: %s", at,
                             inf->zs.msg ? inf->zs.msg : "inflate failed");
        }
    }
}

/* Inflates the consecutive IDAT chunks into inf->buf, exactly inf->size bytes. */
static lmrt_status inflate_idat(const png_info *png, inflater *inf)
{
    if (inflateInit(&inf->zs) != Z_OK)
        return lmrt_fail(LMRT_E_NOMEM, "PNG: out of memory starting inflate");
    lmrt_status st = LMRT_OK;
    size_t pos = png->idat_first;
    /* read_chunks checked every header, length and CRC up to IEND */
    while (st == LMRT_OK && is_type(png->data + pos + 4, "IDAT")) {
        uint32_t len = load_be32(png->data + pos);
        st = pump(inf, pos, png->data + pos + 8, len);
        pos += 12 + (size_t)len;
    }
    if (st == LMRT_OK)
        st = pump(inf, pos, NULL, 0);   /* flush what inflate still holds */
    if (st == LMRT_OK && inf->done < inf->size)
        st = lmrt_fail(LMRT_E_FORMAT, "PNG: offset %zu: IDAT inflates to %zu bytes, but IHDR "
                       "implies %zu", png->idat_first, inf->done, inf->size);
    else if (st == LMRT_OK && !inf->ended)
        st = lmrt_fail(LMRT_E_FORMAT, "PNG: offset %zu: IDAT zlib stream is truncated (no end "
                       "of stream after %zu bytes)", png->idat_first, inf->done);
    inflateEnd(&inf->zs);
    return st;
}

static uint8_t paeth(uint8_t a, uint8_t b, uint8_t c)
{
    int p = a + b - c, pa = p > a ? p - a : a - p, pb = p > b ? p - b : b - p,
        pc = p > c ? p - c : c - p;
    return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/* Reverses the filter of one scanline in place; `prev` is the previous
 * unfiltered scanline of the same pass, or NULL for the first. */
static void unfilter(uint8_t type, uint8_t *row, const uint8_t *prev, size_t n, size_t bpp)
{
    switch (type) {
    case 1:
        for (size_t i = bpp; i < n; i++)
            row[i] = (uint8_t)(row[i] + row[i - bpp]);
        break;
    case 2:
        for (size_t i = 0; prev && i < n; i++)
            row[i] = (uint8_t)(row[i] + prev[i]);
        break;
    case 3:
        for (size_t i = 0; i < n; i++) {
            unsigned left = i >= bpp ? row[i - bpp] : 0, up = prev ? prev[i] : 0;
            row[i] = (uint8_t)(row[i] + ((left + up) >> 1));
        }
        break;
    case 4:
        for (size_t i = 0; i < n; i++) {
            uint8_t left = i >= bpp ? row[i - bpp] : 0, up = prev ? prev[i] : 0,
                    corner = prev && i >= bpp ? prev[i - bpp] : 0;
            row[i] = (uint8_t)(row[i] + paeth(left, up, corner));
        }
        break;
    default:
        break;
    }
}

/* Sample k of an unfiltered scanline at `depth` bits, leftmost in the high bits. */
static unsigned sample(const uint8_t *row, size_t k, unsigned depth)
{
    switch (depth) {
    case 16: return (unsigned)row[2 * k] << 8 | row[2 * k + 1];
    case 8: return row[k];
    default: {
        size_t bit = k * depth;
        return (row[bit / 8] >> (8 - depth - bit % 8)) & ((1u << depth) - 1);
    }
    }
}

/* Colour c at alpha a, over the white background. */
static uint8_t over_white(unsigned c, unsigned a)
{
    return (uint8_t)((c * a + 255u * (255u - a) + 127u) / 255u);
}

/* Converts one unfiltered scanline of `n` pixels to RGB at out[0], out[step], ... */
static lmrt_status convert_row(const png_info *png, const uint8_t *row, uint32_t n, uint8_t *out,
                               size_t step, uint32_t y)
{
    unsigned d = png->depth, maxv = (1u << d) - 1;
    for (uint32_t x = 0; x < n; x++, out += step) {
        unsigned v[4] = {0, 0, 0, 0}, a = 255;
        for (unsigned k = 0; k < png->channels; k++)
            v[k] = sample(row, (size_t)x * png->channels + k, d);
        switch (png->colour) {
        case PNG_PALETTE:
            if (v[0] >= png->n_palette)
                return lmrt_fail(LMRT_E_FORMAT, "PNG: pixel %" PRIu32 " of scanline %" PRIu32
                                 " uses palette index %u, but PLTE has %" PRIu32 " entries", x,
                                 y, v[0], png->n_palette);
            a = png->palette_alpha[v[0]];
            for (int k = 0; k < 3; k++)
                out[k] = over_white(png->palette[v[0]][k], a);
            continue;
        case PNG_GREY:
            if (png->have_trns && v[0] == png->trns[0])
                a = 0;
            v[1] = v[2] = v[0];
            break;
        case PNG_GREY_ALPHA:
            a = d == 16 ? v[1] >> 8 : v[1];
            v[1] = v[2] = v[0];
            break;
        case PNG_RGB:
            if (png->have_trns && v[0] == png->trns[0] && v[1] == png->trns[1] &&
                v[2] == png->trns[2])
                a = 0;
            break;
        default:   /* PNG_RGBA */
            a = d == 16 ? v[3] >> 8 : v[3];
            break;
        }
        for (int k = 0; k < 3; k++) {
            unsigned c = d == 16 ? v[k] >> 8 : d == 8 ? v[k] : v[k] * 255u / maxv;
            out[k] = a == 255 ? (uint8_t)c : over_white(c, a);
        }
    }
    return LMRT_OK;
}

/* Unfilters every scanline of every pass in inf->buf and writes the pixels. */
static lmrt_status unfilter_all(const png_info *png, uint8_t *buf, image_rgb8 *img)
{
    size_t bpp = ((size_t)png->channels * png->depth + 7) / 8;
    size_t at = 0;
    for (int p = png->interlace ? 1 : 0; p <= (png->interlace ? 7 : 0); p++) {
        const uint8_t *a = adam7[p];
        uint32_t w = pass_extent(png->width, a[0], a[2]);
        uint32_t h = pass_extent(png->height, a[1], a[3]);
        if (w == 0 || h == 0)
            continue;
        size_t row_bytes = ((size_t)w * png->channels * png->depth + 7) / 8;
        const uint8_t *prev = NULL;
        for (uint32_t r = 0; r < h; r++) {
            uint8_t type = buf[at];
            uint8_t *row = buf + at + 1;
            if (type > 4)
                return lmrt_fail(LMRT_E_FORMAT, "PNG: inflated byte %zu: scanline %" PRIu32 "%s "
                                 "has filter type %u (0 to 4 allowed)", at, r,
                                 p ? " of an Adam7 pass" : "", type);
            unfilter(type, row, prev, row_bytes, bpp);
            uint32_t y = a[1] + r * a[3];
            size_t step = (size_t)a[2] * 3;
            uint8_t *out = img->pixels + ((size_t)y * png->width + a[0]) * 3;
            lmrt_status st = convert_row(png, row, w, out, step, y);
            if (st != LMRT_OK)
                return st;
            prev = row;
            at += 1 + row_bytes;
        }
    }
    return LMRT_OK;
}

lmrt_status image_decode_png(const uint8_t *data, size_t size, int64_t max_pixels,
                             image_rgb8 *out)
{
    if (!out || (!data && size))
        return lmrt_fail(LMRT_E_INVALID_ARG, "image_decode_png: NULL %s", out ? "data" : "out");
    if (size < 8 || memcmp(data, "\x89PNG\r\n\x1a\n", 8) != 0)
        return lmrt_fail(LMRT_E_FORMAT, "PNG: offset 0: not a PNG signature%s",
                         size >= 4 && memcmp(data, "\x89PNG", 4) == 0
                             ? " (line endings were converted in transfer?)" : "");
    png_info *png = lmrt_calloc(1, sizeof *png);
    if (!png)
        return lmrt_fail(LMRT_E_NOMEM, "PNG: out of memory for the decoder state");
    inflater inf;
    memset(&inf, 0, sizeof inf);
    inf.zs.zalloc = zalloc_cb;
    inf.zs.zfree = zfree_cb;
    image_rgb8 img = {0, 0, NULL};
    png->data = data;
    png->size = size;
    memset(png->palette_alpha, 255, sizeof png->palette_alpha);
    lmrt_status st = read_chunks(png, max_pixels);
    if (st != LMRT_OK)
        goto fail;
    uint64_t total = 0;
    for (int p = png->interlace ? 1 : 0; p <= (png->interlace ? 7 : 0); p++) {
        uint64_t bytes;
        const uint8_t *a = adam7[p];
        if (!scanlines_size(png, pass_extent(png->width, a[0], a[2]),
                            pass_extent(png->height, a[1], a[3]), &bytes) ||
            __builtin_add_overflow(total, bytes, &total) || total > SIZE_MAX) {
            st = lmrt_fail(LMRT_E_FORMAT, "PNG: IHDR size %" PRIu32 " x %" PRIu32 " is too large "
                           "for this address space", png->width, png->height);
            goto fail;
        }
    }
    if ((png->idat_bytes + 1) * PNG_MAX_INFLATE_RATIO < total) {
        st = lmrt_fail(LMRT_E_FORMAT, "PNG: offset %zu: %" PRIu64 " bytes of IDAT cannot inflate "
                       "to the %" PRIu64 " bytes IHDR implies", png->idat_first, png->idat_bytes,
                       total);
        goto fail;
    }
    inf.size = (size_t)total;
    if (!(inf.buf = lmrt_malloc(inf.size))) {
        st = lmrt_fail(LMRT_E_NOMEM, "PNG: out of memory for %zu bytes of scanlines", inf.size);
        goto fail;
    }
    if ((st = inflate_idat(png, &inf)) != LMRT_OK)
        goto fail;
    if ((st = image_alloc("PNG", png->width, png->height, max_pixels, &img)) != LMRT_OK)
        goto fail;
    if ((st = unfilter_all(png, inf.buf, &img)) != LMRT_OK)
        goto fail;
    *out = img;
    img.pixels = NULL;
fail:
    image_rgb8_free(&img);
    lmrt_mem_free(inf.buf);
    lmrt_mem_free(png);
    return st;
}
