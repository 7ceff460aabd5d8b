/* engine/engine_internal.h - the state behind a pagoda_model handle, shared by api.c (loading,
 * tokens, chat, pagoda_generate) and engine.c (requests, steps, aborts). */
#ifndef PAGODA_ENGINE_INTERNAL_H
#define PAGODA_ENGINE_INTERNAL_H

#include "backend/backend.h"     /* defines: backend */
#include "engine/engine_sample.h" /* defines: engine_seq_sampling_init, engine_is_stop_token, ... */
#include "engine/stop_text.h"    /* defines: stop_text */
#include "engine/spec.h"         /* defines: spec_seq, spec_state, SPEC_MAX_DRAFT_K */
#include "engine/text_stream.h"  /* defines: text_stream */
#include "kv/kv_pool.h"          /* defines: kv_pool */
#include "model/model.h"         /* defines: model, model_kv_cache */
#include "runner/runner.h"       /* defines: runner, runner_seq */
#include "sample/sampler.h"      /* defines: sampler */
#include "sched/sched.h"         /* defines: sched, sched_seq */
#include "vocab/chat_template.h" /* defines: chat_template */
#include "vocab/vocab.h"         /* defines: vocab */

typedef struct engine_request engine_request;

typedef struct engine_seq {
    sched_seq s;             /* tokens, n_computed, blocks: the scheduler's view */
    engine_request *req;
    int32_t index;           /* sample index within the request */
    sampler *smp;            /* its own random stream: the same seed gives the same text in any batch */
    text_stream text;
    int32_t n_generated;
    int32_t max_total;       /* stop at this many tokens (prompt + output) */
    bool finished;
    pagoda_finish_reason finish_reason;
    /* this step's output */
    bool in_output;
    int32_t step_tokens[SPEC_MAX_DRAFT_K + 2]; /* a speculative step emits up to draft_k + 1 */
    int32_t n_step_tokens;
    const int32_t *step_tokens_ext; /* when set: this step's n_step_tokens tokens (a finished beam's) */
    char *step_text;         /* [cap_step_text] */
    size_t n_step_text, cap_step_text;
    spec_seq spec;           /* speculative decoding's drafts and draft-cache blocks */
    /* sampling extras (engine_sample.c) */
    stop_text stop;          /* stop strings over the released text */
    pagoda_token_logprob *step_logprobs; /* [ENGINE_STEP_SLOTS] when the request asked for logprobs */
    pagoda_top_logprob *step_top;        /* [ENGINE_STEP_SLOTS][top_logprobs] */
} engine_seq;

/* How many tokens a sequence can produce in one step (the size of step_tokens). */
#define ENGINE_STEP_SLOTS(seq) ((int32_t)(sizeof (seq)->step_tokens / sizeof (seq)->step_tokens[0]))

struct engine_request {
    pagoda_request_id id;
    pagoda_sampling_params params;
    int32_t n_prompt;
    int32_t n_samples;       /* params.n */
    engine_seq **seqs;       /* [n_samples]; created as the prompt finishes (forks) */
    int32_t n_seqs;
    int32_t n_live;          /* not yet finished */
    pagoda_logit_bias *own_logit_bias; /* [params.n_logit_bias] copies that params points at */
    int32_t *own_stop_token_ids;       /* [params.n_stop_token_ids] */
    char **own_stop;                   /* [params.n_stop] */
    char *error;             /* why it failed, when it did */
    pagoda_status error_status;
    struct search_state *search; /* beam / contrastive / DoLa (engine/search.h); NULL: sampling */
};

struct pagoda_model {
    model *weights;
    vocab *vocab;
    chat_template *chat;       /* NULL when no template could be set up */
    char *chat_error;
    backend *be;
    char *name;
    pagoda_model_params params;/* resolved (no zeros left) */
    /* engine */
    model_kv_cache *kv;
    kv_pool *pool;
    sched *sched;
    runner *runner;
    engine_request **requests; /* live requests */
    int32_t n_requests, cap_requests;
    engine_request **retired;  /* finished or aborted, freed at the next step (outputs point into them) */
    int32_t n_retired, cap_retired;
    pagoda_request_id next_id;
    pagoda_output *outputs;    /* this step's */
    int32_t n_outputs, cap_outputs;
    engine_seq **touched;      /* sequences with output this step */
    int32_t n_touched, cap_touched;
    runner_seq *run_seqs;      /* [max_seqs] */
    int32_t *copy_src, *copy_dst; /* [cap_copies] */
    int32_t cap_copies;
    pagoda_engine_stats stats;
    spec_state *spec;          /* speculative decoding; NULL when off */
};

/* engine.c: sets up the KV cache, pool, scheduler and runner from pm->params (resolved). */
pagoda_status engine_init(pagoda_model *pm);
void engine_free(pagoda_model *pm);
/* engine.c: appends a chosen token to seq (output, text, stop rules); spec.c emits through it. */
void engine_append(pagoda_model *pm, engine_seq *seq, int32_t token);

/* engine.c, for the search strategies (engine/search.c): a new sequence of req (not yet scheduled),
 * step output bookkeeping, and finishing a sequence (removing it from the scheduler). */
engine_seq *engine_seq_new(pagoda_model *pm, engine_request *req, int32_t index, const int32_t *tokens, int32_t n);
void engine_touch(pagoda_model *pm, engine_seq *seq);
bool engine_step_text_append(engine_seq *seq, const char *text, size_t n);
void engine_finish(pagoda_model *pm, engine_seq *seq, pagoda_finish_reason reason);
/* Text completed by a token, through the stop strings into the step's text. */
void engine_release_text(engine_seq *seq, const char *text, size_t n);

#endif
