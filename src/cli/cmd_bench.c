/* cli/cmd_bench.c - `pagoda bench`: prompt-processing and generation speed through the public API,
 * in the manner of llama.cpp's llama-bench, plus peak memory and the decode ceiling that memory
 * bandwidth allows.
 *
 * For each thread count the model is loaded once (one sequence, prefix caching off, so every
 * prompt is computed), then each test runs once to warm up (a short run: pp with at most 64 tokens,
 * tg with at most 8, enough to read every weight once) and r times measured:
 *   pp<P>: one request of P random tokens and max_tokens 1; speed = P / the time to the first token
 *          (the prompt's forward passes in chunks of the batch size, plus one greedy pick).
 *   tg<N>: a one-token prompt, then N tokens generated one at a time (greedy, ignore_eos);
 *          speed = N / the time from the first generated token to the last.
 * The table reports mean +- sample standard deviation of the per-repetition speeds.
 * Decode ceiling: the bytes of weights one generated token reads (every tensor but the token
 * embedding, of which one row, or all of it when the output projection is tied to it) divided by
 * the read bandwidth measured by core/membw.h with the same number of threads, just before the
 * model is loaded. The probe runs in a child process so its arrays stay out of the peak memory,
 * which is getrusage's ru_maxrss of this process after the tests (a high-water mark: it includes
 * the mapped weights that were touched and the KV cache).
 * Not measured: batches of many sequences (see `pagoda batch`), the KV cache's reads per token.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/commands.h"    /* defines: cmd_bench */
#include "core/cpu.h"        /* defines: cpu_features_string */
#include "core/dtype.h"      /* defines: dtype_name, DTYPE_COUNT */
#include "core/membw.h"      /* defines: membw_measure, membw_result */
#include "core/threadpool.h" /* defines: threadpool_init, threadpool_cpu_count */
#include "gguf/gguf.h"       /* defines: gguf_open, gguf_tensor_at, gguf_find_tensor */
#include "pagoda.h"          /* defines: pagoda_model_load, pagoda_generate, ... */

enum { MAX_LIST = 16, MAX_REPS = 1000 };

static void print_help(FILE *out) {
    fprintf(out,
            "usage: pagoda bench -m MODEL [-p 512] [-n 128] [-t THREADS] [-r 5] [--json]\n"
            "       pagoda bench serve --url URL ...   (load-test a server; see pagoda bench serve --help)\n\n"
            "Measures prompt processing (pp) and text generation (tg) speed like llama.cpp's\n"
            "llama-bench, through the public API: the model is loaded once per thread count, each\n"
            "test runs once to warm up (pp with at most 64 tokens, tg with at most 8), then REPS\n"
            "times; the table gives"
            " mean +- standard deviation of the per-run speeds.\n"
            "  ppP: one request of P random tokens; tok/s = P / time to compute the prompt.\n"
            "  tgN: a one-token prompt, then N tokens one at a time (greedy, end-of-text ignored);\n"
            "       tok/s = N / time from the first generated token to the last.\n"
            "Also reported: peak memory (ru_maxrss), the memory bandwidth measured with the same\n"
            "threads just before loading (a STREAM triad and a read-only sum, best of several\n"
            "passes, in a child process), the weight bytes read per generated token (every tensor\n"
            "but the token embedding, of which one row, or all when the output is tied to it), and\n"
            "the decode ceiling = read bandwidth / those bytes, with tg as a percentage of it.\n\n"
            "options:\n"
            "  -m, --model FILE      GGUF model (required)\n"
            "  -p, --n-prompt N,..   prompt lengths to test, 0 for none (default 512)\n"
            "  -n, --n-gen N,..      generation lengths to test, 0 for none (default 128)\n"
            "  -t, --threads N,..    thread counts (default: all cores, here %d)\n"
            "  -r, --repetitions R   measured runs per test (default 5)\n"
            "  -b, --batch-size N    most tokens per forward step (default 512; longer prompts are\n"
            "                        computed in chunks, like llama-bench's n_ubatch)\n"
            "      --kv-type T       KV cache type: f16 (default), bf16 or f32\n"
            "      --membw-mib M     MiB per array of the bandwidth probe (3 arrays; default %d;\n"
            "                        0 turns the probe and the ceiling off)\n"
            "      --no-warmup       skip the warm-up run of each test\n"
            "      --json            print JSON instead of the markdown table\n"
            "  -h, --help            show this help\n\n"
            "Progress goes to stderr; the table (or JSON) to stdout.\n"
            "example: pagoda bench -m model.gguf -p 512 -n 128 -t 1,2 -r 5\n",
            threadpool_cpu_count(), MEMBW_DEFAULT_ARRAY_MIB);
}

