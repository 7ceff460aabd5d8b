/* tests/test_kv_pool.c - the KV block pool's invariants under random operation sequences, and its
 * directed behaviours: LRU eviction order, all-or-nothing allocation, copy-on-write, chained prefix
 * keys, the partial last block never cached, a match never covering the whole prompt.
 *
 * The random walk keeps an independent model of each sequence's tokens and checks after every
 * operation, with kv_pool_check, that each block's ref count equals the number of live tables
 * holding it, that the free list is a consistent doubly linked list of exactly the ref-0 blocks,
 * and that every cached block is found under its key; at the end every block is free.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv/kv_pool.h"
#include "testlib.h"

enum { BS = 4, MAX_SEQS = 12, MAX_TOKENS = 64 };

typedef struct model_seq {
    bool live;
    kv_block_table table;
    int32_t tokens[MAX_TOKENS];
    int32_t n_tokens;    /* tokens it holds */
    int32_t n_computed;  /* tokens with K/V */
    int32_t content[MAX_TOKENS]; /* what the simulated cache holds for it: token id written at each position */
} model_seq;

/* A simulated K/V store: cache[block][offset] = token id written there (-1 none). */
static int32_t cache_data[4096][BS];

static void write_tokens(model_seq *s, int32_t from, int32_t to) {
    for (int32_t p = from; p < to; p++) cache_data[s->table.blocks[p / BS]][p % BS] = s->tokens[p];
}

static bool content_ok(const model_seq *s) {
    for (int32_t p = 0; p < s->n_computed; p++)
        if (cache_data[s->table.blocks[p / BS]][p % BS] != s->tokens[p]) return false;
    return true;
}

static void check_pool(const kv_pool *pool, model_seq *seqs, int step) {
    const kv_block_table *tables[MAX_SEQS];
    int n = 0;
    for (int i = 0; i < MAX_SEQS; i++)
        if (seqs[i].live) tables[n++] = &seqs[i].table;
    CHECK_MSG(kv_pool_check(pool, tables, n), "step %d: %s", step, pagoda_last_error());
    for (int i = 0; i < MAX_SEQS; i++)
        if (seqs[i].live) CHECK_MSG(content_ok(&seqs[i]), "step %d: sequence %d reads tokens it did not write", step, i);
}

static void random_walk(uint64_t seed, int n_blocks, int n_steps) {
    kv_pool *pool;
    CHECK(kv_pool_init(n_blocks, BS, true, &pool) == PAGODA_OK);
    model_seq seqs[MAX_SEQS];
    memset(seqs, 0, sizeof seqs);
    memset(cache_data, 0xff, sizeof cache_data);
    uint64_t rng = seed;
    int n_cow = 0, n_hits = 0, n_fail = 0;
    for (int step = 0; step < n_steps; step++) {
        int i = (int)(test_rand_u64(&rng) % MAX_SEQS);
        model_seq *s = &seqs[i];
        int op = (int)(test_rand_u64(&rng) % 10);
        if (!s->live) { /* start a sequence: a prompt from a small alphabet so prefixes repeat */
            s->n_tokens = 1 + (int32_t)(test_rand_u64(&rng) % 24);
            for (int32_t p = 0; p < s->n_tokens; p++) s->tokens[p] = (int32_t)(test_rand_u64(&rng) % 3);
            s->live = true;
            s->n_computed = kv_pool_match_prefix(pool, s->tokens, s->n_tokens, &s->table);
            CHECK(s->n_computed < s->n_tokens && s->n_computed % BS == 0);
            n_hits += s->n_computed > 0;
            /* a hit must hold exactly these tokens */
            CHECK_MSG(content_ok(s), "step %d: prefix hit with the wrong tokens", step);
        } else if (op < 5) { /* compute some tokens (growing the table), maybe append a new token */
            int32_t upto = s->n_computed + 1 + (int32_t)(test_rand_u64(&rng) % 6);
            if (upto > s->n_tokens) upto = s->n_tokens;
            kv_block_copy copy;
            bool has_copy;
            int32_t free_before = kv_pool_n_free(pool), blocks_before = s->table.n_blocks;
            if (kv_pool_allocate(pool, &s->table, s->n_computed, upto, &copy, &has_copy)) {
                if (has_copy) { /* copy the shared block's data, as the runner would */
                    memcpy(cache_data[copy.dst], cache_data[copy.src], sizeof cache_data[0]);
                    n_cow++;
                }
                write_tokens(s, s->n_computed, upto);
                s->n_computed = upto;
                kv_pool_commit(pool, &s->table, s->tokens, s->n_computed);
                if (s->n_computed == s->n_tokens && s->n_tokens < MAX_TOKENS)
                    s->tokens[s->n_tokens++] = (int32_t)(test_rand_u64(&rng) % 3);
            } else { /* all or nothing */
                n_fail++;
                CHECK(kv_pool_n_free(pool) == free_before && s->table.n_blocks == blocks_before);
            }
        } else if (op < 7) { /* fork into a free slot */
            int j = (int)(test_rand_u64(&rng) % MAX_SEQS);
            if (!seqs[j].live && s->n_computed > 0) {
                model_seq *c = &seqs[j];
                *c = *s;
                c->table = (kv_block_table){0};
                CHECK(kv_pool_fork(pool, &s->table, &c->table) == PAGODA_OK);
                c->live = true;
                /* the child diverges at the first position not yet computed (like a new sample) */
                c->n_tokens = c->n_computed + 1;
                c->tokens[c->n_computed] = 7 + (int32_t)(test_rand_u64(&rng) % 3);
            }
        } else { /* free */
            kv_pool_release(pool, &s->table);
            s->live = false;
        }
        int failures_before = test_n_failures;
        check_pool(pool, seqs, step);
        if (test_n_failures > failures_before) break;
    }
    for (int i = 0; i < MAX_SEQS; i++)
        if (seqs[i].live) kv_pool_release(pool, &seqs[i].table);
    CHECK(kv_pool_n_free(pool) == n_blocks);
    CHECK(kv_pool_check(pool, NULL, 0));
    printf("random walk (%d blocks, %d steps): %d copy-on-writes, %d prefix hits, %d refused allocations\n", n_blocks,
           n_steps, n_cow, n_hits, n_fail);
    CHECK(n_cow > 0 && n_hits > 0); /* the walk reached the interesting cases */
    if (n_blocks <= 16) CHECK(n_fail > 0);  /* and a small pool ran dry */
    kv_pool_free(pool);
}

