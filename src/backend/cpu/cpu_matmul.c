/* backend/cpu/cpu_matmul.c - y = x W^T for weights in any dequantizable type: the dispatcher.
 *
 * Three paths, chosen per call from the weight type:
 *  - integer (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K): x is quantized to 8 bits per block of
 *    32 (cpu_quant_dot.h) in pieces of at most max_tokens tokens, into scratch sized at init. Each
 *    thread takes a contiguous range of 4-row tiles (the same count for every thread).
 *      decode (a piece of <= 3 tokens, or the tokens marked as decode rows by cpu_matmul_rows): fused
 *      kernels read the GGUF blocks directly, 4 rows x 1
 *      token at a time, prefetching one tile ahead (cpu_quant_dot_decode*.c; AVX-512 VNNI for the
 *      legacy types where available, AVX2 otherwise and for the K-quants);
 *      prefill: a tile is expanded once into a common u8 form in L1 and the AVX2 (maddubs, 4 rows
 *      x 2 tokens) or AVX-512 VNNI (dpbusd, 4 rows x 4 tokens) tile kernel sweeps the piece's
 *      tokens, a block of tokens at a time so that their quantized rows stay in L2.
 *  - float (F32, F16, BF16, and Q2_K / Q3_K through the reference dequantizer): 4-row tiles as f32
 *    (F32 read in place, others converted into per-thread scratch), a 4-row x 2-token FMA kernel.
 *    With AVX-512 BF16, BF16 rows use _mm512_dpbf16_ps on x split into two bf16 halves
 *    (cpu_matmul_avx512.c).
 *  - streaming fallback, for rows longer than the max_cols given at init: dequantizes 256 elements
 *    at a time on the stack. Slow, but needs no scratch.
 * Batch invariance: every kernel computes a token's row with the same operations whatever the other
 * tokens of the call, but the fused and tiled kernels differ from each other in rounding; so
 * cpu_matmul_rows takes the family per token (decode rows fused, prompt rows tiled) instead of from
 * the piece's size, and a sequence's tokens come out bit-identical alone or in any batch.
 * In exact mode (cpu_backend_set_exact) every type takes the float path (f32 activations).
 * cpu_matmul_force_isa() picks AVX2 even on AVX-512 machines (tests run both).
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_internal.h"
#include "backend/cpu/cpu_quant_dot.h" /* defines: cpu_qact, cpu_wtile, cpu_expand_get, cpu_qdot_tile_* */
#include "core/cpu.h"                  /* defines: cpu_use_avx512, cpu_get_features */
#include "core/dtype.h"                /* defines: DTYPE_*, dtype_get_info */
#include "core/error.h"                /* defines: error_set */
#include "kernels/ref/dequant.h"       /* defines: dequant_row */

enum {
    CPU_MATMUL_MAX_TOKENS = 512,       /* tokens quantized per piece */
    CPU_MATMUL_ACT_L2_BYTES = 1 << 18, /* quantized activations swept per row tile */
    CPU_MATMUL_STREAM_ELEMS = 256,     /* elements per step of the streaming fallback */
    CPU_MATMUL_FUSED_TOKENS = 3,       /* pieces of at most this many tokens use the fused kernels */
};

struct cpu_matmul_scratch {
    int64_t max_cols;
    int64_t max_tokens;
    cpu_qact act;      /* buffers for [max_tokens][max_cols] */
    cpu_wtile *tiles;  /* [n_threads], buffers for CPU_QDOT_MAX_ROWS rows of max_cols */
    float **rows;      /* [n_threads][CPU_QDOT_MAX_ROWS * max_cols] f32 rows of the float path */
    uint16_t *x_bf16;  /* [max_tokens][2][max_cols] x split into bf16 halves; NULL without AVX512_BF16 */
    int n_threads;
};

static _Atomic int forced_isa = CPU_ISA_AUTO;

cpu_isa cpu_matmul_force_isa(cpu_isa isa) {
    atomic_store(&forced_isa, (int)isa);
    return isa == CPU_ISA_AVX2 || !cpu_use_avx512() ? CPU_ISA_AVX2 : CPU_ISA_AVX512;
}

static cpu_isa current_isa(void) {
    return atomic_load(&forced_isa) == CPU_ISA_AVX2 || !cpu_use_avx512() ? CPU_ISA_AVX2 : CPU_ISA_AVX512;
}

