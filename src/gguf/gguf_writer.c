/* gguf/gguf_writer.c - the GGUF writer declared in gguf/gguf.h (format spelled out there).
 *
 * Implements: metadata of every value type (scalars, strings, arrays of fixed-size types and of
 * strings), tensors whose bytes are borrowed from the caller or produced on demand by a fill
 * callback (so a multi-gigabyte model is streamed, never held in memory), and gguf_writer_write(),
 * which lays out a version-3 file exactly as the reference Python writer (gguf-py) does:
 *
 *     header | kv pairs | tensor infos | zero pad to alignment | tensor 0 | pad | tensor 1 | pad ...
 *
 * Each tensor's offset is a multiple of the alignment (`general.alignment` when set as a u32,
 * else 32) and every tensor, the last one included, is followed by zero padding up to the next
 * multiple. The file is written to "<path>.tmp.XXXXXX" in the same directory and renamed over
 * `path` only when every byte is out, so a failed write never leaves a half file behind.
 *
 * Does not implement: big-endian files, nested arrays, split (sharded) files.
 */
#include "gguf/gguf.h" /* defines: gguf_writer_*, gguf_value_type_bytes, GGUF_DEFAULT_ALIGNMENT */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/dtype.h" /* defines: dtype_get_info, dtype_row_bytes, dtype_name */
#include "core/error.h" /* defines: error_set, error_prefix */

/* One metadata pair. The value is kept already encoded as it goes in the file after the type
 * field (for an array: element type, count, elements), so writing it is one fwrite. */
typedef struct writer_kv {
    char *key;
    gguf_value_type type;
    uint8_t *payload;       /* [payload_bytes] encoded value */
    size_t payload_bytes;
} writer_kv;

typedef struct writer_tensor {
    char *name;
    uint32_t type;                /* a dtype */
    uint32_t n_dims;
    int64_t ne[GGUF_MAX_DIMS];    /* extents, ne[0] fastest; unused dims are 1 */
    size_t n_bytes;               /* bytes of data (without padding) */
    size_t row_bytes;             /* bytes of one row of ne[0] elements */
    int64_t n_rows;               /* ne[1] * ne[2] * ne[3] */
    const void *data;             /* [n_bytes] borrowed bytes, or NULL when `fill` is set */
    gguf_writer_fill_fn fill;     /* produces rows on demand (NULL when `data` is set) */
    void *fill_ctx;
} writer_tensor;

struct gguf_writer {
    writer_kv *kvs;           /* [n_kvs] in insertion order */
    int64_t n_kvs, cap_kvs;
    writer_tensor *tensors;   /* [n_tensors] in insertion order */
    int64_t n_tensors, cap_tensors;
};

/* Little-endian encoding helpers (the host is little-endian x86-64, but spell it out). */
static void put_le(uint8_t *dst, uint64_t v, size_t n_bytes) {
    for (size_t i = 0; i < n_bytes; i++) dst[i] = (uint8_t)(v >> (8 * i));
}

/* ---- Construction ------------------------------------------------------------------------- */

pagoda_status gguf_writer_init(gguf_writer **out) {
    *out = calloc(1, sizeof **out);
    if (!*out) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "gguf writer: out of memory");
    return PAGODA_OK;
}

void gguf_writer_free(gguf_writer *w) {
    if (!w) return;
    for (int64_t i = 0; i < w->n_kvs; i++) {
        free(w->kvs[i].key);
        free(w->kvs[i].payload);
    }
    for (int64_t i = 0; i < w->n_tensors; i++) free(w->tensors[i].name);
    free(w->kvs);
    free(w->tensors);
    free(w);
}

/* Grows an array of `elem_bytes` elements so that one more fits. */
static bool grow(void **items, int64_t n, int64_t *cap, size_t elem_bytes) {
    if (n < *cap) return true;
    int64_t new_cap = *cap ? *cap * 2 : 16;
    void *grown = realloc(*items, (size_t)new_cap * elem_bytes);
    if (!grown) return false;
    *items = grown;
    *cap = new_cap;
    return true;
}

/* Stores `payload` (ownership taken, freed on failure) under `key`, replacing an earlier value
 * of the same key in place so the key keeps its position. */
