/* tests/test_paged_attention.c - the CPU paged-attention kernels, kv_write and kv_copy_blocks against
 * the scalar references of kernels/ref/paged_attention.h, and that reference against ref_attention.
 *
 * Every attention case builds a paged cache from fresh random values (test_seed()): the blocks of all
 * sequences are a shuffled permutation of a pool that also has unused blocks, every element not
 * holding a token of some sequence (unused blocks, the tail of a last block) is NaN, and the output
 * is NaN-filled (with guard words around it) before each run, so reading a wrong slot or leaving a
 * row unwritten shows up as a NaN. Kernels run with 1, 2 and 3 threads; contexts past 256 keys take
 * the split / reduce path.
 *
 * Batch invariance (test_batch_invariance): one query row's output must be bit-identical whether it
 * is a decode alone, a decode among other sequences, or the last row of a prefill chunk of any
 * length, on any thread count.
 *
 * The reference reads the same rounded cache values (F16/BF16 converted exactly) and accumulates in
 * double, so the only error is the kernel's f32 arithmetic: scores are f32 dot products (relative
 * error ~ sqrt(head_dim) 2^-24 of sum |q_d k_d|), exp is ~1 ulp, the running sums and the output
 * accumulate up to 8192 terms in f32 tiles of 16-32 (relative error ~ sqrt(n) 2^-24 ~ 6e-6 at the
 * very worst for n = 8192, ~1e-6 typically), and the split reduce adds one more rounding per chunk.
 * Squared, that is an NMSE below ~4e-11 for O(1) scores: threshold 1e-10. With amp = 8 ("peaky",
 * scores with standard deviation ~20, softmax on one or two keys) a score's absolute error grows to
 * ~2^-24 head_dim amp^2 / 4 / sqrt(head_dim) ~ 1e-5 and carries into the weights: threshold 1e-9.
 * (The same bounds as ref_attention vs the contiguous kernel in test_backend_ops.c.)
 *
 * The reference itself is checked against numpy (tests/fixtures/paged_attention, made in float64 by
 * tools/make_paged_attention_fixtures.py from the same rounded cache values; the kernels are run on
 * those fixtures too) and against ref_attention on the gathered cache, both to 1e-13: all accumulate
 * in double, so they differ only in rounding order and the final float rounding. kv_write must be bit-identical to ref_kv_write (core/dtype.h's
 * scalar conversions) and round-trip within half an ulp of the cache type; kv_copy_blocks must leave
 * exactly the cache that the definition (block memcpy) gives.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_paged_attention.h" /* defines: cpu_paged_attention_*, cpu_kv_write, cpu_kv_copy_blocks */
#include "core/dtype.h"                      /* defines: DTYPE_*, fp32_to_fp16, fp32_to_bf16, dtype_name */
#include "core/threadpool.h"                 /* defines: threadpool_init, threadpool_free */
#include "kernels/ref/ops.h"                 /* defines: ref_attention */
#include "kernels/ref/paged_attention.h"     /* defines: ref_paged_attention, ref_kv_write, kv_cache_* */
#include "testlib.h"

static uint64_t rng;

enum { N_RUNS = 3, GUARD = 16, MAX_SEQS_PER_PASS = 16, MAX_N_HEAD = 64 };
static const int RUN_THREADS[N_RUNS] = {1, 2, 3};
static threadpool *pools[N_RUNS];
static cpu_paged_attention *workspaces[N_RUNS];

static const float GUARD_VALUE = -12345.678f;

static void *xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

/* Uniform in [-scale, scale), never exactly 0. */
static float rand_value(float scale) {
    float v = test_rand_uniform(&rng);
    return (v == 0 ? 0.5f : v) * scale;
}

/* ---- worst NMSE per family -------------------------------------------------------------------------- */

typedef struct stats {
    const char *name;
    double threshold, worst;
    char worst_case[200];
    int n_cases;
} stats;

static stats stats_normal = {"paged attention", 1e-10, 0, "", 0};
static stats stats_peaky = {"paged attention(peaky)", 1e-9, 0, "", 0};
static stats stats_ref = {"ref vs ref_attention", 1e-13, 0, "", 0};
static stats stats_fixture = {"ref vs numpy fixtures", 1e-13, 0, "", 0};

static void record(stats *s, double nmse, const char *desc) {
    s->n_cases++;
    if (!isnan(s->worst) && !(nmse <= s->worst)) {
        s->worst = nmse;
        snprintf(s->worst_case, sizeof s->worst_case, "%s", desc);
    }
    CHECK_MSG(nmse <= s->threshold, "%s %s: NMSE %.3g > %.3g", s->name, desc, nmse, s->threshold);
}

static void report(const stats *s) {
    printf("%-24s %5d runs  worst NMSE %.3g (threshold %.0e) at %s\n", s->name, s->n_cases, s->worst,
           s->threshold, s->worst_case[0] ? s->worst_case : "-");
}

