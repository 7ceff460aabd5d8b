/* tests/test_jinja.c - the Jinja interpreter (src/vocab/jinja*.c) against HF's jinja environment.
 *
 * 1. tests/fixtures/chat/jinja_cases.txt (made by tools/make_chat_fixtures.py): small templates with
 *    JSON variables, each rendered by transformers' chat-template environment. Every case must give
 *    the same bytes, or an error where HF raised one (raise_exception's text must come through).
 * 2. Error paths checked by hand: syntax errors carry line and column, unknown filters/tags fail at
 *    parse time, limits on nesting, recursion, output size and steps turn into errors, not crashes.
 * 3. Robustness: seeded random mutations of the fixture templates must parse or fail cleanly.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pagoda.h"       /* defines: pagoda_status, pagoda_last_error */
#include "testlib.h"      /* defines: CHECK, CHECK_MSG, test_read_file, test_seed */
#include "vocab/jinja.h"  /* defines: jinja_template_parse, jinja_context_*, jinja_template_render */

/* ---- fixture reader: "key value\n" or "key <n>\n<n bytes>\n" records ending with "end" ---------- */

typedef struct fixture {
    const char *data;
    size_t n, pos;
} fixture;

typedef struct field {
    char key[32];
    const char *value; /* not NUL-terminated */
    size_t len;
} field;

static bool is_sized(const char *key) {
    return !strcmp(key, "template") || !strcmp(key, "context") || !strcmp(key, "expect") || !strcmp(key, "error");
}

/* Reads the next field; false at the end of the data or on a malformed line. */
static bool next_field(fixture *fx, field *f) {
    while (fx->pos < fx->n && fx->data[fx->pos] == '#') { /* comment lines */
        const char *nl = memchr(fx->data + fx->pos, '\n', fx->n - fx->pos);
        fx->pos = nl ? (size_t)(nl - fx->data) + 1 : fx->n;
    }
    if (fx->pos >= fx->n) return false;
    const char *line = fx->data + fx->pos;
    const char *nl = memchr(line, '\n', fx->n - fx->pos);
    if (!nl) return false;
    size_t line_len = (size_t)(nl - line), key_len = 0;
    while (key_len < line_len && line[key_len] != ' ') key_len++;
    if (key_len >= sizeof f->key) return false;
    memcpy(f->key, line, key_len);
    f->key[key_len] = '\0';
    const char *rest = key_len < line_len ? line + key_len + 1 : nl;
    fx->pos += line_len + 1;
    if (!is_sized(f->key)) {
        f->value = rest;
        f->len = (size_t)(nl - rest);
        return true;
    }
    size_t n = (size_t)strtoull(rest, NULL, 10);
    if (fx->pos + n + 1 > fx->n || fx->data[fx->pos + n] != '\n') return false;
    f->value = fx->data + fx->pos;
    f->len = n;
    fx->pos += n + 1;
    return true;
}

/* ---- helpers -------------------------------------------------------------------------------- */

/* Renders `src` with JSON variables; returns the status, output in *out (malloc'd) on success. */
static pagoda_status render(const char *src, size_t src_len, const char *json, const jinja_limits *limits, char **out) {
    *out = NULL;
    jinja_template *t = NULL;
    jinja_context *ctx = NULL;
    pagoda_status st = jinja_template_parse(src, src_len, &t);
    if (st == PAGODA_OK) st = jinja_context_init(&ctx);
    if (st == PAGODA_OK && json) st = jinja_context_set_json_object(ctx, json, strlen(json));
    if (st == PAGODA_OK) st = jinja_template_render(t, ctx, limits, out, NULL);
    jinja_context_free(ctx);
    jinja_template_free(t);
    return st;
}

static pagoda_status render_str(const char *src, const char *json, char **out) {
    return render(src, strlen(src), json, NULL, out);
}

static void check_renders(const char *src, const char *json, const char *expect) {
    char *out;
    pagoda_status st = render_str(src, json, &out);
    CHECK_MSG(st == PAGODA_OK && out && strcmp(out, expect) == 0, "template %s: got %s (%s), expected %s", src,
              out ? out : "(error)", st ? pagoda_last_error() : "ok", expect);
    free(out);
}

