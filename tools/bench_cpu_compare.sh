#!/usr/bin/env bash
# tools/bench_cpu_compare.sh - Pagoda against llama.cpp on the same GGUF files, on this CPU, for
# issue 7: prompt processing (ppP) and generation (tgN) for each thread count, the two programs
# ALTERNATED (who goes first flips with each round and each thread count), so that noise from
# neighbours on a shared machine falls on both. Prints a markdown table with each side's
# median tok/s over all runs (min-max), the ratio Pagoda / llama.cpp of the medians, and Pagoda's
# generation speed as a share of the decode ceiling (read bandwidth measured by `pagoda bench` in
# each of its runs / weight bytes per token); then the bandwidth measured during the run.
#
# Models: random-weight GGUFs at real shapes, written once by `pagoda gen-model` into
# $PAGODA_BENCH_CACHE (default ~/.cache/pagoda/bench-models; 4.5 GB for all six), plus the real
# SmolLM2-135M-Instruct Q4_1 file at the CLI's default path, when present.
# llama.cpp: llama-cpp-python, timed by tools/bench_llamacpp.py with the same definitions. Its
# build uses OpenMP, whose threads spin at every barrier; on a machine whose cores are shared with
# other busy processes that makes 2-thread runs collapse (tg 2 tok/s instead of 30 on 135M Q8_0),
# so llama.cpp runs with OMP_WAIT_POLICY=passive by default (its faster setting there; set
# --omp-wait default to leave OpenMP's own default).
#
# usage: tools/bench_cpu_compare.sh [--quick] [-t 1,2] [--rounds K] [--reps R] [--models "NAME ..."]
#                                   [--omp-wait passive|active|default] [--out FILE] [--keep DIR]
#   --quick     pp64/tg16, one round, one run per round (a check that everything works)
#   default     pp512/tg128; 2 rounds for 135M models, 1 for 1B models (about 25 minutes in all
#               on 2 loaded cores); one run per round (--reps) after a short warm-up
#   --models    a subset of: smollm2-135m-bf16 smollm2-135m-q8_0 smollm2-135m-q4_0
#               llama-3.2-1b-bf16 llama-3.2-1b-q8_0 llama-3.2-1b-q4_0 smollm2-135m-instruct-q4_1
#   --cpu-time  instead: CPU seconds (user + sys) per token with 1 thread, from the difference of two
#               run lengths (pp64 vs pp512, tg16 vs tg144, 2 runs each, no warm-up), interleaved.
#               Less sensitive than tok/s to neighbours taking the cores (a preempted process
#               accrues no CPU time), though not to their use of the memory bus.
#   --out FILE  also write the table there; --keep DIR keeps every run's JSON there
#   --report DIR  run nothing: reprint the table from the JSON a --keep DIR run left (give --quick
#               too if that run was quick)
# Needs build/pagoda (make), jq, python3 with llama-cpp-python and numpy.
set -u
cd "$(dirname "$0")/.."
BIN=${PAGODA_BIN:-build/pagoda}
CACHE=${PAGODA_BENCH_CACHE:-$HOME/.cache/pagoda/bench-models}
REAL=${PAGODA_MODEL_DIR:-$HOME/.cache/pagoda/models}/SmolLM2-135M-Instruct.Q4_1.gguf
THREADS=1,2
ROUNDS=
REPS=1
OMP_WAIT=passive
QUICK=0
CPU_TIME=0
REPORT=
OUT=
KEEP=
MODELS="smollm2-135m-q8_0 smollm2-135m-q4_0 smollm2-135m-bf16 llama-3.2-1b-q8_0 llama-3.2-1b-q4_0 llama-3.2-1b-bf16
        smollm2-135m-instruct-q4_1"
while [ $# -gt 0 ]; do
    case $1 in
    --quick) QUICK=1; ROUNDS=1 ;;
    --cpu-time) CPU_TIME=1 ;;
    -t) THREADS=$2; shift ;;
    --reps) REPS=$2; shift ;;
    --omp-wait) OMP_WAIT=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --models) MODELS=$2; shift ;;
    --out) OUT=$2; shift ;;
    --keep) KEEP=$2; shift ;;
    --report) REPORT=$2; KEEP=$2; shift ;;
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
    local envs=()
    [ "$OMP_WAIT" = default ] || envs=("OMP_WAIT_POLICY=$OMP_WAIT")
    env "${envs[@]}" python3 tools/bench_llamacpp.py -m "$2" -p "$P" -n "$N" -t "$3" -r "$4" >"$5" 2>"$5.err"
    local rc=$?
    [ $rc -eq 0 ] && return 0
    if [ $rc -eq 3 ]; then log "llama.cpp refused $1: $(jq -c .log "$5")"
    else log "llama.cpp failed on $1 (exit $rc): $(tail -n 2 "$5.err")"; fi
    return 1
}

start=$(date +%s)
IFS=, read -r -a thread_list <<<"$THREADS"

