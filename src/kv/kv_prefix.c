/* kv/kv_prefix.c - automatic prefix caching: block keys, the key -> block map, matching a new
 * request's prompt against the cache, and registering (committing) computed full blocks.
 *
 * Why a hit can be trusted. A registered block c stores its key, its token ids, and a link to the
 * block that held the previous level of its prefix when c was registered: parent[c] plus
 * parent_gen[c], the parent's generation then. A block only gets a registered child while it is
 * registered itself, and its generation is bumped whenever it leaves the map (eviction, reset, or
 * a rewrite after truncation); while registered its content cannot change (writes to a shared
 * block are copied first, writes to an unshared registered block unregister it). So a link whose
 * generation still matches proves that c's K/V were computed after exactly the parent's content.
 * Matching walks the prompt level by level and accepts c only when its tokens equal the prompt's
 * and it links to the block accepted one level before: by induction every token of the matched
 * prefix is verified, and the 64-bit key only serves to find candidates.
 * Not here: the free list and reference counts (kv_pool.c).
 */
#include <string.h>
#include <xxhash.h> /* defines: XXH64 */

#include "core/error.h"     /* defines: error_set */
#include "kv/kv_internal.h" /* defines: struct kv_pool, kv_block_touch, kv_block_unref, ... */

/* ---- keys and the map ----------------------------------------------------------------------- */

uint64_t kv_hash_block(kv_pool *pool, uint64_t parent_key, const int32_t *tokens) {
    size_t n_bytes = 4 * (size_t)pool->block_size;
    memcpy(pool->hash_buf, &parent_key, 8);
    memcpy(pool->hash_buf + 8, tokens, n_bytes);
    return XXH64(pool->hash_buf, 8 + n_bytes, KV_HASH_SEED) & pool->key_mask;
}

int32_t kv_map_find(const kv_pool *pool, uint64_t key) {
    for (uint64_t i = key & pool->map_mask; pool->map[i] != 0; i = (i + 1) & pool->map_mask) {
        int32_t b = pool->map[i] - 1;
        if (pool->key[b] == key) return b;
    }
    return -1;
}

static void map_insert(kv_pool *pool, int32_t block) {
    uint64_t i = pool->key[block] & pool->map_mask;
    while (pool->map[i] != 0) i = (i + 1) & pool->map_mask;
    pool->map[i] = block + 1;
    pool->cached[block] = 1;
    pool->n_cached++;
}

void kv_map_remove(kv_pool *pool, int32_t block) {
    uint64_t mask = pool->map_mask;
    uint64_t i = pool->key[block] & mask;
    while (pool->map[i] != block + 1) i = (i + 1) & mask;
    /* Backward-shift deletion: move later entries of the probe run into the hole when their home
     * slot does not lie after the hole (cyclically), so every entry stays reachable. */
    for (uint64_t j = (i + 1) & mask; pool->map[j] != 0; j = (j + 1) & mask) {
        uint64_t home = pool->key[pool->map[j] - 1] & mask;
        if (((j - home) & mask) >= ((j - i) & mask)) {
            pool->map[i] = pool->map[j];
            i = j;
        }
    }
    pool->map[i] = 0;
    pool->cached[block] = 0;
    pool->gen[block]++;
    pool->n_cached--;
}

/* Whether registered block c's link points at parent_blk (-1: c is a first block) in the
 * parent's current epoch. */
static bool link_ok(const kv_pool *pool, int32_t c, int32_t parent_blk) {
    if (parent_blk < 0) return pool->parent[c] < 0;
    return pool->parent[c] == parent_blk && pool->parent_gen[c] == pool->gen[parent_blk];
}

/* A registered block whose parent has since left the map: unreachable by any match. */
static bool link_stale(const kv_pool *pool, int32_t c) {
    int32_t p = pool->parent[c];
    return p >= 0 && pool->parent_gen[c] != pool->gen[p];
}

static bool same_tokens(const kv_pool *pool, int32_t c, const int32_t *tokens) {
    return memcmp(pool->tokens + (size_t)c * pool->block_size, tokens,
                  (size_t)pool->block_size * sizeof *tokens) == 0;
}

/* ---- match and commit ----------------------------------------------------------------------- */

int32_t kv_pool_match_prefix(kv_pool *pool, const int32_t *tokens, int32_t n_tokens, kv_block_table *table) {
    if (!pool->prefix_caching || table->n_blocks != 0 || table->n_tokens != 0 || n_tokens < 2) return 0;
    const int32_t bs = pool->block_size;
    /* Full blocks strictly before the last token: that token is always computed again. */
    int32_t max_blocks = (n_tokens - 1) / bs;
    uint64_t parent_key = KV_HASH_ROOT;
    int32_t parent_blk = -1, m = 0;
    /* First find the chain without touching anything, so a failed reserve changes nothing. */
    while (m < max_blocks) {
        const int32_t *blk_tokens = tokens + (size_t)m * bs;
        uint64_t key = kv_hash_block(pool, parent_key, blk_tokens);
        int32_t c = kv_map_find(pool, key);
        if (c < 0 || !same_tokens(pool, c, blk_tokens) || !link_ok(pool, c, parent_blk)) break;
        if (kv_table_reserve(table, m + 1) != PAGODA_OK) return 0;
        table->blocks[m] = c;
        table->block_keys[m] = key;
        parent_key = key;
        parent_blk = c;
        m++;
    }
    for (int32_t j = 0; j < m; j++) kv_block_touch(pool, table->blocks[j]);
    table->n_blocks = m;
    table->n_committed = m;
    table->n_tokens = (int64_t)m * bs;
    return m * bs;
}

