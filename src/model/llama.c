/* model/llama.c - the llama-family forward pass (Llama 2/3, SmolLM2, Mistral, Qwen2) over one
 * sequence with a contiguous KV cache, written against the backend interface.
 *
 * Per block:  xn = rmsnorm(x);  q,k,v = xn Wq,Wk,Wv (+ biases);  rope(q, k);  cache k, v;
 *             x += attention(q, K, V) Wo;  xn = rmsnorm(x);  x += (silu(xn Wg) * (xn Wu)) Wd
 * then logits = rmsnorm(x) Wout.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h" /* defines: error_set */
#include "model/model.h"

static void *alloc_floats(int64_t n, bool *failed) {
    void *p = calloc((size_t)n, sizeof(float));
    if (!p) *failed = true;
    return p;
}

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
    int64_t n_q = (int64_t)hp->n_head * hp->head_dim, n_kv = (int64_t)hp->n_head_kv * hp->head_dim;
    bool failed = false;
    /* calloc'd cache pages are only touched (committed) as positions fill up. */
    ctx->k_cache = alloc_floats((int64_t)hp->n_layer * n_ctx * n_kv, &failed);
    ctx->v_cache = alloc_floats((int64_t)hp->n_layer * n_ctx * n_kv, &failed);
    ctx->x = alloc_floats((int64_t)n_batch * hp->n_embd, &failed);
    ctx->xn = alloc_floats((int64_t)n_batch * hp->n_embd, &failed);
    ctx->q = alloc_floats((int64_t)n_batch * n_q, &failed);
    ctx->k = alloc_floats((int64_t)n_batch * n_kv, &failed);
    ctx->v = alloc_floats((int64_t)n_batch * n_kv, &failed);
    ctx->attn = alloc_floats((int64_t)n_batch * n_q, &failed);
    ctx->gate = alloc_floats((int64_t)n_batch * hp->n_ff, &failed);
    ctx->up = alloc_floats((int64_t)n_batch * hp->n_ff, &failed);
    ctx->logits = alloc_floats((int64_t)n_batch * hp->n_vocab, &failed);
    ctx->pos = calloc((size_t)n_batch, sizeof *ctx->pos);
    if (failed || !ctx->pos) {
        model_context_free(ctx);
        return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory for a context of %d tokens (KV cache %.1f MiB)",
                         n_ctx, 2.0 * hp->n_layer * n_ctx * n_kv * 4 / (1024.0 * 1024.0));
    }
    *out = ctx;
    return PAGODA_OK;
}

void model_context_free(model_context *ctx) {
    if (!ctx) return;
    free(ctx->k_cache);
    free(ctx->v_cache);
    free(ctx->x);
    free(ctx->xn);
    free(ctx->q);
    free(ctx->k);
    free(ctx->v);
    free(ctx->attn);
    free(ctx->gate);
    free(ctx->up);
    free(ctx->logits);
    free(ctx->pos);
    free(ctx);
}

void model_context_reset(model_context *ctx) { ctx->n_past = 0; }

static void add_bias(backend *be, float *y, const float *bias, int64_t n_tokens, int64_t dim) {
    if (!bias) return;
    for (int64_t t = 0; t < n_tokens; t++) be->add(be, y + t * dim, bias, dim);
}

/* Runs n tokens (n <= n_batch) at positions ctx->n_past.. through every block; leaves the
 * residual stream in ctx->x. */