/* ---------------------------------------------------------------------------------------------
 * Scratch
 * ------------------------------------------------------------------------------------------- */

static void *alloc_aligned(size_t n_bytes) {
    return aligned_alloc(64, (n_bytes + 63) / 64 * 64);
}

void cpu_matmul_scratch_free(cpu_backend *cpu) {
    cpu_matmul_scratch *mm = cpu->mm;
    if (!mm) return;
    free(mm->act.q);
    free(mm->act.d);
    free(mm->act.s16);
    free(mm->act.ds);
    free(mm->x_bf16);
    for (int i = 0; i < mm->n_threads; i++) {
        if (mm->tiles) {
            free(mm->tiles[i].q);
            free(mm->tiles[i].scale);
            free(mm->tiles[i].min);
        }
        if (mm->rows) free(mm->rows[i]);
    }
    free(mm->tiles);
    free(mm->rows);
    free(mm);
    cpu->mm = NULL;
}

pagoda_status cpu_matmul_scratch_init(cpu_backend *cpu, int64_t max_cols) {
    cpu_matmul_scratch *mm = calloc(1, sizeof *mm);
    cpu->mm = mm;
    if (!mm) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory for the CPU matmul scratch");
    int n = threadpool_n_threads(cpu->pool);
    int64_t cols = (max_cols + 255) / 256 * 256; /* whole super-blocks */
    mm->max_cols = cols;
    mm->max_tokens = CPU_MATMUL_MAX_TOKENS;
    mm->n_threads = n;
    size_t t = (size_t)mm->max_tokens, c = (size_t)cols;
    mm->act.q = alloc_aligned(t * c);
    mm->act.d = alloc_aligned(t * c / 32 * sizeof(float));
    mm->act.s16 = alloc_aligned(t * c / 16 * sizeof(float));
    mm->act.ds = alloc_aligned(t * c / 16 * sizeof(float));
    mm->tiles = calloc((size_t)n, sizeof *mm->tiles);
    mm->rows = calloc((size_t)n, sizeof *mm->rows);
    bool ok = mm->act.q && mm->act.d && mm->act.s16 && mm->act.ds && mm->tiles && mm->rows;
    if (ok && cpu_get_features()->avx512bf16) ok = (mm->x_bf16 = alloc_aligned(t * 2 * c * sizeof(uint16_t)));
    for (int i = 0; ok && i < n; i++) {
        cpu_wtile *tile = &mm->tiles[i];
        tile->q = alloc_aligned(CPU_QDOT_MAX_ROWS * c);
        tile->scale = alloc_aligned(CPU_QDOT_MAX_ROWS * c / 4 * sizeof(float));
        tile->min = alloc_aligned(CPU_QDOT_MAX_ROWS * c / 16 * sizeof(float));
        mm->rows[i] = alloc_aligned(CPU_QDOT_MAX_ROWS * c * sizeof(float));
        ok = tile->q && tile->scale && tile->min && mm->rows[i];
    }
    if (!ok) {
        cpu_matmul_scratch_free(cpu);
        return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory for the CPU matmul scratch (%lld columns)",
                         (long long)max_cols);
    }
    return PAGODA_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Shared job description
 * ------------------------------------------------------------------------------------------- */

enum { MATMUL_MAX_PARTS = 4 }; /* matrices sharing one input in one integer-path job */

/* One matrix of an integer-path job. */
typedef struct matmul_part {
    const backend_matrix *w;
    float *y;               /* [n_tokens][w->n_rows] */
    cpu_expand_fn expand;
    cpu_qdot_rows_fn fused; /* few-token kernel, or NULL */
    int64_t tile0;          /* its first row tile in the job's tile numbering */
} matmul_part;

typedef struct matmul_job {
    cpu_matmul_scratch *mm;
    const backend_matrix *w;
    const float *x;   /* [n_tokens][n_cols] */
    float *y;         /* [n_tokens][n_rows] */
    int64_t n_tokens;
    int64_t t0;       /* integer path: first token of the current piece */
    int64_t n_piece;  /* integer path: tokens in the current piece */
    cpu_isa isa;
    bool piece_fused; /* integer path: the current piece takes the fused kernel */
    /* integer path: the matrices (w, y above are part 0's), their row tiles in one numbering that
     * the threads split, so several products of one input take one pool round */
    matmul_part parts[MATMUL_MAX_PARTS];
    int n_parts;
    int64_t n_tiles;
} matmul_job;

