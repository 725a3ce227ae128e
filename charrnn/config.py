"""The model's shape and how it is trained: dataclasses stored in every checkpoint.

Each field is declared once, here, with its default and its help text
(``setting``). The training options of ``charrnn.train`` and the flags of
``charrnn train`` are derived from these fields (see charrnn.options), so a
new setting needs one line.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from charrnn.cells import CELLS
from charrnn.errors import CharRNNError, UsageError
from charrnn.limits import parse_duration

OPTIMIZERS = ("adam", "adagrad", "sgd")
CLIP_MODES = ("norm", "value")
VAL_PLACES = ("spread", "end")  # where held-out validation text is taken from
SERVE = ("best", "last")  # which weights a checkpoint serves
REGULARISATION = ("dropout", "weight_drop", "weight_decay")  # the fields a --time budget chooses from the exposure


def setting(default, help: str, *, cli: bool = True, choices: tuple | None = None, factory=None):
    """A config field with its help text; ``cli=False`` keeps it off the command line."""
    meta = {"help": help, "cli": cli, "choices": choices}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class ModelConfig:
    """The shape of a model: everything needed to rebuild its parameters."""

    vocab_size: int = setting(0, "V: distinct characters, set from the corpus.", cli=False)
    hidden: int = setting(384, "Hidden units per layer.")
    cell: str = setting("gru", "Recurrent cell: rnn, lstm, gru or mgru (a GRU whose recurrent terms the input scales).")
    layers: int = setting(1, "Stacked recurrent layers.")
    skip: bool = setting(False, "Every layer's output feeds the output layer, not only the top one's.")
    dtype: str = setting("float32", "Parameter dtype (float64 for gradient checks).", cli=False)
    reset_id: int = setting(-1, "Records mode: the newline's id, before which the state resets; -1 off.", cli=False)

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

    seq_len: int = setting(64, "Characters per BPTT chunk (T).")
    batch: int = setting(64, "Parallel streams per step (B).")
    lr: float = setting(2e-3, "Learning rate (the peak, with a schedule).")
    lookup_lr: float = setting(10.0, "The input lookup table learns at --lr times this.")
    warmup: int = setting(0, "Steps of linear learning-rate warm-up from 0.")
    lr_decay: float = setting(1.0, "Step decay: multiply the learning rate by this...")
    lr_decay_every: int = setting(0, "...every this many steps (0: no step decay).")
    cosine_steps: int = setting(0, "Cosine decay over this many steps (0: off).", cli=False)
    cosine_seconds: float = setting(0.0, "Cosine decay over this many seconds: a --time budget.", cli=False)
    min_lr_frac: float = setting(0.1, "Where cosine decay ends, as a fraction of lr.", cli=False)
    optimizer: str = setting("adam", "adam, adagrad or sgd (momentum 0.9).")
    momentum: float = setting(0.9, "SGD momentum.")
    beta1: float = setting(0.9, "Adam first-moment decay.")
    beta2: float = setting(0.999, "Adam second-moment decay.")
    eps: float = setting(1e-8, "Adam and Adagrad denominator guard.")
    dropout: float = setting(0.2, "Dropout after each layer while training, in [0, 1).")
    weight_drop: float = setting(0.0, "Dropout of the recurrent weights while training (DropConnect on W_aa: one "
                                      "mask per step, shared by its characters and streams), in [0, 1).")
    weight_decay: float = setting(0.0, "Decoupled weight decay of the weight matrices (AdamW): each step shrinks "
                                       "them by lr times this.")
    shift: bool = setting(False, "Start each pass over the text a different number of characters (under --seq-len) "
                                 "in, so that its chunks, and where backpropagation stops, fall elsewhere.")
    clip: float = setting(5.0, "Gradient clipping threshold; 0 turns it off.")
    clip_mode: str = setting("norm", "norm: rescale by the global norm; value: clip each element.", choices=CLIP_MODES)
    val_frac: float = setting(0.1, "Fraction of the text held out for validation.")
    val_from: str = setting("spread", "spread: evenly spaced blocks through the text; end: its last part.",
                            choices=VAL_PLACES)
    val_max: int = setting(2_000_000, "Hold out at most this many characters for validation; 0 is no limit.")
    val_files: list = setting(None, "Validate on these files instead; nothing is held out.", cli=False, factory=list)
    eval_every: int = setting(0, "Steps between validation passes; 0 keeps validation near 5% of the time.")
    save_every: int = setting(0, "Steps between saves; 0 saves at each validation pass and at the end.")
    serve: str = setting("best", "The weights the file serves: best (the best validation loss, of the weights or "
                                 "their average) or last (the last step's).", choices=SERVE)
    average: float = setting(0.2, "Keep a running average of the weights over about this fraction of the steps "
                                  "so far, and serve it unless the weights validate clearly better; 0 turns it "
                                  "off.")
    calibrate: bool = setting(True, "Serve the weights with their output layer divided by the temperature that "
                                    "fits the validation text best (between 0.79 and 1.6).")
    patience: str = setting("", "Stop when validation has not improved for this many passes (5) or this long "
                                "(10m); empty is never. (default with --time: a quarter of the budget)")
    patience_anneal: float = setting(1.0, "When --patience runs out, first decay the learning rate to its floor over "
                                          "this share of the patience more, then stop; 0 stops at once.")
    seed: int = setting(1337, "Seed for initialisation and every random draw of training.")
    refit: list = setting(None, "The regularisation fields a --time budget chose, re-fitted once to the speed the "
                                "run reaches (charrnn.budget.refit); emptied when done.", cli=False, factory=list)
    one_process: bool = setting(False, "Gradients computed in one process with its BLAS threads, not on a pool of "
                                       "workers: what a budget's timing chose; a resume goes on the same way.",
                                cli=False)

    def check(self) -> None:
        _positive(self, "seq_len", "batch", "lr", "lookup_lr")
        if self.optimizer not in OPTIMIZERS:
            raise UsageError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if self.clip_mode not in CLIP_MODES:
            raise UsageError(f"unknown --clip-mode {self.clip_mode!r}; choose norm or value")
        if not self.clip >= 0:
            raise UsageError(f"--clip must be 0 (off) or positive, not {self.clip}")
        if not 0 <= self.weight_decay < 1 / self.lr:
            raise UsageError(f"--weight-decay must be 0 or more and below 1/--lr, not {self.weight_decay}")
        if not 0 <= self.dropout < 1:
            raise UsageError(f"--dropout must be in [0, 1), not {self.dropout}")
        if not 0 <= self.weight_drop < 1:
            raise UsageError(f"--weight-drop must be in [0, 1), not {self.weight_drop}")
        if not 0 <= self.val_frac < 1:
            raise UsageError(f"--val-frac must be in [0, 1), not {self.val_frac}")
        if self.val_from not in VAL_PLACES:
            raise UsageError(f"--val-from must be spread or end, not {self.val_from!r}")
        if not all(isinstance(f, str) for f in self.val_files):
            raise CharRNNError("val_files must be a list of paths")
        if not set(self.refit) <= set(REGULARISATION):
            raise CharRNNError(f"refit names fields that are not regularisation: {self.refit}")
        if "-" in self.val_files:
            raise UsageError("--val-file needs a file path; stdin (-) is for the corpus")
        if self.warmup < 0 or self.lr_decay_every < 0 or self.cosine_steps < 0 or not self.cosine_seconds >= 0:
            raise UsageError("--warmup, --lr-decay-every and schedule lengths must be 0 or positive")
        if not 0 < self.lr_decay <= 1 or not 0 <= self.min_lr_frac <= 1:
            raise UsageError(f"--lr-decay must be in (0, 1], not {self.lr_decay}")
        if self.serve not in SERVE:
            raise UsageError(f"--serve must be best or last, not {self.serve!r}")
        if not 0 <= self.average < 1:
            raise UsageError(f"--average must be in [0, 1): the fraction of the steps averaged, not {self.average}")
        patience_limit(self.patience)
        if not self.patience_anneal >= 0:
            raise UsageError(f"--patience-anneal must be 0 (stop at once) or positive, not {self.patience_anneal}")
        if self.seed < 0:
            raise UsageError(f"--seed must be a whole number of at least 0, not {self.seed}")
        if self.val_max < 0:
            raise UsageError(f"--val-max must be 0 (no limit) or positive, not {self.val_max}")
        if self.eval_every < 0 or self.save_every < 0:
            raise UsageError("--eval-every and --save-every must be 0 (automatic) or positive")


def patience_limit(patience: str) -> tuple[int | None, float | None]:
    """(validation passes, seconds) of a --patience value: "5" is five passes, "10m" ten minutes, "" neither."""
    text = patience.strip()
    if not text:
        return None, None
    if text.isdigit() and int(text) > 0:
        return int(text), None
    try:
        return None, parse_duration(text)
    except UsageError:
        raise UsageError(f"--patience must be a number of validation passes (5) or a time (90s, 10m), "
                         f"not {patience!r}") from None


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
