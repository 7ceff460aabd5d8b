/* cli/cmd_bench_serve.c - `pagoda bench serve`: a serving load generator for any OpenAI-compatible
 * server, like `vllm bench serve`. Builds N random-word prompts, sends them as streaming requests with
 * Poisson arrivals and an optional concurrency cap (bench_client/), and prints vLLM's result table:
 * request and token throughputs, and mean / median / p99 of TTFT, TPOT, ITL and end-to-end latency;
 * with --json also every request's timings. Exit status: 0 when at least one request succeeded
 * (failures are counted and the first error shown), 1 when all failed or the run could not start,
 * 2 for a usage error. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_client/bench_client.h" /* defines: bench_run, bench_summarize, bench_prompt_make */
#include "cli/commands.h"              /* defines: cmd_bench_serve */

#define CMD "pagoda bench serve"

static void print_help(FILE *out) {
    fprintf(out,
            "usage: pagoda bench serve [--url URL] [options]\n\n"
            "Load-tests an OpenAI-compatible server (Pagoda, vLLM, llama.cpp, ...): sends N streaming\n"
            "requests of random-word prompts (temperature 0, ignore_eos, so each one generates exactly\n"
            "--output-len tokens) and reports, like `vllm bench serve`: successful and failed requests,\n"
            "duration, request / output / total token throughput, and mean, median and p99 of\n"
            "  TTFT  time to first token (request sent -> first streamed text)\n"
            "  TPOT  time per output token after the first: (e2e - ttft) / (output tokens - 1)\n"
            "  ITL   inter-token latency: every gap between streamed text events\n"
            "  E2EL  end-to-end latency (request sent -> last byte)\n"
            "Output tokens come from the final usage chunk (stream_options.include_usage), else the\n"
            "number of streamed text events; input tokens from usage, else the word count.\n\n"
            "  --url URL               server base URL (default http://127.0.0.1:8080; a trailing /v1 is\n"
            "                          accepted)\n"
            "  --endpoint KIND         completions (POST /v1/completions, default) or chat\n"
            "                          (POST /v1/chat/completions, the prompt as one user message)\n"
            "  --model NAME            the request's \"model\" (default: the first id of GET /v1/models)\n"
            "  --num-prompts N         requests to send (default 100)\n"
            "  --request-rate R        mean requests per second, Poisson arrivals; inf sends all at\n"
            "                          once (default inf)\n"
            "  --max-concurrency C     at most C requests in flight; a due request waits for a slot,\n"
            "                          and its clock starts when it is sent (default: no limit)\n"
            "  --input-len L           words per prompt, about one token each (default 256)\n"
            "  --prefix-len P          the first P words are the same in every prompt (default 0)\n"
            "  --output-len O          max_tokens of every request (default 128)\n"
            "  --seed S                seed for prompts and arrival times (default 0)\n"
            "  --api-key KEY           sent as a Bearer token (default $OPENAI_API_KEY, if set)\n"
            "  --extra-body JSON       object merged into every request body, e.g. '{\"top_k\": 1}'\n"
            "  --timeout SEC           per-request limit in seconds (default: none)\n"
            "  --json FILE             also write the results as JSON ('-': JSON on stdout, the\n"
            "                          table on stderr): the summary metrics (ms) and per-request\n"
            "                          arrays (seconds): ttfts, itls, e2els, input_lens, output_lens,\n"
            "                          errors (\"\" for a success)\n"
            "  -h, --help              show this help\n\n"
            "Exit status: 0 if at least one request succeeded (failures are counted and the first\n"
            "error is shown), 1 if every request failed or the run could not start, 2 for bad options.\n"
            "Environment proxies are not used.\n");
}

typedef struct serve_options {
    const char *url, *model, *api_key, *json_path, *extra_body_text;
    bench_endpoint endpoint;
    int32_t num_prompts, input_len, prefix_len, output_len, max_concurrency;
    double request_rate, timeout_s;
    uint64_t seed;
} serve_options;

