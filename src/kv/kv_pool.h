/* kv/kv_pool.h - the paged KV cache's block pool: block ids, reference counts, an LRU free list,
 * the automatic prefix cache, and per-sequence block tables.
 *
 * Integer bookkeeping only: no tensors (the K/V data live in the backend, indexed by the block ids
 * given out here), no threads (one engine thread owns a pool and its tables; nothing is locked).
 * Not here: choosing which sequences run (sched/), building slot mappings (runner/), copying data.
 *
 * Blocks. The pool owns block ids 0..n_blocks-1, each holding block_size token slots. A block's
 * reference count is the number of block tables holding it. A block with ref 0 is in the free
 * list, which is kept in eviction order:
 *
 *     head (allocated next: freed longest ago)                  tail (freed most recently)
 *      [b7] <-> [b2] <-> [b9 cached] <-> [b4] <-> [b3 cached] <-> [b8 cached]
 *
 * Allocation takes blocks from the head; a block whose ref drops to 0 goes to the tail. A freed
 * block that is registered in the prefix cache keeps its key and data there until it is taken
 * again ("evicted"), so a later request can reuse it; reusing it takes it out of the free list
 * wherever it sits ("touch"). A table releases its blocks last-to-first, so the later (less shared)
 * blocks of a sequence are evicted before its earlier ones.
 *
 * Prefix cache. A full, computed block is registered under a key chaining its whole prefix:
 *
 *     key(block 0) = XXH64(KV_HASH_ROOT (8 bytes) || tokens[0..bs) (4 bytes each), KV_HASH_SEED)
 *     key(block j) = XXH64(key(block j-1)      || tokens[j*bs..(j+1)*bs),        KV_HASH_SEED)
 *
 * integers in native (little-endian) byte order. The map holds at most one block per key. On a
 * lookup the key alone is never trusted: the entry must also store the same token ids and be
 * linked to the very block (and generation of that block) that matched the previous level, so a
 * 64-bit collision can cost a cache hit but can never hand out K/V computed from other tokens.
 * Partial blocks are never cached.
 *
 * Duplicates are deduplicated at commit: when a table commits a block whose content is already
 * cached in another block (two requests with the same prompt prefilled in the same step), the
 * table switches to the cached block (ref + 1) and gives its own back. So kv_pool_commit may change
 * block ids of the table at indices being committed; the runner reads block_ids every step.
 *
 * A block table, for a sequence of n_tokens = 37 slots, block_size = 16:
 *
 *     logical block:     0                 1                 2
 *     block_ids:      [  5  ]           [ 12  ]           [  3  ]
 *     token slots:    0 ......... 15    16 ........ 31    32 .. 36 | 37 .. 47 unused
 *                     |<- n_committed = 2: cached ->|   |<- partial: never cached
 *
 * The scheduler's step for one sequence (vLLM's allocate_slots, drawn):
 *
 *     |<------------------- prompt + generated tokens -------------------->|
 *     |<- matched (kv_pool_match_prefix) ->|<-- computed -->|<- new this step ->|
 *     |<----------------- n_computed ------------------->|
 *     |<--------------- kv_pool_allocate(table, n_computed + n_new) --------------->|
 *
 *     1. new request:  kv_pool_match_prefix(pool, tokens, n_prompt, table, &n_computed)
 *     2. each step:    kv_pool_allocate(pool, table, n_computed + n_new)   (or preempt)
 *                      kv_pool_prepare_write(pool, table, p, &copy) for the first position p
 *                      written in each block; copy.src >= 0 -> the runner copies that block
 *     3. after the forward pass: kv_pool_commit(pool, table, tokens, n_computed + n_new)
 *     4. finished / preempted / aborted: kv_pool_release(pool, table)
 *
 * Forks (n > 1 samples, beam search): kv_pool_fork shares every block (ref + 1); the first write
 * into a shared block copies it (kv_pool_prepare_write), so forks never see each other's tokens.
 */
#ifndef PAGODA_KV_POOL_H
#define PAGODA_KV_POOL_H

#include <stdbool.h>
#include <stdint.h>

#include "pagoda.h" /* defines: pagoda_status, PAGODA_ERR_* */

#define KV_BLOCK_SIZE_DEFAULT 16
#define KV_BLOCK_SIZE_MAX 4096
#define KV_HASH_SEED UINT64_C(0x5061676f64614b56) /* "PagodaKV" */
#define KV_HASH_ROOT UINT64_C(0x9e3779b97f4a7c15) /* the parent key of block 0 */

