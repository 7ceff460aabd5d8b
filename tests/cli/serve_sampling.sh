#!/usr/bin/env bash
# `pagoda serve`'s sampler-chain fields on stories260K, with curl + jq, against `pagoda batch` (the
# engine driven directly, no HTTP) as the reference:
#   - completions logprobs N and chat logprobs/top_logprobs, streamed and not: the shapes OpenAI
#     documents, one entry per completion token, tokens that join into the text, text_offset, the
#     greedy token's logprob the largest of its top_logprobs, top probabilities summing to <= 1,
#     and token_logprobs equal to the engine's own logprobs for the same request;
#   - penalties, typical_p, logit_bias and a seed give exactly the engine's tokens;
#   - logit_bias +100 forces a token, stop_token_ids end the output before the first occurrence;
#   - then the official `openai` client (tests/server/test_openai_sampling.py) when a Python with it
#     is found (as in serve_python.sh).
set -u
bin=${PAGODA_BIN:?PAGODA_BIN must point at the pagoda binary}
shared=${PAGODA_SHARED:-../shared}
model=$shared/models/stories260K.gguf
[ -f "$model" ] || { echo "SKIP: $model not found (set PAGODA_SHARED)"; exit 77; }
for tool in curl jq; do command -v $tool >/dev/null || { echo "SKIP: $tool is not installed"; exit 77; }; done
tmp=$(mktemp -d)
trap 'kill ${a_pid:-} 2>/dev/null; rm -rf "$tmp"' EXIT
. "$(dirname "$0")/../server/lib.sh"

start_server a -m "$model" || exit 1
u=$a_url C=$a_url/v1/completions CH=$a_url/v1/chat/completions
prompt="Once upon a time"

# ---- completions logprobs, against the engine's (pagoda batch) ----
body='{"prompt": "Once upon a time", "max_tokens": 16, "temperature": 0, "logprobs": 3}'
check "completions logprobs 3: 200" "[ \$(http POST $C '$body') = 200 ]"
cp $tmp/body $tmp/c.json
check "completions logprobs: four arrays, one entry per completion token" \
    "jq -e '.choices[0].logprobs as \$l | .usage.completion_tokens as \$n | (\$l.tokens|length) == \$n and (\$l.token_logprobs|length) == \$n and (\$l.top_logprobs|length) == \$n and (\$l.text_offset|length) == \$n and \$n == 16' $tmp/c.json >/dev/null"
check "completions logprobs: the tokens join into the text" \
    "jq -e '(.choices[0].logprobs.tokens | join(\"\")) == .choices[0].text' $tmp/c.json >/dev/null"
check "completions logprobs: text_offset starts at 0 and advances by each token's length" \
    "jq -e '.choices[0].logprobs as \$l | \$l.text_offset[0] == 0 and ([range(1; \$l.tokens|length)] | all(\$l.text_offset[.] == \$l.text_offset[. - 1] + (\$l.tokens[. - 1]|length)))' $tmp/c.json >/dev/null"
check "completions logprobs: greedy token's logprob is the largest of its top 3, keyed by the token" \
    "jq -e '.choices[0].logprobs as \$l | [range(\$l.tokens|length)] | all(. as \$i | (\$l.top_logprobs[\$i] | length) >= 1 and (\$l.top_logprobs[\$i] | length) <= 3 and (\$l.top_logprobs[\$i] | to_entries | max_by(.value) | .key == \$l.tokens[\$i] and .value == \$l.token_logprobs[\$i]))' $tmp/c.json >/dev/null"
check "completions logprobs: each is <= 0, the top probabilities sum to <= 1" \
    "jq -e '.choices[0].logprobs as \$l | (\$l.token_logprobs | all(. <= 0)) and (\$l.top_logprobs | all([.[] | exp] | add <= 1.0001))' $tmp/c.json >/dev/null"
