"""The training loop: batched truncated BPTT with clipping, validation and checkpoints."""
from __future__ import annotations

import math
import re
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

import numpy as np

from charrnn import model, optim
from charrnn.alloc import keep_freed_memory
from charrnn.checkpoint import Checkpoint, save
from charrnn.config import ModelConfig, TrainConfig
from charrnn.data import Streams, fit_shape, split
from charrnn.errors import CharRNNError, UsageError
from charrnn.schedule import lr_at
from charrnn.score import LN2, nats_per_char
from charrnn.vocab import Vocab

HISTORY_EVERY = 10  # train-loss history keeps one mean per this many steps


@dataclass
class Limits:
    """When to stop: the first limit reached ends training."""

    steps: int | None = None  # total optimizer steps of the model, counting earlier runs
    epochs: float | None = None  # total passes over the training text, counting earlier runs
    seconds: float | None = None  # wall-clock seconds of this run


class Reporter:
    """Where training says what it is doing; this one says nothing.

    ``step`` gets the checkpoint (read it, don't change it) and an event with
    step, seconds, chars_seen, lr, train_nats, grad_norm (before clipping),
    chars_per_sec and, on steps that validated, val_nats.
    """

    def start(self, total: int | None, done: int) -> None: ...
    def step(self, ck: Checkpoint, event: dict) -> None: ...
    def note(self, message: str) -> None: ...
    def close(self) -> None: ...


def parse_duration(text: str) -> float:
    """Seconds in ``90``, ``90s``, ``5m``, ``1h`` or ``1h30m``; raises CharRNNError otherwise."""
    t = text.strip().lower()
    parts = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?", t)
    if not t or not parts or not any(parts.groups()):
        raise UsageError(f"cannot read --time {text!r}; use seconds or a unit, e.g. 90, 90s, 5m, 1h")
    h, m, s = (float(g) if g else 0.0 for g in parts.groups())
    seconds = h * 3600 + m * 60 + s
    if seconds <= 0:
        raise UsageError(f"--time must be positive, not {text!r}")
    return seconds