/* This thread's row tiles [*r_begin, *r_end), in whole tiles of CPU_QDOT_MAX_ROWS. */
static void split_rows(int64_t n_rows, int thread_index, int n_threads, int64_t *r_begin, int64_t *r_end) {
    int64_t n_tiles = (n_rows + CPU_QDOT_MAX_ROWS - 1) / CPU_QDOT_MAX_ROWS;
    threadpool_split(n_tiles, thread_index, n_threads, r_begin, r_end);
    *r_begin *= CPU_QDOT_MAX_ROWS;
    *r_end *= CPU_QDOT_MAX_ROWS;
    if (*r_end > n_rows) *r_end = n_rows;
}

/* ---------------------------------------------------------------------------------------------
 * Integer path
 * ------------------------------------------------------------------------------------------- */

static void quantize_thread(void *arg, int thread_index, int n_threads) {
    const matmul_job *job = arg;
    int64_t begin, end;
    threadpool_split(job->n_piece, thread_index, n_threads, &begin, &end);
    cpu_qact_quantize(job->x, job->t0 + begin, job->t0 + end, job->t0, &job->mm->act);
}

/* Rows [r_begin, r_end) of one part, the current piece's tokens. */
static void matmul_int_rows(const matmul_job *job, const matmul_part *part, cpu_wtile *tile, int64_t r_begin,
                            int64_t r_end) {
    const backend_matrix *w = part->w;
    const int64_t n = w->n_cols;
    tile->n_cols = n;
    if (job->piece_fused && part->fused) {
        part->fused((const uint8_t *)w->data + (size_t)r_begin * w->row_bytes, w->row_bytes, r_end - r_begin,
                    &job->mm->act, 0, job->n_piece, part->y + job->t0 * w->n_rows + r_begin, w->n_rows);
        return;
    }
    /* tokens per sweep: their quantized rows (n + n/8 + n/4 bytes each) stay in L2 */
    int64_t token_block = CPU_MATMUL_ACT_L2_BYTES / (n + n / 8 + n / 4);
    token_block = token_block < 4 ? 4 : token_block / 4 * 4;
    /* equal blocks (multiples of 4), so no short last sweep re-expands the tile for a few tokens */
    int64_t n_sweeps = (job->n_piece + token_block - 1) / token_block;
    token_block = ((job->n_piece + n_sweeps - 1) / n_sweeps + 3) / 4 * 4;
    bool unsigned_codes = job->isa == CPU_ISA_AVX512;
    for (int64_t tb = 0; tb < job->n_piece; tb += token_block) {
        int64_t tb_end = tb + token_block < job->n_piece ? tb + token_block : job->n_piece;
        for (int64_t r0 = r_begin; r0 < r_end; r0 += CPU_QDOT_MAX_ROWS) {
            int n_tile_rows = (int)(r_end - r0 < CPU_QDOT_MAX_ROWS ? r_end - r0 : CPU_QDOT_MAX_ROWS);
            for (int r = 0; r < n_tile_rows; r++)
                part->expand((const uint8_t *)w->data + (size_t)(r0 + r) * w->row_bytes, tile, r, unsigned_codes);
            float *y = part->y + job->t0 * w->n_rows + r0;
            if (job->isa == CPU_ISA_AVX512)
                cpu_qdot_tile_avx512(tile, n_tile_rows, &job->mm->act, tb, tb_end, y, w->n_rows);
            else
                cpu_qdot_tile_avx2(tile, n_tile_rows, &job->mm->act, tb, tb_end, y, w->n_rows);
        }
    }
}

