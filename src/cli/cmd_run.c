/* cli/cmd_run.c - `pagoda run`: continue a prompt, streaming only the generated text to stdout and
 * the prompt/generation speeds to stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_common.h" /* defines: cli_options, cli_load_model, ... */
#include "cli/commands.h"

static void print_help(FILE *out) {
    fprintf(out,
            "usage: pagoda run [-m MODEL] (-p PROMPT | -f FILE) [options]\n\n"
            "Continues the prompt and streams only the generated text to stdout; the prompt and\n"
            "generation speeds go to stderr. The prompt is tokenized with the model's BOS token and\n"
            "with special-token text (e.g. <|im_start|>) recognised.\n\n"
            "prompt:\n"
            "  -p, --prompt TEXT       the prompt\n"
            "  -f, --file FILE         read the prompt from a file ('-' for stdin)\n"
            "      --no-special        do not add BOS/EOS and do not parse special-token text\n");
    cli_print_common_help(out);
    fprintf(out, "  -h, --help              show this help\n\n"
                 "example: pagoda run -m model.gguf -p \"Once upon a time\" -n 60 --temp 0\n");
}

static bool print_piece(void *user, int32_t token, const char *text, size_t len) {
    (void)user, (void)token;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    return true;
}

/* The search strategy's speed: a finished beam arrives whole at the end, so prompt and generation
 * are timed together (for every strategy alike, greedy included, to compare them). */
static void print_strategy_speed(const pagoda_sampling_params *p, const pagoda_generation_stats *st) {
    char name[64];
    if (p->num_beams > 1) snprintf(name, sizeof name, "beam search (%d beams)", p->num_beams);
    else if (p->penalty_alpha > 0 && p->top_k > 1)
        snprintf(name, sizeof name, "contrastive search (alpha %g, top-k %d)", (double)p->penalty_alpha, p->top_k);
    else if (p->dola_layers) snprintf(name, sizeof name, "DoLa (layers %.40s)", p->dola_layers);
    else if (p->temperature == 0) snprintf(name, sizeof name, "greedy");
    else return;
    double total = st->prompt_seconds + st->generation_seconds;
    fprintf(stderr, "%s: %d tokens in %.3f s, prompt included (%.1f tok/s)\n", name, st->n_generated, total,
            total > 0 ? st->n_generated / total : 0.0);
}

static char *read_prompt_file(const char *path) {
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) return NULL;
    size_t cap = 4096, len = 0, got;
    char *buf = malloc(cap + 1);
    while (buf && (got = fread(buf + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap) {
            char *grown = realloc(buf, 2 * cap + 1);
            if (!grown) { free(buf); buf = NULL; break; }
            buf = grown;
            cap *= 2;
        }
    }
    if (f != stdin) fclose(f);
    if (buf) buf[len] = '\0';
    return buf;
}

int cmd_run(int argc, char **argv) {
    enum { OPT_NO_SPECIAL = 2000 };
    static const struct option own[] = {{"prompt", required_argument, 0, 'p'}, {"file", required_argument, 0, 'f'},
                                         {"no-special", no_argument, 0, OPT_NO_SPECIAL},
                                         {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    struct option options[64];
    cli_merge_long_options(own, options, 64);
    cli_options o;
    cli_options_init(&o, 256);
    const char *prompt = NULL, *prompt_file = NULL;
    bool special = true;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "p:f:h" CLI_COMMON_SHORT_OPTIONS, options, NULL)) != -1) {
        int handled = cli_handle_common_option(&o, c, optarg, "run");
        if (handled < 0) return 2;
        if (handled) continue;
        switch (c) {
        case 'p': prompt = optarg; break;
        case 'f': prompt_file = optarg; break;
        case OPT_NO_SPECIAL: special = false; break;
        case 'h': print_help(stdout); return 0;
        default: fprintf(stderr, "see pagoda run --help\n"); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "pagoda run: unexpected argument '%s' (quote the prompt: -p \"...\")\n", argv[optind]);
        return 2;
    }
    if (!prompt == !prompt_file) {
        fprintf(stderr, "pagoda run: give the prompt with -p TEXT or -f FILE (see pagoda run --help)\n");
        return 2;
    }
    char *file_text = NULL;
    if (prompt_file && !(prompt = file_text = read_prompt_file(prompt_file))) {
        fprintf(stderr, "pagoda run: cannot read the prompt file '%s'\n", prompt_file);
        return 1;
    }
    pagoda_model *m = cli_load_model(&o, "run");
    if (!m) {
        free(file_text);
        return 1;
    }
    int32_t *ids = NULL;
    size_t n_ids = 0;
    int rc = 1;
    pagoda_generation_stats stats;
    if (pagoda_tokenize(m, prompt, strlen(prompt), special, special, &ids, &n_ids) != PAGODA_OK) {
        fprintf(stderr, "pagoda run: %s\n", pagoda_last_error());
    } else if (pagoda_generate(m, ids, n_ids, &o.sampling, print_piece, NULL, &stats) != PAGODA_OK) {
        fprintf(stderr, "pagoda run: %s\n", pagoda_last_error());
    } else {
        rc = 0;
        if (o.sampling.num_beams > 1) { /* the beams arrive at the end: only the strategy's line means something */
            fprintf(stderr, "\nprompt: %d tokens\n", stats.n_prompt);
        } else {
            fprintf(stderr,
                    "\nprompt: %d tokens in %.3f s (%.1f tok/s) | generation: %d tokens in %.3f s (%.1f tok/s)\n",
                    stats.n_prompt, stats.prompt_seconds,
                    stats.prompt_seconds > 0 ? stats.n_prompt_computed / stats.prompt_seconds : 0.0,
                    stats.n_generated, stats.generation_seconds,
                    stats.generation_seconds > 0 ? stats.n_generated / stats.generation_seconds : 0.0);
        }
        pagoda_engine_stats es;
        pagoda_get_stats(m, &es);
        if (es.spec_proposed > 0 || o.model.draft_model_path || o.model.draft_layers || o.model.lookup_ngram)
            fprintf(stderr, "speculative: %llu of %llu drafted tokens accepted (%.1f%%), %.2f tokens per step\n",
                    (unsigned long long)es.spec_accepted, (unsigned long long)es.spec_proposed,
                    es.spec_proposed ? 100.0 * (double)es.spec_accepted / (double)es.spec_proposed : 0.0,
                    es.n_steps ? (double)es.generated_tokens / (double)es.n_steps : 0.0);
        print_strategy_speed(&o.sampling, &stats);
    }
    free(ids);
    free(file_text);
    pagoda_model_free(m);
    return rc;
}
