/* sample/sampler.c - the sampler chain of sampler.h: parameters, per-sequence state, logit bias and
 * penalties, logprobs, greedy, and the truncations (temperature, top-k, top-p, min-p, typical-p)
 * before the draw.
 *
 * Cost per token (row loops in sampler_kernels.c, AVX2): greedy without bias or penalties is one
 * argmax over the row. Bias and penalties copy the row once and touch only the biased / seen
 * tokens. Logprobs add one pass of exp and a top-N scan. With top-k, one heap scan of the row and
 * work on k candidates only; without it, one pass of exp, and top-p / typical-p find their cut by a
 * mass-weighted quickselect (expected linear), never a full sort.
 */
#include "sample/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"             /* defines: error_set */
#include "sample/sampler_kernels.h" /* defines: candidate, sampler_argmax, sampler_exp_weights, sampler_top_k */

struct sampler {
    sampler_params params;
    pagoda_logit_bias *bias; /* [params.n_logit_bias] owned copy */
    int32_t n_vocab;
    candidate *cand;         /* [n_vocab] scratch; NULL for plain greedy (temperature 0, no logprobs) */
    float *work;             /* [n_vocab] logits after bias and penalties; NULL when neither is on */
    float *wbuf;             /* [n_vocab] exp weights of the row; NULL like cand */
    bool rep_on, count_on;   /* repetition penalty; presence/frequency penalties */
    uint8_t *seen;           /* [n_vocab] rep_on: 1 if in prompt or output */
    int32_t *seen_list;      /* [n_vocab] rep_on: the distinct tokens seen, n_seen of them */
    int32_t n_seen;
    uint32_t *count;         /* [n_vocab] count_on: occurrences in the output */
    int32_t *out_list;       /* [n_vocab] count_on: the distinct output tokens, n_out of them */
    int32_t n_out;
    bool lp_on;
    pagoda_token_logprob last;                       /* the last draw's logprob */
    pagoda_top_logprob top[SAMPLER_MAX_TOP_LOGPROBS]; /* [params.top_logprobs] */
    sampler_rng rng;
};

/* ---- The random stream ----------------------------------------------------------------------------- */
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

/* ---- Parameters ------------------------------------------------------------------------------------ */
#define BAD(...) error_set(PAGODA_ERR_INVALID_ARGUMENT, __VA_ARGS__)

pagoda_status sampler_params_check_vocab(const sampler_params *p, int32_t n_vocab) {
    if (!(p->temperature >= 0) || !isfinite(p->temperature))
        return BAD("temperature must be >= 0 (got %g)", (double)p->temperature);
    if (p->top_k < 0) return BAD("top_k must be >= 0 (got %d; 0 turns it off)", p->top_k);
    if (!(p->top_p > 0 && p->top_p <= 1)) return BAD("top_p must be in (0, 1] (got %g)", (double)p->top_p);
    if (!(p->min_p >= 0 && p->min_p <= 1)) return BAD("min_p must be in [0, 1] (got %g)", (double)p->min_p);
    if (!(p->typical_p >= 0 && p->typical_p <= 1))
        return BAD("typical_p must be in (0, 1] (got %g; 0 or 1 turn it off)", (double)p->typical_p);
    if (!(p->repetition_penalty >= 0) || !isfinite(p->repetition_penalty))
        return BAD("repetition_penalty must be > 0 (got %g; 1 turns it off)", (double)p->repetition_penalty);
    if (!(p->presence_penalty >= -2 && p->presence_penalty <= 2))
        return BAD("presence_penalty must be in [-2, 2] (got %g)", (double)p->presence_penalty);
    if (!(p->frequency_penalty >= -2 && p->frequency_penalty <= 2))
        return BAD("frequency_penalty must be in [-2, 2] (got %g)", (double)p->frequency_penalty);
    if (p->top_logprobs < 0 || p->top_logprobs > SAMPLER_MAX_TOP_LOGPROBS)
        return BAD("top_logprobs must be in [0, %d] (got %d)", SAMPLER_MAX_TOP_LOGPROBS, p->top_logprobs);
    if (p->n_logit_bias && !p->logit_bias) return BAD("logit_bias is NULL but n_logit_bias is %zu", p->n_logit_bias);
    for (size_t i = 0; i < p->n_logit_bias; i++) {
        const pagoda_logit_bias *b = &p->logit_bias[i];
        if (!isfinite(b->bias)) return BAD("logit_bias for token %d must be a finite number", b->token);
        if (b->token < 0 || (n_vocab > 0 && b->token >= n_vocab))
            return BAD("logit_bias token %d is out of range (vocabulary of %d)", b->token, n_vocab);
    }
    return PAGODA_OK;
}

