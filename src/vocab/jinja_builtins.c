/* vocab/jinja_builtins.c - the tests, global functions and methods the interpreter knows:
 *
 * Tests:   boolean callable defined divisibleby eq equalto escaped even false filter float ge gt
 *          in integer iterable le lower lt mapping ne none number odd sameas sequence string test
 *          true undefined upper == != < <= > >=
 * Globals: range namespace dict raise_exception (HF) strftime_now (HF)
 * Methods: str: strip lstrip rstrip startswith endswith split splitlines upper lower title
 *          capitalize replace find count join isdigit isalpha isspace
 *          dict: items keys values get
 * Filters are in jinja_filters.c, the string helpers both use in jinja_strings.c.
 */
#include "vocab/jinja_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <utf8proc.h>

/* ---- tests ---------------------------------------------------------------------------------- */

static bool is_lower_or_upper(jinja_str s, bool want_lower) {
    bool any_cased = false;
    for (size_t i = 0, len; i < s.n; i += len) {
        uint32_t cp = jinja_utf8_decode(s.p + i, s.n - i, &len);
        bool is_upper = utf8proc_tolower((utf8proc_int32_t)cp) != (utf8proc_int32_t)cp;
        bool is_lower = utf8proc_toupper((utf8proc_int32_t)cp) != (utf8proc_int32_t)cp;
        if (want_lower ? is_upper : is_lower) return false;
        any_cased |= is_upper || is_lower;
    }
    return any_cased;
}

bool jinja_apply_test(jinja_eval *ev, const jinja_node *at, jinja_str name, jinja_value v, const jinja_args *args,
                      bool *out) {
    jinja_value a0 = jinja_undefined(NULL, 0);
    bool has_arg = jinja_arg(args, 0, NULL, &a0);
    jinja_type t = v.type;
    if (jinja_str_eq(name, "defined")) *out = t != JINJA_UNDEFINED;
    else if (jinja_str_eq(name, "undefined")) *out = t == JINJA_UNDEFINED;
    else if (jinja_str_eq(name, "none")) *out = t == JINJA_NONE;
    else if (jinja_str_eq(name, "boolean")) *out = t == JINJA_BOOL;
    else if (jinja_str_eq(name, "true")) *out = t == JINJA_BOOL && v.b;
    else if (jinja_str_eq(name, "false")) *out = t == JINJA_BOOL && !v.b;
    else if (jinja_str_eq(name, "integer")) *out = t == JINJA_INT;
    else if (jinja_str_eq(name, "float")) *out = t == JINJA_FLOAT;
    else if (jinja_str_eq(name, "number")) *out = t == JINJA_INT || t == JINJA_FLOAT || t == JINJA_BOOL;
    else if (jinja_str_eq(name, "string")) *out = t == JINJA_STRING;
    else if (jinja_str_eq(name, "mapping")) *out = t == JINJA_DICT && !v.dict->is_namespace;
    else if (jinja_str_eq(name, "iterable")) *out = t == JINJA_LIST || t == JINJA_STRING || t == JINJA_UNDEFINED || (t == JINJA_DICT && !v.dict->is_namespace);
    else if (jinja_str_eq(name, "sequence")) *out = t == JINJA_LIST || t == JINJA_STRING || t == JINJA_UNDEFINED || (t == JINJA_DICT && !v.dict->is_namespace);
    else if (jinja_str_eq(name, "callable")) *out = t == JINJA_FUNCTION || t == JINJA_MACRO;
    else if (jinja_str_eq(name, "escaped")) *out = false;
    else if (jinja_str_eq(name, "filter")) *out = t == JINJA_STRING && jinja_filter_exists(v.s);
    else if (jinja_str_eq(name, "test")) *out = t == JINJA_STRING && jinja_test_exists(v.s);
    else if (jinja_str_eq(name, "lower") || jinja_str_eq(name, "upper")) {
        jinja_str s;
        if (!jinja_to_str(ev->arena, v, &s, ev->err)) return false;
        *out = is_lower_or_upper(s, jinja_str_eq(name, "lower"));
    } else if (jinja_str_eq(name, "odd") || jinja_str_eq(name, "even") || jinja_str_eq(name, "divisibleby")) {
        if (t == JINJA_BOOL) v = jinja_int(v.b);
        if (v.type != JINJA_INT) return jinja_builtin_fail(ev, at, "test '%.*s' needs an integer, not '%s'", (int)name.n, name.p, jinja_type_name(v));
        int64_t d = 2;
        if (jinja_str_eq(name, "divisibleby")) {
            if (!has_arg || a0.type != JINJA_INT) return jinja_builtin_fail(ev, at, "divisibleby needs an integer argument");
            if (a0.i == 0) return jinja_builtin_fail(ev, at, "integer division or modulo by zero");
            d = a0.i;
        }
        int64_t r = d == -1 ? 0 : v.i % d;
        *out = jinja_str_eq(name, "odd") ? r != 0 : r == 0;
    } else if (jinja_str_eq(name, "sameas")) {
        *out = v.type == a0.type && jinja_equal(v, a0);
    } else {
        /* comparisons: eq equalto == ne != lt < le <= gt > ge >= in */
        if (!has_arg) return jinja_builtin_fail(ev, at, "test '%.*s' needs an argument", (int)name.n, name.p);
        int op = jinja_str_eq(name, "eq") || jinja_str_eq(name, "equalto") || jinja_str_eq(name, "==") ? JINJA_OP_EQ
               : jinja_str_eq(name, "ne") || jinja_str_eq(name, "!=") ? JINJA_OP_NE
               : jinja_str_eq(name, "lt") || jinja_str_eq(name, "<") ? JINJA_OP_LT
               : jinja_str_eq(name, "le") || jinja_str_eq(name, "<=") ? JINJA_OP_LE
               : jinja_str_eq(name, "gt") || jinja_str_eq(name, ">") ? JINJA_OP_GT
               : jinja_str_eq(name, "ge") || jinja_str_eq(name, ">=") ? JINJA_OP_GE
               : jinja_str_eq(name, "in") ? JINJA_OP_IN : -1;
        if (op < 0) return jinja_builtin_fail(ev, at, "no test named '%.*s'", (int)name.n, name.p);
        /* evaluate through a COMPARE node built on the stack */
        jinja_node lit_a = {.kind = JINJA_NODE_LITERAL, .line = at->line, .column = at->column, .value = v};
        jinja_node lit_b = {.kind = JINJA_NODE_LITERAL, .line = at->line, .column = at->column, .value = a0};
        jinja_node *kids[1] = {&lit_b};
        int ops[1] = {op};
        jinja_node cmp = {.kind = JINJA_NODE_COMPARE, .line = at->line, .column = at->column, .a = &lit_a,
                          .kids = kids, .n_kids = 1, .ops = ops};
        jinja_value r;
        if (!jinja_eval_expr(ev, &cmp, &r)) return false;
        *out = r.b;
    }
    return true;
}

