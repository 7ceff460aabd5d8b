/* tests/test_gguf.c - the GGUF reader and writer against an independent implementation.
 *
 * References (tools/make_gguf_fixtures.py, the PyPI `gguf` package):
 *   1. tests/fixtures/gguf/{all_types,align64,tiny,v2}.gguf were written by gguf-py's GGUFWriter;
 *      their .expect sidecars list every value gguf-py's reader sees. The reader must see exactly
 *      those values (types, integers, exact float bits, strings, arrays, tensor infos, data bytes).
 *   2. Pagoda's writer, fed the same description from the .expect, must produce a file that is
 *      byte-for-byte identical to GGUFWriter's (same layout, padding and offsets).
 *   3. shared.expect describes /work/shared/models/ and tokenizer-tests/ (every .gguf) (via
 *      gguf-py's reader); checked when the shared folder exists.
 *   4. gen_<shape>.expect: what `pagoda gen-model` must write for the toy shapes, from a numpy
 *      re-implementation of gen_model.h's specification written out by GGUFWriter. The files
 *      must also load and run (finite logits) in the model code.
 * Writer features gguf-py cannot express (empty arrays, replaced keys, fill callbacks, alignment 1,
 * failures that must leave no file behind) are checked against values computed here by formula.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/cpu/cpu_backend.h" /* defines: cpu_backend_init */
#include "core/dtype.h"              /* defines: DTYPE_*, dtype_row_bytes */
#include "gguf/gguf.h"               /* defines: gguf_open, gguf_writer_*, gguf_kv, gguf_tensor */
#include "model/gen_model.h"         /* defines: gen_model_write, gen_model_find_shape */
#include "model/model.h"             /* defines: model_load_gguf, model_context_init, model_eval */
#include "pagoda.h"                  /* defines: pagoda_last_error, PAGODA_ERR_* */
#include "testlib.h"

#define FIXTURE_DIR "tests/fixtures/gguf"

/* ---- Small helpers --------------------------------------------------------------------------- */

static uint64_t fnv1a64(uint64_t h, const void *data, size_t n) {
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001B3ull;
    return h;
}
#define FNV_INIT 0xCBF29CE484222325ull

/* Decodes a hex field ("-" is empty) into a malloc'd buffer; returns its length via *out_len. */
static uint8_t *unhex(const char *hex, size_t *out_len) {
    if (strcmp(hex, "-") == 0) hex = "";
    size_t n = strlen(hex) / 2;
    uint8_t *buf = malloc(n + 1);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        buf[i] = (uint8_t)v;
    }
    buf[n] = 0;
    *out_len = n;
    return buf;
}

static bool str_eq_bytes(gguf_string s, const uint8_t *b, size_t n) {
    return s.len == n && (n == 0 || memcmp(s.data, b, n) == 0);
}

/* Raw little-endian element -> the integer / float it encodes (independent of the reader). */
static uint64_t raw_u64(const uint8_t *p, size_t n) {
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}
static int64_t raw_i64(const uint8_t *p, size_t n) {
    uint64_t v = raw_u64(p, n);
    if (n < 8 && (v >> (8 * n - 1)) & 1) v |= ~0ull << (8 * n);
    return (int64_t)v;
}
static double raw_f64(const uint8_t *p, gguf_value_type t) {
    if (t == GGUF_TYPE_FLOAT32) {
        float f;
        memcpy(&f, p, 4);
        return f;
    }
    double d;
    memcpy(&d, p, 8);
    return d;
}
static bool type_is_signed(int t) {
    return t == GGUF_TYPE_INT8 || t == GGUF_TYPE_INT16 || t == GGUF_TYPE_INT32 || t == GGUF_TYPE_INT64;
}
static bool type_is_float(int t) { return t == GGUF_TYPE_FLOAT32 || t == GGUF_TYPE_FLOAT64; }

/* Splits `line` in place at spaces; returns the number of fields (at most max). */
static int split(char *line, char **fields, int max) {
    int n = 0;
    for (char *tok = strtok(line, " "); tok && n < max; tok = strtok(NULL, " ")) fields[n++] = tok;
    return n;
}

/* ---- 1. The reader against an .expect sidecar ------------------------------------------------ */

/* Checks one scalar value field (text) against the element at `p` of type `t`. */
static bool value_matches(int t, const char *text, const uint8_t *p) {
    size_t n = gguf_value_type_bytes((gguf_value_type)t);
    if (type_is_float(t)) return raw_f64(p, (gguf_value_type)t) == strtod(text, NULL);
    if (type_is_signed(t)) return raw_i64(p, n) == strtoll(text, NULL, 10);
    return raw_u64(p, n) == strtoull(text, NULL, 10);
}

