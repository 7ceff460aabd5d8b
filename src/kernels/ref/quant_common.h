/* kernels/ref/quant_common.h - private helpers shared by dequant*.c and quantize*.c: block sizes
 * in bytes, unaligned little-endian reads/writes, small scale helpers. Not part of any public API. */
#ifndef PAGODA_KERNELS_REF_QUANT_COMMON_H
#define PAGODA_KERNELS_REF_QUANT_COMMON_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/dtype.h" /* defines: fp16_to_fp32, fp32_to_fp16 */

/* Bytes per block; must agree with the dtype table in core/dtype.c (a wrong value misaligns
 * every block after the first of the multi-block fixtures in tests/test_dequant.c). */
enum {
    Q4_0_BLOCK_BYTES = 18,
    Q4_1_BLOCK_BYTES = 20,
    Q5_0_BLOCK_BYTES = 22,
    Q5_1_BLOCK_BYTES = 24,
    Q8_0_BLOCK_BYTES = 34,
    Q2_K_BLOCK_BYTES = 84,
    Q3_K_BLOCK_BYTES = 110,
    Q4_K_BLOCK_BYTES = 144,
    Q5_K_BLOCK_BYTES = 176,
    Q6_K_BLOCK_BYTES = 210,
};

static inline float read_f16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return fp16_to_fp32(h);
}

static inline uint32_t read_u32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* Stores f rounded to f16 (nearest even) and returns the value actually stored. */
static inline float write_f16(uint8_t *p, float f) {
    uint16_t h = fp32_to_fp16(f);
    memcpy(p, &h, 2);
    return fp16_to_fp32(h);
}

static inline void write_u32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }

/* The element of largest magnitude, with its sign; the first one wins a tie; 0 if all are 0. */
static inline float signed_absmax(const float *x, int n) {
    float best = 0.0f, best_abs = 0.0f;
    for (int i = 0; i < n; i++) {
        if (fabsf(x[i]) > best_abs) {
            best_abs = fabsf(x[i]);
            best = x[i];
        }
    }
    return best;
}

#endif
