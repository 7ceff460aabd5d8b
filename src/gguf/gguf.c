/* gguf/gguf.c - the GGUF reader: maps a file, validates every count, length and offset against
 * the file size, and exposes metadata and tensors as zero-copy views. The format is described in
 * gguf.h; the writer lives in gguf_writer.c.
 *
 * Allocation is bounded by the file: each metadata pair, array string and tensor info needs at least
 * 8 bytes in the file, so counts are checked against the bytes left before anything is allocated.
 */
#include "gguf/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/dtype.h" /* defines: dtype_get_info, dtype_row_bytes, dtype_name */
#include "core/error.h" /* defines: error_set */

enum { GGUF_MAX_ARRAY_DEPTH = 4, GGUF_MAX_KEY_BYTES = 65535, GGUF_MAX_NAME_BYTES = 65535 };

struct gguf_file {
    char *path;              /* for messages */
    const uint8_t *base;     /* the whole file image */
    size_t size;             /* bytes in the image */
    bool mapped;             /* munmap on close */
    uint32_t version;
    uint32_t alignment;
    size_t data_offset;      /* start of the data section */
    int64_t n_kv;
    gguf_kv *kvs;            /* [n_kv] */
    int64_t n_tensors;
    gguf_tensor *tensors;    /* [n_tensors] */
};

/* A cursor over the image; every read checks the bytes left. */
typedef struct reader {
    const gguf_file *file;
    size_t pos;
} reader;

static pagoda_status truncated(const reader *r, const char *what) {
    return error_set(PAGODA_ERR_FORMAT,
                     "%s: truncated or corrupt GGUF file: %s at byte %zu runs past the end (%zu bytes)",
                     r->file->path, what, r->pos, r->file->size);
}

static size_t bytes_left(const reader *r) { return r->file->size - r->pos; }

static pagoda_status read_bytes(reader *r, void *out, size_t n, const char *what) {
    if (bytes_left(r) < n) return truncated(r, what);
    memcpy(out, r->file->base + r->pos, n);
    r->pos += n;
    return PAGODA_OK;
}

static pagoda_status read_u32(reader *r, uint32_t *out, const char *what) {
    return read_bytes(r, out, 4, what);
}

static pagoda_status read_u64(reader *r, uint64_t *out, const char *what) {
    return read_bytes(r, out, 8, what);
}

static pagoda_status read_string(reader *r, gguf_string *out, const char *what) {
    uint64_t len = 0;
    pagoda_status st = read_u64(r, &len, what);
    if (st) return st;
    if (len > bytes_left(r)) return truncated(r, what);
    out->data = (const char *)(r->file->base + r->pos);
    out->len = len;
    r->pos += (size_t)len;
    return PAGODA_OK;
}

size_t gguf_value_type_bytes(gguf_value_type type) {
    switch (type) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_INT8: case GGUF_TYPE_BOOL: return 1;
    case GGUF_TYPE_UINT16: case GGUF_TYPE_INT16: return 2;
    case GGUF_TYPE_UINT32: case GGUF_TYPE_INT32: case GGUF_TYPE_FLOAT32: return 4;
    case GGUF_TYPE_UINT64: case GGUF_TYPE_INT64: case GGUF_TYPE_FLOAT64: return 8;
    default: return 0;
    }
}

