"""Start-up time and peak memory of `charrnn train` on a large generated corpus.

    python benchmarks/memory.py [--mb 100] [--hidden 256] [--keep]

Writes a corpus of about --mb megabytes of UTF-8 (recipes from
corpora/make_pantry.py plus some non-ASCII text, so Python holds it at two
bytes per character) to a temporary folder, then runs the real CLI twice as
child processes and reads each one's peak resident memory from os.wait4:

1. `--steps 1 --val-frac 0`: the wall time is the time to read, build the
   vocabulary and ids, take the first training step and save: an upper bound
   on the time before training starts.
2. `--steps 20` with the default validation split: the whole process,
   including one full validation pass over the held-out 10%.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "corpora"))

from make_pantry import recipe  # noqa: E402

EXTRA = ["Crème fraîche — optional.", "Jalapeño, smörgåsbord, naïve façade.", "Piña colada “for later”."]


def make_corpus(path: str, megabytes: float) -> int:
    rng = random.Random(0)
    pool = [recipe(rng) + rng.choice(EXTRA) + "\n\n" for _ in range(3000)]
    target = int(megabytes * 1e6)
    size = 0
    with open(path, "w", encoding="utf-8") as f:
        while size < target:
            block = "".join(rng.choice(pool) for _ in range(200))
            f.write(block)
            size += len(block.encode("utf-8"))
    return size


def run(args: list[str]) -> tuple[float, float, int]:
    """(wall seconds, peak RSS in MB, exit code) of ``python -m charrnn ARGS``."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "charrnn", *args], stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    return time.perf_counter() - t0, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=100, help="corpus size in MB")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="charrnn-mem-")
    try:
        corpus = os.path.join(tmp, "big.txt")
        size = make_corpus(corpus, args.mb)
        print(f"corpus: {size / 1e6:.1f} MB of UTF-8 at {corpus}")
        common = ["train", corpus, "--hidden", str(args.hidden), "--quiet", "--force"]
        secs, rss, code = run(common + ["--steps", "1", "--val-frac", "0", "-o", os.path.join(tmp, "a.npz")])
        print(f"to first step (1 step, no validation): {secs:.1f} s, peak RSS {rss:.0f} MB, exit {code}")
        secs2, rss2, code2 = run(common + ["--steps", "20", "-o", os.path.join(tmp, "b.npz")])
        print(f"20 steps plus a full validation pass:   {secs2:.1f} s, peak RSS {rss2:.0f} MB, exit {code2}")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
