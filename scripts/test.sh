#!/usr/bin/env bash
# The README's second command: installs what is missing (Debian packages, the default model for the
# end-to-end tests), builds, and runs the whole test suite, then again under AddressSanitizer +
# UndefinedBehaviorSanitizer, then a short fuzzing smoke run of the GGUF parser.
# Usage: scripts/test.sh [--quick]   (--quick: skip the sanitizer and fuzz passes)
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
case "${1:-}" in
    --quick) quick=1 ;;
    -h|--help) echo "usage: scripts/test.sh [--quick]"; exit 0 ;;
esac
scripts/install_deps.sh
# The end-to-end SmolLM2 tests need the default model; they skip (and say so) if this fails.
scripts/fetch_model.sh >/dev/null || echo "test: could not fetch the default model; its tests will skip" >&2
# The server tests drive Pagoda with the official openai client: a venv outside the repository.
venv=${HOME:-/tmp}/.cache/pagoda/venv
if ! "$venv/bin/python" -c 'import openai' 2>/dev/null; then
    { python3 -m venv "$venv" && "$venv/bin/pip" install -q 'openai>=1.40'; } >&2 ||
        echo "test: could not set up $venv with openai; the openai-client tests will skip" >&2
fi
jobs=$(nproc)
status=0
make -j"$jobs" all >/dev/null
summary=$(mktemp)
trap 'rm -f "$summary"' EXIT
make -j"$jobs" test 2>&1 | tee -a "$summary" || status=1
if command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ]; then
    # No GPU here: compile every .cu file (sm_90a and sm_80); the GPU checks are `make test-cuda`.
    echo; echo "== CUDA kernels: compile (make cuda) =="
    if make -j"$jobs" cuda >/dev/null 2>"$summary.cuda"; then
        echo "PASS  cuda build"; echo "1 passed, 0 failed" >>"$summary"
    else
        tail -n 30 "$summary.cuda"; echo "0 passed, 1 failed" >>"$summary"; status=1
    fi
    rm -f "$summary.cuda"
fi
if [ $quick -eq 0 ]; then
    echo; echo "== AddressSanitizer + UndefinedBehaviorSanitizer =="
    make -j"$jobs" test-asan 2>&1 | tee -a "$summary" || status=1
    if command -v clang >/dev/null && ls fuzz/fuzz_*.c >/dev/null 2>&1; then
        echo; echo "== fuzz smoke run (each target 30 s: GGUF parser, HTTP request parser) =="
        if make fuzz >/dev/null 2>&1; then
            for f in build-fuzz/fuzz/fuzz_*; do
                corpus=$(mktemp -d)
                case $f in
                    *fuzz_request) cp tests/fixtures/server/*.json "$corpus"/ 2>/dev/null || true ;;
                    *) cp tests/fixtures/gguf/*.gguf "$corpus"/ 2>/dev/null || true ;;
                esac
                if "$f" -max_total_time=30 -rss_limit_mb=2048 "$corpus" >"$corpus.log" 2>&1; then
                    tail -n 1 "$corpus.log"; echo "1 passed, 0 failed" >>"$summary"
                else
                    tail -n 30 "$corpus.log"; echo "0 passed, 1 failed" >>"$summary"; status=1
                fi
                rm -f "$corpus.log"
                rm -rf "$corpus"
            done
        else
            echo "fuzz build failed"; status=1
        fi
    fi
fi
# One closing line over every pass: "N passed, N failed, N skipped".
awk '/^[0-9]+ passed, [0-9]+ failed/ { p += $1; f += $3; s += $5 } END { printf "\n%d passed, %d failed, %d skipped\n", p, f, s }' "$summary"
exit $status
