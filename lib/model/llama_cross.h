/* llama_cross.h - internal to the decoder: what llama.c and llama_cross.c (the
 * mllama cross-attention layers) share. Not for other layers: they use llama.h. */
#ifndef LMRT_MODEL_LLAMA_CROSS_H
#define LMRT_MODEL_LLAMA_CROSS_H

#include "model/llama.h"

/* Backend memory for count * elems floats, the product checked for overflow. */
lmrt_status llama_alloc_floats(const llama_weights *w, size_t count, size_t elems,
                               float **out);
/* st->tmp = Wdown (silu(Wgate norm(x)) * Wup norm(x)) for the batch's n rows. */
lmrt_status llama_ffn_branch(const llama_weights *w, llama_state *st, const llama_layer *L,
                             int32_t n);

/* Marks the layers "<arch>.attention.cross_attention_layers" lists as cross
 * layers and numbers them (w->layers allocated, w->hp set). */
lmrt_status llama_cross_read_layers(const model *m, llama_weights *w);
/* tanh of the one-element F32 gate tensor `name`, read from the mapped file. */
lmrt_status llama_cross_read_gate(const model *m, const char *name, float *out);
/* Cross layer L over the batch's n rows, against st's image states (set). */
lmrt_status llama_cross_layer(const llama_weights *w, llama_state *st, const llama_layer *L,
                              int32_t n);

#endif
