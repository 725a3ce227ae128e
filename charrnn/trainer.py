"""``charrnn.train()``: the one way a model is trained, from Python and from ``charrnn train``.

    options  ->  prepare.prepare_run  ->  loop.run  ->  TrainResult

The gradients are computed by this process, a pool of worker processes, or
an MPI team (charrnn.gradients); the reporter hears what happens (the CLI
passes one that draws a progress bar).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from statistics import median
from typing import Callable, Sequence

from charrnn import budget, loop, mpi
from charrnn.errors import UsageError
from charrnn.config import ModelConfig
from charrnn.events import Reporter, RunMetrics, StepEvent
from charrnn.gradients import Gradients, InProcess
from charrnn.checkpoint import Checkpoint
from charrnn.limits import Limits, stop_on_signals
from charrnn.model import Model
from charrnn.options import DEFAULT_STEPS, options_from
from charrnn.prepare import Run, prepare_run, streams_and_val
from charrnn.workers import environment_workers, open_pool


@dataclass
class TrainResult(RunMetrics):
    """The figures of a finished run (see RunMetrics) and the trained model."""

    model: Model | None = field(default=None, repr=False, compare=False)


class _Callbacks(Reporter):
    """A reporter made of the on_step, on_validation and on_note functions."""

    def __init__(self, on_step, on_validation, on_note):
        self.on_step, self.on_validation, self.on_note = on_step, on_validation, on_note

    def step(self, ck, event):
        if self.on_step:
            self.on_step(event)
        if self.on_validation and event.val_nats is not None:
            self.on_validation(event)

    def note(self, message):
        if self.on_note:
            self.on_note(message)


# Where a budget times a size both ways, each way is timed this many times, in turn, and keeps its median. One
# timing each once chose one process for a GRU-512 at 17,885 chars/s against 15,176 on two workers, where 300
# steps of each trained at 12,243-13,325 and 15,019-15,431 (the EPYC, 2026-12-06; docs/scaling.md).
WAY_ROUNDS = 3


class _Calibration:
    """Times candidate models for the budget rule with the run's own gradient computer, and keeps the last one
    it opened, so that training goes on with it when the budget chose that model.

    Where the run may choose (neither --workers nor $CHARRNN_WORKERS, no MPI, and cores for a pool), each
    candidate is timed both ways: on the pool, and in this process with its BLAS threads. The model trains
    the faster way. A pool splits the streams, so every worker reads all of the recurrent weights at every
    step; threads split the weights. Which is faster depends on the model and the machine (docs/scaling.md: on
    one, two workers train a GRU-1024 at 0.71 of one process's speed; on another they give a GRU-384 1.17x)."""

    def __init__(self, workers: int | None, team=None):
        self.workers, self.team, self.kept = workers, team, None  # kept: (key, Gradients)
        self.chosen: dict = {}  # (Size, batch) -> (workers, {workers: chars/s}) of each size timed both ways

    def workers_for(self, cfg: ModelConfig, batch: int) -> int | None:
        """The processes to share a batch of ``cfg``'s model: the faster way if it was timed both ways."""
        return self.chosen.get((budget.Size.of(cfg), batch), (self.workers,))[0]

    def gradients(self, cfg: ModelConfig, batch: int) -> Gradients:
        """The Gradients for a model of ``cfg`` and ``batch`` streams: the kept one if it fits, else a new one
        (the faster way, if this model was timed both ways)."""
        key = (repr(cfg), batch)
        workers = self.workers_for(cfg, batch)
        if self.kept is not None and self.kept[0] == key and workers in (None, self.kept[1].size):
            return self.kept[1]
        self.close()
        by = self.team or open_pool(workers, cfg, batch) or InProcess()
        self.kept = (key, by)
        return by

    def may_choose(self) -> bool:
        """Whether nothing fixes the processes that share a batch."""
        return self.team is None and self.workers is None and environment_workers() is None

    def rate(self, vocab_size: int, size: budget.Size, batch: int, seq_len: int,
             dropout: tuple[float, float] = (0.0, 0.0)) -> float:
        """Characters per second of a model of ``size`` with ``dropout`` (of its outputs, of its recurrent
        weights), measured as it would train: on its faster way, once that is known."""
        cfg = size.config(vocab_size)
        if self.team is not None:  # rank 0 measures alone, one BLAS thread, on its share of the streams
            share = max(1, batch // self.team.size)
            return budget.measure_rate(InProcess(), vocab_size, size, share, seq_len, dropout=dropout) * batch / share
        by = self.gradients(cfg, batch)

        def measure(way: Gradients) -> float:
            return budget.measure_rate(way, vocab_size, size, batch, seq_len, dropout=dropout)
        rate = measure(by)
        if by.size == 1 or not self.may_choose() or (size, batch) in self.chosen:
            return rate
        timings = {by.size: [rate], 1: [measure(InProcess())]}
        for _ in range(WAY_ROUNDS - 1):  # the two ways in turn, so that a moment's load does not pick the way
            timings[by.size].append(measure(by))
            timings[1].append(measure(InProcess()))
        rates = {n: median(t) for n, t in timings.items()}
        self.chosen[size, batch] = (max(rates, key=rates.get), rates)
        return max(rates.values())

    def close(self) -> None:
        if self.kept is not None and self.kept[1] is not self.team:
            self.kept[1].close()
        self.kept = None


def _way_note(cfg: ModelConfig, rates: dict) -> str:
    n = max(rates)
    return (f"note: {budget.Size.of(cfg)} trains faster here in one process with its BLAS threads than on "
            f"{n} workers (~{rates[1]:,.0f} against ~{rates[n]:,.0f} chars/s); it trains that way "
            f"(pass --workers to choose)")


def _prepared_and_gradients(paths: list[str], out: str | None, opts, note) -> tuple[Run, Gradients]:
    """The prepared run and what computes its gradients: an MPI team if a launcher started us, else a
    worker pool or this process."""
    team = mpi.join()
    if team is not None and opts.workers not in (None, 1):
        raise UsageError("under MPI each rank is one worker: drop --workers, start one rank per core (mpiexec -n N)")
    calibration = _Calibration(opts.workers, team)
    try:
        if team is not None:
            return team.broadcast_run(lambda: prepare_run(paths, out, opts, note, calibration.rate)), team
        prepared = prepare_run(paths, out, opts, note, calibration.rate)
        cfg, tcfg, batch = prepared.ck.model_config, prepared.ck.train_config, prepared.streams.batch
        timed = calibration.chosen.get((budget.Size.of(cfg), batch))
        if timed is not None:  # a budget timed this model both ways
            workers, rates = timed
            tcfg.one_process = workers == 1
            if tcfg.one_process:
                note(_way_note(cfg, rates))
        elif tcfg.one_process and calibration.may_choose():  # a resumed run goes on the way its budget chose
            calibration.workers = 1
        return prepared, calibration.gradients(cfg, batch)
    except BaseException:
        calibration.close()
        raise


def train(corpus: str | os.PathLike | Sequence[str | os.PathLike], out: str | os.PathLike | None = None, *,
          on_step: Callable[[StepEvent], None] | None = None,
          on_validation: Callable[[StepEvent], None] | None = None,
          on_note: Callable[[str], None] | None = None,
          reporter: Reporter | None = None, **options) -> TrainResult:
    """Train a character model on text files, as ``charrnn train`` does, and return it with its figures.

    ``corpus`` is a path or a list of paths ("-" is stdin). ``out`` is the
    checkpoint to write; None trains in memory and writes nothing.
    ``options`` are the CLI's flags with underscores (``steps=200``,
    ``hidden=128``, ``time="30s"``, ``val_frac=0.05``, ``resume=True`` ...;
    see TrainOptions), with the same defaults. ``on_step`` gets every
    step's StepEvent, ``on_validation`` the events of steps that validated,
    ``on_note`` the notes the CLI prints to stderr; or pass a whole
    ``reporter`` (charrnn.events.Reporter) instead. Ctrl-C (in the main
    thread) stops after the current step, saves, and returns with
    ``stopped_by == "SIGINT"``.
    """
    paths = [os.fspath(corpus)] if isinstance(corpus, (str, os.PathLike)) else [os.fspath(c) for c in corpus]
    out = None if out is None else os.fspath(out)
    if reporter is None:
        reporter = _Callbacks(on_step, on_validation, on_note)
    prepared, by = _prepared_and_gradients(paths, out, options_from(options), reporter.note)
    with by:
        if not by.is_root:  # under MPI only rank 0 reports and saves
            reporter, prepared.out = Reporter(), None
        with stop_on_signals() as should_stop:
            metrics = loop.run(prepared, by, reporter, should_stop)
    return TrainResult(**metrics.to_dict(), model=Model(prepared.ck, out))


def train_checkpoint(ck: Checkpoint, ids, out: str | None = None, limits: Limits | None = None,
                     reporter: Reporter | None = None, should_stop: Callable[[], str | None] = lambda: None,
                     val_ids=None, workers: int | None = None) -> RunMetrics:
    """Go on training the checkpoint ``ck`` in place on the id array ``ids`` (n,); the loop of :func:`train`.

    For a checkpoint built in Python (charrnn.checkpoint.new_checkpoint or
    load): the text is split and validated as ``ck.train_config`` says, or
    validated on ``val_ids`` (m,); ``workers`` processes share each batch
    (None: the default). Saves to ``out`` unless it is None; stops at
    ``limits`` (default: 2000 more steps) or when ``should_stop()`` gives a reason.
    """
    reporter = reporter or Reporter()
    streams, val_ids = streams_and_val(ck, ids, val_ids, reporter.note)
    limits = limits or Limits(steps=ck.step + DEFAULT_STEPS)
    prepared = Run(ck, streams, val_ids, limits, len(ids), out=out)
    with open_pool(workers, ck.model_config, streams.batch) or InProcess() as by:
        return loop.run(prepared, by, reporter, should_stop)
