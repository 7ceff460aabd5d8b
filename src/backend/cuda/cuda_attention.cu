/* backend/cuda/cuda_attention.cu - the C API of cuda_attention.h: validates arguments, chooses the
 * split-KV count and lays out workspaces, fills the kernels' parameter blocks (attn_internal.h) and
 * launches. Errors are returned as pagoda_status with a message (core/error.h); nothing here exits.
 */
#include <math.h>
#include <stdint.h>

#include "backend/cuda/attn_internal.h"  /* defines: fwd_params, bwd_params, *_launch */
#include "backend/cuda/cuda_attention.h" /* defines: the public API */
extern "C" {
#include "core/error.h" /* defines: error_set, error_prefix */
}

static const int64_t kWorkspaceAlign = 256;

static int64_t align_up(int64_t x) { return (x + kWorkspaceAlign - 1) / kWorkspaceAlign * kWorkspaceAlign; }

static int device_sm_count(void) {
    int dev = 0, n = 0;
    if (cudaGetDevice(&dev) != cudaSuccess) return 132;
    if (cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess || n <= 0) return 132;
    return n;
}

extern "C" int cuda_attn_num_splits(int n_ctas, int max_seq_len) {
    return flash_num_splits(n_ctas, max_seq_len, device_sm_count());
}

static int fwd_ctas(int max_rows, int n_kv_head, int batch) { return flash_fwd_ctas(max_rows, n_kv_head, batch); }

/* Resolves the requested split count into (n_splits, split_chunk) for keys of at most max_k. */
static void resolve_splits(int requested, int n_ctas, int max_k, int *n_splits, int *chunk) {
    int s = requested > 0 ? requested : cuda_attn_num_splits(n_ctas, max_k);
    if (s <= 1 || max_k <= 0) {
        *n_splits = 1;
        *chunk = 0x3fffffff;
        return;
    }
    int c = (max_k + s - 1) / s;
    c = (c + FLASH_FWD_BLOCK_N - 1) / FLASH_FWD_BLOCK_N * FLASH_FWD_BLOCK_N;
    *chunk = c;
    *n_splits = (max_k + c - 1) / c;
}

static int64_t split_workspace(int n_splits, int total_q, int n_head, int head_dim) {
    if (n_splits <= 1) return 0;
    return align_up((int64_t)n_splits * total_q * n_head * head_dim * 4) + align_up((int64_t)n_splits * n_head * total_q * 4);
}

static int misaligned(const void *p) { return ((uintptr_t)p & 15) != 0; }

static pagoda_status check_common(int dtype, int head_dim, int n_head, int n_kv_head, float scale) {
    if (dtype != CUDA_ATTN_BF16 && dtype != CUDA_ATTN_FP16)
        return error_set(PAGODA_ERR_UNSUPPORTED, "cuda attention: dtype %d is not bf16 or fp16", dtype);
    if (head_dim != 64 && head_dim != 128)
        return error_set(PAGODA_ERR_UNSUPPORTED, "cuda attention: head_dim %d (supported: 64, 128)", head_dim);
    if (n_head <= 0 || n_kv_head <= 0 || n_head % n_kv_head != 0)
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "cuda attention: n_head %d is not a multiple of n_kv_head %d",
                         n_head, n_kv_head);
    if (!(scale > 0.f) || !isfinite(scale))
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "cuda attention: scale must be positive and finite");
    return PAGODA_OK;
}

