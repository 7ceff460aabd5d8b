/* sched/sched.c - the continuous-batching scheduler (see sched.h for the design). */
#include "sched/sched.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h" /* defines: error_set */

typedef struct seq_list {
    sched_seq **items;
    int32_t n, cap;
} seq_list;

struct sched {
    sched_config config;
    kv_pool *pool;
    seq_list waiting;     /* in policy order: the next to admit first */
    seq_list running;     /* in admission order: the most recently admitted last */
    uint64_t n_arrived;
    uint64_t n_admitted;
    uint64_t n_preemptions;
    /* per-step output storage, grown as needed and reused */
    sched_item *items;
    int32_t cap_items;
    kv_block_copy *copies;   /* [cap_copies] this step's copy-on-write copies */
    sched_seq **copy_owner;  /* [cap_copies] whose table each is for */
    int32_t n_copies, cap_copies;
    seq_list preempted;
    seq_list rejected;
};

static bool list_reserve(seq_list *l, int32_t n) {
    if (n <= l->cap) return true;
    int32_t cap = l->cap ? l->cap * 2 : 16;
    while (cap < n) cap *= 2;
    sched_seq **grown = realloc(l->items, (size_t)cap * sizeof *grown);
    if (!grown) return false;
    l->items = grown;
    l->cap = cap;
    return true;
}

static void list_remove_at(seq_list *l, int32_t i) {
    memmove(&l->items[i], &l->items[i + 1], (size_t)(l->n - i - 1) * sizeof *l->items);
    l->n--;
}

static bool list_remove(seq_list *l, const sched_seq *seq) {
    for (int32_t i = 0; i < l->n; i++)
        if (l->items[i] == seq) {
            list_remove_at(l, i);
            return true;
        }
    return false;
}

/* True when a should be admitted before b. */
static bool comes_before(const sched *s, const sched_seq *a, const sched_seq *b) {
    if (s->config.policy == SCHED_POLICY_PRIORITY && a->priority != b->priority) return a->priority < b->priority;
    return a->arrival < b->arrival;
}

/* Inserts into the waiting list at its policy position (stable). Space must be reserved. */
static void waiting_insert(sched *s, sched_seq *seq) {
    seq_list *w = &s->waiting;
    int32_t i = w->n;
    while (i > 0 && comes_before(s, seq, w->items[i - 1])) i--;
    memmove(&w->items[i + 1], &w->items[i], (size_t)(w->n - i) * sizeof *w->items);
    w->items[i] = seq;
    w->n++;
    seq->state = SCHED_SEQ_WAITING;
}

pagoda_status sched_init(const sched_config *config, kv_pool *pool, sched **out) {
    *out = NULL;
    if (config->max_batched_tokens < 1 || config->max_seqs < 1)
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "max-batched-tokens (%d) and max-seqs (%d) must be at least 1",
                         config->max_batched_tokens, config->max_seqs);
    sched *s = calloc(1, sizeof *s);
    if (!s) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory for the scheduler");
    s->config = *config;
    s->pool = pool;
    *out = s;
    return PAGODA_OK;
}

void sched_free(sched *s) {
    if (!s) return;
    free(s->waiting.items);
    free(s->running.items);
    free(s->preempted.items);
    free(s->rejected.items);
    free(s->items);
    free(s->copies);
    free(s->copy_owner);
    free(s);
}

static int32_t blocks_for(const sched *s, int32_t n_tokens) {
    int32_t bs = kv_pool_block_size(s->pool);
    return (n_tokens + bs - 1) / bs;
}

pagoda_status sched_add(sched *s, sched_seq *seq) {
    int32_t need = blocks_for(s, seq->n_tokens + 1);
    if (need > kv_pool_n_blocks(s->pool))
        return error_set(PAGODA_ERR_CONTEXT_FULL, "the request needs %d KV blocks (%d tokens) but the whole cache has "
                         "%d blocks (%d tokens): shorten the prompt or give the KV cache more memory",
                         need, seq->n_tokens + 1, kv_pool_n_blocks(s->pool),
                         kv_pool_n_blocks(s->pool) * kv_pool_block_size(s->pool));
    if (!list_reserve(&s->waiting, s->waiting.n + 1))
        return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory to queue the request");
    seq->arrival = s->n_arrived++;
    seq->n_computed = 0;
    waiting_insert(s, seq);
    return PAGODA_OK;
}