printf '%s\n' '{"prompt": "Once upon a time", "max_tokens": 16, "temperature": 0, "logprobs": 3}' >$tmp/in.jsonl
"$bin" batch -m "$model" -i $tmp/in.jsonl -o $tmp/out.jsonl --no-progress 2>/dev/null
check "completions logprobs equal the engine's (pagoda batch) for the same request" \
    "jq -e --slurpfile e $tmp/out.jsonl '.choices[0].logprobs.token_logprobs as \$s | (\$e[0].logprobs | map(.logprob)) as \$r | (\$s|length) == (\$r|length) and ([range(\$s|length)] | all(((\$s[.] - \$r[.]) | fabs) < 1e-6))' $tmp/c.json >/dev/null"
check "completions text equals the engine's" "jq -e --slurpfile e $tmp/out.jsonl '.choices[0].text == \$e[0].text' $tmp/c.json >/dev/null"
curl -sN $C -d "${body%\}}, \"stream\": true}" >$tmp/c_stream.txt
grep '^data: {' $tmp/c_stream.txt | sed 's/^data: //' | jq -s '[.[] | .choices[0].logprobs | select(. != null)]' >$tmp/c_parts.json
check "completions stream: the chunks' logprobs join into the non-streamed ones" \
    "jq -e --slurpfile p $tmp/c_parts.json '.choices[0].logprobs as \$l | (\$p[0] | map(.tokens) | add) == \$l.tokens and (\$p[0] | map(.token_logprobs) | add) == \$l.token_logprobs and (\$p[0] | map(.text_offset) | add) == \$l.text_offset and (\$p[0] | map(.top_logprobs) | add) == \$l.top_logprobs' $tmp/c.json >/dev/null"
check "completions without logprobs: logprobs null" \
    "[ \$(http POST $C '{\"prompt\": \"x\", \"max_tokens\": 2}') = 200 ] && jq -e '.choices[0].logprobs == null' $tmp/body >/dev/null"

# ---- chat logprobs ----
cbody='{"messages": [{"role": "user", "content": "Tell me a story"}], "max_tokens": 12, "temperature": 0, "logprobs": true, "top_logprobs": 2}'
check "chat logprobs: 200" "[ \$(http POST $CH '$cbody') = 200 ]"
cp $tmp/body $tmp/ch.json
check "chat logprobs: content has one entry per token, each with token, logprob, bytes, 2 top_logprobs" \
    "jq -e '.choices[0].logprobs.content as \$c | (\$c|length) == .usage.completion_tokens and (\$c | all((.token|type) == \"string\" and (.logprob|type) == \"number\" and (.bytes|type) == \"array\" and (.top_logprobs|length) == 2 and (.top_logprobs | all(has(\"token\") and has(\"logprob\") and has(\"bytes\")))))' $tmp/ch.json >/dev/null"
check "chat logprobs: the tokens join into the message; bytes are the token's UTF-8" \
    "jq -e '(.choices[0].logprobs.content | map(.token) | join(\"\")) == .choices[0].message.content and (.choices[0].logprobs.content | all((.bytes | implode) == .token))' $tmp/ch.json >/dev/null"
check "chat logprobs: greedy token is the top alternative with the same logprob; top descends" \
    "jq -e '.choices[0].logprobs.content | all(.top_logprobs[0].token == .token and .top_logprobs[0].logprob == .logprob and .top_logprobs[1].logprob <= .top_logprobs[0].logprob)' $tmp/ch.json >/dev/null"
curl -sN $CH -d "${cbody%\}}, \"stream\": true}" >$tmp/ch_stream.txt
grep '^data: {' $tmp/ch_stream.txt | sed 's/^data: //' | jq -s '[.[] | .choices[0].logprobs | select(. != null) | .content[]]' >$tmp/ch_parts.json
check "chat stream: the chunks' logprobs join into the non-streamed ones" \
    "jq -e --slurpfile p $tmp/ch_parts.json '.choices[0].logprobs.content == \$p[0]' $tmp/ch.json >/dev/null"

