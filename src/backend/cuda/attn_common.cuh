/* backend/cuda/attn_common.cuh - device helpers shared by the attention kernels: the two element
 * types (bf16, fp16) and their conversions, the m16n8k16 tensor-core MMA (mma.sync, fp32
 * accumulators), ldmatrix, cp.async with zero fill, warp reductions, and the Philox4x32-10
 * counter-based generator behind dropout.
 *
 * Fragment layouts (PTX ISA, "mma.m16n8k16"), g = lane / 4, t = lane % 4:
 *   A 16x16 row-major, 4 regs of 2 halves: a0 (row g, k 2t..2t+1), a1 (row g+8, k 2t..),
 *                                           a2 (row g, k 2t+8..), a3 (row g+8, k 2t+8..)
 *   B 16x8 (k x n):  b0 (k 2t..2t+1, col g), b1 (k 2t+8.., col g)
 *   C 16x8 fp32:     c0,c1 (row g, cols 2t, 2t+1), c2,c3 (row g+8, cols 2t, 2t+1)
 * Not here: wgmma/TMA (Hopper-only paths are future work, see docs/CUDA.md).
 */
#ifndef PAGODA_BACKEND_CUDA_ATTN_COMMON_CUH
#define PAGODA_BACKEND_CUDA_ATTN_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

/* ---------------------------------------------------------------- element types */

template <typename T> struct elem;
template <> struct elem<__nv_bfloat16> {
    static __device__ __forceinline__ uint32_t pack2(float lo, float hi) {
        __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
        return *reinterpret_cast<uint32_t *>(&v);
    }
    static __device__ __forceinline__ float2 unpack2(uint32_t x) {
        return __bfloat1622float2(*reinterpret_cast<__nv_bfloat162 *>(&x));
    }
    static __device__ __forceinline__ float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }
    static __device__ __forceinline__ __nv_bfloat16 from_f(float x) { return __float2bfloat16_rn(x); }
};
template <> struct elem<__half> {
    static __device__ __forceinline__ uint32_t pack2(float lo, float hi) {
        __half2 v = __floats2half2_rn(lo, hi);
        return *reinterpret_cast<uint32_t *>(&v);
    }
    static __device__ __forceinline__ float2 unpack2(uint32_t x) {
        return __half22float2(*reinterpret_cast<__half2 *>(&x));
    }
    static __device__ __forceinline__ float to_f(__half x) { return __half2float(x); }
    static __device__ __forceinline__ __half from_f(float x) { return __float2half_rn(x); }
};

/* ---------------------------------------------------------------- tensor cores */

/* c += a * b for one m16n8k16 tile, fp32 accumulators. */
template <typename T>
__device__ __forceinline__ void mma16816(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1);

template <>
__device__ __forceinline__ void mma16816<__nv_bfloat16>(float c[4], const uint32_t a[4], uint32_t b0,
                                                        uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <>
__device__ __forceinline__ void mma16816<__half>(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t smem_u32(const void *p) {
    return (uint32_t)__cvta_generic_to_shared(p);
}

/* Four 8x8 b16 matrices; lanes 8i..8i+7 give the row addresses of matrix i, r[i] receives it. */
__device__ __forceinline__ void ldmatrix_x4(uint32_t r[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}
/* The same, each matrix transposed on the way. */
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t r[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

/* ---------------------------------------------------------------- cp.async */

/* 16 bytes global -> shared, asynchronously; when !valid the destination is zero-filled and
 * nothing is read (so rows past a sequence's end are zeros, never stale data or NaN). */
__device__ __forceinline__ void cp_async16(uint32_t dst, const void *src, bool valid) {
    int n = valid ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(n));
}
__device__ __forceinline__ void cp_async_commit(void) { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_async_wait(void) {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

/* ---------------------------------------------------------------- reductions over a quad */

/* The four lanes 4g..4g+3 share the rows of an MMA accumulator. */
__device__ __forceinline__ float quad_max(float x) {
    x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
    return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}
__device__ __forceinline__ float quad_sum(float x) {
    x += __shfl_xor_sync(0xffffffffu, x, 1);
    return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

/* ---------------------------------------------------------------- Philox dropout */

/* Philox4x32-10 (Salmon et al., SC'11): 4 random words from a 128-bit counter and 64-bit key. */
__device__ __forceinline__ uint4 philox4x32_10(uint4 c, uint2 k) {
#pragma unroll
    for (int r = 0; r < 10; r++) {
        uint32_t lo0 = 0xD2511F53u * c.x, hi0 = __umulhi(0xD2511F53u, c.x);
        uint32_t lo1 = 0xCD9E8D57u * c.z, hi1 = __umulhi(0xCD9E8D57u, c.z);
        c = make_uint4(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
        k.x += 0x9E3779B9u;
        k.y += 0xBB67AE85u;
    }
    return c;
}

/* The dropout stream: element (head h, global query row q, key column j) is kept when word
 * j % 4 of philox(counter = {j / 4, q, h, offset_lo}, key = {seed_lo, seed_hi ^ offset_hi}) is
 * below keep_threshold = round(p_keep * 2^32). Forward, backward and cuda_dropout_mask share it. */
struct dropout_key {
    uint2 key;
    uint32_t offset_lo;
    uint32_t threshold;
};
__device__ __forceinline__ uint4 dropout_words(const dropout_key &d, int h, int q, int j) {
    return philox4x32_10(make_uint4((uint32_t)j >> 2, (uint32_t)q, (uint32_t)h, d.offset_lo), d.key);
}
__device__ __forceinline__ bool dropout_keep(const dropout_key &d, int h, int q, int j) {
    uint4 w = dropout_words(d, h, q, j);
    uint32_t x = (j & 3) == 0 ? w.x : (j & 3) == 1 ? w.y : (j & 3) == 2 ? w.z : w.w;
    return x < d.threshold;
}

#endif
