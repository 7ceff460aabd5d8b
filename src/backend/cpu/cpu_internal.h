/* backend/cpu/cpu_internal.h - state shared by the CPU backend's files, and AVX2 helpers. */
#ifndef PAGODA_BACKEND_CPU_INTERNAL_H
#define PAGODA_BACKEND_CPU_INTERNAL_H

#include <immintrin.h>

#include "backend/backend.h"  /* defines: backend, backend_matrix */
#include "backend/cpu/cpu_paged_attention.h" /* defines: cpu_paged_attention */
#include "core/threadpool.h"  /* defines: threadpool */

typedef struct cpu_matmul_scratch cpu_matmul_scratch; /* cpu_matmul.c */

typedef struct cpu_backend {
    backend base;           /* must be first: backend* <-> cpu_backend* */
    threadpool *pool;
    int64_t max_cols;
    cpu_matmul_scratch *mm; /* quantized activations and per-thread weight tiles, sized from max_cols */
    cpu_paged_attention *paged; /* attention workspace */
    bool exact;             /* f32 activations in every matmul (cpu_backend_set_exact) */
} cpu_backend;

void cpu_matmul(backend *be, const backend_matrix *w, const float *x, float *y, int64_t n_tokens);
void cpu_matmul_rows(backend *be, const backend_matrix *w, const float *x, float *y, int64_t n_tokens,
                     const uint8_t *decode_rows);
/* Allocates cpu->mm for rows of up to max_cols (cpu->pool must exist). Errors: PAGODA_ERR_OUT_OF_MEMORY
 * (cpu->mm is then NULL). */
pagoda_status cpu_matmul_scratch_init(cpu_backend *cpu, int64_t max_cols);
void cpu_matmul_scratch_free(cpu_backend *cpu); /* no-op when cpu->mm is NULL */
void cpu_attention(backend *be, const backend_attention_args *args);

/* Sum of the 8 lanes. */
static inline float cpu_hsum256(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

/* Dot product of two float vectors of length n. */
static inline float cpu_dot(const float *a, const float *b, int64_t n) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
    }
    float sum = cpu_hsum256(_mm256_add_ps(acc0, acc1));
    for (; i < n; i++) sum += a[i] * b[i];
    return sum;
}

#endif
