/* tests/test_backend_ops.c - every op of the CPU backend against the scalar references.
 *
 * Each op of the table that cpu_backend_init() returns is run on fresh random inputs (test_seed(),
 * never all zeros) with 1, 2 and 3 threads and compared with kernels/ref/ops.h (ref_matmul,
 * ref_rmsnorm, ref_rope, ref_swiglu, ref_attention), with dequant_row (get_rows) or with the
 * definition written out here (add), by normalised MSE (test_nmse). The reference ops accumulate
 * in double; the backend in f32 with a different order, so the thresholds below are about f32
 * rounding only; each is justified where it is defined. Outputs are bracketed by guard words so
 * a write outside the output is caught in the plain build too. (matmul's NMSE has a floor on its
 * denominator; see matmul_case.) The backend runs in exact mode (f32 activations); its default
 * int8-activation matmul is held to ref_matmul in tests/test_cpu_matmul.c.
 *
 * Not covered here: the reference ops themselves (the dequantizer is checked against gguf-py in
 * test_dequant.c; the model as a whole in test_stories260k.c).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_backend.h" /* defines: cpu_backend_init, backend, backend_matrix */
#include "core/dtype.h"              /* defines: DTYPE_*, dtype_name, dtype_row_bytes, dtype_get_info */
#include "kernels/ref/dequant.h"     /* defines: dequant_row, QK_K */
#include "kernels/ref/ops.h"         /* defines: ref_matmul, ref_rmsnorm, ref_rope, ref_swiglu, ref_attention */
#include "kernels/ref/quantize.h"    /* defines: quantize_row */
#include "testlib.h"

static uint64_t rng;
static const int THREAD_COUNTS[] = {1, 2, 3};
enum { N_THREAD_COUNTS = 3 };

/* ---- bookkeeping: the worst NMSE per op ------------------------------------------------------------ */

typedef struct op_stats {
    const char *name;
    double threshold;  /* see where each is set; 0 with a threshold_note: set per case */
    const char *threshold_note;
    double worst;
    char worst_case[160];
    int n_cases;
} op_stats;

static op_stats stats_matmul = {"matmul", 0, NULL, 0, "", 0};
static op_stats stats_get_rows = {"get_rows", 0, NULL, 0, "", 0};
static op_stats stats_rmsnorm = {"rmsnorm", 0, NULL, 0, "", 0};
static op_stats stats_rope = {"rope(pos<=4096)", 0, NULL, 0, "", 0};
static op_stats stats_rope_far = {"rope(pos<=100k)", 0, NULL, 0, "", 0};
static op_stats stats_swiglu = {"swiglu", 0, NULL, 0, "", 0};
static op_stats stats_add = {"add", 0, NULL, 0, "", 0};
static op_stats stats_attention = {"attention", 0, NULL, 0, "", 0};
static op_stats stats_attention_peaky = {"attention(peaky)", 0, NULL, 0, "", 0};

/* Records and checks one comparison by test_nmse; `threshold` overrides the op's default when > 0. */
static void record_nmse(op_stats *s, double nmse, double threshold, const char *case_desc) {
    double limit = threshold > 0 ? threshold : s->threshold;
    s->n_cases++;
    if (!isnan(s->worst) && !(nmse <= s->worst)) { /* a NaN is the worst of all, and stays */
        s->worst = nmse;
        snprintf(s->worst_case, sizeof s->worst_case, "%s", case_desc);
    }
    CHECK_MSG(nmse <= limit, "%s %s: NMSE %.3g > %.3g", s->name, case_desc, nmse, limit);
}

static void record(op_stats *s, const float *got, const float *want, size_t n, double threshold,
                   const char *case_desc) {
    record_nmse(s, test_nmse(got, want, n), threshold, case_desc);
}

static void report(const op_stats *s) {
    char limit[64];
    if (s->threshold_note) snprintf(limit, sizeof limit, "%s", s->threshold_note);
    else snprintf(limit, sizeof limit, "%.3g", s->threshold);
    printf("%-17s %5d cases  worst NMSE %.3g (threshold %s) at %s\n", s->name, s->n_cases, s->worst, limit,
           s->worst_case[0] ? s->worst_case : "-");
}

