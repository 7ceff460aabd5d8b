#!/usr/bin/env bash
# scripts/test_cuda.sh - on a GPU machine: builds the CUDA backend (make cuda), runs every dev/cuda
# program's self-check and dev/cuda/check_attention.py, and prints one summary line.
# Usage: scripts/test_cuda.sh [--quick]      (CUDA_ARCH=... narrows the build, e.g. to sm_90a only)
set -u
cd "$(dirname "$0")/.."
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "test_cuda: no GPU here; skipped"; exit 0
fi
make cuda ${CUDA_ARCH:+CUDA_ARCH="$CUDA_ARCH"} -j"${JOBS:-2}" || { echo "test_cuda: build FAILED"; exit 1; }
failed=0; passed=0
for bin in build-cuda/dev/*; do
    [ -x "$bin" ] || continue
    echo "== $bin --check"
    if "$bin" --check; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL $bin"; fi
done
echo "== dev/cuda/check_attention.py $*"
if PYTHONUNBUFFERED=1 python3 dev/cuda/check_attention.py "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
echo "test_cuda: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
