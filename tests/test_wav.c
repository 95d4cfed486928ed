/* test_wav.c - WAV reader and resampler tests: every sample format, written here, decodes
 * to the exact mono mix; chunk order, padding and streaming sizes are handled; the real
 * speech files match Python's `wave` module; every truncation, hostile header, budget
 * overrun and failing allocation is a clean error. The resampler keeps a sine within
 * 80 dB SNR, keeps 7.5 kHz and removes 9 kHz going to 16 kHz, passes DC exactly and
 * gives ceil(n * out / in) samples. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "format/resample.h"
#include "format/wav.h"

#define ESPEAK_PATH LMRT_SOURCE_ROOT "/tests/data/audio/espeak_hello.wav"
#define LIBRIVOX_PATH \
    LMRT_SOURCE_ROOT "/tests/data/audio/sense_and_sensibility_01_austen_64kb-0880.wav"
#define BUDGET ((size_t)1 << 24)

/* ------------------------------------------------------------------------ */
/* a small WAV writer                                                       */
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

static void put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void b_le(bytes *b, uint64_t v, int n)
{
    uint8_t t[8];
    put_le(t, v, n);
    b_put(b, t, (size_t)n);
}

/* A chunk: id, size, data and the pad byte when the size is odd. */
static void b_chunk(bytes *b, const char *id, const void *data, size_t n)
{
    b_put(b, id, 4);
    b_le(b, n, 4);
    b_put(b, data, n);
    if (n % 2)
        b_put(b, "", 1);
}

typedef struct wav_spec {
    uint16_t tag;                   /* 1 PCM, 3 float */
    bool extensible;                /* written as 0xFFFE with `tag` in the GUID */
    uint16_t channels, bits, valid_bits;
    uint32_t rate;
} wav_spec;

static void b_fmt(bytes *b, const wav_spec *s)
{
    uint8_t f[40] = {0};
    uint16_t align = (uint16_t)(s->channels * s->bits / 8);
    put_le(f, s->extensible ? 0xfffe : s->tag, 2);
    put_le(f + 2, s->channels, 2);
    put_le(f + 4, s->rate, 4);
    put_le(f + 8, (uint64_t)s->rate * align, 4);
    put_le(f + 12, align, 2);
    put_le(f + 14, s->bits, 2);
    if (s->extensible) {
        static const uint8_t tail[14] = {0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xaa, 0, 0x38, 0x9b,
                                         0x71};
        put_le(f + 16, 22, 2);
        put_le(f + 18, s->valid_bits ? s->valid_bits : s->bits, 2);
        put_le(f + 20, s->channels == 2 ? 3 : 0, 4);
        put_le(f + 24, s->tag, 2);
        memcpy(f + 26, tail, sizeof tail);
    }
    b_chunk(b, "fmt ", f, s->extensible ? 40 : 16);
}

static void b_riff_begin(bytes *b)
{
    b_put(b, "RIFF\0\0\0\0WAVE", 12);
}

static void b_riff_end(bytes *b)
{
    put_le(b->p + 4, b->n - 8, 4);
}

/* Sample values for `n` (frames * channels) slots: the extremes first, then pseudo-random.
 * PCM: the stored integer (8-bit: 0..255); float: a double, some outside [-1, 1]. */
static void make_values(const wav_spec *s, size_t n, int64_t *iv, double *fv)
{
    uint64_t x = 0x9e3779b97f4a7c15u * (s->bits + 7u * s->channels + 1u);
    for (size_t i = 0; i < n; i++) {
        x = x * 6364136223846793005u + 1442695040888963407u;
        if (s->tag == 1) {
            int64_t lo = s->bits == 8 ? 0 : -((int64_t)1 << (s->bits - 1));
            int64_t hi = s->bits == 8 ? 255 : ((int64_t)1 << (s->bits - 1)) - 1;
            iv[i] = i == 0 ? lo : i == 1 ? hi : i == 2 && n > 3 ? hi : lo + (int64_t)((x >> 11) %
                                                                 (uint64_t)(hi - lo + 1));
        } else {
            static const double special[] = {-1.0, 1.0, 1.5, -3.0, 0.0, 0.99999};
            fv[i] = i < 6 ? special[i] : ((double)(x >> 11) / 9007199254740992.0) * 2.2 - 1.1;
        }
    }
}

static void b_data(bytes *b, const wav_spec *s, size_t n, const int64_t *iv, const double *fv)
{
    bytes d = {0};
    for (size_t i = 0; i < n; i++) {
        if (s->tag == 1) {
            b_le(&d, (uint64_t)iv[i], s->bits / 8);
        } else if (s->bits == 32) {
            float f = (float)fv[i];
            uint32_t u;
            memcpy(&u, &f, 4);
            b_le(&d, u, 4);
        } else {
            uint64_t u;
            memcpy(&u, &fv[i], 8);
            b_le(&d, u, 8);
        }
    }
    b_chunk(b, "data", d.p, d.n);
    free(d.p);
}

/* The mono sample the reader must give for frame `f`: computed here independently. */
static float expected(const wav_spec *s, const int64_t *iv, const double *fv, size_t f)
{
    double sum = 0;
    for (size_t c = 0; c < s->channels; c++) {
        size_t i = f * s->channels + c;
        if (s->tag == 1)
            sum += ldexp((double)(s->bits == 8 ? iv[i] - 128 : iv[i]), 1 - s->bits);
        else
            sum += fmax(-1.0, fmin(1.0, s->bits == 32 ? (double)(float)fv[i] : fv[i]));
    }
    float m = (float)(sum / s->channels);
    return s->tag == 1 && m >= 1.0f ? nextafterf(1.0f, 0.0f) : m;
}

