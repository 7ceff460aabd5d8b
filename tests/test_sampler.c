/* tests/test_sampler.c - the sampler (sample/sampler.h) against an independent model of its chain.
 *
 * 1. Greedy (temperature 0) is the argmax with ties to the lowest id; top_k = 1 is greedy at every
 *    temperature; a tiny top_p and min_p = 1 also leave only the argmax (for a unique max); a +inf
 *    logit always wins and -inf logits are never drawn.
 * 2. Parameter checks: each bad value is rejected with PAGODA_ERR_INVALID_ARGUMENT and a message that
 *    names the parameter; boundary values are accepted.
 * 3. Streams: the same seed gives the same tokens, different seeds different ones.
 * 4. Statistics: for small vocabularies with chosen logits, N draws are compared by a chi-square
 *    goodness-of-fit test with the exact distribution computed here in double (target_dist below,
 *    written from the definition in sampler.h, not from sampler.c): plain temperature, top-k,
 *    top-p, min-p and a combination. Tokens the truncation removes must never be drawn. The
 *    statistical part uses a fixed seed (printed; PAGODA_SAMPLER_STAT_SEED overrides it) so CI is
 *    deterministic, and checks that the same statistic rejects a deliberately wrong distribution.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pagoda.h"            /* defines: pagoda_status, pagoda_last_error */
#include "sample/sampler.h"    /* defines: sampler_init, sampler_sample, sampler_params_check, sampler_rng */
#include "testlib.h"

enum { VOCAB_MAX = 1024 };

static sampler *sampler_new(float temperature, int32_t top_k, float top_p, float min_p, uint64_t seed,
                            int32_t n_vocab) {
    sampler_params p = {.temperature = temperature, .top_k = top_k, .top_p = top_p, .min_p = min_p, .seed = seed};
    sampler *s = NULL;
    pagoda_status st = sampler_init(&p, n_vocab, &s);
    CHECK_MSG(st == PAGODA_OK && s, "sampler_init(T=%g k=%d p=%g min_p=%g): %s", (double)temperature, top_k,
              (double)top_p, (double)min_p, pagoda_last_error());
    return s;
}

/* ---- greedy ---------------------------------------------------------------------------------------- */

