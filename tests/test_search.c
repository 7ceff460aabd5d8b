/* tests/test_search.c - beam search, contrastive search and DoLa inside the paged engine, token for
 * token against HF transformers on SmolLM2-135M-Instruct (tests/fixtures/search/smollm2_search.txt,
 * made by tools/make_search_fixtures.py from the same Q4_1 GGUF, dequantised to float32).
 *
 * The engine runs in the CPU backend's exact mode (f32 activations, F32 KV cache): the default int8
 * activations differ from float by rounding, enough to flip near-ties. Checks:
 *   - greedy fixtures first: the float model and Pagoda's exact mode agree at all;
 *   - every case alone on a fresh engine state (beam: several num_beams / length_penalty /
 *     early_stopping / n; contrastive: alpha and k; DoLa: low, high, lists);
 *   - all beam cases at once in one continuous batch with a small max_seqs (beams wait for running
 *     slots, requests interleave) give the same outputs;
 *   - beams share blocks: the peak KV blocks in use stay within prompt + per-beam growth, well under
 *     what copying each beam's cache would take; every block is free again at the end;
 *   - bad parameters are refused with a message naming them.
 * Skips when the model file is absent. PAGODA_SEARCH_KIND=beam (or greedy, contrastive, dola) runs
 * one kind only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_backend.h" /* defines: cpu_backend_set_exact */
#include "engine/engine_internal.h"  /* defines: struct pagoda_model (its backend) */
#include "pagoda.h"
#include "testlib.h"

enum { MAX_CASES = 128, MAX_IDS = 256, MAX_OUTS = 8 };

typedef struct search_case {
    char kind[16];
    char desc[160];
    int32_t num_beams, top_k, n, max_tokens, early_stopping;
    float length_penalty, penalty_alpha;
    char dola[64];
    int32_t prompt[MAX_IDS];
    int n_prompt;
    int32_t out[MAX_OUTS][MAX_IDS];
    int n_out[MAX_OUTS];
    int n_outs;
} search_case;

static search_case cases[MAX_CASES];
static int n_cases;

static int parse_ids(const char *s, int32_t *ids) {
    int n = 0;
    char *end;
    for (long v = strtol(s, &end, 10); end != s && n < MAX_IDS; v = strtol(s, &end, 10)) {
        ids[n++] = (int32_t)v;
        s = end;
    }
    return n;
}

static void parse_param(search_case *c, const char *kv) {
    const char *eq = strchr(kv, '=');
    if (!eq) return;
    size_t klen = (size_t)(eq - kv);
    const char *v = eq + 1;
#define KEY(name) (klen == strlen(name) && strncmp(kv, name, klen) == 0)
    if (KEY("num_beams")) c->num_beams = atoi(v);
    else if (KEY("length_penalty")) c->length_penalty = strtof(v, NULL);
    else if (KEY("early_stopping")) c->early_stopping = atoi(v);
    else if (KEY("n")) c->n = atoi(v);
    else if (KEY("max_tokens")) c->max_tokens = atoi(v);
    else if (KEY("penalty_alpha")) c->penalty_alpha = strtof(v, NULL);
    else if (KEY("top_k")) c->top_k = atoi(v);
    else if (KEY("dola_layers")) snprintf(c->dola, sizeof c->dola, "%s", v);
#undef KEY
}

static bool load_cases(const char *path) {
    size_t len;
    char *text = test_read_file(path, &len);
    if (!text) return false;
    search_case *c = NULL;
    char *save_line;
    for (char *line = strtok_r(text, "\n", &save_line); line; line = strtok_r(NULL, "\n", &save_line)) {
        if (strncmp(line, "case ", 5) == 0 && n_cases < MAX_CASES) {
            c = &cases[n_cases++];
            memset(c, 0, sizeof *c);
            c->length_penalty = 1.0f;
            c->n = 1;
            snprintf(c->desc, sizeof c->desc, "%s", line + 5);
            char buf[256];
            snprintf(buf, sizeof buf, "%s", line + 5);
            char *save, *tok = strtok_r(buf, " ", &save);
            snprintf(c->kind, sizeof c->kind, "%s", tok ? tok : "");
            while ((tok = strtok_r(NULL, " ", &save))) parse_param(c, tok);
        } else if (c && strncmp(line, "prompt ", 7) == 0) {
            c->n_prompt = parse_ids(line + 7, c->prompt);
        } else if (c && strncmp(line, "out", 3) == 0 && c->n_outs < MAX_OUTS) {
            c->n_out[c->n_outs] = parse_ids(line + 3, c->out[c->n_outs]);
            c->n_outs++;
        }
    }
    free(text);
    return true;
}

