/* kernels/ref/ops.c - scalar reference operators (see ops.h). */
#include "kernels/ref/ops.h"

#include <math.h>
#include <stdlib.h>

#include "core/dtype.h"        /* defines: dtype_row_bytes, dtype_name */
#include "core/error.h"        /* defines: error_set */
#include "kernels/ref/dequant.h" /* defines: dequant_row, dequant_supported */

pagoda_status ref_matmul(uint32_t type, const void *w, int64_t n_rows, int64_t n_cols, const float *x,
                         float *y, int64_t n_tokens) {
    size_t row_bytes;
    if (!dequant_supported(type) || !dtype_row_bytes(type, n_cols, &row_bytes))
        return error_set(PAGODA_ERR_UNSUPPORTED, "matmul: weight type %s is not supported", dtype_name(type));
    float *row = malloc((size_t)n_cols * sizeof *row);
    if (!row) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "matmul: no memory for a row of %lld", (long long)n_cols);
    for (int64_t r = 0; r < n_rows; r++) {
        pagoda_status st = dequant_row(type, (const uint8_t *)w + (size_t)r * row_bytes, row, n_cols);
        if (st) {
            free(row);
            return st;
        }
        for (int64_t t = 0; t < n_tokens; t++) {
            double acc = 0;
            for (int64_t c = 0; c < n_cols; c++) acc += (double)row[c] * (double)x[t * n_cols + c];
            y[t * n_rows + r] = (float)acc;
        }
    }
    free(row);
    return PAGODA_OK;
}

void ref_rmsnorm(const float *x, const float *weight, float *y, int64_t n_tokens, int64_t dim, float eps) {
    for (int64_t t = 0; t < n_tokens; t++) {
        double sum = 0;
        for (int64_t i = 0; i < dim; i++) sum += (double)x[t * dim + i] * (double)x[t * dim + i];
        float scale = (float)(1.0 / sqrt(sum / (double)dim + (double)eps));
        for (int64_t i = 0; i < dim; i++) y[t * dim + i] = x[t * dim + i] * scale * weight[i];
    }
}

void ref_rope(float *x, const int32_t *pos, int64_t n_tokens, int n_heads, int head_dim,
              const rope_params *rope) {
    int half = rope->n_rot / 2;
    for (int64_t t = 0; t < n_tokens; t++) {
        for (int h = 0; h < n_heads; h++) {
            float *v = x + ((size_t)t * (size_t)n_heads + (size_t)h) * (size_t)head_dim;
            for (int i = 0; i < half; i++) {
                double angle = (double)pos[t] * (double)rope->inv_freq[i];
                float c = (float)cos(angle), s = (float)sin(angle);
                int a = rope->style == ROPE_STYLE_NEOX ? i : 2 * i;
                int b = rope->style == ROPE_STYLE_NEOX ? i + half : 2 * i + 1;
                float x0 = v[a], x1 = v[b];
                v[a] = x0 * c - x1 * s;
                v[b] = x0 * s + x1 * c;
            }
        }
    }
}

void ref_swiglu(float *gate, const float *up, int64_t n) {
    for (int64_t i = 0; i < n; i++) gate[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

pagoda_status ref_attention(const float *q, const float *k, const float *v, float *out, const int32_t *q_pos,
                   int64_t n_tokens, int64_t n_kv, int n_head, int n_kv_head, int head_dim, float scale) {
    int group = n_head / n_kv_head;
    double *scores = malloc((size_t)n_kv * sizeof *scores);
    if (!scores) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "attention: no memory for %lld scores", (long long)n_kv);
    for (int64_t t = 0; t < n_tokens; t++) {
        for (int h = 0; h < n_head; h++) {
            const float *qv = q + ((size_t)t * n_head + h) * head_dim;
            int kvh = h / group;
            int64_t n_seen = (int64_t)q_pos[t] + 1;
            if (n_seen > n_kv) n_seen = n_kv;
            double max = -INFINITY;
            for (int64_t j = 0; j < n_seen; j++) {
                const float *kv = k + ((size_t)j * n_kv_head + kvh) * head_dim;
                double dot = 0;
                for (int d = 0; d < head_dim; d++) dot += (double)qv[d] * (double)kv[d];
                scores[j] = dot * scale;
                if (scores[j] > max) max = scores[j];
            }
            double sum = 0;
            for (int64_t j = 0; j < n_seen; j++) sum += (scores[j] = exp(scores[j] - max));
            float *o = out + ((size_t)t * n_head + h) * head_dim;
            for (int d = 0; d < head_dim; d++) {
                double acc = 0;
                for (int64_t j = 0; j < n_seen; j++)
                    acc += scores[j] * (double)v[((size_t)j * n_kv_head + kvh) * head_dim + d];
                o[d] = (float)(acc / sum);
            }
        }
    }
    free(scores);
    return PAGODA_OK;
}
