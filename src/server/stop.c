/* server/stop.c - stop strings matched across deltas (see stop.h).
 *
 * Invariant: `held` never contains a whole stop string and is never longer than the longest stop
 * string minus one byte. Each feed appends the delta to `held`, looks for the earliest stop string,
 * and otherwise releases all but the longest suffix that is a prefix of some stop string. Since the
 * held suffix starts where a (valid UTF-8) stop string starts, releases never split a character.
 */
#include "server/stop.h"

#include <string.h>

void server_stop_init(server_stop *s, char *const *strings, size_t n_strings) {
    *s = (server_stop){.strings = strings, .n_strings = n_strings};
}

/* Length of the longest suffix of text[0..n) that is a proper prefix of some stop string. */
static size_t held_suffix(const server_stop *s, const char *text, size_t n) {
    size_t best = 0;
    for (size_t i = 0; i < s->n_strings; i++) {
        size_t len = strlen(s->strings[i]);
        size_t k = len - 1 < n ? len - 1 : n;
        for (; k > best; k--)
            if (!memcmp(text + n - k, s->strings[i], k)) break;
        if (k > best) best = k;
    }
    return best;
}

bool server_stop_feed(server_stop *s, const char *text, size_t len, server_buf *out) {
    if (s->matched) return true;
    if (s->n_strings == 0) return server_buf_append(out, text, len);
    if (!server_buf_append(&s->held, text, len)) return false;
    const char *h = s->held.data ? s->held.data : "";
    size_t n = s->held.len, first = n;
    for (size_t i = 0; i < s->n_strings; i++) {
        const char *hit = memmem(h, n, s->strings[i], strlen(s->strings[i]));
        if (hit && (size_t)(hit - h) < first) first = (size_t)(hit - h);
    }
    if (first < n) {
        s->matched = true;
        bool ok = server_buf_append(out, h, first);
        server_buf_clear(&s->held);
        return ok;
    }
    size_t keep = held_suffix(s, h, n);
    if (!server_buf_append(out, h, n - keep)) return false;
    memmove(s->held.data, h + n - keep, keep);
    s->held.len = keep;
    s->held.data[keep] = '\0';
    return true;
}

bool server_stop_flush(server_stop *s, server_buf *out) {
    if (s->matched || !s->held.len) return true;
    bool ok = server_buf_append(out, s->held.data, s->held.len);
    server_buf_clear(&s->held);
    return ok;
}

void server_stop_free(server_stop *s) { server_buf_free(&s->held); }
