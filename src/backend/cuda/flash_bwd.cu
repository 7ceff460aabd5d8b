/* backend/cuda/flash_bwd.cu - the FlashAttention backward pass (contiguous varlen, GQA, causal,
 * Philox dropout regenerated from the forward's seed/offset) and its two helper kernels.
 *
 *   1. flash_bwd_pre_kernel: delta[h][row] = sum_d dout * out (fp32), dq_accum = 0.
 *   2. flash_bwd_kernel: one CTA of NW warps owns BN = 16 NW keys of one sequence and one kv head, and
 *      keeps their dK, dV (fp32, registers, warp w owns keys 16w..16w+15) while it walks every
 *      query head of the kv group and every query tile of BM rows that can see those keys:
 *        S^T = K Q^T, dP^T = V dO^T                          (mma.sync, keys as the M dimension)
 *        P = exp(scale S - lse), dropout mask regenerated, dS = P * (dP - delta)
 *        dV += P_dropped^T dO, dK += dS^T Q                  (P, dS re-packed as A fragments)
 *        dS^T -> shared memory, dQ_tile = dS K, atomically added to dq_accum (fp32)
 *      GQA needs no atomics for dK/dV: the group's heads are summed in registers.
 *   3. flash_bwd_post_kernel: dq = dq_accum * scale, converted to bf16/fp16.
 * The next step's Q/dO tiles load by cp.async into a second buffer during this step's math.
 * Not here: wgmma; see docs/CUDA.md.
 */
#include <math.h>

#include "backend/cuda/attn_internal.h" /* defines: bwd_params, flash_bwd_launch, attn_common helpers */

__device__ __forceinline__ float bwd_exp2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

template <typename T, int D>
__global__ void flash_bwd_pre_kernel(const bwd_params p) {
    const int warp = (blockIdx.x * blockDim.x + threadIdx.x) >> 5, lane = threadIdx.x & 31;
    if (warp >= p.f.total_q * p.f.n_head) return;
    const int qrow = warp / p.f.n_head, h = warp % p.f.n_head;
    const int64_t base = ((int64_t)qrow * p.f.n_head + h) * D;
    const T *o = static_cast<const T *>(p.f.o) + base, *dout = static_cast<const T *>(p.dout) + base;
    float acc = 0.f;
    for (int d = lane * 2; d < D; d += 64) {
        float2 a = elem<T>::unpack2(*reinterpret_cast<const uint32_t *>(o + d));
        float2 b = elem<T>::unpack2(*reinterpret_cast<const uint32_t *>(dout + d));
        acc += a.x * b.x + a.y * b.y;
        p.dq_accum[base + d] = 0.f;
        p.dq_accum[base + d + 1] = 0.f;
    }
#pragma unroll
    for (int o2 = 16; o2; o2 >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o2);
    if (lane == 0) p.delta[(int64_t)h * p.f.total_q + qrow] = acc;
}

template <typename T, int D>
__global__ void flash_bwd_post_kernel(const bwd_params p) {
    const int64_t n = (int64_t)p.f.total_q * p.f.n_head * D;
    T *dq = static_cast<T *>(p.dq);
    for (int64_t i = (blockIdx.x * (int64_t)blockDim.x + threadIdx.x) * 2; i < n; i += (int64_t)gridDim.x * blockDim.x * 2)
        *reinterpret_cast<uint32_t *>(dq + i) = elem<T>::pack2(p.dq_accum[i] * p.f.scale, p.dq_accum[i + 1] * p.f.scale);
}

