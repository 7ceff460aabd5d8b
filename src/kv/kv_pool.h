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
 * block ids of the table at indices being committed; the runner reads the block ids every step.
 *
 * A block table, for a sequence of n_tokens = 37 slots, block_size = 16:
 *
 *     logical block:     0                 1                 2
 *     blocks:         [  5  ]           [ 12  ]           [  3  ]
 *     token slots:    0 ......... 15    16 ........ 31    32 .. 36 | 37 .. 47 unused
 *                     |<- n_committed = 2: cached ->|   |<- partial: never cached
 *
 * The scheduler's step for one sequence (vLLM's allocate_slots, drawn):
 *
 *     |<------------------- prompt + generated tokens -------------------->|
 *     |<- matched (kv_pool_match_prefix) ->|<-- computed -->|<- new this step ->|
 *     |<----------------- n_computed ------------------->|
 *     |<----------- kv_pool_allocate(.., n_computed, n_computed + n_new, ..) ------->|
 *
 *     1. new request:  n_computed = kv_pool_match_prefix(pool, tokens, n_prompt, table)
 *                      (once admitted: kv_pool_record_lookup(pool, n_prompt, n_computed))
 *     2. each step:    kv_pool_allocate(pool, table, n_computed, n_computed + n_new, &copy,
 *                      &has_copy), false -> preempt someone; has_copy -> the runner copies
 *                      copy.src into copy.dst before the forward pass
 *                      (or the parts: kv_pool_reserve, then kv_pool_prepare_write for the first
 *                      position written in each block)
 *     3. after the forward pass: kv_pool_commit(pool, table, tokens, n_computed + n_new)
 *     4. finished / preempted / aborted: kv_pool_release(pool, table)
 *
 * Forks (n > 1 samples, beam search): kv_pool_fork shares every block (ref + 1); the first write
 * into a shared block gives the writer a fresh block, with a copy of the slots before the write
 * (kv_pool_prepare_write), so forks never see each other's tokens. kv_pool_truncate rolls a table
 * back (beam search, speculative decoding).
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

/* One sequence's blocks. Zero-initialised it is empty; kv_pool_release gives its blocks back and
 * frees its arrays. Fields are read-only to callers. */
typedef struct kv_block_table {
    int32_t *blocks;      /* [cap] the physical block of each logical block, n_blocks in use */
    uint64_t *block_keys; /* [cap] prefix-cache key of each committed block, n_committed valid */
    int32_t n_blocks;     /* ceil(n_tokens / block_size) */
    int32_t cap;
    int32_t n_committed;  /* leading full blocks whose tokens are computed (and cached) */
    int64_t n_tokens;     /* token slots the table holds */
} kv_block_table;

/* Block ids of a table, for the runner. */
static inline const int32_t *kv_block_table_ids(const kv_block_table *t) { return t->blocks; }
static inline int32_t kv_block_table_n_blocks(const kv_block_table *t) { return t->n_blocks; }

/* A block the runner must copy before the step's writes (copy-on-write): every layer's K/V of
 * block src into block dst. */
typedef struct kv_block_copy {
    int32_t src, dst;
} kv_block_copy;

typedef struct kv_pool_stats {
    int32_t n_blocks, n_free, block_size;
    int32_t n_cached;        /* blocks registered in the prefix cache, free or held */
    double usage;            /* (n_blocks - n_free) / n_blocks */
    uint64_t prefix_queries; /* prompt tokens looked up (kv_pool_record_lookup) */
    uint64_t prefix_hits;    /* of which found computed in the cache */
    uint64_t n_evictions;    /* cached blocks taken for other data */
} kv_pool_stats;

/* ---- pool ---------------------------------------------------------------------------------- */

/* All blocks start free, uncached, in id order. Costs O(n_blocks) time for the free list links
 * (a few ms for 1M blocks); the other arrays are touched lazily. With prefix_caching false,
 * nothing is ever cached (kv_pool_match_prefix returns 0).
 * Errors: PAGODA_ERR_INVALID_ARGUMENT (n_blocks < 1 or > INT32_MAX - 1, block_size < 1 or >
 * KV_BLOCK_SIZE_MAX), PAGODA_ERR_OUT_OF_MEMORY. */
pagoda_status kv_pool_init(int32_t n_blocks, int32_t block_size, bool prefix_caching, kv_pool **out);
/* Frees the pool (tables keep their arrays: release them first). NULL: no-op. */
void kv_pool_free(kv_pool *pool);

int32_t kv_pool_block_size(const kv_pool *pool);
int32_t kv_pool_n_blocks(const kv_pool *pool);
int32_t kv_pool_n_free(const kv_pool *pool);
void kv_pool_get_stats(const kv_pool *pool, kv_pool_stats *out);

/* Drops every prefix-cache entry (held blocks stay held; free blocks become plain free blocks).
 * The counters are kept. O(n_blocks). */
void kv_pool_reset_prefix_cache(kv_pool *pool);

/* ---- block tables -------------------------------------------------------------------------- */

/* For an empty table: reuses the cached blocks of the longest cached prefix of tokens[0..n_tokens)
 * (ref + 1 each, taken out of the free list if there) and returns how many tokens they hold: a
 * multiple of block_size, always < n_tokens so the last token is computed for its logits. Sets
 * table->n_tokens to that. Returns 0 when prefix caching is off, the table is not empty, or
 * memory for the table runs out (then nothing changed). Counts nothing: the scheduler calls
 * kv_pool_record_lookup once per admitted request (a waiting request may be matched many times). */
