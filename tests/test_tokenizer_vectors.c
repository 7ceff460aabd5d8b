/* tests/test_tokenizer_vectors.c - every case of llama.cpp's tokenizer test vectors.
 *
 * ../shared/tokenizer-tests/ holds vocab-only GGUF files ggml-vocab-X.gguf; for most of them
 * X.gguf.inp holds test texts, each followed by the line "__ggml_vocab_test__", and X.gguf.out the
 * ids Hugging Face's tokenizer gives for each text (one line per case, ids separated by spaces).
 * For every vocab: it must load; every case must encode (add_special=false, parse_special=false) to
 * exactly the expected ids; and for SPM/BPE vocabs decode(encode(text)) must give the text back
 * (WordPiece lowercases and strips accents, so it is not checked there). Prints per-vocab counts.
 * Vocabs without .inp (baichuan, gpt-neox) only need to load and round-trip a few texts.
 * Also checks ../shared/models/stories260K.gguf against the ids the project owners recorded:
 * "Once upon a time" with BOS gives the recorded prompt tokens, and the recorded generated ids
 * decode to the recorded text (which ends with one extra newline).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"   /* defines: gguf_open, gguf_close */
#include "testlib.h"     /* defines: CHECK, CHECK_MSG, test_shared_dir, test_read_file */
#include "vocab/vocab.h" /* defines: vocab_load, vocab_encode, vocab_decode */

static const char SEP[] = "\n__ggml_vocab_test__\n";

static void print_escaped(const char *s, size_t n) {
    for (size_t i = 0; i < n && i < 120; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n') fputs("\\n", stderr);
        else if (c == '\t') fputs("\\t", stderr);
        else if (c < 32) fprintf(stderr, "\\x%02x", c);
        else fputc(c, stderr);
    }
}

static void print_ids(const char *label, const int32_t *ids, size_t n) {
    fprintf(stderr, "      %s:", label);
    for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
    fputc('\n', stderr);
}

/* Parses one line of space-separated ids into ids[] (at most cap); returns the count. */
static size_t parse_ids(const char *line, size_t len, int32_t *ids, size_t cap) {
    size_t n = 0;
    const char *p = line, *end = line + len;
    while (p < end) {
        while (p < end && *p == ' ') p++;
        if (p >= end) break;
        long x = strtol(p, (char **)&p, 10);
        if (n < cap) ids[n] = (int32_t)x;
        n++;
    }
    return n;
}

/* Checks decode(encode(text)) == text; returns true when it holds. */
static bool round_trip(const vocab *v, const char *text, size_t len, const int32_t *ids, size_t n) {
    char *back = NULL;
    size_t back_len = 0;
    pagoda_status st = vocab_decode(v, ids, n, false, &back, &back_len);
    bool ok = st == PAGODA_OK && back_len == len && memcmp(back, text, len) == 0;
    free(back);
    return ok;
}

static void run_cases(const char *name, const vocab *v, const char *inp, size_t inp_len,
                      const char *out, size_t out_len) {
    bool lossless = vocab_get_kind(v) != VOCAB_KIND_WPM;
    int n_cases = 0, n_pass = 0, n_rt = 0, n_rt_pass = 0, n_shown = 0;
    const char *case_start = inp, *inp_end = inp + inp_len;
    const char *line = out, *out_end = out + out_len;
    int32_t *want = malloc(4096 * sizeof(int32_t));
    for (;;) {
        const char *sep = memmem(case_start, (size_t)(inp_end - case_start), SEP, sizeof(SEP) - 1);
        if (!sep) break;
        size_t text_len = (size_t)(sep - case_start);
        const char *nl = memchr(line, '\n', (size_t)(out_end - line));
        CHECK_MSG(line < out_end, "%s: the .out file has fewer lines than the .inp has cases", name);
        if (line >= out_end) break;
        size_t line_len = nl ? (size_t)(nl - line) : (size_t)(out_end - line);
        size_t n_want = parse_ids(line, line_len, want, 4096);

        int32_t *ids = NULL;
        size_t n = 0;
        pagoda_status st = vocab_encode(v, case_start, text_len, false, false, &ids, &n);
        bool ok = st == PAGODA_OK && n == n_want && (n == 0 || memcmp(ids, want, n * sizeof(int32_t)) == 0);
        n_cases++;
        n_pass += ok;
        CHECK_MSG(ok, "%s case %d: ids differ", name, n_cases - 1);
        if (!ok && n_shown++ < 4) {
            fprintf(stderr, "      text: \"");
            print_escaped(case_start, text_len);
            fprintf(stderr, "\"\n");
            print_ids("want", want, n_want < 4096 ? n_want : 4096);
            print_ids("got ", ids, n);
        }
        if (lossless && st == PAGODA_OK) {
            bool rt = round_trip(v, case_start, text_len, ids, n);
            n_rt++;
            n_rt_pass += rt;
            CHECK_MSG(rt, "%s case %d: decode(encode(text)) != text", name, n_cases - 1);
        }
        free(ids);
        case_start = sep + sizeof(SEP) - 1;
        line = nl ? nl + 1 : out_end;
    }
    free(want);
    CHECK_MSG(n_cases > 0, "%s: no test cases found", name);
    printf("%-32s %3d/%3d cases", name, n_pass, n_cases);
    if (lossless) printf(", round trip %d/%d", n_rt_pass, n_rt);
    printf("\n");
}

