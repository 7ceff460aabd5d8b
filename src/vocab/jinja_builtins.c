/* vocab/jinja_builtins.c - the filters, tests, global functions and methods the interpreter knows.
 *
 * Filters: abs attr capitalize count d default dictsort e escape first float indent int items join
 *          last length list lower map max min reject rejectattr replace reverse round safe select
 *          selectattr sort string sum title tojson trim unique upper
 * Tests:   boolean callable defined divisibleby eq equalto escaped even false filter float ge gt
 *          in integer iterable le lower lt mapping ne none number odd sameas sequence string test
 *          true undefined upper == != < <= > >=
 * Globals: range namespace dict raise_exception (HF) strftime_now (HF)
 * Methods: str: strip lstrip rstrip startswith endswith split splitlines upper lower title
 *          capitalize replace find count join isdigit isalpha isspace
 *          dict: items keys values get
 * Each behaves as its Jinja2 / Python counterpart does on the inputs chat templates give it;
 * tojson is HF's (json.dumps with ensure_ascii=False), not Jinja's HTML-safe one. Case mapping is
 * per code point (utf8proc), so e.g. "ß".upper() stays "ß" where Python gives "SS".
 */
#include "vocab/jinja_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <utf8proc.h>

/* ---- helpers -------------------------------------------------------------------------------- */

