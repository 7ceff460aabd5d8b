/* tests/test_tokenizer_edge.c - tokenizer rules on tiny hand-made vocabs, error paths, and a
 * random-bytes round trip on the real test vocabs.
 *
 * The tiny vocabs are written as GGUF images in memory (a small serializer below) and read back
 * with gguf_open_memory. Their expected ids are worked out by hand from the algorithms' definitions
 * (SentencePiece: highest score first, leftmost on ties, byte fallback; BPE: lowest merge rank
 * first; WordPiece: longest match from the left, whole word UNK on failure) and are written next to
 * each check. The random round trip needs ../shared/tokenizer-tests (skipped if absent): for
 * lossless tokenizers decode(encode(bytes)) must give the bytes back, valid UTF-8 or not -- except
 * for what no tokenizer can do: bytes that never occur in UTF-8 (0xC0, 0xC1, 0xF5-0xFF: byte-level
 * vocabs may lack them or shadow them with added tokens) and a literal "▁" for SentencePiece.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"   /* defines: gguf_open_memory, gguf_open, gguf_close */
#include "testlib.h"     /* defines: CHECK, CHECK_MSG, test_seed, test_rand_u64, test_shared_dir */
#include "vocab/vocab.h" /* defines: vocab_load, vocab_encode, vocab_decode, ... */

/* ---- a minimal GGUF v3 writer (metadata only) ------------------------------------------------ */
typedef struct gbuf {
    unsigned char data[1 << 16];
    size_t n;
    uint64_t n_kv;
} gbuf;

static void put_bytes(gbuf *b, const void *p, size_t n) {
    if (b->n + n <= sizeof(b->data)) memcpy(b->data + b->n, p, n);
    b->n += n;
}
static void put_u32(gbuf *b, uint32_t x) { put_bytes(b, &x, 4); }
static void put_u64(gbuf *b, uint64_t x) { put_bytes(b, &x, 8); }
static void put_str(gbuf *b, const char *s) {
    put_u64(b, strlen(s));
    put_bytes(b, s, strlen(s));
}
static void kv_str(gbuf *b, const char *key, const char *val) {
    put_str(b, key), put_u32(b, GGUF_TYPE_STRING), put_str(b, val), b->n_kv++;
}
static void kv_u32(gbuf *b, const char *key, uint32_t val) {
    put_str(b, key), put_u32(b, GGUF_TYPE_UINT32), put_u32(b, val), b->n_kv++;
}
static void kv_bool(gbuf *b, const char *key, bool val) {
    unsigned char x = val;
    put_str(b, key), put_u32(b, GGUF_TYPE_BOOL), put_bytes(b, &x, 1), b->n_kv++;
}
static void kv_strs(gbuf *b, const char *key, const char *const *s, size_t n) {
    put_str(b, key), put_u32(b, GGUF_TYPE_ARRAY), put_u32(b, GGUF_TYPE_STRING), put_u64(b, n);
    for (size_t i = 0; i < n; i++) put_str(b, s[i]);
    b->n_kv++;
}
static void kv_i32s(gbuf *b, const char *key, const int32_t *x, size_t n) {
    put_str(b, key), put_u32(b, GGUF_TYPE_ARRAY), put_u32(b, GGUF_TYPE_INT32), put_u64(b, n);
    put_bytes(b, x, n * 4);
    b->n_kv++;
}
static void kv_f32s(gbuf *b, const char *key, const float *x, size_t n) {
    put_str(b, key), put_u32(b, GGUF_TYPE_ARRAY), put_u32(b, GGUF_TYPE_FLOAT32), put_u64(b, n);
    put_bytes(b, x, n * 4);
    b->n_kv++;
}
/* Prepends the header; returns a malloc'd image of *size bytes. */
static void *gguf_image(const gbuf *b, size_t *size) {
    unsigned char *img = malloc(24 + b->n);
    uint32_t version = 3;
    uint64_t n_tensors = 0;
    memcpy(img, "GGUF", 4), memcpy(img + 4, &version, 4), memcpy(img + 8, &n_tensors, 8);
    memcpy(img + 16, &b->n_kv, 8), memcpy(img + 24, b->data, b->n);
    *size = 24 + b->n;
    return img;
}

