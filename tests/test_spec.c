/* tests/test_spec.c - speculative decoding (src/engine/spec*.c):
 *   - prompt lookup on hand-made contexts; spec_dist against the sampler chain's formula computed
 *     here in double precision, on hand cases and on random logits (a full-sort reference);
 *   - the acceptance rule on fixed distributions: tokens emitted by "draw x ~ q, spec_accept" have
 *     the frequencies of p by a chi-square test (p-value from the incomplete gamma function written
 *     here), for a draft model q, a point-mass q (prompt lookup) and mismatched supports; two broken
 *     rules (accept everything; resample from p instead of the residual) are rejected by the same test;
 *   - greedy output of the engine with each draft source (prompt lookup, self-speculation, a draft
 *     model: the model itself, and a random-weight one made by gen_model with its tokenizer) equals the model alone, computed by model_eval (the single-sequence path, no engine)
 *     and the stories260K fixture: 8 concurrent requests, arriving while others decode, with a
 *     small token budget (drafts partly scheduled) and a small KV cache (preemption);
 *   - acceptance accounting: a draft equal to the model accepts every draft (counts computed by
 *     hand), prompt lookup's counts equal an independent simulation on the reference tokens;
 *   - sampled output (self-speculation, and prompt lookup, top-k 3): the joint frequencies of the
 *     first two generated tokens over 2000 seeds match the model's exact distribution (from
 *     model_eval), and, for self-speculation, not the draft's;
 *   - n = 3 greedy samples each equal the reference; a seeded sampled request gives the same text
 *     alone and in a batch;
 *   - SmolLM2 (when fetched): greedy identity in the backend's exact mode against model_eval, and on
 *     the default int8 path against the engine without speculation.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/cpu/cpu_backend.h" /* defines: cpu_backend_init, cpu_backend_set_exact */
#include "engine/engine_internal.h"  /* defines: struct pagoda_model (its backend, for exact mode) */
#include "engine/spec.h"             /* defines: spec_lookup, spec_dist, spec_draw, spec_accept */
#include "core/dtype.h"              /* defines: DTYPE_F32 */
#include "gguf/gguf.h"               /* defines: gguf_open */
#include "model/gen_model.h"         /* defines: gen_model_write, gen_model_find_shape */
#include "model/model.h"             /* defines: model_load_gguf, model_context, model_eval */
#include "pagoda.h"
#include "testlib.h"

enum { MAX_IDS = 256, N_PROMPTS = 8, N_NEW = 40 };

typedef struct ids { int32_t v[MAX_IDS]; int n; } ids;

/* ---- chi-square ------------------------------------------------------------------------------------ */
/* Regularized upper incomplete gamma Q(a, x): series for x < a + 1, else a continued fraction. */
static double gamma_q(double a, double x) {
    if (x <= 0) return 1.0;
    double lg = lgamma(a);
    if (x < a + 1) {
        double term = 1.0 / a, sum = term;
        for (int n = 1; n < 1000; n++) {
            term *= x / (a + n);
            sum += term;
            if (term < sum * 1e-15) break;
        }
        return 1.0 - sum * exp(-x + a * log(x) - lg);
    }
    double b = x + 1 - a, c = 1e300, d = 1 / b, h = d; /* modified Lentz */
    for (int i = 1; i < 1000; i++) {
        double an = -i * (i - a);
        b += 2;
        d = an * d + b;
        if (fabs(d) < 1e-300) d = 1e-300;
        c = b + an / c;
        if (fabs(c) < 1e-300) c = 1e-300;
        d = 1 / d;
        double del = d * c;
        h *= del;
        if (fabs(del - 1) < 1e-15) break;
    }
    return exp(-x + a * log(x) - lg) * h;
}

/* p-value of observed counts against expected probabilities (cells with expected count < 5 are
 * pooled into one cell). */
static double chi2_pvalue(const long *counts, const double *probs, int n, long total) {
    double chi2 = 0, pooled_p = 0;
    long pooled_c = 0;
    int cells = 0;
    for (int i = 0; i < n; i++) {
        double e = probs[i] * (double)total;
        if (e < 5) {
            pooled_p += probs[i];
            pooled_c += counts[i];
            if (e == 0 && counts[i] > 0) return 0; /* an impossible token */
            continue;
        }
        chi2 += (counts[i] - e) * (counts[i] - e) / e;
        cells++;
    }
    if (pooled_p * (double)total >= 1) {
        double e = pooled_p * (double)total;
        chi2 += (pooled_c - e) * (pooled_c - e) / e;
        cells++;
    } else if (pooled_c > 3) {
        return 0;
    }
    return cells < 2 ? 1.0 : gamma_q((cells - 1) / 2.0, chi2 / 2.0);
}

/* ---- pure parts ------------------------------------------------------------------------------------ */
static void test_lookup(void) {
    int32_t out[8];
    const int32_t a[] = {1, 2, 3, 4, 1, 2, 3};
    CHECK(spec_lookup(a, 7, 3, 4, out) == 4 && out[0] == 4 && out[1] == 1 && out[2] == 2 && out[3] == 3);
    CHECK(spec_lookup(a, 7, 3, 2, out) == 2 && out[0] == 4 && out[1] == 1);
    const int32_t b[] = {5, 6, 7, 5, 6, 8, 5, 6}; /* the most recent match wins; proposals stop at the end */
    CHECK(spec_lookup(b, 8, 2, 4, out) == 3 && out[0] == 8 && out[1] == 5 && out[2] == 6);
    const int32_t c[] = {1, 2, 3};
    CHECK(spec_lookup(c, 3, 2, 4, out) == 0);
    const int32_t d[] = {9, 1, 2, 7, 2}; /* no 3- or 2-gram match: falls back to the last token */
    CHECK(spec_lookup(d, 5, 3, 4, out) == 2 && out[0] == 7 && out[1] == 2);
    CHECK(spec_lookup(d, 1, 3, 4, out) == 0);
}

