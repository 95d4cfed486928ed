/* cpu_matmul_k_avx2.c - AVX2 matmul kernels for the K-quants Q4_K and Q6_K against
 * Q8_K activations (int8 x, per-16 sums in bsums). Built with -mavx2 -mfma -mf16c
 * -ffp-contract=off; the AVX-512 tables use these for weights without a packed copy
 * (cpu_packed_k_avx512.c computes the same bits from the panels). Numerics as
 * cpu_simd.h defines them (exact int32 per 256-block, then one or two float FMAs per
 * block). */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "backend/cpu/cpu_simd.h"
#include "tensor/types.h"

#define INLINE static inline __attribute__((always_inline))

/* One 256-block of a weight row, unpacked once per row and reused by every token:
 * the quants in element order (u8: 0..15 for Q4_K, 0..63 for Q6_K) and the scales
 * as int16 in the shape the int8 dot consumes them. */
typedef struct kprep {
    uint8_t q[256];
    /* Q4_K: sc[j] = scale of 32-element sub-block j (8 used).
     * Q6_K: per 32 elements k, [sc 2k] x 8 then [sc 2k+1] x 8, matching maddubs' pairs. */
    int16_t scp[8][16];
    /* Q4_K: mins, m_{i/2} at [i], lined up with Q8_K's 16 bsums; Q6_K: the 16 scales. */
    int16_t sm[16];
    float d, dmin;
    uint8_t pad[24];
} kprep;

_Static_assert(sizeof(kprep) % 32 == 0, "kprep keeps 32-byte alignment");

INLINE float load_f16(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

/* Q4_K, 144 bytes: f16 d, f16 dmin, 12 bytes of 6-bit scales/mins, 128 bytes of
 * nibbles (chunk c: low nibbles = sub-block 2c, high = 2c+1). */
static void prep_q4_k(const uint8_t *blk, kprep *p)
{
    p->d = load_f16(blk);
    p->dmin = load_f16(blk + 2);
    const uint8_t *s = blk + 4;
    CPU_UNROLL
    for (int j = 0; j < 8; j++) {
        int sc, m;
        if (j < 4) {
            sc = s[j] & 63;
            m = s[j + 4] & 63;
        } else {
            sc = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
            m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
        }
        p->scp[j][0] = (int16_t)sc;
        p->sm[2 * j] = p->sm[2 * j + 1] = (int16_t)m;
    }
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    CPU_UNROLL
    for (int c = 0; c < 4; c++) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(blk + 16 + 32 * c));
        _mm256_store_si256((__m256i *)(void *)(p->q + 64 * c), _mm256_and_si256(v, m4));
        _mm256_store_si256((__m256i *)(void *)(p->q + 64 * c + 32),
                           _mm256_and_si256(_mm256_srli_epi16(v, 4), m4));
    }
}

/* Q6_K, 210 bytes: ql[128], qh[64], int8 scales[16], f16 d (layout in tensor/quant.c). */
static void prep_q6_k(const uint8_t *blk, kprep *p)
{
    const int8_t *sc = (const int8_t *)(blk + 192);
    p->d = load_f16(blk + 208);
    p->dmin = 0.0f;
    /* The 16 scales widened to int16, then per 32 elements k the pair (2k, 2k+1)
     * spread over the two halves: a byte shuffle of the pair broadcast. */
    const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)sc));
    _mm256_store_si256((__m256i *)(void *)p->sm, sc16);
    const __m256i spread = _mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1,
                                            2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3);
    int32_t pairs[8];
    memcpy(pairs, p->sm, sizeof pairs);
    CPU_UNROLL
    for (int k = 0; k < 8; k++)
        _mm256_store_si256((__m256i *)(void *)p->scp[k],
                           _mm256_shuffle_epi8(_mm256_set1_epi32(pairs[k]), spread));
    const __m256i m4 = _mm256_set1_epi8(0x0f), m2 = _mm256_set1_epi8(0x03);
    CPU_UNROLL
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = blk + 64 * h, *qh = blk + 128 + 32 * h;
        __m256i a = _mm256_loadu_si256((const __m256i *)(const void *)ql);
        __m256i b = _mm256_loadu_si256((const __m256i *)(const void *)(ql + 32));
        __m256i hb = _mm256_loadu_si256((const __m256i *)(const void *)qh);
        __m256i h0 = _mm256_slli_epi16(_mm256_and_si256(hb, m2), 4);
        __m256i h1 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2), m2), 4);
        __m256i h2 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 4), m2), 4);
        __m256i h3 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 6), m2), 4);
        uint8_t *q = p->q + 128 * h;
        _mm256_store_si256((__m256i *)(void *)q, _mm256_or_si256(_mm256_and_si256(a, m4), h0));
        _mm256_store_si256((__m256i *)(void *)(q + 32),
                           _mm256_or_si256(_mm256_and_si256(b, m4), h1));
        _mm256_store_si256((__m256i *)(void *)(q + 64),
                           _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(a, 4), m4), h2));
        _mm256_store_si256((__m256i *)(void *)(q + 96),
                           _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b, 4), m4), h3));
    }
}

