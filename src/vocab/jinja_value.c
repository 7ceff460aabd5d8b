/* vocab/jinja_value.c - the Jinja interpreter's arena, error recording, values and their Python
 * semantics: truthiness, equality, str() and repr() (floats printed as Python's shortest repr),
 * and the UTF-8 / Unicode-whitespace helpers that str.strip() and friends need.
 * Filters, tests and methods are in jinja_builtins.c; JSON in jinja_json.c.
 */
#include "vocab/jinja_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

/* ---- arena ---------------------------------------------------------------------------------- */

void *jinja_arena_alloc(jinja_arena *a, size_t n_bytes) {
    n_bytes = (n_bytes + 15) & ~(size_t)15;
    if (n_bytes == 0) n_bytes = 16;
    jinja_arena_block *blk = a->head;
    if (!blk || blk->cap_bytes - blk->used_bytes < n_bytes) {
        size_t cap = blk ? blk->cap_bytes * 2 : 4096;
        if (cap > (1u << 24)) cap = 1u << 24;
        if (cap < n_bytes) cap = n_bytes;
        if (a->max_bytes && a->total_bytes + cap > a->max_bytes) {
            if (a->total_bytes + n_bytes > a->max_bytes) return NULL;
            cap = n_bytes;
        }
        blk = malloc(sizeof *blk + cap);
        if (!blk) return NULL;
        blk->next = a->head;
        blk->used_bytes = 0;
        blk->cap_bytes = cap;
        a->head = blk;
        a->total_bytes += cap;
    }
    void *p = (char *)blk->data + blk->used_bytes;
    blk->used_bytes += n_bytes;
    memset(p, 0, n_bytes);
    return p;
}

void jinja_arena_free(jinja_arena *a) {
    jinja_arena_block *blk = a->head;
    while (blk) {
        jinja_arena_block *next = blk->next;
        free(blk);
        blk = next;
    }
    a->head = NULL;
    a->total_bytes = 0;
}

char *jinja_strdup(jinja_arena *a, const char *p, size_t n) {
    char *s = jinja_arena_alloc(a, n + 1);
    if (!s) return NULL;
    if (n) memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

/* ---- errors --------------------------------------------------------------------------------- */

bool jinja_fail(jinja_error *err, jinja_error_kind kind, int line, int column, const char *fmt, ...) {
    if (err->kind != JINJA_ERROR_NONE) return false;
    err->kind = kind;
    err->line = line;
    err->column = column;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return false;
}

/* ---- buffers -------------------------------------------------------------------------------- */

bool jinja_buf_append(jinja_buf *b, const char *p, size_t n, jinja_error *err) {
    if (n == 0) return true;
    if (b->max_bytes && b->n + n > b->max_bytes)
        return jinja_fail(err, JINJA_ERROR_LIMIT, 0, 0, "output exceeds the limit of %zu bytes", b->max_bytes);
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *q;
        if (b->arena) {
            q = jinja_arena_alloc(b->arena, cap);
            if (q && b->n) memcpy(q, b->p, b->n);
        } else {
            q = realloc(b->p, cap);
        }
        if (!q) {
            if (b->arena) return jinja_fail(err, JINJA_ERROR_LIMIT, 0, 0, "the template needs more memory than allowed");
            return jinja_fail(err, JINJA_ERROR_NO_MEMORY, 0, 0, "out of memory");
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
    b->p[b->n] = '\0';
    return true;
}

bool jinja_buf_append_cstr(jinja_buf *b, const char *s, jinja_error *err) {
    return jinja_buf_append(b, s, strlen(s), err);
}

bool jinja_buf_printf(jinja_buf *b, jinja_error *err, const char *fmt, ...) {
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return true;
    if ((size_t)n >= sizeof tmp) n = sizeof tmp - 1;
    return jinja_buf_append(b, tmp, (size_t)n, err);
}

/* ---- lists and dicts ------------------------------------------------------------------------ */

jinja_list *jinja_list_new(jinja_arena *a, size_t cap) {
    jinja_list *l = jinja_arena_alloc(a, sizeof *l);
    if (!l) return NULL;
    if (cap == 0) cap = 1; /* items is never NULL, so memcpy of zero items is well-defined */
    l->items = jinja_arena_alloc(a, cap * sizeof *l->items);
    if (!l->items) return NULL;
    l->cap = cap;
    return l;
}

bool jinja_list_push(jinja_arena *a, jinja_list *l, jinja_value v) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        jinja_value *items = jinja_arena_alloc(a, cap * sizeof *items);
        if (!items) return false;
        if (l->n) memcpy(items, l->items, l->n * sizeof *items);
        l->items = items;
        l->cap = cap;
    }
    l->items[l->n++] = v;
    return true;
}

