/* backend/cpu/cpu_backend.h - the CPU backend: AVX2 (AVX-512 where present) kernels over a thread pool. */
#ifndef PAGODA_BACKEND_CPU_H
#define PAGODA_BACKEND_CPU_H

#include "backend/backend.h"                 /* defines: backend */
#include "backend/cpu/cpu_paged_attention.h" /* defines: paged_attention_limits */

/* n_threads <= 0: one per CPU. max_cols: the longest weight row any matmul will see; limits: the
 * largest attention batch (sizes the scratch, all allocated once here). Errors:
 * PAGODA_ERR_OUT_OF_MEMORY, PAGODA_ERR_INVALID_ARGUMENT. */
pagoda_status cpu_backend_init(int n_threads, int64_t max_cols, const paged_attention_limits *limits, backend **out);

/* Exact mode: every matmul multiplies f32 activations by dequantized weights (no 8-bit rounding of
 * the activations), so results track an exact reference to f32 rounding. Slower; for tests and for
 * checking a model against another implementation. Off by default. */
void cpu_backend_set_exact(backend *be, bool exact);

#endif
