/* bench/bench_attention.c - attention speed: the paged kernels (cpu_paged_attention_run over an F32 or
 * F16 paged cache) against the simple contiguous-cache kernel (the backend's `attention` op, one call
 * per sequence), for one layer of a Llama-3-8B-like shape (32 query heads, 8 kv heads, head_dim 128).
 *
 *   decode, one sequence, context 1k..32k: tokens/s of one layer call, and the effective bandwidth
 *       (unique K/V bytes the step must read / time);
 *   decode, batches of 8..64 sequences (context 1024 each): tokens/s;
 *   prefill of 512..2048 tokens (one sequence, causal): tokens/s and GFLOP/s (4 n_head head_dim
 *       sum_i (i + 1) flops).
 * Each figure is the median of repeated runs (at least 3, for at least --min-time seconds); the K/V
 * of each run comes from a different copy of the cache (enough copies for >= 256 MiB), so decode
 * reads from memory as it would when 32 layers take turns, not from a warm L3.
 * Not a test: it checks nothing. Build (no Makefile rule yet):
 *   make && cc -std=c11 -D_GNU_SOURCE -O2 -march=x86-64-v3 -Iinclude -Isrc -pthread \
 *      bench/bench_attention.c build/libpagoda.a -lm -o build/bench_attention
 * Run: build/bench_attention [--threads N] [--min-time SECONDS] [--quick]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/cpu/cpu_backend.h"         /* defines: cpu_backend_init, backend, backend_attention_args */
#include "backend/cpu/cpu_paged_attention.h" /* defines: cpu_paged_attention_init, cpu_paged_attention_run */
#include "core/dtype.h"                      /* defines: DTYPE_F32, DTYPE_F16, fp32_to_fp16 */
#include "core/threadpool.h"                 /* defines: threadpool_init, threadpool_cpu_count */

enum { N_HEAD = 32, N_KV_HEAD = 8, HEAD_DIM = 128, BLOCK_SIZE = 16, MAX_RUNS = 41 };
static const size_t COPY_BYTES = (size_t)256 << 20; /* K/V copies rotate over at least this much */

static double min_time = 0.3;
static backend *simple;           /* the backend whose `attention` op is the baseline */
static threadpool *pool;
static cpu_paged_attention *paged;
static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float rand_float(void) { /* uniform in [-1, 1) */
    rng_state = rng_state * 6364136223846793005u + 1442695040888963407u;
    return (float)((rng_state >> 40) & 0xffffff) / (float)(1 << 23) - 1.0f;
}

static void *xmalloc(size_t bytes) {
    void *p = malloc(bytes);
    if (!p) {
        fprintf(stderr, "out of memory (%zu bytes)\n", bytes);
        exit(1);
    }
    return p;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median seconds of fn(ctx, run) over repeated runs; one untimed warm-up run first. */
static double time_median(void (*fn)(void *ctx, int run), void *ctx) {
    double times[MAX_RUNS], start = now();
    fn(ctx, 0);
    int n = 0;
    while (n < MAX_RUNS && (n < 3 || now() - start < min_time)) {
        double t0 = now();
        fn(ctx, n + 1);
        times[n++] = now() - t0;
    }
    qsort(times, (size_t)n, sizeof times[0], cmp_double);
    return times[n / 2];
}

/* ---- the two setups ------------------------------------------------------------------------------- */

/* n_seqs sequences of n_q queries each (at the end of seq_len tokens), with n_copies copies of the
 * K/V, paged (cache_type) and contiguous f32 (simple). */
typedef struct setup {
    int n_seqs, n_q, seq_len, n_copies;
    int paged;                  /* 1: the paged cache of cache_type; 0: the contiguous f32 caches */
    uint32_t cache_type;        /* DTYPE_F32 or DTYPE_F16 */
    float *q, *out;             /* [n_seqs * n_q][N_HEAD][HEAD_DIM] */
    void **k, **v;              /* [n_copies] paged: [n_blocks][BLOCK_SIZE][N_KV_HEAD][HEAD_DIM] */
    float **ck, **cv;           /* [n_copies][n_seqs] contiguous: [seq_len][N_KV_HEAD][HEAD_DIM] */
    int32_t *query_start, *seq_lens, *tables, *q_pos;
    int max_blocks;
} setup;

static void fill_cache(uint32_t type, void *dst, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float x = rand_float();
        if (type == DTYPE_F32) ((float *)dst)[i] = x;
        else ((uint16_t *)dst)[i] = fp32_to_fp16(x);
    }
}

