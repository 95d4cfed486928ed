/* cuda_attention.cu - grouped-query attention on the device, flash style: causal over
 * the KV cache (attention) and non-causal over n_kv keys (attention_full), one kernel.
 * A block takes CUDA_ATT_ROWS query rows of one kv head (its heads' queries, token-major),
 * streams the keys in tiles of 32 through shared memory and keeps, per row, the running
 * max, the sum of exponentials and the weighted values (online softmax), so memory does
 * not grow with the context. Lane j scores key j of the tile; lanes hold the output's
 * dimensions d = lane + 32 c. When there are too few blocks for the device (generation),
 * the keys are split over blocks (cuda_plan_attention) and a second kernel merges the
 * partial softmaxes. Scores and exponentials are float; bound by reading K and V once
 * per block. */
#include "backend/cuda/cuda_common.cuh"

#define ATT_THREADS 128                  /* 4 warps of 4 rows each: CUDA_ATT_ROWS */
#define ATT_ROWS_PER_WARP 4

typedef struct att_args {
    const float *q, *k, *v;      /* q: [n_tok][n_head][hd]; k, v: [keys][kv_stride] */
    float *out;                  /* [n_tok][n_head][hd] */
    float *part_acc;             /* [n_split][n_tok * n_head][hd], unnormalized */
    float2 *part_ml;             /* [n_split][n_tok * n_head]: running max, sum */
    int32_t n_tok, n_past, n_head, n_head_kv, head_dim, kv_stride;
    int32_t n_keys;              /* non-causal: every row's key count */
    int32_t n_q, group, tiles_per_split, n_split;
    float scale;
    int32_t causal;
} att_args;

