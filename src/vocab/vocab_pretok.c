/* vocab/vocab_pretok.c - the byte-level BPE pre-tokenizer: a list of PCRE2 regexes per
 * `tokenizer.ggml.pre` name, applied one after another.
 *
 * Semantics (those of llama.cpp's unicode_regex_split, which mirror Hugging Face's Split
 * pre-tokenizers with the "isolated" behaviour): the text starts as one piece; each regex in turn
 * is run over every current piece on its own (a lookahead never sees past the piece's end), and
 * the piece is replaced by its matches AND the gaps between them, in order. So a regex only ever
 * refines the split; no byte is dropped.
 *
 * The patterns are the ones the models' tokenizer.json files give (as adapted by llama.cpp, e.g.
 * (?i:'s) spelled '[sS]). They are compiled with PCRE2_UTF | PCRE2_UCP so that \s, \p{L}, \p{N}
 * and \p{P} follow Unicode, PCRE2_DOLLAR_ENDONLY so that $ means the end of the piece, and
 * PCRE2_MATCH_INVALID_UTF so that malformed UTF-8 never matches (it ends up in a gap piece).
 * JIT is used when available.
 *
 * Not implemented: chameleon, superbpe, kimi-k2, afmoe (they need zero-length matches or custom
 * splitters); vocab_pretok_init reports them as unsupported.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"           /* defines: error_set */
#include "vocab/vocab_internal.h" /* defines: vocab_pretok, vocab_pretok_flags */

/* ---- the regex lists ------------------------------------------------------------------------- */
#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define RE_CONTRACTIONS "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
#define RE_LLAMA3                                                                                  \
    RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"     \
                    "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN2                                                                                   \
    RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"          \
                    "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_CJK "[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+"
/* Upper-case-run / lower-case-run letters, as tekken and gpt-4o split words. */
#define RE_CASED_WORDS                                                                             \
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"

static const char *const re_default[] = {
    "[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]", NULL};
static const char *const re_llama3[] = {RE_LLAMA3, NULL};
static const char *const re_deepseek_llm[] = {
    "[\\r\\n]",
    /* letters of many scripts (the list from DeepSeek's tokenizer.json) */
    "\\s?[A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}\\x{1C4}-\\x{293}"
    "\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}\\x{37F}\\x{386}\\x{388}"
    "-\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}\\x{48A}-\\x{52F}\\x{531}"
    "-\\x{556}\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}"
    "-\\x{1CBF}\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}"
    "-\\x{1F1D}\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}"
    "\\x{1F5F}-\\x{1F7D}\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}\\x{1FC6}"
    "-\\x{1FCC}\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}\\x{1FF6}"
    "-\\x{1FFC}\\x{2102}\\x{2107}\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}\\x{2126}"
    "\\x{2128}\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}\\x{2145}-\\x{2149}"
    "\\x{214E}\\x{2183}\\x{2184}\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}\\x{2CF2}"
    "\\x{2CF3}\\x{A640}-\\x{A66D}\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}\\x{A771}-\\x{A787}\\x{A78B}"
    "-\\x{A78E}\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}\\x{FF41}"
    "-\\x{FF5A}\\x{10400}-\\x{1044F}\\x{104B0}-\\x{104D3}\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}"
    "\\x{10CC0}-\\x{10CF2}\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}]+",
    /* ASCII and full-width punctuation */
    "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]+",
    "\\s+$",
    RE_CJK,
    "\\p{N}+",
    NULL};
static const char *const re_deepseek_coder[] = {
    "[\\r\\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", RE_CJK, "\\p{N}", NULL};