/* Checks a kv record ("kv key type value") against the reader's kv. */
static void check_kv(const char *where, const gguf_kv *kv, char **f, int nf) {
    CHECK_MSG(kv->type == (gguf_value_type)atoi(f[2]), "%s: type %d, expected %s", where, kv->type, f[2]);
    if (kv->type != (gguf_value_type)atoi(f[2]) || nf < 4) return;
    if (kv->type == GGUF_TYPE_STRING) {
        size_t n;
        uint8_t *b = unhex(f[3], &n);
        CHECK_MSG(str_eq_bytes(kv->value.str, b, n), "%s: string differs", where);
        free(b);
    } else if (type_is_float(kv->type)) {
        CHECK_MSG(kv->value.f64 == strtod(f[3], NULL), "%s: %.17g != %s", where, kv->value.f64, f[3]);
    } else if (type_is_signed(kv->type)) {
        CHECK_MSG(kv->value.i64 == strtoll(f[3], NULL, 10), "%s: %lld != %s", where,
                  (long long)kv->value.i64, f[3]);
    } else {
        CHECK_MSG(kv->value.u64 == strtoull(f[3], NULL, 10), "%s: %llu != %s", where,
                  (unsigned long long)kv->value.u64, f[3]);
    }
}

/* Checks an array record ("arr key elem_type n full v..." or "... hash h"). */
static void check_arr(const char *where, const gguf_kv *kv, char **f, int nf) {
    int et = atoi(f[2]);
    uint64_t n = strtoull(f[3], NULL, 10);
    CHECK_MSG(kv->type == GGUF_TYPE_ARRAY && kv->array_type == (gguf_value_type)et &&
              kv->array_len == n, "%s: array %d/%d/%llu, expected %s/%s", where, kv->type,
              kv->array_type, (unsigned long long)kv->array_len, f[2], f[3]);
    if (kv->type != GGUF_TYPE_ARRAY || kv->array_type != (gguf_value_type)et || kv->array_len != n)
        return;
    size_t elem = gguf_value_type_bytes((gguf_value_type)et);
    if (strcmp(f[4], "hash") == 0) {
        uint64_t h = FNV_INIT;
        if (et == GGUF_TYPE_STRING) {
            CHECK_MSG(kv->array_strings != NULL, "%s: no strings", where);
            for (uint64_t i = 0; kv->array_strings && i < n; i++) {
                uint64_t len = kv->array_strings[i].len;
                h = fnv1a64(h, &len, 8);
                h = fnv1a64(h, kv->array_strings[i].data, (size_t)len);
            }
        } else {
            h = fnv1a64(h, kv->array_data, (size_t)n * elem);
        }
        CHECK_MSG(h == strtoull(f[5], NULL, 10), "%s: array hash differs", where);
        return;
    }
    CHECK_MSG((uint64_t)(nf - 5) == n, "%s: fixture lists %d values", where, nf - 5);
    for (uint64_t i = 0; i < n && (int)(5 + i) < nf; i++) {
        const char *text = f[5 + i];
        if (et == GGUF_TYPE_STRING) {
            size_t len;
            uint8_t *b = unhex(text, &len);
            CHECK_MSG(str_eq_bytes(kv->array_strings[i], b, len), "%s[%llu]: string differs", where,
                      (unsigned long long)i);
            free(b);
            continue;
        }
        const uint8_t *p = kv->array_data + i * elem;
        CHECK_MSG(value_matches(et, text, p), "%s[%llu] != %s", where, (unsigned long long)i, text);
        /* the reader's element helpers agree where the value fits their return type */
        if (type_is_float(et))
            CHECK(gguf_array_f64(kv, i) == strtod(text, NULL));
        else if (type_is_signed(et) || strtoull(text, NULL, 10) <= (uint64_t)INT64_MAX)
            CHECK_MSG(gguf_array_i64(kv, i) == strtoll(text, NULL, 10), "%s[%llu]: gguf_array_i64",
                      where, (unsigned long long)i);
    }
}

