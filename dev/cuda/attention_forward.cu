/* dev/cuda/attention_forward.cu - development harness of the FlashAttention forward kernel
 * (src/backend/cuda/flash_fwd.cu), llm.c style: every version is checked against a CPU reference,
 * then timed with CUDA events, printing TFLOP/s.
 *
 * version 1: naive, one warp per (query row, head), scores in fp32 through shared memory; no tensor
 *            cores (the yardstick).
 * version 2: mma.sync m16n8k16, 4 warps x 16 rows, 64-key tiles, 2 cp.async stages (first cut).
 * version 3: 4 warps x 32 rows (each K/V fragment feeds two m16 tiles: half the shared-memory
 *            traffic per flop), 64-key tiles, 2 stages (spills a few registers at head dim 128).
 * version 4: 4 warps x 32 rows, 32-key tiles, 3 stages (no spills).
 * version 5: 8 warps x 16 rows (128 rows), 64-key tiles, 2 stages (no spills; each K/V fragment
 *            feeds one m16 tile).
 * version 6: 4 warps x 32 rows, 64-key tiles, 3 stages (one CTA per SM).
 * version 7: 8 warps x 32 rows (256 rows), 64-key tiles, 2 stages (one CTA per SM).
 * version 8: 4 warps x 32 rows, 32-key tiles, 4 stages.
 * version 9: flash_fwd_launch, what src/ uses for prefill (version 3's configuration at head
 *            dim 128, FLASH_PREFILL_CFG_128 in flash_fwd.cu).
 * Since the cuda2 branch every version runs the causal grid longest tiles first across all heads
 * (the remap in flash_fwd_kernel); -DFLASH_NO_CAUSAL_REMAP builds the earlier order. Versions timed
 * back to back in one process differ by up to ~10% with their order (clocks, power): compare
 * configurations with bench_attention.py (alternating, median), as docs/BENCHMARKS.md does.
 *
 * Build: make cuda (-> build-cuda/dev/attention_forward)
 * Run:   build-cuda/dev/attention_forward [--check] [version]   (--check: correctness only, small)
 * Shapes benchmarked (random inputs): bf16, head dim 128: 2 x 32 heads x 8192 causal and not, and
 * 8 x 32 x 2048 causal; median of 10 launches, CUDA events, after ~0.5 s of warm-up launches.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <algorithm>
#include <vector>

#include "../../src/backend/cuda/flash_fwd.cu" /* defines: flash_fwd_kernel, fwd_params, launch_cfg */

#include "dev_common.cuh" /* defines: CUDA_CHECK, fill_uniform */