static bool fail(jinja_eval *ev, const jinja_node *at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool fail(jinja_eval *ev, const jinja_node *at, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return jinja_fail(ev->err, JINJA_ERROR_RUNTIME, at->line, at->column, "%s", msg);
}
static bool no_memory(jinja_eval *ev) {
    return jinja_fail(ev->err, JINJA_ERROR_LIMIT, 0, 0, "the template needs more memory than allowed");
}

/* Argument i (positional) or by keyword; false when absent. */
static bool arg(const jinja_args *args, size_t i, const char *name, jinja_value *out) {
    for (size_t k = 0; k < args->n_kw; k++)
        if (name && jinja_str_eq(args->kw_names[k], name)) {
            *out = args->kw[k];
            return true;
        }
    if (i < args->n_pos) {
        *out = args->pos[i];
        return true;
    }
    return false;
}

static bool arg_str(jinja_eval *ev, const jinja_node *at, const jinja_args *args, size_t i, const char *name,
                    jinja_str dflt, jinja_str *out) {
    jinja_value v;
    if (!arg(args, i, name, &v) || v.type == JINJA_NONE) {
        *out = dflt;
        return true;
    }
    if (v.type != JINJA_STRING) return fail(ev, at, "argument '%s' must be a string, not '%s'", name, jinja_type_name(v));
    *out = v.s;
    return true;
}

static bool arg_int(jinja_eval *ev, const jinja_node *at, const jinja_args *args, size_t i, const char *name,
                    int64_t dflt, int64_t *out) {
    jinja_value v;
    if (!arg(args, i, name, &v) || v.type == JINJA_NONE) {
        *out = dflt;
        return true;
    }
    if (v.type == JINJA_BOOL) v = jinja_int(v.b);
    if (v.type != JINJA_INT) return fail(ev, at, "argument '%s' must be an integer, not '%s'", name, jinja_type_name(v));
    *out = v.i;
    return true;
}

static bool arg_bool(const jinja_args *args, size_t i, const char *name, bool dflt) {
    jinja_value v;
    return arg(args, i, name, &v) ? jinja_truthy(v) : dflt;
}

static jinja_value str_value(jinja_buf *b) { return jinja_string(b->p ? b->p : "", b->n); }
static jinja_value list_value(jinja_list *l) { return (jinja_value){.type = JINJA_LIST, .list = l}; }

static bool need_string(jinja_eval *ev, const jinja_node *at, jinja_value v, const char *what, jinja_str *out) {
    if (v.type == JINJA_STRING) {
        *out = v.s;
        return true;
    }
    if (v.type == JINJA_UNDEFINED && v.s.n) return fail(ev, at, "'%.*s' is undefined", (int)v.s.n, v.s.p);
    return fail(ev, at, "%s expects a string, not '%s'", what, jinja_type_name(v));
}

typedef enum { CASE_UPPER, CASE_LOWER, CASE_TITLE_FILTER, CASE_TITLE_METHOD, CASE_CAPITALIZE } case_mode;

static bool is_cased(uint32_t cp) {
    return utf8proc_toupper((utf8proc_int32_t)cp) != (utf8proc_int32_t)cp ||
           utf8proc_tolower((utf8proc_int32_t)cp) != (utf8proc_int32_t)cp;
}

static bool change_case(jinja_eval *ev, jinja_str s, case_mode mode, jinja_value *out) {
    jinja_buf b = {.arena = ev->arena};
    bool at_word_start = true; /* title filter: after - ( { [ < or whitespace; method: after uncased */
    bool first = true;
    for (size_t i = 0, len; i < s.n; i += len) {
        uint32_t cp = jinja_utf8_decode(s.p + i, s.n - i, &len);
        bool upper;
        switch (mode) {
        case CASE_UPPER: upper = true; break;
        case CASE_LOWER: upper = false; break;
        case CASE_CAPITALIZE: upper = first; break;
        case CASE_TITLE_FILTER: {
            bool delim = cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<' || jinja_is_space(cp);
            upper = at_word_start;
            at_word_start = delim;
            break;
        }
        default: /* CASE_TITLE_METHOD */
            upper = at_word_start;
            at_word_start = !is_cased(cp);
            break;
        }
        first = false;
        uint32_t mapped = (uint32_t)(upper ? utf8proc_toupper((utf8proc_int32_t)cp) : utf8proc_tolower((utf8proc_int32_t)cp));
        char enc[4];
        size_t n = mapped == cp ? len : jinja_utf8_encode(mapped, enc);
        if (!jinja_buf_append(&b, mapped == cp ? s.p + i : enc, n, ev->err)) return false;
    }
    *out = str_value(&b);
    return true;
}

/* Python's str.splitlines() line boundaries; returns the length of the boundary at p (0 if none). */
static size_t line_break_at(const char *p, size_t n) {
    if (p[0] == '\r') return n > 1 && p[1] == '\n' ? 2 : 1;
    if (p[0] == '\n' || p[0] == '\v' || p[0] == '\f' || (p[0] >= 0x1c && p[0] <= 0x1e)) return 1;
    size_t len;
    uint32_t cp = jinja_utf8_decode(p, n, &len);
    return cp == 0x85 || cp == 0x2028 || cp == 0x2029 ? len : 0;
}

static bool splitlines(jinja_eval *ev, jinja_str s, jinja_list **out) {
    jinja_list *l = jinja_list_new(ev->arena, 0);
    if (!l) return no_memory(ev);
    size_t start = 0, i = 0;
    while (i < s.n) {
        size_t br = line_break_at(s.p + i, s.n - i);
        if (!br) {
            i++;
            continue;
        }
        if (!jinja_list_push(ev->arena, l, jinja_string(s.p + start, i - start))) return no_memory(ev);
        i += br;
        start = i;
    }
    if (start < s.n && !jinja_list_push(ev->arena, l, jinja_string(s.p + start, s.n - start))) return no_memory(ev);
    *out = l;
    return true;
}

static bool split(jinja_eval *ev, const jinja_node *at, jinja_str s, const jinja_args *args, jinja_value *out) {
    jinja_value sep_v;
    int64_t maxsplit;
    if (!arg_int(ev, at, args, 1, "maxsplit", -1, &maxsplit)) return false;
    jinja_list *l = jinja_list_new(ev->arena, 0);
    if (!l) return no_memory(ev);
    if (!arg(args, 0, "sep", &sep_v) || sep_v.type == JINJA_NONE) { /* runs of whitespace */
        size_t i = 0, len;
        for (;;) {
            while (i < s.n && jinja_is_space(jinja_utf8_decode(s.p + i, s.n - i, &len))) i += len;
            if (i >= s.n) break;
            size_t start = i;
            if (maxsplit >= 0 && (int64_t)l->n >= maxsplit) {
                jinja_str rest = jinja_strip((jinja_str){s.p + start, s.n - start}, false, true);
                if (!jinja_list_push(ev->arena, l, jinja_string(rest.p, rest.n))) return no_memory(ev);
                break;
            }
            while (i < s.n && !jinja_is_space(jinja_utf8_decode(s.p + i, s.n - i, &len))) i += len;
            if (!jinja_list_push(ev->arena, l, jinja_string(s.p + start, i - start))) return no_memory(ev);
        }
    } else {
        jinja_str sep;
        if (!need_string(ev, at, sep_v, "split()", &sep)) return false;
        if (sep.n == 0) return fail(ev, at, "empty separator");
        size_t start = 0;
        for (;;) {
            const char *hit = maxsplit >= 0 && (int64_t)l->n >= maxsplit
                                  ? NULL
                                  : memmem(s.p + start, s.n - start, sep.p, sep.n);
            if (!hit) break;
            if (!jinja_list_push(ev->arena, l, jinja_string(s.p + start, (size_t)(hit - s.p) - start)))
                return no_memory(ev);
            start = (size_t)(hit - s.p) + sep.n;
        }
        if (!jinja_list_push(ev->arena, l, jinja_string(s.p + start, s.n - start))) return no_memory(ev);
    }
    *out = list_value(l);
    return true;
}

static bool strip_chars(jinja_eval *ev, const jinja_node *at, jinja_str s, const jinja_args *args, bool left,
                        bool right, jinja_value *out) {
    jinja_str chars;
    if (!arg_str(ev, at, args, 0, "chars", (jinja_str){NULL, 0}, &chars)) return false;
    if (!chars.p) {
        jinja_str r = jinja_strip(s, left, right);
        *out = jinja_string(r.p, r.n);
        return true;
    }
    size_t begin = 0, end = s.n, len;
    while (left && begin < end) { /* characters are code points */
        jinja_utf8_decode(s.p + begin, end - begin, &len);
        bool found = false;
        for (size_t k = 0, cl; k < chars.n && !found; k += cl) {
            jinja_utf8_decode(chars.p + k, chars.n - k, &cl);
            found = cl == len && memcmp(chars.p + k, s.p + begin, len) == 0;
        }
        if (!found) break;
        begin += len;
    }
    while (right && end > begin) {
        size_t start = end - 1;
        while (start > begin && ((unsigned char)s.p[start] & 0xc0) == 0x80) start--;
        bool found = false;
        for (size_t k = 0, cl; k < chars.n && !found; k += cl) {
            jinja_utf8_decode(chars.p + k, chars.n - k, &cl);
            found = cl == end - start && memcmp(chars.p + k, s.p + start, cl) == 0;
        }
        if (!found) break;
        end = start;
    }
    *out = jinja_string(s.p + begin, end - begin);
    return true;
}

static bool replace(jinja_eval *ev, const jinja_node *at, jinja_str s, const jinja_args *args, jinja_value *out) {
    jinja_str old, new_;
    int64_t count;
    if (!arg_str(ev, at, args, 0, "old", (jinja_str){"", 0}, &old) ||
        !arg_str(ev, at, args, 1, "new", (jinja_str){"", 0}, &new_) || !arg_int(ev, at, args, 2, "count", -1, &count))
        return false;
    jinja_buf b = {.arena = ev->arena, .max_bytes = ev->limits.max_output_bytes};
    size_t i = 0;
    int64_t done = 0;
    if (old.n == 0) { /* Python inserts `new` between all characters */
        for (size_t len; i <= s.n && (count < 0 || done < count); i += len, done++) {
            if (!jinja_buf_append(&b, new_.p, new_.n, ev->err)) return false;
            if (i == s.n) {
                i++;
                break;
            }
            jinja_utf8_decode(s.p + i, s.n - i, &len);
            if (!jinja_buf_append(&b, s.p + i, len, ev->err)) return false;
        }
        if (i < s.n && !jinja_buf_append(&b, s.p + i, s.n - i, ev->err)) return false;
        *out = str_value(&b);
        return true;
    }
    while (count < 0 || done < count) {
        const char *hit = memmem(s.p + i, s.n - i, old.p, old.n);
        if (!hit) break;
        size_t k = (size_t)(hit - s.p);
        if (!jinja_buf_append(&b, s.p + i, k - i, ev->err) || !jinja_buf_append(&b, new_.p, new_.n, ev->err))
            return false;
        i = k + old.n;
        done++;
    }
    if (!jinja_buf_append(&b, s.p + i, s.n - i, ev->err)) return false;
    *out = str_value(&b);
    return true;
}

static bool affix_match(jinja_eval *ev, const jinja_node *at, jinja_str s, jinja_value affix, bool prefix, bool *out) {
    if (affix.type == JINJA_LIST) {
        *out = false;
        for (size_t i = 0; i < affix.list->n && !*out; i++)
            if (!affix_match(ev, at, s, affix.list->items[i], prefix, out)) return false;
        return true;
    }
    jinja_str a;
    if (!need_string(ev, at, affix, prefix ? "startswith()" : "endswith()", &a)) return false;
    *out = a.n <= s.n && memcmp(prefix ? s.p : s.p + s.n - a.n, a.p, a.n) == 0;
    return true;
}

/* Follows a dotted attribute path ("a.b") through dicts; undefined when missing. */
static jinja_value attribute_path(jinja_value v, jinja_str path) {
    size_t i = 0;
    while (i <= path.n) {
        size_t j = i;
        while (j < path.n && path.p[j] != '.') j++;
        if (v.type == JINJA_DICT) {
            jinja_value *found = jinja_dict_get(v.dict, path.p + i, j - i);
            v = found ? *found : jinja_undefined(path.p + i, j - i);
        } else if (v.type == JINJA_LIST && j > i && path.p[i] >= '0' && path.p[i] <= '9') {
            size_t idx = (size_t)strtoull(path.p + i, NULL, 10);
            v = idx < v.list->n ? v.list->items[idx] : jinja_undefined(NULL, 0);
        } else {
            return jinja_undefined(path.p + i, j - i);
        }
        i = j + 1;
    }
    return v;
}

/* ---- sorting -------------------------------------------------------------------------------- */

typedef struct sort_ctx {
    jinja_eval *ev;
    const jinja_node *at;
    bool case_sensitive, reverse;
    jinja_str attribute; /* .p NULL: none */
    bool by_value;       /* dictsort by='value' */
} sort_ctx;

static jinja_value sort_key(const sort_ctx *sc, jinja_value v) {
    if (sc->attribute.p) v = attribute_path(v, sc->attribute);
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
    if (!l || !tmp) return no_memory(sc->ev);
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
    if (!kept) return no_memory(ev);
    if (!jinja_iterate(ev, at, v, &items)) return false;
    size_t first_test_arg = by_attr ? 1 : 0;
    jinja_str attr = {NULL, 0};
    if (by_attr && (args->n_pos < 1 || args->pos[0].type != JINJA_STRING))
        return fail(ev, at, "selectattr/rejectattr need an attribute name");
    if (by_attr) attr = args->pos[0].s;
    bool has_test = args->n_pos > first_test_arg;
    jinja_str test_name = {NULL, 0};
    if (has_test) {
        if (args->pos[first_test_arg].type != JINJA_STRING) return fail(ev, at, "the test name must be a string");
        test_name = args->pos[first_test_arg].s;
        if (!jinja_test_exists(test_name)) return fail(ev, at, "no test named '%.*s'", (int)test_name.n, test_name.p);
    }
    jinja_args test_args = {.pos = args->pos + (has_test ? first_test_arg + 1 : args->n_pos),
                            .n_pos = has_test ? args->n_pos - first_test_arg - 1 : 0};
    for (size_t i = 0; i < items->n; i++) {
        jinja_value item = by_attr ? attribute_path(items->items[i], attr) : items->items[i];
        bool r = jinja_truthy(item);
        if (has_test && !jinja_apply_test(ev, at, test_name, item, &test_args, &r)) return false;
        if (r == keep_when && !jinja_list_push(ev->arena, kept, items->items[i])) return no_memory(ev);
    }
    *out = list_value(kept);
    return true;
}

static bool filter_map(jinja_eval *ev, const jinja_node *at, jinja_value v, const jinja_args *args, jinja_value *out) {
    jinja_list *items, *mapped = jinja_list_new(ev->arena, 0);
    if (!mapped) return no_memory(ev);
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
        return fail(ev, at, "map() needs a filter name or attribute=");
    if (by_attr && attr_v.type != JINJA_STRING) return fail(ev, at, "map(attribute=) needs a string");
    if (!by_attr && !jinja_filter_exists(args->pos[0].s))
        return fail(ev, at, "no filter named '%.*s'", (int)args->pos[0].s.n, args->pos[0].s.p);
    jinja_args rest = {.pos = args->pos + (by_attr ? 0 : 1), .n_pos = by_attr ? 0 : args->n_pos - 1};
    for (size_t i = 0; i < items->n; i++) {
        jinja_value r;
        if (by_attr) {
            r = attribute_path(items->items[i], attr_v.s);
            if (r.type == JINJA_UNDEFINED && dflt.type != JINJA_UNDEFINED) r = dflt;
        } else if (!jinja_apply_filter(ev, at, args->pos[0].s, items->items[i], &rest, &r)) {
            return false;
        }
        if (!jinja_list_push(ev->arena, mapped, r)) return no_memory(ev);
    }
    *out = list_value(mapped);
    return true;
}

static bool filter_indent(jinja_eval *ev, const jinja_node *at, jinja_str s, const jinja_args *args, jinja_value *out) {
    jinja_value width_v;
    jinja_str pad = {"    ", 4};
    char spaces[256];
    if (arg(args, 0, "width", &width_v)) {
        if (width_v.type == JINJA_STRING) {
            pad = width_v.s;
        } else if (width_v.type == JINJA_INT && width_v.i >= 0 && width_v.i < (int64_t)sizeof spaces) {
            memset(spaces, ' ', (size_t)width_v.i);
            pad = (jinja_str){spaces, (size_t)width_v.i};
        } else {
            return fail(ev, at, "indent() width must be a string or an integer below 256");
        }
    }
    bool first = arg_bool(args, 1, "first", false), blank = arg_bool(args, 2, "blank", false);
    /* Jinja appends "\n" and splits lines (which drops that last empty line) */
    jinja_buf tmp = {.arena = ev->arena};
    if (!jinja_buf_append(&tmp, s.p, s.n, ev->err) || !jinja_buf_append(&tmp, "\n", 1, ev->err)) return false;
    jinja_list *lines;
    if (!splitlines(ev, (jinja_str){tmp.p, tmp.n}, &lines)) return false;
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
    *out = str_value(&b);
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
        bool boolean = arg_bool(args, 1, "boolean", false);
        bool use_default = v.type == JINJA_UNDEFINED || (boolean && !jinja_truthy(v));
        if (!use_default) *out = v;
        else if (!arg(args, 0, "default_value", out)) *out = jinja_string("", 0);
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
        return fail(ev, at, "object of type '%s' has no len()", jinja_type_name(v));
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
        if (!arg_int(ev, at, args, 1, "indent", -1, &indent)) return false;
        bool ensure_ascii = arg_bool(args, 0, "ensure_ascii", false), sort_keys = arg_bool(args, 3, "sort_keys", false);
        jinja_value separators;
        if (arg(args, 2, "separators", &separators) && separators.type != JINJA_NONE)
            return fail(ev, at, "tojson(separators=...) is not supported");
        jinja_buf b = {.arena = ev->arena, .max_bytes = ev->limits.max_output_bytes};
        if (!jinja_json_dump(&b, v, indent > 64 ? 64 : (int)indent, sort_keys, ensure_ascii, 0, ev->err)) {
            if (ev->err->line == 0) {
                ev->err->line = at->line;
                ev->err->column = at->column;
            }
            return false;
        }
        *out = str_value(&b);
        return true;
    }
    if (jinja_str_eq(name, "items")) {
        if (v.type == JINJA_UNDEFINED) {
            if (!(items = jinja_list_new(ev->arena, 0))) return no_memory(ev);
            *out = list_value(items);
            return true;
        }
        if (v.type != JINJA_DICT) return fail(ev, at, "can only get item pairs from a mapping, not '%s'", jinja_type_name(v));
        return jinja_call_method(ev, at, v, (jinja_str){"items", 5}, args, out);
    }
    if (jinja_str_eq(name, "dictsort")) {
        if (v.type != JINJA_DICT) return fail(ev, at, "dictsort needs a mapping, not '%s'", jinja_type_name(v));
        jinja_value pairs;
        jinja_args none = {0};
        if (!jinja_call_method(ev, at, v, (jinja_str){"items", 5}, &none, &pairs)) return false;
        jinja_str by;
        if (!arg_str(ev, at, args, 1, "by", (jinja_str){"key", 3}, &by)) return false;
        sort_ctx sc = {.ev = ev, .at = at, .case_sensitive = arg_bool(args, 0, "case_sensitive", false),
                       .reverse = arg_bool(args, 2, "reverse", false)};
        sc.attribute = jinja_str_eq(by, "value") ? (jinja_str){"1", 1} : (jinja_str){"0", 1};
        if (!sorted_copy(&sc, pairs.list, &items)) return false;
        *out = list_value(items);
        return true;
    }
    if (jinja_str_eq(name, "select") || jinja_str_eq(name, "reject"))
        return select_items(ev, at, v, args, false, jinja_str_eq(name, "select"), out);
    if (jinja_str_eq(name, "selectattr") || jinja_str_eq(name, "rejectattr"))
        return select_items(ev, at, v, args, true, jinja_str_eq(name, "selectattr"), out);
    if (jinja_str_eq(name, "map")) return filter_map(ev, at, v, args, out);
    if (jinja_str_eq(name, "attr")) {
        if (!arg(args, 0, "name", &a0) || a0.type != JINJA_STRING) return fail(ev, at, "attr() needs a name");
        *out = v.type == JINJA_DICT ? attribute_path(v, a0.s) : jinja_undefined(a0.s.p, a0.s.n);
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
            *out = str_value(&b);
            return true;
        }
        if (!jinja_iterate(ev, at, v, &items)) return false;
        if (jinja_str_eq(name, "list")) {
            jinja_list *copy = jinja_list_new(ev->arena, items->n);
            if (!copy) return no_memory(ev);
            memcpy(copy->items, items->items, items->n * sizeof *items->items);
            copy->n = items->n;
            *out = list_value(copy);
            return true;
        }
        if (jinja_str_eq(name, "first") || jinja_str_eq(name, "last")) {
            *out = items->n == 0 ? jinja_undefined(NULL, 0) : items->items[jinja_str_eq(name, "first") ? 0 : items->n - 1];
            return true;
        }
        if (jinja_str_eq(name, "reverse")) {
            jinja_list *r = jinja_list_new(ev->arena, items->n);
            if (!r) return no_memory(ev);
            for (size_t i = 0; i < items->n; i++) r->items[i] = items->items[items->n - 1 - i];
            r->n = items->n;
            *out = list_value(r);
            return true;
        }
        if (jinja_str_eq(name, "join")) {
            jinja_str sep, attr;
            if (!arg_str(ev, at, args, 0, "d", (jinja_str){"", 0}, &sep) ||
                !arg_str(ev, at, args, 1, "attribute", (jinja_str){NULL, 0}, &attr))
                return false;
            jinja_buf b = {.arena = ev->arena, .max_bytes = ev->limits.max_output_bytes};
            for (size_t i = 0; i < items->n; i++) {
                jinja_value item = attr.p ? attribute_path(items->items[i], attr) : items->items[i];
                if ((i && !jinja_buf_append(&b, sep.p, sep.n, ev->err)) || !jinja_write_str(&b, item, ev->err))
                    return false;
            }
            *out = str_value(&b);
            return true;
        }
        if (jinja_str_eq(name, "sum")) {
            jinja_str attr;
            jinja_value total;
            if (!arg_str(ev, at, args, 0, "attribute", (jinja_str){NULL, 0}, &attr)) return false;
            if (!arg(args, 1, "start", &total)) total = jinja_int(0);
            for (size_t i = 0; i < items->n; i++) {
                jinja_value item = attr.p ? attribute_path(items->items[i], attr) : items->items[i];
                if (!((item.type == JINJA_INT || item.type == JINJA_FLOAT || item.type == JINJA_BOOL) &&
                      (total.type == JINJA_INT || total.type == JINJA_FLOAT)))
                    return fail(ev, at, "sum() can only add numbers, not '%s'", jinja_type_name(item));
                double f = (total.type == JINJA_FLOAT ? total.f : (double)total.i) +
                           (item.type == JINJA_FLOAT ? item.f : item.type == JINJA_INT ? (double)item.i : item.b);
                if (total.type == JINJA_INT && item.type != JINJA_FLOAT) {
                    int64_t add = item.type == JINJA_INT ? item.i : item.b;
                    if (__builtin_add_overflow(total.i, add, &total.i)) return fail(ev, at, "integer overflow in sum()");
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
        sc.reverse = jinja_str_eq(name, "sort") && arg_bool(args, 0, "reverse", false);
        sc.case_sensitive = arg_bool(args, cs_index, "case_sensitive", false);
        if (!arg_str(ev, at, args, cs_index + 1, "attribute", (jinja_str){NULL, 0}, &attr)) return false;
        sc.attribute = attr;
        if (jinja_str_eq(name, "sort")) {
            if (!sorted_copy(&sc, items, &items)) return false;
            *out = list_value(items);
            return true;
        }
        if (jinja_str_eq(name, "unique")) {
            jinja_list *u = jinja_list_new(ev->arena, 0);
            if (!u) return no_memory(ev);
            for (size_t i = 0; i < items->n; i++) {
                bool seen = false;
                for (size_t k = 0; k < u->n && !seen; k++) {
                    int c;
                    if (!sort_compare(&sc, items->items[i], u->items[k], &c)) return false;
                    seen = c == 0;
                }
                if (!seen && !jinja_list_push(ev->arena, u, items->items[i])) return no_memory(ev);
            }
            *out = list_value(u);
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
        if (!arg(args, 0, "default", out)) *out = want_int ? jinja_int(0) : jinja_float(0.0);
        return true;
    }
    if (jinja_str_eq(name, "abs")) {
        if (v.type == JINJA_INT) *out = v.i == INT64_MIN ? jinja_float(9.223372036854775808e18) : jinja_int(v.i < 0 ? -v.i : v.i);
        else if (v.type == JINJA_FLOAT) *out = jinja_float(fabs(v.f));
        else if (v.type == JINJA_BOOL) *out = jinja_int(v.b);
        else return fail(ev, at, "bad operand type for abs(): '%s'", jinja_type_name(v));
        return true;
    }
    if (jinja_str_eq(name, "round")) {
        int64_t precision;
        jinja_str method;
        if (!arg_int(ev, at, args, 0, "precision", 0, &precision) ||
            !arg_str(ev, at, args, 1, "method", (jinja_str){"common", 6}, &method))
            return false;
        if (v.type != JINJA_INT && v.type != JINJA_FLOAT && v.type != JINJA_BOOL)
            return fail(ev, at, "round() needs a number, not '%s'", jinja_type_name(v));
        double x = v.type == JINJA_FLOAT ? v.f : v.type == JINJA_INT ? (double)v.i : v.b;
        double scale = pow(10.0, (double)precision);
        double y = x * scale;
        if (jinja_str_eq(method, "ceil")) y = ceil(y);
        else if (jinja_str_eq(method, "floor")) y = floor(y);
        else if (jinja_str_eq(method, "common")) y = nearbyint(y); /* ties to even, as Python's round() */
        else return fail(ev, at, "round() method must be 'common', 'ceil' or 'floor'");
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
        *out = str_value(&b);
        return true;
    }
    /* the rest work on strings; Jinja converts the value with str() first */
    if (v.type == JINJA_UNDEFINED && v.s.n == 0) v = jinja_string("", 0);
    if (!jinja_to_str(ev->arena, v, &s, ev->err)) return false;
    if (jinja_str_eq(name, "trim")) return strip_chars(ev, at, s, args, true, true, out);
    if (jinja_str_eq(name, "upper")) return change_case(ev, s, CASE_UPPER, out);
    if (jinja_str_eq(name, "lower")) return change_case(ev, s, CASE_LOWER, out);
    if (jinja_str_eq(name, "title")) return change_case(ev, s, CASE_TITLE_FILTER, out);
    if (jinja_str_eq(name, "capitalize")) return change_case(ev, s, CASE_CAPITALIZE, out);
    if (jinja_str_eq(name, "replace")) return replace(ev, at, s, args, out);
    if (jinja_str_eq(name, "indent")) return filter_indent(ev, at, s, args, out);
    return fail(ev, at, "no filter named '%.*s'", (int)name.n, name.p);
}

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
    bool has_arg = arg(args, 0, NULL, &a0);
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
        if (v.type != JINJA_INT) return fail(ev, at, "test '%.*s' needs an integer, not '%s'", (int)name.n, name.p, jinja_type_name(v));
        int64_t d = 2;
        if (jinja_str_eq(name, "divisibleby")) {
            if (!has_arg || a0.type != JINJA_INT) return fail(ev, at, "divisibleby needs an integer argument");
            if (a0.i == 0) return fail(ev, at, "integer division or modulo by zero");
            d = a0.i;
        }
        int64_t r = d == -1 ? 0 : v.i % d;
        *out = jinja_str_eq(name, "odd") ? r != 0 : r == 0;
    } else if (jinja_str_eq(name, "sameas")) {
        *out = v.type == a0.type && jinja_equal(v, a0);
    } else {
        /* comparisons: eq equalto == ne != lt < le <= gt > ge >= in */
        if (!has_arg) return fail(ev, at, "test '%.*s' needs an argument", (int)name.n, name.p);
        int op = jinja_str_eq(name, "eq") || jinja_str_eq(name, "equalto") || jinja_str_eq(name, "==") ? JINJA_OP_EQ
               : jinja_str_eq(name, "ne") || jinja_str_eq(name, "!=") ? JINJA_OP_NE
               : jinja_str_eq(name, "lt") || jinja_str_eq(name, "<") ? JINJA_OP_LT
               : jinja_str_eq(name, "le") || jinja_str_eq(name, "<=") ? JINJA_OP_LE
               : jinja_str_eq(name, "gt") || jinja_str_eq(name, ">") ? JINJA_OP_GT
               : jinja_str_eq(name, "ge") || jinja_str_eq(name, ">=") ? JINJA_OP_GE
               : jinja_str_eq(name, "in") ? JINJA_OP_IN : -1;
        if (op < 0) return fail(ev, at, "no test named '%.*s'", (int)name.n, name.p);
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
            if (args->pos[i].type != JINJA_INT) return fail(ev, at, "range() needs integers, not '%s'", jinja_type_name(args->pos[i]));
        if (args->n_pos == 1) stop = args->pos[0].i;
        else if (args->n_pos == 2 || args->n_pos == 3) {
            start = args->pos[0].i;
            stop = args->pos[1].i;
            if (args->n_pos == 3) stride = args->pos[2].i;
        } else return fail(ev, at, "range() takes 1 to 3 arguments");
        if (stride == 0) return fail(ev, at, "range() arg 3 must not be zero");
        double count = ceil(((double)stop - (double)start) / (double)stride);
        if (count > (double)ev->limits.max_steps)
            return jinja_fail(ev->err, JINJA_ERROR_LIMIT, at->line, at->column, "range() is too long");
        jinja_list *l = jinja_list_new(ev->arena, count > 0 ? (size_t)count : 0);
        if (!l) return no_memory(ev);
        for (int64_t i = start; stride > 0 ? i < stop : i > stop; i += stride) {
            l->items[l->n++] = jinja_int(i);
            if (__builtin_add_overflow(i, stride, &(int64_t){0})) break;
        }
        *out = list_value(l);
        return true;
    }
    case JINJA_FN_NAMESPACE:
    case JINJA_FN_DICT: {
        jinja_dict *d = jinja_dict_new(ev->arena, args->n_kw);
        if (!d) return no_memory(ev);
        d->is_namespace = fn == JINJA_FN_NAMESPACE;
        for (size_t i = 0; i < args->n_pos; i++) {
            if (args->pos[i].type != JINJA_DICT) return fail(ev, at, "positional arguments must be mappings");
            const jinja_dict *src = args->pos[i].dict;
            for (size_t k = 0; k < src->n; k++)
                if (!jinja_dict_set(ev->arena, d, src->keys[k], src->vals[k])) return no_memory(ev);
        }
        for (size_t k = 0; k < args->n_kw; k++)
            if (!jinja_dict_set(ev->arena, d, jinja_string(args->kw_names[k].p, args->kw_names[k].n), args->kw[k]))
                return no_memory(ev);
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
        if (args->n_pos < 1 || !need_string(ev, at, args->pos[0], "strftime_now()", &fmt)) {
            if (ev->err->kind == JINJA_ERROR_NONE) return fail(ev, at, "strftime_now() needs a format string");
            return false;
        }
        char *cfmt = jinja_strdup(ev->arena, fmt.p, fmt.n), buf[256];
        if (!cfmt) return no_memory(ev);
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        size_t n = strftime(buf, sizeof buf, cfmt, &tm);
        char *copy = jinja_strdup(ev->arena, buf, n);
        if (!copy) return no_memory(ev);
        *out = jinja_string(copy, n);
        return true;
    }
    }
    return fail(ev, at, "internal error: unknown global function %d", fn);
}

