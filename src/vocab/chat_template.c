/* vocab/chat_template.c - chat templates: a model's Jinja template run by vocab/jinja.h, or a C
 * built-in that reproduces one real family's template byte for byte (see chat_template.h; the
 * real templates are kept in tests/fixtures/chat/templates/ and both paths are tested against
 * HF's renders of them). Not supported by the built-ins: tool definitions, multimodal content.
 */
#include "vocab/chat_template.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"  /* defines: error_set, error_prefix */
#include "vocab/jinja.h" /* defines: jinja_template_parse, jinja_context_*, jinja_strip_bounds */

typedef enum builtin_kind {
    BUILTIN_CHATML,
    BUILTIN_LLAMA3,
    BUILTIN_LLAMA31,
    BUILTIN_LLAMA2,
    BUILTIN_MISTRAL,
    BUILTIN_MISTRAL_V02,
} builtin_kind;

static const struct builtin_info {
    const char *name;
    builtin_kind kind;
    const char *default_system; /* ChatML family: used when the first message is not a system one */
} BUILTINS[] = {
    {"chatml", BUILTIN_CHATML, NULL},
    {"qwen2", BUILTIN_CHATML, "You are a helpful assistant."},
    {"smollm2", BUILTIN_CHATML, "You are a helpful AI assistant named SmolLM, trained by Hugging Face"},
    {"llama3", BUILTIN_LLAMA3, NULL},
    {"llama3.1", BUILTIN_LLAMA31, NULL},
    {"llama2", BUILTIN_LLAMA2, NULL},
    {"mistral", BUILTIN_MISTRAL, NULL},
    {"mistral-v0.2", BUILTIN_MISTRAL_V02, NULL},
};

struct chat_template {
    jinja_template *jinja;               /* NULL for a built-in */
    const struct builtin_info *builtin;  /* NULL for a Jinja template */
    char *bos, *eos;                     /* NULL: not defined */
};

static const char ROLES_MUST_ALTERNATE[] = "Conversation roles must alternate user/assistant/user/assistant/...";

/* ---- life cycle ----------------------------------------------------------------------------- */

static pagoda_status template_new(const char *bos_text, const char *eos_text, chat_template **out) {
    chat_template *t = calloc(1, sizeof *t);
    if (!t) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "chat template: out of memory");
    if ((bos_text && !(t->bos = strdup(bos_text))) || (eos_text && !(t->eos = strdup(eos_text)))) {
        chat_template_free(t);
        return error_set(PAGODA_ERR_OUT_OF_MEMORY, "chat template: out of memory");
    }
    *out = t;
    return PAGODA_OK;
}

pagoda_status chat_template_init_builtin(const char *name, const char *bos_text, const char *eos_text,
                                         chat_template **out) {
    if (!out || !name) return error_set(PAGODA_ERR_INVALID_ARGUMENT, "chat_template_init_builtin: NULL argument");
    *out = NULL;
    for (size_t i = 0; i < sizeof BUILTINS / sizeof *BUILTINS; i++) {
        if (strcmp(BUILTINS[i].name, name) != 0) continue;
        pagoda_status st = template_new(bos_text, eos_text, out);
        if (st == PAGODA_OK) (*out)->builtin = &BUILTINS[i];
        return st;
    }
    return error_set(PAGODA_ERR_INVALID_ARGUMENT,
                     "unknown built-in chat template '%s' (known: chatml, qwen2, smollm2, llama3, llama3.1, llama2, "
                     "mistral, mistral-v0.2)",
                     name);
}

pagoda_status chat_template_init(const char *template_source, const char *bos_text, const char *eos_text,
                                 chat_template **out) {
    if (!out) return error_set(PAGODA_ERR_INVALID_ARGUMENT, "chat_template_init: NULL argument");
    *out = NULL;
    if (!template_source) return chat_template_init_builtin("chatml", bos_text, eos_text, out);
    chat_template *t;
    pagoda_status st = template_new(bos_text, eos_text, &t);
    if (st != PAGODA_OK) return st;
    st = jinja_template_parse(template_source, strlen(template_source), &t->jinja);
    if (st != PAGODA_OK) {
        chat_template_free(t);
        return error_prefix(st, "chat template");
    }
    *out = t;
    return PAGODA_OK;
}

const char *chat_template_detect_builtin(const char *src) {
    if (!src) return NULL;
    if (strstr(src, "<|im_start|>")) {
        if (strstr(src, "named SmolLM")) return "smollm2";
        if (strstr(src, "You are a helpful assistant.") && strstr(src, "messages[0]['role'] != 'system'")) return "qwen2";
        return "chatml";
    }
    if (strstr(src, "<|start_header_id|>")) return strstr(src, "Cutting Knowledge Date") ? "llama3.1" : "llama3";
    if (strstr(src, "[INST]")) {
        if (strstr(src, "<<SYS>>")) return "llama2";
        if (strstr(src, "eos_token + ' '")) return "mistral";
        return "mistral-v0.2";
    }
    return NULL;
}