/* ---- global functions ----------------------------------------------------------------------- */

int jinja_global_lookup(jinja_str name) {
    if (jinja_str_eq(name, "range")) return JINJA_FN_RANGE;
    if (jinja_str_eq(name, "namespace")) return JINJA_FN_NAMESPACE;
    if (jinja_str_eq(name, "dict")) return JINJA_FN_DICT;
    if (jinja_str_eq(name, "raise_exception")) return JINJA_FN_RAISE_EXCEPTION;
    if (jinja_str_eq(name, "strftime_now")) return JINJA_FN_STRFTIME_NOW;
    return -1;
}

bool jinja_call_global(jinja_eval *ev, const jinja_node *at, int fn, const jinja_args *args, jinja_value *out) {
    switch (fn) {
    case JINJA_FN_RANGE: {
        int64_t start = 0, stop, stride = 1;
        for (size_t i = 0; i < args->n_pos; i++)
            if (args->pos[i].type != JINJA_INT) return jinja_builtin_fail(ev, at, "range() needs integers, not '%s'", jinja_type_name(args->pos[i]));
        if (args->n_pos == 1) stop = args->pos[0].i;
        else if (args->n_pos == 2 || args->n_pos == 3) {
            start = args->pos[0].i;
            stop = args->pos[1].i;
            if (args->n_pos == 3) stride = args->pos[2].i;
        } else return jinja_builtin_fail(ev, at, "range() takes 1 to 3 arguments");
        if (stride == 0) return jinja_builtin_fail(ev, at, "range() arg 3 must not be zero");
        double count = ceil(((double)stop - (double)start) / (double)stride);
        if (count > (double)ev->limits.max_steps)
            return jinja_fail(ev->err, JINJA_ERROR_LIMIT, at->line, at->column, "range() is too long");
        jinja_list *l = jinja_list_new(ev->arena, count > 0 ? (size_t)count : 0);
        if (!l) return jinja_builtin_no_memory(ev);
        for (int64_t i = start; stride > 0 ? i < stop : i > stop; i += stride) {
            l->items[l->n++] = jinja_int(i);
            if (__builtin_add_overflow(i, stride, &(int64_t){0})) break;
        }
        *out = jinja_list_value(l);
        return true;
    }
    case JINJA_FN_NAMESPACE:
    case JINJA_FN_DICT: {
        jinja_dict *d = jinja_dict_new(ev->arena, args->n_kw);
        if (!d) return jinja_builtin_no_memory(ev);
        d->is_namespace = fn == JINJA_FN_NAMESPACE;
        for (size_t i = 0; i < args->n_pos; i++) {
            if (args->pos[i].type != JINJA_DICT) return jinja_builtin_fail(ev, at, "positional arguments must be mappings");
            const jinja_dict *src = args->pos[i].dict;
            for (size_t k = 0; k < src->n; k++)
                if (!jinja_dict_set(ev->arena, d, src->keys[k], src->vals[k])) return jinja_builtin_no_memory(ev);
        }
        for (size_t k = 0; k < args->n_kw; k++)
            if (!jinja_dict_set(ev->arena, d, jinja_string(args->kw_names[k].p, args->kw_names[k].n), args->kw[k]))
                return jinja_builtin_no_memory(ev);
        *out = (jinja_value){.type = JINJA_DICT, .dict = d};
        return true;
    }
    case JINJA_FN_RAISE_EXCEPTION: {
        jinja_str msg = {"", 0};
        if (args->n_pos > 0 && !jinja_to_str(ev->arena, args->pos[0], &msg, ev->err)) return false;
        return jinja_fail(ev->err, JINJA_ERROR_RAISED, at->line, at->column, "%.*s", (int)(msg.n > 400 ? 400 : msg.n), msg.p);
    }
    case JINJA_FN_STRFTIME_NOW: {
        jinja_str fmt;
        if (args->n_pos < 1 || !jinja_need_string(ev, at, args->pos[0], "strftime_now()", &fmt)) {
            if (ev->err->kind == JINJA_ERROR_NONE) return jinja_builtin_fail(ev, at, "strftime_now() needs a format string");
            return false;
        }
        char *cfmt = jinja_strdup(ev->arena, fmt.p, fmt.n), buf[256];
        if (!cfmt) return jinja_builtin_no_memory(ev);
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        size_t n = strftime(buf, sizeof buf, cfmt, &tm);
        char *copy = jinja_strdup(ev->arena, buf, n);
        if (!copy) return jinja_builtin_no_memory(ev);
        *out = jinja_string(copy, n);
        return true;
    }
    }
    return jinja_builtin_fail(ev, at, "internal error: unknown global function %d", fn);
}

