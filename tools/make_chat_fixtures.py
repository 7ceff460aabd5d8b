#!/usr/bin/env python3
"""Makes the chat-template fixtures under tests/fixtures/chat/ with HF transformers as the reference.

Outputs (a length-prefixed text format that tests/test_chat_template.c and tests/test_jinja.c read):
  chat_cases.txt   every conversation below rendered with each model's REAL template by
                   PreTrainedTokenizerFast.apply_chat_template(..., tokenize=False) (HF's own jinja
                   environment: trim_blocks, lstrip_blocks, raise_exception, HF's tojson, ...).
  jinja_cases.txt  small templates exercising interpreter features, rendered by HF's compiled jinja
                   environment (transformers.utils.chat_template_utils._compile_jinja_template).

Record format: one field per line, "key value" or "key <n_bytes>" followed by a line holding exactly
n_bytes bytes (then "\n"). A record ends with "end". Lines starting with '#' are comments.

The templates live in tests/fixtures/chat/templates/*.jinja (see SOURCES.md there). SmolLM2's is
re-read from its GGUF (key tokenizer.chat_template) when the model file is present and must match.

Usage: python3 tools/make_chat_fixtures.py   (from the repository root; no network needed)
"""
import json
import os
import sys

from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from transformers import PreTrainedTokenizerFast
from transformers.utils.chat_template_utils import _compile_jinja_template

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "tests", "fixtures", "chat")
TEMPLATE_DIR = os.path.join(OUT_DIR, "templates")
SMOLLM2_GGUF = os.path.expanduser("~/.cache/pagoda/models/SmolLM2-135M-Instruct.Q4_1.gguf")

# family -> (builtin name, bos_token, eos_token); bos/eos are those of the model's tokenizer_config.
FAMILIES = {
    "smollm2": ("smollm2", "<|im_start|>", "<|im_end|>"),
    "qwen2": ("qwen2", "", "<|im_end|>"),
    "chatml": ("chatml", "<s>", "<|im_end|>"),
    "llama3": ("llama3", "<|begin_of_text|>", "<|eot_id|>"),
    "llama3.1": ("llama3.1", "<|begin_of_text|>", "<|eot_id|>"),
    "llama2": ("llama2", "<s>", "</s>"),
    "mistral": ("mistral", "<s>", "</s>"),
    "mixtral": ("mistral-v0.2", "<s>", "</s>"),
}

SPECIAL = ("Line one\nline two\n\n\ttabbed \"quoted\" 'single' back\\slash {{ not_a_var }} {% if %} "
           "unicode: héllo 世界 🙂 — ok")

CONVERSATIONS = {
    "system_user": [("system", "You are a helpful assistant."), ("user", "Hello!")],
    "user_only": [("user", "What is 2+2?")],
    "multi_turn": [("user", "Hi"), ("assistant", "Hello! How can I help?"), ("user", "Tell me a joke.")],
    "system_multi_turn": [("system", "Be brief."), ("user", "Hi"), ("assistant", "   I am an assistant   "),
                          ("user", "Another question")],
    "special_chars": [("system", "  \u00a0Sys with spaces\u3000 \n"), ("user", SPECIAL),
                      ("assistant", "Answer:\n```c\nint main(void) { return 0; }\n```\n"), ("user", "\u2028next\u2029")],
    "empty_content": [("user", "")],
    "not_alternating": [("user", "a"), ("user", "b")],
    "assistant_first": [("assistant", "I speak first"), ("user", "ok")],
    "system_after_user": [("user", "a"), ("system", "late system message")],
    "tool_result": [("user", "Weather?"), ("assistant", "Calling."), ("tool", "{\"temp\": 21}\n\"quoted\"\t\u0001"),
                    ("user", "Thanks")],
}


def read_template(family):
    path = os.path.join(TEMPLATE_DIR, family + ".jinja")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if family == "smollm2" and os.path.exists(SMOLLM2_GGUF):
        import gguf
        reader = gguf.GGUFReader(SMOLLM2_GGUF)
        field = reader.fields["tokenizer.chat_template"]
        from_gguf = bytes(field.parts[field.data[0]]).decode("utf-8")
        if from_gguf != text:
            sys.exit("smollm2.jinja differs from the GGUF's tokenizer.chat_template")
    return text


