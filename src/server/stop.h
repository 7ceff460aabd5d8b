/* server/stop.h - stop strings over a stream of text deltas. Text that could be the start of a
 * stop string is held back until it is known not to be one; a stop string found anywhere, even
 * across token boundaries, ends the stream, and neither it nor anything after it is released.
 * Pure (no threads, no model): server_stop_feed is tested by tests/test_server_stop.c.
 */
#ifndef PAGODA_SERVER_STOP_H
#define PAGODA_SERVER_STOP_H

#include <stdbool.h>
#include <stddef.h>

#include "server/buf.h" /* defines: server_buf */

typedef struct server_stop {
    char *const *strings; /* [n_strings] stop strings, not owned, none empty */
    size_t n_strings;
    server_buf held;      /* text withheld: a suffix that begins some stop string */
    bool matched;         /* a stop string was found: nothing more is released */
} server_stop;

void server_stop_init(server_stop *s, char *const *strings, size_t n_strings);
/* Feeds a delta; appends what can be released to `out`. Returns false only when out of memory.
 * After a match (s->matched), further feeds release nothing. */
bool server_stop_feed(server_stop *s, const char *text, size_t len, server_buf *out);
/* The stream ended without a match: releases the held text. */
bool server_stop_flush(server_stop *s, server_buf *out);
void server_stop_free(server_stop *s);

#endif
