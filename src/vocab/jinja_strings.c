/* vocab/jinja_strings.c - helpers shared by the interpreter's builtins (jinja_builtins.c) and
 * filters (jinja_filters.c): argument access by position or keyword, and Python's str operations
 * (case mapping, split, splitlines, strip with characters, replace, startswith/endswith) plus the
 * dotted attribute paths that map/selectattr/sort use. Case mapping is per code point (utf8proc),
 * so "ß".upper() stays "ß" where Python gives "SS".
 */
#include "vocab/jinja_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

bool jinja_builtin_fail(jinja_eval *ev, const jinja_node *at, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return jinja_fail(ev->err, JINJA_ERROR_RUNTIME, at->line, at->column, "%s", msg);
}
bool jinja_builtin_no_memory(jinja_eval *ev) {
    return jinja_fail(ev->err, JINJA_ERROR_LIMIT, 0, 0, "the template needs more memory than allowed");
}

/* Argument i (positional) or by keyword; false when absent. */
bool jinja_arg(const jinja_args *args, size_t i, const char *name, jinja_value *out) {
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

bool jinja_arg_str(jinja_eval *ev, const jinja_node *at, const jinja_args *args, size_t i, const char *name,
                    jinja_str dflt, jinja_str *out) {
    jinja_value v;
    if (!jinja_arg(args, i, name, &v) || v.type == JINJA_NONE) {
        *out = dflt;
        return true;
    }
    if (v.type != JINJA_STRING) return jinja_builtin_fail(ev, at, "argument '%s' must be a string, not '%s'", name, jinja_type_name(v));
    *out = v.s;
    return true;
}

bool jinja_arg_int(jinja_eval *ev, const jinja_node *at, const jinja_args *args, size_t i, const char *name,
                    int64_t dflt, int64_t *out) {
    jinja_value v;
    if (!jinja_arg(args, i, name, &v) || v.type == JINJA_NONE) {
        *out = dflt;
        return true;
    }
    if (v.type == JINJA_BOOL) v = jinja_int(v.b);
    if (v.type != JINJA_INT) return jinja_builtin_fail(ev, at, "argument '%s' must be an integer, not '%s'", name, jinja_type_name(v));
    *out = v.i;
    return true;
}

bool jinja_arg_bool(const jinja_args *args, size_t i, const char *name, bool dflt) {
    jinja_value v;
    return jinja_arg(args, i, name, &v) ? jinja_truthy(v) : dflt;
}


bool jinja_need_string(jinja_eval *ev, const jinja_node *at, jinja_value v, const char *what, jinja_str *out) {
    if (v.type == JINJA_STRING) {
        *out = v.s;
        return true;
    }
    if (v.type == JINJA_UNDEFINED && v.s.n) return jinja_builtin_fail(ev, at, "'%.*s' is undefined", (int)v.s.n, v.s.p);
    return jinja_builtin_fail(ev, at, "%s expects a string, not '%s'", what, jinja_type_name(v));
}


static bool is_cased(uint32_t cp) {
    return utf8proc_toupper((utf8proc_int32_t)cp) != (utf8proc_int32_t)cp ||
           utf8proc_tolower((utf8proc_int32_t)cp) != (utf8proc_int32_t)cp;
}

bool jinja_change_case(jinja_eval *ev, jinja_str s, jinja_case_mode mode, jinja_value *out) {
    jinja_buf b = {.arena = ev->arena};
    bool at_word_start = true; /* title filter: after - ( { [ < or whitespace; method: after uncased */
    bool first = true;
    for (size_t i = 0, len; i < s.n; i += len) {
        uint32_t cp = jinja_utf8_decode(s.p + i, s.n - i, &len);
        bool upper;
        switch (mode) {
        case JINJA_CASE_UPPER: upper = true; break;
        case JINJA_CASE_LOWER: upper = false; break;
        case JINJA_CASE_CAPITALIZE: upper = first; break;
        case JINJA_CASE_TITLE_FILTER: {
            bool delim = cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<' || jinja_is_space(cp);
            upper = at_word_start;
            at_word_start = delim;
            break;
        }
        default: /* JINJA_CASE_TITLE_METHOD */
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
    *out = jinja_str_value(&b);
    return true;
}

/* Python's str.jinja_splitlines() line boundaries; returns the length of the boundary at p (0 if none). */
static size_t line_break_at(const char *p, size_t n) {
    if (p[0] == '\r') return n > 1 && p[1] == '\n' ? 2 : 1;
    if (p[0] == '\n' || p[0] == '\v' || p[0] == '\f' || (p[0] >= 0x1c && p[0] <= 0x1e)) return 1;
    size_t len;
    uint32_t cp = jinja_utf8_decode(p, n, &len);
    return cp == 0x85 || cp == 0x2028 || cp == 0x2029 ? len : 0;
}

bool jinja_splitlines(jinja_eval *ev, jinja_str s, jinja_list **out) {
    jinja_list *l = jinja_list_new(ev->arena, 0);
    if (!l) return jinja_builtin_no_memory(ev);
    size_t start = 0, i = 0;
    while (i < s.n) {
        size_t br = line_break_at(s.p + i, s.n - i);
        if (!br) {
            i++;
            continue;
        }
        if (!jinja_list_push(ev->arena, l, jinja_string(s.p + start, i - start))) return jinja_builtin_no_memory(ev);
        i += br;
        start = i;
    }
    if (start < s.n && !jinja_list_push(ev->arena, l, jinja_string(s.p + start, s.n - start))) return jinja_builtin_no_memory(ev);
    *out = l;
    return true;
}

bool jinja_split(jinja_eval *ev, const jinja_node *at, jinja_str s, const jinja_args *args, jinja_value *out) {
    jinja_value sep_v;
    int64_t maxsplit;
    if (!jinja_arg_int(ev, at, args, 1, "maxsplit", -1, &maxsplit)) return false;
    jinja_list *l = jinja_list_new(ev->arena, 0);
    if (!l) return jinja_builtin_no_memory(ev);
    if (!jinja_arg(args, 0, "sep", &sep_v) || sep_v.type == JINJA_NONE) { /* runs of whitespace */
        size_t i = 0, len;
        for (;;) {
            while (i < s.n && jinja_is_space(jinja_utf8_decode(s.p + i, s.n - i, &len))) i += len;
            if (i >= s.n) break;
            size_t start = i;
            if (maxsplit >= 0 && (int64_t)l->n >= maxsplit) {
                jinja_str rest = jinja_strip((jinja_str){s.p + start, s.n - start}, false, true);
                if (!jinja_list_push(ev->arena, l, jinja_string(rest.p, rest.n))) return jinja_builtin_no_memory(ev);
                break;
            }
            while (i < s.n && !jinja_is_space(jinja_utf8_decode(s.p + i, s.n - i, &len))) i += len;
            if (!jinja_list_push(ev->arena, l, jinja_string(s.p + start, i - start))) return jinja_builtin_no_memory(ev);
        }
    } else {
        jinja_str sep;
        if (!jinja_need_string(ev, at, sep_v, "split()", &sep)) return false;
        if (sep.n == 0) return jinja_builtin_fail(ev, at, "empty separator");
        size_t start = 0;
        for (;;) {
            const char *hit = maxsplit >= 0 && (int64_t)l->n >= maxsplit
                                  ? NULL
                                  : memmem(s.p + start, s.n - start, sep.p, sep.n);
            if (!hit) break;
            if (!jinja_list_push(ev->arena, l, jinja_string(s.p + start, (size_t)(hit - s.p) - start)))
                return jinja_builtin_no_memory(ev);
            start = (size_t)(hit - s.p) + sep.n;
        }
        if (!jinja_list_push(ev->arena, l, jinja_string(s.p + start, s.n - start))) return jinja_builtin_no_memory(ev);
    }
    *out = jinja_list_value(l);
    return true;
}

bool jinja_strip_chars(jinja_eval *ev, const jinja_node *at, jinja_str s, const jinja_args *args, bool left,
                        bool right, jinja_value *out) {
    jinja_str chars;
    if (!jinja_arg_str(ev, at, args, 0, "chars", (jinja_str){NULL, 0}, &chars)) return false;
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

bool jinja_replace(jinja_eval *ev, const jinja_node *at, jinja_str s, const jinja_args *args, jinja_value *out) {
    jinja_str old, new_;
    int64_t count;
    if (!jinja_arg_str(ev, at, args, 0, "old", (jinja_str){"", 0}, &old) ||
        !jinja_arg_str(ev, at, args, 1, "new", (jinja_str){"", 0}, &new_) || !jinja_arg_int(ev, at, args, 2, "count", -1, &count))
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
        *out = jinja_str_value(&b);
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
    *out = jinja_str_value(&b);
    return true;
}

bool jinja_affix_match(jinja_eval *ev, const jinja_node *at, jinja_str s, jinja_value affix, bool prefix, bool *out) {
    if (affix.type == JINJA_LIST) {
        *out = false;
        for (size_t i = 0; i < affix.list->n && !*out; i++)
            if (!jinja_affix_match(ev, at, s, affix.list->items[i], prefix, out)) return false;
        return true;
    }
    jinja_str a;
    if (!jinja_need_string(ev, at, affix, prefix ? "startswith()" : "endswith()", &a)) return false;
    *out = a.n <= s.n && memcmp(prefix ? s.p : s.p + s.n - a.n, a.p, a.n) == 0;
    return true;
}

/* Follows a dotted attribute path ("a.b") through dicts; undefined when missing. */
jinja_value jinja_attribute_path(jinja_value v, jinja_str path) {
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
