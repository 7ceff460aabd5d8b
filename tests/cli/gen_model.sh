#!/usr/bin/env bash
# tests/cli/gen_model.sh - `pagoda gen-model` writes files whose metadata and tensors follow
# llama.cpp's converter conventions, read back with `pagoda info`. Expected names, shapes (GGUF
# order, ne[0] = input features) and keys are written out here from the model configs, not taken
# from the program's own output. Also: determinism by seed, --vocab-from, and error exits.
set -u
BIN=${PAGODA_BIN:-build/pagoda}
tmp=$(mktemp -d /tmp/pagoda-gen-model-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
# has FILE REGEX: the info output contains a line matching REGEX
has() { grep -Eq -- "$2" "$1" || fail "$(basename "$1"): no line matching '$2'"; }
hasnt() { ! grep -Eq -- "$2" "$1" || fail "$(basename "$1"): unexpected line matching '$2'"; }

# 1. tiny (llama, untied), F32
"$BIN" gen-model --shape tiny -o "$tmp/tiny.gguf" -q || fail "gen-model tiny"
"$BIN" info -m "$tmp/tiny.gguf" --tensors >"$tmp/tiny.txt" || fail "info tiny"
for kv in 'general.architecture +"llama"' 'llama.embedding_length +256$' 'llama.block_count +2$' \
          'llama.feed_forward_length +512$' 'llama.attention.head_count +4$' \
          'llama.attention.head_count_kv +2$' 'llama.context_length +512$' 'llama.rope.freq_base +10000$' \
          'llama.attention.layer_norm_rms_epsilon +1e-05$' 'llama.rope.dimension_count +64$' \
          'general.file_type +1$' 'tokenizer.ggml.model +"gpt2"' 'tokenizer.ggml.tokens +\[str x 512\]' \
          'tokenizer.ggml.merges +\[str x 254\]' 'tokenizer.ggml.bos_token_id +510$' \
          'tokenizer.ggml.eos_token_id +511$'; do
    has "$tmp/tiny.txt" "^ +$kv"
done
for t in 'token_embd.weight +F16 +\[256, 512\]' 'output_norm.weight +F32 +\[256\]' \
         'output.weight +F16 +\[256, 512\]'; do
    has "$tmp/tiny.txt" "^ +$t"
done
for l in 0 1; do
    for t in "attn_norm.weight +F32 +\[256\]" "attn_q.weight +F16 +\[256, 256\]" \
             "attn_k.weight +F16 +\[256, 128\]" "attn_v.weight +F16 +\[256, 128\]" \
             "attn_output.weight +F16 +\[256, 256\]" "ffn_norm.weight +F32 +\[256\]" \
             "ffn_gate.weight +F16 +\[256, 512\]" "ffn_up.weight +F16 +\[256, 512\]" \
             "ffn_down.weight +F16 +\[512, 256\]"; do
        has "$tmp/tiny.txt" "^ +blk\.$l\.$t"
    done
done
has "$tmp/tiny.txt" '^tensors: 21,'
hasnt "$tmp/tiny.txt" 'bias'

# 2. tiny-qwen2 (tied, QKV biases), Q4_K
"$BIN" gen-model --shape tiny-qwen2 --type Q4_K -o "$tmp/q.gguf" -q || fail "gen-model tiny-qwen2"
"$BIN" info -m "$tmp/q.gguf" --tensors >"$tmp/q.txt" || fail "info tiny-qwen2"
has "$tmp/q.txt" '^ +general.architecture +"qwen2"'
has "$tmp/q.txt" '^ +qwen2.rope.freq_base +1e\+06$'
has "$tmp/q.txt" '^ +qwen2.attention.layer_norm_rms_epsilon +1e-06$'
has "$tmp/q.txt" '^ +general.file_type +15$'
has "$tmp/q.txt" '^ +blk\.1\.attn_q\.bias +F32 +\[256\]'
has "$tmp/q.txt" '^ +blk\.1\.attn_k\.bias +F32 +\[128\]'
has "$tmp/q.txt" '^ +blk\.0\.ffn_down\.weight +Q4_K +\[512, 256\]'
hasnt "$tmp/q.txt" '^ +output\.weight'
has "$tmp/q.txt" '^tensors: 26,'  # embd + 2 x (2 norms, 7 matrices, 3 biases) + output_norm

# 3. real shapes, cut down with --layers / --vocab
"$BIN" gen-model --shape smollm2-135m --layers 1 --type Q8_0 -o "$tmp/s.gguf" -q || fail "smollm2"
"$BIN" info -m "$tmp/s.gguf" --tensors >"$tmp/s.txt" || fail "info smollm2"
for t in 'token_embd.weight +Q8_0 +\[576, 49152\]' 'blk.0.attn_q.weight +Q8_0 +\[576, 576\]' \
         'blk.0.attn_k.weight +Q8_0 +\[576, 192\]' 'blk.0.ffn_up.weight +Q8_0 +\[576, 1536\]' \
         'blk.0.ffn_down.weight +Q8_0 +\[1536, 576\]'; do
    has "$tmp/s.txt" "^ +$t"
done
has "$tmp/s.txt" '^ +llama.rope.freq_base +100000$'
has "$tmp/s.txt" '^ +llama.block_count +1$'
hasnt "$tmp/s.txt" '^ +output\.weight'
"$BIN" gen-model --shape llama-3.2-1b --layers 1 --vocab 1024 --type Q4_0 -o "$tmp/l.gguf" -q ||
    fail "llama-3.2-1b"
"$BIN" info -m "$tmp/l.gguf" --tensors >"$tmp/l.txt" || fail "info llama-3.2-1b"
has "$tmp/l.txt" '^ +rope_freqs.weight +F32 +\[32\]'
has "$tmp/l.txt" '^ +blk.0.attn_k.weight +Q4_0 +\[2048, 512\]'
has "$tmp/l.txt" '^ +blk.0.ffn_gate.weight +Q4_0 +\[2048, 8192\]'
has "$tmp/l.txt" '^ +llama.rope.freq_base +500000$'
has "$tmp/l.txt" '^ +llama.context_length +131072$'

# 4. determinism: same seed, same bytes; another seed, other bytes
"$BIN" gen-model --shape tiny --type BF16 --seed 7 -o "$tmp/a.gguf" -q
"$BIN" gen-model --shape tiny --type BF16 --seed 7 -o "$tmp/b.gguf" -q
"$BIN" gen-model --shape tiny --type BF16 --seed 8 -o "$tmp/c.gguf" -q
cmp -s "$tmp/a.gguf" "$tmp/b.gguf" || fail "same seed gave different files"
cmp -s "$tmp/a.gguf" "$tmp/c.gguf" && fail "different seeds gave the same file"

# 5. --vocab-from copies the tokenizer and sets the vocabulary size
shared=${PAGODA_SHARED:-../shared}
vocab="$shared/tokenizer-tests/ggml-vocab-gpt-2.gguf"
if [ -f "$vocab" ]; then
    "$BIN" gen-model --shape tiny --vocab-from "$vocab" -o "$tmp/v.gguf" -q || fail "--vocab-from"
    "$BIN" info -m "$tmp/v.gguf" --tensors >"$tmp/v.txt" || fail "info vocab-from"
    has "$tmp/v.txt" '^ +tokenizer.ggml.tokens +\[str x 50257\]'
    has "$tmp/v.txt" '^ +tokenizer.ggml.merges +\[str x 50000\]'
    has "$tmp/v.txt" '^ +tokenizer.ggml.pre +"gpt-2"'
    has "$tmp/v.txt" '^ +llama.vocab_size +50257$'
    has "$tmp/v.txt" '^ +token_embd.weight +F16 +\[256, 50257\]'
else
    echo "note: $vocab absent; --vocab-from not checked"
fi

# 6. errors: usage errors exit 2, run-time errors exit 1 with one line and no file left behind
"$BIN" gen-model --help | grep -q 'smollm2-135m' || fail "--help lists shapes"
"$BIN" gen-model --shape nope -o "$tmp/x.gguf" 2>/dev/null; [ $? -eq 2 ] || fail "unknown shape: exit 2"
"$BIN" gen-model --shape tiny 2>/dev/null; [ $? -eq 2 ] || fail "missing -o: exit 2"
"$BIN" gen-model --shape tiny --type Q9_9 -o "$tmp/x.gguf" 2>/dev/null; [ $? -eq 2 ] || fail "bad type: exit 2"
"$BIN" gen-model --shape smollm2-135m --layers 1 --type Q4_K -o "$tmp/x.gguf" 2>"$tmp/err.txt"
[ $? -eq 1 ] || fail "Q4_K on 576-wide rows: exit 1"
grep -q 'multiple' "$tmp/err.txt" || fail "Q4_K on 576-wide rows: message: $(cat "$tmp/err.txt")"
"$BIN" gen-model --shape tiny -o "$tmp/no/such/dir/x.gguf" -q 2>"$tmp/err.txt"
[ $? -eq 1 ] || fail "unwritable output: exit 1"
grep -q 'No such file' "$tmp/err.txt" || fail "unwritable output: message: $(cat "$tmp/err.txt")"
[ ! -e "$tmp/x.gguf" ] || fail "a failed run left $tmp/x.gguf"
ls "$tmp" | grep -q '\.tmp\.' && fail "temporary files left behind"

[ $fails -eq 0 ] && echo "gen-model: all checks passed"
exit $((fails > 0))
