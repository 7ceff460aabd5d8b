/* vocab/vocab_encode.c - text -> ids (vocab_encode) and ids -> text (vocab_token_to_piece,
 * vocab_decode), shared by the three tokenizer kinds.
 *
 * Encoding first cuts the text around special tokens, the way llama.cpp's tokenizer_st_partition
 * does: special pieces are tried longest first; every occurrence of a piece inside a still-raw
 * fragment splits that fragment into raw | token | raw. User-defined pieces are always
 * recognised; control and unknown pieces only with parse_special. Each raw fragment then goes to
 * the kind's tokenizer. For SPM, a raw fragment at the start or right after a special token gets
 * the dummy-prefix space (when add_space_prefix).
 *
 * Decoding is the inverse for SPM and BPE: "▁" -> " ", <0xXX> -> the byte, byte-level code
 * points -> bytes, and the dummy-prefix space of the first piece is dropped. Control/unknown
 * tokens are rendered only on request. No clean-up of spaces before punctuation is done.
 */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"           /* defines: error_set */
#include "vocab/vocab_internal.h" /* defines: struct vocab, vocab_ids, vocab_*_encode */

/* ---- special-token partition ----------------------------------------------------------------- */
typedef struct fragment {
    int32_t token; /* -1 for raw text */
    size_t off, len;
} fragment;

typedef struct frag_list {
    fragment *data; /* [cap] */
    size_t n, cap;
} frag_list;

static bool frag_push(frag_list *l, int32_t token, size_t off, size_t len) {
    if (token < 0 && len == 0) return true;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        fragment *d = realloc(l->data, cap * sizeof(*d));
        if (!d) return false;
        l->data = d;
        l->cap = cap;
    }
    l->data[l->n++] = (fragment){token, off, len};
    return true;
}

/* Splits the raw fragments of `cur` on every occurrence of special token `id`, into `next`. */
static bool split_on_token(const vocab *v, const char *text, int32_t id, const frag_list *cur,
                           frag_list *next) {
    const char *piece = vocab_text(v, id);
    size_t plen = v->text_len[id];
    next->n = 0;
    for (size_t i = 0; i < cur->n; i++) {
        fragment f = cur->data[i];
        if (f.token >= 0 || f.len < plen) {
            if (!frag_push(next, f.token, f.off, f.len)) return false;
            continue;
        }
        size_t pos = f.off, end = f.off + f.len;
        for (;;) {
            const char *hit = memmem(text + pos, end - pos, piece, plen);
            if (!hit) break;
            size_t at = (size_t)(hit - text);
            if (!frag_push(next, -1, pos, at - pos) || !frag_push(next, id, at, plen)) return false;
            pos = at + plen;
        }
        if (!frag_push(next, -1, pos, end - pos)) return false;
    }
    return true;
}

/* Cuts `text` into raw and special-token fragments (result in *out, which the caller frees). */
static bool partition(const vocab *v, const char *text, size_t len, bool parse_special, frag_list *out) {
    frag_list cur = {0}, next = {0};
    if (!frag_push(&cur, -1, 0, len)) return false;
    for (size_t s = 0; s < v->n_special; s++) {
        int32_t id = v->special_ids[s];
        uint8_t t = v->types[id];
        if (!parse_special && (t == VOCAB_TOKEN_CONTROL || t == VOCAB_TOKEN_UNKNOWN)) continue;
        if (v->text_len[id] > len) continue;
        if (!split_on_token(v, text, id, &cur, &next)) {
            free(cur.data);
            free(next.data);
            return false;
        }
        frag_list t2 = cur;
        cur = next;
        next = t2;
    }
    free(next.data);
    *out = cur;
    return true;
}

/* ---- encode ---------------------------------------------------------------------------------- */
pagoda_status vocab_encode(const vocab *v, const char *text, size_t len, bool add_special,
                           bool parse_special, int32_t **out_ids, size_t *out_n) {
    *out_ids = NULL;
    *out_n = 0;
    if (!text && len > 0) return error_set(PAGODA_ERR_INVALID_ARGUMENT, "vocab_encode: NULL text");
    vocab_ids ids = {0};
    frag_list frags = {0};
    char *spm_buf = NULL;
    pagoda_status st = PAGODA_OK;
    if (len > 0 && !partition(v, text, len, parse_special, &frags)) {
        st = error_set(PAGODA_ERR_OUT_OF_MEMORY, "vocab_encode: out of memory");
        goto done;
    }
    if (add_special && vocab_add_bos(v)) vocab_ids_push(&ids, v->bos);
    bool prev_special = true;
    for (size_t i = 0; i < frags.n && st == PAGODA_OK; i++) {
        fragment f = frags.data[i];
        if (f.token >= 0) {
            vocab_ids_push(&ids, f.token);
            prev_special = true;
            continue;
        }
        switch (v->kind) {
        case VOCAB_KIND_SPM:
            if (v->add_space_prefix && prev_special) { /* the dummy prefix */
                char *b = realloc(spm_buf, f.len + 1);
                if (!b) {
                    st = error_set(PAGODA_ERR_OUT_OF_MEMORY, "vocab_encode: out of memory");
                    break;
                }
                spm_buf = b;
                spm_buf[0] = ' ';
                memcpy(spm_buf + 1, text + f.off, f.len);
                vocab_spm_encode(v, spm_buf, f.len + 1, &ids);
            } else {
                vocab_spm_encode(v, text + f.off, f.len, &ids);
            }
            break;
        case VOCAB_KIND_BPE:
            st = vocab_bpe_encode(v, text + f.off, f.len, &ids);
            break;
        case VOCAB_KIND_WPM:
            st = vocab_wpm_encode(v, text + f.off, f.len, &ids);
            break;
        }
        prev_special = false;
    }
    if (add_special && v->add_eos && v->eos >= 0) vocab_ids_push(&ids, v->eos);
    if (add_special && v->add_sep && v->sep >= 0) vocab_ids_push(&ids, v->sep);
    if (st == PAGODA_OK && ids.oom) st = error_set(PAGODA_ERR_OUT_OF_MEMORY, "vocab_encode: out of memory");
done:
    free(frags.data);
    free(spm_buf);
    if (st != PAGODA_OK) {
        free(ids.data);
        return st;
    }
    *out_ids = ids.data;
    *out_n = ids.n;
    return PAGODA_OK;
}

