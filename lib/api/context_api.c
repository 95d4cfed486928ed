/* context_api.c - public entry points for contexts (backend, device, threads,
 * region and deployer policy) and for device discovery. */
#include <stdlib.h>
#include <string.h>

#include "api/handles.h"
#include "backend/backend.h"
#include "backend/cpu/cpu_features.h"
#include "base/alloc.h"
#include "model/audio_encoder.h"
#include "model/vision.h"

#define CONTEXT_MAX_THREADS 1024

static const lmrt_context_params context_params_default = {
    .size = sizeof(lmrt_context_params),
    .region = NULL,
    .policy = NULL,
    .backend = LMRT_BACKEND_AUTO,
    .device = 0,
    .n_threads = 0,
    .max_image_pixels = 0,
    .max_audio_samples = 0,
};

void lmrt_context_params_init(lmrt_context_params *params, size_t size)
{
    api_struct_init(params, size, &context_params_default, sizeof context_params_default);
}

void lmrt_device_info_init(lmrt_device_info *info, size_t size)
{
    const lmrt_device_info defaults = {.size = sizeof(lmrt_device_info)};
    api_struct_init(info, size, &defaults, sizeof defaults);
}

/* The backend table for LMRT_BACKEND_CPU or _CUDA; an error names what is missing. */
static lmrt_status find_backend(int32_t backend, const char *function,
                                const backend_vtable **out)
{
    if (backend != LMRT_BACKEND_CPU && backend != LMRT_BACKEND_CUDA)
        return lmrt_fail(LMRT_E_INVALID_ARG, "%s: backend %d is not LMRT_BACKEND_CPU or "
                         "LMRT_BACKEND_CUDA", function, (int)backend);
    const backend_vtable *vt = backend_find((uint32_t)backend);
    if (!vt)
        return lmrt_fail(LMRT_E_UNSUPPORTED, "%s: this build of lmrt has no %s backend",
                         function, backend == LMRT_BACKEND_CUDA ? "CUDA" : "CPU");
    *out = vt;
    return LMRT_OK;
}

lmrt_status lmrt_device_count(int32_t backend, int32_t *out_count)
{
    lmrt_error_clear();
    lmrt_status st = api_require(out_count, "lmrt_device_count", "out_count");
    if (st)
        return st;
    if (backend == LMRT_BACKEND_CUDA && !backend_find(LMRT_BACKEND_CUDA)) {
        *out_count = 0;   /* not built in: no devices, which is not an error */
        return LMRT_OK;
    }
    const backend_vtable *vt;
    if ((st = find_backend(backend, "lmrt_device_count", &vt)))
        return st;
    *out_count = vt->device_count();
    return LMRT_OK;
}

lmrt_status lmrt_device_get_info(int32_t backend, int32_t index, lmrt_device_info *out)
{
    lmrt_error_clear();
    const backend_vtable *vt;
    lmrt_status st;
    if ((st = api_check_out_struct(out, "lmrt_device_get_info", "out")) ||
        (st = find_backend(backend, "lmrt_device_get_info", &vt)))
        return st;
    lmrt_device_info info = {.size = sizeof info};
    if ((st = vt->device_info(index, &info)))
        return st;
    api_struct_out(out, &info, sizeof info);
    return LMRT_OK;
}

/* AUTO prefers a GPU when one is present, else the CPU -- unless the
 * environment variable LMRT_BACKEND=cpu|cuda says which (a deployment or a test
 * run pinning AUTO contexts; an explicit choice in the params always wins). */
