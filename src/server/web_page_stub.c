/* server/web_page_stub.c - a placeholder for GET / until the web chat page (src/server/web/,
 * src/server/web_page.h) lands; it is then removed. It only says where the API is. */
#include <stddef.h>

const char *server_web_page(size_t *len);

static const char page[] =
    "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Pagoda</title></head>\n"
    "<body><h1>Pagoda</h1><p>The OpenAI-compatible API is served under <code>/v1</code>: "
    "<a href=\"/v1/models\">/v1/models</a>, <code>POST /v1/completions</code>, "
    "<code>POST /v1/chat/completions</code>; also <a href=\"/health\">/health</a> and "
    "<a href=\"/metrics\">/metrics</a>.</p></body></html>\n";

const char *server_web_page(size_t *len) {
    *len = sizeof page - 1;
    return page;
}