static void forward_blocks(model_context *ctx, const int32_t *tokens, int32_t n) {
    const model *m = ctx->m;
    const model_hparams *hp = &m->hp;
    backend *be = ctx->be;
    int64_t n_q = (int64_t)hp->n_head * hp->head_dim, n_kv = (int64_t)hp->n_head_kv * hp->head_dim;
    for (int32_t i = 0; i < n; i++) ctx->pos[i] = ctx->n_past + i;
    rope_params rope = {hp->rope, hp->n_rot, m->rope_inv_freq};
    be->get_rows(be, &m->tok_embd, tokens, n, ctx->x);

    for (int il = 0; il < hp->n_layer; il++) {
        const model_layer *l = &m->layers[il];
        float *k_cache = ctx->k_cache + (int64_t)il * ctx->n_ctx * n_kv;
        float *v_cache = ctx->v_cache + (int64_t)il * ctx->n_ctx * n_kv;

        be->rmsnorm(be, ctx->x, l->attn_norm, ctx->xn, n, hp->n_embd, hp->rms_eps);
        be->matmul(be, &l->wq, ctx->xn, ctx->q, n);
        be->matmul(be, &l->wk, ctx->xn, ctx->k, n);
        be->matmul(be, &l->wv, ctx->xn, ctx->v, n);
        add_bias(be, ctx->q, l->bq, n, n_q);
        add_bias(be, ctx->k, l->bk, n, n_kv);
        add_bias(be, ctx->v, l->bv, n, n_kv);
        be->rope(be, ctx->q, ctx->pos, n, hp->n_head, hp->head_dim, &rope);
        be->rope(be, ctx->k, ctx->pos, n, hp->n_head_kv, hp->head_dim, &rope);
        memcpy(k_cache + (int64_t)ctx->n_past * n_kv, ctx->k, (size_t)(n * n_kv) * sizeof(float));
        memcpy(v_cache + (int64_t)ctx->n_past * n_kv, ctx->v, (size_t)(n * n_kv) * sizeof(float));

        backend_attention_args args = {
            .q = ctx->q, .k = k_cache, .v = v_cache, .out = ctx->attn, .q_pos = ctx->pos,
            .n_tokens = n, .n_kv = ctx->n_past + n, .n_head = hp->n_head, .n_kv_head = hp->n_head_kv,
            .head_dim = hp->head_dim, .scale = 1.0f / sqrtf((float)hp->head_dim),
        };
        be->attention(be, &args);
        be->matmul(be, &l->wo, ctx->attn, ctx->xn, n);
        be->add(be, ctx->x, ctx->xn, (int64_t)n * hp->n_embd);

        be->rmsnorm(be, ctx->x, l->ffn_norm, ctx->xn, n, hp->n_embd, hp->rms_eps);
        be->matmul(be, &l->w_gate, ctx->xn, ctx->gate, n);
        be->matmul(be, &l->w_up, ctx->xn, ctx->up, n);
        be->swiglu(be, ctx->gate, ctx->up, (int64_t)n * hp->n_ff);
        be->matmul(be, &l->w_down, ctx->gate, ctx->xn, n);
        be->add(be, ctx->x, ctx->xn, (int64_t)n * hp->n_embd);
    }
}

pagoda_status model_eval(model_context *ctx, const int32_t *tokens, int32_t n_tokens, bool all_logits,
                         const float **out_logits) {
    const model *m = ctx->m;
    const model_hparams *hp = &m->hp;
    backend *be = ctx->be;
    *out_logits = NULL;
    if (n_tokens < 1) return error_set(PAGODA_ERR_INVALID_ARGUMENT, "nothing to evaluate (0 tokens)");
    if (all_logits && n_tokens > ctx->n_batch)
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "all-position logits for %d tokens exceed the batch of %d",
                         n_tokens, ctx->n_batch);
    if ((int64_t)ctx->n_past + n_tokens > ctx->n_ctx)
        return error_set(PAGODA_ERR_CONTEXT_FULL, "%d tokens do not fit in the context: %d of %d positions are "
                         "used (raise the context size with -c)", n_tokens, ctx->n_past, ctx->n_ctx);
    for (int32_t i = 0; i < n_tokens; i++)
        if (tokens[i] < 0 || tokens[i] >= hp->n_vocab)
            return error_set(PAGODA_ERR_INVALID_ARGUMENT, "token id %d is out of range (vocabulary of %d)",
                             tokens[i], hp->n_vocab);
    for (int32_t done = 0; done < n_tokens;) {
        int32_t n = n_tokens - done < ctx->n_batch ? n_tokens - done : ctx->n_batch;
        forward_blocks(ctx, tokens + done, n);
        ctx->n_past += n;
        done += n;
        if (done == n_tokens) { /* the last piece: produce logits */
            int32_t first = all_logits ? 0 : n - 1, n_out = all_logits ? n : 1;
            float *x = ctx->x + (int64_t)first * hp->n_embd;
            be->rmsnorm(be, x, m->output_norm, ctx->xn, n_out, hp->n_embd, hp->rms_eps);
            be->matmul(be, &m->output, ctx->xn, ctx->logits, n_out);
        }
    }
    *out_logits = ctx->logits;
    return PAGODA_OK;
}
