/* tests/test_kv_prefix.c - the prefix cache of the KV block pool (kv/kv_pool.h), directed cases:
 *   - a prefix shared by two requests is matched (the blocks are shared, hits are counted), with keys
 *     equal to the chain formula of kv_pool.h computed here independently;
 *   - a chain whose earlier block differs matches nothing after it (the parent key matters);
 *   - the last partial block is never cached; a match never covers the whole prompt;
 *   - cached free blocks are evicted least recently used first, and a match takes a cached block
 *     out of the middle of the free list;
 *   - two requests with the same prompt computed at once are deduplicated at commit;
 *   - truncating into a committed block and rewriting it takes it out of the cache (or copies it
 *     when shared); reset empties the cache;
 *   - with forced key collisions (kv_pool_debug_key_bits) a hit still needs the right tokens and the
 *     right parent block in the right generation;
 *   - with prefix caching off nothing is cached or counted;
 *   - speed: a pool of 1M blocks initialises in milliseconds; allocation and commit are O(1) a block.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h> /* defines: XXH64 */

#include "kv/kv_pool.h" /* defines: kv_pool_*, kv_block_table, kv_block_copy */
#include "pagoda.h"     /* defines: pagoda_last_error */
#include "testlib.h"

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

/* The chain key of kv_pool.h, written from its formula (little-endian bytes). */
static uint64_t ref_key(uint64_t parent, const int32_t *tokens, int32_t bs, int key_bits) {
    uint8_t buf[8 + 4 * 64];
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)(parent >> (8 * i));
    for (int32_t t = 0; t < bs; t++)
        for (int i = 0; i < 4; i++) buf[8 + 4 * t + i] = (uint8_t)((uint32_t)tokens[t] >> (8 * i));
    uint64_t k = XXH64(buf, 8 + 4 * (size_t)bs, KV_HASH_SEED);
    return key_bits >= 64 ? k : k & ((UINT64_C(1) << key_bits) - 1);
}

/* match + allocate + commit of the whole prompt, as the scheduler and runner would do it. */
static int64_t run_prompt(kv_pool *pool, kv_block_table *t, const int32_t *tokens, int64_t n) {
    int64_t nc = kv_pool_match_prefix(pool, tokens, (int32_t)n, t);
    kv_pool_record_lookup(pool, (int32_t)n, (int32_t)nc);
    CHECK_MSG(kv_pool_reserve(pool, t, n) == PAGODA_OK, "allocate: %s", pagoda_last_error());
    kv_block_copy cp;
    for (int64_t p = nc; p < n; p++)
        if (p == nc || p % kv_pool_block_size(pool) == 0) {
            CHECK(kv_pool_prepare_write(pool, t, p, &cp) == PAGODA_OK);
            CHECK(cp.src == -1);
        }
    CHECK_MSG(kv_pool_commit(pool, t, tokens, n) == PAGODA_OK, "commit: %s", pagoda_last_error());
    return nc;
}

