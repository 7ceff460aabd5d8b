/* kv/kv_pool.c - block pool, free list in eviction order, copy-on-write and the prefix cache
 * (see kv_pool.h). The cache map is open addressing with linear probing and backward-shift
 * deletion, keyed by the 64-bit prefix key, twice as many slots as blocks. */
#include "kv/kv_pool.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "core/error.h" /* defines: error_set */

enum { NO_BLOCK = -1 };
static const uint64_t ROOT_KEY = 0x50414744414b5631ull; /* the parent key of a first block */

struct kv_pool {
    int32_t n_blocks, block_size;
    bool prefix_caching;
    int32_t *ref;          /* [n_blocks] reference counts */
    int32_t *prev, *next;  /* [n_blocks] free list links (NO_BLOCK ends) */
    int32_t head, tail;    /* free list: head = next to allocate (least recently freed) */
    int32_t n_free;
    bool *keyed;           /* [n_blocks] the block is in the cache map */
    uint64_t *key;         /* [n_blocks] its prefix key when keyed */
    int32_t *tokens;       /* [n_blocks][block_size] its token ids when keyed */
    int32_t *map;          /* [map_cap] block ids or NO_BLOCK */
    uint32_t map_mask;
    uint64_t queries, hits, evictions;
};

/* ---- free list ------------------------------------------------------------------------------------ */
static void free_list_push_tail(kv_pool *p, int32_t b) {
    p->prev[b] = p->tail;
    p->next[b] = NO_BLOCK;
    if (p->tail != NO_BLOCK) p->next[p->tail] = b;
    else p->head = b;
    p->tail = b;
    p->n_free++;
}

static void free_list_remove(kv_pool *p, int32_t b) {
    if (p->prev[b] != NO_BLOCK) p->next[p->prev[b]] = p->next[b];
    else p->head = p->next[b];
    if (p->next[b] != NO_BLOCK) p->prev[p->next[b]] = p->prev[b];
    else p->tail = p->prev[b];
    p->prev[b] = p->next[b] = NO_BLOCK;
    p->n_free--;
}

/* ---- cache map ------------------------------------------------------------------------------------ */
static uint32_t map_slot(const kv_pool *p, uint64_t key) { return (uint32_t)(key ^ (key >> 29)) & p->map_mask; }

static int32_t map_find(const kv_pool *p, uint64_t key, const int32_t *tokens) {
    for (uint32_t s = map_slot(p, key);; s = (s + 1) & p->map_mask) {
        int32_t b = p->map[s];
        if (b == NO_BLOCK) return NO_BLOCK;
        if (p->key[b] == key &&
            !memcmp(p->tokens + (size_t)b * (size_t)p->block_size, tokens, sizeof(int32_t) * (size_t)p->block_size))
            return b;
    }
}

static void map_insert(kv_pool *p, int32_t b) {
    uint32_t s = map_slot(p, p->key[b]);
    while (p->map[s] != NO_BLOCK) s = (s + 1) & p->map_mask;
    p->map[s] = b;
    p->keyed[b] = true;
}

static void map_remove(kv_pool *p, int32_t b) {
    uint32_t s = map_slot(p, p->key[b]);
    while (p->map[s] != b) s = (s + 1) & p->map_mask;
    p->map[s] = NO_BLOCK;
    /* backward shift: move later entries of the run into the hole when their home allows */
    for (uint32_t hole = s, j = (s + 1) & p->map_mask; p->map[j] != NO_BLOCK; j = (j + 1) & p->map_mask) {
        uint32_t home = map_slot(p, p->key[p->map[j]]);
        bool movable = hole <= j ? (home <= hole || home > j) : (home <= hole && home > j);
        if (movable) {
            p->map[hole] = p->map[j];
            p->map[j] = NO_BLOCK;
            hole = j;
        }
    }
    p->keyed[b] = false;
}

/* ---- pool ----------------------------------------------------------------------------------------- */
pagoda_status kv_pool_init(int32_t n_blocks, int32_t block_size, bool prefix_caching, kv_pool **out) {
    *out = NULL;
    if (n_blocks < 1 || block_size < 1 || n_blocks > (1 << 30))
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "KV pool of %d blocks of %d tokens", n_blocks, block_size);
    kv_pool *p = calloc(1, sizeof *p);
    if (!p) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory for the KV pool");
    p->n_blocks = n_blocks;
    p->block_size = block_size;
    p->prefix_caching = prefix_caching;
    uint32_t map_cap = 1;
    while (map_cap < 2u * (uint32_t)n_blocks) map_cap <<= 1;
    p->map_mask = map_cap - 1;
    p->ref = calloc((size_t)n_blocks, sizeof *p->ref);
    p->prev = malloc((size_t)n_blocks * sizeof *p->prev);
    p->next = malloc((size_t)n_blocks * sizeof *p->next);
    p->keyed = calloc((size_t)n_blocks, sizeof *p->keyed);
    p->key = calloc((size_t)n_blocks, sizeof *p->key);
    p->map = malloc((size_t)map_cap * sizeof *p->map);
    p->tokens = prefix_caching ? malloc((size_t)n_blocks * (size_t)block_size * sizeof *p->tokens) : NULL;
    if (!p->ref || !p->prev || !p->next || !p->keyed || !p->key || !p->map || (prefix_caching && !p->tokens)) {
        kv_pool_free(p);
        return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory for a KV pool of %d blocks", n_blocks);
    }
    memset(p->map, 0xff, (size_t)map_cap * sizeof *p->map); /* NO_BLOCK everywhere */
    p->head = p->tail = NO_BLOCK;
    for (int32_t b = 0; b < n_blocks; b++) free_list_push_tail(p, b);
    *out = p;
    return PAGODA_OK;
}

