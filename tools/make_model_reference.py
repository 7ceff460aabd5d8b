#!/usr/bin/env python3
"""Makes the end-to-end model reference fixtures tests/fixtures/models/*.ref.txt with llama.cpp
(through llama-cpp-python) as the independent reference, for stories260K and SmolLM2-135M-Instruct Q4_1.

For every prompt it records: llama.cpp's token ids (BOS as llama.cpp adds it), the argmax at every
prompt position, the top-10 (id, logit) pairs at every position, the full logit vector at the last
position for selected prompts, and a 64-token greedy continuation (argmax, lowest id on ties, no
penalties) with the top-1/top-2 logit gap at every step. It records all of this twice: from llama.cpp
on the file as it is, and (f32_ records) from llama.cpp on a temporary copy of the GGUF with every
tensor dequantized to F32, which is what an engine that dequantizes weights to f32 computes; the
latter is checked against an independent float64 numpy forward pass. The stories260K greedy output is
checked against the owners' golden. The file format is FORMAT below and in tools/README.md.

--measure writes nothing: it prints how much llama.cpp's logits move between its own CPU paths
(threads, whole prompt vs one token per eval, n_batch, f16 vs f32 KV cache) and how far they are from
the numpy forward pass, for the native file and the F32 copy; the tables are in tools/README.md.

Usage:
  pip install llama-cpp-python==0.3.36 gguf numpy
  scripts/fetch_model.sh
  python3 tools/make_model_reference.py            # writes tests/fixtures/models/
  python3 tools/make_model_reference.py --measure  # prints the precision tables
"""
import argparse
import hashlib
import os
import sys

import numpy as np

FORMAT = """\
# Format (text, one record per line, fields separated by single spaces; lines starting with '#' are comments):
#   pagoda-model-ref 1
#   model <file name> sha256 <hex> size <bytes>
#   n_vocab <n>
#   bos <id> eos <id> add_bos <0|1>            (ids of the GGUF; add_bos: llama.cpp prepends BOS)
#   eog <n> <ids...>                           (end-of-generation ids: greedy stops after one of them)
#   n_cases <n>
#   then n_cases blocks, records in this order:
#   case <index> <name>
#   special <0|1>                              (1: special tokens such as <|im_start|> were parsed in text)
#   text <escaped prompt>                      (escapes: \\\\ \\n \\r \\t and \\xHH for other bytes < 0x20
#                                               and 0x7f; all other bytes raw UTF-8; text runs to end of line)
#   tokens <n> <ids...>                        (llama.cpp's tokenization of text, BOS included if add_bos)
#   top1 <n> <ids...>                          (argmax of the logits after each of the n prompt tokens)
#   topk <pos> <k> <id>:<logit> ...            (n lines, pos = 0..n-1; k best, descending, ties by lower id)
#   logits <pos> <n_vocab> <v0> <v1> ...       (optional, at most once per case: the full vector at pos)
#   greedy <m> <ids...>                        (greedy continuation after the prompt; m <= 64, shorter
#                                               only when it ended with an eog id, which is included)
#   greedy_gap <m> <g...>                      (logit(top1) - logit(top2) at each greedy step; a step
#                                               with a tiny gap may legitimately flip in another engine)
#   greedy_text <escaped text>                 (the continuation's text as llama.cpp detokenizes it)
#   f32_top1, f32_topk (n lines), f32_logits (iff logits), f32_greedy, f32_greedy_gap, f32_greedy_text
#                                              (same layouts, from llama.cpp on the F32-dequantized copy)
#   maxdiff <x>                                (max |logits - f32 logits| over all prompt positions)
#   np64_maxdiff <x>                           (max |f32 logits - numpy float64 logits|, all positions)
#   end
# Logits are printed with %.6g.
"""

N_GREEDY = 64
TOP_K = 10
N_CTX = 512