pagoda_status sched_fork(sched *s, sched_seq *parent, sched_seq *child) {
    if (!list_reserve(&s->running, s->running.n + 1))
        return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory to fork a sequence");
    pagoda_status st = kv_pool_fork(s->pool, &parent->table, &child->table);
    if (st) return st;
    child->n_computed = parent->n_computed;
    child->n_prefix_hit = parent->n_prefix_hit;
    child->priority = parent->priority;
    child->arrival = parent->arrival;
    child->admitted = ++s->n_admitted;
    child->state = SCHED_SEQ_RUNNING;
    s->running.items[s->running.n++] = child;
    return PAGODA_OK;
}

void sched_remove(sched *s, sched_seq *seq) {
    if (!list_remove(&s->running, seq)) list_remove(&s->waiting, seq);
    kv_pool_release(s->pool, &seq->table);
    seq->state = SCHED_SEQ_FINISHED;
}

/* Frees a running sequence's blocks and puts it back in the waiting list to be recomputed. */
static void preempt(sched *s, sched_seq *victim) {
    list_remove(&s->running, victim);
    kv_pool_release(s->pool, &victim->table);
    victim->n_computed = 0;
    victim->n_preemptions++;
    s->n_preemptions++;
    waiting_insert(s, victim); /* space: running and waiting never exceed the reserved total */
    s->preempted.items[s->preempted.n++] = victim;
}

static bool add_item(sched *s, sched_output *out, sched_seq *seq, int32_t n_tokens) {
    if (out->n_items == s->cap_items) {
        int32_t cap = s->cap_items ? s->cap_items * 2 : 64;
        sched_item *grown = realloc(s->items, (size_t)cap * sizeof *grown);
        if (!grown) return false;
        s->items = grown;
        s->cap_items = cap;
        out->items = grown;
    }
    out->items[out->n_items++] = (sched_item){seq, n_tokens};
    out->n_tokens += n_tokens;
    return true;
}

/* Drops an already scheduled item (its sequence was preempted after being scheduled). */
static void drop_item(sched_output *out, const sched_seq *seq) {
    for (int32_t i = 0; i < out->n_items; i++)
        if (out->items[i].seq == seq) {
            out->n_tokens -= out->items[i].n_tokens;
            memmove(&out->items[i], &out->items[i + 1], (size_t)(out->n_items - i - 1) * sizeof *out->items);
            out->n_items--;
            return;
        }
}

/* kv_pool_allocate, recording a copy-on-write copy; false when blocks are short (or no memory). */
static bool allocate(sched *s, sched_seq *seq, int32_t n_total) {
    if (s->n_copies == s->cap_copies) {
        int32_t cap = s->cap_copies ? s->cap_copies * 2 : 16;
        kv_block_copy *copies = realloc(s->copies, (size_t)cap * sizeof *copies);
        if (copies) s->copies = copies;
        sched_seq **owners = realloc(s->copy_owner, (size_t)cap * sizeof *owners);
        if (owners) s->copy_owner = owners;
        if (!copies || !owners) return false;
        s->cap_copies = cap;
    }
    bool has_copy;
    if (!kv_pool_allocate(s->pool, &seq->table, seq->n_computed, n_total, &s->copies[s->n_copies], &has_copy))
        return false;
    if (has_copy) s->copy_owner[s->n_copies++] = seq;
    return true;
}

/* Makes room for `seq` to hold n_total tokens, preempting the most recently admitted running
 * sequences while blocks are short. Returns false if `seq` itself had to be preempted. */
static bool grow_running(sched *s, sched_output *out, sched_seq *seq, int32_t n_total) {
    while (!allocate(s, seq, n_total)) {
        sched_seq *victim = s->running.items[s->running.n - 1];
        drop_item(out, victim);
        preempt(s, victim);
        if (victim == seq) return false;
    }
    return true;
}

/* Running sequences plus the slots they reserved for forks. */
static int32_t slots_used(const sched *s) {
    int32_t n = s->running.n;
    for (int32_t i = 0; i < s->running.n; i++) n += s->running.items[i]->reserve_slots;
    return n;
}