/* ---- a paged cache ---------------------------------------------------------------------------------- */

static void store_elem(uint32_t type, void *base, size_t i, float x) {
    if (type == DTYPE_F32) ((float *)base)[i] = x;
    else if (type == DTYPE_F16) ((uint16_t *)base)[i] = fp32_to_fp16(x);
    else ((uint16_t *)base)[i] = fp32_to_bf16(x);
}

static void fill_nan(uint32_t type, void *base, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (type == DTYPE_F32) ((float *)base)[i] = NAN;
        else ((uint16_t *)base)[i] = type == DTYPE_F16 ? 0x7e00 : 0x7fc0;
    }
}

typedef struct batch {
    int n_seqs;
    int *n_q, *len;          /* [n_seqs] */
    int32_t *query_start;    /* [n_seqs + 1] */
    int32_t *tables;         /* [n_seqs][max_blocks] */
    int max_blocks;
    int64_t n_blocks;
    void *k, *v;             /* [n_blocks][block_size][n_kv_head][head_dim] */
} batch;

/* Blocks for every sequence from a shuffled pool with spare blocks; cache values random where a
 * token lives (K scaled by amp, V by 1), NaN elsewhere. */
static void batch_build(batch *b, int n_seqs, const int *n_q, const int *len, uint32_t type, int bs,
                        int n_kv_head, int hd, float amp) {
    b->n_seqs = n_seqs;
    b->n_q = xmalloc((size_t)n_seqs * sizeof(int));
    b->len = xmalloc((size_t)n_seqs * sizeof(int));
    b->query_start = xmalloc((size_t)(n_seqs + 1) * sizeof(int32_t));
    b->query_start[0] = 0;
    int64_t needed = 0;
    b->max_blocks = 1;
    for (int s = 0; s < n_seqs; s++) {
        b->n_q[s] = n_q[s];
        b->len[s] = len[s];
        b->query_start[s + 1] = b->query_start[s] + n_q[s];
        int blocks = (len[s] + bs - 1) / bs;
        needed += blocks;
        if (blocks > b->max_blocks) b->max_blocks = blocks;
    }
    b->max_blocks += (int)(test_rand_u64(&rng) % 3); /* a table stride wider than needed */
    b->n_blocks = needed + 3 + needed / 4;
    int32_t *perm = xmalloc((size_t)b->n_blocks * sizeof *perm);
    for (int64_t i = 0; i < b->n_blocks; i++) perm[i] = (int32_t)i;
    for (int64_t i = b->n_blocks - 1; i > 0; i--) {
        int64_t j = (int64_t)(test_rand_u64(&rng) % (uint64_t)(i + 1));
        int32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    b->tables = xmalloc((size_t)n_seqs * b->max_blocks * sizeof(int32_t));
    for (size_t i = 0; i < (size_t)n_seqs * b->max_blocks; i++) b->tables[i] = -1; /* never read */
    size_t row = (size_t)n_kv_head * hd, n_elems = (size_t)b->n_blocks * bs * row;
    b->k = xmalloc(n_elems * kv_cache_elem_bytes(type));
    b->v = xmalloc(n_elems * kv_cache_elem_bytes(type));
    fill_nan(type, b->k, n_elems);
    fill_nan(type, b->v, n_elems);
    int64_t next = 0;
    for (int s = 0; s < n_seqs; s++) {
        for (int i = 0; i < (len[s] + bs - 1) / bs; i++) b->tables[(size_t)s * b->max_blocks + i] = perm[next++];
        for (int p = 0; p < len[s]; p++) {
            size_t slot = (size_t)b->tables[(size_t)s * b->max_blocks + p / bs] * bs + (size_t)(p % bs);
            for (size_t e = 0; e < row; e++) {
                store_elem(type, b->k, slot * row + e, rand_value(amp));
                store_elem(type, b->v, slot * row + e, rand_value(1.0f));
            }
        }
    }
    free(perm);
}

static void batch_free(batch *b) {
    free(b->n_q);
    free(b->len);
    free(b->query_start);
    free(b->tables);
    free(b->k);
    free(b->v);
}

/* ref_paged_attention against ref_attention on each sequence's gathered K/V. */
static void check_reference(const paged_attention_args *a, const float *want, const char *desc) {
    size_t row = (size_t)a->n_kv_head * a->head_dim, qrow = (size_t)a->n_head * a->head_dim;
    for (int s = 0; s < a->n_seqs; s++) {
        int n_q = a->query_start[s + 1] - a->query_start[s], len = a->seq_lens[s];
        if (n_q == 0) continue;
        float *k = xmalloc((size_t)len * row * sizeof(float)), *v = xmalloc((size_t)len * row * sizeof(float));
        float *out = xmalloc((size_t)n_q * qrow * sizeof(float));
        int32_t *q_pos = xmalloc((size_t)n_q * sizeof(int32_t));
        for (int p = 0; p < len; p++) {
            size_t slot = (size_t)a->block_tables[(size_t)s * a->max_blocks_per_seq + p / a->block_size] *
                              a->block_size + (size_t)(p % a->block_size);
            for (size_t e = 0; e < row; e++) {
                k[p * row + e] = kv_cache_load(a->cache_type, a->k_cache, slot * row + e);
                v[p * row + e] = kv_cache_load(a->cache_type, a->v_cache, slot * row + e);
            }
        }
        for (int i = 0; i < n_q; i++) q_pos[i] = len - n_q + i;
        pagoda_status st = ref_attention(a->q + (size_t)a->query_start[s] * qrow, k, v, out, q_pos, n_q, len,
                                         a->n_head, a->n_kv_head, a->head_dim, a->scale);
        CHECK_MSG(st == PAGODA_OK, "ref_attention: %s", pagoda_last_error());
        char d[240];
        snprintf(d, sizeof d, "%s seq %d", desc, s);
        record(&stats_ref, test_nmse(want + (size_t)a->query_start[s] * qrow, out, (size_t)n_q * qrow), d);
        free(k);
        free(v);
        free(out);
        free(q_pos);
    }
}

/* ---- one attention case ----------------------------------------------------------------------------- */

static void attention_case(int hd, int n_head, int n_kv_head, uint32_t type, int bs, int n_seqs, const int *n_q,
                           const int *len, float amp, int check_ref) {
    batch b;
    batch_build(&b, n_seqs, n_q, len, type, bs, n_kv_head, hd, amp);
    int64_t n_tokens = b.query_start[n_seqs];
    size_t n_out = (size_t)n_tokens * n_head * hd;
    float *q = xmalloc((n_out ? n_out : 1) * sizeof *q), *want = xmalloc((n_out ? n_out : 1) * sizeof *want);
    for (size_t i = 0; i < n_out; i++) q[i] = rand_value(amp);
    float *got_base = xmalloc((n_out + 2 * GUARD) * sizeof(float)), *got = got_base + GUARD;
    paged_attention_args a = {
        .q = q, .out = want, .k_cache = b.k, .v_cache = b.v, .cache_type = type, .n_seqs = n_seqs,
        .query_start = b.query_start, .seq_lens = b.len, .block_tables = b.tables,
        .max_blocks_per_seq = b.max_blocks, .block_size = bs, .n_head = n_head, .n_kv_head = n_kv_head,
        .head_dim = hd, .scale = 1.0f / sqrtf((float)hd),
    };
    char desc[200];
    int max_len = 0;
    for (int s = 0; s < n_seqs; s++) max_len = len[s] > max_len ? len[s] : max_len;
    snprintf(desc, sizeof desc, "%s hd=%d heads=%d/%d bs=%d seqs=%d tokens=%lld max_len=%d amp=%g",
             dtype_name(type), hd, n_head, n_kv_head, bs, n_seqs, (long long)n_tokens, max_len, (double)amp);
    pagoda_status st = ref_paged_attention(&a);
    CHECK_MSG(st == PAGODA_OK, "ref_paged_attention %s: %s", desc, pagoda_last_error());
    if (check_ref) check_reference(&a, want, desc);
    a.out = got;
    for (int r = 0; r < N_RUNS; r++) {
        for (size_t i = 0; i < GUARD; i++) got_base[i] = got_base[GUARD + n_out + i] = GUARD_VALUE;
        for (size_t i = 0; i < n_out; i++) got[i] = NAN;
        st = cpu_paged_attention_run(workspaces[r], &a);
        char d[240];
        snprintf(d, sizeof d, "%s threads=%d", desc, RUN_THREADS[r]);
        CHECK_MSG(st == PAGODA_OK, "cpu_paged_attention_run %s: %s", d, pagoda_last_error());
        record(amp > 2 ? &stats_peaky : &stats_normal, test_nmse(got, want, n_out), d);
        int guards_ok = 1;
        for (size_t i = 0; i < GUARD; i++)
            if (memcmp(&got_base[i], &GUARD_VALUE, 4) || memcmp(&got_base[GUARD + n_out + i], &GUARD_VALUE, 4))
                guards_ok = 0;
        CHECK_MSG(guards_ok, "%s: wrote outside the output", d);
    }
    free(q);
    free(want);
    free(got_base);
    batch_free(&b);
}

static const uint32_t TYPES[] = {DTYPE_F32, DTYPE_F16, DTYPE_BF16};
static const int BOUNDARY_LENS[] = {15, 16, 17, 31, 32, 33};

/* Head dims 64/128/80, GQA 1-8, three cache types, block sizes 16/32: a ragged batch of six sequences
 * with lengths on and across block boundaries (and some a few blocks longer): a full prefill, a
 * decode, then four of random kinds (prefill, decode, prefill chunk, or no query at all). */
static void test_grid(void) {
    static const int hds[] = {64, 128, 80}, ratios[] = {1, 2, 3, 4, 8}, bss[] = {16, 32};
    for (int hi = 0; hi < 3; hi++)
        for (int ri = 0; ri < 5; ri++)
            for (int ti = 0; ti < 3; ti++)
                for (int bi = 0; bi < 2; bi++) {
                    int n_kv_head = ratios[ri] == 8 ? 1 : 2, n_head = ratios[ri] * n_kv_head;
                    int n_q[6], len[6];
                    for (int s = 0; s < 6; s++) {
                        len[s] = BOUNDARY_LENS[test_rand_u64(&rng) % 6] + 32 * (int)(test_rand_u64(&rng) % 3);
                        int kind = s < 2 ? s : (int)(test_rand_u64(&rng) % 4);
                        n_q[s] = kind == 0 ? len[s] : kind == 1 ? 1 : kind == 2 ? 1 + len[s] / 3 : 0;
                    }
                    attention_case(hds[hi], n_head, n_kv_head, TYPES[ti], bss[bi], 6, n_q, len, 1.0f, 1);
                }
}

/* Edge shapes: a one-token sequence, every length 1..40 in one batch (decodes and prefills) (more sequences than
 * a pass holds), head_dim 8 and 256, a group of 64 query heads (more rows than a prefill tile). */
static void test_edges(void) {
    int n_q1[] = {1}, len1[] = {1};
    attention_case(64, 4, 2, DTYPE_F16, 16, 1, n_q1, len1, 1.0f, 1);
    int n_q[40], len[40];
    for (int s = 0; s < 40; s++) {
        len[s] = s + 1;
        n_q[s] = s % 5 == 4 ? len[s] : 1; /* every fifth a prefill */
    }
    attention_case(64, 6, 3, DTYPE_BF16, 16, 40, n_q, len, 1.0f, 1);
    int n_q3[] = {33, 1, 0}, len3[] = {33, 70, 5};
    attention_case(8, 4, 2, DTYPE_F32, 16, 3, n_q3, len3, 1.0f, 1);
    attention_case(256, 4, 1, DTYPE_F16, 32, 3, n_q3, len3, 1.0f, 1);
    attention_case(64, 64, 1, DTYPE_F16, 16, 3, n_q3, len3, 1.0f, 1);
    attention_case(96, 48, 2, DTYPE_BF16, 16, 3, n_q3, len3, 1.0f, 1);
}

/* Long contexts: a decode of 8192 (and 4100, 5000), a prefill of 300, a chunk of 200 after 500, a
 * batch of two long decodes with a prefill (several split sequences share the partials), and 40
 * decodes of random lengths up to 700 (more than one pass). Peaky scores at a few shapes. */
static void test_long(void) {
    int n_q[] = {1}, len[] = {8192};
    attention_case(128, 8, 2, DTYPE_F16, 16, 1, n_q, len, 1.0f, 0);
    len[0] = 4100;
    attention_case(128, 4, 4, DTYPE_BF16, 32, 1, n_q, len, 1.0f, 0);
    len[0] = 5000;
    attention_case(64, 8, 1, DTYPE_F32, 16, 1, n_q, len, 1.0f, 0);
    int pq[] = {300}, pl[] = {300};
    attention_case(64, 6, 2, DTYPE_F16, 16, 1, pq, pl, 1.0f, 1);
    int cq[] = {200}, cl[] = {700};
    attention_case(80, 4, 2, DTYPE_BF16, 32, 1, cq, cl, 1.0f, 0);
    int mq[] = {1, 40, 1}, ml[] = {3000, 40, 2047};
    attention_case(128, 8, 2, DTYPE_F16, 16, 3, mq, ml, 1.0f, 0);
    int dq[40], dl[40];
    for (int s = 0; s < 40; s++) {
        dq[s] = 1;
        dl[s] = 1 + (int)(test_rand_u64(&rng) % 700);
    }
    attention_case(64, 8, 4, DTYPE_F16, 16, 40, dq, dl, 1.0f, 0);
    for (int ti = 0; ti < 3; ti++) {
        int pk_q[] = {1, 64, 1}, pk_l[] = {2000, 64, 33};
        attention_case(128, 8, 2, TYPES[ti], 16, 3, pk_q, pk_l, 8.0f, 1);
    }
}

/* Sequence 0 of a batch (length len) computed three ways: alone as a decode; as a decode among
 * n_other other sequences (prefills and decodes); as the last row of prefill chunks of several
 * lengths. Every way, on every thread count, must give the same bits. */
static void invariance_case(int hd, int n_head, int n_kv_head, uint32_t type, int bs, int len, int n_other) {
    int n_seqs = 1 + n_other, n_q[8], lens[8];
    n_q[0] = 1;
    lens[0] = len;
    for (int s = 1; s < n_seqs; s++) {
        lens[s] = 1 + (int)(test_rand_u64(&rng) % 600);
        n_q[s] = s % 2 ? 1 : 1 + (int)(test_rand_u64(&rng) % (uint64_t)lens[s]);
    }
    batch b;
    batch_build(&b, n_seqs, n_q, lens, type, bs, n_kv_head, hd, 1.0f);
    size_t qrow = (size_t)n_head * hd;
    int64_t n_tokens = b.query_start[n_seqs];
    int max_chunk = len < 40 ? len : 40;
    float *q = xmalloc((size_t)(n_tokens > max_chunk ? n_tokens : max_chunk) * qrow * sizeof(float));
    float *out = xmalloc((size_t)(n_tokens > max_chunk ? n_tokens : max_chunk) * qrow * sizeof(float));
    float *want = xmalloc(qrow * sizeof(float));
    for (size_t i = 0; i < (size_t)n_tokens * qrow; i++) q[i] = rand_value(1.0f);
    float *row = xmalloc(qrow * sizeof(float)); /* sequence 0's query (its row 0 in the batch) */
    memcpy(row, q, qrow * sizeof(float));
    char desc[160];
    snprintf(desc, sizeof desc, "%s hd=%d heads=%d/%d bs=%d len=%d others=%d", dtype_name(type), hd, n_head,
             n_kv_head, bs, len, n_other);
    int32_t alone_qs[] = {0, 1}, alone_len[] = {len};
    paged_attention_args a = {
        .q = row, .out = want, .k_cache = b.k, .v_cache = b.v, .cache_type = type, .n_seqs = 1,
        .query_start = alone_qs, .seq_lens = alone_len, .block_tables = b.tables, .max_blocks_per_seq = b.max_blocks,
        .block_size = bs, .n_head = n_head, .n_kv_head = n_kv_head, .head_dim = hd, .scale = 1.0f / sqrtf((float)hd),
    };
    CHECK(cpu_paged_attention_run(workspaces[0], &a) == PAGODA_OK);
    for (int r = 0; r < N_RUNS; r++) {
        /* in the batch */
        memcpy(q, row, qrow * sizeof(float)); /* the prefill cases below overwrite it */
        paged_attention_args ab = a;
        ab.q = q;
        ab.out = out;
        ab.n_seqs = n_seqs;
        ab.query_start = b.query_start;
        ab.seq_lens = b.len;
        for (size_t i = 0; i < (size_t)n_tokens * qrow; i++) out[i] = NAN;
        CHECK(cpu_paged_attention_run(workspaces[r], &ab) == PAGODA_OK);
        CHECK_MSG(memcmp(out, want, qrow * sizeof(float)) == 0, "%s threads=%d: the decode row differs in a batch",
                  desc, RUN_THREADS[r]);
        /* as the last row of a prefill chunk */
        for (int chunk = 2; chunk <= max_chunk; chunk += chunk < 5 ? 1 : 7) {
            for (size_t i = 0; i < (size_t)(chunk - 1) * qrow; i++) q[i] = rand_value(1.0f);
            memcpy(q + (size_t)(chunk - 1) * qrow, row, qrow * sizeof(float));
            int32_t qs[] = {0, chunk};
            paged_attention_args ap = a;
            ap.q = q;
            ap.out = out;
            ap.query_start = qs;
            for (size_t i = 0; i < (size_t)chunk * qrow; i++) out[i] = NAN;
            CHECK(cpu_paged_attention_run(workspaces[r], &ap) == PAGODA_OK);
            CHECK_MSG(memcmp(out + (size_t)(chunk - 1) * qrow, want, qrow * sizeof(float)) == 0,
                      "%s threads=%d: the row differs as the last of a %d-token prefill", desc, RUN_THREADS[r], chunk);
        }
    }
    free(q);
    free(out);
    free(want);
    free(row);
    batch_free(&b);
}

static void test_batch_invariance(void) {
    int lens[] = {1, 7, 16, 31, 33, 255, 256, 257, 600, 1100};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        uint32_t type = TYPES[i % 3];
        invariance_case(64, 9, 3, type, 16, lens[i], 1 + (int)(i % 5));
        invariance_case(128, 8, 2, type, 32, lens[i], (int)(i % 3));
    }
    invariance_case(64, 4, 4, DTYPE_F16, 48, 700, 4);
}

