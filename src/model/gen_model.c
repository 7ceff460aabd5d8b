/* model/gen_model.c - writes random-weight llama-family GGUF models (see gen_model.h).
 *
 * Sections: the shape table; weight values; the synthesized tokenizer; metadata; tensors and the
 * streaming fill callback; gen_model_write().
 *
 * The synthesized tokenizer (used without --vocab-from) is a byte-level BPE in GPT-2's style,
 * tokenizer.ggml.model = "gpt2":
 *   ids 0..255        byte b is token b, spelled with GPT-2's byte-to-unicode map (" " is "Ġ")
 *   ids 256..n-3      merged tokens: each is an earlier token followed by one byte, taken in
 *                     breadth-first order with prefixes and bytes ordered space, a-z, A-Z, 0-9,
 *                     then the rest ("Ġa", "Ġb", ...); each comes with its merge "prefix byte",
 *                     so tokenizer.ggml.merges has n-258 entries and every merge is applicable
 *   id n-2, n-1       "<|begin_of_text|>" (bos) and "<|end_of_text|>" (eos), type CONTROL
 * It encodes any text (bytes are always tokens) but is not any real model's vocabulary.
 */
#include "model/gen_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"            /* defines: DTYPE_*, dtype_get_info, dtype_row_bytes */
#include "core/error.h"            /* defines: error_set, error_prefix */
#include "gguf/gguf.h"             /* defines: gguf_writer_*, gguf_open, gguf_kv */
#include "kernels/ref/quantize.h"  /* defines: quantize_row, quantize_supported */

/* ---- Shapes (from each model's config.json) ---------------------------------------------------- */

static const gen_model_shape shapes[] = {
    {.name = "smollm2-135m", .arch = "llama", .tokenizer_pre = "smollm", .n_vocab = 49152,
     .n_ctx = 8192, .n_embd = 576, .n_layer = 30, .n_head = 9, .n_head_kv = 3, .head_dim = 64,
     .n_ff = 1536, .rope_base = 100000.0f, .rms_eps = 1e-5f, .tied = true},
    {.name = "llama-3.2-1b", .arch = "llama", .tokenizer_pre = "llama-bpe", .n_vocab = 128256,
     .n_ctx = 131072, .n_embd = 2048, .n_layer = 16, .n_head = 32, .n_head_kv = 8, .head_dim = 64,
     .n_ff = 8192, .rope_base = 500000.0f, .rms_eps = 1e-5f, .tied = true, .rope_llama3 = true,
     .rope_factor = 32.0f, .rope_low_freq_factor = 1.0f, .rope_high_freq_factor = 4.0f,
     .rope_orig_ctx = 8192},
    {.name = "llama-3-8b", .arch = "llama", .tokenizer_pre = "llama-bpe", .n_vocab = 128256,
     .n_ctx = 8192, .n_embd = 4096, .n_layer = 32, .n_head = 32, .n_head_kv = 8, .head_dim = 128,
     .n_ff = 14336, .rope_base = 500000.0f, .rms_eps = 1e-5f, .tied = false},
    {.name = "qwen2-0.5b", .arch = "qwen2", .tokenizer_pre = "qwen2", .n_vocab = 151936,
     .n_ctx = 32768, .n_embd = 896, .n_layer = 24, .n_head = 14, .n_head_kv = 2, .head_dim = 64,
     .n_ff = 4864, .rope_base = 1000000.0f, .rms_eps = 1e-6f, .tied = true, .qkv_bias = true},
    /* Toys for tests: rows are multiples of 256 so every type, K-quants included, applies. */
    {.name = "tiny", .arch = "llama", .tokenizer_pre = "default", .n_vocab = 512, .n_ctx = 512,
     .n_embd = 256, .n_layer = 2, .n_head = 4, .n_head_kv = 2, .head_dim = 64, .n_ff = 512,
     .rope_base = 10000.0f, .rms_eps = 1e-5f, .tied = false},
    {.name = "tiny-llama3", .arch = "llama", .tokenizer_pre = "llama-bpe", .n_vocab = 512,
     .n_ctx = 2048, .n_embd = 256, .n_layer = 2, .n_head = 4, .n_head_kv = 2, .head_dim = 64,
     .n_ff = 512, .rope_base = 500000.0f, .rms_eps = 1e-5f, .tied = true, .rope_llama3 = true,
     .rope_factor = 32.0f, .rope_low_freq_factor = 1.0f, .rope_high_freq_factor = 4.0f,
     .rope_orig_ctx = 8192},
    {.name = "tiny-qwen2", .arch = "qwen2", .tokenizer_pre = "qwen2", .n_vocab = 512,
     .n_ctx = 512, .n_embd = 256, .n_layer = 2, .n_head = 4, .n_head_kv = 2, .head_dim = 64,
     .n_ff = 512, .rope_base = 1000000.0f, .rms_eps = 1e-6f, .tied = true, .qkv_bias = true},
};

