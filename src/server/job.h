/* server/job.h - the engine thread and the per-request queues between it and the HTTP threads.
 *
 *   HTTP thread:  server_job_new -> server_engine_submit -> wait on job->cv, read samples -> release
 *   engine thread: drains submissions (pagoda_add_request) and cancellations (pagoda_abort), runs
 *                  pagoda_step while there is work (else sleeps on a condition variable), and
 *                  appends each output's text (the engine withholds stop strings) and logprobs to
 *                  its sample.
 *
 * A job's outputs grow monotonically under job->mu (text appended, counts raised, finished set);
 * readers remember how far they have read, so a slow reader gets the text of many steps at once.
 * A job is reference counted: the submitter's reference and the engine's; the last release frees it.
 * Only the engine thread calls pagoda_add_request / pagoda_step / pagoda_abort / pagoda_get_stats.
 */
#ifndef PAGODA_SERVER_JOB_H
#define PAGODA_SERVER_JOB_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "pagoda.h"          /* defines: pagoda_model, pagoda_sampling_params, pagoda_request_id */
#include "server/buf.h"      /* defines: server_buf */
#include "server/metrics.h"  /* defines: server_metrics */

typedef enum server_finish {
    SERVER_FINISH_NONE = 0,
    SERVER_FINISH_STOP,   /* end-of-generation token or a stop string */
    SERVER_FINISH_LENGTH, /* max_tokens, or the context is full */
    SERVER_FINISH_ABORT,  /* cancelled: client gone, or the server stopping */
    SERVER_FINISH_ERROR,  /* see job->error */
} server_finish;

const char *server_finish_name(server_finish f); /* "stop", "length", "abort", "error" */

/* One generated token's log-probability and its most likely alternatives (request.logprobs). */
typedef struct server_logprob {
    int32_t token;
    float logprob;
    int32_t n_top;
    pagoda_top_logprob top[20]; /* [n_top] */
} server_logprob;

typedef struct server_sample {
    server_buf text;       /* released text so far (stop strings withheld by the engine) */
    int32_t n_tokens;      /* tokens generated so far */
    server_finish finish;  /* NONE while running */
    bool engine_finished;  /* engine thread only: the engine reported it finished */
    server_logprob *logprobs; /* [n_logprobs] one per generated token, when asked for */
    int32_t n_logprobs, cap_logprobs;
} server_sample;

typedef struct server_job {
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* broadcast on every change to the outputs */
    int refs;               /* under mu */
    /* the request, fixed at submission */
    int32_t *prompt;        /* [n_prompt] owned */
    size_t n_prompt;
    pagoda_sampling_params sampling; /* .dola_layers points at dola_layers */
    char *dola_layers;               /* owned copy */
    int32_t priority;
    char **stop;            /* [n_stop] owned; sampling.stop points here */
    size_t n_stop;
    pagoda_logit_bias *logit_bias; /* [sampling.n_logit_bias] owned copy */
    int32_t *stop_token_ids;       /* [sampling.n_stop_token_ids] owned copy */
    double t_arrival;       /* seconds, CLOCK_MONOTONIC */
    atomic_bool cancel;     /* set by the HTTP side: abort it */
    /* outputs, under mu */
    server_sample *samples; /* [n_samples] */
    int32_t n_samples;
    int32_t n_cached;       /* prompt tokens reused from the prefix cache */
    bool done;              /* every sample finished (or the job failed / was aborted) */
    int error_http;         /* when it failed: an HTTP status (400, 413, 500, 503) */
    char error[256];
    uint64_t version;       /* bumped at every change */
    /* engine thread only */
    pagoda_request_id id;
    bool added;
    double t_scheduled, t_first_token, t_last_token;
    struct server_job *next_pending;
} server_job;

/* A job for `prompt` (copied) with copies of the stop strings and of sp's arrays (logit bias, stop
 * token ids); one reference (the caller's). NULL when out of memory. */
server_job *server_job_new(const int32_t *prompt, size_t n_prompt, const pagoda_sampling_params *sp, int32_t priority,
                           char *const *stop, size_t n_stop, double t_arrival);
void server_job_release(server_job *job);
/* Waits until the job changed past *seen_version or is done, or `timeout_s` passed; returns
 * with job->mu held either way, *seen_version updated. */
void server_job_wait_locked(server_job *job, uint64_t *seen_version, double timeout_s);

typedef struct server_engine server_engine;

typedef struct server_engine_snapshot {
    pagoda_engine_stats stats;
    int32_t n_pending;      /* submitted, not yet handed to the engine */
    int32_t n_active;       /* in the engine */
} server_engine_snapshot;

/* Starts the engine thread on `model` (not owned). Metrics (may be NULL) get the latencies. */
pagoda_status server_engine_start(pagoda_model *model, server_metrics *metrics, server_engine **out);
/* Hands a job to the engine thread (which takes a reference). False when the engine is stopping. */
bool server_engine_submit(server_engine *e, server_job *job);
/* Asks the engine to abort the job (a no-op if it is done). */
void server_engine_cancel(server_engine *e, server_job *job);
/* Requests and KV usage as of the engine's last iteration. */
void server_engine_snapshot_get(server_engine *e, server_engine_snapshot *out);
/* Fails every job still running (503 "shutting down"), stops and joins the engine thread; later
 * submissions are refused and cancellations ignored. server_engine_free then frees it (call it once
 * no HTTP thread can reach the engine any more). */
void server_engine_stop(server_engine *e);
void server_engine_free(server_engine *e);

double server_now(void); /* CLOCK_MONOTONIC seconds */

#endif
