/* tests/test_dequant.c - dequant_row() against gguf-py's dequantize() for every implemented type.
 *
 * Fixtures: tests/fixtures/dequant/dequant_<TYPE>.bin, made by tools/make_dequant_fixtures.py
 * (random blocks with finite f16 scales, dequantized by the PyPI `gguf` package).
 * Tolerance: none. gguf-py computes in f32 with the same operations in the same order as the
 * layout description in dequant.h (f16 -> f32 is exact, then one or two rounded products and a
 * subtraction/addition, never fused), so every result must match bit for bit, signed zeros
 * included. A mismatch means a wrong layout, not a rounding difference.
 * Also: unaligned input, error returns, and dtype_info.dequantizable agreeing with dequant_row.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"          /* defines: DTYPE_*, dtype_get_info, dtype_row_bytes, fp32_to_fp16 */
#include "kernels/ref/dequant.h" /* defines: dequant_row, dequant_supported, dequant_row_* */
#include "pagoda.h"              /* defines: pagoda_last_error, PAGODA_ERR_* */
#include "testlib.h"

#define FIXTURE_DIR "tests/fixtures/dequant"

typedef struct fixture {
    uint32_t type;
    uint32_t n_elems;
    uint32_t n_bytes;
    uint8_t *quant;  /* [n_bytes] */
    float *expected; /* [n_elems] */
    char *file;      /* the whole file; quant and expected point into copies */
} fixture;

