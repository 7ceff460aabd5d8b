/* backend/cpu/cpu_paged_attention.c - plans paged attention into work items, runs them on the thread
 * pool, and combines split decodes (FlashDecoding's reduce). The items themselves run in
 * cpu_paged_attention_tile.c. Design: backend/cpu/cpu_paged_attention.h.
 *
 * Planning one pass (at most max_seqs sequences), on the calling thread, O(n_seqs):
 *   prefill sequence (n_q > 1): ceil(n_q / tq) token tiles x n_kv_head items, tq = PA_ROWS_TARGET
 *       / group tokens (at least 1); listed last tile first, since causal tiles grow with position;
 *   decode sequence (n_q = 1): one item per chunk of pa_chunk_keys() keys (256 rounded up to whole
 *       blocks), each for every kv head (so the item streams whole blocks: a slot's K of all kv heads
 *       is one contiguous row). The chunk length is fixed, not chosen from the step's work, so that a
 *       row's arithmetic never depends on its batch (cpu_paged_attention_internal.h): a long
 *       sequence still spreads over every thread (4k keys are 16 items), a short one is one item.
 * Prefill items come first, then decode items; threads take the next item from an atomic counter,
 * so they finish together however uneven the items are. Split decodes leave partials (acc, m, l);
 * a second run over (sequence, head) merges them in chunk order with pa_merge_chunk, exactly as a
 * prefill row merges its chunks, and normalises.
 */
#include "backend/cpu/cpu_paged_attention.h"

#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_paged_attention_internal.h" /* defines: pa_item, pa_scratch, pa_run_item */
#include "core/dtype.h"                               /* defines: dtype_name */
#include "core/error.h"                               /* defines: error_set */

enum {
    PA_INITIAL_PARTIAL_CHUNKS = 64, /* partial scratch at init: this many decode chunks (it grows on demand) */
};

struct cpu_paged_attention {
    threadpool *pool;
    int n_threads;
    paged_attention_limits limits;
    int rows_max;               /* query rows per item: max(PA_ROWS_TARGET, max_n_head) */
    pa_scratch *scratch;        /* [n_threads] */
    float *partials;            /* [partial_floats] */
    size_t partial_floats;      /* capacity of partials */
    /* The current pass's plan, each [max_seqs] (item_start [max_seqs + 1]): */
    int32_t *order;             /* args' sequence indices, prefills first, then decodes */
    int64_t *item_start;        /* items of order[i]: item_start[i] .. item_start[i+1]-1 */
    int32_t *n_tiles;           /* per sequence of the pass: prefill token tiles or decode chunks */
    int32_t *chunk_keys;        /* decode: keys per chunk */
    int64_t *partial_off;       /* decode split into several chunks: its partials' offset, else -1 */
    int32_t *split_seqs;        /* sequences of the pass that were split */
    int n_split_seqs;
    int pass_first, pass_n;     /* sequences pass_first .. pass_first + pass_n - 1 */
    int n_order;
    int tq;                     /* tokens per prefill tile */
    int64_t n_items;
    atomic_int_fast64_t next_item;
    const paged_attention_args *args;
};

/* ---- init / free ------------------------------------------------------------------------------------- */

static void *alloc_floats(size_t n) {
    size_t bytes = (n * sizeof(float) + 63) & ~(size_t)63;
    return aligned_alloc(64, bytes ? bytes : 64);
}

void cpu_paged_attention_free(cpu_paged_attention *pa) {
    if (!pa) return;
    if (pa->scratch)
        for (int i = 0; i < pa->n_threads; i++) {
            pa_scratch *s = &pa->scratch[i];
            free(s->q);
            free(s->acc);
            free(s->m);
            free(s->l);
            free(s->p);
            free(s->kt);
            free(s->vt);
            free(s->cm);
            free(s->cl);
            free(s->cacc);
        }
    free(pa->scratch);
    free(pa->partials);
    free(pa->order);
    free(pa->item_start);
    free(pa->n_tiles);
    free(pa->chunk_keys);
    free(pa->partial_off);
    free(pa->split_seqs);
    free(pa);
}