static int bad_value(const char *option, const char *arg, const char *expected) {
    fprintf(stderr, CMD ": %s: bad value '%s' (%s)\n", option, arg, expected);
    return 2;
}

static bool parse_int(const char *arg, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(arg, &end, 10);
    if (errno || end == arg || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

enum { OPT_URL = 1000, OPT_MODEL, OPT_ENDPOINT, OPT_NUM_PROMPTS, OPT_RATE, OPT_CONCURRENCY,
       OPT_INPUT_LEN, OPT_PREFIX_LEN, OPT_OUTPUT_LEN, OPT_SEED, OPT_API_KEY, OPT_JSON,
       OPT_EXTRA_BODY, OPT_TIMEOUT };

static const struct option long_options[] = {
    {"url", required_argument, 0, OPT_URL},
    {"model", required_argument, 0, OPT_MODEL},
    {"endpoint", required_argument, 0, OPT_ENDPOINT},
    {"num-prompts", required_argument, 0, OPT_NUM_PROMPTS},
    {"request-rate", required_argument, 0, OPT_RATE},
    {"max-concurrency", required_argument, 0, OPT_CONCURRENCY},
    {"input-len", required_argument, 0, OPT_INPUT_LEN},
    {"prefix-len", required_argument, 0, OPT_PREFIX_LEN},
    {"output-len", required_argument, 0, OPT_OUTPUT_LEN},
    {"seed", required_argument, 0, OPT_SEED},
    {"api-key", required_argument, 0, OPT_API_KEY},
    {"json", required_argument, 0, OPT_JSON},
    {"extra-body", required_argument, 0, OPT_EXTRA_BODY},
    {"timeout", required_argument, 0, OPT_TIMEOUT},
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

/* Parses argv into *o; returns -1 to go on, else the exit code (0 after --help). */
static int parse_options(int argc, char **argv, serve_options *o) {
    *o = (serve_options){.url = "http://127.0.0.1:8080", .endpoint = BENCH_ENDPOINT_COMPLETIONS,
                         .num_prompts = 100, .input_len = 256, .output_len = 128,
                         .request_rate = INFINITY, .api_key = getenv("OPENAI_API_KEY")};
    optind = 1;
    opterr = 0;
    int c;
    long long v;
    while ((c = getopt_long(argc, argv, ":h", long_options, NULL)) != -1) {
        const char *name = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
        switch (c) {
        case OPT_URL:
            if (strncmp(optarg, "http://", 7) && strncmp(optarg, "https://", 8))
                return bad_value("--url", optarg, "expected http://HOST:PORT or https://...");
            o->url = optarg;
            break;
        case OPT_MODEL: o->model = optarg; break;
        case OPT_ENDPOINT:
            if (!strcmp(optarg, "completions")) o->endpoint = BENCH_ENDPOINT_COMPLETIONS;
            else if (!strcmp(optarg, "chat")) o->endpoint = BENCH_ENDPOINT_CHAT;
            else return bad_value("--endpoint", optarg, "expected completions or chat");
            break;
        case OPT_NUM_PROMPTS:
            if (!parse_int(optarg, 1, 10000000, &v)) return bad_value("--num-prompts", optarg, "expected an integer >= 1");
            o->num_prompts = (int32_t)v;
            break;
        case OPT_RATE: {
            char *end;
            errno = 0;
            double r = strtod(optarg, &end);
            if (errno || end == optarg || *end || !(r > 0))
                return bad_value("--request-rate", optarg, "expected requests per second > 0, or inf");
            o->request_rate = r;
            break;
        }
        case OPT_CONCURRENCY:
            if (!parse_int(optarg, 1, 1000000, &v)) return bad_value("--max-concurrency", optarg, "expected an integer >= 1");
            o->max_concurrency = (int32_t)v;
            break;
        case OPT_INPUT_LEN:
            if (!parse_int(optarg, 1, 10000000, &v)) return bad_value("--input-len", optarg, "expected an integer >= 1");
            o->input_len = (int32_t)v;
            break;
        case OPT_PREFIX_LEN:
            if (!parse_int(optarg, 0, 10000000, &v)) return bad_value("--prefix-len", optarg, "expected an integer >= 0");
            o->prefix_len = (int32_t)v;
            break;
        case OPT_OUTPUT_LEN:
            if (!parse_int(optarg, 1, 10000000, &v)) return bad_value("--output-len", optarg, "expected an integer >= 1");
            o->output_len = (int32_t)v;
            break;
        case OPT_SEED: {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(optarg, &end, 10);
            if (errno || end == optarg || *end || optarg[0] == '-')
                return bad_value("--seed", optarg, "expected an integer >= 0");
            o->seed = s;
            break;
        }
        case OPT_API_KEY: o->api_key = optarg; break;
        case OPT_JSON: o->json_path = optarg; break;
        case OPT_EXTRA_BODY: o->extra_body_text = optarg; break;
        case OPT_TIMEOUT: {
            char *end;
            errno = 0;
            double t = strtod(optarg, &end);
            if (errno || end == optarg || *end || !(t > 0) || !isfinite(t))
                return bad_value("--timeout", optarg, "expected seconds > 0");
            o->timeout_s = t;
            break;
        }
        case 'h': print_help(stdout); return 0;
        case ':':
            fprintf(stderr, CMD ": option '%s' needs a value (see --help)\n", name);
            return 2;
        default:
            fprintf(stderr, CMD ": unknown option '%s' (see --help)\n", name);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, CMD ": unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    if (o->prefix_len > o->input_len) {
        fprintf(stderr, CMD ": --prefix-len %d is longer than --input-len %d\n", o->prefix_len, o->input_len);
        return 2;
    }
    return -1;
}

/* The base URL without a trailing '/' or '/v1' (malloc'd). */
static char *base_url(const char *url) {
    char *b = strdup(url);
    if (!b) return NULL;
    size_t n = strlen(b);
    while (n > 0 && b[n - 1] == '/') b[--n] = '\0';
    if (n >= 3 && !strcmp(b + n - 3, "/v1")) b[n -= 3] = '\0';
    return b;
}

/* Builds prompt i: prefix_len shared words, then input_len - prefix_len words of its own. */
static char **make_prompts(const serve_options *o) {
    char **prompts = calloc((size_t)o->num_prompts, sizeof *prompts);
    char *prefix = NULL;
    if (!prompts) return NULL;
    uint64_t rng = o->seed * 0x9E3779B97F4A7C15ull + 1;
    if (o->prefix_len > 0 && bench_prompt_make(&rng, o->prefix_len, &prefix)) goto fail;
    for (int32_t i = 0; i < o->num_prompts; i++) {
        char *own = NULL;
        if (bench_prompt_make(&rng, o->input_len - o->prefix_len, &own)) goto fail;
        if (!prefix) {
            prompts[i] = own;
            continue;
        }
        size_t n = strlen(prefix) + strlen(own) + 2;
        prompts[i] = malloc(n);
        if (prompts[i]) snprintf(prompts[i], n, "%s%s%s", prefix, own[0] ? " " : "", own);
        free(own);
        if (!prompts[i]) goto fail;
    }
    free(prefix);
    return prompts;
fail:
    for (int32_t i = 0; i < o->num_prompts; i++) free(prompts[i]);
    free(prompts);
    free(prefix);
    return NULL;
}

static void on_progress(void *ctx, int32_t n_done, int32_t n_total) {
    (void)ctx;
    fprintf(stderr, "\r  %d/%d requests done", n_done, n_total);
    if (n_done == n_total) fputc('\n', stderr);
}

static void print_stat(FILE *out, const char *name, const bench_stat *s) {
    char label[64];
    snprintf(label, sizeof label, "Mean %s (ms):", name);
    fprintf(out, "%-40s %.2f\n", label, s->mean);
    snprintf(label, sizeof label, "Median %s (ms):", name);
    fprintf(out, "%-40s %.2f\n", label, s->median);
    snprintf(label, sizeof label, "P99 %s (ms):", name);
    fprintf(out, "%-40s %.2f\n", label, s->p99);
}

static void print_table(FILE *out, const serve_options *o, const bench_summary *s,
                        const bench_run_info *info, const bench_result *results) {
    fprintf(out, "%s\n", "============ Serving Benchmark Result ============");
    fprintf(out, "%-40s %d\n", "Successful requests:", s->n_completed);
    fprintf(out, "%-40s %d\n", "Failed requests:", s->n_failed);
    if (o->max_concurrency > 0) fprintf(out, "%-40s %d\n", "Maximum request concurrency:", o->max_concurrency);
    if (isfinite(o->request_rate)) fprintf(out, "%-40s %.2f\n", "Request rate configured (req/s):", o->request_rate);
    else fprintf(out, "%-40s %s\n", "Request rate configured (req/s):", "inf");
    fprintf(out, "%-40s %.2f\n", "Benchmark duration (s):", s->duration_s);
    fprintf(out, "%-40s %lld\n", s->input_from_usage ? "Total input tokens:" : "Total input tokens (words, no usage):",
            (long long)s->total_input_tokens);
    fprintf(out, "%-40s %lld\n", "Total generated tokens:", (long long)s->total_output_tokens);
    fprintf(out, "%-40s %.2f\n", "Request throughput (req/s):", s->request_throughput);
    fprintf(out, "%-40s %.2f\n", "Output token throughput (tok/s):", s->output_throughput);
    fprintf(out, "%-40s %.2f\n", "Total token throughput (tok/s):", s->total_token_throughput);
    fprintf(out, "%-40s %d\n", "Peak concurrent requests:", info->peak_in_flight);
    fprintf(out, "%s\n", "---------------Time to First Token----------------");
    print_stat(out, "TTFT", &s->ttft);
    fprintf(out, "%s\n", "-----Time per Output Token (excl. 1st token)------");
    print_stat(out, "TPOT", &s->tpot);
    fprintf(out, "%s\n", "---------------Inter-token Latency----------------");
    print_stat(out, "ITL", &s->itl);
    fprintf(out, "%s\n", "----------------End-to-end Latency----------------");
    print_stat(out, "E2EL", &s->e2el);
    fprintf(out, "%s\n", "==================================================");
    if (s->first_error_index >= 0)
        fprintf(out, "First error (request %d): %s\n", s->first_error_index,
                results[s->first_error_index].error ? results[s->first_error_index].error : "out of memory");
}

static void set_stat(json_t *root, const char *name, const bench_stat *s) {
    char key[64];
    snprintf(key, sizeof key, "mean_%s_ms", name);
    json_object_set_new(root, key, json_real(s->mean));
    snprintf(key, sizeof key, "median_%s_ms", name);
    json_object_set_new(root, key, json_real(s->median));
    snprintf(key, sizeof key, "std_%s_ms", name);
    json_object_set_new(root, key, json_real(s->std));
    snprintf(key, sizeof key, "p99_%s_ms", name);
    json_object_set_new(root, key, json_real(s->p99));
}

/* Writes the JSON report; returns false (after a one-line message) if it could not. */
static bool write_json(const serve_options *o, const char *url, const char *model,
                       const bench_request *requests, const bench_result *results,
                       const bench_summary *s, const bench_run_info *info) {
    json_t *root = json_object();
    char date[32];
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    json_object_set_new(root, "date", json_string(date));
    json_object_set_new(root, "url", json_string(url));
    json_object_set_new(root, "endpoint", json_string(o->endpoint == BENCH_ENDPOINT_CHAT ? "chat" : "completions"));
    json_object_set_new(root, "model", model ? json_string(model) : json_null());
    json_object_set_new(root, "num_prompts", json_integer(o->num_prompts));
    json_object_set_new(root, "request_rate", isfinite(o->request_rate) ? json_real(o->request_rate) : json_string("inf"));
    json_object_set_new(root, "max_concurrency", o->max_concurrency > 0 ? json_integer(o->max_concurrency) : json_null());
    json_object_set_new(root, "input_len", json_integer(o->input_len));
    json_object_set_new(root, "prefix_len", json_integer(o->prefix_len));
    json_object_set_new(root, "output_len", json_integer(o->output_len));
    json_object_set_new(root, "seed", json_integer((json_int_t)o->seed));
    json_object_set_new(root, "duration", json_real(s->duration_s));
    json_object_set_new(root, "completed", json_integer(s->n_completed));
    json_object_set_new(root, "failed", json_integer(s->n_failed));
    json_object_set_new(root, "total_input_tokens", json_integer(s->total_input_tokens));
    json_object_set_new(root, "input_tokens_source", json_string(s->input_from_usage ? "usage" : "words"));
    json_object_set_new(root, "total_output_tokens", json_integer(s->total_output_tokens));
    json_object_set_new(root, "request_throughput", json_real(s->request_throughput));
    json_object_set_new(root, "output_throughput", json_real(s->output_throughput));
    json_object_set_new(root, "total_token_throughput", json_real(s->total_token_throughput));
    json_object_set_new(root, "peak_concurrent_requests", json_integer(info->peak_in_flight));
    set_stat(root, "ttft", &s->ttft);
    set_stat(root, "tpot", &s->tpot);
    set_stat(root, "itl", &s->itl);
    set_stat(root, "e2el", &s->e2el);
    const bench_result *first = s->first_error_index >= 0 ? &results[s->first_error_index] : NULL;
    json_object_set_new(root, "first_error", first ? json_string(first->error ? first->error : "out of memory") : json_null());
    json_t *ttfts = json_array(), *itls = json_array(), *e2els = json_array(), *in_lens = json_array(),
           *out_lens = json_array(), *errors = json_array(), *sent = json_array();
    for (int32_t i = 0; i < o->num_prompts; i++) {
        const bench_result *r = &results[i];
        json_t *gaps = json_array();
        if (r->success)
            for (int32_t k = 0; k < r->n_itl; k++) json_array_append_new(gaps, json_real(r->itl_s[k]));
        json_array_append_new(itls, gaps);
        json_array_append_new(ttfts, json_real(r->success ? r->ttft_s : 0.0));
        json_array_append_new(e2els, json_real(r->success ? r->e2e_s : 0.0));
        json_array_append_new(in_lens, json_integer(r->n_prompt_tokens >= 0 ? r->n_prompt_tokens
                                                                            : requests[i].n_prompt_estimate));
        json_array_append_new(out_lens, json_integer(r->success ? r->n_output_tokens : 0));
        json_array_append_new(errors, json_string(r->success ? "" : r->error ? r->error : "out of memory"));
        json_array_append_new(sent, json_real(r->sent_s));
    }
    json_object_set_new(root, "ttfts", ttfts);
    json_object_set_new(root, "itls", itls);
    json_object_set_new(root, "e2els", e2els);
    json_object_set_new(root, "input_lens", in_lens);
    json_object_set_new(root, "output_lens", out_lens);
    json_object_set_new(root, "errors", errors);
    json_object_set_new(root, "send_times", sent);
    size_t flags = JSON_INDENT(1) | JSON_REAL_PRECISION(12);
    int rc = !strcmp(o->json_path, "-") ? json_dumpf(root, stdout, flags) : json_dump_file(root, o->json_path, flags);
    if (rc == 0 && !strcmp(o->json_path, "-")) fputc('\n', stdout);
    json_decref(root);
    if (rc != 0) {
        fprintf(stderr, CMD ": --json: cannot write '%s'\n", o->json_path);
        return false;
    }
    return true;
}

int cmd_bench_serve(int argc, char **argv) {
    serve_options o;
    int rc = parse_options(argc, argv, &o);
    if (rc >= 0) return rc;
    json_t *extra = NULL;
    if (o.extra_body_text) {
        json_error_t jerr;
        extra = json_loads(o.extra_body_text, 0, &jerr);
        if (!json_is_object(extra)) {
            fprintf(stderr, CMD ": --extra-body: not a JSON object (%s)\n", extra ? "another JSON value" : jerr.text);
            json_decref(extra);
            return 2;
        }
    }
    char *base = base_url(o.url), *fetched_model = NULL, *url = NULL;
    char **prompts = NULL;
    bench_request *requests = NULL;
    bench_result *results = NULL;
    rc = 1;
    if (!base) goto oom;
    if (!o.model) {
        if (bench_fetch_model(base, o.api_key, o.timeout_s, &fetched_model)) {
            fprintf(stderr, CMD ": cannot find the model name (give --model): %s\n", pagoda_last_error());
            goto done;
        }
        o.model = fetched_model;
    }
    size_t url_len = strlen(base) + 32;
    url = malloc(url_len);
    if (!url) goto oom;
    snprintf(url, url_len, "%s%s", base, o.endpoint == BENCH_ENDPOINT_CHAT ? "/v1/chat/completions" : "/v1/completions");
    prompts = make_prompts(&o);
    requests = calloc((size_t)o.num_prompts, sizeof *requests);
    results = calloc((size_t)o.num_prompts, sizeof *results);
    if (!prompts || !requests || !results) goto oom;
    for (int32_t i = 0; i < o.num_prompts; i++) requests[i] = (bench_request){prompts[i], o.input_len};

    char rate[32];
    if (isfinite(o.request_rate)) snprintf(rate, sizeof rate, "%g req/s (Poisson)", o.request_rate);
    else snprintf(rate, sizeof rate, "inf (all at once)");
    fprintf(stderr, CMD ": %s model '%s': %d prompts of %d words, %d output tokens, rate %s, ",
            url, o.model, o.num_prompts, o.input_len, o.output_len, rate);
    if (o.max_concurrency > 0) fprintf(stderr, "max concurrency %d\n", o.max_concurrency);
    else fprintf(stderr, "no concurrency limit\n");

    bench_config cfg = {.url = url, .endpoint = o.endpoint, .model = o.model, .api_key = o.api_key,
                        .max_tokens = o.output_len, .request_rate = o.request_rate,
                        .max_concurrency = o.max_concurrency, .timeout_s = o.timeout_s, .seed = o.seed,
                        .extra_body = extra, .on_progress = isatty(2) ? on_progress : NULL};
    bench_run_info info;
    bench_summary summary;
    if (bench_run(&cfg, requests, o.num_prompts, results, &info) ||
        bench_summarize(requests, results, o.num_prompts, info.duration_s, &summary)) {
        fprintf(stderr, CMD ": %s\n", pagoda_last_error());
        goto done;
    }
    bool json_stdout = o.json_path && !strcmp(o.json_path, "-");
    print_table(json_stdout ? stderr : stdout, &o, &summary, &info, results);
    fflush(stdout);
    if (o.json_path && !write_json(&o, url, o.model, requests, results, &summary, &info)) goto done;
    if (summary.n_failed > 0) {
        const char *first = results[summary.first_error_index].error;
        if (summary.n_completed == 0)
            fprintf(stderr, CMD ": all %d requests failed; first error: %s\n", o.num_prompts,
                    first ? first : "out of memory");
        else
            fprintf(stderr, CMD ": %d of %d requests failed; first error: %s\n", summary.n_failed,
                    o.num_prompts, first ? first : "out of memory");
    }
    rc = summary.n_completed > 0 ? 0 : 1;
    goto done;
oom:
    fprintf(stderr, CMD ": out of memory\n");
done:
    if (results)
        for (int32_t i = 0; i < o.num_prompts; i++) bench_result_free(&results[i]);
    if (prompts)
        for (int32_t i = 0; i < o.num_prompts; i++) free(prompts[i]);
    free(results);
    free(requests);
    free(prompts);
    free(url);
    free(fetched_model);
    free(base);
    json_decref(extra);
    return rc;
}
