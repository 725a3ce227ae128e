"""Generating text: prime the state, then draw one character at a time."""
from __future__ import annotations

from typing import Iterator

import numpy as np

from charrnn import model
from charrnn.checkpoint import Checkpoint
from charrnn.errors import UsageError


def prime_state(ck: Checkpoint, prime_ids: np.ndarray):
    """Read the prime through the model. Returns (logits (V,) for the next char, state (L, 1, S))."""
    state = np.zeros(model.state_shape(ck.model, 1), dtype=ck.model.dtype)
    logits, state = model.chunk_logits(ck.params, ck.model, prime_ids[:, None], state)  # (T, 1, V)
    return logits[-1, 0].astype(np.float64), state


def draw(logits: np.ndarray, temp: float, rng: np.random.Generator) -> int:
    """One id from logits (V,): divide by the temperature, softmax, invert the CDF.

    temp 0 is greedy (argmax). Inverting the cumulative sum with one uniform
    draw is exact and much faster than rng.choice(p=...).
    """
    if temp == 0:
        return int(np.argmax(logits))
    z = logits / temp
    z -= z.max()
    cdf = np.cumsum(np.exp(z))
    i = int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))
    return min(i, len(cdf) - 1)  # guards the u*total == total rounding edge


def generate(
    ck: Checkpoint, prime: str, length: int, temp: float, rng: np.random.Generator
) -> Iterator[str]:
    """Yield ``length`` new characters, one at a time, continuing ``prime``.

    Without a prime, the model starts from a zero state after a newline if
    its vocabulary has one, otherwise from a uniformly drawn character, which
    is yielded as the first of the ``length``.
    """
    if temp < 0:
        raise UsageError(f"--temp must be 0 (greedy) or positive, not {temp}")
    vocab = ck.vocab
    if prime:
        ids = vocab.encode(prime)  # raises, naming unknown characters
    elif "\n" in vocab.chars:
        ids = vocab.encode("\n")
    else:
        first = int(rng.integers(vocab.size))
        ids = np.array([first])
        if length <= 0:
            return
        yield vocab.chars[first]
        length -= 1
    logits, state = prime_state(ck, ids)
    chars, params, cfg = vocab.chars, ck.params, ck.model
    cur = np.zeros(1, dtype=np.int64)
    for _ in range(length):
        i = draw(logits, temp, rng)
        yield chars[i]
        cur[0] = i
        out, state = model.step(params, cfg, cur, state)
        logits = out[0].astype(np.float64)
