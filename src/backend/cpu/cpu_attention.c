/* backend/cpu/cpu_attention.c - causal grouped-query attention over a contiguous cache.
 *
 * One task per (query token, query head); tasks are split across threads. Each task streams the
 * keys it may see once, with an online softmax (running max and sum, the output rescaled when the
 * max grows), so no score row is materialised.
 * TODO(issue 3): FlashAttention tiling for prefill, FlashDecoding split-KV, paged K/V.
 */
#include <math.h>
#include <string.h>

#include "backend/cpu/cpu_internal.h"

enum { MAX_HEAD_DIM = 512 };

static void attend_one(const backend_attention_args *a, int64_t t, int h) {
    int group = a->n_head / a->n_kv_head, kvh = h / group, hd = a->head_dim;
    const float *q = a->q + ((size_t)t * a->n_head + h) * hd;
    float *out = a->out + ((size_t)t * a->n_head + h) * hd;
    int64_t n_seen = (int64_t)a->q_pos[t] + 1;
    if (n_seen > a->n_kv) n_seen = a->n_kv;
    float acc[MAX_HEAD_DIM];
    memset(acc, 0, sizeof(float) * (size_t)hd);
    float max = -INFINITY, sum = 0;
    size_t stride = (size_t)a->n_kv_head * hd;
    for (int64_t j = 0; j < n_seen; j++) {
        const float *k = a->k + j * stride + (size_t)kvh * hd;
        const float *v = a->v + j * stride + (size_t)kvh * hd;
        float s = cpu_dot(q, k, hd) * a->scale;
        if (s > max) { /* rescale what was accumulated under the old max */
            float correction = expf(max - s);
            sum *= correction;
            for (int d = 0; d < hd; d++) acc[d] *= correction;
            max = s;
        }
        float p = expf(s - max);
        sum += p;
        int d = 0;
        __m256 vp = _mm256_set1_ps(p);
        for (; d + 8 <= hd; d += 8)
            _mm256_storeu_ps(acc + d, _mm256_fmadd_ps(vp, _mm256_loadu_ps(v + d), _mm256_loadu_ps(acc + d)));
        for (; d < hd; d++) acc[d] += p * v[d];
    }
    float inv = sum > 0 ? 1.0f / sum : 0.0f;
    for (int d = 0; d < hd; d++) out[d] = acc[d] * inv;
}

static void attention_thread(void *arg, int thread_index, int n_threads) {
    const backend_attention_args *a = arg;
    int64_t begin, end;
    threadpool_split(a->n_tokens * a->n_head, thread_index, n_threads, &begin, &end);
    for (int64_t task = begin; task < end; task++) attend_one(a, task / a->n_head, (int)(task % a->n_head));
}

void cpu_attention(backend *be, const backend_attention_args *args) {
    cpu_backend *cpu = (cpu_backend *)be;
    threadpool_run(cpu->pool, attention_thread, (void *)args);
}
