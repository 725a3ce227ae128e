"""When a training run stops: step, epoch and time limits, durations as people write them, and signals."""
from __future__ import annotations

import re
import signal
import threading
from contextlib import contextmanager
from dataclasses import dataclass

from charrnn.errors import UsageError


@dataclass
class Limits:
    """When to stop: the first limit reached ends training."""

    steps: int | None = None  # total optimizer steps of the model, counting earlier runs
    epochs: float | None = None  # total passes over the training text, counting earlier runs
    seconds: float | None = None  # wall-clock seconds of this run


def parse_duration(text: str) -> float:
    """Seconds in ``90``, ``90s``, ``5m``, ``1h`` or ``1h30m``; raises CharRNNError otherwise."""
    t = text.strip().lower()
    parts = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?", t)
    if not t or not parts or not any(parts.groups()):
        raise UsageError(f"cannot read --time {text!r}; use seconds or a unit, e.g. 90, 90s, 5m, 1h")
    h, m, s = (float(g) if g else 0.0 for g in parts.groups())
    seconds = h * 3600 + m * 60 + s
    if seconds <= 0:
        raise UsageError(f"--time must be positive, not {text!r}")
    return seconds


@contextmanager
def stop_on_signals():
    """While active, SIGINT and SIGTERM ask training to stop after the current step.

    Yields ``should_stop() -> "SIGINT" | "SIGTERM" | None`` for :func:`train`.
    A second Ctrl-C while stopping is ignored, so the final save completes.
    """
    received: list[str] = []

    def handler(signum, frame):
        received.append(signal.Signals(signum).name)

    old = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.signal(sig, handler)
    try:
        yield lambda: received[0] if received else None
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)
