"""This tree against an earlier commit: the same model bit for bit, and the training speed, in one run.

    python benchmarks/against_commit.py [CORPUS] [--rev 2a4a826] [--steps 150] [--runs 3]

Checks out REV into a temporary git worktree and, for each tree, runs
`charrnn train CORPUS --steps S --hidden 384 --json` (the default GRU-384,
dropout 0.2, two workers) alternately, RUNS times each, swapping which goes
first each round (the first of a pair ran slower here), so both see the same
machine load. This tree runs with `--average 0`: REV keeps no running
average, so both then do the same work (the same steps, the same validation
passes), and the ratio is the cost of reading the corpus through the cache.
Prints the median chars/s of each and their ratio, with and without the
seconds of validation; then
trains both for 30 steps with --workers 1 and compares the last step's
weights byte for byte. Default REV is the last commit before corpora were
streamed through a cache (a checkpoint there has format 1; its weights are
its `param/` arrays, this tree's last weights are `last/` or `param/`).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from benchmarks.common import default_corpus  # noqa: E402


def train(tree: str, corpus: str, out: str, *flags: str) -> dict:
    env = {**os.environ, "PYTHONPATH": tree, "CHARRNN_CACHE_DIR": os.path.join(os.path.dirname(out), "cache")}
    r = subprocess.run([sys.executable, "-m", "charrnn", "train", corpus, "-o", out, "--force", "--json", "-q", *flags],
                       capture_output=True, text=True, env=env, cwd=tree)
    if r.returncode != 0:
        raise SystemExit(f"{tree}: charrnn train failed: {r.stderr.strip()[-500:]}")
    return json.loads(r.stdout)


def last_weights(path: str) -> dict[str, bytes]:
    with np.load(path, allow_pickle=False) as z:
        names = [n for n in z.files if n.startswith("last/")] or [n for n in z.files if n.startswith("param/")]
        return {n.split("/", 1)[1]: z[n].tobytes() for n in names}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus", nargs="?", default=default_corpus())
    ap.add_argument("--rev", default="2a4a826")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    corpus = os.path.abspath(args.corpus)
    with tempfile.TemporaryDirectory(prefix="charrnn-against-") as tmp:
        old = os.path.join(tmp, "old")
        subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", "-q", old, args.rev], check=True)
        try:
            rates = {"this tree": [], args.rev: []}
            training = {"this tree": [], args.rev: []}  # chars/s with the validation passes' seconds taken out
            pair = [("this tree", ROOT), (args.rev, old)]
            for i in range(args.runs):
                for name, tree in pair if i % 2 == 0 else pair[::-1]:  # ABBA: neither tree always runs first
                    same_work = ["--average", "0"] if tree == ROOT else []
                    m = train(tree, corpus, os.path.join(tmp, "speed.npz"), "--steps", str(args.steps),
                              "--hidden", "384", *same_work)
                    rates[name].append(m["chars_per_sec"])
                    chars = m["chars_per_sec"] * m["seconds"]
                    training[name].append(chars / (m["seconds"] - m["val_seconds"]))
            new, before = (statistics.median(rates[k]) for k in rates)
            print(f"train GRU-384, {args.steps} steps, default workers, no average, median of {args.runs}: "
                  f"this tree {new:,.0f} chars/s, {args.rev} {before:,.0f} chars/s, ratio {new / before:.3f}")
            pairs = sorted(a / b for a, b in zip(rates["this tree"], rates[args.rev]))
            print(f"ratio of each round's pair: median {statistics.median(pairs):.3f}, "
                  f"from {pairs[0]:.3f} to {pairs[-1]:.3f}")
            new, before = (statistics.median(training[k]) for k in training)
            print(f"the same runs without their validation passes: this tree {new:,.0f} chars/s, "
                  f"{args.rev} {before:,.0f} chars/s, ratio {new / before:.3f}")
            a, b = os.path.join(tmp, "a.npz"), os.path.join(tmp, "b.npz")
            train(ROOT, corpus, a, "--steps", "30", "--workers", "1")
            train(old, corpus, b, "--steps", "30", "--workers", "1")
            wa, wb = last_weights(a), last_weights(b)
            same = wa.keys() == wb.keys() and all(wa[k] == wb[k] for k in wa)
            print(f"30 steps, --workers 1: the last weights are {'identical, byte for byte' if same else 'DIFFERENT'}")
        finally:
            subprocess.run(["git", "-C", ROOT, "worktree", "remove", "--force", old], check=False)


if __name__ == "__main__":
    main()
