#!/usr/bin/env bash
# tests/cli/tokenize.sh - the `pagoda tokenize` contract, checked against llama.cpp's tokenizer test
# vectors in ../shared/tokenizer-tests (expected ids from Hugging Face tokenizers):
#   - text on stdin -> the case's ids from the .out file, on one line, single spaces;
#   - --decode of those ids -> the exact text back (no newline added);
#   - --add-special adds BOS for a Llama SPM vocab; --parse-special turns "<s>" into its id;
#   - --help exits 0; a missing model file or a bad id: one line on stderr, exit 1.
# Uses $PAGODA_BIN; exits 77 ("SKIP: ...") when the shared folder is absent.
set -u
cd "$(dirname "$0")/../.."
BIN=${PAGODA_BIN:-build/pagoda}
SHARED=${PAGODA_SHARED:-../shared}
VEC="$SHARED/tokenizer-tests"
if [ ! -d "$VEC" ]; then echo "SKIP: $VEC is absent"; exit 77; fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fails=0 checks=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# Writes case number $2 (1-based) of the .inp file $1 to $TMP/case, byte-exact (no trailing newline).
extract_case() {
    awk -v want="$2" -v out="$TMP/case" '
        BEGIN { n = 1; buf = ""; first = 1 }
        $0 == "__ggml_vocab_test__" {
            if (n == want) { printf "%s", buf > out; close(out); exit }
            n++; buf = ""; first = 1; next
        }
        { buf = first ? $0 : buf "\n" $0; first = 0 }' "$1"
}

for name in llama-spm gpt-2 bert-bge; do
    gguf="$VEC/ggml-vocab-$name.gguf"
    n_cases=$(grep -c '^__ggml_vocab_test__$' "$gguf.inp")
    for ((i = 1; i <= n_cases; i++)); do
        : > "$TMP/case"
        extract_case "$gguf.inp" "$i"
        want=$(sed -n "${i}p" "$gguf.out" | sed 's/^ *//')
        got=$("$BIN" tokenize -m "$gguf" < "$TMP/case")
        checks=$((checks + 1))
        [ "$got" == "$want" ] || fail "$name case $i: got '$got', want '$want'"
        if [ "$name" != bert-bge ]; then # WordPiece is lossy
            echo "$got" | "$BIN" tokenize -m "$gguf" --decode > "$TMP/back"
            checks=$((checks + 1))
            cmp -s "$TMP/case" "$TMP/back" || fail "$name case $i: --decode does not give the text back"
        fi
    done
done

spm="$VEC/ggml-vocab-llama-spm.gguf"
checks=$((checks + 4))
[ "$(printf 'Hello world' | "$BIN" tokenize -m "$spm" --add-special)" == "1 15043 3186" ] ||
    fail "--add-special should add BOS 1 before 'Hello world' (15043 3186)"
[ "$(printf '<s>' | "$BIN" tokenize -m "$spm" --parse-special)" == "1" ] || fail "--parse-special '<s>' should give 1"
[ "$(printf '<s>' | "$BIN" tokenize -m "$spm")" != "1" ] || fail "without --parse-special '<s>' must stay text"
[ "$(printf '1 15043 3186' | "$BIN" tokenize -m "$spm" --decode)" == "Hello world" ] ||
    fail "--decode should drop the BOS and the dummy-prefix space"

checks=$((checks + 1))
"$BIN" tokenize --help | grep -q -- '--decode' || fail "--help should document --decode"

checks=$((checks + 2))
"$BIN" tokenize -m "$TMP/no-such-file.gguf" < /dev/null > /dev/null 2> "$TMP/err"
rc=$?
[ $rc -eq 1 ] || fail "a missing model file should exit 1, got $rc"
[ "$(wc -l < "$TMP/err")" -eq 1 ] || fail "a missing model file should print one line, got: $(cat "$TMP/err")"

for bad in "99999999" "12x" "-1" "abc"; do
    checks=$((checks + 1))
    echo "1 $bad 2" | "$BIN" tokenize -m "$spm" --decode > /dev/null 2> "$TMP/err"
    rc=$?
    [ $rc -eq 1 ] && [ "$(wc -l < "$TMP/err")" -eq 1 ] || fail "bad id '$bad': want exit 1 and one line, got $rc: $(cat "$TMP/err")"
done

echo "$checks checks, $fails failed"
[ $fails -eq 0 ]
