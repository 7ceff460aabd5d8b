/* backend/cpu/cpu_paged_attention_tile.c - one paged-attention work item (AVX2 + FMA + F16C): a set of
 * query rows of one (sequence, kv head) against a range of keys, with FlashAttention's online softmax.
 *
 * For each K/V tile (at most PA_TILE_KEYS keys, inside one block, reached through the block table):
 *   1. the tile is converted to f32 once for all rows (F32 copied: contiguous rows, not rows a slot
 *      apart), slot by slot across the item's kv heads, and the next tile is prefetched;
 *   2. scores S[r][j] = (q_r * scale) . k_j for the rows that see any key of the tile, two rows by
 *      four keys at a time; keys above a row's causal limit get -inf;
 *   3. per row: m' = max(m, max_j S), c = exp(m - m'), P = exp(S - m'), l = l c + sum_j P;
 *   4. acc_r = acc_r c + sum_j P[r][j] v_j, two rows by 32 dimensions at a time.
 * Keys are cut into chunks of pa_chunk_keys(); at each chunk boundary a row folds its (acc, m, l)
 * into a running merge (pa_merge_chunk), the same arithmetic as the split-KV reduce of decodes, so
 * a row's result is the same as a prefill row or as a decode (batch invariance).
 * At the end each row is acc / l, or (acc, m, l) for the split-KV reduce. Rows whose tokens lie
 * before the tile are skipped, and the item's key range stops at its last row's position, so tiles
 * above the causal diagonal are never touched. No score matrix beyond the tile exists.
 * Not here: the choice of items and the reduce (cpu_paged_attention.c).
 */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "backend/cpu/cpu_paged_attention_internal.h" /* defines: pa_item, pa_scratch, PA_TILE_KEYS */
#include "backend/cpu/cpu_simd.h"                     /* defines: exp256 */
#include "core/dtype.h"                               /* defines: DTYPE_F32, DTYPE_F16, DTYPE_BF16 */

/* ---- vector helpers -------------------------------------------------------------------------------- */

static inline float hmax256(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* The four sums of a, b, c, d's lanes, in that order. */
static inline __m128 hsum4(__m256 a, __m256 b, __m256 c, __m256 d) {
    __m256 abcd = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
    return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

/* ---- loading a tile -------------------------------------------------------------------------------- */

/* Converts the n slots' rows of n_kv kv heads (src: slot j's head h at src + j * stride + h * hd, in
 * `type`) to f32 at dst + (h * PA_TILE_KEYS + j) * hd. Reads each slot's n_kv * hd elements in order,
 * so a decode item that takes every kv head streams whole blocks. */
static void tile_to_f32(uint32_t type, const void *src, size_t stride, int n, int n_kv, int hd, float *dst) {
    for (int j = 0; j < n; j++)
        for (int h = 0; h < n_kv; h++) {
            size_t at = (size_t)j * stride + (size_t)h * hd;
            float *d = dst + ((size_t)h * PA_TILE_KEYS + j) * hd;
            if (type == DTYPE_F32) {
                memcpy(d, (const float *)src + at, (size_t)hd * sizeof(float));
            } else if (type == DTYPE_F16) {
                const uint16_t *s = (const uint16_t *)src + at;
                for (int i = 0; i < hd; i += 8)
                    _mm256_storeu_ps(d + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + i))));
            } else { /* BF16: the f32 is the bf16 bits shifted to the top half */
                const uint16_t *s = (const uint16_t *)src + at;
                for (int i = 0; i < hd; i += 8) {
                    __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(s + i)));
                    _mm256_storeu_ps(d + i, _mm256_castsi256_ps(_mm256_slli_epi32(w, 16)));
                }
            }
        }
}

/* Asks for the n slots' rows of n_kv kv heads (as above) to be brought into the cache. */
static void tile_prefetch(const void *src, size_t stride_bytes, int n, size_t row_bytes) {
    for (int j = 0; j < n; j++) {
        const char *p = (const char *)src + (size_t)j * stride_bytes;
        for (size_t b = 0; b < row_bytes; b += 64) _mm_prefetch(p + b, _MM_HINT_T0);
    }
}

/* ---- scores: S = Q K^T ----------------------------------------------------------------------------- */

/* s0[j] = q0 . k_j and s1[j] = q1 . k_j for j < n (k_j = k + j * ks); q1 may be NULL. Keys go four
 * at a time, the last group padded past n (k must have room for n rounded up to 4 rows; s0, s1 get
 * junk there), so that a key's score is summed the same way wherever the tile ends. */
