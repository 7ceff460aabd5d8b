/* engine/engine.c - requests, steps and aborts: the only module that sees both the scheduler and
 * the runner. One step:
 *
 *   sched_schedule -> runner_run (one forward for every scheduled sequence) -> sched_update_computed
 *   -> for each sequence that reached the end of its tokens: sample, append, stream text, stop?
 *
 * With speculative decoding on (spec.h), drafts are appended to decoding sequences before
 * scheduling and verified, rolled back and emitted after the forward (spec_propose, spec_prepare,
 * spec_verify).
 *
 * A request with n > 1 samples runs as one sequence until its prompt is computed; then it forks
 * into n sequences sharing the prompt's blocks (the partial last block is copied on first write).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"            /* defines: DTYPE_F16, DTYPE_F32, DTYPE_BF16 */
#include "core/error.h"            /* defines: error_set */
#include "engine/engine_internal.h"
#include "engine/search.h"         /* defines: search_init, search_on_step, search_advance_all */

/* ---- Set-up ---------------------------------------------------------------------------------------- */
static int64_t available_memory_bytes(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    long long kb = 0;
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %lld kB", &kb) == 1) break;
    if (f) fclose(f);
    return kb > 0 ? (int64_t)kb * 1024 : (int64_t)4 << 30;
}

static uint32_t kv_dtype(pagoda_kv_type t) {
    return t == PAGODA_KV_F32 ? DTYPE_F32 : t == PAGODA_KV_BF16 ? DTYPE_BF16 : DTYPE_F16;
}

pagoda_status engine_init(pagoda_model *pm) {
    const pagoda_model_params *p = &pm->params;
    const model *m = pm->weights;
    uint32_t type = kv_dtype(p->kv_type);
    size_t block_bytes = model_kv_block_bytes(m, type, p->kv_block_size);
    int64_t blocks_per_seq = (p->n_ctx + p->kv_block_size - 1) / p->kv_block_size;
    int64_t n_blocks;
    if (p->kv_cache_bytes > 0) {
        n_blocks = p->kv_cache_bytes / (int64_t)block_bytes;
    } else { /* a share of what is free, but no more than every sequence at full length needs */
        n_blocks = (int64_t)((double)available_memory_bytes() * p->kv_cache_fraction) / (int64_t)block_bytes;
        if (n_blocks > blocks_per_seq * p->max_seqs) n_blocks = blocks_per_seq * p->max_seqs;
    }
    if (n_blocks < 1)
        return error_set(PAGODA_ERR_OUT_OF_MEMORY, "the KV cache budget (%lld bytes) is smaller than one block "
                         "(%zu bytes): give it more memory", (long long)p->kv_cache_bytes, block_bytes);
    if (n_blocks > INT32_MAX) n_blocks = INT32_MAX;
    pagoda_status st;
    if ((st = model_kv_cache_init(m, type, p->kv_block_size, n_blocks, &pm->kv)) ||
        (st = kv_pool_init((int32_t)n_blocks, p->kv_block_size, !p->no_prefix_caching, &pm->pool)))
        return st;
    sched_config sc = {.max_batched_tokens = p->n_batch, .max_seqs = p->max_seqs,
                       .policy = p->policy == PAGODA_SCHED_PRIORITY ? SCHED_POLICY_PRIORITY : SCHED_POLICY_FCFS};
    if ((st = sched_init(&sc, pm->pool, &pm->sched)) ||
        (st = runner_init(m, pm->be, pm->kv, p->n_batch, p->max_seqs, (int32_t)blocks_per_seq, &pm->runner)))
        return st;
    pm->run_seqs = calloc((size_t)p->max_seqs, sizeof *pm->run_seqs);
    if (!pm->run_seqs) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory for the engine");
    pm->next_id = 1;
    return spec_init(pm);
}

