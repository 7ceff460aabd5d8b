/* bench_client/bench_client.c - sending the benchmark's requests and timing their streamed answers.
 *
 * One thread drives every transfer through libcurl's multi interface:
 *
 *   loop until every request is done:
 *     send each request whose arrival time has come while fewer than max_concurrency are in flight
 *     curl_multi_perform              (body bytes -> on_body -> SSE parser -> on_event: timestamps)
 *     collect finished transfers      (finish: success or a one-line error)
 *     curl_multi_poll until socket activity or the next arrival
 *
 * Every body byte is timestamped when libcurl hands it over, so events that arrive in one read share a
 * timestamp (as they do for any client). Proxies from the environment are not used (like vLLM's
 * aiohttp session): a benchmark measures the server, not a proxy. "Expect: 100-continue" is turned off
 * so a long prompt does not wait for a 100 response before its body is sent.
 * See bench_client.h for the definitions of the measured times. */
#include <curl/curl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_client/bench_client.h" /* defines: bench_run, bench_config, bench_result, bench_sse */
#include "core/error.h"                /* defines: error_set */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct bench_conn {
    CURL *easy;
    struct curl_slist *headers;
    char *body;                  /* the request's JSON */
    bench_endpoint endpoint;
    bench_result *out;
    double t_sent;               /* absolute (CLOCK_MONOTONIC seconds) */
    double t_last_text;          /* absolute time of the last event that carried text */
    double t_bytes;              /* absolute time the bytes being parsed arrived */
    long http_status;            /* 0 until the first body bytes */
    bool got_text;
    char stream_error[256];      /* the first error event, or a parser failure */
    char head[512];              /* [head_len] the body's first bytes, for error messages */
    size_t head_len;
    bench_sse sse;
    char errbuf[CURL_ERROR_SIZE];
} bench_conn;

static bool push_itl(bench_result *r, double gap) {
    if (r->n_itl == r->cap_itl) {
        int32_t cap = r->cap_itl ? r->cap_itl * 2 : 64;
        double *p = realloc(r->itl_s, (size_t)cap * sizeof *p);
        if (!p) return false;
        r->itl_s = p;
        r->cap_itl = cap;
    }
    r->itl_s[r->n_itl++] = gap;
    return true;
}

static bool on_event(void *ctx, const char *data, size_t len) {
    bench_conn *c = ctx;
    bench_result *r = c->out;
    bench_chunk ch;
    bench_chunk_parse(data, len, c->endpoint, &ch);
    if (ch.error[0] && !c->stream_error[0]) snprintf(c->stream_error, sizeof c->stream_error, "%s", ch.error);
    if (ch.has_text) {
        if (!c->got_text) {
            r->ttft_s = c->t_bytes - c->t_sent;
            c->got_text = true;
        } else if (!push_itl(r, c->t_bytes - c->t_last_text)) {
            snprintf(c->stream_error, sizeof c->stream_error, "out of memory");
            return false;
        }
        c->t_last_text = c->t_bytes;
        r->n_text_events++;
    }
    if (ch.has_usage) {
        r->usage_seen = true;
        r->n_output_tokens = (int32_t)ch.completion_tokens;
        r->n_prompt_tokens = (int32_t)ch.prompt_tokens;
    }
    return true;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata) {
    bench_conn *c = userdata;
    size_t n = size * nmemb;
    c->t_bytes = now_s();
    if (c->head_len + 1 < sizeof c->head) {
        size_t k = sizeof c->head - 1 - c->head_len;
        if (k > n) k = n;
        memcpy(c->head + c->head_len, ptr, k);
        c->head_len += k;
        c->head[c->head_len] = '\0';
    }
    if (c->http_status == 0) curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &c->http_status);
    if (c->http_status != 200) return n; /* an error body: only its head is kept */
    if (!bench_sse_feed(&c->sse, ptr, n, on_event, c)) {
        if (!c->stream_error[0])
            snprintf(c->stream_error, sizeof c->stream_error, "a streamed line is over 16 MiB");
        return 0; /* aborts the transfer */
    }
    return n;
}

