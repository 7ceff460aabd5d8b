#!/usr/bin/env python3
"""How often a model's early exit (its first L layers, then the final norm and lm_head: what
`--draft-layers L` drafts with) picks the same greedy token as the full model, position by position,
with the float64 NumPy forward pass of tools/make_float_reference.py (independent of Pagoda). An
upper bound on self-speculation's greedy acceptance rate.

usage: tools/early_exit_agreement.py MODEL.gguf TOKEN_IDS(comma-separated) L[,L...]
   e.g. ids=$(pagoda run -m M -p "..." --temp 0 -n 60 | pagoda tokenize -m M | tr ' ' ,)
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_float_reference as ref  # noqa: E402


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    hp, w = ref.load(sys.argv[1])
    tokens = np.array([int(t) for t in sys.argv[2].split(",")])
    full = np.argmax(ref.forward(hp, w, tokens), -1)
    for n_layer in (int(x) for x in sys.argv[3].split(",")):
        early = np.argmax(ref.forward(dict(hp, n_layer=n_layer), w, tokens), -1)
        print(f"{n_layer} layers: the early exit's argmax equals the full model's at "
              f"{100 * np.mean(early == full):.1f}% of {len(tokens)} positions")


if __name__ == "__main__":
    main()
