/* server/job.c - the engine thread and per-request job queues (see job.h).
 *
 * The engine loop, each iteration:
 *   1. under e->mu: wait until there are submissions, cancellations, running requests or a stop;
 *      take the pending submissions;
 *   2. add each (a failure finishes the job with an error at once), abort cancelled jobs;
 *   3. pagoda_step if anything is unfinished; deliver each output to its job's sample;
 *   4. publish a stats snapshot for /metrics and admission control.
 * Active jobs are kept in submission order, which is request-id order, so outputs find their job
 * by binary search.
 */
#include "server/job.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double server_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

const char *server_finish_name(server_finish f) {
    switch (f) {
    case SERVER_FINISH_STOP: return "stop";
    case SERVER_FINISH_LENGTH: return "length";
    case SERVER_FINISH_ABORT: return "abort";
    case SERVER_FINISH_ERROR: return "error";
    case SERVER_FINISH_NONE: break;
    }
    return "none";
}

/* ---- Jobs ------------------------------------------------------------------------------------------ */
static void job_free(server_job *job) {
    for (int32_t i = 0; i < job->n_samples; i++) {
        server_buf_free(&job->samples[i].text);
        free(job->samples[i].logprobs);
    }
    free(job->samples);
    for (size_t i = 0; i < job->n_stop; i++) free(job->stop[i]);
    free(job->stop);
    free(job->logit_bias);
    free(job->stop_token_ids);
    free(job->prompt);
    free(job->dola_layers);
    pthread_cond_destroy(&job->cv);
    pthread_mutex_destroy(&job->mu);
    free(job);
}

server_job *server_job_new(const int32_t *prompt, size_t n_prompt, const pagoda_sampling_params *sp, int32_t priority,
                           char *const *stop, size_t n_stop, double t_arrival) {
    server_job *job = calloc(1, sizeof *job);
    if (!job) return NULL;
    pthread_mutex_init(&job->mu, NULL);
    pthread_cond_init(&job->cv, NULL);
    job->refs = 1;
    job->sampling = *sp;
    job->priority = priority;
    job->t_arrival = t_arrival;
    atomic_init(&job->cancel, false);
    job->n_samples = sp->n > 0 ? sp->n : 1;
    job->samples = calloc((size_t)job->n_samples, sizeof *job->samples);
    job->prompt = malloc((n_prompt ? n_prompt : 1) * sizeof *prompt);
    job->stop = n_stop ? calloc(n_stop, sizeof *job->stop) : NULL;
    job->dola_layers = sp->dola_layers ? strdup(sp->dola_layers) : NULL;
    job->sampling.dola_layers = job->dola_layers;
    if (sp->n_logit_bias && (job->logit_bias = malloc(sp->n_logit_bias * sizeof *job->logit_bias)))
        memcpy(job->logit_bias, sp->logit_bias, sp->n_logit_bias * sizeof *job->logit_bias);
    if (sp->n_stop_token_ids && (job->stop_token_ids = malloc(sp->n_stop_token_ids * sizeof(int32_t))))
        memcpy(job->stop_token_ids, sp->stop_token_ids, sp->n_stop_token_ids * sizeof(int32_t));
    job->sampling.logit_bias = job->logit_bias;
    job->sampling.stop_token_ids = job->stop_token_ids;
    job->sampling.stop = NULL;
    job->sampling.n_stop = 0;
    bool ok = job->samples && job->prompt && (!n_stop || job->stop) && (!sp->n_logit_bias || job->logit_bias) &&
              (!sp->n_stop_token_ids || job->stop_token_ids) && (!sp->dola_layers || job->dola_layers);
    for (size_t i = 0; ok && i < n_stop; i++) {
        if (!(job->stop[i] = strdup(stop[i]))) ok = false;
        else job->n_stop = i + 1;
    }
    if (!ok) {
        job_free(job);
        return NULL;
    }
    memcpy(job->prompt, prompt, n_prompt * sizeof *prompt);
    job->n_prompt = n_prompt;
    job->sampling.stop = (const char *const *)job->stop;
    job->sampling.n_stop = job->n_stop;
    return job;
}

static void job_retain(server_job *job) {
    pthread_mutex_lock(&job->mu);
    job->refs++;
    pthread_mutex_unlock(&job->mu);
}

void server_job_release(server_job *job) {
    if (!job) return;
    pthread_mutex_lock(&job->mu);
    int left = --job->refs;
    pthread_mutex_unlock(&job->mu);
    if (left == 0) job_free(job);
}

