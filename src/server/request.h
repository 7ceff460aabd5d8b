/* server/request.h - the OpenAI/vLLM request bodies the server accepts, parsed and validated by a
 * pure function (JSON text -> server_request, or an error saying what and where), so that
 * fuzz/fuzz_request.c can fuzz it. Needs no model: chat rendering and tokenization come later.
 *
 * Accepted (POST /v1/completions, /v1/chat/completions):
 *   model, prompt (string, token ids, or a one-element array of either) | messages (role
 *   system/developer/user/assistant; content a string or text parts), stream,
 *   stream_options.include_usage, max_tokens / max_completion_tokens, temperature, top_p, top_k,
 *   min_p, n, seed, stop (string or strings), ignore_eos, priority, add_generation_prompt (chat),
 *   presence_penalty / frequency_penalty (-2..2), repetition_penalty (> 0), typical_p (0..1],
 *   logit_bias ({"token id": -100..100}), stop_token_ids, logprobs (chat: a boolean, with
 *   top_logprobs 0..20; completions: a count 0..5),
 *   search strategies: num_beams (or use_beam_search with best_of), length_penalty, early_stopping,
 *   penalty_alpha (with top_k), dola_layers ("low", "high" or an array of layer indices).
 *   Parameters the engine cannot honour yet (echo, suffix, best_of without use_beam_search, tools,
 *   response_format json, ...) give a 400
 *   "... is not supported yet", unless their value is the neutral default. Unknown fields are
 *   ignored, as vLLM does.
 * POST /tokenize: {prompt | messages, add_special_tokens, add_generation_prompt}.
 * POST /detokenize: {tokens: [ids]}.
 */
#ifndef PAGODA_SERVER_REQUEST_H
#define PAGODA_SERVER_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pagoda.h" /* defines: pagoda_sampling_params, pagoda_chat_message */

typedef enum server_request_kind {
    SERVER_REQ_COMPLETION,
    SERVER_REQ_CHAT,
    SERVER_REQ_TOKENIZE,
    SERVER_REQ_DETOKENIZE,
} server_request_kind;

/* An error in OpenAI's shape: {"error": {"message", "type", "param", "code"}} with an HTTP status. */
typedef struct server_error {
    int http_status;   /* 400, 401, 404, 413, 429, 500, 503 */
    const char *type;  /* "invalid_request_error", "authentication_error", "server_error", ... */
    const char *code;  /* NULL, or e.g. "model_not_found", "context_length_exceeded" */
    char param[64];    /* the parameter at fault, or "" */
    char message[512];
} server_error;

void server_error_set(server_error *e, int http_status, const char *type, const char *code, const char *param,
                      const char *fmt, ...) __attribute__((format(printf, 6, 7)));

#define SERVER_MAX_STOP 16        /* stop strings per request */
#define SERVER_MAX_STOP_BYTES 512 /* bytes per stop string */
#define SERVER_MAX_N 128          /* samples per request */
#define SERVER_MAX_LOGIT_BIAS 1024     /* logit_bias entries */
#define SERVER_MAX_STOP_TOKEN_IDS 1024 /* stop_token_ids */
#define SERVER_MAX_TOP_LOGPROBS 20     /* chat top_logprobs */
#define SERVER_MAX_COMPLETION_LOGPROBS 5 /* completions logprobs */

typedef struct server_request {
    server_request_kind kind;
    char *model;                      /* the "model" field, or NULL when absent */
    /* the prompt: text, token ids or messages (exactly one is set) */
    char *prompt;                     /* completions and tokenize: UTF-8 text, NUL-terminated */
    size_t prompt_len;
    int32_t *ids;                     /* [n_ids] completions: token ids given as the prompt; detokenize: the tokens */
    size_t n_ids;
    bool has_ids;
    pagoda_chat_message *messages;    /* [n_messages] chat (and tokenize): role and content strings owned */
    size_t n_messages;
    bool add_generation_prompt;       /* chat, tokenize with messages (default true) */
    bool add_special;                 /* tokenize: add BOS/EOS (default: true for a prompt, false for messages) */
    /* generation */
    bool stream, include_usage;
    pagoda_sampling_params sampling;  /* max_tokens -1: up to the context */
    bool seed_given;
    int32_t priority;
    char **stop;                      /* [n_stop] non-empty stop strings, owned; sampling.stop points here */
    size_t n_stop;
    char *dola_layers;                /* owned; sampling.dola_layers points at it */
    pagoda_logit_bias *logit_bias;    /* [sampling.n_logit_bias] owned; sampling.logit_bias points here */
    int32_t *stop_token_ids;          /* [sampling.n_stop_token_ids] owned */
} server_request;

/* Parses and validates a request body of `kind`. On success fills *out (release it with
 * server_request_free) and returns true; otherwise fills *err (400 with the parameter named, or
 * 500 when out of memory) and leaves *out empty. Never reads past body[len]; body need not be
 * NUL-terminated. */
bool server_request_parse(server_request_kind kind, const char *body, size_t len, server_request *out,
                          server_error *err);
void server_request_free(server_request *r);

/* The sampler-chain fields of a parsed JSON object (stop, presence_penalty, frequency_penalty,
 * repetition_penalty, typical_p, logit_bias, stop_token_ids, logprobs, top_logprobs, and the search
 * strategies' num_beams, use_beam_search + best_of, length_penalty, early_stopping, penalty_alpha,
 * dola_layers) into
 * r->sampling (arrays owned by r; r->kind decides how logprobs reads). Shared with `pagoda batch`.
 * Fields absent keep r->sampling's values. False with *err set on a bad value. */
struct json_t;
bool server_request_parse_sampling(struct json_t *root, server_request *r, server_error *err);

#endif
