/* resample.h - band-limited sample-rate conversion of mono float audio (the audio
 * encoder wants 16 kHz; files come at any rate).
 *
 * The filter: a windowed sinc, h(u) = sinc(u) * I0(beta * sqrt(1 - (u/Z)^2)) / I0(beta)
 * for |u| < Z, 0 beyond, where u is time in periods of the lower of the two rates.
 *   - cutoff: the lower rate's Nyquist frequency (the sinc's zero crossings fall on the
 *     lower rate's sample times), where the response is -6 dB;
 *   - Z = 64 zero crossings per side, i.e. 2 * 64 * max(1, rate_in / rate_out) + 1 taps
 *     per output sample (129 for 8 -> 16 kHz, 355 for 44.1 -> 16 kHz);
 *   - Kaiser beta = 10.06 (0.1102 * (100 - 8.7): about 100 dB of stop-band attenuation),
 *     giving a transition band of 5% of the lower rate centred on its Nyquist
 *     frequency: at 16 kHz out, 7.6 kHz passes with < 1e-4 dB ripple and 8.4 kHz and
 *     up are 98 dB down; the aliases of 8.0..8.4 kHz land in 7.6..8.0 kHz only;
 *   - the taps of each phase are normalized to sum to 1, so DC passes exactly.
 * The ratio is exact: rate_out / rate_in is reduced by their gcd to L / M, and output
 * sample k sits at input time k * M / L, computed in integers (output 0 = input 0).
 * When the L phases' taps fit a table of 2^20 floats (and there are at least L output
 * samples) they are computed exactly once; for a short input they are computed for
 * each output; otherwise (a ratio like 44101 -> 16000) the kernel is read from a table
 * of 2048 points per zero crossing with linear interpolation (error < 1e-6 of its
 * peak; sines keep ~150 dB SNR either way).
 * Samples outside the input count as zero, so the first and last ~Z output periods
 * fade at the edges. */
#ifndef LMRT_FORMAT_RESAMPLE_H
#define LMRT_FORMAT_RESAMPLE_H

#include <stddef.h>
#include <stdint.h>

#include "lmrt.h"

#define AUDIO_RESAMPLE_MAX_RATE 768000

/* Resamples `n_in` (>= 1) samples from rate_in to rate_out (both 1..768000 Hz) into a
 * new buffer of ceil(n_in * rate_out / rate_in) samples, allocated with lmrt_malloc
 * (free with lmrt_mem_free). Equal rates copy. Errors: LMRT_E_INVALID_ARG (NULL
 * pointers, no samples, a rate out of range), LMRT_E_NOMEM (also when the output
 * length overflows). `*out` and `*n_out` are written only on success. The output
 * length is the caller's to bound: it grows with rate_out / rate_in. */
lmrt_status audio_resample(const float *in, size_t n_in, int32_t rate_in, int32_t rate_out,
                           float **out, size_t *n_out);

#endif
