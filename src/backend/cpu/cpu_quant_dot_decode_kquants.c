/* backend/cpu/cpu_quant_dot_decode_kquants.c - fused AVX2 few-token kernels for Q4_K, Q5_K and
 * Q6_K (see cpu_quant_dot_decode.c for the legacy types and the idea).
 *
 * Activations carry one scale per 32 elements (cpu_quant_dot.h), so each 32-element sub-block
 * gives one integer dot (8 int32 lanes), converted and scaled by d_w * sc * d_x into an f32
 * accumulator. Q6_K's two 16-element scales are folded into the integer dot: _mm256_madd_epi16
 * multiplies the maddubs pair sums by a vector holding sc_lo in its lower half and sc_hi in its
 * upper half instead of ones. Offsets (Q4_K/Q5_K mins, Q6_K's -32) use the activation sums.
 */
#include <immintrin.h>
#include <string.h>

#include "backend/cpu/cpu_internal.h"  /* defines: cpu_hsum256 */
#include "backend/cpu/cpu_quant_dot.h" /* defines: cpu_qact, cpu_qdot_rows_fn */
#include "core/dtype.h"                /* defines: DTYPE_* */

enum { PF_TILES = 1 }; /* prefetch the same super-block this many 4-row tiles ahead */

static inline float load_f16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

/* The 8 six-bit scales and mins of a Q4_K / Q5_K super-block (layout: kernels/ref/dequant.h). */
static inline void unpack_scales_k4(const uint8_t *s, float sc[8], float mn[8]) {
    for (int j = 0; j < 4; j++) {
        sc[j] = (float)(s[j] & 63);
        mn[j] = (float)(s[j + 4] & 63);
        sc[j + 4] = (float)((s[j + 8] & 15) | ((s[j] >> 6) << 4));
        mn[j + 4] = (float)((s[j + 8] >> 4) | ((s[j + 4] >> 6) << 4));
    }
}

/* R rows (1 or 4) x one token, for one K type. */
static inline __attribute__((always_inline)) void rows_x1(const int type, const int R, const uint8_t *const rows[4],
                                                          const cpu_qact *act, int64_t t, int64_t prefetch_offset,
                                                          float out[4]) {
    const int64_t n = act->n_cols, nb = n / 32, n_super = n / 256;
    const int bb = type == DTYPE_Q4_K ? 144 : type == DTYPE_Q5_K ? 176 : 210;
    const int8_t *xq = act->q + t * n;
    const float *xd = act->d + t * nb, *s16 = act->s16 + t * 2 * nb;
    const __m256i low4 = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
    __m256 acc[4];
    float macc[4] = {0, 0, 0, 0};
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) acc[r] = _mm256_setzero_ps();
    for (int64_t s = 0; s < n_super; s++) {
        const int8_t *xs = xq + 256 * s;
        const float *dx = xd + 8 * s, *sx = s16 + 16 * s;
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const uint8_t *blk = rows[r] + s * bb;
            _mm_prefetch((const char *)blk + prefetch_offset, _MM_HINT_T0);
            _mm_prefetch((const char *)blk + prefetch_offset + 64, _MM_HINT_T0);
            _mm_prefetch((const char *)blk + prefetch_offset + 128, _MM_HINT_T0);
            if (type == DTYPE_Q6_K) {
                const uint8_t *ql = blk, *qh = blk + 128;
                const int8_t *sc = (const int8_t *)(blk + 192);
                float d = load_f16(blk + 208);
                float m = 0;
                for (int h = 0; h < 2; h++) {
                    __m256i l0 = _mm256_loadu_si256((const __m256i *)(ql + 64 * h));
                    __m256i l1 = _mm256_loadu_si256((const __m256i *)(ql + 64 * h + 32));
                    __m256i hv = _mm256_loadu_si256((const __m256i *)(qh + 32 * h));
                    __m256i lo[4] = {_mm256_and_si256(l0, low4), _mm256_and_si256(l1, low4),
                                     _mm256_and_si256(_mm256_srli_epi16(l0, 4), low4),
                                     _mm256_and_si256(_mm256_srli_epi16(l1, 4), low4)};
#pragma GCC unroll 4
                    for (int k = 0; k < 4; k++) {
                        int j = 4 * h + k;
                        __m256i hi = _mm256_and_si256(_mm256_srli_epi16(hv, 2 * k), _mm256_set1_epi8(3));
                        __m256i q = _mm256_or_si256(lo[k], _mm256_slli_epi16(hi, 4));
                        __m256i xv = _mm256_loadu_si256((const __m256i *)(xs + 32 * j));
                        __m256i scv = _mm256_set_m128i(_mm_set1_epi16(sc[2 * j + 1]), _mm_set1_epi16(sc[2 * j]));
                        __m256i isum = _mm256_madd_epi16(_mm256_maddubs_epi16(q, xv), scv);
                        acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(d * dx[j]), acc[r]);
                        m += (float)sc[2 * j] * sx[2 * j] + (float)sc[2 * j + 1] * sx[2 * j + 1];
                    }
                }
                macc[r] -= 32.0f * d * m;
            } else {
                float d = load_f16(blk), dmin = load_f16(blk + 2);
                float sc[8], mn[8];
                unpack_scales_k4(blk + 4, sc, mn);
                const uint8_t *qs = blk + (type == DTYPE_Q4_K ? 16 : 48);
                __m256i hbits = type == DTYPE_Q5_K ? _mm256_loadu_si256((const __m256i *)(blk + 16))
                                                   : _mm256_setzero_si256();
                float m = 0;
#pragma GCC unroll 4
                for (int c = 0; c < 4; c++) {
                    __m256i v = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));
                    __m256i q2[2] = {_mm256_and_si256(v, low4), _mm256_and_si256(_mm256_srli_epi16(v, 4), low4)};