STORIES_PROMPTS = [
    # (name, text, special, full_logits)
    ("once", "Once upon a time", False, True),
    ("ball", "Tom had a red ball.", False, True),
    ("park", "Lily went to the park with her mom. She saw a big dog.", False, True),
    ("quotes", "The sun was hot. Ben and Sue wanted to play in the water. \"Let's go!\" said Ben.\n"
               "They ran to the lake.", False, True),
    ("bird", "One day, a little bird named Pip flew over the big green hill. Pip saw a small cat who "
             "was sad. \"Why are you sad?\" asked Pip.", False, True),
    ("bytes", "Sara found 3 shells and 12 stones at the café.", False, True),
]

SMOLLM_PROMPTS = [
    ("capital", "The capital of France is", False, True),
    ("once", "Once upon a time", False, False),
    ("code", "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n", False, False),
    ("unicode", "Café naïve façade: 3.14159 × 2 = 6.28318. 日本語のテキスト 🙂 — done.", False, False),
    ("photosynthesis",
     "Photosynthesis is the process by which green plants, algae and some bacteria turn light energy "
     "into chemical energy. During this process, light is absorbed by chlorophyll, water is split, and "
     "oxygen is released as a by-product. The captured energy is stored in sugars, which the organism "
     "later uses to grow and to repair itself. Because nearly all life on Earth depends on it, directly "
     "or indirectly, photosynthesis is often described as", False, False),
    ("chatml", "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
     True, True),
    ("chat_template", None, True, False),  # text rendered from the GGUF's own chat template
]

MODELS = {
    "stories260K": ("/work/shared/models/stories260K.gguf", STORIES_PROMPTS, "stories260K.ref.txt"),
    "smollm2": (None, SMOLLM_PROMPTS, "smollm2-135m-instruct-q4_1.ref.txt"),
}


def default_smollm_path():
    d = os.environ.get("PAGODA_MODEL_DIR", os.path.expanduser("~/.cache/pagoda/models"))
    return os.path.join(d, "SmolLM2-135M-Instruct.Q4_1.gguf")


def escape(b: bytes) -> str:
    """Fixture text escaping; bytes >= 0x80 stay raw (as surrogate escapes until the file is written)."""
    out = bytearray()
    for c in b:
        if c == 0x5C:
            out += b"\\\\"
        elif c == 0x0A:
            out += b"\\n"
        elif c == 0x0D:
            out += b"\\r"
        elif c == 0x09:
            out += b"\\t"
        elif c < 0x20 or c == 0x7F:
            out += b"\\x%02x" % c
        else:
            out.append(c)
    return out.decode("utf-8", "surrogateescape")


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for blk in iter(lambda: f.read(1 << 20), b""):
            h.update(blk)
    return h.hexdigest()


def render_chat_template(model_path, user_msg):
    import gguf
    import jinja2
    r = gguf.GGUFReader(model_path)
    tmpl = r.fields["tokenizer.chat_template"].contents()
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(tmpl).render(messages=[{"role": "user", "content": user_msg}],
                                        add_generation_prompt=True)


# ---------------------------------------------------------------- llama.cpp side

def open_llama(path, n_threads=1, kv_f32=True, n_batch=N_CTX):
    import llama_cpp
    return llama_cpp.Llama(
        model_path=path, n_ctx=N_CTX, n_batch=n_batch, n_ubatch=n_batch, n_threads=n_threads,
        n_threads_batch=n_threads, logits_all=True, seed=0, n_gpu_layers=0, flash_attn=False,
        type_k=llama_cpp.GGML_TYPE_F32 if kv_f32 else llama_cpp.GGML_TYPE_F16,
        type_v=llama_cpp.GGML_TYPE_F32 if kv_f32 else llama_cpp.GGML_TYPE_F16,
        use_mmap=True, verbose=False)


def prompt_logits(llm, tokens, one_by_one=False):
    """Logits after each prompt token: float32 [len(tokens)][n_vocab]."""
    llm.reset()
    if one_by_one:
        for t in tokens:
            llm.eval([t])
    else:
        llm.eval(tokens)
    return np.array(llm.scores[: len(tokens)], dtype=np.float32, copy=True)


