/* backend/backend.h - the interface the model's forward pass is written against.
 *
 * A backend is a struct of function pointers over float activations in host-visible memory plus
 * weights kept in their file layout (quantized, zero-copy). The CPU backend (backend/cpu/) runs
 * each op across a persistent thread pool; a CUDA backend will implement the same table.
 * Ops are given validated shapes (the model checks them at load time), so they do not fail.
 */
#ifndef PAGODA_BACKEND_H
#define PAGODA_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/ref/ops.h"             /* defines: rope_params */
#include "kernels/ref/paged_attention.h" /* defines: paged_attention_args, kv_cache_view */
#include "pagoda.h"          /* defines: pagoda_status */

/* A weight matrix as stored in the model file: n_rows rows of n_cols elements of `type`. */
typedef struct backend_matrix {
    uint32_t type;     /* a dtype (core/dtype.h) */
    int64_t n_cols;    /* input features (GGUF ne[0]) */
    int64_t n_rows;    /* output features (GGUF ne[1]) */
    size_t row_bytes;  /* bytes of one row */
    const void *data;  /* [n_rows][row_bytes] */
} backend_matrix;

/* Causal grouped-query attention of n_tokens queries against a contiguous cache (see ref_attention). */
typedef struct backend_attention_args {
    const float *q;        /* [n_tokens][n_head][head_dim] */
    const float *k;        /* [n_kv][n_kv_head][head_dim] */
    const float *v;        /* [n_kv][n_kv_head][head_dim] */
    float *out;            /* [n_tokens][n_head][head_dim] */
    const int32_t *q_pos;  /* [n_tokens] query t sees keys 0..q_pos[t] */
    int64_t n_tokens;
    int64_t n_kv;
    int n_head, n_kv_head, head_dim;
    float scale;
} backend_attention_args;

typedef struct backend backend;
struct backend {
    const char *name;
    /* y[t][r] = sum_c W[r][c] x[t][c]; x: [n_tokens][w->n_cols], y: [n_tokens][w->n_rows]. */
    void (*matmul)(backend *be, const backend_matrix *w, const float *x, float *y, int64_t n_tokens);
    /* (optional) the same, with the kernel family fixed per token instead of by n_tokens:
     * decode_rows[t] != 0 marks a generated (decode) token, 0 a prompt token. A token's row is then
     * bit-identical whatever else is in the call, which is what makes a request's output the same
     * alone and in any batch (docs/ENGINE.md, "Batch invariance"). NULL decode_rows: as matmul. */
    void (*matmul_rows)(backend *be, const backend_matrix *w, const float *x, float *y, int64_t n_tokens,
                        const uint8_t *decode_rows);
    /* out[i][c] = W[ids[i]][c] as floats (embedding lookup); ids are in range. */
    void (*get_rows)(backend *be, const backend_matrix *w, const int32_t *ids, int64_t n_ids, float *out);
    void (*rmsnorm)(backend *be, const float *x, const float *weight, float *y, int64_t n_tokens,
                    int64_t dim, float eps);
    void (*rope)(backend *be, float *x, const int32_t *pos, int64_t n_tokens, int n_heads, int head_dim,
                 const rope_params *rope);
    /* (optional) attention over a contiguous single-sequence cache: not used by the model (which
     * uses paged_attention); kept as the baseline that bench/bench_attention.c measures against. */
    void (*attention)(backend *be, const backend_attention_args *args);
    /* Writes n_tokens rows of K and V (f32, [n_tokens][n_kv_head][head_dim]) of `layer` to their
     * slots in the paged cache, converting to the cache type. */
    void (*kv_write)(backend *be, const kv_cache_view *cache, int layer, const float *k, const float *v,
                     const int32_t *slot_mapping, int64_t n_tokens);
    /* Copies whole blocks src[i] -> dst[i], K and V, in every layer (copy-on-write). */
    void (*kv_copy_blocks)(backend *be, const kv_cache_view *cache, const int32_t *src, const int32_t *dst, int n);
    /* Causal grouped-query attention of a mixed batch over the paged cache (kernels/ref/paged_attention.h). */
    void (*paged_attention)(backend *be, const paged_attention_args *args);
    void (*swiglu)(backend *be, float *gate, const float *up, int64_t n); /* gate = silu(gate) * up */
    void (*add)(backend *be, float *y, const float *x, int64_t n);       /* y += x */
    int (*n_threads)(const backend *be);
    void (*free)(backend *be);
};

/* Whether the backends can multiply with weights of this type (checked at model load). */
int backend_matrix_type_supported(uint32_t type);

#endif
