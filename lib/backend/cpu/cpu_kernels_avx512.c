/* cpu_kernels_avx512.c - the AVX-512 kernel table (CPU_LEVEL_AVX512 with VNNI) and its
 * grouped one-pass attention and 16-lane silu_mul. Built with -mavx512f/bw/vl/vnni -ffp-contract=off,
 * reached only through cpu_kernels_for() after cpu_features found AVX-512 F/BW/VL and
 * VNNI. Slots with nothing to gain from 512-bit vectors (quantizers, K-quant matmuls,
 * rmsnorm, rope, add) are the AVX2 kernels. */
#include <immintrin.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "backend/cpu/cpu_avx512_math.h"
#include "backend/cpu/cpu_simd.h"
#include "tensor/types.h"


#define ATT_MAX_DIM 256   /* larger heads use the scalar kernel */

/* The queries of tokens [t0, t1) x heads [h0, h1) (one kv head, at most CPU_ATT_GROUP)
 * in one pass over the cache, 16 keys at a time: the block's keys are transposed once
 * (dims x keys), then each query's 16 scores are head_dim FMAs of a broadcast q[d] on
 * 4 accumulators (d mod 4), and its output takes 16 FMAs of head_dim/16 vectors; online
 * softmax per query (running max m and sum l; the output so far rescaled by
 * e^(m_old - m_new) when m grows). A query stops at its own last key, and every step
 * it takes depends only on its q and the keys and values it sees, so a query gets the
 * same bits in any group, alone included. Bound at head_dim 64 by ~9 ops per query per
 * key (4 + 4 FMAs and the exp); the transposes (~16 ops per key) and the K/V reads are
 * shared by the group, which is the point: one query at a time, reading K and V from L2
 * per query, ran at ~17 ns per query-key. Measured (32/8 heads of 64, 128 queries after
 * 384 positions, one thread of the shared 2-core Xeon): 7.6 ns per query-key; the
 * scalar kernel 57 ns, the AVX2 one 27 ns. */
/* The 16 keys' unscaled scores for one query: four chains over d mod 4, summed as
 * (s0 + s1) + (s2 + s3) - the steps that fix each score's bits. kt: [head_dim][16]. */
static inline __attribute__((always_inline)) __m512 qk_dots4_one(const float *qi, const float *kt,
                                                               int32_t hd)
{
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    int32_t d = 0;
    for (; d + 4 <= hd; d += 4) {
        s0 = _mm512_fmadd_ps(_mm512_set1_ps(qi[d]), _mm512_load_ps(kt + (size_t)d * 16), s0);
        s1 = _mm512_fmadd_ps(_mm512_set1_ps(qi[d + 1]), _mm512_load_ps(kt + (size_t)(d + 1) * 16), s1);
        s2 = _mm512_fmadd_ps(_mm512_set1_ps(qi[d + 2]), _mm512_load_ps(kt + (size_t)(d + 2) * 16), s2);
        s3 = _mm512_fmadd_ps(_mm512_set1_ps(qi[d + 3]), _mm512_load_ps(kt + (size_t)(d + 3) * 16), s3);
    }
    if (d < hd)
        s0 = _mm512_fmadd_ps(_mm512_set1_ps(qi[d]), _mm512_load_ps(kt + (size_t)d * 16), s0);
    if (d + 1 < hd)
        s1 = _mm512_fmadd_ps(_mm512_set1_ps(qi[d + 1]), _mm512_load_ps(kt + (size_t)(d + 1) * 16), s1);
    if (d + 2 < hd)
        s2 = _mm512_fmadd_ps(_mm512_set1_ps(qi[d + 2]), _mm512_load_ps(kt + (size_t)(d + 2) * 16), s2);
    return _mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3));
}

/* qk_dots4_one for four queries at once (the same steps for each), each kt row loaded
 * once for the four. */
