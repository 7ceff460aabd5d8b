/* pagoda.h - the public C API of Pagoda, an LLM inference engine.
 *
 * Conventions:
 *   - Every fallible call returns a pagoda_status; PAGODA_OK is 0. On failure,
 *     pagoda_last_error() returns a one-line message (thread-local) that says what went wrong
 *     and, where possible, what to do about it.
 *   - Objects are opaque handles created by *_load / *_init and released by the matching *_free.
 *     *_free(NULL) is a no-op.
 *
 * Implemented so far: model loading, tokenization, single-sequence generation.
 * TODO(issue 3): the batched engine API (add request / step / stream / abort).
 */
#ifndef PAGODA_H
#define PAGODA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum pagoda_status {
    PAGODA_OK = 0,
    PAGODA_ERR_INVALID_ARGUMENT, /* a caller-supplied value is out of range or malformed */
    PAGODA_ERR_IO,               /* a file could not be opened, read, written or mapped */
    PAGODA_ERR_FORMAT,           /* a file is malformed, truncated or inconsistent */
    PAGODA_ERR_UNSUPPORTED,      /* well-formed, but uses something Pagoda does not implement */
    PAGODA_ERR_OUT_OF_MEMORY,    /* an allocation failed */
    PAGODA_ERR_CONTEXT_FULL,     /* the prompt or generation does not fit in the context */
    PAGODA_ERR_INTERNAL,         /* a bug: please report it */
} pagoda_status;

/* The message describing the most recent error on this thread ("" if none). */
const char *pagoda_last_error(void);
/* A short constant name for a status, e.g. "format error". */
const char *pagoda_status_name(pagoda_status status);

#ifdef __cplusplus
}
#endif
#endif /* PAGODA_H */
