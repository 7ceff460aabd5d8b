/* tests/test_cpu_matmul.c - the CPU backend's matmul against the scalar reference ref_matmul.
 *
 * For every weight type the backend takes, random f32 weights (test_seed()) are quantized with the
 * reference quantizer, and cpu_matmul's y = x W^T is compared with ref_matmul (dequant_row + double
 * accumulation, itself checked against gguf-py through test_dequant.c) by a normalised MSE over:
 *   n_cols 256, 576, 800 (an odd number of 32-blocks: the AVX-512 kernels' half-step), 1536, 2048
 *   (K-quants: multiples of 256 only), (n_rows, n_tokens) pairs that
 *   cover n_rows 1, 3, 5, 17, 100, 4099 (not multiples of the 4-row tile) and n_tokens 1, 2, 3, 5,
 *   17, 64, 600 (600 > the 512-token piece), 1, 2 and 3 threads, and both the AVX2 and the AVX-512
 *   kernels (cpu_matmul_force_isa) where the CPU has AVX-512.
 * n_tokens 1..3 take the fused few-token kernels (cpu_quant_dot_decode*.c), more tokens the tile
 * kernels (cpu_quant_dot.c, cpu_quant_dot_avx512.c).
 * A backend whose max_cols is smaller than the rows exercises the streaming fallback.
 * matmul_many (several matrices of one input in one pool round) must equal matmul_rows per matrix
 * bit for bit (check_many).
 * Batch invariance (matmul_rows, check_invariance): every token's row bit-identical alone and in any
 * batch, for decode-marked (fused) and prompt-marked (tiled) tokens.
 *
 * The MSE is normalised by the mean of sum_c (w[r][c] x[t][c])^2, not of y^2: a single dot product
 * may cancel to nearly 0 while its rounding error does not, so y^2 would make the metric depend on
 * luck for the 1-output shapes. (For many outputs the two agree within a small factor.)
 *
 * Thresholds:
 *   integer paths (x rounded to int8 per block of 32, d = max|x|/127): each element's error is
 *   uniform in +-d/2, variance d^2/12. For x uniform in [-1, 1) (variance 1/3) and max|x| ~ 1 the
 *   relative variance is (1/127)^2 / 12 / (1/3) = 1.6e-5; the dot product's NMSE is the same ratio
 *   for weights independent of x. Summed over all cases of a type (thousands of outputs, so the
 *   ratio is close to its mean) the threshold is 1e-4. One case may have a single output, whose
 *   squared error is chi-square(1) distributed around the mean: P(> 60 x mean) ~ 1e-14, so a case
 *   passes below 1e-3 (a wrong scale or one lost block of a 2048-column row gives > 1e-3).
 *   float paths (F32, F16, Q2_K, Q3_K and BF16 on AVX2): products of exact values in f32, summed
 *   in f32 over <= 2048 terms: NMSE ~ 1e-13. Threshold 1e-10 over all cases, 1e-9 for one case
 *   (the same chi-square(1) argument as above).
 *   BF16 with AVX-512 BF16 rounds x to bf16 (relative error uniform in +-2^-9 per element: NMSE
 *   2^-18 / 3 = 1.3e-6): threshold 1e-5 over all cases, 1e-4 for one (60 x the mean, as above);
 *   a lost block or a wrong row still gives > 1e-3.
 * Canaries after y check that nothing is written past [n_tokens][n_rows].
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_backend.h"    /* defines: cpu_backend_init */
#include "backend/cpu/cpu_quant_dot.h"  /* defines: cpu_matmul_force_isa, CPU_ISA_* */
#include "core/cpu.h"                   /* defines: cpu_use_avx512 */
#include "core/dtype.h"                 /* defines: DTYPE_*, dtype_row_bytes, dtype_name */
#include "kernels/ref/dequant.h"        /* defines: dequant_row */
#include "kernels/ref/ops.h"            /* defines: ref_matmul */
#include "kernels/ref/quantize.h"       /* defines: quantize_row */
#include "testlib.h"

enum { MAX_COLS = 2048, N_CANARY = 16 };
static const float CANARY = 12345.0f;

typedef struct shape {
    int64_t n_rows, n_tokens;
} shape;

static const shape SHAPES[] = {
    {1, 1}, {1, 600}, {3, 2}, {3, 64}, {5, 600}, {17, 3}, {17, 17}, {100, 5}, {100, 1}, {4099, 1}, {4099, 2},
};

/* Whether BF16 weights on this ISA take the AVX-512 BF16 kernel, which rounds x to bf16. */
static bool bf16_rounds_x(cpu_isa isa) {
    return isa == CPU_ISA_AVX512 && cpu_use_avx512() && cpu_get_features()->avx512bf16;
}

