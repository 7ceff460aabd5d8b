#!/usr/bin/env python3
"""Float64 reference logits for a llama-family GGUF model, computed with NumPy.

Independent of both Pagoda and llama.cpp: weights are dequantized by the PyPI `gguf` package
(gguf.quants.dequantize) and the forward pass is written here from the model definition (HF's
LlamaForCausalLM / Qwen2ForCausalLM; GGUF's llama Q/K rows are permuted for the interleaved RoPE,
Qwen2 keeps rotate-half), in float64 with no activation rounding. It tells apart a bug in Pagoda's
forward pass (which would show against this reference) from the rounding of llama.cpp, which
multiplies quantized weights by activations rounded to 8 bits.

It reads the prompts (already tokenized by llama.cpp) from a tests/fixtures/models/*.ref.txt file
and writes, per case, the top-10 logits at every position and the full vector at the last position:

    pagoda-float-ref 1
    model <file name>
    n_vocab <n>
    case <index> <name>
    tokens <n> <ids...>
    topk <pos> <k> <id>:<logit> ...        (%.6f)
    logits <pos> <n_vocab> <v0> ...        (%.5f; the last position; first --full-logits-cases cases)
    greedy <m> <ids...>                    (greedy continuation, m <= --greedy, ends early at an eog id)
    greedy_gap <m> <gaps...>               (top-1 minus top-2 logit at each greedy step)
    end

usage: tools/make_float_reference.py MODEL.gguf REF.txt OUT.txt [--max-cases N]
       tools/make_float_reference.py MODEL.gguf --random-cases LEN,LEN,... OUT.txt [--seed S]
   (the second form makes cases of pseudo-random token ids of the given lengths, for random-weight
    models from `pagoda gen-model`, which have no meaningful text)
"""
import argparse
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize


def field(reader, key, default=None):
    f = reader.fields.get(key)
    if f is None:
        return default
    v = f.parts[f.data[0]]
    if f.types and f.types[0].name == "STRING":
        return bytes(v).decode()
    return v.tolist()[0] if hasattr(v, "tolist") else v


