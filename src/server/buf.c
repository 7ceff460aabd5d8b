/* server/buf.c - the growable byte buffer of buf.h. */
#include "server/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool reserve(server_buf *b, size_t extra) {
    if (extra > ((size_t)-1) / 4 - b->len) return false;
    size_t need = b->len + extra + 1;
    if (need <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap *= 2;
    char *grown = realloc(b->data, cap);
    if (!grown) return false;
    b->data = grown;
    b->cap = cap;
    return true;
}

bool server_buf_append(server_buf *b, const char *bytes, size_t n) {
    if (!reserve(b, n)) return false;
    if (n) memcpy(b->data + b->len, bytes, n);
    b->len += n;
    b->data[b->len] = '\0';
    return true;
}

bool server_buf_puts(server_buf *b, const char *s) { return server_buf_append(b, s, strlen(s)); }

bool server_buf_printf(server_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !reserve(b, (size_t)n)) return false;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return true;
}

void server_buf_clear(server_buf *b) {
    b->len = 0;
    if (b->data) b->data[0] = '\0';
}

void server_buf_free(server_buf *b) {
    free(b->data);
    *b = (server_buf){0};
}
