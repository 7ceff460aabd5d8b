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
 *            the rule of cuda_attention.cu (cuda_attn_num_splits) - what src/ uses. Since the
 *            cuda2 branch the kernel reads its block-table entries ahead of the copies and the
 *            combine reads 8 splits at a time (the earlier v3 is in git history, 88b2346).
 * version 4: what src/ runs now (flash_fwd_launch, split count from flash_num_splits of
 *            attn_internal.h): 4 warps x 16 rows, 32-key tiles x 2 stages (52 KB of shared memory,
 *            4 CTAs per SM) and splits filling 4 CTAs per SM.
 * Timed rows are printed for both ways of emptying L2 before a run (dirty: memset, as the earlier
 * tables; clean: a read), median of 15, CUDA events around the launches.
 * --sweep:   decode configurations (warps, keys per tile, stages) x split counts, GB/s per cell.
 *
 * Build: make cuda (-> build-cuda/dev/paged_attention)
 * Run:   build-cuda/dev/paged_attention [--check] [--sweep] [version]
 * Shape: bf16, 32 query / 8 kv heads, head dim 128, block size 16, one query per sequence.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <algorithm>
#include <vector>

#include "../../src/backend/cuda/flash_fwd.cu" /* defines: launch_cfg, fwd_params */

#include "dev_common.cuh" /* defines: CUDA_CHECK, fill_uniform */

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

typedef cudaError_t (*launch_fn)(const fwd_params &, cudaStream_t);
/* The decode configurations the sweep tries: <warps, m16 tiles per warp, keys per tile, stages>. */
static const struct {
    const char *name;
    launch_fn fn;
} kCfgs[] = {
    {"4w k32 s4", launch_cfg<T, D, 4, 1, 32, 4, true>}, {"4w k64 s4", launch_cfg<T, D, 4, 1, 64, 4, true>},
    {"4w k32 s6", launch_cfg<T, D, 4, 1, 32, 6, true>}, {"4w k32 s2", launch_cfg<T, D, 4, 1, 32, 2, true>},
    {"4w k64 s3", launch_cfg<T, D, 4, 1, 64, 3, true>}, {"2w k32 s4", launch_cfg<T, D, 2, 1, 32, 4, true>},
    {"2w k64 s3", launch_cfg<T, D, 2, 1, 64, 3, true>}, {"4w k16 s8", launch_cfg<T, D, 4, 1, 16, 8, true>},
    {"4w k32 s3", launch_cfg<T, D, 4, 1, 32, 3, true>}, {"2w k32 s2", launch_cfg<T, D, 2, 1, 32, 2, true>},
    {"1w k32 s4", launch_cfg<T, D, 1, 1, 32, 4, true>}, {"1w k64 s3", launch_cfg<T, D, 1, 1, 64, 3, true>},
};
enum { MAX_SPLITS = 256 };

static void set_splits(fwd_params *p, int max_len, int splits) {
    if (splits <= 1) {
        p->n_splits = 1, p->split_chunk = 0x3fffffff;
        return;
    }
    const int chunk = ((max_len + splits - 1) / splits + 63) / 64 * 64;
    p->n_splits = (max_len + chunk - 1) / chunk, p->split_chunk = chunk;
}

/* The split count of the earlier rule (2 CTAs per SM, <= 64 splits, >= 128 keys each). */
static int old_rule_splits(int ctas, int max_len, int sms) {
    const int slots = 2 * sms;
    int splits = 1;
    if (ctas * 5 < slots * 4) {
        int max_s = std::min(64, max_len / 128);
        float best = 0.f;
        for (int s = 1; s <= max_s; s++) best = std::max(best, (float)ctas * s / slots / ceilf((float)ctas * s / slots));
        for (int s = 1; s <= max_s; s++)
            if ((float)ctas * s / slots / ceilf((float)ctas * s / slots) >= 0.85f * best) { splits = s; break; }
    }
    return splits;
}

static int sm_count(void) {
    int sms = 132;
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
    return sms;
}