/* Calls that break the rules fail with INVALID_ARGUMENT / UNSUPPORTED and leave NaN in the output. */
static void test_errors(void) {
    float q[4 * 16], out[4 * 16];
    uint16_t cache[16 * 2 * 16];
    int32_t qs[] = {0, 1}, lens[] = {1}, table[] = {0};
    memset(q, 0, sizeof q);
    memset(cache, 0, sizeof cache);
    paged_attention_args a = {q, out, cache, cache, DTYPE_F16, 1, qs, lens, table, 1, 16, 2, 1, 12, 0.3f};
    out[0] = 1;
    CHECK(cpu_paged_attention_run(workspaces[0], &a) == PAGODA_ERR_INVALID_ARGUMENT && isnan(out[0]));
    a.head_dim = 16;
    a.n_head = 3; /* not a multiple of n_kv_head = 2 */
    a.n_kv_head = 2;
    CHECK(cpu_paged_attention_run(workspaces[0], &a) == PAGODA_ERR_INVALID_ARGUMENT);
    a.n_head = 2;
    a.n_kv_head = 1;
    a.cache_type = DTYPE_Q8_0;
    CHECK(cpu_paged_attention_run(workspaces[0], &a) == PAGODA_ERR_UNSUPPORTED);
    a.cache_type = DTYPE_F16;
    lens[0] = 0; /* shorter than its query */
    CHECK(cpu_paged_attention_run(workspaces[0], &a) == PAGODA_ERR_INVALID_ARGUMENT);
    lens[0] = 1;
    out[0] = NAN;
    CHECK(cpu_paged_attention_run(workspaces[0], &a) == PAGODA_OK && out[0] == 0.0f); /* all-zero V */
    CHECK(cpu_paged_attention_run(NULL, &a) == PAGODA_ERR_INVALID_ARGUMENT && isnan(out[0]));
    paged_attention_limits bad = {4, 8, 12};
    cpu_paged_attention *pa = NULL;
    CHECK(cpu_paged_attention_init(pools[0], &bad, &pa) == PAGODA_ERR_INVALID_ARGUMENT && pa == NULL);
}