int gen_model_n_shapes(void) { return (int)(sizeof shapes / sizeof shapes[0]); }

const gen_model_shape *gen_model_shape_at(int index) {
    return index >= 0 && index < gen_model_n_shapes() ? &shapes[index] : NULL;
}

const gen_model_shape *gen_model_find_shape(const char *name) {
    for (int i = 0; i < gen_model_n_shapes(); i++)
        if (strcmp(shapes[i].name, name) == 0) return &shapes[i];
    return NULL;
}

uint32_t gen_model_file_type(uint32_t type) {
    switch (type) { /* llama.cpp's LLAMA_FTYPE_MOSTLY_* (K-quants: the _M variants) */
    case DTYPE_F16: return 1;
    case DTYPE_Q4_0: return 2;
    case DTYPE_Q4_1: return 3;
    case DTYPE_Q8_0: return 7;
    case DTYPE_Q5_0: return 8;
    case DTYPE_Q5_1: return 9;
    case DTYPE_Q2_K: return 10;
    case DTYPE_Q3_K: return 12;
    case DTYPE_Q4_K: return 15;
    case DTYPE_Q5_K: return 17;
    case DTYPE_Q6_K: return 18;
    case DTYPE_BF16: return 32;
    default: return 0;
    }
}

/* ---- Weight values ------------------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Fills one row with N(0,1)-ish values: the sum of four 16-bit uniforms, centred and scaled to
 * unit variance (Irwin-Hall, n = 4). The row's stream depends only on (seed, tensor, row). */
static void random_row(float *out, int64_t n, uint64_t seed, int64_t tensor, int64_t row) {
    uint64_t state = seed ^ (0xD1B54A32D192ED03ull * (uint64_t)(tensor + 1));
    state = splitmix64(&state) ^ (uint64_t)row;
    const float scale = 1.7320508f / 65536.0f; /* sqrt(3): var of the sum of 4 U(0,1) is 1/3 */
    for (int64_t i = 0; i < n; i++) {
        uint64_t r = splitmix64(&state);
        uint32_t s = (uint32_t)(r & 0xffff) + (uint32_t)((r >> 16) & 0xffff) +
                     (uint32_t)((r >> 32) & 0xffff) + (uint32_t)(r >> 48);
        out[i] = ((float)s - 2.0f * 65535.5f) * scale;
    }
}

/* ---- Synthesized tokenizer ----------------------------------------------------------------- */

/* GPT-2's byte-to-unicode map as UTF-8 (at most 2 bytes + NUL). */
static void byte_unicode(uint8_t b, char out[3]) {
    unsigned cp;
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174) {
        cp = b;
    } else { /* the unprintable bytes take 256, 257, ... in byte order */
        unsigned k = 0;
        for (unsigned c = 0; c < b; c++)
            if (!((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || c >= 174)) k++;
        cp = 256 + k;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = 0;
    } else {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        out[2] = 0;
    }
}

/* Byte order for building merges: space, a-z, A-Z, 0-9, then every other byte. */
static void byte_order(uint8_t order[256]) {
    int n = 0;
    bool used[256] = {false};
    const char *first = " abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    for (const char *p = first; *p; p++) used[(uint8_t)*p] = true, order[n++] = (uint8_t)*p;
    for (int b = 0; b < 256; b++)
        if (!used[b]) order[n++] = (uint8_t)b;
}

