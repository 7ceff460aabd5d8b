/* backend/cpu/cpu_quant_dot_decode.c - fused AVX2 kernels for the few-token (decode) case of the
 * legacy 32-element types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0); the K-quant ones are in
 * cpu_quant_dot_decode_kquants.c.
 *
 * With one token, expanding a tile (cpu_quant_dot.c) costs as much as the dot product it feeds, so
 * these kernels read the GGUF blocks directly: per block, unpack the codes into a register, one
 * maddubs/madd integer dot with the token's 8-bit block, one FMA into an f32 accumulator scaled by
 * d_w * d_x, and the offset term (m or -8 d ...) times the block's activation sum.
 * Four rows share each activation load and give four independent FMA chains.
 * The arithmetic is that of cpu_quant_dot.h, so the results agree with the tile path to rounding.
 */
#include <immintrin.h>
#include <stdbool.h>
#include <string.h>

#include "backend/cpu/cpu_internal.h"  /* defines: cpu_hsum256 */
#include "backend/cpu/cpu_quant_dot.h" /* defines: cpu_qact, cpu_qdot_rows_fn */
#include "core/dtype.h"                /* defines: DTYPE_* */

/* Rows stream from memory once per token: prefetch the same block this many 4-row tiles ahead. */
#ifndef PF_TILES
#define PF_TILES 1
#endif

static inline float load_f16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

static inline __m256i unpack_nibbles(const uint8_t *qs) {
    __m128i v = _mm_loadu_si128((const __m128i *)qs);
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(v, 4), v), _mm256_set1_epi8(0x0F));
}

static inline __m256i unpack_high_bits(const uint8_t *qh) {
    uint32_t bits;
    memcpy(&bits, qh, 4);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits),
                                    _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202,
                                                      0x0101010101010101, 0x0000000000000000));
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit), _mm256_set1_epi8(0x10));
}

/* One block of `type`: codes (u8, or s8 for Q8_0), scale d and offset m (w = d q + m). */
static inline __attribute__((always_inline)) __m256i load_block(const int type, const uint8_t *blk, float *d,
                                                                float *m) {
    switch (type) {
    case DTYPE_Q4_0:
        *d = load_f16(blk);
        *m = -8.0f * *d;
        return unpack_nibbles(blk + 2);
    case DTYPE_Q4_1:
        *d = load_f16(blk);
        *m = load_f16(blk + 2);
        return unpack_nibbles(blk + 4);
    case DTYPE_Q5_0:
        *d = load_f16(blk);
        *m = -16.0f * *d;
        return _mm256_or_si256(unpack_nibbles(blk + 6), unpack_high_bits(blk + 2));
    case DTYPE_Q5_1:
        *d = load_f16(blk);
        *m = load_f16(blk + 2);
        return _mm256_or_si256(unpack_nibbles(blk + 8), unpack_high_bits(blk + 4));
    default: /* DTYPE_Q8_0 */
        *d = load_f16(blk);
        *m = 0.0f;
        return _mm256_loadu_si256((const __m256i *)(blk + 2));
    }
}

static inline int block_bytes(const int type) {
    switch (type) {
    case DTYPE_Q4_0: return 18;
    case DTYPE_Q4_1: return 20;
    case DTYPE_Q5_0: return 22;
    case DTYPE_Q5_1: return 24;
    default: return 34;
    }
}

/* Integer dot of one block's codes with the token's block: 8 int32 lanes as floats. */
static inline __attribute__((always_inline)) __m256 block_dot(const int type, __m256i q, __m256i xv) {
    __m256i p = type == DTYPE_Q8_0 ? _mm256_maddubs_epi16(_mm256_sign_epi8(q, q), _mm256_sign_epi8(xv, q))
                                   : _mm256_maddubs_epi16(q, xv);
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(p, _mm256_set1_epi16(1)));
}

/* R rows (1 or 4) x one token: out[r] = dot(row r, token t). Blocks go in pairs: the two blocks'
 * f16 (d, m) fields are converted together and multiplied with the token's (d_x, sum) pairs in one
 * 128-bit product [d0 dx0, m0 sx0, d1 dx1, m1 sx1]; lanes 0 and 2 are broadcast as the two FMA
 * scales, lanes 1 and 3 add up the offset terms. Types whose offset is k d (Q4_0 k = -8, Q5_0
 * -16; Q8_0 has none: k = 0) duplicate d and fold k into the token's sums. */
