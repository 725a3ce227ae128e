"""The numeric choices made once: softmax, log-softmax, a safe log, top-k, and how losses read.

Every module that turns logits into probabilities, takes the log of a
probability, picks the k most likely characters or prints a loss uses these,
so that each choice (float64, the 1e-300 floor, ties to the lower id) is
written in one place.
"""
from __future__ import annotations

import math

import numpy as np

LN2 = math.log(2)  # bits = nats / LN2
TINY = 1e-300  # floor for probabilities before a log: ln(1e-300) ~ -690.8 nats, never -inf


def make_rng(seed: "int | np.random.Generator | None") -> np.random.Generator:
    """The Generator for a seed (a whole number >= 0, or None for fresh entropy); a Generator passes through."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is not None and (not isinstance(seed, (int, np.integer)) or seed < 0):
        from charrnn.errors import UsageError

        raise UsageError(f"--seed must be a whole number of at least 0, not {seed}")
    return np.random.default_rng(seed)


def softmax(logits, axis: int = -1) -> np.ndarray:
    """Probabilities from logits along ``axis``, in float64 so tiny ones stay accurate."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax(logits, axis: int = -1) -> np.ndarray:
    """Log-probabilities from logits along ``axis``, in float64, computed without exp overflow."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def safe_log(p) -> np.ndarray:
    """ln p with p floored at TINY: a probability that underflowed to 0 costs ~690 nats, not inf."""
    return np.log(np.maximum(p, TINY))


def top_k(p: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest entries along the last axis, largest first; ties go to the lower index.

    p (..., V) -> (..., min(k, V)) int64.
    """
    return np.argsort(-np.asarray(p), axis=-1, kind="stable")[..., :k]


def nats_and_bits(nats: float | None) -> str:
    """A loss as people read it: ``1.4000 nats/char (2.0198 bits/char)``; an em dash for None."""
    if nats is None:
        return "—"
    return f"{nats:.4f} nats/char ({nats / LN2:.4f} bits/char)"
