/* kernels/ref/quantize.c - quantize_row() dispatch and the plain and legacy (32-element block)
 * quantizers, which match gguf-py / ggml's reference rounding byte for byte. The K-quants are in
 * quantize_kquants.c. Scale choices: quantize.h; layouts: dequant.h.
 *
 * f32 arithmetic is written one operation per statement where the order matters, so that no
 * compiler fuses a multiply and an add (the references round each step).
 */
#include "kernels/ref/quantize.h"

#include <math.h>
#include <string.h>

#include "core/dtype.h"               /* defines: DTYPE_*, dtype_get_info, fp32_to_fp16/bf16 */
#include "core/error.h"               /* defines: error_set */
#include "kernels/ref/dequant.h"      /* defines: QK_32, QK_K */
#include "kernels/ref/quant_common.h" /* defines: write_f16, write_u32, signed_absmax */

void quantize_row_f32(const float *src, void *dst, int64_t n_elems) {
    memcpy(dst, src, (size_t)n_elems * sizeof(float));
}

void quantize_row_f16(const float *src, void *dst, int64_t n_elems) {
    uint8_t *p = dst;
    for (int64_t i = 0; i < n_elems; i++) {
        uint16_t h = fp32_to_fp16(src[i]);
        memcpy(p + 2 * i, &h, 2);
    }
}

void quantize_row_bf16(const float *src, void *dst, int64_t n_elems) {
    uint8_t *p = dst;
    for (int64_t i = 0; i < n_elems; i++) {
        uint16_t b = fp32_to_bf16(src[i]);
        memcpy(p + 2 * i, &b, 2);
    }
}

/* trunc(v) clamped to lo..hi; a NaN gives lo. Clamping before the conversion keeps the
 * float-to-int cast defined for any input. */
static int trunc_clamp(float v, int lo, int hi) {
    if (!(v >= (float)lo)) return lo;
    if (v >= (float)hi) return hi;
    return (int)v;
}

/* Packs 32 codes (0..31) into a legacy block's qs[16] (low nibbles = elements 0..15) and, when
 * qh is not NULL, their 5th bits into the little-endian u32 qh. */
static void legacy_pack(const int q[QK_32], uint8_t *qs, uint8_t *qh) {
    uint32_t high = 0;
    for (int j = 0; j < 16; j++) qs[j] = (uint8_t)((q[j] & 15) | (q[j + 16] & 15) << 4);
    for (int e = 0; e < QK_32; e++) high |= (uint32_t)(q[e] >> 4 & 1) << e;
    if (qh) write_u32(qh, high);
}

/* Q4_0 / Q5_0: d = max / -(2^(bits-1)), q = trunc(x / d + offset + 0.5). */
static void quantize_symmetric_block(const float *x, int bits, uint8_t *block, int qs_offset) {
    int offset = 1 << (bits - 1); /* 8 or 16 */
    float d = signed_absmax(x, QK_32) / (float)-offset;
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    int q[QK_32];
    for (int e = 0; e < QK_32; e++) {
        float scaled = x[e] * id;
        float shifted = scaled + ((float)offset + 0.5f);
        q[e] = trunc_clamp(shifted, 0, 2 * offset - 1);
    }
    write_f16(block, d);
    legacy_pack(q, block + qs_offset, bits == 5 ? block + 2 : NULL);
}

/* Q4_1 / Q5_1: d = (max - min) / (2^bits - 1), m = min, q = trunc((x - min) / d + 0.5). */
static void quantize_affine_block(const float *x, int bits, uint8_t *block, int qs_offset) {
    int qmax = (1 << bits) - 1;
    float lo = x[0], hi = x[0];
    for (int e = 1; e < QK_32; e++) {
        if (x[e] < lo) lo = x[e];
        if (x[e] > hi) hi = x[e];
    }
    float d = (hi - lo) / (float)qmax;
    float id = d != 0.0f ? 1.0f / d : 0.0f;
    int q[QK_32];
    for (int e = 0; e < QK_32; e++) {
        float shifted = x[e] - lo;
        float scaled = shifted * id;
        q[e] = trunc_clamp(scaled + 0.5f, 0, qmax);
    }
    write_f16(block, d);
    write_f16(block + 2, lo);
    legacy_pack(q, block + qs_offset, bits == 5 ? block + 4 : NULL);
}

