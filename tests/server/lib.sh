# tests/server/lib.sh - shell helpers for the `pagoda serve` tests (sourced by tests/cli/serve*.sh):
# start a server on 127.0.0.1 at a free port (--port 0, the port read from its log), make HTTP
# requests with curl, count checks, and stop the server with SIGTERM, checking that it exits 0
# with no sanitizer report.
# Needs: $bin (the pagoda binary), $tmp (a scratch folder).

fails=0 checks=0
check() { # description, condition (a command string)
    checks=$((checks + 1))
    if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fails=$((fails + 1)); fi
}

# start_server NAME [pagoda serve options...]: sets ${NAME}_pid, ${NAME}_url; waits until ready.
start_server() {
    local name=$1; shift
    local log="$tmp/$name.log"
    "$bin" serve --port 0 "$@" >"$log" 2>&1 &
    local pid=$!
    eval "${name}_pid=$pid"
    local port=""
    for _ in $(seq 1 600); do
        grep -q 'ready:' "$log" && break
        kill -0 "$pid" 2>/dev/null || break
        [ -n "${START_NO_WAIT:-}" ] && grep -q 'listening on' "$log" && break
        sleep 0.1
    done
    port=$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\).*|\1|p' "$log" | head -1)
    eval "${name}_url=http://127.0.0.1:$port"
    if [ -z "$port" ] || { [ -z "${START_NO_WAIT:-}" ] && ! grep -q 'ready:' "$log"; }; then
        echo "FAIL server $name did not start:"; sed 's/^/  | /' "$log"; fails=$((fails + 1)); return 1
    fi
}

# stop_server NAME: SIGTERM, wait; checks exit status 0 and a clean log.
stop_server() {
    local name=$1 pid
    eval "pid=\${${name}_pid}"
    kill -TERM "$pid" 2>/dev/null
    wait "$pid"
    local rc=$?
    check "server $name stops cleanly on SIGTERM (exit $rc)" "[ $rc -eq 0 ] && grep -q 'stopped' '$tmp/$name.log'"
    check "server $name: no sanitizer report" "! grep -qE 'Sanitizer|runtime error' '$tmp/$name.log'"
    grep -E -A30 'Sanitizer|runtime error' "$tmp/$name.log" | head -60
}

# http METHOD URL [BODY] [curl options...]: the status code on stdout, the body in $tmp/body.
http() {
    local method=$1 url=$2; shift 2
    local body=""
    if [ $# -gt 0 ]; then body=$1; shift; fi
    if [ -n "$body" ]; then
        curl -s -o "$tmp/body" -w '%{http_code}' -X "$method" -H 'Content-Type: application/json' --data-binary "$body" "$@" "$url"
    else
        curl -s -o "$tmp/body" -w '%{http_code}' -X "$method" "$@" "$url"
    fi
}

# metric URL NAME: the value of pagoda:NAME (first series) from /metrics.
metric() {
    curl -s "$1/metrics" | grep "^pagoda:$2[{ ]" | head -1 | awk '{print $NF}'
}

# sse_text FILE [FIELD]: the concatenated text of an SSE stream's chunks (completions: .text,
# chat: .delta.content) for choice 0.
sse_text() {
    grep '^data: {' "$1" | sed 's/^data: //' | jq -j 'select(.choices) | .choices[] | select(.index == 0) | (.text // .delta.content // "")'
}