static void request_free(engine_request *req) {
    if (!req) return;
    for (int32_t i = 0; i < req->n_seqs; i++) {
        engine_seq *seq = req->seqs[i];
        engine_seq_sampling_free(seq);
        text_stream_free(&seq->text);
        free(seq->s.tokens);
        free(seq->step_text);
        free(seq);
    }
    free(req->seqs);
    engine_request_free_params(req);
    free(req->error);
    search_free(req->search);
    free(req);
}

void engine_free(pagoda_model *pm) {
    for (int32_t i = 0; i < pm->n_requests; i++) {
        for (int32_t j = 0; j < pm->requests[i]->n_seqs; j++) {
            if (!pm->requests[i]->seqs[j]->finished) sched_remove(pm->sched, &pm->requests[i]->seqs[j]->s);
            spec_seq_release(pm, pm->requests[i]->seqs[j]);
        }
        request_free(pm->requests[i]);
    }
    for (int32_t i = 0; i < pm->n_retired; i++) request_free(pm->retired[i]);
    free(pm->requests);
    free(pm->retired);
    free(pm->outputs);
    free(pm->touched);
    free(pm->run_seqs);
    free(pm->copy_src);
    free(pm->copy_dst);
    spec_free(pm);
    runner_free(pm->runner);
    sched_free(pm->sched);
    kv_pool_free(pm->pool);
    model_kv_cache_free(pm->kv);
}

/* ---- Requests -------------------------------------------------------------------------------------- */
static bool grow(void **items, int32_t *cap, int32_t need, size_t item_bytes) {
    if (need <= *cap) return true;
    int32_t c = *cap ? *cap * 2 : 16;
    while (c < need) c *= 2;
    void *grown = realloc(*items, (size_t)c * item_bytes);
    if (!grown) return false;
    *items = grown;
    *cap = c;
    return true;
}

/* A sequence of `req` holding `tokens` (n of them, room for max_total). */
static engine_seq *seq_new(pagoda_model *pm, engine_request *req, int32_t index, const int32_t *tokens, int32_t n) {
    engine_seq *seq = calloc(1, sizeof *seq);
    int32_t max_total = req->params.max_tokens < 0 ? pm->params.n_ctx : req->n_prompt + req->params.max_tokens;
    if (max_total > pm->params.n_ctx) max_total = pm->params.n_ctx;
    if (seq) seq->s.tokens = malloc(sizeof(int32_t) * (size_t)(max_total + 1));
    if (seq) seq->req = req;
    if (!seq || !seq->s.tokens ||
        engine_seq_sampling_init(seq, pm->weights->hp.n_vocab, req->params.seed + 0x9E3779B97F4A7C15ull * (uint64_t)index,
                                 tokens, n) != PAGODA_OK) {
        if (seq) {
            engine_seq_sampling_free(seq);
            free(seq->s.tokens);
        }
        free(seq);
        return NULL;
    }
    memcpy(seq->s.tokens, tokens, sizeof(int32_t) * (size_t)n);
    seq->s.n_tokens = n;
    seq->s.cap_tokens = max_total + 1;
    seq->s.n_prompt = req->n_prompt;
    seq->s.user = seq;
    seq->req = req;
    seq->index = index;
    seq->max_total = max_total;
    req->seqs[req->n_seqs++] = seq;
    req->n_live++;
    return seq;
}