static lmrt_status resolve_backend(const lmrt_context_params *p, int32_t *out)
{
    int32_t backend = p->backend;
    const char *env = getenv("LMRT_BACKEND");
    if (backend == LMRT_BACKEND_AUTO && env && *env) {
        if (!strcmp(env, "cpu"))
            backend = LMRT_BACKEND_CPU;
        else if (!strcmp(env, "cuda"))
            backend = LMRT_BACKEND_CUDA;
        else
            return lmrt_fail(LMRT_E_INVALID_ARG, "lmrt_context_create: the environment "
                             "variable LMRT_BACKEND is '%s'; it may be cpu or cuda", env);
    }
    if (backend == LMRT_BACKEND_AUTO) {
        const backend_vtable *cuda = backend_find(LMRT_BACKEND_CUDA);
        backend = cuda && cuda->device_count() > 0 ? LMRT_BACKEND_CUDA : LMRT_BACKEND_CPU;
    }
    const backend_vtable *vt;
    lmrt_status st = find_backend(backend, "lmrt_context_create", &vt);
    if (st)
        return st;
    int32_t n = vt->device_count();
    if (p->device < 0 || p->device >= n)
        return lmrt_fail(LMRT_E_NOT_FOUND, "lmrt_context_create: the %s backend has no device "
                         "%d (it has %d)", vt->name, (int)p->device, (int)n);
    *out = backend;
    return LMRT_OK;
}

lmrt_status lmrt_context_create(lmrt_model *model, const lmrt_context_params *params,
                                lmrt_context **out)
{
    lmrt_error_clear();
    lmrt_context_params p = context_params_default;
    region_code region;
    int32_t backend = LMRT_BACKEND_CPU;
    policy_layer *deployer = NULL;
    lmrt_status st;
    if ((st = api_model_live(model, "lmrt_context_create")) ||
        (st = api_require(out, "lmrt_context_create", "out")) ||
        (st = api_params_in(&p, sizeof p, params, "lmrt_context_create", "params")))
        return st;
    if ((st = region_parse(p.region, &region)))
        return lmrt_fail_prefix(st, "lmrt_context_create: params->region");
    if (p.n_threads < 0 || p.n_threads > CONTEXT_MAX_THREADS)
        return lmrt_fail(LMRT_E_INVALID_ARG, "lmrt_context_create: n_threads %d is outside "
                         "0..%d", (int)p.n_threads, CONTEXT_MAX_THREADS);
    if (p.max_image_pixels < 0 || p.max_audio_samples < 0)
        return lmrt_fail(LMRT_E_INVALID_ARG, "lmrt_context_create: max_image_pixels %lld and "
                         "max_audio_samples %lld must not be negative",
                         (long long)p.max_image_pixels, (long long)p.max_audio_samples);
    if ((st = resolve_backend(&p, &backend)))
        return st;
    if (p.policy && (st = policy_parse_text(p.policy, "deployer policy", &deployer)))
        return lmrt_fail_prefix(st, "lmrt_context_create: params->policy");

    lmrt_context *ctx = lmrt_calloc(1, sizeof *ctx);
    if (!ctx) {
        policy_layer_free(deployer);
        return lmrt_fail(LMRT_E_NOMEM, "lmrt_context_create: out of memory");
    }
    atomic_fetch_add(&model->refs, 1);
    ctx->model = model;
    atomic_init(&ctx->refs, 1);
    atomic_init(&ctx->released, false);
    ctx->region = region;
    ctx->region_set = region.code[0] != '\0';
    ctx->deployer = deployer;
    ctx->backend = backend;
    ctx->device = p.device;
    ctx->n_threads = p.n_threads ? p.n_threads : cpu_features_get()->n_cores;
    ctx->be = backend_find((uint32_t)backend);
    ctx->max_image_pixels = p.max_image_pixels ? p.max_image_pixels
                                               : LMRT_DEFAULT_MAX_IMAGE_PIXELS;
    ctx->max_audio_samples = p.max_audio_samples ? p.max_audio_samples
                                                 : LMRT_DEFAULT_MAX_AUDIO_SAMPLES;
    pthread_mutex_init(&ctx->lock, NULL);
    pthread_mutex_init(&ctx->media_lock, NULL);
    /* Weights are bound on first use (api_context_decoder), and encoders only in
     * a region where their modality is licensed. */
    if ((st = ctx->be->ctx_create(ctx->device, ctx->n_threads, &ctx->bctx))) {
        api_context_unref(ctx);
        return st;
    }
    *out = ctx;
    return LMRT_OK;
}