static inline __attribute__((always_inline)) void qk_dots4(const float *const *q, const float *kt,
                                                         int32_t hd, __m512 out[4])
{
    __m512 s[4][4];
    CPU_UNROLL
    for (int j = 0; j < 4; j++)
        s[j][0] = s[j][1] = s[j][2] = s[j][3] = _mm512_setzero_ps();
    int32_t d = 0;
    for (; d + 4 <= hd; d += 4) {
        CPU_UNROLL
        for (int c = 0; c < 4; c++) {
            const __m512 kv = _mm512_load_ps(kt + (size_t)(d + c) * 16);
            CPU_UNROLL
            for (int j = 0; j < 4; j++)
                s[j][c] = _mm512_fmadd_ps(_mm512_set1_ps(q[j][d + c]), kv, s[j][c]);
        }
    }
    CPU_UNROLL
    for (int c = 0; c < 3; c++) {
        if (d + c < hd) {
            const __m512 kv = _mm512_load_ps(kt + (size_t)(d + c) * 16);
            CPU_UNROLL
            for (int j = 0; j < 4; j++)
                s[j][c] = _mm512_fmadd_ps(_mm512_set1_ps(q[j][d + c]), kv, s[j][c]);
        }
    }
    CPU_UNROLL
    for (int j = 0; j < 4; j++)
        out[j] = _mm512_add_ps(_mm512_add_ps(s[j][0], s[j][1]), _mm512_add_ps(s[j][2], s[j][3]));
}

/* acc[c] += the values of the block's cnt keys (rows vrow[0..cnt-1]) weighted by pe,
 * for the nv 16-float chunks c of a head. Per chunk: even keys on one accumulator,
 * odd keys on another, in key order, their sum added once - the steps that fix each
 * output's bits. Chunks go four at a time with the keys inside, so that each key's
 * weight is broadcast once per four chunks and the row addresses come from vrow. */
static inline __attribute__((always_inline)) void pv_accumulate(float *acc, const float *pe,
                                                              const float *const *vrow, int cnt,
                                                              int nv, __mmask16 tail)
{
    for (int c0 = 0; c0 < nv; c0 += 4) {
        const int ncv = nv - c0 < 4 ? nv - c0 : 4;
        __mmask16 mk[4];
        __m512 a0[4], a1[4];
        CPU_UNROLL
        for (int k = 0; k < 4; k++) {
            mk[k] = c0 + k == nv - 1 ? tail : 0xffff;
            a0[k] = _mm512_setzero_ps();
            a1[k] = _mm512_setzero_ps();
        }
        int jj = 0;
        for (; jj + 2 <= cnt; jj += 2) {
            const __m512 p0 = _mm512_set1_ps(pe[jj]), p1 = _mm512_set1_ps(pe[jj + 1]);
            const float *v0 = vrow[jj] + 16 * c0, *v1 = vrow[jj + 1] + 16 * c0;
            CPU_UNROLL
            for (int k = 0; k < 4; k++) {
                if (k < ncv) {
                    a0[k] = _mm512_fmadd_ps(p0, _mm512_maskz_loadu_ps(mk[k], v0 + 16 * k), a0[k]);
                    a1[k] = _mm512_fmadd_ps(p1, _mm512_maskz_loadu_ps(mk[k], v1 + 16 * k), a1[k]);
                }
            }
        }
        if (jj < cnt) {
            const __m512 p0 = _mm512_set1_ps(pe[jj]);
            const float *v0 = vrow[jj] + 16 * c0;
            CPU_UNROLL
            for (int k = 0; k < 4; k++)
                if (k < ncv)
                    a0[k] = _mm512_fmadd_ps(p0, _mm512_maskz_loadu_ps(mk[k], v0 + 16 * k), a0[k]);
        }
        CPU_UNROLL
        for (int k = 0; k < 4; k++)
            if (k < ncv)
                _mm512_storeu_ps(acc + 16 * (c0 + k),
                                 _mm512_add_ps(_mm512_loadu_ps(acc + 16 * (c0 + k)),
                                               _mm512_add_ps(a0[k], a1[k])));
    }
}

/* One query's online-softmax step over a block: its cnt scores (raw, unscaled) scaled
 * and exponentiated against the new running max into pe (lanes past cnt: 0), the
 * output so far (acc, nv chunks) and the sum l rescaled when the max grows. */
static inline __attribute__((always_inline)) void softmax_step(__m512 raw, float scale, int cnt,
                                                             float *m, float *l, float *acc,
                                                             int nv, float *pe)
{
    __m512 s = _mm512_mul_ps(raw, _mm512_set1_ps(scale));
    s = _mm512_mask_mov_ps(_mm512_set1_ps(-INFINITY), (__mmask16)((1u << cnt) - 1), s);
    const float m_new = fmaxf(*m, _mm512_reduce_max_ps(s));
    const __m512 e = avx512_exp_ps(_mm512_sub_ps(s, _mm512_set1_ps(m_new)));
    if (m_new > *m) {
        const float corr = _mm512_cvtss_f32(avx512_exp_ps(_mm512_set1_ps(*m - m_new)));
        *l *= corr;
        for (int c = 0; c < nv; c++)
            _mm512_storeu_ps(acc + 16 * c,
                             _mm512_mul_ps(_mm512_loadu_ps(acc + 16 * c), _mm512_set1_ps(corr)));
        *m = m_new;
    }
    *l += _mm512_reduce_add_ps(e);
    _mm512_storeu_ps(pe, e);
}