const char *gguf_value_type_name(gguf_value_type type) {
    static const char *names[GGUF_TYPE_COUNT] = {
        "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "str", "arr", "u64", "i64", "f64"};
    return (unsigned)type < GGUF_TYPE_COUNT ? names[type] : "unknown";
}

/* Decodes one fixed-size little-endian scalar at p into the kv's value union. */
static void decode_scalar(gguf_value_type type, const uint8_t *p, gguf_kv *kv) {
    uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32;
    uint64_t u64; int64_t i64; float f32; double f64;
    switch (type) {
    case GGUF_TYPE_UINT8: memcpy(&u8, p, 1); kv->value.u64 = u8; break;
    case GGUF_TYPE_BOOL: memcpy(&u8, p, 1); kv->value.u64 = u8 != 0; break;
    case GGUF_TYPE_INT8: memcpy(&i8, p, 1); kv->value.i64 = i8; break;
    case GGUF_TYPE_UINT16: memcpy(&u16, p, 2); kv->value.u64 = u16; break;
    case GGUF_TYPE_INT16: memcpy(&i16, p, 2); kv->value.i64 = i16; break;
    case GGUF_TYPE_UINT32: memcpy(&u32, p, 4); kv->value.u64 = u32; break;
    case GGUF_TYPE_INT32: memcpy(&i32, p, 4); kv->value.i64 = i32; break;
    case GGUF_TYPE_FLOAT32: memcpy(&f32, p, 4); kv->value.f64 = f32; break;
    case GGUF_TYPE_UINT64: memcpy(&u64, p, 8); kv->value.u64 = u64; break;
    case GGUF_TYPE_INT64: memcpy(&i64, p, 8); kv->value.i64 = i64; break;
    case GGUF_TYPE_FLOAT64: memcpy(&f64, p, 8); kv->value.f64 = f64; break;
    default: break;
    }
}

/* Skips over an array's elements (used for nested arrays, which are parsed but not exposed). */
static pagoda_status skip_array(reader *r, int depth);

static pagoda_status skip_value(reader *r, uint32_t type, int depth) {
    size_t n = gguf_value_type_bytes((gguf_value_type)type);
    if (n) {
        if (bytes_left(r) < n) return truncated(r, "array element");
        r->pos += n;
        return PAGODA_OK;
    }
    if (type == GGUF_TYPE_STRING) {
        gguf_string s;
        return read_string(r, &s, "string array element");
    }
    if (type == GGUF_TYPE_ARRAY) return skip_array(r, depth + 1);
    return error_set(PAGODA_ERR_FORMAT, "%s: unknown metadata value type %u at byte %zu",
                     r->file->path, type, r->pos);
}

static pagoda_status skip_array(reader *r, int depth) {
    if (depth > GGUF_MAX_ARRAY_DEPTH)
        return error_set(PAGODA_ERR_FORMAT, "%s: arrays nested deeper than %d levels",
                         r->file->path, GGUF_MAX_ARRAY_DEPTH);
    uint32_t type;
    uint64_t n;
    pagoda_status st = read_u32(r, &type, "array type");
    if (!st) st = read_u64(r, &n, "array length");
    if (st) return st;
    size_t elem = gguf_value_type_bytes((gguf_value_type)type);
    if (elem) { /* fixed size: one bounds check */
        if (n > bytes_left(r) / elem) return truncated(r, "array data");
        r->pos += (size_t)n * elem;
        return PAGODA_OK;
    }
    if (type != GGUF_TYPE_STRING && type != GGUF_TYPE_ARRAY)
        return error_set(PAGODA_ERR_FORMAT, "%s: unknown array element type %u", r->file->path, type);
    if (n > bytes_left(r) / 8) return truncated(r, "array data");
    for (uint64_t i = 0; i < n; i++) {
        st = skip_value(r, type, depth);
        if (st) return st;
    }
    return PAGODA_OK;
}

static pagoda_status read_kv(reader *r, gguf_kv *kv) {
    pagoda_status st = read_string(r, &kv->key, "metadata key");
    if (st) return st;
    if (kv->key.len == 0 || kv->key.len > GGUF_MAX_KEY_BYTES)
        return error_set(PAGODA_ERR_FORMAT, "%s: metadata key of length %llu at byte %zu",
                         r->file->path, (unsigned long long)kv->key.len, r->pos);
    uint32_t type;
    if ((st = read_u32(r, &type, "metadata value type"))) return st;
    if (type >= GGUF_TYPE_COUNT)
        return error_set(PAGODA_ERR_FORMAT, "%s: key '%.*s' has unknown value type %u",
                         r->file->path, (int)kv->key.len, kv->key.data, type);
    kv->type = (gguf_value_type)type;
    if (type == GGUF_TYPE_STRING) return read_string(r, &kv->value.str, "metadata string");
    if (type != GGUF_TYPE_ARRAY) {
        size_t n = gguf_value_type_bytes(kv->type);
        if (bytes_left(r) < n) return truncated(r, "metadata value");
        decode_scalar(kv->type, r->file->base + r->pos, kv);
        r->pos += n;
        return PAGODA_OK;
    }
    /* An array: remember where its elements start, then walk them. */
    uint32_t elem_type;
    uint64_t n;
    if ((st = read_u32(r, &elem_type, "array type")) || (st = read_u64(r, &n, "array length")))
        return st;
    if (elem_type >= GGUF_TYPE_COUNT)
        return error_set(PAGODA_ERR_FORMAT, "%s: key '%.*s' is an array of unknown type %u",
                         r->file->path, (int)kv->key.len, kv->key.data, elem_type);
    kv->array_type = (gguf_value_type)elem_type;
    kv->array_len = n;
    kv->array_data = r->file->base + r->pos;
    size_t elem = gguf_value_type_bytes(kv->array_type);
    if (elem) {
        if (n > bytes_left(r) / elem) return truncated(r, "array data");
        r->pos += (size_t)n * elem;
        return PAGODA_OK;
    }
    if (n > bytes_left(r) / 8) return truncated(r, "array data"); /* each element >= 8 bytes */
    if (elem_type == GGUF_TYPE_ARRAY) {
        for (uint64_t i = 0; i < n; i++)
            if ((st = skip_array(r, 1))) return st;
        return PAGODA_OK;
    }
    kv->array_strings = malloc((size_t)(n ? n : 1) * sizeof *kv->array_strings);
    if (!kv->array_strings)
        return error_set(PAGODA_ERR_OUT_OF_MEMORY, "%s: no memory for %llu strings", r->file->path,
                         (unsigned long long)n);
    for (uint64_t i = 0; i < n; i++)
        if ((st = read_string(r, &kv->array_strings[i], "string array element"))) return st;
    return PAGODA_OK;
}

static pagoda_status read_tensor_info(reader *r, int64_t index, gguf_tensor *t) {
    const char *path = r->file->path;
    pagoda_status st = read_string(r, &t->name, "tensor name");
    if (st) return st;
    if (t->name.len == 0 || t->name.len > GGUF_MAX_NAME_BYTES)
        return error_set(PAGODA_ERR_FORMAT, "%s: tensor %lld has a name of length %llu", path,
                         (long long)index, (unsigned long long)t->name.len);
    int name_len = (int)t->name.len;
    if ((st = read_u32(r, &t->n_dims, "tensor dimension count"))) return st;
    if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS)
        return error_set(PAGODA_ERR_FORMAT, "%s: tensor '%.*s' has %u dimensions (1 to %d allowed)",
                         path, name_len, t->name.data, t->n_dims, GGUF_MAX_DIMS);
    uint64_t n_elems = 1;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) {
        uint64_t extent = 1;
        if ((uint32_t)d < t->n_dims && (st = read_u64(r, &extent, "tensor extent"))) return st;
        if (extent == 0 || extent > (uint64_t)INT64_MAX / n_elems)
            return error_set(PAGODA_ERR_FORMAT, "%s: tensor '%.*s' has an invalid extent %llu in dim %d",
                             path, name_len, t->name.data, (unsigned long long)extent, d);
        t->ne[d] = (int64_t)extent;
        n_elems *= extent;
    }
    t->n_elems = (int64_t)n_elems;
    if ((st = read_u32(r, &t->type, "tensor type"))) return st;
    const dtype_info *info = dtype_get_info(t->type);
    if (!info)
        return error_set(PAGODA_ERR_UNSUPPORTED, "%s: tensor '%.*s' has unknown type id %u", path,
                         name_len, t->name.data, t->type);
    if (t->ne[0] % info->block_elems != 0)
        return error_set(PAGODA_ERR_FORMAT,
                         "%s: tensor '%.*s' has rows of %lld elements, not a multiple of %s's block of %d",
                         path, name_len, t->name.data, (long long)t->ne[0], info->name,
                         info->block_elems);
    size_t n_bytes;
    if (!dtype_row_bytes(t->type, t->n_elems, &n_bytes))
        return error_set(PAGODA_ERR_FORMAT, "%s: tensor '%.*s' is too large", path, name_len,
                         t->name.data);
    t->n_bytes = n_bytes;
    return read_u64(r, &t->offset, "tensor offset");
}