typedef struct kv_pool kv_pool;

/* One sequence's blocks. Initialise with kv_block_table_init (or zero it); give its blocks back
 * with kv_pool_release and its memory with kv_block_table_free. Fields are read-only to callers. */
typedef struct kv_block_table {
    int32_t *block_ids;   /* [n_blocks] the physical block of each logical block */
    uint64_t *block_keys; /* [n_committed] prefix-cache key of each committed block */
    int32_t n_blocks;     /* ceil(n_tokens / block_size) */
    int32_t n_committed;  /* leading full blocks whose tokens are known computed (and cached) */
    int32_t capacity;     /* allocated length of block_ids and block_keys */
    int64_t n_tokens;     /* token slots the table holds */
} kv_block_table;

/* A block the runner must copy before the write goes ahead (copy-on-write); src = dst = -1: none. */
typedef struct kv_block_copy {
    int32_t src;
    int32_t dst;
} kv_block_copy;

typedef struct kv_pool_stats {
    int32_t n_blocks;
    int32_t block_size;
    int32_t n_free;           /* ref-0 blocks, cached ones included (they are evictable) */
    int32_t n_cached;         /* blocks registered in the prefix cache, free or held */
    double usage;             /* (n_blocks - n_free) / n_blocks */
    int64_t n_prefix_queries; /* tokens of every prompt passed to kv_pool_match_prefix */
    int64_t n_prefix_hits;    /* of those, tokens found computed in the cache */
} kv_pool_stats;

/* ---- pool ---------------------------------------------------------------------------------- */

/* All blocks start free, uncached, in id order. Costs O(n_blocks) time for the free list links
 * (a few ms for 1M blocks); the other tables are touched lazily.
 * Errors: PAGODA_ERR_INVALID_ARGUMENT (n_blocks < 1 or > INT32_MAX - 1, block_size < 1 or >
 * KV_BLOCK_SIZE_MAX), PAGODA_ERR_OUT_OF_MEMORY. */
pagoda_status kv_pool_init(int32_t n_blocks, int32_t block_size, kv_pool **out);
/* Frees the pool (tables keep their own memory: free them with kv_block_table_free). NULL: no-op. */
void kv_pool_free(kv_pool *pool);

int32_t kv_pool_block_size(const kv_pool *pool);
int32_t kv_pool_n_free(const kv_pool *pool);
kv_pool_stats kv_pool_stats_get(const kv_pool *pool);

/* Drops every prefix-cache entry (held blocks stay held; free blocks become plain free blocks).
 * The query and hit counters are kept. O(n_blocks). */
void kv_pool_reset_prefix_cache(kv_pool *pool);

/* ---- block tables -------------------------------------------------------------------------- */

void kv_block_table_init(kv_block_table *table);
/* Frees the table's arrays. Its blocks must have been released (kv_pool_release) first, else
 * they leak from the pool. NULL: no-op. */
void kv_block_table_free(kv_block_table *table);

/* Looks up the longest cached prefix of tokens[0..n_tokens) and puts those blocks in the empty
 * `table` (ref + 1 each, taken out of the free list if there). *n_computed_out receives the
 * number of tokens already computed: a multiple of block_size, at most n_tokens - 1 (the last
 * token is always left to compute, for its logits). Adds n_tokens to the query counter and
 * *n_computed_out to the hit counter. On return table->n_tokens == *n_computed_out.
 * Errors: PAGODA_ERR_INVALID_ARGUMENT (table not empty, n_tokens < 0), PAGODA_ERR_OUT_OF_MEMORY
 * (nothing changed). */
pagoda_status kv_pool_match_prefix(kv_pool *pool, const int32_t *tokens, int64_t n_tokens,
                                   kv_block_table *table, int64_t *n_computed_out);

/* Blocks that kv_pool_allocate(pool, table, n_tokens_total) would take from the free list. */
int32_t kv_pool_n_blocks_needed(const kv_pool *pool, const kv_block_table *table,
                                int64_t n_tokens_total);
/* Whether kv_pool_allocate(pool, table, n_tokens_total) would find enough free blocks. */
bool kv_pool_can_allocate(const kv_pool *pool, const kv_block_table *table, int64_t n_tokens_total);

