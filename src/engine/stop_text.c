/* engine/stop_text.c - stop strings matched across deltas (see stop_text.h).
 *
 * Invariant: `held` never contains a whole stop string and is never longer than the longest stop
 * string minus one byte. Each feed appends the delta to `held`, looks for the earliest stop string,
 * and otherwise releases all but the longest suffix that is a prefix of some stop string. Since the
 * held suffix starts where a (valid UTF-8) stop string starts, releases never split a character.
 */
#include "engine/stop_text.h"

#include <stdlib.h>
#include <string.h>

void stop_text_init(stop_text *s, char *const *strings, size_t n_strings) {
    *s = (stop_text){.strings = strings, .n_strings = n_strings};
}

static bool reserve(char **buf, size_t *cap, size_t need) {
    if (need + 1 <= *cap && *buf) return true;
    size_t c = *cap ? *cap : 64;
    while (c < need + 1) c *= 2;
    char *grown = realloc(*buf, c);
    if (!grown) return false;
    *buf = grown;
    *cap = c;
    return true;
}

static bool set_out(stop_text *s, const char *text, size_t len) {
    if (!reserve(&s->out, &s->cap_out, len)) return false;
    memmove(s->out, text, len);
    s->out[len] = '\0';
    s->n_out = len;
    return true;
}

/* Length of the longest suffix of text[0..n) that is a proper prefix of some stop string. */
static size_t held_suffix(const stop_text *s, const char *text, size_t n) {
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

bool stop_text_feed(stop_text *s, const char *text, size_t len) {
    s->n_out = 0;
    if (s->out) s->out[0] = '\0';
    if (s->matched) return true;
    if (s->n_strings == 0) return set_out(s, text, len);
    if (!reserve(&s->held, &s->cap_held, s->n_held + len)) return false;
    memcpy(s->held + s->n_held, text, len);
    size_t n = s->n_held += len, first = n;
    const char *h = s->held;
    for (size_t i = 0; i < s->n_strings; i++) {
        const char *hit = memmem(h, n, s->strings[i], strlen(s->strings[i]));
        if (hit && (size_t)(hit - h) < first) first = (size_t)(hit - h);
    }
    if (first < n) {
        s->matched = true;
        s->n_held = 0;
        return set_out(s, h, first);
    }
    size_t keep = held_suffix(s, h, n);
    if (!set_out(s, h, n - keep)) return false;
    memmove(s->held, h + n - keep, keep);
    s->n_held = keep;
    return true;
}

bool stop_text_flush(stop_text *s) {
    s->n_out = 0;
    if (s->out) s->out[0] = '\0';
    if (s->matched || !s->n_held) return true;
    bool ok = set_out(s, s->held, s->n_held);
    s->n_held = 0;
    return ok;
}

void stop_text_free(stop_text *s) {
    free(s->held);
    free(s->out);
    s->held = s->out = NULL;
    s->n_held = s->cap_held = s->n_out = s->cap_out = 0;
}
