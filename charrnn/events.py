"""What a training run reports: a StepEvent per optimizer step, RunMetrics at the end."""
from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass
class StepEvent:
    """What one optimizer step reports (the --log record has exactly these fields)."""

    step: int  # the model's total step count after this step
    seconds: float  # training seconds over all runs
    chars_seen: int  # training characters over all runs
    lr: float  # learning rate of this step
    train_nats: float  # this step's training loss, nats/char
    val_nats: float | None  # validation loss if this step validated, else None
    grad_norm: float  # global gradient norm before clipping
    chars_per_sec: float  # this run's mean training throughput


@dataclass
class RunMetrics:
    """The figures of a finished run; losses in nats/char and bits/char."""

    steps: int  # the model's total step count
    run_steps: int  # steps taken in this run
    chars_seen: int  # training characters over all runs
    seconds: float  # wall-clock seconds of this run
    chars_per_sec: float  # this run's training throughput
    val_seconds: float  # of ``seconds``, spent validating
    eval_every: int  # steps between validation passes
    train_nats: float | None  # mean training loss over the last 100 steps
    train_bits: float | None
    val_nats: float | None  # the last validation loss (None: no validation split)
    val_bits: float | None
    average_val_nats: float | None  # the last validation loss of the averaged weights (None: not averaging)
    best_val_nats: float | None  # the best validation loss over all runs, of the weights or their average ...
    best_step: int | None  # ... and the step it was measured at
    served: str  # what the checkpoint serves: "weights" or "average" of served_step, or "last" (the last step's)
    served_step: int | None  # the step whose weights (or average) are served
    served_temp: float  # their output layer is divided by this (1: as trained; charrnn.validation.calibrated)
    batch: int  # B actually used (shrunk for a short text)
    seq_len: int  # T actually used
    stopped_by: str | None  # steps, epochs, time, patience, SIGINT or SIGTERM
    lr: float  # the last learning rate
    checkpoint: str | None  # where the run was saved (None: not saved)
    workers: int = 1  # processes that shared each batch

    def to_dict(self) -> dict:
        """The metrics as JSON-ready values, in field order (what ``train --json`` prints)."""
        return {f.name: getattr(self, f.name) for f in fields(RunMetrics)}


@dataclass
class RunStart:
    """What a run is about to do: told to the reporter once, before the first step."""

    cell: str  # rnn, lstm, gru or mgru
    hidden: int  # units per layer
    layers: int  # stacked layers
    vocab_size: int  # characters in the vocabulary
    params: int  # number of parameters
    text_chars: int  # characters of text read (training and held-out validation)
    step: int  # the model's step count when this run starts
    total: int | None  # the step count it will stop at, if known
    resumed: bool  # whether it continues a checkpoint


class Reporter:
    """Where training says what it is doing; this one says nothing.

    ``step`` gets the checkpoint (read it, don't change it) and the step's
    :class:`StepEvent`; ``val_nats`` is set on steps that validated.
    """

    def start(self, run: RunStart) -> None: ...
    def step(self, ck, event: StepEvent) -> None: ...
    def note(self, message: str) -> None: ...
    def close(self) -> None: ...
