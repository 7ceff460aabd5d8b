/* runner/runner.c - batch metadata for model_forward (see runner.h). */
#include "runner/runner.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h" /* defines: error_set */

struct runner {
    const model *m;
    backend *be;
    model_kv_cache *kv;
    model_workspace *ws;
    int32_t max_tokens, max_seqs, max_blocks_per_seq;
    int32_t *tokens;        /* [max_tokens] */
    int32_t *positions;     /* [max_tokens] */
    int32_t *slots;         /* [max_tokens] */
    int32_t *query_start;   /* [max_seqs + 1] */
    int32_t *seq_lens;      /* [max_seqs] */
    int32_t *block_tables;  /* [max_seqs][max_blocks_per_seq] */
    int32_t *logit_rows;    /* [max_logits] */
    int32_t max_logits;     /* max_seqs, grown for speculative verification */
    /* optional outputs, allocated on first use (search strategies) */
    int32_t *hidden_rows;   /* [max_tokens] */
    float *hidden;          /* [max_tokens][n_embd] */
    float *layers;          /* [max_logits][n_layer][n_embd] */
    bool has_hidden, has_layers; /* this step's outputs are valid */
    uint8_t *decode_rows;   /* [max_tokens] 1 for generated tokens */
};

pagoda_status runner_init(const model *m, backend *be, model_kv_cache *kv, int32_t max_tokens, int32_t max_seqs,
                          int32_t max_blocks_per_seq, runner **out) {
    *out = NULL;
    if (max_tokens < 1 || max_seqs < 1 || max_blocks_per_seq < 1)
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "runner limits must be positive");
    runner *r = calloc(1, sizeof *r);
    if (!r) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory for the runner");
    r->m = m;
    r->be = be;
    r->kv = kv;
    r->max_tokens = max_tokens;
    r->max_seqs = max_seqs;
    r->max_blocks_per_seq = max_blocks_per_seq;
    pagoda_status st = model_workspace_init(m, max_tokens, max_seqs, &r->ws);
    if (st) {
        free(r);
        return st;
    }
    r->tokens = malloc(sizeof(int32_t) * (size_t)max_tokens);
    r->positions = malloc(sizeof(int32_t) * (size_t)max_tokens);
    r->slots = malloc(sizeof(int32_t) * (size_t)max_tokens);
    r->query_start = malloc(sizeof(int32_t) * (size_t)(max_seqs + 1));
    r->seq_lens = malloc(sizeof(int32_t) * (size_t)max_seqs);
    r->block_tables = malloc(sizeof(int32_t) * (size_t)max_seqs * (size_t)max_blocks_per_seq);
    r->logit_rows = malloc(sizeof(int32_t) * (size_t)max_seqs);
    r->max_logits = max_seqs;
    r->decode_rows = malloc((size_t)max_tokens);
    if (!r->tokens || !r->positions || !r->slots || !r->query_start || !r->seq_lens || !r->block_tables ||
        !r->logit_rows || !r->decode_rows) {
        runner_free(r);
        return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory for the runner's batch of %d tokens", max_tokens);
    }
    *out = r;
    return PAGODA_OK;
}

void runner_free(runner *r) {
    if (!r) return;
    model_workspace_free(r->ws);
    free(r->tokens);
    free(r->positions);
    free(r->slots);
    free(r->query_start);
    free(r->seq_lens);
    free(r->block_tables);
    free(r->logit_rows);
    free(r->hidden_rows);
    free(r->hidden);
    free(r->layers);
    free(r->decode_rows);
    free(r);
}

