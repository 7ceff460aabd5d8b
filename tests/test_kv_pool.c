/* tests/test_kv_pool.c - the KV block pool (kv/kv_pool.h): directed tests of the free list, allocation,
 * copy-on-write, fork, truncate and release, then a randomized test against an independent model.
 *
 * The randomized test plays an engine: up to MAX_SEQS sequences are admitted (prefix match, then
 * allocation), computed in chunks and decoded token by token, forked, truncated, released, with a
 * pool small enough that allocation fails and cached blocks get evicted. It keeps its own model of
 * the K/V data: every slot of every block records the (token, context hash) pair written there,
 * where the context hash is a rolling hash of the whole prefix up to that token (independent of
 * xxhash). Steps grow tables either with the scheduler's one call (kv_pool_allocate) or with its
 * parts (kv_pool_reserve + kv_pool_prepare_write); the copies they report are applied to the model.
 * After every step:
 *   - each block's ref count equals the number of live tables holding it (recomputed here);
 *   - the free list is a consistent doubly linked list holding exactly the ref-0 blocks, and its
 *     length is n_free;
 *   - every cached block is found by its key, its stored tokens equal the data in it, and a live
 *     table's committed keys equal the chain keys computed here from the formula in kv_pool.h;
 *   - every live sequence reads back exactly its own context at every computed position: so
 *     prefix hits, forks and copy-on-write never hand a sequence data of other tokens;
 *   - a match is never shorter than a cached chain a live table proves to exist;
 *   - kv_pool_check (the pool's own check) agrees.
 * Some runs keep only 1-3 bits of every key (kv_pool_debug_key_bits), so keys collide constantly
 * and every hit must be earned by the token and parent-link verification.
 * At the end everything is free.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h> /* defines: XXH64 */

#include "kv/kv_pool.h" /* defines: kv_pool_*, kv_block_table, kv_block_copy */
#include "pagoda.h"     /* defines: pagoda_last_error */
#include "testlib.h"

/* ---- helpers ------------------------------------------------------------------------------- */

static kv_pool_stats pool_stats(const kv_pool *pool) {
    kv_pool_stats s;
    kv_pool_get_stats(pool, &s);
    return s;
}

static kv_pool *pool_new(int32_t n_blocks, int32_t block_size) {
    kv_pool *pool = NULL;
    pagoda_status st = kv_pool_init(n_blocks, block_size, true, &pool);
    CHECK_MSG(st == PAGODA_OK && pool, "kv_pool_init(%d, %d): %s", n_blocks, block_size, pagoda_last_error());
    return pool;
}

/* The free list head to tail, into out[]; returns its length (-1 if longer than max: a cycle). */
static int free_list(const kv_pool *pool, int32_t *out, int max) {
    int n = 0;
    for (int32_t b = kv_pool_free_first(pool); b >= 0; b = kv_pool_free_next(pool, b)) {
        if (n >= max) return -1;
        out[n++] = b;
    }
    return n;
}

static void check_free_list_is(const kv_pool *pool, const int32_t *want, int n_want, const char *what) {
    int32_t got[64];
    int n = free_list(pool, got, 64);
    bool same = n == n_want;
    for (int i = 0; same && i < n; i++) same = got[i] == want[i];
    char buf[512] = "";
    for (int i = 0; i < n && i < 40; i++) snprintf(buf + strlen(buf), sizeof buf - strlen(buf), " %d", got[i]);
    CHECK_MSG(same, "%s: free list is [%s ] (%d blocks), expected %d blocks", what, buf, n, n_want);
}

static void check_ids(const kv_block_table *t, const int32_t *want, int n_want, const char *what) {
    bool same = t->n_blocks == n_want;
    for (int i = 0; same && i < n_want; i++) same = t->blocks[i] == want[i];
    CHECK_MSG(same, "%s: table has %d blocks (first %d), expected %d (first %d)", what, t->n_blocks,
              t->n_blocks ? t->blocks[0] : -1, n_want, n_want ? want[0] : -1);
}

/* ---- directed tests ------------------------------------------------------------------------ */

static void test_init_errors(void) {
    kv_pool *pool = (kv_pool *)1;
    CHECK(kv_pool_init(0, 16, true, &pool) == PAGODA_ERR_INVALID_ARGUMENT && pool == NULL);
    CHECK(kv_pool_init(-5, 16, true, &pool) == PAGODA_ERR_INVALID_ARGUMENT);
    CHECK(kv_pool_init(8, 0, true, &pool) == PAGODA_ERR_INVALID_ARGUMENT);
    CHECK(kv_pool_init(8, KV_BLOCK_SIZE_MAX + 1, true, &pool) == PAGODA_ERR_INVALID_ARGUMENT);
    CHECK(strstr(pagoda_last_error(), "block_size") != NULL);
    kv_pool_free(NULL);
        pool = pool_new(3, 16);
    kv_pool_stats s = pool_stats(pool);
    CHECK(s.n_blocks == 3 && s.block_size == 16 && s.n_free == 3 && s.n_cached == 0 && s.usage == 0.0);
    int32_t want[] = {0, 1, 2};
    check_free_list_is(pool, want, 3, "fresh pool");
    CHECK(kv_pool_free_last(pool) == 2 && kv_pool_free_prev(pool, 2) == 1 && kv_pool_free_prev(pool, 0) == -1);
    kv_pool_free(pool);
}

