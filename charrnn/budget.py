"""The model a --time budget chooses when no --cell, --hidden or --layers is given.

Two measured tables decide it (benchmarks/quality.py, README "Models,
defaults and quality"):

* the size, from the seconds: the GRU that reached the lowest held-out loss
  in that time on tiny-shakespeare;
* the dropout, from the budget's *exposure*: the passes it will make over
  the training text, times the model's parameters per training character.
  A budget in seconds alone cannot see the corpus: the same ten minutes are
  two passes over three megabytes and thirteen over one, and a model that
  reads its text too often for its size learns it by heart (its validation
  loss turns up while its training loss keeps falling). A model much
  smaller than its text can read it many times without doing so: a GRU of
  128 units made 16 passes over the 0.3 MB bundled corpus in 30 s and
  dropout 0.4 only made it worse (0.354 against 0.344 nats/char).

The passes are estimated, before training starts, from the rate each size
ran at on the machine that measured the tables; a machine twice as fast
makes twice the passes, which moved each budget measured here by one row
at most.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from math import prod

from charrnn.config import ModelConfig
from charrnn.network import param_shapes

# Each row: (budgets up to this many seconds, hidden units, training defaults the budget changes).
# Measured at 30 s, 2 min, 5 min, 10 min and 20 min on tiny-shakespeare; the limits sit between them.
BUDGET_SIZES = (
    (60.0, 128, {"lr": 4e-3}),  # 30 s: 1.633 held-out, against 1.855 for the fixed GRU-384
    (200.0, 256, {}),  # 2 min: 1.521, against 1.566
    (float("inf"), 512, {}),  # 5 min: 1.461, against 1.472; 10 and 20 min: see EXPOSURE_DROPOUT
)

# Characters per second of each size above (two workers, 2-core machine, float32 matmul at ~95 GFLOP/s),
# used only to estimate the passes a budget makes.
NOMINAL_RATES = {128: 145_000, 256: 52_000, 512: 19_700}

# Each row: (exposure up to this much, dropout). Exposure = passes x parameters / training characters.
EXPOSURE_DROPOUT = (
    (8.0, 0.0),  # 5 min, GRU-512 on tiny-shakespeare (6.7): 1.461; 30 s, GRU-128 on pantry.txt (4.5)
    (20.0, 0.4),  # 10 min, GRU-512 (13.3): 1.474 at 0.4, 1.485 at 0.25, 1.514 at 0
    (float("inf"), 0.6),  # 20 min, GRU-512 (27): 1.500 at 0.6, 1.510 at 0.5; the fixed GRU-384 (0.2) 1.571
)


@dataclass
class BudgetChoice:
    """What a budget chose: the hidden units, the TrainConfig defaults it changes, and why."""

    hidden: int  # units of the one-layer GRU
    train: dict = field(default_factory=dict)  # TrainConfig fields the budget sets (flags still win)
    passes: float | None = None  # expected passes over the training text; None if its size was not known
    exposure: float | None = None  # passes x parameters per training character
    train_chars: int | None = None  # the characters trained on, that the passes go over


def choose(seconds: float, train_chars: int | None = None, vocab_size: int = 65) -> BudgetChoice:
    """The model for a --time budget of ``seconds`` over ``train_chars`` characters of training text.

    Without ``train_chars`` the dropout is that of a large corpus (0).
    """
    hidden, train = next((h, dict(t)) for limit, h, t in BUDGET_SIZES if seconds <= limit)
    choice = BudgetChoice(hidden, train, train_chars=train_chars)
    if train_chars:
        shapes = param_shapes(ModelConfig(vocab_size=vocab_size, hidden=hidden))
        choice.passes = NOMINAL_RATES[hidden] * seconds / train_chars
        choice.exposure = choice.passes * sum(prod(s) for s in shapes.values()) / train_chars
    train["dropout"] = next(d for limit, d in EXPOSURE_DROPOUT if (choice.exposure or 0.0) <= limit)
    return choice


def describe(choice: BudgetChoice, cell: str) -> str:
    """The note that names the choice: 'gru of 512 units, dropout 0.4; ~13 passes over 903,468 training characters'."""
    extra = "".join(f", {k} {v:g}" for k, v in choice.train.items())
    if choice.passes is not None:
        extra += f"; ~{choice.passes:.0f} passes over {choice.train_chars:,} training characters"
    return f"{cell} of {choice.hidden} units{extra}"
