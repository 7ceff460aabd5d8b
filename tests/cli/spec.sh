#!/usr/bin/env bash
# Speculative decoding from the command line, on stories260K: `pagoda run --help` documents the
# options; bad values give one error line naming the option; with each draft source the greedy text
# equals plain `pagoda run` (the reference) and the summary reports the acceptance, also cut by a
# stop string; `pagoda serve
# --lookup` answers like plain `pagoda run` and counts drafts in /metrics (vLLM's names).
set -u
bin=${PAGODA_BIN:?PAGODA_BIN must point at the pagoda binary}
shared=${PAGODA_SHARED:-../shared}
model=$shared/models/stories260K.gguf
[ -f "$model" ] || { echo "SKIP: $model not found (set PAGODA_SHARED)"; exit 77; }
tmp=$(mktemp -d)
trap 'kill ${a_pid:-} 2>/dev/null; rm -rf "$tmp"' EXIT
. "$(dirname "$0")/../server/lib.sh"

"$bin" run --help >"$tmp/help.txt"
for opt in --draft --draft-layers --lookup --draft-k; do
    check "--help documents $opt" "grep -q -- '^ *$opt ' $tmp/help.txt"
done
bad() { # option value pattern
    "$bin" run -m "$model" -p x "$1" "$2" >/dev/null 2>"$tmp/err"
    local rc=$?
    check "$1 $2 is refused naming the option" "[ $rc -ne 0 ] && [ \$(wc -l <$tmp/err) -eq 1 ] && grep -q -- '$3' $tmp/err"
}
bad --draft-k 0 "--draft-k"
bad --draft-k 17 "--draft-k"
bad --lookup -1 "--lookup"
bad --draft-layers x "--draft-layers"
bad --draft-layers 5 "draft-layers must be 1 to 4"
bad --draft /nonexistent.gguf "nonexistent.gguf"

prompt="Once upon a time"
"$bin" run -m "$model" -p "$prompt" -n 48 --temp 0 >"$tmp/plain.txt" 2>/dev/null
for src in "--lookup 2" "--draft-layers 3" "--draft $model --draft-k 6"; do
    "$bin" run -m "$model" -p "$prompt" -n 48 --temp 0 $src >"$tmp/spec.txt" 2>"$tmp/spec.err"
    check "$src: same greedy text as plain run" "[ -s $tmp/plain.txt ] && cmp -s $tmp/plain.txt $tmp/spec.txt"
    check "$src: acceptance reported" "grep -q '^speculative: [0-9]* of [0-9]* drafted tokens accepted' $tmp/spec.err"
done

"$bin" run -m "$model" -p "$prompt" -n 48 --temp 0 --stop "park" >"$tmp/stop_plain.txt" 2>/dev/null
"$bin" run -m "$model" -p "$prompt" -n 48 --temp 0 --stop "park" --lookup 1 >"$tmp/stop_spec.txt" 2>/dev/null
check "a stop string cuts the speculative text where it cuts the plain one" \
    "[ -s $tmp/stop_plain.txt ] && cmp -s $tmp/stop_plain.txt $tmp/stop_spec.txt && ! grep -q park $tmp/stop_spec.txt"

start_server a -m "$model" --lookup 2 || exit 1
status=$(http POST $a_url/v1/completions "{\"prompt\": \"$prompt\", \"max_tokens\": 48, \"temperature\": 0}")
check "serve --lookup: completion equals plain run" "[ $status = 200 ] && [ \"\$(jq -j '.choices[0].text' $tmp/body)\" = \"\$(cat $tmp/plain.txt)\" ]"
check "metrics: draft tokens counted" "[ \$(metric $a_url spec_decode_num_draft_tokens_total) -gt 0 ]"
check "metrics: accepted tokens counted" "[ -n \"\$(metric $a_url spec_decode_num_accepted_tokens_total)\" ]"
stop_server a

echo "$checks checks, $fails failed"
[ $fails -eq 0 ]
