/* tests/testlib.c - implementation of the test harness in testlib.h. */
#include "testlib.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

int test_n_checks;
int test_n_failures;

void test_fail_at(const char *file, int line, const char *fmt, ...) {
    test_n_failures++;
    if (test_n_failures > 50) return; /* keep logs readable */
    fprintf(stderr, "FAIL %s:%d: ", file, line);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int test_finish(void) {
    printf("%d checks, %d failed\n", test_n_checks, test_n_failures);
    if (test_n_checks == 0) {
        fprintf(stderr, "FAIL: the test made no checks\n");
        return 1;
    }
    return test_n_failures ? 1 : 0;
}

void test_skip(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("SKIP: ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    exit(77);
}

static bool is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

const char *test_shared_dir(void) {
    static char dir[4096];
    const char *env = getenv("PAGODA_SHARED");
    if (env && *env) {
        if (!is_dir(env)) return NULL;
        snprintf(dir, sizeof dir, "%s", env);
        return dir;
    }
    if (is_dir("../shared")) return "../shared";
    return NULL;
}

const char *test_path(const char *dir, const char *name) {
    static char ring[8][4096];
    static int next;
    char *buf = ring[next++ % 8];
    snprintf(buf, 4096, "%s/%s", dir, name);
    return buf;
}

char *test_read_file(const char *path, size_t *out_len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    size_t got;
    while (buf && (got = fread(buf + len, 1, cap - len, f)) > 0) {
        len += got;
        if (len == cap) {
            char *grown = realloc(buf, cap * 2 + 1);
            if (!grown) { free(buf); buf = NULL; break; }
            buf = grown;
            cap *= 2;
        }
    }
    fclose(f);
    if (!buf) return NULL;
    buf[len] = '\0';
    if (out_len) *out_len = len;
    return buf;
}

uint64_t test_seed(void) {
    static uint64_t seed;
    static bool have;
    if (!have) {
        const char *env = getenv("PAGODA_TEST_SEED");
        seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL) ^ ((uint64_t)clock() << 20);
        printf("seed %llu (set PAGODA_TEST_SEED to reproduce)\n", (unsigned long long)seed);
        have = true;
    }
    return seed;
}

uint64_t test_rand_u64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

float test_rand_uniform(uint64_t *state) {
    return (float)((double)(test_rand_u64(state) >> 11) * 0x1.0p-53 * 2.0 - 1.0);
}

double test_nmse(const float *a, const float *reference, size_t n) {
    double err = 0, ref = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)reference[i];
        err += d * d;
        ref += (double)reference[i] * (double)reference[i];
    }
    return ref > 0 ? err / ref : err;
}
