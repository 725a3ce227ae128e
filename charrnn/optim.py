"""Optimizers and gradient clipping over dicts of named arrays.

An optimizer's state is a flat dict of arrays keyed ``"<slot>/<param name>"``
(e.g. ``"m/W_aa.0"``) plus ``"t"``, the number of updates so far, so that it
saves into a checkpoint as it is. Updates happen in place.
"""
from __future__ import annotations

import numpy as np

from charrnn.config import TrainConfig

SLOTS = {"adam": ("m", "v"), "adagrad": ("g2",), "sgd": ("vel",)}

# The input lookup table: one row of input weights per character, entries of
# order 1. Adam moves every entry by about lr a step whatever its size, so at
# lr the table would change, relative to its size, about 20 times more slowly
# than the 1/sqrt(H)-sized matrices (H=384); it learns at lr *
# TrainConfig.lookup_lr instead. (A framework's Embedding -> Linear gets a
# similar effect from the factorisation.)
LOOKUP = "W_ax.0"


def rates(params, cfg: TrainConfig, lr: float) -> dict[str, float]:
    """The learning rate of each parameter: ``lr``, and lr * cfg.lookup_lr for the lookup table."""
    return {name: lr * cfg.lookup_lr if name == LOOKUP else lr for name in params}


def init_state(params: dict[str, np.ndarray], optimizer: str) -> dict[str, np.ndarray]:
    """Zeroed state for ``optimizer``: one array per slot and parameter, plus the step count."""
    state = {"t": np.zeros((), dtype=np.int64)}
    for slot in SLOTS[optimizer]:
        for name, p in params.items():
            state[f"{slot}/{name}"] = np.zeros_like(p)
    return state


def update(params, grads, state, cfg: TrainConfig, lr: float) -> None:
    """Apply one update of ``cfg.optimizer`` with learning rate ``lr``, in place."""
    state["t"] += 1
    t = int(state["t"])
    lrs = rates(params, cfg, lr)
    if cfg.optimizer == "adam":
        correction = float(np.sqrt(1 - cfg.beta2**t) / (1 - cfg.beta1**t))  # bias corrections folded into the step
        for name, p in params.items():
            g, m, v = grads[name], state[f"m/{name}"], state[f"v/{name}"]
            a = np.empty_like(p)  # one scratch array, in p's dtype: no float64 temporaries for a float32 model
            m *= cfg.beta1
            np.multiply(g, 1 - cfg.beta1, out=a)
            m += a
            v *= cfg.beta2
            np.multiply(g, g, out=a)
            a *= 1 - cfg.beta2
            v += a
            np.sqrt(v, out=a)
            a += cfg.eps
            np.divide(m, a, out=a)
            a *= p.dtype.type(lrs[name] * correction)
            p -= a
    elif cfg.optimizer == "adagrad":
        for name, p in params.items():
            g, g2 = grads[name], state[f"g2/{name}"]
            g2 += g * g
            p -= lrs[name] * g / np.sqrt(g2 + cfg.eps)
    elif cfg.optimizer == "sgd":
        for name, p in params.items():
            vel = state[f"vel/{name}"]
            vel *= cfg.momentum
            vel += grads[name]
            p -= lrs[name] * vel
    else:  # pragma: no cover - config.check() rejects this first
        raise ValueError(cfg.optimizer)
    if cfg.weight_decay:  # decoupled (AdamW-style): shrink the weight matrices, not the biases
        for name, p in params.items():
            if p.ndim == 2:
                p *= p.dtype.type(1.0 - lrs[name] * cfg.weight_decay)


def global_norm(grads: dict[str, np.ndarray]) -> float:
    """sqrt of the sum of squares of every gradient entry (summed per array by BLAS)."""
    total = 0.0
    for g in grads.values():
        flat = g.reshape(-1)
        total += float(np.dot(flat, flat))
    return float(np.sqrt(total))


def clip_grads(grads: dict[str, np.ndarray], mode: str, limit: float) -> float:
    """Clip in place and return the global norm measured before clipping.

    mode "norm" rescales every gradient by limit/norm when norm > limit;
    mode "value" clips each element to [-limit, limit]. limit 0 does nothing.
    """
    norm = global_norm(grads)
    if limit > 0 and np.isfinite(norm):
        if mode == "norm" and norm > limit:
            scale = limit / norm
            for g in grads.values():
                g *= scale
        elif mode == "value":
            for g in grads.values():
                np.clip(g, -limit, limit, out=g)
    return norm


def average_into(average: dict[str, np.ndarray], params: dict[str, np.ndarray], steps: int, frac: float) -> None:
    """Fold ``params`` into their running ``average`` in place; ``steps`` counts the steps averaged, this one too.

    Polynomial-decay averaging: average += (eta + 1) / (steps + eta) * (params - average),
    with eta = 1/frac - 1. Step s weighs about (s / steps)^eta, so the average
    covers about the last ``frac`` of the steps so far, whatever the run's
    length; the first step copies the weights.
    """
    eta = 1.0 / frac - 1.0
    w = (eta + 1.0) / (steps + eta)
    for name, p in params.items():
        a = average[name]
        a += (p - a) * a.dtype.type(w)