jinja_dict *jinja_dict_new(jinja_arena *a, size_t cap) {
    jinja_dict *d = jinja_arena_alloc(a, sizeof *d);
    if (!d) return NULL;
    if (cap == 0) cap = 1; /* keys/vals are never NULL */
    d->keys = jinja_arena_alloc(a, cap * sizeof *d->keys);
    d->vals = jinja_arena_alloc(a, cap * sizeof *d->vals);
    if (!d->keys || !d->vals) return NULL;
    d->cap = cap;
    return d;
}

jinja_value *jinja_dict_get_value(const jinja_dict *d, jinja_value key) {
    for (size_t i = 0; i < d->n; i++)
        if (jinja_equal(d->keys[i], key)) return &d->vals[i];
    return NULL;
}

jinja_value *jinja_dict_get(const jinja_dict *d, const char *key, size_t key_len) {
    for (size_t i = 0; i < d->n; i++) {
        const jinja_value *k = &d->keys[i];
        if (k->type == JINJA_STRING && k->s.n == key_len && memcmp(k->s.p, key, key_len) == 0) return &d->vals[i];
    }
    return NULL;
}

bool jinja_dict_set(jinja_arena *a, jinja_dict *d, jinja_value key, jinja_value v) {
    jinja_value *slot = jinja_dict_get_value(d, key);
    if (slot) {
        *slot = v;
        return true;
    }
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 8;
        jinja_value *keys = jinja_arena_alloc(a, cap * sizeof *keys);
        jinja_value *vals = jinja_arena_alloc(a, cap * sizeof *vals);
        if (!keys || !vals) return false;
        if (d->n) {
            memcpy(keys, d->keys, d->n * sizeof *keys);
            memcpy(vals, d->vals, d->n * sizeof *vals);
        }
        d->keys = keys;
        d->vals = vals;
        d->cap = cap;
    }
    d->keys[d->n] = key;
    d->vals[d->n] = v;
    d->n++;
    return true;
}

/* ---- Python semantics ----------------------------------------------------------------------- */

bool jinja_truthy(jinja_value v) {
    switch (v.type) {
    case JINJA_UNDEFINED:
    case JINJA_NONE: return false;
    case JINJA_BOOL: return v.b;
    case JINJA_INT: return v.i != 0;
    case JINJA_FLOAT: return v.f != 0.0;
    case JINJA_STRING: return v.s.n != 0;
    case JINJA_LIST: return v.list->n != 0;
    case JINJA_DICT: return v.dict->is_namespace || v.dict->n != 0;
    case JINJA_FUNCTION:
    case JINJA_MACRO: return true;
    }
    return false;
}

static bool is_number(jinja_value v) { return v.type == JINJA_INT || v.type == JINJA_FLOAT || v.type == JINJA_BOOL; }
static double as_double(jinja_value v) {
    return v.type == JINJA_FLOAT ? v.f : v.type == JINJA_INT ? (double)v.i : (double)v.b;
}

