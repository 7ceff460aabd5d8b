/* vocab/jinja_filters.c - the filters the interpreter knows, and the tables of filter and test names:
 *
 *   abs attr capitalize count d default dictsort e escape first float indent int items join last
 *   length list lower map max min reject rejectattr replace reverse round safe select selectattr
 *   sort string sum title tojson trim unique upper
 *
 * Each behaves as its Jinja2 counterpart does on the inputs chat templates give it (sort, unique,
 * dictsort, min and max compare strings case-insensitively unless case_sensitive=true); tojson is
 * HF's (json.dumps with ensure_ascii=False), not Jinja's HTML-safe one.
 */
#include "vocab/jinja_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

/* ---- sorting -------------------------------------------------------------------------------- */

typedef struct sort_ctx {
    jinja_eval *ev;
    const jinja_node *at;
    bool case_sensitive, reverse;
    jinja_str attribute; /* .p NULL: none */
    bool by_value;       /* dictsort by='value' */
} sort_ctx;

static jinja_value sort_key(const sort_ctx *sc, jinja_value v) {
    if (sc->attribute.p) v = jinja_attribute_path(v, sc->attribute);
    return v;
}

/* -1/0/1 into *out; strings compare case-insensitively (ASCII and Unicode lower) unless asked. */
static bool sort_compare(const sort_ctx *sc, jinja_value a, jinja_value b, int *out) {
    a = sort_key(sc, a);
    b = sort_key(sc, b);
    if (a.type == JINJA_STRING && b.type == JINJA_STRING && !sc->case_sensitive) {
        size_t i = 0, j = 0, la, lb;
        while (i < a.s.n && j < b.s.n) {
            int32_t ca = utf8proc_tolower((utf8proc_int32_t)jinja_utf8_decode(a.s.p + i, a.s.n - i, &la));
            int32_t cb = utf8proc_tolower((utf8proc_int32_t)jinja_utf8_decode(b.s.p + j, b.s.n - j, &lb));
            if (ca != cb) {
                *out = ca < cb ? -1 : 1;
                return true;
            }
            i += la;
            j += lb;
        }
        *out = (i < a.s.n) - (j < b.s.n);
        return true;
    }
    bool lt, gt;
    jinja_value args_v[1] = {b};
    jinja_args args = {.pos = args_v, .n_pos = 1};
    if (!jinja_apply_test(sc->ev, sc->at, (jinja_str){"lt", 2}, a, &args, &lt)) return false;
    if (!jinja_apply_test(sc->ev, sc->at, (jinja_str){"gt", 2}, a, &args, &gt)) return false;
    *out = lt ? -1 : gt ? 1 : 0;
    return true;
}

/* Stable merge sort of items[0..n) using tmp[0..n). */
static bool merge_sort(const sort_ctx *sc, jinja_value *items, jinja_value *tmp, size_t n) {
    if (n < 2) return true;
    size_t mid = n / 2;
    if (!merge_sort(sc, items, tmp, mid) || !merge_sort(sc, items + mid, tmp, n - mid)) return false;
    size_t i = 0, j = mid, k = 0;
    while (i < mid && j < n) {
        int c;
        if (!sort_compare(sc, items[j], items[i], &c)) return false;
        if (sc->reverse) c = -c;
        tmp[k++] = c < 0 ? items[j++] : items[i++];
    }
    while (i < mid) tmp[k++] = items[i++];
    while (j < n) tmp[k++] = items[j++];
    memcpy(items, tmp, n * sizeof *items);
    return true;
}

static bool sorted_copy(sort_ctx *sc, jinja_list *src, jinja_list **out) {
    jinja_list *l = jinja_list_new(sc->ev->arena, src->n);
    jinja_value *tmp = jinja_arena_alloc(sc->ev->arena, (src->n + 1) * sizeof *tmp);
    if (!l || !tmp) return jinja_builtin_no_memory(sc->ev);
    memcpy(l->items, src->items, src->n * sizeof *l->items);
    l->n = src->n;
    if (!merge_sort(sc, l->items, tmp, l->n)) return false;
    *out = l;
    return true;
}

