/* tests/test_chat_template.c - chat templates against HF's apply_chat_template(tokenize=False).
 *
 * tests/fixtures/chat/chat_cases.txt (made by tools/make_chat_fixtures.py) holds, for each real
 * model template in tests/fixtures/chat/templates/ (SmolLM2 from its GGUF, Qwen2, ChatML,
 * Llama 3, Llama 3.1, Llama 2, Mistral v0.1, Mixtral) and each conversation (system+user, user
 * only, multi-turn, special characters/newlines/Unicode, empty content, roles that do not
 * alternate, ...) with add_generation_prompt false and true, HF's rendered text or HF's error.
 * Every case is rendered (a) with the model's own template through the Jinja interpreter and
 * (b) with the matching built-in; both must equal HF's bytes, or fail where HF failed (with the
 * template's raise_exception message). Also checked: built-in detection from template text, the
 * fallback of chat_template_init_auto, and argument errors.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pagoda.h"               /* defines: pagoda_status, pagoda_last_error */
#include "testlib.h"              /* defines: CHECK, CHECK_MSG, test_read_file */
#include "vocab/chat_template.h"  /* defines: chat_template_*, chat_message */

/* ---- fixture reader: "key value\n" or "key <n>\n<n bytes>\n" records ending with "end" ---------- */

typedef struct fixture {
    const char *data;
    size_t n, pos;
} fixture;

typedef struct field {
    char key[32];
    char *value; /* malloc'd, NUL-terminated */
    size_t len;
} field;

static bool is_sized(const char *key) {
    return !strcmp(key, "bos") || !strcmp(key, "eos") || !strcmp(key, "content") || !strcmp(key, "expect") ||
           !strcmp(key, "error");
}