/* version 1: one warp per (row, head); each lane owns head_dim / 32 output columns. */
__global__ void attention_naive_kernel(const fwd_params p, int D, int n_k_max) {
    extern __shared__ float sc[]; /* [warps][n_k_max] */
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int gw = blockIdx.x * (blockDim.x >> 5) + warp;
    if (gw >= p.total_q * p.n_head) return;
    const int qrow = gw / p.n_head, h = gw % p.n_head, kh = h / p.group;
    int b = 0;
    while (p.cu_q[b + 1] <= qrow) b++;
    const int i = qrow - p.cu_q[b], n_q = p.cu_q[b + 1] - p.cu_q[b];
    const int k0 = p.cu_k[b], n_k = p.cu_k[b + 1] - k0;
    const int last = p.causal ? min(n_k - 1, i + n_k - n_q) : n_k - 1;
    const __nv_bfloat16 *q = (const __nv_bfloat16 *)p.q + ((int64_t)qrow * p.n_head + h) * D;
    float *s = sc + warp * n_k_max;
    float mx = -INFINITY;
    for (int j = 0; j <= last; j++) {
        const __nv_bfloat16 *k = (const __nv_bfloat16 *)p.k + ((int64_t)(k0 + j) * p.n_kv_head + kh) * D;
        float acc = 0.f;
        for (int d = lane; d < D; d += 32) acc += __bfloat162float(q[d]) * __bfloat162float(k[d]);
        for (int o = 16; o; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
        acc *= p.scale;
        if (lane == 0) s[j] = acc;
        mx = fmaxf(mx, acc);
    }
    __syncwarp();
    float sum = 0.f, out[4] = {0, 0, 0, 0};
    for (int j = 0; j <= last; j++) {
        const float e = expf(s[j] - mx);
        sum += e;
        const __nv_bfloat16 *v = (const __nv_bfloat16 *)p.v + ((int64_t)(k0 + j) * p.n_kv_head + kh) * D;
        for (int c = 0; c < D / 32; c++) out[c] += e * __bfloat162float(v[lane + 32 * c]);
    }
    __nv_bfloat16 *o = (__nv_bfloat16 *)p.o + ((int64_t)qrow * p.n_head + h) * D;
    for (int c = 0; c < D / 32; c++) o[lane + 32 * c] = __float2bfloat16(last >= 0 ? out[c] / sum : 0.f);
}

static void run_version(int version, const fwd_params &p, int n_k_max) {
    typedef __nv_bfloat16 T;
    switch (version) {
    case 1: {
        const int warps = p.total_q * p.n_head;
        const size_t smem = 8 * (size_t)n_k_max * sizeof(float);
        CUDA_CHECK(cudaFuncSetAttribute(attention_naive_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        attention_naive_kernel<<<(warps + 7) / 8, 256, smem>>>(p, p.head_dim, n_k_max);
        break;
    }
    case 2: CUDA_CHECK(launch_cfg<T, 128, 4, 1, 64, 2, false>(p, 0)); break;
    case 3: CUDA_CHECK(launch_cfg<T, 128, 4, 2, 64, 2, false>(p, 0)); break;
    case 4: CUDA_CHECK(launch_cfg<T, 128, 4, 2, 32, 3, false>(p, 0)); break;
    case 5: CUDA_CHECK(launch_cfg<T, 128, 8, 1, 64, 2, false>(p, 0)); break;
    case 6: CUDA_CHECK(launch_cfg<T, 128, 4, 2, 64, 3, false>(p, 0)); break;
    case 7: CUDA_CHECK(launch_cfg<T, 128, 8, 2, 64, 2, false>(p, 0)); break;
    case 8: CUDA_CHECK(launch_cfg<T, 128, 4, 2, 32, 4, false>(p, 0)); break;
    case 9: CUDA_CHECK(flash_fwd_launch(p, 0)); break;
    }
    CUDA_CHECK(cudaGetLastError());
}

static float bf2f(__nv_bfloat16 x) { return __bfloat162float(x); }

enum { N_VERSIONS = 9 };

int main(int argc, char **argv) {
    int check_only = 0, only = 0;
    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--check")) check_only = 1;
        else only = atoi(argv[a]);
    }
    const int D = 128;
    /* ---- correctness: varlen, GQA, causal, lengths not multiples of the tiles ---- */
    const int H = 8, Hkv = 2, B = 3, lq[B] = {173, 64, 301}, lk[B] = {173, 200, 333};
    std::vector<int> cq(B + 1, 0), ck(B + 1, 0);
    for (int b = 0; b < B; b++) cq[b + 1] = cq[b] + lq[b], ck[b + 1] = ck[b] + lk[b];
    const int tq = cq[B], tk = ck[B];
    srand(1234);
    std::vector<__nv_bfloat16> hq((size_t)tq * H * D), hk((size_t)tk * Hkv * D), hv((size_t)tk * Hkv * D),
        ho((size_t)tq * H * D);
    for (auto *vec : {&hq, &hk, &hv})
        for (auto &x : *vec) x = __float2bfloat16((float)rand() / RAND_MAX * 2.f - 1.f);
    /* CPU reference, double accumulation */
    std::vector<float> ref((size_t)tq * H * D);
    const float scale = 1.f / sqrtf((float)D);
    for (int b = 0; b < B; b++)
        for (int i = 0; i < lq[b]; i++)
            for (int h = 0; h < H; h++) {
                const int kh = h / (H / Hkv), last = i + lk[b] - lq[b];
                std::vector<double> s(lk[b]);
                double mx = -1e300, sum = 0;
                for (int j = 0; j <= last; j++) {
                    double acc = 0;
                    for (int d = 0; d < D; d++)
                        acc += (double)bf2f(hq[((size_t)(cq[b] + i) * H + h) * D + d]) *
                               bf2f(hk[((size_t)(ck[b] + j) * Hkv + kh) * D + d]);
                    s[j] = acc * scale;
                    mx = fmax(mx, s[j]);
                }
                for (int j = 0; j <= last; j++) sum += (s[j] = exp(s[j] - mx));
                for (int d = 0; d < D; d++) {
                    double acc = 0;
                    for (int j = 0; j <= last; j++) acc += s[j] * bf2f(hv[((size_t)(ck[b] + j) * Hkv + kh) * D + d]);
                    ref[((size_t)(cq[b] + i) * H + h) * D + d] = (float)(acc / sum);
                }
            }
    void *dq, *dk, *dv, *dout;
    int32_t *dcq, *dck;
    CUDA_CHECK(cudaMalloc(&dq, hq.size() * 2));
    CUDA_CHECK(cudaMalloc(&dk, hk.size() * 2));
    CUDA_CHECK(cudaMalloc(&dv, hv.size() * 2));
    CUDA_CHECK(cudaMalloc(&dout, ho.size() * 2));
    CUDA_CHECK(cudaMalloc(&dcq, (B + 1) * 4));
    CUDA_CHECK(cudaMalloc(&dck, (B + 1) * 4));
    CUDA_CHECK(cudaMemcpy(dq, hq.data(), hq.size() * 2, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(dk, hk.data(), hk.size() * 2, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(dv, hv.data(), hv.size() * 2, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(dcq, cq.data(), (B + 1) * 4, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(dck, ck.data(), (B + 1) * 4, cudaMemcpyHostToDevice));
    fwd_params p{};
    p.dtype = 0, p.q = dq, p.k = dk, p.v = dv, p.o = dout, p.lse = nullptr, p.cu_q = dcq, p.cu_k = dck;
    p.batch = B, p.total_q = tq, p.max_rows = 301 * (H / Hkv), p.n_head = H, p.n_kv_head = Hkv, p.group = H / Hkv;
    p.head_dim = D, p.scale = scale, p.scale_log2 = scale * 1.4426950408889634f, p.causal = 1;
    p.n_splits = 1, p.split_chunk = 0x3fffffff;
    int bad = 0;
    for (int ver = 1; ver <= N_VERSIONS; ver++) {
        if (only && ver != only) continue;
        CUDA_CHECK(cudaMemset(dout, 0xff, ho.size() * 2)); /* NaN poison */
        run_version(ver, p, 400);
        CUDA_CHECK(cudaMemcpy(ho.data(), dout, ho.size() * 2, cudaMemcpyDeviceToHost));
        double err = 0;
        for (size_t x = 0; x < ho.size(); x++) {
            double e = fabs((double)bf2f(ho[x]) - ref[x]);
            if (!(e <= err)) err = isnan(e) ? INFINITY : e;
        }
        const int ok = err <= 2e-2;
        printf("version %d: max abs err vs CPU %.3e %s\n", ver, err, ok ? "OK" : "FAIL");
        bad += !ok;
    }
    cudaFree(dq), cudaFree(dk), cudaFree(dv), cudaFree(dout), cudaFree(dcq), cudaFree(dck);
    if (check_only || bad) return bad ? 1 : 0;

    /* ---- benchmark ---- */
    const int shapes[][3] = {{2, 8192, 1}, {2, 8192, 0}, {8, 2048, 1}}; /* batch, S, causal; 32 heads */
    const int HH = 32;
    const size_t nmax = (size_t)2 * 8192 * HH * D;
    CUDA_CHECK(cudaMalloc(&dq, nmax * 2));
    CUDA_CHECK(cudaMalloc(&dk, nmax * 2));
    CUDA_CHECK(cudaMalloc(&dv, nmax * 2));
    CUDA_CHECK(cudaMalloc(&dout, nmax * 2));
    fill_uniform<<<1024, 256>>>((__nv_bfloat16 *)dq, nmax, 1u);
    fill_uniform<<<1024, 256>>>((__nv_bfloat16 *)dk, nmax, 2u);
    fill_uniform<<<1024, 256>>>((__nv_bfloat16 *)dv, nmax, 3u);
    CUDA_CHECK(cudaGetLastError());
    CUDA_CHECK(cudaMalloc(&dcq, 9 * 4));
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0), cudaEventCreate(&e1);
    bool warmed = false;
    for (auto &sh : shapes) {
        const int BB = sh[0], S = sh[1];
        std::vector<int32_t> hcu(BB + 1);
        for (int b = 0; b <= BB; b++) hcu[b] = b * S;
        CUDA_CHECK(cudaMemcpy(dcq, hcu.data(), (BB + 1) * 4, cudaMemcpyHostToDevice));
        p.q = dq, p.k = dk, p.v = dv, p.o = dout, p.cu_q = dcq, p.cu_k = dcq, p.batch = BB, p.total_q = BB * S;
        p.n_head = HH, p.n_kv_head = HH, p.group = 1, p.max_rows = S, p.causal = sh[2];
        const double flops = 4.0 * BB * HH * (double)S * S * D / (sh[2] ? 2 : 1);
        if (!warmed) { /* the clocks ramp up from idle: without this the first versions timed lose ~7% */
            for (int r = 0; r < 150; r++) run_version(N_VERSIONS, p, 0);
            CUDA_CHECK(cudaDeviceSynchronize());
            warmed = true;
        }
        for (int ver = 2; ver <= N_VERSIONS; ver++) {
            if (only && ver != only) continue;
            run_version(ver, p, 0);
            std::vector<float> t;
            for (int r = 0; r < 10; r++) {
                cudaEventRecord(e0);
                run_version(ver, p, 0);
                cudaEventRecord(e1);
                CUDA_CHECK(cudaEventSynchronize(e1));
                float ms = 0;
                cudaEventElapsedTime(&ms, e0, e1);
                t.push_back(ms);
            }
            std::sort(t.begin(), t.end());
            const float ms = t[5];
            printf("version %d: %.3f ms, %.1f TFLOP/s (bf16, %dx%dx%d, d%d, %s)\n", ver, ms, flops / ms / 1e9, BB, HH, S,
                   D, sh[2] ? "causal" : "non-causal");
        }
    }
    return 0;
}
