/* tests/test_stop_text.c - stop strings over streamed text (engine/stop_text.h; the server's
 * src/server/stop.c moved into the engine, and this test with it). The reference is the
 * plain answer on the whole text: everything before the earliest occurrence of any stop string
 * (strstr on the concatenation), or all of it. Texts are cut into deltas at random (test_seed()), so
 * stop strings straddle deltas; every release must also be a prefix of the reference so far. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/stop_text.h" /* defines: stop_text_feed, stop_text_flush */
#include "testlib.h"

/* The released text so far: each feed's s.out appended. */
typedef struct out_buf {
    char data[256];
    size_t len;
} out_buf;

static bool take(out_buf *o, const stop_text *s) {
    if (o->len + s->n_out > sizeof o->data) return false;
    if (s->n_out) memcpy(o->data + o->len, s->out, s->n_out);
    o->len += s->n_out;
    return true;
}

/* The reference: the length of text released for `text` with these stop strings. */
static size_t reference_len(const char *text, char *const *stops, size_t n_stops, int *matched) {
    size_t best = strlen(text);
    *matched = 0;
    for (size_t i = 0; i < n_stops; i++) {
        const char *hit = strstr(text, stops[i]);
        if (hit && (size_t)(hit - text) < best) best = (size_t)(hit - text);
        if (hit) *matched = 1;
    }
    return best;
}

static void run_case(const char *text, char *const *stops, size_t n_stops, uint64_t *rng) {
    int matched;
    size_t want = reference_len(text, stops, n_stops, &matched);
    stop_text s;
    stop_text_init(&s, stops, n_stops);
    out_buf out = {0};
    size_t len = strlen(text), at = 0;
    bool prefix_ok = true;
    while (at < len) {
        size_t piece = 1 + test_rand_u64(rng) % 6;
        if (piece > len - at) piece = len - at;
        CHECK(stop_text_feed(&s, text + at, piece) && take(&out, &s));
        at += piece;
        prefix_ok = prefix_ok && out.len <= want && (!out.len || !memcmp(out.data, text, out.len));
    }
    CHECK(stop_text_flush(&s) && take(&out, &s));
    CHECK_MSG(prefix_ok, "a release was not a prefix of the answer for '%s'", text);
    CHECK_MSG(out.len == want && (!want || !memcmp(out.data, text, want)),
              "'%s': released %zu bytes '%.*s', wanted %zu", text, out.len, (int)out.len, out.data, want);
    CHECK_MSG(s.matched == (matched != 0), "'%s': matched %d, wanted %d", text, s.matched, matched);
    stop_text_free(&s);
}

int main(void) {
    uint64_t rng = test_seed();
    char *stops_a[] = {"\n\nUser:", "END", "ab"};
    char *stops_b[] = {"aab"};
    char *stops_c[] = {"é!", "🙂"};
    const char *texts[] = {
        "Hello there.\n\nUser: more", "no stop here at all", "the END is near", "xaab", "aaaab", "a", "abab",
        "\n\nUser", "\n\nUse", "ENEND", "café! ok", "smile 🙂 now", "é", "a\n\nUser:END",
    };
    for (int rep = 0; rep < 50; rep++)
        for (size_t t = 0; t < sizeof texts / sizeof texts[0]; t++) {
            run_case(texts[t], stops_a, 3, &rng);
            run_case(texts[t], stops_b, 1, &rng);
            run_case(texts[t], stops_c, 2, &rng);
            run_case(texts[t], NULL, 0, &rng);
        }
    /* random texts over a small alphabet, where partial matches are common */
    char *stops_r[] = {"abca", "cc", "bab"};
    for (int rep = 0; rep < 2000; rep++) {
        char text[40];
        size_t n = test_rand_u64(&rng) % 39;
        for (size_t i = 0; i < n; i++) text[i] = "abc"[test_rand_u64(&rng) % 3];
        text[n] = '\0';
        run_case(text, stops_r, 3, &rng);
    }
    /* after a match nothing more is released */
    stop_text s;
    stop_text_init(&s, stops_a, 3);
    out_buf out = {0};
    CHECK(stop_text_feed(&s, "xEN", 3) && take(&out, &s) && stop_text_feed(&s, "Dyy", 3) && take(&out, &s) &&
          s.matched);
    CHECK(stop_text_feed(&s, "more", 4) && take(&out, &s) && stop_text_flush(&s) && take(&out, &s) &&
          out.len == 1 && out.data[0] == 'x');
    stop_text_free(&s);
    return test_finish();
}