/* pv_accumulate for four queries with the same keys (acc: their [4][nv * 16] outputs,
 * pe: their weights): each value vector is loaded once for the four. Chunks go two at
 * a time (4 queries x 2 chunks x even/odd keys = 16 accumulators); each query's steps
 * per chunk are pv_accumulate's, so the bits are the same. */
static inline __attribute__((always_inline)) void pv_accumulate4(float *acc, const float (*pe)[16],
                                                               const float *const *vrow, int cnt,
                                                               int nv, __mmask16 tail)
{
    for (int c0 = 0; c0 < nv; c0 += 2) {
        const int ncv = nv - c0 < 2 ? nv - c0 : 2;
        __mmask16 mk[2];
        __m512 a0[4][2], a1[4][2];
        CPU_UNROLL
        for (int k = 0; k < 2; k++) {
            mk[k] = c0 + k == nv - 1 ? tail : 0xffff;
            CPU_UNROLL
            for (int u = 0; u < 4; u++)
                a0[u][k] = a1[u][k] = _mm512_setzero_ps();
        }
        int jj = 0;
        for (; jj + 2 <= cnt; jj += 2) {
            const float *v0 = vrow[jj] + 16 * c0, *v1 = vrow[jj + 1] + 16 * c0;
            CPU_UNROLL
            for (int k = 0; k < 2; k++) {
                if (k < ncv) {
                    const __m512 w0 = _mm512_maskz_loadu_ps(mk[k], v0 + 16 * k);
                    const __m512 w1 = _mm512_maskz_loadu_ps(mk[k], v1 + 16 * k);
                    CPU_UNROLL
                    for (int u = 0; u < 4; u++) {
                        a0[u][k] = _mm512_fmadd_ps(_mm512_set1_ps(pe[u][jj]), w0, a0[u][k]);
                        a1[u][k] = _mm512_fmadd_ps(_mm512_set1_ps(pe[u][jj + 1]), w1, a1[u][k]);
                    }
                }
            }
        }
        if (jj < cnt) {
            const float *v0 = vrow[jj] + 16 * c0;
            CPU_UNROLL
            for (int k = 0; k < 2; k++)
                if (k < ncv) {
                    const __m512 w0 = _mm512_maskz_loadu_ps(mk[k], v0 + 16 * k);
                    CPU_UNROLL
                    for (int u = 0; u < 4; u++)
                        a0[u][k] = _mm512_fmadd_ps(_mm512_set1_ps(pe[u][jj]), w0, a0[u][k]);
                }
        }
        CPU_UNROLL
        for (int u = 0; u < 4; u++)
            CPU_UNROLL
            for (int k = 0; k < 2; k++)
                if (k < ncv) {
                    float *o = acc + (size_t)u * nv * 16 + 16 * (c0 + k);
                    _mm512_storeu_ps(o, _mm512_add_ps(_mm512_loadu_ps(o),
                                                      _mm512_add_ps(a0[u][k], a1[u][k])));
                }
    }
}

