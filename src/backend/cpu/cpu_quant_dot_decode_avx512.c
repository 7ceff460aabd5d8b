/* backend/cpu/cpu_quant_dot_decode_avx512.c - fused AVX-512 VNNI few-token kernels for the legacy
 * 32-element types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0); the AVX2 ones (cpu_quant_dot_decode.c) explain
 * the idea. Two blocks per step: their codes are unpacked into one zmm of u8 (Q8_0's s8 codes
 * flipped to code + 128, with -128 d as the offset), one _mm512_dpbusd_epi32 against the token's
 * 64 int8 values, then one FMA with [d_w0 d_x0 x 8 lanes, d_w1 d_x1 x 8 lanes]. An odd last block
 * takes the 256-bit form of the same instructions. Compiled with -march=x86-64-v4 -mavx512vnni;
 * called only when cpu_use_avx512().
 */
#include <immintrin.h>
#include <stdbool.h>
#include <string.h>

#include "backend/cpu/cpu_quant_dot.h" /* defines: cpu_qact, cpu_qdot_rows_fn */
#include "core/dtype.h"                /* defines: DTYPE_* */

enum {
    PF_TILES = 3,          /* prefetch the same block this many 4-row tiles ahead */
    CACHED_MIN_TOKENS = 3, /* from this many tokens, unpack a 4-row tile once for all of them */
};

static inline float load_f16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
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

/* Offset of qs in a block, and of qh (0: none). */
static inline int qs_offset(const int type) {
    return type == DTYPE_Q4_0 ? 2 : type == DTYPE_Q4_1 ? 4 : type == DTYPE_Q5_0 ? 6 : type == DTYPE_Q5_1 ? 8 : 2;
}
static inline int qh_offset(const int type) { return type == DTYPE_Q5_0 ? 2 : type == DTYPE_Q5_1 ? 4 : 0; }

/* Scale and offset of a block: w = d q + m with q the u8 code. */
static inline __attribute__((always_inline)) void block_scales(const int type, const uint8_t *blk, float *d, float *m) {
    *d = load_f16(blk);
    switch (type) {
    case DTYPE_Q4_0: *m = -8.0f * *d; break;
    case DTYPE_Q5_0: *m = -16.0f * *d; break;
    case DTYPE_Q8_0: *m = -128.0f * *d; break;
    default: *m = load_f16(blk + 2); break; /* Q4_1, Q5_1 */
    }
}

/* u8 codes of blocks b0 and b1 (64 elements in order). */
static inline __attribute__((always_inline)) __m512i pair_codes(const int type, const uint8_t *b0, const uint8_t *b1) {
    if (type == DTYPE_Q8_0) {
        __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(b0 + 2))),
                                       _mm256_loadu_si256((const __m256i *)(b1 + 2)), 1);
        return _mm512_xor_si512(z, _mm512_set1_epi8((char)0x80));
    }
    const int qs = qs_offset(type), qh = qh_offset(type);
    __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(b0 + qs))),
                                        _mm_loadu_si128((const __m128i *)(b1 + qs)), 1);
    /* 128-bit lanes: [lo nibbles b0 | lo b1 | hi b0 | hi b1] -> [lo b0 | hi b0 | lo b1 | hi b1] */
    __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(v), _mm256_srli_epi16(v, 4), 1);
    z = _mm512_and_si512(z, _mm512_set1_epi8(0x0F));
    z = _mm512_shuffle_i64x2(z, z, _MM_SHUFFLE(3, 1, 2, 0));
    if (qh) {
        uint32_t h0, h1;
        memcpy(&h0, b0 + qh, 4);
        memcpy(&h1, b1 + qh, 4);
        __mmask64 bits = (__mmask64)h0 | ((__mmask64)h1 << 32);
        z = _mm512_or_si512(z, _mm512_maskz_mov_epi8(bits, _mm512_set1_epi8(0x10)));
    }
    return z;
}

/* u8 codes of one block (the odd last one). */
static inline __attribute__((always_inline)) __m256i block_codes(const int type, const uint8_t *b0) {
    if (type == DTYPE_Q8_0)
        return _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(b0 + 2)), _mm256_set1_epi8((char)0x80));
    const int qs = qs_offset(type), qh = qh_offset(type);
    __m128i v = _mm_loadu_si128((const __m128i *)(b0 + qs));
    __m256i z = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(v, 4), v), _mm256_set1_epi8(0x0F));
    if (qh) {
        uint32_t h0;
        memcpy(&h0, b0 + qh, 4);
        z = _mm256_or_si256(z, _mm256_maskz_mov_epi8((__mmask32)h0, _mm256_set1_epi8(0x10)));
    }
    return z;
}

/* A weight block pair made ready for the dot product: the u8 codes of the 64 elements and the
 * blocks' [d0, m0, d1, m1] (or [d0, d0, d1, d1] for types whose offset is k d). */
