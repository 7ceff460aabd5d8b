/* vocab/vocab_bpe.c - byte-level BPE ("gpt2" tokenizers: GPT-2, Llama 3, Qwen2, SmolLM, ...).
 *
 * For each piece the pre-tokenizer yields:
 *   1. every byte becomes the code point GPT-2's bytes_to_unicode assigns it (printable Latin-1
 *      bytes stand for themselves, the others for U+0100 + k), since merges and vocab pieces are
 *      written in that alphabet ("Ġ" is a space, "Ċ" a newline);
 *   2. the symbols (one per byte at first) are merged greedily: always the adjacent pair whose
 *      "left right" string has the lowest rank in tokenizer.ggml.merges, leftmost first on ties.
 *      A binary heap holds candidate pairs; a popped pair is stale (and skipped) when either side
 *      has changed since it was pushed. This is O(n log n) per piece.
 *   3. every final symbol is looked up in the vocab; one that is missing is emitted byte by byte.
 * With ignore_merges (Llama 3, Tekken) a piece that is itself a token is emitted directly.
 */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"           /* defines: error_set */
#include "vocab/vocab_internal.h" /* defines: vocab, vocab_map_get, vocab_pretok_split, vocab_ids */

/* ---- bytes <-> code points ------------------------------------------------------------------- */
static bool byte_is_printable(int b) {
    return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

/* The 68 other bytes are 0x00-0x20, 0x7F-0xA0 and 0xAD, numbered in that order from U+0100. */
uint32_t vocab_bpe_byte_to_cpt(uint8_t b) {
    if (byte_is_printable(b)) return b;
    if (b <= 0x20) return 256 + b;
    if (b <= 0xA0) return 256 + 33 + (b - 0x7F);
    return 256 + 67; /* 0xAD */
}

int vocab_bpe_cpt_to_byte(uint32_t cpt) {
    if (cpt < 256) return byte_is_printable((int)cpt) ? (int)cpt : -1;
    uint32_t k = cpt - 256;
    if (k < 33) return (int)k;
    if (k < 67) return (int)(0x7F + (k - 33));
    if (k == 67) return 0xAD;
    return -1;
}

/* ---- the merge loop -------------------------------------------------------------------------- */
typedef struct bpe_symbol {
    uint32_t start, n; /* bytes in the encoded word; n == 0 once merged away */
    int32_t prev, next;
} bpe_symbol;

typedef struct bpe_pair {
    int32_t rank;
    int32_t left, right;
    uint32_t size; /* bytes of left + right when pushed */
} bpe_pair;

typedef struct bpe_work {
    char *enc;          /* [enc_cap] the piece in the byte-to-unicode alphabet */
    size_t enc_cap;
    bpe_symbol *syms;   /* [sym_cap] */
    size_t sym_cap;
    bpe_pair *heap;     /* [heap_cap] min-heap on (rank, left) */
    size_t heap_n, heap_cap;
    char *key;          /* [key_cap] scratch for "left right" */
    size_t key_cap;
    bool oom;
} bpe_work;

static bool grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return true;
    size_t cap2 = *cap ? *cap : 64;
    while (cap2 < need) cap2 *= 2;
    void *q = realloc(*p, cap2 * elem);
    if (!q) return false;
    *p = q;
    *cap = cap2;
    return true;
}

static bool pair_less(const bpe_pair *a, const bpe_pair *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static void heap_push(bpe_work *w, bpe_pair p) {
    if (!grow((void **)&w->heap, &w->heap_cap, w->heap_n + 1, sizeof(bpe_pair))) {
        w->oom = true;
        return;
    }
    size_t i = w->heap_n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!pair_less(&p, &w->heap[parent])) break;
        w->heap[i] = w->heap[parent];
        i = parent;
    }
    w->heap[i] = p;
}

static bpe_pair heap_pop(bpe_work *w) {
    bpe_pair top = w->heap[0];
    bpe_pair last = w->heap[--w->heap_n];
    size_t i = 0, n = w->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && pair_less(&w->heap[c + 1], &w->heap[c])) c++;
        if (!pair_less(&w->heap[c], &last)) break;
        w->heap[i] = w->heap[c];
        i = c;
    }
    if (n) w->heap[i] = last;
    return top;
}

