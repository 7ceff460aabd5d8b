/* model/model.c - reading hyper-parameters from GGUF metadata and binding weights, with every
 * shape and type checked, so the forward pass (llama.c) can trust what it is given. */
#include "model/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"          /* defines: dtype_name, dtype_row_bytes */
#include "core/error.h"          /* defines: error_set */
#include "kernels/ref/dequant.h" /* defines: dequant_row */

enum { MAX_HEAD_DIM = 512, MAX_LAYERS = 1024 };

static pagoda_status get_hparam_u32(const gguf_file *f, const char *arch, const char *suffix, uint32_t *out,
                                    bool required) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    if (gguf_get_u32(f, key, out)) return PAGODA_OK;
    if (!required) return PAGODA_ERR_FORMAT; /* no message: the caller picks a default */
    return gguf_require_u32(f, key, out);
}

static pagoda_status get_hparam_f32(const gguf_file *f, const char *arch, const char *suffix, float *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    return gguf_get_f32(f, key, out) ? PAGODA_OK : PAGODA_ERR_FORMAT;
}

static pagoda_status read_hparams(const gguf_file *f, model_hparams *hp) {
    gguf_string arch;
    if (!gguf_get_str(f, "general.architecture", &arch))
        return error_set(PAGODA_ERR_FORMAT, "%s: metadata key 'general.architecture' is missing", gguf_path(f));
    if (gguf_string_eq(arch, "llama")) hp->arch = MODEL_ARCH_LLAMA, hp->rope = ROPE_STYLE_NORMAL;
    else if (gguf_string_eq(arch, "qwen2")) hp->arch = MODEL_ARCH_QWEN2, hp->rope = ROPE_STYLE_NEOX;
    else
        return error_set(PAGODA_ERR_UNSUPPORTED, "%s: architecture '%.*s' is not supported (supported: llama, "
                         "qwen2; Mistral and SmolLM2 files use 'llama')", gguf_path(f),
                         (int)(arch.len > 40 ? 40 : arch.len), arch.data);
    snprintf(hp->arch_name, sizeof hp->arch_name, "%.*s", (int)arch.len, arch.data);
    const char *a = hp->arch_name;
    uint32_t v;
    pagoda_status st;
    if ((st = get_hparam_u32(f, a, "embedding_length", &v, true))) return st;
    hp->n_embd = (int32_t)v;
    if ((st = get_hparam_u32(f, a, "block_count", &v, true))) return st;
    hp->n_layer = (int32_t)v;
    if ((st = get_hparam_u32(f, a, "feed_forward_length", &v, true))) return st;
    hp->n_ff = (int32_t)v;
    if ((st = get_hparam_u32(f, a, "attention.head_count", &v, true))) return st;
    hp->n_head = (int32_t)v;
    hp->n_head_kv = get_hparam_u32(f, a, "attention.head_count_kv", &v, false) ? hp->n_head : (int32_t)v;
    hp->n_ctx_train = get_hparam_u32(f, a, "context_length", &v, false) ? 2048 : (int32_t)v;
    if (hp->n_embd <= 0 || hp->n_head <= 0 || hp->n_head_kv <= 0 || hp->n_layer <= 0 || hp->n_ff <= 0 ||
        hp->n_layer > MAX_LAYERS || hp->n_head % hp->n_head_kv != 0 || hp->n_ctx_train <= 0)
        return error_set(PAGODA_ERR_FORMAT, "%s: inconsistent hyper-parameters (n_embd %d, n_layer %d, n_ff %d, "
                         "n_head %d, n_head_kv %d, context %d)", gguf_path(f), hp->n_embd, hp->n_layer,
                         hp->n_ff, hp->n_head, hp->n_head_kv, hp->n_ctx_train);
    hp->head_dim = get_hparam_u32(f, a, "attention.key_length", &v, false) ? hp->n_embd / hp->n_head : (int32_t)v;
    if (hp->head_dim <= 0 || hp->head_dim > MAX_HEAD_DIM || hp->head_dim % 2 != 0)
        return error_set(PAGODA_ERR_UNSUPPORTED, "%s: head dimension %d is not supported (even, at most %d)",
                         gguf_path(f), hp->head_dim, MAX_HEAD_DIM);
    hp->n_rot = get_hparam_u32(f, a, "rope.dimension_count", &v, false) ? hp->head_dim : (int32_t)v;
    if (hp->n_rot <= 0 || hp->n_rot > hp->head_dim || hp->n_rot % 2 != 0)
        return error_set(PAGODA_ERR_FORMAT, "%s: rope.dimension_count %d does not fit head dimension %d",
                         gguf_path(f), hp->n_rot, hp->head_dim);
    if (get_hparam_f32(f, a, "attention.layer_norm_rms_epsilon", &hp->rms_eps)) hp->rms_eps = 1e-5f;
    if (get_hparam_f32(f, a, "rope.freq_base", &hp->rope_base)) hp->rope_base = 10000.0f;
    if (!(hp->rms_eps > 0) || !(hp->rope_base > 1))
        return error_set(PAGODA_ERR_FORMAT, "%s: bad rms epsilon %g or rope base %g", gguf_path(f),
                         (double)hp->rms_eps, (double)hp->rope_base);
    return PAGODA_OK;
}