pagoda_status cpu_paged_attention_init(threadpool *pool, const paged_attention_limits *limits,
                                       cpu_paged_attention **out) {
    *out = NULL;
    if (limits->max_seqs <= 0 || limits->max_n_head <= 0 || limits->max_head_dim <= 0 ||
        limits->max_head_dim % 8 != 0 || limits->max_head_dim > PAGED_ATTENTION_MAX_HEAD_DIM)
        return error_set(PAGODA_ERR_INVALID_ARGUMENT,
                         "paged attention: bad limits (max_seqs %d, max_n_head %d, max_head_dim %d: a multiple "
                         "of 8 up to %d)",
                         limits->max_seqs, limits->max_n_head, limits->max_head_dim, PAGED_ATTENTION_MAX_HEAD_DIM);
    cpu_paged_attention *pa = calloc(1, sizeof *pa);
    if (!pa) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory for the paged-attention workspace");
    pa->pool = pool;
    pa->n_threads = threadpool_n_threads(pool);
    pa->limits = *limits;
    pa->rows_max = limits->max_n_head > PA_ROWS_TARGET ? limits->max_n_head : PA_ROWS_TARGET;
    size_t hd = (size_t)limits->max_head_dim, rows = (size_t)pa->rows_max;
    pa->partial_floats = (size_t)PA_INITIAL_PARTIAL_CHUNKS * limits->max_n_head * (hd + 2);
    size_t n_seqs = (size_t)limits->max_seqs;
    pa->scratch = calloc((size_t)pa->n_threads, sizeof *pa->scratch);
    pa->partials = alloc_floats(pa->partial_floats);
    pa->order = malloc(n_seqs * sizeof *pa->order);
    pa->item_start = malloc((n_seqs + 1) * sizeof *pa->item_start);
    pa->n_tiles = malloc(n_seqs * sizeof *pa->n_tiles);
    pa->chunk_keys = malloc(n_seqs * sizeof *pa->chunk_keys);
    pa->partial_off = malloc(n_seqs * sizeof *pa->partial_off);
    pa->split_seqs = malloc(n_seqs * sizeof *pa->split_seqs);
    bool ok = pa->scratch && pa->partials && pa->order && pa->item_start && pa->n_tiles && pa->chunk_keys &&
              pa->partial_off && pa->split_seqs;
    for (int i = 0; ok && i < pa->n_threads; i++) {
        pa_scratch *s = &pa->scratch[i];
        s->q = alloc_floats(rows * hd);
        s->acc = alloc_floats(rows * hd);
        s->m = alloc_floats(rows);
        s->l = alloc_floats(rows);
        s->p = alloc_floats(rows * PA_TILE_KEYS);
        s->kt = alloc_floats((size_t)limits->max_n_head * PA_TILE_KEYS * hd); /* n_kv_head <= n_head */
        s->vt = alloc_floats((size_t)limits->max_n_head * PA_TILE_KEYS * hd);
        s->cm = alloc_floats(rows);
        s->cl = alloc_floats(rows);
        s->cacc = alloc_floats(rows * hd);
        ok = s->q && s->acc && s->m && s->l && s->p && s->kt && s->vt && s->cm && s->cl && s->cacc;
        /* scores of a tile's last keys are computed four at a time past its end, from here */
        if (ok) memset(s->kt, 0, (size_t)limits->max_n_head * PA_TILE_KEYS * hd * sizeof(float));
    }
    if (!ok) {
        cpu_paged_attention_free(pa);
        return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory for the paged-attention scratch");
    }
    *out = pa;
    return PAGODA_OK;
}

/* ---- planning ---------------------------------------------------------------------------------------- */

static int n_q_of(const paged_attention_args *a, int s) { return a->query_start[s + 1] - a->query_start[s]; }

/* Plans sequences first .. first + n - 1 into pa's arrays (see the top of the file), growing the
 * partial scratch when the pass's split decodes need more. Errors: PAGODA_ERR_OUT_OF_MEMORY. */