/* ---- buffers with guard words ---------------------------------------------------------------------- */

enum { GUARD = 16 };
static const float GUARD_VALUE = -12345.678f;

/* Returns a buffer of n floats with GUARD guard words on each side. */
static float *guarded_alloc(size_t n) {
    float *base = malloc((n + 2 * GUARD) * sizeof *base);
    if (!base) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < GUARD; i++) base[i] = base[GUARD + n + i] = GUARD_VALUE;
    return base + GUARD;
}

static bool guards_intact(const float *p, size_t n) {
    for (size_t i = 0; i < GUARD; i++)
        if (memcmp(&p[-1 - (ptrdiff_t)i], &GUARD_VALUE, 4) || memcmp(&p[n + i], &GUARD_VALUE, 4)) return false;
    return true;
}

static void guarded_free(float *p) {
    if (p) free(p - GUARD);
}

/* Uniform in [-scale, scale), never exactly 0 (a zero would hide a missing term). */
static void fill_random(float *x, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) {
        float v = test_rand_uniform(&rng);
        x[i] = (v == 0 ? 0.5f : v) * scale;
    }
}

static backend *backend_new(int n_threads, int64_t max_cols) {
    backend *be = NULL;
    pagoda_status st = cpu_backend_init(n_threads, max_cols, NULL, &be);
    if (st == PAGODA_OK) cpu_backend_set_exact(be, true); /* the int8 fast path: tests/test_cpu_matmul.c */
    CHECK_MSG(st == PAGODA_OK && be, "cpu_backend_init(%d, %lld): %s", n_threads, (long long)max_cols,
              pagoda_last_error());
    if (be) CHECK(be->n_threads(be) == n_threads);
    return be;
}

/* ---- matmul ---------------------------------------------------------------------------------------- */

static const uint32_t MATMUL_TYPES[] = {DTYPE_F32,  DTYPE_F16,  DTYPE_BF16, DTYPE_Q4_0, DTYPE_Q4_1,
                                        DTYPE_Q5_0, DTYPE_Q5_1, DTYPE_Q8_0, DTYPE_Q2_K, DTYPE_Q3_K,
                                        DTYPE_Q4_K, DTYPE_Q5_K, DTYPE_Q6_K};
enum { N_MATMUL_TYPES = sizeof MATMUL_TYPES / sizeof MATMUL_TYPES[0] };

/* Quantizes n_rows random rows (each with its own scale, so blocks differ) into a new buffer. */
static void *random_weights(uint32_t type, int64_t n_rows, int64_t n_cols, size_t *out_row_bytes) {
    size_t row_bytes = 0;
    CHECK(dtype_row_bytes(type, n_cols, &row_bytes));
    uint8_t *w = malloc((size_t)n_rows * row_bytes + 1);
    float *row = malloc((size_t)n_cols * sizeof *row);
    for (int64_t r = 0; r < n_rows; r++) {
        float row_scale = 0.05f + 2.0f * fabsf(test_rand_uniform(&rng));
        fill_random(row, (size_t)n_cols, row_scale);
        pagoda_status st = quantize_row(type, row, w + (size_t)r * row_bytes, n_cols);
        CHECK_MSG(st == PAGODA_OK, "quantize_row(%s): %s", dtype_name(type), pagoda_last_error());
    }
    free(row);
    *out_row_bytes = row_bytes;
    return w;
}

/* One shape of one type: the reference once, then the backend at every thread count.
 * `backends` were made with max_cols = n_cols (so chunk_rows depends on the shape). */
