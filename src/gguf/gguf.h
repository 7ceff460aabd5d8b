/* gguf/gguf.h - reading and writing GGUF files (versions 2 and 3).
 *
 * The format, little-endian throughout:
 *   1. magic "GGUF" (4 bytes), version (u32), n_tensors (u64), n_kv (u64).
 *      (Version 1 used u32 counts and string lengths; it is rejected as unsupported.)
 *   2. n_kv metadata pairs: key (string), value type (u32), value.
 *      A string is a u64 byte length then the bytes (UTF-8, no terminator).
 *      An array is element type (u32), count (u64), then the elements back to back.
 *   3. n_tensors tensor infos: name (string), n_dims (u32, 1..4), n_dims u64 extents
 *      (ne[0] is the fastest-varying, i.e. the row length), type (u32, a dtype), and
 *      offset (u64) relative to the start of the data section, a multiple of the alignment.
 *   4. padding up to `general.alignment` (u32 key, default 32, a power of two), then the data
 *      section holding every tensor's bytes.
 *
 * The reader maps the file read-only; strings and tensor data are zero-copy views into the map
 * and live until gguf_close(). Every count, length and offset is checked against the file size
 * before use, so a truncated or hostile file yields PAGODA_ERR_FORMAT with a message, never a
 * crash or an allocation larger than the file justifies.
 *
 * The writer builds a file in memory-light fashion: metadata and tensor infos are kept in lists,
 * tensor bytes are borrowed from the caller until gguf_writer_write() streams them out.
 */
#ifndef PAGODA_GGUF_H
#define PAGODA_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pagoda.h" /* defines: pagoda_status */

typedef enum gguf_value_type {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
    GGUF_TYPE_COUNT,
} gguf_value_type;

enum { GGUF_MAX_DIMS = 4, GGUF_DEFAULT_ALIGNMENT = 32 };

/* A string inside the mapped file: `len` bytes at `data`, NOT NUL-terminated. */
typedef struct gguf_string {
    const char *data;
    uint64_t len;
} gguf_string;

typedef struct gguf_kv {
    gguf_string key;
    gguf_value_type type;
    union {                /* valid when type is not ARRAY */
        uint64_t u64;      /* UINT8/16/32/64 and BOOL (0 or 1) */
        int64_t i64;       /* INT8/16/32/64 */
        double f64;        /* FLOAT32/64 */
        gguf_string str;   /* STRING */
    } value;
    /* valid when type is ARRAY */
    gguf_value_type array_type;   /* element type; nested arrays are parsed but not readable */
    uint64_t array_len;           /* number of elements */
    const uint8_t *array_data;    /* raw little-endian elements (fixed-size types; may be unaligned) */
    gguf_string *array_strings;   /* array_len strings when array_type is STRING, else NULL */
} gguf_kv;

typedef struct gguf_tensor {
    gguf_string name;
    uint32_t n_dims;                /* 1..GGUF_MAX_DIMS */
    int64_t ne[GGUF_MAX_DIMS];      /* extents, ne[0] fastest; unused dims are 1 */
    uint32_t type;                  /* a dtype (core/dtype.h) */
    uint64_t offset;                /* from the start of the data section */
    size_t n_bytes;                 /* bytes of data */
    int64_t n_elems;                /* product of ne */
    const void *data;               /* view into the map: n_bytes bytes */
} gguf_tensor;

typedef struct gguf_file gguf_file;

/* Opens and validates a GGUF file. Errors: PAGODA_ERR_IO (cannot open/map),
 * PAGODA_ERR_FORMAT (bad magic, truncated, inconsistent), PAGODA_ERR_UNSUPPORTED (version 1 or
 * later than 3, unknown tensor type). */
pagoda_status gguf_open(const char *path, gguf_file **out);
/* Parses a GGUF image already in memory (not copied: `data` must outlive the handle).
 * `name` is used in error messages. Same errors as gguf_open. */
pagoda_status gguf_open_memory(const void *data, size_t size, const char *name, gguf_file **out);
void gguf_close(gguf_file *file);

uint32_t gguf_version(const gguf_file *file);
uint32_t gguf_alignment(const gguf_file *file);
size_t gguf_file_bytes(const gguf_file *file);
size_t gguf_data_offset(const gguf_file *file); /* start of the data section in the file */
const char *gguf_path(const gguf_file *file);

int64_t gguf_n_kv(const gguf_file *file);
const gguf_kv *gguf_kv_at(const gguf_file *file, int64_t index);
const gguf_kv *gguf_find_kv(const gguf_file *file, const char *key); /* NULL if absent */

int64_t gguf_n_tensors(const gguf_file *file);
const gguf_tensor *gguf_tensor_at(const gguf_file *file, int64_t index);
const gguf_tensor *gguf_find_tensor(const gguf_file *file, const char *name); /* NULL if absent */

/* Typed getters. Each returns false if the key is absent or its value cannot be represented in
 * the requested type (an integer getter accepts any integer type whose value fits; the float
 * getter accepts any number). They never set the error message. */