pagoda_status pagoda_add_request(pagoda_model *pm, const int32_t *prompt, size_t n_prompt,
                                 const pagoda_sampling_params *params, int32_t priority, pagoda_request_id *out_id) {
    *out_id = 0;
    if (n_prompt == 0) return error_set(PAGODA_ERR_INVALID_ARGUMENT, "the prompt is empty");
    if (n_prompt >= (size_t)pm->params.n_ctx)
        return error_set(PAGODA_ERR_CONTEXT_FULL, "the prompt has %zu tokens but the context holds %d, leaving no "
                         "room to generate (raise it with -c, up to the model's %d)", n_prompt, pm->params.n_ctx,
                         pm->weights->hp.n_ctx_train);
    for (size_t i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= pm->weights->hp.n_vocab)
            return error_set(PAGODA_ERR_INVALID_ARGUMENT, "prompt token %d is out of range (vocabulary of %d)",
                             prompt[i], pm->weights->hp.n_vocab);
    pagoda_status st = engine_sampling_check(params, pm->weights->hp.n_vocab);
    if (st) return st;
    if (params->n > 1024) return error_set(PAGODA_ERR_INVALID_ARGUMENT, "n must be at most 1024 (got %d)", params->n);
    if ((st = search_check(pm, params))) return st;
    if (!grow((void **)&pm->requests, &pm->cap_requests, pm->n_requests + 1, sizeof *pm->requests))
        return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory for the request");
    engine_request *req = calloc(1, sizeof *req);
    if (!req) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory for the request");
    req->params = *params;
    if (engine_request_copy_params(req, params)) {
        request_free(req);
        return PAGODA_ERR_OUT_OF_MEMORY;
    }
    req->n_samples = params->n > 0 ? params->n : 1;
    if (search_kind_of(params)) req->n_samples = search_n_seqs(params); /* beams / candidates */
    req->n_prompt = (int32_t)n_prompt;
    req->seqs = calloc((size_t)req->n_samples, sizeof *req->seqs);
    engine_seq *seq = req->seqs ? seq_new(pm, req, 0, prompt, (int32_t)n_prompt) : NULL;
    if (!seq) {
        request_free(req);
        return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory for the request");
    }
    seq->s.priority = priority;
    if ((search_kind_of(params) && (st = search_init(pm, req))) || (st = sched_add(pm->sched, &seq->s))) {
        request_free(req);
        return st;
    }
    req->id = pm->next_id++;
    pm->requests[pm->n_requests++] = req;
    pm->stats.prompt_tokens += n_prompt;
    *out_id = req->id;
    return PAGODA_OK;
}

static engine_request *find_request(const pagoda_model *pm, pagoda_request_id id, int32_t *index) {
    for (int32_t i = 0; i < pm->n_requests; i++)
        if (pm->requests[i]->id == id) {
            *index = i;
            return pm->requests[i];
        }
    return NULL;
}

/* Moves a request whose samples all finished (or that was aborted) to the retired list. */
static void retire(pagoda_model *pm, engine_request *req) {
    int32_t index;
    if (!find_request(pm, req->id, &index)) return;
    memmove(&pm->requests[index], &pm->requests[index + 1], sizeof *pm->requests * (size_t)(pm->n_requests - index - 1));
    pm->n_requests--;
    if (grow((void **)&pm->retired, &pm->cap_retired, pm->n_retired + 1, sizeof *pm->retired))
        pm->retired[pm->n_retired++] = req;
    else
        request_free(req); /* out of memory: free now (no output points into it when aborted) */
}

pagoda_status pagoda_abort(pagoda_model *pm, pagoda_request_id id) {
    int32_t index;
    engine_request *req = find_request(pm, id, &index);
    if (!req) return error_set(PAGODA_ERR_INVALID_ARGUMENT, "no running request with id %lld", (long long)id);
    for (int32_t i = 0; i < req->n_seqs; i++)
        if (!req->seqs[i]->finished) {
            sched_remove(pm->sched, &req->seqs[i]->s);
            spec_seq_release(pm, req->seqs[i]);
            req->seqs[i]->finished = true;
            req->seqs[i]->finish_reason = PAGODA_FINISH_CANCELLED;
        }
    req->n_live = 0;
    retire(pm, req);
    return PAGODA_OK;
}

bool pagoda_has_unfinished(const pagoda_model *pm) { return pm->n_requests > 0; }

