/* cpu_simd.h - the x86 SIMD kernel tables (AVX2, AVX-512, AVX-512 + AMX) and the
 * numerics they share. Only files built with the matching -m flags define these;
 * cpu_ops.c lists them in kernels_by_level[] when meson built them
 * (LMRT_HAVE_AVX2_KERNELS, LMRT_HAVE_AVX512_KERNELS, LMRT_HAVE_AMX_KERNELS).
 *
 * What every SIMD level computes, so that levels and tile shapes agree bit for bit:
 *
 *  F32, F16, BF16 (vec_type F32): exactly dot_f32(dequantized row, x) - element i
 *    into float lane i % 8 by a rounded multiply then a rounded add (no FMA), lanes
 *    summed ((l0+l4)+(l2+l6))+((l1+l5)+(l3+l7)). The same bits as the scalar kernel.
 *
 *  Q8_0, Q4_0 (vec_type Q8_0): per 32-block b, the exact integer
 *      isum_b = sum_i w_i * xq_i          (w_i = q_i, or nibble_i - 8 for Q4_0)
 *    then, in block order, acc = fmaf(dw_b * dx_b, (float)isum_b, acc), from acc = 0.
 *    dw_b * dx_b is a product of two halves, exact in float; isum_b < 2^24 is exact.
 *
 *  Q4_K (vec_type Q8_K): per 256-block, isum = sum_j sc_j * sum_{i in sub-block j} q_i xq_i,
 *    imin = sum_j m_j * (bsum_2j + bsum_2j+1), both exact int32, then
 *      acc = fmaf(d * dx, (float)isum, acc); acc = fmaf(-(dmin * dx), (float)imin, acc).
 *  Q6_K (vec_type Q8_K): isum = sum_j sc_j * sum_{i in 16-group j} (q_i - 32) xq_i, then
 *      acc = fmaf(d * dx, (float)isum, acc).
 *
 * Integer sums do not depend on the order they are formed in and each output's float
 * steps are the same whatever the tile, so y[t][r] is the same for any row range,
 * token count, thread split, level (AVX2 / AVX-512 / AMX) or tile shape. These are
 * not the scalar kernel's bits: x is rounded to int8 first (see tests/test_simd.c for
 * the error bound). */
#ifndef LMRT_BACKEND_CPU_SIMD_H
#define LMRT_BACKEND_CPU_SIMD_H

#include "backend/cpu/cpu_ops.h"

/* Before small fixed-count loops over vectors in the kernels: unrolled, their arrays of
 * vectors stay in registers (GCC -O2 leaves them in memory otherwise). */
#define CPU_UNROLL _Pragma("GCC unroll 16")

/* Software prefetch of a contiguous run (the next panel's rows, which follow each other
 * in memory), a slice per step and in order, so that DRAM sees one sequential stream
 * while a panel walks its 8-16 rows at once (which the hardware prefetchers follow
 * poorly: GEMV ran at ~35-40% of the streaming bandwidth without this). Stops at
 * `limit`, the end of the tensor. */
typedef struct cpu_prefetch_run {
    const char *p, *end;
    size_t step;
} cpu_prefetch_run;

static inline cpu_prefetch_run cpu_prefetch_run_init(const void *start, size_t bytes,
                                                     const void *limit, int64_t steps)
{
    const char *s = start, *l = limit;
    size_t avail = s < l ? (size_t)(l - s) : 0;
    size_t lines = ((bytes < avail ? bytes : avail) + 63) / 64;
    size_t per = steps > 0 ? (lines + (size_t)steps - 1) / (size_t)steps : lines;
    cpu_prefetch_run r = {s, s + 64 * lines, 64 * per};
    return r;
}

static inline void cpu_prefetch_run_step(cpu_prefetch_run *r)
{
    for (size_t i = 0; i < r->step && r->p < r->end; i += 64, r->p += 64)
        __builtin_prefetch(r->p, 0, 3);
}

/* The same step into L2 only (PREFETCHT1 on x86): the packed kernels run a panel ahead,
 * farther than L1's few miss buffers cover. */
static inline void cpu_prefetch_run_step_l2(cpu_prefetch_run *r)
{
    for (size_t i = 0; i < r->step && r->p < r->end; i += 64, r->p += 64)
        __builtin_prefetch(r->p, 0, 2);
}

/* GCC 12 treats __builtin_prefetch as free of side effects and deletes a loop whose
 * body is nothing but prefetches unless it has unrolled it first (seen in the AVX2
 * packed kernel: not one prefetch left at -O1 and up). An empty volatile asm in the
 * body keeps the loop; it emits no instruction. */
