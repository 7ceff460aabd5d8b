#!/usr/bin/env bash
# `pagoda serve` over HTTP with curl, on stories260K: every route; completions and chat, streaming
# and not, whose greedy text equals `pagoda run`'s for the same prompt (the independent reference);
# exact usage counts (prompt tokens = `pagoda tokenize --add-special`); stop strings (the text is
# cut before the first occurrence, found by jq on the unstopped text); n > 1; tokenize and
# detokenize against `pagoda tokenize`; CORS; the 503 of /health while the model loads; and a
# clean stop on SIGTERM. Errors and hostile clients are in serve_errors.sh.
set -u
bin=${PAGODA_BIN:?PAGODA_BIN must point at the pagoda binary}
shared=${PAGODA_SHARED:-../shared}
model=$shared/models/stories260K.gguf
[ -f "$model" ] || { echo "SKIP: $model not found (set PAGODA_SHARED)"; exit 77; }
for tool in curl jq; do command -v $tool >/dev/null || { echo "SKIP: $tool is not installed"; exit 77; }; done
tmp=$(mktemp -d)
trap 'kill ${a_pid:-} ${b_pid:-} 2>/dev/null; rm -rf "$tmp"' EXIT
. "$(dirname "$0")/../server/lib.sh"

# /health answers 503 while the model loads (the load is held back 5 s by a test hook, room for a loaded machine)
PAGODA_SERVE_TEST_LOAD_DELAY_MS=5000 START_NO_WAIT=1 start_server b -m "$model" --cors-origin 'https://example.org' || exit 1
check "/health is 503 while loading" "[ \$(http GET $b_url/health) = 503 ] && jq -e '.status == \"loading\"' $tmp/body >/dev/null"
check "/v1/models is 503 while loading" "[ \$(http GET $b_url/v1/models) = 503 ]"
for _ in $(seq 300); do grep -q 'ready:' "$tmp/b.log" && break; sleep 0.1; done
check "/health is 200 once loaded" "[ \$(http GET $b_url/health) = 200 ] && jq -e '.status == \"ok\"' $tmp/body >/dev/null"
check "CORS: the origin is allowed on answers" "curl -si $b_url/v1/models | grep -qi '^Access-Control-Allow-Origin: https://example.org'"
check "CORS: preflight OPTIONS is 204 with the allowed headers" \
    "curl -si -X OPTIONS $b_url/v1/chat/completions | tr -d '\r' | grep -q '^Access-Control-Allow-Headers: Authorization, Content-Type' && [ \$(http OPTIONS $b_url/v1/chat/completions) = 204 ]"
stop_server b

start_server a -m "$model" || exit 1
u=$a_url
check "printed address answers" "[ \$(http GET $u/health) = 200 ]"
check "no CORS headers unless asked" "! curl -si $u/v1/models | grep -qi '^Access-Control'"
check "GET /v1/models lists the model (file name without .gguf)" \
    "[ \$(http GET $u/v1/models) = 200 ] && jq -e '.object == \"list\" and .data[0].id == \"stories260K\" and .data[0].object == \"model\"' $tmp/body >/dev/null"
check "GET / serves an HTML page" "[ \$(http GET $u/) = 200 ] && grep -qi '<html' $tmp/body"

# completions, against pagoda run (greedy)
prompt="Once upon a time"
"$bin" run -m "$model" -p "$prompt" -n 24 --temp 0 >"$tmp/run.txt" 2>/dev/null
n_prompt=$(printf '%s' "$prompt" | "$bin" tokenize -m "$model" --add-special --parse-special | wc -w)
status=$(http POST $u/v1/completions "{\"model\": \"stories260K\", \"prompt\": \"$prompt\", \"max_tokens\": 24, \"temperature\": 0}")
cp "$tmp/body" "$tmp/completion.json"
jq -j '.choices[0].text' "$tmp/completion.json" >"$tmp/completion.txt"
check "completion: 200" "[ $status = 200 ]"
check "completion text equals pagoda run's" "[ -s $tmp/run.txt ] && cmp -s $tmp/run.txt $tmp/completion.txt"
check "completion: object, model, finish_reason length" \
    "jq -e '.object == \"text_completion\" and .model == \"stories260K\" and (.id|startswith(\"cmpl-\")) and .choices[0].finish_reason == \"length\"' $tmp/completion.json >/dev/null"