/* A whole file: fmt, then data with `frames` frames. */
static bytes make_wav(const wav_spec *s, size_t frames, int64_t **iv, double **fv)
{
    size_t n = frames * s->channels;
    *iv = calloc(n, sizeof **iv);
    *fv = calloc(n, sizeof **fv);
    assert_true(*iv && *fv);
    make_values(s, n, *iv, *fv);
    bytes b = {0};
    b_riff_begin(&b);
    b_fmt(&b, s);
    b_data(&b, s, n, *iv, *fv);
    b_riff_end(&b);
    return b;
}

static bool mentions(const char *needle)
{
    if (strstr(lmrt_last_error(), needle))
        return true;
    print_error("message \"%s\" does not mention \"%s\"\n", lmrt_last_error(), needle);
    return false;
}

/* Decodes an exactly sized heap copy (so ASan sees any over-read); on failure checks
 * that `out` is untouched. `out` may be NULL when the result is not wanted. */
static lmrt_status decode_copy(const uint8_t *data, size_t size, size_t budget, audio_pcm *out)
{
    uint8_t *copy = malloc(size ? size : 1);
    assert_non_null(copy);
    if (size)
        memcpy(copy, data, size);
    audio_pcm a = {-7, 9, (float *)&a};
    lmrt_status st = wav_decode(size ? copy : NULL, size, budget, &a);
    free(copy);
    if (st != LMRT_OK) {
        assert_int_equal(a.sample_rate, -7);
        assert_int_equal(a.n_samples, 9);
        assert_ptr_equal(a.samples, &a);
    } else if (out) {
        *out = a;
    } else {
        audio_pcm_free(&a);
    }
    return st;
}

static void assert_rejected(const bytes *b, lmrt_status want, const char *needle)
{
    lmrt_status st = decode_copy(b->p, b->n, BUDGET, NULL);
    if (st != want)
        print_error("got %s: %s\n", lmrt_status_str(st), lmrt_last_error());
    assert_int_equal(st, want);
    assert_true(mentions(needle));
}

/* ------------------------------------------------------------------------ */
/* formats                                                                  */
/* ------------------------------------------------------------------------ */

static void check_format(const wav_spec *s, size_t frames)
{
    int64_t *iv;
    double *fv;
    bytes b = make_wav(s, frames, &iv, &fv);
    audio_pcm a;
    lmrt_status st = decode_copy(b.p, b.n, BUDGET, &a);
    if (st != LMRT_OK)
        print_error("tag %u ext %d bits %u x%u: %s\n", s->tag, s->extensible, s->bits,
                    s->channels, lmrt_last_error());
    assert_int_equal(st, LMRT_OK);
    assert_int_equal(a.sample_rate, s->rate);
    assert_int_equal(a.n_samples, frames);
    for (size_t f = 0; f < frames; f++) {
        float want = expected(s, iv, fv, f);
        if (a.samples[f] != want)
            print_error("tag %u bits %u x%u frame %zu: %.9g, want %.9g\n", s->tag, s->bits,
                        s->channels, f, a.samples[f], want);
        assert_true(a.samples[f] == want);
        assert_true(a.samples[f] >= -1.0f && a.samples[f] <= 1.0f);
        if (s->tag == 1)
            assert_true(a.samples[f] < 1.0f);
    }
    audio_pcm_free(&a);
    assert_null(a.samples);
    free(b.p), free(iv), free(fv);
}

static void every_format_and_channel_count_decodes_exactly(void **state)
{
    (void)state;
    static const uint16_t kinds[][2] = {{1, 8}, {1, 16}, {1, 24}, {1, 32}, {3, 32}, {3, 64}};
    for (size_t k = 0; k < 6; k++)
        for (uint16_t ch = 1; ch <= 3; ch++)
            for (int ext = 0; ext < 2; ext++) {
                wav_spec s = {kinds[k][0], ext, ch, kinds[k][1], 0, 8000u + 1000u * ch};
                check_format(&s, 37);
            }
    /* extensible with fewer valid bits than the container (20 of 24): samples are
     * left-justified, so the container's scale applies */
    wav_spec s = {1, true, 2, 24, 20, 48000};
    check_format(&s, 10);
}

static void stereo_is_the_mean_of_its_channels(void **state)
{
    (void)state;
    /* 16-bit L/R pairs and the exact mono values (v / 32768, mean in double) */
    static const int16_t lr[][2] = {{16384, -16384}, {16384, 8192}, {-32768, -32768},
                                    {32767, 32767}, {1, 0}, {-32768, 32767}};
    static const float want[] = {0.0f, 0.375f, -1.0f, 32767.0f / 32768.0f, 1.0f / 65536.0f,
                                 -1.0f / 65536.0f};
    bytes b = {0}, d = {0};
    b_riff_begin(&b);
    b_fmt(&b, &(wav_spec){1, false, 2, 16, 0, 44100});
    for (size_t i = 0; i < 6; i++)
        b_le(&d, (uint16_t)lr[i][0], 2), b_le(&d, (uint16_t)lr[i][1], 2);
    b_chunk(&b, "data", d.p, d.n);
    b_riff_end(&b);
    audio_pcm a;
    assert_int_equal(decode_copy(b.p, b.n, BUDGET, &a), LMRT_OK);
    assert_int_equal(a.n_samples, 6);
    for (size_t i = 0; i < 6; i++)
        assert_true(a.samples[i] == want[i]);
    audio_pcm_free(&a);
    /* 32-bit at full scale: (2^31 - 1) / 2^31 rounds to 1.0f, and stays below it */
    bytes c = {0};
    b_riff_begin(&c);
    b_fmt(&c, &(wav_spec){1, false, 1, 32, 0, 8000});
    b_chunk(&c, "data", "\xff\xff\xff\x7f", 4);
    b_riff_end(&c);
    assert_int_equal(decode_copy(c.p, c.n, BUDGET, &a), LMRT_OK);
    assert_true(a.samples[0] == nextafterf(1.0f, 0.0f));
    audio_pcm_free(&a);
    free(b.p), free(c.p), free(d.p);
}

