"""dev/cuda/bench_attention.py - benchmarks the CUDA attention kernels of libpagoda_cuda.so against
PyTorch SDPA's FLASH_ATTENTION (FlashAttention-2) and CUDNN_ATTENTION backends, timed side by side in
the same run with CUDA events (warm-up, then the implementations alternate, median of the repeats;
for decode, L2 is flushed before each repeat). Prints the markdown tables of docs/BENCHMARKS.md ("CUDA attention kernels").

  forward   TFLOP/s = 4 B H Sq Sk D (/2 causal) / time
  backward  TFLOP/s = 2.5 x forward FLOPs / time (torch: autograd.grad of its SDPA output)
  decode    effective bandwidth = bytes of K and V read / time, paged (block 16) vs torch on contiguous
            caches, and the device's copy bandwidth (read + write of a 2 GiB buffer) measured here.
Usage: python3 dev/cuda/bench_attention.py [--quick] [--sections fwd,bwd,decode] [--flush clean|dirty] [--json PATH]
"""
import argparse
import json
import math
import os
import statistics
import sys

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pagoda_cuda as pc  # noqa: E402

FLUSH = None
FLUSH_MODE = "clean"


def flush_l2():
    """Empties L2 before a decode repeat. clean (default): reads 256 MB, leaving L2 full of clean
    lines (as after a previous layer's kernels, which write little); dirty: writes 256 MB (the
    earlier tables), whose write-back of ~50 MB of dirty L2 lines then lands inside the timed call."""
    if FLUSH_MODE == "dirty":
        FLUSH.zero_()
    else:
        FLUSH.view(torch.float32).sum()


def time_alternating(fns, reps, flush=False):
    """fns: name -> callable or None. Returns name -> (median ms, min ms, max ms)."""
    for f in fns.values():
        if f is not None:
            for _ in range(3):
                f()
    torch.cuda.synchronize()
    times = {n: [] for n in fns}
    for _ in range(reps):
        for n, f in fns.items():
            if f is None:
                continue
            if flush:
                flush_l2()
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            f()
            e.record()
            e.synchronize()
            times[n].append(s.elapsed_time(e))
    return {n: (statistics.median(t), min(t), max(t)) if t else None for n, t in times.items()}


def sdpa_fn(backend, q, k, v, causal, gqa=False):
    def run():
        with sdpa_kernel(backend):
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=gqa)
    try:
        run()
        torch.cuda.synchronize()
        return run
    except Exception as e:  # backend refuses this shape
        print(f"  ({backend.name} unavailable: {str(e).splitlines()[0][:100]})")
        return None


def fwd_case(dtype, B, H, S, D, causal, reps):
    q = torch.randn(B * S, H, D, device="cuda", dtype=dtype)
    k, v = torch.randn_like(q), torch.randn_like(q)
    cu = torch.arange(0, B + 1, dtype=torch.int32, device="cuda") * S
    out = torch.empty_like(q)
    lse = torch.empty(H, B * S, dtype=torch.float32, device="cuda")
    qt, kt, vt = (t.view(B, S, H, D).transpose(1, 2) for t in (q, k, v))
    fns = {
        "pagoda": lambda: pc.flash_fwd(q, k, v, cu, cu, S, S, causal, out=out, lse=lse, poison=False),
        "torch-flash": sdpa_fn(SDPBackend.FLASH_ATTENTION, qt, kt, vt, causal),
        "torch-cudnn": sdpa_fn(SDPBackend.CUDNN_ATTENTION, qt, kt, vt, causal),
    }
    flops = 4 * B * H * S * S * D / (2 if causal else 1)
    t = time_alternating(fns, reps)
    return {n: (flops / (v[0] * 1e-3) / 1e12 if v else None) for n, v in t.items()}, t


