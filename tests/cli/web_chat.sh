#!/usr/bin/env bash
# The web chat page (src/server/web/index.html, served at / by `pagoda serve`) in headless Chromium:
# tests/cli/web_chat.py types messages, sends them, and checks each streamed answer against the same
# request sent non-streamed with curl at temperature 0; plus Stop, New chat, the server's error
# message, settings kept across a reload. Screenshots go to $WEB_CHAT_SCREENSHOTS (default /tmp).
#
# By default it starts `$PAGODA_BIN serve -m ../shared/models/stories260K.gguf` on a free port.
# WEB_CHAT_URL=http://host:port/ runs it against any OpenAI-compatible server already running
# instead (e.g. `python3 tools/stub_openai_server.py --port 8080`); WEB_CHAT_API_KEY sets a key.
# Skips (77) without python3, curl or chromium, or while `pagoda serve` does not exist.
set -u
cd "$(dirname "$0")/../.."
driver=tests/cli/web_chat.py
shots=${WEB_CHAT_SCREENSHOTS:-/tmp}
command -v python3 >/dev/null || { echo "SKIP: python3 not found"; exit 77; }
command -v curl >/dev/null || { echo "SKIP: curl not found"; exit 77; }
[ -n "${CHROMIUM:-}" ] || command -v chromium >/dev/null || command -v chromium-browser >/dev/null ||
    command -v google-chrome >/dev/null || { echo "SKIP: chromium not found (apt-get install chromium)"; exit 77; }

if [ -n "${WEB_CHAT_URL:-}" ]; then
    exec python3 "$driver" "$WEB_CHAT_URL" --screenshots "$shots"
fi

bin=${PAGODA_BIN:?PAGODA_BIN must point at the pagoda binary}
"$bin" serve --help >/dev/null 2>&1 || { echo "SKIP: pagoda serve not built yet"; exit 77; }
shared=${PAGODA_SHARED:-../shared}
model=$shared/models/stories260K.gguf
[ -f "$model" ] || { echo "SKIP: $model not found (set PAGODA_SHARED)"; exit 77; }

tmp=$(mktemp -d)
pid=
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

# Start the server on a free port (picked, then bound by the server: retry if another process took it).
url=
for attempt in 1 2 3; do
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "$bin" serve -m "$model" --host 127.0.0.1 --port "$port" >"$tmp/server.log" 2>&1 &
    pid=$!
    for _ in $(seq 300); do
        kill -0 "$pid" 2>/dev/null || break
        [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health")" = 200 ] && { url="http://127.0.0.1:$port/"; break; }
        sleep 0.1
    done
    [ -n "$url" ] && break
    kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; pid=
done
if [ -z "$url" ]; then
    echo "FAIL: pagoda serve did not become healthy; its output:"; sed 's/^/  | /' "$tmp/server.log" | tail -20
    exit 1
fi

# The page itself comes from the binary: it must be what index.html holds.
curl -s "$url" -o "$tmp/page.html"
if ! cmp -s "$tmp/page.html" src/server/web/index.html; then
    echo "FAIL: GET / does not return src/server/web/index.html"; rc=1
else
    echo "ok   GET / returns src/server/web/index.html ($(wc -c <src/server/web/index.html) bytes)"
    python3 "$driver" "$url" --screenshots "$shots"
    rc=$?
fi

kill -INT "$pid" 2>/dev/null
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$pid" 2>/dev/null; then
    echo "FAIL: pagoda serve did not stop within 10 s of SIGINT"; rc=1
else
    wait "$pid"; status=$?
    # A clean stop: 0, or 130 (the shell convention for "ended by SIGINT").
    [ "$status" -eq 0 ] || [ "$status" -eq 130 ] || { echo "FAIL: pagoda serve exited with status $status after SIGINT"; rc=1; }
fi
pid=
if grep -q -E "Sanitizer|runtime error" "$tmp/server.log"; then
    echo "FAIL: sanitizer report in the server's output:"; grep -A5 -E "Sanitizer|runtime error" "$tmp/server.log" | head -30; rc=1
fi
[ "$rc" -ne 0 ] && { echo "server log:"; sed 's/^/  | /' "$tmp/server.log" | tail -20; }
exit "$rc"