template <int CH>
__global__ void __launch_bounds__(ATT_THREADS) attention_kernel(att_args a)
{
    extern __shared__ float smem[];
    const int hd = a.head_dim, ks = hd | 1;      /* odd K stride: lanes hit distinct banks */
    float *Qs = smem;                            /* [CUDA_ATT_ROWS][hd] */
    float *Ks = Qs + CUDA_ATT_ROWS * hd;         /* [32][ks] */
    float *Vs = Ks + CUDA_ATT_TILE * ks;         /* [32][hd] */
    const int g = blockIdx.y, split = blockIdx.z;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int row0 = blockIdx.x * CUDA_ATT_ROWS;
    const int rows_here = min(CUDA_ATT_ROWS, a.n_q - row0);

    for (int i = tid; i < CUDA_ATT_ROWS * hd; i += ATT_THREADS) {
        const int rr = i / hd, d = i % hd, r = row0 + rr;
        float val = 0.0f;
        if (rr < rows_here) {
            const int t = r / a.group, h = g * a.group + r % a.group;
            val = a.q[((size_t)t * a.n_head + h) * hd + d];
        }
        Qs[i] = val;
    }
    /* Keys this block needs: up to the last row's position (causal), or all. */
    const int limit = a.causal ? a.n_past + (row0 + rows_here - 1) / a.group + 1 : a.n_keys;
    const int n_tiles = (limit + CUDA_ATT_TILE - 1) / CUDA_ATT_TILE;
    const int tile_lo = split * a.tiles_per_split;
    const int tile_hi = min(tile_lo + a.tiles_per_split, n_tiles);

    float m[ATT_ROWS_PER_WARP], l[ATT_ROWS_PER_WARP], acc[ATT_ROWS_PER_WARP][CH];
    int row_lim[ATT_ROWS_PER_WARP];
#pragma unroll
    for (int i = 0; i < ATT_ROWS_PER_WARP; i++) {
        const int r = row0 + warp * ATT_ROWS_PER_WARP + i;
        row_lim[i] = a.causal ? a.n_past + r / a.group + 1 : a.n_keys;
        m[i] = -INFINITY;
        l[i] = 0.0f;
#pragma unroll
        for (int c = 0; c < CH; c++)
            acc[i][c] = 0.0f;
    }
    const float *kb = a.k + (size_t)g * hd, *vb = a.v + (size_t)g * hd;

    for (int tile = tile_lo; tile < tile_hi; tile++) {
        const int j0 = tile * CUDA_ATT_TILE;
        __syncthreads();   /* Q is in place; the previous tile has been used */
        for (int i = tid; i < CUDA_ATT_TILE * hd; i += ATT_THREADS) {
            const int kj = i / hd, d = i % hd, key = j0 + kj;
            float kv = 0.0f, vv = 0.0f;
            if (key < limit) {
                const size_t off = (size_t)key * a.kv_stride + d;
                kv = kb[off];
                vv = vb[off];
            }
            Ks[kj * ks + d] = kv;
            Vs[kj * hd + d] = vv;
        }
        __syncthreads();
#pragma unroll
        for (int i = 0; i < ATT_ROWS_PER_WARP; i++) {
            const int rr = warp * ATT_ROWS_PER_WARP + i;
            if (rr >= rows_here)
                continue;   /* the same for the whole warp */
            const float *qr = Qs + rr * hd, *kr = Ks + lane * ks;
            float s = -INFINITY;
            if (j0 + lane < row_lim[i]) {
                /* four chains, so that the multiply-adds do not wait on each other */
                float d0 = 0.0f, d1 = 0.0f, d2 = 0.0f, d3 = 0.0f;
                int d = 0;
                for (; d + 4 <= hd; d += 4) {
                    d0 += qr[d] * kr[d];
                    d1 += qr[d + 1] * kr[d + 1];
                    d2 += qr[d + 2] * kr[d + 2];
                    d3 += qr[d + 3] * kr[d + 3];
                }
                for (; d < hd; d++)
                    d0 += qr[d] * kr[d];
                s = ((d0 + d1) + (d2 + d3)) * a.scale;
            }
            const float tmax = warp_max(s);
            if (tmax == -INFINITY)
                continue;   /* every key of the tile is in this row's future */
            const float m_new = fmaxf(m[i], tmax);
            const float corr = expf(m[i] - m_new);   /* 0 while m was -inf */
            const float p = expf(s - m_new);         /* 0 for masked keys */
            l[i] = l[i] * corr + warp_sum(p);
#pragma unroll
            for (int c = 0; c < CH; c++)
                acc[i][c] *= corr;
            for (int jj = 0; jj < CUDA_ATT_TILE; jj++) {
                const float pj = __shfl_sync(CUDA_FULL_MASK, p, jj);
                const float *vr = Vs + jj * hd;
#pragma unroll
                for (int c = 0; c < CH; c++) {
                    const int d = lane + 32 * c;
                    if (d < hd)
                        acc[i][c] += pj * vr[d];
                }
            }
            m[i] = m_new;
        }
    }

    const size_t n_rows_all = (size_t)a.n_tok * (size_t)a.n_head;
#pragma unroll
    for (int i = 0; i < ATT_ROWS_PER_WARP; i++) {
        const int rr = warp * ATT_ROWS_PER_WARP + i;
        if (rr >= rows_here)
            continue;
        const int r = row0 + rr, t = r / a.group, h = g * a.group + r % a.group;
        if (a.n_split == 1) {
            /* Key 0 is every row's: l > 0. */
            const float inv = 1.0f / l[i];
            float *o = a.out + ((size_t)t * a.n_head + h) * hd;
#pragma unroll
            for (int c = 0; c < CH; c++) {
                const int d = lane + 32 * c;
                if (d < hd)
                    o[d] = acc[i][c] * inv;
            }
        } else {
            const size_t pi = (size_t)split * n_rows_all + (size_t)g * a.n_q + r;
#pragma unroll
            for (int c = 0; c < CH; c++) {
                const int d = lane + 32 * c;
                if (d < hd)
                    a.part_acc[pi * hd + d] = acc[i][c];
            }
            if (lane == 0)
                a.part_ml[pi] = make_float2(m[i], l[i]);
        }
    }
}

/* Warp per query row: out = sum_s acc_s e^(m_s - M) / sum_s l_s e^(m_s - M), over the
 * splits that saw a key (l_s > 0). */