lmrt_status api_context_decoder(lmrt_context *ctx, const char *function, llama_weights **out)
{
    const model *m = ctx->model->m;
    if (!(m->modalities & LMRT_MODALITY_TEXT))
        return lmrt_fail(LMRT_E_UNSUPPORTED, "%s: %s has no text decoder (token_embd.weight "
                         "and blk.* tensors)", function, m->file->path);
    lmrt_status st = LMRT_OK;
    pthread_mutex_lock(&ctx->lock);
    if (!ctx->decoder)
        st = llama_weights_bind(m, ctx->be, ctx->bctx, &ctx->decoder);
    pthread_mutex_unlock(&ctx->lock);
    if (st)
        return lmrt_fail_prefix(st, "%s", function);
    *out = ctx->decoder;
    return LMRT_OK;
}

lmrt_status api_context_vision(lmrt_context *ctx, const char *function,
                               struct vision_encoder **out)
{
    lmrt_status st = LMRT_OK;
    pthread_mutex_lock(&ctx->lock);
    if (!ctx->vision)
        st = vision_encoder_bind(ctx->model->m, ctx->be, ctx->bctx, &ctx->vision);
    pthread_mutex_unlock(&ctx->lock);
    if (st)
        return lmrt_fail_prefix(st, "%s", function);
    *out = ctx->vision;
    return LMRT_OK;
}

lmrt_status api_context_audio(lmrt_context *ctx, const char *function,
                              struct audio_encoder **out)
{
    const model *m = ctx->model->m;
    const gguf_file *f = m->projector && audio_file_has_encoder(m->projector) ? m->projector
                                                                              : m->file;
    lmrt_status st = LMRT_OK;
    pthread_mutex_lock(&ctx->lock);
    if (!ctx->audio) {
        if (audio_file_has_encoder(f))
            st = audio_encoder_bind(f, m->hp.n_embd, ctx->be, ctx->bctx, &ctx->audio);
        else
            st = lmrt_fail(LMRT_E_UNSUPPORTED, "%s: no audio encoder lmrt can run (llama.cpp "
                           "mmproj clip.audio.*)", m->file->path);
    }
    pthread_mutex_unlock(&ctx->lock);
    if (st)
        return lmrt_fail_prefix(st, "%s", function);
    *out = ctx->audio;
    return LMRT_OK;
}

void lmrt_context_info_init(lmrt_context_info *info, size_t size)
{
    const lmrt_context_info defaults = {.size = sizeof(lmrt_context_info)};
    api_struct_init(info, size, &defaults, sizeof defaults);
}

lmrt_status lmrt_context_get_info(const lmrt_context *ctx, lmrt_context_info *out)
{
    lmrt_error_clear();
    lmrt_context_info info = {.size = sizeof info};
    lmrt_status st;
    if ((st = api_context_live(ctx, "lmrt_context_get_info")) ||
        (st = api_check_out_struct(out, "lmrt_context_get_info", "out")))
        return st;
    const model *m = ctx->model->m;
    for (uint32_t bit = LMRT_MODALITY_TEXT; bit <= LMRT_MODALITY_AUDIO; bit <<= 1)
        if ((m->modalities & bit) && api_context_license(ctx, bit) == LMRT_OK)
            info.modalities_licensed |= bit;
    lmrt_error_clear();
    lmrt_context *c = (lmrt_context *)ctx;   /* the lock only; nothing else changes */
    pthread_mutex_lock(&c->lock);
    if (ctx->decoder) {
        info.modalities_bound |= LMRT_MODALITY_TEXT;
        info.tensors_bound[0] = llama_weights_n_bound(ctx->decoder);
    }
    if (ctx->vision) {
        info.modalities_bound |= LMRT_MODALITY_IMAGE;
        info.tensors_bound[1] = vision_encoder_n_bound(ctx->vision);
    }
    if (ctx->audio) {
        info.modalities_bound |= LMRT_MODALITY_AUDIO;
        info.tensors_bound[2] = audio_encoder_n_bound(ctx->audio);
    }
    pthread_mutex_unlock(&c->lock);
    info.backend = ctx->backend;
    info.device = ctx->device;
    info.n_threads = ctx->n_threads;
    api_struct_out(out, &info, sizeof info);
    return LMRT_OK;
}

void lmrt_context_free(lmrt_context *ctx)
{
    if (!ctx)
        return;
    atomic_store(&ctx->released, true);
    api_context_unref(ctx);
}
