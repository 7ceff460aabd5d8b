#!/usr/bin/env python3
"""tools/stub_openai_server.py - a tiny OpenAI-compatible server (standard library only) for developing
the web chat page (src/server/web/index.html) and its test driver without `pagoda serve`.

It serves:
  GET  /                      the page, read from disk on every request (edit, reload)
  GET  /v1/models             one model, "stub-model"
  GET  /health                {"status": "ok"}
  POST /v1/chat/completions   a fixed answer that quotes the last user message, cut to max_tokens
                              "tokens" (words); "stream": true sends it as SSE chunks, one token
                              per event, each event written in two pieces to exercise the client's
                              buffering, then a usage chunk if stream_options.include_usage, then
                              "data: [DONE]". Non-streamed it returns the same text in one message.
Errors are OpenAI-shaped ({"error": {"message", "type", "param", "code"}}): malformed JSON, a
temperature outside [0, 2], a max_tokens that is not a positive integer, a missing or wrong API key
(with --api-key), an unknown route. It does no sampling: the answer ignores temperature and seed.

Usage:
  python3 tools/stub_openai_server.py [--port 8080] [--api-key KEY] [--delay 0.03] [--page PATH]
  then open http://127.0.0.1:8080/ or run `WEB_CHAT_URL=http://127.0.0.1:8080 tests/cli/web_chat.sh`.
--port 0 picks a free port; the first line printed is "listening on http://127.0.0.1:PORT".
"""
import argparse
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = "stub-model"
ANSWER = ("You said: \u201c{q}\u201d. Here is a fixed answer from the stub server, with a new line\n"
          "and some non-ASCII text (caf\u00e9, \u65e5\u672c, \U0001f600) so that the page shows exactly what "
          "was streamed. It keeps going for a while so that Stop has something to stop, one word "
          "at a time, until max_tokens or the end of this sentence is reached.")


def tokens_of(text):
    """Splits text into "tokens": each word with the whitespace that follows it."""
    out, cur = [], ""
    for ch in text:
        if cur and not cur[-1].isspace() and ch.isspace():
            cur += ch
        elif cur and cur[-1].isspace() and not ch.isspace():
            out.append(cur)
            cur = ch
        else:
            cur += ch
    if cur:
        out.append(cur)
    return out


class ApiError(Exception):
    def __init__(self, status, message, param=None, kind="invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.kind = status, message, param, kind


class Handler(BaseHTTPRequestHandler):
    server_version = "stub-openai/1"

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("stub: " + (fmt % args) + "\n")

    def send_json(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def send_error_json(self, e):
        self.send_json(e.status, {"error": {"message": e.message, "type": e.kind, "param": e.param,
                                            "code": None}})

    def check_key(self):
        key = self.server.api_key
        if key and self.headers.get("Authorization", "") != "Bearer " + key:
            raise ApiError(401, "Incorrect API key provided.", kind="authentication_error")

    def do_GET(self):
        try:
            path = self.path.split("?", 1)[0]
            if path in ("/", "/index.html"):
                with open(self.server.page, "rb") as f:
                    data = f.read()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            elif path == "/health":
                self.send_json(200, {"status": "ok"})
            elif path == "/v1/models":
                self.check_key()
                self.send_json(200, {"object": "list", "data": [
                    {"id": MODEL, "object": "model", "created": 0, "owned_by": "stub"}]})
            else:
                raise ApiError(404, "Unknown route " + path, kind="not_found_error")
        except ApiError as e:
            self.send_error_json(e)

    def do_POST(self):
        try:
            path = self.path.split("?", 1)[0]
            if path != "/v1/chat/completions":
                raise ApiError(404, "Unknown route " + path, kind="not_found_error")
            self.check_key()
            n = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(n)
            try:
                req = json.loads(raw)
            except ValueError as e:
                raise ApiError(400, "malformed JSON: " + str(e))
            if not isinstance(req, dict) or not isinstance(req.get("messages"), list):
                raise ApiError(400, "'messages' must be an array", "messages")
            if "model" in req and req["model"] != MODEL:
                raise ApiError(404, "The model '%s' does not exist" % req["model"], "model",
                               "not_found_error")
            temp = req.get("temperature", 1.0)
            if not isinstance(temp, (int, float)) or isinstance(temp, bool) or not 0 <= temp <= 2:
                raise ApiError(400, "'temperature' must be a number between 0 and 2, got %s"
                               % json.dumps(temp), "temperature")
            max_tokens = req.get("max_tokens", 64)
            if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
                raise ApiError(400, "'max_tokens' must be a positive integer", "max_tokens")
            users = [m.get("content", "") for m in req["messages"]
                     if isinstance(m, dict) and m.get("role") == "user"]
            toks = tokens_of(ANSWER.format(q=users[-1] if users else ""))
            finish = "length" if len(toks) > max_tokens else "stop"
            toks = toks[:max_tokens]
            prompt_tokens = sum(len(tokens_of(str(m.get("content", ""))))
                                for m in req["messages"] if isinstance(m, dict))
            usage = {"prompt_tokens": prompt_tokens, "completion_tokens": len(toks),
                     "total_tokens": prompt_tokens + len(toks)}
            if req.get("stream"):
                self.stream(toks, finish, usage,
                            bool((req.get("stream_options") or {}).get("include_usage")))
            else:
                self.send_json(200, {"id": "chatcmpl-stub", "object": "chat.completion",
                                     "created": int(time.time()), "model": MODEL,
                                     "choices": [{"index": 0, "finish_reason": finish, "message": {
                                         "role": "assistant", "content": "".join(toks)}}],
                                     "usage": usage})
        except ApiError as e:
            self.send_error_json(e)

    def stream(self, toks, finish, usage, include_usage):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        base = {"id": "chatcmpl-stub", "object": "chat.completion.chunk",
                "created": int(time.time()), "model": MODEL}

        def event(obj):
            data = ("data: " + json.dumps(obj) + "\n\n").encode()
            half = len(data) // 2
            for piece in (data[:half], data[half:]):
                self.wfile.write(piece)
                self.wfile.flush()

        try:
            event(dict(base, choices=[{"index": 0, "delta": {"role": "assistant", "content": ""},
                                       "finish_reason": None}]))
            for t in toks:
                time.sleep(self.server.delay)
                event(dict(base, choices=[{"index": 0, "delta": {"content": t},
                                           "finish_reason": None}]))
            event(dict(base, choices=[{"index": 0, "delta": {}, "finish_reason": finish}]))
            if include_usage:
                event(dict(base, choices=[], usage=usage))
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            if self.server.verbose:
                sys.stderr.write("stub: client went away mid-stream\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--api-key", default="")
    ap.add_argument("--delay", type=float, default=0.03, help="seconds between streamed tokens")
    ap.add_argument("--page", default=os.path.join(REPO, "src", "server", "web", "index.html"))
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    srv = ThreadingHTTPServer((args.host, args.port), Handler)
    srv.daemon_threads = True
    srv.api_key, srv.delay, srv.page, srv.verbose = args.api_key, args.delay, args.page, args.verbose
    print("listening on http://%s:%d" % (args.host, srv.server_address[1]), flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