def make_tokenizer(template, bos, eos):
    vocab = {"<unk>": 0}
    for tok in (bos, eos):
        if tok and tok not in vocab:
            vocab[tok] = len(vocab)
    tok = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    kwargs = {"tokenizer_object": tok, "unk_token": "<unk>", "chat_template": template}
    if bos:
        kwargs["bos_token"] = bos
    if eos:
        kwargs["eos_token"] = eos
    return PreTrainedTokenizerFast(**kwargs)


def field(out, key, data):
    raw = data.encode("utf-8")
    out.append(f"{key} {len(raw)}\n".encode() + raw + b"\n")


def write_chat_cases():
    out = [b"# made by tools/make_chat_fixtures.py with transformers apply_chat_template (tokenize=False)\n"]
    n = 0
    for family, (builtin, bos, eos) in FAMILIES.items():
        template = read_template(family)
        tokenizer = make_tokenizer(template, bos, eos)
        for conv_name, conv in CONVERSATIONS.items():
            messages = [{"role": r, "content": c} for r, c in conv]
            for agp in (False, True):
                out.append(f"case {family}/{conv_name}/agp{int(agp)}\n".encode())
                out.append(f"template {family}\nbuiltin {builtin}\n".encode())
                field(out, "bos", bos)
                field(out, "eos", eos)
                out.append(f"add_generation_prompt {int(agp)}\n".encode())
                for r, c in conv:
                    out.append(f"message {r}\n".encode())
                    field(out, "content", c)
                try:
                    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=agp)
                    field(out, "expect", text)
                except Exception as e:  # raise_exception() in the template -> jinja2 TemplateError
                    field(out, "error", str(e))
                out.append(b"end\n")
                n += 1
    with open(os.path.join(OUT_DIR, "chat_cases.txt"), "wb") as f:
        f.write(b"".join(out))
    print(f"chat_cases.txt: {n} cases")


