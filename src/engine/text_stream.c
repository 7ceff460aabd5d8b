/* engine/text_stream.c - UTF-8-whole incremental detokenization (see text_stream.h). */
#include "engine/text_stream.h"

#include <stdlib.h>
#include <string.h>

/* Bytes of `buf` that form whole UTF-8 characters; a trailing incomplete sequence is held back
 * (invalid bytes pass through, so nothing is held forever). */
static size_t utf8_complete_prefix(const char *buf, size_t n) {
    size_t i = n, back = 0;
    while (i > 0 && back < 4 && ((unsigned char)buf[i - 1] & 0xC0) == 0x80) i--, back++;
    if (i == 0) return back >= 4 ? n : 0;
    unsigned char lead = (unsigned char)buf[i - 1];
    size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    if (lead < 0x80 || lead >= 0xF8) return n;
    return back + 1 >= need ? n : i - 1;
}

static bool reserve(text_stream *ts, size_t n) {
    if (n + 1 <= ts->cap_out) return true;
    size_t cap = ts->cap_out ? ts->cap_out : 64;
    while (cap < n + 1) cap *= 2;
    char *grown = realloc(ts->out, cap);
    if (!grown) return false;
    ts->out = grown;
    ts->cap_out = cap;
    return true;
}

bool text_stream_push(text_stream *ts, const vocab *v, int32_t token) {
    if (!reserve(ts, ts->n_pending + 64)) return false;
    memcpy(ts->out, ts->pending, ts->n_pending);
    int32_t n = vocab_token_to_piece(v, token, ts->out + ts->n_pending, ts->cap_out - ts->n_pending - 1, false);
    if (n > (int32_t)(ts->cap_out - ts->n_pending - 1)) {
        if (!reserve(ts, ts->n_pending + (size_t)n)) return false;
        memcpy(ts->out, ts->pending, ts->n_pending);
        n = vocab_token_to_piece(v, token, ts->out + ts->n_pending, ts->cap_out - ts->n_pending - 1, false);
    }
    size_t total = ts->n_pending + (size_t)(n > 0 ? n : 0);
    size_t whole = utf8_complete_prefix(ts->out, total);
    ts->n_pending = total - whole;
    if (ts->n_pending > 8) { /* cannot happen with valid pieces; release anyway */
        whole = total;
        ts->n_pending = 0;
    }
    memcpy(ts->pending, ts->out + whole, ts->n_pending);
    ts->out[whole] = '\0';
    ts->n_out = whole;
    return true;
}

bool text_stream_flush(text_stream *ts) {
    if (!reserve(ts, ts->n_pending)) return false;
    memcpy(ts->out, ts->pending, ts->n_pending);
    ts->n_out = ts->n_pending;
    ts->out[ts->n_out] = '\0';
    ts->n_pending = 0;
    return true;
}

void text_stream_free(text_stream *ts) {
    free(ts->out);
    memset(ts, 0, sizeof *ts);
}
