/* session.h - what the session entry points (session_api.c, generate_api.c,
 * session_blob.c) share. Only lib/api/ includes this file. */
#ifndef LMRT_API_SESSION_H
#define LMRT_API_SESSION_H

#include "api/handles.h"

/* LMRT_E_INVALID_ARG for NULL, LMRT_E_INVALID_STATE when its context or model was freed. */
lmrt_status session_live(const lmrt_session *s, const char *function);
/* A new, empty session on ctx (binds the decoder on first use). */
lmrt_status session_new(lmrt_context *ctx, int32_t n_ctx, bool keep_all_logits,
                        const char *function, lmrt_session **out);
/* Runs ids through the decoder and appends them; all or nothing. */
lmrt_status session_feed(lmrt_session *s, const int32_t *ids, size_t n, lmrt_abort_fn abort_fn,
                         void *abort_user);
/* The history's entry for a position fed as an embedding (image or audio):
 * not a token, so penalties and detokenizing skip it. */
#define SESSION_MEDIA_POSITION (-1)
/* Runs input embeddings [n][n_embd] (host memory) through the decoder and
 * appends n media positions; all or nothing. */
lmrt_status session_feed_embd(lmrt_session *s, const float *embd, int32_t n,
                              lmrt_abort_fn abort_fn, void *abort_user);
/* Samples, feeds and detokenizes one token: its text is s->piece[0..*text_len). */
lmrt_status session_step(lmrt_session *s, int32_t *out_token, size_t *text_len,
                         lmrt_abort_fn abort_fn, void *abort_user);

#endif
