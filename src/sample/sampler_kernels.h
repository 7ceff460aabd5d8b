/* sample/sampler_kernels.h - the row-wide loops of the sampler (internal to src/sample/), in AVX2:
 * argmax, exp-weights with their sum, and the k largest logits. Each reads a whole vocabulary row
 * once, so they set the cost of a sampled token. */
#ifndef PAGODA_SAMPLER_KERNELS_H
#define PAGODA_SAMPLER_KERNELS_H

#include <stdint.h>

typedef struct candidate {
    int32_t id;
    float logit; /* after bias and penalties (NaN as -inf); reused as a sort key by typical-p */
    float w;     /* unnormalised probability at the temperature, the max logit's being 1 */
} candidate;

/* The first index of the largest value; NaN never wins (all NaN: 0). */
int32_t sampler_argmax(const float *x, int32_t n);
/* w[i] = exp((x[i] - max) * inv_t) for finite max (0 for NaN and -inf and below about e^-87);
 * returns the sum in double. max must be the largest non-NaN x. */
double sampler_exp_weights(const float *x, int32_t n, float max, float inv_t, float *w);
/* The sum of x[0..n), n a multiple of 8. */
double sampler_sum(const float *x, int32_t n);
/* The k largest x (by value, then lower id; NaN as -inf) into out[0..k), unordered. k <= n. */
void sampler_top_k(const float *x, int32_t n, int32_t k, candidate *out);

#endif