__global__ void attention_combine_kernel(att_args a)
{
    const int64_t n_rows_all = (int64_t)a.n_tok * a.n_head;
    const int64_t rg = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31, hd = a.head_dim;
    if (rg >= n_rows_all)
        return;
    const int g = (int)(rg / a.n_q), r = (int)(rg % a.n_q);
    const int t = r / a.group, h = g * a.group + r % a.group;
    float mx = -INFINITY;
    for (int s = 0; s < a.n_split; s++) {
        const float2 ml = a.part_ml[(size_t)s * n_rows_all + rg];
        if (ml.y > 0.0f)
            mx = fmaxf(mx, ml.x);
    }
    float sum = 0.0f;
    for (int s = 0; s < a.n_split; s++) {
        const float2 ml = a.part_ml[(size_t)s * n_rows_all + rg];
        if (ml.y > 0.0f)
            sum += ml.y * expf(ml.x - mx);
    }
    const float inv = 1.0f / sum;
    float *o = a.out + ((size_t)t * a.n_head + h) * hd;
    for (int d = lane; d < hd; d += 32) {
        float v = 0.0f;
        for (int s = 0; s < a.n_split; s++) {
            const size_t pi = (size_t)s * n_rows_all + rg;
            const float2 ml = a.part_ml[pi];
            if (ml.y > 0.0f)
                v += a.part_acc[pi * hd + d] * expf(ml.x - mx);
        }
        o[d] = v * inv;
    }
}

extern "C" lmrt_status cuda_attention_setup(backend_ctx *ctx)
{
    /* Each variant may use the shared memory of its largest head_dim, where the device
     * allows it (cuda_plan_attention refuses what does not fit). */
    const void *fns[3] = {(const void *)attention_kernel<2>, (const void *)attention_kernel<4>,
                          (const void *)attention_kernel<8>};
    const int max_hd[3] = {64, 128, 256};
    for (int i = 0; i < 3; i++) {
        size_t bytes = cuda_att_smem_bytes(max_hd[i]);
        if (bytes > ctx->smem_optin)
            bytes = ctx->smem_optin;
        cudaError_t e = cudaFuncSetAttribute(fns[i], cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             (int)bytes);
        if (e != cudaSuccess) {
            (void)cudaGetLastError();
            return lmrt_fail(LMRT_E_BACKEND, "cuda backend: attention setup: %s",
                             cudaGetErrorString(e));
        }
    }
    return LMRT_OK;
}

extern "C" lmrt_status cuda_launch_attention(backend_ctx *ctx, const attention_params *p,
                                             int32_t n_kv, bool causal, const cuda_att_plan *plan,
                                             const float *q, const float *k, const float *v,
                                             float *out, void *partial)
{
    att_args a;
    a.q = q;
    a.k = k;
    a.v = v;
    a.out = out;
    const size_t n_rows_all = (size_t)p->n_tok * (size_t)p->n_head;
    a.part_acc = (float *)partial;
    /* The pairs start at an even float (8-byte aligned); partial_bytes has room for it. */
    const size_t acc_floats = (size_t)plan->n_split * n_rows_all * (size_t)p->head_dim;
    a.part_ml = plan->n_split > 1 ? (float2 *)(a.part_acc + (acc_floats + 1) / 2 * 2) : NULL;
    a.n_tok = p->n_tok;
    a.n_past = causal ? p->n_past : 0;
    a.n_head = p->n_head;
    a.n_head_kv = p->n_head_kv;
    a.head_dim = p->head_dim;
    a.kv_stride = p->kv_stride;
    a.n_keys = causal ? plan->n_keys : n_kv;
    a.n_q = plan->n_q;
    a.group = p->n_head / p->n_head_kv;
    a.tiles_per_split = plan->tiles_per_split;
    a.n_split = plan->n_split;
    a.scale = p->scale;
    a.causal = causal;
    cudaStream_t s = (cudaStream_t)ctx->stream;
    const dim3 grid((unsigned)plan->q_blocks, (unsigned)p->n_head_kv, (unsigned)plan->n_split);
    if (plan->chunks == 2)
        attention_kernel<2><<<grid, ATT_THREADS, plan->smem_bytes, s>>>(a);
    else if (plan->chunks == 4)
        attention_kernel<4><<<grid, ATT_THREADS, plan->smem_bytes, s>>>(a);
    else
        attention_kernel<8><<<grid, ATT_THREADS, plan->smem_bytes, s>>>(a);
    if (plan->n_split > 1) {
        const unsigned blocks = (unsigned)((n_rows_all + 7) / 8);
        attention_combine_kernel<<<blocks, 256, 0, s>>>(a);
    }
    return cuda_rt_launched(causal ? "attention" : "attention_full");
}
