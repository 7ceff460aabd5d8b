#!/usr/bin/env bash
# `pagoda serve` against bad requests and hostile clients, on stories260K: errors in OpenAI's shape
# with the right status and the parameter named (malformed JSON with its line and column, wrong
# types, out-of-range values, unsupported parameters, unknown model, route or method, a wrong API
# key, a huge body, a prompt over the context, a full queue); clients that stall mid-request,
# read slowly, open many idle connections, send garbage, or vanish mid-answer (their request is
# aborted: the running count and KV usage go back to 0 and the abort is counted). The server keeps
# serving throughout and stops cleanly, with no sanitizer report under the ASan build.
set -u
bin=${PAGODA_BIN:?PAGODA_BIN must point at the pagoda binary}
shared=${PAGODA_SHARED:-../shared}
model=$shared/models/stories260K.gguf
[ -f "$model" ] || { echo "SKIP: $model not found (set PAGODA_SHARED)"; exit 77; }
for tool in curl jq; do command -v $tool >/dev/null || { echo "SKIP: $tool is not installed"; exit 77; }; done
tmp=$(mktemp -d)
trap 'kill ${a_pid:-} ${k_pid:-} ${q_pid:-} 2>/dev/null; rm -rf "$tmp"' EXIT
. "$(dirname "$0")/../server/lib.sh"

# expect STATUS PARAM DESCRIPTION METHOD PATH BODY: an OpenAI-shaped error naming PARAM ("" for null)
expect() {
    local want=$1 param=$2 desc=$3 method=$4 path=$5 body=$6 status
    status=$(http "$method" "$u$path" "$body")
    check "$desc -> $want (param '${param:-null}'): $(jq -c .error.message "$tmp/body" 2>/dev/null | head -c 150)" \
        "[ '$status' = '$want' ] && jq -e '(.error.message|length) > 0 and (.error.type|type) == \"string\" and .error.param == (if \"$param\" == \"\" then null else \"$param\" end) and (.error|has(\"code\"))' $tmp/body >/dev/null"
}

