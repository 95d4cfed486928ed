/* cuda_norm.cu - the decoder's small ops on the device: get_rows (dequantizes rows of
 * every held type), rmsnorm, rope, silu_mul and add. Each kernel computes an output
 * element the way the CPU's reference kernel does (rmsnorm's sum of squares and rope's
 * angles in double), so results match the CPU to float rounding. All are bound by
 * memory traffic, which is one read and one write of the activations. */
#include "backend/cuda/cuda_common.cuh"

#define NORM_THREADS 256
#define ELEM_THREADS 256

/* ---- get_rows ------------------------------------------------------------------------- */

/* Block i writes row ids[i] of the table, dequantized: a thread per element for the
 * plain types, per 32-element sub-block for the quantized ones. */
__global__ void get_rows_kernel(const uint8_t *data, size_t row_bytes, uint32_t type,
                                int64_t n_cols, cuda_ids inl, const int32_t *ids_dev, float *out)
{
    const int64_t i = blockIdx.x;
    const int32_t id = ids_dev ? ids_dev[i] : inl.v[i];
    const uint8_t *row = data + (size_t)id * row_bytes;
    float *o = out + i * n_cols;
    switch (type) {
    case GGML_TYPE_F32:
        for (int64_t c = threadIdx.x; c < n_cols; c += blockDim.x)
            o[c] = ((const float *)row)[c];
        break;
    case GGML_TYPE_F16:
        for (int64_t c = threadIdx.x; c < n_cols; c += blockDim.x)
            o[c] = __half2float(((const __half *)row)[c]);
        break;
    case GGML_TYPE_BF16:
        for (int64_t c = threadIdx.x; c < n_cols; c += blockDim.x)
            o[c] = cq_bf16_bits(((const uint16_t *)row)[c]);
        break;
    default:
        for (int64_t u = threadIdx.x; u < n_cols / 32; u += blockDim.x) {
            cq_w32 w;
            cq_load32(type, row, n_cols, u, &w);
#pragma unroll
            for (int e = 0; e < 32; e++)
                o[32 * u + e] = cq_value(&w, e);
        }
        break;
    }
}

extern "C" lmrt_status cuda_launch_get_rows(backend_ctx *ctx, const tensor_view *table,
                                            const cuda_ids *inline_ids, const int32_t *ids_dev,
                                            int32_t n, float *out)
{
    get_rows_kernel<<<(unsigned)n, NORM_THREADS, 0, (cudaStream_t)ctx->stream>>>(
        (const uint8_t *)table->data, table->row_bytes, table->type, table->n_cols, *inline_ids,
        ids_dev, out);
    return cuda_rt_launched("get_rows");
}

/* ---- rmsnorm ---------------------------------------------------------------------------- */

/* Block t normalizes row t: the sum of squares in double (as the CPU reference does),
 * then y = x * scale * weight in float. y may equal x: each element is read and written
 * by the same thread, after the sum. */
__global__ void rmsnorm_kernel(const float *x, const float *weight, int32_t n, float eps,
                               float *y)
{
    __shared__ double red[32];
    const float *xr = x + (size_t)blockIdx.x * (size_t)n;
    float *yr = y + (size_t)blockIdx.x * (size_t)n;
    double ss = 0.0;
    for (int32_t i = threadIdx.x; i < n; i += blockDim.x)
        ss += (double)xr[i] * xr[i];
    ss = block_sum_d(ss, red);
    const float scale = (float)(1.0 / sqrt(ss / n + (double)eps));
    for (int32_t i = threadIdx.x; i < n; i += blockDim.x)
        yr[i] = xr[i] * scale * weight[i];
}

extern "C" lmrt_status cuda_launch_rmsnorm(backend_ctx *ctx, const float *x, const float *weight,
                                           int32_t n, int32_t n_tok, float eps, float *y)
{
    rmsnorm_kernel<<<(unsigned)n_tok, NORM_THREADS, 0, (cudaStream_t)ctx->stream>>>(x, weight, n,
                                                                                   eps, y);
    return cuda_rt_launched("rmsnorm");
}

/* ---- rope ------------------------------------------------------------------------------- */

/* Thread (t, i) turns pair i of every head of token t by pos[t] * base^(-2i/n_rot) /
 * freq_factors[i]: angle, cosine, sine and rotation in double, rounded once, exactly the
 * CPU reference's formula. */
__global__ void rope_kernel(float *x, int32_t n_tok, int32_t n_head, int32_t head_dim,
                            int32_t n_rot, cuda_ids inl, const int32_t *pos_dev, bool run,
                            float freq_base, const float *freq_factors)
{
    const int32_t half = n_rot / 2;
    const int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (int64_t)n_tok * half)
        return;
    const int32_t t = (int32_t)(idx / half), i = (int32_t)(idx % half);
    const int32_t pos = pos_dev ? pos_dev[t] : run ? inl.v[0] + t : inl.v[t];
    double theta = (double)pos * pow((double)freq_base, -2.0 * i / n_rot);
    if (freq_factors)
        theta /= (double)freq_factors[i];
    double s, c;
    sincos(theta, &s, &c);
    float *xt = x + (size_t)t * (size_t)n_head * (size_t)head_dim + 2 * i;
    for (int32_t h = 0; h < n_head; h++) {
        float *p = xt + (size_t)h * head_dim;
        const double x0 = p[0], x1 = p[1];
        p[0] = (float)(x0 * c - x1 * s);
        p[1] = (float)(x0 * s + x1 * c);
    }
}

extern "C" lmrt_status cuda_launch_rope(backend_ctx *ctx, float *x, int32_t n_tok, int32_t n_head,
                                        int32_t head_dim, int32_t n_rot, const cuda_ids *inline_pos,
                                        const int32_t *pos_dev, bool run, float freq_base,
                                        const float *freq_factors)
{
    const int64_t n = (int64_t)n_tok * (n_rot / 2);
    const unsigned blocks = (unsigned)((n + ELEM_THREADS - 1) / ELEM_THREADS);
    rope_kernel<<<blocks, ELEM_THREADS, 0, (cudaStream_t)ctx->stream>>>(
        x, n_tok, n_head, head_dim, n_rot, *inline_pos, pos_dev, run, freq_base, freq_factors);
    return cuda_rt_launched("rope");
}

/* ---- silu_mul, add ------------------------------------------------------------------------ */

/* gate = silu(gate) * up, in float as the CPU computes it. */
__global__ void silu_mul_kernel(float *gate, const float *up, int64_t n)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        const float g = gate[i];
        gate[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

__global__ void add_kernel(float *y, const float *x, int64_t n)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        y[i] += x[i];
}

extern "C" lmrt_status cuda_launch_silu_mul(backend_ctx *ctx, float *gate, const float *up,
                                            int64_t n)
{
    silu_mul_kernel<<<grid_for(n, ELEM_THREADS), ELEM_THREADS, 0, (cudaStream_t)ctx->stream>>>(
        gate, up, n);
    return cuda_rt_launched("silu_mul");
}

extern "C" lmrt_status cuda_launch_add(backend_ctx *ctx, float *y, const float *x, int64_t n)
{
    add_kernel<<<grid_for(n, ELEM_THREADS), ELEM_THREADS, 0, (cudaStream_t)ctx->stream>>>(y, x, n);
    return cuda_rt_launched("add");
}
