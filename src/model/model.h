/* model/model.h - llama-family decoder models (Llama 2/3, SmolLM2, Mistral, Qwen2) loaded from GGUF,
 * and the forward pass written against the backend interface.
 *
 * A model is immutable once loaded (weights are views into the file's mmap). model_forward runs a
 * flattened batch of many sequences over the paged K/V cache (model_kv_cache); model_context wraps
 * it for one sequence with a private cache whose blocks are its positions in order.
 */
#ifndef PAGODA_MODEL_H
#define PAGODA_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "backend/backend.h" /* defines: backend, backend_matrix */
#include "gguf/gguf.h"       /* defines: gguf_file */
#include "kernels/ref/ops.h" /* defines: rope_style */
#include "kernels/ref/paged_attention.h" /* defines: kv_cache_view, paged_attention_args */

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

/* ---- The K/V cache's data (the bookkeeping of which block holds what is kv/'s) ---------------- */
typedef struct model_kv_cache {
    kv_cache_view view;      /* what the backend reads and writes */
    void **k;                /* [n_layer] -> [n_blocks][block_size][n_head_kv][head_dim] of view.type */
    void **v;                /* [n_layer] -> same */
    size_t bytes;            /* total bytes of K and V */
} model_kv_cache;

/* Bytes one block takes over all layers, K and V. */
size_t model_kv_block_bytes(const model *m, uint32_t type, int32_t block_size);
/* Allocates n_blocks blocks (type F16, F32 or BF16). Errors: PAGODA_ERR_OUT_OF_MEMORY (with the size),
 * PAGODA_ERR_INVALID_ARGUMENT (type, block size or count). */
pagoda_status model_kv_cache_init(const model *m, uint32_t type, int32_t block_size, int64_t n_blocks,
                                  model_kv_cache **out);
void model_kv_cache_free(model_kv_cache *kv);

/* ---- One forward pass over a flattened batch ---------------------------------------------------- */
typedef struct model_batch {
    int32_t n_tokens;
    const int32_t *tokens;        /* [n_tokens] */
    const int32_t *positions;     /* [n_tokens] */
    const int32_t *slot_mapping;  /* [n_tokens] slot of each token's K/V: block * block_size + offset */
    int32_t n_seqs;
    const int32_t *query_start;   /* [n_seqs + 1] sequence s owns rows query_start[s] .. [s+1]-1 */
    const int32_t *seq_lens;      /* [n_seqs] K/V length of s including this step's tokens */
    const int32_t *block_tables;  /* [n_seqs][max_blocks_per_seq] */
    int32_t max_blocks_per_seq;
    int32_t n_logits;
    const int32_t *logit_rows;    /* [n_logits] rows whose logits are wanted, in output order */
    /* optional outputs for the search strategies (zero / NULL: not wanted) */
    int32_t n_hidden;
    const int32_t *hidden_rows;   /* [n_hidden] rows whose final hidden state is wanted */
    float *hidden_out;            /* [n_hidden][n_embd] rmsnorm(x, output_norm) of those rows: the state
                                     the output projection reads (HF hidden_states[-1]; contrastive search) */
    float *layers_out;            /* [n_logits][n_layer][n_embd] the residual stream of each logit row
                                     entering layer l (l = 0: the embedding), un-normalised (HF
                                     hidden_states[l]; DoLa), or NULL */
    const uint8_t *decode_rows;   /* [n_tokens] 1 for a generated token, 0 for a prompt token; picks
                                     the matmul kernel per token for batch invariance. NULL: by size */
} model_batch;

/* Activation buffers for batches of up to max_tokens tokens and max_logits logit rows. */
typedef struct model_workspace {
    int32_t max_tokens, max_logits;
    float *x;            /* [max_tokens][n_embd] residual stream */
    float *xn;           /* [max_tokens][n_embd] normalised input of a block */
    float *q;            /* [max_tokens][n_head * head_dim] */
    float *k;            /* [max_tokens][n_head_kv * head_dim] */
    float *v;            /* [max_tokens][n_head_kv * head_dim] */
    float *attn;         /* [max_tokens][n_head * head_dim] */
    float *gate;         /* [max_tokens][n_ff] */
    float *up;           /* [max_tokens][n_ff] */
    float *rows;         /* [max_logits][n_embd] the rows whose logits are wanted */
    float *logits;       /* [max_logits][n_vocab] */
    uint8_t *logit_decode_rows; /* [max_logits] decode_rows of the logit rows */
} model_workspace;

/* Errors: PAGODA_ERR_OUT_OF_MEMORY, PAGODA_ERR_INVALID_ARGUMENT. */
pagoda_status model_workspace_init(const model *m, int32_t max_tokens, int32_t max_logits, model_workspace **out);
void model_workspace_free(model_workspace *ws);

/* Runs the batch: writes its K/V into the cache and leaves [n_logits][n_vocab] logits in
 * ws->logits. The batch must respect the workspace's limits (the runner guarantees it).
 * Errors: PAGODA_ERR_INVALID_ARGUMENT (a token id out of range, limits exceeded). */
pagoda_status model_forward(const model *m, backend *be, const model_kv_cache *kv, model_workspace *ws,
                            const model_batch *batch);

/* logits = x Wout for n_rows rows of x ([n_rows][n_embd] -> [n_rows][n_vocab]), with no final norm: the
 * early-exit logits of DoLa (HF lm_head(hidden_states[l])). */
void model_lm_head(const model *m, backend *be, const float *x, int32_t n_rows, float *logits);

/* ---- One sequence with a private contiguous cache (CLI generation, tests) ------------------------ */
typedef struct model_context {
    const model *m;
    backend *be;
    int32_t n_ctx;            /* positions the cache holds */
    int32_t n_batch;          /* most tokens per forward (longer inputs are processed in pieces) */
    int32_t n_past;           /* positions already in the cache */
    model_kv_cache *kv;       /* F32 cache whose blocks are the positions in order */
    model_workspace *ws;
    int32_t *block_table;     /* [n_ctx / block_size] 0, 1, 2, ... */
    int32_t *positions;       /* [n_batch] */
    int32_t *slots;           /* [n_batch] */
    int32_t *rows;            /* [n_batch] 0, 1, 2, ... */
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
