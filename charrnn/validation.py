"""Validation passes: score the weights and their running average, keep the best to serve, watch patience.

At each pass the run's weights are scored on the validation text, and so is
their running average (charrnn.optim.average_into) when averaging is on.
Whichever scores better, if better than anything before, becomes what the
checkpoint serves (``--serve best``); with ``--serve last`` the file serves
the last step's weights as they are. A run whose best has not improved for
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
from charrnn.score import total_nll


# Validation reads its text as 64 streams at once, each first reading this many characters before its part, so that
# it scores what a reading of the whole text would. A GRU-512 trained on tiny-shakespeare's first 90% read its
# 100,385 characters of validation at 1.2940 nats/char as 64 streams from a zero state, and at 1.2895 with 64 or more
# characters of warm-up, as when read once; with --val-frac 0.03 (30,115 characters), 1.3000 against 1.2892.
WARM = 128


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

    def _nats(self, params) -> float:
        total, count = total_nll(params, self.ck.model_config, self.val_ids, batch=64, by=self.by, warm=WARM)
        return total / count

    def run(self, elapsed: float, note: str) -> float | None:
        """One pass at training second ``elapsed``: score, keep the best, note it; the weights' score (None:
        nothing to validate on). ``note`` ends the line said about it."""
        ck = self.ck
        self.by.align(*([ck.params, ck.opt_state] + ([ck.average] if ck.average is not None else [])))
        if len(self.val_ids) < 2:
            return None
        t0 = time.monotonic()
        self.last = self._nats(ck.params)
        ck.history["val"].append([ck.step, self.last, elapsed])
        best, kind, weights = self.last, "weights", ck.params
        if ck.average is not None and ck.average_steps:
            self.last_average = self._nats(ck.average)
            ck.history["avg"].append([ck.step, self.last_average, elapsed])
            if self.last_average < best:
                best, kind, weights = self.last_average, "average", ck.average
        self.seconds += time.monotonic() - t0
        if ck.best_val is None or best < ck.best_val:
            ck.best_val, ck.best_step = best, ck.step
            if ck.train_config.serve == "best":
                ck.served = {k: v.copy() for k, v in weights.items()}
                ck.served_kind, ck.served_step = kind, ck.step
        average = "" if self.last_average is None else f", average {self.last_average:.4f}"
        self.rep.note(f"step {ck.step}: val {nats_and_bits(self.last)}{average}, {note}")
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
