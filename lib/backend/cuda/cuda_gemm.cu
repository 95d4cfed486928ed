/* cuda_gemm.cu - matmuls of prompt batches (more than CUDA_MATVEC_MAX_TOK tokens).
 *   Tensor cores (F16, BF16 and the quantized types): x is converted once to f16 in rows
 *   padded to 64; a block computes BN tokens x BM weight rows with
 *   8 warps of WMMA 16x16x16 tiles, FP32 accumulation. Per K step of 64 the block copies
 *   its x tile and dequantizes its weight tile (cq_load32 / cq_value, the reference's
 *   values rounded to f16) into shared memory. Bound by the tensor cores for large
 *   batches; the weight tile is read once per BN tokens.
 *   F32 weights: 64x64 tiles on the CUDA cores in FP32 (exact to float rounding). */
#include <mma.h>

#include "backend/cuda/cuda_common.cuh"

using namespace nvcuda;

#define GEMM_THREADS 256
#define GEMM_BK 64
#define GEMM_LDS (GEMM_BK + 8)           /* shared row stride in elements: 144 bytes */

/* ---- x to f16 / bf16 -------------------------------------------------------------------- */

__global__ void convert_x_kernel(const float *x, int64_t n_cols, int64_t stride, int64_t total,
                                 __half *out)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t t = i / stride, c = i % stride;
        out[i] = __float2half_rn(c < n_cols ? x[t * n_cols + c] : 0.0f);
    }
}

extern "C" lmrt_status cuda_launch_convert_x(backend_ctx *ctx, const float *x, int32_t n_tok,
                                             int64_t n_cols, int64_t stride, void *xh)
{
    const int64_t total = (int64_t)n_tok * stride;
    convert_x_kernel<<<grid_for(total, 256), 256, 0, (cudaStream_t)ctx->stream>>>(
        x, n_cols, stride, total, (__half *)xh);
    return cuda_rt_launched("matmul (convert x)");
}

/* ---- tensor-core GEMM -------------------------------------------------------------------- */

/* Columns k .. k+31 of weight row r into dst (32 halves, 16-byte aligned); zeros for a
 * row past the end and for columns past n_cols. F16 rows are copied as they are (their
 * padding to 8 columns is zero); BF16 values and quantized sub-blocks are decoded to
 * float, then rounded to f16 (BF16 -> f16 is exact for |w| in 2^-14 .. 65504). */
template <uint32_t TYPE>
static __device__ __forceinline__ void load_w32(const uint8_t *w, size_t row_bytes,
                                                int64_t n_rows, int64_t n_cols, int64_t r,
                                                int64_t k, __half *dst)
{
    uint4 *d4 = (uint4 *)dst;
    const uint4 zero = make_uint4(0, 0, 0, 0);
    if (r >= n_rows || k >= n_cols) {
#pragma unroll
        for (int i = 0; i < 4; i++)
            d4[i] = zero;
        return;
    }
    const uint8_t *row = w + (size_t)r * row_bytes;
    if (TYPE == GGML_TYPE_F16 || TYPE == GGML_TYPE_BF16) {
        const int64_t avail = (n_cols + 7) / 8 * 8 - k;   /* a multiple of 8 */
        const uint4 *s4 = (const uint4 *)(row + 2 * k);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const uint4 v = 8 * i < avail ? s4[i] : zero;
            if (TYPE == GGML_TYPE_F16) {
                d4[i] = v;
            } else {
                const uint32_t wd[4] = {v.x, v.y, v.z, v.w};
                uint32_t hw[4];
#pragma unroll
                for (int j = 0; j < 4; j++) {
                    const __half2 h = __floats2half2_rn(__uint_as_float(wd[j] << 16),
                                                        __uint_as_float(wd[j] & 0xffff0000u));
                    hw[j] = *reinterpret_cast<const uint32_t *>(&h);
                }
                d4[i] = make_uint4(hw[0], hw[1], hw[2], hw[3]);
            }
        }
    } else {
        cq_w32 q;
        cq_load32(TYPE, row, n_cols, k / 32, &q);
        __align__(16) __half tmp[32];
#pragma unroll
        for (int e = 0; e < 32; e++)
            tmp[e] = __float2half_rn(cq_value(&q, e));
#pragma unroll
        for (int i = 0; i < 4; i++)
            d4[i] = ((const uint4 *)tmp)[i];
    }
}

/* y[t][r] = sum_k x[t][k] w[r][k] for the block's BN tokens and BM rows. Warps: WM along
 * the rows (32 each), WN along the tokens (TN each); a warp holds TN/16 x 2 accumulator
 * tiles. C = A B with A = x tile [tokens][k] (row-major) and B = w tile seen as [k][rows]
 * (w's rows are B's columns: col-major with the shared row stride). */
