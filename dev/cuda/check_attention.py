"""dev/cuda/check_attention.py - checks every CUDA attention kernel of libpagoda_cuda.so on the GPU
against PyTorch: the fp32 reference, and a plain implementation in the kernel's own precision
(flash-attn's rule: our max error <= 2x the plain one's + a small absolute slack).

Covers: forward (bf16/fp16, head dim 64/128, causal or not, varlen, MHA/GQA/MQA, softmax scale,
split-KV) output and log-sum-exp; backward dq/dk/dv against autograd; dropout (keep rate, same
seed/offset -> same output, other offset -> other mask, forward and backward against the reference
with the regenerated mask); paged attention (block size 16/32, decodes and prefill chunks, equal to
the contiguous kernel, split-KV); kv_write; kv_copy_blocks. Random shapes with lengths that are not
multiples of the tile, fresh inputs each case, outputs filled with NaN before each run.
Usage: python3 dev/cuda/check_attention.py [--seed N] [--quick]   (exit 1 when a check fails)
"""
import argparse
import math
import os
import random
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pagoda_cuda as pc  # noqa: E402

torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
RESULTS = []


def report(name, ok, detail):
    RESULTS.append(ok)
    print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}", flush=True)


def tol(name, ours, plain, ref, slack):
    e_ours = (ours.float() - ref).abs().max().item()
    e_plain = (plain.float() - ref).abs().max().item()
    ok = math.isfinite(e_ours) and e_ours <= 2 * e_plain + slack
    report(name, ok, f"max err {e_ours:.2e}, plain {e_plain:.2e} (x{e_ours / max(e_plain, 1e-12):.2f})")


def ref_attn(q, k, v, cu_q, cu_k, causal, scale, dropmask=None, p_keep=1.0):
    """Per-sequence attention in q's dtype (softmax in fp32, cast back, as flash-attn's reference).
    q [Tq][H][D], k/v [Tk][Hkv][D]; returns out [Tq][H][D], lse [H][Tq] (fp32)."""
    G = q.shape[1] // k.shape[1]
    outs, lses = [], []
    for b in range(len(cu_q) - 1):
        qs = q[cu_q[b]:cu_q[b + 1]].transpose(0, 1)
        ks = k[cu_k[b]:cu_k[b + 1]].transpose(0, 1).repeat_interleave(G, 0)
        vs = v[cu_k[b]:cu_k[b + 1]].transpose(0, 1).repeat_interleave(G, 0)
        nq, nk = qs.shape[1], ks.shape[1]
        s = (qs @ ks.transpose(1, 2)) * scale
        if causal:
            i = torch.arange(nq, device=q.device)[:, None]
            j = torch.arange(nk, device=q.device)[None, :]
            s = s.masked_fill(j > i + nk - nq, float("-inf"))
        lses.append(torch.logsumexp(s.float(), -1))
        pr = torch.softmax(s.float(), -1).to(q.dtype)
        if dropmask is not None:
            pr = pr * dropmask[:, cu_q[b]:cu_q[b + 1], :nk].to(q.dtype) / p_keep
        outs.append((pr @ vs).transpose(0, 1))
    return torch.cat(outs, 0), torch.cat(lses, 1)


def rand_lens(batch, max_len, causal):
    lq = [random.randint(1, max_len) for _ in range(batch)]
    lk = [random.randint(1, max_len) for _ in range(batch)]
    if causal:
        lk = [max(a, b) for a, b in zip(lq, lk)]
    if random.random() < 0.3:
        lk = [max(a, b) for a, b in zip(lq, lk)]
        lq = list(lk)
    return lq, lk


def cu(lens):
    c = [0]
    for n in lens:
        c.append(c[-1] + n)
    return c


def make_case(dtype, D, H, Hkv, lq, lk):
    q = torch.randn(sum(lq), H, D, device="cuda", dtype=dtype)
    k = torch.randn(sum(lk), Hkv, D, device="cuda", dtype=dtype)
    v = torch.randn(sum(lk), Hkv, D, device="cuda", dtype=dtype)
    cq, ck = cu(lq), cu(lk)
    return q, k, v, cq, ck, torch.tensor(cq, dtype=torch.int32, device="cuda"), torch.tensor(ck, dtype=torch.int32, device="cuda")