bool gguf_get_u32(const gguf_file *file, const char *key, uint32_t *out);
bool gguf_get_i64(const gguf_file *file, const char *key, int64_t *out);
bool gguf_get_f32(const gguf_file *file, const char *key, float *out);
bool gguf_get_bool(const gguf_file *file, const char *key, bool *out);
/* The string as a view (not NUL-terminated). */
bool gguf_get_str(const gguf_file *file, const char *key, gguf_string *out);
/* A freshly malloc'd NUL-terminated copy, or NULL if absent / not a string. */
char *gguf_get_str_dup(const gguf_file *file, const char *key);
/* An array of the given element type; NULL if absent or of another type. */
const gguf_kv *gguf_get_array(const gguf_file *file, const char *key, gguf_value_type elem_type);

/* "Required" variants: like the getters, but a missing or mistyped key sets an error message
 * naming the key and returns PAGODA_ERR_FORMAT. */
pagoda_status gguf_require_u32(const gguf_file *file, const char *key, uint32_t *out);
pagoda_status gguf_require_f32(const gguf_file *file, const char *key, float *out);

/* Element access for fixed-size arrays (bounds are the caller's job: idx < kv->array_len).
 * Integer and float elements convert to the requested representation. */
int64_t gguf_array_i64(const gguf_kv *kv, uint64_t idx);
double gguf_array_f64(const gguf_kv *kv, uint64_t idx);

/* Equality of a gguf_string with a C string. */
bool gguf_string_eq(gguf_string s, const char *cstr);
/* Size of one element of a fixed-size value type, 0 for STRING/ARRAY/unknown. */
size_t gguf_value_type_bytes(gguf_value_type type);
const char *gguf_value_type_name(gguf_value_type type);

/* ---- Writer ---------------------------------------------------------------------------------- */
typedef struct gguf_writer gguf_writer;

pagoda_status gguf_writer_init(gguf_writer **out);
void gguf_writer_free(gguf_writer *writer);
/* Metadata setters copy the key and value. Setting a key twice replaces the value. */
pagoda_status gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t value);
pagoda_status gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t value);
pagoda_status gguf_writer_set_u64(gguf_writer *w, const char *key, uint64_t value);
pagoda_status gguf_writer_set_f32(gguf_writer *w, const char *key, float value);
pagoda_status gguf_writer_set_bool(gguf_writer *w, const char *key, bool value);
pagoda_status gguf_writer_set_str(gguf_writer *w, const char *key, const char *value);
/* Any fixed-size element type: `n` elements of gguf_value_type_bytes(type) bytes at `data`. */
pagoda_status gguf_writer_set_array(gguf_writer *w, const char *key, gguf_value_type elem_type,
                                    const void *data, uint64_t n);
pagoda_status gguf_writer_set_str_array(gguf_writer *w, const char *key,
                                        const char *const *strings, uint64_t n);
/* Adds a tensor whose `n_bytes` bytes at `data` are borrowed until gguf_writer_write() returns.
 * n_bytes must equal what the type and extents require. */
pagoda_status gguf_writer_add_tensor(gguf_writer *w, const char *name, uint32_t type,
                                     uint32_t n_dims, const int64_t *ne, const void *data,
                                     size_t n_bytes);
/* Writes a version-3 file. Errors: PAGODA_ERR_IO. */
pagoda_status gguf_writer_write(gguf_writer *w, const char *path);

/* Writer additions (gguf/gguf_writer.c): setters for the remaining scalar types, and tensors
 * produced on demand so a large model is streamed instead of held in memory.
 * gguf_writer_write() also returns PAGODA_ERR_INVALID_ARGUMENT when `general.alignment` is not
 * a u32 power of two, and passes on any error a fill function returns. */
pagoda_status gguf_writer_set_u8(gguf_writer *w, const char *key, uint8_t value);
pagoda_status gguf_writer_set_i8(gguf_writer *w, const char *key, int8_t value);
pagoda_status gguf_writer_set_u16(gguf_writer *w, const char *key, uint16_t value);
pagoda_status gguf_writer_set_i16(gguf_writer *w, const char *key, int16_t value);
pagoda_status gguf_writer_set_i64(gguf_writer *w, const char *key, int64_t value);
pagoda_status gguf_writer_set_f64(gguf_writer *w, const char *key, double value);
/* Copies a metadata pair read by the reader (any type, strings with embedded NULs, arrays of
 * fixed-size types or strings; nested arrays give PAGODA_ERR_UNSUPPORTED). */
pagoda_status gguf_writer_set_kv(gguf_writer *w, const gguf_kv *kv);
/* Produces rows [row0, row0 + n_rows) of tensor `name` into `dst` (n_bytes = n_rows * the
 * bytes of one row of ne[0] elements in the tensor's type). Called in row order, from inside
 * gguf_writer_write(), in chunks of a few MiB. Returns PAGODA_OK or an error (with error_set). */
typedef pagoda_status (*gguf_writer_fill_fn)(void *ctx, const char *name, int64_t row0,
                                             int64_t n_rows, void *dst, size_t n_bytes);
/* Adds a tensor whose bytes `fill` produces during gguf_writer_write(); `ctx` is passed back
 * and must stay valid until then. */
pagoda_status gguf_writer_add_tensor_fn(gguf_writer *w, const char *name, uint32_t type,
                                        uint32_t n_dims, const int64_t *ne,
                                        gguf_writer_fill_fn fill, void *ctx);

#endif