static void test_dist(void) {
    const float logits[5] = {2, 1, 0, -1, 3};
    float probs[5];
    char scratch[5 * 8];
    /* top-k 3 at temperature 0.5 keeps ids 4, 0, 1 with weights exp((l - 3) / 0.5) */
    double w4 = 1, w0 = exp(-2.0), w1 = exp(-4.0), s = w4 + w0 + w1;
    sampler_params p = {.temperature = 0.5f, .top_k = 3, .top_p = 1.0f};
    spec_dist(&p, logits, 5, probs, scratch);
    CHECK(fabs(probs[4] - w4 / s) < 1e-6 && fabs(probs[0] - w0 / s) < 1e-6 && fabs(probs[1] - w1 / s) < 1e-6);
    CHECK(probs[2] == 0 && probs[3] == 0);
    p.top_p = 0.9f; /* cumulative 0.867, 0.984: two kept, renormalised */
    spec_dist(&p, logits, 5, probs, scratch);
    CHECK(fabs(probs[4] - w4 / (w4 + w0)) < 1e-6 && fabs(probs[0] - w0 / (w4 + w0)) < 1e-6 && probs[1] == 0);
    p.top_p = 1;
    p.min_p = 0.2f; /* 0.117 < 0.2 * 0.867 */
    spec_dist(&p, logits, 5, probs, scratch);
    CHECK(probs[4] == 1 && probs[0] == 0);
    p = (sampler_params){.temperature = 1.0f, .top_p = 1.0f};
    spec_dist(&p, logits, 5, probs, scratch);
    double z = 0;
    for (int i = 0; i < 5; i++) z += exp(logits[i]);
    for (int i = 0; i < 5; i++) CHECK(fabs(probs[i] - exp(logits[i]) / z) < 1e-6);
}

/* spec_dist against a plain implementation of the sampler's chain (full sort, double precision) on
 * random logits with ties, -inf and NaN. */
static int ref_desc(const void *a, const void *b) {
    const double *x = a, *y = b; /* {logit, id} */
    if (x[0] != y[0]) return x[0] < y[0] ? 1 : -1;
    return x[1] < y[1] ? -1 : 1;
}

static void test_dist_random(uint64_t seed) {
    enum { N = 3000 };
    static float logits[N], probs[N];
    static double ref[N][2], want[N];
    static char scratch[N * 8];
    const sampler_params cases[] = {
        {.temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f}, {.temperature = 1.0f, .top_p = 1.0f},
        {.temperature = 0.7f, .top_p = 0.9f}, {.temperature = 1.5f, .top_p = 0.999f},
        {.temperature = 1.0f, .top_p = 1.0f, .min_p = 0.1f}, {.temperature = 0.3f, .top_k = 1000, .top_p = 0.5f},
        {.temperature = 2.0f, .top_k = 5, .top_p = 1.0f}};
    uint64_t st = seed;
    for (int round = 0; round < 4; round++)
        for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
            const sampler_params *p = &cases[c];
            for (int i = 0; i < N; i++) { /* peaked like a language model, coarse values for ties */
                float u = test_rand_uniform(&st);
                logits[i] = roundf((u * u * u * 12.0f + (round & 1 ? 0.0f : 3.0f * u)) * 8.0f) / 8.0f;
                if (i % 997 == 5) logits[i] = -INFINITY;
                if (i % 1499 == 7) logits[i] = NAN;
            }
            spec_dist(p, logits, N, probs, scratch);
            for (int i = 0; i < N; i++) {
                ref[i][0] = isnan(logits[i]) ? -INFINITY : logits[i];
                ref[i][1] = i;
                want[i] = 0;
            }
            qsort(ref, N, sizeof ref[0], ref_desc);
            int n = p->top_k > 0 && p->top_k < N ? p->top_k : N;
            double w[N], z = 0;
            for (int i = 0; i < n; i++) z += (w[i] = exp((ref[i][0] - ref[0][0]) / p->temperature));
            for (int i = 0; i < n; i++) w[i] /= z;
            double cum = 0;
            for (int i = 0; i < n && p->top_p < 1; i++)
                if ((cum += w[i]) >= p->top_p) {
                    n = i + 1;
                    break;
                }
            int keep = 1;
            while (p->min_p > 0 && keep < n && w[keep] >= w[0] * p->min_p) keep++;
            if (p->min_p > 0) n = keep;
            z = 0;
            for (int i = 0; i < n; i++) z += w[i];
            for (int i = 0; i < n; i++) want[(int)ref[i][1]] = w[i] / z;
            double err = 0;
            int support_diff = 0;
            for (int i = 0; i < N; i++) {
                err = fmax(err, fabs(probs[i] - want[i]));
                support_diff += (probs[i] > 0) != (want[i] > 0);
            }
            CHECK_MSG(err < 1e-5 && support_diff == 0, "spec_dist case %zu round %d: max error %g, %d tokens kept "
                      "differently", c, round, err, support_diff);
        }
}

typedef enum rule { RULE_SPEC, RULE_ACCEPT_ALL, RULE_RESAMPLE_FROM_P } rule;

/* Emits n_trials tokens by drafting x ~ q (or x = fixed_x when q is NULL) and deciding with `r`;
 * returns the p-value of the emitted frequencies against p. */