/* ---- Options ------------------------------------------------------------------------------------ */
typedef struct bench_options {
    const char *model_path;
    int n_prompt[MAX_LIST], n_n_prompt;
    int n_gen[MAX_LIST], n_n_gen;
    int threads[MAX_LIST], n_threads;
    int reps;
    int n_batch;
    pagoda_kv_type kv_type;
    int membw_mib;
    bool warmup;
    bool json;
} bench_options;

/* Parses "a,b,c" of integers in [lo, hi]; false on anything else. */
static bool parse_list(const char *text, int lo, int hi, int *out, int *n_out) {
    int n = 0;
    const char *p = text;
    for (;;) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (errno || end == p || v < lo || v > hi || n == MAX_LIST) return false;
        out[n++] = (int)v;
        if (*end == '\0') break;
        if (*end != ',') return false;
        p = end + 1;
    }
    *n_out = n;
    return true;
}

static int bad_value(const char *option, const char *arg, const char *why) {
    fprintf(stderr, "pagoda bench: invalid value '%s' for %s: %s\n", arg, option, why);
    return 2;
}

/* Returns 0 to go on, else the exit code (help printed: -1 meaning exit 0). */
static int parse_options(int argc, char **argv, bench_options *o) {
    enum { OPT_JSON = 1000, OPT_NO_WARMUP, OPT_MEMBW, OPT_KV_TYPE };
    static const struct option long_options[] = {
        {"model", required_argument, 0, 'm'},       {"n-prompt", required_argument, 0, 'p'},
        {"n-gen", required_argument, 0, 'n'},       {"threads", required_argument, 0, 't'},
        {"repetitions", required_argument, 0, 'r'}, {"batch-size", required_argument, 0, 'b'},
        {"kv-type", required_argument, 0, OPT_KV_TYPE}, {"membw-mib", required_argument, 0, OPT_MEMBW},
        {"no-warmup", no_argument, 0, OPT_NO_WARMUP}, {"json", no_argument, 0, OPT_JSON},
        {"help", no_argument, 0, 'h'},              {0, 0, 0, 0}};
    *o = (bench_options){.n_prompt = {512}, .n_n_prompt = 1, .n_gen = {128}, .n_n_gen = 1,
                         .threads = {threadpool_cpu_count()}, .n_threads = 1, .reps = 5, .n_batch = 512,
                         .kv_type = PAGODA_KV_F16, .membw_mib = MEMBW_DEFAULT_ARRAY_MIB, .warmup = true};
    int c, one;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:p:n:t:r:b:h", long_options, NULL)) != -1) {
        switch (c) {
        case 'm': o->model_path = optarg; break;
        case 'p':
            if (!parse_list(optarg, 0, 1 << 16, o->n_prompt, &o->n_n_prompt))
                return bad_value("--n-prompt", optarg, "expected a list of 0 to 65536");
            break;
        case 'n':
            if (!parse_list(optarg, 0, 1 << 16, o->n_gen, &o->n_n_gen))
                return bad_value("--n-gen", optarg, "expected a list of 0 to 65536");
            break;
        case 't':
            if (!parse_list(optarg, 1, 1024, o->threads, &o->n_threads))
                return bad_value("--threads", optarg, "expected a list of 1 to 1024");
            break;
        case 'r':
            if (!parse_list(optarg, 1, MAX_REPS, &o->reps, &one) || one != 1)
                return bad_value("--repetitions", optarg, "expected 1 to 1000");
            break;
        case 'b':
            if (!parse_list(optarg, 1, 1 << 16, &o->n_batch, &one) || one != 1)
                return bad_value("--batch-size", optarg, "expected 1 to 65536");
            break;
        case OPT_KV_TYPE:
            if (!strcmp(optarg, "f16")) o->kv_type = PAGODA_KV_F16;
            else if (!strcmp(optarg, "bf16")) o->kv_type = PAGODA_KV_BF16;
            else if (!strcmp(optarg, "f32")) o->kv_type = PAGODA_KV_F32;
            else return bad_value("--kv-type", optarg, "expected f16, bf16 or f32");
            break;
        case OPT_MEMBW:
            if (!parse_list(optarg, 0, 65536, &o->membw_mib, &one) || one != 1)
                return bad_value("--membw-mib", optarg, "expected 0 to 65536");
            break;
        case OPT_NO_WARMUP: o->warmup = false; break;
        case OPT_JSON: o->json = true; break;
        case 'h': print_help(stdout); return -1;
        default: fprintf(stderr, "see pagoda bench --help\n"); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "pagoda bench: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    if (!o->model_path) {
        fprintf(stderr, "pagoda bench: give the model with -m FILE (see --help)\n");
        return 2;
    }
    if (o->membw_mib == 0) o->membw_mib = -1; /* off */
    return 0;
}