static void scores_2rows(const float *q0, const float *q1, const float *k, size_t ks, int n, int hd, float *s0,
                         float *s1) {
    for (int j = 0; j < n; j += 4) {
        const float *k0 = k + (size_t)j * ks, *k1 = k0 + ks, *k2 = k1 + ks, *k3 = k2 + ks;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        if (q1) {
            __m256 b0 = a0, b1 = a0, b2 = a0, b3 = a0;
            for (int d = 0; d < hd; d += 8) {
                __m256 x0 = _mm256_loadu_ps(q0 + d), x1 = _mm256_loadu_ps(q1 + d);
                __m256 y0 = _mm256_loadu_ps(k0 + d), y1 = _mm256_loadu_ps(k1 + d);
                __m256 y2 = _mm256_loadu_ps(k2 + d), y3 = _mm256_loadu_ps(k3 + d);
                a0 = _mm256_fmadd_ps(x0, y0, a0);
                a1 = _mm256_fmadd_ps(x0, y1, a1);
                a2 = _mm256_fmadd_ps(x0, y2, a2);
                a3 = _mm256_fmadd_ps(x0, y3, a3);
                b0 = _mm256_fmadd_ps(x1, y0, b0);
                b1 = _mm256_fmadd_ps(x1, y1, b1);
                b2 = _mm256_fmadd_ps(x1, y2, b2);
                b3 = _mm256_fmadd_ps(x1, y3, b3);
            }
            _mm_storeu_ps(s1 + j, hsum4(b0, b1, b2, b3));
        } else {
            for (int d = 0; d < hd; d += 8) {
                __m256 x0 = _mm256_loadu_ps(q0 + d);
                a0 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(k0 + d), a0);
                a1 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(k1 + d), a1);
                a2 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(k2 + d), a2);
                a3 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(k3 + d), a3);
            }
        }
        _mm_storeu_ps(s0 + j, hsum4(a0, a1, a2, a3));
    }
}

/* ---- output: acc = acc c + P V --------------------------------------------------------------------- */

/* acc0 = acc0 * c0 + sum_j p0[j] v_j (and the same for row 1 when acc1 is not NULL), j < n,
 * v_j = v + j * vs. */
static void pv_2rows(float *acc0, float *acc1, float c0, float c1, const float *p0, const float *p1,
                     const float *v, size_t vs, int n, int hd) {
    __m256 vc0 = _mm256_set1_ps(c0), vc1 = _mm256_set1_ps(c1);
    int d = 0;
    for (; d + 32 <= hd; d += 32) {
        __m256 a0 = _mm256_mul_ps(_mm256_loadu_ps(acc0 + d), vc0);
        __m256 a1 = _mm256_mul_ps(_mm256_loadu_ps(acc0 + d + 8), vc0);
        __m256 a2 = _mm256_mul_ps(_mm256_loadu_ps(acc0 + d + 16), vc0);
        __m256 a3 = _mm256_mul_ps(_mm256_loadu_ps(acc0 + d + 24), vc0);
        if (acc1) {
            __m256 b0 = _mm256_mul_ps(_mm256_loadu_ps(acc1 + d), vc1);
            __m256 b1 = _mm256_mul_ps(_mm256_loadu_ps(acc1 + d + 8), vc1);
            __m256 b2 = _mm256_mul_ps(_mm256_loadu_ps(acc1 + d + 16), vc1);
            __m256 b3 = _mm256_mul_ps(_mm256_loadu_ps(acc1 + d + 24), vc1);
            for (int j = 0; j < n; j++) {
                const float *vj = v + (size_t)j * vs + d;
                __m256 y0 = _mm256_loadu_ps(vj), y1 = _mm256_loadu_ps(vj + 8);
                __m256 y2 = _mm256_loadu_ps(vj + 16), y3 = _mm256_loadu_ps(vj + 24);
                __m256 x0 = _mm256_broadcast_ss(p0 + j), x1 = _mm256_broadcast_ss(p1 + j);
                a0 = _mm256_fmadd_ps(x0, y0, a0);
                a1 = _mm256_fmadd_ps(x0, y1, a1);
                a2 = _mm256_fmadd_ps(x0, y2, a2);
                a3 = _mm256_fmadd_ps(x0, y3, a3);
                b0 = _mm256_fmadd_ps(x1, y0, b0);
                b1 = _mm256_fmadd_ps(x1, y1, b1);
                b2 = _mm256_fmadd_ps(x1, y2, b2);
                b3 = _mm256_fmadd_ps(x1, y3, b3);
            }
            _mm256_storeu_ps(acc1 + d, b0);
            _mm256_storeu_ps(acc1 + d + 8, b1);
            _mm256_storeu_ps(acc1 + d + 16, b2);
            _mm256_storeu_ps(acc1 + d + 24, b3);
        } else {
            for (int j = 0; j < n; j++) {
                const float *vj = v + (size_t)j * vs + d;
                __m256 x0 = _mm256_broadcast_ss(p0 + j);
                a0 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(vj), a0);
                a1 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(vj + 8), a1);
                a2 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(vj + 16), a2);
                a3 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(vj + 24), a3);
            }
        }
        _mm256_storeu_ps(acc0 + d, a0);
        _mm256_storeu_ps(acc0 + d + 8, a1);
        _mm256_storeu_ps(acc0 + d + 16, a2);
        _mm256_storeu_ps(acc0 + d + 24, a3);
    }
    for (; d < hd; d += 8) {
        __m256 a = _mm256_mul_ps(_mm256_loadu_ps(acc0 + d), vc0);
        __m256 b = acc1 ? _mm256_mul_ps(_mm256_loadu_ps(acc1 + d), vc1) : a;
        for (int j = 0; j < n; j++) {
            __m256 y = _mm256_loadu_ps(v + (size_t)j * vs + d);
            a = _mm256_fmadd_ps(_mm256_broadcast_ss(p0 + j), y, a);
            if (acc1) b = _mm256_fmadd_ps(_mm256_broadcast_ss(p1 + j), y, b);
        }
        _mm256_storeu_ps(acc0 + d, a);
        if (acc1) _mm256_storeu_ps(acc1 + d, b);
    }
}