static double acceptance_pvalue(const float *p, const float *q, int n, int fixed_x, rule r, long n_trials,
                                uint64_t seed, double *accept_rate) {
    sampler_rng rng;
    sampler_rng_seed(&rng, seed);
    long counts[16] = {0}, accepted = 0;
    float residual[16];
    double probs[16];
    for (long t = 0; t < n_trials; t++) {
        int32_t x = q ? spec_draw(q, n, &rng) : fixed_x, y;
        bool ok = spec_accept(p, q, n, x, &rng, residual, &y);
        if (r == RULE_ACCEPT_ALL) ok = true;
        if (!ok && r == RULE_RESAMPLE_FROM_P) y = spec_draw(p, n, &rng);
        accepted += ok;
        counts[ok ? x : y]++;
    }
    for (int i = 0; i < n; i++) probs[i] = p[i];
    if (accept_rate) *accept_rate = (double)accepted / (double)n_trials;
    return chi2_pvalue(counts, probs, n, n_trials);
}

static void test_acceptance(uint64_t seed) {
    const float p[6] = {0.30f, 0.25f, 0.20f, 0.15f, 0.10f, 0.00f};
    const float q[6] = {0.05f, 0.40f, 0.10f, 0.15f, 0.10f, 0.20f}; /* q puts mass where p has none */
    const float q_narrow[6] = {0, 0, 0.5f, 0.5f, 0, 0};           /* p has mass where q has none */
    const long n = 100000;
    const double alpha = 1e-4;
    double rate, pv;
    pv = acceptance_pvalue(p, q, 6, 0, RULE_SPEC, n, seed, &rate);
    CHECK_MSG(pv > alpha, "draft q: emitted frequencies differ from p (p-value %g)", pv);
    /* acceptance rate = sum min(p, q) = 0.05 + 0.25 + 0.10 + 0.15 + 0.10 = 0.65 */
    CHECK_MSG(fabs(rate - 0.65) < 0.01, "acceptance rate %g, want 0.65", rate);
    pv = acceptance_pvalue(p, q_narrow, 6, 0, RULE_SPEC, n, seed + 1, &rate);
    CHECK_MSG(pv > alpha, "narrow q: p-value %g", pv);
    CHECK_MSG(fabs(rate - 0.35) < 0.01, "narrow q: acceptance rate %g, want 0.35", rate);
    for (int x = 0; x < 6; x++) { /* prompt lookup: q is a point mass at the proposed token */
        pv = acceptance_pvalue(p, NULL, 6, x, RULE_SPEC, n / 4, seed + 2 + (uint64_t)x, &rate);
        CHECK_MSG(pv > alpha, "point-mass draft %d: p-value %g", x, pv);
        CHECK_MSG(fabs(rate - p[x]) < 0.015, "point-mass draft %d: acceptance rate %g, want %g", x, rate, p[x]);
    }
    pv = acceptance_pvalue(p, p, 6, 0, RULE_SPEC, n / 10, seed + 9, &rate);
    CHECK(pv > alpha && rate == 1.0); /* q == p: every draft accepted */
    /* the test can fail: broken rules are caught */
    pv = acceptance_pvalue(p, q, 6, 0, RULE_ACCEPT_ALL, n, seed + 10, NULL);
    CHECK_MSG(pv < 1e-9, "accepting every draft should be rejected (p-value %g)", pv);
    pv = acceptance_pvalue(p, q, 6, 0, RULE_RESAMPLE_FROM_P, n, seed + 11, NULL);
    CHECK_MSG(pv < 1e-9, "resampling from p should be rejected (p-value %g)", pv);
}

/* ---- the engine ------------------------------------------------------------------------------------ */
static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* The reference: greedy continuation by model_eval (one sequence, contiguous cache, no engine). */
typedef struct reference {
    model *m;
    backend *be;
} reference;

static bool reference_open(reference *r, const char *path, bool exact) {
    gguf_file *file;
    memset(r, 0, sizeof *r);
    if (gguf_open(path, &file) != PAGODA_OK) return false;
    if (model_load_gguf(file, &r->m) != PAGODA_OK) return false;
    int64_t cols = r->m->hp.n_ff > r->m->hp.n_embd ? r->m->hp.n_ff : r->m->hp.n_embd;
    if (cpu_backend_init(2, cols, NULL, &r->be) != PAGODA_OK) return false;
    cpu_backend_set_exact(r->be, exact);
    return true;
}

static void reference_close(reference *r) {
    if (r->be) r->be->free(r->be);
    model_free(r->m);
}

static void reference_greedy(reference *r, const ids *prompt, int n_new, ids *out) {
    model_context *ctx;
    const float *logits;
    out->n = 0;
    CHECK(model_context_init(r->m, r->be, 512, 64, &ctx) == PAGODA_OK);
    CHECK(model_eval(ctx, prompt->v, prompt->n, false, &logits) == PAGODA_OK);
    for (int i = 0; i < n_new; i++) {
        int32_t t = argmax(logits, r->m->hp.n_vocab);
        out->v[out->n++] = t;
        if (i + 1 < n_new) CHECK(model_eval(ctx, &t, 1, false, &logits) == PAGODA_OK);
    }
    model_context_free(ctx);
}

static pagoda_model *load(const char *path, pagoda_model_params p) {
    pagoda_model *m = NULL;
    p.n_threads = 2;
    CHECK_MSG(pagoda_model_load(path, &p, &m) == PAGODA_OK, "load: %s", pagoda_last_error());
    return m;
}

