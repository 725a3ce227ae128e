"""Numerical gradient checking: analytic BPTT gradients against central differences."""
from __future__ import annotations

import numpy as np

from charrnn import network
from charrnn.config import ModelConfig
from charrnn.numerics import make_rng


def numeric_and_analytic(
    cfg: ModelConfig, seq_len: int = 5, batch: int = 3, seed: int = 0, eps: float = 1e-4, dropout: "float | network.Dropout" = 0.0
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """For every parameter, (analytic dL/dw, central difference (L(w+eps) - L(w-eps)) / (2 eps)).

    Builds a float64 model of ``cfg``'s shape, perturbs its weights away from
    their initial values, and feeds random ids with a non-zero initial state
    (so the gradient through h0's use is exercised). ``dropout`` (a float, or
    a network.Dropout for the recurrent weights too) draws the same masks at
    every evaluation, so the loss is one smooth function. eps = 1e-4 keeps the
    rounding noise of float64 losses well below the checked tolerance.
    """
    cfg = ModelConfig(**{**vars(cfg), "dtype": "float64"})
    rng = make_rng(seed)
    params = network.init_params(cfg, rng)
    for p in params.values():
        p += rng.normal(0.0, 0.1, p.shape)  # non-zero biases, asymmetric weights
    x = rng.integers(0, cfg.vocab_size, (seq_len, batch))
    y = rng.integers(0, cfg.vocab_size, (seq_len, batch))
    s0 = np.tanh(rng.normal(0.0, 0.5, network.state_shape(cfg, batch)))  # a reachable state

    def loss():  # forward only, with the same dropout masks at every evaluation
        nll, _ = network.chunk_nll(params, cfg, x, y, s0, dropout, np.random.default_rng(seed + 1))
        return float(nll.sum(dtype=np.float64) / nll.size)

    _, grads, _ = network.loss_and_grads(params, cfg, x, y, s0, dropout, np.random.default_rng(seed + 1))
    out = {}
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
        out[name] = (grads[name], num)
    return out


def norm_error(a: np.ndarray, n: np.ndarray) -> float:
    """||a - n|| / (||a|| + ||n||): one relative error for a whole parameter (0 when both are 0).

    This is the verdict. Per element, |a - n| / (|a| + |n|) blows up where both
    numbers are tiny (1e-9 against 1e-9 + rounding noise) although the
    gradient is right; over the whole array, tiny entries weigh what they are.
    """
    scale = np.linalg.norm(a) + np.linalg.norm(n)
    return float(np.linalg.norm(a - n) / scale) if scale > 0 else 0.0


def worst_element_error(a: np.ndarray, n: np.ndarray) -> float:
    """max |a - n| / max(|a| + |n|, 1e-7): the worst single entry, for looking closer (not the verdict)."""
    return float(np.max(np.abs(a - n) / np.maximum(np.abs(a) + np.abs(n), 1e-7)))


def check_gradients(
    cfg: ModelConfig, seq_len: int = 5, batch: int = 3, seed: int = 0, eps: float = 1e-4, dropout: "float | network.Dropout" = 0.0
) -> dict[str, float]:
    """Relative error (see :func:`norm_error`) per parameter between loss_and_grads and central differences."""
    pairs = numeric_and_analytic(cfg, seq_len, batch, seed, eps, dropout)
    return {name: norm_error(a, n) for name, (a, n) in pairs.items()}
