/* engine/stop_text.h - stop strings over a stream of text deltas (the engine runs one per sampled
 * sequence). Text that could be the start of a stop string is held back until it is known not to
 * be one; a stop string found anywhere, even across token boundaries, ends the stream, and neither
 * it nor anything after it is released. Pure (no model): tests/test_stop_text.c.
 */
#ifndef PAGODA_ENGINE_STOP_TEXT_H
#define PAGODA_ENGINE_STOP_TEXT_H

#include <stdbool.h>
#include <stddef.h>

typedef struct stop_text {
    char *const *strings; /* [n_strings] stop strings, not owned, none empty */
    size_t n_strings;
    char *held;           /* [cap_held] withheld text: a suffix that begins some stop string */
    size_t n_held, cap_held;
    char *out;            /* [cap_out] what the last feed or flush released, NUL-terminated */
    size_t n_out, cap_out;
    bool matched;         /* a stop string was found: nothing more is released */
} stop_text;

void stop_text_init(stop_text *s, char *const *strings, size_t n_strings);
/* Feeds a delta; afterwards s->out[0..n_out) is what can be released. False only when out of
 * memory. After a match (s->matched), feeds release nothing. */
bool stop_text_feed(stop_text *s, const char *text, size_t len);
/* The stream ended without a match: releases the held text into s->out. */
bool stop_text_flush(stop_text *s);
void stop_text_free(stop_text *s);

#endif