static void check_tensor(const char *where, const gguf_file *g, const gguf_tensor *t, char **f,
                         int nf) {
    size_t name_len;
    uint8_t *name = unhex(f[1], &name_len);
    CHECK_MSG(str_eq_bytes(t->name, name, name_len), "%s: name differs", where);
    CHECK_MSG(gguf_find_tensor(g, (const char *)name) == t, "%s: gguf_find_tensor", where);
    free(name);
    uint32_t n_dims = (uint32_t)atoi(f[3]);
    CHECK_MSG(t->type == (uint32_t)atoi(f[2]) && t->n_dims == n_dims, "%s: type %u dims %u", where,
              t->type, t->n_dims);
    if (t->n_dims != n_dims || nf < (int)(7 + n_dims)) return;
    int64_t n_elems = 1;
    for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++) {
        int64_t want = d < n_dims ? strtoll(f[4 + d], NULL, 10) : 1;
        CHECK_MSG(t->ne[d] == want, "%s: ne[%u] = %lld, expected %lld", where, d,
                  (long long)t->ne[d], (long long)want);
        n_elems *= want;
    }
    CHECK(t->n_elems == n_elems);
    const char **rest = (const char **)&f[4 + n_dims];
    CHECK_MSG(t->offset == strtoull(rest[0], NULL, 10), "%s: offset %llu != %s", where,
              (unsigned long long)t->offset, rest[0]);
    CHECK_MSG(t->n_bytes == strtoull(rest[1], NULL, 10), "%s: n_bytes %zu != %s", where, t->n_bytes,
              rest[1]);
    CHECK_MSG(t->data != NULL, "%s: no data view", where);
    if (t->n_bytes != strtoull(rest[1], NULL, 10)) return;
    CHECK_MSG(fnv1a64(FNV_INIT, t->data, t->n_bytes) == strtoull(rest[2], NULL, 10),
              "%s: data hash differs", where);
    if (nf > (int)(7 + n_dims)) {
        size_t n;
        uint8_t *b = unhex(rest[3], &n);
        CHECK_MSG(n == t->n_bytes && memcmp(b, t->data, n) == 0, "%s: data bytes differ", where);
        free(b);
    }
}

/* Reads an .expect file and checks every file it describes (`base_dir` prefixes the relative
 * paths). Returns the number of files checked. */
static int check_expect(const char *expect_path, const char *base_dir) {
    size_t len;
    char *text = test_read_file(expect_path, &len);
    CHECK_MSG(text != NULL, "cannot read %s", expect_path);
    if (!text) return 0;
    enum { MAX_FIELDS = 4096 };
    char **f = malloc(MAX_FIELDS * sizeof *f);
    gguf_file *g = NULL;
    int64_t kv_i = 0, tensor_i = 0, n_files = 0;
    char where[512] = "";
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        int nf = split(line, f, MAX_FIELDS);
        if (nf == 0) continue;
        if (strcmp(f[0], "file") == 0) {
            size_t n;
            char *rel = (char *)unhex(f[1], &n);
            snprintf(where, sizeof where, "%s/%s", base_dir, rel);
            free(rel);
            pagoda_status st = gguf_open(where, &g);
            CHECK_MSG(st == PAGODA_OK, "%s: %s", where, pagoda_last_error());
            kv_i = tensor_i = 0;
            n_files++;
            continue;
        }
        if (!g) continue;
        char what[700];
        if (strcmp(f[0], "header") == 0 && nf == 7) {
            CHECK_MSG(gguf_version(g) == strtoul(f[1], NULL, 10), "%s: version", where);
            CHECK_MSG(gguf_n_kv(g) == strtoll(f[2], NULL, 10), "%s: n_kv %lld", where, (long long)gguf_n_kv(g));
            CHECK_MSG(gguf_n_tensors(g) == strtoll(f[3], NULL, 10), "%s: n_tensors", where);
            CHECK_MSG(gguf_alignment(g) == strtoul(f[4], NULL, 10), "%s: alignment", where);
            CHECK_MSG(gguf_data_offset(g) == strtoull(f[5], NULL, 10), "%s: data offset %zu != %s",
                      where, gguf_data_offset(g), f[5]);
            CHECK_MSG(gguf_file_bytes(g) == strtoull(f[6], NULL, 10), "%s: size", where);
        } else if ((strcmp(f[0], "kv") == 0 || strcmp(f[0], "arr") == 0) && nf >= 4) {
            const gguf_kv *kv = gguf_kv_at(g, kv_i++);
            size_t n;
            char *key = (char *)unhex(f[1], &n);
            snprintf(what, sizeof what, "%s: key %s", where, key);
            CHECK_MSG(kv && str_eq_bytes(kv->key, (uint8_t *)key, n), "%s: not at index %lld", what,
                      (long long)(kv_i - 1));
            CHECK_MSG(gguf_find_kv(g, key) == kv, "%s: gguf_find_kv", what);
            free(key);
            if (kv && f[0][0] == 'k') check_kv(what, kv, f, nf);
            else if (kv && nf >= 6) check_arr(what, kv, f, nf);
        } else if (strcmp(f[0], "tensor") == 0) {
            snprintf(what, sizeof what, "%s: tensor %lld", where, (long long)tensor_i);
            const gguf_tensor *t = gguf_tensor_at(g, tensor_i++);
            CHECK_MSG(t != NULL, "%s: missing", what);
            if (t) check_tensor(what, g, t, f, nf);
        } else if (strcmp(f[0], "end") == 0) {
            CHECK_MSG(kv_i == gguf_n_kv(g) && tensor_i == gguf_n_tensors(g), "%s: counts", where);
            CHECK(gguf_kv_at(g, kv_i) == NULL && gguf_tensor_at(g, tensor_i) == NULL);
            CHECK(gguf_kv_at(g, -1) == NULL && gguf_tensor_at(g, -1) == NULL);
            gguf_close(g);
            g = NULL;
        }
    }
    gguf_close(g);
    free(f);
    free(text);
    return (int)n_files;
}

