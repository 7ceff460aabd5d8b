/* sched/sched.h - sequences and the continuous-batching scheduler (integer bookkeeping only).
 *
 * Design in four lines (after vLLM v1):
 *   - There is no prefill or decode phase: a sequence has n_tokens (prompt + generated) and
 *     n_computed (tokens whose K/V are cached); each step computes part of the difference.
 *   - A step has a token budget (max_batched_tokens) and a limit on running sequences (max_seqs):
 *     running sequences that decode go first, then running prefills, then waiting sequences, each
 *     taking a chunk of what is left, so a long prompt never stalls the running streams.
 *   - When the block pool runs dry, the most recently admitted running sequence is preempted: its
 *     blocks are freed and it waits to be recomputed (its full blocks usually survive in the prefix cache).
 * The engine owns the sequences' memory and their sampling state (sched_seq.user); this module only
 * moves them between the waiting and running lists and asks kv/ for blocks.
 */
#ifndef PAGODA_SCHED_H
#define PAGODA_SCHED_H

#include <stdbool.h>
#include <stdint.h>

#include "kv/kv_pool.h" /* defines: kv_pool, kv_block_table */
#include "pagoda.h"     /* defines: pagoda_status */

typedef enum sched_policy {
    SCHED_POLICY_FCFS,     /* first come, first served */
    SCHED_POLICY_PRIORITY, /* lower priority value first, then arrival */
} sched_policy;

typedef struct sched_config {
    int32_t max_batched_tokens; /* tokens computed per step, all sequences together */
    int32_t max_seqs;           /* running sequences at most */
    sched_policy policy;
} sched_config;

typedef enum sched_seq_state {
    SCHED_SEQ_NEW,      /* not yet added */
    SCHED_SEQ_WAITING,
    SCHED_SEQ_RUNNING,
    SCHED_SEQ_FINISHED, /* removed from the scheduler; blocks freed */
} sched_seq_state;

typedef struct sched_seq {
    int32_t *tokens;         /* [cap_tokens] prompt then generated ids; n_tokens of them valid */
    int32_t n_tokens;
    int32_t cap_tokens;
    int32_t n_prompt;
    int32_t n_computed;      /* tokens whose K/V are in the cache */
    int32_t n_prefix_hit;    /* of the prompt, tokens reused from the prefix cache at first admission */
    int32_t priority;        /* SCHED_POLICY_PRIORITY: lower runs first */
    uint64_t arrival;        /* set by sched_add: the order of arrival */
    uint64_t admitted;       /* set when it last became RUNNING */
    int32_t n_preemptions;
    sched_seq_state state;
    kv_block_table table;    /* its blocks */
    void *user;              /* the engine's per-sequence state */
    bool no_prefix_match;    /* compute every token at admission, reusing no cached prefix (contrastive
                                search needs the hidden state of every prompt position) */
    int32_t reserve_slots;   /* running slots this sequence will soon fork into (beams, contrastive
                                candidates): admission counts them against max_seqs */
} sched_seq;

/* One scheduled sequence: compute tokens [seq->n_computed, seq->n_computed + n_tokens) this step. */
typedef struct sched_item {
    sched_seq *seq;
    int32_t n_tokens;
} sched_item;

typedef struct sched_output {
    sched_item *items;        /* [n_items], decodes first */
    int32_t n_items;
    int32_t n_tokens;         /* sum of items[].n_tokens */
    kv_block_copy *copies;    /* [n_copies] copy-on-write block copies to do before the forward */
    int32_t n_copies;
    sched_seq **preempted;    /* [n_preempted] sequences preempted this step (now waiting) */
    int32_t n_preempted;
    sched_seq **rejected;     /* [n_rejected] sequences that can never fit the pool: the engine
                                 finishes them with an error (they are no longer in the scheduler) */
    int32_t n_rejected;
} sched_output;

typedef struct sched sched;

/* Errors: PAGODA_ERR_INVALID_ARGUMENT (a limit < 1), PAGODA_ERR_OUT_OF_MEMORY. */
pagoda_status sched_init(const sched_config *config, kv_pool *pool, sched **out);
void sched_free(sched *s);

/* Adds a sequence (its tokens hold the prompt, n_computed 0) to the waiting list.
 * Errors: PAGODA_ERR_CONTEXT_FULL when its prompt alone needs more blocks than the whole pool has
 * (the message says how many), PAGODA_ERR_OUT_OF_MEMORY. */
pagoda_status sched_add(sched *s, sched_seq *seq);

/* Chooses this step's work. The output is valid until the next call. Errors: PAGODA_ERR_OUT_OF_MEMORY. */
pagoda_status sched_schedule(sched *s, sched_output *out);

/* After the forward pass: each scheduled sequence's n_computed advances by its n_tokens and its
 * newly full blocks enter the prefix cache. Call before appending sampled tokens. */
void sched_update_computed(sched *s, const sched_output *out);

/* Adds `child` as a running copy of running `parent`: same tokens (the caller copies them), sharing
 * all of the parent's blocks (the shared partial last block is copied on the first write).
 * Errors: PAGODA_ERR_OUT_OF_MEMORY (nothing changed). */
pagoda_status sched_fork(sched *s, sched_seq *parent, sched_seq *child);

/* Removes a sequence (finished, aborted or failed) and frees its blocks. */
void sched_remove(sched *s, sched_seq *seq);

int32_t sched_n_running(const sched *s);
/* Running sequences plus their reserve_slots: what admission compares with max_seqs. */
int32_t sched_n_slots_used(const sched *s);
int32_t sched_n_waiting(const sched *s);
uint64_t sched_n_preemptions(const sched *s);

#endif
