/* model/llama.c - the llama-family forward pass (Llama 2/3, SmolLM2, Mistral, Qwen2) over a
 * flattened batch of sequences and the paged K/V cache, written against the backend interface.
 *
 * Per block:  xn = rmsnorm(x);  q,k,v = xn Wq,Wk,Wv (+ biases);  rope(q, k);  write k, v to their
 *             slots;  x += paged_attention(q) Wo;  xn = rmsnorm(x);  x += (silu(xn Wg) * (xn Wu)) Wd
 * then logits = rmsnorm(x[rows]) Wout for the rows that need them.
 * Every token row is computed the same way whatever else is in the batch.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h" /* defines: DTYPE_F32, DTYPE_F16, DTYPE_BF16 */
#include "core/error.h" /* defines: error_set */
#include "model/model.h"

/* ---- K/V cache data ---------------------------------------------------------------------------- */
size_t model_kv_block_bytes(const model *m, uint32_t type, int32_t block_size) {
    const model_hparams *hp = &m->hp;
    return 2 * (size_t)hp->n_layer * (size_t)block_size * (size_t)hp->n_head_kv * (size_t)hp->head_dim *
           kv_cache_elem_bytes(type);
}

pagoda_status model_kv_cache_init(const model *m, uint32_t type, int32_t block_size, int64_t n_blocks,
                                  model_kv_cache **out) {
    *out = NULL;
    const model_hparams *hp = &m->hp;
    if (kv_cache_elem_bytes(type) == 0)
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "KV cache type must be F16, BF16 or F32");
    if (block_size < 1 || block_size > 1024 || n_blocks < 1)
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "bad KV cache geometry: %lld blocks of %d tokens",
                         (long long)n_blocks, block_size);
    model_kv_cache *kv = calloc(1, sizeof *kv);
    if (!kv) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory for the KV cache");
    size_t layer_bytes = (size_t)n_blocks * (size_t)block_size * (size_t)hp->n_head_kv * (size_t)hp->head_dim *
                         kv_cache_elem_bytes(type);
    kv->k = calloc((size_t)hp->n_layer, sizeof *kv->k);
    kv->v = calloc((size_t)hp->n_layer, sizeof *kv->v);
    bool failed = !kv->k || !kv->v;
    kv->view.n_layer = failed ? 0 : hp->n_layer; /* what model_kv_cache_free walks */
    for (int il = 0; il < hp->n_layer && !failed; il++) {
        kv->k[il] = calloc(1, layer_bytes); /* pages are committed as blocks get used */
        kv->v[il] = calloc(1, layer_bytes);
        failed = !kv->k[il] || !kv->v[il];
    }
    kv->bytes = 2 * layer_bytes * (size_t)hp->n_layer;
    if (failed) {
        model_kv_cache_free(kv);
        return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory for a KV cache of %.1f MiB (%lld blocks of %d tokens)",
                         2.0 * (double)layer_bytes * hp->n_layer / (1024.0 * 1024.0), (long long)n_blocks, block_size);
    }
    kv->view = (kv_cache_view){.k = kv->k, .v = kv->v, .type = type, .n_layer = hp->n_layer, .n_blocks = n_blocks,
                               .block_size = block_size, .n_kv_head = hp->n_head_kv, .head_dim = hp->head_dim};
    *out = kv;
    return PAGODA_OK;
}

void model_kv_cache_free(model_kv_cache *kv) {
    if (!kv) return;
    for (int il = 0; il < kv->view.n_layer; il++) {
        if (kv->k) free(kv->k[il]);
        if (kv->v) free(kv->v[il]);
    }
    free(kv->k);
    free(kv->v);
    free(kv);
}

/* ---- Activation workspace ------------------------------------------------------------------------ */
static void *alloc_floats(int64_t n, bool *failed) {
    void *p = calloc((size_t)n, sizeof(float));
    if (!p) *failed = true;
    return p;
}

