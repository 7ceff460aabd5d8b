/* vocab/jinja_parse.c - tokens -> syntax tree, by recursive descent in Jinja2's own precedence:
 *
 *   expression := or_expr ['if' or_expr ['else' expression]]
 *   or_expr    := and_expr ('or' and_expr)*         and_expr := not_expr ('and' not_expr)*
 *   not_expr   := 'not' not_expr | compare          compare  := math1 (cmp_op math1)*
 *   math1      := concat (('+'|'-') concat)*        concat   := math2 ('~' math2)*
 *   math2      := pow (('*'|'/'|'//'|'%') pow)*     pow      := unary ('**' unary)*
 *   unary      := ('-'|'+') unary | primary postfix*, then filters/tests: ('|' f(args) | 'is' [not] t)*
 *
 * Statements: if/elif/else, for (target, filter condition, else), set (names, tuples, ns.attr,
 * blocks), macro, break/continue (inside loops only), generation (kept as a plain body).
 * Filters and tests are checked to exist here, as Jinja checks them at compile time. Nesting is
 * bounded by max_depth so hostile input cannot exhaust the C stack.
 */
#include "vocab/jinja_internal.h"

#include <stdio.h>
#include <string.h>

typedef struct parser {
    jinja_arena *arena;
    const jinja_token *toks;
    size_t n, pos;
    jinja_error *err;
    int depth, max_depth;
    int loop_depth;
} parser;

static const jinja_token *cur(const parser *p) { return &p->toks[p->pos < p->n ? p->pos : p->n - 1]; }
static const jinja_token *peek(const parser *p, size_t k) {
    return &p->toks[p->pos + k < p->n ? p->pos + k : p->n - 1];
}
static void advance(parser *p) {
    if (p->pos + 1 < p->n) p->pos++;
}
static bool is_op(const jinja_token *t, const char *op) { return t->kind == JINJA_TOK_OP && jinja_str_eq(t->text, op); }
static bool is_name(const jinja_token *t, const char *name) {
    return t->kind == JINJA_TOK_NAME && jinja_str_eq(t->text, name);
}

static const char *describe(const jinja_token *t, char buf[80]) {
    switch (t->kind) {
    case JINJA_TOK_EOF: return "end of template";
    case JINJA_TOK_DATA: return "template data";
    case JINJA_TOK_VAR_BEGIN: return "'{{'";
    case JINJA_TOK_VAR_END: return "end of print statement '}}'";
    case JINJA_TOK_BLOCK_BEGIN: return "'{%'";
    case JINJA_TOK_BLOCK_END: return "end of statement block '%}'";
    case JINJA_TOK_STRING: return "string literal";
    case JINJA_TOK_INT:
    case JINJA_TOK_FLOAT:
    case JINJA_TOK_NAME:
    case JINJA_TOK_OP: snprintf(buf, 80, "'%.*s'", (int)(t->text.n > 40 ? 40 : t->text.n), t->text.p); return buf;
    }
    return "token";
}

static bool fail(parser *p, const jinja_token *t, const char *fmt, const char *arg) {
    char msg[256];
    snprintf(msg, sizeof msg, fmt, arg);
    return jinja_fail(p->err, JINJA_ERROR_SYNTAX, t->line, t->column, "%s", msg);
}
static bool unexpected(parser *p, const char *expected) {
    char buf[80], msg[200];
    snprintf(msg, sizeof msg, "unexpected %s, expected %s", describe(cur(p), buf), expected);
    return fail(p, cur(p), "%s", msg);
}
static bool no_memory(parser *p) { return jinja_fail(p->err, JINJA_ERROR_NO_MEMORY, 0, 0, "out of memory"); }

static jinja_node *node_new(parser *p, jinja_node_kind kind, const jinja_token *at) {
    jinja_node *nd = jinja_arena_alloc(p->arena, sizeof *nd);
    if (!nd) {
        no_memory(p);
        return NULL;
    }
    nd->kind = kind;
    nd->line = at->line;
    nd->column = at->column;
    return nd;
}

