/* bench_client/bench_sse.c - reading a streamed OpenAI response: the server-sent-events parser
 * (bytes -> events) and the interpretation of one event's JSON payload (text, usage, error, [DONE]).
 * Follows the SSE rules a client needs (WHATWG "event stream interpretation"): lines end in LF, CRLF
 * or CR; "data:" lines of one event are joined with '\n'; a blank line dispatches; "event:", "id:",
 * "retry:" and ":" comment lines are ignored. Does not implement reconnection. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_client/bench_client.h" /* defines: bench_sse, bench_chunk, bench_chunk_parse */

#define SSE_MAX_LINE_BYTES ((size_t)16 << 20)

static bool grow(char **buf, size_t *cap, size_t need) {
    if (need <= *cap) return true;
    size_t cap2 = *cap ? *cap : 256;
    while (cap2 < need) cap2 *= 2;
    char *p = realloc(*buf, cap2);
    if (!p) return false;
    *buf = p;
    *cap = cap2;
    return true;
}

static bool dispatch(bench_sse *s, bench_sse_event_fn fn, void *ctx) {
    if (!s->has_data) return true;
    s->has_data = false;
    size_t len = s->data_len;
    s->data_len = 0;
    s->data[len] = '\0';
    return fn(ctx, s->data, len);
}

/* One complete line (without its terminator). */
static bool handle_line(bench_sse *s, const char *line, size_t len, bench_sse_event_fn fn, void *ctx) {
    if (len == 0) return dispatch(s, fn, ctx);
    if (len < 5 || memcmp(line, "data:", 5) != 0) return true; /* other fields, comments */
    const char *value = line + 5;
    size_t n = len - 5;
    if (n > 0 && value[0] == ' ') value++, n--;
    size_t need = s->data_len + (s->has_data ? 1 : 0) + n + 1;
    if (need > SSE_MAX_LINE_BYTES || !grow(&s->data, &s->data_cap, need)) return false;
    if (s->has_data) s->data[s->data_len++] = '\n';
    memcpy(s->data + s->data_len, value, n);
    s->data_len += n;
    s->has_data = true;
    return true;
}

bool bench_sse_feed(bench_sse *s, const char *bytes, size_t n, bench_sse_event_fn fn, void *ctx) {
    size_t i = 0;
    if (s->skip_lf && n > 0) { /* the LF of a CRLF split across two buffers */
        if (bytes[0] == '\n') i = 1;
        s->skip_lf = false;
    }
    while (i < n) {
        size_t j = i;
        while (j < n && bytes[j] != '\n' && bytes[j] != '\r') j++;
        size_t piece = j - i;
        if (s->line_len + piece + 1 > SSE_MAX_LINE_BYTES) return false;
        if (j == n) { /* unfinished line: keep it */
            if (!grow(&s->line, &s->line_cap, s->line_len + piece + 1)) return false;
            memcpy(s->line + s->line_len, bytes + i, piece);
            s->line_len += piece;
            return true;
        }
        bool ok;
        if (s->line_len == 0) {
            ok = handle_line(s, bytes + i, piece, fn, ctx);
        } else {
            if (!grow(&s->line, &s->line_cap, s->line_len + piece + 1)) return false;
            memcpy(s->line + s->line_len, bytes + i, piece);
            ok = handle_line(s, s->line, s->line_len + piece, fn, ctx);
            s->line_len = 0;
        }
        if (!ok) return false;
        i = j + 1;
        if (bytes[j] == '\r') {
            if (i < n && bytes[i] == '\n') i++;
            else if (i == n) s->skip_lf = true;
        }
    }
    return true;
}

bool bench_sse_finish(bench_sse *s, bench_sse_event_fn fn, void *ctx) {
    if (s->line_len > 0) {
        bool ok = handle_line(s, s->line, s->line_len, fn, ctx);
        s->line_len = 0;
        if (!ok) return false;
    }
    return dispatch(s, fn, ctx);
}

void bench_sse_free(bench_sse *s) {
    if (!s) return;
    free(s->line);
    free(s->data);
    memset(s, 0, sizeof *s);
}

static bool nonempty_string(json_t *v) {
    return json_is_string(v) && json_string_length(v) > 0;
}

void bench_chunk_parse(const char *data, size_t len, bench_endpoint endpoint, bench_chunk *out) {
    memset(out, 0, sizeof *out);
    out->prompt_tokens = out->completion_tokens = -1;
    while (len > 0 && (data[len - 1] == ' ' || data[len - 1] == '\t')) len--;
    if (len == 6 && memcmp(data, "[DONE]", 6) == 0) {
        out->done = true;
        return;
    }
    json_error_t jerr;
    json_t *root = json_loadb(data, len, 0, &jerr);
    if (!root || !json_is_object(root)) {
        snprintf(out->error, sizeof out->error, "a streamed event is not a JSON object: %.*s",
                 (int)(len < 120 ? len : 120), data);
        json_decref(root);
        return;
    }
    json_t *err = json_object_get(root, "error");
    if (err && !json_is_null(err)) {
        json_t *msg = json_is_object(err) ? json_object_get(err, "message") : err;
        snprintf(out->error, sizeof out->error, "error event: %s",
                 json_is_string(msg) ? json_string_value(msg) : "(no message)");
    }
    json_t *choices = json_object_get(root, "choices");
    json_t *first = json_is_array(choices) ? json_array_get(choices, 0) : NULL;
    if (json_is_object(first)) {
        if (endpoint == BENCH_ENDPOINT_COMPLETIONS) {
            out->has_text = nonempty_string(json_object_get(first, "text"));
        } else {
            json_t *delta = json_object_get(first, "delta");
            out->has_text = json_is_object(delta) &&
                            (nonempty_string(json_object_get(delta, "content")) ||
                             nonempty_string(json_object_get(delta, "reasoning_content")));
        }
    }
    json_t *usage = json_object_get(root, "usage");
    if (json_is_object(usage)) {
        json_t *pt = json_object_get(usage, "prompt_tokens");
        json_t *ct = json_object_get(usage, "completion_tokens");
        if (json_is_integer(ct)) {
            out->has_usage = true;
            out->completion_tokens = json_integer_value(ct);
            if (json_is_integer(pt)) out->prompt_tokens = json_integer_value(pt);
        }
    }
    json_decref(root);
}
