"""Numerical gradient checking: analytic BPTT gradients against central differences."""
from __future__ import annotations

import numpy as np

from charrnn import model
from charrnn.config import ModelConfig


def check_gradients(
    cfg: ModelConfig, seq_len: int = 5, batch: int = 3, seed: int = 0, eps: float = 1e-4, dropout: float = 0.0
) -> dict[str, float]:
    """Max relative error per parameter between loss_and_grads and central differences.

    Builds a float64 model of ``cfg``'s shape, perturbs its weights away from
    their initial values, feeds random ids with a non-zero initial state
    (so the gradient through h0's use is exercised), and for every entry of
    every parameter compares dL/dw with (L(w+eps) - L(w-eps)) / (2 eps).
    Relative error is |a - n| / max(|a| + |n|, 1e-7); eps = 1e-4 keeps the
    rounding noise of float64 losses well below the checked tolerance.
    """
    cfg = ModelConfig(**{**vars(cfg), "dtype": "float64"})
    rng = np.random.default_rng(seed)
    params = model.init_params(cfg, rng)
    for p in params.values():
        p += rng.normal(0.0, 0.1, p.shape)  # non-zero biases, asymmetric weights
    x = rng.integers(0, cfg.vocab_size, (seq_len, batch))
    y = rng.integers(0, cfg.vocab_size, (seq_len, batch))
    s0 = rng.normal(0.0, 0.5, model.state_shape(cfg, batch))
    s0 = np.tanh(s0)  # a reachable state

    def run():  # the same dropout masks at every evaluation
        return model.loss_and_grads(params, cfg, x, y, s0, dropout, np.random.default_rng(seed + 1))

    def loss() -> float:
        return run()[0]

    _, grads, _ = run()
    errors = {}
    for name, p in params.items():
        num = np.zeros_like(p)
        flat, nflat = p.reshape(-1), num.reshape(-1)
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + eps
            up = loss()
            flat[i] = old - eps
            down = loss()
            flat[i] = old
            nflat[i] = (up - down) / (2 * eps)
        a = grads[name]
        errors[name] = float(np.max(np.abs(a - num) / np.maximum(np.abs(a) + np.abs(num), 1e-7)))
    return errors
