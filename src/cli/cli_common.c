/* cli/cli_common.c - shared options of `pagoda run` and `pagoda chat` (see cli_common.h). */
#include "cli/cli_common.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

enum {
    OPT_TEMP = 1000, OPT_TOP_K, OPT_TOP_P, OPT_MIN_P, OPT_IGNORE_EOS, OPT_KV_MEM, OPT_KV_TYPE, OPT_MAX_SEQS,
    OPT_NO_PREFIX_CACHE, OPT_POLICY, OPT_BLOCK_SIZE, OPT_TYPICAL_P, OPT_REPEAT_PENALTY, OPT_PRESENCE_PENALTY,
    OPT_FREQUENCY_PENALTY, OPT_STOP, OPT_LOGIT_BIAS, OPT_DRAFT, OPT_DRAFT_LAYERS,
    OPT_LOOKUP, OPT_DRAFT_K,
};
/* search strategies (engine/search.h) */
enum { OPT_BEAMS = 1100, OPT_LENGTH_PENALTY, OPT_EARLY_STOPPING, OPT_PENALTY_ALPHA, OPT_DOLA };

const struct option cli_common_long_options[] = {
    {"model", required_argument, 0, 'm'},
    {"threads", required_argument, 0, 't'},
    {"ctx-size", required_argument, 0, 'c'},
    {"batch-size", required_argument, 0, 'b'},
    {"max-batched-tokens", required_argument, 0, 'b'},
    {"max-seqs", required_argument, 0, OPT_MAX_SEQS},
    {"kv-cache-mem", required_argument, 0, OPT_KV_MEM},
    {"kv-type", required_argument, 0, OPT_KV_TYPE},
    {"block-size", required_argument, 0, OPT_BLOCK_SIZE},
    {"no-prefix-caching", no_argument, 0, OPT_NO_PREFIX_CACHE},
    {"policy", required_argument, 0, OPT_POLICY},
    {"draft", required_argument, 0, OPT_DRAFT},
    {"draft-model", required_argument, 0, OPT_DRAFT},
    {"draft-layers", required_argument, 0, OPT_DRAFT_LAYERS},
    {"lookup", required_argument, 0, OPT_LOOKUP},
    {"draft-k", required_argument, 0, OPT_DRAFT_K},
    {"n-predict", required_argument, 0, 'n'},
    {"max-tokens", required_argument, 0, 'n'},
    {"seed", required_argument, 0, 's'},
    {"temp", required_argument, 0, OPT_TEMP},
    {"temperature", required_argument, 0, OPT_TEMP},
    {"top-k", required_argument, 0, OPT_TOP_K},
    {"top-p", required_argument, 0, OPT_TOP_P},
    {"min-p", required_argument, 0, OPT_MIN_P},
    {"typical-p", required_argument, 0, OPT_TYPICAL_P},
    {"typical", required_argument, 0, OPT_TYPICAL_P},
    {"repeat-penalty", required_argument, 0, OPT_REPEAT_PENALTY},
    {"repetition-penalty", required_argument, 0, OPT_REPEAT_PENALTY},
    {"presence-penalty", required_argument, 0, OPT_PRESENCE_PENALTY},
    {"frequency-penalty", required_argument, 0, OPT_FREQUENCY_PENALTY},
    {"stop", required_argument, 0, OPT_STOP},
    {"logit-bias", required_argument, 0, OPT_LOGIT_BIAS},
    {"ignore-eos", no_argument, 0, OPT_IGNORE_EOS},
    {"beams", required_argument, 0, OPT_BEAMS},
    {"num-beams", required_argument, 0, OPT_BEAMS},
    {"length-penalty", required_argument, 0, OPT_LENGTH_PENALTY},
    {"early-stopping", no_argument, 0, OPT_EARLY_STOPPING},
    {"penalty-alpha", required_argument, 0, OPT_PENALTY_ALPHA},
    {"dola", required_argument, 0, OPT_DOLA},
    {"dola-layers", required_argument, 0, OPT_DOLA},
    {"verbose", no_argument, 0, 'v'},
    {0, 0, 0, 0},
};

void cli_options_init(cli_options *o, int32_t default_max_tokens) {
    memset(o, 0, sizeof *o);
    o->model = pagoda_model_params_default();
    o->sampling = pagoda_sampling_params_default();
    o->sampling.max_tokens = default_max_tokens;
}

