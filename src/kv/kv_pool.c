/* kv/kv_pool.c - the block pool: init/free, the free list in eviction order, reference counts,
 * block tables (reserve, copy-on-write, the scheduler's allocate, fork, truncate, release), stats,
 * inspection and the invariant check.
 * The prefix cache (keys, the hash map, match and commit) is in kv_prefix.c.
 * Every operation costs O(1) per block it touches, plus amortised array growth for tables
 * (kv_pool_reset_prefix_cache and kv_pool_check: O(n_blocks)).
 */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"     /* defines: error_set */
#include "kv/kv_internal.h" /* defines: struct kv_pool, kv_block_take, kv_map_remove, ... */

/* ---- free list ------------------------------------------------------------------------------ */

static void free_list_unlink(kv_pool *pool, int32_t b) {
    int32_t p = pool->prev[b], n = pool->next[b];
    pool->next[p] = n;
    pool->prev[n] = p;
    pool->n_free--;
}

static void free_list_push_tail(kv_pool *pool, int32_t b) {
    int32_t s = pool->n_blocks, tail = pool->prev[s];
    pool->prev[b] = tail;
    pool->next[b] = s;
    pool->next[tail] = b;
    pool->prev[s] = b;
    pool->n_free++;
}

int32_t kv_block_take(kv_pool *pool) {
    int32_t b = pool->next[pool->n_blocks];
    free_list_unlink(pool, b);
    if (pool->cached[b]) {
        kv_map_remove(pool, b);
        pool->n_evictions++;
    }
    pool->ref[b] = 1;
    return b;
}

void kv_block_touch(kv_pool *pool, int32_t block) {
    if (pool->ref[block] == 0) free_list_unlink(pool, block);
    pool->ref[block]++;
}

void kv_block_unref(kv_pool *pool, int32_t block) {
    if (--pool->ref[block] == 0) free_list_push_tail(pool, block);
}

/* ---- pool ----------------------------------------------------------------------------------- */

pagoda_status kv_pool_init(int32_t n_blocks, int32_t block_size, bool prefix_caching, kv_pool **out) {
    *out = NULL;
    if (n_blocks < 1 || n_blocks > INT32_MAX - 1)
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "kv pool: n_blocks %d must be in [1, %d]",
                         (int)n_blocks, INT32_MAX - 1);
    if (block_size < 1 || block_size > KV_BLOCK_SIZE_MAX)
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "kv pool: block_size %d must be in [1, %d]",
                         (int)block_size, KV_BLOCK_SIZE_MAX);
    kv_pool *pool = calloc(1, sizeof *pool);
    if (!pool) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "kv pool: out of memory");
    pool->n_blocks = n_blocks;
    pool->block_size = block_size;
    pool->prefix_caching = prefix_caching;
    uint64_t map_cap = 1;
    while (map_cap < 2 * (uint64_t)n_blocks) map_cap <<= 1;
    pool->map_mask = map_cap - 1;
    pool->key_mask = UINT64_MAX;
    size_t nb = (size_t)n_blocks;
    pool->ref = calloc(nb, sizeof *pool->ref);
    pool->prev = malloc((nb + 1) * sizeof *pool->prev);
    pool->next = malloc((nb + 1) * sizeof *pool->next);
    pool->cached = calloc(nb, sizeof *pool->cached);
    pool->gen = calloc(nb, sizeof *pool->gen);
    pool->key = calloc(nb, sizeof *pool->key);
    pool->parent = calloc(nb, sizeof *pool->parent);
    pool->parent_gen = calloc(nb, sizeof *pool->parent_gen);
    pool->tokens = malloc((prefix_caching ? nb : 1) * (size_t)block_size * sizeof *pool->tokens);
    pool->map = calloc((size_t)map_cap, sizeof *pool->map);
    pool->hash_buf = malloc(8 + 4 * (size_t)block_size);
    if (!pool->ref || !pool->prev || !pool->next || !pool->cached || !pool->gen || !pool->key ||
        !pool->parent || !pool->parent_gen || !pool->tokens || !pool->map || !pool->hash_buf) {
        kv_pool_free(pool);
        return error_set(PAGODA_ERR_OUT_OF_MEMORY, "kv pool: out of memory for %d blocks",
                         (int)n_blocks);
    }
    /* Free list 0, 1, ..., n_blocks - 1 between the sentinel's two ends. */
    for (int32_t b = 0; b < n_blocks; b++) {
        pool->prev[b] = b - 1;
        pool->next[b] = b + 1;
    }
    pool->prev[0] = n_blocks;
    pool->next[n_blocks] = 0;
    pool->prev[n_blocks] = n_blocks - 1;
    pool->n_free = n_blocks;
    *out = pool;
    return PAGODA_OK;
}

