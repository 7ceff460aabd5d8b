/* tests/test_gguf_hostile.c - the GGUF reader on corrupt and hostile input.
 *
 * Every variant must give an error status with a non-empty message and no handle (or, for the
 * random campaign, either that or a file whose every view can be walked), never a crash, a hang or
 * an allocation the file cannot justify. The real check is `make test-asan`: each image sits in a
 * buffer of exactly its size, so any read past the end is caught.
 *
 * The base image is built here byte by byte (layout below) so each field's position is known;
 * variants patch one field. Also: every truncation of the base image and of gguf-py's
 * all_types.gguf fixture, the same variants through gguf_open() on a temp file, and a random
 * byte-flip campaign seeded by test_seed().
 *
 *   header   "GGUF" | version 3 | n_tensors 2 | n_kv 5
 *   kv 0     "general.alignment" u32 32
 *   kv 1     "k.str"  string "hello"
 *   kv 2     "k.arr"  array u32 [1, 2, 3]
 *   kv 3     "k.sts"  array string ["x", "yz"]
 *   kv 4     "k.f32"  f32 1.5
 *   tensor a n_dims 2, ne {4, 2}, F32, offset 0   (32 bytes)
 *   tensor b n_dims 1, ne {16},   F16, offset 32  (32 bytes, ends exactly at the end of the file)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/dtype.h" /* defines: DTYPE_* */
#include "gguf/gguf.h"  /* defines: gguf_open, gguf_open_memory, gguf_kv, gguf_tensor */
#include "pagoda.h"     /* defines: pagoda_last_error, PAGODA_ERR_* */
#include "testlib.h"

/* ---- Building the base image ----------------------------------------------------------------- */

typedef struct image {
    uint8_t data[1024];
    size_t size;
} image;

/* Byte positions of the fields the variants patch. */
typedef struct layout {
    size_t version, n_tensors, n_kv;
    size_t align_type, align_value;
    size_t str_key_len, str_type, str_len;
    size_t arr_key, arr_elem_type, arr_len;
    size_t sts_len, sts_elem0_len;
    size_t f32_type;
    size_t a_name_len, a_name, a_n_dims, a_ne0, a_ne1, a_type, a_offset;
    size_t b_name, b_n_dims, b_ne0, b_type, b_offset;
    size_t data;
} layout;

static size_t put(image *im, const void *p, size_t n) {
    size_t at = im->size;
    memcpy(im->data + im->size, p, n);
    im->size += n;
    return at;
}
static size_t put_u32(image *im, uint32_t v) { return put(im, &v, 4); }
static size_t put_u64(image *im, uint64_t v) { return put(im, &v, 8); }
static size_t put_str(image *im, const char *s) { /* returns the position of the length */
    size_t at = put_u64(im, strlen(s));
    put(im, s, strlen(s));
    return at;
}

static void build_base(image *im, layout *L) {
    memset(im, 0, sizeof *im);
    put(im, "GGUF", 4);
    L->version = put_u32(im, 3);
    L->n_tensors = put_u64(im, 2);
    L->n_kv = put_u64(im, 5);
    put_str(im, "general.alignment");
    L->align_type = put_u32(im, GGUF_TYPE_UINT32);
    L->align_value = put_u32(im, 32);
    L->str_key_len = put_str(im, "k.str");
    L->str_type = put_u32(im, GGUF_TYPE_STRING);
    L->str_len = put_str(im, "hello");
    L->arr_key = put_str(im, "k.arr") + 8;
    put_u32(im, GGUF_TYPE_ARRAY);
    L->arr_elem_type = put_u32(im, GGUF_TYPE_UINT32);
    L->arr_len = put_u64(im, 3);
    for (uint32_t v = 1; v <= 3; v++) put_u32(im, v);
    put_str(im, "k.sts");
    put_u32(im, GGUF_TYPE_ARRAY);
    put_u32(im, GGUF_TYPE_STRING);
    L->sts_len = put_u64(im, 2);
    L->sts_elem0_len = put_str(im, "x");
    put_str(im, "yz");
    put_str(im, "k.f32");
    L->f32_type = put_u32(im, GGUF_TYPE_FLOAT32);
    float f = 1.5f;
    put(im, &f, 4);
    L->a_name_len = put_str(im, "a");
    L->a_name = L->a_name_len + 8;
    L->a_n_dims = put_u32(im, 2);
    L->a_ne0 = put_u64(im, 4);
    L->a_ne1 = put_u64(im, 2);
    L->a_type = put_u32(im, DTYPE_F32);
    L->a_offset = put_u64(im, 0);
    L->b_name = put_str(im, "b") + 8;
    L->b_n_dims = put_u32(im, 1);
    L->b_ne0 = put_u64(im, 16);
    L->b_type = put_u32(im, DTYPE_F16);
    L->b_offset = put_u64(im, 32);
    while (im->size % 32) im->data[im->size++] = 0;
    L->data = im->size;
    for (int i = 0; i < 64; i++) im->data[im->size++] = (uint8_t)(i * 7 + 1);
}