static uint32_t get_u32(const char *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* Loads a "PDQ1" fixture; false (after a failed CHECK) if it is missing or malformed. */
static bool fixture_load(const char *type_name, fixture *fx) {
    char name[64];
    snprintf(name, sizeof name, "dequant_%s.bin", type_name);
    size_t len = 0;
    char *file = test_read_file(test_path(FIXTURE_DIR, name), &len);
    CHECK_MSG(file != NULL, "cannot read %s/%s (run tools/make_dequant_fixtures.py)", FIXTURE_DIR,
              name);
    if (!file) return false;
    bool ok = len >= 16 && memcmp(file, "PDQ1", 4) == 0;
    if (ok) {
        fx->type = get_u32(file + 4);
        fx->n_elems = get_u32(file + 8);
        fx->n_bytes = get_u32(file + 12);
        ok = len == 16 + (size_t)fx->n_bytes + 4 * (size_t)fx->n_elems;
    }
    CHECK_MSG(ok, "%s: malformed fixture", name);
    if (!ok) { free(file); return false; }
    fx->quant = malloc(fx->n_bytes);
    fx->expected = malloc(4 * (size_t)fx->n_elems);
    memcpy(fx->quant, file + 16, fx->n_bytes);
    memcpy(fx->expected, file + 16 + fx->n_bytes, 4 * (size_t)fx->n_elems);
    fx->file = file;
    return true;
}

static void fixture_free(fixture *fx) {
    free(fx->quant);
    free(fx->expected);
    free(fx->file);
}

static bool same_bits(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

/* Counts elements whose bits differ, reporting the first few. */
static int compare_exact(const char *what, const float *got, const float *want, int64_t n) {
    int n_bad = 0;
    for (int64_t i = 0; i < n; i++) {
        if (same_bits(got[i], want[i])) continue;
        if (n_bad++ < 5)
            fprintf(stderr, "  %s: element %lld (block elem %lld): got %.9g want %.9g\n", what,
                    (long long)i, (long long)(i % 256), got[i], want[i]);
    }
    return n_bad;
}

typedef void (*dequant_fn)(const void *, float *, int64_t);

static void test_type_against_fixture(uint32_t type, dequant_fn per_type_fn) {
    const char *name = dtype_name(type);
    fixture fx;
    if (!fixture_load(name, &fx)) return;
    CHECK_MSG(fx.type == type, "%s: fixture holds type %u", name, fx.type);
    size_t row_bytes = 0;
    CHECK_MSG(dtype_row_bytes(type, fx.n_elems, &row_bytes) && row_bytes == fx.n_bytes,
              "%s: %u elements take %zu bytes by the dtype table, fixture has %u", name,
              fx.n_elems, row_bytes, fx.n_bytes);

    float *got = malloc(4 * (size_t)fx.n_elems);
    pagoda_status st = dequant_row(type, fx.quant, got, fx.n_elems);
    CHECK_MSG(st == PAGODA_OK, "%s: dequant_row: %s", name, pagoda_last_error());
    int n_bad = compare_exact(name, got, fx.expected, fx.n_elems);
    CHECK_MSG(n_bad == 0, "%s: %d of %u elements differ from gguf-py", name, n_bad, fx.n_elems);

    /* The per-type entry point and an odd (unaligned) source address give the same bits. */
    uint8_t *shifted = malloc((size_t)fx.n_bytes + 1);
    memcpy(shifted + 1, fx.quant, fx.n_bytes);
    memset(got, 0xff, 4 * (size_t)fx.n_elems);
    per_type_fn(shifted + 1, got, fx.n_elems);
    n_bad = compare_exact(name, got, fx.expected, fx.n_elems);
    CHECK_MSG(n_bad == 0, "%s: unaligned per-type call: %d elements differ", name, n_bad);

    free(shifted);
    free(got);
    fixture_free(&fx);
}

/* Known answers written from the layout description alone (no gguf-py): nibble order of the
 * legacy blocks and the sign convention of Q3_K's high bit. */
static void test_hand_made_blocks(void) {
    uint16_t one = fp32_to_fp16(1.0f), half = fp32_to_fp16(0.5f);

    uint8_t q4_0[18] = {0};
    memcpy(q4_0, &one, 2);
    q4_0[2 + 0] = 0x21; /* element 0 = 1, element 16 = 2 */
    q4_0[2 + 15] = 0xF0; /* element 15 = 0, element 31 = 15 */
    float y[QK_K];
    CHECK(dequant_row(DTYPE_Q4_0, q4_0, y, 32) == PAGODA_OK);
    CHECK(y[0] == -7.0f && y[16] == -6.0f && y[15] == -8.0f && y[31] == 7.0f && y[1] == -8.0f);

    uint8_t q5_1[24] = {0};
    memcpy(q5_1, &half, 2);
    memcpy(q5_1 + 2, &one, 2);         /* m = 1 */
    q5_1[4 + 3] = 0x80;                /* qh bit 31 -> element 31 gets +16 */
    q5_1[8 + 15] = 0x30;               /* element 31 low bits = 3 */
    CHECK(dequant_row(DTYPE_Q5_1, q5_1, y, 32) == PAGODA_OK);
    CHECK(y[31] == 0.5f * 19 + 1 && y[0] == 1.0f && y[15] == 1.0f);

    /* Q3_K: all scale fields 0 -> sc = -32; qs all 0; hmask bit set only for element 33. */
    uint8_t q3[110] = {0};
    memcpy(q3 + 108, &one, 2);
    q3[1] = 0x02; /* hmask[33 % 32] bit 33 / 32 */
    CHECK(dequant_row(DTYPE_Q3_K, q3, y, QK_K) == PAGODA_OK);
    CHECK(y[0] == 128.0f && y[33] == 0.0f && y[1] == 128.0f); /* (-32) * (0 - 4) = 128 */
}

static void test_errors(void) {
    float y[QK_K];
    uint8_t zeros[256] = {0};
    CHECK(dequant_row(DTYPE_IQ2_XXS, zeros, y, QK_K) == PAGODA_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(pagoda_last_error(), "IQ2_XXS") != NULL, "message: %s", pagoda_last_error());
    CHECK(dequant_row(DTYPE_Q8_K, zeros, y, QK_K) == PAGODA_ERR_UNSUPPORTED);
    CHECK(dequant_row(99, zeros, y, 32) == PAGODA_ERR_UNSUPPORTED);
    CHECK_MSG(strstr(pagoda_last_error(), "99") != NULL, "message: %s", pagoda_last_error());

    CHECK(dequant_row(DTYPE_Q4_K, zeros, y, 100) == PAGODA_ERR_INVALID_ARGUMENT);
    CHECK_MSG(strstr(pagoda_last_error(), "Q4_K") != NULL, "message: %s", pagoda_last_error());
    CHECK(dequant_row(DTYPE_Q4_0, zeros, y, 33) == PAGODA_ERR_INVALID_ARGUMENT);
    CHECK(dequant_row(DTYPE_F16, zeros, y, -1) == PAGODA_ERR_INVALID_ARGUMENT);
    CHECK(dequant_row(DTYPE_Q8_0, NULL, y, 32) == PAGODA_ERR_INVALID_ARGUMENT);
    CHECK(dequant_row(DTYPE_Q8_0, zeros, NULL, 32) == PAGODA_ERR_INVALID_ARGUMENT);
    CHECK(dequant_row(DTYPE_Q6_K, NULL, NULL, 0) == PAGODA_OK);
}

/* core/dtype.c's `dequantizable` must say exactly which types dequant_row handles. */
static void test_dtype_table_agrees(void) {
    for (uint32_t t = 0; t < DTYPE_COUNT + 5; t++) {
        const dtype_info *info = dtype_get_info(t);
        bool claimed = info && info->dequantizable;
        CHECK_MSG(claimed == dequant_supported(t),
                  "type %s: dtype table says dequantizable=%d, dequant_row supports it: %d",
                  dtype_name(t), claimed, dequant_supported(t));
    }
}

int main(void) {
    static const struct {
        uint32_t type;
        dequant_fn fn;
    } cases[] = {
        {DTYPE_F32, dequant_row_f32},   {DTYPE_F16, dequant_row_f16},
        {DTYPE_BF16, dequant_row_bf16}, {DTYPE_Q4_0, dequant_row_q4_0},
        {DTYPE_Q4_1, dequant_row_q4_1}, {DTYPE_Q5_0, dequant_row_q5_0},
        {DTYPE_Q5_1, dequant_row_q5_1}, {DTYPE_Q8_0, dequant_row_q8_0},
        {DTYPE_Q2_K, dequant_row_q2_k}, {DTYPE_Q3_K, dequant_row_q3_k},
        {DTYPE_Q4_K, dequant_row_q4_k}, {DTYPE_Q5_K, dequant_row_q5_k},
        {DTYPE_Q6_K, dequant_row_q6_k},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        test_type_against_fixture(cases[i].type, cases[i].fn);
    test_hand_made_blocks();
    test_errors();
    test_dtype_table_agrees();
    return test_finish();
}