static pagoda_status add_synth_tokenizer(gguf_writer *w, const gen_model_shape *s) {
    int64_t n = s->n_vocab, n_merged = n - 258;
    char **tokens = calloc((size_t)n, sizeof *tokens);
    char **merges = calloc((size_t)(n_merged > 0 ? n_merged : 1), sizeof *merges);
    int32_t *types = malloc((size_t)n * sizeof *types);
    pagoda_status st = PAGODA_OK;
    if (!tokens || !merges || !types) {
        st = error_set(PAGODA_ERR_OUT_OF_MEMORY, "gen-model: no memory for the vocabulary");
        goto done;
    }
    uint8_t order[256];
    byte_order(order);
    char spelled[256][3];
    for (int b = 0; b < 256; b++) byte_unicode((uint8_t)b, spelled[b]);
    /* ids 0..255: token b is byte b */
    int64_t id = 0;
    for (int b = 0; b < 256; b++) tokens[id++] = strdup(spelled[b]);
    /* prefixes in breadth-first order: bytes in `order`, then merged tokens as they appear */
    int64_t queue_head = 0;
    int64_t *queue = malloc((size_t)n * sizeof *queue);
    if (!queue) {
        st = error_set(PAGODA_ERR_OUT_OF_MEMORY, "gen-model: no memory for the vocabulary");
        goto done;
    }
    int64_t queue_len = 0;
    for (int k = 0; k < 256; k++) queue[queue_len++] = order[k];
    while (id < n - 2) {
        const char *prefix = tokens[queue[queue_head++]];
        for (int k = 0; k < 256 && id < n - 2; k++) {
            const char *suffix = spelled[order[k]];
            size_t lp = strlen(prefix), ls = strlen(suffix);
            char *tok = malloc(lp + ls + 1), *merge = malloc(lp + ls + 2);
            if (!tok || !merge) {
                free(tok);
                free(merge);
                free(queue);
                st = error_set(PAGODA_ERR_OUT_OF_MEMORY, "gen-model: no memory for the vocabulary");
                goto done;
            }
            snprintf(tok, lp + ls + 1, "%s%s", prefix, suffix);
            snprintf(merge, lp + ls + 2, "%s %s", prefix, suffix);
            merges[id - 256] = merge;
            queue[queue_len++] = id;
            tokens[id++] = tok;
        }
    }
    free(queue);
    tokens[n - 2] = strdup("<|begin_of_text|>");
    tokens[n - 1] = strdup("<|end_of_text|>");
    for (int64_t i = 0; i < n; i++) {
        types[i] = i >= n - 2 ? 3 : 1; /* CONTROL : NORMAL */
        if (!tokens[i]) {
            st = error_set(PAGODA_ERR_OUT_OF_MEMORY, "gen-model: no memory for the vocabulary");
            goto done;
        }
    }
    if (!st) st = gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
    if (!st) st = gguf_writer_set_str(w, "tokenizer.ggml.pre", s->tokenizer_pre);
    if (!st) st = gguf_writer_set_str_array(w, "tokenizer.ggml.tokens", (const char *const *)tokens,
                                            (uint64_t)n);
    if (!st) st = gguf_writer_set_array(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types,
                                        (uint64_t)n);
    if (!st) st = gguf_writer_set_str_array(w, "tokenizer.ggml.merges", (const char *const *)merges,
                                            (uint64_t)(n_merged > 0 ? n_merged : 0));
    if (!st) st = gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)(n - 2));
    if (!st) st = gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)(n - 1));
    if (!st) st = gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", strcmp(s->arch, "qwen2") != 0);
done:
    for (int64_t i = 0; tokens && i < n; i++) free(tokens[i]);
    for (int64_t i = 0; merges && i < n_merged; i++) free(merges[i]);
    free(tokens);
    free(merges);
    free(types);
    return st;
}

/* Opens the --vocab-from file and returns its vocabulary size. */
static pagoda_status open_vocab(const char *path, gguf_file **out, int64_t *n_vocab) {
    pagoda_status st = gguf_open(path, out);
    if (st) return error_prefix(st, "--vocab-from");
    const gguf_kv *tokens = gguf_get_array(*out, "tokenizer.ggml.tokens", GGUF_TYPE_STRING);
    if (!tokens || tokens->array_len < 1 || tokens->array_len > INT32_MAX) {
        gguf_close(*out);
        *out = NULL;
        return error_set(PAGODA_ERR_FORMAT, "--vocab-from %s: no tokenizer.ggml.tokens array", path);
    }
    *n_vocab = (int64_t)tokens->array_len;
    return PAGODA_OK;
}

/* Copies every tokenizer.* key of `f`. */
static pagoda_status copy_tokenizer(gguf_writer *w, const gguf_file *f) {
    pagoda_status st = PAGODA_OK;
    for (int64_t i = 0; i < gguf_n_kv(f) && !st; i++) {
        const gguf_kv *kv = gguf_kv_at(f, i);
        if (kv->key.len > 10 && memcmp(kv->key.data, "tokenizer.", 10) == 0)
            st = gguf_writer_set_kv(w, kv);
    }
    return st;
}