void cli_print_common_help(FILE *out) {
    fprintf(out,
            "model and compute:\n"
            "  -m, --model FILE        GGUF model (default: $PAGODA_MODEL, else the default model\n"
            "                          SmolLM2-135M-Instruct fetched by scripts/fetch_model.sh)\n"
            "  -t, --threads N         CPU threads (default: all cores)\n"
            "  -c, --ctx-size N        longest sequence, prompt + output (default: min(trained, 4096))\n"
            "engine:\n"
            "  -b, --max-batched-tokens N  tokens computed per step over all sequences (default: 512)\n"
            "      --max-seqs N        sequences running at once (default: 64)\n"
            "      --kv-cache-mem SIZE KV cache budget, e.g. 512M or 2G (default: a quarter of free\n"
            "                          memory, at most what max-seqs full-length sequences need)\n"
            "      --kv-type T         KV cache type: f16 (default), bf16 or f32\n"
            "      --block-size N      tokens per KV block (default: 16)\n"
            "      --no-prefix-caching do not reuse the KV blocks of earlier identical prefixes\n"
            "      --policy P          fcfs (default) or priority\n"
            "speculative decoding (one draft source; the output distribution stays the model's):\n"
            "      --draft FILE        draft model: a smaller GGUF with the same vocabulary (default: none)\n"
            "      --draft-layers L    self-speculation: the model's own first L layers draft (default: off)\n"
            "      --lookup N          prompt lookup: drafts copy what followed the last N..1 tokens\n"
            "                          earlier in the context, no draft model (default: off)\n"
            "      --draft-k K         most tokens drafted per step, 1 to 16 (default: 4; fewer while\n"
            "                          drafts get rejected)\n"
            "sampling:\n"
            "  -n, --n-predict N       most tokens to generate, -1 for no limit (default: 256 for run\n"
            "                          and batch, no limit for chat and serve)\n"
            "      --temp T            temperature, 0 = greedy (default: 0.8)\n"
            "      --top-k K           keep the K most likely tokens, 0 = off (default: 40)\n"
            "      --top-p P           nucleus sampling, 1 = off (default: 0.95)\n"
            "      --min-p P           drop tokens under P x the top probability, 0 = off (default: 0.05)\n"
            "      --typical-p P       locally typical sampling, 1 = off (default: 1)\n"
            "      --repeat-penalty R  divide positive / multiply negative logits of tokens in the prompt\n"
            "                          or output by R, 1 = off (default: 1)\n"
            "      --presence-penalty A  subtract A from tokens already in the output, -2..2 (default: 0)\n"
            "      --frequency-penalty A subtract A x their count in the output, -2..2 (default: 0)\n"
            "      --logit-bias T=B    add B (-100..100) to token id T's logit; repeatable (default: none)\n"
            "      --stop TEXT         end the output before TEXT (not printed); repeatable (default: none)\n"
            "                          chain order: bias, penalties, temperature, top-k, top-p, min-p,\n"
            "                          typical-p (docs/ENGINE.md, Sampling)\n"
            "  -s, --seed S            random seed (default: from the clock, printed with -v)\n"
            "      --ignore-eos        keep generating past end-of-generation tokens\n"
            "search strategies (greedy-based, as HF transformers defines them; at most one):\n"
            "      --beams N           beam search with N beams, 1 = off (default: 1); -n/n picks the\n"
            "                          N best to return (pagoda batch: \"n\" <= N)\n"
            "      --length-penalty L  beam score = sum of log-probabilities / length^L (default: 1)\n"
            "      --early-stopping    stop as soon as N finished beams exist (default: off, stop when\n"
            "                          no running beam can beat them)\n"
            "      --penalty-alpha A   contrastive search, 0 = off (default: 0): of the --top-k K\n"
            "                          candidates (set K, e.g. 4), the best (1-A) p - A max cosine\n"
            "                          similarity of its hidden state with the context's\n"
            "      --dola LAYERS       DoLa (default: off): contrast the final layer with a premature\n"
            "                          one from LAYERS: low, high or a comma list of layer indices\n"
            "  -v, --verbose           describe the model and the run on stderr\n");
}

static int bad_value(const char *command, const char *option, const char *arg, const char *why) {
    fprintf(stderr, "pagoda %s: invalid value '%s' for %s: %s\n", command, arg, option, why);
    return -1;
}

