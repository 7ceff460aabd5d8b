/* kernels/ref/quantize_kquants.c - simple reference quantizers for Q2_K, Q3_K, Q4_K, Q5_K, Q6_K.
 *
 * One pass, no scale search (see quantize.h for the rules). The output is a valid block that
 * dequant_row() reads back within the format's resolution; it is NOT byte-identical to
 * llama.cpp's quantizers, which search for error-minimising scales. Good enough for random-weight
 * test models and as a readable starting point.
 *
 * Two families:
 *   affine     y = (d*sc) * q - (dmin*m), q in 0..qmax   (Q2_K: 16 x 16, Q4_K / Q5_K: 8 x 32)
 *   symmetric  y = (d*sc) * q, q in qlow..-qlow-1        (Q3_K, Q6_K: 16 x 16)
 * Each is computed into plain arrays of codes and scales, then packed by a per-type function
 * that inverts the unpacking described in dequant.h.
 */
#include "kernels/ref/quantize.h"

#include <math.h>
#include <string.h>

#include "kernels/ref/dequant.h"      /* defines: QK_K */
#include "kernels/ref/quant_common.h" /* defines: write_f16, signed_absmax, Q*_K_BLOCK_BYTES */

/* roundf(v) clamped to lo..hi; a NaN gives lo. */
static int round_clamp(float v, int lo, int hi) {
    float r = roundf(v);
    if (!(r >= (float)lo)) return lo;
    if (r >= (float)hi) return hi;
    return (int)r;
}

/* The f16 value nearest to f, as f32 (what the block will hold). */
static float f16_round(float f) { return fp16_to_fp32(fp32_to_fp16(f)); }

typedef struct affine_block {
    float d, dmin;      /* super-block scales, already rounded to f16 */
    uint8_t sc[16];     /* [n_sub] sub-block scales, 0..smax */
    uint8_t m[16];      /* [n_sub] sub-block mins, 0..smax */
    uint8_t q[QK_K];    /* codes, 0..qmax */
} affine_block;

/* Affine K-quant of 256 values in n_sub sub-blocks of 256 / n_sub. */
static void affine_quantize(const float *x, int n_sub, int qmax, int smax, affine_block *out) {
    int sub_len = QK_K / n_sub;
    float scale[16], neg_min[16], max_scale = 0.0f, max_neg_min = 0.0f;
    for (int s = 0; s < n_sub; s++) {
        const float *xs = x + s * sub_len;
        float lo = 0.0f, hi = xs[0]; /* the min is capped at 0: the stored min is subtracted */
        for (int i = 0; i < sub_len; i++) {
            if (xs[i] < lo) lo = xs[i];
            if (xs[i] > hi) hi = xs[i];
        }
        scale[s] = hi > lo ? (hi - lo) / (float)qmax : 0.0f;
        neg_min[s] = -lo;
        if (scale[s] > max_scale) max_scale = scale[s];
        if (neg_min[s] > max_neg_min) max_neg_min = neg_min[s];
    }
    out->d = f16_round(max_scale / (float)smax);
    out->dmin = f16_round(max_neg_min / (float)smax);
    for (int s = 0; s < n_sub; s++) {
        out->sc[s] = (uint8_t)(out->d > 0.0f ? round_clamp(scale[s] / out->d, 0, smax) : 0);
        out->m[s] = (uint8_t)(out->dmin > 0.0f ? round_clamp(neg_min[s] / out->dmin, 0, smax) : 0);
        float dl = out->d * (float)out->sc[s];
        float ml = out->dmin * (float)out->m[s];
        for (int i = 0; i < sub_len; i++) {
            int e = s * sub_len + i;
            float shifted = x[e] + ml;
            out->q[e] = (uint8_t)(dl > 0.0f ? round_clamp(shifted / dl, 0, qmax) : 0);
        }
    }
}

typedef struct symmetric_block {
    float d;            /* super-block scale, already rounded to f16 */
    int8_t sc[16];      /* sub-block scales */
    int8_t q[QK_K];     /* codes, qlow..-qlow-1 */
} symmetric_block;

/* Symmetric K-quant of 256 values in 16 sub-blocks of 16. Codes run qlow..-qlow-1 and scales
 * sc_lo..sc_hi; the value of largest magnitude in a sub-block maps to qlow. */
static void symmetric_quantize(const float *x, int qlow, int sc_lo, int sc_hi,
                               symmetric_block *out) {
    float scale[16], max_abs_scale = 0.0f;
    for (int s = 0; s < 16; s++) {
        scale[s] = signed_absmax(x + 16 * s, 16) / (float)qlow;
        if (fabsf(scale[s]) > max_abs_scale) max_abs_scale = fabsf(scale[s]);
    }
    out->d = f16_round(max_abs_scale / (float)sc_hi);
    for (int s = 0; s < 16; s++) {
        out->sc[s] = (int8_t)(out->d > 0.0f ? round_clamp(scale[s] / out->d, sc_lo, sc_hi) : 0);
        float dl = out->d * (float)out->sc[s];
        for (int i = 0; i < 16; i++) {
            int e = 16 * s + i;
            out->q[e] = (int8_t)(dl != 0.0f ? round_clamp(x[e] / dl, qlow, -qlow - 1) : 0);
        }
    }
}

/* Stores a 2-bit value for element e in the 64-byte "two halves of 128" layout (see dequant.h:
 * byte 32*h + r%32, bits 2*(r/32)). The bytes must start zeroed. */
