"""How training throughput scales with worker processes, and what happens when cores are shared.

    python benchmarks/scaling.py CORPUS [--cells gru:384,gru:256,rnn:256,lstm:256] [--batch 64] [--windows 5] [--json]

Three measurements, each in one run so that they see the same machine:

1. workers: chars/s of the real training step for ``--workers 1`` (this
   process, NumPy's BLAS threads) and ``--workers 2..cores`` (a WorkerPool of
   single-threaded processes), B=--batch, T=64, in alternating windows; medians and
   the ratio to --workers 1.
2. contention: two ``charrnn train --time 15s`` commands started together, each with its
   default workers, against one such command alone (chars/s as --json
   reports them); and the same with ``--workers 1``, which is how every run
   trained before workers existed.
3. per worker: one single-threaded worker at B/N streams for N = 1, 2, 4, 8.
   N times that rate is what N cores could reach if nothing else limited
   them; the parent's update and memory bandwidth take some of it.
4. with --mpi: ``mpiexec -n cores charrnn train`` against ``--workers cores``;
   on one machine that shows only what MPI costs over shared memory.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import CharrnnTrainer, load_ids, matmul_gflops, timed  # noqa: E402
from charrnn.workers import available_cores  # noqa: E402


def rate(trainer: CharrnnTrainer, seconds: float) -> float:
    """chars/s of ``trainer`` over about ``seconds``."""
    n = max(2, int(seconds / (timed(trainer.steps, 2) / 2)))
    return trainer.chars_per_step * n / timed(trainer.steps, n)


def workers_rows(vocab, ids, cell: str, H: int, cores: int, windows: int, seconds: float,
                 batch: int = 64) -> list[dict]:
    """chars/s for --workers 1..cores (1: in this process), alternating windows."""
    counts = list(range(1, cores + 1))
    trainers = {n: CharrnnTrainer(vocab, ids, H, batch=batch, cell=cell, workers=0 if n == 1 else n)
                for n in counts}
    try:
        rates = {n: [] for n in counts}
        for t in trainers.values():
            t.steps(2)
        for _ in range(windows):
            for n, t in trainers.items():
                rates[n].append(rate(t, seconds))
    finally:
        for t in trainers.values():
            t.close()
    base = statistics.median(rates[1])
    return [{"cell": cell, "hidden": H, "workers": n, "chars_per_sec": round(statistics.median(r)),
             "vs_workers_1": round(statistics.median(r) / base, 3)} for n, r in rates.items()]


def per_worker_rows(vocab, ids, cell: str, H: int, windows: int, seconds: float) -> list[dict]:
    """One single-threaded worker at B/N streams, N = 1, 2, 4, 8."""
    rows = []
    for n in (1, 2, 4, 8):
        t = CharrnnTrainer(vocab, ids, H, batch=64 // n, cell=cell, workers=1)
        try:
            t.steps(2)
            r = statistics.median(rate(t, seconds) for _ in range(windows))
        finally:
            t.close()
        rows.append({"cell": cell, "hidden": H, "n": n, "batch": 64 // n, "chars_per_sec": round(r),
                     "n_times_rate": round(n * r)})
    return rows


def _train_cmd(corpus: str, out: str, seconds: float, workers: int | None) -> list[str]:
    cmd = [sys.executable, "-m", "charrnn", "train", corpus, "-o", out, "--force", "--json", "-q",
           "--time", f"{seconds:g}s", "--constant-lr", "--val-frac", "0", "--hidden", "384"]
    return cmd + (["--workers", str(workers)] if workers else [])


def concurrent(corpus: str, seconds: float, k: int, workers: int | None) -> list[float]:
    """chars/s of each of ``k`` default runs started together."""
    with tempfile.TemporaryDirectory() as d:
        procs = [subprocess.Popen(_train_cmd(corpus, os.path.join(d, f"m{i}.npz"), seconds, workers),
                                  stdout=subprocess.PIPE, text=True) for i in range(k)]
        outs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit("a concurrent training run failed")
    return [json.loads(o)["chars_per_sec"] for o in outs]


def contention_rows(corpus: str, seconds: float, repeats: int) -> list[dict]:
    rows = []
    for label, workers in (("default workers", None), ("--workers 1", 1)):
        solo, pair = [], []
        for _ in range(repeats):
            solo += concurrent(corpus, seconds, 1, workers)
            pair += concurrent(corpus, seconds, 2, workers)
        s, p = statistics.median(solo), statistics.median(pair)
        rows.append({"runs": label, "solo_chars_per_sec": round(s), "each_of_two": round(p),
                     "each_keeps": round(p / s, 3)})
    return rows


def mpi_rows(corpus: str, seconds: float, repeats: int) -> list[dict]:
    """``mpiexec -n cores charrnn train`` against ``charrnn train --workers cores`` (one machine: the overhead)."""
    mpiexec = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
    if mpiexec is None:
        return []
    n = available_cores()
    rates = {"mpi": [], "workers": []}
    with tempfile.TemporaryDirectory() as d:
        for _ in range(repeats):
            for how in rates:
                cmd = _train_cmd(corpus, os.path.join(d, "m.npz"), seconds, n if how == "workers" else None)
                if how == "mpi":
                    cmd = [mpiexec, "-n", str(n)] + cmd + ["--workers", "1"]
                out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
                rates[how].append(json.loads(out)["chars_per_sec"])
    m, w = statistics.median(rates["mpi"]), statistics.median(rates["workers"])
    return [{"ranks_or_workers": n, "mpi_chars_per_sec": round(m), "workers_chars_per_sec": round(w),
             "mpi_vs_workers": round(m / w, 3)}]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("corpus", help="a UTF-8 text file, e.g. ../shared/data/tinyshakespeare.txt")
    ap.add_argument("--cells", default="gru:384,gru:256,rnn:256,lstm:256", help="cell:hidden pairs")
    ap.add_argument("--batch", type=int, default=64, help="streams per step of the workers comparison")
    ap.add_argument("--windows", type=int, default=5)
    ap.add_argument("--window-seconds", type=float, default=2.0)
    ap.add_argument("--contention-seconds", type=float, default=15.0, help="--time of each concurrent run (0: skip)")
    ap.add_argument("--repeats", type=int, default=2, help="repeats of each contention case")
    ap.add_argument("--mpi", action="store_true", help="also mpiexec -n cores against --workers cores")
    ap.add_argument("--json", dest="json_output", action="store_true")
    args = ap.parse_args()
    vocab, ids = load_ids(args.corpus)
    cores = available_cores()
    pairs = [(c, int(h)) for c, h in (p.split(":") for p in args.cells.split(","))]
    result = {"cores": cores, "matmul_gflops_64x384": round(matmul_gflops(64, 384), 1), "workers": [],
              "per_worker": [], "contention": []}
    for cell, H in pairs:
        result["workers"] += workers_rows(vocab, ids, cell, H, cores, args.windows, args.window_seconds, args.batch)
    result["per_worker"] = per_worker_rows(vocab, ids, *pairs[0], args.windows, args.window_seconds)
    if args.contention_seconds:
        result["contention"] = contention_rows(args.corpus, args.contention_seconds, args.repeats)
    if args.mpi:
        result["mpi"] = mpi_rows(args.corpus, args.contention_seconds or 15.0, args.repeats)
    if args.json_output:
        print(json.dumps(result, indent=2))
        return
    print(f"{cores} cores; float32 (64x384)@(384x384) matmul: {result['matmul_gflops_64x384']} GFLOP/s; B={args.batch}, T=64")
    print(f"\n{'model':10} {'workers':>7} {'chars/s':>9} {'vs 1':>6}")
    for r in result["workers"]:
        print(f"{r['cell']}-{r['hidden']:<6} {r['workers']:>7} {r['chars_per_sec']:>9,} {r['vs_workers_1']:>5.2f}x")
    print(f"\none single-threaded worker at B/N ({pairs[0][0]}-{pairs[0][1]}):")
    print(f"{'N':>3} {'B/N':>4} {'chars/s':>9} {'N x rate':>9}")
    for r in result["per_worker"]:
        print(f"{r['n']:>3} {r['batch']:>4} {r['chars_per_sec']:>9,} {r['n_times_rate']:>9,}")
    if result["contention"]:
        print(f"\ntwo gru-384 runs at once against one alone (--time {args.contention_seconds:g}s each, "
              f"median of {args.repeats}):")
        for r in result["contention"]:
            print(f"{r['runs']:16} alone {r['solo_chars_per_sec']:>7,}  each of two {r['each_of_two']:>7,}  "
                  f"each keeps {r['each_keeps']:.0%}")
    for r in result.get("mpi", []):
        print(f"\nmpiexec -n {r['ranks_or_workers']}: {r['mpi_chars_per_sec']:,} chars/s against "
              f"--workers {r['ranks_or_workers']}: {r['workers_chars_per_sec']:,} ({r['mpi_vs_workers']:.2f}x; "
              f"one machine, so this is MPI's overhead, not its gain)")


if __name__ == "__main__":
    main()
