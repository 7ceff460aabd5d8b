#!/usr/bin/env bash
# The sampler chain's options of `pagoda run` and `pagoda batch` on stories260K:
#   - `pagoda run --help` lists each option with its default;
#   - bad values give one error line naming the option (exit 2), or the field (exit 1, from the engine);
#   - --stop: the output is the unstopped greedy output cut before the first occurrence (found with
#     bash's own string operations: the independent answer), in run and in batch;
#   - --logit-bias T=100 makes greedy emit only token T (its text, from `pagoda tokenize --decode`);
#   - a seed with the full chain gives the same text from `pagoda run` and `pagoda batch`.
set -u
bin=${PAGODA_BIN:?PAGODA_BIN must point at the pagoda binary}
shared=${PAGODA_SHARED:-../shared}
model=$shared/models/stories260K.gguf
[ -f "$model" ] || { echo "SKIP: $model not found (set PAGODA_SHARED)"; exit 77; }
command -v jq >/dev/null || { echo "SKIP: jq is not installed"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0 checks=0
check() { # description, condition
    checks=$((checks + 1))
    if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fails=$((fails + 1)); fi
}

"$bin" run --help >$tmp/help.txt
for opt in "--top-k K .*default: 40" "--top-p P .*default: 0.95" "--min-p P .*default: 0.05" \
           "--typical-p P .*default: 1" "--repeat-penalty R" "--presence-penalty A .*default: 0" \
           "--frequency-penalty A .*default: 0" "--logit-bias T=B .*default: none" "--stop TEXT .*default: none" \
           "--seed S .*default" "--temp T .*default: 0.8"; do
    check "--help lists ${opt%% *} with its default" "grep -qE -- '$opt' $tmp/help.txt"
done
check "--help: the repeat penalty's default" "grep -A1 -- '--repeat-penalty' $tmp/help.txt | grep -q 'default: 1'"

bad() { # option value pattern
    checks=$((checks + 1))
    "$bin" run -m "$model" -p x -n 1 $1 "$2" >/dev/null 2>$tmp/err
    local rc=$?
    if [ $rc -ne 2 ] || [ "$(wc -l <$tmp/err)" -ne 1 ] || ! grep -q -- "$3" $tmp/err; then
        echo "FAIL $1 $2: exit $rc: $(cat $tmp/err)"; fails=$((fails + 1))
    else
        echo "ok   $1 $2: $(cat $tmp/err)"
    fi
}
bad --top-p 1.5 "for --top-p"
bad --top-k -1 "for --top-k"
bad --min-p 2 "for --min-p"
bad --typical-p 1.2 "for --typical-p"
bad --typical-p abc "for --typical-p"
bad --repeat-penalty -1 "for --repeat-penalty"
bad --presence-penalty 2.5 "for --presence-penalty"
bad --frequency-penalty -3 "for --frequency-penalty"
bad --logit-bias 5 "for --logit-bias"
bad --logit-bias 5=101 "for --logit-bias"
bad --logit-bias x=1 "for --logit-bias"
bad --stop "" "for --stop"
"$bin" run -m "$model" -p x -n 1 --logit-bias 99999=1 >/dev/null 2>$tmp/err
rc=$?
check "a bias token past the vocabulary: the engine's error names logit_bias (exit 1)" \
    "[ $rc -eq 1 ] && grep -q 'logit_bias token 99999 is out of range' $tmp/err"

prompt="Once upon a time"
"$bin" run -m "$model" -p "$prompt" -n 60 --temp 0 --ignore-eos >$tmp/full.txt 2>/dev/null
full=$(cat $tmp/full.txt)
for stop in "le gi" "Lily" "e" ", t" "no such text"; do
    want=${full%%"$stop"*}
    "$bin" run -m "$model" -p "$prompt" -n 60 --temp 0 --ignore-eos --stop zzz --stop "$stop" >$tmp/stopped.txt 2>/dev/null
    check "run --stop '$stop': the text before its first occurrence" "[ \"\$(cat $tmp/stopped.txt)\" = \"\$want\" ]"
done
printf '%s\n' '{"id": "a", "prompt": "Once upon a time", "max_tokens": 60, "temperature": 0, "ignore_eos": true, "stop": ["Lily"]}' \
    '{"id": "b", "prompt": "Once upon a time", "max_tokens": 60, "temperature": 0, "ignore_eos": true, "stop": "no such"}' >$tmp/in.jsonl
"$bin" batch -m "$model" -i $tmp/in.jsonl -o $tmp/out.jsonl --no-progress 2>/dev/null
printf '%s' "${full%%Lily*}" >$tmp/want_a.txt
check "batch stop: the text before it, finish_reason stop; absent: the whole text, length" \
    "jq -s -e --rawfile w $tmp/want_a.txt 'map(select(.id == \"a\"))[0] | .text == \$w and .finish_reason == \"stop\"' $tmp/out.jsonl >/dev/null && jq -s -e --rawfile f $tmp/full.txt 'map(select(.id == \"b\"))[0] | .text == \$f and .finish_reason == \"length\"' $tmp/out.jsonl >/dev/null"

piece=$(echo "300 300" | "$bin" tokenize -m "$model" --decode)
one=$(echo "300" | "$bin" tokenize -m "$model" --decode)
piece=${piece#"$one"}
"$bin" run -m "$model" -p "$prompt" -n 5 --temp 0 --ignore-eos --logit-bias 300=100 >$tmp/biased.txt 2>/dev/null
check "--logit-bias 300=100: five times token 300 ('$piece')" "[ \"\$(cat $tmp/biased.txt)\" = \"$piece$piece$piece$piece$piece\" ]"

chain="--temp 0.9 --top-k 30 --top-p 0.95 --min-p 0.02 --typical-p 0.9 --repeat-penalty 1.3 --presence-penalty 0.5 --frequency-penalty 0.4 --logit-bias 301=-100 --seed 7"
"$bin" run -m "$model" -p "$prompt" -n 30 --ignore-eos $chain >$tmp/run_chain.txt 2>/dev/null
printf '%s\n' '{"prompt": "Once upon a time", "max_tokens": 30, "ignore_eos": true}' >$tmp/in2.jsonl
"$bin" batch -m "$model" -i $tmp/in2.jsonl -o $tmp/out2.jsonl --no-progress $chain 2>/dev/null
check "the full chain with a seed: run and batch give the same text" \
    "jq -e --rawfile r $tmp/run_chain.txt '.text == \$r and (.token_ids | index(301)) == null' $tmp/out2.jsonl >/dev/null"
"$bin" run -m "$model" -p "$prompt" -n 30 --ignore-eos --temp 0.9 --seed 7 >$tmp/run_plain.txt 2>/dev/null
check "  ... and the chain changes the text (same seed without it)" "! cmp -s $tmp/run_chain.txt $tmp/run_plain.txt"
echo "$checks checks, $fails failed"
[ $fails -eq 0 ]
