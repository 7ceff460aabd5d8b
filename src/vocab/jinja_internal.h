/* vocab/jinja_internal.h - the insides of the Jinja interpreter, shared by its files:
 *
 *   jinja_value.c     arena, values, Python-style str()/repr(), equality, Unicode whitespace, strings
 *   jinja_lex.c       source -> tokens (whitespace control, trim_blocks, lstrip_blocks, comments, raw)
 *   jinja_parse.c     tokens -> syntax tree
 *   jinja_eval.c      syntax tree + variables -> text (statements, expressions, scopes, limits)
 *   jinja_filters.c   filters (|trim, |tojson, ...) and the tables of filter and test names
 *   jinja_builtins.c  tests, global functions and methods of str/dict
 *   jinja_strings.c   Python string operations and argument helpers the two above share
 *   jinja_json.c      JSON text -> values (for callers' variables) and values -> JSON (the tojson filter)
 *   jinja.c           the public API of jinja.h
 *
 * Every value and syntax node lives in an arena that is freed at once: a template's nodes in its parse
 * arena, a render's temporaries in a render arena with a byte budget. Nothing here prints or exits;
 * errors are a jinja_error (message + line/column) carried back up as a false return.
 */
#ifndef PAGODA_VOCAB_JINJA_INTERNAL_H
#define PAGODA_VOCAB_JINJA_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vocab/jinja.h" /* defines: jinja_limits, jinja_template, jinja_context */

/* ---------------------------------------------------------------------------------------------
 * Arena: bump allocation from a chain of malloc'd blocks, with a budget on the total.
 */
typedef struct jinja_arena_block {
    struct jinja_arena_block *next;
    size_t used_bytes, cap_bytes;
    max_align_t data[]; /* [cap_bytes] bytes */
} jinja_arena_block;

typedef struct jinja_arena {
    jinja_arena_block *head;
    size_t total_bytes; /* bytes obtained from malloc so far */
    size_t max_bytes;   /* budget; 0 = unlimited */
} jinja_arena;

/* Returns zeroed memory, or NULL when malloc fails or the budget would be exceeded. */
void *jinja_arena_alloc(jinja_arena *a, size_t n_bytes);
void jinja_arena_free(jinja_arena *a);

/* ---------------------------------------------------------------------------------------------
 * Errors: the first failure wins; positions are 1-based (0 = unknown).
 */
typedef enum jinja_error_kind {
    JINJA_ERROR_NONE = 0,
    JINJA_ERROR_SYNTAX,    /* the template does not parse */
    JINJA_ERROR_RUNTIME,   /* a type error, an undefined variable used wrongly, ... */
    JINJA_ERROR_RAISED,    /* raise_exception('...') was called by the template */
    JINJA_ERROR_LIMIT,     /* depth, output, memory or step budget exceeded */
    JINJA_ERROR_NO_MEMORY, /* malloc failed */
} jinja_error_kind;

typedef struct jinja_error {
    jinja_error_kind kind;
    int line, column;
    char message[512];
} jinja_error;

