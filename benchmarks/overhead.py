"""What the running average of the weights, the recurrent weight mask and the Adam update add to a training step.

    python benchmarks/overhead.py [--sizes 512,768,1024] [--repeats 20]

For a one-layer GRU of each size over 65 characters, B=64, T=64, float32,
in this process: the median time of a training step (forward, backward,
clipping, Adam; output dropout 0.3), of the same step with --weight-drop 0.3,
of one charrnn.optim.average_into call over the parameters, the work
averaging adds to every step, and of one charrnn.optim.update (Adam), which
a run with workers makes in its own process while they wait. Validation's
share comes from real runs (`val_seconds` of `charrnn train --json`;
benchmarks/quality.py reports it).
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


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="512,768,1024")
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    print(f"{'model':<9} {'step ms':>8} {'+weight-drop':>12} {'average ms':>10} {'average share':>13} "
          f"{'adam ms':>8} {'adam share':>10}")
    for hidden in map(int, args.sizes.split(",")):
        cfg = ModelConfig(vocab_size=65, hidden=hidden)
        rng = np.random.default_rng(0)
        params = network.init_params(cfg, rng)
        opt, tcfg = optim.init_state(params, "adam"), TrainConfig()
        average = {k: v.copy() for k, v in params.items()}
        x, y = rng.integers(0, 65, (64, 64)), rng.integers(0, 65, (64, 64))
        state = network.zero_state(cfg, 64)

        def step(weight_drop: float) -> None:
            _, grads, _ = network.loss_and_grads(params, cfg, x, y, state, network.Dropout(0.3, weight_drop), rng)
            optim.clip_grads(grads, "norm", 5.0)
            optim.update(params, grads, opt, tcfg, 1e-4)

        plain = median_seconds(lambda: step(0.0), args.repeats)
        masked = median_seconds(lambda: step(0.3), args.repeats)
        avg = median_seconds(lambda: optim.average_into(average, params, 100, 0.3), args.repeats * 5)
        _, grads, _ = network.loss_and_grads(params, cfg, x, y, state, 0.3, rng)
        adam = median_seconds(lambda: optim.update(params, grads, opt, tcfg, 1e-4), args.repeats * 5)
        print(f"gru-{hidden:<5} {plain * 1e3:>8.1f} {(masked / plain - 1):>+12.1%} {avg * 1e3:>10.2f} "
              f"{avg / plain:>13.2%} {adam * 1e3:>8.2f} {adam / plain:>10.2%}", flush=True)


if __name__ == "__main__":
    main()
