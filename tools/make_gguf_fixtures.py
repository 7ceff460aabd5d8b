#!/usr/bin/env python3
"""tools/make_gguf_fixtures.py - GGUF fixtures for tests/test_gguf.c, made by an independent writer.

Writes into tests/fixtures/gguf/:
  all_types.gguf     the PyPI `gguf` package's GGUFWriter: v3, every metadata value type, arrays
                     of every fixed-size type and of strings, 6 tensors of several types and ranks
  align64.gguf       the same writer with general.alignment = 64 and odd-sized tensors
  v2.gguf            all_types.gguf with the version field patched to 2 (same layout on LE files)
  tiny.gguf          a minimal file (2 kv, 1 tensor): a small seed for the fuzzer
  <name>.expect      what a correct reader must see in <name>.gguf (format below)
  gen_<shape>.expect what `pagoda gen-model --shape <shape> --type F32 --seed S` must write for
                     the toy shapes: this script re-implements gen_model.c's specification
                     (metadata, synthetic tokenizer, tensor list, splitmix64 + Irwin-Hall weights,
                     llama3 rope factors) in numpy, writes it with GGUFWriter to a temporary file
                     and describes that file (tensor data as hashes)
  shared.expect      the same for /work/shared/models/*.gguf and /work/shared/tokenizer-tests/*.gguf,
                     extracted with gguf.GGUFReader (paths are relative to the shared folder)

.expect format, one record per line, fields separated by single spaces; every key, name and
string is hex-encoded UTF-8 ("-" for the empty string) so no quoting is needed:
  file <relpath-hex>
  header <version> <n_kv> <n_tensors> <alignment> <data_offset> <file_bytes>
  kv <key> <type> <value>                       scalar: integers decimal, bool 0/1, floats as
                                                Python repr of the exact double, strings hex
  arr <key> <elem_type> <n> full <v0> <v1> ...  arrays of at most 64 elements (any length in the
                                                synthetic files), values as above
  arr <key> <elem_type> <n> hash <fnv1a64>      longer arrays: FNV-1a 64 over the raw little-endian
                                                elements, or over (u64 length + bytes) per string
  tensor <name> <type> <n_dims> <ne0..> <offset> <n_bytes> <fnv1a64-of-data> [<data-hex>]
                                                offset is relative to the data section; the data
                                                hex is present for the small synthetic files only
  end
The C test rebuilds all_types.gguf and align64.gguf from their .expect with Pagoda's writer and
checks the bytes are identical to what GGUFWriter produced.

Usage: python3 tools/make_gguf_fixtures.py [--shared /work/shared]
"""
import argparse
import glob
import os
import struct

import numpy as np
import gguf
from gguf import GGUFValueType as VT, GGMLQuantizationType as QT

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "gguf")


def hx(s):
    b = s.encode("utf-8") if isinstance(s, str) else bytes(s)
    return b.hex() if b else "-"


def fnv1a64(buf):
    """FNV-1a 64 over a bytes object."""
    h = 0xCBF29CE484222325
    for byte in buf:
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


FIXED = {VT.UINT8: "<B", VT.INT8: "<b", VT.UINT16: "<H", VT.INT16: "<h", VT.UINT32: "<I",
         VT.INT32: "<i", VT.FLOAT32: "<f", VT.UINT64: "<Q", VT.INT64: "<q", VT.FLOAT64: "<d",
         VT.BOOL: "<?"}


def fmt_value(vtype, raw):
    """raw: bytes of one element as stored in the file (fixed types) or the string bytes."""
    if vtype == VT.STRING:
        return hx(raw)
    v = struct.unpack(FIXED[vtype], raw)[0]
    if vtype in (VT.FLOAT32, VT.FLOAT64):
        return repr(float(v))
    return str(int(v))


def describe(path, relpath, with_data):
    """The .expect lines for one GGUF file, read with gguf.GGUFReader."""
    r = gguf.GGUFReader(path)
    fields = [f for f in r.fields.values() if not f.name.startswith("GGUF.")]
    version = int(r.fields["GGUF.version"].parts[-1][0])
    lines = ["file " + hx(relpath),
             "header %d %d %d %d %d %d" % (version, len(fields), len(r.tensors), r.alignment,
                                          r.data_offset, os.path.getsize(path))]
    for f in fields:
        t0 = f.types[0]
        if t0 != VT.ARRAY:
            raw = f.parts[f.data[0]].tobytes()
            lines.append("kv %s %d %s" % (hx(f.name), int(t0), fmt_value(t0, raw)))
            continue
        et = f.types[-1]
        elems = [f.parts[i].tobytes() for i in f.data]
        if len(elems) <= 64 or with_data:
            vals = " ".join(fmt_value(et, e) for e in elems)
            lines.append(("arr %s %d %d full %s" % (hx(f.name), int(et), len(elems), vals)).rstrip())
        else:
            if et == VT.STRING:
                blob = b"".join(struct.pack("<Q", len(e)) + e for e in elems)
            else:
                blob = b"".join(elems)
            lines.append("arr %s %d %d hash %d" % (hx(f.name), int(et), len(elems), fnv1a64(blob)))
    for t in r.tensors:
        data = t.data.tobytes()
        assert len(data) == t.n_bytes
        ne = [int(x) for x in t.shape]
        rec = "tensor %s %d %d %s %d %d %d" % (hx(t.name), int(t.tensor_type), len(ne),
                                              " ".join(map(str, ne)), t.data_offset - r.data_offset,
                                              t.n_bytes, fnv1a64(data))
        if with_data:
            rec += " " + (data.hex() or "-")
        lines.append(rec)
    lines.append("end")
    return lines