static void attention_group_avx512(const attention_params *p, const float *q, const float *k,
                                   const float *v, float *out, int32_t t0, int32_t t1,
                                   int32_t h0, int32_t h1, float *scratch)
{
    const int32_t hd = p->head_dim;
    if (hd > ATT_MAX_DIM) {
        for (int32_t t = t0; t < t1; t++)
            for (int32_t h = h0; h < h1; h++)
                cpu_attention_head_scalar(p, q, k, v, out, t, h, scratch);
        return;
    }
    const int32_t kv_head = h0 / (p->n_head / p->n_head_kv);
    const float *kb = k + (size_t)kv_head * (size_t)hd, *vb = v + (size_t)kv_head * (size_t)hd;
    const int nv = (hd + 15) / 16, nh = h1 - h0, nq = (t1 - t0) * nh;
    const __mmask16 tail = (__mmask16)((1u << (hd - 16 * (nv - 1))) - 1);
    float *acc = scratch;                          /* [nq][nv * 16] */
    float *kt = acc + (size_t)nq * nv * 16;        /* [nv * 16][16]: dims x keys */
    kt = (float *)(((uintptr_t)kt + 63) & ~(uintptr_t)63);
    float m[CPU_ATT_GROUP], l[CPU_ATT_GROUP];
    int64_t n_kv[CPU_ATT_GROUP];
    const float *qp[CPU_ATT_GROUP];
    for (int i = 0; i < nq; i++) {
        const int32_t t = t0 + i / nh, h = h0 + i % nh;
        m[i] = -INFINITY;
        l[i] = 0.0f;
        n_kv[i] = (int64_t)p->n_past + t + 1;
        qp[i] = q + ((size_t)t * (size_t)p->n_head + (size_t)h) * (size_t)hd;
        for (int c = 0; c < nv; c++)
            _mm512_storeu_ps(acc + ((size_t)i * nv + c) * 16, _mm512_setzero_ps());
    }
    const int64_t max_kv = (int64_t)p->n_past + t1;
    for (int64_t j0 = 0; j0 < max_kv; j0 += 16) {
        const int64_t last = (max_kv - j0 < 16 ? max_kv - j0 : 16) - 1;
        cpu_prefetch_kv_rows(kb, vb, j0 + 16, j0 + 32 < max_kv ? j0 + 32 : max_kv,
                             p->kv_stride, (size_t)hd * sizeof(float));   /* the next block */
        for (int c = 0; c < nv; c++) {
            __m512 r[16];
            CPU_UNROLL
            for (int i = 0; i < 16; i++)   /* rows past the last key repeat it */
                r[i] = _mm512_maskz_loadu_ps(c == nv - 1 ? tail : 0xffff,
                                             kb + (size_t)(j0 + (i < last ? i : last)) *
                                                      (size_t)p->kv_stride + 16 * c);
            avx512_transpose16_ps(r);
            CPU_UNROLL
            for (int d = 0; d < 16; d++)
                _mm512_store_ps(kt + (size_t)(16 * c + d) * 16, r[d]);
        }
        const float *vrow[16];
        for (int i = 0; i < 16; i++)   /* rows past the last key are never read */
            vrow[i] = vb + (size_t)(j0 + (i < last ? i : last)) * (size_t)p->kv_stride;
        for (int i = 0; i < nq;) {
            /* Queries of one token (heads h0..) see the same keys: four at a time, they
             * share each kt load and each V load (the loads, not the FMAs, bound these
             * parts). n_kv does not fall with i, so equal ends mean four equal counts. */
            if (i % 4 == 0 && i + 4 <= nq && n_kv[i + 3] == n_kv[i] && j0 < n_kv[i]) {
                const int cnt = n_kv[i] - j0 < 16 ? (int)(n_kv[i] - j0) : 16;
                __m512 raw[4];
                _Alignas(64) float pe[4][16];
                qk_dots4(qp + i, kt, hd, raw);
                CPU_UNROLL
                for (int u = 0; u < 4; u++)
                    softmax_step(raw[u], p->scale, cnt, &m[i + u], &l[i + u],
                                 acc + (size_t)(i + u) * nv * 16, nv, pe[u]);
                pv_accumulate4(acc + (size_t)i * nv * 16, pe, vrow, cnt, nv, tail);
                i += 4;
                continue;
            }
            if (j0 < n_kv[i]) {
                const int cnt = n_kv[i] - j0 < 16 ? (int)(n_kv[i] - j0) : 16;
                _Alignas(64) float pe[16];
                softmax_step(qk_dots4_one(qp[i], kt, hd), p->scale, cnt, &m[i], &l[i],
                             acc + (size_t)i * nv * 16, nv, pe);
                pv_accumulate(acc + (size_t)i * nv * 16, pe, vrow, cnt, nv, tail);
            }
            i++;
        }
    }
    for (int i = 0; i < nq; i++) {
        const int32_t t = t0 + i / nh, h = h0 + i % nh;
        float *oh = out + ((size_t)t * (size_t)p->n_head + (size_t)h) * (size_t)hd;
        const __m512 inv = _mm512_set1_ps(1.0f / l[i]);
        for (int c = 0; c < nv; c++)
            _mm512_mask_storeu_ps(oh + 16 * c, c == nv - 1 ? tail : 0xffff,
                                  _mm512_mul_ps(_mm512_loadu_ps(acc + ((size_t)i * nv + c) * 16), inv));
    }
}