/* ---- methods -------------------------------------------------------------------------------- */

static bool dict_method(jinja_eval *ev, const jinja_node *at, jinja_dict *d, jinja_str name, const jinja_args *args,
                        jinja_value *out) {
    if (jinja_str_eq(name, "get")) {
        jinja_value key, dflt;
        if (!jinja_arg(args, 0, "key", &key)) return jinja_builtin_fail(ev, at, "get() needs a key");
        if (!jinja_arg(args, 1, "default", &dflt)) dflt = jinja_none();
        jinja_value *v = jinja_dict_get_value(d, key);
        *out = v ? *v : dflt;
        return true;
    }
    bool keys = jinja_str_eq(name, "keys"), values = jinja_str_eq(name, "values"), items = jinja_str_eq(name, "items");
    if (!keys && !values && !items) return jinja_builtin_fail(ev, at, "'dict' object has no method '%.*s'", (int)name.n, name.p);
    jinja_list *l = jinja_list_new(ev->arena, d->n);
    if (!l) return jinja_builtin_no_memory(ev);
    for (size_t i = 0; i < d->n; i++) {
        if (keys) l->items[i] = d->keys[i];
        else if (values) l->items[i] = d->vals[i];
        else {
            jinja_list *pair = jinja_list_new(ev->arena, 2);
            if (!pair) return jinja_builtin_no_memory(ev);
            pair->items[0] = d->keys[i];
            pair->items[1] = d->vals[i];
            pair->n = 2;
            pair->is_tuple = true;
            l->items[i] = jinja_list_value(pair);
        }
    }
    l->n = d->n;
    *out = jinja_list_value(l);
    return true;
}

