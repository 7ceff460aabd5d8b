/* tests/test_web_page.c - the page compiled into the binary (server_web_page(), generated into
 * src/server/web_page.c by tools/embed_web_page.py) is byte for byte src/server/web/index.html,
 * the file a developer edits; and the page loads nothing from outside the server (no http:// or
 * https:// URL anywhere: no CDN, no external fonts). The page's behaviour in a browser is checked
 * by tests/cli/web_chat.sh. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/web_page.h" /* defines: server_web_page */
#include "testlib.h"         /* defines: CHECK, CHECK_MSG, test_read_file, test_finish */

static const char *PAGE_PATH = "src/server/web/index.html";

int main(void)
{
    size_t file_len = 0, len = 0;
    char *file = test_read_file(PAGE_PATH, &file_len);
    CHECK_MSG(file != NULL, "cannot read %s (tests run from the repository root)", PAGE_PATH);
    const char *page = server_web_page(&len);
    CHECK(page != NULL);
    CHECK(server_web_page(NULL) == page);
    if (!file || !page) return test_finish();

    /* The embedded copy is the file: same length, same bytes. */
    size_t n_common = len < file_len ? len : file_len, first_diff = n_common;
    for (size_t i = 0; i < n_common; i++) {
        if (page[i] != file[i]) { first_diff = i; break; }
    }
    CHECK_MSG(len == file_len && first_diff == file_len,
              "src/server/web_page.c is stale: %zu bytes embedded, %zu in %s, first difference at "
              "byte %zu; run `python3 tools/embed_web_page.py`", len, file_len, PAGE_PATH, first_diff);
    CHECK_MSG(page[len] == '\0' && strlen(page) == len, "the page is not one NUL-terminated string");

    /* A complete HTML document, with everything in it. */
    CHECK(strncmp(page, "<!DOCTYPE html>", 15) == 0);
    CHECK(strstr(page, "</html>") != NULL);
    CHECK_MSG(strstr(page, "http://") == NULL && strstr(page, "https://") == NULL,
              "the page names an absolute URL: it must load nothing from outside the server");
    CHECK_MSG(strstr(page, "v1/chat/completions") != NULL && strstr(page, "v1/models") != NULL,
              "the page does not call the server's API");

    free(file);
    return test_finish();
}