/* The first index of the largest value. */
static int32_t argmax_lowest(const float *x, int32_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

static void test_greedy(uint64_t *rng) {
    static float logits[VOCAB_MAX];
    static const float temps[] = {0.01f, 0.5f, 1.0f, 3.0f, 100.0f};
    for (int rep = 0; rep < 200; rep++) {
        int32_t n = 1 + (int32_t)(test_rand_u64(rng) % VOCAB_MAX);
        for (int32_t i = 0; i < n; i++) logits[i] = 10.0f * test_rand_uniform(rng);
        if (rep % 3 == 1 && n > 4) { /* ties for the max, the first one not at 0 */
            float top = 20.0f;
            int32_t a = 1 + (int32_t)(test_rand_u64(rng) % (uint64_t)(n - 1));
            logits[a] = top;
            for (int j = 0; j < 3; j++) logits[a + (int32_t)(test_rand_u64(rng) % (uint64_t)(n - a))] = top;
        }
        if (rep % 3 == 2) logits[test_rand_u64(rng) % (uint64_t)n] = -INFINITY;
        int32_t want = argmax_lowest(logits, n);
        bool unique = true;
        for (int32_t i = want + 1; i < n; i++) unique = unique && logits[i] != logits[want];

        sampler *s = sampler_new(0, 0, 1, 0, (uint64_t)rep, n);
        if (s) CHECK_MSG(sampler_sample(s, logits) == want, "greedy: n=%d, expected %d", n, want);
        sampler_free(s);
        float t = temps[rep % 5];
        s = sampler_new(t, 1, 1, 0, (uint64_t)rep, n);
        for (int j = 0; s && j < 5; j++)
            CHECK_MSG(sampler_sample(s, logits) == want, "top_k=1 at T=%g: n=%d, expected %d", (double)t, n, want);
        sampler_free(s);
        if (!unique) continue;
        /* Only the argmax survives top_p = 1e-6 (its own probability exceeds that) and min_p = 1. */
        s = sampler_new(t, 0, 1e-6f, 0, (uint64_t)rep, n);
        for (int j = 0; s && j < 5; j++)
            CHECK_MSG(sampler_sample(s, logits) == want, "top_p=1e-6 at T=%g: n=%d", (double)t, n);
        sampler_free(s);
        s = sampler_new(t, 0, 1, 1.0f, (uint64_t)rep, n);
        for (int j = 0; s && j < 5; j++)
            CHECK_MSG(sampler_sample(s, logits) == want, "min_p=1 at T=%g: n=%d", (double)t, n);
        sampler_free(s);
    }
}

/* Infinite logits: a +inf logit must win at any temperature (the softmax limit), two share the
 * draws; -inf tokens are never drawn; all -inf still returns a valid token. */
static void test_infinite_logits(void) {
    const float one_inf[6] = {0.5f, INFINITY, 1.0f, -1.0f, -INFINITY, 3.0f};
    const float two_inf[6] = {0.5f, INFINITY, 1.0f, INFINITY, -INFINITY, 3.0f};
    const float neg_inf[6] = {-INFINITY, 2.0f, -INFINITY, 1.0f, -INFINITY, -INFINITY};
    const float all_neg_inf[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    static const float temps[] = {0.5f, 1.0f, 2.0f};
    for (int ti = 0; ti < 6; ti++) { /* each temperature without and with top-p / min-p */
        float top_p = ti < 3 ? 1.0f : 0.9f, min_p = ti < 3 ? 0.0f : 0.05f;
        sampler *s = sampler_new(temps[ti % 3], 0, top_p, min_p, 99, 6);
        if (!s) continue;
        int n_wrong = 0, n_seen[6] = {0};
        for (int i = 0; i < 200; i++) n_wrong += sampler_sample(s, one_inf) != 1;
        CHECK_MSG(n_wrong == 0, "T=%g: the +inf logit lost %d of 200 draws", (double)temps[ti % 3], n_wrong);
        for (int i = 0; i < 200; i++) n_seen[sampler_sample(s, two_inf)]++;
        CHECK_MSG(n_seen[1] + n_seen[3] == 200 && n_seen[1] > 0 && n_seen[3] > 0,
                  "T=%g: two +inf logits drawn %d and %d times of 200", (double)temps[ti % 3], n_seen[1], n_seen[3]);
        n_wrong = 0;
        for (int i = 0; i < 200; i++) {
            int32_t t = sampler_sample(s, neg_inf);
            n_wrong += t != 1 && t != 3;
        }
        CHECK_MSG(n_wrong == 0, "T=%g: %d draws of a -inf token", (double)temps[ti % 3], n_wrong);
        sampler_free(s);
        s = sampler_new(temps[ti % 3], 0, 1, 0, 99, 4);
        for (int i = 0; s && i < 20; i++) {
            int32_t t = sampler_sample(s, all_neg_inf);
            CHECK_MSG(t >= 0 && t < 4, "all -inf: token %d", t);
        }
        sampler_free(s);
    }
}

/* ---- parameter checks ------------------------------------------------------------------------------ */

static void expect_rejected(sampler_params p, const char *name1, const char *name2, const char *what) {
    pagoda_status st = sampler_params_check(&p);
    const char *msg = pagoda_last_error();
    CHECK_MSG(st == PAGODA_ERR_INVALID_ARGUMENT, "%s: accepted (status %d)", what, (int)st);
    CHECK_MSG(strstr(msg, name1) || strstr(msg, name2), "%s: message '%s' does not name %s", what, msg, name1);
    sampler *s = (sampler *)&p; /* must come back NULL */
    st = sampler_init(&p, 16, &s);
    CHECK_MSG(st == PAGODA_ERR_INVALID_ARGUMENT && s == NULL, "%s: sampler_init accepted it", what);
}

static void test_params(void) {
    const sampler_params ok = {.temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f, .seed = 1};
    CHECK(sampler_params_check(&ok) == PAGODA_OK);
    sampler_params p;
    p = ok; p.top_k = -1;          expect_rejected(p, "top-k", "top_k", "top_k = -1");
    p = ok; p.top_p = 0;           expect_rejected(p, "top-p", "top_p", "top_p = 0");
    p = ok; p.top_p = 1.5f;        expect_rejected(p, "top-p", "top_p", "top_p = 1.5");
    p = ok; p.top_p = NAN;         expect_rejected(p, "top-p", "top_p", "top_p = NaN");
    p = ok; p.min_p = 2;           expect_rejected(p, "min-p", "min_p", "min_p = 2");
    p = ok; p.min_p = -0.1f;       expect_rejected(p, "min-p", "min_p", "min_p = -0.1");
    p = ok; p.min_p = NAN;         expect_rejected(p, "min-p", "min_p", "min_p = NaN");
    p = ok; p.temperature = -1;    expect_rejected(p, "temperature", "temperature", "temperature = -1");
    p = ok; p.temperature = NAN;   expect_rejected(p, "temperature", "temperature", "temperature = NaN");
    p = ok; p.temperature = INFINITY; expect_rejected(p, "temperature", "temperature", "temperature = inf");
    /* Boundary values that are valid: greedy, top_p = 1 (off), min_p 0 and 1, top_k past the vocab. */
    p = ok; p.temperature = 0; CHECK(sampler_params_check(&p) == PAGODA_OK);
    p = ok; p.top_p = 1;       CHECK(sampler_params_check(&p) == PAGODA_OK);
    p = ok; p.min_p = 0;       CHECK(sampler_params_check(&p) == PAGODA_OK);
    p = ok; p.min_p = 1;       CHECK(sampler_params_check(&p) == PAGODA_OK);
    p = ok; p.top_k = 0;       CHECK(sampler_params_check(&p) == PAGODA_OK);
    p = ok; p.top_k = 1 << 30; CHECK(sampler_params_check(&p) == PAGODA_OK);
    sampler *s = NULL;
    CHECK(sampler_init(&ok, 0, &s) == PAGODA_ERR_INVALID_ARGUMENT && s == NULL);
    CHECK(strstr(pagoda_last_error(), "vocab") != NULL);
    sampler_free(NULL);
}

/* ---- seeds ----------------------------------------------------------------------------------------- */

static void test_seeds(uint64_t *rng) {
    enum { N_VOCAB = 32, N_DRAWS = 2000 };
    float logits[N_VOCAB];
    for (int i = 0; i < N_VOCAB; i++) logits[i] = test_rand_uniform(rng);
    uint64_t seed = test_rand_u64(rng);
    sampler *a = sampler_new(1.0f, 0, 1, 0, seed, N_VOCAB), *b = sampler_new(1.0f, 0, 1, 0, seed, N_VOCAB);
    sampler *c = sampler_new(1.0f, 0, 1, 0, seed + 1, N_VOCAB);
    if (a && b && c) {
        int n_same_ab = 0, n_same_ac = 0;
        for (int i = 0; i < N_DRAWS; i++) {
            int32_t ta = sampler_sample(a, logits), tb = sampler_sample(b, logits), tc = sampler_sample(c, logits);
            CHECK(ta >= 0 && ta < N_VOCAB);
            n_same_ab += ta == tb;
            n_same_ac += ta == tc;
        }
        CHECK_MSG(n_same_ab == N_DRAWS, "same seed: %d of %d draws agree", n_same_ab, N_DRAWS);
        /* Two independent streams agree on ~1/32 of the draws (each token has p < 0.1); all 2000
         * agreeing has probability < 0.1^2000, and more than 25% agreeing is about 20 sigma out. */
        CHECK_MSG(n_same_ac < N_DRAWS / 4, "different seeds: %d of %d draws agree", n_same_ac, N_DRAWS);
    }
    sampler_free(a);
    sampler_free(b);
    sampler_free(c);
}

/* ---- the exact target distribution ----------------------------------------------------------------- */

/* What sampler.h defines: top-k (k largest logits), softmax at the temperature over those, top-p
 * (the shortest prefix, by decreasing probability, whose sum reaches top_p), min-p (keep p >=
 * min_p * p_max), renormalise. Computed in double. *margin is the smallest distance of a cut
 * decision from its threshold (so the test can assert its cases are not knife-edge, where f32
 * rounding inside the sampler could legitimately decide the other way). */
static void target_dist(const float *logits, int n, double temperature, int top_k, double top_p, double min_p,
                        double *out, double *margin) {
    int order[VOCAB_MAX];
    for (int i = 0; i < n; i++) order[i] = i;
    for (int i = 1; i < n; i++) /* insertion sort by logit, descending; ties by id */
        for (int j = i; j > 0 && logits[order[j]] > logits[order[j - 1]]; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    int kept = top_k > 0 && top_k < n ? top_k : n;
    *margin = INFINITY;
    if (kept < n) *margin = fmin(*margin, (double)logits[order[kept - 1]] - logits[order[kept]]);
    double p[VOCAB_MAX], sum = 0;
    for (int i = 0; i < kept; i++) sum += (p[i] = exp(((double)logits[order[i]] - logits[order[0]]) / temperature));
    for (int i = 0; i < kept; i++) p[i] /= sum;
    if (top_p < 1) {
        double cum = 0;
        int keep = kept;
        for (int i = 0; i < kept; i++) {
            double before = cum;
            cum += p[i];
            if (cum >= top_p) {
                keep = i + 1;
                *margin = fmin(*margin, fmin(cum - top_p, top_p - before));
                break;
            }
        }
        kept = keep;
    }
    if (min_p > 0) {
        int keep = 0;
        for (int i = 0; i < kept; i++) {
            *margin = fmin(*margin, fabs(p[i] - min_p * p[0]) / p[0]);
            if (p[i] >= min_p * p[0]) keep = i + 1;
        }
        kept = keep;
    }
    for (int i = 0; i < n; i++) out[i] = 0;
    sum = 0;
    for (int i = 0; i < kept; i++) sum += p[i];
    for (int i = 0; i < kept; i++) out[order[i]] = p[i] / sum;
}

/* ---- chi-square ------------------------------------------------------------------------------------ */

/* Upper critical value of the chi-square distribution with `df` degrees of freedom at
 * significance alpha = 1e-4 (z = 3.7190), by the Wilson-Hilferty approximation
 * chi2 ~ df * (1 - 2/(9 df) + z sqrt(2/(9 df)))^3. It is slightly conservative for small df (df = 1:
 * 16.2 against the exact 15.1; df = 10: 35.6 against 35.6), so a correct sampler fails a case with
 * probability <= ~1e-4; with the ten cases here a random seed would fail about once in a thousand
 * runs, and the fixed seed makes CI deterministic. */
static double chi2_critical_1e4(int df) {
    const double z = 3.7190164854556804;
    double h = 2.0 / (9.0 * df), c = 1.0 - h + z * sqrt(h);
    return df * c * c * c;
}

/* Pearson's statistic of counts against probabilities; INFINITY if a token of probability 0 was
 * drawn. *df: categories with p > 0, minus one. */
static double chi2_stat(const long *counts, const double *p, int n, long n_draws, int *df) {
    double stat = 0;
    int n_cat = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] <= 0) {
            if (counts[i] > 0) stat = INFINITY;
            continue;
        }
        double e = p[i] * (double)n_draws, d = (double)counts[i] - e;
        stat += d * d / e;
        n_cat++;
    }
    *df = n_cat - 1;
    return stat;
}