def check_forward(quick):
    heads = [(4, 4), (8, 2), (6, 1)]
    for dtype in (torch.bfloat16, torch.float16):
        for D in (64, 128):
            for causal in (False, True):
                for H, Hkv in (heads[:2] if quick else heads):
                    batch = random.randint(1, 3)
                    lq, lk = rand_lens(batch, random.randint(70, 600), causal)
                    q, k, v, cq, ck, cqd, ckd = make_case(dtype, D, H, Hkv, lq, lk)
                    scale = random.choice([1.0 / math.sqrt(D), random.uniform(0.03, 0.2)])
                    splits = random.choice([1, 0, 3])
                    out, lse = pc.flash_fwd(q, k, v, cqd, ckd, max(lq), max(lk), causal, scale, n_splits=splits)
                    ref, ref_lse = ref_attn(q.float(), k.float(), v.float(), cq, ck, causal, scale)
                    plain, _ = ref_attn(q, k, v, cq, ck, causal, scale)
                    name = (f"fwd {str(dtype)[6:]} d{D} {'causal' if causal else 'full'} H{H}/{Hkv} lq{lq} lk{lk} "
                            f"splits{splits}")
                    tol(name + " out", out, plain, ref, 1e-3)
                    e = (lse - ref_lse).abs().max().item()
                    report(name + " lse", math.isfinite(e) and e <= 2e-3 + 1e-3 * ref_lse.abs().max().item(),
                           f"max err {e:.2e}")


def grads_ref(q, k, v, dout, cq, ck, causal, scale, mask=None, p_keep=1.0):
    qq, kk, vv = (t.detach().clone().requires_grad_(True) for t in (q, k, v))
    out, _ = ref_attn(qq, kk, vv, cq, ck, causal, scale, mask, p_keep)
    out.backward(dout.to(out.dtype))
    return out.detach(), qq.grad, kk.grad, vv.grad


def check_backward(quick, dropout_p=0.0):
    cases = 0
    for dtype in (torch.bfloat16, torch.float16):
        for D in (64, 128):
            for causal in (False, True):
                for H, Hkv in ((4, 4), (8, 2)):
                    if quick and H == 8 and dtype == torch.float16:
                        continue
                    if dropout_p > 0 and (cases % 3):
                        cases += 1
                        continue
                    cases += 1
                    batch = random.randint(1, 3)
                    lq, lk = rand_lens(batch, random.randint(70, 300), causal)
                    q, k, v, cq, ck, cqd, ckd = make_case(dtype, D, H, Hkv, lq, lk)
                    dout = torch.randn_like(q)
                    scale = 1.0 / math.sqrt(D)
                    seed, offset = random.getrandbits(63), random.getrandbits(40)
                    mask = None
                    if dropout_p > 0:
                        mask = pc.dropout_mask(cqd, ckd, q.shape[0], max(lk), H, dropout_p, seed, offset)
                    out, lse = pc.flash_fwd(q, k, v, cqd, ckd, max(lq), max(lk), causal, scale, dropout_p, seed, offset)
                    dq, dk, dv = pc.flash_bwd(q, k, v, out, lse, dout, cqd, ckd, max(lq), max(lk), causal, scale,
                                              dropout_p, seed, offset)
                    ref = grads_ref(q.float(), k.float(), v.float(), dout.float(), cq, ck, causal, scale, mask,
                                    1 - dropout_p)
                    plain = grads_ref(q, k, v, dout, cq, ck, causal, scale, mask, 1 - dropout_p)
                    name = (f"bwd{' dropout' if dropout_p else ''} {str(dtype)[6:]} d{D} "
                            f"{'causal' if causal else 'full'} H{H}/{Hkv} lq{lq} lk{lk}")
                    if dropout_p:
                        tol(name + " out", out, plain[0], ref[0], 1e-3)
                    for label, ours, p_, r_ in zip(("dq", "dk", "dv"), (dq, dk, dv), plain[1:], ref[1:]):
                        tol(f"{name} {label}", ours, p_, r_, 1e-3 * max(1.0, r_.abs().max().item()))