/* Allocation takes the head; release pushes last-to-first onto the tail. */
static void test_eviction_order(void) {
    kv_pool *pool = pool_new(8, 4);
    kv_block_table a, b, c;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    memset(&c, 0, sizeof c);
    CHECK(kv_pool_reserve(pool, &a, 9) == PAGODA_OK); /* 3 blocks */
    CHECK(kv_pool_reserve(pool, &b, 8) == PAGODA_OK); /* 2 blocks */
    int32_t ids_a[] = {0, 1, 2}, ids_b[] = {3, 4};
    check_ids(&a, ids_a, 3, "a");
    check_ids(&b, ids_b, 2, "b");
    CHECK(a.n_tokens == 9 && b.n_tokens == 8);
    int32_t fl1[] = {5, 6, 7};
    check_free_list_is(pool, fl1, 3, "after allocating a, b");
    kv_pool_release(pool, &a);
    CHECK(a.n_blocks == 0 && a.n_tokens == 0);
    int32_t fl2[] = {5, 6, 7, 2, 1, 0};
    check_free_list_is(pool, fl2, 6, "after releasing a");
    kv_pool_release(pool, &b);
    int32_t fl3[] = {5, 6, 7, 2, 1, 0, 4, 3};
    check_free_list_is(pool, fl3, 8, "after releasing b");
    CHECK(kv_pool_reserve(pool, &c, 32) == PAGODA_OK);
    check_ids(&c, fl3, 8, "c takes the free list in order");
    CHECK(kv_pool_n_free(pool) == 0 && kv_pool_free_first(pool) == -1 && kv_pool_free_last(pool) == -1);
    CHECK(pool_stats(pool).usage == 1.0);
    for (int32_t i = 0; i < 8; i++) CHECK(kv_pool_block_ref(pool, i) == 1);
    kv_pool_release(pool, &c);
    kv_pool_release(pool, &a);
    kv_pool_release(pool, &b);
    kv_pool_release(pool, &c);
    kv_pool_free(pool);
}

/* A failing allocation changes nothing; growth within the last block takes no block. */
static void test_all_or_nothing(void) {
    kv_pool *pool = pool_new(4, 4);
    kv_block_table a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    CHECK(kv_pool_n_blocks_needed(pool, &a, 0, 0) == 0 && kv_pool_n_blocks_needed(pool, &a, 1, 1) == 1);
    CHECK(kv_pool_n_blocks_needed(pool, &a, 4, 4) == 1 && kv_pool_n_blocks_needed(pool, &a, 5, 5) == 2);
    CHECK(kv_pool_reserve(pool, &a, 10) == PAGODA_OK && a.n_blocks == 3);
    CHECK(kv_pool_n_blocks_needed(pool, &a, 12, 12) == 0 && kv_pool_n_blocks_needed(pool, &a, 13, 13) == 1);
    CHECK(kv_pool_reserve(pool, &a, 12) == PAGODA_OK && a.n_blocks == 3 && a.n_tokens == 12);
    CHECK(kv_pool_reserve(pool, &a, 7) == PAGODA_OK && a.n_blocks == 3 && a.n_tokens == 12);
    CHECK(kv_pool_can_allocate(pool, &b, 4, 4) && !kv_pool_can_allocate(pool, &b, 5, 5));
    CHECK(!kv_pool_can_allocate(pool, &a, 17, 17) && kv_pool_can_allocate(pool, &a, 16, 16));
    pagoda_status st = kv_pool_reserve(pool, &b, 5);
    CHECK(st == PAGODA_ERR_CONTEXT_FULL);
    CHECK_MSG(strstr(pagoda_last_error(), "2 more blocks") && strstr(pagoda_last_error(), "1 of 4"),
              "message: %s", pagoda_last_error());
    CHECK(b.n_blocks == 0 && b.n_tokens == 0 && kv_pool_n_free(pool) == 1 && kv_pool_free_first(pool) == 3);
    CHECK(kv_pool_reserve(pool, &a, 17) == PAGODA_ERR_CONTEXT_FULL);
    CHECK(a.n_blocks == 3 && a.n_tokens == 12 && kv_pool_n_free(pool) == 1);
    CHECK(kv_pool_reserve(pool, &b, 17) == PAGODA_ERR_CONTEXT_FULL);
    CHECK_MSG(strstr(pagoda_last_error(), "whole pool"), "message: %s", pagoda_last_error());
    CHECK(kv_pool_reserve(pool, &b, -1) == PAGODA_ERR_INVALID_ARGUMENT);
    CHECK(kv_pool_reserve(pool, &b, INT64_MAX) == PAGODA_ERR_CONTEXT_FULL && b.n_blocks == 0);
    CHECK(kv_pool_reserve(pool, &a, 16) == PAGODA_OK && kv_pool_n_free(pool) == 0);
    kv_pool_release(pool, &a);
    CHECK(kv_pool_n_free(pool) == 4);
    kv_pool_release(pool, &a);
    kv_pool_release(pool, &b);
    kv_pool_free(pool);
}

