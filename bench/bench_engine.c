/* bench/bench_engine.c - engine throughput (issue 3): generated tokens per second of the paged,
 * continuously batched engine for C concurrent requests, against the same C requests run one at a
 * time.
 *
 * For each concurrency C: C requests with distinct synthetic prompts of exactly P tokens are submitted
 * at once (greedy, max_tokens N, ignore_eos, so each generates exactly N tokens) and the engine is
 * stepped until all finish. Reported per C, each the median of --reps timed runs (after one untimed
 * warm-up run of the whole program):
 *   gen tok/s    C * N / wall seconds (submission to last token, prompt processing included);
 *   total tok/s  C * (P + N) / wall seconds;
 *   seq tok/s    the same requests one at a time (submit one, step until it finishes, next), as
 *                generated tokens / wall seconds; --seq-requests K times only the first K of them
 *                (one sequence's speed does not depend on C, so a few suffice);
 *   steps, preemptions, prefix-cache hits (engine counters; preemptions should be 0).
 * Prefix caching is off by default so that repeated runs of the same prompts recompute them.
 *
 * The prompts are token ids, not text, so that tools/bench_llamacpp_batched.py can build exactly the
 * same ones: token j of request r is 100 + splitmix64(r * 1000003 + j + 1) % (min(n_vocab, 32000) - 100).
 * The first generated tokens of request 0 are printed (--json) to cross-check the two engines.
 *
 * Not a test: it checks only that every request generated N tokens. Build: make bench.
 * Run: build/bench/bench_engine -m MODEL [-t THREADS] [--gen N] [--prompt-len P] [--conc 1,8,32,64]
 *        [--reps R] [--seq-requests K] [--n-batch B] [--kv-mib M] [--prefix-caching] [--json]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pagoda.h"

enum { MAX_CONCS = 16, MAX_REPS = 51, N_FIRST_TOKENS = 16 };

typedef struct bench_options {
    const char *model_path;
    int32_t n_threads, n_gen, prompt_len, reps, seq_requests, n_batch;
    int64_t kv_mib;
    int32_t concs[MAX_CONCS];
    int n_concs;
    bool json, prefix_caching;
} bench_options;

/* One timed run of some requests. */
typedef struct run_result {
    double seconds;
    uint64_t steps, preemptions, prefix_hits;
    int32_t n_requests;
    int32_t first_tokens[N_FIRST_TOKENS]; /* request 0's first generated tokens */
    int32_t n_first;
} run_result;

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t splitmix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15u;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
    return x ^ (x >> 31);
}

