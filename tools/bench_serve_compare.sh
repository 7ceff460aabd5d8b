#!/usr/bin/env bash
# tools/bench_serve_compare.sh - serving benchmark for issue 4: `pagoda bench serve` against
# `pagoda serve` and against llama.cpp's server (llama-cpp-python's `python3 -m llama_cpp.server`),
# the same GGUF file and thread count, on this machine, at several request rates. Both servers run
# for the whole script; the runs ALTERNATE between them (who goes first flips with each rate and
# round) so that noise from neighbours on a shared machine falls on both. Each server first gets a
# short warm-up run (not reported). Every run's JSON is kept; at the end a markdown table is printed:
# one row per server and rate (the median over rounds of each column when --rounds > 1).
#
# Fairness notes:
# - Every request is the same: /v1/completions, stream, temperature 0, ignore_eos, max_tokens O.
#   llama-cpp-python ignores `ignore_eos`, so its requests also carry
#   `logit_bias` {"0": -100, "2": -100} (<|endoftext|>, <|im_end|>: the model's end-of-generation
#   tokens) so that it too generates exactly O tokens. Pagoda does not accept logit_bias (400).
# - llama-cpp-python's server runs requests one at a time (a global lock) and by default cuts a
#   streaming answer short when another request arrives; it is started with
#   --interrupt_requests False so each request runs to the end, queued behind the others.
# - llama.cpp's build uses OpenMP; on shared cores its spinning threads collapse, so it runs with
#   OMP_WAIT_POLICY=passive (as tools/bench_cpu_compare.sh does; --omp-wait default to change).
#
# usage: tools/bench_serve_compare.sh [-m MODEL] [-t THREADS] [--rates "0.25 1 4 inf"] [--num-prompts N]
#                                     [--input-len L] [--output-len O] [--rounds K] [--seed S]
#                                     [--ports P1,P2] [--omp-wait passive|default] [--keep DIR]
#                                     [--out FILE]
#   defaults: SmolLM2-135M-Instruct Q4_1, -t 2, rates "0.25 1 4 inf", 24 prompts, 64 in / 64 out,
#   1 round, seed 1, ports 18431,18432 (about 8 minutes on 2 loaded cores)
#   --keep DIR  keeps every run's JSON and both servers' logs there (default: a temporary folder)
#   --out FILE  also writes the table there
# Needs build/pagoda (make), jq, curl, python3 with llama-cpp-python[server].
set -u
cd "$(dirname "$0")/.."
BIN=${PAGODA_BIN:-build/pagoda}
MODEL=${PAGODA_MODEL_DIR:-$HOME/.cache/pagoda/models}/SmolLM2-135M-Instruct.Q4_1.gguf
THREADS=2
RATES="0.25 1 4 inf"
NUM=24
ILEN=64
OLEN=64
ROUNDS=1
SEED=1
PORTS=18431,18432
OMP_WAIT=passive
KEEP=
OUT=
CTX=2048
while [ $# -gt 0 ]; do
    case $1 in
    -m) MODEL=$2; shift ;;
    -t) THREADS=$2; shift ;;
    --rates) RATES=$2; shift ;;
    --num-prompts) NUM=$2; shift ;;
    --input-len) ILEN=$2; shift ;;
    --output-len) OLEN=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --seed) SEED=$2; shift ;;
    --ports) PORTS=$2; shift ;;
    --omp-wait) OMP_WAIT=$2; shift ;;
    --keep) KEEP=$2; shift ;;
    --out) OUT=$2; shift ;;
    -h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench_serve_compare: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
