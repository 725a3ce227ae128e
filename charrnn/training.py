"""The training loop: batched truncated BPTT with clipping, validation and checkpoints."""
from __future__ import annotations

import math
import time
from typing import Callable

import numpy as np

from charrnn import model, optim
from charrnn.alloc import keep_freed_memory
from charrnn.checkpoint import Checkpoint, save
from charrnn.config import ModelConfig, TrainConfig
from charrnn.data import Streams, fit_shape, split
from charrnn.errors import CharRNNError
from charrnn.events import RunMetrics, StepEvent
from charrnn.limits import Limits
from charrnn.schedule import lr_at
from charrnn.numerics import LN2, nats_and_bits
from charrnn.score import total_nll
from charrnn.vocab import Vocab
from charrnn.workers import WorkerError, WorkerPool, open_pool

HISTORY_EVERY = 10  # train-loss history keeps one mean per this many steps


class Reporter:
    """Where training says what it is doing; this one says nothing.

    ``step`` gets the checkpoint (read it, don't change it) and the step's
    :class:`StepEvent`; ``val_nats`` is set on steps that validated.
    """

    def start(self, total: int | None, done: int) -> None: ...
    def step(self, ck: Checkpoint, event: "StepEvent") -> None: ...
    def note(self, message: str) -> None: ...
    def close(self) -> None: ...


def new_checkpoint(vocab: Vocab, mcfg: ModelConfig, tcfg: TrainConfig) -> Checkpoint:
    """A fresh, untrained run: parameters drawn from a Generator seeded by tcfg.seed."""
    mcfg.check()
    tcfg.check()
    rng = np.random.default_rng(tcfg.seed)
    params = model.init_params(mcfg, rng)
    return Checkpoint(
        model_config=mcfg, train_config=tcfg, vocab=vocab, params=params,
        opt_state=optim.init_state(params, tcfg.optimizer),
        state=model.zero_state(mcfg, 1), rng=rng,
    )


def best_path(out: str) -> str:
    """Where the best-validation checkpoint goes: model.npz -> model.best.npz."""
    return out[:-4] + ".best.npz" if out.endswith(".npz") else out + ".best.npz"


def auto_eval_every(n_val: int, batch: int, seq_len: int) -> int:
    """Steps between validation passes that keep validation near 5% of training time.

    A forward-only pass costs about a third of a training step per character,
    so validating n_val characters every 6*n_val/(B*T) steps costs ~1/18.
    """
    return max(100, math.ceil(6 * n_val / (batch * seq_len) / 100) * 100)


def train_step(ck: Checkpoint, streams: Streams, lr: float, grad_fn=model.loss_and_grads) -> tuple[float, float, int]:
    """One optimizer step on the next chunk; advances the data position and carried state.

    ``grad_fn`` computes the loss and gradients of the whole batch, with the
    signature of :func:`charrnn.model.loss_and_grads` (a WorkerPool's method
    shares the batch between processes). Returns (loss nats/char, gradient
    norm before clipping, characters trained). If the loss or gradient is
    not finite, nothing changes and 0 characters are returned.
    """
    x, y = streams.chunk(ck.pos)  # (T, B)
    with np.errstate(over="ignore", invalid="ignore"):  # divergence is reported by the caller
        loss, grads, new_state = grad_fn(
            ck.params, ck.model_config, x, y, ck.state, ck.train_config.dropout, ck.rng
        )
        norm = optim.clip_grads(grads, ck.train_config.clip_mode, ck.train_config.clip)
    if not (math.isfinite(loss) and math.isfinite(norm)):
        return loss, norm, 0
    optim.update(ck.params, grads, ck.opt_state, ck.train_config, lr)
    ck.state = new_state
    ck.step += 1
    ck.chars_seen += x.size
    ck.pos += 1
    if ck.pos == streams.steps_per_epoch:  # epoch done: streams wrap to unrelated text, so the state resets
        ck.pos, ck.epoch = 0, ck.epoch + 1
        ck.state[...] = 0
    return loss, norm, x.size