/* ---- online softmax of one row of the tile ---------------------------------------------------------- */

/* p[0..n_valid) holds scores; the rest of the padded tile (up to n rounded up to 8) is set to
 * -inf, then everything becomes exp(score - m') in place. Updates *m, *l; returns the factor c by
 * which the row's accumulator must be rescaled. */
static float softmax_row(float *p, int n_valid, int n, float *m, float *l) {
    int n8 = (n + 7) & ~7;
    for (int j = n_valid; j < n8; j++) p[j] = -INFINITY;
    __m256 vmax = _mm256_loadu_ps(p);
    for (int j = 8; j < n8; j += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(p + j));
    float m_new = fmaxf(*m, hmax256(vmax));
    float c = expf(*m - m_new); /* 0 on the row's first tile (m = -inf) */
    __m256 vm = _mm256_set1_ps(m_new), vsum = _mm256_setzero_ps();
    for (int j = 0; j < n8; j += 8) {
        __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(p + j), vm));
        _mm256_storeu_ps(p + j, e);
        vsum = _mm256_add_ps(vsum, e);
    }
    *l = *l * c + hsum256(vsum);
    *m = m_new;
    return c;
}

/* ---- one item ---------------------------------------------------------------------------------------- */

/* Where keys k .. k+n-1 of the item start in the cache (elements), and n: the tile that begins at key
 * k, at most PA_TILE_KEYS keys, inside one block, before key1. */
static size_t tile_at(const paged_attention_args *a, const int32_t *table, int kv_head, int k, int key1,
                      int *n_out) {
    int bs = a->block_size, off = k % bs, n = bs - off;
    if (n > PA_TILE_KEYS) n = PA_TILE_KEYS;
    if (n > key1 - k) n = key1 - k;
    *n_out = n;
    return ((size_t)table[k / bs] * bs + (size_t)off) * a->n_kv_head * a->head_dim + (size_t)kv_head * a->head_dim;
}

