/* backend/cuda/flash_fwd.cu - the FlashAttention forward kernel (contiguous varlen and paged K/V),
 * its split-KV combine (FlashDecoding), and the launcher that picks an instantiation.
 *
 * One CTA of NW warps owns BM = 16 * NW packed query rows (token, head of the kv group) of one
 * sequence and one kv head, and walks that sequence's keys (or one split of them) in tiles of BN:
 *   - Q tile in shared memory; K/V tiles double-buffered in shared memory by cp.async (zero-filled
 *     past the end; paged tiles gathered slot by slot through the block table);
 *   - each warp: S = Q K^T (16 x BN) on mma.sync m16n8k16 from ldmatrix fragments, mask (causal,
 *     length, split end), online softmax in fp32 registers (exp2 with scale * log2 e folded in),
 *     optional Philox dropout, P re-packed to bf16/fp16 A fragments in registers, O += P V
 *     (V through ldmatrix.trans);
 *     (dropout is a separate instantiation, so the common path carries none of its registers);
 *   - causal grids run the last (longest) row tiles first;
 *   - epilogue: O / l and lse = m ln 2 + ln l; with split-KV, fp32 partials + lse per split and
 *     flash_combine_kernel merges them weighting each by exp(lse_s - max lse).
 * Rows of shared memory are padded by 16 bytes so ldmatrix is free of bank conflicts.
 * Not here: wgmma/TMA warp-specialised Hopper kernels (docs/CUDA.md lists what would come next).
 */
#include <math.h>

#include "backend/cuda/attn_internal.h" /* defines: fwd_params, flash_fwd_launch, attn_common helpers */

__device__ __forceinline__ float fast_exp2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

template <typename T, int D, int NW, int MT, int BN, int STAGES, bool PAGED, bool DROPOUT>
__global__ void __launch_bounds__(NW * 32) flash_fwd_kernel(const fwd_params p) {
    constexpr int BM = NW * MT * 16; /* rows per CTA: each warp owns MT m16 tiles */
    constexpr int LD = D + 8;        /* padded smem row (elements) */
    constexpr int NT = NW * 32;
    constexpr int CH = D / 8; /* 16-byte chunks per row */
    extern __shared__ __align__(16) unsigned char smem_raw[];
    T *sQ = reinterpret_cast<T *>(smem_raw); /* [BM][LD] */
    T *sK = sQ + BM * LD;                     /* [STAGES][BN][LD] */
    T *sV = sK + STAGES * BN * LD;            /* [STAGES][BN][LD] */

    const int tid = threadIdx.x, w = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
    const int kh = blockIdx.y;
    const int seq = blockIdx.z / p.n_splits, split = blockIdx.z % p.n_splits;
    const int q0 = p.cu_q[seq], n_q = p.cu_q[seq + 1] - q0;
    int n_k, k0 = 0;
    if (PAGED) {
        n_k = p.seq_lens[seq];
    } else {
        k0 = p.cu_k[seq];
        n_k = p.cu_k[seq + 1] - k0;
    }
    /* causal: the CTAs with the most keys (last row tiles) start first, so the tail is short */
    const int tile = p.causal ? gridDim.x - 1 - blockIdx.x : blockIdx.x;
    const int G = p.group, n_rows = n_q * G, r0 = tile * BM;
    if (r0 >= n_rows) return;
    const int diag = n_k - n_q; /* token i sees keys 0 .. i + diag */
    int kv_end = n_k;
    if (p.causal) kv_end = min(n_k, min(n_q - 1, (r0 + BM - 1) / G) + diag + 1);
    const int lo = split * p.split_chunk;
    const int hi = min(kv_end, lo + p.split_chunk);
    const int n_tiles = hi > lo ? (hi - lo + BN - 1) / BN : 0;

    const T *qg = static_cast<const T *>(p.q);
    const T *kg = static_cast<const T *>(p.k);
    const T *vg = static_cast<const T *>(p.v);

    for (int c = tid; c < BM * CH; c += NT) {
        int rr = c / CH, ch = c % CH, r = r0 + rr;
        bool ok = r < n_rows;
        int i = ok ? r / G : 0, h = kh * G + (ok ? r % G : 0);
        cp_async16(smem_u32(sQ + rr * LD + ch * 8), qg + ((int64_t)(q0 + i) * p.n_head + h) * D + ch * 8, ok);
    }
    auto load_kv = [&](int n0, int buf) {
        T *dk = sK + buf * BN * LD, *dv = sV + buf * BN * LD;
        for (int c = tid; c < BN * CH; c += NT) {
            int jj = c / CH, ch = c % CH, j = n0 + jj;
            bool ok = j < hi;
            int jc = ok ? j : lo;
            int64_t row;
            if (PAGED) {
                int blk = p.block_tables[(int64_t)seq * p.max_blocks_per_seq + (jc >> p.block_shift)];
                row = ((int64_t)blk << p.block_shift) + (jc & ((1 << p.block_shift) - 1));
            } else {
                row = k0 + jc;
            }
            int64_t off = (row * p.n_kv_head + kh) * D + ch * 8;
            cp_async16(smem_u32(dk + jj * LD + ch * 8), kg + off, ok);
            cp_async16(smem_u32(dv + jj * LD + ch * 8), vg + off, ok);
        }
    };
#pragma unroll
    for (int st = 0; st < STAGES - 1; st++) {
        if (st < n_tiles) load_kv(lo + st * BN, st);
        cp_async_commit();
    }

    const int wr0 = r0 + w * MT * 16; /* first row of this warp */
    const bool warp_active = wr0 < n_rows;
    int lim[MT][2];
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int rr = 0; rr < 2; rr++) lim[mt][rr] = p.causal ? (wr0 + mt * 16 + g + 8 * rr) / G + diag : 0x7fffffff;
    const int warp_min_lim = p.causal ? wr0 / G + diag : 0x7fffffff;

    float o[MT][D / 8][4];
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int d = 0; d < D / 8; d++) o[mt][d][0] = o[mt][d][1] = o[mt][d][2] = o[mt][d][3] = 0.f;
    float m[MT][2], l[MT][2];
