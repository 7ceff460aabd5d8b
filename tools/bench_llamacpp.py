#!/usr/bin/env python3
"""tools/bench_llamacpp.py - llama.cpp's speed on a GGUF file, timed through llama-cpp-python's
low-level API with the same definitions as `pagoda bench`, for tools/bench_cpu_compare.sh.

  ppP: one llama_decode of P random tokens (in chunks of --ubatch), logits for the last token only,
       then an argmax; tok/s = P / that time.
  tgN: decode a one-token prompt and take its argmax (untimed), then N single-token decodes, each
       followed by an argmax of the last logits; tok/s = N / their time.
Each test runs once to warm up (pp with at most 64 tokens, tg with at most 8), then REPS times on a cleared KV cache (F16 K/V, flash attention on).
Prints JSON on stdout: {"model_file", "llama_cpp_python", "system_info", "results": [{"test",
"n_threads", "n_prompt", "n_gen", "avg_ts", "stddev_ts", "samples_ts"}]}. If llama.cpp refuses the
file, exits 3 and prints its log lines that explain why, as JSON {"error": ..., "log": [...]}.
Needs `pip install llama-cpp-python` (not needed by the build or the tests).
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

LOG_LINES = []


@lc.llama_log_callback
def _log_callback(level, text, user_data):
    LOG_LINES.append(text.decode("utf-8", "replace").rstrip("\n"))


def parse_list(text):
    return [int(x) for x in text.split(",") if x != ""]


class Runner:
    def __init__(self, model, n_threads, n_ctx, n_batch, n_ubatch):
        cp = lc.llama_context_default_params()
        cp.n_ctx = n_ctx
        cp.n_batch = n_batch
        cp.n_ubatch = n_ubatch
        cp.n_threads = n_threads
        cp.n_threads_batch = n_threads
        cp.flash_attn_type = lc.LLAMA_FLASH_ATTN_TYPE_ENABLED
        cp.no_perf = True
        self.ctx = lc.llama_init_from_model(model, cp)
        if not self.ctx:
            raise RuntimeError("llama_init_from_model failed")
        self.n_batch = n_batch
        self.n_vocab = lc.llama_vocab_n_tokens(lc.llama_model_get_vocab(model))
        self.mem = lc.llama_get_memory(self.ctx)
        self.rng = np.random.default_rng(1234 + n_threads)

    def close(self):
        lc.llama_free(self.ctx)

    def decode(self, tokens):
        """Decodes tokens (a list) after what the cache holds; returns the argmax of the last logits."""
        for start in range(0, len(tokens), self.n_batch):
            chunk = tokens[start:start + self.n_batch]
            arr = (lc.llama_token * len(chunk))(*chunk)
            rc = lc.llama_decode(self.ctx, lc.llama_batch_get_one(arr, len(chunk)))
            if rc != 0:
                raise RuntimeError(f"llama_decode returned {rc}")
        logits = np.ctypeslib.as_array(lc.llama_get_logits_ith(self.ctx, -1), shape=(self.n_vocab,))
        return int(logits.argmax())

    def run_pp(self, n_prompt):
        lc.llama_memory_clear(self.mem, True)
        tokens = self.rng.integers(0, self.n_vocab, n_prompt).tolist()
        t0 = time.perf_counter()
        self.decode(tokens)
        return n_prompt / (time.perf_counter() - t0)

    def run_tg(self, n_gen):
        lc.llama_memory_clear(self.mem, True)
        token = self.decode([int(self.rng.integers(0, self.n_vocab))])
        t0 = time.perf_counter()
        for _ in range(n_gen):
            token = self.decode([token])
        return n_gen / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-m", "--model", required=True)
    ap.add_argument("-p", "--n-prompt", default="512")
    ap.add_argument("-n", "--n-gen", default="128")
    ap.add_argument("-t", "--threads", default=str(os.cpu_count()))
    ap.add_argument("-r", "--repetitions", type=int, default=5)
    ap.add_argument("--ubatch", type=int, default=512, help="tokens per forward (llama.cpp n_ubatch)")
    ap.add_argument("--no-warmup", action="store_true")
    args = ap.parse_args()
    prompts, gens, threads = parse_list(args.n_prompt), parse_list(args.n_gen), parse_list(args.threads)

    lc.llama_log_set(_log_callback, ctypes.c_void_p(0))
    lc.llama_backend_init()
    mp = lc.llama_model_default_params()
    model = lc.llama_model_load_from_file(args.model.encode(), mp)
    if not model:
        errors = [l for l in LOG_LINES if "error" in l.lower() or "fail" in l.lower() or "invalid" in l.lower()]
        json.dump({"error": f"llama.cpp could not load {args.model}", "log": errors or LOG_LINES[-15:]},
                  sys.stdout, indent=2)
        print()
        return 3
    n_ctx = max(max(prompts + [1]), max(gens + [0]) + 2) + 16
    results = []
    for t in threads:
        runner = Runner(model, t, n_ctx, max(args.ubatch, 1), args.ubatch)
        tests = [("pp", p) for p in prompts if p > 0] + [("tg", n) for n in gens if n > 0]
        for kind, length in tests:
            fn = runner.run_pp if kind == "pp" else runner.run_tg
            if not args.no_warmup:  # a short run reads every weight once
                fn(min(length, 64) if kind == "pp" else min(length, 8))
            samples = []
            for r in range(args.repetitions):
                samples.append(fn(length))
                print(f"llama.cpp: {t} threads: {kind}{length} rep {r + 1}/{args.repetitions}: "
                      f"{samples[-1]:.2f} tok/s", file=sys.stderr, flush=True)
            results.append({
                "test": f"{kind}{length}", "n_threads": t,
                "n_prompt": length if kind == "pp" else 0, "n_gen": length if kind == "tg" else 0,
                "avg_ts": statistics.fmean(samples),
                "stddev_ts": statistics.stdev(samples) if len(samples) > 1 else 0.0,
                "samples_ts": samples,
            })
        runner.close()
    lc.llama_model_free(model)
    json.dump({"model_file": os.path.basename(args.model), "llama_cpp_python": lc.__version__,
               "system_info": lc.llama_print_system_info().decode().strip(), "results": results},
              sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