/* Loads a vocab from an image; returns the status and keeps the image alive with the file. */
static pagoda_status load(const gbuf *b, vocab **out) {
    size_t size;
    void *img = gguf_image(b, &size);
    gguf_file *f = NULL;
    pagoda_status st = gguf_open_memory(img, size, "test", &f);
    if (st == PAGODA_OK) st = vocab_load(f, out); /* the vocab copies what it needs */
    gguf_close(f);
    free(img);
    return st;
}

static void check_ids(const vocab *v, const char *text, bool add_special, bool parse_special,
                      const int32_t *want, size_t n_want) {
    int32_t *ids = NULL;
    size_t n = 0;
    pagoda_status st = vocab_encode(v, text, strlen(text), add_special, parse_special, &ids, &n);
    bool ok = st == PAGODA_OK && n == n_want && (n == 0 || memcmp(ids, want, n * 4) == 0);
    CHECK_MSG(ok, "encode(\"%s\", add_special=%d, parse_special=%d)", text, add_special, parse_special);
    if (!ok) {
        fprintf(stderr, "      got:");
        for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
        fprintf(stderr, "\n");
    }
    free(ids);
}
#define IDS(...) (const int32_t[]){__VA_ARGS__}, sizeof((const int32_t[]){__VA_ARGS__}) / 4
#define NO_IDS NULL, 0

static void check_decode(const vocab *v, const int32_t *ids, size_t n, bool render, const char *want) {
    char *s = NULL;
    size_t len = 0;
    pagoda_status st = vocab_decode(v, ids, n, render, &s, &len);
    CHECK_MSG(st == PAGODA_OK && len == strlen(want) && memcmp(s, want, len) == 0,
              "decode(render_special=%d): got \"%s\", want \"%s\"", render, s ? s : "(null)", want);
    free(s);
}