static uint64_t hash_name(const char *s, size_t n) { /* FNV-1a, for duplicate detection */
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

/* Rejects duplicate keys or tensor names; O(n) expected with a small open-addressing set. */
static pagoda_status check_unique(const gguf_file *f, const gguf_string *names, size_t stride,
                                  int64_t n, const char *what) {
    if (n < 2) return PAGODA_OK;
    size_t cap = 1;
    while (cap < (size_t)n * 2) cap <<= 1;
    int64_t *slots = malloc(cap * sizeof *slots);
    if (!slots) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "%s: no memory", f->path);
    for (size_t i = 0; i < cap; i++) slots[i] = -1;
    pagoda_status st = PAGODA_OK;
    for (int64_t i = 0; i < n && !st; i++) {
        const gguf_string *s = (const gguf_string *)((const char *)names + (size_t)i * stride);
        size_t slot = hash_name(s->data, s->len) & (cap - 1);
        while (slots[slot] >= 0) {
            const gguf_string *o =
                (const gguf_string *)((const char *)names + (size_t)slots[slot] * stride);
            if (o->len == s->len && memcmp(o->data, s->data, s->len) == 0) {
                st = error_set(PAGODA_ERR_FORMAT, "%s: duplicate %s '%.*s'", f->path, what,
                               (int)s->len, s->data);
                break;
            }
            slot = (slot + 1) & (cap - 1);
        }
        slots[slot] = i;
    }
    free(slots);
    return st;
}