typedef struct stat_case {
    const char *name;
    float temperature;
    int32_t top_k;
    float top_p, min_p;
} stat_case;

/* Draws n_draws tokens and tests them against target_dist; returns the chi-square statistic against
 * the distribution at a temperature 20% too high, for the can-fail check. */
static double run_stat_case(const stat_case *c, const float *logits, int n, long n_draws, uint64_t seed) {
    double p[VOCAB_MAX], margin;
    target_dist(logits, n, c->temperature, c->top_k, c->top_p, c->min_p, p, &margin);
    /* The case must not sit on a cut (1e-3 is far beyond f32 rounding), and every kept token
     * must have an expected count of at least 5 for the chi-square approximation. */
    CHECK_MSG(margin > 1e-3, "%s: test case too close to a cut (margin %.3g)", c->name, margin);
    int n_kept = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] > 0) n_kept++;
        CHECK_MSG(p[i] == 0 || p[i] * (double)n_draws >= 5, "%s: token %d expected only %.1f times", c->name, i,
                  p[i] * (double)n_draws);
    }
    static long counts[VOCAB_MAX];
    memset(counts, 0, sizeof counts);
    sampler *s = sampler_new(c->temperature, c->top_k, c->top_p, c->min_p, seed, n);
    if (!s) return INFINITY;
    for (long i = 0; i < n_draws; i++) {
        int32_t t = sampler_sample(s, logits);
        if (t >= 0 && t < n) counts[t]++;
        else CHECK_MSG(0, "%s: token %d out of range", c->name, t);
    }
    sampler_free(s);
    int n_removed_drawn = 0;
    for (int i = 0; i < n; i++) n_removed_drawn += p[i] == 0 && counts[i] > 0;
    CHECK_MSG(n_removed_drawn == 0, "%s: %d tokens drawn that the truncation removes", c->name, n_removed_drawn);

    int df;
    double stat = chi2_stat(counts, p, n, n_draws, &df), crit = chi2_critical_1e4(df > 0 ? df : 1);
    if (df == 0) CHECK_MSG(stat == 0, "%s: one token kept, yet others drawn", c->name);
    else CHECK_MSG(stat <= crit, "%s: chi2 %.1f > %.1f (df %d)", c->name, stat, crit, df);

    double wrong[VOCAB_MAX];
    target_dist(logits, n, 1.2 * c->temperature, c->top_k, c->top_p, c->min_p, wrong, &margin);
    int df_wrong;
    double stat_wrong = chi2_stat(counts, wrong, n, n_draws, &df_wrong);
    printf("%-28s kept %2d of %3d  chi2 %7.1f (df %2d, critical %5.1f)  vs T*1.2: %.0f\n", c->name, n_kept, n, stat,
           df, crit, stat_wrong);
    return stat_wrong / crit;
}