/* ---- SentencePiece --------------------------------------------------------------------------- */
static void test_spm(void) {
    const char *tokens[270];
    int32_t types[270];
    float scores[270];
    char bytes[256][8];
    int n = 0;
    tokens[n] = "<unk>", types[n] = 2, scores[n++] = 0;  /* 0 */
    tokens[n] = "<s>", types[n] = 3, scores[n++] = 0;    /* 1 */
    tokens[n] = "</s>", types[n] = 3, scores[n++] = 0;   /* 2 */
    for (int b = 0; b < 256; b++) {                        /* 3 + b */
        snprintf(bytes[b], sizeof(bytes[b]), "<0x%02X>", b);
        tokens[n] = bytes[b], types[n] = 6, scores[n++] = 0;
    }
    static const struct { const char *text; int type; float score; } rest[] = {
        {"\xe2\x96\x81", 1, -10},      /* 259 "▁" */
        {"a", 1, -10},                 /* 260 */
        {"b", 1, -10},                 /* 261 */
        {"ab", 1, -5},                 /* 262 */
        {"\xe2\x96\x81" "a", 1, -2},   /* 263 "▁a" */
        {"\xe2\x96\x81" "ab", 1, -1},  /* 264 "▁ab" */
        {"<user>", 4, 0},              /* 265 user-defined */
        {"<|ctl|>", 3, 0},             /* 266 control */
        {"\xe2\x96\x81" "b", 1, -4},   /* 267 "▁b" */
        {"bb", 1, -3},                 /* 268 */
    };
    for (size_t i = 0; i < sizeof(rest) / sizeof(rest[0]); i++)
        tokens[n] = rest[i].text, types[n] = rest[i].type, scores[n++] = rest[i].score;
    gbuf *b = calloc(1, sizeof(gbuf));
    kv_str(b, "tokenizer.ggml.model", "llama");
    kv_strs(b, "tokenizer.ggml.tokens", tokens, (size_t)n);
    kv_f32s(b, "tokenizer.ggml.scores", scores, (size_t)n);
    kv_i32s(b, "tokenizer.ggml.token_type", types, (size_t)n);
    vocab *v = NULL;
    CHECK_MSG(load(b, &v) == PAGODA_OK, "%s", pagoda_last_error());
    free(b);
    if (!v) return;
    CHECK(vocab_bos(v) == 1 && vocab_eos(v) == 2 && vocab_unk(v) == 0 && vocab_add_bos(v));
    CHECK(vocab_is_eog(v, 2) && !vocab_is_eog(v, 1));
    /* " ab": ▁a (-2) beats ab (-5); then ▁a+b = ▁ab (-1) */
    check_ids(v, "ab", false, false, IDS(264));
    check_ids(v, "ab", true, false, IDS(1, 264));
    /* " bbb": bb@1 (-3) beats ▁b@0 (-4); the tie bb@1 / bb@2 goes to the left one */
    check_ids(v, "bbb", false, false, IDS(259, 268, 261));
    /* "c" and "é" are no pieces: byte fallback */
    check_ids(v, "c", false, false, IDS(259, 3 + 'c'));
    check_ids(v, "\xc3\xa9", false, false, IDS(259, 3 + 0xC3, 3 + 0xA9));
    /* user-defined text is always a token; the next fragment gets the dummy prefix again */
    check_ids(v, "a<user>b", false, false, IDS(263, 265, 267));
    /* control text only with parse_special */
    check_ids(v, "<|ctl|>a", false, false, IDS(259, 3 + '<', 3 + '|', 3 + 'c', 3 + 't', 3 + 'l', 3 + '|', 3 + '>', 260));
    check_ids(v, "<|ctl|>a", false, true, IDS(266, 263));
    check_ids(v, "", false, false, NO_IDS);
    check_ids(v, "", true, false, IDS(1));
    /* decode: the dummy space goes, control tokens only when rendered, bytes reassemble */
    check_decode(v, IDS(1, 264), false, "ab");
    check_decode(v, IDS(1, 264), true, "<s> ab");
    check_decode(v, IDS(259, 3 + 0xC3, 3 + 0xA9), false, "\xc3\xa9");
    check_decode(v, IDS(263, 265, 267), false, "a<user> b");
    char buf[2];
    CHECK(vocab_token_to_piece(v, 264, buf, sizeof(buf), false) == 3); /* " ab" needs 3 bytes */
    CHECK(vocab_token_to_piece(v, 1, buf, sizeof(buf), false) == 0);
    CHECK(vocab_token_to_piece(v, 999, buf, sizeof(buf), false) == -1);
    char *s = NULL;
    size_t len = 0;
    CHECK(vocab_decode(v, IDS(1, 999), false, &s, &len) == PAGODA_ERR_INVALID_ARGUMENT && !s);
    CHECK(vocab_find_token(v, "<user>") == 265 && vocab_find_token(v, "zz") == -1);
    CHECK(strcmp(vocab_token_text(v, 262), "ab") == 0 && vocab_token_text(v, -1) == NULL);
    vocab_free(v);
}

/* ---- byte-level BPE -------------------------------------------------------------------------- */
static vocab *make_bpe(const char *pre, bool with_merges) {
    /* "Ġ" (U+0120) is the byte-level spelling of a space */
    static const char *const tokens[] = {"a", "b", "c", "\xc4\xa0", "ab", "\xc4\xa0" "a", "abc",
                                         "<|im_end|>", "<u>"};
    static const int32_t types[] = {1, 1, 1, 1, 1, 1, 1, 1, 4};
    static const char *const merges[] = {"a b", "\xc4\xa0 a", "\xc4\xa0" "a b"};
    gbuf *b = calloc(1, sizeof(gbuf));
    kv_str(b, "tokenizer.ggml.model", "gpt2");
    if (pre) kv_str(b, "tokenizer.ggml.pre", pre);
    kv_strs(b, "tokenizer.ggml.tokens", tokens, 9);
    kv_i32s(b, "tokenizer.ggml.token_type", types, 9);
    if (with_merges) kv_strs(b, "tokenizer.ggml.merges", merges, 3);
    kv_u32(b, "tokenizer.ggml.eos_token_id", 0xFFFFFFFFu); /* out of range: keeps the default */
    vocab *v = NULL;
    if (load(b, &v) != PAGODA_OK) v = NULL;
    free(b);
    return v;
}

