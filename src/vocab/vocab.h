/* vocab/vocab.h - tokenizers loaded from GGUF metadata (tokenizer.ggml.* keys).
 *
 * Three tokenizer kinds, chosen by `tokenizer.ggml.model`, each meant to give exactly the token ids
 * llama.cpp and Hugging Face give:
 *   "llama"  SentencePiece BPE: pieces with scores, "▁" for spaces, a dummy-prefix space, and
 *            byte fallback through the <0xXX> tokens (vocab_spm.c).
 *   "gpt2"   byte-level BPE: merges ranked by their order in tokenizer.ggml.merges, the GPT-2
 *            byte-to-unicode mapping, and a pre-tokenizer (a list of PCRE2 regexes) chosen by
 *            `tokenizer.ggml.pre` (vocab_bpe.c, vocab_pretok.c).
 *   "bert"   WordPiece with BERT's basic tokenizer: clean, lowercase, strip accents (NFD),
 *            split on whitespace/punctuation/CJK; a word-initial piece is stored as "▁word"
 *            in GGUF, a continuation piece without prefix (vocab_wpm.c).
 *
 * Token types come from `tokenizer.ggml.token_type` (VOCAB_TOKEN_*). Before the tokenizer proper,
 * the text is cut around special tokens (vocab.c): user-defined tokens are always recognised,
 * control and unknown tokens only when `parse_special` is set (llama.cpp's rule).
 *
 * A loaded vocab is read-only: vocab_encode/vocab_decode/vocab_token_to_piece may be called from
 * several threads at once.
 *
 * Not implemented: the "t5"/UGM and "rwkv" tokenizers (vocab_load returns UNSUPPORTED), the
 * per-token lstrip/rstrip attributes of added tokens (llama.cpp sets them for Phi-3 and a few
 * Jina models by model name), and the clean-up of spaces around punctuation on decode (decode is
 * the exact inverse of encode for SPM and BPE). Special-token text is matched llama.cpp's way
 * (longest piece first over the whole text), which differs from Hugging Face's leftmost-longest
 * only when two special pieces overlap in the text.
 */
#ifndef PAGODA_VOCAB_H
#define PAGODA_VOCAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf/gguf.h" /* defines: gguf_file */
#include "pagoda.h"    /* defines: pagoda_status */

typedef struct vocab vocab;

typedef enum vocab_kind {
    VOCAB_KIND_SPM,  /* "llama" */
    VOCAB_KIND_BPE,  /* "gpt2" */
    VOCAB_KIND_WPM,  /* "bert" */
} vocab_kind;

/* tokenizer.ggml.token_type values (0 means undefined and is treated as normal). */
typedef enum vocab_token_type {
    VOCAB_TOKEN_NORMAL = 1,
    VOCAB_TOKEN_UNKNOWN = 2,
    VOCAB_TOKEN_CONTROL = 3,
    VOCAB_TOKEN_USER_DEFINED = 4,
    VOCAB_TOKEN_UNUSED = 5,
    VOCAB_TOKEN_BYTE = 6,
} vocab_token_type;

/* Reads the tokenizer from a GGUF file's metadata; the vocab copies what it needs, so the file
 * may be closed afterwards. Errors: PAGODA_ERR_FORMAT (missing or inconsistent tokenizer keys),
 * PAGODA_ERR_UNSUPPORTED (unknown tokenizer model or pre-tokenizer), PAGODA_ERR_OUT_OF_MEMORY. */
pagoda_status vocab_load(const gguf_file *file, vocab **out);
void vocab_free(vocab *v);

vocab_kind vocab_get_kind(const vocab *v);
int32_t vocab_n_tokens(const vocab *v);
/* Special token ids, -1 when the model has none. */
int32_t vocab_bos(const vocab *v);
int32_t vocab_eos(const vocab *v);
int32_t vocab_eot(const vocab *v); /* end of turn: <|im_end|>, <|eot_id|>, <|end|>, ... */
int32_t vocab_unk(const vocab *v);
int32_t vocab_sep(const vocab *v);
int32_t vocab_pad(const vocab *v);
/* Whether encode(add_special=true) adds BOS at the start / EOS (SEP for BERT) at the end, from
 * tokenizer.ggml.add_bos_token / add_eos_token with llama.cpp's defaults per tokenizer kind. */
bool vocab_add_bos(const vocab *v);
bool vocab_add_eos(const vocab *v);
/* End of generation: EOS, EOT, EOM and the usual end-of-turn/end-of-text control tokens. */
bool vocab_is_eog(const vocab *v, int32_t token);
/* Control, unknown, user-defined (and unused) tokens. */
bool vocab_is_special(const vocab *v, int32_t token);
vocab_token_type vocab_token_type_of(const vocab *v, int32_t token); /* 0 if out of range */

/* The raw piece as stored in the vocab ("▁Hello", "Ġworld", "<0x0A>"), NUL-terminated;
 * NULL if `id` is out of range. */
const char *vocab_token_text(const vocab *v, int32_t id);
/* Exact piece lookup; -1 if none. */
int32_t vocab_find_token(const vocab *v, const char *text);

/* Tokenizes `len` bytes of UTF-8 text (invalid bytes are tolerated and kept).
 * add_special: add BOS/EOS as vocab_add_bos/eos say. parse_special: recognise the text of control
 * tokens (e.g. "<|im_start|>") and emit their ids. On success *out_ids is a malloc'd array of
 * *out_n ids (NULL when 0), which the caller frees. Errors: PAGODA_ERR_OUT_OF_MEMORY,
 * PAGODA_ERR_INTERNAL (the regex engine failed). */
pagoda_status vocab_encode(const vocab *v, const char *text, size_t len, bool add_special,
                           bool parse_special, int32_t **out_ids, size_t *out_n);

/* The bytes one token stands for, written to buf (at most buf_bytes): "▁" becomes " ", byte
 * tokens become their byte, byte-level BPE pieces are mapped back to bytes. Control and unknown
 * tokens give their text only with `render_special`, else nothing. The result may be a partial
 * UTF-8 sequence. Returns the number of bytes the piece takes, which may exceed buf_bytes (then
 * buf holds nothing useful: call again with a larger buffer); -1 if `token` is out of range. */
int32_t vocab_token_to_piece(const vocab *v, int32_t token, char *buf, size_t buf_bytes,
                             bool render_special);

/* Decodes a whole id list into a malloc'd NUL-terminated string (*out_len bytes, not counting
 * the NUL). For SPM the leading space the dummy prefix added is removed, so that
 * decode(encode(text)) == text for SPM and BPE. A leading BOS is skipped when !render_special.
 * Errors: PAGODA_ERR_INVALID_ARGUMENT (an id out of range), PAGODA_ERR_OUT_OF_MEMORY. */
pagoda_status vocab_decode(const vocab *v, const int32_t *ids, size_t n_ids, bool render_special,
                           char **out_text, size_t *out_len);

#endif
