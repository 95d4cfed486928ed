/* cuda_device.cu - the CUDA backend's runtime side: device discovery, the context's
 * stream, device memory (with the fit check before every cudaMalloc), host<->device
 * copies and the weight upload through pinned staging memory. Every CUDA error becomes
 * an lmrt_status with CUDA's text; nothing here aborts or prints. cudart is linked
 * statically: without a driver, cudaGetDeviceCount fails and the backend has 0 devices. */
#include <cuda_runtime.h>
#include <stdio.h>
#include <string.h>

extern "C" {
#include "backend/cuda/cuda_backend.h"
#include "base/error.h"
}

/* Pinned staging for weight uploads: rows are repacked into it, then copied up. */
#define STAGING_BYTES ((size_t)16 << 20)

static lmrt_status cuda_status(cudaError_t e, const char *op)
{
    if (e == cudaSuccess)
        return LMRT_OK;
    (void)cudaGetLastError();   /* clear a non-sticky error so that later calls see their own */
    return lmrt_fail(e == cudaErrorMemoryAllocation ? LMRT_E_NOMEM : LMRT_E_BACKEND,
                     "cuda backend: %s: %s (%s)", op, cudaGetErrorString(e), cudaGetErrorName(e));
}

static cudaStream_t stream_of(const backend_ctx *ctx)
{
    return (cudaStream_t)ctx->stream;
}

extern "C" lmrt_status cuda_rt_launched(const char *op)
{
    return cuda_status(cudaGetLastError(), op);
}

/* ---- devices ----------------------------------------------------------------------- */

extern "C" int32_t cuda_rt_device_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;   /* no driver, no device, or a driver too old: no devices */
    }
    return n > 0 ? (int32_t)n : 0;
}

extern "C" lmrt_status cuda_rt_device_info(int32_t index, lmrt_device_info *out)
{
    const int32_t n = cuda_rt_device_count();
    if (index < 0 || index >= n)
        return lmrt_fail(LMRT_E_NOT_FOUND, "cuda backend: no device %d (it has %d)", (int)index,
                         (int)n);
    cudaDeviceProp prop;
    lmrt_status st = cuda_status(cudaGetDeviceProperties(&prop, (int)index), "device properties");
    if (st)
        return st;
    /* Free memory needs a context on the device: made current here, then restored. */
    int prev = 0;
    size_t free_b = 0, total_b = prop.totalGlobalMem;
    if ((st = cuda_status(cudaGetDevice(&prev), "cudaGetDevice")) ||
        (st = cuda_status(cudaSetDevice((int)index), "cudaSetDevice")))
        return st;
    st = cuda_status(cudaMemGetInfo(&free_b, &total_b), "cudaMemGetInfo");
    (void)cudaSetDevice(prev);
    if (st)
        return st;
    int runtime = 0, driver = 0;
    (void)cudaRuntimeGetVersion(&runtime);
    (void)cudaDriverGetVersion(&driver);
    out->backend = LMRT_BACKEND_CUDA;
    out->index = index;
    /* cudaDeviceProp's 256 bytes of name into our 128 */
    memcpy(out->name, prop.name, sizeof out->name - 1);
    out->name[sizeof out->name - 1] = '\0';
    out->total_memory = (uint64_t)total_b;
    out->free_memory = (uint64_t)free_b;
    snprintf(out->description, sizeof out->description,
             "sm_%d%d, %d SMs, CUDA runtime %d.%d, driver %d.%d", prop.major, prop.minor,
             prop.multiProcessorCount, runtime / 1000, runtime % 1000 / 10, driver / 1000,
             driver % 1000 / 10);
    return LMRT_OK;
}

/* ---- context ------------------------------------------------------------------------- */

extern "C" lmrt_status cuda_rt_use(backend_ctx *ctx, const char *op)
{
    return cuda_status(cudaSetDevice((int)ctx->device), op);
}