/* The typed getters on all_types.gguf (values from make_gguf_fixtures.py). */
static void test_getters(void) {
    gguf_file *g;
    pagoda_status st = gguf_open(FIXTURE_DIR "/all_types.gguf", &g);
    CHECK_MSG(st == PAGODA_OK, "%s", pagoda_last_error());
    if (st) return;
    uint32_t u32;
    int64_t i64;
    float f32;
    bool b;
    gguf_string s;
    CHECK(gguf_get_u32(g, "t.u8", &u32) && u32 == 200);
    CHECK(gguf_get_u32(g, "t.u32", &u32) && u32 == 4000000000u);
    CHECK(!gguf_get_u32(g, "t.i8", &u32));          /* negative */
    CHECK(!gguf_get_u32(g, "t.u64", &u32));         /* too large */
    CHECK(gguf_get_i64(g, "t.i64", &i64) && i64 == -9000000000000000000ll);
    CHECK(gguf_get_i64(g, "t.i16", &i64) && i64 == -30000);
    CHECK(!gguf_get_i64(g, "t.u64", &i64));         /* 1.8e19 does not fit */
    CHECK(!gguf_get_i64(g, "t.str", &i64));
    CHECK(gguf_get_f32(g, "t.f32", &f32) && f32 == 3.14159f);
    CHECK(gguf_get_f32(g, "t.i32", &f32) && f32 == -2000000000.0f);
    CHECK(!gguf_get_f32(g, "t.str", &f32));
    CHECK(gguf_get_bool(g, "t.bool_true", &b) && b);
    CHECK(gguf_get_bool(g, "t.bool_false", &b) && !b);
    CHECK(!gguf_get_bool(g, "t.u8", &b));
    CHECK(gguf_get_str(g, "general.architecture", &s) && gguf_string_eq(s, "testarch"));
    CHECK(gguf_get_str(g, "t.str_empty", &s) && s.len == 0);
    char *dup = gguf_get_str_dup(g, "t.str");
    CHECK(dup && strcmp(dup, "h\xc3\xa9llo w\xc3\xb6rld \xf0\x9f\x98\x80 with spaces") == 0);
    free(dup);
    CHECK(gguf_get_str_dup(g, "t.u8") == NULL && gguf_get_str_dup(g, "absent") == NULL);
    CHECK(gguf_get_array(g, "t.arr_str", GGUF_TYPE_STRING) != NULL);
    CHECK(gguf_get_array(g, "t.arr_str", GGUF_TYPE_INT32) == NULL);
    CHECK(gguf_get_array(g, "t.u8", GGUF_TYPE_UINT8) == NULL);
    CHECK(gguf_find_kv(g, "absent") == NULL && gguf_find_tensor(g, "absent") == NULL);
    CHECK(gguf_require_u32(g, "t.u16", &u32) == PAGODA_OK && u32 == 60000);
    CHECK(gguf_require_u32(g, "absent.key", &u32) == PAGODA_ERR_FORMAT &&
          strstr(pagoda_last_error(), "absent.key"));
    CHECK(gguf_require_f32(g, "t.str", &f32) == PAGODA_ERR_FORMAT &&
          strstr(pagoda_last_error(), "t.str"));
    CHECK(strcmp(gguf_path(g), FIXTURE_DIR "/all_types.gguf") == 0);
    gguf_close(g);
}

/* ---- 2. The writer: rebuild gguf-py's files from their .expect, compare bytes ---------------- */

