/* core/threadpool.h - a persistent pool of worker threads for data-parallel loops.
 *
 * threadpool_run(pool, fn, ctx) calls fn(ctx, thread_index, n_threads) once on every thread of the
 * pool (the caller is thread 0) and returns when all have finished. Work splitting is the callee's
 * job (see threadpool_split). Idle workers spin briefly, then sleep on a condition variable, so a
 * run issued right after another costs little and an idle pool costs no CPU.
 * Not reentrant: one run at a time per pool.
 */
#ifndef PAGODA_CORE_THREADPOOL_H
#define PAGODA_CORE_THREADPOOL_H

#include <stdint.h>

#include "pagoda.h" /* defines: pagoda_status */

typedef struct threadpool threadpool;
typedef void (*threadpool_fn)(void *ctx, int thread_index, int n_threads);

/* n_threads <= 0 means one per online CPU. Errors: PAGODA_ERR_OUT_OF_MEMORY, PAGODA_ERR_INTERNAL
 * (thread creation failed). */
pagoda_status threadpool_init(int n_threads, threadpool **out);
void threadpool_free(threadpool *pool);
int threadpool_n_threads(const threadpool *pool);
void threadpool_run(threadpool *pool, threadpool_fn fn, void *ctx);

/* The half-open range [*begin, *end) of n_items that thread `index` of `n` should take: contiguous
 * chunks, sizes differing by at most one. */
void threadpool_split(int64_t n_items, int index, int n, int64_t *begin, int64_t *end);

/* Number of CPUs available to this process. */
int threadpool_cpu_count(void);

#endif