pagoda_status sched_schedule(sched *s, sched_output *out) {
    memset(out, 0, sizeof *out);
    out->items = s->items;
    s->preempted.n = s->rejected.n = 0;
    s->n_copies = 0;
    int32_t total = s->running.n + s->waiting.n;
    if (!list_reserve(&s->preempted, total) || !list_reserve(&s->rejected, total) ||
        !list_reserve(&s->waiting, total) || !list_reserve(&s->running, total))
        return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory to schedule");
    int32_t budget = s->config.max_batched_tokens;

    /* 1. running sequences: decodes (one token to compute) first, then prefill chunks */
    for (int pass = 0; pass < 2; pass++) {
        for (int32_t i = 0; i < s->running.n && budget > 0; i++) {
            sched_seq *seq = s->running.items[i];
            int32_t need = seq->n_tokens - seq->n_computed;
            if ((pass == 0) != (need == 1)) continue;
            bool already = false;
            for (int32_t j = 0; j < out->n_items && !already; j++) already = out->items[j].seq == seq;
            if (already || need < 1) continue;
            int32_t n = need < budget ? need : budget;
            int32_t running_before = s->running.n;
            if (!grow_running(s, out, seq, seq->n_computed + n)) {
                /* preempted itself: the list shifted; a lone sequence that cannot grow never will */
                if (running_before == 1) {
                    list_remove(&s->waiting, seq);
                    s->preempted.n--; /* it was the last one preempted: report it as rejected instead */
                    s->rejected.items[s->rejected.n++] = seq;
                    seq->state = SCHED_SEQ_FINISHED;
                }
                i = -1; /* rescan: earlier items are already scheduled and skipped */
                continue;
            }
            if (s->running.n < running_before) i = -1; /* victims removed: rescan from the start */
            if (!add_item(s, out, seq, n)) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory to schedule");
            budget -= n;
        }
    }

    /* 2. waiting sequences, in policy order, while budget and sequence slots remain */
    while (budget > 0 && s->waiting.n > 0 &&
           slots_used(s) + 1 + s->waiting.items[0]->reserve_slots <= s->config.max_seqs) {
        sched_seq *seq = s->waiting.items[0];
        bool first_admission = seq->n_preemptions == 0 && seq->admitted == 0 && seq->n_computed == 0;
        int32_t cached = seq->no_prefix_match ? 0 : kv_pool_match_prefix(s->pool, seq->tokens, seq->n_tokens, &seq->table);
        seq->n_computed = cached;
        int32_t need = seq->n_tokens - seq->n_computed;
        int32_t n = need < budget ? need : budget;
        if (!allocate(s, seq, seq->n_computed + n)) {
            kv_pool_release(s->pool, &seq->table); /* release the matched prefix until it can run */
            seq->n_computed = 0;
            if (s->running.n == 0 && out->n_items == 0) { /* alone, and still no room: it never fits */
                list_remove_at(&s->waiting, 0);
                s->rejected.items[s->rejected.n++] = seq;
                seq->state = SCHED_SEQ_FINISHED;
                continue;
            }
            break;
        }
        if (first_admission) {
            seq->n_prefix_hit = cached;
            kv_pool_record_lookup(s->pool, seq->n_tokens, cached);
        }
        list_remove_at(&s->waiting, 0);
        seq->state = SCHED_SEQ_RUNNING;
        seq->admitted = ++s->n_admitted;
        s->running.items[s->running.n++] = seq;
        if (!add_item(s, out, seq, n)) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory to schedule");
        budget -= n;
    }

    /* 3. copies for sequences preempted after their copy was planned are dropped (blocks freed) */
    int32_t kept = 0;
    for (int32_t i = 0; i < s->n_copies; i++) {
        bool still = s->copy_owner[i]->state == SCHED_SEQ_RUNNING;
        for (int32_t j = 0; still && j < s->preempted.n; j++) still = s->preempted.items[j] != s->copy_owner[i];
        if (still) {
            s->copies[kept] = s->copies[i];
            s->copy_owner[kept++] = s->copy_owner[i];
        }
    }
    s->n_copies = kept;
    out->n_copies = kept;
    out->copies = s->copies;
    out->preempted = s->preempted.items;
    out->n_preempted = s->preempted.n;
    out->rejected = s->rejected.items;
    out->n_rejected = s->rejected.n;
    return PAGODA_OK;
}

void sched_update_computed(sched *s, const sched_output *out) {
    for (int32_t i = 0; i < out->n_items; i++) {
        sched_seq *seq = out->items[i].seq;
        seq->n_computed += out->items[i].n_tokens;
        kv_pool_commit(s->pool, &seq->table, seq->tokens, seq->n_computed);
    }
}

int32_t sched_n_running(const sched *s) { return s->running.n; }
int32_t sched_n_slots_used(const sched *s) { return slots_used(s); }
int32_t sched_n_waiting(const sched *s) { return s->waiting.n; }
uint64_t sched_n_preemptions(const sched *s) { return s->n_preemptions; }
