/* cuda_encoder.cu - the ops the image and audio encoders add, on the device: layernorm,
 * add_bias, add_scaled, gelu (erf, tanh, quick) and im2col (attention_full is in
 * cuda_attention.cu). Every element is computed in double from its float inputs and
 * rounded once, as the CPU's encoder ops do, so the two agree to float rounding. All are
 * bound by memory traffic. */
#include "backend/cuda/cuda_common.cuh"

#define ENC_THREADS 256

/* ---- layernorm ---------------------------------------------------------------------------- */

/* Block t: the mean, then the biased variance of x - mean (two passes, double), then
 * y = (x - mean) * rstd * weight (+ bias). y may equal x: the row is read whole before
 * any thread writes (the second block_sum_d ends with a barrier). */
__global__ void layernorm_kernel(const float *x, const float *weight, const float *bias,
                                 int32_t n, float eps, float *y)
{
    __shared__ double red[32];
    const float *xr = x + (size_t)blockIdx.x * (size_t)n;
    float *yr = y + (size_t)blockIdx.x * (size_t)n;
    double sum = 0.0;
    for (int32_t i = threadIdx.x; i < n; i += blockDim.x)
        sum += xr[i];
    const double mean = block_sum_d(sum, red) / n;
    double ss = 0.0;
    for (int32_t i = threadIdx.x; i < n; i += blockDim.x) {
        const double d = xr[i] - mean;
        ss += d * d;
    }
    const double rstd = 1.0 / sqrt(block_sum_d(ss, red) / n + (double)eps);
    for (int32_t i = threadIdx.x; i < n; i += blockDim.x) {
        double v = (xr[i] - mean) * rstd * weight[i];
        if (bias)
            v += bias[i];
        yr[i] = (float)v;
    }
}

extern "C" lmrt_status cuda_launch_layernorm(backend_ctx *ctx, const float *x, const float *weight,
                                             const float *bias, int32_t n, int32_t n_tok,
                                             float eps, float *y)
{
    layernorm_kernel<<<(unsigned)n_tok, ENC_THREADS, 0, (cudaStream_t)ctx->stream>>>(
        x, weight, bias, n, eps, y);
    return cuda_rt_launched("layernorm");
}

/* ---- add_bias, add_scaled, gelu ------------------------------------------------------------ */

__global__ void add_bias_kernel(float *y, const float *b, int32_t n, int64_t total)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x)
        y[i] += b[i % n];
}

__global__ void add_scaled_kernel(float *y, const float *x, float scale, int64_t n)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        y[i] = (float)((double)y[i] + (double)scale * x[i]);
}

/* erf: x/2 erfc(-x/sqrt 2); tanh: x / (1 + e^(-2u)), u = sqrt(2/pi) (x + 0.044715 x^3);
 * quick: x / (1 + e^(-1.702 x)); in double, as cpu_encoder_ops.c writes them. */
__global__ void gelu_kernel(float *x, int64_t n, int32_t kind)
{
    const double c = sqrt(2.0 / 3.14159265358979323846);
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        const double v = x[i];
        double r;
        if (kind == BACKEND_GELU_ERF)
            r = 0.5 * v * erfc(-v * 0.70710678118654752440);
        else if (kind == BACKEND_GELU_TANH) {
            const double u = c * (v + 0.044715 * v * v * v);
            r = v / (1.0 + exp(-2.0 * u));
        }
        else
            r = v / (1.0 + exp(-1.702 * v));
        x[i] = (float)r;
    }
}

extern "C" lmrt_status cuda_launch_add_bias(backend_ctx *ctx, float *y, const float *b, int32_t n,
                                            int32_t n_tok)
{
    const int64_t total = (int64_t)n * n_tok;
    add_bias_kernel<<<grid_for(total, ENC_THREADS), ENC_THREADS, 0, (cudaStream_t)ctx->stream>>>(
        y, b, n, total);
    return cuda_rt_launched("add_bias");
}

extern "C" lmrt_status cuda_launch_add_scaled(backend_ctx *ctx, float *y, const float *x,
                                              float scale, int64_t n)
{
    add_scaled_kernel<<<grid_for(n, ENC_THREADS), ENC_THREADS, 0, (cudaStream_t)ctx->stream>>>(
        y, x, scale, n);
    return cuda_rt_launched("add_scaled");
}

extern "C" lmrt_status cuda_launch_gelu(backend_ctx *ctx, float *x, int64_t n, int32_t kind)
{
    gelu_kernel<<<grid_for(n, ENC_THREADS), ENC_THREADS, 0, (cudaStream_t)ctx->stream>>>(x, n,
                                                                                        kind);
    return cuda_rt_launched("gelu");
}

/* ---- im2col ------------------------------------------------------------------------------ */

/* A thread per output element: position p = (oy, ox), channel c, tap (ky, kx) reads
 * x[oy * stride_h - pad_h + ky][ox * stride_w - pad_w + kx][c], 0 outside. */
__global__ void im2col_kernel(const float *x, int32_t c_in, int32_t h, int32_t w, int32_t kh,
                              int32_t kw, int32_t stride_h, int32_t stride_w, int32_t pad_h,
                              int32_t pad_w, int64_t w_out, int64_t row, int64_t total,
                              float *out)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t p = i / row, r = i % row;
        const int64_t c = r / ((int64_t)kh * kw), ky = r / kw % kh, kx = r % kw;
        const int64_t iy = p / w_out * stride_h - pad_h + ky;
        const int64_t ix = p % w_out * stride_w - pad_w + kx;
        out[i] = iy >= 0 && iy < h && ix >= 0 && ix < w ? x[(iy * w + ix) * c_in + c] : 0.0f;
    }
}

extern "C" lmrt_status cuda_launch_im2col(backend_ctx *ctx, const float *x, int32_t c_in,
                                          int32_t h, int32_t w, int32_t kh, int32_t kw,
                                          int32_t stride_h, int32_t stride_w, int32_t pad_h,
                                          int32_t pad_w, int64_t h_out, int64_t w_out, float *out)
{
    const int64_t row = (int64_t)c_in * kh * kw, total = h_out * w_out * row;
    im2col_kernel<<<grid_for(total, ENC_THREADS), ENC_THREADS, 0, (cudaStream_t)ctx->stream>>>(
        x, c_in, h, w, kh, kw, stride_h, stride_w, pad_h, pad_w, w_out, row, total, out);
    return cuda_rt_launched("im2col");
}