/* Adds one kv/arr record to the writer through the public setters. */
static pagoda_status writer_add_record(gguf_writer *w, char **f, int nf) {
    size_t key_len;
    char *key = (char *)unhex(f[1], &key_len);
    int t = atoi(f[2]);
    pagoda_status st = PAGODA_ERR_INTERNAL;
    if (f[0][0] == 'k') {
        const char *v = f[3];
        switch (t) {
        case GGUF_TYPE_UINT8: st = gguf_writer_set_u8(w, key, (uint8_t)strtoul(v, NULL, 10)); break;
        case GGUF_TYPE_INT8: st = gguf_writer_set_i8(w, key, (int8_t)strtol(v, NULL, 10)); break;
        case GGUF_TYPE_UINT16: st = gguf_writer_set_u16(w, key, (uint16_t)strtoul(v, NULL, 10)); break;
        case GGUF_TYPE_INT16: st = gguf_writer_set_i16(w, key, (int16_t)strtol(v, NULL, 10)); break;
        case GGUF_TYPE_UINT32: st = gguf_writer_set_u32(w, key, (uint32_t)strtoul(v, NULL, 10)); break;
        case GGUF_TYPE_INT32: st = gguf_writer_set_i32(w, key, (int32_t)strtol(v, NULL, 10)); break;
        case GGUF_TYPE_UINT64: st = gguf_writer_set_u64(w, key, strtoull(v, NULL, 10)); break;
        case GGUF_TYPE_INT64: st = gguf_writer_set_i64(w, key, strtoll(v, NULL, 10)); break;
        case GGUF_TYPE_FLOAT32: st = gguf_writer_set_f32(w, key, (float)strtod(v, NULL)); break;
        case GGUF_TYPE_FLOAT64: st = gguf_writer_set_f64(w, key, strtod(v, NULL)); break;
        case GGUF_TYPE_BOOL: st = gguf_writer_set_bool(w, key, atoi(v) != 0); break;
        case GGUF_TYPE_STRING: {
            size_t n;
            char *s = (char *)unhex(v, &n);
            st = gguf_writer_set_str(w, key, s);
            free(s);
            break;
        }
        }
    } else {
        uint64_t n = strtoull(f[3], NULL, 10);
        if (t == GGUF_TYPE_STRING) {
            char **strs = calloc(n + 1, sizeof *strs);
            for (uint64_t i = 0; i < n && (int)(5 + i) < nf; i++) {
                size_t len;
                strs[i] = (char *)unhex(f[5 + i], &len);
            }
            st = gguf_writer_set_str_array(w, key, (const char *const *)strs, n);
            for (uint64_t i = 0; i < n; i++) free(strs[i]);
            free(strs);
        } else {
            size_t elem = gguf_value_type_bytes((gguf_value_type)t);
            uint8_t *data = calloc(n + 1, elem);
            for (uint64_t i = 0; i < n && (int)(5 + i) < nf; i++) {
                const char *v = f[5 + i];
                uint64_t bits;
                if (t == GGUF_TYPE_FLOAT32) {
                    float x = (float)strtod(v, NULL);
                    uint32_t b32;
                    memcpy(&b32, &x, 4);
                    bits = b32;
                } else if (t == GGUF_TYPE_FLOAT64) {
                    double x = strtod(v, NULL);
                    memcpy(&bits, &x, 8);
                } else {
                    bits = type_is_signed(t) ? (uint64_t)strtoll(v, NULL, 10) : strtoull(v, NULL, 10);
                }
                for (size_t b = 0; b < elem; b++) data[i * elem + b] = (uint8_t)(bits >> (8 * b));
            }
            st = gguf_writer_set_array(w, key, (gguf_value_type)t, data, n);
            free(data);
        }
    }
    free(key);
    return st;
}

