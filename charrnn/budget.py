"""The model a --time budget chooses when no --cell, --hidden or --layers is given.

Before the model is built, the run's own gradient computer (its workers, its
threads) times a few training steps of each candidate model on random text.
Its characters per second, times the budget, are the characters that size
would *see* here. Two measured tables (docs/quality.md) then decide:

* the size: each size beats the one below it once it sees enough characters (a larger model learns
  more from each character but sees fewer), so the budget takes the largest size that sees what it
  needs at its own measured speed. The sizes are one-layer GRUs and, on a text too short for a
  GRU-768, the scaled GRU: one layer, then three on longer chunks. Sizes are timed from a first
  guess up or down (one to three of them), never read from a table measured elsewhere. No size
  above the smallest is taken for a text with fewer training characters than its parameters /
  its row's limit;
* the regularisation, from the *exposure* the chosen model will get here: the passes it will make
  over the training text at its own measured speed, times its parameters per training character
  (at least one, for all but the smallest models). A model that reads its text too often for its
  size learns it by heart, and many passes do that even to a model smaller than its text, unless
  the model is among the smallest, which gets them later (docs/quality.md). The more exposure, the more
  dropout of the outputs (--dropout) and of the recurrent weights (--weight-drop), with a small weight
  decay (--weight-decay); the scaled GRU, and a model with fewer parameters than its text has
  characters, get them sooner. Dropout slows a step, so a chosen size that gets some is timed again
  with it, and gives way to the next size down if it then no longer sees what it needs.

A budget run trains on fewer streams per step (BATCH, --batch): a short run is short of updates, not
characters. It stops early when its validation loss has not improved for a quarter of the budget
(--patience): it anneals its learning rate over as long again (charrnn.loop), then stops, keeping the best.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from math import prod
from typing import Callable

import numpy as np

from charrnn import network, optim
from charrnn.config import REGULARISATION, ModelConfig, TrainConfig


@dataclass(frozen=True)
class Size:
    """A model a budget may choose: its cell, stacked layers and units per layer."""

    hidden: int  # units per layer
    layers: int = 1  # stacked recurrent layers
    cell: str = "gru"  # recurrent cell (charrnn.cells.CELLS)
    skip: bool = False  # every layer's output feeds the output layer (ModelConfig.skip); not a size: SIZED_BY

    def __str__(self) -> str:  # as the budget's note names it
        return (f"{self.cell} of {self.hidden} units" + (f" x {self.layers} layers" if self.layers > 1 else "")
                + (", every layer to the output" if self.skip and self.layers > 1 else ""))

    def shape(self) -> dict:
        """The ModelConfig fields of this size."""
        return {"hidden": self.hidden, "cell": self.cell, "layers": self.layers, "skip": self.skip}

    def config(self, vocab_size: int) -> ModelConfig:  # a model of this size over vocab_size characters
        return ModelConfig(vocab_size=vocab_size, **self.shape())

    @classmethod
    def of(cls, cfg: ModelConfig) -> Size:
        """The size of a model of ``cfg``."""
        return cls(cfg.hidden, cfg.layers, cfg.cell, cfg.skip)


SIZED_BY = ("hidden", "layers", "cell")  # given any of these, the run is sized by its flags, not by a budget
FIRST_GUESS = Size(512)  # the size timed first for budgets over a minute (the smallest for shorter ones)
# A size whose timing shows it at least this share of the characters it needs, but not all, is timed again: a minute
# of a GRU-512's timings on a shared 2-vCPU machine read 16.6k-22.6k chars/s (benchmarks/timing_noise.py).
RETIME_WITHIN = 0.7

# No GRU above the first size has more parameters than this per training character: it gains nothing from its size
# (tiny-shakespeare: GRU-768, 2.2, no better than GRU-512, 1.02; the recipes: GRU-384, 1.9, behind GRU-256, 0.93).
MAX_PARAMS_PER_CHAR = 1.5
SMALL_TEXT_256 = 0.9  # the GRU-256's most: over the recipes (0.93, 1.03) it did no better than a GRU-128 ("The rule")
# Each row: (the model, the characters it must see to beat the row before, training defaults the budget changes,
# (fewest, most) parameters per training character of a text it is taken for). Each need sits between held-out losses
# of tiny-shakespeare's last 10% where the row lost and where it won against the row before, in the same time: GRU-384
# 2.4M lost, 4.8M won; GRU-512 3.2M lost, 4.0M won; mgru-512 5.2M lost, 5.4M won; two mgru layers of 384 on 16 x 256
# chunks (a speaker's previous line is further back than 64) 9.0M won; with skip, three layers of 288 did better.
# GRU-256's is converted from a GRU-512's; a GRU-512 with decay beat a GRU-768's twenty minutes, so GRU-768 needs 20M;
# GRU-1024's 30M is set above it, not measured. Every figure: docs/quality.md.
BUDGET_SIZES = (
    (Size(128), 0.0, {"lr": 4e-3}, (0.0, float("inf"))),
    (Size(256), 3.5e6, {}, (0.0, SMALL_TEXT_256)),
    (Size(384), 4.0e6, {}, (0.0, MAX_PARAMS_PER_CHAR)),
    (Size(512), 4.0e6, {}, (0.0, MAX_PARAMS_PER_CHAR)),
    (Size(512, 1, "mgru"), 5.4e6, {}, (1.0, MAX_PARAMS_PER_CHAR)),
    (Size(288, 3, "mgru", True), 8.0e6, {"batch": 16, "seq_len": 256, "val_frac": 0.02}, (MAX_PARAMS_PER_CHAR, 2.2)),
    (Size(768), 2.0e7, {}, (0.0, MAX_PARAMS_PER_CHAR)),
    (Size(1024), 3.0e7, {}, (0.0, MAX_PARAMS_PER_CHAR)),
)

# Each row: (exposure up to this much, dropout, weight drop, weight decay). Exposure = passes x parameters per
# training character, counted as at least 1 from FULL_EXPOSURE_PARAMS up; the smallest budget size, a GRU-128, keeps
# its own share. The first row ends between a GRU-512 at 6.9, better without, and at 8.0, better with the second row;
# the others are set by GRU-512s at 11 and 17 and a GRU-768 and GRU-1024 at 44-48. Weight decay 0.03 (AdamW-style)
# goes with dropout. Each figure with its command: docs/quality.md ("The rule", "Where the tables come from").
EXPOSURE_REGULARISATION = (
    (7.5, 0.0, 0.0, 0.0),
    (40.0, 0.1, 0.15, 0.03),
    (80.0, 0.2, 0.25, 0.03),
    (float("inf"), 0.3, 0.3, 0.03),
)
# The first row's end for a cell that learns its text by heart sooner: an mgru-512 did better with the second row at
# 7.4 (two seeds), level without at 5.6.
FIRST_ROW_END = {"mgru": 6.5}
# The first row's end for a model smaller than its text (smaller_than): a GRU-512 over the standard library (0.41 per
# character) after 7.1 passes: 1.2904 without dropout (1.8 passes: 1.2916), 1.2219 with the second row.
SMALLER_THAN_TEXT_END = 4.0
FULL_EXPOSURE_PARAMS = 150_000  # from here up (a GRU-256 and larger), exposure counts >= 1 parameter per char
SMALL_MODEL_END = 15.0  # the first row's end below FULL_EXPOSURE_PARAMS: the recipes' GRU-128 ("The rule")
# Streams per step of a budget run (--batch): half the default, twice the updates per character (docs/quality.md).
BATCH = 32
PATIENCE_SHARE = 0.25  # with a budget, stop when validation has not improved for this share of it
REFIT_SHARE = 0.1  # a budget run re-fits its REGULARISATION at its first validation pass this far into its budget


@dataclass
class BudgetChoice:
    """What a budget chose, and why."""

    size: Size  # the model
    train: dict = field(default_factory=dict)  # TrainConfig fields the budget sets (flags still win)
    rate: float = 0.0  # the characters per second the chosen model is expected to train at here
    chars: float = 0.0  # characters the chosen model will see in the budget here (rate x seconds)
    timed: dict = field(default_factory=dict)  # Size -> measured chars/s, each size timed to choose
    passes: float | None = None  # expected passes over the training text
    exposure: float | None = None  # passes x parameters per training character (exposure_of)
    train_chars: int | None = None  # the characters trained on, that the passes go over
    largest: int = 0  # the row of the largest size the text supports (rows_for)
    short: tuple | None = None  # the next size up, timed and short: (Size, chars it'd see, its need, with dropout?)


def params_of(size: Size, vocab_size: int) -> int:
    """Parameters of a model of ``size`` over ``vocab_size`` characters."""
    return sum(prod(s) for s in network.param_shapes(size.config(vocab_size)).values())


def rows_for(train_chars: int, vocab_size: int) -> list[int]:
    """The rows of :data:`BUDGET_SIZES` a text of ``train_chars`` training characters supports: the first row,
    and every row whose model has within its row's (fewest, most) parameters per training character."""
    return [i for i, (size, _, _, (low, high)) in enumerate(BUDGET_SIZES)
            if i == 0 or low * train_chars <= params_of(size, vocab_size) <= high * train_chars]