typedef struct pair_weights {
    __m512i codes;
    __m128 dm;
} pair_weights;

static inline __attribute__((always_inline)) pair_weights pair_load(const int type, const uint8_t *b0,
                                                                    const uint8_t *b1) {
    const bool own_min = type == DTYPE_Q4_1 || type == DTYPE_Q5_1;
    uint32_t u0, u1;
    memcpy(&u0, b0, 4);
    memcpy(&u1, b1, 4);
    __m128 dm = _mm_cvtph_ps(_mm_insert_epi32(_mm_cvtsi32_si128((int)u0), (int)u1, 1));
    if (!own_min) dm = _mm_moveldup_ps(dm); /* d0, d0, d1, d1 */
    return (pair_weights){pair_codes(type, b0, b1), dm};
}

/* One block pair of one row into one token's accumulators: the arithmetic every path shares, so a
 * token's result does not depend on how many tokens a call has (batch invariance). */
static inline __attribute__((always_inline)) void pair_step(pair_weights w, __m512i xv, __m128 xs, __m512 *acc,
                                                            __m128 *macc) {
    const __m512i expand = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2);
    __m128 p = _mm_mul_ps(w.dm, xs);
    *macc = _mm_add_ps(*macc, p);
    __m512 sv = _mm512_permutexvar_ps(expand, _mm512_castps128_ps512(p));
    __m512i isum = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w.codes, xv);
    *acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), sv, *acc);
}

/* The odd last block of one row into one token's accumulators; returns the offset term. */
static inline __attribute__((always_inline)) float last_block_step(const int type, const uint8_t *b0, __m256i xv,
                                                                   float dx, float sx, __m512 *acc) {
    float d, m;
    block_scales(type, b0, &d, &m);
    __m256i isum = _mm256_dpbusd_epi32(_mm256_setzero_si256(), block_codes(type, b0), xv);
    __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(d * dx));
    *acc = _mm512_add_ps(*acc, _mm512_zextps256_ps512(f));
    return m * sx;
}

/* The token's (d_x, sum) pairs of blocks b, b + 1, with k folded in for types whose offset is k d. */
static inline __attribute__((always_inline)) __m128 pair_xs(const int type, const float *ds, int64_t b) {
    const bool own_min = type == DTYPE_Q4_1 || type == DTYPE_Q5_1;
    const float k = type == DTYPE_Q4_0 ? -8.0f : type == DTYPE_Q5_0 ? -16.0f : -128.0f;
    __m128 xs = _mm_loadu_ps(ds + 2 * b); /* dx0, sx0, dx1, sx1 */
    if (!own_min) xs = _mm_mul_ps(xs, _mm_setr_ps(1.0f, k, 1.0f, k));
    return xs;
}

static inline __attribute__((always_inline)) float finish_row(__m512 acc, __m128 macc, float tail) {
    __m128 m = _mm_add_ps(macc, _mm_movehl_ps(macc, macc)); /* lane 1: offsets of both halves */
    return _mm512_reduce_add_ps(acc) + _mm_cvtss_f32(_mm_shuffle_ps(m, m, 1)) + tail;
}

/* R rows (1 or 4) x one token. Per block pair and row, the two blocks' f16 (d, m) fields are
 * converted together and multiplied with the token's (d_x, sum) pairs in one 128-bit product:
 * [d0 dx0, m0 sx0, d1 dx1, m1 sx1]; lanes 0 and 2 become the FMA's scale vector, lanes 1 and 3 add
 * up the offset terms. Types whose offset is k d (Q4_0 k = -8, Q5_0 -16, Q8_0 -128) duplicate d
 * and fold k into the token's sums. */
static inline __attribute__((always_inline)) void rows_x1(const int type, const int R, const uint8_t *const rows[4],
                                                          const cpu_qact *act, int64_t t, int64_t prefetch_offset,
                                                          float out[4]) {
    const int64_t n = act->n_cols, nb = n / 32;
    const int bb = block_bytes(type);
    const int8_t *xq = act->q + t * n;
    const float *ds = act->ds + t * 2 * nb;
    __m512 acc[4];
    __m128 macc[4];
    float tail[4] = {0, 0, 0, 0};
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        acc[r] = _mm512_setzero_ps();
        macc[r] = _mm_setzero_ps();
    }
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        __m512i xv = _mm512_loadu_si512((const void *)(xq + 32 * b));
        __m128 xs = pair_xs(type, ds, b);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const uint8_t *b0 = rows[r] + b * bb;
            _mm_prefetch((const char *)b0 + prefetch_offset, _MM_HINT_T0);
            pair_step(pair_load(type, b0, b0 + bb), xv, xs, &acc[r], &macc[r]);
        }
    }
    if (b < nb) {
        __m256i xv = _mm256_loadu_si256((const __m256i *)(xq + 32 * b));
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) tail[r] = last_block_step(type, rows[r] + b * bb, xv, ds[2 * b], ds[2 * b + 1], &acc[r]);
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) out[r] = finish_row(acc[r], macc[r], tail[r]);
}

