/* backend/cpu/cpu_backend.c - the CPU backend's table of ops, its thread pool and scratch.
 * The heavy ops live in cpu_matmul.c and cpu_attention.c; the element-wise ones are here (SwiGLU
 * vectorised and, for prefill-sized inputs, threaded). */
#include "backend/cpu/cpu_backend.h"

#include <math.h>
#include <stdlib.h>

#include "backend/cpu/cpu_internal.h"
#include "backend/cpu/cpu_simd.h"     /* defines: exp256 */
#include "core/error.h"          /* defines: error_set */
#include "kernels/ref/dequant.h" /* defines: dequant_row */

static void cpu_get_rows(backend *be, const backend_matrix *w, const int32_t *ids, int64_t n_ids, float *out) {
    for (int64_t i = 0; i < n_ids; i++)
        dequant_row(w->type, (const uint8_t *)w->data + (size_t)ids[i] * w->row_bytes, out + i * w->n_cols,
                    w->n_cols);
}

static void cpu_rmsnorm(backend *be, const float *x, const float *weight, float *y, int64_t n_tokens,
                        int64_t dim, float eps) {
    for (int64_t t = 0; t < n_tokens; t++) {
        const float *xt = x + t * dim;
        float *yt = y + t * dim;
        float scale = 1.0f / sqrtf(cpu_dot(xt, xt, dim) / (float)dim + eps);
        for (int64_t i = 0; i < dim; i++) yt[i] = xt[i] * scale * weight[i];
    }
}

static void cpu_rope(backend *be, float *x, const int32_t *pos, int64_t n_tokens, int n_heads, int head_dim,
                     const rope_params *rope) {
    int half = rope->n_rot / 2;
    for (int64_t t = 0; t < n_tokens; t++) {
        for (int i = 0; i < half; i++) {
            float angle = (float)pos[t] * rope->inv_freq[i];
            float c = cosf(angle), s = sinf(angle);
            int a = rope->style == ROPE_STYLE_NEOX ? i : 2 * i;
            int b = rope->style == ROPE_STYLE_NEOX ? i + half : 2 * i + 1;
            for (int h = 0; h < n_heads; h++) {
                float *v = x + ((size_t)t * n_heads + h) * head_dim;
                float x0 = v[a], x1 = v[b];
                v[a] = x0 * c - x1 * s;
                v[b] = x0 * s + x1 * c;
            }
        }
    }
}

/* gate[i] = gate[i] / (1 + e^-gate[i]) * up[i] for i in [begin, end), eight at a time; the last few
 * go through an 8-wide buffer so every element gets the same arithmetic wherever it lies. */
static void swiglu_range(float *gate, const float *up, int64_t begin, int64_t end) {
    const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    int64_t i = begin;
    for (; i + 8 <= end; i += 8) {
        __m256 g = _mm256_loadu_ps(gate + i);
        __m256 e = exp256(_mm256_sub_ps(zero, g));
        _mm256_storeu_ps(gate + i, _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), _mm256_loadu_ps(up + i)));
    }
    if (i < end) {
        float g8[8] = {0}, u8[8] = {0};
        for (int64_t j = i; j < end; j++) {
            g8[j - i] = gate[j];
            u8[j - i] = up[j];
        }
        swiglu_range(g8, u8, 0, 8);
        for (int64_t j = i; j < end; j++) gate[j] = g8[j - i];
    }
}

typedef struct swiglu_job {
    float *gate;
    const float *up;
    int64_t n;
} swiglu_job;

static void swiglu_thread(void *arg, int thread_index, int n_threads) {
    const swiglu_job *job = arg;
    int64_t begin, end;
    threadpool_split((job->n + 7) / 8, thread_index, n_threads, &begin, &end);
    swiglu_range(job->gate, job->up, begin * 8, end * 8 < job->n ? end * 8 : job->n);
}

static void cpu_swiglu(backend *be, float *gate, const float *up, int64_t n) {
    enum { SWIGLU_THREADED_MIN = 1 << 15 }; /* below, a pool round costs more than it saves */
    if (n < SWIGLU_THREADED_MIN) {
        swiglu_range(gate, up, 0, n);
        return;
    }
    swiglu_job job = {gate, up, n};
    threadpool_run(((cpu_backend *)be)->pool, swiglu_thread, &job);
}

static void cpu_add(backend *be, float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
}

static void cpu_kv_write_op(backend *be, const kv_cache_view *cache, int layer, const float *k, const float *v,
                            const int32_t *slot_mapping, int64_t n_tokens) {
    cpu_kv_write(((cpu_backend *)be)->pool, cache, layer, k, v, slot_mapping, n_tokens);
}

static void cpu_kv_copy_blocks_op(backend *be, const kv_cache_view *cache, const int32_t *src, const int32_t *dst,
                                  int n) {
    cpu_kv_copy_blocks(((cpu_backend *)be)->pool, cache, src, dst, n);
}

static void cpu_paged_attention_op(backend *be, const paged_attention_args *args) {
    cpu_paged_attention_run(((cpu_backend *)be)->paged, args); /* shapes validated by the model at load */
}

void cpu_backend_set_exact(backend *be, bool exact) { ((cpu_backend *)be)->exact = exact; }

static int cpu_n_threads(const backend *be) { return threadpool_n_threads(((const cpu_backend *)be)->pool); }

static void cpu_free(backend *be) {
    cpu_backend *cpu = (cpu_backend *)be;
    if (!cpu) return;
    cpu_matmul_scratch_free(cpu);
    cpu_paged_attention_free(cpu->paged);
    threadpool_free(cpu->pool);
    free(cpu);
}

pagoda_status cpu_backend_init(int n_threads, int64_t max_cols, const paged_attention_limits *limits, backend **out) {
    *out = NULL;
    if (max_cols <= 0) return error_set(PAGODA_ERR_INVALID_ARGUMENT, "cpu backend: max_cols must be positive");
    cpu_backend *cpu = calloc(1, sizeof *cpu);
    if (!cpu) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory for the CPU backend");
    pagoda_status st = threadpool_init(n_threads, &cpu->pool);
    if (st) {
        free(cpu);
        return st;
    }
    cpu->base = (backend){
        .name = "cpu",
        .matmul = cpu_matmul,
        .matmul_rows = cpu_matmul_rows,
        .get_rows = cpu_get_rows,
        .rmsnorm = cpu_rmsnorm,
        .rope = cpu_rope,
        .attention = cpu_attention,
        .kv_write = cpu_kv_write_op,
        .kv_copy_blocks = cpu_kv_copy_blocks_op,
        .paged_attention = cpu_paged_attention_op,
        .swiglu = cpu_swiglu,
        .add = cpu_add,
        .n_threads = cpu_n_threads,
        .free = cpu_free,
    };
    cpu->max_cols = max_cols;
    if ((st = cpu_matmul_scratch_init(cpu, max_cols))) {
        cpu_free(&cpu->base);
        return st;
    }
    paged_attention_limits default_limits = {.max_seqs = 64, .max_n_head = 64, .max_head_dim = 256};
    if ((st = cpu_paged_attention_init(cpu->pool, limits ? limits : &default_limits, &cpu->paged))) {
        cpu_free(&cpu->base);
        return st;
    }
    *out = &cpu->base;
    return PAGODA_OK;
}