/* One query: the group kernel with a group of one (the same bits, by its contract), its
 * buffers on the stack since this slot's scratch is only n_past + t + 1 floats. */
static void attention_avx512(const attention_params *p, const float *q, const float *k,
                             const float *v, float *out, int32_t t, int32_t h, float *scratch)
{
    if (p->head_dim > ATT_MAX_DIM) {
        cpu_attention_head_scalar(p, q, k, v, out, t, h, scratch);
        return;
    }
    _Alignas(64) float buf[ATT_MAX_DIM + 16 * ATT_MAX_DIM + 16];
    attention_group_avx512(p, q, k, v, out, t, t + 1, h, h + 1, buf);
}

/* gate = gate / (1 + e^-gate) * up, 16 lanes; the tail masked, so every element is
 * computed the same way wherever the op's chunks fall. e^-g = inf gives -0. */
static void silu_mul_avx512(float *gate, const float *up, int64_t n)
{
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 mk = n - i >= 16 ? 0xffff : (__mmask16)((1u << (n - i)) - 1);
        __m512 g = _mm512_maskz_loadu_ps(mk, gate + i), u = _mm512_maskz_loadu_ps(mk, up + i);
        __m512 e = avx512_exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), g));
        _mm512_mask_storeu_ps(gate + i, mk, _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(one, e)), u));
    }
}

#define AVX512_TABLE(table_name, q8_rows, q8_scratch, q8_packed)                        \
    {                                                                                   \
        .name = table_name,                                                             \
        .matmul = {                                                                     \
            [GGML_TYPE_F32] = {cpu_matmul_f_avx512, GGML_TYPE_F32},                     \
            [GGML_TYPE_F16] = {cpu_matmul_f_avx512, GGML_TYPE_F32},                     \
            [GGML_TYPE_BF16] = {cpu_matmul_f_avx512, GGML_TYPE_F32},                    \
            [GGML_TYPE_Q8_0] = {q8_rows, GGML_TYPE_Q8_0},                               \
            [GGML_TYPE_Q4_0] = {q8_rows, GGML_TYPE_Q8_0},                               \
            [GGML_TYPE_Q4_K] = {cpu_matmul_k_avx2, GGML_TYPE_Q8_K},                     \
            [GGML_TYPE_Q6_K] = {cpu_matmul_k_avx2, GGML_TYPE_Q8_K},                     \
        },                                                                              \
        .matmul_scratch = {                                                             \
            [GGML_TYPE_Q8_0] = q8_scratch,                                              \
            [GGML_TYPE_Q4_0] = q8_scratch,                                              \
            [GGML_TYPE_Q4_K] = cpu_matmul_k_avx2_scratch,                               \
            [GGML_TYPE_Q6_K] = cpu_matmul_k_avx2_scratch,                               \
        },                                                                              \
        .quantize_row = {                                                               \
            [GGML_TYPE_Q8_0] = cpu_quantize_q8_0_avx2,                                  \
            [GGML_TYPE_Q8_K] = cpu_quantize_q8_K_avx2,                                  \
        },                                                                              \
        .matmul_packed = {                                                              \
            [GGML_TYPE_Q8_0] = q8_packed,                                               \
            [GGML_TYPE_Q4_0] = q8_packed,                                               \
            [GGML_TYPE_Q4_K] = cpu_matmul_packed_k_avx512,                              \
            [GGML_TYPE_Q6_K] = cpu_matmul_packed_k_avx512,                              \
        },                                                                              \
        .rmsnorm = cpu_rmsnorm_avx2,                                                    \
        .rope = cpu_rope_avx2,                                                          \
        .attention = attention_avx512,                                                  \
        .silu_mul = silu_mul_avx512,                                                    \
        .add = cpu_add_avx2,                                                            \
        .attention_group = attention_group_avx512,                                      \
    }

const cpu_kernels cpu_kernels_avx512 = AVX512_TABLE("avx512", cpu_matmul_q8_avx512,
                                                   cpu_matmul_q8_avx512_scratch,
                                                   cpu_matmul_packed_avx512);

#if defined(LMRT_HAVE_AMX_KERNELS)
const cpu_kernels cpu_kernels_avx512_amx = AVX512_TABLE("avx512-amx", cpu_matmul_q8_amx,
                                                       cpu_matmul_q8_amx_scratch,
                                                       cpu_matmul_packed_amx);
#endif
