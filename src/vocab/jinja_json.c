/* vocab/jinja_json.c - JSON in and out of interpreter values.
 *
 * jinja_json_parse: RFC 8259 text -> values (objects keep their key order; integers that fit int64
 * stay integers, other numbers become floats; \uXXXX escapes with surrogate pairs). Used to give
 * a render its variables (messages, tools, ...). Nesting is limited to JSON_MAX_DEPTH.
 * jinja_json_dump: values -> text exactly as Python's json.dumps writes them (the tojson filter of
 * HF's chat-template environment): ", "/": " separators or indentation, floats as repr(), NaN and
 * Infinity spelled as Python does, non-ASCII kept unless ensure_ascii.
 */
#include "vocab/jinja_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { JSON_MAX_DEPTH = 200 };

/* ---- parse ---------------------------------------------------------------------------------- */

typedef struct json_parser {
    jinja_arena *arena;
    const char *s;
    size_t n, pos;
    jinja_error *err;
} json_parser;

static bool json_fail(json_parser *jp, const char *what) {
    return jinja_fail(jp->err, JINJA_ERROR_SYNTAX, 0, 0, "JSON: %s at byte %zu", what, jp->pos);
}

static void skip_ws(json_parser *jp) {
    while (jp->pos < jp->n && (jp->s[jp->pos] == ' ' || jp->s[jp->pos] == '\t' || jp->s[jp->pos] == '\n' ||
                               jp->s[jp->pos] == '\r'))
        jp->pos++;
}

static bool hex4(json_parser *jp, uint32_t *out) {
    if (jp->n - jp->pos < 4) return json_fail(jp, "truncated \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        char c = jp->s[jp->pos++];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return json_fail(jp, "bad \\u escape");
        v = v * 16 + (uint32_t)d;
    }
    *out = v;
    return true;
}

static bool parse_string(json_parser *jp, jinja_str *out) {
    jp->pos++; /* opening quote */
    jinja_buf b = {.arena = jp->arena};
    for (;;) {
        if (jp->pos >= jp->n) return json_fail(jp, "unterminated string");
        char c = jp->s[jp->pos];
        if (c == '"') {
            jp->pos++;
            break;
        }
        if ((unsigned char)c < 0x20) return json_fail(jp, "control character in string");
        if (c != '\\') {
            size_t run = jp->pos;
            while (run < jp->n && jp->s[run] != '"' && jp->s[run] != '\\' && (unsigned char)jp->s[run] >= 0x20) run++;
            if (!jinja_buf_append(&b, jp->s + jp->pos, run - jp->pos, jp->err)) return false;
            jp->pos = run;
            continue;
        }
        if (++jp->pos >= jp->n) return json_fail(jp, "unterminated escape");
        char e = jp->s[jp->pos++];
        char enc[4];
        size_t len = 1;
        switch (e) {
        case '"': enc[0] = '"'; break;
        case '\\': enc[0] = '\\'; break;
        case '/': enc[0] = '/'; break;
        case 'b': enc[0] = '\b'; break;
        case 'f': enc[0] = '\f'; break;
        case 'n': enc[0] = '\n'; break;
        case 'r': enc[0] = '\r'; break;
        case 't': enc[0] = '\t'; break;
        case 'u': {
            uint32_t cp;
            if (!hex4(jp, &cp)) return false;
            if (cp >= 0xd800 && cp < 0xdc00 && jp->n - jp->pos >= 6 && jp->s[jp->pos] == '\\' && jp->s[jp->pos + 1] == 'u') {
                size_t save = jp->pos;
                uint32_t lo;
                jp->pos += 2;
                if (!hex4(jp, &lo)) return false;
                if (lo >= 0xdc00 && lo < 0xe000) cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                else jp->pos = save;
            }
            len = jinja_utf8_encode(cp, enc);
            break;
        }
        default: return json_fail(jp, "bad escape");
        }
        if (!jinja_buf_append(&b, enc, len, jp->err)) return false;
    }
    *out = (jinja_str){b.p ? b.p : "", b.n};
    return true;
}

