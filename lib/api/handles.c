/* handles.c - reference counting of models and contexts, and the argument
 * checks shared by every public entry point. */
#include "api/handles.h"

#include "model/audio_encoder.h"
#include "model/vision.h"

#include <string.h>

#include "base/alloc.h"

/* Largest size field accepted in a caller struct: guards against garbage. */
#define API_STRUCT_MAX (64u * 1024u)

void api_model_unref(lmrt_model *model)
{
    if (model && atomic_fetch_sub(&model->refs, 1) == 1) {
        model_close(model->m);
        lmrt_mem_free(model);
    }
}

void api_context_unref(lmrt_context *ctx)
{
    if (ctx && atomic_fetch_sub(&ctx->refs, 1) == 1) {
        vision_encoder_free(ctx->vision);
        audio_encoder_free(ctx->audio);
        llama_weights_free(ctx->decoder);
        if (ctx->bctx)
            ctx->be->ctx_free(ctx->bctx);
        pthread_mutex_destroy(&ctx->lock);
        pthread_mutex_destroy(&ctx->media_lock);
        policy_layer_free(ctx->deployer);
        api_model_unref(ctx->model);
        lmrt_mem_free(ctx);
    }
}

lmrt_status api_context_license(const lmrt_context *ctx, uint32_t modality)
{
    const model *m = ctx->model->m;
    const policy_layer *layers[] = {m->policy, m->projector_policy, ctx->deployer};
    return policy_require(layers, 3, &ctx->region, modality);
}

lmrt_status api_require(const void *ptr, const char *function, const char *what)
{
    if (!ptr)
        return lmrt_fail(LMRT_E_INVALID_ARG, "%s: %s is NULL", function, what);
    return LMRT_OK;
}

lmrt_status api_context_live(const lmrt_context *ctx, const char *function)
{
    if (!ctx)
        return lmrt_fail(LMRT_E_INVALID_ARG, "%s: ctx is NULL", function);
    if (atomic_load(&ctx->released))
        return lmrt_fail(LMRT_E_INVALID_STATE, "%s: the context was freed with "
                         "lmrt_context_free", function);
    if (atomic_load(&ctx->model->released))
        return lmrt_fail(LMRT_E_INVALID_STATE, "%s: the context's model was freed with "
                         "lmrt_model_free", function);
    return LMRT_OK;
}

lmrt_status api_model_live(const lmrt_model *model, const char *function)
{
    if (!model)
        return lmrt_fail(LMRT_E_INVALID_ARG, "%s: model is NULL", function);
    if (atomic_load(&model->released))
        return lmrt_fail(LMRT_E_INVALID_STATE, "%s: the model was freed with lmrt_model_free",
                         function);
    return LMRT_OK;
}

static lmrt_status check_size_field(size_t size, const char *function, const char *what)
{
    if (size < sizeof(size_t) || size > API_STRUCT_MAX)
        return lmrt_fail(LMRT_E_INVALID_ARG, "%s: %s->size is %zu; set it with the matching "
                         "*_init() function", function, what, size);
    return LMRT_OK;
}

void api_struct_init(void *theirs, size_t their_size, const void *defaults, size_t our_size)
{
    if (!theirs || their_size < sizeof(size_t) || their_size > API_STRUCT_MAX)
        return;
    memset(theirs, 0, their_size);
    memcpy(theirs, defaults, their_size < our_size ? their_size : our_size);
    memcpy(theirs, &their_size, sizeof their_size);
}

lmrt_status api_params_in(void *defaults, size_t our_size, const void *theirs,
                          const char *function, const char *what)
{
    if (!theirs)
        return LMRT_OK;
    size_t size;
    memcpy(&size, theirs, sizeof size);
    lmrt_status st = check_size_field(size, function, what);
    if (st)
        return st;
    memcpy(defaults, theirs, size < our_size ? size : our_size);
    memcpy(defaults, &our_size, sizeof our_size);
    return LMRT_OK;
}

lmrt_status api_check_out_struct(const void *theirs, const char *function, const char *what)
{
    lmrt_status st = api_require(theirs, function, what);
    if (st)
        return st;
    size_t size;
    memcpy(&size, theirs, sizeof size);
    return check_size_field(size, function, what);
}

void api_struct_out(void *theirs, const void *ours, size_t our_size)
{
    size_t size;
    memcpy(&size, theirs, sizeof size);
    size_t n = size < our_size ? size : our_size;
    memcpy((char *)theirs + sizeof size, (const char *)ours + sizeof size, n - sizeof size);
}