/* Expects an error whose message contains every one of the NULL-terminated strings. */
static void check_fails(const char *src, const char *json, pagoda_status want, const char *const *needles) {
    char *out;
    pagoda_status st = render_str(src, json, &out);
    CHECK_MSG(st == want, "template %.60s: status %d (%s), expected %d", src, (int)st, pagoda_last_error(), (int)want);
    for (size_t i = 0; st != PAGODA_OK && needles && needles[i]; i++)
        CHECK_MSG(strstr(pagoda_last_error(), needles[i]) != NULL, "template %.60s: message '%s' lacks '%s'", src,
                  pagoda_last_error(), needles[i]);
    free(out);
}

/* ---- 1. fixtures rendered by HF ------------------------------------------------------------- */

static int run_fixtures(char **templates_out, size_t *n_templates_out) {
    size_t n;
    char *data = test_read_file("tests/fixtures/chat/jinja_cases.txt", &n);
    CHECK_MSG(data != NULL, "cannot read tests/fixtures/chat/jinja_cases.txt");
    if (!data) return 0;
    fixture fx = {data, n, 0};
    field f;
    char name[128] = "";
    const char *tmpl = NULL, *ctx_json = NULL, *expect = NULL, *error = NULL;
    size_t tmpl_len = 0, ctx_len = 0, expect_len = 0, error_len = 0;
    int n_cases = 0;
    size_t n_templates = 0;
    while (next_field(&fx, &f)) {
        if (!strcmp(f.key, "case")) {
            snprintf(name, sizeof name, "%.*s", (int)f.len, f.value);
            tmpl = ctx_json = expect = error = NULL;
        } else if (!strcmp(f.key, "template")) {
            tmpl = f.value;
            tmpl_len = f.len;
        } else if (!strcmp(f.key, "context")) {
            ctx_json = f.value;
            ctx_len = f.len;
        } else if (!strcmp(f.key, "expect")) {
            expect = f.value;
            expect_len = f.len;
        } else if (!strcmp(f.key, "error")) {
            error = f.value;
            error_len = f.len;
        } else if (!strcmp(f.key, "end")) {
            n_cases++;
            if (n_templates < 128) {
                char *copy = malloc(tmpl_len + 1);
                memcpy(copy, tmpl, tmpl_len);
                copy[tmpl_len] = '\0';
                templates_out[n_templates++] = copy;
            }
            char *json = malloc(ctx_len + 1);
            memcpy(json, ctx_json, ctx_len);
            json[ctx_len] = '\0';
            char *out = NULL;
            pagoda_status st = render(tmpl, tmpl_len, json, NULL, &out);
            if (expect) {
                CHECK_MSG(st == PAGODA_OK, "case %s: error %s", name, pagoda_last_error());
                if (st == PAGODA_OK)
                    CHECK_MSG(strlen(out) == expect_len && memcmp(out, expect, expect_len) == 0,
                              "case %s:\n  got      [%s]\n  expected [%.*s]", name, out, (int)expect_len, expect);
            } else {
                CHECK_MSG(st != PAGODA_OK, "case %s: HF raised (%.*s) but we rendered [%s]", name, (int)error_len,
                          error, out ? out : "");
                CHECK_MSG(st == PAGODA_OK || strlen(pagoda_last_error()) > 0, "case %s: error without a message", name);
                /* raise_exception's own text must reach the caller */
                const char *prefix = "TemplateError: ";
                if (error_len > strlen(prefix) && memcmp(error, prefix, strlen(prefix)) == 0) {
                    char want[256];
                    snprintf(want, sizeof want, "%.*s", (int)(error_len - strlen(prefix)), error + strlen(prefix));
                    CHECK_MSG(strstr(pagoda_last_error(), want) != NULL, "case %s: message '%s' lacks '%s'", name,
                              pagoda_last_error(), want);
                }
            }
            free(out);
            free(json);
        }
    }
    free(data);
    *n_templates_out = n_templates;
    return n_cases;
}