# (name, template, context). Context values are JSON; HF's environment renders them.
JINJA_CASES = [
    ("text_only", "plain text\nwith lines\n", {}),
    ("trailing_newline_kept_once", "a\n\n", {}),
    ("var", "{{ x }}|{{ y }}|{{ z }}|{{ w }}", {"x": "s", "y": 3, "z": 2.5, "w": None}),
    ("bools", "{{ true }} {{ false }} {{ True }} {{ none }} {{ None }}", {}),
    ("undefined_prints_empty", "[{{ nope }}]", {}),
    ("arith", "{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 / 2 }} "
              "{{ 10 / 2 }} {{ 2 ** 10 }} {{ 1.5 + 1 }} {{ -x }} {{ 0.1 + 0.2 }}", {"x": 4}),
    ("concat", "{{ 'a' + 'b' }} {{ 'a' ~ 1 ~ none ~ true }} {{ 'ab' * 3 }} {{ [1] + [2, 3] }}", {}),
    ("compare", "{{ 1 < 2 }} {{ 2 <= 1 }} {{ 'a' == 'a' }} {{ 'a' != 'a' }} {{ 3 == 3.0 }} {{ 1 < 2 < 3 }} "
                "{{ 'b' > 'a' }} {{ [1, 2] == [1, 2] }} {{ none == none }} {{ x == y }}", {"x": {"a": 1}, "y": {"a": 1}}),
    ("logic", "{{ true and false }} {{ true or false }} {{ not true }} {{ not x }} {{ 0 or 'z' }} {{ '' and 1 }} "
              "{{ x and y }}", {"x": [], "y": 5}),
    ("in_op", "{{ 'a' in 'cat' }} {{ 'k' in d }} {{ 2 in [1, 2] }} {{ 3 not in [1, 2] }} {{ 'z' not in d }}",
     {"d": {"k": 1}}),
    ("ternary", "{{ 'yes' if x else 'no' }} {{ 'yes' if not x else 'no' }} [{{ 'only' if false }}]", {"x": 1}),
    ("strings_escapes", "{{ 'a\\nb\\tc\\\\d\\'e' }}|{{ \"q\\\"q\" }}|{{ 'é世🙂' }}|{{ '\\u00e9\\x41' }}", {}),
    ("raw_newline_in_string", "{{ 'line1\nline2' }}", {}),
    ("subscript_attr", "{{ m['role'] }} {{ m.content }} {{ l[0] }} {{ l[-1] }} {{ l[9] }}| {{ m.nope }}|",
     {"m": {"role": "user", "content": "hi"}, "l": [1, 2, 3]}),
    ("slicing", "{{ l[1:] }} {{ l[:2] }} {{ l[::-1] }} {{ l[-2:] }} {{ s[1:3] }} {{ s[::-1] }} {{ l[1:100] }}",
     {"l": [1, 2, 3, 4], "s": "héllo"}),
    ("if_elif_else", "{% for v in [1, 2, 3] %}{% if v == 1 %}one{% elif v == 2 %}two{% else %}many{% endif %},"
                     "{% endfor %}", {}),
    ("for_loop_vars", "{% for x in ['a', 'b', 'c'] %}{{ loop.index0 }}{{ loop.index }}{{ loop.first }}"
                      "{{ loop.last }}{{ loop.length }}{{ loop.revindex }}{{ loop.revindex0 }}{{ x }};{% endfor %}", {}),
    ("for_else_empty", "{% for x in [] %}x{% else %}empty{% endfor %}", {}),
    ("for_filter", "{% for x in range(10) if x % 3 == 0 %}{{ x }}{{ loop.index }},{% endfor %}", {}),
    ("for_dict_items", "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for k in d %}{{ k }}{% endfor %}",
     {"d": {"b": 1, "a": 2}}),
    ("for_unpack_list", "{% for a, b in [[1, 2], [3, 4]] %}{{ a + b }},{% endfor %}", {}),
    ("loop_previtem", "{% for x in [1,2,3] %}{{ loop.previtem }}-{{ loop.nextitem }};{% endfor %}", {}),
    ("nested_loops", "{% for i in [1, 2] %}{% for j in [1, 2] %}{{ loop.index }}{{ i * j }} {% endfor %}"
                     "{{ loop.index }}|{% endfor %}", {}),
    ("break_continue", "{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 5 %}"
                       "{% break %}{% endif %}{{ i }}{% endfor %}", {}),
    ("set_scoping", "{% set x = 1 %}{% for i in [1, 2] %}{% set x = x + i %}[{{ x }}]{% endfor %}{{ x }}", {}),
    ("set_in_loop_fresh_each_iteration", "{% for i in [1, 2] %}[{{ y }}]{% set y = i %}{% endfor %}[{{ y }}]", {}),
    ("namespace", "{% set ns = namespace(found=false, n=0) %}{% for m in ms %}{% if m == 'x' %}"
                  "{% set ns.found = true %}{% set ns.n = ns.n + 1 %}{% endif %}{% endfor %}{{ ns.found }} {{ ns.n }}",
     {"ms": ["a", "x", "x"]}),
    ("set_block", "{% set greeting %}Hello {{ name }}!{% endset %}[{{ greeting }}]", {"name": "Bob"}),
    ("set_tuple", "{% set a, b = 1, 2 %}{{ a }}{{ b }}", {}),
    ("whitespace_control", "a   {%- if true -%}   b   {%- endif -%}   c  {{- ' d ' -}}  e\n  {{ 'f' }}", {}),
    ("trim_lstrip_blocks", "<ul>\n  {% for x in [1, 2] %}\n    <li>{{ x }}</li>\n  {% endfor %}\n</ul>\n", {}),
    ("lstrip_not_midline", "a {% if true %} b {% endif %} c", {}),
    ("lstrip_plus_disables", "x\n    {%+ if true %}y{% endif %}\n", {}),
    ("comments", "a {# comment {{ x }} #} b\n  {# own line #}\nc {#- trim -#} d", {}),
    ("var_not_trimmed_by_trim_blocks", "{{ 'a' }}\nb", {}),
    ("filters_basic", "{{ '  hi  ' | trim }}|{{ 'Hi' | upper }}|{{ 'Hi' | lower }}|{{ [1, 2] | length }}|"
                      "{{ 'abc' | length }}|{{ d | length }}|{{ 'hello world' | title }}|{{ 'hELLO' | capitalize }}",
     {"d": {"a": 1}}),
    ("filters_more", "{{ [1, 2, 3] | join(', ') }}|{{ ['a', 'b'] | join }}|{{ [3, 1, 2] | first }}|"
                     "{{ [3, 1, 2] | last }}|{{ x | default('dflt') }}|{{ '' | default('e', true) }}|"
                     "{{ 42 | string }}|{{ '7' | int + 1 }}|{{ 'a-b-c' | replace('-', '+') }}|{{ [1, 2] | reverse | list }}|"
                     "{{ -3 | abs }}|{{ [3, 1, 2] | sort }}|{{ 'ab' | list }}|{{ 2.5 | round }}|{{ 2.567 | round(2) }}|"
                     "{{ '3.5' | float }}|{{ [1, 2, 3] | sum }}", {}),
    ("filter_select_reject", "{{ ['a', 'b', 'c'] | reject('equalto', 'b') | list }}|"
                             "{{ [1, 2, 3, 4] | select('odd') | list }}|{{ ms | selectattr('role', 'equalto', 'user') "
                             "| map(attribute='content') | join(',') }}|{{ ms | rejectattr('role', 'eq', 'user') | list "
                             "| length }}|{{ ['a', 'b'] | map('upper') | list }}",
     {"ms": [{"role": "user", "content": "u1"}, {"role": "assistant", "content": "a1"},
             {"role": "user", "content": "u2"}]}),
    ("filter_items_dictsort", "{% for k, v in d | items %}{{ k }}{{ v }}{% endfor %}|{% for k, v in d | dictsort %}"
                              "{{ k }}{{ v }}{% endfor %}", {"d": {"b": 1, "a": 2}}),
    ("tojson", "{{ x | tojson }}", {"x": {"s": "é\"\n<\u2028", "l": [1, 2.5, None, True, False], "e": {}, "el": []}}),
    ("tojson_indent", "{{ x | tojson(indent=4) }}", {"x": {"name": "f", "p": {"a": [1, {"b": "c"}], "e": []}}}),
    ("tojson_string", "{{ 'he said \"hi\"' | tojson }} {{ 1.0 | tojson }} {{ none | tojson }}", {}),
    ("indent_filter", "{{ 'a\nb\nc' | indent(2) }}|{{ 'a\nb' | indent(2, true) }}", {}),
    ("string_methods", "{{ '  x  '.strip() }}|{{ 'xxaxx'.strip('x') }}|{{ '  x '.lstrip() }}|{{ ' x  '.rstrip() }}|"
                       "{{ 'abc'.startswith('ab') }}|{{ 'abc'.endswith('bc') }}|{{ 'a,b,,c'.split(',') }}|"
                       "{{ ' a  b '.split() }}|{{ 'a b c'.split(' ', 1) }}|{{ 'Ab'.upper() }}{{ 'Ab'.lower() }}|"
                       "{{ 'x-y'.replace('-', '') }}|{{ 'hello world'.title() }}|{{ 'abcb'.find('b') }}|"
                       "{{ 'abcb'.count('b') }}|{{ 'ab'.startswith(('x', 'a')) }}|{{ 'a\\nb'.splitlines() }}", {}),
    ("dict_methods", "{{ d.get('a') }} {{ d.get('z', 'dflt') }} {{ d.get('z') }} {{ d.keys() | list }} "
                     "{{ d.values() | list }} {{ d['a'] }}", {"d": {"a": 1, "b": [2]}}),
    ("tests", "{{ x is defined }}{{ nope is defined }}{{ nope is undefined }}{{ n is none }}{{ s is string }}"
              "{{ x is number }}{{ d is mapping }}{{ l is iterable }}{{ s is iterable }}{{ l is sequence }}"
              "{{ x is integer }}{{ 1.5 is float }}{{ 3 is odd }}{{ 4 is even }}{{ 6 is divisibleby(3) }}"
              "{{ true is boolean }}{{ x is not none }}{{ 'a' is in 'cat' }}{{ 1 is eq 1 }}{{ x is sameas 1 }}"
              "{{ true is true }}{{ d is string }}{{ s is lower }}{{ 'A' is upper }}",
     {"x": 1, "n": None, "s": "str", "d": {}, "l": []}),
    ("repr_values", "{{ [1, 'a', none, true, 2.5, {'k': 'v'}] }} {{ {'a': [1], 'b': {}} }} {{ ('x',) }} {{ () }} "
                    "{{ ['it\\'s', 'a\"b', 'c\\'d\"e', '\\n'] }}", {}),
    ("float_repr", "{{ 1.0 }} {{ 0.1 }} {{ 1e20 }} {{ 1e16 }} {{ 1e-5 }} {{ 1 / 3 }} {{ 123456789.125 }} {{ 2.0 ** 0.5 }} "
                   "{{ -0.0 }} {{ 1e15 }} {{ 0.0001 }}", {}),
    ("list_dict_literals", "{% set l = [1, [2, 3], {'a': 'b'}] %}{{ l[1][0] }}{{ l[2].a }}{{ {'x': 1, 'y': 2}['y'] }}"
                           "{{ [] | length }}{{ (1, 2)[1] }}", {}),
    ("range_fn", "{{ range(3) | list }} {{ range(1, 5, 2) | list }} {{ range(5, 0, -2) | list }}", {}),
    ("dict_fn", "{% set d = dict(a=1, b='x') %}{{ d.a }}{{ d['b'] }}", {}),
    ("macro", "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('A') }} "
              "{{ greet('B', '?') }} {{ greet(name='C', punct='.') }}", {}),
    ("generation_block", "{% for m in ms %}{% generation %}{{ m }}{% endgeneration %};{% endfor %}", {"ms": ["a", "b"]}),
    ("string_iteration", "{% for c in 'héy' %}[{{ c }}]{% endfor %}{{ 'héy' | length }}{{ 'héy'[1] }}", {}),
    ("int_float_ops", "{{ 3 * 1.5 }} {{ 7 % 2.5 }} {{ 2 ** -1 }} {{ 5 // 2.0 }} {{ 10 - 0.5 }} {{ 1 == 1.0 }}", {}),
    ("messages_chatml", "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] "
                        "+ '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
                        "{% endif %}",
     {"messages": [{"role": "user", "content": "hi"}], "add_generation_prompt": True}),
    ("llama31_with_tools", None, {
        "messages": [{"role": "system", "content": "Sys"}, {"role": "user", "content": "What's the weather?"},
                     {"role": "assistant", "tool_calls": [{"type": "function", "function": {
                         "name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}}]},
                     {"role": "tool", "content": {"temp": 21, "sky": "clear"}},
                     {"role": "user", "content": "Thanks"}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather.",
                   "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                  "required": ["city"]}}}],
        "bos_token": "<|begin_of_text|>", "add_generation_prompt": True}),
    ("llama31_builtin_tools", None, {
        "messages": [{"role": "user", "content": "Search"},
                     {"role": "assistant", "tool_calls": [{"type": "function", "function": {
                         "name": "brave_search", "arguments": {"query": "x"}}}]},
                     {"role": "ipython", "content": "result"}],
        "builtin_tools": ["brave_search", "code_interpreter"], "date_string": "01 Jan 2025",
        "bos_token": "<|begin_of_text|>", "add_generation_prompt": False}),
    # error paths: HF raises; the C test only checks that an error comes back (and raise_exception's text).
    ("err_raise_exception", "a{{ raise_exception('Custom failure: ' + x) }}b", {"x": "boom"}),
    ("err_unclosed_if", "{% if true %}never closed", {}),
    ("err_unclosed_var", "{{ x ", {}),
    ("err_bad_expr", "{{ 1 + }}", {}),
    ("err_unknown_filter", "{{ 'x' | no_such_filter }}", {}),
    ("err_unknown_tag", "{% frobnicate %}", {}),
    ("err_undefined_attr_of_undefined", "{{ nope.attr }}", {}),
    ("err_add_undefined", "{{ nope + 'x' }}", {}),
    ("err_add_str_int", "{{ 'a' + 1 }}", {}),
    ("err_endfor_mismatch", "{% for x in y %}{% endif %}", {}),
    ("err_unterminated_string", "{{ 'abc }}", {}),
    ("err_call_non_callable", "{{ x() }}", {"x": 1}),
    ("err_div_zero", "{{ 1 / 0 }}", {}),
]


def write_jinja_cases():
    out = [b"# made by tools/make_chat_fixtures.py with transformers' chat-template jinja environment\n"]
    llama31 = read_template("llama3.1")
    for name, template, context in JINJA_CASES:
        if template is None:
            template = llama31
        out.append(f"case {name}\n".encode())
        field(out, "template", template)
        field(out, "context", json.dumps(context, ensure_ascii=False))
        try:
            text = _compile_jinja_template(template).render(**context)
            field(out, "expect", text)
        except Exception as e:
            field(out, "error", f"{type(e).__name__}: {e}")
        out.append(b"end\n")
    with open(os.path.join(OUT_DIR, "jinja_cases.txt"), "wb") as f:
        f.write(b"".join(out))
    print(f"jinja_cases.txt: {len(JINJA_CASES)} cases")


if __name__ == "__main__":
    write_chat_cases()
    write_jinja_cases()
