#!/usr/bin/env bash
# The search strategies' CLI options (`pagoda run` and `pagoda batch`): --help documents each with
# its default; bad values are refused naming the option, before any model is loaded; on stories260K
# each strategy runs to the end and `pagoda run` prints its speed; `pagoda batch` returns the n best
# beams, best first, with the top one equal to what `pagoda run --beams` prints.
set -u
bin=${PAGODA_BIN:?PAGODA_BIN must point at the pagoda binary}
shared=${PAGODA_SHARED:-../shared}
model=$shared/models/stories260K.gguf
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0 checks=0
check() { # description, condition (a command)
    checks=$((checks + 1))
    if ! eval "$2"; then echo "FAIL $1"; fails=$((fails + 1)); fi
}
for cmd in run batch; do
    "$bin" $cmd --help >"$tmp/help" 2>&1
    for opt in "--beams N.*default: 1" "--length-penalty L.*default: 1" "--early-stopping.*default: off" \
               "--penalty-alpha A.*default: 0" "--dola LAYERS.*default: off"; do
        check "$cmd --help documents '$opt'" "grep -q -- '$opt' '$tmp/help'"
    done
done
bad() { # option value
    "$bin" run -m /nonexistent.gguf -p x "$1" "$2" >"$tmp/out" 2>&1
    local rc=$?
    check "run $1 $2 is refused (rc $rc) naming the option" "[ $rc -eq 2 ] && grep -q -- \"invalid value '$2' for $1\" '$tmp/out'"
}
bad --beams 0
bad --beams -3
bad --length-penalty abc
bad --penalty-alpha 1.5
bad --dola middle
bad --dola 4,,5

if [ -f "$model" ]; then
    for opts in "--beams 3" "--beams 3 --early-stopping --length-penalty 0.5" "--penalty-alpha 0.6 --top-k 4" \
                "--dola low" "--dola 0,2"; do
        "$bin" run -m "$model" -p "Once upon a time" -n 12 $opts >"$tmp/out" 2>"$tmp/err"
        rc=$?
        check "run $opts: exit 0 (rc $rc: $(tail -1 "$tmp/err"))" "[ $rc -eq 0 ] && [ -s '$tmp/out' ]"
        check "run $opts: prints the strategy's speed" "grep -Eq '(beam search|contrastive search|DoLa).*tok/s' '$tmp/err'"
    done
    "$bin" run -m "$model" -p "Lily and Ben" -n 10 --beams 3 >"$tmp/run_beam" 2>/dev/null
    if command -v jq >/dev/null; then
        echo '{"id": "b", "prompt": "Lily and Ben", "max_tokens": 10, "n": 3}' >"$tmp/in.jsonl"
        "$bin" batch -m "$model" -i "$tmp/in.jsonl" -o "$tmp/out.jsonl" --no-progress --beams 3 2>"$tmp/err"
        check "batch --beams 3 n 3: three samples" "jq -e '.samples | length == 3' '$tmp/out.jsonl' >/dev/null || jq -e '.choices | length == 3' '$tmp/out.jsonl' >/dev/null"
        check "batch best beam equals run --beams 3" "[ \"\$(jq -r .text '$tmp/out.jsonl')\" = \"\$(cat '$tmp/run_beam')\" ]"
    fi
else
    echo "note: $model not found, only the option checks ran"
fi
echo "$checks checks, $fails failed"
[ "$fails" -eq 0 ]