class _Run:
    """One call of :func:`train`: its clock, counters and validation, around the checkpoint."""

    def __init__(self, ck: Checkpoint, out: str | None, val_ids: np.ndarray, rep: Reporter, gang=None):
        """``gang``: the WorkerPool or MpiTeam sharing the batch, if any."""
        self.ck, self.out, self.val_ids, self.rep = ck, out, val_ids, rep
        self.nll, self.workers = (gang.total_nll, gang.size) if gang else (total_nll, 1)
        self.align = getattr(gang, "align", None)  # MPI: rank 0's weights everywhere at each validation
        self.t0, self.seconds_before = time.monotonic(), ck.seconds
        self.chars, self.steps, self.window = 0, 0, []  # this run's characters, steps, last 100 losses
        self.last_val, self.val_seconds = None, 0.0

    def clock(self) -> float:
        """Seconds of this run."""
        return time.monotonic() - self.t0

    def elapsed(self) -> float:
        """Training seconds over all runs, kept current in the checkpoint."""
        self.ck.seconds = self.seconds_before + self.clock()
        return self.ck.seconds

    def save(self, path: str | None = None) -> None:
        if self.out is not None:
            save(self.ck, path or self.out)

    def validate(self) -> float | None:
        """Score the validation ids, note the result, keep the best model; None if there are none."""
        ck = self.ck
        if self.align is not None:
            self.align(ck.params, ck.opt_state)
        if len(self.val_ids) < 2:
            return None
        v0 = time.monotonic()
        total, count = self.nll(ck.params, ck.model_config, self.val_ids, batch=64)
        self.last_val = total / count
        self.val_seconds += time.monotonic() - v0
        ck.history["val"].append([ck.step, self.last_val, self.elapsed()])
        train_now = float(np.mean(self.window)) if self.window else float("nan")
        self.rep.note(f"step {ck.step}: val {nats_and_bits(self.last_val)}, "
                      f"train {train_now:.4f} nats/char, {self.clock():.1f}s")
        if ck.best_val is None or self.last_val < ck.best_val:
            ck.best_val, ck.best_step = self.last_val, ck.step
            if self.out is not None:
                self.save(best_path(self.out))
        return self.last_val

    def record(self, loss: float, norm: float, n_chars: int, lr: float) -> StepEvent:
        """Count a finished step; returns its event (without validation)."""
        ck = self.ck
        self.chars += n_chars
        self.steps += 1
        self.window = self.window[-99:] + [loss]
        if ck.step % HISTORY_EVERY == 0:
            ck.history["train"].append([ck.step, float(np.mean(self.window[-HISTORY_EVERY:])), self.elapsed()])
        return StepEvent(step=ck.step, seconds=round(self.elapsed(), 3), chars_seen=ck.chars_seen, lr=lr,
                         train_nats=loss, val_nats=None, grad_norm=norm,
                         chars_per_sec=round(self.chars / max(self.clock(), 1e-9), 1))

    def metrics(self, eval_every: int, B: int, T: int, stopped: str | None, lr: float) -> RunMetrics:
        ck, seconds = self.ck, self.clock()
        train_nats = float(np.mean(self.window)) if self.window else None
        return RunMetrics(
            steps=ck.step, run_steps=self.steps, chars_seen=ck.chars_seen, seconds=round(seconds, 3),
            chars_per_sec=round(self.chars / seconds, 1) if seconds > 0 else 0.0,
            val_seconds=round(self.val_seconds, 3), eval_every=eval_every,
            train_nats=train_nats, train_bits=None if train_nats is None else train_nats / LN2,
            val_nats=self.last_val, val_bits=None if self.last_val is None else self.last_val / LN2,
            best_val_nats=ck.best_val, best_step=ck.best_step, batch=B, seq_len=T,
            stopped_by=stopped, lr=lr, checkpoint=self.out, workers=self.workers)


def _streams_for(ck: Checkpoint, train_ids: np.ndarray, rep: Reporter) -> Streams:
    """The batched streams over the training ids; restarts the epoch if the shape changed."""
    tcfg = ck.train_config
    B, T = fit_shape(len(train_ids), tcfg.batch, tcfg.seq_len)
    if (B, T) != (tcfg.batch, tcfg.seq_len):
        rep.note(f"note: the training text is short ({len(train_ids)} chars): using --batch {B} --seq-len {T}")
    streams = Streams.of(train_ids, B, T)
    if ck.state.shape[1] != B or ck.pos >= streams.steps_per_epoch:
        if ck.step > 0:
            rep.note("note: the batch shape or corpus changed since the checkpoint; restarting the epoch")
        ck.state = model.zero_state(ck.model_config, B)
        ck.pos = 0
    return streams


def _streams_and_val(ck: Checkpoint, ids: np.ndarray, val_ids: np.ndarray | None, rep: Reporter):
    """(training streams, validation ids): ``val_ids`` if given, else held out of ``ids`` as the config says."""
    tcfg = ck.train_config
    if val_ids is None:
        ids, val_ids = split(ids, tcfg.val_frac, tcfg.val_from, ck.model_config.reset_id)
    if tcfg.val_frac > 0 and len(val_ids) == 0:
        rep.note("note: the text is too short to hold out a validation split; validating on nothing")
    return _streams_for(ck, ids, rep), val_ids


