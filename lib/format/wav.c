/* wav.c - decode RIFF/WAVE (integer PCM, IEEE float, WAVE_FORMAT_EXTENSIBLE) to mono float.
 * Walks every chunk within the RIFF size and checks each size against the bytes really
 * there before allocating anything. Does no resampling (resample.c); knows no models. */
#include "format/wav.h"

#include "format/file_read.h"

#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"

#define WAV_MAX_RATE 768000u
#define WAV_SIZE_UNKNOWN 0xffffffffu   /* a streaming writer's "until the end" */
#define WAV_FLOAT_BELOW_ONE 0x1.fffffep-1f

enum { WAV_PCM = 1, WAV_FLOAT = 3, WAV_EXTENSIBLE = 0xfffe };

/* The `fmt ` fields that matter, EXTENSIBLE resolved to its subformat. */
typedef struct wav_fmt {
    uint16_t tag;                   /* WAV_PCM or WAV_FLOAT */
    uint16_t channels;              /* >= 1 */
    uint32_t rate;                  /* 1..WAV_MAX_RATE */
    uint16_t bits;                  /* container bits per sample: 8, 16, 24, 32, 64 */
    uint16_t block_align;           /* channels * bits / 8 */
} wav_fmt;

static uint16_t le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A chunk id as printable text for messages: printable ASCII stays, others become '?'. */
static void id_name(const uint8_t *p, char name[5])
{
    for (int i = 0; i < 4; i++)
        name[i] = (char)(p[i] >= 0x20 && p[i] < 0x7f ? p[i] : '?');
    name[4] = '\0';
}

/* Known codecs this reader does not decode, for the message. */
static const char *tag_name(uint16_t tag)
{
    switch (tag) {
    case 0x0002: return "Microsoft ADPCM";
    case 0x0006: return "A-law";
    case 0x0007: return "mu-law";
    case 0x0011: return "IMA ADPCM";
    case 0x0031: return "GSM 6.10";
    case 0x0050: return "MPEG";
    case 0x0055: return "MP3";
    default: return "unknown";
    }
}

/* Checks a `fmt ` chunk whose header starts at `at` and whose `len` bytes are at `p`. */
static lmrt_status read_fmt(size_t at, const uint8_t *p, uint32_t len, wav_fmt *f)
{
    size_t body = at + 8;
    if (len < 16)
        return lmrt_fail(LMRT_E_FORMAT, "WAV: offset %zu: fmt chunk is %" PRIu32 " bytes "
                         "(at least 16)", at + 4, len);
    uint16_t tag = le16(p);
    f->channels = le16(p + 2);
    f->rate = le32(p + 4);
    f->block_align = le16(p + 12);
    f->bits = le16(p + 14);
    if (tag == WAV_EXTENSIBLE) {
        /* cbSize, valid bits, channel mask, then the subformat GUID: its first two
         * bytes are the format tag, the rest KSDATAFORMAT's fixed tail. */
        static const uint8_t guid_tail[14] = {0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80,
                                              0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71};
        if (len < 40)
            return lmrt_fail(LMRT_E_FORMAT, "WAV: offset %zu: fmt chunk of "
                             "WAVE_FORMAT_EXTENSIBLE is %" PRIu32 " bytes (at least 40)",
                             at + 4, len);
        uint16_t cb_size = le16(p + 16), valid_bits = le16(p + 18);
        if (cb_size < 22)
            return lmrt_fail(LMRT_E_FORMAT, "WAV: offset %zu: fmt cbSize %u is too small for "
                             "WAVE_FORMAT_EXTENSIBLE (at least 22)", body + 16, cb_size);
        if (valid_bits > f->bits)
            return lmrt_fail(LMRT_E_FORMAT, "WAV: offset %zu: fmt valid bits per sample %u "
                             "exceed the %u container bits", body + 18, valid_bits, f->bits);
        if (memcmp(p + 26, guid_tail, sizeof guid_tail) != 0)
            return lmrt_fail(LMRT_E_UNSUPPORTED, "WAV: offset %zu: fmt subformat GUID is not "
                             "a WAVE format tag (only PCM and IEEE float are supported)",
                             body + 24);
        tag = le16(p + 24);
        body += 24;   /* where the subformat's tag sits, for the messages below */
    }
    if (tag != WAV_PCM && tag != WAV_FLOAT)
        return lmrt_fail(LMRT_E_UNSUPPORTED, "WAV: offset %zu: fmt format tag 0x%04x (%s) is "
                         "not supported (1: integer PCM, 3: IEEE float, 0xFFFE: extensible)",
                         body, tag, tag_name(tag));
    f->tag = tag;
    body = at + 8;
    if (f->channels == 0)
        return lmrt_fail(LMRT_E_FORMAT, "WAV: offset %zu: fmt channel count is 0", body + 2);
    if (f->rate == 0 || f->rate > WAV_MAX_RATE)
        return lmrt_fail(LMRT_E_FORMAT, "WAV: offset %zu: fmt sample rate %" PRIu32 " Hz "
                         "(1 to %u allowed)", body + 4, f->rate, WAV_MAX_RATE);
    if (f->bits == 0 || f->bits % 8 != 0)
        return lmrt_fail(f->bits == 0 ? LMRT_E_FORMAT : LMRT_E_UNSUPPORTED, "WAV: offset %zu: "
                         "fmt bits per sample %u (8, 16, 24, 32 for PCM; 32, 64 for float)",
                         body + 14, f->bits);
    bool ok = tag == WAV_PCM ? f->bits <= 32 : (f->bits == 32 || f->bits == 64);
    if (!ok)
        return lmrt_fail(LMRT_E_UNSUPPORTED, "WAV: offset %zu: fmt %u-bit %s samples are not "
                         "supported (8, 16, 24, 32 for PCM; 32, 64 for float)", body + 14,
                         f->bits, tag == WAV_PCM ? "integer" : "float");
    uint32_t want = (uint32_t)f->channels * (f->bits / 8u);
    if (f->block_align != want)
        return lmrt_fail(LMRT_E_FORMAT, "WAV: offset %zu: fmt block_align %u, but %u channels "
                         "of %u bits take %" PRIu32 " bytes", body + 12, f->block_align,
                         f->channels, f->bits, want);
    return LMRT_OK;
}