static void test_bpe(void) {
    vocab *v = make_bpe("gpt-2", true);
    CHECK_MSG(v != NULL, "%s", pagoda_last_error());
    if (!v) return;
    /* " ab" -> Ġ a b; "a b" (rank 0) beats "Ġ a" (rank 1); "Ġ ab" is no merge */
    check_ids(v, " ab", false, false, IDS(3, 4));
    /* "abc": a b -> ab; "ab c" is no merge */
    check_ids(v, "abc", false, false, IDS(4, 2));
    /* " a" -> Ġ a (rank 1) -> "Ġa"; " ab c" -> [Ġ, ab] [c]: the gpt-2 regex splits before " c" */
    check_ids(v, " a", false, false, IDS(5));
    check_ids(v, " ab c", false, false, IDS(3, 4, 3, 2));
    /* user-defined "<u>" is matched even without parse_special; "<|im_end|>" became control */
    check_ids(v, "a<u>b", false, false, IDS(0, 8, 1));
    CHECK(vocab_is_eog(v, 7) && vocab_eot(v) == 7 && vocab_is_special(v, 7));
    check_ids(v, "<|im_end|>", false, true, IDS(7));
    CHECK(!vocab_add_bos(v) && vocab_eos(v) == -1); /* default eos 11 is past the end */
    check_decode(v, IDS(3, 4, 8, 7), false, " ab<u>");
    check_decode(v, IDS(3, 4, 8, 7), true, " ab<u><|im_end|>");
    vocab_free(v);

    /* llama-bpe: a word that is a token is taken whole (ignore_merges), and BOS is added */
    v = make_bpe("llama-bpe", true);
    CHECK(v != NULL);
    if (v) {
        check_ids(v, "abc", false, false, IDS(6));
        vocab_free(v);
    }
    v = make_bpe(NULL, true); /* no pre: the default regexes */
    CHECK(v != NULL);
    vocab_free(v);
    CHECK(make_bpe("no-such-pre", true) == NULL);
    CHECK(make_bpe("gpt-2", false) == NULL); /* merges are required */
}