/* ---- numpy fixtures (tools/make_paged_attention_fixtures.py) ---------------------------------------- */

/* Takes n bytes from the cursor; NULL (and a failed check) past the end. */
static const void *take(const char **at, const char *end, size_t n) {
    if ((size_t)(end - *at) < n) {
        CHECK_MSG(0, "fixture truncated");
        return NULL;
    }
    const void *p = *at;
    *at += n;
    return p;
}

/* One fixture: the reference and every kernel run against numpy's float64 result. */
static void fixture_case(const char *name) {
    size_t len = 0;
    char *data = test_read_file(test_path("tests/fixtures/paged_attention", name), &len);
    CHECK_MSG(data != NULL, "cannot read fixture %s", name);
    if (!data) return;
    const char *at = data, *end = data + len;
    const char *magic = take(&at, end, 4);
    const int32_t *h = take(&at, end, 9 * sizeof(int32_t));
    const float *scale = take(&at, end, sizeof(float));
    if (!magic || !h || !scale || memcmp(magic, "PAF1", 4) != 0) {
        CHECK_MSG(0, "fixture %s: bad header", name);
        free(data);
        return;
    }
    uint32_t type = (uint32_t)h[0];
    int n_seqs = h[1], bs = h[2], n_head = h[3], n_kv = h[4], hd = h[5], n_blocks = h[6], max_blocks = h[7];
    int n_tokens = h[8];
    size_t n_out = (size_t)n_tokens * n_head * hd, cache_bytes = (size_t)n_blocks * bs * n_kv * hd * kv_cache_elem_bytes(type);
    /* Copies keep every array aligned for its type. */
    int32_t *qs = xmalloc((size_t)(n_seqs + 1) * 4), *lens = xmalloc((size_t)n_seqs * 4);
    int32_t *tables = xmalloc((size_t)n_seqs * max_blocks * 4);
    float *q = xmalloc(n_out * 4), *expected = xmalloc(n_out * 4), *got = xmalloc(n_out * 4);
    void *k = xmalloc(cache_bytes), *v = xmalloc(cache_bytes);
    const void *parts[] = {take(&at, end, (size_t)(n_seqs + 1) * 4), take(&at, end, (size_t)n_seqs * 4),
                           take(&at, end, (size_t)n_seqs * max_blocks * 4), take(&at, end, n_out * 4),
                           take(&at, end, cache_bytes), take(&at, end, cache_bytes), take(&at, end, n_out * 4)};
    void *dsts[] = {qs, lens, tables, q, k, v, expected};
    size_t sizes[] = {(size_t)(n_seqs + 1) * 4, (size_t)n_seqs * 4, (size_t)n_seqs * max_blocks * 4, n_out * 4,
                      cache_bytes, cache_bytes, n_out * 4};
    int ok = at == end;
    for (int i = 0; i < 7; i++) {
        if (parts[i]) memcpy(dsts[i], parts[i], sizes[i]);
        else ok = 0;
    }
    CHECK_MSG(ok, "fixture %s: size does not match its header", name);
    if (ok) {
        paged_attention_args a = {q, got, k, v, type, n_seqs, qs, lens, tables, max_blocks, bs, n_head, n_kv, hd,
                                  *scale};
        for (size_t i = 0; i < n_out; i++) got[i] = NAN;
        pagoda_status st = ref_paged_attention(&a);
        CHECK_MSG(st == PAGODA_OK, "ref_paged_attention %s: %s", name, pagoda_last_error());
        record(&stats_fixture, test_nmse(got, expected, n_out), name);
        for (int r = 0; r < N_RUNS; r++) {
            for (size_t i = 0; i < n_out; i++) got[i] = NAN;
                st = cpu_paged_attention_run(workspaces[r], &a);
            CHECK_MSG(st == PAGODA_OK, "cpu_paged_attention_run %s: %s", name, pagoda_last_error());
            char d[200];
            snprintf(d, sizeof d, "fixture %s threads=%d", name, RUN_THREADS[r]);
            record(&stats_normal, test_nmse(got, expected, n_out), d);
        }
    }
    free(qs);
    free(lens);
    free(tables);
    free(q);
    free(expected);
    free(got);
    free(k);
    free(v);
    free(data);
}