static pagoda_status set_kv(gguf_writer *w, const char *key, gguf_value_type type,
                            uint8_t *payload, size_t payload_bytes) {
    if (!w || !key || !*key) {
        free(payload);
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "gguf writer: empty metadata key");
    }
    for (int64_t i = 0; i < w->n_kvs; i++) {
        if (strcmp(w->kvs[i].key, key) == 0) {
            free(w->kvs[i].payload);
            w->kvs[i].type = type;
            w->kvs[i].payload = payload;
            w->kvs[i].payload_bytes = payload_bytes;
            return PAGODA_OK;
        }
    }
    char *key_copy = strdup(key);
    if (!key_copy || !grow((void **)&w->kvs, w->n_kvs, &w->cap_kvs, sizeof *w->kvs)) {
        free(key_copy);
        free(payload);
        return error_set(PAGODA_ERR_OUT_OF_MEMORY, "gguf writer: out of memory adding '%s'", key);
    }
    w->kvs[w->n_kvs++] = (writer_kv){key_copy, type, payload, payload_bytes};
    return PAGODA_OK;
}

static pagoda_status set_scalar(gguf_writer *w, const char *key, gguf_value_type type,
                                uint64_t bits) {
    size_t n_bytes = gguf_value_type_bytes(type);
    uint8_t *payload = malloc(n_bytes);
    if (!payload) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "gguf writer: out of memory");
    put_le(payload, bits, n_bytes);
    return set_kv(w, key, type, payload, n_bytes);
}

pagoda_status gguf_writer_set_u8(gguf_writer *w, const char *key, uint8_t value) {
    return set_scalar(w, key, GGUF_TYPE_UINT8, value);
}
pagoda_status gguf_writer_set_i8(gguf_writer *w, const char *key, int8_t value) {
    return set_scalar(w, key, GGUF_TYPE_INT8, (uint8_t)value);
}
pagoda_status gguf_writer_set_u16(gguf_writer *w, const char *key, uint16_t value) {
    return set_scalar(w, key, GGUF_TYPE_UINT16, value);
}
pagoda_status gguf_writer_set_i16(gguf_writer *w, const char *key, int16_t value) {
    return set_scalar(w, key, GGUF_TYPE_INT16, (uint16_t)value);
}
pagoda_status gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t value) {
    return set_scalar(w, key, GGUF_TYPE_UINT32, value);
}
pagoda_status gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t value) {
    return set_scalar(w, key, GGUF_TYPE_INT32, (uint32_t)value);
}
pagoda_status gguf_writer_set_u64(gguf_writer *w, const char *key, uint64_t value) {
    return set_scalar(w, key, GGUF_TYPE_UINT64, value);
}
pagoda_status gguf_writer_set_i64(gguf_writer *w, const char *key, int64_t value) {
    return set_scalar(w, key, GGUF_TYPE_INT64, (uint64_t)value);
}
pagoda_status gguf_writer_set_f32(gguf_writer *w, const char *key, float value) {
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    return set_scalar(w, key, GGUF_TYPE_FLOAT32, bits);
}
pagoda_status gguf_writer_set_f64(gguf_writer *w, const char *key, double value) {
    uint64_t bits;
    memcpy(&bits, &value, sizeof bits);
    return set_scalar(w, key, GGUF_TYPE_FLOAT64, bits);
}
pagoda_status gguf_writer_set_bool(gguf_writer *w, const char *key, bool value) {
    return set_scalar(w, key, GGUF_TYPE_BOOL, value ? 1 : 0);
}

pagoda_status gguf_writer_set_str(gguf_writer *w, const char *key, const char *value) {
    if (!value) return error_set(PAGODA_ERR_INVALID_ARGUMENT, "gguf writer: NULL string for '%s'",
                                 key ? key : "");
    size_t len = strlen(value);
    uint8_t *payload = malloc(8 + len);
    if (!payload) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "gguf writer: out of memory");
    put_le(payload, len, 8);
    memcpy(payload + 8, value, len);
    return set_kv(w, key, GGUF_TYPE_STRING, payload, 8 + len);
}

