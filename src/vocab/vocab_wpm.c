/* vocab/vocab_wpm.c - WordPiece ("bert" tokenizers), with BERT's basic tokenizer in front, as
 * Hugging Face's BertNormalizer + BertPreTokenizer + WordPiece do it:
 *   1. clean: drop NUL, U+FFFD and control characters (categories C*, except \t \n \r), map
 *      whitespace to ' ', put spaces around CJK ideographs;
 *   2. strip accents (NFD, then drop nonspacing marks Mn) and lowercase (utf8proc);
 *   3. split on whitespace, and make every punctuation character (ASCII punctuation/symbols or
 *      Unicode P*) a word of its own;
 *   4. each word is cut greedily into the longest vocab pieces from the left; in GGUF a
 *      word-initial piece is stored as "▁piece" and a continuation ("##piece" in BERT's vocab.txt)
 *      as plain "piece". A word longer than 100 characters, or one that cannot be covered, is UNK.
 * Lossy by design: decoding gives lowercased, accent-free words separated by spaces.
 */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "core/error.h"           /* defines: error_set */
#include "vocab/vocab_internal.h" /* defines: vocab, vocab_map_get, vocab_ids, vocab_utf8_* */

enum { WPM_MAX_WORD_CHARS = 100 };

static bool cpt_is_whitespace(uint32_t c) { /* Unicode White_Space */
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

static bool cpt_is_control(uint32_t c) {
    if (c == '\t' || c == '\n' || c == '\r') return false;
    switch (utf8proc_category((utf8proc_int32_t)c)) {
    case UTF8PROC_CATEGORY_CC: case UTF8PROC_CATEGORY_CF: case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO: case UTF8PROC_CATEGORY_CN:
        return true;
    default:
        return false;
    }
}

static bool cpt_is_punct(uint32_t c) {
    if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126))
        return true;
    utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)c);
    return cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO;
}

static bool cpt_is_cjk(uint32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* Greedy longest-match of one word (UTF-8, `n_chars` characters) into out. */
static void wpm_word(const vocab *v, const char *w, size_t len, size_t n_chars, char *scratch,
                     vocab_ids *out) {
    size_t mark = out->n;
    if (n_chars > WPM_MAX_WORD_CHARS) goto unk;
    for (size_t start = 0; start < len;) {
        size_t best_end = 0;
        int32_t best_id = -1;
        /* try every end on a character boundary, longest first */
        size_t max_end = len - start > (size_t)v->max_token_len ? start + (size_t)v->max_token_len : len;
        for (size_t end = max_end; end > start; end--) {
            if (end < len && ((uint8_t)w[end] & 0xC0) == 0x80) continue; /* inside a character */
            int32_t id;
            if (start == 0) {
                memcpy(scratch, "\xe2\x96\x81", 3);
                memcpy(scratch + 3, w, end);
                id = vocab_map_get(&v->token_map, scratch, end + 3);
            } else {
                id = vocab_map_get(&v->token_map, w + start, end - start);
            }
            if (id >= 0) {
                best_id = id;
                best_end = end;
                break;
            }
        }
        if (best_id < 0) goto unk;
        vocab_ids_push(out, best_id);
        start = best_end;
    }
    return;
unk:
    out->n = out->oom ? out->n : mark;
    if (v->unk >= 0) vocab_ids_push(out, v->unk);
}

pagoda_status vocab_wpm_encode(const vocab *v, const char *text, size_t len, vocab_ids *out) {
    /* 1-2: normalise into `norm`, with ' ' separating words */
    size_t cap = len * 3 + 16;
    char *norm = malloc(cap), *scratch = NULL;
    if (!norm) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "WordPiece: out of memory");
    size_t n = 0;
    for (size_t off = 0; off < len;) {
        if (n + 18 * 6 > cap) { /* one character: <= 18 code points x (4 bytes + 2 spaces) */
            cap = cap * 2 + 18 * 6;
            char *grown = realloc(norm, cap);
            if (!grown) {
                free(norm);
                return error_set(PAGODA_ERR_OUT_OF_MEMORY, "WordPiece: out of memory");
            }
            norm = grown;
        }
        size_t k;
        uint32_t c = vocab_utf8_decode(text + off, len - off, &k);
        off += k;
        if (c == 0 || c == 0xFFFD || cpt_is_control(c)) continue;
        if (cpt_is_whitespace(c)) {
            norm[n++] = ' ';
            continue;
        }
        utf8proc_int32_t dec[18];
        int last_bound = 0;
        utf8proc_ssize_t nd = utf8proc_decompose_char((utf8proc_int32_t)c, dec, 18,
                                                      UTF8PROC_DECOMPOSE, &last_bound);
        if (nd < 0 || nd > 18) {
            dec[0] = (utf8proc_int32_t)c;
            nd = 1;
        }
        for (utf8proc_ssize_t i = 0; i < nd; i++) {
            uint32_t d = (uint32_t)dec[i];
            if (utf8proc_category(dec[i]) == UTF8PROC_CATEGORY_MN) continue;
            d = (uint32_t)utf8proc_tolower((utf8proc_int32_t)d);
            bool isolate = cpt_is_cjk(d) || cpt_is_punct(d);
            if (isolate) norm[n++] = ' ';
            n += vocab_utf8_encode(d, norm + n);
            if (isolate) norm[n++] = ' ';
        }
    }
    /* 3-4: words ("▁" + a word must fit in scratch) */
    scratch = malloc(n + 4);
    if (!scratch) {
        free(norm);
        return error_set(PAGODA_ERR_OUT_OF_MEMORY, "WordPiece: out of memory");
    }
    for (size_t i = 0; i < n;) {
        if (norm[i] == ' ') {
            i++;
            continue;
        }
        size_t j = i, n_chars = 0;
        while (j < n && norm[j] != ' ') {
            j += vocab_utf8_len_at(norm + j, n - j);
            n_chars++;
        }
        wpm_word(v, norm + i, j - i, n_chars, scratch, out);
        i = j;
    }
    free(norm);
    free(scratch);
    return PAGODA_OK;
}
