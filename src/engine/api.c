/* engine/api.c - the public API of include/pagoda.h for one sequence at a time: model loading,
 * tokens, chat rendering and generation with streamed, UTF-8-whole text.
 *
 * The model owns one model_context; pagoda_generate keeps the tokens the cache holds and reuses the
 * longest common prefix with the next prompt (a chat's history is computed once).
 * TODO(issue 3): the paged, batched engine replaces this single-sequence path.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/cpu/cpu_backend.h" /* defines: cpu_backend_init */
#include "core/error.h"              /* defines: error_set */
#include "model/model.h"             /* defines: model, model_context, model_eval */
#include "sample/sampler.h"          /* defines: sampler_init, sampler_sample */
#include "vocab/chat_template.h"     /* defines: chat_template_init, chat_template_apply */
#include "vocab/vocab.h"             /* defines: vocab_load, vocab_encode, vocab_token_to_piece */

struct pagoda_model {
    model *weights;
    vocab *vocab;
    chat_template *chat;     /* NULL when no template could be set up */
    char *chat_error;        /* why not, for pagoda_chat_render */
    backend *be;
    model_context *ctx;
    int32_t *cached;         /* [ctx->n_ctx] the tokens whose K/V the cache holds, n_cached of them */
    int32_t n_cached;
    char *name;
};

pagoda_model_params pagoda_model_params_default(void) { return (pagoda_model_params){0, 0, 0}; }

