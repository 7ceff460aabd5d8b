/* model/gen_model.h - random-weight llama-family models at real shapes, written as GGUF.
 *
 * For tests and benchmarks that need a model of a real size without downloading one. The file
 * follows llama.cpp's convert_hf_to_gguf.py: metadata keys (general.architecture = llama or
 * qwen2, <arch>.embedding_length, ...), tensor names (token_embd.weight, blk.N.attn_q.weight,
 * ...) and the GGUF extent convention (ne[0] = input features, e.g. attn_q.weight has
 * ne = {n_embd, n_head * head_dim}). Llama 3.1-style rope scaling is stored the way the
 * converter stores it: a `rope_freqs.weight` tensor of head_dim/2 per-pair factors (no
 * rope.scaling.* keys, which llama.cpp would apply a second time).
 *
 * Weights: deterministic from (seed, tensor, row), so any chunking gives the same bytes.
 * Matrices ~ N(0, 0.02^2), norm weights ~ 1 + N(0, 0.02^2), biases ~ N(0, 0.02^2), using an
 * Irwin-Hall sum of four uniforms (normal-ish, bounded by +-0.07). Norms, biases and
 * rope_freqs are F32; every other tensor has the requested type (quantized with quantize_row()).
 *
 * Tokenizer: copied (every tokenizer.* key) from another GGUF file when one is given, and then
 * the vocabulary size is that file's; otherwise synthesized, see gen_model.c.
 * Tensors are streamed one chunk at a time (an 8B model is never held in memory).
 */
#ifndef PAGODA_MODEL_GEN_MODEL_H
#define PAGODA_MODEL_GEN_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "pagoda.h" /* defines: pagoda_status */

typedef struct gen_model_shape {
    const char *name;          /* "smollm2-135m" */
    const char *arch;          /* "llama" or "qwen2" */
    const char *tokenizer_pre; /* tokenizer.ggml.pre of the real model, e.g. "llama-bpe" */
    int64_t n_vocab;
    int64_t n_ctx;             /* context_length */
    int64_t n_embd;
    int64_t n_layer;
    int64_t n_head;
    int64_t n_head_kv;
    int64_t head_dim;
    int64_t n_ff;
    float rope_base;
    float rms_eps;
    bool tied;                 /* no output.weight: the output projection is token_embd */
    bool qkv_bias;             /* attn_q/k/v.bias (Qwen2) */
    bool rope_llama3;          /* Llama 3.1 rope scaling, stored as rope_freqs.weight */
    float rope_factor, rope_low_freq_factor, rope_high_freq_factor;
    int64_t rope_orig_ctx;
} gen_model_shape;

/* The built-in shapes: smollm2-135m, llama-3.2-1b, llama-3-8b, qwen2-0.5b, and toys for tests:
 * tiny (llama, untied), tiny-llama3 (tied, llama3 rope scaling), tiny-qwen2 (tied, QKV biases). */
int gen_model_n_shapes(void);
const gen_model_shape *gen_model_shape_at(int index);
const gen_model_shape *gen_model_find_shape(const char *name); /* NULL if unknown */

/* Called as data is produced: the tensor being written, its index, and bytes of tensor data
 * done out of the total (padding excluded). */
typedef void (*gen_model_progress_fn)(void *ctx, const char *tensor, int64_t i_tensor,
                                      int64_t n_tensors, uint64_t bytes_done, uint64_t bytes_total);

typedef struct gen_model_options {
    gen_model_shape shape;      /* a copy, overrides applied by the caller */
    uint32_t type;              /* dtype of the weight matrices (F32, F16, BF16, Q8_0, ...) */
    uint64_t seed;
    const char *vocab_from;     /* GGUF file whose tokenizer.* metadata is copied, or NULL */
    gen_model_progress_fn progress; /* optional */
    void *progress_ctx;
} gen_model_options;

/* Writes the model to `path` (atomically: temp file + rename). Errors: PAGODA_ERR_INVALID_ARGUMENT
 * (inconsistent shape, a type quantize_row() does not support, or rows not a multiple of the
 * type's block), PAGODA_ERR_IO, PAGODA_ERR_FORMAT (from --vocab-from), PAGODA_ERR_OUT_OF_MEMORY. */
pagoda_status gen_model_write(const gen_model_options *opt, const char *path);

/* The llama.cpp "general.file_type" (LLAMA_FTYPE_*) for a weight type; 0 (all F32) if none. */
uint32_t gen_model_file_type(uint32_t type);

#endif
