/* vocab/jinja.c - the public API of the Jinja interpreter (vocab/jinja.h): parse a template once,
 * build the variables of a render, render with limits, and turn internal errors into
 * pagoda_status values with a one-line message.
 */
#include "vocab/jinja.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"            /* defines: error_set */
#include "vocab/jinja_internal.h" /* defines: jinja_lex, jinja_parse, jinja_eval_template, values */

struct jinja_template {
    jinja_arena arena; /* tokens, nodes, string literals */
    jinja_node *body;
};

struct jinja_context {
    jinja_arena arena; /* the variables' values */
    jinja_dict *vars;
};

jinja_limits jinja_limits_default(void) {
    return (jinja_limits){
        .max_output_bytes = (size_t)16 << 20,
        .max_memory_bytes = (size_t)256 << 20,
        .max_depth = JINJA_DEFAULT_MAX_DEPTH,
        .max_steps = 10u * 1000u * 1000u,
    };
}

/* Maps an interpreter error to a status and the thread's error message. */
static pagoda_status report(const jinja_error *err, const char *what) {
    pagoda_status status = PAGODA_ERR_FORMAT;
    switch (err->kind) {
    case JINJA_ERROR_RAISED: status = PAGODA_ERR_INVALID_ARGUMENT; break;
    case JINJA_ERROR_LIMIT: status = PAGODA_ERR_INVALID_ARGUMENT; break;
    case JINJA_ERROR_NO_MEMORY: status = PAGODA_ERR_OUT_OF_MEMORY; break;
    default: break;
    }
    const char *kind = err->kind == JINJA_ERROR_RAISED ? "raise_exception" : err->kind == JINJA_ERROR_SYNTAX ? "syntax error" : "error";
    if (err->line > 0)
        return error_set(status, "%s: %s at line %d, column %d: %s", what, kind, err->line, err->column, err->message);
    return error_set(status, "%s: %s: %s", what, kind, err->message);
}

pagoda_status jinja_template_parse(const char *source, size_t source_len, jinja_template **out) {
    if (!out || (!source && source_len)) return error_set(PAGODA_ERR_INVALID_ARGUMENT, "jinja_template_parse: NULL argument");
    *out = NULL;
    jinja_template *t = calloc(1, sizeof *t);
    if (!t) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "jinja template: out of memory");
    /* Newlines become "\n" and one trailing newline goes (keep_trailing_newline=False), as in Jinja. */
    char *src = jinja_arena_alloc(&t->arena, source_len + 1);
    if (!src) {
        free(t);
        return error_set(PAGODA_ERR_OUT_OF_MEMORY, "jinja template: out of memory");
    }
    size_t n = 0;
    for (size_t i = 0; i < source_len; i++) {
        if (source[i] == '\r') {
            src[n++] = '\n';
            if (i + 1 < source_len && source[i + 1] == '\n') i++;
        } else {
            src[n++] = source[i];
        }
    }
    if (n > 0 && src[n - 1] == '\n') n--;
    jinja_error err = {0};
    jinja_token_list tokens;
    if (!jinja_lex(&t->arena, src, n, &tokens, &err) ||
        !jinja_parse(&t->arena, &tokens, JINJA_DEFAULT_MAX_DEPTH, &t->body, &err)) {
        jinja_template_free(t);
        return report(&err, "jinja template");
    }
    *out = t;
    return PAGODA_OK;
}

void jinja_template_free(jinja_template *t) {
    if (!t) return;
    jinja_arena_free(&t->arena);
    free(t);
}

pagoda_status jinja_context_init(jinja_context **out) {
    if (!out) return error_set(PAGODA_ERR_INVALID_ARGUMENT, "jinja_context_init: NULL argument");
    jinja_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx || !(ctx->vars = jinja_dict_new(&ctx->arena, 8))) {
        if (ctx) jinja_arena_free(&ctx->arena);
        free(ctx);
        return error_set(PAGODA_ERR_OUT_OF_MEMORY, "jinja context: out of memory");
    }
    *out = ctx;
    return PAGODA_OK;
}

void jinja_context_free(jinja_context *ctx) {
    if (!ctx) return;
    jinja_arena_free(&ctx->arena);
    free(ctx);
}

static pagoda_status set_value(jinja_context *ctx, const char *name, jinja_value v) {
    char *key = jinja_strdup(&ctx->arena, name, strlen(name));
    if (!key || !jinja_dict_set(&ctx->arena, ctx->vars, jinja_string(key, strlen(key)), v))
        return error_set(PAGODA_ERR_OUT_OF_MEMORY, "jinja context: out of memory");
    return PAGODA_OK;
}

static bool copy_str(jinja_context *ctx, const char *s, jinja_value *out) {
    size_t n = strlen(s);
    char *p = jinja_strdup(&ctx->arena, s, n);
    if (!p) return false;
    *out = jinja_string(p, n);
    return true;
}

pagoda_status jinja_context_set_string(jinja_context *ctx, const char *name, const char *value) {
    if (!ctx || !name) return error_set(PAGODA_ERR_INVALID_ARGUMENT, "jinja_context_set_string: NULL argument");
    jinja_value v = jinja_none();
    if (value && !copy_str(ctx, value, &v)) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "jinja context: out of memory");
    return set_value(ctx, name, v);
}