/* ---- filters -------------------------------------------------------------------------------- */

static const char *const FILTERS[] = {
    "abs", "attr", "capitalize", "count", "d", "default", "dictsort", "e", "escape", "first", "float", "indent",
    "int", "items", "join", "last", "length", "list", "lower", "map", "max", "min", "reject", "rejectattr",
    "replace", "reverse", "round", "safe", "select", "selectattr", "sort", "string", "sum", "title", "tojson",
    "trim", "unique", "upper", NULL};

static const char *const TESTS[] = {
    "boolean", "callable", "defined", "divisibleby", "eq", "equalto", "escaped", "even", "false", "filter", "float",
    "ge", "gt", "in", "integer", "iterable", "le", "lower", "lt", "mapping", "ne", "none", "number", "odd", "sameas",
    "sequence", "string", "test", "true", "undefined", "upper", "==", "!=", "<", "<=", ">", ">=", NULL};

static bool in_table(const char *const *table, jinja_str name) {
    for (size_t i = 0; table[i]; i++)
        if (jinja_str_eq(name, table[i])) return true;
    return false;
}

bool jinja_filter_exists(jinja_str name) { return in_table(FILTERS, name); }
bool jinja_test_exists(jinja_str name) { return in_table(TESTS, name); }

/* select/reject/selectattr/rejectattr */
static bool select_items(jinja_eval *ev, const jinja_node *at, jinja_value v, const jinja_args *args, bool by_attr,
                         bool keep_when, jinja_value *out) {
    jinja_list *items, *kept = jinja_list_new(ev->arena, 0);
    if (!kept) return jinja_builtin_no_memory(ev);
    if (!jinja_iterate(ev, at, v, &items)) return false;
    size_t first_test_arg = by_attr ? 1 : 0;
    jinja_str attr = {NULL, 0};
    if (by_attr && (args->n_pos < 1 || args->pos[0].type != JINJA_STRING))
        return jinja_builtin_fail(ev, at, "selectattr/rejectattr need an attribute name");
    if (by_attr) attr = args->pos[0].s;
    bool has_test = args->n_pos > first_test_arg;
    jinja_str test_name = {NULL, 0};
    if (has_test) {
        if (args->pos[first_test_arg].type != JINJA_STRING) return jinja_builtin_fail(ev, at, "the test name must be a string");
        test_name = args->pos[first_test_arg].s;
        if (!jinja_test_exists(test_name)) return jinja_builtin_fail(ev, at, "no test named '%.*s'", (int)test_name.n, test_name.p);
    }
    jinja_args test_args = {.pos = args->pos + (has_test ? first_test_arg + 1 : args->n_pos),
                            .n_pos = has_test ? args->n_pos - first_test_arg - 1 : 0};
    for (size_t i = 0; i < items->n; i++) {
        jinja_value item = by_attr ? jinja_attribute_path(items->items[i], attr) : items->items[i];
        bool r = jinja_truthy(item);
        if (has_test && !jinja_apply_test(ev, at, test_name, item, &test_args, &r)) return false;
        if (r == keep_when && !jinja_list_push(ev->arena, kept, items->items[i])) return jinja_builtin_no_memory(ev);
    }
    *out = jinja_list_value(kept);
    return true;
}

