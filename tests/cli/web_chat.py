#!/usr/bin/env python3
"""tests/cli/web_chat.py - drives the web chat page (src/server/web/index.html) in headless Chromium
against any OpenAI-compatible server at URL, the way a user would, and checks what it shows.

Chromium is controlled through the Chrome DevTools Protocol over --remote-debugging-pipe (fd 3 in,
fd 4 out, NUL-separated JSON), so only the Python standard library is needed. Clicks and key
presses are real input events (Input.dispatchMouseEvent / dispatchKeyEvent / insertText).

Scenario (each step checked; the reference for every answer is the same request sent
non-streamed with curl, never the page's own earlier output):
  1. the page loads, shows the model from GET /v1/models, makes no request outside URL's origin;
  2. Settings dialog: temperature 0 and max_tokens typed in, closed with Done, kept in localStorage;
  3. a message typed, sent with Enter: the POST had stream: true, the settings and the message, the
     response was text/event-stream, and the assistant bubble equals curl's non-streamed answer;
  4. a second message with a Shift+Enter newline: the request carries the whole history (user,
     assistant, user) and the bubble again equals curl's answer; screenshots (light, dark, narrow);
  5. Stop (with the network throttled so the stream is slow): the answer stops early, is a prefix
     of curl's answer, and the meta line says "stopped";
  6. New chat empties the conversation; a bad temperature (-1) shows the server's own error
     message (as curl gets it) and gives the typed text back; (skipped if the server accepts -1)
  7. after a reload the settings are still there; no JavaScript exception was thrown.
Usage: web_chat.py URL [--max-tokens N] [--screenshots DIR] [--api-key KEY]
Exit status: 0 pass, 1 fail, 77 skip (no Chromium, no curl).
"""
import argparse
import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse

SETTINGS_KEY = "pagoda.chat.settings.v1"
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)
    return cond


class CdpError(Exception):
    pass


