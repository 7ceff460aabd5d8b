/* bench/bench_sampler.c - the sampler chain's cost per token (sample/sampler.h) on one row of
 * logits the size of SmolLM2's vocabulary (49152), for greedy, logprobs and the usual chains.
 * Two rows: "peaked" (logits of a trained model's shape: a few tokens within a few units of the max,
 * a long tail far below) and "flat" (uniform over 16 units: the worst case for top-p / typical-p
 * without top-k). Each figure is the median over 7 runs of 500 tokens; every token is accepted, so
 * the penalties' counts grow as they would in a generation. One thread. Not a test.
 * Build: make && cc -std=c11 -D_GNU_SOURCE -O2 -march=x86-64-v3 -Iinclude -Isrc -pthread \
 *          bench/bench_sampler.c build/libpagoda.a -lm -o build/bench_sampler
 * Run:   build/bench_sampler
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "sample/sampler.h" /* defines: sampler_init, sampler_sample, sampler_accept */

enum { N_VOCAB = 49152, N_TOKENS = 500, N_RUNS = 7 };

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double us_per_token(const sampler_params *p, const float *logits) {
    double runs[N_RUNS];
    for (int r = 0; r < N_RUNS; r++) {
        sampler *s;
        if (sampler_init(p, N_VOCAB, &s) != PAGODA_OK) {
            fprintf(stderr, "bench_sampler: %s\n", pagoda_last_error());
            exit(1);
        }
        int32_t prompt[256];
        for (int i = 0; i < 256; i++) prompt[i] = (i * 193) % N_VOCAB;
        sampler_accept_prompt(s, prompt, 256);
        double t0 = now();
        for (int i = 0; i < N_TOKENS; i++) sampler_accept(s, sampler_sample(s, logits));
        runs[r] = (now() - t0) / N_TOKENS * 1e6;
        sampler_free(s);
    }
    qsort(runs, N_RUNS, sizeof runs[0], by_value);
    return runs[N_RUNS / 2];
}

int main(void) {
    static float peaked[N_VOCAB], flat[N_VOCAB];
    uint64_t x = 1;
    for (int i = 0; i < N_VOCAB; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        double u = (double)(x >> 11) * 0x1.0p-53;
        flat[i] = (float)(16.0 * u - 8.0);
        peaked[i] = (float)(-12.0 - 6.0 * u); /* the tail */
    }
    for (int i = 0; i < 32; i++) peaked[(i * 1543) % N_VOCAB] = (float)(-0.25 * i); /* the head */
    static const pagoda_logit_bias bias[4] = {{1, 2}, {2, -100}, {3, 1}, {4, 0.5f}};
    const struct {
        const char *name;
        sampler_params p;
    } cases[] = {
        {"greedy", {.temperature = 0, .top_p = 1}},
        {"greedy + logprobs (top 5)", {.temperature = 0, .top_p = 1, .logprobs = true, .top_logprobs = 5}},
        {"temperature 0.8 only", {.temperature = 0.8f, .top_p = 1}},
        {"T 0.8, top-k 40, top-p 0.95, min-p 0.05", {.temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f}},
        {"  + repetition/presence/frequency + bias",
         {.temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f, .repetition_penalty = 1.1f,
          .presence_penalty = 0.5f, .frequency_penalty = 0.5f, .logit_bias = bias, .n_logit_bias = 4}},
        {"  + typical-p 0.9 + logprobs (top 5)",
         {.temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f, .typical_p = 0.9f,
          .repetition_penalty = 1.1f, .presence_penalty = 0.5f, .frequency_penalty = 0.5f, .logit_bias = bias,
          .n_logit_bias = 4, .logprobs = true, .top_logprobs = 5}},
        {"T 1, top-p 0.9 (no top-k)", {.temperature = 1, .top_p = 0.9f}},
        {"T 1, typical-p 0.9 (no top-k)", {.temperature = 1, .top_p = 1, .typical_p = 0.9f}},
    };
    printf("| chain (vocabulary %d) | peaked row, us/token | flat row, us/token |\n|---|---|---|\n", N_VOCAB);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        printf("| %s | %.1f | %.1f |\n", cases[c].name, us_per_token(&cases[c].p, peaked),
               us_per_token(&cases[c].p, flat));
    return 0;
}
