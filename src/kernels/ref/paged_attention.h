/* kernels/ref/paged_attention.h - the paged KV cache's layout, the arguments of paged attention, and
 * the scalar references for attention over the paged cache, kv_write and kv_copy_blocks.
 *
 * The cache of one layer is two arrays (K and V), each
 *
 *     [n_blocks][block_size][n_kv_head][head_dim]   elements of the cache type (F16, F32 or BF16)
 *
 * so a slot (slot = block * block_size + offset) holds one token's n_kv_head * head_dim K (or V)
 * values contiguously. A sequence reaches its tokens through its block table: token position p of
 * sequence s lives in physical block block_tables[s][p / block_size] at offset p % block_size.
 *
 *     block_tables[s] = [ 7, 2, 9 ]    (block_size 16)
 *     positions  0..15 -> block 7, slots 112..127
 *     positions 16..31 -> block 2, slots  32.. 47
 *     positions 32..40 -> block 9, slots 144..152   (seq_lens[s] = 41; slots 153..159 unused)
 *
 * A batch mixes prefills, prefill chunks and decodes. Sequence s owns the query rows
 * query_start[s] .. query_start[s+1]-1 (n_q(s) of them); its K/V already hold this step's tokens
 * (kv_write runs first), seq_lens[s] of them in all. Query row i of s sits at position
 * seq_lens[s] - n_q(s) + i and attends to keys 0..that position (causal). Query head h reads
 * kv head h / (n_head / n_kv_head) (grouped-query attention).
 *
 * The references here are the specification the backends are tested against: plain loops, cache
 * elements read with the scalar conversions of core/dtype.h, double accumulation, no threads.
 */
#ifndef PAGODA_KERNELS_REF_PAGED_ATTENTION_H
#define PAGODA_KERNELS_REF_PAGED_ATTENTION_H

#include <stddef.h>
#include <stdint.h>

#include "pagoda.h" /* defines: pagoda_status */

/* Arguments of one paged-attention call (one layer, one step). */
typedef struct paged_attention_args {
    const float *q;             /* [n_tokens][n_head][head_dim], n_tokens = query_start[n_seqs] */
    float *out;                 /* [n_tokens][n_head][head_dim] */
    const void *k_cache;        /* [n_blocks][block_size][n_kv_head][head_dim] of cache_type */
    const void *v_cache;        /* [n_blocks][block_size][n_kv_head][head_dim] of cache_type */
    uint32_t cache_type;        /* DTYPE_F16, DTYPE_F32 or DTYPE_BF16 */
    int n_seqs;
    const int32_t *query_start; /* [n_seqs + 1], non-decreasing, query_start[0] = 0 */
    const int32_t *seq_lens;    /* [n_seqs], seq_lens[s] >= n_q(s) */
    const int32_t *block_tables;/* [n_seqs][max_blocks_per_seq] physical block ids */
    int max_blocks_per_seq;     /* row stride of block_tables; >= ceil(seq_lens[s] / block_size) */
    int block_size;             /* tokens per block (16 by default) */
    int n_head, n_kv_head;      /* n_head % n_kv_head == 0 */
    int head_dim;               /* a multiple of 8, at most PAGED_ATTENTION_MAX_HEAD_DIM */
    float scale;                /* scores are q.k * scale (usually 1 / sqrt(head_dim)) */
} paged_attention_args;

/* The whole K/V cache: every layer's K and V arrays (see the layout above). */
typedef struct kv_cache_view {
    void *const *k;       /* [n_layer] -> [n_blocks][block_size][n_kv_head][head_dim] of `type` */
    void *const *v;       /* [n_layer] -> [n_blocks][block_size][n_kv_head][head_dim] of `type` */
    uint32_t type;        /* DTYPE_F16, DTYPE_F32 or DTYPE_BF16 */
    int n_layer;
    int64_t n_blocks;
    int block_size;
    int n_kv_head, head_dim;
} kv_cache_view;

enum { PAGED_ATTENTION_MAX_HEAD_DIM = 256 };

/* What a backend sizes its paged-attention scratch for (once, at model load). */
typedef struct paged_attention_limits {
    int max_seqs;     /* sequences per pass (a larger batch may take several passes); > 0 */
    int max_n_head;   /* query heads; > 0 */
    int max_head_dim; /* a multiple of 8, at most PAGED_ATTENTION_MAX_HEAD_DIM */
} paged_attention_limits;

/* Bytes per cache element: 4 for F32, 2 for F16 and BF16, 0 for any other type. */
size_t kv_cache_elem_bytes(uint32_t type);
/* Element `index` of a cache array of `type`, as a float (F16/BF16 converted exactly). */
float kv_cache_load(uint32_t type, const void *base, size_t index);

/* Exact causal grouped-query attention over the paged cache (see the top of this file): gathers
 * each sequence's K/V through its block table and computes softmax(q.k * scale) . v with double
 * accumulation. Rows of sequences with n_q = 0 do not exist; every output row is written.
 * Errors: PAGODA_ERR_INVALID_ARGUMENT (bad shapes or lengths; nothing written),
 * PAGODA_ERR_UNSUPPORTED (cache type), PAGODA_ERR_OUT_OF_MEMORY. */
pagoda_status ref_paged_attention(const paged_attention_args *args);

/* Writes n_tokens rows k[i], v[i] ([n_tokens][n_kv_head][head_dim] f32) of `layer` to slots
 * slot_mapping[i], converting to the cache type with round-to-nearest-even (fp32_to_fp16,
 * fp32_to_bf16). A negative slot is skipped (a padding row). Slots are < n_blocks * block_size. */
void ref_kv_write(const kv_cache_view *cache, int layer, const float *k, const float *v,
                  const int32_t *slot_mapping, int64_t n_tokens);

/* Copies whole blocks src[i] -> dst[i], K and V, in every layer (copy-on-write). The dst blocks are
 * distinct and none of them is also a src. */
void ref_kv_copy_blocks(const kv_cache_view *cache, const int32_t *src, const int32_t *dst, int n);

#endif