pagoda_status chat_template_init_auto(const char *template_source, const char *bos_text, const char *eos_text,
                                      chat_template **out) {
    pagoda_status st = chat_template_init(template_source, bos_text, eos_text, out);
    if (st != PAGODA_ERR_FORMAT) return st;
    const char *name = chat_template_detect_builtin(template_source);
    if (!name) return st;
    return chat_template_init_builtin(name, bos_text, eos_text, out);
}

void chat_template_free(chat_template *t) {
    if (!t) return;
    jinja_template_free(t->jinja);
    free(t->bos);
    free(t->eos);
    free(t);
}

const char *chat_template_name(const chat_template *t) {
    if (!t) return "";
    return t->jinja ? "jinja" : t->builtin->name;
}

/* ---- built-ins ------------------------------------------------------------------------------ */

typedef struct text_buf {
    char *p;
    size_t n, cap;
    bool failed;
} text_buf;

static void put_n(text_buf *b, const char *s, size_t n) {
    if (b->failed || n == 0) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}
static void put(text_buf *b, const char *s) {
    if (s) put_n(b, s, strlen(s));
}
/* Python's str.strip() of s. */
static void put_stripped(text_buf *b, const char *s) {
    size_t begin, end;
    jinja_strip_bounds(s, strlen(s), &begin, &end);
    put_n(b, s + begin, end - begin);
}
/* json.dumps(s, ensure_ascii=False) */
static void put_json_string(text_buf *b, const char *s) {
    static const char hex[] = "0123456789abcdef";
    put(b, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[7] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15], 0};
        switch (c) {
        case '"': put(b, "\\\""); break;
        case '\\': put(b, "\\\\"); break;
        case '\n': put(b, "\\n"); break;
        case '\r': put(b, "\\r"); break;
        case '\t': put(b, "\\t"); break;
        case '\b': put(b, "\\b"); break;
        case '\f': put(b, "\\f"); break;
        default:
            if (c < 0x20) put(b, esc);
            else put_n(b, s, 1);
        }
    }
    put(b, "\"");
}

static bool is_role(const chat_message *m, const char *role) { return strcmp(m->role, role) == 0; }

static pagoda_status reject(const chat_template *t, const char *message) {
    return error_set(PAGODA_ERR_INVALID_ARGUMENT, "chat template %s: %s", t->builtin->name, message);
}

