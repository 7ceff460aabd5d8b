/* tests/test_tokenizer_smollm2.c - Pagoda's tokenizer against Hugging Face's on SmolLM2.
 *
 * The reference is tests/fixtures/tokenizer/smollm2.tsv, made by tools/make_tokenizer_fixtures.py
 * with Hugging Face `tokenizers` (see the script for how the tokenizer is built). For each of its
 * ~40 texts (English, code, numbers, whitespace runs, emoji, CJK, accents, special-token text, ...):
 *   - encode(add_special=false, parse_special=false) must equal the "not parsed" ids;
 *   - encode(add_special=false, parse_special=true) must equal the "parsed" ids;
 *   - encode(add_special=true) adds nothing for SmolLM2 (HF adds no BOS; add_bos_token is false);
 *   - decode of either id list (control tokens rendered for the parsed one) gives the text back.
 * It also times a ~200 KB text. Skips when the model file is absent: it is looked for in
 * $PAGODA_MODEL_DIR, then ~/.cache/pagoda/models (scripts/fetch_model.sh puts it there).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gguf/gguf.h"   /* defines: gguf_open, gguf_close */
#include "testlib.h"     /* defines: CHECK, CHECK_MSG, test_skip, test_read_file */
#include "vocab/vocab.h" /* defines: vocab_load, vocab_encode, vocab_decode, ... */

static const char MODEL[] = "SmolLM2-135M-Instruct.Q4_1.gguf";
static const char FIXTURE[] = "tests/fixtures/tokenizer/smollm2.tsv";

static bool find_model(char *path, size_t cap) {
    const char *dirs[2] = {getenv("PAGODA_MODEL_DIR"), NULL};
    char home_dir[2048];
    if (getenv("HOME")) {
        snprintf(home_dir, sizeof(home_dir), "%s/.cache/pagoda/models", getenv("HOME"));
        dirs[1] = home_dir;
    }
    for (int i = 0; i < 2; i++) {
        if (!dirs[i]) continue;
        snprintf(path, cap, "%s/%s", dirs[i], MODEL);
        FILE *f = fopen(path, "rb");
        if (f) {
            fclose(f);
            return true;
        }
    }
    return false;
}

static size_t parse_ids(const char *s, const char *end, int32_t *ids, size_t cap) {
    size_t n = 0;
    while (s < end) {
        char *next;
        long x = strtol(s, &next, 10);
        if (next == s) break;
        if (n < cap) ids[n] = (int32_t)x;
        n++;
        s = next;
    }
    return n;
}

static size_t parse_hex(const char *s, const char *end, char *out) {
    size_t n = 0;
    for (; s + 1 < end; s += 2) {
        unsigned b;
        if (sscanf(s, "%2x", &b) != 1) break;
        out[n++] = (char)b;
    }
    return n;
}

static bool same_ids(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    return na == nb && (na == 0 || memcmp(a, b, na * sizeof(int32_t)) == 0);
}

static void print_ids(const char *label, const int32_t *ids, size_t n) {
    fprintf(stderr, "      %s:", label);
    for (size_t i = 0; i < n && i < 64; i++) fprintf(stderr, " %d", ids[i]);
    fputc('\n', stderr);
}

/* Encodes and compares; prints both lists on a mismatch. */
static void check_encode(const vocab *v, int line, const char *text, size_t len, bool add_special,
                         bool parse_special, const int32_t *want, size_t n_want) {
    int32_t *ids = NULL;
    size_t n = 0;
    pagoda_status st = vocab_encode(v, text, len, add_special, parse_special, &ids, &n);
    bool ok = st == PAGODA_OK && same_ids(ids, n, want, n_want);
    CHECK_MSG(ok, "fixture line %d: encode(add_special=%d, parse_special=%d) differs from HF", line,
              add_special, parse_special);
    if (!ok) {
        print_ids("want", want, n_want);
        print_ids("got ", ids, n);
    }
    free(ids);
}

static void check_decode(const vocab *v, int line, const int32_t *ids, size_t n, bool render,
                         const char *text, size_t len) {
    char *back = NULL;
    size_t back_len = 0;
    pagoda_status st = vocab_decode(v, ids, n, render, &back, &back_len);
    CHECK_MSG(st == PAGODA_OK && back_len == len && memcmp(back, text, len) == 0,
              "fixture line %d: decode(render_special=%d) does not give the text back", line, render);
    free(back);
}