/* Horizontal sums of two int32 vectors: *sa = sum(a), *sb = sum(b) (exact). */
INLINE void hsum2_epi32(__m256i a, __m256i b, int32_t *sa, int32_t *sb)
{
    __m256i h = _mm256_hadd_epi32(a, b);     /* a01 a23 b01 b23 | a45 a67 b45 b67 */
    __m128i v = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
    v = _mm_hadd_epi32(v, v);                /* a b a b */
    *sa = _mm_cvtsi128_si32(v);
    *sb = _mm_extract_epi32(v, 1);
}

/* One prepared block against one Q8_K block xb (f32 d, int8 qs[256], int16 bsums[16]):
 * the block's float steps of cpu_simd.h applied to acc. maddubs pairs stay within int16
 * (Q4_K: 2*15*127, Q6_K: 2*63*127), the scaled sums within int32 (< 2^26). */
INLINE float kblock_dot(uint32_t type, const kprep *p, const uint8_t *xb, float acc)
{
    float dx;
    memcpy(&dx, xb, 4);
    const uint8_t *xq = xb + 4;
    const __m256i bs = _mm256_loadu_si256((const __m256i *)(const void *)(xb + 260));
    __m256i s = _mm256_setzero_si256();
    CPU_UNROLL
    for (int k = 0; k < 8; k++) {
        __m256i q = _mm256_load_si256((const __m256i *)(const void *)(p->q + 32 * k));
        __m256i x = _mm256_loadu_si256((const __m256i *)(const void *)(xq + 32 * k));
        __m256i sc = type == GGML_TYPE_Q4_K
                         ? _mm256_set1_epi16(p->scp[k][0])
                         : _mm256_load_si256((const __m256i *)(const void *)p->scp[k]);
        s = _mm256_add_epi32(s, _mm256_madd_epi16(_mm256_maddubs_epi16(q, x), sc));
    }
    __m256i m = _mm256_madd_epi16(bs, _mm256_load_si256((const __m256i *)(const void *)p->sm));
    int32_t isum, imin;
    if (type == GGML_TYPE_Q4_K) {
        hsum2_epi32(s, m, &isum, &imin);
        acc = fmaf(p->d * dx, (float)isum, acc);
        return fmaf(-(p->dmin * dx), (float)imin, acc);
    }
    /* Q6_K: q - 32, folded in as 32 * sum_j sc_j * bsum_j. */
    hsum2_epi32(_mm256_sub_epi32(s, _mm256_slli_epi32(m, 5)), m, &isum, &imin);
    return fmaf(p->d * dx, (float)isum, acc);
}

int64_t cpu_matmul_k_avx2_scratch(const tensor_view *w, int32_t n_tok)
{
    (void)n_tok;
    return w->n_cols / 256 * (int64_t)(sizeof(kprep) / 4) + 16;
}

/* Per row: unpack its blocks into scratch (the weights are read from memory once),
 * then one pass over them per token. Bound: at n_tok = 1 by the unpacking and the
 * per-block sums (~60 ops per 256 weights), at large n_tok by maddubs + madd (2 ops per
 * 32 multiply-adds per token) and reading x from L2 (256 bytes per block). Measured
 * (8192 x 2048, one thread, shared machine, AVX-512 machine running this AVX2 code):
 * n_tok 1 Q4_K 5.6 GB/s (55% of a streaming read), Q6_K 6.4-8.3 GB/s (64-83%); n_tok 128
 * 36 / 39 GMAC/s (the scalar kernel: 9). */
INLINE void k_rows(uint32_t type, const tensor_view *w, const matmul_input *in, float *y,
                   int64_t r0, int64_t r1, float *scratch)
{
    const int64_t nb = in->n_cols / 256, n_rows = w->n_rows;
    const size_t bb = type == GGML_TYPE_Q4_K ? 144 : 210;
    kprep *prep = (kprep *)(void *)scratch;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *row = (const uint8_t *)w->data + (size_t)r * w->row_bytes;
        for (int64_t b = 0; b < nb; b++) {
            /* Rows follow each other in memory: fetch the next one while this one is
             * unpacked (the hardware prefetcher alone left GEMV at ~30% of bandwidth). */
            if (r + 1 < r1)
                for (size_t l = 0; l < bb; l += 64)
                    _mm_prefetch((const char *)row + w->row_bytes + (size_t)b * bb + l, _MM_HINT_T0);
            if (type == GGML_TYPE_Q4_K)
                prep_q4_k(row + (size_t)b * bb, &prep[b]);
            else
                prep_q6_k(row + (size_t)b * bb, &prep[b]);
        }
        for (int32_t t = 0; t < in->n_tok; t++) {
            const uint8_t *xrow = (const uint8_t *)in->xq + (size_t)t * in->xq_row_bytes;
            float acc = 0.0f;
            for (int64_t b = 0; b < nb; b++)
                acc = kblock_dot(type, &prep[b], xrow + (size_t)b * 292, acc);
            y[(size_t)t * (size_t)n_rows + (size_t)r] = acc;
        }
    }
}

void cpu_matmul_k_avx2(const tensor_view *w, const matmul_input *in, float *y, int64_t r0,
                       int64_t r1, float *scratch)
{
    if (w->type == GGML_TYPE_Q4_K)
        k_rows(GGML_TYPE_Q4_K, w, in, y, r0, r1, scratch);
    else
        k_rows(GGML_TYPE_Q6_K, w, in, y, r0, r1, scratch);
}
