/* core/threadpool.c - persistent workers woken per run: spin on a generation counter for a short
 * while, then sleep on a condition variable. */
#include "core/threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/error.h" /* defines: error_set */

/* Spin this many rounds before sleeping; every YIELD_EVERY rounds give the core away, so that on an
 * oversubscribed machine a spinning thread does not starve the preempted thread it waits for. */
enum { SPIN_ITERATIONS = 20000, YIELD_EVERY = 128 };

typedef struct worker {
    struct threadpool *pool;
    int index;
    pthread_t thread;
} worker;

struct threadpool {
    int n_threads;
    worker *workers;          /* [n_threads - 1]; thread 0 is the caller */
    pthread_mutex_t mutex;
    pthread_cond_t wake;      /* signalled when a new run starts or on shutdown */
    pthread_cond_t done;      /* signalled when the last worker finishes */
    atomic_uint_fast64_t generation; /* incremented per run */
    atomic_int n_pending;     /* workers still running the current run */
    atomic_bool shutting_down;
    threadpool_fn fn;
    void *ctx;
};

static void *worker_main(void *arg) {
    worker *w = arg;
    threadpool *pool = w->pool;
    uint_fast64_t seen = 0;
    for (;;) {
        uint_fast64_t gen = atomic_load_explicit(&pool->generation, memory_order_acquire);
        for (int spin = 0; gen == seen && spin < SPIN_ITERATIONS; spin++) {
            if (atomic_load_explicit(&pool->shutting_down, memory_order_relaxed)) return NULL;
            if (spin % YIELD_EVERY == YIELD_EVERY - 1) sched_yield();
            else __builtin_ia32_pause();
            gen = atomic_load_explicit(&pool->generation, memory_order_acquire);
        }
        if (gen == seen) {
            pthread_mutex_lock(&pool->mutex);
            while ((gen = atomic_load(&pool->generation)) == seen && !atomic_load(&pool->shutting_down))
                pthread_cond_wait(&pool->wake, &pool->mutex);
            pthread_mutex_unlock(&pool->mutex);
        }
        if (atomic_load(&pool->shutting_down)) return NULL;
        seen = gen;
        pool->fn(pool->ctx, w->index, pool->n_threads);
        if (atomic_fetch_sub_explicit(&pool->n_pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&pool->mutex);
            pthread_cond_signal(&pool->done);
            pthread_mutex_unlock(&pool->mutex);
        }
    }
}

int threadpool_cpu_count(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

pagoda_status threadpool_init(int n_threads, threadpool **out) {
    *out = NULL;
    if (n_threads <= 0) n_threads = threadpool_cpu_count();
    if (n_threads > 1024)
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "%d threads requested; at most 1024", n_threads);
    threadpool *pool = calloc(1, sizeof *pool);
    if (!pool) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory for the thread pool");
    pool->n_threads = n_threads;
    pthread_mutex_init(&pool->mutex, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pthread_cond_init(&pool->done, NULL);
    pool->workers = calloc((size_t)n_threads, sizeof *pool->workers);
    if (!pool->workers) {
        threadpool_free(pool);
        return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory for the thread pool");
    }
    for (int i = 1; i < n_threads; i++) {
        worker *w = &pool->workers[i - 1];
        w->pool = pool;
        w->index = i;
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            pool->n_threads = i; /* only join the ones that started */
            threadpool_free(pool);
            return error_set(PAGODA_ERR_INTERNAL, "could not start thread %d of %d", i, n_threads);
        }
    }
    *out = pool;
    return PAGODA_OK;
}

void threadpool_free(threadpool *pool) {
    if (!pool) return;
    pthread_mutex_lock(&pool->mutex);
    atomic_store(&pool->shutting_down, true);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mutex);
    if (pool->workers)
        for (int i = 1; i < pool->n_threads; i++) pthread_join(pool->workers[i - 1].thread, NULL);
    pthread_mutex_destroy(&pool->mutex);
    pthread_cond_destroy(&pool->wake);
    pthread_cond_destroy(&pool->done);
    free(pool->workers);
    free(pool);
}

int threadpool_n_threads(const threadpool *pool) { return pool ? pool->n_threads : 1; }

void threadpool_run(threadpool *pool, threadpool_fn fn, void *ctx) {
    if (!pool || pool->n_threads == 1) {
        fn(ctx, 0, 1);
        return;
    }
    pool->fn = fn;
    pool->ctx = ctx;
    atomic_store(&pool->n_pending, pool->n_threads - 1);
    pthread_mutex_lock(&pool->mutex);
    atomic_fetch_add_explicit(&pool->generation, 1, memory_order_release);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mutex);
    fn(ctx, 0, pool->n_threads);
    for (int spin = 0; atomic_load_explicit(&pool->n_pending, memory_order_acquire) > 0; spin++) {
        if (spin < SPIN_ITERATIONS) {
            if (spin % YIELD_EVERY == YIELD_EVERY - 1) sched_yield();
            else __builtin_ia32_pause();
            continue;
        }
        pthread_mutex_lock(&pool->mutex);
        while (atomic_load(&pool->n_pending) > 0) pthread_cond_wait(&pool->done, &pool->mutex);
        pthread_mutex_unlock(&pool->mutex);
    }
}

void threadpool_split(int64_t n_items, int index, int n, int64_t *begin, int64_t *end) {
    int64_t base = n_items / n, extra = n_items % n;
    *begin = index * base + (index < extra ? index : extra);
    *end = *begin + base + (index < extra ? 1 : 0);
}
