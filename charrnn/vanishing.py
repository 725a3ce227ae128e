"""Measuring vanishing gradients: how dL_t/da_{t-k} shrinks with the distance k."""
from __future__ import annotations

import numpy as np

from charrnn import network
from charrnn.cells import CELLS
from charrnn.checkpoint import Checkpoint
from charrnn.numerics import softmax

WARMUP = 32  # characters read before each window, so its first state is a realistic one


def gradient_norms(ck: Checkpoint, ids: np.ndarray, span: int, samples: int, rng: np.random.Generator) -> np.ndarray:
    """Mean ||dL_t / da_{t-k}|| for k = 0..span, over ``samples`` random positions t.

    L_t is the cross-entropy at position t alone and a_{t-k} the top layer's
    state k steps earlier (for an LSTM, h and c together). Positions are
    drawn uniformly from ``ids`` (n,); each window of span+1 characters starts
    from the state reached after reading the WARMUP characters before it.
    Returns (span + 1,) norms.
    """
    cfg, params = ck.model_config, ck.params
    W = span + 1
    need = WARMUP + W + 1
    if len(ids) < need:
        raise ValueError(f"need at least {need} characters for --span {span}")
    starts = rng.integers(0, len(ids) - need + 1, size=samples)
    B = len(starts)
    warm = np.stack([ids[s : s + WARMUP] for s in starts], axis=1)  # (WARMUP, B)
    x = np.stack([ids[s + WARMUP : s + WARMUP + W] for s in starts], axis=1)  # (W, B)
    y_last = np.array([ids[s + WARMUP + W] for s in starts])  # (B,) target at t = W-1
    state = network.zero_state(cfg, B)
    _, state = network.chunk_logits(params, cfg, warm, state)
    top, _, caches = network.layers_forward(params, cfg, x, state)
    h_t = top[-1]  # (B, H), or (B, L*H) with skip
    p = softmax(h_t @ params["W_ya"] + params["b_y"])  # (B, V)
    p[np.arange(B), y_last] -= 1  # dL_t/dlogits for each stream's own loss
    H = cfg.hidden
    dhs = np.zeros(top.shape[:2] + (H,), dtype=top.dtype)  # (W, B, H): the top layer's, also with skip
    dhs[-1] = (p @ params["W_ya"].T)[:, -H:].astype(top.dtype)  # with skip, W_ya's last H rows read the top layer
    norms = [np.linalg.norm(dhs[-1].astype(np.float64), axis=1)]  # k = 0: dL_t/da_t
    trace: list = []
    top_cache = caches[-1]
    CELLS[cfg.cell].backward(top_cache.W_aa, top_cache.cell, dhs.copy(), trace)
    norms += [np.linalg.norm(g.astype(np.float64), axis=1) for g in trace]  # k = 1..W
    return np.array([n.mean() for n in norms[: span + 1]])