static bool add_kid(parser *p, jinja_node *nd, jinja_node *kid, int op) {
    /* grow by doubling: capacity is the next power of two >= n_kids */
    size_t n = nd->n_kids;
    if ((n & (n - 1)) == 0) {
        size_t cap = n ? n * 2 : 1;
        jinja_node **kids = jinja_arena_alloc(p->arena, cap * sizeof *kids);
        int *ops = jinja_arena_alloc(p->arena, cap * sizeof *ops);
        if (!kids || !ops) return no_memory(p);
        if (n) {
            memcpy(kids, nd->kids, n * sizeof *kids);
            if (nd->ops) memcpy(ops, nd->ops, n * sizeof *ops);
        }
        nd->kids = kids;
        nd->ops = ops;
    }
    nd->kids[n] = kid;
    nd->ops[n] = op;
    nd->n_kids = n + 1;
    return true;
}

static bool add_kwarg(parser *p, jinja_node *nd, jinja_str name, jinja_node *value) {
    size_t n = nd->n_kwargs;
    if ((n & (n - 1)) == 0) {
        jinja_kwarg *kw = jinja_arena_alloc(p->arena, (n ? n * 2 : 1) * sizeof *kw);
        if (!kw) return no_memory(p);
        if (n) memcpy(kw, nd->kwargs, n * sizeof *kw);
        nd->kwargs = kw;
    }
    nd->kwargs[n].name = name;
    nd->kwargs[n].value = value;
    nd->n_kwargs = n + 1;
    return true;
}

static bool enter(parser *p) {
    if (++p->depth > p->max_depth)
        return jinja_fail(p->err, JINJA_ERROR_LIMIT, cur(p)->line, cur(p)->column,
                          "the template nests more than %d levels deep", p->max_depth);
    return true;
}

static jinja_node *parse_expression(parser *p, bool with_condexpr);
static jinja_node *parse_unary(parser *p, bool with_filter);
static jinja_node *parse_or(parser *p);

/* '(' args ')' into nd->kids / nd->kwargs; the current token is '('. */
static bool parse_call_args(parser *p, jinja_node *nd) {
    advance(p);
    while (!is_op(cur(p), ")")) {
        if (nd->n_kids + nd->n_kwargs > 0) {
            if (!is_op(cur(p), ",")) return unexpected(p, "',' or ')'");
            advance(p);
            if (is_op(cur(p), ")")) break;
        }
        if (cur(p)->kind == JINJA_TOK_NAME && is_op(peek(p, 1), "=")) {
            jinja_str name = cur(p)->text;
            advance(p);
            advance(p);
            jinja_node *v = parse_expression(p, true);
            if (!v || !add_kwarg(p, nd, name, v)) return false;
        } else {
            if (nd->n_kwargs) return fail(p, cur(p), "%s", "positional argument follows keyword argument");
            jinja_node *v = parse_expression(p, true);
            if (!v || !add_kid(p, nd, v, 0)) return false;
        }
    }
    advance(p);
    return true;
}

/* Comma-separated expressions; a single one without a comma is returned as itself. */
static jinja_node *parse_tuple(parser *p, bool with_condexpr, bool explicit_parens) {
    const jinja_token *start = cur(p);
    jinja_node *tuple = NULL, *first = NULL;
    for (;;) {
        if (first || tuple) {
            if (!is_op(cur(p), ",")) break;
            advance(p);
            if (!tuple) {
                if (!(tuple = node_new(p, JINJA_NODE_TUPLE, start)) || !add_kid(p, tuple, first, 0)) return NULL;
            }
            /* trailing comma: stop at a closer */
            const jinja_token *t = cur(p);
            if (is_op(t, ")") || t->kind == JINJA_TOK_VAR_END || t->kind == JINJA_TOK_BLOCK_END || is_name(t, "in"))
                break;
        }
        jinja_node *e = with_condexpr ? parse_expression(p, true) : parse_or(p);
        if (!e) return NULL;
        if (tuple) {
            if (!add_kid(p, tuple, e, 0)) return NULL;
        } else {
            first = e;
        }
    }
    (void)explicit_parens;
    return tuple ? tuple : first;
}

