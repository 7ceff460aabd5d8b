/* cli/cmd_chat.c - `pagoda chat`: an interactive conversation that keeps its history and renders
 * it with the model's chat template. Each turn re-renders the whole conversation; the model's KV
 * cache reuses the common prefix, so only the new turn is computed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli_common.h" /* defines: cli_options, cli_load_model, ... */
#include "cli/commands.h"

static void print_help(FILE *out) {
    fprintf(out,
            "usage: pagoda chat [-m MODEL] [options]\n\n"
            "An interactive chat: type a message and press Enter; the answer streams back. The\n"
            "conversation is rendered with the model's own chat template and kept as history.\n"
            "Commands: /reset forgets the history, /exit (or Ctrl-D) quits. When stdin is not a\n"
            "terminal, each line is one user message.\n\n"
            "chat:\n"
            "  -p, --prompt TEXT       send one message, print the answer and exit\n"
            "      --system TEXT       a system message to start the conversation with\n");
    cli_print_common_help(out);
    fprintf(out, "  -h, --help              show this help\n\n"
                 "example: pagoda chat --temp 0 -p \"What is the capital of France?\"\n");
}

typedef struct conversation {
    pagoda_chat_message *messages;
    size_t n, cap;
} conversation;

static bool conversation_add(conversation *c, const char *role, const char *content) {
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 8;
        pagoda_chat_message *grown = realloc(c->messages, cap * sizeof *grown);
        if (!grown) return false;
        c->messages = grown;
        c->cap = cap;
    }
    char *role_copy = strdup(role), *content_copy = strdup(content);
    if (!role_copy || !content_copy) {
        free(role_copy);
        free(content_copy);
        return false;
    }
    c->messages[c->n++] = (pagoda_chat_message){role_copy, content_copy};
    return true;
}

static void conversation_clear(conversation *c, size_t keep) {
    while (c->n > keep) {
        c->n--;
        free((char *)c->messages[c->n].role);
        free((char *)c->messages[c->n].content);
    }
}

typedef struct reply {
    char *text;
    size_t len, cap;
} reply;

static bool on_token(void *user, int32_t token, const char *text, size_t len) {
    (void)token;
    reply *r = user;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    if (r->len + len + 1 > r->cap) {
        size_t cap = (r->len + len + 1) * 2;
        char *grown = realloc(r->text, cap);
        if (!grown) return false;
        r->text = grown;
        r->cap = cap;
    }
    memcpy(r->text + r->len, text, len);
    r->len += len;
    r->text[r->len] = '\0';
    return true;
}

/* One turn: render, tokenize, generate; appends the assistant's answer to the history. */
static int answer(pagoda_model *m, conversation *conv, const cli_options *o) {
    char *rendered = NULL;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    reply r = {0};
    int rc = 1;
    pagoda_generation_stats stats;
    if (pagoda_chat_render(m, conv->messages, conv->n, true, &rendered) != PAGODA_OK ||
        pagoda_tokenize(m, rendered, strlen(rendered), false, true, &ids, &n_ids) != PAGODA_OK ||
        pagoda_generate(m, ids, n_ids, &o->sampling, on_token, &r, &stats) != PAGODA_OK) {
        fprintf(stderr, "pagoda chat: %s\n", pagoda_last_error());
        conversation_clear(conv, conv->n - 1); /* drop the user message that failed */
    } else {
        printf("\n");
        if (o->verbose)
            fprintf(stderr, "[%d prompt tokens (%d computed), %d generated, %.1f tok/s]\n", stats.n_prompt,
                    stats.n_prompt_computed, stats.n_generated,
                    stats.generation_seconds > 0 ? stats.n_generated / stats.generation_seconds : 0.0);
        rc = conversation_add(conv, "assistant", r.text ? r.text : "") ? 0 : 1;
    }
    free(r.text);
    free(ids);
    free(rendered);
    return rc;
}

int cmd_chat(int argc, char **argv) {
    enum { OPT_SYSTEM = 2000 };
    static const struct option own[] = {{"prompt", required_argument, 0, 'p'},
                                         {"system", required_argument, 0, OPT_SYSTEM},
                                         {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    struct option options[64];
    cli_merge_long_options(own, options, 64);
    cli_options o;
    cli_options_init(&o, -1);
    const char *one_shot = NULL, *system_prompt = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "p:h" CLI_COMMON_SHORT_OPTIONS, options, NULL)) != -1) {
        int handled = cli_handle_common_option(&o, c, optarg, "chat");
        if (handled < 0) return 2;
        if (handled) continue;
        switch (c) {
        case 'p': one_shot = optarg; break;
        case OPT_SYSTEM: system_prompt = optarg; break;
        case 'h': print_help(stdout); return 0;
        default: fprintf(stderr, "see pagoda chat --help\n"); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "pagoda chat: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    pagoda_model *m = cli_load_model(&o, "chat");
    if (!m) return 1;
    conversation conv = {0};
    size_t n_fixed = 0;
    int rc = 0;
    if (system_prompt) {
        conversation_add(&conv, "system", system_prompt);
        n_fixed = 1;
    }
    if (one_shot) {
        rc = conversation_add(&conv, "user", one_shot) ? answer(m, &conv, &o) : 1;
    } else {
        bool interactive = isatty(STDIN_FILENO);
        if (interactive) fprintf(stderr, "pagoda chat: type a message; /reset forgets, /exit quits.\n");
        char *line = NULL;
        size_t cap = 0;
        ssize_t len;
        for (;;) {
            if (interactive) {
                fprintf(stderr, "> ");
                fflush(stderr);
            }
            if ((len = getline(&line, &cap, stdin)) < 0) break;
            while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
            if (len == 0) continue;
            if (!strcmp(line, "/exit") || !strcmp(line, "/quit")) break;
            if (!strcmp(line, "/reset")) {
                conversation_clear(&conv, n_fixed);
                fprintf(stderr, "(history cleared)\n");
                continue;
            }
            if (!conversation_add(&conv, "user", line)) {
                fprintf(stderr, "pagoda chat: out of memory\n");
                rc = 1;
                break;
            }
            if (answer(m, &conv, &o) != 0) rc = 1; /* reported; the chat goes on */
        }
        free(line);
    }
    conversation_clear(&conv, 0);
    free(conv.messages);
    pagoda_model_free(m);
    return rc;
}