/* Forks share; the first write into a shared block copies it, the other table keeps the old one. */
static void test_fork_and_cow(void) {
    kv_pool *pool = pool_new(8, 4);
    kv_block_table a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    CHECK(kv_pool_reserve(pool, &a, 6) == PAGODA_OK); /* blocks 0, 1 */
    CHECK(kv_pool_fork(pool, &a, &a) == PAGODA_ERR_INVALID_ARGUMENT);
    CHECK(kv_pool_fork(pool, &a, &b) == PAGODA_OK);
    int32_t ids[] = {0, 1};
    check_ids(&b, ids, 2, "fork");
    CHECK(b.n_tokens == 6 && kv_pool_block_ref(pool, 0) == 2 && kv_pool_block_ref(pool, 1) == 2);
    CHECK(kv_pool_fork(pool, &a, &b) == PAGODA_ERR_INVALID_ARGUMENT); /* b not empty */

    kv_block_copy cp;
    CHECK(kv_pool_prepare_write(pool, &b, 5, &cp) == PAGODA_OK);
    CHECK_MSG(cp.src == 1 && cp.dst == 2, "copy (%d, %d), expected (1, 2)", cp.src, cp.dst);
    int32_t ids_b[] = {0, 2};
    check_ids(&b, ids_b, 2, "b after its copy");
    check_ids(&a, ids, 2, "a untouched by b's copy");
    CHECK(kv_pool_block_ref(pool, 1) == 1 && kv_pool_block_ref(pool, 2) == 1);
    CHECK(kv_pool_prepare_write(pool, &b, 4, &cp) == PAGODA_OK && cp.src == -1 && cp.dst == -1);
    CHECK(kv_pool_prepare_write(pool, &a, 5, &cp) == PAGODA_OK && cp.src == -1); /* ref 1 now */
    /* At a block's start there is nothing of a's to copy: a fresh block, no copy. */
    CHECK(kv_pool_prepare_write(pool, &a, 0, &cp) == PAGODA_OK && cp.src == -1 && cp.dst == -1);
    int32_t ids_a[] = {3, 1};
    check_ids(&a, ids_a, 2, "a after its copy");
    check_ids(&b, ids_b, 2, "b untouched by a's copy");
    CHECK(kv_pool_prepare_write(pool, &a, 6, &cp) == PAGODA_ERR_INVALID_ARGUMENT && cp.src == -1);
    CHECK(kv_pool_prepare_write(pool, &a, -1, &cp) == PAGODA_ERR_INVALID_ARGUMENT);

    /* No free block for the copy: an error, nothing changes. */
    kv_block_table c, d;
    memset(&c, 0, sizeof c);
    memset(&d, 0, sizeof d);
    CHECK(kv_pool_reserve(pool, &c, 16) == PAGODA_OK && kv_pool_n_free(pool) == 0);
    CHECK(kv_pool_fork(pool, &c, &d) == PAGODA_OK);
    CHECK(kv_pool_prepare_write(pool, &d, 0, &cp) == PAGODA_ERR_CONTEXT_FULL && cp.src == -1);
    CHECK(d.blocks[0] == c.blocks[0] && kv_pool_block_ref(pool, c.blocks[0]) == 2);

    /* Truncate releases the blocks past the end (last first). */
    CHECK(kv_pool_truncate(pool, &d, 17) == PAGODA_ERR_INVALID_ARGUMENT);
    CHECK(kv_pool_truncate(pool, &d, 5) == PAGODA_OK && d.n_blocks == 2 && d.n_tokens == 5);
    CHECK(kv_pool_block_ref(pool, c.blocks[2]) == 1 && kv_pool_block_ref(pool, c.blocks[1]) == 2);
    kv_pool_release(pool, &c);
    int32_t fl[] = {7, 6}; /* c's blocks 4, 5, 6, 7: 6 and 7 reach ref 0, released last-first */
    check_free_list_is(pool, fl, 2, "after truncate d, release c");
    CHECK(kv_pool_truncate(pool, &d, 0) == PAGODA_OK && d.n_blocks == 0 && kv_pool_n_free(pool) == 4);
    kv_pool_release(pool, &a);
    kv_pool_release(pool, &b);
    CHECK(kv_pool_n_free(pool) == 8);
    kv_pool_release(pool, &a);
    kv_pool_release(pool, &b);
    kv_pool_release(pool, &c);
    kv_pool_release(pool, &d);
    kv_pool_free(pool);
}

/* ---- the randomized test ------------------------------------------------------------------- */