#pragma GCC unroll 2
                    for (int k = 0; k < 2; k++) {
                        int j = 2 * c + k;
                        __m256i q = q2[k];
                        if (type == DTYPE_Q5_K) {
                            __m256i bit = _mm256_and_si256(_mm256_srli_epi16(hbits, j), _mm256_set1_epi8(1));
                            q = _mm256_or_si256(q, _mm256_slli_epi16(bit, 4));
                        }
                        __m256i xv = _mm256_loadu_si256((const __m256i *)(xs + 32 * j));
                        __m256i isum = _mm256_madd_epi16(_mm256_maddubs_epi16(q, xv), ones);
                        acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(d * sc[j] * dx[j]), acc[r]);
                        m += mn[j] * (sx[2 * j] + sx[2 * j + 1]);
                    }
                }
                macc[r] -= dmin * m;
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) out[r] = cpu_hsum256(acc[r]) + macc[r];
}

static inline __attribute__((always_inline)) void dot_rows(const int type, const uint8_t *w, size_t row_bytes,
                                                           int64_t n_rows, const cpu_qact *act, int64_t t_begin,
                                                           int64_t t_end, float *y, int64_t y_stride) {
    int64_t r0 = 0;
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

void cpu_qdot_rows_q4_k(const uint8_t *w, size_t row_bytes, int64_t n_rows, const cpu_qact *act, int64_t t_begin,
                        int64_t t_end, float *y, int64_t y_stride) {
    dot_rows(DTYPE_Q4_K, w, row_bytes, n_rows, act, t_begin, t_end, y, y_stride);
}

void cpu_qdot_rows_q5_k(const uint8_t *w, size_t row_bytes, int64_t n_rows, const cpu_qact *act, int64_t t_begin,
                        int64_t t_end, float *y, int64_t y_stride) {
    dot_rows(DTYPE_Q5_K, w, row_bytes, n_rows, act, t_begin, t_end, y, y_stride);
}

void cpu_qdot_rows_q6_k(const uint8_t *w, size_t row_bytes, int64_t n_rows, const cpu_qact *act, int64_t t_begin,
                        int64_t t_end, float *y, int64_t y_stride) {
    dot_rows(DTYPE_Q6_K, w, row_bytes, n_rows, act, t_begin, t_end, y, y_stride);
}
