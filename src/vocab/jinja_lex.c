/* vocab/jinja_lex.c - Jinja source -> tokens, with the whitespace rules of HF's environment:
 *
 *   trim_blocks=True            the first "\n" after a block tag or comment is dropped;
 *   lstrip_blocks=True          spaces/tabs between a line start and a block tag or comment are dropped
 *                               (not before {{ }}; "{%+" turns it off for one tag);
 *   keep_trailing_newline=False one trailing newline of the template is dropped (done by the caller
 *                               together with newline normalisation);
 *   "{%-" "{{-" "{#-"           strip all whitespace before the tag, "-%}" "-}}" "-#}" all after it.
 *
 * Comments vanish here; {% raw %}...{% endraw %} becomes one DATA token. Inside a tag the expression
 * is cut into names, numbers, strings (unescaped here) and operators. A tag ends at "}}" / "%}" only
 * when no bracket is open, as in Jinja. Not handled: line statements, custom delimiters.
 */
#include "vocab/jinja_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct lexer {
    jinja_arena *arena;
    const char *src;
    size_t n;
    size_t pos;
    jinja_token_list *out;
    jinja_error *err;
    size_t cursor; /* position() resumes from here: tokens mostly come in source order */
    int cursor_line, cursor_column;
} lexer;

/* 1-based line and column (in code points) of a source offset. */
static void position(lexer *lx, size_t offset, int *line, int *column) {
    if (offset < lx->cursor || lx->cursor_line == 0) {
        lx->cursor = 0;
        lx->cursor_line = 1;
        lx->cursor_column = 1;
    }
    for (size_t i = lx->cursor; i < offset && i < lx->n; i++) {
        if (lx->src[i] == '\n') {
            lx->cursor_line++;
            lx->cursor_column = 1;
        } else if (((unsigned char)lx->src[i] & 0xc0) != 0x80) {
            lx->cursor_column++;
        }
    }
    lx->cursor = offset < lx->n ? offset : lx->n;
    *line = lx->cursor_line;
    *column = lx->cursor_column;
}

static bool fail_at(lexer *lx, size_t offset, const char *msg) {
    int line, column;
    position(lx, offset, &line, &column);
    return jinja_fail(lx->err, JINJA_ERROR_SYNTAX, line, column, "%s", msg);
}

static bool push(lexer *lx, jinja_token_kind kind, size_t offset, jinja_str text) {
    jinja_token_list *tl = lx->out;
    if (tl->n == tl->cap) {
        size_t cap = tl->cap ? tl->cap * 2 : 64;
        jinja_token *items = jinja_arena_alloc(lx->arena, cap * sizeof *items);
        if (!items) return jinja_fail(lx->err, JINJA_ERROR_NO_MEMORY, 0, 0, "out of memory");
        if (tl->n) memcpy(items, tl->items, tl->n * sizeof *items);
        tl->items = items;
        tl->cap = cap;
    }
    jinja_token *t = &tl->items[tl->n++];
    memset(t, 0, sizeof *t);
    t->kind = kind;
    t->text = text;
    position(lx, offset, &t->line, &t->column);
    return true;
}

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
static bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static bool is_name_char(char c) { return is_name_start(c) || (c >= '0' && c <= '9'); }

/* Skips all whitespace (after a "-%}" style end), Python-style: Unicode whitespace too. */
static size_t skip_space(const lexer *lx, size_t pos) {
    jinja_str rest = {lx->src + pos, lx->n - pos};
    jinja_str stripped = jinja_strip(rest, true, false);
    return (size_t)(stripped.p - lx->src);
}

/* Emits template text src[begin, end) before a tag that starts at `end`. `sign` is the character
 * after the tag opener ('-', '+' or other); `lstrip` says whether lstrip_blocks applies to the tag. */
