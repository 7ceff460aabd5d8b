/* tests/test_sampler_engine.c - the sampler chain inside the batched engine, on stories260K:
 *   - stop strings: the greedy output with a stop string equals the unstopped output cut before the
 *     string's first occurrence (strstr: the independent answer), finish reason stop, and no step's
 *     text ever holds the stop string, also when it spans tokens;
 *   - stop token ids: generation ends before the first occurrence of the id in the unstopped output;
 *   - logit bias +100 on a token makes greedy emit only that token; -100 on the greedy token
 *     changes the first output token;
 *   - logprobs: one record per output token, the token's own logprob equals the top-1 logprob for
 *     greedy (the argmax), the top ones descend and their probabilities sum to <= 1;
 *   - seeds: a request with the full chain (temperature, top-k, top-p, min-p, typical-p, penalties,
 *     bias) gives the same tokens alone and in a batch with 7 other requests;
 *   - arrays are copied at pagoda_add_request (the caller's are overwritten right after);
 *   - bad parameters are refused with a message naming the field.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pagoda.h"
#include "testlib.h"

enum { MAX_OUT = 256 };

typedef struct run_result {
    int32_t tokens[MAX_OUT];
    int n_tokens;
    char text[4096];
    size_t text_len;
    pagoda_finish_reason reason;
    bool step_text_had_stop; /* some step's text contained the stop string */
    int n_logprobs;
    bool logprobs_ok;
} run_result;

static pagoda_model *model;

static void prompt_ids(const char *text, int32_t **ids, size_t *n) {
    CHECK(pagoda_tokenize(model, text, strlen(text), true, false, ids, n) == PAGODA_OK);
}

/* Runs requests together; results[i] gets request i's sample 0. `stop_check` is looked for in each
 * step's text. */
static void run_batch(const char *const *prompts, const pagoda_sampling_params *sp, int n, run_result *results,
                      const char *stop_check) {
    pagoda_request_id ids[16];
    for (int i = 0; i < n; i++) {
        int32_t *p;
        size_t np;
        prompt_ids(prompts[i], &p, &np);
        memset(&results[i], 0, sizeof results[i]);
        results[i].logprobs_ok = true;
        CHECK_MSG(pagoda_add_request(model, p, np, &sp[i], 0, &ids[i]) == PAGODA_OK, "add: %s", pagoda_last_error());
        free(p);
    }
    int done = 0;
    while (done < n && pagoda_has_unfinished(model)) {
        const pagoda_output *outs;
        size_t n_outs;
        CHECK(pagoda_step(model, &outs, &n_outs) == PAGODA_OK);
        for (size_t k = 0; k < n_outs; k++) {
            const pagoda_output *o = &outs[k];
            int i = 0;
            while (i < n && ids[i] != o->id) i++;
            if (i == n || o->index != 0) continue;
            run_result *r = &results[i];
            if (stop_check && strstr(o->text, stop_check)) r->step_text_had_stop = true;
            for (size_t t = 0; t < o->n_tokens && r->n_tokens < MAX_OUT; t++) {
                r->tokens[r->n_tokens++] = o->tokens[t];
                if (o->logprobs) {
                    const pagoda_token_logprob *lp = &o->logprobs[t];
                    r->n_logprobs++;
                    double mass = 0;
                    bool ok = lp->token == o->tokens[t] && lp->logprob <= 0;
                    for (int32_t j = 0; j < lp->n_top; j++) {
                        mass += exp(lp->top[j].logprob);
                        if (j > 0) ok = ok && lp->top[j].logprob <= lp->top[j - 1].logprob;
                    }
                    ok = ok && mass <= 1 + 1e-4 && lp->n_top == sp[i].top_logprobs;
                    if (sp[i].temperature == 0 && lp->n_top > 0)
                        ok = ok && lp->top[0].token == lp->token && lp->top[0].logprob == lp->logprob;
                    r->logprobs_ok = r->logprobs_ok && ok;
                }
            }
            if (r->text_len + o->text_len < sizeof r->text) {
                memcpy(r->text + r->text_len, o->text, o->text_len);
                r->text_len += o->text_len;
                r->text[r->text_len] = '\0';
            }
            if (o->finished) {
                r->reason = o->finish_reason;
                done++;
            }
        }
    }
}

