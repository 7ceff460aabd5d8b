/* cli/cmd_info.c - `pagoda info -m MODEL`: prints a GGUF file's metadata and a tensor summary. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "core/dtype.h" /* defines: dtype_name, DTYPE_COUNT */
#include "gguf/gguf.h"  /* defines: gguf_open, gguf_kv_at, gguf_tensor_at, ... */

static void print_help(FILE *out) {
    fprintf(out,
            "usage: pagoda info -m MODEL [options]\n\n"
            "Prints a GGUF file's metadata and a summary of its tensors.\n\n"
            "options:\n"
            "  -m, --model FILE   the GGUF file (required)\n"
            "      --tensors      list every tensor (name, type, shape, bytes)\n"
            "      --full-arrays  print every element of metadata arrays (default: the first 8)\n"
            "  -h, --help         show this help\n");
}

/* Prints a string value, escaping control characters, at most max_bytes bytes. */
static void print_string(gguf_string s, size_t max_bytes) {
    size_t n = s.len < max_bytes ? (size_t)s.len : max_bytes;
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s.data[i];
        if (c == '\n') fputs("\\n", stdout);
        else if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20) printf("\\x%02x", c);
        else putchar(c);
    }
    putchar('"');
    if (n < s.len) printf("... (%" PRIu64 " bytes)", s.len);
}

static void print_scalar_of_array(const gguf_kv *kv, uint64_t i) {
    switch (kv->array_type) {
    case GGUF_TYPE_FLOAT32: case GGUF_TYPE_FLOAT64: printf("%g", gguf_array_f64(kv, i)); break;
    case GGUF_TYPE_STRING: print_string(kv->array_strings[i], 64); break;
    case GGUF_TYPE_BOOL: printf("%s", gguf_array_i64(kv, i) ? "true" : "false"); break;
    default: printf("%" PRId64, gguf_array_i64(kv, i)); break;
    }
}

static void print_kv(const gguf_kv *kv, bool full_arrays) {
    printf("  %-44.*s ", (int)kv->key.len, kv->key.data);
    switch (kv->type) {
    case GGUF_TYPE_STRING: print_string(kv->value.str, 200); break;
    case GGUF_TYPE_FLOAT32: case GGUF_TYPE_FLOAT64: printf("%g", kv->value.f64); break;
    case GGUF_TYPE_BOOL: printf("%s", kv->value.u64 ? "true" : "false"); break;
    case GGUF_TYPE_INT8: case GGUF_TYPE_INT16: case GGUF_TYPE_INT32: case GGUF_TYPE_INT64:
        printf("%" PRId64, kv->value.i64);
        break;
    case GGUF_TYPE_ARRAY: {
        printf("[%s x %" PRIu64 "]", gguf_value_type_name(kv->array_type), kv->array_len);
        if (kv->array_type == GGUF_TYPE_ARRAY) break;
        uint64_t shown = full_arrays ? kv->array_len : (kv->array_len < 8 ? kv->array_len : 8);
        printf(" ");
        for (uint64_t i = 0; i < shown; i++) {
            if (i) printf(", ");
            print_scalar_of_array(kv, i);
        }
        if (shown < kv->array_len) printf(", ...");
        break;
    }
    default: printf("%" PRIu64, kv->value.u64); break;
    }
    printf("\n");
}

int cmd_info(int argc, char **argv) {
    static const struct option options[] = {
        {"model", required_argument, 0, 'm'}, {"tensors", no_argument, 0, 'T'},
        {"full-arrays", no_argument, 0, 'A'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *model_path = NULL;
    bool list_tensors = false, full_arrays = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:h", options, NULL)) != -1) {
        switch (c) {
        case 'm': model_path = optarg; break;
        case 'T': list_tensors = true; break;
        case 'A': full_arrays = true; break;
        case 'h': print_help(stdout); return 0;
        default: print_help(stderr); return 2;
        }
    }
    if (!model_path) {
        fprintf(stderr, "pagoda info: -m MODEL is required (see pagoda info --help)\n");
        return 2;
    }
    gguf_file *file;
    if (gguf_open(model_path, &file) != PAGODA_OK) {
        fprintf(stderr, "pagoda info: %s\n", pagoda_last_error());
        return 1;
    }
    printf("file: %s\nGGUF version %u, %zu bytes, alignment %u, data at byte %zu\n", model_path,
           gguf_version(file), gguf_file_bytes(file), gguf_alignment(file), gguf_data_offset(file));
    printf("\nmetadata (%" PRId64 " keys):\n", gguf_n_kv(file));
    for (int64_t i = 0; i < gguf_n_kv(file); i++) print_kv(gguf_kv_at(file, i), full_arrays);

    int64_t count_by_type[DTYPE_COUNT] = {0};
    uint64_t bytes_by_type[DTYPE_COUNT] = {0}, total_elems = 0, total_bytes = 0;
    if (list_tensors) printf("\ntensors:\n");
    for (int64_t i = 0; i < gguf_n_tensors(file); i++) {
        const gguf_tensor *t = gguf_tensor_at(file, i);
        count_by_type[t->type]++;
        bytes_by_type[t->type] += t->n_bytes;
        total_elems += (uint64_t)t->n_elems;
        total_bytes += t->n_bytes;
        if (list_tensors) {
            printf("  %-36.*s %-6s [", (int)t->name.len, t->name.data, dtype_name(t->type));
            for (uint32_t d = 0; d < t->n_dims; d++) printf(d ? ", %" PRId64 : "%" PRId64, t->ne[d]);
            printf("] %zu bytes\n", t->n_bytes);
        }
    }
    printf("\ntensors: %" PRId64 ", %.2f M parameters, %.2f MiB\n", gguf_n_tensors(file),
           (double)total_elems / 1e6, (double)total_bytes / (1024.0 * 1024.0));
    for (int t = 0; t < DTYPE_COUNT; t++)
        if (count_by_type[t])
            printf("  %-6s %4" PRId64 " tensors, %.2f MiB\n", dtype_name((uint32_t)t), count_by_type[t],
                   (double)bytes_by_type[t] / (1024.0 * 1024.0));
    gguf_close(file);
    return 0;
}