void pagoda_get_stats(const pagoda_model *pm, pagoda_engine_stats *out) {
    *out = pm->stats;
    out->n_running = sched_n_running(pm->sched);
    out->n_waiting = sched_n_waiting(pm->sched);
    kv_pool_stats ks;
    kv_pool_get_stats(pm->pool, &ks);
    out->kv_blocks_total = ks.n_blocks;
    out->kv_blocks_used = ks.n_blocks - ks.n_free;
    out->kv_usage = ks.n_blocks ? (double)out->kv_blocks_used / (double)ks.n_blocks : 0;
    out->prefix_queries = ks.prefix_queries;
    out->prefix_hits = ks.prefix_hits;
    out->n_preemptions = sched_n_preemptions(pm->sched);
}

/* ---- Steps ----------------------------------------------------------------------------------------- */
static bool step_text_append(engine_seq *seq, const char *text, size_t n) {
    if (seq->n_step_text + n + 1 > seq->cap_step_text) {
        size_t cap = (seq->n_step_text + n + 1) * 2;
        char *grown = realloc(seq->step_text, cap);
        if (!grown) return false;
        seq->step_text = grown;
        seq->cap_step_text = cap;
    }
    memcpy(seq->step_text + seq->n_step_text, text, n);
    seq->n_step_text += n;
    seq->step_text[seq->n_step_text] = '\0';
    return true;
}

static void touch(pagoda_model *pm, engine_seq *seq) {
    if (seq->in_output) return;
    if (!grow((void **)&pm->touched, &pm->cap_touched, pm->n_touched + 1, sizeof *pm->touched)) return;
    seq->in_output = true;
    seq->n_step_tokens = 0;
    seq->n_step_text = 0;
    if (seq->step_text) seq->step_text[0] = '\0';
    pm->touched[pm->n_touched++] = seq;
}

/* Text completed this step goes through the stop strings; only what they release is output. */
static void release_text(engine_seq *seq, const char *text, size_t n) {
    const char *out;
    size_t n_out;
    if (engine_seq_stop_feed(seq, text, n, &out, &n_out)) step_text_append(seq, out, n_out);
}

static void finish(pagoda_model *pm, engine_seq *seq, pagoda_finish_reason reason) {
    touch(pm, seq);
    const char *held;
    size_t n_held;
    if (text_stream_flush(&seq->text)) release_text(seq, seq->text.out, seq->text.n_out);
    if (engine_seq_stop_flush(seq, &held, &n_held)) step_text_append(seq, held, n_held);
    seq->finished = true;
    seq->finish_reason = reason;
    if (seq->s.state != SCHED_SEQ_FINISHED) sched_remove(pm->sched, &seq->s);
    spec_seq_release(pm, seq);
    seq->req->n_live--;
}

static void fail(pagoda_model *pm, engine_seq *seq, pagoda_status status, const char *why) {
    if (!seq->req->error) {
        seq->req->error = strdup(why);
        seq->req->error_status = status;
    }
    finish(pm, seq, PAGODA_FINISH_ERROR);
}

/* Samples the next token of `seq` from its logits row and applies the stop rules. */
static void sample_and_append(pagoda_model *pm, engine_seq *seq, const float *logits) {
    engine_append(pm, seq, sampler_sample(seq->smp, logits));
}

void engine_append(pagoda_model *pm, engine_seq *seq, int32_t token) {
    const pagoda_sampling_params *p = &seq->req->params;
    touch(pm, seq);
    if ((!p->ignore_eos && vocab_is_eog(pm->vocab, token)) || engine_is_stop_token(seq->req, token)) {
        finish(pm, seq, PAGODA_FINISH_STOP);
        return;
    }
    engine_seq_accept_token(seq, token, seq->n_step_tokens);
    seq->s.tokens[seq->s.n_tokens++] = token;
    seq->n_generated++;
    pm->stats.generated_tokens++;
    seq->step_tokens[seq->n_step_tokens++] = token;
    if (text_stream_push(&seq->text, pm->vocab, token)) release_text(seq, seq->text.out, seq->text.n_out);
    if (engine_seq_stopped(seq)) finish(pm, seq, PAGODA_FINISH_STOP);
    else if (seq->s.n_tokens >= seq->max_total) finish(pm, seq, PAGODA_FINISH_LENGTH);
}