/* ------------------------------------------------------------------------ */
/* chunk walking                                                            */
/* ------------------------------------------------------------------------ */

static void chunks_in_any_order_with_padding_are_walked(void **state)
{
    (void)state;
    wav_spec s = {1, false, 1, 8, 0, 11025};
    /* LIST (odd size, padded) before fmt, data (odd: 5 frames of 8-bit) before a
     * trailing unknown chunk, fmt last */
    bytes b = {0};
    b_riff_begin(&b);
    b_chunk(&b, "LIST", "INFOISFT", 7);
    b_chunk(&b, "data", "\x80\x00\xff\x40\xc0", 5);
    b_chunk(&b, "junk", "", 0);
    b_chunk(&b, "cue ", "abc", 3);
    b_fmt(&b, &s);
    b_riff_end(&b);
    audio_pcm a;
    assert_int_equal(decode_copy(b.p, b.n, BUDGET, &a), LMRT_OK);
    static const float want[] = {0.0f, -1.0f, 127.0f / 128.0f, -0.5f, 0.5f};
    assert_int_equal(a.n_samples, 5);
    assert_int_equal(a.sample_rate, 11025);
    for (size_t i = 0; i < 5; i++)
        assert_true(a.samples[i] == want[i]);
    audio_pcm_free(&a);
    free(b.p);

    /* an odd data chunk at the very end may lack its pad byte */
    bytes c = {0};
    b_riff_begin(&c);
    b_fmt(&c, &s);
    b_chunk(&c, "data", "\x80\x00\xff", 3);
    c.n--;
    b_riff_end(&c);
    assert_int_equal(decode_copy(c.p, c.n, BUDGET, &a), LMRT_OK);
    assert_int_equal(a.n_samples, 3);
    audio_pcm_free(&a);

    /* streaming sizes: RIFF and data 0xFFFFFFFF run to the end of the file */
    put_le(c.p + 4, 0xffffffffu, 4);
    put_le(c.p + 40, 0xffffffffu, 4);
    b_put(&c, "\x40\x01", 2);
    assert_int_equal(decode_copy(c.p, c.n, BUDGET, &a), LMRT_OK);
    assert_int_equal(a.n_samples, 5);
    assert_true(a.samples[3] == -0.5f);
    audio_pcm_free(&a);
    free(c.p);

    bytes d = {0};   /* 16-bit stereo: 9 bytes of data are 2 whole frames */
    b_riff_begin(&d);
    b_fmt(&d, &(wav_spec){1, false, 2, 16, 0, 16000});
    b_chunk(&d, "data", "\0\x40\0\x40\0\xc0\0\xc0\x01", 9);
    b_riff_end(&d);
    assert_int_equal(decode_copy(d.p, d.n, BUDGET, &a), LMRT_OK);
    assert_int_equal(a.n_samples, 2);
    assert_true(a.samples[0] == 0.5f && a.samples[1] == -0.5f);
    audio_pcm_free(&a);
    free(d.p);
}

/* ------------------------------------------------------------------------ */
/* the real files                                                           */
/* ------------------------------------------------------------------------ */

/* Expected values from Python's wave module (tests/data/audio/README.md): frame count,
 * the sum, minimum and maximum of the 16-bit samples, and two samples. */
static void check_real(const char *path, int32_t rate, size_t n, double sum, int min, int max,
                       int s1000, int s40000)
{
    audio_pcm a;
    lmrt_status st = wav_load_file(path, BUDGET, &a);
    if (st != LMRT_OK)
        print_error("%s\n", lmrt_last_error());
    assert_int_equal(st, LMRT_OK);
    assert_int_equal(a.sample_rate, rate);
    assert_int_equal(a.n_samples, n);
    double s = 0, lo = 1, hi = -1;
    for (size_t i = 0; i < n; i++) {
        double v = a.samples[i] * 32768.0;   /* exact: the samples are k / 32768 */
        assert_true(v == floor(v));
        s += v, lo = fmin(lo, v), hi = fmax(hi, v);
    }
    assert_true(s == sum);
    assert_true(lo == min && hi == max);
    assert_true(a.samples[1000] * 32768.0f == (float)s1000);
    assert_true(a.samples[40000] * 32768.0f == (float)s40000);
    audio_pcm_free(&a);
}

static void real_speech_files_match_python_wave(void **state)
{
    (void)state;
    check_real(ESPEAK_PATH, 22050, 81260, 971944.0, -24131, 24345, 1535, 206);
    check_real(LIBRIVOX_PATH, 16000, 47840, 11746346.0, -8814, 9794, 70, 2633);
}

