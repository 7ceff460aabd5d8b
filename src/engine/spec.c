/* engine/spec.c - speculative decoding's engine side (see spec.h): the draft source's set-up, the
 * proposal phase (prompt lookup, or a draft model / early-exit view running batched over every
 * decoding sequence), and verification with roll-back of the target's and the draft's caches.
 * The acceptance rule itself is in spec_accept.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"             /* defines: error_set */
#include "engine/engine_internal.h" /* defines: struct pagoda_model, engine_seq, engine_append */
#include "engine/spec.h"
#include "gguf/gguf.h"              /* defines: gguf_open, gguf_close */

typedef enum spec_source { SPEC_LOOKUP, SPEC_DRAFT_MODEL, SPEC_SELF } spec_source;

struct spec_state {
    spec_source source;
    int32_t k;              /* drafts per step at most */
    int32_t ngram;          /* prompt lookup: longest n-gram matched */
    int32_t n_vocab;
    int32_t max_seqs;       /* sequences per draft forward (the draft runner's limit) */
    /* draft model or early-exit view (NULL for prompt lookup) */
    model *draft;           /* SPEC_DRAFT_MODEL: loaded here; SPEC_SELF: a copy of the target's struct
                               with hp.n_layer = draft_layers, sharing every weight */
    model_kv_cache *kv;     /* the draft's K/V: [draft n_layer][n_blocks][block_size][..] */
    kv_pool *pool;          /* its blocks (no prefix caching) */
    runner *runner;
    runner_seq *run;        /* [cap_cands] this draft forward's sequences */
    engine_seq **run_owner; /* [cap_cands] */
    engine_seq **cands;     /* [cap_cands] sequences proposing this step */
    int32_t *cand_k;        /* [cap_cands] drafts wanted by each */
    int32_t cap_cands;
    /* verification scratch */
    float *p;               /* [n_vocab] the target's distribution at one position */
    float *residual;        /* [n_vocab] */
    void *scratch;          /* [n_vocab] (float, int32) pairs for spec_dist */
};

/* ---- Set-up ---------------------------------------------------------------------------------------- */
/* Names the draft in an error from the loaders. */
static pagoda_status draft_error(pagoda_status st) {
    char why[512];
    snprintf(why, sizeof why, "%s", pagoda_last_error());
    return error_set(st, "draft model: %s", why);
}

static pagoda_status load_draft(pagoda_model *pm, spec_state *sp, const char *path) {
    gguf_file *file;
    pagoda_status st = gguf_open(path, &file);
    if (st) return draft_error(st);
    if ((st = model_load_gguf(file, &sp->draft))) {
        gguf_close(file);
        return draft_error(st);
    }
    const model_hparams *d = &sp->draft->hp, *t = &pm->weights->hp;
    vocab *dv = NULL;
    if ((st = vocab_load(sp->draft->file, &dv))) return draft_error(st);
    bool same = vocab_n_tokens(dv) == vocab_n_tokens(pm->vocab) && d->n_vocab == t->n_vocab;
    int32_t differs = -1;
    for (int32_t i = 0; same && i < t->n_vocab; i++)
        if (strcmp(vocab_token_text(dv, i), vocab_token_text(pm->vocab, i))) {
            same = false;
            differs = i;
        }
    vocab_free(dv);
    if (!same) {
        if (differs >= 0)
            return error_set(PAGODA_ERR_FORMAT, "draft model %s: its vocabulary differs from the model's at token %d "
                             "(a draft must share the model's tokenizer)", path, differs);
        return error_set(PAGODA_ERR_FORMAT, "draft model %s: its vocabulary has %d tokens but the model's has %d "
                         "(a draft must share the model's tokenizer)", path, d->n_vocab, t->n_vocab);
    }
    int64_t t_cols = t->n_ff > t->n_embd ? t->n_ff : t->n_embd, d_cols = d->n_ff > d->n_embd ? d->n_ff : d->n_embd;
    if ((int64_t)t->n_head * t->head_dim > t_cols) t_cols = (int64_t)t->n_head * t->head_dim;
    if ((int64_t)d->n_head * d->head_dim > d_cols) d_cols = (int64_t)d->n_head * d->head_dim;
    if (d_cols > t_cols || d->n_head > t->n_head || d->head_dim > t->head_dim)
        return error_set(PAGODA_ERR_UNSUPPORTED, "draft model %s is wider than the model (%lld columns, %d heads of %d; "
                         "the model has %lld, %d of %d): use a smaller draft", path, (long long)d_cols, d->n_head,
                         d->head_dim, (long long)t_cols, t->n_head, t->head_dim);
    return PAGODA_OK;
}

