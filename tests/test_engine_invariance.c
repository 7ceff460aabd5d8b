/* tests/test_engine_invariance.c - batch invariance on a real quantized model (SmolLM2-135M-Instruct
 * Q4_1, the default int8-activation path): each of 12 prompts, greedy, gives exactly the same tokens
 * alone (pagoda_generate, what `pagoda run` uses) as when submitted together with the others:
 *   - at the default budget (decodes batched, prompts prefilled together),
 *   - with chunked prefill (5 tokens per step, so prompts are cut at every length),
 *   - with a KV budget so small that sequences are preempted and recomputed,
 *   - on one thread instead of two.
 * Two prompts are longer than 256 tokens, so attention crosses the fixed softmax chunks
 * (cpu_paged_attention_internal.h) both in prefill and in decode. The reference is the engine running
 * one request alone on a fresh model; a kernel whose rounding depends on the batch (a token's matmul
 * kernel chosen from the batch size, a decode split chosen from the step's work) fails here.
 * Skips when the model has not been fetched (scripts/fetch_model.sh).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pagoda.h"
#include "test_engine_util.h" /* defines: test_engine_load, test_engine_collect */
#include "testlib.h"

enum { N_PROMPTS = 12, MAX_NEW = 24, MAX_IDS = 1024 };

typedef struct ids { int32_t v[MAX_IDS]; int n; } ids;

static const char *TOPICS[] = {"the sea", "a red bicycle", "prime numbers", "bread", "the moon", "rain",
                               "a library", "winter", "bees", "trains", "music", "old maps"};

static void make_prompt(int i, char *buf, size_t cap) {
    size_t len = (size_t)snprintf(buf, cap, "Write a short note about %s.", TOPICS[i]);
    if (i % 6 == 5) /* two long prompts: past the 256-key attention chunk */
        for (int r = 0; r < 40 && len + 64 < cap; r++)
            len += (size_t)snprintf(buf + len, cap - len, " Remember detail %d about %s.", r, TOPICS[(i + r) % 12]);
}

static bool collect(void *user, int32_t token, const char *text, size_t len) {
    (void)text, (void)len;
    ids *out = user;
    if (token >= 0 && out->n < MAX_IDS) out->v[out->n++] = token;
    return true;
}

static void run_together(const char *path, const pagoda_model_params *mp, const ids *prompts,
                         const pagoda_sampling_params *sp, ids *results, uint64_t *preemptions) {
    pagoda_model *m = test_engine_load(path, mp);
    if (!m) return;
    pagoda_request_id rid[N_PROMPTS];
    for (int i = 0; i < N_PROMPTS; i++) {
        results[i].n = 0;
        CHECK_MSG(pagoda_add_request(m, prompts[i].v, (size_t)prompts[i].n, sp, 0, &rid[i]) == PAGODA_OK, "%s",
                  pagoda_last_error());
    }
    int32_t *out[N_PROMPTS];
    int n_out[N_PROMPTS] = {0};
    for (int i = 0; i < N_PROMPTS; i++) out[i] = results[i].v;
    test_engine_collect(m, rid, N_PROMPTS, out, n_out, MAX_IDS);
    for (int i = 0; i < N_PROMPTS; i++) results[i].n = n_out[i];
    pagoda_engine_stats st;
    pagoda_get_stats(m, &st);
    if (preemptions) *preemptions = st.n_preemptions;
    pagoda_model_free(m);
}

static void compare(const ids *solo, const ids *together, const char *what) {
    int equal = 0;
    for (int i = 0; i < N_PROMPTS; i++) {
        bool same = solo[i].n == together[i].n && !memcmp(solo[i].v, together[i].v, sizeof(int32_t) * (size_t)solo[i].n);
        if (!same) {
            int first = 0;
            while (first < solo[i].n && first < together[i].n && solo[i].v[first] == together[i].v[first]) first++;
            fprintf(stderr, "%s: prompt %d differs from token %d\n", what, i, first);
        }
        equal += same;
    }
    printf("%s: %d/%d equal to solo\n", what, equal, N_PROMPTS);
    CHECK_MSG(equal == N_PROMPTS, "%s: %d of %d prompts differ from their solo run", what, N_PROMPTS - equal,
              N_PROMPTS);
}

int main(void) {
    const char *dir = getenv("PAGODA_MODEL_DIR");
    static char cache[4096];
    if (!dir || !*dir) {
        snprintf(cache, sizeof cache, "%s/.cache/pagoda/models", getenv("HOME") ? getenv("HOME") : ".");
        dir = cache;
    }
    const char *path = test_path(dir, "SmolLM2-135M-Instruct.Q4_1.gguf");
    FILE *probe = fopen(path, "rb");
    if (!probe) test_skip("SmolLM2-135M-Instruct.Q4_1.gguf not found (run scripts/fetch_model.sh)");
    fclose(probe);

    pagoda_model_params mp = pagoda_model_params_default();
    mp.n_threads = 2;
    mp.n_ctx = 1024;
    mp.kv_cache_bytes = 64 << 20;
    pagoda_sampling_params greedy = pagoda_sampling_params_default();
    greedy.temperature = 0;
    greedy.max_tokens = MAX_NEW;
    greedy.ignore_eos = true;

    static ids prompts[N_PROMPTS], solo[N_PROMPTS], together[N_PROMPTS];
    pagoda_model_params solo_params = mp;
    solo_params.no_prefix_caching = true;
    pagoda_model *m = test_engine_load(path, &solo_params);
    if (!m) return test_finish();
    int longest = 0;
    for (int i = 0; i < N_PROMPTS; i++) {
        char text[4096];
        make_prompt(i, text, sizeof text);
        int32_t *v;
        size_t n;
        CHECK(pagoda_tokenize(m, text, strlen(text), true, false, &v, &n) == PAGODA_OK);
        prompts[i].n = (int)(n < MAX_IDS ? n : MAX_IDS);
        memcpy(prompts[i].v, v, sizeof(int32_t) * (size_t)prompts[i].n);
        free(v);
        longest = prompts[i].n > longest ? prompts[i].n : longest;
        solo[i].n = 0;
        CHECK(pagoda_generate(m, prompts[i].v, (size_t)prompts[i].n, &greedy, collect, &solo[i], NULL) == PAGODA_OK);
        CHECK(solo[i].n == MAX_NEW);
    }
    CHECK_MSG(longest > 256, "the longest prompt has %d tokens: it must cross the 256-key attention chunk", longest);
    pagoda_model_info info;
    pagoda_model_get_info(m, &info);
    size_t block_bytes = info.kv_bytes / (size_t)info.kv_blocks;
    pagoda_model_free(m);

    run_together(path, &mp, prompts, &greedy, together, NULL);
    compare(solo, together, "together");

    pagoda_model_params chunked = mp;
    chunked.n_batch = 5;
    run_together(path, &chunked, prompts, &greedy, together, NULL);
    compare(solo, together, "chunked prefill (5 tokens/step)");

    pagoda_model_params tight = mp;
    tight.kv_cache_bytes = (int64_t)(block_bytes * (size_t)((longest + MAX_NEW) / 16 + 8));
    uint64_t preemptions = 0;
    run_together(path, &tight, prompts, &greedy, together, &preemptions);
    compare(solo, together, "tight KV");
    CHECK_MSG(preemptions > 0, "the tight budget caused no preemption: that part tests nothing");

    pagoda_model_params one_thread = mp;
    one_thread.n_threads = 1;
    run_together(path, &one_thread, prompts, &greedy, together, NULL);
    compare(solo, together, "one thread");
    return test_finish();
}