/* ---- decode ---------------------------------------------------------------------------------- */
static int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Writes byte `b` at position n of buf if it fits; returns n + 1. */
static size_t put(char *buf, size_t cap, size_t n, char b) {
    if (n < cap) buf[n] = b;
    return n + 1;
}

int32_t vocab_token_to_piece(const vocab *v, int32_t token, char *buf, size_t buf_bytes,
                             bool render_special) {
    if (token < 0 || token >= v->n_tokens) return -1;
    const char *t = vocab_text(v, token);
    size_t tlen = v->text_len[token], n = 0;
    switch ((vocab_token_type)v->types[token]) {
    case VOCAB_TOKEN_CONTROL:
    case VOCAB_TOKEN_UNKNOWN:
        if (!render_special) return 0;
        /* fall through */
    case VOCAB_TOKEN_USER_DEFINED:
        for (size_t i = 0; i < tlen; i++) n = put(buf, buf_bytes, n, t[i]);
        return (int32_t)n;
    case VOCAB_TOKEN_UNUSED:
        return 0;
    case VOCAB_TOKEN_BYTE:
        if (v->kind != VOCAB_KIND_BPE && tlen == 6 && hex_digit(t[3]) >= 0 && hex_digit(t[4]) >= 0)
            return (int32_t)put(buf, buf_bytes, 0, (char)(hex_digit(t[3]) * 16 + hex_digit(t[4])));
        break; /* otherwise like a normal piece */
    case VOCAB_TOKEN_NORMAL:
        break;
    }
    if (v->kind == VOCAB_KIND_BPE) { /* byte-level code points back to bytes */
        for (size_t i = 0; i < tlen;) {
            size_t k;
            uint32_t c = vocab_utf8_decode(t + i, tlen - i, &k);
            int b = vocab_bpe_cpt_to_byte(c);
            if (b >= 0) {
                n = put(buf, buf_bytes, n, (char)b);
            } else { /* not in the byte alphabet: keep the character as it is */
                for (size_t j = 0; j < k; j++) n = put(buf, buf_bytes, n, t[i + j]);
            }
            i += k;
        }
    } else { /* SPM and WordPiece: "▁" is a space */
        for (size_t i = 0; i < tlen;) {
            if (tlen - i >= 3 && memcmp(t + i, "\xe2\x96\x81", 3) == 0) {
                n = put(buf, buf_bytes, n, ' ');
                i += 3;
            } else {
                n = put(buf, buf_bytes, n, t[i++]);
            }
        }
    }
    return (int32_t)n;
}

pagoda_status vocab_decode(const vocab *v, const int32_t *ids, size_t n_ids, bool render_special,
                           char **out_text, size_t *out_len) {
    *out_text = NULL;
    *out_len = 0;
    size_t cap = 64, n = 0;
    char *s = malloc(cap);
    if (!s) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "vocab_decode: out of memory");
    bool strip_space = v->kind == VOCAB_KIND_SPM && v->add_space_prefix;
    for (size_t i = 0; i < n_ids; i++) {
        if (ids[i] < 0 || ids[i] >= v->n_tokens) {
            free(s);
            return error_set(PAGODA_ERR_INVALID_ARGUMENT, "token id %d is out of range (the vocab has "
                             "%d tokens)", ids[i], v->n_tokens);
        }
        int32_t need = vocab_token_to_piece(v, ids[i], NULL, 0, render_special);
        if (n + (size_t)need + 1 > cap) {
            while (n + (size_t)need + 1 > cap) cap *= 2;
            char *g = realloc(s, cap);
            if (!g) {
                free(s);
                return error_set(PAGODA_ERR_OUT_OF_MEMORY, "vocab_decode: out of memory");
            }
            s = g;
        }
        vocab_token_to_piece(v, ids[i], s + n, cap - n, render_special);
        /* drop the dummy-prefix space: only on the first piece that produces any bytes */
        if (strip_space && need > 0) {
            strip_space = false;
            if (v->types[ids[i]] != VOCAB_TOKEN_BYTE && s[n] == ' ') {
                memmove(s + n, s + n + 1, (size_t)need - 1);
                need--;
            }
        }
        n += (size_t)need;
    }
    s[n] = '\0';
    *out_text = s;
    *out_len = n;
    return PAGODA_OK;
}
