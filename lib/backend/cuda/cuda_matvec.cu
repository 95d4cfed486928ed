/* cuda_matvec.cu - matmuls of up to CUDA_MATVEC_MAX_TOK tokens (generation): a warp
 * per weight row reads the row once for all tokens, 128-bit loads per lane.
 *   quantized weights: x is first quantized to int8 per 32 (cq_quantize32's formula),
 *     then each lane dots 32-element sub-blocks with dp4a (cq_dot32), as ggml's q8_1
 *     dot products do; the scaled integer sums are added in float.
 *   F16 / BF16: 8 elements per lane per step, x in float (float4 loads when aligned).
 *   F32: a warp reads a row's floats coalesced, x likewise.
 * Bound by reading the weights: the target is the device's memory bandwidth. */
#include "backend/cuda/cuda_common.cuh"

#define MV_WARPS 4                       /* rows (warps) per block */
#define MV_THREADS (32 * MV_WARPS)
#define QX_WARPS 8

/* ---- x to int8 ------------------------------------------------------------------------- */

/* Warp g quantizes 32-block g of x [n_tok][n_cols] (token g / nb, block g % nb). */
__global__ void quantize_x_kernel(const float *x, int64_t n_cols, int64_t total, int8_t *xq,
                                  float2 *xds)
{
    const int64_t g = (int64_t)blockIdx.x * QX_WARPS + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (g >= total)
        return;
    const int64_t nb = n_cols / 32, t = g / nb, u = g % nb;
    const int64_t at = t * n_cols + 32 * u + lane;
    const float v = x[at];
    const float amax = warp_max(fabsf(v));
    const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    const int32_t q = cq_quant_elem(v, id);
    const int32_t sum = warp_sum_i(q);
    xq[at] = (int8_t)q;
    if (lane == 0)
        xds[g] = make_float2(d, d * (float)sum);
}

extern "C" lmrt_status cuda_launch_quantize_x(backend_ctx *ctx, const float *x, int32_t n_tok,
                                              int64_t n_cols, void *xq)
{
    const int64_t total = (int64_t)n_tok * (n_cols / 32);
    const unsigned blocks = (unsigned)((total + QX_WARPS - 1) / QX_WARPS);
    int8_t *q = (int8_t *)xq;
    float2 *ds = (float2 *)(q + (size_t)n_tok * (size_t)n_cols);
    quantize_x_kernel<<<blocks, 32 * QX_WARPS, 0, (cudaStream_t)ctx->stream>>>(x, n_cols, total, q,
                                                                              ds);
    return cuda_rt_launched("matmul (quantize x)");
}

/* ---- quantized weights ------------------------------------------------------------------ */

/* y[t][r] for the warp's row r and tokens t < n_tok (<= NT). Lane l takes sub-blocks l,
 * l + 32, ...; each is decoded once and dotted with every token's int8 x. */
template <uint32_t TYPE, int NT>
__global__ void __launch_bounds__(MV_THREADS)
matvec_q_kernel(const uint8_t *w, size_t row_bytes, int64_t n_rows, int64_t n_cols,
                const int8_t *xq, const float2 *xds, int n_tok, float *y)
{
    const int lane = threadIdx.x & 31;
    const int64_t r = (int64_t)blockIdx.x * MV_WARPS + (threadIdx.x >> 5);
    if (r >= n_rows)
        return;   /* the whole warp: r is the same for its lanes */
    const uint8_t *row = w + (size_t)r * row_bytes;
    const int64_t nb = n_cols / 32;
    float acc[NT];
#pragma unroll
    for (int t = 0; t < NT; t++)
        acc[t] = 0.0f;
#pragma unroll 2
    for (int64_t u = lane; u < nb; u += 32) {
        cq_w32 wq;
        cq_load32(TYPE, row, n_cols, u, &wq);
#pragma unroll
        for (int t = 0; t < NT; t++) {
            if (t < n_tok) {
                int32_t xv[8];
                const uint8_t *xp = (const uint8_t *)(xq + (size_t)t * (size_t)n_cols) + 32 * u;
                cq_ld128(xp, (uint32_t *)xv);
                cq_ld128(xp + 16, (uint32_t *)xv + 4);
                const float2 ds = xds[t * nb + u];
                acc[t] += cq_dot32(&wq, xv, ds.x, ds.y);
            }
        }
    }
#pragma unroll
    for (int t = 0; t < NT; t++) {
        const float s = warp_sum(acc[t]);
        if (lane == 0 && t < n_tok)
            y[(size_t)t * (size_t)n_rows + r] = s;
    }
}