def choose_size(seconds: float, rate_of: Callable[..., float], rows: list[int] | None = None) -> tuple[int, dict]:
    """(the row of :data:`BUDGET_SIZES` for a budget of ``seconds``, {Size: chars/s} of the sizes timed).

    ``rate_of(size, train=row)`` times a size with its row's training defaults (its batch and chunk
    length, if the row sets them). The result is the largest size of ``rows`` (default: all) that sees,
    at its own measured rate, the characters it needs: timed from :data:`FIRST_GUESS` (or the smallest
    size, for a minute or less; or the last of ``rows``, if that is smaller) up while the next size up
    qualifies, or down until one does. The needs grow with the size and the rates fall with it, so the
    sizes that qualify are the first few rows and the walk ends at the last. A larger size is not timed
    when even the smaller one's rate would not show it what it needs. A size whose timing falls just
    short of its need (:data:`RETIME_WITHIN`) is timed once more and keeps the faster of its two
    timings, so that a moment's load on a shared machine does not decide the size.
    """
    rows, timed = list(range(len(BUDGET_SIZES))) if rows is None else rows, {}

    def qualifies(j: int) -> bool:
        size, need, row, _ = BUDGET_SIZES[rows[j]]
        if size not in timed:
            timed[size] = timed_for(need, seconds, lambda: rate_of(size, train=row))
        return timed[size] * seconds >= need

    def within_reach(j: int) -> bool:  # rows[j] could qualify at rows[j - 1]'s (timed) rate
        return j < len(rows) and timed[BUDGET_SIZES[rows[j - 1]][0]] * seconds >= BUDGET_SIZES[rows[j]][1]

    first = 0 if seconds <= 60 else next(i for i, row in enumerate(BUDGET_SIZES) if row[0] == FIRST_GUESS)
    j = max(k for k, i in enumerate(rows) if i <= first)
    if qualifies(j):
        while within_reach(j + 1) and qualifies(j + 1):
            j += 1
    else:
        while not qualifies(j):  # the first row needs nothing
            j -= 1
    return rows[j], timed


