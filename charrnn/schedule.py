"""Learning-rate schedules: a pure function of the step (and, for a timed run, its seconds)."""
from __future__ import annotations

import math

from charrnn.config import TrainConfig


def _cosine(high: float, low: float, progress: float) -> float:
    """From ``high`` at progress 0 down to ``low`` at 1 and after."""
    return low + (high - low) * 0.5 * (1 + math.cos(math.pi * min(1.0, max(0.0, progress))))


def lr_at(step: int, cfg: TrainConfig, run_seconds: float = 0.0) -> float:
    """The learning rate for optimizer step ``step`` (1-based), ``run_seconds`` into this run.

    Linear warm-up over the first ``warmup`` steps; then one of: cosine decay
    from lr to lr * min_lr_frac over ``cosine_steps`` steps, cosine decay
    over ``cosine_seconds`` of this run (a --time budget), or step decay
    (multiply by ``lr_decay`` every ``lr_decay_every`` steps).
    """
    lr = cfg.lr
    if cfg.warmup and step <= cfg.warmup:
        return lr * step / cfg.warmup
    if cfg.cosine_steps:
        span = max(1, cfg.cosine_steps - cfg.warmup)
        return _cosine(lr, lr * cfg.min_lr_frac, (step - cfg.warmup) / span)
    if cfg.cosine_seconds:
        return _cosine(lr, lr * cfg.min_lr_frac, run_seconds / cfg.cosine_seconds)
    if cfg.lr_decay_every and cfg.lr_decay != 1.0:
        return lr * cfg.lr_decay ** (step // cfg.lr_decay_every)
    return lr


def final_lr(lr_from: float, floor: float, done: int, span: int) -> float:
    """The learning rate ``done`` steps (1..span) into the final anneal that ends a run out of patience: a cosine
    from ``lr_from`` (the rate when patience ran out) down to ``floor`` (lr * min_lr_frac) over ``span`` steps."""
    return _cosine(lr_from, min(floor, lr_from), done / span)