/* Vocabs without test vectors: a few texts must at least round-trip. */
static void run_round_trips(const char *name, const vocab *v) {
    static const char *const texts[] = {"Hello world", " leading space", "tabs\tand\nnewlines\n\n",
                                        "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\xa6\x99", ""};
    int n_ok = 0, n = 0;
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        int32_t *ids = NULL;
        size_t n_ids = 0;
        pagoda_status st = vocab_encode(v, texts[i], strlen(texts[i]), false, false, &ids, &n_ids);
        bool ok = st == PAGODA_OK && round_trip(v, texts[i], strlen(texts[i]), ids, n_ids);
        CHECK_MSG(ok, "%s: round trip of \"%s\" failed", name, texts[i]);
        n_ok += ok;
        n++;
        free(ids);
    }
    printf("%-32s no vectors; loads, round trip %d/%d\n", name, n_ok, n);
}

/* Parses "[1, 2, 3]" after `label` in s into ids; returns the count. */
static size_t parse_list(const char *s, const char *label, int32_t *ids, size_t cap) {
    const char *p = strstr(s, label);
    if (!p || !(p = strchr(p, '['))) return 0;
    size_t n = 0;
    for (p++; *p && *p != ']' && n < cap;) {
        char *end;
        long x = strtol(p, &end, 10);
        if (end == p) break;
        ids[n++] = (int32_t)x;
        p = end + strspn(end, ", ");
    }
    return n;
}

static void check_stories260k(const char *shared) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/models/stories260K.gguf", shared);
    gguf_file *f = NULL;
    vocab *v = NULL;
    if (gguf_open(path, &f) != PAGODA_OK) {
        printf("stories260K.gguf absent: not checked\n");
        return;
    }
    pagoda_status st = vocab_load(f, &v);
    gguf_close(f);
    CHECK_MSG(st == PAGODA_OK, "%s: %s", path, pagoda_last_error());
    snprintf(path, sizeof(path), "%s/models/stories260K.greedy64.once-upon-a-time.ids", shared);
    char *rec = test_read_file(path, NULL);
    snprintf(path, sizeof(path), "%s/models/stories260K.greedy64.once-upon-a-time.txt", shared);
    size_t txt_len = 0;
    char *txt = test_read_file(path, &txt_len);
    CHECK_MSG(rec && txt, "stories260K recordings missing");
    if (v && rec && txt) {
        int32_t prompt[16], gen[256], *ids = NULL;
        size_t n_prompt = parse_list(rec, "prompt tokens", prompt, 16), n_gen = parse_list(rec, "\nids", gen, 256);
        size_t n = 0;
        CHECK(n_prompt == 5 && n_gen == 64);
        CHECK(vocab_encode(v, "Once upon a time", 16, true, false, &ids, &n) == PAGODA_OK);
        CHECK_MSG(n == n_prompt && memcmp(ids, prompt, n * 4) == 0, "stories260K: prompt ids differ");
        free(ids);
        char *text = NULL;
        size_t len = 0;
        CHECK(vocab_decode(v, gen, n_gen, false, &text, &len) == PAGODA_OK);
        CHECK_MSG(text && len + 1 == txt_len && memcmp(text, txt, len) == 0 && txt[len] == '\n',
                  "stories260K: the recorded ids do not decode to the recorded text");
        free(text);
        printf("%-32s prompt ids and decoded text match the recording\n", "stories260K.gguf");
    }
    free(rec);
    free(txt);
    vocab_free(v);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(void) {
    const char *shared = test_shared_dir();
    if (!shared) test_skip("no shared data folder (../shared or $PAGODA_SHARED)");
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/tokenizer-tests", shared);
    DIR *d = opendir(dir);
    if (!d) test_skip("%s is absent", dir);
    char *names[256];
    size_t n_names = 0;
    for (struct dirent *e; (e = readdir(d)) && n_names < 256;) {
        size_t l = strlen(e->d_name);
        if (l > 5 && strcmp(e->d_name + l - 5, ".gguf") == 0) names[n_names++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n_names, sizeof(char *), cmp_str);
    CHECK_MSG(n_names > 0, "no .gguf files in %s", dir);

    for (size_t i = 0; i < n_names; i++) {
        char path[4200], inp_path[4300], out_path[4300];
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        snprintf(inp_path, sizeof(inp_path), "%s.inp", path);
        snprintf(out_path, sizeof(out_path), "%s.out", path);
        gguf_file *f = NULL;
        vocab *v = NULL;
        pagoda_status st = gguf_open(path, &f);
        if (st == PAGODA_OK) st = vocab_load(f, &v);
        CHECK_MSG(st == PAGODA_OK, "%s: %s", names[i], pagoda_last_error());
        gguf_close(f); /* the vocab must not depend on the file staying open */
        if (st != PAGODA_OK) {
            free(names[i]);
            continue;
        }
        size_t inp_len = 0, out_len = 0;
        char *inp = test_read_file(inp_path, &inp_len);
        char *out = test_read_file(out_path, &out_len);
        if (inp && out) run_cases(names[i], v, inp, inp_len, out, out_len);
        else run_round_trips(names[i], v);
        free(inp);
        free(out);
        vocab_free(v);
        free(names[i]);
    }
    check_stories260k(shared);
    return test_finish();
}
