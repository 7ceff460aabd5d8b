/* vocab/vocab_internal.h - the vocab struct and the pieces shared by the tokenizer files.
 *
 * Only the src/vocab/ C files include this header; everyone else uses vocab.h. It holds:
 *   - vocab_map: an open-addressing hash map from a byte string to an int32 (token text -> id,
 *     "left right" merge -> rank). Keys are borrowed, not copied: they must outlive the map.
 *   - struct vocab itself.
 *   - the entry points of each tokenizer kind (vocab_spm.c, vocab_bpe.c, vocab_wpm.c) and of the
 *     regex pre-tokenizer (vocab_pretok.c).
 *   - vocab_ids, a growable id array the tokenizers append to.
 */
#ifndef PAGODA_VOCAB_INTERNAL_H
#define PAGODA_VOCAB_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vocab/vocab.h" /* defines: vocab, vocab_kind, vocab_token_type, pagoda_status */

/* ---- string -> int32 hash map ---------------------------------------------------------------- */
typedef struct vocab_map_slot {
    const char *key;  /* borrowed; NULL marks an empty slot */
    uint32_t len;     /* key bytes */
    int32_t value;
} vocab_map_slot;

typedef struct vocab_map {
    vocab_map_slot *slots; /* [cap], cap a power of two */
    size_t cap;
    size_t n;
} vocab_map;

uint64_t vocab_hash_bytes(const char *s, size_t len);
/* Sizes the table for `expected` keys. Errors: PAGODA_ERR_OUT_OF_MEMORY. */
pagoda_status vocab_map_init(vocab_map *m, size_t expected);
void vocab_map_free(vocab_map *m);
/* Inserts or overwrites (the later value wins, as in llama.cpp). Errors: OUT_OF_MEMORY. */
pagoda_status vocab_map_put(vocab_map *m, const char *key, size_t len, int32_t value);
/* The value, or -1 when the key is absent. */
int32_t vocab_map_get(const vocab_map *m, const char *key, size_t len);

/* ---- growable id list ------------------------------------------------------------------------ */
typedef struct vocab_ids {
    int32_t *data; /* [cap] */
    size_t n;
    size_t cap;
    bool oom;      /* an append failed; checked once at the end */
} vocab_ids;

void vocab_ids_push(vocab_ids *ids, int32_t id);

/* ---- pre-tokenizer --------------------------------------------------------------------------- */
typedef struct vocab_pretok vocab_pretok;

/* What a pre-tokenizer name implies besides its regexes (llama.cpp's per-name settings). */
typedef struct vocab_pretok_flags {
    bool ignore_merges; /* a word that is a whole token is not split by merges */
    bool add_bos;       /* add BOS by default */
    bool no_bos;        /* the model has no BOS */
    bool add_sep;       /* append SEP by default (RoBERTa-like) */
    bool clean_spaces;  /* llama.cpp cleans " ." -> "." on detokenize (Pagoda does not) */
} vocab_pretok_flags;

/* Compiles the regex list for a `tokenizer.ggml.pre` name ("" or NULL: the default list) and
 * fills *flags. Errors: PAGODA_ERR_UNSUPPORTED (unknown name), PAGODA_ERR_INTERNAL (PCRE2
 * refused a pattern), PAGODA_ERR_OUT_OF_MEMORY. */
pagoda_status vocab_pretok_init(const char *pre_name, vocab_pretok **out, vocab_pretok_flags *flags);
void vocab_pretok_free(vocab_pretok *p);
/* Splits text into consecutive pieces covering all of it; *out_lens (malloc'd) gets the piece
 * lengths in bytes. Errors: OUT_OF_MEMORY, INTERNAL (a match error). */
pagoda_status vocab_pretok_split(const vocab_pretok *p, const char *text, size_t len,
                                 size_t **out_lens, size_t *out_n);

/* ---- the vocab ------------------------------------------------------------------------------- */
struct vocab {
    vocab_kind kind;
    int32_t n_tokens;
    char *text_arena;      /* every piece, NUL-terminated, back to back */
    uint32_t *text_off;    /* [n_tokens] offset of each piece in text_arena */
    uint32_t *text_len;    /* [n_tokens] bytes of each piece */
    float *scores;         /* [n_tokens] SPM merge scores (0 when the file has none) */
    uint8_t *types;        /* [n_tokens] vocab_token_type */
    vocab_map token_map;   /* piece -> id */
    int32_t max_token_len; /* longest piece in bytes */

    /* BPE */
    char *merge_arena;     /* copies of the "left right" merge strings */
    vocab_map merge_map;   /* "left right" -> rank */
    vocab_pretok *pretok;
    bool ignore_merges;    /* a word that is a whole token is emitted as is (llama3, tekken) */

    /* SPM */
    int32_t byte_token[256]; /* id of <0xXX> (or of the one-byte piece), -1 if none */
    bool add_space_prefix;

    int32_t bos, eos, eot, eom, unk, sep, pad, mask; /* -1 when none */
    bool add_bos, add_eos, add_sep;

    int32_t *special_ids;  /* [n_special] control/user-defined/unknown ids, longest text first */
    size_t n_special;
    int32_t *eog_ids;      /* [n_eog] end-of-generation ids */
    size_t n_eog;
};

static inline const char *vocab_text(const vocab *v, int32_t id) { return v->text_arena + v->text_off[id]; }

/* Tokenizer kinds: each appends the ids of one raw-text fragment (no special tokens inside). */
void vocab_spm_encode(const vocab *v, const char *text, size_t len, vocab_ids *out);
pagoda_status vocab_bpe_encode(const vocab *v, const char *text, size_t len, vocab_ids *out);
pagoda_status vocab_wpm_encode(const vocab *v, const char *text, size_t len, vocab_ids *out);

/* GPT-2 byte-level mapping: the code point standing for byte b, and the inverse (-1 if the code
 * point stands for no byte). */
uint32_t vocab_bpe_byte_to_cpt(uint8_t b);
int vocab_bpe_cpt_to_byte(uint32_t cpt);

/* UTF-8 helpers. utf8_len_at: bytes of the sequence a lead byte starts (1 for a stray byte),
 * clipped to `avail`. utf8_decode: code point at s (U+FFFD for a malformed byte) and its length. */
size_t vocab_utf8_len_at(const char *s, size_t avail);
uint32_t vocab_utf8_decode(const char *s, size_t avail, size_t *out_len);
size_t vocab_utf8_encode(uint32_t cpt, char out[4]);

#endif
