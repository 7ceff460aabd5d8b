/* backend/cuda/kv_cache.cu - the paged KV cache's small kernels: kv_write (new K/V rows into their
 * slots, converted to the cache type), kv_copy_blocks (copy-on-write of whole blocks in every layer),
 * and the dropout-mask test hook (the forward's Philox mask written out as bytes).
 * Layout: kernels/ref/paged_attention.h ([n_blocks][block_size][n_kv_head][head_dim]).
 */
#include "backend/cuda/attn_internal.h" /* defines: kv_write_launch, kv_copy_blocks_launch, dropout_mask_launch */

/* One thread converts and stores 8 elements (16 bytes of the cache) of one token row. */
template <typename C, typename S>
__global__ void kv_write_kernel(C *k_cache, C *v_cache, const S *k_new, const S *v_new, const int32_t *slots,
                                int64_t n_tokens, int row_elems) {
    const int per_row = row_elems / 8;
    const int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (idx >= n_tokens * per_row) return;
    const int64_t tok = idx / per_row;
    const int c = (int)(idx % per_row) * 8;
    const int32_t slot = slots[tok];
    if (slot < 0) return;
    const int64_t src = tok * row_elems + c, dst = (int64_t)slot * row_elems + c;
    for (int which = 0; which < 2; which++) {
        const S *in = (which ? v_new : k_new) + src;
        C *out = (which ? v_cache : k_cache) + dst;
        uint32_t packed[4];
#pragma unroll
        for (int e = 0; e < 4; e++) {
            float lo, hi;
            if constexpr (sizeof(S) == 4) {
                lo = (float)in[2 * e];
                hi = (float)in[2 * e + 1];
            } else {
                lo = elem<S>::to_f(in[2 * e]);
                hi = elem<S>::to_f(in[2 * e + 1]);
            }
            packed[e] = elem<C>::pack2(lo, hi);
        }
        *reinterpret_cast<uint4 *>(out) = make_uint4(packed[0], packed[1], packed[2], packed[3]);
    }
}

template <typename C>
static void kv_write_src(void *k_cache, void *v_cache, int src_dtype, const void *k_new, const void *v_new,
                         const int32_t *slots, int64_t n_tokens, int row_elems, cudaStream_t stream) {
    const int64_t n = n_tokens * (row_elems / 8);
    const int blocks = (int)((n + 255) / 256);
    C *kc = static_cast<C *>(k_cache), *vc = static_cast<C *>(v_cache);
    if (src_dtype == 0)
        kv_write_kernel<C, __nv_bfloat16><<<blocks, 256, 0, stream>>>(kc, vc, (const __nv_bfloat16 *)k_new,
                                                                       (const __nv_bfloat16 *)v_new, slots, n_tokens, row_elems);
    else if (src_dtype == 1)
        kv_write_kernel<C, __half><<<blocks, 256, 0, stream>>>(kc, vc, (const __half *)k_new, (const __half *)v_new,
                                                                slots, n_tokens, row_elems);
    else
        kv_write_kernel<C, float><<<blocks, 256, 0, stream>>>(kc, vc, (const float *)k_new, (const float *)v_new,
                                                               slots, n_tokens, row_elems);
}

cudaError_t kv_write_launch(int cache_dtype, void *k_cache, void *v_cache, int src_dtype, const void *k_new,
                            const void *v_new, const int32_t *slot_mapping, int64_t n_tokens, int row_elems,
                            cudaStream_t stream) {
    if (n_tokens == 0) return cudaSuccess;
    if (cache_dtype == 0)
        kv_write_src<__nv_bfloat16>(k_cache, v_cache, src_dtype, k_new, v_new, slot_mapping, n_tokens, row_elems, stream);
    else
        kv_write_src<__half>(k_cache, v_cache, src_dtype, k_new, v_new, slot_mapping, n_tokens, row_elems, stream);
    return cudaGetLastError();
}

/* blockIdx.x: pair, blockIdx.y: layer, blockIdx.z: 0 = K, 1 = V; 16-byte copies. */
__global__ void kv_copy_blocks_kernel(void *const *k_layers, void *const *v_layers, const int32_t *src,
                                      const int32_t *dst, size_t block_bytes) {
    char *base = static_cast<char *>(blockIdx.z ? v_layers[blockIdx.y] : k_layers[blockIdx.y]);
    const uint4 *from = reinterpret_cast<const uint4 *>(base + (size_t)src[blockIdx.x] * block_bytes);
    uint4 *to = reinterpret_cast<uint4 *>(base + (size_t)dst[blockIdx.x] * block_bytes);
    for (size_t i = threadIdx.x; i < block_bytes / 16; i += blockDim.x) to[i] = from[i];
}

cudaError_t kv_copy_blocks_launch(void *const *k_layers, void *const *v_layers, int n_layer, const int32_t *src,
                                  const int32_t *dst, int n, size_t block_bytes, cudaStream_t stream) {
    if (n == 0 || n_layer == 0) return cudaSuccess;
    kv_copy_blocks_kernel<<<dim3(n, n_layer, 2), 256, 0, stream>>>(k_layers, v_layers, src, dst, block_bytes);
    return cudaGetLastError();
}

__global__ void dropout_mask_kernel(uint8_t *mask, const int32_t *cu_q, const int32_t *cu_k, int batch, int total_q,
                                    int max_k, int n_head, dropout_key drop) {
    const int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (idx >= (int64_t)n_head * total_q * max_k) return;
    const int j = (int)(idx % max_k), q = (int)(idx / max_k % total_q), h = (int)(idx / max_k / total_q);
    int lo = 0, hi = batch; /* find b with cu_q[b] <= q < cu_q[b+1] */
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        if (cu_q[mid] <= q) lo = mid; else hi = mid;
    }
    const int n_k = cu_k[lo + 1] - cu_k[lo];
    mask[idx] = j < n_k && dropout_keep(drop, h, q, j) ? 1 : 0;
}

cudaError_t dropout_mask_launch(uint8_t *mask, const int32_t *cu_q, const int32_t *cu_k, int batch, int total_q,
                                int max_seqlen_k, int n_head, dropout_key drop, cudaStream_t stream) {
    const int64_t n = (int64_t)n_head * total_q * max_seqlen_k;
    if (n == 0) return cudaSuccess;
    dropout_mask_kernel<<<(unsigned)((n + 255) / 256), 256, 0, stream>>>(mask, cu_q, cu_k, batch, total_q, max_seqlen_k,
                                                                         n_head, drop);
    return cudaGetLastError();
}
