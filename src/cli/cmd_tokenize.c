/* cli/cmd_tokenize.c - `pagoda tokenize -m MODEL`: UTF-8 text on stdin -> token ids on stdout,
 * or with --decode, ids on stdin -> text. Only the model's tokenizer metadata is read. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "gguf/gguf.h"   /* defines: gguf_open, gguf_close */
#include "vocab/vocab.h" /* defines: vocab_load, vocab_encode, vocab_decode */

static void print_help(FILE *out) {
    fprintf(out,
            "usage: pagoda tokenize -m MODEL [options] < input\n\n"
            "Reads UTF-8 text on stdin and prints its token ids on one line, separated by single\n"
            "spaces. With --decode, reads token ids (separated by any whitespace) on stdin and prints\n"
            "the text they stand for, exactly, with no newline added.\n\n"
            "options:\n"
            "  -m, --model FILE     a GGUF file with tokenizer metadata (required)\n"
            "      --add-special    add BOS/EOS (CLS/SEP) as the model's metadata asks\n"
            "      --parse-special  turn special-token text such as \"<|im_start|>\" into its id;\n"
            "                       with --decode, print the text of control tokens\n"
            "      --decode         ids -> text instead of text -> ids\n"
            "  -h, --help           show this help\n\n"
            "exit status: 0 success, 1 runtime error (unreadable model, bad id), 2 usage error\n");
}

/* Reads all of stdin into a malloc'd buffer. */
static char *read_stdin(size_t *out_len) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf) return NULL;
    for (;;) {
        size_t got = fread(buf + n, 1, cap - n, stdin);
        n += got;
        if (got == 0) break;
        if (n == cap) {
            char *g = realloc(buf, cap * 2 + 1);
            if (!g) {
                free(buf);
                return NULL;
            }
            buf = g;
            cap *= 2;
        }
    }
    if (ferror(stdin)) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *out_len = n;
    return buf;
}

static int encode_stdin(const vocab *v, bool add_special, bool parse_special) {
    size_t len = 0;
    char *text = read_stdin(&len);
    if (!text) {
        fprintf(stderr, "pagoda tokenize: cannot read stdin\n");
        return 1;
    }
    int32_t *ids = NULL;
    size_t n = 0;
    pagoda_status st = vocab_encode(v, text, len, add_special, parse_special, &ids, &n);
    free(text);
    if (st != PAGODA_OK) {
        fprintf(stderr, "pagoda tokenize: %s\n", pagoda_last_error());
        return 1;
    }
    for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
    printf("\n");
    free(ids);
    return 0;
}

static int decode_stdin(const vocab *v, bool render_special) {
    size_t len = 0;
    char *input = read_stdin(&len);
    if (!input) {
        fprintf(stderr, "pagoda tokenize: cannot read stdin\n");
        return 1;
    }
    size_t n = 0, cap = 256;
    int32_t *ids = malloc(cap * sizeof(int32_t));
    int rc = 0;
    for (char *p = input; ids;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long x = strtol(p, &end, 10);
        if (end == p || errno || x < 0 || x >= vocab_n_tokens(v) ||
            (*end && *end != ' ' && *end != '\t' && *end != '\n' && *end != '\r')) {
            size_t w = strcspn(p, " \t\r\n");
            fprintf(stderr, "pagoda tokenize: '%.*s' is not a token id (0..%d)\n", (int)(w > 40 ? 40 : w),
                    p, vocab_n_tokens(v) - 1);
            rc = 1;
            break;
        }
        if (n == cap) {
            int32_t *g = realloc(ids, cap * 2 * sizeof(int32_t));
            if (!g) break;
            ids = g;
            cap *= 2;
        }
        ids[n++] = (int32_t)x;
        p = end;
    }
    free(input);
    if (!ids) {
        fprintf(stderr, "pagoda tokenize: out of memory\n");
        return 1;
    }
    if (rc == 0) {
        char *text = NULL;
        size_t text_len = 0;
        if (vocab_decode(v, ids, n, render_special, &text, &text_len) != PAGODA_OK) {
            fprintf(stderr, "pagoda tokenize: %s\n", pagoda_last_error());
            rc = 1;
        } else {
            fwrite(text, 1, text_len, stdout);
            free(text);
        }
    }
    free(ids);
    return rc;
}

int cmd_tokenize(int argc, char **argv) {
    static const struct option options[] = {
        {"model", required_argument, 0, 'm'},   {"add-special", no_argument, 0, 'A'},
        {"parse-special", no_argument, 0, 'P'}, {"decode", no_argument, 0, 'D'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    const char *model_path = NULL;
    bool add_special = false, parse_special = false, decode = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:h", options, NULL)) != -1) {
        switch (c) {
        case 'm': model_path = optarg; break;
        case 'A': add_special = true; break;
        case 'P': parse_special = true; break;
        case 'D': decode = true; break;
        case 'h': print_help(stdout); return 0;
        default: print_help(stderr); return 2;
        }
    }
    if (!model_path || optind < argc) {
        if (!model_path) fprintf(stderr, "pagoda tokenize: -m MODEL is required\n");
        else fprintf(stderr, "pagoda tokenize: unexpected argument '%s'\n", argv[optind]);
        print_help(stderr);
        return 2;
    }
    gguf_file *file = NULL;
    vocab *v = NULL;
    pagoda_status st = gguf_open(model_path, &file);
    if (st == PAGODA_OK) st = vocab_load(file, &v);
    gguf_close(file);
    if (st != PAGODA_OK) {
        fprintf(stderr, "pagoda tokenize: %s\n", pagoda_last_error());
        return 1;
    }
    int rc = decode ? decode_stdin(v, parse_special) : encode_stdin(v, add_special, parse_special);
    vocab_free(v);
    if (fflush(stdout) != 0 && rc == 0) {
        fprintf(stderr, "pagoda tokenize: cannot write stdout\n");
        rc = 1;
    }
    return rc;
}
