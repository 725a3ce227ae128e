"""Held-out loss of one model size at a fixed number of characters, and of averages of its weights.

    python benchmarks/sizes.py --hidden 768 --dropout 0.2 --steps 1700 [--weight-drop 0.3] [--layers 2]
        [--seq-len 64] [--batch 64]
        [--weight-decay W] [--lr 2e-3] [--fracs 0.1,0.2,0.35] [CORPUS]

What the --time budget tables rest on, measured by characters rather than
seconds so that a loaded machine changes only how long it takes. Trains a
one-layer GRU on the first 90% of CORPUS (default tiny-shakespeare) for
--steps steps of --batch x --seq-len characters (64 x 64), with the learning rate annealed from
2e-3 to a tenth over those steps as a --time budget anneals over its
seconds, in this process (one worker: the model does not depend on the
workers). Beside the run it keeps polynomial-decay averages of the weights
over each fraction in --fracs, and at --evals points it scores the last 10%
of CORPUS, as `charrnn eval` does, with the weights and with each average.
A budget of S seconds on a machine that trains a size at R chars/s shows
it S x R characters (charrnn.budget): 5 minutes at 24,500 chars/s is
about 1,800 steps of 64 x 64 characters.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.common import default_corpus  # noqa: E402
from charrnn import optim  # noqa: E402
from charrnn.checkpoint import new_checkpoint  # noqa: E402
from charrnn.config import ModelConfig, TrainConfig  # noqa: E402
from charrnn.events import Reporter  # noqa: E402
from charrnn.limits import Limits  # noqa: E402
from charrnn.score import rows_nll, scoring_streams  # noqa: E402
from charrnn.trainer import train_checkpoint  # noqa: E402
from charrnn.vocab import Vocab  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus", nargs="?", default=default_corpus())
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--weight-drop", type=float, default=0.0)
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--seq-len", type=int, default=64, help="characters per BPTT chunk (T)")
    ap.add_argument("--batch", type=int, default=64, help="parallel streams per step (B)")
    ap.add_argument("--evals", type=int, default=8)
    ap.add_argument("--fracs", default="0.1,0.2,0.35")
    args = ap.parse_args()
    text = open(args.corpus, encoding="utf-8").read()
    cut = len(text) - len(text) // 10
    train_text, held_text = text[:cut], text[cut:]
    vocab = Vocab.from_text(train_text)
    mcfg = ModelConfig(vocab_size=vocab.size, hidden=args.hidden, layers=args.layers)
    tcfg = TrainConfig(dropout=args.dropout, weight_drop=args.weight_drop, weight_decay=args.weight_decay, lr=args.lr,
                       seq_len=args.seq_len, batch=args.batch, cosine_steps=args.steps, eval_every=max(100, args.steps // 10), average=0)
    ck = new_checkpoint(vocab, mcfg, tcfg)
    x, y, mask = scoring_streams(vocab.encode(held_text, skip_unknown=True))
    held = lambda params: rows_nll(params, mcfg, x, y, mask, 256).sum() / mask.sum()  # noqa: E731
    fracs = [float(f) for f in args.fracs.split(",")]
    averages = {f: {k: v.copy() for k, v in ck.params.items()} for f in fracs}
    marks = {int(args.steps * (i + 1) / args.evals) for i in range(args.evals)}
    t0 = time.time()

    class Scores(Reporter):
        def step(self, ck, event):
            for f, avg in averages.items():
                optim.average_into(avg, ck.params, ck.step, f)
            if ck.step in marks:
                row = {"step": ck.step, "chars": ck.chars_seen, "seconds": round(time.time() - t0),
                       "weights": round(float(held(ck.params)), 4),
                       "val": round(ck.history["val"][-1][1], 4) if ck.history["val"] else None}
                row.update({f"average {f:g}": round(float(held(a)), 4) for f, a in averages.items()})
                print(json.dumps(row), flush=True)

    train_checkpoint(ck, vocab.encode(train_text), None, Limits(steps=args.steps), Scores(), workers=1)


if __name__ == "__main__":
    main()
