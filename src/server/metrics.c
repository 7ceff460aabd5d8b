/* server/metrics.c - histograms and the Prometheus text exposition (see metrics.h). Bucket bounds
 * are vLLM's, with finer low buckets for the inter-token latency of small models on CPUs. */
#include "server/metrics.h"

#include <string.h>

static const double ttft_bounds[] = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
                                     1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0};
static const double itl_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3,
                                    0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0};
static const double e2e_bounds[] = {0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0,
                                    30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};

static const struct {
    const char *name, *help;
} hist_info[SERVER_HIST_COUNT] = {
    {"time_to_first_token_seconds", "Histogram of time to first token in seconds."},
    {"inter_token_latency_seconds", "Histogram of inter-token latency in seconds."},
    {"e2e_request_latency_seconds", "Histogram of end to end request latency in seconds."},
    {"request_queue_time_seconds", "Histogram of time spent waiting before the first scheduled step in seconds."},
};

void server_metrics_init(server_metrics *m, const char *model_name) {
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
    m->hist[SERVER_HIST_TTFT] = (server_histogram){.bounds = ttft_bounds, .n_bounds = sizeof ttft_bounds / sizeof(double)};
    m->hist[SERVER_HIST_ITL] = (server_histogram){.bounds = itl_bounds, .n_bounds = sizeof itl_bounds / sizeof(double)};
    m->hist[SERVER_HIST_E2E] = (server_histogram){.bounds = e2e_bounds, .n_bounds = sizeof e2e_bounds / sizeof(double)};
    m->hist[SERVER_HIST_QUEUE] = (server_histogram){.bounds = e2e_bounds, .n_bounds = sizeof e2e_bounds / sizeof(double)};
    /* label values escape backslash, quote and newline */
    size_t at = 0;
    for (const char *p = model_name ? model_name : ""; *p && at + 3 < sizeof m->model_name; p++) {
        if (*p == '\\' || *p == '"') m->model_name[at++] = '\\';
        if (*p == '\n') {
            m->model_name[at++] = '\\';
            m->model_name[at++] = 'n';
            continue;
        }
        m->model_name[at++] = *p;
    }
    m->model_name[at] = '\0';
}

void server_metrics_free(server_metrics *m) { pthread_mutex_destroy(&m->mu); }

void server_metrics_observe(server_metrics *m, server_metric_hist h, double seconds) {
    if (!m || h < 0 || h >= SERVER_HIST_COUNT) return;
    if (seconds < 0) seconds = 0;
    pthread_mutex_lock(&m->mu);
    server_histogram *hg = &m->hist[h];
    int b = 0;
    while (b < hg->n_bounds && seconds > hg->bounds[b]) b++;
    hg->counts[b]++;
    hg->sum += seconds;
    hg->count++;
    pthread_mutex_unlock(&m->mu);
}

void server_metrics_count_finished(server_metrics *m, int finish) {
    if (!m || finish < 1 || finish > 4) return;
    pthread_mutex_lock(&m->mu);
    m->finished[finish]++;
    pthread_mutex_unlock(&m->mu);
}

static bool scalar(server_buf *out, const char *model, const char *name, const char *type, const char *help,
                   double value) {
    return server_buf_printf(out, "# HELP pagoda:%s %s\n# TYPE pagoda:%s %s\npagoda:%s{model_name=\"%s\"} %.17g\n",
                             name, help, name, type, name, model, value);
}

bool server_metrics_render(server_metrics *m, const pagoda_engine_stats *s, int32_t n_pending, server_buf *out) {
    const char *model = m->model_name;
    bool ok = scalar(out, model, "num_requests_running", "gauge", "Number of requests in model execution batches.",
                     s->n_running) &&
              scalar(out, model, "num_requests_waiting", "gauge", "Number of requests waiting to be processed.",
                     s->n_waiting) &&
              scalar(out, model, "num_requests_pending", "gauge",
                     "Number of requests accepted by the server but not yet handed to the engine.", n_pending) &&
              scalar(out, model, "kv_cache_usage_perc", "gauge", "KV-cache usage. 1 means 100 percent usage.",
                     s->kv_usage) &&
              scalar(out, model, "prefix_cache_queries_total", "counter",
                     "Prefix cache queries, in terms of number of queried tokens.", (double)s->prefix_queries) &&
              scalar(out, model, "prefix_cache_hits_total", "counter",
                     "Prefix cache hits, in terms of number of cached tokens.", (double)s->prefix_hits) &&
              scalar(out, model, "prompt_tokens_total", "counter", "Number of prefill tokens processed.",
                     (double)s->prompt_tokens) &&
              scalar(out, model, "generation_tokens_total", "counter", "Number of generation tokens processed.",
                     (double)s->generated_tokens) &&
              scalar(out, model, "num_preemptions_total", "counter", "Cumulative number of preemptions.",
                     (double)s->n_preemptions) &&
              scalar(out, model, "spec_decode_num_draft_tokens_total", "counter",
                     "Speculative decoding: draft tokens verified by the model.", (double)s->spec_proposed) &&
              scalar(out, model, "spec_decode_num_accepted_tokens_total", "counter",
                     "Speculative decoding: draft tokens accepted.", (double)s->spec_accepted);
    pthread_mutex_lock(&m->mu);
    static const char *reasons[5] = {"", "stop", "length", "abort", "error"};
    ok = ok && server_buf_puts(out, "# HELP pagoda:request_success_total Count of finished requests by reason.\n"
                                    "# TYPE pagoda:request_success_total counter\n");
    for (int r = 1; r < 5 && ok; r++)
        ok = server_buf_printf(out, "pagoda:request_success_total{finished_reason=\"%s\",model_name=\"%s\"} %llu\n",
                               reasons[r], model, (unsigned long long)m->finished[r]);
    for (int h = 0; h < SERVER_HIST_COUNT && ok; h++) {
        const server_histogram *hg = &m->hist[h];
        const char *name = hist_info[h].name;
        ok = server_buf_printf(out, "# HELP pagoda:%s %s\n# TYPE pagoda:%s histogram\n", name, hist_info[h].help, name);
        uint64_t cumulative = 0;
        for (int b = 0; b <= hg->n_bounds && ok; b++) {
            cumulative += hg->counts[b];
            if (b < hg->n_bounds)
                ok = server_buf_printf(out, "pagoda:%s_bucket{le=\"%g\",model_name=\"%s\"} %llu\n", name, hg->bounds[b],
                                       model, (unsigned long long)cumulative);
            else
                ok = server_buf_printf(out, "pagoda:%s_bucket{le=\"+Inf\",model_name=\"%s\"} %llu\n", name, model,
                                       (unsigned long long)cumulative);
        }
        ok = ok && server_buf_printf(out, "pagoda:%s_sum{model_name=\"%s\"} %.17g\npagoda:%s_count{model_name=\"%s\"} %llu\n",
                                     name, model, hg->sum, name, model, (unsigned long long)hg->count);
    }
    pthread_mutex_unlock(&m->mu);
    return ok;
}