void kv_pool_free(kv_pool *p) {
    if (!p) return;
    free(p->ref);
    free(p->prev);
    free(p->next);
    free(p->keyed);
    free(p->key);
    free(p->map);
    free(p->tokens);
    free(p);
}

int32_t kv_pool_block_size(const kv_pool *p) { return p->block_size; }
int32_t kv_pool_n_blocks(const kv_pool *p) { return p->n_blocks; }
int32_t kv_pool_n_free(const kv_pool *p) { return p->n_free; }

void kv_pool_get_stats(const kv_pool *p, kv_pool_stats *out) {
    *out = (kv_pool_stats){.n_blocks = p->n_blocks, .n_free = p->n_free, .block_size = p->block_size,
                           .prefix_queries = p->queries, .prefix_hits = p->hits, .n_evictions = p->evictions};
}

static bool table_reserve(kv_block_table *t, int32_t n) {
    if (n <= t->cap) return true;
    int32_t cap = t->cap ? t->cap * 2 : 8;
    while (cap < n) cap *= 2;
    int32_t *grown = realloc(t->blocks, (size_t)cap * sizeof *grown);
    if (!grown) return false;
    t->blocks = grown;
    t->cap = cap;
    return true;
}

/* Takes the head of the free list (evicting its cached content). The list must not be empty. */
static int32_t take_free_block(kv_pool *p) {
    int32_t b = p->head;
    free_list_remove(p, b);
    if (p->keyed[b]) {
        map_remove(p, b);
        p->evictions++;
    }
    p->ref[b] = 1;
    return b;
}

static uint64_t block_key(uint64_t parent, const int32_t *tokens, int32_t block_size) {
    return XXH64(tokens, sizeof(int32_t) * (size_t)block_size, parent);
}

int32_t kv_pool_match_prefix(kv_pool *p, const int32_t *tokens, int32_t n_tokens, kv_block_table *t) {
    if (!p->prefix_caching || t->n_blocks != 0 || n_tokens < 1) return 0;
    int32_t max_blocks = (n_tokens - 1) / p->block_size; /* leave the last token to compute */
    uint64_t parent = ROOT_KEY;
    int32_t n = 0;
    while (n < max_blocks) {
        const int32_t *block_tokens = tokens + (size_t)n * (size_t)p->block_size;
        uint64_t key = block_key(parent, block_tokens, p->block_size);
        int32_t b = map_find(p, key, block_tokens);
        if (b == NO_BLOCK || !table_reserve(t, n + 1)) break;
        if (p->ref[b] == 0) free_list_remove(p, b);
        p->ref[b]++;
        t->blocks[n++] = b;
        parent = key;
    }
    t->n_blocks = t->n_keyed = n;
    t->last_key = parent;
    return n * p->block_size;
}

void kv_pool_record_lookup(kv_pool *p, int32_t n_queried, int32_t n_hit) {
    if (!p->prefix_caching) return;
    p->queries += (uint64_t)n_queried;
    p->hits += (uint64_t)n_hit;
}

bool kv_pool_allocate(kv_pool *p, kv_block_table *t, int32_t n_computed, int32_t n_total, kv_block_copy *copy,
                      bool *has_copy) {
    *has_copy = false;
    int32_t need = (n_total + p->block_size - 1) / p->block_size;
    int32_t grow = need > t->n_blocks ? need - t->n_blocks : 0;
    /* the block holding position n_computed, if it exists and is shared, must be copied first */
    int32_t cow_index = n_computed / p->block_size;
    bool cow = n_computed < n_total && cow_index < t->n_blocks && p->ref[t->blocks[cow_index]] > 1;
    if (grow + (cow ? 1 : 0) > p->n_free || !table_reserve(t, need)) return false;
    if (cow) {
        int32_t old = t->blocks[cow_index];
        int32_t fresh = take_free_block(p);
        p->ref[old]--; /* still > 0: others hold it */
        t->blocks[cow_index] = fresh;
        if (t->n_keyed > cow_index) t->n_keyed = cow_index; /* a full shared block is never written */
        *copy = (kv_block_copy){old, fresh};
        *has_copy = true;
    }
    while (t->n_blocks < need) t->blocks[t->n_blocks++] = take_free_block(p);
    return true;
}