static pagoda_sampling_params case_params(const search_case *c) {
    pagoda_sampling_params p = pagoda_sampling_params_default();
    p.temperature = 0;
    p.max_tokens = c->max_tokens;
    p.n = c->n;
    if (strcmp(c->kind, "beam") == 0) {
        p.num_beams = c->num_beams;
        p.length_penalty = c->length_penalty;
        p.early_stopping = c->early_stopping != 0;
    } else if (strcmp(c->kind, "contrastive") == 0) {
        p.penalty_alpha = c->penalty_alpha;
        p.top_k = c->top_k;
    } else if (strcmp(c->kind, "dola") == 0) {
        p.dola_layers = c->dola;
    }
    return p;
}

typedef struct result {
    int32_t ids[MAX_OUTS][MAX_IDS];
    int n[MAX_OUTS];
    bool finished[MAX_OUTS];
} result;

/* Runs cases[which[0..count)] together; returns the peak KV blocks in use. */
static int64_t run_cases(pagoda_model *m, const int *which, int count, result *res) {
    pagoda_request_id ids[MAX_CASES];
    memset(res, 0, sizeof *res * (size_t)count);
    for (int i = 0; i < count; i++) {
        const search_case *c = &cases[which[i]];
        pagoda_sampling_params p = case_params(c);
        pagoda_status st = pagoda_add_request(m, c->prompt, (size_t)c->n_prompt, &p, 0, &ids[i]);
        CHECK_MSG(st == PAGODA_OK, "add %s: %s", c->desc, pagoda_last_error());
    }
    int64_t peak = 0;
    for (int steps = 0; pagoda_has_unfinished(m) && steps < 100000; steps++) {
        const pagoda_output *outs;
        size_t n_outs;
        pagoda_status st = pagoda_step(m, &outs, &n_outs);
        CHECK_MSG(st == PAGODA_OK, "step: %s", pagoda_last_error());
        if (st) break;
        pagoda_engine_stats es;
        pagoda_get_stats(m, &es);
        if (es.kv_blocks_used > peak) peak = es.kv_blocks_used;
        for (size_t o = 0; o < n_outs; o++) {
            int i = 0;
            while (i < count && ids[i] != outs[o].id) i++;
            CHECK_MSG(i < count && outs[o].index >= 0 && outs[o].index < MAX_OUTS, "unexpected output");
            if (i == count || outs[o].index < 0 || outs[o].index >= MAX_OUTS) continue;
            result *r = &res[i];
            int k = outs[o].index;
            CHECK_MSG(!r->finished[k], "%s: output %d after it finished", cases[which[i]].desc, k);
            for (size_t t = 0; t < outs[o].n_tokens && r->n[k] < MAX_IDS; t++) r->ids[k][r->n[k]++] = outs[o].tokens[t];
            if (outs[o].finished) {
                r->finished[k] = true;
                CHECK_MSG(outs[o].finish_reason != PAGODA_FINISH_ERROR, "%s: %s", cases[which[i]].desc,
                          outs[o].error_message ? outs[o].error_message : "error");
            }
        }
    }
    return peak;
}

static void print_ids(const char *what, const int32_t *v, int n) {
    fprintf(stderr, "  %s:", what);
    for (int i = 0; i < n; i++) fprintf(stderr, " %d", v[i]);
    fprintf(stderr, "\n");
}