def _stop_reason(ck: Checkpoint, limits: Limits, spe: int, now: float, should_stop) -> str | None:
    if limits.steps is not None and ck.step >= limits.steps:
        return "steps"
    if limits.epochs is not None and ck.epoch + ck.pos / spe >= limits.epochs:
        return "epochs"
    if limits.seconds is not None and now >= limits.seconds:
        return "time"
    return should_stop()


def train(
    ck: Checkpoint,
    ids: np.ndarray,
    out: str | None,
    limits: Limits,
    reporter: Reporter | None = None,
    should_stop: Callable[[], str | None] = lambda: None,
    val_ids: np.ndarray | None = None,
    workers: int | None = None,
    team=None,
) -> RunMetrics:
    """Train ``ck`` in place on the id array ``ids`` (n,), saving to ``out`` (None: never save).

    ``workers`` processes share each batch (None: charrnn.workers.default_workers;
    1: this process alone); the result does not depend on it beyond float rounding.
    ``team`` (a charrnn.mpi.MpiTeam) shares it between MPI ranks instead; rank 0 decides when to stop.

    Validation scores ``val_ids`` if given (all of ``ids`` is then trained
    on); otherwise ``ck.train_config.val_frac`` of ids is held out, as
    ``val_from`` says (see :func:`charrnn.data.split`). Stops at the first of ``limits`` or when
    ``should_stop()`` returns a reason (e.g. "SIGINT"); in every case the run
    is saved before returning. A non-finite loss or gradient saves the last
    good state and raises CharRNNError.
    """
    rep = reporter or Reporter()
    keep_freed_memory()
    tcfg = ck.train_config
    streams, val_ids = _streams_and_val(ck, ids, val_ids, rep)
    spe = streams.steps_per_epoch
    eval_every = tcfg.eval_every or auto_eval_every(len(val_ids), streams.batch, streams.seq_len)
    total = limits.steps
    if limits.epochs is not None:
        by_epochs = math.ceil(limits.epochs * spe)
        total = by_epochs if total is None else min(total, by_epochs)
    pool = open_pool(workers, ck.model_config, streams.batch) if team is None else None
    gang = team or pool  # whoever shares the batch, if anyone
    rep.start(total, ck.step)
    run = _Run(ck, out, val_ids, rep, gang)
    grad_fn, lr, stopped = gang.loss_and_grads if gang else model.loss_and_grads, lr_at(ck.step + 1, tcfg, 0.0), None
    try:
        while True:
            now = run.clock()
            stopped = _stop_reason(ck, limits, spe, now, should_stop)
            if team is not None:
                stopped, now = team.share((stopped, now))  # rank 0 decides for every rank
            if stopped:
                break
            lr = lr_at(ck.step + 1, tcfg, now)
            try:
                loss, norm, n_chars = train_step(ck, streams, lr, grad_fn)
            except WorkerError as exc:
                raise WorkerError(f"{exc}; {_keep_last_good(ck, out)}") from None
            if not n_chars:
                raise _diverged(ck, out, loss, norm, lr)
            event = run.record(loss, norm, n_chars, lr)
            if ck.step % eval_every == 0:
                event.val_nats = run.validate()
                if not tcfg.save_every:
                    run.save()
            if tcfg.save_every and ck.step % tcfg.save_every == 0:
                run.save()
            rep.step(ck, event)
        if run.steps == 0 or ck.step % eval_every != 0:
            run.validate()
        run.elapsed()
        run.save()
    finally:
        if pool is not None:
            pool.close()
        rep.close()
    return run.metrics(eval_every, streams.batch, streams.seq_len, stopped, lr)


def _keep_last_good(ck: Checkpoint, out: str | None) -> str:
    """Save the state if it is still finite (the failed step changed nothing); says what was kept."""
    if out is None:
        return "nothing was saved (no checkpoint path)"
    if all(np.isfinite(p).all() for p in ck.params.values()):
        save(ck, out)
        return f"saved the last good state (step {ck.step}) to {out}"
    return f"the last good checkpoint on disk is left as it was ({out})"


def _diverged(ck: Checkpoint, out: str | None, loss: float, norm: float, lr: float) -> CharRNNError:
    """Save what can be saved, and say what happened and what to try."""
    what = f"loss is {loss}" if not math.isfinite(loss) else f"gradient norm is {norm}"
    return CharRNNError(f"training diverged at step {ck.step + 1} ({what}); {_keep_last_good(ck, out)}; "
                        f"try a lower --lr (now {lr:g}) or --clip 5")