pagoda_sampling_params pagoda_sampling_params_default(void) {
    return (pagoda_sampling_params){.temperature = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f,
                                    .seed = 0, .max_tokens = -1, .ignore_eos = false};
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
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

pagoda_status pagoda_model_load(const char *path, const pagoda_model_params *params, pagoda_model **out) {
    *out = NULL;
    pagoda_model_params defaults = pagoda_model_params_default();
    if (!params) params = &defaults;
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
    int64_t max_cols = hp->n_ff > hp->n_embd ? hp->n_ff : hp->n_embd;
    if (hp->n_head * hp->head_dim > max_cols) max_cols = (int64_t)hp->n_head * hp->head_dim;
    if ((st = vocab_load(file, &pm->vocab)) ||
        (st = cpu_backend_init(params->n_threads, max_cols, &pm->be)) ||
        (st = model_context_init(pm->weights, pm->be, params->n_ctx, params->n_batch, &pm->ctx)))
        goto fail;
    if (vocab_n_tokens(pm->vocab) != hp->n_vocab) {
        st = error_set(PAGODA_ERR_FORMAT, "%s: the tokenizer has %d tokens but the embedding matrix has %d rows",
                       path, vocab_n_tokens(pm->vocab), hp->n_vocab);
        goto fail;
    }
    pm->cached = malloc((size_t)pm->ctx->n_ctx * sizeof *pm->cached);
    pm->name = gguf_get_str_dup(file, "general.name");
    if (!pm->cached) {
        st = error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory");
        goto fail;
    }
    init_chat(pm, file);
    *out = pm;
    return PAGODA_OK;
fail:
    pagoda_model_free(pm);
    return st;
}

void pagoda_model_free(pagoda_model *pm) {
    if (!pm) return;
    model_context_free(pm->ctx);
    if (pm->be) pm->be->free(pm->be);
    chat_template_free(pm->chat);
    free(pm->chat_error);
    vocab_free(pm->vocab);
    model_free(pm->weights);
    free(pm->cached);
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
        .n_ctx_train = hp->n_ctx_train, .n_ctx = pm->ctx->n_ctx, .n_embd = hp->n_embd, .n_layer = hp->n_layer,
        .n_head = hp->n_head, .n_head_kv = hp->n_head_kv, .n_threads = pm->be->n_threads(pm->be),
        .n_params = n_params, .file_bytes = gguf_file_bytes(pm->weights->file),
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

/* Bytes of `buf` that form whole UTF-8 characters; a trailing incomplete sequence is held back
 * (invalid bytes are passed through so nothing is held forever). */
static size_t utf8_complete_prefix(const char *buf, size_t n) {
    size_t i = n, back = 0;
    while (i > 0 && back < 4 && ((unsigned char)buf[i - 1] & 0xC0) == 0x80) i--, back++;
    if (i == 0) return back >= 4 ? n : 0;
    unsigned char lead = (unsigned char)buf[i - 1];
    size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    if (lead < 0x80 || lead >= 0xF8) return n;
    return back + 1 >= need ? n : i - 1;
}

typedef struct text_stream {
    char pending[16]; /* bytes not yet emitted: an incomplete UTF-8 sequence (< 4) */
    size_t n_pending;
    char *buf;        /* piece buffer, grown as needed */
    size_t buf_bytes;
} text_stream;

/* Appends a token's bytes and calls back with whatever is now whole. */
static bool stream_token(text_stream *ts, const vocab *v, int32_t token, pagoda_token_callback cb, void *user) {
    int32_t n = vocab_token_to_piece(v, token, ts->buf, ts->buf_bytes, false);
    if (n > (int32_t)ts->buf_bytes) {
        char *grown = realloc(ts->buf, (size_t)n);
        if (!grown) return cb ? cb(user, token, "", 0) : true;
        ts->buf = grown;
        ts->buf_bytes = (size_t)n;
        n = vocab_token_to_piece(v, token, ts->buf, ts->buf_bytes, false);
    }
    if (n < 0) n = 0;
    size_t total = ts->n_pending + (size_t)n;
    char *joined = malloc(total + 1);
    if (!joined) return cb ? cb(user, token, "", 0) : true;
    memcpy(joined, ts->pending, ts->n_pending);
    memcpy(joined + ts->n_pending, ts->buf, (size_t)n);
    size_t whole = utf8_complete_prefix(joined, total);
    ts->n_pending = total - whole;
    if (ts->n_pending > 8) { /* cannot happen with valid pieces; flush anyway */
        whole = total;
        ts->n_pending = 0;
    }
    memcpy(ts->pending, joined + whole, ts->n_pending);
    joined[whole] = '\0';
    bool keep_going = cb ? cb(user, token, joined, whole) : true;
    free(joined);
    return keep_going;
}

pagoda_status pagoda_generate(pagoda_model *pm, const int32_t *prompt, size_t n_prompt,
                              const pagoda_sampling_params *params, pagoda_token_callback callback, void *user,
                              pagoda_generation_stats *stats) {
    pagoda_generation_stats local = {0};
    if (!stats) stats = &local;
    *stats = (pagoda_generation_stats){.n_prompt = (int32_t)n_prompt};
    model_context *ctx = pm->ctx;
    if (n_prompt == 0) return error_set(PAGODA_ERR_INVALID_ARGUMENT, "the prompt is empty");
    if (n_prompt > (size_t)ctx->n_ctx)
        return error_set(PAGODA_ERR_CONTEXT_FULL, "the prompt has %zu tokens but the context holds %d "
                         "(raise it with -c, up to the model's %d)", n_prompt, ctx->n_ctx,
                         pm->weights->hp.n_ctx_train);
    sampler_params sp = {params->temperature, params->top_k, params->top_p, params->min_p, params->seed};
    sampler *smp;
    pagoda_status st = sampler_init(&sp, pm->weights->hp.n_vocab, &smp);
    if (st) return st;

    /* Reuse the cached prefix; always recompute at least the last prompt token for its logits. */
    int32_t reuse = 0;
    while (reuse < pm->n_cached && (size_t)reuse + 1 < n_prompt && pm->cached[reuse] == prompt[reuse]) reuse++;
    ctx->n_past = reuse;
    pm->n_cached = reuse;
    double t0 = now_seconds();
    const float *logits;
    st = model_eval(ctx, prompt + reuse, (int32_t)(n_prompt - (size_t)reuse), false, &logits);
    stats->prompt_seconds = now_seconds() - t0;
    if (st) {
        pm->n_cached = 0;
        sampler_free(smp);
        return st;
    }
    memcpy(pm->cached + reuse, prompt + reuse, (n_prompt - (size_t)reuse) * sizeof *prompt);
    pm->n_cached = (int32_t)n_prompt;
    stats->n_prompt_computed = (int32_t)n_prompt - reuse;

    text_stream ts = {.buf_bytes = 256};
    ts.buf = malloc(ts.buf_bytes);
    if (!ts.buf) {
        sampler_free(smp);
        return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory");
    }
    double t1 = now_seconds();
    stats->finish_reason = PAGODA_FINISH_LENGTH;
    for (;;) {
        if (params->max_tokens >= 0 && stats->n_generated >= params->max_tokens) break;
        int32_t token = sampler_sample(smp, logits);
        if (!params->ignore_eos && vocab_is_eog(pm->vocab, token)) {
            stats->finish_reason = PAGODA_FINISH_STOP;
            break;
        }
        stats->n_generated++;
        if (!stream_token(&ts, pm->vocab, token, callback, user)) {
            stats->finish_reason = PAGODA_FINISH_CANCELLED;
            break;
        }
        if (pm->n_cached >= ctx->n_ctx) break; /* full: finish with LENGTH */
        if ((st = model_eval(ctx, &token, 1, false, &logits))) break;
        pm->cached[pm->n_cached++] = token;
    }
    if (!st && ts.n_pending && callback) { /* flush bytes that never completed a character */
        ts.pending[ts.n_pending] = '\0';
        callback(user, -1, ts.pending, ts.n_pending);
    }
    stats->generation_seconds = now_seconds() - t1;
    free(ts.buf);
    sampler_free(smp);
    return st;
}