static void make_prompts(pagoda_model *m, ids *prompts, int n) {
    static const char *texts[] = {
        "Once upon a time", "Lily and Tom went to the park. Lily and Tom", "The cat sat on the mat. The cat",
        "One day, a little boy named Tim", "She said hello. He said hello. She said",
        "There was a big red ball", "The sun was hot", "Tim had a dog. The dog was happy. Tim had a"};
    for (int i = 0; i < n; i++) {
        int32_t *v;
        size_t len;
        const char *t = texts[i % 8];
        CHECK(pagoda_tokenize(m, t, strlen(t), true, false, &v, &len) == PAGODA_OK);
        prompts[i].n = (int)len;
        memcpy(prompts[i].v, v, sizeof(int32_t) * len);
        free(v);
    }
}

/* Runs the prompts, half of them arriving after `stagger` steps, and collects sample 0's tokens. */
static void run_all(pagoda_model *m, const ids *prompts, int n, const pagoda_sampling_params *sp, int stagger,
                    ids *results) {
    pagoda_request_id rid[N_PROMPTS];
    int added = 0;
    for (int step = 0; (added < n || pagoda_has_unfinished(m)) && step < 100000; step++) {
        while (added < n && (added < n / 2 || step >= stagger)) {
            results[added].n = 0;
            CHECK_MSG(pagoda_add_request(m, prompts[added].v, (size_t)prompts[added].n, sp, 0, &rid[added]) ==
                      PAGODA_OK, "%s", pagoda_last_error());
            added++;
        }
        const pagoda_output *outs;
        size_t n_outs;
        CHECK(pagoda_step(m, &outs, &n_outs) == PAGODA_OK);
        for (size_t o = 0; o < n_outs; o++)
            for (int i = 0; i < added; i++)
                if (outs[o].id == rid[i] && outs[o].index == 0)
                    for (size_t t = 0; t < outs[o].n_tokens && results[i].n < MAX_IDS; t++)
                        results[i].v[results[i].n++] = outs[o].tokens[t];
    }
}

static int n_differing(const ids *got, const ids *want, int n, const char *what) {
    int bad = 0;
    for (int i = 0; i < n; i++)
        if (got[i].n != want[i].n || memcmp(got[i].v, want[i].v, sizeof(int32_t) * (size_t)got[i].n)) {
            if (bad++ == 0) fprintf(stderr, "%s: prompt %d differs (%d vs %d tokens)\n", what, i, got[i].n, want[i].n);
        }
    return bad;
}

typedef struct source {
    const char *name;
    pagoda_model_params p;
} source;

static void test_greedy_engine(const char *path, const ids *fixture_prompt, const ids *fixture_out) {
    reference ref;
    CHECK(reference_open(&ref, path, false));
    pagoda_model *plain = load(path, pagoda_model_params_default());
    ids prompts[N_PROMPTS], want[N_PROMPTS], got[N_PROMPTS];
    make_prompts(plain, prompts, N_PROMPTS);
    pagoda_model_free(plain);
    for (int i = 0; i < N_PROMPTS; i++) reference_greedy(&ref, &prompts[i], N_NEW, &want[i]);
    pagoda_sampling_params sp = pagoda_sampling_params_default();
    sp.temperature = 0;
    sp.max_tokens = N_NEW;
    sp.ignore_eos = true;
    /* a random-weight draft at the model's width with its tokenizer: rejects nearly everything */
    char random_draft[64];
    snprintf(random_draft, sizeof random_draft, "/tmp/pagoda_test_spec_draft_%d.gguf", (int)getpid());
    gen_model_options gopt = {.shape = *gen_model_find_shape("tiny"), .type = DTYPE_F32, .seed = 7,
                              .vocab_from = path};
    gopt.shape.n_embd = 64;
    gopt.shape.n_head = 8;
    gopt.shape.n_head_kv = 4;
    gopt.shape.head_dim = 8;
    gopt.shape.n_ff = 128;
    gopt.shape.n_layer = 1;
    CHECK_MSG(gen_model_write(&gopt, random_draft) == PAGODA_OK, "gen-model: %s", pagoda_last_error());
    source sources[] = {
        {"draft model (random weights)", {.draft_model_path = random_draft, .draft_k = 3}},
        {"lookup 2", {.lookup_ngram = 2}}, {"lookup 4 k 8", {.lookup_ngram = 4, .draft_k = 8}},
        {"self 2 layers", {.draft_layers = 2}}, {"self 4 layers k 3", {.draft_layers = 4, .draft_k = 3}},
        {"draft model (itself)", {.draft_model_path = path}},
        {"self 3, budget 7", {.draft_layers = 3, .n_batch = 7}},
        {"lookup 1, budget 5, small cache", {.lookup_ngram = 1, .n_batch = 5, .kv_cache_bytes = 90 * 1024}},
        {"draft, small cache", {.draft_model_path = path, .kv_cache_bytes = 90 * 1024, .kv_block_size = 4}},
    };
    for (size_t s = 0; s < sizeof sources / sizeof *sources; s++) {
        pagoda_model *m = load(path, sources[s].p);
        if (!m) continue;
        run_all(m, prompts, N_PROMPTS, &sp, 3, got);
        pagoda_engine_stats st;
        pagoda_get_stats(m, &st);
        CHECK_MSG(n_differing(got, want, N_PROMPTS, sources[s].name) == 0, "%s: greedy output differs from the model "
                  "alone", sources[s].name);
        bool random = sources[s].p.draft_model_path == random_draft;
        CHECK_MSG(st.spec_proposed > 0 && (st.spec_accepted > 0 || random) && st.spec_accepted <= st.spec_proposed,
                  "%s: %llu proposed, %llu accepted", sources[s].name, (unsigned long long)st.spec_proposed,
                  (unsigned long long)st.spec_accepted);
        printf("%-34s %5llu proposed %5llu accepted, %llu preemptions, %llu steps\n", sources[s].name,
               (unsigned long long)st.spec_proposed, (unsigned long long)st.spec_accepted,
               (unsigned long long)st.n_preemptions, (unsigned long long)st.n_steps);
        if (strstr(sources[s].name, "small cache")) CHECK_MSG(st.n_preemptions > 0, "%s: no preemption", sources[s].name);
        if (random) CHECK_MSG(st.spec_accepted * 4 < st.spec_proposed, "a random draft accepts %llu of %llu",
                              (unsigned long long)st.spec_accepted, (unsigned long long)st.spec_proposed);
        if (s == 1 && fixture_out) { /* the shared fixture, on the same engine */
            ids one;
            run_all(m, fixture_prompt, 1, &sp, 0, &one);
            CHECK_MSG(one.n == fixture_out->n && !memcmp(one.v, fixture_out->v, sizeof(int32_t) * (size_t)one.n),
                      "lookup: 'Once upon a time' differs from the fixture");
        }
        pagoda_model_free(m);
    }
    remove(random_draft);
    reference_close(&ref);
}

