/* registry.c - the list of backends compiled into this build. Knows nothing about
 * models; model/ and api/ pick a backend through backend_find(). */
#include "backend/backend.h"

#if defined(LMRT_HAVE_CUDA)
extern const backend_vtable cuda_backend;   /* backend/cuda/cuda_backend.c */
#endif

static const backend_vtable *const backends[] = {
    &cpu_backend,
#if defined(LMRT_HAVE_CUDA)
    &cuda_backend,
#endif
};

const backend_vtable *backend_find(uint32_t id)
{
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++)
        if (backends[i]->id == id)
            return backends[i];
    return NULL;
}

uint32_t backend_available_mask(void)
{
    uint32_t mask = 0;
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++)
        if (backends[i]->device_count() > 0)
            mask |= backends[i]->id;
    return mask;
}
