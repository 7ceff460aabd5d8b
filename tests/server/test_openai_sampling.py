"""The official `openai` Python client against `pagoda serve` (started by tests/cli/serve_sampling.sh):
the sampler chain's request fields pass through the client's typed API, and logprobs come back in
the client's typed objects, streamed and not.

Environment: PAGODA_URL (http://127.0.0.1:PORT), PAGODA_MODEL_ID.
Prints one line per check and "N checks, N failed"; exit status 1 if any failed.
"""
import math
import os
import sys

import openai

url, model = os.environ["PAGODA_URL"], os.environ["PAGODA_MODEL_ID"]
client = openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=120)
checks = fails = 0


def check(name, ok, detail=""):
    global checks, fails
    checks += 1
    if not ok:
        fails += 1
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else f": {detail}"))


messages = [{"role": "user", "content": "Tell me a story"}]
chat = client.chat.completions.create(model=model, messages=messages, max_tokens=10, temperature=0, logprobs=True,
                                      top_logprobs=3)
content = chat.choices[0].logprobs.content
check("chat: one logprob per completion token", len(content) == chat.usage.completion_tokens, len(content))
check("chat: tokens join into the message", "".join(c.token for c in content) == chat.choices[0].message.content)
check("chat: greedy token is the top alternative, probabilities sum to <= 1",
      all(c.top_logprobs[0].token == c.token and abs(c.top_logprobs[0].logprob - c.logprob) < 1e-9
          and sum(math.exp(t.logprob) for t in c.top_logprobs) <= 1 + 1e-6 and len(c.top_logprobs) == 3
          for c in content), content[:2])
check("chat: bytes are the token's UTF-8", all(bytes(c.bytes).decode("utf-8", "replace") == c.token for c in content))
streamed = []
for chunk in client.chat.completions.create(model=model, messages=messages, max_tokens=10, temperature=0,
                                            logprobs=True, top_logprobs=3, stream=True):
    if chunk.choices and chunk.choices[0].logprobs and chunk.choices[0].logprobs.content:
        streamed.extend(chunk.choices[0].logprobs.content)
check("chat stream: the same logprobs", [(c.token, c.logprob) for c in streamed] == [(c.token, c.logprob) for c in content])

comp = client.completions.create(model=model, prompt="Once upon a time", max_tokens=8, temperature=0, logprobs=2)
lp = comp.choices[0].logprobs
check("completions: tokens, token_logprobs, top_logprobs, text_offset of one length",
      len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == len(lp.text_offset) == 8, lp)
check("completions: greedy token's logprob is the max of its top_logprobs",
      all(max(t.values()) == v and max(t, key=t.get) == tok for t, v, tok in zip(lp.top_logprobs, lp.token_logprobs, lp.tokens)))

kw = dict(model=model, prompt="Once upon a time", max_tokens=30, temperature=0.9, seed=5)
plain = client.completions.create(**kw).choices[0].text
again = client.completions.create(**kw).choices[0].text
pen = client.completions.create(**kw, presence_penalty=2.0, frequency_penalty=2.0,
                                extra_body={"repetition_penalty": 3.0, "typical_p": 0.8}).choices[0].text
check("a seed repeats the text", plain == again, (plain, again))
check("penalties and typical_p through the client change the text", pen != plain, (pen, plain))
biased = client.completions.create(model=model, prompt="Once upon a time", max_tokens=4, temperature=0,
                                   logit_bias={"300": 100}, extra_body={"ignore_eos": True})
check("logit_bias through the client", biased.usage.completion_tokens == 4 and len(set(
    client.completions.create(model=model, prompt="Once upon a time", max_tokens=4, temperature=0, logprobs=0,
                              logit_bias={"300": 100}, extra_body={"ignore_eos": True}).choices[0].logprobs.tokens)) == 1)
try:
    client.chat.completions.create(model=model, messages=messages, logprobs=True, top_logprobs=25)
    check("top_logprobs 25 raises BadRequestError", False, "no exception")
except openai.BadRequestError as e:
    check("top_logprobs 25 raises BadRequestError naming it", "top_logprobs" in str(e), str(e))
print(f"{checks} checks, {fails} failed")
sys.exit(1 if fails else 0)
