/* engine/spec_accept.c - the pure parts of speculative decoding (see spec.h): prompt lookup, the
 * sampling distribution, and the rejection rule that keeps the target's distribution.
 *
 * Why the rule is exact (Leviathan et al. 2023, Chen et al. 2023): x ~ q is emitted with
 * probability q(x) min(1, p(x)/q(x)) = min(q(x), p(x)); a rejection happens with probability
 * 1 - sum_y min(q(y), p(y)) = sum_y max(0, p(y) - q(y)) and then emits y with probability
 * max(0, p(y) - q(y)) / that sum. Together: min(q, p) + max(0, p - q) = p.
 * Not here: the engine bookkeeping (spec.c).
 */
#include <math.h>
#include <stdlib.h>

#include "engine/spec.h"

int32_t spec_lookup(const int32_t *tokens, int32_t n, int32_t ngram, int32_t k, int32_t *out) {
    for (int32_t m = ngram < n - 1 ? ngram : n - 1; m >= 1; m--) {
        const int32_t *tail = tokens + n - m;
        for (int32_t i = n - m - 1; i >= 0; i--) { /* most recent first; i + m <= n - 1 */
            int32_t j = 0;
            while (j < m && tokens[i + j] == tail[j]) j++;
            if (j < m) continue;
            int32_t n_out = 0;
            for (int32_t t = i + m; t < n && n_out < k; t++) out[n_out++] = tokens[t];
            return n_out;
        }
    }
    return 0;
}

typedef struct cand {
    float v;    /* the logit, then the probability */
    int32_t id;
} cand;

/* The sampler's order: larger first, ties to the lower id (a total order, so the top k is unique). */
static int cand_desc(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->v != y->v) return x->v < y->v ? 1 : -1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Moves the k first of c[0..n) in cand_desc order to the front, unordered (quickselect). */
static void select_top(cand *c, int32_t n, int32_t k) {
    int32_t lo = 0, hi = n - 1;
    while (lo < hi) {
        cand pivot = c[lo + (hi - lo) / 2];
        int32_t i = lo, j = hi;
        while (i <= j) {
            while (cand_desc(&c[i], &pivot) < 0) i++;
            while (cand_desc(&c[j], &pivot) > 0) j--;
            if (i <= j) {
                cand t = c[i];
                c[i++] = c[j];
                c[j--] = t;
            }
        }
        if (k - 1 <= j) hi = j;
        else if (k - 1 >= i) lo = i;
        else break;
    }
}

/* Sorts the k first in cand_desc order to the front of c[0..n). */
static void sort_top(cand *c, int32_t n, int32_t k) {
    if (k < n) select_top(c, n, k);
    qsort(c, (size_t)k, sizeof *c, cand_desc);
}

void spec_dist(const sampler_params *p, const float *logits, int32_t n_vocab, float *probs, void *scratch) {
    cand *c = scratch;
    float max = -INFINITY;
    for (int32_t i = 0; i < n_vocab; i++) {
        c[i] = (cand){isnan(logits[i]) ? -INFINITY : logits[i], i};
        probs[i] = 0;
        if (c[i].v > max) max = c[i].v;
    }
    int32_t n = n_vocab, n_sorted = 0; /* c[0..n_sorted) is in order */
    if (p->top_k > 0 && p->top_k < n_vocab) {
        sort_top(c, n_vocab, p->top_k);
        n = n_sorted = p->top_k;
    }
    double sum = 0;
    for (int32_t i = 0; i < n; i++) /* the max gets weight 1 even when it is +inf */
        sum += (c[i].v = c[i].v == max ? 1.0f : expf((c[i].v - max) / p->temperature));
    for (int32_t i = 0; i < n; i++) c[i].v = (float)(c[i].v / sum);
    if (p->top_p < 1) {
        double cum = 0;
        int32_t keep = n;
        for (int32_t i = 0;; i++) {
            if (i == n_sorted) { /* sort a longer prefix: the nucleus is usually short */
                if (n_sorted == n) break; /* all of it (the mass fell short of top_p by rounding) */
                int32_t m = n_sorted ? n_sorted * 4 : 256;
                n_sorted = m < n ? m : n;
                sort_top(c, n, n_sorted);
                cum = 0;
                i = 0;
            }
            cum += c[i].v;
            if (cum >= p->top_p) {
                keep = i + 1;
                break;
            }
        }
        n = keep;
    }
    if (p->min_p > 0) { /* keep p >= min_p * p_max: a prefix when sorted, else a filter */
        float top = 0;
        for (int32_t i = 0; i < n; i++) top = c[i].v > top ? c[i].v : top;
        float floor = top * p->min_p;
        int32_t keep = 0;
        for (int32_t i = 0; i < n; i++)
            if (c[i].v >= floor) c[keep++] = c[i];
        n = keep;
    }
    double total = 0;
    for (int32_t i = 0; i < n; i++) total += c[i].v;
    for (int32_t i = 0; i < n; i++) probs[c[i].id] = (float)(c[i].v / total);
}

int32_t spec_draw(const float *probs, int32_t n, sampler_rng *rng) {
    double total = 0;
    int32_t last = 0;
    for (int32_t i = 0; i < n; i++)
        if (probs[i] > 0) {
            total += probs[i];
            last = i;
        }
    double r = sampler_rng_uniform(rng) * total, cum = 0;
    for (int32_t i = 0; i < n; i++) {
        if (probs[i] <= 0) continue;
        cum += probs[i];
        if (r < cum) return i;
    }
    return last;
}

bool spec_accept(const float *p, const float *q, int32_t n, int32_t x, sampler_rng *rng, float *residual,
                 int32_t *resampled) {
    double qx = q ? q[x] : 1.0, px = p[x];
    double u = sampler_rng_uniform(rng);
    if (qx <= 0 || u * qx < px) return true; /* u < p/q; q(x) = 0 cannot have been drawn from q */
    double total = 0;
    for (int32_t i = 0; i < n; i++) {
        double d = (double)p[i] - (q ? q[i] : (i == x ? 1.0 : 0.0));
        residual[i] = d > 0 ? (float)d : 0.0f;
        total += residual[i];
    }
    /* p <= q everywhere only when p == q up to rounding; then p itself is the right answer */
    *resampled = total > 0 ? spec_draw(residual, n, rng) : spec_draw(p, n, rng);
    return false;
}
