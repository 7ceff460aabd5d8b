/* tests/test_stories260k.c - end-to-end golden: the real 260K-parameter TinyStories llama must
 * reproduce, greedily, the token ids the project owners recorded
 * (../shared/models/stories260K.greedy64.once-upon-a-time.ids). Tokenizer-free: the prompt ids come
 * from the golden file, so this isolates the forward pass. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_backend.h"
#include "model/model.h"
#include "testlib.h"

/* Parses "label [a, b, c]" lines; returns the count read into out. */
static int parse_id_list(const char *text, const char *label, int32_t *out, int max) {
    const char *p = strstr(text, label);
    if (!p || !(p = strchr(p, '['))) return -1;
    int n = 0;
    p++;
    while (n < max) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p) break;
        out[n++] = (int32_t)v;
        p = end;
        while (*p == ',' || *p == ' ') p++;
    }
    return n;
}

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

static void run_greedy(int n_threads, const int32_t *prompt, int n_prompt, const int32_t *expected, int n_expected,
                       const char *model_path) {
    gguf_file *file;
    model *m;
    backend *be;
    model_context *ctx;
    CHECK_MSG(gguf_open(model_path, &file) == PAGODA_OK, "%s", pagoda_last_error());
    CHECK_MSG(model_load_gguf(file, &m) == PAGODA_OK, "%s", pagoda_last_error());
    CHECK(cpu_backend_init(n_threads, m->hp.n_ff, NULL, &be) == PAGODA_OK);
    /* A small batch forces the prompt through several pieces. */
    CHECK(model_context_init(m, be, 256, 3, &ctx) == PAGODA_OK);
    const float *logits;
    CHECK(model_eval(ctx, prompt, n_prompt, false, &logits) == PAGODA_OK);
    int n_generated = n_expected - (n_prompt - 1);
    int mismatches = 0;
    for (int i = 0; i < n_generated; i++) {
        int32_t tok = argmax(logits, m->hp.n_vocab);
        int32_t want = expected[n_prompt - 1 + i];
        if (tok != want && mismatches++ == 0)
            fprintf(stderr, "threads %d: first mismatch at generated token %d: got %d, want %d\n", n_threads, i,
                    tok, want);
        CHECK(model_eval(ctx, &want, 1, false, &logits) == PAGODA_OK);
    }
    CHECK_MSG(mismatches == 0, "%d of %d greedy tokens differ (threads %d)", mismatches, n_generated, n_threads);
    model_context_free(ctx);
    be->free(be);
    model_free(m);
}

int main(void) {
    const char *shared = test_shared_dir();
    if (!shared) test_skip("shared data folder not found (set PAGODA_SHARED or place ../shared)");
    const char *model_path = test_path(shared, "models/stories260K.gguf");
    char *ids_text = test_read_file(test_path(shared, "models/stories260K.greedy64.once-upon-a-time.ids"), NULL);
    if (!ids_text) test_skip("stories260K golden ids not found");
    int32_t prompt[16], expected[128];
    int n_prompt = parse_id_list(ids_text, "prompt tokens", prompt, 16);
    int n_expected = parse_id_list(ids_text, "\nids", expected, 128);
    free(ids_text);
    CHECK(n_prompt == 5 && n_expected == 64);
    /* the golden's id list starts with the prompt's tokens after BOS */
    CHECK(memcmp(expected, prompt + 1, (size_t)(n_prompt - 1) * sizeof(int32_t)) == 0);
    run_greedy(1, prompt, n_prompt, expected, n_expected, model_path);
    run_greedy(2, prompt, n_prompt, expected, n_expected, model_path);
    return test_finish();
}
