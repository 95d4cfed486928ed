/* jpeg.c - decode JPEG (baseline, progressive; grey, YCbCr, RGB, CMYK, YCCK) to 8-bit
 * RGB through libjpeg, when the build has it. libjpeg must never exit or print: its
 * errors longjmp back here, its messages are dropped, and corrupt data is an error. */
#include "format/image.h"

#include "base/error.h"

#ifndef LMRT_HAVE_JPEG

bool image_jpeg_supported(void)
{
    return false;
}

lmrt_status image_decode_jpeg(const uint8_t *data, size_t size, int64_t max_pixels,
                              image_rgb8 *out)
{
    (void)data, (void)size, (void)max_pixels, (void)out;
    return lmrt_fail(LMRT_E_UNSUPPORTED, "JPEG: this build has no JPEG support (build lmrt "
                     "with libjpeg installed, meson option -Djpeg=enabled)");
}

#else

#include <inttypes.h>
#include <setjmp.h>
#include <stdio.h>   /* jpeglib.h needs FILE */
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>

#include "base/alloc.h"

/* More scans than any real progressive file has (they use about 10); a file with
 * thousands of tiny scans would otherwise cost a full image pass per scan. */
#define JPEG_MAX_SCANS 256

typedef struct jpeg_guard {
    struct jpeg_error_mgr mgr;       /* first: libjpeg sees only this part */
    struct jpeg_progress_mgr progress;
    jmp_buf jump;
    lmrt_status status;
    char message[JMSG_LENGTH_MAX];
} jpeg_guard;

bool image_jpeg_supported(void)
{
    return true;
}

/* error_exit: never returns to libjpeg (whose default would exit the process). */
static void on_error(j_common_ptr cinfo)
{
    jpeg_guard *g = (jpeg_guard *)cinfo->err;
    g->mgr.format_message(cinfo, g->message);
    g->status = g->mgr.msg_code == JERR_OUT_OF_MEMORY ? LMRT_E_NOMEM : LMRT_E_FORMAT;
    longjmp(g->jump, 1);
}

/* emit_message: traces are dropped; a warning about corrupt or missing data is
 * an error, warnings about harmless oddities (stray bytes between markers, an
 * unknown JFIF revision or Adobe transform, a bad ICC marker) are ignored. */
static void on_message(j_common_ptr cinfo, int level)
{
    jpeg_guard *g = (jpeg_guard *)cinfo->err;
    if (level >= 0)
        return;
    switch (g->mgr.msg_code) {
    case JWRN_EXTRANEOUS_DATA:
    case JWRN_JFIF_MAJOR:
    case JWRN_ADOBE_XFORM:
    case JWRN_BOGUS_ICC:
        g->mgr.num_warnings++;
        return;
    default:
        on_error(cinfo);
    }
}

static void on_output(j_common_ptr cinfo)
{
    (void)cinfo;   /* the library never prints */
}

static void on_progress(j_common_ptr cinfo)
{
    j_decompress_ptr d = (j_decompress_ptr)cinfo;
    jpeg_guard *g = (jpeg_guard *)cinfo->err;
    if (d->input_scan_number > JPEG_MAX_SCANS) {
        snprintf(g->message, sizeof g->message, "more than %d scans", JPEG_MAX_SCANS);
        g->status = LMRT_E_FORMAT;
        longjmp(g->jump, 1);
    }
}

/* A memory source that treats running out of data as an error: libjpeg's own
 * would pad a truncated file with a fake EOI and decode grey. */
static void src_init(j_decompress_ptr cinfo)
{
    (void)cinfo;
}

static boolean src_fill(j_decompress_ptr cinfo)
{
    ERREXIT(cinfo, JERR_INPUT_EOF);
    return FALSE;
}

static void src_skip(j_decompress_ptr cinfo, long n)
{
    struct jpeg_source_mgr *src = cinfo->src;
    if (n <= 0)
        return;
    if ((unsigned long)n > src->bytes_in_buffer)
        ERREXIT(cinfo, JERR_INPUT_EOF);
    src->next_input_byte += n;
    src->bytes_in_buffer -= (size_t)n;
}

static void src_term(j_decompress_ptr cinfo)
{
    (void)cinfo;
}

/* Converts one decoded row of `n` pixels with `comps` components to RGB. */
static void to_rgb(const uint8_t *in, int comps, bool adobe_inverted, JDIMENSION n, uint8_t *out)
{
    for (JDIMENSION x = 0; x < n; x++, out += 3) {
        if (comps == 1) {
            out[0] = out[1] = out[2] = in[x];
        } else if (comps == 3) {
            memcpy(out, in + 3 * (size_t)x, 3);
        } else {   /* CMYK; Adobe files store it inverted (0 = full ink) */
            const uint8_t *p = in + 4 * (size_t)x;
            unsigned k = adobe_inverted ? p[3] : 255u - p[3];
            for (int c = 0; c < 3; c++) {
                unsigned v = adobe_inverted ? p[c] : 255u - p[c];
                out[c] = (uint8_t)((v * k + 127u) / 255u);
            }
        }
    }
}