void kv_pool_free(kv_pool *pool) {
    if (!pool) return;
    free(pool->ref);
    free(pool->prev);
    free(pool->next);
    free(pool->cached);
    free(pool->gen);
    free(pool->key);
    free(pool->parent);
    free(pool->parent_gen);
    free(pool->tokens);
    free(pool->map);
    free(pool->hash_buf);
    free(pool);
}

int32_t kv_pool_block_size(const kv_pool *pool) { return pool->block_size; }
int32_t kv_pool_n_blocks(const kv_pool *pool) { return pool->n_blocks; }
int32_t kv_pool_n_free(const kv_pool *pool) { return pool->n_free; }

void kv_pool_get_stats(const kv_pool *pool, kv_pool_stats *out) {
    *out = (kv_pool_stats){
        .n_blocks = pool->n_blocks,
        .n_free = pool->n_free,
        .block_size = pool->block_size,
        .n_cached = pool->n_cached,
        .usage = (double)(pool->n_blocks - pool->n_free) / (double)pool->n_blocks,
        .prefix_queries = pool->n_queries,
        .prefix_hits = pool->n_hits,
        .n_evictions = pool->n_evictions,
    };
}

/* ---- block tables --------------------------------------------------------------------------- */

pagoda_status kv_table_reserve(kv_block_table *table, int32_t n_blocks) {
    if (n_blocks <= table->cap) return PAGODA_OK;
    int64_t cap = table->cap > 0 ? table->cap : 4;
    while (cap < n_blocks) cap *= 2;
    if (cap > INT32_MAX) cap = INT32_MAX;
    int32_t *ids = realloc(table->blocks, (size_t)cap * sizeof *ids);
    if (!ids) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "kv block table: out of memory");
    table->blocks = ids;
    uint64_t *keys = realloc(table->block_keys, (size_t)cap * sizeof *keys);
    if (!keys) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "kv block table: out of memory");
    table->block_keys = keys;
    table->cap = (int32_t)cap;
    return PAGODA_OK;
}

/* Blocks needed to hold n_tokens slots, saturating at INT32_MAX. */
static int64_t blocks_for(const kv_pool *pool, int64_t n_tokens) {
    int64_t n = n_tokens / pool->block_size + (n_tokens % pool->block_size != 0);
    return n > INT32_MAX ? INT32_MAX : n;
}

/* Shared blocks among those holding positions [n_computed, n_total) that the table already has. */
static int32_t n_shared_written(const kv_pool *pool, const kv_block_table *table, int64_t n_computed,
                                int64_t n_total) {
    if (n_computed >= n_total || n_computed < 0) return 0;
    int64_t first = n_computed / pool->block_size, end = blocks_for(pool, n_total);
    if (end > table->n_blocks) end = table->n_blocks;
    int32_t n = 0;
    for (int64_t i = first; i < end; i++) n += pool->ref[table->blocks[i]] > 1;
    return n;
}

