/* vision.c - picks a model's image encoder family and forwards to it
 * (vision_clip.c, vision_mllama.c). Knows which file holds the encoder, not
 * how any encoder computes. */
#include "model/vision.h"

#include "base/alloc.h"
#include "base/error.h"
#include "model/vision_clip.h"
#include "model/vision_mllama.h"

struct vision_encoder {
    clip_encoder *clip;          /* exactly one of these two is set */
    mllama_vision *mllama;
    int32_t n_embd;              /* the text decoder's, which the outputs match */
};

lmrt_status vision_encoder_bind(const model *m, const backend_vtable *be, backend_ctx *bctx,
                                vision_encoder **out)
{
    /* The projector file first (llama.cpp ships encoders there), then the model
     * file itself (a combined mllama GGUF). */
    const gguf_file *files[] = {m->projector, m->file};
    vision_encoder *v = lmrt_calloc(1, sizeof *v);
    if (!v)
        return lmrt_fail(LMRT_E_NOMEM, "out of memory binding the image encoder");
    v->n_embd = m->hp.n_embd;
    lmrt_status st = LMRT_E_UNSUPPORTED;
    for (size_t i = 0; i < 2 && st == LMRT_E_UNSUPPORTED; i++) {
        const gguf_file *f = files[i];
        if (!f)
            continue;
        if (mllama_file_has_vision(f))
            st = mllama_vision_bind(f, m->hp.n_embd, be, bctx, &v->mllama);
        else if (clip_file_has_vision(f))
            st = clip_encoder_bind(f, m->hp.n_embd, be, bctx, &v->clip);
        else
            continue;
        if (st)
            goto fail;
    }
    if (!v->clip && !v->mllama) {
        st = lmrt_fail(LMRT_E_UNSUPPORTED, "%s: no image encoder lmrt can run (neither "
                       "llama.cpp mmproj clip.* nor mllama.vision.*)%s", m->file->path,
                       m->projector ? "" : "; a projector file may be missing");
        goto fail;
    }
    *out = v;
    return LMRT_OK;
fail:
    vision_encoder_free(v);
    return st;
}

void vision_encoder_free(vision_encoder *v)
{
    if (!v)
        return;
    clip_encoder_free(v->clip);
    mllama_vision_free(v->mllama);
    lmrt_mem_free(v);
}

vision_output vision_encoder_output(const vision_encoder *v)
{
    return v->mllama ? VISION_CROSS_STATES : VISION_EMBEDDINGS;
}

int32_t vision_encoder_n_bound(const vision_encoder *v)
{
    if (!v)
        return 0;
    return v->mllama ? mllama_vision_n_bound(v->mllama) : clip_encoder_n_bound(v->clip);
}

lmrt_status vision_encode(vision_encoder *v, const image_rgb8 *img, float **features,
                          int32_t *n)
{
    if (v->mllama)
        return mllama_vision_encode(v->mllama, img, features, n);
    int32_t n_tok = clip_encoder_n_tokens(v->clip), n_embd = v->n_embd;
    float *out = lmrt_malloc((size_t)n_tok * (size_t)n_embd * sizeof(float));
    if (!out)
        return lmrt_fail(LMRT_E_NOMEM, "out of memory for %d image embeddings", (int)n_tok);
    lmrt_status st = clip_encode_image(v->clip, img, out);
    if (st) {
        lmrt_mem_free(out);
        return st;
    }
    *features = out;
    *n = n_tok;
    return LMRT_OK;
}
