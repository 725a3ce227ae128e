"""The options of a training run, declared once.

:class:`TrainOptions` has one field per keyword of ``charrnn.train()`` and
flag of ``charrnn train``. It is derived, not written out: the fields of
ModelConfig and TrainConfig that are marked for the command line (their
values are stored in the checkpoint), then :class:`RunOptions` (what only
this run needs). Every field defaults to None, meaning the config's
default, or on --resume the checkpoint's value. The CLI builds its flags
from the same fields, with their help texts.
"""
from __future__ import annotations

import typing
from dataclasses import dataclass, field, fields, make_dataclass
from typing import List, Optional, Sequence

from charrnn.checkpoint import check_writable
from charrnn.config import ModelConfig, TrainConfig, setting
from charrnn.errors import UsageError
from charrnn.limits import parse_duration
from charrnn.vocab import check_unknown_policy

DEFAULT_STEPS = 2000  # training length when no steps, epochs or time is given
ENCODING_ERRORS = ("strict", "replace")


@dataclass
class RunOptions:
    """What a run needs beyond the stored configs: limits, where it starts from, how it reads text."""

    steps: Optional[int] = setting(None, f"Stop at this total step count. (default {DEFAULT_STEPS} if no other limit)")
    epochs: Optional[float] = setting(None, "Stop after this many passes over the text in total.")
    time: Optional[str] = setting(None, "Stop after this long: seconds, or 90s, 5m, 1h.")
    cosine: bool = setting(False, "Cosine decay of the learning rate to a tenth over --steps.")
    constant_lr: bool = setting(False, "With --time, keep the learning rate flat instead of decaying it over the budget.")
    val_file: Optional[List[str]] = setting(None, "Validate on this file instead of holding text out (repeatable).")
    resume: bool = setting(False, "Continue the checkpoint at --out: weights, optimizer, data position, RNG.")
    force: bool = setting(False, "Overwrite an existing checkpoint at --out instead of refusing.")
    init_from: Optional[str] = setting(None, "Fine-tune: start from this checkpoint's weights and vocabulary.")
    records: bool = setting(False, "Each line is an independent record: the state resets at newlines.")
    unknown: str = setting("error", "With a fixed vocabulary (--init-from, --resume): error, skip or replace:C "
                                    "for new characters.")
    encoding_errors: str = setting("strict", "strict: invalid UTF-8 is an error; replace: use U+FFFD.",
                                   choices=ENCODING_ERRORS)
    glob: Optional[List[str]] = setting(None, "With a folder: read only the files matching this pattern "
                                              "(repeatable; *.py matches at any depth).")
    no_cache: bool = setting(False, "Read the corpus without writing a cache of its ids (see 'charrnn cache').")
    workers: Optional[int] = setting(None, "Processes sharing each batch. (default $CHARRNN_WORKERS, else the "
                                           "available cores, keeping >= 8 streams each; a --time budget "
                                           "trains in one process instead where that is faster)")


def cli_fields(cls) -> list:
    """The fields of a config class that are options of a run."""
    return [f for f in fields(cls) if f.metadata.get("cli", True)]


MODEL_FIELDS = tuple(f.name for f in cli_fields(ModelConfig))  # the options that shape a model
TRAIN_FIELDS = tuple(f.name for f in cli_fields(TrainConfig))  # the options stored in TrainConfig


def _config_option(cls, f):
    """A config field as an option: same name and help, Optional type, None meaning the config's default."""
    hint = typing.get_type_hints(cls)[f.name]
    return f.name, Optional[hint], field(default=None, metadata={**f.metadata, "default": f.default})


class _Derived:
    """Methods of TrainOptions."""

    def given(self, names: Sequence[str]) -> dict:
        """The options among ``names`` that were set (not None)."""
        return {k: getattr(self, k) for k in names if getattr(self, k) is not None}

    def train_config(self) -> dict:
        """The TrainConfig fields these options set."""
        given = self.given(TRAIN_FIELDS)
        if self.val_file:
            given["val_files"] = [self.val_file] if isinstance(self.val_file, str) else list(self.val_file)
        return given


TrainOptions = make_dataclass(
    "TrainOptions",
    [_config_option(ModelConfig, f) for f in cli_fields(ModelConfig)]
    + [_config_option(TrainConfig, f) for f in cli_fields(TrainConfig)]
    + [(f.name, typing.get_type_hints(RunOptions)[f.name], f) for f in fields(RunOptions)],
    bases=(_Derived,))
TrainOptions.__module__ = __name__
TrainOptions.__doc__ = ("Every option of a run, named as the CLI's flags with underscores; None is the default "
                        "(on resume: the checkpoint's). Fields: ModelConfig's and TrainConfig's options, then "
                        "RunOptions'.")


def options_from(kwargs: dict) -> TrainOptions:
    """TrainOptions from keyword arguments, refusing unknown names with the list of known ones."""
    known = {f.name for f in fields(TrainOptions)}
    bad = sorted(set(kwargs) - known)
    if bad:
        raise UsageError(f"unknown training option(s) {', '.join(bad)}; known: {', '.join(sorted(known))}")
    return TrainOptions(**kwargs)


def check_options(opts: TrainOptions, out: str | None) -> float | None:
    """Refuse contradictory or out-of-range options before reading anything; returns the --time in seconds."""
    if opts.encoding_errors not in ENCODING_ERRORS:
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
        check_writable(out)
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
