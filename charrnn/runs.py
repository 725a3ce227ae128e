"""Training runs from options: what ``charrnn.train()`` and ``charrnn train`` share.

A run starts one of three ways, each building its checkpoint differently:

    fresh        a new vocabulary from the corpus and new weights
    resume       the checkpoint at ``out``: weights, optimizer, data position, RNG
    init_from    another checkpoint's weights and vocabulary, with a new optimizer

:func:`prepare_run` does that, reads the corpus into ids and sets the limits
and the learning-rate schedule; :func:`train` runs it and returns a
:class:`TrainResult`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from typing import Callable, Sequence

import numpy as np

from charrnn import budget, checkpoint, mpi
from charrnn.checkpoint import Checkpoint
from charrnn.config import ModelConfig, TrainConfig
from charrnn.data import record_hashes
from charrnn.errors import CharRNNError, UsageError
from charrnn.limits import Limits, parse_duration, stop_on_signals
from charrnn.training import Reporter, RunMetrics, StepEvent, new_checkpoint
from charrnn.training import train as train_loop
from charrnn.trained import Model
from charrnn.vocab import Vocab, check_unknown_policy, fit_to_vocab, read_corpora

DEFAULT_STEPS = 2000  # training length when no steps, epochs or time is given
MODEL_FIELDS = ("cell", "hidden", "layers")  # the options that shape a model
TRAIN_FIELDS = tuple(f.name for f in fields(TrainConfig)
                     if f.name not in ("cosine_steps", "cosine_seconds", "min_lr_frac", "val_files"))


@dataclass
class TrainOptions:
    """Every option of a run, named as the CLI's flags; None is the default (on resume: the checkpoint's)."""

    cell: str | None = None  # rnn, lstm or gru
    hidden: int | None = None  # hidden units per layer
    layers: int | None = None  # stacked recurrent layers
    dropout: float | None = None  # dropout after each layer while training, in [0, 1)
    seq_len: int | None = None  # characters per BPTT chunk
    batch: int | None = None  # parallel streams per step
    lr: float | None = None  # learning rate (the peak, with a schedule)
    lookup_lr: float | None = None  # the input lookup table learns at lr * this
    optimizer: str | None = None  # adam, adagrad or sgd
    momentum: float | None = None  # sgd momentum
    beta1: float | None = None  # adam first-moment decay
    beta2: float | None = None  # adam second-moment decay
    eps: float | None = None  # adam / adagrad denominator guard
    clip: float | None = None  # clipping threshold; 0 turns clipping off
    clip_mode: str | None = None  # norm or value
    val_frac: float | None = None  # fraction of the text held out for validation
    val_from: str | None = None  # spread: blocks through the text | end: its last val_frac
    val_file: str | Sequence[str] | None = None  # validate on these files instead; nothing is held out
    eval_every: int | None = None  # steps between validation passes (0 or None: automatic)
    save_every: int | None = None  # steps between saves (0 or None: at each validation pass)
    seed: int | None = None  # seeds initialisation and every random draw of training
    warmup: int | None = None  # steps of linear learning-rate warm-up
    lr_decay: float | None = None  # step decay factor ...
    lr_decay_every: int | None = None  # ... applied every this many steps
    steps: int | None = None  # stop at this total step count
    epochs: float | None = None  # stop after this many passes over the text in total
    time: str | float | None = None  # stop after this long: seconds, or "90s", "5m", "1h"
    cosine: bool = False  # cosine decay to a tenth over ``steps``
    constant_lr: bool = False  # with ``time``, keep the rate flat instead of annealing it
    resume: bool = False  # continue the checkpoint at ``out``
    force: bool = False  # overwrite an existing checkpoint at ``out``
    init_from: str | None = None  # fine-tune: start from this checkpoint's weights and vocabulary
    records: bool = False  # each line is an independent record: the state resets at newlines
    unknown: str = "error"  # with a fixed vocabulary: error, skip or replace:C for new characters
    encoding_errors: str = "strict"  # strict: invalid UTF-8 is an error; replace: U+FFFD
    workers: int | None = None  # processes sharing each batch (None: $CHARRNN_WORKERS, else the cores, >= 8 streams each)

    def given(self, names: Sequence[str]) -> dict:
        """The options among ``names`` that were set (not None)."""
        return {k: getattr(self, k) for k in names if getattr(self, k) is not None}

    def train_config(self) -> dict:
        """The TrainConfig fields these options set."""
        given = self.given(TRAIN_FIELDS)
        if self.val_file:
            given["val_files"] = [self.val_file] if isinstance(self.val_file, str) else list(self.val_file)
        return given


@dataclass
class Run:
    """A run ready to train: its checkpoint, the corpus as ids (n,), and when to stop."""

    ck: Checkpoint
    ids: np.ndarray
    limits: Limits
    resumed: bool = False
    val_ids: np.ndarray | None = None  # (m,) from --val-file; None: held out of ids
    workers: int | None = None  # processes sharing each batch (None: the default for the batch)


def options_from(kwargs: dict) -> TrainOptions:
    """TrainOptions from keyword arguments, refusing unknown names with the list of known ones."""
    known = {f.name for f in fields(TrainOptions)}
    bad = sorted(set(kwargs) - known)
    if bad:
        raise UsageError(f"unknown training option(s) {', '.join(bad)}; known: {', '.join(sorted(known))}")
    return TrainOptions(**kwargs)


def check_options(opts: TrainOptions, out: str | None) -> float | None:
    """Refuse contradictory or out-of-range options before reading anything; returns the --time in seconds."""
    if opts.encoding_errors not in ("strict", "replace"):
        raise UsageError(f"--encoding-errors must be strict or replace, not {opts.encoding_errors!r}")
    if opts.steps is not None and opts.steps <= 0:
        raise UsageError(f"--steps must be positive, not {opts.steps}")
    if opts.epochs is not None and not opts.epochs > 0:
        raise UsageError(f"--epochs must be positive, not {opts.epochs}")
    if opts.workers is not None and (not isinstance(opts.workers, int) or opts.workers < 1):
        raise UsageError(f"--workers must be a whole number of at least 1, not {opts.workers!r}")
    seconds = None if opts.time is None else parse_duration(str(opts.time))
    ModelConfig(vocab_size=1, **opts.given(MODEL_FIELDS)).check()
    TrainConfig(**opts.train_config()).check()
    if out is not None:
        checkpoint.check_writable(out)
    if opts.resume and opts.force:
        raise UsageError("--resume and --force contradict each other; choose one")
    if opts.resume and out is None:
        raise UsageError("resume continues the checkpoint at out; give out")
    if opts.resume and opts.init_from:
        raise UsageError("--resume continues --out; --init-from starts a new run from another model; choose one")
    if opts.cosine and opts.steps is None:
        raise UsageError("--cosine decays over --steps; give --steps too")
    check_unknown_policy(opts.unknown)
    return seconds


def _same_model(ck: Checkpoint, opts: TrainOptions, check_optimizer: bool) -> None:
    """Refuse model options that contradict an existing checkpoint's shape."""
    for k, v in opts.given(MODEL_FIELDS).items():
        if getattr(ck.model_config, k) != v:
            raise UsageError(f"--{k} {v} differs from the checkpoint's {getattr(ck.model_config, k)}; drop it")
    if check_optimizer and opts.optimizer is not None and opts.optimizer != ck.train_config.optimizer:
        raise UsageError(f"--optimizer {opts.optimizer} differs from the checkpoint's {ck.train_config.optimizer}")