static void test_shared_prefix(void) {
    kv_pool *pool = pool_new(32, 4);
    kv_block_table a, b, c;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    memset(&c, 0, sizeof c);
    const int32_t p1[] = {10, 11, 12, 13, 20, 21, 22, 23, 30, 31};                 /* 2 full + 2 */
    const int32_t p2[] = {10, 11, 12, 13, 20, 21, 22, 23, 40, 41, 42, 43, 44};     /* shares 8 */
    CHECK(run_prompt(pool, &a, p1, 10) == 0);
    CHECK(a.n_blocks == 3 && a.n_committed == 2);
    kv_pool_stats s = pool_stats(pool);
    CHECK_MSG(s.n_cached == 2, "%d blocks cached, expected 2 (the partial block never is)", s.n_cached);
    CHECK(!kv_pool_block_cached(pool, a.blocks[2], NULL, NULL));
    uint64_t k0 = ref_key(KV_HASH_ROOT, p1, 4, 64), k1 = ref_key(k0, p1 + 4, 4, 64), key;
    const int32_t *toks;
    CHECK(a.block_keys[0] == k0 && a.block_keys[1] == k1);
    CHECK(kv_pool_lookup(pool, k0) == a.blocks[0] && kv_pool_lookup(pool, k1) == a.blocks[1]);
    CHECK(kv_pool_block_cached(pool, a.blocks[1], &key, &toks) && key == k1 && memcmp(toks, p1 + 4, 16) == 0);

    CHECK(run_prompt(pool, &b, p2, 13) == 8);
    CHECK(b.blocks[0] == a.blocks[0] && b.blocks[1] == a.blocks[1] && b.blocks[2] != a.blocks[2]);
    CHECK(kv_pool_block_ref(pool, a.blocks[0]) == 2 && kv_pool_block_ref(pool, a.blocks[2]) == 1);
    s = pool_stats(pool);
    CHECK_MSG(s.prefix_queries == 23 && s.prefix_hits == 8, "queries %lld hits %lld, expected 23 and 8",
              (long long)s.prefix_queries, (long long)s.prefix_hits);
    CHECK(s.n_cached == 3); /* b's third block (40..43) joins */

    /* Never the whole prompt: 8 tokens = 2 full cached blocks, only the first is reused. */
    int64_t nc = -1;
    CHECK((nc = kv_pool_match_prefix(pool, p1, 8, &c)) == 4 && c.n_blocks == 1);
    kv_pool_release(pool, &c);
    CHECK((nc = kv_pool_match_prefix(pool, p1, 9, &c)) == 8);
    CHECK(kv_pool_match_prefix(pool, p1, 9, &c) == 0 && c.n_blocks == 2); /* not empty: 0 */
    kv_pool_release(pool, &c);
    CHECK((nc = kv_pool_match_prefix(pool, p1, 4, &c)) == 0 && c.n_blocks == 0);
    CHECK((nc = kv_pool_match_prefix(pool, p1, 1, &c)) == 0);
    CHECK((nc = kv_pool_match_prefix(pool, p1, 0, &c)) == 0);
    CHECK(kv_pool_match_prefix(pool, p1, -1, &c) == 0 && c.n_blocks == 0);

    /* The parent matters: block 1 of p3 has p1's tokens but follows another block 0. */
    const int32_t p3[] = {10, 11, 12, 99, 20, 21, 22, 23, 30};
    CHECK((nc = kv_pool_match_prefix(pool, p3, 9, &c)) == 0);
    CHECK(run_prompt(pool, &c, p3, 9) == 0);
    CHECK(c.blocks[1] != a.blocks[1] && c.block_keys[1] == ref_key(ref_key(KV_HASH_ROOT, p3, 4, 64), p3 + 4, 4, 64));
    CHECK(pool_stats(pool).n_cached == 5);

    /* Reset: nothing matches any more, counters stay. */
    kv_pool_release(pool, &a);
    kv_pool_release(pool, &b);
    kv_pool_release(pool, &c);
    kv_pool_reset_prefix_cache(pool);
    s = pool_stats(pool);
    CHECK(s.n_cached == 0 && s.n_free == 32 && s.prefix_hits == 8 && kv_pool_lookup(pool, k0) == -1);
    CHECK((nc = kv_pool_match_prefix(pool, p2, 13, &c)) == 0);
    kv_pool_release(pool, &a);
    kv_pool_release(pool, &b);
    kv_pool_release(pool, &c);
    kv_pool_free(pool);
}