static void put_crumb_2bit(uint8_t *bytes, int e, int v) {
    int h = e / 128, r = e % 128;
    bytes[32 * h + r % 32] |= (uint8_t)((v & 3) << (2 * (r / 32)));
}

void quantize_row_q2_k(const float *src, void *dst, int64_t n_elems) {
    uint8_t *block = dst;
    affine_block a;
    for (int64_t b = 0; b < n_elems / QK_K; b++, block += Q2_K_BLOCK_BYTES, src += QK_K) {
        affine_quantize(src, 16, 3, 15, &a);
        memset(block, 0, Q2_K_BLOCK_BYTES);
        for (int s = 0; s < 16; s++) block[s] = (uint8_t)(a.sc[s] | a.m[s] << 4);
        for (int e = 0; e < QK_K; e++) put_crumb_2bit(block + 16, e, a.q[e]);
        write_f16(block + 80, a.d);
        write_f16(block + 82, a.dmin);
    }
}

/* Packs 8 six-bit scales and mins into Q4_K / Q5_K's scales[12] (inverse of
 * dequant_k4_scale_min). */
static void pack_k4_scales(const uint8_t sc[8], const uint8_t m[8], uint8_t scales[12]) {
    for (int j = 0; j < 4; j++) {
        scales[j] = (uint8_t)(sc[j] | (sc[j + 4] >> 4) << 6);
        scales[j + 4] = (uint8_t)(m[j] | (m[j + 4] >> 4) << 6);
        scales[j + 8] = (uint8_t)((sc[j + 4] & 15) | (m[j + 4] & 15) << 4);
    }
}

/* Q4_K and Q5_K: qh is NULL for Q4_K. */
static void pack_k4_k5(const affine_block *a, uint8_t *block, uint8_t *qh, uint8_t *qs) {
    write_f16(block + 0, a->d);
    write_f16(block + 2, a->dmin);
    pack_k4_scales(a->sc, a->m, block + 4);
    memset(qs, 0, QK_K / 2);
    if (qh) memset(qh, 0, QK_K / 8);
    for (int e = 0; e < QK_K; e++) {
        int j = e / 32, i = e % 32;
        uint8_t *byte = qs + 32 * (j / 2) + i;
        *byte |= (uint8_t)((a->q[e] & 15) << (4 * (j % 2)));
        if (qh) qh[i] |= (uint8_t)((a->q[e] >> 4 & 1) << j);
    }
}

void quantize_row_q4_k(const float *src, void *dst, int64_t n_elems) {
    uint8_t *block = dst;
    affine_block a;
    for (int64_t b = 0; b < n_elems / QK_K; b++, block += Q4_K_BLOCK_BYTES, src += QK_K) {
        affine_quantize(src, 8, 15, 63, &a);
        pack_k4_k5(&a, block, NULL, block + 16);
    }
}

void quantize_row_q5_k(const float *src, void *dst, int64_t n_elems) {
    uint8_t *block = dst;
    affine_block a;
    for (int64_t b = 0; b < n_elems / QK_K; b++, block += Q5_K_BLOCK_BYTES, src += QK_K) {
        affine_quantize(src, 8, 31, 63, &a);
        pack_k4_k5(&a, block, block + 16, block + 48);
    }
}

void quantize_row_q3_k(const float *src, void *dst, int64_t n_elems) {
    uint8_t *block = dst;
    symmetric_block sb;
    for (int64_t b = 0; b < n_elems / QK_K; b++, block += Q3_K_BLOCK_BYTES, src += QK_K) {
        symmetric_quantize(src, -4, -32, 31, &sb);
        memset(block, 0, Q3_K_BLOCK_BYTES);
        uint8_t *hmask = block + 0, *qs = block + 32, *scales = block + 96;
        for (int s = 0; s < 16; s++) {
            int v = sb.sc[s] + 32; /* 6 bits, 0..63 */
            if (s < 8) scales[s] |= (uint8_t)(v & 15);
            else scales[s - 8] |= (uint8_t)((v & 15) << 4);
            scales[8 + s % 4] |= (uint8_t)((v >> 4) << (2 * (s / 4)));
        }
        for (int e = 0; e < QK_K; e++) {
            int u = sb.q[e] + 4; /* 0..7: low 2 bits in qs, bit 2 in hmask (set = no -4) */
            put_crumb_2bit(qs, e, u & 3);
            hmask[e % 32] |= (uint8_t)((u >> 2) << (e / 32));
        }
        write_f16(block + 108, sb.d);
    }
}

void quantize_row_q6_k(const float *src, void *dst, int64_t n_elems) {
    uint8_t *block = dst;
    symmetric_block sb;
    for (int64_t b = 0; b < n_elems / QK_K; b++, block += Q6_K_BLOCK_BYTES, src += QK_K) {
        symmetric_quantize(src, -32, -128, 127, &sb);
        memset(block, 0, Q6_K_BLOCK_BYTES);
        uint8_t *ql = block + 0, *qh = block + 128;
        memcpy(block + 192, sb.sc, 16);
        for (int e = 0; e < QK_K; e++) {
            int u = sb.q[e] + 32; /* 0..63 */
            int h = e / 128, r = e % 128;
            ql[64 * h + r % 64] |= (uint8_t)((u & 15) << (4 * (r / 64)));
            put_crumb_2bit(qh, e, u >> 4);
        }
        write_f16(block + 208, sb.d);
    }
}
