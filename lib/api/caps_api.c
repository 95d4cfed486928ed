/* caps_api.c - the capability query: which modalities a model has, which are
 * licensed in a region under the layered policy, and what the runtime offers. */
#include <stdio.h>
#include <string.h>

#include "api/handles.h"
#include "backend/backend.h"
#include "backend/cpu/cpu_features.h"

void lmrt_capabilities_init(lmrt_capabilities *caps, size_t size)
{
    const lmrt_capabilities defaults = {.size = sizeof(lmrt_capabilities)};
    api_struct_init(caps, size, &defaults, sizeof defaults);
}

/* Fills `caps` for `m` in `region` under the model's layers plus `deployer`. */
static lmrt_status fill_caps(const model *m, const region_code *region,
                             const policy_layer *deployer, lmrt_capabilities *caps)
{
    const policy_layer *layers[] = {m->policy, m->projector_policy, deployer};
    policy_decision decision;
    lmrt_status st = policy_decide(layers, 3, region, m->modalities, &decision);
    if (st)
        return st;
    memset(caps, 0, sizeof *caps);
    caps->size = sizeof *caps;
    snprintf(caps->region, sizeof caps->region, "%s", region->code);
    caps->region_known = region->known;
    caps->region_in_eu = region->known && region_is_eu(region->code);
    caps->modalities_present = m->modalities;
    caps->modalities_licensed = decision.licensed;
    for (int i = 0; i < LMRT_MODALITY_SLOTS; i++)
        memcpy(caps->withheld_reason[i], decision.reason[i], sizeof caps->withheld_reason[i]);
    snprintf(caps->version, sizeof caps->version, "%s", LMRT_VERSION);
    caps->backends = backend_available_mask();
    snprintf(caps->cpu_simd, sizeof caps->cpu_simd, "%s",
             cpu_features_describe(cpu_features_get()));
    const backend_vtable *cuda = backend_find(LMRT_BACKEND_CUDA);
    caps->n_cuda_devices = cuda ? cuda->device_count() : 0;
    return LMRT_OK;
}

lmrt_status lmrt_query_capabilities(const lmrt_model *model, const char *region,
                                    lmrt_capabilities *out)
{
    lmrt_error_clear();
    region_code code;
    lmrt_status st;
    if ((st = api_model_live(model, "lmrt_query_capabilities")) ||
        (st = api_check_out_struct(out, "lmrt_query_capabilities", "out")))
        return st;
    if ((st = region_parse(region, &code)))
        return lmrt_fail_prefix(st, "lmrt_query_capabilities");
    lmrt_capabilities caps;
    if ((st = fill_caps(model->m, &code, NULL, &caps)))
        return st;
    api_struct_out(out, &caps, sizeof caps);
    return LMRT_OK;
}

lmrt_status lmrt_context_capabilities(const lmrt_context *ctx, lmrt_capabilities *out)
{
    lmrt_error_clear();
    lmrt_status st;
    if ((st = api_require(ctx, "lmrt_context_capabilities", "ctx")) ||
        (st = api_check_out_struct(out, "lmrt_context_capabilities", "out")))
        return st;
    if (atomic_load(&ctx->released) || atomic_load(&ctx->model->released))
        return lmrt_fail(LMRT_E_INVALID_STATE, "lmrt_context_capabilities: the context or its "
                         "model was freed");
    lmrt_capabilities caps;
    if ((st = fill_caps(ctx->model->m, &ctx->region, ctx->deployer, &caps)))
        return st;
    api_struct_out(out, &caps, sizeof caps);
    return LMRT_OK;
}
