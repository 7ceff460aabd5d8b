/* core/dtype.h - tensor element types, numbered exactly as GGUF/ggml numbers them.
 *
 * Quantized types store elements in blocks: `block_elems` elements take `block_bytes` bytes.
 * A row of n elements (n a multiple of block_elems) takes n / block_elems * block_bytes bytes.
 * Layouts of each block are documented in src/kernels/ref/dequant.h.
 */
#ifndef PAGODA_CORE_DTYPE_H
#define PAGODA_CORE_DTYPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum dtype {
    DTYPE_F32 = 0,
    DTYPE_F16 = 1,
    DTYPE_Q4_0 = 2,
    DTYPE_Q4_1 = 3,
    DTYPE_Q5_0 = 6,
    DTYPE_Q5_1 = 7,
    DTYPE_Q8_0 = 8,
    DTYPE_Q8_1 = 9,
    DTYPE_Q2_K = 10,
    DTYPE_Q3_K = 11,
    DTYPE_Q4_K = 12,
    DTYPE_Q5_K = 13,
    DTYPE_Q6_K = 14,
    DTYPE_Q8_K = 15,
    DTYPE_IQ2_XXS = 16,
    DTYPE_IQ2_XS = 17,
    DTYPE_IQ3_XXS = 18,
    DTYPE_IQ1_S = 19,
    DTYPE_IQ4_NL = 20,
    DTYPE_IQ3_S = 21,
    DTYPE_IQ2_S = 22,
    DTYPE_IQ4_XS = 23,
    DTYPE_I8 = 24,
    DTYPE_I16 = 25,
    DTYPE_I32 = 26,
    DTYPE_I64 = 27,
    DTYPE_F64 = 28,
    DTYPE_IQ1_M = 29,
    DTYPE_BF16 = 30,
    DTYPE_TQ1_0 = 34,
    DTYPE_TQ2_0 = 35,
    DTYPE_COUNT = 40, /* upper bound for table sizes; not a type */
} dtype;

typedef struct dtype_info {
    const char *name;  /* "Q4_K", or NULL if the id is unknown */
    int block_elems;   /* elements per block (1 for plain types) */
    int block_bytes;   /* bytes per block */
    bool dequantizable;/* Pagoda can turn it into f32 (src/kernels/ref/dequant.h) */
} dtype_info;

/* Returns the table entry for `type`, or NULL for an id GGUF does not define. */
const dtype_info *dtype_get_info(uint32_t type);
/* "Q4_K", or "unknown(<id>)" in a static per-thread buffer. */
const char *dtype_name(uint32_t type);
/* Bytes of a row of `n_elems` elements; returns false if n_elems is not a multiple of the block
 * size, the type is unknown, or the result would overflow. */
bool dtype_row_bytes(uint32_t type, int64_t n_elems, size_t *out_bytes);

/* Scalar conversions used everywhere (round-to-nearest-even where they narrow). */
float fp16_to_fp32(uint16_t h);
uint16_t fp32_to_fp16(float f);
float bf16_to_fp32(uint16_t b);
uint16_t fp32_to_bf16(float f);

#endif