/* The synthetic prompt of request r (see the file-top comment). */
static void make_prompt(int32_t r, int32_t n_vocab, int32_t *ids, int32_t len) {
    uint64_t range = (uint64_t)(n_vocab < 32000 ? n_vocab : 32000) - 100;
    for (int32_t j = 0; j < len; j++)
        ids[j] = 100 + (int32_t)(splitmix64((uint64_t)r * 1000003u + (uint64_t)j + 1) % range);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Runs requests first..first+n-1 together (n at once) and steps until they all finish. Returns false
 * (with a message on stderr) on an engine error or when a request did not generate exactly n_gen tokens. */
static bool run_together(pagoda_model *m, const bench_options *o, int32_t n_vocab, int32_t first, int32_t n,
                         run_result *res) {
    pagoda_sampling_params sp = pagoda_sampling_params_default();
    sp.temperature = 0.0f;
    sp.top_k = 0;
    sp.top_p = 1.0f;
    sp.min_p = 0.0f;
    sp.max_tokens = o->n_gen;
    sp.ignore_eos = true;
    int32_t *prompts = malloc((size_t)n * (size_t)o->prompt_len * sizeof *prompts);
    pagoda_request_id *ids = malloc((size_t)n * sizeof *ids);
    int32_t *n_generated = calloc((size_t)n, sizeof *n_generated);
    bool ok = prompts && ids && n_generated;
    if (!ok) fprintf(stderr, "bench_engine: out of memory\n");
    size_t len = (size_t)o->prompt_len;
    for (int32_t r = 0; ok && r < n; r++) make_prompt(first + r, n_vocab, prompts + (size_t)r * len, o->prompt_len);

    pagoda_engine_stats before, after;
    pagoda_get_stats(m, &before);
    res->n_first = 0;
    double t0 = now_seconds();
    for (int32_t r = 0; ok && r < n; r++) {
        if (pagoda_add_request(m, prompts + (size_t)r * len, len, &sp, 0, &ids[r])) {
            fprintf(stderr, "bench_engine: add_request: %s\n", pagoda_last_error());
            ok = false;
        }
    }
    while (ok && pagoda_has_unfinished(m)) {
        const pagoda_output *outs;
        size_t n_outs;
        if (pagoda_step(m, &outs, &n_outs)) {
            fprintf(stderr, "bench_engine: step: %s\n", pagoda_last_error());
            ok = false;
        }
        for (size_t i = 0; i < n_outs; i++) {
            int32_t r = 0;
            while (r < n && ids[r] != outs[i].id) r++;
            if (r == n) continue;
            if (r == 0 && first == 0)
                for (size_t k = 0; k < outs[i].n_tokens && res->n_first < N_FIRST_TOKENS; k++)
                    res->first_tokens[res->n_first++] = outs[i].tokens[k];
            n_generated[r] += (int32_t)outs[i].n_tokens;
            if (outs[i].finished && outs[i].finish_reason == PAGODA_FINISH_ERROR) {
                fprintf(stderr, "bench_engine: request failed: %s\n", outs[i].error_message);
                ok = false;
            }
        }
    }
    res->seconds = now_seconds() - t0;
    pagoda_get_stats(m, &after);
    res->steps = after.n_steps - before.n_steps;
    res->preemptions = after.n_preemptions - before.n_preemptions;
    res->prefix_hits = after.prefix_hits - before.prefix_hits;
    res->n_requests = n;
    for (int32_t r = 0; ok && r < n; r++) {
        if (n_generated[r] != o->n_gen) {
            fprintf(stderr, "bench_engine: request %d generated %d tokens, expected %d\n", first + r, n_generated[r],
                    o->n_gen);
            ok = false;
        }
    }
    free(prompts);
    free(ids);
    free(n_generated);
    return ok;
}

/* Runs requests 0..n-1 one after another; the sums go into *res. */
static bool run_sequential(pagoda_model *m, const bench_options *o, int32_t n_vocab, int32_t n, run_result *res) {
    run_result total = {0}, one;
    for (int32_t r = 0; r < n; r++) {
        if (!run_together(m, o, n_vocab, r, 1, &one)) return false;
        total.seconds += one.seconds;
        total.steps += one.steps;
        total.preemptions += one.preemptions;
        total.prefix_hits += one.prefix_hits;
    }
    total.n_requests = n;
    *res = total;
    return true;
}

/* The median run of `reps` (by seconds); counters are taken from that run. */
static bool median_run(pagoda_model *m, const bench_options *o, int32_t n_vocab, int32_t n, bool sequential,
                       run_result *out) {
    run_result runs[MAX_REPS];
    double times[MAX_REPS];
    for (int i = 0; i < o->reps; i++) {
        bool ok = sequential ? run_sequential(m, o, n_vocab, n, &runs[i]) : run_together(m, o, n_vocab, 0, n, &runs[i]);
        if (!ok) return false;
        times[i] = runs[i].seconds;
    }
    qsort(times, (size_t)o->reps, sizeof times[0], cmp_double);
    double median = times[o->reps / 2];
    for (int i = 0; i < o->reps; i++)
        if (runs[i].seconds == median) *out = runs[i];
    return true;
}

static void usage(FILE *f) {
    fprintf(f, "usage: bench_engine -m MODEL [-t THREADS] [--gen N] [--prompt-len P] [--conc 1,8,32,64]\n"
               "       [--reps R] [--seq-requests K] [--n-batch B] [--kv-mib M] [--prefix-caching] [--json]\n"
               "  --seq-requests K  time only the first K requests one at a time (default: all C; 0: skip)\n");
}

static bool parse_concs(const char *s, bench_options *o) {
    o->n_concs = 0;
    while (*s) {
        char *end;
        long c = strtol(s, &end, 10);
        if (end == s || c < 1 || c > 4096 || o->n_concs == MAX_CONCS) return false;
        o->concs[o->n_concs++] = (int32_t)c;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return false;
    }
    return o->n_concs > 0;
}

static bool parse_args(int argc, char **argv, bench_options *o) {
    *o = (bench_options){.n_threads = 0, .n_gen = 64, .prompt_len = 48, .reps = 3, .seq_requests = -1,
                         .n_batch = 512, .kv_mib = 1024};
    parse_concs("1,8,32,64", o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes = true;
        if (!strcmp(a, "-m") && v) o->model_path = v;
        else if (!strcmp(a, "-t") && v) o->n_threads = atoi(v);
        else if (!strcmp(a, "--gen") && v) o->n_gen = atoi(v);
        else if (!strcmp(a, "--prompt-len") && v) o->prompt_len = atoi(v);
        else if (!strcmp(a, "--reps") && v) o->reps = atoi(v);
        else if (!strcmp(a, "--seq-requests") && v) o->seq_requests = atoi(v);
        else if (!strcmp(a, "--n-batch") && v) o->n_batch = atoi(v);
        else if (!strcmp(a, "--kv-mib") && v) o->kv_mib = atoll(v);
        else if (!strcmp(a, "--conc") && v) {
            if (!parse_concs(v, o)) return false;
        } else {
            takes = false;
            if (!strcmp(a, "--json")) o->json = true;
            else if (!strcmp(a, "--prefix-caching")) o->prefix_caching = true;
            else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
                usage(stdout);
                exit(0);
            } else return false;
        }
        if (takes) i++;
    }
    return o->model_path && o->n_gen >= 1 && o->prompt_len >= 1 && o->reps >= 1 && o->reps <= MAX_REPS &&
           o->kv_mib >= 1;
}