#define CPU_KEEP_PREFETCH_LOOP() __asm__ __volatile__("")

/* The packed kernels' prefetch. Panels lie end to end, so while block b of a panel is
 * read, this asks for the same block of the next panel (panel_bytes on) into L2: `lines`
 * lines of quants from q, and the line of the scales region holding the 32 bytes at
 * `scale` when they start it. The same pace as the reads, fixed addresses, no per-line
 * bounds: the caller checks once per panel (cpu_next_panel_is_ours) that the next panel
 * is its to read. Against a run over the next panel in address order
 * (cpu_prefetch_run: a loop with a bound check and a store per line, and the scales
 * asked for only at the run's end), the 1B layer sequence in Q4_0 (2 threads, one
 * token) read at 86-92% of a streaming read of the same matrices instead of 83-89%. */
static inline void cpu_prefetch_next_panel_l2(const uint8_t *q, int lines, const uint8_t *scale,
                                              size_t panel_bytes)
{
    CPU_UNROLL
    for (int l = 0; l < lines; l++) {
        __builtin_prefetch(q + panel_bytes + 64 * (size_t)l, 0, 2);
        CPU_KEEP_PREFETCH_LOOP();
    }
    if (((uintptr_t)scale & 63) == 0)
        __builtin_prefetch(scale + panel_bytes, 0, 2);
}

/* The pass that streams a panel in (its lines already asked for into L2 a panel
 * earlier) asks, per block, for the block CPU_PANEL_L1_AHEAD bytes on into L1: `lines`
 * lines from q + CPU_PANEL_L1_AHEAD (past the panel's quants: its scales or the next
 * panel, still ours or harmless to ask for). Without it the arithmetic of each block
 * waited on its L2 hits: over the 1B layer sequence in Q4_0 (2 threads, one token)
 * the kernel read at 0.86-0.91 of a streaming read of the same matrices, one without
 * the arithmetic 0.98-1.03; with it 0.93-1.00 (2, 3, 4 and 6 KiB ahead alike), Q8_0
 * 0.96-1.00 -> 0.98-1.03. */
#define CPU_PANEL_L1_AHEAD 2048

static inline void cpu_prefetch_panel_l1(const uint8_t *q, int lines)
{
    CPU_UNROLL
    for (int l = 0; l < lines; l++) {
        __builtin_prefetch(q + CPU_PANEL_L1_AHEAD + 64 * (size_t)l, 0, 3);
        CPU_KEEP_PREFETCH_LOOP();
    }
}

/* Whether the panel after `panel` lies wholly before pf_end (the end of the calling
 * thread's run of w's panels; NULL: no prefetching). */
static inline bool cpu_next_panel_is_ours(const cpu_packed *w, const uint8_t *panel,
                                          const uint8_t *pf_end)
{
    return pf_end && (size_t)(pf_end - panel) >= 2 * w->panel_bytes;
}

/* Lines [p, p + bytes) into L1. */
static inline void cpu_prefetch_lines_l1(const void *p, size_t bytes)
{
    const uintptr_t end = (uintptr_t)p + bytes;
    for (uintptr_t a = (uintptr_t)p & ~(uintptr_t)63; a < end; a += 64) {
        __builtin_prefetch((const void *)a, 0, 3);
        CPU_KEEP_PREFETCH_LOOP();
    }
}

/* Attention reads the cache a block of keys at a time, and each key's row of one kv head
 * is a few lines in a strided layout (every position holds all kv heads), which the
 * hardware prefetchers follow poorly: the kernels were bound by the latency of those
 * misses even with the cache in L3. This asks for positions [j, j_end) of K and V
 * (row_floats apart, `bytes` from each of k and v; none if j >= j_end) into L1, a block
 * before they are read. Measured (16 layers of 32/8 heads of 64, one token after 576
 * positions, KV cold, 2 threads, AVX-512 kernel): 4.1 -> 3.1 ms; two blocks ahead, or a
 * second block into L2, no better. */
static inline void cpu_prefetch_kv_rows(const float *k, const float *v, int64_t j, int64_t j_end,
                                        int32_t row_floats, size_t bytes)
{
    for (; j < j_end; j++) {
        const size_t at = (size_t)j * (size_t)row_floats;
        cpu_prefetch_lines_l1(k + at, bytes);
        cpu_prefetch_lines_l1(v + at, bytes);
    }
}

/* The float kernels read their rows where they lie (no packed copy): a tile of n rows
 * walks n streams at once, which the hardware prefetchers follow poorly too. While the
 * tile reads the line at byte `off` of each row, this asks for the same line of the next
 * tile's rows, `ahead` bytes on (the rows follow each other), into L2. Measured with the
 * 1B layer sequence in F16 (2 threads, one token): 73-78% -> 81-85% of a streaming read
 * of the same matrices. */
