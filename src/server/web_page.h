/* server/web_page.h - the web chat page that `pagoda serve` answers GET / with (issue 4, part 6).
 *
 * The page is src/server/web/index.html: one self-contained file (HTML, CSS, JavaScript; no CDN,
 * no external fonts) that chats with the server through its own OpenAI-compatible API using
 * relative URLs: GET v1/models, POST v1/chat/completions with "stream": true (SSE until
 * "data: [DONE]"), "Authorization: Bearer <key>" when the user sets an API key. It is compiled in
 * as a string: src/server/web_page.c is generated from index.html by tools/embed_web_page.py and
 * committed; tests/test_web_page.c checks that the two match byte for byte.
 *
 * Serve it with status 200 and "Content-Type: text/html; charset=utf-8". Since the page sends an
 * Authorization header, a cross-origin deployment needs CORS; the page itself is same-origin.
 */
#ifndef PAGODA_SERVER_WEB_PAGE_H
#define PAGODA_SERVER_WEB_PAGE_H

#include <stddef.h>

/* Returns the page: static storage, UTF-8, NUL-terminated, never NULL; cannot fail. When len is
 * not NULL, stores the page's length in bytes (without the terminating NUL) in *len. */
const char *server_web_page(size_t *len);

#endif