template <uint32_t TYPE, int BM, int BN>
__global__ void __launch_bounds__(GEMM_THREADS)
gemm_tc_kernel(const uint8_t *w, size_t row_bytes, int64_t n_rows, int64_t n_cols,
               const __half *xh, int64_t x_stride, int n_tok, float *y)
{
    typedef __half T;
    constexpr int WM = BM / 32, WN = 8 / WM, TN = BN / WN, FN = TN / 16;
    static_assert(WM * WN == 8 && TN % 16 == 0, "tile shape");
    __shared__ __align__(128) T As[BN * GEMM_LDS];
    __shared__ __align__(128) T Bs[BM * GEMM_LDS];
    __shared__ __align__(128) float stage[8][256];

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int wm = warp % WM, wn = warp / WM;
    const int64_t r0 = (int64_t)blockIdx.x * BM, t0 = (int64_t)blockIdx.y * BN;

    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[FN][2];
#pragma unroll
    for (int j = 0; j < FN; j++)
#pragma unroll
        for (int i = 0; i < 2; i++)
            wmma::fill_fragment(acc[j][i], 0.0f);

    const int64_t k_tiles = x_stride / GEMM_BK;
    for (int64_t kt = 0; kt < k_tiles; kt++) {
        __syncthreads();   /* the previous tile has been read by every warp */
        for (int i = tid; i < BN * 8; i += GEMM_THREADS) {
            const int tok = i >> 3, c = i & 7;
            uint4 v = make_uint4(0, 0, 0, 0);
            if (t0 + tok < n_tok)
                v = *(const uint4 *)(xh + (size_t)(t0 + tok) * (size_t)x_stride +
                                     (size_t)kt * GEMM_BK + 8 * c);
            *(uint4 *)(As + tok * GEMM_LDS + 8 * c) = v;
        }
        for (int i = tid; i < BM * 2; i += GEMM_THREADS) {
            const int rr = i >> 1, part = i & 1;
            load_w32<TYPE>(w, row_bytes, n_rows, n_cols, r0 + rr, kt * GEMM_BK + 32 * part,
                              Bs + rr * GEMM_LDS + 32 * part);
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < GEMM_BK / 16; kk++) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a[FN];
            wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> b[2];
#pragma unroll
            for (int j = 0; j < FN; j++)
                wmma::load_matrix_sync(a[j], As + (wn * TN + 16 * j) * GEMM_LDS + 16 * kk,
                                       GEMM_LDS);
#pragma unroll
            for (int i = 0; i < 2; i++)
                wmma::load_matrix_sync(b[i], Bs + (wm * 32 + 16 * i) * GEMM_LDS + 16 * kk,
                                       GEMM_LDS);
#pragma unroll
            for (int j = 0; j < FN; j++)
#pragma unroll
                for (int i = 0; i < 2; i++)
                    wmma::mma_sync(acc[j][i], a[j], b[i], acc[j][i]);
        }
    }

    /* Each accumulator tile [16 tokens][16 rows] through the warp's staging area. */
    float *st = stage[warp];
#pragma unroll
    for (int j = 0; j < FN; j++)
#pragma unroll
        for (int i = 0; i < 2; i++) {
            wmma::store_matrix_sync(st, acc[j][i], 16, wmma::mem_row_major);
            __syncwarp();
            for (int e = lane; e < 256; e += 32) {
                const int64_t tok = t0 + wn * TN + 16 * j + (e >> 4);
                const int64_t row = r0 + wm * 32 + 16 * i + (e & 15);
                if (tok < n_tok && row < n_rows)
                    y[(size_t)tok * (size_t)n_rows + row] = st[e];
            }
            __syncwarp();
        }
}

template <uint32_t TYPE>
static void launch_tc(const cuda_mm_plan *p, cudaStream_t s, const tensor_view *w,
                      const void *xh, int n_tok, float *y)
{
    typedef __half T;
    const dim3 grid((unsigned)((w->n_rows + p->bm - 1) / p->bm),
                    (unsigned)((n_tok + p->bn - 1) / p->bn));
    const uint8_t *d = (const uint8_t *)w->data;
    const T *x = (const T *)xh;
    if (p->bm == 128 && p->bn == 128)
        gemm_tc_kernel<TYPE, 128, 128><<<grid, GEMM_THREADS, 0, s>>>(
            d, w->row_bytes, w->n_rows, w->n_cols, x, p->x_stride, n_tok, y);
    else if (p->bm == 128)
        gemm_tc_kernel<TYPE, 128, 64><<<grid, GEMM_THREADS, 0, s>>>(
            d, w->row_bytes, w->n_rows, w->n_cols, x, p->x_stride, n_tok, y);
    else
        gemm_tc_kernel<TYPE, 64, 64><<<grid, GEMM_THREADS, 0, s>>>(
            d, w->row_bytes, w->n_rows, w->n_cols, x, p->x_stride, n_tok, y);
}