/* ---- 2. error paths and limits -------------------------------------------------------------- */

static void test_errors(void) {
    /* syntax errors report where they are */
    static const char *const pos1[] = {"line 2, column 8", NULL};
    check_fails("line one\n{{ 1 + }}", NULL, PAGODA_ERR_FORMAT, pos1);
    static const char *const pos2[] = {"line 3", "'if' is never closed", NULL};
    check_fails("a\nb\n{% if x %}never closed", NULL, PAGODA_ERR_FORMAT, pos2);
    static const char *const unk_filter[] = {"no filter named 'bogus'", "line 1, column 10", NULL};
    check_fails("{{ 'x' | bogus }}", NULL, PAGODA_ERR_FORMAT, unk_filter);
    /* unknown filters fail even in branches that never run (Jinja checks them at compile time) */
    static const char *const unk_filter2[] = {"no filter named 'bogus'", "line 1, column 22", NULL};
    check_fails("{% if false %}{{ x | bogus }}{% endif %}", NULL, PAGODA_ERR_FORMAT, unk_filter2);
    static const char *const unk_tag[] = {"frobnicate", NULL};
    check_fails("{% frobnicate %}", NULL, PAGODA_ERR_FORMAT, unk_tag);
    static const char *const unk_test[] = {"no test named 'bogus'", NULL};
    check_fails("{{ 1 is bogus }}", NULL, PAGODA_ERR_FORMAT, unk_test);
    static const char *const unterminated[] = {"unterminated string", "line 1, column 4", NULL};
    check_fails("{{ 'abc }}", NULL, PAGODA_ERR_FORMAT, unterminated);
    static const char *const stray_end[] = {"endfor", NULL};
    check_fails("{% endfor %}", NULL, PAGODA_ERR_FORMAT, stray_end);
    static const char *const brk[] = {"outside of a loop", NULL};
    check_fails("{% break %}", NULL, PAGODA_ERR_FORMAT, brk);
    check_fails("{{ x ", NULL, PAGODA_ERR_FORMAT, NULL);
    check_fails("{# never closed", NULL, PAGODA_ERR_FORMAT, NULL);
    check_fails("{% raw %}never closed", NULL, PAGODA_ERR_FORMAT, NULL);
    /* raise_exception: the template's message, with its position */
    static const char *const raised[] = {"Conversation roles must alternate", "line 1, column 32", NULL};
    check_fails("{% if messages|length > 1 %}{{ raise_exception('Conversation roles must alternate') }}{% endif %}",
                "{\"messages\": [1, 2]}", PAGODA_ERR_INVALID_ARGUMENT, raised);
    /* run-time errors */
    static const char *const undef[] = {"'nope' is undefined", NULL};
    check_fails("{{ nope.attr }}", NULL, PAGODA_ERR_FORMAT, undef);
    check_fails("{{ nope + 1 }}", NULL, PAGODA_ERR_FORMAT, undef);
    static const char *const concat[] = {"can only concatenate str", NULL};
    check_fails("{{ 'a' + 1 }}", NULL, PAGODA_ERR_FORMAT, concat);
    check_fails("{{ 1 / 0 }}", NULL, PAGODA_ERR_FORMAT, NULL);
    check_fails("{{ 9223372036854775807 + 1 }}", NULL, PAGODA_ERR_FORMAT, NULL);
    check_fails("{% set x = 1 %}{% set x.y = 2 %}", NULL, PAGODA_ERR_FORMAT, NULL);
    check_fails("{{ [1].append(2) }}", NULL, PAGODA_ERR_FORMAT, NULL);
    check_fails("{{ x | tojson }}", "{}", PAGODA_ERR_FORMAT, NULL); /* Undefined is not JSON serializable */

    /* limits: deep nesting is refused at parse time, not by a stack overflow */
    static const char *const deep[] = {"nests more than", NULL};
    size_t depth = 5000;
    char *src = malloc(depth * 2 + 16), *p = src;
    p += sprintf(p, "{{ ");
    for (size_t i = 0; i < depth; i++) *p++ = '(';
    *p++ = '1';
    for (size_t i = 0; i < depth; i++) *p++ = ')';
    sprintf(p, " }}");
    check_fails(src, NULL, PAGODA_ERR_INVALID_ARGUMENT, deep);
    free(src);
    src = malloc(depth * 24 + 16);
    p = src;
    for (size_t i = 0; i < depth; i++) p += sprintf(p, "{%% if true %%}");
    *p = '\0';
    check_fails(src, NULL, PAGODA_ERR_INVALID_ARGUMENT, deep);
    free(src);
    src = malloc(depth * 6 + 16);
    p = src + sprintf(src, "{{ ");
    for (size_t i = 0; i < depth; i++) p += sprintf(p, "not ");
    sprintf(p, "1 }}");
    check_fails(src, NULL, PAGODA_ERR_INVALID_ARGUMENT, deep);
    free(src);
    src = malloc(depth * 4 + 16); /* a long flat chain is fine to parse but too deep to evaluate */
    p = src + sprintf(src, "{{ 1");
    for (size_t i = 0; i < depth; i++) p += sprintf(p, " + 1");
    sprintf(p, " }}");
    check_fails(src, NULL, PAGODA_ERR_INVALID_ARGUMENT, NULL);
    free(src);
    /* unbounded recursion through a macro */
    static const char *const recursion[] = {"deep", NULL};
    check_fails("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", NULL, PAGODA_ERR_INVALID_ARGUMENT, recursion);
    /* output size and step budgets */
    jinja_limits lim = jinja_limits_default();
    lim.max_output_bytes = 1000;
    char *out = NULL;
    const char *big = "{% for i in range(100000) %}xxxxxxxxxx{% endfor %}";
    pagoda_status st = render(big, strlen(big), NULL, &lim, &out);
    CHECK_MSG(st == PAGODA_ERR_INVALID_ARGUMENT && strstr(pagoda_last_error(), "1000 bytes"), "output limit: %d %s",
              (int)st, pagoda_last_error());
    free(out);
    lim = jinja_limits_default();
    lim.max_steps = 10000;
    const char *slow = "{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}";
    st = render(slow, strlen(slow), NULL, &lim, &out);
    CHECK_MSG(st == PAGODA_ERR_INVALID_ARGUMENT && strstr(pagoda_last_error(), "steps"), "step limit: %d %s", (int)st,
              pagoda_last_error());
    free(out);
    lim = jinja_limits_default();
    lim.max_memory_bytes = 1 << 20;
    const char *hungry = "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}";
    st = render(hungry, strlen(hungry), NULL, &lim, &out);
    CHECK_MSG(st == PAGODA_ERR_INVALID_ARGUMENT, "memory limit: %d %s", (int)st, pagoda_last_error());
    free(out);
    check_fails("{{ 'ab' * 100000000000 }}", NULL, PAGODA_ERR_INVALID_ARGUMENT, NULL);

    /* API misuse */
    jinja_template *t = NULL;
    CHECK(jinja_template_parse(NULL, 5, &t) == PAGODA_ERR_INVALID_ARGUMENT);
    CHECK(jinja_template_parse("x", 1, NULL) == PAGODA_ERR_INVALID_ARGUMENT);
    jinja_context *ctx = NULL;
    CHECK(jinja_context_init(&ctx) == PAGODA_OK);
    CHECK(jinja_context_set_json(ctx, "x", "{\"a\": [1, 2", 11) == PAGODA_ERR_INVALID_ARGUMENT);
    CHECK(jinja_context_set_json_object(ctx, "[1]", 3) == PAGODA_ERR_INVALID_ARGUMENT);
    jinja_context_free(ctx);
    jinja_template_free(NULL);
    jinja_context_free(NULL);
}