static pagoda_status render_builtin(const chat_template *t, const chat_message *msgs, size_t n, bool agp, text_buf *b) {
    const char *bos = t->bos, *eos = t->eos;
    switch (t->builtin->kind) {
    case BUILTIN_CHATML:
        for (size_t i = 0; i < n; i++) {
            if (i == 0 && t->builtin->default_system && !is_role(&msgs[0], "system")) {
                put(b, "<|im_start|>system\n");
                put(b, t->builtin->default_system);
                put(b, "<|im_end|>\n");
            }
            put(b, "<|im_start|>");
            put(b, msgs[i].role);
            put(b, "\n");
            put(b, msgs[i].content);
            put(b, "<|im_end|>\n");
        }
        if (agp) put(b, "<|im_start|>assistant\n");
        return PAGODA_OK;
    case BUILTIN_LLAMA3:
        for (size_t i = 0; i < n; i++) {
            if (i == 0) put(b, bos);
            put(b, "<|start_header_id|>");
            put(b, msgs[i].role);
            put(b, "<|end_header_id|>\n\n");
            put_stripped(b, msgs[i].content);
            put(b, "<|eot_id|>");
        }
        if (agp) put(b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
        return PAGODA_OK;
    case BUILTIN_LLAMA31: {
        if (n == 0) return reject(t, "there are no messages ('messages[0]' is undefined)");
        size_t first = 0;
        put(b, bos);
        put(b, "<|start_header_id|>system<|end_header_id|>\n\n");
        put(b, "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n");
        if (is_role(&msgs[0], "system")) {
            put_stripped(b, msgs[0].content);
            first = 1;
        }
        put(b, "<|eot_id|>");
        for (size_t i = first; i < n; i++) {
            if (is_role(&msgs[i], "tool") || is_role(&msgs[i], "ipython")) {
                /* a string is "iterable" to the template, so it goes through tojson */
                put(b, "<|start_header_id|>ipython<|end_header_id|>\n\n");
                put_json_string(b, msgs[i].content);
            } else {
                put(b, "<|start_header_id|>");
                put(b, msgs[i].role);
                put(b, "<|end_header_id|>\n\n");
                put_stripped(b, msgs[i].content);
            }
            put(b, "<|eot_id|>");
        }
        if (agp) put(b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
        return PAGODA_OK;
    }
    case BUILTIN_LLAMA2: {
        if (n == 0) return reject(t, "there are no messages ('messages[0]' is undefined)");
        bool has_system = is_role(&msgs[0], "system");
        const chat_message *loop = msgs + has_system;
        size_t n_loop = n - has_system;
        for (size_t i = 0; i < n_loop; i++) {
            const chat_message *m = &loop[i];
            if (is_role(m, "user") != (i % 2 == 0)) return reject(t, ROLES_MUST_ALTERNATE);
            text_buf content = {0};
            if (i == 0 && has_system) {
                put(&content, "<<SYS>>\n");
                put(&content, msgs[0].content);
                put(&content, "\n<</SYS>>\n\n");
            }
            put(&content, m->content);
            if (content.failed) {
                free(content.p);
                return error_set(PAGODA_ERR_OUT_OF_MEMORY, "chat template: out of memory");
            }
            if (is_role(m, "user")) {
                put(b, bos);
                put(b, "[INST] ");
                put_stripped(b, content.p ? content.p : "");
                put(b, " [/INST]");
            } else if (is_role(m, "assistant")) {
                put(b, " ");
                put_stripped(b, content.p ? content.p : "");
                put(b, " ");
                put(b, eos);
            }
            free(content.p);
        }
        return PAGODA_OK;
    }
    case BUILTIN_MISTRAL:
    case BUILTIN_MISTRAL_V02:
        put(b, bos);
        for (size_t i = 0; i < n; i++) {
            const chat_message *m = &msgs[i];
            if (is_role(m, "user") != (i % 2 == 0)) return reject(t, ROLES_MUST_ALTERNATE);
            if (is_role(m, "user")) {
                put(b, "[INST] ");
                put(b, m->content);
                put(b, " [/INST]");
            } else if (is_role(m, "assistant")) {
                put(b, m->content);
                put(b, eos);
                if (t->builtin->kind == BUILTIN_MISTRAL) put(b, " ");
            } else {
                return reject(t, "Only user and assistant roles are supported!");
            }
        }
        return PAGODA_OK;
    }
    return error_set(PAGODA_ERR_INTERNAL, "chat template: unknown built-in kind");
}

/* ---- apply ---------------------------------------------------------------------------------- */

static pagoda_status render_jinja(const chat_template *t, const chat_message *msgs, size_t n, bool agp, char **out) {
    const char **roles = malloc((n ? n : 1) * sizeof *roles), **contents = malloc((n ? n : 1) * sizeof *contents);
    jinja_context *ctx = NULL;
    pagoda_status st = roles && contents ? jinja_context_init(&ctx)
                                         : error_set(PAGODA_ERR_OUT_OF_MEMORY, "chat template: out of memory");
    for (size_t i = 0; st == PAGODA_OK && i < n; i++) {
        roles[i] = msgs[i].role;
        contents[i] = msgs[i].content;
    }
    if (st == PAGODA_OK) st = jinja_context_set_messages(ctx, "messages", roles, contents, n);
    if (st == PAGODA_OK) st = jinja_context_set_bool(ctx, "add_generation_prompt", agp);
    if (st == PAGODA_OK && t->bos) st = jinja_context_set_string(ctx, "bos_token", t->bos);
    if (st == PAGODA_OK && t->eos) st = jinja_context_set_string(ctx, "eos_token", t->eos);
    if (st == PAGODA_OK) st = jinja_context_set_none(ctx, "tools"); /* HF passes tools=None, documents=None */
    if (st == PAGODA_OK) st = jinja_context_set_none(ctx, "documents");
    if (st == PAGODA_OK) st = jinja_template_render(t->jinja, ctx, NULL, out, NULL);
    jinja_context_free(ctx);
    free(roles);
    free(contents);
    if (st != PAGODA_OK) return error_prefix(st, "chat template");
    return PAGODA_OK;
}

pagoda_status chat_template_apply(const chat_template *t, const chat_message *msgs, size_t n_msgs,
                                  bool add_generation_prompt, char **out_text) {
    if (!t || !out_text || (n_msgs && !msgs)) return error_set(PAGODA_ERR_INVALID_ARGUMENT, "chat_template_apply: NULL argument");
    *out_text = NULL;
    for (size_t i = 0; i < n_msgs; i++)
        if (!msgs[i].role || !msgs[i].content)
            return error_set(PAGODA_ERR_INVALID_ARGUMENT, "chat_template_apply: message %zu has a NULL role or content", i);
    if (t->jinja) return render_jinja(t, msgs, n_msgs, add_generation_prompt, out_text);
    text_buf b = {0};
    pagoda_status st = render_builtin(t, msgs, n_msgs, add_generation_prompt, &b);
    if (st == PAGODA_OK && b.failed) st = error_set(PAGODA_ERR_OUT_OF_MEMORY, "chat template: out of memory");
    if (st == PAGODA_OK && !b.p && !(b.p = calloc(1, 1))) st = error_set(PAGODA_ERR_OUT_OF_MEMORY, "chat template: out of memory");
    if (st != PAGODA_OK) {
        free(b.p);
        return st;
    }
    *out_text = b.p;
    return PAGODA_OK;
}
