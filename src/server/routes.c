/* server/routes.c - the route handlers: completions and chat completions (non-streaming answers
 * wait here; streaming ones hand over to stream.c), models, tokenize / detokenize, metrics.
 * These run on the connection's own thread and use only the thread-safe part of the model API
 * (tokenize, detokenize, chat render, model info); the engine is reached through server/job.h. */
#include "server/server_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- Prompts --------------------------------------------------------------------------------------- */
/* The request's prompt as token ids (malloc'd): rendered chat, tokenized text, or given ids. */
static bool prompt_ids(server *s, const server_request *req, int32_t **ids, size_t *n_ids, server_error *err) {
    *ids = NULL;
    *n_ids = 0;
    if (req->has_ids) {
        for (size_t i = 0; i < req->n_ids; i++)
            if (req->ids[i] >= s->info.n_vocab) {
                server_error_set(err, 400, "invalid_request_error", NULL, req->kind == SERVER_REQ_DETOKENIZE ? "tokens" : "prompt",
                                 "token id %d at position %zu is out of range (the vocabulary has %d tokens)",
                                 req->ids[i], i, s->info.n_vocab);
                return false;
            }
        *ids = malloc((req->n_ids ? req->n_ids : 1) * sizeof **ids);
        if (!*ids) goto oom;
        memcpy(*ids, req->ids, req->n_ids * sizeof **ids);
        *n_ids = req->n_ids;
        return true;
    }
    char *text = NULL;
    bool chat = req->n_messages > 0;
    if (chat) {
        pagoda_status st = pagoda_chat_render(s->model, req->messages, req->n_messages, req->add_generation_prompt, &text);
        if (st == PAGODA_ERR_OUT_OF_MEMORY) goto oom;
        if (st) {
            server_error_set(err, 400, "invalid_request_error", NULL, "messages", "%s", pagoda_last_error());
            return false;
        }
    }
    /* a raw prompt gets BOS as the model wants it; a rendered chat already has its special tokens */
    bool add_special = req->kind == SERVER_REQ_TOKENIZE ? req->add_special : !chat;
    pagoda_status st = pagoda_tokenize(s->model, chat ? text : req->prompt, chat ? strlen(text) : req->prompt_len,
                                       add_special, true, ids, n_ids);
    free(text);
    if (st) goto oom;
    return true;
oom:
    server_error_set(err, 500, "server_error", NULL, NULL, "out of memory");
    return false;
}

static bool model_matches(server *s, const server_request *req, server_error *err) {
    if (!req->model || !strcmp(req->model, s->model_name)) return true;
    server_error_set(err, 404, "invalid_request_error", "model_not_found", "model",
                     "the model '%.200s' does not exist; this server serves '%.200s'", req->model, s->model_name);
    return false;
}