static void patch_u32(image *im, size_t at, uint32_t v) { memcpy(im->data + at, &v, 4); }
static void patch_u64(image *im, size_t at, uint64_t v) { memcpy(im->data + at, &v, 8); }

/* ---- Opening and walking --------------------------------------------------------------------- */

/* Touches every view an opened file hands out, so ASan sees any view past the image. */
static uint64_t walk(const gguf_file *g) {
    uint64_t sum = gguf_version(g) + gguf_alignment(g) + gguf_data_offset(g);
    for (int64_t i = 0; i < gguf_n_kv(g); i++) {
        const gguf_kv *kv = gguf_kv_at(g, i);
        char key[80];
        snprintf(key, sizeof key, "%.*s", (int)(kv->key.len < 70 ? kv->key.len : 70), kv->key.data);
        for (uint64_t k = 0; k < kv->key.len; k++) sum += (uint8_t)kv->key.data[k];
        if (kv->type == GGUF_TYPE_STRING)
            for (uint64_t k = 0; k < kv->value.str.len; k++) sum += (uint8_t)kv->value.str.data[k];
        if (kv->type != GGUF_TYPE_ARRAY) continue;
        if (kv->array_type == GGUF_TYPE_STRING && kv->array_strings) {
            for (uint64_t e = 0; e < kv->array_len; e++)
                for (uint64_t k = 0; k < kv->array_strings[e].len; k++)
                    sum += (uint8_t)kv->array_strings[e].data[k];
        } else if (gguf_value_type_bytes(kv->array_type)) {
            for (uint64_t e = 0; e < kv->array_len; e++)
                sum += (uint64_t)gguf_array_i64(kv, e) + (uint64_t)gguf_array_f64(kv, e);
        }
        uint32_t u;
        int64_t i64;
        float f;
        bool b;
        gguf_string s;
        sum += gguf_get_u32(g, key, &u) + gguf_get_i64(g, key, &i64) + gguf_get_f32(g, key, &f) +
               gguf_get_bool(g, key, &b) + gguf_get_str(g, key, &s);
    }
    for (int64_t i = 0; i < gguf_n_tensors(g); i++) {
        const gguf_tensor *t = gguf_tensor_at(g, i);
        const uint8_t *p = t->data;
        if (t->n_bytes) sum += p[0] + p[t->n_bytes - 1] + p[t->n_bytes / 2];
    }
    return sum;
}

/* Opens a copy of data[0..size) in an exactly sized buffer. Returns the status; walks the file
 * if it opened. */
static pagoda_status open_copy(const uint8_t *data, size_t size, const char *what) {
    uint8_t *copy = malloc(size ? size : 1);
    memcpy(copy, data, size);
    gguf_file *g = (gguf_file *)(uintptr_t)1; /* must be reset by the call */
    pagoda_status st = gguf_open_memory(copy, size, what, &g);
    if (st == PAGODA_OK) {
        CHECK_MSG(g != NULL, "%s: OK without a handle", what);
        volatile uint64_t sink = g ? walk(g) : 0;
        (void)sink;
        gguf_close(g);
    } else {
        CHECK_MSG(g == NULL, "%s: error but a handle", what);
        CHECK_MSG(pagoda_last_error()[0] != '\0', "%s: error without a message", what);
    }
    free(copy);
    return st;
}

static char tmp_dir[] = "/tmp/pagoda-test-hostile-XXXXXX";

/* Writes the image to a file and checks gguf_open agrees with gguf_open_memory. */
static pagoda_status open_file(const uint8_t *data, size_t size, const char *what) {
    char path[256];
    snprintf(path, sizeof path, "%s/variant.gguf", tmp_dir);
    FILE *f = fopen(path, "wb");
    CHECK(f && fwrite(data, 1, size, f) == size);
    if (f) fclose(f);
    gguf_file *g = NULL;
    pagoda_status st = gguf_open(path, &g);
    if (st == PAGODA_OK) {
        volatile uint64_t sink = walk(g);
        (void)sink;
        gguf_close(g);
    } else {
        CHECK_MSG(g == NULL && pagoda_last_error()[0], "%s (file): no message or a handle", what);
    }
    unlink(path);
    return st;
}

