/* audio_encoder.h - the Whisper audio encoder and Ultravox projector of a
 * llama.cpp-style mmproj GGUF (clip.projector_type "ultravox"): weights bound
 * to a backend, and 16 kHz mono PCM -> embeddings in the text model's space.
 * Knows nothing about sessions, public handles or licensing. */
#ifndef LMRT_MODEL_AUDIO_ENCODER_H
#define LMRT_MODEL_AUDIO_ENCODER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "format/gguf.h"

typedef struct audio_encoder audio_encoder;

/* Whether the file says it carries an audio encoder (clip.has_audio_encoder). */
bool audio_file_has_encoder(const gguf_file *f);

/* Reads and checks every hyperparameter and tensor shape of the encoder and
 * projector in `f` (which must outlive the encoder), and binds the weights to
 * the backend. The projector must output n_embd_text values per token. A
 * missing or misshapen tensor or key is LMRT_E_FORMAT naming it; a projector
 * other than Ultravox, a weight type the backend cannot compute with, or a
 * backend without the encoder ops is LMRT_E_UNSUPPORTED. */
lmrt_status audio_encoder_bind(const gguf_file *f, int32_t n_embd_text, const backend_vtable *be,
                               backend_ctx *bctx, audio_encoder **out);
void audio_encoder_free(audio_encoder *e);

/* GGUF tensors bound (for the licensing demo: 0 means no weight was touched). */
int32_t audio_encoder_n_bound(const audio_encoder *e);
/* Embedding tokens that n_samples of audio become: 30 s windows times
 * ceil(1500 / stack_factor) each (188 for Ultravox's stack factor 8); -1 when
 * that does not fit an int32_t. */
int32_t audio_encoder_n_tokens(const audio_encoder *e, size_t n_samples);

/* Encodes pcm16k[0 .. n_samples) (16 kHz mono, nominally in [-1, 1]). Audio
 * longer than 30 s is cut into 30 s windows (the last zero-padded), each
 * encoded on its own as Whisper and Ultravox do, and their tokens are
 * concatenated in order. *embd: lmrt_malloc'd [*n_tok][n_embd_text], the
 * caller frees it with lmrt_mem_free. No samples is LMRT_E_INVALID_ARG. */
lmrt_status audio_encode(audio_encoder *e, const float *pcm16k, size_t n_samples, float **embd,
                         int32_t *n_tok);

#endif