static double rate(double tokens, double seconds) { return seconds > 0 ? tokens / seconds : 0.0; }

int main(int argc, char **argv) {
    bench_options o;
    if (!parse_args(argc, argv, &o)) {
        usage(stderr);
        return 2;
    }
    int32_t max_conc = 1;
    for (int i = 0; i < o.n_concs; i++)
        if (o.concs[i] > max_conc) max_conc = o.concs[i];
    pagoda_model_params mp = pagoda_model_params_default();
    mp.n_threads = o.n_threads;
    mp.n_batch = o.n_batch;
    mp.max_seqs = max_conc;
    mp.kv_cache_bytes = o.kv_mib << 20;
    mp.no_prefix_caching = !o.prefix_caching;
    pagoda_model *m;
    if (pagoda_model_load(o.model_path, &mp, &m)) {
        fprintf(stderr, "bench_engine: %s\n", pagoda_last_error());
        return 1;
    }
    pagoda_model_info info;
    pagoda_model_get_info(m, &info);
    if (info.kv_blocks * info.kv_block_size < (int64_t)max_conc * (o.prompt_len + o.n_gen))
        fprintf(stderr, "bench_engine: warning: the KV cache (%lld tokens) cannot hold %d sequences of %d tokens; "
                        "requests will wait or be preempted (raise --kv-mib)\n",
                (long long)(info.kv_blocks * info.kv_block_size), max_conc, o.prompt_len + o.n_gen);

    /* warm-up: touches the weights, the thread pool and the engine's buffers */
    run_result warm;
    bench_options wo = o;
    wo.n_gen = o.n_gen < 8 ? o.n_gen : 8;
    if (!run_together(m, &wo, info.n_vocab, 0, max_conc < 8 ? max_conc : 8, &warm)) {
        pagoda_model_free(m);
        return 1;
    }

    run_result batched[MAX_CONCS], seq[MAX_CONCS];
    int32_t n_seq[MAX_CONCS];
    int rc = 0;
    for (int i = 0; i < o.n_concs && rc == 0; i++) {
        int32_t c = o.concs[i];
        n_seq[i] = o.seq_requests < 0 || o.seq_requests > c ? c : o.seq_requests;
        if (!median_run(m, &o, info.n_vocab, c, false, &batched[i])) rc = 1;
        memset(&seq[i], 0, sizeof seq[i]);
        if (rc == 0 && n_seq[i] > 0 && !median_run(m, &o, info.n_vocab, n_seq[i], true, &seq[i])) rc = 1;
        if (!o.json && rc == 0)
            fprintf(stderr, "  C=%d: %.1f gen tok/s batched, %.1f one at a time\n", c,
                    rate((double)c * o.n_gen, batched[i].seconds), rate((double)n_seq[i] * o.n_gen, seq[i].seconds));
    }
    if (rc) {
        pagoda_model_free(m);
        return rc;
    }

    if (o.json) {
        printf("{\"engine\": \"pagoda\", \"model\": \"%s\", \"threads\": %d, \"n_gen\": %d, \"prompt_len\": %d, "
               "\"reps\": %d, \"n_batch\": %d, \"kv_type\": \"%s\", \"kv_tokens\": %lld, \"prefix_caching\": %s, "
               "\"results\": [",
               o.model_path, info.n_threads, o.n_gen, o.prompt_len, o.reps, o.n_batch, info.kv_type,
               (long long)(info.kv_blocks * info.kv_block_size), o.prefix_caching ? "true" : "false");
        for (int i = 0; i < o.n_concs; i++) {
            int32_t c = o.concs[i];
            printf("%s\n  {\"conc\": %d, \"seconds\": %.6f, \"gen_tok_s\": %.3f, \"total_tok_s\": %.3f, "
                   "\"steps\": %llu, \"preemptions\": %llu, \"prefix_hit_tokens\": %llu, "
                   "\"seq_requests\": %d, \"seq_seconds\": %.6f, \"seq_gen_tok_s\": %.3f, \"first_tokens\": [",
                   i ? "," : "", c, batched[i].seconds, rate((double)c * o.n_gen, batched[i].seconds),
                   rate((double)c * (o.prompt_len + o.n_gen), batched[i].seconds),
                   (unsigned long long)batched[i].steps,
                   (unsigned long long)(batched[i].preemptions + seq[i].preemptions),
                   (unsigned long long)batched[i].prefix_hits, n_seq[i], seq[i].seconds,
                   rate((double)n_seq[i] * o.n_gen, seq[i].seconds));
            for (int k = 0; k < batched[i].n_first; k++) printf("%s%d", k ? ", " : "", batched[i].first_tokens[k]);
            printf("]}");
        }
        printf("\n]}\n");
    } else {
        printf("pagoda engine: %s, %d threads, prompt %d tokens, %d generated tokens per request, median of %d, "
               "n_batch %d, KV %s %lld tokens, prefix caching %s\n",
               o.model_path, info.n_threads, o.prompt_len, o.n_gen, o.reps, o.n_batch, info.kv_type,
               (long long)(info.kv_blocks * info.kv_block_size), o.prefix_caching ? "on" : "off");
        printf("%6s %10s %12s %12s %12s %8s %8s %8s\n", "C", "seconds", "gen tok/s", "total tok/s", "seq tok/s",
               "speedup", "steps", "preempt");
        for (int i = 0; i < o.n_concs; i++) {
            int32_t c = o.concs[i];
            double g = rate((double)c * o.n_gen, batched[i].seconds);
            double s = rate((double)n_seq[i] * o.n_gen, seq[i].seconds);
            printf("%6d %10.3f %12.1f %12.1f %12.1f %7.2fx %8llu %8llu\n", c, batched[i].seconds, g,
                   rate((double)c * (o.prompt_len + o.n_gen), batched[i].seconds), s, s > 0 ? g / s : 0.0,
                   (unsigned long long)batched[i].steps,
                   (unsigned long long)(batched[i].preemptions + seq[i].preemptions));
        }
    }
    pagoda_model_free(m);
    return 0;
}
