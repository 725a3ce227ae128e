"""Recurrent cells: one chunk forward, one chunk backward, one step for sampling.

Every cell sees its input already projected: ``xp`` (T, B, G*H) holds
``x_t @ W_ax + b_a`` for the whole chunk, computed by the model as one matrix
product (or one row lookup for character ids). A cell therefore only runs the
recurrent product ``a_{t-1} @ W_aa`` step by step, which is the part that has to
be sequential.

Arrays are row-major and batched, so the textbook column form
``a_t = tanh(W_aa a_{t-1} + W_ax x_t + b_a)`` reads here as
``a_t = tanh(a_{t-1} @ W_aa + xp_t)`` with W_aa of shape (H, H).

A cell's state is one array (B, S): S = H for the vanilla RNN and the GRUs,
S = 2H for the LSTM (h and c side by side). The functions
are pure apart from scratch buffers they allocate; caches are returned, never
kept. The RNN and LSTM kernels are here, the two GRUs' in charrnn.gru_cells,
and CELLS says how each plugs into the model.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from charrnn.gate_math import halved, prev_states, sigmoid
from charrnn.gru_cells import gru_backward, gru_forward, gru_step, mgru_backward, mgru_forward, mgru_step


def rnn_forward(W_aa, xp, a0, keep=None):
    """Vanilla tanh RNN over a chunk.

    W_aa (H, H); xp (T, B, H), overwritten with the outputs; a0 (B, H).
    ``keep`` (T, B, 1) of 0/1, if given, multiplies the state entering step t
    (records mode: 0 resets the state before a newline).
    Returns (hs (T, B, H), a_last (B, H), cache).
    """
    tmp = np.empty_like(a0)  # (B, H) scratch for the recurrent product
    a = a0
    for t in range(xp.shape[0]):
        if keep is not None:
            a = a * keep[t]
        z = xp[t]
        np.matmul(a, W_aa, out=tmp)
        z += tmp
        np.tanh(z, out=z)  # a_t = tanh(a_{t-1} @ W_aa + x_t @ W_ax + b_a)
        a = z
    return xp, a.copy(), (a0, xp, keep)


def rnn_backward(W_aa, cache, dhs, trace=None):
    """Backpropagate a chunk through the RNN.

    dhs (T, B, H): dLoss/da_t from above (output layer or next layer), overwritten.
    Returns (dxp (T, B, H), dW_aa (H, H), da0 (B, H)). If ``trace`` is a list,
    dLoss/da_{t-1} (B, S) is appended after each step t, from the last step back.
    """
    a0, hs, keep = cache
    H = a0.shape[1]
    dtanh = np.multiply(hs, hs)  # (T, B, H)
    np.subtract(1, dtanh, out=dtanh)  # tanh' = 1 - a_t^2
    dz = dhs
    carry = np.zeros_like(a0)  # dLoss/da_t flowing back from step t+1
    W_aa_T = np.ascontiguousarray(W_aa.T)  # (G*H, H): BLAS runs a row-major copy ~1.5x faster per step than the transposed view
    for t in range(hs.shape[0] - 1, -1, -1):
        d = dz[t]
        d += carry
        d *= dtanh[t]  # dLoss/dz_t, z_t the pre-activation
        np.matmul(d, W_aa_T, out=carry)
        if keep is not None:
            carry *= keep[t]
        if trace is not None:
            trace.append(carry.copy())
    # dW_aa = sum_t a_{t-1}^T dz_t, as one product instead of T small ones
    dW_aa = prev_states(a0, hs, keep).reshape(-1, H).T @ dz.reshape(-1, H)
    return dz, dW_aa, carry


def rnn_step(W_aa, xp, a):
    """One step for sampling: xp (B, H) with the bias added, a (B, H) already reset if need be. Returns (h, state)."""
    h = np.tanh(xp + a @ W_aa)
    return h, h


def lstm_forward(W_aa, xp, s0, keep=None):
    """LSTM over a chunk; gates in the order input, forget, output, candidate.

    W_aa (H, 4H); xp (T, B, 4H) with the i, f, o columns halved, overwritten
    with the activated gates;
    s0 (B, 2H) = [h, c]. Returns (hs (T, B, H), s_last (B, 2H), cache).

        i, f, o = sigmoid(.), g = tanh(.) of  xp_t + h_{t-1} @ W_aa
        c_t = f * c_{t-1} + i * g
        h_t = o * tanh(c_t)
    ``keep`` as for rnn_forward, applied to h and c.
    """
    T, B, G = xp.shape
    H = G // 4
    W = halved(W_aa, 3 * H)
    hs = np.empty((T, B, H), dtype=xp.dtype)
    cs = np.empty((T, B, H), dtype=xp.dtype)  # c_t
    tcs = np.empty((T, B, H), dtype=xp.dtype)  # tanh(c_t)
    tmp = np.empty((B, G), dtype=xp.dtype)
    ig = np.empty((B, H), dtype=xp.dtype)
    h, c = s0[:, :H], s0[:, H:]
    for t in range(T):
        if keep is not None:
            h, c = h * keep[t], c * keep[t]
        z = xp[t]
        np.matmul(h, W, out=tmp)
        z += tmp
        np.tanh(z, out=z)
        sig = z[:, : 3 * H]
        sig *= 0.5
        sig += 0.5  # i, f, o = sigmoid of the (halved) pre-activations
        i, f, o, g = z[:, :H], z[:, H : 2 * H], z[:, 2 * H : 3 * H], z[:, 3 * H :]
        np.multiply(f, c, out=cs[t])
        np.multiply(i, g, out=ig)
        cs[t] += ig
        np.tanh(cs[t], out=tcs[t])
        np.multiply(o, tcs[t], out=hs[t])
        h, c = hs[t], cs[t]
    s_last = np.concatenate([h, c], axis=1)
    return hs, s_last, (s0, xp, hs, cs, tcs, keep)


def lstm_backward(W_aa, cache, dhs, trace=None):
    """Backpropagate a chunk through the LSTM. Returns (dxp (T, B, 4H), dW_aa, ds0 (B, 2H)).

    ``trace`` as for rnn_backward, with the state gradient [dh, dc] (B, 2H).
    """
    s0, gates, hs, cs, tcs, keep = cache
    T, B, H = hs.shape
    c_prev = prev_states(s0[:, H:], cs, keep)  # (T, B, H)
    # everything that does not depend on the backward recurrence, for the whole chunk at once
    dact = gates * (1 - gates)  # (T, B, 4H): sigmoid' for i, f, o ...
    dact[:, :, 3 * H :] = 1 - gates[:, :, 3 * H :] ** 2  # ... and tanh' for g
    o_dtc = gates[:, :, 2 * H : 3 * H] * (1 - tcs * tcs)  # o_t * tanh'(c_t)
    dz = np.empty_like(gates)  # (T, B, 4H) gradient of the gate pre-activations
    dh_next = np.zeros((B, H), dtype=hs.dtype)
    dc_next = np.zeros((B, H), dtype=hs.dtype)
    dc = np.empty((B, H), dtype=hs.dtype)
    W_aa_T = np.ascontiguousarray(W_aa.T)  # (G*H, H): BLAS runs a row-major copy ~1.5x faster per step than the transposed view
    for t in range(T - 1, -1, -1):
        i, f, g = gates[t][:, :H], gates[t][:, H : 2 * H], gates[t][:, 3 * H :]
        dh = dhs[t]
        dh += dh_next
        np.multiply(dh, o_dtc[t], out=dc)
        dc += dc_next
        d = dz[t]
        np.multiply(dc, g, out=d[:, :H])  # dL/di
        np.multiply(dc, c_prev[t], out=d[:, H : 2 * H])  # dL/df
        np.multiply(dh, tcs[t], out=d[:, 2 * H : 3 * H])  # dL/do
        np.multiply(dc, i, out=d[:, 3 * H :])  # dL/dg
        d *= dact[t]  # through the gate nonlinearities
        np.multiply(dc, f, out=dc_next)
        np.matmul(d, W_aa_T, out=dh_next)
        if keep is not None:
            dc_next *= keep[t]
            dh_next *= keep[t]
        if trace is not None:
            trace.append(np.concatenate([dh_next, dc_next], axis=1))
    dW_aa = prev_states(s0[:, :H], hs, keep).reshape(-1, H).T @ dz.reshape(-1, 4 * H)
    return dz, dW_aa, np.concatenate([dh_next, dc_next], axis=1)


def lstm_step(W_aa, xp, s):
    """One LSTM step: xp (B, 4H) with the bias added, s (B, 2H) -> (h (B, H), new state (B, 2H))."""
    H = s.shape[1] // 2
    z = xp + s[:, :H] @ W_aa
    sigmoid(z[:, : 3 * H], out=z[:, : 3 * H])
    g = np.tanh(z[:, 3 * H :])
    c = z[:, H : 2 * H] * s[:, H:] + z[:, :H] * g
    h = z[:, 2 * H : 3 * H] * np.tanh(c)
    return h, np.concatenate([h, c], axis=1)


class Cell(NamedTuple):
    """How a cell type plugs into the model."""

    gates: int  # G: the input projection is G*H wide
    n_sig: int  # the first n_sig*H columns are sigmoid gates; forward wants them halved in xp
    state_mult: int  # state width S = state_mult * H
    forward: Callable
    backward: Callable
    step: Callable
    scaled: bool = False  # the input side is 2*G*H wide: G*H more columns of scales of the recurrent term


CELLS = {
    "rnn": Cell(1, 0, 1, rnn_forward, rnn_backward, rnn_step),
    "lstm": Cell(4, 3, 2, lstm_forward, lstm_backward, lstm_step),
    "gru": Cell(3, 2, 1, gru_forward, gru_backward, gru_step),
    "mgru": Cell(3, 2, 1, mgru_forward, mgru_backward, mgru_step, scaled=True),
}
