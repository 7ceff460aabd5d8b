/* tests/test_engine.c - the paged engine end to end, on the real stories260K model:
 *   - batch invariance: 32 prompts of mixed lengths submitted together give, greedily, exactly the
 *     tokens each gives alone (pagoda_generate, what `pagoda run` uses), also with a KV budget so
 *     small that sequences are preempted (the test checks some were), and with chunked prefill;
 *   - prefix caching: a request sharing a long prefix with an earlier one computes only its new
 *     tokens (the counters say so) and its output equals a cold run;
 *   - forks: n = 4 samples share the prompt's blocks and each equals the same request run alone
 *     with that sample's seed;
 *   - a request that can never fit gets a clear error and the engine keeps serving; an aborted
 *     request returns its blocks at once.
 * The reference for each check is the engine running one request alone on a fresh model.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pagoda.h"
#include "test_engine_util.h" /* defines: test_engine_load, test_engine_collect */
#include "testlib.h"

enum { N_PROMPTS = 32, MAX_NEW = 40, MAX_IDS = 512 };

static const char *WORDS[] = {"Once", "upon", "a", "time", "there", "was", "a", "little", "girl", "named", "Lily",
                              "she", "liked", "to", "play", "with", "her", "dog", "in", "the", "park", "one",
                              "day", "they", "saw", "big", "red", "ball", "and", "happy", "sun", "tree"};

typedef struct ids { int32_t v[MAX_IDS]; int n; } ids;

