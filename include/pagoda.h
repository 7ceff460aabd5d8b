/* pagoda.h - the public C API of Pagoda, an LLM inference engine.
 *
 * Conventions:
 *   - Every fallible call returns a pagoda_status; PAGODA_OK is 0. On failure,
 *     pagoda_last_error() returns a one-line message (thread-local) that says what went wrong
 *     and, where possible, what to do about it.
 *   - Objects are opaque handles created by *_load / *_init and released by the matching *_free.
 *     *_free(NULL) is a no-op.
 *
 * A pagoda_model is a loaded model plus its engine: a paged KV cache with automatic prefix caching
 * and a continuous-batching scheduler. Requests are added at any time (pagoda_add_request); each
 * pagoda_step runs one iteration for every scheduled request and reports what each produced;
 * pagoda_abort cancels one. pagoda_generate is the one-request convenience on top.
 * All calls on one pagoda_model must come from one thread (the engine thread).
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

typedef enum pagoda_kv_type { PAGODA_KV_F16 = 0, PAGODA_KV_F32, PAGODA_KV_BF16 } pagoda_kv_type;
typedef enum pagoda_sched_policy { PAGODA_SCHED_FCFS = 0, PAGODA_SCHED_PRIORITY } pagoda_sched_policy;

typedef struct pagoda_model_params {
    int32_t n_threads;          /* <= 0: one per CPU */
    int32_t n_ctx;              /* longest sequence (prompt + output); <= 0: min(trained context, 4096) */
    int32_t n_batch;            /* tokens computed per step, all sequences together; <= 0: 512 */
    int32_t max_seqs;           /* sequences running at once; <= 0: 64 */
    int64_t kv_cache_bytes;     /* KV cache budget; <= 0: kv_cache_fraction of available memory,
                                   at most what max_seqs full-length sequences need */
    float kv_cache_fraction;    /* <= 0: 0.25 */
    int32_t kv_block_size;      /* tokens per KV block; <= 0: 16 */
    pagoda_kv_type kv_type;     /* default F16 */
    bool no_prefix_caching;     /* turn automatic prefix caching off */
    pagoda_sched_policy policy; /* FCFS (default) or by request priority */
    /* Speculative decoding (at most one draft source): a draft proposes draft_k tokens per step, the
     * model verifies them in one forward; the output distribution is the model's own. */
    const char *draft_model_path; /* a smaller GGUF sharing the vocabulary; NULL: none */
    int32_t draft_layers;         /* self-speculation: the model's own first N layers; 0: off */
    int32_t lookup_ngram;         /* prompt lookup: match the last N tokens in the context; 0: off */
    int32_t draft_k;              /* tokens proposed per step; <= 0: 4 */
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
    int64_t kv_blocks;          /* KV cache: blocks, of kv_block_size tokens, kv_bytes in all */
    int32_t kv_block_size;
    size_t kv_bytes;
    const char *kv_type;        /* "F16", "F32", "BF16" */
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
typedef struct pagoda_logit_bias {
    int32_t token;
    float bias;
} pagoda_logit_bias;

typedef struct pagoda_sampling_params {
    float temperature; /* 0: greedy */
    int32_t top_k;     /* 0: off */
    float top_p;       /* 1: off */
    float min_p;       /* 0: off */
    uint64_t seed;
    int32_t max_tokens; /* most tokens to generate; < 0: until end of generation or a full context */
    bool ignore_eos;    /* keep going past end-of-generation tokens */
    int32_t n;          /* parallel samples of one prompt (they share its KV blocks); <= 0: 1 */
    /* the rest of the sampler chain (pagoda_sampling_params_default leaves them all off) */
    float typical_p;          /* locally typical sampling; 0 or 1: off */
    float repetition_penalty; /* HF/vLLM-style, over prompt and output; 0 or 1: off */
    float presence_penalty;   /* OpenAI-style, over the output; 0: off */
    float frequency_penalty;  /* OpenAI-style, over the output; 0: off */
    const pagoda_logit_bias *logit_bias; /* added to the logits before sampling; copied by add_request */
    size_t n_logit_bias;
    const int32_t *stop_token_ids;       /* extra tokens that end generation; copied */
    size_t n_stop_token_ids;
    const char *const *stop;             /* stop strings, matched across tokens, never output; copied */
    size_t n_stop;
    bool logprobs;            /* report the chosen token's log-probability with each token */
    int32_t top_logprobs;     /* and the N most likely alternatives (0..20) */
    /* search strategies (greedy-based; temperature is ignored while one is on) */
    int32_t num_beams;        /* beam search; <= 1: off. n <= num_beams best beams are returned */
    float length_penalty;     /* beam score = sum logprob / length^length_penalty; default 1 */
    bool early_stopping;      /* stop once num_beams finished hypotheses exist (HF early_stopping=True) */
    float penalty_alpha;      /* contrastive search with top_k candidates; 0: off */
    const char *dola_layers;  /* DoLa: "low", "high" or a comma list of layer indices; NULL: off */
} pagoda_sampling_params;

