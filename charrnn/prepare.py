"""Preparing a training run from its options: the checkpoint it starts from and the text it reads.

A run starts one of three ways, each building its checkpoint differently:

    fresh        a new vocabulary from the corpus and new weights
    resume       the checkpoint at ``out``: weights, optimizer, data position, RNG
    init_from    another checkpoint's weights and vocabulary, with a new optimizer

:func:`prepare_run` does that, reads the corpus into ids and sets the limits
and the learning-rate schedule. charrnn.trainer runs what it returns.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numpy as np

from charrnn import budget, checkpoint, network
from charrnn.checkpoint import Checkpoint, new_checkpoint
from charrnn.config import ModelConfig, TrainConfig
from charrnn.data import Streams, fit_shape, record_hashes, split
from charrnn.errors import CharRNNError, UsageError
from charrnn.gradients import InProcess
from charrnn.limits import Limits
from charrnn.options import DEFAULT_STEPS, MODEL_FIELDS, TrainOptions, check_options
from charrnn.corpus_cache import Corpus, open_corpus
from charrnn.vocab import Vocab, check_unknown_policy, fit_to_vocab, read_corpora


@dataclass
class Run:
    """A run ready to train: its checkpoint, the text it trains and validates on, and when to stop."""

    ck: Checkpoint
    streams: Streams  # the training text as B streams (B may be smaller than the config's for short texts)
    val_ids: np.ndarray  # (m,) validation ids: held out of the corpus, or read from --val-file
    limits: Limits
    text_chars: int = 0  # characters of text read (training and held-out validation)
    out: str | None = None  # where to save (None: never)
    resumed: bool = False


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


def _resumed(out: str, opts: TrainOptions, corpus: Corpus) -> tuple[Checkpoint, np.ndarray]:
    ck = checkpoint.load(out)
    _same_model(ck, opts, check_optimizer=True)
    given = opts.train_config()
    ck.train_config = replace(ck.train_config, **given)
    ck.train_config.refit = [k for k in ck.train_config.refit if k not in given]  # a flag given now wins
    return ck, corpus.ids_in(ck.vocab, opts.unknown)


def _fine_tuned(opts: TrainOptions, corpus: Corpus) -> tuple[Checkpoint, np.ndarray]:
    parent = checkpoint.load(opts.init_from)
    _same_model(parent, opts, check_optimizer=False)
    check_unknown_policy(opts.unknown, parent.vocab)
    ids = corpus.ids_in(parent.vocab, opts.unknown)
    mcfg = parent.model_config
    if opts.records and mcfg.reset_id < 0:
        mcfg = replace(mcfg, reset_id=_newline_id(parent.vocab))
    ck = new_checkpoint(parent.vocab, mcfg, TrainConfig(**opts.train_config()))
    ck.params = {k: v.copy() for k, v in parent.use_params.items()}  # the weights the parent serves
    ck.parent = opts.init_from
    return ck, ids


def _fresh(opts: TrainOptions, corpus: Corpus, seconds: float | None, warn, calibrate) -> Checkpoint:
    n = len(corpus.ids)
    if n < 2:
        raise CharRNNError(f"the corpus has {n} character(s); at least 2 are needed to learn anything")
    vocab = corpus.vocab
    shape, tcfg = opts.given(MODEL_FIELDS), TrainConfig(**opts.train_config())
    if seconds is not None and not shape.keys() & set(budget.SIZED_BY):  # a budget sizes the rest
        held = 0 if tcfg.val_files else min(int(n * tcfg.val_frac), tcfg.val_max or n)

        def rate_of(size, dropout=(0.0, 0.0), train=None):  # on the streams its row (train) would train on
            batch, seq_len = ((train or {}).get(k, default) if getattr(opts, k) is None else getattr(tcfg, k)
                              for k, default in (("batch", budget.BATCH), ("seq_len", tcfg.seq_len)))
            return calibrate(vocab.size, size, *fit_shape(n - held, batch, seq_len), dropout)
        choice = budget.choose(seconds, n - held, vocab.size, rate_of)
        choice.train = {k: v for k, v in choice.train.items() if getattr(opts, k) is None}  # flags win
        choice.size = replace(choice.size, **shape)  # --skip or --no-skip, as the note then says
        shape, tcfg = choice.size.shape(), replace(tcfg, **choice.train)
        tcfg.refit = [k for k in budget.REGULARISATION if k in choice.train]
        warn(f"note: --time {opts.time}: {budget.describe(choice)} (pass --hidden to choose)")
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


def _set_keeping(ck: Checkpoint) -> None:
    """Start or drop the running average, and what is served, as the (possibly changed) config says."""
    tcfg = ck.train_config
    if tcfg.average > 0 and ck.average is None:
        ck.average, ck.average_steps = {k: v.copy() for k, v in ck.params.items()}, 0
    elif tcfg.average == 0:
        ck.average, ck.average_steps = None, 0
    if tcfg.serve == "last":
        ck.served, ck.served_kind, ck.served_step, ck.served_temp = None, "last", None, 1.0


def measure_here(vocab_size: int, size: budget.Size, batch: int, seq_len: int,
                 dropout: tuple[float, float] = (0.0, 0.0)) -> float:
    """Characters per second of a model of ``size`` trained in this process (budget.measure_rate)."""
    return budget.measure_rate(InProcess(), vocab_size, size, batch, seq_len, dropout=dropout)


def prepare_run(corpus: Sequence[str], out: str | None, opts: TrainOptions,
                warn: Callable[[str], None] = lambda m: None,
                calibrate: Callable[..., float] = measure_here) -> Run:
    """Check the options, read the corpus and build the checkpoint a run starts from.

    ``calibrate(vocab_size, size, batch, seq_len, dropout=(0, 0))`` measures
    the training rate of a candidate model, with that dropout of its outputs
    and recurrent weights, for the --time budget rule (charrnn.budget).
    """
    seconds = check_options(opts, out)
    data = open_corpus(list(corpus), opts.glob, opts.encoding_errors, cache=not opts.no_cache, note=warn)
    if opts.resume:
        ck, ids = _resumed(out, opts, data)
    else:
        if out is not None and os.path.exists(out) and not opts.force:
            raise CharRNNError(f"{out} already exists; pass --resume to continue it, --force to overwrite it, "
                               f"or -o another path")
        ck, ids = _fine_tuned(opts, data) if opts.init_from else (_fresh(opts, data, seconds, warn, calibrate), data.ids)
        if ck.model_config.reset_id >= 0:
            ck.record_hashes = record_hashes(ids, ck.vocab.decode)
    steps = opts.steps
    if steps is None and opts.epochs is None and seconds is None:
        steps = ck.step + DEFAULT_STEPS
    _set_schedule(ck, opts, steps, seconds)
    _set_keeping(ck)
    streams, val_ids = streams_and_val(ck, ids, _val_file_ids(ck, opts, warn), warn)
    return Run(ck, streams, val_ids, Limits(steps, opts.epochs, seconds), len(ids), out=out, resumed=opts.resume)


def _streams_for(ck: Checkpoint, train_ids, warn) -> Streams:
    """The batched streams over the training ids; restarts the epoch if the shape changed."""
    tcfg = ck.train_config
    B, T = fit_shape(len(train_ids), tcfg.batch, tcfg.seq_len)
    if (B, T) != (tcfg.batch, tcfg.seq_len):
        warn(f"note: the training text is short ({len(train_ids)} chars): using --batch {B} --seq-len {T}")
    streams = Streams.of(train_ids, B, T, tcfg.shift)
    if ck.state.shape[1] != B or ck.pos >= streams.steps_per_epoch:
        if ck.step > 0:
            warn("note: the batch shape or corpus changed since the checkpoint; restarting the epoch")
        ck.state = network.zero_state(ck.model_config, B)
        ck.pos = 0
    return streams


def streams_and_val(ck: Checkpoint, ids: np.ndarray, val_ids: np.ndarray | None, warn):
    """(training streams, validation ids): ``val_ids`` if given, else held out of ``ids`` as the config says."""
    tcfg = ck.train_config
    train = ids
    if val_ids is None:
        train, held = split(ids, tcfg.val_frac, tcfg.val_from, ck.model_config.reset_id, tcfg.val_max)
        val_ids = held.array()
    if tcfg.val_frac > 0 and len(val_ids) == 0:
        warn("note: the text is too short to hold out a validation split; validating on nothing")
    return _streams_for(ck, train, warn), val_ids


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
