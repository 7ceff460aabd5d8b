"""32 concurrent streaming requests against a running `pagoda serve` (started by
tests/cli/serve_python.sh) each give exactly the text the same request gives alone, at temperature 0.

Each request is first sent alone (one after the other, not streamed), then all 32 at once, streamed,
from 32 threads released together. Prompts differ in length; some repeat, and some share a long
prefix, so the batch mixes prefills, decodes and prefix-cache hits; half are chat requests.
Environment: PAGODA_URL, PAGODA_API_KEY, PAGODA_MODEL_ID, optionally PAGODA_MAX_TOKENS.
"""
import os
import re
import sys
import threading
import time
import urllib.request

import openai

url, key, model = os.environ["PAGODA_URL"], os.environ["PAGODA_API_KEY"], os.environ["PAGODA_MODEL_ID"]
client = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=600)
shared = "Once upon a time, in a small town by the sea, there lived a little girl named Lily who loved"
starts = ["Once upon a time", "The little dog", "Tom and Sam", "One day", "The sun was", shared,
          shared + " to play", "Lily and Ben went to the park to play with a big red ball"]
# PAGODA_MAX_TOKENS: the shortest request's max_tokens (default 24). A tiny model finishes short
# requests faster than 32 client threads can start them, so the caller raises it there.
base_tokens = int(os.environ.get("PAGODA_MAX_TOKENS", "24"))
requests = []
for i in range(32):
    text = starts[i % len(starts)] + ("" if i < 16 else f" {i}")
    requests.append({"chat": i % 2 == 1, "text": text, "max_tokens": base_tokens + (i % 5) * 8})


def run(req, stream):
    args = {"model": model, "max_tokens": req["max_tokens"], "temperature": 0, "stream": stream}
    if req["chat"]:
        r = client.chat.completions.create(messages=[{"role": "user", "content": req["text"]}], **args)
        if not stream:
            return r.choices[0].message.content
        return "".join(ch.choices[0].delta.content or "" for ch in r if ch.choices)
    r = client.completions.create(prompt=req["text"], **args)
    if not stream:
        return r.choices[0].text
    return "".join(ch.choices[0].text for ch in r if ch.choices)


alone = [run(req, False) for req in requests]
together = [None] * len(requests)
errors = [None] * len(requests)
barrier = threading.Barrier(len(requests))


def worker(i):
    barrier.wait()
    try:
        together[i] = run(requests[i], True)
    except Exception as e:  # noqa: BLE001 - reported below
        errors[i] = e


most_running, watching = [0], [True]


def watch():  # the most requests /metrics ever shows running at once: the streams really overlapped
    while watching[0]:
        text = urllib.request.urlopen(url + "/metrics", timeout=30).read().decode()
        m = re.search(r"^pagoda:num_requests_running\{[^}]*\} ([0-9.]+)$", text, re.M)
        most_running[0] = max(most_running[0], int(float(m.group(1))) if m else 0)
        time.sleep(0.01)


watcher = threading.Thread(target=watch)
watcher.start()
threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(requests))]
for t in threads:
    t.start()
for t in threads:
    t.join()
watching[0] = False
watcher.join()
fails = mismatches = 0
if most_running[0] < 8:
    fails += 1
    print(f"FAIL at most {most_running[0]} requests ran at once (wanted 8 or more)")
else:
    print(f"ok   up to {most_running[0]} requests ran at once")
for i, req in enumerate(requests):
    ok = errors[i] is None and together[i] == alone[i] and len(alone[i]) > 0
    if not ok:
        fails += 1
        mismatches += 1
        print(f"FAIL request {i} ({'chat' if req['chat'] else 'completion'} {req['text']!r}): alone {alone[i]!r}, "
              f"together {together[i]!r}, error {errors[i]!r}")
print(f"{'ok  ' if mismatches == 0 else 'FAIL'} {len(requests) - mismatches} of {len(requests)} concurrent streams "
      f"equal their request alone")
print(f"{len(requests) + 1} checks, {fails} failed")
sys.exit(1 if fails else 0)