extern "C" lmrt_status cuda_launch_gemm_tc(backend_ctx *ctx, const tensor_view *w, const void *xh,
                                           int32_t n_tok, const cuda_mm_plan *plan, float *y)
{
    cudaStream_t s = (cudaStream_t)ctx->stream;
    switch (w->type) {
    case GGML_TYPE_F16: launch_tc<GGML_TYPE_F16>(plan, s, w, xh, n_tok, y); break;
    case GGML_TYPE_BF16: launch_tc<GGML_TYPE_BF16>(plan, s, w, xh, n_tok, y); break;
    case GGML_TYPE_Q8_0: launch_tc<GGML_TYPE_Q8_0>(plan, s, w, xh, n_tok, y); break;
    case GGML_TYPE_Q4_0: launch_tc<GGML_TYPE_Q4_0>(plan, s, w, xh, n_tok, y); break;
    case GGML_TYPE_Q4_K: launch_tc<GGML_TYPE_Q4_K>(plan, s, w, xh, n_tok, y); break;
    case GGML_TYPE_Q6_K: launch_tc<GGML_TYPE_Q6_K>(plan, s, w, xh, n_tok, y); break;
    default:
        return lmrt_fail(LMRT_E_INTERNAL, "cuda backend: gemm_tc: type %u", (unsigned)w->type);
    }
    return cuda_rt_launched("matmul (tensor-core gemm)");
}

/* ---- F32 GEMM ------------------------------------------------------------------------------ */

#define F32_T 64                          /* rows and tokens per block */
#define F32_BK 16

/* Thread (tr, tt) computes rows r0 + 4 tr + i and tokens t0 + 4 tt + j (i, j < 4); the
 * K loop walks tiles of 16 columns of w and x staged [k][row] / [k][token]. */
__global__ void __launch_bounds__(256)
gemm_f32_kernel(const float *w, int64_t n_rows, int64_t n_cols, const float *x, int n_tok,
                float *y)
{
    __shared__ float Ws[F32_BK][F32_T + 1];
    __shared__ float Xs[F32_BK][F32_T + 1];
    const int tid = threadIdx.x, tr = tid % 16, tt = tid / 16;
    const int64_t r0 = (int64_t)blockIdx.x * F32_T, t0 = (int64_t)blockIdx.y * F32_T;
    float acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
            acc[i][j] = 0.0f;
    for (int64_t k0 = 0; k0 < n_cols; k0 += F32_BK) {
        __syncthreads();
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const int idx = tid + 256 * e, rr = idx / F32_BK, k = idx % F32_BK;
            const int64_t r = r0 + rr, t = t0 + rr, kc = k0 + k;
            Ws[k][rr] = r < n_rows && kc < n_cols ? w[(size_t)r * (size_t)n_cols + kc] : 0.0f;
            Xs[k][rr] = t < n_tok && kc < n_cols ? x[(size_t)t * (size_t)n_cols + kc] : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (int k = 0; k < F32_BK; k++) {
            float a[4], b[4];
#pragma unroll
            for (int i = 0; i < 4; i++) {
                a[i] = Ws[k][4 * tr + i];
                b[i] = Xs[k][4 * tt + i];
            }
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++)
                    acc[i][j] += a[i] * b[j];
        }
    }
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const int64_t r = r0 + 4 * tr + i, t = t0 + 4 * tt + j;
            if (r < n_rows && t < n_tok)
                y[(size_t)t * (size_t)n_rows + r] = acc[i][j];
        }
}

extern "C" lmrt_status cuda_launch_gemm_f32(backend_ctx *ctx, const tensor_view *w, const float *x,
                                            int32_t n_tok, float *y)
{
    const dim3 grid((unsigned)((w->n_rows + F32_T - 1) / F32_T),
                    (unsigned)((n_tok + F32_T - 1) / F32_T));
    gemm_f32_kernel<<<grid, 256, 0, (cudaStream_t)ctx->stream>>>((const float *)w->data,
                                                                 w->n_rows, w->n_cols, x, n_tok, y);
    return cuda_rt_launched("matmul (f32 gemm)");
}