static const char *const re_deepseek3[] = {
    "\\p{N}{1,3}",
    "[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+"
    "| ?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    NULL};
static const char *const re_falcon[] = {
    "[\\p{P}\\$\\+<=>\\^~\\|`]+", RE_GPT2, "[0-9][0-9][0-9]", NULL};
static const char *const re_starcoder[] = {"\\p{N}", RE_GPT2, NULL};
static const char *const re_gpt2[] = {RE_GPT2, NULL};
static const char *const re_qwen2[] = {RE_QWEN2, NULL};
static const char *const re_poro[] = {" ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{964}"
                                      "\\x{6D4}\\x{60C})]+", NULL};
static const char *const re_viking[] = {" ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{964}"
                                        "\\x{6D4}\\x{60C})]+", "\\p{N}", NULL};
static const char *const re_tekken[] = {
    RE_CASED_WORDS "|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+"
                   "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*"
                   "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    NULL};
static const char *const re_gpt4o[] = {
    RE_CASED_WORDS "(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?"
                   "[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*"
                   "(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*"
                   "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    NULL};
static const char *const re_seed_coder[] = {
    RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1}| ?[^\\s\\p{L}\\p{N}\\r\\n]+"
                    "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    NULL};
static const char *const re_bailingmoe[] = {
    "'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}"
    "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+",
    NULL};

typedef struct pretok_entry {
    const char *names;             /* '|'-separated tokenizer.ggml.pre names */
    const char *const *regexes;
    vocab_pretok_flags flags;
} pretok_entry;

/* Names and flags as llama.cpp's llama_vocab::load assigns them. */
static const pretok_entry pretok_table[] = {
    {"default", re_default, {.clean_spaces = true}},
    {"llama3|llama-v3|llama-bpe|falcon3|falcon-h1|pixtral|midm-2.0|lfm2", re_llama3,
     {.ignore_merges = true, .add_bos = true, .clean_spaces = true}},
    {"dbrx|smaug-bpe", re_llama3, {.clean_spaces = true}},
    {"glm4|chatglm-bpe", re_llama3, {.no_bos = true, .clean_spaces = true}},
    {"deepseek-llm", re_deepseek_llm, {0}},
    {"deepseek-coder", re_deepseek_coder, {0}},
    {"deepseek-v3|hunyuan-dense", re_deepseek3, {0}},
    {"falcon", re_falcon, {.clean_spaces = true}},
    {"starcoder|refact|codeshell|exaone|minerva-7b", re_starcoder, {.clean_spaces = true}},
    {"command-r|smollm", re_starcoder, {0}},
    {"gpt-2|phi-2|jina-es|jina-de|gigachat|jina-v2-es|jina-v2-de|a.x-4.0|mellum|mpt|olmo|jais|"
     "exaone4", re_gpt2, {.clean_spaces = true}},
    {"jina-v1-en|jina-v2-code|roberta-bpe", re_gpt2, {.add_sep = true, .clean_spaces = true}},
    {"trillion|granite-docling", re_gpt2, {0}},
    {"stablelm2", re_qwen2, {.clean_spaces = true}},
    {"qwen2|deepseek-r1-qwen|kormo|megrez|hunyuan|grok-2", re_qwen2, {0}},
    {"poro-chat", re_poro, {0}},
    {"bloom|gpt3-finnish", re_poro, {.clean_spaces = true}},
    {"viking", re_viking, {0}},
    {"tekken", re_tekken, {.ignore_merges = true, .add_bos = true}},
    {"gpt-4o|llama4|minimax-m2", re_gpt4o, {0}},
    {"seed-coder", re_seed_coder, {0}},
    {"bailingmoe|bailingmoe2|llada-moe", re_bailingmoe, {0}},
};

static bool name_in_list(const char *names, const char *name) {
    size_t n = strlen(name);
    for (const char *p = names; *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && memcmp(p, name, n) == 0) return true;
        if (!bar) break;
        p = bar + 1;
    }
    return false;
}

/* ---- compiled form --------------------------------------------------------------------------- */
struct vocab_pretok {
    pcre2_code **codes; /* [n_codes] */
    size_t n_codes;
};

void vocab_pretok_free(vocab_pretok *p) {
    if (!p) return;
    for (size_t i = 0; i < p->n_codes; i++) pcre2_code_free(p->codes[i]);
    free(p->codes);
    free(p);
}

pagoda_status vocab_pretok_init(const char *pre_name, vocab_pretok **out, vocab_pretok_flags *flags) {
    *out = NULL;
    const char *name = (pre_name && *pre_name) ? pre_name : "default";
    const pretok_entry *entry = NULL;
    for (size_t i = 0; i < sizeof(pretok_table) / sizeof(pretok_table[0]); i++)
        if (name_in_list(pretok_table[i].names, name)) entry = &pretok_table[i];
    if (!entry)
        return error_set(PAGODA_ERR_UNSUPPORTED,
                         "unknown pre-tokenizer '%s' (tokenizer.ggml.pre); Pagoda knows the llama.cpp "
                         "names such as llama-bpe, qwen2, gpt-2, smollm, deepseek-llm", name);
    if (flags) *flags = entry->flags;

    vocab_pretok *p = calloc(1, sizeof(*p));
    size_t n = 0;
    while (entry->regexes[n]) n++;
    if (!p || !(p->codes = calloc(n, sizeof(*p->codes)))) {
        free(p);
        return error_set(PAGODA_ERR_OUT_OF_MEMORY, "pre-tokenizer: out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        int err = 0;
        PCRE2_SIZE err_off = 0;
        p->codes[i] = pcre2_compile((PCRE2_SPTR)entry->regexes[i], PCRE2_ZERO_TERMINATED,
                                    PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY |
                                        PCRE2_MATCH_INVALID_UTF,
                                    &err, &err_off, NULL);
        if (!p->codes[i]) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(err, msg, sizeof(msg));
            vocab_pretok_free(p);
            return error_set(PAGODA_ERR_INTERNAL, "pre-tokenizer '%s': regex %zu does not compile at "
                             "offset %zu: %s", name, i, (size_t)err_off, (const char *)msg);
        }
        p->n_codes = i + 1;
        (void)pcre2_jit_compile(p->codes[i], PCRE2_JIT_COMPLETE); /* falls back to the interpreter */
    }
    *out = p;
    return PAGODA_OK;
}

/* ---- splitting ------------------------------------------------------------------------------- */
typedef struct len_list {
    size_t *data; /* [cap] */
    size_t n, cap;
} len_list;

static bool len_push(len_list *l, size_t len) {
    if (len == 0) return true;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        size_t *d = realloc(l->data, cap * sizeof(*d));
        if (!d) return false;
        l->data = d;
        l->cap = cap;
    }
    l->data[l->n++] = len;
    return true;
}

/* Splits one piece [0, len) of `s` with `code`, appending matches and gaps to `out`. */
static pagoda_status split_piece(const pcre2_code *code, pcre2_match_data *md, const char *s,
                                 size_t len, len_list *out) {
    size_t pos = 0, gap_start = 0;
    while (pos < len) {
        int rc = pcre2_match(code, (PCRE2_SPTR)s, len, pos, 0, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof(msg));
            return error_set(PAGODA_ERR_INTERNAL, "pre-tokenizer: regex match failed: %s",
                             (const char *)msg);
        }
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t m_start = ov[0], m_end = ov[1];
        if (m_end == m_start) { /* an empty match splits nothing: step over one character */
            pos = m_start + vocab_utf8_len_at(s + m_start, len - m_start);
            continue;
        }
        if (!len_push(out, m_start - gap_start) || !len_push(out, m_end - m_start))
            return error_set(PAGODA_ERR_OUT_OF_MEMORY, "pre-tokenizer: out of memory");
        gap_start = pos = m_end;
    }
    if (!len_push(out, len - gap_start))
        return error_set(PAGODA_ERR_OUT_OF_MEMORY, "pre-tokenizer: out of memory");
    return PAGODA_OK;
}

pagoda_status vocab_pretok_split(const vocab_pretok *p, const char *text, size_t len,
                                 size_t **out_lens, size_t *out_n) {
    *out_lens = NULL;
    *out_n = 0;
    len_list cur = {0}, next = {0};
    pagoda_status st = PAGODA_OK;
    pcre2_match_data *md = pcre2_match_data_create(4, NULL);
    if (!md || !len_push(&cur, len)) {
        st = error_set(PAGODA_ERR_OUT_OF_MEMORY, "pre-tokenizer: out of memory");
        goto done;
    }
    for (size_t r = 0; r < p->n_codes; r++) {
        next.n = 0;
        size_t off = 0;
        for (size_t i = 0; i < cur.n; i++) {
            st = split_piece(p->codes[r], md, text + off, cur.data[i], &next);
            if (st != PAGODA_OK) goto done;
            off += cur.data[i];
        }
        len_list t = cur;
        cur = next;
        next = t;
    }
    *out_lens = cur.data;
    *out_n = cur.n;
    cur.data = NULL;
done:
    free(cur.data);
    free(next.data);
    pcre2_match_data_free(md);
    return st;
}