static void try_add_pair(const vocab *v, bpe_work *w, int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const bpe_symbol *l = &w->syms[left], *r = &w->syms[right];
    size_t key_len = (size_t)l->n + 1 + r->n;
    if (!grow((void **)&w->key, &w->key_cap, key_len, 1)) {
        w->oom = true;
        return;
    }
    memcpy(w->key, w->enc + l->start, l->n);
    w->key[l->n] = ' ';
    memcpy(w->key + l->n + 1, w->enc + r->start, r->n);
    int32_t rank = vocab_map_get(&v->merge_map, w->key, key_len);
    if (rank < 0) return;
    heap_push(w, (bpe_pair){rank, left, right, l->n + r->n});
}

/* Tokenizes one pre-tokenized piece. */
static void bpe_piece(const vocab *v, bpe_work *w, const char *piece, size_t len, vocab_ids *out) {
    /* 1. encode bytes into the byte-to-unicode alphabet, one symbol per byte */
    if (!grow((void **)&w->enc, &w->enc_cap, len * 2, 1) ||
        !grow((void **)&w->syms, &w->sym_cap, len, sizeof(bpe_symbol))) {
        w->oom = true;
        return;
    }
    size_t enc_n = 0;
    for (size_t i = 0; i < len; i++) {
        char u[4];
        size_t k = vocab_utf8_encode(vocab_bpe_byte_to_cpt((uint8_t)piece[i]), u);
        w->syms[i] = (bpe_symbol){(uint32_t)enc_n, (uint32_t)k, (int32_t)i - 1,
                                  i + 1 < len ? (int32_t)i + 1 : -1};
        memcpy(w->enc + enc_n, u, k);
        enc_n += k;
    }
    if (v->ignore_merges) {
        int32_t id = vocab_map_get(&v->token_map, w->enc, enc_n);
        if (id >= 0) {
            vocab_ids_push(out, id);
            return;
        }
    }
    /* 2. merge */
    w->heap_n = 0;
    for (size_t i = 1; i < len; i++) try_add_pair(v, w, (int32_t)i - 1, (int32_t)i);
    while (w->heap_n > 0 && !w->oom) {
        bpe_pair p = heap_pop(w);
        bpe_symbol *l = &w->syms[p.left], *r = &w->syms[p.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != p.size || l->next != p.right) continue;
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) w->syms[r->next].prev = p.left;
        try_add_pair(v, w, l->prev, p.left);
        try_add_pair(v, w, p.left, l->next);
    }
    /* 3. look the symbols up */
    for (int32_t i = 0; i >= 0 && (size_t)i < len; i = w->syms[i].next) {
        const bpe_symbol *s = &w->syms[i];
        int32_t id = vocab_map_get(&v->token_map, w->enc + s->start, s->n);
        if (id >= 0) {
            vocab_ids_push(out, id);
            continue;
        }
        for (uint32_t off = 0; off < s->n;) { /* each code point is one byte of the input */
            size_t k = vocab_utf8_len_at(w->enc + s->start + off, s->n - off);
            int32_t b = vocab_map_get(&v->token_map, w->enc + s->start + off, k);
            if (b >= 0) vocab_ids_push(out, b);
            else if (v->unk >= 0) vocab_ids_push(out, v->unk);
            off += (uint32_t)k;
        }
    }
}

pagoda_status vocab_bpe_encode(const vocab *v, const char *text, size_t len, vocab_ids *out) {
    size_t *lens = NULL, n_pieces = 0;
    pagoda_status st = vocab_pretok_split(v->pretok, text, len, &lens, &n_pieces);
    if (st != PAGODA_OK) return st;
    bpe_work w = {0};
    size_t off = 0;
    for (size_t i = 0; i < n_pieces && !w.oom; i++) {
        bpe_piece(v, &w, text + off, lens[i], out);
        off += lens[i];
    }
    free(w.enc);
    free(w.syms);
    free(w.heap);
    free(w.key);
    free(lens);
    if (w.oom) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "BPE: out of memory");
    return PAGODA_OK;
}