static pagoda_status parse(gguf_file *f) {
    reader r = {f, 0};
    char magic[4];
    pagoda_status st = read_bytes(&r, magic, 4, "magic");
    if (st) return error_set(PAGODA_ERR_FORMAT, "%s: not a GGUF file (only %zu bytes)", f->path, f->size);
    if (memcmp(magic, "GGUF", 4) != 0)
        return error_set(PAGODA_ERR_FORMAT, "%s: not a GGUF file (bad magic)", f->path);
    if ((st = read_u32(&r, &f->version, "version"))) return st;
    if (f->version == 1)
        return error_set(PAGODA_ERR_UNSUPPORTED, "%s: GGUF version 1 is not supported; convert the "
                         "model again with a current llama.cpp", f->path);
    if (f->version != 2 && f->version != 3)
        return error_set(PAGODA_ERR_UNSUPPORTED, "%s: GGUF version %u is not supported (2 and 3 are)",
                         f->path, f->version);
    uint64_t n_tensors, n_kv;
    if ((st = read_u64(&r, &n_tensors, "tensor count")) || (st = read_u64(&r, &n_kv, "metadata count")))
        return st;
    /* Each kv takes >= 8+1+4+1 bytes and each tensor info >= 8+1+4+8+4+8: bound before allocating. */
    if (n_kv > bytes_left(&r) / 14)
        return error_set(PAGODA_ERR_FORMAT, "%s: truncated or corrupt GGUF file: metadata count %llu is impossible for a %zu-byte file",
                         f->path, (unsigned long long)n_kv, f->size);
    if (n_tensors > bytes_left(&r) / 33)
        return error_set(PAGODA_ERR_FORMAT, "%s: truncated or corrupt GGUF file: tensor count %llu is impossible for a %zu-byte file",
                         f->path, (unsigned long long)n_tensors, f->size);
    f->n_kv = (int64_t)n_kv;
    f->n_tensors = (int64_t)n_tensors;
    f->kvs = calloc(n_kv ? n_kv : 1, sizeof *f->kvs);
    f->tensors = calloc(n_tensors ? n_tensors : 1, sizeof *f->tensors);
    if (!f->kvs || !f->tensors) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "%s: no memory", f->path);

    for (int64_t i = 0; i < f->n_kv; i++)
        if ((st = read_kv(&r, &f->kvs[i]))) return st;
    if ((st = check_unique(f, &f->kvs[0].key, sizeof(gguf_kv), f->n_kv, "metadata key"))) return st;

    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    const gguf_kv *align_kv = gguf_find_kv(f, "general.alignment");
    if (align_kv) {
        if (align_kv->type != GGUF_TYPE_UINT32)
            return error_set(PAGODA_ERR_FORMAT, "%s: general.alignment must be a u32", f->path);
        uint64_t a = align_kv->value.u64;
        if (a == 0 || (a & (a - 1)) != 0 || a > (1u << 20))
            return error_set(PAGODA_ERR_FORMAT, "%s: general.alignment %llu is not a power of two "
                             "up to 1 MiB", f->path, (unsigned long long)a);
        f->alignment = (uint32_t)a;
    }

    for (int64_t i = 0; i < f->n_tensors; i++)
        if ((st = read_tensor_info(&r, i, &f->tensors[i]))) return st;
    if ((st = check_unique(f, &f->tensors[0].name, sizeof(gguf_tensor), f->n_tensors, "tensor name")))
        return st;

    size_t data_offset = (r.pos + f->alignment - 1) / f->alignment * f->alignment;
    if (f->n_tensors > 0 && data_offset > f->size)
        return error_set(PAGODA_ERR_FORMAT, "%s: truncated GGUF file: the tensor data section "
                         "starts at byte %zu past the end (%zu bytes)", f->path, data_offset, f->size);
    f->data_offset = data_offset;
    size_t data_bytes = f->size > data_offset ? f->size - data_offset : 0;
    for (int64_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor *t = &f->tensors[i];
        if (t->offset % f->alignment != 0)
            return error_set(PAGODA_ERR_FORMAT, "%s: tensor '%.*s' offset %llu is not aligned to %u",
                             f->path, (int)t->name.len, t->name.data,
                             (unsigned long long)t->offset, f->alignment);
        if (t->offset > data_bytes || t->n_bytes > data_bytes - t->offset)
            return error_set(PAGODA_ERR_FORMAT, "%s: truncated GGUF file: tensor '%.*s' (%zu bytes at "
                             "offset %llu) runs past the end of the data section (%zu bytes)",
                             f->path, (int)t->name.len, t->name.data, t->n_bytes,
                             (unsigned long long)t->offset, data_bytes);
        t->data = f->base + data_offset + t->offset;
    }
    return PAGODA_OK;
}