check "completion usage is exact ($n_prompt prompt tokens, 24 generated)" \
    "jq -e '.usage.prompt_tokens == $n_prompt and .usage.completion_tokens == 24 and .usage.total_tokens == $n_prompt + 24 and .usage.prompt_tokens_details.cached_tokens >= 0' $tmp/completion.json >/dev/null"
ids=$(printf '%s' "$prompt" | "$bin" tokenize -m "$model" --add-special --parse-special | tr ' ' ',')
check "a prompt given as token ids gives the same text" \
    "[ \$(http POST $u/v1/completions '{\"prompt\": [$ids], \"max_tokens\": 24, \"temperature\": 0}') = 200 ] && [ \"\$(jq -j '.choices[0].text' $tmp/body)\" = \"\$(cat $tmp/run.txt)\" ]"

# prefix caching: a repeated long prompt reuses its full blocks; cached_tokens = the engine's hit count
long_prompt="Lily and Ben went to the park to play with a big red ball. They ran and laughed and the sun was warm on their faces all day"
http POST $u/v1/completions "{\"prompt\": \"$long_prompt\", \"max_tokens\": 2}" >/dev/null
hits_before=$(metric $u prefix_cache_hits_total)
http POST $u/v1/completions "{\"prompt\": \"$long_prompt\", \"max_tokens\": 2}" >/dev/null
hits_after=$(metric $u prefix_cache_hits_total)
check "a repeated prompt: cached_tokens > 0 and equal to the engine's prefix-cache hits" \
    "jq -e --argjson d \$(( \${hits_after%.*} - \${hits_before%.*} )) '.usage.prompt_tokens_details.cached_tokens == \$d and \$d >= 16' $tmp/body >/dev/null"

# streaming completions: the same text in chunks, usage last, then [DONE]
curl -sN $u/v1/completions -d "{\"prompt\": \"$prompt\", \"max_tokens\": 24, \"temperature\": 0, \"stream\": true, \"stream_options\": {\"include_usage\": true}}" >"$tmp/stream.txt"
sse_text "$tmp/stream.txt" >"$tmp/stream_text.txt"
check "stream: text equals the non-streamed text" "cmp -s $tmp/completion.txt $tmp/stream_text.txt"
check "stream: ends with data: [DONE]" "[ \"\$(grep '^data:' $tmp/stream.txt | tail -1)\" = 'data: [DONE]' ]"
# (text deltas produced while the client is busy may share one event: at least a text chunk and usage)
check "stream: several chunks, each an event of one line" "[ \$(grep -c '^data: {' $tmp/stream.txt) -ge 2 ] && ! grep -v '^data: ' $tmp/stream.txt | grep -q ."
check "stream: usage chunk last (choices empty), usage null before" \
    "grep '^data: {' $tmp/stream.txt | tail -1 | sed 's/^data: //' | jq -e '.choices == [] and .usage.completion_tokens == 24 and .usage.prompt_tokens == $n_prompt' >/dev/null && [ \$(grep '^data: {' $tmp/stream.txt | sed 's/^data: //' | jq -s '[.[] | select(.usage == null)] | length') -eq \$(( \$(grep -c '^data: {' $tmp/stream.txt) - 1 )) ]"
check "stream: one finish_reason length" "[ \$(grep '^data: {' $tmp/stream.txt | sed 's/^data: //' | jq -s '[.[] | .choices[] | select(.finish_reason == \"length\")] | length') -eq 1 ]"
curl -sN $u/v1/completions -d "{\"prompt\": \"$prompt\", \"max_tokens\": 5, \"stream\": true}" >"$tmp/stream2.txt"
check "stream without include_usage has no usage field" "! grep -q usage $tmp/stream2.txt && tail -c 15 $tmp/stream2.txt | grep -q DONE"

