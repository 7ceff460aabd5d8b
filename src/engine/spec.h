/* engine/spec.h - speculative decoding inside the batched engine: a draft proposes up to k tokens
 * for every decoding sequence, the target verifies them in the step's one forward, and rejection
 * sampling keeps the output distribution exactly the target's.
 *
 * One engine step with speculation (engine.c calls the three hooks marked *):
 *
 *   * spec_propose     for each running sequence with one token to compute (tokens[0..n_real)):
 *                      the draft appends d_1..d_k to its tokens (n_tokens = n_real + k)
 *     sched_schedule   schedules the 1 + k uncomputed tokens like any other chunk
 *   * spec_prepare     strips the drafts of sequences that were not scheduled (or preempted) and
 *                      tells the runner how many logit rows each speculating sequence needs
 *     runner_run       one forward: rows for positions n_real-1 .. n_real+k-1 give p_0..p_k
 *   * spec_verify      accepts d_1..d_m, emits m + 1 tokens (the last from the residual
 *                      norm(max(0, p - q)) or, when all k were accepted, from p_k), rolls the K/V of
 *                      the rejected positions back (kv_pool_truncate, n_computed = n_real + m)
 *
 * Draft sources (pagoda_model_params, at most one):
 *   - prompt lookup (lookup_ngram N): the most recent earlier occurrence of the last n tokens
 *     (n = N .. 1) in the sequence proposes what followed it; q is a point mass.
 *   - a draft model (draft_model_path) with its own KV cache, block pool and runner; it catches up
 *     on the sequence's tokens (prompt chunks count against the step's token budget) and then runs
 *     k - 1 more one-token forwards, all sequences batched.
 *   - self-speculation (draft_layers L): the same machinery as a draft model, whose model is a
 *     view of the target that stops after its first L layers (shared weights, final norm and
 *     lm_head); it keeps its own small cache of L layers, so the target's cache never holds
 *     early-exit K/V.
 * The number of drafts adapts per sequence (k_next): a draft that keeps being rejected costs fewer
 * verification rows; it never changes what is emitted, only how fast.
 * Requests whose sampling uses features the acceptance rule does not model (penalties, logit bias,
 * typical-p, logprobs, beams, contrastive search, DoLa) run without speculation.
 */
#ifndef PAGODA_SPEC_H
#define PAGODA_SPEC_H

#include <stdbool.h>
#include <stdint.h>

#include "kv/kv_pool.h"      /* defines: kv_block_table */
#include "pagoda.h"          /* defines: pagoda_model, pagoda_status */
#include "sample/sampler.h"  /* defines: sampler_params, sampler_rng */

#define SPEC_MAX_DRAFT_K 16

typedef struct sched_output sched_output;
typedef struct engine_seq engine_seq;
typedef struct runner_seq runner_seq;
typedef struct spec_state spec_state;

/* Per-sequence speculative state (inside engine_seq). Zero-initialised it is idle. */
typedef struct spec_seq {
    int32_t n_real;          /* tokens before this step's drafts; 0 when it has none */
    int32_t n_draft;         /* drafts appended after them */
    int32_t draft_computed;  /* draft model: positions whose K/V are in the draft's cache */
    int32_t k_next;          /* drafts to propose next step (1..draft_k): + 2 after a step whose
                                drafts were all accepted, - 1 after a rejection; 0: draft_k */
    kv_block_table table;    /* draft model: its blocks in the draft's pool */
    float *q;                /* [draft_k][n_vocab] draft distributions (sampled, draft model) */
    sampler_rng rng;         /* acceptance draws: seeded from the request's seed and sample index */
    bool rng_ready;
    bool scheduled;          /* spec_prepare's mark: in this step's batch */
} spec_seq;

/* ---- The engine hooks (pm is the engine; see the file comment) ---------------------------------- */

/* Sets up the draft source from pm->params (draft_model_path, draft_layers or lookup_ngram); none
 * set: nothing to do. Errors: PAGODA_ERR_INVALID_ARGUMENT (two sources, draft_layers out of range,
 * draft_k > SPEC_MAX_DRAFT_K), PAGODA_ERR_FORMAT (the draft's vocabulary differs from the model's),
 * the errors of loading a model, PAGODA_ERR_OUT_OF_MEMORY. */
pagoda_status spec_init(pagoda_model *pm);
void spec_free(pagoda_model *pm);

/* Appends drafts to eligible running sequences. A draft forward that fails (out of draft blocks,
 * out of memory) only means those sequences propose nothing this step. */
void spec_propose(pagoda_model *pm);
/* After sched_schedule: removes drafts from sequences not in `out`; for those in it, sets
 * run[i].n_logits (the logit rows verification needs) for item i. */
void spec_prepare(pagoda_model *pm, const sched_output *out, runner_seq *run);
/* After the forward and sched_update_computed: verifies seq's drafts against `rows` ([n_rows][n_vocab],
 * positions n_computed_before.. of the step's last rows), appends the accepted tokens and the final
 * one, and rolls back. Returns false if seq had no drafts (the caller samples as usual). */
bool spec_verify(pagoda_model *pm, engine_seq *seq, const float *rows, int32_t n_rows);
/* Gives back a finished sequence's draft blocks and buffers (idempotent). */
void spec_seq_release(pagoda_model *pm, engine_seq *seq);

/* ---- The parts, exposed for tests ------------------------------------------------------------- */

/* Prompt lookup: the most recent i < n - m with tokens[i..i+m) == tokens[n-m..n) for the largest
 * m <= ngram; copies up to k tokens that followed it (stopping at n) to out. Returns how many. */
int32_t spec_lookup(const int32_t *tokens, int32_t n, int32_t ngram, int32_t k, int32_t *out);

/* The sampling distribution the sampler draws from (temperature > 0): top-k, softmax at the
 * temperature, top-p, min-p, renormalised; probs[n_vocab] is zero outside what is kept.
 * scratch: [n_vocab] pairs of (float, int32). */
void spec_dist(const sampler_params *p, const float *logits, int32_t n_vocab, float *probs, void *scratch);

/* Draws a token from probs[n] (need not sum to 1; its sum must be > 0). */
int32_t spec_draw(const float *probs, int32_t n, sampler_rng *rng);

/* The rejection rule for one draft token x drawn from q: accepted with probability
 * min(1, p(x) / q(x)) (returns true); else *resampled is drawn from norm(max(0, p - q)).
 * q NULL: a point mass at x. residual: [n] scratch. */
bool spec_accept(const float *p, const float *q, int32_t n, int32_t x, sampler_rng *rng, float *residual,
                 int32_t *resampled);

#endif