static pagoda_status fill_fwd(const cuda_flash_fwd_args *a, fwd_params *p) {
    if (!a) return error_set(PAGODA_ERR_INVALID_ARGUMENT, "cuda_flash_attn_fwd: NULL args");
    pagoda_status st = check_common(a->dtype, a->head_dim, a->n_head, a->n_kv_head, a->scale);
    if (st != PAGODA_OK) return st;
    if (a->batch < 0 || a->total_q < 0 || a->max_seqlen_q < 0 || a->max_seqlen_k < 0)
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "cuda_flash_attn_fwd: negative batch or length");
    if (a->batch > 0 && (!a->q || !a->k || !a->v || !a->out || !a->cu_seqlens_q || !a->cu_seqlens_k))
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "cuda_flash_attn_fwd: NULL tensor");
    if (misaligned(a->q) || misaligned(a->k) || misaligned(a->v) || misaligned(a->out))
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "cuda_flash_attn_fwd: tensors must be 16-byte aligned");
    if (!(a->dropout_p >= 0.f && a->dropout_p < 1.f))
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "cuda_flash_attn_fwd: dropout_p %g not in [0, 1)",
                         (double)a->dropout_p);
    *p = fwd_params{};
    p->dtype = a->dtype;
    p->q = a->q, p->k = a->k, p->v = a->v, p->o = a->out, p->lse = a->lse;
    p->cu_q = a->cu_seqlens_q, p->cu_k = a->cu_seqlens_k;
    p->batch = a->batch, p->total_q = a->total_q;
    p->n_head = a->n_head, p->n_kv_head = a->n_kv_head, p->group = a->n_head / a->n_kv_head;
    p->head_dim = a->head_dim;
    p->max_rows = a->max_seqlen_q * p->group;
    p->scale = a->scale, p->scale_log2 = a->scale * 1.4426950408889634f;
    p->causal = a->causal != 0;
    p->dropout = a->dropout_p > 0.f;
    const double keep = 1.0 - (double)a->dropout_p;
    const double thr = keep * 4294967296.0;
    p->drop.threshold = thr >= 4294967295.0 ? 0xffffffffu : (uint32_t)thr;
    p->drop.key = make_uint2((uint32_t)a->seed, (uint32_t)(a->seed >> 32) ^ (uint32_t)(a->offset >> 32));
    p->drop.offset_lo = (uint32_t)a->offset;
    p->rp_keep = (float)(1.0 / keep);
    resolve_splits(p->dropout ? 1 : a->n_splits, fwd_ctas(p->max_rows, a->n_kv_head, a->batch), a->max_seqlen_k,
                   &p->n_splits, &p->split_chunk);
    return PAGODA_OK;
}

static pagoda_status launch_status(cudaError_t err, const char *what) {
    if (err != cudaSuccess) return error_set(PAGODA_ERR_INTERNAL, "%s: %s", what, cudaGetErrorString(err));
    return PAGODA_OK;
}

extern "C" size_t cuda_flash_fwd_workspace_bytes(const cuda_flash_fwd_args *a) {
    fwd_params p;
    if (fill_fwd(a, &p) != PAGODA_OK) return 0;
    return (size_t)split_workspace(p.n_splits, p.total_q, p.n_head, p.head_dim);
}

static pagoda_status attach_split_workspace(fwd_params *p, void *ws, size_t ws_bytes, const char *who) {
    const int64_t need = split_workspace(p->n_splits, p->total_q, p->n_head, p->head_dim);
    if (need == 0) return PAGODA_OK;
    if (!ws || (int64_t)ws_bytes < need || ((uintptr_t)ws & 255))
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "%s: needs %lld bytes of 256-byte aligned workspace (got %zu)",
                         who, (long long)need, ws_bytes);
    p->o_part = static_cast<float *>(ws);
    p->lse_part = reinterpret_cast<float *>(static_cast<char *>(ws) +
                                            align_up((int64_t)p->n_splits * p->total_q * p->n_head * p->head_dim * 4));
    return PAGODA_OK;
}

extern "C" pagoda_status cuda_flash_attn_fwd(const cuda_flash_fwd_args *a) {
    fwd_params p;
    pagoda_status st = fill_fwd(a, &p);
    if (st != PAGODA_OK) return st;
    if (a->batch == 0 || a->total_q == 0) return PAGODA_OK;
    st = attach_split_workspace(&p, a->workspace, cuda_flash_fwd_workspace_bytes(a), "cuda_flash_attn_fwd");
    if (st != PAGODA_OK) return st;
    return launch_status(flash_fwd_launch(p, static_cast<cudaStream_t>(a->stream)), "cuda_flash_attn_fwd");
}

extern "C" size_t cuda_flash_bwd_workspace_bytes(const cuda_flash_bwd_args *a) {
    if (!a) return 0;
    const cuda_flash_fwd_args *f = &a->fwd;
    return (size_t)(align_up((int64_t)f->total_q * f->n_head * f->head_dim * 4) + align_up((int64_t)f->n_head * f->total_q * 4));
}