static int by_offset(const void *a, const void *b, void *tensors) {
    const gguf_tensor *t = tensors;
    uint64_t x = t[*(const int64_t *)a].offset, y = t[*(const int64_t *)b].offset;
    return x < y ? -1 : x > y;
}

/* Tensor data regions must not overlap (each byte of the data section belongs to one tensor). */
static pagoda_status check_no_overlap(const gguf_file *f) {
    if (f->n_tensors < 2) return PAGODA_OK;
    int64_t *order = malloc((size_t)f->n_tensors * sizeof *order);
    if (!order) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "%s: no memory", f->path);
    for (int64_t i = 0; i < f->n_tensors; i++) order[i] = i;
    qsort_r(order, (size_t)f->n_tensors, sizeof *order, by_offset, f->tensors);
    pagoda_status st = PAGODA_OK;
    for (int64_t i = 1; i < f->n_tensors && !st; i++) {
        const gguf_tensor *prev = &f->tensors[order[i - 1]], *t = &f->tensors[order[i]];
        if (t->offset < prev->offset + prev->n_bytes)
            st = error_set(PAGODA_ERR_FORMAT, "%s: the data of tensors '%.*s' and '%.*s' overlap", f->path,
                           (int)prev->name.len, prev->name.data, (int)t->name.len, t->name.data);
    }
    free(order);
    return st;
}

