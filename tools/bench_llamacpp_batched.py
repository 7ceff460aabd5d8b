#!/usr/bin/env python3
"""tools/bench_llamacpp_batched.py - the workload of bench/bench_engine.c through llama.cpp's own
batched decoding (the installed llama-cpp-python package, low-level API; nothing is built).

For each concurrency C: one llama_context with n_seq_max = C (non-unified KV, n_ctx = C times the
per-sequence context); the C prompts are prefilled packed into llama_batches of up to --n-batch
tokens (logits only for each prompt's last token), then every step decodes one llama_batch carrying
every sequence's next token; greedy (argmax of the logits, numpy), no end-of-generation check, so
each sequence generates exactly N tokens. The sequential baseline runs the same requests one at a
time in a context with n_seq_max = 1 (--seq-requests K: only the first K of them).

Prompts are the same token ids as bench_engine's: token j of request r is
100 + splitmix64(r * 1000003 + j + 1) % (min(n_vocab, 32000) - 100).

Each context gets an untimed warm-up (prefill + one step of all its sequences); the program starts
with a warm-up run; each figure is the median of --reps runs. Timing: time.perf_counter (monotonic).

Usage: tools/bench_llamacpp_batched.py -m MODEL [-t THREADS] [--gen N] [--prompt-len P]
         [--conc 1,8,32,64] [--reps R] [--seq-requests K] [--n-batch B] [--flash-attn auto|on|off]
         [--kv-unified] [--json]
"""
import argparse
import ctypes
import json
import os
import statistics
import sys
import time

import numpy as np
import llama_cpp as lc

MASK = (1 << 64) - 1
N_FIRST_TOKENS = 16


def splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK
    return x ^ (x >> 31)


def make_prompt(r, n_vocab, length):
    span = min(n_vocab, 32000) - 100
    return [100 + splitmix64(r * 1000003 + j + 1) % span for j in range(length)]


def versions():
    """llama-cpp-python version, libllama version, ggml version and commit."""
    lib = lc.llama_cpp._lib
    out = {"llama_cpp_python": lc.__version__}
    try:
        fn = lib.llama_version
        fn.restype = ctypes.c_char_p
        out["libllama"] = fn().decode()
    except AttributeError:
        pass
    try:
        ggml = ctypes.CDLL(os.path.join(os.path.dirname(lc.__file__), "lib", "libggml-base.so"))
        ggml.ggml_version.restype = ctypes.c_char_p
        ggml.ggml_commit.restype = ctypes.c_char_p
        out["ggml"] = ggml.ggml_version().decode()
        out["ggml_commit"] = ggml.ggml_commit().decode()
    except (OSError, AttributeError):
        pass
    return out


@lc.llama_log_callback
def _quiet_log(level, text, user_data):
    pass