static inline __attribute__((always_inline)) void rows_x1(const int type, const int R, const uint8_t *const rows[4],
                                                          const cpu_qact *act, int64_t t, int64_t prefetch_offset,
                                                          float out[4]) {
    const int64_t n = act->n_cols, nb = n / 32;
    const int bb = block_bytes(type);
    const bool own_min = type == DTYPE_Q4_1 || type == DTYPE_Q5_1;
    const float k = type == DTYPE_Q4_0 ? -8.0f : type == DTYPE_Q5_0 ? -16.0f : 0.0f;
    const int8_t *xq = act->q + t * n;
    const float *ds = act->ds + t * 2 * nb;
    const __m256i lane0 = _mm256_setzero_si256(), lane2 = _mm256_set1_epi32(2);
    __m256 acc[4];
    __m128 macc[4];
    float tail[4] = {0, 0, 0, 0};
    #pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        acc[r] = _mm256_setzero_ps();
        macc[r] = _mm_setzero_ps();
    }
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        __m256i xv0 = _mm256_loadu_si256((const __m256i *)(xq + 32 * b));
        __m256i xv1 = _mm256_loadu_si256((const __m256i *)(xq + 32 * b + 32));
        __m128 xs = _mm_loadu_ps(ds + 2 * b); /* dx0, sx0, dx1, sx1 */
        if (!own_min) xs = _mm_mul_ps(xs, _mm_setr_ps(1.0f, k, 1.0f, k));
        #pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const uint8_t *b0 = rows[r] + b * bb, *b1 = b0 + bb;
            _mm_prefetch((const char *)b0 + prefetch_offset, _MM_HINT_T0);
            uint32_t u0, u1;
            memcpy(&u0, b0, 4);
            memcpy(&u1, b1, 4);
            __m128 dm = _mm_cvtph_ps(_mm_insert_epi32(_mm_cvtsi32_si128((int)u0), (int)u1, 1));
            if (!own_min) dm = _mm_moveldup_ps(dm); /* d0, d0, d1, d1 */
            __m128 p = _mm_mul_ps(dm, xs);
            macc[r] = _mm_add_ps(macc[r], p);
            __m256 pw = _mm256_castps128_ps256(p);
            float d_unused, m_unused;
            __m256 f0 = block_dot(type, load_block(type, b0, &d_unused, &m_unused), xv0);
            __m256 f1 = block_dot(type, load_block(type, b1, &d_unused, &m_unused), xv1);
            acc[r] = _mm256_fmadd_ps(f0, _mm256_permutevar8x32_ps(pw, lane0), acc[r]);
            acc[r] = _mm256_fmadd_ps(f1, _mm256_permutevar8x32_ps(pw, lane2), acc[r]);
        }
    }
    if (b < nb) { /* an odd last block */
        __m256i xv = _mm256_loadu_si256((const __m256i *)(xq + 32 * b));
        float dx = ds[2 * b], sx = ds[2 * b + 1];
        #pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            float d, m;
            __m256i q = load_block(type, rows[r] + b * bb, &d, &m);
            acc[r] = _mm256_fmadd_ps(block_dot(type, q, xv), _mm256_set1_ps(d * dx), acc[r]);
            tail[r] = m * sx;
        }
    }
    #pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        __m128 m = _mm_add_ps(macc[r], _mm_movehl_ps(macc[r], macc[r])); /* lane 1: offsets of both halves */
        out[r] = cpu_hsum256(acc[r]) + _mm_cvtss_f32(_mm_shuffle_ps(m, m, 1)) + tail[r];
    }
}

static inline __attribute__((always_inline)) void dot_rows(const int type, const uint8_t *w, size_t row_bytes,
                                                           int64_t n_rows, const cpu_qact *act, int64_t t_begin,
                                                           int64_t t_end, float *y, int64_t y_stride) {
    int64_t r0 = 0;
    for (; r0 + 4 <= n_rows; r0 += 4) {
        const uint8_t *rows[4];
        #pragma GCC unroll 4
        for (int r = 0; r < 4; r++) rows[r] = w + (size_t)(r0 + r) * row_bytes;
        for (int64_t t = t_begin; t < t_end; t++) {
            float out[4];
            rows_x1(type, 4, rows, act, t, PF_TILES * 4 * (int64_t)row_bytes, out);
            memcpy(y + t * y_stride + r0, out, sizeof out);
        }
    }
    for (; r0 < n_rows; r0++) {
        const uint8_t *rows[4] = {w + (size_t)r0 * row_bytes};
        for (int64_t t = t_begin; t < t_end; t++) {
            float out[4];
            rows_x1(type, 1, rows, act, t, 0, out);
            y[t * y_stride + r0] = out[0];
        }
    }
}

#define DEFINE_DOT_ROWS(NAME, TYPE)                                                                          \
    static void NAME(const uint8_t *w, size_t row_bytes, int64_t n_rows, const cpu_qact *act, int64_t t_begin, \
                     int64_t t_end, float *y, int64_t y_stride) {                                            \
        dot_rows(TYPE, w, row_bytes, n_rows, act, t_begin, t_end, y, y_stride);                              \
    }
DEFINE_DOT_ROWS(dot_rows_q4_0, DTYPE_Q4_0)
DEFINE_DOT_ROWS(dot_rows_q4_1, DTYPE_Q4_1)
DEFINE_DOT_ROWS(dot_rows_q5_0, DTYPE_Q5_0)
DEFINE_DOT_ROWS(dot_rows_q5_1, DTYPE_Q5_1)
DEFINE_DOT_ROWS(dot_rows_q8_0, DTYPE_Q8_0)

cpu_qdot_rows_fn cpu_qdot_rows_get(uint32_t type) {
    switch (type) {
    case DTYPE_Q4_0: return dot_rows_q4_0;
    case DTYPE_Q4_1: return dot_rows_q4_1;
    case DTYPE_Q5_0: return dot_rows_q5_0;
    case DTYPE_Q5_1: return dot_rows_q5_1;
    case DTYPE_Q8_0: return dot_rows_q8_0;
    case DTYPE_Q4_K: return cpu_qdot_rows_q4_k;
    case DTYPE_Q5_K: return cpu_qdot_rows_q5_k;
    case DTYPE_Q6_K: return cpu_qdot_rows_q6_k;
    default: return NULL;
    }
}
