/* model_api.c - public entry points for loading, freeing and describing models.
 * Argument checks and handle lifetimes only; parsing is format/, meaning is model/. */
#include <string.h>

#include "api/handles.h"
#include "base/alloc.h"
#include "base/log.h"
#include "tensor/types.h"

#ifdef LMRT_HAVE_BUILTIN_MODEL
extern const unsigned char lmrt_builtin_model_data[];
extern const uint64_t lmrt_builtin_model_size;
#endif

static const lmrt_model_params model_params_default = {
    .size = sizeof(lmrt_model_params),
    .projector_path = NULL,
    .use_mmap = true,
};

void lmrt_model_params_init(lmrt_model_params *params, size_t size)
{
    api_struct_init(params, size, &model_params_default, sizeof model_params_default);
}

/* Opens the optional projector, builds the model and wraps it in a handle.
 * Takes ownership of `file`. */
static lmrt_status wrap_model(gguf_file *file, const lmrt_model_params *p, lmrt_model **out)
{
    gguf_file *projector = NULL;
    lmrt_status st;
    if (p->projector_path && (st = gguf_open(p->projector_path, p->use_mmap, &projector))) {
        gguf_close(file);
        return st;
    }
    lmrt_model *handle = lmrt_calloc(1, sizeof *handle);
    if (!handle) {
        gguf_close(file);
        gguf_close(projector);
        return lmrt_fail(LMRT_E_NOMEM, "lmrt_model_load: out of memory");
    }
    if ((st = model_open(file, projector, &handle->m))) {
        lmrt_mem_free(handle);
        return st;
    }
    atomic_init(&handle->refs, 1);
    atomic_init(&handle->released, false);
    const struct model *m = handle->m;
    lmrt_log(LMRT_LOG_INFO, "loaded %s: %s, %s, %llu tensors, %lld parameters", m->file->path,
             m->architecture[0] ? m->architecture : "no architecture", m->file_type,
             (unsigned long long)m->file->n_tensors, (long long)m->n_params);
    *out = handle;
    return LMRT_OK;
}

lmrt_status lmrt_model_load(const char *path, const lmrt_model_params *params, lmrt_model **out)
{
    lmrt_error_clear();
    lmrt_model_params p = model_params_default;
    lmrt_status st;
    gguf_file *file = NULL;
    if ((st = api_require(path, "lmrt_model_load", "path")) ||
        (st = api_require(out, "lmrt_model_load", "out")) ||
        (st = api_params_in(&p, sizeof p, params, "lmrt_model_load", "params")) ||
        (st = gguf_open(path, p.use_mmap, &file)))
        return st;
    return wrap_model(file, &p, out);
}

lmrt_status lmrt_model_load_memory(const void *data, size_t size,
                                   const lmrt_model_params *params, lmrt_model **out)
{
    lmrt_error_clear();
    lmrt_model_params p = model_params_default;
    lmrt_status st;
    gguf_file *file = NULL;
    if ((st = api_require(data, "lmrt_model_load_memory", "data")) ||
        (st = api_require(out, "lmrt_model_load_memory", "out")) ||
        (st = api_params_in(&p, sizeof p, params, "lmrt_model_load_memory", "params")) ||
        (st = gguf_open_memory(data, size, "<memory>", &file)))
        return st;
    return wrap_model(file, &p, out);
}

lmrt_status lmrt_model_load_builtin(const lmrt_model_params *params, lmrt_model **out)
{
    lmrt_error_clear();
#ifdef LMRT_HAVE_BUILTIN_MODEL
    lmrt_model_params p = model_params_default;
    lmrt_status st;
    gguf_file *file = NULL;
    if ((st = api_require(out, "lmrt_model_load_builtin", "out")) ||
        (st = api_params_in(&p, sizeof p, params, "lmrt_model_load_builtin", "params")) ||
        (st = gguf_open_memory(lmrt_builtin_model_data, (size_t)lmrt_builtin_model_size,
                               "<builtin stories260K>", &file)))
        return st;
    return wrap_model(file, &p, out);
#else
    (void)params;
    (void)out;
    return lmrt_fail(LMRT_E_UNSUPPORTED, "lmrt_model_load_builtin: this build has no built-in "
                     "model (meson option builtin_model=false)");
#endif
}

void lmrt_model_free(lmrt_model *model)
{
    if (!model)
        return;
    atomic_store(&model->released, true);
    api_model_unref(model);
}

void lmrt_model_info_init(lmrt_model_info *info, size_t size)
{
    const lmrt_model_info defaults = {.size = sizeof(lmrt_model_info)};
    api_struct_init(info, size, &defaults, sizeof defaults);
}

lmrt_status lmrt_model_get_info(const lmrt_model *model, lmrt_model_info *out)
{
    lmrt_error_clear();
    lmrt_status st;
    if ((st = api_model_live(model, "lmrt_model_get_info")) ||
        (st = api_check_out_struct(out, "lmrt_model_get_info", "out")))
        return st;
    const struct model *m = model->m;
    lmrt_model_info info = {
        .size = sizeof info,
        .architecture = m->architecture,
        .name = m->name,
        .file_type = m->file_type,
        .n_params = m->n_params,
        .n_bytes = m->n_bytes,
        .n_layer = m->hp.n_layer,
        .n_embd = m->hp.n_embd,
        .n_head = m->hp.n_head,
        .n_head_kv = m->hp.n_head_kv,
        .n_ff = m->hp.n_ff,
        .n_ctx_train = m->hp.n_ctx_train,
        .n_vocab = m->hp.n_vocab,
        .gguf_version = (int32_t)m->file->version,
        .n_tensors = (int64_t)m->file->n_tensors,
        .n_metadata = (int64_t)m->file->n_kv,
        .modalities = m->modalities,
    };
    api_struct_out(out, &info, sizeof info);
    return LMRT_OK;
}

void lmrt_tensor_info_init(lmrt_tensor_info *info, size_t size)
{
    const lmrt_tensor_info defaults = {.size = sizeof(lmrt_tensor_info)};
    api_struct_init(info, size, &defaults, sizeof defaults);
}

lmrt_status lmrt_model_tensor_info(const lmrt_model *model, int64_t index, lmrt_tensor_info *out)
{
    lmrt_error_clear();
    lmrt_status st;
    if ((st = api_model_live(model, "lmrt_model_tensor_info")) ||
        (st = api_check_out_struct(out, "lmrt_model_tensor_info", "out")))
        return st;
    const gguf_file *f = model->m->file;
    if (index < 0 || (uint64_t)index >= f->n_tensors)
        return lmrt_fail(LMRT_E_NOT_FOUND, "lmrt_model_tensor_info: index %lld is outside "
                         "0..%llu", (long long)index, (unsigned long long)f->n_tensors);
    const gguf_tensor *t = &f->tensors[index];
    lmrt_tensor_info info = {
        .size = sizeof info,
        .name = t->name,
        .type_name = tensor_type_name(t->type),
        .type = (int32_t)t->type,
        .n_dims = (int32_t)t->n_dims,
        .offset = f->data_offset + t->offset,
        .n_bytes = t->n_bytes,
    };
    for (int d = 0; d < 4; d++)
        info.dims[d] = t->ne[d];
    api_struct_out(out, &info, sizeof info);
    return LMRT_OK;
}