class Bench:
    def __init__(self, args):
        self.args = args
        lc.llama_log_set(_quiet_log, ctypes.c_void_p())
        lc.llama_backend_init()
        mp = lc.llama_model_default_params()
        self.model = lc.llama_model_load_from_file(args.model.encode(), mp)
        if not self.model:
            sys.exit(f"bench_llamacpp_batched: cannot load {args.model}")
        self.n_vocab = lc.llama_vocab_n_tokens(lc.llama_model_get_vocab(self.model))
        # per-sequence context, rounded up to llama.cpp's 256-token padding
        need = args.prompt_len + args.gen + 1
        self.ctx_per_seq = (need + 255) // 256 * 256
        cap = max(args.n_batch, max(args.conc))
        self.batch = lc.llama_batch_init(cap, 0, 1)
        self.batch_cap = cap
        self.flash_attn = None

    def close(self):
        lc.llama_batch_free(self.batch)
        lc.llama_model_free(self.model)

    def new_context(self, n_seq):
        p = lc.llama_context_default_params()
        p.n_ctx = n_seq * self.ctx_per_seq
        p.n_batch = self.args.n_batch
        p.n_ubatch = self.args.n_batch
        p.n_seq_max = n_seq
        p.n_threads = self.args.threads
        p.n_threads_batch = self.args.threads
        p.no_perf = True
        p.flash_attn_type = {"auto": -1, "off": 0, "on": 1}[self.args.flash_attn]
        p.kv_unified = self.args.kv_unified
        self.flash_attn = p.flash_attn_type
        ctx = lc.llama_init_from_model(self.model, p)
        if not ctx:
            sys.exit(f"bench_llamacpp_batched: cannot create a context for {n_seq} sequences")
        return ctx

    def _set(self, i, token, pos, seq, want_logits):
        b = self.batch
        b.token[i] = token
        b.pos[i] = pos
        b.n_seq_id[i] = 1
        b.seq_id[i][0] = seq
        b.logits[i] = 1 if want_logits else 0

    def _decode(self, ctx, n):
        self.batch.n_tokens = n
        rc = lc.llama_decode(ctx, self.batch)
        if rc != 0:
            sys.exit(f"bench_llamacpp_batched: llama_decode returned {rc}")

    def run(self, ctx, first, n, n_gen):
        """Requests first..first+n-1 together in ctx (sequence ids 0..n-1); returns (seconds, first tokens
        of request 0 when first == 0)."""
        P = self.args.prompt_len
        prompts = [make_prompt(first + s, self.n_vocab, P) for s in range(n)]
        lc.llama_memory_clear(lc.llama_get_memory(ctx), True)
        nv = self.n_vocab
        t0 = time.perf_counter()
        # prefill: prompts packed into batches of up to n_batch tokens
        last = np.zeros(n, dtype=np.int64)
        k, out_seqs = 0, []
        for s in range(n):
            for j in range(P):
                self._set(k, prompts[s][j], j, s, j == P - 1)
                if j == P - 1:
                    out_seqs.append((s, k))
                k += 1
                if k == self.args.n_batch:
                    self._decode(ctx, k)
                    for seq, row in out_seqs:
                        last[seq] = np.ctypeslib.as_array(lc.llama_get_logits_ith(ctx, row), shape=(nv,)).argmax()
                    k, out_seqs = 0, []
        if k:
            self._decode(ctx, k)
            for seq, row in out_seqs:
                last[seq] = np.ctypeslib.as_array(lc.llama_get_logits_ith(ctx, row), shape=(nv,)).argmax()
        first_tokens = [int(last[0])]
        # decode: one batch with every sequence's newest token per step
        for step in range(n_gen - 1):
            for s in range(n):
                self._set(s, int(last[s]), P + step, s, True)
            self._decode(ctx, n)
            logits = np.ctypeslib.as_array(lc.llama_get_logits(ctx), shape=(n, nv))
            last = logits.argmax(axis=1)
            if len(first_tokens) < N_FIRST_TOKENS:
                first_tokens.append(int(last[0]))
        seconds = time.perf_counter() - t0
        return seconds, (first_tokens if first == 0 else [])

    def warm(self, ctx, n):
        self.run(ctx, 0, n, 2)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-m", "--model", required=True)
    ap.add_argument("-t", "--threads", type=int, default=os.cpu_count())
    ap.add_argument("--gen", type=int, default=64)
    ap.add_argument("--prompt-len", type=int, default=48)
    ap.add_argument("--conc", default="1,8,32,64")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seq-requests", type=int, default=-1,
                    help="time only the first K requests one at a time (default: all C; 0: skip)")
    ap.add_argument("--n-batch", type=int, default=512)
    ap.add_argument("--flash-attn", choices=["auto", "on", "off"], default="auto",
                    help="llama.cpp's flash attention setting (default: auto, llama.cpp's default)")
    ap.add_argument("--kv-unified", action="store_true",
                    help="one KV buffer shared by all sequences (llama.cpp's default is per-sequence streams)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    args.conc = [int(c) for c in args.conc.split(",")]
    if args.gen < 1 or args.prompt_len < 1 or args.reps < 1 or min(args.conc) < 1:
        ap.error("--gen, --prompt-len, --reps and every --conc must be >= 1")

    b = Bench(args)
    ver = versions()
    # warm-up run: weights paged in, threads started
    ctx = b.new_context(min(8, max(args.conc)))
    b.run(ctx, 0, min(8, max(args.conc)), min(8, args.gen))
    lc.llama_free(ctx)
    seq_ctx = b.new_context(1)
    b.warm(seq_ctx, 1)

    results = []
    for c in args.conc:
        ctx = b.new_context(c)
        b.warm(ctx, c)
        runs = [b.run(ctx, 0, c, args.gen) for _ in range(args.reps)]
        lc.llama_free(ctx)
        seconds = statistics.median(r[0] for r in runs)
        n_seq = c if args.seq_requests < 0 else min(c, args.seq_requests)
        seq_seconds = 0.0
        if n_seq > 0:
            seq_runs = [sum(b.run(seq_ctx, r, 1, args.gen)[0] for r in range(n_seq)) for _ in range(args.reps)]
            seq_seconds = statistics.median(seq_runs)
        res = {
            "conc": c,
            "seconds": seconds,
            "gen_tok_s": c * args.gen / seconds,
            "total_tok_s": c * (args.prompt_len + args.gen) / seconds,
            "seq_requests": n_seq,
            "seq_seconds": seq_seconds,
            "seq_gen_tok_s": n_seq * args.gen / seq_seconds if seq_seconds > 0 else 0.0,
            "first_tokens": runs[0][1],
        }
        results.append(res)
        if not args.json:
            print(f"  C={c}: {res['gen_tok_s']:.1f} gen tok/s batched, {res['seq_gen_tok_s']:.1f} one at a time",
                  file=sys.stderr)
    lc.llama_free(seq_ctx)
    b.close()

    if args.json:
        print(json.dumps({"engine": "llama.cpp", "version": ver, "model": args.model, "threads": args.threads,
                          "n_gen": args.gen, "prompt_len": args.prompt_len, "reps": args.reps,
                          "n_batch": args.n_batch, "kv_type": "F16", "flash_attn_type": b.flash_attn,
                          "kv_unified": args.kv_unified,
                          "results": results}, indent=1))
    else:
        print("llama.cpp batched: " + ", ".join(f"{k} {v}" for k, v in ver.items()))
        print(f"{args.model}, {args.threads} threads, prompt {args.prompt_len} tokens, {args.gen} generated tokens "
              f"per request, median of {args.reps}, n_batch {args.n_batch}, KV F16")
        print(f"{'C':>6} {'seconds':>10} {'gen tok/s':>12} {'total tok/s':>12} {'seq tok/s':>12} {'speedup':>8}")
        for r in results:
            sp = r["gen_tok_s"] / r["seq_gen_tok_s"] if r["seq_gen_tok_s"] > 0 else 0.0
            print(f"{r['conc']:>6} {r['seconds']:>10.3f} {r['gen_tok_s']:>12.1f} {r['total_tok_s']:>12.1f} "
                  f"{r['seq_gen_tok_s']:>12.1f} {sp:>7.2f}x")


if __name__ == "__main__":
    main()