pagoda_status jinja_context_set_bool(jinja_context *ctx, const char *name, bool value) {
    if (!ctx || !name) return error_set(PAGODA_ERR_INVALID_ARGUMENT, "jinja_context_set_bool: NULL argument");
    return set_value(ctx, name, jinja_bool(value));
}

pagoda_status jinja_context_set_none(jinja_context *ctx, const char *name) {
    if (!ctx || !name) return error_set(PAGODA_ERR_INVALID_ARGUMENT, "jinja_context_set_none: NULL argument");
    return set_value(ctx, name, jinja_none());
}

pagoda_status jinja_context_set_messages(jinja_context *ctx, const char *name, const char *const *roles,
                                         const char *const *contents, size_t n_messages) {
    if (!ctx || !name || (n_messages && (!roles || !contents)))
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "jinja_context_set_messages: NULL argument");
    jinja_list *l = jinja_list_new(&ctx->arena, n_messages);
    if (!l) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "jinja context: out of memory");
    for (size_t i = 0; i < n_messages; i++) {
        if (!roles[i] || !contents[i])
            return error_set(PAGODA_ERR_INVALID_ARGUMENT, "message %zu has a NULL role or content", i);
        jinja_dict *m = jinja_dict_new(&ctx->arena, 2);
        jinja_value role, content;
        if (!m || !copy_str(ctx, roles[i], &role) || !copy_str(ctx, contents[i], &content) ||
            !jinja_dict_set(&ctx->arena, m, jinja_string("role", 4), role) ||
            !jinja_dict_set(&ctx->arena, m, jinja_string("content", 7), content))
            return error_set(PAGODA_ERR_OUT_OF_MEMORY, "jinja context: out of memory");
        l->items[l->n++] = (jinja_value){.type = JINJA_DICT, .dict = m};
    }
    return set_value(ctx, name, (jinja_value){.type = JINJA_LIST, .list = l});
}

pagoda_status jinja_context_set_json(jinja_context *ctx, const char *name, const char *json, size_t json_len) {
    if (!ctx || !name || !json) return error_set(PAGODA_ERR_INVALID_ARGUMENT, "jinja_context_set_json: NULL argument");
    jinja_error err = {0};
    jinja_value v;
    if (!jinja_json_parse(&ctx->arena, json, json_len, &v, &err))
        return error_set(err.kind == JINJA_ERROR_NO_MEMORY ? PAGODA_ERR_OUT_OF_MEMORY : PAGODA_ERR_INVALID_ARGUMENT,
                         "variable '%s': %s", name, err.message);
    return set_value(ctx, name, v);
}

pagoda_status jinja_context_set_json_object(jinja_context *ctx, const char *json, size_t json_len) {
    if (!ctx || !json) return error_set(PAGODA_ERR_INVALID_ARGUMENT, "jinja_context_set_json_object: NULL argument");
    jinja_error err = {0};
    jinja_value v;
    if (!jinja_json_parse(&ctx->arena, json, json_len, &v, &err))
        return error_set(err.kind == JINJA_ERROR_NO_MEMORY ? PAGODA_ERR_OUT_OF_MEMORY : PAGODA_ERR_INVALID_ARGUMENT,
                         "template variables: %s", err.message);
    if (v.type != JINJA_DICT) return error_set(PAGODA_ERR_INVALID_ARGUMENT, "template variables: JSON is not an object");
    for (size_t i = 0; i < v.dict->n; i++)
        if (!jinja_dict_set(&ctx->arena, ctx->vars, v.dict->keys[i], v.dict->vals[i]))
            return error_set(PAGODA_ERR_OUT_OF_MEMORY, "jinja context: out of memory");
    return PAGODA_OK;
}

pagoda_status jinja_template_render(const jinja_template *t, const jinja_context *ctx, const jinja_limits *limits,
                                    char **out_text, size_t *out_len) {
    if (!t || !out_text) return error_set(PAGODA_ERR_INVALID_ARGUMENT, "jinja_template_render: NULL argument");
    *out_text = NULL;
    if (out_len) *out_len = 0;
    jinja_limits lim = limits ? *limits : jinja_limits_default();
    jinja_arena arena = {.max_bytes = lim.max_memory_bytes};
    jinja_error err = {0};
    jinja_buf out = {.max_bytes = lim.max_output_bytes};
    jinja_frame root = {0};
    jinja_eval ev = {.arena = &arena, .out = &out, .frame = &root, .root = &root, .err = &err, .limits = lim};
    bool ok = (root.vars = jinja_dict_new(&arena, ctx ? ctx->vars->n + 4 : 4)) != NULL;
    if (!ok) jinja_fail(&err, JINJA_ERROR_NO_MEMORY, 0, 0, "out of memory");
    for (size_t i = 0; ok && ctx && i < ctx->vars->n; i++) { /* copy: top-level sets must not touch ctx */
        root.vars->keys[i] = ctx->vars->keys[i];
        root.vars->vals[i] = ctx->vars->vals[i];
        root.vars->n++;
    }
    ok = ok && jinja_eval_template(&ev, t->body) && jinja_buf_append(&out, "", 0, &err);
    jinja_arena_free(&arena);
    if (!ok) {
        free(out.p);
        return report(&err, "jinja render");
    }
    if (!out.p && !(out.p = calloc(1, 1))) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "jinja render: out of memory");
    *out_text = out.p;
    if (out_len) *out_len = out.n;
    return PAGODA_OK;
}