def load(path):
    r = GGUFReader(path)
    arch = field(r, "general.architecture")
    hp = {
        "arch": arch,
        "n_embd": field(r, f"{arch}.embedding_length"),
        "n_layer": field(r, f"{arch}.block_count"),
        "n_head": field(r, f"{arch}.attention.head_count"),
        "n_head_kv": field(r, f"{arch}.attention.head_count_kv"),
        "eps": field(r, f"{arch}.attention.layer_norm_rms_epsilon", 1e-5),
        "base": field(r, f"{arch}.rope.freq_base", 10000.0),
    }
    hp["head_dim"] = field(r, f"{arch}.attention.key_length", hp["n_embd"] // hp["n_head"])
    hp["n_rot"] = field(r, f"{arch}.rope.dimension_count", hp["head_dim"])
    w = {}
    for t in r.tensors:
        shape = [int(x) for x in reversed(t.shape.tolist())]  # numpy order: [ne1, ne0]
        a = dequantize(t.data, t.tensor_type).astype(np.float64)
        w[t.name] = a.reshape(shape) if len(shape) > 1 else a.reshape(-1)
    if "output.weight" not in w:
        w["output.weight"] = w["token_embd.weight"]
    return hp, w


def rmsnorm(x, weight, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight


def rope(x, pos, hp, freqs):
    # x: [n_tok, n_heads, head_dim]
    n_rot = hp["n_rot"]
    half = n_rot // 2
    ang = pos[:, None] * freqs[None, :]  # [n_tok, half]
    c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    out = x.copy()
    if hp["arch"] == "qwen2":  # rotate halves
        a, b = x[..., :half], x[..., half:n_rot]
        out[..., :half] = a * c - b * s
        out[..., half:n_rot] = a * s + b * c
    else:  # adjacent pairs
        a, b = x[..., 0:n_rot:2], x[..., 1:n_rot:2]
        out[..., 0:n_rot:2] = a * c - b * s
        out[..., 1:n_rot:2] = a * s + b * c
    return out


def forward(hp, w, tokens, cache=None):
    """Logits for `tokens` placed after the positions already in `cache` (a dict of per-layer K/V,
    updated in place); cache None starts a new sequence."""
    n = len(tokens)
    cache = {} if cache is None else cache
    start = cache.get("n", 0)
    hd, nh, nkv = hp["head_dim"], hp["n_head"], hp["n_head_kv"]
    freqs = hp["base"] ** (-np.arange(0, hp["n_rot"], 2, dtype=np.float64) / hp["n_rot"])
    if "rope_freqs.weight" in w:
        freqs = freqs / w["rope_freqs.weight"]
    pos = np.arange(start, start + n, dtype=np.float64)
    x = w["token_embd.weight"][tokens]
    total = start + n
    mask = np.triu(np.full((n, total), -np.inf), start + 1)
    for il in range(hp["n_layer"]):
        p = f"blk.{il}."
        h = rmsnorm(x, w[p + "attn_norm.weight"], hp["eps"])
        q = h @ w[p + "attn_q.weight"].T + w.get(p + "attn_q.bias", 0)
        k = h @ w[p + "attn_k.weight"].T + w.get(p + "attn_k.bias", 0)
        v = h @ w[p + "attn_v.weight"].T + w.get(p + "attn_v.bias", 0)
        q = rope(q.reshape(n, nh, hd), pos, hp, freqs)
        k = rope(k.reshape(n, nkv, hd), pos, hp, freqs)
        v = v.reshape(n, nkv, hd)
        if il in cache:
            k = np.concatenate([cache[il][0], k])
            v = np.concatenate([cache[il][1], v])
        cache[il] = (k, v)
        rep = nh // nkv
        kr = np.repeat(k, rep, axis=1)
        vr = np.repeat(v, rep, axis=1)
        att = np.einsum("ihd,jhd->hij", q, kr) / np.sqrt(hd) + mask
        att = np.exp(att - att.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        o = np.einsum("hij,jhd->ihd", att, vr).reshape(n, nh * hd)
        x = x + o @ w[p + "attn_output.weight"].T
        h = rmsnorm(x, w[p + "ffn_norm.weight"], hp["eps"])
        g = h @ w[p + "ffn_gate.weight"].T
        u = h @ w[p + "ffn_up.weight"].T
        x = x + ((g / (1 + np.exp(-g))) * u) @ w[p + "ffn_down.weight"].T
    cache["n"] = total
    x = rmsnorm(x, w["output_norm.weight"], hp["eps"])
    return x @ w["output.weight"].T


def greedy(hp, w, tokens, n_steps, eog):
    """Greedy continuation (argmax, lowest id on ties) and the top-2 gap at each step."""
    cache = {}
    logits = forward(hp, w, np.array(tokens), cache)[-1]
    out, gaps = [], []
    for _ in range(n_steps):
        order = np.argsort(-logits, kind="stable")
        out.append(int(order[0]))
        gaps.append(float(logits[order[0]] - logits[order[1]]))
        if out[-1] in eog:
            break
        logits = forward(hp, w, np.array([out[-1]]), cache)[-1]
    return out, gaps


def read_eog(ref_path):
    """End-of-generation ids as the llama.cpp fixture lists them ("eog <n> <ids...>")."""
    for line in open(ref_path, encoding="utf-8", errors="surrogateescape"):
        if line.startswith("eog "):
            return set(int(v) for v in line.split()[2:])
    return set()


def read_cases(ref_path):
    cases, cur = [], None
    for line in open(ref_path, encoding="utf-8", errors="surrogateescape"):
        if line.startswith("case "):
            cur = {"header": line.strip()}
            cases.append(cur)
        elif line.startswith("tokens ") and cur is not None:
            ids = [int(v) for v in line.split()[2:]]
            cur["tokens"] = ids
    return cases


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("ref", nargs="?", help="llama.cpp fixture whose cases (token ids) to evaluate")
    ap.add_argument("out")
    ap.add_argument("--max-cases", type=int, default=100)
    ap.add_argument("--random-cases", help="comma-separated lengths of random-id cases instead of REF")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--greedy", type=int, default=64, help="greedy continuation length (0: none)")
    ap.add_argument("--full-logits-cases", type=int, default=2,
                    help="write the full last-position vector for the first N cases (keeps fixtures small)")
    a = ap.parse_args()
    hp, w = load(a.model)
    if a.random_cases:
        rng = np.random.default_rng(a.seed)
        n_vocab = w["output.weight"].shape[0]
        eog, cases = set(), []
        for i, length in enumerate(int(v) for v in a.random_cases.split(",")):
            cases.append({"header": "case %d random%d" % (i, length),
                          "tokens": [int(t) for t in rng.integers(0, n_vocab, length)]})
    else:
        eog = read_eog(a.ref)
        cases = read_cases(a.ref)[: a.max_cases]
    name = a.model.rsplit("/", 1)[-1]
    with open(a.out, "w") as f:
        f.write("# Pagoda float64 reference logits: tools/make_float_reference.py (NumPy %s, gguf-py dequantize)\n"
                % np.__version__)
        f.write("pagoda-float-ref 1\nmodel %s\nn_vocab %d\n" % (name, w["output.weight"].shape[0]))
        for index, c in enumerate(cases):
            toks = c["tokens"]
            logits = forward(hp, w, np.array(toks))
            f.write(c["header"] + "\n")
            f.write("tokens %d %s\n" % (len(toks), " ".join(map(str, toks))))
            for pos, row in enumerate(logits):
                top = np.argsort(-row, kind="stable")[:10]
                f.write("topk %d 10 %s\n" % (pos, " ".join("%d:%.6f" % (i, row[i]) for i in top)))
            if index < a.full_logits_cases:
                f.write("logits %d %d %s\n" % (len(toks) - 1, len(logits[-1]),
                                                " ".join("%.5f" % v for v in logits[-1])))
            if a.greedy > 0:
                ids, gaps = greedy(hp, w, toks, a.greedy, eog)
                f.write("greedy %d %s\n" % (len(ids), " ".join(map(str, ids))))
                f.write("greedy_gap %d %s\n" % (len(gaps), " ".join("%.5f" % g for g in gaps)))
            f.write("end\n")
            print(c["header"], "done", file=sys.stderr)


if __name__ == "__main__":
    main()
