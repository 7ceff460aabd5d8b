/* tests/test_bench_client.c - the pieces of `pagoda bench serve` that need no server: the SSE parser
 * (expected events written by hand from the WHATWG event-stream rules, fed whole, byte by byte and in
 * random pieces), the OpenAI chunk interpretation, numpy-style percentiles and the summary (expected
 * values computed by hand from numpy's definitions), and the random-word prompts. The network side is
 * tested end to end by tests/cli/bench_serve.sh against tools/stub_sse_server.py. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_client/bench_client.h" /* defines: bench_sse_feed, bench_chunk_parse, bench_summarize */
#include "testlib.h"

typedef struct events {
    char items[16][64];
    int n;
} events;

static bool collect(void *ctx, const char *data, size_t len) {
    events *e = ctx;
    if (e->n < 16) snprintf(e->items[e->n], sizeof e->items[0], "%.*s", (int)len, data);
    e->n++;
    return true;
}

static const char stream[] = ": a comment\n"
                             "data: {\"a\":1}\n\n"
                             "event: message\r\ndata:two\r\ndata: lines\r\n\r\n"
                             "id: 5\rdata: cr\r\r"
                             "retry: 10\ndata:\n\n"
                             "data:  spaced\n\n"
                             "data: [DONE]\n\n"
                             "data: tail";
static const char *const expected[] = {"{\"a\":1}", "two\nlines", "cr", "", " spaced", "[DONE]", "tail"};
#define N_EXPECTED 7

/* Feeds the stream in pieces ending at the given cut points (ascending), then finishes. */
static void run_split(const size_t *cuts, int n_cuts, const char *how) {
    bench_sse s = {0};
    events e = {0};
    size_t len = strlen(stream), at = 0;
    bool ok = true;
    for (int i = 0; i <= n_cuts; i++) {
        size_t end = i < n_cuts ? cuts[i] : len;
        ok = ok && bench_sse_feed(&s, stream + at, end - at, collect, &e);
        at = end;
    }
    CHECK_MSG(ok, "%s: feed failed", how);
    CHECK_MSG(e.n == N_EXPECTED - 1, "%s: %d events before the end, expected %d", how, e.n, N_EXPECTED - 1);
    ok = bench_sse_finish(&s, collect, &e);
    CHECK_MSG(ok && e.n == N_EXPECTED, "%s: %d events after finish, expected %d", how, e.n, N_EXPECTED);
    for (int i = 0; i < N_EXPECTED && i < e.n; i++)
        CHECK_MSG(!strcmp(e.items[i], expected[i]), "%s: event %d is '%s', expected '%s'", how, i,
                  e.items[i], expected[i]);
    bench_sse_free(&s);
}

static void test_sse(void) {
    run_split(NULL, 0, "whole");
    size_t len = strlen(stream);
    size_t *cuts = malloc(len * sizeof *cuts);
    for (size_t i = 1; i < len; i++) cuts[i - 1] = i;
    run_split(cuts, (int)len - 1, "byte by byte");
    uint64_t rng = test_seed();
    for (int round = 0; round < 50; round++) {
        int n = 0;
        for (size_t i = 1; i < len; i++)
            if (test_rand_u64(&rng) % 5 == 0) cuts[n++] = i;
        char how[32];
        snprintf(how, sizeof how, "random split %d", round);
        run_split(cuts, n, how);
    }
    free(cuts);
    /* A CRLF cut between its CR and LF is one line end, not two (which would dispatch early). */
    bench_sse s = {0};
    events e = {0};
    CHECK(bench_sse_feed(&s, "data: x\r", 8, collect, &e) && e.n == 0);
    CHECK(bench_sse_feed(&s, "\ndata: y\r\n\r\n", 12, collect, &e));
    CHECK_MSG(e.n == 1 && !strcmp(e.items[0], "x\ny"), "CRLF split: %d events, first '%s'", e.n, e.items[0]);
    bench_sse_free(&s);
}

static void test_chunks(void) {
    bench_chunk c;
    const char *t;
    t = "{\"choices\":[{\"index\":0,\"text\":\" hi\",\"finish_reason\":null}]}";
    bench_chunk_parse(t, strlen(t), BENCH_ENDPOINT_COMPLETIONS, &c);
    CHECK(c.has_text && !c.has_usage && !c.done && !c.error[0]);
    t = "{\"choices\":[{\"index\":0,\"text\":\"\"}]}";
    bench_chunk_parse(t, strlen(t), BENCH_ENDPOINT_COMPLETIONS, &c);
    CHECK(!c.has_text && !c.error[0]);
    t = "{\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}";
    bench_chunk_parse(t, strlen(t), BENCH_ENDPOINT_CHAT, &c);
    CHECK(!c.has_text && !c.error[0]);
    t = "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}";
    bench_chunk_parse(t, strlen(t), BENCH_ENDPOINT_CHAT, &c);
    CHECK(c.has_text);
    bench_chunk_parse(t, strlen(t), BENCH_ENDPOINT_COMPLETIONS, &c); /* chat shape, wrong endpoint */
    CHECK(!c.has_text);
    t = "{\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"hmm\"}}]}";
    bench_chunk_parse(t, strlen(t), BENCH_ENDPOINT_CHAT, &c);
    CHECK(c.has_text);
    t = "{\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":8,\"total_tokens\":20}}";
    bench_chunk_parse(t, strlen(t), BENCH_ENDPOINT_CHAT, &c);
    CHECK(!c.has_text && c.has_usage && c.prompt_tokens == 12 && c.completion_tokens == 8);
    t = "{\"choices\":[{\"text\":\"x\"}],\"usage\":null}";
    bench_chunk_parse(t, strlen(t), BENCH_ENDPOINT_COMPLETIONS, &c);
    CHECK(c.has_text && !c.has_usage);
    t = "{\"error\":{\"message\":\"boom\",\"type\":\"server_error\"}}";
    bench_chunk_parse(t, strlen(t), BENCH_ENDPOINT_COMPLETIONS, &c);
    CHECK_MSG(!strcmp(c.error, "error event: boom"), "error: '%s'", c.error);
    bench_chunk_parse("[DONE] ", 7, BENCH_ENDPOINT_COMPLETIONS, &c);
    CHECK(c.done && !c.error[0]);
    bench_chunk_parse("not json", 8, BENCH_ENDPOINT_COMPLETIONS, &c);
    CHECK(c.error[0] && !c.has_text);
}