static void matmul_case(backend *const backends[N_THREAD_COUNTS], uint32_t type, int64_t n_rows,
                        int64_t n_cols, int64_t n_tokens) {
    size_t row_bytes;
    void *w = random_weights(type, n_rows, n_cols, &row_bytes);
    float *x = malloc((size_t)(n_tokens * n_cols) * sizeof *x);
    fill_random(x, (size_t)(n_tokens * n_cols), 1.0f);
    size_t n_out = (size_t)(n_tokens * n_rows);
    float *want = malloc(n_out * sizeof *want);
    pagoda_status st = ref_matmul(type, w, n_rows, n_cols, x, want, n_tokens);
    CHECK_MSG(st == PAGODA_OK, "ref_matmul(%s): %s", dtype_name(type), pagoda_last_error());
    /* The denominator of the NMSE: sum of y^2, but at least the sum of the squared products w * x
     * that make up the outputs. f32 rounding error scales with the products, not with the result,
     * so with few outputs (1 row, 1 token) cancellation could make sum y^2 small by chance and the
     * plain NMSE flaky (measured: 1.6% of single 1536-term outputs exceed 1e-10); with the floor the
     * worst of 20000 single outputs was 1.4e-12. With many outputs the two sums agree. */
    double sum_y2 = 0, sum_products2 = 0;
    float *row = malloc((size_t)n_cols * sizeof *row);
    for (int64_t r = 0; r < n_rows; r++) {
        dequant_row(type, (const uint8_t *)w + (size_t)r * row_bytes, row, n_cols);
        for (int64_t t = 0; t < n_tokens; t++)
            for (int64_t c = 0; c < n_cols; c++) {
                double p = (double)row[c] * x[t * n_cols + c];
                sum_products2 += p * p;
            }
    }
    free(row);
    for (size_t j = 0; j < n_out; j++) sum_y2 += (double)want[j] * want[j];
    double denominator = sum_y2 > sum_products2 ? sum_y2 : sum_products2;
    backend_matrix m = {type, n_cols, n_rows, row_bytes, w};
    float *got = guarded_alloc(n_out);
    for (int i = 0; i < N_THREAD_COUNTS; i++) {
        if (!backends[i]) continue;
        for (size_t j = 0; j < n_out; j++) got[j] = NAN;
        backends[i]->matmul(backends[i], &m, x, got, n_tokens);
        char desc[160];
        snprintf(desc, sizeof desc, "%s rows=%lld cols=%lld tokens=%lld threads=%d", dtype_name(type),
                 (long long)n_rows, (long long)n_cols, (long long)n_tokens, THREAD_COUNTS[i]);
        record_nmse(&stats_matmul, test_nmse(got, want, n_out) * sum_y2 / denominator, 0, desc);
        CHECK_MSG(guards_intact(got, n_out), "matmul %s: wrote outside the output", desc);
    }
    guarded_free(got);
    free(want);
    free(x);
    free(w);
}

static void test_matmul(void) {
    /* ref_matmul dequantizes with the same dequant_row and sums in double, so the only difference is
     * f32 accumulation in the backend: each output is a dot product of n_cols terms, and a sum of n
     * terms in f32 (8-16 partial sums) has a relative error of order sqrt(n) * 2^-24 for random
     * signs (worst case n * 2^-24), i.e. an NMSE around n * 2^-48 ~ 5e-12 for n = 1536. 1e-10
     * leaves ~20x headroom over the largest shape, while one wrong output among a few thousand
     * gives an NMSE above 1e-5. */
    stats_matmul.threshold = 1e-10;
    static const int64_t block_cols[] = {32, 64, 256, 576, 1536};
    static const int64_t plain_cols[] = {1, 7, 33, 100}; /* block size 1: exercise the kernel's tail */
    static const int64_t rows[] = {1, 3, 5, 6, 17, 100}; /* odd, even, not multiples of the tile */
    static const int64_t tokens[] = {1, 2, 3, 7, 64};
    enum { N_BLOCK_COLS = 5, N_PLAIN_COLS = 4, N_ROWS = 6, N_TOKENS = 5 };

    for (int ci = 0; ci < N_BLOCK_COLS + N_PLAIN_COLS; ci++) {
        int64_t n_cols = ci < N_BLOCK_COLS ? block_cols[ci] : plain_cols[ci - N_BLOCK_COLS];
        backend *backends[N_THREAD_COUNTS];
        for (int i = 0; i < N_THREAD_COUNTS; i++) backends[i] = backend_new(THREAD_COUNTS[i], n_cols);
        for (int ti = 0; ti < N_MATMUL_TYPES; ti++) {
            uint32_t type = MATMUL_TYPES[ti];
            if (n_cols % dtype_get_info(type)->block_elems) continue;
            for (int ri = 0; ri < N_ROWS; ri++) {
                /* Every (n_cols, n_rows) pair once, n_tokens cycling so each count meets each shape
                 * dimension; the 64-token cases are limited to keep the double reference quick. */
                int64_t n_tokens = tokens[(ri + ci + ti) % N_TOKENS];
                if (n_tokens == 64 && n_cols * rows[ri] > 64 * 1024) n_tokens = 7;
                matmul_case(backends, type, rows[ri], n_cols, n_tokens);
            }
            /* 4099 rows: odd, not a multiple of the 4-row tile, and with chunk_rows = 256 at
             * n_cols = 256 every thread count crosses several chunks. */
            if (n_cols == 256) matmul_case(backends, type, 4099, n_cols, 1 + ti % 3);
        }
        for (int i = 0; i < N_THREAD_COUNTS; i++)
            if (backends[i]) backends[i]->free(backends[i]);
    }
}