/* Grows `table` to hold n_tokens_total token slots (a smaller value than it holds: no change),
 * taking blocks from the head of the free list; a cached free block taken is evicted from the
 * prefix cache. All or nothing: on failure the pool and the table are unchanged.
 * Errors: PAGODA_ERR_CONTEXT_FULL (not enough free blocks: the message says how many are needed
 * and free), PAGODA_ERR_INVALID_ARGUMENT (n_tokens_total < 0 or too large for int32 block ids),
 * PAGODA_ERR_OUT_OF_MEMORY. */
pagoda_status kv_pool_allocate(kv_pool *pool, kv_block_table *table, int64_t n_tokens_total);

/* Makes token slot `pos` of `table` safe to write. When its block is shared (ref > 1) the table
 * gets a fresh block instead, and *copy = {old, new}: the runner copies the old block's K/V into
 * the new one before writing. When the block is unshared but cached (a table truncated into a
 * committed block, then rewritten), it leaves the prefix cache. Otherwise *copy = {-1, -1}.
 * Call it for the first position written in each block of a step (later positions of the same
 * block then need nothing).
 * Errors: PAGODA_ERR_INVALID_ARGUMENT (pos outside [0, n_tokens), or inside a committed block:
 * truncate first), PAGODA_ERR_CONTEXT_FULL (a copy is needed but no block is free; nothing changed). */
pagoda_status kv_pool_prepare_write(kv_pool *pool, kv_block_table *table, int64_t pos,
                                    kv_block_copy *copy);

/* Records that tokens[0..n_computed) of the table's sequence are computed (their K/V written) and
 * registers every newly full block in the prefix cache. A block whose content is already cached
 * in another block is replaced in the table by that block (dedup, see the file comment).
 * Errors: PAGODA_ERR_INVALID_ARGUMENT (n_computed > table->n_tokens, or a block is registered
 * with other tokens: it was written without kv_pool_prepare_write). Blocks committed before the
 * failing one stay committed. */
pagoda_status kv_pool_commit(kv_pool *pool, kv_block_table *table, const int32_t *tokens,
                             int64_t n_computed);

/* Makes the empty table `dst` share every block of `src` (ref + 1 each), with the same n_tokens
 * and committed blocks. Errors: PAGODA_ERR_INVALID_ARGUMENT (dst not empty or dst == src),
 * PAGODA_ERR_OUT_OF_MEMORY (nothing changed). */
pagoda_status kv_pool_fork(kv_pool *pool, const kv_block_table *src, kv_block_table *dst);

/* Shrinks `table` to n_tokens slots (beam / speculative rollback): blocks past the new end are
 * released, and a committed block cut into becomes uncommitted (rewriting it goes through
 * kv_pool_prepare_write). Errors: PAGODA_ERR_INVALID_ARGUMENT (n_tokens < 0 or > table->n_tokens). */
pagoda_status kv_pool_truncate(kv_pool *pool, kv_block_table *table, int64_t n_tokens);

/* Gives back every block of the table (ref - 1, last block first; ref 0 -> free-list tail, cached
 * ones keeping their key) and empties it; its memory stays for reuse. */
void kv_pool_release(kv_pool *pool, kv_block_table *table);

/* ---- inspection (tests, debugging) --------------------------------------------------------- */

int32_t kv_pool_block_ref(const kv_pool *pool, int32_t block);
/* The free list in eviction order: first (the head) / last, next / prev of a block in it; -1 at
 * the ends. */
int32_t kv_pool_free_first(const kv_pool *pool);
int32_t kv_pool_free_last(const kv_pool *pool);
int32_t kv_pool_free_next(const kv_pool *pool, int32_t block);
int32_t kv_pool_free_prev(const kv_pool *pool, int32_t block);
/* Whether the block is registered in the prefix cache; if so *key and *tokens (block_size ids,
 * owned by the pool) receive its key and token ids. */
bool kv_pool_block_cached(const kv_pool *pool, int32_t block, uint64_t *key, const int32_t **tokens);
/* The block registered under key, or -1. */
int32_t kv_pool_lookup(const kv_pool *pool, uint64_t key);
/* Tests only, on a fresh pool: keeps only the low `bits` bits of every key (block_keys too), so
 * keys collide all the time and the verification behind every hit is exercised. */
void kv_pool_debug_key_bits(kv_pool *pool, int bits);

#endif