/* Records a one-line error for a failed request (newlines and tabs become spaces). */
static void set_error(bench_result *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(bench_result *r, const char *fmt, ...) {
    char buf[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    for (char *p = buf; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t') *p = ' ';
    free(r->error);
    r->error = strdup(buf); /* NULL only when out of memory; success stays false either way */
    r->success = false;
}

/* The message of an OpenAI-shaped error body, else its first bytes. */
static void error_body_message(const char *head, size_t len, char *out, size_t cap) {
    json_t *root = json_loadb(head, len, 0, NULL);
    json_t *err = root ? json_object_get(root, "error") : NULL;
    json_t *msg = json_is_object(err) ? json_object_get(err, "message") : err;
    if (!json_is_string(msg)) msg = root ? json_object_get(root, "message") : NULL;
    if (!json_is_string(msg)) msg = root ? json_object_get(root, "detail") : NULL;
    if (json_is_string(msg)) snprintf(out, cap, "%s", json_string_value(msg));
    else snprintf(out, cap, "%.200s", len ? head : "(empty body)");
    json_decref(root);
}

/* Decides the outcome of a finished transfer. */
static void conn_finish(bench_conn *c, CURLcode code, double t_end) {
    bench_result *r = c->out;
    c->t_bytes = t_end;
    if (code == CURLE_OK && c->http_status == 200) bench_sse_finish(&c->sse, on_event, c);
    r->e2e_s = t_end - c->t_sent;
    if (c->http_status == 0) curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &c->http_status);
    char msg[300];
    if (c->stream_error[0]) {
        set_error(r, "%s", c->stream_error);
    } else if (code != CURLE_OK) {
        set_error(r, "%s", c->errbuf[0] ? c->errbuf : curl_easy_strerror(code));
    } else if (c->http_status != 200) {
        error_body_message(c->head, c->head_len, msg, sizeof msg);
        set_error(r, "HTTP %ld: %s", c->http_status, msg);
    } else if (!c->got_text) {
        set_error(r, "no text was streamed (does the server stream?); the response began: %.120s",
                  c->head_len ? c->head : "(empty body)");
    } else {
        r->success = true;
        if (!r->usage_seen) r->n_output_tokens = r->n_text_events;
    }
}

static void conn_free(bench_conn *c) {
    if (c->easy) curl_easy_cleanup(c->easy);
    curl_slist_free_all(c->headers);
    free(c->body);
    bench_sse_free(&c->sse);
    c->easy = NULL;
    c->headers = NULL;
    c->body = NULL;
}

static char *request_body(const bench_config *cfg, const char *prompt) {
    json_t *o = json_object();
    if (!o) return NULL;
    if (cfg->model) json_object_set_new(o, "model", json_string(cfg->model));
    if (cfg->endpoint == BENCH_ENDPOINT_CHAT) {
        json_t *msg = json_pack("{s:s, s:s}", "role", "user", "content", prompt);
        json_object_set_new(o, "messages", json_pack("[o]", msg));
        json_object_set_new(o, "max_completion_tokens", json_integer(cfg->max_tokens));
    } else {
        json_object_set_new(o, "prompt", json_string(prompt));
    }
    json_object_set_new(o, "max_tokens", json_integer(cfg->max_tokens));
    json_object_set_new(o, "temperature", json_real(0.0));
    json_object_set_new(o, "ignore_eos", json_true());
    json_object_set_new(o, "stream", json_true());
    json_object_set_new(o, "stream_options", json_pack("{s:b}", "include_usage", 1));
    if (cfg->extra_body) json_object_update(o, cfg->extra_body);
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

static struct curl_slist *base_headers(const char *api_key, bool post) {
    struct curl_slist *h = NULL, *t;
    if (post) {
        if (!(t = curl_slist_append(h, "Content-Type: application/json"))) goto fail;
        h = t;
        if (!(t = curl_slist_append(h, "Accept: text/event-stream"))) goto fail;
        h = t;
        if (!(t = curl_slist_append(h, "Expect:"))) goto fail;
        h = t;
    }
    if (api_key && api_key[0]) {
        size_t n = strlen(api_key) + 32;
        char *line = malloc(n);
        if (!line) goto fail;
        snprintf(line, n, "Authorization: Bearer %s", api_key);
        t = curl_slist_append(h, line);
        free(line);
        if (!t) goto fail;
        h = t;
    }
    if (!h) h = curl_slist_append(NULL, "User-Agent: pagoda-bench-serve");
    return h;
fail:
    curl_slist_free_all(h);
    return NULL;
}

static void common_options(CURL *e, const char *url, double timeout_s, char *errbuf) {
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    curl_easy_setopt(e, CURLOPT_USERAGENT, "pagoda-bench-serve");
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
    if (timeout_s > 0) curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)ceil(timeout_s * 1000.0));
}

/* Prepares and adds request i; on failure records the error in its result and returns false. */
static bool conn_start(CURLM *multi, const bench_config *cfg, bench_conn *c, const char *prompt) {
    c->endpoint = cfg->endpoint;
    c->body = request_body(cfg, prompt);
    c->headers = base_headers(cfg->api_key, true);
    c->easy = curl_easy_init();
    if (!c->body || !c->headers || !c->easy) {
        set_error(c->out, "could not prepare the request (out of memory)");
        conn_free(c);
        return false;
    }
    CURL *e = c->easy;
    common_options(e, cfg->url, cfg->timeout_s, c->errbuf);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(c->body));
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(e, CURLOPT_PRIVATE, c);
    c->t_sent = now_s();
    if (curl_multi_add_handle(multi, e) != CURLM_OK) {
        set_error(c->out, "libcurl refused the transfer");
        conn_free(c);
        return false;
    }
    return true;
}

