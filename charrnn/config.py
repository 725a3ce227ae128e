"""Configuration dataclasses: the single source of defaults for the library and the CLI.

Both are stored in every checkpoint (as JSON) and rebuilt from it on load.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from charrnn.data import VAL_PLACES
from charrnn.errors import CharRNNError, UsageError

CELLS = ("rnn", "lstm", "gru")  # recurrent cell types
OPTIMIZERS = ("adam", "adagrad", "sgd")
CLIP_MODES = ("norm", "value")


@dataclass
class ModelConfig:
    """The shape of a model: everything needed to rebuild its parameters."""

    vocab_size: int = 0  # V: number of distinct characters (set from the corpus)
    hidden: int = 384  # H: hidden units per layer (384: the best held-out loss in 5 minutes short of 512, see README)
    cell: str = "gru"  # recurrent cell: rnn (tanh), lstm or gru; gru learned fastest in a 5-minute budget
    layers: int = 1  # stacked recurrent layers
    dtype: str = "float32"  # parameter and activation dtype (float64 for gradient checks)
    reset_id: int = -1  # records mode: id of the newline, before which the state resets; -1 is off

    def check(self) -> None:
        _positive(self, "vocab_size", "hidden", "layers")
        if self.cell not in CELLS:
            raise UsageError(f"unknown cell {self.cell!r}; choose one of {', '.join(CELLS)}")
        if not -1 <= self.reset_id < self.vocab_size:
            raise UsageError(f"reset_id {self.reset_id} is outside the vocabulary")
        if self.dtype not in ("float32", "float64"):
            raise UsageError(f"dtype must be float32 or float64, not {self.dtype!r}")


@dataclass
class TrainConfig:
    """How a model is trained; saved with it so that --resume continues the same way."""

    seq_len: int = 64  # T: characters per chunk of truncated BPTT
    batch: int = 64  # B: parallel contiguous streams through the corpus
    lr: float = 2e-3  # learning rate (the peak, with a schedule)
    lookup_lr: float = 10.0  # the input lookup table W_ax.0 learns at lr * this (see optim.LOOKUP)
    warmup: int = 0  # steps of linear learning-rate warm-up from 0
    lr_decay: float = 1.0  # step decay: multiply the learning rate by this ...
    lr_decay_every: int = 0  # ... every this many steps (0: no step decay)
    cosine_steps: int = 0  # cosine decay to lr * min_lr_frac over this many steps (0: off)
    cosine_seconds: float = 0.0  # cosine decay over this many seconds of the run: a --time budget (0: off)
    min_lr_frac: float = 0.1  # where cosine decay ends, as a fraction of lr
    optimizer: str = "adam"  # adam | adagrad | sgd (with momentum)
    momentum: float = 0.9  # sgd momentum
    beta1: float = 0.9  # adam first-moment decay
    beta2: float = 0.999  # adam second-moment decay
    eps: float = 1e-8  # adam / adagrad denominator guard
    dropout: float = 0.2  # inverted dropout after every layer, in training only; 0.2 cut held-out loss 0.1 nats
    clip: float = 5.0  # clipping threshold; 0 turns clipping off
    clip_mode: str = "norm"  # norm: rescale by global norm | value: clip each element to [-clip, clip]
    val_frac: float = 0.1  # fraction of the text held out for validation (ignored with val_files)
    val_from: str = "spread"  # spread: evenly spaced blocks through the text | end: its last val_frac
    val_files: list = field(default_factory=list)  # validate on these files instead; nothing is held out
    eval_every: int = 0  # steps between validation passes; 0 picks one that keeps validation under ~5% of the time
    save_every: int = 0  # steps between checkpoint saves; 0 saves at each validation pass and at the end
    seed: int = 1337  # seeds initialisation and every random draw of training

    def check(self) -> None:
        _positive(self, "seq_len", "batch", "lr", "lookup_lr")
        if self.optimizer not in OPTIMIZERS:
            raise UsageError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if self.clip_mode not in CLIP_MODES:
            raise UsageError(f"unknown --clip-mode {self.clip_mode!r}; choose norm or value")
        if not self.clip >= 0:
            raise UsageError(f"--clip must be 0 (off) or positive, not {self.clip}")
        if not 0 <= self.dropout < 1:
            raise UsageError(f"--dropout must be in [0, 1), not {self.dropout}")
        if not 0 <= self.val_frac < 1:
            raise UsageError(f"--val-frac must be in [0, 1), not {self.val_frac}")
        if self.val_from not in VAL_PLACES:
            raise UsageError(f"--val-from must be spread or end, not {self.val_from!r}")
        if not all(isinstance(f, str) for f in self.val_files):
            raise CharRNNError("val_files must be a list of paths")
        if "-" in self.val_files:
            raise UsageError("--val-file needs a file path; stdin (-) is for the corpus")
        if self.warmup < 0 or self.lr_decay_every < 0 or self.cosine_steps < 0 or not self.cosine_seconds >= 0:
            raise UsageError("--warmup, --lr-decay-every and schedule lengths must be 0 or positive")
        if not 0 < self.lr_decay <= 1 or not 0 <= self.min_lr_frac <= 1:
            raise UsageError(f"--lr-decay must be in (0, 1], not {self.lr_decay}")
        if self.eval_every < 0 or self.save_every < 0:
            raise UsageError("--eval-every and --save-every must be 0 (automatic) or positive")


def _positive(cfg, *names: str) -> None:
    for name in names:
        value = getattr(cfg, name)
        if not value > 0:
            flag = "--" + name.replace("_", "-")
            raise UsageError(f"{flag} must be positive, not {value}")


def to_dict(cfg) -> dict:
    return asdict(cfg)


def from_dict(cls, data: dict):
    """Rebuild a config, ignoring unknown keys and filling missing ones with defaults."""
    if not isinstance(data, dict):
        raise CharRNNError(f"stored {cls.__name__} is not an object")
    known = {f.name for f in fields(cls)}
    cfg = cls(**{k: v for k, v in data.items() if k in known})
    for f in fields(cls):
        default, value = getattr(cls(), f.name), getattr(cfg, f.name)
        if not (type(value) is type(default) or (type(default) is float and type(value) is int)):
            raise CharRNNError(f"stored {cls.__name__}.{f.name} has the wrong type")
    return cfg