pagoda_status gguf_writer_set_array(gguf_writer *w, const char *key, gguf_value_type elem_type,
                                    const void *data, uint64_t n) {
    size_t elem_bytes = gguf_value_type_bytes(elem_type);
    if (elem_bytes == 0)
        return error_set(PAGODA_ERR_INVALID_ARGUMENT,
                         "gguf writer: '%s': array element type %d is not a fixed-size type",
                         key ? key : "", (int)elem_type);
    if (n > (SIZE_MAX - 12) / elem_bytes || (n > 0 && !data))
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "gguf writer: '%s': bad array of %llu elements",
                         key ? key : "", (unsigned long long)n);
    size_t data_bytes = (size_t)n * elem_bytes;
    uint8_t *payload = malloc(12 + data_bytes);
    if (!payload) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "gguf writer: out of memory");
    put_le(payload, (uint32_t)elem_type, 4);
    put_le(payload + 4, n, 8);
    if (data_bytes) memcpy(payload + 12, data, data_bytes); /* host order is little-endian */
    if (elem_type == GGUF_TYPE_BOOL)
        for (size_t i = 0; i < n; i++) payload[12 + i] = payload[12 + i] ? 1 : 0;
    return set_kv(w, key, GGUF_TYPE_ARRAY, payload, 12 + data_bytes);
}

pagoda_status gguf_writer_set_str_array(gguf_writer *w, const char *key,
                                        const char *const *strings, uint64_t n) {
    if (n > 0 && !strings)
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "gguf writer: '%s': NULL string array",
                         key ? key : "");
    size_t total = 12;
    for (uint64_t i = 0; i < n; i++) {
        if (!strings[i])
            return error_set(PAGODA_ERR_INVALID_ARGUMENT, "gguf writer: '%s': string %llu is NULL",
                             key ? key : "", (unsigned long long)i);
        size_t len = strlen(strings[i]);
        if (len > SIZE_MAX - 8 - total)
            return error_set(PAGODA_ERR_INVALID_ARGUMENT, "gguf writer: '%s': array too large",
                             key ? key : "");
        total += 8 + len;
    }
    uint8_t *payload = malloc(total);
    if (!payload) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "gguf writer: out of memory");
    put_le(payload, GGUF_TYPE_STRING, 4);
    put_le(payload + 4, n, 8);
    size_t pos = 12;
    for (uint64_t i = 0; i < n; i++) {
        size_t len = strlen(strings[i]);
        put_le(payload + pos, len, 8);
        memcpy(payload + pos + 8, strings[i], len);
        pos += 8 + len;
    }
    return set_kv(w, key, GGUF_TYPE_ARRAY, payload, total);
}

pagoda_status gguf_writer_set_kv(gguf_writer *w, const gguf_kv *kv) {
    char *key = kv ? strndup(kv->key.data, kv->key.len) : NULL;
    if (!key) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "gguf writer: out of memory");
    pagoda_status st;
    size_t elem = gguf_value_type_bytes(kv->type);
    if (elem) { /* re-encode the decoded scalar */
        uint64_t bits = kv->value.u64;
        if (kv->type == GGUF_TYPE_FLOAT32) {
            float f = (float)kv->value.f64;
            uint32_t b32;
            memcpy(&b32, &f, 4);
            bits = b32;
        }
        st = set_scalar(w, key, kv->type, bits); /* integers: the low bytes of u64/i64 */
    } else if (kv->type == GGUF_TYPE_STRING) {
        uint8_t *payload = malloc(8 + kv->value.str.len);
        if (!payload) {
            free(key);
            return error_set(PAGODA_ERR_OUT_OF_MEMORY, "gguf writer: out of memory");
        }
        put_le(payload, kv->value.str.len, 8);
        memcpy(payload + 8, kv->value.str.data, kv->value.str.len);
        st = set_kv(w, key, GGUF_TYPE_STRING, payload, 8 + kv->value.str.len);
    } else if (kv->type == GGUF_TYPE_ARRAY && gguf_value_type_bytes(kv->array_type)) {
        st = gguf_writer_set_array(w, key, kv->array_type, kv->array_data, kv->array_len);
    } else if (kv->type == GGUF_TYPE_ARRAY && kv->array_type == GGUF_TYPE_STRING &&
               kv->array_strings) {
        size_t total = 12;
        for (uint64_t i = 0; i < kv->array_len; i++) total += 8 + kv->array_strings[i].len;
        uint8_t *payload = malloc(total);
        if (!payload) {
            free(key);
            return error_set(PAGODA_ERR_OUT_OF_MEMORY, "gguf writer: out of memory");
        }
        put_le(payload, GGUF_TYPE_STRING, 4);
        put_le(payload + 4, kv->array_len, 8);
        size_t pos = 12;
        for (uint64_t i = 0; i < kv->array_len; i++) {
            put_le(payload + pos, kv->array_strings[i].len, 8);
            memcpy(payload + pos + 8, kv->array_strings[i].data, kv->array_strings[i].len);
            pos += 8 + kv->array_strings[i].len;
        }
        st = set_kv(w, key, GGUF_TYPE_ARRAY, payload, total);
    } else {
        st = error_set(PAGODA_ERR_UNSUPPORTED, "gguf writer: cannot copy '%s' (a nested array)", key);
    }
    free(key);
    return st;
}

