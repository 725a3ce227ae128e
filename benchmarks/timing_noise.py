"""How much a --time budget's timing of one size moves on this machine from one moment to the next.

    python benchmarks/timing_noise.py [--hidden 512] [--seconds 60] [--batch 32] [--json]

Repeats, for ``--seconds``, the timing a budget makes of a GRU before it
chooses (charrnn.budget.measure_rate, in this process with its BLAS
threads, ``--batch`` streams of 64 characters) and prints each reading in
thousands of chars/s, then their minimum, median and maximum. On a shared
machine the spread is the other tenants' load: what a single timing can
get wrong, and why a budget times a size again when it falls just short
and fits its regularisation again to the speed the run reaches.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from charrnn import budget  # noqa: E402
from charrnn.gradients import InProcess  # noqa: E402


def readings(hidden: int, seconds: float, batch: int, seq_len: int = 64, vocab_size: int = 65) -> list[float]:
    """chars/s of each timing made within ``seconds`` (at least one)."""
    out, t0 = [], time.monotonic()
    while not out or time.monotonic() - t0 < seconds:
        out.append(budget.measure_rate(InProcess(), vocab_size, budget.Size(hidden), batch, seq_len))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--batch", type=int, default=budget.BATCH)
    ap.add_argument("--json", action="store_true", dest="json_output")
    args = ap.parse_args()
    rates = readings(args.hidden, args.seconds, args.batch)
    summary = {"hidden": args.hidden, "batch": args.batch, "timings": len(rates), "min": min(rates),
               "median": statistics.median(rates), "max": max(rates)}
    if args.json_output:
        print(json.dumps({**summary, "rates": rates}))
        return
    print(" ".join(f"{r / 1000:.1f}" for r in rates))
    print(f"gru-{args.hidden}, batch {args.batch}: {len(rates)} timings in {args.seconds:g} s, chars/s "
          f"min {summary['min']:,.0f}, median {summary['median']:,.0f}, max {summary['max']:,.0f}")


if __name__ == "__main__":
    main()