/* 4 rows x tokens [t_begin, t_end): the rows' block pairs are unpacked once into w ([4][n_pairs]),
 * then each token runs the same pair_step arithmetic as rows_x1, two tokens at a time. */
static inline __attribute__((always_inline)) void rows_xT(const int type, const uint8_t *const rows[4],
                                                          const cpu_qact *act, int64_t t_begin, int64_t t_end,
                                                          pair_weights *w, float *y, int64_t y_stride) {
    const int64_t n = act->n_cols, nb = n / 32, n_pairs = nb / 2;
    const int bb = block_bytes(type);
    for (int r = 0; r < 4; r++)
        for (int64_t i = 0; i < n_pairs; i++) {
            const uint8_t *b0 = rows[r] + 2 * i * bb;
            w[r * n_pairs + i] = pair_load(type, b0, b0 + bb);
        }
    int64_t t = t_begin;
    for (; t + 2 <= t_end; t += 2) {
        const int8_t *xq0 = act->q + t * n, *xq1 = xq0 + n;
        const float *ds0 = act->ds + t * 2 * nb, *ds1 = ds0 + 2 * nb;
        __m512 acc0[4], acc1[4];
        __m128 macc0[4], macc1[4];
        float tail0[4] = {0, 0, 0, 0}, tail1[4] = {0, 0, 0, 0};
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            acc0[r] = acc1[r] = _mm512_setzero_ps();
            macc0[r] = macc1[r] = _mm_setzero_ps();
        }
        for (int64_t i = 0; i < n_pairs; i++) {
            __m512i xv0 = _mm512_loadu_si512((const void *)(xq0 + 64 * i));
            __m512i xv1 = _mm512_loadu_si512((const void *)(xq1 + 64 * i));
            __m128 xs0 = pair_xs(type, ds0, 2 * i), xs1 = pair_xs(type, ds1, 2 * i);
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++) {
                pair_weights pw = w[r * n_pairs + i];
                pair_step(pw, xv0, xs0, &acc0[r], &macc0[r]);
                pair_step(pw, xv1, xs1, &acc1[r], &macc1[r]);
            }
        }
        if (nb % 2) {
            int64_t b = nb - 1;
            __m256i xv0 = _mm256_loadu_si256((const __m256i *)(xq0 + 32 * b));
            __m256i xv1 = _mm256_loadu_si256((const __m256i *)(xq1 + 32 * b));
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++) {
                tail0[r] = last_block_step(type, rows[r] + b * bb, xv0, ds0[2 * b], ds0[2 * b + 1], &acc0[r]);
                tail1[r] = last_block_step(type, rows[r] + b * bb, xv1, ds1[2 * b], ds1[2 * b + 1], &acc1[r]);
            }
        }
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            y[t * y_stride + r] = finish_row(acc0[r], macc0[r], tail0[r]);
            y[(t + 1) * y_stride + r] = finish_row(acc1[r], macc1[r], tail1[r]);
        }
    }
    if (t < t_end) {
        float out[4];
        rows_x1(type, 4, rows, act, t, 0, out);
        memcpy(y + t * y_stride, out, sizeof out);
    }
}

static inline __attribute__((always_inline)) void dot_rows(const int type, const uint8_t *w, size_t row_bytes,
                                                           int64_t n_rows, const cpu_qact *act, int64_t t_begin,
                                                           int64_t t_end, float *y, int64_t y_stride) {
    int64_t r0 = 0;
    if (t_end - t_begin >= CACHED_MIN_TOKENS) { /* several tokens: unpack each row once */
        const int64_t n_pairs = act->n_cols / 64;
        pair_weights w_cache[4 * (n_pairs > 0 ? n_pairs : 1)];
        for (; r0 + 4 <= n_rows; r0 += 4) {
            const uint8_t *rows[4];
            for (int r = 0; r < 4; r++) rows[r] = w + (size_t)(r0 + r) * row_bytes;
            rows_xT(type, rows, act, t_begin, t_end, w_cache, y + r0, y_stride);
        }
    }
    for (; r0 + 4 <= n_rows; r0 += 4) {
        const uint8_t *rows[4];
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

cpu_qdot_rows_fn cpu_qdot_rows_get_avx512(uint32_t type) {
    switch (type) {
    case DTYPE_Q4_0: return dot_rows_q4_0;
    case DTYPE_Q4_1: return dot_rows_q4_1;
    case DTYPE_Q5_0: return dot_rows_q5_0;
    case DTYPE_Q5_1: return dot_rows_q5_1;
    case DTYPE_Q8_0: return dot_rows_q8_0;
    default: return NULL;
    }
}