static void load_file_errors_name_the_path(void **state)
{
    (void)state;
    audio_pcm a = {-7, 9, NULL};
    assert_int_equal(wav_load_file(LMRT_SOURCE_ROOT "/tests/data/audio/missing.wav", BUDGET, &a),
                     LMRT_E_IO);
    assert_true(mentions("missing.wav: cannot open"));
    assert_int_equal(wav_load_file(LMRT_SOURCE_ROOT "/tests/data/audio", BUDGET, &a), LMRT_E_IO);
    assert_true(mentions("not a regular file"));
    assert_int_equal(wav_load_file(LMRT_SOURCE_ROOT "/tests/data/audio/README.md", BUDGET, &a),
                     LMRT_E_FORMAT);
    assert_true(mentions("README.md: WAV: offset 0: magic bytes"));
    assert_int_equal(wav_load_file(ESPEAK_PATH, 81259, &a), LMRT_E_FORMAT);
    assert_true(mentions("espeak_hello.wav: WAV: offset 40: data chunk holds 81260 samples, "
                         "more than the budget of 81259"));
    assert_int_equal(a.sample_rate, -7);
    assert_int_equal(wav_load_file(NULL, BUDGET, &a), LMRT_E_INVALID_ARG);
    assert_int_equal(wav_load_file(ESPEAK_PATH, BUDGET, NULL), LMRT_E_INVALID_ARG);
}

/* ------------------------------------------------------------------------ */
/* hostile input                                                            */
/* ------------------------------------------------------------------------ */

static void truncation_at_every_offset_is_a_format_error(void **state)
{
    (void)state;
    wav_spec specs[] = {{1, false, 2, 16, 0, 16000}, {3, true, 1, 32, 0, 22050}};
    for (size_t k = 0; k < 2; k++) {
        int64_t *iv;
        double *fv;
        bytes b = make_wav(&specs[k], 5, &iv, &fv);
        bytes c = {0};   /* with a LIST chunk in front and an odd chunk behind */
        b_riff_begin(&c);
        b_chunk(&c, "LIST", "INFOx", 5);
        b_put(&c, b.p + 12, b.n - 12);
        b_chunk(&c, "abcd", "xyz", 3);
        b_riff_end(&c);
        assert_int_equal(decode_copy(c.p, c.n, BUDGET, NULL), LMRT_OK);
        for (size_t len = 0; len < c.n; len++) {
            lmrt_status st = decode_copy(c.p, len, BUDGET, NULL);
            if (st != LMRT_E_FORMAT)
                print_error("length %zu of %zu: %s\n", len, c.n, lmrt_last_error());
            assert_int_equal(st, LMRT_E_FORMAT);
        }
        free(b.p), free(c.p), free(iv), free(fv);
    }
    /* and a few cuts of a real file */
    FILE *f = fopen(ESPEAK_PATH, "rb");
    assert_non_null(f);
    uint8_t *buf = malloc(200000);
    assert_non_null(buf);
    size_t n = fread(buf, 1, 200000, f);
    fclose(f);
    assert_int_equal(n, 162564);
    for (size_t len = 0; len < n; len += 997)
        assert_int_equal(decode_copy(buf, len, BUDGET, NULL), LMRT_E_FORMAT);
    assert_int_equal(decode_copy(buf, n - 1, BUDGET, NULL), LMRT_E_FORMAT);
    assert_true(mentions("offset 4: RIFF size 162556 needs 162564 bytes, but the file has "
                         "162563"));
    free(buf);
}

/* A valid 16-bit stereo file with two frames, to be broken one field at a time.
 * Offsets: fmt header 12, tag 20, channels 22, rate 24, block_align 32, bits 34,
 * data header 36, data size 40, samples 44..51. */
static bytes base_file(void)
{
    bytes b = {0};
    b_riff_begin(&b);
    b_fmt(&b, &(wav_spec){1, false, 2, 16, 0, 16000});
    b_chunk(&b, "data", "\1\0\2\0\3\0\4\0", 8);
    b_riff_end(&b);
    return b;
}

