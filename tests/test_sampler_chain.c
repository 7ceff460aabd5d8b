/* tests/test_sampler_chain.c - the rest of the sampler chain (sample/sampler.h): logit bias,
 * repetition / presence / frequency penalties, typical-p, their combinations with temperature,
 * top-k, top-p and min-p, logprobs, and parameter checks.
 *
 * The reference (ref_dist below) is written from the definitions in sampler.h, in double, on the
 * whole history each time (the sampler keeps counts incrementally):
 *   x = logits + bias; repetition over distinct prompt+output tokens (x > 0 ? x / r : x * r);
 *   x -= count * frequency + presence over distinct output tokens; logprobs = log_softmax(x);
 *   then softmax(x / T) cut by top-k, top-p, min-p, typical-p in that order, renormalised.
 * 1. Statistics: N draws per case against ref_dist by Pearson's chi-square at alpha = 1e-6 (a
 *    correct sampler fails one of the cases about once in 10^5 runs); each case also names a
 *    deliberately wrong target (the component under test left out or changed) that the same
 *    counts must reject, so every case can fail. Seeds come from test_seed(). Tokens expected < 5
 *    times are pooled; each case is checked to sit >= 1e-4 from every cut it makes (f32 rounding
 *    inside the sampler is ~1e-6, so it cannot decide a cut the other way). Vocabularies of 16, 32
 *    and 400 reach every path of the sampler (top-k heap, block draw, mass-weighted select).
 * 2. Incremental counts: 300 greedy steps with penalties, each token accepted, equal the argmax of
 *    the reference recomputed from the whole history.
 * 3. Logprobs: the chosen token's logprob and the top_logprobs (ids and values) against a
 *    double-precision log-softmax of the reference logits, for greedy and sampled draws.
 * 4. Parameter checks: each bad value is rejected with a message naming the field.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pagoda.h"         /* defines: pagoda_status, pagoda_last_error, pagoda_logit_bias */
#include "sample/sampler.h" /* defines: sampler_init, sampler_sample, sampler_accept, sampler_last_logprob */
#include "testlib.h"

enum { VMAX = 1024, HMAX = 512 };

typedef struct history {
    int32_t prompt[HMAX], output[HMAX];
    int n_prompt, n_output;
} history;

/* ---- The reference ----------------------------------------------------------------------------------- */
/* Steps 1-3 from the whole history. */
static void ref_logits(const float *logits, int n, const sampler_params *p, const history *h, double *x) {
    for (int i = 0; i < n; i++) x[i] = logits[i];
    for (size_t i = 0; i < p->n_logit_bias; i++) x[p->logit_bias[i].token] += p->logit_bias[i].bias;
    if (p->repetition_penalty != 0 && p->repetition_penalty != 1) {
        static char seen[VMAX];
        memset(seen, 0, sizeof seen);
        for (int i = 0; i < h->n_prompt; i++) seen[h->prompt[i]] = 1;
        for (int i = 0; i < h->n_output; i++) seen[h->output[i]] = 1;
        for (int t = 0; t < n; t++)
            if (seen[t]) x[t] = x[t] > 0 ? x[t] / p->repetition_penalty : x[t] * p->repetition_penalty;
    }
    static int count[VMAX];
    memset(count, 0, sizeof count);
    for (int i = 0; i < h->n_output; i++) count[h->output[i]]++;
    for (int t = 0; t < n; t++)
        if (count[t]) x[t] -= count[t] * (double)p->frequency_penalty + p->presence_penalty;
}

static int cmp_desc_idx(const double *x, int a, int b) { return x[a] != x[b] ? (x[a] < x[b]) : (a > b); }