/* ---- get_rows -------------------------------------------------------------------------------------- */

static void test_get_rows(void) {
    /* The backend's lookup must return exactly the reference dequantization of each requested row
     * (dequant_row is exact by specification: no FMA, fixed order), so any difference is an indexing
     * error: threshold 0, compared as NMSE and bit for bit. */
    stats_get_rows.threshold = 0;
    backend *be = backend_new(2, 1);
    if (!be) return;
    for (int ti = 0; ti < N_MATMUL_TYPES; ti++) {
        uint32_t type = MATMUL_TYPES[ti];
        int64_t n_cols = dtype_get_info(type)->block_elems == 1 ? 100 : 512;
        int64_t n_rows = 37, n_ids = 23;
        size_t row_bytes;
        void *w = random_weights(type, n_rows, n_cols, &row_bytes);
        int32_t ids[23];
        for (int64_t i = 0; i < n_ids; i++) ids[i] = (int32_t)(test_rand_u64(&rng) % (uint64_t)n_rows);
        ids[0] = 0;
        ids[1] = (int32_t)n_rows - 1;
        ids[2] = ids[3]; /* repeats */
        size_t n_out = (size_t)(n_ids * n_cols);
        float *want = malloc(n_out * sizeof *want);
        for (int64_t i = 0; i < n_ids; i++)
            CHECK(dequant_row(type, (const uint8_t *)w + (size_t)ids[i] * row_bytes, want + i * n_cols, n_cols) ==
                  PAGODA_OK);
        float *got = guarded_alloc(n_out);
        backend_matrix m = {type, n_cols, n_rows, row_bytes, w};
        be->get_rows(be, &m, ids, n_ids, got);
        char desc[64];
        snprintf(desc, sizeof desc, "%s cols=%lld ids=%lld", dtype_name(type), (long long)n_cols, (long long)n_ids);
        record(&stats_get_rows, got, want, n_out, 0, desc);
        CHECK_MSG(memcmp(got, want, n_out * sizeof *got) == 0, "get_rows %s: not bit-exact", desc);
        CHECK_MSG(guards_intact(got, n_out), "get_rows %s: wrote outside the output", desc);
        guarded_free(got);
        free(want);
        free(w);
    }
    be->free(be);
}

/* ---- rmsnorm --------------------------------------------------------------------------------------- */

