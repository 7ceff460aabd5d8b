/* backend/cpu/cpu_kv_cache.c - writes new K/V rows into the paged cache (with conversion to the
 * cache type) and copies whole blocks (copy-on-write), threaded over the pool.
 * Semantics: ref_kv_write and ref_kv_copy_blocks in kernels/ref/paged_attention.h. */
#include <immintrin.h>
#include <string.h>

#include "backend/cpu/cpu_paged_attention.h" /* defines: cpu_kv_write, cpu_kv_copy_blocks */
#include "core/dtype.h"                      /* defines: DTYPE_*, fp32_to_fp16, fp32_to_bf16 */

/* ---- conversions of one row ------------------------------------------------------------------------ */

static void row_to_f16(uint16_t *dst, const float *src, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    for (; i < n; i++) dst[i] = fp32_to_fp16(src[i]);
}

/* bf16 = the top half of the f32 rounded to nearest even: (x + 0x7fff + bit16(x)) >> 16; a NaN keeps
 * its top half with the quiet bit set (as fp32_to_bf16 does). */
static void row_to_bf16(uint16_t *dst, const float *src, size_t n) {
    const __m256i bias = _mm256_set1_epi32(0x7fff), one = _mm256_set1_epi32(1);
    const __m256i abs_mask = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
    const __m256i quiet = _mm256_set1_epi32(0x40);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i x = _mm256_loadu_si256((const __m256i *)(src + i));
        __m256i odd = _mm256_and_si256(_mm256_srli_epi32(x, 16), one);
        __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(x, _mm256_add_epi32(bias, odd)), 16);
        __m256i is_nan = _mm256_cmpgt_epi32(_mm256_and_si256(x, abs_mask), inf);
        __m256i nan = _mm256_or_si256(_mm256_srli_epi32(x, 16), quiet);
        __m256i r = _mm256_blendv_epi8(rounded, nan, is_nan); /* 8 x 32-bit, each < 0x10000 */
        __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0xd8);
        _mm_storeu_si128((__m128i *)(dst + i), _mm256_castsi256_si128(packed));
    }
    for (; i < n; i++) dst[i] = fp32_to_bf16(src[i]);
}

static void store_row(uint32_t type, void *cache, size_t slot, size_t row, const float *src) {
    switch (type) {
    case DTYPE_F32: memcpy((float *)cache + slot * row, src, row * sizeof(float)); break;
    case DTYPE_F16: row_to_f16((uint16_t *)cache + slot * row, src, row); break;
    case DTYPE_BF16: row_to_bf16((uint16_t *)cache + slot * row, src, row); break;
    default: break;
    }
}

/* ---- kv_write -------------------------------------------------------------------------------------- */

typedef struct kv_write_job {
    const kv_cache_view *cache;
    int layer;
    const float *k, *v;            /* [n_tokens][n_kv_head][head_dim] */
    const int32_t *slot_mapping;   /* [n_tokens] */
    int64_t n_tokens;
} kv_write_job;

static void kv_write_thread(void *ctx, int thread_index, int n_threads) {
    const kv_write_job *job = ctx;
    const kv_cache_view *c = job->cache;
    size_t row = (size_t)c->n_kv_head * c->head_dim;
    int64_t begin, end;
    threadpool_split(job->n_tokens, thread_index, n_threads, &begin, &end);
    for (int64_t i = begin; i < end; i++) {
        if (job->slot_mapping[i] < 0) continue;
        size_t slot = (size_t)job->slot_mapping[i];
        store_row(c->type, c->k[job->layer], slot, row, job->k + (size_t)i * row);
        store_row(c->type, c->v[job->layer], slot, row, job->v + (size_t)i * row);
    }
}

void cpu_kv_write(threadpool *pool, const kv_cache_view *cache, int layer, const float *k, const float *v,
                  const int32_t *slot_mapping, int64_t n_tokens) {
    kv_write_job job = {cache, layer, k, v, slot_mapping, n_tokens};
    /* A decode step writes a handful of rows: not worth waking the pool. */
    if (!pool || n_tokens < 16) kv_write_thread(&job, 0, 1);
    else threadpool_run(pool, kv_write_thread, &job);
}

/* ---- kv_copy_blocks -------------------------------------------------------------------------------- */

typedef struct kv_copy_job {
    const kv_cache_view *cache;
    const int32_t *src, *dst;  /* [n] */
    int n;
} kv_copy_job;

static void kv_copy_thread(void *ctx, int thread_index, int n_threads) {
    const kv_copy_job *job = ctx;
    const kv_cache_view *c = job->cache;
    size_t block_bytes = (size_t)c->block_size * c->n_kv_head * c->head_dim * kv_cache_elem_bytes(c->type);
    int64_t begin, end; /* tasks: (layer, K or V, pair) */
    threadpool_split((int64_t)c->n_layer * 2 * job->n, thread_index, n_threads, &begin, &end);
    for (int64_t task = begin; task < end; task++) {
        int i = (int)(task % job->n), kind = (int)(task / job->n % 2), layer = (int)(task / job->n / 2);
        char *base = kind ? (char *)c->v[layer] : (char *)c->k[layer];
        memcpy(base + (size_t)job->dst[i] * block_bytes, base + (size_t)job->src[i] * block_bytes, block_bytes);
    }
}

void cpu_kv_copy_blocks(threadpool *pool, const kv_cache_view *cache, const int32_t *src, const int32_t *dst,
                        int n) {
    if (n <= 0) return;
    kv_copy_job job = {cache, src, dst, n};
    if (!pool) kv_copy_thread(&job, 0, 1);
    else threadpool_run(pool, kv_copy_thread, &job);
}
