/* kv/kv_internal.h - the block pool's inside, shared by kv_pool.c (blocks, free list, tables)
 * and kv_prefix.c (keys, the hash map, match and commit). Not for other modules.
 *
 * Per-block state is kept as parallel arrays indexed by block id, so that kv_pool_init only has
 * to write the free-list links; everything else starts as calloc'd zeros (or is never read before
 * it is written: tokens).
 */
#ifndef PAGODA_KV_INTERNAL_H
#define PAGODA_KV_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "kv/kv_pool.h" /* defines: kv_pool, kv_block_table */

struct kv_pool {
    int32_t n_blocks;
    int32_t block_size;
    int32_t n_free;   /* blocks with ref 0, all of them in the free list */
    int32_t n_cached; /* blocks registered in the map */
    bool prefix_caching;

    int32_t *ref;  /* [n_blocks] number of tables holding the block */
    int32_t *prev; /* [n_blocks + 1] free-list links; index n_blocks is the sentinel: */
    int32_t *next; /* [n_blocks + 1]   next[sentinel] = head, prev[sentinel] = tail */

    /* Prefix cache: valid where cached[b] != 0. */
    uint8_t *cached;      /* [n_blocks] 1: registered in the map under key[b] */
    uint64_t *gen;        /* [n_blocks] bumped when the block leaves the map: ends an epoch */
    uint64_t *key;        /* [n_blocks] chained key (see kv_pool.h) */
    int32_t *parent;      /* [n_blocks] block holding the previous level when registered; -1: level 0 */
    uint64_t *parent_gen; /* [n_blocks] gen[parent] when registered: a later mismatch = stale link */
    int32_t *tokens;      /* [n_blocks][block_size] the block's token ids ([1][block_size] when
                           * prefix caching is off) */

    /* Open addressing with linear probing: map[i] = block + 1, 0 = empty. Capacity is a power of
     * two >= 2 n_blocks, so the load stays <= 1/2. Deletion shifts entries back (no tombstones). */
    int32_t *map;      /* [map_mask + 1] */
    uint64_t map_mask;

    uint8_t *hash_buf; /* [8 + 4 block_size] scratch for one key computation */
    uint64_t key_mask; /* all ones; fewer bits only in tests (kv_pool_debug_key_bits) */

    uint64_t n_queries;   /* tokens */
    uint64_t n_hits;      /* tokens */
    uint64_t n_evictions; /* cached blocks taken for other data */
};

/* kv_pool.c */
/* Takes the head of the free list (the caller has checked n_free > 0): evicts it from the prefix
 * cache if registered, ref = 1. */
int32_t kv_block_take(kv_pool *pool);
/* ref + 1; takes the block out of the free list if it was there. */
void kv_block_touch(kv_pool *pool, int32_t block);
/* ref - 1; at 0 the block goes to the free-list tail. */
void kv_block_unref(kv_pool *pool, int32_t block);
/* Makes room for n_blocks entries in the table's arrays. Errors: PAGODA_ERR_OUT_OF_MEMORY. */
pagoda_status kv_table_reserve(kv_block_table *table, int32_t n_blocks);

/* kv_prefix.c */
uint64_t kv_hash_block(kv_pool *pool, uint64_t parent_key, const int32_t *tokens);
/* The block registered under key, or -1. */
int32_t kv_map_find(const kv_pool *pool, uint64_t key);
/* Removes a registered block from the map, marks it uncached and bumps its generation, which
 * invalidates every link to it from a registered child. */
void kv_map_remove(kv_pool *pool, int32_t block);

#endif
