/* cpu_amx.c - Q8_0/Q4_0 matmul with AMX-INT8 for prompt batches: 16 weight rows x 16
 * tokens per tile product. Built with the AVX-512 flags plus -mamx-tile -mamx-int8;
 * reached only through cpu_kernels_avx512_amx, which cpu_kernels_for() picks when
 * cpu_features found AMX enabled and permitted. Same bits as the VNNI kernel
 * (cpu_simd.h): a tile product is each block's exact isum, then the same float steps
 * per output; generation's single token and batch tails go to the VNNI kernel.
 * Weights repacked at bind time (cpu_repack.c) take cpu_matmul_packed_amx, at the end. */
#include <immintrin.h>
#include <stdalign.h>
#include <stdint.h>
#include <string.h>

#include "backend/cpu/cpu_avx512_math.h"
#include "backend/cpu/cpu_q8_avx512.h"
#include "backend/cpu/cpu_simd.h"
#include "tensor/types.h"


/* Tiles, per block: A = 16 weight rows x 32 int8 (row-major), B = 16 tokens' 32 int8 in
 * the VNNI layout (8 rows of 16 x 4), C = 16 x 16 int32; two of each, so that one
 * block's product runs while the previous block's is scaled. */
#define TC0 0   /* numbers, not enums: the intrinsics paste them into the asm */
#define TC1 1
#define TA0 2
#define TA1 3
#define TB0 4
#define TB1 5

typedef struct tile_config {
    uint8_t palette_id;
    uint8_t start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;

static void tiles_configure(void)
{
    alignas(64) tile_config cfg = {.palette_id = 1};
    cfg.rows[TC0] = cfg.rows[TC1] = 16;
    cfg.colsb[TC0] = cfg.colsb[TC1] = 64;
    cfg.rows[TA0] = cfg.rows[TA1] = 16;
    cfg.colsb[TA0] = cfg.colsb[TA1] = 32;
    cfg.rows[TB0] = cfg.rows[TB1] = 8;
    cfg.colsb[TB0] = cfg.colsb[TB1] = 64;
    /* GCC 12's _tile_loadconfig tells the compiler it reads 8 bytes of cfg only, which
     * lets it drop the stores above; make them all visible first. */
    __asm__ volatile("" : : "r"(&cfg) : "memory");
    _tile_loadconfig(&cfg);
}

/* The weight side, once per 16-row panel: per block, 16 rows x 32 int8 (Q4_0: the
 * nibbles split and less 8) then the 16 row scales as floats (Q8P_BLOCK bytes). */
static void weight_panel(uint32_t type, const uint8_t *const *rows, int64_t nb, uint8_t *panel,
                         cpu_prefetch_run *pf)
{
    const q8_scale_gather sg = cpu_q8_avx512_scale_gather(rows);
    const size_t bb = type == GGML_TYPE_Q8_0 ? 34 : 18;
    const __m256i m4 = _mm256_set1_epi8(0x0f), eight = _mm256_set1_epi8(8);
    for (int64_t b = 0; b < nb; b++) {
        uint8_t *dst = panel + b * Q8P_BLOCK;
        const size_t off = (size_t)b * bb;
        cpu_prefetch_run_step(pf);   /* the next panel's rows, in order */
        CPU_UNROLL
        for (int i = 0; i < 16; i++) {
            __m256i v;
            if (type == GGML_TYPE_Q8_0) {
                v = _mm256_loadu_si256((const __m256i *)(const void *)(rows[i] + off + 2));
            } else {
                __m128i q = _mm_loadu_si128((const __m128i *)(const void *)(rows[i] + off + 2));
                v = _mm256_set_m128i(_mm_srli_epi16(q, 4), q);
                v = _mm256_sub_epi8(_mm256_and_si256(v, m4), eight);
            }
            _mm256_store_si256((__m256i *)(void *)(dst + 32 * i), v);
        }
        _mm512_store_ps((void *)(dst + 512), cpu_q8_avx512_scales(rows, &sg, off));
    }
}

/* The scaling, acc[r] += (dw[r] * dx) * C[r] with the 16 tokens in lanes, is 3 vector
 * ops per 16 outputs per block (~24 cycles of the two vector ports per 16 x 16 block);
 * it overlaps the tile work, which is what bounds the kernel: per block two tile loads,
 * a product (8192 multiply-adds, ~16 cycles) and a 1 KB tile store. In isolation that
 * sequence measured 15.6 ns per block (~525 GMAC/s per core); see amx_panel_group for
 * the kernel's own figure. */
#define REP16(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) \
                 X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)

