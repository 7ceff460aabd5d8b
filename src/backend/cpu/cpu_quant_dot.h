/* backend/cpu/cpu_quant_dot.h - integer dot products of quantized weights with 8-bit activations.
 *
 * The scheme (llama.cpp's idea, our own layout and code):
 *
 * 1. Activations. Each token's row x[n_cols] is quantized once per matmul in blocks of 32:
 *        x[e] ~= d[b] * q[e]   (b = e / 32, q int8 in -127..127, d = max|x| over the block / 127)
 *    plus, per group of 16, s16[g] = d[g / 2] * (sum of the 16 q of group g), and the pairs
 *    ds[b] = (d[b], s16[2b] + s16[2b + 1]) that the few-token kernels load with one instruction.
 *
 * 2. Weights. A tile of up to CPU_QDOT_MAX_ROWS rows is "expanded" from its GGUF layout into a form
 *    every weight type shares, so one integer kernel per ISA serves all of them:
 *        w[e] = scale[e / 4] * q[e] + min[e / 16]
 *    q is u8 (0..255), or s8 for Q8_0 on the AVX2 path (maddubs saturates u8 * s8 pair sums at
 *    32767, so Q8_0's 8-bit codes stay signed there). One scale per 4 elements is one per 32-bit
 *    lane of _mm256_madd_epi16(_mm256_maddubs_epi16(...)) and of _mm512_dpbusd_epi32. Then
 *        sum_e w[e] x[e] = sum_b d[b] * sum_lanes scale[lane] * isum[lane]   (integer lane sums)
 *                        + sum_g min[g] * s16[g].
 *    Per type (d, m: the block's f16 fields; sc, mn: K-quant sub-block scale and min):
 *        Q4_0  q = nibble,          scale = d,       min = -8 d
 *        Q4_1  q = nibble,          scale = d,       min = m
 *        Q5_0  q = 5-bit code,      scale = d,       min = -16 d
 *        Q5_1  q = 5-bit code,      scale = d,       min = m
 *        Q8_0  q = code (s8),       scale = d,       min = 0         (AVX2)
 *              q = code + 128 (u8), scale = d,       min = -128 d    (AVX-512 VNNI)
 *        Q4_K  q = nibble,          scale = d sc,    min = -dmin mn
 *        Q5_K  q = 5-bit code,      scale = d sc,    min = -dmin mn
 *        Q6_K  q = 6-bit code,      scale = d sc,    min = -32 d sc   (sc per 16 elements)
 *
 * 3. For 1-3 tokens (decode) expanding a tile would cost as much as the dot product it feeds, so
 *    fused kernels (cpu_quant_dot_decode*.c) apply the same arithmetic straight to the GGUF blocks.
 *
 * The error against the f32 reference is the activation rounding: about (d/2)^2/3 per element,
 * i.e. a normalised MSE near 1e-5 for well-spread rows (tests/test_cpu_matmul.c).
 */
#ifndef PAGODA_BACKEND_CPU_QUANT_DOT_H
#define PAGODA_BACKEND_CPU_QUANT_DOT_H

#include <stdbool.h>
#include <stdint.h>

#include "backend/backend.h" /* defines: backend_matrix */
#include "core/threadpool.h" /* defines: threadpool */

enum {
    CPU_QDOT_MAX_ROWS = 4, /* weight rows per expanded tile */
};

/* Quantized activations of n_tokens rows. */
typedef struct cpu_qact {
    int8_t *q;     /* [n_tokens][n_cols] */
    float *d;      /* [n_tokens][n_cols / 32] block scales */
    float *s16;    /* [n_tokens][n_cols / 16] d * sum of each 16 codes */
    float *ds;     /* [n_tokens][n_cols / 32][2] d and d * sum of the 32 codes of each block (decode kernels) */
    int64_t n_cols;
} cpu_qact;

/* An expanded tile of weight rows (see the top of this file). */
typedef struct cpu_wtile {
    uint8_t *q;    /* [CPU_QDOT_MAX_ROWS][n_cols] codes (u8, or s8 when is_signed) */
    float *scale;  /* [CPU_QDOT_MAX_ROWS][n_cols / 4] */
    float *min;    /* [CPU_QDOT_MAX_ROWS][n_cols / 16] */
    int64_t n_cols;
    bool is_signed;
    bool has_min;  /* false when every min is 0 (skips that dot product) */
} cpu_wtile;

/* Expands one row of n_cols elements (a multiple of the type's block) into tile row `r`.
 * unsigned_codes: the AVX-512 kernel wants u8 codes even for Q8_0. */
typedef void (*cpu_expand_fn)(const uint8_t *row, cpu_wtile *tile, int r, bool unsigned_codes);

/* The expander for `type`, or NULL when the integer path does not handle it. */
cpu_expand_fn cpu_expand_get(uint32_t type);