int32_t kv_pool_n_blocks_needed(const kv_pool *pool, const kv_block_table *table, int64_t n_computed,
                                int64_t n_total) {
    if (n_total <= 0) return 0;
    int64_t grow = blocks_for(pool, n_total) - table->n_blocks;
    int64_t need = (grow > 0 ? grow : 0) + n_shared_written(pool, table, n_computed, n_total);
    return need > INT32_MAX ? INT32_MAX : (int32_t)need;
}

bool kv_pool_can_allocate(const kv_pool *pool, const kv_block_table *table, int64_t n_computed,
                          int64_t n_total) {
    return n_total >= 0 && blocks_for(pool, n_total) <= pool->n_blocks &&
           kv_pool_n_blocks_needed(pool, table, n_computed, n_total) <= pool->n_free;
}

pagoda_status kv_pool_reserve(kv_pool *pool, kv_block_table *table, int64_t n_tokens_total) {
    if (n_tokens_total < 0)
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "kv reserve: n_tokens_total %lld < 0",
                         (long long)n_tokens_total);
    if (n_tokens_total <= table->n_tokens) return PAGODA_OK;
    int64_t n_total_blocks = blocks_for(pool, n_tokens_total);
    if (n_total_blocks > pool->n_blocks)
        return error_set(PAGODA_ERR_CONTEXT_FULL,
                         "kv reserve: %lld tokens need %lld blocks of %d, more than the whole "
                         "pool (%d blocks, %lld tokens)",
                         (long long)n_tokens_total, (long long)n_total_blocks, (int)pool->block_size,
                         (int)pool->n_blocks, (long long)pool->n_blocks * pool->block_size);
    int32_t need = (int32_t)(n_total_blocks - table->n_blocks);
    if (need > pool->n_free)
        return error_set(PAGODA_ERR_CONTEXT_FULL,
                         "kv reserve: %lld tokens need %d more blocks, only %d of %d are free",
                         (long long)n_tokens_total, (int)need, (int)pool->n_free, (int)pool->n_blocks);
    pagoda_status st = kv_table_reserve(table, (int32_t)n_total_blocks);
    if (st != PAGODA_OK) return st;
    for (int32_t i = 0; i < need; i++) table->blocks[table->n_blocks++] = kv_block_take(pool);
    table->n_tokens = n_tokens_total;
    return PAGODA_OK;
}

pagoda_status kv_pool_prepare_write(kv_pool *pool, kv_block_table *table, int64_t pos,
                                    kv_block_copy *copy) {
    copy->src = copy->dst = -1;
    if (pos < 0 || pos >= table->n_tokens)
        return error_set(PAGODA_ERR_INVALID_ARGUMENT,
                         "kv prepare_write: position %lld outside the table's %lld slots",
                         (long long)pos, (long long)table->n_tokens);
    int32_t i = (int32_t)(pos / pool->block_size);
    if (i < table->n_committed)
        return error_set(PAGODA_ERR_INVALID_ARGUMENT,
                         "kv prepare_write: position %lld lies in committed block %d (truncate first)",
                         (long long)pos, (int)i);
    int32_t b = table->blocks[i];
    if (pool->ref[b] > 1) {
        if (pool->n_free == 0)
            return error_set(PAGODA_ERR_CONTEXT_FULL,
                             "kv prepare_write: block %d is shared and no block is free to copy it",
                             (int)b);
        int32_t fresh = kv_block_take(pool);
        kv_block_unref(pool, b); /* stays > 0: another table holds it */
        table->blocks[i] = fresh;
        if (pos % pool->block_size != 0) {
            copy->src = b;
            copy->dst = fresh;
        }
    } else if (pool->cached[b]) {
        /* Only this table holds it and is about to change it: it no longer matches its key. */
        kv_map_remove(pool, b);
    }
    return PAGODA_OK;
}