static bool is_float_path(uint32_t type) {
    return type == DTYPE_F32 || type == DTYPE_F16 || type == DTYPE_BF16 || type == DTYPE_Q2_K ||
           type == DTYPE_Q3_K;
}

static uint64_t rng;
static backend *backends[4]; /* index = n_threads */

/* sum_{t,r} sum_c (w[r][c] x[t][c])^2, with W dequantized by the reference. */
static double product_energy(uint32_t type, const uint8_t *w, size_t row_bytes, const float *x, int64_t n_rows,
                             int64_t n_cols, int64_t n_tokens) {
    float *row = malloc(sizeof(float) * (size_t)n_cols);
    double norm = 0;
    for (int64_t r = 0; r < n_rows; r++) {
        CHECK(dequant_row(type, w + (size_t)r * row_bytes, row, n_cols) == PAGODA_OK);
        for (int64_t t = 0; t < n_tokens; t++)
            for (int64_t c = 0; c < n_cols; c++) {
                double p = (double)row[c] * x[t * n_cols + c];
                norm += p * p;
            }
    }
    free(row);
    return norm;
}

static double squared_error(const float *got, const float *want, size_t n) {
    double err = 0;
    for (size_t i = 0; i < n; i++) err += ((double)got[i] - want[i]) * ((double)got[i] - want[i]);
    return err;
}

/* Per weight type: squared errors and energies summed over every case (the aggregate NMSE). */
static double total_err, total_norm;

/* Batch invariance: matmul_rows with tokens marked decode or prompt at random is as accurate as
 * matmul, and each token's row is bit-identical to that token computed alone (with its mark) on
 * another thread count: a token's result must not depend on the rest of the batch. */
static void check_invariance(uint32_t type, const backend_matrix *m, const float *x, const float *want, double norm,
                             int64_t n_tokens, int isa, double threshold) {
    int64_t n_rows = m->n_rows, n_cols = m->n_cols;
    uint8_t *decode = malloc((size_t)n_tokens);
    float *got = malloc(sizeof(float) * (size_t)(n_rows * n_tokens)), *alone = malloc(sizeof(float) * (size_t)n_rows);
    for (int64_t t = 0; t < n_tokens; t++) decode[t] = (uint8_t)(test_rand_u64(&rng) % 2);
    backends[2]->matmul_rows(backends[2], m, x, got, n_tokens, decode);
    double nmse = squared_error(got, want, (size_t)(n_rows * n_tokens)) / norm;
    CHECK_MSG(nmse < threshold, "%s cols %lld rows %lld tokens %lld %s matmul_rows: nmse %.3g >= %.3g",
              dtype_name(type), (long long)n_cols, (long long)n_rows, (long long)n_tokens,
              isa == CPU_ISA_AVX2 ? "AVX2" : "AVX-512", nmse, threshold);
    for (int64_t t = 0; t < n_tokens; t++) {
        backends[1 + t % 3]->matmul_rows(backends[1 + t % 3], m, x + t * n_cols, alone, 1, decode + t);
        CHECK_MSG(memcmp(alone, got + t * n_rows, sizeof(float) * (size_t)n_rows) == 0,
                  "%s cols %lld rows %lld %s: token %lld of %lld (%s) differs from the same token alone",
                  dtype_name(type), (long long)n_cols, (long long)n_rows, isa == CPU_ISA_AVX2 ? "AVX2" : "AVX-512",
                  (long long)t, (long long)n_tokens, decode[t] ? "decode" : "prompt");
    }
    free(decode);
    free(got);
    free(alone);
}

/* matmul_many over matrices of one input (types may differ, row counts too) gives, bit for bit,
 * what one matmul_rows call per matrix gives, on every thread count and for prompt / decode marks. */
