/* kernels/ref/quantize.h - scalar reference quantization of f32 rows to GGUF tensor types.
 *
 * Block layouts are documented in kernels/ref/dequant.h; dequant_row() inverts these.
 *
 * Plain and legacy types reproduce gguf-py's quantizers byte for byte (which in turn follow
 * ggml's reference quantize_row_*_ref); tests/test_quantize.c checks against gguf-py:
 *   F32, F16, BF16   conversion with round-to-nearest-even (BF16 keeps NaNs quiet).
 *   Q8_0   d = amax / 127,  q = roundf(x / d)            (round half away from zero)
 *   Q4_0   d = max / -8,    q = trunc(x / d + 8.5),  q in 0..15
 *   Q5_0   d = max / -16,   q = trunc(x / d + 16.5), q in 0..31
 *          where max is the signed value of largest magnitude (the first one on a tie), so it
 *          maps to code 0 and the asymmetric range -8..7 (-16..15) is used fully.
 *   Q4_1   d = (max - min) / 15, m = min, q = trunc((x - min) / d + 0.5), q in 0..15
 *   Q5_1   the same with 31 and q in 0..31.
 *   (x / d is computed as x * (1/d) in f32 with the unrounded f32 d; d and m are then stored as
 *   f16. d == 0 gives all codes for the value 0.)
 *
 * K-quants use a simple one-pass scale choice (no search; valid blocks, a little less accurate
 * than llama.cpp's optimised quantizers, which are not reproduced):
 *   Q4_K, Q5_K, Q2_K  per sub-block: min' = min(0, min x), scale = (max x - min') / qmax;
 *          the super-block d = max scale / smax and dmin = max(-min') / smax (smax = 63, or
 *          15 for Q2_K), sub-block codes round(scale / d), round(-min' / dmin); then each element
 *          q = round((x + dmin*m) / (d*sc)) clamped to 0..qmax.
 *   Q6_K, Q3_K  per sub-block of 16: scale = (signed max) / qlow (qlow = -32 or -4), so the
 *          largest value maps to the lowest code; d = max |scale| / 127 (31 for Q3_K),
 *          sc = round(scale / d); then q = round(x / (d*sc)) clamped to the code range.
 *
 * Inputs to the block types must be finite: a NaN or infinity yields unspecified codes (never
 * undefined behaviour). Scales are stored as f16, so a block whose scale would exceed 65504
 * (e.g. Q8_0 with max |x| above about 8e6) saturates; weights and activations are far smaller.
 */
#ifndef PAGODA_KERNELS_REF_QUANTIZE_H
#define PAGODA_KERNELS_REF_QUANTIZE_H

#include <stdbool.h>
#include <stdint.h>

#include "pagoda.h" /* defines: pagoda_status */

/* Quantizes `n_elems` floats from `src` into `dst` (n_elems / block_elems blocks of `type`;
 * any alignment). Errors: PAGODA_ERR_UNSUPPORTED for a type quantize_supported() rejects (the
 * message names it), PAGODA_ERR_INVALID_ARGUMENT if n_elems is negative or not a multiple of
 * the block size, or a pointer is NULL while n_elems > 0. n_elems == 0 does nothing. */
pagoda_status quantize_row(uint32_t type, const float *src, void *dst, int64_t n_elems);

/* Whether quantize_row() implements `type`: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0,
 * Q2_K, Q3_K, Q4_K, Q5_K, Q6_K. */
bool quantize_supported(uint32_t type);

/* Per-type kernels. Preconditions (unchecked): n_elems >= 0 and a multiple of the block size;
 * dst holds n_elems / block_elems blocks. */
void quantize_row_f32(const float *src, void *dst, int64_t n_elems);
void quantize_row_f16(const float *src, void *dst, int64_t n_elems);
void quantize_row_bf16(const float *src, void *dst, int64_t n_elems);
void quantize_row_q4_0(const float *src, void *dst, int64_t n_elems);
void quantize_row_q4_1(const float *src, void *dst, int64_t n_elems);
void quantize_row_q5_0(const float *src, void *dst, int64_t n_elems);
void quantize_row_q5_1(const float *src, void *dst, int64_t n_elems);
void quantize_row_q8_0(const float *src, void *dst, int64_t n_elems);
void quantize_row_q2_k(const float *src, void *dst, int64_t n_elems);
void quantize_row_q3_k(const float *src, void *dst, int64_t n_elems);
void quantize_row_q4_k(const float *src, void *dst, int64_t n_elems);
void quantize_row_q5_k(const float *src, void *dst, int64_t n_elems);
void quantize_row_q6_k(const float *src, void *dst, int64_t n_elems);

#endif