static void test_fixtures(void) {
    fixture_case("f32_gqa2_hd64_bs16.bin");
    fixture_case("f16_gqa3_hd80_bs32.bin");
    fixture_case("bf16_gqa8_hd128_bs16.bin");
}

/* ---- kv_write and kv_copy_blocks -------------------------------------------------------------------- */

/* A value for the cache: ordinary ones, plus ties, subnormals and overflows of the narrow types. */
static float kv_value(void) {
    uint64_t r = test_rand_u64(&rng) % 16;
    float sign = test_rand_u64(&rng) % 2 ? -1.0f : 1.0f;
    switch (r) {
    case 0: return sign * (1.0f + ldexpf(1.0f, -11)); /* F16 tie: rounds to even (1.0) */
    case 1: return sign * (1.0f + 3 * ldexpf(1.0f, -11)); /* F16 tie: rounds up */
    case 2: return sign * (1.0f + ldexpf(1.0f, -8));     /* BF16 tie: rounds to even (1.0) */
    case 7: return sign * (1.0f + 3 * ldexpf(1.0f, -8)); /* BF16 tie: rounds up */
    case 3: return sign * 3e-6f * (float)(1 + test_rand_u64(&rng) % 100); /* F16 subnormal */
    case 4: return sign * 70000.0f;                                       /* F16 overflow */
    case 5: return sign * 65519.0f;                                       /* F16 max after rounding */
    case 6: return 0.0f;
    default: return rand_value(4.0f);
    }
}

