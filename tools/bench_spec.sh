#!/usr/bin/env bash
# Speculative decoding benchmark: `pagoda run` greedy tokens/s and acceptance for each draft source
# against plain decoding of the same model, on the same machine, runs interleaved (median of R).
# usage: tools/bench_spec.sh [MODEL] [DRAFT_MODEL]   env: R (repeats, 3), N (tokens, 128), T (threads, 2)
# DRAFT_MODEL defaults to MODEL itself (every draft accepted: the upper bound of a draft model's
# acceptance at the cost of a second full model); tools/requantize_gguf.py makes a lower-bit copy.
set -u
bin=${PAGODA_BIN:-build/pagoda}
model=${1:-$HOME/.cache/pagoda/models/SmolLM2-135M-Instruct.Q4_1.gguf}
draft=${2:-$model}
R=${R:-3} N=${N:-128} T=${T:-2}
copy=$'<|im_start|>user\nFix the typo in this code and print it again:\ndef fibonacci(n):\n    if n < 2:\n        return n\n    return fibonaci(n - 1) + fibonacci(n - 2)\n\nfor i in range(10):\n    print(fibonacci(i))\n<|im_end|>\n<|im_start|>assistant\n'
story=$'<|im_start|>user\nWrite a short story about a robot who learns to paint.<|im_end|>\n<|im_start|>assistant\n'
configs=("copy|" "copy|--lookup 3" "copy|--lookup 2 --draft-k 8"
         "story|" "story|--lookup 3" "story|--draft-layers 4 --draft-k 2" "story|--draft-layers 8"
         "story|--draft $draft --draft-k 2" "story|--draft $draft")
declare -A rates
for r in $(seq "$R"); do
    for c in "${configs[@]}"; do
        p=${c%%|*} opts=${c#*|}
        [ "$p" = copy ] && prompt=$copy || prompt=$story
        err=$("$bin" run -m "$model" -p "$prompt" --temp 0 -n "$N" -t "$T" $opts 2>&1 >/dev/null)
        tps=$(sed -n 's/.*generation: \([0-9]*\) tokens in .* (\([0-9.]*\) tok\/s).*/\2/p' <<<"$err")
        acc=$(sed -n 's/^speculative: \([0-9]*\) of \([0-9]*\) .*, \([0-9.]*\) tokens per step/\1\/\2 (\3 per step)/p' <<<"$err")
        rates["$c"]+="$tps "
        [ "$r" = 1 ] && rates["$c acc"]=$acc
    done
done
# the best run is the least disturbed one on a shared machine; the median is printed beside it
printf '%-6s %-36s %-8s %-8s %-34s %s\n' prompt options "best" "median" "tok/s of each run" "accepted/drafted"
for c in "${configs[@]}"; do
    sorted=$(tr ' ' '\n' <<<"${rates[$c]}" | grep . | sort -g)
    med=$(awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}' <<<"$sorted")
    best=$(tail -1 <<<"$sorted")
    opts=${c#*|}
    printf '%-6s %-36s %-8s %-8s %-34s %s\n' "${c%%|*}" "${opts/$draft/DRAFT}" "$best" "$med" "${rates[$c]% }" \
        "${rates["$c acc"]:-}"
done
