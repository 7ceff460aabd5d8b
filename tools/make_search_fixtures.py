#!/usr/bin/env python3
"""Makes tests/fixtures/search/*.txt: beam search, contrastive search and DoLa outputs of HF transformers
on SmolLM2-135M-Instruct (Q4_1 GGUF dequantised to float32 by transformers' GGUF loader), run on the CPU.

Needs torch and a transformers that still ships contrastive search and DoLa in generation/utils.py
(they moved to Hub repos in 4.56; this was made with 4.52.4):
    python3 -m venv /tmp/hfenv && /tmp/hfenv/bin/pip install torch "transformers==4.52.4" gguf numpy
    /tmp/hfenv/bin/python tools/make_search_fixtures.py [MODEL.gguf|-] [main,eos]
("main": greedy, beam, contrastive and DoLa cases -> smollm2_search.txt; "eos": beam cases with short
answers, where length_penalty and early_stopping matter -> smollm2_search_eos.txt)

Fixture format (one case per block; token ids are space-separated):
    case <kind> key=value ...        kind: greedy | beam | contrastive | dola
    prompt <ids>
    out <ids>                        one line per returned sequence, best first; the end-of-generation
                                     token is not included (Pagoda does not output it)
    end
The end-of-generation set is Pagoda's for this model: <|im_end|> (2) and <|endoftext|> (0).
"""
import os
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

MODEL = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] != "-" else os.path.expanduser(
    "~/.cache/pagoda/models/SmolLM2-135M-Instruct.Q4_1.gguf")
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "search")
EOS = [2, 0]

PROMPTS = [
    "The capital of France is",
    "Once upon a time, there was a little robot who",
    "Write a haiku about the sea.",
    "def fibonacci(n):",
    "The three primary colors are",
]


def chat(tok, text):
    if text.startswith("def "):
        return tok(text, add_special_tokens=False)["input_ids"]
    msgs = [{"role": "user", "content": text}]
    rendered = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    return tok(rendered, add_special_tokens=False)["input_ids"]


def strip(ids, n_prompt, n_valid=None):
    gen = list(ids[n_prompt:] if n_valid is None else ids[n_prompt:n_prompt + n_valid])
    for i, t in enumerate(gen):
        if t in EOS:
            return gen[:i]
    return gen


EOS_PROMPTS = [  # short answers: beams end with <|im_end|> at different lengths, so length_penalty and
    # early_stopping decide between hypotheses
    "What is 2+2? Answer with one number.",
    "Say hello.",
    "Is the sky blue? Answer yes or no.",
    "Name one fruit.",
]


def main():
    torch.manual_seed(0)
    d, f = os.path.split(MODEL)
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, torch_dtype=torch.float32)
    model.eval()
    common = dict(do_sample=False, temperature=None, top_p=None, top_k=None, eos_token_id=EOS, pad_token_id=EOS[0])
    cases = []
    prompts = [chat(tok, p) for p in PROMPTS]

    def run(kind, ids, max_new, desc, **kw):
        inp = torch.tensor([ids])
        with torch.no_grad():
            out = model.generate(inp, attention_mask=torch.ones_like(inp), max_new_tokens=max_new,
                                 return_dict_in_generate=True, output_scores=True, **{**common, **kw})
        seqs = out.sequences.tolist()
        if kind == "beam":
            bi = out.beam_indices.tolist()
            outs = [strip(s, len(ids), sum(1 for x in b if x != -1)) for s, b in zip(seqs, bi)]
        else:
            outs = [strip(s, len(ids)) for s in seqs]
        cases.append((kind, desc + f" max_tokens={max_new}", ids, outs))
        print(kind, desc, [tok.decode(o) for o in outs], flush=True)

    groups = sys.argv[2].split(",") if len(sys.argv) > 2 else ["main", "eos"]
    if "eos" in groups:
        eos_cases = []
        saved, cases = cases, eos_cases
        for ids in [chat(tok, p) for p in EOS_PROMPTS[:3]]:
            for nb, lp, es, n in [(3, -1.0, False, 2), (3, 2.0, False, 2), (4, 0.5, True, 3), (4, 1.0, False, 1),
                                  (2, 3.0, True, 1)]:
                run("beam", ids, 40, f"num_beams={nb} length_penalty={lp} early_stopping={int(es)} n={n}",
                    num_beams=nb, length_penalty=lp, early_stopping=es, num_return_sequences=n)
        write(os.path.join(OUT, "smollm2_search_eos.txt"), eos_cases)
        cases = saved
    if "main" not in groups:
        return
    for ids in prompts:
        run("greedy", ids, 24, "")
    beam_cfgs = [
        (2, 1.0, False, 1), (4, 1.0, False, 2), (4, 1.0, True, 1), (3, 0.5, False, 3), (4, 2.0, True, 1),
        (5, -1.0, False, 2),
    ]
    for i, (nb, lp, es, n) in enumerate(beam_cfgs):
        for ids in prompts[i % 2::2][:3]:
            run("beam", ids, 20, f"num_beams={nb} length_penalty={lp} early_stopping={int(es)} n={n}",
                num_beams=nb, length_penalty=lp, early_stopping=es, num_return_sequences=n)
    for alpha, k in [(0.6, 4), (0.5, 6), (0.3, 2)]:
        for ids in prompts[:3]:
            run("contrastive", ids, 24, f"penalty_alpha={alpha} top_k={k}", penalty_alpha=alpha, top_k=k)
    for layers in ["low", "high", "4,12,20", "18"]:
        dl = layers if layers in ("low", "high") else [int(x) for x in layers.split(",")]
        for ids in prompts[:3]:
            run("dola", ids, 24, f"dola_layers={layers}", dola_layers=dl, repetition_penalty=None)

    write(os.path.join(OUT, "smollm2_search.txt"), cases)


def write(path, cases):
    os.makedirs(OUT, exist_ok=True)
    with open(path, "w") as fh:
        fh.write("# made by tools/make_search_fixtures.py (transformers %s, torch %s) from %s\n"
                 % (__import__("transformers").__version__, torch.__version__, os.path.basename(MODEL)))
        for kind, desc, ids, outs in cases:
            fh.write(f"case {kind} {desc}\n")
            fh.write("prompt " + " ".join(map(str, ids)) + "\n")
            for o in outs:
                fh.write("out " + " ".join(map(str, o)) + "\n")
            fh.write("end\n")
    print("wrote", path)


if __name__ == "__main__":
    main()
