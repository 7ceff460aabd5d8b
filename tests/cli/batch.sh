#!/usr/bin/env bash
# `pagoda batch` end to end on stories260K: every good line gets a result in input order with its id
# (or its line number), text, token ids, finish reason and exact usage; bad lines get an error record
# and do not stop the others; each result's text equals what `pagoda run` prints for that prompt
# alone (greedy), and a chat `messages` line works.
set -u
bin=${PAGODA_BIN:?PAGODA_BIN must point at the pagoda binary}
shared=${PAGODA_SHARED:-../shared}
model=$shared/models/stories260K.gguf
[ -f "$model" ] || { echo "SKIP: $model not found (set PAGODA_SHARED)"; exit 77; }
command -v jq >/dev/null || { echo "SKIP: jq is not installed (scripts/install_deps.sh installs it)"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0 checks=0
check() { # description, condition (a command)
    checks=$((checks + 1))
    if ! eval "$2"; then echo "FAIL $1"; fails=$((fails + 1)); fi
}
cat >"$tmp/in.jsonl" <<'JSONL'
{"id": "a", "prompt": "Once upon a time", "max_tokens": 30, "temperature": 0}
{"prompt": "The little dog", "max_tokens": 20, "temperature": 0}
this is not json
{"id": 7, "prompt": 42}
{"id": "long", "prompt": "Lily and Ben went to the park to play with a big red ball", "max_tokens": 25, "temperature": 0}
{"id": "chat", "messages": [{"role": "user", "content": "Tell me a story"}], "max_tokens": 10, "temperature": 0}
{"id": "n2", "prompt": "One day", "max_tokens": 8, "temperature": 0.9, "seed": 3, "n": 2}
JSONL
"$bin" batch -m "$model" -i "$tmp/in.jsonl" -o "$tmp/out.jsonl" --no-progress 2>"$tmp/err"
# result ID: the output line of request ID (jq -e on one line: its exit status is the test)
result() { jq -c "select(.id==\"$1\")" "$tmp/out.jsonl"; }
rc=$?
check "exit status 0 (bad lines are records, not failures): $rc" "[ $rc -eq 0 ]"
check "one result per input line" "[ \$(wc -l <'$tmp/out.jsonl') -eq 7 ]"
check "KV cache size printed at start-up" "grep -q 'KV cache: [0-9]* blocks of 16 tokens' '$tmp/err'"
check "throughput summary printed" "grep -q 'generated tok/s' '$tmp/err'"
check "ids kept and defaulted to line numbers" "[ \"\$(jq -c .id '$tmp/out.jsonl' | tr '\n' ' ')\" = '\"a\" 2 3 7 \"long\" \"chat\" \"n2\" ' ]"
check "bad JSON gets an error record naming the line" "sed -n 3p '$tmp/out.jsonl' | jq -e '.error.message | test(\"line 3: invalid JSON\")' >/dev/null"
check "a non-string prompt gets an error record" "sed -n 4p '$tmp/out.jsonl' | jq -e '.error.message | test(\"prompt\")' >/dev/null"
check "usage counts are exact" "result a | jq -e '.usage.completion_tokens == (.token_ids|length) and .usage.prompt_tokens == 5' >/dev/null"
check "finish reasons" "result a | jq -e '.finish_reason == \"length\"' >/dev/null"
check "chat messages are rendered and run" "result chat | jq -e '(.token_ids|length) > 0 and .usage.prompt_tokens > 10' >/dev/null"
check "n=2 gives two samples" "result n2 | jq -e '(.samples|length) == 2 and .usage.completion_tokens == 16' >/dev/null"
while IFS='|' read -r id n prompt; do
    "$bin" run -m "$model" -p "$prompt" -n "$n" --temp 0 >"$tmp/run.txt" 2>/dev/null
    result "$id" | jq -j .text >"$tmp/batch.txt"
    check "batch text of '$id' equals pagoda run's" "[ -s '$tmp/run.txt' ] && cmp -s '$tmp/run.txt' '$tmp/batch.txt'"
done <<'CASES'
a|30|Once upon a time
long|25|Lily and Ben went to the park to play with a big red ball
CASES
"$bin" batch -m "$model" -i "$tmp/missing.jsonl" -o "$tmp/x.jsonl" 2>"$tmp/err2"
rc=$?
check "a missing input file is a one-line error" "[ $rc -eq 1 ] && [ \$(wc -l <'$tmp/err2') -eq 1 ]"
echo "$checks checks, $fails failed"
[ $fails -eq 0 ]