lmrt_status image_decode_jpeg(const uint8_t *data, size_t size, int64_t max_pixels,
                              image_rgb8 *out)
{
    if (!out || (!data && size))
        return lmrt_fail(LMRT_E_INVALID_ARG, "image_decode_jpeg: NULL %s", out ? "data" : "out");
    if (size < 3 || data[0] != 0xff || data[1] != 0xd8 || data[2] != 0xff)
        return lmrt_fail(LMRT_E_FORMAT, "JPEG: offset 0: no SOI marker (ff d8 ff)");

    struct jpeg_decompress_struct cinfo;
    struct jpeg_source_mgr src;
    jpeg_guard g;
    memset(&cinfo, 0, sizeof cinfo);
    memset(&g, 0, sizeof g);
    /* changed after setjmp, read after longjmp: volatile */
    uint8_t *volatile row = NULL;
    uint8_t *volatile pixels = NULL;
    volatile lmrt_status st = LMRT_OK;
    image_rgb8 img = {0, 0, NULL};

    cinfo.err = jpeg_std_error(&g.mgr);
    g.mgr.error_exit = on_error;
    g.mgr.emit_message = on_message;
    g.mgr.output_message = on_output;
    if (setjmp(g.jump)) {
        size_t at = cinfo.src ? size - cinfo.src->bytes_in_buffer : 0;
        if (g.status == LMRT_E_NOMEM)
            st = lmrt_fail(LMRT_E_NOMEM, "JPEG: out of memory in libjpeg: %s", g.message);
        else
            st = lmrt_fail(LMRT_E_FORMAT, "JPEG: offset %zu: %s", at, g.message);
        goto done;
    }
    jpeg_create_decompress(&cinfo);
    g.progress.progress_monitor = on_progress;
    cinfo.progress = &g.progress;
    memset(&src, 0, sizeof src);
    src.init_source = src_init;
    src.fill_input_buffer = src_fill;
    src.skip_input_data = src_skip;
    src.resync_to_restart = jpeg_resync_to_restart;
    src.term_source = src_term;
    src.next_input_byte = data;
    src.bytes_in_buffer = size;
    cinfo.src = &src;

    jpeg_read_header(&cinfo, TRUE);
    lmrt_status s = image_check_size("JPEG", cinfo.image_width, cinfo.image_height, max_pixels);
    if (s != LMRT_OK) {
        st = s;
        goto done;
    }
    bool inverted = false;
    switch (cinfo.jpeg_color_space) {
    case JCS_GRAYSCALE:
        cinfo.out_color_space = JCS_GRAYSCALE;
        break;
    case JCS_YCbCr:
    case JCS_RGB:
        cinfo.out_color_space = JCS_RGB;
        break;
    case JCS_CMYK:
    case JCS_YCCK:
        cinfo.out_color_space = JCS_CMYK;
        inverted = cinfo.saw_Adobe_marker;
        break;
    default:
        st = lmrt_fail(LMRT_E_UNSUPPORTED, "JPEG: %d components in an unknown colour space are "
                       "not supported", cinfo.num_components);
        goto done;
    }
    jpeg_start_decompress(&cinfo);
    int comps = cinfo.output_components;
    if (cinfo.output_width != cinfo.image_width || cinfo.output_height != cinfo.image_height ||
        (comps != 1 && comps != 3 && comps != 4)) {
        st = lmrt_fail(LMRT_E_INTERNAL, "JPEG: libjpeg decodes %u x %u x %d, not the %u x %u "
                       "of the header", cinfo.output_width, cinfo.output_height, comps,
                       cinfo.image_width, cinfo.image_height);
        goto done;
    }
    if ((s = image_alloc("JPEG", cinfo.output_width, cinfo.output_height, max_pixels, &img))) {
        st = s;
        goto done;
    }
    pixels = img.pixels;
    if (!(row = lmrt_malloc((size_t)cinfo.output_width * (size_t)comps))) {
        st = lmrt_fail(LMRT_E_NOMEM, "JPEG: out of memory for a row of %u pixels",
                       cinfo.output_width);
        goto done;
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JDIMENSION y = cinfo.output_scanline;
        JSAMPROW rows[1] = {row};
        if (jpeg_read_scanlines(&cinfo, rows, 1) != 1) {
            st = lmrt_fail(LMRT_E_FORMAT, "JPEG: scanline %u could not be decoded", y);
            goto done;
        }
        to_rgb(row, comps, inverted, cinfo.output_width,
               pixels + (size_t)y * cinfo.output_width * 3);
    }
    jpeg_finish_decompress(&cinfo);
    out->width = img.width;
    out->height = img.height;
    out->pixels = pixels;
    pixels = NULL;
done:
    jpeg_destroy_decompress(&cinfo);
    lmrt_mem_free(row);
    lmrt_mem_free(pixels);
    return st;
}

#endif
