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
    lines: int = 0  # newlines drawn so far
    tail: str = ""  # the last characters, for stop strings
    first: int | None = None  # a start character drawn before the first step (no prime, no newline)
    details: bool = False  # whether its caller wants the model's five likeliest characters at each step

    @property
    def watches_text(self) -> bool:
        """Whether its stops look at the characters drawn (lines, strings), not only at their number."""
        return self.stops.lines is not None or bool(self.stops.strings)


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


AHEAD = 64  # uniforms drawn from each job's Generator at a time (the same values as one rng.random() each)
PRIMED = 32  # primes whose state a batch keeps, so jobs with the same prime read it once


class Batch:
    """Samples from one model, drawn together; see the module's docstring."""

    def __init__(self, ck: Checkpoint):
        self.ck = ck
        self.jobs: list[Job] = []
        self.logits = np.zeros((0, ck.vocab.size))  # (K, V) for each job's next character
        self.state = network.zero_state(ck.model_config, 0)  # (L, K, S)
        self.count = np.zeros(0, dtype=np.int64)  # (K,) characters drawn by each job
        self.limit = np.zeros(0, dtype=np.float64)  # (K,) its length stop, inf for none
        self.ahead = np.zeros((0, AHEAD))  # (K, AHEAD) its next uniforms
        self.used = np.zeros(0, dtype=np.int64)  # (K,) how many of its row of ahead are used
        self.plain = np.zeros(0, dtype=bool)  # (K,) it draws from the model's softmax as is
        self.temp = np.zeros(0)  # (K,) otherwise its decoding, as distributions() takes it: temperature,
        self.top_k = np.zeros(0, dtype=np.int64)  # top-k (0 off)
        self.top_p = np.zeros(0)  # and top-p (1 off)
        self.watching = np.zeros(0, dtype=bool)  # (K,) its stops look at the characters (Job.watches_text)
        self.starting = np.zeros(0, dtype=bool)  # (K,) it has a start character drawn before its first step
        self.arrival = np.zeros(0, dtype=np.int64)  # (K,) the order in which the jobs were added
        self.added = 0  # jobs added so far
        self.primed: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # prime -> (logits (V,), state (L, 1, S))

    def __len__(self) -> int:
        return len(self.jobs)

    def add(self, job: Job) -> None:
        """Read ``job``'s prime and put it in the batch (raises CharRNNError for an unknown character)."""
        job.decoding.check()
        if job.prime in self.primed:
            logits, state = self.primed[job.prime]
        else:
            logits, state, job.first = start(self.ck, job.prime, job.rng)
            if job.first is None:  # a read prime, the same for any job
                if len(self.primed) >= PRIMED:
                    del self.primed[next(iter(self.primed))]
                self.primed[job.prime] = logits, state
        self.jobs.append(job)
        self.logits = np.concatenate([self.logits, logits[None]])
        self.state = np.concatenate([self.state, state], axis=1)
        self.count = np.append(self.count, 0)
        self.limit = np.append(self.limit, np.inf if job.stops.length is None else job.stops.length)
        self.ahead = np.concatenate([self.ahead, job.rng.random(AHEAD)[None]])
        self.used = np.append(self.used, 0)
        d = job.decoding
        self.plain = np.append(self.plain, d.temp == 1 and d.top_k is None and d.top_p is None)
        self.temp = np.append(self.temp, d.temp)
        self.top_k = np.append(self.top_k, d.top_k or 0)
        self.top_p = np.append(self.top_p, 1.0 if d.top_p is None else d.top_p)
        self.watching = np.append(self.watching, job.watches_text)
        self.starting = np.append(self.starting, job.first is not None)
        self.arrival = np.append(self.arrival, self.added)
        self.added += 1

    def remove(self, keys) -> None:
        """Drop the jobs whose key is in ``keys`` (their callers went away)."""
        self._keep(np.array([j.key not in keys for j in self.jobs], dtype=bool))

    def draw(self) -> tuple[list[Job], np.ndarray, np.ndarray, np.ndarray]:
        """The next character of every job: (jobs, ids (K,), model probs (K, V), finished (K,)).

        The finished jobs leave the batch; the others advance one network step.
        """
        jobs, ids, model, done = self.choose()
        if self.jobs:
            self.advance(*network.step(self.ck.params, self.ck.model_config, ids[~done], self.state))
        return jobs, ids, model, done

    def choose(self) -> tuple[list[Job], np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`draw` without its network step: (jobs, ids (K,), model probs (K, V), finished (K,)).

        The finished jobs leave the batch. The caller steps the network on
        ``ids[~finished]`` from :attr:`state` (the jobs left) and hands what it
        gives to :meth:`advance`: the HTTP server's engine steps other rows in
        the same product.
        """
        jobs, K = self.jobs, len(self.jobs)
        model = softmax(self.logits)  # (K, V) the model's own distributions, temperature 1
        p = model if self.plain.all() else distributions(self.logits, self.temp, self.top_k, self.top_p)
        cdf = np.cumsum(p, axis=1)
        u = self.ahead[np.arange(K), self.used] * cdf[:, -1]
        ids = np.minimum((cdf <= u[:, None]).sum(axis=1), p.shape[1] - 1)  # one exact draw per row
        self.used += ~self.starting  # a start character uses no uniform
        for row in np.flatnonzero(self.starting):  # a prime-less, newline-less model starts from a random character
            ids[row], jobs[row].first = jobs[row].first, None
        self.starting[:] = False
        for row in np.flatnonzero(self.used == AHEAD):
            self.ahead[row], self.used[row] = jobs[row].rng.random(AHEAD), 0
        self.count += 1
        done = self.count >= self.limit
        chars = self.ck.vocab.chars
        for row in np.flatnonzero(self.watching & ~done):
            done[row] = self._watch(jobs[row], chars[ids[row]])
        self._keep(~done)
        return jobs, ids, model, done

    def advance(self, logits: np.ndarray, state: np.ndarray) -> None:
        """The network step of the jobs left after :meth:`choose`: logits (K, V), state (L, K, S)."""
        self.logits, self.state = logits.astype(np.float64), state

    def step(self) -> list[tuple[Job, str, float, np.ndarray, bool]]:
        """The next character of every job: (job, char, p, model probs (V,), finished) each; finished jobs leave."""
        if not self.jobs:
            return []
        jobs, ids, model, done = self.draw()
        chosen = model[np.arange(len(jobs)), ids].tolist()  # (K,) the model's probability of each drawn character
        chars = self.ck.vocab.chars
        return [(job, chars[i], p_i, probs, d) for job, i, p_i, probs, d in zip(jobs, ids.tolist(), chosen, model,
                                                                             done.tolist())]

    @staticmethod
    def _watch(job: Job, ch: str) -> bool:
        """Count ``ch`` into ``job``'s line and string stops; whether that ends it."""
        stops = job.stops
        if stops.lines is not None and ch == "\n":
            job.lines += 1
            if job.lines >= stops.lines:
                return True
        if stops.strings:
            job.tail = (job.tail + ch)[-max(len(s) for s in stops.strings):]
            if any(job.tail.endswith(s) for s in stops.strings):
                return True
        return False

    def _keep(self, rows: np.ndarray) -> None:
        if rows.all():
            return
        self.jobs = [j for j, k in zip(self.jobs, rows) if k]
        self.logits, self.state = self.logits[rows], self.state[:, rows]
        for name in ("count", "limit", "ahead", "used", "plain", "temp", "top_k", "top_p", "watching", "starting",
                     "arrival"):  # the per-job rows
            setattr(self, name, getattr(self, name)[rows])


def spawn_rngs(seed, k: int) -> list[np.random.Generator]:
    """``k`` independent Generators from one seed (an int, or None for fresh entropy): sample i's own."""
    return [np.random.Generator(np.random.PCG64(s)) for s in np.random.SeedSequence(seed).spawn(k)]


def _filled(ck: Checkpoint, k: int, prime: str, decoding: Decoding, stops: Stops, seed) -> Batch:
    batch = Batch(ck)
    for i, rng in enumerate(spawn_rngs(seed, k)):
        batch.add(Job(prime, decoding, stops, rng, key=i))
    return batch


def sample_many(ck: Checkpoint, k: int, prime: str, decoding: Decoding, stops: Stops, seed=None):
    """Draw ``k`` samples as one batch; yields (sample index, char, p, model probs, finished) as they are drawn.

    Sample i draws from its own Generator, spawned from ``seed`` (an int, or
    None for fresh entropy), so the same seed gives the same samples.
    """
    batch = _filled(ck, k, prime, decoding, stops, seed)
    while batch:
        for job, ch, p, probs, done in batch.step():
            yield job.key, ch, p, probs, done


def sample_texts(ck: Checkpoint, k: int, prime: str, decoding: Decoding, stops: Stops, seed=None) -> list[str]:
    """The ``k`` samples of :func:`sample_many` (the same seed, the same texts) as strings, sample i at i.

    It keeps each step's ids as arrays and decodes them once at the end.
    """
    batch = _filled(ck, k, prime, decoding, stops, seed)
    rows, ids = [], []  # per step: (K,) sample indices (their order of arrival), (K,) drawn ids
    while batch:
        rows.append(batch.arrival)
        ids.append(batch.draw()[1])
    if not rows:
        return [""] * k
    rows_all, ids_all = np.concatenate(rows), np.concatenate(ids)
    order = np.argsort(rows_all, kind="stable")  # by sample, each in drawing order
    ends = np.cumsum(np.bincount(rows_all, minlength=k))
    text = ck.vocab.decode(ids_all[order])
    return [text[a:b] for a, b in zip(np.concatenate([[0], ends[:-1]]), ends)]