def bwd_case(dtype, B, H, S, D, causal, reps):
    q = torch.randn(B * S, H, D, device="cuda", dtype=dtype)
    k, v, dout = torch.randn_like(q), torch.randn_like(q), torch.randn_like(q)
    cu = torch.arange(0, B + 1, dtype=torch.int32, device="cuda") * S
    out, lse = pc.flash_fwd(q, k, v, cu, cu, S, S, causal)
    grads = (torch.empty_like(q), torch.empty_like(k), torch.empty_like(v))
    fns = {"pagoda": lambda: pc.flash_bwd(q, k, v, out, lse, dout, cu, cu, S, S, causal, grads=grads, poison=False)}
    for name, backend in (("torch-flash", SDPBackend.FLASH_ATTENTION), ("torch-cudnn", SDPBackend.CUDNN_ATTENTION)):
        qt, kt, vt = (t.view(B, S, H, D).transpose(1, 2).detach().requires_grad_(True) for t in (q, k, v))
        dt = dout.view(B, S, H, D).transpose(1, 2)
        try:
            with sdpa_kernel(backend):
                o = F.scaled_dot_product_attention(qt, kt, vt, is_causal=causal)
            torch.autograd.grad(o, (qt, kt, vt), dt, retain_graph=True)
            fns[name] = (lambda o=o, qt=qt, kt=kt, vt=vt, dt=dt:
                         torch.autograd.grad(o, (qt, kt, vt), dt, retain_graph=True))
        except Exception as e:
            print(f"  ({name} backward unavailable: {str(e).splitlines()[0][:100]})")
            fns[name] = None
    flops = 2.5 * 4 * B * H * S * S * D / (2 if causal else 1)
    t = time_alternating(fns, reps)
    return {n: (flops / (v[0] * 1e-3) / 1e12 if v else None) for n, v in t.items()}, t


def decode_case(B, ctx, reps, H=32, Hkv=8, D=128, bs=16, dtype=torch.bfloat16):
    nb = ctx // bs
    n_blocks = B * nb
    k_cache = torch.randn(n_blocks, bs, Hkv, D, device="cuda", dtype=dtype)
    v_cache = torch.randn_like(k_cache)
    table = torch.randperm(n_blocks, device="cuda").to(torch.int32).view(B, nb)
    q = torch.randn(B, H, D, device="cuda", dtype=dtype)
    qs = torch.arange(0, B + 1, dtype=torch.int32, device="cuda")
    lens = torch.full((B,), ctx, dtype=torch.int32, device="cuda")
    out = torch.empty_like(q)
    lse = torch.empty(H, B, dtype=torch.float32, device="cuda")
    ws = pc.paged_workspace(q, k_cache, v_cache, qs, lens, table, 1, ctx)
    fns = {"pagoda": lambda: pc.paged_attention(q, k_cache, v_cache, qs, lens, table, 1, ctx, out=out, lse=lse,
                                                poison=False, workspace=ws)}
    kt = torch.randn(B, Hkv, ctx, D, device="cuda", dtype=dtype)
    vt = torch.randn_like(kt)
    qt = q.view(B, H, 1, D)
    fns["torch-flash"] = sdpa_fn(SDPBackend.FLASH_ATTENTION, qt, kt, vt, False, gqa=True)
    fns["torch-cudnn"] = sdpa_fn(SDPBackend.CUDNN_ATTENTION, qt, kt, vt, False, gqa=True)
    nbytes = 2 * B * ctx * Hkv * D * k_cache.element_size()
    t = time_alternating(fns, reps, flush=True)
    del kt, vt, k_cache, v_cache
    splits = pc.num_splits(Hkv * B, ctx)
    return {n: (nbytes / (v[0] * 1e-3) / 1e12 if v else None) for n, v in t.items()}, t, splits


def copy_bandwidth():
    a = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
    b = torch.empty_like(a)
    t = time_alternating({"copy": lambda: b.copy_(a)}, 20)["copy"]
    return 2 * a.numel() / (t[0] * 1e-3) / 1e12


def fmt(x):
    return "n/a" if x is None else f"{x:.0f}"


def tb(x):
    return "n/a" if x is None else f"{x:.2f}"


def ratio(a, b):
    return "n/a" if a is None or b is None else f"{a / b:.2f}"