static bool check_result(const search_case *c, const result *r, const char *how) {
    bool ok = true;
    for (int k = 0; k < c->n_outs; k++) {
        bool same = r->finished[k] && r->n[k] == c->n_out[k] &&
                    memcmp(r->ids[k], c->out[k], sizeof(int32_t) * (size_t)c->n_out[k]) == 0;
        CHECK_MSG(same, "%s %s: output %d differs from HF", how, c->desc, k);
        if (!same) {
            print_ids("want", c->out[k], c->n_out[k]);
            print_ids("got ", r->ids[k], r->n[k]);
        }
        ok &= same;
    }
    for (int k = c->n_outs; k < MAX_OUTS; k++) CHECK_MSG(r->n[k] == 0 && !r->finished[k], "%s: extra output %d", c->desc, k);
    return ok;
}

static void check_bad_params(pagoda_model *m, const int32_t *prompt, int n_prompt) {
    struct {
        const char *name;
        pagoda_sampling_params p;
    } bad[6];
    for (int i = 0; i < 6; i++) bad[i].p = pagoda_sampling_params_default();
    bad[0].name = "num_beams", bad[0].p.num_beams = -1;
    bad[1].name = "n (", bad[1].p.num_beams = 2, bad[1].p.n = 3;
    bad[2].name = "penalty_alpha", bad[2].p.penalty_alpha = 1.5f, bad[2].p.top_k = 4;
    bad[3].name = "dola_layers", bad[3].p.dola_layers = "middle";
    bad[4].name = "dola_layers", bad[4].p.dola_layers = "40,50"; /* no layer below 30 */
    bad[5].name = "num_beams, penalty_alpha and dola_layers", bad[5].p.num_beams = 2, bad[5].p.dola_layers = "low";
    for (int i = 0; i < 6; i++) {
        pagoda_request_id id;
        pagoda_status st = pagoda_add_request(m, prompt, (size_t)n_prompt, &bad[i].p, 0, &id);
        CHECK_MSG(st == PAGODA_ERR_INVALID_ARGUMENT && strstr(pagoda_last_error(), bad[i].name),
                  "bad parameter %s: status %d, message \"%s\"", bad[i].name, st, pagoda_last_error());
    }
}

/* Requests aborted mid-search give every block back and report nothing more. */
static void check_abort(pagoda_model *m, const int32_t *prompt, int n_prompt) {
    pagoda_sampling_params p[3] = {pagoda_sampling_params_default(), pagoda_sampling_params_default(),
                                   pagoda_sampling_params_default()};
    p[0].num_beams = 4;
    p[1].penalty_alpha = 0.6f, p[1].top_k = 4;
    p[2].dola_layers = "low";
    pagoda_request_id id[3];
    for (int i = 0; i < 3; i++) {
        p[i].max_tokens = 30;
        CHECK(pagoda_add_request(m, prompt, (size_t)n_prompt, &p[i], 0, &id[i]) == PAGODA_OK);
    }
    const pagoda_output *outs;
    size_t n_outs;
    for (int s = 0; s < 6; s++) CHECK(pagoda_step(m, &outs, &n_outs) == PAGODA_OK);
    pagoda_engine_stats es;
    pagoda_get_stats(m, &es);
    CHECK_MSG(es.n_running >= 4, "mid-search: %d sequences running (the beams at least)", es.n_running);
    for (int i = 0; i < 3; i++) CHECK(pagoda_abort(m, id[i]) == PAGODA_OK);
    pagoda_get_stats(m, &es);
    CHECK_MSG(es.kv_blocks_used == 0 && es.n_running == 0 && !pagoda_has_unfinished(m),
              "after aborts: %lld blocks used, %d running", (long long)es.kv_blocks_used, es.n_running);
    CHECK(pagoda_step(m, &outs, &n_outs) == PAGODA_OK && n_outs == 0);
}