void quantize_row_q4_0(const float *src, void *dst, int64_t n_elems) {
    uint8_t *block = dst;
    for (int64_t b = 0; b < n_elems / QK_32; b++, block += Q4_0_BLOCK_BYTES, src += QK_32)
        quantize_symmetric_block(src, 4, block, 2);
}

void quantize_row_q5_0(const float *src, void *dst, int64_t n_elems) {
    uint8_t *block = dst;
    for (int64_t b = 0; b < n_elems / QK_32; b++, block += Q5_0_BLOCK_BYTES, src += QK_32)
        quantize_symmetric_block(src, 5, block, 6);
}

void quantize_row_q4_1(const float *src, void *dst, int64_t n_elems) {
    uint8_t *block = dst;
    for (int64_t b = 0; b < n_elems / QK_32; b++, block += Q4_1_BLOCK_BYTES, src += QK_32)
        quantize_affine_block(src, 4, block, 4);
}

void quantize_row_q5_1(const float *src, void *dst, int64_t n_elems) {
    uint8_t *block = dst;
    for (int64_t b = 0; b < n_elems / QK_32; b++, block += Q5_1_BLOCK_BYTES, src += QK_32)
        quantize_affine_block(src, 5, block, 8);
}

void quantize_row_q8_0(const float *src, void *dst, int64_t n_elems) {
    uint8_t *block = dst;
    for (int64_t b = 0; b < n_elems / QK_32; b++, block += Q8_0_BLOCK_BYTES, src += QK_32) {
        float amax = 0.0f;
        for (int e = 0; e < QK_32; e++)
            if (fabsf(src[e]) > amax) amax = fabsf(src[e]);
        float d = amax / 127.0f;
        float id = d != 0.0f ? 1.0f / d : 0.0f;
        int8_t *qs = (int8_t *)(block + 2);
        for (int e = 0; e < QK_32; e++) {
            float scaled = src[e] * id;
            float r = roundf(scaled); /* half away from zero, like ggml and gguf-py */
            qs[e] = (int8_t)(r != r ? 0 : r > 127.0f ? 127 : r < -127.0f ? -127 : (int)r);
        }
        write_f16(block, d);
    }
}

/* ---- dispatch ---------------------------------------------------------------------------- */

typedef void (*quantize_fn)(const float *src, void *dst, int64_t n_elems);

static quantize_fn quantize_lookup(uint32_t type) {
    switch (type) {
    case DTYPE_F32: return quantize_row_f32;
    case DTYPE_F16: return quantize_row_f16;
    case DTYPE_BF16: return quantize_row_bf16;
    case DTYPE_Q4_0: return quantize_row_q4_0;
    case DTYPE_Q4_1: return quantize_row_q4_1;
    case DTYPE_Q5_0: return quantize_row_q5_0;
    case DTYPE_Q5_1: return quantize_row_q5_1;
    case DTYPE_Q8_0: return quantize_row_q8_0;
    case DTYPE_Q2_K: return quantize_row_q2_k;
    case DTYPE_Q3_K: return quantize_row_q3_k;
    case DTYPE_Q4_K: return quantize_row_q4_k;
    case DTYPE_Q5_K: return quantize_row_q5_k;
    case DTYPE_Q6_K: return quantize_row_q6_k;
    default: return NULL;
    }
}

bool quantize_supported(uint32_t type) { return quantize_lookup(type) != NULL; }

pagoda_status quantize_row(uint32_t type, const float *src, void *dst, int64_t n_elems) {
    quantize_fn fn = quantize_lookup(type);
    if (!fn)
        return error_set(PAGODA_ERR_UNSUPPORTED, "quantizing to tensor type %s is not supported",
                         dtype_name(type));
    const dtype_info *info = dtype_get_info(type);
    if (n_elems < 0 || n_elems % info->block_elems != 0)
        return error_set(PAGODA_ERR_INVALID_ARGUMENT,
                         "quantize_row: %lld elements is not a whole number of %s blocks of %d",
                         (long long)n_elems, info->name, info->block_elems);
    if (n_elems > 0 && (!src || !dst))
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "quantize_row: NULL buffer");
    if (n_elems > 0) fn(src, dst, n_elems);
    return PAGODA_OK;
}