enum { MAX_SEQS = 16, N_DOCS = 4, DOC_LEN = 96, VOCAB = 6 };

typedef struct sim_seq {
    bool live;
    int32_t *tokens; /* [cap] prompt then generated tokens */
    uint64_t *ctx;   /* [cap] ctx[p]: rolling hash of tokens[0..p], what slot p's K/V depend on */
    int64_t n, cap;
    int64_t n_computed;
    int32_t doc; /* decoding mostly follows this document, so rewrites after truncation repeat
                  * cached content */
    kv_block_table table;
} sim_seq;

typedef struct sim {
    kv_pool *pool;
    int32_t n_blocks, bs;
    uint64_t key_mask; /* kv_pool_debug_key_bits: all ones unless collisions are forced */
    uint64_t rng;
    sim_seq seqs[MAX_SEQS];
    int32_t *data_tok;  /* [n_blocks][bs] the token whose K/V a slot holds; -1: never written */
    uint64_t *data_ctx; /* [n_blocks][bs] that token's context hash */
    int32_t docs[N_DOCS][DOC_LEN];
    int64_t n_admitted, n_hit_tokens, n_copies, n_evictions, n_alloc_failures, n_steps_failed;
    int32_t *expect_ref, *seen; /* [n_blocks] scratch */
} sim;

static uint64_t mix64(uint64_t x) {
    x += UINT64_C(0x9e3779b97f4a7c15);
    x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
    return x ^ (x >> 31);
}

static uint32_t rnd(sim *s, uint32_t n) { return (uint32_t)(test_rand_u64(&s->rng) % n); }

static void seq_push(sim_seq *q, int32_t tok) {
    if (q->n == q->cap) {
        q->cap = q->cap ? 2 * q->cap : 64;
        q->tokens = realloc(q->tokens, (size_t)q->cap * sizeof *q->tokens);
        q->ctx = realloc(q->ctx, (size_t)q->cap * sizeof *q->ctx);
        if (!q->tokens || !q->ctx) test_skip("out of memory");
    }
    q->tokens[q->n] = tok;
    q->ctx[q->n] = mix64((q->n ? q->ctx[q->n - 1] : 0x1234) ^ ((uint64_t)(uint32_t)tok << 17));
    q->n++;
}

/* The chain key of kv_pool.h, written from its formula. */
static uint64_t ref_key(uint64_t parent, const int32_t *tokens, int32_t bs, uint64_t key_mask) {
    static uint8_t buf[8 + 4 * KV_BLOCK_SIZE_MAX];
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)(parent >> (8 * i));
    for (int32_t t = 0; t < bs; t++)
        for (int i = 0; i < 4; i++) buf[8 + 4 * t + i] = (uint8_t)((uint32_t)tokens[t] >> (8 * i));
    return XXH64(buf, 8 + 4 * (size_t)bs, KV_HASH_SEED) & key_mask;
}

static sim_seq *free_slot(sim *s) {
    for (int i = 0; i < MAX_SEQS; i++)
        if (!s->seqs[i].live) return &s->seqs[i];
    return NULL;
}

static sim_seq *pick_live(sim *s) {
    int n = 0;
    for (int i = 0; i < MAX_SEQS; i++) n += s->seqs[i].live;
    if (n == 0) return NULL;
    int k = (int)rnd(s, (uint32_t)n);
    for (int i = 0; i < MAX_SEQS; i++)
        if (s->seqs[i].live && k-- == 0) return &s->seqs[i];
    return NULL;
}

static void seq_kill(sim *s, sim_seq *q) {
    kv_pool_release(s->pool, &q->table);
    CHECK(q->table.n_blocks == 0 && q->table.n_tokens == 0 && q->table.n_committed == 0);
    q->live = false;
    q->n = q->n_computed = 0;
}

/* Whether every block of q up to index j is cached (so a match of q's tokens must reach it). */
static bool chain_cached(const sim *s, const sim_seq *q, int32_t j) {
    for (int32_t i = 0; i <= j; i++)
        if (!kv_pool_block_cached(s->pool, q->table.blocks[i], NULL, NULL)) return false;
    return true;
}

/* Allocation that checks its prediction, its all-or-nothing failure, and that it takes the head
 * of the free list in order (counting evictions of cached blocks). */
