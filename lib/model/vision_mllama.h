/* vision_mllama.h - the Llama 3.2 Vision ("mllama") image encoder of Ollama's GGUF
 * layout: tiled preprocessing (mllama_preprocess.h), the patch embedding with gated
 * position and tile (aspect-ratio) embeddings, the local and the gated global
 * transformer over all tiles, the concatenation of chosen local layers' inputs, and
 * the projector to the text model's width. Its output is the states the decoder's
 * cross-attention layers attend to. doc/formats.md lists the keys and tensors read.
 * Knows nothing about sessions, tokens or licensing. */
#ifndef LMRT_MODEL_VISION_MLLAMA_H
#define LMRT_MODEL_VISION_MLLAMA_H

#include <stdbool.h>
#include <stdint.h>

#include "backend/backend.h"
#include "format/gguf.h"
#include "format/image.h"
#include "lmrt.h"

typedef struct mllama_vision mllama_vision;

/* True when f carries an mllama vision encoder (mllama.vision.block_count > 0): the
 * unified Ollama file (text and vision) or a vision-only projector file. */
bool mllama_file_has_vision(const gguf_file *f);

/* Reads and checks every key and tensor shape the encoder needs, then binds the
 * weights to the backend. n_embd_text: the text model's embedding length, which the
 * projector's output must match. Errors: LMRT_E_FORMAT naming the key or tensor that
 * is missing or wrong, LMRT_E_UNSUPPORTED for weight types the backend cannot use
 * (named), LMRT_E_INVALID_ARG, LMRT_E_NOMEM. `out` is written only on success. */
lmrt_status mllama_vision_bind(const gguf_file *f, int32_t n_embd_text, const backend_vtable *be,
                               backend_ctx *bctx, mllama_vision **out);
void mllama_vision_free(mllama_vision *v);

/* Number of weight tensors bound to the backend. */
int32_t mllama_vision_n_bound(const mllama_vision *v);
/* Cross-attention states per tile (patches + the class token: 1601 for 560/14). */
int32_t mllama_vision_tokens_per_tile(const mllama_vision *v);
/* The tile grid's limit (mllama.vision.max_num_tiles). */
int32_t mllama_vision_max_tiles(const mllama_vision *v);

/* Preprocesses and encodes one image. *features: lmrt_malloc'd [*n_tok][n_embd_text],
 * the projected states of the image's tiles only (tile-major, row by row; the class
 * token first in each tile), *n_tok = tiles * tokens_per_tile. Both are written only
 * on success. Not reentrant per encoder. Errors: LMRT_E_INVALID_ARG, LMRT_E_NOMEM and
 * whatever the backend's ops return. */
lmrt_status mllama_vision_encode(mllama_vision *v, const image_rgb8 *img, float **features,
                                 int32_t *n_tok);

#endif
