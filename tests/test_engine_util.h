/* tests/test_engine_util.h - shared by the engine tests: load a model, and step an engine until every
 * request has finished, collecting each request's generated token ids (sample 0 of each).
 * Header-only. */
#ifndef PAGODA_TEST_ENGINE_UTIL_H
#define PAGODA_TEST_ENGINE_UTIL_H

#include "pagoda.h"
#include "testlib.h"

/* Loads a model, recording a failed check (with the loader's message) when it cannot. */
static inline pagoda_model *test_engine_load(const char *path, const pagoda_model_params *p) {
    pagoda_model *m = NULL;
    CHECK_MSG(pagoda_model_load(path, p, &m) == PAGODA_OK, "load: %s", pagoda_last_error());
    return m;
}

/* Steps m until nothing is left; out[i][0 .. n_out[i]) gets the tokens of request rid[i] (at most
 * cap each; n_out[i] must start at 0). */
static inline void test_engine_collect(pagoda_model *m, const pagoda_request_id *rid, int n, int32_t *const *out,
                                       int *n_out, int cap) {
    for (int guard = 0; pagoda_has_unfinished(m) && guard < 100000; guard++) {
        const pagoda_output *outs;
        size_t n_outs;
        CHECK(pagoda_step(m, &outs, &n_outs) == PAGODA_OK);
        for (size_t o = 0; o < n_outs; o++)
            for (int i = 0; i < n; i++)
                if (outs[o].id == rid[i] && outs[o].index == 0)
                    for (size_t t = 0; t < outs[o].n_tokens && n_out[i] < cap; t++)
                        out[i][n_out[i]++] = outs[o].tokens[t];
    }
}

#endif