bool jinja_call_method(jinja_eval *ev, const jinja_node *at, jinja_value obj, jinja_str name, const jinja_args *args,
                       jinja_value *out) {
    if (obj.type == JINJA_DICT && !obj.dict->is_namespace) return dict_method(ev, at, obj.dict, name, args, out);
    if (obj.type != JINJA_STRING)
        return jinja_builtin_fail(ev, at, "'%s' object has no method '%.*s'", jinja_type_name(obj), (int)name.n, name.p);
    jinja_str s = obj.s;
    jinja_value a0;
    if (jinja_str_eq(name, "strip")) return jinja_strip_chars(ev, at, s, args, true, true, out);
    if (jinja_str_eq(name, "lstrip")) return jinja_strip_chars(ev, at, s, args, true, false, out);
    if (jinja_str_eq(name, "rstrip")) return jinja_strip_chars(ev, at, s, args, false, true, out);
    if (jinja_str_eq(name, "upper")) return jinja_change_case(ev, s, JINJA_CASE_UPPER, out);
    if (jinja_str_eq(name, "lower")) return jinja_change_case(ev, s, JINJA_CASE_LOWER, out);
    if (jinja_str_eq(name, "title")) return jinja_change_case(ev, s, JINJA_CASE_TITLE_METHOD, out);
    if (jinja_str_eq(name, "capitalize")) return jinja_change_case(ev, s, JINJA_CASE_CAPITALIZE, out);
    if (jinja_str_eq(name, "replace")) return jinja_replace(ev, at, s, args, out);
    if (jinja_str_eq(name, "split")) return jinja_split(ev, at, s, args, out);
    if (jinja_str_eq(name, "splitlines")) {
        jinja_list *l;
        if (!jinja_splitlines(ev, s, &l)) return false;
        *out = jinja_list_value(l);
        return true;
    }
    if (jinja_str_eq(name, "startswith") || jinja_str_eq(name, "endswith")) {
        bool r;
        if (!jinja_arg(args, 0, NULL, &a0)) return jinja_builtin_fail(ev, at, "%.*s() needs an argument", (int)name.n, name.p);
        if (!jinja_affix_match(ev, at, s, a0, jinja_str_eq(name, "startswith"), &r)) return false;
        *out = jinja_bool(r);
        return true;
    }
    if (jinja_str_eq(name, "find") || jinja_str_eq(name, "count")) {
        jinja_str sub;
        if (!jinja_arg(args, 0, NULL, &a0) || !jinja_need_string(ev, at, a0, "find()/count()", &sub)) return false;
        if (jinja_str_eq(name, "find")) {
            const char *hit = sub.n == 0 ? s.p : memmem(s.p, s.n, sub.p, sub.n);
            *out = jinja_int(hit ? (int64_t)jinja_utf8_count(s.p, (size_t)(hit - s.p)) : -1);
            return true;
        }
        if (sub.n == 0) {
            *out = jinja_int((int64_t)jinja_utf8_count(s.p, s.n) + 1);
            return true;
        }
        int64_t count = 0;
        for (const char *p = s.p; (p = memmem(p, s.n - (size_t)(p - s.p), sub.p, sub.n)) != NULL; p += sub.n) count++;
        *out = jinja_int(count);
        return true;
    }
    if (jinja_str_eq(name, "join")) {
        jinja_list *items;
        if (!jinja_arg(args, 0, NULL, &a0) || !jinja_iterate(ev, at, a0, &items)) {
            if (ev->err->kind == JINJA_ERROR_NONE) return jinja_builtin_fail(ev, at, "join() needs an iterable");
            return false;
        }
        jinja_buf b = {.arena = ev->arena, .max_bytes = ev->limits.max_output_bytes};
        for (size_t i = 0; i < items->n; i++) {
            if (items->items[i].type != JINJA_STRING)
                return jinja_builtin_fail(ev, at, "sequence item %zu: expected str instance, %s found", i, jinja_type_name(items->items[i]));
            if ((i && !jinja_buf_append(&b, s.p, s.n, ev->err)) ||
                !jinja_buf_append(&b, items->items[i].s.p, items->items[i].s.n, ev->err))
                return false;
        }
        *out = jinja_str_value(&b);
        return true;
    }
    if (jinja_str_eq(name, "isdigit") || jinja_str_eq(name, "isalpha") || jinja_str_eq(name, "isspace")) {
        bool r = s.n > 0;
        for (size_t i = 0, len; i < s.n && r; i += len) {
            uint32_t cp = jinja_utf8_decode(s.p + i, s.n - i, &len);
            utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
            if (jinja_str_eq(name, "isdigit")) r = c == UTF8PROC_CATEGORY_ND;
            else if (jinja_str_eq(name, "isspace")) r = jinja_is_space(cp);
            else r = c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LL || c == UTF8PROC_CATEGORY_LT ||
                     c == UTF8PROC_CATEGORY_LM || c == UTF8PROC_CATEGORY_LO;
        }
        *out = jinja_bool(r);
        return true;
    }
    return jinja_builtin_fail(ev, at, "'str' object has no method '%.*s'", (int)name.n, name.p);
}