/* ---- Metadata -------------------------------------------------------------------------------- */

static pagoda_status add_metadata(gguf_writer *w, const gen_model_options *o, int64_t n_vocab) {
    const gen_model_shape *s = &o->shape;
    char key[128], name[128];
#define ARCH_KEY(suffix) (snprintf(key, sizeof key, "%s.%s", s->arch, suffix), key)
    snprintf(name, sizeof name, "%s (random weights, seed %llu)", s->name, (unsigned long long)o->seed);
    pagoda_status st = gguf_writer_set_str(w, "general.architecture", s->arch);
    if (!st) st = gguf_writer_set_str(w, "general.name", name);
    if (!st) st = gguf_writer_set_u32(w, ARCH_KEY("context_length"), (uint32_t)s->n_ctx);
    if (!st) st = gguf_writer_set_u32(w, ARCH_KEY("embedding_length"), (uint32_t)s->n_embd);
    if (!st) st = gguf_writer_set_u32(w, ARCH_KEY("feed_forward_length"), (uint32_t)s->n_ff);
    if (!st) st = gguf_writer_set_u32(w, ARCH_KEY("block_count"), (uint32_t)s->n_layer);
    if (!st) st = gguf_writer_set_u32(w, ARCH_KEY("attention.head_count"), (uint32_t)s->n_head);
    if (!st) st = gguf_writer_set_u32(w, ARCH_KEY("attention.head_count_kv"), (uint32_t)s->n_head_kv);
    if (!st) st = gguf_writer_set_f32(w, ARCH_KEY("rope.freq_base"), s->rope_base);
    if (!st) st = gguf_writer_set_f32(w, ARCH_KEY("attention.layer_norm_rms_epsilon"), s->rms_eps);
    if (!st && s->head_dim * s->n_head != s->n_embd) { /* as the converter does for head_dim */
        st = gguf_writer_set_u32(w, ARCH_KEY("attention.key_length"), (uint32_t)s->head_dim);
        if (!st) st = gguf_writer_set_u32(w, ARCH_KEY("attention.value_length"), (uint32_t)s->head_dim);
    }
    if (!st) st = gguf_writer_set_u32(w, "general.file_type", gen_model_file_type(o->type));
    if (!st && strcmp(s->arch, "llama") == 0) {
        st = gguf_writer_set_u32(w, ARCH_KEY("vocab_size"), (uint32_t)n_vocab);
        if (!st) st = gguf_writer_set_u32(w, ARCH_KEY("rope.dimension_count"), (uint32_t)s->head_dim);
    }
    if (!st) st = gguf_writer_set_u32(w, "general.quantization_version", 2);
#undef ARCH_KEY
    return st;
}

/* ---- Tensors ------------------------------------------------------------------------------- */

typedef enum tensor_kind { KIND_MATRIX, KIND_NORM, KIND_BIAS, KIND_ROPE_FREQS } tensor_kind;

typedef struct gen_state gen_state;

typedef struct gen_tensor {
    gen_state *g;
    char name[64];
    tensor_kind kind;
    int64_t index;      /* position in the file, also the random stream id */
    int64_t ne[2];      /* ne[0] row length, ne[1] rows (1 for vectors) */
    uint32_t type;
    uint64_t n_bytes;
} gen_tensor;

struct gen_state {
    const gen_model_options *o;
    gen_tensor *tensors;  /* [n_tensors] */
    int64_t n_tensors;
    float *row;           /* [max ne[0]] scratch for one row of f32 values */
    uint64_t bytes_done, bytes_total;
};

/* rope_freqs.weight: Llama 3.1's per-pair frequency divisors (convert_hf_to_gguf.py's formula). */
static void rope_llama3_factors(const gen_model_shape *s, float *out, int64_t n_pairs) {
    double low_wavelen = (double)s->rope_orig_ctx / s->rope_low_freq_factor;
    double high_wavelen = (double)s->rope_orig_ctx / s->rope_high_freq_factor;
    for (int64_t i = 0; i < n_pairs; i++) {
        double freq = 1.0 / pow((double)s->rope_base, (double)(2 * i) / (double)s->head_dim);
        double wavelen = 2.0 * M_PI / freq;
        if (wavelen < high_wavelen) {
            out[i] = 1.0f;
        } else if (wavelen > low_wavelen) {
            out[i] = s->rope_factor;
        } else {
            double smooth = ((double)s->rope_orig_ctx / wavelen - s->rope_low_freq_factor) /
                            (s->rope_high_freq_factor - s->rope_low_freq_factor);
            out[i] = (float)(1.0 / ((1.0 - smooth) / s->rope_factor + smooth));
        }
    }
}