class Browser:
    """Headless Chromium with one page, spoken to over the DevTools pipe."""

    def __init__(self, exe, width, height):
        self.profile = tempfile.mkdtemp(prefix="pagoda-web-chat-")
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        # Move the ends out of the way of fds 3 and 4 (close-on-exec), then dup2 them there in the child.
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 100)
                for fd in (to_child_r, to_child_w, from_child_r, from_child_w)]
        for fd in (to_child_r, to_child_w, from_child_r, from_child_w):
            os.close(fd)
        child_in, self.w, self.r, child_out = high

        def in_child():
            os.dup2(child_in, 3)
            os.dup2(child_out, 4)

        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--no-default-browser-check", "--disable-extensions", "--mute-audio",
               "--disable-background-networking", "--disable-dev-shm-usage",
               "--user-data-dir=" + self.profile, "--remote-debugging-pipe",
               "--window-size=%d,%d" % (width, height), "about:blank"]
        self.log = open(os.path.join(self.profile, "chromium.log"), "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
                                     preexec_fn=in_child, close_fds=False)
        os.close(child_in)
        os.close(child_out)
        self.buf = b""
        self.next_id = 0
        self.events = []
        self.session = None

    def _read_message(self, deadline):
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from Chromium")
            ready, _, _ = select.select([self.r], [], [], left)
            if ready:
                chunk = os.read(self.r, 1 << 20)
                if not chunk:
                    raise CdpError("Chromium closed the DevTools pipe (crashed?)")
                self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method, params=None, session=True, timeout=30):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        data = json.dumps(msg).encode() + b"\0"
        while data:
            data = data[os.write(self.w, data):]
        deadline = time.monotonic() + timeout
        while True:
            m = self._read_message(deadline)
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise CdpError("%s: %s" % (method, m["error"].get("message")))
                return m.get("result", {})
            if "method" in m:
                self.events.append(m)

    def open_page(self):
        target = self.call("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True},
                                 session=False)["sessionId"]
        for domain in ("Page", "Runtime", "Network"):
            self.call(domain + ".enable")

    def wait_event(self, method, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            for i, e in enumerate(self.events):
                if e["method"] == method:
                    return self.events.pop(i)
            self.events.append(self._read_message(deadline))

    def navigate(self, url, timeout=30):
        self.events = [e for e in self.events if e["method"] != "Page.loadEventFired"]
        r = self.call("Page.navigate", {"url": url})
        if r.get("errorText"):
            raise CdpError("cannot open %s: %s" % (url, r["errorText"]))
        self.wait_event("Page.loadEventFired", timeout)

    def eval(self, expr):
        r = self.call("Runtime.evaluate", {"expression": expr, "returnByValue": True,
                                           "awaitPromise": True})
        if "exceptionDetails" in r:
            raise CdpError("evaluate %r: %s" % (expr, r["exceptionDetails"].get("text")))
        return r["result"].get("value")

    def wait_for(self, expr, timeout=60, what=None):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.eval(expr):
                return True
            time.sleep(0.05)
        raise TimeoutError("timed out waiting for " + (what or expr))

    def click(self, selector):
        xy = self.eval("(() => { const e = document.querySelector(%s); if (!e) return null;"
                       " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
                       " return [r.x + r.width / 2, r.y + r.height / 2]; })()" % json.dumps(selector))
        if xy is None:
            raise CdpError("no element " + selector)
        base = {"x": xy[0], "y": xy[1], "button": "left", "clickCount": 1}
        self.call("Input.dispatchMouseEvent", dict(base, type="mouseMoved", button="none"))
        self.call("Input.dispatchMouseEvent", dict(base, type="mousePressed"))
        self.call("Input.dispatchMouseEvent", dict(base, type="mouseReleased"))

    def type_text(self, text):
        self.call("Input.insertText", {"text": text})

    def press(self, key, shift=False):
        codes = {"Enter": (13, "\r"), "Escape": (27, ""), "Backspace": (8, "")}
        vk, text = codes[key]
        ev = {"key": key, "code": key, "windowsVirtualKeyCode": vk, "nativeVirtualKeyCode": vk,
              "modifiers": 8 if shift else 0}
        self.call("Input.dispatchKeyEvent", dict(ev, type="keyDown", text=text) if text
                  else dict(ev, type="rawKeyDown"))
        self.call("Input.dispatchKeyEvent", dict(ev, type="keyUp"))

    def select_all_and_type(self, selector, text):
        self.click(selector)
        ev = {"key": "a", "code": "KeyA", "windowsVirtualKeyCode": 65, "modifiers": 2}
        self.call("Input.dispatchKeyEvent", dict(ev, type="rawKeyDown", commands=["selectAll"]))
        self.call("Input.dispatchKeyEvent", dict(ev, type="keyUp"))
        if text == "":
            self.press("Backspace")
        else:
            self.type_text(text)

    def screenshot(self, path):
        data = self.call("Page.captureScreenshot", {"format": "png"})["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def close(self):
        try:
            self.call("Browser.close", session=False, timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
def curl_chat(base, body, api_key):
    """POSTs body to v1/chat/completions with curl; returns (HTTP status, parsed JSON or text)."""
    cmd = ["curl", "-sS", "--max-time", "120", "-o", "-", "-w", "\n%{http_code}",
           "-H", "Content-Type: application/json", "--data-binary", "@-",
           urllib.parse.urljoin(base, "v1/chat/completions")]
    if api_key:
        cmd[1:1] = ["-H", "Authorization: Bearer " + api_key]
    out = subprocess.run(cmd, input=json.dumps(body).encode(), capture_output=True, check=True).stdout
    text, _, status = out.decode().rpartition("\n")
    try:
        return int(status), json.loads(text)
    except ValueError:
        return int(status), text


def curl_answer(base, body, api_key):
    body = {k: v for k, v in body.items() if k != "stream_options"}  # only allowed when streaming
    status, j = curl_chat(base, dict(body, stream=False), api_key)
    if status != 200:
        raise CdpError("curl reference request failed (%d): %s" % (status, j))
    return j["choices"][0]["message"]["content"]


def chat_posts(browser):
    """The page's POSTs to v1/chat/completions so far: [(requestId, body as parsed JSON)]."""
    out = []
    for e in browser.events:
        if e["method"] != "Network.requestWillBeSent":
            continue
        req = e["params"]["request"]
        if req["method"] == "POST" and req["url"].endswith("/v1/chat/completions"):
            raw = req.get("postData")
            if raw is None:
                raw = browser.call("Network.getRequestPostData",
                                   {"requestId": e["params"]["requestId"]})["postData"]
            out.append((e["params"]["requestId"], json.loads(raw)))
    return out


def response_mime(browser, request_id):
    for e in browser.events:
        if e["method"] == "Network.responseReceived" and e["params"]["requestId"] == request_id:
            return e["params"]["response"].get("mimeType")
    return None


def send_and_wait(browser, n_before, text_lines):
    """Types text_lines into the prompt (Shift+Enter between lines), presses Enter, waits for the
    answer. Returns (captured request body, request id, answer text, meta text, #chunks seen)."""
    browser.click("#prompt")
    for i, line in enumerate(text_lines):
        if i:
            browser.press("Enter", shift=True)
        browser.type_text(line)
    browser.press("Enter")
    browser.wait_for("document.querySelectorAll('.msg.assistant').length > %d" % n_before, 30,
                     "the assistant bubble")
    lengths = set()
    deadline = time.monotonic() + 120
    while browser.eval("document.getElementById('composer').dataset.busy") == "true":
        lengths.add(browser.eval("(() => { const m = document.querySelectorAll("
                                 "'.msg.assistant .content'); return m[m.length - 1].textContent.length; })()"))
        if time.monotonic() > deadline:
            raise TimeoutError("the answer did not finish in 120 s")
        time.sleep(0.02)
    answer, meta = browser.eval("(() => { const m = document.querySelectorAll('.msg.assistant');"
                                " const l = m[m.length - 1]; return [l.querySelector('.content').textContent,"
                                " l.querySelector('.meta').textContent]; })()")
    posts = chat_posts(browser)
    rid, body = posts[-1]
    return body, rid, answer, meta, len(lengths)


def set_setting(browser, field, value):
    browser.select_all_and_type("#s-" + field, value)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--max-tokens", type=int, default=40)
    ap.add_argument("--screenshots", default="/tmp")
    ap.add_argument("--api-key", default=os.environ.get("WEB_CHAT_API_KEY", ""))
    args = ap.parse_args()
    base = args.url if args.url.endswith("/") else args.url + "/"
    origin = urllib.parse.urlsplit(base)[:2]

    exe = os.environ.get("CHROMIUM") or next(
        (p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)
    if not exe:
        print("SKIP: chromium not found (set CHROMIUM)")
        return 77
    if not shutil.which("curl"):
        print("SKIP: curl not found")
        return 77

    browser = Browser(exe, 1100, 820)
    try:
        browser.open_page()
        browser.call("Emulation.setDeviceMetricsOverride", {"width": 1100, "height": 820,
                                                            "deviceScaleFactor": 1, "mobile": False})
        browser.navigate(base)
        # 1. the page and the model name
        check(browser.eval("document.title").endswith("Pagoda chat"), "page loaded: " + browser.eval("document.title"))
        browser.wait_for("document.getElementById('status-dot').className !== 'dot'", 30, "GET v1/models")
        if args.api_key:  # the server wants a key: the page says so, then works once it is typed in
            shown = browser.eval("document.getElementById('model-name').textContent")
            check(shown == "API key needed (Settings)", "without the API key the page says %r" % shown)
            browser.click("#open-settings")
            set_setting(browser, "api_key", args.api_key)
            browser.click("#settings-done")
            browser.wait_for("document.getElementById('model-name').textContent !== %s" % json.dumps(shown),
                             30, "GET v1/models with the key")
        model = browser.eval("document.getElementById('model-name').textContent")
        ok = browser.eval("document.getElementById('status-dot').className") == "dot ok"
        check(ok, "model shown from GET /v1/models: %r" % model)

        # 2. settings through the dialog
        browser.click("#open-settings")
        browser.wait_for("document.getElementById('settings').open", 5, "the settings dialog")
        set_setting(browser, "temperature", "0")
        set_setting(browser, "max_tokens", str(args.max_tokens))
        browser.screenshot(os.path.join(args.screenshots, "pagoda_web_chat_settings.png"))
        browser.click("#settings-done")
        browser.wait_for("!document.getElementById('settings').open", 5, "the dialog to close")
        saved = json.loads(browser.eval("localStorage.getItem(%s)" % json.dumps(SETTINGS_KEY)) or "{}")
        check(saved.get("temperature") == "0" and saved.get("max_tokens") == str(args.max_tokens),
              "settings kept in localStorage: temperature %r, max_tokens %r"
              % (saved.get("temperature"), saved.get("max_tokens")))

        def expected_request(messages):
            body = {"messages": messages, "temperature": 0, "max_tokens": args.max_tokens}
            if model and ok:
                body["model"] = model
            return body

        def check_request(body, want, what):
            sent = {k: body.get(k) for k in ("messages", "temperature", "max_tokens", "model")
                    if k in body or k in want}
            check(body.get("stream") is True and sent == want,
                  "%s: request as expected (stream: %r, %d messages)"
                  % (what, body.get("stream"), len(body.get("messages", []))))
            if sent != want:
                print("      sent:   %s\n      wanted: %s" % (json.dumps(sent), json.dumps(want)))

        # 3. first turn
        q1 = "Once upon a time"
        body, rid, answer, meta, n_seen = send_and_wait(browser, 0, [q1])
        want = expected_request([{"role": "user", "content": q1}])
        check_request(body, want, "turn 1")
        check(response_mime(browser, rid) == "text/event-stream",
              "turn 1: answer streamed as text/event-stream (%d distinct lengths seen while streaming)" % n_seen)
        ref = curl_answer(base, want, args.api_key)
        check(answer == ref and answer != "", "turn 1: bubble equals curl's non-streamed answer (%d chars)" % len(ref))
        if answer != ref:
            print("      page: %r\n      curl: %r" % (answer, ref))
        check("tokens/s" in meta, "turn 1: meta line shows speed: %r" % meta)

        # 4. second turn, a newline typed with Shift+Enter, history sent
        q2 = ["The little dog", "ran to the park"]
        body, rid, answer2, meta, _ = send_and_wait(browser, 1, q2)
        want = expected_request([{"role": "user", "content": q1}, {"role": "assistant", "content": ref},
                                 {"role": "user", "content": "\n".join(q2)}])
        check_request(body, want, "turn 2 (history, Shift+Enter newline)")
        ref2 = curl_answer(base, want, args.api_key)
        check(answer2 == ref2, "turn 2: bubble equals curl's non-streamed answer (%d chars)" % len(ref2))
        if answer2 != ref2:
            print("      page: %r\n      curl: %r" % (answer2, ref2))
        # Regenerate the last answer: the same request again, the same answer at temperature 0
        n_posts = len(chat_posts(browser))
        check(browser.eval("document.querySelectorAll('.regen').length === 2 && "
                           "getComputedStyle(document.querySelectorAll('.regen')[0]).display === 'none' && "
                           "getComputedStyle(document.querySelectorAll('.regen')[1]).display !== 'none'"),
              "Regenerate is offered on the last answer only")
        browser.click("#messages > .msg.assistant:last-child .regen")
        browser.wait_for("document.getElementById('composer').dataset.busy === 'false' && "
                         "document.querySelectorAll('.msg.assistant .copy').length === 2", 60, "the regenerated answer")
        posts = chat_posts(browser)
        regen = browser.eval("(() => { const m = document.querySelectorAll('.msg.assistant .content');"
                             " return [m.length, m[m.length - 1].textContent]; })()")
        check(len(posts) == n_posts + 1 and posts[-1][1].get("messages") == want["messages"]
              and regen == [2, ref2], "Regenerate: same history sent, answer again equals curl's")
        # Copy puts the answer on the clipboard
        browser.call("Browser.grantPermissions", {"permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"],
                                                  "origin": "%s://%s" % origin}, session=False)
        browser.click("#messages > .msg.assistant .copy")
        browser.wait_for("document.querySelector('.msg.assistant .copy').textContent !== 'Copy'", 5, "Copy")
        label = browser.eval("document.querySelector('.msg.assistant .copy').textContent")
        clip = browser.eval("navigator.clipboard ? navigator.clipboard.readText().catch((e) => 'ERR ' + e) : null")
        if clip is None:  # not a secure context: the page copies with execCommand, unreadable here
            check(label == "Copied", "Copy says %r (clipboard not readable on this origin)" % label)
        else:
            check(label == "Copied" and clip == ref, "Copy puts the first answer on the clipboard (%r)" % clip[:40])

        shot = os.path.join(args.screenshots, "pagoda_web_chat.png")
        browser.screenshot(shot)
        browser.call("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
        browser.screenshot(os.path.join(args.screenshots, "pagoda_web_chat_dark.png"))
        browser.call("Emulation.setEmulatedMedia", {"features": []})
        browser.call("Emulation.setDeviceMetricsOverride", {"width": 390, "height": 780,
                                                            "deviceScaleFactor": 1, "mobile": True})
        browser.screenshot(os.path.join(args.screenshots, "pagoda_web_chat_narrow.png"))
        wide = browser.eval("document.documentElement.scrollWidth <= window.innerWidth")
        check(wide, "narrow screen (390 px): no horizontal scrolling")
        browser.call("Emulation.setDeviceMetricsOverride", {"width": 1100, "height": 820,
                                                            "deviceScaleFactor": 1, "mobile": False})
        print("      screenshots: %s (+ _dark, _narrow, _settings)" % shot)

        # 5. Stop, with the download throttled to ~600 bytes/s so that the stream is slow
        browser.call("Network.emulateNetworkConditions", {"offline": False, "latency": 0,
                                                          "downloadThroughput": 600, "uploadThroughput": -1})
        n_posts = len(chat_posts(browser))
        browser.click("#prompt")
        browser.type_text("Tell me a story")
        browser.click("#send")
        browser.wait_for("(() => { const m = document.querySelectorAll('.msg.assistant .content');"
                         " return m.length === 3 && m[2].textContent.length > 0; })()", 60, "the first token")
        check(browser.eval("!document.getElementById('stop').hidden && document.getElementById('send').hidden"),
              "Stop button replaces Send while streaming")
        browser.click("#stop")
        browser.wait_for("document.getElementById('composer').dataset.busy === 'false'", 10, "Stop to take effect")
        browser.call("Network.emulateNetworkConditions", {"offline": False, "latency": 0,
                                                          "downloadThroughput": -1, "uploadThroughput": -1})
        partial, meta = browser.eval("(() => { const l = document.querySelectorAll('.msg.assistant')[2];"
                                     " return [l.querySelector('.content').textContent, l.querySelector('.meta').textContent]; })()")
        posts = chat_posts(browser)
        check(len(posts) == n_posts + 1, "Stop: one request sent by the Send button")
        full = curl_answer(base, posts[-1][1], args.api_key)
        check(partial != "" and full.startswith(partial) and len(partial) < len(full) and "stopped" in meta,
              "Stop: the answer stopped early (%d of %d chars, a prefix of curl's), meta %r"
              % (len(partial), len(full), meta))

        # 6. New chat, then a bad setting shows the server's error message
        browser.click("#new-chat")
        check(browser.eval("document.querySelectorAll('.msg').length === 0 && !document.getElementById('empty').hidden"),
              "New chat empties the conversation")
        browser.click("#open-settings")
        set_setting(browser, "temperature", "-1")
        browser.click("#settings-done")
        browser.wait_for("!document.getElementById('settings').open", 5, "the dialog to close")
        bad = dict(expected_request([{"role": "user", "content": "Hello"}]), temperature=-1)
        status, j = curl_chat(base, dict(bad, stream=True), args.api_key)
        if status >= 400 and isinstance(j, dict) and isinstance(j.get("error"), dict):
            n_posts = len(chat_posts(browser))
            browser.click("#prompt")
            browser.type_text("Hello")
            browser.press("Enter")
            browser.wait_for("!document.getElementById('error').hidden", 30, "the error message")
            shown = browser.eval("document.getElementById('error').textContent")
            check(shown == j["error"]["message"], "error shows the server's message: %r" % shown)
            posts = chat_posts(browser)
            check(len(posts) == n_posts + 1 and len(posts[-1][1]["messages"]) == 1,
                  "after New chat the request carries only the new message")
            check(browser.eval("document.getElementById('prompt').value") == "Hello"
                  and browser.eval("document.querySelectorAll('.msg').length") == 0,
                  "the failed message is given back to the text box")
            browser.screenshot(os.path.join(args.screenshots, "pagoda_web_chat_error.png"))
        else:
            print("      (server accepted temperature -1 with status %d: error display not checked)" % status)

        # 7. settings survive a reload; no JavaScript errors
        browser.navigate(base)
        browser.click("#open-settings")
        vals = browser.eval("[document.getElementById('s-temperature').value,"
                            " document.getElementById('s-max_tokens').value]")
        check(vals == ["-1", str(args.max_tokens)], "settings restored after reload: %r" % vals)
        browser.press("Escape")
        exceptions = [e for e in browser.events if e["method"] == "Runtime.exceptionThrown"]
        check(not exceptions, "no JavaScript exceptions (%d)" % len(exceptions))
        for e in exceptions[:3]:
            print("      " + json.dumps(e["params"]["exceptionDetails"])[:300])
        urls = {e["params"]["request"]["url"] for e in browser.events
                if e["method"] == "Network.requestWillBeSent"}
        foreign = [u for u in urls if urllib.parse.urlsplit(u)[:2] != origin and not u.startswith("data:")]
        check(not foreign, "no request outside %s://%s (%d URLs)" % (origin[0], origin[1], len(urls)))
        for u in foreign[:5]:
            print("      " + u)
    except (CdpError, TimeoutError, subprocess.CalledProcessError) as e:
        failures.append(str(e))
        print("FAIL " + str(e))
        try:  # what the page shows, to tell why
            print("      page state: " + json.dumps(browser.eval(
                "({busy: document.getElementById('composer').dataset.busy,"
                " error: document.getElementById('error').textContent,"
                " prompt: document.getElementById('prompt').value,"
                " messages: Array.from(document.querySelectorAll('.msg')).map((m) => m.textContent.slice(0, 80)),"
                " settings: localStorage.getItem(%s)})" % json.dumps(SETTINGS_KEY)))[:1500])
            posts = chat_posts(browser)
            if posts:
                print("      last request: " + json.dumps(posts[-1][1])[:500])
        except Exception as e2:
            print("      (page state not available: %s)" % e2)
    finally:
        browser.close()
    print("%s: %d failure(s)" % ("web chat page" if not failures else "web chat page FAILED", len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