static bool near(double a, double b) { return fabs(a - b) <= 1e-9 * (1 + fabs(b)); }

static void test_stats(void) {
    /* numpy.percentile([1, 2, 3, 4], p): rank = p/100 * 3, linear between neighbours. */
    const double s4[] = {1, 2, 3, 4};
    CHECK(near(bench_percentile(s4, 4, 50), 2.5));
    CHECK(near(bench_percentile(s4, 4, 99), 3.97));
    CHECK(near(bench_percentile(s4, 4, 0), 1) && near(bench_percentile(s4, 4, 100), 4));
    CHECK(near(bench_percentile(s4, 1, 99), 1) && bench_percentile(s4, 0, 50) == 0);
    double v[] = {4, 1, 3, 2};
    bench_stat st;
    bench_stat_compute(v, 4, 1000, &st);
    CHECK(near(st.mean, 2500) && near(st.median, 2500) && near(st.p99, 3970) &&
          near(st.std, 1000 * sqrt(1.25)) && st.n == 4);
    bench_stat_compute(v, 0, 1000, &st);
    CHECK(st.mean == 0 && st.p99 == 0 && st.n == 0);

    /* Two completed requests and one failure, over 2 s. */
    double gaps[] = {0.1, 0.1, 0.1, 0.1};
    bench_request req[3] = {{"a", 10}, {"b", 10}, {"c", 10}};
    bench_result res[3] = {
        {.success = true, .ttft_s = 0.1, .e2e_s = 0.5, .itl_s = gaps, .n_itl = 4, .n_output_tokens = 5,
         .n_prompt_tokens = 7},
        {.success = true, .ttft_s = 0.2, .e2e_s = 0.4, .n_output_tokens = 1, .n_prompt_tokens = -1},
        {.success = false, .error = "HTTP 500: x", .n_prompt_tokens = -1},
    };
    bench_summary sum;
    CHECK(bench_summarize(req, res, 3, 2.0, &sum) == PAGODA_OK);
    CHECK(sum.n_completed == 2 && sum.n_failed == 1 && sum.first_error_index == 2);
    CHECK(sum.total_output_tokens == 6 && sum.total_input_tokens == 17 && !sum.input_from_usage);
    CHECK(near(sum.request_throughput, 1.0) && near(sum.output_throughput, 3.0) &&
          near(sum.total_token_throughput, 11.5));
    CHECK_MSG(near(sum.ttft.mean, 150) && near(sum.ttft.median, 150) && near(sum.ttft.p99, 199),
              "ttft %g %g %g", sum.ttft.mean, sum.ttft.median, sum.ttft.p99);
    CHECK_MSG(sum.tpot.n == 1 && near(sum.tpot.mean, 100), "tpot n %lld mean %g", (long long)sum.tpot.n,
              sum.tpot.mean); /* (0.5 - 0.1) / 4; the one-token request has no TPOT */
    CHECK(sum.itl.n == 4 && near(sum.itl.mean, 100) && near(sum.itl.std, 0));
    CHECK(near(sum.e2el.median, 450) && near(sum.e2el.p99, 499));
    CHECK(gaps[0] == 0.1 && res[0].itl_s == gaps); /* inputs untouched */
}

static void test_prompts(void) {
    uint64_t a = 42, b = 42, c = 43;
    char *p = NULL, *q = NULL, *r = NULL;
    CHECK(bench_prompt_make(&a, 50, &p) == PAGODA_OK && bench_prompt_make(&b, 50, &q) == PAGODA_OK &&
          bench_prompt_make(&c, 50, &r) == PAGODA_OK);
    CHECK(p && q && r && !strcmp(p, q) && strcmp(p, r));
    int words = 0;
    bool clean = p && p[0] != ' ' && p[strlen(p) - 1] != ' ' && !strstr(p, "  ");
    for (const char *s = p; s && *s; s++)
        if (*s != ' ' && (s == p || s[-1] == ' ')) words++;
    CHECK_MSG(words == 50 && clean, "%d words, clean %d: '%s'", words, clean, p ? p : "");
    free(p), free(q), free(r);
    CHECK(bench_prompt_make(&a, 0, &p) == PAGODA_OK && p && p[0] == '\0');
    free(p);
    double lo = 1, hi = 0, sum = 0;
    uint64_t u = 7;
    for (int i = 0; i < 10000; i++) {
        double x = bench_rng_uniform(&u);
        lo = x < lo ? x : lo, hi = x > hi ? x : hi, sum += x;
    }
    CHECK_MSG(lo >= 0 && hi < 1 && fabs(sum / 10000 - 0.5) < 0.02, "uniform: %g %g mean %g", lo, hi, sum / 10000);
}

int main(void) {
    test_sse();
    test_chunks();
    test_stats();
    test_prompts();
    return test_finish();
}