static void make_prompt(int i, char *buf, size_t cap) {
    int n_words = 1 + (i * 7) % 45; /* 1 .. 45 words: mixed lengths, on and across block boundaries */
    size_t len = 0;
    buf[0] = '\0';
    for (int w = 0; w < n_words && len + 16 < cap; w++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", w ? " " : "", WORDS[(i * 13 + w * 5) % 32]);
}

static bool collect(void *user, int32_t token, const char *text, size_t len) {
    (void)text, (void)len;
    ids *out = user;
    if (token >= 0 && out->n < MAX_IDS) out->v[out->n++] = token;
    return true;
}

static void tokenize(pagoda_model *m, const char *text, ids *out) {
    int32_t *v;
    size_t n;
    CHECK(pagoda_tokenize(m, text, strlen(text), true, false, &v, &n) == PAGODA_OK);
    out->n = (int)(n < MAX_IDS ? n : MAX_IDS);
    memcpy(out->v, v, sizeof(int32_t) * (size_t)out->n);
    free(v);
}

/* Runs every prompt at once; results[i] gets request i's generated ids (sample 0). */
static void run_together(pagoda_model *m, const ids *prompts, int n, const pagoda_sampling_params *sp, ids *results) {
    pagoda_request_id rid[N_PROMPTS];
    for (int i = 0; i < n; i++) {
        results[i].n = 0;
        CHECK_MSG(pagoda_add_request(m, prompts[i].v, (size_t)prompts[i].n, sp, 0, &rid[i]) == PAGODA_OK, "%s",
                  pagoda_last_error());
    }
    int32_t *out[N_PROMPTS];
    int n_out[N_PROMPTS];
    for (int i = 0; i < n; i++) {
        out[i] = results[i].v;
        n_out[i] = 0;
    }
    test_engine_collect(m, rid, n, out, n_out, MAX_IDS);
    for (int i = 0; i < n; i++) results[i].n = n_out[i];
}

static int count_equal(const ids *a, const ids *b, int n, const char *what) {
    int equal = 0;
    for (int i = 0; i < n; i++) {
        bool same = a[i].n == b[i].n && !memcmp(a[i].v, b[i].v, sizeof(int32_t) * (size_t)a[i].n);
        if (!same) fprintf(stderr, "%s: prompt %d differs (%d vs %d tokens)\n", what, i, a[i].n, b[i].n);
        equal += same;
    }
    CHECK_MSG(equal == n, "%s: %d of %d prompts differ from their solo run", what, n - equal, n);
    return equal;
}

int main(void) {
    const char *shared = test_shared_dir();
    if (!shared) test_skip("shared data folder not found (set PAGODA_SHARED or place ../shared)");
    const char *path = test_path(shared, "models/stories260K.gguf");
    pagoda_model_params mp = pagoda_model_params_default();
    mp.n_threads = 2;
    mp.n_ctx = 256;
    pagoda_sampling_params greedy = pagoda_sampling_params_default();
    greedy.temperature = 0;
    greedy.max_tokens = MAX_NEW;

    /* solo references, one fresh request at a time, prefix caching off so nothing carries over */
    static ids prompts[N_PROMPTS], solo[N_PROMPTS], together[N_PROMPTS];
    pagoda_model_params solo_params = mp;
    solo_params.no_prefix_caching = true;
    pagoda_model *m = test_engine_load(path, &solo_params);
    if (!m) return test_finish();
    for (int i = 0; i < N_PROMPTS; i++) {
        char text[1024];
        make_prompt(i, text, sizeof text);
        tokenize(m, text, &prompts[i]);
        solo[i].n = 0;
        CHECK(pagoda_generate(m, prompts[i].v, (size_t)prompts[i].n, &greedy, collect, &solo[i], NULL) == PAGODA_OK);
        CHECK(solo[i].n > 0);
    }
    pagoda_model_free(m);

    /* 1. all together, default budget */
    m = test_engine_load(path, &mp);
    run_together(m, prompts, N_PROMPTS, &greedy, together);
    printf("together: %d/%d equal to solo\n", count_equal(solo, together, N_PROMPTS, "together"), N_PROMPTS);
    pagoda_engine_stats st;
    pagoda_get_stats(m, &st);
    CHECK_MSG(st.kv_blocks_used == 0, "%lld blocks still used after every request finished", (long long)st.kv_blocks_used);
    pagoda_model_free(m);

    /* 2. a KV budget so small that sequences are preempted and recomputed */
    pagoda_model_params tight = mp;
    tight.kv_cache_bytes = 1; /* rounded below: set from the block size next */
    m = test_engine_load(path, &mp);
    pagoda_model_info info;
    pagoda_model_get_info(m, &info);
    size_t block_bytes = info.kv_bytes / (size_t)info.kv_blocks;
    pagoda_model_free(m);
    tight.kv_cache_bytes = (int64_t)(block_bytes * 24); /* 24 blocks = 384 tokens for 32 sequences */
    m = test_engine_load(path, &tight);
    run_together(m, prompts, N_PROMPTS, &greedy, together);
    pagoda_get_stats(m, &st);
    printf("tight KV (24 blocks): %llu preemptions, %d/%d equal to solo\n", (unsigned long long)st.n_preemptions,
           count_equal(solo, together, N_PROMPTS, "preempted"), N_PROMPTS);
    CHECK_MSG(st.n_preemptions > 0, "the tight budget caused no preemption: the test tests nothing");
    pagoda_model_free(m);

    /* 3. chunked prefill: 7 tokens per step for everything */
    pagoda_model_params chunked = mp;
    chunked.n_batch = 7;
    m = test_engine_load(path, &chunked);
    run_together(m, prompts, N_PROMPTS, &greedy, together);
    printf("chunked prefill (7 tokens/step): %d/%d equal to solo\n",
           count_equal(solo, together, N_PROMPTS, "chunked"), N_PROMPTS);
    pagoda_model_free(m);

    /* 4. prefix caching: B shares a 100+ token prefix with A */
    m = test_engine_load(path, &mp);
    char shared_text[2048] = "", a_text[2200], b_text[2200];
    for (int w = 0; w < 90; w++) {
        strcat(shared_text, WORDS[(w * 7) % 32]);
        strcat(shared_text, " ");
    }
    snprintf(a_text, sizeof a_text, "%sthe dog ran", shared_text);
    snprintf(b_text, sizeof b_text, "%sthe girl saw a tree", shared_text);
    ids a, b, out_a = {.n = 0}, out_b = {.n = 0}, cold_b = {.n = 0};
    tokenize(m, a_text, &a);
    tokenize(m, b_text, &b);
    pagoda_generation_stats gs;
    CHECK(pagoda_generate(m, a.v, (size_t)a.n, &greedy, collect, &out_a, &gs) == PAGODA_OK);
    CHECK(pagoda_generate(m, b.v, (size_t)b.n, &greedy, collect, &out_b, &gs) == PAGODA_OK);
    int common = 0;
    while (common < a.n && common < b.n && a.v[common] == b.v[common]) common++;
    int expect_cached = common / info.kv_block_size * info.kv_block_size;
    printf("prefix cache: B has %d tokens, %d shared with A, %d computed (expect %d reused)\n", b.n, common,
           gs.n_prompt_computed, expect_cached);
    CHECK_MSG(b.n - gs.n_prompt_computed == expect_cached, "B reused %d tokens, expected %d",
              b.n - gs.n_prompt_computed, expect_cached);
    CHECK(expect_cached >= 96);
    pagoda_get_stats(m, &st);
    CHECK(st.prefix_hits == (uint64_t)expect_cached);
    pagoda_model_free(m);
    m = test_engine_load(path, &solo_params);
    CHECK(pagoda_generate(m, b.v, (size_t)b.n, &greedy, collect, &cold_b, NULL) == PAGODA_OK);
    CHECK_MSG(cold_b.n == out_b.n && !memcmp(cold_b.v, out_b.v, sizeof(int32_t) * (size_t)out_b.n),
              "B with a cached prefix differs from a cold run");
    pagoda_model_free(m);

    /* 5. n = 4 samples share the prompt; each equals a solo run with that sample's seed */
    pagoda_sampling_params sampled = pagoda_sampling_params_default();
    sampled.temperature = 1.0f;
    sampled.max_tokens = 24;
    sampled.seed = 1234;
    sampled.n = 4;
    m = test_engine_load(path, &mp);
    pagoda_request_id rid;
    CHECK(pagoda_add_request(m, prompts[5].v, (size_t)prompts[5].n, &sampled, 0, &rid) == PAGODA_OK);
    ids forked[4] = {{.n = 0}};
    uint64_t computed_before = 0;
    while (pagoda_has_unfinished(m)) {
        const pagoda_output *outs;
        size_t n_outs;
        CHECK(pagoda_step(m, &outs, &n_outs) == PAGODA_OK);
        for (size_t o = 0; o < n_outs; o++)
            for (size_t t = 0; t < outs[o].n_tokens; t++) forked[outs[o].index].v[forked[outs[o].index].n++] = outs[o].tokens[t];
    }
    pagoda_get_stats(m, &st);
    computed_before = st.computed_tokens;
    /* the prompt once, then each sample's tokens but its last (sampled, never fed back) */
    uint64_t expect_computed = (uint64_t)prompts[5].n;
    for (int s = 0; s < 4; s++) expect_computed += (uint64_t)(forked[s].n > 0 ? forked[s].n - 1 : 0);
    CHECK_MSG(computed_before == expect_computed, "computed %llu tokens, expected %llu (the prompt once)",
              (unsigned long long)computed_before, (unsigned long long)expect_computed);
    pagoda_model_free(m);
    m = test_engine_load(path, &solo_params);
    int fork_equal = 0, distinct = 0;
    for (int s = 0; s < 4; s++) {
        pagoda_sampling_params one = sampled;
        one.n = 1;
        one.seed = sampled.seed + 0x9E3779B97F4A7C15ull * (uint64_t)s;
        ids alone = {.n = 0};
        CHECK(pagoda_generate(m, prompts[5].v, (size_t)prompts[5].n, &one, collect, &alone, NULL) == PAGODA_OK);
        fork_equal += alone.n == forked[s].n && !memcmp(alone.v, forked[s].v, sizeof(int32_t) * (size_t)alone.n);
        if (s > 0) distinct += forked[s].n != forked[0].n || memcmp(forked[s].v, forked[0].v, sizeof(int32_t) * (size_t)forked[0].n);
    }
    printf("forks: %d/4 samples equal their solo runs, %d differ from sample 0\n", fork_equal, distinct);
    CHECK(fork_equal == 4);
    CHECK(distinct >= 1);
    pagoda_model_free(m);

    /* 6. a request that can never fit; the engine keeps serving */
    pagoda_model_params tiny = mp;
    tiny.kv_cache_bytes = (int64_t)(block_bytes * 3);
    m = test_engine_load(path, &tiny);
    CHECK(pagoda_add_request(m, prompts[31].v, (size_t)prompts[31].n, &greedy, 0, &rid) == PAGODA_ERR_CONTEXT_FULL);
    CHECK(strstr(pagoda_last_error(), "KV blocks") != NULL);
    ids small = {.n = 0};
    CHECK(pagoda_generate(m, prompts[0].v, (size_t)prompts[0].n, &greedy, collect, &small, NULL) == PAGODA_OK);
    CHECK(small.n > 0);
    pagoda_model_free(m);

    /* 7. abort returns the blocks at once */
    m = test_engine_load(path, &mp);
    pagoda_request_id keep, gone;
    CHECK(pagoda_add_request(m, prompts[30].v, (size_t)prompts[30].n, &greedy, 0, &keep) == PAGODA_OK);
    CHECK(pagoda_add_request(m, prompts[29].v, (size_t)prompts[29].n, &greedy, 0, &gone) == PAGODA_OK);
    const pagoda_output *outs;
    size_t n_outs;
    for (int i = 0; i < 3; i++) CHECK(pagoda_step(m, &outs, &n_outs) == PAGODA_OK);
    pagoda_engine_stats before, after;
    pagoda_get_stats(m, &before);
    CHECK(pagoda_abort(m, gone) == PAGODA_OK);
    pagoda_get_stats(m, &after);
    CHECK_MSG(after.kv_blocks_used < before.kv_blocks_used, "abort freed no blocks (%lld -> %lld)",
              (long long)before.kv_blocks_used, (long long)after.kv_blocks_used);
    CHECK(pagoda_abort(m, gone) == PAGODA_ERR_INVALID_ARGUMENT);
    while (pagoda_has_unfinished(m)) CHECK(pagoda_step(m, &outs, &n_outs) == PAGODA_OK);
    pagoda_get_stats(m, &after);
    CHECK(after.kv_blocks_used == 0);
    pagoda_model_free(m);

    /* 8. priority policy: with one sequence slot, lower priority values are served first */
    pagoda_model_params by_priority = mp;
    by_priority.policy = PAGODA_SCHED_PRIORITY;
    by_priority.max_seqs = 1;
    m = test_engine_load(path, &by_priority);
    int32_t priorities[3] = {5, 1, 3};
    pagoda_request_id pid[3];
    pagoda_sampling_params short_greedy = greedy;
    short_greedy.max_tokens = 4;
    for (int i = 0; i < 3; i++)
        CHECK(pagoda_add_request(m, prompts[i].v, (size_t)prompts[i].n, &short_greedy, priorities[i], &pid[i]) == PAGODA_OK);
    pagoda_request_id finish_order[3];
    int n_finished = 0;
    while (pagoda_has_unfinished(m) && n_finished < 3) {
        CHECK(pagoda_step(m, &outs, &n_outs) == PAGODA_OK);
        for (size_t o = 0; o < n_outs; o++)
            if (outs[o].finished) finish_order[n_finished++] = outs[o].id;
    }
    CHECK_MSG(n_finished == 3 && finish_order[0] == pid[1] && finish_order[1] == pid[2] && finish_order[2] == pid[0],
              "priority order not respected");
    pagoda_model_free(m);
    return test_finish();
}
