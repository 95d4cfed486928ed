/* llama.h - the Llama decoder: weights bound to a backend, a KV cache, and the
 * forward pass over a batch of new tokens. Knows nothing about public handles,
 * sampling or tokenizers. */
#ifndef LMRT_MODEL_LLAMA_H
#define LMRT_MODEL_LLAMA_H

#include "backend/backend.h"
#include "model/model.h"

/* A decoder layer. Self-attention layers ("llama", and most of "mllama") use
 * wq..wo from attn_q/k/v/output. An mllama cross-attention layer has no
 * self-attention: wq..wo are its cross_attn_q/k/v/o_proj (wk and wv map image
 * states, not tokens), q_norm and k_norm are per-head RMSNorms, and its two
 * residual branches are scaled by tanh of the file's gates. */
typedef struct llama_layer {
    bool cross;                  /* an mllama cross-attention layer */
    int32_t cross_index;         /* its rank among the cross layers (0 ..), else -1 */
    float attn_gate;             /* cross: tanh(cross_attn_attn_gate), else 0 */
    float mlp_gate;              /* cross: tanh(cross_attn_mlp_gate), else 0 */
    tensor_view attn_norm;       /* [1 row][n_embd] F32 */
    tensor_view wq;              /* [n_head * head_dim rows][n_embd] */
    tensor_view wk;              /* [n_head_kv * head_dim rows][n_embd] */
    tensor_view wv;              /* [n_head_kv * head_dim rows][n_embd] */
    tensor_view wo;              /* [n_embd rows][n_head * head_dim] */
    tensor_view q_norm;          /* cross: [1 row][head_dim] F32 */
    tensor_view k_norm;          /* cross: [1 row][head_dim] F32 */
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
    int32_t n_tok_rows;          /* rows of tok_embd = token ids accepted: n_vocab, or
                                  * n_vocab + 8 for mllama (<|image|> = n_vocab) */
    int32_t n_cross;             /* cross-attention layers (0 for "llama") */
    tensor_view tok_embd;        /* [n_tok_rows rows][n_embd] */
    tensor_view output_norm;     /* [1 row][n_embd] F32 */
    tensor_view output;          /* [n_vocab rows][n_embd]; tok_embd's first rows when tied */
    tensor_view rope_freqs;      /* [1 row][n_rot / 2] F32 frequency factors; data NULL if absent */
    llama_layer *layers;         /* [n_layer] */
} llama_weights;

/* Checks that `m` has a complete Llama decoder ("llama", or "mllama" with the
 * cross-attention layers its mllama.attention.cross_attention_layers key lists)
 * whose shapes agree with its hyperparameters and whose types the backend
 * computes, and binds it. */
lmrt_status llama_weights_bind(const model *m, const backend_vtable *be, backend_ctx *bctx,
                               llama_weights **out);
void llama_weights_free(llama_weights *w);
/* Weight tensors bound (tied output not counted twice). */
int32_t llama_weights_n_bound(const llama_weights *w);

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
    /* mllama: the image states the cross layers attend to, NULL / 0 until set.
     * While n_cross_kv is 0 the cross layers are skipped. */
    int32_t n_cross_kv;          /* rows of image states */
    float *cross_k;              /* [n_cross][n_cross_kv][kv_dim], after k_norm */
    float *cross_v;              /* [n_cross][n_cross_kv][kv_dim] */
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

/* ---- mllama cross-attention states ---- */

bool llama_is_cross_model(const llama_weights *w);

/* Sets this sequence's cross-attention states from projected image features
 * [n][n_embd] (host memory): computes and keeps K/V (after k_norm) of every
 * cross layer in backend memory. Replaces earlier states; on failure the
 * earlier states stay. Positions fed afterwards attend to them; positions
 * already in the cache are not recomputed. */
lmrt_status llama_state_set_cross(const llama_weights *w, llama_state *st,
                                  const float *features_host, int32_t n);
/* Drops the states: later positions skip the cross layers again. */
void llama_state_clear_cross(const llama_weights *w, llama_state *st);
/* Bytes of cross K (and as many of cross V) for n_rows rows of states: what a
 * saved session holds besides the KV cache. 0 for a model without cross layers. */
size_t llama_state_cross_bytes(const llama_weights *w, int32_t n_rows);
/* Restores saved states: k_host and v_host are [n_cross][n_rows][kv_dim] as
 * downloaded from cross_k / cross_v. Replaces earlier states (n_rows 0 clears). */
lmrt_status llama_state_restore_cross(const llama_weights *w, llama_state *st, int32_t n_rows,
                                      const float *k_host, const float *v_host);

#endif