/* Rebuilds `name`.gguf from its .expect with Pagoda's writer into `dir` and compares bytes. */
static void test_writer_matches_gguf_py(const char *dir, const char *name) {
    char path[512];
    snprintf(path, sizeof path, FIXTURE_DIR "/%s.expect", name);
    size_t len;
    char *text = test_read_file(path, &len);
    CHECK_MSG(text != NULL, "cannot read %s", path);
    if (!text) return;
    gguf_writer *w;
    CHECK(gguf_writer_init(&w) == PAGODA_OK);
    enum { MAX_FIELDS = 4096, MAX_TENSORS = 16 };
    char **f = malloc(MAX_FIELDS * sizeof *f);
    uint8_t *tensor_data[MAX_TENSORS] = {0};
    int n_tensors = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        int nf = split(line, f, MAX_FIELDS);
        if (nf >= 4 && (strcmp(f[0], "kv") == 0 || strcmp(f[0], "arr") == 0)) {
            pagoda_status st = writer_add_record(w, f, nf);
            CHECK_MSG(st == PAGODA_OK, "%s: %s", name, pagoda_last_error());
        } else if (strcmp(f[0], "tensor") == 0 && n_tensors < MAX_TENSORS) {
            size_t name_len, n_bytes;
            char *tname = (char *)unhex(f[1], &name_len);
            uint32_t n_dims = (uint32_t)atoi(f[3]);
            int64_t ne[GGUF_MAX_DIMS];
            for (uint32_t d = 0; d < n_dims; d++) ne[d] = strtoll(f[4 + d], NULL, 10);
            tensor_data[n_tensors] = unhex(f[7 + n_dims], &n_bytes);
            pagoda_status st = gguf_writer_add_tensor(w, tname, (uint32_t)atoi(f[2]), n_dims, ne,
                                                      tensor_data[n_tensors], n_bytes);
            CHECK_MSG(st == PAGODA_OK, "%s: %s", name, pagoda_last_error());
            n_tensors++;
            free(tname);
        }
    }
    snprintf(path, sizeof path, "%s/%s.gguf", dir, name);
    pagoda_status st = gguf_writer_write(w, path);
    CHECK_MSG(st == PAGODA_OK, "%s: %s", name, pagoda_last_error());
    gguf_writer_free(w);
    size_t mine_len, ref_len;
    char *mine = test_read_file(path, &mine_len);
    snprintf(path, sizeof path, FIXTURE_DIR "/%s.gguf", name);
    char *ref = test_read_file(path, &ref_len);
    CHECK_MSG(mine && ref && mine_len == ref_len, "%s: %zu bytes written, gguf-py wrote %zu", name,
              mine_len, ref_len);
    if (mine && ref && mine_len == ref_len) {
        size_t i = 0;
        while (i < ref_len && mine[i] == ref[i]) i++;
        CHECK_MSG(i == ref_len, "%s: first difference from gguf-py's file at byte %zu", name, i);
    }
    free(mine);
    free(ref);
    for (int i = 0; i < n_tensors; i++) free(tensor_data[i]);
    free(f);
    free(text);
}

/* ---- 3. Writer features beyond gguf-py's fixtures -------------------------------------------- */

/* The value of element (row, col) of the fill tensor below: a formula, not the writer's output. */
static float fill_value(int64_t row, int64_t col) { return (float)(row * 1000 + col) * 0.25f; }

typedef struct fill_ctx {
    int64_t ne0;
    int64_t next_row; /* rows must arrive in order */
    int n_calls;
    int fail_at_call; /* return an error on this call (0: never) */
} fill_ctx;

static pagoda_status fill_rows(void *vctx, const char *name, int64_t row0, int64_t n_rows, void *dst,
                               size_t n_bytes) {
    fill_ctx *c = vctx;
    c->n_calls++;
    CHECK_MSG(row0 == c->next_row, "fill '%s': row %lld, expected %lld", name, (long long)row0,
              (long long)c->next_row);
    CHECK(n_bytes == (size_t)(n_rows * c->ne0) * sizeof(float));
    c->next_row = row0 + n_rows;
    if (c->n_calls == c->fail_at_call) return PAGODA_ERR_INTERNAL; /* as a source would */
    float *out = dst;
    for (int64_t r = 0; r < n_rows; r++)
        for (int64_t i = 0; i < c->ne0; i++) out[r * c->ne0 + i] = fill_value(row0 + r, i);
    return PAGODA_OK;
}

static int count_dir_entries(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    if (d) closedir(d);
    return n;
}

