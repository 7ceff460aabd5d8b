/* core/dtype.c - the dtype table and scalar fp16/bf16 conversions. */
#include "core/dtype.h"

#include <stdio.h>
#include <string.h>

#define QK_K 256
static const dtype_info dtype_table[DTYPE_COUNT] = {
    [DTYPE_F32] = {"F32", 1, 4, true},
    [DTYPE_F16] = {"F16", 1, 2, true},
    [DTYPE_Q4_0] = {"Q4_0", 32, 2 + 16, true},
    [DTYPE_Q4_1] = {"Q4_1", 32, 2 + 2 + 16, true},
    [DTYPE_Q5_0] = {"Q5_0", 32, 2 + 4 + 16, true},
    [DTYPE_Q5_1] = {"Q5_1", 32, 2 + 2 + 4 + 16, true},
    [DTYPE_Q8_0] = {"Q8_0", 32, 2 + 32, true},
    [DTYPE_Q8_1] = {"Q8_1", 32, 4 + 32, false},
    [DTYPE_Q2_K] = {"Q2_K", QK_K, QK_K / 16 + QK_K / 4 + 2 + 2, true},
    [DTYPE_Q3_K] = {"Q3_K", QK_K, QK_K / 8 + QK_K / 4 + 12 + 2, true},
    [DTYPE_Q4_K] = {"Q4_K", QK_K, 2 + 2 + 12 + QK_K / 2, true},
    [DTYPE_Q5_K] = {"Q5_K", QK_K, 2 + 2 + 12 + QK_K / 8 + QK_K / 2, true},
    [DTYPE_Q6_K] = {"Q6_K", QK_K, QK_K / 2 + QK_K / 4 + QK_K / 16 + 2, true},
    [DTYPE_Q8_K] = {"Q8_K", QK_K, 4 + QK_K + QK_K / 16 * 2, false},
    [DTYPE_IQ2_XXS] = {"IQ2_XXS", QK_K, 2 + QK_K / 8 * 2, false},
    [DTYPE_IQ2_XS] = {"IQ2_XS", QK_K, 2 + QK_K / 8 * 2 + QK_K / 32, false},
    [DTYPE_IQ3_XXS] = {"IQ3_XXS", QK_K, 2 + QK_K / 4 + QK_K / 8, false},
    [DTYPE_IQ1_S] = {"IQ1_S", QK_K, 2 + QK_K / 8 + QK_K / 16, false},
    [DTYPE_IQ4_NL] = {"IQ4_NL", 32, 2 + 16, false},
    [DTYPE_IQ3_S] = {"IQ3_S", QK_K, 2 + QK_K / 4 + QK_K / 8 + QK_K / 32 + 4, false},
    [DTYPE_IQ2_S] = {"IQ2_S", QK_K, 2 + QK_K / 4 + QK_K / 16, false},
    [DTYPE_IQ4_XS] = {"IQ4_XS", QK_K, 2 + 2 + QK_K / 2 + QK_K / 64, false},
    [DTYPE_I8] = {"I8", 1, 1, false},
    [DTYPE_I16] = {"I16", 1, 2, false},
    [DTYPE_I32] = {"I32", 1, 4, false},
    [DTYPE_I64] = {"I64", 1, 8, false},
    [DTYPE_F64] = {"F64", 1, 8, false},
    [DTYPE_IQ1_M] = {"IQ1_M", QK_K, QK_K / 8 + QK_K / 16 + QK_K / 32, false},
    [DTYPE_BF16] = {"BF16", 1, 2, true},
    [DTYPE_TQ1_0] = {"TQ1_0", QK_K, (QK_K - 4 * QK_K / 64) / 5 + QK_K / 64 + 2, false},
    [DTYPE_TQ2_0] = {"TQ2_0", QK_K, 2 + QK_K / 4, false},
};

const dtype_info *dtype_get_info(uint32_t type) {
    if (type >= DTYPE_COUNT || dtype_table[type].name == NULL) return NULL;
    return &dtype_table[type];
}

const char *dtype_name(uint32_t type) {
    static _Thread_local char unknown[32];
    const dtype_info *info = dtype_get_info(type);
    if (info) return info->name;
    snprintf(unknown, sizeof unknown, "unknown(%u)", type);
    return unknown;
}

bool dtype_row_bytes(uint32_t type, int64_t n_elems, size_t *out_bytes) {
    const dtype_info *info = dtype_get_info(type);
    if (!info || n_elems < 0 || n_elems % info->block_elems != 0) return false;
    uint64_t n_blocks = (uint64_t)n_elems / (uint64_t)info->block_elems;
    if (n_blocks > SIZE_MAX / (uint64_t)info->block_bytes) return false;
    *out_bytes = (size_t)(n_blocks * (uint64_t)info->block_bytes);
    return true;
}

float fp16_to_fp32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            exp = 127 - 15 + 1;
            while ((mant & 0x400) == 0) { mant <<= 1; exp--; }
            mant &= 0x3ff;
            bits = sign | (exp << 23) | (mant << 13);
        }
    } else if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t fp32_to_fp16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t abs = x & 0x7fffffffu;
    if (abs >= 0x7f800000u) /* inf or nan */
        return (uint16_t)(sign | 0x7c00 | (abs > 0x7f800000u ? 0x200 : 0));
    if (abs >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* rounds to inf */
    if (abs < 0x38800000u) { /* result is subnormal or zero */
        if (abs < 0x33000000u) return (uint16_t)sign;
        uint32_t exp = abs >> 23;
        uint32_t mant = (abs & 0x7fffff) | 0x800000;
        uint32_t shift = 126 - exp; /* 14..24 */
        uint32_t half = mant >> shift;
        uint32_t rem = mant & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t rounded = abs + 0xfff + ((abs >> 13) & 1); /* round to nearest even */
    return (uint16_t)(sign | ((rounded - 0x38000000u) >> 13));
}

float bf16_to_fp32(uint16_t b) {
    uint32_t bits = (uint32_t)b << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t fp32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40); /* quiet nan */
    return (uint16_t)((x + 0x7fff + ((x >> 16) & 1)) >> 16);
}