/* The variant must be rejected by both entry points, with `want` when it is not PAGODA_OK
 * (PAGODA_OK here means "any error"). */
static void expect_error(const image *im, const char *what, pagoda_status want) {
    pagoda_status st = open_copy(im->data, im->size, what);
    CHECK_MSG(st != PAGODA_OK, "%s: accepted", what);
    if (want != PAGODA_OK && st != PAGODA_OK)
        CHECK_MSG(st == want, "%s: status %s, expected %s (%s)", what, pagoda_status_name(st),
                  pagoda_status_name(want), pagoda_last_error());
    pagoda_status fst = open_file(im->data, im->size, what);
    CHECK_MSG(fst == st, "%s: gguf_open gave %d, gguf_open_memory %d", what, fst, st);
}

/* ---- The variants ---------------------------------------------------------------------------- */

#define VARIANT(desc, want, ...)                  \
    do {                                          \
        image v = base;                           \
        __VA_ARGS__;                              \
        expect_error(&v, desc, want);             \
    } while (0)

static void test_field_variants(void) {
    image base;
    layout L;
    build_base(&base, &L);
    const pagoda_status ANY = PAGODA_OK, FMT = PAGODA_ERR_FORMAT, UNSUP = PAGODA_ERR_UNSUPPORTED;
    const uint64_t huge[] = {1ull << 32, 1ull << 40, 1ull << 60, 1ull << 63, UINT64_MAX};
    char desc[128];

    /* The base image itself is valid and reads back as built. */
    gguf_file *g = NULL;
    pagoda_status st = gguf_open_memory(base.data, base.size, "base", &g);
    CHECK_MSG(st == PAGODA_OK, "base image: %s", pagoda_last_error());
    if (g) {
        CHECK(gguf_n_kv(g) == 5 && gguf_n_tensors(g) == 2 && gguf_data_offset(g) == L.data);
        const gguf_tensor *b = gguf_find_tensor(g, "b");
        CHECK(b && b->n_bytes == 32 && (const uint8_t *)b->data == base.data + L.data + 32);
        gguf_close(g);
    }

    VARIANT("bad magic", FMT, memcpy(v.data, "GGUX", 4));
    VARIANT("lower-case magic", FMT, memcpy(v.data, "gguf", 4));
    VARIANT("version 1", UNSUP, patch_u32(&v, L.version, 1));
    VARIANT("version 99", UNSUP, patch_u32(&v, L.version, 99));
    VARIANT("version 0", UNSUP, patch_u32(&v, L.version, 0));
    VARIANT("version 2^32-1", UNSUP, patch_u32(&v, L.version, UINT32_MAX));
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        uint64_t h = huge[i];
        snprintf(desc, sizeof desc, "n_kv %llu", (unsigned long long)h);
        VARIANT(desc, FMT, patch_u64(&v, L.n_kv, h));
        snprintf(desc, sizeof desc, "n_tensors %llu", (unsigned long long)h);
        VARIANT(desc, FMT, patch_u64(&v, L.n_tensors, h));
        snprintf(desc, sizeof desc, "key length %llu", (unsigned long long)h);
        VARIANT(desc, FMT, patch_u64(&v, L.str_key_len, h));
        snprintf(desc, sizeof desc, "string length %llu", (unsigned long long)h);
        VARIANT(desc, FMT, patch_u64(&v, L.str_len, h));
        snprintf(desc, sizeof desc, "string array element length %llu", (unsigned long long)h);
        VARIANT(desc, FMT, patch_u64(&v, L.sts_elem0_len, h));
        snprintf(desc, sizeof desc, "string array length %llu", (unsigned long long)h);
        VARIANT(desc, FMT, patch_u64(&v, L.sts_len, h));
        snprintf(desc, sizeof desc, "u32 array length %llu", (unsigned long long)h);
        VARIANT(desc, FMT, patch_u64(&v, L.arr_len, h));
        snprintf(desc, sizeof desc, "tensor name length %llu", (unsigned long long)h);
        VARIANT(desc, FMT, patch_u64(&v, L.a_name_len, h));
        snprintf(desc, sizeof desc, "extent %llu", (unsigned long long)h);
        VARIANT(desc, FMT, patch_u64(&v, L.b_ne0, h));
        snprintf(desc, sizeof desc, "offset %llu", (unsigned long long)h);
        VARIANT(desc, FMT, patch_u64(&v, L.b_offset, h & ~31ull));
    }
    VARIANT("n_kv one too many", ANY, patch_u64(&v, L.n_kv, 6));
    VARIANT("n_tensors one too many", FMT, patch_u64(&v, L.n_tensors, 3));
    VARIANT("array of 2^60 u32", FMT, patch_u64(&v, L.arr_len, 1ull << 60));
    VARIANT("array of 2^62 u32 (bytes overflow 64 bits)", FMT, patch_u64(&v, L.arr_len, 1ull << 62));
    VARIANT("empty key", FMT, patch_u64(&v, L.str_key_len, 0));
    VARIANT("empty tensor name", FMT, patch_u64(&v, L.a_name_len, 0));
    const uint32_t bad_types[] = {GGUF_TYPE_COUNT, 100, UINT32_MAX};
    for (size_t i = 0; i < 3; i++) {
        snprintf(desc, sizeof desc, "value type %u", bad_types[i]);
        VARIANT(desc, FMT, patch_u32(&v, L.f32_type, bad_types[i]));
        snprintf(desc, sizeof desc, "array element type %u", bad_types[i]);
        VARIANT(desc, FMT, patch_u32(&v, L.arr_elem_type, bad_types[i]));
    }
    VARIANT("nested array claiming 3 arrays", FMT, patch_u32(&v, L.arr_elem_type, GGUF_TYPE_ARRAY));
    VARIANT("n_dims 0", FMT, patch_u32(&v, L.a_n_dims, 0));
    VARIANT("n_dims 5", FMT, patch_u32(&v, L.a_n_dims, 5));
    VARIANT("n_dims 2^32-1", FMT, patch_u32(&v, L.a_n_dims, UINT32_MAX));
    VARIANT("extent 0", FMT, patch_u64(&v, L.a_ne1, 0));
    VARIANT("extent -1", FMT, patch_u64(&v, L.a_ne0, (uint64_t)-1));
    VARIANT("extent -2^63", FMT, patch_u64(&v, L.a_ne0, 1ull << 63));
    VARIANT("extent product overflows", FMT, patch_u64(&v, L.a_ne0, 1ull << 32);
            patch_u64(&v, L.a_ne1, 1ull << 32));
    VARIANT("extent product 2^62 elements of 4 bytes", FMT, patch_u64(&v, L.a_ne0, 1ull << 31);
            patch_u64(&v, L.a_ne1, 1ull << 31));
    VARIANT("extents fine, data past the end", FMT, patch_u64(&v, L.a_ne0, 1ull << 20));
    VARIANT("unknown tensor type 4", UNSUP, patch_u32(&v, L.a_type, 4));
    VARIANT("unknown tensor type 39", UNSUP, patch_u32(&v, L.a_type, 39));
    VARIANT("unknown tensor type 2^32-1", UNSUP, patch_u32(&v, L.a_type, UINT32_MAX));
    VARIANT("Q8_0 row of 4 elements", FMT, patch_u32(&v, L.a_type, DTYPE_Q8_0));
    VARIANT("offset 1", FMT, patch_u64(&v, L.b_offset, 1));
    VARIANT("offset 33 (misaligned)", FMT, patch_u64(&v, L.b_offset, 33));
    VARIANT("tensor past the end", FMT, patch_u64(&v, L.b_offset, 64));
    VARIANT("tensor 1 byte past the end", FMT, v.size--);
    VARIANT("offset wraps around", FMT, patch_u64(&v, L.b_offset, UINT64_MAX - 31));
    VARIANT("duplicate tensor name", FMT, v.data[L.b_name] = 'a');
    VARIANT("duplicate key", FMT, memcpy(v.data + L.arr_key, "k.str", 5));
    VARIANT("overlapping tensors", FMT, patch_u64(&v, L.b_offset, 0));
    VARIANT("alignment 0", FMT, patch_u32(&v, L.align_value, 0));
    VARIANT("alignment 3", FMT, patch_u32(&v, L.align_value, 3));
    VARIANT("alignment 2^31", FMT, patch_u32(&v, L.align_value, 1u << 31));
    VARIANT("alignment as i32", FMT, patch_u32(&v, L.align_type, GGUF_TYPE_INT32));
    VARIANT("alignment 64 (offset 32 misaligned)", FMT, patch_u32(&v, L.align_value, 64));
    VARIANT("empty image", FMT, v.size = 0);
}