P1=${PORTS%,*}
P2=${PORTS#*,}

die() { echo "bench_serve_compare: $*" >&2; exit 1; }
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
command -v jq >/dev/null || die "jq is needed"
command -v curl >/dev/null || die "curl is needed"
[ -x "$BIN" ] || die "$BIN not found (run make)"
[ -f "$MODEL" ] || die "model $MODEL not found (scripts/fetch_model.sh)"
python3 -c 'import llama_cpp.server, uvicorn, sse_starlette' 2>/dev/null ||
    die "llama-cpp-python's server is missing: pip install 'llama-cpp-python[server]'"
for p in "$P1" "$P2"; do
    curl -s --noproxy '*' -o /dev/null "http://127.0.0.1:$p/" && die "port $p is already in use (--ports)"
done

if [ -n "$KEEP" ]; then WORK=$KEEP; mkdir -p "$WORK" || exit 1
else WORK=$(mktemp -d /tmp/bench_serve.XXXXXX) || exit 1; fi
PAGODA_PID=
LLAMA_PID=
cleanup() {
    [ -n "$PAGODA_PID" ] && kill "$PAGODA_PID" 2>/dev/null
    [ -n "$LLAMA_PID" ] && kill "$LLAMA_PID" 2>/dev/null
    [ -n "$PAGODA_PID" ] && wait "$PAGODA_PID" 2>/dev/null
    [ -n "$LLAMA_PID" ] && wait "$LLAMA_PID" 2>/dev/null
    [ -n "$KEEP" ] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_ready NAME PORT PID: until GET /v1/models answers 200 (both servers have it; pagoda's
# /health is 503 while loading, llama-cpp-python's has no /health), at most 120 s.
wait_ready() {
    local i
    for i in $(seq 1 240); do
        kill -0 "$3" 2>/dev/null || die "$1 exited while starting (log: $WORK/$1.log)"
        [ "$(curl -s --noproxy '*' -o /dev/null -w '%{http_code}' "http://127.0.0.1:$2/v1/models")" = 200 ] &&
            return 0
        sleep 0.5
    done
    die "$1 did not become ready on port $2 in 120 s (log: $WORK/$1.log)"
}

log "starting pagoda serve on :$P1 and llama_cpp.server on :$P2 ($(basename "$MODEL"), $THREADS threads)"
"$BIN" serve -m "$MODEL" -t "$THREADS" -c "$CTX" --host 127.0.0.1 --port "$P1" \
    >"$WORK/pagoda.log" 2>&1 &
PAGODA_PID=$!
OMP_ENV=()
[ "$OMP_WAIT" = default ] || OMP_ENV=(OMP_WAIT_POLICY="$OMP_WAIT")
env "${OMP_ENV[@]}" python3 -m llama_cpp.server --model "$MODEL" --n_threads "$THREADS" \
    --n_threads_batch "$THREADS" --n_ctx "$CTX" --host 127.0.0.1 --port "$P2" \
    --interrupt_requests False --verbose False >"$WORK/llamacpp.log" 2>&1 &
LLAMA_PID=$!
wait_ready pagoda "$P1" "$PAGODA_PID"
wait_ready llamacpp "$P2" "$LLAMA_PID"

LLAMA_EXTRA='{"logit_bias": {"0": -100, "2": -100}}'
# run SERVER RATE N SEED OUTFILE: one `pagoda bench serve` run; its table goes to OUTFILE.txt
run() {
    local port=$P1 extra=()
    if [ "$1" = llamacpp ]; then port=$P2; extra=(--extra-body "$LLAMA_EXTRA"); fi
    "$BIN" bench serve --url "http://127.0.0.1:$port" --num-prompts "$3" --request-rate "$2" \
        --input-len "$ILEN" --output-len "$OLEN" --seed "$4" --timeout 600 "${extra[@]}" \
        --json "$5" >"$5.txt" 2>&1 || log "bench serve against $1 failed (rate $2): $(tail -3 "$5.txt")"
}

log "warm-up (4 requests each, not reported)"
run pagoda inf 4 999 "$WORK/warmup-pagoda.json"
run llamacpp inf 4 999 "$WORK/warmup-llamacpp.json"

START=$(date +%s)
flip=0
for rate in $RATES; do
    for round in $(seq 1 "$ROUNDS"); do
        if [ $flip -eq 0 ]; then order="pagoda llamacpp"; else order="llamacpp pagoda"; fi
        flip=$((1 - flip))
        for srv in $order; do
            log "$srv rate $rate round $round"
            run "$srv" "$rate" "$NUM" "$SEED" "$WORK/$srv-rate$rate-round$round.json"
            jq -r '"    \(.completed) ok, \(.failed) failed, \(.duration|.*100|round/100) s, \(.output_throughput|.*10|round/10) out tok/s, first error: \(.first_error // "")"' \
                "$WORK/$srv-rate$rate-round$round.json" >&2 2>/dev/null
        done
    done
done
ELAPSED=$(( $(date +%s) - START ))

# The table: one row per server and rate, median over rounds.
python3 - "$WORK" "$RATES" "$ROUNDS" "$NUM" "$ILEN" "$OLEN" "$THREADS" "$ELAPSED" "$(basename "$MODEL")" \
    "$OMP_WAIT" <<'EOF' | tee "${OUT:-/dev/null}"
import json, os, statistics, sys
work, rates, rounds, num, ilen, olen, threads, elapsed, model, omp = sys.argv[1:11]
rows = []
cols = [("request_throughput", "req/s", 2), ("output_throughput", "out tok/s", 1),
        ("mean_ttft_ms", "mean TTFT ms", 0), ("median_ttft_ms", "median TTFT ms", 0),
        ("p99_ttft_ms", "p99 TTFT ms", 0), ("mean_tpot_ms", "mean TPOT ms", 1),
        ("mean_itl_ms", "mean ITL ms", 1), ("mean_e2el_ms", "mean E2E ms", 0)]
print("| server | rate (req/s) | ok/failed | " + " | ".join(c[1] for c in cols) + " |")
print("|---|---|---|" + "---|" * len(cols))
for rate in rates.split():
    for srv, name in (("pagoda", "Pagoda"), ("llamacpp", "llama.cpp (python server)")):
        runs = []
        for r in range(1, int(rounds) + 1):
            p = os.path.join(work, f"{srv}-rate{rate}-round{r}.json")
            try:
                with open(p) as f:
                    runs.append(json.load(f))
            except (OSError, ValueError):
                pass
        if not runs:
            print(f"| {name} | {rate} | run failed |" + " |" * len(cols))
            continue
        ok = sum(j.get("completed", 0) for j in runs)
        bad = sum(j.get("failed", 0) for j in runs)
        cells = []
        for key, _, nd in cols:
            vals = [j[key] for j in runs if isinstance(j.get(key), (int, float))]
            cells.append(f"{statistics.median(vals):.{nd}f}" if vals else "-")
        print(f"| {name} | {rate} | {ok}/{bad} | " + " | ".join(cells) + " |")
print()
print(f"{model}, {threads} threads each, {num} prompts of {ilen} words, {olen} output tokens, "
      f"/v1/completions streaming, temperature 0; {rounds} round(s), median over rounds; "
      f"benchmark {elapsed} s; llama.cpp OMP_WAIT_POLICY {omp}.")
lens = set()
for fn in os.listdir(work):
    if fn.endswith(".json") and not fn.startswith("warmup"):
        with open(os.path.join(work, fn)) as f:
            j = json.load(f)
        lens |= {(fn.split("-")[0], n) for n in j.get("output_lens", [])}
print("output tokens per request seen: " +
      ", ".join(f"{s} {n}" for s, n in sorted(lens)))
EOF
log "done; JSON in $WORK$([ -n "$KEEP" ] || echo ' (removed at exit; --keep DIR to keep it)')"