/* Finds a tensor and checks its extents; ne1 < 0 means "a vector of ne0". */
static pagoda_status find_tensor(const gguf_file *f, const char *name, int64_t ne0, int64_t ne1, bool required,
                                 const gguf_tensor **out) {
    const gguf_tensor *t = gguf_find_tensor(f, name);
    *out = t;
    if (!t) {
        if (!required) return PAGODA_OK;
        return error_set(PAGODA_ERR_FORMAT, "%s: tensor '%s' is missing", gguf_path(f), name);
    }
    bool ok = ne1 < 0 ? (t->n_dims == 1 && t->ne[0] == ne0)
                      : (t->n_dims == 2 && t->ne[0] == ne0 && t->ne[1] == ne1);
    if (!ok)
        return error_set(PAGODA_ERR_FORMAT, "%s: tensor '%s' has shape [%lld, %lld] (%u dims), expected [%lld%s%lld]",
                         gguf_path(f), name, (long long)t->ne[0], (long long)t->ne[1], t->n_dims,
                         (long long)ne0, ne1 < 0 ? "" : ", ", ne1 < 0 ? 0LL : (long long)ne1);
    if (!backend_matrix_type_supported(t->type))
        return error_set(PAGODA_ERR_UNSUPPORTED, "%s: tensor '%s' has type %s, which Pagoda cannot compute with yet",
                         gguf_path(f), name, dtype_name(t->type));
    return PAGODA_OK;
}

static pagoda_status bind_matrix(const gguf_file *f, const char *name, int64_t n_cols, int64_t n_rows,
                                 backend_matrix *out) {
    const gguf_tensor *t;
    pagoda_status st = find_tensor(f, name, n_cols, n_rows, true, &t);
    if (st) return st;
    size_t row_bytes;
    dtype_row_bytes(t->type, n_cols, &row_bytes); /* validated by the reader */
    *out = (backend_matrix){t->type, n_cols, n_rows, row_bytes, t->data};
    return PAGODA_OK;
}

/* A float vector: the tensor itself when F32 (and 4-byte aligned), else a converted copy. */
static pagoda_status bind_vector(model *m, const char *name, int64_t n, bool required, const float **out) {
    const gguf_tensor *t;
    *out = NULL;
    pagoda_status st = find_tensor(m->file, name, n, -1, required, &t);
    if (st || !t) return st;
    if (t->type == DTYPE_F32 && ((uintptr_t)t->data & 3) == 0) {
        *out = t->data;
        return PAGODA_OK;
    }
    float *copy = malloc((size_t)n * sizeof *copy);
    float **owned = realloc(m->owned, (size_t)(m->n_owned + 1) * sizeof *owned);
    if (!copy || !owned) {
        free(copy);
        if (owned) m->owned = owned;
        return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory for tensor '%s'", name);
    }
    m->owned = owned;
    m->owned[m->n_owned++] = copy;
    if ((st = dequant_row(t->type, t->data, copy, n))) return st;
    *out = copy;
    return PAGODA_OK;
}

static pagoda_status bind_layer(model *m, int il, model_layer *l) {
    const model_hparams *hp = &m->hp;
    int64_t n_q = (int64_t)hp->n_head * hp->head_dim, n_kv = (int64_t)hp->n_head_kv * hp->head_dim;
    char name[96];
    pagoda_status st;
#define NAME(suffix) (snprintf(name, sizeof name, "blk.%d.%s", il, suffix), name)
    if ((st = bind_vector(m, NAME("attn_norm.weight"), hp->n_embd, true, &l->attn_norm)) ||
        (st = bind_matrix(m->file, NAME("attn_q.weight"), hp->n_embd, n_q, &l->wq)) ||
        (st = bind_matrix(m->file, NAME("attn_k.weight"), hp->n_embd, n_kv, &l->wk)) ||
        (st = bind_matrix(m->file, NAME("attn_v.weight"), hp->n_embd, n_kv, &l->wv)) ||
        (st = bind_matrix(m->file, NAME("attn_output.weight"), n_q, hp->n_embd, &l->wo)) ||
        (st = bind_vector(m, NAME("attn_q.bias"), n_q, false, &l->bq)) ||
        (st = bind_vector(m, NAME("attn_k.bias"), n_kv, false, &l->bk)) ||
        (st = bind_vector(m, NAME("attn_v.bias"), n_kv, false, &l->bv)) ||
        (st = bind_vector(m, NAME("ffn_norm.weight"), hp->n_embd, true, &l->ffn_norm)) ||
        (st = bind_matrix(m->file, NAME("ffn_gate.weight"), hp->n_embd, hp->n_ff, &l->w_gate)) ||
        (st = bind_matrix(m->file, NAME("ffn_up.weight"), hp->n_embd, hp->n_ff, &l->w_up)) ||
        (st = bind_matrix(m->file, NAME("ffn_down.weight"), hp->n_ff, hp->n_embd, &l->w_down)))
        return st;
#undef NAME
    return PAGODA_OK;
}