/* A draft equal to the model accepts everything: with max_tokens 20 and k 4, the prompt's step emits
 * one token and each later step k + 1 while room lasts: drafts 4 + 4 + 4 + 4 (the last step's
 * fourth accepted draft reaches the length limit). Prompt lookup's counts follow from the
 * reference tokens by simulating the proposals and the adaptive draft length here. */
static void test_accounting(const char *path) {
    pagoda_sampling_params sp = pagoda_sampling_params_default();
    sp.temperature = 0;
    sp.max_tokens = 20;
    sp.ignore_eos = true;
    pagoda_model_params mp = {.draft_model_path = path};
    pagoda_model *m = load(path, mp);
    ids prompt, got;
    make_prompts(m, &prompt, 1);
    run_all(m, &prompt, 1, &sp, 0, &got);
    pagoda_engine_stats st;
    pagoda_get_stats(m, &st);
    CHECK_MSG(st.spec_proposed == 16 && st.spec_accepted == 16, "self-draft: %llu proposed, %llu accepted (want 16, 16)",
              (unsigned long long)st.spec_proposed, (unsigned long long)st.spec_accepted);
    CHECK(got.n == 20);
    pagoda_model_free(m);

    const int ngram = 2, k = 4, n_new = 40;
    ids prompts[N_PROMPTS];
    reference ref;
    CHECK(reference_open(&ref, path, false));
    m = load(path, (pagoda_model_params){.lookup_ngram = ngram, .draft_k = k});
    make_prompts(m, prompts, N_PROMPTS);
    sp.max_tokens = n_new;
    uint64_t want_proposed = 0, want_accepted = 0;
    for (int i = 0; i < N_PROMPTS; i++) {
        ids out;
        reference_greedy(&ref, &prompts[i], n_new, &out);
        int32_t ctx[MAX_IDS];
        int n_ctx = prompts[i].n;
        memcpy(ctx, prompts[i].v, sizeof(int32_t) * (size_t)n_ctx);
        ctx[n_ctx++] = out.v[0]; /* the prompt's own step emits one token */
        int done = 1, k_next = k;
        while (done < n_new) {
            int room = n_new - done, kk = room < k_next ? room : k_next, n_prop = 0, acc = 0;
            int32_t prop[16];
            for (int len = ngram; len >= 1 && !n_prop; len--) /* last match of the longest n-gram */
                for (int start = n_ctx - len - 1; start >= 0 && !n_prop; start--) {
                    if (memcmp(ctx + start, ctx + n_ctx - len, sizeof(int32_t) * (size_t)len)) continue;
                    for (int t = start + len; t < n_ctx && n_prop < kk; t++) prop[n_prop++] = ctx[t];
                    if (!n_prop) break;
                }
            while (acc < n_prop && prop[acc] == out.v[done + acc]) acc++;
            want_proposed += (uint64_t)n_prop;
            want_accepted += (uint64_t)acc;
            if (n_prop > 0) /* the adaptive draft length: + 2 (at most k) when all accepted, else - 1 (at least 1) */
                k_next = acc == n_prop ? (k_next + 2 < k ? k_next + 2 : k) : (k_next > 1 ? k_next - 1 : 1);
            int emit = acc + 1 < room ? acc + 1 : room;
            for (int t = 0; t < emit; t++) ctx[n_ctx++] = out.v[done + t];
            done += emit;
        }
        ids got1;
        run_all(m, &prompts[i], 1, &sp, 0, &got1);
        CHECK(got1.n == out.n && !memcmp(got1.v, out.v, sizeof(int32_t) * (size_t)out.n));
    }
    pagoda_get_stats(m, &st);
    CHECK_MSG(st.spec_proposed == want_proposed && st.spec_accepted == want_accepted,
              "lookup: %llu proposed, %llu accepted; simulation: %llu, %llu", (unsigned long long)st.spec_proposed,
              (unsigned long long)st.spec_accepted, (unsigned long long)want_proposed,
              (unsigned long long)want_accepted);
    printf("lookup accounting: %llu proposed, %llu accepted\n", (unsigned long long)want_proposed,
           (unsigned long long)want_accepted);
    pagoda_model_free(m);
    reference_close(&ref);
}

