/* tests/test_threadpool.c - the thread pool (core/threadpool.h): work splitting and run/wake-up.
 *
 * 1. threadpool_split: for many (n_items, n_threads), the ranges are contiguous, cover [0, n_items)
 *    exactly once, and differ in size by at most one (checked against the arithmetic definition, not
 *    against the function's own earlier output).
 * 2. Back-to-back runs with 1..8 threads: every run, every thread must be called exactly once with
 *    its own index and the right thread count, and must have finished before threadpool_run returns.
 *    A lost wake-up shows up as a hang or a stale slot; a race as a wrong count (and under TSan).
 *    Some runs are spaced out so the workers fall asleep on the condition variable between them.
 * 3. init/free repeatedly, including free right after init and after a single run; the NULL and
 *    argument-checking corners.
 * Quick (well under 2 s) so that it can also run under ASan and TSan:
 *   make BUILD=build-tsan OPT=-O1 SAN=-fsanitize=thread build-tsan/tests/test_threadpool
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/threadpool.h" /* defines: threadpool_init, threadpool_run, threadpool_split, threadpool_free */
#include "testlib.h"

enum { MAX_THREADS = 8 };

/* ---- threadpool_split ----------------------------------------------------------------------------- */

static void check_split(int64_t n_items, int n) {
    int64_t expect_begin = 0, min_size = INT64_MAX, max_size = -1;
    for (int i = 0; i < n; i++) {
        int64_t begin = -1, end = -1;
        threadpool_split(n_items, i, n, &begin, &end);
        CHECK_MSG(begin == expect_begin, "split(%lld, %d of %d): begins at %lld, expected %lld", (long long)n_items,
                  i, n, (long long)begin, (long long)expect_begin);
        CHECK_MSG(end >= begin, "split(%lld, %d of %d): end %lld < begin %lld", (long long)n_items, i, n,
                  (long long)end, (long long)begin);
        int64_t size = end - begin;
        if (size < min_size) min_size = size;
        if (size > max_size) max_size = size;
        expect_begin = end;
    }
    CHECK_MSG(expect_begin == n_items, "split(%lld, %d): ranges end at %lld", (long long)n_items, n,
              (long long)expect_begin);
    CHECK_MSG(max_size - min_size <= 1, "split(%lld, %d): sizes from %lld to %lld", (long long)n_items, n,
              (long long)min_size, (long long)max_size);
    /* Balanced means every size is floor(n_items / n) or that plus one. */
    CHECK_MSG(min_size == n_items / n, "split(%lld, %d): smallest range %lld", (long long)n_items, n,
              (long long)min_size);
}

static void test_split(void) {
    for (int n = 1; n <= 17; n++)
        for (int64_t items = 0; items <= 300; items++) check_split(items, n);
    const int64_t big[] = {1025, 4099, 65536, 1000003, (int64_t)1 << 40, ((int64_t)1 << 40) + 7};
    const int threads[] = {1, 2, 3, 7, 64, 1000, 1024};
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++)
        for (size_t j = 0; j < sizeof threads / sizeof threads[0]; j++) check_split(big[i], threads[j]);
}

/* ---- runs ----------------------------------------------------------------------------------------- */

typedef struct run_ctx {
    int n_threads;                   /* what the pool was built with */
    long run_id;                     /* set by the caller before each run */
    long slot[MAX_THREADS];          /* thread i writes run_id here (plain store: TSan checks the pool's
                                        happens-before edges through it) */
    atomic_int calls[MAX_THREADS];   /* calls per thread index, cumulative */
    atomic_long index_sum;           /* sum of indices seen, cumulative */
    atomic_int bad_args;             /* calls with an out-of-range index or wrong n_threads */
} run_ctx;

static void run_fn(void *arg, int thread_index, int n_threads) {
    run_ctx *c = arg;
    if (thread_index < 0 || thread_index >= c->n_threads || n_threads != c->n_threads) {
        atomic_fetch_add(&c->bad_args, 1);
        return;
    }
    c->slot[thread_index] = c->run_id;
    atomic_fetch_add(&c->calls[thread_index], 1);
    atomic_fetch_add(&c->index_sum, thread_index);
}