/* Hand-checked behaviour the fixtures do not pin down (values taken from Python 3 / Jinja 3.1). */
static void test_semantics(void) {
    check_renders("", NULL, "");
    check_renders("\n", NULL, "");
    check_renders("a\r\nb\r\n", NULL, "a\nb");
    check_renders("{{ 'x' }}{{ \"y\" 'z' }}", NULL, "xyz");
    check_renders("{{ s }}", "{\"s\": \"caf\\u00e9 \\ud83d\\ude42\"}", "caf\xc3\xa9 \xf0\x9f\x99\x82");
    check_renders("{% raw %}{{ not evaluated }}{% endraw %}", NULL, "{{ not evaluated }}");
    check_renders("{{ {'a': {'b': 1}} }}", NULL, "{'a': {'b': 1}}"); /* '}}' inside braces does not end the tag */
    check_renders("{% set x = [1, 2, 3] %}{{ x[1:][0] }}{{ x | length }}", NULL, "23");
    check_renders("{{ ' \\u3000x\\u00a0'.strip() }}|{{ '\\u200bx'.strip() }}", NULL, "x|\xe2\x80\x8bx");
    check_renders("{{ none | tojson }}{{ [] | tojson(indent=2) }}{{ {'a': 1} | tojson(sort_keys=true) }}", NULL,
                  "null[]{\"a\": 1}");
    check_renders("{{ {'b': 1, 'a': 2} | tojson(sort_keys=true) }}", NULL, "{\"a\": 2, \"b\": 1}");
    check_renders("{{ '\\u00e9' | tojson(ensure_ascii=true) }}", NULL, "\"\\u00e9\"");
    check_renders("{{ messages[0].content }}", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}", "hi");
    check_renders("{{ 10 ** 18 }} {{ -9223372036854775807 - 1 }}", NULL, "1000000000000000000 -9223372036854775808");
}

