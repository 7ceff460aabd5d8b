/* server/http.c - the libmicrohttpd daemon: binding, one thread per connection, request bodies
 * (limited in size), authentication, CORS, routing, and responses. The route handlers are in
 * routes.c, SSE streams in stream.c. */
#include "server/server_internal.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h" /* defines: error_set */

/* ---- Responses ------------------------------------------------------------------------------------- */
void server_add_common_headers(server_conn *c, struct MHD_Response *r) {
    if (c->srv->cors_origin) {
        MHD_add_response_header(r, "Access-Control-Allow-Origin", c->srv->cors_origin);
        MHD_add_response_header(r, "Vary", "Origin");
    }
}

enum MHD_Result server_respond(server_conn *c, unsigned status, const char *content_type, const char *body,
                               size_t len) {
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    if (content_type) MHD_add_response_header(r, "Content-Type", content_type);
    server_add_common_headers(c, r);
    if (status == 503 || status == 429) MHD_add_response_header(r, "Retry-After", "1");
    enum MHD_Result ret = MHD_queue_response(c->connection, status, r);
    MHD_destroy_response(r);
    if (c->srv->cfg.log_requests)
        fprintf(stderr, "pagoda serve: %s %s -> %u (%.3f s)\n", c->method, c->url, status, server_now() - c->t_start);
    return ret;
}

enum MHD_Result server_respond_json(server_conn *c, unsigned status, json_t *obj) {
    char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (!text) {
        static const char oom[] = "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\",\"param\":null,"
                                  "\"code\":null}}";
        return server_respond(c, 500, "application/json", oom, sizeof oom - 1);
    }
    enum MHD_Result ret = server_respond(c, status, "application/json", text, strlen(text));
    free(text);
    return ret;
}

json_t *server_error_json(const server_error *e) {
    json_t *inner = json_object();
    json_object_set_new(inner, "message", server_json_text(e->message, strlen(e->message)));
    json_object_set_new(inner, "type", json_string(e->type ? e->type : "invalid_request_error"));
    json_object_set_new(inner, "param", e->param[0] ? json_string(e->param) : json_null());
    json_object_set_new(inner, "code", e->code ? json_string(e->code) : json_null());
    json_t *outer = json_object();
    json_object_set_new(outer, "error", inner);
    return outer;
}

enum MHD_Result server_respond_error(server_conn *c, const server_error *e) {
    return server_respond_json(c, (unsigned)e->http_status, server_error_json(e));
}

enum MHD_Result server_respond_simple_error(server_conn *c, int status, const char *type, const char *code,
                                            const char *param, const char *message) {
    server_error e;
    server_error_set(&e, status, type, code, param, "%s", message);
    return server_respond_error(c, &e);
}