static pagoda_status fill_tensor(void *ctx, const char *name, int64_t row0, int64_t n_rows,
                                 void *dst, size_t n_bytes) {
    gen_tensor *t = ctx;
    gen_state *g = t->g;
    size_t row_bytes = n_bytes / (size_t)n_rows;
    for (int64_t r = 0; r < n_rows; r++) {
        float *row = g->row;
        int64_t n = t->ne[0];
        if (t->kind == KIND_ROPE_FREQS) {
            rope_llama3_factors(&g->o->shape, row, n);
        } else {
            random_row(row, n, g->o->seed, t->index, row0 + r);
            for (int64_t i = 0; i < n; i++) row[i] *= 0.02f;
            if (t->kind == KIND_NORM)
                for (int64_t i = 0; i < n; i++) row[i] += 1.0f;
        }
        pagoda_status st = quantize_row(t->type, row, (uint8_t *)dst + (size_t)r * row_bytes, n);
        if (st) return error_prefix(st, "%s", name);
    }
    g->bytes_done += n_bytes;
    if (g->o->progress)
        g->o->progress(g->o->progress_ctx, t->name, t->index, g->n_tensors, g->bytes_done,
                       g->bytes_total);
    return PAGODA_OK;
}

/* Lists every tensor of the model in file order. */
static pagoda_status plan_tensors(gen_state *g, int64_t n_vocab) {
    const gen_model_shape *s = &g->o->shape;
    int64_t n_q = s->n_head * s->head_dim, n_kv = s->n_head_kv * s->head_dim;
    int64_t cap = 3 + s->n_layer * 12;
    g->tensors = calloc((size_t)cap, sizeof *g->tensors);
    if (!g->tensors) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "gen-model: no memory");
    uint32_t wt = g->o->type;
#define ADD(kind_, type_, ne0_, ne1_, ...)                                             \
    do {                                                                               \
        gen_tensor *t = &g->tensors[g->n_tensors];                                     \
        snprintf(t->name, sizeof t->name, __VA_ARGS__);                                \
        t->g = g, t->kind = kind_, t->type = type_, t->ne[0] = ne0_, t->ne[1] = ne1_;  \
        t->index = g->n_tensors++;                                                     \
    } while (0)
    if (s->rope_llama3) ADD(KIND_ROPE_FREQS, DTYPE_F32, s->head_dim / 2, 1, "rope_freqs.weight");
    ADD(KIND_MATRIX, wt, s->n_embd, n_vocab, "token_embd.weight");
    for (int64_t l = 0; l < s->n_layer; l++) {
        ADD(KIND_NORM, DTYPE_F32, s->n_embd, 1, "blk.%lld.attn_norm.weight", (long long)l);
        ADD(KIND_MATRIX, wt, s->n_embd, n_q, "blk.%lld.attn_q.weight", (long long)l);
        ADD(KIND_MATRIX, wt, s->n_embd, n_kv, "blk.%lld.attn_k.weight", (long long)l);
        ADD(KIND_MATRIX, wt, s->n_embd, n_kv, "blk.%lld.attn_v.weight", (long long)l);
        if (s->qkv_bias) {
            ADD(KIND_BIAS, DTYPE_F32, n_q, 1, "blk.%lld.attn_q.bias", (long long)l);
            ADD(KIND_BIAS, DTYPE_F32, n_kv, 1, "blk.%lld.attn_k.bias", (long long)l);
            ADD(KIND_BIAS, DTYPE_F32, n_kv, 1, "blk.%lld.attn_v.bias", (long long)l);
        }
        ADD(KIND_MATRIX, wt, n_q, s->n_embd, "blk.%lld.attn_output.weight", (long long)l);
        ADD(KIND_NORM, DTYPE_F32, s->n_embd, 1, "blk.%lld.ffn_norm.weight", (long long)l);
        ADD(KIND_MATRIX, wt, s->n_embd, s->n_ff, "blk.%lld.ffn_gate.weight", (long long)l);
        ADD(KIND_MATRIX, wt, s->n_embd, s->n_ff, "blk.%lld.ffn_up.weight", (long long)l);
        ADD(KIND_MATRIX, wt, s->n_ff, s->n_embd, "blk.%lld.ffn_down.weight", (long long)l);
    }
    ADD(KIND_NORM, DTYPE_F32, s->n_embd, 1, "output_norm.weight");
    if (!s->tied) ADD(KIND_MATRIX, wt, s->n_embd, n_vocab, "output.weight");
