/* pagoda.h - the public C API of Pagoda, an LLM inference engine.
 *
 * Conventions:
 *   - Every fallible call returns a pagoda_status; PAGODA_OK is 0. On failure,
 *     pagoda_last_error() returns a one-line message (thread-local) that says what went wrong
 *     and, where possible, what to do about it.
 *   - Objects are opaque handles created by *_load / *_init and released by the matching *_free.
 *     *_free(NULL) is a no-op.
 *
 * Implemented so far: model loading, tokenization, chat templates and single-sequence generation
 * (one pagoda_model serves one conversation at a time; its KV cache keeps the longest common
 * prefix between calls, so a chat's earlier turns are not recomputed).
 * TODO(issue 3): the batched engine API (add request / step / stream / abort).
 */
#ifndef PAGODA_H
#define PAGODA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum pagoda_status {
    PAGODA_OK = 0,
    PAGODA_ERR_INVALID_ARGUMENT, /* a caller-supplied value is out of range or malformed */
    PAGODA_ERR_IO,               /* a file could not be opened, read, written or mapped */
    PAGODA_ERR_FORMAT,           /* a file is malformed, truncated or inconsistent */
    PAGODA_ERR_UNSUPPORTED,      /* well-formed, but uses something Pagoda does not implement */
    PAGODA_ERR_OUT_OF_MEMORY,    /* an allocation failed */
    PAGODA_ERR_CONTEXT_FULL,     /* the prompt or generation does not fit in the context */
    PAGODA_ERR_INTERNAL,         /* a bug: please report it */
} pagoda_status;

/* The message describing the most recent error on this thread ("" if none). */
const char *pagoda_last_error(void);
/* A short constant name for a status, e.g. "format error". */
const char *pagoda_status_name(pagoda_status status);

/* ---- Models ------------------------------------------------------------------------------------ */
typedef struct pagoda_model pagoda_model;

typedef struct pagoda_model_params {
    int32_t n_threads; /* <= 0: one per CPU */
    int32_t n_ctx;     /* context positions; <= 0: min(trained context, 4096) */
    int32_t n_batch;   /* most prompt tokens per forward pass; <= 0: 512 */
} pagoda_model_params;

pagoda_model_params pagoda_model_params_default(void);

/* Loads a GGUF model (llama, qwen2 architectures) with its tokenizer and chat template.
 * Errors: PAGODA_ERR_IO, PAGODA_ERR_FORMAT, PAGODA_ERR_UNSUPPORTED, PAGODA_ERR_OUT_OF_MEMORY. */
pagoda_status pagoda_model_load(const char *path, const pagoda_model_params *params, pagoda_model **out);
void pagoda_model_free(pagoda_model *model);

typedef struct pagoda_model_info {
    const char *architecture; /* "llama", "qwen2" */
    const char *name;         /* general.name, or "" */
    int32_t n_vocab, n_ctx_train, n_ctx, n_embd, n_layer, n_head, n_head_kv, n_threads;
    int64_t n_params;
    size_t file_bytes;
} pagoda_model_info;
void pagoda_model_get_info(const pagoda_model *model, pagoda_model_info *out);

/* ---- Tokens ------------------------------------------------------------------------------------ */
/* Tokenizes UTF-8 text. add_special: add BOS/EOS as the model's metadata says; parse_special: turn
 * special-token text such as "<|im_start|>" into its id. *out_ids is malloc'd (free() it).
 * Errors: PAGODA_ERR_OUT_OF_MEMORY. */
pagoda_status pagoda_tokenize(const pagoda_model *model, const char *text, size_t len, bool add_special,
                              bool parse_special, int32_t **out_ids, size_t *out_n);
/* The inverse; *out_text is malloc'd and NUL-terminated. Errors: PAGODA_ERR_INVALID_ARGUMENT. */
pagoda_status pagoda_detokenize(const pagoda_model *model, const int32_t *ids, size_t n_ids, bool render_special,
                                char **out_text, size_t *out_len);
/* True for tokens that end generation (EOS, end-of-turn). */
bool pagoda_token_is_eog(const pagoda_model *model, int32_t token);

/* ---- Chat ------------------------------------------------------------------------------------- */
typedef struct pagoda_chat_message {
    const char *role;    /* "system", "user", "assistant" */
    const char *content;
} pagoda_chat_message;

/* Renders a conversation with the model's own chat template (tokenizer.chat_template), or a
 * built-in template for its family when the file has none. *out_text is malloc'd.
 * Errors: PAGODA_ERR_UNSUPPORTED (no usable template), PAGODA_ERR_INVALID_ARGUMENT (the template
 * rejected the conversation, e.g. roles not alternating), PAGODA_ERR_OUT_OF_MEMORY. */
pagoda_status pagoda_chat_render(const pagoda_model *model, const pagoda_chat_message *messages, size_t n_messages,
                                 bool add_generation_prompt, char **out_text);

/* ---- Generation -------------------------------------------------------------------------------- */
typedef struct pagoda_sampling_params {
    float temperature; /* 0: greedy */
    int32_t top_k;     /* 0: off */
    float top_p;       /* 1: off */
    float min_p;       /* 0: off */
    uint64_t seed;
    int32_t max_tokens; /* most tokens to generate; < 0: until end of generation or a full context */
    bool ignore_eos;    /* keep going past end-of-generation tokens */
} pagoda_sampling_params;

pagoda_sampling_params pagoda_sampling_params_default(void); /* temperature 0.8, top_k 40, top_p 0.95,
                                                              min_p 0.05, seed 0, max_tokens -1 */

typedef enum pagoda_finish_reason {
    PAGODA_FINISH_STOP,      /* an end-of-generation token */
    PAGODA_FINISH_LENGTH,    /* max_tokens reached, or the context is full */
    PAGODA_FINISH_CANCELLED, /* the callback asked to stop */
} pagoda_finish_reason;

typedef struct pagoda_generation_stats {
    int32_t n_prompt;          /* tokens in the prompt */
    int32_t n_prompt_computed; /* of which computed (the rest were reused from the cache) */
    int32_t n_generated;
    double prompt_seconds, generation_seconds;
    pagoda_finish_reason finish_reason;
} pagoda_generation_stats;

/* Called for each generated token with the text it completes: bytes are held back until they form
 * whole UTF-8 characters, so text_len may be 0. Return false to stop. At the end, bytes that never
 * formed a character are flushed in a last call with token -1. */
typedef bool (*pagoda_token_callback)(void *user, int32_t token, const char *text, size_t text_len);

/* Continues `prompt` (ids, e.g. from pagoda_tokenize with add_special) with sampled tokens,
 * streaming them to `callback` (may be NULL). The end-of-generation token is not streamed.
 * Errors: PAGODA_ERR_CONTEXT_FULL (the prompt does not fit), PAGODA_ERR_INVALID_ARGUMENT (bad
 * sampling parameter or token id, empty prompt). */
pagoda_status pagoda_generate(pagoda_model *model, const int32_t *prompt, size_t n_prompt,
                              const pagoda_sampling_params *params, pagoda_token_callback callback, void *user,
                              pagoda_generation_stats *stats);

#ifdef __cplusplus
}
#endif
#endif /* PAGODA_H */