pagoda_status spec_init(pagoda_model *pm) {
    const pagoda_model_params *p = &pm->params;
    const model_hparams *hp = &pm->weights->hp;
    int n_sources = (p->draft_model_path != NULL) + (p->draft_layers != 0) + (p->lookup_ngram != 0);
    if (n_sources == 0) return PAGODA_OK;
    if (n_sources > 1)
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "speculative decoding takes one draft source: --draft, "
                         "--draft-layers or --lookup, not several");
    int32_t k = p->draft_k > 0 ? p->draft_k : 4;
    if (k > SPEC_MAX_DRAFT_K)
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "draft-k must be 1 to %d (got %d)", SPEC_MAX_DRAFT_K, k);
    if (p->draft_layers < 0 || p->draft_layers >= hp->n_layer)
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "draft-layers must be 1 to %d, fewer than the model's %d layers "
                         "(got %d)", hp->n_layer - 1, hp->n_layer, p->draft_layers);
    if (p->lookup_ngram < 0 || p->lookup_ngram > 64)
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "lookup n-gram must be 1 to 64 (got %d)", p->lookup_ngram);
    spec_state *sp = calloc(1, sizeof *sp);
    if (!sp) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory for speculative decoding");
    pm->spec = sp;
    sp->k = k;
    sp->ngram = p->lookup_ngram;
    sp->n_vocab = hp->n_vocab;
    sp->max_seqs = p->max_seqs;
    sp->source = p->lookup_ngram ? SPEC_LOOKUP : p->draft_layers ? SPEC_SELF : SPEC_DRAFT_MODEL;
    sp->p = malloc(sizeof(float) * (size_t)hp->n_vocab);
    sp->residual = malloc(sizeof(float) * (size_t)hp->n_vocab);
    sp->scratch = malloc(8 * (size_t)hp->n_vocab);
    if (!sp->p || !sp->residual || !sp->scratch)
        return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory for speculative decoding");
    if (sp->source == SPEC_LOOKUP) return PAGODA_OK;
    pagoda_status st;
    if (sp->source == SPEC_SELF) {
        if (!(sp->draft = malloc(sizeof *sp->draft)))
            return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory for speculative decoding");
        *sp->draft = *pm->weights;
        sp->draft->hp.n_layer = p->draft_layers;
    } else if ((st = load_draft(pm, sp, p->draft_model_path))) {
        return st;
    }
    /* as many blocks as the target's pool: a draft never runs out before the target does */
    int32_t bs = pm->kv->view.block_size;
    int64_t n_blocks = pm->kv->view.n_blocks;
    if ((st = model_kv_cache_init(sp->draft, pm->kv->view.type, bs, n_blocks, &sp->kv)) ||
        (st = kv_pool_init((int32_t)n_blocks, bs, false, &sp->pool)) ||
        (st = runner_init(sp->draft, pm->be, sp->kv, p->n_batch, p->max_seqs, (p->n_ctx + bs - 1) / bs, &sp->runner)))
        return st;
    return PAGODA_OK;
}

void spec_free(pagoda_model *pm) {
    spec_state *sp = pm->spec;
    if (!sp) return;
    runner_free(sp->runner);
    kv_pool_free(sp->pool);
    model_kv_cache_free(sp->kv);
    if (sp->source == SPEC_DRAFT_MODEL) model_free(sp->draft);
    else free(sp->draft); /* the view owns nothing */
    free(sp->run);
    free(sp->run_owner);
    free(sp->cands);
    free(sp->cand_k);
    free(sp->p);
    free(sp->residual);
    free(sp->scratch);
    free(sp);
    pm->spec = NULL;
}

void spec_seq_release(pagoda_model *pm, engine_seq *seq) {
    if (pm->spec && pm->spec->pool) kv_pool_release(pm->spec->pool, &seq->spec.table);
    free(seq->spec.q);
    seq->spec.q = NULL;
    seq->spec.draft_computed = 0;
}

