#!/usr/bin/env python3
"""Makes tests/fixtures/paged_attention/*.bin: paged-attention cases with the expected output computed
by numpy in float64, independently of Pagoda's C reference (kernels/ref/paged_attention.c).

Each case is a ragged batch (prefills, decodes, prefill chunks, a sequence without queries) over a
paged K/V cache whose blocks are shuffled among spare ones; every cache element that holds no token
is NaN, so reading a wrong slot shows up. The cache is stored in its own type: F32; F16 rounded by
numpy's float32 -> float16 cast (round to nearest even); BF16 rounded to nearest even by integer
arithmetic on the float32 bits. The expected output reads those rounded values back exactly.

Semantics (docs/ENGINE.md): sequence s owns query rows query_start[s] .. query_start[s+1]-1; query
row i sits at position seq_lens[s] - n_q + i and attends to keys 0..that position; query head h reads
kv head h // (n_head // n_kv_head); token p of s lives in slot block_tables[s][p // bs] * bs + p % bs.

File layout (little-endian):
  magic  b"PAF1"
  int32  cache_type (GGUF numbering: 0 F32, 1 F16, 30 BF16), n_seqs, block_size, n_head, n_kv_head,
         head_dim, n_blocks, max_blocks_per_seq, n_tokens
  float32 scale
  int32  query_start[n_seqs + 1], seq_lens[n_seqs], block_tables[n_seqs][max_blocks_per_seq]
  float32 q[n_tokens][n_head][head_dim]
  cache  k[n_blocks][block_size][n_kv_head][head_dim], then v likewise (4 or 2 bytes each)
  float32 out[n_tokens][n_head][head_dim]   (float64 result rounded to float32)

Usage: python3 tools/make_paged_attention_fixtures.py   (writes the files; seed fixed, so re-running
reproduces them byte for byte)
"""
import os
import struct

import numpy as np

OUT_DIR = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "paged_attention")
F32, F16, BF16 = 0, 1, 30


def to_bf16_bits(x):
    bits = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def encode(cache_type, x):
    """float32 array -> (stored array, the float64 values it holds)."""
    if cache_type == F32:
        stored = x.astype(np.float32)
        return stored, stored.astype(np.float64)
    if cache_type == F16:
        stored = x.astype(np.float16)
        return stored, stored.astype(np.float64)
    bits = to_bf16_bits(x)
    return bits, (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)


def nan_cache(cache_type, shape):
    if cache_type == F32:
        return np.full(shape, np.nan, dtype=np.float32)
    if cache_type == F16:
        return np.full(shape, np.nan, dtype=np.float16)
    return np.full(shape, 0x7FC0, dtype=np.uint16)


def make_case(rng, name, cache_type, bs, n_head, n_kv_head, hd, seqs):
    """seqs: list of (n_q, seq_len)."""
    n_seqs = len(seqs)
    blocks_per = [(length + bs - 1) // bs for _, length in seqs]
    max_blocks = max(blocks_per) + 1
    n_blocks = sum(blocks_per) + 2
    perm = rng.permutation(n_blocks)
    tables = np.full((n_seqs, max_blocks), -1, dtype=np.int32)
    k_store = nan_cache(cache_type, (n_blocks * bs, n_kv_head, hd))
    v_store = nan_cache(cache_type, (n_blocks * bs, n_kv_head, hd))
    k_vals, v_vals = [], []
    nxt = 0
    for s, (_, length) in enumerate(seqs):
        tables[s, : blocks_per[s]] = perm[nxt : nxt + blocks_per[s]]
        nxt += blocks_per[s]
        slots = np.array([tables[s, p // bs] * bs + p % bs for p in range(length)], dtype=np.int64)
        k_st, k64 = encode(cache_type, rng.uniform(-1, 1, (length, n_kv_head, hd)).astype(np.float32))
        v_st, v64 = encode(cache_type, rng.uniform(-1, 1, (length, n_kv_head, hd)).astype(np.float32))
        k_store[slots] = k_st
        v_store[slots] = v_st
        k_vals.append(k64)
        v_vals.append(v64)
    query_start = np.zeros(n_seqs + 1, dtype=np.int32)
    for s, (n_q, _) in enumerate(seqs):
        query_start[s + 1] = query_start[s] + n_q
    n_tokens = int(query_start[-1])
    q = rng.uniform(-1, 1, (n_tokens, n_head, hd)).astype(np.float32)
    scale = np.float32(1.0 / np.sqrt(hd))
    out = np.zeros((n_tokens, n_head, hd), dtype=np.float64)
    group = n_head // n_kv_head
    for s, (n_q, length) in enumerate(seqs):
        for i in range(n_q):
            t = query_start[s] + i
            pos = length - n_q + i
            for h in range(n_head):
                kv = h // group
                scores = k_vals[s][: pos + 1, kv, :] @ q[t, h].astype(np.float64) * np.float64(scale)
                w = np.exp(scores - scores.max())
                out[t, h] = (w @ v_vals[s][: pos + 1, kv, :]) / w.sum()
    seq_lens = np.array([length for _, length in seqs], dtype=np.int32)
    with open(os.path.join(OUT_DIR, name), "wb") as f:
        f.write(b"PAF1")
        f.write(struct.pack("<9i", cache_type, n_seqs, bs, n_head, n_kv_head, hd, n_blocks, max_blocks, n_tokens))
        f.write(struct.pack("<f", scale))
        for arr in (query_start, seq_lens, tables, q, k_store, v_store, out.astype(np.float32)):
            f.write(np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes())
    print(f"{name}: {n_seqs} sequences, {n_tokens} query rows, {n_blocks} blocks")


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    rng = np.random.default_rng(20240603)
    make_case(rng, "f32_gqa2_hd64_bs16.bin", F32, 16, 2, 1, 64, [(17, 17), (1, 33), (5, 31), (0, 3), (1, 1)])
    make_case(rng, "f16_gqa3_hd80_bs32.bin", F16, 32, 3, 1, 80, [(1, 40), (12, 12), (3, 36)])
    make_case(rng, "bf16_gqa8_hd128_bs16.bin", BF16, 16, 8, 1, 128, [(1, 40), (6, 6), (2, 20)])


if __name__ == "__main__":
    main()