def greedy(llm, tokens, eog):
    """Greedy continuation after a full-prompt eval; returns (ids, gaps)."""
    logits = prompt_logits(llm, tokens)[-1]
    ids, gaps = [], []
    for _ in range(N_GREEDY):
        order = np.argsort(-logits, kind="stable")
        t = int(order[0])
        ids.append(t)
        gaps.append(float(logits[order[0]] - logits[order[1]]))
        if t in eog:
            break
        llm.eval([t])
        logits = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32, copy=True)
    return ids, gaps


def greedy_via_generate(llm, tokens, n):
    """llama-cpp-python's own sampler chain with greedy settings, as a cross-check of greedy()."""
    llm.reset()
    out = []
    for t in llm.generate(tokens, top_k=1, top_p=1.0, min_p=0.0, typical_p=1.0, temp=0.0,
                          repeat_penalty=1.0, frequency_penalty=0.0, presence_penalty=0.0,
                          reset=True):
        out.append(t)
        if len(out) >= n:
            break
    return out


def eog_ids(llm):
    import llama_cpp
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    return [t for t in range(llm.n_vocab()) if llama_cpp.llama_vocab_is_eog(vocab, t)]


def vocab_flags(llm):
    import llama_cpp
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    return (llama_cpp.llama_vocab_bos(vocab), llama_cpp.llama_vocab_eos(vocab),
            int(bool(llama_cpp.llama_vocab_get_add_bos(vocab))))


def cases_for(key, model_path):
    out = []
    for name, text, special, full in MODELS[key][1]:
        if text is None:
            text = render_chat_template(model_path, "What is the capital of France?")
        out.append((name, text, special, full))
    return out


def llama_cpp_version_line():
    import llama_cpp
    info = llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip()
    return "llama-cpp-python %s (vendored llama.cpp ggml-org/llama.cpp@0c1e57098 for 0.3.36); %s" % (
        llama_cpp.__version__, info)


def dequantize_to_f32_gguf(src, dst):
    """Writes a copy of the GGUF src with every tensor dequantized to F32 (same metadata, file_type 0)."""
    import gguf
    r = gguf.GGUFReader(src)
    w = gguf.GGUFWriter(dst, r.fields["general.architecture"].contents())
    for k, f in r.fields.items():
        if k.startswith("GGUF.") or k == "general.architecture":
            continue
        vt = f.types[0]
        val = 0 if k == "general.file_type" else f.contents()
        w.add_key_value(k, val, vt, sub_type=f.types[1] if vt == gguf.GGUFValueType.ARRAY else None)
    for t in r.tensors:
        a = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        w.add_tensor(t.name, a.reshape([int(s) for s in reversed(t.shape)]))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def is_all_f32(model_path):
    import gguf
    return all(t.tensor_type == gguf.GGMLQuantizationType.F32 for t in gguf.GGUFReader(model_path).tensors)


def run_case(llm, tokens, eog, tag):
    """Prompt logits, greedy continuation (cross-checked with Llama.generate) and its text."""
    lg = prompt_logits(llm, tokens)
    g_ids, g_gaps = greedy(llm, tokens, eog)
    check = greedy_via_generate(llm, tokens, len(g_ids))
    if check != g_ids:
        print("warning: %s: Llama.generate greedy differs from the argmax loop: %s vs %s"
              % (tag, check, g_ids), file=sys.stderr)
    all_text = llm.detokenize(tokens + g_ids)
    p_text = llm.detokenize(tokens)
    g_text = all_text[len(p_text):] if all_text.startswith(p_text) else llm.detokenize(g_ids)
    return lg, g_ids, g_gaps, g_text


