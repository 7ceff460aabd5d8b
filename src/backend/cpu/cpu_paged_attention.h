/* backend/cpu/cpu_paged_attention.h - the CPU backend's attention over the paged KV cache, and the
 * cache writes (kv_write, kv_copy_blocks). Semantics and layouts: kernels/ref/paged_attention.h.
 *
 * Attention work is cut into items, taken by the pool's threads from a shared counter:
 *   - a sequence with n_q > 1 (prefill, prefill chunk, several speculative tokens) becomes
 *     FlashAttention tiles: (kv head, a tile of query tokens). All query heads of the kv head's group
 *     and all the tile's tokens are the rows of the item, so each K/V tile is loaded (and converted
 *     from F16/BF16) once for all of them. The item walks K/V tiles (at most 32 keys, never crossing
 *     a block) with an online softmax, skipping keys above the causal diagonal;
 *   - a sequence with n_q = 1 (decode) becomes FlashDecoding chunks: a range of keys for every kv
 *     head at once (a slot's K of all kv heads is one contiguous row, so the item streams whole
 *     blocks; one item per kv head read 1/n_kv_head of every slot and ran at ~60% of the speed).
 *     The chunks have a fixed length (256 keys rounded up to whole blocks), so a long sequence is
 *     split into several that each leave a partial (unnormalised output, max, sum); a second pass
 *     merges them in order by their log-sum-exp. A prefill row merges its keys' chunks the same way,
 *     so every row is computed identically whatever its batch (batch invariance, see
 *     cpu_paged_attention_internal.h).
 * The partial scratch is sized at init and grows when a step's long decodes need more. A batch
 * with more than max_seqs sequences runs in several passes of at most max_seqs.
 */
#ifndef PAGODA_BACKEND_CPU_PAGED_ATTENTION_H
#define PAGODA_BACKEND_CPU_PAGED_ATTENTION_H

#include <stdint.h>

#include "core/threadpool.h"             /* defines: threadpool */
#include "kernels/ref/paged_attention.h" /* defines: paged_attention_args, paged_attention_limits, kv_cache_view */
#include "pagoda.h"                      /* defines: pagoda_status */

typedef struct cpu_paged_attention cpu_paged_attention;

/* Workspace for paged attention on `pool` (borrowed; it must outlive the workspace), with the scratch
 * for the pool's thread count and the limits. Errors: PAGODA_ERR_INVALID_ARGUMENT,
 * PAGODA_ERR_OUT_OF_MEMORY. */
pagoda_status cpu_paged_attention_init(threadpool *pool, const paged_attention_limits *limits,
                                       cpu_paged_attention **out);
void cpu_paged_attention_free(cpu_paged_attention *pa);

/* Causal grouped-query attention over the paged cache (kernels/ref/paged_attention.h). Not reentrant
 * (one call at a time per workspace). Errors: PAGODA_ERR_INVALID_ARGUMENT when the shape breaks the
 * workspace's limits or the args' rules (head_dim not a multiple of 8, n_head % n_kv_head != 0, a
 * sequence shorter than its queries, or pa NULL); PAGODA_ERR_UNSUPPORTED for a cache type other
 * than F32/F16/BF16. On error, out is filled with NaN. */
pagoda_status cpu_paged_attention_run(cpu_paged_attention *pa, const paged_attention_args *args);

/* ref_kv_write, threaded over tokens; F16 via F16C, BF16 with integer rounding (both
 * round-to-nearest-even, bit-identical to core/dtype.h's scalar conversions for non-NaN inputs).
 * pool may be NULL (runs on the caller). */
void cpu_kv_write(threadpool *pool, const kv_cache_view *cache, int layer, const float *k, const float *v,
                  const int32_t *slot_mapping, int64_t n_tokens);

/* ref_kv_copy_blocks (every layer, K and V), threaded over (layer, block pair). pool may be NULL. */
void cpu_kv_copy_blocks(threadpool *pool, const kv_cache_view *cache, const int32_t *src, const int32_t *dst,
                        int n);

#endif