static pagoda_status open_image(gguf_file *f, gguf_file **out) {
    pagoda_status st = parse(f);
    if (!st) st = check_no_overlap(f);
    if (st) {
        gguf_close(f);
        return st;
    }
    *out = f;
    return PAGODA_OK;
}

pagoda_status gguf_open_memory(const void *data, size_t size, const char *name, gguf_file **out) {
    *out = NULL;
    gguf_file *f = calloc(1, sizeof *f);
    if (!f) return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory");
    f->path = strdup(name ? name : "<memory>");
    if (!f->path) {
        free(f);
        return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory");
    }
    f->base = data;
    f->size = size;
    return open_image(f, out);
}

pagoda_status gguf_open(const char *path, gguf_file **out) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return error_set(PAGODA_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        int err = errno;
        close(fd);
        return error_set(PAGODA_ERR_IO, "%s: not a regular file%s%s", path, err ? ": " : "",
                         err ? strerror(err) : "");
    }
    size_t size = (size_t)st.st_size;
    void *map = NULL;
    if (size > 0) {
        map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            int err = errno;
            close(fd);
            return error_set(PAGODA_ERR_IO, "%s: cannot map: %s", path, strerror(err));
        }
    }
    close(fd);
    gguf_file *f = calloc(1, sizeof *f);
    if (f) f->path = strdup(path);
    if (!f || !f->path) {
        free(f);
        if (map) munmap(map, size);
        return error_set(PAGODA_ERR_OUT_OF_MEMORY, "no memory");
    }
    f->base = map;
    f->size = size;
    f->mapped = map != NULL;
    if (size == 0) {
        gguf_close(f);
        return error_set(PAGODA_ERR_FORMAT, "%s: empty file, not a GGUF model", path);
    }
    return open_image(f, out);
}

void gguf_close(gguf_file *f) {
    if (!f) return;
    if (f->kvs)
        for (int64_t i = 0; i < f->n_kv; i++) free(f->kvs[i].array_strings);
    free(f->kvs);
    free(f->tensors);
    if (f->mapped) munmap((void *)f->base, f->size);
    free(f->path);
    free(f);
}

uint32_t gguf_version(const gguf_file *f) { return f->version; }
uint32_t gguf_alignment(const gguf_file *f) { return f->alignment; }
size_t gguf_file_bytes(const gguf_file *f) { return f->size; }
size_t gguf_data_offset(const gguf_file *f) { return f->data_offset; }
const char *gguf_path(const gguf_file *f) { return f->path; }
int64_t gguf_n_kv(const gguf_file *f) { return f->n_kv; }
int64_t gguf_n_tensors(const gguf_file *f) { return f->n_tensors; }

const gguf_kv *gguf_kv_at(const gguf_file *f, int64_t i) {
    return i >= 0 && i < f->n_kv ? &f->kvs[i] : NULL;
}

const gguf_tensor *gguf_tensor_at(const gguf_file *f, int64_t i) {
    return i >= 0 && i < f->n_tensors ? &f->tensors[i] : NULL;
}

bool gguf_string_eq(gguf_string s, const char *cstr) {
    size_t n = strlen(cstr);
    return s.len == n && memcmp(s.data, cstr, n) == 0;
}

const gguf_kv *gguf_find_kv(const gguf_file *f, const char *key) {
    for (int64_t i = 0; i < f->n_kv; i++)
        if (gguf_string_eq(f->kvs[i].key, key)) return &f->kvs[i];
    return NULL;
}

const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name) {
    for (int64_t i = 0; i < f->n_tensors; i++)
        if (gguf_string_eq(f->tensors[i].name, name)) return &f->tensors[i];
    return NULL;
}

static bool is_unsigned(gguf_value_type t) {
    return t == GGUF_TYPE_UINT8 || t == GGUF_TYPE_UINT16 || t == GGUF_TYPE_UINT32 ||
           t == GGUF_TYPE_UINT64 || t == GGUF_TYPE_BOOL;
}

static bool is_signed(gguf_value_type t) {
    return t == GGUF_TYPE_INT8 || t == GGUF_TYPE_INT16 || t == GGUF_TYPE_INT32 || t == GGUF_TYPE_INT64;
}

