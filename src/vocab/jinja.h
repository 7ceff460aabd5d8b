/* vocab/jinja.h - a small Jinja2 interpreter: the subset that Hugging Face chat templates use.
 *
 * It renders a template the way HF's apply_chat_template environment does (jinja2 with
 * trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False, loop controls, HF's
 * raise_exception / strftime_now / namespace globals and its tojson filter), byte for byte.
 *
 * Supported: {{ expr }}, {% if/elif/else %}, {% for a[, b] in x [if cond] %} with loop.index0/index/
 * first/last/length/revindex/revindex0/previtem/nextitem and {% else %}, {% set %} (names, tuples,
 * namespace attributes, {% set x %}...{% endset %} blocks), {% macro %}, {% break %}/{% continue %},
 * {% generation %} (rendered as plain text), {% raw %}, comments, whitespace control (-/+), string
 * literals with escapes, arithmetic, ~, comparisons, and/or/not, in, `is` tests, conditional
 * expressions, subscripts, slices, attribute access, the common filters and str/dict methods
 * (see jinja_builtins.c for the list).
 * Not supported: template inheritance/include/import, {% call %}, {% filter %}, string % formatting,
 * autoescaping, big integers (arithmetic that overflows int64 is an error).
 *
 * Errors are values: a syntax error, an unknown filter or test, a type error, raise_exception(),
 * or a limit being hit comes back as a pagoda_status with a message "line L, column C: ...".
 * Recursion depth, output size, memory and the number of evaluation steps are bounded.
 */
#ifndef PAGODA_VOCAB_JINJA_H
#define PAGODA_VOCAB_JINJA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pagoda.h" /* defines: pagoda_status */

typedef struct jinja_template jinja_template; /* a parsed template (immutable; renders may share it) */
typedef struct jinja_context jinja_context;   /* the variables of a render */

typedef struct jinja_limits {
    size_t max_output_bytes; /* rendered text; default 16 MiB */
    size_t max_memory_bytes; /* temporaries of one render; default 256 MiB */
    int max_depth;           /* nesting of expressions/blocks and macro calls; default 200 */
    uint64_t max_steps;      /* statements and loop iterations executed; default 10 million */
} jinja_limits;

/* The defaults named above. */
jinja_limits jinja_limits_default(void);

/* Parses a template. Errors: PAGODA_ERR_FORMAT (syntax error, unknown filter/test/tag, with line and
 * column), PAGODA_ERR_OUT_OF_MEMORY, PAGODA_ERR_INVALID_ARGUMENT (NULL arguments). */
pagoda_status jinja_template_parse(const char *source, size_t source_len, jinja_template **out);
void jinja_template_free(jinja_template *t);

pagoda_status jinja_context_init(jinja_context **out);
void jinja_context_free(jinja_context *ctx);
/* Sets a variable (replacing an earlier one of that name). A NULL string value sets none. */
pagoda_status jinja_context_set_string(jinja_context *ctx, const char *name, const char *value);
pagoda_status jinja_context_set_bool(jinja_context *ctx, const char *name, bool value);
pagoda_status jinja_context_set_none(jinja_context *ctx, const char *name);
/* messages = [{'role': roles[i], 'content': contents[i]}, ...] */
pagoda_status jinja_context_set_messages(jinja_context *ctx, const char *name, const char *const *roles,
                                         const char *const *contents, size_t n_messages);
/* Sets a variable from JSON text. Errors: PAGODA_ERR_INVALID_ARGUMENT for malformed JSON. */
pagoda_status jinja_context_set_json(jinja_context *ctx, const char *name, const char *json, size_t json_len);
/* Sets one variable per key of a JSON object. */
pagoda_status jinja_context_set_json_object(jinja_context *ctx, const char *json, size_t json_len);

/* Renders into a malloc'd NUL-terminated string (*out_len bytes, may be NULL). limits may be NULL
 * (defaults). Errors: PAGODA_ERR_INVALID_ARGUMENT when the template calls raise_exception() (the
 * message carries the template's text) or a limit is hit; PAGODA_ERR_FORMAT for a run-time error
 * in the template (type error, undefined variable used in arithmetic, ...); PAGODA_ERR_OUT_OF_MEMORY. */
pagoda_status jinja_template_render(const jinja_template *t, const jinja_context *ctx,
                                    const jinja_limits *limits, char **out_text, size_t *out_len);

/* Python's str.strip() bounds of s[0..n): Unicode whitespace as str.isspace() defines it. Sets
 * *begin and *end (byte offsets) so that s[*begin..*end) is the stripped text. */
void jinja_strip_bounds(const char *s, size_t n, size_t *begin, size_t *end);

#endif