/* ---- What one generated token reads ------------------------------------------------------------ */
typedef struct weight_summary {
    uint64_t bytes_per_token;  /* weights read by one decode step */
    const char *type;          /* the type holding most of the matrix bytes, e.g. "Q8_0" (static) */
    bool mixed;                /* matrices of other types exist too */
} weight_summary;

static pagoda_status summarize_weights(const char *path, weight_summary *out) {
    gguf_file *f;
    pagoda_status st = gguf_open(path, &f);
    if (st) return st;
    const gguf_tensor *embd = gguf_find_tensor(f, "token_embd.weight");
    bool tied = gguf_find_tensor(f, "output.weight") == NULL;
    uint64_t total = 0, by_type[DTYPE_COUNT] = {0};
    for (int64_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        if (t == embd && !tied) {
            total += t->ne[1] > 0 ? t->n_bytes / (uint64_t)t->ne[1] : 0; /* one row is gathered */
        } else {
            total += t->n_bytes;
        }
        if (t->n_dims >= 2 && t->type < DTYPE_COUNT) by_type[t->type] += t->n_bytes;
    }
    uint32_t best = 0;
    int n_types = 0;
    for (uint32_t ty = 0; ty < DTYPE_COUNT; ty++) {
        if (by_type[ty]) n_types++;
        if (by_type[ty] > by_type[best]) best = ty;
    }
    static char type_name[32];
    snprintf(type_name, sizeof type_name, "%s", dtype_name(best));
    *out = (weight_summary){.bytes_per_token = total, .type = type_name, .mixed = n_types > 1};
    gguf_close(f);
    return PAGODA_OK;
}

/* ---- Bandwidth probe in a child process ---------------------------------------------------------- */
/* What the probe process writes back through its pipe. */
typedef struct probe_reply {
    pagoda_status status;
    membw_result result;
    char message[200];  /* the error, when status is not PAGODA_OK */
} probe_reply;

/* Runs membw_measure with n_threads threads in a forked child (no threads exist in this process
 * at that point), so its 3 arrays never count in this process's peak memory. */
