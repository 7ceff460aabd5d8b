/* engine/engine_sample.c - the engine's side of the sampler chain (see engine_sample.h). */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"             /* defines: error_set */
#include "engine/engine_internal.h" /* defines: engine_seq, engine_request */

pagoda_status engine_sampling_check(const pagoda_sampling_params *p, int32_t n_vocab) {
    sampler_params sp = {.temperature = p->temperature, .top_k = p->top_k, .top_p = p->top_p, .min_p = p->min_p,
                         .typical_p = p->typical_p, .repetition_penalty = p->repetition_penalty,
                         .presence_penalty = p->presence_penalty, .frequency_penalty = p->frequency_penalty,
                         .logit_bias = p->logit_bias, .n_logit_bias = p->n_logit_bias, .logprobs = p->logprobs,
                         .top_logprobs = p->top_logprobs};
    pagoda_status st = sampler_params_check_vocab(&sp, n_vocab);
    if (st) return st;
    if (p->n_stop > ENGINE_MAX_STOP)
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "stop: %zu strings, at most %d", p->n_stop, ENGINE_MAX_STOP);
    if (p->n_stop && !p->stop) return error_set(PAGODA_ERR_INVALID_ARGUMENT, "stop is NULL but n_stop is %zu", p->n_stop);
    for (size_t i = 0; i < p->n_stop; i++)
        if (!p->stop[i] || !p->stop[i][0])
            return error_set(PAGODA_ERR_INVALID_ARGUMENT, "stop string %zu is empty", i);
    if (p->n_stop_token_ids > ENGINE_MAX_STOP_TOKEN_IDS)
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "stop_token_ids: %zu ids, at most %d", p->n_stop_token_ids,
                         ENGINE_MAX_STOP_TOKEN_IDS);
    if (p->n_stop_token_ids && !p->stop_token_ids)
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "stop_token_ids is NULL but n_stop_token_ids is %zu",
                         p->n_stop_token_ids);
    for (size_t i = 0; i < p->n_stop_token_ids; i++)
        if (p->stop_token_ids[i] < 0 || p->stop_token_ids[i] >= n_vocab)
            return error_set(PAGODA_ERR_INVALID_ARGUMENT, "stop_token_ids: token %d is out of range (vocabulary of %d)",
                             p->stop_token_ids[i], n_vocab);
    return PAGODA_OK;
}

pagoda_status engine_request_copy_params(engine_request *req, const pagoda_sampling_params *p) {
    pagoda_sampling_params *own = &req->params;
    own->logit_bias = NULL;
    own->stop_token_ids = NULL;
    own->stop = NULL;
    own->n_logit_bias = own->n_stop_token_ids = own->n_stop = 0;
    bool ok = true;
    if (p->n_logit_bias && (ok = (req->own_logit_bias = malloc(p->n_logit_bias * sizeof *p->logit_bias)) != NULL)) {
        memcpy(req->own_logit_bias, p->logit_bias, p->n_logit_bias * sizeof *p->logit_bias);
        own->logit_bias = req->own_logit_bias;
        own->n_logit_bias = p->n_logit_bias;
    }
    if (ok && p->n_stop_token_ids &&
        (ok = (req->own_stop_token_ids = malloc(p->n_stop_token_ids * sizeof(int32_t))) != NULL)) {
        memcpy(req->own_stop_token_ids, p->stop_token_ids, p->n_stop_token_ids * sizeof(int32_t));
        own->stop_token_ids = req->own_stop_token_ids;
        own->n_stop_token_ids = p->n_stop_token_ids;
    }
    if (ok && p->n_stop && (ok = (req->own_stop = calloc(p->n_stop, sizeof(char *))) != NULL)) {
        for (size_t i = 0; ok && i < p->n_stop; i++) {
            ok = (req->own_stop[i] = strdup(p->stop[i])) != NULL;
            if (ok) own->n_stop = i + 1;
        }
        own->stop = (const char *const *)req->own_stop;
    }
    return ok ? PAGODA_OK : error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory for the request's sampling parameters");
}

