/* cli/main.c - the `pagoda` command: dispatches to a subcommand. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h" /* defines: cmd_run, cmd_chat, cmd_info, cmd_tokenize, cmd_gen_model */

typedef struct command {
    const char *name;
    int (*main)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"run", cmd_run, "generate text from a prompt, streamed to stdout"},
    {"chat", cmd_chat, "interactive chat using the model's chat template"},
    {"batch", cmd_batch, "run a JSONL file of requests together (offline batch inference)"},
    {"serve", cmd_serve, "serve the model over an OpenAI-compatible HTTP API"},
    {"info", cmd_info, "print a model file's metadata and tensor summary"},
    {"tokenize", cmd_tokenize, "text on stdin -> token ids (or ids -> text with --decode)"},
    {"bench", cmd_bench, "model speed like llama-bench; `bench serve` load-tests an HTTP server"},
    {"gen-model", cmd_gen_model, "write a random-weight GGUF model at a real shape"},
};

static void print_usage(FILE *out) {
    fprintf(out, "usage: pagoda <command> [options]   (pagoda <command> --help for details)\n\n"
                 "commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        print_usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        print_usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].main(argc - 1, argv + 1);
    fprintf(stderr, "pagoda: unknown command '%s'\n", argv[1]);
    print_usage(stderr);
    return 2;
}