static bool parse_long(const char *arg, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(arg, &end, 10);
    if (errno || end == arg || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

static bool parse_float(const char *arg, float *out) {
    char *end;
    errno = 0;
    float v = strtof(arg, &end);
    if (errno || end == arg || *end || !isfinite(v)) return false;
    *out = v;
    return true;
}

int cli_handle_common_option(cli_options *o, int opt, const char *arg, const char *cmd) {
    long long v;
    float f;
    switch (opt) {
    case 'm': o->model_path = arg; return 1;
    case 't':
        if (!parse_long(arg, 1, 1024, &v)) return bad_value(cmd, "--threads", arg, "expected 1 to 1024");
        o->model.n_threads = (int32_t)v;
        return 1;
    case 'c':
        if (!parse_long(arg, 1, 1 << 24, &v)) return bad_value(cmd, "--ctx-size", arg, "expected a positive count");
        o->model.n_ctx = (int32_t)v;
        return 1;
    case 'b':
        if (!parse_long(arg, 1, 1 << 16, &v)) return bad_value(cmd, "--max-batched-tokens", arg, "expected 1 to 65536");
        o->model.n_batch = (int32_t)v;
        return 1;
    case 'n':
        if (!parse_long(arg, -1, INT32_MAX, &v)) return bad_value(cmd, "--n-predict", arg, "expected -1 or more");
        o->sampling.max_tokens = (int32_t)v;
        return 1;
    case 's':
        if (!parse_long(arg, 0, LLONG_MAX, &v)) return bad_value(cmd, "--seed", arg, "expected a non-negative integer");
        o->sampling.seed = (uint64_t)v;
        o->seed_given = true;
        return 1;
    case OPT_TEMP:
        if (!parse_float(arg, &f) || f < 0) return bad_value(cmd, "--temp", arg, "expected a number >= 0");
        o->sampling.temperature = f;
        return 1;
    case OPT_TOP_K:
        if (!parse_long(arg, 0, INT32_MAX, &v)) return bad_value(cmd, "--top-k", arg, "expected an integer >= 0");
        o->sampling.top_k = (int32_t)v;
        return 1;
    case OPT_TOP_P:
        if (!parse_float(arg, &f) || !(f > 0 && f <= 1)) return bad_value(cmd, "--top-p", arg, "expected 0 < p <= 1");
        o->sampling.top_p = f;
        return 1;
    case OPT_MIN_P:
        if (!parse_float(arg, &f) || !(f >= 0 && f <= 1)) return bad_value(cmd, "--min-p", arg, "expected 0 <= p <= 1");
        o->sampling.min_p = f;
        return 1;
    case OPT_TYPICAL_P:
        if (!parse_float(arg, &f) || !(f > 0 && f <= 1)) return bad_value(cmd, "--typical-p", arg, "expected 0 < p <= 1");
        o->sampling.typical_p = f;
        return 1;
    case OPT_REPEAT_PENALTY:
        if (!parse_float(arg, &f) || !(f > 0 && f <= 100))
            return bad_value(cmd, "--repeat-penalty", arg, "expected a number > 0 (1 = off)");
        o->sampling.repetition_penalty = f;
        return 1;
    case OPT_PRESENCE_PENALTY:
    case OPT_FREQUENCY_PENALTY: {
        const char *name = opt == OPT_PRESENCE_PENALTY ? "--presence-penalty" : "--frequency-penalty";
        if (!parse_float(arg, &f) || !(f >= -2 && f <= 2)) return bad_value(cmd, name, arg, "expected -2 to 2");
        if (opt == OPT_PRESENCE_PENALTY) o->sampling.presence_penalty = f;
        else o->sampling.frequency_penalty = f;
        return 1;
    }
    case OPT_STOP:
        if (!*arg) return bad_value(cmd, "--stop", arg, "expected non-empty text");
        if (o->n_stop >= CLI_MAX_STOP) return bad_value(cmd, "--stop", arg, "too many (at most 16)");
        o->stop[o->n_stop++] = arg;
        o->sampling.stop = o->stop;
        o->sampling.n_stop = (size_t)o->n_stop;
        return 1;
    case OPT_LOGIT_BIAS: {
        const char *eq = strchr(arg, '=');
        char token_text[32];
        if (!eq || eq == arg || (size_t)(eq - arg) >= sizeof token_text)
            return bad_value(cmd, "--logit-bias", arg, "expected TOKEN=BIAS, e.g. 42=-100");
        memcpy(token_text, arg, (size_t)(eq - arg));
        token_text[eq - arg] = '\0';
        if (!parse_long(token_text, 0, INT32_MAX, &v))
            return bad_value(cmd, "--logit-bias", arg, "the token must be a token id >= 0");
        if (!parse_float(eq + 1, &f) || !(f >= -100 && f <= 100))
            return bad_value(cmd, "--logit-bias", arg, "the bias must be a number from -100 to 100");
        if (o->n_logit_bias >= CLI_MAX_LOGIT_BIAS) return bad_value(cmd, "--logit-bias", arg, "too many (at most 64)");
        o->logit_bias[o->n_logit_bias++] = (pagoda_logit_bias){(int32_t)v, f};
        o->sampling.logit_bias = o->logit_bias;
        o->sampling.n_logit_bias = (size_t)o->n_logit_bias;
        return 1;
    }
    case OPT_IGNORE_EOS: o->sampling.ignore_eos = true; return 1;
    case OPT_MAX_SEQS:
        if (!parse_long(arg, 1, 4096, &v)) return bad_value(cmd, "--max-seqs", arg, "expected 1 to 4096");
        o->model.max_seqs = (int32_t)v;
        return 1;
    case OPT_BLOCK_SIZE:
        if (!parse_long(arg, 1, 1024, &v)) return bad_value(cmd, "--block-size", arg, "expected 1 to 1024");
        o->model.kv_block_size = (int32_t)v;
        return 1;
    case OPT_KV_MEM: {
        char *end;
        errno = 0;
        double bytes = strtod(arg, &end);
        double unit = *end == 'K' || *end == 'k' ? 1024.0 : *end == 'M' || *end == 'm' ? 1048576.0
                    : *end == 'G' || *end == 'g' ? 1073741824.0 : *end == '\0' ? 1.0 : 0.0;
        if (*end && end[1] && !(end[1] == 'B' || end[1] == 'b' || end[1] == 'i')) unit = 0;
        if (errno || end == arg || unit == 0 || !(bytes > 0) || bytes * unit > 1e15)
            return bad_value(cmd, "--kv-cache-mem", arg, "expected a size such as 512M or 2G");
        o->model.kv_cache_bytes = (int64_t)(bytes * unit);
        return 1;
    }
    case OPT_KV_TYPE:
        if (!strcasecmp(arg, "f16")) o->model.kv_type = PAGODA_KV_F16;
        else if (!strcasecmp(arg, "bf16")) o->model.kv_type = PAGODA_KV_BF16;
        else if (!strcasecmp(arg, "f32")) o->model.kv_type = PAGODA_KV_F32;
        else return bad_value(cmd, "--kv-type", arg, "expected f16, bf16 or f32");
        return 1;
    case OPT_NO_PREFIX_CACHE: o->model.no_prefix_caching = true; return 1;
    case OPT_POLICY:
        if (!strcmp(arg, "fcfs")) o->model.policy = PAGODA_SCHED_FCFS;
        else if (!strcmp(arg, "priority")) o->model.policy = PAGODA_SCHED_PRIORITY;
        else return bad_value(cmd, "--policy", arg, "expected fcfs or priority");
        return 1;
    case OPT_DRAFT: o->model.draft_model_path = arg; return 1;
    case OPT_DRAFT_LAYERS:
        if (!parse_long(arg, 1, 4096, &v)) return bad_value(cmd, "--draft-layers", arg, "expected a layer count >= 1");
        o->model.draft_layers = (int32_t)v;
        return 1;
    case OPT_LOOKUP:
        if (!parse_long(arg, 1, 64, &v)) return bad_value(cmd, "--lookup", arg, "expected an n-gram length of 1 to 64");
        o->model.lookup_ngram = (int32_t)v;
        return 1;
    case OPT_DRAFT_K:
        if (!parse_long(arg, 1, 16, &v)) return bad_value(cmd, "--draft-k", arg, "expected 1 to 16");
        o->model.draft_k = (int32_t)v;
        return 1;
    case 'v': o->verbose = true; return 1;
    case OPT_BEAMS:
        if (!parse_long(arg, 1, 1024, &v)) return bad_value(cmd, "--beams", arg, "expected 1 to 1024 beams");
        o->sampling.num_beams = (int32_t)v;
        return 1;
    case OPT_LENGTH_PENALTY:
        if (!parse_float(arg, &f)) return bad_value(cmd, "--length-penalty", arg, "expected a number");
        o->sampling.length_penalty = f;
        return 1;
    case OPT_EARLY_STOPPING: o->sampling.early_stopping = true; return 1;
    case OPT_PENALTY_ALPHA:
        if (!parse_float(arg, &f) || !(f >= 0 && f <= 1))
            return bad_value(cmd, "--penalty-alpha", arg, "expected 0 <= A <= 1");
        o->sampling.penalty_alpha = f;
        return 1;
    case OPT_DOLA: {
        bool ok = !strcmp(arg, "low") || !strcmp(arg, "high");
        if (!ok && *arg) { /* a comma list of layer indices */
            ok = true;
            for (const char *p = arg; *p && ok; p++)
                ok = (*p >= '0' && *p <= '9') || (*p == ',' && p != arg && p[-1] != ',' && p[1]);
        }
        if (!ok) return bad_value(cmd, "--dola", arg, "expected low, high or a comma list of layer indices");
        o->sampling.dola_layers = arg;
        return 1;
    }
    default: return 0;
    }
}

void cli_merge_long_options(const struct option *own, struct option *out, int cap) {
    int n = 0;
    for (const struct option *p = own; p->name && n < cap - 1; p++) out[n++] = *p;
    for (const struct option *p = cli_common_long_options; p->name && n < cap - 1; p++) out[n++] = *p;
    out[n] = (struct option){0, 0, 0, 0};
}

const char *cli_default_model_path(void) {
    static char path[4096];
    const char *env = getenv("PAGODA_MODEL");
    if (env && *env) return env;
    const char *dir = getenv("PAGODA_MODEL_DIR");
    if (dir && *dir) snprintf(path, sizeof path, "%s/SmolLM2-135M-Instruct.Q4_1.gguf", dir);
    else snprintf(path, sizeof path, "%s/.cache/pagoda/models/SmolLM2-135M-Instruct.Q4_1.gguf",
                  getenv("HOME") ? getenv("HOME") : ".");
    return path;
}

pagoda_model *cli_load_model(cli_options *o, const char *command) {
    const char *path = o->model_path;
    if (!path) {
        path = cli_default_model_path();
        if (access(path, R_OK) != 0) {
            fprintf(stderr, "pagoda %s: no model given (-m FILE) and the default model %s is not there: "
                            "fetch it with scripts/fetch_model.sh\n", command, path);
            return NULL;
        }
    }
    if (!o->seed_given) o->sampling.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    pagoda_model *m;
    if (pagoda_model_load(path, &o->model, &m) != PAGODA_OK) {
        fprintf(stderr, "pagoda %s: %s\n", command, pagoda_last_error());
        return NULL;
    }
    pagoda_model_info info;
    pagoda_model_get_info(m, &info);
    if (o->verbose || o->announce_kv)
        fprintf(stderr, "pagoda: KV cache: %lld blocks of %d tokens = %lld tokens (%s, %.1f MiB)\n",
            (long long)info.kv_blocks, info.kv_block_size, (long long)info.kv_blocks * info.kv_block_size,
            info.kv_type, (double)info.kv_bytes / (1024.0 * 1024.0));
    if (o->verbose) {
        fprintf(stderr, "pagoda: %s (%s, %.1f M parameters, %d layers, %.1f MiB), context %d, %d threads, seed %llu\n",
                info.name[0] ? info.name : path, info.architecture, (double)info.n_params / 1e6, info.n_layer,
                (double)info.file_bytes / (1024.0 * 1024.0), info.n_ctx, info.n_threads,
                (unsigned long long)o->sampling.seed);
        int k = o->model.draft_k > 0 ? o->model.draft_k : 4;
        if (o->model.draft_model_path)
            fprintf(stderr, "pagoda: speculative decoding: draft model %s, up to %d drafts a step\n",
                    o->model.draft_model_path, k);
        else if (o->model.draft_layers)
            fprintf(stderr, "pagoda: speculative decoding: the first %d layers draft, up to %d a step\n",
                    o->model.draft_layers, k);
        else if (o->model.lookup_ngram)
            fprintf(stderr, "pagoda: speculative decoding: prompt lookup of %d..1-grams, up to %d drafts a step\n",
                    o->model.lookup_ngram, k);
    }
    return m;
}