bool jinja_equal(jinja_value a, jinja_value b) {
    if (is_number(a) && is_number(b)) {
        if (a.type != JINJA_FLOAT && b.type != JINJA_FLOAT) {
            int64_t x = a.type == JINJA_INT ? a.i : a.b, y = b.type == JINJA_INT ? b.i : b.b;
            return x == y;
        }
        return as_double(a) == as_double(b);
    }
    if (a.type != b.type) return false;
    switch (a.type) {
    case JINJA_UNDEFINED:
    case JINJA_NONE: return true;
    case JINJA_STRING: return a.s.n == b.s.n && memcmp(a.s.p, b.s.p, a.s.n) == 0;
    case JINJA_LIST:
        if (a.list->n != b.list->n || a.list->is_tuple != b.list->is_tuple) return false;
        for (size_t i = 0; i < a.list->n; i++)
            if (!jinja_equal(a.list->items[i], b.list->items[i])) return false;
        return true;
    case JINJA_DICT:
        if (a.dict == b.dict) return true;
        if (a.dict->is_namespace || b.dict->is_namespace || a.dict->n != b.dict->n) return false;
        for (size_t i = 0; i < a.dict->n; i++) {
            jinja_value *other = jinja_dict_get_value(b.dict, a.dict->keys[i]);
            if (!other || !jinja_equal(a.dict->vals[i], *other)) return false;
        }
        return true;
    case JINJA_FUNCTION: return a.builtin == b.builtin;
    case JINJA_MACRO: return a.macro == b.macro;
    default: return false;
    }
}

const char *jinja_type_name(jinja_value v) {
    switch (v.type) {
    case JINJA_UNDEFINED: return "Undefined";
    case JINJA_NONE: return "NoneType";
    case JINJA_BOOL: return "bool";
    case JINJA_INT: return "int";
    case JINJA_FLOAT: return "float";
    case JINJA_STRING: return "str";
    case JINJA_LIST: return v.list->is_tuple ? "tuple" : "list";
    case JINJA_DICT: return v.dict->is_namespace ? "Namespace" : "dict";
    case JINJA_FUNCTION: return "function";
    case JINJA_MACRO: return "Macro";
    }
    return "object";
}

