/* handles.h - what the public opaque handles hold, and the argument-checking
 * helpers the entry points share. Only lib/api/ includes this file. */
#ifndef LMRT_API_HANDLES_H
#define LMRT_API_HANDLES_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "backend/backend.h"
#include "base/error.h"
#include "model/llama.h"
#include "model/model.h"
#include "sample/sampler.h"
#include "tokenizer/tokenizer.h"
#include "policy/policy.h"
#include "policy/regions.h"

/* A model is reference-counted: the caller's reference plus one per context.
 * lmrt_model_free() drops the caller's and marks it released, so that a context
 * or session outliving it fails cleanly instead of touching freed memory. */
struct lmrt_model {
    model *m;
    atomic_int refs;
    atomic_bool released;
};

struct lmrt_context {
    lmrt_model *model;           /* holds a reference */
    atomic_int refs;             /* the caller's plus one per session */
    atomic_bool released;
    region_code region;          /* parsed region; region_set false when unset */
    bool region_set;
    policy_layer *deployer;      /* or NULL */
    int32_t backend;             /* LMRT_BACKEND_CPU or _CUDA, resolved from AUTO */
    int32_t device;
    int32_t n_threads;
    const backend_vtable *be;
    backend_ctx *bctx;
    int64_t max_image_pixels;    /* input budgets, defaults resolved */
    int64_t max_audio_samples;
    pthread_mutex_t lock;        /* guards binding the decoder and the encoders */
    llama_weights *decoder;      /* bound on first use; NULL before */
    /* Encoders, bound on the first image / audio -- only ever after the licence
     * check for that modality passed. NULL before. */
    struct vision_encoder *vision;
    struct audio_encoder *audio;
    pthread_mutex_t media_lock;  /* one encoding at a time: encoders keep scratch */
};

/* One conversation. The history and the decoder state always agree:
 * history.n == state->n_past. */
struct lmrt_session {
    lmrt_context *ctx;           /* holds a reference */
    int32_t n_ctx;
    bool keep_all_logits;
    llama_state *state;
    token_vec history;
    float *logits;               /* host [logits_cap rows][n_vocab] */
    int64_t logits_cap;
    int64_t logits_rows;         /* rows valid from the last feed; 0 before any */
    sampler smp;
    void *sampler_scratch;
    utf8_stream detok;           /* bytes of a character not yet complete */
    bool text_started;           /* a token with text was fed: SentencePiece's dummy
                                    prefix space is no longer stripped */
    char *piece;                 /* [piece_max + 1] text completed by the last step */
    size_t piece_max;            /* longest token text + a pending partial character */
};

void api_model_unref(lmrt_model *model);
void api_context_unref(lmrt_context *ctx);
/* The context's decoder, bound on first use (thread-safe). */
lmrt_status api_context_decoder(lmrt_context *ctx, const char *function, llama_weights **out);
/* The context's image / audio encoder, bound on first use (thread-safe). Call
 * only after the modality's licence check. */
lmrt_status api_context_vision(lmrt_context *ctx, const char *function,
                               struct vision_encoder **out);
lmrt_status api_context_audio(lmrt_context *ctx, const char *function,
                              struct audio_encoder **out);
/* LMRT_OK when the context's region and policies (the model's, its projector's,
 * the deployer's) license `modality`; LMRT_E_NOT_LICENSED with the reason otherwise. */
lmrt_status api_context_license(const lmrt_context *ctx, uint32_t modality);
/* LMRT_E_INVALID_STATE when the context or its model was freed by its owner. */
lmrt_status api_context_live(const lmrt_context *ctx, const char *function);

/* LMRT_E_INVALID_ARG naming `what` when `ptr` is NULL. */
lmrt_status api_require(const void *ptr, const char *function, const char *what);
/* LMRT_E_INVALID_STATE when the model was freed by its owner. */
lmrt_status api_model_live(const lmrt_model *model, const char *function);

/* The body of every *_init(): writes the first `their_size` bytes of
 * `defaults` (zero past our_size) into the caller's struct and stores their_size.
 * A NULL struct or a size too small to hold the size field does nothing. */
void api_struct_init(void *theirs, size_t their_size, const void *defaults, size_t our_size);

/* Copies a caller's size-versioned input struct over `defaults` (both start
 * with a size_t size). A caller built against an older header passes a smaller
 * size: the fields it does not know keep their defaults. */
lmrt_status api_params_in(void *defaults, size_t our_size, const void *theirs,
                          const char *function, const char *what);
/* Copies a filled output struct into the caller's, as far as its size allows,
 * keeping the caller's size field. */
lmrt_status api_check_out_struct(const void *theirs, const char *function, const char *what);
void api_struct_out(void *theirs, const void *ours, size_t our_size);

#endif
