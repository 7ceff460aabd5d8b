#!/usr/bin/env python3
"""Makes the tokenizer fixtures, with Hugging Face `tokenizers` as the reference:

tests/fixtures/tokenizer/smollm2.tsv: texts and the token ids SmolLM2-135M-Instruct's tokenizer
gives for them (for tests/test_tokenizer_smollm2.c);
tests/fixtures/tokenizer/pretok.tsv: how the pre-tokenizers of common byte-level BPE families
(GPT-2, Llama 3, Qwen2, SmolLM/StarCoder, Tekken, GPT-4o) cut texts into pieces, written as the
byte lengths of the pieces (for tests/test_tokenizer_pretok.c). This covers the regexes of model
families that have no test vocab in ../shared/tokenizer-tests. The HF pipelines use the regexes as
the models' tokenizer.json files spell them (e.g. with (?i:...)), followed by HF's ByteLevel step,
which spells each byte as one character, so a piece's length in characters is its length in bytes.

Why the tokenizer is rebuilt here instead of loaded with transformers: transformers can build a fast
tokenizer from a GGUF (`AutoTokenizer.from_pretrained(dir, gguf_file=...)`), but (1) in this
environment its GGUF reader needs torch, which is not installed, and (2) its GGUF converter does not
know the "smollm" pre-tokenizer and would fall back to plain GPT-2 splitting, which groups digits
("123" as one piece) where SmolLM2 splits every digit. So this script builds the tokenizer the way
SmolLM2's own tokenizer.json declares it, from the vocab and merges stored in the GGUF:
    model:          BPE(vocab = tokenizer.ggml.tokens, merges = tokenizer.ggml.merges)
    normalizer:     none
    pre_tokenizer:  Sequence[Digits(individual_digits=True), ByteLevel(add_prefix_space=False)]
    decoder:        ByteLevel
    added tokens:   every token of type 3 (control), e.g. <|im_start|>, as special tokens
The BPE merge loop, the regex split and the special-token matching are then all Hugging Face's Rust
code, independent of Pagoda's C.

Each line of the output (after '#' comments) is tab-separated:
    text as hex UTF-8 bytes \t ids with special-token text NOT parsed \t ids with it parsed
"not parsed" uses tokenizers' `encode_special_tokens = True` (special-token text is tokenized as
plain text, like llama.cpp's parse_special=false); "parsed" is the default behaviour. No BOS/EOS is
added in either (SmolLM2's tokenizer adds none: tokenizer.ggml.add_bos_token is false).

Usage: tools/make_tokenizer_fixtures.py [path/to/SmolLM2-135M-Instruct.Q4_1.gguf]
       (default: $PAGODA_MODEL_DIR or ~/.cache/pagoda/models)
"""
import os
import sys

import gguf
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

MODEL_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "tokenizer",
                   "smollm2.tsv")

TEXTS = [
    "Hello world",
    " Hello world",
    "Hello, world! How are you doing today?",
    "The quick brown fox jumps over the lazy dog.",
    "I'm sure we'll see THEY'RE right, isn't it? You've done it, 'd",
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
    "int main(void) {\n\tprintf(\"%d\\n\", 42);\n\treturn 0;\n}\n",
    "for (size_t i = 0; i < n; i++) { sum += a[i] * b[i]; }",
    '{"name": "pagoda", "version": [1, 2, 3], "ok": true}',
    "1234567890",
    "3.14159265358979 and 2.71828, 1,000,000 or 1e-9",
    "Call 555-0123 before 2024-12-31T23:59:59Z",
    "   leading spaces",
    "trailing spaces   ",
    "tabs\t\tand\tspaces  \t mixed",
    "\n",
    "\n\n\n",
    "  \n a",
    "\n\n  \t x  ",
    "I'M HE'S they'LL a'b ''s 'x",
    "CamelCaseWords HTTPServer lowerUPPER \u00c0\u00c9\u00ceabc",
    "\u0661\u0662\u0663 arabic digits, \u2167 roman numeral, \u00bd half",
    "x\u00a0y\u3000z",
    "line one\r\nline two\r\n",
    "  \n  \n\n   \t\n",
    "🦙 llamas 🚀 rockets 👍🏽",
    "👨‍👩‍👧‍👦 family, 🏳️‍🌈 flag",
    "我想在apple工作1314151天～",
    "日本語のテキストです。カタカナとひらがな。",
    "한국어 텍스트입니다",
    "Привет, как дела? Всё хорошо.",
    "مرحبا بالعالم",
    "नमस्ते दुनिया",
    "Crème brûlée, naïve café, Führer, Cửa Việt, Ångström",
    "e\u0301 (combining acute) vs \u00e9 (precomposed)",
    "ＡＢＣ１２３ full-width",
    "∑∫√∞≠≤≥ ± × ÷ → ⇒ ∀x∃y",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>",
    "text<|im_end|>more",
    "<|im_start incomplete and <|im_end|",
    "supercalifragilisticexpialidocious pneumonoultramicroscopicsilicovolcanoconiosis",
    "a" * 64,
    "https://example.com/path?query=1&other=two#frag",
    "# Title\n\n- item *one*\n- item **two**\n\n```python\nprint('hi')\n```\n",
    "Zero\u200bwidth\u200cjoiners\u200d and\u00a0nbsp",
    "!!!!!!??? ...... ,,,, ;;",
    ("Tokenizers split text into pieces, and a longer paragraph exercises many merges at once. "
     "It has numbers like 42 and 1999, punctuation (lots of it!), and some rarer words: "
     "floccinaucinihilipilification, antidisestablishmentarianism. ") * 3,
]


