#!/usr/bin/env python3
"""Requantizes a GGUF model with llama.cpp's quantizer (via llama-cpp-python), e.g. SmolLM2 Q4_1 ->
Q2_K, to make a lower-bit draft model that shares the vocabulary for speculative decoding
benchmarks. Not needed by the build or the tests.

usage: tools/requantize_gguf.py IN.gguf OUT.gguf [TYPE]   (TYPE: Q2_K (default), Q3_K_S, Q4_0, Q8_0)
"""
import sys

import llama_cpp

TYPES = {"Q2_K": llama_cpp.LLAMA_FTYPE_MOSTLY_Q2_K, "Q3_K_S": llama_cpp.LLAMA_FTYPE_MOSTLY_Q3_K_S,
         "Q4_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0, "Q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0}


def main():
    if len(sys.argv) not in (3, 4) or (len(sys.argv) == 4 and sys.argv[3] not in TYPES):
        sys.exit(__doc__)
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = TYPES[sys.argv[3] if len(sys.argv) == 4 else "Q2_K"]
    params.allow_requantize = True
    params.nthread = 2
    rc = llama_cpp.llama_model_quantize(sys.argv[1].encode(), sys.argv[2].encode(), params)
    if rc != 0:
        sys.exit(f"quantization failed ({rc})")


if __name__ == "__main__":
    main()