pagoda_status model_workspace_init(const model *m, int32_t max_tokens, int32_t max_logits, model_workspace **out) {
    *out = NULL;
    const model_hparams *hp = &m->hp;
    if (max_tokens < 1 || max_logits < 1)
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "workspace limits must be positive");
    model_workspace *ws = calloc(1, sizeof *ws);
    if (!ws) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory for the workspace");
    int64_t n_q = (int64_t)hp->n_head * hp->head_dim, n_kv = (int64_t)hp->n_head_kv * hp->head_dim;
    bool failed = false;
    ws->max_tokens = max_tokens;
    ws->max_logits = max_logits;
    ws->x = alloc_floats((int64_t)max_tokens * hp->n_embd, &failed);
    ws->xn = alloc_floats((int64_t)max_tokens * hp->n_embd, &failed);
    ws->q = alloc_floats((int64_t)max_tokens * n_q, &failed);
    ws->k = alloc_floats((int64_t)max_tokens * n_kv, &failed);
    ws->v = alloc_floats((int64_t)max_tokens * n_kv, &failed);
    ws->attn = alloc_floats((int64_t)max_tokens * n_q, &failed);
    ws->gate = alloc_floats((int64_t)max_tokens * hp->n_ff, &failed);
    ws->up = alloc_floats((int64_t)max_tokens * hp->n_ff, &failed);
    ws->rows = alloc_floats((int64_t)max_logits * hp->n_embd, &failed);
    ws->logits = alloc_floats((int64_t)max_logits * hp->n_vocab, &failed);
    if (!failed && !(ws->logit_decode_rows = calloc((size_t)max_logits, 1))) failed = true;
    if (failed) {
        model_workspace_free(ws);
        return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory for activations of %d tokens", max_tokens);
    }
    *out = ws;
    return PAGODA_OK;
}

void model_workspace_free(model_workspace *ws) {
    if (!ws) return;
    free(ws->x);
    free(ws->xn);
    free(ws->q);
    free(ws->k);
    free(ws->v);
    free(ws->attn);
    free(ws->gate);
    free(ws->up);
    free(ws->rows);
    free(ws->logits);
    free(ws->logit_decode_rows);
    free(ws);
}

/* ---- The forward pass ---------------------------------------------------------------------------- */
/* y = x W^T with the kernel family chosen per token when the batch says which tokens decode. */
static void matmul(backend *be, const backend_matrix *w, const float *x, float *y, int64_t n_tokens,
                   const uint8_t *decode_rows) {
    if (decode_rows && be->matmul_rows) be->matmul_rows(be, w, x, y, n_tokens, decode_rows);
    else be->matmul(be, w, x, y, n_tokens);
}

/* Several products of one input (Q, K, V; gate, up): one backend call where it has matmul_many. */
static void matmul_many(backend *be, int n, const backend_matrix *const *w, const float *x, float *const *y,
                        int64_t n_tokens, const uint8_t *decode_rows) {
    if (be->matmul_many) be->matmul_many(be, n, w, x, y, n_tokens, decode_rows);
    else for (int i = 0; i < n; i++) matmul(be, w[i], x, y[i], n_tokens, decode_rows);
}

static void add_bias(backend *be, float *y, const float *bias, int64_t n_tokens, int64_t dim) {
    if (!bias) return;
    for (int64_t t = 0; t < n_tokens; t++) be->add(be, y + t * dim, bias, dim);
}

