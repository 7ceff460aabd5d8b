/* engine/engine_sample.h - the engine's side of the sampler chain, called from small hooks in
 * engine.c: a request's sampling parameters checked and their arrays (logit bias, stop token ids,
 * stop strings) copied; per sequence, its sampler (seeded per sample, the prompt given for the
 * repetition penalty), stop token ids, stop strings over the released text (engine/stop_text.h)
 * and the logprobs reported with each step's tokens. */
#ifndef PAGODA_ENGINE_SAMPLE_H
#define PAGODA_ENGINE_SAMPLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pagoda.h" /* defines: pagoda_sampling_params, pagoda_status */

struct engine_request;
struct engine_seq;

#define ENGINE_MAX_STOP 64             /* stop strings per request */
#define ENGINE_MAX_STOP_TOKEN_IDS 1024 /* stop token ids per request */

/* Errors: PAGODA_ERR_INVALID_ARGUMENT naming the field (top_p, typical_p, logit_bias, stop, ...). */
pagoda_status engine_sampling_check(const pagoda_sampling_params *p, int32_t n_vocab);
/* Copies params->logit_bias, stop_token_ids and stop into the request (req->params points at the
 * copies). Errors: PAGODA_ERR_OUT_OF_MEMORY. */
pagoda_status engine_request_copy_params(struct engine_request *req, const pagoda_sampling_params *params);
void engine_request_free_params(struct engine_request *req);

/* The sequence's sampler (seed as given), stop-string matcher and logprob slots; the tokens it
 * holds (the prompt) go to the repetition penalty. Errors: as sampler_init. */
pagoda_status engine_seq_sampling_init(struct engine_seq *seq, int32_t n_vocab, uint64_t seed, const int32_t *prompt,
                                       int32_t n_prompt);
void engine_seq_sampling_free(struct engine_seq *seq);

/* True if the request lists `token` among its stop_token_ids. */
bool engine_is_stop_token(const struct engine_request *req, int32_t token);
/* The sampled token joins the output as step token number `slot`: penalty counts, logprob copied. */
void engine_seq_accept_token(struct engine_seq *seq, int32_t token, int32_t slot);
/* Text completed by the token (whole UTF-8 characters) goes through the stop strings; returns the
 * part to release in *out (valid until the next call). False: out of memory. */
bool engine_seq_stop_feed(struct engine_seq *seq, const char *text, size_t len, const char **out, size_t *n_out);
/* The end of the sequence: the held text, unless a stop string matched. */
bool engine_seq_stop_flush(struct engine_seq *seq, const char **out, size_t *n_out);
/* A stop string matched: the sequence finishes with PAGODA_FINISH_STOP. */
bool engine_seq_stopped(const struct engine_seq *seq);

#endif
