/* backend/cpu/cpu_quant_dot_avx512.c - the AVX-512 VNNI tile kernel of the integer matmul path
 * (cpu_quant_dot.h): 4 weight rows x up to 4 tokens, two 32-element blocks per 512-bit
 * _mm512_dpbusd_epi32 (u8 codes x s8 activations, exact int32 lane sums), each lane scaled into
 * f32 accumulators by (weight lane scale) x (activation block scale). Compiled with -march=x86-64-v4
 * and VNNI; called only when cpu_use_avx512().
 */
#include <immintrin.h>

#include "backend/cpu/cpu_quant_dot.h"

/* [d0 x 8, d1 x 8]: the scales of blocks b and b + 1 over their 8 lanes each. */
static inline __m512 block_pair_scales(const float *d) {
    return _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_broadcast_ss(d)), _mm256_broadcast_ss(d + 1), 1);
}

/* 4 rows x T tokens (T = 1..4, a constant after inlining). */
static inline __attribute__((always_inline)) void tile_4xT(const cpu_wtile *tile, const uint8_t *const wq[4],
                                                           const float *const ws[4], const float *const wm[4],
                                                           const cpu_qact *act, int64_t t, const int T,
                                                           float out[4][4]) {
    const int64_t n = tile->n_cols, nb = n / 32;
    const int8_t *xq[4];
    const float *xd[4];
    #pragma GCC unroll 4
    for (int j = 0; j < T; j++) {
        xq[j] = act->q + (t + j) * n;
        xd[j] = act->d + (t + j) * nb;
    }
    __m512 acc[4][4];
    #pragma GCC unroll 4
    for (int r = 0; r < 4; r++)
        #pragma GCC unroll 4
        for (int j = 0; j < T; j++) acc[r][j] = _mm512_setzero_ps();
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        __m512i xv[4];
        __m512 dx[4];
        #pragma GCC unroll 4
        for (int j = 0; j < T; j++) {
            xv[j] = _mm512_loadu_si512((const void *)(xq[j] + 32 * b));
            dx[j] = block_pair_scales(xd[j] + b);
        }
        #pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            __m512i wv = _mm512_loadu_si512((const void *)(wq[r] + 32 * b));
            __m512 sv = _mm512_loadu_ps(ws[r] + 8 * b);
            #pragma GCC unroll 4
            for (int j = 0; j < T; j++) {
                __m512i isum = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wv, xv[j]);
                acc[r][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(sv, dx[j]), acc[r][j]);
            }
        }
    }
    if (b < nb) { /* one last 32-element block: the upper halves load as zeros */
        const __mmask64 m8 = 0xFFFFFFFFull;
        const __mmask16 m32 = 0x00FF;
        __m512i xv[4];
        __m512 dx[4];
        #pragma GCC unroll 4
        for (int j = 0; j < T; j++) {
            xv[j] = _mm512_maskz_loadu_epi8(m8, xq[j] + 32 * b);
            dx[j] = _mm512_set1_ps(xd[j][b]);
        }
        #pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            __m512i wv = _mm512_maskz_loadu_epi8(m8, wq[r] + 32 * b);
            __m512 sv = _mm512_maskz_loadu_ps(m32, ws[r] + 8 * b);
            #pragma GCC unroll 4
            for (int j = 0; j < T; j++) {
                __m512i isum = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wv, xv[j]);
                acc[r][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(sv, dx[j]), acc[r][j]);
            }
        }
    }
    if (tile->has_min) { /* + sum_g min[g] * s16[g], into the same accumulators */
        const int64_t n_groups = n / 16;
        for (int64_t g = 0; g < n_groups; g += 16) {
            __mmask16 m = n_groups - g >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n_groups - g)) - 1);
            __m512 sv[4];
            #pragma GCC unroll 4
            for (int j = 0; j < T; j++) sv[j] = _mm512_maskz_loadu_ps(m, act->s16 + (t + j) * n_groups + g);
            #pragma GCC unroll 4
            for (int r = 0; r < 4; r++) {
                __m512 mv = _mm512_maskz_loadu_ps(m, wm[r] + g);
                #pragma GCC unroll 4
                for (int j = 0; j < T; j++) acc[r][j] = _mm512_fmadd_ps(mv, sv[j], acc[r][j]);
            }
        }
    }
    #pragma GCC unroll 4
    for (int r = 0; r < 4; r++)
        #pragma GCC unroll 4
        for (int j = 0; j < T; j++) out[r][j] = _mm512_reduce_add_ps(acc[r][j]);
}

void cpu_qdot_tile_avx512(const cpu_wtile *tile, int n_rows, const cpu_qact *act, int64_t t_begin,
                          int64_t t_end, float *y, int64_t y_stride) {
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
    for (int64_t t = t_begin; t < t_end; t += 4) {
        float out[4][4];
        int T = t_end - t < 4 ? (int)(t_end - t) : 4;
        switch (T) {
        case 4: tile_4xT(tile, wq, ws, wm, act, t, 4, out); break;
        case 3: tile_4xT(tile, wq, ws, wm, act, t, 3, out); break;
        case 2: tile_4xT(tile, wq, ws, wm, act, t, 2, out); break;
        default: tile_4xT(tile, wq, ws, wm, act, t, 1, out); break;
        }
        for (int j = 0; j < T; j++)
            for (int r = 0; r < n_rows; r++) y[(t + j) * y_stride + r] = out[r][j];
    }
}
