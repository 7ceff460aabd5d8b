/* cli/cmd_serve.c - `pagoda serve`: the OpenAI-compatible HTTP server (src/server/). Binds first
 * (GET /health answers 503 while the model loads), loads the model, prints the address when ready,
 * and stops cleanly on SIGINT or SIGTERM. */
#include <errno.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli_common.h" /* defines: cli_options, cli_load_model */
#include "cli/commands.h"
#include "server/server.h"  /* defines: server_start, server_set_model, server_free */

static void print_help(FILE *out) {
    fprintf(out,
            "usage: pagoda serve [-m MODEL] [--host 127.0.0.1] [--port 8080] [options]\n\n"
            "Serves the model over an OpenAI-compatible HTTP API: POST /v1/completions,\n"
            "POST /v1/chat/completions (stream: SSE), GET /v1/models, POST /tokenize, POST /detokenize,\n"
            "GET /health, GET /metrics (Prometheus), and a chat page at /. See docs/SERVER.md.\n\n"
            "server:\n"
            "      --host ADDR         address to bind (default: 127.0.0.1; 0.0.0.0 for every interface)\n"
            "      --port N            port (default: 8080; 0: any free port, printed when ready)\n"
            "      --api-key KEY       require 'Authorization: Bearer KEY' on /v1, /tokenize, /detokenize\n"
            "                          (default: $PAGODA_API_KEY, else none)\n"
            "      --served-model-name NAME  the model's id in the API (default: the file name without .gguf)\n"
            "      --max-queue N       requests allowed to wait for the engine; more get 503 (default: 1024)\n"
            "      --cors-origin ORIGIN  allow browser pages from ORIGIN (or *) to call the API\n"
            "      --max-body SIZE     largest request body in bytes (default: 1048576)\n"
            "      --timeout SECONDS   close connections idle this long (default: 600)\n"
            "      --log-requests      one line per request on stderr\n"
            "Sampling options below are ignored: each request carries its own.\n");
    cli_print_common_help(out);
    fprintf(out, "  -h, --help              show this help\n");
}

static sem_t stop_sem;
static volatile sig_atomic_t stop_signal;

static void on_signal(int sig) {
    stop_signal = sig;
    sem_post(&stop_sem); /* async-signal-safe */
}

/* The file name without its directory and a .gguf suffix. */
static void default_model_name(const char *path, char *out, size_t cap) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(out, cap, "%s", base);
    size_t n = strlen(out);
    if (n > 5 && !strcmp(out + n - 5, ".gguf")) out[n - 5] = '\0';
}

static bool parse_count(const char *arg, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(arg, &end, 10);
    if (errno || end == arg || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

int cmd_serve(int argc, char **argv) {
    enum { OPT_HOST = 3000, OPT_PORT, OPT_API_KEY, OPT_NAME, OPT_MAX_QUEUE, OPT_CORS, OPT_MAX_BODY, OPT_TIMEOUT, OPT_LOG };
    static const struct option own[] = {
        {"host", required_argument, 0, OPT_HOST}, {"port", required_argument, 0, OPT_PORT},
        {"api-key", required_argument, 0, OPT_API_KEY}, {"served-model-name", required_argument, 0, OPT_NAME},
        {"max-queue", required_argument, 0, OPT_MAX_QUEUE}, {"cors-origin", required_argument, 0, OPT_CORS},
        {"max-body", required_argument, 0, OPT_MAX_BODY}, {"timeout", required_argument, 0, OPT_TIMEOUT},
        {"log-requests", no_argument, 0, OPT_LOG}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    struct option options[64];
    cli_merge_long_options(own, options, 64);
    cli_options o;
    cli_options_init(&o, -1);
    o.announce_kv = true;
    server_config cfg = {.host = "127.0.0.1", .port = 8080, .api_key = getenv("PAGODA_API_KEY")};
    long long v;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h" CLI_COMMON_SHORT_OPTIONS, options, NULL)) != -1) {
        int handled = cli_handle_common_option(&o, c, optarg, "serve");
        if (handled < 0) return 2;
        if (handled) continue;
        switch (c) {
        case OPT_HOST: cfg.host = optarg; break;
        case OPT_PORT:
            if (!parse_count(optarg, 0, 65535, &v)) goto bad;
            cfg.port = (int)v;
            break;
        case OPT_API_KEY: cfg.api_key = optarg; break;
        case OPT_NAME: cfg.served_model_name = optarg; break;
        case OPT_MAX_QUEUE:
            if (!parse_count(optarg, 1, 1 << 24, &v)) goto bad;
            cfg.max_queue = (int32_t)v;
            break;
        case OPT_CORS: cfg.cors_origin = optarg; break;
        case OPT_MAX_BODY:
            if (!parse_count(optarg, 1024, (long long)1 << 32, &v)) goto bad;
            cfg.max_body_bytes = (size_t)v;
            break;
        case OPT_TIMEOUT:
            if (!parse_count(optarg, 1, 86400, &v)) goto bad;
            cfg.timeout_s = (unsigned)v;
            break;
        case OPT_LOG: cfg.log_requests = true; break;
        case 'h': print_help(stdout); return 0;
        default: fprintf(stderr, "see pagoda serve --help\n"); return 2;
        }
        continue;
    bad:
        fprintf(stderr, "pagoda serve: invalid value '%s' for %s (see pagoda serve --help)\n", optarg, argv[optind - 1]);
        return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "pagoda serve: unexpected argument '%s' (see pagoda serve --help)\n", argv[optind]);
        return 2;
    }
    const char *path = o.model_path ? o.model_path : cli_default_model_path();
    char name[256];
    default_model_name(path, name, sizeof name);
    if (!cfg.served_model_name) cfg.served_model_name = name;

    /* signals: a handler that only posts a semaphore; other threads never see them */
    sem_init(&stop_sem, 0, 0);
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &old); /* threads started now inherit the mask */

    server *srv;
    if (server_start(&cfg, &srv) != PAGODA_OK) {
        fprintf(stderr, "pagoda serve: %s\n", pagoda_last_error());
        return 1;
    }
    const char *delay = getenv("PAGODA_SERVE_TEST_LOAD_DELAY_MS"); /* tests: observe the 503 while loading */
    fprintf(stderr, "pagoda serve: listening on http://%s:%d, loading %s\n", cfg.host, server_port(srv), path);
    if (delay && atoi(delay) > 0) usleep((useconds_t)atoi(delay) * 1000);
    pagoda_model *m = cli_load_model(&o, "serve");
    if (!m || server_set_model(srv, m) != PAGODA_OK) {
        if (m) fprintf(stderr, "pagoda serve: %s\n", pagoda_last_error());
        server_free(srv);
        pagoda_model_free(m);
        return 1;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    fprintf(stderr, "pagoda serve: ready: http://%s:%d serving '%s' (%s)\n", cfg.host, server_port(srv),
            cfg.served_model_name, path);
    while (!stop_signal) sem_wait(&stop_sem);
    fprintf(stderr, "pagoda serve: %s: stopping\n", stop_signal == SIGINT ? "SIGINT" : "SIGTERM");
    server_free(srv);
    pagoda_model_free(m);
    sem_destroy(&stop_sem);
    fprintf(stderr, "pagoda serve: stopped\n");
    return 0;
}