int32_t kv_pool_match_prefix(kv_pool *pool, const int32_t *tokens, int32_t n_tokens, kv_block_table *table);
/* Adds a lookup of n_queried prompt tokens of which n_hit were found to the counters. */
void kv_pool_record_lookup(kv_pool *pool, int32_t n_queried, int32_t n_hit);

/* Free blocks kv_pool_allocate(pool, table, n_computed, n_total, ...) would take: new blocks up
 * to n_total plus fresh copies of shared blocks holding positions [n_computed, n_total).
 * kv_pool_reserve(pool, table, n) takes kv_pool_n_blocks_needed(pool, table, n, n). */
int32_t kv_pool_n_blocks_needed(const kv_pool *pool, const kv_block_table *table, int64_t n_computed,
                                int64_t n_total);
bool kv_pool_can_allocate(const kv_pool *pool, const kv_block_table *table, int64_t n_computed,
                          int64_t n_total);

/* The scheduler's one call per sequence and step: tokens [0, n_computed) are computed, the step
 * writes [n_computed, n_total). Grows the table to n_total slots (kv_pool_reserve) and makes every
 * block the step writes owned by this table alone (kv_pool_prepare_write). At most one copy is
 * needed, for the block holding position n_computed when it is shared and n_computed is not at its
 * start: *has_copy tells, *copy says what. All or nothing: false, with no change, when free blocks
 * (or memory) are short. A committed block at or after n_computed is uncommitted first (rollback). */
bool kv_pool_allocate(kv_pool *pool, kv_block_table *table, int32_t n_computed, int32_t n_total,
                      kv_block_copy *copy, bool *has_copy);

/* Grows `table` to hold n_tokens_total token slots (a smaller value than it holds: no change),
 * taking blocks from the head of the free list; a cached free block taken is evicted from the
 * prefix cache. All or nothing: on failure the pool and the table are unchanged.
 * Errors: PAGODA_ERR_CONTEXT_FULL (not enough free blocks: the message says how many are needed
 * and free, or that the whole pool is too small), PAGODA_ERR_INVALID_ARGUMENT (n_tokens_total < 0),
 * PAGODA_ERR_OUT_OF_MEMORY. */
pagoda_status kv_pool_reserve(kv_pool *pool, kv_block_table *table, int64_t n_tokens_total);

/* Makes the block holding slot `pos` safe for writes of positions pos.. to the block's end; the
 * table's data in the slots before pos are kept. When the block is shared (ref > 1) the table
 * gets a fresh block instead; if pos is not at the block's start, *copy = {old, new} and the
 * runner copies the old block's K/V into the new one before writing (copy-on-write), else there
 * is nothing of this table's to copy and *copy = {-1, -1}. When the block is unshared but cached
 * (a table truncated into a committed block, then rewritten), it leaves the prefix cache.
 * Call it for the first position written in each block of a step.
 * Errors: PAGODA_ERR_INVALID_ARGUMENT (pos outside [0, n_tokens), or inside a committed block:
 * truncate first), PAGODA_ERR_CONTEXT_FULL (a fresh block is needed but none is free; nothing
 * changed). */
pagoda_status kv_pool_prepare_write(kv_pool *pool, kv_block_table *table, int64_t pos, kv_block_copy *copy);

/* Records that tokens[0..n_computed) of the table's sequence are computed (their K/V written) and
 * registers every newly full block in the prefix cache. A block whose content is already cached
 * in another block is replaced in the table by that block (dedup, see the file comment).
 * Errors: PAGODA_ERR_INVALID_ARGUMENT (n_computed > table->n_tokens, or a block is registered
 * with other tokens: it was written without kv_pool_prepare_write). Blocks committed before the
 * failing one stay committed. */
pagoda_status kv_pool_commit(kv_pool *pool, kv_block_table *table, const int32_t *tokens, int64_t n_computed);

/* Makes the empty table `dst` share every block of `src` (ref + 1 each), with the same n_tokens
 * and committed blocks. Errors: PAGODA_ERR_INVALID_ARGUMENT (dst not empty or dst == src),
 * PAGODA_ERR_OUT_OF_MEMORY (nothing changed). */
pagoda_status kv_pool_fork(kv_pool *pool, const kv_block_table *src, kv_block_table *dst);

/* Shrinks `table` to n_tokens slots (beam / speculative rollback): blocks past the new end are
 * released, and a committed block cut into becomes uncommitted (rewriting it goes through
 * kv_pool_prepare_write). Errors: PAGODA_ERR_INVALID_ARGUMENT (n_tokens < 0 or > table->n_tokens). */
pagoda_status kv_pool_truncate(kv_pool *pool, kv_block_table *table, int64_t n_tokens);

/* Gives back every block of the table (ref - 1, last block first; ref 0 -> free-list tail, cached
 * ones keeping their key), frees its arrays and leaves it zeroed (empty, reusable). */
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
 * owned by the pool) receive its key and token ids (either may be NULL). */
bool kv_pool_block_cached(const kv_pool *pool, int32_t block, uint64_t *key, const int32_t **tokens);
/* The block registered under key, or -1. */
int32_t kv_pool_lookup(const kv_pool *pool, uint64_t key);
/* Tests only, on a fresh pool: keeps only the low `bits` bits of every key (block_keys too), so
 * keys collide all the time and the verification behind every hit is exercised. */
void kv_pool_debug_key_bits(kv_pool *pool, int bits);
/* Checks the pool's own invariants (ref counts against the given live tables, free-list links and
 * count, map <-> cached flags): false with the first violation as the error message. A debugging
 * aid for callers such as the engine tests; tests/test_kv_pool.c checks against its own model. */
bool kv_pool_check(const kv_pool *pool, const kv_block_table *const *tables, int32_t n_tables);

#endif
