/* backend/cuda/cuda_attention.h - the C API of the CUDA attention kernels, the calls the CUDA engine
 * backend makes (and dev/cuda/check_attention.py reaches through build-cuda/libpagoda_cuda.so).
 *
 * Every pointer named "device" is CUDA device memory; every call is asynchronous on `stream`
 * (a cudaStream_t, NULL = the default stream) and only validates arguments on the host. Element
 * buffers are bf16 or fp16 (`dtype`); accumulation is fp32.
 *
 * Layouts (no padding between sequences; "varlen"):
 *   q, out, dq, dout   [total_q][n_head][head_dim]     total_q = cu_seqlens_q[batch]
 *   k, v, dk, dv       [total_k][n_kv_head][head_dim]  total_k = cu_seqlens_k[batch]
 *   lse                [n_head][total_q] fp32, natural log of sum_j exp(scale * q.k_j)
 *                      (+inf for a row that sees no key: its output row is 0)
 *   paged K/V cache    [n_blocks][block_size][n_kv_head][head_dim] as kernels/ref/paged_attention.h
 * Causal masking is aligned bottom-right: query row i of a sequence with n_q queries and n_k keys
 * sees keys 0 .. i + n_k - n_q (the paged cache's convention, and flash-attn's). Query head h
 * reads kv head h / (n_head / n_kv_head).
 *
 * Supported: head_dim 64 and 128; block_size 16 and 32 (any multiple of 8 works); dropout in
 * the contiguous forward and backward. Not supported (PAGODA_ERR_UNSUPPORTED): other head dims,
 * dropout in the paged path, fp32 elements.
 */
#ifndef PAGODA_BACKEND_CUDA_ATTENTION_H
#define PAGODA_BACKEND_CUDA_ATTENTION_H

#include <stddef.h>
#include <stdint.h>

#include "pagoda.h" /* defines: pagoda_status, PAGODA_ERR_* */