static void test_rmsnorm(void) {
    /* The sum of squares is accumulated in f32 (terms all positive: relative error <= dim * 2^-24,
     * ~ sqrt(dim) * 2^-24 in practice), then each output takes 2-3 more roundings. The NMSE is
     * therefore ~ (few * 2^-24)^2 + (sqrt(dim) * 2^-24 / 2)^2 ~ 1e-14 for dim = 4096; 1e-12 leaves
     * ample headroom. */
    stats_rmsnorm.threshold = 1e-12;
    static const int64_t dims[] = {1, 7, 64, 100, 896, 4096};
    static const int64_t tokens[] = {1, 3, 16};
    static const float x_scales[] = {1.0f, 1e-3f, 300.0f}; /* 1e-3: eps matters */
    static const float epss[] = {1e-5f, 1e-6f};
    for (int ti = 0; ti < N_THREAD_COUNTS; ti++) {
        backend *be = backend_new(THREAD_COUNTS[ti], 1);
        if (!be) continue;
        for (int di = 0; di < 6; di++)
            for (int ki = 0; ki < 3; ki++) {
                int64_t dim = dims[di], n_tokens = tokens[ki];
                float x_scale = x_scales[(di + ki + ti) % 3], eps = epss[(di + ki) % 2];
                size_t n = (size_t)(dim * n_tokens);
                float *x = malloc(n * sizeof *x), *weight = malloc((size_t)dim * sizeof *weight);
                float *want = malloc(n * sizeof *want), *got = guarded_alloc(n);
                fill_random(x, n, x_scale);
                for (int64_t i = 0; i < dim; i++) weight[i] = 1.0f + 0.5f * test_rand_uniform(&rng);
                ref_rmsnorm(x, weight, want, n_tokens, dim, eps);
                be->rmsnorm(be, x, weight, got, n_tokens, dim, eps);
                char desc[96];
                snprintf(desc, sizeof desc, "dim=%lld tokens=%lld scale=%g eps=%g threads=%d", (long long)dim,
                         (long long)n_tokens, (double)x_scale, (double)eps, THREAD_COUNTS[ti]);
                record(&stats_rmsnorm, got, want, n, 0, desc);
                CHECK_MSG(guards_intact(got, n), "rmsnorm %s: wrote outside the output", desc);
                free(x);
                free(weight);
                free(want);
                guarded_free(got);
            }
        be->free(be);
    }
}

/* ---- rope ------------------------------------------------------------------------------------------ */

/* The backend may compute the angle pos * inv_freq in f32 (as Hugging Face and llama.cpp do), the
 * reference in double. Rounding an angle of size a to f32 moves it by up to a * 2^-24, and
 * sin/cos in f32 add a few 2^-24 more, so a rotated pair (x0, x1) moves by at most
 * |(x0, x1)| * (a * 2^-24 + 4 * 2^-24). This returns that bound on the NMSE of a whole case:
 * sum over pairs of |pair|^2 * (delta angle)^2, divided by sum x^2. At position 100k the first pair
 * alone may be off by 6e-3 rad (bound ~1e-7..1e-6 per case); with positions up to 4096, ~1e-9; at
 * positions below 10 it is the plain f32 budget, ~1e-13. */
static double rope_nmse_bound(const float *x, const int32_t *pos, int64_t n_tokens, int n_heads, int head_dim,
                              const rope_params *rope) {
    double err = 0, ref = 0;
    int half = rope->n_rot / 2;
    for (int64_t t = 0; t < n_tokens; t++)
        for (int h = 0; h < n_heads; h++) {
            const float *v = x + ((size_t)t * (size_t)n_heads + (size_t)h) * (size_t)head_dim;
            for (int d = 0; d < head_dim; d++) ref += (double)v[d] * v[d];
            for (int i = 0; i < half; i++) {
                int a = rope->style == ROPE_STYLE_NEOX ? i : 2 * i;
                int b = rope->style == ROPE_STYLE_NEOX ? i + half : 2 * i + 1;
                double angle = (double)pos[t] * rope->inv_freq[i];
                double delta = (angle + 4.0) * 0x1p-24;
                err += ((double)v[a] * v[a] + (double)v[b] * v[b]) * delta * delta;
            }
        }
    return err / ref;
}

