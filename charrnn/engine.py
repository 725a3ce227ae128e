"""One model's generations, batched across requests: a thread that steps every running sample at once.

The HTTP server (charrnn.server) submits the samples of each generate
request as jobs, with a function that receives their characters. The
engine's thread adds new jobs to a charrnn.batch_sampling.Batch between
steps, draws the next character of every job in one network step, and hands
each character to its request. A request that goes away cancels its jobs,
which leave the batch at the next step. Each job draws from its own seeded
Generator, so a request's text never depends on what else is running.
"""
from __future__ import annotations

import asyncio
import itertools
import math
import threading
from dataclasses import dataclass
from typing import Callable

import numpy as np

from charrnn.batch_sampling import Batch, Job
from charrnn.numerics import TINY


@dataclass
class Drawn:
    """One character of one sample, as the engine hands it over."""

    sample: int  # the sample's index within its request
    char: str
    p: float  # the model's probability of it (temperature 1)
    top: list  # [(char, p)] the model's five likeliest there
    done: bool  # whether the sample ended with it


class Engine:
    """The generations of one model (a charrnn.Model), stepped together in one thread."""

    def __init__(self, model):
        self.model = model
        self.batch: Batch = model.new_batch()
        self.cond = threading.Condition()
        self.pending: list[tuple[Job, Callable]] = []
        self.sinks: dict[object, Callable[[Drawn], None]] = {}
        self.cancelled: set = set()
        self.stopping = False
        self.ids = itertools.count()
        self.chars = 0  # characters drawn since the start
        self.thread = threading.Thread(target=self._run, name="charrnn-engine", daemon=True)
        self.thread.start()

    def submit(self, jobs: list[Job], sink: Callable[[Drawn], None]) -> int:
        """Queue ``jobs`` (one request's samples, their keys their indices); returns the request's id."""
        request = next(self.ids)
        with self.cond:
            for job in jobs:
                job.key = (request, job.key)
                self.pending.append((job, sink))
            self.cond.notify()
        return request

    def cancel(self, request: int) -> None:
        """Stop drawing for ``request`` (its client went away, or it is done)."""
        with self.cond:
            self.cancelled.add(request)
            self.pending = [(j, s) for j, s in self.pending if j.key[0] != request]
            self.cond.notify()

    def close(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify()
        self.thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self.cond:
                while not (self.pending or len(self.batch) or self.cancelled or self.stopping):
                    self.cond.wait()
                if self.stopping:
                    return
                adding, self.pending = self.pending, []
                gone, self.cancelled = self.cancelled, set()
            for job, sink in adding:
                try:
                    self.batch.add(job)
                except Exception:  # noqa: BLE001 - the server checked the request; never let one stop the thread
                    sink(Drawn(job.key[1], "", 0.0, [], True))
                    continue
                self.sinks[job.key] = sink
            if gone:
                keys = {k for k in self.sinks if k[0] in gone}
                self.batch.remove(keys)
                for k in keys:
                    del self.sinks[k]
            self._step()

    def _step(self) -> None:
        events = self.batch.step()
        if not events:
            return
        probs = np.stack([e[3] for e in events])  # (K, V)
        wanted = any(e[0].details for e in events)
        top = np.argsort(-probs, axis=1, kind="stable")[:, :5] if wanted else [None] * len(events)
        chars = self.model.vocab
        self.chars += len(events)
        for (job, ch, p, _, done), row_top, row in zip(events, top, probs):
            sink = self.sinks.pop(job.key) if done else self.sinks.get(job.key)
            if sink is not None:
                five = [(chars[j], float(row[j])) for j in row_top] if job.details else []
                sink(Drawn(job.key[1], ch, p, five, done))


class Whole:
    """A request's samples gathered in the engine's thread; the event loop hears once, when all have ended."""

    def __init__(self, samples: int, loop: asyncio.AbstractEventLoop):
        self.texts, self.nats, self.left = [[] for _ in range(samples)], [0.0] * samples, samples
        self.loop, self.finished = loop, loop.create_future()

    def take(self, d: Drawn) -> None:
        """The engine's sink: count ``d`` into its sample."""
        self.texts[d.sample].append(d.char)
        self.nats[d.sample] -= math.log(max(d.p, TINY))  # (nats of each sample, as the model saw it)
        self.left -= d.done
        if not self.left:
            self.loop.call_soon_threadsafe(lambda: self.finished.done() or self.finished.set_result(None))