/* The full target distribution; *margin: the closest any cut came to its threshold. */
static void ref_dist(const float *logits, int n, const sampler_params *p, const history *h, double *out,
                     double *margin) {
    static double x[VMAX], q[VMAX];
    static int order[VMAX];
    ref_logits(logits, n, p, h, x);
    for (int i = 0; i < n; i++) order[i] = i;
    for (int i = 1; i < n; i++) /* insertion sort: descending, ties by id */
        for (int j = i; j > 0 && cmp_desc_idx(x, order[j - 1], order[j]); j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    *margin = INFINITY;
    for (int i = 0; i < n; i++) out[i] = 0;
    if (p->temperature == 0) {
        out[order[0]] = 1;
        return;
    }
    int kept = p->top_k > 0 && p->top_k < n ? p->top_k : n;
    if (kept < n) *margin = fmin(*margin, x[order[kept - 1]] - x[order[kept]]);
    double sum = 0;
    for (int i = 0; i < kept; i++) sum += (q[i] = exp((x[order[i]] - x[order[0]]) / p->temperature));
    for (int i = 0; i < kept; i++) q[i] /= sum;
    if (p->top_p < 1) {
        double cum = 0;
        for (int i = 0; i < kept; i++) {
            double before = cum;
            cum += q[i];
            if (cum >= p->top_p) {
                *margin = fmin(*margin, fmin(cum - p->top_p, p->top_p - before));
                kept = i + 1;
                break;
            }
        }
    }
    if (p->min_p > 0) {
        int keep = 0;
        for (int i = 0; i < kept; i++) {
            *margin = fmin(*margin, fabs(q[i] / q[0] - p->min_p));
            if (q[i] >= p->min_p * q[0]) keep = i + 1;
        }
        kept = keep;
    }
    sum = 0;
    for (int i = 0; i < kept; i++) sum += q[i];
    for (int i = 0; i < kept; i++) q[i] /= sum;
    if (p->typical_p > 0 && p->typical_p < 1 && kept > 1) {
        double ent = 0, shift[VMAX];
        int idx[VMAX];
        for (int i = 0; i < kept; i++) ent -= q[i] > 0 ? q[i] * log(q[i]) : 0;
        for (int i = 0; i < kept; i++) {
            shift[i] = q[i] > 0 ? fabs(-log(q[i]) - ent) : INFINITY;
            idx[i] = i;
        }
        for (int i = 1; i < kept; i++) /* ascending by shift */
            for (int j = i; j > 0 && shift[idx[j]] < shift[idx[j - 1]]; j--) {
                int t = idx[j];
                idx[j] = idx[j - 1];
                idx[j - 1] = t;
            }
        for (int i = 1; i < kept; i++) *margin = fmin(*margin, shift[idx[i]] - shift[idx[i - 1]]);
        double cum = 0;
        int keep = kept;
        for (int i = 0; i < kept; i++) {
            double before = cum;
            cum += q[idx[i]];
            if (cum >= p->typical_p) {
                *margin = fmin(*margin, fmin(cum - p->typical_p, p->typical_p - before));
                keep = i + 1;
                break;
            }
        }
        sum = 0;
        for (int i = 0; i < keep; i++) sum += q[idx[i]];
        for (int i = 0; i < keep; i++) out[order[idx[i]]] = q[idx[i]] / sum;
        return;
    }
    for (int i = 0; i < kept; i++) out[order[i]] = q[i];
}

/* ---- Chi-square ------------------------------------------------------------------------------------ */
/* Upper critical value at alpha = 1e-6 (z = 4.7534) by Wilson-Hilferty, conservative for small df. */
static double chi2_critical(int df) {
    const double z = 4.753424308822899;
    double h = 2.0 / (9.0 * df), c = 1.0 - h + z * sqrt(h);
    return df * c * c * c;
}

/* Pearson's statistic; INFINITY when a token expected less than 1e-3 times was drawn. Tokens
 * expected fewer than 5 times share one pooled category (the usual rule for the chi-square
 * approximation), when the pool itself expects at least 5. */
static double chi2_stat(const long *counts, const double *p, int n, long n_draws, int *df) {
    double stat = 0, pool_e = 0, pool_n = 0;
    int n_cat = 0;
    for (int i = 0; i < n; i++) {
        double e = p[i] * (double)n_draws;
        if (e < 1e-3) { /* never expected (a -100 bias, a cut token): any draw rejects */
            if (counts[i] > 0) stat = INFINITY;
            continue;
        }
        if (e < 5) {
            pool_e += e;
            pool_n += (double)counts[i];
            continue;
        }
        double d = (double)counts[i] - e;
        stat += d * d / e;
        n_cat++;
    }
    if (pool_e >= 5) {
        stat += (pool_n - pool_e) * (pool_n - pool_e) / pool_e;
        n_cat++;
    } else if (pool_n > pool_e + 10 * sqrt(pool_e) + 10) { /* a tiny pool drawn far too often */
        stat = INFINITY;
    }
    *df = n_cat - 1;
    return stat;
}

typedef struct stat_case {
    const char *name;
    sampler_params p;     /* logit_bias filled in per case below */
    sampler_params wrong; /* a deliberately wrong target for the can-fail check */
    int logits;           /* 0: 16 logits, 1: 32 logits, 2: 400 logits */
    bool with_history;
} stat_case;

static void fill_history(history *h, int n_vocab) {
    /* prompt: tokens 0..5 and 8; output: 2 three times, 5 twice, 9 once, 12 once */
    static const int32_t prompt[] = {0, 1, 2, 3, 4, 5, 8, 3, 1};
    static const int32_t output[] = {2, 5, 2, 9, 12, 2, 5};
    h->n_prompt = 9;
    h->n_output = 7;
    memcpy(h->prompt, prompt, sizeof prompt);
    memcpy(h->output, output, sizeof output);
    for (int i = 0; i < h->n_output; i++) h->output[i] %= n_vocab;
}

static void run_stat_case(const stat_case *c, const float *logits, int n, uint64_t seed) {
    const long n_draws = 100000;
    history h = {0};
    if (c->with_history) fill_history(&h, n);
    static double p[VMAX], wrong[VMAX];
    double margin, margin_wrong;
    ref_dist(logits, n, &c->p, &h, p, &margin);
    ref_dist(logits, n, &c->wrong, &h, wrong, &margin_wrong);
    CHECK_MSG(margin > 1e-4, "%s: the case sits too close to a cut (margin %.3g)", c->name, margin);
    sampler_params sp = c->p;
    sp.seed = seed;
    sampler *s = NULL;
    CHECK_MSG(sampler_init(&sp, n, &s) == PAGODA_OK, "%s: %s", c->name, pagoda_last_error());
    if (!s) return;
    sampler_accept_prompt(s, h.prompt, h.n_prompt);
    for (int i = 0; i < h.n_output; i++) sampler_accept(s, h.output[i]);
    static long counts[VMAX];
    memset(counts, 0, sizeof counts);
    for (long i = 0; i < n_draws; i++) {
        int32_t t = sampler_sample(s, logits);
        if (t >= 0 && t < n) counts[t]++;
        else CHECK_MSG(0, "%s: token %d out of range", c->name, t);
    }
    sampler_free(s);
    int df, df_wrong, n_kept = 0;
    for (int i = 0; i < n; i++) n_kept += p[i] > 0;
    double stat = chi2_stat(counts, p, n, n_draws, &df), crit = chi2_critical(df > 0 ? df : 1);
    double stat_wrong = chi2_stat(counts, wrong, n, n_draws, &df_wrong);
    if (df == 0) CHECK_MSG(stat == 0, "%s: one token kept, yet others drawn", c->name);
    else CHECK_MSG(stat <= crit, "%s: chi2 %.1f > critical %.1f (df %d)", c->name, stat, crit, df);
    /* the can-fail check: the same counts against the wrong target are rejected */
    CHECK_MSG(stat_wrong > 3 * crit, "%s: the test cannot tell the wrong target (chi2 %.1f, critical %.1f)", c->name,
              stat_wrong, crit);
    printf("%-36s kept %3d of %3d  chi2 %7.1f (df %3d, critical %6.1f)  wrong target: %.0f\n", c->name, n_kept, n,
           stat, df, crit, stat_wrong);
}

static const pagoda_logit_bias BIAS[] = {{3, 2.5f}, {7, -1.5f}, {11, -100.0f}, {0, 0.75f}};

static void test_statistics(uint64_t *rng) {
    static float small[16] = {1.3f, -0.4f, 2.9f, 0.2f, -1.7f, 2.1f, 0.9f, -0.9f,
                              3.4f, -2.3f, 1.7f, -0.1f, 0.55f, -1.2f, 2.55f, 0.05f};
    static float wide[32], large[400];
    for (int i = 0; i < 32; i++) wide[i] = 4.0f - 0.25f * (float)((i * 13) % 32) + 0.01f * (float)(i % 5);
    for (int i = 0; i < 400; i++) large[i] = 3.0f - 0.02f * (float)((i * 37) % 400);
    const float *sets[3] = {small, wide, large};
    const int sizes[3] = {16, 32, 400};
    /* base: temperature 1, nothing else */
#define P(T, TOP_P, ...) ((sampler_params){.temperature = T, .top_p = TOP_P, __VA_ARGS__})
    const stat_case cases[] = {
        {"typical_p=0.9", P(1, 1, .typical_p = 0.9f), P(1, 1), 0, false},
        {"typical_p=0.5 T=0.8", P(0.8f, 1, .typical_p = 0.5f), P(0.8f, 0.5f), 1, false},
        {"typical_p=0.7 (vocab 400)", P(1, 1, .typical_p = 0.7f), P(1, 1, .typical_p = 0.8f), 2, false},
        {"repetition_penalty=1.3", P(1, 1, .repetition_penalty = 1.3f), P(1, 1, .repetition_penalty = 1), 0, true},
        {"repetition_penalty=0.8 T=1.2", P(1.2f, 1, .repetition_penalty = 0.8f),
         P(1.2f, 1, .repetition_penalty = 1.0f), 1, true},
        {"presence_penalty=0.7", P(1, 1, .presence_penalty = 0.7f), P(1, 1, .frequency_penalty = 0.7f), 0, true},
        {"frequency_penalty=0.4", P(1, 1, .frequency_penalty = 0.4f), P(1, 1, .presence_penalty = 0.4f), 0, true},
        {"presence=-0.5 frequency=0.3", P(1, 1, .presence_penalty = -0.5f, .frequency_penalty = 0.3f),
         P(1, 1, .presence_penalty = 0.5f, .frequency_penalty = 0.3f), 1, true},
        {"logit_bias", P(1, 1, .n_logit_bias = 4), P(1, 1, .n_logit_bias = 0), 0, false},
        {"logit_bias T=0.6 top_k=6", P(0.6f, 1, .top_k = 6, .n_logit_bias = 4),
         P(0.6f, 1, .top_k = 6, .n_logit_bias = 0), 0, false},
        {"all: T=0.9 k=20 p=0.95 min_p=0.02 typ=0.9", /* penalties and bias too */
         P(0.9f, 0.95f, .top_k = 20, .min_p = 0.02f, .typical_p = 0.9f, .repetition_penalty = 1.2f,
           .presence_penalty = 0.3f, .frequency_penalty = 0.2f, .n_logit_bias = 4),
         P(0.9f, 0.95f, .top_k = 20, .min_p = 0.02f, .repetition_penalty = 1.2f, .presence_penalty = 0.3f,
           .frequency_penalty = 0.2f, .n_logit_bias = 4),
         1, true},
        {"all: T=1.3 k=50 p=0.9 min_p=0.05 (vocab 400)",
         P(1.3f, 0.9f, .top_k = 50, .min_p = 0.05f, .repetition_penalty = 1.5f, .frequency_penalty = 0.5f,
           .n_logit_bias = 4),
         P(1.3f, 0.9f, .top_k = 50, .min_p = 0.05f, .repetition_penalty = 1.5f, .frequency_penalty = 0.5f,
           .n_logit_bias = 0),
         2, true},
        {"T=0.7 (vocab 400)", P(0.7f, 1), P(0.84f, 1), 2, false},
        {"top_p=0.7 (vocab 400)", P(1, 0.7f), P(1, 0.8f), 2, false},
        {"T=1.4 top_p=0.95 min_p=0.1 (vocab 400)", P(1.4f, 0.95f, .min_p = 0.1f), P(1.4f, 0.95f, .min_p = 0.2f), 2,
         false},
        {"greedy with penalties and bias", P(0, 1, .repetition_penalty = 1.5f, .n_logit_bias = 4),
         P(0, 1, .n_logit_bias = 0), 0, true},
    };
#undef P
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        stat_case c = cases[i];
        if (c.p.n_logit_bias) c.p.logit_bias = BIAS;
        if (c.wrong.n_logit_bias) c.wrong.logit_bias = BIAS;
        run_stat_case(&c, sets[c.logits], sizes[c.logits], test_rand_u64(rng));
    }
}

