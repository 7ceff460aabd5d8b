/* vocab/vocab.c - building a vocab from GGUF metadata, and the simple accessors.
 *
 * Keys read (all under tokenizer.ggml.):
 *   model (string, required): "llama" (SPM), "gpt2" (BPE), "bert" (WordPiece)
 *   tokens (string array, required), scores (f32 array, SPM), token_type (i32 array),
 *   merges (string array "left right", BPE, required there), pre (string, BPE pre-tokenizer),
 *   bos/eos/eot/eom/unknown/seperator/padding/mask _token_id, cls_token_id (BERT's BOS),
 *   add_bos_token, add_eos_token, add_sep_token, add_space_prefix (bools).
 * Defaults follow llama.cpp's llama_vocab::load: SPM bos 1 eos 2 unk 0, adds BOS and a dummy-prefix
 * space; BPE bos = eos = 11, adds nothing unless the pre-tokenizer says so (llama3, tekken);
 * BERT bos (CLS) 101, unk 100, sep 102, pad 0, mask 103, adds CLS and SEP. An id key that is out of
 * range (e.g. 0xFFFFFFFF) leaves the default in place, as llama.cpp does.
 * End-of-generation tokens: EOS, EOT, EOM and the pieces llama.cpp treats as end-of-turn
 * (<|eot_id|>, <|im_end|>, <|end|>, <end_of_turn>, <|endoftext|>, ...); those are forced to the
 * control type, again as llama.cpp does.
 * Encoding and decoding live in vocab_encode.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"           /* defines: error_set, error_prefix */
#include "gguf/gguf.h"            /* defines: gguf_get_*, gguf_find_kv, gguf_array_* */
#include "vocab/vocab_internal.h" /* defines: struct vocab, vocab_map_*, vocab_pretok_* */

void vocab_free(vocab *v) {
    if (!v) return;
    free(v->text_arena);
    free(v->text_off);
    free(v->text_len);
    free(v->scores);
    free(v->types);
    vocab_map_free(&v->token_map);
    free(v->merge_arena);
    vocab_map_free(&v->merge_map);
    vocab_pretok_free(v->pretok);
    free(v->special_ids);
    free(v->eog_ids);
    free(v);
}

/* Copies the pieces into one arena and builds the piece -> id map. */
static pagoda_status load_tokens(vocab *v, const gguf_kv *tokens, const char *path) {
    uint64_t n = tokens->array_len;
    if (n == 0 || n > INT32_MAX)
        return error_set(PAGODA_ERR_FORMAT, "%s: tokenizer.ggml.tokens has %llu entries", path,
                         (unsigned long long)n);
    v->n_tokens = (int32_t)n;
    size_t arena_bytes = 0;
    for (uint64_t i = 0; i < n; i++) arena_bytes += tokens->array_strings[i].len + 1;
    if (arena_bytes > UINT32_MAX)
        return error_set(PAGODA_ERR_FORMAT, "%s: the token texts take %zu bytes, more than 4 GiB",
                         path, arena_bytes);
    v->text_arena = malloc(arena_bytes);
    v->text_off = malloc(n * sizeof(uint32_t));
    v->text_len = malloc(n * sizeof(uint32_t));
    v->scores = calloc(n, sizeof(float));
    v->types = malloc(n);
    if (!v->text_arena || !v->text_off || !v->text_len || !v->scores || !v->types)
        return error_set(PAGODA_ERR_OUT_OF_MEMORY, "%s: out of memory for %llu tokens", path,
                         (unsigned long long)n);
    pagoda_status st = vocab_map_init(&v->token_map, n);
    if (st != PAGODA_OK) return st;
    size_t off = 0;
    for (uint64_t i = 0; i < n; i++) {
        gguf_string s = tokens->array_strings[i];
        memcpy(v->text_arena + off, s.data, s.len);
        v->text_arena[off + s.len] = '\0';
        v->text_off[i] = (uint32_t)off;
        v->text_len[i] = (uint32_t)s.len;
        if ((int64_t)s.len > v->max_token_len) v->max_token_len = (int32_t)s.len;
        st = vocab_map_put(&v->token_map, v->text_arena + off, s.len, (int32_t)i);
        if (st != PAGODA_OK) return st;
        off += s.len + 1;
        v->types[i] = VOCAB_TOKEN_NORMAL;
    }
    return PAGODA_OK;
}