void kv_pool_record_lookup(kv_pool *pool, int32_t n_queried, int32_t n_hit) {
    if (!pool->prefix_caching) return;
    pool->n_queries += (uint64_t)(n_queried > 0 ? n_queried : 0);
    pool->n_hits += (uint64_t)(n_hit > 0 ? n_hit : 0);
}

pagoda_status kv_pool_commit(kv_pool *pool, kv_block_table *table, const int32_t *tokens,
                             int64_t n_computed) {
    if (n_computed < 0 || n_computed > table->n_tokens)
        return error_set(PAGODA_ERR_INVALID_ARGUMENT,
                         "kv commit: %lld computed tokens outside the table's [0, %lld]",
                         (long long)n_computed, (long long)table->n_tokens);
    const int32_t bs = pool->block_size;
    int32_t n_full = (int32_t)(n_computed / bs);
    if (!pool->prefix_caching) {
        for (int32_t j = table->n_committed; j < n_full; j++) table->block_keys[j] = 0;
        if (n_full > table->n_committed) table->n_committed = n_full;
        return PAGODA_OK;
    }
    for (int32_t j = table->n_committed; j < n_full; j++) {
        const int32_t *blk_tokens = tokens + (size_t)j * bs;
        int32_t parent_blk = j > 0 ? table->blocks[j - 1] : -1;
        uint64_t key = kv_hash_block(pool, j > 0 ? table->block_keys[j - 1] : KV_HASH_ROOT, blk_tokens);
        int32_t b = table->blocks[j];
        if (pool->cached[b]) {
            /* Already registered: a fork committed this shared block first. */
            if (pool->key[b] != key || !same_tokens(pool, b, blk_tokens))
                return error_set(PAGODA_ERR_INVALID_ARGUMENT,
                                 "kv commit: block %d (index %d) is cached with other tokens; was "
                                 "it written without kv_pool_prepare_write?", (int)b, (int)j);
        } else {
            int32_t c = kv_map_find(pool, key);
            if (c >= 0 && same_tokens(pool, c, blk_tokens) && link_ok(pool, c, parent_blk)) {
                /* The same content is cached in c: use it, give ours back (dedup). */
                kv_block_touch(pool, c);
                table->blocks[j] = c;
                kv_block_unref(pool, b);
            } else if (parent_blk < 0 || pool->cached[parent_blk]) {
                /* Register b unless a live entry holds the key (then only a 64-bit collision
                 * can explain the mismatch: keep the older entry, b stays uncached). */
                if (c >= 0 && link_stale(pool, c)) {
                    kv_map_remove(pool, c);
                    c = -1;
                }
                if (c < 0) {
                    pool->key[b] = key;
                    pool->parent[b] = parent_blk;
                    pool->parent_gen[b] = parent_blk >= 0 ? pool->gen[parent_blk] : 0;
                    memcpy(pool->tokens + (size_t)b * bs, blk_tokens, (size_t)bs * sizeof *blk_tokens);
                    map_insert(pool, b);
                }
            }
            /* else: the parent is not registered (evicted by a reset, or a collision kept it
             * out), so nothing could ever reach b through the chain: leave it uncached. */
        }
        table->block_keys[j] = key;
        table->n_committed = j + 1;
    }
    return PAGODA_OK;
}

void kv_pool_reset_prefix_cache(kv_pool *pool) {
    for (int32_t b = 0; b < pool->n_blocks; b++)
        if (pool->cached[b]) {
            pool->cached[b] = 0;
            pool->gen[b]++;
        }
    memset(pool->map, 0, (size_t)(pool->map_mask + 1) * sizeof *pool->map);
    pool->n_cached = 0;
}

/* ---- inspection ----------------------------------------------------------------------------- */

bool kv_pool_block_cached(const kv_pool *pool, int32_t block, uint64_t *key, const int32_t **tokens) {
    if (!pool->cached[block]) return false;
    if (key) *key = pool->key[block];
    if (tokens) *tokens = pool->tokens + (size_t)block * pool->block_size;
    return true;
}

int32_t kv_pool_lookup(const kv_pool *pool, uint64_t key) { return kv_map_find(pool, key); }

void kv_pool_debug_key_bits(kv_pool *pool, int bits) {
    pool->key_mask = bits >= 64 ? UINT64_MAX : bits <= 0 ? 0 : (UINT64_C(1) << bits) - 1;
}
