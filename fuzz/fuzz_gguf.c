/* fuzz/fuzz_gguf.c - libFuzzer target for the GGUF reader: gguf_open_memory() on arbitrary bytes,
 * then every kv, array element, tensor view and getter is touched, so ASan/UBSan see any view
 * that points outside the input. Seed corpus: tests/fixtures/gguf/ (see `make fuzz`), e.g.
 *   build-fuzz/fuzz/fuzz_gguf -max_total_time=180 corpus/ tests/fixtures/gguf/
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h" /* defines: gguf_open_memory, gguf_kv, gguf_tensor, gguf_get_* */
#include "pagoda.h"    /* defines: pagoda_last_error */

static volatile uint64_t sink; /* keeps the reads from being optimised away */

static void walk_kv(const gguf_file *g, const gguf_kv *kv) {
    uint64_t sum = 0;
    for (uint64_t i = 0; i < kv->key.len; i++) sum += (uint8_t)kv->key.data[i];
    if (kv->type == GGUF_TYPE_STRING)
        for (uint64_t i = 0; i < kv->value.str.len; i++) sum += (uint8_t)kv->value.str.data[i];
    if (kv->type == GGUF_TYPE_ARRAY) {
        if (kv->array_type == GGUF_TYPE_STRING && kv->array_strings) {
            for (uint64_t e = 0; e < kv->array_len; e++)
                for (uint64_t i = 0; i < kv->array_strings[e].len; i++)
                    sum += (uint8_t)kv->array_strings[e].data[i];
        } else if (gguf_value_type_bytes(kv->array_type)) {
            for (uint64_t e = 0; e < kv->array_len; e++)
                sum += (uint64_t)gguf_array_i64(kv, e) + (uint64_t)(gguf_array_f64(kv, e) != 0);
        }
    }
    /* the getters, on this key */
    char key[256];
    if (kv->key.len < sizeof key) {
        memcpy(key, kv->key.data, kv->key.len);
        key[kv->key.len] = 0;
        uint32_t u32;
        int64_t i64;
        float f32;
        bool b;
        gguf_string s;
        sum += gguf_get_u32(g, key, &u32) + gguf_get_i64(g, key, &i64) + gguf_get_f32(g, key, &f32) +
               gguf_get_bool(g, key, &b) + gguf_get_str(g, key, &s);
        char *dup = gguf_get_str_dup(g, key);
        if (dup) sum += strlen(dup);
        free(dup);
        sum += gguf_get_array(g, key, kv->array_type) != NULL;
        sum += gguf_require_u32(g, key, &u32) == PAGODA_OK;
        sum += gguf_require_f32(g, key, &f32) == PAGODA_OK;
        sum += gguf_find_kv(g, key) != NULL;
    }
    sum += strlen(gguf_value_type_name(kv->type));
    sink += sum;
}

static void walk_tensor(const gguf_file *g, const gguf_tensor *t) {
    uint64_t sum = t->n_dims + t->type + t->offset + (uint64_t)t->n_elems;
    const uint8_t *p = t->data;
    for (size_t i = 0; i < t->n_bytes; i += 61) sum += p[i];
    if (t->n_bytes) sum += p[t->n_bytes - 1];
    char name[256];
    if (t->name.len < sizeof name) {
        memcpy(name, t->name.data, t->name.len);
        name[t->name.len] = 0;
        sum += gguf_find_tensor(g, name) != NULL;
    }
    sink += sum;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gguf_file *g = NULL;
    if (gguf_open_memory(data, size, "fuzz", &g) != PAGODA_OK) {
        if (g != NULL || pagoda_last_error()[0] == '\0') __builtin_trap(); /* contract broken */
        return 0;
    }
    sink += gguf_version(g) + gguf_alignment(g) + gguf_file_bytes(g) + gguf_data_offset(g) +
            strlen(gguf_path(g));
    for (int64_t i = 0; i < gguf_n_kv(g); i++) walk_kv(g, gguf_kv_at(g, i));
    for (int64_t i = 0; i < gguf_n_tensors(g); i++) walk_tensor(g, gguf_tensor_at(g, i));
    gguf_close(g);
    return 0;
}