static bool sim_allocate(sim *s, sim_seq *q, int64_t n_total) {
    int32_t need = kv_pool_n_blocks_needed(s->pool, &q->table, n_total, n_total);
    bool predicted = kv_pool_can_allocate(s->pool, &q->table, n_total, n_total);
    int32_t n_free = kv_pool_n_free(s->pool), old_blocks = q->table.n_blocks;
    int64_t old_tokens = q->table.n_tokens;
    int32_t head[64];
    int n_head = 0;
    for (int32_t b = kv_pool_free_first(s->pool); b >= 0 && n_head < need && n_head < 64;
         b = kv_pool_free_next(s->pool, b)) {
        s->n_evictions += kv_pool_block_cached(s->pool, b, NULL, NULL);
        head[n_head++] = b;
    }
    pagoda_status st = kv_pool_reserve(s->pool, &q->table, n_total);
    CHECK_MSG((st == PAGODA_OK) == predicted, "allocate(%lld) = %d, can_allocate said %d", (long long)n_total,
              st, predicted);
    if (st != PAGODA_OK) {
        s->n_alloc_failures++;
        CHECK(st == PAGODA_ERR_CONTEXT_FULL && need > n_free);
        CHECK(q->table.n_blocks == old_blocks && q->table.n_tokens == old_tokens && kv_pool_n_free(s->pool) == n_free);
        return false;
    }
    CHECK(q->table.n_tokens >= n_total && q->table.n_blocks == old_blocks + need);
    for (int i = 0; i < n_head; i++) {
        CHECK_MSG(q->table.blocks[old_blocks + i] == head[i], "allocation %d took block %d, head was %d", i,
                  q->table.blocks[old_blocks + i], head[i]);
        CHECK(!kv_pool_block_cached(s->pool, head[i], NULL, NULL));
    }
    return true;
}

static void op_admit(sim *s) {
    sim_seq *q = free_slot(s);
    if (!q) return;
    q->n = q->n_computed = 0;
    q->doc = (int32_t)rnd(s, N_DOCS);
    uint32_t kind = rnd(s, 8);
    if (kind == 0) { /* one block of tokens repeated: equal blocks at different depths */
        int32_t rep = 1 + (int32_t)rnd(s, 6), first = (int32_t)rnd(s, 2);
        for (int32_t r = 0; r < rep; r++)
            for (int32_t i = 0; i < s->bs; i++) seq_push(q, first + i % 2);
    } else if (kind != 1) { /* most prompts start with a prefix of a shared document */
        const int32_t *doc = s->docs[q->doc];
        int32_t len = (int32_t)rnd(s, DOC_LEN + 1);
        for (int32_t i = 0; i < len; i++) seq_push(q, doc[i]);
    }
    int32_t n_suffix = rnd(s, 3) == 0 && q->n > 0 ? 0 : 1 + (int32_t)rnd(s, 24);
    for (int32_t i = 0; i < n_suffix; i++) seq_push(q, (int32_t)rnd(s, VOCAB));
    const int32_t bs = s->bs;
    /* The longest chain a live table proves cached for these tokens. */
    int64_t lower = 0, cap = (q->n - 1) / bs * bs;
    for (int i = 0; i < MAX_SEQS; i++) {
        const sim_seq *o = &s->seqs[i];
        if (!o->live) continue;
        for (int32_t j = 0; j < o->table.n_committed && (int64_t)(j + 1) * bs <= cap; j++) {
            if (memcmp(o->tokens + (size_t)j * bs, q->tokens + (size_t)j * bs, (size_t)bs * sizeof(int32_t)) ||
                !chain_cached(s, o, j))
                break;
            if ((int64_t)(j + 1) * bs > lower) lower = (int64_t)(j + 1) * bs;
        }
    }
    int64_t nc = kv_pool_match_prefix(s->pool, q->tokens, (int32_t)q->n, &q->table);
    kv_pool_record_lookup(s->pool, (int32_t)q->n, (int32_t)nc);
    CHECK_MSG(nc % bs == 0 && nc < q->n && nc == q->table.n_tokens && q->table.n_committed == nc / bs,
              "match_prefix gave %lld of %lld tokens (table %lld, %d committed)", (long long)nc,
              (long long)q->n, (long long)q->table.n_tokens, q->table.n_committed);
    /* (Forced collisions may legitimately cost hits.) */
    CHECK_MSG(nc >= lower || s->key_mask != UINT64_MAX, "match_prefix found %lld tokens, a live table has %lld cached", (long long)nc,
              (long long)lower);
    q->live = true;
    q->n_computed = nc;
    s->n_admitted++;
    s->n_hit_tokens += nc;
    if (!sim_allocate(s, q, q->n)) seq_kill(s, q); /* the scheduler would keep it waiting */
}