/* Cached free blocks are evicted from the head; a match takes its blocks out of the middle. */
static void test_lru_eviction(void) {
    kv_pool *pool = pool_new(6, 4);
    kv_block_table a, d, e;
    memset(&a, 0, sizeof a);
    memset(&d, 0, sizeof d);
    memset(&e, 0, sizeof e);
    int32_t p[16];
    for (int i = 0; i < 16; i++) p[i] = 100 + i;
    CHECK(run_prompt(pool, &a, p, 13) == 0); /* blocks 0 1 2 cached, 3 partial */
    kv_pool_release(pool, &a);               /* free list: 4 5 3 2 1 0 */
    int32_t want1[] = {4, 5, 3, 2, 1, 0}, got[8], n = 0;
    for (int32_t b = kv_pool_free_first(pool); b >= 0 && n < 8; b = kv_pool_free_next(pool, b)) got[n++] = b;
    CHECK(n == 6 && memcmp(got, want1, sizeof want1) == 0);
    int32_t q[10];
    memcpy(q, p, 8 * sizeof *q);
    q[8] = 7, q[9] = 8;
    CHECK(run_prompt(pool, &d, q, 10) == 8); /* reuses 0 1 (touched), takes 4 */
    CHECK(d.blocks[0] == 0 && d.blocks[1] == 1 && d.blocks[2] == 4);
    n = 0;
    for (int32_t b = kv_pool_free_first(pool); b >= 0 && n < 8; b = kv_pool_free_next(pool, b)) got[n++] = b;
    int32_t want2[] = {5, 3, 2};
    CHECK(n == 3 && memcmp(got, want2, sizeof want2) == 0);
    uint64_t k2 = ref_key(ref_key(ref_key(KV_HASH_ROOT, p, 4, 64), p + 4, 4, 64), p + 8, 4, 64);
    CHECK(kv_pool_lookup(pool, k2) == 2);
    CHECK(kv_pool_reserve(pool, &e, 8) == PAGODA_OK && e.blocks[0] == 5 && e.blocks[1] == 3);
    CHECK(kv_pool_lookup(pool, k2) == 2); /* 5 and 3 were not cached: block 2 still is */
    CHECK(kv_pool_reserve(pool, &e, 12) == PAGODA_OK && e.blocks[2] == 2);
    CHECK(kv_pool_lookup(pool, k2) == -1 && !kv_pool_block_cached(pool, 2, NULL, NULL)); /* evicted */
    CHECK(pool_stats(pool).n_cached == 2);
    kv_pool_release(pool, &d);
    kv_pool_release(pool, &e);
    kv_pool_release(pool, &a);
    kv_pool_release(pool, &d);
    kv_pool_release(pool, &e);
    kv_pool_free(pool);
}

/* Two requests with one prompt computed in the same step: the second one's blocks are swapped for
 * the cached ones at commit and its own go back to the pool. */