static void sleep_us(long us) {
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Up to n_fast back-to-back runs (at least 30, then stopping once budget_s has passed), then n_slow
 * runs separated by a pause long enough for the workers to stop spinning and wait on the condition
 * variable. */
static void test_runs(int n_threads, int n_fast, double budget_s, int n_slow, long pause_us) {
    threadpool *pool = NULL;
    pagoda_status st = threadpool_init(n_threads, &pool);
    CHECK_MSG(st == PAGODA_OK && pool, "threadpool_init(%d): %s", n_threads, pagoda_last_error());
    if (!pool) return;
    CHECK(threadpool_n_threads(pool) == n_threads);
    static run_ctx c;
    memset(&c, 0, sizeof c);
    c.n_threads = n_threads;
    int n_stale = 0;
    long n_runs = 0;
    double start = now_s();
    for (int r = 0; r < n_fast; r++) {
        c.run_id = ++n_runs;
        threadpool_run(pool, run_fn, &c);
        for (int i = 0; i < n_threads; i++) n_stale += c.slot[i] != c.run_id;
        if (r >= 30 && (r & 15) == 0 && now_s() - start > budget_s) break;
    }
    double fast_s = now_s() - start;
    for (int r = 0; r < n_slow; r++) {
        sleep_us(pause_us);
        c.run_id = ++n_runs;
        threadpool_run(pool, run_fn, &c);
        for (int i = 0; i < n_threads; i++) n_stale += c.slot[i] != c.run_id;
    }
    printf("%d threads: %ld back-to-back runs (%.1f us each), %d spaced runs\n", n_threads, n_runs - n_slow,
           1e6 * fast_s / (double)(n_runs - n_slow), n_slow);
    CHECK_MSG(n_stale == 0, "%d threads: %d thread slots not written by the time the run returned", n_threads,
              n_stale);
    CHECK_MSG(atomic_load(&c.bad_args) == 0, "%d threads: %d calls with bad arguments", n_threads,
              atomic_load(&c.bad_args));
    for (int i = 0; i < n_threads; i++)
        CHECK_MSG(atomic_load(&c.calls[i]) == n_runs, "%d threads: thread %d called %d times in %ld runs",
                  n_threads, i, atomic_load(&c.calls[i]), n_runs);
    long expect_sum = n_runs * (long)n_threads * (n_threads - 1) / 2;
    CHECK_MSG(atomic_load(&c.index_sum) == expect_sum, "%d threads: index sum %ld, expected %ld", n_threads,
              atomic_load(&c.index_sum), expect_sum);
    threadpool_free(pool);
}

/* ---- init / free ---------------------------------------------------------------------------------- */

static void test_init_free(void) {
    for (int rep = 0; rep < 100; rep++) {
        int n = 1 + rep % MAX_THREADS;
        threadpool *pool = NULL;
        CHECK(threadpool_init(n, &pool) == PAGODA_OK && pool);
        if (!pool) continue;
        if (rep % 2) { /* free with workers possibly still starting up; else after one run */
            static run_ctx c;
            memset(&c, 0, sizeof c);
            c.n_threads = n;
            c.run_id = 1;
            threadpool_run(pool, run_fn, &c);
            for (int i = 0; i < n; i++) CHECK(c.slot[i] == 1);
        }
        threadpool_free(pool);
    }

    threadpool *pool = (threadpool *)&pool; /* must be overwritten with NULL on failure */
    CHECK(threadpool_init(100000, &pool) == PAGODA_ERR_INVALID_ARGUMENT);
    CHECK(pool == NULL);
    CHECK(strstr(pagoda_last_error(), "threads") != NULL);

    CHECK(threadpool_init(0, &pool) == PAGODA_OK); /* one per CPU */
    CHECK(pool && threadpool_n_threads(pool) == threadpool_cpu_count());
    threadpool_free(pool);
    CHECK(threadpool_cpu_count() >= 1);

    threadpool_free(NULL);
    CHECK(threadpool_n_threads(NULL) == 1);
    static run_ctx c; /* a NULL pool runs fn inline as thread 0 of 1 */
    memset(&c, 0, sizeof c);
    c.n_threads = 1;
    c.run_id = 5;
    threadpool_run(NULL, run_fn, &c);
    CHECK(c.slot[0] == 5 && atomic_load(&c.calls[0]) == 1 && atomic_load(&c.bad_args) == 0);
}

int main(void) {
    test_split();
    /* The machine may have fewer cores than threads (or be busy); spinning workers then get
     * preempted and a run can take milliseconds, so each thread count gets a time budget of 0.1 s
     * (and at least 30 runs) besides its 10000-run cap. */
    for (int n = 1; n <= MAX_THREADS; n++) test_runs(n, 10000, 0.1, 10, 3000);
    test_init_free();
    return test_finish();
}