start_server a -m "$model" || exit 1
u=$a_url
C=/v1/completions CH=/v1/chat/completions
expect 400 "" "malformed JSON" POST $C '{"prompt": "x",}'
check "malformed JSON: says where" "jq -e '.error.message | test(\"line 1, column [0-9]+\")' $tmp/body >/dev/null"
expect 400 "" "JSON on two lines: the second line named" POST $C $'{"prompt": "x",\n "max_tokens": }'
check "the line of the error is 2" "jq -e '.error.message | test(\"line 2\")' $tmp/body >/dev/null"
expect 400 "" "a body that is an array" POST $C '[1, 2]'
expect 400 "" "an empty body" POST $C ''
expect 400 "" "duplicate keys" POST $C '{"prompt": "x", "prompt": "y"}'
expect 400 "" "invalid UTF-8 in a string" POST $C $'{"prompt": "\xff\xfe"}'
expect 400 "" "JSON nested 100000 deep" POST $C "{\"prompt\": $(head -c 100000 /dev/zero | tr '\0' '[')"
expect 400 "" "an escaped NUL in a string" POST $C $'{"prompt": "a\\u0000b"}'
expect 400 prompt "no prompt" POST $C '{"max_tokens": 3}'
expect 400 prompt "a prompt that is a number" POST $C '{"prompt": 42}'
expect 400 prompt "batched prompts" POST $C '{"prompt": ["a", "b"]}'
expect 400 prompt "a token id out of the vocabulary" POST $C '{"prompt": [1, 99999999]}'
expect 400 prompt "a negative token id" POST $C '{"prompt": [1, -5]}'
expect 400 max_tokens "max_tokens a string" POST $C '{"prompt": "x", "max_tokens": "ten"}'
expect 400 max_tokens "max_tokens 0" POST $C '{"prompt": "x", "max_tokens": 0}'
expect 400 max_tokens "max_tokens 2.5" POST $C '{"prompt": "x", "max_tokens": 2.5}'
expect 400 temperature "temperature -1" POST $C '{"prompt": "x", "temperature": -1}'
expect 400 temperature "temperature a string" POST $C '{"prompt": "x", "temperature": "hot"}'
expect 400 top_p "top_p 0" POST $C '{"prompt": "x", "top_p": 0}'
expect 400 min_p "min_p 2" POST $C '{"prompt": "x", "min_p": 2}'
expect 400 top_k "top_k -2" POST $C '{"prompt": "x", "top_k": -2}'
expect 400 n "n 0" POST $C '{"prompt": "x", "n": 0}'
expect 400 n "n 100000" POST $C '{"prompt": "x", "n": 100000}'
expect 400 seed "seed a string" POST $C '{"prompt": "x", "seed": "abc"}'
expect 400 stream "stream a string" POST $C '{"prompt": "x", "stream": "yes"}'
expect 400 stop "stop a number" POST $C '{"prompt": "x", "stop": 5}'
expect 400 stop "an empty stop string" POST $C '{"prompt": "x", "stop": [""]}'
expect 400 stop "17 stop strings" POST $C '{"prompt": "x", "stop": ["a","b","c","d","e","f","g","h","i","j","k","l","m","n","o","p","q"]}'
expect 400 stream_options "stream_options without stream" POST $C '{"prompt": "x", "stream_options": {"include_usage": true}}'
expect 400 model "model a number" POST $C '{"prompt": "x", "model": 7}'
# the sampler chain's fields: out-of-range values name the field
expect 400 presence_penalty "presence_penalty 3" POST $C '{"prompt": "x", "presence_penalty": 3}'
expect 400 frequency_penalty "frequency_penalty -2.5" POST $C '{"prompt": "x", "frequency_penalty": -2.5}'
expect 400 repetition_penalty "repetition_penalty 0" POST $C '{"prompt": "x", "repetition_penalty": 0}'
expect 400 typical_p "typical_p 1.5" POST $C '{"prompt": "x", "typical_p": 1.5}'
expect 400 logit_bias "logit_bias a list" POST $C '{"prompt": "x", "logit_bias": [1, 2]}'
expect 400 logit_bias "logit_bias key not a token id" POST $C '{"prompt": "x", "logit_bias": {"abc": 1}}'
expect 400 logit_bias "logit_bias 200" POST $C '{"prompt": "x", "logit_bias": {"5": 200}}'
expect 400 logit_bias "logit_bias token past the vocabulary" POST $C '{"prompt": "x", "logit_bias": {"99999999": 1}}'
expect 400 stop_token_ids "stop_token_ids -1" POST $C '{"prompt": "x", "stop_token_ids": [-1]}'
expect 400 stop_token_ids "stop_token_ids past the vocabulary" POST $C '{"prompt": "x", "stop_token_ids": [99999999]}'
expect 400 stop_token_ids "stop_token_ids a string" POST $C '{"prompt": "x", "stop_token_ids": "a"}'
expect 400 logprobs "completions logprobs 6" POST $C '{"prompt": "x", "logprobs": 6}'
expect 400 top_logprobs "completions top_logprobs" POST $C '{"prompt": "x", "top_logprobs": 2}'
expect 400 logprobs "chat logprobs 2" POST $CH '{"messages": [{"role": "user", "content": "x"}], "logprobs": 2}'
expect 400 top_logprobs "chat top_logprobs 21" POST $CH '{"messages": [{"role": "user", "content": "x"}], "logprobs": true, "top_logprobs": 21}'
expect 400 top_logprobs "chat top_logprobs without logprobs" POST $CH '{"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2}'
for p in '"echo": true' '"best_of": 3' '"suffix": "end"' \
         '"response_format": {"type": "json_object"}'; do
    name=$(echo "$p" | sed 's/^"\([a-z_]*\)".*/\1/')
    expect 400 "$name" "unsupported $p" POST $C "{\"prompt\": \"x\", $p}"
    check "  ... says '$name' is not supported yet" "jq -e '.error.message | test(\"$name.*not supported yet\")' $tmp/body >/dev/null"
done
check "neutral values of unsupported (and sampler) parameters are accepted" \
    "[ \$(http POST $u$C '{\"prompt\": \"x\", \"max_tokens\": 2, \"presence_penalty\": 0, \"frequency_penalty\": 0, \"logprobs\": null, \"logit_bias\": {}, \"echo\": false, \"best_of\": 1, \"repetition_penalty\": 1, \"user\": \"me\", \"some_unknown_field\": 1}') = 200 ]"
check "chat: logprobs false is accepted" \
    "[ \$(http POST $u$CH '{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"max_tokens\": 2, \"logprobs\": false, \"tool_choice\": \"none\", \"tools\": []}') = 200 ]"