/* The first time a request with n > 1 samples, its one sequence becomes n sharing the prompt. */
static void fork_samples(pagoda_model *pm, engine_seq *parent) {
    engine_request *req = parent->req;
    while (req->n_seqs < req->n_samples) {
        engine_seq *child = seq_new(pm, req, req->n_seqs, parent->s.tokens, parent->s.n_tokens);
        if (!child || sched_fork(pm->sched, &parent->s, &child->s) != PAGODA_OK) {
            if (child) { /* not in the scheduler: mark it done with an error */
                child->s.state = SCHED_SEQ_FINISHED;
                fail(pm, child, PAGODA_ERR_OUT_OF_MEMORY, "no memory to fork the sample");
            }
            break;
        }
    }
}

static pagoda_status build_outputs(pagoda_model *pm) {
    if (!grow((void **)&pm->outputs, &pm->cap_outputs, pm->n_touched, sizeof *pm->outputs))
        return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory for the step's outputs");
    pm->n_outputs = 0;
    for (int32_t i = 0; i < pm->n_touched; i++) {
        engine_seq *seq = pm->touched[i];
        seq->in_output = false;
        pm->outputs[pm->n_outputs++] = (pagoda_output){
            .id = seq->req->id, .index = seq->index, .n_tokens = (size_t)seq->n_step_tokens,
            .tokens = seq->step_tokens_ext ? seq->step_tokens_ext : seq->step_tokens,
            .logprobs = seq->step_logprobs && seq->n_step_tokens && !seq->step_tokens_ext ? seq->step_logprobs : NULL,
            .text = seq->step_text ? seq->step_text : "", .text_len = seq->n_step_text, .finished = seq->finished,
            .finish_reason = seq->finish_reason, .error_message = seq->req->error,
            .error_status = seq->req->error_status,
            .n_prompt_tokens = seq->req->n_prompt, .n_cached_tokens = seq->s.n_prefix_hit,
            .n_generated = seq->n_generated,
        };
    }
    /* requests whose samples have all finished leave now; their memory lives until the next step */
    for (int32_t i = 0; i < pm->n_requests;)
        if (pm->requests[i]->n_live == 0) retire(pm, pm->requests[i]);
        else i++;
    return PAGODA_OK;
}