static bool probe_bandwidth(int n_threads, int array_mib, membw_result *out, char *err, size_t err_cap) {
    int fds[2];
    if (pipe(fds) != 0) {
        snprintf(err, err_cap, "pipe: %s", strerror(errno));
        return false;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, err_cap, "fork: %s", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return false;
    }
    if (pid == 0) {
        close(fds[0]);
        probe_reply reply = {0};
        threadpool *pool;
        reply.status = threadpool_init(n_threads, &pool);
        if (reply.status == PAGODA_OK) {
            reply.status = membw_measure(pool, (size_t)array_mib << 20, 0, &reply.result);
            threadpool_free(pool);
        }
        snprintf(reply.message, sizeof reply.message, "%s", reply.status ? pagoda_last_error() : "");
        ssize_t w = write(fds[1], &reply, sizeof reply);
        _exit(w == (ssize_t)sizeof reply ? 0 : 1);
    }
    close(fds[1]);
    probe_reply reply;
    size_t got = 0;
    while (got < sizeof reply) {
        ssize_t n = read(fds[0], (char *)&reply + got, sizeof reply - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += (size_t)n;
    }
    close(fds[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (got != sizeof reply) {
        snprintf(err, err_cap, "the probe process ended without a result");
        return false;
    }
    if (reply.status != PAGODA_OK) {
        snprintf(err, err_cap, "%s", reply.message);
        return false;
    }
    *out = reply.result;
    return true;
}

/* What the output needs of pagoda_model_info, copied before the model is freed. */
typedef struct bench_model {
    char architecture[32];
    char kv_type[16];
    size_t file_bytes;
    int64_t n_params;
} bench_model;

/* ---- The tests -------------------------------------------------------------------------------- */
typedef struct bench_row {
    int n_threads;
    int n_prompt, n_gen;          /* one of them is 0 */
    double samples[MAX_REPS];     /* tok/s per repetition */
    int n_samples;
    double mean, stddev;
    bool has_membw;
    membw_result membw;
    double ceiling_tps;           /* tg rows with a probe: read bandwidth / bytes per token */
    long peak_rss_kib;            /* ru_maxrss after the row's thread count finished */
} bench_row;

static uint64_t rng_next(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* One run of a test; *tps its speed. Returns false (message printed) on failure. */
static bool run_once(pagoda_model *m, int n_vocab, int n_prompt, int n_gen, uint64_t *rng, int32_t *tokens,
                     double *tps) {
    pagoda_sampling_params sp = pagoda_sampling_params_default();
    sp.temperature = 0;
    sp.ignore_eos = true;
    int n_tokens = n_prompt > 0 ? n_prompt : 1;
    for (int i = 0; i < n_tokens; i++) tokens[i] = (int32_t)(rng_next(rng) % (uint64_t)n_vocab);
    sp.max_tokens = n_prompt > 0 ? 1 : n_gen + 1; /* tg: the prompt's step yields the first token */
    pagoda_generation_stats stats;
    if (pagoda_generate(m, tokens, (size_t)n_tokens, &sp, NULL, NULL, &stats) != PAGODA_OK) {
        fprintf(stderr, "pagoda bench: %s\n", pagoda_last_error());
        return false;
    }
    if (n_prompt > 0) {
        if (stats.n_prompt_computed != n_prompt) {
            fprintf(stderr, "pagoda bench: only %d of %d prompt tokens were computed\n", stats.n_prompt_computed,
                    n_prompt);
            return false;
        }
        *tps = stats.prompt_seconds > 0 ? n_prompt / stats.prompt_seconds : 0;
    } else {
        if (stats.n_generated != n_gen + 1) {
            fprintf(stderr, "pagoda bench: generated %d tokens, expected %d\n", stats.n_generated, n_gen + 1);
            return false;
        }
        *tps = stats.generation_seconds > 0 ? n_gen / stats.generation_seconds : 0;
    }
    return true;
}

static void finish_row(bench_row *row) {
    double sum = 0, sq = 0;
    for (int i = 0; i < row->n_samples; i++) sum += row->samples[i];
    row->mean = row->n_samples ? sum / row->n_samples : 0;
    for (int i = 0; i < row->n_samples; i++) sq += (row->samples[i] - row->mean) * (row->samples[i] - row->mean);
    row->stddev = row->n_samples > 1 ? sqrt(sq / (row->n_samples - 1)) : 0;
}

/* Runs every test for one thread count, appending rows. Returns false on failure. */
static bool bench_threads(const bench_options *o, int n_threads, const weight_summary *ws, bench_model *bm,
                          bench_row *rows, int *n_rows) {
    bench_row base = {.n_threads = n_threads};
    if (o->membw_mib > 0) {
        char err[256];
        fprintf(stderr, "bench: %d threads: measuring memory bandwidth (3 x %d MiB)...\n", n_threads, o->membw_mib);
        if (!probe_bandwidth(n_threads, o->membw_mib, &base.membw, err, sizeof err)) {
            fprintf(stderr, "pagoda bench: bandwidth probe: %s\n", err);
            return false;
        }
        base.has_membw = true;
        fprintf(stderr, "bench: %d threads: read %.1f GB/s, triad %.1f GB/s\n", n_threads, base.membw.read_gbs,
                base.membw.triad_gbs);
    }
    int max_prompt = 1, max_gen = 0;
    for (int i = 0; i < o->n_n_prompt; i++) if (o->n_prompt[i] > max_prompt) max_prompt = o->n_prompt[i];
    for (int i = 0; i < o->n_n_gen; i++) if (o->n_gen[i] > max_gen) max_gen = o->n_gen[i];
    pagoda_model_params mp = pagoda_model_params_default();
    mp.n_threads = n_threads;
    mp.n_batch = o->n_batch;
    mp.max_seqs = 1;
    mp.no_prefix_caching = true;
    mp.kv_type = o->kv_type;
    mp.n_ctx = (max_prompt > max_gen + 2 ? max_prompt : max_gen + 2) + 16;
    pagoda_model *m;
    fprintf(stderr, "bench: %d threads: loading %s\n", n_threads, o->model_path);
    if (pagoda_model_load(o->model_path, &mp, &m) != PAGODA_OK) {
        fprintf(stderr, "pagoda bench: %s\n", pagoda_last_error());
        return false;
    }
    pagoda_model_info info;
    pagoda_model_get_info(m, &info);
    snprintf(bm->architecture, sizeof bm->architecture, "%s", info.architecture);
    snprintf(bm->kv_type, sizeof bm->kv_type, "%s", info.kv_type);
    bm->file_bytes = info.file_bytes;
    bm->n_params = info.n_params;
    int32_t *tokens = malloc(sizeof(int32_t) * (size_t)max_prompt);
    bool ok = tokens != NULL;
    uint64_t rng = 0x5eed + (uint64_t)n_threads;
    for (int pass = 0; pass < 2 && ok; pass++) { /* pp tests, then tg tests */
        int n_tests = pass == 0 ? o->n_n_prompt : o->n_n_gen;
        for (int t = 0; t < n_tests && ok; t++) {
            int n_prompt = pass == 0 ? o->n_prompt[t] : 0, n_gen = pass == 1 ? o->n_gen[t] : 0;
            if (n_prompt == 0 && n_gen == 0) continue;
            bench_row *row = &rows[(*n_rows)++];
            *row = base;
            row->n_prompt = n_prompt;
            row->n_gen = n_gen;
            const char *kind = n_prompt ? "pp" : "tg";
            int len = n_prompt ? n_prompt : n_gen;
            double tps;
            if (o->warmup) {
                fprintf(stderr, "bench: %d threads: %s%d warm-up\n", n_threads, kind, len);
                /* a short run reads every weight once */
                ok = run_once(m, info.n_vocab, n_prompt < 64 ? n_prompt : 64, n_gen < 8 ? n_gen : 8, &rng,
                              tokens, &tps);
            }
            for (int r = 0; r < o->reps && ok; r++) {
                ok = run_once(m, info.n_vocab, n_prompt, n_gen, &rng, tokens, &tps);
                if (!ok) break;
                row->samples[row->n_samples++] = tps;
                fprintf(stderr, "bench: %d threads: %s%d rep %d/%d: %.2f tok/s\n", n_threads, kind, len, r + 1,
                        o->reps, tps);
            }
            finish_row(row);
            if (n_gen && row->has_membw && ws->bytes_per_token)
                row->ceiling_tps = row->membw.read_gbs * 1e9 / (double)ws->bytes_per_token;
        }
    }
    free(tokens);
    pagoda_model_free(m);
    struct rusage ru;
    long peak = getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : 0;
    for (int i = 0; i < *n_rows; i++)
        if (rows[i].n_threads == n_threads) rows[i].peak_rss_kib = peak;
    return ok;
}

/* ---- Output ----------------------------------------------------------------------------------- */
static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static void format_bytes(double bytes, char *out, size_t cap) {
    if (bytes >= 1024.0 * 1024 * 1024) snprintf(out, cap, "%.2f GiB", bytes / (1024.0 * 1024 * 1024));
    else snprintf(out, cap, "%.2f MiB", bytes / (1024.0 * 1024));
}

static void format_params(double n, char *out, size_t cap) {
    if (n >= 1e9) snprintf(out, cap, "%.2f B", n / 1e9);
    else snprintf(out, cap, "%.2f M", n / 1e6);
}

static void print_markdown(const bench_options *o, const weight_summary *ws, const bench_model *info,
                           const bench_row *rows, int n_rows) {
    char size[32], params[32];
    format_bytes((double)info->file_bytes, size, sizeof size);
    format_params((double)info->n_params, params, sizeof params);
    printf("| model | type | size | params | threads | test | tok/s | %% of ceiling |\n");
    printf("| --- | --- | ---: | ---: | ---: | --- | ---: | ---: |\n");
    for (int i = 0; i < n_rows; i++) {
        const bench_row *r = &rows[i];
        char test[32], pct[32] = "-";
        snprintf(test, sizeof test, "%s%d", r->n_prompt ? "pp" : "tg", r->n_prompt ? r->n_prompt : r->n_gen);
        if (r->ceiling_tps > 0) snprintf(pct, sizeof pct, "%.0f%%", 100.0 * r->mean / r->ceiling_tps);
        printf("| %s | %s%s | %s | %s | %d | %s | %.2f ± %.2f | %s |\n", base_name(o->model_path), ws->type,
               ws->mixed ? " (mixed)" : "", size, params, r->n_threads, test, r->mean, r->stddev, pct);
    }
    printf("\n");
    printf("weights read per generated token: %.1f MB\n", (double)ws->bytes_per_token / 1e6);
    for (int i = 0; i < n_rows; i++) {
        const bench_row *r = &rows[i];
        if (i > 0 && rows[i - 1].n_threads == r->n_threads) continue;
        printf("%d threads: ", r->n_threads);
        if (r->has_membw) {
            printf("bandwidth read %.1f GB/s, triad %.1f GB/s (3 x %zu MiB, best of %d); decode ceiling %.1f tok/s; ",
                   r->membw.read_gbs, r->membw.triad_gbs, r->membw.array_bytes >> 20, r->membw.n_runs,
                   r->membw.read_gbs * 1e9 / (double)ws->bytes_per_token);
        }
        printf("peak memory %.1f MiB\n", (double)r->peak_rss_kib / 1024.0);
    }
    printf("cpu: %s; %d repetitions after %s warm-up; batch %d; KV %s\n", cpu_features_string(), o->reps,
           o->warmup ? "a" : "no", o->n_batch, info->kv_type);
}

static int print_json(const bench_options *o, const weight_summary *ws, const bench_model *info,
                      const bench_row *rows, int n_rows) {
    json_t *root = json_object(), *results = json_array();
    json_object_set_new(root, "model_path", json_string(o->model_path));
    json_object_set_new(root, "model_file", json_string(base_name(o->model_path)));
    json_object_set_new(root, "model_type", json_string(ws->type));
    json_object_set_new(root, "model_type_mixed", json_boolean(ws->mixed));
    json_object_set_new(root, "architecture", json_string(info->architecture));
    json_object_set_new(root, "model_size_bytes", json_integer((json_int_t)info->file_bytes));
    json_object_set_new(root, "n_params", json_integer((json_int_t)info->n_params));
    json_object_set_new(root, "weight_bytes_per_token", json_integer((json_int_t)ws->bytes_per_token));
    json_object_set_new(root, "cpu_features", json_string(cpu_features_string()));
    json_object_set_new(root, "repetitions", json_integer(o->reps));
    json_object_set_new(root, "warmup", json_boolean(o->warmup));
    json_object_set_new(root, "n_batch", json_integer(o->n_batch));
    json_object_set_new(root, "kv_type", json_string(info->kv_type));
    for (int i = 0; i < n_rows; i++) {
        const bench_row *r = &rows[i];
        json_t *row = json_object(), *samples = json_array();
        char test[32];
        snprintf(test, sizeof test, "%s%d", r->n_prompt ? "pp" : "tg", r->n_prompt ? r->n_prompt : r->n_gen);
        json_object_set_new(row, "test", json_string(test));
        json_object_set_new(row, "n_threads", json_integer(r->n_threads));
        json_object_set_new(row, "n_prompt", json_integer(r->n_prompt));
        json_object_set_new(row, "n_gen", json_integer(r->n_gen));
        json_object_set_new(row, "avg_ts", json_real(r->mean));
        json_object_set_new(row, "stddev_ts", json_real(r->stddev));
        for (int s = 0; s < r->n_samples; s++) json_array_append_new(samples, json_real(r->samples[s]));
        json_object_set_new(row, "samples_ts", samples);
        json_object_set_new(row, "peak_rss_bytes", json_integer((json_int_t)r->peak_rss_kib * 1024));
        if (r->has_membw) {
            json_object_set_new(row, "membw_read_gbs", json_real(r->membw.read_gbs));
            json_object_set_new(row, "membw_triad_gbs", json_real(r->membw.triad_gbs));
            json_object_set_new(row, "membw_array_bytes", json_integer((json_int_t)r->membw.array_bytes));
        }
        if (r->ceiling_tps > 0) {
            json_object_set_new(row, "ceiling_ts", json_real(r->ceiling_tps));
            json_object_set_new(row, "ceiling_pct", json_real(100.0 * r->mean / r->ceiling_tps));
        }
        json_array_append_new(results, row);
    }
    json_object_set_new(root, "results", results);
    int rc = json_dumpf(root, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(6)) == 0 ? 0 : 1;
    putchar('\n');
    json_decref(root);
    return rc;
}

int cmd_bench(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "serve")) return cmd_bench_serve(argc - 1, argv + 1);
    bench_options o;
    int rc = parse_options(argc, argv, &o);
    if (rc) return rc < 0 ? 0 : rc;
    weight_summary ws;
    if (summarize_weights(o.model_path, &ws) != PAGODA_OK) {
        fprintf(stderr, "pagoda bench: %s\n", pagoda_last_error());
        return 1;
    }
    int max_rows = o.n_threads * (o.n_n_prompt + o.n_n_gen);
    bench_row *rows = calloc((size_t)max_rows, sizeof *rows);
    if (!rows) {
        fprintf(stderr, "pagoda bench: out of memory\n");
        return 1;
    }
    bench_model info = {0};
    int n_rows = 0;
    for (int i = 0; i < o.n_threads; i++) {
        if (!bench_threads(&o, o.threads[i], &ws, &info, rows, &n_rows)) {
            free(rows);
            return 1;
        }
    }
    rc = o.json ? print_json(&o, &ws, &info, rows, n_rows) : (print_markdown(&o, &ws, &info, rows, n_rows), 0);
    free(rows);
    return rc;
}