pagoda_status model_forward(const model *m, backend *be, const model_kv_cache *kv, model_workspace *ws,
                            const model_batch *b) {
    const model_hparams *hp = &m->hp;
    int32_t n = b->n_tokens;
    if (n < 1 || n > ws->max_tokens || b->n_logits > ws->max_logits || b->n_logits < 0)
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "batch of %d tokens / %d logit rows exceeds the workspace "
                         "(%d / %d)", n, b->n_logits, ws->max_tokens, ws->max_logits);
    for (int32_t i = 0; i < n; i++)
        if (b->tokens[i] < 0 || b->tokens[i] >= hp->n_vocab)
            return error_set(PAGODA_ERR_INVALID_ARGUMENT, "token id %d is out of range (vocabulary of %d)",
                             b->tokens[i], hp->n_vocab);
    int64_t n_q = (int64_t)hp->n_head * hp->head_dim, n_kv = (int64_t)hp->n_head_kv * hp->head_dim;
    rope_params rope = {hp->rope, hp->n_rot, m->rope_inv_freq};
    be->get_rows(be, &m->tok_embd, b->tokens, n, ws->x);

    for (int il = 0; il < hp->n_layer; il++) {
        const model_layer *l = &m->layers[il];
        if (b->layers_out) /* the residual stream entering layer il, for each logit row */
            for (int32_t i = 0; i < b->n_logits; i++)
                memcpy(b->layers_out + ((int64_t)i * hp->n_layer + il) * hp->n_embd,
                       ws->x + (int64_t)b->logit_rows[i] * hp->n_embd, sizeof(float) * (size_t)hp->n_embd);
        be->rmsnorm(be, ws->x, l->attn_norm, ws->xn, n, hp->n_embd, hp->rms_eps);
        const backend_matrix *qkv[3] = {&l->wq, &l->wk, &l->wv};
        float *qkv_out[3] = {ws->q, ws->k, ws->v};
        matmul_many(be, 3, qkv, ws->xn, qkv_out, n, b->decode_rows);
        add_bias(be, ws->q, l->bq, n, n_q);
        add_bias(be, ws->k, l->bk, n, n_kv);
        add_bias(be, ws->v, l->bv, n, n_kv);
        be->rope(be, ws->q, b->positions, n, hp->n_head, hp->head_dim, &rope);
        be->rope(be, ws->k, b->positions, n, hp->n_head_kv, hp->head_dim, &rope);
        be->kv_write(be, &kv->view, il, ws->k, ws->v, b->slot_mapping, n);

        paged_attention_args args = {
            .q = ws->q, .out = ws->attn, .k_cache = kv->k[il], .v_cache = kv->v[il], .cache_type = kv->view.type,
            .n_seqs = b->n_seqs, .query_start = b->query_start, .seq_lens = b->seq_lens,
            .block_tables = b->block_tables, .max_blocks_per_seq = b->max_blocks_per_seq,
            .block_size = kv->view.block_size, .n_head = hp->n_head, .n_kv_head = hp->n_head_kv,
            .head_dim = hp->head_dim, .scale = 1.0f / sqrtf((float)hp->head_dim),
        };
        be->paged_attention(be, &args);
        matmul(be, &l->wo, ws->attn, ws->xn, n, b->decode_rows);
        be->add(be, ws->x, ws->xn, (int64_t)n * hp->n_embd);

        be->rmsnorm(be, ws->x, l->ffn_norm, ws->xn, n, hp->n_embd, hp->rms_eps);
        const backend_matrix *gate_up[2] = {&l->w_gate, &l->w_up};
        float *gate_up_out[2] = {ws->gate, ws->up};
        matmul_many(be, 2, gate_up, ws->xn, gate_up_out, n, b->decode_rows);
        be->swiglu(be, ws->gate, ws->up, (int64_t)n * hp->n_ff);
        matmul(be, &l->w_down, ws->gate, ws->xn, n, b->decode_rows);
        be->add(be, ws->x, ws->xn, (int64_t)n * hp->n_embd);
    }
    if (b->n_hidden > 0 && b->hidden_out) { /* final-normed states of the requested rows */
        for (int32_t i = 0; i < b->n_hidden; i++)
            memcpy(b->hidden_out + (int64_t)i * hp->n_embd, ws->x + (int64_t)b->hidden_rows[i] * hp->n_embd,
                   sizeof(float) * (size_t)hp->n_embd);
        be->rmsnorm(be, b->hidden_out, m->output_norm, b->hidden_out, b->n_hidden, hp->n_embd, hp->rms_eps);
    }
    if (b->n_logits == 0) return PAGODA_OK;
    for (int32_t i = 0; i < b->n_logits; i++)
        memcpy(ws->rows + (int64_t)i * hp->n_embd, ws->x + (int64_t)b->logit_rows[i] * hp->n_embd,
               sizeof(float) * (size_t)hp->n_embd);
    be->rmsnorm(be, ws->rows, m->output_norm, ws->rows, b->n_logits, hp->n_embd, hp->rms_eps);
    const uint8_t *logit_decode_rows = NULL;
    if (b->decode_rows) {
        for (int32_t i = 0; i < b->n_logits; i++) ws->logit_decode_rows[i] = b->decode_rows[b->logit_rows[i]];
        logit_decode_rows = ws->logit_decode_rows;
    }
    matmul(be, &m->output, ws->rows, ws->logits, b->n_logits, logit_decode_rows);
    return PAGODA_OK;
}

void model_lm_head(const model *m, backend *be, const float *x, int32_t n_rows, float *logits) {
    be->matmul(be, &m->output, x, logits, n_rows);
}

/* ---- One sequence -------------------------------------------------------------------------------- */
enum { CONTEXT_BLOCK_SIZE = 16 };