/* acc##r += (dw[r] * dx) * C[r] for the block at wblk / xblk, C at c. The 16
 * accumulators are named variables: GCC leaves a 16-vector array in memory. */
#define SCALE_ROW(r)                                                                     \
    acc##r = _mm512_fmadd_ps(_mm512_mul_ps(dx, _mm512_set1_ps(dw[r])),                 \
                             _mm512_cvtepi32_ps(_mm512_load_si512(c + 16 * (r))), acc##r);
#define SCALE_BLOCK(c_, wblk, xblk)                                                      \
    do {                                                                                 \
        const int32_t *c = (c_);                                                         \
        const float *dw = (const float *)(const void *)((wblk) + 512);                   \
        const __m512 dx = _mm512_load_ps((const void *)((xblk) + 512));                  \
        REP16(SCALE_ROW)                                                                 \
    } while (0)

/* Block products, split so that a C tile's store can be issued after the next block's
 * product: tile instructions complete in order, and a store right after its own
 * product waits out the product's latency with nothing else in flight. */
static inline __attribute__((always_inline)) void tile_product(int which, const uint8_t *wblk,
                                                               const uint8_t *xblk)
{
    if (which == 0) {
        _tile_loadd(TA0, wblk, 32);
        _tile_loadd(TB0, xblk, 64);
        _tile_zero(TC0);
        _tile_dpbssd(TC0, TA0, TB0);
    } else {
        _tile_loadd(TA1, wblk, 32);
        _tile_loadd(TB1, xblk, 64);
        _tile_zero(TC1);
        _tile_dpbssd(TC1, TA1, TB1);
    }
}

static inline __attribute__((always_inline)) void tile_store(int which, int32_t *c)
{
    if (which == 0)
        _tile_stored(TC0, c, 64);
    else
        _tile_stored(TC1, c, 64);
}

#define PF_AHEAD 2   /* blocks; measured: L2-resident tiles at the L1 speed from 2 on */
#define LAG 3        /* blocks between a tile store and the loads of its scaling (1: ~30% slower) */

/* One 16-row panel against one group of 16 tokens, software-pipelined: the product of
 * block b runs while block b - LAG's sums are scaled. */
static void amx_panel_group(const uint8_t *wp, const uint8_t *xp, int64_t nb, float *y,
                            int64_t n_rows, int64_t r0, int32_t t0, __mmask16 keep)
{
    alignas(64) int32_t cbuf[4][256];
#define ACC_DECL(r) __m512 acc##r = _mm512_setzero_ps();
    REP16(ACC_DECL)
#undef ACC_DECL
    /* Block b + 1's product is issued, then block b's stored to cbuf[b % 4], then block
     * b - LAG scaled: a tile store lands in memory well after it issues, and the loads
     * of the scaling wait for it (LAG 1 left them stalling on the store). */
    tile_product(0, wp, xp);
    for (int64_t b = 0; b < nb + LAG; b++) {
        if (b + 1 < nb) {
            const uint8_t *wb = wp + (b + 1) * Q8P_BLOCK, *xb = xp + (b + 1) * Q8P_BLOCK;
            /* Tile loads wait on L2 unless the lines are already in L1 (the x panels of
             * a batch are L2-sized): fetch the tiles PF_AHEAD blocks on (past the end:
             * harmless). */
            for (int q = 0; q < Q8P_BLOCK; q += 64) {
                _mm_prefetch((const char *)wb + PF_AHEAD * Q8P_BLOCK + q, _MM_HINT_T0);
                _mm_prefetch((const char *)xb + PF_AHEAD * Q8P_BLOCK + q, _MM_HINT_T0);
            }
            tile_product((int)((b + 1) & 1), wb, xb);
        }
        if (b < nb)
            tile_store((int)(b & 1), cbuf[b & 3]);
        if (b >= LAG) {
            const int64_t e = b - LAG;
            SCALE_BLOCK(cbuf[e & 3], wp + e * Q8P_BLOCK, xp + e * Q8P_BLOCK);
        }
    }
    __m512 m[16];
#define ACC_OUT(r) m[r] = acc##r;
    REP16(ACC_OUT)
#undef ACC_OUT
    avx512_transpose16_ps(m);   /* m[j] = token t0 + j's 16 rows */
    for (int j = 0; j < 16; j++)
        _mm512_mask_storeu_ps(y + (size_t)(t0 + j) * (size_t)n_rows + (size_t)r0, keep, m[j]);
}