def _newline_id(vocab: Vocab) -> int:
    if "\n" not in vocab.chars:
        raise CharRNNError("--records needs one record per line, but the corpus has no newline")
    return vocab.chars.index("\n")


def _resumed(out: str, opts: TrainOptions, text: str) -> tuple[Checkpoint, str]:
    ck = checkpoint.load(out)
    _same_model(ck, opts, check_optimizer=True)
    ck.train_config = replace(ck.train_config, **opts.train_config())
    return ck, fit_to_vocab(ck.vocab, text, opts.unknown)


def _fine_tuned(opts: TrainOptions, text: str) -> tuple[Checkpoint, str]:
    parent = checkpoint.load(opts.init_from)
    _same_model(parent, opts, check_optimizer=False)
    check_unknown_policy(opts.unknown, parent.vocab)
    text = fit_to_vocab(parent.vocab, text, opts.unknown)
    mcfg = parent.model_config
    if opts.records and mcfg.reset_id < 0:
        mcfg = replace(mcfg, reset_id=_newline_id(parent.vocab))
    ck = new_checkpoint(parent.vocab, mcfg, TrainConfig(**opts.train_config()))
    ck.params = {k: v.copy() for k, v in parent.params.items()}
    ck.parent = opts.init_from
    return ck, text


def _fresh(opts: TrainOptions, text: str, seconds: float | None, warn) -> Checkpoint:
    if len(text) < 2:
        raise CharRNNError(f"the corpus has {len(text)} character(s); at least 2 are needed to learn anything")
    vocab = Vocab.from_text(text)
    shape, tcfg = opts.given(MODEL_FIELDS), TrainConfig(**opts.train_config())
    if seconds is not None and not shape:
        held = 0.0 if tcfg.val_files else tcfg.val_frac
        choice = budget.choose(seconds, int(len(text) * (1 - held)), vocab.size)
        choice.train = {k: v for k, v in choice.train.items() if getattr(opts, k) is None}  # flags win
        shape, tcfg = {"hidden": choice.hidden}, replace(tcfg, **choice.train)
        warn(f"note: --time {opts.time}: {budget.describe(choice, ModelConfig().cell)} (pass --hidden to choose)")
    mcfg = ModelConfig(vocab_size=vocab.size, **shape)
    if opts.records:
        mcfg.reset_id = _newline_id(vocab)
    return new_checkpoint(vocab, mcfg, tcfg)


