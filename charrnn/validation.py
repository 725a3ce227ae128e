"""Validation passes: score the weights and their running average, keep the best to serve, watch patience.

At each pass the run's weights are scored on the validation text, and so is
their running average (charrnn.optim.average_into) when averaging is on.
With ``--calibrate`` (the default), each is scored at once at each of the
temperatures around the served one (:func:`temps_around`), its logits divided
by each, and judged at the temperature that fits the
validation text best: a model that has read its text many times is surer of
itself than it should be on text it has not read. The average is the pass's
candidate unless the weights beat it by more than the noise of the comparison
(:func:`clearly_better`); the candidate, if better than anything before,
becomes what the checkpoint serves (``--serve best``), its output layer divided
by its temperature (:func:`calibrated`), so that everything that reads the file
reads the calibrated model. With ``--serve last`` the file serves the last
step's weights as they are. A run whose best has not improved for
``--patience`` passes, or that long, is told to stop.
"""
from __future__ import annotations

import time

import numpy as np

from charrnn.checkpoint import Checkpoint
from charrnn.config import patience_limit
from charrnn.events import Reporter
from charrnn.gradients import Gradients
from charrnn.numerics import nats_and_bits
from charrnn.score import stream_nll


# Validation reads its text as 64 streams at once, each first reading this many characters before its part, so that
# it scores what a reading of the whole text would. A GRU-512 trained on tiny-shakespeare's first 90% read its
# 100,385 characters of validation at 1.2940 nats/char as 64 streams from a zero state, and at 1.2895 with 64 or more
# characters of warm-up, as when read once; with --val-frac 0.03 (30,115 characters), 1.3000 against 1.2892.
WARM = 128
# The weights replace their average as a pass's candidate only when they score better by more than this many
# standard errors of the difference, measured over the validation streams (clearly_better).
NOISE_Z = 2.0
# The temperatures a pass scores with --calibrate: 1, and nine 3% apart around the temperature the file serves (at
# first 1), within 0.79-1.6, so that the grid follows the best as training moves it. Each costs a softmax over the
# logits; 25 at once cost a GRU-128 on the recipes 10% of its training time. Twenty minutes of three scaled-GRU
# layers of 288 on tiny-shakespeare validated best at 1.12 (docs/quality.md, "Calibration").
TEMP_STEP, TEMP_SPAN, TEMP_RANGE = 1.03, 4, (1.03**-8, 1.03**16)


def temps_around(center: float) -> tuple:
    """The temperatures a pass scores when the file serves ``center``: sorted, 1 among them."""
    lo, hi = TEMP_RANGE
    return tuple(sorted({1.0} | {min(max(center * TEMP_STEP**k, lo), hi) for k in range(-TEMP_SPAN, TEMP_SPAN + 1)}))


def calibrated(params: dict[str, np.ndarray], temp: float) -> dict[str, np.ndarray]:
    """A copy of ``params`` whose logits are theirs divided by ``temp``: the output layer (W_ya, b_y) divided."""
    out = {k: v.copy() for k, v in params.items()}
    if temp != 1.0:
        for k in ("W_ya", "b_y"):
            out[k] /= out[k].dtype.type(temp)
    return out


def clearly_better(nats: np.ndarray, than: np.ndarray, counts: np.ndarray, z: float = NOISE_Z) -> bool:
    """Whether the scores ``nats`` (b,) of one model beat ``than`` (b,), another's on the same b streams of
    ``counts`` (b,) predictions each, by more than ``z`` standard errors of their difference per character.

    The streams are the samples: the error of the mean difference is the spread of the streams' own
    differences (a ratio estimate, each stream weighted by its length), so a gain that a few streams carry,
    or that is small against how much the streams disagree, is not clear. One stream has no spread to judge
    by: any gain is clear.
    """
    gain, se = gain_and_error(nats, than, counts)
    if len(counts) < 2 or gain <= 0:
        return bool(gain > 0)
    return bool(gain > z * se)


def gain_and_error(nats: np.ndarray, than: np.ndarray, counts: np.ndarray) -> tuple[float, float]:
    """How much lower ``nats`` (b,) score than ``than`` (b,) per character over b streams of ``counts`` (b,)
    predictions, and the standard error of that gain over the streams (nan with one stream)."""
    n, b = counts.sum(), len(counts)
    gain = (than.sum() - nats.sum()) / n  # nats/char
    spread = (than - nats) - gain * counts  # each stream's gain less its share of the mean (b,)
    se = np.sqrt(b / (b - 1) * np.sum(spread**2)) / n if b > 1 else float("nan")
    return float(gain), float(se)