static void test_statistics(void) {
    const char *env = getenv("PAGODA_SAMPLER_STAT_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 0) : 20240607;
    printf("statistical seed %llu (set PAGODA_SAMPLER_STAT_SEED to change)\n", (unsigned long long)seed);

    /* 16 distinct logits in no particular order of id, spread over ~5 units. */
    static const float small[16] = {1.3f,  -0.4f, 2.9f, 0.2f,  -1.7f, 2.1f,  0.9f,  -0.9f,
                                    3.4f,  -2.3f, 1.7f, -0.1f, 0.55f, -1.2f, 2.55f, 0.05f};
    /* 32 logits over ~8 units: a long tail, to exercise the cuts. */
    float wide[32];
    for (int i = 0; i < 32; i++) wide[i] = 4.0f - 0.25f * (float)((i * 13) % 32) + 0.01f * (float)(i % 5);
    /* 1000 logits for top-k's selection over a large array: 3 - 0.15 * rank, ranks shuffled over
     * the ids (so the top 20 span 3 units and the temperature matters). */
    static float large[1000];
    int perm[1000];
    uint64_t r = seed;
    for (int i = 0; i < 1000; i++) perm[i] = i;
    for (int i = 999; i > 0; i--) {
        int j = (int)(test_rand_u64(&r) % (uint64_t)(i + 1)), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (int i = 0; i < 1000; i++) large[perm[i]] = 3.0f - 0.15f * (float)i;

    static const stat_case cases[] = {
        {"T=0.7", 0.7f, 0, 1, 0},
        {"T=1.5", 1.5f, 0, 1, 0},
        {"T=1", 1.0f, 0, 1, 0},
        {"top_k=5 T=1", 1.0f, 5, 1, 0},
        {"top_p=0.8 T=1", 1.0f, 0, 0.8f, 0},
        {"min_p=0.1 T=1", 1.0f, 0, 1, 0.1f},
        {"k=10 T=0.9 p=0.9 min_p=0.05", 0.9f, 10, 0.9f, 0.05f},
        {"k=20 T=1.3 p=0.95 min_p=0.02", 1.3f, 20, 0.95f, 0.02f},
        {"top_k=20 T=1 (vocab 1000)", 1.0f, 20, 1, 0},
        {"top_p=0.5 T=0.8 (vocab 32)", 0.8f, 0, 0.5f, 0},
    };
    enum { N_CASES = sizeof cases / sizeof cases[0] };
    const long n_draws = 100000;
    for (int i = 0; i < N_CASES; i++) {
        const float *logits = i == 8 ? large : i >= 6 ? wide : small;
        int n = i == 8 ? 1000 : i >= 6 ? 32 : 16;
        double power = run_stat_case(&cases[i], logits, n, n_draws, seed + (uint64_t)i);
        /* The can-fail check: against a temperature 20% off, the same statistic must reject by a wide
         * margin (measured: tens to hundreds of times the critical value). */
        CHECK_MSG(power > 5, "%s: the chi-square test cannot tell T from 1.2 T (stat/critical %.1f)",
                  cases[i].name, power);
    }
}

/* ---- the random stream ----------------------------------------------------------------------------- */

static void test_rng(void) {
    /* sampler_rng_uniform: in [0, 1), and uniform over 20 bins by chi-square (df 19). */
    sampler_rng rng;
    sampler_rng_seed(&rng, 12345);
    long counts[20] = {0};
    const long n = 100000;
    int n_out = 0;
    for (long i = 0; i < n; i++) {
        double u = sampler_rng_uniform(&rng);
        if (!(u >= 0 && u < 1)) n_out++;
        else counts[(int)(u * 20)]++;
    }
    CHECK(n_out == 0);
    double p[20];
    for (int i = 0; i < 20; i++) p[i] = 0.05;
    int df;
    double stat = chi2_stat(counts, p, 20, n, &df);
    CHECK_MSG(stat <= chi2_critical_1e4(df), "rng uniformity: chi2 %.1f (df %d)", stat, df);
    sampler_rng a, b;
    sampler_rng_seed(&a, 7);
    sampler_rng_seed(&b, 8);
    CHECK(sampler_rng_next(&a) != sampler_rng_next(&b));
}

int main(void) {
    uint64_t rng = test_seed();
    test_greedy(&rng);
    test_infinite_logits();
    test_params();
    test_seeds(&rng);
    test_rng();
    test_statistics();
    return test_finish();
}
