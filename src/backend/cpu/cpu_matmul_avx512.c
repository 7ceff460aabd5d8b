/* backend/cpu/cpu_matmul_avx512.c - y = x W^T for BF16 weights with AVX-512 BF16 dot products.
 *
 * _mm512_dpbf16_ps multiplies bf16 pairs exactly and accumulates in f32, but wants x in bf16 too:
 * each x row is rounded to bf16 once (round to nearest even, as llama.cpp does), one dpbf16 per 32
 * elements. The rounding is a relative error of at most 2^-9 per element, an NMSE of about
 * 2^-18 / 3 = 1.3e-6 on a dot product: ten times below the int8 activations of the quantized types.
 * (An earlier version also dotted lo = bf16(x - hi) for ~16 significant bits; it doubled the
 * prefill work for accuracy no other path of the default mode has: pp512 went 1.4x faster without.)
 * Tiles are 4 rows x 4 tokens (16 zmm accumulators); the bf16 rows live in scratch sized at init.
 * Compiled with -march=x86-64-v4 -mavx512bf16; called only where the CPU has AVX512_BF16.
 */
#include <immintrin.h>

#include "backend/cpu/cpu_internal.h"
#include "backend/cpu/cpu_quant_dot.h" /* defines: cpu_matmul_bf16_avx512 */

enum { BF16_ACT_L2_BYTES = 1 << 18 };

typedef struct bf16_job {
    const backend_matrix *w;
    const float *x;    /* [n_tokens][n_cols] */
    float *y;          /* [n_tokens][n_rows] */
    uint16_t *x_bf16;  /* [max_tokens][2][n_pad]: the piece's rows in bf16 (first half of each) */
    int64_t t0, n_piece, n_pad;
} bf16_job;

static inline __mmask16 tail_mask16(int64_t remaining) {
    return remaining >= 16 ? (__mmask16)0xFFFF : remaining <= 0 ? 0 : (__mmask16)((1u << remaining) - 1);
}

static void split_thread(void *arg, int thread_index, int n_threads) {
    const bf16_job *job = arg;
    const int64_t n = job->w->n_cols;
    int64_t begin, end;
    threadpool_split(job->n_piece, thread_index, n_threads, &begin, &end);
    for (int64_t t = begin; t < end; t++) {
        const float *xt = job->x + (job->t0 + t) * n;
        uint16_t *hi = job->x_bf16 + t * 2 * job->n_pad;
        for (int64_t i = 0; i < job->n_pad; i += 16) {
            __m512 v = _mm512_maskz_loadu_ps(tail_mask16(n - i), xt + i);
            _mm256_storeu_si256((__m256i *)(hi + i), (__m256i)_mm512_cvtneps_pbh(v));
        }
    }
}

/* 4 rows x T tokens (T = 1..4, a constant after inlining). */
static inline __attribute__((always_inline)) void tile_4xT(const uint16_t *const rows[4], const bf16_job *job,
                                                           int64_t t, const int T, float out[4][4]) {
    const int64_t n = job->w->n_cols;
    __m512 acc[4][4];
    #pragma GCC unroll 4
    for (int r = 0; r < 4; r++)
        #pragma GCC unroll 4
        for (int j = 0; j < T; j++) acc[r][j] = _mm512_setzero_ps();
    for (int64_t i = 0; i < job->n_pad; i += 32) {
        __mmask32 m = n - i >= 32 ? (__mmask32)0xFFFFFFFFu : (__mmask32)((1u << (n - i)) - 1);
        __m512i xh[4];
        #pragma GCC unroll 4
        for (int j = 0; j < T; j++)
            xh[j] = _mm512_loadu_si512((const void *)(job->x_bf16 + (t + j) * 2 * job->n_pad + i));
        #pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            __m512bh wv = (__m512bh)_mm512_maskz_loadu_epi16(m, rows[r] + i);
            #pragma GCC unroll 4
            for (int j = 0; j < T; j++) {
                acc[r][j] = _mm512_dpbf16_ps(acc[r][j], wv, (__m512bh)xh[j]);
            }
        }
    }
    #pragma GCC unroll 4
    for (int r = 0; r < 4; r++)
        #pragma GCC unroll 4
        for (int j = 0; j < T; j++) out[r][j] = _mm512_reduce_add_ps(acc[r][j]);
}

static void matmul_thread(void *arg, int thread_index, int n_threads) {
    const bf16_job *job = arg;
    const backend_matrix *w = job->w;
    int64_t n_tiles = (w->n_rows + 3) / 4, tile_begin, tile_end;
    threadpool_split(n_tiles, thread_index, n_threads, &tile_begin, &tile_end);
    int64_t r_end = tile_end * 4 < w->n_rows ? tile_end * 4 : w->n_rows;
    int64_t token_block = BF16_ACT_L2_BYTES / (4 * job->n_pad);
    token_block = token_block < 4 ? 4 : token_block / 4 * 4;
    for (int64_t tb = 0; tb < job->n_piece; tb += token_block) {
        int64_t tb_end = tb + token_block < job->n_piece ? tb + token_block : job->n_piece;
        for (int64_t r0 = tile_begin * 4; r0 < r_end; r0 += 4) {
            int n_rows = (int)(r_end - r0 < 4 ? r_end - r0 : 4);
            const uint16_t *rows[4];
            #pragma GCC unroll 4
            for (int r = 0; r < 4; r++)
                rows[r] = (const uint16_t *)((const uint8_t *)w->data + (size_t)(r0 + (r < n_rows ? r : 0)) *
                                                                            w->row_bytes);
            for (int64_t t = tb; t < tb_end; t += 4) {
                float out[4][4];
                int T = tb_end - t < 4 ? (int)(tb_end - t) : 4;
                switch (T) {
                case 4: tile_4xT(rows, job, t, 4, out); break;
                case 3: tile_4xT(rows, job, t, 3, out); break;
                case 2: tile_4xT(rows, job, t, 2, out); break;
                default: tile_4xT(rows, job, t, 1, out); break;
                }
                #pragma GCC unroll 4
                for (int j = 0; j < T; j++) {
                    float *yt = job->y + (job->t0 + t + j) * w->n_rows + r0;
                    for (int r = 0; r < n_rows; r++) yt[r] = out[r][j];
                }
            }
        }
    }
}

void cpu_matmul_bf16_avx512(threadpool *pool, const backend_matrix *w, const float *x, float *y, int64_t n_tokens,
                            uint16_t *x_bf16, int64_t max_tokens) {
    bf16_job job = {.w = w, .x = x, .y = y, .x_bf16 = x_bf16, .n_pad = (w->n_cols + 31) / 32 * 32};
    for (int64_t t0 = 0; t0 < n_tokens; t0 += max_tokens) {
        job.t0 = t0;
        job.n_piece = n_tokens - t0 < max_tokens ? n_tokens - t0 : max_tokens;
        if (job.n_piece < 8)
            split_thread(&job, 0, 1);
        else
            threadpool_run(pool, split_thread, &job);
        threadpool_run(pool, matmul_thread, &job);
    }
}