pagoda_status runner_run(runner *r, const runner_seq *seqs, int32_t n_seqs, const int32_t *copy_src,
                         const int32_t *copy_dst, int32_t n_copies, const float **out_logits) {
    *out_logits = NULL;
    r->has_hidden = r->has_layers = false;
    if (n_seqs > r->max_seqs)
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "%d sequences exceed the runner's %d", n_seqs, r->max_seqs);
    if (n_copies > 0) r->be->kv_copy_blocks(r->be, &r->kv->view, copy_src, copy_dst, n_copies);
    if (n_seqs == 0) return PAGODA_OK;
    int32_t block_size = r->kv->view.block_size, n_tokens = 0, n_logits = 0, need_logits = 0, n_hidden = 0;
    for (int32_t s = 0; s < n_seqs; s++) need_logits += seqs[s].n_logits > 0 ? seqs[s].n_logits : seqs[s].wants_logits;
    if (need_logits > r->max_logits) { /* grow once to the most rows a step has wanted */
        model_workspace *ws;
        int32_t *rows = realloc(r->logit_rows, sizeof(int32_t) * (size_t)need_logits);
        if (!rows) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory for %d logit rows", need_logits);
        r->logit_rows = rows;
        pagoda_status st = model_workspace_init(r->m, r->max_tokens, need_logits, &ws);
        if (st) return st;
        model_workspace_free(r->ws);
        r->ws = ws;
        r->max_logits = need_logits;
        free(r->layers); /* sized by max_logits: reallocated below when wanted */
        r->layers = NULL;
    }
    bool want_layers = false;
    const model_hparams *hp = &r->m->hp;
    for (int32_t s = 0; s < n_seqs; s++) {
        if (seqs[s].wants_hidden && !r->hidden) {
            r->hidden_rows = malloc(sizeof(int32_t) * (size_t)r->max_tokens);
            r->hidden = malloc(sizeof(float) * (size_t)r->max_tokens * (size_t)hp->n_embd);
            if (!r->hidden_rows || !r->hidden) {
                free(r->hidden_rows);
                free(r->hidden);
                r->hidden_rows = NULL;
                r->hidden = NULL;
                return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory for the runner's hidden states");
            }
        }
        want_layers |= seqs[s].wants_layers && seqs[s].wants_logits;
    }
    if (want_layers && !r->layers &&
        !(r->layers = malloc(sizeof(float) * (size_t)r->max_logits * (size_t)hp->n_layer * (size_t)hp->n_embd)))
        return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory for the runner's layer states");
    r->query_start[0] = 0;
    for (int32_t s = 0; s < n_seqs; s++) {
        const runner_seq *q = &seqs[s];
        int32_t end = q->n_computed + q->n_new;
        if (n_tokens + q->n_new > r->max_tokens || q->n_blocks > r->max_blocks_per_seq ||
            (int64_t)q->n_blocks * block_size < end || q->n_new < 1 || q->n_logits > q->n_new)
            return error_set(PAGODA_ERR_INVALID_ARGUMENT, "runner: sequence %d does not fit the step's limits "
                             "(%d new tokens, %d blocks)", s, q->n_new, q->n_blocks);
        for (int32_t p = q->n_computed; p < end; p++, n_tokens++) {
            if (q->wants_hidden) r->hidden_rows[n_hidden++] = n_tokens;
            r->tokens[n_tokens] = q->tokens[p];
            r->positions[n_tokens] = p;
            r->slots[n_tokens] = q->blocks[p / block_size] * block_size + p % block_size;
            r->decode_rows[n_tokens] = p >= q->n_prompt;
        }
        r->query_start[s + 1] = n_tokens;
        r->seq_lens[s] = end;
        memcpy(r->block_tables + (size_t)s * (size_t)r->max_blocks_per_seq, q->blocks,
               sizeof(int32_t) * (size_t)q->n_blocks);
        if (q->n_logits > 0)
            for (int32_t i = q->n_logits; i >= 1; i--) r->logit_rows[n_logits++] = n_tokens - i;
        else if (q->wants_logits)
            r->logit_rows[n_logits++] = n_tokens - 1;
    }
    model_batch batch = {
        .n_tokens = n_tokens, .tokens = r->tokens, .positions = r->positions, .slot_mapping = r->slots,
        .n_seqs = n_seqs, .query_start = r->query_start, .seq_lens = r->seq_lens, .block_tables = r->block_tables,
        .max_blocks_per_seq = r->max_blocks_per_seq, .n_logits = n_logits, .logit_rows = r->logit_rows,
        .n_hidden = n_hidden, .hidden_rows = r->hidden_rows, .hidden_out = n_hidden ? r->hidden : NULL,
        .layers_out = want_layers ? r->layers : NULL,
        .decode_rows = r->decode_rows,
    };
    pagoda_status st = model_forward(r->m, r->be, r->kv, r->ws, &batch);
    if (st) return st;
    r->has_hidden = n_hidden > 0;
    r->has_layers = want_layers;
    *out_logits = r->ws->logits;
    return PAGODA_OK;
}

const float *runner_hidden(const runner *r) { return r->has_hidden ? r->hidden : NULL; }
const float *runner_layers(const runner *r) { return r->has_layers ? r->layers : NULL; }
