/* backend/cpu/cpu_quant_dot.c - the AVX2 half of the integer matmul path (see cpu_quant_dot.h):
 * quantizing activation rows to 8 bits, expanding the legacy 32-element weight types (Q4_0, Q4_1,
 * Q5_0, Q5_1, Q8_0) into the shared tile form, and the AVX2 tile kernel (4 rows x 1-2 tokens of
 * maddubs/madd integer dot products, scaled into f32 accumulators per 32-element block).
 * The K-quant expanders are in cpu_quant_dot_kquants.c, the AVX-512 VNNI kernel in
 * cpu_quant_dot_avx512.c.
 */
#include "backend/cpu/cpu_quant_dot.h"

#include <immintrin.h>
#include <string.h>

#include "backend/cpu/cpu_internal.h" /* defines: cpu_hsum256 */
#include "core/dtype.h"               /* defines: DTYPE_* */

/* ---------------------------------------------------------------------------------------------
 * Activation quantization
 * ------------------------------------------------------------------------------------------- */

static inline float hmax256(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

static inline int32_t hsum256_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

void cpu_qact_quantize(const float *x, int64_t t_begin, int64_t t_end, int64_t t_base, cpu_qact *act) {
    const int64_t n = act->n_cols, nb = n / 32;
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7); /* undoes packs' lane interleave */
    for (int64_t t = t_begin; t < t_end; t++) {
        const float *xt = x + t * n;
        int8_t *q = act->q + (t - t_base) * n;
        float *d = act->d + (t - t_base) * nb;
        float *s16 = act->s16 + (t - t_base) * nb * 2;
        float *ds = act->ds + (t - t_base) * nb * 2;
        for (int64_t b = 0; b < nb; b++) {
            const float *xb = xt + 32 * b;
            __m256 v0 = _mm256_loadu_ps(xb), v1 = _mm256_loadu_ps(xb + 8);
            __m256 v2 = _mm256_loadu_ps(xb + 16), v3 = _mm256_loadu_ps(xb + 24);
            __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_and_ps(v0, abs_mask), _mm256_and_ps(v1, abs_mask)),
                                     _mm256_max_ps(_mm256_and_ps(v2, abs_mask), _mm256_and_ps(v3, abs_mask)));
            float amax = hmax256(m);
            float db = amax / 127.0f;
            __m256 inv = _mm256_set1_ps(amax > 0 ? 127.0f / amax : 0.0f);
            /* round to nearest (even), the default rounding mode */
            __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(v0, inv));
            __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(v1, inv));
            __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(v2, inv));
            __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(v3, inv));
            d[b] = db;
            s16[2 * b] = db * (float)hsum256_epi32(_mm256_add_epi32(i0, i1));
            s16[2 * b + 1] = db * (float)hsum256_epi32(_mm256_add_epi32(i2, i3));
            ds[2 * b] = db;
            ds[2 * b + 1] = s16[2 * b] + s16[2 * b + 1];
            __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
            _mm256_storeu_si256((__m256i *)(q + 32 * b), _mm256_permutevar8x32_epi32(p, order));
        }
    }
}

/* ---------------------------------------------------------------------------------------------
 * Expanding legacy blocks
 * ------------------------------------------------------------------------------------------- */

static inline float load_f16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

/* The 32 nibbles of qs[16]: element e < 16 is the low nibble of qs[e], e + 16 the high one. */
static inline __m256i unpack_nibbles(const uint8_t *qs) {
    __m128i v = _mm_loadu_si128((const __m128i *)qs);
    __m256i both = _mm256_set_m128i(_mm_srli_epi16(v, 4), v);
    return _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
}

/* 0x10 in byte e where bit e of the little-endian u32 at qh is set. */
static inline __m256i unpack_high_bits(const uint8_t *qh) {
    uint32_t bits;
    memcpy(&bits, qh, 4);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits),
                                    _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202,
                                                      0x0101010101010101, 0x0000000000000000));
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
    return _mm256_and_si256(set, _mm256_set1_epi8(0x10));
}

