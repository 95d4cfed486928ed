/* cpu_backend.c - the CPU backend's vtable: one device, the host. Kernels are
 * chosen from cpu_features at run time (cpu_ops.c); the ops live in cpu_ops.c,
 * cpu_matmul.c, cpu_attention.c and cpu_encoder_ops.c. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "backend/cpu/cpu_features.h"
#include "backend/cpu/cpu_ops.h"
#include "base/error.h"

static int32_t cpu_device_count(void)
{
    return 1;
}

/* The "model name" line of /proc/cpuinfo, or "CPU" when there is none. */
static void cpu_model_name(char *buf, size_t cap)
{
    snprintf(buf, cap, "CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) != 0)
            continue;
        const char *colon = strchr(line, ':');
        if (!colon)
            break;
        colon++;
        while (*colon == ' ' || *colon == '\t')
            colon++;
        snprintf(buf, cap, "%s", colon);
        buf[strcspn(buf, "\n")] = '\0';
        break;
    }
    fclose(f);
}

static lmrt_status cpu_device_info(int32_t index, lmrt_device_info *out)
{
    if (index != 0)
        return lmrt_fail(LMRT_E_NOT_FOUND, "cpu backend: no device %d (it has one, index 0)",
                         (int)index);
    const cpu_features *f = cpu_features_get();
    long page = sysconf(_SC_PAGESIZE);
    long pages = sysconf(_SC_PHYS_PAGES);
    long avail = sysconf(_SC_AVPHYS_PAGES);
    out->backend = LMRT_BACKEND_CPU;
    out->index = 0;
    cpu_model_name(out->name, sizeof out->name);
    out->total_memory = page > 0 && pages > 0 ? (uint64_t)page * (uint64_t)pages : 0;
    out->free_memory = page > 0 && avail > 0 ? (uint64_t)page * (uint64_t)avail : 0;
    snprintf(out->description, sizeof out->description, "%d cores, %s kernels", f->n_cores,
             cpu_features_describe(f));
    return LMRT_OK;
}

const backend_vtable cpu_backend = {
    .size = sizeof(backend_vtable),
    .name = "cpu",
    .id = LMRT_BACKEND_CPU,
    .device_count = cpu_device_count,
    .device_info = cpu_device_info,
    .ctx_create = cpu_ctx_create,
    .ctx_free = cpu_ctx_free,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_upload,
    .download = cpu_download,
    .bind_weight = cpu_bind_weight,
    .unbind_weight = cpu_unbind_weight,
    .supports_type = cpu_supports_type,
    .get_rows = cpu_get_rows,
    .matmul = cpu_matmul,
    .rmsnorm = cpu_rmsnorm,
    .rope = cpu_rope,
    .attention = cpu_attention,
    .silu_mul = cpu_silu_mul,
    .add = cpu_add,
    .layernorm = cpu_layernorm,
    .add_bias = cpu_add_bias,
    .add_scaled = cpu_add_scaled,
    .gelu = cpu_gelu,
    .attention_full = cpu_attention_full,
    .im2col = cpu_im2col,
    .matmul_n = cpu_matmul_n,
};