void server_job_wait_locked(server_job *job, uint64_t *seen_version, double timeout_s) {
    pthread_mutex_lock(&job->mu);
    if (job->version == *seen_version && !job->done) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        long long ns = (long long)ts.tv_nsec + (long long)(timeout_s * 1e9);
        ts.tv_sec += (time_t)(ns / 1000000000LL);
        ts.tv_nsec = (long)(ns % 1000000000LL);
        while (job->version == *seen_version && !job->done)
            if (pthread_cond_timedwait(&job->cv, &job->mu, &ts) != 0) break;
    }
    *seen_version = job->version;
}

/* Marks every unfinished sample finished with `finish` and the job done. Caller holds job->mu. */
static void job_finish_locked(server_job *job, server_finish finish) {
    for (int32_t i = 0; i < job->n_samples; i++)
        if (job->samples[i].finish == SERVER_FINISH_NONE) job->samples[i].finish = finish;
    job->done = true;
    job->version++;
    pthread_cond_broadcast(&job->cv);
}

static void job_fail(server_job *job, int http_status, const char *message) {
    pthread_mutex_lock(&job->mu);
    job->error_http = http_status;
    snprintf(job->error, sizeof job->error, "%s", message);
    job_finish_locked(job, SERVER_FINISH_ERROR);
    pthread_mutex_unlock(&job->mu);
}

/* ---- The engine ------------------------------------------------------------------------------------ */
struct server_engine {
    pagoda_model *model;
    server_metrics *metrics;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    server_job *pending_head, *pending_tail; /* under mu */
    int32_t n_pending;                       /* under mu: submitted and not yet in a published snapshot */
    int32_t n_taken;                         /* under mu: of which taken by the engine thread */
    bool wake;                               /* under mu: a cancellation arrived */
    bool stopping;                           /* under mu */
    bool joined;                             /* under mu: server_engine_stop joined the thread */
    server_engine_snapshot snapshot;         /* under mu */
    /* engine thread only */
    server_job **active;                     /* [n_active] in id order */
    int32_t n_active, cap_active;
};

static int http_status_of(pagoda_status st) {
    switch (st) {
    case PAGODA_ERR_INVALID_ARGUMENT: return 400;
    case PAGODA_ERR_CONTEXT_FULL: return 413;
    case PAGODA_ERR_OUT_OF_MEMORY: return 503;
    default: return 500;
    }
}

