"""What a training step costs with each cell, side by side in one process.

    python benchmarks/cell_cost.py [--cells gru,mgru] [--hidden 512] [--batch 32] [--rounds 15]

For a one-layer model of each cell over 65 characters (float32, T=64, the
budget's dropout 0.1 and weight drop 0.15): the median time of a training
step (forward, backward, clipping, Adam) and the characters per second it
gives, each cell's steps taken in turns, one of each per round, so that a
change in the machine's load falls on all of them alike. The last column is
each cell's time against the first cell's. Set OPENBLAS_NUM_THREADS=1 and
taskset -c 0 to time one core.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from charrnn import network, optim  # noqa: E402
from charrnn.config import ModelConfig, TrainConfig  # noqa: E402


def stepper(cell: str, hidden: int, batch: int, seq_len: int = 64):
    """A function that takes one training step of a fresh model of ``cell``."""
    cfg = ModelConfig(vocab_size=65, hidden=hidden, cell=cell)
    rng = np.random.default_rng(0)
    params = network.init_params(cfg, rng)
    opt, tcfg = optim.init_state(params, "adam"), TrainConfig()
    x, y = rng.integers(0, 65, (seq_len, batch)), rng.integers(0, 65, (seq_len, batch))
    state = network.zero_state(cfg, batch)

    def step() -> None:
        _, grads, _ = network.loss_and_grads(params, cfg, x, y, state, network.Dropout(0.1, 0.15), rng)
        optim.clip_grads(grads, "norm", 5.0)
        optim.update(params, grads, opt, tcfg, 1e-4)

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", default="gru,mgru")
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    cells = args.cells.split(",")
    steps = {cell: stepper(cell, args.hidden, args.batch) for cell in cells}
    times = {cell: [] for cell in cells}
    for step in steps.values():
        step()  # warm up
    for _ in range(args.rounds):
        for cell, step in steps.items():
            t0 = time.perf_counter()
            step()
            times[cell].append(time.perf_counter() - t0)
    first = statistics.median(times[cells[0]])
    print(f"{'model':<10} {'step ms':>8} {'chars/s':>8} {'time':>6}")
    for cell in cells:
        ms = statistics.median(times[cell])
        print(f"{cell}-{args.hidden:<5} {ms * 1e3:>8.1f} {args.batch * 64 / ms:>8,.0f} {ms / first:>6.2f}")


if __name__ == "__main__":
    main()
