"""Drawing many samples at once: one matrix product per character for all of them.

A :class:`Batch` holds samples being drawn, each with its own prime, decoding
(temperature, top-k, top-p), stop conditions and random Generator, so that a
sample's text depends only on its own seed, never on what else is in the
batch. Each :meth:`Batch.step` draws the next character of every sample in
one ``network.step`` over their stacked states; a sample that meets its stop
leaves the batch, and new ones can join between steps (the HTTP server adds
requests to a running batch this way).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from charrnn import network
from charrnn.checkpoint import Checkpoint
from charrnn.numerics import softmax
from charrnn.sample import Decoding, Stops, start


@dataclass
class Job:
    """One sample being drawn."""

    prime: str = ""
    decoding: Decoding = field(default_factory=Decoding)
    stops: Stops = field(default_factory=Stops)
    rng: np.random.Generator = field(default_factory=np.random.default_rng)
    key: object = None  # the caller's name for it
    n: int = 0  # characters drawn so far
    lines: int = 0  # newlines drawn so far
    tail: str = ""  # the last characters, for stop strings
    first: int | None = None  # a start character drawn before the first step (no prime, no newline)
    details: bool = False  # whether its caller wants the model's five likeliest characters at each step
    ahead: list = field(default_factory=list, repr=False)  # uniforms drawn from rng ahead of use, next one last

    def uniform(self) -> float:
        """The next uniform of ``rng`` (drawn 64 at a time: the same values as one ``rng.random()`` each)."""
        if not self.ahead:
            self.ahead = self.rng.random(64).tolist()[::-1]
        return self.ahead.pop()


def distributions(logits: np.ndarray, temp: np.ndarray, top_k: np.ndarray, top_p: np.ndarray) -> np.ndarray:
    """(K, V) float64 probabilities from logits (K, V) after each row's temperature, top-k and top-p.

    temp (K,): 0 is greedy; top_k (K,): 0 is off; top_p (K,): 1 is off. The
    rules are those of charrnn.sample.distribution, row by row.
    """
    K, V = logits.shape
    greedy = temp == 0
    p = softmax(logits / np.where(greedy, 1.0, temp)[:, None])
    order = np.argsort(-p, axis=1, kind="stable")  # (K, V) likeliest first, ties to the lower id
    rank = np.empty_like(order)
    rank[np.arange(K)[:, None], order] = np.arange(V)
    k = np.where((top_k > 0) & (top_k < V), top_k, V)
    p = np.where(rank < k[:, None], p, 0.0)
    p /= p.sum(axis=1, keepdims=True)
    cum = np.cumsum(np.take_along_axis(p, order, axis=1), axis=1)  # (K, V) in rank order
    n_keep = (cum < top_p[:, None]).sum(axis=1) + 1  # the smallest prefix reaching top_p
    n_keep = np.where(top_p < 1, n_keep, V)
    p = np.where(rank < n_keep[:, None], p, 0.0)
    p /= p.sum(axis=1, keepdims=True)
    p[greedy] = 0.0
    p[greedy, order[greedy, 0]] = 1.0
    return p


class Batch:
    """Samples from one model, drawn together; see the module's docstring."""

    def __init__(self, ck: Checkpoint):
        self.ck = ck
        self.jobs: list[Job] = []
        self.logits = np.zeros((0, ck.vocab.size))  # (K, V) for each job's next character
        self.state = network.zero_state(ck.model_config, 0)  # (L, K, S)

    def __len__(self) -> int:
        return len(self.jobs)

    def add(self, job: Job) -> None:
        """Read ``job``'s prime and put it in the batch (raises CharRNNError for an unknown character)."""
        job.decoding.check()
        logits, state, job.first = start(self.ck, job.prime, job.rng)
        self.jobs.append(job)
        self.logits = np.concatenate([self.logits, logits[None]])
        self.state = np.concatenate([self.state, state], axis=1)

    def remove(self, keys) -> None:
        """Drop the jobs whose key is in ``keys`` (their callers went away)."""
        self._keep(np.array([j.key not in keys for j in self.jobs], dtype=bool))

    def step(self) -> list[tuple[Job, str, float, np.ndarray, bool]]:
        """The next character of every job: (job, char, p, model probs (V,), finished) each; finished jobs leave."""
        if not self.jobs:
            return []
        jobs, chars = self.jobs, self.ck.vocab.chars
        model = softmax(self.logits)  # (K, V) the model's own distributions, temperature 1
        dec = [j.decoding for j in jobs]
        plain = all(d.temp == 1 and d.top_k is None and d.top_p is None for d in dec)
        p = model if plain else distributions(
            self.logits, np.array([d.temp for d in dec], dtype=np.float64),
            np.array([d.top_k or 0 for d in dec]), np.array([1.0 if d.top_p is None else d.top_p for d in dec]))
        cdf = np.cumsum(p, axis=1)
        u = np.array([j.uniform() if j.first is None else 0.0 for j in jobs]) * cdf[:, -1]
        ids = np.minimum((cdf <= u[:, None]).sum(axis=1), p.shape[1] - 1)  # one exact draw per row
        for row, job in enumerate(jobs):
            if job.first is not None:  # a prime-less, newline-less model starts from a random character
                ids[row], job.first = job.first, None
        chosen = model[np.arange(len(jobs)), ids].tolist()  # (K,) the model's probability of each drawn character
        events, going = [], []
        for job, i, p_i, probs in zip(jobs, ids.tolist(), chosen, model):
            ch = chars[i]
            done = self._advance(job, ch)
            going.append(not done)
            events.append((job, ch, p_i, probs, done))
        self._keep(np.array(going, dtype=bool))
        if self.jobs:
            out, self.state = network.step(self.ck.params, self.ck.model_config, ids[going], self.state)
            self.logits = out.astype(np.float64)
        return events

    @staticmethod
    def _advance(job: Job, ch: str) -> bool:
        """Count ``ch`` into ``job``; whether that ends it."""
        job.n += 1
        stops = job.stops
        if stops.lines is not None and ch == "\n":
            job.lines += 1
            if job.lines >= stops.lines:
                return True
        if stops.strings:
            job.tail = (job.tail + ch)[-max(len(s) for s in stops.strings):]
            if any(job.tail.endswith(s) for s in stops.strings):
                return True
        return stops.length is not None and job.n >= stops.length

    def _keep(self, rows: np.ndarray) -> None:
        if rows.all():
            return
        self.jobs = [j for j, k in zip(self.jobs, rows) if k]
        self.logits, self.state = self.logits[rows], self.state[:, rows]


def spawn_rngs(seed, k: int) -> list[np.random.Generator]:
    """``k`` independent Generators from one seed (an int, or None for fresh entropy): sample i's own."""
    return [np.random.Generator(np.random.PCG64(s)) for s in np.random.SeedSequence(seed).spawn(k)]


def sample_many(ck: Checkpoint, k: int, prime: str, decoding: Decoding, stops: Stops, seed=None):
    """Draw ``k`` samples as one batch; yields (sample index, char, p, model probs, finished) as they are drawn.

    Sample i draws from its own Generator, spawned from ``seed`` (an int, or
    None for fresh entropy), so the same seed gives the same samples.
    """
    batch = Batch(ck)
    for i, rng in enumerate(spawn_rngs(seed, k)):
        batch.add(Job(prime, decoding, stops, rng, key=i))
    for _ in itertools.count():
        if not batch:
            return
        for job, ch, p, probs, done in batch.step():
            yield job.key, ch, p, probs, done
