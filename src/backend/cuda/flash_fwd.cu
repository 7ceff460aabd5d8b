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
 *   - causal grids run the longest row tiles of every head first (block index remapped so the row
 *     tile is the slowest-varying index: the last wave holds only short tiles);
 *   - paged decode reads its block-table entries ahead of the copies (no dependent round trip per
 *     16-byte chunk);
 *   - epilogue: O / l and lse = m ln 2 + ln l; with split-KV, fp32 partials + lse per split and
 *     flash_combine_kernel (a CTA per row and head, every partial load issued up front, launched
 *     as a programmatic dependent on sm_90) merges them weighting each by exp(lse_s - max lse).
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
    /* Causal: the CTAs run longest row tiles first across the whole grid (the block scheduler
     * walks x fastest, so x is remapped to the slowest index here, reversed), so the last wave is
     * made of the shortest tiles of every head rather than whole heads of mixed lengths. */
    int bx = blockIdx.x, by = blockIdx.y, bz = blockIdx.z;
#ifdef FLASH_NO_CAUSAL_REMAP
    if (p.causal) bx = gridDim.x - 1 - blockIdx.x; /* (dev A/B switch) longest first within a head only */
#endif
#ifndef FLASH_NO_CAUSAL_REMAP /* dev A/B switch */
    if (p.causal && gridDim.x > 1) {
#else
    if (false) {
#endif
        const int nyz = gridDim.y * gridDim.z;
        const int lin = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
        bx = gridDim.x - 1 - lin / nyz;
        by = lin % nyz % gridDim.y;
        bz = lin % nyz / gridDim.y;
    }
    const int kh = by;
    const int seq = bz / p.n_splits, split = bz % p.n_splits;
    const int q0 = p.cu_q[seq], n_q = p.cu_q[seq + 1] - q0;
    int n_k, k0 = 0;
    if (PAGED) {
        n_k = p.seq_lens[seq];
    } else {
        k0 = p.cu_k[seq];
        n_k = p.cu_k[seq + 1] - k0;
    }
    const int tile = bx;
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
    /* Each thread copies PER 16-byte chunks of K and of V per tile. Paged decode (MT == 1): the
     * block-table reads come first, all independent, then the cp.async issues (interleaved, each
     * table read would be a dependent L2 round trip before the next copy). Elsewhere the chunks go
     * one by one: holding PER offsets costs registers the prefill tiles need (spills otherwise). */
    constexpr int PER = BN * CH / NT;
    static_assert(BN * CH % NT == 0, "tile chunks must divide among the threads");
    auto kv_row = [&](int jc) -> int64_t {
        if (PAGED) {
            const int blk = __ldg(p.block_tables + (int64_t)seq * p.max_blocks_per_seq + (jc >> p.block_shift));
            return ((int64_t)blk << p.block_shift) + (jc & ((1 << p.block_shift) - 1));
        }
        return k0 + jc;
    };
    auto load_kv = [&](int n0, int buf) {
        T *dk = sK + buf * BN * LD, *dv = sV + buf * BN * LD;
        if constexpr (PAGED && MT == 1) {
            int64_t off[PER];
#pragma unroll
            for (int i = 0; i < PER; i++) {
                const int c = tid + i * NT, j = n0 + c / CH;
                off[i] = (kv_row(j < hi ? j : lo) * p.n_kv_head + kh) * D + (c % CH) * 8;
            }
#pragma unroll
            for (int i = 0; i < PER; i++) {
                const int c = tid + i * NT, jj = c / CH, ch = c % CH;
                const bool ok = n0 + jj < hi;
                cp_async16(smem_u32(dk + jj * LD + ch * 8), kg + off[i], ok);
                cp_async16(smem_u32(dv + jj * LD + ch * 8), vg + off[i], ok);
            }
        } else {
            for (int c = tid; c < BN * CH; c += NT) {
                const int jj = c / CH, ch = c % CH, j = n0 + jj;
                const bool ok = j < hi;
                const int64_t off = (kv_row(ok ? j : lo) * p.n_kv_head + kh) * D + ch * 8;
                cp_async16(smem_u32(dk + jj * LD + ch * 8), kg + off, ok);
                cp_async16(smem_u32(dv + jj * LD + ch * 8), vg + off, ok);
            }
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

/* Merges the n_splits partial rows of one (query row, head) per CTA of 8 warps: out = sum_s w_s O_s /
 * sum_s w_s with w_s = exp(lse_s - max lse); lse = max + ln(sum w). A row no split saw is 0 with lse
 * +inf. Warp w takes splits w, w + 8, ..., up to COMBINE_UNROLL of them loaded before the first use
 * (a loop of dependent loads costs one memory round trip per split: 11 us for 52 splits), each lane
 * D / 32 columns; the 8 warps' sums meet in shared memory. Every split CTA writes its rows (zeros,
 * lse -inf, when it saw no keys), so reading all of them is safe. */
enum { COMBINE_WARPS = 8, COMBINE_UNROLL = 8 };
static bool g_combine_pdl = true; /* dev harness switch: launch the combine as a dependent (sm_90) */
template <typename T, int D>
__global__ void __launch_bounds__(COMBINE_WARPS * 32) flash_combine_kernel(const fwd_params p) {
    constexpr int E = D / 32; /* columns per lane: 4 or 2 */
    __shared__ float s_max[COMBINE_WARPS], s_wsum[COMBINE_WARPS];
    __shared__ __align__(16) float s_acc[COMBINE_WARPS][D];
    const int w = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int qrow = blockIdx.x / p.n_head, h = blockIdx.x % p.n_head;
    const int S = p.n_splits;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    /* launched as a programmatic dependent of the split kernel (sm_90): wait for its results */
    asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
    const float *lp = p.lse_part + (int64_t)h * p.total_q + qrow;
    const int64_t lstride = (int64_t)p.n_head * p.total_q;
    float mx = -INFINITY;
    for (int s = threadIdx.x; s < S; s += COMBINE_WARPS * 32) mx = fmaxf(mx, __ldcg(lp + s * lstride));
#pragma unroll
    for (int o = 16; o; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    if (lane == 0) s_max[w] = mx;
    __syncthreads();
#pragma unroll
    for (int i = 0; i < COMBINE_WARPS; i++) mx = fmaxf(mx, s_max[i]);
    float acc[E];
#pragma unroll
    for (int e = 0; e < E; e++) acc[e] = 0.f;
    float wsum = 0.f;
    if (mx != -INFINITY) {
        const float *op = p.o_part + ((int64_t)qrow * p.n_head + h) * D + lane * E;
        const int64_t ostride = (int64_t)p.total_q * p.n_head * D;
        for (int s0 = w; s0 < S; s0 += COMBINE_WARPS * COMBINE_UNROLL) {
            float ls[COMBINE_UNROLL], x[COMBINE_UNROLL][E];
#pragma unroll
            for (int u = 0; u < COMBINE_UNROLL; u++) {
                const int s = s0 + u * COMBINE_WARPS;
                ls[u] = s < S ? __ldcg(lp + s * lstride) : -INFINITY;
                if (s < S) {
                    if constexpr (E == 4) {
                        const float4 v = __ldcg(reinterpret_cast<const float4 *>(op + s * ostride));
                        x[u][0] = v.x, x[u][1] = v.y, x[u][2] = v.z, x[u][3] = v.w;
                    } else {
                        const float2 v = __ldcg(reinterpret_cast<const float2 *>(op + s * ostride));
                        x[u][0] = v.x, x[u][1] = v.y;
                    }
                } else {
#pragma unroll
                    for (int e = 0; e < E; e++) x[u][e] = 0.f;
                }
            }
#pragma unroll
            for (int u = 0; u < COMBINE_UNROLL; u++) {
                const float wgt = __expf(ls[u] - mx); /* 0 for lse -inf */
                wsum += wgt;
#pragma unroll
                for (int e = 0; e < E; e++) acc[e] += wgt * x[u][e];
            }
        }
    }
#pragma unroll
    for (int e = 0; e < E; e++) s_acc[w][lane * E + e] = acc[e];
    if (lane == 0) s_wsum[w] = wsum;
    __syncthreads();
    if (w != 0) return;
    wsum = 0.f;
#pragma unroll
    for (int i = 0; i < COMBINE_WARPS; i++) wsum += s_wsum[i];
#pragma unroll
    for (int e = 0; e < E; e++) {
        float a = 0.f;
#pragma unroll
        for (int i = 0; i < COMBINE_WARPS; i++) a += s_acc[i][lane * E + e];
        acc[e] = a;
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
        /* sm_90: programmatic dependent launch, so the combine's launch overlaps the split kernel's
         * tail (the kernel waits on griddepcontrol.wait before reading the partials) */
        int dev = 0, major = 0;
        cudaGetDevice(&dev);
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
        cudaLaunchConfig_t cfg = {};
        cfg.gridDim = dim3(p.total_q * p.n_head);
        cfg.blockDim = dim3(COMBINE_WARPS * 32);
        cfg.stream = stream;
        cudaLaunchAttribute attr[1];
        attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        attr[0].val.programmaticStreamSerializationAllowed = 1;
        cfg.attrs = attr;
        cfg.numAttrs = (major >= 9 && g_combine_pdl) ? 1 : 0;
        err = cudaLaunchKernelEx(&cfg, flash_combine_kernel<T, D>, p);
        if (err != cudaSuccess) return err;
    }
    return cudaGetLastError();
}

/* Configurations <warps, m16 tiles per warp, keys per tile, stages> (see FLASH_FWD_ROWS_SMALL):
 * - prefill (many rows per sequence): 4 warps x 32 rows, 64-key tiles, 2 stages (255 registers, no
 *   spills at head dim 128). Against it (bench_attention.py, bf16 hd128 causal 8192, docs/CUDA.md):
 *   32-key tiles x 3 stages 0.87x, 8 warps x 32 rows 0.89x; head dim 64 with 128-key tiles about
 *   +1%, within noise, with an 8-byte spill (not taken);
 * - decode / short chunks (<= 64 packed rows): 4 warps x 16 rows, 32-key tiles, 2 stages: 52 KB of
 *   shared memory and 127 registers, so 4 CTAs fit an SM (FLASH_SPLIT_CTAS_PER_SM) and the split
 *   rule fills them (dev/cuda/paged_attention.cu --sweep: within 1-3% of the best of 12 shapes).
 * The macros let dev builds try other shapes without editing this file (nvcc splits -D values at
 * commas, hence one macro per parameter). */
#ifndef FLASH_P128_NW
#define FLASH_P128_NW 4
#endif
#ifndef FLASH_P128_BN
#define FLASH_P128_BN 64
#endif
#ifndef FLASH_P128_ST
#define FLASH_P128_ST 2
#endif
#ifndef FLASH_P64_NW
#define FLASH_P64_NW 4
#endif
#ifndef FLASH_P64_BN
#define FLASH_P64_BN 64
#endif
#ifndef FLASH_P64_ST
#define FLASH_P64_ST 2
#endif
#ifndef FLASH_DEC_ST
#define FLASH_DEC_ST 2
#endif
#define FLASH_PREFILL_CFG_128 FLASH_P128_NW, 2, FLASH_P128_BN, FLASH_P128_ST
#define FLASH_PREFILL_CFG_64 FLASH_P64_NW, 2, FLASH_P64_BN, FLASH_P64_ST
#define FLASH_DECODE_CFG 4, 1, 32, FLASH_DEC_ST
template <typename T, int D>
static cudaError_t launch_dim(const fwd_params &p, cudaStream_t stream) {
    const bool paged = p.block_tables != nullptr, small = p.max_rows <= FLASH_FWD_ROWS_SMALL;
    if (p.dropout && !paged) return launch_cfg<T, D, 4, 2, 64, 2, false, true>(p, stream); /* not in paged */
    if (small) return paged ? launch_cfg<T, D, FLASH_DECODE_CFG, true>(p, stream)
                            : launch_cfg<T, D, FLASH_DECODE_CFG, false>(p, stream);
    if constexpr (D == 128) {
        if (paged) return launch_cfg<T, D, FLASH_PREFILL_CFG_128, true>(p, stream);
        return launch_cfg<T, D, FLASH_PREFILL_CFG_128, false>(p, stream);
    }
    if (paged) return launch_cfg<T, D, FLASH_PREFILL_CFG_64, true>(p, stream);
    return launch_cfg<T, D, FLASH_PREFILL_CFG_64, false>(p, stream);
}

cudaError_t flash_fwd_launch(const fwd_params &p, cudaStream_t stream) {
    if (p.dtype == 0) return p.head_dim == 64 ? launch_dim<__nv_bfloat16, 64>(p, stream)
                                              : launch_dim<__nv_bfloat16, 128>(p, stream);
    return p.head_dim == 64 ? launch_dim<__half, 64>(p, stream) : launch_dim<__half, 128>(p, stream);
}