static jinja_node *parse_primary(parser *p) {
    const jinja_token *t = cur(p);
    jinja_node *nd;
    switch (t->kind) {
    case JINJA_TOK_NAME:
        if (!(nd = node_new(p, JINJA_NODE_LITERAL, t))) return NULL;
        if (is_name(t, "true") || is_name(t, "True")) nd->value = jinja_bool(true);
        else if (is_name(t, "false") || is_name(t, "False")) nd->value = jinja_bool(false);
        else if (is_name(t, "none") || is_name(t, "None")) nd->value = jinja_none();
        else {
            nd->kind = JINJA_NODE_NAME;
            nd->str = t->text;
        }
        advance(p);
        return nd;
    case JINJA_TOK_STRING: {
        if (!(nd = node_new(p, JINJA_NODE_LITERAL, t))) return NULL;
        jinja_str s = t->text;
        advance(p);
        if (cur(p)->kind == JINJA_TOK_STRING) { /* adjacent literals concatenate */
            jinja_buf b = {.arena = p->arena};
            if (!jinja_buf_append(&b, s.p, s.n, p->err)) return NULL;
            while (cur(p)->kind == JINJA_TOK_STRING) {
                if (!jinja_buf_append(&b, cur(p)->text.p, cur(p)->text.n, p->err)) return NULL;
                advance(p);
            }
            s = (jinja_str){b.p ? b.p : "", b.n};
        }
        nd->value = jinja_string(s.p, s.n);
        return nd;
    }
    case JINJA_TOK_INT:
    case JINJA_TOK_FLOAT:
        if (!(nd = node_new(p, JINJA_NODE_LITERAL, t))) return NULL;
        nd->value = t->kind == JINJA_TOK_INT ? jinja_int(t->i) : jinja_float(t->f);
        advance(p);
        return nd;
    case JINJA_TOK_OP:
        if (is_op(t, "(")) {
            advance(p);
            if (is_op(cur(p), ")")) {
                advance(p);
                return node_new(p, JINJA_NODE_TUPLE, t);
            }
            jinja_node *e = parse_tuple(p, true, true);
            if (!e) return NULL;
            if (!is_op(cur(p), ")")) return unexpected(p, "')'"), NULL;
            advance(p);
            return e;
        }
        if (is_op(t, "[") || is_op(t, "{")) {
            bool is_dict = is_op(t, "{");
            const char *closer = is_dict ? "}" : "]";
            if (!(nd = node_new(p, is_dict ? JINJA_NODE_DICT : JINJA_NODE_LIST, t))) return NULL;
            advance(p);
            while (!is_op(cur(p), closer)) {
                if (nd->n_kids) {
                    if (!is_op(cur(p), ",")) return unexpected(p, is_dict ? "',' or '}'" : "',' or ']'"), NULL;
                    advance(p);
                    if (is_op(cur(p), closer)) break;
                }
                jinja_node *e = parse_expression(p, true);
                if (!e || !add_kid(p, nd, e, 0)) return NULL;
                if (is_dict) {
                    if (!is_op(cur(p), ":")) return unexpected(p, "':'"), NULL;
                    advance(p);
                    jinja_node *v = parse_expression(p, true);
                    if (!v || !add_kid(p, nd, v, 0)) return NULL;
                }
            }
            advance(p);
            return nd;
        }
        break;
    default: break;
    }
    unexpected(p, "an expression");
    return NULL;
}

/* obj[...] with the current token '['. */
static jinja_node *parse_subscript(parser *p, jinja_node *obj) {
    const jinja_token *t = cur(p);
    advance(p);
    jinja_node *parts[3] = {NULL, NULL, NULL};
    bool is_slice = false;
    if (!is_op(cur(p), ":")) {
        if (!(parts[0] = parse_expression(p, true))) return NULL;
    }
    if (is_op(cur(p), ":")) {
        is_slice = true;
        advance(p);
        if (!is_op(cur(p), "]") && !is_op(cur(p), ":")) {
            if (!(parts[1] = parse_expression(p, true))) return NULL;
        }
        if (is_op(cur(p), ":")) {
            advance(p);
            if (!is_op(cur(p), "]")) {
                if (!(parts[2] = parse_expression(p, true))) return NULL;
            }
        }
    }
    if (!is_op(cur(p), "]")) return unexpected(p, "']'"), NULL;
    advance(p);
    jinja_node *nd = node_new(p, is_slice ? JINJA_NODE_SLICE : JINJA_NODE_GETITEM, t);
    if (!nd) return NULL;
    nd->a = obj;
    nd->b = parts[0];
    nd->c = parts[1];
    nd->d = parts[2];
    return nd;
}