template <uint32_t TYPE>
static void launch_q(const cuda_mm_plan *p, cudaStream_t s, const tensor_view *w, const int8_t *q,
                     const float2 *ds, int n_tok, float *y)
{
    const dim3 grid((unsigned)p->blocks);
    const uint8_t *d = (const uint8_t *)w->data;
    switch (p->nt) {
    case 1:
        matvec_q_kernel<TYPE, 1><<<grid, MV_THREADS, 0, s>>>(d, w->row_bytes, w->n_rows, w->n_cols,
                                                             q, ds, n_tok, y);
        break;
    case 2:
        matvec_q_kernel<TYPE, 2><<<grid, MV_THREADS, 0, s>>>(d, w->row_bytes, w->n_rows, w->n_cols,
                                                             q, ds, n_tok, y);
        break;
    case 4:
        matvec_q_kernel<TYPE, 4><<<grid, MV_THREADS, 0, s>>>(d, w->row_bytes, w->n_rows, w->n_cols,
                                                             q, ds, n_tok, y);
        break;
    default:
        matvec_q_kernel<TYPE, 8><<<grid, MV_THREADS, 0, s>>>(d, w->row_bytes, w->n_rows, w->n_cols,
                                                             q, ds, n_tok, y);
        break;
    }
}

extern "C" lmrt_status cuda_launch_matvec_q(backend_ctx *ctx, const tensor_view *w, const void *xq,
                                            int32_t n_tok, const cuda_mm_plan *plan, float *y)
{
    const int8_t *q = (const int8_t *)xq;
    const float2 *ds = (const float2 *)(q + (size_t)n_tok * (size_t)w->n_cols);
    cudaStream_t s = (cudaStream_t)ctx->stream;
    switch (w->type) {
    case GGML_TYPE_Q8_0: launch_q<GGML_TYPE_Q8_0>(plan, s, w, q, ds, n_tok, y); break;
    case GGML_TYPE_Q4_0: launch_q<GGML_TYPE_Q4_0>(plan, s, w, q, ds, n_tok, y); break;
    case GGML_TYPE_Q4_K: launch_q<GGML_TYPE_Q4_K>(plan, s, w, q, ds, n_tok, y); break;
    case GGML_TYPE_Q6_K: launch_q<GGML_TYPE_Q6_K>(plan, s, w, q, ds, n_tok, y); break;
    default:
        return lmrt_fail(LMRT_E_INTERNAL, "cuda backend: matvec_q: type %u", (unsigned)w->type);
    }
    return cuda_rt_launched("matmul (matvec)");
}

/* ---- F32, F16, BF16 weights ----------------------------------------------------------------- */