def add_all_types(w):
    """Every scalar type, a UTF-8 string, an empty string, and an array of every element type."""
    w.add_uint8("t.u8", 200)
    w.add_int8("t.i8", -100)
    w.add_uint16("t.u16", 60000)
    w.add_int16("t.i16", -30000)
    w.add_uint32("t.u32", 4000000000)
    w.add_int32("t.i32", -2000000000)
    w.add_float32("t.f32", 3.14159)
    w.add_uint64("t.u64", 18000000000000000000)
    w.add_int64("t.i64", -9000000000000000000)
    w.add_float64("t.f64", -2.718281828459045e-300)
    w.add_bool("t.bool_true", True)
    w.add_bool("t.bool_false", False)
    w.add_string("t.str", "h\u00e9llo w\u00f6rld \U0001F600 with spaces")
    w.add_key_value("t.str_empty", "", VT.STRING)
    w.add_key_value("t.arr_u8", [0, 1, 255], VT.ARRAY, VT.UINT8)
    w.add_key_value("t.arr_i8", [-128, 0, 127], VT.ARRAY, VT.INT8)
    w.add_key_value("t.arr_u16", [0, 65535, 7], VT.ARRAY, VT.UINT16)
    w.add_key_value("t.arr_i16", [-32768, 32767], VT.ARRAY, VT.INT16)
    w.add_key_value("t.arr_u32", [1, 2, 3, 4294967295], VT.ARRAY, VT.UINT32)
    w.add_key_value("t.arr_i32", [-1, 0, 2147483647, -2147483648], VT.ARRAY, VT.INT32)
    w.add_key_value("t.arr_f32", [0.5, -1.25, 1e-30, 3.0e38], VT.ARRAY, VT.FLOAT32)
    w.add_key_value("t.arr_u64", [0, 2**64 - 1], VT.ARRAY, VT.UINT64)
    w.add_key_value("t.arr_i64", [-(2**63), 2**63 - 1, 5], VT.ARRAY, VT.INT64)
    w.add_key_value("t.arr_f64", [1.0 / 3.0, -1e300], VT.ARRAY, VT.FLOAT64)
    w.add_key_value("t.arr_bool", [True, False, True], VT.ARRAY, VT.BOOL)
    w.add_key_value("t.arr_str", ["a", "", "b c", "\u00fcn\u00efc\u00f6d\u00e9"], VT.ARRAY, VT.STRING)
    w.add_key_value("t.arr_long", list(range(100)), VT.ARRAY, VT.INT32)  # hashed in the .expect


def add_tensors(w, rng):
    w.add_tensor("t.f32", rng.standard_normal((3, 5)).astype(np.float32))      # ne = {5, 3}
    w.add_tensor("t.f16", rng.standard_normal((3, 2, 4)).astype(np.float16))   # ne = {4, 2, 3}
    w.add_tensor("t.i32", np.arange(-3, 4, dtype=np.int32))                    # ne = {7}
    q8 = rng.integers(0, 256, size=(2, 2 * 34), dtype=np.uint8)                # 2 rows of 64
    w.add_tensor("t.q8_0", q8, raw_dtype=QT.Q8_0)                              # ne = {64, 2}
    bf = rng.integers(0, 256, size=(2, 8), dtype=np.uint8)                     # 2 rows of 4
    w.add_tensor("t.bf16", bf, raw_dtype=QT.BF16)                              # ne = {4, 2}
    w.add_tensor("t.4d", rng.standard_normal((2, 1, 3, 2)).astype(np.float32)) # ne = {2, 3, 1, 2}


def write(path, build):
    w = gguf.GGUFWriter(path, arch="testarch")
    build(w)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# ---- gen-model reference (an independent re-implementation of src/model/gen_model.c's spec) ----

