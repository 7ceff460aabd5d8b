/* backend/cuda/attn_internal.h - the parameter blocks the attention kernels take and the host
 * launchers each .cu file exports to cuda_attention.cu (which validates the public arguments of
 * cuda_attention.h and fills these). Internal to src/backend/cuda/ and dev/cuda/.
 */
#ifndef PAGODA_BACKEND_CUDA_ATTN_INTERNAL_H
#define PAGODA_BACKEND_CUDA_ATTN_INTERNAL_H

#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

#include "backend/cuda/attn_common.cuh" /* defines: dropout_key */

/* One forward pass: contiguous varlen (cu_k != NULL) or paged (block_tables != NULL). Query rows
 * of a sequence are packed with the query heads of one kv-head group: CTA row r is token r / group,
 * head kv_head * group + r % group, so each K/V tile is loaded once for the whole group. */
struct fwd_params {
    int dtype;                   /* cuda_attn_dtype */
    const void *q;               /* [total_q][n_head][head_dim] */
    const void *k, *v;           /* [total_k][n_kv_head][head_dim] or the paged cache */
    void *o;                     /* [total_q][n_head][head_dim] */
    float *lse;                  /* [n_head][total_q] or NULL */
    const int32_t *cu_q;         /* [batch + 1] */
    const int32_t *cu_k;         /* [batch + 1] (contiguous) or NULL */
    const int32_t *seq_lens;     /* [batch] (paged) */
    const int32_t *block_tables; /* [batch][max_blocks_per_seq] (paged) or NULL */
    int max_blocks_per_seq, block_shift; /* block_size = 1 << block_shift */
    int batch, total_q, max_rows; /* max_rows = max n_q * group */
    int n_head, n_kv_head, group, head_dim;
    float scale, scale_log2;     /* scale and scale * log2(e) */
    int causal;
    int dropout;                 /* 0 or 1 */
    dropout_key drop;
    float rp_keep;               /* 1 / (1 - dropout_p) */
    int n_splits, split_chunk;   /* keys per split, a multiple of the kv tile */
    float *o_part;               /* [n_splits][total_q][n_head][head_dim] when n_splits > 1 */
    float *lse_part;             /* [n_splits][n_head][total_q] when n_splits > 1 */
};

/* The kv tile (keys per iteration) of the forward kernels: split_chunk is a multiple of it. */
enum { FLASH_FWD_BLOCK_N = 64 };
/* At most this many packed rows per sequence: the decode configuration (FLASH_FWD_DECODE_ROWS
 * rows per CTA); more rows take the prefill configuration (128 rows per CTA). */
enum { FLASH_FWD_ROWS_SMALL = 64, FLASH_FWD_DECODE_ROWS = 64, FLASH_FWD_PREFILL_ROWS = 128 };
/* Split-KV rule: CTAs of the decode configuration resident per SM (its shared memory allows it),
 * at most FLASH_MAX_SPLITS splits of at least FLASH_MIN_SPLIT_KEYS keys each. */
#ifndef FLASH_SPLIT_CTAS_PER_SM
#define FLASH_SPLIT_CTAS_PER_SM 4
#endif
enum { FLASH_MAX_SPLITS = 64, FLASH_MIN_SPLIT_KEYS = 128 };

/* The CTA count of the forward without splitting (rows per CTA as flash_fwd_launch picks them). */
static inline int flash_fwd_ctas(int max_rows, int n_kv_head, int batch) {
    const int bm = max_rows <= FLASH_FWD_ROWS_SMALL ? FLASH_FWD_DECODE_ROWS : FLASH_FWD_PREFILL_ROWS;
    return (max_rows + bm - 1) / bm * n_kv_head * batch;
}

/* The split-KV count for n_ctas unsplit CTAs over at most max_seq_len keys on sms SMs: 1 when the
 * CTAs nearly fill the resident slots, else the fewest splits whose last wave is within 85% of the
 * best wave efficiency (as FlashAttention-2 chooses). */
static inline int flash_num_splits(int n_ctas, int max_seq_len, int sms) {
    if (n_ctas <= 0 || max_seq_len <= 0) return 1;
    const int slots = FLASH_SPLIT_CTAS_PER_SM * sms;
    if (n_ctas * 5 >= slots * 4) return 1;
    int max_s = max_seq_len / FLASH_MIN_SPLIT_KEYS;
    if (max_s > FLASH_MAX_SPLITS) max_s = FLASH_MAX_SPLITS;
    if (max_s <= 1) return 1;
    float best = 0.f;
    for (int s = 1; s <= max_s; s++) {
        const float waves = (float)n_ctas * s / slots, eff = waves / ceilf(waves);
        if (eff > best) best = eff;
    }
    for (int s = 1; s <= max_s; s++) {
        const float waves = (float)n_ctas * s / slots;
        if (waves / ceilf(waves) >= 0.85f * best) return s;
    }
    return 1;
}

/* Launches the forward (and, when n_splits > 1, the combine). Returns the launch error. */
cudaError_t flash_fwd_launch(const fwd_params &p, cudaStream_t stream);

/* Backward: fwd_params plus the gradients. */
struct bwd_params {
    fwd_params f;                /* q, k, v, o, lse, cu_q, cu_k, shapes, scale, dropout */
    int total_k, max_seqlen_k;
    const void *dout;            /* [total_q][n_head][head_dim] */
    void *dq;                    /* [total_q][n_head][head_dim] */
    void *dk, *dv;               /* [total_k][n_kv_head][head_dim] */
    float *dq_accum;             /* [total_q][n_head][head_dim] fp32 workspace */
    float *delta;                /* [n_head][total_q] fp32 workspace: rowsum(dout * out) */
};
cudaError_t flash_bwd_launch(const bwd_params &p, cudaStream_t stream);

cudaError_t kv_write_launch(int cache_dtype, void *k_cache, void *v_cache, int src_dtype, const void *k_new,
                            const void *v_new, const int32_t *slot_mapping, int64_t n_tokens, int row_elems,
                            cudaStream_t stream);
cudaError_t kv_copy_blocks_launch(void *const *k_layers, void *const *v_layers, int n_layer, const int32_t *src,
                                  const int32_t *dst, int n, size_t block_bytes, cudaStream_t stream);
cudaError_t dropout_mask_launch(uint8_t *mask, const int32_t *cu_q, const int32_t *cu_k, int batch, int total_q,
                                int max_seqlen_k, int n_head, dropout_key drop, cudaStream_t stream);

#endif
