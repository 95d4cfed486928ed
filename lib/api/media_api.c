/* media_api.c - feeding images and audio into a session. The licence check
 * comes first, before any byte of the input is looked at and before any encoder
 * weight is bound; then decoding (format/), encoding (model/vision.c,
 * model/audio_encoder.c) and the decoder over the new positions. */
#include <string.h>

#include "api/session.h"
#include "base/alloc.h"
#include "format/image.h"
#include "format/resample.h"
#include "format/wav.h"
#include "model/audio_encoder.h"
#include "model/vision.h"

#define AUDIO_RATE 16000         /* what the Whisper-style encoders take */

/* LMRT_OK when `modality` may be fed into this session: the model has it and
 * the context's region and policies license it. */
static lmrt_status media_allowed(const lmrt_session *s, uint32_t modality, const char *function)
{
    lmrt_status st = session_live(s, function);
    if (st)
        return st;
    const lmrt_context *ctx = s->ctx;
    const model *m = ctx->model->m;
    if ((st = api_context_license(ctx, modality)))
        return lmrt_fail_prefix(st, "%s", function);
    const char *what = modality == LMRT_MODALITY_IMAGE ? "image" : "audio";
    if (!(m->modalities & modality))
        return lmrt_fail(LMRT_E_UNSUPPORTED, "%s: %s has no %s encoder (load a projector file "
                         "with lmrt_model_params.projector_path)", function, m->file->path, what);
    return LMRT_OK;
}

/* ---- images ------------------------------------------------------------- */

/* The id of mllama's <|image|> token, which marks where the image sits. */
static lmrt_status image_token(const lmrt_session *s, const char *function, int32_t *out)
{
    const tokenizer *tok = s->ctx->model->m->tok;
    token_vec ids = {0};
    lmrt_status st = LMRT_E_NOT_FOUND;
    if (tok)
        st = tokenizer_encode(tok, "<|image|>", 9, false, true, &ids);
    bool single = st == LMRT_OK && ids.n == 1;
    int32_t id = single ? ids.ids[0] : -1;
    token_vec_free(&ids);
    if (st == LMRT_E_NOMEM)
        return st;
    if (!single)
        return lmrt_fail(LMRT_E_FORMAT, "%s: the vocabulary has no <|image|> token, which a "
                         "Llama 3.2 Vision model needs", function);
    *out = id;
    return LMRT_OK;
}

/* Encodes a decoded image and feeds it: as embeddings among the tokens
 * (projector models), or as cross-attention states followed by the <|image|>
 * token (mllama). On failure the session's positions are as before; for mllama,
 * a failure after the states were set (feeding <|image|>: out of memory, the
 * context checked for room first) leaves the new image's states in place, as
 * keeping a copy of the old ones for that case would cost their whole size. */
static lmrt_status feed_image(lmrt_session *s, const image_rgb8 *img, const char *function)
{
    lmrt_context *ctx = s->ctx;
    vision_encoder *enc;
    lmrt_status st = api_context_vision(ctx, function, &enc);
    if (st)
        return st;
    int32_t id = -1;
    if (vision_encoder_output(enc) == VISION_CROSS_STATES) {
        if (!llama_is_cross_model(ctx->decoder))
            return lmrt_fail(LMRT_E_FORMAT, "%s: %s has a Llama 3.2 Vision encoder but its "
                             "decoder has no cross-attention layers", function,
                             ctx->model->m->file->path);
        if ((st = image_token(s, function, &id)))
            return st;
        if (s->history.n + 1 > (size_t)s->n_ctx)
            return lmrt_fail(LMRT_E_CONTEXT_FULL, "%s: the context is full (%d tokens)",
                             function, (int)s->n_ctx);
    }
    float *features = NULL;      /* [n][n_embd] */
    int32_t n = 0;
    pthread_mutex_lock(&ctx->media_lock);
    st = vision_encode(enc, img, &features, &n);
    pthread_mutex_unlock(&ctx->media_lock);
    if (st)
        return lmrt_fail_prefix(st, "%s", function);
    if (id < 0) {
        st = session_feed_embd(s, features, n, NULL, NULL);
    } else {
        /* The states replace earlier ones; the <|image|> token after them is what
         * the cross-attention layers start from. */
        st = llama_state_set_cross(ctx->decoder, s->state, features, n);
        if (!st)
            st = session_feed(s, &id, 1, NULL, NULL);
    }
    lmrt_mem_free(features);
    return st ? lmrt_fail_prefix(st, "%s", function) : LMRT_OK;
}

lmrt_status lmrt_session_feed_image_file(lmrt_session *s, const char *path)
{
    static const char fn[] = "lmrt_session_feed_image_file";
    lmrt_error_clear();
    lmrt_status st;
    if ((st = media_allowed(s, LMRT_MODALITY_IMAGE, fn)) || (st = api_require(path, fn, "path")))
        return st;
    image_rgb8 img = {0};
    if ((st = image_load_file(path, s->ctx->max_image_pixels, &img)))
        return lmrt_fail_prefix(st, "%s", fn);
    st = feed_image(s, &img, fn);
    image_rgb8_free(&img);
    return st;
}

lmrt_status lmrt_session_feed_image_encoded(lmrt_session *s, const void *data, size_t size)
{
    static const char fn[] = "lmrt_session_feed_image_encoded";
    lmrt_error_clear();
    lmrt_status st;
    if ((st = media_allowed(s, LMRT_MODALITY_IMAGE, fn)) || (st = api_require(data, fn, "data")))
        return st;
    image_rgb8 img = {0};
    if ((st = image_decode(data, size, s->ctx->max_image_pixels, &img)))
        return lmrt_fail_prefix(st, "%s", fn);
    st = feed_image(s, &img, fn);
    image_rgb8_free(&img);
    return st;
}