# ---- penalties, typical_p, logit_bias, seed: the engine's tokens ----
chain='"max_tokens": 24, "temperature": 0.9, "top_k": 30, "top_p": 0.95, "min_p": 0.02, "typical_p": 0.9, "presence_penalty": 0.6, "frequency_penalty": 0.4, "repetition_penalty": 1.3, "logit_bias": {"300": 2.5, "301": -100}, "seed": 11'
check "the full chain: 200" "[ \$(http POST $C '{\"prompt\": \"$prompt\", $chain}') = 200 ]"
cp $tmp/body $tmp/chain.json
printf '%s\n' "{\"prompt\": \"$prompt\", $chain}" >$tmp/in2.jsonl
"$bin" batch -m "$model" -i $tmp/in2.jsonl -o $tmp/out2.jsonl --no-progress 2>/dev/null
check "the full chain with a seed gives the engine's text (pagoda batch)" \
    "jq -e --slurpfile e $tmp/out2.jsonl '.choices[0].text == \$e[0].text and (\$e[0].token_ids | index(301)) == null' $tmp/chain.json >/dev/null"
http POST $C "{\"prompt\": \"$prompt\", \"max_tokens\": 24, \"temperature\": 0.9, \"seed\": 11}" >/dev/null
check "  ... and the penalties change it (against the same seed without them)" \
    "! jq -e --slurpfile e $tmp/out2.jsonl '.choices[0].text == \$e[0].text' $tmp/body >/dev/null"
tok=$(jq '.token_ids[0]' $tmp/out.jsonl)
printf '%s\n' '{"prompt": "Once upon a time", "max_tokens": 6, "temperature": 0, "ignore_eos": true, "logit_bias": {"300": 100}}' >$tmp/in3.jsonl
"$bin" batch -m "$model" -i $tmp/in3.jsonl -o $tmp/out3.jsonl --no-progress 2>/dev/null
check "logit_bias +100 on token 300: every token is 300 (engine), the server's text is the same" \
    "[ \$(http POST $C '{\"prompt\": \"$prompt\", \"max_tokens\": 6, \"temperature\": 0, \"ignore_eos\": true, \"logit_bias\": {\"300\": 100}}') = 200 ] && jq -e --slurpfile e $tmp/out3.jsonl '(\$e[0].token_ids | unique) == [300] and (\$e[0].token_ids | length) == 6 and .choices[0].text == \$e[0].text' $tmp/body >/dev/null"
check "logit_bias -100 on the greedy first token ($tok): another first token" \
    "[ \$(http POST $C '{\"prompt\": \"$prompt\", \"max_tokens\": 3, \"temperature\": 0, \"logprobs\": 0, \"logit_bias\": {\"$tok\": -100}}') = 200 ] && jq -e --slurpfile e $tmp/out.jsonl '.choices[0].logprobs.tokens[0] != \$e[0].logprobs[0].token' $tmp/body >/dev/null"
stop_id=$(jq '.token_ids[5]' $tmp/out.jsonl)
first=$(jq --argjson s $stop_id '.token_ids | index($s)' $tmp/out.jsonl)
check "stop_token_ids [$stop_id]: $first tokens, finish_reason stop" \
    "[ \$(http POST $C '{\"prompt\": \"$prompt\", \"max_tokens\": 16, \"temperature\": 0, \"stop_token_ids\": [$stop_id]}') = 200 ] && jq -e '.usage.completion_tokens == $first and .choices[0].finish_reason == \"stop\"' $tmp/body >/dev/null"

# ---- the openai client ----
python=""
for p in "${PAGODA_PYTHON:-}" "$HOME/.cache/pagoda/venv/bin/python" python3; do
    [ -n "$p" ] && "$p" -c 'import openai' 2>/dev/null && { python=$p; break; }
done
if [ -n "$python" ]; then
    PAGODA_URL=$u PAGODA_MODEL_ID=stories260K "$python" "$(dirname "$0")/../server/test_openai_sampling.py" >$tmp/py.out 2>&1
    rc=$?
    cat $tmp/py.out
    check "test_openai_sampling.py passes" "[ $rc -eq 0 ]"
else
    echo "note: no python with the openai package; the client part is skipped"
fi
stop_server a
echo "$checks checks, $fails failed"
[ $fails -eq 0 ]
