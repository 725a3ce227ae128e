"""charrnn against PyTorch on the same model, same data, same threads, in one run.

    pip install torch            # a benchmark extra, never a runtime dependency
    python benchmarks/vs_torch.py [CORPUS] [--sizes 128,256,512] [--windows 5] [--json]

The PyTorch model is nn.Embedding(V, H) -> nn.RNN(H, H, tanh) -> nn.Linear(H, V),
the closest stock modules to charrnn's parameterisation. charrnn's lookup
table W_ax (V, H) is the product of torch's embedding and its input weights
W_ih; nn.RNN cannot skip W_ih, so torch does one more (T*B, H) @ (H, H) product
forward and two backward per chunk (about 6 H^2 more FLOPs per character)
and has an extra bias. The training
loop matches charrnn's: cross-entropy averaged over the chunk, Adam (lr 2e-3),
global-norm clipping at 5, truncated BPTT over B=64 streams of T=64 with the
state carried and detached between chunks, float32, on the CPU with
torch.set_num_threads equal to the CPUs NumPy's BLAS uses.

For the LSTM, PyTorch does not run its generic per-step code: on the CPU
nn.LSTM (and its backward) goes to oneDNN's fused RNN kernels
(aten::mkldnn_rnn_layer and mkldnn_rnn_layer_backward in torch.profiler),
which do a whole layer's gate arithmetic in compiled code. nn.RNN and nn.GRU
take the ordinary per-step path. Pass --no-mkldnn to turn oneDNN off in torch
and compare with its generic path too.

charrnn runs as ``--workers 1`` (one process, NumPy's BLAS threads) and,
with ``--workers 1,2``, as a pool of 2 single-threaded worker processes
(rows "w=2"); torch always uses all the threads.

Windows alternate charrnn, torch, charrnn, torch... so both see the same
machine load; the medians and their ratio are printed. Sampling steps one
character at a time for one stream at H=256, temperature 1, each side with
its own idiomatic draw (charrnn: cumulative sum and one uniform; torch:
torch.multinomial).
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

from benchmarks.common import CharrnnTrainer, default_corpus, load_ids, timed  # noqa: E402
from charrnn.sample import Decoding, Stops, generate  # noqa: E402

try:
    import torch
    from torch import nn
except ImportError:  # pragma: no cover - depends on the machine
    torch = None




class TorchModel(nn.Module if torch else object):
    def __init__(self, V: int, H: int, cell: str):
        super().__init__()
        self.emb = nn.Embedding(V, H)
        self.rnn = {"rnn": lambda: nn.RNN(H, H, nonlinearity="tanh"), "lstm": lambda: nn.LSTM(H, H),
                    "gru": lambda: nn.GRU(H, H)}[cell]()
        self.out = nn.Linear(H, V)

    def forward(self, x, h):
        a, h = self.rnn(self.emb(x), h)  # x (T, B) -> (T, B, H)
        return self.out(a), h


def _detach(h):
    return tuple(t.detach() for t in h) if isinstance(h, tuple) else h.detach()


class TorchTrainer:
    def __init__(self, ids: np.ndarray, V: int, H: int, cell: str = "rnn", B: int = 64, T: int = 64):
        torch.manual_seed(0)
        self.model = TorchModel(V, H, cell)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=2e-3)
        L = (len(ids) - 1) // B
        data = torch.from_numpy(ids.astype(np.int64))
        self.x = data[: B * L].view(B, L).t().contiguous()  # (L, B)
        self.y = data[1 : B * L + 1].view(B, L).t().contiguous()
        self.T, self.B, self.L, self.pos, self.cell = T, B, L, 0, cell
        zeros = torch.zeros(1, B, H)
        self.h = (zeros, zeros.clone()) if cell == "lstm" else zeros
        self.loss_fn = nn.CrossEntropyLoss()
        self.chars_per_step = B * T

    def steps(self, n: int) -> None:
        for _ in range(n):
            if self.pos + self.T > self.L:
                self.pos = 0
            x = self.x[self.pos : self.pos + self.T]
            y = self.y[self.pos : self.pos + self.T]
            self.pos += self.T
            logits, h = self.model(x, self.h)
            loss = self.loss_fn(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(self.model.parameters(), 5.0)
            self.opt.step()
            self.h = _detach(h)

    def sample(self, n: int) -> None:
        H = self.model.emb.embedding_dim
        zeros = torch.zeros(1, 1, H)
        h = (zeros, zeros.clone()) if self.cell == "lstm" else zeros
        cur = torch.zeros(1, 1, dtype=torch.long)
        with torch.no_grad():
            for _ in range(n):
                logits, h = self.model(cur, h)
                p = torch.softmax(logits[0, 0], dim=-1)
                cur[0, 0] = torch.multinomial(p, 1)[0]


def alternate(a_fn, b_fn, windows: int) -> tuple[float, float]:
    """Median rates of two timed callables, measured in alternating windows."""
    ra, rb = [], []
    for _ in range(windows):
        ra.append(a_fn())
        rb.append(b_fn())
    return statistics.median(ra), statistics.median(rb)


def train_pair(vocab, ids, H, cell, windows, window_seconds, workers=1):
    """charrnn (``--workers`` N: 1 in this process, N > 1 a WorkerPool) against torch, alternating."""
    ours = CharrnnTrainer(vocab, ids, H, cell=cell, workers=0 if workers == 1 else workers)
    theirs = TorchTrainer(ids, vocab.size, H, cell)
    try:
        ours.steps(3)
        theirs.steps(3)
        n_ours = max(2, int(window_seconds / (timed(ours.steps, 3) / 3)))
        n_theirs = max(2, int(window_seconds / (timed(theirs.steps, 3) / 3)))
        return alternate(lambda: ours.chars_per_step * n_ours / timed(ours.steps, n_ours),
                         lambda: theirs.chars_per_step * n_theirs / timed(theirs.steps, n_theirs), windows)
    finally:
        ours.close()


def sample_pair(vocab, ids, H, windows, n=5000):
    ours = CharrnnTrainer(vocab, ids, H)
    theirs = TorchTrainer(ids, vocab.size, H)
    rng = np.random.default_rng(0)

    def ours_rate():
        t0 = time.perf_counter()
        for _ in generate(ours.ck, "", rng, Decoding(), Stops(length=n)):
            pass
        return n / (time.perf_counter() - t0)

    def theirs_rate():
        return n / timed(theirs.sample, n)

    ours_rate(), theirs_rate()
    return alternate(ours_rate, theirs_rate, windows)


def main() -> None:
    ap = argparse.ArgumentParser(description="charrnn vs PyTorch, side by side")
    ap.add_argument("corpus", nargs="?", default=default_corpus())
    ap.add_argument("--sizes", default="128,256,512")
    ap.add_argument("--cells", default="rnn,lstm,gru", help="comma-separated cells to compare (lstm and gru at H=256 only)")
    ap.add_argument("--workers", default="1,cores", help="charrnn --workers counts to compare (cores: all of them)")
    ap.add_argument("--windows", type=int, default=5)
    ap.add_argument("--window-seconds", type=float, default=2.0)
    ap.add_argument("--no-mkldnn", action="store_true", help="turn off torch's oneDNN kernels (its fused LSTM)")
    ap.add_argument("--json", dest="json_output", action="store_true")
    args = ap.parse_args()
    if torch is None:
        sys.exit("vs_torch.py needs PyTorch: pip install torch")
    if args.no_mkldnn:
        torch.backends.mkldnn.enabled = False
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    torch.set_num_threads(threads)
    vocab, ids = load_ids(args.corpus)
    worker_counts = sorted({threads if w == "cores" else int(w) for w in args.workers.split(",")})
    rows = []
    for cell in args.cells.split(","):
        sizes = [int(h) for h in args.sizes.split(",")] if cell == "rnn" else [256]
        for H in sizes:
            for w in worker_counts:
                ours, theirs = train_pair(vocab, ids, H, cell, args.windows, args.window_seconds, w)
                rows.append({"what": f"train {cell} H={H}" + (f" w={w}" if w > 1 else ""), "workers": w,
                             "charrnn": round(ours), "torch": round(theirs), "ratio": round(ours / theirs, 2)})
    ours, theirs = sample_pair(vocab, ids, 256, args.windows)
    rows.append({"what": "sample rnn H=256", "charrnn": round(ours), "torch": round(theirs), "ratio": round(ours / theirs, 2)})
    result = {"torch": torch.__version__, "threads": threads, "mkldnn": torch.backends.mkldnn.enabled, "corpus": os.path.basename(args.corpus), "rows": rows}
    if args.json_output:
        print(json.dumps(result, indent=2))
        return
    print(f"chars/s, median of {args.windows} alternating windows; torch {torch.__version__}, {threads} threads, "
          f"oneDNN {'on' if result['mkldnn'] else 'off'}, corpus {result['corpus']}, B=64, T=64")
    print(f"{'':26} {'charrnn':>10} {'torch':>10} {'ratio':>7}")
    for r in rows:
        print(f"{r['what']:26} {r['charrnn']:>10,} {r['torch']:>10,} {r['ratio']:>6.2f}x")


if __name__ == "__main__":
    main()