static bool parse_value(json_parser *jp, int depth, jinja_value *out) {
    if (depth > JSON_MAX_DEPTH) return json_fail(jp, "nesting too deep");
    skip_ws(jp);
    if (jp->pos >= jp->n) return json_fail(jp, "unexpected end");
    char c = jp->s[jp->pos];
    if (c == '"') {
        jinja_str s;
        if (!parse_string(jp, &s)) return false;
        *out = jinja_string(s.p, s.n);
        return true;
    }
    if (c == '{' || c == '[') {
        bool is_obj = c == '{';
        jp->pos++;
        jinja_list *l = is_obj ? NULL : jinja_list_new(jp->arena, 0);
        jinja_dict *d = is_obj ? jinja_dict_new(jp->arena, 0) : NULL;
        if (!l && !d) return jinja_fail(jp->err, JINJA_ERROR_NO_MEMORY, 0, 0, "out of memory");
        skip_ws(jp);
        bool first = true;
        while (jp->pos < jp->n && jp->s[jp->pos] != (is_obj ? '}' : ']')) {
            if (!first) {
                if (jp->s[jp->pos] != ',') return json_fail(jp, "expected ','");
                jp->pos++;
                skip_ws(jp);
            }
            first = false;
            jinja_value key, v;
            if (is_obj) {
                if (jp->pos >= jp->n || jp->s[jp->pos] != '"') return json_fail(jp, "expected a string key");
                jinja_str k;
                if (!parse_string(jp, &k)) return false;
                key = jinja_string(k.p, k.n);
                skip_ws(jp);
                if (jp->pos >= jp->n || jp->s[jp->pos] != ':') return json_fail(jp, "expected ':'");
                jp->pos++;
            }
            if (!parse_value(jp, depth + 1, &v)) return false;
            bool ok = is_obj ? jinja_dict_set(jp->arena, d, key, v) : jinja_list_push(jp->arena, l, v);
            if (!ok) return jinja_fail(jp->err, JINJA_ERROR_NO_MEMORY, 0, 0, "out of memory");
            skip_ws(jp);
        }
        if (jp->pos >= jp->n) return json_fail(jp, "unterminated array or object");
        jp->pos++;
        *out = is_obj ? (jinja_value){.type = JINJA_DICT, .dict = d} : (jinja_value){.type = JINJA_LIST, .list = l};
        return true;
    }
    static const struct {
        const char *word;
        jinja_value v;
    } words[] = {{"true", {.type = JINJA_BOOL, .b = true}}, {"false", {.type = JINJA_BOOL, .b = false}},
                 {"null", {.type = JINJA_NONE}}};
    for (size_t i = 0; i < 3; i++) {
        size_t len = strlen(words[i].word);
        if (jp->n - jp->pos >= len && memcmp(jp->s + jp->pos, words[i].word, len) == 0) {
            jp->pos += len;
            *out = words[i].v;
            return true;
        }
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
        size_t start = jp->pos;
        bool is_float = false;
        if (jp->s[jp->pos] == '-') jp->pos++;
        while (jp->pos < jp->n) {
            char d = jp->s[jp->pos];
            if (d == '.' || d == 'e' || d == 'E' || ((d == '+' || d == '-') && (jp->s[jp->pos - 1] == 'e' || jp->s[jp->pos - 1] == 'E')))
                is_float = true;
            else if (!(d >= '0' && d <= '9'))
                break;
            jp->pos++;
        }
        char tmp[64];
        size_t len = jp->pos - start;
        if (len >= sizeof tmp) return json_fail(jp, "number too long");
        memcpy(tmp, jp->s + start, len);
        tmp[len] = '\0';
        char *end;
        if (!is_float) {
            errno = 0;
            long long i = strtoll(tmp, &end, 10);
            if (*end == '\0' && errno == 0) {
                *out = jinja_int(i);
                return true;
            }
        }
        double f = strtod(tmp, &end);
        if (*end != '\0') return json_fail(jp, "bad number");
        *out = jinja_float(f);
        return true;
    }
    return json_fail(jp, "unexpected character");
}