/* ---- methods -------------------------------------------------------------------------------- */

static bool dict_method(jinja_eval *ev, const jinja_node *at, jinja_dict *d, jinja_str name, const jinja_args *args,
                        jinja_value *out) {
    if (jinja_str_eq(name, "get")) {
        jinja_value key, dflt;
        if (!arg(args, 0, "key", &key)) return fail(ev, at, "get() needs a key");
        if (!arg(args, 1, "default", &dflt)) dflt = jinja_none();
        jinja_value *v = jinja_dict_get_value(d, key);
        *out = v ? *v : dflt;
        return true;
    }
    bool keys = jinja_str_eq(name, "keys"), values = jinja_str_eq(name, "values"), items = jinja_str_eq(name, "items");
    if (!keys && !values && !items) return fail(ev, at, "'dict' object has no method '%.*s'", (int)name.n, name.p);
    jinja_list *l = jinja_list_new(ev->arena, d->n);
    if (!l) return no_memory(ev);
    for (size_t i = 0; i < d->n; i++) {
        if (keys) l->items[i] = d->keys[i];
        else if (values) l->items[i] = d->vals[i];
        else {
            jinja_list *pair = jinja_list_new(ev->arena, 2);
            if (!pair) return no_memory(ev);
            pair->items[0] = d->keys[i];
            pair->items[1] = d->vals[i];
            pair->n = 2;
            pair->is_tuple = true;
            l->items[i] = list_value(pair);
        }
    }
    l->n = d->n;
    *out = list_value(l);
    return true;
}