static void op_step(sim *s, sim_seq *q) {
    const int32_t bs = s->bs;
    int64_t k;
    if (q->n_computed < q->n) {
        int64_t left = q->n - q->n_computed, chunk = 1 + rnd(s, (uint32_t)(3 * bs + 5));
        k = chunk < left ? chunk : left;
    } else {
        seq_push(q, q->n < DOC_LEN && rnd(s, 4) != 0 ? s->docs[q->doc][q->n] : (int32_t)rnd(s, VOCAB));
        k = 1;
    }
    int64_t end = q->n_computed + k, lookahead = rnd(s, 4) == 0 ? rnd(s, (uint32_t)(2 * bs)) : 0;
    bool one_call = rnd(s, 2); /* kv_pool_allocate, or its parts */
    if (one_call) {
        int64_t total = end + lookahead;
        int32_t need = kv_pool_n_blocks_needed(s->pool, &q->table, q->n_computed, total);
        int32_t n_free = kv_pool_n_free(s->pool), old_blocks = q->table.n_blocks;
        int64_t old_tokens = q->table.n_tokens;
        bool predicted = kv_pool_can_allocate(s->pool, &q->table, q->n_computed, total), has_copy = true;
        kv_block_copy cp;
        bool ok = kv_pool_allocate(s->pool, &q->table, (int32_t)q->n_computed, (int32_t)total, &cp, &has_copy);
        CHECK_MSG(ok == predicted, "allocate(%lld, %lld) = %d, predicted %d", (long long)q->n_computed,
                  (long long)total, ok, predicted);
        if (!ok) {
            s->n_alloc_failures++;
            CHECK(!has_copy && q->table.n_blocks == old_blocks && q->table.n_tokens == old_tokens &&
                  kv_pool_n_free(s->pool) == n_free);
            if (rnd(s, 2)) seq_kill(s, q); /* preempted */
            return;
        }
        CHECK_MSG(kv_pool_n_free(s->pool) == n_free - need, "allocate took %d blocks, predicted %d",
                  n_free - kv_pool_n_free(s->pool), need);
        if (has_copy) {
            CHECK(q->n_computed % bs != 0 && cp.dst == q->table.blocks[q->n_computed / bs] &&
                  kv_pool_block_ref(s->pool, cp.src) >= 1);
            memcpy(s->data_tok + (size_t)cp.dst * bs, s->data_tok + (size_t)cp.src * bs, (size_t)bs * 4);
            memcpy(s->data_ctx + (size_t)cp.dst * bs, s->data_ctx + (size_t)cp.src * bs, (size_t)bs * 8);
            s->n_copies++;
        }
    } else if (!sim_allocate(s, q, end + lookahead)) {
        if (rnd(s, 2)) seq_kill(s, q); /* preempted */
        return;
    }
    for (int64_t p = q->n_computed; p < end; p++) {
        int32_t i = (int32_t)(p / bs);
        if (!one_call && (p == q->n_computed || p % bs == 0)) {
            kv_block_copy cp;
            int32_t old = q->table.blocks[i];
            pagoda_status st = kv_pool_prepare_write(s->pool, &q->table, p, &cp);
            if (st != PAGODA_OK) {
                CHECK_MSG(st == PAGODA_ERR_CONTEXT_FULL && kv_pool_n_free(s->pool) == 0, "prepare_write: %s",
                          pagoda_last_error());
                CHECK(q->table.blocks[i] == old);
                s->n_steps_failed++;
                return; /* nothing computed this step */
            }
            if (cp.src >= 0) {
                CHECK(p % bs != 0 && cp.src == old && cp.dst == q->table.blocks[i] &&
                      kv_pool_block_ref(s->pool, cp.src) >= 1);
                memcpy(s->data_tok + (size_t)cp.dst * bs, s->data_tok + (size_t)cp.src * bs, (size_t)bs * 4);
                memcpy(s->data_ctx + (size_t)cp.dst * bs, s->data_ctx + (size_t)cp.src * bs, (size_t)bs * 8);
                s->n_copies++;
            } else {
                CHECK(cp.dst == -1 && (q->table.blocks[i] == old || p % bs == 0));
            }
        }
        int32_t b = q->table.blocks[i];
        CHECK_MSG(kv_pool_block_ref(s->pool, b) == 1 && !kv_pool_block_cached(s->pool, b, NULL, NULL),
                  "writing position %lld into block %d: ref %d, cached %d", (long long)p, b,
                  kv_pool_block_ref(s->pool, b), kv_pool_block_cached(s->pool, b, NULL, NULL));
        s->data_tok[(size_t)b * bs + p % bs] = q->tokens[p];
        s->data_ctx[(size_t)b * bs + p % bs] = q->ctx[p];
    }
    q->n_computed = end;
    pagoda_status st = kv_pool_commit(s->pool, &q->table, q->tokens, end);
    CHECK_MSG(st == PAGODA_OK, "commit: %s", pagoda_last_error());
    CHECK(q->table.n_committed == end / bs);
}

static void op_fork(sim *s, sim_seq *q) {
    sim_seq *f = free_slot(s);
    if (!f) return;
    f->n = 0;
    for (int64_t i = 0; i < q->n; i++) seq_push(f, q->tokens[i]);
    f->n_computed = q->n_computed;
    f->doc = (int32_t)rnd(s, N_DOCS);
    CHECK(kv_pool_fork(s->pool, &q->table, &f->table) == PAGODA_OK);
    f->live = true;
}