void jinja_format_float(double f, char out[40]) {
    if (isnan(f)) {
        strcpy(out, "nan");
        return;
    }
    if (isinf(f)) {
        strcpy(out, f < 0 ? "-inf" : "inf");
        return;
    }
    /* Shortest digits that read back as the same double ("%.{p}e" for growing p). */
    char sci[40];
    for (int prec = 0; prec <= 17; prec++) {
        snprintf(sci, sizeof sci, "%.*e", prec, f);
        if (strtod(sci, NULL) == f) break;
    }
    /* sci: [-]d[.ddd]e[+-]XX -> sign, digits, exponent */
    const char *p = sci;
    char *o = out;
    if (*p == '-') *o++ = *p++;
    char digits[24];
    int n_digits = 0;
    for (; *p && *p != 'e'; p++)
        if (*p != '.') digits[n_digits++] = *p;
    int exp10 = atoi(p + 1);
    while (n_digits > 1 && digits[n_digits - 1] == '0') n_digits--; /* strip trailing zeros */
    if (exp10 < -4 || exp10 >= 16) {
        *o++ = digits[0];
        if (n_digits > 1) {
            *o++ = '.';
            memcpy(o, digits + 1, (size_t)n_digits - 1);
            o += n_digits - 1;
        }
        o += sprintf(o, "e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
    } else if (exp10 < 0) {
        *o++ = '0';
        *o++ = '.';
        for (int i = 0; i < -exp10 - 1; i++) *o++ = '0';
        memcpy(o, digits, (size_t)n_digits);
        o += n_digits;
    } else {
        for (int i = 0; i <= exp10; i++) *o++ = i < n_digits ? digits[i] : '0';
        *o++ = '.';
        if (n_digits > exp10 + 1) {
            memcpy(o, digits + exp10 + 1, (size_t)(n_digits - exp10 - 1));
            o += n_digits - exp10 - 1;
        } else {
            *o++ = '0';
        }
    }
    *o = '\0';
}

/* Python's str.isprintable() for one code point (repr escapes the rest). */
static bool is_printable(uint32_t cp) {
    if (cp == ' ') return true;
    if (cp < 0x20 || cp == 0x7f) return false;
    if (cp < 0x7f) return true;
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return !(c == UTF8PROC_CATEGORY_CC || c == UTF8PROC_CATEGORY_CF || c == UTF8PROC_CATEGORY_CS ||
             c == UTF8PROC_CATEGORY_CO || c == UTF8PROC_CATEGORY_CN || c == UTF8PROC_CATEGORY_ZL ||
             c == UTF8PROC_CATEGORY_ZP || c == UTF8PROC_CATEGORY_ZS);
}

static bool write_string_repr(jinja_buf *b, jinja_str s, jinja_error *err) {
    bool has_single = memchr(s.p, '\'', s.n) != NULL, has_double = memchr(s.p, '"', s.n) != NULL;
    char quote = has_single && !has_double ? '"' : '\'';
    if (!jinja_buf_append(b, &quote, 1, err)) return false;
    for (size_t i = 0; i < s.n;) {
        size_t len;
        uint32_t cp = jinja_utf8_decode(s.p + i, s.n - i, &len);
        char esc[16];
        const char *piece = s.p + i;
        size_t piece_len = len;
        if (cp == '\\' || cp == (uint32_t)quote) {
            esc[0] = '\\';
            esc[1] = (char)cp;
            piece = esc;
            piece_len = 2;
        } else if (cp == '\n' || cp == '\r' || cp == '\t') {
            esc[0] = '\\';
            esc[1] = cp == '\n' ? 'n' : cp == '\r' ? 'r' : 't';
            piece = esc;
            piece_len = 2;
        } else if (!is_printable(cp)) {
            piece_len = (size_t)(cp <= 0xff     ? snprintf(esc, sizeof esc, "\\x%02x", cp)
                                 : cp <= 0xffff ? snprintf(esc, sizeof esc, "\\u%04x", cp)
                                                : snprintf(esc, sizeof esc, "\\U%08x", cp));
            piece = esc;
        }
        if (!jinja_buf_append(b, piece, piece_len, err)) return false;
        i += len;
    }
    return jinja_buf_append(b, &quote, 1, err);
}

bool jinja_write_repr(jinja_buf *b, jinja_value v, jinja_error *err) {
    switch (v.type) {
    case JINJA_STRING: return write_string_repr(b, v.s, err);
    case JINJA_UNDEFINED: return true; /* str(Undefined) is '' wherever it appears */
    case JINJA_LIST: {
        if (!jinja_buf_append(b, v.list->is_tuple ? "(" : "[", 1, err)) return false;
        for (size_t i = 0; i < v.list->n; i++) {
            if (i && !jinja_buf_append(b, ", ", 2, err)) return false;
            if (!jinja_write_repr(b, v.list->items[i], err)) return false;
        }
        if (v.list->is_tuple && v.list->n == 1 && !jinja_buf_append(b, ",", 1, err)) return false;
        return jinja_buf_append(b, v.list->is_tuple ? ")" : "]", 1, err);
    }
    case JINJA_DICT: {
        if (v.dict->is_namespace && !jinja_buf_append_cstr(b, "<Namespace ", err)) return false;
        if (!jinja_buf_append(b, "{", 1, err)) return false;
        for (size_t i = 0; i < v.dict->n; i++) {
            if (i && !jinja_buf_append(b, ", ", 2, err)) return false;
            if (!jinja_write_repr(b, v.dict->keys[i], err) || !jinja_buf_append(b, ": ", 2, err) ||
                !jinja_write_repr(b, v.dict->vals[i], err))
                return false;
        }
        if (!jinja_buf_append(b, "}", 1, err)) return false;
        return !v.dict->is_namespace || jinja_buf_append(b, ">", 1, err);
    }
    default: return jinja_write_str(b, v, err);
    }
}

bool jinja_write_str(jinja_buf *b, jinja_value v, jinja_error *err) {
    char tmp[40];
    switch (v.type) {
    case JINJA_UNDEFINED: return true;
    case JINJA_NONE: return jinja_buf_append(b, "None", 4, err);
    case JINJA_BOOL: return jinja_buf_append_cstr(b, v.b ? "True" : "False", err);
    case JINJA_INT: return jinja_buf_printf(b, err, "%lld", (long long)v.i);
    case JINJA_FLOAT: jinja_format_float(v.f, tmp); return jinja_buf_append_cstr(b, tmp, err);
    case JINJA_STRING: return jinja_buf_append(b, v.s.p, v.s.n, err);
    case JINJA_LIST:
    case JINJA_DICT: return jinja_write_repr(b, v, err);
    case JINJA_FUNCTION: return jinja_buf_append_cstr(b, "<built-in function>", err);
    case JINJA_MACRO: return jinja_buf_append_cstr(b, "<Macro>", err);
    }
    return true;
}

bool jinja_to_str(jinja_arena *a, jinja_value v, jinja_str *out, jinja_error *err) {
    if (v.type == JINJA_STRING) {
        *out = v.s;
        return true;
    }
    jinja_buf b = {.arena = a};
    if (!jinja_write_str(&b, v, err)) return false;
    out->p = b.p ? b.p : "";
    out->n = b.n;
    return true;
}

/* ---- UTF-8 and whitespace ------------------------------------------------------------------- */

uint32_t jinja_utf8_decode(const char *p, size_t n, size_t *len) {
    const unsigned char *s = (const unsigned char *)p;
    unsigned char c = s[0];
    size_t need = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (need == 0 || need > n) {
        *len = 1;
        return c;
    }
    uint32_t cp = need == 1 ? c : need == 2 ? (c & 0x1fu) : need == 3 ? (c & 0x0fu) : (c & 0x07u);
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            *len = 1;
            return c;
        }
        cp = (cp << 6) | (s[i] & 0x3fu);
    }
    *len = need;
    return cp;
}