def _set_schedule(ck: Checkpoint, opts: TrainOptions, steps: int | None, seconds: float | None) -> None:
    """--cosine decays over the steps; a --time budget anneals over itself unless another schedule was asked for."""
    tcfg = ck.train_config
    if opts.cosine:
        tcfg.cosine_steps = steps
    explicit = opts.constant_lr or tcfg.cosine_steps or (tcfg.lr_decay_every and tcfg.lr_decay != 1.0)
    tcfg.cosine_seconds = seconds if seconds is not None and not explicit else 0.0


def prepare_run(corpus: Sequence[str], out: str | None, opts: TrainOptions,
                warn: Callable[[str], None] = lambda m: None) -> Run:
    """Check the options, read the corpus and build the checkpoint a run starts from."""
    seconds = check_options(opts, out)
    text = read_corpora(list(corpus), opts.encoding_errors, warn)
    if opts.resume:
        ck, text = _resumed(out, opts, text)
    else:
        if out is not None and os.path.exists(out) and not opts.force:
            raise CharRNNError(f"{out} already exists; pass --resume to continue it, --force to overwrite it, "
                               f"or -o another path")
        ck, text = _fine_tuned(opts, text) if opts.init_from else (_fresh(opts, text, seconds, warn), text)
        if ck.model_config.reset_id >= 0:
            ck.record_hashes = record_hashes(text)
    ids = ck.vocab.encode(text)
    steps = opts.steps
    if steps is None and opts.epochs is None and seconds is None:
        steps = ck.step + DEFAULT_STEPS
    _set_schedule(ck, opts, steps, seconds)
    return Run(ck, ids, Limits(steps, opts.epochs, seconds), resumed=opts.resume,
               val_ids=_val_file_ids(ck, opts, warn), workers=opts.workers)


def start_run(corpus: Sequence[str], out: str | None, opts: TrainOptions,
              warn: Callable[[str], None] = lambda m: None):
    """(run, team): :func:`prepare_run` here; under an MPI launcher, on rank 0 for every rank of ``team``."""
    team = mpi.join()
    if team is None:
        return prepare_run(corpus, out, opts, warn), None
    if opts.workers not in (None, 1):
        raise UsageError("under MPI each rank is one worker: drop --workers, start one rank per core (mpiexec -n N)")
    return team.broadcast_run(lambda: prepare_run(corpus, out, opts, warn)), team


def _val_file_ids(ck: Checkpoint, opts: TrainOptions, warn) -> np.ndarray | None:
    """The --val-file texts as ids (None if there are none); unknown characters follow --unknown."""
    if not ck.train_config.val_files:
        return None
    check_unknown_policy(opts.unknown, ck.vocab)
    texts = []
    for path in ck.train_config.val_files:
        text = read_corpora([path], opts.encoding_errors, warn)
        try:
            texts.append(fit_to_vocab(ck.vocab, text, opts.unknown))
        except CharRNNError as e:
            raise CharRNNError(f"--val-file {path}: {e}") from None
    return ck.vocab.encode("".join(texts))


@dataclass
class TrainResult(RunMetrics):
    """The figures of a finished run (see RunMetrics) and the trained model."""

    model: Model | None = field(default=None, repr=False, compare=False)


class _Callbacks(Reporter):
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


def train(corpus: str | os.PathLike | Sequence[str | os.PathLike], out: str | os.PathLike | None = None, *,
          on_step: Callable[[StepEvent], None] | None = None,
          on_validation: Callable[[StepEvent], None] | None = None,
          on_note: Callable[[str], None] | None = None, **options) -> TrainResult:
    """Train a character model on text files, as ``charrnn train`` does, and return it with its figures.

    ``corpus`` is a path or a list of paths ("-" is stdin). ``out`` is the
    checkpoint to write (its best-validation twin goes beside it); None
    trains in memory and writes nothing. ``options`` are the CLI's flags with
    underscores (``steps=200``, ``hidden=128``, ``time="30s"``, ``val_frac=0.05``,
    ``resume=True`` ...; see TrainOptions), with the same defaults.
    ``on_step`` gets every step's StepEvent, ``on_validation`` the events of
    steps that validated, ``on_note`` the notes the CLI prints to stderr.
    Ctrl-C (in the main thread) stops after the current step, saves, and
    returns with ``stopped_by == "SIGINT"``.
    """
    paths = [os.fspath(corpus)] if isinstance(corpus, (str, os.PathLike)) else [os.fspath(c) for c in corpus]
    out = None if out is None else os.fspath(out)
    note = on_note or (lambda m: None)
    run, team = start_run(paths, out, options_from(options), note)
    root = team is None or team.is_root
    callbacks = _Callbacks(on_step, on_validation, note) if root else None
    with stop_on_signals() as should_stop:
        metrics = train_loop(run.ck, run.ids, out if root else None, run.limits, callbacks, should_stop,
                             run.val_ids, run.workers, team)
    return TrainResult(**metrics.to_dict(), model=Model(run.ck, out))