int64_t cpu_matmul_q8_amx_scratch(const tensor_view *w, int32_t n_tok)
{
    const int64_t nb = w->n_cols / 32, n16 = n_tok / 16;
    /* VNNI part (tail), the weight panel, the tokens' B tiles and scales */
    return cpu_matmul_q8_avx512_scratch(w, n_tok) + nb * (Q8P_BLOCK / 4) * (1 + n16) + 16;
}

/* Per call: the tokens in groups of 16 as B tiles (the same transpose as a Q8_0 weight
 * panel, cpu_matmul_avx512.c), once per thread. Per 16-row panel: the weight side, then
 * every group by AMX and the n_tok % 16 left by VNNI from its own panel. Bound by the
 * tile pipeline (see SCALE_BLOCK); the weight and x panels take ~10% at 128 tokens.
 * Measured (8192 x 2048, one thread, on the 2-core Xeon while other jobs kept its load
 * average at 4-6): 210-275 GMAC/s at n_tok 64-512, against 118-139 GMAC/s for VNNI and
 * 8 GMAC/s for the scalar kernel in the same conditions. */
void cpu_matmul_q8_amx(const tensor_view *w, const matmul_input *in, float *y, int64_t r0,
                       int64_t r1, float *scratch)
{
    const int32_t n16 = in->n_tok & ~15;
    if (n16 == 0) {
        cpu_matmul_q8_avx512(w, in, y, r0, r1, scratch);
        return;
    }
    q8_tokens tk;
    uint8_t *vpanel = cpu_q8_avx512_setup(in, w->type, scratch, &tk);
    const int64_t nb = tk.nb;
    uint8_t *wpanel = (uint8_t *)(scratch + cpu_matmul_q8_avx512_scratch(w, in->n_tok));
    wpanel = (uint8_t *)(((uintptr_t)wpanel + 63) & ~(uintptr_t)63);
    uint8_t *xpanels = wpanel + nb * Q8P_BLOCK;
    for (int32_t g = 0; g < n16 / 16; g++) {
        const uint8_t *trow[16];
        CPU_UNROLL
        for (int j = 0; j < 16; j++)
            trow[j] = tk.xq + (size_t)(16 * g + j) * tk.row_bytes;
        cpu_q8_avx512_panel(GGML_TYPE_Q8_0, trow, nb, xpanels + g * nb * Q8P_BLOCK, NULL);
    }
    const uint8_t *end = (const uint8_t *)w->data + (size_t)w->n_rows * w->row_bytes;
    tiles_configure();
    for (int64_t r = r0; r < r1; r += Q8P_ROWS) {
        const int nr = r1 - r < Q8P_ROWS ? (int)(r1 - r) : Q8P_ROWS;
        const uint8_t *rows[Q8P_ROWS];
        for (int i = 0; i < Q8P_ROWS; i++)
            rows[i] = (const uint8_t *)w->data + (size_t)(r + (i < nr ? i : nr - 1)) * w->row_bytes;
        const size_t next = (size_t)(r1 - r > 2 * Q8P_ROWS ? Q8P_ROWS : r1 - r - nr) * w->row_bytes;
        cpu_prefetch_run pf = cpu_prefetch_run_init(rows[0] + Q8P_ROWS * w->row_bytes, next, end, nb);
        weight_panel(w->type, rows, nb, wpanel, &pf);
        const __mmask16 keep = (__mmask16)((1u << nr) - 1);
        for (int32_t g = 0; g < n16 / 16; g++)
            amx_panel_group(wpanel, xpanels + g * nb * Q8P_BLOCK, nb, y, w->n_rows, r, 16 * g, keep);
        if (n16 < in->n_tok) {
            cpu_q8_avx512_panel(w->type, rows, nb, vpanel, NULL);
            cpu_q8_avx512_tokens(w->type, vpanel, &tk, n16, in->n_tok, y, w->n_rows, r, nr);
        }
    }
    _tile_release();
}