template <typename T, int D, int BM, int NW>
__global__ void __launch_bounds__(NW * 32) flash_bwd_kernel(const bwd_params p) {
    constexpr int BN = NW * 16, NT = NW * 32, LD = D + 8, LDS = BM + 8, CH = D / 8;
    constexpr int WM = BM / 16, WN = NW / WM, DW = D / WN; /* dQ warp grid: WM along q, WN along d */
    extern __shared__ __align__(16) unsigned char smem_raw[];
    T *sK = reinterpret_cast<T *>(smem_raw); /* [BN][LD] */
    T *sV = sK + BN * LD;                     /* [BN][LD] */
    T *sQ0 = sV + BN * LD;                    /* [2][BM][LD] (double-buffered) */
    T *sdO0 = sQ0 + 2 * BM * LD;              /* [2][BM][LD] */
    T *sdS = sdO0 + 2 * BM * LD;              /* [BN][LDS]: dS^T */
    float *sLse0 = reinterpret_cast<float *>(sdS + BN * LDS); /* [2][BM], times log2(e) */
    float *sDelta0 = sLse0 + 2 * BM;                          /* [2][BM] */

    const fwd_params &f = p.f;
    const int tid = threadIdx.x, w = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
    const int kh = blockIdx.y, seq = blockIdx.z, n0 = blockIdx.x * BN;
    const int q0 = f.cu_q[seq], n_q = f.cu_q[seq + 1] - q0;
    const int k0 = f.cu_k[seq], n_k = f.cu_k[seq + 1] - k0;
    if (n0 >= n_k) return;
    const int diag = n_k - n_q;
    const int G = f.group;
    const T *qg = static_cast<const T *>(f.q), *kg = static_cast<const T *>(f.k);
    const T *vg = static_cast<const T *>(f.v), *dog = static_cast<const T *>(p.dout);

    for (int c = tid; c < BN * CH; c += NT) {
        int jj = c / CH, ch = c % CH, j = n0 + jj;
        bool ok = j < n_k;
        int64_t off = ((int64_t)(k0 + (ok ? j : 0)) * f.n_kv_head + kh) * D + ch * 8;
        cp_async16(smem_u32(sK + jj * LD + ch * 8), kg + off, ok);
        cp_async16(smem_u32(sV + jj * LD + ch * 8), vg + off, ok);
    }
    cp_async_commit();

    float dk[D / 8][4], dv[D / 8][4];
#pragma unroll
    for (int d = 0; d < D / 8; d++)
#pragma unroll
        for (int e = 0; e < 4; e++) dk[d][e] = dv[d][e] = 0.f;

    int m_start = 0;
    if (f.causal) m_start = max(0, (n0 - diag) / BM * BM);
    if (f.causal && n0 - diag < 0) m_start = 0;
    const float log2e = 1.4426950408889634f;
    const int jrow[2] = {n0 + w * 16 + g, n0 + w * 16 + g + 8};

    /* the (head of the group, query tile) steps, flattened so the next step's Q, dO, lse and delta
     * load (cp.async into the other buffer) while this one computes */
    const int n_mt = m_start < n_q ? (n_q - m_start + BM - 1) / BM : 0, n_steps = G * n_mt;
    auto load_step = [&](int step, int buf) {
        const int h = kh * G + step / n_mt, m0 = m_start + (step % n_mt) * BM;
        T *dq_s = sQ0 + buf * BM * LD, *ddo_s = sdO0 + buf * BM * LD;
        for (int c = tid; c < BM * CH; c += NT) {
            int rr = c / CH, ch = c % CH, i = m0 + rr;
            bool ok = i < n_q;
            int64_t off = ((int64_t)(q0 + (ok ? i : 0)) * f.n_head + h) * D + ch * 8;
            cp_async16(smem_u32(dq_s + rr * LD + ch * 8), qg + off, ok);
            cp_async16(smem_u32(ddo_s + rr * LD + ch * 8), dog + off, ok);
        }
        for (int rr = tid; rr < BM; rr += NT) {
            int i = m0 + rr;
            bool ok = i < n_q;
            sLse0[buf * BM + rr] = ok ? f.lse[(int64_t)h * f.total_q + q0 + i] * log2e : INFINITY;
            sDelta0[buf * BM + rr] = ok ? p.delta[(int64_t)h * f.total_q + q0 + i] : 0.f;
        }
    };
    if (n_steps > 0) load_step(0, 0);
    cp_async_commit();
    for (int step = 0; step < n_steps; step++) {
        const int buf = step & 1, h = kh * G + step / n_mt, m0 = m_start + (step % n_mt) * BM;
        T *sQ = sQ0 + buf * BM * LD, *sdO = sdO0 + buf * BM * LD;
        float *sLse = sLse0 + buf * BM, *sDelta = sDelta0 + buf * BM;
        {
            if (step + 1 < n_steps) load_step(step + 1, buf ^ 1);
            cp_async_commit();
            cp_async_wait<1>();
            __syncthreads();

            float st[BM / 8][4], dpt[BM / 8][4];
#pragma unroll
            for (int n = 0; n < BM / 8; n++)
#pragma unroll
                for (int e = 0; e < 4; e++) st[n][e] = dpt[n][e] = 0.f;
#pragma unroll
            for (int kk = 0; kk < D / 16; kk++) {
                uint32_t ak[4], av[4];
                ldmatrix_x4(ak, smem_u32(sK + (w * 16 + (lane & 15)) * LD + kk * 16 + (lane >> 4) * 8));
                ldmatrix_x4(av, smem_u32(sV + (w * 16 + (lane & 15)) * LD + kk * 16 + (lane >> 4) * 8));
#pragma unroll
                for (int nn = 0; nn < BM / 16; nn++) {
                    const int roff = (nn * 16 + (lane >> 4) * 8 + (lane & 7)) * LD + kk * 16 + ((lane >> 3) & 1) * 8;
                    uint32_t b[4];
                    ldmatrix_x4(b, smem_u32(sQ + roff));
                    mma16816<T>(st[2 * nn], ak, b[0], b[1]);
                    mma16816<T>(st[2 * nn + 1], ak, b[2], b[3]);
                    ldmatrix_x4(b, smem_u32(sdO + roff));
                    mma16816<T>(dpt[2 * nn], av, b[0], b[1]);
                    mma16816<T>(dpt[2 * nn + 1], av, b[2], b[3]);
                }
            }
            /* st becomes P (dropped, for dV), dpt becomes dS */
#pragma unroll
            for (int n = 0; n < BM / 8; n++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int il = n * 8 + 2 * t + (e & 1), i = m0 + il, j = jrow[e >> 1];
                    const bool ok = i < n_q && j < n_k && (!f.causal || j <= i + diag);
                    float pr = ok ? bwd_exp2(fmaf(st[n][e], f.scale_log2, -sLse[il])) : 0.f;
                    float dp = dpt[n][e];
                    float pd = pr;
                    if (f.dropout) {
                        const bool keep = dropout_keep(f.drop, h, q0 + i, j);
                        pd = keep ? pr * f.rp_keep : 0.f;
                        dp = keep ? dp * f.rp_keep : 0.f;
                    }
                    st[n][e] = pd;
                    dpt[n][e] = pr * (dp - sDelta[il]);
                }
#pragma unroll
            for (int kt = 0; kt < BM / 16; kt++) {
                uint32_t ap[4], as[4];
                ap[0] = elem<T>::pack2(st[2 * kt][0], st[2 * kt][1]);
                ap[1] = elem<T>::pack2(st[2 * kt][2], st[2 * kt][3]);
                ap[2] = elem<T>::pack2(st[2 * kt + 1][0], st[2 * kt + 1][1]);
                ap[3] = elem<T>::pack2(st[2 * kt + 1][2], st[2 * kt + 1][3]);
                as[0] = elem<T>::pack2(dpt[2 * kt][0], dpt[2 * kt][1]);
                as[1] = elem<T>::pack2(dpt[2 * kt][2], dpt[2 * kt][3]);
                as[2] = elem<T>::pack2(dpt[2 * kt + 1][0], dpt[2 * kt + 1][1]);
                as[3] = elem<T>::pack2(dpt[2 * kt + 1][2], dpt[2 * kt + 1][3]);
                T *dsw = sdS + (w * 16 + g) * LDS + kt * 16 + 2 * t;
                *reinterpret_cast<uint32_t *>(dsw) = as[0];
                *reinterpret_cast<uint32_t *>(dsw + 8 * LDS) = as[1];
                *reinterpret_cast<uint32_t *>(dsw + 8) = as[2];
                *reinterpret_cast<uint32_t *>(dsw + 8 * LDS + 8) = as[3];
#pragma unroll
                for (int dn = 0; dn < D / 16; dn++) {
                    const int roff = (kt * 16 + ((lane >> 3) & 1) * 8 + (lane & 7)) * LD + dn * 16 + (lane >> 4) * 8;
                    uint32_t b[4];
                    ldmatrix_x4_trans(b, smem_u32(sdO + roff));
                    mma16816<T>(dv[2 * dn], ap, b[0], b[1]);
                    mma16816<T>(dv[2 * dn + 1], ap, b[2], b[3]);
                    ldmatrix_x4_trans(b, smem_u32(sQ + roff));
                    mma16816<T>(dk[2 * dn], as, b[0], b[1]);
                    mma16816<T>(dk[2 * dn + 1], as, b[2], b[3]);
                }
            }
            __syncthreads();
            {   /* dQ tile = dS K: warp (qm, dw) owns q rows 16 qm.., d columns DW dw.. */
                const int qm = w % WM, dbase = (w / WM) * DW;
                float dq[DW / 8][4];
#pragma unroll
                for (int d = 0; d < DW / 8; d++) dq[d][0] = dq[d][1] = dq[d][2] = dq[d][3] = 0.f;
#pragma unroll
                for (int kt = 0; kt < BN / 16; kt++) {
                    uint32_t a[4];
                    ldmatrix_x4_trans(a, smem_u32(sdS + (kt * 16 + (lane >> 4) * 8 + (lane & 7)) * LDS + qm * 16 +
                                                  ((lane >> 3) & 1) * 8));
#pragma unroll
                    for (int dn = 0; dn < DW / 16; dn++) {
                        uint32_t b[4];
                        ldmatrix_x4_trans(b, smem_u32(sK + (kt * 16 + ((lane >> 3) & 1) * 8 + (lane & 7)) * LD +
                                                      dbase + dn * 16 + (lane >> 4) * 8));
                        mma16816<T>(dq[2 * dn], a, b[0], b[1]);
                        mma16816<T>(dq[2 * dn + 1], a, b[2], b[3]);
                    }
                }
#pragma unroll
                for (int rr = 0; rr < 2; rr++) {
                    const int i = m0 + qm * 16 + g + 8 * rr;
                    if (i >= n_q) continue;
                    float *dst = p.dq_accum + ((int64_t)(q0 + i) * f.n_head + h) * D + dbase + 2 * t;
#pragma unroll
                    for (int d = 0; d < DW / 8; d++) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 /* vector atomics: half the L2 operations */
                        atomicAdd(reinterpret_cast<float2 *>(dst + d * 8), make_float2(dq[d][2 * rr], dq[d][2 * rr + 1]));
#else
                        atomicAdd(dst + d * 8, dq[d][2 * rr]);
                        atomicAdd(dst + d * 8 + 1, dq[d][2 * rr + 1]);
#endif
                    }
                }
            }
            __syncthreads();
        }
    }