pagoda_status sampler_params_check(const sampler_params *p) { return sampler_params_check_vocab(p, 0); }

pagoda_status sampler_init(const sampler_params *params, int32_t n_vocab, sampler **out) {
    *out = NULL;
    pagoda_status st = sampler_params_check_vocab(params, n_vocab);
    if (st) return st;
    if (n_vocab <= 0) return BAD("vocabulary size must be positive");
    sampler *s = calloc(1, sizeof *s);
    if (!s) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory for the sampler");
    s->params = *params;
    s->n_vocab = n_vocab;
    s->rep_on = params->repetition_penalty != 0 && params->repetition_penalty != 1;
    s->count_on = params->presence_penalty != 0 || params->frequency_penalty != 0;
    s->lp_on = params->logprobs || params->top_logprobs > 0;
    bool scratch = params->temperature > 0 || s->lp_on; /* plain greedy needs no scratch rows */
    bool ok = !scratch || (s->cand = malloc((size_t)n_vocab * sizeof *s->cand)) != NULL;
    if (ok && params->n_logit_bias) {
        ok = (s->bias = malloc(params->n_logit_bias * sizeof *s->bias)) != NULL;
        if (ok) memcpy(s->bias, params->logit_bias, params->n_logit_bias * sizeof *s->bias);
    }
    s->params.logit_bias = s->bias;
    if (ok && (s->rep_on || s->count_on || params->n_logit_bias))
        ok = (s->work = malloc((size_t)n_vocab * sizeof *s->work)) != NULL;
    if (ok && s->rep_on)
        ok = (s->seen = calloc((size_t)n_vocab, 1)) && (s->seen_list = malloc((size_t)n_vocab * sizeof(int32_t)));
    if (ok && s->count_on)
        ok = (s->count = calloc((size_t)n_vocab, sizeof *s->count)) &&
             (s->out_list = malloc((size_t)n_vocab * sizeof(int32_t)));
    if (ok && scratch) ok = (s->wbuf = malloc((size_t)n_vocab * sizeof *s->wbuf)) != NULL;
    if (!ok) {
        sampler_free(s);
        return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory for the sampler");
    }
    s->last.top = s->top;
    sampler_rng_seed(&s->rng, params->seed);
    *out = s;
    return PAGODA_OK;
}

void sampler_free(sampler *s) {
    if (!s) return;
    free(s->cand);
    free(s->bias);
    free(s->work);
    free(s->seen);
    free(s->seen_list);
    free(s->count);
    free(s->out_list);
    free(s->wbuf);
    free(s);
}

/* ---- Penalty history ------------------------------------------------------------------------------- */
static void note_seen(sampler *s, int32_t token) {
    if (s->rep_on && !s->seen[token]) {
        s->seen[token] = 1;
        s->seen_list[s->n_seen++] = token;
    }
}

void sampler_accept_prompt(sampler *s, const int32_t *tokens, int32_t n) {
    for (int32_t i = 0; i < n; i++)
        if (tokens[i] >= 0 && tokens[i] < s->n_vocab) note_seen(s, tokens[i]);
}

void sampler_accept(sampler *s, int32_t token) {
    if (token < 0 || token >= s->n_vocab) return;
    note_seen(s, token);
    if (s->count_on && s->count[token]++ == 0) s->out_list[s->n_out++] = token;
}

/* Steps 1-3: the row with bias and penalties, or the row itself when nothing applies. */
static const float *apply_bias_and_penalties(sampler *s, const float *logits) {
    const sampler_params *p = &s->params;
    if (!p->n_logit_bias && s->n_seen == 0 && s->n_out == 0) return logits;
    float *x = s->work;
    memcpy(x, logits, (size_t)s->n_vocab * sizeof *x);
    for (size_t i = 0; i < p->n_logit_bias; i++) x[s->bias[i].token] += s->bias[i].bias;
    float r = p->repetition_penalty;
    for (int32_t i = 0; i < s->n_seen; i++) {
        float *v = &x[s->seen_list[i]];
        *v = *v > 0 ? *v / r : *v * r;
    }
    for (int32_t i = 0; i < s->n_out; i++) {
        int32_t t = s->out_list[i];
        x[t] -= (float)s->count[t] * p->frequency_penalty + p->presence_penalty;
    }
    return x;
}

