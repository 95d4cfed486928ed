/* test_image.c - image decoder tests: the real photos decode to the pixels an independent
 * decoder gives; every PNG colour type x bit depth x interlace x filter, encoded here,
 * decodes pixel-exactly; PPM/PGM and (when built with libjpeg) JPEG decode; and every
 * hostile input - bad CRC, bomb, truncation, bad filter or index, over-budget size,
 * failing allocation - is a clean error that leaves `out` untouched. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#ifdef LMRT_HAVE_JPEG
#include <jpeglib.h>
#endif

#include "base/alloc.h"
#include "base/error.h"
#include "format/image.h"

#define CAMERA_PATH LMRT_SOURCE_ROOT "/tests/data/images/camera.png"
#define CHELSEA_PATH LMRT_SOURCE_ROOT "/tests/data/images/chelsea.png"
#define BUDGET ((int64_t)1 << 22)   /* 4 Mpixel, as the fuzzer uses */

/* ------------------------------------------------------------------------ */
/* helpers                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct bytes {
    uint8_t *p;
    size_t n, cap;
} bytes;

static void b_put(bytes *b, const void *p, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    if (n)
        memcpy(b->p + b->n, p, n);
    b->n += n;
}

static void b_str(bytes *b, const char *s)
{
    b_put(b, s, strlen(s));
}

static void be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* One PNG chunk with its length and a correct CRC. */
static void b_chunk(bytes *b, const char *type, const void *data, size_t n)
{
    uint8_t h[8];
    be32(h, (uint32_t)n);
    memcpy(h + 4, type, 4);
    b_put(b, h, 8);
    b_put(b, data, n);
    uLong crc = crc32(crc32(0, NULL, 0), (const Bytef *)type, 4);
    if (n)   /* crc32() with a NULL buffer restarts at 0 */
        crc = crc32(crc, data, (uInt)n);
    be32(h, (uint32_t)crc);
    b_put(b, h, 4);
}

static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

static void b_ihdr(bytes *b, uint32_t w, uint32_t h, uint8_t depth, uint8_t colour,
                   uint8_t interlace)
{
    uint8_t d[13] = {0};
    be32(d, w);
    be32(d + 4, h);
    d[8] = depth, d[9] = colour, d[12] = interlace;
    b_put(b, png_sig, 8);
    b_chunk(b, "IHDR", d, 13);
}

static uint8_t *zlib_of(const void *raw, size_t n, size_t *out_n)
{
    uLongf cap = compressBound((uLong)n);
    uint8_t *z = malloc(cap);
    assert_non_null(z);
    assert_int_equal(compress2(z, &cap, raw, (uLong)n, 9), Z_OK);
    *out_n = cap;
    return z;
}

static bool mentions(const char *needle)
{
    if (strstr(lmrt_last_error(), needle))
        return true;
    print_error("message \"%s\" does not mention \"%s\"\n", lmrt_last_error(), needle);
    return false;
}

/* Decodes an exactly sized heap copy (so ASan sees any over-read); `out` must be
 * untouched on failure. */
static lmrt_status decode_copy(const uint8_t *data, size_t size, int64_t budget, image_rgb8 *out)
{
    uint8_t *copy = malloc(size ? size : 1);
    assert_non_null(copy);
    if (size)
        memcpy(copy, data, size);
    image_rgb8 img = {-7, -9, (uint8_t *)&img};
    lmrt_status st = image_decode(size ? copy : NULL, size, budget, &img);
    free(copy);
    if (st != LMRT_OK) {
        assert_int_equal(img.width, -7);
        assert_int_equal(img.height, -9);
        assert_ptr_equal(img.pixels, (uint8_t *)&img);
    } else {
        assert_true(img.width >= 1 && img.height >= 1);
        assert_non_null(img.pixels);
    }
    if (out)
        *out = img;
    else if (st == LMRT_OK)
        image_rgb8_free(&img);
    return st;
}

/* data must fail with `want` and a message mentioning `needle` (if any). */
static void assert_rejected(const uint8_t *data, size_t size, lmrt_status want,
                            const char *needle)
{
    lmrt_status st = decode_copy(data, size, BUDGET, NULL);
    if (st != want)
        print_error("size %zu: status %s, want %s, message \"%s\"\n", size, lmrt_status_str(st),
                    lmrt_status_str(want), lmrt_last_error());
    assert_int_equal(st, want);
    if (needle)
        assert_true(mentions(needle));
}

static uint32_t rng_state;

static uint32_t rng(void)
{
    rng_state = rng_state * 1664525u + 1013904223u;
    return rng_state >> 8;
}

/* First differing pixel, printed, or true when equal. */
static bool same_pixels(const uint8_t *got, const uint8_t *want, int32_t w, int32_t h,
                        const char *what)
{
    for (int64_t i = 0; i < (int64_t)w * h * 3; i++)
        if (got[i] != want[i]) {
            print_error("%s: pixel (%" PRId64 ", %" PRId64 ") channel %" PRId64 " is %u, want %u\n",
                        what, (i / 3) % w, (i / 3) / w, i % 3, got[i], want[i]);
            return false;
        }
    return true;
}

/* ------------------------------------------------------------------------ */
/* a PNG encoder for known pixels                                           */
/* ------------------------------------------------------------------------ */

typedef struct png_spec {
    uint32_t w, h;
    uint8_t depth, colour, interlace;
    int filter;                /* 0..4 for every scanline, -1: cycle through them */
    bool trns;                 /* grey/RGB: pixel (0,0)'s colour; palette: half get alpha */
    size_t idat_split;         /* IDAT chunks of at most this many bytes; 0: one */
} png_spec;

static unsigned channels_of(uint8_t colour)
{
    return colour == 2 ? 3 : colour == 4 ? 2 : colour == 6 ? 4 : 1;
}

static const uint8_t adam7[7][4] = {
    {0, 0, 8, 8}, {4, 0, 8, 8}, {0, 4, 4, 8}, {2, 0, 4, 4}, {0, 2, 2, 4}, {1, 0, 2, 2}, {0, 1, 1, 2},
};

static void put_sample(uint8_t *row, size_t k, unsigned depth, unsigned v)
{
    if (depth == 16) {
        row[2 * k] = (uint8_t)(v >> 8);
        row[2 * k + 1] = (uint8_t)v;
    } else if (depth == 8) {
        row[k] = (uint8_t)v;
    } else {
        size_t bit = k * depth;
        row[bit / 8] |= (uint8_t)(v << (8 - depth - bit % 8));
    }
}

