/* engine/search.c - what the three search strategies share: choosing and checking a strategy, the
 * engine hooks that route a step's results to beam.c / contrastive.c / dola.c, and the sequence
 * helpers they use (fork with an appended token, emit a token, retire a sequence). See search.h.
 */
#include "engine/search.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h" /* defines: error_set */

search_kind search_kind_of(const pagoda_sampling_params *p) {
    if (p->num_beams > 1) return SEARCH_BEAM;
    if (p->penalty_alpha > 0 && p->top_k > 1) return SEARCH_CONTRASTIVE;
    if (p->dola_layers && p->dola_layers[0]) return SEARCH_DOLA;
    return SEARCH_NONE;
}

pagoda_status search_check(const pagoda_model *pm, const pagoda_sampling_params *p) {
    int32_t max_seqs = pm->params.max_seqs;
    if (p->num_beams < 0) return error_set(PAGODA_ERR_INVALID_ARGUMENT, "num_beams must be >= 1 (got %d)", p->num_beams);
    if (!isfinite(p->length_penalty))
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "length_penalty must be a finite number");
    if (!(p->penalty_alpha >= 0 && p->penalty_alpha <= 1))
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "penalty_alpha must be in [0, 1] (got %g)", (double)p->penalty_alpha);
    int n_on = (p->num_beams > 1) + (p->penalty_alpha > 0) + (p->dola_layers && p->dola_layers[0]);
    if (n_on > 1)
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "num_beams, penalty_alpha and dola_layers are separate "
                         "strategies: choose one");
    if (search_kind_of(p) != SEARCH_NONE && (p->logprobs || p->top_logprobs > 0))
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "logprobs are not reported with num_beams, penalty_alpha or "
                         "dola_layers (search strategies)");
    switch (search_kind_of(p)) {
    case SEARCH_BEAM:
        if (p->n_stop || p->n_stop_token_ids)
            return error_set(PAGODA_ERR_INVALID_ARGUMENT, "stop strings and stop_token_ids are not supported with "
                             "num_beams (beam search) yet");
        if (p->num_beams > max_seqs)
            return error_set(PAGODA_ERR_INVALID_ARGUMENT, "num_beams (%d) must not exceed the engine's max_seqs (%d)",
                             p->num_beams, max_seqs);
        if (p->n > p->num_beams)
            return error_set(PAGODA_ERR_INVALID_ARGUMENT, "n (%d) must not exceed num_beams (%d): beam search "
                             "returns the n best beams", p->n, p->num_beams);
        return PAGODA_OK;
    case SEARCH_CONTRASTIVE:
        if (p->top_k + 1 > max_seqs)
            return error_set(PAGODA_ERR_INVALID_ARGUMENT, "contrastive search: top_k + 1 (%d) must not exceed the "
                             "engine's max_seqs (%d)", p->top_k + 1, max_seqs);
        if (p->n > 1) return error_set(PAGODA_ERR_INVALID_ARGUMENT, "contrastive search returns one sequence (n = 1)");
        return PAGODA_OK;
    case SEARCH_DOLA: {
        if (p->n > 1) return error_set(PAGODA_ERR_INVALID_ARGUMENT, "DoLa returns one sequence (n = 1)");
        int32_t layers[256], n_layers;
        return dola_parse_layers(p->dola_layers, &pm->weights->hp, layers, &n_layers);
    }
    case SEARCH_NONE:
        if (p->penalty_alpha > 0)
            return error_set(PAGODA_ERR_INVALID_ARGUMENT, "penalty_alpha (contrastive search) needs top_k >= 2");
        return PAGODA_OK;
    }
    return PAGODA_OK;
}

int32_t search_n_seqs(const pagoda_sampling_params *p) {
    switch (search_kind_of(p)) {
    case SEARCH_BEAM: return p->num_beams;
    case SEARCH_CONTRASTIVE: return 1 + p->top_k;
    default: return 1;
    }
}

pagoda_status search_init(pagoda_model *pm, engine_request *req) {
    search_state *s = calloc(1, sizeof *s);
    if (!s) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory for the search state");
    req->search = s;
    s->kind = search_kind_of(&req->params);
    for (int32_t i = 1; i < req->n_samples; i++) /* beams / candidates, scheduled when forked */
        if (!engine_seq_new(pm, req, i, req->seqs[0]->s.tokens, req->seqs[0]->s.n_tokens))
            return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory for the search's sequences");
    pagoda_status st = PAGODA_OK;
    switch (s->kind) {
    case SEARCH_BEAM: st = beam_init(pm, req, &s->beam); break;
    case SEARCH_CONTRASTIVE: st = contrastive_init(pm, req, &s->contrastive); break;
    case SEARCH_DOLA: st = dola_init(pm, req, &s->dola); break;
    case SEARCH_NONE: break;
    }
    req->params.dola_layers = NULL; /* the caller's string is not kept (dola_init parsed it) */
    return st;
}

void search_free(search_state *s) {
    if (!s) return;
    beam_free(s->beam);
    contrastive_free(s->contrastive);
    dola_free(s->dola);
    free(s);
}

/* ---- engine hooks ------------------------------------------------------------------------------------ */
void search_prepare_run(const engine_seq *seq, runner_seq *run) {
    switch (seq->req->search->kind) {
    case SEARCH_CONTRASTIVE: run->wants_hidden = true; break;
    case SEARCH_DOLA: run->wants_layers = true; break;
    default: break;
    }
}