/* Validates a tensor description and fills in its sizes. */
static pagoda_status add_tensor(gguf_writer *w, writer_tensor *t, const char *name,
                                uint32_t type, uint32_t n_dims, const int64_t *ne) {
    if (!w || !name || !*name)
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "gguf writer: empty tensor name");
    const dtype_info *info = dtype_get_info(type);
    if (!info)
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "gguf writer: tensor '%s': unknown type %u",
                         name, type);
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS || !ne)
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "gguf writer: tensor '%s': %u dimensions "
                         "(must be 1..%d)", name, n_dims, GGUF_MAX_DIMS);
    for (int64_t i = 0; i < w->n_tensors; i++)
        if (strcmp(w->tensors[i].name, name) == 0)
            return error_set(PAGODA_ERR_INVALID_ARGUMENT, "gguf writer: duplicate tensor '%s'", name);
    memset(t, 0, sizeof *t);
    t->type = type;
    t->n_dims = n_dims;
    t->n_rows = 1;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
        t->ne[d] = d < n_dims ? ne[d] : 1;
        if (t->ne[d] < 1)
            return error_set(PAGODA_ERR_INVALID_ARGUMENT, "gguf writer: tensor '%s': extent %u is %lld",
                             name, d, (long long)t->ne[d]);
        if (d > 0) {
            if (t->n_rows > INT64_MAX / t->ne[d])
                return error_set(PAGODA_ERR_INVALID_ARGUMENT, "gguf writer: tensor '%s' is too large",
                                 name);
            t->n_rows *= t->ne[d];
        }
    }
    if (!dtype_row_bytes(type, t->ne[0], &t->row_bytes))
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "gguf writer: tensor '%s': row length %lld is "
                         "not a multiple of %s's block of %d", name, (long long)t->ne[0],
                         info->name, info->block_elems);
    if ((uint64_t)t->n_rows > (SIZE_MAX / 2) / (t->row_bytes ? t->row_bytes : 1))
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "gguf writer: tensor '%s' is too large", name);
    t->n_bytes = t->row_bytes * (size_t)t->n_rows;
    t->name = strdup(name);
    if (!t->name || !grow((void **)&w->tensors, w->n_tensors, &w->cap_tensors, sizeof *w->tensors)) {
        free(t->name);
        return error_set(PAGODA_ERR_OUT_OF_MEMORY, "gguf writer: out of memory adding '%s'", name);
    }
    w->tensors[w->n_tensors++] = *t;
    return PAGODA_OK;
}

pagoda_status gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t type,
                                     uint32_t n_dims, const int64_t *ne, const void *data,
                                     size_t n_bytes) {
    writer_tensor t;
    pagoda_status st = add_tensor(w, &t, name, type, n_dims, ne);
    if (st != PAGODA_OK) return st;
    writer_tensor *added = &w->tensors[w->n_tensors - 1];
    if (added->n_bytes != n_bytes || !data) {
        free(added->name);
        w->n_tensors--;
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "gguf writer: tensor '%s' needs %zu bytes of "
                         "data, got %zu%s", name, t.n_bytes, n_bytes, data ? "" : " (NULL)");
    }
    added->data = data;
    return PAGODA_OK;
}