static void test_writer_features(const char *dir) {
    gguf_writer *w;
    CHECK(gguf_writer_init(&w) == PAGODA_OK);
    CHECK(gguf_writer_set_u32(w, "general.alignment", 1) == PAGODA_OK);
    CHECK(gguf_writer_set_str(w, "k.replaced", "first") == PAGODA_OK);
    CHECK(gguf_writer_set_u32(w, "k.second", 2) == PAGODA_OK);
    CHECK(gguf_writer_set_i32(w, "k.replaced", -7) == PAGODA_OK); /* keeps its position */
    CHECK(gguf_writer_set_array(w, "k.empty", GGUF_TYPE_FLOAT32, NULL, 0) == PAGODA_OK);
    CHECK(gguf_writer_set_str_array(w, "k.empty_strs", NULL, 0) == PAGODA_OK);
    CHECK(gguf_writer_set_array(w, "k.bad", GGUF_TYPE_STRING, "x", 1) == PAGODA_ERR_INVALID_ARGUMENT);
    CHECK(gguf_writer_set_u32(w, "", 1) == PAGODA_ERR_INVALID_ARGUMENT);
    const uint8_t three[3] = {1, 2, 3};
    int64_t ne3[1] = {3}, ne_big[2] = {1000, 37}, ne_q8[1] = {33};
    CHECK(gguf_writer_add_tensor(w, "odd", DTYPE_I8, 1, ne3, three, 3) == PAGODA_OK);
    CHECK(gguf_writer_add_tensor(w, "odd", DTYPE_I8, 1, ne3, three, 3) == PAGODA_ERR_INVALID_ARGUMENT);
    CHECK(gguf_writer_add_tensor(w, "short", DTYPE_I8, 1, ne3, three, 2) == PAGODA_ERR_INVALID_ARGUMENT);
    CHECK(gguf_writer_add_tensor(w, "q8", DTYPE_Q8_0, 1, ne_q8, three, 34) == PAGODA_ERR_INVALID_ARGUMENT);
    CHECK(gguf_writer_add_tensor(w, "nodims", DTYPE_I8, 0, ne3, three, 3) == PAGODA_ERR_INVALID_ARGUMENT);
    CHECK(gguf_writer_add_tensor(w, "badtype", 4, 1, ne3, three, 3) == PAGODA_ERR_INVALID_ARGUMENT);
    fill_ctx fc = {.ne0 = 1000};
    CHECK(gguf_writer_add_tensor_fn(w, "filled", DTYPE_F32, 2, ne_big, fill_rows, &fc) == PAGODA_OK);
    char path[512];
    snprintf(path, sizeof path, "%s/features.gguf", dir);
    pagoda_status st = gguf_writer_write(w, path);
    CHECK_MSG(st == PAGODA_OK, "%s", pagoda_last_error());
    CHECK(fc.next_row == 37);

    gguf_file *g = NULL;
    st = gguf_open(path, &g);
    CHECK_MSG(st == PAGODA_OK, "%s", pagoda_last_error());
    if (g) {
        CHECK(gguf_alignment(g) == 1 && gguf_n_kv(g) == 5 && gguf_n_tensors(g) == 2);
        const gguf_kv *kv = gguf_kv_at(g, 1);
        CHECK(kv && gguf_string_eq(kv->key, "k.replaced") && kv->type == GGUF_TYPE_INT32 &&
              kv->value.i64 == -7);
        kv = gguf_find_kv(g, "k.empty");
        CHECK(kv && kv->type == GGUF_TYPE_ARRAY && kv->array_type == GGUF_TYPE_FLOAT32 &&
              kv->array_len == 0);
        kv = gguf_find_kv(g, "k.empty_strs");
        CHECK(kv && kv->array_type == GGUF_TYPE_STRING && kv->array_len == 0);
        const gguf_tensor *t = gguf_find_tensor(g, "odd");
        CHECK(t && t->offset == 0 && t->n_bytes == 3 && memcmp(t->data, three, 3) == 0);
        t = gguf_find_tensor(g, "filled");
        CHECK(t && t->offset == 3 && t->ne[0] == 1000 && t->ne[1] == 37 && t->n_dims == 2);
        if (t) {
            int n_bad = 0;
            for (int64_t r = 0; r < 37; r++)
                for (int64_t i = 0; i < 1000; i++) {
                    float v;
                    memcpy(&v, (const uint8_t *)t->data + 4 * (r * 1000 + i), 4);
                    n_bad += v != fill_value(r, i);
                }
            CHECK_MSG(n_bad == 0, "%d filled values differ", n_bad);
        }
        CHECK(gguf_file_bytes(g) == gguf_data_offset(g) + 3 + 37 * 4000);
        gguf_close(g);
    }

    /* A failing fill leaves the old file untouched and no temporary file behind. */
    fc = (fill_ctx){.ne0 = 1000, .fail_at_call = 1};
    size_t before_len, after_len;
    char *before = test_read_file(path, &before_len);
    int n_entries = count_dir_entries(dir);
    CHECK(gguf_writer_write(w, path) == PAGODA_ERR_INTERNAL);
    CHECK_MSG(strstr(pagoda_last_error(), "filled") != NULL, "message: %s", pagoda_last_error());
    char *after = test_read_file(path, &after_len);
    CHECK(before && after && before_len == after_len && memcmp(before, after, before_len) == 0);
    CHECK(count_dir_entries(dir) == n_entries);
    free(before);
    free(after);

    /* An unwritable destination: PAGODA_ERR_IO naming the path. */
    snprintf(path, sizeof path, "%s/no/such/dir/x.gguf", dir);
    fc = (fill_ctx){.ne0 = 1000};
    CHECK(gguf_writer_write(w, path) == PAGODA_ERR_IO);
    CHECK_MSG(strstr(pagoda_last_error(), path) && strstr(pagoda_last_error(), strerror(ENOENT)),
              "message: %s", pagoda_last_error());

    /* Bad alignments are refused before anything is written. */
    snprintf(path, sizeof path, "%s/align.gguf", dir);
    CHECK(gguf_writer_set_u32(w, "general.alignment", 3) == PAGODA_OK);
    CHECK(gguf_writer_write(w, path) == PAGODA_ERR_INVALID_ARGUMENT);
    CHECK(gguf_writer_set_u32(w, "general.alignment", 0) == PAGODA_OK);
    CHECK(gguf_writer_write(w, path) == PAGODA_ERR_INVALID_ARGUMENT);
    CHECK(gguf_writer_set_i32(w, "general.alignment", 64) == PAGODA_OK);
    CHECK(gguf_writer_write(w, path) == PAGODA_ERR_INVALID_ARGUMENT);
    CHECK(access(path, F_OK) != 0);
    gguf_writer_free(w);
    gguf_writer_free(NULL);

    /* An empty writer makes a valid empty file (header only, padded). */
    CHECK(gguf_writer_init(&w) == PAGODA_OK);
    snprintf(path, sizeof path, "%s/empty.gguf", dir);
    CHECK(gguf_writer_write(w, path) == PAGODA_OK);
    gguf_writer_free(w);
    st = gguf_open(path, &g);
    CHECK_MSG(st == PAGODA_OK, "%s", pagoda_last_error());
    if (g) CHECK(gguf_n_kv(g) == 0 && gguf_n_tensors(g) == 0 && gguf_file_bytes(g) == 32);
    gguf_close(g);
}