pagoda_sampling_params pagoda_sampling_params_default(void); /* temperature 0.8, top_k 40, top_p 0.95,
                                                              min_p 0.05, seed 0, max_tokens -1,
                                                              length_penalty 1, the rest off */

typedef enum pagoda_finish_reason {
    PAGODA_FINISH_STOP,      /* an end-of-generation token, a stop token id or a stop string */
    PAGODA_FINISH_LENGTH,    /* max_tokens reached, or the context (or the KV cache) is full */
    PAGODA_FINISH_CANCELLED, /* the callback asked to stop, or the request was aborted */
    PAGODA_FINISH_ERROR,     /* the request failed: see pagoda_output.error_message */
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

/* ---- The engine: many requests at once ----------------------------------------------------------- */
typedef int64_t pagoda_request_id;

/* Queues a request. The prompt is copied. priority matters with PAGODA_SCHED_PRIORITY (lower first).
 * Errors: PAGODA_ERR_INVALID_ARGUMENT (empty prompt, bad token id, bad sampling parameter),
 * PAGODA_ERR_CONTEXT_FULL (the prompt exceeds n_ctx or can never fit in the KV cache). */
pagoda_status pagoda_add_request(pagoda_model *model, const int32_t *prompt, size_t n_prompt,
                                 const pagoda_sampling_params *params, int32_t priority, pagoda_request_id *out_id);

typedef struct pagoda_top_logprob {
    int32_t token;
    float logprob;
} pagoda_top_logprob;

/* The log-probability of a generated token under the distribution after penalties and logit bias,
 * before temperature and truncation (OpenAI's definition), with the most likely alternatives. */
typedef struct pagoda_token_logprob {
    int32_t token;
    float logprob;
    const pagoda_top_logprob *top; /* [n_top], most likely first */
    int32_t n_top;
} pagoda_token_logprob;

/* What one sample of one request produced in a step. */
typedef struct pagoda_output {
    pagoda_request_id id;
    int32_t index;                /* which of the request's n samples */
    const int32_t *tokens;        /* tokens generated this step (the end-of-generation token is not) */
    size_t n_tokens;
    const pagoda_token_logprob *logprobs; /* [n_tokens] when the request asked for logprobs, else NULL */
    const char *text;             /* text completed this step (whole UTF-8 characters), NUL-terminated */
    size_t text_len;
    bool finished;
    pagoda_finish_reason finish_reason; /* when finished */
    const char *error_message;    /* when finish_reason is PAGODA_FINISH_ERROR */
    pagoda_status error_status;   /* likewise, e.g. PAGODA_ERR_CONTEXT_FULL */
    int32_t n_prompt_tokens;      /* usage: prompt tokens, of which n_cached_tokens came from the prefix cache */
    int32_t n_cached_tokens;
    int32_t n_generated;          /* tokens generated so far by this sample */
} pagoda_output;

/* Runs one engine iteration. *outputs (valid until the next step) lists every sample that produced
 * tokens or finished. Errors: PAGODA_ERR_OUT_OF_MEMORY and internal errors (the engine stays usable;
 * requests that could not proceed finish with PAGODA_FINISH_ERROR). */
pagoda_status pagoda_step(pagoda_model *model, const pagoda_output **outputs, size_t *n_outputs);

/* Cancels a request; its KV blocks return to the pool at once; it reports no more outputs.
 * Errors: PAGODA_ERR_INVALID_ARGUMENT (unknown or finished id). */
pagoda_status pagoda_abort(pagoda_model *model, pagoda_request_id id);

/* True while any request is waiting or running. */
bool pagoda_has_unfinished(const pagoda_model *model);

typedef struct pagoda_engine_stats {
    int32_t n_running, n_waiting;
    int64_t kv_blocks_total, kv_blocks_used;
    double kv_usage;                       /* used / total */
    uint64_t prefix_queries, prefix_hits;  /* in tokens */
    uint64_t n_preemptions;
    uint64_t prompt_tokens, generated_tokens, computed_tokens;
    uint64_t n_steps;
    uint64_t spec_proposed, spec_accepted; /* speculative decoding: draft tokens proposed and accepted */
} pagoda_engine_stats;
void pagoda_get_stats(const pagoda_model *model, pagoda_engine_stats *out);

#ifdef __cplusplus
}
#endif
#endif /* PAGODA_H */
