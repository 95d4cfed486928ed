/* fuzz_wav.c - libFuzzer harness for the WAV reader and the resampler behind it: any
 * input either fails cleanly, leaving `out` untouched, or yields 1..budget samples in
 * [-1, 1] at a rate in 1..768000 Hz, which then resample to 16 kHz (when the work is
 * small) into finite values of the promised length. An input starting with 'Z' is
 * the body of a `fmt ` chunk (16 bytes) followed by the samples, wrapped here in a
 * valid RIFF header, so that mutations reach the sample conversion quickly. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "format/resample.h"
#include "format/wav.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_SAMPLES ((size_t)1 << 22)
#define FUZZ_MAX_RESAMPLE_WORK ((uint64_t)1 << 20)   /* output samples x filter taps */

static volatile float sink;

static void resample_check(const audio_pcm *a)
{
    /* the filter reads ~129 * max(1, rate / 16000) inputs per output sample */
    uint64_t n_out = ((uint64_t)a->n_samples * 16000 + (uint64_t)a->sample_rate - 1) /
                     (uint64_t)a->sample_rate;
    uint64_t taps = 130 * ((uint64_t)a->sample_rate / 16000 + 1);
    if (n_out * taps > FUZZ_MAX_RESAMPLE_WORK)
        return;
    float *y = NULL;
    size_t n = 0;
    lmrt_status st = audio_resample(a->samples, a->n_samples, a->sample_rate, 16000, &y, &n);
    if (st == LMRT_E_NOMEM)
        return;
    if (st != LMRT_OK || n != n_out || !y)
        __builtin_trap();
    for (size_t i = 0; i < n; i++)
        if (!isfinite(y[i]) || fabsf(y[i]) > 4.0f)   /* |taps| sum to well under 4 */
            __builtin_trap();
    lmrt_mem_free(y);
}

static void decode(const uint8_t *data, size_t size)
{
    audio_pcm a = {-1, 7, NULL};
    lmrt_status st = wav_decode(data, size, FUZZ_MAX_SAMPLES, &a);
    if (st != LMRT_OK) {
        if (a.sample_rate != -1 || a.n_samples != 7 || a.samples)
            __builtin_trap();   /* out must be untouched on failure */
        if (st != LMRT_E_FORMAT && st != LMRT_E_UNSUPPORTED && st != LMRT_E_NOMEM)
            __builtin_trap();
        return;
    }
    if (a.sample_rate < 1 || a.sample_rate > 768000 || a.n_samples < 1 ||
        a.n_samples > FUZZ_MAX_SAMPLES || !a.samples)
        __builtin_trap();
    float sum = 0;
    for (size_t i = 0; i < a.n_samples; i++) {
        if (!(a.samples[i] >= -1.0f && a.samples[i] <= 1.0f))
            __builtin_trap();
        sum += a.samples[i];
    }
    sink = sum;
    resample_check(&a);
    audio_pcm_free(&a);
}

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* The 'Z' form: RIFF, WAVE, fmt (16 bytes from the input), data (the rest). */
static void decode_spelled_out(const uint8_t *data, size_t size)
{
    if (size < 1 + 16 || size - 17 > 0xffffff00u)
        return;
    size_t n_data = size - 17, n = 44 + n_data;
    uint8_t *wav = malloc(n);
    if (!wav)
        return;
    memcpy(wav, "RIFF", 4);
    put_le32(wav + 4, (uint32_t)(n - 8));
    memcpy(wav + 8, "WAVEfmt \x10\0\0\0", 12);
    memcpy(wav + 20, data + 1, 16);
    memcpy(wav + 36, "data", 4);
    put_le32(wav + 40, (uint32_t)n_data);
    if (n_data)
        memcpy(wav + 44, data + 17, n_data);
    decode(wav, n);
    free(wav);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    decode(data, size);
    if (size >= 1 && data[0] == 'Z')
        decode_spelled_out(data, size);
    return 0;
}
