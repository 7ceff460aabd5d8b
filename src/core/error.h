/* core/error.h - errors as values: a status code plus a thread-local message.
 *
 * Library code never exits or aborts on bad input. A failing function records a message with
 * error_set() and returns the status it got back:
 *
 *     if (offset > file_size)
 *         return error_set(PAGODA_ERR_FORMAT, "%s: tensor '%s' data lies past the end of the file",
 *                          path, name);
 *
 * Callers that add context use error_prefix() so the final one-liner reads outermost-first.
 */
#ifndef PAGODA_CORE_ERROR_H
#define PAGODA_CORE_ERROR_H

#include "pagoda.h" /* defines: pagoda_status, PAGODA_ERR_* */

/* Records a printf-style message for this thread and returns `status` unchanged. */
pagoda_status error_set(pagoda_status status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Prepends "<prefix>: " to the current message; returns `status` unchanged. */
pagoda_status error_prefix(pagoda_status status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Clears the message. */
void error_clear(void);

#endif