def check_dropout():
    p = 0.17
    lq, lk = [300, 77, 513], [300, 200, 513]
    q, k, v, cq, ck, cqd, ckd = make_case(torch.bfloat16, 64, 4, 2, lq, lk)
    seed, offset = 1234567891234, 42
    mask = pc.dropout_mask(cqd, ckd, q.shape[0], max(lk), 4, p, seed, offset)
    valid = sum(a * b for a, b in zip(lq, lk)) * 4
    kept = mask.sum().item()
    rate = kept / valid
    sigma = math.sqrt(p * (1 - p) / valid)
    report("dropout keep rate", abs(rate - (1 - p)) < 5 * sigma, f"{rate:.5f} vs {1 - p:.5f} (5 sigma {5 * sigma:.5f})")
    o1, _ = pc.flash_fwd(q, k, v, cqd, ckd, max(lq), max(lk), False, None, p, seed, offset)
    o2, _ = pc.flash_fwd(q, k, v, cqd, ckd, max(lq), max(lk), False, None, p, seed, offset)
    o3, _ = pc.flash_fwd(q, k, v, cqd, ckd, max(lq), max(lk), False, None, p, seed, offset + 1)
    report("dropout reproducible (same seed, offset)", torch.equal(o1, o2), "bitwise equal outputs")
    m2 = pc.dropout_mask(cqd, ckd, q.shape[0], max(lk), 4, p, seed, offset + 1)
    same = (mask == m2).float().mean().item()
    report("dropout other offset -> other mask", not torch.equal(o1, o3) and same < 0.9, f"{same:.3f} of mask equal")
    check_backward(True, dropout_p=p)


