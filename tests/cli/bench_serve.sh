#!/usr/bin/env bash
# `pagoda bench serve` (for now the top-level `bench-serve`) against tools/stub_sse_server.py, a stub
# OpenAI server whose behaviour is known: it waits 50 ms before the first token, 10 ms between tokens,
# streams max_tokens tokens one per event, reports usage.prompt_tokens = the prompt's word count, and
# records its peak number of requests in flight. Checks: every request succeeds; token totals equal
# N*O and N*L; TTFT >= the stub's delay; every request has O-1 gaps of about 10 ms; the reported
# mean / median / std / p99 equal the same statistics recomputed with jq (numpy's linear percentile)
# from the per-request JSON arrays; --max-concurrency holds at the server; Poisson pacing spreads the
# sends; the request bodies are what the options say; chat with CRLF, split events and no usage chunk
# counts tokens from events (the role-only first delta is not a token); HTTP errors and a wrong key are
# counted with the first message; a closed port fails every request (exit 1, like vLLM's failed
# start-up check) with a clear message; bad options are one-line usage errors (exit 2).
set -u
bin=${PAGODA_BIN:?PAGODA_BIN must point at the pagoda binary}
command -v python3 >/dev/null || { echo "SKIP: python3 is not installed (the stub server needs it)"; exit 77; }
command -v jq >/dev/null || { echo "SKIP: jq is not installed (scripts/install_deps.sh installs it)"; exit 77; }
command -v curl >/dev/null || { echo "SKIP: curl is not installed"; exit 77; }
stub=$PWD/tools/stub_sse_server.py
unset OPENAI_API_KEY
# `pagoda bench serve` once the lead folds it into `bench`; until then the top-level `bench-serve`.
if "$bin" bench serve --help 2>/dev/null | grep -q -- '--request-rate'; then bench=("$bin" bench serve)
else bench=("$bin" bench-serve); fi
tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
fails=0 checks=0
check() { # description, condition (a command)
    checks=$((checks + 1))
    if ! eval "$2"; then echo "FAIL $1"; fails=$((fails + 1)); fi
}
start_stub() { # name, stub options...: sets port_NAME
    local name=$1; shift
    python3 "$stub" --port 0 --port-file "$tmp/$name.port" "$@" 2>"$tmp/$name.stub.err" &
    pids+=($!)
    for _ in $(seq 100); do [ -s "$tmp/$name.port" ] && break; sleep 0.05; done
    [ -s "$tmp/$name.port" ] || { echo "FAIL stub server $name did not start"; cat "$tmp/$name.stub.err"; exit 1; }
    printf -v "port_$name" '%s' "$(cat "$tmp/$name.port")"
}
jqt() { jq -e "$@" >/dev/null 2>&1; } # jq test: exit status 0 iff the filter is true

# numpy-style statistics in jq, written from numpy's definitions (independent of bench_stats.c).
stats_jq='
def mean: if length == 0 then 0 else add / length end;
def pct(p): sort as $s | ($s | length) as $n
  | if $n == 0 then 0 else (p / 100 * ($n - 1)) as $r | ($r | floor) as $lo
    | ([$lo + 1, $n - 1] | min) as $hi | $s[$lo] + ($s[$hi] - $s[$lo]) * ($r - $lo) end;
def std: if length == 0 then 0 else mean as $m | (map((. - $m) * (. - $m)) | add / length) | sqrt end;
def close(a; b): ((a - b) | fabs) <= 1e-6 * ([1, (a | fabs), (b | fabs)] | max);
def same(name; xs): close(.["mean_" + name + "_ms"]; (xs | mean) * 1000)
  and close(.["median_" + name + "_ms"]; (xs | pct(50)) * 1000)
  and close(.["std_" + name + "_ms"]; (xs | std) * 1000)
  and close(.["p99_" + name + "_ms"]; (xs | pct(99)) * 1000);
