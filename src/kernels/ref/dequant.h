/* kernels/ref/dequant.h - scalar reference dequantization of GGUF tensor types to f32.
 *
 * This is the specification: every SIMD / GPU dequantization kernel is tested against these
 * functions, and they are tested against gguf-py (tests/test_dequant.c, fixtures made by
 * tools/make_dequant_fixtures.py). Implemented: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0,
 * Q2_K, Q3_K, Q4_K, Q5_K, Q6_K. Not implemented: Q8_1, Q8_K (activation formats), the IQ*
 * and TQ* types and the integer types; those return PAGODA_ERR_UNSUPPORTED.
 *
 * Block layouts, as GGUF files store them (ggml's structs, packed, little-endian, no padding).
 * "f16" is an IEEE half, "e" the element index inside the block, "q" the unsigned code read
 * from the bits, "y" the dequantized value. A block may start at any byte address.
 *
 * Plain types (one element per "block"):
 *   F32   4 bytes   IEEE single.
 *   F16   2 bytes   IEEE half.
 *   BF16  2 bytes   the top 16 bits of an IEEE single: y = bits << 16.
 *
 * Legacy 32-element blocks. The 16 `qs` bytes hold two 4-bit codes each: element e < 16 is the
 * LOW nibble of qs[e], element e + 16 the HIGH nibble of qs[e] (not interleaved pairs!).
 *   Q4_0  18 bytes  0: d f16 | 2: qs[16]                    y = (q - 8) * d
 *   Q4_1  20 bytes  0: d f16 | 2: m f16 | 4: qs[16]         y = q * d + m
 *   Q5_0  22 bytes  0: d f16 | 2: qh[4] | 6: qs[16]         q = nibble | bit e of qh << 4
 *                                                           y = (q - 16) * d
 *   Q5_1  24 bytes  0: d f16 | 2: m f16 | 4: qh[4] | 8: qs[16]
 *                                                           y = q * d + m
 *   Q8_0  34 bytes  0: d f16 | 2: qs[32] int8               y = qs[e] * d
 *   (qh is a little-endian u32: bit e of it is bit (e % 8) of qh[e / 8].)
 *
 * K-quants: 256-element super-blocks (QK_K) split into sub-blocks with their own small integer
 * scales, which are multiplied by one or two f16 super-block scales. In every K type the code
 * bits are laid out in 128-element halves: element e lies in half h = e / 128, at r = e % 128.
 *
 *   Q2_K  84 bytes  0: scales[16] | 16: qs[64] | 80: d f16 | 82: dmin f16
 *         16 sub-blocks of 16: s = e / 16; sc = scales[s] & 15, m = scales[s] >> 4.
 *         q (2 bits) = (qs[32*h + r%32] >> (2 * (r/32))) & 3.
 *         y = (d * sc) * q - (dmin * m)
 *
 *   Q3_K  110 bytes 0: hmask[32] | 32: qs[64] | 96: scales[12] | 108: d f16
 *         16 sub-blocks of 16: s = e / 16, with a 6-bit scale packed as:
 *             low 4 bits:  s < 8 ? scales[s] & 15 : scales[s - 8] >> 4
 *             high 2 bits: (scales[8 + s % 4] >> (2 * (s / 4))) & 3
 *         sc = (that 6-bit value) - 32 (signed, -32..31).
 *         low 2 bits of q: (qs[32*h + r%32] >> (2 * (r/32))) & 3;
 *         high bit: (hmask[e % 32] >> (e / 32)) & 1, and q -= 4 when that bit is ZERO.
 *         y = (d * sc) * q, with q in -4..3.
 *
 *   Q4_K  144 bytes 0: d f16 | 2: dmin f16 | 4: scales[12] | 16: qs[128]
 *         8 sub-blocks of 32: j = e / 32, each with a 6-bit scale sc[j] and 6-bit min m[j]:
 *             j < 4:  sc = scales[j] & 63,  m = scales[j + 4] & 63
 *             j >= 4: sc = (scales[j + 4] & 15) | ((scales[j - 4] >> 6) << 4)
 *                     m  = (scales[j + 4] >> 4) | ((scales[j]     >> 6) << 4)
 *         q (4 bits): sub-blocks 2c and 2c+1 share the 32 bytes qs[32c .. 32c+31]: the low
 *         nibbles are sub-block 2c, the high nibbles sub-block 2c+1 (element e % 32 in each).
 *         y = (d * sc[j]) * q - (dmin * m[j])
 *
 *   Q5_K  176 bytes 0: d f16 | 2: dmin f16 | 4: scales[12] | 16: qh[32] | 48: qs[128]
 *         scales, mins and low 4 bits exactly as Q4_K; the 5th bit of element e is
 *         (qh[e % 32] >> (e / 32)) & 1.   y = (d * sc[j]) * q - (dmin * m[j]), q in 0..31
 *
 *   Q6_K  210 bytes 0: ql[128] | 128: qh[64] | 192: scales[16] int8 | 208: d f16
 *         16 sub-blocks of 16: s = e / 16, sc = scales[s] (signed).
 *         low 4 bits: nibble (r / 64) of ql[64*h + r%64] (0 = low nibble, 1 = high);
 *         high 2 bits: (qh[32*h + r%32] >> (2 * (r/32))) & 3.
 *         y = (d * sc) * (q - 32)
 *
 * Arithmetic is in f32 in the order written above (products in parentheses are rounded to f32
 * first, no fused multiply-add), which reproduces gguf-py and ggml bit for bit.
 */