bool kv_pool_allocate(kv_pool *pool, kv_block_table *table, int32_t n_computed, int32_t n_total,
                      kv_block_copy *copy, bool *has_copy) {
    *has_copy = false;
    copy->src = copy->dst = -1;
    if (n_computed < 0 || n_total < 0 || n_computed > table->n_tokens) {
        error_set(PAGODA_ERR_INVALID_ARGUMENT, "kv allocate: computed %d, total %d, table holds %lld",
                  (int)n_computed, (int)n_total, (long long)table->n_tokens);
        return false;
    }
    if (!kv_pool_can_allocate(pool, table, n_computed, n_total)) {
        error_set(PAGODA_ERR_CONTEXT_FULL, "kv allocate: %d tokens need %d free blocks, %d are free",
                  (int)n_total, (int)kv_pool_n_blocks_needed(pool, table, n_computed, n_total),
                  (int)pool->n_free);
        return false;
    }
    int32_t old_blocks = table->n_blocks;
    if (kv_pool_reserve(pool, table, n_total) != PAGODA_OK) return false; /* memory: unchanged */
    if (n_computed >= n_total) return true;
    int32_t first = n_computed / pool->block_size;
    if (table->n_committed > first) table->n_committed = first;
    /* Only the table's old blocks can be shared or cached; the free count was checked above. */
    for (int32_t i = first; i < old_blocks && (int64_t)i * pool->block_size < n_total; i++) {
        int64_t pos = i == first ? n_computed : (int64_t)i * pool->block_size;
        kv_block_copy cp;
        if (kv_pool_prepare_write(pool, table, pos, &cp) != PAGODA_OK) return false; /* cannot happen */
        if (cp.src >= 0) {
            *copy = cp;
            *has_copy = true;
        }
    }
    return true;
}

pagoda_status kv_pool_fork(kv_pool *pool, const kv_block_table *src, kv_block_table *dst) {
    if (dst == src || dst->n_blocks != 0 || dst->n_tokens != 0)
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "kv fork: the destination table is not empty");
    pagoda_status st = kv_table_reserve(dst, src->n_blocks);
    if (st != PAGODA_OK) return st;
    for (int32_t i = 0; i < src->n_blocks; i++) {
        dst->blocks[i] = src->blocks[i];
        kv_block_touch(pool, src->blocks[i]);
    }
    if (src->n_committed > 0)
        memcpy(dst->block_keys, src->block_keys, (size_t)src->n_committed * sizeof *dst->block_keys);
    dst->n_blocks = src->n_blocks;
    dst->n_committed = src->n_committed;
    dst->n_tokens = src->n_tokens;
    return PAGODA_OK;
}

pagoda_status kv_pool_truncate(kv_pool *pool, kv_block_table *table, int64_t n_tokens) {
    if (n_tokens < 0 || n_tokens > table->n_tokens)
        return error_set(PAGODA_ERR_INVALID_ARGUMENT,
                         "kv truncate: %lld tokens outside [0, %lld]", (long long)n_tokens,
                         (long long)table->n_tokens);
    int32_t keep = (int32_t)blocks_for(pool, n_tokens);
    while (table->n_blocks > keep) kv_block_unref(pool, table->blocks[--table->n_blocks]);
    int32_t full = (int32_t)(n_tokens / pool->block_size);
    if (table->n_committed > full) table->n_committed = full;
    table->n_tokens = n_tokens;
    return PAGODA_OK;
}

void kv_pool_release(kv_pool *pool, kv_block_table *table) {
    while (table->n_blocks > 0) kv_block_unref(pool, table->blocks[--table->n_blocks]);
    free(table->blocks);
    free(table->block_keys);
    memset(table, 0, sizeof *table);
}

/* ---- inspection ----------------------------------------------------------------------------- */

int32_t kv_pool_block_ref(const kv_pool *pool, int32_t block) { return pool->ref[block]; }

static int32_t end_to_minus_one(const kv_pool *pool, int32_t b) { return b == pool->n_blocks ? -1 : b; }