static void op_truncate(sim *s, sim_seq *q) {
    int64_t n = rnd(s, (uint32_t)q->n_computed + 1);
    CHECK(kv_pool_truncate(s->pool, &q->table, n) == PAGODA_OK);
    CHECK(q->table.n_tokens == n && q->table.n_committed <= n / s->bs);
    q->n = q->n_computed = n;
    q->doc = (int32_t)rnd(s, N_DOCS);
}
/* Every invariant of the file comment; one CHECK per kind of fault so a failure reads clearly. */
static void check_state(sim *s, int64_t step) {
    const int32_t nb = s->n_blocks, bs = s->bs;
    memset(s->expect_ref, 0, (size_t)nb * sizeof *s->expect_ref);
    bool tables_ok = true, refs_ok = true;
    for (int i = 0; i < MAX_SEQS; i++) {
        const sim_seq *q = &s->seqs[i];
        if (!q->live) continue;
        const kv_block_table *t = &q->table;
        tables_ok &= t->n_blocks == (t->n_tokens + bs - 1) / bs && t->n_tokens >= q->n_computed &&
                     (int64_t)t->n_committed * bs <= q->n_computed && q->n_computed <= q->n;
        memset(s->seen, 0, (size_t)nb * sizeof *s->seen);
        for (int32_t j = 0; j < t->n_blocks; j++) {
            int32_t b = t->blocks[j];
            if (b < 0 || b >= nb || s->seen[b]++) {
                tables_ok = false;
                continue;
            }
            s->expect_ref[b]++;
        }
    }
    CHECK_MSG(tables_ok, "step %lld: a table's counts or block ids are inconsistent", (long long)step);
    const kv_block_table *live[MAX_SEQS];
    int32_t n_live = 0;
    for (int i = 0; i < MAX_SEQS; i++)
        if (s->seqs[i].live) live[n_live++] = &s->seqs[i].table;
    CHECK_MSG(kv_pool_check(s->pool, live, n_live), "step %lld: kv_pool_check: %s", (long long)step,
              pagoda_last_error());
    int32_t n_zero = 0, bad = -1;
    for (int32_t b = 0; b < nb; b++) {
        n_zero += s->expect_ref[b] == 0;
        if (kv_pool_block_ref(s->pool, b) != s->expect_ref[b] && bad < 0) bad = b;
    }
    refs_ok = bad < 0;
    CHECK_MSG(refs_ok, "step %lld: block %d has ref %d, %d live tables hold it", (long long)step, bad,
              bad >= 0 ? kv_pool_block_ref(s->pool, bad) : 0, bad >= 0 ? s->expect_ref[bad] : 0);

    /* The free list: forward walk, backward links, exactly the ref-0 blocks. */
    memset(s->seen, 0, (size_t)nb * sizeof *s->seen);
    int32_t n_list = 0, prev = -1;
    bool list_ok = kv_pool_free_first(s->pool) == -1 || kv_pool_free_prev(s->pool, kv_pool_free_first(s->pool)) == -1;
    for (int32_t b = kv_pool_free_first(s->pool); b >= 0 && list_ok; b = kv_pool_free_next(s->pool, b)) {
        list_ok = b < nb && !s->seen[b] && s->expect_ref[b] == 0 && kv_pool_free_prev(s->pool, b) == prev;
        if (list_ok) s->seen[b] = 1;
        prev = b;
        n_list++;
    }
    list_ok &= prev == kv_pool_free_last(s->pool) && n_list == n_zero && n_list == kv_pool_n_free(s->pool);
    CHECK_MSG(list_ok, "step %lld: free list broken (%d walked, %d ref-0 blocks, n_free %d)", (long long)step,
              n_list, n_zero, kv_pool_n_free(s->pool));
    kv_pool_stats st = pool_stats(s->pool);
    CHECK(st.n_free == n_zero && st.usage == (double)(nb - n_zero) / nb);

    /* The prefix cache: reachable by key, holding the tokens its data was computed from. */
    int32_t n_cached = 0, bad_cached = -1;
    for (int32_t b = 0; b < nb; b++) {
        uint64_t key;
        const int32_t *toks;
        if (!kv_pool_block_cached(s->pool, b, &key, &toks)) continue;
        n_cached++;
        bool ok = kv_pool_lookup(s->pool, key) == b;
        for (int32_t o = 0; o < bs; o++) ok &= s->data_tok[(size_t)b * bs + o] == toks[o];
        if (!ok && bad_cached < 0) bad_cached = b;
    }
    CHECK_MSG(bad_cached < 0, "step %lld: cached block %d is not found by its key or holds other tokens",
              (long long)step, bad_cached);
    CHECK_MSG(n_cached == st.n_cached, "step %lld: %d cached blocks, stats say %d", (long long)step, n_cached,
              st.n_cached);

    /* Committed keys follow the formula; every computed position reads back its own context. */
    for (int i = 0; i < MAX_SEQS; i++) {
        const sim_seq *q = &s->seqs[i];
        if (!q->live) continue;
        uint64_t key = KV_HASH_ROOT;
        bool keys_ok = true;
        for (int32_t j = 0; j < q->table.n_committed; j++) {
            key = ref_key(key, q->tokens + (size_t)j * bs, bs, s->key_mask);
            uint64_t cached_key;
            keys_ok &= q->table.block_keys[j] == key;
            if (kv_pool_block_cached(s->pool, q->table.blocks[j], &cached_key, NULL)) keys_ok &= cached_key == key;
        }
        CHECK_MSG(keys_ok, "step %lld: seq %d: a committed key differs from the formula", (long long)step, i);
        int64_t bad_pos = -1;
        for (int64_t p = 0; p < q->n_computed && bad_pos < 0; p++)
            if (s->data_ctx[(size_t)q->table.blocks[p / bs] * bs + p % bs] != q->ctx[p]) bad_pos = p;
        CHECK_MSG(bad_pos < 0, "step %lld: seq %d reads another context at position %lld of %lld computed",
                  (long long)step, i, (long long)bad_pos, (long long)q->n_computed);
    }
}