def timed_for(need: float, seconds: float, time_it: Callable[[], float]) -> float:
    """chars/s of a size that needs ``need`` characters in ``seconds``: ``time_it()``, and where that shows it
    at least :data:`RETIME_WITHIN` of its need but not all, the faster of it and one more ``time_it()``."""
    rate = time_it()
    return max(rate, time_it()) if RETIME_WITHIN * need <= rate * seconds < need else rate


def exposure_of(chars: float, params: int, train_chars: int) -> float:
    """Passes over ``train_chars`` characters in ``chars`` seen, times ``params`` parameters per training
    character, counted as at least one for a model of :data:`FULL_EXPOSURE_PARAMS` parameters or more."""
    n = max(train_chars, 1)
    per_char = max(params / n, 1.0) if params >= FULL_EXPOSURE_PARAMS else params / n
    return chars / n * per_char


def smaller_than(params: int, train_chars: int) -> bool:
    """Whether a model of ``params`` (:data:`FULL_EXPOSURE_PARAMS` or more) has fewer than ``train_chars``."""
    return FULL_EXPOSURE_PARAMS <= params < train_chars


def regularisation(exposure: float, cell: str = "gru", smaller_than_text: bool = False,
                   small: bool = False) -> tuple[float, float, float]:
    """(dropout, weight drop, weight decay) for a model of ``cell`` that will get ``exposure``: the row of
    :data:`EXPOSURE_REGULARISATION`, the first ending at :data:`FIRST_ROW_END` for the cells named there, at
    :data:`SMALLER_THAN_TEXT_END` if ``smaller_than_text`` (:func:`smaller_than`), at :data:`SMALL_MODEL_END`
    if ``small``."""
    first, *rest = EXPOSURE_REGULARISATION
    end = SMALL_MODEL_END if small else FIRST_ROW_END.get(cell, first[0])
    if exposure <= (min(end, SMALLER_THAN_TEXT_END) if smaller_than_text else end):
        return tuple(first[1:])
    return next(tuple(row[1:]) for row in rest if exposure <= row[0])