#pragma unroll
    for (int mt = 0; mt < MT; mt++) m[mt][0] = m[mt][1] = -INFINITY, l[mt][0] = l[mt][1] = 0.f;

    for (int it = 0; it < n_tiles; it++) {
        const int n0 = lo + it * BN, buf = it % STAGES;
        cp_async_wait<STAGES - 2>();
        __syncthreads();
        if (it + STAGES - 1 < n_tiles) load_kv(n0 + (STAGES - 1) * BN, (it + STAGES - 1) % STAGES);
        cp_async_commit();
        if (!warp_active) continue;
        const T *kb = sK + buf * BN * LD, *vb = sV + buf * BN * LD;
        float s[MT][BN / 8][4];
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
            for (int n = 0; n < BN / 8; n++) s[mt][n][0] = s[mt][n][1] = s[mt][n][2] = s[mt][n][3] = 0.f;
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            uint32_t a[MT][4];
#pragma unroll
            for (int mt = 0; mt < MT; mt++)
                ldmatrix_x4(a[mt], smem_u32(sQ + (w * MT * 16 + mt * 16 + (lane & 15)) * LD + kk * 16 + (lane >> 4) * 8));
#pragma unroll
            for (int nn = 0; nn < BN / 16; nn++) {
                uint32_t b[4];
                ldmatrix_x4(b, smem_u32(kb + (nn * 16 + (lane >> 4) * 8 + (lane & 7)) * LD + kk * 16 +
                                        ((lane >> 3) & 1) * 8));
#pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    mma16816<T>(s[mt][2 * nn], a[mt], b[0], b[1]);
                    mma16816<T>(s[mt][2 * nn + 1], a[mt], b[2], b[3]);
                }
            }
        }
        if (n0 + BN > hi || n0 + BN - 1 > warp_min_lim) {
#pragma unroll
            for (int mt = 0; mt < MT; mt++)
#pragma unroll
                for (int n = 0; n < BN / 8; n++)
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        const int j = n0 + n * 8 + 2 * t + (e & 1);
                        if (j >= hi || j > lim[mt][e >> 1]) s[mt][n][e] = -INFINITY;
                    }
        }
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
            for (int rr = 0; rr < 2; rr++) {
                float mx = -INFINITY;
#pragma unroll
                for (int n = 0; n < BN / 8; n++) mx = fmaxf(mx, fmaxf(s[mt][n][2 * rr], s[mt][n][2 * rr + 1]));
                mx = quad_max(mx) * p.scale_log2;
                const float m_new = fmaxf(m[mt][rr], mx);
                const float m_use = m_new == -INFINITY ? 0.f : m_new;
                const float alpha = fast_exp2(m[mt][rr] - m_use);
                m[mt][rr] = m_new;
                l[mt][rr] *= alpha;
                if (__any_sync(0xffffffffu, alpha != 1.f)) { /* once the maxima settle, skip the rescale */
#pragma unroll
                    for (int d = 0; d < D / 8; d++) {
                        o[mt][d][2 * rr] *= alpha;
                        o[mt][d][2 * rr + 1] *= alpha;
                    }
                }
                float ls = 0.f;
#pragma unroll
                for (int n = 0; n < BN / 8; n++) {
                    float p0 = fast_exp2(fmaf(s[mt][n][2 * rr], p.scale_log2, -m_use));
                    float p1 = fast_exp2(fmaf(s[mt][n][2 * rr + 1], p.scale_log2, -m_use));
                    ls += p0 + p1;
                    s[mt][n][2 * rr] = p0;
                    s[mt][n][2 * rr + 1] = p1;
                }
                l[mt][rr] += ls;
            }
        if (DROPOUT) {
#pragma unroll
            for (int mt = 0; mt < MT; mt++)
#pragma unroll
                for (int rr = 0; rr < 2; rr++) {
                    const int r = wr0 + mt * 16 + g + 8 * rr;
                    const int qrow = q0 + r / G, h = kh * G + r % G;
#pragma unroll
                    for (int n = 0; n < BN / 8; n++) {
                        const int j = n0 + n * 8 + 2 * t;
                        uint4 wv = dropout_words(p.drop, h, qrow, j);
                        uint32_t w0 = (j & 3) ? wv.z : wv.x, w1 = (j & 3) ? wv.w : wv.y;
                        s[mt][n][2 * rr] = w0 < p.drop.threshold ? s[mt][n][2 * rr] * p.rp_keep : 0.f;
                        s[mt][n][2 * rr + 1] = w1 < p.drop.threshold ? s[mt][n][2 * rr + 1] * p.rp_keep : 0.f;
                    }
                }
        }
