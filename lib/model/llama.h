/* llama.h - the Llama decoder: weights bound to a backend, a KV cache, and the
 * forward pass over a batch of new tokens. Knows nothing about public handles,
 * sampling or tokenizers. */
#ifndef LMRT_MODEL_LLAMA_H
#define LMRT_MODEL_LLAMA_H

#include "backend/backend.h"
#include "model/model.h"

typedef struct llama_layer {
    tensor_view attn_norm;       /* [1 row][n_embd] F32 */
    tensor_view wq;              /* [n_head * head_dim rows][n_embd] */
    tensor_view wk;              /* [n_head_kv * head_dim rows][n_embd] */
    tensor_view wv;              /* [n_head_kv * head_dim rows][n_embd] */
    tensor_view wo;              /* [n_embd rows][n_head * head_dim] */
    tensor_view ffn_norm;        /* [1 row][n_embd] F32 */
    tensor_view w_gate;          /* [n_ff rows][n_embd] */
    tensor_view w_up;            /* [n_ff rows][n_embd] */
    tensor_view w_down;          /* [n_embd rows][n_ff] */
} llama_layer;

/* The decoder's weights, bound for one backend context. */
typedef struct llama_weights {
    const backend_vtable *be;
    backend_ctx *bctx;
    llama_hparams hp;
    int32_t head_dim;
    tensor_view tok_embd;        /* [n_vocab rows][n_embd] */
    tensor_view output_norm;     /* [1 row][n_embd] F32 */
    tensor_view output;          /* [n_vocab rows][n_embd]; tok_embd when tied */
    tensor_view rope_freqs;      /* [1 row][n_rot / 2] F32 frequency factors; data NULL if absent */
    llama_layer *layers;         /* [n_layer] */
} llama_weights;

/* Checks that `m` has a complete Llama decoder whose shapes agree with its
 * hyperparameters and whose types the backend computes, and binds it. */
lmrt_status llama_weights_bind(const model *m, const backend_vtable *be, backend_ctx *bctx,
                               llama_weights **out);
void llama_weights_free(llama_weights *w);

/* One sequence's working state: the KV cache and the activation buffers for
 * batches of up to n_batch tokens. All buffers are backend memory. */
typedef struct llama_state {
    int32_t n_ctx;               /* positions the cache holds */
    int32_t n_batch;             /* most tokens per forward call */
    int32_t n_past;              /* positions filled */
    int32_t kv_dim;              /* n_head_kv * head_dim */
    float *k_cache;              /* [n_layer][n_ctx][kv_dim] */
    float *v_cache;              /* [n_layer][n_ctx][kv_dim] */
    float *x;                    /* [n_batch][n_embd] residual stream */
    float *xn;                   /* [n_batch][n_embd] normed input of a sublayer */
    float *q;                    /* [n_batch][n_head * head_dim] */
    float *att;                  /* [n_batch][n_head * head_dim] attention output */
    float *tmp;                  /* [n_batch][n_embd] sublayer output */
    float *gate;                 /* [n_batch][n_ff] */
    float *up;                   /* [n_batch][n_ff] */
    float *logits;               /* [n_batch or 1][n_vocab] */
    int32_t logits_rows;         /* rows the logits buffer holds */
    int32_t *pos;                /* [n_batch] host positions of the batch */
} llama_state;

/* all_logits: the state will be asked for the logits of every position. */
lmrt_status llama_state_create(const llama_weights *w, int32_t n_ctx, int32_t n_batch,
                               bool all_logits, llama_state **out);
void llama_state_free(const llama_weights *w, llama_state *st);
/* Bytes of the KV cache that hold n_past positions (for saving). */
size_t llama_state_kv_bytes(const llama_weights *w, int32_t n_positions);

/* Polled between layers; returns true to abort. */
typedef bool (*llama_abort_fn)(void *user);

/* Runs tokens ids[0..n) at positions n_past.. and appends them to the cache.
 * Logits of the last token (or of every token with all_logits) are written to
 * host memory `logits` [1 or n][n_vocab]. Batches internally by n_batch.
 * LMRT_E_CONTEXT_FULL when n_past + n > n_ctx (nothing is run then). An abort
 * leaves the cache at the positions completed (n_past tells). */
lmrt_status llama_forward(const llama_weights *w, llama_state *st, const int32_t *ids, int32_t n,
                          bool all_logits, float *logits, llama_abort_fn should_abort,
                          void *abort_user);

/* The same for input embeddings instead of token ids (image and audio
 * projector outputs): embd is host memory [n][n_embd]. */
lmrt_status llama_forward_embd(const llama_weights *w, llama_state *st, const float *embd,
                               int32_t n, bool all_logits, float *logits,
                               llama_abort_fn should_abort, void *abort_user);

#endif
