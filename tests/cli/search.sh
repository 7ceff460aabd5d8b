#!/usr/bin/env bash
# The search strategies' CLI options (`pagoda run` and `pagoda batch`): --help documents each with
# its default; bad values are refused naming the option, before any model is loaded; on stories260K
# each strategy runs to the end and `pagoda run` prints its speed; `pagoda batch` returns the n best
# beams, best first, with the top one equal to what `pagoda run --beams` prints; over HTTP
# (`pagoda serve`) num_beams / use_beam_search+best_of / dola_layers / penalty_alpha give what
# `pagoda run` gives, and bad values are 400s naming the field.
set -u
bin=${PAGODA_BIN:?PAGODA_BIN must point at the pagoda binary}
shared=${PAGODA_SHARED:-../shared}
model=$shared/models/stories260K.gguf
tmp=$(mktemp -d)
trap 'kill ${s_pid:-} 2>/dev/null; rm -rf "$tmp"' EXIT
. "$(dirname "$0")/../server/lib.sh" # check, start_server, http, stop_server
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
    if command -v curl >/dev/null && command -v jq >/dev/null && start_server s -m "$model"; then
        "$bin" run -m "$model" -p "Lily and Ben" -n 10 --dola 0,2 >"$tmp/run_dola" 2>/dev/null
        "$bin" run -m "$model" -p "Lily and Ben" -n 10 --penalty-alpha 0.5 --top-k 3 >"$tmp/run_cs" 2>/dev/null
        req() { # extra JSON fields -> status in $st, first choice's text in $tmp/text
            st=$(http POST "$s_url/v1/completions" "{\"prompt\": \"Lily and Ben\", \"max_tokens\": 10, $1}")
            jq -r '.choices[0].text // empty' "$tmp/body" >"$tmp/text" 2>/dev/null
        }
        same() { [ "$st" = 200 ] && [ -s "$1" ] && [ "$(cat "$tmp/text")" = "$(cat "$1")" ]; }
        req '"num_beams": 3, "n": 2'
        check "HTTP num_beams 3, n 2: two choices, the best beam first, as run (status $st)" \
            "same $tmp/run_beam && [ \$(jq '.choices|length' $tmp/body) = 2 ]"
        req '"use_beam_search": true, "best_of": 3'
        check "HTTP use_beam_search + best_of 3: the same best beam (status $st)" "same $tmp/run_beam"
        req '"dola_layers": [0, 2]'
        check "HTTP dola_layers [0, 2] as run --dola 0,2 (status $st)" "same $tmp/run_dola"
        req '"penalty_alpha": 0.5, "top_k": 3'
        check "HTTP penalty_alpha 0.5 top_k 3 as run (status $st)" "same $tmp/run_cs"
        req '"num_beams": 0'
        check "HTTP num_beams 0 is a 400 naming num_beams (status $st)" \
            "[ $st = 400 ] && jq -e '.error.param == \"num_beams\"' $tmp/body >/dev/null"
        req '"dola_layers": "mid"'
        check "HTTP dola_layers 'mid' is a 400 naming dola_layers (status $st)" \
            "[ $st = 400 ] && jq -e '.error.param == \"dola_layers\"' $tmp/body >/dev/null"
        stop_server s
    fi
else
    echo "note: $model not found, only the option checks ran"
fi
echo "$checks checks, $fails failed"
[ "$fails" -eq 0 ]