bool jinja_json_parse(jinja_arena *a, const char *text, size_t n, jinja_value *out, jinja_error *err) {
    json_parser jp = {.arena = a, .s = text, .n = n, .err = err};
    if (!parse_value(&jp, 0, out)) return false;
    skip_ws(&jp);
    if (jp.pos != n) return json_fail(&jp, "trailing characters");
    return true;
}

/* ---- dump ----------------------------------------------------------------------------------- */

static bool dump_string(jinja_buf *b, jinja_str s, bool ensure_ascii, jinja_error *err) {
    if (!jinja_buf_append(b, "\"", 1, err)) return false;
    for (size_t i = 0; i < s.n;) {
        size_t run = i; /* copy runs that need no escaping */
        while (run < s.n && (unsigned char)s.p[run] >= 0x20 && s.p[run] != '"' && s.p[run] != '\\' &&
               !(ensure_ascii && (unsigned char)s.p[run] >= 0x80))
            run++;
        if (!jinja_buf_append(b, s.p + i, run - i, err)) return false;
        i = run;
        if (i >= s.n) break;
        unsigned char c = (unsigned char)s.p[i];
        char esc[16];
        const char *piece = esc;
        size_t len = 2;
        if (c == '"') piece = "\\\"";
        else if (c == '\\') piece = "\\\\";
        else if (c == '\n') piece = "\\n";
        else if (c == '\r') piece = "\\r";
        else if (c == '\t') piece = "\\t";
        else if (c == '\b') piece = "\\b";
        else if (c == '\f') piece = "\\f";
        if (piece != esc) {
            i++;
        } else if (c < 0x20) {
            len = (size_t)snprintf(esc, sizeof esc, "\\u%04x", c);
            i++;
        } else { /* ensure_ascii and a non-ASCII code point */
            size_t cl;
            uint32_t cp = jinja_utf8_decode(s.p + i, s.n - i, &cl);
            if (cp >= 0x10000) {
                uint32_t v = cp - 0x10000;
                len = (size_t)snprintf(esc, sizeof esc, "\\u%04x\\u%04x", 0xd800 + (v >> 10), 0xdc00 + (v & 0x3ff));
            } else {
                len = (size_t)snprintf(esc, sizeof esc, "\\u%04x", cp);
            }
            i += cl;
        }
        if (!jinja_buf_append(b, piece, len, err)) return false;
    }
    return jinja_buf_append(b, "\"", 1, err);
}

static bool newline_indent(jinja_buf *b, int indent, int depth, jinja_error *err) {
    if (!jinja_buf_append(b, "\n", 1, err)) return false;
    for (int i = 0; i < indent * depth; i++)
        if (!jinja_buf_append(b, " ", 1, err)) return false;
    return true;
}

/* JSON object keys: Python converts str/int/float/bool/None keys to strings. */
static bool dump_key(jinja_buf *b, jinja_value k, bool ensure_ascii, jinja_error *err) {
    char tmp[40];
    switch (k.type) {
    case JINJA_STRING: return dump_string(b, k.s, ensure_ascii, err);
    case JINJA_INT: return jinja_buf_printf(b, err, "\"%lld\"", (long long)k.i);
    case JINJA_FLOAT: jinja_format_float(k.f, tmp); return jinja_buf_printf(b, err, "\"%s\"", tmp);
    case JINJA_BOOL: return jinja_buf_append_cstr(b, k.b ? "\"true\"" : "\"false\"", err);
    case JINJA_NONE: return jinja_buf_append_cstr(b, "\"null\"", err);
    default: return jinja_fail(err, JINJA_ERROR_RUNTIME, 0, 0, "keys must be str, int, float, bool or None, not %s",
                               jinja_type_name(k));
    }
}