static bool filter_map(jinja_eval *ev, const jinja_node *at, jinja_value v, const jinja_args *args, jinja_value *out) {
    jinja_list *items, *mapped = jinja_list_new(ev->arena, 0);
    if (!mapped) return jinja_builtin_no_memory(ev);
    if (!jinja_iterate(ev, at, v, &items)) return false;
    jinja_value attr_v, dflt = jinja_undefined(NULL, 0);
    bool by_attr = false;
    for (size_t k = 0; k < args->n_kw; k++) {
        if (jinja_str_eq(args->kw_names[k], "attribute")) {
            attr_v = args->kw[k];
            by_attr = true;
        } else if (jinja_str_eq(args->kw_names[k], "default")) {
            dflt = args->kw[k];
        }
    }
    if (!by_attr && (args->n_pos < 1 || args->pos[0].type != JINJA_STRING))
        return jinja_builtin_fail(ev, at, "map() needs a filter name or attribute=");
    if (by_attr && attr_v.type != JINJA_STRING) return jinja_builtin_fail(ev, at, "map(attribute=) needs a string");
    if (!by_attr && !jinja_filter_exists(args->pos[0].s))
        return jinja_builtin_fail(ev, at, "no filter named '%.*s'", (int)args->pos[0].s.n, args->pos[0].s.p);
    jinja_args rest = {.pos = args->pos + (by_attr ? 0 : 1), .n_pos = by_attr ? 0 : args->n_pos - 1};
    for (size_t i = 0; i < items->n; i++) {
        jinja_value r;
        if (by_attr) {
            r = jinja_attribute_path(items->items[i], attr_v.s);
            if (r.type == JINJA_UNDEFINED && dflt.type != JINJA_UNDEFINED) r = dflt;
        } else if (!jinja_apply_filter(ev, at, args->pos[0].s, items->items[i], &rest, &r)) {
            return false;
        }
        if (!jinja_list_push(ev->arena, mapped, r)) return jinja_builtin_no_memory(ev);
    }
    *out = jinja_list_value(mapped);
    return true;
}

static bool filter_indent(jinja_eval *ev, const jinja_node *at, jinja_str s, const jinja_args *args, jinja_value *out) {
    jinja_value width_v;
    jinja_str pad = {"    ", 4};
    char spaces[256];
    if (jinja_arg(args, 0, "width", &width_v)) {
        if (width_v.type == JINJA_STRING) {
            pad = width_v.s;
        } else if (width_v.type == JINJA_INT && width_v.i >= 0 && width_v.i < (int64_t)sizeof spaces) {
            memset(spaces, ' ', (size_t)width_v.i);
            pad = (jinja_str){spaces, (size_t)width_v.i};
        } else {
            return jinja_builtin_fail(ev, at, "indent() width must be a string or an integer below 256");
        }
    }
    bool first = jinja_arg_bool(args, 1, "first", false), blank = jinja_arg_bool(args, 2, "blank", false);
    /* Jinja appends "\n" and splits lines (which drops that last empty line) */
    jinja_buf tmp = {.arena = ev->arena};
    if (!jinja_buf_append(&tmp, s.p, s.n, ev->err) || !jinja_buf_append(&tmp, "\n", 1, ev->err)) return false;
    jinja_list *lines;
    if (!jinja_splitlines(ev, (jinja_str){tmp.p, tmp.n}, &lines)) return false;
    jinja_buf b = {.arena = ev->arena, .max_bytes = ev->limits.max_output_bytes};
    if (first && !jinja_buf_append(&b, pad.p, pad.n, ev->err)) return false;
    for (size_t i = 0; i < lines->n; i++) {
        jinja_str line = lines->items[i].s;
        if (i > 0) {
            if (!jinja_buf_append(&b, "\n", 1, ev->err)) return false;
            if ((blank || line.n) && !jinja_buf_append(&b, pad.p, pad.n, ev->err)) return false;
        }
        if (!jinja_buf_append(&b, line.p, line.n, ev->err)) return false;
    }
    *out = jinja_str_value(&b);
    return true;
}