static bool next_field(fixture *fx, field *f) {
    while (fx->pos < fx->n && fx->data[fx->pos] == '#') {
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
    const char *value = rest;
    size_t n = (size_t)(nl - rest);
    if (is_sized(f->key)) {
        n = (size_t)strtoull(rest, NULL, 10);
        if (fx->pos + n + 1 > fx->n || fx->data[fx->pos + n] != '\n') return false;
        value = fx->data + fx->pos;
        fx->pos += n + 1;
    }
    f->value = malloc(n + 1);
    memcpy(f->value, value, n);
    f->value[n] = '\0';
    f->len = n;
    return true;
}

/* ---- one case ------------------------------------------------------------------------------- */

enum { MAX_MESSAGES = 16 };

typedef struct chat_case {
    char name[128];
    char family[32], builtin[32];
    char *bos, *eos;
    bool add_generation_prompt;
    char *roles[MAX_MESSAGES], *contents[MAX_MESSAGES];
    size_t n_messages;
    char *expect, *error; /* exactly one is set */
    size_t expect_len;
} chat_case;

static void case_clear(chat_case *c) {
    free(c->bos);
    free(c->eos);
    free(c->expect);
    free(c->error);
    for (size_t i = 0; i < c->n_messages; i++) {
        free(c->roles[i]);
        free(c->contents[i]);
    }
    memset(c, 0, sizeof *c);
}

static char *template_text(const char *family) {
    char path[256];
    snprintf(path, sizeof path, "tests/fixtures/chat/templates/%s.jinja", family);
    return test_read_file(path, NULL);
}

/* Renders the case with t and compares with HF's result. */
static void check_case(const chat_case *c, const chat_template *t, const char *how) {
    chat_message msgs[MAX_MESSAGES];
    for (size_t i = 0; i < c->n_messages; i++) msgs[i] = (chat_message){c->roles[i], c->contents[i]};
    char *out = NULL;
    pagoda_status st = chat_template_apply(t, msgs, c->n_messages, c->add_generation_prompt, &out);
    if (c->expect) {
        CHECK_MSG(st == PAGODA_OK, "%s [%s]: error %s", c->name, how, pagoda_last_error());
        if (st == PAGODA_OK)
            CHECK_MSG(strlen(out) == c->expect_len && memcmp(out, c->expect, c->expect_len) == 0,
                      "%s [%s]:\n  got      [%s]\n  expected [%s]", c->name, how, out, c->expect);
    } else {
        CHECK_MSG(st == PAGODA_ERR_INVALID_ARGUMENT, "%s [%s]: HF raised '%s' but we gave status %d [%s]", c->name, how,
                  c->error, (int)st, out ? out : pagoda_last_error());
        if (st != PAGODA_OK)
            CHECK_MSG(strstr(pagoda_last_error(), c->error) != NULL, "%s [%s]: message '%s' lacks HF's '%s'", c->name,
                      how, pagoda_last_error(), c->error);
    }
    free(out);
}

static void run_case(const chat_case *c, int *n_jinja, int *n_builtin) {
    char *src = template_text(c->family);
    CHECK_MSG(src != NULL, "%s: cannot read template %s", c->name, c->family);
    if (!src) return;
    chat_template *t = NULL;
    pagoda_status st = chat_template_init(src, c->bos, c->eos, &t);
    CHECK_MSG(st == PAGODA_OK, "%s: template does not parse: %s", c->name, pagoda_last_error());
    if (st == PAGODA_OK) {
        CHECK(strcmp(chat_template_name(t), "jinja") == 0);
        check_case(c, t, "jinja");
        (*n_jinja)++;
    }
    chat_template_free(t);

    const char *detected = chat_template_detect_builtin(src);
    CHECK_MSG(detected && strcmp(detected, c->builtin) == 0, "%s: detected built-in %s, expected %s", c->name,
              detected ? detected : "(none)", c->builtin);
    st = chat_template_init_builtin(c->builtin, c->bos, c->eos, &t);
    CHECK_MSG(st == PAGODA_OK, "%s: no built-in %s: %s", c->name, c->builtin, pagoda_last_error());
    if (st == PAGODA_OK) {
        CHECK(strcmp(chat_template_name(t), c->builtin) == 0);
        check_case(c, t, c->builtin);
        (*n_builtin)++;
    }
    chat_template_free(t);
    free(src);
}

static void run_fixtures(void) {
    size_t n;
    char *data = test_read_file("tests/fixtures/chat/chat_cases.txt", &n);
    CHECK_MSG(data != NULL, "cannot read tests/fixtures/chat/chat_cases.txt");
    if (!data) return;
    fixture fx = {data, n, 0};
    field f;
    chat_case c = {0};
    int n_cases = 0, n_jinja = 0, n_builtin = 0, n_errors = 0;
    while (next_field(&fx, &f)) {
        bool keep = false;
        if (!strcmp(f.key, "case")) {
            case_clear(&c);
            snprintf(c.name, sizeof c.name, "%s", f.value);
        } else if (!strcmp(f.key, "template")) {
            snprintf(c.family, sizeof c.family, "%s", f.value);
        } else if (!strcmp(f.key, "builtin")) {
            snprintf(c.builtin, sizeof c.builtin, "%s", f.value);
        } else if (!strcmp(f.key, "bos")) {
            c.bos = f.value;
            keep = true;
        } else if (!strcmp(f.key, "eos")) {
            c.eos = f.value;
            keep = true;
        } else if (!strcmp(f.key, "add_generation_prompt")) {
            c.add_generation_prompt = f.value[0] == '1';
        } else if (!strcmp(f.key, "message") && c.n_messages < MAX_MESSAGES) {
            c.roles[c.n_messages] = f.value;
            c.contents[c.n_messages] = NULL;
            keep = true;
        } else if (!strcmp(f.key, "content") && c.n_messages < MAX_MESSAGES) {
            c.contents[c.n_messages++] = f.value;
            keep = true;
        } else if (!strcmp(f.key, "expect")) {
            c.expect = f.value;
            c.expect_len = f.len;
            keep = true;
        } else if (!strcmp(f.key, "error")) {
            c.error = f.value;
            keep = true;
            n_errors++;
        } else if (!strcmp(f.key, "end")) {
            /* HF's tokenizer_config may lack a BOS (Qwen2): an empty fixture field means "undefined" */
            if (c.bos && !c.bos[0]) {
                free(c.bos);
                c.bos = NULL;
            }
            run_case(&c, &n_jinja, &n_builtin);
            n_cases++;
        }
        if (!keep) free(f.value);
    }
    case_clear(&c);
    free(data);
    printf("%d HF-rendered cases (%d of them HF errors): %d via jinja, %d via built-ins\n", n_cases, n_errors, n_jinja,
           n_builtin);
    CHECK_MSG(n_cases >= 100, "expected at least 100 cases, found %d", n_cases);
}

/* ---- the rest of the API -------------------------------------------------------------------- */

static void test_api(void) {
    chat_template *t = NULL;
    char *out = NULL;
    /* a template that does not parse: a useful error, and init_auto falls back by its text */
    const char *broken = "{% for m in messages %}{{ '<|im_start|>' + m.role }}{% endfor";
    pagoda_status st = chat_template_init(broken, "<s>", "</s>", &t);
    CHECK_MSG(st == PAGODA_ERR_FORMAT && t == NULL && strstr(pagoda_last_error(), "line 1"),
              "broken template: %d %s", (int)st, pagoda_last_error());
    st = chat_template_init_auto(broken, "<s>", "</s>", &t);
    CHECK_MSG(st == PAGODA_OK && t && strcmp(chat_template_name(t), "chatml") == 0, "auto fallback: %d %s", (int)st,
              pagoda_last_error());
    chat_message msgs[] = {{"user", "hi"}};
    if (t) {
        CHECK(chat_template_apply(t, msgs, 1, true, &out) == PAGODA_OK);
        CHECK(out && strcmp(out, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n") == 0);
        free(out);
    }
    chat_template_free(t);
    t = NULL;
    /* no marker to fall back on: the parse error comes back */
    CHECK(chat_template_init_auto("{% if %}", NULL, NULL, &t) == PAGODA_ERR_FORMAT && t == NULL);
    CHECK(chat_template_detect_builtin("{{ plain }}") == NULL);
    CHECK(chat_template_detect_builtin(NULL) == NULL);
    /* NULL source = chatml built-in */
    CHECK(chat_template_init(NULL, NULL, NULL, &t) == PAGODA_OK && strcmp(chat_template_name(t), "chatml") == 0);
    /* argument errors */
    CHECK(chat_template_apply(t, NULL, 1, false, &out) == PAGODA_ERR_INVALID_ARGUMENT);
    chat_message bad[] = {{"user", NULL}};
    CHECK(chat_template_apply(t, bad, 1, false, &out) == PAGODA_ERR_INVALID_ARGUMENT);
    CHECK(chat_template_apply(t, NULL, 0, false, &out) == PAGODA_OK && out && out[0] == '\0');
    free(out);
    chat_template_free(t);
    CHECK(chat_template_init_builtin("nope", NULL, NULL, &t) == PAGODA_ERR_INVALID_ARGUMENT && t == NULL);
    CHECK(chat_template_init(NULL, NULL, NULL, NULL) == PAGODA_ERR_INVALID_ARGUMENT);
    chat_template_free(NULL);
    /* a template's run-time error (not raise_exception) is a format error with its position */
    CHECK(chat_template_init("{{ messages[0].content + 1 }}", NULL, NULL, &t) == PAGODA_OK);
    st = chat_template_apply(t, msgs, 1, false, &out);
    CHECK_MSG(st == PAGODA_ERR_FORMAT && strstr(pagoda_last_error(), "line 1"), "runtime error: %d %s", (int)st,
              pagoda_last_error());
    chat_template_free(t);
}

int main(void) {
    run_fixtures();
    test_api();
    return test_finish();
}
