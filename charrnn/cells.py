"""Recurrent cells: one chunk forward, one chunk backward, one step for sampling.

Every cell sees its input already projected: ``xp`` (T, B, G*H) holds
``x_t @ W_ax + b_a`` for the whole chunk, computed by the model as one matrix
product (or one row lookup for character ids). A cell therefore only runs the
recurrent product ``a_{t-1} @ W_aa`` step by step, which is the part that has to
be sequential.

Arrays are row-major and batched, so the textbook column form
``a_t = tanh(W_aa a_{t-1} + W_ax x_t + b_a)`` reads here as
``a_t = tanh(a_{t-1} @ W_aa + xp_t)`` with W_aa of shape (H, H).

A cell's state is one array (B, S): S = H for the vanilla RNN. The functions
are pure apart from scratch buffers they allocate; caches are returned, never
kept.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np


def rnn_forward(W_aa, xp, a0):
    """Vanilla tanh RNN over a chunk.

    W_aa (H, H); xp (T, B, H), overwritten with the outputs; a0 (B, H).
    Returns (hs (T, B, H), a_last (B, H), cache).
    """
    tmp = np.empty_like(a0)  # (B, H) scratch for the recurrent product
    a = a0
    for t in range(xp.shape[0]):
        z = xp[t]
        np.matmul(a, W_aa, out=tmp)
        z += tmp
        np.tanh(z, out=z)  # a_t = tanh(a_{t-1} @ W_aa + x_t @ W_ax + b_a)
        a = z
    return xp, a.copy(), (a0, xp)


def rnn_backward(W_aa, cache, dhs):
    """Backpropagate a chunk through the RNN.

    dhs (T, B, H): dLoss/da_t from above (output layer or next layer), overwritten.
    Returns (dxp (T, B, H), dW_aa (H, H), da0 (B, H)).
    """
    a0, hs = cache
    H = a0.shape[1]
    dtanh = np.multiply(hs, hs)  # (T, B, H)
    np.subtract(1, dtanh, out=dtanh)  # tanh' = 1 - a_t^2
    dz = dhs
    carry = np.zeros_like(a0)  # dLoss/da_t flowing back from step t+1
    W_aa_T = W_aa.T
    for t in range(hs.shape[0] - 1, -1, -1):
        d = dz[t]
        d += carry
        d *= dtanh[t]  # dLoss/dz_t, z_t the pre-activation
        np.matmul(d, W_aa_T, out=carry)
    # dW_aa = sum_t a_{t-1}^T dz_t, as two products instead of T small ones
    dW_aa = a0.T @ dz[0]
    if hs.shape[0] > 1:
        dW_aa += hs[:-1].reshape(-1, H).T @ dz[1:].reshape(-1, H)
    return dz, dW_aa, carry


def rnn_step(W_aa, xp, a):
    """One step for sampling: xp (B, H) with the bias added, a (B, H). Returns (h, state)."""
    h = np.tanh(xp + a @ W_aa)
    return h, h


class Cell(NamedTuple):
    """How a cell type plugs into the model."""

    gates: int  # G: the input projection is G*H wide
    state_mult: int  # state width S = state_mult * H
    forward: Callable
    backward: Callable
    step: Callable


CELLS = {
    "rnn": Cell(1, 1, rnn_forward, rnn_backward, rnn_step),
}
