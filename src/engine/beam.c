/* engine/beam.c - beam search as HF transformers' generate(num_beams=B, do_sample=False) defines it
 * (the vectorised _beam_search of transformers 4.5x), on the paged cache.
 *
 * The request's B engine sequences are the running beams (slot b = req->seqs[b]); at first only
 * slot 0, the prompt, runs. When every running beam has its logits (one batched forward):
 *   1. candidates: each beam's log_softmax(logits) + its summed score, the best B + BEAM_EXTRA per
 *      beam (enough: the first B non-finishing candidates of the merged order are among them);
 *   2. in merged order (best first), a candidate "finishes" if its token ends generation or the
 *      length limit is reached; finishing candidates among the first B become hypotheses scored
 *      sum / generated^length_penalty (generated counts the end token), the best B kept (none added
 *      once B exist and early_stopping is on); the first B non-finishing ones are the new beams;
 *   3. stop when all finish (length), or B hypotheses exist and either early_stopping is on or the
 *      best running beam's sum / generated^length_penalty cannot beat the worst hypothesis;
 *   4. else the new beams take slots: a parent chosen once keeps its slot (appends the token); a
 *      parent chosen again is forked into a slot whose beam died (sched_fork: blocks shared, the
 *      partial last block copied on the first write); unchosen parents are removed (blocks freed).
 * At the end the n best hypotheses are emitted, whole, as outputs 0..n-1; the rest report nothing.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h" /* defines: error_set */
#include "engine/search.h"

enum { BEAM_EXTRA = 16 }; /* more end-of-generation tokens than any vocabulary has */

typedef struct beam_cand {
    float score;   /* summed log-probability with this token */
    int32_t token;
    int32_t beam;  /* parent slot */
} beam_cand;

typedef struct beam_hyp {
    float score;    /* sum / generated^length_penalty */
    int32_t *tokens; /* [max_new] generated tokens, without the end token */
    int32_t n_tokens;
    bool eos;       /* ended with an end-of-generation token */
} beam_hyp;

struct beam_state {
    int32_t n_beams;
    int32_t n_live;       /* running beams: 1 (the prompt) until the first step, then n_beams */
    int32_t per_beam;     /* candidates kept per beam */
    int32_t max_new;      /* generated tokens at most */
    float length_penalty;
    bool early_stopping;
    float *score;         /* [n_beams] summed log-probability of each running beam */
    bool *ready;          /* [n_beams] its candidates are stored */
    beam_cand *cands;     /* [n_beams][per_beam], best first */
    beam_cand *merged;    /* [n_beams * per_beam] */
    beam_cand *chosen;    /* [n_beams] the next step's beams */
    int32_t *slot;        /* [n_beams] slot of each chosen beam */
    float *logprobs;      /* [n_vocab] scratch */
    beam_hyp *hyps;       /* [n_beams + 1] finished hypotheses, best first (n_hyps <= n_beams), one spare */
    int32_t n_hyps;
    int32_t *hyp_tokens;  /* [n_beams + 1][max_new] the hypotheses' storage */
};

pagoda_status beam_init(pagoda_model *pm, engine_request *req, beam_state **out) {
    *out = NULL;
    int32_t n = req->params.num_beams;
    beam_state *b = calloc(1, sizeof *b);
    if (!b) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory for beam search");
    b->n_beams = n;
    b->n_live = 1;
    b->per_beam = n + BEAM_EXTRA;
    b->max_new = req->seqs[0]->max_total - req->n_prompt;
    b->length_penalty = req->params.length_penalty;
    b->early_stopping = req->params.early_stopping;
    b->score = calloc((size_t)n, sizeof *b->score);
    b->ready = calloc((size_t)n, sizeof *b->ready);
    b->cands = malloc(sizeof *b->cands * (size_t)n * (size_t)b->per_beam);
    b->merged = malloc(sizeof *b->merged * (size_t)n * (size_t)b->per_beam);
    b->chosen = malloc(sizeof *b->chosen * (size_t)n);
    b->slot = malloc(sizeof *b->slot * (size_t)n);
    b->logprobs = malloc(sizeof *b->logprobs * (size_t)pm->weights->hp.n_vocab);
    b->hyps = calloc((size_t)n + 1, sizeof *b->hyps);
    b->hyp_tokens = malloc(sizeof *b->hyp_tokens * ((size_t)n + 1) * (size_t)(b->max_new > 0 ? b->max_new : 1));
    *out = b;
    if (!b->score || !b->ready || !b->cands || !b->merged || !b->chosen || !b->slot || !b->logprobs || !b->hyps ||
        !b->hyp_tokens)
        return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory for beam search");
    for (int32_t i = 0; i <= n; i++) b->hyps[i].tokens = b->hyp_tokens + (size_t)i * (size_t)b->max_new;
    req->seqs[0]->s.reserve_slots = n - 1; /* admission keeps room for the beams */
    return PAGODA_OK;
}