#pragma unroll
    for (int rr = 0; rr < 2; rr++) {
        const int j = jrow[rr];
        if (j >= n_k) continue;
        const int64_t base = ((int64_t)(k0 + j) * f.n_kv_head + kh) * D + 2 * t;
        T *dkp = static_cast<T *>(p.dk) + base, *dvp = static_cast<T *>(p.dv) + base;
#pragma unroll
        for (int d = 0; d < D / 8; d++) {
            *reinterpret_cast<uint32_t *>(dkp + d * 8) = elem<T>::pack2(dk[d][2 * rr] * f.scale, dk[d][2 * rr + 1] * f.scale);
            *reinterpret_cast<uint32_t *>(dvp + d * 8) = elem<T>::pack2(dv[d][2 * rr], dv[d][2 * rr + 1]);
        }
    }
}

template <typename T, int D, int BM, int NW>
static cudaError_t bwd_launch_t(const bwd_params &p, cudaStream_t stream) {
    constexpr int BN = NW * 16, LD = D + 8;
    const size_t smem = (size_t)(2 * BN + 4 * BM) * LD * sizeof(T) + (size_t)BN * (BM + 8) * sizeof(T) +
                        4 * BM * sizeof(float);
    const int warps = p.f.total_q * p.f.n_head;
    if (warps > 0) flash_bwd_pre_kernel<T, D><<<(warps + 7) / 8, 256, 0, stream>>>(p);
    auto kern = flash_bwd_kernel<T, D, BM, NW>;
    cudaError_t err = cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (err != cudaSuccess) return err;
    dim3 grid((p.max_seqlen_k + BN - 1) / BN, p.f.n_kv_head, p.f.batch);
    if (grid.x > 0) kern<<<grid, NW * 32, smem, stream>>>(p);
    const int64_t n = (int64_t)p.f.total_q * p.f.n_head * D / 2;
    if (n > 0) flash_bwd_post_kernel<T, D><<<(int)((n + 255) / 256 < 4096 ? (n + 255) / 256 : 4096), 256, 0, stream>>>(p);
    return cudaGetLastError();
}

cudaError_t flash_bwd_launch(const bwd_params &p, cudaStream_t stream) {
    /* 8 warps x 16 keys: 128 keys per CTA halve the dQ atomics of 64 */
    if (p.f.dtype == 0) return p.f.head_dim == 64 ? bwd_launch_t<__nv_bfloat16, 64, 64, 8>(p, stream)
                                                  : bwd_launch_t<__nv_bfloat16, 128, 32, 8>(p, stream);
    return p.f.head_dim == 64 ? bwd_launch_t<__half, 64, 64, 8>(p, stream) : bwd_launch_t<__half, 128, 32, 8>(p, stream);
}
