/* core/membw.h - a memory-bandwidth probe: how many bytes per second the threads of a pool can move
 * between DRAM and the cores, so that a benchmark can state its floor (bytes to move / bandwidth).
 *
 * Two kernels, each over arrays several times larger than the last-level cache, each split in
 * contiguous chunks over all threads of the pool (each thread first-touches its own chunk):
 *   - triad (STREAM): a[i] = b[i] + s * c[i] over doubles; counts 3 x array_bytes per pass (two
 *     reads and one write; the write-allocate read the hardware may add is not counted, as STREAM).
 *   - read: a sum over all three arrays, read-only; counts 3 x array_bytes per pass. This is the
 *     figure that bounds decoding, which reads weights and writes almost nothing.
 * Each kernel runs n_runs times after one untimed pass; the best (shortest) pass is reported, as
 * STREAM does. Results are checked (the triad's output and the sum against their closed forms), so
 * a kernel the compiler optimised away cannot report a figure.
 * What it does not do: non-temporal stores, NUMA placement, or pinning threads to cores.
 */
#ifndef PAGODA_CORE_MEMBW_H
#define PAGODA_CORE_MEMBW_H

#include <stddef.h>

#include "core/threadpool.h" /* defines: threadpool */
#include "pagoda.h"          /* defines: pagoda_status */

typedef struct membw_result {
    double triad_gbs;    /* best triad pass, 1e9 bytes per second */
    double read_gbs;     /* best read-only pass, 1e9 bytes per second */
    double triad_seconds;/* duration of the best triad pass */
    double read_seconds; /* duration of the best read pass */
    size_t array_bytes;  /* bytes of each of the three arrays */
    int n_threads;       /* threads of the pool that ran it */
    int n_runs;          /* timed passes per kernel */
} membw_result;

enum { MEMBW_DEFAULT_ARRAY_MIB = 128, MEMBW_DEFAULT_RUNS = 8 };

/* Measures with three arrays of array_bytes each (0: MEMBW_DEFAULT_ARRAY_MIB MiB; rounded down to a
 * multiple of 64 bytes per thread) and n_runs timed passes per kernel (<= 0: MEMBW_DEFAULT_RUNS).
 * Allocates 3 x array_bytes for the duration of the call.
 * Errors: PAGODA_ERR_INVALID_ARGUMENT (pool NULL, array_bytes under 1 MiB or over 64 GiB, n_runs
 * over 1000), PAGODA_ERR_OUT_OF_MEMORY, PAGODA_ERR_INTERNAL (a kernel's result failed its check). */
pagoda_status membw_measure(threadpool *pool, size_t array_bytes, int n_runs, membw_result *out);

#endif
