/* engine/text_stream.h - incremental detokenization: each generated token's bytes are appended,
 * and only whole UTF-8 characters are released (a character split across tokens, such as an emoji
 * made of byte tokens, is held back until it completes). */
#ifndef PAGODA_ENGINE_TEXT_STREAM_H
#define PAGODA_ENGINE_TEXT_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vocab/vocab.h" /* defines: vocab */

typedef struct text_stream {
    char pending[16];  /* bytes of an incomplete character (< 4) */
    size_t n_pending;
    char *out;         /* released text of the last push, NUL-terminated */
    size_t n_out, cap_out;
} text_stream;

/* Appends `token`'s bytes; afterwards ts->out holds the text released (maybe ""). False: no memory. */
bool text_stream_push(text_stream *ts, const vocab *v, int32_t token);
/* Releases whatever is held (invalid or truncated UTF-8 at the very end) into ts->out. */
bool text_stream_flush(text_stream *ts);
void text_stream_free(text_stream *ts);

#endif
