/* engine/contrastive.c - contrastive search as HF transformers defines it (generate(penalty_alpha=a,
 * top_k=k), _contrastive_search and _ranking_fast of transformers 4.5x), on the paged cache.
 *
 * The request's sequences: seqs[0] is the output ("main") sequence, holding the context; seqs[1..k]
 * are the candidates. Each token:
 *   1. from main's next-token distribution p = softmax(logits), the k most likely tokens c_i;
 *   2. each candidate sequence is forked from main (blocks shared) with c_i appended, and the k of
 *      them run in one batched forward, giving each its final hidden state h_i (after the final norm,
 *      HF hidden_states[-1]) and its logits;
 *   3. score_i = (1 - a) p(c_i) - a max_j cos(h_i, ctx_j), where ctx_j are the final hidden states
 *      of every earlier token of the context (prompt included); the best candidate wins (the first
 *      of equals);
 *   4. main takes the winner's blocks (released, then forked from the winner), appends its token and
 *      streams it; the winner's logits give the next distribution; candidates are removed.
 * The prompt is computed without the prefix cache (sched_seq.no_prefix_match) so that every prompt
 * position's hidden state is seen once.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h" /* defines: error_set */
#include "engine/search.h"

typedef enum contrastive_phase {
    CONTRASTIVE_WAIT_PROMPT, /* main's prompt is being computed */
    CONTRASTIVE_READY,       /* main's distribution is known: fork the candidates */
    CONTRASTIVE_IN_FLIGHT,   /* the candidates are being computed */
} contrastive_phase;

struct contrastive_state {
    int32_t k;
    float alpha;
    int32_t n_embd, n_vocab;
    contrastive_phase phase;
    float *ctx;            /* [cap_ctx][n_embd] the context's final hidden states, unit length */
    int32_t n_ctx, cap_ctx;
    int32_t *top_ids;      /* [k] main's candidates, most likely first */
    float *top_probs;      /* [k] their probabilities */
    float *cand_hidden;    /* [k][n_embd] each candidate's final hidden state, unit length */
    int32_t *cand_top_ids; /* [k][k] each candidate's own next candidates */
    float *cand_top_probs; /* [k][k] */
    bool *cand_ready;      /* [k] */
    float *probs;          /* [n_vocab] scratch */
};

pagoda_status contrastive_init(pagoda_model *pm, engine_request *req, contrastive_state **out) {
    *out = NULL;
    const model_hparams *hp = &pm->weights->hp;
    int32_t k = req->params.top_k;
    contrastive_state *c = calloc(1, sizeof *c);
    if (!c) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory for contrastive search");
    *out = c;
    c->k = k;
    c->alpha = req->params.penalty_alpha;
    c->n_embd = hp->n_embd;
    c->n_vocab = hp->n_vocab;
    c->cap_ctx = req->n_prompt + 64;
    c->ctx = malloc(sizeof(float) * (size_t)c->cap_ctx * (size_t)hp->n_embd);
    c->top_ids = malloc(sizeof(int32_t) * (size_t)k);
    c->top_probs = malloc(sizeof(float) * (size_t)k);
    c->cand_hidden = malloc(sizeof(float) * (size_t)k * (size_t)hp->n_embd);
    c->cand_top_ids = malloc(sizeof(int32_t) * (size_t)k * (size_t)k);
    c->cand_top_probs = malloc(sizeof(float) * (size_t)k * (size_t)k);
    c->cand_ready = calloc((size_t)k, sizeof(bool));
    c->probs = malloc(sizeof(float) * (size_t)hp->n_vocab);
    if (!c->ctx || !c->top_ids || !c->top_probs || !c->cand_hidden || !c->cand_top_ids || !c->cand_top_probs ||
        !c->cand_ready || !c->probs)
        return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory for contrastive search");
    req->seqs[0]->s.no_prefix_match = true;
    req->seqs[0]->s.reserve_slots = k; /* admission keeps room for the candidates */
    return PAGODA_OK;
}

void contrastive_free(contrastive_state *c) {
    if (!c) return;
    free(c->ctx);
    free(c->top_ids);
    free(c->top_probs);
    free(c->cand_hidden);
    free(c->cand_top_ids);
    free(c->cand_top_probs);
    free(c->cand_ready);
    free(c->probs);
    free(c);
}

/* softmax(logits) in float32 as torch computes it, then the k most likely (ties: lower id first). */
static void top_k_probs(contrastive_state *c, const float *logits, int32_t *ids, float *probs) {
    float max = logits[0];
    for (int32_t i = 1; i < c->n_vocab; i++)
        if (logits[i] > max) max = logits[i];
    double sum = 0;
    for (int32_t i = 0; i < c->n_vocab; i++) sum += (c->probs[i] = expf(logits[i] - max));
    float inv = (float)(1.0 / sum);
    int32_t n = 0;
    for (int32_t t = 0; t < c->n_vocab; t++) {
        float p = c->probs[t] * inv;
        if (n == c->k && !(p > probs[c->k - 1])) continue;
        int32_t i = n < c->k ? n++ : c->k - 1;
        while (i > 0 && probs[i - 1] < p) {
            probs[i] = probs[i - 1];
            ids[i] = ids[i - 1];
            i--;
        }
        probs[i] = p;
        ids[i] = t;
    }
}

