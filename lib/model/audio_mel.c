/* audio_mel.c - Whisper's log-mel spectrogram: 25 ms Hann frames every 10 ms, the
 * power spectrum by a mixed-radix FFT in double, a Slaney mel filterbank built
 * from its definition, log10, clamped to 8 below the window's maximum, (x + 4) / 4.
 * Owns only the math of one 30 s window; it never sees a model or a backend.
 *
 * Whisper's definition (openai/whisper audio.py, and Hugging Face's
 * WhisperFeatureExtractor, which Ultravox uses), for one window of 480000 samples:
 *   frames: torch.stft(center=True, pad_mode="reflect"): the window is reflected
 *           by n_fft/2 = 200 samples at each end and frame t covers padded samples
 *           [160 t, 160 t + 400); that gives 3001 frames and the last is dropped.
 *   power:  |rfft(hann_periodic(400) * frame)|^2, bins 0..200 (40 Hz apart).
 *   mel:    librosa.filters.mel(sr=16000, n_fft=400, n_mels, htk=False,
 *           norm="slaney"): triangles on the Slaney mel scale (linear below
 *           1 kHz, logarithmic above), each scaled to unit area (2 / width in Hz).
 *   log:    log10(max(mel, 1e-10)); then max(x, max over the window - 8); (x + 4) / 4.
 * Whisper ships the filterbank as float32 numbers; we compute it in double. */
#include "model/audio_mel.h"

#include <math.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"

#define MEL_MAX 512
#define FFT_MAX_FACTORS 16

typedef struct cplx {
    double re, im;
} cplx;

struct audio_mel {
    int32_t n_mel;
    double hann[AUDIO_N_FFT];              /* periodic: 0.5 - 0.5 cos(2 pi n / 400) */
    cplx twiddle[AUDIO_N_FFT];             /* exp(-2 pi i k / 400) */
    int32_t factors[FFT_MAX_FACTORS];      /* 400 = 2 2 2 2 5 5, smallest first */
    int32_t n_factors;
    int32_t *bin_lo;                       /* [n_mel] first bin with a nonzero weight */
    int32_t *bin_hi;                       /* [n_mel] one past the last */
    double *filters;                       /* [n_mel][AUDIO_N_BINS] */
};

/* ---- the filterbank ------------------------------------------------------ */

/* Slaney's mel scale, as librosa defines it (htk=False): 3 mels per 200 Hz below
 * 1 kHz, then 27 mels per factor 6.4 in frequency. */
static double hz_to_mel(double hz)
{
    const double f_sp = 200.0 / 3.0, min_log_hz = 1000.0, log_step = log(6.4) / 27.0;
    if (hz < min_log_hz)
        return hz / f_sp;
    return min_log_hz / f_sp + log(hz / min_log_hz) / log_step;
}

static double mel_to_hz(double mel)
{
    const double f_sp = 200.0 / 3.0, min_log_hz = 1000.0, log_step = log(6.4) / 27.0;
    const double min_log_mel = min_log_hz / f_sp;
    if (mel < min_log_mel)
        return mel * f_sp;
    return min_log_hz * exp(log_step * (mel - min_log_mel));
}

/* Triangle j rises from edge[j] to edge[j+1] and falls to edge[j+2] (edges: n_mel + 2
 * points evenly spaced in mel from 0 Hz to 8 kHz); its height 2 / (edge[j+2] -
 * edge[j]) gives it unit area. Weight of bin k (at 40 k Hz) = height * max(0,
 * min(rising ramp, falling ramp)), as librosa computes it. */
