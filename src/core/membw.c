/* core/membw.c - the memory-bandwidth probe (see membw.h): a STREAM triad and a read-only sum,
 * written with AVX2 intrinsics (the baseline ISA) so the compiler cannot shorten either loop, run
 * on every thread of a pool over contiguous 64-byte-aligned chunks. */
#include "core/membw.h"

#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/error.h" /* defines: error_set */

enum { LINE_DOUBLES = 8 }; /* one 64-byte cache line */

/* Values the arrays hold, chosen so every sum below is an exact integer in double precision. */
#define MEMBW_A0 0.0
#define MEMBW_B 1.0
#define MEMBW_C 2.0
#define MEMBW_SCALAR 3.0
#define MEMBW_A (MEMBW_B + MEMBW_SCALAR * MEMBW_C) /* a after a triad: 7 */

typedef enum membw_op { MEMBW_OP_INIT, MEMBW_OP_TRIAD, MEMBW_OP_READ } membw_op;

typedef struct membw_slot {
    double sum;
    char pad[64 - sizeof(double)]; /* one cache line per thread: no false sharing */
} membw_slot;

typedef struct membw_ctx {
    membw_op op;
    double *a, *b, *c;   /* [n_lines * LINE_DOUBLES] each */
    int64_t n_lines;
    membw_slot *sums;    /* [n_threads] the read pass's partial sums */
} membw_ctx;

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void init_chunk(double *a, double *b, double *c, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        a[i] = MEMBW_A0;
        b[i] = MEMBW_B;
        c[i] = MEMBW_C;
    }
}

static void triad_chunk(double *restrict a, const double *restrict b, const double *restrict c, int64_t n) {
    const __m256d s = _mm256_set1_pd(MEMBW_SCALAR);
    for (int64_t i = 0; i < n; i += LINE_DOUBLES) {
        _mm256_store_pd(a + i, _mm256_fmadd_pd(s, _mm256_load_pd(c + i), _mm256_load_pd(b + i)));
        _mm256_store_pd(a + i + 4, _mm256_fmadd_pd(s, _mm256_load_pd(c + i + 4), _mm256_load_pd(b + i + 4)));
    }
}

/* Sum of n doubles (n a multiple of 16), four independent accumulators so additions never wait. */
static double read_chunk(const double *x, int64_t n) {
    __m256d s0 = _mm256_setzero_pd(), s1 = s0, s2 = s0, s3 = s0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_add_pd(s0, _mm256_load_pd(x + i));
        s1 = _mm256_add_pd(s1, _mm256_load_pd(x + i + 4));
        s2 = _mm256_add_pd(s2, _mm256_load_pd(x + i + 8));
        s3 = _mm256_add_pd(s3, _mm256_load_pd(x + i + 12));
    }
    double lanes[4];
    _mm256_storeu_pd(lanes, _mm256_add_pd(_mm256_add_pd(s0, s1), _mm256_add_pd(s2, s3)));
    double sum = lanes[0] + lanes[1] + lanes[2] + lanes[3];
    for (; i < n; i++) sum += x[i];
    return sum;
}

static void membw_worker(void *arg, int index, int n_threads) {
    membw_ctx *ctx = arg;
    int64_t begin, end;
    threadpool_split(ctx->n_lines, index, n_threads, &begin, &end);
    int64_t off = begin * LINE_DOUBLES, n = (end - begin) * LINE_DOUBLES;
    switch (ctx->op) {
    case MEMBW_OP_INIT: init_chunk(ctx->a + off, ctx->b + off, ctx->c + off, n); break;
    case MEMBW_OP_TRIAD: triad_chunk(ctx->a + off, ctx->b + off, ctx->c + off, n); break;
    case MEMBW_OP_READ:
        ctx->sums[index].sum = read_chunk(ctx->a + off, n) + read_chunk(ctx->b + off, n) +
                               read_chunk(ctx->c + off, n);
        break;
    }
}