/* ---- Logprobs -------------------------------------------------------------------------------------- */
typedef struct logprob_norm {
    float max;       /* largest logit (NaN as -inf) */
    double log_sum;  /* log sum exp(x - max) */
    int32_t n_max;   /* how many equal max, when max is +-inf */
} logprob_norm;

static float logprob_of(const logprob_norm *z, float x) {
    if (isnan(x)) return -INFINITY;
    if (isinf(z->max)) return x == z->max ? (float)-log((double)z->n_max) : -INFINITY;
    return (float)((double)x - z->max - z->log_sum);
}

static int by_logit_desc(const void *a, const void *b) {
    const candidate *x = a, *y = b;
    if (x->logit != y->logit) return x->logit < y->logit ? 1 : -1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Step 4: the normaliser and the top_logprobs most likely tokens (ties to the lowest id). */
static void logprobs_prepare(sampler *s, const float *x, logprob_norm *z) {
    int32_t n = s->n_vocab, k = s->params.top_logprobs < n ? s->params.top_logprobs : n;
    z->max = x[sampler_argmax(x, n)];
    if (isnan(z->max)) z->max = -INFINITY;
    z->n_max = 0;
    z->log_sum = 0;
    if (isinf(z->max)) {
        for (int32_t i = 0; i < n; i++) z->n_max += x[i] == z->max;
    } else {
        z->log_sum = log(sampler_exp_weights(x, n, z->max, 1.0f, s->wbuf));
    }
    if (k > 0) {
        sampler_top_k(x, n, k, s->cand);
        qsort(s->cand, (size_t)k, sizeof *s->cand, by_logit_desc);
    }
    for (int32_t i = 0; i < k; i++) s->top[i] = (pagoda_top_logprob){s->cand[i].id, logprob_of(z, s->cand[i].logit)};
    s->last.n_top = k;
}

const pagoda_token_logprob *sampler_last_logprob(const sampler *s) { return s->lp_on ? &s->last : NULL; }

/* ---- Truncation and the draw ------------------------------------------------------------------------- */
static void swap(candidate *a, candidate *b) {
    candidate t = *a;
    *a = *b;
    *b = t;
}

/* Moves the shortest prefix of c[0..n) in by_logit_desc order whose weight reaches `want` to the
 * front and returns its length (n when all of it falls short, by rounding). A quickselect that
 * recurses into the side holding the cut, summing weights as it partitions: expected O(n). */
static int32_t select_mass(candidate *c, int32_t n, double want) {
    int32_t lo = 0, hi = n;
    double acc = 0; /* the weight of c[0..lo), all in the prefix */
    while (hi - lo > 32) {
        swap(&c[lo + (hi - lo) / 2], &c[hi - 1]);
        candidate pivot = c[hi - 1];
        int32_t store = lo;
        double mass = 0;
        for (int32_t i = lo; i < hi - 1; i++)
            if (by_logit_desc(&c[i], &pivot) < 0) {
                mass += c[i].w;
                swap(&c[i], &c[store++]);
            }
        swap(&c[store], &c[hi - 1]);
        if (acc + mass >= want) {
            hi = store;
        } else if (acc + mass + pivot.w >= want) {
            return store + 1;
        } else {
            acc += mass + pivot.w;
            lo = store + 1;
        }
    }
    qsort(c + lo, (size_t)(hi - lo), sizeof *c, by_logit_desc);
    for (int32_t i = lo; i < hi; i++) {
        acc += c[i].w;
        if (acc >= want) return i + 1;
    }
    return hi;
}

/* Typical-p over c[0..n) (weights summing to `total`): keeps the most typical (smallest
 * |-log q - H|) whose mass reaches `mass`; returns how many, moved to the front. */
static int32_t typical_keep(candidate *c, int32_t n, double total, double mass) {
    double h = 0;
    for (int32_t i = 0; i < n; i++) {
        double q = c[i].w / total;
        if (q > 0) h -= q * log(q);
    }
    for (int32_t i = 0; i < n; i++) { /* the sort key: descending logit = ascending shift */
        double q = c[i].w / total;
        c[i].logit = q > 0 ? (float)-fabs(-log(q) - h) : -INFINITY;
    }
    return select_mass(c, n, mass * total);
}

/* A draw from w[0..n) (summing to total): whole blocks of 64 are skipped by their sum, then the
 * block holding the draw is scanned. */
static int32_t draw_weights(sampler *s, const float *w, int32_t n, double total) {
    double r = sampler_rng_uniform(&s->rng) * total, cum = 0;
    int32_t last = 0, i = 0;
    for (; i + 64 <= n; i += 64) {
        double block = sampler_sum(w + i, 64);
        if (cum + block > r) break;
        cum += block;
        if (block > 0) last = i; /* a block with weight: the fallback looks there */
    }
    for (; i < n; i++) {
        if (w[i] <= 0) continue;
        cum += w[i];
        last = i;
        if (r < cum) return i;
    }
    while (last + 1 < n && w[last] <= 0) last++; /* rounding put r past the end: a token with weight */
    return last;
}

static int32_t draw(sampler *s, const float *x) {
    const sampler_params *p = &s->params;
    candidate *c = s->cand;
    int32_t n_vocab = s->n_vocab, n;
    float max = x[sampler_argmax(x, n_vocab)], inv_t = 1.0f / p->temperature;
    if (isnan(max)) max = -INFINITY;
    bool typical = p->typical_p > 0 && p->typical_p < 1;
    double total = 0;
    if (p->top_k > 0 && p->top_k < n_vocab) { /* step 7 first: it only ranks, so it commutes with step 6 */
        n = p->top_k;
        sampler_top_k(x, n_vocab, n, c);
        for (int32_t i = 0; i < n; i++) /* the max gets 1 explicitly: inf - inf would be NaN */
            total += c[i].w = c[i].logit == max ? 1.0f : isinf(max) ? 0.0f : expf((c[i].logit - max) * inv_t);
    } else {
        float *w = s->wbuf;
        if (isinf(max)) {
            for (int32_t i = 0; i < n_vocab; i++) total += w[i] = x[i] == max ? 1.0f : 0.0f;
        } else {
            total = sampler_exp_weights(x, n_vocab, max, inv_t, w);
        }
        if (total <= 0) return sampler_argmax(x, n_vocab); /* all NaN */
        if (p->top_p >= 1 && p->min_p <= 0 && !typical) return draw_weights(s, w, n_vocab, total);
        /* Candidates: min-p's survivors, or for top-p those above 1e-4 of the max when they already
         * hold top_p of the mass (the prefix top-p keeps then lies among them). */
        float floor = p->min_p > 0 ? p->min_p : 0;
        if (p->top_p < 1 && floor < 1e-4f) {
            double above = 0;
            for (int32_t i = 0; i < n_vocab; i++) above += w[i] >= 1e-4f ? w[i] : 0;
            if (above >= p->top_p * total) floor = 1e-4f;
        }
        n = 0;
        for (int32_t i = 0; i < n_vocab; i++)
            if (w[i] > 0 && w[i] >= floor) c[n++] = (candidate){i, x[i], w[i]};
    }
    if (p->top_p < 1) { /* step 8 */
        n = select_mass(c, n, p->top_p * total);
        total = 0;
        for (int32_t i = 0; i < n; i++) total += c[i].w;
    }
    if (p->min_p > 0) { /* step 9: relative to the max's weight, 1 */
        int32_t keep = 0;
        total = 0;
        for (int32_t i = 0; i < n; i++)
            if (c[i].w >= p->min_p) {
                c[keep++] = c[i];
                total += c[i].w;
            }
        n = keep;
    }
    if (typical && n > 1) { /* step 10 */
        n = typical_keep(c, n, total, p->typical_p);
        total = 0;
        for (int32_t i = 0; i < n; i++) total += c[i].w;
    }
    double r = sampler_rng_uniform(&s->rng) * total, cum = 0;
    for (int32_t i = 0; i < n; i++) {
        cum += c[i].w;
        if (r < cum) return c[i].id;
    }
    for (int32_t i = n - 1; i > 0; i--) /* rounding put r at the very end: the last token with weight */
        if (c[i].w > 0) return c[i].id;
    return c[0].id;
}

int32_t sampler_sample(sampler *s, const float *logits) {
    const float *x = apply_bias_and_penalties(s, logits);
    logprob_norm z = {0};
    if (s->lp_on) logprobs_prepare(s, x, &z);
    int32_t token = s->params.temperature == 0 ? sampler_argmax(x, s->n_vocab) : draw(s, x);
    if (s->lp_on) {
        s->last.token = token;
        s->last.logprob = logprob_of(&z, x[token]);
    }
    return token;
}