extern "C" pagoda_status cuda_flash_attn_bwd(const cuda_flash_bwd_args *a) {
    if (!a) return error_set(PAGODA_ERR_INVALID_ARGUMENT, "cuda_flash_attn_bwd: NULL args");
    bwd_params p;
    pagoda_status st = fill_fwd(&a->fwd, &p.f);
    if (st != PAGODA_OK) return error_prefix(st, "cuda_flash_attn_bwd");
    if (a->fwd.batch == 0 || a->fwd.total_q == 0) return PAGODA_OK;
    if (!a->fwd.lse || !a->dout || !a->dq || !a->dk || !a->dv || !a->workspace)
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "cuda_flash_attn_bwd: NULL lse, dout, dq, dk, dv or workspace");
    if (misaligned(a->dout) || misaligned(a->dq) || misaligned(a->dk) || misaligned(a->dv) || ((uintptr_t)a->workspace & 255))
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "cuda_flash_attn_bwd: misaligned tensor or workspace");
    p.f.n_splits = 1;
    p.max_seqlen_k = a->fwd.max_seqlen_k;
    p.total_k = 0;
    p.dout = a->dout, p.dq = a->dq, p.dk = a->dk, p.dv = a->dv;
    p.dq_accum = static_cast<float *>(a->workspace);
    p.delta = reinterpret_cast<float *>(static_cast<char *>(a->workspace) +
                                        align_up((int64_t)a->fwd.total_q * a->fwd.n_head * a->fwd.head_dim * 4));
    return launch_status(flash_bwd_launch(p, static_cast<cudaStream_t>(a->fwd.stream)), "cuda_flash_attn_bwd");
}

static pagoda_status fill_paged(const cuda_paged_attention_args *a, fwd_params *p) {
    if (!a) return error_set(PAGODA_ERR_INVALID_ARGUMENT, "cuda_paged_attention: NULL args");
    pagoda_status st = check_common(a->dtype, a->head_dim, a->n_head, a->n_kv_head, a->scale);
    if (st != PAGODA_OK) return st;
    const int bs = a->block_size;
    if (bs < 8 || (bs & (bs - 1)))
        return error_set(PAGODA_ERR_UNSUPPORTED, "cuda_paged_attention: block_size %d is not a power of two >= 8", bs);
    if (a->n_seqs < 0 || a->n_tokens < 0 || a->max_n_q < 0 || a->max_seq_len < 0 ||
        (long long)a->max_blocks_per_seq * bs < a->max_seq_len)
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "cuda_paged_attention: bad lengths or block table width");
    if (a->n_seqs > 0 && (!a->q || !a->out || !a->k_cache || !a->v_cache || !a->query_start || !a->seq_lens ||
                          !a->block_tables))
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "cuda_paged_attention: NULL tensor");
    if (misaligned(a->q) || misaligned(a->out) || misaligned(a->k_cache) || misaligned(a->v_cache))
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "cuda_paged_attention: tensors must be 16-byte aligned");
    *p = fwd_params{};
    p->dtype = a->dtype;
    p->q = a->q, p->k = a->k_cache, p->v = a->v_cache, p->o = a->out, p->lse = a->lse;
    p->cu_q = a->query_start, p->seq_lens = a->seq_lens, p->block_tables = a->block_tables;
    p->max_blocks_per_seq = a->max_blocks_per_seq;
    int shift = 0;
    while ((1 << shift) < bs) shift++;
    p->block_shift = shift;
    p->batch = a->n_seqs, p->total_q = a->n_tokens;
    p->n_head = a->n_head, p->n_kv_head = a->n_kv_head, p->group = a->n_head / a->n_kv_head;
    p->head_dim = a->head_dim;
    p->max_rows = a->max_n_q * p->group;
    p->scale = a->scale, p->scale_log2 = a->scale * 1.4426950408889634f;
    p->causal = 1;
    resolve_splits(a->n_splits, fwd_ctas(p->max_rows, a->n_kv_head, a->n_seqs), a->max_seq_len, &p->n_splits,
                   &p->split_chunk);
    return PAGODA_OK;
}

