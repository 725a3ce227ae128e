"""Generating text: prime the state, then draw one character at a time, or search beams.

Decoding applies, in this order: temperature (divide the logits), top-k
(keep the k most likely), top-p (keep the smallest set whose probability
reaches p), then one exact draw by inverting the cumulative sum.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from charrnn import network
from charrnn.numerics import safe_log, softmax, top_k
from charrnn.checkpoint import Checkpoint
from charrnn.errors import UsageError


@dataclass
class Decoding:
    """How each next character is chosen."""

    temp: float = 1.0  # divides the logits; 0 is greedy
    top_k: int | None = None  # keep only the k most likely characters
    top_p: float | None = None  # nucleus: keep the smallest set with probability >= p

    def check(self) -> None:
        if not (math.isfinite(self.temp) and self.temp >= 0):
            raise UsageError(f"--temp must be 0 (greedy) or a positive number, not {self.temp}")
        if self.top_k is not None and self.top_k < 1:
            raise UsageError(f"--top-k must be at least 1, not {self.top_k}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise UsageError(f"--top-p must be in (0, 1], not {self.top_p}")


@dataclass
class Stops:
    """When one sample ends: the first condition met."""

    length: int | None = 500  # new characters at most; None is no ceiling
    strings: list[str] = field(default_factory=list)  # end right after any of these is generated
    lines: int | None = None  # end after this many newlines

    @property
    def endless(self) -> bool:
        return self.length is None and not self.strings and self.lines is None


def prime_state(ck: Checkpoint, prime_ids: np.ndarray):
    """Read the prime through the model. Returns (logits (V,) for the next char, state (L, 1, S))."""
    state = network.zero_state(ck.model_config, 1)
    logits, state = network.chunk_logits(ck.params, ck.model_config, prime_ids[:, None], state)  # (T, 1, V)
    return logits[-1, 0].astype(np.float64), state


def start(ck: Checkpoint, prime: str, rng: np.random.Generator):
    """(logits, state, first) to begin from ``prime``.

    Without a prime the model starts after a newline if its vocabulary has
    one; otherwise from a uniformly drawn character, returned as ``first``
    (it is part of the generated text, and the state returned is the empty
    one, before it).
    """
    vocab = ck.vocab
    if prime:
        ids = vocab.encode(prime)  # raises, naming unknown characters
    elif "\n" in vocab.chars:
        ids = vocab.encode("\n")
    else:  # drawn uniformly, and read once, by the first step, from the empty state
        return np.zeros(vocab.size), network.zero_state(ck.model_config, 1), int(rng.integers(vocab.size))
    logits, state = prime_state(ck, ids)
    return logits, state, None


def distribution(logits: np.ndarray, dec: Decoding) -> np.ndarray:
    """(V,) float64 probabilities after temperature, top-k and top-p, in that order."""
    if dec.temp == 0:
        p = np.zeros(len(logits))
        p[int(np.argmax(logits))] = 1.0
        return p
    p = softmax(logits / dec.temp)  # 1. temperature
    order = None
    if dec.top_k is not None and dec.top_k < len(p):  # 2. top-k; ties go to the lower id, as argmax does
        order = top_k(p, len(p))
        p[order[dec.top_k :]] = 0.0
        p /= p.sum()
    if dec.top_p is not None and dec.top_p < 1:  # 3. top-p (nucleus)
        if order is None:
            order = top_k(p, len(p))
        cum = np.cumsum(p[order])
        n_keep = int(np.searchsorted(cum, dec.top_p)) + 1  # smallest prefix reaching top_p
        p[order[n_keep:]] = 0.0
        p /= p.sum()
    return p


def draw(p: np.ndarray, rng: np.random.Generator) -> int:
    """One index from probabilities p (V,): one uniform draw against the cumulative sum.

    Exact, and much faster than rng.choice(p=...).
    """
    cdf = np.cumsum(p)
    i = int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))
    return min(i, len(cdf) - 1)  # guards the u*total == total rounding edge


def generate(ck: Checkpoint, prime: str, rng: np.random.Generator, dec: Decoding, stops: Stops) -> Iterator[str]:
    """Yield generated characters one at a time (see :func:`generate_scored`)."""
    for ch, _, _ in generate_scored(ck, prime, rng, dec, stops):
        yield ch


def generate_scored(
    ck: Checkpoint, prime: str, rng: np.random.Generator, dec: Decoding, stops: Stops
) -> Iterator[tuple[str, float, np.ndarray]]:
    """Yield (char, p, model_probs) for each generated character, continuing ``prime``.

    p is the probability the model itself (temperature 1, unfiltered) gave
    the character, and model_probs (V,) that whole distribution. Stops at
    the first of ``stops``; never, if they are all off.
    """
    dec.check()
    chars, params, cfg = ck.vocab.chars, ck.params, ck.model_config
    logits, state, first = start(ck, prime, rng)
    n, lines, tail = 0, 0, ""
    longest = max((len(s) for s in stops.strings), default=0)
    cur = np.zeros(1, dtype=np.int64)
    plain = dec.temp == 1 and dec.top_k is None and dec.top_p is None  # draw from the model's softmax as is
    while stops.length is None or n < stops.length:
        probs = softmax(logits)  # the model's own distribution, temperature 1
        if first is not None:  # the random start character of a prime-less, newline-less model
            i, first = first, None
        else:
            i = draw(probs if plain else distribution(logits, dec), rng)
        ch = chars[i]
        yield ch, float(probs[i]), probs
        n += 1
        if stops.lines is not None and ch == "\n":
            lines += 1
            if lines >= stops.lines:
                return
        if longest:
            tail = (tail + ch)[-longest:]
            if any(tail.endswith(s) for s in stops.strings):
                return
        cur[0] = i
        out, state = network.step(params, cfg, cur, state)
        logits = out[0].astype(np.float64)


def beam_search(
    ck: Checkpoint, prime: str, length: int, width: int, end: str | None = None, n_best: int = 1
) -> list[tuple[str, float]]:
    """The ``n_best`` likeliest continuations of at most ``length`` characters, found with ``width`` beams.

    With ``end`` (a vocabulary character, e.g. the newline that closes a
    record), a hypothesis is finished once it generates ``end``; the search
    stops when no open beam can still beat the finished ones (log-probabilities
    only fall as text grows). Deterministic. Returns [(text, total log-probability
    in nats)], likeliest first.
    """
    if width < 1:
        raise UsageError(f"--beam must be at least 1, not {width}")
    if not 1 <= n_best <= width:
        raise UsageError(f"--num-samples with --beam must be between 1 and the beam width {width}, not {n_best}")
    params, cfg, V = ck.params, ck.model_config, ck.vocab.size
    end_id = ck.vocab.chars.index(end) if end is not None and end in ck.vocab.chars else -1
    logits, state, first = start(ck, prime, np.random.default_rng(0))
    if first is not None:
        raise UsageError("--beam needs a --prime for a model whose vocabulary has no newline")
    seqs = np.zeros((1, 0), dtype=np.int64)  # (beams, generated so far)
    scores = np.zeros(1)  # (beams,) log-probabilities
    logp = safe_log(softmax(logits))[None, :]  # (beams, V)
    done: list[tuple[float, np.ndarray]] = []  # finished hypotheses (score, ids)
    for t in range(length):
        cand = (scores[:, None] + logp).ravel()  # (beams * V,)
        best = top_k(cand, width + n_best)  # room for finished ones without starving the open beams
        beam, char = np.divmod(best, V)
        closed = char == end_id
        done += [(float(cand[j]), np.append(seqs[b], c)) for j, b, c in zip(best[closed], beam[closed], char[closed])]
        keep = ~closed
        beam, char, best = beam[keep][:width], char[keep][:width], best[keep][:width]
        done = sorted(done, key=lambda d: -d[0])[:n_best]
        seqs = np.concatenate([seqs[beam], char[:, None]], axis=1)
        scores = cand[best]
        if len(best) == 0 or (len(done) == n_best and done[-1][0] >= scores[0]) or t == length - 1:
            break
        out, state = network.step(params, cfg, char, state[:, beam])
        logp = safe_log(softmax(out))
    if not length:
        return [("", 0.0)]
    results = done  # with an end character, whole hypotheses come first; cut ones only make up the number
    if len(done) < n_best:
        results = done + sorted(((float(s), q) for s, q in zip(scores, seqs)), key=lambda d: -d[0])
    results = results[:n_best] if end_id >= 0 else sorted(results, key=lambda d: -d[0])[:n_best]
    return [(ck.vocab.decode(ids), score) for score, ids in results]
