/* engine/search.h - the search strategies of the engine: beam search (beam.c), contrastive search
 * (contrastive.c) and DoLa (dola.c), each as HF transformers defines it (greedy-based; temperature is
 * ignored while one is on).
 *
 * They run inside the batched paged engine: every beam or candidate is an engine_seq of its request
 * (req->seqs[i], a sched_seq in the continuous batch); beams and candidates fork block tables
 * (sched_fork: ref counts, copy-on-write of the partial last block) and free them (sched_remove),
 * never copying caches. engine.c calls four hooks per step:
 *
 *   search_prepare_run   which outputs a sequence's row needs (final hidden states, layer states)
 *   search_on_step       after the forward: stores each search sequence's logits / hidden states
 *   search_advance_all   moves every search request on as far as its stored results allow: forks
 *                        candidates, picks beams / winners, emits tokens, finishes the request
 *
 * A strategy step that needs more running sequences than max_seqs allows waits (its results stay
 * stored) until others finish, so the runner never gets more than max_seqs sequences.
 */
#ifndef PAGODA_ENGINE_SEARCH_H
#define PAGODA_ENGINE_SEARCH_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/engine_internal.h" /* defines: pagoda_model, engine_request, engine_seq */

typedef enum search_kind { SEARCH_NONE = 0, SEARCH_BEAM, SEARCH_CONTRASTIVE, SEARCH_DOLA } search_kind;

typedef struct beam_state beam_state;
typedef struct contrastive_state contrastive_state;
typedef struct dola_state dola_state;

typedef struct search_state {
    search_kind kind;
    beam_state *beam;
    contrastive_state *contrastive;
    dola_state *dola;
} search_state;

/* The strategy the parameters ask for (SEARCH_NONE: plain sampling). */
search_kind search_kind_of(const pagoda_sampling_params *p);
/* Checks the strategy's parameters against the model; the message names the parameter.
 * Errors: PAGODA_ERR_INVALID_ARGUMENT. */
pagoda_status search_check(const pagoda_model *pm, const pagoda_sampling_params *p);
/* Engine sequences the request needs (req->seqs capacity): beams, or 1 + top_k, or 1. */
int32_t search_n_seqs(const pagoda_sampling_params *p);
/* Sets up req->search for a request whose req->seqs[0] (the prompt) exists and is not yet added
 * to the scheduler; creates the request's other sequences. Errors: PAGODA_ERR_OUT_OF_MEMORY. */
pagoda_status search_init(pagoda_model *pm, engine_request *req);
void search_free(search_state *s);

void search_prepare_run(const engine_seq *seq, runner_seq *run);
/* items/run: this step's scheduled sequences and their runner descriptions; logits, hidden, layers:
 * the runner's outputs (hidden and layers may be NULL). Call after sched_update_computed. */
void search_on_step(pagoda_model *pm, const sched_item *items, const runner_seq *run, int32_t n_items,
                    const float *logits, const float *hidden, const float *layers);
void search_advance_all(pagoda_model *pm);

/* ---- shared by beam.c, contrastive.c, dola.c (search.c) ----------------------------------------- */
/* Appends token to an output sequence: streams it (text), applies end-of-generation and length
 * limits; false when the sequence finished. */
bool search_emit_token(pagoda_model *pm, engine_seq *seq, int32_t token);
/* Removes a sequence of a finished request that reports nothing (a beam or candidate). */
void search_retire_seq(pagoda_model *pm, engine_seq *seq);
/* Makes empty `child` a running copy of running `parent` (tokens and shared blocks), plus `token`
 * appended when token >= 0. Errors: PAGODA_ERR_OUT_OF_MEMORY. */
pagoda_status search_fork(pagoda_model *pm, engine_seq *parent, engine_seq *child, int32_t token);
/* Whether `seq` is running with every token computed (its results are current). */
bool search_seq_computed(const engine_seq *seq);
/* Sequences `seq` may fork without the running ones exceeding max_seqs: the free slots plus the
 * slots seq reserved (sched_seq.reserve_slots, counted at admission so that forks find room). */
int32_t search_room(const pagoda_model *pm, const engine_seq *seq);
/* log-softmax of a logits row into out (n_vocab), as torch does it in float32. */
void search_log_softmax(const float *logits, int32_t n, float *out);

/* per strategy (beam.c, contrastive.c, dola.c) */
pagoda_status beam_init(pagoda_model *pm, engine_request *req, beam_state **out);
void beam_free(beam_state *b);
void beam_on_logits(pagoda_model *pm, engine_seq *seq, const float *logits);
void beam_advance(pagoda_model *pm, engine_request *req);

pagoda_status contrastive_init(pagoda_model *pm, engine_request *req, contrastive_state **out);
void contrastive_free(contrastive_state *c);
void contrastive_on_result(pagoda_model *pm, engine_seq *seq, const float *logits, const float *hidden,
                           int32_t first_pos, int32_t n_rows);
void contrastive_advance(pagoda_model *pm, engine_request *req);

pagoda_status dola_parse_layers(const char *spec, const model_hparams *hp, int32_t *layers, int32_t *n_layers);
pagoda_status dola_init(pagoda_model *pm, engine_request *req, dola_state **out);
void dola_free(dola_state *d);
void dola_on_logits(pagoda_model *pm, engine_seq *seq, const float *logits, const float *layers);

#endif