/* Stores one 32-element block's codes, its scale (8 lanes) and min (2 groups of 16). */
static inline void put_block(cpu_wtile *tile, int r, int64_t b, __m256i q, float scale, float min) {
    int64_t n = tile->n_cols;
    _mm256_storeu_si256((__m256i *)(tile->q + r * n + 32 * b), q);
    _mm256_storeu_ps(tile->scale + r * (n / 4) + 8 * b, _mm256_set1_ps(scale));
    float *m = tile->min + r * (n / 16) + 2 * b;
    m[0] = min;
    m[1] = min;
}

void cpu_expand_q4_0(const uint8_t *row, cpu_wtile *tile, int r, bool unsigned_codes) {
    for (int64_t b = 0; b < tile->n_cols / 32; b++, row += 18) {
        float d = load_f16(row);
        put_block(tile, r, b, unpack_nibbles(row + 2), d, -8.0f * d);
    }
    tile->is_signed = false;
    tile->has_min = true;
}

void cpu_expand_q4_1(const uint8_t *row, cpu_wtile *tile, int r, bool unsigned_codes) {
    for (int64_t b = 0; b < tile->n_cols / 32; b++, row += 20)
        put_block(tile, r, b, unpack_nibbles(row + 4), load_f16(row), load_f16(row + 2));
    tile->is_signed = false;
    tile->has_min = true;
}

void cpu_expand_q5_0(const uint8_t *row, cpu_wtile *tile, int r, bool unsigned_codes) {
    for (int64_t b = 0; b < tile->n_cols / 32; b++, row += 22) {
        float d = load_f16(row);
        __m256i q = _mm256_or_si256(unpack_nibbles(row + 6), unpack_high_bits(row + 2));
        put_block(tile, r, b, q, d, -16.0f * d);
    }
    tile->is_signed = false;
    tile->has_min = true;
}

void cpu_expand_q5_1(const uint8_t *row, cpu_wtile *tile, int r, bool unsigned_codes) {
    for (int64_t b = 0; b < tile->n_cols / 32; b++, row += 24) {
        __m256i q = _mm256_or_si256(unpack_nibbles(row + 8), unpack_high_bits(row + 4));
        put_block(tile, r, b, q, load_f16(row), load_f16(row + 2));
    }
    tile->is_signed = false;
    tile->has_min = true;
}

void cpu_expand_q8_0(const uint8_t *row, cpu_wtile *tile, int r, bool unsigned_codes) {
    const __m256i flip = _mm256_set1_epi8((char)0x80);
    for (int64_t b = 0; b < tile->n_cols / 32; b++, row += 34) {
        float d = load_f16(row);
        __m256i q = _mm256_loadu_si256((const __m256i *)(row + 2));
        if (unsigned_codes) q = _mm256_xor_si256(q, flip); /* code + 128 */
        put_block(tile, r, b, q, d, unsigned_codes ? -128.0f * d : 0.0f);
    }
    tile->is_signed = !unsigned_codes;
    tile->has_min = unsigned_codes;
}

cpu_expand_fn cpu_expand_get(uint32_t type) {
    switch (type) {
    case DTYPE_Q4_0: return cpu_expand_q4_0;
    case DTYPE_Q4_1: return cpu_expand_q4_1;
    case DTYPE_Q5_0: return cpu_expand_q5_0;
    case DTYPE_Q5_1: return cpu_expand_q5_1;
    case DTYPE_Q8_0: return cpu_expand_q8_0;
    case DTYPE_Q4_K: return cpu_expand_q4_k;
    case DTYPE_Q5_K: return cpu_expand_q5_k;
    case DTYPE_Q6_K: return cpu_expand_q6_k;
    default: return NULL;
    }
}

/* ---------------------------------------------------------------------------------------------
 * AVX2 tile kernel
 * ------------------------------------------------------------------------------------------- */

/* 8 int32 lanes, lane k = sum of w[4k..4k+3] * x[4k..4k+3] (w u8, x s8; pair sums fit int16). */
static inline __m256i dot_u8s8(__m256i w, __m256i x) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), _mm256_set1_epi16(1));
}