static void setup_init(setup *s, int n_seqs, int n_q, int seq_len, int paged_cache, uint32_t cache_type) {
    memset(s, 0, sizeof *s);
    s->n_seqs = n_seqs;
    s->n_q = n_q;
    s->seq_len = seq_len;
    s->paged = paged_cache;
    s->cache_type = paged_cache ? cache_type : DTYPE_F32;
    size_t row = (size_t)N_KV_HEAD * HEAD_DIM, n_tok = (size_t)n_seqs * n_q;
    size_t elem = kv_cache_elem_bytes(s->cache_type);
    size_t bytes = (size_t)n_seqs * seq_len * row * 2 * elem;
    s->n_copies = (int)((COPY_BYTES + bytes - 1) / bytes);
    if (s->n_copies > 64) s->n_copies = 64;
    s->q = xmalloc(n_tok * N_HEAD * HEAD_DIM * sizeof(float));
    s->out = xmalloc(n_tok * N_HEAD * HEAD_DIM * sizeof(float));
    for (size_t i = 0; i < n_tok * N_HEAD * HEAD_DIM; i++) s->q[i] = rand_float();
    s->query_start = xmalloc((size_t)(n_seqs + 1) * sizeof(int32_t));
    s->seq_lens = xmalloc((size_t)n_seqs * sizeof(int32_t));
    s->q_pos = xmalloc((size_t)n_q * sizeof(int32_t));
    for (int i = 0; i < n_q; i++) s->q_pos[i] = seq_len - n_q + i;
    s->query_start[0] = 0;
    for (int i = 0; i < n_seqs; i++) {
        s->query_start[i + 1] = s->query_start[i] + n_q;
        s->seq_lens[i] = seq_len;
    }
    if (paged_cache) {
        s->max_blocks = (seq_len + BLOCK_SIZE - 1) / BLOCK_SIZE;
        int64_t n_blocks = (int64_t)n_seqs * s->max_blocks;
        s->tables = xmalloc((size_t)n_blocks * sizeof(int32_t));
        for (int64_t i = 0; i < n_blocks; i++) s->tables[i] = (int32_t)i;
        for (int64_t i = n_blocks - 1; i > 0; i--) { /* blocks scattered like a long-running pool's */
            rng_state = rng_state * 6364136223846793005u + 1442695040888963407u;
            int64_t j = (int64_t)((rng_state >> 33) % (uint64_t)(i + 1));
            int32_t t = s->tables[i];
            s->tables[i] = s->tables[j];
            s->tables[j] = t;
        }
        s->k = xmalloc((size_t)s->n_copies * sizeof(void *));
        s->v = xmalloc((size_t)s->n_copies * sizeof(void *));
        size_t n_elems = (size_t)n_blocks * BLOCK_SIZE * row;
        for (int c = 0; c < s->n_copies; c++) {
            s->k[c] = xmalloc(n_elems * elem);
            s->v[c] = xmalloc(n_elems * elem);
            fill_cache(cache_type, s->k[c], n_elems);
            fill_cache(cache_type, s->v[c], n_elems);
        }
    } else {
        s->ck = xmalloc((size_t)s->n_copies * n_seqs * sizeof(float *));
        s->cv = xmalloc((size_t)s->n_copies * n_seqs * sizeof(float *));
        for (int c = 0; c < s->n_copies * n_seqs; c++) {
            s->ck[c] = xmalloc((size_t)seq_len * row * sizeof(float));
            s->cv[c] = xmalloc((size_t)seq_len * row * sizeof(float));
            fill_cache(DTYPE_F32, s->ck[c], (size_t)seq_len * row);
            fill_cache(DTYPE_F32, s->cv[c], (size_t)seq_len * row);
        }
    }
}

static void setup_free(setup *s) {
    for (int c = 0; s->k && c < s->n_copies; c++) {
        free(s->k[c]);
        free(s->v[c]);
    }
    for (int c = 0; s->ck && c < s->n_copies * s->n_seqs; c++) {
        free(s->ck[c]);
        free(s->cv[c]);
    }
    free(s->k);
    free(s->v);
    free(s->ck);
    free(s->cv);
    free(s->q);
    free(s->out);
    free(s->query_start);
    free(s->seq_lens);
    free(s->tables);
    free(s->q_pos);
}

static void run_paged(void *ctx, int run) {
    setup *s = ctx;
    int c = run % s->n_copies;
    paged_attention_args a = {
        .q = s->q, .out = s->out, .k_cache = s->k[c], .v_cache = s->v[c], .cache_type = s->cache_type,
        .n_seqs = s->n_seqs, .query_start = s->query_start, .seq_lens = s->seq_lens, .block_tables = s->tables,
        .max_blocks_per_seq = s->max_blocks, .block_size = BLOCK_SIZE, .n_head = N_HEAD, .n_kv_head = N_KV_HEAD,
        .head_dim = HEAD_DIM, .scale = 1.0f / sqrtf((float)HEAD_DIM),
    };
    if (cpu_paged_attention_run(paged, &a) != PAGODA_OK) {
        fprintf(stderr, "paged attention failed: %s\n", pagoda_last_error());
        exit(1);
    }
}

