/* cuda_common.cuh - what the CUDA backend's kernel files share: the includes in the
 * right order (C headers inside extern "C"), warp and block reductions, grid sizing
 * for grid-stride loops. Included by .cu files only. */
#ifndef LMRT_BACKEND_CUDA_COMMON_CUH
#define LMRT_BACKEND_CUDA_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

extern "C" {
#include "backend/cuda/cuda_backend.h"
#include "base/error.h"
}
#include "backend/cuda/cuda_quant.h"

#define CUDA_FULL_MASK 0xffffffffu

static __device__ __forceinline__ float warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(CUDA_FULL_MASK, v, o);
    return v;
}

static __device__ __forceinline__ double warp_sum_d(double v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(CUDA_FULL_MASK, v, o);
    return v;
}

static __device__ __forceinline__ int warp_sum_i(int v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(CUDA_FULL_MASK, v, o);
    return v;
}

static __device__ __forceinline__ float warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(CUDA_FULL_MASK, v, o));
    return v;
}

/* The sum of every thread's v over a block of up to 1024 threads (a multiple of 32),
 * returned to all of them. `red` holds 32 doubles of shared memory; the block must
 * not be using it already (a __syncthreads() ends the function). */
static __device__ __forceinline__ double block_sum_d(double v, double *red)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
    v = warp_sum_d(v);
    if (lane == 0)
        red[warp] = v;
    __syncthreads();
    double s = 0.0;
    for (int i = 0; i < n_warps; i++)
        s += red[i];
    __syncthreads();
    return s;
}

/* Blocks of `threads` for a grid-stride loop over n items (capped: the loop does the rest). */
static inline unsigned grid_for(int64_t n, int threads)
{
    int64_t b = (n + threads - 1) / threads;
    return (unsigned)(b < 1 ? 1 : b > (1 << 20) ? (1 << 20) : b);
}

#endif
