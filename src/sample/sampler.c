/* sample/sampler.c - greedy, temperature, top-k, top-p and min-p sampling (see sampler.h). */
#include "sample/sampler.h"

#include <math.h>
#include <stdlib.h>

#include "core/error.h" /* defines: error_set */

typedef struct candidate {
    int32_t id;
    float logit; /* then probability */
} candidate;

struct sampler {
    sampler_params params;
    int32_t n_vocab;
    candidate *cand; /* [n_vocab] scratch, allocated once */
    sampler_rng rng;
};

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void sampler_rng_seed(sampler_rng *rng, uint64_t seed) {
    for (int i = 0; i < 4; i++) rng->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t sampler_rng_next(sampler_rng *rng) {
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double sampler_rng_uniform(sampler_rng *rng) { return (double)(sampler_rng_next(rng) >> 11) * 0x1.0p-53; }

pagoda_status sampler_params_check(const sampler_params *p) {
    if (!(p->temperature >= 0) || !isfinite(p->temperature))
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "temperature must be >= 0 (got %g)", (double)p->temperature);
    if (p->top_k < 0) return error_set(PAGODA_ERR_INVALID_ARGUMENT, "top-k must be >= 0 (got %d)", p->top_k);
    if (!(p->top_p > 0 && p->top_p <= 1))
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "top-p must be in (0, 1] (got %g)", (double)p->top_p);
    if (!(p->min_p >= 0 && p->min_p <= 1))
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "min-p must be in [0, 1] (got %g)", (double)p->min_p);
    return PAGODA_OK;
}

pagoda_status sampler_init(const sampler_params *params, int32_t n_vocab, sampler **out) {
    *out = NULL;
    pagoda_status st = sampler_params_check(params);
    if (st) return st;
    if (n_vocab <= 0) return error_set(PAGODA_ERR_INVALID_ARGUMENT, "vocabulary size must be positive");
    sampler *s = calloc(1, sizeof *s);
    if (s) s->cand = malloc((size_t)n_vocab * sizeof *s->cand);
    if (!s || !s->cand) {
        sampler_free(s);
        return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory for the sampler");
    }
    s->params = *params;
    s->n_vocab = n_vocab;
    sampler_rng_seed(&s->rng, params->seed);
    *out = s;
    return PAGODA_OK;
}

void sampler_free(sampler *s) {
    if (!s) return;
    free(s->cand);
    free(s);
}

static int32_t argmax(const float *x, int32_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

static int by_logit_desc(const void *a, const void *b) {
    const candidate *x = a, *y = b;
    if (x->logit != y->logit) return x->logit < y->logit ? 1 : -1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Moves the k largest to the front (unordered) by quickselect; returns k. */
static int32_t select_top_k(candidate *c, int32_t n, int32_t k) {
    int32_t lo = 0, hi = n - 1;
    while (lo < hi) {
        candidate pivot = c[(lo + hi) / 2];
        int32_t i = lo, j = hi;
        while (i <= j) {
            while (by_logit_desc(&c[i], &pivot) < 0) i++;
            while (by_logit_desc(&c[j], &pivot) > 0) j--;
            if (i <= j) {
                candidate t = c[i];
                c[i++] = c[j];
                c[j--] = t;
            }
        }
        if (k - 1 <= j) hi = j;
        else if (k - 1 >= i) lo = i;
        else break;
    }
    return k;
}

int32_t sampler_sample(sampler *s, const float *logits) {
    const sampler_params *p = &s->params;
    if (p->temperature == 0) return argmax(logits, s->n_vocab);
    candidate *c = s->cand;
    int32_t n = s->n_vocab;
    for (int32_t i = 0; i < n; i++) /* NaN would break the ordering: treat it as impossible */
        c[i] = (candidate){i, isnan(logits[i]) ? -INFINITY : logits[i]};
    if (p->top_k > 0 && p->top_k < n) n = select_top_k(c, n, p->top_k);
    qsort(c, (size_t)n, sizeof *c, by_logit_desc); /* TODO(issue 7): avoid the full sort without top-k */
    double max = c[0].logit, sum = 0;
    /* The max gets weight 1 explicitly: if it is +inf, inf - inf would make every weight NaN. */
    for (int32_t i = 0; i < n; i++)
        sum += (c[i].logit = c[i].logit == max ? 1.0f : (float)exp((c[i].logit - max) / p->temperature));
    for (int32_t i = 0; i < n; i++) c[i].logit = (float)(c[i].logit / sum);
    if (p->top_p < 1) {
        double cum = 0;
        int32_t keep = n;
        for (int32_t i = 0; i < n; i++) {
            cum += c[i].logit;
            if (cum >= p->top_p) {
                keep = i + 1;
                break;
            }
        }
        n = keep;
    }
    if (p->min_p > 0) {
        float floor = c[0].logit * p->min_p;
        int32_t keep = 1;
        while (keep < n && c[keep].logit >= floor) keep++;
        n = keep;
    }
    double total = 0;
    for (int32_t i = 0; i < n; i++) total += c[i].logit;
    double r = sampler_rng_uniform(&s->rng) * total, cum = 0;
    for (int32_t i = 0; i < n; i++) {
        cum += c[i].logit;
        if (r < cum) return c[i].id;
    }
    return c[n - 1].id;
}