static void run_simple(void *ctx, int run) {
    setup *s = ctx;
    int c = run % s->n_copies;
    size_t qrow = (size_t)N_HEAD * HEAD_DIM;
    for (int i = 0; i < s->n_seqs; i++) {
        backend_attention_args a = {
            s->q + (size_t)i * s->n_q * qrow, s->ck[c * s->n_seqs + i], s->cv[c * s->n_seqs + i],
            s->out + (size_t)i * s->n_q * qrow, s->q_pos, s->n_q, s->seq_len, N_HEAD, N_KV_HEAD, HEAD_DIM,
            1.0f / sqrtf((float)HEAD_DIM),
        };
        simple->attention(simple, &a);
    }
}

/* Seconds per call of the simple kernel, paged F32 and paged F16, for one shape. */
static void measure(int n_seqs, int n_q, int seq_len, double seconds[3]) {
    static const uint32_t types[3] = {DTYPE_F32, DTYPE_F32, DTYPE_F16};
    for (int i = 0; i < 3; i++) {
        setup s;
        setup_init(&s, n_seqs, n_q, seq_len, i > 0, types[i]);
        seconds[i] = time_median(i > 0 ? run_paged : run_simple, &s);
        setup_free(&s);
    }
}

int main(int argc, char **argv) {
    int n_threads = 0, quick = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) n_threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--min-time") && i + 1 < argc) min_time = atof(argv[++i]);
        else if (!strcmp(argv[i], "--quick")) quick = 1;
        else {
            fprintf(stderr, "usage: %s [--threads N] [--min-time SECONDS] [--quick]\n", argv[0]);
            return 2;
        }
    }
    if (n_threads <= 0) n_threads = threadpool_cpu_count();
    paged_attention_limits limits = {64, N_HEAD, HEAD_DIM};
    if (cpu_backend_init(n_threads, 4096, &simple) || threadpool_init(n_threads, &pool) ||
        cpu_paged_attention_init(pool, &limits, &paged)) {
        fprintf(stderr, "init failed: %s\n", pagoda_last_error());
        return 1;
    }
    printf("attention, one layer: %d query heads, %d kv heads, head_dim %d, block_size %d, %d threads\n", N_HEAD,
           N_KV_HEAD, HEAD_DIM, BLOCK_SIZE, n_threads);
    printf("simple = backend attention op on a contiguous f32 cache (one call per sequence); "
           "paged = cpu_paged_attention_run\n\n");
    double kv_row_bytes = 2.0 * N_KV_HEAD * HEAD_DIM; /* K and V elements per token */

    printf("decode, 1 sequence      |   simple f32          |   paged f32           |   paged f16           | f16/simple\n");
    printf("context                 |  tok/s      GB/s      |  tok/s      GB/s      |  tok/s      GB/s      |\n");
    int max_ctx = quick ? 8192 : 32768;
    for (int ctx = 1024; ctx <= max_ctx; ctx *= 2) {
        double t[3];
        measure(1, 1, ctx, t);
        double b32 = kv_row_bytes * ctx * 4, b16 = kv_row_bytes * ctx * 2;
        printf("%-23d | %8.0f  %8.2f    | %8.0f  %8.2f    | %8.0f  %8.2f    | %6.2fx\n", ctx, 1 / t[0],
               b32 / t[0] * 1e-9, 1 / t[1], b32 / t[1] * 1e-9, 1 / t[2], b16 / t[2] * 1e-9, t[0] / t[2]);
    }

    printf("\ndecode, batch (ctx 1024)|   simple f32          |   paged f32           |   paged f16           | f16/simple\n");
    printf("sequences               |  tok/s      GB/s      |  tok/s      GB/s      |  tok/s      GB/s      |\n");
    static const int batches[] = {8, 16, 32, 64};
    for (int i = 0; i < (quick ? 2 : 4); i++) {
        int n = batches[i];
        double t[3];
        measure(n, 1, 1024, t);
        double b32 = kv_row_bytes * 1024 * n * 4, b16 = kv_row_bytes * 1024 * n * 2;
        printf("%-23d | %8.0f  %8.2f    | %8.0f  %8.2f    | %8.0f  %8.2f    | %6.2fx\n", n, n / t[0],
               b32 / t[0] * 1e-9, n / t[1], b32 / t[1] * 1e-9, n / t[2], b16 / t[2] * 1e-9, t[0] / t[2]);
    }

    printf("\nprefill, 1 sequence     |   simple f32          |   paged f32           |   paged f16           | f16/simple\n");
    printf("tokens                  |  tok/s      GFLOP/s   |  tok/s      GFLOP/s   |  tok/s      GFLOP/s   |\n");
    for (int n = 512; n <= (quick ? 1024 : 2048); n *= 2) {
        double t[3];
        measure(1, n, n, t);
        double flops = 4.0 * N_HEAD * HEAD_DIM * (double)n * (n + 1) / 2;
        printf("%-23d | %8.0f  %8.2f    | %8.0f  %8.2f    | %8.0f  %8.2f    | %6.2fx\n", n, n / t[0],
               flops / t[0] * 1e-9, n / t[1], flops / t[1] * 1e-9, n / t[2], flops / t[2] * 1e-9, t[0] / t[2]);
    }
    cpu_paged_attention_free(paged);
    threadpool_free(pool);
    simple->free(simple);
    return 0;
}