static pagoda_status plan_pass(cpu_paged_attention *pa, const paged_attention_args *a, int first, int n) {
    int group = a->n_head / a->n_kv_head, chunk = pa_chunk_keys(a->block_size);
    pa->pass_first = first;
    pa->pass_n = n;
    pa->tq = PA_ROWS_TARGET / group > 1 ? PA_ROWS_TARGET / group : 1;
    size_t item_floats = (size_t)a->n_head * (a->head_dim + 2); /* one decode item's partial */
    size_t partial_used = 0;
    pa->n_order = 0;
    pa->n_split_seqs = 0;
    for (int pass = 0; pass < 2; pass++) /* prefills, then decodes */
        for (int i = 0; i < n; i++) {
            int s = first + i, n_q = n_q_of(a, s);
            if (n_q == 0 || (n_q == 1) != (pass == 1)) continue;
            pa->order[pa->n_order++] = i;
            pa->partial_off[i] = -1;
            if (n_q > 1) {
                pa->n_tiles[i] = (n_q + pa->tq - 1) / pa->tq;
                continue;
            }
            int len = a->seq_lens[s];
            pa->chunk_keys[i] = chunk;
            pa->n_tiles[i] = len > chunk ? (len + chunk - 1) / chunk : 1;
            if (pa->n_tiles[i] > 1) {
                pa->partial_off[i] = (int64_t)partial_used;
                partial_used += (size_t)pa->n_tiles[i] * item_floats;
                pa->split_seqs[pa->n_split_seqs++] = i;
            }
        }
    if (partial_used > pa->partial_floats) {
        float *grown = alloc_floats(partial_used + partial_used / 2);
        if (!grown)
            return error_set(PAGODA_ERR_OUT_OF_MEMORY, "paged attention: no memory for the split-KV partials "
                             "(%zu MiB)", (partial_used * sizeof(float)) >> 20);
        free(pa->partials);
        pa->partials = grown;
        pa->partial_floats = partial_used + partial_used / 2;
    }
    pa->item_start[0] = 0;
    for (int o = 0; o < pa->n_order; o++) {
        int s = first + pa->order[o];
        int per_tile = n_q_of(a, s) > 1 ? a->n_kv_head : 1; /* prefill tiles: one item per kv head */
        pa->item_start[o + 1] = pa->item_start[o] + (int64_t)pa->n_tiles[pa->order[o]] * per_tile;
    }
    pa->n_items = pa->item_start[pa->n_order];
    return PAGODA_OK;
}

/* The item with global index `index` of the current pass. */
static void locate_item(const cpu_paged_attention *pa, const paged_attention_args *a, int64_t index,
                        pa_item *it) {
    int lo = 0, hi = pa->n_order - 1; /* the last o with item_start[o] <= index */
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (pa->item_start[mid] <= index) lo = mid;
        else hi = mid - 1;
    }
    int i = pa->order[lo], s = pa->pass_first + i, n_q = n_q_of(a, s);
    int64_t local = index - pa->item_start[lo];
    it->seq = s;
    it->partial = NULL;
    if (n_q > 1) {
        int tile = pa->n_tiles[i] - 1 - (int)(local / a->n_kv_head); /* the largest tiles first */
        it->kv_head = (int)(local % a->n_kv_head);
        it->n_kv = 1;
        it->tok0 = tile * pa->tq;
        it->n_tok = n_q - it->tok0 < pa->tq ? n_q - it->tok0 : pa->tq;
        it->key0 = 0;
        it->key1 = a->seq_lens[s] - n_q + it->tok0 + it->n_tok;
        return;
    }
    it->kv_head = 0;
    it->n_kv = a->n_kv_head;
    it->tok0 = 0;
    it->n_tok = 1;
    it->key0 = (int)local * pa->chunk_keys[i];
    it->key1 = it->key0 + pa->chunk_keys[i] < a->seq_lens[s] ? it->key0 + pa->chunk_keys[i] : a->seq_lens[s];
    if (pa->partial_off[i] >= 0)
        it->partial = pa->partials + pa->partial_off[i] + (size_t)local * a->n_head * (a->head_dim + 2);
}

/* ---- running ----------------------------------------------------------------------------------------- */

static void items_thread(void *ctx, int thread_index, int n_threads) {
    cpu_paged_attention *pa = ctx;
    pa_scratch *scratch = &pa->scratch[thread_index];
    for (;;) {
        int64_t index = atomic_fetch_add_explicit(&pa->next_item, 1, memory_order_relaxed);
        if (index >= pa->n_items) break;
        pa_item it;
        locate_item(pa, pa->args, index, &it);
        pa_run_item(pa->args, &it, scratch);
    }
}

/* Combines the partials of (split sequence, query head) pairs into args->out. A decode item's
 * partial is [n_head][head_dim] acc, m[n_head], l[n_head]. */