static void kv_write_case(uint32_t type, int n_tokens, threadpool *pool) {
    enum { N_LAYER = 2, N_BLOCKS = 9, BS = 16, N_KV = 2, HD = 24 };
    size_t row = N_KV * HD, n_elems = (size_t)N_BLOCKS * BS * row, bytes = n_elems * kv_cache_elem_bytes(type);
    uint8_t *mem[2][2 * N_LAYER]; /* [got, want][K0, V0, K1, V1] */
    void *k[2][N_LAYER], *v[2][N_LAYER];
    for (int i = 0; i < 2 * N_LAYER; i++) {
        mem[0][i] = xmalloc(bytes);
        mem[1][i] = xmalloc(bytes);
        for (size_t j = 0; j < bytes; j++) mem[0][i][j] = mem[1][i][j] = (uint8_t)test_rand_u64(&rng);
    }
    for (int l = 0; l < N_LAYER; l++)
        for (int w = 0; w < 2; w++) {
            k[w][l] = mem[w][2 * l];
            v[w][l] = mem[w][2 * l + 1];
        }
    kv_cache_view views[2] = {{k[0], v[0], type, N_LAYER, N_BLOCKS, BS, N_KV, HD},
                              {k[1], v[1], type, N_LAYER, N_BLOCKS, BS, N_KV, HD}};
    float *kx = xmalloc((size_t)n_tokens * row * sizeof(float)), *vx = xmalloc((size_t)n_tokens * row * sizeof(float));
    for (size_t i = 0; i < (size_t)n_tokens * row; i++) {
        kx[i] = kv_value();
        vx[i] = kv_value();
    }
    int32_t *slots = xmalloc((size_t)n_tokens * sizeof(int32_t)), perm[N_BLOCKS * BS];
    for (int i = 0; i < N_BLOCKS * BS; i++) perm[i] = i;
    for (int i = N_BLOCKS * BS - 1; i > 0; i--) {
        int j = (int)(test_rand_u64(&rng) % (uint64_t)(i + 1)), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (int i = 0; i < n_tokens; i++) slots[i] = i % 7 == 3 ? -1 : perm[i]; /* some padding rows */
    int layer = 1;
    cpu_kv_write(pool, &views[0], layer, kx, vx, slots, n_tokens);
    ref_kv_write(&views[1], layer, kx, vx, slots, n_tokens);
    int same = 1;
    for (int i = 0; i < 2 * N_LAYER; i++) same &= memcmp(mem[0][i], mem[1][i], bytes) == 0;
    CHECK_MSG(same, "kv_write %s n_tokens=%d: cache differs from ref_kv_write", dtype_name(type), n_tokens);
    /* Round trip: each written value is within half an ulp of the input (F32: exact). */
    double rel = type == DTYPE_F32 ? 0 : type == DTYPE_F16 ? ldexp(1, -11) : ldexp(1, -8);
    int n_bad = 0;
    for (int i = 0; i < n_tokens; i++) {
        if (slots[i] < 0) continue;
        for (size_t e = 0; e < row; e++) {
            float x = kx[(size_t)i * row + e];
            float y = kv_cache_load(type, k[0][layer], (size_t)slots[i] * row + e);
            double ax = fabs((double)x);
            if (type == DTYPE_F16 && ax >= 65520.0) n_bad += !(isinf(y) && (y > 0) == (x > 0));
            else if (type == DTYPE_F16 && ax < ldexp(1, -14)) n_bad += fabs((double)y - x) > ldexp(1, -25);
            else n_bad += fabs((double)y - x) > rel * ax;
        }
    }
    CHECK_MSG(n_bad == 0, "kv_write %s: %d values not rounded to nearest", dtype_name(type), n_bad);

    /* kv_copy_blocks: pairs (src, dst) with distinct dsts that are no src; expected by plain memcpy. */
    int32_t src[3], dst[3];
    for (int i = 0; i < 3; i++) {
        src[i] = perm[i] % N_BLOCKS;
        dst[i] = -1;
    }
    int n_pairs = 0;
    for (int cand = 0; cand < N_BLOCKS && n_pairs < 3; cand++) {
        int used = 0;
        for (int i = 0; i < 3; i++) used |= src[i] == cand;
        if (!used) dst[n_pairs++] = cand;
    }
    size_t block_bytes = (size_t)BS * row * kv_cache_elem_bytes(type);
    for (int i = 0; i < 2 * N_LAYER; i++)
        for (int p = 0; p < n_pairs; p++)
            memcpy(mem[1][i] + (size_t)dst[p] * block_bytes, mem[0][i] + (size_t)src[p] * block_bytes, block_bytes);
    cpu_kv_copy_blocks(pool, &views[0], src, dst, n_pairs);
    same = 1;
    for (int i = 0; i < 2 * N_LAYER; i++) same &= memcmp(mem[0][i], mem[1][i], bytes) == 0;
    CHECK_MSG(same, "kv_copy_blocks %s: cache differs from block memcpy", dtype_name(type));
    ref_kv_copy_blocks(&views[1], src, dst, n_pairs); /* idempotent on the expectation */
    same = 1;
    for (int i = 0; i < 2 * N_LAYER; i++) same &= memcmp(mem[0][i], mem[1][i], bytes) == 0;
    CHECK_MSG(same, "ref_kv_copy_blocks %s differs from block memcpy", dtype_name(type));

    for (int i = 0; i < 2 * N_LAYER; i++) {
        free(mem[0][i]);
        free(mem[1][i]);
    }
    free(kx);
    free(vx);
    free(slots);
}

static void test_kv_cache(void) {
    for (int ti = 0; ti < 3; ti++) {
        kv_write_case(TYPES[ti], 5, pools[2]);   /* a decode step: written on the caller */
        kv_write_case(TYPES[ti], 100, pools[2]); /* threaded */
        kv_write_case(TYPES[ti], 37, NULL);
    }
}

int main(void) {
    rng = test_seed();
    paged_attention_limits limits = {MAX_SEQS_PER_PASS, MAX_N_HEAD, PAGED_ATTENTION_MAX_HEAD_DIM};
    for (int r = 0; r < N_RUNS; r++) {
        pagoda_status st = threadpool_init(RUN_THREADS[r], &pools[r]);
        CHECK_MSG(st == PAGODA_OK, "threadpool_init: %s", pagoda_last_error());
        if (st) return test_finish();
        st = cpu_paged_attention_init(pools[r], &limits, &workspaces[r]);
        CHECK_MSG(st == PAGODA_OK, "cpu_paged_attention_init: %s", pagoda_last_error());
        if (st) return test_finish();
    }
    test_fixtures();
    test_kv_cache();
    test_errors();
    test_edges();
    test_grid();
    test_long();
    test_batch_invariance();
    report(&stats_normal);
    report(&stats_peaky);
    report(&stats_ref);
    report(&stats_fixture);
    for (int r = 0; r < N_RUNS; r++) {
        cpu_paged_attention_free(workspaces[r]);
        threadpool_free(pools[r]);
    }
    return test_finish();
}
