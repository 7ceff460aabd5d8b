/* engine/api.c - the public API of include/pagoda.h around the engine: model loading (weights,
 * tokenizer, chat template, engine), tokens, chat rendering, and pagoda_generate, the one-request
 * loop over pagoda_add_request / pagoda_step with streamed, UTF-8-whole text.
 * Requests, steps and aborts are in engine.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/cpu/cpu_backend.h" /* defines: cpu_backend_init */
#include "core/error.h"              /* defines: error_set */
#include "engine/engine_internal.h"  /* defines: struct pagoda_model, engine_init */

pagoda_model_params pagoda_model_params_default(void) { return (pagoda_model_params){0}; }

pagoda_sampling_params pagoda_sampling_params_default(void) {
    return (pagoda_sampling_params){.temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f,
                                    .seed = 0, .max_tokens = -1, .ignore_eos = false, .n = 1,
                                    .typical_p = 1.0f, .repetition_penalty = 1.0f, .length_penalty = 1.0f};
}

/* The model's own template when it has one (falling back to a built-in for its family when the
 * template uses Jinja that Pagoda does not run), else the family's built-in. */
static void init_chat(pagoda_model *pm, const gguf_file *file) {
    char *source = gguf_get_str_dup(file, "tokenizer.chat_template");
    const char *bos = vocab_bos(pm->vocab) >= 0 ? vocab_token_text(pm->vocab, vocab_bos(pm->vocab)) : "";
    const char *eos = vocab_eos(pm->vocab) >= 0 ? vocab_token_text(pm->vocab, vocab_eos(pm->vocab)) : "";
    pagoda_status st = chat_template_init_auto(source, bos, eos, &pm->chat);
    if (st != PAGODA_OK) {
        pm->chat_error = strdup(pagoda_last_error());
        pm->chat = NULL;
    }
    free(source);
}

/* Fills in the defaults of zero fields. */
static pagoda_model_params resolve_params(const pagoda_model_params *in, const model_hparams *hp) {
    pagoda_model_params p = *in;
    if (p.n_ctx <= 0) p.n_ctx = hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096;
    if (p.n_batch <= 0) p.n_batch = 512;
    if (p.max_seqs <= 0) p.max_seqs = 64;
    if (p.kv_cache_fraction <= 0) p.kv_cache_fraction = 0.25f;
    if (p.kv_block_size <= 0) p.kv_block_size = 16;
    return p;
}

pagoda_status pagoda_model_load(const char *path, const pagoda_model_params *params, pagoda_model **out) {
    *out = NULL;
    pagoda_model_params defaults = pagoda_model_params_default();
    if (!params) params = &defaults;
    if (params->n_ctx > (1 << 24) || params->n_batch > (1 << 16) || params->max_seqs > 4096 ||
        params->kv_block_size > 1024)
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "model parameters out of range (context %d, batch %d, "
                         "max-seqs %d, block size %d)", params->n_ctx, params->n_batch, params->max_seqs,
                         params->kv_block_size);
    pagoda_model *pm = calloc(1, sizeof *pm);
    if (!pm) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory for the model");
    gguf_file *file;
    pagoda_status st = gguf_open(path, &file);
    if (st) {
        free(pm);
        return st;
    }
    if ((st = model_load_gguf(file, &pm->weights))) {
        gguf_close(file);
        free(pm);
        return st;
    }
    const model_hparams *hp = &pm->weights->hp;
    pm->params = resolve_params(params, hp);
    int64_t max_cols = hp->n_ff > hp->n_embd ? hp->n_ff : hp->n_embd;
    if (hp->n_head * hp->head_dim > max_cols) max_cols = (int64_t)hp->n_head * hp->head_dim;
    if ((st = vocab_load(file, &pm->vocab))) goto fail;
    if (vocab_n_tokens(pm->vocab) != hp->n_vocab) {
        st = error_set(PAGODA_ERR_FORMAT, "%s: the tokenizer has %d tokens but the embedding matrix has %d rows",
                       path, vocab_n_tokens(pm->vocab), hp->n_vocab);
        goto fail;
    }
    paged_attention_limits limits = {.max_seqs = pm->params.max_seqs, .max_n_head = hp->n_head,
                                     .max_head_dim = hp->head_dim};
    if ((st = cpu_backend_init(params->n_threads, max_cols, &limits, &pm->be)) || (st = engine_init(pm))) goto fail;
    pm->name = gguf_get_str_dup(file, "general.name");
    init_chat(pm, file);
    *out = pm;
    return PAGODA_OK;
fail:
    pagoda_model_free(pm);
    return st;
}

void pagoda_model_free(pagoda_model *pm) {
    if (!pm) return;
    if (pm->sched) engine_free(pm);
    if (pm->be) pm->be->free(pm->be);
    chat_template_free(pm->chat);
    free(pm->chat_error);
    vocab_free(pm->vocab);
    model_free(pm->weights);
    free(pm->name);
    free(pm);
}