void beam_free(beam_state *b) {
    if (!b) return;
    free(b->score);
    free(b->ready);
    free(b->cands);
    free(b->merged);
    free(b->chosen);
    free(b->slot);
    free(b->logprobs);
    free(b->hyps);
    free(b->hyp_tokens);
    free(b);
}

void beam_on_logits(pagoda_model *pm, engine_seq *seq, const float *logits) {
    beam_state *b = seq->req->search->beam;
    int32_t slot = seq->index, n_vocab = pm->weights->hp.n_vocab, m = b->per_beam, n = 0;
    if (slot >= b->n_live) return;
    search_log_softmax(logits, n_vocab, b->logprobs);
    beam_cand *c = b->cands + (size_t)slot * (size_t)m;
    for (int32_t t = 0; t < n_vocab; t++) { /* the best m, kept sorted (ties: lower token first) */
        float lp = b->logprobs[t];
        if (n == m && !(lp > c[m - 1].score)) continue;
        int32_t i = n < m ? n++ : m - 1;
        while (i > 0 && c[i - 1].score < lp) {
            c[i] = c[i - 1];
            i--;
        }
        c[i] = (beam_cand){lp, t, slot};
    }
    for (int32_t i = 0; i < n; i++) c[i].score = b->score[slot] + c[i].score; /* float32, as torch adds */
    b->ready[slot] = true;
}

static int cand_cmp(const void *pa, const void *pb) {
    const beam_cand *a = pa, *c = pb;
    if (a->score != c->score) return a->score > c->score ? -1 : 1;
    if (a->beam != c->beam) return a->beam < c->beam ? -1 : 1; /* the lower flat index first */
    return (a->token > c->token) - (a->token < c->token);
}

/* Adds a finished hypothesis (the parent beam's generated tokens, plus token when keep_token) if it
 * is among the best n_beams. */
static void add_hyp(beam_state *b, const engine_seq *parent, int32_t n_prompt, float score, int32_t token,
                    bool keep_token, bool eos) {
    if (b->n_hyps == b->n_beams && !(score > b->hyps[b->n_hyps - 1].score)) return;
    beam_hyp *h = &b->hyps[b->n_hyps]; /* a free entry: the spare one when full */
    int32_t n_gen = parent->s.n_tokens - n_prompt;
    memcpy(h->tokens, parent->s.tokens + n_prompt, sizeof(int32_t) * (size_t)n_gen);
    if (keep_token) h->tokens[n_gen++] = token;
    h->n_tokens = n_gen;
    h->score = score;
    h->eos = eos;
    for (int32_t i = b->n_hyps; i > 0 && b->hyps[i - 1].score < b->hyps[i].score; i--) {
        beam_hyp t = b->hyps[i - 1];
        b->hyps[i - 1] = b->hyps[i];
        b->hyps[i] = t;
    }
    if (b->n_hyps < b->n_beams) b->n_hyps++; /* else the worst moved to the spare entry */
}

/* Emits the n best hypotheses as the request's outputs and retires every beam. */
static void emit(pagoda_model *pm, engine_request *req) {
    beam_state *b = req->search->beam;
    int32_t n_out = req->params.n > 0 ? req->params.n : 1;
    for (int32_t i = 0; i < req->n_seqs; i++) {
        engine_seq *seq = req->seqs[i];
        if (seq->finished) continue;
        if (i >= n_out) {
            search_retire_seq(pm, seq);
            continue;
        }
        engine_touch(pm, seq);
        const beam_hyp *h = i < b->n_hyps ? &b->hyps[i] : NULL;
        seq->step_tokens_ext = h ? h->tokens : NULL;
        seq->n_step_tokens = h ? h->n_tokens : 0;
        seq->n_generated = seq->n_step_tokens;
        pm->stats.generated_tokens += (uint64_t)seq->n_step_tokens;
        for (int32_t t = 0; t < seq->n_step_tokens; t++)
            if (text_stream_push(&seq->text, pm->vocab, h->tokens[t]))
                engine_step_text_append(seq, seq->text.out, seq->text.n_out);
        engine_finish(pm, seq, h && h->eos ? PAGODA_FINISH_STOP : PAGODA_FINISH_LENGTH);
    }
}