static bool emit_data(lexer *lx, size_t begin, size_t end, char sign, bool lstrip) {
    jinja_str text = {lx->src + begin, end - begin};
    if (sign == '-') {
        text = jinja_strip(text, false, true);
    } else if (sign != '+' && lstrip) {
        size_t l_pos = text.n;
        while (l_pos > 0 && text.p[l_pos - 1] != '\n') l_pos--;
        bool line_starting = begin == 0 || lx->src[begin - 1] == '\n';
        if (l_pos > 0 || line_starting) {
            size_t k = l_pos;
            while (k < text.n && is_ws(text.p[k])) k++;
            if (k == text.n && k > l_pos) text.n = l_pos;
        }
    }
    if (text.n == 0) return true;
    return push(lx, JINJA_TOK_DATA, begin, text);
}

/* Reads a quoted string starting at lx->pos (the quote), unescaping Python-style escapes. */
static bool lex_string(lexer *lx) {
    size_t start = lx->pos;
    char quote = lx->src[lx->pos++];
    jinja_buf b = {.arena = lx->arena};
    while (lx->pos < lx->n && lx->src[lx->pos] != quote) {
        char c = lx->src[lx->pos];
        if (c != '\\') {
            size_t run = lx->pos;
            while (run < lx->n && lx->src[run] != quote && lx->src[run] != '\\') run++;
            if (!jinja_buf_append(&b, lx->src + lx->pos, run - lx->pos, lx->err)) return false;
            lx->pos = run;
            continue;
        }
        if (lx->pos + 1 >= lx->n) break;
        char e = lx->src[lx->pos + 1];
        lx->pos += 2;
        char out[4];
        size_t out_len = 1;
        switch (e) {
        case 'n': out[0] = '\n'; break;
        case 't': out[0] = '\t'; break;
        case 'r': out[0] = '\r'; break;
        case 'b': out[0] = '\b'; break;
        case 'f': out[0] = '\f'; break;
        case 'v': out[0] = '\v'; break;
        case 'a': out[0] = '\a'; break;
        case '0': out[0] = '\0'; break;
        case '\\': out[0] = '\\'; break;
        case '\'': out[0] = '\''; break;
        case '"': out[0] = '"'; break;
        case '\n': out_len = 0; break; /* line continuation */
        case 'x':
        case 'u':
        case 'U': {
            size_t n_hex = e == 'x' ? 2 : e == 'u' ? 4 : 8;
            if (lx->pos + n_hex > lx->n) return fail_at(lx, lx->pos - 2, "truncated \\x/\\u escape in a string");
            uint32_t cp = 0;
            for (size_t k = 0; k < n_hex; k++) {
                char h = lx->src[lx->pos + k];
                int d = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10
                      : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
                if (d < 0) return fail_at(lx, lx->pos - 2, "bad hex digit in a \\x/\\u escape");
                cp = cp * 16 + (uint32_t)d;
            }
            if (cp > 0x10ffff) return fail_at(lx, lx->pos - 2, "escape beyond U+10FFFF");
            lx->pos += n_hex;
            out_len = jinja_utf8_encode(cp, out);
            break;
        }
        default: /* unknown escapes keep the backslash, as Python does */
            out[0] = '\\';
            out[1] = e;
            out_len = 2;
            break;
        }
        if (!jinja_buf_append(&b, out, out_len, lx->err)) return false;
    }
    if (lx->pos >= lx->n) return fail_at(lx, start, "unterminated string literal");
    lx->pos++; /* closing quote */
    return push(lx, JINJA_TOK_STRING, start, (jinja_str){b.p ? b.p : "", b.n});
}