static void time_long_text(const vocab *v, const char *sample, size_t sample_len) {
    size_t len = 0, cap = 200 * 1024;
    char *text = malloc(cap + sample_len);
    while (len < cap) {
        memcpy(text + len, sample, sample_len);
        len += sample_len;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int32_t *ids = NULL;
    size_t n = 0;
    pagoda_status st = vocab_encode(v, text, len, false, true, &ids, &n);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    CHECK(st == PAGODA_OK && n > len / 10);
    /* generous: a quadratic merge loop would take far longer on 200 KB */
    CHECK_MSG(secs < 5.0, "encoding %zu bytes took %.2f s", len, secs);
    printf("encoded %zu bytes into %zu tokens in %.3f s (%.1f MB/s)\n", len, n, secs, len / secs / 1e6);
    char *back = NULL;
    size_t back_len = 0;
    st = vocab_decode(v, ids, n, true, &back, &back_len);
    CHECK(st == PAGODA_OK && back_len == len && memcmp(back, text, len) == 0);
    free(back);
    free(ids);
    free(text);
}

int main(void) {
    char path[4096];
    if (!find_model(path, sizeof(path)))
        test_skip("%s not found in $PAGODA_MODEL_DIR or ~/.cache/pagoda/models "
                  "(scripts/fetch_model.sh downloads it)", MODEL);
    size_t fix_len = 0;
    char *fix = test_read_file(FIXTURE, &fix_len);
    CHECK_MSG(fix != NULL, "cannot read %s", FIXTURE);
    if (!fix) return test_finish();

    gguf_file *f = NULL;
    vocab *v = NULL;
    pagoda_status st = gguf_open(path, &f);
    if (st == PAGODA_OK) st = vocab_load(f, &v);
    gguf_close(f);
    CHECK_MSG(st == PAGODA_OK, "%s", pagoda_last_error());
    if (st != PAGODA_OK) {
        free(fix);
        return test_finish();
    }
    /* metadata facts (tokenizer.ggml.* of this file, and HF's behaviour for SmolLM2) */
    CHECK(vocab_get_kind(v) == VOCAB_KIND_BPE);
    CHECK(vocab_n_tokens(v) == 49152);
    CHECK(!vocab_add_bos(v) && !vocab_add_eos(v));
    CHECK(vocab_eos(v) == 2);
    CHECK(vocab_is_eog(v, 2) && vocab_is_eog(v, 0) && !vocab_is_eog(v, 1));

    char *text = malloc(fix_len);
    int32_t *plain = malloc(fix_len * sizeof(int32_t)), *parsed = malloc(fix_len * sizeof(int32_t));
    int line_no = 0, n_cases = 0;
    const char *longest = NULL;
    size_t longest_len = 0;
    for (char *line = fix; line && *line; line_no++) {
        char *nl = strchr(line, '\n');
        char *end = nl ? nl : line + strlen(line);
        if (*line != '#' && end > line) {
            char *tab1 = memchr(line, '\t', (size_t)(end - line));
            char *tab2 = tab1 ? memchr(tab1 + 1, '\t', (size_t)(end - tab1 - 1)) : NULL;
            CHECK_MSG(tab2 != NULL, "%s line %d: expected three tab-separated columns", FIXTURE, line_no + 1);
            if (tab2) {
                size_t len = parse_hex(line, tab1, text);
                size_t n_plain = parse_ids(tab1 + 1, tab2, plain, fix_len);
                size_t n_parsed = parse_ids(tab2 + 1, end, parsed, fix_len);
                check_encode(v, line_no + 1, text, len, false, false, plain, n_plain);
                check_encode(v, line_no + 1, text, len, false, true, parsed, n_parsed);
                check_encode(v, line_no + 1, text, len, true, false, plain, n_plain);
                check_decode(v, line_no + 1, plain, n_plain, false, text, len);
                check_decode(v, line_no + 1, parsed, n_parsed, true, text, len);
                if (len > longest_len) {
                    longest = line;
                    longest_len = len;
                }
                n_cases++;
            }
        }
        line = nl ? nl + 1 : NULL;
    }
    CHECK_MSG(n_cases >= 40, "only %d cases in %s", n_cases, FIXTURE);
    printf("%d HF reference cases checked\n", n_cases);

    /* parse_special on chat markup: "<|im_start|>" is one control token only when parsed, and
     * control tokens vanish from decoded text unless rendered. */
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK(vocab_encode(v, "<|im_start|>", 12, false, true, &ids, &n) == PAGODA_OK);
    CHECK(n == 1 && ids[0] == vocab_find_token(v, "<|im_start|>") && vocab_is_special(v, ids[0]));
    char *back = NULL;
    size_t back_len = 99;
    CHECK(vocab_decode(v, ids, n, false, &back, &back_len) == PAGODA_OK && back_len == 0);
    free(back);
    free(ids);
    CHECK(vocab_encode(v, "<|im_start|>", 12, false, false, &ids, &n) == PAGODA_OK);
    CHECK(n > 1);
    free(ids);

    if (longest) { /* time a long text made of the longest fixture text */
        size_t len = parse_hex(longest, strchr(longest, '\t'), text);
        time_long_text(v, text, len);
    }
    free(text);
    free(plain);
    free(parsed);
    free(fix);
    vocab_free(v);
    return test_finish();
}