void search_on_step(pagoda_model *pm, const sched_item *items, const runner_seq *run, int32_t n_items,
                    const float *logits, const float *hidden, const float *layers) {
    const model_hparams *hp = &pm->weights->hp;
    int32_t row = 0, hidden_row = 0;
    for (int32_t i = 0; i < n_items; i++) {
        engine_seq *seq = items[i].seq->user;
        const float *row_logits = run[i].wants_logits ? logits + (size_t)row * (size_t)hp->n_vocab : NULL;
        const float *row_layers = run[i].wants_logits && layers ? layers + (size_t)row * hp->n_layer * hp->n_embd : NULL;
        const float *rows_hidden = run[i].wants_hidden && hidden ? hidden + (size_t)hidden_row * hp->n_embd : NULL;
        row += run[i].n_logits > 0 ? run[i].n_logits : run[i].wants_logits; /* speculative rows too */
        hidden_row += run[i].wants_hidden ? run[i].n_new : 0;
        search_state *s = seq->req->search;
        if (!s || seq->finished) continue;
        switch (s->kind) {
        case SEARCH_BEAM:
            if (row_logits) beam_on_logits(pm, seq, row_logits);
            break;
        case SEARCH_CONTRASTIVE:
            contrastive_on_result(pm, seq, row_logits, rows_hidden, run[i].n_computed, rows_hidden ? run[i].n_new : 0);
            break;
        case SEARCH_DOLA:
            if (row_logits && row_layers) dola_on_logits(pm, seq, row_logits, row_layers);
            break;
        case SEARCH_NONE: break;
        }
    }
}

/* A request one of whose sequences failed: the others finish too (the first with the error). */
static void fail_rest(pagoda_model *pm, engine_request *req) {
    for (int32_t i = 0; i < req->n_seqs; i++) {
        engine_seq *seq = req->seqs[i];
        if (seq->finished) continue;
        if (seq->index < (req->params.n > 0 ? req->params.n : 1)) engine_finish(pm, seq, PAGODA_FINISH_ERROR);
        else search_retire_seq(pm, seq);
    }
}

void search_advance_all(pagoda_model *pm) {
    for (int32_t i = 0; i < pm->n_requests; i++) {
        engine_request *req = pm->requests[i];
        if (!req->search || req->n_live == 0) continue;
        if (req->error) {
            fail_rest(pm, req);
            continue;
        }
        switch (req->search->kind) {
        case SEARCH_BEAM: beam_advance(pm, req); break;
        case SEARCH_CONTRASTIVE: contrastive_advance(pm, req); break;
        default: break;
        }
    }
}

/* ---- helpers ----------------------------------------------------------------------------------------- */
bool search_emit_token(pagoda_model *pm, engine_seq *seq, int32_t token) {
    engine_touch(pm, seq);
    if ((!seq->req->params.ignore_eos && vocab_is_eog(pm->vocab, token)) || engine_is_stop_token(seq->req, token)) {
        engine_finish(pm, seq, PAGODA_FINISH_STOP);
        return false;
    }
    seq->s.tokens[seq->s.n_tokens++] = token;
    seq->n_generated++;
    pm->stats.generated_tokens++;
    seq->step_tokens[seq->n_step_tokens++] = token;
    if (text_stream_push(&seq->text, pm->vocab, token)) engine_release_text(seq, seq->text.out, seq->text.n_out);
    if (engine_seq_stopped(seq) || seq->s.n_tokens >= seq->max_total) {
        engine_finish(pm, seq, engine_seq_stopped(seq) ? PAGODA_FINISH_STOP : PAGODA_FINISH_LENGTH);
        return false;
    }
    return true;
}

void search_retire_seq(pagoda_model *pm, engine_seq *seq) {
    if (seq->finished) return;
    if (seq->s.state != SCHED_SEQ_FINISHED) sched_remove(pm->sched, &seq->s);
    seq->finished = true;
    seq->finish_reason = PAGODA_FINISH_STOP;
    seq->req->n_live--;
}

pagoda_status search_fork(pagoda_model *pm, engine_seq *parent, engine_seq *child, int32_t token) {
    memcpy(child->s.tokens, parent->s.tokens, sizeof(int32_t) * (size_t)parent->s.n_tokens);
    child->s.n_tokens = parent->s.n_tokens;
    pagoda_status st = sched_fork(pm->sched, &parent->s, &child->s);
    if (st) return st;
    if (token >= 0) child->s.tokens[child->s.n_tokens++] = token;
    return PAGODA_OK;
}

bool search_seq_computed(const engine_seq *seq) {
    return seq->s.state == SCHED_SEQ_RUNNING && seq->s.n_computed == seq->s.n_tokens;
}

int32_t search_room(const pagoda_model *pm, const engine_seq *seq) {
    return pm->params.max_seqs - sched_n_slots_used(pm->sched) +
           (seq->s.state == SCHED_SEQ_RUNNING ? seq->s.reserve_slots : 0);
}

void search_log_softmax(const float *logits, int32_t n, float *out) {
    float max = logits[0];
    for (int32_t i = 1; i < n; i++)
        if (logits[i] > max) max = logits[i];
    double sum = 0;
    for (int32_t i = 0; i < n; i++) sum += exp((double)(logits[i] - max));
    float lse = max + (float)log(sum);
    for (int32_t i = 0; i < n; i++) out[i] = logits[i] - lse;
}