static void directed(void) {
    kv_pool *pool;
    CHECK(kv_pool_init(4, BS, true, &pool) == PAGODA_OK);
    kv_block_copy copy;
    bool has_copy;
    int32_t a_tokens[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    kv_block_table a = {0}, b = {0}, c = {0};
    /* allocation order is the free list's: 0, 1, 2 */
    CHECK(kv_pool_allocate(pool, &a, 0, 9, &copy, &has_copy) && !has_copy);
    CHECK(a.n_blocks == 3 && a.blocks[0] == 0 && a.blocks[1] == 1 && a.blocks[2] == 2);
    kv_pool_commit(pool, &a, a_tokens, 9);
    CHECK(a.n_keyed == 2); /* the partial last block is not cached */
    /* all or nothing: 5 more blocks do not exist */
    CHECK(!kv_pool_allocate(pool, &b, 0, 20, &copy, &has_copy) && b.n_blocks == 0 && kv_pool_n_free(pool) == 1);
    /* the same prefix is found; never the whole prompt */
    CHECK(kv_pool_match_prefix(pool, a_tokens, 9, &b) == 8 && b.blocks[0] == 0 && b.blocks[1] == 1);
    kv_pool_release(pool, &b);
    CHECK(kv_pool_match_prefix(pool, a_tokens, 8, &b) == 4); /* 8 tokens: the second block would be all of it */
    kv_pool_release(pool, &b);
    /* the parent key matters: same second block after a different first block does not match */
    int32_t other[9] = {9, 9, 9, 9, 5, 6, 7, 8, 0};
    CHECK(kv_pool_match_prefix(pool, other, 9, &b) == 0);
    /* copy-on-write after a fork into the shared partial block */
    CHECK(kv_pool_fork(pool, &a, &c) == PAGODA_OK);
    CHECK(kv_pool_allocate(pool, &c, 9, 10, &copy, &has_copy) && has_copy && copy.src == 2 && copy.dst == 3);
    CHECK(c.blocks[2] == 3 && a.blocks[2] == 2 && c.blocks[0] == 0);
    CHECK(!kv_pool_allocate(pool, &a, 9, 13, &copy, &has_copy)); /* a needs a 4th block: none left */
    const kv_block_table *tables[] = {&a, &c};
    CHECK_MSG(kv_pool_check(pool, tables, 2), "%s", pagoda_last_error());
    /* release order decides eviction order: a's blocks go back last block first */
    kv_pool_release(pool, &c);
    kv_pool_release(pool, &a);
    CHECK(kv_pool_n_free(pool) == 4);
    kv_block_table d = {0};
    CHECK(kv_pool_allocate(pool, &d, 0, 4, &copy, &has_copy) && d.blocks[0] == 3); /* c's uncached copy first */
    kv_pool_release(pool, &d);
    /* the cached prefix blocks 0 and 1 were freed last-first: 2, then 1, then 0 are evicted in turn */
    kv_block_table e = {0};
    CHECK(kv_pool_allocate(pool, &e, 0, 12, &copy, &has_copy));
    CHECK(e.blocks[0] == 2 && e.blocks[1] == 1 && e.blocks[2] == 0);
    kv_pool_release(pool, &e);
    CHECK(kv_pool_match_prefix(pool, a_tokens, 9, &b) == 0); /* evicted */
    kv_pool_stats stats;
    kv_pool_get_stats(pool, &stats);
    CHECK(stats.n_evictions >= 2);
    kv_pool_free(pool);
}

int main(void) {
    directed();
    uint64_t seed = test_seed();
    random_walk(seed, 16, 20000);
    random_walk(seed + 1, 40, 20000);
    random_walk(seed + 2, 200, 5000);
    kv_pool *big;
    CHECK(kv_pool_init(1 << 20, 16, true, &big) == PAGODA_OK); /* a million blocks initialises quickly */
    kv_pool_free(big);
    return test_finish();
}