static void rope_case(backend *be, int n_threads, rope_style style, int head_dim, int n_rot, int n_heads,
                      double base, float factor, int32_t max_pos) {
    int64_t n_tokens = 12;
    int32_t pos[12];
    static const int32_t fixed[] = {0, 1, 2, 4095, 8192, 32767};
    for (int t = 0; t < 6; t++) pos[t] = fixed[t] < max_pos ? fixed[t] : max_pos;
    for (int t = 6; t < 12; t++) pos[t] = (int32_t)(test_rand_u64(&rng) % (uint64_t)(max_pos + 1));
    pos[11] = max_pos;
    float inv_freq[256];
    for (int i = 0; i < n_rot / 2; i++) inv_freq[i] = (float)(pow(base, -2.0 * i / n_rot) / factor);
    rope_params rope = {style, n_rot, inv_freq};

    size_t n = (size_t)(n_tokens * n_heads * head_dim);
    float *x = malloc(n * sizeof *x), *want = malloc(n * sizeof *want), *got = guarded_alloc(n);
    fill_random(x, n, 2.0f);
    memcpy(want, x, n * sizeof *x);
    memcpy(got, x, n * sizeof *x);
    ref_rope(want, pos, n_tokens, n_heads, head_dim, &rope);
    be->rope(be, got, pos, n_tokens, n_heads, head_dim, &rope);
    char desc[128];
    snprintf(desc, sizeof desc, "%s head_dim=%d n_rot=%d heads=%d base=%g factor=%g max_pos=%d threads=%d",
             style == ROPE_STYLE_NEOX ? "neox" : "normal", head_dim, n_rot, n_heads, base, (double)factor,
             max_pos, n_threads);
    double bound = rope_nmse_bound(x, pos, n_tokens, n_heads, head_dim, &rope);
    /* The bound is a worst case (measured NMSE is ~0.02-0.15 of it); 2x covers its approximations. */
    record(max_pos > 8192 ? &stats_rope_far : &stats_rope, got, want, n, 2 * bound, desc);
    CHECK_MSG(guards_intact(got, n), "rope %s: wrote outside the input", desc);
    /* Dimensions past n_rot pass through untouched. */
    int n_changed = 0;
    for (size_t i = 0; i < n; i++)
        if ((int)(i % (size_t)head_dim) >= n_rot) n_changed += memcmp(&got[i], &x[i], 4) != 0;
    CHECK_MSG(n_changed == 0, "rope %s: %d pass-through values changed", desc, n_changed);
    free(x);
    free(want);
    guarded_free(got);
}

static void test_rope(void) {
    /* Each case's threshold is twice rope_nmse_bound (about 1e-9 for positions up to 4096, 1e-7..1e-6
     * up to 100k); a swapped sin/cos, a wrong pair layout or a wrong position gives NMSE ~ 1. */
    stats_rope.threshold_note = stats_rope_far.threshold_note = "2x angle-rounding bound per case";
    static const struct { int head_dim, n_rot; } dims[] = {{64, 64}, {128, 128}, {128, 64}, {80, 32},
                                                           {96, 32}, {8, 8},     {8, 4}};
    static const double bases[] = {10000.0, 500000.0, 1000000.0};
    for (int ti = 0; ti < N_THREAD_COUNTS; ti++) {
        backend *be = backend_new(THREAD_COUNTS[ti], 1);
        if (!be) continue;
        for (int style = 0; style < 2; style++)
            for (int di = 0; di < 7; di++) {
                int k = di + style + ti;
                rope_case(be, THREAD_COUNTS[ti], (rope_style)style, dims[di].head_dim, dims[di].n_rot,
                          1 + k % 5, bases[k % 3], k % 4 == 0 ? 8.0f : 1.0f, 100000);
                rope_case(be, THREAD_COUNTS[ti], (rope_style)style, dims[di].head_dim, dims[di].n_rot, 3,
                          bases[(k + 1) % 3], 1.0f, 4096);
            }
        be->free(be);
    }
}

/* ---- swiglu and add -------------------------------------------------------------------------------- */