/* ---- WordPiece ------------------------------------------------------------------------------- */
static void test_wpm(void) {
    static const char *const tokens[] = {
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "\xe2\x96\x81hello", "\xe2\x96\x81world", "\xe2\x96\x81,",
        "\xe2\x96\x81" "cafe", "s", "\xe2\x96\x81un", "aff", "able", "\xe2\x96\x81\xe4\xb8\xad"};
    static const int32_t types[] = {3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    gbuf *b = calloc(1, sizeof(gbuf));
    kv_str(b, "tokenizer.ggml.model", "bert");
    kv_strs(b, "tokenizer.ggml.tokens", tokens, 13);
    kv_i32s(b, "tokenizer.ggml.token_type", types, 13);
    kv_u32(b, "tokenizer.ggml.unknown_token_id", 1);
    kv_u32(b, "tokenizer.ggml.cls_token_id", 2);
    kv_u32(b, "tokenizer.ggml.seperator_token_id", 3);
    vocab *v = NULL;
    CHECK_MSG(load(b, &v) == PAGODA_OK, "%s", pagoda_last_error());
    free(b);
    if (!v) return;
    check_ids(v, "Hello, WORLD", false, false, IDS(4, 6, 5));
    check_ids(v, "hello", true, false, IDS(2, 4, 3));               /* CLS ... SEP */
    check_ids(v, "Caf\xc3\xa9", false, false, IDS(7));                 /* accents stripped */
    check_ids(v, "cafe\xcc\x81s", false, false, IDS(7, 8));            /* combining accent */
    check_ids(v, "unaffable", false, false, IDS(9, 10, 11));
    check_ids(v, "unaffablex xyz", false, false, IDS(1, 1));           /* whole words UNK */
    check_ids(v, "\xe4\xb8\xad\xe4\xb8\xad", false, false, IDS(12, 12)); /* CJK split per char */
    check_ids(v, " \t\n", false, false, NO_IDS);
    vocab_free(v);
}

/* ---- errors ---------------------------------------------------------------------------------- */
static void test_errors(void) {
    static const char *const tokens[] = {"a"};
    gbuf *b = calloc(1, sizeof(gbuf));
    kv_str(b, "tokenizer.ggml.model", "t5x");
    kv_strs(b, "tokenizer.ggml.tokens", tokens, 1);
    vocab *v = NULL;
    CHECK(load(b, &v) == PAGODA_ERR_UNSUPPORTED && v == NULL);
    memset(b, 0, sizeof(*b));
    kv_str(b, "tokenizer.ggml.model", "llama");
    CHECK(load(b, &v) == PAGODA_ERR_FORMAT && v == NULL); /* no tokens */
    memset(b, 0, sizeof(*b));
    kv_bool(b, "general.something", true);
    CHECK(load(b, &v) == PAGODA_ERR_FORMAT && v == NULL); /* no tokenizer at all */
    free(b);
}

/* ---- random bytes round trip on real vocabs -------------------------------------------------- */
static void test_random_round_trip(void) {
    const char *shared = test_shared_dir();
    if (!shared) {
        printf("random round trip skipped: no shared folder\n");
        return;
    }
    /* vocabs with a piece for every byte that valid UTF-8 can hold (falcon and starcoder lack some) */
    static const char *const names[] = {"llama-spm", "gpt-2", "deepseek-llm", "deepseek-coder", "mpt"};
    static const char *const pool[] = {"a", "Z", " ", "  ", "\n", "\t", "9", "'s", "\xc3\xa9", "\xe4\xb8\xad",
                                       "\xf0\x9f\xa6\x99", "<s>", ".", "\x80", "\0"};
    uint64_t rng = test_seed();
    for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/tokenizer-tests/ggml-vocab-%s.gguf", shared, names[k]);
        gguf_file *f = NULL;
        vocab *v = NULL;
        if (gguf_open(path, &f) != PAGODA_OK || vocab_load(f, &v) != PAGODA_OK) {
            CHECK_MSG(false, "%s: %s", path, pagoda_last_error());
            gguf_close(f);
            continue;
        }
        gguf_close(f);
        int n_ok = 0, n_tries = 300;
        for (int t = 0; t < n_tries; t++) {
            char text[256];
            size_t len = 0, target = test_rand_u64(&rng) % 48;
            while (len < target) {
                if (test_rand_u64(&rng) % 3 == 0) { /* a raw byte, malformed UTF-8 likely */
                    unsigned char c = (unsigned char)(test_rand_u64(&rng) & 0xFF);
                    text[len++] = (char)(c == 0xC0 || c == 0xC1 || c >= 0xF5 ? c & 0x7F : c);
                } else {
                    const char *p = pool[test_rand_u64(&rng) % (sizeof(pool) / sizeof(pool[0]))];
                    size_t pl = p[0] ? strlen(p) : 1;
                    memcpy(text + len, p, pl);
                    len += pl;
                }
            }
            int32_t *ids = NULL;
            size_t n = 0;
            char *back = NULL;
            size_t back_len = 0;
            bool ok = vocab_encode(v, text, len, false, false, &ids, &n) == PAGODA_OK &&
                      vocab_decode(v, ids, n, false, &back, &back_len) == PAGODA_OK &&
                      back_len == len && memcmp(back, text, len) == 0;
            n_ok += ok;
            if (!ok && n_ok + 5 > t) {
                fprintf(stderr, "      %s: no round trip for:", names[k]);
                for (size_t i = 0; i < len; i++) fprintf(stderr, " %02x", (unsigned char)text[i]);
                fprintf(stderr, "\n        back:");
                for (size_t i = 0; i < back_len; i++) fprintf(stderr, " %02x", (unsigned char)back[i]);
                fprintf(stderr, "\n");
            }
            free(ids);
            free(back);
        }
        CHECK_MSG(n_ok == n_tries, "%s: %d of %d random texts round-trip", names[k], n_ok, n_tries);
        vocab_free(v);
    }
}

int main(void) {
    test_spm();
    test_bpe();
    test_wpm();
    test_errors();
    test_random_round_trip();
    return test_finish();
}
