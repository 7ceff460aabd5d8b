/* kernels/ref/ops.h - scalar reference implementations of the model's operators.
 *
 * These are the specification: plain loops, double accumulation where it matters, no threads, no
 * SIMD. Every backend op is tested against them (tests/test_backend_ops.c). Shapes are given row-major,
 * last index fastest, e.g. [n_tokens][dim].
 */
#ifndef PAGODA_KERNELS_REF_OPS_H
#define PAGODA_KERNELS_REF_OPS_H

#include <stdint.h>

#include "pagoda.h" /* defines: pagoda_status */

typedef enum rope_style {
    ROPE_STYLE_NORMAL = 0, /* rotate adjacent pairs (x[2i], x[2i+1]): GGUF llama */
    ROPE_STYLE_NEOX = 1,   /* rotate halves (x[i], x[i + n_rot/2]): GGUF qwen2, HF rotate_half */
} rope_style;

typedef struct rope_params {
    rope_style style;
    int n_rot;             /* rotated dimensions per head (<= head_dim, even); the rest pass through */
    const float *inv_freq; /* [n_rot / 2] angle per position of each pair: base^(-2i/n_rot) / factor_i */
} rope_params;

/* y[t][r] = sum_c W[r][c] * x[t][c], with W stored as `type` rows of n_cols elements.
 * W: [n_rows][n_cols] (row_bytes each), x: [n_tokens][n_cols], y: [n_tokens][n_rows].
 * Errors: PAGODA_ERR_UNSUPPORTED for a type that cannot be dequantized, PAGODA_ERR_OUT_OF_MEMORY. */
pagoda_status ref_matmul(uint32_t type, const void *w, int64_t n_rows, int64_t n_cols, const float *x,
                         float *y, int64_t n_tokens);

/* y[t][i] = x[t][i] / sqrt(mean_i(x[t][i]^2) + eps) * weight[i]; x, y: [n_tokens][dim] (may alias). */
void ref_rmsnorm(const float *x, const float *weight, float *y, int64_t n_tokens, int64_t dim, float eps);

/* Rotates x in place: x [n_tokens][n_heads][head_dim], token t at position pos[t]. */
void ref_rope(float *x, const int32_t *pos, int64_t n_tokens, int n_heads, int head_dim,
              const rope_params *rope);

/* gate[i] = silu(gate[i]) * up[i] for i < n, silu(x) = x / (1 + exp(-x)). */
void ref_swiglu(float *gate, const float *up, int64_t n);

/* Causal grouped-query attention against a contiguous cache.
 *   q:   [n_tokens][n_head][head_dim]     query t sits at position q_pos[t] and sees keys 0..q_pos[t]
 *   k,v: [n_kv][n_kv_head][head_dim]      keys/values of positions 0..n_kv-1 (n_kv > max q_pos)
 *   out: [n_tokens][n_head][head_dim]
 * Query head h uses kv head h / (n_head / n_kv_head). Scores are scaled by `scale`.
 * Errors: PAGODA_ERR_OUT_OF_MEMORY. */
pagoda_status ref_attention(const float *q, const float *k, const float *v, float *out, const int32_t *q_pos,
                   int64_t n_tokens, int64_t n_kv, int n_head, int n_kv_head, int head_dim, float scale);

#endif