def case_lines(prefix, res, full):
    lg, g_ids, g_gaps, g_text = res
    out = []
    top1 = [int(np.argmax(row)) for row in lg]
    out.append("%stop1 %d %s" % (prefix, len(top1), " ".join(map(str, top1))))
    for pos, row in enumerate(lg):
        order = np.argsort(-row, kind="stable")[:TOP_K]
        out.append("%stopk %d %d %s" % (prefix, pos, TOP_K, " ".join("%d:%.6g" % (i, row[i]) for i in order)))
    if full:
        pos = len(lg) - 1
        out.append("%slogits %d %d %s" % (prefix, pos, lg.shape[1], " ".join("%.6g" % v for v in lg[pos])))
    out.append("%sgreedy %d %s" % (prefix, len(g_ids), " ".join(map(str, g_ids))))
    out.append("%sgreedy_gap %d %s" % (prefix, len(g_gaps), " ".join("%.4g" % g for g in g_gaps)))
    out.append("%sgreedy_text %s" % (prefix, escape(g_text)))
    return out


def write_fixture(key, model_path, out_dir, tmp_dir):
    import tempfile
    llm = open_llama(model_path)
    eog = eog_ids(llm)
    bos, eos, add_bos = vocab_flags(llm)
    cases = cases_for(key, model_path)
    f32_path = None
    if not is_all_f32(model_path):
        fd, f32_path = tempfile.mkstemp(suffix=".f32.gguf", dir=tmp_dir)
        os.close(fd)
        print("writing a dequantized F32 copy %s" % f32_path, file=sys.stderr)
        dequantize_to_f32_gguf(model_path, f32_path)
    llm32 = open_llama(f32_path) if f32_path else llm
    lines = []
    lines.append("# Pagoda end-to-end model reference: %s" % os.path.basename(model_path))
    lines.append("# Made by tools/make_model_reference.py with %s" % llama_cpp_version_line())
    lines.append("# Settings: n_ctx=%d n_batch=n_ubatch=%d n_threads=n_threads_batch=1 logits_all=True "
                 "type_k=type_v=F32 flash_attn=False n_gpu_layers=0 seed=0; prompt evaluated as one batch."
                 % (N_CTX, N_CTX))
    lines.append("# greedy = argmax (lowest id on ties) of llama.cpp's logits, one token per eval, no "
                 "repeat/frequency/presence penalty (equal to Llama.generate(top_k=1, temp=0, "
                 "repeat_penalty=1.0), checked).")
    lines.append("# tokenization: Llama.tokenize(text, add_bos=True, special=<special>).")
    lines.append("# f32_* records: llama.cpp on a copy of this GGUF with every tensor dequantized to F32 (%s)."
                 % ("here identical to the plain records: the model is all F32" if not f32_path else
                    "no activation quantization: what an engine that dequantizes weights to f32 computes"))
    lines.append("# np64_maxdiff: max |f32_ logits - logits of an independent float64 numpy forward pass| "
                 "over all prompt positions (validates the f32_ records).")
    lines.extend(FORMAT.rstrip("\n").split("\n"))
    lines.append("pagoda-model-ref 1")
    lines.append("model %s sha256 %s size %d" % (os.path.basename(model_path), sha256_file(model_path),
                                                 os.path.getsize(model_path)))
    lines.append("n_vocab %d" % llm.n_vocab())
    lines.append("bos %d eos %d add_bos %d" % (bos, eos, add_bos))
    lines.append("eog %d %s" % (len(eog), " ".join(map(str, eog))))
    lines.append("n_cases %d" % len(cases))
    results = {}
    try:
        for ci, (name, text, special, full) in enumerate(cases):
            tag = "%s/%s" % (key, name)
            tokens = llm.tokenize(text.encode("utf-8"), add_bos=True, special=special)
            if llm32 is not llm:
                assert llm32.tokenize(text.encode("utf-8"), add_bos=True, special=special) == tokens
            res = run_case(llm, tokens, eog, tag)
            res32 = run_case(llm32, tokens, eog, tag + "/f32") if llm32 is not llm else res
            np64 = np_forward(model_path, tokens)
            np_diff = float(np.abs(res32[0].astype(np.float64) - np64).max())
            if np_diff > 1e-3:
                sys.exit("%s: llama.cpp F32 and numpy float64 disagree by %.3g" % (tag, np_diff))
            lines.append("case %d %s" % (ci, name))
            lines.append("special %d" % int(special))
            lines.append("text " + escape(text.encode("utf-8")))
            lines.append("tokens %d %s" % (len(tokens), " ".join(map(str, tokens))))
            lines.extend(case_lines("", res, full))
            lines.extend(case_lines("f32_", res32, full))
            lines.append("maxdiff %.4g" % float(np.abs(res[0] - res32[0]).max()))
            lines.append("np64_maxdiff %.3g" % np_diff)
            lines.append("end")
            same = 0
            while same < min(len(res[1]), len(res32[1])) and res[1][same] == res32[1][same]:
                same += 1
            results[name] = (tokens, res[1], res[3], res32[1])
            print("%s: %d prompt tokens, %d greedy tokens (f32 copy agrees on the first %d; max logit diff "
                  "%.3g; numpy %.2g): %r" % (tag, len(tokens), len(res[1]), same,
                                             np.abs(res[0] - res32[0]).max(), np_diff,
                                             res[3][:50]), file=sys.stderr)
    finally:
        if f32_path:
            os.unlink(f32_path)
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, MODELS[key][2])
    with open(path, "w", encoding="utf-8", errors="surrogateescape", newline="\n") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote %s (%d bytes)" % (path, os.path.getsize(path)), file=sys.stderr)
    _, back = parse_fixture(path)  # the file must read back to what was computed
    for c, (name, _, _, _) in zip(back, cases):
        r = results[name]
        assert c["name"] == name and c["tokens"] == r[0] and c["greedy"] == r[1] and c["f32_greedy"] == r[3]
    return results