def regularisation_for(chars: float, params: int, train_chars: int, cell: str) -> tuple[float, float, float]:
    """:func:`regularisation` of a model of ``params`` and ``cell`` that sees ``chars`` of ``train_chars``."""
    return regularisation(exposure_of(chars, params, train_chars), cell, smaller_than(params, train_chars),
                          params < FULL_EXPOSURE_PARAMS)


def choose(seconds: float, train_chars: int, vocab_size: int, rate_of: Callable[..., float]) -> BudgetChoice:
    """The model for a --time budget of ``seconds`` over ``train_chars`` characters of training text.

    ``rate_of(size, dropout=(0.0, 0.0), train=None)`` measures the characters
    per second a model of ``size`` (a :class:`Size`) trains at on this
    machine, with that dropout of its outputs and recurrent weights, in
    batches of :data:`BATCH` streams or those its row's ``train`` sets,
    unless --batch and --seq-len say otherwise (see :func:`measure_rate`); it
    is called once for each size :func:`choose_size` times. Dropout slows a
    step, so when the chosen size gets some, it is timed again with that
    dropout (twice, keeping the faster, where the first timing falls just
    short, as in :func:`choose_size`); where it then no longer sees what it
    needs, the next size down is taken.
    """
    rows = rows_for(train_chars, vocab_size)
    i, timed = choose_size(seconds, rate_of, rows)
    dropped = {}  # Size -> chars/s timed with its dropout
    while True:
        size, need, row, _ = BUDGET_SIZES[i]
        if size not in timed:  # a size below the first one timed
            timed[size] = rate_of(size, train=row)
        rate = timed[size]
        params = params_of(size, vocab_size)
        drop = regularisation_for(rate * seconds, params, train_chars, size.cell)[:2]
        if drop == (0.0, 0.0):
            break
        rate = dropped[size] = timed_for(need, seconds, lambda: rate_of(size, drop, train=row))
        if rate * seconds >= need or i == 0:
            break
        i = rows[rows.index(i) - 1]
    train = {"batch": BATCH, **row}
    choice = BudgetChoice(size, train, rate=rate, chars=rate * seconds, timed=timed, train_chars=train_chars,
                          largest=rows[-1])
    above = [BUDGET_SIZES[j][:2] for j in rows if j > i and BUDGET_SIZES[j][0] in timed]
    if above:
        up, up_need = above[0]
        choice.short = (up, dropped.get(up, timed[up]) * seconds, up_need, up in dropped)
    choice.passes = rate * seconds / max(train_chars, 1)
    choice.exposure = exposure_of(choice.chars, params, train_chars)
    train.update(zip(REGULARISATION, regularisation_for(choice.chars, params, train_chars, size.cell)))
    train["patience"] = f"{PATIENCE_SHARE * seconds:g}s"
    return choice


