#!/usr/bin/env python3
"""stub_sse_server.py - a stand-in OpenAI-compatible server for testing `pagoda bench serve`.

Python standard library only. Streams a known number of tokens with known delays, so a load
generator's measurements can be checked against what the server actually did:

  POST /v1/completions, /v1/chat/completions   ("stream": true required)
      waits --ttft-delay seconds, then streams n tokens (" tok0", " tok1", ...) as SSE events
      `data: {...}` with --itl-delay seconds between them, then (when the request asks for
      stream_options.include_usage and --no-usage is not given) a final chunk with "choices": []
      and "usage": {"prompt_tokens": <words in the prompt>, "completion_tokens": n, ...}, then
      `data: [DONE]`. n is the request's max_tokens (max_completion_tokens for chat), else --tokens.
      Chat streams first send a role-only delta ({"role": "assistant", "content": ""}) at once,
      which carries no text.
  GET /v1/models      {"object": "list", "data": [{"id": --model-name, ...}]}
  GET /stats          {"requests": total POSTs, "in_flight": now, "peak_in_flight": most at once}

Options: --port (0: any free port; the chosen one is written to --port-file), --ttft-delay,
--itl-delay, --tokens, --no-usage, --api-key KEY (401 without "Authorization: Bearer KEY"),
--fail-every K (every K-th POST, counting from 1, answers HTTP 500 with an OpenAI error body),
--crlf (CRLF line endings), --split (each event written in two pieces, cut mid-JSON),
--log FILE (every POST body appended as one JSON line).
Responses use HTTP/1.1 with chunked transfer encoding, so connections are kept alive.

Usage: python3 tools/stub_sse_server.py --port 0 --port-file /tmp/port --ttft-delay 0.05 --itl-delay 0.01
"""
import argparse
import json
import os
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ARGS = None
LOCK = threading.Lock()
STATS = {"requests": 0, "in_flight": 0, "peak_in_flight": 0}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        # Small writes go out at once (no Nagle delay), or measured gaps would be the stub's, not ours.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, fmt, *args):  # quiet
        pass

    def send_json(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def error(self, status, message, etype):
        self.send_json(status, {"error": {"message": message, "type": etype, "param": None,
                                          "code": status}})

    def do_GET(self):
        if self.path == "/v1/models":
            self.send_json(200, {"object": "list", "data": [
                {"id": ARGS.model_name, "object": "model", "created": 0, "owned_by": "stub"}]})
        elif self.path == "/stats":
            with LOCK:
                self.send_json(200, dict(STATS))
        else:
            self.error(404, "no route " + self.path, "not_found_error")

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def event(self, payload):
        nl = "\r\n" if ARGS.crlf else "\n"
        data = ("data: " + payload + nl + nl).encode()
        if ARGS.split and len(data) > 2:
            half = len(data) // 2
            self.chunk(data[:half])
            time.sleep(0.0005)
            self.chunk(data[half:])
        else:
            self.chunk(data)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        with LOCK:
            STATS["requests"] += 1
            number = STATS["requests"]
            if ARGS.log:
                with open(ARGS.log, "a") as f:
                    f.write(raw.decode("utf-8", "replace").replace("\n", " ") + "\n")
        if ARGS.api_key and self.headers.get("Authorization") != "Bearer " + ARGS.api_key:
            return self.error(401, "invalid API key", "authentication_error")
        chat = self.path == "/v1/chat/completions"
        if self.path not in ("/v1/completions", "/v1/chat/completions"):
            return self.error(404, "no route " + self.path, "not_found_error")
        try:
            req = json.loads(raw)
        except ValueError as e:
            return self.error(400, "malformed JSON: %s" % e, "invalid_request_error")
        if not req.get("stream"):
            return self.error(400, "this stub only streams", "invalid_request_error")
        if ARGS.fail_every and number % ARGS.fail_every == 0:
            return self.error(500, "stub failure for request %d" % number, "server_error")
        if chat:
            prompt = " ".join(m.get("content", "") for m in req.get("messages", []))
            n = req.get("max_completion_tokens") or req.get("max_tokens") or ARGS.tokens
        else:
            prompt = req.get("prompt", "")
            n = req.get("max_tokens") or ARGS.tokens
        usage = bool((req.get("stream_options") or {}).get("include_usage")) and not ARGS.no_usage
        with LOCK:
            STATS["in_flight"] += 1
            STATS["peak_in_flight"] = max(STATS["peak_in_flight"], STATS["in_flight"])
        counted = True
        try:
            self.stream(chat, req.get("model", ""), prompt, n, usage)
            # Leave the in-flight count before the last byte goes out: a client can only start its
            # next request after that byte, so peak_in_flight never counts one request twice.
            with LOCK:
                STATS["in_flight"] -= 1
            counted = False
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            if counted:
                with LOCK:
                    STATS["in_flight"] -= 1

    def stream(self, chat, model, prompt, n, usage):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        kind = "chat.completion.chunk" if chat else "text_completion"
        base = {"id": "stub-%d" % id(self), "object": kind, "created": int(time.time()), "model": model}
        if chat:
            self.event(json.dumps(dict(base, choices=[
                {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])))
        time.sleep(ARGS.ttft_delay)
        for i in range(n):
            if i > 0:
                time.sleep(ARGS.itl_delay)
            text = " tok%d" % i
            finish = "length" if i == n - 1 else None
            if chat:
                choice = {"index": 0, "delta": {"content": text}, "finish_reason": finish}
            else:
                choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
            self.event(json.dumps(dict(base, choices=[choice])))
        if usage:
            n_prompt = len(prompt.split())
            self.event(json.dumps(dict(base, choices=[], usage={
                "prompt_tokens": n_prompt, "completion_tokens": n, "total_tokens": n_prompt + n})))
        self.event("[DONE]")


class Server(ThreadingHTTPServer):
    request_queue_size = 256  # the default listen backlog of 5 drops SYNs under a burst (1 s retries)
    daemon_threads = True


def main():
    global ARGS
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file")
    p.add_argument("--model-name", default="stub-model")
    p.add_argument("--tokens", type=int, default=16)
    p.add_argument("--ttft-delay", type=float, default=0.05)
    p.add_argument("--itl-delay", type=float, default=0.01)
    p.add_argument("--no-usage", action="store_true")
    p.add_argument("--api-key")
    p.add_argument("--fail-every", type=int, default=0)
    p.add_argument("--crlf", action="store_true")
    p.add_argument("--split", action="store_true")
    p.add_argument("--log")
    ARGS = p.parse_args()
    server = Server((ARGS.host, ARGS.port), Handler)
    port = server.server_address[1]
    if ARGS.port_file:
        with open(ARGS.port_file + ".tmp", "w") as f:
            f.write("%d\n" % port)
        os.replace(ARGS.port_file + ".tmp", ARGS.port_file)
    print("stub_sse_server listening on http://%s:%d" % (ARGS.host, port), file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