static jinja_node *parse_postfix(parser *p, jinja_node *nd) {
    for (;;) {
        const jinja_token *t = cur(p);
        if (is_op(t, ".")) {
            advance(p);
            const jinja_token *name = cur(p);
            jinja_node *g;
            if (name->kind == JINJA_TOK_NAME) {
                if (!(g = node_new(p, JINJA_NODE_GETATTR, t))) return NULL;
                g->str = name->text;
            } else if (name->kind == JINJA_TOK_INT) { /* x.0 means x[0] */
                jinja_node *idx = node_new(p, JINJA_NODE_LITERAL, name);
                if (!idx || !(g = node_new(p, JINJA_NODE_GETITEM, t))) return NULL;
                idx->value = jinja_int(name->i);
                g->b = idx;
            } else {
                return unexpected(p, "an attribute name after '.'"), NULL;
            }
            advance(p);
            g->a = nd;
            nd = g;
        } else if (is_op(t, "[")) {
            if (!(nd = parse_subscript(p, nd))) return NULL;
        } else if (is_op(t, "(")) {
            jinja_node *call = node_new(p, JINJA_NODE_CALL, t);
            if (!call) return NULL;
            call->a = nd;
            call->line = nd->line; /* errors point at the callee, not at '(' */
            call->column = nd->column;
            if (!parse_call_args(p, call)) return NULL;
            nd = call;
        } else {
            return nd;
        }
    }
}

static jinja_node *parse_filters_and_tests(parser *p, jinja_node *nd) {
    for (;;) {
        const jinja_token *t = cur(p);
        if (is_op(t, "|")) {
            advance(p);
            const jinja_token *name = cur(p);
            if (name->kind != JINJA_TOK_NAME) return unexpected(p, "a filter name after '|'"), NULL;
            if (!jinja_filter_exists(name->text)) {
                char buf[80];
                snprintf(buf, sizeof buf, "%.*s", (int)(name->text.n > 60 ? 60 : name->text.n), name->text.p);
                return fail(p, name, "no filter named '%s'", buf), NULL;
            }
            jinja_node *f = node_new(p, JINJA_NODE_FILTER, name);
            if (!f) return NULL;
            f->a = nd;
            f->str = name->text;
            advance(p);
            if (is_op(cur(p), "(") && !parse_call_args(p, f)) return NULL;
            nd = f;
        } else if (is_name(t, "is")) {
            advance(p);
            bool negated = false;
            if (is_name(cur(p), "not")) {
                negated = true;
                advance(p);
            }
            const jinja_token *name = cur(p);
            if (name->kind != JINJA_TOK_NAME) return unexpected(p, "a test name after 'is'"), NULL;
            if (!jinja_test_exists(name->text)) {
                char buf[80];
                snprintf(buf, sizeof buf, "%.*s", (int)(name->text.n > 60 ? 60 : name->text.n), name->text.p);
                return fail(p, name, "no test named '%s'", buf), NULL;
            }
            jinja_node *test = node_new(p, JINJA_NODE_TEST, name);
            if (!test) return NULL;
            test->a = nd;
            test->str = name->text;
            test->op = negated;
            advance(p);
            const jinja_token *n2 = cur(p);
            if (is_op(n2, "(")) {
                if (!parse_call_args(p, test)) return NULL;
            } else if ((n2->kind == JINJA_TOK_NAME || n2->kind == JINJA_TOK_STRING || n2->kind == JINJA_TOK_INT ||
                        n2->kind == JINJA_TOK_FLOAT || is_op(n2, "[") || is_op(n2, "{")) &&
                       !is_name(n2, "else") && !is_name(n2, "or") && !is_name(n2, "and") && !is_name(n2, "is") &&
                       !is_name(n2, "if")) {
                jinja_node *arg = parse_primary(p); /* `x is divisibleby 3`, `x is in y` */
                if (!arg || !(arg = parse_postfix(p, arg)) || !add_kid(p, test, arg, 0)) return NULL;
            }
            nd = test;
        } else if (is_op(t, "(")) {
            jinja_node *call = node_new(p, JINJA_NODE_CALL, t);
            if (!call) return NULL;
            call->a = nd;
            call->line = nd->line; /* errors point at the callee, not at '(' */
            call->column = nd->column;
            if (!parse_call_args(p, call)) return NULL;
            nd = call;
        } else {
            return nd;
        }
    }
}