expect 400 messages "chat without messages" POST $CH '{"prompt": "x"}'
expect 400 messages "messages a string" POST $CH '{"messages": "hi"}'
expect 400 messages "messages empty" POST $CH '{"messages": []}'
expect 400 "messages[0].role" "a tool role" POST $CH '{"messages": [{"role": "tool", "content": "x"}]}'
expect 400 "messages[1].role" "a role that is a number" POST $CH '{"messages": [{"role": "user", "content": "x"}, {"role": 3, "content": "y"}]}'
expect 400 "messages[0].content" "content a number" POST $CH '{"messages": [{"role": "user", "content": 5}]}'
expect 400 "messages[0].content" "an image part" POST $CH '{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}'
expect 400 tools "tools given" POST $CH '{"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]}'
expect 404 model "an unknown model" POST $C '{"prompt": "x", "model": "gpt-17"}'
check "  ... code model_not_found" "jq -e '.error.code == \"model_not_found\"' $tmp/body >/dev/null"
expect 404 "" "an unknown route" GET /v2/whatever ''
expect 405 "" "GET on a POST route" GET $C ''
expect 400 tokens "detokenize with a bad id" POST /detokenize '{"tokens": [1, 1000000]}'
expect 400 prompt "tokenize without a prompt" POST /tokenize '{}'