void engine_request_free_params(engine_request *req) {
    for (size_t i = 0; req->own_stop && i < req->params.n_stop; i++) free(req->own_stop[i]);
    free(req->own_stop);
    free(req->own_stop_token_ids);
    free(req->own_logit_bias);
    req->own_stop = NULL;
    req->own_stop_token_ids = NULL;
    req->own_logit_bias = NULL;
}

pagoda_status engine_seq_sampling_init(engine_seq *seq, int32_t n_vocab, uint64_t seed, const int32_t *prompt,
                                       int32_t n_prompt) {
    const pagoda_sampling_params *p = &seq->req->params;
    sampler_params sp = {.temperature = p->temperature, .top_k = p->top_k, .top_p = p->top_p, .min_p = p->min_p,
                         .seed = seed, .typical_p = p->typical_p, .repetition_penalty = p->repetition_penalty,
                         .presence_penalty = p->presence_penalty, .frequency_penalty = p->frequency_penalty,
                         .logit_bias = p->logit_bias, .n_logit_bias = p->n_logit_bias, .logprobs = p->logprobs,
                         .top_logprobs = p->top_logprobs};
    pagoda_status st = sampler_init(&sp, n_vocab, &seq->smp);
    if (st) return st;
    sampler_accept_prompt(seq->smp, prompt, n_prompt);
    stop_text_init(&seq->stop, seq->req->own_stop, p->n_stop);
    if (p->logprobs || p->top_logprobs > 0) {
        int32_t slots = ENGINE_STEP_SLOTS(seq), n_top = p->top_logprobs > 0 ? p->top_logprobs : 1;
        seq->step_logprobs = calloc((size_t)slots, sizeof *seq->step_logprobs);
        seq->step_top = calloc((size_t)slots * (size_t)n_top, sizeof *seq->step_top);
        if (!seq->step_logprobs || !seq->step_top)
            return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory for the logprobs");
    }
    return PAGODA_OK;
}

void engine_seq_sampling_free(engine_seq *seq) {
    sampler_free(seq->smp);
    seq->smp = NULL;
    stop_text_free(&seq->stop);
    free(seq->step_logprobs);
    free(seq->step_top);
    seq->step_logprobs = NULL;
    seq->step_top = NULL;
}

bool engine_is_stop_token(const engine_request *req, int32_t token) {
    for (size_t i = 0; i < req->params.n_stop_token_ids; i++)
        if (req->params.stop_token_ids[i] == token) return true;
    return false;
}

void engine_seq_accept_token(engine_seq *seq, int32_t token, int32_t slot) {
    sampler_accept(seq->smp, token);
    const pagoda_token_logprob *lp = sampler_last_logprob(seq->smp);
    if (!lp || !seq->step_logprobs || slot < 0 || slot >= ENGINE_STEP_SLOTS(seq)) return;
    int32_t n_top = seq->req->params.top_logprobs;
    pagoda_top_logprob *top = seq->step_top + (size_t)slot * (size_t)(n_top > 0 ? n_top : 1);
    memcpy(top, lp->top, (size_t)lp->n_top * sizeof *top);
    seq->step_logprobs[slot] = (pagoda_token_logprob){.token = lp->token, .logprob = lp->logprob, .top = top,
                                                      .n_top = lp->n_top};
}

bool engine_seq_stop_feed(engine_seq *seq, const char *text, size_t len, const char **out, size_t *n_out) {
    bool ok = stop_text_feed(&seq->stop, text, len);
    *out = seq->stop.out ? seq->stop.out : "";
    *n_out = seq->stop.n_out;
    return ok;
}

bool engine_seq_stop_flush(engine_seq *seq, const char **out, size_t *n_out) {
    bool ok = stop_text_flush(&seq->stop);
    *out = seq->stop.out ? seq->stop.out : "";
    *n_out = seq->stop.n_out;
    return ok;
}

bool engine_seq_stopped(const engine_seq *seq) { return seq->stop.matched; }