GEN_SHAPES = {  # name: (arch, pre, vocab, ctx, embd, layers, heads, kv heads, head_dim, ffn,
                #        rope base, rms eps, tied, qkv bias, llama3 rope (factor, low, high, orig))
    "tiny": ("llama", "default", 512, 512, 256, 2, 4, 2, 64, 512, 10000.0, 1e-5, False, False, None),
    "tiny-llama3": ("llama", "llama-bpe", 512, 2048, 256, 2, 4, 2, 64, 512, 500000.0, 1e-5, True,
                    False, (32.0, 1.0, 4.0, 8192)),
    "tiny-qwen2": ("qwen2", "qwen2", 512, 512, 256, 2, 4, 2, 64, 512, 1000000.0, 1e-6, True, True, None),
}
GEN_SEEDS = {"tiny": 1, "tiny-llama3": 2, "tiny-qwen2": 3}
M64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def mix64(z):
    """splitmix64's output function on a numpy uint64 array (wrapping arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def gen_rows(seed, tensor, n_rows, n):
    """[n_rows, n] float32 N(0,1)-ish values: row r's stream starts at
    mix(seed ^ K*(tensor+1) + golden) ^ r; element i is the Irwin-Hall(4) sum of the 16-bit
    quarters of mix(state + (i+1)*golden), centred and scaled by sqrt(3)/65536 in f32."""
    with np.errstate(over="ignore"):
        s0 = (seed ^ ((0xD1B54A32D192ED03 * (tensor + 1)) & M64)) & M64
        s1 = int(mix64(np.array([(s0 + GOLDEN) & M64], dtype=np.uint64))[0])
        state = np.uint64(s1) ^ np.arange(n_rows, dtype=np.uint64)
        steps = np.arange(1, n + 1, dtype=np.uint64) * np.uint64(GOLDEN)
        z = mix64(state[:, None] + steps[None, :])
    m = np.uint64(0xFFFF)
    total = (z & m) + ((z >> np.uint64(16)) & m) + ((z >> np.uint64(32)) & m) + (z >> np.uint64(48))
    scale = np.float32(np.float32(1.7320508) / np.float32(65536.0))
    return (total.astype(np.float32) - np.float32(131071.0)) * scale


def gpt2_byte_char(b):
    printable = lambda c: 33 <= c <= 126 or 161 <= c <= 172 or c >= 174  # noqa: E731
    if printable(b):
        return chr(b)
    return chr(256 + sum(1 for c in range(b) if not printable(c)))


def synth_vocab(n):
    first = [ord(c) for c in " abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"]
    order = first + [b for b in range(256) if b not in first]
    tokens = [gpt2_byte_char(b) for b in range(256)]
    queue, merges, head = list(order), [], 0
    while len(tokens) < n - 2:
        prefix = tokens[queue[head]]
        head += 1
        for b in order:
            if len(tokens) >= n - 2:
                break
            merges.append(prefix + " " + gpt2_byte_char(b))
            queue.append(len(tokens))
            tokens.append(prefix + gpt2_byte_char(b))
    tokens += ["<|begin_of_text|>", "<|end_of_text|>"]
    types = [1] * (n - 2) + [3, 3]
    return tokens, types, merges


def llama3_rope_factors(base, head_dim, factor, low, high, orig):
    import math
    out = []
    for i in range(head_dim // 2):
        freq = 1.0 / math.pow(base, (2 * i) / head_dim)
        wavelen = 2.0 * math.pi / freq
        if wavelen < orig / high:
            out.append(1.0)
        elif wavelen > orig / low:
            out.append(factor)
        else:
            smooth = (orig / wavelen - low) / (high - low)
            out.append(1.0 / ((1.0 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def gen_reference(path, name, seed):
    (arch, pre, n_vocab, n_ctx, n_embd, n_layer, n_head, n_kv, hd, n_ff, base, eps, tied, bias,
     llama3) = GEN_SHAPES[name]
    w = gguf.GGUFWriter(path, arch=arch)
    w.add_string("general.name", "%s (random weights, seed %d)" % (name, seed))
    for key, v in (("context_length", n_ctx), ("embedding_length", n_embd),
                   ("feed_forward_length", n_ff), ("block_count", n_layer),
                   ("attention.head_count", n_head), ("attention.head_count_kv", n_kv)):
        w.add_uint32(arch + "." + key, v)
    w.add_float32(arch + ".rope.freq_base", base)
    w.add_float32(arch + ".attention.layer_norm_rms_epsilon", eps)
    assert n_head * hd == n_embd
    w.add_uint32("general.file_type", 0)
    if arch == "llama":
        w.add_uint32("llama.vocab_size", n_vocab)
        w.add_uint32("llama.rope.dimension_count", hd)
    w.add_uint32("general.quantization_version", 2)
    tokens, types, merges = synth_vocab(n_vocab)
    w.add_string("tokenizer.ggml.model", "gpt2")
    w.add_string("tokenizer.ggml.pre", pre)
    w.add_key_value("tokenizer.ggml.tokens", tokens, VT.ARRAY, VT.STRING)
    w.add_key_value("tokenizer.ggml.token_type", types, VT.ARRAY, VT.INT32)
    w.add_key_value("tokenizer.ggml.merges", merges, VT.ARRAY, VT.STRING)
    w.add_uint32("tokenizer.ggml.bos_token_id", n_vocab - 2)
    w.add_uint32("tokenizer.ggml.eos_token_id", n_vocab - 1)
    w.add_bool("tokenizer.ggml.add_bos_token", arch != "qwen2")

    tensors = []  # (name, kind, ne0, ne1)
    if llama3:
        tensors.append(("rope_freqs.weight", "rope", hd // 2, 1))
    tensors.append(("token_embd.weight", "matrix", n_embd, n_vocab))
    for l in range(n_layer):
        b = "blk.%d." % l
        tensors += [(b + "attn_norm.weight", "norm", n_embd, 1),
                    (b + "attn_q.weight", "matrix", n_embd, n_head * hd),
                    (b + "attn_k.weight", "matrix", n_embd, n_kv * hd),
                    (b + "attn_v.weight", "matrix", n_embd, n_kv * hd)]
        if bias:
            tensors += [(b + "attn_q.bias", "bias", n_head * hd, 1),
                        (b + "attn_k.bias", "bias", n_kv * hd, 1),
                        (b + "attn_v.bias", "bias", n_kv * hd, 1)]
        tensors += [(b + "attn_output.weight", "matrix", n_head * hd, n_embd),
                    (b + "ffn_norm.weight", "norm", n_embd, 1),
                    (b + "ffn_gate.weight", "matrix", n_embd, n_ff),
                    (b + "ffn_up.weight", "matrix", n_embd, n_ff),
                    (b + "ffn_down.weight", "matrix", n_ff, n_embd)]
    tensors.append(("output_norm.weight", "norm", n_embd, 1))
    if not tied:
        tensors.append(("output.weight", "matrix", n_embd, n_vocab))
    for index, (tname, kind, ne0, ne1) in enumerate(tensors):
        if kind == "rope":
            data = llama3_rope_factors(base, hd, *llama3)
        else:
            data = gen_rows(seed, index, ne1, ne0) * np.float32(0.02)
            if kind == "norm":
                data = data + np.float32(1.0)
            if kind != "matrix":
                data = data.reshape(ne0)
        w.add_tensor(tname, data.astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default="/work/shared")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(1234)

    def all_types(w):
        add_all_types(w)
        add_tensors(w, rng)

    def align64(w):
        w.add_custom_alignment(64)
        w.add_string("general.name", "align64")
        w.add_tensor("a", np.arange(3, dtype=np.float32))                 # 12 bytes
        w.add_tensor("b", np.arange(10, dtype=np.float16).reshape(2, 5))  # 20 bytes
        w.add_tensor("c", rng.standard_normal((1, 100)).astype(np.float32))

    def tiny(w):
        w.add_uint32("tiny.n", 7)
        w.add_tensor("w", np.ones((2, 2), dtype=np.float32))

    write(os.path.join(OUT, "all_types.gguf"), all_types)
    write(os.path.join(OUT, "align64.gguf"), align64)
    write(os.path.join(OUT, "tiny.gguf"), tiny)
    with open(os.path.join(OUT, "all_types.gguf"), "rb") as f:
        img = bytearray(f.read())
    assert img[4:8] == struct.pack("<I", 3)
    img[4:8] = struct.pack("<I", 2)
    with open(os.path.join(OUT, "v2.gguf"), "wb") as f:
        f.write(img)

    for name in ("all_types", "align64", "tiny", "v2"):
        lines = describe(os.path.join(OUT, name + ".gguf"), name + ".gguf", with_data=True)
        with open(os.path.join(OUT, name + ".expect"), "w") as f:
            f.write("\n".join(lines) + "\n")

    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        for name, seed in GEN_SEEDS.items():
            path = os.path.join(tmp, "gen_%s.gguf" % name)
            gen_reference(path, name, seed)
            lines = describe(path, "gen_%s.gguf" % name, with_data=False)
            with open(os.path.join(OUT, "gen_%s.expect" % name), "w") as f:
                f.write("\n".join(lines) + "\n")

    shared = []
    for sub in ("models", "tokenizer-tests"):
        for p in sorted(glob.glob(os.path.join(args.shared, sub, "*.gguf"))):
            print("describing", p)
            shared += describe(p, os.path.join(sub, os.path.basename(p)), with_data=False)
    with open(os.path.join(OUT, "shared.expect"), "w") as f:
        f.write("\n".join(shared) + ("\n" if shared else ""))
    print("wrote fixtures to", os.path.normpath(OUT))


if __name__ == "__main__":
    main()
