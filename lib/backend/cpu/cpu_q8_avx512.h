/* cpu_q8_avx512.h - the pieces of the AVX-512 Q8_0/Q4_0 matmul that the AMX kernel
 * shares (cpu_matmul_avx512.c defines them): the scratch layout, the per-call token
 * table, the 16-row weight panel and the VNNI token loop. Files built with AVX-512 only. */
#ifndef LMRT_BACKEND_CPU_Q8_AVX512_H
#define LMRT_BACKEND_CPU_Q8_AVX512_H

#include <immintrin.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "backend/cpu/cpu_ops.h"
#include "backend/cpu/cpu_simd.h"

/* A panel is 16 rows transposed for int8 dot products with rows in lanes: per 32-block,
 * 8 vectors of 64 bytes (vector g, lane n = row n's 4 bytes under x's bytes 4g..4g+3:
 * Q8_0 its int8 weights, Q4_0 its nibbles 0..15) - for Q8_0 rows exactly AMX's B-tile
 * layout for K = 32 - then the 16 row scales as floats. */
#define Q8P_ROWS 16
#define Q8P_BLOCK 576                 /* 8 * 64 bytes of weights + 16 floats */

/* Per call, for every token t and block b: dx[t][b] (the block's scale as float) and
 * corr[t][b] = bias * sum(x), the bias of the u8 operand vpdpbusd needs (Q8_0: w + 128,
 * bias 128; Q4_0: the nibbles, bias 8). */
typedef struct q8_tokens {
    const uint8_t *xq;                /* Q8_0 rows: [n_tok][row_bytes] */
    size_t row_bytes;
    int64_t nb;                       /* 32-blocks per row */
    int32_t n_tok;
    const float *dx;                  /* [n_tok][nb] */
    const int32_t *corr;              /* [n_tok][nb] */
} q8_tokens;

/* The 16 rows' block scales (f16 at rows[i] + off) as floats, by one gather. */
typedef struct q8_scale_gather {
    const uint8_t *const *rows;
    __m512i idx;                      /* rows[i] - rows[0] */
    bool scalar;                      /* offsets past 32 bits: 16 loads instead */
} q8_scale_gather;

static inline q8_scale_gather cpu_q8_avx512_scale_gather(const uint8_t *const *rows)
{
    q8_scale_gather sg = {rows, _mm512_setzero_si512(), true};
    int32_t off[16];
    CPU_UNROLL
    for (int i = 0; i < 16; i++) {
        ptrdiff_t d = rows[i] - rows[0];
        if (d < 0 || d > INT32_MAX)
            return sg;
        off[i] = (int32_t)d;
    }
    sg.idx = _mm512_loadu_si512((const void *)off);
    sg.scalar = false;
    return sg;
}

/* A gather of 16 dwords (each row's half and the next 2 bytes of its block), their low
 * halves converted; rows too far apart for 32-bit offsets take 16 scalar loads. */
static inline __m512 cpu_q8_avx512_scales(const uint8_t *const *rows, const q8_scale_gather *sg, size_t off)
{
    if (sg->scalar) {
        uint16_t dh[16];
        CPU_UNROLL
        for (int i = 0; i < 16; i++)
            memcpy(&dh[i], rows[i] + off, 2);
        return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)dh));
    }
    __m512i v = _mm512_i32gather_epi32(sg->idx, (const void *)(rows[0] + off), 1);
    return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(v));
}

/* Carves scratch (cpu_matmul_q8_avx512_scratch floats) into the panel and the token
 * table, fills the table (unless in->tables_ready: an earlier call on this scratch
 * left it); returns the panel (64-byte aligned). */
uint8_t *cpu_q8_avx512_setup(const matmul_input *in, uint32_t type, float *scratch, q8_tokens *tk);
/* Transposes rows[0..15] (a short panel repeats a row) into panel, for Q8_0 or Q4_0,
 * taking a step of pf (NULL: none) per block. */
void cpu_q8_avx512_panel(uint32_t type, const uint8_t *const *rows, int64_t nb, uint8_t *panel,
                         cpu_prefetch_run *pf);
/* y[t][r0 + n] for tokens [t0, t1) and lanes n < nr, by VNNI from a Q8_0/Q4_0 panel. */
void cpu_q8_avx512_tokens(uint32_t type, const uint8_t *panel, const q8_tokens *tk, int32_t t0,
                          int32_t t1, float *y, int64_t n_rows, int64_t r0, int nr);
/* y[t][rows of panel p] for tokens [t0, t1) by VNNI from a repacked weight
 * (cpu_packed_avx512.c). */
void cpu_packed_avx512_tokens(const cpu_packed *w, const q8_tokens *tk, int64_t p, int32_t t0,
                              int32_t t1, float *y);

#endif