static void hostile_headers_are_rejected_with_offset_and_field(void **state)
{
    (void)state;
    struct { size_t at; uint32_t value; int width; lmrt_status st; const char *needle; } cases[] = {
        {0, 0x46464952 ^ 1, 4, LMRT_E_FORMAT, "offset 0: magic bytes"},
        {0, 0x58464952, 4, LMRT_E_UNSUPPORTED, "RIFX files are not supported"},
        {0, 0x34364652, 4, LMRT_E_UNSUPPORTED, "RF64 files are not supported"},
        {8, 0x49564120, 4, LMRT_E_FORMAT, "offset 8: RIFF form type ' AVI' is not WAVE"},
        {4, 45, 4, LMRT_E_FORMAT, "offset 4: RIFF size 45 needs 53 bytes, but the file has 52"},
        {4, 0xfffffffe, 4, LMRT_E_FORMAT, "offset 4: RIFF size 4294967294"},
        {4, 3, 4, LMRT_E_FORMAT, "offset 4: RIFF size 3 is smaller than its form type"},
        {4, 6, 4, LMRT_E_FORMAT, "offset 12: 2 bytes left in the RIFF data, too few"},
        {16, 0x7fffffff, 4, LMRT_E_FORMAT, "offset 16: chunk 'fmt ' size 2147483647 runs past"},
        {40, 9, 4, LMRT_E_FORMAT, "offset 40: chunk 'data' size 9 runs past the RIFF data "
                                  "(8 bytes left"},
        {40, 0xfffffffe, 4, LMRT_E_FORMAT, "offset 40: chunk 'data' size 4294967294"},
        {16, 14, 4, LMRT_E_FORMAT, "offset 16: fmt chunk is 14 bytes (at least 16)"},
        {20, 2, 2, LMRT_E_UNSUPPORTED, "offset 20: fmt format tag 0x0002 (Microsoft ADPCM)"},
        {20, 7, 2, LMRT_E_UNSUPPORTED, "format tag 0x0007 (mu-law)"},
        {20, 0x1234, 2, LMRT_E_UNSUPPORTED, "format tag 0x1234 (unknown)"},
        {20, 0xfffe, 2, LMRT_E_FORMAT, "offset 16: fmt chunk of WAVE_FORMAT_EXTENSIBLE is 16 "
                                       "bytes (at least 40)"},
        {22, 0, 2, LMRT_E_FORMAT, "offset 22: fmt channel count is 0"},
        {24, 0, 4, LMRT_E_FORMAT, "offset 24: fmt sample rate 0 Hz (1 to 768000 allowed)"},
        {24, 768001, 4, LMRT_E_FORMAT, "offset 24: fmt sample rate 768001 Hz"},
        {24, 0xffffffff, 4, LMRT_E_FORMAT, "offset 24: fmt sample rate 4294967295 Hz"},
        {32, 2, 2, LMRT_E_FORMAT, "offset 32: fmt block_align 2, but 2 channels of 16 bits "
                                  "take 4 bytes"},
        {32, 0, 2, LMRT_E_FORMAT, "offset 32: fmt block_align 0"},
        {34, 0, 2, LMRT_E_FORMAT, "offset 34: fmt bits per sample 0"},
        {34, 12, 2, LMRT_E_UNSUPPORTED, "offset 34: fmt bits per sample 12"},
        {34, 40, 2, LMRT_E_UNSUPPORTED, "offset 34: fmt 40-bit integer samples are not "
                                        "supported"},
        {22, 0xffff, 2, LMRT_E_FORMAT, "fmt block_align 4, but 65535 channels of 16 bits take "
                                       "131070 bytes"},
        {40, 3, 4, LMRT_E_FORMAT, "offset 40: data chunk of 3 bytes holds no whole frame of 4 "
                                  "bytes"},
        {36, 0x41544144, 4, LMRT_E_FORMAT, "no 'data' chunk in 52 bytes of RIFF data"},
        {12, 0x20544d46, 4, LMRT_E_FORMAT, "no 'fmt ' chunk"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bytes b = base_file();
        assert_int_equal(b.n, 52);
        put_le(b.p + cases[i].at, cases[i].value, cases[i].width);
        if (cases[i].at == 40 && cases[i].value == 3) {   /* a shorter data chunk, padded */
            b.n = 47;
            b_put(&b, "\0", 1);
            b_riff_end(&b);
        }
        assert_rejected(&b, cases[i].st, cases[i].needle);
        free(b.p);
    }

    /* float: 16 bits is not a float size; NaN and infinity are refused */
    bytes b = base_file();
    put_le(b.p + 20, 3, 2);
    assert_rejected(&b, LMRT_E_UNSUPPORTED, "fmt 16-bit float samples are not supported");
    free(b.p);
    b = (bytes){0};
    b_riff_begin(&b);
    b_fmt(&b, &(wav_spec){3, false, 2, 32, 0, 16000});
    b_chunk(&b, "data", "\0\0\0\0\0\0\0\0" "\0\0\0\0\0\0\xc0\x7f", 16);
    b_riff_end(&b);
    assert_rejected(&b, LMRT_E_FORMAT, "offset 56: float sample (frame 1, channel 1) is not "
                                       "finite");
    put_le(b.p + 56, 0x7f800000, 4);   /* +infinity */
    assert_rejected(&b, LMRT_E_FORMAT, "is not finite");
    free(b.p);

    /* second fmt, second data, fmt after data with a bad field */
    b = base_file();
    b_fmt(&b, &(wav_spec){1, false, 2, 16, 0, 16000});
    b_riff_end(&b);
    assert_rejected(&b, LMRT_E_FORMAT, "offset 52: second 'fmt ' chunk");
    free(b.p);
    b = base_file();
    b_chunk(&b, "data", "\1\0\2\0", 4);
    b_riff_end(&b);
    assert_rejected(&b, LMRT_E_FORMAT, "offset 52: second 'data' chunk");
    free(b.p);
    b = base_file();
    b_put(&b, "abc", 3);   /* stray bytes: no room for a chunk header */
    b_riff_end(&b);
    assert_rejected(&b, LMRT_E_FORMAT, "offset 52: 3 bytes left in the RIFF data");
    free(b.p);
    b = (bytes){0};
    b_put(&b, "RIFF\4\0\0\0WAV", 11);
    assert_rejected(&b, LMRT_E_FORMAT, "11 bytes are too few");
    b.n = 0;
    assert_rejected(&b, LMRT_E_FORMAT, "0 bytes are too few");
    free(b.p);
}

static void hostile_extensible_headers_are_rejected(void **state)
{
    (void)state;
    /* fmt 40 bytes: cbSize at 36, valid bits 38, GUID 44..59 */
    struct { size_t at; uint32_t value; int width; lmrt_status st; const char *needle; } cases[] = {
        {36, 0, 2, LMRT_E_FORMAT, "offset 36: fmt cbSize 0 is too small"},
        {38, 25, 2, LMRT_E_FORMAT, "offset 38: fmt valid bits per sample 25 exceed the 24"},
        {44, 2, 2, LMRT_E_UNSUPPORTED, "offset 44: fmt format tag 0x0002"},
        {50, 0x11, 1, LMRT_E_UNSUPPORTED, "offset 44: fmt subformat GUID is not a WAVE format"},
        {44, 3, 2, LMRT_E_UNSUPPORTED, "fmt 24-bit float samples are not supported"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t *iv;
        double *fv;
        bytes b = make_wav(&(wav_spec){1, true, 1, 24, 0, 16000}, 4, &iv, &fv);
        put_le(b.p + cases[i].at, cases[i].value, cases[i].width);
        assert_rejected(&b, cases[i].st, cases[i].needle);
        free(b.p), free(iv), free(fv);
    }
}

static void the_sample_budget_is_checked_before_allocating(void **state)
{
    (void)state;
    bytes b = base_file();
    put_le(b.p + 4, 0xffffffffu, 4);
    put_le(b.p + 40, 0xffffffffu, 4);
    b.n = 44;
    /* 2^20 frames of silence behind a streaming header; budget one less */
    uint8_t *big = calloc(44 + ((size_t)4 << 20), 1);
    assert_non_null(big);
    memcpy(big, b.p, 44);
    lmrt_alloc_fail_after(-1);
    assert_int_equal(decode_copy(big, 44 + ((size_t)4 << 20), ((size_t)1 << 20) - 1, NULL),
                     LMRT_E_FORMAT);
    assert_int_equal(lmrt_alloc_fail_after(-1), 0);
    assert_true(mentions("offset 40: data chunk holds 1048576 samples, more than the budget "
                         "of 1048575"));
    audio_pcm a;
    assert_int_equal(decode_copy(big, 44 + ((size_t)4 << 20), (size_t)1 << 20, &a), LMRT_OK);
    assert_int_equal(a.n_samples, 1 << 20);
    audio_pcm_free(&a);
    free(big), free(b.p);
}

static void bad_arguments_are_invalid_arg(void **state)
{
    (void)state;
    bytes b = base_file();
    audio_pcm a = {-7, 9, NULL};
    assert_int_equal(wav_decode(b.p, b.n, BUDGET, NULL), LMRT_E_INVALID_ARG);
    assert_int_equal(wav_decode(NULL, 5, BUDGET, &a), LMRT_E_INVALID_ARG);
    assert_int_equal(wav_decode(b.p, b.n, 0, &a), LMRT_E_INVALID_ARG);
    assert_true(mentions("sample budget 0"));
    assert_int_equal(a.sample_rate, -7);
    audio_pcm_free(NULL);
    audio_pcm_free(&(audio_pcm){0});
    free(b.p);
}

/* ------------------------------------------------------------------------ */
/* allocation failure                                                       */
/* ------------------------------------------------------------------------ */

/* Every allocation failing in turn: LMRT_E_NOMEM and nothing else, until it works. */
#define EVERY_ALLOC_FAILS(call, ok_cleanup)                                      \
    for (long k = 0;; k++) {                                                     \
        assert_true(k < 100);                                                    \
        lmrt_alloc_fail_after(k);                                                \
        lmrt_status st_ = (call);                                                \
        lmrt_alloc_fail_after(-1);                                               \
        if (st_ == LMRT_OK) {                                                    \
            ok_cleanup;                                                          \
            break;                                                               \
        }                                                                        \
        if (st_ != LMRT_E_NOMEM)                                                 \
            print_error("allocation %ld: %s\n", k, lmrt_last_error());           \
        assert_int_equal(st_, LMRT_E_NOMEM);                                     \
        assert_true(mentions("out of memory"));                                  \
    }

static void every_alloc_failure_is_nomem(void **state)
{
    (void)state;
    bytes b = base_file();
    audio_pcm a = {-7, 9, NULL};
    EVERY_ALLOC_FAILS(wav_decode(b.p, b.n, BUDGET, &a), audio_pcm_free(&a));
    a.sample_rate = -7;
    EVERY_ALLOC_FAILS(wav_load_file(LIBRIVOX_PATH, BUDGET, &a), audio_pcm_free(&a));
    free(b.p);

    float in[1000];   /* long enough for the exact phase tables (160 phases at 44.1k) */
    for (int i = 0; i < 1000; i++)
        in[i] = (float)sin(i * 0.1);
    /* copy; exact table; taps per output; interpolated kernel table; exact table */
    static const int32_t rates[][2] = {{16000, 16000}, {44100, 16000}, {44101, 16000},
                                       {11025, 44101}, {8000, 16000}};
    for (size_t r = 0; r < 5; r++) {
        float *y = NULL;
        size_t n = 0;
        EVERY_ALLOC_FAILS(audio_resample(in, 1000, rates[r][0], rates[r][1], &y, &n),
                          lmrt_mem_free(y));
    }
}

/* ------------------------------------------------------------------------ */
/* resampling                                                               */
/* ------------------------------------------------------------------------ */

static float *resample_ok(const float *in, size_t n_in, int32_t from, int32_t to, size_t *n_out)
{
    float *y = NULL;
    lmrt_status st = audio_resample(in, n_in, from, to, &y, n_out);
    if (st != LMRT_OK)
        print_error("%d -> %d: %s\n", (int)from, (int)to, lmrt_last_error());
    assert_int_equal(st, LMRT_OK);
    return y;
}

static float *tone(double freq, int32_t rate, size_t n, double amp)
{
    float *x = malloc(n * sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(amp * sin(2 * M_PI * freq * (double)i / rate));
    return x;
}

/* SNR in dB of y against amp * sin(2 pi f k / rate), over k in [skip, n - skip). The
 * filter reaches 64 periods of the lower rate to each side; `skip` stays clear of it. */
static double snr_db(const float *y, size_t n, double freq, int32_t rate, double amp,
                     size_t skip)
{
    double sig = 0, err = 0;
    for (size_t k = skip; k < n - skip; k++) {
        double ref = amp * sin(2 * M_PI * freq * (double)k / rate);
        sig += ref * ref;
        err += (y[k] - ref) * (y[k] - ref);
    }
    return 10 * log10(sig / err);
}

static void sines_keep_80_db_snr(void **state)
{
    (void)state;
    /* a 1 kHz sine at 0.9 full scale; 44101 -> 16000 takes the interpolated-kernel
     * path (16000 phases of 355 taps do not fit the exact table). The filter's own
     * error is ~-115 dB (float64 model of it); float output rounding adds ~-140 dB. */
    static const int32_t rates[][2] = {{44100, 16000}, {8000, 16000}, {22050, 16000},
                                       {48000, 16000}, {44101, 16000}, {16000, 44100}};
    for (size_t r = 0; r < 6; r++) {
        int32_t from = rates[r][0], to = rates[r][1];
        size_t n_in = (size_t)from / 2, n;
        float *x = tone(1000, from, n_in, 0.9);
        float *y = resample_ok(x, n_in, from, to, &n);
        double snr = snr_db(y, n, 1000, to, 0.9, 200);
        if (snr <= 80)
            print_error("%d -> %d: SNR %.1f dB\n", (int)from, (int)to, snr);
        assert_true(snr > 80);
        free(x), lmrt_mem_free(y);
    }
}

static void the_band_edge_passes_and_aliases_are_removed(void **state)
{
    (void)state;
    size_t n_in = 22050, n;
    /* 7.5 kHz is inside the pass band of 44.1 -> 16 kHz (edge 7.6 kHz) */
    float *x = tone(7500, 44100, n_in, 0.9);
    float *y = resample_ok(x, n_in, 44100, 16000, &n);
    double snr = snr_db(y, n, 7500, 16000, 0.9, 200);
    if (snr <= 60)
        print_error("7.5 kHz: SNR %.1f dB\n", snr);
    assert_true(snr > 60);
    free(x), lmrt_mem_free(y);
    /* 9 kHz would alias to 7 kHz: more than 60 dB down (the design gives ~100 dB) */
    for (double f = 8500; f <= 20000; f += 5750) {
        x = tone(f, 44100, n_in, 0.9);
        y = resample_ok(x, n_in, 44100, 16000, &n);
        double e = 0;
        for (size_t k = 200; k < n - 200; k++)
            e += (double)y[k] * y[k];
        double rms = sqrt(e / (double)(n - 400)), atten = 20 * log10(0.9 / sqrt(2) / rms);
        if (atten <= 60)
            print_error("%.0f Hz: only %.1f dB down\n", f, atten);
        assert_true(atten > 60);
        free(x), lmrt_mem_free(y);
    }
    x = tone(9000, 44100, n_in, 0.9);
    y = resample_ok(x, n_in, 44100, 16000, &n);
    double e = 0;
    for (size_t k = 200; k < n - 200; k++)
        e += (double)y[k] * y[k];
    assert_true(20 * log10(0.9 / sqrt(2) / sqrt(e / (double)(n - 400))) > 60);
    free(x), lmrt_mem_free(y);
}

/* The three ways of getting the taps agree: the exact phase table (long input), taps
 * computed per output (short input: fewer outputs than phases) and the interpolated
 * kernel (44101 Hz: too many phases for a table). A short input's first outputs see
 * the same inputs as the long one's. */
static void the_tap_strategies_agree(void **state)
{
    (void)state;
    static const int32_t from[] = {44100, 44101, 96001};
    static const size_t short_n[] = {300, 300, 900};   /* 109, 109, 150 outputs */
    for (size_t r = 0; r < 3; r++) {
        size_t n_long = (size_t)from[r] / 2, n_short = short_n[r], n1, n2;
        float *x = tone(1234, from[r], n_long, 0.7);
        for (size_t i = 0; i < n_long; i += 3)
            x[i] *= -0.5f;   /* broadband, not just a tone */
        float *a = resample_ok(x, n_long, from[r], 16000, &n1);
        float *b = resample_ok(x, n_short, from[r], 16000, &n2);
        /* output k reads inputs up to (k + 64) * from / 16000 */
        size_t same = (size_t)((double)n_short * 16000 / from[r]) - 65;
        assert_true(same > 20 && same < n2);
        for (size_t k = 0; k < same; k++) {
            if (fabs(a[k] - b[k]) > 2e-6)
                print_error("%d Hz, output %zu: %.9g vs %.9g\n", (int)from[r], k, a[k], b[k]);
            assert_true(fabs(a[k] - b[k]) <= 2e-6);
        }
        free(x), lmrt_mem_free(a), lmrt_mem_free(b);
    }
}

static void dc_passes_with_unit_gain(void **state)
{
    (void)state;
    static const int32_t rates[][2] = {{44100, 16000}, {8000, 16000}, {44101, 16000},
                                       {11025, 16000}, {96000, 16000}, {16000, 8000}};
    float x[4000];
    for (size_t i = 0; i < 4000; i++)
        x[i] = 0.5f;
    for (size_t r = 0; r < 6; r++) {
        size_t n;
        float *y = resample_ok(x, 4000, rates[r][0], rates[r][1], &n);
        /* each phase's taps sum to 1: what is left is the rounding of the float taps
         * and of the output, < 1e-6 */
        for (size_t k = 150; k < n - 150; k++)
            assert_true(fabs(y[k] - 0.5) < 1e-5 * 0.5);
        /* zero outside the signal: going down, the first output sees the centre and
         * right half of the kernel only (0.5 + half the centre tap of the gain);
         * going up, output 0 sits on input 0 and the kernel is 0 at the other inputs */
        if (rates[r][0] > rates[r][1])
            assert_true(y[0] > 0.5 * 0.5 && y[0] < 0.5 * 0.8);
        else
            assert_true(fabs(y[0] - 0.5) < 1e-6);
        lmrt_mem_free(y);
    }
}

static void upsampling_by_two_keeps_the_input_samples(void **state)
{
    (void)state;
    float x[300];
    for (size_t i = 0; i < 300; i++)
        x[i] = (float)sin(0.7 * (double)i) * (i % 7 ? 0.8f : -0.3f);
    size_t n;
    float *y = resample_ok(x, 300, 8000, 16000, &n);
    assert_int_equal(n, 600);
    /* even outputs sit on inputs: the sinc is 1 there and 0 at every other input
     * (up to sin(pi * k) rounding, ~1e-14 per tap) */
    for (size_t i = 0; i < 300; i++)
        assert_true(fabs(y[2 * i] - x[i]) < 1e-6);
    lmrt_mem_free(y);
}

static void lengths_and_identity(void **state)
{
    (void)state;
    float x[1000];
    for (size_t i = 0; i < 1000; i++)
        x[i] = (float)i / 1000.0f - 0.5f;
    struct { size_t n; int32_t from, to; size_t want; } cases[] = {
        {1000, 44100, 16000, 363},   /* ceil(1000 * 160 / 441) = ceil(362.8) */
        {441, 44100, 16000, 160}, {1, 44100, 16000, 1}, {1, 8000, 16000, 2},
        {999, 8000, 16000, 1998}, {1000, 16000, 8000, 500}, {999, 16000, 8000, 500},
        {1000, 1, 768000, 768000000}, {1000, 768000, 16000, 21}, {7, 3, 2, 5},
        {1000, 96001, 1000, 11},     /* 1000 phases of 12291 taps: the interpolated path */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (cases[i].want > 1000000)
            continue;   /* below: only the length arithmetic, through the overflow check */
        size_t n;
        float *y = resample_ok(x, cases[i].n, cases[i].from, cases[i].to, &n);
        assert_int_equal(n, cases[i].want);
        for (size_t k = 0; k < n; k++)
            assert_true(isfinite(y[k]));
        lmrt_mem_free(y);
    }
    size_t n;
    float *y = resample_ok(x, 1000, 22050, 22050, &n);
    assert_int_equal(n, 1000);
    assert_memory_equal(y, x, sizeof x);
    lmrt_mem_free(y);
}

static void resample_rejects_bad_arguments(void **state)
{
    (void)state;
    float x[4] = {0}, *y = (float *)x;
    size_t n = 77;
    assert_int_equal(audio_resample(NULL, 4, 8000, 16000, &y, &n), LMRT_E_INVALID_ARG);
    assert_int_equal(audio_resample(x, 4, 8000, 16000, NULL, &n), LMRT_E_INVALID_ARG);
    assert_int_equal(audio_resample(x, 4, 8000, 16000, &y, NULL), LMRT_E_INVALID_ARG);
    assert_int_equal(audio_resample(x, 0, 8000, 16000, &y, &n), LMRT_E_INVALID_ARG);
    assert_int_equal(audio_resample(x, 4, 0, 16000, &y, &n), LMRT_E_INVALID_ARG);
    assert_int_equal(audio_resample(x, 4, 8000, 768001, &y, &n), LMRT_E_INVALID_ARG);
    assert_int_equal(audio_resample(x, 4, -5, 16000, &y, &n), LMRT_E_INVALID_ARG);
    assert_true(mentions("rates -5 -> 16000 Hz"));
    /* an output length beyond the address space */
    assert_int_equal(audio_resample(x, SIZE_MAX / 2, 1, 768000, &y, &n), LMRT_E_NOMEM);
    assert_true(mentions("too many"));
    assert_ptr_equal(y, x);
    assert_int_equal(n, 77);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_format_and_channel_count_decodes_exactly),
        cmocka_unit_test(stereo_is_the_mean_of_its_channels),
        cmocka_unit_test(chunks_in_any_order_with_padding_are_walked),
        cmocka_unit_test(real_speech_files_match_python_wave),
        cmocka_unit_test(load_file_errors_name_the_path),
        cmocka_unit_test(truncation_at_every_offset_is_a_format_error),
        cmocka_unit_test(hostile_headers_are_rejected_with_offset_and_field),
        cmocka_unit_test(hostile_extensible_headers_are_rejected),
        cmocka_unit_test(the_sample_budget_is_checked_before_allocating),
        cmocka_unit_test(bad_arguments_are_invalid_arg),
        cmocka_unit_test(every_alloc_failure_is_nomem),
        cmocka_unit_test(sines_keep_80_db_snr),
        cmocka_unit_test(the_band_edge_passes_and_aliases_are_removed),
        cmocka_unit_test(the_tap_strategies_agree),
        cmocka_unit_test(dc_passes_with_unit_gain),
        cmocka_unit_test(upsampling_by_two_keeps_the_input_samples),
        cmocka_unit_test(lengths_and_identity),
        cmocka_unit_test(resample_rejects_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