/* Records an error unless one is already recorded; returns false for `return jinja_fail(...)`. */
bool jinja_fail(jinja_error *err, jinja_error_kind kind, int line, int column, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* ---------------------------------------------------------------------------------------------
 * Values. Strings are UTF-8 byte ranges (not NUL-terminated). Lists, dicts and namespaces are
 * arena objects; only namespaces are mutated after creation (by `{% set ns.x = ... %}`).
 */
typedef enum jinja_type {
    JINJA_UNDEFINED, /* s holds the name that was looked up (for error messages), may be empty */
    JINJA_NONE,
    JINJA_BOOL,
    JINJA_INT,
    JINJA_FLOAT,
    JINJA_STRING,
    JINJA_LIST,      /* also tuples: list->is_tuple */
    JINJA_DICT,      /* also namespaces: dict->is_namespace */
    JINJA_FUNCTION,  /* a global function: builtin holds a jinja_global_fn */
    JINJA_MACRO,     /* a {% macro %}: macro points at its syntax node */
} jinja_type;

typedef struct jinja_str {
    const char *p;
    size_t n;
} jinja_str;

struct jinja_list;
struct jinja_dict;
struct jinja_node;

typedef struct jinja_value {
    jinja_type type;
    union {
        bool b;
        int64_t i;
        double f;
        jinja_str s;
        struct jinja_list *list;
        struct jinja_dict *dict;
        int builtin;
        const struct jinja_node *macro;
    };
} jinja_value;

typedef struct jinja_list {
    size_t n, cap;
    jinja_value *items; /* [cap] */
    bool is_tuple;
} jinja_list;

typedef struct jinja_dict {
    size_t n, cap;
    jinja_value *keys; /* [cap], insertion order */
    jinja_value *vals; /* [cap] */
    bool is_namespace;
} jinja_dict;

typedef enum jinja_global_fn {
    JINJA_FN_RANGE,
    JINJA_FN_NAMESPACE,
    JINJA_FN_DICT,
    JINJA_FN_RAISE_EXCEPTION,
    JINJA_FN_STRFTIME_NOW,
} jinja_global_fn;

static inline jinja_value jinja_undefined(const char *name, size_t n) {
    jinja_value v = {.type = JINJA_UNDEFINED};
    v.s.p = name ? name : "";
    v.s.n = name ? n : 0;
    return v;
}
static inline jinja_value jinja_none(void) { return (jinja_value){.type = JINJA_NONE}; }
static inline jinja_value jinja_bool(bool b) { return (jinja_value){.type = JINJA_BOOL, .b = b}; }
static inline jinja_value jinja_int(int64_t i) { return (jinja_value){.type = JINJA_INT, .i = i}; }
static inline jinja_value jinja_float(double f) { return (jinja_value){.type = JINJA_FLOAT, .f = f}; }
static inline jinja_value jinja_string(const char *p, size_t n) {
    jinja_value v = {.type = JINJA_STRING};
    v.s.p = p;
    v.s.n = n;
    return v;
}

/* Growable byte buffer in an arena (old storage is abandoned on growth; the arena frees it). */
typedef struct jinja_buf {
    jinja_arena *arena; /* NULL: storage is malloc'd and owned by the buffer */
    char *p;
    size_t n, cap;
    size_t max_bytes; /* 0 = unlimited */
} jinja_buf;

bool jinja_buf_append(jinja_buf *b, const char *p, size_t n, jinja_error *err);
bool jinja_buf_append_cstr(jinja_buf *b, const char *s, jinja_error *err);
bool jinja_buf_printf(jinja_buf *b, jinja_error *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

jinja_list *jinja_list_new(jinja_arena *a, size_t cap);
bool jinja_list_push(jinja_arena *a, jinja_list *l, jinja_value v);
jinja_dict *jinja_dict_new(jinja_arena *a, size_t cap);
/* Replaces the value of an equal key, else appends. */
bool jinja_dict_set(jinja_arena *a, jinja_dict *d, jinja_value key, jinja_value v);
/* NULL when absent. */
jinja_value *jinja_dict_get(const jinja_dict *d, const char *key, size_t key_len);
jinja_value *jinja_dict_get_value(const jinja_dict *d, jinja_value key);
/* Copies bytes into the arena (NUL-terminated for convenience). */
char *jinja_strdup(jinja_arena *a, const char *p, size_t n);

bool jinja_truthy(jinja_value v);
bool jinja_equal(jinja_value a, jinja_value b);
const char *jinja_type_name(jinja_value v); /* Python's name: 'str', 'int', 'list', ... */

/* str(v) as Python/Jinja print it ({{ v }}); repr(v) as Python writes it inside a list. */
bool jinja_write_str(jinja_buf *b, jinja_value v, jinja_error *err);
bool jinja_write_repr(jinja_buf *b, jinja_value v, jinja_error *err);
/* Python's repr() of a float: shortest round-trip digits, "1e+16", "0.0001", "1.0", "inf". */
void jinja_format_float(double f, char out[40]);
/* str(v) as a new arena string. */
bool jinja_to_str(jinja_arena *a, jinja_value v, jinja_str *out, jinja_error *err);

/* UTF-8 helpers. Decoding never fails: an invalid byte decodes as itself (U+0080..U+00FF range). */
uint32_t jinja_utf8_decode(const char *p, size_t n, size_t *len);
size_t jinja_utf8_encode(uint32_t cp, char out[4]);
size_t jinja_utf8_count(const char *p, size_t n);
/* Byte offset of code point number `index` (index <= count). */
size_t jinja_utf8_offset(const char *p, size_t n, size_t index);
/* Python's str.isspace() for one code point. */
bool jinja_is_space(uint32_t cp);
/* Python's str.strip()/lstrip()/rstrip() with no argument: trims Unicode whitespace. */
jinja_str jinja_strip(jinja_str s, bool left, bool right);

/* ---------------------------------------------------------------------------------------------
 * Tokens (jinja_lex.c).
 */
typedef enum jinja_token_kind {
    JINJA_TOK_EOF,
    JINJA_TOK_DATA,        /* template text, already whitespace-controlled */
    JINJA_TOK_VAR_BEGIN,   /* {{ */
    JINJA_TOK_VAR_END,     /* }} */
    JINJA_TOK_BLOCK_BEGIN, /* {% */
    JINJA_TOK_BLOCK_END,   /* %} */
    JINJA_TOK_NAME,
    JINJA_TOK_STRING,      /* text holds the unescaped string */
    JINJA_TOK_INT,
    JINJA_TOK_FLOAT,
    JINJA_TOK_OP,          /* text holds the operator: + - * / // % ** ~ ( ) [ ] { } . , : | = == != < <= > >= */
} jinja_token_kind;

typedef struct jinja_token {
    jinja_token_kind kind;
    int line, column;
    jinja_str text;
    int64_t i;
    double f;
} jinja_token;

typedef struct jinja_token_list {
    jinja_token *items; /* [n], ends with JINJA_TOK_EOF */
    size_t n, cap;
} jinja_token_list;

/* Tokenizes `source` (newlines already normalised to "\n") with trim_blocks and lstrip_blocks on and
 * keep_trailing_newline off, as HF's chat-template environment does. */
bool jinja_lex(jinja_arena *a, const char *source, size_t n, jinja_token_list *out, jinja_error *err);

/* ---------------------------------------------------------------------------------------------
 * Syntax tree (jinja_parse.c). One node type; which fields a kind uses is noted per kind.
 */
typedef enum jinja_node_kind {
    /* statements */
    JINJA_NODE_BODY,     /* kids: statements */
    JINJA_NODE_TEXT,     /* str */
    JINJA_NODE_OUTPUT,   /* a: expression */
    JINJA_NODE_IF,       /* a: condition, b: body, c: else body (or an IF for elif), may be NULL */
    JINJA_NODE_FOR,      /* a: target (NAME or TUPLE of NAMEs), b: iterable, c: body, d: else body,
                            e: filter condition */
    JINJA_NODE_SET,      /* a: target (NAME, GETATTR of a namespace, TUPLE), b: value or NULL, c: block body */
    JINJA_NODE_MACRO,    /* str: name, kids: parameter NAMEs, kwargs: defaults, a: body */
    JINJA_NODE_BREAK,
    JINJA_NODE_CONTINUE,
    /* expressions */
    JINJA_NODE_LITERAL,  /* value */
    JINJA_NODE_NAME,     /* str */
    JINJA_NODE_LIST,     /* kids */
    JINJA_NODE_TUPLE,    /* kids */
    JINJA_NODE_DICT,     /* kids: key, value, key, value, ... */
    JINJA_NODE_GETATTR,  /* a: object, str: attribute */
    JINJA_NODE_GETITEM,  /* a: object, b: index */
    JINJA_NODE_SLICE,    /* a: object, b: start, c: stop, d: step (each may be NULL) */
    JINJA_NODE_CALL,     /* a: callee, kids: arguments, kwargs */
    JINJA_NODE_FILTER,   /* a: operand, str: filter name, kids: arguments, kwargs */
    JINJA_NODE_TEST,     /* a: operand, str: test name, kids: arguments, op: 1 when negated (is not) */
    JINJA_NODE_UNARY,    /* op: '-', '+' or 'n' (not), a: operand */
    JINJA_NODE_BINARY,   /* op: a jinja_binop, a, b */
    JINJA_NODE_COMPARE,  /* a: first operand, kids: further operands, ops: one jinja_binop per kid */
    JINJA_NODE_AND,      /* a, b */
    JINJA_NODE_OR,       /* a, b */
    JINJA_NODE_CONDEXPR, /* a: condition, b: value if true, c: value if false (NULL: undefined) */
    JINJA_NODE_CONCAT,   /* kids: operands of ~ */
} jinja_node_kind;

typedef enum jinja_binop {
    JINJA_OP_ADD, JINJA_OP_SUB, JINJA_OP_MUL, JINJA_OP_DIV, JINJA_OP_FLOORDIV, JINJA_OP_MOD, JINJA_OP_POW,
    JINJA_OP_EQ, JINJA_OP_NE, JINJA_OP_LT, JINJA_OP_LE, JINJA_OP_GT, JINJA_OP_GE, JINJA_OP_IN, JINJA_OP_NOTIN,
} jinja_binop;

typedef struct jinja_kwarg {
    jinja_str name;
    struct jinja_node *value;
} jinja_kwarg;

typedef struct jinja_node {
    jinja_node_kind kind;
    int line, column;
    int op;
    jinja_str str;
    jinja_value value;
    struct jinja_node *a, *b, *c, *d, *e;
    struct jinja_node **kids; /* [n_kids] */
    size_t n_kids;
    int *ops;                 /* [n_kids], COMPARE only */
    jinja_kwarg *kwargs;      /* [n_kwargs] */
    size_t n_kwargs;
} jinja_node;

enum { JINJA_DEFAULT_MAX_DEPTH = 200 };

/* Parses the tokens into a BODY node. */
bool jinja_parse(jinja_arena *a, const jinja_token_list *tokens, int max_depth, jinja_node **out,
                 jinja_error *err);

/* ---------------------------------------------------------------------------------------------
 * Evaluation (jinja_eval.c) and the builtins it calls (jinja_builtins.c).
 */
typedef struct jinja_frame {
    jinja_dict *vars;
    struct jinja_frame *parent;
} jinja_frame;

typedef struct jinja_eval {
    jinja_arena *arena;     /* the render arena */
    jinja_buf *out;         /* where text goes now (swapped for {% set %} blocks and macros) */
    jinja_frame *frame;     /* innermost scope */
    jinja_frame *root;      /* the caller's variables plus top-level sets */
    jinja_error *err;
    jinja_limits limits;
    int depth;
    uint64_t n_steps;
} jinja_eval;

/* A call's evaluated arguments. */
typedef struct jinja_args {
    jinja_value *pos;   /* [n_pos] */
    size_t n_pos;
    jinja_str *kw_names; /* [n_kw] */
    jinja_value *kw;    /* [n_kw] */
    size_t n_kw;
} jinja_args;

/* Runs a template body, writing to ev->out. */
bool jinja_eval_template(jinja_eval *ev, const jinja_node *body);
bool jinja_eval_expr(jinja_eval *ev, const jinja_node *node, jinja_value *out);
/* Iterates a value as Jinja's for loop does: list items, dict keys, string characters. */
bool jinja_iterate(jinja_eval *ev, const jinja_node *at, jinja_value v, jinja_list **out);
/* Calls a macro value with evaluated arguments. */
bool jinja_call_macro(jinja_eval *ev, const jinja_node *at, const jinja_node *macro, const jinja_args *args,
                      jinja_value *out);

bool jinja_apply_filter(jinja_eval *ev, const jinja_node *at, jinja_str name, jinja_value v,
                        const jinja_args *args, jinja_value *out);
bool jinja_apply_test(jinja_eval *ev, const jinja_node *at, jinja_str name, jinja_value v,
                      const jinja_args *args, bool *out);
bool jinja_call_global(jinja_eval *ev, const jinja_node *at, int fn, const jinja_args *args, jinja_value *out);
bool jinja_call_method(jinja_eval *ev, const jinja_node *at, jinja_value obj, jinja_str name,
                       const jinja_args *args, jinja_value *out);
/* True when `name` is a known filter (checked at parse time, as Jinja does). */
bool jinja_filter_exists(jinja_str name);
bool jinja_test_exists(jinja_str name);
/* Global functions by name (range, namespace, dict, raise_exception, strftime_now); -1 if none. */
int jinja_global_lookup(jinja_str name);

/* Helpers shared by jinja_builtins.c and jinja_filters.c (jinja_strings.c). */
bool jinja_builtin_fail(jinja_eval *ev, const jinja_node *at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
bool jinja_builtin_no_memory(jinja_eval *ev);
/* Argument i (positional) or the keyword `name` (may be NULL); false when absent. */
bool jinja_arg(const jinja_args *args, size_t i, const char *name, jinja_value *out);
/* Typed arguments: absent or none gives dflt; a wrong type is an error. */
bool jinja_arg_str(jinja_eval *ev, const jinja_node *at, const jinja_args *args, size_t i, const char *name,
                   jinja_str dflt, jinja_str *out);
bool jinja_arg_int(jinja_eval *ev, const jinja_node *at, const jinja_args *args, size_t i, const char *name,
                   int64_t dflt, int64_t *out);
bool jinja_arg_bool(const jinja_args *args, size_t i, const char *name, bool dflt);
bool jinja_need_string(jinja_eval *ev, const jinja_node *at, jinja_value v, const char *what, jinja_str *out);
typedef enum jinja_case_mode {
    JINJA_CASE_UPPER,
    JINJA_CASE_LOWER,
    JINJA_CASE_TITLE_FILTER, /* Jinja's title filter: words start after - ( { [ < or whitespace */
    JINJA_CASE_TITLE_METHOD, /* Python's str.title(): words start after an uncased character */
    JINJA_CASE_CAPITALIZE,
} jinja_case_mode;
bool jinja_change_case(jinja_eval *ev, jinja_str s, jinja_case_mode mode, jinja_value *out);
bool jinja_splitlines(jinja_eval *ev, jinja_str s, jinja_list **out);
/* str.split(sep=None, maxsplit=-1) with the arguments in args */
bool jinja_split(jinja_eval *ev, const jinja_node *at, jinja_str s, const jinja_args *args, jinja_value *out);
/* str.strip/lstrip/rstrip(chars=None) with the arguments in args */
bool jinja_strip_chars(jinja_eval *ev, const jinja_node *at, jinja_str s, const jinja_args *args, bool left,
                       bool right, jinja_value *out);
/* str.replace(old, new, count=-1) with the arguments in args */
bool jinja_replace(jinja_eval *ev, const jinja_node *at, jinja_str s, const jinja_args *args, jinja_value *out);
/* startswith/endswith with a string or a tuple of strings */
bool jinja_affix_match(jinja_eval *ev, const jinja_node *at, jinja_str s, jinja_value affix, bool prefix, bool *out);
/* Follows a dotted attribute path ("a.b", "items.0") through dicts and lists; undefined when missing. */
jinja_value jinja_attribute_path(jinja_value v, jinja_str path);
static inline jinja_value jinja_str_value(const jinja_buf *b) { return jinja_string(b->p ? b->p : "", b->n); }
static inline jinja_value jinja_list_value(jinja_list *l) { return (jinja_value){.type = JINJA_LIST, .list = l}; }

/* JSON (jinja_json.c). */
bool jinja_json_parse(jinja_arena *a, const char *text, size_t n, jinja_value *out, jinja_error *err);
/* As Python's json.dumps: indent < 0 gives one line with ", " and ": " separators, else one item per
 * line indented by `indent` spaces per level; ensure_ascii escapes non-ASCII as \uXXXX. */
bool jinja_json_dump(jinja_buf *b, jinja_value v, int indent, bool sort_keys, bool ensure_ascii, int depth,
                     jinja_error *err);

static inline bool jinja_str_eq(jinja_str s, const char *c) {
    size_t n = 0;
    while (c[n]) n++;
    if (n != s.n) return false;
    for (size_t i = 0; i < n; i++)
        if (s.p[i] != c[i]) return false;
    return true;
}

#endif