static jinja_node *parse_unary(parser *p, bool with_filter) {
    if (!enter(p)) return NULL;
    const jinja_token *t = cur(p);
    jinja_node *nd;
    if (is_op(t, "-") || is_op(t, "+")) {
        advance(p);
        jinja_node *operand = parse_unary(p, false);
        if (!operand || !(nd = node_new(p, JINJA_NODE_UNARY, t))) return NULL;
        nd->op = t->text.p[0];
        nd->a = operand;
    } else {
        if (!(nd = parse_primary(p)) || !(nd = parse_postfix(p, nd))) return NULL;
    }
    if (with_filter && !(nd = parse_filters_and_tests(p, nd))) return NULL;
    p->depth--;
    return nd;
}

static jinja_node *binary(parser *p, const jinja_token *at, int op, jinja_node *a, jinja_node *b) {
    jinja_node *nd = node_new(p, JINJA_NODE_BINARY, at);
    if (!nd) return NULL;
    nd->op = op;
    nd->a = a;
    nd->b = b;
    return nd;
}

static jinja_node *parse_pow(parser *p) {
    jinja_node *left = parse_unary(p, true);
    while (left && is_op(cur(p), "**")) {
        const jinja_token *t = cur(p);
        advance(p);
        jinja_node *right = parse_unary(p, true);
        left = right ? binary(p, t, JINJA_OP_POW, left, right) : NULL;
    }
    return left;
}

static jinja_node *parse_math2(parser *p) {
    jinja_node *left = parse_pow(p);
    for (;;) {
        const jinja_token *t = cur(p);
        int op = is_op(t, "*") ? JINJA_OP_MUL : is_op(t, "/") ? JINJA_OP_DIV : is_op(t, "//") ? JINJA_OP_FLOORDIV
               : is_op(t, "%") ? JINJA_OP_MOD : -1;
        if (!left || op < 0) return left;
        advance(p);
        jinja_node *right = parse_pow(p);
        left = right ? binary(p, t, op, left, right) : NULL;
    }
}

static jinja_node *parse_concat(parser *p) {
    jinja_node *first = parse_math2(p);
    if (!first || !is_op(cur(p), "~")) return first;
    jinja_node *nd = node_new(p, JINJA_NODE_CONCAT, cur(p));
    if (!nd || !add_kid(p, nd, first, 0)) return NULL;
    while (is_op(cur(p), "~")) {
        advance(p);
        jinja_node *e = parse_math2(p);
        if (!e || !add_kid(p, nd, e, 0)) return NULL;
    }
    return nd;
}

static jinja_node *parse_math1(parser *p) {
    jinja_node *left = parse_concat(p);
    for (;;) {
        const jinja_token *t = cur(p);
        int op = is_op(t, "+") ? JINJA_OP_ADD : is_op(t, "-") ? JINJA_OP_SUB : -1;
        if (!left || op < 0) return left;
        advance(p);
        jinja_node *right = parse_concat(p);
        left = right ? binary(p, t, op, left, right) : NULL;
    }
}

static jinja_node *parse_compare(parser *p) {
    jinja_node *first = parse_math1(p);
    jinja_node *cmp = NULL;
    for (;;) {
        if (!first) return NULL;
        const jinja_token *t = cur(p);
        int op = is_op(t, "==") ? JINJA_OP_EQ : is_op(t, "!=") ? JINJA_OP_NE : is_op(t, "<") ? JINJA_OP_LT
               : is_op(t, "<=") ? JINJA_OP_LE : is_op(t, ">") ? JINJA_OP_GT : is_op(t, ">=") ? JINJA_OP_GE
               : is_name(t, "in") ? JINJA_OP_IN : (is_name(t, "not") && is_name(peek(p, 1), "in")) ? JINJA_OP_NOTIN : -1;
        if (op < 0) return cmp ? cmp : first;
        advance(p);
        if (op == JINJA_OP_NOTIN) advance(p);
        if (!cmp) {
            if (!(cmp = node_new(p, JINJA_NODE_COMPARE, t))) return NULL;
            cmp->a = first;
        }
        jinja_node *right = parse_math1(p);
        if (!right || !add_kid(p, cmp, right, op)) return NULL;
    }
}

