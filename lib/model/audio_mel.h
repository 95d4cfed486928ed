/* audio_mel.h - Whisper's log-mel spectrogram of 16 kHz mono PCM, in 30 s windows.
 * Knows nothing about models or backends: the encoder asks for one window at a
 * time and gets frames-major rows, ready for im2col. */
#ifndef LMRT_MODEL_AUDIO_MEL_H
#define LMRT_MODEL_AUDIO_MEL_H

#include <stddef.h>
#include <stdint.h>

#include "lmrt.h"

#define AUDIO_SAMPLE_RATE 16000
#define AUDIO_N_FFT 400                 /* 25 ms frames */
#define AUDIO_HOP 160                   /* 10 ms hop */
#define AUDIO_WINDOW_SAMPLES 480000     /* 30 s: what the encoder sees at once */
#define AUDIO_WINDOW_FRAMES 3000        /* AUDIO_WINDOW_SAMPLES / AUDIO_HOP */
#define AUDIO_N_BINS (AUDIO_N_FFT / 2 + 1)

/* The precomputed tables of one mel size: the Hann window, the FFT plan and
 * the filterbank. Read-only after creation, so windows may be computed from
 * several threads at once. */
typedef struct audio_mel audio_mel;

/* n_mel: the model's clip.audio.num_mel_bins (80 or 128 for Whisper; any
 * value in 1..256 is accepted). */
lmrt_status audio_mel_create(int32_t n_mel, audio_mel **out);
void audio_mel_free(audio_mel *m);
int32_t audio_mel_n_mel(const audio_mel *m);

/* How many 30 s windows n_samples of audio fill: ceil(n / 480000), 0 for 0. */
size_t audio_mel_n_windows(size_t n_samples);

/* The log-mel spectrogram of window `w` of pcm[0 .. n_samples): samples
 * [w * 480000, (w + 1) * 480000), zero-padded past the end of the audio, as
 * Whisper pads its 30 s input. out: [3000 frames][n_mel], frames-major. */
lmrt_status audio_mel_window(const audio_mel *m, const float *pcm, size_t n_samples,
                             size_t w, float *out);

#endif
