/* vocab/vocab_map.c - small helpers for the tokenizers: an open-addressing string -> int32 hash
 * map (linear probing, FNV-1a hash, load factor at most 1/2), a growable id list, and UTF-8
 * encoding/decoding. Deletion is not supported: the maps are built once at load time. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"           /* defines: error_set */
#include "vocab/vocab_internal.h" /* defines: vocab_map, vocab_ids, vocab_utf8_* */

uint64_t vocab_hash_bytes(const char *s, size_t len) {
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a 64 */
    for (size_t i = 0; i < len; i++) {
        h ^= (uint8_t)s[i];
        h *= 0x100000001b3ull;
    }
    return h ^ (h >> 29);
}

pagoda_status vocab_map_init(vocab_map *m, size_t expected) {
    size_t cap = 16;
    while (cap < expected * 2 + 1) cap <<= 1;
    m->slots = calloc(cap, sizeof(*m->slots));
    if (!m->slots) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "vocab: out of memory for a %zu-slot map", cap);
    m->cap = cap;
    m->n = 0;
    return PAGODA_OK;
}

void vocab_map_free(vocab_map *m) {
    if (!m) return;
    free(m->slots);
    m->slots = NULL;
    m->cap = m->n = 0;
}

static vocab_map_slot *map_find_slot(vocab_map_slot *slots, size_t cap, const char *key, size_t len) {
    size_t i = (size_t)vocab_hash_bytes(key, len) & (cap - 1);
    for (;;) {
        vocab_map_slot *s = &slots[i];
        if (!s->key || (s->len == len && memcmp(s->key, key, len) == 0)) return s;
        i = (i + 1) & (cap - 1);
    }
}

pagoda_status vocab_map_put(vocab_map *m, const char *key, size_t len, int32_t value) {
    if ((m->n + 1) * 2 > m->cap) { /* grow: rehash every key */
        size_t cap = m->cap ? m->cap * 2 : 16;
        vocab_map_slot *slots = calloc(cap, sizeof(*slots));
        if (!slots) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "vocab: out of memory growing a map");
        for (size_t i = 0; i < m->cap; i++)
            if (m->slots[i].key) *map_find_slot(slots, cap, m->slots[i].key, m->slots[i].len) = m->slots[i];
        free(m->slots);
        m->slots = slots;
        m->cap = cap;
    }
    vocab_map_slot *s = map_find_slot(m->slots, m->cap, key, len);
    if (!s->key) {
        s->key = key;
        s->len = (uint32_t)len;
        m->n++;
    }
    s->value = value;
    return PAGODA_OK;
}

int32_t vocab_map_get(const vocab_map *m, const char *key, size_t len) {
    if (!m->cap) return -1;
    const vocab_map_slot *s = map_find_slot(m->slots, m->cap, key, len);
    return s->key ? s->value : -1;
}

void vocab_ids_push(vocab_ids *ids, int32_t id) {
    if (ids->oom) return;
    if (ids->n == ids->cap) {
        size_t cap = ids->cap ? ids->cap * 2 : 64;
        int32_t *d = realloc(ids->data, cap * sizeof(*d));
        if (!d) {
            ids->oom = true;
            return;
        }
        ids->data = d;
        ids->cap = cap;
    }
    ids->data[ids->n++] = id;
}

size_t vocab_utf8_len_at(const char *s, size_t avail) {
    static const uint8_t len_by_high_nibble[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    size_t n = len_by_high_nibble[(uint8_t)s[0] >> 4];
    return n < avail ? n : avail;
}

uint32_t vocab_utf8_decode(const char *s, size_t avail, size_t *out_len) {
    const uint8_t *u = (const uint8_t *)s;
    uint32_t c = u[0];
    size_t n = 1;
    uint32_t min = 0;
    if (c < 0x80) {
        *out_len = 1;
        return c;
    } else if ((c & 0xE0) == 0xC0) { n = 2; c &= 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { n = 3; c &= 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { n = 4; c &= 0x07; min = 0x10000; }
    else { *out_len = 1; return 0xFFFD; }
    if (n > avail) { *out_len = 1; return 0xFFFD; }
    for (size_t i = 1; i < n; i++) {
        if ((u[i] & 0xC0) != 0x80) { *out_len = 1; return 0xFFFD; }
        c = (c << 6) | (u[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) { *out_len = 1; return 0xFFFD; }
    *out_len = n;
    return c;
}

size_t vocab_utf8_encode(uint32_t c, char out[4]) {
    if (c < 0x80) { out[0] = (char)c; return 1; }
    if (c < 0x800) { out[0] = (char)(0xC0 | (c >> 6)); out[1] = (char)(0x80 | (c & 0x3F)); return 2; }
    if (c < 0x10000) {
        out[0] = (char)(0xE0 | (c >> 12)); out[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        out[2] = (char)(0x80 | (c & 0x3F)); return 3;
    }
    out[0] = (char)(0xF0 | (c >> 18)); out[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((c >> 6) & 0x3F)); out[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}