void kv_pool_commit(kv_pool *p, kv_block_table *t, const int32_t *tokens, int32_t n_computed) {
    int32_t full = n_computed / p->block_size;
    if (full > t->n_blocks) full = t->n_blocks;
    while (t->n_keyed < full) {
        int32_t i = t->n_keyed, b = t->blocks[i];
        const int32_t *block_tokens = tokens + (size_t)i * (size_t)p->block_size;
        uint64_t key = block_key(i == 0 ? ROOT_KEY : t->last_key, block_tokens, p->block_size);
        if (p->prefix_caching && !p->keyed[b] && map_find(p, key, block_tokens) == NO_BLOCK) {
            p->key[b] = key;
            memcpy(p->tokens + (size_t)b * (size_t)p->block_size, block_tokens, sizeof(int32_t) * (size_t)p->block_size);
            map_insert(p, b);
        }
        t->last_key = key;
        t->n_keyed++;
    }
}

pagoda_status kv_pool_fork(kv_pool *p, const kv_block_table *src, kv_block_table *dst) {
    if (!table_reserve(dst, src->n_blocks)) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory to fork blocks");
    for (int32_t i = 0; i < src->n_blocks; i++) {
        dst->blocks[i] = src->blocks[i];
        p->ref[src->blocks[i]]++;
    }
    dst->n_blocks = src->n_blocks;
    dst->n_keyed = src->n_keyed;
    dst->last_key = src->last_key;
    return PAGODA_OK;
}

void kv_pool_release(kv_pool *p, kv_block_table *t) {
    /* last block first, so the prefix's early blocks are evicted last */
    for (int32_t i = t->n_blocks - 1; i >= 0; i--) {
        int32_t b = t->blocks[i];
        if (--p->ref[b] == 0) free_list_push_tail(p, b);
    }
    free(t->blocks);
    *t = (kv_block_table){0};
}

bool kv_pool_check(const kv_pool *p, const kv_block_table *const *tables, int32_t n_tables) {
    int32_t *expect = calloc((size_t)p->n_blocks, sizeof *expect);
    if (!expect) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory"), false;
    bool ok = true;
    for (int32_t t = 0; t < n_tables && ok; t++)
        for (int32_t i = 0; i < tables[t]->n_blocks && ok; i++) {
            int32_t b = tables[t]->blocks[i];
            if (b < 0 || b >= p->n_blocks) ok = (error_set(PAGODA_ERR_INTERNAL, "table %d holds block %d", t, b), false);
            else expect[b]++;
        }
    int32_t n_free_seen = 0;
    for (int32_t b = p->head, prev = NO_BLOCK; ok && b != NO_BLOCK; prev = b, b = p->next[b]) {
        if (p->prev[b] != prev) ok = (error_set(PAGODA_ERR_INTERNAL, "free list link broken at %d", b), false);
        else if (p->ref[b] != 0) ok = (error_set(PAGODA_ERR_INTERNAL, "block %d is free with ref %d", b, p->ref[b]), false);
        if (++n_free_seen > p->n_blocks) ok = (error_set(PAGODA_ERR_INTERNAL, "free list has a cycle"), false);
    }
    if (ok && n_free_seen != p->n_free)
        ok = (error_set(PAGODA_ERR_INTERNAL, "free list has %d blocks, counter says %d", n_free_seen, p->n_free), false);
    for (int32_t b = 0; ok && b < p->n_blocks; b++) {
        if (p->ref[b] != expect[b])
            ok = (error_set(PAGODA_ERR_INTERNAL, "block %d has ref %d but %d tables hold it", b, p->ref[b], expect[b]), false);
        else if (p->ref[b] < 0)
            ok = (error_set(PAGODA_ERR_INTERNAL, "block %d has a negative ref count", b), false);
        else if (p->keyed[b] &&
                 map_find(p, p->key[b], p->tokens + (size_t)b * (size_t)p->block_size) != b)
            ok = (error_set(PAGODA_ERR_INTERNAL, "cached block %d is not found under its key", b), false);
    }
    int32_t n_mapped = 0;
    for (uint32_t s = 0; ok && s <= p->map_mask; s++)
        if (p->map[s] != NO_BLOCK && !p->keyed[p->map[s]])
            ok = (error_set(PAGODA_ERR_INTERNAL, "map slot %u points at uncached block %d", s, p->map[s]), false);
        else if (p->map[s] != NO_BLOCK) n_mapped++;
    for (int32_t b = 0; ok && b < p->n_blocks; b++) n_mapped -= p->keyed[b];
    if (ok && n_mapped != 0) ok = (error_set(PAGODA_ERR_INTERNAL, "map and cached flags disagree"), false);
    free(expect);
    return ok;
}