static jinja_node *parse_not(parser *p) {
    const jinja_token *t = cur(p);
    if (!is_name(t, "not")) return parse_compare(p);
    if (!enter(p)) return NULL;
    advance(p);
    jinja_node *operand = parse_not(p), *nd;
    if (!operand || !(nd = node_new(p, JINJA_NODE_UNARY, t))) return NULL;
    nd->op = 'n';
    nd->a = operand;
    p->depth--;
    return nd;
}

static jinja_node *parse_and(parser *p) {
    jinja_node *left = parse_not(p);
    while (left && is_name(cur(p), "and")) {
        const jinja_token *t = cur(p);
        advance(p);
        jinja_node *right = parse_not(p);
        jinja_node *nd = right ? node_new(p, JINJA_NODE_AND, t) : NULL;
        if (!nd) return NULL;
        nd->a = left;
        nd->b = right;
        left = nd;
    }
    return left;
}

static jinja_node *parse_or(parser *p) {
    jinja_node *left = parse_and(p);
    while (left && is_name(cur(p), "or")) {
        const jinja_token *t = cur(p);
        advance(p);
        jinja_node *right = parse_and(p);
        jinja_node *nd = right ? node_new(p, JINJA_NODE_OR, t) : NULL;
        if (!nd) return NULL;
        nd->a = left;
        nd->b = right;
        left = nd;
    }
    return left;
}

static jinja_node *parse_expression(parser *p, bool with_condexpr) {
    if (!enter(p)) return NULL;
    jinja_node *nd = parse_or(p);
    while (nd && with_condexpr && is_name(cur(p), "if")) {
        const jinja_token *t = cur(p);
        advance(p);
        jinja_node *cond = parse_or(p), *other = NULL;
        if (!cond) return NULL;
        if (is_name(cur(p), "else")) {
            advance(p);
            if (!(other = parse_expression(p, true))) return NULL;
        }
        jinja_node *ce = node_new(p, JINJA_NODE_CONDEXPR, t);
        if (!ce) return NULL;
        ce->a = cond;
        ce->b = nd;
        ce->c = other;
        nd = ce;
    }
    p->depth--;
    return nd;
}

/* ---- statements ----------------------------------------------------------------------------- */

static bool expect_block_end(parser *p) {
    if (cur(p)->kind != JINJA_TOK_BLOCK_END) return unexpected(p, "end of statement block '%}'");
    advance(p);
    return true;
}

/* An assignment target: a name, a tuple of names, or (with_attr) name.attr. */
static jinja_node *parse_target(parser *p, bool with_attr) {
    const jinja_token *t = cur(p);
    if (t->kind != JINJA_TOK_NAME) return unexpected(p, "a variable name"), NULL;
    jinja_node *nd = node_new(p, JINJA_NODE_NAME, t);
    if (!nd) return NULL;
    nd->str = t->text;
    advance(p);
    if (with_attr && is_op(cur(p), ".")) {
        advance(p);
        if (cur(p)->kind != JINJA_TOK_NAME) return unexpected(p, "an attribute name"), NULL;
        jinja_node *g = node_new(p, JINJA_NODE_GETATTR, t);
        if (!g) return NULL;
        g->a = nd;
        g->str = cur(p)->text;
        advance(p);
        return g;
    }
    if (!is_op(cur(p), ",")) return nd;
    jinja_node *tuple = node_new(p, JINJA_NODE_TUPLE, t);
    if (!tuple || !add_kid(p, tuple, nd, 0)) return NULL;
    while (is_op(cur(p), ",")) {
        advance(p);
        if (cur(p)->kind != JINJA_TOK_NAME) break;
        jinja_node *name = node_new(p, JINJA_NODE_NAME, cur(p));
        if (!name) return NULL;
        name->str = cur(p)->text;
        advance(p);
        if (!add_kid(p, tuple, name, 0)) return NULL;
    }
    return tuple;
}

/* Parses statements until a block tag whose name is one of `ends` (left unconsumed after its '{%').
 * `ends` NULL: until the end of the template. */