bool gguf_get_i64(const gguf_file *f, const char *key, int64_t *out) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv) return false;
    if (is_signed(kv->type)) {
        *out = kv->value.i64;
        return true;
    }
    if (is_unsigned(kv->type) && kv->type != GGUF_TYPE_BOOL && kv->value.u64 <= (uint64_t)INT64_MAX) {
        *out = (int64_t)kv->value.u64;
        return true;
    }
    return false;
}

bool gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out) {
    int64_t v;
    if (!gguf_get_i64(f, key, &v) || v < 0 || v > (int64_t)UINT32_MAX) return false;
    *out = (uint32_t)v;
    return true;
}

bool gguf_get_f32(const gguf_file *f, const char *key, float *out) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv) return false;
    if (kv->type == GGUF_TYPE_FLOAT32 || kv->type == GGUF_TYPE_FLOAT64) *out = (float)kv->value.f64;
    else if (is_signed(kv->type)) *out = (float)kv->value.i64;
    else if (is_unsigned(kv->type) && kv->type != GGUF_TYPE_BOOL) *out = (float)kv->value.u64;
    else return false;
    return true;
}

bool gguf_get_bool(const gguf_file *f, const char *key, bool *out) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv || kv->type != GGUF_TYPE_BOOL) return false;
    *out = kv->value.u64 != 0;
    return true;
}

bool gguf_get_str(const gguf_file *f, const char *key, gguf_string *out) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv || kv->type != GGUF_TYPE_STRING) return false;
    *out = kv->value.str;
    return true;
}

char *gguf_get_str_dup(const gguf_file *f, const char *key) {
    gguf_string s;
    if (!gguf_get_str(f, key, &s)) return NULL;
    return strndup(s.data, s.len);
}

const gguf_kv *gguf_get_array(const gguf_file *f, const char *key, gguf_value_type elem_type) {
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv || kv->type != GGUF_TYPE_ARRAY || kv->array_type != elem_type) return NULL;
    return kv;
}

pagoda_status gguf_require_u32(const gguf_file *f, const char *key, uint32_t *out) {
    if (gguf_get_u32(f, key, out)) return PAGODA_OK;
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv) return error_set(PAGODA_ERR_FORMAT, "%s: required metadata key '%s' is missing", f->path, key);
    return error_set(PAGODA_ERR_FORMAT, "%s: metadata key '%s' should be a non-negative integer, not %s",
                     f->path, key, gguf_value_type_name(kv->type));
}

pagoda_status gguf_require_f32(const gguf_file *f, const char *key, float *out) {
    if (gguf_get_f32(f, key, out)) return PAGODA_OK;
    const gguf_kv *kv = gguf_find_kv(f, key);
    if (!kv) return error_set(PAGODA_ERR_FORMAT, "%s: required metadata key '%s' is missing", f->path, key);
    return error_set(PAGODA_ERR_FORMAT, "%s: metadata key '%s' should be a number, not %s", f->path,
                     key, gguf_value_type_name(kv->type));
}

int64_t gguf_array_i64(const gguf_kv *kv, uint64_t idx) {
    gguf_kv scalar = {0};
    size_t n = gguf_value_type_bytes(kv->array_type);
    if (!n) return 0;
    decode_scalar(kv->array_type, kv->array_data + idx * n, &scalar);
    if (is_signed(kv->array_type)) return scalar.value.i64;
    if (is_unsigned(kv->array_type)) return (int64_t)scalar.value.u64;
    return (int64_t)scalar.value.f64;
}

double gguf_array_f64(const gguf_kv *kv, uint64_t idx) {
    gguf_kv scalar = {0};
    size_t n = gguf_value_type_bytes(kv->array_type);
    if (!n) return 0;
    decode_scalar(kv->array_type, kv->array_data + idx * n, &scalar);
    if (is_signed(kv->array_type)) return (double)scalar.value.i64;
    if (is_unsigned(kv->array_type)) return (double)scalar.value.u64;
    return scalar.value.f64;
}