pagoda_status bench_run(const bench_config *cfg, const bench_request *requests, int32_t n,
                        bench_result *results, bench_run_info *info) {
    memset(info, 0, sizeof *info);
    if (!cfg->url || !cfg->url[0]) return error_set(PAGODA_ERR_INVALID_ARGUMENT, "bench: no URL");
    if (n < 1) return error_set(PAGODA_ERR_INVALID_ARGUMENT, "bench: no requests");
    if (cfg->max_tokens < 1) return error_set(PAGODA_ERR_INVALID_ARGUMENT, "bench: max_tokens < 1");
    if (cfg->extra_body && !json_is_object(cfg->extra_body))
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "bench: the extra body is not a JSON object");
    memset(results, 0, (size_t)n * sizeof *results);
    for (int32_t i = 0; i < n; i++) results[i].n_prompt_tokens = -1;

    double *arrival = malloc((size_t)n * sizeof *arrival);
    bench_conn *conns = calloc((size_t)n, sizeof *conns);
    if (!arrival || !conns) {
        free(arrival), free(conns);
        return error_set(PAGODA_ERR_OUT_OF_MEMORY, "bench: out of memory for %d requests", n);
    }
    /* Poisson process: exponential gaps of mean 1/rate; the first request goes at t = 0. */
    uint64_t rng = cfg->seed ^ 0xA5A5A5A5DEADBEEFull;
    bool paced = cfg->request_rate > 0 && isfinite(cfg->request_rate);
    arrival[0] = 0;
    for (int32_t i = 1; i < n; i++)
        arrival[i] = arrival[i - 1] + (paced ? -log(1.0 - bench_rng_uniform(&rng)) / cfg->request_rate : 0);

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        free(arrival), free(conns);
        return error_set(PAGODA_ERR_INTERNAL, "bench: libcurl could not be initialised");
    }
    CURLM *multi = curl_multi_init();
    if (!multi) {
        free(arrival), free(conns);
        curl_global_cleanup();
        return error_set(PAGODA_ERR_INTERNAL, "bench: libcurl could not be initialised");
    }
    int32_t next = 0, in_flight = 0, n_done = 0;
    double t0 = now_s();
    while (n_done < n) {
        double now = now_s() - t0;
        while (next < n && arrival[next] <= now && (cfg->max_concurrency <= 0 || in_flight < cfg->max_concurrency)) {
            bench_conn *c = &conns[next];
            c->out = &results[next];
            c->out->scheduled_s = arrival[next];
            c->out->sent_s = now_s() - t0;
            if (conn_start(multi, cfg, c, requests[next].prompt)) {
                in_flight++;
                if (in_flight > info->peak_in_flight) info->peak_in_flight = in_flight;
            } else {
                n_done++;
                if (cfg->on_progress) cfg->on_progress(cfg->progress_ctx, n_done, n);
            }
            next++;
        }
        int running = 0;
        curl_multi_perform(multi, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(multi, &left))) {
            if (msg->msg != CURLMSG_DONE) continue;
            bench_conn *c = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&c);
            CURLcode code = msg->data.result;
            conn_finish(c, code, now_s());
            curl_multi_remove_handle(multi, c->easy);
            conn_free(c);
            in_flight--;
            n_done++;
            if (cfg->on_progress) cfg->on_progress(cfg->progress_ctx, n_done, n);
        }
        if (n_done == n) break;
        int wait_ms = 1000;
        if (next < n && (cfg->max_concurrency <= 0 || in_flight < cfg->max_concurrency)) {
            double dt = arrival[next] - (now_s() - t0);
            wait_ms = dt <= 0 ? 0 : dt >= 1.0 ? 1000 : (int)ceil(dt * 1000.0);
        }
        if (wait_ms > 0) curl_multi_poll(multi, NULL, 0, wait_ms, NULL);
    }
    info->duration_s = now_s() - t0;
    curl_multi_cleanup(multi);
    curl_global_cleanup();
    free(arrival);
    free(conns);
    return PAGODA_OK;
}