/* Sample readers: one little-endian sample to a double in [-1, 1). */
static double read_u8(const uint8_t *p)
{
    return ((int)p[0] - 128) / 128.0;
}

static double read_s16(const uint8_t *p)
{
    return (int16_t)le16(p) / 32768.0;
}

static double read_s24(const uint8_t *p)
{
    int32_t v = (int32_t)(p[0] | p[1] << 8 | p[2] << 16);
    return (v >= 0x800000 ? v - 0x1000000 : v) / 8388608.0;
}

static double read_s32(const uint8_t *p)
{
    return (int32_t)le32(p) / 2147483648.0;
}

static double read_f32(const uint8_t *p)
{
    uint32_t u = le32(p);
    float v;
    memcpy(&v, &u, sizeof v);
    return v;
}

static double read_f64(const uint8_t *p)
{
    uint64_t u = le32(p) | (uint64_t)le32(p + 4) << 32;
    double v;
    memcpy(&v, &u, sizeof v);
    return v;
}

/* Mixes `frames` frames at `p` down to mono into `out`. */
static lmrt_status convert(const wav_fmt *f, const uint8_t *p, size_t at, size_t frames,
                           float *out)
{
    double (*read)(const uint8_t *);
    size_t bytes = f->bits / 8u;
    switch (f->bits) {
    case 8: read = read_u8; break;
    case 16: read = read_s16; break;
    case 24: read = read_s24; break;
    case 32: read = f->tag == WAV_FLOAT ? read_f32 : read_s32; break;
    default: read = read_f64; break;
    }
    for (size_t i = 0; i < frames; i++) {
        const uint8_t *frame = p + i * f->block_align;
        double sum = 0;
        for (size_t c = 0; c < f->channels; c++) {
            double v = read(frame + c * bytes);
            if (f->tag == WAV_FLOAT) {
                if (!isfinite(v))
                    return lmrt_fail(LMRT_E_FORMAT, "WAV: offset %zu: float sample (frame %zu, "
                                     "channel %zu) is not finite", at + i * f->block_align +
                                     c * bytes, i, c);
                v = v < -1.0 ? -1.0 : v > 1.0 ? 1.0 : v;
            }
            sum += v;
        }
        float m = (float)(sum / f->channels);
        /* the mean of integer samples is below 1, but a 32-bit one may round up to it */
        out[i] = f->tag == WAV_PCM && m > WAV_FLOAT_BELOW_ONE ? WAV_FLOAT_BELOW_ONE : m;
    }
    return LMRT_OK;
}

void audio_pcm_free(audio_pcm *p)
{
    if (!p)
        return;
    lmrt_mem_free(p->samples);
    p->samples = NULL;
    p->n_samples = 0;
    p->sample_rate = 0;
}