# a huge body: 413 whether its length is announced or chunked
head -c 2200000 /dev/zero | tr '\0' 'a' | sed 's/^/{"prompt": "/; s/$/"}/' >"$tmp/huge.json"
check "a 2 MB body (Content-Length) -> 413" "[ \$(curl -s -o $tmp/body -w '%{http_code}' -H 'Content-Type: application/json' --data-binary @$tmp/huge.json $u$C) = 413 ] && jq -e '.error.code == \"request_too_large\"' $tmp/body >/dev/null"
check "a 2 MB body (chunked) -> 413" "[ \$(curl -s -o $tmp/body -w '%{http_code}' -H 'Transfer-Encoding: chunked' -H 'Content-Type: application/json' --data-binary @$tmp/huge.json $u$C) = 413 ]"
# garbage on the socket, and many idle connections
for i in $(seq 5); do head -c 3000 /dev/urandom >"$tmp/garbage"; timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/${u##*:}; cat $tmp/garbage >&3; cat <&3 >/dev/null" 2>/dev/null; done
for i in $(seq 40); do exec {fd}<>/dev/tcp/127.0.0.1/${u##*:}; idle_fds+=($fd); done
check "with 40 idle connections and after garbage, requests still work" \
    "[ \$(http POST $u$C '{\"prompt\": \"Once\", \"max_tokens\": 3}') = 200 ] && jq -e '.usage.completion_tokens == 3' $tmp/body >/dev/null"
for fd in "${idle_fds[@]}"; do exec {fd}>&-; done
stop_server a

# a wrong key, and a prompt over the context
start_server k -m "$model" --api-key sekrit -c 64 || exit 1
u=$k_url
expect 401 "" "no API key" POST $C '{"prompt": "x"}'
check "  ... code invalid_api_key" "jq -e '.error.code == \"invalid_api_key\"' $tmp/body >/dev/null"
check "a wrong API key -> 401" "[ \$(http POST $u$C '{\"prompt\": \"x\"}' -H 'Authorization: Bearer wrong') = 401 ]"
check "a key that is a prefix of the right one -> 401" "[ \$(http POST $u$C '{\"prompt\": \"x\"}' -H 'Authorization: Bearer sekri') = 401 ]"
check "the right key -> 200" "[ \$(http POST $u$C '{\"prompt\": \"x\", \"max_tokens\": 2}' -H 'Authorization: Bearer sekrit') = 200 ]"
check "/v1/models needs the key" "[ \$(http GET $u/v1/models) = 401 ] && [ \$(http GET $u/v1/models '' -H 'Authorization: Bearer sekrit') = 200 ]"
check "/health and /metrics need no key" "[ \$(http GET $u/health) = 200 ] && [ \$(http GET $u/metrics) = 200 ]"
long=$(for i in $(seq 80); do printf 'word%d ' $i; done)
check "a prompt over the 64-token context -> 413 context_length_exceeded" \
    "[ \$(http POST $u$C '{\"prompt\": \"$long\"}' -H 'Authorization: Bearer sekrit') = 413 ] && jq -e '.error.code == \"context_length_exceeded\" and .error.param == \"prompt\"' $tmp/body >/dev/null"
check "a chat over the context -> 413" \
    "[ \$(http POST $u$CH '{\"messages\": [{\"role\": \"user\", \"content\": \"$long\"}]}' -H 'Authorization: Bearer sekrit') = 413 ]"
check "max_tokens past the context ends with finish_reason length" \
    "[ \$(http POST $u$C '{\"prompt\": \"Once\", \"max_tokens\": 500, \"ignore_eos\": true}' -H 'Authorization: Bearer sekrit') = 200 ] && jq -e '.choices[0].finish_reason == \"length\" and .usage.total_tokens == 64' $tmp/body >/dev/null"
stop_server k

# one sequence at a time, one waiting at most, 2 s idle timeout
start_server q -m "$model" --max-seqs 1 --max-queue 1 --timeout 2 || exit 1
u=$q_url
long_req='{"prompt": "Once upon a time", "max_tokens": 1900, "ignore_eos": true, "stream": true}'
curl -sN $u$C -d "$long_req" >"$tmp/A.txt" 2>/dev/null & A=$!
for _ in $(seq 200); do [ -s "$tmp/A.txt" ] && break; sleep 0.05; done
curl -sN $u$C -d "$long_req" >"$tmp/B.txt" 2>/dev/null & B=$!
for _ in $(seq 200); do [ "$(metric $u num_requests_waiting)" = 1 ] && break; sleep 0.05; done
check "one running, one waiting" "[ \$(metric $u num_requests_running) = 1 ] && [ \$(metric $u num_requests_waiting) = 1 ]"
check "the queue is full -> 503 queue_full" "[ \$(http POST $u$C '{\"prompt\": \"x\", \"max_tokens\": 2}') = 503 ] && jq -e '.error.code == \"queue_full\"' $tmp/body >/dev/null"
check "KV blocks in use while streaming" "awk 'BEGIN{exit !($(metric $u kv_cache_usage_perc) > 0)}'"
kill $A; wait $A 2>/dev/null
for _ in $(seq 100); do [ "$(metric $u num_requests_waiting)" = 0 ] && break; sleep 0.05; done
check "client A vanished: its request is aborted and B runs" \
    "[ \$(metric $u num_requests_running) = 1 ] && [ \$(metric $u num_requests_waiting) = 0 ] && curl -s $u/metrics | grep -q 'finished_reason=\"abort\".*} 1\$'"
[ -s "$tmp/B.txt" ] || sleep 0.5
kill $B; wait $B 2>/dev/null
for _ in $(seq 100); do [ "$(metric $u num_requests_running)" = 0 ] && break; sleep 0.05; done
check "client B vanished mid-stream: nothing running, KV usage back to 0, 2 aborts" \
    "[ \$(metric $u num_requests_running) = 0 ] && [ \$(metric $u kv_cache_usage_perc) = 0 ] && curl -s $u/metrics | grep -q 'finished_reason=\"abort\".*} 2\$'"
# (killed as soon as it runs: on an idle machine 1900 stories260K tokens take well under a second)
curl -s $u$C -d '{"prompt": "Once upon a time", "max_tokens": 1900, "ignore_eos": true}' >/dev/null 2>&1 & N=$!
for _ in $(seq 400); do [ "$(metric $u num_requests_running)" = 1 ] && break; sleep 0.01; done
kill $N; wait $N 2>/dev/null
for _ in $(seq 100); do [ "$(metric $u num_requests_running)" = 0 ] && break; sleep 0.05; done
check "a non-streaming client that vanished: aborted too" \
    "[ \$(metric $u num_requests_running) = 0 ] && [ \$(metric $u kv_cache_usage_perc) = 0 ] && curl -s $u/metrics | grep -q 'finished_reason=\"abort\".*} 3\$'"
# a client that stalls mid-request: others are served meanwhile; it is cut after the idle timeout
start=$(date +%s.%N)
( exec 3<>/dev/tcp/127.0.0.1/${u##*:}; printf 'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"prompt"' >&3; timeout 20 cat <&3 >/dev/null; date +%s.%N >"$tmp/stalled_end" ) &
S=$!
sleep 0.3
check "while a client stalls, others are served" "[ \$(http POST $u$C '{\"prompt\": \"Once\", \"max_tokens\": 3}') = 200 ]"
wait $S
check "the stalled client is cut after the 2 s timeout" "awk 'BEGIN{d=$(cat $tmp/stalled_end) - $start; exit !(d >= 1.5 && d < 15)}'"
# a slow reader gets every byte
http POST $u$C '{"prompt": "Once upon a time", "max_tokens": 200, "temperature": 0}' >/dev/null
jq -j '.choices[0].text' "$tmp/body" >"$tmp/fast.txt"
curl -sN --limit-rate 20k $u$C -d '{"prompt": "Once upon a time", "max_tokens": 200, "temperature": 0, "stream": true}' >"$tmp/slow.txt"
check "a slow reader gets the same text" "[ \"\$(sse_text $tmp/slow.txt)\" = \"\$(cat $tmp/fast.txt)\" ] && [ -s $tmp/fast.txt ]"
check "after all that, the server still serves" "[ \$(http GET $u/health) = 200 ] && [ \$(http POST $u$C '{\"prompt\": \"Once\", \"max_tokens\": 3}') = 200 ]"
stop_server q
echo "$checks checks, $fails failed"
[ $fails -eq 0 ]
