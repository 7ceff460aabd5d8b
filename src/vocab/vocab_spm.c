/* vocab/vocab_spm.c - SentencePiece BPE ("llama" tokenizers: Llama 1/2, Phi-3, Mistral v1, ...).
 *
 * The caller (vocab.c) has already added the dummy-prefix space where the model wants one. Here:
 *   1. every space becomes "▁" (U+2581);
 *   2. the text is cut into UTF-8 characters, one symbol each (each byte of a malformed sequence
 *      is a symbol of its own);
 *   3. symbols are merged greedily: always the adjacent pair whose concatenation is a vocab piece
 *      with the highest score, leftmost first on ties (a binary heap of candidate pairs; stale
 *      pairs are skipped when popped);
 *   4. each final symbol is looked up; a symbol that is no piece (only possible for a single
 *      character, since merges only make pieces) is emitted as its bytes' <0xXX> tokens
 *      ("byte fallback"), or as UNK when the vocab has no byte tokens.
 * No Unicode normalisation is done (llama.cpp does none for SPM either).
 */
#include <stdlib.h>
#include <string.h>

#include "vocab/vocab_internal.h" /* defines: vocab, vocab_map_get, vocab_ids */

typedef struct spm_symbol {
    uint32_t start, n; /* bytes in the escaped text; n == 0 once merged away */
    int32_t prev, next;
} spm_symbol;

typedef struct spm_pair {
    float score;
    int32_t left, right;
    uint32_t size;
} spm_pair;

/* Max-heap order: higher score first, then smaller left index. */
static bool pair_before(const spm_pair *a, const spm_pair *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

typedef struct spm_heap {
    spm_pair *data; /* [cap] */
    size_t n, cap;
    bool oom;
} spm_heap;

static void heap_push(spm_heap *h, spm_pair p) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        spm_pair *d = realloc(h->data, cap * sizeof(*d));
        if (!d) {
            h->oom = true;
            return;
        }
        h->data = d;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!pair_before(&p, &h->data[parent])) break;
        h->data[i] = h->data[parent];
        i = parent;
    }
    h->data[i] = p;
}

static spm_pair heap_pop(spm_heap *h) {
    spm_pair top = h->data[0];
    spm_pair last = h->data[--h->n];
    size_t i = 0, n = h->n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && pair_before(&h->data[c + 1], &h->data[c])) c++;
        if (!pair_before(&h->data[c], &last)) break;
        h->data[i] = h->data[c];
        i = c;
    }
    if (n) h->data[i] = last;
    return top;
}

static void try_add_pair(const vocab *v, const char *s, const spm_symbol *syms, spm_heap *h,
                         int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    uint32_t size = syms[left].n + syms[right].n;
    int32_t id = vocab_map_get(&v->token_map, s + syms[left].start, size);
    if (id < 0) return;
    heap_push(h, (spm_pair){v->scores[id], left, right, size});
}

/* On allocation failure out->oom is set. */
void vocab_spm_encode(const vocab *v, const char *text, size_t len, vocab_ids *out) {
    if (len == 0) return;
    /* 1. escape spaces */
    size_t n_spaces = 0;
    for (size_t i = 0; i < len; i++) n_spaces += text[i] == ' ';
    size_t n = len + 2 * n_spaces;
    char *s = malloc(n);
    spm_symbol *syms = malloc(n * sizeof(*syms));
    spm_heap heap = {0};
    if (!s || !syms) {
        out->oom = true;
        goto done;
    }
    for (size_t i = 0, j = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(s + j, "\xe2\x96\x81", 3);
            j += 3;
        } else {
            s[j++] = text[i];
        }
    }
    /* 2. one symbol per character */
    int32_t n_syms = 0;
    for (size_t off = 0; off < n;) {
        size_t k; /* a malformed sequence is a symbol per byte (llama.cpp trusts the lead byte) */
        (void)vocab_utf8_decode(s + off, n - off, &k);
        syms[n_syms] = (spm_symbol){(uint32_t)off, (uint32_t)k, n_syms - 1, -1};
        if (n_syms > 0) syms[n_syms - 1].next = n_syms;
        n_syms++;
        off += k;
    }
    /* 3. merge */
    for (int32_t i = 1; i < n_syms; i++) try_add_pair(v, s, syms, &heap, i - 1, i);
    while (heap.n > 0 && !heap.oom) {
        spm_pair p = heap_pop(&heap);
        spm_symbol *l = &syms[p.left], *r = &syms[p.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != p.size || l->next != p.right) continue;
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) syms[r->next].prev = p.left;
        try_add_pair(v, s, syms, &heap, l->prev, p.left);
        try_add_pair(v, s, syms, &heap, p.left, l->next);
    }
    if (heap.oom) {
        out->oom = true;
        goto done;
    }
    /* 4. look up, with byte fallback */
    for (int32_t i = 0; i >= 0; i = syms[i].next) {
        int32_t id = vocab_map_get(&v->token_map, s + syms[i].start, syms[i].n);
        if (id >= 0) {
            vocab_ids_push(out, id);
            continue;
        }
        for (uint32_t b = 0; b < syms[i].n; b++) {
            int32_t bt = v->byte_token[(uint8_t)s[syms[i].start + b]];
            if (bt >= 0) vocab_ids_push(out, bt);
            else if (v->unk >= 0) vocab_ids_push(out, v->unk);
        }
    }
done:
    free(s);
    free(syms);
    free(heap.data);
}
