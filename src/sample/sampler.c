/* sample/sampler.c - the sampler chain of sampler.h: parameters, per-sequence state, logit bias and
 * penalties, logprobs, greedy, and the truncations (temperature, top-k, top-p, min-p, typical-p)
 * before the draw.
 *
 * Cost per token: greedy without bias or penalties is one vectorised argmax over the row. Bias and
 * penalties copy the row once and touch only the biased / seen tokens. Logprobs add one pass of
 * exp over the row and a running top-N. Sampling makes one pass of exp; only top-p and typical-p
 * sort, and top-p first tries the 256 most likely tokens (quickselect) before sorting everything.
 */
#include "sample/sampler.h"

#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h" /* defines: error_set */

typedef struct candidate {
    int32_t id;
    float logit; /* after bias and penalties (NaN as -inf) */
    float w;     /* unnormalised probability at the temperature, the max logit's being 1 */
} candidate;

typedef struct typical_item {
    double shift; /* |-log q - H| */
    int32_t at;   /* index into the candidates */
} typical_item;

struct sampler {
    sampler_params params;
    pagoda_logit_bias *bias; /* [params.n_logit_bias] owned copy */
    int32_t n_vocab;
    candidate *cand;         /* [n_vocab] scratch */
    float *work;             /* [n_vocab] logits after bias and penalties; NULL when neither is on */
    bool rep_on, count_on;   /* repetition penalty; presence/frequency penalties */
    uint8_t *seen;           /* [n_vocab] rep_on: 1 if in prompt or output */
    int32_t *seen_list;      /* [n_vocab] rep_on: the distinct tokens seen, n_seen of them */
    int32_t n_seen;
    uint32_t *count;         /* [n_vocab] count_on: occurrences in the output */
    int32_t *out_list;       /* [n_vocab] count_on: the distinct output tokens, n_out of them */
    int32_t n_out;
    typical_item *typical; /* [n_vocab] scratch when typical_p is on */
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
    bool ok = (s->cand = malloc((size_t)n_vocab * sizeof *s->cand)) != NULL;
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
    if (ok && params->typical_p > 0 && params->typical_p < 1)
        ok = (s->typical = malloc((size_t)n_vocab * sizeof *s->typical)) != NULL;
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
    free(s->typical);
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

/* ---- Greedy ---------------------------------------------------------------------------------------- */
/* The first index of the largest value; NaN never wins (all NaN: 0). AVX2 max over blocks of 8,
 * then a scan for the first element equal to it. */
static int32_t argmax(const float *x, int32_t n) {
    __m256 m8 = _mm256_set1_ps(-INFINITY);
    int32_t i = 0;
    for (; i + 8 <= n; i += 8) m8 = _mm256_max_ps(_mm256_loadu_ps(x + i), m8); /* a NaN in x yields m8 */
    float lanes[8], m = -INFINITY;
    _mm256_storeu_ps(lanes, m8);
    for (int k = 0; k < 8; k++) m = lanes[k] > m ? lanes[k] : m;
    for (; i < n; i++) m = x[i] > m ? x[i] : m;
    __m256 target = _mm256_set1_ps(m);
    for (i = 0; i + 8 <= n; i += 8) {
        int mask = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + i), target, _CMP_EQ_OQ));
        if (mask) return i + __builtin_ctz((unsigned)mask);
    }
    for (; i < n; i++)
        if (x[i] == m) return i;
    return 0;
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

/* Step 4: the normaliser and the top_logprobs most likely tokens (ties to the lowest id). */
static void logprobs_prepare(sampler *s, const float *x, logprob_norm *z) {
    int32_t n = s->n_vocab, k = s->params.top_logprobs, n_top = 0;
    z->max = x[argmax(x, n)];
    if (isnan(z->max)) z->max = -INFINITY;
    double sum = 0;
    z->n_max = 0;
    if (isinf(z->max)) {
        for (int32_t i = 0; i < n; i++) z->n_max += x[i] == z->max;
    } else {
        for (int32_t i = 0; i < n; i++) sum += x[i] > -INFINITY ? exp((double)x[i] - z->max) : 0.0;
    }
    z->log_sum = log(sum);
    pagoda_top_logprob *top = s->top; /* descending by logit; insertion keeps the first of equals first */
    for (int32_t i = 0; i < n && k > 0; i++) {
        float v = isnan(x[i]) ? -INFINITY : x[i];
        if (n_top == k && !(v > top[k - 1].logprob)) continue;
        int32_t j = n_top < k ? n_top++ : k - 1;
        while (j > 0 && v > top[j - 1].logprob) {
            top[j] = top[j - 1];
            j--;
        }
        top[j] = (pagoda_top_logprob){i, v};
    }
    for (int32_t i = 0; i < n_top; i++) top[i].logprob = logprob_of(z, top[i].logprob);
    s->last.n_top = n_top;
}

