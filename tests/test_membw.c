/* tests/test_membw.c - the memory-bandwidth probe (core/membw.h): argument errors, the result's
 * bookkeeping (array size rounding, thread count, bytes / seconds), and plausible magnitudes. The
 * kernels' arithmetic is checked inside membw_measure against closed forms (it returns
 * PAGODA_ERR_INTERNAL otherwise), so an OK status here means the triad and the sum were right. */
#include <math.h>
#include <stdio.h>

#include "core/membw.h"      /* defines: membw_measure, membw_result */
#include "core/threadpool.h" /* defines: threadpool_init, threadpool_free */
#include "testlib.h"

static void check_one(threadpool *pool, size_t array_bytes, int n_runs) {
    membw_result r;
    pagoda_status st = membw_measure(pool, array_bytes, n_runs, &r);
    CHECK_MSG(st == PAGODA_OK, "membw_measure(%zu, %d): %s", array_bytes, n_runs, pagoda_last_error());
    if (st != PAGODA_OK) return;
    int n = threadpool_n_threads(pool);
    CHECK(r.n_threads == n);
    CHECK(r.n_runs == n_runs);
    /* rounded down to whole 64-byte lines, an even number of them per thread */
    CHECK(r.array_bytes <= array_bytes);
    CHECK(array_bytes - r.array_bytes < (size_t)128 * n);
    CHECK(r.array_bytes % ((size_t)128 * n) == 0);
    CHECK(r.triad_seconds > 0 && r.read_seconds > 0);
    CHECK(fabs(r.triad_gbs * r.triad_seconds * 1e9 - 3.0 * r.array_bytes) < 1e-6 * r.array_bytes);
    CHECK(fabs(r.read_gbs * r.read_seconds * 1e9 - 3.0 * r.array_bytes) < 1e-6 * r.array_bytes);
    /* anything outside 0.05 .. 100000 GB/s is a timing or bookkeeping bug, not a machine */
    CHECK_MSG(r.triad_gbs > 0.05 && r.triad_gbs < 1e5, "triad %.3f GB/s", r.triad_gbs);
    CHECK_MSG(r.read_gbs > 0.05 && r.read_gbs < 1e5, "read %.3f GB/s", r.read_gbs);
    printf("membw: %d threads, 3 x %zu bytes: triad %.1f GB/s, read %.1f GB/s\n", n, r.array_bytes,
           r.triad_gbs, r.read_gbs);
}

int main(void) {
    membw_result r;
    CHECK(membw_measure(NULL, 1 << 20, 1, &r) == PAGODA_ERR_INVALID_ARGUMENT);

    threadpool *pool1, *pool2;
    CHECK(threadpool_init(1, &pool1) == PAGODA_OK);
    CHECK(threadpool_init(2, &pool2) == PAGODA_OK);
    CHECK(membw_measure(pool1, 4096, 1, &r) == PAGODA_ERR_INVALID_ARGUMENT);
    CHECK(membw_measure(pool1, (size_t)65 << 30, 1, &r) == PAGODA_ERR_INVALID_ARGUMENT);
    CHECK(membw_measure(pool1, 1 << 20, 1001, &r) == PAGODA_ERR_INVALID_ARGUMENT);
    CHECK(r.read_gbs == 0); /* cleared on error */

    check_one(pool1, 1 << 20, 1);
    check_one(pool2, (2 << 20) + 4160, 2); /* not a multiple of the line split: rounded down */
    check_one(pool2, 3 << 20, 3);
    threadpool_free(pool1);
    threadpool_free(pool2);
    return test_finish();
}
