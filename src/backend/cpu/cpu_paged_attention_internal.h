/* backend/cpu/cpu_paged_attention_internal.h - what the paged-attention planner
 * (cpu_paged_attention.c) and the tile kernel (cpu_paged_attention_tile.c) share: one work item and
 * a thread's scratch. */
#ifndef PAGODA_BACKEND_CPU_PAGED_ATTENTION_INTERNAL_H
#define PAGODA_BACKEND_CPU_PAGED_ATTENTION_INTERNAL_H

#include "kernels/ref/paged_attention.h" /* defines: paged_attention_args */

enum {
    PA_TILE_KEYS = 32,   /* keys per K/V tile (a tile never crosses a block) */
    PA_ROWS_TARGET = 32, /* query rows (tokens x heads of a group) per prefill item */
};

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
} pa_scratch;

/* Runs one item (n_kv * n_tok * group <= the scratch's rows; n_kv <= its kv heads; head_dim <= its). */
void pa_run_item(const paged_attention_args *args, const pa_item *item, pa_scratch *scratch);

#endif