/* inv_freq[i] = base^(-2i/n_rot), then divided by the scaling the metadata asks for: a
 * `rope_freqs.weight` tensor of per-pair factors, Llama 3.1's "llama3" scaling, or "linear". */
static pagoda_status init_rope(model *m) {
    const model_hparams *hp = &m->hp;
    int half = hp->n_rot / 2;
    m->rope_inv_freq = malloc((size_t)half * sizeof(float));
    if (!m->rope_inv_freq) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory for rope frequencies");
    for (int i = 0; i < half; i++)
        m->rope_inv_freq[i] = (float)pow((double)hp->rope_base, -2.0 * i / hp->n_rot);

    const float *factors;
    pagoda_status st = bind_vector(m, "rope_freqs.weight", half, false, &factors);
    if (st) return st;
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", hp->arch_name);
    gguf_string type = {0};
    bool has_type = gguf_get_str(m->file, key, &type);
    float factor = 1;
    snprintf(key, sizeof key, "%s.rope.scaling.factor", hp->arch_name);
    gguf_get_f32(m->file, key, &factor);
    if (factors) {
        for (int i = 0; i < half; i++) m->rope_inv_freq[i] /= factors[i];
    } else if (has_type && gguf_string_eq(type, "llama3")) {
        float low = 1, high = 4, orig = 8192;
        snprintf(key, sizeof key, "%s.rope.scaling.low_freq_factor", hp->arch_name);
        gguf_get_f32(m->file, key, &low);
        snprintf(key, sizeof key, "%s.rope.scaling.high_freq_factor", hp->arch_name);
        gguf_get_f32(m->file, key, &high);
        snprintf(key, sizeof key, "%s.rope.scaling.original_context_length", hp->arch_name);
        gguf_get_f32(m->file, key, &orig);
        if (!(factor > 0) || !(high > low) || !(orig > 0))
            return error_set(PAGODA_ERR_FORMAT, "%s: bad llama3 rope scaling (factor %g, low %g, high %g)",
                             gguf_path(m->file), (double)factor, (double)low, (double)high);
        double low_wavelen = orig / low, high_wavelen = orig / high;
        for (int i = 0; i < half; i++) {
            double freq = m->rope_inv_freq[i], wavelen = 2 * M_PI / freq;
            if (wavelen > low_wavelen) freq /= factor;
            else if (wavelen >= high_wavelen) {
                double smooth = (orig / wavelen - low) / (high - low);
                freq = (1 - smooth) * freq / factor + smooth * freq;
            }
            m->rope_inv_freq[i] = (float)freq;
        }
    } else if (has_type && gguf_string_eq(type, "linear") && factor > 0) {
        for (int i = 0; i < half; i++) m->rope_inv_freq[i] /= factor;
    } else if (has_type && !gguf_string_eq(type, "none")) {
        return error_set(PAGODA_ERR_UNSUPPORTED, "%s: rope scaling '%.*s' is not supported (llama3, linear)",
                         gguf_path(m->file), (int)(type.len > 32 ? 32 : type.len), type.data);
    }
    return PAGODA_OK;
}

pagoda_status model_load_gguf(gguf_file *file, model **out) {
    *out = NULL;
    model *m = calloc(1, sizeof *m);
    if (!m) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory for the model");
    m->file = file;
    model_hparams *hp = &m->hp;
    pagoda_status st = read_hparams(file, hp);
    if (st) goto fail;
    const gguf_tensor *embd = gguf_find_tensor(file, "token_embd.weight");
    if (!embd || embd->n_dims != 2) {
        st = error_set(PAGODA_ERR_FORMAT, "%s: tensor 'token_embd.weight' is missing or not 2-D", gguf_path(file));
        goto fail;
    }
    if (embd->ne[1] > INT32_MAX) {
        st = error_set(PAGODA_ERR_FORMAT, "%s: vocabulary of %lld tokens is too large", gguf_path(file),
                       (long long)embd->ne[1]);
        goto fail;
    }
    hp->n_vocab = (int32_t)embd->ne[1];
    if ((st = bind_matrix(file, "token_embd.weight", hp->n_embd, hp->n_vocab, &m->tok_embd)) ||
        (st = bind_vector(m, "output_norm.weight", hp->n_embd, true, &m->output_norm)))
        goto fail;
    hp->tied_output = gguf_find_tensor(file, "output.weight") == NULL;
    if (hp->tied_output) m->output = m->tok_embd;
    else if ((st = bind_matrix(file, "output.weight", hp->n_embd, hp->n_vocab, &m->output)))
        goto fail;
    m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->layers) {
        st = error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory for %d layers", hp->n_layer);
        goto fail;
    }
    for (int il = 0; il < hp->n_layer; il++)
        if ((st = bind_layer(m, il, &m->layers[il]))) goto fail;
    if ((st = init_rope(m))) goto fail;
    *out = m;
    return PAGODA_OK;
fail:
    m->file = NULL; /* the caller keeps the file on failure */
    model_free(m);
    return st;
}

void model_free(model *m) {
    if (!m) return;
    for (int i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned);
    free(m->layers);
    free(m->rope_inv_freq);
    gguf_close(m->file);
    free(m);
}