class Validation:
    """The validation passes of one run over ``val_ids`` (m,)."""

    def __init__(self, ck: Checkpoint, val_ids: np.ndarray, by: Gradients, rep: Reporter):
        self.ck, self.val_ids, self.by, self.rep = ck, val_ids, by, rep
        self.last, self.last_average = None, None  # this run's latest scores, nats/char
        self.seconds = 0.0  # spent scoring

    @property
    def models(self) -> int:
        """How many sets of weights each pass scores."""
        return 1 if self.ck.average is None else 2

    @property
    def temps(self) -> tuple:
        """The temperatures this pass scores at (1 alone without --calibrate)."""
        return temps_around(self.ck.served_temp) if self.ck.train_config.calibrate else (1.0,)

    def _streams(self, params, temps: tuple) -> tuple[np.ndarray, np.ndarray]:
        """Nats of each validation stream at each of ``temps`` (b, K), and its predictions (b,)."""
        nats, counts = stream_nll(params, self.ck.model_config, self.val_ids, batch=64, by=self.by, warm=WARM,
                                  temps=temps if len(temps) > 1 else ())  # (): as before calibration, to the bit
        return nats.reshape(len(counts), -1), counts

    @staticmethod
    def _fitted(nats: np.ndarray, temps: tuple) -> tuple[np.ndarray, float]:
        """The streams' nats (b,) at the one of ``temps`` where ``nats`` (b, K) score best overall, and it."""
        k = int(np.argmin(nats.sum(axis=0)))
        return nats[:, k], temps[k]

    def run(self, elapsed: float, note: str) -> float | None:
        """One pass at training second ``elapsed``: score, keep the best, note it; the weights' score (None:
        nothing to validate on). ``note`` ends the line said about it."""
        ck = self.ck
        self.by.align(*([ck.params, ck.opt_state] + ([ck.average] if ck.average is not None else [])))
        if len(self.val_ids) < 2:
            return None
        t0 = time.monotonic()
        temps = self.temps
        plain = temps.index(1.0)
        nats, counts = self._streams(ck.params, temps)  # (b, K), (b,)
        n = counts.sum()
        self.last = float(nats[:, plain].sum() / n)
        ck.history["val"].append([ck.step, self.last, elapsed])
        rows, temp = self._fitted(nats, temps)
        kind, weights = "weights", ck.params
        if ck.average is not None and ck.average_steps:
            average = self._streams(ck.average, temps)[0]
            self.last_average = float(average[:, plain].sum() / n)
            ck.history["avg"].append([ck.step, self.last_average, elapsed])
            average_rows, average_temp = self._fitted(average, temps)
            if not clearly_better(rows, average_rows, counts):
                rows, temp, kind, weights = average_rows, average_temp, "average", ck.average
        best = float(rows.sum() / n)
        self.seconds += time.monotonic() - t0
        if ck.best_val is None or best < ck.best_val:
            ck.best_val, ck.best_step = best, ck.step
            if ck.train_config.serve == "best":
                ck.served = calibrated(weights, temp)
                ck.served_kind, ck.served_step, ck.served_temp = kind, ck.step, temp
        average = "" if self.last_average is None else f", average {self.last_average:.4f}"
        fitted = f", {kind} at temperature {temp:.2f} {best:.4f}" if len(temps) > 1 else ""
        self.rep.note(f"step {ck.step}: val {nats_and_bits(self.last)}{average}{fitted}, {note}")
        return self.last

    def out_of_patience(self, elapsed: float) -> str | None:
        """The stderr line that stops the run, if its best has not improved for --patience; else None."""
        ck = self.ck
        passes, seconds = patience_limit(ck.train_config.patience)
        if ck.best_step is None or (passes is None and seconds is None):
            return None
        since = [row for row in ck.history["val"] if row[0] > ck.best_step]
        at_best = next((row[2] for row in reversed(ck.history["val"]) if row[0] == ck.best_step), None)
        if passes is not None and len(since) >= passes:
            waited = f"{len(since)} validation passes"
        elif seconds is not None and at_best is not None and elapsed - at_best >= seconds:
            waited = f"{elapsed - at_best:.0f} s"
        else:
            return None
        return (f"stopping early: validation has not improved for {waited} (--patience {ck.train_config.patience}); "
                f"the best, {ck.best_val:.4f} nats/char, was at step {ck.best_step}")