void pagoda_model_get_info(const pagoda_model *pm, pagoda_model_info *out) {
    const model_hparams *hp = &pm->weights->hp;
    int64_t n_params = 0;
    for (int64_t i = 0; i < gguf_n_tensors(pm->weights->file); i++)
        n_params += gguf_tensor_at(pm->weights->file, i)->n_elems;
    *out = (pagoda_model_info){
        .architecture = hp->arch_name, .name = pm->name ? pm->name : "", .n_vocab = hp->n_vocab,
        .n_ctx_train = hp->n_ctx_train, .n_ctx = pm->params.n_ctx, .n_embd = hp->n_embd, .n_layer = hp->n_layer,
        .n_head = hp->n_head, .n_head_kv = hp->n_head_kv, .n_threads = pm->be->n_threads(pm->be),
        .n_params = n_params, .file_bytes = gguf_file_bytes(pm->weights->file),
        .kv_blocks = pm->kv ? pm->kv->view.n_blocks : 0, .kv_block_size = pm->params.kv_block_size,
        .kv_bytes = pm->kv ? pm->kv->bytes : 0,
        .kv_type = pm->params.kv_type == PAGODA_KV_F32 ? "F32" : pm->params.kv_type == PAGODA_KV_BF16 ? "BF16" : "F16",
    };
}

pagoda_status pagoda_tokenize(const pagoda_model *pm, const char *text, size_t len, bool add_special,
                              bool parse_special, int32_t **out_ids, size_t *out_n) {
    return vocab_encode(pm->vocab, text, len, add_special, parse_special, out_ids, out_n);
}

pagoda_status pagoda_detokenize(const pagoda_model *pm, const int32_t *ids, size_t n_ids, bool render_special,
                                char **out_text, size_t *out_len) {
    return vocab_decode(pm->vocab, ids, n_ids, render_special, out_text, out_len);
}

bool pagoda_token_is_eog(const pagoda_model *pm, int32_t token) { return vocab_is_eog(pm->vocab, token); }

pagoda_status pagoda_chat_render(const pagoda_model *pm, const pagoda_chat_message *messages, size_t n_messages,
                                 bool add_generation_prompt, char **out_text) {
    *out_text = NULL;
    if (!pm->chat)
        return error_set(PAGODA_ERR_UNSUPPORTED, "this model has no usable chat template: %s",
                         pm->chat_error ? pm->chat_error : "none found");
    return chat_template_apply(pm->chat, (const chat_message *)messages, n_messages, add_generation_prompt,
                               out_text);
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

pagoda_status pagoda_generate(pagoda_model *pm, const int32_t *prompt, size_t n_prompt,
                              const pagoda_sampling_params *params, pagoda_token_callback callback, void *user,
                              pagoda_generation_stats *stats) {
    pagoda_generation_stats local = {0};
    if (!stats) stats = &local;
    *stats = (pagoda_generation_stats){.n_prompt = (int32_t)n_prompt};
    pagoda_sampling_params one = *params;
    one.n = 1;
    pagoda_request_id id;
    pagoda_status st = pagoda_add_request(pm, prompt, n_prompt, &one, 0, &id);
    if (st) return st;
    double t0 = now_seconds(), t_first = 0;
    bool done = false;
    while (!done) {
        const pagoda_output *outs;
        size_t n_outs;
        st = pagoda_step(pm, &outs, &n_outs);
        for (size_t i = 0; i < n_outs && !done; i++) {
            const pagoda_output *o = &outs[i];
            if (o->id != id) continue;
            if (o->n_tokens && t_first == 0) t_first = now_seconds();
            stats->n_generated = o->n_generated;
            stats->n_prompt_computed = (int32_t)n_prompt - o->n_cached_tokens;
            bool keep_going = true;
            for (size_t t = 0; t < o->n_tokens && callback; t++) /* text with the last token of the step */
                keep_going = callback(user, o->tokens[t], t + 1 == o->n_tokens ? o->text : "",
                                      t + 1 == o->n_tokens ? o->text_len : 0) && keep_going;
            if (!o->n_tokens && o->text_len && callback) callback(user, -1, o->text, o->text_len);
            if (o->finished) {
                done = true;
                stats->finish_reason = o->finish_reason;
                if (o->finish_reason == PAGODA_FINISH_ERROR && !st)
                    st = error_set(o->error_status ? o->error_status : PAGODA_ERR_INTERNAL, "%s",
                                   o->error_message ? o->error_message : "generation failed");
            } else if (!keep_going) {
                pagoda_abort(pm, id);
                done = true;
                stats->finish_reason = PAGODA_FINISH_CANCELLED;
            }
        }
        if (st && !done) {
            pagoda_abort(pm, id);
            break;
        }
    }
    double t_end = now_seconds();
    if (t_first == 0) t_first = t_end;
    stats->prompt_seconds = t_first - t0;
    stats->generation_seconds = t_end - t_first;
    return st;
}