static void beam_fail(pagoda_model *pm, engine_request *req, pagoda_status st) {
    if (!req->error) {
        req->error = strdup(pagoda_last_error());
        req->error_status = st;
    }
    for (int32_t i = 0; i < req->n_seqs; i++)
        if (!req->seqs[i]->finished) {
            if (i == 0) engine_finish(pm, req->seqs[i], PAGODA_FINISH_ERROR);
            else search_retire_seq(pm, req->seqs[i]);
        }
}

void beam_advance(pagoda_model *pm, engine_request *req) {
    beam_state *b = req->search->beam;
    int32_t nb = b->n_beams, m = b->per_beam, n_merged = 0;
    for (int32_t s = 0; s < b->n_live; s++)
        if (!b->ready[s] || !search_seq_computed(req->seqs[s])) return; /* a beam's forward is pending */
    if (nb - b->n_live > search_room(pm, req->seqs[0])) return; /* the first step forks: wait for slots */
    for (int32_t s = 0; s < b->n_live; s++) {
        memcpy(b->merged + n_merged, b->cands + (size_t)s * (size_t)m, sizeof *b->merged * (size_t)m);
        n_merged += m;
    }
    qsort(b->merged, (size_t)n_merged, sizeof *b->merged, cand_cmp);

    int32_t generated = req->seqs[0]->s.n_tokens - req->n_prompt + 1; /* after this step */
    bool length_stop = generated >= b->max_new, full = b->n_hyps == nb;
    float len_div = (float)pow((double)generated, (double)b->length_penalty);
    int32_t n_chosen = 0;
    for (int32_t i = 0; i < n_merged && (i < nb || n_chosen < nb); i++) {
        const beam_cand *c = &b->merged[i];
        bool eog = !req->params.ignore_eos && vocab_is_eog(pm->vocab, c->token);
        if (eog || length_stop) {
            if (i < nb && !(full && b->early_stopping))
                add_hyp(b, req->seqs[c->beam], req->n_prompt, c->score / len_div, c->token, !eog, eog);
        } else if (n_chosen < nb) {
            b->chosen[n_chosen++] = *c;
        }
    }
    bool done = length_stop || n_chosen == 0;
    if (!done && b->n_hyps == nb)
        done = b->early_stopping || !(b->chosen[0].score / len_div > b->hyps[nb - 1].score);
    if (done) {
        emit(pm, req);
        return;
    }

    /* slots: a parent's first child keeps the parent's slot; the others take slots whose beam died */
    bool used[256] = {false}, *is_used = nb <= 256 ? used : calloc((size_t)nb, sizeof(bool));
    if (!is_used) {
        beam_fail(pm, req, error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory for beam search"));
        return;
    }
    for (int32_t j = 0; j < n_chosen; j++) {
        int32_t p = b->chosen[j].beam;
        b->slot[j] = is_used[p] ? -1 : p;
        is_used[p] = true;
    }
    for (int32_t s = 0; s < b->n_live; s++)
        if (!is_used[s]) sched_remove(pm->sched, &req->seqs[s]->s); /* a dead beam: its blocks are freed */
    req->seqs[0]->s.reserve_slots = 0; /* the beams now run: they hold the slots the prompt reserved */
    int32_t next_free = 0;
    pagoda_status st = PAGODA_OK;
    for (int32_t j = 0; j < n_chosen && !st; j++) {
        if (b->slot[j] >= 0) continue;
        while (is_used[next_free]) next_free++;
        is_used[next_free] = true;
        b->slot[j] = next_free;
        st = search_fork(pm, req->seqs[b->chosen[j].beam], req->seqs[next_free], -1);
    }
    if (is_used != used) free(is_used);
    if (st) {
        beam_fail(pm, req, st);
        return;
    }
    for (int32_t j = 0; j < n_chosen; j++) {
        engine_seq *seq = req->seqs[b->slot[j]];
        seq->s.tokens[seq->s.n_tokens++] = b->chosen[j].token;
        b->score[b->slot[j]] = b->chosen[j].score;
        b->ready[b->slot[j]] = false;
    }
    b->n_live = n_chosen; /* n_beams, but for a vocabulary smaller than the beam */
}