#ifndef PAGODA_KERNELS_REF_DEQUANT_H
#define PAGODA_KERNELS_REF_DEQUANT_H

#include <stdbool.h>
#include <stdint.h>

#include "pagoda.h" /* defines: pagoda_status */

#define QK_32 32 /* elements per legacy block (Q4_0 .. Q8_0) */
#define QK_K 256 /* elements per K-quant super-block */

/* Dequantizes `n_elems` elements of GGUF type `type` from `src` (n_elems / block_elems whole
 * blocks, any alignment) into `dst`. Errors: PAGODA_ERR_UNSUPPORTED for a type not listed above
 * (the message names it), PAGODA_ERR_INVALID_ARGUMENT if n_elems is negative or not a multiple of
 * the block size, or a pointer is NULL while n_elems > 0. n_elems == 0 does nothing. */
pagoda_status dequant_row(uint32_t type, const void *src, float *dst, int64_t n_elems);

/* Whether dequant_row() implements `type`. */
bool dequant_supported(uint32_t type);

/* Per-type kernels. Preconditions (unchecked): n_elems >= 0 and a multiple of the type's block
 * size; src holds n_elems / block_elems blocks; dst holds n_elems floats. */
void dequant_row_f32(const void *src, float *dst, int64_t n_elems);
void dequant_row_f16(const void *src, float *dst, int64_t n_elems);
void dequant_row_bf16(const void *src, float *dst, int64_t n_elems);
void dequant_row_q4_0(const void *src, float *dst, int64_t n_elems);
void dequant_row_q4_1(const void *src, float *dst, int64_t n_elems);
void dequant_row_q5_0(const void *src, float *dst, int64_t n_elems);
void dequant_row_q5_1(const void *src, float *dst, int64_t n_elems);
void dequant_row_q8_0(const void *src, float *dst, int64_t n_elems);
void dequant_row_q2_k(const void *src, float *dst, int64_t n_elems);
void dequant_row_q3_k(const void *src, float *dst, int64_t n_elems);
void dequant_row_q4_k(const void *src, float *dst, int64_t n_elems);
void dequant_row_q5_k(const void *src, float *dst, int64_t n_elems);
void dequant_row_q6_k(const void *src, float *dst, int64_t n_elems);

/* The 6-bit scale and min of sub-block j (0..7) of a Q4_K / Q5_K `scales[12]` field, unpacked as
 * documented above. Shared with the quantizer and with SIMD kernels. */
void dequant_k4_scale_min(const uint8_t scales[12], int j, uint8_t *out_sc, uint8_t *out_m);

#endif
