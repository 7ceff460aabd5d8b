/* server/server_internal.h - the state shared by the server's files: http.c (daemon, connections,
 * routing, responses), routes.c (the handlers), stream.c (SSE streams and OpenAI response bodies). */
#ifndef PAGODA_SERVER_INTERNAL_H
#define PAGODA_SERVER_INTERNAL_H

#include <jansson.h>
#include <microhttpd.h>
#include <stdatomic.h>

#include "server/buf.h"     /* defines: server_buf */
#include "server/job.h"     /* defines: server_job, server_engine */
#include "server/metrics.h" /* defines: server_metrics */
#include "server/request.h" /* defines: server_request, server_error */
#include "server/server.h"  /* defines: server_config */

struct server {
    server_config cfg;          /* strings below are owned copies */
    char *host, *api_key, *model_name, *cors_origin;
    struct MHD_Daemon *daemon;
    int port;
    atomic_bool ready;          /* model and engine set */
    atomic_bool stopping;
    pagoda_model *model;        /* not owned */
    pagoda_model_info info;
    server_engine *engine;
    server_metrics metrics;
    long long created;          /* Unix time the model was set, for /v1/models */
    atomic_uint_fast64_t next_id;
    atomic_int n_generating;    /* requests holding a job, until their answer is sent (on_completed) */
};

/* One HTTP request (libmicrohttpd's per-request context). */
typedef struct server_conn {
    server *srv;
    struct MHD_Connection *connection;
    const char *method, *url;
    server_buf body;
    bool too_large;
    server_job *job;  /* a generation it started: cancelled if the request ends before the job does */
    double t_start;
} server_conn;

/* http.c: responses. Each queues the response and returns MHD's result. */
enum MHD_Result server_respond(server_conn *c, unsigned status, const char *content_type, const char *body,
                               size_t len);
enum MHD_Result server_respond_json(server_conn *c, unsigned status, json_t *obj); /* steals obj */
enum MHD_Result server_respond_error(server_conn *c, const server_error *e);
enum MHD_Result server_respond_simple_error(server_conn *c, int status, const char *type, const char *code,
                                            const char *param, const char *message);
void server_add_common_headers(server_conn *c, struct MHD_Response *r);
/* True when the client closed its end of the connection. */
bool server_client_gone(server_conn *c);

/* routes.c */
enum MHD_Result server_route_generate(server_conn *c, server_request_kind kind);
enum MHD_Result server_route_tokenize(server_conn *c, server_request_kind kind);
enum MHD_Result server_route_models(server_conn *c, const char *id); /* id: GET /v1/models/{id}, else NULL */
enum MHD_Result server_route_metrics(server_conn *c);

/* stream.c: OpenAI bodies and the SSE stream of a job. */
typedef struct server_reply_info {
    server_request_kind kind;
    char id[48];
    long long created;
    int32_t n_prompt;
    bool include_usage;
} server_reply_info;
json_t *server_json_text(const char *s, size_t len);      /* a JSON string; invalid UTF-8 becomes U+FFFD */
json_t *server_reply_body(server *s, const server_reply_info *info, server_job *job); /* a finished job */
json_t *server_usage_json(const server_reply_info *info, server_job *job);           /* job->mu held */
json_t *server_error_json(const server_error *e);
/* Creates the SSE response of a submitted job (takes its own reference). NULL when out of memory. */
struct MHD_Response *server_stream_response(server_conn *c, const server_reply_info *info, server_job *job);

/* The web page (src/server/web_page.h once the web page lands; web_page_stub.c until then). */
#if defined(__has_include)
#if __has_include("server/web_page.h")
#include "server/web_page.h"
#define SERVER_HAVE_WEB_PAGE_H 1
#endif
#endif
#ifndef SERVER_HAVE_WEB_PAGE_H
const char *server_web_page(size_t *len);
#endif

#endif
