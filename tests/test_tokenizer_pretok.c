/* tests/test_tokenizer_pretok.c - the byte-level BPE pre-tokenizers against Hugging Face's.
 *
 * tests/fixtures/tokenizer/pretok.tsv (tools/make_tokenizer_fixtures.py) holds, for the
 * pre-tokenizer families GPT-2, SmolLM/StarCoder, Llama 3, Qwen2, Tekken and GPT-4o, ~50 texts and
 * the byte lengths of the pieces HF tokenizers cuts them into, using the regexes as the models'
 * tokenizer.json files spell them. Pagoda's PCRE2 versions (vocab_pretok.c) must cut every text
 * identically. Needs no model file: Llama 3 / Qwen2 / Tekken / GPT-4o have no vocab in the shared
 * test set, so this is where their regexes are checked.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"              /* defines: CHECK, CHECK_MSG, test_read_file */
#include "vocab/vocab_internal.h" /* defines: vocab_pretok_init, vocab_pretok_split */

static const char FIXTURE[] = "tests/fixtures/tokenizer/pretok.tsv";

int main(void) {
    size_t fix_len = 0;
    char *fix = test_read_file(FIXTURE, &fix_len);
    CHECK_MSG(fix != NULL, "cannot read %s", FIXTURE);
    if (!fix) return test_finish();
    char *text = malloc(fix_len);
    size_t *want = malloc(fix_len * sizeof(size_t));
    int n_cases = 0, n_pass = 0, line_no = 0;
    for (char *line = fix; line && *line; line_no++) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        char *tab1 = strchr(line, '\t'), *tab2 = tab1 ? strchr(tab1 + 1, '\t') : NULL;
        if (*line != '#' && *line) {
            CHECK_MSG(tab2 != NULL, "%s line %d: expected three columns", FIXTURE, line_no + 1);
            if (!tab2) break;
            *tab1 = '\0';
            size_t len = 0;
            for (const char *h = tab1 + 1; h + 1 < tab2; h += 2) {
                unsigned b;
                sscanf(h, "%2x", &b);
                text[len++] = (char)b;
            }
            size_t n_want = 0;
            for (char *p = tab2 + 1, *end; *p; p = end) {
                unsigned long x = strtoul(p, &end, 10);
                if (end == p) break;
                want[n_want++] = x;
            }
            vocab_pretok *pre = NULL;
            size_t *lens = NULL, n = 0;
            pagoda_status st = vocab_pretok_init(line, &pre, NULL);
            if (st == PAGODA_OK) st = vocab_pretok_split(pre, text, len, &lens, &n);
            bool ok = st == PAGODA_OK && n == n_want && (n == 0 || memcmp(lens, want, n * sizeof(size_t)) == 0);
            CHECK_MSG(ok, "%s line %d: pre-tokenizer '%s' splits differently", FIXTURE, line_no + 1, line);
            if (!ok) {
                fprintf(stderr, "      want:");
                for (size_t i = 0; i < n_want; i++) fprintf(stderr, " %zu", want[i]);
                fprintf(stderr, "\n      got: ");
                for (size_t i = 0; i < n; i++) fprintf(stderr, " %zu", lens[i]);
                fprintf(stderr, "\n");
            }
            n_cases++;
            n_pass += ok;
            free(lens);
            vocab_pretok_free(pre);
        }
        line = nl ? nl + 1 : NULL;
    }
    CHECK_MSG(n_cases >= 200, "only %d cases in %s", n_cases, FIXTURE);
    printf("%d/%d pre-tokenizer cases split as HF does\n", n_pass, n_cases);
    free(text);
    free(want);
    free(fix);
    return test_finish();
}