/* ---- weights repacked at bind time (cpu_repack.c) ------------------------------------ */

/* Here the tokens are A (16 tokens x a block's 32 int8, row-major: copied once per call)
 * and the weight panel is B: the packed quants are already B's layout (Q8_0 as stored;
 * Q4_0's nibbles less 8, unpacked once per panel per call), so C[t][r] has each token's
 * 16 rows in a vector: scaled as acc_t += (dw * dx[t]) * C[t], 3 ops per 16 outputs as
 * above, and stored without a transpose. Same bits: the tile product is the exact isum,
 * and dw * dx, the float of isum and the FMA are the VNNI kernel's steps. */
#define SCALE_TOK(t)                                                                     \
    acc##t = _mm512_fmadd_ps(_mm512_mul_ps(dw, _mm512_set1_ps(dx[(t) * nb])),            \
                             _mm512_cvtepi32_ps(_mm512_load_si512(c + 16 * (t))), acc##t);

static inline __attribute__((always_inline)) void tile_product_tw(int which, const uint8_t *ablk,
                                                                  const uint8_t *wblk)
{
    if (which == 0) {
        _tile_loadd(TA0, ablk, 32);
        _tile_loadd(TB0, wblk, 64);
        _tile_zero(TC0);
        _tile_dpbssd(TC0, TA0, TB0);
    } else {
        _tile_loadd(TA1, ablk, 32);
        _tile_loadd(TB1, wblk, 64);
        _tile_zero(TC1);
        _tile_dpbssd(TC1, TA1, TB1);
    }
}

/* One packed panel (B blocks every 512 bytes at wq, f16 scales at scales) against the
 * 16 tokens t0.. (A blocks every 512 bytes at ap; their dx at tk->dx), pipelined as
 * amx_panel_group. pf: the next panel's stream, stepped once per block (or NULL). */
static void amx_group_packed(const uint8_t *wq, const uint8_t *scales, const uint8_t *ap,
                             const q8_tokens *tk, float *y, int64_t n_rows, int64_t r0,
                             int32_t t0, __mmask16 keep, cpu_prefetch_run *pf)
{
    const int64_t nb = tk->nb;
    alignas(64) int32_t cbuf[4][256];
#define ACC_DECL(r) __m512 acc##r = _mm512_setzero_ps();
    REP16(ACC_DECL)
#undef ACC_DECL
    tile_product_tw(0, ap, wq);
    for (int64_t b = 0; b < nb + LAG; b++) {
        if (b + 1 < nb) {
            const uint8_t *wb = wq + (b + 1) * 512, *ab = ap + (b + 1) * 512;
            for (int q = 0; q < 512; q += 64) {
                _mm_prefetch((const char *)wb + PF_AHEAD * 512 + q, _MM_HINT_T0);
                _mm_prefetch((const char *)ab + PF_AHEAD * 512 + q, _MM_HINT_T0);
            }
            if (pf)   /* into L2, like the generation kernel (cpu_packed_avx512.c) */
                for (size_t i = 0; i < pf->step && pf->p < pf->end; i += 64, pf->p += 64)
                    _mm_prefetch(pf->p, _MM_HINT_T1);
            tile_product_tw((int)((b + 1) & 1), ab, wb);
        }
        if (b < nb)
            tile_store((int)(b & 1), cbuf[b & 3]);
        if (b >= LAG) {
            const int64_t e = b - LAG;
            const int32_t *c = cbuf[e & 3];
            const __m512 dw = _mm512_cvtph_ps(
                _mm256_load_si256((const __m256i *)(const void *)(scales + 32 * e)));
            const float *dx = tk->dx + (size_t)t0 * (size_t)nb + (size_t)e;
            REP16(SCALE_TOK)
        }
    }
#define OUT_TOK(t) _mm512_mask_storeu_ps(y + (size_t)(t0 + (t)) * (size_t)n_rows + (size_t)r0, keep, acc##t);
    REP16(OUT_TOK)
#undef OUT_TOK
}