extern "C" size_t cuda_paged_attention_workspace_bytes(const cuda_paged_attention_args *a) {
    fwd_params p;
    if (fill_paged(a, &p) != PAGODA_OK) return 0;
    return (size_t)split_workspace(p.n_splits, p.total_q, p.n_head, p.head_dim);
}

extern "C" pagoda_status cuda_paged_attention(const cuda_paged_attention_args *a) {
    fwd_params p;
    pagoda_status st = fill_paged(a, &p);
    if (st != PAGODA_OK) return st;
    if (a->n_seqs == 0 || a->n_tokens == 0) return PAGODA_OK;
    st = attach_split_workspace(&p, a->workspace, cuda_paged_attention_workspace_bytes(a), "cuda_paged_attention");
    if (st != PAGODA_OK) return st;
    return launch_status(flash_fwd_launch(p, static_cast<cudaStream_t>(a->stream)), "cuda_paged_attention");
}

extern "C" pagoda_status cuda_kv_write(cuda_attn_dtype cache_dtype, void *k_cache, void *v_cache, int src_dtype,
                                       const void *k_new, const void *v_new, const int32_t *slot_mapping,
                                       int64_t n_tokens, int n_kv_head, int head_dim, void *stream) {
    if (cache_dtype != CUDA_ATTN_BF16 && cache_dtype != CUDA_ATTN_FP16)
        return error_set(PAGODA_ERR_UNSUPPORTED, "cuda_kv_write: cache dtype %d", cache_dtype);
    if (src_dtype < 0 || src_dtype > 2 || n_tokens < 0 || n_kv_head <= 0 || head_dim <= 0 || head_dim % 8)
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "cuda_kv_write: bad src dtype or shape");
    if (n_tokens > 0 && (!k_cache || !v_cache || !k_new || !v_new || !slot_mapping))
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "cuda_kv_write: NULL tensor");
    if (misaligned(k_cache) || misaligned(v_cache))
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "cuda_kv_write: cache must be 16-byte aligned");
    return launch_status(kv_write_launch(cache_dtype, k_cache, v_cache, src_dtype, k_new, v_new, slot_mapping, n_tokens,
                                         n_kv_head * head_dim, static_cast<cudaStream_t>(stream)),
                         "cuda_kv_write");
}

extern "C" pagoda_status cuda_kv_copy_blocks(void *const *k_layers, void *const *v_layers, int n_layer,
                                             const int32_t *src, const int32_t *dst, int n, size_t block_bytes,
                                             void *stream) {
    if (n < 0 || n_layer < 0 || block_bytes % 16 || n > 65535 || n_layer > 65535)
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "cuda_kv_copy_blocks: bad counts or block_bytes %zu", block_bytes);
    if (n > 0 && n_layer > 0 && (!k_layers || !v_layers || !src || !dst))
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "cuda_kv_copy_blocks: NULL pointer");
    return launch_status(kv_copy_blocks_launch(k_layers, v_layers, n_layer, src, dst, n, block_bytes,
                                               static_cast<cudaStream_t>(stream)),
                         "cuda_kv_copy_blocks");
}

extern "C" pagoda_status cuda_dropout_mask(uint8_t *mask, const int32_t *cu_seqlens_q, const int32_t *cu_seqlens_k,
                                           int batch, int total_q, int max_seqlen_k, int n_head, float dropout_p,
                                           uint64_t seed, uint64_t offset, void *stream) {
    if (batch <= 0 || total_q < 0 || max_seqlen_k < 0 || n_head <= 0 || !(dropout_p >= 0.f && dropout_p < 1.f))
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "cuda_dropout_mask: bad shape or dropout_p");
    const double thr = (1.0 - (double)dropout_p) * 4294967296.0;
    dropout_key d;
    d.threshold = thr >= 4294967295.0 ? 0xffffffffu : (uint32_t)thr;
    d.key = make_uint2((uint32_t)seed, (uint32_t)(seed >> 32) ^ (uint32_t)(offset >> 32));
    d.offset_lo = (uint32_t)offset;
    return launch_status(dropout_mask_launch(mask, cu_seqlens_q, cu_seqlens_k, batch, total_q, max_seqlen_k, n_head, d,
                                             static_cast<cudaStream_t>(stream)),
                         "cuda_dropout_mask");
}
