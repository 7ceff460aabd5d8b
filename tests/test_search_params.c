/* tests/test_search_params.c - the search strategies' parameters, no model needed:
 *   - DoLa's candidate layer sets for "low" / "high" / lists, against HF transformers'
 *     _dola_decoding rules written out here as plain loops over (n_layer, tied) shapes;
 *   - the HTTP request fields (server/request.c): num_beams, use_beam_search + best_of,
 *     length_penalty, early_stopping, penalty_alpha, dola_layers, and their errors naming the field.
 */
#include <stdio.h>
#include <string.h>

#include "engine/search.h"  /* defines: dola_parse_layers */
#include "server/request.h" /* defines: server_request_parse */
#include "testlib.h"

/* HF 4.5x: start = 0 untied, else 2 (1 for 2 layers, 0 for 1); low: [start] when start == L/2, else
 * range(start, L/2, 2) for L <= 40, range(start, 20, 2) above; high: range(L/2, L, 2) for L <= 40,
 * range(L-20, L, 2) above. */
static int hf_layers(const char *which, int L, bool tied, int *out) {
    int start = !tied ? 0 : L > 2 ? 2 : L == 2 ? 1 : 0, n = 0;
    if (!strcmp(which, "low")) {
        if (start == L / 2) out[n++] = start;
        else for (int l = start; l < (L <= 40 ? L / 2 : 20); l += 2) out[n++] = l;
    } else {
        for (int l = L <= 40 ? L / 2 : L - 20; l < L; l += 2) out[n++] = l;
    }
    return n;
}

static void check_dola_sets(void) {
    const int shapes[] = {1, 2, 3, 4, 5, 12, 30, 32, 40, 41, 48, 80};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (int tied = 0; tied < 2; tied++)
            for (int w = 0; w < 2; w++) {
                const char *which = w ? "high" : "low";
                model_hparams hp = {.n_layer = shapes[i], .tied_output = tied};
                int want[256], n_want = hf_layers(which, shapes[i], tied, want);
                int32_t got[256], n_got = -1;
                pagoda_status st = dola_parse_layers(which, &hp, got, &n_got);
                if (n_want == 0) { /* e.g. 4 tied layers, "low": range(2, 2) is empty */
                    CHECK_MSG(st == PAGODA_ERR_INVALID_ARGUMENT, "%s, %d layers, tied %d: empty set accepted", which,
                              shapes[i], tied);
                    continue;
                }
                bool same = st == PAGODA_OK && n_got == n_want;
                for (int k = 0; same && k < n_want; k++) same = got[k] == want[k];
                CHECK_MSG(same, "%s, %d layers, tied %d: layer set differs from HF's", which, shapes[i], tied);
            }
    model_hparams hp = {.n_layer = 30, .tied_output = true};
    int32_t got[256], n = 0;
    CHECK(dola_parse_layers("4,12,40,20", &hp, got, &n) == PAGODA_OK && n == 3 && got[0] == 4 && got[1] == 12 &&
          got[2] == 20); /* layers >= 30 dropped, as HF does */
    CHECK(dola_parse_layers("4,,5", &hp, got, &n) == PAGODA_ERR_INVALID_ARGUMENT);
    CHECK(dola_parse_layers("-1", &hp, got, &n) == PAGODA_ERR_INVALID_ARGUMENT);
    CHECK(dola_parse_layers("mid", &hp, got, &n) == PAGODA_ERR_INVALID_ARGUMENT && strstr(pagoda_last_error(), "dola_layers"));
    CHECK(dola_parse_layers("31,30", &hp, got, &n) == PAGODA_ERR_INVALID_ARGUMENT);
}

static void check_request(const char *body, bool ok, const char *param, int beams, float lp, bool es, float alpha,
                          const char *dola) {
    server_request r;
    server_error e;
    bool parsed = server_request_parse(SERVER_REQ_COMPLETION, body, strlen(body), &r, &e);
    CHECK_MSG(parsed == ok, "%s: parsed %d (%s)", body, parsed, parsed ? "" : e.message);
    if (!parsed) {
        CHECK_MSG(!ok && e.http_status == 400 && !strcmp(e.param, param), "%s: param '%s' (%s)", body, e.param, e.message);
        return;
    }
    const pagoda_sampling_params *p = &r.sampling;
    CHECK_MSG(p->num_beams == beams || (beams == 1 && p->num_beams <= 1), "%s: num_beams %d", body, p->num_beams);
    CHECK_MSG(p->length_penalty == lp && p->early_stopping == es && p->penalty_alpha == alpha, "%s: values", body);
    CHECK_MSG(dola ? p->dola_layers && !strcmp(p->dola_layers, dola) : !p->dola_layers, "%s: dola_layers '%s'", body,
              p->dola_layers ? p->dola_layers : "(null)");
    server_request_free(&r);
}

int main(void) {
    check_dola_sets();
    check_request("{\"prompt\": \"x\"}", true, "", 1, 1, false, 0, NULL);
    check_request("{\"prompt\": \"x\", \"num_beams\": 4, \"n\": 2, \"length_penalty\": 0.5, \"early_stopping\": true}",
                  true, "", 4, 0.5f, true, 0, NULL);
    check_request("{\"prompt\": \"x\", \"use_beam_search\": true, \"best_of\": 3, \"n\": 2}", true, "", 3, 1, false, 0, NULL);
    check_request("{\"prompt\": \"x\", \"use_beam_search\": true, \"n\": 2}", true, "", 2, 1, false, 0, NULL);
    check_request("{\"prompt\": \"x\", \"penalty_alpha\": 0.6, \"top_k\": 4}", true, "", 1, 1, false, 0.6f, NULL);
    check_request("{\"prompt\": \"x\", \"dola_layers\": \"high\"}", true, "", 1, 1, false, 0, "high");
    check_request("{\"prompt\": \"x\", \"dola_layers\": [4, 12, 20]}", true, "", 1, 1, false, 0, "4,12,20");
    check_request("{\"prompt\": \"x\", \"num_beams\": 0}", false, "num_beams", 0, 0, false, 0, NULL);
    check_request("{\"prompt\": \"x\", \"num_beams\": 2, \"n\": 3}", false, "n", 0, 0, false, 0, NULL);
    check_request("{\"prompt\": \"x\", \"length_penalty\": \"1\"}", false, "length_penalty", 0, 0, false, 0, NULL);
    check_request("{\"prompt\": \"x\", \"early_stopping\": 1}", false, "early_stopping", 0, 0, false, 0, NULL);
    check_request("{\"prompt\": \"x\", \"penalty_alpha\": 1.5, \"top_k\": 4}", false, "penalty_alpha", 0, 0, false, 0, NULL);
    check_request("{\"prompt\": \"x\", \"penalty_alpha\": 0.5}", false, "penalty_alpha", 0, 0, false, 0, NULL);
    check_request("{\"prompt\": \"x\", \"dola_layers\": \"middle\"}", false, "dola_layers", 0, 0, false, 0, NULL);
    check_request("{\"prompt\": \"x\", \"dola_layers\": [1, -2]}", false, "dola_layers", 0, 0, false, 0, NULL);
    check_request("{\"prompt\": \"x\", \"best_of\": 2}", false, "best_of", 0, 0, false, 0, NULL);
    return test_finish();
}
