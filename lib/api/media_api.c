/* media_api.c - feeding images and audio into a session. The licence check
 * comes first, before any byte of the input is looked at; the encoders
 * themselves arrive with the image and audio work. */
#include "api/session.h"

/* LMRT_OK when `modality` may be fed into this session: the model has it and
 * the context's region and policies license it. */
static lmrt_status media_allowed(const lmrt_session *s, uint32_t modality, const char *function)
{
    lmrt_status st = session_live(s, function);
    if (st)
        return st;
    const lmrt_context *ctx = s->ctx;
    const model *m = ctx->model->m;
    const policy_layer *layers[] = {m->policy, m->projector_policy, ctx->deployer};
    if ((st = policy_require(layers, 3, &ctx->region, modality)))
        return lmrt_fail_prefix(st, "%s", function);
    const char *what = modality == LMRT_MODALITY_IMAGE ? "image" : "audio";
    if (!(m->modalities & modality))
        return lmrt_fail(LMRT_E_UNSUPPORTED, "%s: %s has no %s encoder (load a projector file "
                         "with lmrt_model_params.projector_path)", function, m->file->path, what);
    return lmrt_fail(LMRT_E_UNSUPPORTED, "%s: %s input is not implemented in lmrt %s yet",
                     function, what, LMRT_VERSION);
}

lmrt_status lmrt_session_feed_image_file(lmrt_session *s, const char *path)
{
    lmrt_error_clear();
    lmrt_status st = media_allowed(s, LMRT_MODALITY_IMAGE, "lmrt_session_feed_image_file");
    (void)path;
    return st;
}

lmrt_status lmrt_session_feed_image_encoded(lmrt_session *s, const void *data, size_t size)
{
    lmrt_error_clear();
    (void)data, (void)size;
    return media_allowed(s, LMRT_MODALITY_IMAGE, "lmrt_session_feed_image_encoded");
}

lmrt_status lmrt_session_feed_image_rgb(lmrt_session *s, const uint8_t *rgb, int32_t width,
                                        int32_t height, size_t row_stride)
{
    lmrt_error_clear();
    (void)rgb, (void)width, (void)height, (void)row_stride;
    return media_allowed(s, LMRT_MODALITY_IMAGE, "lmrt_session_feed_image_rgb");
}

lmrt_status lmrt_session_feed_audio_file(lmrt_session *s, const char *path)
{
    lmrt_error_clear();
    (void)path;
    return media_allowed(s, LMRT_MODALITY_AUDIO, "lmrt_session_feed_audio_file");
}

lmrt_status lmrt_session_feed_audio_encoded(lmrt_session *s, const void *data, size_t size)
{
    lmrt_error_clear();
    (void)data, (void)size;
    return media_allowed(s, LMRT_MODALITY_AUDIO, "lmrt_session_feed_audio_encoded");
}

lmrt_status lmrt_session_feed_audio_pcm(lmrt_session *s, const float *samples, size_t n_samples,
                                        int32_t sample_rate)
{
    lmrt_error_clear();
    (void)samples, (void)n_samples, (void)sample_rate;
    return media_allowed(s, LMRT_MODALITY_AUDIO, "lmrt_session_feed_audio_pcm");
}
