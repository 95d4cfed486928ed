/* registry.c - the list of backends compiled into this build. Knows nothing about
 * models; model/ and api/ pick a backend through backend_find(). */
#include "backend/backend.h"

static const backend_vtable *const backends[] = {
    &cpu_backend,
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