lmrt_status wav_decode(const void *data, size_t size, size_t max_samples, audio_pcm *out)
{
    if (!out || (!data && size))
        return lmrt_fail(LMRT_E_INVALID_ARG, "wav_decode: NULL %s", out ? "data" : "out");
    if (max_samples == 0)
        return lmrt_fail(LMRT_E_INVALID_ARG, "wav_decode: sample budget 0 (must be positive)");
    const uint8_t *p = data;
    char name[5];
    if (size < 12)
        return lmrt_fail(LMRT_E_FORMAT, "WAV: %zu bytes are too few for a RIFF/WAVE header (12)",
                         size);
    if (memcmp(p, "RIFX", 4) == 0 || memcmp(p, "RF64", 4) == 0 || memcmp(p, "BW64", 4) == 0) {
        id_name(p, name);
        return lmrt_fail(LMRT_E_UNSUPPORTED, "WAV: offset 0: %s files are not supported (only "
                         "little-endian RIFF)", name);
    }
    if (memcmp(p, "RIFF", 4) != 0)
        return lmrt_fail(LMRT_E_FORMAT, "WAV: offset 0: magic bytes %02x %02x %02x %02x are "
                         "not RIFF", p[0], p[1], p[2], p[3]);
    if (memcmp(p + 8, "WAVE", 4) != 0) {
        id_name(p + 8, name);
        return lmrt_fail(LMRT_E_FORMAT, "WAV: offset 8: RIFF form type '%s' is not WAVE", name);
    }
    uint32_t riff_size = le32(p + 4);
    size_t end = size;   /* chunks end here */
    if (riff_size != WAV_SIZE_UNKNOWN) {
        if (riff_size < 4)
            return lmrt_fail(LMRT_E_FORMAT, "WAV: offset 4: RIFF size %" PRIu32 " is smaller "
                             "than its form type", riff_size);
        if (riff_size > size - 8)
            return lmrt_fail(LMRT_E_FORMAT, "WAV: offset 4: RIFF size %" PRIu32 " needs %" PRIu64
                             " bytes, but the file has %zu (truncated?)", riff_size,
                             (uint64_t)riff_size + 8, size);
        end = (size_t)riff_size + 8;
    }

    wav_fmt fmt = {0};
    bool have_fmt = false, have_data = false;
    size_t data_at = 0, data_len = 0;   /* the data chunk's header offset, body size */
    for (size_t pos = 12; pos < end;) {
        if (end - pos < 8)
            return lmrt_fail(LMRT_E_FORMAT, "WAV: offset %zu: %zu bytes left in the RIFF data, "
                             "too few for a chunk header (8)", pos, end - pos);
        id_name(p + pos, name);
        uint32_t len = le32(p + pos + 4);
        size_t avail = end - pos - 8;
        bool is_data = memcmp(p + pos, "data", 4) == 0;
        size_t body_len = len;
        if (is_data && len == WAV_SIZE_UNKNOWN)
            body_len = avail;
        else if (len > avail)
            return lmrt_fail(LMRT_E_FORMAT, "WAV: offset %zu: chunk '%s' size %" PRIu32 " runs "
                             "past the RIFF data (%zu bytes left; truncated?)", pos + 4, name,
                             len, avail);
        if (memcmp(p + pos, "fmt ", 4) == 0) {
            if (have_fmt)
                return lmrt_fail(LMRT_E_FORMAT, "WAV: offset %zu: second 'fmt ' chunk", pos);
            lmrt_status st = read_fmt(pos, p + pos + 8, len, &fmt);
            if (st != LMRT_OK)
                return st;
            have_fmt = true;
        } else if (is_data) {
            if (have_data)
                return lmrt_fail(LMRT_E_FORMAT, "WAV: offset %zu: second 'data' chunk", pos);
            have_data = true;
            data_at = pos;
            data_len = body_len;
        }
        pos += 8 + body_len;
        if (body_len % 2 && pos < end)
            pos++;   /* the pad byte after an odd-sized chunk; may be missing at the end */
    }
    if (!have_fmt)
        return lmrt_fail(LMRT_E_FORMAT, "WAV: no 'fmt ' chunk in %zu bytes of RIFF data", end);
    if (!have_data)
        return lmrt_fail(LMRT_E_FORMAT, "WAV: no 'data' chunk in %zu bytes of RIFF data", end);
    size_t frames = data_len / fmt.block_align;
    if (frames == 0)
        return lmrt_fail(LMRT_E_FORMAT, "WAV: offset %zu: data chunk of %zu bytes holds no whole "
                         "frame of %u bytes", data_at + 4, data_len, fmt.block_align);
    if (frames > max_samples)
        return lmrt_fail(LMRT_E_FORMAT, "WAV: offset %zu: data chunk holds %zu samples, more "
                         "than the budget of %zu", data_at + 4, frames, max_samples);
    size_t bytes;
    if (__builtin_mul_overflow(frames, sizeof(float), &bytes))
        return lmrt_fail(LMRT_E_NOMEM, "WAV: out of memory for %zu samples", frames);
    float *samples = lmrt_malloc(bytes);
    if (!samples)
        return lmrt_fail(LMRT_E_NOMEM, "WAV: out of memory for %zu samples", frames);
    lmrt_status st = convert(&fmt, p + data_at + 8, data_at + 8, frames, samples);
    if (st != LMRT_OK) {
        lmrt_mem_free(samples);
        return st;
    }
    out->sample_rate = (int32_t)fmt.rate;
    out->n_samples = frames;
    out->samples = samples;
    return LMRT_OK;
}

lmrt_status wav_load_file(const char *path, size_t max_samples, audio_pcm *out)
{
    if (!path || !out)
        return lmrt_fail(LMRT_E_INVALID_ARG, "wav_load_file: NULL %s", path ? "out" : "path");
    uint8_t *bytes = NULL;
    size_t size = 0;
    lmrt_status st = format_read_file(path, &bytes, &size);
    if (st != LMRT_OK)
        return st;
    st = wav_decode(bytes, size, max_samples, out);
    lmrt_mem_free(bytes);
    if (st != LMRT_OK)
        return lmrt_fail_prefix(st, "%s", path);
    return LMRT_OK;
}