pagoda_status model_context_init(const model *m, backend *be, int32_t n_ctx, int32_t n_batch,
                                 model_context **out) {
    *out = NULL;
    const model_hparams *hp = &m->hp;
    if (n_ctx <= 0) n_ctx = hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096;
    if (n_batch <= 0) n_batch = 512;
    if (n_batch > n_ctx) n_batch = n_ctx;
    if (n_ctx > (1 << 24))
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "context of %d tokens is too large", n_ctx);
    model_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory for the context");
    ctx->m = m;
    ctx->be = be;
    ctx->n_ctx = n_ctx;
    ctx->n_batch = n_batch;
    int32_t n_blocks = (n_ctx + CONTEXT_BLOCK_SIZE - 1) / CONTEXT_BLOCK_SIZE;
    pagoda_status st;
    if ((st = model_kv_cache_init(m, DTYPE_F32, CONTEXT_BLOCK_SIZE, n_blocks, &ctx->kv)) ||
        (st = model_workspace_init(m, n_batch, n_batch, &ctx->ws))) {
        model_context_free(ctx);
        return st;
    }
    ctx->block_table = malloc((size_t)n_blocks * sizeof(int32_t));
    ctx->positions = malloc((size_t)n_batch * sizeof(int32_t));
    ctx->slots = malloc((size_t)n_batch * sizeof(int32_t));
    ctx->rows = malloc((size_t)n_batch * sizeof(int32_t));
    if (!ctx->block_table || !ctx->positions || !ctx->slots || !ctx->rows) {
        model_context_free(ctx);
        return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory for the context");
    }
    for (int32_t i = 0; i < n_blocks; i++) ctx->block_table[i] = i;
    for (int32_t i = 0; i < n_batch; i++) ctx->rows[i] = i;
    *out = ctx;
    return PAGODA_OK;
}

void model_context_free(model_context *ctx) {
    if (!ctx) return;
    model_kv_cache_free(ctx->kv);
    model_workspace_free(ctx->ws);
    free(ctx->block_table);
    free(ctx->positions);
    free(ctx->slots);
    free(ctx->rows);
    free(ctx);
}

void model_context_reset(model_context *ctx) { ctx->n_past = 0; }

pagoda_status model_eval(model_context *ctx, const int32_t *tokens, int32_t n_tokens, bool all_logits,
                         const float **out_logits) {
    *out_logits = NULL;
    if (n_tokens < 1) return error_set(PAGODA_ERR_INVALID_ARGUMENT, "nothing to evaluate (0 tokens)");
    if (all_logits && n_tokens > ctx->n_batch)
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "all-position logits for %d tokens exceed the batch of %d",
                         n_tokens, ctx->n_batch);
    if ((int64_t)ctx->n_past + n_tokens > ctx->n_ctx)
        return error_set(PAGODA_ERR_CONTEXT_FULL, "%d tokens do not fit in the context: %d of %d positions are "
                         "used (raise the context size with -c)", n_tokens, ctx->n_past, ctx->n_ctx);
    for (int32_t done = 0; done < n_tokens;) {
        int32_t n = n_tokens - done < ctx->n_batch ? n_tokens - done : ctx->n_batch;
        for (int32_t i = 0; i < n; i++) ctx->positions[i] = ctx->slots[i] = ctx->n_past + i;
        bool last = done + n == n_tokens;
        int32_t seq_len = ctx->n_past + n, query_start[2] = {0, n};
        model_batch batch = {
            .n_tokens = n, .tokens = tokens + done, .positions = ctx->positions, .slot_mapping = ctx->slots,
            .n_seqs = 1, .query_start = query_start, .seq_lens = &seq_len, .block_tables = ctx->block_table,
            .max_blocks_per_seq = (ctx->n_ctx + CONTEXT_BLOCK_SIZE - 1) / CONTEXT_BLOCK_SIZE,
            .n_logits = !last ? 0 : all_logits ? n : 1, .logit_rows = all_logits ? ctx->rows : ctx->rows + n - 1,
        };
        pagoda_status st = model_forward(ctx->m, ctx->be, ctx->kv, ctx->ws, &batch);
        if (st) return st;
        ctx->n_past += n;
        done += n;
    }
    *out_logits = ctx->ws->logits;
    return PAGODA_OK;
}