def check_paged(quick):
    for dtype in (torch.bfloat16, torch.float16):
        for D in (64, 128):
            for bs in (16, 32):
                for decode in (True, False):
                    if quick and dtype == torch.float16 and D == 64:
                        continue
                    H, Hkv = random.choice([(8, 8), (8, 2), (32, 8), (4, 1)])
                    n_seqs = random.randint(1, 6)
                    seq_lens = [random.randint(1, 1500) for _ in range(n_seqs)]
                    n_q = [1 if decode else random.randint(1, min(L, 130)) for L in seq_lens]
                    if not decode:
                        n_q[0] = seq_lens[0]
                    nb = [(L + bs - 1) // bs for L in seq_lens]
                    n_blocks = sum(nb) + 7
                    perm = torch.randperm(n_blocks).tolist()
                    max_blocks = max(nb) + 2
                    table = torch.zeros(n_seqs, max_blocks, dtype=torch.int32)
                    pos = 0
                    for s in range(n_seqs):
                        table[s, :nb[s]] = torch.tensor(perm[pos:pos + nb[s]], dtype=torch.int32)
                        pos += nb[s]
                    ck = cu(seq_lens)
                    k32 = torch.randn(ck[-1], Hkv, D, device="cuda")
                    v32 = torch.randn(ck[-1], Hkv, D, device="cuda")
                    kc = k32.to(dtype)
                    vc = v32.to(dtype)
                    slots = torch.cat([table[s, torch.arange(L) // bs] * bs + torch.arange(L) % bs
                                       for s, L in enumerate(seq_lens)]).to(torch.int32).cuda()
                    k_cache = torch.full((n_blocks, bs, Hkv, D), float("nan"), dtype=dtype, device="cuda")
                    v_cache = torch.full_like(k_cache, float("nan"))
                    src32 = random.random() < 0.5
                    pc.kv_write(k_cache, v_cache, k32 if src32 else kc, v32 if src32 else vc, slots)
                    ok = torch.equal(k_cache.view(-1, Hkv, D)[slots.long()], kc) and \
                        torch.equal(v_cache.view(-1, Hkv, D)[slots.long()], vc)
                    report(f"kv_write {str(dtype)[6:]} bs{bs} d{D} from {'fp32' if src32 else 'same dtype'}", ok,
                           f"{len(slots)} rows")
                    cq = cu(n_q)
                    q = torch.randn(cq[-1], H, D, device="cuda", dtype=dtype)
                    cqd = torch.tensor(cq, dtype=torch.int32, device="cuda")
                    ckd = torch.tensor(ck, dtype=torch.int32, device="cuda")
                    lens_d = torch.tensor(seq_lens, dtype=torch.int32, device="cuda")
                    table_d = table.cuda()
                    scale = 1.0 / math.sqrt(D)
                    name = (f"paged {'decode' if decode else 'mixed'} {str(dtype)[6:]} d{D} bs{bs} H{H}/{Hkv} "
                            f"lens{seq_lens} nq{n_q}")
                    out, lse = pc.paged_attention(q, k_cache, v_cache, cqd, lens_d, table_d, max(n_q), max(seq_lens),
                                                  scale, n_splits=0)
                    ref, ref_lse = ref_attn(q.float(), kc.float(), vc.float(), cq, ck, True, scale)
                    plain, _ = ref_attn(q, kc, vc, cq, ck, True, scale)
                    tol(name + " out (auto splits)", out, plain, ref, 1e-3)
                    e = (lse - ref_lse).abs().max().item()
                    report(name + " lse", math.isfinite(e) and e <= 2e-3 + 1e-3 * ref_lse.abs().max().item(),
                           f"max err {e:.2e}")
                    o1, _ = pc.paged_attention(q, k_cache, v_cache, cqd, lens_d, table_d, max(n_q), max(seq_lens),
                                               scale, n_splits=1)
                    o2, _ = pc.flash_fwd(q, kc, vc, cqd, ckd, max(n_q), max(seq_lens), True, scale, n_splits=1)
                    d = (o1.float() - o2.float()).abs().max().item()
                    report(name + " paged == contiguous", d == 0.0, f"max diff {d:.2e}")


def check_copy_blocks():
    for dtype in (torch.bfloat16, torch.float16):
        layers_k = [torch.randn(40, 16, 4, 64, device="cuda").to(dtype) for _ in range(3)]
        layers_v = [torch.randn(40, 16, 4, 64, device="cuda").to(dtype) for _ in range(3)]
        before_k = [t.clone() for t in layers_k]
        before_v = [t.clone() for t in layers_v]
        perm = torch.randperm(40).tolist()
        src, dst = perm[:6], perm[6:12]
        pc.kv_copy_blocks(layers_k, layers_v, torch.tensor(src, dtype=torch.int32, device="cuda"),
                          torch.tensor(dst, dtype=torch.int32, device="cuda"))
        ok = True
        for bk, bv, lk, lv in zip(before_k, before_v, layers_k, layers_v):
            ek, ev = bk.clone(), bv.clone()
            ek[dst] = bk[src]
            ev[dst] = bv[src]
            ok = ok and torch.equal(ek, lk) and torch.equal(ev, lv)
        report(f"kv_copy_blocks {str(dtype)[6:]}", ok, "3 layers, 6 blocks")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randint(0, 2**31)
    print(f"seed {seed} (rerun with --seed {seed}); device {torch.cuda.get_device_name()}; torch {torch.__version__}")
    random.seed(seed)
    torch.manual_seed(seed)
    for fn in (check_forward, check_backward, check_paged):
        try:
            fn(args.quick)
        except Exception as e:  # a crash is a failure, keep going
            report(fn.__name__, False, f"exception {e!r}")
    for fn in (check_dropout, check_copy_blocks):
        try:
            fn()
        except Exception as e:
            report(fn.__name__, False, f"exception {e!r}")
    n_pass = sum(RESULTS)
    print(f"check_attention: {n_pass} passed, {len(RESULTS) - n_pass} failed")
    sys.exit(0 if n_pass == len(RESULTS) else 1)


if __name__ == "__main__":
    main()
