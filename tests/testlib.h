/* tests/testlib.h - a tiny test harness shared by every tests/test_*.c program.
 *
 * A test program calls CHECK()/CHECK_MSG() any number of times and ends with
 * `return test_finish();`. Exit codes: 0 all checks passed, 1 some failed, 77 skipped
 * (test_skip(), e.g. when ../shared is absent). tests/run_tests.sh aggregates them.
 * Tests run with the repository root as the working directory.
 */
#ifndef PAGODA_TESTLIB_H
#define PAGODA_TESTLIB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

extern int test_n_checks;
extern int test_n_failures;

void test_fail_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define CHECK(cond)                                                                       \
    do {                                                                                  \
        test_n_checks++;                                                                  \
        if (!(cond)) test_fail_at(__FILE__, __LINE__, "%s", #cond);                       \
    } while (0)
#define CHECK_MSG(cond, ...)                                                              \
    do {                                                                                  \
        test_n_checks++;                                                                  \
        if (!(cond)) test_fail_at(__FILE__, __LINE__, __VA_ARGS__);                       \
    } while (0)

/* Prints a summary line and returns the exit code for main(). */
int test_finish(void);
/* Prints "SKIP: <reason>" and exits with 77. */
void test_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* The project's shared data folder: $PAGODA_SHARED if set, else ../shared next to the repo
 * root; NULL if neither exists. The returned string is static. */
const char *test_shared_dir(void);
/* Joins dir and name into a static buffer (one of a small ring of buffers). */
const char *test_path(const char *dir, const char *name);
/* Reads a whole file into a malloc'd NUL-terminated buffer; NULL if it cannot be read. */
char *test_read_file(const char *path, size_t *out_len);
/* Deterministic pseudo-random numbers for tests (splitmix64). Seeds come from the clock unless
 * PAGODA_TEST_SEED is set; the seed is printed so a failure can be reproduced. */
uint64_t test_seed(void);
uint64_t test_rand_u64(uint64_t *state);
float test_rand_uniform(uint64_t *state); /* in [-1, 1) */
/* Normalised mean squared error: sum (a-b)^2 / sum b^2 (b is the reference). */
double test_nmse(const float *a, const float *reference, size_t n);

#endif