static pagoda_status load_merges(vocab *v, const gguf_file *f, const char *path) {
    const gguf_kv *merges = gguf_get_array(f, "tokenizer.ggml.merges", GGUF_TYPE_STRING);
    if (!merges)
        return error_set(PAGODA_ERR_FORMAT, "%s: a gpt2 (BPE) tokenizer needs tokenizer.ggml.merges",
                         path);
    size_t bytes = 0;
    for (uint64_t i = 0; i < merges->array_len; i++) bytes += merges->array_strings[i].len;
    v->merge_arena = malloc(bytes + 1);
    if (!v->merge_arena) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "%s: out of memory for merges", path);
    pagoda_status st = vocab_map_init(&v->merge_map, merges->array_len);
    if (st != PAGODA_OK) return st;
    size_t off = 0;
    for (uint64_t i = 0; i < merges->array_len && i < INT32_MAX; i++) {
        gguf_string s = merges->array_strings[i];
        /* "left right": the separator is the first space after the first byte */
        const char *sp = s.len > 1 ? memchr(s.data + 1, ' ', s.len - 1) : NULL;
        if (!sp) continue; /* malformed: llama.cpp keeps an empty pair, which never matches */
        memcpy(v->merge_arena + off, s.data, s.len);
        /* the earlier (lower) rank wins if a merge is listed twice */
        if (vocab_map_get(&v->merge_map, v->merge_arena + off, s.len) < 0) {
            st = vocab_map_put(&v->merge_map, v->merge_arena + off, s.len, (int32_t)i);
            if (st != PAGODA_OK) return st;
        }
        off += s.len;
    }
    return PAGODA_OK;
}

/* Reads an id key into *id when present and in range. */
static void read_id(const gguf_file *f, const vocab *v, const char *key, int32_t *id) {
    int64_t x;
    if (gguf_get_i64(f, key, &x) && x >= 0 && x < v->n_tokens) *id = (int32_t)x;
}

static void read_bool(const gguf_file *f, const char *key, bool *b) {
    bool x;
    if (gguf_get_bool(f, key, &x)) *b = x;
}

static int cmp_special(const void *a, const void *b, void *arg) {
    const vocab *v = arg;
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (v->text_len[x] != v->text_len[y]) return v->text_len[x] > v->text_len[y] ? -1 : 1;
    return (x > y) - (x < y);
}

static pagoda_status build_special_lists(vocab *v) {
    static const char *const eog_texts[] = {
        "<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<EOT>", "_<EOT>",
        ("<\xef\xbd\x9c" "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>"), "<|end_of_text|>",
        "<end_of_utterance>", "<|eom_id|>", "<|return|>", "<|call|>",
    };
    enum { N_EOG_TEXTS = sizeof(eog_texts) / sizeof(eog_texts[0]) };
    v->eog_ids = malloc((N_EOG_TEXTS + 3) * sizeof(int32_t));
    if (!v->eog_ids) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "vocab: out of memory");
    for (int i = 0; i < N_EOG_TEXTS; i++) {
        int32_t id = vocab_map_get(&v->token_map, eog_texts[i], strlen(eog_texts[i]));
        if (id < 0) continue;
        /* "<|eom_id|>" ends generation but is not an end of turn */
        if (v->eot < 0 && strcmp(eog_texts[i], "<|eom_id|>") != 0) v->eot = id;
        if (v->eom < 0 && strcmp(eog_texts[i], "<|eom_id|>") == 0) v->eom = id;
        v->types[id] = VOCAB_TOKEN_CONTROL;
        v->eog_ids[v->n_eog++] = id;
    }
    const int32_t extra[3] = {v->eos, v->eot, v->eom};
    for (int k = 0; k < 3; k++) {
        if (extra[k] < 0) continue;
        bool seen = false;
        for (size_t i = 0; i < v->n_eog; i++) seen |= v->eog_ids[i] == extra[k];
        if (!seen) v->eog_ids[v->n_eog++] = extra[k];
    }

    size_t n = 0;
    for (int32_t i = 0; i < v->n_tokens; i++) {
        uint8_t t = v->types[i];
        n += (t == VOCAB_TOKEN_CONTROL || t == VOCAB_TOKEN_USER_DEFINED || t == VOCAB_TOKEN_UNKNOWN) &&
             v->text_len[i] > 0;
    }
    v->special_ids = malloc((n ? n : 1) * sizeof(int32_t));
    if (!v->special_ids) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "vocab: out of memory");
    for (int32_t i = 0; i < v->n_tokens; i++) {
        uint8_t t = v->types[i];
        if ((t == VOCAB_TOKEN_CONTROL || t == VOCAB_TOKEN_USER_DEFINED || t == VOCAB_TOKEN_UNKNOWN) &&
            v->text_len[i] > 0)
            v->special_ids[v->n_special++] = i;
    }
    qsort_r(v->special_ids, v->n_special, sizeof(int32_t), cmp_special, v);
    return PAGODA_OK;
}