static void run_version(int ver, setup &su) {
    fwd_params p = su.p;
    if (ver == 1) {
        const size_t smem = 4 * (size_t)su.max_len * sizeof(float);
        CUDA_CHECK(cudaFuncSetAttribute(paged_naive_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
        paged_naive_kernel<<<(p.batch * p.n_head + 3) / 4, 128, smem>>>(p, su.max_len);
    } else if (ver == 2) {
        set_splits(&p, su.max_len, 1);
        CUDA_CHECK(launch_cfg<T, D, 4, 1, 32, 4, true>(p, 0));
    } else if (ver == 3) {
        set_splits(&p, su.max_len, old_rule_splits(p.batch * HKV, su.max_len, sm_count()));
        CUDA_CHECK(launch_cfg<T, D, 4, 1, 32, 4, true>(p, 0));
    } else {
        set_splits(&p, su.max_len, flash_num_splits(flash_fwd_ctas(p.max_rows, HKV, p.batch), su.max_len, sm_count()));
        CUDA_CHECK(flash_fwd_launch(p, 0));
    }
    CUDA_CHECK(cudaGetLastError());
}

static int version_splits(int ver, const setup &su) {
    if (ver == 3) return old_rule_splits(su.p.batch * HKV, su.max_len, sm_count());
    if (ver == 4) {
        fwd_params p = su.p;
        set_splits(&p, su.max_len, flash_num_splits(flash_fwd_ctas(p.max_rows, HKV, p.batch), su.max_len, sm_count()));
        return p.n_splits;
    }
    return 1;
}

/* A decode batch: lens[s] keys per sequence in a cache whose blocks are handed out shuffled. */
static setup make_setup(const std::vector<int> &lens, std::vector<T> *hq, std::vector<T> *hk, std::vector<T> *hv,
                        std::vector<int> *htab, bool device_fill = false) {
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
    hq->resize((size_t)B * H * D);
    if (!device_fill) {
        hk->resize(cache_elems), hv->resize(cache_elems);
        for (auto *vec : {hq, hk, hv})
            for (auto &x : *vec) x = __float2bfloat16((float)rand() / RAND_MAX * 2.f - 1.f);
    } else {
        for (auto &x : *hq) x = __float2bfloat16((float)rand() / RAND_MAX * 2.f - 1.f);
    }
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
    if (!device_fill) {
        CUDA_CHECK(cudaMemcpy(dk, hk->data(), cache_elems * 2, cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemcpy(dv, hv->data(), cache_elems * 2, cudaMemcpyHostToDevice));
    } else {
        fill_uniform<<<1024, 256>>>((T *)dk, cache_elems, 17u);
        fill_uniform<<<1024, 256>>>((T *)dv, cache_elems, 91u);
        CUDA_CHECK(cudaGetLastError());
    }
    CUDA_CHECK(cudaMemcpy(dcq, cq.data(), (B + 1) * 4, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(dlens, lens.data(), B * 4, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(dtab, htab->data(), htab->size() * 4, cudaMemcpyHostToDevice));
    setup su{};
    fwd_params &p = su.p;
    p.dtype = 0, p.q = dq, p.k = dk, p.v = dv, p.o = dout, p.cu_q = dcq, p.seq_lens = dlens, p.block_tables = dtab;
    p.max_blocks_per_seq = mbps, p.block_shift = 4, p.batch = B, p.total_q = B, p.max_rows = H / HKV;
    p.n_head = H, p.n_kv_head = HKV, p.group = H / HKV, p.head_dim = D;
    p.scale = 1.f / sqrtf((float)D), p.scale_log2 = p.scale * 1.4426950408889634f, p.causal = 1;
    CUDA_CHECK(cudaMalloc(&ws, (size_t)MAX_SPLITS * B * H * (D + 1) * 4));
    p.o_part = (float *)ws, p.lse_part = (float *)ws + (size_t)MAX_SPLITS * B * H * D;
    set_splits(&p, max_len, 1);
    su.max_len = max_len;
    for (int L : lens) su.kv_bytes += (size_t)L * HKV * D * 2 * 2;
    return su;
}

static void free_setup(setup &su) {
    cudaFree((void *)su.p.q), cudaFree(su.p.o), cudaFree((void *)su.p.k), cudaFree((void *)su.p.v);
    cudaFree((void *)su.p.cu_q), cudaFree((void *)su.p.seq_lens), cudaFree((void *)su.p.block_tables);
    cudaFree(su.p.o_part);
}

static double max_err(const std::vector<T> &ho, const std::vector<float> &ref) {
    double err = 0;
    for (size_t x = 0; x < ho.size(); x++) {
        double e = fabs((double)__bfloat162float(ho[x]) - ref[x]);
        if (!(e <= err)) err = isnan(e) ? INFINITY : e;
    }
    return err;
}

/* Reads the whole flush buffer (256 MB, 5x the L2): afterwards L2 holds clean lines only. */
__global__ void read_flush(const uint4 *x, size_t n, unsigned *sink) {
    uint32_t acc = 0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        const uint4 v = __ldcg(x + i);
        acc ^= v.x ^ v.y ^ v.z ^ v.w;
    }
    if (acc == 0x9e3779b9u) *sink = acc;
}

/* How L2 is emptied before each timed run: dirty = memset of 256 MB (as the earlier tables: L2 is
 * left full of dirty lines, whose write-back lands inside the timed kernel); clean = a read of
 * 256 MB (L2 full of clean lines, as after the previous layer's kernels, which write little). */
static int g_clean_flush = 0;

/* Median time (ms) of reps runs of fn, L2 flushed before each, CUDA events around the launches. */
template <typename F> static float time_median(F fn, void *flush, int reps) {
    static cudaEvent_t e0, e1;
    if (!e0) cudaEventCreate(&e0), cudaEventCreate(&e1);
    fn();
    std::vector<float> t;
    for (int r = 0; r < reps; r++) {
        if (g_clean_flush)
            read_flush<<<1056, 256>>>((const uint4 *)flush, (256 << 20) / 16, (unsigned *)flush);
        else
            CUDA_CHECK(cudaMemset(flush, r, 256 << 20));
        cudaEventRecord(e0);
        fn();
        cudaEventRecord(e1);
        CUDA_CHECK(cudaEventSynchronize(e1));
        float ms = 0;
        cudaEventElapsedTime(&ms, e0, e1);
        t.push_back(ms);
    }
    std::sort(t.begin(), t.end());
    return t[reps / 2];
}

int main(int argc, char **argv) {
    int check_only = 0, only = 0, sweep = 0;
    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--check")) check_only = 1;
        else if (!strcmp(argv[a], "--sweep")) sweep = 1;
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
    for (int ver = 1; ver <= 4; ver++) {
        if (only && ver != only) continue;
        CUDA_CHECK(cudaMemset(su.p.o, 0xff, ho.size() * 2)); /* NaN poison */
        run_version(ver, su);
        CUDA_CHECK(cudaMemcpy(ho.data(), su.p.o, ho.size() * 2, cudaMemcpyDeviceToHost));
        const double err = max_err(ho, ref);
        const int ok = err <= 1e-2;
        printf("version %d: max abs err vs CPU %.3e (splits %d) %s\n", ver, err, version_splits(ver, su),
               ok ? "OK" : "FAIL");
        bad += !ok;
    }
    /* every configuration of the sweep, unsplit and split (also splits that see no keys) */
    for (const auto &cfg : kCfgs)
        for (int splits : {1, 3, 7, 40}) {
            fwd_params p = su.p;
            set_splits(&p, su.max_len, splits);
            CUDA_CHECK(cudaMemset(p.o, 0xff, ho.size() * 2));
            CUDA_CHECK(cfg.fn(p, 0));
            CUDA_CHECK(cudaMemcpy(ho.data(), p.o, ho.size() * 2, cudaMemcpyDeviceToHost));
            const double err = max_err(ho, ref);
            if (!(err <= 1e-2)) {
                printf("config %s, %d splits: max abs err %.3e FAIL\n", cfg.name, splits, err);
                bad++;
            }
        }
    printf("sweep configurations x splits {1,3,7,40}: %s\n", bad ? "FAIL" : "OK");
    free_setup(su);
    if (check_only || bad) return bad ? 1 : 0;

    void *flush, *ca, *cb;
    CUDA_CHECK(cudaMalloc(&flush, 256 << 20));
    CUDA_CHECK(cudaMemset(flush, 1, 256 << 20));
    CUDA_CHECK(cudaMalloc(&ca, 1 << 30));
    CUDA_CHECK(cudaMalloc(&cb, 1 << 30));
    for (int r = 0; r < 40; r++) /* clocks up from idle before anything is timed */
        CUDA_CHECK(cudaMemcpyAsync(cb, ca, 1 << 30, cudaMemcpyDeviceToDevice));
    CUDA_CHECK(cudaDeviceSynchronize());
    const float copy_ms = time_median([&] { CUDA_CHECK(cudaMemcpyAsync(cb, ca, 1 << 30, cudaMemcpyDeviceToDevice)); },
                                      flush, 10);
    const double copy_gbs = 2.0 * (1 << 30) / copy_ms / 1e6;
    printf("device-to-device copy: %.0f GB/s (read + write of 1 GiB)\n", copy_gbs);
    cudaFree(ca), cudaFree(cb);
    const int shapes[][2] = {{1, 4096},  {1, 16384}, {1, 32768}, {1, 131072}, {8, 4096},
                             {8, 16384}, {8, 32768}, {64, 4096}, {256, 1024}};
    for (auto &sh : shapes) {
        std::vector<int> bl(sh[0], sh[1]);
        setup s2 = make_setup(bl, &hq, &hk, &hv, &tab, true);
        for (int ver = 1; ver <= 4; ver++) {
            if (only && ver != only) continue;
            if (ver == 1 && sh[1] > 8192) continue; /* fp32 scores of the naive kernel live in smem */
            if (ver == 2 && sh[0] < 64) continue;   /* one CTA per kv head: minutes of nothing */
            for (int clean = 0; clean <= (ver >= 3); clean++) {
                g_clean_flush = clean;
                const float ms = time_median([&] { run_version(ver, s2); }, flush, 15);
                printf("version %d: batch %3d x context %6d: %8.1f us, %5.0f GB/s of K+V = %3.0f%% of copy (splits %d, "
                       "%s L2)\n",
                       ver, sh[0], sh[1], ms * 1e3, s2.kv_bytes / ms / 1e6, 100.0 * s2.kv_bytes / ms / 1e6 / copy_gbs,
                       version_splits(ver, s2), clean ? "clean" : "dirty");
            }
            if (ver == 4 && version_splits(4, s2) > 1) { /* the combine launched plainly, not as a dependent */
                g_clean_flush = 1, g_combine_pdl = false;
                const float ms = time_median([&] { run_version(ver, s2); }, flush, 15);
                printf("version 4 without PDL combine: %8.1f us, %5.0f GB/s (clean L2)\n", ms * 1e3,
                       s2.kv_bytes / ms / 1e6);
                g_combine_pdl = true;
            }
            g_clean_flush = 0;
        }
        {   /* the combine kernel alone, on the split count of version 4 */
            fwd_params p = s2.p;
            set_splits(&p, s2.max_len, version_splits(4, s2));
            if (p.n_splits > 1) {
                CUDA_CHECK(flash_fwd_launch(p, 0));
                const float ms = time_median([&] { flash_combine_kernel<T, D><<<p.total_q * p.n_head, COMBINE_WARPS * 32>>>(p); },
                                             flush, 15);
                printf("  combine alone (%d splits): %.1f us\n", p.n_splits, ms * 1e3);
            }
        }
        if (sweep) {
            const int split_list[] = {1, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256};
            printf("sweep batch %d x %d, GB/s by splits:", sh[0], sh[1]);
            for (int sp : split_list)
                if (sh[0] * HKV * sp <= 8192 && sp * 64 <= sh[1]) printf(" %6d", sp);
            printf("\n");
            for (const auto &cfg : kCfgs) {
                printf("  %-12s", cfg.name);
                for (int sp : split_list) {
                    if (!(sh[0] * HKV * sp <= 8192 && sp * 64 <= sh[1])) continue;
                    fwd_params p = s2.p;
                    set_splits(&p, s2.max_len, sp);
                    const float ms = time_median([&] { CUDA_CHECK(cfg.fn(p, 0)); }, flush, 9);
                    printf(" %6.0f", s2.kv_bytes / ms / 1e6);
                }
                printf("\n");
            }
        }
        free_setup(s2);
    }
    return 0;
}