const pagoda_token_logprob *sampler_last_logprob(const sampler *s) { return s->lp_on ? &s->last : NULL; }

/* ---- Truncation and the draw ------------------------------------------------------------------------- */
static int by_logit_desc(const void *a, const void *b) {
    const candidate *x = a, *y = b;
    if (x->logit != y->logit) return x->logit < y->logit ? 1 : -1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Moves the k largest (by logit, then lower id) to the front, unordered, by quickselect. */
static void select_top_k(candidate *c, int32_t n, int32_t k) {
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
}

/* Top-p over c[0..n) (weights summing to `total`): sorts the head and returns how many to keep. */
static int32_t top_p_keep(candidate *c, int32_t n, double total, double top_p) {
    int32_t head = n > 512 ? 256 : n;
    for (;;) {
        if (head < n) select_top_k(c, n, head);
        qsort(c, (size_t)head, sizeof *c, by_logit_desc);
        double cum = 0, want = top_p * total;
        for (int32_t i = 0; i < head; i++) {
            cum += c[i].w;
            if (cum >= want) return i + 1;
        }
        if (head == n) return n; /* rounding: the whole mass fell short of top_p * total */
        head = n;                /* the 256 most likely did not reach p: sort everything */
    }
}

static int by_shift(const void *a, const void *b) {
    const typical_item *x = a, *y = b;
    if (x->shift != y->shift) return x->shift < y->shift ? -1 : 1;
    return x->at < y->at ? -1 : x->at > y->at;
}

/* Typical-p over c[0..n) (weights summing to `total`): moves the kept candidates, most typical
 * first, to the front and returns how many. items: [n] scratch. */
static int32_t typical_keep(candidate *c, int32_t n, double total, double mass, typical_item *items) {
    double h = 0;
    for (int32_t i = 0; i < n; i++) {
        double q = c[i].w / total;
        if (q > 0) h -= q * log(q);
    }
    for (int32_t i = 0; i < n; i++) {
        double q = c[i].w / total;
        items[i] = (typical_item){q > 0 ? fabs(-log(q) - h) : INFINITY, i};
    }
    qsort(items, (size_t)n, sizeof *items, by_shift);
    double cum = 0, want = mass * total;
    int32_t keep = n;
    for (int32_t i = 0; i < n; i++) {
        cum += c[items[i].at].w;
        if (cum >= want) {
            keep = i + 1;
            break;
        }
    }
    /* move the kept candidates to the front (their ids and weights are all the draw needs) */
    for (int32_t i = 0; i < keep; i++) {
        candidate t = c[items[i].at];
        items[i].shift = t.w;
        items[i].at = t.id;
    }
    for (int32_t i = 0; i < keep; i++) c[i] = (candidate){items[i].at, 0, (float)items[i].shift};
    return keep;
}

static int32_t draw(sampler *s, const float *x) {
    const sampler_params *p = &s->params;
    candidate *c = s->cand;
    int32_t n = s->n_vocab;
    float max = -INFINITY;
    for (int32_t i = 0; i < n; i++) {
        float v = isnan(x[i]) ? -INFINITY : x[i];
        c[i] = (candidate){i, v, 0};
        max = v > max ? v : max;
    }
    if (p->top_k > 0 && p->top_k < n) {
        select_top_k(c, n, p->top_k);
        n = p->top_k;
    }
    /* the max gets weight 1 explicitly: if it is +inf, inf - inf would make every weight NaN */
    double total = 0, inv_t = 1.0 / p->temperature;
    for (int32_t i = 0; i < n; i++)
        total += (c[i].w = c[i].logit == max ? 1.0f : (float)exp(((double)c[i].logit - max) * inv_t));
    if (p->top_p < 1) {
        n = top_p_keep(c, n, total, p->top_p);
        total = 0;
        for (int32_t i = 0; i < n; i++) total += c[i].w;
    }
    if (p->min_p > 0) { /* relative to the max's weight, 1; order is kept */
        int32_t keep = 0;
        total = 0;
        for (int32_t i = 0; i < n; i++)
            if (c[i].w >= p->min_p) {
                c[keep++] = c[i];
                total += c[i].w;
            }
        n = keep;
    }
    if (p->typical_p > 0 && p->typical_p < 1 && n > 1) {
        n = typical_keep(c, n, total, p->typical_p, s->typical);
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
    int32_t token = s->params.temperature == 0 ? argmax(x, s->n_vocab) : draw(s, x);
    if (s->lp_on) {
        s->last.token = token;
        s->last.logprob = logprob_of(&z, x[token]);
    }
    return token;
}