void bench_result_free(bench_result *r) {
    if (!r) return;
    free(r->error);
    free(r->itl_s);
    r->error = NULL;
    r->itl_s = NULL;
    r->n_itl = r->cap_itl = 0;
}

typedef struct body_buf {
    char *data;
    size_t len, cap;
} body_buf;

static size_t on_models_body(char *ptr, size_t size, size_t nmemb, void *userdata) {
    body_buf *b = userdata;
    size_t n = size * nmemb;
    if (b->len + n + 1 > ((size_t)4 << 20)) return 0;
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->len + n + 1) * 2;
        char *p = realloc(b->data, cap);
        if (!p) return 0;
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

pagoda_status bench_fetch_model(const char *base_url, const char *api_key, double timeout_s,
                                char **out_id) {
    *out_id = NULL;
    size_t url_len = strlen(base_url) + 16;
    char *url = malloc(url_len);
    if (!url) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "out of memory");
    snprintf(url, url_len, "%s/v1/models", base_url);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        free(url);
        return error_set(PAGODA_ERR_INTERNAL, "libcurl could not be initialised");
    }
    CURL *e = curl_easy_init();
    struct curl_slist *headers = api_key && api_key[0] ? base_headers(api_key, false) : NULL;
    body_buf body = {0};
    char errbuf[CURL_ERROR_SIZE] = "";
    pagoda_status st = PAGODA_OK;
    if (!e) {
        st = error_set(PAGODA_ERR_INTERNAL, "libcurl could not be initialised");
        goto done;
    }
    common_options(e, url, timeout_s > 0 ? timeout_s : 30.0, errbuf);
    if (headers) curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_models_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &body);
    CURLcode code = curl_easy_perform(e);
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    if (code != CURLE_OK) {
        st = error_set(PAGODA_ERR_IO, "GET %s: %s", url, errbuf[0] ? errbuf : curl_easy_strerror(code));
        goto done;
    }
    if (status != 200) {
        char msg[300];
        error_body_message(body.data ? body.data : "", body.len, msg, sizeof msg);
        st = error_set(PAGODA_ERR_IO, "GET %s: HTTP %ld: %s", url, status, msg);
        goto done;
    }
    json_t *root = json_loadb(body.data ? body.data : "", body.len, 0, NULL);
    json_t *data = root ? json_object_get(root, "data") : NULL;
    json_t *id = json_object_get(json_array_get(data, 0), "id");
    if (!json_is_string(id)) {
        st = error_set(PAGODA_ERR_FORMAT, "GET %s: no model listed (expected {\"data\": [{\"id\": ...}]})", url);
    } else if (!(*out_id = strdup(json_string_value(id)))) {
        st = error_set(PAGODA_ERR_OUT_OF_MEMORY, "out of memory");
    }
    json_decref(root);
done:
    if (e) curl_easy_cleanup(e);
    curl_slist_free_all(headers);
    free(body.data);
    free(url);
    curl_global_cleanup();
    return st;
}
