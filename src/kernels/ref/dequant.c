/* kernels/ref/dequant.c - dequant_row() dispatch and the plain and legacy (32-element block)
 * dequantizers. The K-quants are in dequant_kquants.c. Layouts: dequant.h.
 *
 * Plain scalar C on purpose: one element at a time, bytes read with memcpy (blocks may be
 * unaligned inside a mapped file), little-endian host assumed (x86-64, aarch64).
 */
#include "kernels/ref/dequant.h"

#include <string.h>

#include "core/dtype.h"              /* defines: DTYPE_*, dtype_name, fp16_to_fp32, bf16_to_fp32 */
#include "core/error.h"              /* defines: error_set */
#include "kernels/ref/quant_common.h" /* defines: read_f16, read_u32, block constants */

void dequant_row_f32(const void *src, float *dst, int64_t n_elems) {
    memcpy(dst, src, (size_t)n_elems * sizeof(float));
}

void dequant_row_f16(const void *src, float *dst, int64_t n_elems) {
    const uint8_t *p = src;
    for (int64_t i = 0; i < n_elems; i++) dst[i] = read_f16(p + 2 * i);
}

void dequant_row_bf16(const void *src, float *dst, int64_t n_elems) {
    const uint8_t *p = src;
    for (int64_t i = 0; i < n_elems; i++) {
        uint16_t b;
        memcpy(&b, p + 2 * i, 2);
        dst[i] = bf16_to_fp32(b);
    }
}

/* The 4-bit code of element e (0..31) of a legacy block's qs[16]: low nibbles first. */
static int legacy_nibble(const uint8_t *qs, int e) {
    return e < 16 ? (qs[e] & 0x0F) : (qs[e - 16] >> 4);
}

void dequant_row_q4_0(const void *src, float *dst, int64_t n_elems) {
    const uint8_t *block = src;
    for (int64_t b = 0; b < n_elems / QK_32; b++, block += Q4_0_BLOCK_BYTES, dst += QK_32) {
        float d = read_f16(block + 0);
        const uint8_t *qs = block + 2;
        for (int e = 0; e < QK_32; e++) dst[e] = (float)(legacy_nibble(qs, e) - 8) * d;
    }
}

void dequant_row_q4_1(const void *src, float *dst, int64_t n_elems) {
    const uint8_t *block = src;
    for (int64_t b = 0; b < n_elems / QK_32; b++, block += Q4_1_BLOCK_BYTES, dst += QK_32) {
        float d = read_f16(block + 0);
        float m = read_f16(block + 2);
        const uint8_t *qs = block + 4;
        for (int e = 0; e < QK_32; e++) {
            float scaled = (float)legacy_nibble(qs, e) * d;
            dst[e] = scaled + m;
        }
    }
}

void dequant_row_q5_0(const void *src, float *dst, int64_t n_elems) {
    const uint8_t *block = src;
    for (int64_t b = 0; b < n_elems / QK_32; b++, block += Q5_0_BLOCK_BYTES, dst += QK_32) {
        float d = read_f16(block + 0);
        uint32_t qh = read_u32(block + 2);
        const uint8_t *qs = block + 6;
        for (int e = 0; e < QK_32; e++) {
            int q = legacy_nibble(qs, e) | (int)((qh >> e) & 1) << 4;
            dst[e] = (float)(q - 16) * d;
        }
    }
}

void dequant_row_q5_1(const void *src, float *dst, int64_t n_elems) {
    const uint8_t *block = src;
    for (int64_t b = 0; b < n_elems / QK_32; b++, block += Q5_1_BLOCK_BYTES, dst += QK_32) {
        float d = read_f16(block + 0);
        float m = read_f16(block + 2);
        uint32_t qh = read_u32(block + 4);
        const uint8_t *qs = block + 8;
        for (int e = 0; e < QK_32; e++) {
            int q = legacy_nibble(qs, e) | (int)((qh >> e) & 1) << 4;
            float scaled = (float)q * d;
            dst[e] = scaled + m;
        }
    }
}

void dequant_row_q8_0(const void *src, float *dst, int64_t n_elems) {
    const uint8_t *block = src;
    for (int64_t b = 0; b < n_elems / QK_32; b++, block += Q8_0_BLOCK_BYTES, dst += QK_32) {
        float d = read_f16(block + 0);
        const int8_t *qs = (const int8_t *)(block + 2);
        for (int e = 0; e < QK_32; e++) dst[e] = (float)qs[e] * d;
    }
}

/* ---- dispatch ---------------------------------------------------------------------------- */

typedef void (*dequant_fn)(const void *src, float *dst, int64_t n_elems);

static dequant_fn dequant_lookup(uint32_t type) {
    switch (type) {
    case DTYPE_F32: return dequant_row_f32;
    case DTYPE_F16: return dequant_row_f16;
    case DTYPE_BF16: return dequant_row_bf16;
    case DTYPE_Q4_0: return dequant_row_q4_0;
    case DTYPE_Q4_1: return dequant_row_q4_1;
    case DTYPE_Q5_0: return dequant_row_q5_0;
    case DTYPE_Q5_1: return dequant_row_q5_1;
    case DTYPE_Q8_0: return dequant_row_q8_0;
    case DTYPE_Q2_K: return dequant_row_q2_k;
    case DTYPE_Q3_K: return dequant_row_q3_k;
    case DTYPE_Q4_K: return dequant_row_q4_k;
    case DTYPE_Q5_K: return dequant_row_q5_k;
    case DTYPE_Q6_K: return dequant_row_q6_k;
    default: return NULL;
    }
}

bool dequant_supported(uint32_t type) { return dequant_lookup(type) != NULL; }

pagoda_status dequant_row(uint32_t type, const void *src, float *dst, int64_t n_elems) {
    dequant_fn fn = dequant_lookup(type);
    if (!fn)
        return error_set(PAGODA_ERR_UNSUPPORTED, "dequantizing tensor type %s is not supported",
                         dtype_name(type));
    const dtype_info *info = dtype_get_info(type);
    if (n_elems < 0 || n_elems % info->block_elems != 0)
        return error_set(PAGODA_ERR_INVALID_ARGUMENT,
                         "dequant_row: %lld elements is not a whole number of %s blocks of %d",
                         (long long)n_elems, info->name, info->block_elems);
    if (n_elems > 0 && (!src || !dst))
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "dequant_row: NULL buffer");
    if (n_elems > 0) fn(src, dst, n_elems);
    return PAGODA_OK;
}