static pagoda_status vocab_build(vocab *v, const gguf_file *f, const char *path) {
    gguf_string model;
    if (!gguf_get_str(f, "tokenizer.ggml.model", &model))
        return error_set(PAGODA_ERR_FORMAT, "%s: tokenizer.ggml.model is missing (no tokenizer in this "
                         "file?)", path);
    if (gguf_string_eq(model, "llama")) {
        v->kind = VOCAB_KIND_SPM;
        v->bos = 1, v->eos = 2, v->unk = 0;
        v->add_bos = true, v->add_space_prefix = true;
    } else if (gguf_string_eq(model, "gpt2")) {
        v->kind = VOCAB_KIND_BPE;
        v->bos = 11, v->eos = 11;
    } else if (gguf_string_eq(model, "bert")) {
        v->kind = VOCAB_KIND_WPM;
        v->bos = 101, v->unk = 100, v->sep = 102, v->pad = 0, v->mask = 103;
        v->add_bos = true, v->add_sep = true;
    } else {
        return error_set(PAGODA_ERR_UNSUPPORTED, "%s: tokenizer model '%.*s' is not supported (Pagoda "
                         "knows llama, gpt2, bert)", path, (int)model.len, model.data);
    }

    const gguf_kv *tokens = gguf_get_array(f, "tokenizer.ggml.tokens", GGUF_TYPE_STRING);
    if (!tokens) return error_set(PAGODA_ERR_FORMAT, "%s: tokenizer.ggml.tokens is missing", path);
    pagoda_status st = load_tokens(v, tokens, path);
    if (st != PAGODA_OK) return st;

    const gguf_kv *scores = gguf_find_kv(f, "tokenizer.ggml.scores");
    if (scores && scores->type == GGUF_TYPE_ARRAY && gguf_value_type_bytes(scores->array_type)) {
        if (scores->array_len != (uint64_t)v->n_tokens)
            return error_set(PAGODA_ERR_FORMAT, "%s: tokenizer.ggml.scores has %llu entries for %d "
                             "tokens", path, (unsigned long long)scores->array_len, v->n_tokens);
        for (int32_t i = 0; i < v->n_tokens; i++) v->scores[i] = (float)gguf_array_f64(scores, (uint64_t)i);
    }
    const gguf_kv *types = gguf_find_kv(f, "tokenizer.ggml.token_type");
    if (types && types->type == GGUF_TYPE_ARRAY && gguf_value_type_bytes(types->array_type)) {
        if (types->array_len != (uint64_t)v->n_tokens)
            return error_set(PAGODA_ERR_FORMAT, "%s: tokenizer.ggml.token_type has %llu entries for "
                             "%d tokens", path, (unsigned long long)types->array_len, v->n_tokens);
        for (int32_t i = 0; i < v->n_tokens; i++) {
            int64_t t = gguf_array_i64(types, (uint64_t)i);
            v->types[i] = (uint8_t)(t >= VOCAB_TOKEN_NORMAL && t <= VOCAB_TOKEN_BYTE ? t : VOCAB_TOKEN_NORMAL);
        }
    }

    if (v->kind == VOCAB_KIND_BPE) {
        if ((st = load_merges(v, f, path)) != PAGODA_OK) return st;
        char *pre = gguf_get_str_dup(f, "tokenizer.ggml.pre");
        vocab_pretok_flags flags = {0};
        st = vocab_pretok_init(pre, &v->pretok, &flags);
        free(pre);
        if (st != PAGODA_OK) return error_prefix(st, "%s", path);
        v->ignore_merges = flags.ignore_merges;
        v->add_bos = flags.add_bos;
        v->add_sep = flags.add_sep;
        if (flags.no_bos) v->bos = -1;
    }
    if (v->kind == VOCAB_KIND_SPM) {
        for (int b = 0; b < 256; b++) {
            char hex[8];
            snprintf(hex, sizeof(hex), "<0x%02X>", b);
            v->byte_token[b] = vocab_map_get(&v->token_map, hex, 6);
            if (v->byte_token[b] < 0) {
                char one = (char)b;
                v->byte_token[b] = vocab_map_get(&v->token_map, &one, 1);
            }
        }
    }

    read_id(f, v, "tokenizer.ggml.bos_token_id", &v->bos);
    if (v->kind == VOCAB_KIND_WPM) read_id(f, v, "tokenizer.ggml.cls_token_id", &v->bos);
    read_id(f, v, "tokenizer.ggml.eos_token_id", &v->eos);
    read_id(f, v, "tokenizer.ggml.eot_token_id", &v->eot);
    read_id(f, v, "tokenizer.ggml.eom_token_id", &v->eom);
    read_id(f, v, "tokenizer.ggml.unknown_token_id", &v->unk);
    read_id(f, v, "tokenizer.ggml.seperator_token_id", &v->sep);
    read_id(f, v, "tokenizer.ggml.padding_token_id", &v->pad);
    read_id(f, v, "tokenizer.ggml.mask_token_id", &v->mask);
    read_bool(f, "tokenizer.ggml.add_bos_token", &v->add_bos);
    read_bool(f, "tokenizer.ggml.add_eos_token", &v->add_eos);
    read_bool(f, "tokenizer.ggml.add_sep_token", &v->add_sep);
    if (v->kind == VOCAB_KIND_SPM) read_bool(f, "tokenizer.ggml.add_space_prefix", &v->add_space_prefix);
    /* default ids past the end of a small vocab mean "none" */
    int32_t *ids[] = {&v->bos, &v->eos, &v->eot, &v->eom, &v->unk, &v->sep, &v->pad, &v->mask};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
        if (*ids[i] >= v->n_tokens) *ids[i] = -1;
    return build_special_lists(v);
}

