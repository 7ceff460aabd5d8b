/* bench_client/bench_stats.c - the numbers `pagoda bench serve` reports, computed as vLLM's
 * `bench serve` does (vllm/benchmarks/serve.py, calculate_metrics): throughputs over the benchmark's
 * duration counting completed requests only; TTFT, TPOT and E2E latency one value per completed
 * request (TPOT only where more than one token came); ITL every gap of every completed request;
 * mean, median, population std and p99 with numpy's linear percentile. Also the random-word prompts. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench_client/bench_client.h" /* defines: bench_summary, bench_stat, bench_percentile */
#include "core/error.h"                /* defines: error_set */

static int compare_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y ? 1 : 0;
}

double bench_percentile(const double *sorted, size_t n, double p) {
    if (n == 0) return 0.0;
    if (p <= 0) return sorted[0];
    if (p >= 100) return sorted[n - 1];
    double rank = p / 100.0 * (double)(n - 1);
    size_t lo = (size_t)floor(rank);
    size_t hi = lo + 1 < n ? lo + 1 : lo;
    double frac = rank - (double)lo;
    return sorted[lo] + (sorted[hi] - sorted[lo]) * frac;
}

void bench_stat_compute(double *values, size_t n, double scale, bench_stat *out) {
    memset(out, 0, sizeof *out);
    out->n = (int64_t)n;
    if (n == 0) return;
    qsort(values, n, sizeof *values, compare_double);
    double sum = 0;
    for (size_t i = 0; i < n; i++) sum += values[i];
    double mean = sum / (double)n, var = 0;
    for (size_t i = 0; i < n; i++) var += (values[i] - mean) * (values[i] - mean);
    out->mean = mean * scale;
    out->std = sqrt(var / (double)n) * scale;
    out->median = bench_percentile(values, n, 50) * scale;
    out->p99 = bench_percentile(values, n, 99) * scale;
}

pagoda_status bench_summarize(const bench_request *requests, const bench_result *results, int32_t n,
                              double duration_s, bench_summary *out) {
    memset(out, 0, sizeof *out);
    out->duration_s = duration_s;
    out->first_error_index = -1;
    out->input_from_usage = true;
    size_t n_itl = 0;
    for (int32_t i = 0; i < n; i++)
        if (results[i].success) n_itl += (size_t)results[i].n_itl;
    size_t n_alloc = (size_t)n + 1;
    double *ttft = malloc(n_alloc * sizeof *ttft), *tpot = malloc(n_alloc * sizeof *tpot);
    double *e2el = malloc(n_alloc * sizeof *e2el), *itl = malloc((n_itl + 1) * sizeof *itl);
    if (!ttft || !tpot || !e2el || !itl) {
        free(ttft), free(tpot), free(e2el), free(itl);
        return error_set(PAGODA_ERR_OUT_OF_MEMORY, "bench summary: out of memory");
    }
    size_t n_ok = 0, n_tpot = 0;
    n_itl = 0;
    for (int32_t i = 0; i < n; i++) {
        const bench_result *r = &results[i];
        if (!r->success) {
            out->n_failed++;
            if (out->first_error_index < 0) out->first_error_index = i;
            continue;
        }
        out->n_completed++;
        out->total_output_tokens += r->n_output_tokens;
        if (r->n_prompt_tokens >= 0) {
            out->total_input_tokens += r->n_prompt_tokens;
        } else {
            out->total_input_tokens += requests[i].n_prompt_estimate;
            out->input_from_usage = false;
        }
        ttft[n_ok] = r->ttft_s;
        e2el[n_ok] = r->e2e_s;
        n_ok++;
        if (r->n_output_tokens > 1) tpot[n_tpot++] = (r->e2e_s - r->ttft_s) / (r->n_output_tokens - 1);
        for (int32_t k = 0; k < r->n_itl; k++) itl[n_itl++] = r->itl_s[k];
    }
    if (out->n_completed == 0) out->input_from_usage = false;
    if (duration_s > 0) {
        out->request_throughput = out->n_completed / duration_s;
        out->output_throughput = (double)out->total_output_tokens / duration_s;
        out->total_token_throughput =
            (double)(out->total_input_tokens + out->total_output_tokens) / duration_s;
    }
    bench_stat_compute(ttft, n_ok, 1000.0, &out->ttft);
    bench_stat_compute(tpot, n_tpot, 1000.0, &out->tpot);
    bench_stat_compute(itl, n_itl, 1000.0, &out->itl);
    bench_stat_compute(e2el, n_ok, 1000.0, &out->e2el);
    free(ttft), free(tpot), free(e2el), free(itl);
    return PAGODA_OK;
}