/* The thread's share of the job's row tiles (all parts numbered one after another). */
static void matmul_int_thread(void *arg, int thread_index, int n_threads) {
    const matmul_job *job = arg;
    int64_t g_begin, g_end;
    threadpool_split(job->n_tiles, thread_index, n_threads, &g_begin, &g_end);
    for (int p = 0; p < job->n_parts; p++) {
        const matmul_part *part = &job->parts[p];
        int64_t n_part_tiles = (part->w->n_rows + CPU_QDOT_MAX_ROWS - 1) / CPU_QDOT_MAX_ROWS;
        int64_t b = g_begin > part->tile0 ? g_begin : part->tile0;
        int64_t e = g_end < part->tile0 + n_part_tiles ? g_end : part->tile0 + n_part_tiles;
        if (b >= e) continue;
        int64_t r_end = (e - part->tile0) * CPU_QDOT_MAX_ROWS;
        matmul_int_rows(job, part, &job->mm->tiles[thread_index], (b - part->tile0) * CPU_QDOT_MAX_ROWS,
                        r_end < part->w->n_rows ? r_end : part->w->n_rows);
    }
}

/* ---------------------------------------------------------------------------------------------
 * Float path
 * ------------------------------------------------------------------------------------------- */

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

/* 8 codes (u8 or s8 widened to i32) as floats, times d, plus m when has_min: the reference
 * dequantizer's two roundings ((float)q * d, then + m), so the result is bit-identical to it. */
static inline void store_scaled(float *dst, __m256i q, __m256 d, __m256 m, bool has_min) {
    __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(q), d);
    _mm256_storeu_ps(dst, has_min ? _mm256_add_ps(v, m) : v);
}

/* Q4_0 / Q4_1 / Q8_0 rows to f32 with AVX2, bit-identical to dequant_row (exact mode's weights). */
static void dequant_legacy_row(uint32_t type, const uint8_t *src, float *dst, int64_t n) {
    const int block_bytes = type == DTYPE_Q4_0 ? 18 : type == DTYPE_Q4_1 ? 20 : 34;
    for (int64_t b = 0; b < n / 32; b++, src += block_bytes, dst += 32) {
        uint16_t h;
        memcpy(&h, src, 2);
        __m256 d = _mm256_set1_ps(_cvtsh_ss(h)), m = _mm256_setzero_ps();
        if (type == DTYPE_Q8_0) {
            for (int i = 0; i < 32; i += 8)
                store_scaled(dst + i, _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(src + 2 + i))), d, m,
                             false);
            continue;
        }
        if (type == DTYPE_Q4_1) {
            memcpy(&h, src + 2, 2);
            m = _mm256_set1_ps(_cvtsh_ss(h));
        }
        __m128i qs = _mm_loadu_si128((const __m128i *)(src + (type == DTYPE_Q4_1 ? 4 : 2)));
        __m128i lo = _mm_and_si128(qs, _mm_set1_epi8(0x0F)), hi = _mm_and_si128(_mm_srli_epi16(qs, 4), _mm_set1_epi8(0x0F));
        __m256i offset = _mm256_set1_epi32(type == DTYPE_Q4_0 ? 8 : 0);
        __m128i halves[2] = {lo, hi}; /* elements 0..15: low nibbles, 16..31: high nibbles */
        for (int k = 0; k < 2; k++) {
            __m256i q0 = _mm256_sub_epi32(_mm256_cvtepu8_epi32(halves[k]), offset);
            __m256i q1 = _mm256_sub_epi32(_mm256_cvtepu8_epi32(_mm_srli_si128(halves[k], 8)), offset);
            store_scaled(dst + 16 * k, q0, d, m, type == DTYPE_Q4_1);
            store_scaled(dst + 16 * k + 8, q1, d, m, type == DTYPE_Q4_1);
        }
    }
}

/* One row as f32: in place for F32, else converted into dst. */
static const float *row_as_f32(const backend_matrix *w, int64_t r, float *dst) {
    const uint8_t *src = (const uint8_t *)w->data + (size_t)r * w->row_bytes;
    int64_t n = w->n_cols, i = 0;
    switch (w->type) {
    case DTYPE_F32:
        return (const float *)src;
    case DTYPE_F16:
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + 2 * i))));
        for (; i < n; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            dst[i] = _cvtsh_ss(h);
        }
        return dst;
    case DTYPE_BF16:
        for (; i + 8 <= n; i += 8) {
            __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(src + 2 * i)));
            _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)));
        }
        for (; i < n; i++) {
            uint16_t h;
            memcpy(&h, src + 2 * i, 2);
            dst[i] = bf16_to_fp32(h);
        }
        return dst;
    case DTYPE_Q4_0:
    case DTYPE_Q4_1:
    case DTYPE_Q8_0:
        dequant_legacy_row(w->type, src, dst, n);
        return dst;
    default:
        dequant_row(w->type, src, dst, n); /* the type was validated at model load */
        return dst;
    }
}

