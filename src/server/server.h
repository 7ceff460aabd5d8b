/* server/server.h - `pagoda serve`'s HTTP server: OpenAI-compatible routes over libmicrohttpd.
 *
 * Routes: POST /v1/completions, POST /v1/chat/completions (both streaming as SSE), GET /v1/models,
 * POST /tokenize, POST /detokenize, GET /health (503 while the model loads), GET /metrics
 * (Prometheus), GET / (the web chat page). See docs/SERVER.md.
 *
 * Threads: libmicrohttpd runs one thread per connection; those threads parse, validate, render the
 * chat template, tokenize and queue (server/job.h); one engine thread runs the model. The server
 * listens as soon as server_start returns, answering 503 until server_set_model.
 */
#ifndef PAGODA_SERVER_H
#define PAGODA_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pagoda.h" /* defines: pagoda_model, pagoda_status */

typedef struct server_config {
    const char *host;              /* address to bind; NULL: "127.0.0.1" */
    int port;                      /* 0: any free port (see server_port) */
    const char *api_key;           /* NULL: no authentication */
    const char *served_model_name; /* the model's id in the API */
    int32_t max_queue;             /* requests waiting for the engine beyond which new ones get 503; <= 0: 1024 */
    const char *cors_origin;       /* NULL: no CORS headers */
    size_t max_body_bytes;         /* 0: 1 MiB */
    unsigned timeout_s;            /* idle connection timeout; 0: 600 s */
    unsigned max_connections;      /* 0: 512 */
    bool log_requests;             /* one line per request on stderr */
} server_config;

typedef struct server server;

/* Binds and starts serving. Errors: PAGODA_ERR_INVALID_ARGUMENT (bad host), PAGODA_ERR_IO (cannot
 * bind, e.g. the port is taken), PAGODA_ERR_OUT_OF_MEMORY. */
pagoda_status server_start(const server_config *config, server **out);
/* The port it listens on. */
int server_port(const server *s);
/* Starts serving `model` (not owned; keep it alive until server_free). Errors: PAGODA_ERR_INTERNAL. */
pagoda_status server_set_model(server *s, pagoda_model *model);
/* Stops: new requests get 503, running ones end (streams with an error event), connections close.
 * Then frees. NULL is a no-op. */
void server_free(server *s);

#endif