/* ---- Proposal ------------------------------------------------------------------------------------- */
/* The acceptance rule covers temperature, top-k, top-p and min-p; anything else runs unspeculated. */
static bool plain_sampling(const pagoda_sampling_params *p) {
    return (p->typical_p == 0 || p->typical_p == 1) && (p->repetition_penalty == 0 || p->repetition_penalty == 1) &&
           p->presence_penalty == 0 && p->frequency_penalty == 0 && p->n_logit_bias == 0 && !p->logprobs &&
           p->top_logprobs == 0 && p->num_beams <= 1 && p->penalty_alpha == 0 && !p->dola_layers;
}

static sampler_params seq_sampler_params(const engine_seq *seq) {
    const pagoda_sampling_params *p = &seq->req->params;
    return (sampler_params){.temperature = p->temperature, .top_k = p->top_k, .top_p = p->top_p, .min_p = p->min_p,
                            .seed = p->seed};
}

static int32_t argmax(const float *x, int32_t n) { /* ties to the lowest id, as the sampler */
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

static void ensure_rng(engine_seq *seq) {
    if (seq->spec.rng_ready) return;
    sampler_rng_seed(&seq->spec.rng, seq->req->params.seed ^ 0x5370656344726166ull /* "SpecDraf" */ ^
                                     (0x9E3779B97F4A7C15ull * (uint64_t)(seq->index + 1)));
    seq->spec.rng_ready = true;
}

static bool reserve_cands(spec_state *sp, int32_t n) {
    if (n <= sp->cap_cands) return true;
    int32_t cap = sp->cap_cands ? sp->cap_cands * 2 : 64;
    while (cap < n) cap *= 2;
    runner_seq *run = realloc(sp->run, sizeof *run * (size_t)cap);
    if (run) sp->run = run;
    engine_seq **owner = realloc(sp->run_owner, sizeof *owner * (size_t)cap);
    if (owner) sp->run_owner = owner;
    engine_seq **cands = realloc(sp->cands, sizeof *cands * (size_t)cap);
    if (cands) sp->cands = cands;
    int32_t *cand_k = realloc(sp->cand_k, sizeof *cand_k * (size_t)cap);
    if (cand_k) sp->cand_k = cand_k;
    if (!run || !owner || !cands || !cand_k) return false;
    sp->cap_cands = cap;
    return true;
}

/* The draft's next token after a logits row; sampled drafts keep q for verification. */
static int32_t draft_pick(spec_state *sp, engine_seq *seq, const float *logits, int32_t j) {
    if (seq->req->params.temperature == 0) return argmax(logits, sp->n_vocab);
    sampler_params p = seq_sampler_params(seq);
    float *q = seq->spec.q + (size_t)j * (size_t)sp->n_vocab;
    spec_dist(&p, logits, sp->n_vocab, q, sp->scratch);
    ensure_rng(seq);
    return spec_draw(q, sp->n_vocab, &seq->spec.rng);
}

/* Adds seq's next draft forward (positions draft_computed .. draft_computed + n) to sp->run. */
static bool draft_schedule(spec_state *sp, engine_seq *seq, int32_t n, bool wants_logits, int32_t *n_run) {
    kv_block_copy copy;
    bool has_copy;
    int32_t dc = seq->spec.draft_computed;
    if (!kv_pool_allocate(sp->pool, &seq->spec.table, dc, dc + n, &copy, &has_copy) || has_copy) return false;
    sp->run[*n_run] = (runner_seq){.tokens = seq->s.tokens, .n_computed = dc, .n_new = n,
                                   .blocks = kv_block_table_ids(&seq->spec.table),
                                   .n_blocks = kv_block_table_n_blocks(&seq->spec.table), .wants_logits = wants_logits,
                                   .n_prompt = seq->s.n_prompt};
    sp->run_owner[(*n_run)++] = seq;
    return true;
}

/* Draft model / early-exit view: one catch-up forward (each sequence's uncomputed tokens, within
 * the step's token budget) proposes d_1, then k - 1 one-token forwards propose d_2..d_k. */
static void propose_with_model(pagoda_model *pm, int32_t n_cands) {
    spec_state *sp = pm->spec;
    int32_t n_run = 0, budget = pm->params.n_batch, max_k = 0;
    for (int32_t c = 0; c < n_cands && budget > 0 && n_run < sp->max_seqs; c++) {
        engine_seq *seq = sp->cands[c];
        int32_t need = seq->spec.n_real - seq->spec.draft_computed, n = need < budget ? need : budget;
        if (seq->req->params.temperature != 0 && !seq->spec.q &&
            !(seq->spec.q = malloc(sizeof(float) * (size_t)sp->k * (size_t)sp->n_vocab)))
            continue;
        if (need < 1 || !draft_schedule(sp, seq, n, n == need, &n_run)) continue;
        budget -= n;
    }
    const float *logits;
    /* a failed draft forward costs only the speed-up: those sequences propose nothing */
    if (n_run == 0 || runner_run(sp->runner, sp->run, n_run, NULL, NULL, 0, &logits)) return;
    for (int32_t i = 0, row = 0; i < n_run; i++) {
        engine_seq *seq = sp->run_owner[i];
        seq->spec.draft_computed += sp->run[i].n_new;
        if (!sp->run[i].wants_logits) continue;
        seq->s.tokens[seq->spec.n_real] = draft_pick(sp, seq, logits + (size_t)row++ * (size_t)sp->n_vocab, 0);
        seq->spec.n_draft = 1;
    }
    for (int32_t c = 0; c < n_cands; c++) max_k = sp->cand_k[c] > max_k ? sp->cand_k[c] : max_k;
    for (int32_t j = 1; j < max_k; j++) {
        n_run = 0;
        for (int32_t c = 0; c < n_cands; c++) {
            engine_seq *seq = sp->cands[c];
            if (seq->spec.n_draft == j && sp->cand_k[c] > j && n_run < sp->max_seqs)
                draft_schedule(sp, seq, 1, true, &n_run);
        }
        if (n_run == 0 || runner_run(sp->runner, sp->run, n_run, NULL, NULL, 0, &logits)) return;
        for (int32_t i = 0; i < n_run; i++) {
            engine_seq *seq = sp->run_owner[i];
            seq->spec.draft_computed++;
            seq->s.tokens[seq->spec.n_real + j] = draft_pick(sp, seq, logits + (size_t)i * (size_t)sp->n_vocab, j);
            seq->spec.n_draft = j + 1;
        }
    }
}

void spec_propose(pagoda_model *pm) {
    spec_state *sp = pm->spec;
    if (!sp) return;
    int32_t n_cands = 0;
    for (int32_t r = 0; r < pm->n_requests; r++) {
        engine_request *req = pm->requests[r];
        if (!plain_sampling(&req->params)) continue;
        for (int32_t i = 0; i < req->n_seqs; i++) {
            engine_seq *seq = req->seqs[i];
            int32_t n_real = seq->s.n_tokens, room = seq->max_total - n_real;
            if (seq->finished || seq->s.state != SCHED_SEQ_RUNNING || n_real - seq->s.n_computed != 1 || room < 1)
                continue;
            if (!reserve_cands(sp, n_cands + 1)) return;
            seq->spec.n_real = n_real;
            seq->spec.n_draft = 0;
            sp->cands[n_cands] = seq;
            if (seq->spec.k_next < 1 || seq->spec.k_next > sp->k) seq->spec.k_next = sp->k;
            sp->cand_k[n_cands++] = room < seq->spec.k_next ? room : seq->spec.k_next;
        }
    }
    if (sp->source == SPEC_LOOKUP)
        for (int32_t c = 0; c < n_cands; c++) {
            engine_seq *seq = sp->cands[c];
            seq->spec.n_draft = spec_lookup(seq->s.tokens, seq->spec.n_real, sp->ngram, sp->cand_k[c],
                                            seq->s.tokens + seq->spec.n_real);
        }
    else
        propose_with_model(pm, n_cands);
    for (int32_t c = 0; c < n_cands; c++) {
        engine_seq *seq = sp->cands[c];
        if (seq->spec.n_draft == 0) seq->spec.n_real = 0;
        else seq->s.n_tokens = seq->spec.n_real + seq->spec.n_draft;
    }
}

/* ---- Verification --------------------------------------------------------------------------------- */
/* Forgets seq's drafts; the target's K/V is kept up to n_keep positions, the draft's up to n_real. */
static void drop_drafts(pagoda_model *pm, engine_seq *seq, int32_t n_keep) {
    spec_seq *ss = &seq->spec;
    seq->s.n_tokens = ss->n_real;
    if (seq->s.n_computed > n_keep) {
        kv_pool_truncate(pm->pool, &seq->s.table, n_keep);
        seq->s.n_computed = n_keep;
    }
    int32_t draft_keep = n_keep > ss->n_real ? n_keep : ss->n_real;
    if (pm->spec->pool && ss->draft_computed > draft_keep) {
        kv_pool_truncate(pm->spec->pool, &ss->table, draft_keep);
        ss->draft_computed = draft_keep;
    }
    ss->n_draft = 0;
    ss->n_real = 0;
}

void spec_prepare(pagoda_model *pm, const sched_output *out, runner_seq *run) {
    if (!pm->spec) return;
    for (int32_t i = 0; i < out->n_items; i++) {
        engine_seq *seq = out->items[i].seq->user;
        spec_seq *ss = &seq->spec;
        if (ss->n_draft == 0) continue;
        ss->scheduled = true;
        int32_t before = seq->s.n_computed, after = before + out->items[i].n_tokens;
        /* rows for positions n_real - 1 .. after - 1 verify the drafts that were computed */
        bool verifiable = before <= ss->n_real - 1 && after >= ss->n_real;
        run[i].n_logits = verifiable ? after - (ss->n_real - 1) : 0;
        run[i].wants_logits = false;
    }
    for (int32_t i = 0; i < out->n_preempted; i++) { /* their draft blocks too: they start over */
        engine_seq *seq = out->preempted[i]->user;
        if (pm->spec->pool) kv_pool_release(pm->spec->pool, &seq->spec.table);
        seq->spec.draft_computed = 0;
    }
    for (int32_t r = 0; r < pm->n_requests; r++)
        for (int32_t i = 0; i < pm->requests[r]->n_seqs; i++) {
            engine_seq *seq = pm->requests[r]->seqs[i];
            if (seq->spec.n_draft > 0 && !seq->spec.scheduled) /* not scheduled, or preempted */
                drop_drafts(pm, seq, seq->s.n_computed);
            seq->spec.scheduled = false;
        }
}

bool spec_verify(pagoda_model *pm, engine_seq *seq, const float *rows, int32_t n_rows) {
    spec_state *sp = pm->spec;
    spec_seq *ss = &seq->spec;
    if (!sp || ss->n_draft == 0) return false;
    int32_t n_real = ss->n_real, n_vocab = sp->n_vocab;
    if (n_rows == 0) { /* the last real token's logits were not computed: recompute it next step */
        drop_drafts(pm, seq, seq->s.n_computed < n_real - 1 ? seq->s.n_computed : n_real - 1);
        return true;
    }
    int32_t n_check = n_rows - 1, m = 0, final;
    const int32_t *drafts = seq->s.tokens + n_real;
    if (seq->req->params.temperature == 0) {
        while (m < n_check && drafts[m] == argmax(rows + (size_t)m * (size_t)n_vocab, n_vocab)) m++;
        final = argmax(rows + (size_t)m * (size_t)n_vocab, n_vocab);
    } else {
        sampler_params p = seq_sampler_params(seq);
        ensure_rng(seq);
        for (;; m++) {
            spec_dist(&p, rows + (size_t)m * (size_t)n_vocab, n_vocab, sp->p, sp->scratch);
            if (m == n_check) { /* every computed draft accepted: the bonus token from p */
                final = spec_draw(sp->p, n_vocab, &ss->rng);
                break;
            }
            const float *q = sp->source == SPEC_LOOKUP ? NULL : ss->q + (size_t)m * (size_t)n_vocab;
            if (!spec_accept(sp->p, q, n_vocab, drafts[m], &ss->rng, sp->residual, &final)) break;
        }
    }
    pm->stats.spec_proposed += (uint64_t)n_check;
    pm->stats.spec_accepted += (uint64_t)m;
    if (n_check > 0) /* the draft length follows the acceptance (HF assisted generation's heuristic) */
        ss->k_next = m == n_check ? (ss->k_next + 2 < sp->k ? ss->k_next + 2 : sp->k)
                                  : (ss->k_next > 1 ? ss->k_next - 1 : 1);
    int32_t accepted[SPEC_MAX_DRAFT_K];
    memcpy(accepted, drafts, sizeof(int32_t) * (size_t)m);
    drop_drafts(pm, seq, n_real + m); /* n_tokens = n_real; K/V kept through the last accepted draft */
    for (int32_t j = 0; j < m && !seq->finished; j++) engine_append(pm, seq, accepted[j]);
    if (!seq->finished) engine_append(pm, seq, final);
    return true;
}
