"""Which cell remembers across a gap? rnn, lstm and gru on corpora/make_longrange.py records.

    python benchmarks/long_range.py [--gaps 5,20,50] [--steps 1500] [--hidden 64] [--json]

For each gap G it generates training records ``K:<G letters>=K`` and a
separate test set, trains each cell for the same number of steps with the
same options (B=32, T=64, Adam, lr 1e-2), and reports the accuracy of the
model's most likely character right after ``=``: the remembered key.
Chance is 1/26 (3.8%). The noise letters are unpredictable, so only the key
position tests memory.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "corpora"))

from make_longrange import records  # noqa: E402

from charrnn.config import ModelConfig, TrainConfig  # noqa: E402
from charrnn.score import next_char_probs  # noqa: E402
from charrnn.limits import Limits  # noqa: E402
from charrnn.checkpoint import new_checkpoint  # noqa: E402
from charrnn.trainer import train_checkpoint as train  # noqa: E402
from charrnn.vocab import Vocab  # noqa: E402


def key_accuracy(ck, test: str) -> float:
    """Fraction of test records whose key the model predicts (argmax) right after '='."""
    ids = ck.vocab.encode(test)
    p = next_char_probs(ck.params, ck.model_config, ids)  # row i predicts ids[i + 1]
    eq = np.flatnonzero(ids[:-1] == ck.vocab.chars.index("="))
    return float(np.mean(p[eq].argmax(axis=1) == ids[eq + 1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gaps", default="5,20,50")
    ap.add_argument("--cells", default="rnn,lstm,gru")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--json", dest="json_output", action="store_true")
    args = ap.parse_args()
    rows = []
    tmp = os.path.join(ROOT, ".long_range.tmp.npz")
    try:
        for gap in (int(g) for g in args.gaps.split(",")):
            text = records(gap, 3000, seed=1)
            test = records(gap, 300, seed=2)
            vocab = Vocab.from_text(text)
            for cell in args.cells.split(","):
                ck = new_checkpoint(vocab, ModelConfig(vocab_size=vocab.size, hidden=args.hidden, cell=cell),
                                    TrainConfig(batch=32, seq_len=64, lr=1e-2, val_frac=0.0, seed=0))
                t0 = time.perf_counter()
                train(ck, vocab.encode(text), tmp, Limits(steps=args.steps))
                acc = key_accuracy(ck, test)
                rows.append({"gap": gap, "cell": cell, "accuracy": round(acc, 3),
                             "seconds": round(time.perf_counter() - t0, 1)})
                print(f"gap {gap:>3} {cell:<5} key accuracy {acc:6.1%}", file=sys.stderr)
    finally:
        for p in (tmp, tmp.replace(".npz", ".best.npz")):
            if os.path.exists(p):
                os.remove(p)
    if args.json_output:
        print(json.dumps(rows, indent=2))
        return
    cells = args.cells.split(",")
    print(f"accuracy on the remembered key (chance 3.8%), {args.steps} steps, H={args.hidden}, B=32, T=64")
    print(f"{'gap':>5}" + "".join(f"{c:>9}" for c in cells))
    for gap in sorted({r["gap"] for r in rows}):
        print(f"{gap:>5}" + "".join(f"{r['accuracy']:>9.1%}" for c in cells for r in rows if r["gap"] == gap and r["cell"] == c))


if __name__ == "__main__":
    main()
