#!/usr/bin/env bash
# Bad inputs to `pagoda run` / `pagoda info` give a one-line error that says what is wrong, a
# non-zero exit status, and no crash (under the ASan build, no sanitizer report either).
# Corrupt files are made from ../shared/models/stories260K.gguf by patching bytes with perl.
set -u
bin=${PAGODA_BIN:?PAGODA_BIN must point at the pagoda binary}
shared=${PAGODA_SHARED:-../shared}
model=$shared/models/stories260K.gguf
[ -f "$model" ] || { echo "SKIP: $model not found (set PAGODA_SHARED)"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0 checks=0

# expect_error NAME PATTERN -- command...: exit status 1 (2 with EXPECT_RC=2, for usage errors),
# exactly one stderr line matching PATTERN.
expect_error() {
    local name=$1 pattern=$2 want_rc=${EXPECT_RC:-1}; shift 3
    checks=$((checks + 1))
    "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$? lines
    lines=$(wc -l <"$tmp/err")
    if [ $rc -ne "$want_rc" ] || [ "$lines" -ne 1 ] || ! grep -qE "$pattern" "$tmp/err" || grep -q Sanitizer "$tmp/err"; then
        echo "FAIL $name: exit $rc, $lines stderr lines, wanted /$pattern/:"; sed 's/^/  | /' "$tmp/err" | head -20
        fails=$((fails + 1))
    else
        echo "ok   $name: $(cat "$tmp/err")"
    fi
}

# patch IN OUT PERL-SUBSTITUTION: a binary-safe byte substitution that must change the file.
patch_file() {
    perl -0777 -pe "$3" "$1" >"$2"
    cmp -s "$1" "$2" && { echo "FAIL: patch '$3' changed nothing"; fails=$((fails + 1)); }
}

expect_error "missing file" "cannot open.*No such file" -- "$bin" run -m "$tmp/nope.gguf" -p hi
expect_error "directory" "not a regular file" -- "$bin" run -m "$tmp" -p hi
: >"$tmp/empty.gguf"
expect_error "empty file" "empty file" -- "$bin" info -m "$tmp/empty.gguf"
for bytes in 3 20 100 5000 14176 600000; do
    head -c $bytes "$model" >"$tmp/trunc.gguf"
    expect_error "truncated to $bytes bytes" "truncated|not a GGUF" -- "$bin" run -m "$tmp/trunc.gguf" -p hi
done
patch_file "$model" "$tmp/magic.gguf" 's/^GGUF/GGUG/'
expect_error "bad magic" "not a GGUF file" -- "$bin" run -m "$tmp/magic.gguf" -p hi
patch_file "$model" "$tmp/version.gguf" 's/^GGUF\x03/GGUF\x07/'
expect_error "future version" "version 7 is not supported" -- "$bin" info -m "$tmp/version.gguf"
patch_file "$model" "$tmp/arch.gguf" 's/(general\.architecture\x08\x00{3}\x05\x00{7})llama/${1}gpt99/'
expect_error "unknown architecture" "architecture 'gpt99' is not supported" -- "$bin" run -m "$tmp/arch.gguf" -p hi
patch_file "$model" "$tmp/type.gguf" 's/(blk\.0\.attn_q\.weight\x02\x00{3}.{16})\x00{4}/${1}\x14\x00\x00\x00/s'
expect_error "unsupported tensor type" "IQ4_NL.*cannot compute" -- "$bin" run -m "$tmp/type.gguf" -p hi
patch_file "$model" "$tmp/count.gguf" 's/^(GGUF\x03\x00{3}).{8}/${1}\xff\xff\xff\xff\xff\xff\x00\x00/s'
expect_error "huge tensor count" "tensor count .* impossible" -- "$bin" info -m "$tmp/count.gguf"
long=$(printf 'Once upon a time %.0s' $(seq 1 40))
expect_error "prompt longer than the context" "context" -- "$bin" run -m "$model" -c 32 -p "$long" -n 4
EXPECT_RC=2 expect_error "bad option value" "invalid value '1.5' for --top-p" -- "$bin" run -m "$model" -p hi --top-p 1.5
# and a good run still works on the same binary
checks=$((checks + 1))
if ! "$bin" run -m "$model" -p "Once upon a time" -n 8 --temp 0 >"$tmp/out" 2>"$tmp/err"; then
    echo "FAIL good run:"; cat "$tmp/err"; fails=$((fails + 1))
fi
echo "$checks checks, $fails failed"
[ $fails -eq 0 ]