static void test_swiglu_add(void) {
    /* swiglu: a few f32 roundings per element (exp, divide, multiply) on both sides: NMSE of the
     * order (4 * 2^-24)^2 ~ 6e-14 at worst; 1e-12. add: one correctly rounded f32 addition per
     * element, so any correct implementation is bit-exact: threshold 0. */
    stats_swiglu.threshold = 1e-12;
    stats_add.threshold = 0;
    static const int64_t sizes[] = {1, 7, 8, 1000, 65537};
    for (int ti = 0; ti < N_THREAD_COUNTS; ti++) {
        backend *be = backend_new(THREAD_COUNTS[ti], 1);
        if (!be) continue;
        for (int si = 0; si < 5; si++) {
            size_t n = (size_t)sizes[si];
            float *gate = malloc(n * sizeof *gate), *up = malloc(n * sizeof *up);
            float *want = malloc(n * sizeof *want), *got = guarded_alloc(n);
            fill_random(gate, n, 12.0f);
            fill_random(up, n, 3.0f);
            if (n > 8) { /* saturating and overflowing exp */
                gate[0] = 100.0f;
                gate[1] = -100.0f;
                gate[2] = -1000.0f;
                gate[3] = 1000.0f;
            }
            memcpy(want, gate, n * sizeof *gate);
            memcpy(got, gate, n * sizeof *gate);
            ref_swiglu(want, up, (int64_t)n);
            be->swiglu(be, got, up, (int64_t)n);
            char desc[64];
            snprintf(desc, sizeof desc, "n=%zu threads=%d", n, THREAD_COUNTS[ti]);
            record(&stats_swiglu, got, want, n, 0, desc);
            CHECK_MSG(guards_intact(got, n), "swiglu %s: wrote outside the input", desc);

            /* add: y += x, against the definition. */
            fill_random(got, n, 5.0f);
            for (size_t i = 0; i < n; i++) want[i] = got[i] + up[i];
            be->add(be, got, up, (int64_t)n);
            record(&stats_add, got, want, n, 0, desc);
            CHECK_MSG(memcmp(got, want, n * sizeof *got) == 0, "add %s: not bit-exact", desc);
            CHECK_MSG(guards_intact(got, n), "add %s: wrote outside the input", desc);
            free(gate);
            free(up);
            free(want);
            guarded_free(got);
        }
        be->free(be);
    }
}

/* ---- attention ------------------------------------------------------------------------------------- */

typedef enum pos_mode {
    POS_DECODE,       /* one query at the last position: q_pos = n_kv - 1 */
    POS_DECODE_SHORT, /* one query that sees only part of the cache */
    POS_PREFILL,      /* n_tokens queries at n_kv - n_tokens .. n_kv - 1 (causal) */
    POS_RAGGED,       /* queries at random, unsorted positions, including 0 and n_kv - 1 */
} pos_mode;

static const char *const POS_MODE_NAMES[] = {"decode", "decode-short", "prefill", "ragged"};

static void attention_case(backend *const backends[N_THREAD_COUNTS], int head_dim, int n_head, int n_kv_head,
                           int64_t n_tokens, int64_t n_kv, pos_mode mode, float amp) {
    size_t n_q = (size_t)(n_tokens * n_head * head_dim), n_k = (size_t)(n_kv * n_kv_head * head_dim);
    float *q = malloc(n_q * sizeof *q), *k = malloc(n_k * sizeof *k), *v = malloc(n_k * sizeof *v);
    float *want = malloc(n_q * sizeof *want), *got = guarded_alloc(n_q);
    int32_t *q_pos = malloc((size_t)n_tokens * sizeof *q_pos);
    fill_random(q, n_q, amp);
    fill_random(k, n_k, amp);
    fill_random(v, n_k, 1.0f);
    for (int64_t t = 0; t < n_tokens; t++) {
        switch (mode) {
        case POS_DECODE: q_pos[t] = (int32_t)(n_kv - 1); break;
        case POS_DECODE_SHORT: q_pos[t] = (int32_t)(test_rand_u64(&rng) % (uint64_t)n_kv); break;
        case POS_PREFILL: q_pos[t] = (int32_t)(n_kv - n_tokens + t); break;
        case POS_RAGGED: q_pos[t] = (int32_t)(test_rand_u64(&rng) % (uint64_t)n_kv); break;
        }
    }
    if (mode == POS_RAGGED && n_tokens >= 2) {
        q_pos[0] = (int32_t)(n_kv - 1);
        q_pos[1] = 0; /* one visible key: the output is that value row */
    }
    float scale = 1.0f / sqrtf((float)head_dim);
    pagoda_status st =
        ref_attention(q, k, v, want, q_pos, n_tokens, n_kv, n_head, n_kv_head, head_dim, scale);
    CHECK_MSG(st == PAGODA_OK, "ref_attention: %s", pagoda_last_error());
    backend_attention_args args = {q, k, v, got, q_pos, n_tokens, n_kv, n_head, n_kv_head, head_dim, scale};
    for (int i = 0; i < N_THREAD_COUNTS; i++) {
        if (!backends[i]) continue;
        for (size_t j = 0; j < n_q; j++) got[j] = NAN;
        backends[i]->attention(backends[i], &args);
        char desc[160];
        snprintf(desc, sizeof desc, "%s head_dim=%d heads=%d/%d tokens=%lld n_kv=%lld amp=%g threads=%d",
                 POS_MODE_NAMES[mode], head_dim, n_head, n_kv_head, (long long)n_tokens, (long long)n_kv,
                 (double)amp, THREAD_COUNTS[i]);
        record(amp > 2 ? &stats_attention_peaky : &stats_attention, got, want, n_q, 0, desc);
        CHECK_MSG(guards_intact(got, n_q), "attention %s: wrote outside the output", desc);
    }
    free(q);
    free(k);
    free(v);
    free(want);
    guarded_free(got);
    free(q_pos);
}