def new_checkpoint(vocab: Vocab, mcfg: ModelConfig, tcfg: TrainConfig) -> Checkpoint:
    """A fresh, untrained run: parameters drawn from a Generator seeded by tcfg.seed."""
    mcfg.check()
    tcfg.check()
    rng = np.random.default_rng(tcfg.seed)
    params = model.init_params(mcfg, rng)
    return Checkpoint(
        model=mcfg, train=tcfg, vocab=vocab, params=params,
        opt_state=optim.init_state(params, tcfg.optimizer),
        state=np.zeros(model.state_shape(mcfg, 1), dtype=mcfg.dtype), rng=rng,
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


def train_step(ck: Checkpoint, streams: Streams, lr: float) -> tuple[float, float, int]:
    """One optimizer step on the next chunk; advances the data position and carried state.

    Returns (loss nats/char, gradient norm before clipping, characters
    trained). If the loss or gradient is not finite, nothing changes and 0
    characters are returned.
    """
    x, y = streams.chunk(ck.pos)  # (T, B)
    with np.errstate(over="ignore", invalid="ignore"):  # divergence is reported by the caller
        loss, grads, new_state = model.loss_and_grads(
            ck.params, ck.model, x, y, ck.state, ck.train.dropout, ck.rng
        )
        norm = optim.clip_grads(grads, ck.train.clip_mode, ck.train.clip)
    if not (math.isfinite(loss) and math.isfinite(norm)):
        return loss, norm, 0
    optim.update(ck.params, grads, ck.opt_state, ck.train, lr)
    ck.state = new_state
    ck.step += 1
    ck.chars_seen += x.size
    ck.pos += 1
    if ck.pos == streams.steps_per_epoch:  # epoch done: streams wrap to unrelated text, so the state resets
        ck.pos, ck.epoch = 0, ck.epoch + 1
        ck.state[...] = 0
    return loss, norm, x.size


def train(
    ck: Checkpoint,
    ids: np.ndarray,
    out: str,
    limits: Limits,
    reporter: Reporter | None = None,
    should_stop: Callable[[], str | None] = lambda: None,
) -> dict:
    """Train ``ck`` in place on the id array ``ids`` (n,), saving to ``out``.

    The last ``val_frac`` of ids is validation. Stops at the first of
    ``limits`` or when ``should_stop()`` returns a reason (e.g. "SIGINT"); in
    every case the run is saved before returning. Returns the final metrics
    (losses in nats/char and bits/char). A non-finite loss or gradient saves
    the last good state and raises CharRNNError.
    """
    rep = reporter or Reporter()
    keep_freed_memory()
    mcfg, tcfg = ck.model, ck.train
    train_ids, val_ids = split(ids, tcfg.val_frac)
    B, T = fit_shape(len(train_ids), tcfg.batch, tcfg.seq_len)
    if (B, T) != (tcfg.batch, tcfg.seq_len):
        rep.note(f"note: the training text is short ({len(train_ids)} chars): using --batch {B} --seq-len {T}")
    if tcfg.val_frac > 0 and len(val_ids) == 0:
        rep.note("note: the text is too short to hold out a validation split; validating on nothing")
    streams = Streams.of(train_ids, B, T)
    spe = streams.steps_per_epoch
    if ck.state.shape[1] != B or ck.pos >= spe:
        if ck.step > 0:
            rep.note("note: the batch shape or corpus changed since the checkpoint; restarting the epoch")
        ck.state = np.zeros(model.state_shape(mcfg, B), dtype=mcfg.dtype)
        ck.pos = 0
    eval_every = tcfg.eval_every or auto_eval_every(len(val_ids), B, T)
    lr = lr_at(ck.step + 1, tcfg, 0.0)

    total = limits.steps
    if limits.epochs is not None:
        by_epochs = math.ceil(limits.epochs * spe)
        total = by_epochs if total is None else min(total, by_epochs)
    rep.start(total, ck.step)

    t0 = time.monotonic()
    seconds_before = ck.seconds

    def elapsed() -> float:
        """Training seconds over all runs, kept current in the checkpoint."""
        ck.seconds = seconds_before + time.monotonic() - t0
        return ck.seconds

    run_chars, run_steps, window = 0, 0, []
    last_val, stopped, val_seconds = None, None, 0.0

    def validate() -> float | None:
        nonlocal last_val, val_seconds
        if len(val_ids) < 2:
            return None
        v0 = time.monotonic()
        last_val = nats_per_char(ck.params, mcfg, val_ids, batch=64)
        val_seconds += time.monotonic() - v0
        ck.history["val"].append([ck.step, last_val, elapsed()])
        train_now = float(np.mean(window)) if window else float("nan")
        rep.note(
            f"step {ck.step}: val {last_val:.4f} nats/char ({last_val / LN2:.4f} bits/char), "
            f"train {train_now:.4f} nats/char, {time.monotonic() - t0:.1f}s"
        )
        if ck.best_val is None or last_val < ck.best_val:
            ck.best_val, ck.best_step = last_val, ck.step
            save(ck, best_path(out))
        return last_val

    try:
        while True:
            if limits.steps is not None and ck.step >= limits.steps:
                stopped = "steps"
            elif limits.epochs is not None and ck.epoch + ck.pos / spe >= limits.epochs:
                stopped = "epochs"
            elif limits.seconds is not None and time.monotonic() - t0 >= limits.seconds:
                stopped = "time"
            else:
                stopped = should_stop()
            if stopped:
                break
            lr = lr_at(ck.step + 1, tcfg, time.monotonic() - t0)
            loss, norm, n_chars = train_step(ck, streams, lr)
            if not n_chars:
                raise _diverged(ck, out, loss, norm, lr)
            run_chars += n_chars
            run_steps += 1
            window.append(loss)
            if len(window) > 100:
                window.pop(0)
            if ck.step % HISTORY_EVERY == 0:
                ck.history["train"].append([ck.step, float(np.mean(window[-HISTORY_EVERY:])), elapsed()])
            event = {"step": ck.step, "seconds": round(elapsed(), 3), "chars_seen": ck.chars_seen, "lr": lr,
                     "train_nats": loss, "val_nats": None, "grad_norm": norm,
                     "chars_per_sec": round(run_chars / max(time.monotonic() - t0, 1e-9), 1)}
            if ck.step % eval_every == 0:
                event["val_nats"] = validate()
                if not tcfg.save_every:
                    save(ck, out)
            if tcfg.save_every and ck.step % tcfg.save_every == 0:
                save(ck, out)
            rep.step(ck, event)
        if run_steps == 0 or ck.step % eval_every != 0:
            validate()
        elapsed()
        save(ck, out)
    finally:
        rep.close()
    seconds = time.monotonic() - t0
    train_nats = float(np.mean(window)) if window else None
    return {
        "steps": ck.step,
        "run_steps": run_steps,
        "chars_seen": ck.chars_seen,
        "seconds": round(seconds, 3),
        "chars_per_sec": round(run_chars / seconds, 1) if seconds > 0 else 0.0,
        "val_seconds": round(val_seconds, 3),
        "eval_every": eval_every,
        "train_nats": train_nats,
        "train_bits": train_nats / LN2 if train_nats is not None else None,
        "val_nats": last_val,
        "val_bits": last_val / LN2 if last_val is not None else None,
        "best_val_nats": ck.best_val,
        "best_step": ck.best_step,
        "batch": B,
        "seq_len": T,
        "stopped_by": stopped,
        "lr": lr,
        "checkpoint": out,
    }


def _diverged(ck: Checkpoint, out: str, loss: float, norm: float, lr: float) -> CharRNNError:
    """Save the state if it is still finite, and say what happened and what to try."""
    what = f"loss is {loss}" if not math.isfinite(loss) else f"gradient norm is {norm}"
    if all(np.isfinite(p).all() for p in ck.params.values()):
        save(ck, out)  # the update has not happened: these weights are the last good ones
        kept = f"saved the last good state (step {ck.step}) to {out}"
    else:
        kept = f"the last good checkpoint on disk is left as it was ({out})"
    return CharRNNError(
        f"training diverged at step {ck.step + 1} ({what}); {kept}; try a lower --lr (now {lr:g}) or --clip 5"
    )


@contextmanager
def stop_on_signals():
    """While active, SIGINT and SIGTERM ask training to stop after the current step.

    Yields ``should_stop() -> "SIGINT" | "SIGTERM" | None`` for :func:`train`.
    A second Ctrl-C while stopping is ignored, so the final save completes.
    """
    received: list[str] = []

    def handler(signum, frame):
        received.append(signal.Signals(signum).name)

    old = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.signal(sig, handler)
    try:
        yield lambda: received[0] if received else None
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)