static bool to_number(jinja_value v, bool want_int, jinja_value *out) {
    if (v.type == JINJA_INT || v.type == JINJA_BOOL) {
        *out = want_int ? jinja_int(v.type == JINJA_INT ? v.i : v.b) : jinja_float(v.type == JINJA_INT ? (double)v.i : v.b);
        return true;
    }
    if (v.type == JINJA_FLOAT) {
        if (want_int && (isnan(v.f) || fabs(v.f) >= 9.2e18)) return false;
        *out = want_int ? jinja_int((int64_t)v.f) : v;
        return true;
    }
    if (v.type != JINJA_STRING) return false;
    jinja_str s = jinja_strip(v.s, true, true);
    char tmp[64];
    size_t n = 0;
    for (size_t i = 0; i < s.n && n < sizeof tmp - 1; i++)
        if (s.p[i] != '_') tmp[n++] = s.p[i];
    tmp[n] = '\0';
    if (n == 0 || s.n >= sizeof tmp) return false;
    char *end;
    if (want_int) {
        long long i = strtoll(tmp, &end, 10);
        if (*end == '\0') {
            *out = jinja_int(i);
            return true;
        }
    }
    double f = strtod(tmp, &end);
    if (*end != '\0') return false;
    if (want_int && (isnan(f) || fabs(f) >= 9.2e18)) return false;
    *out = want_int ? jinja_int((int64_t)f) : jinja_float(f);
    return true;
}