# ---- --cpu-time: CPU seconds per token, 1 thread --------------------------------------------------
cpu_seconds() { # command...: prints user + sys seconds of the command
    local TIMEFORMAT='%U %S' t
    t=$( { time "$@" >/dev/null 2>&1; } 2>&1 ) || return 1
    echo "$t" | awk '{ print $1 + $2 }'
}
cpu_cmd() { # who file kind(pp|tg) length
    local args
    if [ "$3" = pp ]; then args="-p $4 -n 0"; else args="-p 0 -n $4"; fi
    if [ "$1" = pagoda ]; then echo "$BIN bench -m $2 $args -r 2 -t 1 --membw-mib 0 --no-warmup"
    else echo "python3 tools/bench_llamacpp.py -m $2 $args -r 2 -t 1 --no-warmup"; fi
}
if [ $CPU_TIME = 1 ]; then
    {
        echo "| model (shape) | type | test | Pagoda CPU ms/token | llama.cpp CPU ms/token | llama.cpp / Pagoda |"
        echo "|---|---|---|---:|---:|---:|"
        for name in $MODELS; do
            ensure_model "$name" || continue
            file=$(model_file "$name")
            for spec in "pp 64 512" "tg 16 144"; do
                set -- $spec
                declare -A ms=()
                for who in pagoda llamacpp; do
                    log "cpu time: $name $1: $who"
                    a=$(cpu_seconds $(cpu_cmd $who "$file" "$1" "$2")) &&
                        b=$(cpu_seconds $(cpu_cmd $who "$file" "$1" "$3")) &&
                        ms[$who]=$(awk -v a="$a" -v b="$b" -v n=$(( 2 * ($3 - $2) )) \
                                   'BEGIN { printf "%.2f", (b - a) * 1000 / n }') || ms[$who]=-
                done
                ratio=$(awk -v p="${ms[pagoda]}" -v l="${ms[llamacpp]}" \
                        'BEGIN { if (p > 0 && l > 0) printf "%.2f", l / p; else print "-" }')
                case $name in
                smollm2-135m-instruct-*) shape="SmolLM2-135M-Instruct (real)" ;;
                smollm2-135m-*) shape=SmolLM2-135M ;;
                *) shape=Llama-3.2-1B ;;
                esac
                echo "| $shape | $(echo "${name##*-}" | tr a-z A-Z) | $1 | ${ms[pagoda]} | ${ms[llamacpp]} | $ratio |"
            done
        done
        echo
        echo "- CPU ms/token = (CPU seconds of the long run - of the short run) / tokens between them, 1 thread;"
        echo "  a ratio above 1 means Pagoda needs less CPU time per token. Load average at the end: $(cut -d' ' -f1 /proc/loadavg)"
    } >"$WORK/cpu_time.md"
    cat "$WORK/cpu_time.md"
    [ -n "$OUT" ] && cp "$WORK/cpu_time.md" "$OUT"
    exit 0
fi
for name in $MODELS; do
    [ -n "$REPORT" ] && break
    ensure_model "$name" || continue
    file=$(model_file "$name")
    rounds=${ROUNDS:-2}
    case $name in llama-3.2-1b-*) rounds=${ROUNDS:-1} ;; esac
    [ $QUICK = 1 ] && rounds=1
    for ti in "${!thread_list[@]}"; do
        t=${thread_list[$ti]}
        for ((round = 1; round <= rounds; round++)); do
            base="$WORK/$name.t$t.r$round"
            if [ $(( (round + ti) % 2 )) = 1 ]; then order="pagoda llamacpp"; else order="llamacpp pagoda"; fi
            for who in $order; do
                log "$name, $t threads, round $round/$rounds: $who"
                "run_$who" "$name" "$file" "$t" "$REPS" "$base.$who.json" || rm -f "$base.$who.json"
            done
        done
    done
done
elapsed=$(( $(date +%s) - start ))
[ -n "$REPORT" ] && elapsed=-1

# ---- the table ----------------------------------------------------------------------------------
python3 - "$WORK" "$P" "$N" "$THREADS" "$MODELS" "$elapsed" "$QUICK" "$OMP_WAIT" >"$WORK/table.md" <<'EOF'
import glob, json, os, statistics, sys
work, P, N, threads, models, elapsed, quick, omp_wait = sys.argv[1:9]
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
      f"who goes first alternates by round and thread count")
print(f"- llama.cpp: llama-cpp-python {lc_version}, through tools/bench_llamacpp.py (flash attention on, "
      f"F16 KV, n_ubatch 512, OMP_WAIT_POLICY {omp_wait}); {sysinfo}")
if int(elapsed) < 0:
    print(f"- reprinted from {work}")
else:
    print(f"- {'QUICK mode; ' if quick == '1' else ''}wall time {int(elapsed) // 60} min {int(elapsed) % 60} s; "
          f"load average at the end: {os.getloadavg()[0]:.1f}")
EOF
cat "$WORK/table.md"
[ -n "$OUT" ] && cp "$WORK/table.md" "$OUT"
exit 0