static void check_many(const uint32_t *types, const int64_t *n_rows, int n, int64_t n_cols, int64_t n_tokens) {
    backend_matrix m[4];
    uint8_t *w[4];
    float *want[4], *got[4];
    float *wf = malloc(sizeof(float) * (size_t)n_cols), *x = malloc(sizeof(float) * (size_t)(n_cols * n_tokens));
    uint8_t *decode = malloc((size_t)n_tokens);
    for (int i = 0; i < n; i++) {
        size_t row_bytes;
        CHECK(dtype_row_bytes(types[i], n_cols, &row_bytes));
        w[i] = malloc(row_bytes * (size_t)n_rows[i]);
        for (int64_t r = 0; r < n_rows[i]; r++) {
            for (int64_t c = 0; c < n_cols; c++) wf[c] = test_rand_uniform(&rng);
            CHECK(quantize_row(types[i], wf, w[i] + (size_t)r * row_bytes, n_cols) == PAGODA_OK);
        }
        m[i] = (backend_matrix){.type = types[i], .n_cols = n_cols, .n_rows = n_rows[i], .row_bytes = row_bytes,
                                .data = w[i]};
        want[i] = malloc(sizeof(float) * (size_t)(n_rows[i] * n_tokens));
        got[i] = malloc(sizeof(float) * (size_t)(n_rows[i] * n_tokens));
    }
    for (int64_t i = 0; i < n_cols * n_tokens; i++) x[i] = test_rand_uniform(&rng);
    const backend_matrix *mp[4] = {&m[0], &m[1], &m[2], &m[3]};
    for (int marks = 0; marks < 3; marks++) { /* NULL (by size), random marks, all decode */
        for (int64_t t = 0; t < n_tokens; t++) decode[t] = marks == 2 ? 1 : (uint8_t)(test_rand_u64(&rng) % 2);
        const uint8_t *d = marks == 0 ? NULL : decode;
        for (int n_threads = 1; n_threads <= 3; n_threads++) {
            backend *be = backends[n_threads];
            for (int i = 0; i < n; i++) be->matmul_rows(be, &m[i], x, want[i], n_tokens, d);
            be->matmul_many(be, n, mp, x, got, n_tokens, d);
            for (int i = 0; i < n; i++)
                CHECK_MSG(!memcmp(want[i], got[i], sizeof(float) * (size_t)(n_rows[i] * n_tokens)),
                          "matmul_many: matrix %d (%s, %lld rows) of %d differs from matmul_rows (%lld tokens, "
                          "%d threads, marks %d)", i, dtype_name(types[i]), (long long)n_rows[i], n,
                          (long long)n_tokens, n_threads, marks);
        }
    }
    for (int i = 0; i < n; i++) {
        free(w[i]);
        free(want[i]);
        free(got[i]);
    }
    free(wf);
    free(x);
    free(decode);
}

/* Exact mode (f32 activations, weights converted to f32 rows) against ref_matmul for every type:
 * products of exact values summed in f32, so the float-path threshold (a wrong nibble order, scale
 * or offset in a converter gives NMSE > 1e-3). */
static void check_exact(uint32_t type, int64_t n_cols) {
    backend *be;
    CHECK(cpu_backend_init(2, MAX_COLS, NULL, &be) == PAGODA_OK);
    cpu_backend_set_exact(be, true);
    int64_t n_rows = 17, n_tokens = 3;
    size_t row_bytes;
    CHECK(dtype_row_bytes(type, n_cols, &row_bytes));
    float *wf = malloc(sizeof(float) * (size_t)n_cols), *x = malloc(sizeof(float) * (size_t)(n_cols * n_tokens));
    uint8_t *w = malloc(row_bytes * (size_t)n_rows);
    float want[17 * 3], got[17 * 3];
    for (int64_t r = 0; r < n_rows; r++) {
        for (int64_t c = 0; c < n_cols; c++) wf[c] = test_rand_uniform(&rng);
        CHECK(quantize_row(type, wf, w + (size_t)r * row_bytes, n_cols) == PAGODA_OK);
    }
    for (int64_t i = 0; i < n_cols * n_tokens; i++) x[i] = test_rand_uniform(&rng);
    CHECK(ref_matmul(type, w, n_rows, n_cols, x, want, n_tokens) == PAGODA_OK);
    backend_matrix m = {.type = type, .n_cols = n_cols, .n_rows = n_rows, .row_bytes = row_bytes, .data = w};
    be->matmul(be, &m, x, got, n_tokens);
    double nmse = squared_error(got, want, (size_t)(n_rows * n_tokens)) /
                  product_energy(type, w, row_bytes, x, n_rows, n_cols, n_tokens);
    CHECK_MSG(nmse < 1e-9, "%s exact mode, %lld columns: nmse %.3g >= 1e-9", dtype_name(type), (long long)n_cols,
              nmse);
    /* bit-identical to the same product on the rows dequantized by the reference (as F32 weights) */
    float *wd = malloc(sizeof(float) * (size_t)(n_rows * n_cols)), same[17 * 3];
    for (int64_t r = 0; r < n_rows; r++)
        CHECK(dequant_row(type, w + (size_t)r * row_bytes, wd + r * n_cols, n_cols) == PAGODA_OK);
    backend_matrix mf = {.type = DTYPE_F32, .n_cols = n_cols, .n_rows = n_rows,
                         .row_bytes = sizeof(float) * (size_t)n_cols, .data = wd};
    be->matmul(be, &mf, x, same, n_tokens);
    CHECK_MSG(!memcmp(same, got, sizeof got), "%s exact mode: differs from the reference-dequantized rows",
              dtype_name(type));
    free(wd);
    be->free(be);
    free(wf);
    free(x);
    free(w);
}