bool jinja_apply_filter(jinja_eval *ev, const jinja_node *at, jinja_str name, jinja_value v, const jinja_args *args,
                        jinja_value *out) {
    jinja_str s;
    jinja_list *items;
    jinja_value a0;
    if (jinja_str_eq(name, "default") || jinja_str_eq(name, "d")) {
        bool boolean = jinja_arg_bool(args, 1, "boolean", false);
        bool use_default = v.type == JINJA_UNDEFINED || (boolean && !jinja_truthy(v));
        if (!use_default) *out = v;
        else if (!jinja_arg(args, 0, "default_value", out)) *out = jinja_string("", 0);
        return true;
    }
    if (jinja_str_eq(name, "length") || jinja_str_eq(name, "count")) {
        switch (v.type) {
        case JINJA_UNDEFINED: *out = jinja_int(0); return true;
        case JINJA_STRING: *out = jinja_int((int64_t)jinja_utf8_count(v.s.p, v.s.n)); return true;
        case JINJA_LIST: *out = jinja_int((int64_t)v.list->n); return true;
        case JINJA_DICT: if (!v.dict->is_namespace) { *out = jinja_int((int64_t)v.dict->n); return true; } break;
        default: break;
        }
        return jinja_builtin_fail(ev, at, "object of type '%s' has no len()", jinja_type_name(v));
    }
    if (jinja_str_eq(name, "string")) {
        if (!jinja_to_str(ev->arena, v, &s, ev->err)) return false;
        *out = jinja_string(s.p, s.n);
        return true;
    }
    if (jinja_str_eq(name, "safe")) {
        *out = v;
        return true;
    }
    if (jinja_str_eq(name, "tojson")) {
        /* HF's signature: tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False) */
        int64_t indent;
        if (!jinja_arg_int(ev, at, args, 1, "indent", -1, &indent)) return false;
        bool ensure_ascii = jinja_arg_bool(args, 0, "ensure_ascii", false), sort_keys = jinja_arg_bool(args, 3, "sort_keys", false);
        jinja_value separators;
        if (jinja_arg(args, 2, "separators", &separators) && separators.type != JINJA_NONE)
            return jinja_builtin_fail(ev, at, "tojson(separators=...) is not supported");
        jinja_buf b = {.arena = ev->arena, .max_bytes = ev->limits.max_output_bytes};
        if (!jinja_json_dump(&b, v, indent > 64 ? 64 : (int)indent, sort_keys, ensure_ascii, 0, ev->err)) {
            if (ev->err->line == 0) {
                ev->err->line = at->line;
                ev->err->column = at->column;
            }
            return false;
        }
        *out = jinja_str_value(&b);
        return true;
    }
    if (jinja_str_eq(name, "items")) {
        if (v.type == JINJA_UNDEFINED) {
            if (!(items = jinja_list_new(ev->arena, 0))) return jinja_builtin_no_memory(ev);
            *out = jinja_list_value(items);
            return true;
        }
        if (v.type != JINJA_DICT) return jinja_builtin_fail(ev, at, "can only get item pairs from a mapping, not '%s'", jinja_type_name(v));
        return jinja_call_method(ev, at, v, (jinja_str){"items", 5}, args, out);
    }
    if (jinja_str_eq(name, "dictsort")) {
        if (v.type != JINJA_DICT) return jinja_builtin_fail(ev, at, "dictsort needs a mapping, not '%s'", jinja_type_name(v));
        jinja_value pairs;
        jinja_args none = {0};
        if (!jinja_call_method(ev, at, v, (jinja_str){"items", 5}, &none, &pairs)) return false;
        jinja_str by;
        if (!jinja_arg_str(ev, at, args, 1, "by", (jinja_str){"key", 3}, &by)) return false;
        sort_ctx sc = {.ev = ev, .at = at, .case_sensitive = jinja_arg_bool(args, 0, "case_sensitive", false),
                       .reverse = jinja_arg_bool(args, 2, "reverse", false)};
        sc.attribute = jinja_str_eq(by, "value") ? (jinja_str){"1", 1} : (jinja_str){"0", 1};
        if (!sorted_copy(&sc, pairs.list, &items)) return false;
        *out = jinja_list_value(items);
        return true;
    }
    if (jinja_str_eq(name, "select") || jinja_str_eq(name, "reject"))
        return select_items(ev, at, v, args, false, jinja_str_eq(name, "select"), out);
    if (jinja_str_eq(name, "selectattr") || jinja_str_eq(name, "rejectattr"))
        return select_items(ev, at, v, args, true, jinja_str_eq(name, "selectattr"), out);
    if (jinja_str_eq(name, "map")) return filter_map(ev, at, v, args, out);
    if (jinja_str_eq(name, "attr")) {
        if (!jinja_arg(args, 0, "name", &a0) || a0.type != JINJA_STRING) return jinja_builtin_fail(ev, at, "attr() needs a name");
        *out = v.type == JINJA_DICT ? jinja_attribute_path(v, a0.s) : jinja_undefined(a0.s.p, a0.s.n);
        return true;
    }
    if (jinja_str_eq(name, "list") || jinja_str_eq(name, "first") || jinja_str_eq(name, "last") ||
        jinja_str_eq(name, "reverse") || jinja_str_eq(name, "sort") || jinja_str_eq(name, "unique") ||
        jinja_str_eq(name, "join") || jinja_str_eq(name, "sum") || jinja_str_eq(name, "max") || jinja_str_eq(name, "min")) {
        if (jinja_str_eq(name, "reverse") && v.type == JINJA_STRING) {
            jinja_buf b = {.arena = ev->arena};
            for (size_t end = v.s.n; end > 0;) {
                size_t start = end - 1;
                while (start > 0 && ((unsigned char)v.s.p[start] & 0xc0) == 0x80) start--;
                if (!jinja_buf_append(&b, v.s.p + start, end - start, ev->err)) return false;
                end = start;
            }
            *out = jinja_str_value(&b);
            return true;
        }
        if (!jinja_iterate(ev, at, v, &items)) return false;
        if (jinja_str_eq(name, "list")) {
            jinja_list *copy = jinja_list_new(ev->arena, items->n);
            if (!copy) return jinja_builtin_no_memory(ev);
            memcpy(copy->items, items->items, items->n * sizeof *items->items);
            copy->n = items->n;
            *out = jinja_list_value(copy);
            return true;
        }
        if (jinja_str_eq(name, "first") || jinja_str_eq(name, "last")) {
            *out = items->n == 0 ? jinja_undefined(NULL, 0) : items->items[jinja_str_eq(name, "first") ? 0 : items->n - 1];
            return true;
        }
        if (jinja_str_eq(name, "reverse")) {
            jinja_list *r = jinja_list_new(ev->arena, items->n);
            if (!r) return jinja_builtin_no_memory(ev);
            for (size_t i = 0; i < items->n; i++) r->items[i] = items->items[items->n - 1 - i];
            r->n = items->n;
            *out = jinja_list_value(r);
            return true;
        }
        if (jinja_str_eq(name, "join")) {
            jinja_str sep, attr;
            if (!jinja_arg_str(ev, at, args, 0, "d", (jinja_str){"", 0}, &sep) ||
                !jinja_arg_str(ev, at, args, 1, "attribute", (jinja_str){NULL, 0}, &attr))
                return false;
            jinja_buf b = {.arena = ev->arena, .max_bytes = ev->limits.max_output_bytes};
            for (size_t i = 0; i < items->n; i++) {
                jinja_value item = attr.p ? jinja_attribute_path(items->items[i], attr) : items->items[i];
                if ((i && !jinja_buf_append(&b, sep.p, sep.n, ev->err)) || !jinja_write_str(&b, item, ev->err))
                    return false;
            }
            *out = jinja_str_value(&b);
            return true;
        }
        if (jinja_str_eq(name, "sum")) {
            jinja_str attr;
            jinja_value total;
            if (!jinja_arg_str(ev, at, args, 0, "attribute", (jinja_str){NULL, 0}, &attr)) return false;
            if (!jinja_arg(args, 1, "start", &total)) total = jinja_int(0);
            for (size_t i = 0; i < items->n; i++) {
                jinja_value item = attr.p ? jinja_attribute_path(items->items[i], attr) : items->items[i];
                if (!((item.type == JINJA_INT || item.type == JINJA_FLOAT || item.type == JINJA_BOOL) &&
                      (total.type == JINJA_INT || total.type == JINJA_FLOAT)))
                    return jinja_builtin_fail(ev, at, "sum() can only add numbers, not '%s'", jinja_type_name(item));
                double f = (total.type == JINJA_FLOAT ? total.f : (double)total.i) +
                           (item.type == JINJA_FLOAT ? item.f : item.type == JINJA_INT ? (double)item.i : item.b);
                if (total.type == JINJA_INT && item.type != JINJA_FLOAT) {
                    int64_t add = item.type == JINJA_INT ? item.i : item.b;
                    if (__builtin_add_overflow(total.i, add, &total.i)) return jinja_builtin_fail(ev, at, "integer overflow in sum()");
                } else {
                    total = jinja_float(f);
                }
            }
            *out = total;
            return true;
        }
        sort_ctx sc = {.ev = ev, .at = at};
        jinja_str attr;
        size_t cs_index = jinja_str_eq(name, "sort") ? 1 : 0;
        sc.reverse = jinja_str_eq(name, "sort") && jinja_arg_bool(args, 0, "reverse", false);
        sc.case_sensitive = jinja_arg_bool(args, cs_index, "case_sensitive", false);
        if (!jinja_arg_str(ev, at, args, cs_index + 1, "attribute", (jinja_str){NULL, 0}, &attr)) return false;
        sc.attribute = attr;
        if (jinja_str_eq(name, "sort")) {
            if (!sorted_copy(&sc, items, &items)) return false;
            *out = jinja_list_value(items);
            return true;
        }
        if (jinja_str_eq(name, "unique")) {
            jinja_list *u = jinja_list_new(ev->arena, 0);
            if (!u) return jinja_builtin_no_memory(ev);
            for (size_t i = 0; i < items->n; i++) {
                bool seen = false;
                for (size_t k = 0; k < u->n && !seen; k++) {
                    int c;
                    if (!sort_compare(&sc, items->items[i], u->items[k], &c)) return false;
                    seen = c == 0;
                }
                if (!seen && !jinja_list_push(ev->arena, u, items->items[i])) return jinja_builtin_no_memory(ev);
            }
            *out = jinja_list_value(u);
            return true;
        }
        /* max / min */
        if (items->n == 0) {
            *out = jinja_undefined(NULL, 0);
            return true;
        }
        jinja_value best = items->items[0];
        for (size_t i = 1; i < items->n; i++) {
            int c;
            if (!sort_compare(&sc, items->items[i], best, &c)) return false;
            if (jinja_str_eq(name, "max") ? c > 0 : c < 0) best = items->items[i];
        }
        *out = best;
        return true;
    }
    if (jinja_str_eq(name, "int") || jinja_str_eq(name, "float")) {
        bool want_int = jinja_str_eq(name, "int");
        if (to_number(v, want_int, out)) return true;
        if (!jinja_arg(args, 0, "default", out)) *out = want_int ? jinja_int(0) : jinja_float(0.0);
        return true;
    }
    if (jinja_str_eq(name, "abs")) {
        if (v.type == JINJA_INT) *out = v.i == INT64_MIN ? jinja_float(9.223372036854775808e18) : jinja_int(v.i < 0 ? -v.i : v.i);
        else if (v.type == JINJA_FLOAT) *out = jinja_float(fabs(v.f));
        else if (v.type == JINJA_BOOL) *out = jinja_int(v.b);
        else return jinja_builtin_fail(ev, at, "bad operand type for abs(): '%s'", jinja_type_name(v));
        return true;
    }
    if (jinja_str_eq(name, "round")) {
        int64_t precision;
        jinja_str method;
        if (!jinja_arg_int(ev, at, args, 0, "precision", 0, &precision) ||
            !jinja_arg_str(ev, at, args, 1, "method", (jinja_str){"common", 6}, &method))
            return false;
        if (v.type != JINJA_INT && v.type != JINJA_FLOAT && v.type != JINJA_BOOL)
            return jinja_builtin_fail(ev, at, "round() needs a number, not '%s'", jinja_type_name(v));
        double x = v.type == JINJA_FLOAT ? v.f : v.type == JINJA_INT ? (double)v.i : v.b;
        double scale = pow(10.0, (double)precision);
        double y = x * scale;
        if (jinja_str_eq(method, "ceil")) y = ceil(y);
        else if (jinja_str_eq(method, "floor")) y = floor(y);
        else if (jinja_str_eq(method, "common")) y = nearbyint(y); /* ties to even, as Python's round() */
        else return jinja_builtin_fail(ev, at, "round() method must be 'common', 'ceil' or 'floor'");
        *out = jinja_float(y / scale);
        return true;
    }
    if (jinja_str_eq(name, "e") || jinja_str_eq(name, "escape")) {
        if (!jinja_to_str(ev->arena, v, &s, ev->err)) return false;
        jinja_buf b = {.arena = ev->arena, .max_bytes = ev->limits.max_output_bytes};
        for (size_t i = 0; i < s.n; i++) {
            const char *rep = s.p[i] == '&' ? "&amp;" : s.p[i] == '<' ? "&lt;" : s.p[i] == '>' ? "&gt;"
                            : s.p[i] == '"' ? "&#34;" : s.p[i] == '\'' ? "&#39;" : NULL;
            if (!(rep ? jinja_buf_append_cstr(&b, rep, ev->err) : jinja_buf_append(&b, s.p + i, 1, ev->err))) return false;
        }
        *out = jinja_str_value(&b);
        return true;
    }
    /* the rest work on strings; Jinja converts the value with str() first */
    if (v.type == JINJA_UNDEFINED && v.s.n == 0) v = jinja_string("", 0);
    if (!jinja_to_str(ev->arena, v, &s, ev->err)) return false;
    if (jinja_str_eq(name, "trim")) return jinja_strip_chars(ev, at, s, args, true, true, out);
    if (jinja_str_eq(name, "upper")) return jinja_change_case(ev, s, JINJA_CASE_UPPER, out);
    if (jinja_str_eq(name, "lower")) return jinja_change_case(ev, s, JINJA_CASE_LOWER, out);
    if (jinja_str_eq(name, "title")) return jinja_change_case(ev, s, JINJA_CASE_TITLE_FILTER, out);
    if (jinja_str_eq(name, "capitalize")) return jinja_change_case(ev, s, JINJA_CASE_CAPITALIZE, out);
    if (jinja_str_eq(name, "replace")) return jinja_replace(ev, at, s, args, out);
    if (jinja_str_eq(name, "indent")) return filter_indent(ev, at, s, args, out);
    return jinja_builtin_fail(ev, at, "no filter named '%.*s'", (int)name.n, name.p);
}