/* ---- 3. robustness: random mutations never crash -------------------------------------------- */

static void test_mutations(char **templates, size_t n_templates) {
    uint64_t state = test_seed();
    static const char alphabet[] = "{}%#-+()[]'\"|.,:=~*/ \nabcxyz0129";
    int n_ok = 0, n_err = 0;
    for (int iter = 0; iter < 3000 && n_templates > 0; iter++) {
        const char *base = templates[test_rand_u64(&state) % n_templates];
        size_t n = strlen(base);
        char *src = malloc(n + 16);
        memcpy(src, base, n + 1);
        int n_edits = 1 + (int)(test_rand_u64(&state) % 4);
        for (int e = 0; e < n_edits; e++) {
            uint64_t r = test_rand_u64(&state);
            size_t at = n ? (size_t)(r % n) : 0;
            switch ((r >> 32) % 3) {
            case 0: if (n) src[at] = alphabet[(r >> 40) % (sizeof alphabet - 1)]; break; /* replace */
            case 1: if (n) { memmove(src + at, src + at + 1, n - at); n--; } break;    /* delete */
            default:                                                                  /* truncate */
                n = at;
                src[n] = '\0';
                break;
            }
        }
        const char *json = "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", "
                           "\"content\": \"yo\"}], \"add_generation_prompt\": true, \"bos_token\": \"<s>\", "
                           "\"eos_token\": \"</s>\", \"x\": 1, \"l\": [1, 2, 3], \"d\": {\"a\": 1}}";
        char *out = NULL;
        jinja_limits lim = jinja_limits_default();
        lim.max_steps = 100000;
        pagoda_status st = render(src, n, json, &lim, &out);
        if (st == PAGODA_OK) n_ok++;
        else n_err++;
        CHECK_MSG(st == PAGODA_OK || strlen(pagoda_last_error()) > 0, "mutation %d: error without a message", iter);
        free(out);
        free(src);
    }
    printf("mutations: %d rendered, %d rejected with an error\n", n_ok, n_err);
}

int main(void) {
    char *templates[128];
    size_t n_templates = 0;
    int n_cases = run_fixtures(templates, &n_templates);
    printf("%d HF-rendered jinja cases\n", n_cases);
    CHECK_MSG(n_cases >= 60, "expected at least 60 fixture cases, found %d", n_cases);
    test_errors();
    test_semantics();
    test_mutations(templates, n_templates);
    for (size_t i = 0; i < n_templates; i++) free(templates[i]);
    return test_finish();
}