/* Top-3 distribution at temperature 1 of `logits`: ids[3] most likely first, probs[3]. */
static void top3(const float *logits, int n_vocab, int32_t *ids3, double *probs) {
    for (int j = 0; j < 3; j++) {
        int best = -1;
        for (int i = 0; i < n_vocab; i++) {
            bool taken = false;
            for (int u = 0; u < j; u++) taken |= ids3[u] == i;
            if (!taken && (best < 0 || logits[i] > logits[best])) best = i;
        }
        ids3[j] = best;
    }
    double z = 0;
    for (int j = 0; j < 3; j++) z += exp((double)logits[ids3[j]] - logits[ids3[0]]);
    for (int j = 0; j < 3; j++) probs[j] = exp((double)logits[ids3[j]] - logits[ids3[0]]) / z;
}

/* The joint distribution of the first two generated tokens (top-k 3, temperature 1) under `m`
 * for the second token: cells [i1 * 3 + i2] over the top-3 ids of each position. */
static void joint_reference(const model *m, backend *be, const ids *prompt, const model *m2, int32_t *ids1,
                            int32_t ids2[3][3], double *joint) {
    model_context *ctx;
    const float *logits;
    double p1[3], p2[3];
    CHECK(model_context_init(m, be, 128, 64, &ctx) == PAGODA_OK);
    CHECK(model_eval(ctx, prompt->v, prompt->n, false, &logits) == PAGODA_OK);
    top3(logits, m->hp.n_vocab, ids1, p1);
    model_context_free(ctx);
    for (int a = 0; a < 3; a++) {
        ids ext = *prompt;
        ext.v[ext.n++] = ids1[a];
        CHECK(model_context_init(m2, be, 128, 64, &ctx) == PAGODA_OK);
        CHECK(model_eval(ctx, ext.v, ext.n, false, &logits) == PAGODA_OK);
        top3(logits, m->hp.n_vocab, ids2[a], p2);
        for (int b = 0; b < 3; b++) joint[a * 3 + b] = p1[a] * p2[b];
        model_context_free(ctx);
    }
}

/* draft_layers > 0: self-speculation (and the test also checks the draft's own distribution is
 * told apart); else prompt lookup of lookup_ngram. */
static void test_sampled_engine(const char *path, const ids *prompt, int32_t draft_layers, int32_t lookup_ngram,
                                uint64_t seed) {
    enum { N_RUNS = 2000 };
    reference ref;
    CHECK(reference_open(&ref, path, false));
    model draft_view = *ref.m; /* what self-speculation drafts with: the first layers */
    draft_view.hp.n_layer = draft_layers > 0 ? draft_layers : ref.m->hp.n_layer;
    int32_t ids1[3], ids2[3][3], dids1[3], dids2[3][3];
    double joint[9], draft_joint[9];
    joint_reference(ref.m, ref.be, prompt, ref.m, ids1, ids2, joint);
    joint_reference(ref.m, ref.be, prompt, &draft_view, dids1, dids2, draft_joint);

    pagoda_model *m = load(path, (pagoda_model_params){.draft_layers = draft_layers, .lookup_ngram = lookup_ngram});
    pagoda_sampling_params sp = pagoda_sampling_params_default();
    sp.temperature = 1;
    sp.top_k = 3;
    sp.top_p = 1;
    sp.min_p = 0;
    sp.max_tokens = 2;
    sp.ignore_eos = true;
    long counts[9] = {0}, draft_counts[9] = {0}, outside = 0;
    static pagoda_request_id rid[N_RUNS];
    static ids out[N_RUNS];
    for (int i = 0; i < N_RUNS; i++) {
        sp.seed = seed + (uint64_t)i * 7919u;
        out[i].n = 0;
        CHECK(pagoda_add_request(m, prompt->v, (size_t)prompt->n, &sp, 0, &rid[i]) == PAGODA_OK);
    }
    while (pagoda_has_unfinished(m)) {
        const pagoda_output *outs;
        size_t n_outs;
        if (pagoda_step(m, &outs, &n_outs) != PAGODA_OK) break;
        for (size_t o = 0; o < n_outs; o++) {
            int i = (int)(outs[o].id - rid[0]);
            if (i < 0 || i >= N_RUNS) continue;
            for (size_t t = 0; t < outs[o].n_tokens && out[i].n < 2; t++) out[i].v[out[i].n++] = outs[o].tokens[t];
        }
    }
    for (int i = 0; i < N_RUNS; i++) {
        int cell = -1, dcell = -1;
        for (int a = 0; a < 3 && out[i].n == 2; a++)
            for (int b = 0; b < 3; b++) {
                if (out[i].v[0] == ids1[a] && out[i].v[1] == ids2[a][b]) cell = a * 3 + b;
                if (out[i].v[0] == dids1[a] && out[i].v[1] == dids2[a][b]) dcell = a * 3 + b;
            }
        if (cell < 0) outside++;
        else counts[cell]++;
        if (dcell >= 0) draft_counts[dcell]++;
    }
    pagoda_engine_stats st;
    pagoda_get_stats(m, &st);
    double pv = chi2_pvalue(counts, joint, 9, N_RUNS - outside);
    CHECK_MSG(outside == 0, "%ld of %d samples fall outside the model's top-3 tokens", outside, N_RUNS);
    CHECK_MSG(pv > 1e-4, "sampled speculative output differs from the model's distribution (p-value %g)", pv);
    /* the drafts were really used and really differ from the model */
    CHECK_MSG(st.spec_proposed >= N_RUNS / 4 && st.spec_accepted < st.spec_proposed && st.spec_accepted > 0,
              "%llu proposed, %llu accepted", (unsigned long long)st.spec_proposed, (unsigned long long)st.spec_accepted);
    double tv = 0, dpv = chi2_pvalue(draft_counts, draft_joint, 9, N_RUNS);
    for (int c = 0; c < 9; c++) tv += fabs(joint[c] - draft_joint[c]) / 2;
    printf("sampled (%s): p-value %g vs the model, %g vs the draft (total variation %.3f); %llu proposed, "
           "%llu accepted\n", draft_layers ? "self" : "lookup", pv, dpv, tv, (unsigned long long)st.spec_proposed,
           (unsigned long long)st.spec_accepted);
    if (draft_layers) CHECK_MSG(tv > 0.1 && dpv < 1e-6, "the test cannot tell the draft's distribution from the model's");
    pagoda_model_free(m);
    reference_close(&ref);
}