/* Row expanders (cpu_quant_dot.c: legacy types; cpu_quant_dot_kquants.c: K-quants). */
void cpu_expand_q4_0(const uint8_t *row, cpu_wtile *tile, int r, bool unsigned_codes);
void cpu_expand_q4_1(const uint8_t *row, cpu_wtile *tile, int r, bool unsigned_codes);
void cpu_expand_q5_0(const uint8_t *row, cpu_wtile *tile, int r, bool unsigned_codes);
void cpu_expand_q5_1(const uint8_t *row, cpu_wtile *tile, int r, bool unsigned_codes);
void cpu_expand_q8_0(const uint8_t *row, cpu_wtile *tile, int r, bool unsigned_codes);
void cpu_expand_q4_k(const uint8_t *row, cpu_wtile *tile, int r, bool unsigned_codes);
void cpu_expand_q5_k(const uint8_t *row, cpu_wtile *tile, int r, bool unsigned_codes);
void cpu_expand_q6_k(const uint8_t *row, cpu_wtile *tile, int r, bool unsigned_codes);

/* Quantizes tokens [t_begin, t_end) of x ([n_tokens][act->n_cols] floats, n_cols a multiple of 32)
 * into act's rows t - t_base (AVX2). */
void cpu_qact_quantize(const float *x, int64_t t_begin, int64_t t_end, int64_t t_base, cpu_qact *act);

/* y[t * y_stride + r] = dot(tile row r, activation row t) for r < n_rows, t in [t_begin, t_end).
 * y points at the first row's column of token 0 of the activation piece. */
void cpu_qdot_tile_avx2(const cpu_wtile *tile, int n_rows, const cpu_qact *act, int64_t t_begin, int64_t t_end,
                        float *y, int64_t y_stride);
/* The same with AVX-512 VNNI (cpu_quant_dot_avx512.c); tile->is_signed must be false. */
void cpu_qdot_tile_avx512(const cpu_wtile *tile, int n_rows, const cpu_qact *act, int64_t t_begin,
                          int64_t t_end, float *y, int64_t y_stride);

/* Fused few-token kernels (cpu_quant_dot_decode.c, AVX2): y[t * y_stride + r] = dot(row r of w,
 * activation row t) for r < n_rows, t in [t_begin, t_end), reading the GGUF blocks directly. */
typedef void (*cpu_qdot_rows_fn)(const uint8_t *w, size_t row_bytes, int64_t n_rows, const cpu_qact *act,
                                 int64_t t_begin, int64_t t_end, float *y, int64_t y_stride);
/* The fused kernel for `type` (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K), or NULL. */
cpu_qdot_rows_fn cpu_qdot_rows_get(uint32_t type);
/* AVX-512 VNNI versions for Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 (cpu_quant_dot_decode_avx512.c), or NULL. */
cpu_qdot_rows_fn cpu_qdot_rows_get_avx512(uint32_t type);
/* The K-quant ones (cpu_quant_dot_decode_kquants.c). */
void cpu_qdot_rows_q4_k(const uint8_t *w, size_t row_bytes, int64_t n_rows, const cpu_qact *act, int64_t t_begin,
                        int64_t t_end, float *y, int64_t y_stride);
void cpu_qdot_rows_q5_k(const uint8_t *w, size_t row_bytes, int64_t n_rows, const cpu_qact *act, int64_t t_begin,
                        int64_t t_end, float *y, int64_t y_stride);
void cpu_qdot_rows_q6_k(const uint8_t *w, size_t row_bytes, int64_t n_rows, const cpu_qact *act, int64_t t_begin,
                        int64_t t_end, float *y, int64_t y_stride);

/* y = x W^T for BF16 W with AVX-512 BF16 (cpu_matmul_avx512.c); x is split into two bf16 halves.
 * x_bf16: scratch of [max_tokens][2][n_cols rounded up to 32]; larger n_tokens go in pieces. */
void cpu_matmul_bf16_avx512(threadpool *pool, const backend_matrix *w, const float *x, float *y, int64_t n_tokens,
                            uint16_t *x_bf16, int64_t max_tokens);

/* Instruction-set choice of the matmul kernels (for tests: both paths on one machine). */
typedef enum cpu_isa {
    CPU_ISA_AUTO = 0,   /* AVX-512 when cpu_use_avx512(), else AVX2 */
    CPU_ISA_AVX2 = 1,
    CPU_ISA_AVX512 = 2, /* honoured only where cpu_use_avx512() */
} cpu_isa;

/* Sets the ISA used by later cpu_matmul calls (process-wide; not for use while a matmul runs).
 * Returns the ISA that will actually be used. */
cpu_isa cpu_matmul_force_isa(cpu_isa isa);

#endif