pagoda_status vocab_load(const gguf_file *file, vocab **out) {
    *out = NULL;
    vocab *v = calloc(1, sizeof(*v));
    if (!v) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "vocab: out of memory");
    v->bos = v->eos = v->eot = v->eom = v->unk = v->sep = v->pad = v->mask = -1;
    const char *path = gguf_path(file);
    pagoda_status st = vocab_build(v, file, path ? path : "(memory)");
    if (st != PAGODA_OK) {
        vocab_free(v);
        return st;
    }
    *out = v;
    return PAGODA_OK;
}

/* ---- accessors ------------------------------------------------------------------------------- */
vocab_kind vocab_get_kind(const vocab *v) { return v->kind; }
int32_t vocab_n_tokens(const vocab *v) { return v->n_tokens; }
int32_t vocab_bos(const vocab *v) { return v->bos; }
int32_t vocab_eos(const vocab *v) { return v->eos; }
int32_t vocab_eot(const vocab *v) { return v->eot; }
int32_t vocab_unk(const vocab *v) { return v->unk; }
int32_t vocab_sep(const vocab *v) { return v->sep; }
int32_t vocab_pad(const vocab *v) { return v->pad; }
bool vocab_add_bos(const vocab *v) { return v->add_bos && v->bos >= 0; }
bool vocab_add_eos(const vocab *v) {
    return (v->add_eos && v->eos >= 0) || (v->add_sep && v->sep >= 0);
}

bool vocab_is_eog(const vocab *v, int32_t token) {
    for (size_t i = 0; i < v->n_eog; i++)
        if (v->eog_ids[i] == token) return true;
    return false;
}

vocab_token_type vocab_token_type_of(const vocab *v, int32_t token) {
    return token >= 0 && token < v->n_tokens ? (vocab_token_type)v->types[token] : (vocab_token_type)0;
}

bool vocab_is_special(const vocab *v, int32_t token) {
    vocab_token_type t = vocab_token_type_of(v, token);
    return t == VOCAB_TOKEN_CONTROL || t == VOCAB_TOKEN_UNKNOWN || t == VOCAB_TOKEN_USER_DEFINED ||
           t == VOCAB_TOKEN_UNUSED;
}

const char *vocab_token_text(const vocab *v, int32_t id) {
    return id >= 0 && id < v->n_tokens ? vocab_text(v, id) : NULL;
}

int32_t vocab_find_token(const vocab *v, const char *text) {
    return vocab_map_get(&v->token_map, text, strlen(text));
}
