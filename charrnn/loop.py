"""The training loop: batched truncated BPTT with clipping, validation and checkpoints.

:func:`run` takes a prepared run (charrnn.prepare), something that computes
gradients (charrnn.gradients) and a reporter (charrnn.events), and trains
until a limit or a signal stops it, saving as it goes.
"""
from __future__ import annotations

import math
import time
from typing import Callable

import numpy as np

from charrnn import budget, network, optim
from charrnn.alloc import keep_freed_memory
from charrnn.checkpoint import Checkpoint, save
from charrnn.config import patience_limit
from charrnn.data import Streams
from charrnn.errors import CharRNNError, WorkerError
from charrnn.events import Reporter, RunMetrics, RunStart, StepEvent
from charrnn.gradients import Gradients, InProcess
from charrnn.limits import Limits
from charrnn.numerics import LN2
from charrnn.prepare import Run
from charrnn.schedule import final_lr, lr_at
from charrnn.validation import Validation

HISTORY_EVERY = 10  # train-loss history keeps one mean per this many steps


def auto_eval_every(n_val: int, batch: int, seq_len: int, models: int = 1) -> int:
    """Steps between validation passes that keep validation near 5% of training time.

    A forward-only pass costs about a third of a training step per character,
    so scoring ``models`` sets of weights (the weights, and their average) on
    n_val characters every 6*models*n_val/(B*T) steps costs ~1/18.
    """
    return max(100, math.ceil(6 * models * n_val / (batch * seq_len) / 100) * 100)


def train_step(ck: Checkpoint, streams: Streams, lr: float, by: Gradients = InProcess()) -> tuple[float, float, int]:
    """One optimizer step on the next chunk; advances the data position and carried state.

    ``by`` computes the loss and gradients of the whole batch. Returns (loss
    nats/char, gradient norm before clipping, characters trained). If the
    loss or gradient is not finite, nothing changes and 0 characters are
    returned.
    """
    x, y = streams.chunk(ck.pos, ck.epoch)  # (T, B)
    with np.errstate(over="ignore", invalid="ignore"):  # divergence is reported by the caller
        drop = network.Dropout(ck.train_config.dropout, ck.train_config.weight_drop)
        loss, grads, new_state = by.loss_and_grads(ck.params, ck.model_config, x, y, ck.state, drop, ck.rng)
        norm = optim.clip_grads(grads, ck.train_config.clip_mode, ck.train_config.clip)
    if not (math.isfinite(loss) and math.isfinite(norm)):
        return loss, norm, 0
    optim.update(ck.params, grads, ck.opt_state, ck.train_config, lr)
    if ck.average is not None:
        ck.average_steps += 1
        optim.average_into(ck.average, ck.params, ck.average_steps, ck.train_config.average)
    ck.state = new_state
    ck.step += 1
    ck.chars_seen += x.size
    ck.pos += 1
    if ck.pos == streams.steps_per_epoch:  # epoch done: streams wrap to unrelated text, so the state resets
        ck.pos, ck.epoch = 0, ck.epoch + 1
        ck.state[...] = 0
    return loss, norm, x.size