static void build_filters(audio_mel *m)
{
    const int32_t n = m->n_mel;
    double edge[MEL_MAX + 2];
    const double mel_lo = hz_to_mel(0.0), mel_hi = hz_to_mel(AUDIO_SAMPLE_RATE / 2.0);
    for (int32_t i = 0; i < n + 2; i++)
        edge[i] = mel_to_hz(mel_lo + (mel_hi - mel_lo) * i / (n + 1));
    for (int32_t j = 0; j < n; j++) {
        const double height = 2.0 / (edge[j + 2] - edge[j]);
        double *row = m->filters + (size_t)j * AUDIO_N_BINS;
        m->bin_lo[j] = AUDIO_N_BINS;
        m->bin_hi[j] = 0;
        for (int32_t k = 0; k < AUDIO_N_BINS; k++) {
            const double f = (double)k * AUDIO_SAMPLE_RATE / AUDIO_N_FFT;
            const double up = (f - edge[j]) / (edge[j + 1] - edge[j]);
            const double down = (edge[j + 2] - f) / (edge[j + 2] - edge[j + 1]);
            double wgt = up < down ? up : down;
            row[k] = wgt > 0.0 ? wgt * height : 0.0;
            if (row[k] != 0.0) {
                if (k < m->bin_lo[j])
                    m->bin_lo[j] = k;
                m->bin_hi[j] = k + 1;
            }
        }
        if (m->bin_lo[j] > m->bin_hi[j])
            m->bin_lo[j] = m->bin_hi[j] = 0;   /* an empty triangle: the mel is 0 */
    }
}

/* ---- the FFT ------------------------------------------------------------- */

/* Mixed-radix decimation in time: out[0..n) = DFT_n of in[0], in[stride], ...
 * Split n = p * m by the smallest factor p: transform the p interleaved
 * subsequences (each of length m, into out[r m .. r m + m)), then combine
 *   X[q m + k] = sum_r W_n^(r (q m + k)) S_r[k],  W_n = exp(-2 pi i / n). */
static void fft_rec(const audio_mel *mp, const cplx *in, size_t stride, int32_t n,
                    int32_t level, cplx *out)
{
    if (n == 1) {
        out[0] = in[0];
        return;
    }
    const int32_t p = mp->factors[level], m = n / p;
    for (int32_t r = 0; r < p; r++)
        fft_rec(mp, in + (size_t)r * stride, stride * (size_t)p, m, level + 1,
                out + (size_t)r * m);
    const int32_t step = AUDIO_N_FFT / n;   /* W_n^e = W_400^(e step) */
    cplx tmp[AUDIO_N_FFT];
    for (int32_t k = 0; k < m; k++) {
        for (int32_t q = 0; q < p; q++) {
            double re = 0.0, im = 0.0;
            const int32_t idx = q * m + k;
            for (int32_t r = 0; r < p; r++) {
                const cplx s = out[r * m + k];
                const cplx w = mp->twiddle[((int64_t)r * idx * step) % AUDIO_N_FFT];
                re += s.re * w.re - s.im * w.im;
                im += s.re * w.im + s.im * w.re;
            }
            tmp[q] = (cplx){re, im};
        }
        for (int32_t q = 0; q < p; q++)
            out[q * m + k] = tmp[q];
    }
}

/* ---- tables -------------------------------------------------------------- */

lmrt_status audio_mel_create(int32_t n_mel, audio_mel **out)
{
    if (n_mel < 1 || n_mel > MEL_MAX)
        return lmrt_fail(LMRT_E_FORMAT, "clip.audio.num_mel_bins is %d; lmrt takes 1..%d",
                         (int)n_mel, MEL_MAX);
    audio_mel *m = lmrt_calloc(1, sizeof *m);
    if (!m)
        return lmrt_fail(LMRT_E_NOMEM, "out of memory for the mel filterbank");
    m->n_mel = n_mel;
    m->bin_lo = lmrt_calloc((size_t)n_mel, sizeof *m->bin_lo);
    m->bin_hi = lmrt_calloc((size_t)n_mel, sizeof *m->bin_hi);
    m->filters = lmrt_calloc((size_t)n_mel * AUDIO_N_BINS, sizeof *m->filters);
    if (!m->bin_lo || !m->bin_hi || !m->filters) {
        audio_mel_free(m);
        return lmrt_fail(LMRT_E_NOMEM, "out of memory for the mel filterbank");
    }
    const double two_pi = 6.283185307179586476925286766559;
    for (int32_t i = 0; i < AUDIO_N_FFT; i++) {
        m->hann[i] = 0.5 - 0.5 * cos(two_pi * i / AUDIO_N_FFT);
        m->twiddle[i] = (cplx){cos(two_pi * i / AUDIO_N_FFT), -sin(two_pi * i / AUDIO_N_FFT)};
    }
    int32_t n = AUDIO_N_FFT;
    for (int32_t f = 2; n > 1; f++)
        while (n % f == 0) {
            m->factors[m->n_factors++] = f;
            n /= f;
        }
    build_filters(m);
    *out = m;
    return LMRT_OK;
}