static pagoda_sampling_params greedy(int max_tokens) {
    pagoda_sampling_params sp = pagoda_sampling_params_default();
    sp.temperature = 0;
    sp.max_tokens = max_tokens;
    sp.ignore_eos = true;
    return sp;
}

static void test_stop_strings(void) {
    const char *prompt = "Once upon a time";
    pagoda_sampling_params sp = greedy(60);
    run_result base, r;
    run_batch(&prompt, &sp, 1, &base, NULL);
    CHECK(base.reason == PAGODA_FINISH_LENGTH && base.text_len > 40);
    /* stop strings cut at several places: inside a word, across tokens, at the start, absent */
    const char *stops[] = {"le gi", "Lily", "e", "girl named", ", t", "no such text", "park. One"};
    for (size_t i = 0; i < sizeof stops / sizeof stops[0]; i++) {
        const char *list[2] = {"zzzz", stops[i]};
        sp.stop = list;
        sp.n_stop = 2;
        run_batch(&prompt, &sp, 1, &r, stops[i]);
        const char *hit = strstr(base.text, stops[i]);
        size_t want = hit ? (size_t)(hit - base.text) : base.text_len;
        CHECK_MSG(r.text_len == want && !memcmp(r.text, base.text, want), "stop '%s': got '%s', want '%.*s'", stops[i],
                  r.text, (int)want, base.text);
        CHECK_MSG(r.reason == (hit ? PAGODA_FINISH_STOP : PAGODA_FINISH_LENGTH), "stop '%s': finish reason %d",
                  stops[i], (int)r.reason);
        CHECK_MSG(!r.step_text_had_stop, "stop '%s': a step's text showed it", stops[i]);
        /* the tokens are the unstopped run's, up to the one completing the stop string */
        CHECK(r.n_tokens <= base.n_tokens && !memcmp(r.tokens, base.tokens, sizeof(int32_t) * (size_t)r.n_tokens));
    }
    sp.stop = NULL;
    sp.n_stop = 0;
    /* stop token ids: the 6th output token's id ends the output before its first occurrence */
    int32_t stop_id = base.tokens[5];
    int first = 0;
    while (base.tokens[first] != stop_id) first++;
    sp.stop_token_ids = &stop_id;
    sp.n_stop_token_ids = 1;
    run_batch(&prompt, &sp, 1, &r, NULL);
    CHECK_MSG(r.n_tokens == first && !memcmp(r.tokens, base.tokens, sizeof(int32_t) * (size_t)first) &&
                  r.reason == PAGODA_FINISH_STOP,
              "stop_token_ids [%d]: %d tokens (want %d), reason %d", stop_id, r.n_tokens, first, (int)r.reason);
}