class Progress:
    """One call of :func:`run`: its clock, counters and validation passes, around the checkpoint."""

    def __init__(self, ck: Checkpoint, out: str | None, val_ids: np.ndarray, rep: Reporter, by: Gradients):
        self.ck, self.out, self.rep, self.by = ck, out, rep, by
        self.validation = Validation(ck, val_ids, by, rep)
        self.t0, self.seconds_before = time.monotonic(), ck.seconds
        self.chars, self.steps, self.window = 0, 0, []  # this run's characters, steps, last 100 losses
        self.stop_note = None  # set when validation says the run should stop early
        self.anneal = None  # (step it began after, steps, lr then): the final anneal once patience ran out

    def clock(self) -> float:
        """Seconds of this run."""
        return time.monotonic() - self.t0

    def elapsed(self) -> float:
        """Training seconds over all runs, kept current in the checkpoint."""
        self.ck.seconds = self.seconds_before + self.clock()
        return self.ck.seconds

    def save(self) -> None:
        if self.out is not None:
            save(self.ck, self.out)

    def validate(self) -> float | None:
        """A validation pass (see charrnn.validation); the weights' loss, None if there is nothing to score."""
        train_now = float(np.mean(self.window)) if self.window else float("nan")
        now = self.elapsed()  # the pass counts as at this training second, however long it takes
        val = self.validation.run(now, f"train {train_now:.4f} nats/char, {self.clock():.1f}s")
        if self.anneal is None:
            self.stop_note = self.validation.out_of_patience(now)
        return val

    def refit(self, seconds: float | None, train_chars: int) -> None:
        """Once this run is :data:`budget.REFIT_SHARE` into a --time budget of ``seconds``, fit the regularisation
        the budget chose to the characters it will see at the speed it has reached (charrnn.budget.refit); rank
        0's figures decide under MPI."""
        ck, now = self.ck, self.clock()
        if not ck.train_config.refit or seconds is None:
            return
        due, rate, now = self.by.agree((now >= budget.REFIT_SHARE * seconds, self.chars / now, now))  # all or none
        if not due:
            return
        chars = ck.chars_seen + rate * max(0.0, seconds - now)
        fields = list(ck.train_config.refit)
        changed = budget.refit(ck.train_config, chars, network.num_params(ck.params), train_chars,
                               ck.model_config.cell)
        now_set = ", ".join(f"{k.replace('_', '-')} {getattr(ck.train_config, k):g}" for k in fields)
        before = ", ".join(f"{k.replace('_', '-')} {a:g}" for k, (a, _) in changed.items())
        self.rep.note(f"note: {now:.0f}s in, this run trains at ~{rate:,.0f} chars/s: ~{chars / 1e6:.1f}M characters "
                      f"in its --time, ~{chars / train_chars:.1f} passes, so {now_set} from here "
                      f"({f'in place of {before}' if changed else 'as its budget chose'})")

    def begin_anneal(self, lr: float, now: float, limits: Limits, eval_every: int) -> bool:
        """Patience ran out at this run's second ``now`` (agreed by all ranks): plan the final anneal, from ``lr``
        down over --patience-anneal of the patience (in steps, at this run's pace), ending before any limit.
        False if there is none to make, and the run stops now."""
        ck = self.ck
        share, (passes, seconds) = ck.train_config.patience_anneal, patience_limit(ck.train_config.patience)
        if self.anneal is not None or share <= 0 or now <= 0:
            return False
        pace = self.steps / now  # steps per second of this run
        span = share * (passes * eval_every if passes is not None else seconds * pace)
        if limits.seconds is not None:
            span = min(span, (limits.seconds - now) * pace)
        if limits.steps is not None:
            span = min(span, limits.steps - ck.step)
        if int(span) < 1:
            return False
        self.anneal = (ck.step, int(span), lr)
        self.rep.note(f"validation has not improved since step {ck.best_step} (--patience {ck.train_config.patience}): "
                      f"annealing the learning rate over {int(span)} more steps (--patience-anneal {share:g}), "
                      f"then stopping")
        return True

    def out_of_patience(self) -> bool:
        """Whether patience has run out, or, once it has, the final anneal is over."""
        if self.anneal is None:
            return self.stop_note is not None
        start, span, _ = self.anneal
        return self.ck.step >= start + span

    def lr(self, tcfg, now: float) -> float:
        """The learning rate of the next step, ``now`` seconds into this run."""
        if self.anneal is None:
            return lr_at(self.ck.step + 1, tcfg, now)
        start, span, lr_from = self.anneal
        return final_lr(lr_from, tcfg.lr * tcfg.min_lr_frac, self.ck.step + 1 - start, span)

    def finish(self, stopped: str | None, eval_every: int) -> None:
        """Score the last weights if the last step did not, say why a run out of patience stopped, and save."""
        if self.steps == 0 or self.ck.step % eval_every != 0:
            self.validate()
        if stopped == "patience":
            ck = self.ck
            self.rep.note(self.stop_note if self.anneal is None else
                          f"stopping early after the final anneal: the best, {ck.best_val:.4f} nats/char, "
                          f"was at step {ck.best_step}")
        self.elapsed()
        self.save()

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
        ck, seconds, val = self.ck, self.clock(), self.validation
        train_nats = float(np.mean(self.window)) if self.window else None
        return RunMetrics(
            steps=ck.step, run_steps=self.steps, chars_seen=ck.chars_seen, seconds=round(seconds, 3),
            chars_per_sec=round(self.chars / seconds, 1) if seconds > 0 else 0.0,
            val_seconds=round(val.seconds, 3), eval_every=eval_every,
            train_nats=train_nats, train_bits=None if train_nats is None else train_nats / LN2,
            val_nats=val.last, val_bits=None if val.last is None else val.last / LN2,
            average_val_nats=val.last_average, best_val_nats=ck.best_val, best_step=ck.best_step,
            **dict(zip(("served", "served_step", "served_temp"), ck.served_as)), batch=B, seq_len=T,
            stopped_by=stopped, lr=lr, checkpoint=self.out, workers=self.by.size)


