"""How fast charrnn trains and samples on this machine, against its own matmul rate.

    python benchmarks/throughput.py [CORPUS] [--sizes 128,256,512] [--windows 5] [--json]

For each hidden size H it times the real training step (vanilla RNN, float32,
B=64, T=64, Adam, global-norm clipping at 5) in windows after a warm-up and
reports the median characters per second. It also measures the machine's
float32 matrix-product rate at the recurrent shape (B, H) @ (H, H) and the
fraction of it that training reaches, and the sampling rate of one stream at
H=256, temperature 1.

Floating-point operations per character (forward and backward), counting the
model's matrix products exactly (a multiply-add is 2 FLOPs) for V characters:

    forward   recurrent a_{t-1} @ W_aa                2 H^2
              output    a_t @ W_ya                    2 H V
    backward  output    dW_ya += a_t^T g              2 H V
                        da_t  = g @ W_ya^T            2 H V
              recurrent da_{t-1} = dz_t @ W_aa^T      2 H^2
                        dW_aa += a_{t-1}^T dz_t       2 H^2
    total                                             6 H^2 + 6 H V

The input projection is a row lookup (no FLOPs); the element-wise work
(tanh, softmax, Adam) is O(H + V) per character and is not counted; nor is the
one-hot product charrnn uses to scatter the lookup table's gradient for small
vocabularies (2 H V more), which is an implementation choice, not the model's
arithmetic. Counting fewer FLOPs than are done keeps the fraction honest.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import CharrnnTrainer, default_corpus, load_ids, matmul_gflops, timed  # noqa: E402
from charrnn.sample import Decoding, Stops, generate  # noqa: E402


def flops_per_char(H: int, V: int) -> int:
    return 6 * H * H + 6 * H * V


def train_rate(vocab, ids, H: int, windows: int, window_seconds: float) -> float:
    tr = CharrnnTrainer(vocab, ids, H)
    tr.steps(3)  # warm-up
    per_step = timed(tr.steps, 3) / 3
    n = max(2, int(window_seconds / per_step))
    return statistics.median(tr.chars_per_step * n / timed(tr.steps, n) for _ in range(windows))


def sample_rate(vocab, ids, H: int, windows: int, n_chars: int = 20000) -> float:
    tr = CharrnnTrainer(vocab, ids, H)
    rng = np.random.default_rng(0)
    for _ in generate(tr.ck, "", rng, Decoding(), Stops(length=500)):
        pass
    rates = []
    for _ in range(windows):
        t0 = time.perf_counter()
        for _ in generate(tr.ck, "", rng, Decoding(), Stops(length=n_chars)):
            pass
        rates.append(n_chars / (time.perf_counter() - t0))
    return statistics.median(rates)


def main() -> None:
    ap = argparse.ArgumentParser(description="charrnn training and sampling throughput")
    ap.add_argument("corpus", nargs="?", default=default_corpus())
    ap.add_argument("--sizes", default="128,256,512", help="hidden sizes to time")
    ap.add_argument("--windows", type=int, default=5, help="timed windows per figure (median reported)")
    ap.add_argument("--window-seconds", type=float, default=2.0, help="length of one training window")
    ap.add_argument("--json", dest="json_output", action="store_true", help="print the figures as JSON")
    args = ap.parse_args()
    vocab, ids = load_ids(args.corpus)
    V, B = vocab.size, 64
    rows = []
    for H in (int(h) for h in args.sizes.split(",")):
        mm = matmul_gflops(B, H)
        cps = train_rate(vocab, ids, H, args.windows, args.window_seconds)
        achieved = cps * flops_per_char(H, V) / 1e9
        rows.append({"hidden": H, "matmul_gflops": round(mm, 1), "train_chars_per_sec": round(cps),
                     "flops_per_char": flops_per_char(H, V), "train_gflops": round(achieved, 1),
                     "fraction_of_matmul": round(achieved / mm, 3)})
    samp = sample_rate(vocab, ids, 256, args.windows)
    result = {"corpus": os.path.basename(args.corpus), "vocab_size": V, "batch": B, "seq_len": 64,
              "threads": os.environ.get("OPENBLAS_NUM_THREADS", "default"), "cpus": os.cpu_count(),
              "train": rows, "sample_chars_per_sec_h256": round(samp)}
    if args.json_output:
        print(json.dumps(result, indent=2))
        return
    print(f"corpus {result['corpus']} (V={V}), B=64, T=64, float32, rnn, Adam, clip 5, {os.cpu_count()} CPUs")
    print(f"{'H':>5} {'matmul GFLOP/s':>15} {'train chars/s':>14} {'FLOP/char':>10} {'train GFLOP/s':>14} {'of matmul':>10}")
    for r in rows:
        print(f"{r['hidden']:>5} {r['matmul_gflops']:>15.1f} {r['train_chars_per_sec']:>14,} {r['flops_per_char']:>10,} "
              f"{r['train_gflops']:>14.1f} {r['fraction_of_matmul']:>10.1%}")
    print(f"sampling, one stream, H=256, temperature 1: {result['sample_chars_per_sec_h256']:,} chars/s")


if __name__ == "__main__":
    main()