static int paeth_pred(int a, int b, int c)
{
    int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/* The filtered scanlines (all passes) of `samples` [h][w][channels]. */
static uint8_t *png_scanlines(const png_spec *s, const uint16_t *samples, size_t *out_n)
{
    unsigned ch = channels_of(s->colour), bits = ch * s->depth;
    size_t bpp = bits < 8 ? 1 : bits / 8;
    bytes raw = {0};
    int n_pass = s->interlace ? 7 : 1, row_no = 0;
    for (int p = 0; p < n_pass; p++) {
        uint32_t x0 = s->interlace ? adam7[p][0] : 0, y0 = s->interlace ? adam7[p][1] : 0;
        uint32_t dx = s->interlace ? adam7[p][2] : 1, dy = s->interlace ? adam7[p][3] : 1;
        uint32_t pw = s->w > x0 ? (s->w - x0 + dx - 1) / dx : 0;
        uint32_t ph = s->h > y0 ? (s->h - y0 + dy - 1) / dy : 0;
        if (!pw || !ph)
            continue;
        size_t rb = ((size_t)pw * bits + 7) / 8;
        uint8_t *cur = calloc(rb, 1), *prev = calloc(rb, 1), *out = malloc(rb + 1);
        assert_true(cur && prev && out);
        for (uint32_t r = 0; r < ph; r++, row_no++) {
            memset(cur, 0, rb);
            for (uint32_t k = 0; k < pw; k++)
                for (unsigned c = 0; c < ch; c++)
                    put_sample(cur, (size_t)k * ch + c, s->depth,
                               samples[(((size_t)(y0 + r * dy)) * s->w + x0 + k * dx) * ch + c]);
            int type = s->filter >= 0 ? s->filter : row_no % 5;
            out[0] = (uint8_t)type;
            for (size_t i = 0; i < rb; i++) {
                int a = i >= bpp ? cur[i - bpp] : 0, b = prev[i], c = i >= bpp ? prev[i - bpp] : 0;
                int pred = type == 1 ? a : type == 2 ? b : type == 3 ? (a + b) / 2
                         : type == 4 ? paeth_pred(a, b, c) : 0;
                out[1 + i] = (uint8_t)(cur[i] - pred);
            }
            b_put(&raw, out, rb + 1);
            memcpy(prev, cur, rb);
        }
        free(cur), free(prev), free(out);
    }
    *out_n = raw.n;
    return raw.p;
}

typedef struct png_case {
    png_spec s;
    uint16_t *samples;         /* [h][w][channels] */
    uint8_t palette[256][3];
    uint8_t alpha[256];        /* palette alpha, tRNS holds the first n_alpha */
    uint32_t n_palette, n_alpha;
    uint8_t *want;             /* [h][w][3], the expected decode */
} png_case;

static unsigned to8(unsigned v, unsigned depth)
{
    return depth == 16 ? v >> 8 : depth == 8 ? v : v * 255u / ((1u << depth) - 1);
}

/* Fills samples, palette and the pixels the decoder must produce. */
static void png_case_init(png_case *pc, const png_spec *s, uint32_t seed)
{
    memset(pc, 0, sizeof *pc);
    pc->s = *s;
    rng_state = seed;
    unsigned ch = channels_of(s->colour), maxv = (1u << s->depth) - 1;
    size_t n = (size_t)s->w * s->h;
    pc->samples = malloc(n * ch * sizeof *pc->samples);
    pc->want = malloc(n * 3);
    assert_true(pc->samples && pc->want);
    if (s->colour == 3) {
        pc->n_palette = s->depth == 8 ? 200 : 1u << s->depth;
        for (uint32_t i = 0; i < pc->n_palette; i++)
            for (int c = 0; c < 3; c++)
                pc->palette[i][c] = (uint8_t)rng();
        pc->n_alpha = s->trns ? pc->n_palette / 2 + 1 : 0;
        for (uint32_t i = 0; i < 256; i++)
            pc->alpha[i] = i < pc->n_alpha ? (uint8_t)(i == 0 ? 0 : rng()) : 255;
    }
    for (size_t i = 0; i < n * ch; i++)
        pc->samples[i] = (uint16_t)(s->colour == 3 ? rng() % pc->n_palette : rng() & maxv);
    for (size_t i = 0; i < n; i++) {
        const uint16_t *v = pc->samples + i * ch;
        unsigned rgb[3], a = 255;
        if (s->colour == 3) {
            for (int c = 0; c < 3; c++)
                rgb[c] = pc->palette[v[0]][c];
            a = pc->alpha[v[0]];
        } else {
            unsigned colours = s->colour == 0 || s->colour == 4 ? 1 : 3;
            for (int c = 0; c < 3; c++)
                rgb[c] = to8(v[colours == 1 ? 0 : c], s->depth);
            if (s->colour == 4 || s->colour == 6)
                a = s->depth == 16 ? v[ch - 1] >> 8 : v[ch - 1];
            if (s->trns && (s->colour == 0 || s->colour == 2) &&
                memcmp(v, pc->samples, colours * sizeof *v) == 0)
                a = 0;
        }
        for (int c = 0; c < 3; c++)   /* over white, rounded */
            pc->want[i * 3 + c] = (uint8_t)((rgb[c] * a + 255 * (255 - a) + 127) / 255);
    }
}

static void png_case_free(png_case *pc)
{
    free(pc->samples);
    free(pc->want);
}

/* The PNG file of a case, with a tEXt chunk before and after the image data. */
static uint8_t *png_case_encode(const png_case *pc, size_t *out_n)
{
    const png_spec *s = &pc->s;
    bytes b = {0};
    b_ihdr(&b, s->w, s->h, s->depth, s->colour, s->interlace);
    b_chunk(&b, "tEXt", "Comment\0made by test_image", 26);
    if (s->colour == 3)
        b_chunk(&b, "PLTE", pc->palette, pc->n_palette * 3);
    if (s->trns && s->colour == 3) {
        b_chunk(&b, "tRNS", pc->alpha, pc->n_alpha);
    } else if (s->trns) {
        uint8_t t[6];
        for (unsigned c = 0; c < channels_of(s->colour); c++)
            t[2 * c] = (uint8_t)(pc->samples[c] >> 8), t[2 * c + 1] = (uint8_t)pc->samples[c];
        b_chunk(&b, "tRNS", t, 2 * channels_of(s->colour));
    }
    size_t raw_n, z_n;
    uint8_t *raw = png_scanlines(s, pc->samples, &raw_n);
    uint8_t *z = zlib_of(raw, raw_n, &z_n);
    size_t step = s->idat_split ? s->idat_split : z_n;
    for (size_t at = 0; at < z_n; at += step)
        b_chunk(&b, "IDAT", z + at, z_n - at < step ? z_n - at : step);
    b_chunk(&b, "tIME", "\x07\xe8\x01\x02\x03\x04\x05", 7);
    b_chunk(&b, "IEND", NULL, 0);
    free(raw);
    free(z);
    *out_n = b.n;
    return b.p;
}

/* Encodes, decodes and compares every pixel. */
static void check_png_case(const png_spec *s, uint32_t seed)
{
    png_case pc;
    png_case_init(&pc, s, seed);
    size_t n;
    uint8_t *file = png_case_encode(&pc, &n);
    char what[160];
    snprintf(what, sizeof what, "%ux%u colour %u depth %u interlace %u filter %d trns %d split %zu",
             s->w, s->h, s->colour, s->depth, s->interlace, s->filter, s->trns, s->idat_split);
    const char *dump = getenv("LMRT_IMAGE_DUMP_DIR");   /* for checking with another decoder */
    if (dump) {
        char path[4096];
        snprintf(path, sizeof path, "%s/c%u_d%u_i%u_f%d_t%d_%ux%u.png", dump, s->colour, s->depth,
                 s->interlace, s->filter, s->trns, s->w, s->h);
        FILE *fp = fopen(path, "wb");
        assert_non_null(fp);
        fwrite(file, 1, n, fp);
        fclose(fp);
    }
    image_rgb8 img;
    lmrt_status st = decode_copy(file, n, BUDGET, &img);
    if (st != LMRT_OK)
        print_error("%s: %s\n", what, lmrt_last_error());
    assert_int_equal(st, LMRT_OK);
    assert_int_equal(img.width, (int32_t)s->w);
    assert_int_equal(img.height, (int32_t)s->h);
    assert_true(same_pixels(img.pixels, pc.want, img.width, img.height, what));
    image_rgb8_free(&img);
    free(file);
    png_case_free(&pc);
}

/* Every colour type with each of its bit depths. */
static const struct { uint8_t colour, depth; } png_kinds[] = {
    {0, 1}, {0, 2}, {0, 4}, {0, 8}, {0, 16}, {2, 8}, {2, 16}, {3, 1}, {3, 2}, {3, 4}, {3, 8},
    {4, 8}, {4, 16}, {6, 8}, {6, 16},
};
#define N_KINDS (sizeof png_kinds / sizeof png_kinds[0])

/* A small valid PNG: 3x5 grey 8-bit, one IDAT, a tEXt chunk. */
static uint8_t *small_png(uint8_t colour, uint8_t depth, uint8_t interlace, size_t *n)
{
    png_spec s = {3, 5, depth, colour, interlace, -1, false, 0};
    png_case pc;
    png_case_init(&pc, &s, 7);
    uint8_t *file = png_case_encode(&pc, n);
    png_case_free(&pc);
    return file;
}

/* A PNG from IHDR fields and raw (unfiltered-format) scanline bytes, plus chunks
 * given as (type, data, len) triples inserted before the IDAT. */
static uint8_t *png_from_raw(uint32_t w, uint32_t h, uint8_t depth, uint8_t colour,
                             const void *raw, size_t raw_n, const void *plte, size_t plte_n,
                             size_t *n)
{
    bytes b = {0};
    b_ihdr(&b, w, h, depth, colour, 0);
    if (plte)
        b_chunk(&b, "PLTE", plte, plte_n);
    size_t z_n;
    uint8_t *z = zlib_of(raw, raw_n, &z_n);
    b_chunk(&b, "IDAT", z, z_n);
    b_chunk(&b, "IEND", NULL, 0);
    free(z);
    *n = b.n;
    return b.p;
}

/* ------------------------------------------------------------------------ */
/* real photographs                                                         */
/* ------------------------------------------------------------------------ */

typedef struct probe {
    int32_t x, y;
    uint8_t rgb[3];
} probe;

/* Pixels and the CRC-32 of the whole [h][w][3] buffer, from an independent
 * decoder (a pure-Python/numpy PNG reader written from the spec); the corner and
 * first pixels also match scikit-image's camera() and chelsea(). */
static void check_photo(const char *path, int32_t w, int32_t h, uint32_t crc, uint64_t sum,
                        const probe *probes, size_t n_probes, image_rgb8 *keep)
{
    image_rgb8 img = {-1, -1, NULL};
    lmrt_status st = image_load_file(path, BUDGET, &img);
    if (st != LMRT_OK)
        print_error("%s\n", lmrt_last_error());
    assert_int_equal(st, LMRT_OK);
    assert_int_equal(img.width, w);
    assert_int_equal(img.height, h);
    for (size_t i = 0; i < n_probes; i++) {
        const uint8_t *p = img.pixels + ((size_t)probes[i].y * w + probes[i].x) * 3;
        assert_memory_equal(p, probes[i].rgb, 3);
    }
    uint64_t total = 0;
    for (size_t i = 0; i < (size_t)w * h * 3; i++)
        total += img.pixels[i];
    assert_int_equal(total, sum);
    assert_int_equal(crc32(crc32(0, NULL, 0), img.pixels, (uInt)((size_t)w * h * 3)), crc);
    if (keep)
        *keep = img;
    else
        image_rgb8_free(&img);
}

static const probe camera_probes[] = {
    {0, 0, {200, 200, 200}}, {511, 0, {190, 190, 190}}, {0, 511, {25, 25, 25}},
    {511, 511, {149, 149, 149}}, {256, 100, {22, 22, 22}}, {100, 300, {25, 25, 25}},
};
static const probe chelsea_probes[] = {
    {0, 0, {143, 120, 104}}, {450, 0, {45, 27, 13}}, {0, 299, {139, 103, 71}},
    {450, 299, {162, 138, 128}}, {225, 150, {190, 150, 124}}, {100, 200, {159, 115, 90}},
};

static void camera_greyscale_photo_decodes_exactly(void **state)
{
    (void)state;
    check_photo(CAMERA_PATH, 512, 512, 0xdae3fc0bu, 101497485u, camera_probes, 6, NULL);
}

static void chelsea_rgb_photo_decodes_exactly(void **state)
{
    (void)state;
    check_photo(CHELSEA_PATH, 451, 300, 0x0f829d59u, 46802357u, chelsea_probes, 6, NULL);
}

/* The photos re-encoded here as 16-bit interlaced grey and 8-bit interlaced RGBA
 * (alpha 255), every filter in turn: large real content through Adam7. */
static void photos_reencoded_interlaced_decode_the_same(void **state)
{
    (void)state;
    image_rgb8 cam, cat;
    check_photo(CAMERA_PATH, 512, 512, 0xdae3fc0bu, 101497485u, camera_probes, 6, &cam);
    check_photo(CHELSEA_PATH, 451, 300, 0x0f829d59u, 46802357u, chelsea_probes, 6, &cat);
    const image_rgb8 *photos[2] = {&cam, &cat};
    for (int k = 0; k < 2; k++) {
        const image_rgb8 *ph = photos[k];
        png_spec s = {(uint32_t)ph->width, (uint32_t)ph->height, k ? 8 : 16, k ? 6 : 0, 1, -1,
                      false, 8192};
        size_t npx = (size_t)ph->width * ph->height;
        uint16_t *samples = malloc(npx * 4 * sizeof *samples);
        assert_non_null(samples);
        for (size_t i = 0; i < npx; i++) {
            if (k == 0) {
                samples[i] = (uint16_t)(ph->pixels[3 * i] * 257u);
            } else {
                for (int c = 0; c < 3; c++)
                    samples[4 * i + c] = ph->pixels[3 * i + c];
                samples[4 * i + 3] = 255;
            }
        }
        size_t raw_n, z_n;
        uint8_t *raw = png_scanlines(&s, samples, &raw_n);
        uint8_t *z = zlib_of(raw, raw_n, &z_n);
        bytes b = {0};
        b_ihdr(&b, s.w, s.h, s.depth, s.colour, 1);
        for (size_t at = 0; at < z_n; at += 8192)
            b_chunk(&b, "IDAT", z + at, z_n - at < 8192 ? z_n - at : 8192);
        b_chunk(&b, "IEND", NULL, 0);
        image_rgb8 img;
        assert_int_equal(decode_copy(b.p, b.n, BUDGET, &img), LMRT_OK);
        assert_true(same_pixels(img.pixels, ph->pixels, ph->width, ph->height, "re-encoded"));
        image_rgb8_free(&img);
        free(b.p), free(z), free(raw), free(samples);
    }
    image_rgb8_free(&cam);
    image_rgb8_free(&cat);
}

/* ------------------------------------------------------------------------ */
/* the PNG matrix                                                           */
/* ------------------------------------------------------------------------ */

static void every_colour_type_depth_interlace_and_size_decodes_exactly(void **state)
{
    (void)state;
    static const uint32_t sizes[][2] = {{1, 1}, {3, 5}, {17, 9}, {9, 17}, {33, 2}};
    for (size_t k = 0; k < N_KINDS; k++)
        for (uint8_t lace = 0; lace < 2; lace++)
            for (size_t z = 0; z < sizeof sizes / sizeof sizes[0]; z++) {
                png_spec s = {sizes[z][0], sizes[z][1], png_kinds[k].depth, png_kinds[k].colour,
                              lace, -1, false, 0};
                check_png_case(&s, (uint32_t)(k * 100 + z * 10 + lace));
            }
}

static void every_filter_type_decodes_exactly(void **state)
{
    (void)state;
    for (size_t k = 0; k < N_KINDS; k++)
        for (uint8_t lace = 0; lace < 2; lace++)
            for (int f = 0; f <= 4; f++) {
                png_spec s = {17, 9, png_kinds[k].depth, png_kinds[k].colour, lace, f, false, 0};
                check_png_case(&s, (uint32_t)(k * 7 + (unsigned)f));
            }
}

static void trns_makes_pixels_white_for_grey_rgb_and_palette(void **state)
{
    (void)state;
    for (size_t k = 0; k < N_KINDS; k++) {
        uint8_t c = png_kinds[k].colour;
        if (c == 4 || c == 6)
            continue;
        for (uint8_t lace = 0; lace < 2; lace++) {
            png_spec s = {17, 9, png_kinds[k].depth, c, lace, -1, true, 0};
            check_png_case(&s, (uint32_t)k + 40);
        }
    }
}

static void alpha_is_composited_over_white(void **state)
{
    (void)state;
    /* grey+alpha 8-bit, 4x1: grey 0 at alpha 0, 128, 255, and grey 200 at alpha 51 */
    const uint8_t raw[] = {0, 0, 0, 0, 128, 0, 255, 200, 51};
    size_t n;
    uint8_t *file = png_from_raw(4, 1, 8, 4, raw, sizeof raw, NULL, 0, &n);
    image_rgb8 img;
    assert_int_equal(decode_copy(file, n, BUDGET, &img), LMRT_OK);
    /* 0*a + 255*(255-a), /255 rounded: 255, 127, 0; 200*51+255*204 = 62220 -> 244 */
    const uint8_t want[] = {255, 255, 255, 127, 127, 127, 0, 0, 0, 244, 244, 244};
    assert_memory_equal(img.pixels, want, sizeof want);
    image_rgb8_free(&img);
    free(file);
}

static void sixteen_bit_samples_keep_their_high_byte(void **state)
{
    (void)state;
    /* RGB 16-bit, 2x1: 0x12ff 0x8000 0xffff | 0x00ff 0x0100 0x7f80 */
    const uint8_t raw[] = {0, 0x12, 0xff, 0x80, 0x00, 0xff, 0xff,
                           0x00, 0xff, 0x01, 0x00, 0x7f, 0x80};
    size_t n;
    uint8_t *file = png_from_raw(2, 1, 16, 2, raw, sizeof raw, NULL, 0, &n);
    image_rgb8 img;
    assert_int_equal(decode_copy(file, n, BUDGET, &img), LMRT_OK);
    const uint8_t want[] = {0x12, 0x80, 0xff, 0x00, 0x01, 0x7f};
    assert_memory_equal(img.pixels, want, sizeof want);
    image_rgb8_free(&img);
    free(file);
}

static void idat_split_into_tiny_and_empty_chunks_decodes(void **state)
{
    (void)state;
    for (size_t k = 0; k < N_KINDS; k++) {
        png_spec s = {17, 9, png_kinds[k].depth, png_kinds[k].colour, (uint8_t)(k & 1), -1,
                      false, 1 + k % 3};
        check_png_case(&s, (uint32_t)k + 90);
    }
    /* zero-length IDAT chunks at the start, in the middle and at the end */
    png_spec s = {3, 5, 8, 2, 0, -1, false, 0};
    png_case pc;
    png_case_init(&pc, &s, 5);
    size_t raw_n, z_n;
    uint8_t *raw = png_scanlines(&s, pc.samples, &raw_n);
    uint8_t *z = zlib_of(raw, raw_n, &z_n);
    bytes b = {0};
    b_ihdr(&b, 3, 5, 8, 2, 0);
    b_chunk(&b, "IDAT", NULL, 0);
    b_chunk(&b, "IDAT", z, 5);
    b_chunk(&b, "IDAT", NULL, 0);
    b_chunk(&b, "IDAT", z + 5, z_n - 5);
    b_chunk(&b, "IDAT", NULL, 0);
    b_chunk(&b, "IEND", NULL, 0);
    b_str(&b, "trailing bytes after IEND are ignored");
    image_rgb8 img;
    assert_int_equal(decode_copy(b.p, b.n, BUDGET, &img), LMRT_OK);
    assert_true(same_pixels(img.pixels, pc.want, 3, 5, "empty IDATs"));
    image_rgb8_free(&img);
    free(b.p), free(z), free(raw);
    png_case_free(&pc);
}

static void unknown_ancillary_chunks_are_skipped(void **state)
{
    (void)state;
    const uint8_t raw[] = {0, 10, 20, 30};
    bytes b = {0};
    b_ihdr(&b, 1, 1, 8, 2, 0);
    b_chunk(&b, "zzZz", "anything", 8);
    b_chunk(&b, "gAMA", "\0\0\xb1\x8f", 4);   /* gamma is ignored */
    size_t z_n;
    uint8_t *z = zlib_of(raw, sizeof raw, &z_n);
    b_chunk(&b, "IDAT", z, z_n);
    b_chunk(&b, "vpAg", "xyz", 3);
    b_chunk(&b, "IEND", NULL, 0);
    image_rgb8 img;
    assert_int_equal(decode_copy(b.p, b.n, BUDGET, &img), LMRT_OK);
    assert_memory_equal(img.pixels, raw + 1, 3);
    image_rgb8_free(&img);
    free(b.p), free(z);
}

/* ------------------------------------------------------------------------ */
/* hostile PNG                                                              */
/* ------------------------------------------------------------------------ */

static void bad_crc_names_the_chunk_and_its_offset(void **state)
{
    (void)state;
    size_t n;
    uint8_t *file = small_png(3, 4, 1, &n);
    for (size_t at = 8; at < n;) {
        uint32_t len = (uint32_t)file[at] << 24 | (uint32_t)file[at + 1] << 16 |
                       (uint32_t)file[at + 2] << 8 | file[at + 3];
        char type[5] = {0}, want[64];
        memcpy(type, file + at + 4, 4);
        size_t crc_at = at + 8 + len;
        file[crc_at + 2] ^= 0x40;
        snprintf(want, sizeof want, "offset %zu: chunk '%s' CRC", at, type);
        assert_rejected(file, n, LMRT_E_FORMAT, want);
        file[crc_at + 2] ^= 0x40;
        at = crc_at + 4;
    }
    free(file);
}

/* Every byte is covered by the signature, a length check or a CRC. */
static void every_flipped_bit_is_a_format_error(void **state)
{
    (void)state;
    size_t n;
    uint8_t *file = small_png(0, 2, 0, &n);
    for (size_t i = 0; i < n; i++)
        for (int bit = 0; bit < 8; bit += 3) {
            file[i] ^= (uint8_t)(1u << bit);
            assert_rejected(file, n, LMRT_E_FORMAT, NULL);
            file[i] ^= (uint8_t)(1u << bit);
        }
    free(file);
}

static void truncation_at_every_offset_is_a_format_error(void **state)
{
    (void)state;
    static const uint8_t kinds[][3] = {{0, 8, 0}, {3, 2, 1}, {6, 16, 1}, {2, 8, 0}};
    for (size_t k = 0; k < 4; k++) {
        size_t n;
        uint8_t *file = small_png(kinds[k][0], kinds[k][1], kinds[k][2], &n);
        assert_int_equal(decode_copy(file, n, BUDGET, NULL), LMRT_OK);
        for (size_t len = 0; len < n; len++) {
            uint8_t *copy = malloc(len + 1);
            assert_non_null(copy);
            memcpy(copy, file, len);
            image_rgb8 img = {-7, -9, NULL};
            lmrt_status st = image_decode_png(copy, len, BUDGET, &img);
            if (st != LMRT_E_FORMAT)
                print_error("length %zu of %zu: %s\n", len, n, lmrt_last_error());
            assert_int_equal(st, LMRT_E_FORMAT);
            assert_int_equal(img.width, -7);
            free(copy);
        }
        free(file);
    }
}

static void dimensions_beyond_the_budget_are_rejected_before_allocating(void **state)
{
    (void)state;
    bytes b = {0};
    b_ihdr(&b, 100000, 100000, 8, 2, 0);
    b_chunk(&b, "IDAT", "x", 1);
    b_chunk(&b, "IEND", NULL, 0);
    lmrt_alloc_fail_after(-1);
    assert_rejected(b.p, b.n, LMRT_E_FORMAT, "100000 x 100000 pixels, more than the budget");
    assert_true(lmrt_alloc_fail_after(-1) <= 1);   /* only the decoder's small state */
    assert_true(mentions("4194304"));
    /* exactly at the budget is fine as far as the size goes (then the data is short) */
    image_rgb8 img;
    assert_int_equal(image_decode(b.p, b.n, (int64_t)100000 * 100000, &img), LMRT_E_FORMAT);
    assert_true(mentions("cannot inflate"));
    free(b.p);

    static const uint32_t bad[][2] = {{0, 5}, {5, 0}, {0x80000000u, 1}, {1, 0xffffffffu}};
    for (size_t i = 0; i < 4; i++) {
        bytes c = {0};
        b_ihdr(&c, bad[i][0], bad[i][1], 8, 0, 0);
        b_chunk(&c, "IEND", NULL, 0);
        assert_rejected(c.p, c.n, LMRT_E_FORMAT, "offset 16: IHDR size");
        free(c.p);
    }
}

/* IHDR 16x16 grey 8-bit implies 16 * 17 = 272 bytes of scanlines. */
static uint8_t *png_with_idat_of(size_t raw_n, size_t *n)
{
    uint8_t *raw = calloc(raw_n, 1);   /* filter 0, black */
    assert_non_null(raw);
    bytes b = {0};
    b_ihdr(&b, 16, 16, 8, 0, 0);
    size_t z_n;
    uint8_t *z = zlib_of(raw, raw_n, &z_n);
    for (size_t at = 0; at < z_n; at += 65536)
        b_chunk(&b, "IDAT", z + at, z_n - at < 65536 ? z_n - at : 65536);
    b_chunk(&b, "IEND", NULL, 0);
    free(z), free(raw);
    *n = b.n;
    return b.p;
}

static void decompression_bomb_stops_at_the_expected_size(void **state)
{
    (void)state;
    size_t n;
    uint8_t *file = png_with_idat_of(272, &n);
    assert_int_equal(decode_copy(file, n, BUDGET, NULL), LMRT_OK);
    free(file);
    /* 256 MiB of zeros in ~260 KB of IDAT: must stop after 273 bytes, not inflate it all */
    file = png_with_idat_of((size_t)256 << 20, &n);
    assert_true(n < 300000);
    assert_rejected(file, n, LMRT_E_FORMAT, "inflates to more than the 272 bytes");
    free(file);
    file = png_with_idat_of(273, &n);
    assert_rejected(file, n, LMRT_E_FORMAT, "inflates to more than the 272 bytes");
    free(file);
    file = png_with_idat_of(271, &n);
    assert_rejected(file, n, LMRT_E_FORMAT, "inflates to 271 bytes, but IHDR implies 272");
    free(file);
}

static void idat_too_small_for_ihdr_is_rejected_before_allocating(void **state)
{
    (void)state;
    bytes b = {0};
    b_ihdr(&b, 30000, 30000, 16, 6, 1);   /* 7.2 GB of scanlines */
    size_t z_n;
    uint8_t *z = zlib_of("\0\0\0\0\0\0\0\0", 8, &z_n);
    b_chunk(&b, "IDAT", z, z_n);
    b_chunk(&b, "IEND", NULL, 0);
    image_rgb8 img = {-7, -9, NULL};
    lmrt_alloc_fail_after(-1);
    assert_int_equal(image_decode(b.p, b.n, INT64_MAX, &img), LMRT_E_FORMAT);
    assert_true(lmrt_alloc_fail_after(-1) <= 1);
    assert_true(mentions("cannot inflate"));
    assert_int_equal(img.width, -7);
    free(b.p), free(z);
}

static void bad_zlib_streams_are_format_errors(void **state)
{
    (void)state;
    uint8_t raw[272] = {0};
    size_t z_n;
    uint8_t *z = zlib_of(raw, sizeof raw, &z_n);
    struct { const char *what, *needle; } cases[] = {
        {"bad header", "zlib data is corrupt"}, {"bad adler32", "zlib data is corrupt"},
        {"no adler32", "truncated"}, {"trailing bytes", "continues after the end"},
        {"preset dictionary", "preset dictionary"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        bytes idat = {0};
        b_put(&idat, z, z_n);
        switch (c) {
        case 0: idat.p[0] = 0x79; break;                  /* CM 9 */
        case 1: idat.p[idat.n - 1] ^= 1; break;
        case 2: idat.n -= 4; break;
        case 3: b_str(&idat, "junk"); break;
        default: idat.p[0] = 0x78, idat.p[1] = 0xbb; break; /* FDICT set, FCHECK ok */
        }
        bytes b = {0};
        b_ihdr(&b, 16, 16, 8, 0, 0);
        b_chunk(&b, "IDAT", idat.p, idat.n);
        b_chunk(&b, "IEND", NULL, 0);
        lmrt_status st = decode_copy(b.p, b.n, BUDGET, NULL);
        if (st != LMRT_E_FORMAT || !strstr(lmrt_last_error(), cases[c].needle))
            print_error("%s: %s\n", cases[c].what, lmrt_last_error());
        assert_int_equal(st, LMRT_E_FORMAT);
        assert_true(mentions(cases[c].needle));
        free(b.p), free(idat.p);
    }
    free(z);
}

static void bad_filter_byte_is_a_format_error(void **state)
{
    (void)state;
    uint8_t raw[5 * 4] = {0};
    raw[2 * 4] = 5;
    size_t n;
    uint8_t *file = png_from_raw(3, 5, 8, 0, raw, sizeof raw, NULL, 0, &n);
    assert_rejected(file, n, LMRT_E_FORMAT, "scanline 2 has filter type 5");
    free(file);
    raw[2 * 4] = 255;
    file = png_from_raw(3, 5, 8, 0, raw, sizeof raw, NULL, 0, &n);
    assert_rejected(file, n, LMRT_E_FORMAT, "filter type 255");
    free(file);
}

static void palette_index_out_of_range_is_a_format_error(void **state)
{
    (void)state;
    const uint8_t plte[4 * 3] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    const uint8_t ok[] = {0, 0, 1, 2, 3}, bad[] = {0, 0, 1, 4, 3};
    size_t n;
    uint8_t *file = png_from_raw(4, 1, 8, 3, ok, sizeof ok, plte, sizeof plte, &n);
    image_rgb8 img;
    assert_int_equal(decode_copy(file, n, BUDGET, &img), LMRT_OK);
    assert_memory_equal(img.pixels, plte, sizeof plte);
    image_rgb8_free(&img);
    free(file);
    file = png_from_raw(4, 1, 8, 3, bad, sizeof bad, plte, sizeof plte, &n);
    assert_rejected(file, n, LMRT_E_FORMAT, "pixel 2 of scanline 0 uses palette index 4, but "
                    "PLTE has 4 entries");
    free(file);
    /* 2-bit indices can reach 3 with a 3-entry palette */
    const uint8_t packed[] = {0, 0x1b};   /* 0 1 2 3 */
    file = png_from_raw(4, 1, 2, 3, packed, sizeof packed, plte, 9, &n);
    assert_rejected(file, n, LMRT_E_FORMAT, "palette index 3");
    free(file);
}

/* Builds a 2x1 file of `colour` (8-bit) from a script of chunks. */
static void b_script(bytes *b, uint8_t colour, const char *script)
{
    const uint8_t raw_grey[] = {0, 1, 2}, raw_rgb[] = {0, 1, 2, 3, 4, 5, 6};
    const uint8_t *raw = colour == 2 ? raw_rgb : raw_grey;
    size_t raw_n = colour == 2 ? sizeof raw_rgb : sizeof raw_grey, z_n;
    uint8_t *z = zlib_of(raw, raw_n, &z_n);
    uint8_t ihdr[13] = {0, 0, 0, 2, 0, 0, 0, 1, 8, colour, 0, 0, 0};
    b_put(b, png_sig, 8);
    for (const char *s = script; *s; s++) {
        switch (*s) {
        case 'H': b_chunk(b, "IHDR", ihdr, 13); break;
        case 'P': b_chunk(b, "PLTE", "\1\2\3\4\5\6\7\10\11", 9); break;
        case 'T': b_chunk(b, "tRNS", colour == 0 ? "\0\1" : "\0", colour == 0 ? 2 : 1); break;
        case 'D': b_chunk(b, "IDAT", z, z_n); break;
        case 'E': b_chunk(b, "IEND", NULL, 0); break;
        case 'x': b_chunk(b, "tEXt", "a\0b", 3); break;
        default: fail_msg("bad script byte %c", *s);
        }
    }
    free(z);
}

static void chunk_structure_errors_are_format_errors(void **state)
{
    (void)state;
    static const struct { uint8_t colour; const char *script, *needle; } cases[] = {
        {0, "HD", "IEND missing"},
        {0, "DE", "first chunk is 'IDAT', not IHDR"},
        {0, "xHDE", "first chunk is 'tEXt', not IHDR"},
        {0, "HE", "IEND before any IDAT"},
        {0, "HHDE", "second IHDR"},
        {0, "HDxDE", "IDAT chunks are not consecutive"},
        {0, "HPDE", "PLTE in a greyscale image"},
        {3, "HDE", "IDAT before PLTE"},
        {3, "HPPDE", "second PLTE"},
        {2, "HDPE", "PLTE after IDAT"},
        {3, "HTPDE", "tRNS before PLTE"},
        {3, "HPTTDE", "second tRNS"},
        {0, "HDTE", "tRNS after IDAT"},
        {2, "HTDE", "tRNS is 1 bytes, not 6"},
        {2, "HD", "IEND missing"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bytes b = {0};
        b_script(&b, cases[i].colour, cases[i].script);
        lmrt_status st = decode_copy(b.p, b.n, BUDGET, NULL);
        if (st != LMRT_E_FORMAT || !strstr(lmrt_last_error(), cases[i].needle))
            print_error("script %s: %s: %s\n", cases[i].script, lmrt_status_str(st),
                        lmrt_last_error());
        assert_int_equal(st, LMRT_E_FORMAT);
        assert_true(mentions(cases[i].needle));
        free(b.p);
    }
    /* the valid versions of the scripts above decode */
    static const struct { uint8_t colour; const char *script; } good[] = {
        {0, "HDE"}, {0, "HxDxE"}, {0, "HTDE"}, {3, "HPDE"}, {3, "HPTDE"}, {2, "HPDE"}, {2, "HDE"},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        bytes b = {0};
        b_script(&b, good[i].colour, good[i].script);
        lmrt_status st = decode_copy(b.p, b.n, BUDGET, NULL);
        if (st != LMRT_OK)
            print_error("script %s: %s\n", good[i].script, lmrt_last_error());
        assert_int_equal(st, LMRT_OK);
        free(b.p);
    }
}

static void bad_chunk_fields_are_format_errors(void **state)
{
    (void)state;
    bytes b = {0};
    /* IEND with data */
    b_script(&b, 0, "HD");
    b_chunk(&b, "IEND", "x", 1);
    assert_rejected(b.p, b.n, LMRT_E_FORMAT, "IEND has 1 bytes");
    b.n = 0;
    /* a non-letter in a chunk type */
    b_script(&b, 0, "HD");
    b_chunk(&b, "te1t", "x", 1);
    assert_rejected(b.p, b.n, LMRT_E_FORMAT, "chunk type byte 2 is 0x31");
    b.n = 0;
    /* a length of 2^31 */
    b_script(&b, 0, "HD");
    b_put(&b, "\x80\0\0\0tEXtabcd", 12);
    assert_rejected(b.p, b.n, LMRT_E_FORMAT, "exceeds 2^31-1");
    b.n = 0;
    /* a chunk running past the end */
    b_script(&b, 0, "HD");
    b_put(&b, "\0\0\0\x20tEXtabcd", 12);
    assert_rejected(b.p, b.n, LMRT_E_FORMAT, "runs past the end");
    b.n = 0;
    /* PLTE sizes */
    b_script(&b, 3, "H");
    b_chunk(&b, "PLTE", "\1\2\3\4", 4);
    assert_rejected(b.p, b.n, LMRT_E_FORMAT, "PLTE is 4 bytes");
    b.n = 0;
    uint8_t big[257 * 3] = {0};
    b_script(&b, 3, "H");
    b_chunk(&b, "PLTE", big, sizeof big);
    assert_rejected(b.p, b.n, LMRT_E_FORMAT, "PLTE is 771 bytes");
    b.n = 0;
    /* tRNS longer than the palette, and in an image with alpha */
    b_script(&b, 3, "HP");
    b_chunk(&b, "tRNS", "\1\2\3\4", 4);
    assert_rejected(b.p, b.n, LMRT_E_FORMAT, "tRNS has 4 entries but PLTE only 3");
    b.n = 0;
    b_put(&b, png_sig, 8);
    b_chunk(&b, "IHDR", "\0\0\0\1\0\0\0\1\x08\x06\0\0\0", 13);
    b_chunk(&b, "tRNS", "\0\1\0\1\0\1", 6);
    assert_rejected(b.p, b.n, LMRT_E_FORMAT, "tRNS in an image with an alpha channel");
    /* a bad signature */
    b.p[2] = 'X';
    assert_rejected(b.p, b.n, LMRT_E_FORMAT, "not PNG, JPEG or PPM/PGM");
    assert_int_equal(image_decode_png(b.p, b.n, BUDGET, &(image_rgb8){0, 0, NULL}),
                     LMRT_E_FORMAT);
    b.p[2] = 'N', b.p[6] = '\n';   /* a DOS->Unix line-ending mangling */
    assert_rejected(b.p, b.n, LMRT_E_FORMAT, "line endings");
    free(b.p);
}

static void bad_ihdr_fields_are_format_errors(void **state)
{
    (void)state;
    static const struct { uint8_t depth, colour, comp, filter, lace; const char *needle; } cases[] = {
        {16, 3, 0, 0, 0, "bit depth 16 is not allowed with colour type 3"},
        {3, 0, 0, 0, 0, "bit depth 3"},
        {4, 2, 0, 0, 0, "bit depth 4 is not allowed with colour type 2"},
        {1, 4, 0, 0, 0, "bit depth 1"},
        {2, 6, 0, 0, 0, "bit depth 2"},
        {32, 0, 0, 0, 0, "bit depth 32"},
        {0, 0, 0, 0, 0, "bit depth 0"},
        {8, 1, 0, 0, 0, "colour type 1"},
        {8, 5, 0, 0, 0, "colour type 5"},
        {8, 7, 0, 0, 0, "colour type 7"},
        {8, 0, 1, 0, 0, "compression method 1"},
        {8, 0, 0, 1, 0, "filter method 1"},
        {8, 0, 0, 0, 2, "interlace method 2"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t d[13] = {0, 0, 0, 2, 0, 0, 0, 2, cases[i].depth, cases[i].colour, cases[i].comp,
                         cases[i].filter, cases[i].lace};
        bytes b = {0};
        b_put(&b, png_sig, 8);
        b_chunk(&b, "IHDR", d, 13);
        b_chunk(&b, "IEND", NULL, 0);
        assert_rejected(b.p, b.n, LMRT_E_FORMAT, cases[i].needle);
        free(b.p);
    }
    bytes b = {0};
    b_put(&b, png_sig, 8);
    b_chunk(&b, "IHDR", "\0\0\0\1\0\0\0\1\x08\0\0\0\0\0", 14);
    assert_rejected(b.p, b.n, LMRT_E_FORMAT, "IHDR is 14 bytes, not 13");
    free(b.p);
}

static void unknown_critical_chunk_is_unsupported(void **state)
{
    (void)state;
    bytes b = {0};
    b_script(&b, 0, "HD");
    b_chunk(&b, "ABCD", "x", 1);
    b_chunk(&b, "IEND", NULL, 0);
    assert_rejected(b.p, b.n, LMRT_E_UNSUPPORTED, "critical chunk 'ABCD'");
    free(b.p);
}

/* ------------------------------------------------------------------------ */
/* PPM / PGM                                                                */
/* ------------------------------------------------------------------------ */

static void decode_ok(const uint8_t *data, size_t n, int32_t w, int32_t h, const uint8_t *want)
{
    image_rgb8 img;
    lmrt_status st = decode_copy(data, n, BUDGET, &img);
    if (st != LMRT_OK)
        print_error("%s\n", lmrt_last_error());
    assert_int_equal(st, LMRT_OK);
    assert_int_equal(img.width, w);
    assert_int_equal(img.height, h);
    assert_memory_equal(img.pixels, want, (size_t)w * h * 3);
    image_rgb8_free(&img);
}

static void binary_ppm_and_pgm_decode(void **state)
{
    (void)state;
    /* P6 with comments everywhere a header allows them */
    const char p6[] = "P6 # a comment\n2 #w\n# another\n1\n255\n\x01\x02\x03\xfd\xfe\xff";
    const uint8_t want6[] = {1, 2, 3, 253, 254, 255};
    decode_ok((const uint8_t *)p6, sizeof p6 - 1, 2, 1, want6);
    /* P5, the raster starting with a whitespace byte value */
    const char p5[] = "P5\n3 1\n255\n\x0a\x20\x80";
    const uint8_t want5[] = {10, 10, 10, 32, 32, 32, 128, 128, 128};
    decode_ok((const uint8_t *)p5, sizeof p5 - 1, 3, 1, want5);
    /* maxval 1: 0 and 1 become 0 and 255 */
    const char p5b[] = "P5 2 1 1 \x00\x01";
    const uint8_t want5b[] = {0, 0, 0, 255, 255, 255};
    decode_ok((const uint8_t *)p5b, sizeof p5b - 1, 2, 1, want5b);
    /* maxval 1000, 16-bit big-endian samples: v * 255 / 1000 rounded */
    const char p6w[] = "P6\n1 1\n1000\n\x00\x00\x01\xf4\x03\xe8";   /* 0, 500, 1000 */
    const uint8_t want6w[] = {0, 128, 255};
    decode_ok((const uint8_t *)p6w, sizeof p6w - 1, 1, 1, want6w);
    /* maxval 65535: 0x8000 -> 128.0019.. -> 128, 0x7f7f -> 127 */
    const char p5w[] = "P5\r\n2\t1\r\n65535\n\x80\x00\x7f\x7f";
    const uint8_t want5w[] = {128, 128, 128, 127, 127, 127};
    decode_ok((const uint8_t *)p5w, sizeof p5w - 1, 2, 1, want5w);
    /* only the first image of a multi-image file is read */
    const char two[] = "P5 1 1 255\n\x2aP5 1 1 255\n\x2b";
    const uint8_t want_two[] = {42, 42, 42};
    decode_ok((const uint8_t *)two, sizeof two - 1, 1, 1, want_two);
}

static void plain_ppm_and_pgm_decode(void **state)
{
    (void)state;
    const char p3[] = "P3\n# plain\n2 2\n15\n0 0 0  15 15 15\n1 2 3 # mid-raster comment\n4 5 6";
    const uint8_t want3[] = {0, 0, 0, 255, 255, 255, 17, 34, 51, 68, 85, 102};
    decode_ok((const uint8_t *)p3, sizeof p3 - 1, 2, 2, want3);
    const char p2[] = "P2 3 1 65535 0 65535 32768\n";
    const uint8_t want2[] = {0, 0, 0, 255, 255, 255, 128, 128, 128};
    decode_ok((const uint8_t *)p2, sizeof p2 - 1, 3, 1, want2);
}

#define PPM_CASE(lit, needle) {lit, sizeof(lit) - 1, needle}

static void bad_ppm_headers_and_data_are_format_errors(void **state)
{
    (void)state;
    static const struct { const char *data; size_t n; const char *needle; } cases[] = {
        PPM_CASE("P6 2 2 255\n\1\2\3\4\5\6\7\10\11\12\13", "raster needs 12 x 1 bytes, but only 11"),
        PPM_CASE("P6 1 1 65535\n\1\2\3\4\5", "raster needs 3 x 2 bytes, but only 5"),
        PPM_CASE("P6 1 1 0\n\0\0\0", "maxval is 0 (at least 1 allowed)"),
        PPM_CASE("P6 1 1 65536\n\0\0\0\0\0\0", "maxval is larger than 65535"),
        PPM_CASE("P6 1 1 99999999999999999999\n", "maxval is larger than 65535"),
        PPM_CASE("P6 0 1 255\n", "width is 0"),
        PPM_CASE("P6 1 0 255\n", "height is 0"),
        PPM_CASE("P6 4294967296 1 255\n", "width is larger than 2147483647"),
        PPM_CASE("P6 100000 100000 255\n", "more than the budget of 4194304"),
        PPM_CASE("P6 1 1 255", "no whitespace byte after maxval"),
        PPM_CASE("P6 1 1 255x\0\0\0", "maxval is followed by byte 0x78"),
        PPM_CASE("P6 1 x 255\n\0\0\0", "height expected, found byte 0x78"),
        PPM_CASE("P6 1", "file ends before the height"),
        PPM_CASE("P6x 1 1 255\n\0\0\0", "magic P6 is followed by byte 0x78"),
        PPM_CASE("P5 2 1 100\n\x64\x65", "sample 1 is 101, above maxval 100"),
        PPM_CASE("P2 2 1 100\n100 101", "sample 1 is 101, above maxval 100"),
        PPM_CASE("P3 1 1 255\n1 2", "cannot hold 3 plain samples"),
        PPM_CASE("P3 1 1 255\n1 2 z  ", "sample expected, found byte 0x7a"),
        PPM_CASE("P2 1 1 255\n-1 ", "sample expected, found byte 0x2d"),
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        lmrt_status st = decode_copy((const uint8_t *)cases[i].data, cases[i].n, BUDGET, NULL);
        if (st != LMRT_E_FORMAT || !strstr(lmrt_last_error(), cases[i].needle))
            print_error("case %zu: %s: %s\n", i, lmrt_status_str(st), lmrt_last_error());
        assert_int_equal(st, LMRT_E_FORMAT);
        assert_true(mentions(cases[i].needle));
        assert_true(mentions("PPM: "));
    }
}

static void ppm_truncated_at_every_offset_is_a_format_error(void **state)
{
    (void)state;
    const char *files[] = {"P6 # c\n3 2\n255\n", "P5\n3 2 65535\n", "P3 3 2 255\n", "P2 3 2 9\n"};
    for (size_t f = 0; f < 4; f++) {
        bytes b = {0};
        b_str(&b, files[f]);
        bool plain = files[f][1] == '3' || files[f][1] == '2';
        size_t samples = files[f][1] == '5' || files[f][1] == '2' ? 6 : 18;
        size_t bps = files[f][1] == '5' ? 2 : 1;
        for (size_t i = 0; i < samples; i++) {
            if (plain) {
                b_str(&b, i % 2 ? "9 " : "7\n");
            } else {
                uint8_t v[2] = {(uint8_t)i, (uint8_t)(i * 7)};
                b_put(&b, v, bps);
            }
        }
        if (plain)
            b.n--;   /* no separator after the last sample */
        assert_int_equal(decode_copy(b.p, b.n, BUDGET, NULL), LMRT_OK);
        for (size_t len = 0; len < b.n; len++) {
            lmrt_status st = decode_copy(b.p, len, BUDGET, NULL);
            if (st != LMRT_E_FORMAT)
                print_error("%s: length %zu: %s\n", files[f], len, lmrt_last_error());
            assert_int_equal(st, LMRT_E_FORMAT);
        }
        free(b.p);
    }
}

static void pbm_and_pam_are_unsupported(void **state)
{
    (void)state;
    assert_rejected((const uint8_t *)"P1\n1 1\n0", 8, LMRT_E_UNSUPPORTED, "PBM");
    assert_rejected((const uint8_t *)"P4\n1 1\n\0", 8, LMRT_E_UNSUPPORTED, "PBM");
    assert_rejected((const uint8_t *)"P7\nWIDTH 1\n", 10, LMRT_E_UNSUPPORTED, "PAM");
    assert_rejected((const uint8_t *)"P8\n1 1\n", 7, LMRT_E_FORMAT, "not PNG, JPEG or PPM/PGM");
}

/* ------------------------------------------------------------------------ */
/* JPEG                                                                     */
/* ------------------------------------------------------------------------ */

#ifdef LMRT_HAVE_JPEG

/* A smooth test pattern, [h][w][3]. */
static uint8_t *pattern_rgb(int w, int h)
{
    uint8_t *px = malloc((size_t)w * h * 3);
    assert_non_null(px);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = px + ((size_t)y * w + x) * 3;
            p[0] = (uint8_t)(x * 255 / (w - 1));
            p[1] = (uint8_t)(y * 255 / (h - 1));
            p[2] = (uint8_t)(128 + (x - y) / 2);
        }
    return px;
}

/* Encodes with libjpeg in memory; `comps` is 1 (grey), 3 (RGB) or 4 (CMYK, stored
 * Adobe-inverted as Photoshop does: 255 = no ink). */
static uint8_t *jpeg_encode(const uint8_t *px, int w, int h, int comps, bool progressive,
                            int quality, size_t *n)
{
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr err;
    c.err = jpeg_std_error(&err);
    jpeg_create_compress(&c);
    unsigned char *buf = NULL;
    unsigned long size = 0;
    jpeg_mem_dest(&c, &buf, &size);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = comps;
    c.in_color_space = comps == 1 ? JCS_GRAYSCALE : comps == 3 ? JCS_RGB : JCS_CMYK;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality, TRUE);
    if (progressive)
        jpeg_simple_progression(&c);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW row = (JSAMPROW)(px + (size_t)c.next_scanline * w * comps);
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    uint8_t *out = malloc(size);
    assert_non_null(out);
    memcpy(out, buf, size);
    free(buf);
    *n = size;
    return out;
}

/* libjpeg's own decode of a valid file, converted to RGB the documented way. */
static uint8_t *jpeg_reference(const uint8_t *data, size_t n, int *w, int *h)
{
    struct jpeg_decompress_struct d;
    struct jpeg_error_mgr err;
    d.err = jpeg_std_error(&err);
    jpeg_create_decompress(&d);
    jpeg_mem_src(&d, data, (unsigned long)n);
    jpeg_read_header(&d, TRUE);
    bool cmyk = d.jpeg_color_space == JCS_CMYK || d.jpeg_color_space == JCS_YCCK;
    d.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    jpeg_start_decompress(&d);
    *w = (int)d.output_width, *h = (int)d.output_height;
    int comps = d.output_components;
    uint8_t *row = malloc((size_t)*w * comps), *rgb = malloc((size_t)*w * *h * 3);
    assert_true(row && rgb);
    while (d.output_scanline < d.output_height) {
        size_t y = d.output_scanline;
        jpeg_read_scanlines(&d, &row, 1);
        for (int x = 0; x < *w; x++)
            for (int c = 0; c < 3; c++)
                rgb[(y * *w + x) * 3 + c] = cmyk ? (uint8_t)((row[x * 4 + c] * row[x * 4 + 3] + 127) / 255)
                                                 : row[x * 3 + c];
    }
    jpeg_finish_decompress(&d);
    jpeg_destroy_decompress(&d);
    free(row);
    return rgb;
}

static int max_abs_diff(const uint8_t *a, const uint8_t *b, size_t n)
{
    int m = 0;
    for (size_t i = 0; i < n; i++)
        m = abs(a[i] - b[i]) > m ? abs(a[i] - b[i]) : m;
    return m;
}

/* One JPEG of the pattern in `comps` components. */
static uint8_t *pattern_jpeg(int w, int h, int comps, bool progressive, size_t *n)
{
    uint8_t *rgb = pattern_rgb(w, h), *src = malloc((size_t)w * h * 4);
    assert_non_null(src);
    for (size_t i = 0; i < (size_t)w * h; i++) {
        if (comps == 1)
            src[i] = rgb[3 * i + 1];
        else if (comps == 3)
            memcpy(src + 3 * i, rgb + 3 * i, 3);
        else
            memcpy(src + 4 * i, rgb + 3 * i, 3), src[4 * i + 3] = 255;   /* no black ink */
    }
    uint8_t *file = jpeg_encode(src, w, h, comps, progressive, 95, n);
    free(src), free(rgb);
    return file;
}

static void jpeg_rgb_grey_cmyk_and_progressive_decode(void **state)
{
    (void)state;
    const int w = 37, h = 23;
    uint8_t *rgb = pattern_rgb(w, h);
    for (int comps = 1; comps <= 4; comps++) {
        if (comps == 2)
            continue;
        for (int prog = 0; prog < 2; prog++) {
            size_t n;
            uint8_t *file = pattern_jpeg(w, h, comps, prog, &n);
            image_rgb8 img;
            lmrt_status st = decode_copy(file, n, BUDGET, &img);
            if (st != LMRT_OK)
                print_error("comps %d prog %d: %s\n", comps, prog, lmrt_last_error());
            assert_int_equal(st, LMRT_OK);
            assert_int_equal(img.width, w);
            assert_int_equal(img.height, h);
            int rw, rh;
            uint8_t *ref = jpeg_reference(file, n, &rw, &rh);
            assert_true(same_pixels(img.pixels, ref, w, h, "libjpeg reference"));
            for (size_t i = 0; i < (size_t)w * h; i++) {   /* and close to the source */
                for (int c = 0; c < 3; c++) {
                    int want = comps == 1 ? rgb[3 * i + 1] : rgb[3 * i + c];
                    /* quality 95 on a smooth pattern: a few levels; 12 leaves room
                     * for chroma subsampling at the pattern's corners */
                    if (abs(img.pixels[3 * i + c] - want) > 12)
                        fail_msg("comps %d prog %d: pixel %zu channel %d is %u, source %d",
                                 comps, prog, i, c, img.pixels[3 * i + c], want);
                }
            }
            free(ref);
            image_rgb8_free(&img);
            free(file);
        }
    }
    free(rgb);
}

static void photo_as_jpeg_decodes_close_to_the_png(void **state)
{
    (void)state;
    image_rgb8 cat;
    assert_int_equal(image_load_file(CHELSEA_PATH, BUDGET, &cat), LMRT_OK);
    size_t n;
    uint8_t *file = jpeg_encode(cat.pixels, cat.width, cat.height, 3, false, 90, &n);
    image_rgb8 img;
    assert_int_equal(decode_copy(file, n, BUDGET, &img), LMRT_OK);
    int rw, rh;
    uint8_t *ref = jpeg_reference(file, n, &rw, &rh);
    assert_true(same_pixels(img.pixels, ref, img.width, img.height, "chelsea.jpg"));
    uint64_t err = 0;
    size_t bytes = (size_t)cat.width * cat.height * 3;
    for (size_t i = 0; i < bytes; i++)
        err += (uint64_t)abs(img.pixels[i] - cat.pixels[i]);
    assert_true(err < 4 * bytes);   /* quality 90: mean error about 2 levels */
    assert_true(max_abs_diff(img.pixels, cat.pixels, bytes) < 128);
    free(ref), free(file);
    image_rgb8_free(&img);
    image_rgb8_free(&cat);
}

static void truncated_jpeg_is_a_format_error_at_every_offset(void **state)
{
    (void)state;
    for (int prog = 0; prog < 2; prog++) {
        size_t n;
        uint8_t *file = pattern_jpeg(19, 11, 3, prog, &n);
        for (size_t len = 0; len < n; len++) {
            lmrt_status st = decode_copy(file, len, BUDGET, NULL);
            if (st != LMRT_E_FORMAT)
                print_error("length %zu of %zu: %s\n", len, n, lmrt_last_error());
            assert_int_equal(st, LMRT_E_FORMAT);
        }
        free(file);
    }
}

static void corrupt_jpeg_is_an_error_or_an_image_never_a_crash(void **state)
{
    (void)state;
    size_t n;
    uint8_t *file = pattern_jpeg(19, 11, 3, true, &n);
    size_t errors = 0;
    for (size_t i = 3; i < n; i++) {
        file[i] ^= 0x55;
        lmrt_status st = decode_copy(file, n, BUDGET, NULL);
        assert_true(st == LMRT_OK || st == LMRT_E_FORMAT || st == LMRT_E_UNSUPPORTED);
        errors += st != LMRT_OK;
        file[i] ^= 0x55;
    }
    assert_true(errors > 0);
    free(file);
    /* garbage after the SOI marker */
    rng_state = 99;
    uint8_t junk[600];
    for (int k = 0; k < 200; k++) {
        junk[0] = 0xff, junk[1] = 0xd8, junk[2] = 0xff;
        for (size_t i = 3; i < sizeof junk; i++)
            junk[i] = (uint8_t)rng();
        lmrt_status st = decode_copy(junk, sizeof junk, BUDGET, NULL);
        assert_true(st == LMRT_E_FORMAT || st == LMRT_E_UNSUPPORTED);
        assert_true(mentions("JPEG: "));
    }
}

/* An 8x8 grey progressive JPEG with one scan per coefficient band and, when
 * `refine`, 10 successive-approximation refinements of each (libjpeg's limit for
 * 8-bit samples): 64 or 704 scans. */
static uint8_t *jpeg_with_scans(bool refine, size_t *n, int *n_scans)
{
    static jpeg_scan_info scans[64 * 11];
    int k = 0;
    for (int band = 0; band < 64; band++)
        for (int al = refine ? 10 : 0; al >= 0; al--) {
            jpeg_scan_info *si = &scans[k++];
            memset(si, 0, sizeof *si);
            si->comps_in_scan = 1;
            si->Ss = si->Se = band;
            si->Ah = al == (refine ? 10 : 0) ? 0 : al + 1;
            si->Al = al;
        }
    uint8_t px[64];
    for (int i = 0; i < 64; i++)
        px[i] = (uint8_t)(i * 4);
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr err;
    c.err = jpeg_std_error(&err);
    jpeg_create_compress(&c);
    unsigned char *buf = NULL;
    unsigned long size = 0;
    jpeg_mem_dest(&c, &buf, &size);
    c.image_width = c.image_height = 8;
    c.input_components = 1;
    c.in_color_space = JCS_GRAYSCALE;
    jpeg_set_defaults(&c);
    c.scan_info = scans;
    c.num_scans = k;
    jpeg_start_compress(&c, TRUE);
    for (int y = 0; y < 8; y++) {
        JSAMPROW row = px + 8 * y;
        jpeg_write_scanlines(&c, &row, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    uint8_t *out = malloc(size);
    assert_non_null(out);
    memcpy(out, buf, size);
    free(buf);
    *n = size;
    *n_scans = k;
    return out;
}

static void jpeg_with_too_many_scans_is_rejected(void **state)
{
    (void)state;
    size_t n;
    int scans;
    uint8_t *file = jpeg_with_scans(false, &n, &scans);
    assert_int_equal(scans, 64);
    assert_int_equal(decode_copy(file, n, BUDGET, NULL), LMRT_OK);
    free(file);
    file = jpeg_with_scans(true, &n, &scans);
    assert_int_equal(scans, 704);
    assert_rejected(file, n, LMRT_E_FORMAT, "more than 256 scans");
    free(file);
}

static void jpeg_over_budget_is_rejected(void **state)
{
    (void)state;
    size_t n;
    uint8_t *file = pattern_jpeg(19, 11, 3, false, &n);
    image_rgb8 img = {-7, -9, NULL};
    assert_int_equal(image_decode(file, n, 19 * 11 - 1, &img), LMRT_E_FORMAT);
    assert_true(mentions("JPEG: image is 19 x 11 pixels, more than the budget of 208"));
    assert_int_equal(img.width, -7);
    assert_int_equal(image_decode(file, n, 19 * 11, &img), LMRT_OK);
    image_rgb8_free(&img);
    free(file);
}

#endif /* LMRT_HAVE_JPEG */

static void jpeg_support_matches_the_build(void **state)
{
    (void)state;
    const uint8_t soi[] = {0xff, 0xd8, 0xff, 0xe0, 0, 16, 'J', 'F', 'I', 'F', 0};
#ifdef LMRT_HAVE_JPEG
    assert_true(image_jpeg_supported());
    assert_rejected(soi, sizeof soi, LMRT_E_FORMAT, "JPEG: offset ");
#else
    assert_false(image_jpeg_supported());
    assert_rejected(soi, sizeof soi, LMRT_E_UNSUPPORTED, "this build has no JPEG support");
#endif
}

/* ------------------------------------------------------------------------ */
/* entry points, files, allocation failures                                 */
/* ------------------------------------------------------------------------ */

static void bad_arguments_and_unknown_formats_are_rejected(void **state)
{
    (void)state;
    image_rgb8 img = {-7, -9, NULL};
    assert_int_equal(image_decode("P5 1 1 255 x", 12, BUDGET, NULL), LMRT_E_INVALID_ARG);
    assert_int_equal(image_decode(NULL, 12, BUDGET, &img), LMRT_E_INVALID_ARG);
    assert_int_equal(image_decode("P5 1 1 255 x", 12, 0, &img), LMRT_E_INVALID_ARG);
    assert_true(mentions("budget 0"));
    assert_int_equal(image_decode("P5 1 1 255 x", 12, -5, &img), LMRT_E_INVALID_ARG);
    assert_int_equal(image_load_file(NULL, BUDGET, &img), LMRT_E_INVALID_ARG);
    assert_int_equal(img.width, -7);
    assert_rejected(NULL, 0, LMRT_E_FORMAT, "0 bytes are too few");
    assert_rejected((const uint8_t *)"GIF89a....", 10, LMRT_E_FORMAT,
                    "offset 0: magic bytes 47 49 46 38 are not PNG, JPEG or PPM/PGM");
    assert_rejected((const uint8_t *)"\x89PN", 3, LMRT_E_FORMAT, "3 bytes are too few");
    /* exactly at the budget is fine */
    assert_int_equal(image_decode("P5 2 2 255 abcd", 15, 4, &img), LMRT_OK);
    image_rgb8_free(&img);
    image_rgb8_free(&img);   /* twice is fine */
    image_rgb8_free(NULL);
    assert_int_equal(image_decode("P5 2 2 255 abcd", 15, 3, &img), LMRT_E_FORMAT);
}

static void load_file_errors_name_the_path(void **state)
{
    (void)state;
    image_rgb8 img = {-7, -9, NULL};
    assert_int_equal(image_load_file("/nonexistent/x.png", BUDGET, &img), LMRT_E_IO);
    assert_true(mentions("/nonexistent/x.png: cannot open"));
    assert_int_equal(image_load_file(LMRT_SOURCE_ROOT "/tests", BUDGET, &img), LMRT_E_IO);
    assert_true(mentions("not a regular file"));
    /* a decode error is prefixed with the path */
    assert_int_equal(image_load_file(LMRT_SOURCE_ROOT "/tests/meson.build", BUDGET, &img),
                     LMRT_E_FORMAT);
    assert_true(mentions("/tests/meson.build: image: offset 0: magic bytes"));
    assert_int_equal(image_load_file(CAMERA_PATH, 512 * 511, &img), LMRT_E_FORMAT);
    assert_true(mentions("camera.png: PNG: image is 512 x 512 pixels, more than the budget"));
    assert_int_equal(img.width, -7);
}

static void assert_every_alloc_failure_is_nomem(const uint8_t *data, size_t n, const char *what)
{
    for (long k = 0;; k++) {
        assert_true(k < 10000);
        image_rgb8 img = {-7, -9, NULL};
        lmrt_alloc_fail_after(k);
        lmrt_status st = image_decode(data, n, BUDGET, &img);
        lmrt_alloc_fail_after(-1);
        if (st == LMRT_OK) {
            image_rgb8_free(&img);
            return;
        }
        if (st != LMRT_E_NOMEM)
            print_error("%s, allocation %ld: %s: %s\n", what, k, lmrt_status_str(st),
                        lmrt_last_error());
        assert_int_equal(st, LMRT_E_NOMEM);
        assert_int_equal(img.width, -7);
        assert_true(mentions("out of memory"));
    }
}

static void every_alloc_failure_is_nomem(void **state)
{
    (void)state;
    for (size_t k = 0; k < N_KINDS; k++) {
        uint8_t colour = png_kinds[k].colour;
        png_spec s = {17, 9, png_kinds[k].depth, colour, (uint8_t)(k % 2), -1,
                      colour != 4 && colour != 6, 5};
        png_case pc;
        png_case_init(&pc, &s, 3);
        size_t n;
        uint8_t *file = png_case_encode(&pc, &n);
        assert_every_alloc_failure_is_nomem(file, n, "PNG");
        free(file);
        png_case_free(&pc);
    }
    assert_every_alloc_failure_is_nomem((const uint8_t *)"P6 1 2 255\n123456", 17, "P6");
    assert_every_alloc_failure_is_nomem((const uint8_t *)"P2 1 2 9\n1 2", 12, "P2");
#ifdef LMRT_HAVE_JPEG
    for (int comps = 1; comps <= 4; comps += comps == 1 ? 2 : 1) {
        size_t n;
        uint8_t *file = pattern_jpeg(19, 11, comps, comps == 3, &n);
        assert_every_alloc_failure_is_nomem(file, n, "JPEG");
        free(file);
    }
#endif
    for (long k = 0;; k++) {   /* and through a file */
        assert_true(k < 10000);
        image_rgb8 img = {-7, -9, NULL};
        lmrt_alloc_fail_after(k);
        lmrt_status st = image_load_file(CHELSEA_PATH, BUDGET, &img);
        lmrt_alloc_fail_after(-1);
        if (st == LMRT_OK) {
            image_rgb8_free(&img);
            break;
        }
        assert_int_equal(st, LMRT_E_NOMEM);
        assert_true(mentions("chelsea.png"));
        assert_int_equal(img.width, -7);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(camera_greyscale_photo_decodes_exactly),
        cmocka_unit_test(chelsea_rgb_photo_decodes_exactly),
        cmocka_unit_test(photos_reencoded_interlaced_decode_the_same),
        cmocka_unit_test(every_colour_type_depth_interlace_and_size_decodes_exactly),
        cmocka_unit_test(every_filter_type_decodes_exactly),
        cmocka_unit_test(trns_makes_pixels_white_for_grey_rgb_and_palette),
        cmocka_unit_test(alpha_is_composited_over_white),
        cmocka_unit_test(sixteen_bit_samples_keep_their_high_byte),
        cmocka_unit_test(idat_split_into_tiny_and_empty_chunks_decodes),
        cmocka_unit_test(unknown_ancillary_chunks_are_skipped),
        cmocka_unit_test(bad_crc_names_the_chunk_and_its_offset),
        cmocka_unit_test(every_flipped_bit_is_a_format_error),
        cmocka_unit_test(truncation_at_every_offset_is_a_format_error),
        cmocka_unit_test(dimensions_beyond_the_budget_are_rejected_before_allocating),
        cmocka_unit_test(decompression_bomb_stops_at_the_expected_size),
        cmocka_unit_test(idat_too_small_for_ihdr_is_rejected_before_allocating),
        cmocka_unit_test(bad_zlib_streams_are_format_errors),
        cmocka_unit_test(bad_filter_byte_is_a_format_error),
        cmocka_unit_test(palette_index_out_of_range_is_a_format_error),
        cmocka_unit_test(chunk_structure_errors_are_format_errors),
        cmocka_unit_test(bad_chunk_fields_are_format_errors),
        cmocka_unit_test(bad_ihdr_fields_are_format_errors),
        cmocka_unit_test(unknown_critical_chunk_is_unsupported),
        cmocka_unit_test(binary_ppm_and_pgm_decode),
        cmocka_unit_test(plain_ppm_and_pgm_decode),
        cmocka_unit_test(bad_ppm_headers_and_data_are_format_errors),
        cmocka_unit_test(ppm_truncated_at_every_offset_is_a_format_error),
        cmocka_unit_test(pbm_and_pam_are_unsupported),
#ifdef LMRT_HAVE_JPEG
        cmocka_unit_test(jpeg_rgb_grey_cmyk_and_progressive_decode),
        cmocka_unit_test(photo_as_jpeg_decodes_close_to_the_png),
        cmocka_unit_test(truncated_jpeg_is_a_format_error_at_every_offset),
        cmocka_unit_test(corrupt_jpeg_is_an_error_or_an_image_never_a_crash),
        cmocka_unit_test(jpeg_over_budget_is_rejected),
        cmocka_unit_test(jpeg_with_too_many_scans_is_rejected),
#endif
        cmocka_unit_test(jpeg_support_matches_the_build),
        cmocka_unit_test(bad_arguments_and_unknown_formats_are_rejected),
        cmocka_unit_test(load_file_errors_name_the_path),
        cmocka_unit_test(every_alloc_failure_is_nomem),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