static int key_compare(jinja_value a, jinja_value b) {
    if (a.type == JINJA_STRING && b.type == JINJA_STRING) {
        size_t n = a.s.n < b.s.n ? a.s.n : b.s.n;
        int c = memcmp(a.s.p, b.s.p, n);
        return c ? c : (a.s.n > b.s.n) - (a.s.n < b.s.n);
    }
    double x = a.type == JINJA_INT ? (double)a.i : a.type == JINJA_FLOAT ? a.f : 0;
    double y = b.type == JINJA_INT ? (double)b.i : b.type == JINJA_FLOAT ? b.f : 0;
    return (x > y) - (x < y);
}

bool jinja_json_dump(jinja_buf *b, jinja_value v, int indent, bool sort_keys, bool ensure_ascii, int depth,
                     jinja_error *err) {
    char tmp[40];
    if (depth > JSON_MAX_DEPTH) return jinja_fail(err, JINJA_ERROR_LIMIT, 0, 0, "tojson: nesting too deep");
    const char *item_sep = indent >= 0 ? "," : ", ";
    switch (v.type) {
    case JINJA_NONE: return jinja_buf_append_cstr(b, "null", err);
    case JINJA_BOOL: return jinja_buf_append_cstr(b, v.b ? "true" : "false", err);
    case JINJA_INT: return jinja_buf_printf(b, err, "%lld", (long long)v.i);
    case JINJA_FLOAT:
        if (isnan(v.f)) return jinja_buf_append_cstr(b, "NaN", err);
        if (isinf(v.f)) return jinja_buf_append_cstr(b, v.f > 0 ? "Infinity" : "-Infinity", err);
        jinja_format_float(v.f, tmp);
        return jinja_buf_append_cstr(b, tmp, err);
    case JINJA_STRING: return dump_string(b, v.s, ensure_ascii, err);
    case JINJA_LIST:
        if (v.list->n == 0) return jinja_buf_append_cstr(b, "[]", err);
        if (!jinja_buf_append(b, "[", 1, err)) return false;
        for (size_t i = 0; i < v.list->n; i++) {
            if (i && !jinja_buf_append_cstr(b, item_sep, err)) return false;
            if (indent >= 0 && !newline_indent(b, indent, depth + 1, err)) return false;
            if (!jinja_json_dump(b, v.list->items[i], indent, sort_keys, ensure_ascii, depth + 1, err)) return false;
        }
        if (indent >= 0 && !newline_indent(b, indent, depth, err)) return false;
        return jinja_buf_append(b, "]", 1, err);
    case JINJA_DICT: {
        if (v.dict->is_namespace) break;
        size_t n = v.dict->n;
        if (n == 0) return jinja_buf_append_cstr(b, "{}", err);
        size_t order_stack[64], *order = n <= 64 ? order_stack : malloc(n * sizeof *order);
        if (!order) return jinja_fail(err, JINJA_ERROR_NO_MEMORY, 0, 0, "out of memory");
        for (size_t i = 0; i < n; i++) order[i] = i;
        if (sort_keys) /* insertion sort: stable and enough for tool schemas */
            for (size_t i = 1; i < n; i++)
                for (size_t k = i; k > 0 && key_compare(v.dict->keys[order[k - 1]], v.dict->keys[order[k]]) > 0; k--) {
                    size_t t = order[k];
                    order[k] = order[k - 1];
                    order[k - 1] = t;
                }
        bool ok = jinja_buf_append(b, "{", 1, err);
        for (size_t i = 0; ok && i < n; i++) {
            size_t k = order[i];
            ok = (!i || jinja_buf_append_cstr(b, item_sep, err)) &&
                 (indent < 0 || newline_indent(b, indent, depth + 1, err)) &&
                 dump_key(b, v.dict->keys[k], ensure_ascii, err) && jinja_buf_append(b, ": ", 2, err) &&
                 jinja_json_dump(b, v.dict->vals[k], indent, sort_keys, ensure_ascii, depth + 1, err);
        }
        if (order != order_stack) free(order);
        if (!ok) return false;
        if (indent >= 0 && !newline_indent(b, indent, depth, err)) return false;
        return jinja_buf_append(b, "}", 1, err);
    }
    default: break;
    }
    return jinja_fail(err, JINJA_ERROR_RUNTIME, 0, 0, "Object of type %s is not JSON serializable", jinja_type_name(v));
}