int32_t kv_pool_free_first(const kv_pool *pool) {
    return end_to_minus_one(pool, pool->next[pool->n_blocks]);
}
int32_t kv_pool_free_last(const kv_pool *pool) {
    return end_to_minus_one(pool, pool->prev[pool->n_blocks]);
}
int32_t kv_pool_free_next(const kv_pool *pool, int32_t block) {
    return end_to_minus_one(pool, pool->next[block]);
}
int32_t kv_pool_free_prev(const kv_pool *pool, int32_t block) {
    return end_to_minus_one(pool, pool->prev[block]);
}

/* ---- invariant check ------------------------------------------------------------------------ */

bool kv_pool_check(const kv_pool *pool, const kv_block_table *const *tables, int32_t n_tables) {
    const int32_t nb = pool->n_blocks;
    int32_t *expect = calloc((size_t)nb, sizeof *expect);
    if (!expect) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "kv check: out of memory"), false;
    bool ok = true;
    for (int32_t t = 0; t < n_tables && ok; t++) {
        const kv_block_table *tb = tables[t];
        if (tb->n_blocks != blocks_for(pool, tb->n_tokens) || tb->n_committed > tb->n_blocks)
            ok = (error_set(PAGODA_ERR_INTERNAL, "kv check: table %d has %d blocks, %d committed, %lld tokens",
                            (int)t, (int)tb->n_blocks, (int)tb->n_committed, (long long)tb->n_tokens), false);
        for (int32_t i = 0; i < tb->n_blocks && ok; i++) {
            int32_t b = tb->blocks[i];
            if (b < 0 || b >= nb)
                ok = (error_set(PAGODA_ERR_INTERNAL, "kv check: table %d holds block %d", (int)t, (int)b), false);
            else
                expect[b]++;
        }
    }
    int32_t n_walked = 0;
    for (int32_t b = pool->next[nb], prev = nb; ok && b != nb; prev = b, b = pool->next[b]) {
        if (b < 0 || b > nb || pool->prev[b] != prev)
            ok = (error_set(PAGODA_ERR_INTERNAL, "kv check: free list link broken at block %d", (int)b), false);
        else if (pool->ref[b] != 0)
            ok = (error_set(PAGODA_ERR_INTERNAL, "kv check: block %d is free with ref %d", (int)b,
                            (int)pool->ref[b]), false);
        else if (++n_walked > nb)
            ok = (error_set(PAGODA_ERR_INTERNAL, "kv check: the free list has a cycle"), false);
    }
    if (ok && n_walked != pool->n_free)
        ok = (error_set(PAGODA_ERR_INTERNAL, "kv check: %d blocks in the free list, n_free says %d",
                        (int)n_walked, (int)pool->n_free), false);
    int32_t n_cached = 0;
    for (int32_t b = 0; b < nb && ok; b++) {
        if (pool->ref[b] != expect[b])
            ok = (error_set(PAGODA_ERR_INTERNAL, "kv check: block %d has ref %d, %d tables hold it", (int)b,
                            (int)pool->ref[b], (int)expect[b]), false);
        else if (pool->cached[b] && kv_map_find(pool, pool->key[b]) != b)
            ok = (error_set(PAGODA_ERR_INTERNAL, "kv check: cached block %d is not found by its key", (int)b), false);
        n_cached += pool->cached[b];
    }
    int32_t n_mapped = 0;
    for (uint64_t i = 0; i <= pool->map_mask && ok; i++)
        if (pool->map[i] != 0) {
            n_mapped++;
            if (!pool->cached[pool->map[i] - 1])
                ok = (error_set(PAGODA_ERR_INTERNAL, "kv check: map slot %llu holds uncached block %d",
                                (unsigned long long)i, (int)pool->map[i] - 1), false);
        }
    if (ok && (n_mapped != n_cached || n_cached != pool->n_cached))
        ok = (error_set(PAGODA_ERR_INTERNAL, "kv check: %d map entries, %d cached flags, n_cached %d",
                        (int)n_mapped, (int)n_cached, (int)pool->n_cached), false);
    free(expect);
    return ok;
}
