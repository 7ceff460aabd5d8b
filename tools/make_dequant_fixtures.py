#!/usr/bin/env python3
"""Makes tests/fixtures/dequant/*.bin: reference (de)quantization results from gguf-py.

gguf-py (PyPI package `gguf`, numpy code written independently of Pagoda's C) is the reference:
  - dequant_<TYPE>.bin: random blocks of TYPE and gguf.quants.dequantize() of them.
    Block bytes are random, except that f16 scale fields (d, dmin, m) are replaced by finite
    values (random magnitudes 2^-14..2^1, both signs, plus zero and an f16 subnormal) so every
    result is finite. Plain types (F32/F16/BF16) use random bit patterns without NaNs, so
    infinities, subnormals and -0 are covered.
  - quant_<TYPE>.bin: random f32 rows and gguf.quants.quantize() of them, for the types gguf-py
    can quantize (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0).

File format (little-endian), read by tests/test_dequant.c and tests/test_quantize.c:
  magic      4 bytes   b"PDQ1" (dequant) or b"PQZ1" (quantize)
  type       u32       GGUF type id
  n_elems    u32
  n_bytes    u32       size of the quantized data
  PDQ1: n_bytes quantized bytes, then n_elems f32 expected values
  PQZ1: n_elems f32 inputs, then n_bytes expected quantized bytes

Usage: python3 tools/make_dequant_fixtures.py [out_dir]   (default tests/fixtures/dequant)
The seed is fixed, so running it again reproduces the same files.
"""
import os
import struct
import sys

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf.constants import GGML_QUANT_SIZES
import gguf.quants

SEED = 20240611
rng = np.random.default_rng(SEED)

# Byte offsets of the f16 scale fields inside each block (see src/kernels/ref/dequant.h).
F16_FIELDS = {
    T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
    T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
}
N_BLOCKS = {32: 16, 256: 8}  # blocks per fixture, by block size


def sane_f16(n):
    """n finite f16 scales: random sign and magnitude, with a zero and a subnormal mixed in."""
    mags = np.exp2(rng.uniform(-14, 1, size=n))
    vals = (mags * rng.choice([-1.0, 1.0], size=n)).astype(np.float16)
    if n >= 4:
        vals[1] = np.float16(0.0)
        vals[3] = np.float16(2.0 ** -20)  # subnormal in f16
    return vals


def random_plain_bits(qtype, n):
    if qtype == T.F32:
        bits = rng.integers(0, 2**32, size=n, dtype=np.uint64).astype(np.uint32)
        nan = (bits & 0x7F800000) == 0x7F800000
        bits[nan & ((bits & 0x7FFFFF) != 0)] &= np.uint32(0xFF7FFFFF)  # NaN -> finite
        bits[:4] = [0x7F800000, 0xFF800000, 0x80000000, 0x00000001]  # +inf, -inf, -0, subnormal
        return bits.view(np.uint8)
    bits = rng.integers(0, 2**16, size=n, dtype=np.uint32).astype(np.uint16)
    if qtype == T.F16:
        exp_all = (bits & 0x7C00) == 0x7C00
        bits[exp_all & ((bits & 0x3FF) != 0)] &= np.uint16(0xBFFF)  # NaN -> finite
        bits[:6] = [0x7C00, 0xFC00, 0x8000, 0x0001, 0x03FF, 0x7BFF]
    else:  # BF16
        exp_all = (bits & 0x7F80) == 0x7F80
        bits[exp_all & ((bits & 0x7F) != 0)] &= np.uint16(0xBFFF)
        bits[:5] = [0x7F80, 0xFF80, 0x8000, 0x0001, 0x7F7F]
    return bits.view(np.uint8)


def write_fixture(path, magic, qtype, n_elems, quant_bytes, floats, floats_first):
    quant_bytes = np.ascontiguousarray(quant_bytes, dtype=np.uint8).ravel()
    floats = np.ascontiguousarray(floats, dtype=np.float32).ravel()
    assert floats.size == n_elems
    with open(path, "wb") as f:
        f.write(magic + struct.pack("<III", int(qtype), n_elems, quant_bytes.size))
        if floats_first:
            f.write(floats.astype("<f4").tobytes())
            f.write(quant_bytes.tobytes())
        else:
            f.write(quant_bytes.tobytes())
            f.write(floats.astype("<f4").tobytes())


