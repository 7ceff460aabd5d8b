#!/usr/bin/env bash
# tools/bench_cpu_compare.sh - Pagoda against llama.cpp on the same GGUF files, on this CPU, for
# issue 7: prompt processing (ppP) and generation (tgN) for each thread count, the two programs
# ALTERNATED (round 1: Pagoda then llama.cpp, round 2: llama.cpp then Pagoda, ...), so that noise
# from neighbours on a shared machine falls on both. Prints a markdown table with each side's
# median tok/s over all runs (min-max), the ratio Pagoda / llama.cpp of the medians, and Pagoda's
# generation speed as a share of the decode ceiling (read bandwidth measured by `pagoda bench` in
# each of its runs / weight bytes per token); then the bandwidth measured during the run.
#
# Models: random-weight GGUFs at real shapes, written once by `pagoda gen-model` into
# $PAGODA_BENCH_CACHE (default ~/.cache/pagoda/bench-models; 4.5 GB for all six), plus the real
# SmolLM2-135M-Instruct Q4_1 file at the CLI's default path, when present.
# llama.cpp: llama-cpp-python, timed by tools/bench_llamacpp.py with the same definitions.
#
# usage: tools/bench_cpu_compare.sh [--quick] [-t 1,2] [--rounds K] [--models "NAME ..."]
#                                   [--out FILE] [--keep DIR]
#   --quick     pp64/tg16, one round, one run per round (a check that everything works)
#   default     pp512/tg128, 2 rounds; runs per round: 2 for 135M models, 1 for 1B models
#   --models    a subset of: smollm2-135m-bf16 smollm2-135m-q8_0 smollm2-135m-q4_0
#               llama-3.2-1b-bf16 llama-3.2-1b-q8_0 llama-3.2-1b-q4_0 smollm2-135m-instruct-q4_1
#   --out FILE  also write the table there; --keep DIR keeps every run's JSON there
# Needs build/pagoda (make), jq, python3 with llama-cpp-python and numpy.
set -u
cd "$(dirname "$0")/.."
BIN=${PAGODA_BIN:-build/pagoda}
CACHE=${PAGODA_BENCH_CACHE:-$HOME/.cache/pagoda/bench-models}
REAL=${PAGODA_MODEL_DIR:-$HOME/.cache/pagoda/models}/SmolLM2-135M-Instruct.Q4_1.gguf
THREADS=1,2
ROUNDS=2
QUICK=0
OUT=
KEEP=
MODELS="smollm2-135m-q8_0 smollm2-135m-q4_0 smollm2-135m-bf16 llama-3.2-1b-q8_0 llama-3.2-1b-q4_0 llama-3.2-1b-bf16
        smollm2-135m-instruct-q4_1"
while [ $# -gt 0 ]; do
    case $1 in
    --quick) QUICK=1; ROUNDS=1 ;;
    -t) THREADS=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --models) MODELS=$2; shift ;;
    --out) OUT=$2; shift ;;
    --keep) KEEP=$2; shift ;;
    -h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench_cpu_compare: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
[ -x "$BIN" ] || { echo "bench_cpu_compare: $BIN not found: run make" >&2; exit 1; }
command -v jq >/dev/null || { echo "bench_cpu_compare: jq is needed" >&2; exit 1; }
python3 -c 'import llama_cpp, numpy' 2>/dev/null ||
    { echo "bench_cpu_compare: pip install llama-cpp-python numpy" >&2; exit 1; }
if [ $QUICK = 1 ]; then P=64; N=16; else P=512; N=128; fi
WORK=${KEEP:-$(mktemp -d /tmp/pagoda-cpu-compare-XXXXXX)}
mkdir -p "$WORK" "$CACHE"
[ -n "$KEEP" ] || trap 'rm -rf "$WORK"' EXIT
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

# model name -> file, generated on first use
model_file() {
    case $1 in
    smollm2-135m-instruct-q4_1) echo "$REAL" ;;
    *) echo "$CACHE/$1.gguf" ;;
    esac
}
ensure_model() { # name
    local f shape type
    f=$(model_file "$1")
    [ -f "$f" ] && return 0
    case $1 in
    smollm2-135m-instruct-q4_1) log "$f is absent (scripts/fetch_model.sh fetches it)"; return 1 ;;
    smollm2-135m-*) shape=smollm2-135m ;;
    llama-3.2-1b-*) shape=llama-3.2-1b ;;
    *) log "unknown model '$1'"; return 1 ;;
    esac
    type=$(echo "${1##*-}" | tr a-z A-Z)
    log "generating $f ($shape, $type)"
    "$BIN" gen-model --shape "$shape" --type "$type" -o "$f" -q
}