static bool lex_number(lexer *lx) {
    size_t start = lx->pos;
    bool is_float = false;
    while (lx->pos < lx->n && ((lx->src[lx->pos] >= '0' && lx->src[lx->pos] <= '9') || lx->src[lx->pos] == '_'))
        lx->pos++;
    if (lx->pos + 1 < lx->n && lx->src[lx->pos] == '.' && lx->src[lx->pos + 1] >= '0' && lx->src[lx->pos + 1] <= '9') {
        is_float = true;
        lx->pos++;
        while (lx->pos < lx->n && ((lx->src[lx->pos] >= '0' && lx->src[lx->pos] <= '9') || lx->src[lx->pos] == '_'))
            lx->pos++;
    }
    if (lx->pos < lx->n && (lx->src[lx->pos] == 'e' || lx->src[lx->pos] == 'E')) {
        size_t k = lx->pos + 1;
        if (k < lx->n && (lx->src[k] == '+' || lx->src[k] == '-')) k++;
        if (k < lx->n && lx->src[k] >= '0' && lx->src[k] <= '9') {
            is_float = true;
            while (k < lx->n && lx->src[k] >= '0' && lx->src[k] <= '9') k++;
            lx->pos = k;
        }
    }
    char tmp[64];
    size_t len = 0;
    for (size_t i = start; i < lx->pos && len < sizeof tmp - 1; i++)
        if (lx->src[i] != '_') tmp[len++] = lx->src[i];
    tmp[len] = '\0';
    if (!push(lx, is_float ? JINJA_TOK_FLOAT : JINJA_TOK_INT, start, (jinja_str){lx->src + start, lx->pos - start}))
        return false;
    jinja_token *t = &lx->out->items[lx->out->n - 1];
    errno = 0;
    if (is_float) {
        t->f = strtod(tmp, NULL);
    } else {
        t->i = strtoll(tmp, NULL, 10);
        if (errno == ERANGE) return fail_at(lx, start, "integer literal too large");
    }
    return true;
}

static const char *const OPERATORS[] = {"**", "//", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "(",
                                        ")", "[", "]", "{", "}", ".", ",", ":", "|", "=", "<", ">"};

/* Lexes the inside of a tag up to its closing "}}" or "%}" (kind VAR_END or BLOCK_END). */
static bool lex_tag(lexer *lx, size_t tag_start, char closer, jinja_token_kind end_kind) {
    int depth = 0;
    for (;;) {
        while (lx->pos < lx->n && is_ws(lx->src[lx->pos])) lx->pos++;
        if (lx->pos >= lx->n)
            return fail_at(lx, tag_start, closer == '}' ? "unexpected end of template: '{{' is never closed"
                                                        : "unexpected end of template: '{%' is never closed");
        const char *s = lx->src + lx->pos;
        size_t left = lx->n - lx->pos;
        if (depth == 0) {
            bool minus = s[0] == '-' && left >= 3 && s[1] == closer && s[2] == '}';
            bool plus = s[0] == '+' && left >= 3 && s[1] == closer && s[2] == '}' && closer == '%';
            if (minus || plus || (left >= 2 && s[0] == closer && s[1] == '}')) {
                if (!push(lx, end_kind, lx->pos, (jinja_str){s, 2})) return false;
                lx->pos += minus || plus ? 3 : 2;
                if (minus) lx->pos = skip_space(lx, lx->pos);
                else if (closer == '%' && !plus && lx->pos < lx->n && lx->src[lx->pos] == '\n') lx->pos++;
                return true;
            }
        }
        char c = s[0];
        if (c == '\'' || c == '"') {
            if (!lex_string(lx)) return false;
        } else if (c >= '0' && c <= '9') {
            if (!lex_number(lx)) return false;
        } else if (is_name_start(c)) {
            size_t k = lx->pos;
            while (k < lx->n && is_name_char(lx->src[k])) k++;
            if (!push(lx, JINJA_TOK_NAME, lx->pos, (jinja_str){s, k - lx->pos})) return false;
            lx->pos = k;
        } else {
            const char *op = NULL;
            for (size_t i = 0; i < sizeof OPERATORS / sizeof *OPERATORS; i++) {
                size_t len = strlen(OPERATORS[i]);
                if (left >= len && memcmp(s, OPERATORS[i], len) == 0) {
                    op = OPERATORS[i];
                    break;
                }
            }
            if (!op) {
                char msg[64];
                snprintf(msg, sizeof msg, "unexpected character '%c'", c);
                return fail_at(lx, lx->pos, msg);
            }
            if (op[0] == '(' || op[0] == '[' || op[0] == '{') depth++;
            if ((op[0] == ')' || op[0] == ']' || op[0] == '}') && depth > 0) depth--;
            size_t len = strlen(op);
            if (!push(lx, JINJA_TOK_OP, lx->pos, (jinja_str){op, len})) return false;
            lx->pos += len;
        }
    }
}

