"""The PyTorch peers of quality.py: the same split, the same time budget, the framework's own RNNs.

    python benchmarks/quality_peer.py [CORPUS] [--time 5m] [--peer gru:384] [--peer lstm:256] [--json]

Needs torch (a benchmark venv: pip install torch), never a charrnn dependency.
Splits CORPUS (default ../shared/data/tinyshakespeare.txt) into its first 90%
(train) and last 10% (held) exactly as quality.py does, and for each peer
trains Embedding -> nn.GRU/nn.LSTM -> Linear with Adam 2e-3, clipping at 5,
B=64, T=64 and carried state on the whole train part (no validation split,
a constant rate, no dropout) for the budget, then scores held the way
``charrnn eval`` does: one stream from a zero state. Every 30 seconds of
training (the clock paused) it also scores held in 16 streams, giving a
curve of held-out nats/char against characters seen.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.common import default_corpus  # noqa: E402
from benchmarks.vs_torch import TorchTrainer, torch  # noqa: E402
from charrnn.limits import parse_duration  # noqa: E402
from charrnn.vocab import Vocab  # noqa: E402


def held_nats(tr: TorchTrainer, ids: np.ndarray, streams: int) -> float:
    """Mean nats/char of ids under the trainer's model, read in ``streams`` contiguous streams from zero state."""
    model = tr.model
    n = (len(ids) - 1) // streams
    x = torch.from_numpy(ids[: streams * n].astype(np.int64)).view(streams, n).t()
    y = torch.from_numpy(ids[1 : streams * n + 1].astype(np.int64)).view(streams, n).t()
    H = model.emb.embedding_dim
    zeros = torch.zeros(1, streams, H)
    h = (zeros, zeros.clone()) if tr.cell == "lstm" else zeros
    total = 0.0
    with torch.no_grad():
        for j in range(0, n, 256):
            logits, h = model(x[j : j + 256], h)
            total += float(torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                             y[j : j + 256].reshape(-1), reduction="sum"))
    return total / (streams * n)


def run_peer(cell: str, hidden: int, train_ids, held_ids, V: int, budget: float) -> dict:
    torch.set_num_threads(os.cpu_count() or 1)
    tr = TorchTrainer(train_ids, V, hidden, cell)
    trained, steps, curve, next_mark = 0.0, 0, [], 30.0
    while trained < budget:
        t0 = time.perf_counter()
        tr.steps(5)
        trained += time.perf_counter() - t0
        steps += 5
        if trained >= next_mark or trained >= budget:
            curve.append([round(trained, 1), steps * tr.chars_per_step, round(held_nats(tr, held_ids, 16), 4)])
            next_mark += 30.0
    final = held_nats(tr, held_ids, 1)
    return {"peer": f"torch {cell} {hidden}", "steps": steps, "chars_seen": steps * tr.chars_per_step,
            "chars_per_sec": round(steps * tr.chars_per_step / trained), "held_out_nats": round(final, 4),
            "held_out_bits": round(final / math.log(2), 4), "curve": curve}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus", nargs="?", default=default_corpus())
    ap.add_argument("--time", default="5m")
    ap.add_argument("--peer", action="append", help="CELL:HIDDEN (repeatable; default gru:384 and lstm:256)")
    ap.add_argument("--json", dest="json_output", action="store_true")
    args = ap.parse_args()
    if torch is None:
        raise SystemExit("quality_peer.py needs torch: pip install torch (in a benchmark venv)")
    with open(args.corpus, encoding="utf-8") as f:
        text = f.read()
    cut = len(text) - len(text) // 10  # as quality.py
    vocab = Vocab.from_text(text[:cut])
    train_ids = vocab.encode(text[:cut])
    held_ids = vocab.encode(text[cut:], skip_unknown=True)
    rows = []
    for spec in args.peer or ["gru:384", "lstm:256"]:
        cell, _, hidden = spec.partition(":")
        rows.append(run_peer(cell, int(hidden), train_ids, held_ids, vocab.size, parse_duration(args.time)))
        print(f"{rows[-1]['peer']}: held-out {rows[-1]['held_out_nats']:.4f} nats/char", file=sys.stderr)
    if args.json_output:
        print(json.dumps(rows, indent=2))
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; budget {args.time}")
    for r in rows:
        print(f"{r['peer']:<16} {r['chars_per_sec']:>8,} chars/s {r['chars_seen']:>11,} chars seen  "
              f"held-out {r['held_out_nats']:.4f} nats/char")
        print("   curve (chars seen: held-out nats/char, 16 streams): "
              + ", ".join(f"{c / 1e6:.1f}M: {v:.3f}" for _, c, v in r["curve"]))


if __name__ == "__main__":
    main()