static jinja_node *parse_body(parser *p, const char *const *ends, const char *opened);

static bool at_end_tag(const parser *p, const char *const *ends) {
    if (cur(p)->kind != JINJA_TOK_BLOCK_BEGIN || !ends) return false;
    for (size_t i = 0; ends[i]; i++)
        if (is_name(peek(p, 1), ends[i])) return true;
    return false;
}

static jinja_node *parse_statement(parser *p) {
    const jinja_token *kw = cur(p);
    char buf[80];
    if (kw->kind != JINJA_TOK_NAME) return unexpected(p, "a statement name after '{%'"), NULL;
    advance(p);
    if (is_name(kw, "if") || is_name(kw, "elif")) {
        jinja_node *nd = node_new(p, JINJA_NODE_IF, kw);
        static const char *const ends[] = {"elif", "else", "endif", NULL};
        if (!nd || !(nd->a = parse_tuple(p, true, false)) || !expect_block_end(p)) return NULL;
        if (!(nd->b = parse_body(p, ends, "if"))) return NULL;
        advance(p); /* '{%' */
        const jinja_token *which = cur(p);
        if (is_name(which, "elif")) {
            nd->c = parse_statement(p);
            return nd->c ? nd : NULL;
        }
        advance(p);
        if (!expect_block_end(p)) return NULL;
        if (is_name(which, "else")) {
            static const char *const endif[] = {"endif", NULL};
            if (!(nd->c = parse_body(p, endif, "if"))) return NULL;
            advance(p);
            advance(p);
            if (!expect_block_end(p)) return NULL;
        }
        return nd;
    }
    if (is_name(kw, "for")) {
        jinja_node *nd = node_new(p, JINJA_NODE_FOR, kw);
        if (!nd || !(nd->a = parse_target(p, false))) return NULL;
        if (!is_name(cur(p), "in")) return unexpected(p, "'in'"), NULL;
        advance(p);
        if (!(nd->b = parse_tuple(p, false, false))) return NULL;
        if (is_name(cur(p), "if")) {
            advance(p);
            if (!(nd->e = parse_expression(p, true))) return NULL;
        }
        if (is_name(cur(p), "recursive")) return fail(p, cur(p), "%s", "recursive for loops are not supported"), NULL;
        if (!expect_block_end(p)) return NULL;
        static const char *const ends[] = {"endfor", "else", NULL};
        p->loop_depth++;
        nd->c = parse_body(p, ends, "for");
        p->loop_depth--;
        if (!nd->c) return NULL;
        advance(p);
        bool has_else = is_name(cur(p), "else");
        advance(p);
        if (!expect_block_end(p)) return NULL;
        if (has_else) {
            static const char *const endfor[] = {"endfor", NULL};
            if (!(nd->d = parse_body(p, endfor, "for"))) return NULL;
            advance(p);
            advance(p);
            if (!expect_block_end(p)) return NULL;
        }
        return nd;
    }
    if (is_name(kw, "set")) {
        jinja_node *nd = node_new(p, JINJA_NODE_SET, kw);
        if (!nd || !(nd->a = parse_target(p, true))) return NULL;
        if (is_op(cur(p), "=")) {
            advance(p);
            if (!(nd->b = parse_tuple(p, true, false)) || !expect_block_end(p)) return NULL;
            return nd;
        }
        if (nd->a->kind != JINJA_NODE_NAME) return unexpected(p, "'='"), NULL;
        if (!expect_block_end(p)) return NULL;
        static const char *const ends[] = {"endset", NULL};
        if (!(nd->c = parse_body(p, ends, "set"))) return NULL;
        advance(p);
        advance(p);
        if (!expect_block_end(p)) return NULL;
        return nd;
    }
    if (is_name(kw, "macro")) {
        jinja_node *nd = node_new(p, JINJA_NODE_MACRO, kw);
        if (!nd) return NULL;
        if (cur(p)->kind != JINJA_TOK_NAME) return unexpected(p, "a macro name"), NULL;
        nd->str = cur(p)->text;
        advance(p);
        if (!is_op(cur(p), "(")) return unexpected(p, "'('"), NULL;
        advance(p);
        while (!is_op(cur(p), ")")) {
            if (nd->n_kids && !is_op(cur(p), ",")) return unexpected(p, "',' or ')'"), NULL;
            if (nd->n_kids) advance(p);
            if (cur(p)->kind != JINJA_TOK_NAME) return unexpected(p, "a parameter name"), NULL;
            jinja_node *param = node_new(p, JINJA_NODE_NAME, cur(p));
            if (!param) return NULL;
            param->str = cur(p)->text;
            advance(p);
            if (is_op(cur(p), "=")) {
                advance(p);
                if (!(param->a = parse_expression(p, true))) return NULL; /* the default */
            }
            if (!add_kid(p, nd, param, 0)) return NULL;
        }
        advance(p);
        if (!expect_block_end(p)) return NULL;
        static const char *const ends[] = {"endmacro", NULL};
        int saved_loops = p->loop_depth;
        p->loop_depth = 0;
        nd->a = parse_body(p, ends, "macro");
        p->loop_depth = saved_loops;
        if (!nd->a) return NULL;
        advance(p);
        advance(p);
        if (!expect_block_end(p)) return NULL;
        return nd;
    }
    if (is_name(kw, "break") || is_name(kw, "continue")) {
        if (p->loop_depth == 0) return fail(p, kw, "'%s' outside of a loop", is_name(kw, "break") ? "break" : "continue"), NULL;
        jinja_node *nd = node_new(p, is_name(kw, "break") ? JINJA_NODE_BREAK : JINJA_NODE_CONTINUE, kw);
        if (!nd || !expect_block_end(p)) return NULL;
        return nd;
    }
    if (is_name(kw, "generation")) { /* HF's assistant-mask marker: render the body as is */
        if (!expect_block_end(p)) return NULL;
        static const char *const ends[] = {"endgeneration", NULL};
        jinja_node *body = parse_body(p, ends, "generation");
        if (!body) return NULL;
        advance(p);
        advance(p);
        if (!expect_block_end(p)) return NULL;
        return body;
    }
    snprintf(buf, sizeof buf, "%.*s", (int)(kw->text.n > 60 ? 60 : kw->text.n), kw->text.p);
    fail(p, kw, "unknown or misplaced tag '%s'", buf);
    return NULL;
}

