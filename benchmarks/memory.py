"""Corpora of any size: encode speed, time to the first step, and peak memory of the parent and its workers.

    python benchmarks/memory.py [--sizes 100,2000] [--hidden 64] [--keep DIR]

For each size (MB) it writes a corpus of that much UTF-8 (recipes from
corpora/make_pantry.py with some non-ASCII lines) to a temporary folder,
then, with an empty corpus cache of its own:

1. encode: times charrnn.corpus_cache.open_corpus building the cache (MB/s);
2. first step: runs `charrnn train BIG --steps 3 --hidden H --val-frac 0.001
   --log L --log-every 1` as a child and times its first logged step (the
   cache is in place, so this is start-up, mapping and the first step);
3. resume: the same with --resume and --steps 6, timed to its first step;
4. memory: the peak, over the training run of step 2, of the resident
   memory of the trainer and its worker processes summed (sampled from
   /proc every 20 ms).

It prints one row per size and the growth of the peak between the first
and the last size.
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
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "corpora"))

from make_pantry import recipe  # noqa: E402

EXTRA = ["Crème fraîche — optional.", "Jalapeño, smörgåsbord, naïve façade.", "Piña colada “for later”."]


def make_corpus(path: str, megabytes: float) -> int:
    """Write about ``megabytes`` MB of recipes to ``path``; returns the bytes written."""
    rng = random.Random(0)
    pool = [recipe(rng) + rng.choice(EXTRA) + "\n\n" for _ in range(3000)]
    blocks = ["".join(rng.choice(pool) for _ in range(200)).encode("utf-8") for _ in range(50)]
    target, size = int(megabytes * 1e6), 0
    with open(path, "wb") as f:
        while size < target:
            block = blocks[rng.randrange(len(blocks))]
            f.write(block)
            size += len(block)
    return size


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                total += next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo += [int(c) for c in f.read().split()]
        except (OSError, StopIteration):
            continue
    return total


def first_step(args: list[str], log: str, env: dict) -> tuple[float, float, int]:
    """(seconds to the first logged step, peak tree RSS in MB over the run, exit code) of charrnn ARGS."""
    if os.path.exists(log):
        os.remove(log)
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "charrnn", *args, "--log", log, "--log-every", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    first, peak = None, 0
    while proc.poll() is None:
        peak = max(peak, tree_rss(proc.pid))
        if first is None and os.path.exists(log) and os.path.getsize(log):
            first = time.perf_counter() - t0
        time.sleep(0.02)
    if first is None and os.path.exists(log) and os.path.getsize(log):
        first = time.perf_counter() - t0
    err = proc.stderr.read().decode()
    if proc.returncode:
        print(err, file=sys.stderr)
    return first or float("nan"), peak / 1e6, proc.returncode


def measure(megabytes: float, hidden: int, tmp: str) -> dict:
    from charrnn.corpus_cache import open_corpus

    corpus = os.path.join(tmp, f"big{megabytes:g}.txt")
    size = make_corpus(corpus, megabytes)
    cache = os.path.join(tmp, f"cache{megabytes:g}")
    os.environ["CHARRNN_CACHE_DIR"] = cache
    env = dict(os.environ)
    t0 = time.perf_counter()
    open_corpus([corpus])
    encode = time.perf_counter() - t0
    out, log = os.path.join(tmp, "m.npz"), os.path.join(tmp, "log.jsonl")
    common = ["train", corpus, "--hidden", str(hidden), "--val-frac", "0.001", "-q", "-o", out]
    start, peak, code = first_step(common + ["--steps", "3", "--force"], log, env)
    resume, peak2, code2 = first_step(common + ["--steps", "6", "--resume"], log, env)
    return {"mb": size / 1e6, "encode_s": encode, "encode_mb_s": size / 1e6 / encode, "first_step_s": start,
            "resume_first_step_s": resume, "peak_rss_mb": max(peak, peak2), "exit": code or code2}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100,2000", help="corpus sizes in MB, comma-separated")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--keep", metavar="DIR", help="work in DIR and keep it (default: a temporary folder)")
    args = ap.parse_args()
    tmp = args.keep or tempfile.mkdtemp(prefix="charrnn-mem-")
    os.makedirs(tmp, exist_ok=True)
    rows = []
    try:
        print(f"{'corpus MB':>10} {'encode s':>9} {'MB/s':>6} {'1st step s':>11} {'resume s':>9} {'peak RSS MB':>12}",
              flush=True)
        for mb in (float(s) for s in args.sizes.split(",")):
            r = measure(mb, args.hidden, tmp)
            rows.append(r)
            print(f"{r['mb']:>10,.0f} {r['encode_s']:>9.1f} {r['encode_mb_s']:>6.0f} {r['first_step_s']:>11.2f} "
                  f"{r['resume_first_step_s']:>9.2f} {r['peak_rss_mb']:>12.0f}" + (f"  exit {r['exit']}" if r["exit"]
                                                                                   else ""), flush=True)
            os.remove(os.path.join(tmp, f"big{mb:g}.txt"))
        if len(rows) > 1:
            print(f"peak RSS grows {rows[-1]['peak_rss_mb'] - rows[0]['peak_rss_mb']:+.0f} MB from "
                  f"{rows[0]['mb']:,.0f} MB to {rows[-1]['mb']:,.0f} MB (parent and workers together)")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
