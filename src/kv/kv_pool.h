/* kv/kv_pool.h - the paged KV cache's bookkeeping: a pool of fixed-size blocks, per-sequence block
 * tables, reference counts, copy-on-write and hash-based automatic prefix caching.
 *
 * Integer bookkeeping only, no tensors: the K/V data of block b lives in the model's cache arrays
 * at [b][0..block_size) (model/model.h). Token i of a sequence is in block table->blocks[i / bs]
 * at offset i % bs, i.e. in slot blocks[i / bs] * bs + i % bs.
 *
 *   sequence tokens   t0 t1 t2 t3 | t4 t5 t6 t7 | t8 t9          (block_size 4)
 *   block table       [   17      |     3       | 42 (partial) ]
 *   ref counts        17: 2 (a fork or another request shares it), 3: 1, 42: 1
 *   prefix keys       k17 = H(seed, t0..t3), k3 = H(k17, t4..t7); 42 has none until full
 *
 * Prefix caching: a full block's key chains its parent's key with its token ids (xxhash64), so
 * a key names the whole prefix up to that block. A new request looks its full blocks up in order
 * and reuses every hit (ref + 1), computing only the rest. Blocks whose ref count drops to 0 go to
 * the tail of a doubly linked free list but keep their key (still hittable); allocation takes the
 * head, the least recently freed, and only then forgets its key (LRU eviction). Cached blocks also
 * keep their token ids, so a 64-bit hash collision can never reuse the wrong tokens.
 *
 * Copy-on-write: before a sequence writes into a block others share (the partial last block after a
 * fork), kv_pool_allocate gives it a fresh block and reports the (src, dst) copy to make.
 * One engine thread owns the pool: no locking.
 */
#ifndef PAGODA_KV_POOL_H
#define PAGODA_KV_POOL_H

#include <stdbool.h>
#include <stdint.h>

#include "pagoda.h" /* defines: pagoda_status */

typedef struct kv_pool kv_pool;

/* A sequence's blocks. Zero-initialised it is empty; kv_pool_release empties it again. */
typedef struct kv_block_table {
    int32_t *blocks;   /* [cap] block ids, n_blocks of them in use */
    int32_t n_blocks;
    int32_t cap;
    int32_t n_keyed;   /* leading blocks whose prefix key is known (committed or matched) */
    uint64_t last_key; /* key of block n_keyed - 1 (the chain's parent for the next one) */
} kv_block_table;

typedef struct kv_block_copy {
    int32_t src, dst;  /* copy block src's K/V into block dst (every layer) */
} kv_block_copy;

typedef struct kv_pool_stats {
    int32_t n_blocks, n_free, block_size;
    uint64_t prefix_queries; /* prompt tokens looked up */
    uint64_t prefix_hits;    /* of which found in the cache */
    uint64_t n_evictions;    /* cached blocks reused for other data */
} kv_pool_stats;

/* Errors: PAGODA_ERR_INVALID_ARGUMENT (n_blocks or block_size < 1), PAGODA_ERR_OUT_OF_MEMORY. */
pagoda_status kv_pool_init(int32_t n_blocks, int32_t block_size, bool prefix_caching, kv_pool **out);
void kv_pool_free(kv_pool *pool);

int32_t kv_pool_block_size(const kv_pool *pool);
int32_t kv_pool_n_blocks(const kv_pool *pool);
int32_t kv_pool_n_free(const kv_pool *pool);
void kv_pool_get_stats(const kv_pool *pool, kv_pool_stats *out);

/* For an empty table: reuses the cached blocks of the longest cached prefix of tokens[0..n) and
 * returns how many tokens they hold (a multiple of block_size, always < n_tokens so the last token
 * is computed for its logits). Returns 0 when prefix caching is off or the table is not empty.
 * The counters are kept by kv_pool_record_lookup, called once per request admitted. */
int32_t kv_pool_match_prefix(kv_pool *pool, const int32_t *tokens, int32_t n_tokens, kv_block_table *table);

/* Counts a prefix lookup of n_queried tokens of which n_hit were found. */
void kv_pool_record_lookup(kv_pool *pool, int32_t n_queried, int32_t n_hit);

/* Makes the table able to hold n_total tokens, with every block from position n_computed on owned
 * by this table alone (a shared one is replaced by a fresh block and *copy says what to copy;
 * *has_copy tells whether there is one). All or nothing: false, with no change, when free blocks
 * are short. Evicts cached free blocks, least recently freed first. */
bool kv_pool_allocate(kv_pool *pool, kv_block_table *table, int32_t n_computed, int32_t n_total,
                      kv_block_copy *copy, bool *has_copy);

/* After tokens[0..n_computed) have K/V in the table's blocks: gives each newly full block its
 * prefix key and enters it in the cache (a block whose key is already cached keeps the first). */
void kv_pool_commit(kv_pool *pool, kv_block_table *table, const int32_t *tokens, int32_t n_computed);

/* dst (empty) shares every block of src (ref + 1). Errors: PAGODA_ERR_OUT_OF_MEMORY (no change). */
pagoda_status kv_pool_fork(kv_pool *pool, const kv_block_table *src, kv_block_table *dst);

/* Returns every block of the table (ref - 1; at 0 to the free list's tail, keeping its key) and
 * empties it; its storage is freed too. */
void kv_pool_release(kv_pool *pool, kv_block_table *table);

/* Block ids of a table, for the runner. */
static inline const int32_t *kv_block_table_ids(const kv_block_table *t) { return t->blocks; }
static inline int32_t kv_block_table_n_blocks(const kv_block_table *t) { return t->n_blocks; }

/* Test hook: checks every invariant (ref counts against `tables`, free list links, cache map);
 * returns false and describes the first violation in the error message. */
bool kv_pool_check(const kv_pool *pool, const kv_block_table *const *tables, int32_t n_tables);

#endif
