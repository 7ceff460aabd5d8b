/* engine/dola.c - DoLa, decoding by contrasting layers, as HF transformers defines it
 * (generate(dola_layers=...), _dola_decoding, _dola_select_contrast and _relative_top_filter of
 * transformers 4.5x), greedy.
 *
 * Candidate premature layers (L = n_layer; start = 2 when the output projection is tied to the
 * embedding, else 0):  "low": start, start+2, .. < L/2 (start alone when start == L/2; for L > 40,
 * start .. < 20);  "high": L/2, L/2+2, .. < L (for L > 40, L-20 .. < L);  a list: its layers < L.
 * Each token, from the runner's residual stream entering layer l (HF hidden_states[l], no norm):
 *   premature_l = lm_head(h_l)                              (no final norm, as HF)
 *   with several candidates: the one maximising the Jensen-Shannon divergence
 *      JS = 0.5 (mean_v m (log m - log p_final) + mean_v m (log m - log p_l)), m = (p_final + p_l) / 2
 *   relative top: keep tokens with log p_final >= max log p_final + log 0.1;
 *   next token = argmax over kept tokens of log_softmax(final) - log_softmax(premature).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h" /* defines: error_set */
#include "engine/search.h"

enum { DOLA_MAX_LAYERS = 256 };

struct dola_state {
    int32_t layers[DOLA_MAX_LAYERS]; /* candidate premature layers */
    int32_t n_layers;
    float *x;        /* [n_layers][n_embd] their hidden states this step */
    float *premature; /* [n_layers][n_vocab] their early-exit logits */
    float *lf;       /* [n_vocab] log_softmax of the final logits */
    float *lb;       /* [n_vocab] log_softmax of a premature layer's logits */
    float *pf;       /* [n_vocab] softmax of the final logits */
};

pagoda_status dola_parse_layers(const char *spec, const model_hparams *hp, int32_t *layers, int32_t *n_layers) {
    int32_t final = hp->n_layer, start = !hp->tied_output ? 0 : final > 2 ? 2 : final == 2 ? 1 : 0, n = 0;
    *n_layers = 0;
    if (strcmp(spec, "low") == 0) {
        if (start == final / 2) layers[n++] = start;
        else
            for (int32_t l = start; l < (final <= 40 ? final / 2 : 20); l += 2) layers[n++] = l;
    } else if (strcmp(spec, "high") == 0) {
        for (int32_t l = final <= 40 ? final / 2 : final - 20; l < final; l += 2) layers[n++] = l;
    } else {
        const char *p = spec;
        while (*p) {
            char *end;
            long v = strtol(p, &end, 10);
            if (end == p || v < 0 || v > 100000 || (*end && *end != ','))
                return error_set(PAGODA_ERR_INVALID_ARGUMENT, "dola_layers must be \"low\", \"high\" or a comma "
                                 "list of layer indices >= 0 (got \"%s\")", spec);
            if (n == DOLA_MAX_LAYERS)
                return error_set(PAGODA_ERR_INVALID_ARGUMENT, "dola_layers lists more than %d layers", DOLA_MAX_LAYERS);
            if (v < final) layers[n++] = (int32_t)v; /* HF drops layers >= the final one */
            p = *end ? end + 1 : end;
        }
    }
    if (n == 0)
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "dola_layers \"%s\" leaves no premature layer below the "
                         "model's %d", spec, final);
    *n_layers = n;
    return PAGODA_OK;
}

pagoda_status dola_init(pagoda_model *pm, engine_request *req, dola_state **out) {
    *out = NULL;
    const model_hparams *hp = &pm->weights->hp;
    dola_state *d = calloc(1, sizeof *d);
    if (!d) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory for DoLa");
    *out = d;
    pagoda_status st = dola_parse_layers(req->params.dola_layers, hp, d->layers, &d->n_layers);
    if (st) return st;
    d->x = malloc(sizeof(float) * (size_t)d->n_layers * (size_t)hp->n_embd);
    d->premature = malloc(sizeof(float) * (size_t)d->n_layers * (size_t)hp->n_vocab);
    d->lf = malloc(sizeof(float) * (size_t)hp->n_vocab);
    d->lb = malloc(sizeof(float) * (size_t)hp->n_vocab);
    d->pf = malloc(sizeof(float) * (size_t)hp->n_vocab);
    if (!d->x || !d->premature || !d->lf || !d->lb || !d->pf) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory for DoLa");
    return PAGODA_OK;
}

void dola_free(dola_state *d) {
    if (!d) return;
    free(d->x);
    free(d->premature);
    free(d->lf);
    free(d->lb);
    free(d->pf);
    free(d);
}

/* Jensen-Shannon divergence between two distributions given as probabilities pa and log-probabilities
 * la, lb (mean over v), in float32 as torch computes it, summed in double. */
static double js_divergence(const float *pa, const float *la, const float *lb, int32_t n) {
    double kl1 = 0, kl2 = 0;
    for (int32_t v = 0; v < n; v++) {
        float m = 0.5f * (pa[v] + expf(lb[v]));
        if (m <= 0) continue;
        float lm = logf(m);
        kl1 += m * (lm - la[v]);
        kl2 += m * (lm - lb[v]);
    }
    return 0.5 * (kl1 / n + kl2 / n);
}

void dola_on_logits(pagoda_model *pm, engine_seq *seq, const float *logits, const float *layers) {
    dola_state *d = seq->req->search->dola;
    const model_hparams *hp = &pm->weights->hp;
    int32_t n_vocab = hp->n_vocab;
    for (int32_t j = 0; j < d->n_layers; j++)
        memcpy(d->x + (size_t)j * (size_t)hp->n_embd, layers + (size_t)d->layers[j] * (size_t)hp->n_embd,
               sizeof(float) * (size_t)hp->n_embd);
    model_lm_head(pm->weights, pm->be, d->x, d->n_layers, d->premature);
    search_log_softmax(logits, n_vocab, d->lf);
    int32_t chosen = 0;
    if (d->n_layers > 1) { /* the premature layer most unlike the final one */
        double best = -INFINITY;
        for (int32_t v = 0; v < n_vocab; v++) d->pf[v] = expf(d->lf[v]);
        for (int32_t j = 0; j < d->n_layers; j++) {
            search_log_softmax(d->premature + (size_t)j * (size_t)n_vocab, n_vocab, d->lb);
            double js = js_divergence(d->pf, d->lf, d->lb, n_vocab);
            if (js > best) {
                best = js;
                chosen = j;
            }
        }
    }
    search_log_softmax(d->premature + (size_t)chosen * (size_t)n_vocab, n_vocab, d->lb);
    float max = d->lf[0];
    for (int32_t v = 1; v < n_vocab; v++)
        if (d->lf[v] > max) max = d->lf[v];
    float thresh = max + (float)log(0.1); /* relative top (APC) filter, alpha 0.1 */
    int32_t token = -1;
    float best = 0;
    for (int32_t v = 0; v < n_vocab; v++) {
        if (d->lf[v] < thresh) continue;
        float score = d->lf[v] - d->lb[v];
        if (token < 0 || score > best) {
            token = v;
            best = score;
        }
    }
    search_emit_token(pm, seq, token);
}