/* Eight elements from one 128-bit word of F16 or BF16 values. */
template <uint32_t TYPE>
static __device__ __forceinline__ void unpack8(uint4 raw, float f[8])
{
    const uint32_t wd[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
    for (int k = 0; k < 4; k++) {
        if (TYPE == GGML_TYPE_F16) {
            const float2 v = __half22float2(*reinterpret_cast<const __half2 *>(&wd[k]));
            f[2 * k] = v.x;
            f[2 * k + 1] = v.y;
        } else {
            f[2 * k] = __uint_as_float(wd[k] << 16);
            f[2 * k + 1] = __uint_as_float(wd[k] & 0xffff0000u);
        }
    }
}

template <uint32_t TYPE, int NT, bool XVEC>
__global__ void __launch_bounds__(MV_THREADS)
matvec_f_kernel(const uint8_t *w, size_t row_bytes, int64_t n_rows, int64_t n_cols,
                const float *x, int n_tok, float *y)
{
    const int lane = threadIdx.x & 31;
    const int64_t r = (int64_t)blockIdx.x * MV_WARPS + (threadIdx.x >> 5);
    if (r >= n_rows)
        return;
    const uint8_t *row = w + (size_t)r * row_bytes;
    float acc[NT];
#pragma unroll
    for (int t = 0; t < NT; t++)
        acc[t] = 0.0f;
    if (TYPE == GGML_TYPE_F32) {
        const float *wr = (const float *)row;
        for (int64_t c = lane; c < n_cols; c += 32) {
            const float wv = wr[c];
#pragma unroll
            for (int t = 0; t < NT; t++)
                if (t < n_tok)
                    acc[t] += wv * x[(size_t)t * (size_t)n_cols + c];
        }
    } else {
        /* Rows are padded with zeros to 8 elements (cuda_quant.h). */
        const int64_t n8 = (n_cols + 7) / 8;
        for (int64_t c8 = lane; c8 < n8; c8 += 32) {
            float wf[8];
            unpack8<TYPE>(((const uint4 *)row)[c8], wf);
#pragma unroll
            for (int t = 0; t < NT; t++) {
                if (t >= n_tok)
                    continue;
                const float *xt = x + (size_t)t * (size_t)n_cols;
                float xv[8];
                if (XVEC) {
                    const float4 a = ((const float4 *)xt)[2 * c8], b = ((const float4 *)xt)[2 * c8 + 1];
                    xv[0] = a.x, xv[1] = a.y, xv[2] = a.z, xv[3] = a.w;
                    xv[4] = b.x, xv[5] = b.y, xv[6] = b.z, xv[7] = b.w;
                } else {
#pragma unroll
                    for (int e = 0; e < 8; e++)
                        xv[e] = 8 * c8 + e < n_cols ? xt[8 * c8 + e] : 0.0f;
                }
#pragma unroll
                for (int e = 0; e < 8; e++)
                    acc[t] += wf[e] * xv[e];
            }
        }
    }
#pragma unroll
    for (int t = 0; t < NT; t++) {
        const float s = warp_sum(acc[t]);
        if (lane == 0 && t < n_tok)
            y[(size_t)t * (size_t)n_rows + r] = s;
    }
}

template <uint32_t TYPE, int NT>
static void launch_f_nt(const cuda_mm_plan *p, cudaStream_t s, const tensor_view *w,
                        const float *x, int n_tok, float *y)
{
    const dim3 grid((unsigned)p->blocks);
    const uint8_t *d = (const uint8_t *)w->data;
    if (p->x_vec)
        matvec_f_kernel<TYPE, NT, true><<<grid, MV_THREADS, 0, s>>>(d, w->row_bytes, w->n_rows,
                                                                    w->n_cols, x, n_tok, y);
    else
        matvec_f_kernel<TYPE, NT, false><<<grid, MV_THREADS, 0, s>>>(d, w->row_bytes, w->n_rows,
                                                                     w->n_cols, x, n_tok, y);
}

template <uint32_t TYPE>
static void launch_f(const cuda_mm_plan *p, cudaStream_t s, const tensor_view *w, const float *x,
                     int n_tok, float *y)
{
    switch (p->nt) {
    case 1: launch_f_nt<TYPE, 1>(p, s, w, x, n_tok, y); break;
    case 2: launch_f_nt<TYPE, 2>(p, s, w, x, n_tok, y); break;
    case 4: launch_f_nt<TYPE, 4>(p, s, w, x, n_tok, y); break;
    default: launch_f_nt<TYPE, 8>(p, s, w, x, n_tok, y); break;
    }
}

extern "C" lmrt_status cuda_launch_matvec_f(backend_ctx *ctx, const tensor_view *w, const float *x,
                                            int32_t n_tok, const cuda_mm_plan *plan, float *y)
{
    cudaStream_t s = (cudaStream_t)ctx->stream;
    switch (w->type) {
    case GGML_TYPE_F32: launch_f<GGML_TYPE_F32>(plan, s, w, x, n_tok, y); break;
    case GGML_TYPE_F16: launch_f<GGML_TYPE_F16>(plan, s, w, x, n_tok, y); break;
    case GGML_TYPE_BF16: launch_f<GGML_TYPE_BF16>(plan, s, w, x, n_tok, y); break;
    default:
        return lmrt_fail(LMRT_E_INTERNAL, "cuda backend: matvec_f: type %u", (unsigned)w->type);
    }
    return cuda_rt_launched("matmul (matvec)");
}