#ifdef __cplusplus
extern "C" {
#endif

typedef enum cuda_attn_dtype { CUDA_ATTN_BF16 = 0, CUDA_ATTN_FP16 = 1 } cuda_attn_dtype;

/* FlashAttention forward over a varlen batch (and FlashDecoding when n_splits != 1). */
typedef struct cuda_flash_fwd_args {
    cuda_attn_dtype dtype;
    const void *q;               /* device [total_q][n_head][head_dim] */
    const void *k;               /* device [total_k][n_kv_head][head_dim] */
    const void *v;               /* device [total_k][n_kv_head][head_dim] */
    void *out;                   /* device [total_q][n_head][head_dim] */
    float *lse;                  /* device [n_head][total_q]; may be NULL */
    const int32_t *cu_seqlens_q; /* device [batch + 1], cu_seqlens_q[0] = 0, non-decreasing */
    const int32_t *cu_seqlens_k; /* device [batch + 1] */
    int batch, total_q;
    int max_seqlen_q, max_seqlen_k; /* upper bounds of the per-sequence lengths */
    int n_head, n_kv_head, head_dim;
    float scale;                 /* usually 1 / sqrt(head_dim) */
    int causal;
    float dropout_p;             /* probability of dropping; 0 = off */
    uint64_t seed, offset;       /* Philox key and stream offset of the dropout mask */
    int n_splits;                /* split-KV count: 0 = choose (cuda_attn_num_splits), 1 = none */
    void *workspace;             /* device, cuda_flash_fwd_workspace_bytes(args) bytes (NULL if 0) */
    void *stream;                /* cudaStream_t */
} cuda_flash_fwd_args;

/* Bytes of workspace the forward needs with its (chosen) split count; 0 without split-KV. */
size_t cuda_flash_fwd_workspace_bytes(const cuda_flash_fwd_args *args);
/* Errors: PAGODA_ERR_INVALID_ARGUMENT (shapes, NULLs, too little workspace),
 * PAGODA_ERR_UNSUPPORTED (head_dim, dtype), PAGODA_ERR_INTERNAL (a CUDA launch error). */
pagoda_status cuda_flash_attn_fwd(const cuda_flash_fwd_args *args);

/* FlashAttention backward: dq, dk, dv from q, k, v, out, dout and the forward's lse (recomputing
 * the softmax tile by tile; with dropout, the same seed/offset regenerate the forward's mask). */
typedef struct cuda_flash_bwd_args {
    cuda_flash_fwd_args fwd;     /* the forward's arguments (out and lse are read here) */
    const void *dout;            /* device [total_q][n_head][head_dim] */
    void *dq;                    /* device [total_q][n_head][head_dim] */
    void *dk;                    /* device [total_k][n_kv_head][head_dim] */
    void *dv;                    /* device [total_k][n_kv_head][head_dim] */
    void *workspace;             /* device, cuda_flash_bwd_workspace_bytes(args) bytes */
} cuda_flash_bwd_args;

size_t cuda_flash_bwd_workspace_bytes(const cuda_flash_bwd_args *args);
/* Errors: as cuda_flash_attn_fwd. */
pagoda_status cuda_flash_attn_bwd(const cuda_flash_bwd_args *args);

/* PagedAttention over a mixed batch (decodes and prefill chunks), split-KV: sequence s owns query
 * rows query_start[s] .. query_start[s+1]-1 and seq_lens[s] keys read through its block table. */
typedef struct cuda_paged_attention_args {
    cuda_attn_dtype dtype;       /* of q, out and the cache */
    const void *q;               /* device [n_tokens][n_head][head_dim] */
    void *out;                   /* device [n_tokens][n_head][head_dim] */
    float *lse;                  /* device [n_head][n_tokens]; may be NULL */
    const void *k_cache;         /* device [n_blocks][block_size][n_kv_head][head_dim] */
    const void *v_cache;         /* device [n_blocks][block_size][n_kv_head][head_dim] */
    const int32_t *query_start;  /* device [n_seqs + 1] */
    const int32_t *seq_lens;     /* device [n_seqs], seq_lens[s] >= n_q(s) */
    const int32_t *block_tables; /* device [n_seqs][max_blocks_per_seq] */
    int n_seqs, n_tokens;
    int max_n_q, max_seq_len;    /* upper bounds over the batch */
    int max_blocks_per_seq, block_size;
    int n_head, n_kv_head, head_dim;
    float scale;
    int n_splits;                /* 0 = choose, 1 = none */
    void *workspace;             /* device, cuda_paged_attention_workspace_bytes(args) bytes */
    void *stream;
} cuda_paged_attention_args;

size_t cuda_paged_attention_workspace_bytes(const cuda_paged_attention_args *args);
/* Errors: as cuda_flash_attn_fwd. */
pagoda_status cuda_paged_attention(const cuda_paged_attention_args *args);

/* The split-KV count the kernels choose for `n_ctas` thread blocks without splitting and keys of
 * at most max_seq_len: 1 when the CTAs already fill the SMs (4 decode CTAs per SM); else the fewest
 * splits whose last wave is within 85% of the best wave efficiency, each split at least 128 keys,
 * at most 64 (flash_num_splits in attn_internal.h). */
int cuda_attn_num_splits(int n_ctas, int max_seq_len);

/* Writes n_tokens new rows k_new[i], v_new[i] ([n_tokens][n_kv_head][head_dim], of src_dtype: 0 bf16,
 * 1 fp16, 2 fp32) into cache slots slot_mapping[i] (slot = block * block_size + offset), converting
 * to the cache dtype (round to nearest even). A negative slot is skipped. Errors: INVALID_ARGUMENT. */
pagoda_status cuda_kv_write(cuda_attn_dtype cache_dtype, void *k_cache, void *v_cache, int src_dtype,
                            const void *k_new, const void *v_new, const int32_t *slot_mapping,
                            int64_t n_tokens, int n_kv_head, int head_dim, void *stream);

/* Copy-on-write: copies whole blocks src[i] -> dst[i] (device [n] each) of K and V in every layer;
 * k_layers/v_layers are device arrays of n_layer device pointers; block_bytes = block_size *
 * n_kv_head * head_dim * element size (a multiple of 16). Errors: INVALID_ARGUMENT. */
pagoda_status cuda_kv_copy_blocks(void *const *k_layers, void *const *v_layers, int n_layer,
                                  const int32_t *src, const int32_t *dst, int n, size_t block_bytes,
                                  void *stream);

/* Test hook: writes the dropout keep mask (1 kept, 0 dropped) the forward uses, as device uint8
 * [n_head][total_q][max_seqlen_k] (column j of query row r of sequence b, j < n_k(b); the rest 0). */
pagoda_status cuda_dropout_mask(uint8_t *mask, const int32_t *cu_seqlens_q, const int32_t *cu_seqlens_k,
                                int batch, int total_q, int max_seqlen_k, int n_head, float dropout_p,
                                uint64_t seed, uint64_t offset, void *stream);

#ifdef __cplusplus
}
#endif

#endif
