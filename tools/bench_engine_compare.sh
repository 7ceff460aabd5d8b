#!/usr/bin/env bash
# tools/bench_engine_compare.sh - engine throughput (issue 3), Pagoda against llama.cpp's batched mode,
# side by side: build/bench/bench_engine and tools/bench_llamacpp_batched.py on the same model file,
# threads, prompts (the same synthetic token ids), prompt length and generation length, alternating
# the two programs (and which goes first) over several repetitions, then a markdown table of the
# medians over repetitions: generated tokens/s of C concurrent requests, the ratio, and each engine's
# speed-up over running the requests one at a time.
#
# Usage: tools/bench_engine_compare.sh [-m MODEL] [-t THREADS] [--reps R] [--gen N] [--prompt-len P]
#          [--conc 1,8,32,64] [--seq-requests K] [--out DIR] [--report DIR]
# Defaults: the SmolLM2-135M Q4_1 model, 2 threads, 3 repetitions, N=64, P=48, C=1,8,32,64, K=4
# (the one-at-a-time baseline times the first K requests: one sequence's speed does not depend on C).
# Each repetition's JSON is kept in DIR (default: a temporary directory, printed); --report DIR
# prints the table of an earlier run's DIR without running anything.
# Table cells are medians; the tok/s columns add the (min-max) over the repetitions.
# Environment: BENCH_ENGINE (default build/bench/bench_engine; `make bench` builds it), PYTHON
# (default python3), OMP_WAIT_POLICY (reaches llama.cpp's OpenMP threads; "passive" keeps them
# from spinning on a machine shared with other work).
set -euo pipefail

cd "$(dirname "$0")/.."
model="$HOME/.cache/pagoda/models/SmolLM2-135M-Instruct.Q4_1.gguf"
threads=2 reps=3 gen=64 prompt_len=48 conc=1,8,32,64 seq_requests=4 out="" report=""
while [ $# -gt 0 ]; do
    case "$1" in
    -m) model=$2; shift 2 ;;
    -t) threads=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --gen) gen=$2; shift 2 ;;
    --prompt-len) prompt_len=$2; shift 2 ;;
    --conc) conc=$2; shift 2 ;;
    --seq-requests) seq_requests=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --report) report=$2; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench_engine_compare: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
bench=${BENCH_ENGINE:-build/bench/bench_engine}
python=${PYTHON:-python3}

print_table() { # DIR: the table of the pagoda_N.json / llamacpp_N.json files in DIR
    "$python" - "$1" <<'EOF'
import glob, json, statistics, sys
out = sys.argv[1]
reps = len(glob.glob(f"{out}/pagoda_*.json"))
pag = [json.load(open(f"{out}/pagoda_{r}.json")) for r in range(1, reps + 1)]
lla = [json.load(open(f"{out}/llamacpp_{r}.json")) for r in range(1, reps + 1)]
med = statistics.median
def vals(runs, i, key):
    return [run["results"][i][key] for run in runs]
def cell(xs):
    return f"{med(xs):.1f} ({min(xs):.0f}-{max(xs):.0f})"
v = lla[0]["version"]
print(f"model {pag[0]['model']}, {pag[0]['threads']} threads, prompt {pag[0]['prompt_len']} tokens, "
      f"{pag[0]['n_gen']} generated tokens per request, median of {reps} alternating runs")
print(f"llama.cpp: llama-cpp-python {v.get('llama_cpp_python')}, libllama {v.get('libllama')}, "
      f"ggml {v.get('ggml')} ({v.get('ggml_commit')}), flash_attn_type {lla[0]['flash_attn_type']}")
print()
print("| C | Pagoda tok/s | llama.cpp tok/s | ratio | Pagoda batched/sequential | llama.cpp batched/sequential "
      "| Pagoda seq tok/s | llama.cpp seq tok/s | preemptions | same first tokens |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|")
for i, r in enumerate(pag[0]["results"]):
    pg, lg = vals(pag, i, "gen_tok_s"), vals(lla, i, "gen_tok_s")
    ps, ls = vals(pag, i, "seq_gen_tok_s"), vals(lla, i, "seq_gen_tok_s")
    pre = max(vals(pag, i, "preemptions"))
    same = all(p["results"][i]["first_tokens"] == l["results"][i]["first_tokens"] for p, l in zip(pag, lla))
    print(f"| {r['conc']} | {cell(pg)} | {cell(lg)} | {med(pg) / med(lg):.2f} | {med(pg) / med(ps):.2f}x "
          f"| {med(lg) / med(ls):.2f}x | {cell(ps)} | {cell(ls)} | {pre} | {'yes' if same else 'no'} |")
EOF
}

if [ -n "$report" ]; then
    print_table "$report"
    exit 0
fi
if [ ! -x "$bench" ]; then
    echo "bench_engine_compare: $bench not found; run 'make bench' first" >&2
    exit 1
fi
if [ ! -f "$model" ]; then
    echo "bench_engine_compare: no model at $model (scripts/fetch_model.sh fetches it)" >&2
    exit 1
fi
[ -n "$out" ] || out=$(mktemp -d /tmp/bench_engine.XXXXXX)
mkdir -p "$out"

common=(-m "$model" -t "$threads" --gen "$gen" --prompt-len "$prompt_len" --conc "$conc"
        --seq-requests "$seq_requests" --reps 1 --json)
run_pagoda() { "$bench" "${common[@]}" > "$out/pagoda_$1.json"; }
run_llama() { "$python" tools/bench_llamacpp_batched.py "${common[@]}" > "$out/llamacpp_$1.json"; }

start=$(date +%s)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for rep in $(seq 1 "$reps"); do
    if [ $((rep % 2)) -eq 1 ]; then
        echo "repetition $rep/$reps: pagoda, llama.cpp" >&2
        run_pagoda "$rep"; run_llama "$rep"
    else
        echo "repetition $rep/$reps: llama.cpp, pagoda" >&2
        run_llama "$rep"; run_pagoda "$rep"
    fi
done
seconds=$(( $(date +%s) - start ))
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

print_table "$out"
echo
echo "ran in ${seconds} s; load average before ${load_before}, after ${load_after}; JSON in $out"