extern "C" lmrt_status cuda_rt_ctx_open(backend_ctx *ctx)
{
    cudaDeviceProp prop;
    lmrt_status st;
    if ((st = cuda_status(cudaGetDeviceProperties(&prop, (int)ctx->device), "device properties")))
        return st;
    if (prop.major < 8)
        return lmrt_fail(LMRT_E_UNSUPPORTED, "cuda backend: device %d (%s) is sm_%d%d; lmrt's "
                         "kernels need sm_80 or newer", (int)ctx->device, prop.name, prop.major,
                         prop.minor);
    if ((st = cuda_rt_use(ctx, "cudaSetDevice")))
        return st;
    cudaStream_t s;
    if ((st = cuda_status(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking),
                          "cudaStreamCreate")))
        return st;
    ctx->stream = s;
    ctx->n_sm = prop.multiProcessorCount;
    ctx->cc = prop.major * 10 + prop.minor;
    ctx->smem_optin = prop.sharedMemPerBlockOptin;
    return LMRT_OK;
}

extern "C" void cuda_rt_ctx_close(backend_ctx *ctx)
{
    if (!ctx->stream)
        return;
    (void)cudaSetDevice((int)ctx->device);
    (void)cudaStreamSynchronize(stream_of(ctx));
    (void)cudaStreamDestroy(stream_of(ctx));
    if (ctx->staging)
        (void)cudaFreeHost(ctx->staging);
    ctx->staging = NULL;
    ctx->stream = NULL;
    (void)cudaGetLastError();
}

/* ---- memory -------------------------------------------------------------------------- */

extern "C" lmrt_status cuda_rt_alloc(backend_ctx *ctx, size_t bytes, bool zero, const char *what,
                                     void **out)
{
    size_t free_b = 0, total_b = 0;
    lmrt_status st = cuda_status(cudaMemGetInfo(&free_b, &total_b), "cudaMemGetInfo");
    if (st)
        return st;
    if (!cuda_plan_fits(bytes, free_b, total_b))
        return lmrt_fail(LMRT_E_NOMEM, "cuda backend: %s needs %.1f MiB on device %d, which "
                         "has %.1f MiB free of %.1f MiB and keeps %.1f MiB in reserve", what,
                         (double)bytes / 1048576.0, (int)ctx->device, (double)free_b / 1048576.0,
                         (double)total_b / 1048576.0,
                         (double)cuda_plan_reserve(total_b) / 1048576.0);
    void *p = NULL;
    if ((st = cuda_status(cudaMalloc(&p, bytes ? bytes : 1), what)))
        return st;
    if (zero && bytes && (st = cuda_status(cudaMemsetAsync(p, 0, bytes, stream_of(ctx)), what))) {
        (void)cudaFree(p);
        return st;
    }
    *out = p;
    return LMRT_OK;
}

extern "C" void cuda_rt_free(backend_ctx *ctx, void *p)
{
    (void)ctx;
    if (p) {
        (void)cudaFree(p);   /* waits for the device's work that may still read it */
        (void)cudaGetLastError();
    }
}

extern "C" lmrt_status cuda_rt_scratch(backend_ctx *ctx, cuda_buf *b, size_t bytes, const char *op)
{
    if (b->p && b->bytes >= bytes)
        return LMRT_OK;
    /* Grow by half again, so that slowly rising sizes do not reallocate every time. */
    size_t want = bytes + bytes / 2;
    if (want < bytes)
        want = bytes;
    cuda_rt_free(ctx, b->p);
    b->p = NULL;
    b->bytes = 0;
    char what[96];
    snprintf(what, sizeof what, "%s scratch", op);
    lmrt_status st = cuda_rt_alloc(ctx, want, false, what, &b->p);
    if (st)
        return st;
    b->bytes = want;
    return LMRT_OK;
}

extern "C" void cuda_rt_scratch_free(backend_ctx *ctx, cuda_buf *b)
{
    cuda_rt_free(ctx, b->p);
    b->p = NULL;
    b->bytes = 0;
}

extern "C" lmrt_status cuda_rt_upload(backend_ctx *ctx, void *dst, const void *src, size_t bytes,
                                      const char *op)
{
    if (!bytes)
        return LMRT_OK;
    /* From pageable memory the call returns once `src` is staged: the caller may reuse it. */
    return cuda_status(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_of(ctx)),
                       op);
}

extern "C" lmrt_status cuda_rt_download(backend_ctx *ctx, void *dst, const void *src, size_t bytes)
{
    lmrt_status st;
    if (bytes && (st = cuda_status(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost,
                                                   stream_of(ctx)), "download")))
        return st;
    /* Also where errors of earlier kernels (an illegal address, say) come to light. */
    return cuda_status(cudaStreamSynchronize(stream_of(ctx)), "download (stream)");
}