lmrt_status lmrt_session_feed_image_rgb(lmrt_session *s, const uint8_t *rgb, int32_t width,
                                        int32_t height, size_t row_stride)
{
    static const char fn[] = "lmrt_session_feed_image_rgb";
    lmrt_error_clear();
    lmrt_status st;
    if ((st = media_allowed(s, LMRT_MODALITY_IMAGE, fn)) || (st = api_require(rgb, fn, "rgb")))
        return st;
    if (width <= 0 || height <= 0 || row_stride < (size_t)width * 3)
        return lmrt_fail(LMRT_E_INVALID_ARG, "%s: %d x %d pixels with rows of %zu bytes (rows "
                         "need at least 3 x width)", fn, (int)width, (int)height, row_stride);
    image_rgb8 img = {0};
    if ((st = image_alloc("RGB8", width, height, s->ctx->max_image_pixels, &img)))
        return lmrt_fail_prefix(st, "%s", fn);
    for (int32_t y = 0; y < height; y++)
        memcpy(img.pixels + (size_t)y * (size_t)width * 3, rgb + (size_t)y * row_stride,
               (size_t)width * 3);
    st = feed_image(s, &img, fn);
    image_rgb8_free(&img);
    return st;
}

/* ---- audio -------------------------------------------------------------- */

/* Resamples mono PCM to 16 kHz, encodes it and feeds the embeddings. */
static lmrt_status feed_audio(lmrt_session *s, const float *pcm, size_t n_samples,
                              int32_t rate, const char *function)
{
    lmrt_context *ctx = s->ctx;
    audio_encoder *enc;
    lmrt_status st = api_context_audio(ctx, function, &enc);
    if (st)
        return st;
    float *resampled = NULL;
    size_t n16 = n_samples;
    if (rate != AUDIO_RATE &&
        (st = audio_resample(pcm, n_samples, rate, AUDIO_RATE, &resampled, &n16)))
        return lmrt_fail_prefix(st, "%s", function);
    float *embd = NULL;          /* [n][n_embd] */
    int32_t n = 0;
    pthread_mutex_lock(&ctx->media_lock);
    st = audio_encode(enc, resampled ? resampled : pcm, n16, &embd, &n);
    pthread_mutex_unlock(&ctx->media_lock);
    lmrt_mem_free(resampled);
    if (!st)
        st = session_feed_embd(s, embd, n, NULL, NULL);
    lmrt_mem_free(embd);
    return st ? lmrt_fail_prefix(st, "%s", function) : LMRT_OK;
}

lmrt_status lmrt_session_feed_audio_file(lmrt_session *s, const char *path)
{
    static const char fn[] = "lmrt_session_feed_audio_file";
    lmrt_error_clear();
    lmrt_status st;
    if ((st = media_allowed(s, LMRT_MODALITY_AUDIO, fn)) || (st = api_require(path, fn, "path")))
        return st;
    audio_pcm pcm = {0};
    if ((st = wav_load_file(path, (size_t)s->ctx->max_audio_samples, &pcm)))
        return lmrt_fail_prefix(st, "%s", fn);
    st = feed_audio(s, pcm.samples, pcm.n_samples, pcm.sample_rate, fn);
    audio_pcm_free(&pcm);
    return st;
}

lmrt_status lmrt_session_feed_audio_encoded(lmrt_session *s, const void *data, size_t size)
{
    static const char fn[] = "lmrt_session_feed_audio_encoded";
    lmrt_error_clear();
    lmrt_status st;
    if ((st = media_allowed(s, LMRT_MODALITY_AUDIO, fn)) || (st = api_require(data, fn, "data")))
        return st;
    audio_pcm pcm = {0};
    if ((st = wav_decode(data, size, (size_t)s->ctx->max_audio_samples, &pcm)))
        return lmrt_fail_prefix(st, "%s", fn);
    st = feed_audio(s, pcm.samples, pcm.n_samples, pcm.sample_rate, fn);
    audio_pcm_free(&pcm);
    return st;
}

lmrt_status lmrt_session_feed_audio_pcm(lmrt_session *s, const float *samples, size_t n_samples,
                                        int32_t sample_rate)
{
    static const char fn[] = "lmrt_session_feed_audio_pcm";
    lmrt_error_clear();
    lmrt_status st;
    if ((st = media_allowed(s, LMRT_MODALITY_AUDIO, fn)) ||
        (st = api_require(samples, fn, "samples")))
        return st;
    if (n_samples == 0 || sample_rate < 1000 || sample_rate > 768000)
        return lmrt_fail(LMRT_E_INVALID_ARG, "%s: %zu samples at %d Hz (need at least one "
                         "sample, at 1000..768000 Hz)", fn, n_samples, (int)sample_rate);
    if (n_samples > (size_t)s->ctx->max_audio_samples)
        return lmrt_fail(LMRT_E_FORMAT, "%s: %zu samples exceed the budget of %lld "
                         "(lmrt_context_params.max_audio_samples)", fn, n_samples,
                         (long long)s->ctx->max_audio_samples);
    for (size_t i = 0; i < n_samples; i++)
        if (!(samples[i] == samples[i]) || samples[i] > 1e6f || samples[i] < -1e6f)
            return lmrt_fail(LMRT_E_INVALID_ARG, "%s: sample %zu is not a finite number in "
                             "range", fn, i);
    return feed_audio(s, samples, n_samples, sample_rate, fn);
}