/* Per call: the tokens' A blocks. Per panel: Q4_0's B blocks (Q8_0 reads the packed
 * panel itself), every 16-token group by AMX, the n_tok % 16 left by VNNI. The next
 * panel is fetched from memory during the first group's products (a prefetch in the
 * short unpacking loop stalled on the miss buffers: 38% of this function's time). */
void cpu_matmul_packed_amx(const cpu_packed *w, const matmul_input *in, float *y, int64_t p0,
                           int64_t p1, int64_t pf_end, float *scratch)
{
    const int32_t n16 = in->n_tok & ~15;
    if (n16 == 0) {
        cpu_matmul_packed_avx512(w, in, y, p0, p1, pf_end, scratch);
        return;
    }
    q8_tokens tk;
    uint8_t *wbuf = cpu_q8_avx512_setup(in, w->type, scratch, &tk);   /* nb * Q8P_BLOCK bytes */
    const int64_t nb = tk.nb;
    uint8_t *ap = (uint8_t *)(scratch + nb * (Q8P_BLOCK / 4) + 2 * (int64_t)in->n_tok * nb + 16);
    ap = (uint8_t *)(((uintptr_t)ap + 63) & ~(uintptr_t)63);
    for (int32_t g = 0; g < n16 / 16; g++)
        for (int64_t b = 0; b < nb; b++)
            for (int j = 0; j < 16; j++)
                memcpy(ap + ((size_t)g * (size_t)nb + (size_t)b) * 512 + 32 * (size_t)j,
                       tk.xq + (size_t)(16 * g + j) * tk.row_bytes + (size_t)b * 34 + 2, 32);
    const uint8_t *end = w->data + w->bytes;
    const __m512i m4 = _mm512_set1_epi8(0x0f), eight = _mm512_set1_epi8(8);
    tiles_configure();
    for (int64_t p = p0; p < p1; p++) {
        const uint8_t *panel = w->data + (size_t)p * w->panel_bytes;
        const uint8_t *scales = panel + (size_t)nb * w->wq_bytes;
        const int64_t r0 = p * CPU_PANEL_ROWS;
        const int nr = w->n_rows - r0 < CPU_PANEL_ROWS ? (int)(w->n_rows - r0) : CPU_PANEL_ROWS;
        const __mmask16 keep = (__mmask16)((1u << nr) - 1);
        cpu_prefetch_run pf = cpu_prefetch_run_init(panel + w->panel_bytes,
                                                    p + 1 < pf_end ? w->panel_bytes : 0, end, nb);
        const uint8_t *wq = panel;
        if (w->type == GGML_TYPE_Q4_0) {
            for (int64_t b = 0; b < nb; b++) {
                CPU_UNROLL
                for (int g = 0; g < 4; g++) {
                    __m512i v = _mm512_load_si512((const void *)(panel + b * 256 + 64 * g));
                    _mm512_store_si512((void *)(wbuf + b * 512 + 64 * g),
                                       _mm512_sub_epi8(_mm512_and_si512(v, m4), eight));
                    _mm512_store_si512((void *)(wbuf + b * 512 + 64 * (g + 4)),
                                       _mm512_sub_epi8(_mm512_and_si512(_mm512_srli_epi16(v, 4), m4), eight));
                }
            }
            wq = wbuf;
        }
        for (int32_t g = 0; g < n16 / 16; g++)
            amx_group_packed(wq, scales, ap + (size_t)g * (size_t)nb * 512, &tk, y, w->n_rows, r0,
                             16 * g, keep, g == 0 ? &pf : NULL);
        if (n16 < in->n_tok)
            cpu_packed_avx512_tokens(w, &tk, p, n16, in->n_tok, y);
    }
    _tile_release();
}