/* Runs one shape on every thread count and ISA; returns the worst NMSE of one run. */
static double check_shape(uint32_t type, int64_t n_cols, int64_t n_rows, int64_t n_tokens, double threshold) {
    size_t row_bytes;
    CHECK(dtype_row_bytes(type, n_cols, &row_bytes));
    float *wf = malloc(sizeof(float) * (size_t)n_cols);
    uint8_t *w = malloc(row_bytes * (size_t)n_rows);
    float *x = malloc(sizeof(float) * (size_t)(n_cols * n_tokens));
    float *want = malloc(sizeof(float) * (size_t)(n_rows * n_tokens));
    float *got = malloc(sizeof(float) * (size_t)(n_rows * n_tokens + N_CANARY));
    for (int64_t r = 0; r < n_rows; r++) {
        for (int64_t c = 0; c < n_cols; c++) wf[c] = test_rand_uniform(&rng);
        CHECK(quantize_row(type, wf, w + (size_t)r * row_bytes, n_cols) == PAGODA_OK);
    }
    for (int64_t i = 0; i < n_cols * n_tokens; i++) x[i] = test_rand_uniform(&rng);
    for (int64_t c = 0; c < 32; c++) x[c] = 0.0f; /* an all-zero activation block (scale 0) */
    CHECK(ref_matmul(type, w, n_rows, n_cols, x, want, n_tokens) == PAGODA_OK);
    backend_matrix m = {.type = type, .n_cols = n_cols, .n_rows = n_rows, .row_bytes = row_bytes, .data = w};
    double norm = product_energy(type, w, row_bytes, x, n_rows, n_cols, n_tokens);
    double worst = 0;
    for (int isa = CPU_ISA_AVX2; isa <= CPU_ISA_AVX512; isa++) {
        if (isa == CPU_ISA_AVX512 && !cpu_use_avx512()) continue;
        CHECK(cpu_matmul_force_isa((cpu_isa)isa) == (cpu_isa)isa);
        for (int n_threads = 1; n_threads <= 3; n_threads++) {
            for (int i = 0; i < n_rows * n_tokens + N_CANARY; i++) got[i] = CANARY;
            backend *be = backends[n_threads];
            be->matmul(be, &m, x, got, n_tokens);
            double err = squared_error(got, want, (size_t)(n_rows * n_tokens)), nmse = err / norm;
            double case_threshold = type == DTYPE_BF16 && bf16_rounds_x((cpu_isa)isa) ? 1e-4 : threshold;
            total_err += err;
            total_norm += norm;
            if (!(nmse <= worst)) worst = nmse; /* NaN sticks */
            CHECK_MSG(nmse < case_threshold, "%s cols %lld rows %lld tokens %lld threads %d %s: nmse %.3g >= %.3g",
                      dtype_name(type), (long long)n_cols, (long long)n_rows, (long long)n_tokens, n_threads,
                      isa == CPU_ISA_AVX2 ? "AVX2" : "AVX-512", nmse, case_threshold);
            bool canaries_ok = true;
            for (int i = 0; i < N_CANARY; i++) canaries_ok &= got[n_rows * n_tokens + i] == CANARY;
            CHECK_MSG(canaries_ok, "%s: write past the end of y", dtype_name(type));
        }
        if (n_tokens <= 64) check_invariance(type, &m, x, want, norm, n_tokens, isa,
                                             type == DTYPE_BF16 && bf16_rounds_x((cpu_isa)isa) ? 1e-4 : threshold);
    }
    free(wf);
    free(w);
    free(x);
    free(want);
    free(got);
    return worst;
}