int main(void) {
    const char *home = getenv("HOME");
    char path[1024];
    const char *env = getenv("PAGODA_MODEL");
    snprintf(path, sizeof path, "%s", env && *env ? env : "");
    if (!path[0]) snprintf(path, sizeof path, "%s/.cache/pagoda/models/SmolLM2-135M-Instruct.Q4_1.gguf", home ? home : "");
    FILE *f = fopen(path, "rb");
    if (!f) test_skip("%s is absent (scripts/fetch_model.sh fetches it)", path);
    fclose(f);
    CHECK_MSG(load_cases("tests/fixtures/search/smollm2_search.txt"), "cannot read the fixtures");
    /* beams ending with <|im_end|> at different lengths: length_penalty and early_stopping decide */
    CHECK_MSG(load_cases("tests/fixtures/search/smollm2_search_eos.txt"), "cannot read the EOS fixtures");
    if (n_cases == 0) return test_finish();

    pagoda_model_params mp = pagoda_model_params_default();
    mp.n_ctx = 256;
    mp.max_seqs = 8;
    mp.kv_type = PAGODA_KV_F32;
    mp.kv_block_size = 8;
    mp.kv_cache_bytes = 64ll << 20;
    pagoda_model *m = NULL;
    pagoda_status st = pagoda_model_load(path, &mp, &m);
    CHECK_MSG(st == PAGODA_OK, "load: %s", pagoda_last_error());
    if (st) return test_finish();
    cpu_backend_set_exact(m->be, true);
    int32_t block_size = mp.kv_block_size;

    static result res[MAX_CASES];
    int beams[MAX_CASES], n_beam = 0, n_failed_greedy = 0;
    const char *only = getenv("PAGODA_SEARCH_KIND"); /* while developing: one kind (greedy, beam, ...) */
    for (int i = 0; i < n_cases; i++) {
        const search_case *c = &cases[i];
        if (only && *only && strcmp(only, c->kind) != 0) continue;
        int64_t peak = run_cases(m, &i, 1, &res[i]);
        bool ok = check_result(c, &res[i], "alone");
        if (strcmp(c->kind, "greedy") == 0) n_failed_greedy += !ok;
        if (strcmp(c->kind, "beam") == 0) {
            beams[n_beam++] = i;
            /* shared prompt blocks + each beam's own blocks (its partial prompt block copied on
             * write plus what it generates); copying caches would need num_beams whole sequences */
            int64_t prompt_blocks = (c->n_prompt + block_size - 1) / block_size;
            int64_t own = 1 + (c->max_tokens + block_size - 1) / block_size;
            int64_t bound = prompt_blocks + 2 * (int64_t)c->num_beams * own; /* x2: old and new beams in a step */
            int64_t copying = (int64_t)c->num_beams * ((c->n_prompt + c->max_tokens + block_size - 1) / block_size);
            CHECK_MSG(peak <= bound && (bound < copying || peak < copying), "%s: peak %lld KV blocks (bound %lld, "
                      "copying caches: %lld)", c->desc, (long long)peak, (long long)bound, (long long)copying);
        }
        pagoda_engine_stats es;
        pagoda_get_stats(m, &es);
        CHECK_MSG(es.kv_blocks_used == 0 && es.n_running == 0 && es.n_waiting == 0,
                  "%s: %lld blocks still used after the request", c->desc, (long long)es.kv_blocks_used);
    }
    CHECK_MSG(n_failed_greedy == 0, "greedy differs from HF in %d cases: the float reference and exact mode disagree",
              n_failed_greedy);

    /* every beam case at once: beams of different requests share steps and wait for slots */
    if (n_beam > 0) {
        static result together[MAX_CASES];
        run_cases(m, beams, n_beam, together);
        for (int i = 0; i < n_beam; i++) check_result(&cases[beams[i]], &together[i], "batched");
        pagoda_engine_stats es;
        pagoda_get_stats(m, &es);
        CHECK_MSG(es.kv_blocks_used == 0, "%lld blocks still used after the batch", (long long)es.kv_blocks_used);
    }
    check_bad_params(m, cases[0].prompt, cases[0].n_prompt);
    check_abort(m, cases[0].prompt, cases[0].n_prompt);
    pagoda_model_free(m);
    return test_finish();
}