def parse_fixture(path):
    """Reads a fixture back the way a C reader would (strict counts); returns (header, cases)."""
    header, cases, cur = {}, [], None
    with open(path, "rb") as f:
        for raw in f:
            line = raw.rstrip(b"\n")
            if not line or line.startswith(b"#"):
                continue
            key, _, rest = line.partition(b" ")
            key = key.decode()
            base = key[4:] if key.startswith("f32_") else key
            if key == "case":
                cur = {"topk": [], "f32_topk": [], "name": rest.split(b" ")[1].decode()}
                continue
            if cur is None:
                header[key] = rest.decode("utf-8", "surrogateescape")
                continue
            if base in ("text", "greedy_text"):
                cur[key] = rest
            elif key == "special":
                cur[key] = int(rest)
            elif key in ("maxdiff", "np64_maxdiff"):
                cur[key] = float(rest)
            elif base in ("tokens", "top1", "greedy"):
                v = [int(x) for x in rest.split()]
                assert v[0] == len(v) - 1, (path, key)
                cur[key] = v[1:]
            elif base == "greedy_gap":
                v = rest.split()
                assert int(v[0]) == len(v) - 1
                cur[key] = [float(x) for x in v[1:]]
            elif base == "topk":
                v = rest.split()
                assert int(v[0]) == len(cur[key]) and int(v[1]) == len(v) - 2
                cur[key].append([(int(a), float(b)) for a, b in (x.split(b":") for x in v[2:])])
            elif base == "logits":
                v = rest.split()
                assert int(v[1]) == len(v) - 2
                cur[key] = (int(v[0]), np.array([float(x) for x in v[2:]]))
            elif key == "end":
                n = len(cur["tokens"])
                for p in ("", "f32_"):
                    assert len(cur[p + "top1"]) == n and len(cur[p + "topk"]) == n
                    assert [row[0][0] for row in cur[p + "topk"]] == cur[p + "top1"]
                    assert len(cur[p + "greedy_gap"]) == len(cur[p + "greedy"])
                cases.append(cur)
                cur = None
            else:
                raise ValueError("%s: unknown record %r" % (path, key))
    assert int(header["n_cases"]) == len(cases)
    return header, cases