static void test_dedup(void) {
    kv_pool *pool = pool_new(16, 4);
    kv_block_table a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    int32_t p[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    int64_t nc;
    CHECK((nc = kv_pool_match_prefix(pool, p, 10, &a)) == 0);
    CHECK((nc = kv_pool_match_prefix(pool, p, 10, &b)) == 0);
    CHECK(kv_pool_reserve(pool, &a, 10) == PAGODA_OK && kv_pool_reserve(pool, &b, 10) == PAGODA_OK);
    int32_t b_own[3] = {b.blocks[0], b.blocks[1], b.blocks[2]};
    CHECK(kv_pool_commit(pool, &a, p, 10) == PAGODA_OK);
    CHECK(kv_pool_n_free(pool) == 10);
    CHECK(kv_pool_commit(pool, &b, p, 10) == PAGODA_OK);
    CHECK(b.blocks[0] == a.blocks[0] && b.blocks[1] == a.blocks[1] && b.blocks[2] == b_own[2]);
    CHECK(kv_pool_block_ref(pool, a.blocks[0]) == 2 && kv_pool_block_ref(pool, b_own[0]) == 0);
    CHECK(kv_pool_n_free(pool) == 12 && pool_stats(pool).n_cached == 2);
    CHECK(kv_pool_free_last(pool) == b_own[1] && kv_pool_free_prev(pool, b_own[1]) == b_own[0]);
    /* Committing the same tokens again is a no-op; past the table's slots is an error. */
    CHECK(kv_pool_commit(pool, &b, p, 10) == PAGODA_OK && b.n_committed == 2);
    CHECK(kv_pool_commit(pool, &b, p, 13) == PAGODA_ERR_INVALID_ARGUMENT);
    kv_pool_release(pool, &a);
    kv_pool_release(pool, &b);
    CHECK(kv_pool_n_free(pool) == 16);
    kv_pool_release(pool, &a);
    kv_pool_release(pool, &b);
    kv_pool_free(pool);
}

/* Rollback into a committed block: rewriting it uncaches it (alone) or copies it (shared). */
static void test_truncate_rewrite(void) {
    kv_pool *pool = pool_new(16, 4);
    kv_block_table a, f;
    memset(&a, 0, sizeof a);
    memset(&f, 0, sizeof f);
    int32_t p[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    CHECK(run_prompt(pool, &a, p, 9) == 0);
    int32_t b1 = a.blocks[1];
    uint64_t k1 = a.block_keys[1];
    CHECK(kv_pool_fork(pool, &a, &f) == PAGODA_OK && f.n_committed == 2);
    CHECK(kv_pool_truncate(pool, &a, 6) == PAGODA_OK && a.n_committed == 1 && a.n_blocks == 2);
    CHECK(kv_pool_reserve(pool, &a, 9) == PAGODA_OK);
    kv_block_copy cp;
    CHECK(kv_pool_prepare_write(pool, &f, 5, &cp) == PAGODA_ERR_INVALID_ARGUMENT); /* committed in f */
    CHECK(kv_pool_prepare_write(pool, &a, 6, &cp) == PAGODA_OK && cp.src == b1 && cp.dst == a.blocks[1]);
    CHECK(kv_pool_lookup(pool, k1) == b1 && f.blocks[1] == b1); /* shared: the cached copy stays */
    kv_pool_release(pool, &f);
    kv_pool_release(pool, &a);
    CHECK(run_prompt(pool, &a, p, 9) == 8 && a.blocks[1] == b1);
    CHECK(kv_pool_truncate(pool, &a, 6) == PAGODA_OK && kv_pool_reserve(pool, &a, 9) == PAGODA_OK);
    CHECK(kv_pool_lookup(pool, k1) == b1); /* not yet written: still valid */
    CHECK(kv_pool_prepare_write(pool, &a, 6, &cp) == PAGODA_OK && cp.src == -1 && a.blocks[1] == b1);
    CHECK(kv_pool_lookup(pool, k1) == -1 && !kv_pool_block_cached(pool, b1, NULL, NULL));
    int32_t p2[9] = {1, 2, 3, 4, 5, 6, 70, 80, 9};
    CHECK(kv_pool_commit(pool, &a, p2, 9) == PAGODA_OK);
    CHECK(a.block_keys[1] == ref_key(a.block_keys[0], p2 + 4, 4, 64) && kv_pool_lookup(pool, a.block_keys[1]) == b1);
    kv_pool_release(pool, &a);
    kv_pool_release(pool, &a);
    kv_pool_release(pool, &f);
    kv_pool_free(pool);
}

/* With every key equal, a block's own tokens reappearing deeper in a prompt must not match it:
 * the link to the parent block is what tells the levels apart. */
static void test_collision_link(void) {
    kv_pool *pool = pool_new(16, 2);
    kv_pool_debug_key_bits(pool, 0);
    kv_block_table a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    int32_t p[7] = {5, 6, 5, 6, 5, 6, 1};
    CHECK(run_prompt(pool, &a, p, 7) == 0);
    CHECK(pool_stats(pool).n_cached == 1 && a.block_keys[2] == 0);
    CHECK(run_prompt(pool, &b, p, 7) == 2);
    CHECK(b.blocks[0] == a.blocks[0] && b.blocks[1] != a.blocks[0]);
    kv_pool_release(pool, &a);
    kv_pool_release(pool, &b);
    kv_pool_release(pool, &a);
    kv_pool_release(pool, &b);
    kv_pool_free(pool);
}

/* With 1-bit keys, a block rewritten after truncation gets back the same key while its old child
 * stays cached: the child must not be matched after the new content (its parent's generation moved). */
static void test_collision_generation(uint64_t *rng) {
    int32_t old0[2], new0[2], child[2];
    uint64_t x = 0;
    for (int tries = 0;; tries++) {
        if (tries > 100000) {
            CHECK_MSG(0, "no token choice found");
            return;
        }
        old0[0] = new0[0] = (int32_t)(test_rand_u64(rng) % 1000);
        old0[1] = (int32_t)(test_rand_u64(rng) % 1000);
        new0[1] = old0[1] + 1;
        child[0] = (int32_t)(test_rand_u64(rng) % 1000), child[1] = (int32_t)(test_rand_u64(rng) % 1000);
        x = ref_key(KV_HASH_ROOT, old0, 2, 1);
        if (ref_key(KV_HASH_ROOT, new0, 2, 1) == x && ref_key(x, child, 2, 1) != x) break;
    }
    kv_pool *pool = pool_new(8, 2);
    kv_pool_debug_key_bits(pool, 1);
    kv_block_table t, u;
    memset(&t, 0, sizeof t);
    memset(&u, 0, sizeof u);
    int32_t p_old[5] = {old0[0], old0[1], child[0], child[1], 7};
    int32_t p_new[5] = {new0[0], new0[1], child[0], child[1], 7};
    CHECK(run_prompt(pool, &t, p_old, 5) == 0 && pool_stats(pool).n_cached == 2);
    int32_t c = t.blocks[1];
    CHECK(kv_pool_truncate(pool, &t, 1) == PAGODA_OK);
    CHECK(kv_pool_reserve(pool, &t, 2) == PAGODA_OK);
    kv_block_copy cp;
    CHECK(kv_pool_prepare_write(pool, &t, 1, &cp) == PAGODA_OK && cp.src == -1);
    CHECK(kv_pool_commit(pool, &t, p_new, 2) == PAGODA_OK);
    CHECK(kv_pool_lookup(pool, x) == t.blocks[0] && kv_pool_block_cached(pool, c, NULL, NULL));
    int64_t nc = -1;
    nc = kv_pool_match_prefix(pool, p_new, 5, &u);
    CHECK_MSG(nc == 2, "matched %lld tokens: the stale child of a rewritten block was reused", (long long)nc);
    kv_pool_release(pool, &t);
    kv_pool_release(pool, &u);
    kv_pool_release(pool, &t);
    kv_pool_release(pool, &u);
    kv_pool_free(pool);
}

/* With prefix caching off nothing is cached, matched or counted; blocks still work. */
static void test_caching_off(void) {
    kv_pool *pool = NULL;
    CHECK(kv_pool_init(8, 4, false, &pool) == PAGODA_OK && pool);
    if (!pool) return;
    kv_block_table a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    int32_t p[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    CHECK(run_prompt(pool, &a, p, 9) == 0 && a.n_committed == 2);
    CHECK(run_prompt(pool, &b, p, 9) == 0 && b.blocks[0] != a.blocks[0]);
    kv_pool_stats st = pool_stats(pool);
    CHECK(st.n_cached == 0 && st.prefix_queries == 0 && st.prefix_hits == 0 && st.n_free == 2);
    kv_pool_release(pool, &a);
    kv_pool_release(pool, &b);
    CHECK(kv_pool_n_free(pool) == 8 && kv_pool_check(pool, NULL, 0));
    kv_pool_free(pool);
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* 1M blocks: init, fill with one long sequence committed block by block, release, match it all. */
static void test_speed(void) {
    const int32_t n_blocks = 1 << 20, bs = 16;
    double t0 = now_ms();
    kv_pool *pool = pool_new(n_blocks, bs);
    double t_init = now_ms() - t0;
    if (!pool) return;
    const int64_t n_tokens = (int64_t)n_blocks * bs;
    int32_t *tokens = malloc((size_t)n_tokens * sizeof *tokens);
    if (!tokens) test_skip("out of memory");
    for (int64_t i = 0; i < n_tokens; i++) tokens[i] = (int32_t)(i * 2654435761u % 50000);
    kv_block_table t;
    memset(&t, 0, sizeof t);
    t0 = now_ms();
    for (int64_t n = 0; n < n_tokens; n += 64 * bs) {
        CHECK(kv_pool_reserve(pool, &t, n + 64 * bs) == PAGODA_OK);
        CHECK(kv_pool_commit(pool, &t, tokens, n + 64 * bs) == PAGODA_OK);
    }
    double t_fill = now_ms() - t0;
    CHECK(kv_pool_n_free(pool) == 0 && pool_stats(pool).n_cached == n_blocks);
    t0 = now_ms();
    kv_pool_release(pool, &t);
    int64_t nc = -1;
    nc = kv_pool_match_prefix(pool, tokens, (int32_t)n_tokens, &t);
    double t_match = now_ms() - t0;
    CHECK(nc == n_tokens - bs);
    kv_pool_release(pool, &t);
    printf("1M blocks: init %.1f ms, allocate+commit %.0f ms, release+match %.0f ms\n", t_init, t_fill, t_match);
    /* Generous bounds (sanitizers, a busy machine); the point is no quadratic step. */
    CHECK_MSG(t_init < 100.0, "init took %.1f ms", t_init);
    CHECK_MSG(t_fill < 5000.0 && t_match < 5000.0, "fill %.0f ms, match %.0f ms", t_fill, t_match);
    kv_pool_release(pool, &t);
    free(tokens);
    kv_pool_free(pool);
}

int main(void) {
    uint64_t rng = test_seed();
    test_shared_prefix();
    test_lru_eviction();
    test_dedup();
    test_truncate_rewrite();
    test_collision_link();
    test_collision_generation(&rng);
    test_caching_off();
    test_speed();
    return test_finish();
}