static void matmul_float_thread(void *arg, int thread_index, int n_threads) {
    const matmul_job *job = arg;
    const backend_matrix *w = job->w;
    const int64_t n = w->n_cols;
    float *scratch = job->mm->rows[thread_index];
    int64_t r_begin, r_end;
    split_rows(w->n_rows, thread_index, n_threads, &r_begin, &r_end);
    for (int64_t r0 = r_begin; r0 < r_end; r0 += CPU_QDOT_MAX_ROWS) {
        int tile = (int)(r_end - r0 < CPU_QDOT_MAX_ROWS ? r_end - r0 : CPU_QDOT_MAX_ROWS);
        const float *rows[4];
        for (int r = 0; r < 4; r++) rows[r] = r < tile ? row_as_f32(w, r0 + r, scratch + r * n) : rows[0];
        for (int64_t t = 0; t < job->n_tokens; t += 2) {
            const float *x0 = job->x + t * n;
            const float *x1 = t + 1 < job->n_tokens ? x0 + n : x0;
            float out0[4], out1[4];
            kernel_4x2(rows, tile, x0, x1, n, out0, out1);
            float *y0 = job->y + t * w->n_rows + r0;
            for (int r = 0; r < tile; r++) y0[r] = out0[r];
            if (t + 1 < job->n_tokens)
                for (int r = 0; r < tile; r++) y0[w->n_rows + r] = out1[r];
        }
    }
}

/* ---------------------------------------------------------------------------------------------
 * Streaming fallback (rows longer than the scratch)
 * ------------------------------------------------------------------------------------------- */

static void matmul_stream_thread(void *arg, int thread_index, int n_threads) {
    const matmul_job *job = arg;
    const backend_matrix *w = job->w;
    const dtype_info *info = dtype_get_info(w->type);
    int64_t r_begin, r_end;
    threadpool_split(w->n_rows, thread_index, n_threads, &r_begin, &r_end);
    float buf[CPU_MATMUL_STREAM_ELEMS];
    for (int64_t r = r_begin; r < r_end; r++) {
        const uint8_t *row = (const uint8_t *)w->data + (size_t)r * w->row_bytes;
        for (int64_t t = 0; t < job->n_tokens; t++) job->y[t * w->n_rows + r] = 0.0f;
        for (int64_t c0 = 0; c0 < w->n_cols; c0 += CPU_MATMUL_STREAM_ELEMS) {
            int64_t len = w->n_cols - c0 < CPU_MATMUL_STREAM_ELEMS ? w->n_cols - c0 : CPU_MATMUL_STREAM_ELEMS;
            dequant_row(w->type, row + c0 / info->block_elems * info->block_bytes, buf, len);
            for (int64_t t = 0; t < job->n_tokens; t++)
                job->y[t * w->n_rows + r] += cpu_dot(buf, job->x + t * w->n_cols + c0, len);
        }
    }
}

/* ---------------------------------------------------------------------------------------------
 * Entry point
 * ------------------------------------------------------------------------------------------- */

/* Tokens [t0, t0 + n) of the integer path as one piece (n <= max_tokens). */
static void run_int_piece(cpu_backend *cpu, matmul_job *job, int64_t t0, int64_t n, bool fused) {
    job->t0 = t0;
    job->n_piece = n;
    job->piece_fused = fused;
    if (n < 8)
        cpu_qact_quantize(job->x, t0, t0 + n, t0, &cpu->mm->act);
    else
        threadpool_run(cpu->pool, quantize_thread, job);
    threadpool_run(cpu->pool, matmul_int_thread, job);
}

void cpu_matmul(backend *be, const backend_matrix *w, const float *x, float *y, int64_t n_tokens) {
    cpu_matmul_rows(be, w, x, y, n_tokens, NULL);
}

/* Whether w can join an integer-path job of several matrices over inputs of n_cols. */
static bool int_path(const cpu_backend *cpu, const backend_matrix *w, int64_t n_cols) {
    return cpu_expand_get(w->type) && !cpu->exact && w->n_cols == n_cols && n_cols <= cpu->mm->max_cols &&
           w->n_rows > 0;
}

