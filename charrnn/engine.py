"""One model's requests, batched: a thread that steps every running sample and every text being read at once.

The HTTP server (charrnn.server) submits the samples of each generate
request as jobs, with a function that receives their characters, and the
texts of probs and score requests as reads. The engine's thread adds new
jobs to a charrnn.batch_sampling.Batch and new reads to a
charrnn.reading.Reads between steps, then draws the next character of
every job and reads the next character of every text in one network step,
and hands each character to its request. A request that goes away cancels
its jobs, which leave the batch at the next step. Each job draws from its
own seeded Generator, so a request's text never depends on what else is
running. If a step fails, the requests in flight get the error and the
engine goes on with the next ones.
"""
from __future__ import annotations

import asyncio
import itertools
import math
import sys
import threading
import traceback
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Callable

import numpy as np

from charrnn import network
from charrnn.batch_sampling import Batch, Job
from charrnn.numerics import TINY
from charrnn.reading import Read, Reads

READ_AHEAD = 32  # characters of each text read in one pass while no sample is drawn (a new sample waits that long)


@dataclass
class Drawn:
    """One character of one sample, as the engine hands it over."""

    sample: int  # the sample's index within its request
    char: str
    p: float  # the model's probability of it (temperature 1)
    top: list  # [(char, p)] the model's five likeliest there
    done: bool  # whether the sample ended with it
    failed: str = ""  # why the engine could not go on with it ("" while it runs); it comes with done


class EngineError(RuntimeError):
    """A step of the engine failed: the requests it was drawing or reading get this, and the engine goes on."""


class Engine:
    """The generations of one model (a charrnn.Model), stepped together in one thread."""

    def __init__(self, model):
        self.model = model
        self.batch: Batch = model.new_batch()
        self.reads = Reads(model)
        self.cond = threading.Condition()
        self.pending: list[tuple[Job, Callable]] = []
        self.to_read: list[Read] = []
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

    def read(self, kind: str, text: str) -> Future:
        """For a text that charrnn.reading.fits, read as a row of the engine's steps: a Future of its
        next-character probabilities (n, V) float64 (``kind`` "probs", row i after text[: i + 1]), or of
        what Model.score(text) returns ("score")."""
        done: Future = Future()
        with self.cond:
            self.to_read.append(Read(kind, text, done))
            self.cond.notify()
        return done

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
                while not (self.pending or self.to_read or len(self.batch) or len(self.reads) or self.cancelled
                           or self.stopping):
                    self.cond.wait()
                if self.stopping:
                    return
                adding, self.pending = self.pending, []
                reading, self.to_read = self.to_read, []
                gone, self.cancelled = self.cancelled, set()
            try:
                self._take(adding, reading, gone)
                self._step()
            except Exception as e:  # noqa: BLE001 - one failed step must not stop the model's serving
                self._fail(e)

    def _take(self, adding: list, reading: list[Read], gone: set) -> None:
        """Put new jobs and reads in, and take cancelled requests' jobs out."""
        for read in reading:
            try:
                self.reads.add(read)
            except Exception as e:  # noqa: BLE001 - handed to its request
                read.done.set_exception(e)
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

    def _fail(self, e: Exception) -> None:
        """Give every request in flight the error, log it, and start again with an empty batch and no reads."""
        message = f"the engine failed: {type(e).__name__}: {e}"
        print(f"charrnn serve: {message}; the requests in flight got an error, and serving goes on", file=sys.stderr)
        traceback.print_exc(file=sys.stderr)
        for (_, sample), sink in self.sinks.items():
            sink(Drawn(sample, "", 0.0, [], True, failed=message))
        for read in self.reads.rows:
            if not read.done.done():
                read.done.set_exception(EngineError(message))
        self.sinks = {}
        self.batch, self.reads = self.model.new_batch(), Reads(self.model)

    def _step(self) -> None:
        batch, reads, params, cfg = self.batch, self.reads, self.batch.ck.params, self.batch.ck.model_config
        if not len(batch):  # only texts to read (if any): a chunk of characters in one forward pass
            if len(reads):
                reads.read_chunk(READ_AHEAD)
            return
        drawn = batch.choose()
        going = drawn[1][~drawn[3]]  # (K,) the samples' next inputs
        if len(going) or len(reads):
            ids = np.concatenate([going, reads.inputs()])  # (K + R,)
            top, state = network.step_top(params, cfg, ids, np.concatenate([batch.state, reads.state], axis=1))
            K = len(going)
            batch.advance(network.output(params, top[:K]), state[:, :K])  # (K, V): the samples' next logits
            if len(reads):
                reads.stepped(top[K:], state[:, K:])
        self._hand(*drawn)

    def _hand(self, jobs: list[Job], ids: np.ndarray, model: np.ndarray, done: np.ndarray) -> None:
        """Give each job's drawn character (ids (K,); model (K, V) the model's probabilities) to its request."""
        wanted = any(job.details for job in jobs)
        top = np.argsort(-model, axis=1, kind="stable")[:, :5] if wanted else [None] * len(jobs)  # (K, 5)
        chars = self.model.vocab
        self.chars += len(jobs)
        chosen = model[np.arange(len(jobs)), ids].tolist()  # (K,) the model's probability of each drawn character
        for job, i, p, ended, row_top, row in zip(jobs, ids.tolist(), chosen, done.tolist(), top, model):
            sink = self.sinks.pop(job.key) if ended else self.sinks.get(job.key)
            if sink is not None:
                five = [(chars[j], float(row[j])) for j in row_top] if job.details else []
                sink(Drawn(job.key[1], chars[i], p, five, ended))


class Whole:
    """A request's samples gathered in the engine's thread; the event loop hears once, when all have ended."""

    def __init__(self, samples: int, loop: asyncio.AbstractEventLoop):
        self.texts, self.nats, self.left = [[] for _ in range(samples)], [0.0] * samples, samples
        self.loop, self.finished = loop, loop.create_future()

    def take(self, d: Drawn) -> None:
        """The engine's sink: count ``d`` into its sample."""
        if d.failed:  # the request fails with the engine's error (once, however many samples it has)
            self.left = 0
            self.loop.call_soon_threadsafe(lambda: self.finished.done() or self.finished.set_exception(
                EngineError(d.failed)))
            return
        self.texts[d.sample].append(d.char)
        self.nats[d.sample] -= math.log(max(d.p, TINY))  # (nats of each sample, as the model saw it)
        self.left -= d.done
        if not self.left:
            self.loop.call_soon_threadsafe(lambda: self.finished.done() or self.finished.set_result(None))