static void test_logit_bias_and_logprobs(void) {
    const char *prompt = "Once upon a time";
    pagoda_sampling_params sp = greedy(12);
    run_result base, r;
    run_batch(&prompt, &sp, 1, &base, NULL);
    pagoda_logit_bias up = {base.tokens[3] == 300 ? 301 : 300, 100.0f}, down = {base.tokens[0], -100.0f};
    sp.logit_bias = &up;
    sp.n_logit_bias = 1;
    run_batch(&prompt, &sp, 1, &r, NULL);
    int n_other = 0;
    for (int i = 0; i < r.n_tokens; i++) n_other += r.tokens[i] != up.token;
    CHECK_MSG(r.n_tokens == 12 && n_other == 0, "bias +100 on %d: %d of %d tokens are others", up.token, n_other,
              r.n_tokens);
    sp.logit_bias = &down;
    run_batch(&prompt, &sp, 1, &r, NULL);
    CHECK_MSG(r.n_tokens > 0 && r.tokens[0] != down.token, "bias -100 on the greedy token %d: still chosen",
              down.token);
    /* logprobs: greedy, with 5 alternatives, and the text unchanged by asking for them */
    sp = greedy(12);
    sp.logprobs = true;
    sp.top_logprobs = 5;
    run_batch(&prompt, &sp, 1, &r, NULL);
    CHECK(r.n_logprobs == r.n_tokens && r.n_tokens == 12 && r.logprobs_ok);
    CHECK(!memcmp(r.tokens, base.tokens, sizeof(int32_t) * 12));
    sp.top_logprobs = 0; /* the chosen token only */
    run_batch(&prompt, &sp, 1, &r, NULL);
    CHECK(r.n_logprobs == r.n_tokens && r.logprobs_ok);
    sp.logprobs = false;
    run_batch(&prompt, &sp, 1, &r, NULL);
    CHECK(r.n_logprobs == 0);
}

static void test_seed_in_batch(void) {
    const char *prompts[8] = {"Once upon a time", "The dog", "Lily liked to play", "One day", "a", "the sun",
                              "She saw a big red ball", "Tim"};
    pagoda_logit_bias bias[2] = {{300, 1.5f}, {301, -2.0f}};
    const char *stop[1] = {"zzz"};
    pagoda_sampling_params sp[8];
    for (int i = 0; i < 8; i++) {
        sp[i] = pagoda_sampling_params_default();
        sp[i].max_tokens = 40;
        sp[i].ignore_eos = true;
        sp[i].seed = 1000 + (uint64_t)i;
        sp[i].temperature = 0.9f;
        sp[i].top_k = 30;
        sp[i].top_p = 0.95f;
        sp[i].min_p = 0.02f;
        sp[i].typical_p = i % 2 ? 0.9f : 1.0f;
        sp[i].repetition_penalty = 1.2f;
        sp[i].presence_penalty = 0.4f;
        sp[i].frequency_penalty = 0.3f;
        sp[i].logit_bias = bias;
        sp[i].n_logit_bias = 2;
        sp[i].stop = stop;
        sp[i].n_stop = 1;
        sp[i].logprobs = i % 3 == 0;
        sp[i].top_logprobs = i % 3 == 0 ? 3 : 0;
    }
    static run_result alone[8], together[8];
    for (int i = 0; i < 8; i++) run_batch(&prompts[i], &sp[i], 1, &alone[i], NULL);
    run_batch(prompts, sp, 8, together, NULL);
    for (int i = 0; i < 8; i++) {
        CHECK_MSG(alone[i].n_tokens == together[i].n_tokens &&
                      !memcmp(alone[i].tokens, together[i].tokens, sizeof(int32_t) * (size_t)alone[i].n_tokens),
                  "request %d: %d tokens alone, %d in the batch, or they differ", i, alone[i].n_tokens,
                  together[i].n_tokens);
        CHECK(together[i].logprobs_ok && together[i].n_logprobs == (sp[i].logprobs ? together[i].n_tokens : 0));
    }
    /* the chain does something: a different seed gives different text */
    run_result other;
    pagoda_sampling_params changed = sp[0];
    changed.seed = 99;
    run_batch(&prompts[0], &changed, 1, &other, NULL);
    CHECK(other.n_tokens != alone[0].n_tokens ||
          memcmp(other.tokens, alone[0].tokens, sizeof(int32_t) * (size_t)other.n_tokens));
}

