"""Held-out loss against characters seen, for charrnn and its PyTorch peers side by side.

    python benchmarks/curves.py QUALITY.json PEER.json [--marks 1,2,3,4,5]

QUALITY.json is what ``benchmarks/quality.py ... --json`` prints (each
config's ``held_curve`` rows are [seconds, held-out nats/char, chars seen],
one per save); PEER.json what ``benchmarks/quality_peer.py ... --json`` prints
(each peer's ``curve`` rows are [seconds, chars seen, held-out nats/char]).
For each mark (millions of characters) it prints every run's held-out loss
there, interpolated linearly between the two saves around it; a dash where
the run did not reach the mark or had not saved before it.
"""
from __future__ import annotations

import argparse
import json


def at_chars(points: list[tuple[float, float]], chars: float) -> float | None:
    """The loss at ``chars`` on the (chars seen, nats) polyline ``points``, or None outside it."""
    points = sorted(points)
    for (c0, n0), (c1, n1) in zip(points, points[1:]):
        if c0 <= chars <= c1:
            return n0 if c1 == c0 else n0 + (n1 - n0) * (chars - c0) / (c1 - c0)
    return None


def runs(quality: list[dict], peers: list[dict]) -> dict[str, list[tuple[float, float]]]:
    """Every run's (chars seen, held-out nats/char) points, named for the table."""
    named = {f"charrnn {q['config']} ({q['cell']} {q['hidden']})": [(c, n) for _, n, c in q["held_curve"]]
             for q in quality}
    named.update({p["peer"]: [(c, n) for _, c, n in p["curve"]] for p in peers})
    return named


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("quality")
    ap.add_argument("peer")
    ap.add_argument("--marks", default="1,2,3,4,5", help="millions of characters seen")
    args = ap.parse_args()
    with open(args.quality) as f, open(args.peer) as g:
        table = runs(json.load(f), json.load(g))
    marks = [float(m) for m in args.marks.split(",")]
    width = max(len(name) for name in table)
    print("held-out nats/char after N million characters seen".rjust(width + 8 * len(marks)))
    print(f"{'run':<{width}}" + "".join(f"{m:>7g}M" for m in marks))
    for name, points in table.items():
        cells = (at_chars(points, m * 1e6) for m in marks)
        print(f"{name:<{width}}" + "".join(f"{c:>8.4f}" if c is not None else f"{'-':>8}" for c in cells))


if __name__ == "__main__":
    main()