pagoda_status gguf_writer_add_tensor_fn(gguf_writer *w, const char *name, uint32_t type,
                                        uint32_t n_dims, const int64_t *ne,
                                        gguf_writer_fill_fn fill, void *ctx) {
    if (!fill)
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "gguf writer: tensor '%s': NULL fill function",
                         name ? name : "");
    writer_tensor t;
    pagoda_status st = add_tensor(w, &t, name, type, n_dims, ne);
    if (st != PAGODA_OK) return st;
    w->tensors[w->n_tensors - 1].fill = fill;
    w->tensors[w->n_tensors - 1].fill_ctx = ctx;
    return PAGODA_OK;
}

/* ---- Writing ------------------------------------------------------------------------------ */

/* The output file plus what error messages need. */
typedef struct out_file {
    FILE *f;
    const char *path;     /* the final path, for messages */
    uint64_t pos;         /* bytes written so far */
} out_file;

static pagoda_status out_write(out_file *o, const void *data, size_t n_bytes) {
    if (n_bytes && fwrite(data, 1, n_bytes, o->f) != n_bytes)
        return error_set(PAGODA_ERR_IO, "%s: write failed: %s", o->path, strerror(errno));
    o->pos += n_bytes;
    return PAGODA_OK;
}

static pagoda_status out_le(out_file *o, uint64_t v, size_t n_bytes) {
    uint8_t buf[8];
    put_le(buf, v, n_bytes);
    return out_write(o, buf, n_bytes);
}

static pagoda_status out_string(out_file *o, const char *s) {
    size_t len = strlen(s);
    pagoda_status st = out_le(o, len, 8);
    return st != PAGODA_OK ? st : out_write(o, s, len);
}

static pagoda_status out_pad(out_file *o, uint32_t alignment) {
    static const uint8_t zeros[256];
    uint64_t pad = (alignment - o->pos % alignment) % alignment;
    while (pad > 0) {
        size_t n = pad < sizeof zeros ? (size_t)pad : sizeof zeros;
        pagoda_status st = out_write(o, zeros, n);
        if (st != PAGODA_OK) return st;
        pad -= n;
    }
    return PAGODA_OK;
}

/* The alignment the file will declare: `general.alignment` if set (must be a u32 power of two),
 * else the default. */
static pagoda_status writer_alignment(const gguf_writer *w, uint32_t *out) {
    *out = GGUF_DEFAULT_ALIGNMENT;
    for (int64_t i = 0; i < w->n_kvs; i++) {
        if (strcmp(w->kvs[i].key, "general.alignment") != 0) continue;
        if (w->kvs[i].type != GGUF_TYPE_UINT32)
            return error_set(PAGODA_ERR_INVALID_ARGUMENT,
                             "gguf writer: general.alignment must be a u32");
        const uint8_t *p = w->kvs[i].payload;
        uint32_t a = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                     (uint32_t)p[3] << 24;
        if (a == 0 || (a & (a - 1)) != 0)
            return error_set(PAGODA_ERR_INVALID_ARGUMENT,
                             "gguf writer: general.alignment %u is not a power of two", a);
        *out = a;
    }
    return PAGODA_OK;
}

/* Streams one tensor's bytes: borrowed data in one go, or fill-callback rows in chunks of about
 * 4 MiB through `chunk` (chunk_bytes long). */
static pagoda_status write_tensor_data(out_file *o, const writer_tensor *t, uint8_t *chunk,
                                       size_t chunk_bytes) {
    if (t->data) return out_write(o, t->data, t->n_bytes);
    int64_t rows_per_chunk = t->row_bytes ? (int64_t)(chunk_bytes / t->row_bytes) : 1;
    if (rows_per_chunk < 1) rows_per_chunk = 1;
    for (int64_t row = 0; row < t->n_rows; row += rows_per_chunk) {
        int64_t n = t->n_rows - row < rows_per_chunk ? t->n_rows - row : rows_per_chunk;
        size_t n_bytes = (size_t)n * t->row_bytes;
        pagoda_status st = t->fill(t->fill_ctx, t->name, row, n, chunk, n_bytes);
        if (st != PAGODA_OK) return error_prefix(st, "tensor '%s'", t->name);
        st = out_write(o, chunk, n_bytes);
        if (st != PAGODA_OK) return st;
    }
    return PAGODA_OK;
}