/* ---- Incremental penalty counts ----------------------------------------------------------------------- */
static void test_incremental(uint64_t *rng) {
    enum { N = 64, STEPS = 300 };
    float logits[N];
    for (int i = 0; i < N; i++) logits[i] = 3.0f * test_rand_uniform(rng);
    sampler_params sp = {.temperature = 0, .top_p = 1, .repetition_penalty = 1.1f, .presence_penalty = 0.2f,
                         .frequency_penalty = 0.15f};
    sampler *s = NULL;
    CHECK(sampler_init(&sp, N, &s) == PAGODA_OK);
    if (!s) return;
    static history h;
    h.n_prompt = 20;
    for (int i = 0; i < h.n_prompt; i++) h.prompt[i] = (int32_t)(test_rand_u64(rng) % N);
    h.n_output = 0;
    sampler_accept_prompt(s, h.prompt, h.n_prompt);
    int n_checked = 0, n_distinct = 0;
    static char used[N];
    for (int step = 0; step < STEPS && h.n_output < HMAX; step++) {
        double x[N];
        ref_logits(logits, N, &sp, &h, x);
        int best = 0, second = -1;
        for (int i = 1; i < N; i++)
            if (x[i] > x[best]) best = i;
        for (int i = 0; i < N; i++)
            if (i != best && (second < 0 || x[i] > x[second])) second = i;
        int32_t t = sampler_sample(s, logits);
        if (x[best] - x[second] > 1e-4) { /* not a near tie that float rounding may decide */
            CHECK_MSG(t == best, "step %d: greedy with penalties picked %d, the reference %d", step, t, best);
            n_checked++;
        }
        sampler_accept(s, t);
        h.output[h.n_output++] = t;
        if (!used[t]) n_distinct++;
        used[t] = 1;
    }
    sampler_free(s);
    /* the penalties must have moved the argmax around: many distinct tokens */
    printf("incremental penalties: %d of %d steps checked, %d distinct tokens\n", n_checked, STEPS, n_distinct);
    CHECK(n_checked > STEPS * 9 / 10 && n_distinct > 5);
}