run_pagoda() { # name file threads reps out
    "$BIN" bench -m "$2" -p "$P" -n "$N" -t "$3" -r "$4" --json >"$5" 2>"$5.err" ||
        { log "pagoda bench failed on $1: $(tail -n 1 "$5.err")"; return 1; }
}
run_llamacpp() { # name file threads reps out
    python3 tools/bench_llamacpp.py -m "$2" -p "$P" -n "$N" -t "$3" -r "$4" >"$5" 2>"$5.err"
    local rc=$?
    [ $rc -eq 0 ] && return 0
    if [ $rc -eq 3 ]; then log "llama.cpp refused $1: $(jq -c .log "$5")"
    else log "llama.cpp failed on $1 (exit $rc): $(tail -n 2 "$5.err")"; fi
    return 1
}

start=$(date +%s)
IFS=, read -r -a thread_list <<<"$THREADS"
for name in $MODELS; do
    ensure_model "$name" || continue
    file=$(model_file "$name")
    reps=2
    case $name in llama-3.2-1b-*) reps=1 ;; esac
    [ $QUICK = 1 ] && reps=1
    for t in "${thread_list[@]}"; do
        for ((round = 1; round <= ROUNDS; round++)); do
            base="$WORK/$name.t$t.r$round"
            if [ $((round % 2)) = 1 ]; then order="pagoda llamacpp"; else order="llamacpp pagoda"; fi
            for who in $order; do
                log "$name, $t threads, round $round/$ROUNDS: $who"
                "run_$who" "$name" "$file" "$t" "$reps" "$base.$who.json" || rm -f "$base.$who.json"
            done
        done
    done
done
elapsed=$(( $(date +%s) - start ))

# ---- the table ----------------------------------------------------------------------------------
python3 - "$WORK" "$P" "$N" "$THREADS" "$MODELS" "$elapsed" "$QUICK" >"$WORK/table.md" <<'EOF'
import glob, json, os, statistics, subprocess, sys
work, P, N, threads, models, elapsed, quick = sys.argv[1:8]
threads = [int(t) for t in threads.split(",")]
SHAPE = {"smollm2-135m": "SmolLM2-135M", "llama-3.2-1b": "Llama-3.2-1B",
         "smollm2-135m-instruct": "SmolLM2-135M-Instruct (real)"}

def load(pattern):
    out = []
    for f in sorted(glob.glob(os.path.join(work, pattern))):
        try:
            out.append(json.load(open(f)))
        except (OSError, ValueError):
            pass
    return out

def spread(xs):
    return f"{statistics.median(xs):.1f} ({min(xs):.1f}-{max(xs):.1f})" if xs else "-"

rows, bw = [], {t: [] for t in threads}
lc_version = sysinfo = ""
for name in models.split():
    shape, typ = name.rsplit("-", 1)
    for t in threads:
        pg = load(f"{name}.t{t}.r*.pagoda.json")
        lc = load(f"{name}.t{t}.r*.llamacpp.json")
        for d in lc:
            lc_version = d.get("llama_cpp_python", lc_version)
            sysinfo = d.get("system_info", sysinfo)
        for d in pg:
            for r in d["results"][:1]:
                if "membw_read_gbs" in r:
                    bw[t].append(r["membw_read_gbs"])
        for test in (f"pp{P}", f"tg{N}"):
            ps = [s for d in pg for r in d["results"] if r["test"] == test for s in r["samples_ts"]]
            ls = [s for d in lc for r in d["results"] if r["test"] == test for s in r["samples_ts"]]
            ceil = [r["avg_ts"] / r["ceiling_ts"] * 100 for d in pg for r in d["results"]
                    if r["test"] == test and r.get("ceiling_ts")]
            ratio = f"{statistics.median(ps) / statistics.median(ls):.2f}" if ps and ls else "-"
            note = ""
            if not pg: note = "Pagoda failed"
            if not lc: note = (note + "; " if note else "") + "llama.cpp failed or refused"
            rows.append((SHAPE.get(shape, shape), typ.upper(), t, test, spread(ps), spread(ls), ratio,
                         f"{statistics.median(ceil):.0f}%" if ceil else "-", note))

print(f"| model (shape) | type | threads | test | Pagoda tok/s | llama.cpp tok/s | ratio | Pagoda % of ceiling | note |")
print("|---|---|---:|---|---:|---:|---:|---:|---|")
for r in rows:
    print("| " + " | ".join(str(x) for x in r) + " |")
print()
for t in threads:
    if bw[t]:
        print(f"- read bandwidth, {t} thread(s), measured by `pagoda bench` in each of its runs: median "
              f"{statistics.median(bw[t]):.1f} GB/s (min {min(bw[t]):.1f}, max {max(bw[t]):.1f}, {len(bw[t])} probes)")
print(f"- tok/s: median over all runs (min-max); ratio = Pagoda median / llama.cpp median; "
      f"the two alternate, round by round")
print(f"- llama.cpp: llama-cpp-python {lc_version}, through tools/bench_llamacpp.py (flash attention on, "
      f"F16 KV, n_ubatch 512); {sysinfo}")
print(f"- {'QUICK mode; ' if quick == '1' else ''}wall time {int(elapsed) // 60} min {int(elapsed) % 60} s; "
      f"load average at the end: {os.getloadavg()[0]:.1f}")
EOF
cat "$WORK/table.md"
[ -n "$OUT" ] && cp "$WORK/table.md" "$OUT"
exit 0