/* Every truncation of the base image is an error (its last tensor ends at the last byte). */
static void test_truncations(void) {
    image base;
    layout L;
    build_base(&base, &L);
    char desc[64];
    for (size_t len = 0; len < base.size; len++) {
        snprintf(desc, sizeof desc, "base truncated to %zu", len);
        CHECK_MSG(open_copy(base.data, len, desc) != PAGODA_OK, "%s: accepted", desc);
        if (len % 7 == 0) CHECK_MSG(open_file(base.data, len, desc) != PAGODA_OK, "%s: accepted", desc);
    }
    /* gguf-py's file: every length short of the end of its last tensor's data is an error;
     * trailing padding may be cut. */
    size_t size;
    char *file = test_read_file("tests/fixtures/gguf/all_types.gguf", &size);
    CHECK(file != NULL);
    if (!file) return;
    gguf_file *g = NULL;
    CHECK(gguf_open_memory(file, size, "all_types", &g) == PAGODA_OK);
    size_t data_end = 0;
    for (int64_t i = 0; g && i < gguf_n_tensors(g); i++) {
        const gguf_tensor *t = gguf_tensor_at(g, i);
        size_t end = gguf_data_offset(g) + t->offset + t->n_bytes;
        if (end > data_end) data_end = end;
    }
    gguf_close(g);
    CHECK(data_end > 0 && data_end <= size);
    for (size_t len = 0; len < size; len++) {
        snprintf(desc, sizeof desc, "all_types truncated to %zu", len);
        pagoda_status st = open_copy((const uint8_t *)file, len, desc);
        if (len < data_end) CHECK_MSG(st != PAGODA_OK, "%s: accepted", desc);
        else CHECK_MSG(st == PAGODA_OK, "%s: %s", desc, pagoda_last_error());
    }
    free(file);
}

