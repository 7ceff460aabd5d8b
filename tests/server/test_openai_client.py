"""The official `openai` Python client against a running `pagoda serve` (started by
tests/cli/serve_python.sh): models, completions and chat completions, streaming and not, usage,
stop strings, and errors raised as the client's own exception classes.

Environment: PAGODA_URL (http://127.0.0.1:PORT), PAGODA_API_KEY, PAGODA_MODEL_ID, PAGODA_PROMPT and
PAGODA_REFERENCE (a file with `pagoda run`'s greedy continuation of the prompt for 24 tokens: the
independent reference for the completion text).
Prints one line per check and "N checks, N failed"; exit status 1 if any failed.
"""
import os
import sys

import openai

url, key, model = os.environ["PAGODA_URL"], os.environ["PAGODA_API_KEY"], os.environ["PAGODA_MODEL_ID"]
prompt = os.environ["PAGODA_PROMPT"]
with open(os.environ["PAGODA_REFERENCE"], encoding="utf-8") as f:
    reference = f.read()
client = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=120)
checks = fails = 0


def check(name, ok, detail=""):
    global checks, fails
    checks += 1
    if not ok:
        fails += 1
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else f": {detail}"))


def expect_error(name, cls, fn, param=None):
    try:
        fn()
    except cls as e:
        got = (e.body or {}).get("param") if isinstance(e.body, dict) else None
        check(name, param is None or got == param, f"param {got!r}, wanted {param!r}")
        return
    except Exception as e:  # noqa: BLE001 - any other exception is the failure being reported
        check(name, False, f"raised {type(e).__name__}: {e}")
        return
    check(name, False, "no exception")


models = client.models.list()
check("models.list has the served model", [m.id for m in models.data] == [model], [m.id for m in models.data])
check("models.retrieve finds it", client.models.retrieve(model).id == model)
expect_error("models.retrieve of another model raises NotFoundError", openai.NotFoundError,
             lambda: client.models.retrieve("no-such-model"), "model")

c = client.completions.create(model=model, prompt=prompt, max_tokens=24, temperature=0)
check("completions: text equals pagoda run's", c.choices[0].text == reference, repr(c.choices[0].text))
check("completions: finish_reason length, usage exact",
      c.choices[0].finish_reason == "length" and c.usage.completion_tokens == 24
      and c.usage.total_tokens == c.usage.prompt_tokens + 24, c)

chunks = list(client.completions.create(model=model, prompt=prompt, max_tokens=24, temperature=0, stream=True,
                                        stream_options={"include_usage": True}))
text = "".join(ch.choices[0].text for ch in chunks if ch.choices)
check("completions stream: text equals pagoda run's", text == reference, repr(text))
check("completions stream: usage in the last chunk", chunks[-1].usage is not None
      and chunks[-1].usage.completion_tokens == 24 and not chunks[-1].choices, chunks[-1])

stop_at = reference[5:9]
s = client.completions.create(model=model, prompt=prompt, max_tokens=24, temperature=0, stop=[stop_at])
check(f"completions: stop {stop_at!r}", s.choices[0].text == reference[:reference.index(stop_at)]
      and s.choices[0].finish_reason == "stop", repr(s.choices[0].text))

messages = [{"role": "system", "content": "You are a storyteller."}, {"role": "user", "content": "Tell me a story."}]
r = client.chat.completions.create(model=model, messages=messages, max_tokens=20, temperature=0)
answer = r.choices[0].message.content
check("chat: an assistant answer", r.choices[0].message.role == "assistant" and len(answer) > 0, r)
check("chat: usage", r.usage.completion_tokens <= 20 and r.usage.prompt_tokens > 0
      and r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens, r.usage)
streamed = client.chat.completions.create(model=model, messages=messages, max_tokens=20, temperature=0, stream=True)
parts, roles, reasons = [], [], []
for ch in streamed:
    for choice in ch.choices:
        parts.append(choice.delta.content or "")
        roles.append(choice.delta.role)
        reasons.append(choice.finish_reason)
check("chat stream: same text as not streamed", "".join(parts) == answer, repr("".join(parts)))
check("chat stream: role first, one finish_reason last", roles[0] == "assistant" and reasons[-1] in ("stop", "length")
      and sum(x is not None for x in reasons) == 1, (roles, reasons))
n2 = client.chat.completions.create(model=model, messages=messages, max_tokens=5, temperature=1.0, seed=3, n=2)
check("chat: n=2", len(n2.choices) == 2 and n2.choices[1].index == 1, n2)

expect_error("an unknown model raises NotFoundError", openai.NotFoundError,
             lambda: client.completions.create(model="no-such-model", prompt="x"), "model")
expect_error("a bad temperature raises BadRequestError naming it", openai.BadRequestError,
             lambda: client.completions.create(model=model, prompt="x", temperature=5), "temperature")
expect_error("an out-of-range penalty raises BadRequestError naming it", openai.BadRequestError,
             lambda: client.chat.completions.create(model=model, messages=messages, presence_penalty=2.5),
             "presence_penalty")
bad = openai.OpenAI(base_url=url + "/v1", api_key="wrong", max_retries=0)
expect_error("a wrong key raises AuthenticationError", openai.AuthenticationError, lambda: bad.models.list())
print(f"{checks} checks, {fails} failed")
sys.exit(1 if fails else 0)
