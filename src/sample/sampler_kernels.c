/* sample/sampler_kernels.c - AVX2 row loops of the sampler (see sampler_kernels.h).
 *
 * exp: Cephes-style range reduction x = n ln2 + r, |r| <= ln2/2, a degree-6 polynomial for e^r and
 * 2^n built in the exponent bits; relative error about 2e-7, e^0 exactly 1.
 * top-k: a min-heap of the k best, fed only by the 8-wide blocks that hold something above the
 * heap's minimum (on a typical row, a few hundred insertions for k = 40).
 */
#include "sample/sampler_kernels.h"

#include <immintrin.h>
#include <math.h>

int32_t sampler_argmax(const float *x, int32_t n) {
    __m256 m8 = _mm256_set1_ps(-INFINITY);
    int32_t i = 0;
    for (; i + 8 <= n; i += 8) m8 = _mm256_max_ps(_mm256_loadu_ps(x + i), m8); /* a NaN in x yields m8 */
    float lanes[8], m = -INFINITY;
    _mm256_storeu_ps(lanes, m8);
    for (int k = 0; k < 8; k++) m = lanes[k] > m ? lanes[k] : m;
    for (; i < n; i++) m = x[i] > m ? x[i] : m;
    __m256 target = _mm256_set1_ps(m);
    for (i = 0; i + 8 <= n; i += 8) {
        int mask = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + i), target, _CMP_EQ_OQ));
        if (mask) return i + __builtin_ctz((unsigned)mask);
    }
    for (; i < n; i++)
        if (x[i] == m) return i;
    return 0;
}

/* e^x for x <= 0 (x below -87.3, -inf: 0). */
static inline __m256 exp_nonpositive(__m256 x) {
    const __m256 lo = _mm256_set1_ps(-87.3365f);
    __m256 underflow = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    x = _mm256_max_ps(x, lo);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    __m256 y = _mm256_add_ps(_mm256_fmadd_ps(_mm256_mul_ps(p, r), r, r), _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    y = _mm256_mul_ps(y, _mm256_castsi256_ps(e));
    return _mm256_andnot_ps(underflow, y);
}

double sampler_exp_weights(const float *x, int32_t n, float max, float inv_t, float *w) {
    __m256 vmax = _mm256_set1_ps(max), vt = _mm256_set1_ps(inv_t);
    __m256d sum = _mm256_setzero_pd();
    int32_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 ordered = _mm256_cmp_ps(v, v, _CMP_ORD_Q); /* NaN -> weight 0 */
        __m256 y = _mm256_and_ps(ordered, exp_nonpositive(_mm256_mul_ps(_mm256_sub_ps(v, vmax), vt)));
        _mm256_storeu_ps(w + i, y);
        sum = _mm256_add_pd(sum, _mm256_add_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(y)),
                                               _mm256_cvtps_pd(_mm256_extractf128_ps(y, 1))));
    }
    double lanes[4], total = 0;
    _mm256_storeu_pd(lanes, sum);
    total = lanes[0] + lanes[1] + lanes[2] + lanes[3];
    for (; i < n; i++) {
        float v = x[i];
        w[i] = isnan(v) || v == -INFINITY ? 0.0f : v == max ? 1.0f : expf((v - max) * inv_t);
        total += w[i];
    }
    return total;
}

double sampler_sum(const float *x, int32_t n) {
    __m256 acc = _mm256_setzero_ps();
    for (int32_t i = 0; i + 8 <= n; i += 8) acc = _mm256_add_ps(acc, _mm256_loadu_ps(x + i));
    float lanes[8];
    _mm256_storeu_ps(lanes, acc);
    double sum = 0;
    for (int k = 0; k < 8; k++) sum += lanes[k];
    return sum;
}

/* heap order: the root is the worst kept (smallest logit; among equals the higher id) */
static int worse(const candidate *a, const candidate *b) {
    return a->logit < b->logit || (a->logit == b->logit && a->id > b->id);
}

static void sift_down(candidate *h, int32_t k, int32_t i) {
    for (;;) {
        int32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < k && worse(&h[l], &h[m])) m = l;
        if (r < k && worse(&h[r], &h[m])) m = r;
        if (m == i) return;
        candidate t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

void sampler_top_k(const float *x, int32_t n, int32_t k, candidate *h) {
    for (int32_t i = 0; i < k; i++) h[i] = (candidate){i, isnan(x[i]) ? -INFINITY : x[i], 0};
    for (int32_t i = k / 2 - 1; i >= 0; i--) sift_down(h, k, i);
    int32_t i = k;
    /* ids only grow, so an equal logit never beats the root: only strictly greater values enter */
    for (; i < n && (i & 7); i++)
        if (x[i] > h[0].logit) {
            h[0] = (candidate){i, x[i], 0};
            sift_down(h, k, 0);
        }
    for (; i + 8 <= n; i += 8) {
        int mask = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + i), _mm256_set1_ps(h[0].logit), _CMP_GT_OQ));
        while (mask) {
            int32_t j = i + __builtin_ctz((unsigned)mask);
            mask &= mask - 1;
            if (x[j] > h[0].logit) { /* the root may have risen within this block */
                h[0] = (candidate){j, x[j], 0};
                sift_down(h, k, 0);
            }
        }
    }
    for (; i < n; i++)
        if (x[i] > h[0].logit) {
            h[0] = (candidate){i, x[i], 0};
            sift_down(h, k, 0);
        }
}