void pa_run_item(const paged_attention_args *a, const pa_item *it, pa_scratch *sc) {
    const int hd = a->head_dim, group = a->n_head / a->n_kv_head;
    const int per_kv = it->n_tok * group, n_rows = it->n_kv * per_kv; /* rows of one kv head, of all */
    const int n_q = a->query_start[it->seq + 1] - a->query_start[it->seq];
    const int pos0 = a->seq_lens[it->seq] - n_q + it->tok0; /* position of the item's first token */
    const int32_t *table = a->block_tables + (size_t)it->seq * a->max_blocks_per_seq;
    const size_t stride = (size_t)a->n_kv_head * hd; /* elements between consecutive slots */
    const size_t esize = a->cache_type == DTYPE_F32 ? 4 : 2;
    const char *kc = a->k_cache, *vc = a->v_cache;
    __m256 vscale = _mm256_set1_ps(a->scale);

    for (int r = 0; r < n_rows; r++) {
        int64_t t = (int64_t)a->query_start[it->seq] + it->tok0 + r % per_kv / group;
        int h = (it->kv_head + r / per_kv) * group + r % group;
        const float *src = a->q + ((size_t)t * a->n_head + h) * hd;
        for (int d = 0; d < hd; d += 8)
            _mm256_storeu_ps(sc->q + (size_t)r * hd + d, _mm256_mul_ps(_mm256_loadu_ps(src + d), vscale));
        memset(sc->acc + (size_t)r * hd, 0, (size_t)hd * sizeof(float));
        sc->m[r] = -INFINITY;
        sc->l[r] = 0;
        sc->cm[r] = -INFINITY;
        sc->cl[r] = 0;
    }
    const int chunk = pa_chunk_keys(a->block_size);

    int key1 = it->key1 < pos0 + it->n_tok ? it->key1 : pos0 + it->n_tok; /* past the last row: unseen */
    int n = 0;
    size_t first = it->key0 < key1 ? tile_at(a, table, it->kv_head, it->key0, key1, &n) : 0;
    for (int k = it->key0; k < key1;) {
        tile_to_f32(a->cache_type, kc + first * esize, stride, n, it->n_kv, hd, sc->kt);
        tile_to_f32(a->cache_type, vc + first * esize, stride, n, it->n_kv, hd, sc->vt);
        int n_next = 0;
        size_t next = 0;
        if (k + n < key1) { /* start fetching the next tile (usually another block) while this one runs */
            next = tile_at(a, table, it->kv_head, k + n, key1, &n_next);
            size_t row_bytes = (size_t)it->n_kv * hd * esize;
            tile_prefetch(kc + next * esize, stride * esize, n_next, row_bytes);
            tile_prefetch(vc + next * esize, stride * esize, n_next, row_bytes);
        }
        /* Rows of tokens at positions < k see nothing of this tile. */
        int rr_first = k > pos0 ? (k - pos0) * group : 0;
        if (k > it->key0 && k % chunk == 0) /* a chunk ends: rows that go on fold it into their merge */
            for (int h = 0; h < it->n_kv; h++)
                for (int rr = rr_first; rr < per_kv; rr++) {
                    int r = h * per_kv + rr;
                    pa_merge_chunk(&sc->cm[r], &sc->cl[r], sc->cacc + (size_t)r * hd, sc->m[r], sc->l[r],
                                   sc->acc + (size_t)r * hd, hd);
                    sc->m[r] = -INFINITY;
                    sc->l[r] = 0;
                    memset(sc->acc + (size_t)r * hd, 0, (size_t)hd * sizeof(float));
                }
        for (int h = 0; h < it->n_kv; h++) {
            const float *kt = sc->kt + (size_t)h * PA_TILE_KEYS * hd, *vt = sc->vt + (size_t)h * PA_TILE_KEYS * hd;
            for (int rr = rr_first; rr < per_kv; rr += 2) {
                int r = h * per_kv + rr, two = rr + 1 < per_kv;
                float *p0 = sc->p + (size_t)r * PA_TILE_KEYS, *p1 = two ? p0 + PA_TILE_KEYS : NULL;
                scores_2rows(sc->q + (size_t)r * hd, two ? sc->q + (size_t)(r + 1) * hd : NULL, kt, (size_t)hd, n, hd,
                             p0, p1);
                int n_valid0 = pos0 + rr / group - k + 1, n_valid1 = pos0 + (rr + 1) / group - k + 1;
                float c0 = softmax_row(p0, n_valid0 < n ? n_valid0 : n, n, &sc->m[r], &sc->l[r]);
                float c1 = two ? softmax_row(p1, n_valid1 < n ? n_valid1 : n, n, &sc->m[r + 1], &sc->l[r + 1]) : 0;
                pv_2rows(sc->acc + (size_t)r * hd, two ? sc->acc + (size_t)(r + 1) * hd : NULL, c0, c1, p0, p1, vt,
                         (size_t)hd, n, hd);
            }
        }
        k += n;
        n = n_next;
        first = next;
    }

    if (it->partial) {
        memcpy(it->partial, sc->acc, (size_t)n_rows * hd * sizeof(float));
        memcpy(it->partial + (size_t)n_rows * hd, sc->m, (size_t)n_rows * sizeof(float));
        memcpy(it->partial + (size_t)n_rows * hd + n_rows, sc->l, (size_t)n_rows * sizeof(float));
        return;
    }
    for (int r = 0; r < n_rows; r++) {
        int64_t t = (int64_t)a->query_start[it->seq] + it->tok0 + r % per_kv / group;
        int h = (it->kv_head + r / per_kv) * group + r % group;
        float *dst = a->out + ((size_t)t * a->n_head + h) * hd;
        const float *acc = sc->acc + (size_t)r * hd;
        float l = sc->l[r];
        if (sc->cm[r] != -INFINITY) { /* the row spans several chunks: fold in the last */
            pa_merge_chunk(&sc->cm[r], &sc->cl[r], sc->cacc + (size_t)r * hd, sc->m[r], sc->l[r], acc, hd);
            acc = sc->cacc + (size_t)r * hd;
            l = sc->cl[r];
        }
        __m256 inv = _mm256_set1_ps(l > 0 ? 1.0f / l : 0.0f);
        for (int d = 0; d < hd; d += 8) _mm256_storeu_ps(dst + d, _mm256_mul_ps(_mm256_loadu_ps(acc + d), inv));
    }
}