/* ---- prompts ---- */

/* Common English words; in the usual BPE vocabularies each (with its leading space) is one token. */
static const char *const bench_words[] = {
    "the", "of", "and", "to", "in", "is", "was", "that", "for", "on", "with", "as", "by", "at",
    "from", "his", "her", "they", "we", "you", "this", "have", "had", "not", "but", "all", "were",
    "when", "there", "can", "an", "your", "which", "their", "said", "if", "do", "will", "each",
    "about", "how", "up", "out", "them", "then", "she", "many", "some", "so", "these", "would",
    "other", "into", "has", "more", "two", "like", "him", "see", "time", "could", "no", "make",
    "than", "first", "been", "its", "who", "now", "people", "my", "made", "over", "did", "down",
    "only", "way", "find", "use", "may", "water", "long", "little", "very", "after", "words",
    "called", "just", "where", "most", "know", "get", "through", "back", "much", "before", "go",
    "good", "new", "write", "our", "used", "me", "man", "too", "any", "day", "same", "right",
    "look", "think", "also", "around", "another", "came", "come", "work", "three", "word", "must",
    "because", "does", "part", "even", "place", "well", "such", "here", "take", "why", "things",
    "help", "put", "years", "different", "away", "again", "off", "went", "old", "number", "great",
    "tell", "men", "say", "small", "every", "found", "still", "between", "name", "should", "home",
    "big", "give", "air", "line", "set", "own", "under", "read", "last", "never", "us", "left",
    "end", "along", "while", "might", "next", "sound", "below", "saw", "something", "thought",
    "both", "few", "those", "always", "show", "large", "often", "together", "asked", "house",
    "world", "going", "want", "school", "important", "until", "form", "food", "keep", "children",
    "feet", "land", "side", "without", "boy", "once", "animals", "life", "enough", "took", "four",
    "head", "above", "kind", "began", "almost", "live", "page", "got", "earth", "need", "far",
    "hand", "high", "year", "mother", "light", "country", "father", "let", "night", "picture",
    "being", "study", "second", "soon", "story", "since", "white", "ever", "paper", "hard", "near",
    "sentence", "better", "best", "across", "during", "today", "however", "sure", "knew", "try",
    "told", "young", "sun", "thing", "whole", "hear", "example", "heard", "several", "change",
    "answer", "room", "sea", "against", "top", "turned", "learn", "point", "city", "play", "toward",
    "five", "himself", "usually", "money", "seen", "car", "morning", "table", "river", "music",
};
#define N_BENCH_WORDS (sizeof bench_words / sizeof bench_words[0])

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double bench_rng_uniform(uint64_t *rng) {
    return (double)(splitmix64(rng) >> 11) * (1.0 / 9007199254740992.0);
}

pagoda_status bench_prompt_make(uint64_t *rng, int32_t n_words, char **out) {
    *out = NULL;
    size_t cap = 1, len = 0;
    const char **picked = malloc((size_t)(n_words > 0 ? n_words : 1) * sizeof *picked);
    if (!picked) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "bench prompt: out of memory");
    for (int32_t i = 0; i < n_words; i++) {
        picked[i] = bench_words[splitmix64(rng) % N_BENCH_WORDS];
        cap += strlen(picked[i]) + 1;
    }
    char *s = malloc(cap);
    if (!s) {
        free(picked);
        return error_set(PAGODA_ERR_OUT_OF_MEMORY, "bench prompt: out of memory");
    }
    for (int32_t i = 0; i < n_words; i++) {
        if (i) s[len++] = ' ';
        size_t w = strlen(picked[i]);
        memcpy(s + len, picked[i], w);
        len += w;
    }
    s[len] = '\0';
    free(picked);
    *out = s;
    return PAGODA_OK;
}