static void reduce_thread(void *ctx, int thread_index, int n_threads) {
    cpu_paged_attention *pa = ctx;
    const paged_attention_args *a = pa->args;
    int hd = a->head_dim, nh = a->n_head;
    size_t item_floats = (size_t)nh * (hd + 2);
    int64_t begin, end;
    threadpool_split((int64_t)pa->n_split_seqs * nh, thread_index, n_threads, &begin, &end);
    for (int64_t task = begin; task < end; task++) {
        int i = pa->split_seqs[task / nh], h = (int)(task % nh);
        int s = pa->pass_first + i, n_chunks = pa->n_tiles[i];
        const float *base = pa->partials + pa->partial_off[i];
        float *dst = a->out + ((size_t)a->query_start[s] * nh + h) * hd;
        float m = -INFINITY, l = 0;
        for (int c = 0; c < n_chunks; c++) {
            const float *item = base + c * item_floats;
            pa_merge_chunk(&m, &l, dst, item[(size_t)nh * hd + h], item[(size_t)nh * hd + nh + h],
                           item + (size_t)h * hd, hd);
        }
        float inv = l > 0 ? 1.0f / l : 0.0f;
        for (int d = 0; d < hd; d++) dst[d] *= inv;
    }
}

static pagoda_status check_args(const cpu_paged_attention *pa, const paged_attention_args *a) {
    if (a->cache_type != DTYPE_F32 && a->cache_type != DTYPE_F16 && a->cache_type != DTYPE_BF16)
        return error_set(PAGODA_ERR_UNSUPPORTED, "paged attention: cache type %s", dtype_name(a->cache_type));
    if (a->n_head <= 0 || a->n_kv_head <= 0 || a->n_head % a->n_kv_head != 0 || a->n_head > pa->limits.max_n_head ||
        a->head_dim <= 0 || a->head_dim % 8 != 0 || a->head_dim > pa->limits.max_head_dim || a->block_size <= 0 ||
        a->n_seqs < 0)
        return error_set(PAGODA_ERR_INVALID_ARGUMENT,
                         "paged attention: heads %d/%d, head_dim %d, block_size %d break the limits (n_head <= %d, "
                         "head_dim a multiple of 8 <= %d)",
                         a->n_head, a->n_kv_head, a->head_dim, a->block_size, pa->limits.max_n_head,
                         pa->limits.max_head_dim);
    for (int s = 0; s < a->n_seqs; s++) {
        int n_q = n_q_of(a, s);
        if (n_q < 0 || a->seq_lens[s] < n_q ||
            ((int64_t)a->seq_lens[s] + a->block_size - 1) / a->block_size > a->max_blocks_per_seq)
            return error_set(PAGODA_ERR_INVALID_ARGUMENT,
                             "paged attention: sequence %d has %d queries, length %d, %d blocks per table", s, n_q,
                             a->seq_lens[s], a->max_blocks_per_seq);
    }
    return PAGODA_OK;
}

pagoda_status cpu_paged_attention_run(cpu_paged_attention *pa, const paged_attention_args *a) {
    pagoda_status st = pa ? check_args(pa, a)
                          : error_set(PAGODA_ERR_INVALID_ARGUMENT, "paged attention: no workspace (not reserved)");
    if (st) {
        int64_t n_tokens = a->n_seqs > 0 ? a->query_start[a->n_seqs] : 0;
        if (n_tokens > 0 && a->n_head > 0 && a->head_dim > 0)
            for (size_t i = 0; i < (size_t)n_tokens * a->n_head * a->head_dim; i++) a->out[i] = NAN;
        return st;
    }
    pa->args = a;
    for (int first = 0; first < a->n_seqs; first += pa->limits.max_seqs) {
        int n = a->n_seqs - first < pa->limits.max_seqs ? a->n_seqs - first : pa->limits.max_seqs;
        if ((st = plan_pass(pa, a, first, n))) {
            for (size_t i = 0; i < (size_t)a->query_start[a->n_seqs] * a->n_head * a->head_dim; i++) a->out[i] = NAN;
            pa->args = NULL;
            return st;
        }
        if (pa->n_items == 0) continue;
        atomic_store_explicit(&pa->next_item, 0, memory_order_relaxed);
        if (pa->n_items == 1 || pa->n_threads == 1) items_thread(pa, 0, 1);
        else threadpool_run(pa->pool, items_thread, pa);
        if (pa->n_split_seqs == 0) continue;
        if ((int64_t)pa->n_split_seqs * a->n_head < 4 || pa->n_threads == 1) reduce_thread(pa, 0, 1);
        else threadpool_run(pa->pool, reduce_thread, pa);
    }
    pa->args = NULL;
    return PAGODA_OK;
}