def _stop_reason(ck: Checkpoint, limits: Limits, spe: int, now: float, should_stop, progress) -> str | None:
    if progress.out_of_patience():
        return "patience"
    if limits.steps is not None and ck.step >= limits.steps:
        return "steps"
    if limits.epochs is not None and ck.epoch + ck.pos / spe >= limits.epochs:
        return "epochs"
    if limits.seconds is not None and now >= limits.seconds:
        return "time"
    return should_stop()


def run(prepared: Run, by: Gradients, reporter: Reporter | None = None,
        should_stop: Callable[[], str | None] = lambda: None) -> RunMetrics:
    """Train ``prepared.ck`` in place on ``prepared.streams``, saving to ``prepared.out`` (None: never save).

    ``by`` computes each batch's gradients and the loss on ``prepared.val_ids``;
    the result does not depend on which one it is beyond float rounding.
    Stops at the first of
    ``prepared.limits`` or when ``should_stop()`` returns a reason (e.g. "SIGINT");
    under MPI rank 0 decides. In every case the run is saved before
    returning. A non-finite loss or gradient saves the last good state and
    raises CharRNNError.
    """
    rep, ck, limits, out = reporter or Reporter(), prepared.ck, prepared.limits, prepared.out
    keep_freed_memory()
    tcfg = ck.train_config
    streams, val_ids = prepared.streams, prepared.val_ids
    spe = streams.steps_per_epoch
    eval_every = tcfg.eval_every or auto_eval_every(len(val_ids), streams.batch, streams.seq_len,
                                                    2 if ck.average is not None else 1)
    total = limits.steps
    if limits.epochs is not None:
        by_epochs = math.ceil(limits.epochs * spe)
        total = by_epochs if total is None else min(total, by_epochs)
    mcfg = ck.model_config
    rep.start(RunStart(cell=mcfg.cell, hidden=mcfg.hidden, layers=mcfg.layers, vocab_size=ck.vocab.size,
                       params=network.num_params(ck.params), text_chars=prepared.text_chars, step=ck.step,
                       total=total, resumed=prepared.resumed))
    progress = Progress(ck, out, val_ids, rep, by)
    lr, stopped = lr_at(ck.step + 1, tcfg, 0.0), None
    try:
        while True:
            now = progress.clock()
            stopped, now = by.agree((_stop_reason(ck, limits, spe, now, should_stop, progress), now))
            if stopped == "patience" and progress.begin_anneal(lr, now, limits, eval_every):
                stopped = None
            if stopped:
                break
            lr = progress.lr(tcfg, now)
            try:
                loss, norm, n_chars = train_step(ck, streams, lr, by)
            except WorkerError as exc:
                raise WorkerError(f"{exc}; {_keep_last_good(ck, out)}") from None
            if not n_chars:
                raise _diverged(ck, out, loss, norm, lr)
            event = progress.record(loss, norm, n_chars, lr)
            if ck.step % eval_every == 0:
                event.val_nats = progress.validate()
                progress.refit(limits.seconds, streams.chars)
                if not tcfg.save_every:
                    progress.save()
            if tcfg.save_every and ck.step % tcfg.save_every == 0:
                progress.save()
            rep.step(ck, event)
        progress.finish(stopped, eval_every)
    finally:
        rep.close()
    return progress.metrics(eval_every, streams.batch, streams.seq_len, stopped, lr)


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