static pagoda_status write_all(const gguf_writer *w, out_file *o, uint32_t alignment) {
    pagoda_status st = out_write(o, "GGUF", 4);
    if (!st) st = out_le(o, 3, 4);
    if (!st) st = out_le(o, (uint64_t)w->n_tensors, 8);
    if (!st) st = out_le(o, (uint64_t)w->n_kvs, 8);
    for (int64_t i = 0; !st && i < w->n_kvs; i++) {
        st = out_string(o, w->kvs[i].key);
        if (!st) st = out_le(o, (uint32_t)w->kvs[i].type, 4);
        if (!st) st = out_write(o, w->kvs[i].payload, w->kvs[i].payload_bytes);
    }
    uint64_t offset = 0;
    for (int64_t i = 0; !st && i < w->n_tensors; i++) {
        const writer_tensor *t = &w->tensors[i];
        st = out_string(o, t->name);
        if (!st) st = out_le(o, t->n_dims, 4);
        for (uint32_t d = 0; !st && d < t->n_dims; d++) st = out_le(o, (uint64_t)t->ne[d], 8);
        if (!st) st = out_le(o, t->type, 4);
        if (!st) st = out_le(o, offset, 8);
        offset += (t->n_bytes + alignment - 1) / alignment * alignment;
    }
    if (!st) st = out_pad(o, alignment);
    if (st) return st;

    size_t chunk_bytes = 0;
    for (int64_t i = 0; i < w->n_tensors; i++)
        if (w->tensors[i].fill) {
            size_t want = (size_t)4 << 20;
            if (w->tensors[i].row_bytes > want) want = w->tensors[i].row_bytes;
            if (want > chunk_bytes) chunk_bytes = want;
        }
    uint8_t *chunk = NULL;
    if (chunk_bytes && !(chunk = malloc(chunk_bytes)))
        return error_set(PAGODA_ERR_OUT_OF_MEMORY, "gguf writer: out of memory");
    for (int64_t i = 0; !st && i < w->n_tensors; i++) {
        st = write_tensor_data(o, &w->tensors[i], chunk, chunk_bytes);
        if (!st) st = out_pad(o, alignment);
    }
    free(chunk);
    return st;
}

pagoda_status gguf_writer_write(gguf_writer *w, const char *path) {
    if (!w || !path || !*path)
        return error_set(PAGODA_ERR_INVALID_ARGUMENT, "gguf writer: no output path");
    uint32_t alignment;
    pagoda_status st = writer_alignment(w, &alignment);
    if (st != PAGODA_OK) return st;

    size_t path_len = strlen(path);
    char *tmp_path = malloc(path_len + 16);
    if (!tmp_path) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "gguf writer: out of memory");
    snprintf(tmp_path, path_len + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp_path);
    if (fd < 0) {
        st = error_set(PAGODA_ERR_IO, "%s: cannot create a temporary file next to it: %s", path,
                       strerror(errno));
        free(tmp_path);
        return st;
    }
    (void)fchmod(fd, 0644); /* mkstemp makes 0600; a model file is meant to be shared */
    out_file o = {fdopen(fd, "wb"), path, 0};
    if (!o.f) {
        st = error_set(PAGODA_ERR_IO, "%s: %s", tmp_path, strerror(errno));
        close(fd);
    } else {
        setvbuf(o.f, NULL, _IOFBF, 1 << 20);
        st = write_all(w, &o, alignment);
        if (fflush(o.f) != 0 && st == PAGODA_OK)
            st = error_set(PAGODA_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        if (fclose(o.f) != 0 && st == PAGODA_OK)
            st = error_set(PAGODA_ERR_IO, "%s: close failed: %s", path, strerror(errno));
    }
    if (st == PAGODA_OK && rename(tmp_path, path) != 0)
        st = error_set(PAGODA_ERR_IO, "%s: cannot rename %s into place: %s", path, tmp_path,
                       strerror(errno));
    if (st != PAGODA_OK) unlink(tmp_path);
    free(tmp_path);
    return st;
}
