#!/usr/bin/env bash
# tests/cli/bench.sh - `pagoda bench` on a tiny random model: the markdown table's format, the JSON
# (parsed with jq), and exit codes. The expected weight bytes per generated token are worked out
# here by hand from the tiny shape (embd 256, 2 layers, 4/2 heads of 64, ffn 512, vocab 512,
# untied, F16 matrices, F32 norms), not taken from the program.
set -u
BIN=${PAGODA_BIN:-build/pagoda}
tmp=$(mktemp -d /tmp/pagoda-bench-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
command -v jq >/dev/null || { echo "SKIP: jq is not installed"; exit 77; }

"$BIN" gen-model --shape tiny -o "$tmp/tiny.gguf" -q || { echo "FAIL: gen-model"; exit 1; }
# per layer: q 256x256, k 256x128, v 256x128, o 256x256, gate/up/down 256x512 (2 bytes each),
# two norms of 256 floats; then output 256x512 (2 bytes), output_norm 256 floats, one embedding row
per_layer=$(( (256*256*2 + 256*128*2 + 3*256*512) * 2 + 2*256*4 ))
expected_bytes=$(( 2*per_layer + 256*512*2 + 256*4 + 256*2 ))
file_bytes=$(stat -c %s "$tmp/tiny.gguf")

# 1. markdown table
"$BIN" bench -m "$tmp/tiny.gguf" -p 16 -n 8 -r 3 -t 1 --membw-mib 4 >"$tmp/md.txt" 2>"$tmp/md.err" ||
    fail "bench (markdown) exit $?: $(tail -n 3 "$tmp/md.err")"
grep -q '^| model | type | size | params | threads | test | tok/s | % of ceiling |$' "$tmp/md.txt" ||
    fail "markdown header"
num='[0-9]+\.[0-9]{2}'
grep -Eq "^\| tiny\.gguf \| F16 \| $num MiB \| $num M \| 1 \| pp16 \| $num ± $num \| - \|$" "$tmp/md.txt" ||
    fail "pp16 row: $(grep pp16 "$tmp/md.txt")"
grep -Eq "^\| tiny\.gguf \| F16 \| $num MiB \| $num M \| 1 \| tg8 \| $num ± $num \| [0-9]+% \|$" "$tmp/md.txt" ||
    fail "tg8 row: $(grep tg8 "$tmp/md.txt")"
[ "$(grep -c '^| tiny' "$tmp/md.txt")" -eq 2 ] || fail "expected 2 rows"
want_mb=$(awk -v b="$expected_bytes" 'BEGIN { printf "%.1f", b / 1e6 }')
grep -q "^weights read per generated token: $want_mb MB$" "$tmp/md.txt" || fail "bytes per token line"
grep -Eq '^1 threads: bandwidth read [0-9.]+ GB/s, triad [0-9.]+ GB/s .*peak memory [0-9.]+ MiB$' "$tmp/md.txt" ||
    fail "bandwidth line"
grep -q 'tg8 rep 3/3' "$tmp/md.err" || fail "progress on stderr"
grep -q 'rep [0-9]' "$tmp/md.txt" && fail "progress leaked to stdout"

# 2. JSON, two thread counts, no warm-up
"$BIN" bench -m "$tmp/tiny.gguf" -p 8,16 -n 4 -r 2 -t 1,2 --membw-mib 4 --no-warmup --json \
    >"$tmp/out.json" 2>"$tmp/json.err" || fail "bench --json exit $?: $(tail -n 3 "$tmp/json.err")"
jq -e . "$tmp/out.json" >/dev/null || fail "--json output does not parse"
check() { jq -e "$1" "$tmp/out.json" >/dev/null || fail "json: $1"; }
check '.model_file == "tiny.gguf" and .model_type == "F16" and .model_type_mixed == false'
check ".weight_bytes_per_token == $expected_bytes"
check ".model_size_bytes == $file_bytes"
check '.architecture == "llama" and .repetitions == 2 and .warmup == false'
check '[.results[].test] == ["pp8","pp16","tg4","pp8","pp16","tg4"]'
check '[.results[].n_threads] == [1,1,1,2,2,2]'
check 'all(.results[]; (.samples_ts | length) == 2 and all(.samples_ts[]; . > 0))'
# mean and sample standard deviation recomputed from the samples
check 'all(.results[]; . as $r | (($r.samples_ts | add) / 2 - $r.avg_ts | fabs) < 1e-3 * $r.avg_ts)'
check 'all(.results[]; . as $r | ((($r.samples_ts[0] - $r.samples_ts[1]) | fabs) / (2 | sqrt) - $r.stddev_ts
                                  | fabs) < 1e-3 * $r.avg_ts + 1e-9)'
check 'all(.results[]; .peak_rss_bytes > 1000000 and .membw_read_gbs > 0 and .membw_triad_gbs > 0)'
check 'all(.results[] | select(.n_gen > 0); . as $r
          | ($r.ceiling_ts - $r.membw_read_gbs * 1e9 / '"$expected_bytes"' | fabs) < 1e-3 * $r.ceiling_ts)'
check 'all(.results[] | select(.n_gen > 0); . as $r | ($r.ceiling_pct - 100 * $r.avg_ts / $r.ceiling_ts | fabs) < 1e-2)'
check 'all(.results[] | select(.n_prompt > 0); has("ceiling_ts") | not)'

# 3. probe off: no bandwidth, no ceiling
"$BIN" bench -m "$tmp/tiny.gguf" -p 0 -n 4 -r 1 --membw-mib 0 --json >"$tmp/off.json" 2>/dev/null ||
    fail "--membw-mib 0"
jq -e '[.results[].test] == ["tg4"] and all(.results[]; has("membw_read_gbs") | not)' "$tmp/off.json" \
    >/dev/null || fail "--membw-mib 0 still probes, or -p 0 still runs pp"

# 4. help and errors: usage errors exit 2, run-time errors exit 1 with one line
"$BIN" bench --help | grep -q -- '--membw-mib' || fail "--help"
"$BIN" bench -p 8 2>/dev/null; [ $? -eq 2 ] || fail "missing -m: exit 2"
"$BIN" bench -m "$tmp/tiny.gguf" -p 8,x 2>/dev/null; [ $? -eq 2 ] || fail "bad -p: exit 2"
"$BIN" bench -m "$tmp/tiny.gguf" -r 0 2>/dev/null; [ $? -eq 2 ] || fail "-r 0: exit 2"
"$BIN" bench -m "$tmp/tiny.gguf" -t 0 2>/dev/null; [ $? -eq 2 ] || fail "-t 0: exit 2"
"$BIN" bench -m "$tmp/none.gguf" 2>"$tmp/err.txt"; [ $? -eq 1 ] || fail "missing file: exit 1"
[ "$(wc -l <"$tmp/err.txt")" -eq 1 ] || fail "missing file: one line expected: $(cat "$tmp/err.txt")"

[ $fails -eq 0 ] && echo "bench: all checks passed"
exit $((fails > 0))
