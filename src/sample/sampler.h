/* sample/sampler.h - turning one row of logits into the next token.
 *
 * The chain, in order: temperature == 0 -> greedy (argmax, ties to the lowest id); else top-k, then
 * softmax at the temperature, then top-p (nucleus), then min-p, then a draw from what remains with
 * the sampler's own random stream (seeded, so a seed reproduces the text).
 * TODO(issue 5): penalties, logit bias, typical-p, logprobs, beam/contrastive/DoLa/speculative.
 */
#ifndef PAGODA_SAMPLER_H
#define PAGODA_SAMPLER_H

#include <stdint.h>

#include "pagoda.h" /* defines: pagoda_status */

typedef struct sampler_params {
    float temperature; /* 0: greedy */
    int32_t top_k;     /* 0: off */
    float top_p;       /* 1: off */
    float min_p;       /* 0: off */
    uint64_t seed;
} sampler_params;

typedef struct sampler sampler;

/* Errors: PAGODA_ERR_INVALID_ARGUMENT naming the bad parameter, PAGODA_ERR_OUT_OF_MEMORY. */
pagoda_status sampler_init(const sampler_params *params, int32_t n_vocab, sampler **out);
void sampler_free(sampler *s);
/* Checks parameters without building a sampler (same errors as sampler_init). */
pagoda_status sampler_params_check(const sampler_params *params);
/* Picks a token from logits[n_vocab]. */
int32_t sampler_sample(sampler *s, const float *logits);

/* splitmix64-seeded xoshiro256** stream, exposed for tests. */
typedef struct sampler_rng { uint64_t s[4]; } sampler_rng;
void sampler_rng_seed(sampler_rng *rng, uint64_t seed);
uint64_t sampler_rng_next(sampler_rng *rng);
double sampler_rng_uniform(sampler_rng *rng); /* [0, 1) */

#endif
