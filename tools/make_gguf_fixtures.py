#!/usr/bin/env python3
"""tools/make_gguf_fixtures.py - GGUF fixtures for tests/test_gguf.c, made by an independent writer.

Writes into tests/fixtures/gguf/:
  all_types.gguf     the PyPI `gguf` package's GGUFWriter: v3, every metadata value type, arrays
                     of every fixed-size type and of strings, 6 tensors of several types and ranks
  align64.gguf       the same writer with general.alignment = 64 and odd-sized tensors
  v2.gguf            all_types.gguf with the version field patched to 2 (same layout on LE files)
  tiny.gguf          a minimal file (2 kv, 1 tensor): a small seed for the fuzzer
  <name>.expect      what a correct reader must see in <name>.gguf (format below)
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
