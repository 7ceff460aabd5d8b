/* bench_client/bench_client.h - the client side of `pagoda bench serve`: a load generator for any
 * OpenAI-compatible server.
 *
 *   bench_run      sends n streaming requests (POST /v1/completions or /v1/chat/completions with
 *                  "stream": true and stream_options.include_usage) from one thread through libcurl's
 *                  multi interface. Request i is due at arrival[i] (Poisson arrivals: exponential
 *                  gaps of mean 1/rate, or all at t = 0) and is sent once fewer than max_concurrency
 *                  requests are in flight; its clock starts when it is sent (as in vLLM, waiting for a
 *                  concurrency slot is not latency). Each response is read as server-sent events.
 *   bench_sse_*    the SSE byte-stream parser: "data:" lines gathered until a blank line.
 *   bench_chunk_parse  one event's payload: text carried, usage, an error, or "[DONE]".
 *   bench_summarize / bench_percentile  the vLLM-style statistics.
 *   bench_prompt_make  a prompt of random common English words (about one token each).
 *
 * Timing of one request (all on CLOCK_MONOTONIC, seconds):
 *
 *   sent        first event with text      next ...           last byte
 *    |------ ttft ------|------ itl[0] ------|-- itl[1] --| ... |
 *    |-------------------------------- e2e -------------------------|
 *   tpot = (e2e - ttft) / (n_output_tokens - 1)   (only when n_output_tokens > 1)
 *
 * An event "carries text" when choices[0].text (completions) or choices[0].delta.content /
 * reasoning_content (chat) is a non-empty string; a first chat event holding only the role does not
 * count. n_output_tokens is usage.completion_tokens from the final usage chunk when the server sends
 * one, else the number of events that carried text. A request succeeds when the transfer completes,
 * the status is 200, no error event arrived and at least one event carried text.
 *
 * Not here: printing (the CLI's job), datasets other than random words, tokenizers (prompt lengths
 * come from usage.prompt_tokens, else the word count), non-streaming requests, goodput.
 */
#ifndef PAGODA_BENCH_CLIENT_H
#define PAGODA_BENCH_CLIENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pagoda.h" /* defines: pagoda_status */

typedef enum bench_endpoint {
    BENCH_ENDPOINT_COMPLETIONS, /* POST {base}/v1/completions, "prompt" */
    BENCH_ENDPOINT_CHAT,        /* POST {base}/v1/chat/completions, one user message */
} bench_endpoint;

typedef struct bench_config {
    const char *url;           /* the endpoint's full URL, e.g. http://127.0.0.1:8080/v1/completions */
    bench_endpoint endpoint;
    const char *model;         /* "model" field; NULL: left out */
    const char *api_key;       /* sent as "Authorization: Bearer KEY"; NULL: no header */
    int32_t max_tokens;        /* max_tokens (and max_completion_tokens for chat); ignore_eos is set */
    double request_rate;       /* mean arrivals per second; <= 0 or infinite: all at t = 0 */
    int32_t max_concurrency;   /* requests in flight at most; 0: no limit */
    double timeout_s;          /* per request, whole transfer; 0: none */
    uint64_t seed;             /* for the arrival gaps */
    json_t *extra_body;        /* object merged into every request body (borrowed), or NULL */
    /* Called after each request finishes (optional). */
    void (*on_progress)(void *ctx, int32_t n_done, int32_t n_total);
    void *progress_ctx;
} bench_config;

typedef struct bench_request {
    const char *prompt;        /* the prompt text (borrowed) */
    int32_t n_prompt_estimate; /* its length in tokens as far as the client knows (word count) */
} bench_request;

typedef struct bench_result {
    bool success;
    char *error;               /* one line, malloc'd; NULL on success */
    double scheduled_s;        /* arrival time, from the benchmark's start */
    double sent_s;             /* when it was sent (>= scheduled_s when waiting for a slot) */
    double ttft_s;             /* 0 when no text arrived */
    double e2e_s;              /* sent to last byte */
    double *itl_s;             /* [n_itl] gaps between consecutive text events */
    int32_t n_itl, cap_itl;
    int32_t n_text_events;     /* events that carried text */
    int32_t n_output_tokens;   /* usage.completion_tokens, else n_text_events */
    int32_t n_prompt_tokens;   /* usage.prompt_tokens; -1 when the server sent no usage */
    bool usage_seen;
} bench_result;

typedef struct bench_run_info {
    double duration_s;          /* first send to last completion */
    int32_t peak_in_flight;     /* most requests in flight at once */
} bench_run_info;

