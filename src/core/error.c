/* core/error.c - the thread-local error message behind pagoda_last_error(). */
#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum { ERROR_MESSAGE_BYTES = 1024 };
static _Thread_local char error_message[ERROR_MESSAGE_BYTES];

pagoda_status error_set(pagoda_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(error_message, sizeof error_message, fmt, ap);
    va_end(ap);
    return status;
}

pagoda_status error_prefix(pagoda_status status, const char *fmt, ...) {
    char prefix[ERROR_MESSAGE_BYTES];
    char old[ERROR_MESSAGE_BYTES];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, error_message, sizeof old);
    size_t prefix_len = strlen(prefix);
    if (prefix_len > ERROR_MESSAGE_BYTES - 3) prefix_len = ERROR_MESSAGE_BYTES - 3;
    memcpy(error_message, prefix, prefix_len);
    memcpy(error_message + prefix_len, ": ", 2);
    size_t room = ERROR_MESSAGE_BYTES - prefix_len - 3;
    size_t old_len = strnlen(old, room);
    memcpy(error_message + prefix_len + 2, old, old_len);
    error_message[prefix_len + 2 + old_len] = '\0';
    return status;
}

void error_clear(void) { error_message[0] = '\0'; }

const char *pagoda_last_error(void) { return error_message; }

const char *pagoda_status_name(pagoda_status status) {
    switch (status) {
    case PAGODA_OK: return "ok";
    case PAGODA_ERR_INVALID_ARGUMENT: return "invalid argument";
    case PAGODA_ERR_IO: return "I/O error";
    case PAGODA_ERR_FORMAT: return "format error";
    case PAGODA_ERR_UNSUPPORTED: return "unsupported";
    case PAGODA_ERR_OUT_OF_MEMORY: return "out of memory";
    case PAGODA_ERR_CONTEXT_FULL: return "context full";
    case PAGODA_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}