def check_stories_golden(results, shared_dir):
    """The owners' golden: greedy 64 tokens from 'Once upon a time' (prompt ids included in 'ids')."""
    import ast
    path = os.path.join(shared_dir, "stories260K.greedy64.once-upon-a-time.ids")
    with open(path) as f:
        txt = f.read().split("\n")
    want_prompt = ast.literal_eval(txt[0].split("tokens", 1)[1].strip())
    want_ids = ast.literal_eval(txt[1].split("ids", 1)[1].strip())
    tokens, g_ids = results["once"][:2]
    ok_prompt = tokens == want_prompt
    seq = tokens[1:] + g_ids  # golden 'ids' = prompt without BOS followed by the continuation
    n = min(len(seq), len(want_ids))
    ok_ids = seq[:n] == want_ids[:n]
    print("stories260K golden: prompt tokens %s, first %d ids %s" % (
        "match" if ok_prompt else "DIFFER", n, "match" if ok_ids else "DIFFER"), file=sys.stderr)
    return ok_prompt and ok_ids


# ---------------------------------------------------------------- numpy float64 forward pass

def quantize_act_q8(x):
    """Round-trips activations through 8-bit blocks of 32 (d = amax/127 stored as f16, like ggml's Q8_0/
    Q8_1) to show the size of the effect of llama.cpp quantizing activations before a matmul with
    quantized weights. Not an exact emulation: llama.cpp's batched kernels differ in detail (measured:
    this moves logits as much as llama.cpp does, but not in the same way). Used by --measure only."""
    shp = x.shape
    b = x.reshape(-1, 32).astype(np.float32)
    amax = np.abs(b).max(axis=1, keepdims=True)
    d = amax / np.float32(127)
    inv = np.where(d > 0, np.float32(1) / np.where(d > 0, d, 1), 0).astype(np.float32)
    q = np.round(b * inv)
    return (q * d.astype(np.float16).astype(np.float32)).astype(x.dtype).reshape(shp)


_WEIGHTS = {}  # (model path, tensor name) -> dequantized float32 array [rows][cols]