# chat, streamed and not
chat='"messages": [{"role": "system", "content": "You tell stories."}, {"role": "user", "content": "Tell me a story"}], "max_tokens": 20, "temperature": 0'
status=$(http POST $u/v1/chat/completions "{$chat}")
cp "$tmp/body" "$tmp/chat.json"
check "chat: 200, assistant message, chat.completion" \
    "[ $status = 200 ] && jq -e '.object == \"chat.completion\" and .choices[0].message.role == \"assistant\" and (.choices[0].message.content|length) > 0 and .usage.completion_tokens == 20 and (.id|startswith(\"chatcmpl-\"))' $tmp/chat.json >/dev/null"
n_chat=$(http POST $u/tokenize "{\"messages\": [{\"role\": \"system\", \"content\": \"You tell stories.\"}, {\"role\": \"user\", \"content\": \"Tell me a story\"}]}" >/dev/null; jq .count $tmp/body)
check "chat usage: prompt tokens = the rendered conversation's ($n_chat)" "jq -e '.usage.prompt_tokens == $n_chat' $tmp/chat.json >/dev/null"
curl -sN $u/v1/chat/completions -d "{$chat, \"stream\": true}" >"$tmp/chat_stream.txt"
check "chat stream: first chunk carries the role" "grep -m1 '^data: {' $tmp/chat_stream.txt | sed 's/^data: //' | jq -e '.object == \"chat.completion.chunk\" and .choices[0].delta.role == \"assistant\"' >/dev/null"
check "chat stream: text equals the non-streamed answer" "[ \"\$(sse_text $tmp/chat_stream.txt)\" = \"\$(jq -j '.choices[0].message.content' $tmp/chat.json)\" ]"
check "chat: content as text parts works" \
    "[ \$(http POST $u/v1/chat/completions '{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"Tell me a story\"}]}], \"max_tokens\": 3}') = 200 ]"

# stop strings: cut before the first occurrence, even across tokens; finish_reason stop
full=$(cat "$tmp/completion.txt")
for stop in "le gi" "Lily" "e" "no such text"; do
    status=$(http POST $u/v1/completions "{\"prompt\": \"$prompt\", \"max_tokens\": 24, \"temperature\": 0, \"stop\": [\"zzz\", \"$stop\"]}")
    want=$(jq -rn --arg t "$full" --arg s "$stop" '$t | if index($s) then .[0:index($s)] else . end')
    reason=$(jq -rn --arg t "$full" --arg s "$stop" 'if ($t | index($s)) then "stop" else "length" end')
    check "stop '$stop': text cut before it, finish_reason $reason" \
        "[ $status = 200 ] && [ \"\$(jq -j '.choices[0].text' $tmp/body)\" = \"\$want\" ] && jq -e '.choices[0].finish_reason == \"$reason\"' $tmp/body >/dev/null"
    curl -sN $u/v1/completions -d "{\"prompt\": \"$prompt\", \"max_tokens\": 24, \"temperature\": 0, \"stop\": \"$stop\", \"stream\": true}" >"$tmp/stop_stream.txt"
    check "stop '$stop' streamed: the same text" "[ \"\$(sse_text $tmp/stop_stream.txt)\" = \"\$want\" ]"
done

# n > 1 with a seed: two choices, usage counts both
status=$(http POST $u/v1/completions "{\"prompt\": \"$prompt\", \"max_tokens\": 8, \"temperature\": 1, \"seed\": 7, \"n\": 2, \"ignore_eos\": true}")
check "n=2: two choices, completion tokens counted over both" \
    "[ $status = 200 ] && jq -e '(.choices|length) == 2 and .choices[1].index == 1 and .usage.completion_tokens == 16' $tmp/body >/dev/null"
cp "$tmp/body" "$tmp/n2.json"
http POST $u/v1/completions "{\"prompt\": \"$prompt\", \"max_tokens\": 8, \"temperature\": 1, \"seed\": 7, \"n\": 2, \"ignore_eos\": true}" >/dev/null
check "the same seed gives the same samples" "[ \"\$(jq -c .choices $tmp/body)\" = \"\$(jq -c .choices $tmp/n2.json)\" ]"
curl -sN $u/v1/completions -d "{\"prompt\": \"$prompt\", \"max_tokens\": 8, \"temperature\": 1, \"seed\": 7, \"n\": 2, \"ignore_eos\": true, \"stream\": true}" >"$tmp/n2_stream.txt"
check "n=2 streamed: each choice's text equals the non-streamed one" \
    "[ \"\$(grep '^data: {' $tmp/n2_stream.txt | sed 's/^data: //' | jq -j 'select(.choices[0].index == 1) | .choices[0].text')\" = \"\$(jq -j '.choices[1].text' $tmp/n2.json)\" ]"