bool jinja_call_method(jinja_eval *ev, const jinja_node *at, jinja_value obj, jinja_str name, const jinja_args *args,
                       jinja_value *out) {
    if (obj.type == JINJA_DICT && !obj.dict->is_namespace) return dict_method(ev, at, obj.dict, name, args, out);
    if (obj.type != JINJA_STRING)
        return fail(ev, at, "'%s' object has no method '%.*s'", jinja_type_name(obj), (int)name.n, name.p);
    jinja_str s = obj.s;
    jinja_value a0;
    if (jinja_str_eq(name, "strip")) return strip_chars(ev, at, s, args, true, true, out);
    if (jinja_str_eq(name, "lstrip")) return strip_chars(ev, at, s, args, true, false, out);
    if (jinja_str_eq(name, "rstrip")) return strip_chars(ev, at, s, args, false, true, out);
    if (jinja_str_eq(name, "upper")) return change_case(ev, s, CASE_UPPER, out);
    if (jinja_str_eq(name, "lower")) return change_case(ev, s, CASE_LOWER, out);
    if (jinja_str_eq(name, "title")) return change_case(ev, s, CASE_TITLE_METHOD, out);
    if (jinja_str_eq(name, "capitalize")) return change_case(ev, s, CASE_CAPITALIZE, out);
    if (jinja_str_eq(name, "replace")) return replace(ev, at, s, args, out);
    if (jinja_str_eq(name, "split")) return split(ev, at, s, args, out);
    if (jinja_str_eq(name, "splitlines")) {
        jinja_list *l;
        if (!splitlines(ev, s, &l)) return false;
        *out = list_value(l);
        return true;
    }
    if (jinja_str_eq(name, "startswith") || jinja_str_eq(name, "endswith")) {
        bool r;
        if (!arg(args, 0, NULL, &a0)) return fail(ev, at, "%.*s() needs an argument", (int)name.n, name.p);
        if (!affix_match(ev, at, s, a0, jinja_str_eq(name, "startswith"), &r)) return false;
        *out = jinja_bool(r);
        return true;
    }
    if (jinja_str_eq(name, "find") || jinja_str_eq(name, "count")) {
        jinja_str sub;
        if (!arg(args, 0, NULL, &a0) || !need_string(ev, at, a0, "find()/count()", &sub)) return false;
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
        if (!arg(args, 0, NULL, &a0) || !jinja_iterate(ev, at, a0, &items)) {
            if (ev->err->kind == JINJA_ERROR_NONE) return fail(ev, at, "join() needs an iterable");
            return false;
        }
        jinja_buf b = {.arena = ev->arena, .max_bytes = ev->limits.max_output_bytes};
        for (size_t i = 0; i < items->n; i++) {
            if (items->items[i].type != JINJA_STRING)
                return fail(ev, at, "sequence item %zu: expected str instance, %s found", i, jinja_type_name(items->items[i]));
            if ((i && !jinja_buf_append(&b, s.p, s.n, ev->err)) ||
                !jinja_buf_append(&b, items->items[i].s.p, items->items[i].s.n, ev->err))
                return false;
        }
        *out = str_value(&b);
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
    return fail(ev, at, "'str' object has no method '%.*s'", (int)name.n, name.p);
}