/* Sends every request and fills results[0..n-1] (zeroed first; free each with bench_result_free).
 * A failed request is a result with success false, never an error of the run.
 * Errors: PAGODA_ERR_INVALID_ARGUMENT (no url, n < 1, max_tokens < 1, extra_body not an object),
 * PAGODA_ERR_OUT_OF_MEMORY, PAGODA_ERR_INTERNAL (libcurl could not be set up). */
pagoda_status bench_run(const bench_config *cfg, const bench_request *requests, int32_t n,
                        bench_result *results, bench_run_info *info);
void bench_result_free(bench_result *r);

/* GET {base_url}/v1/models and returns the first model's id in *out_id (malloc'd). Errors:
 * PAGODA_ERR_IO (unreachable, HTTP error: the message says which), PAGODA_ERR_FORMAT (no model
 * listed), PAGODA_ERR_OUT_OF_MEMORY. */
pagoda_status bench_fetch_model(const char *base_url, const char *api_key, double timeout_s,
                                char **out_id);

/* ---- server-sent events ---- */

typedef struct bench_sse {
    char *line;                 /* [line_len] the unfinished line */
    size_t line_len, line_cap;
    char *data;                 /* [data_len] data of the current event ("data:" lines, '\n'-joined) */
    size_t data_len, data_cap;
    bool has_data;
    bool skip_lf;               /* the last buffer ended in CR: drop a leading LF */
} bench_sse;

/* Receives one event's data (NUL-terminated, len bytes); returns false to stop parsing. */
typedef bool (*bench_sse_event_fn)(void *ctx, const char *data, size_t len);

/* Feeds bytes. Lines end with \n, \r\n or \r; "data:" lines (one optional space after the colon)
 * accumulate; a blank line dispatches the event; other fields and ":" comments are ignored. Returns
 * false if the callback stopped, a line exceeded 16 MiB, or memory ran out. */
bool bench_sse_feed(bench_sse *s, const char *bytes, size_t n, bench_sse_event_fn fn, void *ctx);
/* At end of stream: dispatches an event whose blank line never came. Same return. */
bool bench_sse_finish(bench_sse *s, bench_sse_event_fn fn, void *ctx);
void bench_sse_free(bench_sse *s);

typedef struct bench_chunk {
    bool done;                  /* the payload was [DONE] */
    bool has_text;              /* carried a non-empty text / delta content */
    bool has_usage;
    int64_t prompt_tokens;      /* from usage, when has_usage (-1 if absent there) */
    int64_t completion_tokens;
    char error[256];            /* non-empty: an error event, or a payload that is not JSON */
} bench_chunk;

/* Interprets one event's payload for the endpoint. Never fails: problems land in out->error. */
void bench_chunk_parse(const char *data, size_t len, bench_endpoint endpoint, bench_chunk *out);

/* ---- statistics ---- */

typedef struct bench_stat {
    double mean, median, std, p99; /* ms; all 0 when n == 0 */
    int64_t n;
} bench_stat;

typedef struct bench_summary {
    int32_t n_completed, n_failed;
    double duration_s;
    int64_t total_input_tokens;    /* over completed requests */
    int64_t total_output_tokens;
    bool input_from_usage;         /* every completed request reported usage.prompt_tokens */
    double request_throughput;     /* completed / duration */
    double output_throughput;      /* output tokens / duration */
    double total_token_throughput; /* (input + output tokens) / duration */
    bench_stat ttft, tpot, itl, e2el;
    int32_t first_error_index;     /* -1 when none failed */
} bench_summary;

/* The p-th percentile (0..100) of sorted[0..n-1] with linear interpolation between closest ranks
 * (numpy's default); 0 when n == 0. */
double bench_percentile(const double *sorted, size_t n, double p);
/* Sorts values in place and fills *out with mean, median, population std and p99, each times scale. */
void bench_stat_compute(double *values, size_t n, double scale, bench_stat *out);
/* Errors: PAGODA_ERR_OUT_OF_MEMORY. */
pagoda_status bench_summarize(const bench_request *requests, const bench_result *results, int32_t n,
                              double duration_s, bench_summary *out);

/* ---- prompts ---- */

/* A prompt of n_words random words separated by spaces, drawn with *rng (a splitmix64 state that
 * advances). *out is malloc'd. Errors: PAGODA_ERR_OUT_OF_MEMORY. */
pagoda_status bench_prompt_make(uint64_t *rng, int32_t n_words, char **out);
/* Uniform in [0, 1) from a splitmix64 state. */
double bench_rng_uniform(uint64_t *rng);

#endif
