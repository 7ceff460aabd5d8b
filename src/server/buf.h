/* server/buf.h - a growable byte buffer (always NUL-terminated) for building response bodies,
 * SSE events and streamed text. Appends report running out of memory by returning false. */
#ifndef PAGODA_SERVER_BUF_H
#define PAGODA_SERVER_BUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct server_buf {
    char *data; /* [cap]: len bytes then a NUL; NULL while empty */
    size_t len, cap;
} server_buf;

bool server_buf_append(server_buf *b, const char *bytes, size_t n);
bool server_buf_puts(server_buf *b, const char *s);
bool server_buf_printf(server_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void server_buf_clear(server_buf *b); /* empties it, keeping the memory */
void server_buf_free(server_buf *b);

#endif