static void test_attention(void) {
    /* amp = 1: scores are O(1). The backend's f32 dot products (relative error ~ sqrt(head_dim) *
     * 2^-24), f32 exp and the f32 online-softmax sums over up to 2000 keys give each output a
     * relative error ~ sqrt(n_kv) * 2^-24 ~ 3e-6 at the very worst: NMSE ~ 1e-11 at most; 1e-10.
     * amp = 8 ("peaky"): q.k * scale has a standard deviation of amp^2 / 3 ~ 21, so among 2000 keys
     * the largest score leads the next by ~5 units and softmax puts ~99% of the weight on one or two
     * keys. A score is then off by up to 2^-24 * sum_d |q_d k_d| * scale ~ 2^-24 * head_dim * amp^2
     * / 4 / sqrt(head_dim) ~ 1e-5 for head_dim 128 (worst case; ~1e-6 for random signs), an error
     * carried into the weights of the keys that matter: NMSE up to ~1e-10; threshold 1e-9. */
    stats_attention.threshold = 1e-10;
    stats_attention_peaky.threshold = 1e-9;
    backend *backends[N_THREAD_COUNTS];
    for (int i = 0; i < N_THREAD_COUNTS; i++) backends[i] = backend_new(THREAD_COUNTS[i], 1);
    static const int head_dims[] = {8, 20, 64, 128};
    static const int ratios[] = {1, 2, 3, 4, 8};
    for (int hi = 0; hi < 4; hi++)
        for (int ri = 0; ri < 5; ri++) {
            int hd = head_dims[hi], ratio = ratios[ri];
            int n_kv_head = ratio == 8 ? 1 : 2, n_head = ratio * n_kv_head;
            for (int pi = 0; pi < 2; pi++) {
                float amp = pi ? 8.0f : 1.0f;
                attention_case(backends, hd, n_head, n_kv_head, 1, 1 + (int64_t)(test_rand_u64(&rng) % 2000),
                               POS_DECODE, amp);
                attention_case(backends, hd, n_head, n_kv_head, 1, 2000, POS_DECODE_SHORT, amp);
                attention_case(backends, hd, n_head, n_kv_head, 17, 17, POS_PREFILL, amp);
                attention_case(backends, hd, n_head, n_kv_head, 7, 300, POS_PREFILL, amp);
                attention_case(backends, hd, n_head, n_kv_head, 5, 1999, POS_RAGGED, amp);
            }
            if (hi == ri % 4) attention_case(backends, hd, n_head, n_kv_head, 64, 64, POS_PREFILL, 1.0f);
        }
    for (int i = 0; i < N_THREAD_COUNTS; i++)
        if (backends[i]) backends[i]->free(backends[i]);
}

int main(void) {
    rng = test_seed();
    test_matmul();
    test_get_rows();
    test_rmsnorm();
    test_rope();
    test_swiglu_add();
    test_attention();
    report(&stats_matmul);
    report(&stats_get_rows);
    report(&stats_rmsnorm);
    report(&stats_rope);
    report(&stats_rope_far);
    report(&stats_swiglu);
    report(&stats_add);
    report(&stats_attention);
    report(&stats_attention_peaky);
    return test_finish();
}
