/* wav.h - RIFF/WAVE files decoded to mono float PCM.
 * The reader trusts nothing in its input and refuses audio longer than the caller's
 * sample budget before allocating for it. Knows nothing about models: resampling
 * (format/resample.h) and the log-mel spectrogram happen above it. */
#ifndef LMRT_FORMAT_WAV_H
#define LMRT_FORMAT_WAV_H

#include <stddef.h>
#include <stdint.h>

#include "lmrt.h"

/* Decoded mono audio. */
typedef struct audio_pcm {
    int32_t sample_rate;            /* Hz, 1..768000 */
    size_t n_samples;               /* >= 1 after a successful decode */
    float *samples;                 /* [n_samples], in [-1, 1] (integer PCM: [-1, 1)) */
} audio_pcm;

/* Frees the samples and zeroes *p; NULL and an already freed struct are fine. */
void audio_pcm_free(audio_pcm *p);

/* Decodes a little-endian RIFF/WAVE file held in memory.
 *
 * Accepted: format tag 1 (integer PCM: 8-bit unsigned, 16-, 24- and 32-bit signed),
 * 3 (IEEE float, 32 or 64 bits) and 0xFFFE (WAVE_FORMAT_EXTENSIBLE with the PCM or
 * IEEE-float subformat GUID and the same sizes; valid bits <= container bits), any
 * number of channels (1..65535), sample rates 1..768000 Hz. Integer samples map to
 * s / 2^(bits-1) (8-bit: (u - 128) / 128); every frame is the mean of its channels,
 * rounded once to float. Float samples are clipped to [-1, 1]; NaN or infinity is a
 * format error.
 *
 * Chunks are walked in order within the RIFF size: odd-sized chunks are followed by a
 * pad byte (which may be missing at the very end), unknown chunks (LIST, fact, cue,
 * ...) are skipped, and `fmt ` may come before or after `data`. A RIFF or data size
 * of 0xFFFFFFFF (written by streaming encoders that could not seek back) means "to
 * the end of the file". A partial frame at the end of the data is ignored.
 *
 * `max_samples` (> 0) bounds the number of frames; longer audio is LMRT_E_FORMAT
 * before anything is allocated for it. Errors: LMRT_E_FORMAT for malformed input (the
 * message names the byte offset and the field: a truncated file, a chunk or data size
 * that runs past the RIFF size or the file, a missing or second `fmt `/`data`, zero
 * channels, a block_align other than channels x bytes per sample, a rate out of
 * range, no whole frame), LMRT_E_UNSUPPORTED for valid input this reader does not
 * decode (RIFX/RF64, ADPCM, A-law, mu-law and other codecs, unusual bit depths),
 * LMRT_E_NOMEM, LMRT_E_INVALID_ARG. `out` is written only on success; free it with
 * audio_pcm_free. */
lmrt_status wav_decode(const void *data, size_t size, size_t max_samples, audio_pcm *out);

/* Reads `path` whole and decodes it; LMRT_E_IO names the path, and every other
 * message is prefixed with it. */
lmrt_status wav_load_file(const char *path, size_t max_samples, audio_pcm *out);

#endif