/* After "{%" (and its sign) at lx->pos: if the tag is "raw", emits its body as data. */
static bool try_raw(lexer *lx, bool *was_raw) {
    size_t k = lx->pos;
    while (k < lx->n && is_ws(lx->src[k])) k++;
    *was_raw = false;
    if (lx->n - k < 3 || memcmp(lx->src + k, "raw", 3) != 0) return true;
    k += 3;
    while (k < lx->n && is_ws(lx->src[k])) k++;
    bool minus = k < lx->n && lx->src[k] == '-';
    if (minus) k++;
    if (lx->n - k < 2 || memcmp(lx->src + k, "%}", 2) != 0) return true;
    k += 2;
    if (minus) k = skip_space(lx, k);
    else if (k < lx->n && lx->src[k] == '\n') k++;
    size_t body = k;
    for (size_t i = body; i + 1 < lx->n; i++) {
        if (lx->src[i] != '{' || lx->src[i + 1] != '%') continue;
        size_t j = i + 2;
        char sign = j < lx->n ? lx->src[j] : 0;
        if (sign == '-' || sign == '+') j++;
        while (j < lx->n && is_ws(lx->src[j])) j++;
        if (lx->n - j < 6 || memcmp(lx->src + j, "endraw", 6) != 0) continue;
        j += 6;
        while (j < lx->n && is_ws(lx->src[j])) j++;
        bool end_minus = j < lx->n && lx->src[j] == '-';
        if (end_minus) j++;
        if (lx->n - j < 2 || memcmp(lx->src + j, "%}", 2) != 0) continue;
        if (!emit_data(lx, body, i, sign, true)) return false;
        lx->pos = j + 2;
        if (end_minus) lx->pos = skip_space(lx, lx->pos);
        else if (lx->pos < lx->n && lx->src[lx->pos] == '\n') lx->pos++;
        *was_raw = true;
        return true;
    }
    return fail_at(lx, body, "missing {% endraw %}");
}

bool jinja_lex(jinja_arena *a, const char *source, size_t n, jinja_token_list *out, jinja_error *err) {
    lexer lx = {.arena = a, .src = source, .n = n, .out = out, .err = err};
    memset(out, 0, sizeof *out);
    while (lx.pos < n) {
        size_t data_begin = lx.pos, k = lx.pos;
        const char *open = NULL;
        while (k + 1 < n) {
            if (source[k] == '{' && (source[k + 1] == '{' || source[k + 1] == '%' || source[k + 1] == '#')) {
                open = source + k;
                break;
            }
            k++;
        }
        if (!open) {
            if (!emit_data(&lx, data_begin, n, 0, false)) return false;
            break;
        }
        char kind = open[1];
        char sign = k + 2 < n ? source[k + 2] : 0;
        if (!emit_data(&lx, data_begin, k, sign, kind != '{')) return false;
        lx.pos = k + 2 + (sign == '-' || sign == '+' ? 1 : 0);
        if (kind == '#') {
            const char *end = NULL;
            for (size_t i = lx.pos; i + 1 < n; i++)
                if (source[i] == '#' && source[i + 1] == '}') {
                    end = source + i;
                    break;
                }
            if (!end) return fail_at(&lx, k, "unexpected end of template: comment '{#' is never closed");
            size_t end_pos = (size_t)(end - source);
            bool minus = end_pos > lx.pos && source[end_pos - 1] == '-';
            lx.pos = end_pos + 2;
            if (minus) lx.pos = skip_space(&lx, lx.pos);
            else if (lx.pos < n && source[lx.pos] == '\n') lx.pos++;
            continue;
        }
        if (kind == '%') {
            bool was_raw;
            if (!try_raw(&lx, &was_raw)) return false;
            if (was_raw) continue;
        }
        if (!push(&lx, kind == '{' ? JINJA_TOK_VAR_BEGIN : JINJA_TOK_BLOCK_BEGIN, k, (jinja_str){open, 2})) return false;
        if (!lex_tag(&lx, k, kind == '{' ? '}' : '%', kind == '{' ? JINJA_TOK_VAR_END : JINJA_TOK_BLOCK_END))
            return false;
    }
    return push(&lx, JINJA_TOK_EOF, n, (jinja_str){"", 0});
}