#undef ADD
    int64_t max_row = 0;
    for (int64_t i = 0; i < g->n_tensors; i++) {
        gen_tensor *t = &g->tensors[i];
        size_t row_bytes;
        if (!dtype_row_bytes(t->type, t->ne[0], &row_bytes))
            return error_set(PAGODA_ERR_INVALID_ARGUMENT, "gen-model: tensor '%s' has rows of %lld "
                             "elements, not a multiple of %s's block of %d; pick another --type",
                             t->name, (long long)t->ne[0], dtype_name(t->type),
                             dtype_get_info(t->type)->block_elems);
        t->n_bytes = (uint64_t)row_bytes * (uint64_t)t->ne[1];
        g->bytes_total += t->n_bytes;
        if (t->ne[0] > max_row) max_row = t->ne[0];
    }
    g->row = malloc((size_t)max_row * sizeof *g->row);
    if (!g->row) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "gen-model: no memory");
    return PAGODA_OK;
}

static pagoda_status check_shape(const gen_model_options *o) {
    const gen_model_shape *s = &o->shape;
    if (strcmp(s->arch, "llama") != 0 && strcmp(s->arch, "qwen2") != 0)
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "gen-model: unknown architecture '%s'", s->arch);
    const int64_t limit = (int64_t)1 << 24;
    if (s->n_vocab < 259 || s->n_vocab > (int64_t)1 << 22 || s->n_ctx < 1 || s->n_ctx > UINT32_MAX ||
        s->n_embd < 1 || s->n_embd > limit || s->n_layer < 1 || s->n_layer > 4096 ||
        s->n_head < 1 || s->n_head_kv < 1 || s->n_head % s->n_head_kv != 0 || s->head_dim < 2 ||
        s->head_dim % 2 != 0 || s->n_head * s->head_dim > limit || s->n_ff < 1 || s->n_ff > limit ||
        !(s->rope_base > 1) || !(s->rms_eps > 0))
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "gen-model: inconsistent shape (vocab %lld "
                         "(>= 259), embd %lld, layers %lld, heads %lld/%lld, head_dim %lld, ffn %lld)",
                         (long long)s->n_vocab, (long long)s->n_embd, (long long)s->n_layer,
                         (long long)s->n_head, (long long)s->n_head_kv, (long long)s->head_dim,
                         (long long)s->n_ff);
    if (!quantize_supported(o->type))
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "gen-model: cannot produce weights of type %s",
                         dtype_name(o->type));
    return PAGODA_OK;
}

/* ---- Writing --------------------------------------------------------------------------------- */

pagoda_status gen_model_write(const gen_model_options *o, const char *path) {
    pagoda_status st = check_shape(o);
    if (st) return st;
    gguf_writer *w = NULL;
    gguf_file *vocab = NULL;
    gen_state g = {.o = o};
    gen_model_shape shape = o->shape; /* with the vocabulary size that applies */
    st = gguf_writer_init(&w);
    if (!st && o->vocab_from) st = open_vocab(o->vocab_from, &vocab, &shape.n_vocab);
    if (!st) st = add_metadata(w, o, shape.n_vocab);
    if (!st) st = vocab ? copy_tokenizer(w, vocab) : add_synth_tokenizer(w, &shape);
    gguf_close(vocab);
    int64_t n_vocab = shape.n_vocab;
    if (!st) st = plan_tensors(&g, n_vocab);
    for (int64_t i = 0; !st && i < g.n_tensors; i++) {
        gen_tensor *t = &g.tensors[i];
        int64_t ne[2] = {t->ne[0], t->ne[1]};
        st = gguf_writer_add_tensor_fn(w, t->name, t->type, t->ne[1] > 1 || t->kind == KIND_MATRIX ? 2 : 1,
                                       ne, fill_tensor, t);
    }
    if (!st) st = gguf_writer_write(w, path);
    gguf_writer_free(w);
    free(g.tensors);
    free(g.row);
    return st;
}