def main():
    global FLUSH, FLUSH_MODE
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", default=None)
    ap.add_argument("--sections", default="fwd,bwd,decode", help="comma-separated subset of fwd,bwd,decode")
    ap.add_argument("--flush", default="clean", choices=["clean", "dirty"], help="how L2 is emptied before decode runs")
    args = ap.parse_args()
    FLUSH_MODE = args.flush
    FLUSH = torch.zeros(256 << 20, dtype=torch.uint8, device="cuda")
    props = torch.cuda.get_device_properties(0)
    print(f"device {props.name} ({props.multi_processor_count} SMs), torch {torch.__version__}, "
          f"cudnn {torch.backends.cudnn.version()}")
    res = {"device": props.name, "torch": torch.__version__, "fwd": [], "bwd": [], "decode": []}
    reps = 10 if args.quick else 20

    sections = args.sections.split(",")
    print("\n### Forward (TFLOP/s; ratio = pagoda / peer)\n")
    print("| dtype | B x H x S, D | causal | pagoda | torch flash (FA2) | torch cuDNN | vs FA2 | vs cuDNN |")
    print("|---|---|---|---|---|---|---|---|")
    fwd_shapes = [(torch.bfloat16, 2, 32, 8192, 128, True), (torch.bfloat16, 2, 32, 8192, 128, False),
                  (torch.float16, 2, 32, 8192, 128, True), (torch.bfloat16, 8, 32, 2048, 128, True),
                  (torch.bfloat16, 2, 32, 8192, 64, True)]
    if args.quick:
        fwd_shapes = fwd_shapes[:1] + fwd_shapes[3:4]
    if "fwd" not in sections:
        fwd_shapes = []
    for dt, B, H, S, D, c in fwd_shapes:
        r, t = fwd_case(dt, B, H, S, D, c, reps)
        res["fwd"].append({"dtype": str(dt), "B": B, "H": H, "S": S, "D": D, "causal": c, "tflops": r, "ms": t})
        print(f"| {str(dt)[6:]} | {B}x{H}x{S}, {D} | {c} | {fmt(r['pagoda'])} | {fmt(r['torch-flash'])} | "
              f"{fmt(r['torch-cudnn'])} | {ratio(r['pagoda'], r['torch-flash'])} | {ratio(r['pagoda'], r['torch-cudnn'])} |",
              flush=True)

    print("\n### Backward (TFLOP/s, 2.5x forward FLOPs)\n")
    print("| dtype | B x H x S, D | causal | pagoda | torch flash (FA2) | torch cuDNN | vs FA2 | vs cuDNN |")
    print("|---|---|---|---|---|---|---|---|")
    bwd_shapes = [(torch.bfloat16, 2, 32, 8192, 128, True), (torch.bfloat16, 8, 32, 2048, 128, True),
                  (torch.bfloat16, 2, 32, 8192, 64, True)]
    if args.quick:
        bwd_shapes = bwd_shapes[1:2]
    if "bwd" not in sections:
        bwd_shapes = []
    for dt, B, H, S, D, c in bwd_shapes:
        r, t = bwd_case(dt, B, H, S, D, c, max(5, reps // 2))
        res["bwd"].append({"dtype": str(dt), "B": B, "H": H, "S": S, "D": D, "causal": c, "tflops": r, "ms": t})
        print(f"| {str(dt)[6:]} | {B}x{H}x{S}, {D} | {c} | {fmt(r['pagoda'])} | {fmt(r['torch-flash'])} | "
              f"{fmt(r['torch-cudnn'])} | {ratio(r['pagoda'], r['torch-flash'])} | {ratio(r['pagoda'], r['torch-cudnn'])} |",
              flush=True)

    copy = copy_bandwidth()
    res["copy_tbs"] = copy
    print(f"\n### Decode (bf16, 32 q / 8 kv heads, head dim 128, one query per sequence; TB/s of K+V; "
          f"copy bandwidth {copy:.2f} TB/s; L2 emptied by a {FLUSH_MODE} flush before each repeat)\n")
    print("| batch | context | splits | pagoda paged | % of copy | torch flash | torch cuDNN | vs flash | vs cuDNN |")
    print("|---|---|---|---|---|---|---|---|---|")
    combos = [(b, c) for b in (1, 8, 64, 256) for c in (1024, 4096, 16384, 32768, 131072) if b * c <= (1 << 22)]
    if args.quick:
        combos = [(1, 32768), (8, 4096), (64, 4096), (256, 1024)]
    if "decode" not in sections:
        combos = []
    for B, ctx in combos:
        r, t, splits = decode_case(B, ctx, reps)
        res["decode"].append({"B": B, "ctx": ctx, "tbs": r, "ms": t, "splits": splits})
        print(f"| {B} | {ctx} | {splits} | {r['pagoda']:.2f} | {100 * r['pagoda'] / copy:.0f}% | "
              f"{tb(r['torch-flash'])} | {tb(r['torch-cudnn'])} | "
              f"{ratio(r['pagoda'], r['torch-flash'])} | {ratio(r['pagoda'], r['torch-cudnn'])} |", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1, default=str)


if __name__ == "__main__":
    main()