/* n > 1 samples speculate each: greedy samples all equal the reference; sampled ones give the
 * same text alone as in a batch with other requests (the per-sequence seeded streams). */
static void test_samples(const char *path, const ids *prompt) {
    reference ref;
    CHECK(reference_open(&ref, path, false));
    ids want;
    reference_greedy(&ref, prompt, N_NEW, &want);
    reference_close(&ref);
    pagoda_sampling_params sp = pagoda_sampling_params_default();
    sp.temperature = 0;
    sp.max_tokens = N_NEW;
    sp.ignore_eos = true;
    sp.n = 3;
    pagoda_model *m = load(path, (pagoda_model_params){.draft_layers = 4});
    pagoda_request_id id;
    ids got[3] = {{.n = 0}};
    CHECK(pagoda_add_request(m, prompt->v, (size_t)prompt->n, &sp, 0, &id) == PAGODA_OK);
    while (pagoda_has_unfinished(m)) {
        const pagoda_output *outs;
        size_t n_outs;
        if (pagoda_step(m, &outs, &n_outs) != PAGODA_OK) break;
        for (size_t o = 0; o < n_outs; o++)
            for (size_t t = 0; t < outs[o].n_tokens && outs[o].index < 3; t++)
                got[outs[o].index].v[got[outs[o].index].n++] = outs[o].tokens[t];
    }
    for (int i = 0; i < 3; i++)
        CHECK_MSG(got[i].n == want.n && !memcmp(got[i].v, want.v, sizeof(int32_t) * (size_t)want.n),
                  "greedy sample %d differs from the model alone", i);
    /* sampled: request 0 alone, then with 7 others arriving later */
    sp.temperature = 0.9f;
    sp.n = 1;
    sp.seed = 1234;
    ids prompts[N_PROMPTS], alone, together[N_PROMPTS];
    make_prompts(m, prompts, N_PROMPTS);
    run_all(m, prompts, 1, &sp, 0, &alone);
    run_all(m, prompts, N_PROMPTS, &sp, 2, together);
    CHECK_MSG(alone.n == N_NEW && together[0].n == alone.n &&
              !memcmp(alone.v, together[0].v, sizeof(int32_t) * (size_t)alone.n),
              "a seeded speculative request gives other text in a batch");
    pagoda_model_free(m);
}

/* SmolLM2 in the backend's exact mode (every row of a step computed alike, so the verification
 * forward gives the same logits as one-token decodes). */
static void test_smollm2(void) {
    const char *home = getenv("HOME");
    char path[1024];
    snprintf(path, sizeof path, "%s/.cache/pagoda/models/SmolLM2-135M-Instruct.Q4_1.gguf", home ? home : ".");
    FILE *f = fopen(path, "rb");
    if (!f) {
        printf("SmolLM2 not fetched (scripts/fetch_model.sh): its checks are skipped\n");
        return;
    }
    fclose(f);
    reference ref;
    CHECK(reference_open(&ref, path, true));
    const char *texts[] = {"The capital of France is Paris. The capital of France is", "def add(a, b):\n    return"};
    source sources[] = {{"smollm2 lookup 3", {.lookup_ngram = 3}}, {"smollm2 self 10 layers", {.draft_layers = 10}},
                        {"smollm2 draft (itself)", {.draft_model_path = path, .draft_k = 3}}};
    ids prompts[2], want[2], got[2];
    pagoda_sampling_params sp = pagoda_sampling_params_default();
    sp.temperature = 0;
    sp.max_tokens = 12;
    sp.ignore_eos = true;
    for (size_t s = 0; s < sizeof sources / sizeof *sources; s++) {
        pagoda_model *m = load(path, sources[s].p);
        if (!m) continue;
        cpu_backend_set_exact(m->be, true);
        if (s == 0)
            for (int i = 0; i < 2; i++) {
                int32_t *v;
                size_t n;
                CHECK(pagoda_tokenize(m, texts[i], strlen(texts[i]), true, false, &v, &n) == PAGODA_OK);
                prompts[i].n = (int)n;
                memcpy(prompts[i].v, v, sizeof(int32_t) * n);
                free(v);
                reference_greedy(&ref, &prompts[i], sp.max_tokens, &want[i]);
            }
        run_all(m, prompts, 2, &sp, 1, got);
        pagoda_engine_stats st;
        pagoda_get_stats(m, &st);
        CHECK_MSG(n_differing(got, want, 2, sources[s].name) == 0, "%s: greedy output differs", sources[s].name);
        CHECK_MSG(st.spec_proposed > 0, "%s: nothing proposed", sources[s].name);
        printf("%-34s %5llu proposed %5llu accepted\n", sources[s].name, (unsigned long long)st.spec_proposed,
               (unsigned long long)st.spec_accepted);
        pagoda_model_free(m);
    }
    reference_close(&ref);

    /* the default int8-activation path: the kernel is chosen per token (prompt or generated), so
     * verification rows compute like decodes; the reference is the engine without speculation */
    const char *more[] = {"Fix the typo: def fibonaci(n): return n if n < 2 else fibonaci(n - 1) + fibonaci(n - 2)\n"
                          "Fixed: def", "Once upon a time, in a small village,", texts[0], texts[1]};
    pagoda_model *plain = load(path, pagoda_model_params_default());
    ids p4[4], w4[4], g4[4];
    for (int i = 0; i < 4; i++) {
        int32_t *v;
        size_t n;
        CHECK(pagoda_tokenize(plain, more[i], strlen(more[i]), true, false, &v, &n) == PAGODA_OK);
        p4[i].n = (int)n;
        memcpy(p4[i].v, v, sizeof(int32_t) * n);
        free(v);
    }
    sp.max_tokens = 32;
    run_all(plain, p4, 4, &sp, 0, w4);
    pagoda_model_free(plain);
    for (size_t s = 0; s < sizeof sources / sizeof *sources; s++) {
        pagoda_model *m = load(path, sources[s].p);
        if (!m) continue;
        run_all(m, p4, 4, &sp, 1, g4);
        CHECK_MSG(n_differing(g4, w4, 4, sources[s].name) == 0, "%s (int8 path): greedy output differs from the "
                  "engine without speculation", sources[s].name);
        pagoda_model_free(m);
    }
}