static void test_copies(void) {
    const char *prompt = "Once upon a time";
    pagoda_sampling_params sp = greedy(30);
    run_result base, r;
    run_batch(&prompt, &sp, 1, &base, NULL);
    char stop_text[16] = "little";
    const char *stops[1] = {stop_text};
    pagoda_logit_bias bias = {7, -100.0f};
    sp.stop = stops;
    sp.n_stop = 1;
    sp.logit_bias = &bias;
    sp.n_logit_bias = 1;
    int32_t *p;
    size_t np;
    prompt_ids(prompt, &p, &np);
    pagoda_request_id id;
    CHECK(pagoda_add_request(model, p, np, &sp, 0, &id) == PAGODA_OK);
    free(p);
    strcpy(stop_text, "zq");   /* what the engine copied must not change */
    bias.token = base.tokens[0];
    bias.bias = -100.0f;
    memset(&r, 0, sizeof r);
    while (pagoda_has_unfinished(model)) {
        const pagoda_output *outs;
        size_t n_outs;
        CHECK(pagoda_step(model, &outs, &n_outs) == PAGODA_OK);
        for (size_t k = 0; k < n_outs; k++)
            if (outs[k].id == id && r.text_len + outs[k].text_len < sizeof r.text) {
                memcpy(r.text + r.text_len, outs[k].text, outs[k].text_len);
                r.text_len += outs[k].text_len;
                if (outs[k].finished) r.reason = outs[k].finish_reason;
            }
    }
    const char *hit = strstr(base.text, "little");
    CHECK(hit && r.text_len == (size_t)(hit - base.text) && r.reason == PAGODA_FINISH_STOP);
}

static void expect_refused(pagoda_sampling_params sp, const char *name) {
    int32_t prompt[2] = {1, 2};
    pagoda_request_id id = 7;
    pagoda_status st = pagoda_add_request(model, prompt, 2, &sp, 0, &id);
    CHECK_MSG(st == PAGODA_ERR_INVALID_ARGUMENT && id == 0, "%s: accepted", name);
    CHECK_MSG(strstr(pagoda_last_error(), name) != NULL, "%s: message '%s'", name, pagoda_last_error());
}

static void test_validation(void) {
    pagoda_sampling_params ok = pagoda_sampling_params_default(), sp;
    int32_t bad_id = 100000;
    pagoda_logit_bias bad_bias = {100000, 1};
    const char *empty[1] = {""};
    sp = ok; sp.top_p = 1.5f;                      expect_refused(sp, "top_p");
    sp = ok; sp.top_k = -1;                        expect_refused(sp, "top_k");
    sp = ok; sp.typical_p = 1.2f;                  expect_refused(sp, "typical_p");
    sp = ok; sp.repetition_penalty = -0.5f;        expect_refused(sp, "repetition_penalty");
    sp = ok; sp.presence_penalty = 2.5f;           expect_refused(sp, "presence_penalty");
    sp = ok; sp.top_logprobs = 21;                 expect_refused(sp, "top_logprobs");
    sp = ok; sp.logit_bias = &bad_bias; sp.n_logit_bias = 1;   expect_refused(sp, "logit_bias");
    sp = ok; sp.stop_token_ids = &bad_id; sp.n_stop_token_ids = 1; expect_refused(sp, "stop_token_ids");
    sp = ok; sp.stop = empty; sp.n_stop = 1;       expect_refused(sp, "stop");
}

int main(void) {
    const char *shared = test_shared_dir();
    if (!shared) test_skip("shared data folder not found (set PAGODA_SHARED or place ../shared)");
    const char *path = test_path(shared, "models/stories260K.gguf");
    pagoda_model_params mp = pagoda_model_params_default();
    mp.n_threads = 2;
    mp.kv_cache_bytes = 64 << 20;
    if (pagoda_model_load(path, &mp, &model) != PAGODA_OK) test_skip("cannot load %s: %s", path, pagoda_last_error());
    test_validation();
    test_stop_strings();
    test_logit_bias_and_logprobs();
    test_seed_in_batch();
    test_copies();
    pagoda_model_free(model);
    return test_finish();
}