def refit(tcfg: TrainConfig, chars: float, params: int, train_chars: int,
          cell: str) -> dict[str, tuple[float, float]]:
    """Re-fit the regularisation a budget chose to the exposure the run actually reaches, once.

    ``chars`` is what the run will have seen at the end of its budget at the speed it has trained at so far,
    ``params`` the model's parameters, ``train_chars`` the characters it trains on and ``cell`` its recurrent
    cell. The fields named in ``tcfg.refit`` (those of :data:`REGULARISATION` the budget set, not a flag) take
    the values :func:`regularisation` gives that exposure, and ``tcfg.refit`` is emptied, so it happens once.
    Returns {field: (before, after)} of the fields that changed.
    """
    new = dict(zip(REGULARISATION, regularisation_for(chars, params, train_chars, cell)))
    changed = {k: (getattr(tcfg, k), new[k]) for k in tcfg.refit if getattr(tcfg, k) != new[k]}
    for k, (_, value) in changed.items():
        setattr(tcfg, k, value)
    tcfg.refit = []
    return changed


def describe(choice: BudgetChoice) -> str:
    """The note that names the choice and why."""
    extra = "".join(f", {k.replace('_', '-')} {f'{v:g}' if isinstance(v, float) else v}"
                    for k, v in choice.train.items())
    largest, _, _, (_, per_char) = BUDGET_SIZES[choice.largest]
    bound = (f"at most {per_char:g}" if per_char < float("inf") else  # only the smallest: the next is too large
             f"a larger one would have more than {BUDGET_SIZES[choice.largest + 1][3][1]:g}")
    limit = (f", the largest size for this text ({bound} parameters per training character)"  # --no-skip or not
             if replace(choice.size, skip=largest.skip) == largest and choice.largest < len(BUDGET_SIZES) - 1 else "")
    up, chars, need, dropped = choice.short or (None, 0, 0, False)
    short = "" if up is None else (f"; {up} would see ~{chars / 1e6:.1f}M{' with its dropout' if dropped else ''}, "
                                   f"under the {need / 1e6:g}M it needs")
    return (f"{choice.size}{extra}; this machine trains it at ~{choice.rate:,.0f} chars/s: "
            f"~{choice.chars / 1e6:.1f}M characters, ~{choice.passes:.1f} passes over {choice.train_chars:,} "
            f"training characters{limit}{short}")


def measure_rate(by, vocab_size: int, size: Size, batch: int, seq_len: int, steps: int = 3,
                 dropout: tuple[float, float] = (0.0, 0.0)) -> float:
    """Characters per second of training a model of ``size`` here: ``steps`` timed steps (after one to
    warm up) of gradients from ``by`` (a charrnn.gradients.Gradients for that model and batch) and Adam's
    update, on random text of ``batch`` streams of ``seq_len`` characters, with ``dropout`` (of the outputs,
    of the recurrent weights)."""
    cfg = size.config(vocab_size)
    rng = np.random.default_rng(0)
    params = network.init_params(cfg, rng)
    opt, tcfg = optim.init_state(params, "adam"), TrainConfig()
    x, y = rng.integers(0, vocab_size, (seq_len, batch)), rng.integers(0, vocab_size, (seq_len, batch))
    state = network.zero_state(cfg, batch)
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        _, grads, _ = by.loss_and_grads(params, cfg, x, y, state, network.Dropout(*dropout), rng)
        optim.update(params, grads, opt, tcfg, 1e-4)
        times.append(time.perf_counter() - t0)
    return batch * seq_len / float(np.median(times[1:]))
