/* backend/cpu/cpu_quant_dot_kquants.c - expanding K-quant rows (Q4_K, Q5_K, Q6_K) into the
 * shared tile form of cpu_quant_dot.h: one 32-element sub-block (or two 16-element ones for Q6_K)
 * at a time, codes as u8 and the two-level scales folded into f32 per-lane scales and mins.
 * Q2_K and Q3_K are not expanded (the matmul dequantizes them to f32 instead).
 * Block layouts: kernels/ref/dequant.h.
 */
#include <immintrin.h>
#include <string.h>

#include "backend/cpu/cpu_quant_dot.h"
#include "kernels/ref/dequant.h" /* defines: dequant_k4_scale_min, QK_K */

static inline float load_f16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

/* Stores sub-block j (32 elements) of super-block sb: codes, 8 lane scales (4 for each 16),
 * and the two 16-group mins. */
static inline void put_sub(cpu_wtile *tile, int r, int64_t blk, __m256i q, float scale_lo, float scale_hi,
                           float min_lo, float min_hi) {
    int64_t n = tile->n_cols;
    _mm256_storeu_si256((__m256i *)(tile->q + r * n + 32 * blk), q);
    __m256 s = _mm256_set_m128(_mm_set1_ps(scale_hi), _mm_set1_ps(scale_lo));
    _mm256_storeu_ps(tile->scale + r * (n / 4) + 8 * blk, s);
    float *m = tile->min + r * (n / 16) + 2 * blk;
    m[0] = min_lo;
    m[1] = min_hi;
}

/* Q4_K and Q5_K share everything but the fifth bit (qh NULL for Q4_K). */
static inline void expand_k45(const uint8_t *sb, const uint8_t *qs, const uint8_t *qh, cpu_wtile *tile, int r,
                              int64_t blk0) {
    float d = load_f16(sb), dmin = load_f16(sb + 2);
    const uint8_t *scales = sb + 4;
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    __m256i hbits = qh ? _mm256_loadu_si256((const __m256i *)qh) : _mm256_setzero_si256();
    for (int c = 0; c < 4; c++) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));
        __m256i q[2] = {_mm256_and_si256(v, low4), _mm256_and_si256(_mm256_srli_epi16(v, 4), low4)};
        for (int k = 0; k < 2; k++) {
            int j = 2 * c + k;
            if (qh) {
                __m256i bit = _mm256_set1_epi8((char)(1 << j));
                __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(hbits, bit), bit);
                q[k] = _mm256_or_si256(q[k], _mm256_and_si256(set, _mm256_set1_epi8(0x10)));
            }
            uint8_t sc, mn;
            dequant_k4_scale_min(scales, j, &sc, &mn);
            float scale = d * (float)sc, min = -(dmin * (float)mn);
            put_sub(tile, r, blk0 + j, q[k], scale, scale, min, min);
        }
    }
}

void cpu_expand_q4_k(const uint8_t *row, cpu_wtile *tile, int r, bool unsigned_codes) {
    for (int64_t s = 0; s < tile->n_cols / QK_K; s++, row += 144) expand_k45(row, row + 16, NULL, tile, r, 8 * s);
    tile->is_signed = false;
    tile->has_min = true;
}

void cpu_expand_q5_k(const uint8_t *row, cpu_wtile *tile, int r, bool unsigned_codes) {
    for (int64_t s = 0; s < tile->n_cols / QK_K; s++, row += 176)
        expand_k45(row, row + 48, row + 16, tile, r, 8 * s);
    tile->is_signed = false;
    tile->has_min = true;
}

void cpu_expand_q6_k(const uint8_t *row, cpu_wtile *tile, int r, bool unsigned_codes) {
    const __m256i low4 = _mm256_set1_epi8(0x0F), low2 = _mm256_set1_epi8(0x03);
    for (int64_t s = 0; s < tile->n_cols / QK_K; s++, row += 210) {
        const uint8_t *ql = row, *qh = row + 128;
        const int8_t *sc = (const int8_t *)(row + 192);
        float d = load_f16(row + 208);
        for (int h = 0; h < 2; h++) {
            __m256i l0 = _mm256_loadu_si256((const __m256i *)(ql + 64 * h));
            __m256i l1 = _mm256_loadu_si256((const __m256i *)(ql + 64 * h + 32));
            __m256i hv = _mm256_loadu_si256((const __m256i *)(qh + 32 * h));
            __m256i lo[4] = {_mm256_and_si256(l0, low4), _mm256_and_si256(l1, low4),
                             _mm256_and_si256(_mm256_srli_epi16(l0, 4), low4),
                             _mm256_and_si256(_mm256_srli_epi16(l1, 4), low4)};
            for (int k = 0; k < 4; k++) {
                __m256i hi = _mm256_and_si256(_mm256_srli_epi16(hv, 2 * k), low2);
                __m256i q = _mm256_or_si256(lo[k], _mm256_slli_epi16(hi, 4));
                int j = 4 * h + k; /* 32-element sub-block in the super-block */
                float s_lo = d * (float)sc[2 * j], s_hi = d * (float)sc[2 * j + 1];
                put_sub(tile, r, 8 * s + j, q, s_lo, s_hi, -32.0f * s_lo, -32.0f * s_hi);
            }
        }
    }
    tile->is_signed = false;
    tile->has_min = true;
}
