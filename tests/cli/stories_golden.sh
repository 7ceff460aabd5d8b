#!/usr/bin/env bash
# `pagoda run` on the real 260K TinyStories model, greedy: the prompt followed by what it prints is
# exactly the owners' golden text (../shared/models/stories260K.greedy64.once-upon-a-time.txt).
set -u
bin=${PAGODA_BIN:?PAGODA_BIN must point at the pagoda binary}
shared=${PAGODA_SHARED:-../shared}
model=$shared/models/stories260K.gguf
golden=$shared/models/stories260K.greedy64.once-upon-a-time.txt
[ -f "$model" ] && [ -f "$golden" ] || { echo "SKIP: stories260K model or golden not found (set PAGODA_SHARED)"; exit 77; }
fails=0
for threads in 1 2; do
    got=$( { printf 'Once upon a time'; "$bin" run -m "$model" -p "Once upon a time" -n 60 --temp 0 -t $threads 2>/dev/null; } | od -An -c)
    want=$(od -An -c <"$golden")
    # the golden file may end with a newline the model did not print
    want_trimmed=$(printf '%s' "$(cat "$golden")" | od -An -c)
    if [ "$got" != "$want" ] && [ "$got" != "$want_trimmed" ]; then
        echo "FAIL threads=$threads: output differs from the golden"
        { printf 'Once upon a time'; "$bin" run -m "$model" -p "Once upon a time" -n 60 --temp 0 -t $threads 2>/dev/null; } | diff - "$golden" | head
        fails=$((fails + 1))
    fi
done
echo "2 checks, $fails failed"
[ $fails -eq 0 ]
