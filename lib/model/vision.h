/* vision.h - a model's image encoder, whichever family it is: a llama.cpp
 * "mmproj" CLIP/SigLIP ViT with an MLP projector, whose outputs are embeddings
 * placed among the text tokens, or the Llama 3.2 Vision (mllama) tiled ViT,
 * whose outputs are states the decoder's cross-attention layers attend to. */
#ifndef LMRT_MODEL_VISION_H
#define LMRT_MODEL_VISION_H

#include "backend/backend.h"
#include "format/image.h"
#include "model/model.h"

typedef enum vision_output {
    VISION_EMBEDDINGS,           /* decoder input positions (llama_forward_embd) */
    VISION_CROSS_STATES,         /* cross-attention states (llama_state_set_cross) */
} vision_output;

typedef struct vision_encoder vision_encoder;

/* Finds the encoder in the projector file or the model file and binds its
 * weights: LMRT_E_UNSUPPORTED when the model has none, LMRT_E_FORMAT naming the
 * key or tensor when it is incomplete. */
lmrt_status vision_encoder_bind(const model *m, const backend_vtable *be, backend_ctx *bctx,
                                vision_encoder **out);
void vision_encoder_free(vision_encoder *v);

vision_output vision_encoder_output(const vision_encoder *v);
/* Weight tensors bound (the licensing demonstration counts them). */
int32_t vision_encoder_n_bound(const vision_encoder *v);

/* Preprocesses and encodes one image: *features is lmrt_malloc'd
 * [*n][n_embd of the text decoder]. Not reentrant: one image at a time per
 * encoder (the caller serializes). */
lmrt_status vision_encode(vision_encoder *v, const image_rgb8 *img, float **features,
                          int32_t *n);

#endif