/* Random corruption: flips, random bytes, and extreme 32/64-bit values at random positions. Each
 * variant must open cleanly or fail cleanly; ASan does the rest. */
static void test_random_campaign(uint64_t seed) {
    size_t size;
    char *file = test_read_file("tests/fixtures/gguf/all_types.gguf", &size);
    image base;
    layout L;
    build_base(&base, &L);
    CHECK(file != NULL);
    if (!file) return;
    uint64_t rng = seed;
    uint8_t *buf = malloc(size);
    int n_ok = 0, n_err = 0;
    static const uint64_t extremes[] = {0, 1, 0x7f, 0xff, 0xffff, 0x7fffffff, 0xffffffff,
                                        1ull << 32, 1ull << 60, 1ull << 63, UINT64_MAX};
    for (int iter = 0; iter < 4000; iter++) {
        const uint8_t *src = iter % 2 ? base.data : (const uint8_t *)file;
        size_t n = iter % 2 ? base.size : size;
        memcpy(buf, src, n);
        int n_mut = 1 + (int)(test_rand_u64(&rng) % 4);
        for (int m = 0; m < n_mut; m++) {
            size_t at = (size_t)(test_rand_u64(&rng) % n);
            uint64_t r = test_rand_u64(&rng);
            switch (r % 4) {
            case 0: buf[at] ^= (uint8_t)(1u << (r >> 8) % 8); break;
            case 1: buf[at] = (uint8_t)(r >> 8); break;
            default: {
                uint64_t v = extremes[(r >> 8) % (sizeof extremes / sizeof extremes[0])];
                size_t w = r % 4 == 2 ? 4 : 8;
                if (at + w <= n) memcpy(buf + at, &v, w);
            }
            }
        }
        if (test_rand_u64(&rng) % 8 == 0) n = (size_t)(test_rand_u64(&rng) % (n + 1));
        char desc[96];
        snprintf(desc, sizeof desc, "random variant %d (seed %llu)", iter, (unsigned long long)seed);
        if (open_copy(buf, n, desc) == PAGODA_OK) n_ok++;
        else n_err++;
    }
    printf("random campaign: %d opened, %d rejected\n", n_ok, n_err);
    CHECK(n_err > 0);
    free(buf);
    free(file);
}

int main(void) {
    CHECK(mkdtemp(tmp_dir) != NULL);
    uint64_t seed = test_seed();
    test_field_variants();
    test_truncations();
    test_random_campaign(seed);
    rmdir(tmp_dir);
    return test_finish();
}