static void random_run(uint64_t seed, int32_t n_blocks, int32_t bs, int n_steps, int key_bits) {
    sim s;
    memset(&s, 0, sizeof s);
    s.rng = seed;
    s.n_blocks = n_blocks;
    s.bs = bs;
    s.pool = pool_new(n_blocks, bs);
    s.key_mask = key_bits >= 64 ? UINT64_MAX : (UINT64_C(1) << key_bits) - 1;
    kv_pool_debug_key_bits(s.pool, key_bits);
    s.data_tok = malloc((size_t)n_blocks * bs * sizeof *s.data_tok);
    s.data_ctx = calloc((size_t)n_blocks * bs, sizeof *s.data_ctx);
    s.expect_ref = calloc((size_t)n_blocks, sizeof *s.expect_ref);
    s.seen = calloc((size_t)n_blocks, sizeof *s.seen);
    if (!s.pool || !s.data_tok || !s.data_ctx || !s.expect_ref || !s.seen) test_skip("out of memory");
    for (size_t i = 0; i < (size_t)n_blocks * bs; i++) s.data_tok[i] = -1;
    for (int d = 0; d < N_DOCS; d++)
        for (int i = 0; i < DOC_LEN; i++) s.docs[d][i] = (int32_t)rnd(&s, VOCAB);
    /* Document 1 is document 0 with one token changed in its second block: its later blocks have
     * the same tokens as document 0's but another parent, and must never match them. */
    memcpy(s.docs[1], s.docs[0], sizeof s.docs[0]);
    s.docs[1][bs + bs / 2] = (s.docs[0][bs + bs / 2] + 1) % VOCAB;
    for (int step = 0; step < n_steps; step++) {
        uint32_t r = rnd(&s, 1000);
        sim_seq *q = pick_live(&s);
        if (r < 200 || !q) op_admit(&s);
        else if (r < 700) op_step(&s, q);
        else if (r < 780) op_fork(&s, q);
        else if (r < 830) op_truncate(&s, q);
        else if (r < 997) seq_kill(&s, q);
        else kv_pool_reset_prefix_cache(s.pool);
        check_state(&s, step);
        if (test_n_failures > 20) break;
    }
    for (int i = 0; i < MAX_SEQS; i++)
        if (s.seqs[i].live) seq_kill(&s, &s.seqs[i]);
    check_state(&s, n_steps);
    kv_pool_stats st = pool_stats(s.pool);
    CHECK(st.n_free == n_blocks && st.usage == 0.0);
    printf("random %d blocks x %d, %d-bit keys: %lld admitted, %lld/%lld prompt tokens hit, %lld copies, %lld evictions, "
           "%lld failed allocations, %lld failed steps\n",
           n_blocks, bs, key_bits, (long long)s.n_admitted, (long long)st.prefix_hits, (long long)st.prefix_queries,
           (long long)s.n_copies, (long long)s.n_evictions, (long long)s.n_alloc_failures, (long long)s.n_steps_failed);
    CHECK(st.prefix_hits == (uint64_t)s.n_hit_tokens && st.prefix_hits > 0);
    CHECK((s.n_copies > 0 || bs == 1) && s.n_evictions > 0 && s.n_alloc_failures > 0); /* bs 1: nothing to copy */
    for (int i = 0; i < MAX_SEQS; i++) {
        kv_pool_release(s.pool, &s.seqs[i].table);
        free(s.seqs[i].tokens);
        free(s.seqs[i].ctx);
    }
    free(s.data_tok);
    free(s.data_ctx);
    free(s.expect_ref);
    free(s.seen);
    kv_pool_free(s.pool);
}

int main(void) {
    uint64_t seed = test_seed();
    test_init_errors();
    test_eviction_order();
    test_all_or_nothing();
    test_fork_and_cow();
    static const int32_t runs[][4] = {/* n_blocks, block_size, steps, key bits */
                                      {24, 4, 3000, 64}, {64, 1, 2000, 64}, {40, 3, 3000, 64},
                                      {40, 16, 2500, 64}, {12, 2, 2000, 64}, {96, 4, 3000, 64},
                                      {48, 2, 3000, 3}, {32, 4, 20000, 1}, {20, 2, 20000, 1},
                                      {40, 3, 20000, 2}};
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++)
        random_run(seed + i, runs[i][0], runs[i][1], runs[i][2], runs[i][3]);
    return test_finish();
}
