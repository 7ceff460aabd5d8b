/* backend/cpu/cpu_paged_attention_internal.h - what the paged-attention planner
 * (cpu_paged_attention.c) and the tile kernel (cpu_paged_attention_tile.c) share: one work item and
 * a thread's scratch. */
#ifndef PAGODA_BACKEND_CPU_PAGED_ATTENTION_INTERNAL_H
#define PAGODA_BACKEND_CPU_PAGED_ATTENTION_INTERNAL_H

#include "kernels/ref/paged_attention.h" /* defines: paged_attention_args */

#include <math.h>

enum {
    PA_TILE_KEYS = 32,   /* keys per K/V tile (a tile never crosses a block) */
    PA_ROWS_TARGET = 32, /* query rows (tokens x heads of a group) per prefill item */
    PA_CHUNK_MIN_KEYS = 256, /* keys per softmax chunk, rounded up to whole blocks */
};

/* Batch invariance: every query row, prefill or decode, splits its keys into the same chunks of
 * pa_chunk_keys() (a fixed length, not chosen from the step's work), runs the online softmax within
 * each chunk over the same tiles, and merges the chunks in order with pa_merge_chunk(). A row's
 * output is then bit-identical whichever sequences share its step and however its prompt was cut
 * into prefill chunks. Decode items are chunks (FlashDecoding's split, merged by the reduce); a
 * prefill item merges at each chunk boundary it crosses. */
static inline int pa_chunk_keys(int block_size) {
    return (PA_CHUNK_MIN_KEYS + block_size - 1) / block_size * block_size;
}

/* Folds one chunk's (m, l, acc[hd]) into the running (M, L, A[hd]); M = -inf means empty. */
static inline void pa_merge_chunk(float *M, float *L, float *A, float m, float l, const float *acc, int hd) {
    if (*M == -INFINITY) {
        *M = m;
        *L = l;
        for (int d = 0; d < hd; d++) A[d] = acc[d];
        return;
    }
    float m_new = fmaxf(*M, m);
    float a = expf(*M - m_new), b = expf(m - m_new);
    for (int d = 0; d < hd; d++) {
        float x = A[d] * a, y = acc[d] * b;
        A[d] = x + y;
    }
    float x = *L * a, y = l * b;
    *L = x + y;
    *M = m_new;
}

/* One item: the query rows of tokens tok0 .. tok0+n_tok-1 of sequence `seq` (counted from
 * query_start[seq]) times the query heads of kv heads kv_head .. kv_head+n_kv-1, against keys
 * key0 .. key1-1 (rows also stop at their causal limit). Rows are ordered kv head, token, head of the
 * group: row r is kv head kv_head + r / (n_tok group), token tok0 + r % (n_tok group) / group, query
 * head (kv head) group + r % group. A decode item (n_tok = 1, all kv heads) thus has row = query head. */
typedef struct pa_item {
    int seq;
    int kv_head, n_kv;
    int tok0, n_tok;
    int key0, key1;
    float *partial; /* NULL: write the normalised rows to args->out. Else a partial result:
                       [n_rows][head_dim] unnormalised output, then m[n_rows] (running max of the
                       scores), then l[n_rows] (sum of exp(score - m)) */
} pa_item;

/* A thread's working memory, each array 64-byte aligned. */
typedef struct pa_scratch {
    float *q;       /* [rows_max][head_dim] queries times scale */
    float *acc;     /* [rows_max][head_dim] unnormalised output */
    float *m, *l;   /* [rows_max] running max, running sum */
    float *p;       /* [rows_max][PA_TILE_KEYS] scores, then probabilities, of the current tile */
    float *kt, *vt; /* [n_kv][PA_TILE_KEYS][head_dim] the current K/V tile in f32, per kv head */
    float *cm, *cl; /* [rows_max] merged chunks: running max, sum (-inf: no chunk merged yet) */
    float *cacc;    /* [rows_max][head_dim] merged chunks: unnormalised output */
} pa_scratch;

/* Runs one item (n_kv * n_tok * group <= the scratch's rows; n_kv <= its kv heads; head_dim <= its). */
void pa_run_item(const paged_attention_args *args, const pa_item *item, pa_scratch *scratch);

#endif
