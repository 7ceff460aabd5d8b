/* model/model.h - llama-family decoder models (Llama 2/3, SmolLM2, Mistral, Qwen2) loaded from GGUF,
 * and the forward pass written against the backend interface.
 *
 * A model is immutable once loaded (weights are views into the file's mmap). A model_context holds
 * one sequence's KV cache and the activation buffers, all allocated once at init.
 * TODO(issue 3): the paged KV cache and batches of several sequences replace model_context's
 * contiguous single-sequence cache.
 */
#ifndef PAGODA_MODEL_H
#define PAGODA_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "backend/backend.h" /* defines: backend, backend_matrix */
#include "gguf/gguf.h"       /* defines: gguf_file */
#include "kernels/ref/ops.h" /* defines: rope_style */

typedef enum model_arch { MODEL_ARCH_LLAMA, MODEL_ARCH_QWEN2 } model_arch;

typedef struct model_hparams {
    model_arch arch;
    char arch_name[32];   /* "llama", "qwen2" */
    int32_t n_vocab;
    int32_t n_ctx_train;  /* context length the model was trained for */
    int32_t n_embd;
    int32_t n_layer;
    int32_t n_head;
    int32_t n_head_kv;
    int32_t head_dim;
    int32_t n_ff;
    int32_t n_rot;        /* rotated dims per head */
    float rms_eps;
    float rope_base;
    rope_style rope;
    bool tied_output;     /* output projection shares token_embd */
} model_hparams;

typedef struct model_layer {
    const float *attn_norm;  /* [n_embd] */
    backend_matrix wq;       /* [n_head * head_dim][n_embd] */
    backend_matrix wk;       /* [n_head_kv * head_dim][n_embd] */
    backend_matrix wv;       /* [n_head_kv * head_dim][n_embd] */
    const float *bq;         /* [n_head * head_dim] or NULL (Qwen2 has QKV biases) */
    const float *bk;         /* [n_head_kv * head_dim] or NULL */
    const float *bv;         /* [n_head_kv * head_dim] or NULL */
    backend_matrix wo;       /* [n_embd][n_head * head_dim] */
    const float *ffn_norm;   /* [n_embd] */
    backend_matrix w_gate;   /* [n_ff][n_embd] */
    backend_matrix w_up;     /* [n_ff][n_embd] */
    backend_matrix w_down;   /* [n_embd][n_ff] */
} model_layer;

typedef struct model {
    model_hparams hp;
    gguf_file *file;          /* owns the mmap every weight points into */
    backend_matrix tok_embd;  /* [n_vocab][n_embd] */
    const float *output_norm; /* [n_embd] */
    backend_matrix output;    /* [n_vocab][n_embd]; equals tok_embd when tied */
    model_layer *layers;      /* [n_layer] */
    float *rope_inv_freq;     /* [n_rot / 2] per-pair angle per position, scaling applied */
    float **owned;            /* float copies of non-F32 norm/bias vectors, freed with the model */
    int n_owned;
} model;

/* Loads a model from an open GGUF file (the model takes ownership of `file` on success only).
 * Errors: PAGODA_ERR_UNSUPPORTED (unknown architecture or tensor type), PAGODA_ERR_FORMAT (missing
 * or mis-shaped tensor, bad hyper-parameters), PAGODA_ERR_OUT_OF_MEMORY. */
pagoda_status model_load_gguf(gguf_file *file, model **out);
void model_free(model *m);

typedef struct model_context {
    const model *m;
    backend *be;
    int32_t n_ctx;       /* positions the cache holds */
    int32_t n_batch;     /* most tokens per forward call (longer inputs are processed in pieces) */
    int32_t n_past;      /* positions already in the cache */
    float *k_cache;      /* [n_layer][n_ctx][n_head_kv * head_dim] */
    float *v_cache;      /* [n_layer][n_ctx][n_head_kv * head_dim] */
    float *x;            /* [n_batch][n_embd] residual stream */
    float *xn;           /* [n_batch][n_embd] normalised input of a block */
    float *q;            /* [n_batch][n_head * head_dim] */
    float *k;            /* [n_batch][n_head_kv * head_dim] */
    float *v;            /* [n_batch][n_head_kv * head_dim] */
    float *attn;         /* [n_batch][n_head * head_dim] */
    float *gate;         /* [n_batch][n_ff] */
    float *up;           /* [n_batch][n_ff] */
    float *logits;       /* [n_batch][n_vocab] */
    int32_t *pos;        /* [n_batch] */
} model_context;

/* n_ctx <= 0: min(n_ctx_train, 4096). Errors: PAGODA_ERR_OUT_OF_MEMORY, PAGODA_ERR_INVALID_ARGUMENT. */
pagoda_status model_context_init(const model *m, backend *be, int32_t n_ctx, int32_t n_batch,
                                 model_context **out);
void model_context_free(model_context *ctx);
/* Forgets the cached positions (the next eval starts at position 0). */
void model_context_reset(model_context *ctx);

/* Appends n_tokens tokens at positions n_past.. and runs the model over them. On success
 * *out_logits points at [n_out][n_vocab] floats owned by the context, valid until the next call:
 * the last token's logits when all_logits is false (n_out 1), else one row per token (n_tokens must
 * then be <= n_batch). Errors: PAGODA_ERR_CONTEXT_FULL (n_past + n_tokens > n_ctx),
 * PAGODA_ERR_INVALID_ARGUMENT (a token id out of range, n_tokens < 1). */
pagoda_status model_eval(model_context *ctx, const int32_t *tokens, int32_t n_tokens, bool all_logits,
                         const float **out_logits);

#endif