bool server_client_gone(server_conn *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c->connection, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return false;
    struct pollfd p = {.fd = ci->connect_fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

/* ---- Routing --------------------------------------------------------------------------------------- */
static bool authorized(server_conn *c) {
    const char *key = c->srv->api_key;
    if (!key) return true;
    const char *h = MHD_lookup_connection_value(c->connection, MHD_HEADER_KIND, "Authorization");
    if (!h || strncmp(h, "Bearer ", 7)) return false;
    h += 7;
    size_t n = strlen(key), m = strlen(h);
    unsigned diff = (unsigned)(n != m);
    for (size_t i = 0; i < n; i++) diff |= (unsigned)(key[i] ^ (i < m ? h[i] : 0)); /* constant time in the key */
    return diff == 0;
}

typedef enum route_id {
    ROUTE_NONE, ROUTE_COMPLETIONS, ROUTE_CHAT, ROUTE_MODELS, ROUTE_TOKENIZE, ROUTE_DETOKENIZE, ROUTE_HEALTH,
    ROUTE_METRICS, ROUTE_PAGE,
} route_id;

static const struct {
    const char *path, *method;
    route_id id;
    bool needs_key, needs_model;
} routes[] = {
    {"/v1/completions", "POST", ROUTE_COMPLETIONS, true, true},
    {"/v1/chat/completions", "POST", ROUTE_CHAT, true, true},
    {"/v1/models", "GET", ROUTE_MODELS, true, true},
    {"/tokenize", "POST", ROUTE_TOKENIZE, true, true},
    {"/detokenize", "POST", ROUTE_DETOKENIZE, true, true},
    {"/health", "GET", ROUTE_HEALTH, false, false},
    {"/metrics", "GET", ROUTE_METRICS, false, true},
    {"/", "GET", ROUTE_PAGE, false, false},
    {"/index.html", "GET", ROUTE_PAGE, false, false},
};

static int find_route(const char *url) {
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (!strcmp(url, routes[i].path)) return (int)i;
    if (!strncmp(url, "/v1/models/", 11)) return 2; /* GET /v1/models/{id} */
    return -1;
}

static enum MHD_Result dispatch(server_conn *c) {
    server *s = c->srv;
    int r = find_route(c->url);
    if (!strcmp(c->method, "OPTIONS") && c->srv->cors_origin) { /* CORS preflight */
        struct MHD_Response *resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        if (!resp) return MHD_NO;
        server_add_common_headers(c, resp);
        MHD_add_response_header(resp, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
        MHD_add_response_header(resp, "Access-Control-Allow-Headers", "Authorization, Content-Type");
        MHD_add_response_header(resp, "Access-Control-Max-Age", "86400");
        enum MHD_Result ret = MHD_queue_response(c->connection, 204, resp);
        MHD_destroy_response(resp);
        return ret;
    }
    if (r < 0) {
        char msg[300];
        snprintf(msg, sizeof msg, "no route %s %.200s", c->method, c->url);
        return server_respond_simple_error(c, 404, "invalid_request_error", "not_found", NULL, msg);
    }
    bool head = !strcmp(c->method, "HEAD") && !strcmp(routes[r].method, "GET");
    if (strcmp(c->method, routes[r].method) && !head) {
        char msg[300];
        snprintf(msg, sizeof msg, "%.200s takes %s, not %.20s", c->url, routes[r].method, c->method);
        return server_respond_simple_error(c, 405, "invalid_request_error", "method_not_allowed", NULL, msg);
    }
    if (routes[r].needs_key && !authorized(c))
        return server_respond_simple_error(c, 401, "invalid_request_error", "invalid_api_key", NULL,
                                           "a valid API key is needed: send 'Authorization: Bearer KEY'");
    bool ready = atomic_load(&s->ready), stopping = atomic_load(&s->stopping);
    if (routes[r].id == ROUTE_HEALTH) {
        const char *body = stopping ? "{\"status\":\"stopping\"}" : ready ? "{\"status\":\"ok\"}" : "{\"status\":\"loading\"}";
        return server_respond(c, ready && !stopping ? 200 : 503, "application/json", body, strlen(body));
    }
    if (routes[r].id == ROUTE_PAGE) {
        size_t len = 0;
        const char *page = server_web_page(&len);
        return server_respond(c, 200, "text/html; charset=utf-8", page, len);
    }
    if (routes[r].needs_model && (!ready || stopping))
        return server_respond_simple_error(c, 503, "server_error", "unavailable", NULL,
                                           stopping ? "the server is shutting down" : "the model is still loading");
    if (c->too_large) {
        char msg[200];
        snprintf(msg, sizeof msg, "the request body is over the limit of %zu bytes", s->cfg.max_body_bytes);
        return server_respond_simple_error(c, 413, "invalid_request_error", "request_too_large", NULL, msg);
    }
    switch (routes[r].id) {
    case ROUTE_COMPLETIONS: return server_route_generate(c, SERVER_REQ_COMPLETION);
    case ROUTE_CHAT: return server_route_generate(c, SERVER_REQ_CHAT);
    case ROUTE_MODELS: return server_route_models(c, strcmp(c->url, "/v1/models") ? c->url + 11 : NULL);
    case ROUTE_TOKENIZE: return server_route_tokenize(c, SERVER_REQ_TOKENIZE);
    case ROUTE_DETOKENIZE: return server_route_tokenize(c, SERVER_REQ_DETOKENIZE);
    case ROUTE_METRICS: return server_route_metrics(c);
    default: break;
    }
    return server_respond_simple_error(c, 500, "server_error", NULL, NULL, "unrouted request");
}

/* libmicrohttpd calls this first with the headers, then once per piece of the body, then once with
 * *upload_data_size 0: the request is complete and gets its answer. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *connection, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
    server *s = cls;
    server_conn *c = *con_cls;
    if (!c) {
        c = calloc(1, sizeof *c);
        if (!c) return MHD_NO;
        *c = (server_conn){.srv = s, .connection = connection, .method = method, .url = url, .t_start = server_now()};
        *con_cls = c;
        const char *length = MHD_lookup_connection_value(connection, MHD_HEADER_KIND, "Content-Length");
        if (length && strtoull(length, NULL, 10) > s->cfg.max_body_bytes) {
            c->too_large = true; /* answer now; the body is never read and the connection closes */
            return dispatch(c);
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (!c->too_large && c->body.len + *upload_data_size > s->cfg.max_body_bytes) {
            c->too_large = true;
            server_buf_free(&c->body);
        }
        if (!c->too_large && !server_buf_append(&c->body, upload_data, *upload_data_size)) return MHD_NO;
        *upload_data_size = 0;
        return MHD_YES;
    }
    return dispatch(c);
}

static void on_completed(void *cls, struct MHD_Connection *connection, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    server_conn *c = *con_cls;
    if (!c) return;
    if (c->job) {
        pthread_mutex_lock(&c->job->mu);
        bool done = c->job->done;
        pthread_mutex_unlock(&c->job->mu);
        if (!done) server_engine_cancel(c->srv->engine, c->job); /* the client left: free its KV blocks now */
        server_job_release(c->job);
        atomic_fetch_sub(&c->srv->n_generating, 1);
    }
    server_buf_free(&c->body);
    free(c);
    *con_cls = NULL;
}

/* ---- Start and stop -------------------------------------------------------------------------------- */
static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

pagoda_status server_start(const server_config *config, server **out) {
    *out = NULL;
    server *s = calloc(1, sizeof *s);
    if (!s) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory for the server");
    s->cfg = *config;
    if (!s->cfg.host) s->cfg.host = "127.0.0.1";
    if (s->cfg.max_queue <= 0) s->cfg.max_queue = 1024;
    if (!s->cfg.max_body_bytes) s->cfg.max_body_bytes = 1 << 20;
    if (!s->cfg.timeout_s) s->cfg.timeout_s = 600;
    if (!s->cfg.max_connections) s->cfg.max_connections = 512;
    s->host = strdup(s->cfg.host);
    s->api_key = dup_or_null(config->api_key && *config->api_key ? config->api_key : NULL);
    s->model_name = strdup(config->served_model_name ? config->served_model_name : "pagoda");
    s->cors_origin = dup_or_null(config->cors_origin);
    server_metrics_init(&s->metrics, s->model_name);
    atomic_init(&s->ready, false);
    atomic_init(&s->stopping, false);
    atomic_init(&s->n_generating, 0);
    atomic_init(&s->next_id, ((uint64_t)time(NULL) << 20) ^ (uint64_t)(uintptr_t)s);
    if (!s->host || !s->model_name || (config->cors_origin && !s->cors_origin)) {
        server_free(s);
        return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory for the server");
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", config->port);
    int gai = getaddrinfo(s->host, port, &hints, &ai);
    if (gai != 0 || !ai) {
        pagoda_status st = error_set(PAGODA_ERR_INVALID_ARGUMENT, "cannot resolve host '%s': %s", s->host,
                                     gai_strerror(gai));
        server_free(s);
        return st;
    }
    unsigned flags = MHD_USE_AUTO | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ITC;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    s->daemon = MHD_start_daemon(flags, (uint16_t)config->port, NULL, NULL, on_request, s,
                                 MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                                 MHD_OPTION_CONNECTION_TIMEOUT, s->cfg.timeout_s,
                                 MHD_OPTION_CONNECTION_LIMIT, s->cfg.max_connections,
                                 MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!s->daemon) {
        pagoda_status st = error_set(PAGODA_ERR_IO, "cannot listen on %s port %d (is the port taken?)", s->host,
                                     config->port);
        server_free(s);
        return st;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : config->port;
    *out = s;
    return PAGODA_OK;
}

int server_port(const server *s) { return s->port; }

pagoda_status server_set_model(server *s, pagoda_model *model) {
    s->model = model;
    pagoda_model_get_info(model, &s->info);
    s->created = (long long)time(NULL);
    if (server_engine_start(model, &s->metrics, &s->engine) != PAGODA_OK)
        return error_set(PAGODA_ERR_INTERNAL, "cannot start the engine thread");
    atomic_store(&s->ready, true);
    return PAGODA_OK;
}

void server_free(server *s) {
    if (!s) return;
    atomic_store(&s->stopping, true);
    if (s->daemon) { /* no new connections */
        MHD_socket listen_fd = MHD_quiesce_daemon(s->daemon);
        if (listen_fd != MHD_INVALID_SOCKET) close(listen_fd);
    }
    server_engine_stop(s->engine); /* running jobs end with an error... */
    for (int i = 0; i < 500 && atomic_load(&s->n_generating) > 0; i++) /* ...which their clients get (5 s at most) */
        usleep(10000);
    if (s->daemon) MHD_stop_daemon(s->daemon);
    server_engine_free(s->engine);
    server_metrics_free(&s->metrics);
    free(s->host);
    free(s->api_key);
    free(s->model_name);
    free(s->cors_origin);
    free(s);
}