static void test_errors(const char *path) {
    pagoda_model *m = NULL;
    pagoda_model_params p = {.lookup_ngram = 2, .draft_layers = 2};
    CHECK(pagoda_model_load(path, &p, &m) == PAGODA_ERR_INVALID_ARGUMENT && !m);
    CHECK(strstr(pagoda_last_error(), "one draft source"));
    p = (pagoda_model_params){.draft_layers = 5}; /* stories260K has 5 layers */
    CHECK(pagoda_model_load(path, &p, &m) == PAGODA_ERR_INVALID_ARGUMENT && strstr(pagoda_last_error(), "draft-layers"));
    p = (pagoda_model_params){.lookup_ngram = 2, .draft_k = 17};
    CHECK(pagoda_model_load(path, &p, &m) == PAGODA_ERR_INVALID_ARGUMENT && strstr(pagoda_last_error(), "draft-k"));
    const char *other = test_path(test_shared_dir(), "models/llama-2-tiny-random.gguf");
    p = (pagoda_model_params){.draft_model_path = other};
    pagoda_status st = pagoda_model_load(path, &p, &m);
    CHECK_MSG(st == PAGODA_ERR_FORMAT && strstr(pagoda_last_error(), "vocabulary"), "%s", pagoda_last_error());
    p = (pagoda_model_params){.draft_model_path = "/nonexistent/draft.gguf"};
    CHECK(pagoda_model_load(path, &p, &m) == PAGODA_ERR_IO && !m);
}

int main(void) {
    uint64_t seed = test_seed();
    test_lookup();
    test_dist();
    test_dist_random(seed);
    test_acceptance(seed);
    const char *shared = test_shared_dir();
    if (!shared) {
        printf("shared data folder not found: engine checks skipped\n");
        return test_finish();
    }
    const char *path = test_path(shared, "models/stories260K.gguf");
    char *text = test_read_file(test_path(shared, "models/stories260K.greedy64.once-upon-a-time.ids"), NULL);
    ids fixture_prompt = {.n = 0}, fixture_out = {.n = 0};
    if (text) { /* "prompt tokens [..]\nids [..]": ids repeat the prompt after BOS, then the output */
        char *a = strchr(text, '['), *b = a ? strchr(a + 1, '[') : NULL;
        for (char *s = a + 1; a && *s && *s != ']'; s++)
            if (s[-1] == '[' || s[-1] == ' ') fixture_prompt.v[fixture_prompt.n++] = (int32_t)strtol(s, NULL, 10);
        int n_ids = 0;
        for (char *s = b ? b + 1 : NULL; s && *s && *s != ']'; s++)
            if (s[-1] == '[' || s[-1] == ' ') {
                int32_t v = (int32_t)strtol(s, NULL, 10);
                if (n_ids++ >= fixture_prompt.n - 1) fixture_out.v[fixture_out.n++] = v;
            }
        if (fixture_out.n > N_NEW) fixture_out.n = N_NEW;
        free(text);
    }
    CHECK(fixture_prompt.n == 5 && fixture_out.n == N_NEW);
    test_errors(path);
    test_greedy_engine(path, &fixture_prompt, fixture_out.n ? &fixture_out : NULL);
    test_accounting(path);
    test_sampled_engine(path, &fixture_prompt, 2, 0, seed);
    ids repeated; /* a prompt whose likely continuations appear in it, so that lookup proposes */
    pagoda_model *plain = load(path, pagoda_model_params_default());
    const char *story = "Once upon a time, there was a little girl. Once upon a time, there was a little boy. "
                       "Once upon a time";
    int32_t *v;
    size_t n;
    CHECK(pagoda_tokenize(plain, story, strlen(story), true, false, &v, &n) == PAGODA_OK);
    repeated.n = (int)n;
    memcpy(repeated.v, v, sizeof(int32_t) * n);
    free(v);
    pagoda_model_free(plain);
    test_sampled_engine(path, &repeated, 0, 2, seed ^ 0xabcdef);
    test_samples(path, &fixture_prompt);
    test_smollm2();
    return test_finish();
}
