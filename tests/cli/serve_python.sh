#!/usr/bin/env bash
# `pagoda serve` with the official `openai` Python client (tests/server/*.py), on stories260K:
# completions and chat, streaming and not, errors as the client's exceptions, and 32 concurrent
# streams equal to their requests alone (also on SmolLM2 Q4_1 when it has been fetched). Python runs only here, as a client.
# The interpreter: $PAGODA_PYTHON, else ~/.cache/pagoda/venv/bin/python, else python3, whichever
# first imports openai (Debian's pip refuses system installs: make the venv with
#   python3 -m venv ~/.cache/pagoda/venv && ~/.cache/pagoda/venv/bin/pip install openai).
set -u
bin=${PAGODA_BIN:?PAGODA_BIN must point at the pagoda binary}
shared=${PAGODA_SHARED:-../shared}
model=$shared/models/stories260K.gguf
[ -f "$model" ] || { echo "SKIP: $model not found (set PAGODA_SHARED)"; exit 77; }
command -v curl >/dev/null || { echo "SKIP: curl is not installed"; exit 77; }
python=""
for p in "${PAGODA_PYTHON:-}" "$HOME/.cache/pagoda/venv/bin/python" python3; do
    [ -n "$p" ] && "$p" -c 'import openai' 2>/dev/null && { python=$p; break; }
done
[ -n "$python" ] || { echo "SKIP: no python with the openai package (python3 -m venv ~/.cache/pagoda/venv && ~/.cache/pagoda/venv/bin/pip install openai)"; exit 77; }
tmp=$(mktemp -d)
trap 'kill ${s_pid:-} 2>/dev/null; rm -rf "$tmp"' EXIT
. "$(dirname "$0")/../server/lib.sh"

prompt="Once upon a time"
"$bin" run -m "$model" -p "$prompt" -n 24 --temp 0 >"$tmp/reference.txt" 2>/dev/null
start_server s -m "$model" --api-key test-key --served-model-name stories || exit 1
# stories260K is so fast that short requests end before 32 client threads have all started
export PAGODA_URL=$s_url PAGODA_API_KEY=test-key PAGODA_MODEL_ID=stories PAGODA_PROMPT=$prompt PAGODA_MAX_TOKENS=200 \
       PAGODA_REFERENCE=$tmp/reference.txt
for t in test_openai_client test_concurrency; do
    "$python" "$(dirname "$0")/../server/$t.py" >"$tmp/$t.out" 2>&1
    rc=$?
    cat "$tmp/$t.out"
    check "$t.py passes" "[ $rc -eq 0 ]"
done
check "metrics: nothing left running" "[ \$(metric $s_url num_requests_running) = 0 ] && [ \$(metric $s_url kv_cache_usage_perc) = 0 ]"
stop_server s

# The same 32 concurrent streams on a real quantized model (int8-activation kernels): batch
# invariance must hold there too. Skipped under the sanitizers (minutes there, and the kernels'
# invariance is tested under them by test_engine_invariance).
smol=${PAGODA_MODEL_DIR:-$HOME/.cache/pagoda/models}/SmolLM2-135M-Instruct.Q4_1.gguf
case "$bin" in
*build-asan*) echo "SKIP part: SmolLM2 concurrency under the sanitizers" ;;
*)
    if [ -f "$smol" ]; then
        start_server q -m "$smol" --api-key test-key --served-model-name smollm2 -c 1024 || exit 1
        PAGODA_URL=$q_url PAGODA_MODEL_ID=smollm2 PAGODA_MAX_TOKENS=24 "$python" "$(dirname "$0")/../server/test_concurrency.py" \
            >"$tmp/smol.out" 2>&1
        rc=$?
        cat "$tmp/smol.out"
        check "test_concurrency.py passes on SmolLM2 Q4_1" "[ $rc -eq 0 ]"
        stop_server q
    else
        echo "SKIP part: $smol not found (scripts/fetch_model.sh)"
    fi ;;
esac
echo "$checks checks, $fails failed"
[ $fails -eq 0 ]