static server_job *find_active(server_engine *e, pagoda_request_id id, int32_t *index) {
    int32_t lo = 0, hi = e->n_active - 1;
    while (lo <= hi) {
        int32_t mid = lo + (hi - lo) / 2;
        if (e->active[mid]->id == id) {
            *index = mid;
            return e->active[mid];
        }
        if (e->active[mid]->id < id) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

/* The job is done: out of the active list, metrics counted, the engine's reference dropped. */
static void retire(server_engine *e, int32_t index, server_finish finish) {
    server_job *job = e->active[index];
    memmove(&e->active[index], &e->active[index + 1], sizeof *e->active * (size_t)(e->n_active - index - 1));
    e->n_active--;
    server_metrics_count_finished(e->metrics, finish);
    if (finish != SERVER_FINISH_ERROR) server_metrics_observe(e->metrics, SERVER_HIST_E2E, server_now() - job->t_arrival);
    server_job_release(job);
}

static void add_job(server_engine *e, server_job *job) {
    if (atomic_load(&job->cancel)) {
        pthread_mutex_lock(&job->mu);
        job_finish_locked(job, SERVER_FINISH_ABORT);
        pthread_mutex_unlock(&job->mu);
        server_metrics_count_finished(e->metrics, SERVER_FINISH_ABORT);
        server_job_release(job);
        return;
    }
    if (e->n_active == e->cap_active) {
        int32_t cap = e->cap_active ? e->cap_active * 2 : 64;
        server_job **grown = realloc(e->active, (size_t)cap * sizeof *grown);
        if (!grown) {
            job_fail(job, 503, "the server is out of memory");
            server_job_release(job);
            return;
        }
        e->active = grown;
        e->cap_active = cap;
    }
    pagoda_status st = pagoda_add_request(e->model, job->prompt, job->n_prompt, &job->sampling, job->priority, &job->id);
    if (st) {
        job_fail(job, http_status_of(st), pagoda_last_error());
        server_metrics_count_finished(e->metrics, SERVER_FINISH_ERROR);
        server_job_release(job);
        return;
    }
    job->added = true;
    e->active[e->n_active++] = job;
}

static void cancel_jobs(server_engine *e, bool all) {
    for (int32_t i = 0; i < e->n_active;) {
        server_job *job = e->active[i];
        if (!all && !atomic_load(&job->cancel)) {
            i++;
            continue;
        }
        pagoda_abort(e->model, job->id);
        if (atomic_load(&job->cancel)) { /* the client went away */
            pthread_mutex_lock(&job->mu);
            job_finish_locked(job, SERVER_FINISH_ABORT);
            pthread_mutex_unlock(&job->mu);
        } else { /* the server is stopping under it */
            job_fail(job, 503, "the server is shutting down");
        }
        retire(e, i, SERVER_FINISH_ABORT);
    }
}

static server_finish finish_of(pagoda_finish_reason r) {
    switch (r) {
    case PAGODA_FINISH_STOP: return SERVER_FINISH_STOP;
    case PAGODA_FINISH_LENGTH: return SERVER_FINISH_LENGTH;
    case PAGODA_FINISH_CANCELLED: return SERVER_FINISH_ABORT;
    case PAGODA_FINISH_ERROR: return SERVER_FINISH_ERROR;
    }
    return SERVER_FINISH_ERROR;
}

static bool append_logprobs(server_sample *s, const pagoda_output *o) {
    if (!o->logprobs || !o->n_tokens) return true;
    if (s->n_logprobs + (int32_t)o->n_tokens > s->cap_logprobs) {
        int32_t cap = (s->n_logprobs + (int32_t)o->n_tokens) * 2 + 16;
        server_logprob *grown = realloc(s->logprobs, (size_t)cap * sizeof *grown);
        if (!grown) return false;
        s->logprobs = grown;
        s->cap_logprobs = cap;
    }
    for (size_t i = 0; i < o->n_tokens; i++) {
        const pagoda_token_logprob *lp = &o->logprobs[i];
        server_logprob *out = &s->logprobs[s->n_logprobs++];
        out->token = lp->token;
        out->logprob = lp->logprob;
        out->n_top = lp->n_top < 20 ? lp->n_top : 20;
        memcpy(out->top, lp->top, (size_t)out->n_top * sizeof *out->top);
    }
    return true;
}

/* One output of pagoda_step into its job; the job is retired when all its samples are done. */
static void deliver(server_engine *e, const pagoda_output *o, double now) {
    int32_t index;
    server_job *job = find_active(e, o->id, &index);
    if (!job || o->index < 0 || o->index >= job->n_samples) return;
    server_sample *s = &job->samples[o->index];
    if (o->n_tokens) {
        if (job->t_first_token == 0) {
            job->t_first_token = now;
            server_metrics_observe(e->metrics, SERVER_HIST_TTFT, now - job->t_arrival);
        } else if (o->index == 0) {
            server_metrics_observe(e->metrics, SERVER_HIST_ITL, (now - job->t_last_token) / (double)o->n_tokens);
        }
        if (o->index == 0) job->t_last_token = now;
    }
    pthread_mutex_lock(&job->mu);
    job->n_cached = o->n_cached_tokens;
    bool ok = true;
    if (s->finish == SERVER_FINISH_NONE) {
        s->n_tokens = o->n_generated;
        ok = server_buf_append(&s->text, o->text, o->text_len) && append_logprobs(s, o);
        if (o->finished) {
            s->finish = finish_of(o->finish_reason);
            if (s->finish == SERVER_FINISH_ERROR && !job->error[0]) {
                job->error_http = http_status_of(o->error_status);
                snprintf(job->error, sizeof job->error, "%s", o->error_message ? o->error_message : "generation failed");
            }
        }
        if (!ok) { /* out of memory for the text: fail this sample rather than drop text silently */
            s->finish = SERVER_FINISH_ERROR;
            job->error_http = 503;
            snprintf(job->error, sizeof job->error, "the server ran out of memory for the output");
        }
    }
    if (o->finished) s->engine_finished = true;
    bool all_done = true, engine_done = true;
    for (int32_t i = 0; i < job->n_samples; i++) {
        all_done = all_done && job->samples[i].finish != SERVER_FINISH_NONE;
        engine_done = engine_done && job->samples[i].engine_finished;
    }
    job->version++;
    server_finish first = job->samples[0].finish;
    if (all_done) job->done = true;
    pthread_cond_broadcast(&job->cv);
    pthread_mutex_unlock(&job->mu);
    if (all_done) {
        if (!engine_done) pagoda_abort(e->model, job->id); /* failed here (out of memory): free its blocks now */
        retire(e, index, first);
    }
}

/* Jobs the engine has but has not run yet get their scheduling time once the engine reports no
 * more waiting requests than jobs without output (FCFS: the newest ones wait). */
static void note_scheduled(server_engine *e, int32_t n_waiting, double step_start) {
    int32_t n_running = e->n_active - n_waiting;
    for (int32_t i = 0; i < e->n_active && i < n_running; i++) {
        server_job *job = e->active[i];
        if (job->t_scheduled == 0) {
            job->t_scheduled = step_start;
            server_metrics_observe(e->metrics, SERVER_HIST_QUEUE, step_start - job->t_arrival);
        }
    }
}

/* Publishes the engine's counts for /metrics and admission control; returns them. */
static pagoda_engine_stats publish(server_engine *e) {
    pagoda_engine_stats stats;
    pagoda_get_stats(e->model, &stats);
    pthread_mutex_lock(&e->mu);
    e->snapshot.stats = stats;
    e->snapshot.n_active = e->n_active;
    e->n_pending -= e->n_taken;
    e->n_taken = 0;
    pthread_mutex_unlock(&e->mu);
    return stats;
}

static void *engine_main(void *arg) {
    server_engine *e = arg;
    for (;;) {
        pthread_mutex_lock(&e->mu);
        while (!e->stopping && !e->pending_head && !e->wake && !pagoda_has_unfinished(e->model))
            pthread_cond_wait(&e->cv, &e->mu);
        bool stopping = e->stopping;
        server_job *pending = e->pending_head;
        e->pending_head = e->pending_tail = NULL;
        e->n_taken = e->n_pending; /* still counted as pending until the snapshot below shows them */
        e->wake = false;
        pthread_mutex_unlock(&e->mu);

        while (pending) {
            server_job *next = pending->next_pending;
            pending->next_pending = NULL;
            add_job(e, pending);
            pending = next;
        }
        cancel_jobs(e, stopping);
        if (stopping) break;
        double step_start = server_now();
        if (pagoda_has_unfinished(e->model)) {
            const pagoda_output *outs;
            size_t n_outs;
            pagoda_step(e->model, &outs, &n_outs); /* a failed step fails its requests through outputs */
            publish(e); /* before any answer goes out: a client that got one sees its request gone */
            double now = server_now();
            for (size_t i = 0; i < n_outs; i++) deliver(e, &outs[i], now);
        }
        note_scheduled(e, publish(e).n_waiting, step_start);
    }
    /* drain what arrived after the stop: nothing reaches the engine any more */
    pthread_mutex_lock(&e->mu);
    server_job *pending = e->pending_head;
    e->pending_head = e->pending_tail = NULL;
    pthread_mutex_unlock(&e->mu);
    while (pending) {
        server_job *next = pending->next_pending;
        job_fail(pending, 503, "the server is shutting down");
        server_job_release(pending);
        pending = next;
    }
    return NULL;
}

pagoda_status server_engine_start(pagoda_model *model, server_metrics *metrics, server_engine **out) {
    *out = NULL;
    server_engine *e = calloc(1, sizeof *e);
    if (!e) return PAGODA_ERR_OUT_OF_MEMORY;
    e->model = model;
    e->metrics = metrics;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    pagoda_get_stats(model, &e->snapshot.stats);
    if (pthread_create(&e->thread, NULL, engine_main, e) != 0) {
        pthread_cond_destroy(&e->cv);
        pthread_mutex_destroy(&e->mu);
        free(e);
        return PAGODA_ERR_INTERNAL;
    }
    *out = e;
    return PAGODA_OK;
}

bool server_engine_submit(server_engine *e, server_job *job) {
    pthread_mutex_lock(&e->mu);
    if (e->stopping) {
        pthread_mutex_unlock(&e->mu);
        return false;
    }
    job_retain(job);
    if (e->pending_tail) e->pending_tail->next_pending = job;
    else e->pending_head = job;
    e->pending_tail = job;
    e->n_pending++;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    return true;
}

void server_engine_cancel(server_engine *e, server_job *job) {
    atomic_store(&job->cancel, true);
    pthread_mutex_lock(&e->mu);
    e->wake = true;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

void server_engine_snapshot_get(server_engine *e, server_engine_snapshot *out) {
    pthread_mutex_lock(&e->mu);
    *out = e->snapshot;
    out->n_pending = e->n_pending;
    pthread_mutex_unlock(&e->mu);
}

void server_engine_stop(server_engine *e) {
    if (!e) return;
    pthread_mutex_lock(&e->mu);
    bool joined = e->joined;
    e->stopping = true;
    e->joined = true;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    if (!joined) pthread_join(e->thread, NULL);
}

void server_engine_free(server_engine *e) {
    if (!e) return;
    server_engine_stop(e);
    free(e->active);
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->mu);
    free(e);
}
