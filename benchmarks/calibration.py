"""What validation chooses to serve, against what the held-out text says.

    python benchmarks/calibration.py MODEL.npz CORPUS [--temps 1,1.1,1.2]
    python benchmarks/calibration.py --copies DIR CORPUS

CORPUS is split as benchmarks/quality.py splits it: the model trained on its
first 90% (train.txt), and its last 10% (held.txt) is text it never read.
The validation text is the part of train.txt the model's run held out (its
--val-frac and --val-from), scored as its validation passes score it.

With MODEL: the validation and held-out nats/char of the weights the file
serves with their logits further divided by each of --temps (1: as served).
A file served uncalibrated (--no-calibrate, or from before calibration)
shows how far from 1 the best temperature lies on each text.

With --copies DIR: every checkpoint in DIR (the files `quality.py
--keep-copies` kept, one per save of a run), in step order. For each, its
last step's weights and their running average, at temperature 1: their
validation loss, the average's gain over the weights there with its
standard error over the validation streams (charrnn.validation.clearly_better),
and their held-out losses. Each line is one JSON object.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from charrnn import checkpoint  # noqa: E402
from charrnn.data import split, stream_length  # noqa: E402
from charrnn.score import rows_nll, scoring_streams  # noqa: E402
from charrnn.validation import WARM, gain_and_error  # noqa: E402


def texts(ck: checkpoint.Checkpoint, corpus: str) -> tuple[np.ndarray, np.ndarray]:
    """(validation ids, held-out ids) of ``corpus`` for the run of ``ck``: its held-out share of the first 90%,
    and the last 10%."""
    with open(corpus, encoding="utf-8") as f:
        text = f.read()
    cut = len(text) - len(text) // 10  # as quality.py cuts it
    tcfg = ck.train_config
    _, val = split(ck.vocab.encode(text[:cut]), tcfg.val_frac, tcfg.val_from, ck.model_config.reset_id,
                   tcfg.val_max)
    return val.array(), ck.vocab.encode(text[cut:])


def streams(ids: np.ndarray, validation: bool):
    """x, y, mask as validation reads ``ids`` (64 streams, WARM), or as `charrnn eval` does."""
    if validation:
        return scoring_streams(ids, piece=stream_length(len(ids) - 1, 64), warm=WARM)
    return scoring_streams(ids)


def at_temps(params, ck, x, y, mask, temps: tuple) -> np.ndarray:
    """nats/char of x, y, mask (B, L) at each of ``temps`` (K,)."""
    return rows_nll(params, ck.model_config, x, y, mask, 256, temps).sum(axis=0) / mask.sum()


def model_table(path: str, corpus: str, temps: tuple) -> None:
    ck = checkpoint.load(path)
    val, held = texts(ck, corpus)
    v = at_temps(ck.use_params, ck, *streams(val, True), temps)
    h = at_temps(ck.use_params, ck, *streams(held, False), temps)
    print(f"{os.path.basename(path)}: step {ck.step}, serves {ck.served_kind} calibrated to {ck.served_temp:.4f}; "
          f"validation {len(val):,} characters, held-out {len(held):,}")
    print(f"{'temp':>6} {'validation':>11} {'held-out':>9}")
    for t, a, b in zip(temps, v, h):
        print(f"{t:>6.3f} {a:>11.4f} {b:>9.4f}")
    print(f"best: validation at {temps[int(np.argmin(v))]:.3f}, held-out at {temps[int(np.argmin(h))]:.3f}")


def copies_study(folder: str, corpus: str) -> None:
    paths = sorted(glob.glob(os.path.join(folder, "*.npz")), key=lambda p: checkpoint.load(p).step)
    if not paths:
        sys.exit(f"calibration.py: error: {folder} holds no .npz checkpoints")
    val, held = texts(checkpoint.load(paths[-1]), corpus)
    vs, hs = streams(val, True), streams(held, False)
    counts = vs[2].sum(axis=1)
    for path in paths:
        ck = checkpoint.load(path)
        if ck.average is None or not ck.average_steps:
            continue
        w, a = (rows_nll(p, ck.model_config, *vs, 256) for p in (ck.params, ck.average))  # (b,) each
        n = counts.sum()
        gain, se = gain_and_error(a, w, counts)  # the average's gain over the weights, nats/char
        hw, ha = (rows_nll(p, ck.model_config, *hs, 256).sum() / hs[2].sum() for p in (ck.params, ck.average))
        print(json.dumps({"step": ck.step, "chars_seen": ck.chars_seen, "val_weights": round(w.sum() / n, 4),
                          "val_average": round(a.sum() / n, 4), "average_gain": round(gain, 4), "se": round(se, 4),
                          "held_weights": round(hw, 4), "held_average": round(ha, 4),
                          "held_average_gain": round(hw - ha, 4)}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", nargs="?", help="a checkpoint (not with --copies)")
    ap.add_argument("corpus", help="the corpus the run's train.txt is the first 90%% of")
    ap.add_argument("--temps", default="0.9,1,1.05,1.1,1.15,1.2,1.25,1.3,1.4",
                    help="temperatures to divide the served logits by (default %(default)s)")
    ap.add_argument("--copies", metavar="DIR", help="study every checkpoint in DIR instead")
    args = ap.parse_args()
    if args.copies:
        if args.model:
            ap.error("give a MODEL or --copies DIR, not both")
        copies_study(args.copies, args.corpus)
    elif args.model:
        model_table(args.model, args.corpus, tuple(float(t) for t in args.temps.split(",")))
    else:
        ap.error("give a MODEL, or --copies DIR")


if __name__ == "__main__":
    main()
