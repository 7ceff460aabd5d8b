#!/usr/bin/env bash
# Speculative decoding benchmark: `pagoda run` tokens/s with each draft source against plain decoding
# of the same model, runs paired (plain, speculative, plain, ...; R pairs, medians and their ratio)
# so that a shared machine's changing load hits both alike; plus the acceptance of the first run.
# usage: tools/bench_spec.sh [MODEL] [DRAFT_MODEL]     env: R (pairs, 3), N (tokens, 128), T (threads, 2),
#                                                           TEMP (0: greedy), SEED (1)
# DRAFT_MODEL defaults to MODEL itself (every draft accepted: a draft model's best case, at the cost
# of a second full model); tools/requantize_gguf.py makes a lower-bit copy.
set -u
bin=${PAGODA_BIN:-build/pagoda}
model=${1:-$HOME/.cache/pagoda/models/SmolLM2-135M-Instruct.Q4_1.gguf}
draft=${2:-$model}
R=${R:-3} N=${N:-128} T=${T:-2} TEMP=${TEMP:-0} SEED=${SEED:-1}
copy=$'<|im_start|>user\nFix the typo in this code and print it again:\ndef fibonacci(n):\n    if n < 2:\n        return n\n    return fibonaci(n - 1) + fibonacci(n - 2)\n\nfor i in range(10):\n    print(fibonacci(i))\n<|im_end|>\n<|im_start|>assistant\n'
story=$'<|im_start|>user\nWrite a short story about a robot who learns to paint.<|im_end|>\n<|im_start|>assistant\n'
configs=("copy|--lookup 3" "copy|--lookup 3 --draft-k 2" "copy|--lookup 2 --draft-k 8" "story|--lookup 3"
         "story|--draft-layers 8" "story|--draft-layers 4 --draft-k 2" "story|--draft $draft --draft-k 2"
         "story|--draft $draft")
run() { # prompt options -> stderr of pagoda run
    "$bin" run -m "$model" -p "$1" --temp "$TEMP" -s "$SEED" -n "$N" -t "$T" $2 2>&1 >/dev/null
}
tps() { sed -n 's/.*generation: .* (\([0-9.]*\) tok\/s).*/\1/p'; }
med() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf '%-6s %-34s %-8s %-8s %-6s %s\n' prompt options plain spec ratio "accepted/drafted (tokens per step), runs"
for c in "${configs[@]}"; do
    p=${c%%|*} opts=${c#*|}
    [ "$p" = copy ] && prompt=$copy || prompt=$story
    a="" b="" acc=""
    for r in $(seq "$R"); do
        a+="$(run "$prompt" "" | tps) "
        err=$(run "$prompt" "$opts")
        b+="$(tps <<<"$err") "
        [ -z "$acc" ] && acc=$(sed -n 's/^speculative: \([0-9]*\) of \([0-9]*\) .*, \([0-9.]*\) tokens per step/\1\/\2 (\3)/p' <<<"$err")
    done
    ma=$(med <<<"$a") mb=$(med <<<"$b")
    printf '%-6s %-34s %-8s %-8s x%-5.2f %s; plain: %s; spec: %s\n' "$p" "${opts/$draft/DRAFT}" "$ma" "$mb" \
        "$(echo "$mb / $ma" | bc -l)" "$acc" "${a% }" "${b% }"
done