/* splitmix64 over a shared counter: a fresh seed for requests that give none */
static uint64_t fresh_seed(server *s) {
    uint64_t z = atomic_fetch_add(&s->next_id, 1) * 0x9E3779B97F4A7C15ull + (uint64_t)(server_now() * 1e9);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* ---- Completions and chat completions ---------------------------------------------------------- */
enum MHD_Result server_route_generate(server_conn *c, server_request_kind kind) {
    server *s = c->srv;
    server_request req;
    server_error err;
    if (!server_request_parse(kind, c->body.data ? c->body.data : "", c->body.len, &req, &err))
        return server_respond_error(c, &err);
    int32_t *ids = NULL;
    size_t n_ids = 0;
    if (!model_matches(s, &req, &err) || !prompt_ids(s, &req, &ids, &n_ids, &err)) {
        server_request_free(&req);
        return server_respond_error(c, &err);
    }
    enum MHD_Result ret;
    if (n_ids == 0) {
        server_error_set(&err, 400, "invalid_request_error", NULL, kind == SERVER_REQ_CHAT ? "messages" : "prompt",
                         "the prompt is empty");
        goto fail;
    }
    if (n_ids >= (size_t)s->info.n_ctx) {
        server_error_set(&err, 413, "invalid_request_error", "context_length_exceeded",
                         kind == SERVER_REQ_CHAT ? "messages" : "prompt",
                         "the prompt has %zu tokens but the model's context holds %d (prompt and output together)",
                         n_ids, s->info.n_ctx);
        goto fail;
    }
    for (size_t i = 0; i < req.sampling.n_logit_bias; i++)
        if (req.sampling.logit_bias[i].token >= s->info.n_vocab) {
            server_error_set(&err, 400, "invalid_request_error", NULL, "logit_bias",
                             "'logit_bias' token %d is out of range (the vocabulary has %d tokens)",
                             req.sampling.logit_bias[i].token, s->info.n_vocab);
            goto fail;
        }
    for (size_t i = 0; i < req.sampling.n_stop_token_ids; i++)
        if (req.sampling.stop_token_ids[i] >= s->info.n_vocab) {
            server_error_set(&err, 400, "invalid_request_error", NULL, "stop_token_ids",
                             "'stop_token_ids' token %d is out of range (the vocabulary has %d tokens)",
                             req.sampling.stop_token_ids[i], s->info.n_vocab);
            goto fail;
        }
    server_engine_snapshot snap;
    server_engine_snapshot_get(s->engine, &snap);
    if (snap.stats.n_waiting + snap.n_pending >= s->cfg.max_queue) {
        server_error_set(&err, 503, "server_error", "queue_full", NULL,
                         "the server is overloaded: %d requests are waiting (--max-queue %d); retry later",
                         snap.stats.n_waiting + snap.n_pending, s->cfg.max_queue);
        goto fail;
    }
    if (!req.seed_given) req.sampling.seed = fresh_seed(s);
    server_job *job = server_job_new(ids, n_ids, &req.sampling, req.priority, req.stop, req.n_stop, c->t_start);
    if (!job) {
        server_error_set(&err, 500, "server_error", NULL, NULL, "out of memory");
        goto fail;
    }
    if (!server_engine_submit(s->engine, job)) {
        server_job_release(job);
        server_error_set(&err, 503, "server_error", "unavailable", NULL, "the server is shutting down");
        goto fail;
    }
    c->job = job; /* the connection's reference: on_completed cancels it if the client leaves early */
    atomic_fetch_add(&s->n_generating, 1);
    server_reply_info info = {.kind = kind, .created = (long long)time(NULL), .n_prompt = (int32_t)n_ids,
                              .include_usage = req.include_usage};
    snprintf(info.id, sizeof info.id, "%s-%016llx", kind == SERVER_REQ_CHAT ? "chatcmpl" : "cmpl",
             (unsigned long long)fresh_seed(s));
    bool stream = req.stream;
    free(ids);
    server_request_free(&req);
    if (stream) {
        struct MHD_Response *r = server_stream_response(c, &info, job);
        if (!r) return server_respond_simple_error(c, 500, "server_error", NULL, NULL, "out of memory");
        ret = MHD_queue_response(c->connection, 200, r);
        MHD_destroy_response(r);
        if (s->cfg.log_requests)
            fprintf(stderr, "pagoda serve: %s %s -> 200 stream (%zu prompt tokens)\n", c->method, c->url, n_ids);
        return ret;
    }
    /* wait for the whole answer, leaving early if the client hangs up */
    uint64_t seen = 0;
    for (;;) {
        server_job_wait_locked(job, &seen, 0.1);
        bool done = job->done;
        pthread_mutex_unlock(&job->mu);
        if (done) break;
        if (server_client_gone(c)) {
            server_engine_cancel(s->engine, job);
            return MHD_NO; /* closes the connection */
        }
    }
    pthread_mutex_lock(&job->mu);
    if (job->error_http) {
        server_error_set(&err, job->error_http, job->error_http >= 500 ? "server_error" : "invalid_request_error",
                         job->error_http == 413 ? "context_length_exceeded" : NULL, NULL, "%s", job->error);
        pthread_mutex_unlock(&job->mu);
        return server_respond_error(c, &err);
    }
    json_t *body = server_reply_body(s, &info, job);
    pthread_mutex_unlock(&job->mu);
    return server_respond_json(c, 200, body);
fail:
    free(ids);
    server_request_free(&req);
    return server_respond_error(c, &err);
}

/* ---- Other routes ---------------------------------------------------------------------------------- */
enum MHD_Result server_route_tokenize(server_conn *c, server_request_kind kind) {
    server *s = c->srv;
    server_request req;
    server_error err;
    if (!server_request_parse(kind, c->body.data ? c->body.data : "", c->body.len, &req, &err))
        return server_respond_error(c, &err);
    if (!model_matches(s, &req, &err)) {
        server_request_free(&req);
        return server_respond_error(c, &err);
    }
    json_t *body = NULL;
    if (kind == SERVER_REQ_TOKENIZE) {
        int32_t *ids;
        size_t n_ids;
        if (!prompt_ids(s, &req, &ids, &n_ids, &err)) {
            server_request_free(&req);
            return server_respond_error(c, &err);
        }
        json_t *tokens = json_array();
        for (size_t i = 0; i < n_ids; i++) json_array_append_new(tokens, json_integer(ids[i]));
        free(ids);
        body = json_pack("{s:I, s:i, s:o}", "count", (json_int_t)n_ids, "max_model_len", s->info.n_ctx, "tokens", tokens);
    } else {
        for (size_t i = 0; i < req.n_ids; i++)
            if (req.ids[i] >= s->info.n_vocab) {
                server_error_set(&err, 400, "invalid_request_error", NULL, "tokens",
                                 "token id %d at position %zu is out of range (the vocabulary has %d tokens)",
                                 req.ids[i], i, s->info.n_vocab);
                server_request_free(&req);
                return server_respond_error(c, &err);
            }
        char *text = NULL;
        size_t len = 0;
        if (pagoda_detokenize(s->model, req.ids, req.n_ids, true, &text, &len)) {
            server_error_set(&err, 400, "invalid_request_error", NULL, "tokens", "%s", pagoda_last_error());
            server_request_free(&req);
            return server_respond_error(c, &err);
        }
        body = json_object();
        json_object_set_new(body, "prompt", server_json_text(text, len));
        free(text);
    }
    server_request_free(&req);
    return server_respond_json(c, 200, body);
}

enum MHD_Result server_route_models(server_conn *c, const char *id) {
    server *s = c->srv;
    if (id && strcmp(id, s->model_name)) {
        server_error err;
        server_error_set(&err, 404, "invalid_request_error", "model_not_found", "model",
                         "the model '%.200s' does not exist; this server serves '%.200s'", id, s->model_name);
        return server_respond_error(c, &err);
    }
    json_t *model = json_pack("{s:s, s:s, s:I, s:s, s:s, s:i}", "id", s->model_name, "object", "model", "created",
                              (json_int_t)s->created, "owned_by", "pagoda", "root", s->model_name, "max_model_len",
                              s->info.n_ctx);
    if (id) return server_respond_json(c, 200, model);
    return server_respond_json(c, 200, json_pack("{s:s, s:[o]}", "object", "list", "data", model));
}

enum MHD_Result server_route_metrics(server_conn *c) {
    server *s = c->srv;
    server_engine_snapshot snap;
    server_engine_snapshot_get(s->engine, &snap);
    server_buf out = {0};
    if (!server_metrics_render(&s->metrics, &snap.stats, snap.n_pending, &out)) {
        server_buf_free(&out);
        return server_respond_simple_error(c, 500, "server_error", NULL, NULL, "out of memory");
    }
    enum MHD_Result ret = server_respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", out.data, out.len);
    server_buf_free(&out);
    return ret;
}