# tokenize / detokenize against pagoda tokenize
status=$(http POST $u/tokenize "{\"prompt\": \"$prompt\"}")
check "tokenize: the ids of pagoda tokenize --add-special" \
    "[ $status = 200 ] && [ \"\$(jq -r '.tokens | map(tostring) | join(\" \")' $tmp/body)\" = \"\$(printf '%s' '$prompt' | $bin tokenize -m $model --add-special --parse-special)\" ] && jq -e '.count == $n_prompt and .max_model_len > 0' $tmp/body >/dev/null"
status=$(http POST $u/tokenize "{\"prompt\": \"$prompt\", \"add_special_tokens\": false}")
check "tokenize without special tokens" "[ \"\$(jq -r '.tokens | map(tostring) | join(\" \")' $tmp/body)\" = \"\$(printf '%s' '$prompt' | $bin tokenize -m $model --parse-special)\" ]"
plain_ids=$(printf '%s' "$prompt" | "$bin" tokenize -m "$model" | tr ' ' ',')
status=$(http POST $u/detokenize "{\"tokens\": [$plain_ids]}")
check "detokenize gives the text back" "[ $status = 200 ] && [ \"\$(jq -j .prompt $tmp/body)\" = \"\$(printf '%s' '$plain_ids' | tr ',' ' ' | $bin tokenize -m $model --decode)\" ]"

# metrics: names, counters that moved, histograms with every bucket
curl -s $u/metrics >"$tmp/metrics.txt"
for name in num_requests_running num_requests_waiting kv_cache_usage_perc prefix_cache_queries_total prefix_cache_hits_total \
            prompt_tokens_total generation_tokens_total; do
    check "metrics: pagoda:$name" "grep -q '^pagoda:$name{model_name=\"stories260K\"} [0-9.e+-]*\$' $tmp/metrics.txt"
done
for name in time_to_first_token_seconds inter_token_latency_seconds e2e_request_latency_seconds request_queue_time_seconds; do
    check "metrics: histogram pagoda:$name has +Inf bucket = count > 0" \
        "inf=\$(grep '^pagoda:${name}_bucket{le=\"+Inf\"' $tmp/metrics.txt | awk '{print \$NF}'); cnt=\$(grep '^pagoda:${name}_count' $tmp/metrics.txt | awk '{print \$NF}'); [ \"\$inf\" = \"\$cnt\" ] && [ \"\$cnt\" -gt 0 ]"
done
check "metrics: generation tokens counted (>= 24+24+20+20+16)" "[ \$(grep '^pagoda:generation_tokens_total' $tmp/metrics.txt | awk '{printf \"%d\", \$NF}') -ge 104 ]"
check "metrics: finished requests by reason" "grep -q '^pagoda:request_success_total{finished_reason=\"stop\",model_name=\"stories260K\"} [1-9]' $tmp/metrics.txt"
check "metrics: nothing running at rest" "[ \$(metric $u num_requests_running) = 0 ] && [ \$(metric $u kv_cache_usage_perc) = 0 ]"

# a graceful stop during a stream: the stream ends with an error event and [DONE]
curl -sN $u/v1/completions -d '{"prompt": "Once", "max_tokens": 1900, "ignore_eos": true, "stream": true}' >"$tmp/cut.txt" &
cpid=$!
for _ in $(seq 400); do [ -s "$tmp/cut.txt" ] && break; sleep 0.05; done
stop_server a
wait $cpid
check "a stream cut by the stop ends with an error event and [DONE]" \
    "grep '^data: {\"error\"' $tmp/cut.txt | grep -q 'shutting down' && [ \"\$(tail -c 15 $tmp/cut.txt | tr -d '\n')\" = 'data: [DONE]' ]"
echo "$checks checks, $fails failed"
[ $fails -eq 0 ]
