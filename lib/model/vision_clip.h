/* vision_clip.h - the CLIP-style image encoder and MLP projector of llama.cpp's
 * "mmproj" GGUF files (LLaVA 1.5, llava-llama-3): preprocessing as the file's
 * clip.* keys say, a pre-norm ViT on the backend vtable, and the two-layer
 * projector into the text model's embedding space. doc/formats.md lists the keys
 * and tensors read. Knows nothing about sessions, tokens or licensing. */
#ifndef LMRT_MODEL_VISION_CLIP_H
#define LMRT_MODEL_VISION_CLIP_H

#include <stdbool.h>
#include <stdint.h>

#include "backend/backend.h"
#include "format/gguf.h"
#include "format/image.h"
#include "lmrt.h"

typedef struct clip_encoder clip_encoder;

/* True when f declares a vision encoder (clip.has_vision_encoder = true). */
bool clip_file_has_vision(const gguf_file *f);

/* Reads and checks every key and tensor shape the encoder needs, then binds the
 * weights to the backend. n_embd_text: the text model's embedding length, which the
 * projector's output must match. Errors: LMRT_E_FORMAT naming the key or tensor that
 * is missing or wrong, LMRT_E_UNSUPPORTED for projector types, activations, feature
 * layer choices or weight types lmrt does not run (named), LMRT_E_NOMEM. */
lmrt_status clip_encoder_bind(const gguf_file *f, int32_t n_embd_text, const backend_vtable *be,
                              backend_ctx *bctx, clip_encoder **out);
void clip_encoder_free(clip_encoder *e);

/* Embeddings one image becomes (the patch count: the class token is dropped). */
int32_t clip_encoder_n_tokens(const clip_encoder *e);
/* Number of tensors bound to the backend. */
int32_t clip_encoder_n_bound(const clip_encoder *e);

/* Preprocesses img (pad to a square with the mean colour, bicubic resize to the
 * encoder's image size, mean/std normalization), runs the ViT and the projector, and
 * writes [n_tokens][n_embd_text] floats to out_host (host memory). Errors:
 * LMRT_E_INVALID_ARG, LMRT_E_NOMEM, and whatever the backend's ops return. */
lmrt_status clip_encode_image(clip_encoder *e, const image_rgb8 *img, float *out_host);

#endif