static jinja_node *parse_body(parser *p, const char *const *ends, const char *opened) {
    if (!enter(p)) return NULL;
    jinja_node *body = node_new(p, JINJA_NODE_BODY, cur(p));
    if (!body) return NULL;
    for (;;) {
        const jinja_token *t = cur(p);
        if (t->kind == JINJA_TOK_EOF) {
            if (ends) {
                char msg[160];
                snprintf(msg, sizeof msg, "unexpected end of template: '%s' is never closed (expected '%s')", opened,
                         ends[0]);
                return fail(p, t, "%s", msg), NULL;
            }
            break;
        }
        if (at_end_tag(p, ends)) break;
        jinja_node *stmt = NULL;
        if (t->kind == JINJA_TOK_DATA) {
            if (!(stmt = node_new(p, JINJA_NODE_TEXT, t))) return NULL;
            stmt->str = t->text;
            advance(p);
        } else if (t->kind == JINJA_TOK_VAR_BEGIN) {
            advance(p);
            if (!(stmt = node_new(p, JINJA_NODE_OUTPUT, t)) || !(stmt->a = parse_tuple(p, true, false))) return NULL;
            if (cur(p)->kind != JINJA_TOK_VAR_END) return unexpected(p, "end of print statement '}}'"), NULL;
            advance(p);
        } else if (t->kind == JINJA_TOK_BLOCK_BEGIN) {
            advance(p);
            if (!(stmt = parse_statement(p))) return NULL;
        } else {
            return unexpected(p, "template data or a tag"), NULL;
        }
        if (!add_kid(p, body, stmt, 0)) return NULL;
    }
    p->depth--;
    return body;
}

bool jinja_parse(jinja_arena *a, const jinja_token_list *tokens, int max_depth, jinja_node **out, jinja_error *err) {
    parser p = {.arena = a, .toks = tokens->items, .n = tokens->n, .err = err, .max_depth = max_depth};
    *out = parse_body(&p, NULL, NULL);
    return *out != NULL;
}
