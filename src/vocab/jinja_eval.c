/* vocab/jinja_eval.c - runs a parsed template: statements, expressions, scopes and limits.
 *
 * Scopes follow Jinja: the root frame holds the caller's variables and top-level {% set %}s; each
 * for-loop iteration and each macro call gets a fresh frame, so a {% set %} inside a loop is gone
 * after the iteration (hence namespace()). Operators follow Python: int/float arithmetic with
 * floor division and modulo signs as Python has them, str and list concatenation and repetition,
 * chained comparisons, `and`/`or` returning an operand. Undefined values print as "" and are
 * falsy, but using one in arithmetic or taking its attribute is an error, as in Jinja.
 * Every statement and loop iteration counts against limits.max_steps; recursion against
 * limits.max_depth (expressions and macro calls).
 */
#include "vocab/jinja_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

enum { FLOW_NORMAL, FLOW_BREAK, FLOW_CONTINUE };

static bool rt_fail(jinja_eval *ev, const jinja_node *at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool rt_fail(jinja_eval *ev, const jinja_node *at, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return jinja_fail(ev->err, JINJA_ERROR_RUNTIME, at ? at->line : 0, at ? at->column : 0, "%s", msg);
}

static bool no_memory(jinja_eval *ev) {
    return jinja_fail(ev->err, JINJA_ERROR_LIMIT, 0, 0, "the template needs more than %zu bytes of memory",
                      ev->limits.max_memory_bytes);
}

static bool undefined_error(jinja_eval *ev, const jinja_node *at, jinja_value v) {
    if (v.s.n) return rt_fail(ev, at, "'%.*s' is undefined", (int)(v.s.n > 100 ? 100 : v.s.n), v.s.p);
    return rt_fail(ev, at, "undefined value used");
}

static bool step(jinja_eval *ev, const jinja_node *at) {
    if (++ev->n_steps > ev->limits.max_steps)
        return jinja_fail(ev->err, JINJA_ERROR_LIMIT, at->line, at->column,
                          "the template ran more than %llu steps", (unsigned long long)ev->limits.max_steps);
    return true;
}

/* ---- variables ------------------------------------------------------------------------------ */

static jinja_value lookup(const jinja_eval *ev, jinja_str name) {
    for (const jinja_frame *f = ev->frame; f; f = f->parent) {
        jinja_value *v = jinja_dict_get(f->vars, name.p, name.n);
        if (v) return *v;
    }
    int fn = jinja_global_lookup(name);
    if (fn >= 0) return (jinja_value){.type = JINJA_FUNCTION, .builtin = fn};
    return jinja_undefined(name.p, name.n);
}

static bool assign_name(jinja_eval *ev, jinja_str name, jinja_value v) {
    if (!jinja_dict_set(ev->arena, ev->frame->vars, jinja_string(name.p, name.n), v)) return no_memory(ev);
    return true;
}

static bool assign(jinja_eval *ev, const jinja_node *target, jinja_value v) {
    if (target->kind == JINJA_NODE_NAME) return assign_name(ev, target->str, v);
    if (target->kind == JINJA_NODE_GETATTR) {
        jinja_value ns = lookup(ev, target->a->str);
        if (ns.type != JINJA_DICT || !ns.dict->is_namespace)
            return rt_fail(ev, target, "cannot assign attribute on non-namespace object '%.*s'", (int)target->a->str.n,
                           target->a->str.p);
        if (!jinja_dict_set(ev->arena, ns.dict, jinja_string(target->str.p, target->str.n), v)) return no_memory(ev);
        return true;
    }
    /* tuple of names: unpack */
    jinja_list *items;
    if (!jinja_iterate(ev, target, v, &items)) return false;
    if (items->n != target->n_kids)
        return rt_fail(ev, target, "cannot unpack %zu values into %zu names", items->n, target->n_kids);
    for (size_t i = 0; i < items->n; i++)
        if (!assign(ev, target->kids[i], items->items[i])) return false;
    return true;
}

/* Makes a new innermost scope whose parent is `parent`; the caller restores ev->frame after. */
static bool push_frame(jinja_eval *ev, jinja_frame *parent) {
    jinja_frame *f = jinja_arena_alloc(ev->arena, sizeof *f);
    if (!f || !(f->vars = jinja_dict_new(ev->arena, 0))) return no_memory(ev);
    f->parent = parent;
    ev->frame = f;
    return true;
}

/* ---- iteration ------------------------------------------------------------------------------ */

bool jinja_iterate(jinja_eval *ev, const jinja_node *at, jinja_value v, jinja_list **out) {
    switch (v.type) {
    case JINJA_UNDEFINED:
        if (!(*out = jinja_list_new(ev->arena, 0))) return no_memory(ev);
        return true;
    case JINJA_LIST: *out = v.list; return true;
    case JINJA_DICT:
        if (v.dict->is_namespace) break;
        if (!(*out = jinja_list_new(ev->arena, v.dict->n))) return no_memory(ev);
        memcpy((*out)->items, v.dict->keys, v.dict->n * sizeof(jinja_value));
        (*out)->n = v.dict->n;
        return true;
    case JINJA_STRING: {
        if (!(*out = jinja_list_new(ev->arena, 0))) return no_memory(ev);
        for (size_t i = 0, len; i < v.s.n; i += len) {
            jinja_utf8_decode(v.s.p + i, v.s.n - i, &len);
            if (!jinja_list_push(ev->arena, *out, jinja_string(v.s.p + i, len))) return no_memory(ev);
        }
        return true;
    }
    default: break;
    }
    return rt_fail(ev, at, "'%s' object is not iterable", jinja_type_name(v));
}

/* ---- operators ------------------------------------------------------------------------------ */

static bool is_num(jinja_value v) { return v.type == JINJA_INT || v.type == JINJA_FLOAT || v.type == JINJA_BOOL; }
static bool is_intlike(jinja_value v) { return v.type == JINJA_INT || v.type == JINJA_BOOL; }
static int64_t as_int(jinja_value v) { return v.type == JINJA_INT ? v.i : (int64_t)v.b; }
static double as_float(jinja_value v) { return v.type == JINJA_FLOAT ? v.f : (double)as_int(v); }

static const char *op_symbol(int op) {
    static const char *const symbols[] = {"+", "-", "*", "/", "//", "%", "**", "==", "!=", "<", "<=", ">", ">=", "in", "not in"};
    return symbols[op];
}

static bool type_error(jinja_eval *ev, const jinja_node *at, int op, jinja_value a, jinja_value b) {
    return rt_fail(ev, at, "unsupported operand types for %s: '%s' and '%s'", op_symbol(op), jinja_type_name(a),
                   jinja_type_name(b));
}

static bool repeat(jinja_eval *ev, const jinja_node *at, jinja_value seq, int64_t times, jinja_value *out) {
    if (times < 0) times = 0;
    if (seq.type == JINJA_STRING) {
        if (seq.s.n && (uint64_t)times > ev->limits.max_output_bytes / seq.s.n)
            return jinja_fail(ev->err, JINJA_ERROR_LIMIT, at->line, at->column, "string repetition is too large");
        jinja_buf b = {.arena = ev->arena};
        for (int64_t i = 0; i < times; i++)
            if (!jinja_buf_append(&b, seq.s.p, seq.s.n, ev->err)) return false;
        *out = jinja_string(b.p ? b.p : "", b.n);
        return true;
    }
    if (seq.list->n && (uint64_t)times > ev->limits.max_steps / seq.list->n)
        return jinja_fail(ev->err, JINJA_ERROR_LIMIT, at->line, at->column, "list repetition is too large");
    jinja_list *l = jinja_list_new(ev->arena, (size_t)times * seq.list->n);
    if (!l) return no_memory(ev);
    for (int64_t i = 0; i < times; i++)
        for (size_t k = 0; k < seq.list->n; k++) l->items[l->n++] = seq.list->items[k];
    l->is_tuple = seq.list->is_tuple;
    *out = (jinja_value){.type = JINJA_LIST, .list = l};
    return true;
}

static bool arith(jinja_eval *ev, const jinja_node *at, int op, jinja_value a, jinja_value b, jinja_value *out) {
    if (a.type == JINJA_UNDEFINED) return undefined_error(ev, at, a);
    if (b.type == JINJA_UNDEFINED) return undefined_error(ev, at, b);
    if (is_num(a) && is_num(b)) {
        if (is_intlike(a) && is_intlike(b) && op != JINJA_OP_DIV) {
            int64_t x = as_int(a), y = as_int(b), r = 0;
            bool overflow = false;
            switch (op) {
            case JINJA_OP_ADD: overflow = __builtin_add_overflow(x, y, &r); break;
            case JINJA_OP_SUB: overflow = __builtin_sub_overflow(x, y, &r); break;
            case JINJA_OP_MUL: overflow = __builtin_mul_overflow(x, y, &r); break;
            case JINJA_OP_FLOORDIV:
            case JINJA_OP_MOD:
                if (y == 0) return rt_fail(ev, at, "integer division or modulo by zero");
                if (x == INT64_MIN && y == -1) {
                    overflow = true;
                    break;
                }
                r = op == JINJA_OP_FLOORDIV ? x / y : x % y;
                if (op == JINJA_OP_FLOORDIV && (x % y != 0) && ((x < 0) != (y < 0))) r--;
                if (op == JINJA_OP_MOD && r != 0 && ((r < 0) != (y < 0))) r += y;
                break;
            case JINJA_OP_POW:
                if (y < 0) {
                    *out = jinja_float(pow((double)x, (double)y));
                    return true;
                }
                r = 1;
                for (int64_t k = 0; k < y && !overflow; k++) overflow = __builtin_mul_overflow(r, x, &r);
                break;
            }
            if (overflow) return rt_fail(ev, at, "integer overflow in %s", op_symbol(op));
            *out = jinja_int(r);
            return true;
        }
        double x = as_float(a), y = as_float(b), r = 0;
        switch (op) {
        case JINJA_OP_ADD: r = x + y; break;
        case JINJA_OP_SUB: r = x - y; break;
        case JINJA_OP_MUL: r = x * y; break;
        case JINJA_OP_DIV:
            if (y == 0) return rt_fail(ev, at, "division by zero");
            r = x / y;
            break;
        case JINJA_OP_FLOORDIV:
        case JINJA_OP_MOD: {
            if (y == 0) return rt_fail(ev, at, "float division or modulo by zero");
            double m = fmod(x, y);
            if (m != 0 && ((m < 0) != (y < 0))) m += y;
            r = op == JINJA_OP_MOD ? m : floor(x / y);
            break;
        }
        case JINJA_OP_POW: r = pow(x, y); break;
        }
        *out = jinja_float(r);
        return true;
    }
    if (op == JINJA_OP_ADD && a.type == JINJA_STRING && b.type == JINJA_STRING) {
        char *p = jinja_arena_alloc(ev->arena, a.s.n + b.s.n + 1);
        if (!p) return no_memory(ev);
        memcpy(p, a.s.p, a.s.n);
        memcpy(p + a.s.n, b.s.p, b.s.n);
        *out = jinja_string(p, a.s.n + b.s.n);
        return true;
    }
    if (op == JINJA_OP_ADD && a.type == JINJA_LIST && b.type == JINJA_LIST && a.list->is_tuple == b.list->is_tuple) {
        jinja_list *l = jinja_list_new(ev->arena, a.list->n + b.list->n);
        if (!l) return no_memory(ev);
        memcpy(l->items, a.list->items, a.list->n * sizeof(jinja_value));
        memcpy(l->items + a.list->n, b.list->items, b.list->n * sizeof(jinja_value));
        l->n = a.list->n + b.list->n;
        l->is_tuple = a.list->is_tuple;
        *out = (jinja_value){.type = JINJA_LIST, .list = l};
        return true;
    }
    if (op == JINJA_OP_MUL && (a.type == JINJA_STRING || a.type == JINJA_LIST) && is_intlike(b))
        return repeat(ev, at, a, as_int(b), out);
    if (op == JINJA_OP_MUL && (b.type == JINJA_STRING || b.type == JINJA_LIST) && is_intlike(a))
        return repeat(ev, at, b, as_int(a), out);
    if (op == JINJA_OP_ADD && a.type == JINJA_STRING)
        return rt_fail(ev, at, "can only concatenate str (not \"%s\") to str", jinja_type_name(b));
    return type_error(ev, at, op, a, b);
}

/* a < b etc. for numbers, strings and lists; *out is -1, 0, 1. */
static bool order(jinja_eval *ev, const jinja_node *at, int op, jinja_value a, jinja_value b, int *out) {
    if (is_num(a) && is_num(b)) {
        if (is_intlike(a) && is_intlike(b)) *out = as_int(a) < as_int(b) ? -1 : as_int(a) > as_int(b);
        else *out = as_float(a) < as_float(b) ? -1 : as_float(a) > as_float(b);
        return true;
    }
    if (a.type == JINJA_STRING && b.type == JINJA_STRING) {
        size_t n = a.s.n < b.s.n ? a.s.n : b.s.n;
        int c = memcmp(a.s.p, b.s.p, n);
        *out = c < 0 ? -1 : c > 0 ? 1 : a.s.n < b.s.n ? -1 : a.s.n > b.s.n;
        return true;
    }
    if (a.type == JINJA_LIST && b.type == JINJA_LIST) {
        for (size_t i = 0; i < a.list->n && i < b.list->n; i++) {
            if (jinja_equal(a.list->items[i], b.list->items[i])) continue;
            return order(ev, at, op, a.list->items[i], b.list->items[i], out);
        }
        *out = a.list->n < b.list->n ? -1 : a.list->n > b.list->n;
        return true;
    }
    if (a.type == JINJA_UNDEFINED) return undefined_error(ev, at, a);
    if (b.type == JINJA_UNDEFINED) return undefined_error(ev, at, b);
    return rt_fail(ev, at, "'%s' not supported between instances of '%s' and '%s'", op_symbol(op),
                   jinja_type_name(a), jinja_type_name(b));
}

static bool contains(jinja_eval *ev, const jinja_node *at, jinja_value needle, jinja_value hay, bool *out) {
    switch (hay.type) {
    case JINJA_STRING:
        if (needle.type != JINJA_STRING)
            return rt_fail(ev, at, "'in <string>' requires string as left operand, not %s", jinja_type_name(needle));
        *out = needle.s.n == 0 || memmem(hay.s.p, hay.s.n, needle.s.p, needle.s.n) != NULL;
        return true;
    case JINJA_LIST:
        *out = false;
        for (size_t i = 0; i < hay.list->n && !*out; i++) *out = jinja_equal(needle, hay.list->items[i]);
        return true;
    case JINJA_DICT: *out = jinja_dict_get_value(hay.dict, needle) != NULL; return true;
    case JINJA_UNDEFINED: *out = false; return true;
    default: return rt_fail(ev, at, "argument of type '%s' is not iterable", jinja_type_name(hay));
    }
}

static bool compare(jinja_eval *ev, const jinja_node *at, int op, jinja_value a, jinja_value b, bool *out) {
    int c;
    switch (op) {
    case JINJA_OP_EQ: *out = jinja_equal(a, b); return true;
    case JINJA_OP_NE: *out = !jinja_equal(a, b); return true;
    case JINJA_OP_IN: return contains(ev, at, a, b, out);
    case JINJA_OP_NOTIN:
        if (!contains(ev, at, a, b, out)) return false;
        *out = !*out;
        return true;
    default:
        if (!order(ev, at, op, a, b, &c)) return false;
        *out = op == JINJA_OP_LT ? c < 0 : op == JINJA_OP_LE ? c <= 0 : op == JINJA_OP_GT ? c > 0 : c >= 0;
        return true;
    }
}

/* ---- subscripts ----------------------------------------------------------------------------- */

static bool getattr_value(jinja_eval *ev, const jinja_node *at, jinja_value obj, jinja_str name, jinja_value *out) {
    if (obj.type == JINJA_UNDEFINED) return undefined_error(ev, at, obj);
    if (obj.type == JINJA_DICT) {
        jinja_value *v = jinja_dict_get(obj.dict, name.p, name.n);
        *out = v ? *v : jinja_undefined(name.p, name.n);
        return true;
    }
    *out = jinja_undefined(name.p, name.n);
    return true;
}

static bool getitem_value(jinja_eval *ev, const jinja_node *at, jinja_value obj, jinja_value key, jinja_value *out) {
    if (obj.type == JINJA_UNDEFINED) return undefined_error(ev, at, obj);
    *out = jinja_undefined(NULL, 0);
    if (obj.type == JINJA_DICT) {
        jinja_value *v = jinja_dict_get_value(obj.dict, key);
        if (v) *out = *v;
        else if (key.type == JINJA_STRING) *out = jinja_undefined(key.s.p, key.s.n);
        return true;
    }
    if ((obj.type == JINJA_LIST || obj.type == JINJA_STRING) && is_intlike(key)) {
        int64_t i = as_int(key);
        size_t n = obj.type == JINJA_LIST ? obj.list->n : jinja_utf8_count(obj.s.p, obj.s.n);
        if (i < 0) i += (int64_t)n;
        if (i < 0 || (uint64_t)i >= n) return true;
        if (obj.type == JINJA_LIST) {
            *out = obj.list->items[i];
        } else {
            size_t off = jinja_utf8_offset(obj.s.p, obj.s.n, (size_t)i), len;
            jinja_utf8_decode(obj.s.p + off, obj.s.n - off, &len);
            *out = jinja_string(obj.s.p + off, len);
        }
    }
    return true;
}

static bool slice_bound(jinja_eval *ev, const jinja_node *nd, int64_t dflt, int64_t *out) {
    if (!nd) {
        *out = dflt;
        return true;
    }
    jinja_value v;
    if (!jinja_eval_expr(ev, nd, &v)) return false;
    if (v.type == JINJA_NONE) {
        *out = dflt;
        return true;
    }
    if (!is_intlike(v)) return rt_fail(ev, nd, "slice indices must be integers or None");
    *out = as_int(v);
    return true;
}

static bool eval_slice(jinja_eval *ev, const jinja_node *nd, jinja_value *out) {
    jinja_value obj;
    if (!jinja_eval_expr(ev, nd->a, &obj)) return false;
    if (obj.type == JINJA_UNDEFINED) return undefined_error(ev, nd, obj);
    if (obj.type != JINJA_LIST && obj.type != JINJA_STRING)
        return rt_fail(ev, nd, "'%s' object is not subscriptable", jinja_type_name(obj));
    int64_t n = obj.type == JINJA_LIST ? (int64_t)obj.list->n : (int64_t)jinja_utf8_count(obj.s.p, obj.s.n);
    int64_t stride, start, stop;
    if (!slice_bound(ev, nd->d, 1, &stride)) return false;
    if (stride == 0) return rt_fail(ev, nd, "slice step cannot be zero");
    if (!slice_bound(ev, nd->b, stride > 0 ? 0 : n - 1, &start) ||
        !slice_bound(ev, nd->c, stride > 0 ? n : -n - 1, &stop))
        return false;
    /* Python's PySlice_AdjustIndices */
    if (start < 0) start = start + n < 0 ? (stride < 0 ? -1 : 0) : start + n;
    else if (start >= n) start = stride < 0 ? n - 1 : n;
    if (stop < 0) stop = stop + n < 0 ? (stride < 0 ? -1 : 0) : stop + n;
    else if (stop >= n) stop = stride < 0 ? n - 1 : n;
    jinja_list *l = jinja_list_new(ev->arena, 0);
    jinja_buf b = {.arena = ev->arena};
    if (!l) return no_memory(ev);
    size_t *offsets = NULL;
    if (obj.type == JINJA_STRING) { /* code point offsets */
        offsets = jinja_arena_alloc(ev->arena, ((size_t)n + 1) * sizeof *offsets);
        if (!offsets) return no_memory(ev);
        size_t off = 0, len;
        for (int64_t k = 0; k < n; k++) {
            offsets[k] = off;
            jinja_utf8_decode(obj.s.p + off, obj.s.n - off, &len);
            off += len;
        }
        offsets[n] = off;
    }
    for (int64_t i = start; stride > 0 ? i < stop : i > stop; i += stride) {
        if (obj.type == JINJA_LIST) {
            if (!jinja_list_push(ev->arena, l, obj.list->items[i])) return no_memory(ev);
        } else if (!jinja_buf_append(&b, obj.s.p + offsets[i], offsets[i + 1] - offsets[i], ev->err)) {
            return false;
        }
    }
    if (obj.type == JINJA_LIST) {
        l->is_tuple = obj.list->is_tuple;
        *out = (jinja_value){.type = JINJA_LIST, .list = l};
    } else {
        *out = jinja_string(b.p ? b.p : "", b.n);
    }
    return true;
}

/* ---- calls ---------------------------------------------------------------------------------- */

static bool eval_args(jinja_eval *ev, const jinja_node *nd, jinja_args *args) {
    memset(args, 0, sizeof *args);
    if (nd->n_kids) {
        if (!(args->pos = jinja_arena_alloc(ev->arena, nd->n_kids * sizeof *args->pos))) return no_memory(ev);
        for (size_t i = 0; i < nd->n_kids; i++)
            if (!jinja_eval_expr(ev, nd->kids[i], &args->pos[i])) return false;
        args->n_pos = nd->n_kids;
    }
    if (nd->n_kwargs) {
        args->kw = jinja_arena_alloc(ev->arena, nd->n_kwargs * sizeof *args->kw);
        args->kw_names = jinja_arena_alloc(ev->arena, nd->n_kwargs * sizeof *args->kw_names);
        if (!args->kw || !args->kw_names) return no_memory(ev);
        for (size_t i = 0; i < nd->n_kwargs; i++) {
            args->kw_names[i] = nd->kwargs[i].name;
            if (!jinja_eval_expr(ev, nd->kwargs[i].value, &args->kw[i])) return false;
        }
        args->n_kw = nd->n_kwargs;
    }
    return true;
}

static bool exec_body(jinja_eval *ev, const jinja_node *body, int *flow);

bool jinja_call_macro(jinja_eval *ev, const jinja_node *at, const jinja_node *macro, const jinja_args *args,
                      jinja_value *out) {
    if (args->n_pos > macro->n_kids)
        return rt_fail(ev, at, "macro '%.*s' takes not more than %zu argument(s)", (int)macro->str.n, macro->str.p,
                       macro->n_kids);
    jinja_frame *saved_frame = ev->frame;
    if (!push_frame(ev, ev->root)) return false;
    for (size_t i = 0; i < macro->n_kids; i++) {
        const jinja_node *param = macro->kids[i];
        jinja_value v = jinja_undefined(param->str.p, param->str.n);
        bool given = false;
        if (i < args->n_pos) {
            v = args->pos[i];
            given = true;
        }
        for (size_t k = 0; k < args->n_kw; k++)
            if (args->kw_names[k].n == param->str.n && memcmp(args->kw_names[k].p, param->str.p, param->str.n) == 0) {
                v = args->kw[k];
                given = true;
            }
        if ((!given && param->a && !jinja_eval_expr(ev, param->a, &v)) || !assign_name(ev, param->str, v)) {
            ev->frame = saved_frame;
            return false;
        }
    }
    jinja_buf buf = {.arena = ev->arena, .max_bytes = ev->limits.max_output_bytes}, *saved_out = ev->out;
    ev->out = &buf;
    int flow = FLOW_NORMAL;
    bool ok = exec_body(ev, macro->a, &flow);
    ev->out = saved_out;
    ev->frame = saved_frame;
    if (!ok) return false;
    *out = jinja_string(buf.p ? buf.p : "", buf.n);
    return true;
}

static bool eval_call(jinja_eval *ev, const jinja_node *nd, jinja_value *out) {
    jinja_args args;
    if (nd->a->kind == JINJA_NODE_GETATTR) { /* obj.method(...) */
        jinja_value obj;
        if (!jinja_eval_expr(ev, nd->a->a, &obj)) return false;
        if (obj.type == JINJA_UNDEFINED) return undefined_error(ev, nd, obj);
        if (obj.type == JINJA_DICT) { /* a callable stored in a dict/namespace */
            jinja_value *member = jinja_dict_get(obj.dict, nd->a->str.p, nd->a->str.n);
            if (member && (member->type == JINJA_MACRO || member->type == JINJA_FUNCTION)) {
                if (!eval_args(ev, nd, &args)) return false;
                return member->type == JINJA_MACRO ? jinja_call_macro(ev, nd, member->macro, &args, out)
                                                   : jinja_call_global(ev, nd, member->builtin, &args, out);
            }
        }
        if (!eval_args(ev, nd, &args)) return false;
        return jinja_call_method(ev, nd, obj, nd->a->str, &args, out);
    }
    jinja_value callee;
    if (!jinja_eval_expr(ev, nd->a, &callee)) return false;
    if (callee.type == JINJA_UNDEFINED) return undefined_error(ev, nd, callee);
    if (callee.type != JINJA_FUNCTION && callee.type != JINJA_MACRO)
        return rt_fail(ev, nd, "'%s' object is not callable", jinja_type_name(callee));
    if (!eval_args(ev, nd, &args)) return false;
    if (callee.type == JINJA_MACRO) return jinja_call_macro(ev, nd, callee.macro, &args, out);
    return jinja_call_global(ev, nd, callee.builtin, &args, out);
}

/* ---- expressions ---------------------------------------------------------------------------- */

static bool eval_expr_inner(jinja_eval *ev, const jinja_node *nd, jinja_value *out) {
    jinja_value a, b;
    switch (nd->kind) {
    case JINJA_NODE_LITERAL: *out = nd->value; return true;
    case JINJA_NODE_NAME: *out = lookup(ev, nd->str); return true;
    case JINJA_NODE_LIST:
    case JINJA_NODE_TUPLE: {
        jinja_list *l = jinja_list_new(ev->arena, nd->n_kids);
        if (!l) return no_memory(ev);
        for (size_t i = 0; i < nd->n_kids; i++)
            if (!jinja_eval_expr(ev, nd->kids[i], &l->items[i])) return false;
        l->n = nd->n_kids;
        l->is_tuple = nd->kind == JINJA_NODE_TUPLE;
        *out = (jinja_value){.type = JINJA_LIST, .list = l};
        return true;
    }
    case JINJA_NODE_DICT: {
        jinja_dict *d = jinja_dict_new(ev->arena, nd->n_kids / 2);
        if (!d) return no_memory(ev);
        for (size_t i = 0; i + 1 < nd->n_kids; i += 2) {
            if (!jinja_eval_expr(ev, nd->kids[i], &a) || !jinja_eval_expr(ev, nd->kids[i + 1], &b)) return false;
            if (!jinja_dict_set(ev->arena, d, a, b)) return no_memory(ev);
        }
        *out = (jinja_value){.type = JINJA_DICT, .dict = d};
        return true;
    }
    case JINJA_NODE_GETATTR:
        if (!jinja_eval_expr(ev, nd->a, &a)) return false;
        return getattr_value(ev, nd, a, nd->str, out);
    case JINJA_NODE_GETITEM:
        if (!jinja_eval_expr(ev, nd->a, &a) || !jinja_eval_expr(ev, nd->b, &b)) return false;
        return getitem_value(ev, nd, a, b, out);
    case JINJA_NODE_SLICE: return eval_slice(ev, nd, out);
    case JINJA_NODE_CALL: return eval_call(ev, nd, out);
    case JINJA_NODE_FILTER: {
        jinja_args args;
        if (!jinja_eval_expr(ev, nd->a, &a) || !eval_args(ev, nd, &args)) return false;
        return jinja_apply_filter(ev, nd, nd->str, a, &args, out);
    }
    case JINJA_NODE_TEST: {
        jinja_args args;
        bool r;
        if (!jinja_eval_expr(ev, nd->a, &a) || !eval_args(ev, nd, &args)) return false;
        if (!jinja_apply_test(ev, nd, nd->str, a, &args, &r)) return false;
        *out = jinja_bool(nd->op ? !r : r);
        return true;
    }
    case JINJA_NODE_UNARY:
        if (!jinja_eval_expr(ev, nd->a, &a)) return false;
        if (nd->op == 'n') {
            *out = jinja_bool(!jinja_truthy(a));
            return true;
        }
        if (a.type == JINJA_UNDEFINED) return undefined_error(ev, nd, a);
        if (!is_num(a)) return rt_fail(ev, nd, "bad operand type for unary %c: '%s'", nd->op, jinja_type_name(a));
        if (nd->op == '+') *out = a.type == JINJA_BOOL ? jinja_int(a.b) : a;
        else if (a.type == JINJA_FLOAT) *out = jinja_float(-a.f);
        else if (as_int(a) == INT64_MIN) return rt_fail(ev, nd, "integer overflow in unary -");
        else *out = jinja_int(-as_int(a));
        return true;
    case JINJA_NODE_BINARY:
        if (!jinja_eval_expr(ev, nd->a, &a) || !jinja_eval_expr(ev, nd->b, &b)) return false;
        return arith(ev, nd, nd->op, a, b, out);
    case JINJA_NODE_COMPARE: {
        if (!jinja_eval_expr(ev, nd->a, &a)) return false;
        for (size_t i = 0; i < nd->n_kids; i++) {
            bool r;
            if (!jinja_eval_expr(ev, nd->kids[i], &b) || !compare(ev, nd, nd->ops[i], a, b, &r)) return false;
            if (!r) {
                *out = jinja_bool(false);
                return true;
            }
            a = b;
        }
        *out = jinja_bool(true);
        return true;
    }
    case JINJA_NODE_AND:
    case JINJA_NODE_OR:
        if (!jinja_eval_expr(ev, nd->a, &a)) return false;
        if (jinja_truthy(a) == (nd->kind == JINJA_NODE_OR)) {
            *out = a;
            return true;
        }
        return jinja_eval_expr(ev, nd->b, out);
    case JINJA_NODE_CONDEXPR:
        if (!jinja_eval_expr(ev, nd->a, &a)) return false;
        if (jinja_truthy(a)) return jinja_eval_expr(ev, nd->b, out);
        if (nd->c) return jinja_eval_expr(ev, nd->c, out);
        *out = jinja_undefined(NULL, 0);
        return true;
    case JINJA_NODE_CONCAT: {
        jinja_buf buf = {.arena = ev->arena, .max_bytes = ev->limits.max_output_bytes};
        for (size_t i = 0; i < nd->n_kids; i++)
            if (!jinja_eval_expr(ev, nd->kids[i], &a) || !jinja_write_str(&buf, a, ev->err)) return false;
        *out = jinja_string(buf.p ? buf.p : "", buf.n);
        return true;
    }
    default: return rt_fail(ev, nd, "internal error: node %d is not an expression", (int)nd->kind);
    }
}

bool jinja_eval_expr(jinja_eval *ev, const jinja_node *nd, jinja_value *out) {
    if (++ev->depth > ev->limits.max_depth * 4) {
        ev->depth--;
        return jinja_fail(ev->err, JINJA_ERROR_LIMIT, nd->line, nd->column, "expressions nest too deeply");
    }
    bool ok = eval_expr_inner(ev, nd, out);
    ev->depth--;
    return ok;
}

/* ---- statements ----------------------------------------------------------------------------- */

static bool loop_info(jinja_eval *ev, const jinja_list *items, size_t i, jinja_dict **out) {
    jinja_dict *d = jinja_dict_new(ev->arena, 12);
    if (!d) return no_memory(ev);
    size_t n = items->n;
    struct {
        const char *name;
        jinja_value v;
    } fields[] = {
        {"index0", jinja_int((int64_t)i)},
        {"index", jinja_int((int64_t)i + 1)},
        {"revindex", jinja_int((int64_t)(n - i))},
        {"revindex0", jinja_int((int64_t)(n - i - 1))},
        {"first", jinja_bool(i == 0)},
        {"last", jinja_bool(i + 1 == n)},
        {"length", jinja_int((int64_t)n)},
        {"depth", jinja_int(1)},
        {"depth0", jinja_int(0)},
        {"previtem", i > 0 ? items->items[i - 1] : jinja_undefined("previtem", 8)},
        {"nextitem", i + 1 < n ? items->items[i + 1] : jinja_undefined("nextitem", 8)},
    };
    for (size_t k = 0; k < sizeof fields / sizeof *fields; k++)
        if (!jinja_dict_set(ev->arena, d, jinja_string(fields[k].name, strlen(fields[k].name)), fields[k].v))
            return no_memory(ev);
    *out = d;
    return true;
}

static bool exec_for(jinja_eval *ev, const jinja_node *nd) {
    jinja_value seq;
    jinja_list *items;
    if (!jinja_eval_expr(ev, nd->b, &seq) || !jinja_iterate(ev, nd->b, seq, &items)) return false;
    jinja_frame *outer = ev->frame;
    if (nd->e) { /* {% for x in xs if cond %}: filter first, so loop.length counts the kept items */
        jinja_list *kept = jinja_list_new(ev->arena, 0);
        if (!kept) return no_memory(ev);
        for (size_t i = 0; i < items->n; i++) {
            jinja_value cond;
            if (!step(ev, nd) || !push_frame(ev, outer)) return false;
            bool ok = assign(ev, nd->a, items->items[i]) && jinja_eval_expr(ev, nd->e, &cond);
            ev->frame = outer;
            if (!ok) return false;
            if (jinja_truthy(cond) && !jinja_list_push(ev->arena, kept, items->items[i])) return no_memory(ev);
        }
        items = kept;
    }
    for (size_t i = 0; i < items->n; i++) {
        jinja_dict *loop = NULL;
        int flow = FLOW_NORMAL;
        bool ok = step(ev, nd) && push_frame(ev, outer) && loop_info(ev, items, i, &loop) &&
                  assign_name(ev, (jinja_str){"loop", 4}, (jinja_value){.type = JINJA_DICT, .dict = loop}) &&
                  assign(ev, nd->a, items->items[i]) && exec_body(ev, nd->c, &flow);
        ev->frame = outer;
        if (!ok) return false;
        if (flow == FLOW_BREAK) break;
    }
    if (items->n == 0 && nd->d) {
        int flow = FLOW_NORMAL;
        return exec_body(ev, nd->d, &flow);
    }
    return true;
}

static bool exec_stmt(jinja_eval *ev, const jinja_node *nd, int *flow) {
    jinja_value v;
    if (!step(ev, nd)) return false;
    switch (nd->kind) {
    case JINJA_NODE_BODY: return exec_body(ev, nd, flow);
    case JINJA_NODE_TEXT: return jinja_buf_append(ev->out, nd->str.p, nd->str.n, ev->err);
    case JINJA_NODE_OUTPUT:
        if (!jinja_eval_expr(ev, nd->a, &v)) return false;
        return jinja_write_str(ev->out, v, ev->err);
    case JINJA_NODE_IF:
        for (;;) {
            if (!jinja_eval_expr(ev, nd->a, &v)) return false;
            if (jinja_truthy(v)) return exec_body(ev, nd->b, flow);
            if (!nd->c) return true;
            if (nd->c->kind != JINJA_NODE_IF) return exec_body(ev, nd->c, flow);
            nd = nd->c;
        }
    case JINJA_NODE_FOR: return exec_for(ev, nd);
    case JINJA_NODE_SET:
        if (nd->b) {
            if (!jinja_eval_expr(ev, nd->b, &v)) return false;
        } else {
            jinja_buf buf = {.arena = ev->arena, .max_bytes = ev->limits.max_output_bytes}, *saved = ev->out;
            ev->out = &buf;
            bool ok = exec_body(ev, nd->c, flow);
            ev->out = saved;
            if (!ok) return false;
            v = jinja_string(buf.p ? buf.p : "", buf.n);
        }
        return assign(ev, nd->a, v);
    case JINJA_NODE_MACRO:
        return assign_name(ev, nd->str, (jinja_value){.type = JINJA_MACRO, .macro = nd});
    case JINJA_NODE_BREAK: *flow = FLOW_BREAK; return true;
    case JINJA_NODE_CONTINUE: *flow = FLOW_CONTINUE; return true;
    default: return rt_fail(ev, nd, "internal error: node %d is not a statement", (int)nd->kind);
    }
}

static bool exec_body(jinja_eval *ev, const jinja_node *body, int *flow) {
    if (++ev->depth > ev->limits.max_depth * 4) {
        ev->depth--;
        return jinja_fail(ev->err, JINJA_ERROR_LIMIT, body->line, body->column,
                          "the template recurses more than %d levels deep", ev->limits.max_depth * 4);
    }
    bool ok = true;
    for (size_t i = 0; ok && i < body->n_kids && *flow == FLOW_NORMAL; i++) ok = exec_stmt(ev, body->kids[i], flow);
    ev->depth--;
    return ok;
}

bool jinja_eval_template(jinja_eval *ev, const jinja_node *body) {
    int flow = FLOW_NORMAL;
    return exec_body(ev, body, &flow);
}
