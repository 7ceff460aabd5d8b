/* kernels/ref/paged_attention.c - scalar references for the paged KV cache (see paged_attention.h):
 * attention gathered through block tables, kv_write and kv_copy_blocks. Plain loops, double
 * accumulation, no threads, no SIMD. Not fast, and not meant to be. */
#include "kernels/ref/paged_attention.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h" /* defines: DTYPE_*, fp16_to_fp32, fp32_to_fp16, bf16_to_fp32, fp32_to_bf16, dtype_name */
#include "core/error.h" /* defines: error_set */

size_t kv_cache_elem_bytes(uint32_t type) {
    switch (type) {
    case DTYPE_F32: return 4;
    case DTYPE_F16:
    case DTYPE_BF16: return 2;
    default: return 0;
    }
}

float kv_cache_load(uint32_t type, const void *base, size_t index) {
    switch (type) {
    case DTYPE_F32: return ((const float *)base)[index];
    case DTYPE_F16: return fp16_to_fp32(((const uint16_t *)base)[index]);
    case DTYPE_BF16: return bf16_to_fp32(((const uint16_t *)base)[index]);
    default: return NAN;
    }
}

static void kv_cache_store(uint32_t type, void *base, size_t index, float x) {
    switch (type) {
    case DTYPE_F32: ((float *)base)[index] = x; break;
    case DTYPE_F16: ((uint16_t *)base)[index] = fp32_to_fp16(x); break;
    case DTYPE_BF16: ((uint16_t *)base)[index] = fp32_to_bf16(x); break;
    default: break;
    }
}

/* ---- attention ------------------------------------------------------------------------------------- */

static pagoda_status check_args(const paged_attention_args *a) {
    if (kv_cache_elem_bytes(a->cache_type) == 0)
        return error_set(PAGODA_ERR_UNSUPPORTED, "paged attention: cache type %s", dtype_name(a->cache_type));
    if (a->n_seqs < 0 || a->block_size <= 0 || a->n_head <= 0 || a->n_kv_head <= 0 || a->head_dim <= 0 ||
        a->n_head % a->n_kv_head != 0 || a->max_blocks_per_seq < 0 || a->query_start[0] != 0)
        return error_set(PAGODA_ERR_INVALID_ARGUMENT,
                         "paged attention: bad shape (n_seqs %d, block_size %d, heads %d/%d, head_dim %d)",
                         a->n_seqs, a->block_size, a->n_head, a->n_kv_head, a->head_dim);
    for (int s = 0; s < a->n_seqs; s++) {
        int64_t n_q = (int64_t)a->query_start[s + 1] - a->query_start[s];
        int64_t n_blocks_needed = ((int64_t)a->seq_lens[s] + a->block_size - 1) / a->block_size;
        if (n_q < 0 || a->seq_lens[s] < n_q || n_blocks_needed > a->max_blocks_per_seq)
            return error_set(PAGODA_ERR_INVALID_ARGUMENT,
                             "paged attention: sequence %d has %lld queries, length %d, %d blocks per table", s,
                             (long long)n_q, a->seq_lens[s], a->max_blocks_per_seq);
    }
    return PAGODA_OK;
}

pagoda_status ref_paged_attention(const paged_attention_args *a) {
    pagoda_status st = check_args(a);
    if (st) return st;
    int64_t max_len = 1;
    for (int s = 0; s < a->n_seqs; s++)
        if (a->seq_lens[s] > max_len) max_len = a->seq_lens[s];
    int hd = a->head_dim, group = a->n_head / a->n_kv_head;
    double *scores = malloc((size_t)max_len * sizeof *scores);
    size_t *slot = malloc((size_t)max_len * sizeof *slot); /* position -> slot of this sequence */
    if (!scores || !slot) {
        free(scores);
        free(slot);
        return error_set(PAGODA_ERR_OUT_OF_MEMORY, "paged attention: no memory for %lld scores", (long long)max_len);
    }
    size_t row = (size_t)a->n_kv_head * hd; /* elements per slot */
    for (int s = 0; s < a->n_seqs; s++) {
        int n_q = a->query_start[s + 1] - a->query_start[s], len = a->seq_lens[s];
        const int32_t *table = a->block_tables + (size_t)s * a->max_blocks_per_seq;
        for (int p = 0; p < len; p++)
            slot[p] = (size_t)table[p / a->block_size] * a->block_size + (size_t)(p % a->block_size);
        for (int i = 0; i < n_q; i++) {
            int64_t t = a->query_start[s] + i;
            int n_seen = len - n_q + i + 1; /* keys 0 .. position */
            for (int h = 0; h < a->n_head; h++) {
                const float *q = a->q + ((size_t)t * a->n_head + h) * hd;
                size_t head_off = (size_t)(h / group) * hd;
                double max = -INFINITY;
                for (int j = 0; j < n_seen; j++) {
                    double dot = 0;
                    for (int d = 0; d < hd; d++)
                        dot += (double)q[d] *
                               (double)kv_cache_load(a->cache_type, a->k_cache, slot[j] * row + head_off + d);
                    scores[j] = dot * a->scale;
                    if (scores[j] > max) max = scores[j];
                }
                double sum = 0;
                for (int j = 0; j < n_seen; j++) sum += (scores[j] = exp(scores[j] - max));
                float *o = a->out + ((size_t)t * a->n_head + h) * hd;
                for (int d = 0; d < hd; d++) {
                    double acc = 0;
                    for (int j = 0; j < n_seen; j++)
                        acc += scores[j] *
                               (double)kv_cache_load(a->cache_type, a->v_cache, slot[j] * row + head_off + d);
                    o[d] = (float)(acc / sum);
                }
            }
        }
    }
    free(scores);
    free(slot);
    return PAGODA_OK;
}

/* ---- cache writes ---------------------------------------------------------------------------------- */

void ref_kv_write(const kv_cache_view *c, int layer, const float *k, const float *v, const int32_t *slot_mapping,
                  int64_t n_tokens) {
    size_t row = (size_t)c->n_kv_head * c->head_dim;
    for (int64_t i = 0; i < n_tokens; i++) {
        if (slot_mapping[i] < 0) continue;
        for (size_t e = 0; e < row; e++) {
            kv_cache_store(c->type, c->k[layer], (size_t)slot_mapping[i] * row + e, k[(size_t)i * row + e]);
            kv_cache_store(c->type, c->v[layer], (size_t)slot_mapping[i] * row + e, v[(size_t)i * row + e]);
        }
    }
}

void ref_kv_copy_blocks(const kv_cache_view *c, const int32_t *src, const int32_t *dst, int n) {
    size_t block_bytes = (size_t)c->block_size * c->n_kv_head * c->head_dim * kv_cache_elem_bytes(c->type);
    for (int l = 0; l < c->n_layer; l++)
        for (int i = 0; i < n; i++) {
            memcpy((char *)c->k[l] + (size_t)dst[i] * block_bytes, (char *)c->k[l] + (size_t)src[i] * block_bytes,
                   block_bytes);
            memcpy((char *)c->v[l] + (size_t)dst[i] * block_bytes, (char *)c->v[l] + (size_t)src[i] * block_bytes,
                   block_bytes);
        }
}