def find_model(argv):
    if len(argv) > 1:
        return argv[1]
    for d in (os.environ.get("PAGODA_MODEL_DIR"), os.path.expanduser("~/.cache/pagoda/models")):
        if d and os.path.exists(os.path.join(d, MODEL_NAME)):
            return os.path.join(d, MODEL_NAME)
    sys.exit(f"cannot find {MODEL_NAME}: pass its path or set PAGODA_MODEL_DIR")


def field(reader, key):
    return reader.fields[key].contents()


def build_tokenizer(path):
    r = gguf.GGUFReader(path)
    assert field(r, "tokenizer.ggml.model") == "gpt2"
    assert field(r, "tokenizer.ggml.pre") == "smollm"
    tokens = field(r, "tokenizer.ggml.tokens")
    types = field(r, "tokenizer.ggml.token_type")
    merges = [tuple(m.split(" ", 1)) for m in field(r, "tokenizer.ggml.merges")]
    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t, ty in zip(tokens, types) if ty == 3])
    return tok


_LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
           r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_QWEN2 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
          r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_TEKKEN = (r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"
           r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*"
           r"|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_GPT4O = (r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
          r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
          r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def split_then_bytes(regex):
    return pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(regex), behavior="isolated"),
                                    pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])


# tokenizer.ggml.pre name -> the HF pre-tokenizer of that family
PRETOKENIZERS = {
    "gpt-2": lambda: pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    "smollm": lambda: pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                               pre_tokenizers.ByteLevel(add_prefix_space=False)]),
    "llama-bpe": lambda: split_then_bytes(_LLAMA3),
    "qwen2": lambda: split_then_bytes(_QWEN2),
    "tekken": lambda: split_then_bytes(_TEKKEN),
    "gpt-4o": lambda: split_then_bytes(_GPT4O),
}


def write_pretok():
    out = os.path.join(os.path.dirname(OUT), "pretok.tsv")
    lines = ["# Pre-tokenizer splits by Hugging Face tokenizers, made by tools/make_tokenizer_fixtures.py.",
             "# Columns: tokenizer.ggml.pre name, text (hex UTF-8), byte lengths of the pieces."]
    for name, make in PRETOKENIZERS.items():
        pre = make()
        for text in TEXTS:
            pieces = [p for p, _ in pre.pre_tokenize_str(text)]
            assert sum(len(p) for p in pieces) == len(text.encode("utf-8")), (name, text)
            lines.append("\t".join([name, text.encode("utf-8").hex(), " ".join(str(len(p)) for p in pieces)]))
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {len(lines) - 2} cases to {os.path.relpath(out)}")


def main():
    write_pretok()
    tok = build_tokenizer(find_model(sys.argv))
    lines = [
        "# SmolLM2-135M-Instruct tokenizer reference, made by tools/make_tokenizer_fixtures.py with",
        "# Hugging Face tokenizers. Columns: text (hex UTF-8), ids (special text not parsed), ids (parsed).",
    ]
    for text in TEXTS:
        tok.encode_special_tokens = False
        parsed = tok.encode(text, add_special_tokens=False).ids
        tok.encode_special_tokens = True
        plain = tok.encode(text, add_special_tokens=False).ids
        assert tok.decode(plain, skip_special_tokens=False) == text, text
        lines.append("\t".join([text.encode("utf-8").hex(), " ".join(map(str, plain)),
                                " ".join(map(str, parsed))]))
    with open(OUT, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {len(TEXTS)} cases to {os.path.relpath(OUT)}")


if __name__ == "__main__":
    main()