/* ---- Logprobs ------------------------------------------------------------------------------------------- */
static void test_logprobs(uint64_t *rng) {
    enum { N = 500 };
    static float logits[N];
    for (int rep = 0; rep < 40; rep++) {
        for (int i = 0; i < N; i++) logits[i] = 6.0f * test_rand_uniform(rng);
        if (rep % 5 == 4) logits[test_rand_u64(rng) % N] = -INFINITY;
        int k = rep % 21;
        sampler_params sp = {.temperature = rep % 2 ? 0.7f : 0.0f, .top_k = rep % 3 ? 30 : 0, .top_p = 0.9f,
                             .seed = test_rand_u64(rng), .logprobs = true, .top_logprobs = k,
                             .repetition_penalty = rep % 4 ? 1.3f : 0.0f, .frequency_penalty = 0.5f,
                             .logit_bias = BIAS, .n_logit_bias = rep % 2 ? 4 : 0};
        history h = {0};
        fill_history(&h, N);
        sampler *s = NULL;
        CHECK(sampler_init(&sp, N, &s) == PAGODA_OK);
        if (!s) continue;
        sampler_accept_prompt(s, h.prompt, h.n_prompt);
        for (int i = 0; i < h.n_output; i++) sampler_accept(s, h.output[i]);
        double x[N], max = -INFINITY, sum = 0;
        ref_logits(logits, N, &sp, &h, x);
        for (int i = 0; i < N; i++) max = fmax(max, x[i]);
        for (int i = 0; i < N; i++) sum += exp(x[i] - max);
        double lse = max + log(sum);
        int order[N];
        for (int i = 0; i < N; i++) order[i] = i;
        for (int i = 1; i < N; i++)
            for (int j = i; j > 0 && cmp_desc_idx(x, order[j - 1], order[j]); j--) {
                int t = order[j];
                order[j] = order[j - 1];
                order[j - 1] = t;
            }
        for (int draw = 0; draw < 3; draw++) {
            int32_t t = sampler_sample(s, logits);
            const pagoda_token_logprob *lp = sampler_last_logprob(s);
            CHECK(lp && lp->token == t);
            if (!lp) break;
            CHECK_MSG(fabs(lp->logprob - (x[t] - lse)) < 1e-4, "rep %d: logprob of %d is %g, want %g", rep, t,
                      (double)lp->logprob, x[t] - lse);
            CHECK_MSG(lp->n_top == k, "rep %d: %d top logprobs, want %d", rep, lp->n_top, k);
            double mass = 0;
            for (int i = 0; i < lp->n_top && i < k; i++) {
                CHECK_MSG(lp->top[i].token == order[i], "rep %d: top %d is %d, want %d", rep, i, lp->top[i].token,
                          order[i]);
                CHECK(fabs(lp->top[i].logprob - (x[order[i]] - lse)) < 1e-4);
                mass += exp(lp->top[i].logprob);
            }
            CHECK(mass <= 1 + 1e-5);
            if (sp.temperature == 0) CHECK_MSG(t == order[0], "greedy picked %d, not the top logprob %d", t, order[0]);
        }
        sampler_free(s);
    }
    /* off: no record */
    sampler_params off = {.temperature = 1, .top_p = 1};
    sampler *s = NULL;
    CHECK(sampler_init(&off, 8, &s) == PAGODA_OK);
    if (s) {
        float l[8] = {0};
        sampler_sample(s, l);
        CHECK(sampler_last_logprob(s) == NULL);
    }
    sampler_free(s);
}

