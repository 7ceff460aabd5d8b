/* sample/sampler.h - turning one row of logits into the next token, for one sequence.
 *
 * The chain, in this order (the order of HF transformers' logits processors and warpers, which
 * vLLM shares for everything both implement):
 *
 *   1. logit bias          logit[t] += bias[t]                                   (OpenAI logit_bias)
 *   2. repetition penalty  for every distinct token of prompt + output:          (HF / vLLM)
 *                          logit > 0 ? logit / r : logit * r
 *   3. presence/frequency  for every distinct token of the output, seen c times:  (OpenAI)
 *                          logit -= c * frequency_penalty + presence_penalty
 *   4. logprobs            log-softmax of these logits at temperature 1, before any truncation
 *                          (OpenAI's and vLLM's "processed" logprobs); the top_logprobs most likely
 *   5. temperature == 0    greedy: the argmax of the step-3 logits, ties to the lowest id
 *   6. temperature         logits / T
 *   7. top-k               keep the k largest logits
 *   8. top-p (nucleus)     keep the shortest prefix, by decreasing probability, whose mass >= p
 *   9. min-p               keep tokens with p >= min_p * p_max
 *  10. typical-p           on the renormalised survivors: sort by |-log p - H| (H their entropy),
 *                          keep the shortest prefix of that order whose mass >= typical_p
 *  11. draw                one uniform from the sampler's own stream (seeded: the same seed gives
 *                          the same tokens whatever else runs in the batch)
 * Steps 7-10 each renormalise what they keep and always keep at least one token. NaN logits count
 * as -inf; +inf logits share all the probability.
 *
 * Penalty counts are kept incrementally: sampler_accept_prompt once, sampler_accept per output
 * token; each step touches only the distinct tokens seen, never the whole history.
 * Beam search, contrastive search, DoLa and speculative decoding are not here.
 */
#ifndef PAGODA_SAMPLER_H
#define PAGODA_SAMPLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pagoda.h" /* defines: pagoda_status, pagoda_logit_bias, pagoda_token_logprob */

#define SAMPLER_MAX_TOP_LOGPROBS 20

typedef struct sampler_params {
    float temperature; /* 0: greedy */
    int32_t top_k;     /* 0: off */
    float top_p;       /* 1: off */
    float min_p;       /* 0: off */
    uint64_t seed;
    float typical_p;          /* 0 or 1: off */
    float repetition_penalty; /* 0 or 1: off */
    float presence_penalty;   /* 0: off */
    float frequency_penalty;  /* 0: off */
    const pagoda_logit_bias *logit_bias; /* [n_logit_bias], copied by sampler_init */
    size_t n_logit_bias;
    bool logprobs;            /* record the chosen token's logprob (sampler_last_logprob) */
    int32_t top_logprobs;     /* and the N most likely tokens, 0..SAMPLER_MAX_TOP_LOGPROBS (implies logprobs) */
} sampler_params;

typedef struct sampler sampler;

/* Errors: PAGODA_ERR_INVALID_ARGUMENT naming the bad parameter (as the pagoda_sampling_params
 * field, e.g. "top_p"), PAGODA_ERR_OUT_OF_MEMORY. */
pagoda_status sampler_init(const sampler_params *params, int32_t n_vocab, sampler **out);
void sampler_free(sampler *s);
/* Checks parameters without building a sampler (same errors as sampler_init). n_vocab > 0 also
 * checks logit-bias token ids; 0 skips that. */
pagoda_status sampler_params_check(const sampler_params *params);
pagoda_status sampler_params_check_vocab(const sampler_params *params, int32_t n_vocab);

/* The prompt, for the repetition penalty (a no-op when it is off). Call once, before sampling. */
void sampler_accept_prompt(sampler *s, const int32_t *tokens, int32_t n);
/* An output token was appended: counts for presence/frequency and the repetition history. */
void sampler_accept(sampler *s, int32_t token);

/* Picks a token from logits[n_vocab] (not modified). */
int32_t sampler_sample(sampler *s, const float *logits);
/* The logprob of the token the last sampler_sample returned, with top[n_top] (most likely first);
 * NULL unless params.logprobs or top_logprobs. Valid until the next sampler_sample. */
const pagoda_token_logprob *sampler_last_logprob(const sampler *s);

/* splitmix64-seeded xoshiro256** stream, exposed for tests. */
typedef struct sampler_rng { uint64_t s[4]; } sampler_rng;
void sampler_rng_seed(sampler_rng *rng, uint64_t seed);
uint64_t sampler_rng_next(sampler_rng *rng);
double sampler_rng_uniform(sampler_rng *rng); /* [0, 1) */

#endif
