/* dev/cuda/paged_attention.cu - development harness of paged decode attention (the paged
 * configuration of src/backend/cuda/flash_fwd.cu), llm.c style: every version is checked against a
 * CPU reference on a paged cache with a shuffled block table, then timed with CUDA events (L2
 * flushed before each repeat), printing the effective bandwidth of the K and V bytes read.
 *
 * version 1: naive, one warp per (sequence, query head), keys one at a time through the block table,
 *            fp32 scores in shared memory; reads each kv head once per query head (G times).
 * version 2: the tensor-core kernel, query heads of a kv group packed as rows (K/V read once per
 *            group), 32-key tiles x 4 cp.async stages, one CTA per (sequence, kv head).
 * version 3: version 2 with split-KV (FlashDecoding) and the combine kernel; the split count from
 *            the wave-efficiency rule of cuda_attention.cu - what src/ uses.
 *
 * Build: make cuda (-> build-cuda/dev/paged_attention)
 * Run:   build-cuda/dev/paged_attention [--check] [version]
 * Shape: bf16, 32 query / 8 kv heads, head dim 128, block size 16, one query per sequence.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <algorithm>
#include <vector>

#include "../../src/backend/cuda/flash_fwd.cu" /* defines: launch_cfg, fwd_params */

#define CUDA_CHECK(...)                                                                            \
    do {                                                                                           \
        cudaError_t e_ = (__VA_ARGS__);                                                            \
        if (e_ != cudaSuccess) {                                                                   \
            fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, cudaGetErrorString(e_));             \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

typedef __nv_bfloat16 T;
enum { H = 32, HKV = 8, D = 128, BS = 16 };

/* version 1 */
__global__ void paged_naive_kernel(const fwd_params p, int max_len) {
    extern __shared__ float sc[]; /* [warps][max_len] */
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int gw = blockIdx.x * (blockDim.x >> 5) + warp;
    if (gw >= p.batch * p.n_head) return;
    const int s = gw / p.n_head, h = gw % p.n_head, kh = h / p.group, len = p.seq_lens[s];
    const T *q = (const T *)p.q + ((int64_t)s * p.n_head + h) * D;
    float *sw = sc + warp * max_len, mx = -INFINITY;
    for (int j = 0; j < len; j++) {
        int64_t slot = (int64_t)p.block_tables[s * p.max_blocks_per_seq + j / BS] * BS + j % BS;
        const T *k = (const T *)p.k + (slot * p.n_kv_head + kh) * D;
        float acc = 0.f;
        for (int d = lane; d < D; d += 32) acc += __bfloat162float(q[d]) * __bfloat162float(k[d]);
        for (int o = 16; o; o >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, o);
        acc *= p.scale;
        if (lane == 0) sw[j] = acc;
        mx = fmaxf(mx, acc);
    }
    __syncwarp();
    float sum = 0.f, out[D / 32] = {};
    for (int j = 0; j < len; j++) {
        int64_t slot = (int64_t)p.block_tables[s * p.max_blocks_per_seq + j / BS] * BS + j % BS;
        const T *v = (const T *)p.v + (slot * p.n_kv_head + kh) * D;
        const float e = __expf(sw[j] - mx);
        sum += e;
        for (int c = 0; c < D / 32; c++) out[c] += e * __bfloat162float(v[lane + 32 * c]);
    }
    T *o = (T *)p.o + ((int64_t)s * p.n_head + h) * D;
    for (int c = 0; c < D / 32; c++) o[lane + 32 * c] = __float2bfloat16(out[c] / sum);
}

struct setup {
    fwd_params p;
    int max_len;
    size_t kv_bytes;
};

static void run_version(int ver, setup &su) {
    fwd_params p = su.p;
    if (ver == 1) {
        const size_t smem = 4 * (size_t)su.max_len * sizeof(float);
        CUDA_CHECK(cudaFuncSetAttribute(paged_naive_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        paged_naive_kernel<<<(p.batch * p.n_head + 3) / 4, 128, smem>>>(p, su.max_len);
    } else {
        if (ver == 2) p.n_splits = 1, p.split_chunk = 0x3fffffff;
        CUDA_CHECK(launch_cfg<T, D, 4, 1, 32, 4, true>(p, 0));
    }
    CUDA_CHECK(cudaGetLastError());
}

/* A decode batch: lens[s] keys per sequence in a cache whose blocks are handed out shuffled. */
static setup make_setup(const std::vector<int> &lens, std::vector<T> *hq, std::vector<T> *hk, std::vector<T> *hv,
                        std::vector<int> *htab) {
    const int B = (int)lens.size();
    int max_len = 0, n_blocks = 0, mbps = 0;
    for (int L : lens) max_len = std::max(max_len, L), n_blocks += (L + BS - 1) / BS, mbps = std::max(mbps, (L + BS - 1) / BS);
    std::vector<int> perm(n_blocks);
    for (int i = 0; i < n_blocks; i++) perm[i] = i;
    for (int i = n_blocks - 1; i > 0; i--) std::swap(perm[i], perm[rand() % (i + 1)]);
    htab->assign((size_t)B * mbps, 0);
    for (int s = 0, pos = 0; s < B; s++)
        for (int b = 0; b < (lens[s] + BS - 1) / BS; b++) (*htab)[(size_t)s * mbps + b] = perm[pos++];
    const size_t cache_elems = (size_t)n_blocks * BS * HKV * D;
    hq->resize((size_t)B * H * D), hk->resize(cache_elems), hv->resize(cache_elems);
    for (auto *vec : {hq, hk, hv})
        for (auto &x : *vec) x = __float2bfloat16((float)rand() / RAND_MAX * 2.f - 1.f);
    std::vector<int> cq(B + 1);
    for (int s = 0; s <= B; s++) cq[s] = s;
    void *dq, *dk, *dv, *dout, *ws;
    int32_t *dcq, *dlens, *dtab;
    CUDA_CHECK(cudaMalloc(&dq, hq->size() * 2));
    CUDA_CHECK(cudaMalloc(&dout, hq->size() * 2));
    CUDA_CHECK(cudaMalloc(&dk, cache_elems * 2));
    CUDA_CHECK(cudaMalloc(&dv, cache_elems * 2));
    CUDA_CHECK(cudaMalloc(&dcq, (B + 1) * 4));
    CUDA_CHECK(cudaMalloc(&dlens, B * 4));
    CUDA_CHECK(cudaMalloc(&dtab, htab->size() * 4));
    CUDA_CHECK(cudaMemcpy(dq, hq->data(), hq->size() * 2, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(dk, hk->data(), cache_elems * 2, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(dv, hv->data(), cache_elems * 2, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(dcq, cq.data(), (B + 1) * 4, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(dlens, lens.data(), B * 4, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(dtab, htab->data(), htab->size() * 4, cudaMemcpyHostToDevice));
    setup su{};
    fwd_params &p = su.p;
    p.dtype = 0, p.q = dq, p.k = dk, p.v = dv, p.o = dout, p.cu_q = dcq, p.seq_lens = dlens, p.block_tables = dtab;
    p.max_blocks_per_seq = mbps, p.block_shift = 4, p.batch = B, p.total_q = B, p.max_rows = H / HKV;
    p.n_head = H, p.n_kv_head = HKV, p.group = H / HKV, p.head_dim = D;
    p.scale = 1.f / sqrtf((float)D), p.scale_log2 = p.scale * 1.4426950408889634f, p.causal = 1;
    /* split count: the rule of cuda_attention.cu (2 CTAs per SM, wave efficiency >= 85% of best) */
    int sms = 132;
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
    const int ctas = B * HKV, slots = 2 * sms;
    int splits = 1;
    if (ctas * 5 < slots * 4) {
        int max_s = std::min(64, max_len / 128);
        float best = 0.f;
        for (int s = 1; s <= max_s; s++) best = std::max(best, (float)ctas * s / slots / ceilf((float)ctas * s / slots));
        for (int s = 1; s <= max_s; s++)
            if ((float)ctas * s / slots / ceilf((float)ctas * s / slots) >= 0.85f * best) { splits = s; break; }
    }
    int chunk = ((max_len + splits - 1) / splits + 63) / 64 * 64;
    p.n_splits = (max_len + chunk - 1) / chunk, p.split_chunk = chunk;
    CUDA_CHECK(cudaMalloc(&ws, (size_t)p.n_splits * B * H * (D + 1) * 4));
    p.o_part = (float *)ws, p.lse_part = (float *)ws + (size_t)p.n_splits * B * H * D;
    su.max_len = max_len;
    for (int L : lens) su.kv_bytes += (size_t)L * HKV * D * 2 * 2;
    return su;
}

int main(int argc, char **argv) {
    int check_only = 0, only = 0;
    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--check")) check_only = 1;
        else only = atoi(argv[a]);
    }
    srand(99);
    std::vector<T> hq, hk, hv, ho;
    std::vector<int> tab;
    const std::vector<int> lens = {1000, 37, 517, 1, 2049};
    setup su = make_setup(lens, &hq, &hk, &hv, &tab);
    const int B = (int)lens.size(), mbps = su.p.max_blocks_per_seq;
    std::vector<float> ref((size_t)B * H * D);
    for (int s = 0; s < B; s++)
        for (int h = 0; h < H; h++) {
            const int kh = h / (H / HKV);
            std::vector<double> sc(lens[s]);
            double mx = -1e300, sum = 0;
            for (int j = 0; j < lens[s]; j++) {
                size_t slot = (size_t)tab[(size_t)s * mbps + j / BS] * BS + j % BS;
                double acc = 0;
                for (int d = 0; d < D; d++)
                    acc += (double)__bfloat162float(hq[((size_t)s * H + h) * D + d]) *
                           __bfloat162float(hk[(slot * HKV + kh) * D + d]);
                mx = std::max(mx, sc[j] = acc * su.p.scale);
            }
            for (int j = 0; j < lens[s]; j++) sum += (sc[j] = exp(sc[j] - mx));
            for (int d = 0; d < D; d++) {
                double acc = 0;
                for (int j = 0; j < lens[s]; j++) {
                    size_t slot = (size_t)tab[(size_t)s * mbps + j / BS] * BS + j % BS;
                    acc += sc[j] * __bfloat162float(hv[(slot * HKV + kh) * D + d]);
                }
                ref[((size_t)s * H + h) * D + d] = (float)(acc / sum);
            }
        }
    ho.resize(hq.size());
    int bad = 0;
    for (int ver = 1; ver <= 3; ver++) {
        if (only && ver != only) continue;
        CUDA_CHECK(cudaMemset(su.p.o, 0xff, ho.size() * 2)); /* NaN poison */
        run_version(ver, su);
        CUDA_CHECK(cudaMemcpy(ho.data(), su.p.o, ho.size() * 2, cudaMemcpyDeviceToHost));
        double err = 0;
        for (size_t x = 0; x < ho.size(); x++) {
            double e = fabs((double)__bfloat162float(ho[x]) - ref[x]);
            if (!(e <= err)) err = isnan(e) ? INFINITY : e;
        }
        const int ok = err <= 1e-2;
        printf("version %d: max abs err vs CPU %.3e (splits %d) %s\n", ver, err, ver == 3 ? su.p.n_splits : 1,
               ok ? "OK" : "FAIL");
        bad += !ok;
    }
    if (check_only || bad) return bad ? 1 : 0;

    void *flush;
    CUDA_CHECK(cudaMalloc(&flush, 256 << 20));
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0), cudaEventCreate(&e1);
    const int shapes[][2] = {{1, 32768}, {8, 32768}, {64, 4096}, {256, 1024}};
    for (auto &sh : shapes) {
        std::vector<int> bl(sh[0], sh[1]);
        setup s2 = make_setup(bl, &hq, &hk, &hv, &tab);
        for (int ver = 1; ver <= 3; ver++) {
            if (only && ver != only) continue;
            if (ver == 1 && sh[1] > 8192) continue; /* fp32 scores of the naive kernel live in smem */
            float total = 0;
            const int reps = 10;
            for (int r = 0; r <= reps; r++) {
                CUDA_CHECK(cudaMemset(flush, r, 256 << 20));
                cudaEventRecord(e0);
                run_version(ver, s2);
                cudaEventRecord(e1);
                CUDA_CHECK(cudaEventSynchronize(e1));
                float ms = 0;
                cudaEventElapsedTime(&ms, e0, e1);
                if (r) total += ms;
            }
            const float ms = total / reps;
            printf("version %d: batch %3d x context %6d: %.3f ms, %.0f GB/s of K+V (splits %d)\n", ver, sh[0], sh[1], ms,
                   s2.kv_bytes / ms / 1e6, ver == 3 ? s2.p.n_splits : 1);
        }
    }
    return 0;
}
