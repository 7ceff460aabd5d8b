/* backend/cpu/cpu_matmul.c - y = x W^T for weights in any dequantizable type.
 *
 * Each thread takes a contiguous range of output rows. It dequantizes a chunk of rows (sized to stay
 * in L2) into its scratch once, then sweeps every token over that chunk with a 4-row x 2-token
 * micro-kernel (8 AVX2 accumulators sharing loads). F32 weights are read in place.
 * TODO(issue 7): integer dot products on quantized activations (VNNI), AVX-512 and BF16 paths.
 */
#include <string.h>

#include "backend/cpu/cpu_internal.h"
#include "kernels/ref/dequant.h" /* defines: dequant_row */

typedef struct matmul_job {
    cpu_backend *cpu;
    const backend_matrix *w;
    const float *x;  /* [n_tokens][n_cols] */
    float *y;        /* [n_tokens][n_rows] */
    int64_t n_tokens;
} matmul_job;

/* y[t][r0 + i] for i < n_rows_tile (<= 4), tokens t0, t0+1. */
static void kernel_4x2(const float *const rows[4], int n_rows_tile, const float *x0, const float *x1,
                       int64_t n, float out0[4], float out1[4]) {
    __m256 a00 = _mm256_setzero_ps(), a10 = a00, a20 = a00, a30 = a00;
    __m256 a01 = a00, a11 = a00, a21 = a00, a31 = a00;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v0 = _mm256_loadu_ps(x0 + i), v1 = _mm256_loadu_ps(x1 + i);
        __m256 w0 = _mm256_loadu_ps(rows[0] + i);
        a00 = _mm256_fmadd_ps(w0, v0, a00);
        a01 = _mm256_fmadd_ps(w0, v1, a01);
        __m256 w1 = _mm256_loadu_ps(rows[1] + i);
        a10 = _mm256_fmadd_ps(w1, v0, a10);
        a11 = _mm256_fmadd_ps(w1, v1, a11);
        __m256 w2 = _mm256_loadu_ps(rows[2] + i);
        a20 = _mm256_fmadd_ps(w2, v0, a20);
        a21 = _mm256_fmadd_ps(w2, v1, a21);
        __m256 w3 = _mm256_loadu_ps(rows[3] + i);
        a30 = _mm256_fmadd_ps(w3, v0, a30);
        a31 = _mm256_fmadd_ps(w3, v1, a31);
    }
    out0[0] = cpu_hsum256(a00); out0[1] = cpu_hsum256(a10);
    out0[2] = cpu_hsum256(a20); out0[3] = cpu_hsum256(a30);
    out1[0] = cpu_hsum256(a01); out1[1] = cpu_hsum256(a11);
    out1[2] = cpu_hsum256(a21); out1[3] = cpu_hsum256(a31);
    for (; i < n; i++)
        for (int r = 0; r < n_rows_tile; r++) {
            out0[r] += rows[r][i] * x0[i];
            out1[r] += rows[r][i] * x1[i];
        }
}

static void matmul_rows(const matmul_job *job, const float *const *row_ptrs, int64_t r0, int64_t n_rows_chunk) {
    const backend_matrix *w = job->w;
    int64_t n = w->n_cols;
    for (int64_t rt = 0; rt < n_rows_chunk; rt += CPU_MATMUL_ROW_TILE) {
        int tile = (int)(n_rows_chunk - rt < CPU_MATMUL_ROW_TILE ? n_rows_chunk - rt : CPU_MATMUL_ROW_TILE);
        const float *rows[4];
        for (int r = 0; r < 4; r++) rows[r] = row_ptrs[rt + (r < tile ? r : 0)];
        for (int64_t t = 0; t < job->n_tokens; t += 2) {
            const float *x0 = job->x + t * n;
            const float *x1 = t + 1 < job->n_tokens ? x0 + n : x0;
            float out0[4], out1[4];
            kernel_4x2(rows, tile, x0, x1, n, out0, out1);
            float *y0 = job->y + t * w->n_rows + r0 + rt;
            for (int r = 0; r < tile; r++) y0[r] = out0[r];
            if (t + 1 < job->n_tokens)
                for (int r = 0; r < tile; r++) y0[w->n_rows + r] = out1[r];
        }
    }
}

static void matmul_thread(void *arg, int thread_index, int n_threads) {
    const matmul_job *job = arg;
    const backend_matrix *w = job->w;
    int64_t begin, end;
    /* Split in whole tiles so threads share no tile. */
    int64_t n_tiles = (w->n_rows + CPU_MATMUL_ROW_TILE - 1) / CPU_MATMUL_ROW_TILE;
    threadpool_split(n_tiles, thread_index, n_threads, &begin, &end);
    begin *= CPU_MATMUL_ROW_TILE;
    end *= CPU_MATMUL_ROW_TILE;
    if (end > w->n_rows) end = w->n_rows;
    float *scratch = job->cpu->scratch[thread_index];
    int64_t chunk = job->cpu->chunk_rows;
    const float *row_ptrs[4096]; /* chunk_rows <= 4096 (cpu_backend_init) */
    for (int64_t r0 = begin; r0 < end; r0 += chunk) {
        int64_t n_rows_chunk = end - r0 < chunk ? end - r0 : chunk;
        for (int64_t r = 0; r < n_rows_chunk; r++) {
            const uint8_t *src = (const uint8_t *)w->data + (size_t)(r0 + r) * w->row_bytes;
            if (w->type == 0 /* DTYPE_F32: read in place */) {
                row_ptrs[r] = (const float *)src;
            } else {
                float *dst = scratch + r * w->n_cols;
                dequant_row(w->type, src, dst, w->n_cols); /* type validated at load */
                row_ptrs[r] = dst;
            }
        }
        matmul_rows(job, row_ptrs, r0, n_rows_chunk);
    }
}

void cpu_matmul(backend *be, const backend_matrix *w, const float *x, float *y, int64_t n_tokens) {
    cpu_backend *cpu = (cpu_backend *)be;
    matmul_job job = {cpu, w, x, y, n_tokens};
    threadpool_run(cpu->pool, matmul_thread, &job);
}
