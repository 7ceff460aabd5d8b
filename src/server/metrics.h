/* server/metrics.h - the server's Prometheus metrics, named after vLLM's under `pagoda:`:
 *   gauges      pagoda:num_requests_running, pagoda:num_requests_waiting, pagoda:kv_cache_usage_perc
 *               (0..1, as vLLM's), pagoda:num_requests_pending (accepted, not yet in the engine)
 *   counters    pagoda:prefix_cache_queries_total, pagoda:prefix_cache_hits_total (tokens),
 *               pagoda:prompt_tokens_total, pagoda:generation_tokens_total,
 *               pagoda:num_preemptions_total, pagoda:request_success_total{finished_reason=...}
 *               (stop, length, abort, error: every finished request is counted once)
 *   histograms  pagoda:time_to_first_token_seconds, pagoda:inter_token_latency_seconds,
 *               pagoda:e2e_request_latency_seconds, pagoda:request_queue_time_seconds
 * Every series carries model_name="...". Observations come from the engine thread; rendering
 * from HTTP threads; one mutex guards them.
 */
#ifndef PAGODA_SERVER_METRICS_H
#define PAGODA_SERVER_METRICS_H

#include <pthread.h>
#include <stdint.h>

#include "pagoda.h"     /* defines: pagoda_engine_stats */
#include "server/buf.h" /* defines: server_buf */

#define SERVER_HIST_MAX_BUCKETS 32

typedef struct server_histogram {
    const double *bounds;                     /* [n_bounds] upper bounds, increasing (+Inf implied) */
    int n_bounds;
    uint64_t counts[SERVER_HIST_MAX_BUCKETS]; /* [n_bounds + 1] per bucket, not cumulative */
    double sum;
    uint64_t count;
} server_histogram;

typedef enum server_metric_hist {
    SERVER_HIST_TTFT, SERVER_HIST_ITL, SERVER_HIST_E2E, SERVER_HIST_QUEUE, SERVER_HIST_COUNT,
} server_metric_hist;

typedef struct server_metrics {
    pthread_mutex_t mu;
    server_histogram hist[SERVER_HIST_COUNT];
    uint64_t finished[5]; /* by server_finish (index 0 unused) */
    char model_name[256]; /* label value, escaped for the exposition format */
} server_metrics;

void server_metrics_init(server_metrics *m, const char *model_name);
void server_metrics_free(server_metrics *m);
void server_metrics_observe(server_metrics *m, server_metric_hist h, double seconds);
void server_metrics_count_finished(server_metrics *m, int finish /* server_finish */);
/* Appends the exposition text. False when out of memory. */
bool server_metrics_render(server_metrics *m, const pagoda_engine_stats *stats, int32_t n_pending, server_buf *out);

#endif