size_t jinja_utf8_encode(uint32_t cp, char out[4]) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

size_t jinja_utf8_count(const char *p, size_t n) {
    size_t count = 0;
    for (size_t i = 0, len; i < n; i += len) {
        jinja_utf8_decode(p + i, n - i, &len);
        count++;
    }
    return count;
}

size_t jinja_utf8_offset(const char *p, size_t n, size_t index) {
    size_t i = 0, len;
    for (size_t k = 0; k < index && i < n; k++) {
        jinja_utf8_decode(p + i, n - i, &len);
        i += len;
    }
    return i;
}

bool jinja_is_space(uint32_t cp) {
    if (cp == ' ' || (cp >= 0x09 && cp <= 0x0d) || (cp >= 0x1c && cp <= 0x1f)) return true;
    if (cp < 0x85) return false;
    return cp == 0x85 || cp == 0xa0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x202f || cp == 0x205f || cp == 0x3000;
}

jinja_str jinja_strip(jinja_str s, bool left, bool right) {
    size_t begin = 0, end = s.n, len;
    if (left)
        while (begin < end && jinja_is_space(jinja_utf8_decode(s.p + begin, end - begin, &len))) begin += len;
    if (right) {
        while (end > begin) {
            size_t start = end - 1; /* back up to the start of the last code point */
            while (start > begin && ((unsigned char)s.p[start] & 0xc0) == 0x80 && end - start < 4) start--;
            uint32_t cp = jinja_utf8_decode(s.p + start, end - start, &len);
            if (start + len != end) { /* not a well-formed trailing sequence: one byte */
                start = end - 1;
                cp = (unsigned char)s.p[start];
            }
            if (!jinja_is_space(cp)) break;
            end = start;
        }
    }
    return (jinja_str){s.p + begin, end - begin};
}

void jinja_strip_bounds(const char *s, size_t n, size_t *begin, size_t *end) {
    jinja_str r = jinja_strip((jinja_str){s, n}, true, true);
    *begin = (size_t)(r.p - s);
    *end = *begin + r.n;
}