/* ---- 4. gen-model against its independent re-implementation ------------------------------ */

static void test_gen_model(const char *dir) {
    static const struct { const char *shape; uint64_t seed; } cases[] = {
        {"tiny", 1}, {"tiny-llama3", 2}, {"tiny-qwen2", 3}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const gen_model_shape *shape = gen_model_find_shape(cases[i].shape);
        CHECK_MSG(shape != NULL, "shape %s", cases[i].shape);
        if (!shape) continue;
        gen_model_options opt = {.shape = *shape, .type = DTYPE_F32, .seed = cases[i].seed};
        char path[512];
        snprintf(path, sizeof path, "%s/gen_%s.gguf", dir, cases[i].shape);
        pagoda_status st = gen_model_write(&opt, path);
        CHECK_MSG(st == PAGODA_OK, "%s: %s", cases[i].shape, pagoda_last_error());
        snprintf(path, sizeof path, FIXTURE_DIR "/gen_%s.expect", cases[i].shape);
        CHECK_MSG(check_expect(path, dir) == 1, "%s: not checked", path);

        /* the model code loads it and a forward pass gives finite logits */
        snprintf(path, sizeof path, "%s/gen_%s.gguf", dir, cases[i].shape);
        gguf_file *g = NULL;
        model *m = NULL;
        backend *be = NULL;
        model_context *ctx = NULL;
        const float *logits = NULL;
        const int32_t prompt[3] = {510, 72, 101};
        st = gguf_open(path, &g);
        if (!st) st = model_load_gguf(g, &m);
        if (st) gguf_close(g);
        if (!st) st = cpu_backend_init(1, m->hp.n_ff, NULL, &be);
        if (!st) st = model_context_init(m, be, 64, 4, &ctx);
        if (!st) st = model_eval(ctx, prompt, 3, false, &logits);
        CHECK_MSG(st == PAGODA_OK, "%s: %s", path, pagoda_last_error());
        int n_bad = 0;
        for (int32_t v = 0; logits && v < m->hp.n_vocab; v++) n_bad += !(logits[v] == logits[v] &&
                                                                        logits[v] < 1e30f && logits[v] > -1e30f);
        CHECK_MSG(logits && n_bad == 0, "%s: %d non-finite logits", path, n_bad);
        model_context_free(ctx);
        if (be) be->free(be);
        model_free(m);
    }
}

/* ---- main ------------------------------------------------------------------------------------ */

static void remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    if (d) closedir(d);
    rmdir(dir);
}

int main(void) {
    char dir[] = "/tmp/pagoda-test-gguf-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);

    static const char *fixtures[] = {"all_types", "align64", "tiny", "v2"};
    for (size_t i = 0; i < sizeof fixtures / sizeof fixtures[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, FIXTURE_DIR "/%s.expect", fixtures[i]);
        CHECK_MSG(check_expect(path, FIXTURE_DIR) == 1, "%s: no file checked", path);
    }
    test_getters();
    test_writer_matches_gguf_py(dir, "all_types");
    test_writer_matches_gguf_py(dir, "align64");
    test_writer_matches_gguf_py(dir, "tiny");
    test_writer_features(dir);
    test_gen_model(dir);

    const char *shared = test_shared_dir();
    if (shared) {
        int n = check_expect(FIXTURE_DIR "/shared.expect", shared);
        printf("checked %d shared GGUF files\n", n);
        CHECK(n > 0);
    } else {
        printf("note: shared folder absent; shared GGUF files not checked\n");
    }
    remove_tree(dir);
    return test_finish();
}