/* Runs one pass of `op` on every thread; returns its wall time. */
static double timed_pass(threadpool *pool, membw_ctx *ctx, membw_op op) {
    ctx->op = op;
    double t0 = now_seconds();
    threadpool_run(pool, membw_worker, ctx);
    return now_seconds() - t0;
}

static double read_total(const membw_ctx *ctx, int n_threads) {
    double total = 0;
    for (int t = 0; t < n_threads; t++) total += ctx->sums[t].sum;
    return total;
}

pagoda_status membw_measure(threadpool *pool, size_t array_bytes, int n_runs, membw_result *out) {
    memset(out, 0, sizeof *out);
    if (!pool) return error_set(PAGODA_ERR_INVALID_ARGUMENT, "membw: no thread pool");
    if (array_bytes == 0) array_bytes = (size_t)MEMBW_DEFAULT_ARRAY_MIB << 20;
    if (n_runs <= 0) n_runs = MEMBW_DEFAULT_RUNS;
    if (array_bytes < ((size_t)1 << 20) || array_bytes > ((size_t)64 << 30))
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "membw: arrays of %zu bytes; expected 1 MiB to 64 GiB",
                         array_bytes);
    if (n_runs > 1000) return error_set(PAGODA_ERR_INVALID_ARGUMENT, "membw: %d runs; at most 1000", n_runs);
    int n_threads = threadpool_n_threads(pool);
    /* Whole lines, and whole lines per thread, so every chunk stays 64-byte aligned and a multiple
     * of 16 doubles for the read loop. */
    int64_t n_lines = (int64_t)(array_bytes / (LINE_DOUBLES * sizeof(double)));
    n_lines -= n_lines % (2 * n_threads);
    array_bytes = (size_t)n_lines * LINE_DOUBLES * sizeof(double);

    membw_ctx ctx = {.n_lines = n_lines};
    ctx.a = aligned_alloc(64, array_bytes);
    ctx.b = aligned_alloc(64, array_bytes);
    ctx.c = aligned_alloc(64, array_bytes);
    ctx.sums = aligned_alloc(64, sizeof(membw_slot) * (size_t)n_threads);
    pagoda_status st = PAGODA_OK;
    if (!ctx.a || !ctx.b || !ctx.c || !ctx.sums) {
        st = error_set(PAGODA_ERR_OUT_OF_MEMORY, "membw: cannot allocate 3 arrays of %zu MiB", array_bytes >> 20);
        goto done;
    }
    timed_pass(pool, &ctx, MEMBW_OP_INIT); /* first touch: each thread maps its own chunk */

    double best_triad = 0, best_read = 0;
    for (int r = 0; r <= n_runs; r++) { /* pass 0 warms up and is not counted */
        double t = timed_pass(pool, &ctx, MEMBW_OP_TRIAD);
        if (r > 0 && (best_triad == 0 || t < best_triad)) best_triad = t;
    }
    const double n_elems = (double)n_lines * LINE_DOUBLES;
    const double expected = n_elems * (MEMBW_A + MEMBW_B + MEMBW_C); /* an exact integer */
    for (int r = 0; r <= n_runs; r++) {
        double t = timed_pass(pool, &ctx, MEMBW_OP_READ);
        double got = read_total(&ctx, n_threads);
        if (got != expected) {
            st = error_set(PAGODA_ERR_INTERNAL, "membw: the read pass summed %.17g, expected %.17g "
                           "(the triad or the sum is wrong)", got, expected);
            goto done;
        }
        if (r > 0 && (best_read == 0 || t < best_read)) best_read = t;
    }
    const double pass_bytes = 3.0 * (double)array_bytes;
    *out = (membw_result){
        .triad_gbs = pass_bytes / best_triad / 1e9,
        .read_gbs = pass_bytes / best_read / 1e9,
        .triad_seconds = best_triad,
        .read_seconds = best_read,
        .array_bytes = array_bytes,
        .n_threads = n_threads,
        .n_runs = n_runs,
    };
done:
    free(ctx.a);
    free(ctx.b);
    free(ctx.c);
    free(ctx.sums);
    return st;
}