. as $r | [range(0; .num_prompts) | select($r.errors[.] == "")] as $ok
| [$ok[] | $r.ttfts[.]] as $ttft | [$ok[] | $r.e2els[.]] as $e2el | [$ok[] | $r.itls[.][]] as $itl
| [$ok[] | select($r.output_lens[.] > 1) | ($r.e2els[.] - $r.ttfts[.]) / ($r.output_lens[.] - 1)] as $tpot
| same("ttft"; $ttft) and same("e2el"; $e2el) and same("itl"; $itl) and same("tpot"; $tpot)
  and close(.request_throughput; ($ok | length) / .duration)
  and close(.output_throughput; .total_output_tokens / .duration)
  and close(.total_token_throughput; (.total_input_tokens + .total_output_tokens) / .duration)
  and .total_output_tokens == ([$ok[] | $r.output_lens[.]] | add // 0)'

# ---- A: completions, rate 50 req/s, at most 4 in flight, model name from GET /v1/models ----
start_stub A --ttft-delay 0.05 --itl-delay 0.01 --log "$tmp/A.log"
"${bench[@]}" --url "http://127.0.0.1:$port_A" --num-prompts 20 --request-rate 50 --max-concurrency 4 \
    --input-len 32 --output-len 8 --seed 3 --json "$tmp/A.json" >"$tmp/A.out" 2>"$tmp/A.err"
rc=$?
check "A: exit status 0 ($rc)" "[ $rc -eq 0 ]"
check "A: the JSON parses" "jq . '$tmp/A.json' >/dev/null"
check "A: 20 succeeded, none failed" "jqt '.completed == 20 and .failed == 0 and .first_error == null' '$tmp/A.json'"
check "A: output tokens = 20 * 8 (from usage)" "jqt '.total_output_tokens == 160 and (.output_lens | all(. == 8))' '$tmp/A.json'"
check "A: input tokens = 20 * 32 (usage.prompt_tokens)" "jqt '.total_input_tokens == 640 and .input_tokens_source == \"usage\"' '$tmp/A.json'"
check "A: every TTFT >= the stub's 50 ms delay" "jqt '(.ttfts | min) >= 0.05 and .mean_ttft_ms >= 50' '$tmp/A.json'"
check "A: TTFT below 1 s (sane)" "jqt '(.ttfts | max) < 1' '$tmp/A.json'"
check "A: each request has output_len - 1 gaps" "jqt '[.itls[] | length] | all(. == 7)' '$tmp/A.json'"
check "A: ITL and TPOT about the stub's 10 ms" "jqt '.median_itl_ms >= 9 and .median_itl_ms < 100 and .mean_tpot_ms >= 9 and .mean_tpot_ms < 100' '$tmp/A.json'"
check "A: e2e >= ttft + 7 gaps" "jqt '[range(0; 20) as \$i | .e2els[\$i] >= .ttfts[\$i] + (.itls[\$i] | add) - 1e-9] | all' '$tmp/A.json'"
check "A: reported statistics equal jq's recomputation" "jq -e '$stats_jq' '$tmp/A.json' >/dev/null"
check "A: duration covers the longest request" "jqt '.duration >= (.e2els | max)' '$tmp/A.json'"
check "A: at most 4 in flight at the server" "curl -s 'http://127.0.0.1:$port_A/stats' | jq -e '.peak_in_flight <= 4 and .requests == 20' >/dev/null"
check "A: at most 4 in flight at the client" "jqt '.peak_concurrent_requests <= 4 and .max_concurrency == 4' '$tmp/A.json'"
check "A: request bodies as specified" "[ \$(wc -l <'$tmp/A.log') -eq 20 ] && jq -se 'all(.[]; .model == \"stub-model\" and .max_tokens == 8 and .temperature == 0 and .ignore_eos == true and .stream == true and .stream_options.include_usage == true and (.prompt | split(\" \") | length) == 32)' '$tmp/A.log' >/dev/null"
check "A: prompts differ" "[ \$(jq -r .prompt '$tmp/A.log' | sort -u | wc -l) -eq 20 ]"
check "A: table has vLLM's lines" "grep -q '^Successful requests: *20$' '$tmp/A.out' && grep -q '^Failed requests: *0$' '$tmp/A.out' && grep -q '^Total generated tokens: *160$' '$tmp/A.out' && grep -q '^Median TTFT (ms): *[0-9.]*$' '$tmp/A.out' && grep -q '^P99 ITL (ms):' '$tmp/A.out' && grep -q '^Mean TPOT (ms):' '$tmp/A.out' && grep -q '^Mean E2EL (ms):' '$tmp/A.out'"
check "A: table agrees with the JSON" "[ \"\$(sed -n 's/^Mean TTFT (ms): *//p' '$tmp/A.out')\" = \"\$(jq -r '.mean_ttft_ms * 100 | round / 100 | tostring' '$tmp/A.json' | awk '{printf \"%.2f\", \$1}')\" ]"

# ---- pacing and concurrency against the same stub ----
curl -s "http://127.0.0.1:$port_A/stats" >"$tmp/A.stats0"
"${bench[@]}" --url "http://127.0.0.1:$port_A/v1" --model m --num-prompts 12 --max-concurrency 4 --input-len 4 \
    --output-len 3 --json "$tmp/C4.json" >/dev/null 2>&1
check "inf rate, cap 4: exactly 4 in flight at the server" "curl -s 'http://127.0.0.1:$port_A/stats' | jq -e '.peak_in_flight == 4' >/dev/null"
check "inf rate, cap 4: all 12 succeeded" "jqt '.completed == 12 and .peak_concurrent_requests == 4' '$tmp/C4.json'"
"${bench[@]}" --url "http://127.0.0.1:$port_A" --model m --num-prompts 10 --input-len 4 --output-len 2 \
    --json "$tmp/inf.json" >/dev/null 2>&1
check "inf rate, no cap: all sent at once" "jqt '.completed == 10 and (.send_times | max) < 0.2' '$tmp/inf.json'"
"${bench[@]}" --url "http://127.0.0.1:$port_A" --model m --num-prompts 20 --request-rate 20 --input-len 4 \
    --output-len 2 --json "$tmp/r20.json" >/dev/null 2>&1
check "rate 20: sends spread over about 1 s (Poisson), in order" "jqt '.completed == 20 and .send_times[0] < 0.05 and (.send_times | . == sort) and .send_times[-1] > 0.2 and .send_times[-1] < 4 and .duration > 0.2' '$tmp/r20.json'"

"${bench[@]}" --url "http://127.0.0.1:$port_A" --model m --num-prompts 3 --input-len 4 --output-len 2 \
    --timeout 0.02 --json "$tmp/timeout.json" >/dev/null 2>&1
rc=$?
check "--timeout 0.02 s < the stub's 50 ms: all fail with a timeout, exit 1 ($rc)" "[ $rc -eq 1 ] && jqt '.failed == 3 and (.first_error | test(\"[Tt]imed out\"))' '$tmp/timeout.json'"

# ---- the same seed gives the same prompts; --prefix-len; --extra-body ----
: >"$tmp/A.log"
"${bench[@]}" --url "http://127.0.0.1:$port_A" --model m --num-prompts 5 --input-len 12 --output-len 2 --seed 11 \
    --prefix-len 5 --extra-body '{"top_k": 1, "temperature": 0.5}' >/dev/null 2>&1
jq -r .prompt "$tmp/A.log" | sort >"$tmp/s11a"
cp "$tmp/A.log" "$tmp/A.log.11"
: >"$tmp/A.log"
"${bench[@]}" --url "http://127.0.0.1:$port_A" --model m --num-prompts 5 --input-len 12 --output-len 2 --seed 11 \
    --prefix-len 5 >/dev/null 2>&1
jq -r .prompt "$tmp/A.log" | sort >"$tmp/s11b"
: >"$tmp/A.log"
"${bench[@]}" --url "http://127.0.0.1:$port_A" --model m --num-prompts 5 --input-len 12 --output-len 2 --seed 12 \
    --prefix-len 5 >/dev/null 2>&1
jq -r .prompt "$tmp/A.log" | sort >"$tmp/s12"
check "same seed, same prompts" "[ -s '$tmp/s11a' ] && cmp -s '$tmp/s11a' '$tmp/s11b'"
check "another seed, other prompts" "[ -s '$tmp/s12' ] && ! cmp -s '$tmp/s11a' '$tmp/s12'"
check "--prefix-len: 12 words, the first 5 shared, the rest not" "[ \$(awk '{print NF}' '$tmp/s11a' | sort -u) = 12 ] && [ \$(cut -d' ' -f1-5 '$tmp/s11a' | sort -u | wc -l) -eq 1 ] && [ \$(cut -d' ' -f6- '$tmp/s11a' | sort -u | wc -l) -eq 5 ]"
check "--extra-body is merged (and overrides)" "jq -se 'length == 5 and all(.[]; .top_k == 1 and .temperature == 0.5 and .model == \"m\")' '$tmp/A.log.11' >/dev/null"

# ---- B: chat, CRLF, events split mid-JSON, no usage chunk ----
start_stub B --ttft-delay 0.02 --itl-delay 0.005 --no-usage --crlf --split --log "$tmp/B.log"
"${bench[@]}" --url "http://127.0.0.1:$port_B/" --endpoint chat --model custom --num-prompts 6 --input-len 10 \
    --output-len 5 --json "$tmp/B.json" >"$tmp/B.out" 2>"$tmp/B.err"
rc=$?
check "B: exit status 0 ($rc)" "[ $rc -eq 0 ]"
check "B: chat tokens counted from events: 6 * 5 (the role-only delta is not one)" "jqt '.completed == 6 and .total_output_tokens == 30 and (.itls | all(length == 4))' '$tmp/B.json'"
check "B: input tokens fall back to the word count" "jqt '.total_input_tokens == 60 and .input_tokens_source == \"words\"' '$tmp/B.json' && grep -q 'Total input tokens (words, no usage): *60' '$tmp/B.out'"
check "B: TTFT >= 20 ms although the role delta came at once" "jqt '(.ttfts | min) >= 0.02' '$tmp/B.json'"
check "B: chat request bodies" "jq -se 'length == 6 and all(.[]; .model == \"custom\" and .messages[0].role == \"user\" and (.messages[0].content | split(\" \") | length) == 10 and .max_completion_tokens == 5 and .max_tokens == 5)' '$tmp/B.log' >/dev/null"
check "B: statistics recomputed" "jq -e '$stats_jq' '$tmp/B.json' >/dev/null"

# ---- C: API key, every 5th request fails with HTTP 500 ----
start_stub C --ttft-delay 0.01 --itl-delay 0.002 --api-key sekret --fail-every 5
"${bench[@]}" --url "http://127.0.0.1:$port_C" --model m --api-key sekret --num-prompts 10 --input-len 4 \
    --output-len 3 --json "$tmp/C.json" >"$tmp/C.out" 2>"$tmp/C.err"
rc=$?
check "C: some failed, exit status still 0 ($rc)" "[ $rc -eq 0 ]"
check "C: 8 succeeded, 2 failed, the first error shown" "jqt '.completed == 8 and .failed == 2 and (.first_error | test(\"^HTTP 500: stub failure for request [0-9]+$\")) and ([.errors[] | select(. != \"\")] | length) == 2' '$tmp/C.json'"
check "C: the table and stderr show the failure" "grep -q '^Failed requests: *2$' '$tmp/C.out' && grep -q '^First error (request [0-9]*): HTTP 500: stub failure' '$tmp/C.out' && grep -q '2 of 10 requests failed; first error: HTTP 500' '$tmp/C.err'"
check "C: statistics over the successful requests only" "jq -e '$stats_jq' '$tmp/C.json' >/dev/null && jqt '.total_output_tokens == 24' '$tmp/C.json'"
OPENAI_API_KEY=wrong "${bench[@]}" --url "http://127.0.0.1:$port_C" --model m --num-prompts 3 --input-len 4 \
    --output-len 3 --json "$tmp/key.json" >/dev/null 2>"$tmp/key.err"
rc=$?
check "wrong key (from \$OPENAI_API_KEY): all fail with HTTP 401, exit 1 ($rc)" "[ $rc -eq 1 ] && jqt '.completed == 0 and .failed == 3 and .first_error == \"HTTP 401: invalid API key\"' '$tmp/key.json'"

# ---- a closed port ----
closed=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
"${bench[@]}" --url "http://127.0.0.1:$closed" --model m --num-prompts 5 --input-len 4 --output-len 3 \
    --json "$tmp/closed.json" >"$tmp/closed.out" 2>"$tmp/closed.err"
rc=$?
check "closed port: exit status 1 ($rc)" "[ $rc -eq 1 ]"
check "closed port: all 5 failed, connection error in the JSON" "jqt '.completed == 0 and .failed == 5 and (.first_error | test(\"onnect\")) and (.errors | all(. != \"\")) and .mean_ttft_ms == 0' '$tmp/closed.json'"
check "closed port: one clear line on stderr" "grep -q \"all 5 requests failed; first error: .*port $closed.*onnect\" '$tmp/closed.err'"
check "closed port: the table shows 0 succeeded" "grep -q '^Successful requests: *0$' '$tmp/closed.out' && grep -q '^Failed requests: *5$' '$tmp/closed.out'"
"${bench[@]}" --url "http://127.0.0.1:$closed" --num-prompts 2 >"$tmp/nomodel.out" 2>"$tmp/nomodel.err"
rc=$?
check "closed port, no --model: exit 1 with one line" "[ $rc -eq 1 ] && [ \$(wc -l <'$tmp/nomodel.err') -eq 1 ] && grep -q 'cannot find the model name (give --model).*onnect' '$tmp/nomodel.err'"

# ---- options ----
"${bench[@]}" --help >"$tmp/help" 2>&1
rc=$?
check "--help exits 0" "[ $rc -eq 0 ]"
for opt in --url --endpoint --model --num-prompts --request-rate --max-concurrency --input-len --prefix-len \
    --output-len --seed --api-key --extra-body --timeout --json; do
    check "--help documents $opt" "grep -q -- '$opt ' '$tmp/help'"
done
while IFS='|' read -r args name; do
    # shellcheck disable=SC2086
    "${bench[@]}" $args >"$tmp/bad.out" 2>"$tmp/bad.err"
    rc=$?
    check "bad option '$args': exit 2, one line naming $name" "[ $rc -eq 2 ] && [ \$(wc -l <'$tmp/bad.err') -eq 1 ] && grep -q -- '$name' '$tmp/bad.err' && [ ! -s '$tmp/bad.out' ]"
done <<'CASES'
--request-rate abc|--request-rate
--request-rate 0|--request-rate
--num-prompts 0|--num-prompts
--max-concurrency -3|--max-concurrency
--output-len 1x|--output-len
--endpoint embeddings|--endpoint
--url 127.0.0.1:8080|--url
--extra-body [1]|--extra-body
--timeout 0|--timeout
--bogus|--bogus
--input-len 4 --prefix-len 5|--prefix-len
--url|--url
CASES
echo "$checks checks, $fails failed"
[ $fails -eq 0 ]