#pragma unroll
        for (int kt = 0; kt < BN / 16; kt++) {
            uint32_t a[MT][4];
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                a[mt][0] = elem<T>::pack2(s[mt][2 * kt][0], s[mt][2 * kt][1]);
                a[mt][1] = elem<T>::pack2(s[mt][2 * kt][2], s[mt][2 * kt][3]);
                a[mt][2] = elem<T>::pack2(s[mt][2 * kt + 1][0], s[mt][2 * kt + 1][1]);
                a[mt][3] = elem<T>::pack2(s[mt][2 * kt + 1][2], s[mt][2 * kt + 1][3]);
            }
#pragma unroll
            for (int dn = 0; dn < D / 16; dn++) {
                uint32_t b[4];
                ldmatrix_x4_trans(b, smem_u32(vb + (kt * 16 + ((lane >> 3) & 1) * 8 + (lane & 7)) * LD + dn * 16 +
                                              (lane >> 4) * 8));
#pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    mma16816<T>(o[mt][2 * dn], a[mt], b[0], b[1]);
                    mma16816<T>(o[mt][2 * dn + 1], a[mt], b[2], b[3]);
                }
            }
        }
    }
    cp_async_wait<0>();
    if (!warp_active) return;

#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int rr = 0; rr < 2; rr++) {
            const float lsum = quad_sum(l[mt][rr]);
            const float inv = lsum > 0.f ? 1.f / lsum : 0.f;
            const float lse = lsum > 0.f ? m[mt][rr] * 0.69314718055994531f + logf(lsum)
                                         : (p.n_splits > 1 ? -INFINITY : INFINITY);
            const int r = wr0 + mt * 16 + g + 8 * rr;
            if (r >= n_rows) continue;
            const int qrow = q0 + r / G, h = kh * G + r % G;
            if (p.n_splits == 1) {
                T *og = static_cast<T *>(p.o) + ((int64_t)qrow * p.n_head + h) * D + 2 * t;
#pragma unroll
                for (int d = 0; d < D / 8; d++)
                    *reinterpret_cast<uint32_t *>(og + d * 8) =
                        elem<T>::pack2(o[mt][d][2 * rr] * inv, o[mt][d][2 * rr + 1] * inv);
                if (t == 0 && p.lse) p.lse[(int64_t)h * p.total_q + qrow] = lse;
            } else {
                float *og = p.o_part + (((int64_t)split * p.total_q + qrow) * p.n_head + h) * D + 2 * t;
#pragma unroll
                for (int d = 0; d < D / 8; d++)
                    *reinterpret_cast<float2 *>(og + d * 8) =
                        make_float2(o[mt][d][2 * rr] * inv, o[mt][d][2 * rr + 1] * inv);
                if (t == 0) p.lse_part[((int64_t)split * p.n_head + h) * p.total_q + qrow] = lse;
            }
        }
}

/* Merges the n_splits partial rows of one (query row, head) per warp: out = sum_s w_s O_s / sum_s w_s
 * with w_s = exp(lse_s - max lse); lse = max + ln(sum w). A row no split saw is 0 with lse +inf. */
