/* kernels/ref/dequant_kquants.c - reference dequantizers for the K-quants Q2_K, Q3_K, Q4_K, Q5_K
 * and Q6_K (256-element super-blocks). Layouts: dequant.h. Q8_K (an activation format) and the
 * IQ types are not here.
 *
 * Each element is computed on its own from the index formulas in dequant.h, so the code reads as
 * the layout description. Products that the description parenthesises are stored in a float
 * before the next operation so no compiler fuses them into a multiply-add.
 */
#include "kernels/ref/dequant.h"

#include "kernels/ref/quant_common.h" /* defines: read_f16, Q*_K_BLOCK_BYTES */

/* The 2-bit field of element e in a 64-byte array laid out in two 128-element halves, as used
 * by Q2_K's and Q3_K's qs and Q6_K's qh: byte 32*h + r%32, bits 2*(r/32). */
static int crumb_2bit(const uint8_t *bytes, int e) {
    int h = e / 128, r = e % 128;
    return (bytes[32 * h + r % 32] >> (2 * (r / 32))) & 3;
}

void dequant_k4_scale_min(const uint8_t scales[12], int j, uint8_t *out_sc, uint8_t *out_m) {
    if (j < 4) {
        *out_sc = scales[j] & 63;
        *out_m = scales[j + 4] & 63;
    } else {
        *out_sc = (uint8_t)((scales[j + 4] & 15) | ((scales[j - 4] >> 6) << 4));
        *out_m = (uint8_t)((scales[j + 4] >> 4) | ((scales[j] >> 6) << 4));
    }
}

void dequant_row_q2_k(const void *src, float *dst, int64_t n_elems) {
    const uint8_t *block = src;
    for (int64_t b = 0; b < n_elems / QK_K; b++, block += Q2_K_BLOCK_BYTES, dst += QK_K) {
        const uint8_t *scales = block + 0; /* [16] */
        const uint8_t *qs = block + 16;    /* [64] */
        float d = read_f16(block + 80);
        float dmin = read_f16(block + 82);
        for (int s = 0; s < 16; s++) {
            float dl = d * (float)(scales[s] & 15);
            float ml = dmin * (float)(scales[s] >> 4);
            for (int i = 0; i < 16; i++) {
                int e = 16 * s + i;
                float scaled = dl * (float)crumb_2bit(qs, e);
                dst[e] = scaled - ml;
            }
        }
    }
}

/* The signed 6-bit scale of sub-block s (0..15) of a Q3_K `scales[12]` field. */
static int q3_k_scale(const uint8_t scales[12], int s) {
    int low = s < 8 ? (scales[s] & 15) : (scales[s - 8] >> 4);
    int high = (scales[8 + s % 4] >> (2 * (s / 4))) & 3;
    return (low | high << 4) - 32;
}

void dequant_row_q3_k(const void *src, float *dst, int64_t n_elems) {
    const uint8_t *block = src;
    for (int64_t b = 0; b < n_elems / QK_K; b++, block += Q3_K_BLOCK_BYTES, dst += QK_K) {
        const uint8_t *hmask = block + 0; /* [32] */
        const uint8_t *qs = block + 32;   /* [64] */
        const uint8_t *scales = block + 96; /* [12] */
        float d = read_f16(block + 108);
        for (int s = 0; s < 16; s++) {
            float dl = d * (float)q3_k_scale(scales, s);
            for (int i = 0; i < 16; i++) {
                int e = 16 * s + i;
                int high_bit = (hmask[e % 32] >> (e / 32)) & 1;
                int q = crumb_2bit(qs, e) - (high_bit ? 0 : 4);
                dst[e] = dl * (float)q;
            }
        }
    }
}

/* Q4_K and Q5_K share everything but the 5th bit; qh is NULL for Q4_K. */
static void dequant_block_k4_k5(const uint8_t *block, const uint8_t *qh, const uint8_t *qs,
                                float *dst) {
    float d = read_f16(block + 0);
    float dmin = read_f16(block + 2);
    const uint8_t *scales = block + 4; /* [12] */
    for (int j = 0; j < 8; j++) {
        uint8_t sc, m;
        dequant_k4_scale_min(scales, j, &sc, &m);
        float dl = d * (float)sc;
        float ml = dmin * (float)m;
        const uint8_t *bytes = qs + 32 * (j / 2); /* sub-blocks 2c, 2c+1 share 32 bytes */
        for (int i = 0; i < 32; i++) {
            int e = 32 * j + i;
            int q = (j % 2 == 0) ? (bytes[i] & 15) : (bytes[i] >> 4);
            if (qh) q |= ((qh[e % 32] >> (e / 32)) & 1) << 4;
            float scaled = dl * (float)q;
            dst[e] = scaled - ml;
        }
    }
}

void dequant_row_q4_k(const void *src, float *dst, int64_t n_elems) {
    const uint8_t *block = src;
    for (int64_t b = 0; b < n_elems / QK_K; b++, block += Q4_K_BLOCK_BYTES, dst += QK_K)
        dequant_block_k4_k5(block, NULL, block + 16, dst);
}

void dequant_row_q5_k(const void *src, float *dst, int64_t n_elems) {
    const uint8_t *block = src;
    for (int64_t b = 0; b < n_elems / QK_K; b++, block += Q5_K_BLOCK_BYTES, dst += QK_K)
        dequant_block_k4_k5(block, block + 16, block + 48, dst);
}

void dequant_row_q6_k(const void *src, float *dst, int64_t n_elems) {
    const uint8_t *block = src;
    for (int64_t b = 0; b < n_elems / QK_K; b++, block += Q6_K_BLOCK_BYTES, dst += QK_K) {
        const uint8_t *ql = block + 0;                       /* [128] */
        const uint8_t *qh = block + 128;                     /* [64] */
        const int8_t *scales = (const int8_t *)(block + 192); /* [16] */
        float d = read_f16(block + 208);
        for (int s = 0; s < 16; s++) {
            float dl = d * (float)scales[s];
            for (int i = 0; i < 16; i++) {
                int e = 16 * s + i;
                int h = e / 128, r = e % 128;
                uint8_t low_byte = ql[64 * h + r % 64];
                int low = (r / 64 == 0) ? (low_byte & 15) : (low_byte >> 4);
                int q = low | crumb_2bit(qh, e) << 4;
                dst[e] = dl * (float)(q - 32);
            }
        }
    }
}