void audio_mel_free(audio_mel *m)
{
    if (!m)
        return;
    lmrt_mem_free(m->bin_lo);
    lmrt_mem_free(m->bin_hi);
    lmrt_mem_free(m->filters);
    lmrt_mem_free(m);
}

int32_t audio_mel_n_mel(const audio_mel *m)
{
    return m->n_mel;
}

size_t audio_mel_n_windows(size_t n_samples)
{
    return n_samples / AUDIO_WINDOW_SAMPLES + (n_samples % AUDIO_WINDOW_SAMPLES != 0);
}

/* ---- one window ---------------------------------------------------------- */

/* Sample i of the window's reflect-padded signal, i in [-200, 480200): torch's
 * "reflect" mirrors about the first and last sample without repeating them. */
static float padded_sample(const float *win, size_t n_win, int64_t i)
{
    const int64_t L = AUDIO_WINDOW_SAMPLES;
    if (i < 0)
        i = -i;
    else if (i >= L)
        i = 2 * (L - 1) - i;
    return (size_t)i < n_win ? win[i] : 0.0f;   /* past the audio: Whisper's zero padding */
}

lmrt_status audio_mel_window(const audio_mel *m, const float *pcm, size_t n_samples, size_t w,
                             float *out)
{
    size_t start;
    if (__builtin_mul_overflow(w, (size_t)AUDIO_WINDOW_SAMPLES, &start) || start >= n_samples)
        return lmrt_fail(LMRT_E_INVALID_ARG, "audio window %zu starts past the %zu samples",
                         w, n_samples);
    const float *win = pcm + start;
    const size_t n_win = n_samples - start < AUDIO_WINDOW_SAMPLES ? n_samples - start
                                                                  : AUDIO_WINDOW_SAMPLES;
    const int32_t n_mel = m->n_mel;
    cplx frame[AUDIO_N_FFT], spec[AUDIO_N_FFT];
    double power[AUDIO_N_BINS];
    float vmax = -INFINITY;
    for (int32_t t = 0; t < AUDIO_WINDOW_FRAMES; t++) {
        const int64_t first = (int64_t)t * AUDIO_HOP - AUDIO_N_FFT / 2;
        for (int32_t i = 0; i < AUDIO_N_FFT; i++)
            frame[i] = (cplx){m->hann[i] * padded_sample(win, n_win, first + i), 0.0};
        fft_rec(m, frame, 1, AUDIO_N_FFT, 0, spec);
        for (int32_t k = 0; k < AUDIO_N_BINS; k++)
            power[k] = spec[k].re * spec[k].re + spec[k].im * spec[k].im;
        float *row = out + (size_t)t * n_mel;
        for (int32_t j = 0; j < n_mel; j++) {
            const double *f = m->filters + (size_t)j * AUDIO_N_BINS;
            double s = 0.0;
            for (int32_t k = m->bin_lo[j]; k < m->bin_hi[j]; k++)
                s += f[k] * power[k];
            row[j] = (float)log10(s > 1e-10 ? s : 1e-10);
            if (row[j] > vmax)
                vmax = row[j];
        }
    }
    const float floor_v = vmax - 8.0f;
    for (size_t i = 0; i < (size_t)AUDIO_WINDOW_FRAMES * (size_t)n_mel; i++)
        out[i] = ((out[i] > floor_v ? out[i] : floor_v) + 4.0f) / 4.0f;
    return LMRT_OK;
}