def np_forward(model_path, tokens, act_q8=False, dtype=np.float64):
    """Independent llama forward pass over dequantized weights (ggml's dequantization: float32 values
    d*q (+m)), computed in dtype (float64 by default): logits [n][n_vocab].
    act_q8: also emulate llama.cpp's quantization of activations before quantized-weight matmuls."""
    import gguf
    r = gguf.GGUFReader(model_path)

    def kv(key, default=None):
        return r.fields[key].contents() if key in r.fields else default
    arch = kv("general.architecture")
    n_embd = kv(arch + ".embedding_length")
    n_head = kv(arch + ".attention.head_count")
    n_head_kv = kv(arch + ".attention.head_count_kv", n_head)
    n_layer = kv(arch + ".block_count")
    eps = kv(arch + ".attention.layer_norm_rms_epsilon")
    base = kv(arch + ".rope.freq_base", 10000.0)
    hd = n_embd // n_head
    tensors = {t.name: t for t in r.tensors}

    def mm(x, name):  # x [n][in] times weight [out][in]
        t = tensors[name]
        if act_q8 and t.tensor_type not in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16):
            x = quantize_act_q8(x)
        return x @ w(name).T

    def w(name):
        if (model_path, name) not in _WEIGHTS:
            t = tensors[name]
            a = gguf.quants.dequantize(t.data, t.tensor_type)
            shape = [int(s) for s in reversed(t.shape)]
            _WEIGHTS[(model_path, name)] = np.asarray(a, dtype=np.float32).reshape(shape)
        return _WEIGHTS[(model_path, name)].astype(dtype)

    def rms(x, g):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + dtype(eps)) * g

    n = len(tokens)
    pos = np.arange(n, dtype=np.float64)
    inv = base ** (-np.arange(0, hd, 2, dtype=np.float64) / hd)
    ang = pos[:, None] * inv[None, :]
    cos, sin = np.cos(ang)[:, None, :].astype(dtype), np.sin(ang)[:, None, :].astype(dtype)

    def rope(x):  # x [n][heads][hd], adjacent pairs (llama.cpp ROPE_TYPE_NORM)
        x0, x1 = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2] = x0 * cos - x1 * sin
        out[..., 1::2] = x0 * sin + x1 * cos
        return out

    emb = w("token_embd.weight")
    x = emb[tokens]
    mask = np.triu(np.full((n, n), -np.inf, dtype=dtype), 1)
    grp = n_head // n_head_kv
    for il in range(n_layer):
        p = "blk.%d." % il
        h = rms(x, w(p + "attn_norm.weight"))
        q = rope(mm(h, p + "attn_q.weight").reshape(n, n_head, hd))
        k = rope(mm(h, p + "attn_k.weight").reshape(n, n_head_kv, hd))
        v = mm(h, p + "attn_v.weight").reshape(n, n_head_kv, hd)
        att = np.empty((n, n_head, hd), dtype=dtype)
        for hh in range(n_head):
            s = q[:, hh, :] @ k[:, hh // grp, :].T / dtype(np.sqrt(hd)) + mask
            s = np.exp(s - s.max(axis=1, keepdims=True))
            s /= s.sum(axis=1, keepdims=True)
            att[:, hh, :] = s @ v[:, hh // grp, :]
        x = x + mm(att.reshape(n, n_embd), p + "attn_output.weight")
        h = rms(x, w(p + "ffn_norm.weight"))
        g = mm(h, p + "ffn_gate.weight")
        u = mm(h, p + "ffn_up.weight")
        x = x + mm(g / (1.0 + np.exp(-g)) * u, p + "ffn_down.weight")
    h = rms(x, w("output_norm.weight"))
    return mm(h, "output.weight" if "output.weight" in tensors else "token_embd.weight")


# ---------------------------------------------------------------- measurements

def measure_table(title, ref_name, base_by_case, others_by_case):
    """Prints one markdown table: every variant against the reference logits, over all prompts."""
    names = list(others_by_case[0].keys())
    print("\n### %s" % title)
    ma = np.concatenate([np.abs(b).max(axis=1) for b in base_by_case])
    srt = [np.sort(b, axis=1) for b in base_by_case]
    gap = np.concatenate([s[:, -1] - s[:, -2] for s in srt])
    print("reference: %s. max|logit| per position: median %.2f, min %.2f, max %.2f; "
          "top1-top2 gap: median %.3f, min %.4f; %d positions"
          % (ref_name, np.median(ma), ma.min(), ma.max(), np.median(gap), gap.min(), len(ma)))
    print("\n| variant | max abs diff | p99 abs diff | mean abs diff | max (diff / max abs logit) "
          "| top-1 agreement |")
    print("|---|---|---|---|---|---|")
    for vn in names:
        d_all = [np.abs(o[vn].astype(np.float64) - b.astype(np.float64))
                 for o, b in zip(others_by_case, base_by_case)]
        flat = np.concatenate([d.ravel() for d in d_all])
        rel = max((d.max(axis=1) / np.abs(b).max(axis=1)).max() for d, b in zip(d_all, base_by_case))
        agree = np.concatenate([np.argmax(o[vn], 1) == np.argmax(b, 1)
                                for o, b in zip(others_by_case, base_by_case)])
        print("| %s | %.3g | %.3g | %.3g | %.3g | %d/%d |" % (
            vn, flat.max(), np.percentile(flat, 99), flat.mean(), rel, agree.sum(), len(agree)))


def measure(key, model_path, tmp_dir):
    """Spreads of llama.cpp's own CPU paths and distances to numpy, for the native file and (if it is
    quantized) its F32-dequantized copy."""
    import tempfile
    cases = cases_for(key, model_path)
    print("\n## %s (%s)" % (key, os.path.basename(model_path)))
    f32_path = None
    if not is_all_f32(model_path):
        fd, f32_path = tempfile.mkstemp(suffix=".f32.gguf", dir=tmp_dir)
        os.close(fd)
        dequantize_to_f32_gguf(model_path, f32_path)
    try:
        bases = [("native file", model_path)] + ([("F32-dequantized copy", f32_path)] if f32_path else [])
        base_logits = {}
        for label, path in bases:
            ref = open_llama(path, n_threads=1)
            variants = {
                "llama.cpp n_threads=2": (open_llama(path, n_threads=2), False),
                "llama.cpp one token per eval": (ref, True),
                "llama.cpp n_batch=16": (open_llama(path, n_threads=1, n_batch=16), False),
                "llama.cpp KV cache f16": (open_llama(path, n_threads=1, kv_f32=False), False),
            }
            b_by_case, o_by_case = [], []
            for name, text, special, _ in cases:
                tokens = ref.tokenize(text.encode("utf-8"), add_bos=True, special=special)
                base = prompt_logits(ref, tokens)
                others = {vn: prompt_logits(llm, tokens, one_by_one=obo) for vn, (llm, obo) in variants.items()}
                if label == bases[-1][0]:
                    others["numpy float64 (dequantized weights)"] = np_forward(model_path, tokens)
                    others["numpy float32 (dequantized weights)"] = np_forward(model_path, tokens,
                                                                               dtype=np.float32)
                if f32_path and label == "native file":
                    others["numpy float64 + emulated Q8 activations"] = np_forward(model_path, tokens,
                                                                                   act_q8=True)
                b_by_case.append(base)
                o_by_case.append(others)
            base_logits[label] = b_by_case
            measure_table("%s: variants against llama.cpp on the %s" % (key, label),
                          "llama.cpp, %s, 1 thread, whole prompt in one batch, KV cache F32" % label,
                          b_by_case, o_by_case)
        if f32_path:
            measure_table("%s: llama.cpp on the native file against llama.cpp on the F32 copy" % key,
                          "llama.cpp on the F32-dequantized copy", base_logits["F32-dequantized copy"],
                          [{"llama.cpp on the native (quantized) file": b} for b in base_logits["native file"]])
    finally:
        if f32_path:
            os.unlink(f32_path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                                      "tests", "fixtures", "models"))
    ap.add_argument("--smollm2", default=None, help="path of SmolLM2-135M-Instruct.Q4_1.gguf "
                    "(default: scripts/fetch_model.sh's cache)")
    ap.add_argument("--shared", default="/work/shared/models", help="owners' models directory")
    ap.add_argument("--tmp-dir", default=None, help="where the temporary F32 copy (about 540 MB for "
                    "SmolLM2) is written; default $TMPDIR or /tmp")
    ap.add_argument("--measure", action="store_true", help="print precision tables, write nothing")
    ap.add_argument("--only", choices=sorted(MODELS), help="one model only")
    args = ap.parse_args()
    paths = {"stories260K": os.path.join(args.shared, "stories260K.gguf"),
             "smollm2": args.smollm2 or default_smollm_path()}
    keys = [args.only] if args.only else ["stories260K", "smollm2"]
    for k in keys:
        if not os.path.exists(paths[k]):
            sys.exit("missing model %s (for SmolLM2 run scripts/fetch_model.sh)" % paths[k])
    if args.measure:
        print(llama_cpp_version_line())
        for k in keys:
            measure(k, paths[k], args.tmp_dir)
        return
    ok = True
    for k in keys:
        res = write_fixture(k, paths[k], os.path.normpath(args.out_dir), args.tmp_dir)
        if k == "stories260K":
            ok = check_stories_golden(res, args.shared) and ok
    if not ok:
        sys.exit("reference setup does not reproduce the owners' stories260K golden")


if __name__ == "__main__":
    main()
