/* cli/cli_common.h - options shared by the generating subcommands (run, chat): model, threads,
 * context and sampling, parsed with one-line errors that name the option. */
#ifndef PAGODA_CLI_COMMON_H
#define PAGODA_CLI_COMMON_H

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>

#include "pagoda.h" /* defines: pagoda_model_params, pagoda_sampling_params */

#define CLI_MAX_STOP 16       /* --stop */
#define CLI_MAX_LOGIT_BIAS 64 /* --logit-bias */

typedef struct cli_options {
    const char *model_path;          /* -m; NULL: the default model */
    pagoda_model_params model;       /* -t, -c, -b */
    pagoda_sampling_params sampling; /* -n, --temp, --top-k, --top-p, --min-p, --typical-p, penalties, --seed,
                                        --ignore-eos, --stop, --logit-bias (arrays point into this struct) */
    const char *stop[CLI_MAX_STOP];  /* --stop, repeatable: argv strings */
    int32_t n_stop;
    pagoda_logit_bias logit_bias[CLI_MAX_LOGIT_BIAS]; /* --logit-bias T=B, repeatable */
    int32_t n_logit_bias;
    bool seed_given;
    bool verbose;
    bool announce_kv;                /* print the KV cache's size at load even without -v */
} cli_options;

/* getopt_long entries for the shared options (value codes >= 1000), ended by a zero entry. */
extern const struct option cli_common_long_options[];
#define CLI_COMMON_SHORT_OPTIONS "m:t:c:b:n:s:v"

void cli_options_init(cli_options *o, int32_t default_max_tokens);
/* Handles one getopt result if it is a shared option: returns 1 if handled, 0 if not ours, -1 on a
 * bad value (a message naming the option was printed). */
int cli_handle_common_option(cli_options *o, int opt, const char *arg, const char *command);
/* Help text for the shared options. */
void cli_print_common_help(FILE *out);
/* Merges the command's own long options with the shared ones into `out` (room for `cap`). */
void cli_merge_long_options(const struct option *own, struct option *out, int cap);
/* Loads the model given by -m, or the default model; prints a one-line error and returns NULL on
 * failure. With verbose, describes the model on stderr. */
pagoda_model *cli_load_model(cli_options *o, const char *command);
/* The default model's path: $PAGODA_MODEL, else ~/.cache/pagoda/models/SmolLM2-135M-Instruct.Q4_1.gguf. */
const char *cli_default_model_path(void);

#endif