pagoda_status pagoda_step(pagoda_model *pm, const pagoda_output **outputs, size_t *n_outputs) {
    *outputs = NULL;
    *n_outputs = 0;
    for (int32_t i = 0; i < pm->n_retired; i++) request_free(pm->retired[i]);
    pm->n_retired = 0;
    pm->n_touched = 0;
    sched_output out;
    spec_propose(pm); /* drafts join their sequences' tokens before scheduling */
    pagoda_status st = sched_schedule(pm->sched, &out);
    if (st) return st;
    for (int32_t i = 0; i < out.n_rejected; i++) {
        engine_seq *seq = out.rejected[i]->user;
        if (seq->n_generated > 0) finish(pm, seq, PAGODA_FINISH_LENGTH); /* grew past the whole cache */
        else fail(pm, seq, PAGODA_ERR_CONTEXT_FULL,
                  "the request does not fit in the KV cache: give it more memory (--kv-cache-mem)");
    }
    if (out.n_items == 0) spec_prepare(pm, &out, pm->run_seqs); /* drops drafts nobody will verify */
    if (out.n_items > 0) {
        if (!grow((void **)&pm->copy_src, &pm->cap_copies, out.n_copies, sizeof(int32_t)) ||
            !(pm->copy_dst = realloc(pm->copy_dst, sizeof(int32_t) * (size_t)(pm->cap_copies ? pm->cap_copies : 1))))
            return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory for the step");
        for (int32_t i = 0; i < out.n_copies; i++) {
            pm->copy_src[i] = out.copies[i].src;
            pm->copy_dst[i] = out.copies[i].dst;
        }
        for (int32_t i = 0; i < out.n_items; i++) {
            sched_seq *s = out.items[i].seq;
            pm->run_seqs[i] = (runner_seq){
                .tokens = s->tokens, .n_computed = s->n_computed, .n_new = out.items[i].n_tokens,
                .blocks = kv_block_table_ids(&s->table), .n_blocks = kv_block_table_n_blocks(&s->table),
                .wants_logits = s->n_computed + out.items[i].n_tokens == s->n_tokens, .n_prompt = s->n_prompt,
            };
            if (((engine_seq *)s->user)->req->search) search_prepare_run(s->user, &pm->run_seqs[i]);
        }
        spec_prepare(pm, &out, pm->run_seqs); /* verification rows; drafts of unscheduled sequences go */
        const float *logits;
        st = runner_run(pm->runner, pm->run_seqs, out.n_items, pm->copy_src, pm->copy_dst, out.n_copies, &logits);
        if (st) { /* nothing computed: fail what was scheduled, keep the engine usable */
            for (int32_t i = 0; i < out.n_items; i++) fail(pm, out.items[i].seq->user, st, pagoda_last_error());
            build_outputs(pm);
            *outputs = pm->outputs;
            *n_outputs = (size_t)pm->n_outputs;
            return st;
        }
        sched_update_computed(pm->sched, &out);
        pm->stats.computed_tokens += (uint64_t)out.n_tokens;
        pm->stats.n_steps++;
        search_on_step(pm, out.items, pm->run_seqs, out.n_items, logits, runner_hidden(pm->runner),
                       runner_layers(pm->runner));
        int32_t row = 0, n_vocab = pm->weights->hp.n_vocab;
        for (int32_t i = 0; i < out.n_items; i++) {
            engine_seq *seq = out.items[i].seq->user;
            const float *row_logits = logits + (size_t)row * (size_t)n_vocab;
            int32_t n_rows = pm->run_seqs[i].n_logits > 0 ? pm->run_seqs[i].n_logits : pm->run_seqs[i].wants_logits;
            row += n_rows;
            if (spec_verify(pm, seq, row_logits, n_rows) || !pm->run_seqs[i].wants_logits) continue;
            if (seq->req->search) continue; /* search_on_step took it */
            if (seq->req->n_seqs < seq->req->n_samples) {
                int32_t first_child = seq->req->n_seqs;
                fork_samples(pm, seq);
                for (int32_t c = first_child; c < seq->req->n_seqs; c++)
                    if (!seq->req->seqs[c]->finished) sample_and_append(pm, seq->req->seqs[c], row_logits);
            }
            sample_and_append(pm, seq, row_logits);
        }
    }
    search_advance_all(pm);
    if ((st = build_outputs(pm))) return st;
    *outputs = pm->outputs;
    *n_outputs = (size_t)pm->n_outputs;
    return PAGODA_OK;
}

/* ---- For the search strategies (engine/search.c) ----------------------------------------------------- */
engine_seq *engine_seq_new(pagoda_model *pm, engine_request *req, int32_t index, const int32_t *tokens, int32_t n) {
    return seq_new(pm, req, index, tokens, n);
}
void engine_touch(pagoda_model *pm, engine_seq *seq) { touch(pm, seq); }
bool engine_step_text_append(engine_seq *seq, const char *text, size_t n) { return step_text_append(seq, text, n); }
void engine_finish(pagoda_model *pm, engine_seq *seq, pagoda_finish_reason reason) { finish(pm, seq, reason); }
void engine_release_text(engine_seq *seq, const char *text, size_t n) { release_text(seq, text, n); }