def make_dequant(out_dir):
    types = [T.F32, T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0,
             T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K]
    for qtype in types:
        block_elems, block_bytes = GGML_QUANT_SIZES[qtype]
        if block_elems == 1:
            n_elems = 512
            data = random_plain_bits(qtype, n_elems)
        else:
            n_blocks = N_BLOCKS[block_elems]
            n_elems = n_blocks * block_elems
            blocks = rng.integers(0, 256, size=(n_blocks, block_bytes), dtype=np.uint16)
            blocks = blocks.astype(np.uint8)
            for off in F16_FIELDS[qtype]:
                blocks[:, off:off + 2] = sane_f16(n_blocks).view(np.uint8).reshape(n_blocks, 2)
            data = blocks.ravel()
        expected = gguf.quants.dequantize(data.copy(), qtype).astype(np.float32).ravel()
        assert expected.size == n_elems, (qtype, expected.size)
        assert not np.isnan(expected).any()
        write_fixture(os.path.join(out_dir, f"dequant_{qtype.name}.bin"), b"PDQ1", qtype,
                      n_elems, data, expected, floats_first=False)


def quant_inputs(qtype, n_blocks, block_elems):
    """Rows exercising the scale choice: varied magnitudes, ties, zeros, one-hot blocks."""
    x = rng.standard_normal((n_blocks, block_elems)).astype(np.float32)
    x *= np.exp2(rng.uniform(-8, 4, size=(n_blocks, 1))).astype(np.float32)
    x[1] = 0.0                                  # all-zero block: d = 0
    x[2] = 0.0
    x[2, 5] = -3.0                              # a single non-zero value
    x[3] = rng.uniform(-1, 1, block_elems)      # a tie of |max| between +a and -a
    x[3, 7], x[3, 20 % block_elems] = 1.5, -1.5
    x[4] = np.abs(x[4])                         # all positive (min > 0 for Q4_1/Q5_1)
    x[5] = rng.integers(-8, 8, block_elems)     # exact small integers: codes at rounding ties
    return x


def plain_edge_values(qtype):
    """Values at f16 / bf16 rounding boundaries: ties, overflow, subnormals."""
    if qtype == T.F16:
        vals = [65504.0, 65519.99, 65520.0, 1e6, -1e6, 2.0 ** -24, 2.0 ** -25, 3 * 2.0 ** -26,
                2.0 ** -26, 1 + 2.0 ** -11, 1 + 3 * 2.0 ** -11, 2.0 ** -14 * (1 - 2.0 ** -11),
                float("inf"), float("-inf"), -0.0, 1e-10]
    elif qtype == T.BF16:
        vals = [1 + 2.0 ** -8, 1 + 3 * 2.0 ** -8, 3.3895313892515355e38, 3.4028234663852886e38,
                float("inf"), float("-inf"), float("nan"), -0.0, 1e-40, 1e-45, -1e-39,
                1 + 2.0 ** -8 + 2.0 ** -20, 0.1, -0.1, 1e30, 2.0 ** -133]
    else:
        vals = [float("inf"), float("-inf"), -0.0, 1e-45, 3.4e38, 1.0]
    return np.array(vals, dtype=np.float32)


def make_quantize(out_dir):
    types = [T.F32, T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0]
    for qtype in types:
        block_elems, _ = GGML_QUANT_SIZES[qtype]
        if block_elems == 1:
            x = (rng.standard_normal(512) * np.exp2(rng.uniform(-30, 30, 512))).astype(np.float32)
            edges = plain_edge_values(qtype)
            x[:edges.size] = edges
            x = x.reshape(1, -1)
        else:
            x = quant_inputs(qtype, 16, block_elems)
        q = gguf.quants.quantize(x, qtype)
        q = np.ascontiguousarray(q).view(np.uint8).ravel()
        write_fixture(os.path.join(out_dir, f"quant_{qtype.name}.bin"), b"PQZ1", qtype,
                      x.size, q, x, floats_first=True)


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join("tests", "fixtures", "dequant")
    os.makedirs(out_dir, exist_ok=True)
    make_dequant(out_dir)
    make_quantize(out_dir)
    total = sum(os.path.getsize(os.path.join(out_dir, f)) for f in os.listdir(out_dir))
    print(f"wrote fixtures to {out_dir} ({total} bytes, gguf {gguf_version()})")


def gguf_version():
    try:
        from importlib.metadata import version
        return version("gguf")
    except Exception:
        return "?"


if __name__ == "__main__":
    main()
