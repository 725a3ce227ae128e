"""Learning-rate schedules: a pure function of the step."""
from __future__ import annotations

import math

from charrnn.config import TrainConfig


def lr_at(step: int, cfg: TrainConfig) -> float:
    """The learning rate for optimizer step ``step`` (1-based).

    Linear warm-up over the first ``warmup`` steps; then either cosine decay
    from lr to lr * min_lr_frac over ``cosine_steps`` steps, or step decay
    (multiply by ``lr_decay`` every ``lr_decay_every`` steps).
    """
    lr = cfg.lr
    if cfg.warmup and step <= cfg.warmup:
        return lr * step / cfg.warmup
    if cfg.cosine_steps:
        span = max(1, cfg.cosine_steps - cfg.warmup)
        progress = min(1.0, (step - cfg.warmup) / span)
        floor = lr * cfg.min_lr_frac
        return floor + (lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    if cfg.lr_decay_every and cfg.lr_decay != 1.0:
        return lr * cfg.lr_decay ** (step // cfg.lr_decay_every)
    return lr
