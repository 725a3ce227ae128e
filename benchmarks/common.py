"""Shared pieces of the benchmarks: corpus choice, timing windows, model set-up."""
from __future__ import annotations

import os
import statistics
import time

import numpy as np

from charrnn.alloc import keep_freed_memory
from charrnn.config import ModelConfig, TrainConfig
from charrnn.data import Streams
from charrnn.checkpoint import new_checkpoint
from charrnn.gradients import InProcess
from charrnn.loop import train_step
from charrnn.vocab import Vocab
from charrnn.workers import WorkerPool

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared", "data", "tinyshakespeare.txt")
BUNDLED = os.path.join(ROOT, "corpora", "pantry.txt")


def default_corpus() -> str:
    """tiny-shakespeare from ../shared when it is there, else the bundled pantry corpus."""
    return SHARED if os.path.exists(SHARED) else BUNDLED


def load_ids(path: str) -> tuple[Vocab, np.ndarray]:
    with open(path, encoding="utf-8") as f:
        text = f.read()
    vocab = Vocab.from_text(text)
    return vocab, vocab.encode(text)


def matmul_gflops(B: int, H: int, seconds: float = 0.3) -> float:
    """Median float32 rate of (B, H) @ (H, H) in GFLOP/s, the recurrent product's shape."""
    rng = np.random.default_rng(0)
    a = rng.random((B, H), dtype=np.float32)
    w = rng.random((H, H), dtype=np.float32)
    out = np.empty((B, H), dtype=np.float32)
    for _ in range(50):
        np.matmul(a, w, out=out)
    rates = []
    for _ in range(5):
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds / 5:
            np.matmul(a, w, out=out)
            n += 1
        rates.append(2 * B * H * H * n / (time.perf_counter() - t0) / 1e9)
    return statistics.median(rates)


class CharrnnTrainer:
    """charrnn's real training step (loss_and_grads, clipping, Adam) on real chunks.

    With ``workers`` > 0, a WorkerPool of that many single-threaded processes
    shares each batch, as ``charrnn train --workers N`` does (workers=1 is one
    single-threaded worker process); 0 runs in this process with its BLAS threads.
    Call close() when done.
    """

    def __init__(self, vocab: Vocab, ids: np.ndarray, hidden: int, batch: int = 64, seq_len: int = 64,
                 cell: str = "rnn", workers: int = 0):
        keep_freed_memory()  # as charrnn.loop.run does
        mcfg = ModelConfig(vocab_size=vocab.size, hidden=hidden, cell=cell)
        tcfg = TrainConfig(batch=batch, seq_len=seq_len, optimizer="adam", clip=5.0)
        self.ck = new_checkpoint(vocab, mcfg, tcfg)
        self.ck.state = np.zeros((1, batch, self.ck.state.shape[2]), dtype=np.float32)
        self.streams = Streams.of(ids, batch, seq_len)
        self.chars_per_step = batch * seq_len
        self.pool = WorkerPool(workers, mcfg, batch) if workers > 0 else None

    def steps(self, n: int) -> None:
        by = self.pool or InProcess()
        for _ in range(n):
            train_step(self.ck, self.streams, self.ck.train_config.lr, by)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()


def timed(fn, n: int) -> float:
    """Seconds taken by fn(n)."""
    t0 = time.perf_counter()
    fn(n)
    return time.perf_counter() - t0
