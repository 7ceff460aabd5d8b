/* runner/runner.h - turns a step's scheduled sequences into one flattened batch, runs the model
 * once, and returns the logits of the sequences that sample this step.
 *
 * For sequences A (3 new tokens at positions 5..7), B (decode at position 12), block size 4:
 *   tokens        [a5 a6 a7 | b12]
 *   positions     [ 5  6  7 |  12]
 *   slot_mapping  [A.blocks[1]*4+1, A.blocks[1]*4+2, A.blocks[1]*4+3 | B.blocks[3]*4+0]
 *   query_start   [0, 3, 4]      seq_lens [8, 13]      block_tables [n_seqs][max_blocks_per_seq]
 *   logit rows    [2, 3]         (the last new row of each sequence that samples, or its last
 *                                 n_logits rows when it verifies speculative drafts)
 * It knows nothing of the scheduler: the engine describes each sequence with a runner_seq.
 */
#ifndef PAGODA_RUNNER_H
#define PAGODA_RUNNER_H

#include <stdbool.h>
#include <stdint.h>

#include "model/model.h" /* defines: model, model_kv_cache, model_workspace, model_batch */

typedef struct runner_seq {
    const int32_t *tokens;  /* the sequence's token ids (at least n_computed + n_new) */
    int32_t n_computed;     /* positions 0..n_computed-1 already have K/V in the cache */
    int32_t n_new;          /* compute positions n_computed .. n_computed + n_new - 1 */
    const int32_t *blocks;  /* [n_blocks] its block table */
    int32_t n_blocks;
    bool wants_logits;      /* return logits for its last new position */
    int32_t n_logits;       /* > 0: return logits for its last n_logits new positions instead
                               (speculative verification); at most n_new */
    bool wants_hidden;      /* return the final hidden state of every new position (contrastive search) */
    bool wants_layers;      /* with wants_logits: the residual stream entering every layer (DoLa) */
    int32_t n_prompt;       /* positions below are prompt tokens, the rest generated: the matmul kernel
                               is chosen per token from this, so results do not depend on the batch */
} runner_seq;

typedef struct runner runner;

/* max_tokens: tokens per step; max_seqs: sequences per step; max_blocks_per_seq: the longest
 * block table. Errors: PAGODA_ERR_OUT_OF_MEMORY, PAGODA_ERR_INVALID_ARGUMENT. */
pagoda_status runner_init(const model *m, backend *be, model_kv_cache *kv, int32_t max_tokens, int32_t max_seqs,
                          int32_t max_blocks_per_seq, runner **out);
void runner_free(runner *r);

/* Copies blocks src[i] -> dst[i] (copy-on-write), then runs the sequences in one forward pass.
 * *out_logits: [logit rows][n_vocab], in the order of `seqs` (n_logits rows for a sequence that
 * sets it, else one if wants_logits), owned by the runner until the next call. The workspace grows
 * when a step wants more rows than sequences (Errors: PAGODA_ERR_OUT_OF_MEMORY). Errors: PAGODA_ERR_INVALID_ARGUMENT (limits exceeded). */
pagoda_status runner_run(runner *r, const runner_seq *seqs, int32_t n_seqs, const int32_t *copy_src,
                         const int32_t *copy_dst, int32_t n_copies, const float **out_logits);

/* After runner_run, the optional outputs (NULL when no sequence asked):
 * runner_hidden: [rows][n_embd], the final-normed hidden states of the new positions of every
 *   sequence with wants_hidden, in the order of `seqs` and positions;
 * runner_layers: [number of logits rows][n_layer][n_embd] (model_batch.layers_out), filled for every
 *   logits row as soon as one sequence has wants_layers. Owned by the runner until the next call. */
const float *runner_hidden(const runner *r);
const float *runner_layers(const runner *r);

#endif