/* Rows longer than the backend's max_cols take the streaming path. */
static void check_stream_fallback(uint32_t type, double threshold) {
    backend *small;
    CHECK(cpu_backend_init(2, 256, NULL, &small) == PAGODA_OK);
    int64_t n_cols = 1536, n_rows = 7, n_tokens = 3;
    size_t row_bytes;
    CHECK(dtype_row_bytes(type, n_cols, &row_bytes));
    float *wf = malloc(sizeof(float) * (size_t)n_cols);
    uint8_t *w = malloc(row_bytes * (size_t)n_rows);
    float *x = malloc(sizeof(float) * (size_t)(n_cols * n_tokens));
    float want[21], got[21];
    for (int64_t r = 0; r < n_rows; r++) {
        for (int64_t c = 0; c < n_cols; c++) wf[c] = test_rand_uniform(&rng);
        CHECK(quantize_row(type, wf, w + (size_t)r * row_bytes, n_cols) == PAGODA_OK);
    }
    for (int64_t i = 0; i < n_cols * n_tokens; i++) x[i] = test_rand_uniform(&rng);
    CHECK(ref_matmul(type, w, n_rows, n_cols, x, want, n_tokens) == PAGODA_OK);
    backend_matrix m = {.type = type, .n_cols = n_cols, .n_rows = n_rows, .row_bytes = row_bytes, .data = w};
    small->matmul(small, &m, x, got, n_tokens);
    double nmse = squared_error(got, want, 21) / product_energy(type, w, row_bytes, x, n_rows, n_cols, n_tokens);
    CHECK_MSG(nmse < threshold, "%s streaming fallback: nmse %.3g", dtype_name(type), nmse);
    small->free(small);
    free(wf);
    free(w);
    free(x);
}

int main(void) {
    rng = test_seed();
    for (int n = 1; n <= 3; n++) CHECK(cpu_backend_init(n, MAX_COLS, NULL, &backends[n]) == PAGODA_OK);
    if (!cpu_use_avx512()) printf("note: no AVX-512 on this CPU; only the AVX2 kernels are tested\n");
    static const uint32_t types[] = {DTYPE_F32,  DTYPE_F16,  DTYPE_BF16, DTYPE_Q4_0, DTYPE_Q4_1,
                                     DTYPE_Q5_0, DTYPE_Q5_1, DTYPE_Q8_0, DTYPE_Q2_K, DTYPE_Q3_K,
                                     DTYPE_Q4_K, DTYPE_Q5_K, DTYPE_Q6_K};
    static const int64_t cols[] = {256, 576, 800, 1536, 2048};
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        uint32_t type = types[ti];
        double threshold = is_float_path(type) ? 1e-9 : 1e-3; /* one case */
        double total_threshold = is_float_path(type) ? 1e-10 : 1e-4;
        if (type == DTYPE_BF16 && bf16_rounds_x(CPU_ISA_AVX512)) total_threshold = 1e-5;
        double worst = 0;
        total_err = total_norm = 0;
        for (size_t ci = 0; ci < sizeof cols / sizeof cols[0]; ci++) {
            size_t row_bytes;
            if (!dtype_row_bytes(type, cols[ci], &row_bytes)) continue; /* K-quants: multiples of 256 */
            for (size_t si = 0; si < sizeof SHAPES / sizeof SHAPES[0]; si++) {
                double nmse = check_shape(type, cols[ci], SHAPES[si].n_rows, SHAPES[si].n_tokens, threshold);
                if (!(nmse <= worst)) worst = nmse;
            }
        }
        check_stream_fallback(type, threshold);
        check_exact(type, 256);
        check_exact(type, 2048);
        double total = total_err / total_norm;
        CHECK_MSG(total < total_threshold, "%s: aggregate nmse %.3g >= %.0e", dtype_name(type), total,
                  total_threshold);
        printf("%-5s nmse: all cases %.3g (threshold %.0e), worst case %.3g (threshold %.0e)\n", dtype_name(type),
               total, total_threshold, worst, type == DTYPE_BF16 && bf16_rounds_x(CPU_ISA_AVX512) ? 1e-4 : threshold);
    }
    cpu_matmul_force_isa(CPU_ISA_AUTO);
    static const uint32_t qkv_types[] = {DTYPE_Q4_1, DTYPE_Q4_1, DTYPE_Q8_0};
    static const uint32_t kq_types[] = {DTYPE_Q4_K, DTYPE_Q6_K};
    static const uint32_t mixed_types[] = {DTYPE_Q4_0, DTYPE_F16, DTYPE_Q5_1}; /* F16: not integer-path */
    static const int64_t qkv_rows[] = {576, 192, 193}, kq_rows[] = {100, 37}, mixed_rows[] = {9, 10, 11};
    static const int64_t many_tokens[] = {1, 2, 5, 70};
    for (int i = 0; i < 4; i++) {
        check_many(qkv_types, qkv_rows, 3, 576, many_tokens[i]);
        check_many(kq_types, kq_rows, 2, 512, many_tokens[i]);
        check_many(mixed_types, mixed_rows, 3, 64, many_tokens[i]);
    }
    for (int n = 1; n <= 3; n++) backends[n]->free(backends[n]);
    return test_finish();
}