extern "C" lmrt_status cuda_rt_upload_weight(backend_ctx *ctx, const tensor_view *host, void *dev,
                                             size_t dev_row_bytes)
{
    lmrt_status st;
    if (!ctx->staging) {
        void *p = NULL;
        if ((st = cuda_status(cudaMallocHost(&p, STAGING_BYTES), "pinned staging memory")))
            return st;
        ctx->staging = (uint8_t *)p;
        ctx->staging_bytes = STAGING_BYTES;
    }
    /* Rows per chunk; a row larger than the staging buffer goes up on its own from a
     * pageable copy (never the case for real models: 16 MiB is 4M F32 columns). */
    const int64_t per = (int64_t)(ctx->staging_bytes / (dev_row_bytes ? dev_row_bytes : 1));
    const uint8_t *src = (const uint8_t *)host->data;
    uint8_t *dst = (uint8_t *)dev;
    if (per < 1) {
        if (host->row_bytes != dev_row_bytes)
            return lmrt_fail(LMRT_E_UNSUPPORTED, "cuda backend: tensor '%s': a row of %zu bytes "
                             "is over the %zu-byte staging buffer", host->name ? host->name : "?",
                             dev_row_bytes, ctx->staging_bytes);
        for (int64_t r = 0; r < host->n_rows; r++)
            if ((st = cuda_status(cudaMemcpy(dst + (size_t)r * dev_row_bytes,
                                             src + (size_t)r * host->row_bytes, dev_row_bytes,
                                             cudaMemcpyHostToDevice), "weight upload")))
                return st;
        return LMRT_OK;
    }
    for (int64_t r0 = 0; r0 < host->n_rows; r0 += per) {
        const int64_t n = host->n_rows - r0 < per ? host->n_rows - r0 : per;
        /* The previous chunk's copy has finished (cudaMemcpy from pinned memory returns
         * when done), so the staging buffer is free. */
        for (int64_t r = 0; r < n; r++)
            cuda_repack_row(host->type, host->n_cols, src + (size_t)(r0 + r) * host->row_bytes,
                            ctx->staging + (size_t)r * dev_row_bytes);
        if ((st = cuda_status(cudaMemcpy(dst + (size_t)r0 * dev_row_bytes, ctx->staging,
                                         (size_t)n * dev_row_bytes, cudaMemcpyHostToDevice),
                              "weight upload")))
            return st;
    }
    return LMRT_OK;
}

/* ---- bandwidth ------------------------------------------------------------------------ */

extern "C" lmrt_status cuda_rt_copy_bandwidth(int32_t device, size_t bytes, double *out_bytes_per_s)
{
    lmrt_status st;
    void *a = NULL, *b = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    float best_ms = 0.0f;
    if ((st = cuda_status(cudaSetDevice((int)device), "cudaSetDevice")) ||
        (st = cuda_status(cudaMalloc(&a, bytes), "bandwidth buffer")) ||
        (st = cuda_status(cudaMalloc(&b, bytes), "bandwidth buffer")) ||
        (st = cuda_status(cudaMemset(a, 1, bytes), "cudaMemset")) ||
        (st = cuda_status(cudaEventCreate(&e0), "cudaEventCreate")) ||
        (st = cuda_status(cudaEventCreate(&e1), "cudaEventCreate")))
        goto done;
    /* The best of 10 copies after a warm-up: each reads and writes `bytes`. */
    for (int i = 0; i <= 10; i++) {
        float ms = 0.0f;
        if ((st = cuda_status(cudaEventRecord(e0, 0), "cudaEventRecord")) ||
            (st = cuda_status(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, 0),
                              "device copy")) ||
            (st = cuda_status(cudaEventRecord(e1, 0), "cudaEventRecord")) ||
            (st = cuda_status(cudaEventSynchronize(e1), "cudaEventSynchronize")) ||
            (st = cuda_status(cudaEventElapsedTime(&ms, e0, e1), "cudaEventElapsedTime")))
            goto done;
        if (i > 0 && (best_ms == 0.0f || ms < best_ms))
            best_ms = ms;
    }
    *out_bytes_per_s = best_ms > 0.0f ? 2.0 * (double)bytes / ((double)best_ms * 1e-3) : 0.0;
done:
    if (e0)
        (void)cudaEventDestroy(e0);
    if (e1)
        (void)cudaEventDestroy(e1);
    (void)cudaFree(a);
    (void)cudaFree(b);
    (void)cudaGetLastError();
    return st;
}
