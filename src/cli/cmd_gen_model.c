/* cli/cmd_gen_model.c - `pagoda gen-model`: write a random-weight llama-family GGUF at a real
 * shape (model/gen_model.h does the work; this file parses options and shows progress). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cli/commands.h"    /* defines: cmd_gen_model */
#include "core/dtype.h"      /* defines: dtype_get_info, DTYPE_* */
#include "model/gen_model.h" /* defines: gen_model_write, gen_model_find_shape, gen_model_options */
#include "pagoda.h"          /* defines: pagoda_last_error */

static void print_help(FILE *out) {
    fprintf(out,
            "usage: pagoda gen-model --shape NAME -o FILE [options]\n\n"
            "Writes a llama-family GGUF model with random weights at a real shape (metadata and\n"
            "tensor names as llama.cpp's converter writes them), for tests and benchmarks.\n\n"
            "options:\n"
            "  --shape NAME        model shape (see below)\n"
            "  -o, --output FILE   output path (written to a temp file, then renamed)\n"
            "  --type TYPE         weight type: F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q3_K\n"
            "                      Q4_K Q5_K Q6_K (default F16; norms and biases stay F32)\n"
            "  --seed S            random seed (default 1); the same seed gives the same file\n"
            "  --vocab-from FILE   copy the tokenizer.* metadata of FILE (a GGUF model or vocab\n"
            "                      file); the vocabulary size becomes FILE's. Default: a synthetic\n"
            "                      byte-level BPE vocabulary of the shape's size\n"
            "  --layers N          override the number of layers\n"
            "  --vocab N           override the vocabulary size (synthetic vocabulary only)\n"
            "  --ctx N             override the context length\n"
            "  -q, --quiet         no progress on stderr\n"
            "  -h, --help          this help\n\nshapes:\n");
    for (int i = 0; i < gen_model_n_shapes(); i++) {
        const gen_model_shape *s = gen_model_shape_at(i);
        fprintf(out, "  %-13s %-5s embd %-4lld layers %-2lld heads %lld/%lld head_dim %lld ffn %lld "
                "vocab %lld%s%s\n", s->name, s->arch, (long long)s->n_embd, (long long)s->n_layer,
                (long long)s->n_head, (long long)s->n_head_kv, (long long)s->head_dim,
                (long long)s->n_ff, (long long)s->n_vocab, s->tied ? " tied" : "",
                s->qkv_bias ? " qkv-bias" : "");
    }
}

static bool parse_i64(const char *text, int64_t min, int64_t max, int64_t *out) {
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || end == text || *end || v < min || v > max) return false;
    *out = v;
    return true;
}

static bool parse_type(const char *text, uint32_t *out) {
    for (uint32_t t = 0; t < DTYPE_COUNT; t++) {
        const dtype_info *info = dtype_get_info(t);
        if (info && strcasecmp(info->name, text) == 0) {
            *out = t;
            return true;
        }
    }
    return false;
}

typedef struct progress_state {
    double start, last; /* seconds */
} progress_state;

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void show_progress(void *ctx, const char *tensor, int64_t i_tensor, int64_t n_tensors,
                          uint64_t bytes_done, uint64_t bytes_total) {
    progress_state *p = ctx;
    double t = now_seconds();
    if (t - p->last < 0.25 && bytes_done < bytes_total) return;
    p->last = t;
    fprintf(stderr, "\r[%4lld/%lld] %-30s %5.1f%%  %.0f / %.0f MB  %.0f s ",
            (long long)i_tensor + 1, (long long)n_tensors, tensor,
            bytes_total ? 100.0 * (double)bytes_done / (double)bytes_total : 100.0,
            (double)bytes_done / 1e6, (double)bytes_total / 1e6, t - p->start);
}

int cmd_gen_model(int argc, char **argv) {
    const char *shape_name = NULL, *output = NULL;
    gen_model_options opt = {.type = DTYPE_F16, .seed = 1};
    int64_t layers = 0, vocab = 0, ctx = 0;
    bool quiet = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        bool ok = true;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            print_help(stdout);
            return 0;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            quiet = true;
            continue;
        } else if (!val) {
            fprintf(stderr, "pagoda gen-model: %s needs a value (see --help)\n", a);
            return 2;
        } else if (!strcmp(a, "--shape")) {
            shape_name = val;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            output = val;
        } else if (!strcmp(a, "--type")) {
            ok = parse_type(val, &opt.type);
        } else if (!strcmp(a, "--seed")) {
            int64_t s;
            ok = parse_i64(val, 0, INT64_MAX, &s);
            opt.seed = (uint64_t)s;
        } else if (!strcmp(a, "--vocab-from")) {
            opt.vocab_from = val;
        } else if (!strcmp(a, "--layers")) {
            ok = parse_i64(val, 1, 4096, &layers);
        } else if (!strcmp(a, "--vocab")) {
            ok = parse_i64(val, 259, 1 << 22, &vocab);
        } else if (!strcmp(a, "--ctx")) {
            ok = parse_i64(val, 1, UINT32_MAX, &ctx);
        } else {
            fprintf(stderr, "pagoda gen-model: unknown option '%s' (see --help)\n", a);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "pagoda gen-model: bad value '%s' for %s (see --help)\n", val, a);
            return 2;
        }
        i++;
    }
    if (!shape_name || !output) {
        fprintf(stderr, "pagoda gen-model: --shape and -o are required (see --help)\n");
        return 2;
    }
    const gen_model_shape *shape = gen_model_find_shape(shape_name);
    if (!shape) {
        fprintf(stderr, "pagoda gen-model: unknown shape '%s' (see --help for the list)\n", shape_name);
        return 2;
    }
    opt.shape = *shape;
    if (layers) opt.shape.n_layer = layers;
    if (vocab) opt.shape.n_vocab = vocab;
    if (ctx) opt.shape.n_ctx = ctx;
    progress_state progress = {.start = now_seconds()};
    if (!quiet) {
        opt.progress = show_progress;
        opt.progress_ctx = &progress;
    }
    pagoda_status st = gen_model_write(&opt, output);
    if (!quiet) fputc('\n', stderr);
    if (st != PAGODA_OK) {
        fprintf(stderr, "pagoda gen-model: %s\n", pagoda_last_error());
        return 1;
    }
    if (!quiet)
        fprintf(stderr, "wrote %s: %s, %lld layers, weights %s, seed %llu, %.1f s\n", output,
                opt.shape.name, (long long)opt.shape.n_layer, dtype_get_info(opt.type)->name,
                (unsigned long long)opt.seed, now_seconds() - progress.start);
    return 0;
}