/* 4 rows x T tokens (T = 1 or 2, a constant after inlining). */
static inline __attribute__((always_inline)) void tile_4xT(const cpu_wtile *tile, const uint8_t *const wq[4],
                                                           const float *const ws[4], const float *const wm[4],
                                                           const cpu_qact *act,
                                                           int64_t t, const int T, const bool is_signed,
                                                           __m256 acc[4][2]) {
    const int64_t n = tile->n_cols, nb = n / 32;
    const int8_t *xq[2];
    const float *xd[2];
    #pragma GCC unroll 4
    for (int j = 0; j < 2; j++) {
        int64_t tj = t + (j < T ? j : 0);
        xq[j] = act->q + tj * n;
        xd[j] = act->d + tj * nb;
    }
    #pragma GCC unroll 4
    for (int r = 0; r < 4; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        __m256i xv[2];
        __m256 dx[2];
        #pragma GCC unroll 4
        for (int j = 0; j < T; j++) {
            xv[j] = _mm256_loadu_si256((const __m256i *)(xq[j] + 32 * b));
            dx[j] = _mm256_broadcast_ss(xd[j] + b);
        }
        #pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            __m256i wv = _mm256_loadu_si256((const __m256i *)(wq[r] + 32 * b));
            __m256 sv = _mm256_loadu_ps(ws[r] + 8 * b);
            #pragma GCC unroll 4
            for (int j = 0; j < T; j++) {
                __m256i isum = is_signed ? dot_u8s8(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(xv[j], wv))
                                         : dot_u8s8(wv, xv[j]);
                acc[r][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(sv, dx[j]), acc[r][j]);
            }
        }
    }
    if (tile->has_min) { /* + sum_g min[g] * s16[g], into the same accumulators */
        const int64_t n_groups = n / 16; /* a multiple of 2: n is a multiple of 32 */
        const float *sx[2];
        for (int j = 0; j < 2; j++) sx[j] = act->s16 + (t + (j < T ? j : 0)) * n_groups;
        int64_t g = 0;
        for (; g + 8 <= n_groups; g += 8) {
            __m256 sv[2];
            #pragma GCC unroll 4
            for (int j = 0; j < T; j++) sv[j] = _mm256_loadu_ps(sx[j] + g);
            #pragma GCC unroll 4
            for (int r = 0; r < 4; r++) {
                __m256 mv = _mm256_loadu_ps(wm[r] + g);
                #pragma GCC unroll 4
                for (int j = 0; j < T; j++) acc[r][j] = _mm256_fmadd_ps(mv, sv[j], acc[r][j]);
            }
        }
        if (g < n_groups) { /* 2, 4 or 6 groups left */
            const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(n_groups - g)), lanes);
            __m256 sv[2];
            #pragma GCC unroll 4
            for (int j = 0; j < T; j++) sv[j] = _mm256_maskload_ps(sx[j] + g, m);
            #pragma GCC unroll 4
            for (int r = 0; r < 4; r++) {
                __m256 mv = _mm256_maskload_ps(wm[r] + g, m);
                #pragma GCC unroll 4
                for (int j = 0; j < T; j++) acc[r][j] = _mm256_fmadd_ps(mv, sv[j], acc[r][j]);
            }
        }
    }
}

void cpu_qdot_tile_avx2(const cpu_wtile *tile, int n_rows, const cpu_qact *act, int64_t t_begin, int64_t t_end,
                        float *y, int64_t y_stride) {
    const int64_t n = tile->n_cols;
    const uint8_t *wq[4];
    const float *ws[4], *wm[4];
    #pragma GCC unroll 4
    for (int r = 0; r < 4; r++) {
        int rr = r < n_rows ? r : 0; /* missing rows repeat row 0; their results are dropped */
        wq[r] = tile->q + rr * n;
        ws[r] = tile->scale + rr * (n / 4);
        wm[r] = tile->min + rr * (n / 16);
    }
    for (int64_t t = t_begin; t < t_end; t += 2) {
        __m256 acc[4][2];
        int T = t + 1 < t_end ? 2 : 1;
        if (tile->is_signed) {
            if (T == 2) tile_4xT(tile, wq, ws, wm, act, t, 2, true, acc);
            else tile_4xT(tile, wq, ws, wm, act, t, 1, true, acc);
        } else {
            if (T == 2) tile_4xT(tile, wq, ws, wm, act, t, 2, false, acc);
            else tile_4xT(tile, wq, ws, wm, act, t, 1, false, acc);
        }
        #pragma GCC unroll 4
        for (int j = 0; j < T; j++) {
            float *yt = y + (t + j) * y_stride;
            for (int r = 0; r < n_rows; r++) yt[r] = cpu_hsum256(acc[r][j]);
        }
    }
}