static void store_unit(float *dst, const float *h, int32_t n) {
    double ss = 0;
    for (int32_t i = 0; i < n; i++) ss += (double)h[i] * h[i];
    float inv = ss > 0 ? (float)(1.0 / sqrt(ss)) : 0.0f;
    for (int32_t i = 0; i < n; i++) dst[i] = h[i] * inv;
}

static bool ctx_append(contrastive_state *c, const float *h) {
    if (c->n_ctx == c->cap_ctx) {
        int32_t cap = c->cap_ctx * 2;
        float *grown = realloc(c->ctx, sizeof(float) * (size_t)cap * (size_t)c->n_embd);
        if (!grown) return false;
        c->ctx = grown;
        c->cap_ctx = cap;
    }
    store_unit(c->ctx + (size_t)c->n_ctx++ * (size_t)c->n_embd, h, c->n_embd);
    return true;
}

void contrastive_on_result(pagoda_model *pm, engine_seq *seq, const float *logits, const float *hidden,
                           int32_t first_pos, int32_t n_rows) {
    (void)pm;
    contrastive_state *c = seq->req->search->contrastive;
    if (seq->index == 0) { /* main: only its prompt (or a recomputation after preemption) runs */
        for (int32_t r = 0; r < n_rows; r++)
            if (first_pos + r == c->n_ctx && !ctx_append(c, hidden + (size_t)r * (size_t)c->n_embd)) return;
        if (logits && c->phase == CONTRASTIVE_WAIT_PROMPT && c->n_ctx == seq->s.n_tokens) {
            top_k_probs(c, logits, c->top_ids, c->top_probs);
            seq->s.no_prefix_match = false;
            c->phase = CONTRASTIVE_READY;
        }
        return;
    }
    int32_t i = seq->index - 1;
    if (c->phase != CONTRASTIVE_IN_FLIGHT || !logits || n_rows < 1) return;
    store_unit(c->cand_hidden + (size_t)i * (size_t)c->n_embd, hidden + (size_t)(n_rows - 1) * (size_t)c->n_embd,
               c->n_embd);
    top_k_probs(c, logits, c->cand_top_ids + (size_t)i * (size_t)c->k, c->cand_top_probs + (size_t)i * (size_t)c->k);
    c->cand_ready[i] = true;
}

static void contrastive_fail(pagoda_model *pm, engine_request *req, pagoda_status st) {
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

/* The winning candidate: (1 - alpha) p - alpha * max cosine similarity with the context. */
static int32_t pick(const contrastive_state *c) {
    int32_t best = 0;
    float best_score = 0;
    for (int32_t i = 0; i < c->k; i++) {
        const float *h = c->cand_hidden + (size_t)i * (size_t)c->n_embd;
        double max_cos = -INFINITY;
        for (int32_t j = 0; j < c->n_ctx; j++) {
            const float *x = c->ctx + (size_t)j * (size_t)c->n_embd;
            double dot = 0;
            for (int32_t d = 0; d < c->n_embd; d++) dot += (double)x[d] * h[d];
            if (dot > max_cos) max_cos = dot;
        }
        float score = (1.0f - c->alpha) * c->top_probs[i] - c->alpha * (float)max_cos;
        if (i == 0 || score > best_score) {
            best = i;
            best_score = score;
        }
    }
    return best;
}

void contrastive_advance(pagoda_model *pm, engine_request *req) {
    contrastive_state *c = req->search->contrastive;
    engine_seq *main_seq = req->seqs[0];
    if (c->phase == CONTRASTIVE_IN_FLIGHT) {
        for (int32_t i = 0; i < c->k; i++)
            if (!c->cand_ready[i] || !search_seq_computed(req->seqs[1 + i])) return;
        int32_t w = pick(c);
        engine_seq *winner = req->seqs[1 + w];
        sched_remove(pm->sched, &main_seq->s); /* main gives its blocks back and takes the winner's */
        bool more = search_emit_token(pm, main_seq, c->top_ids[w]);
        pagoda_status st = more ? sched_fork(pm->sched, &winner->s, &main_seq->s) : PAGODA_OK;
        bool stored = more && ctx_append(c, c->cand_hidden + (size_t)w * (size_t)c->n_embd);
        if (more) {
            memcpy(c->top_ids, c->cand_top_ids + (size_t)w * (size_t)c->k, sizeof(int32_t) * (size_t)c->k);
            memcpy(c->top_probs, c->cand_top_probs + (size_t)w * (size_t)c->k, sizeof(float) * (size_t)c->k);
        }
        for (int32_t i = 0; i < c->k; i++) {
            engine_seq *cand = req->seqs[1 + i];
            if (more) sched_remove(pm->sched, &cand->s); /* reused for the next token */
            else search_retire_seq(pm, cand);
            c->cand_ready[i] = false;
        }
        if (!more) return;
        if (st || !stored) {
            contrastive_fail(pm, req, st ? st : error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory for contrastive search"));
            return;
        }
        c->phase = CONTRASTIVE_READY;
        main_seq->s.reserve_slots = c->k;
    }
    if (c->phase != CONTRASTIVE_READY || !search_seq_computed(main_seq) || search_room(pm, main_seq) < c->k) return;
    main_seq->s.reserve_slots = 0; /* the candidates hold the reserved slots while they run */
    for (int32_t i = 0; i < c->k; i++) {
        pagoda_status st = search_fork(pm, main_seq, req->seqs[1 + i], c->top_ids[i]);
        if (st) {
            contrastive_fail(pm, req, st);
            return;
        }
    }
    c->phase = CONTRASTIVE_IN_FLIGHT;
}