static inline void cpu_prefetch_rows_l2(const uint8_t *const *rows, int n, size_t off,
                                        size_t ahead)
{
    CPU_UNROLL
    for (int i = 0; i < n; i++) {
        __builtin_prefetch(rows[i] + off + ahead, 0, 2);
        CPU_KEEP_PREFETCH_LOOP();
    }
}

#if defined(LMRT_HAVE_AVX2_KERNELS)
extern const cpu_kernels cpu_kernels_avx2;

/* cpu_matmul_avx2.c */
void cpu_matmul_f_avx2(const tensor_view *w, const matmul_input *in, float *y, int64_t r0,
                       int64_t r1, float *scratch);
void cpu_matmul_q8_avx2(const tensor_view *w, const matmul_input *in, float *y, int64_t r0,
                        int64_t r1, float *scratch);
int64_t cpu_matmul_q8_avx2_scratch(const tensor_view *w, int32_t n_tok);
/* cpu_packed_avx2.c: the same over weights repacked at bind time (scratch as above). */
void cpu_matmul_packed_avx2(const cpu_packed *w, const matmul_input *in, float *y, int64_t p0,
                            int64_t p1, int64_t pf_end, float *scratch);
/* cpu_matmul_k_avx2.c: Q4_K and Q6_K against Q8_K activations. */
void cpu_matmul_k_avx2(const tensor_view *w, const matmul_input *in, float *y, int64_t r0,
                       int64_t r1, float *scratch);
int64_t cpu_matmul_k_avx2_scratch(const tensor_view *w, int32_t n_tok);
/* cpu_kernels_avx2.c: byte-exact copies of quantize_row_q8_0 / quantize_row_q8_K. */
void cpu_quantize_q8_0_avx2(const float *x, void *out, int64_t n);
void cpu_quantize_q8_K_avx2(const float *x, void *out, int64_t n);
/* cpu_kernels_avx2.c: per-token and elementwise kernels the AVX-512 table keeps. */
void cpu_rmsnorm_avx2(const float *x, const float *weight, int32_t n, float eps, float *y);
void cpu_rope_avx2(float *x, int32_t n_head, int32_t head_dim, int32_t n_rot, int32_t pos,
                   float freq_base, const float *freq_factors);
void cpu_add_avx2(float *y, const float *x, int64_t n);
#endif

#if defined(LMRT_HAVE_AVX512_KERNELS)
/* Needs AVX-512 F/BW/VL/VNNI; cpu_kernels_for() falls back to AVX2 without VNNI. */
extern const cpu_kernels cpu_kernels_avx512;

/* cpu_matmul_avx512.c */
void cpu_matmul_f_avx512(const tensor_view *w, const matmul_input *in, float *y, int64_t r0,
                         int64_t r1, float *scratch);
void cpu_matmul_q8_avx512(const tensor_view *w, const matmul_input *in, float *y, int64_t r0,
                          int64_t r1, float *scratch);
int64_t cpu_matmul_q8_avx512_scratch(const tensor_view *w, int32_t n_tok);
/* cpu_packed_avx512.c: the same over weights repacked at bind time (scratch as above). */
void cpu_matmul_packed_avx512(const cpu_packed *w, const matmul_input *in, float *y, int64_t p0,
                              int64_t p1, int64_t pf_end, float *scratch);
/* cpu_packed_k_avx512.c: Q4_K and Q6_K over repacked weights, the bits of
 * cpu_matmul_k_avx2. */
void cpu_matmul_packed_k_avx512(const cpu_packed *w, const matmul_input *in, float *y,
                                int64_t p0, int64_t p1, int64_t pf_end, float *scratch);
#endif

#if defined(LMRT_HAVE_AMX_KERNELS)
/* The AVX-512 table with Q8_0/Q4_0 prompt tiles on AMX-INT8 (same bits); chosen by
 * cpu_kernels_for() when cpu_features reports amx_int8 (OS permission granted). */
extern const cpu_kernels cpu_kernels_avx512_amx;
void cpu_matmul_q8_amx(const tensor_view *w, const matmul_input *in, float *y, int64_t r0,
                       int64_t r1, float *scratch);
int64_t cpu_matmul_q8_amx_scratch(const tensor_view *w, int32_t n_tok);
void cpu_matmul_packed_amx(const cpu_packed *w, const matmul_input *in, float *y, int64_t p0,
                           int64_t p1, int64_t pf_end, float *scratch);
#endif

#endif