/* ---- Parameter checks ----------------------------------------------------------------------------------- */
static void expect_rejected(sampler_params p, int32_t n_vocab, const char *name, const char *what) {
    sampler *s = (sampler *)&p;
    pagoda_status st = sampler_init(&p, n_vocab, &s);
    const char *msg = pagoda_last_error();
    CHECK_MSG(st == PAGODA_ERR_INVALID_ARGUMENT && s == NULL, "%s: accepted (status %d)", what, (int)st);
    CHECK_MSG(strstr(msg, name) != NULL, "%s: message '%s' does not name %s", what, msg, name);
}

static void test_params(void) {
    const sampler_params ok = {.temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f, .typical_p = 0.9f,
                               .repetition_penalty = 1.1f, .presence_penalty = 0.5f, .frequency_penalty = -0.5f,
                               .logit_bias = BIAS, .n_logit_bias = 4, .top_logprobs = 20};
    sampler *s = NULL;
    CHECK(sampler_init(&ok, 16, &s) == PAGODA_OK);
    sampler_free(s);
    pagoda_logit_bias bad_token[] = {{16, 1.0f}}, bad_bias[] = {{2, NAN}}, neg_token[] = {{-1, 1.0f}};
    sampler_params p;
    p = ok; p.typical_p = 1.5f;           expect_rejected(p, 16, "typical_p", "typical_p 1.5");
    p = ok; p.typical_p = -0.1f;          expect_rejected(p, 16, "typical_p", "typical_p -0.1");
    p = ok; p.typical_p = NAN;            expect_rejected(p, 16, "typical_p", "typical_p NaN");
    p = ok; p.top_p = 1.5f;               expect_rejected(p, 16, "top_p", "top_p 1.5");
    p = ok; p.top_k = -3;                 expect_rejected(p, 16, "top_k", "top_k -3");
    p = ok; p.repetition_penalty = -1;    expect_rejected(p, 16, "repetition_penalty", "repetition_penalty -1");
    p = ok; p.repetition_penalty = INFINITY; expect_rejected(p, 16, "repetition_penalty", "repetition_penalty inf");
    p = ok; p.presence_penalty = 2.5f;    expect_rejected(p, 16, "presence_penalty", "presence_penalty 2.5");
    p = ok; p.frequency_penalty = -2.5f;  expect_rejected(p, 16, "frequency_penalty", "frequency_penalty -2.5");
    p = ok; p.frequency_penalty = NAN;    expect_rejected(p, 16, "frequency_penalty", "frequency_penalty NaN");
    p = ok; p.top_logprobs = 21;          expect_rejected(p, 16, "top_logprobs", "top_logprobs 21");
    p = ok; p.top_logprobs = -1;          expect_rejected(p, 16, "top_logprobs", "top_logprobs -1");
    p = ok; p.logit_bias = bad_token; p.n_logit_bias = 1; expect_rejected(p, 16, "logit_bias", "bias token 16 of 16");
    p = ok; p.logit_bias = neg_token; p.n_logit_bias = 1; expect_rejected(p, 16, "logit_bias", "bias token -1");
    p = ok; p.logit_bias = bad_bias; p.n_logit_bias = 1;  expect_rejected(p, 16, "logit_bias", "bias NaN");
    /* boundaries that are valid */
    p = ok; p.typical_p = 0; CHECK(sampler_params_check(&p) == PAGODA_OK);
    p = ok; p.typical_p = 1; CHECK(sampler_params_check(&p) == PAGODA_OK);
    p = ok; p.repetition_penalty = 0; CHECK(sampler_params_check(&p) == PAGODA_OK);
    p = ok; p.presence_penalty = -2; p.frequency_penalty = 2; CHECK(sampler_params_check(&p) == PAGODA_OK);
    /* the bias array is copied: changing the caller's after init changes nothing */
    pagoda_logit_bias mine[] = {{5, 50.0f}};
    p = (sampler_params){.temperature = 0, .top_p = 1, .logit_bias = mine, .n_logit_bias = 1};
    CHECK(sampler_init(&p, 16, &s) == PAGODA_OK);
    mine[0].token = 9;
    float zero[16] = {0};
    if (s) CHECK(sampler_sample(s, zero) == 5);
    sampler_free(s);
}

int main(void) {
    uint64_t rng = test_seed();
    test_params();
    test_incremental(&rng);
    test_logprobs(&rng);
    test_statistics(&rng);
    return test_finish();
}