/* One matrix by any path (the integer path as a job of one part). */
static void matmul_one(cpu_backend *cpu, const backend_matrix *w, const float *x, float *y, int64_t n_tokens,
                       const uint8_t *decode_rows);

void cpu_matmul_many(backend *be, int n, const backend_matrix *const *w, const float *x, float *const *y,
                     int64_t n_tokens, const uint8_t *decode_rows) {
    cpu_backend *cpu = (cpu_backend *)be;
    cpu_matmul_scratch *mm = cpu->mm;
    if (n_tokens <= 0 || n <= 0) return;
    bool together = n <= MATMUL_MAX_PARTS;
    for (int i = 0; i < n && together; i++) together = int_path(cpu, w[i], w[0]->n_cols);
    if (!together) {
        for (int i = 0; i < n; i++) matmul_one(cpu, w[i], x, y[i], n_tokens, decode_rows);
        return;
    }
    matmul_job job = {.mm = mm, .w = w[0], .x = x, .y = y[0], .n_tokens = n_tokens, .isa = current_isa(), .n_parts = n};
    for (int i = 0; i < n; i++) {
        matmul_part *part = &job.parts[i];
        part->w = w[i];
        part->y = y[i];
        part->expand = cpu_expand_get(w[i]->type);
        part->fused = cpu_qdot_rows_get(w[i]->type);
        if (job.isa == CPU_ISA_AVX512 && cpu_qdot_rows_get_avx512(w[i]->type))
            part->fused = cpu_qdot_rows_get_avx512(w[i]->type);
        part->tile0 = job.n_tiles;
        job.n_tiles += (w[i]->n_rows + CPU_QDOT_MAX_ROWS - 1) / CPU_QDOT_MAX_ROWS;
    }
    mm->act.n_cols = w[0]->n_cols;
    if (!decode_rows) { /* by count: few-token pieces fused, the rest tiled */
        for (int64_t t0 = 0; t0 < n_tokens; t0 += mm->max_tokens) {
            int64_t nt = n_tokens - t0 < mm->max_tokens ? n_tokens - t0 : mm->max_tokens;
            run_int_piece(cpu, &job, t0, nt, nt <= CPU_MATMUL_FUSED_TOKENS);
        }
        return;
    }
    /* by token: runs of decode tokens fused, runs of prompt tokens tiled, whatever their length */
    for (int64_t t0 = 0; t0 < n_tokens;) {
        int64_t t1 = t0 + 1;
        while (t1 < n_tokens && t1 - t0 < mm->max_tokens && (decode_rows[t1] != 0) == (decode_rows[t0] != 0)) t1++;
        run_int_piece(cpu, &job, t0, t1 - t0, decode_rows[t0] != 0);
        t0 = t1;
    }
}

static void matmul_one(cpu_backend *cpu, const backend_matrix *w, const float *x, float *y, int64_t n_tokens,
                       const uint8_t *decode_rows) {
    cpu_matmul_scratch *mm = cpu->mm;
    matmul_job job = {.mm = mm, .w = w, .x = x, .y = y, .n_tokens = n_tokens, .isa = current_isa()};
    if (n_tokens <= 0 || w->n_rows <= 0) return;
    if (w->n_cols > mm->max_cols) {
        threadpool_run(cpu->pool, matmul_stream_thread, &job);
        return;
    }
    if (!cpu_expand_get(w->type) || cpu->exact) {
        if (w->type == DTYPE_BF16 && job.isa == CPU_ISA_AVX512 && mm->x_bf16 && !cpu->exact)
            cpu_matmul_bf16_avx512(cpu->pool, w, x, y, n_tokens, mm->x_bf16, mm->max_tokens);
        else
            threadpool_run(cpu->pool, matmul_float_thread, &job);
        return;
    }
    cpu_matmul_many(&cpu->base, 1, &w, x, &y, n_tokens, decode_rows);
}

void cpu_matmul_rows(backend *be, const backend_matrix *w, const float *x, float *y, int64_t n_tokens,
                     const uint8_t *decode_rows) {
    matmul_one((cpu_backend *)be, w, x, y, n_tokens, decode_rows);
}