template <typename T, int D>
__global__ void flash_combine_kernel(const fwd_params p) {
    const int warp = (blockIdx.x * blockDim.x + threadIdx.x) >> 5, lane = threadIdx.x & 31;
    if (warp >= p.total_q * p.n_head) return;
    const int qrow = warp / p.n_head, h = warp % p.n_head;
    const int S = p.n_splits;
    const float *lp = p.lse_part + (int64_t)h * p.total_q + qrow;
    const int64_t lstride = (int64_t)p.n_head * p.total_q;
    float mx = -INFINITY;
    for (int s = lane; s < S; s += 32) mx = fmaxf(mx, lp[s * lstride]);
#pragma unroll
    for (int o = 16; o; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    constexpr int E = D / 32;
    float acc[E];
#pragma unroll
    for (int e = 0; e < E; e++) acc[e] = 0.f;
    float wsum = 0.f;
    if (mx != -INFINITY) {
        const float *op = p.o_part + ((int64_t)qrow * p.n_head + h) * D + lane * E;
        const int64_t ostride = (int64_t)p.total_q * p.n_head * D;
        for (int s = 0; s < S; s++) {
            const float ls = lp[s * lstride];
            if (ls == -INFINITY) continue;
            const float wgt = __expf(ls - mx);
            wsum += wgt;
            const float *src = op + s * ostride;
#pragma unroll
            for (int e = 0; e < E; e += 2) {
                float2 x = *reinterpret_cast<const float2 *>(src + e);
                acc[e] += wgt * x.x;
                acc[e + 1] += wgt * x.y;
            }
        }
    }
    const float inv = wsum > 0.f ? 1.f / wsum : 0.f;
    T *og = static_cast<T *>(p.o) + ((int64_t)qrow * p.n_head + h) * D + lane * E;
#pragma unroll
    for (int e = 0; e < E; e += 2)
        *reinterpret_cast<uint32_t *>(og + e) = elem<T>::pack2(acc[e] * inv, acc[e + 1] * inv);
    if (lane == 0 && p.lse) p.lse[(int64_t)h * p.total_q + qrow] = wsum > 0.f ? mx + logf(wsum) : INFINITY;
}

template <typename T, int D, int NW, int MT, int BN, int STAGES, bool PAGED, bool DROPOUT = false>
static cudaError_t launch_cfg(const fwd_params &p, cudaStream_t stream) {
    constexpr int BM = NW * MT * 16, LD = D + 8;
    const size_t smem = (size_t)(BM + 2 * STAGES * BN) * LD * sizeof(T);
    auto kern = flash_fwd_kernel<T, D, NW, MT, BN, STAGES, PAGED, DROPOUT>;
    cudaError_t err = cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (err != cudaSuccess) return err;
    dim3 grid((p.max_rows + BM - 1) / BM, p.n_kv_head, p.batch * p.n_splits);
    kern<<<grid, NW * 32, smem, stream>>>(p);
    if (p.n_splits > 1) {
        const int warps = p.total_q * p.n_head;
        flash_combine_kernel<T, D><<<(warps + 7) / 8, 256, 0, stream>>>(p);
    }
    return cudaGetLastError();
}

/* Configurations (see FLASH_FWD_ROWS_SMALL): many rows per sequence (prefill): 4 warps x 32 rows,
 * 64-key tiles, 2 stages; few rows (decode, short chunks): 4 warps x 16 rows, 32-key tiles,
 * 4 stages, so more bytes are in flight for the memory-bound case. */
template <typename T, int D>
static cudaError_t launch_dim(const fwd_params &p, cudaStream_t stream) {
    const bool paged = p.block_tables != nullptr, small = p.max_rows <= FLASH_FWD_ROWS_SMALL;
    if (paged) return small ? launch_cfg<T, D, 4, 1, 32, 4, true>(p, stream) : launch_cfg<T, D, 4, 2, 64, 2, true>(p, stream);
    if (p.dropout) return launch_cfg<T, D, 4, 2, 64, 2, false, true>(p, stream);
    return small ? launch_cfg<T, D, 4, 1, 32, 4, false>(p, stream) : launch_cfg<T, D, 4, 2, 64, 2, false>(p, stream);
}

cudaError_t flash_fwd_launch(const fwd_params &p, cudaStream_t stream) {
    if (p.dtype == 0) return p.head_dim == 64 ? launch_dim<__nv_bfloat16, 64>(p, stream)
                                              : launch_dim<__nv_bfloat16, 128>(p, stream);
    return p.head_dim == 64 ? launch_dim<__half, 64>(p, stream) : launch_dim<__half, 128>(p, stream);
}
