"""Recurrent cells: one chunk forward, one chunk backward, one step for sampling.

Every cell sees its input already projected: ``xp`` (T, B, G*H) holds
``x_t @ W_ax + b_a`` for the whole chunk, computed by the model as one matrix
product (or one row lookup for character ids). A cell therefore only runs the
recurrent product ``a_{t-1} @ W_aa`` step by step, which is the part that has to
be sequential.

Arrays are row-major and batched, so the textbook column form
``a_t = tanh(W_aa a_{t-1} + W_ax x_t + b_a)`` reads here as
``a_t = tanh(a_{t-1} @ W_aa + xp_t)`` with W_aa of shape (H, H).

A cell's state is one array (B, S): S = H for the vanilla RNN and the GRU,
S = 2H for the LSTM (h and c side by side). The functions
are pure apart from scratch buffers they allocate; caches are returned, never
kept.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np


def _prev_states(s0, hs, keep):
    """(T, B, H): the state each step started from, after any reset by ``keep``."""
    prev = np.concatenate([s0[None], hs[:-1]])
    if keep is not None:
        prev *= keep
    return prev


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
    dW_aa = _prev_states(a0, hs, keep).reshape(-1, H).T @ dz.reshape(-1, H)
    return dz, dW_aa, carry


def rnn_step(W_aa, xp, a):
    """One step for sampling: xp (B, H) with the bias added, a (B, H) already reset if need be. Returns (h, state)."""
    h = np.tanh(xp + a @ W_aa)
    return h, h


def _sigmoid(z, out=None):
    """Logistic function, in place when out is z; written via tanh to avoid exp overflow."""
    out = np.multiply(z, 0.5, out=out)
    np.tanh(out, out=out)
    out += 1
    out *= 0.5
    return out


def _halved(W_aa, n_sig: int):
    """A copy of W_aa (H, G) with its first ``n_sig`` (sigmoid-gate) columns halved.

    sigmoid(z) = (1 + tanh(z / 2)) / 2, so with the sigmoid gates'
    pre-activations halved (xp arrives halved from the model, see
    ``Cell.n_sig``), each step needs a single tanh over all gates and an
    affine fix-up of the sigmoid ones.
    """
    W = W_aa.copy()
    W[:, :n_sig] *= 0.5
    return W


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
    W = _halved(W_aa, 3 * H)
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
    c_prev = _prev_states(s0[:, H:], cs, keep)  # (T, B, H)
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
    dW_aa = _prev_states(s0[:, :H], hs, keep).reshape(-1, H).T @ dz.reshape(-1, 4 * H)
    return dz, dW_aa, np.concatenate([dh_next, dc_next], axis=1)


def lstm_step(W_aa, xp, s):
    """One LSTM step: xp (B, 4H) with the bias added, s (B, 2H) -> (h (B, H), new state (B, 2H))."""
    H = s.shape[1] // 2
    z = xp + s[:, :H] @ W_aa
    _sigmoid(z[:, : 3 * H], out=z[:, : 3 * H])
    g = np.tanh(z[:, 3 * H :])
    c = z[:, H : 2 * H] * s[:, H:] + z[:, :H] * g
    h = z[:, 2 * H : 3 * H] * np.tanh(c)
    return h, np.concatenate([h, c], axis=1)


def gru_forward(W_aa, xp, h0, keep=None):
    """GRU over a chunk; gates in the order reset, update, candidate.

    W_aa (H, 3H); xp (T, B, 3H) with the r, u columns halved, overwritten
    with [r, u, n]; h0 (B, H).
    Returns (hs (T, B, H), h_last (B, H), cache).

        [a_r, a_u, a_n] = h_{t-1} @ W_aa
        r = sigmoid(x_r + a_r), u = sigmoid(x_u + a_u)
        n = tanh(x_n + r * a_n)
        h_t = (1 - u) * n + u * h_{t-1}
    The candidate's recurrent part has no bias of its own (b_a sits on the input side).
    ``keep`` as for rnn_forward.
    """
    T, B, G = xp.shape
    H = G // 3
    W = _halved(W_aa, 2 * H)
    hs = np.empty((T, B, H), dtype=xp.dtype)
    A = np.empty((T, B, G), dtype=xp.dtype)  # h_{t-1} @ W (halved r, u columns)
    tmp = np.empty((B, H), dtype=xp.dtype)
    h = h0
    for t in range(T):
        if keep is not None:
            h = h * keep[t]
        z, a = xp[t], A[t]
        np.matmul(h, W, out=a)
        ru = z[:, : 2 * H]
        ru += a[:, : 2 * H]
        np.tanh(ru, out=ru)
        ru *= 0.5
        ru += 0.5  # r, u
        n = z[:, 2 * H :]
        np.multiply(z[:, :H], a[:, 2 * H :], out=tmp)
        n += tmp
        np.tanh(n, out=n)
        np.subtract(h, n, out=hs[t])  # h_t = n + u * (h_{t-1} - n)
        hs[t] *= z[:, H : 2 * H]
        hs[t] += n
        h = hs[t]
    return hs, h.copy(), (h0, xp, hs, A[:, :, 2 * H :], keep)


def gru_backward(W_aa, cache, dhs, trace=None):
    """Backpropagate a chunk through the GRU. Returns (dxp (T, B, 3H), dW_aa, dh0 (B, H)).

    ``trace`` as for rnn_backward.
    """
    h0, gates, hs, an, keep = cache
    T, B, H = hs.shape
    r, u, n = gates[:, :, :H], gates[:, :, H : 2 * H], gates[:, :, 2 * H :]
    # chunk-wide factors that do not depend on the backward recurrence
    one_minus_u_dn = (1 - u) * (1 - n * n)  # d n_pre / d h_t, through (1 - u) and tanh'
    h_prev = _prev_states(h0, hs, keep)  # (T, B, H)
    du_fac = (h_prev - n) * u * (1 - u)  # d u_pre / d h_t
    dr_fac = an * r * (1 - r)  # d r_pre / d n_pre
    dxp = np.empty_like(gates)  # gradient of the input-side pre-activations
    dah = np.empty_like(gates)  # gradient of h_{t-1} @ W_aa
    dh_next = np.zeros((B, H), dtype=hs.dtype)
    W_aa_T = np.ascontiguousarray(W_aa.T)  # (G*H, H): BLAS runs a row-major copy ~1.5x faster per step than the transposed view
    for t in range(T - 1, -1, -1):
        dh = dhs[t]
        dh += dh_next
        dx, da = dxp[t], dah[t]
        dzn = dx[:, 2 * H :]
        np.multiply(dh, one_minus_u_dn[t], out=dzn)
        np.multiply(dzn, r[t], out=da[:, 2 * H :])
        np.multiply(dzn, dr_fac[t], out=dx[:, :H])
        np.multiply(dh, du_fac[t], out=dx[:, H : 2 * H])
        da[:, : 2 * H] = dx[:, : 2 * H]
        np.matmul(da, W_aa_T, out=dh_next)
        dh *= u[t]
        dh_next += dh
        if keep is not None:
            dh_next *= keep[t]
        if trace is not None:
            trace.append(dh_next.copy())
    dW_aa = h_prev.reshape(-1, H).T @ dah.reshape(-1, 3 * H)
    return dxp, dW_aa, dh_next


def gru_step(W_aa, xp, h):
    """One GRU step: xp (B, 3H) with the bias added, h (B, H) -> (h, h).

    On the transposes (3H, B) each gate is one contiguous block of rows, so the
    gates' element-wise work runs over contiguous memory (faster for large B).
    """
    H = h.shape[1]
    a = W_aa.T @ h.T  # (3H, B), fresh: the gates are computed in it, in place
    xt = xp.T  # (3H, B)
    ru = a[: 2 * H]
    ru += xt[: 2 * H]
    _sigmoid(ru, out=ru)
    n = a[2 * H :]
    n *= ru[:H]
    n += xt[2 * H :]
    np.tanh(n, out=n)
    h_new = h.T - n
    h_new *= ru[H:]
    h_new += n  # n + u * (h - n), (H, B)
    return h_new.T, h_new.T


def mgru_forward(W_aa, xp, h0, keep=None):
    """GRU whose recurrent terms are scaled per input: gates in the order reset, update, candidate.

    W_aa (H, 3H); xp (T, B, 6H): [x_t @ W_ax + b_a | s_t], the input side and
    the scales of the recurrent terms, the r, u columns of both halved; the
    first 3H columns are overwritten with [r, u, n]; h0 (B, H).
    Returns (hs (T, B, H), h_last (B, H), cache).

        [a_r, a_u, a_n] = s_t * (h_{t-1} @ W_aa)      # s_t (B, 3H): a scale per column, read from the input
        r = sigmoid(x_r + a_r), u = sigmoid(x_u + a_u)
        n = tanh(x_n + r * a_n)
        h_t = (1 - u) * n + u * h_{t-1}
    With s_t = 1 this is the GRU; with them, each input character chooses
    how much of each recurrent column it lets through (a multiplicative
    interaction of input and state, for one elementwise product a step).
    ``keep`` as for rnn_forward.
    """
    T, B, G2 = xp.shape
    H = G2 // 6
    G = 3 * H
    hs = np.empty((T, B, H), dtype=xp.dtype)
    A = np.empty((T, B, G), dtype=xp.dtype)  # h_{t-1} @ W_aa, unscaled
    sa = np.empty((B, G), dtype=xp.dtype)  # the scaled recurrent terms of one step
    tmp = np.empty((B, H), dtype=xp.dtype)
    h = h0
    for t in range(T):
        if keep is not None:
            h = h * keep[t]
        z = xp[t]
        np.matmul(h, W_aa, out=A[t])
        np.multiply(A[t], z[:, G:], out=sa)
        ru = z[:, : 2 * H]
        ru += sa[:, : 2 * H]
        np.tanh(ru, out=ru)
        ru *= 0.5
        ru += 0.5  # r, u
        n = z[:, 2 * H : G]
        np.multiply(z[:, :H], sa[:, 2 * H :], out=tmp)
        n += tmp
        np.tanh(n, out=n)
        np.subtract(h, n, out=hs[t])  # h_t = n + u * (h_{t-1} - n)
        hs[t] *= z[:, H : 2 * H]
        hs[t] += n
        h = hs[t]
    return hs, h.copy(), (h0, xp, hs, A, keep)


def mgru_backward(W_aa, cache, dhs, trace=None):
    """Backpropagate a chunk through the scaled GRU. Returns (dxp (T, B, 6H), dW_aa, dh0 (B, H)).

    dxp's last 3H columns are the gradient of the scales s_t. ``trace`` as for rnn_backward.
    """
    h0, xp, hs, A, keep = cache
    T, B, H = hs.shape
    G = 3 * H
    r, u, n = xp[:, :, :H], xp[:, :, H : 2 * H], xp[:, :, 2 * H : G]
    s_ru = xp[:, :, G : G + 2 * H] * 2  # (T, B, 2H) the r, u scales, undone from halving
    s_n = xp[:, :, G + 2 * H :]  # (T, B, H)
    # chunk-wide factors that do not depend on the backward recurrence
    one_minus_u_dn = (1 - u) * (1 - n * n)  # d n_pre / d h_t, through (1 - u) and tanh'
    h_prev = _prev_states(h0, hs, keep)  # (T, B, H)
    du_fac = (h_prev - n) * u * (1 - u)  # d u_pre / d h_t
    dr_fac = s_n * A[:, :, 2 * H :] * r * (1 - r)  # d r_pre / d n_pre
    r_sn = r * s_n  # d n_pre / d (h_{t-1} @ W_aa)_n
    dxp = np.empty((T, B, 2 * G), dtype=hs.dtype)
    dah = np.empty((T, B, G), dtype=hs.dtype)  # gradient of h_{t-1} @ W_aa
    dh_next = np.zeros((B, H), dtype=hs.dtype)
    W_aa_T = np.ascontiguousarray(W_aa.T)
    for t in range(T - 1, -1, -1):
        dh = dhs[t]
        dh += dh_next
        dx, da = dxp[t], dah[t]
        dzn = dx[:, 2 * H : G]
        np.multiply(dh, one_minus_u_dn[t], out=dzn)
        np.multiply(dzn, r_sn[t], out=da[:, 2 * H :])
        np.multiply(dzn, dr_fac[t], out=dx[:, :H])
        np.multiply(dh, du_fac[t], out=dx[:, H : 2 * H])
        np.multiply(dx[:, : 2 * H], s_ru[t], out=da[:, : 2 * H])
        np.matmul(da, W_aa_T, out=dh_next)
        dh *= u[t]
        dh_next += dh
        if keep is not None:
            dh_next *= keep[t]
        if trace is not None:
            trace.append(dh_next.copy())
    # the scales' gradient: the scaled terms' gradient times the unscaled terms
    np.multiply(dxp[:, :, : 2 * H], A[:, :, : 2 * H], out=dxp[:, :, G : G + 2 * H])
    np.multiply(dxp[:, :, 2 * H : G], r, out=dxp[:, :, G + 2 * H :])
    dxp[:, :, G + 2 * H :] *= A[:, :, 2 * H :]
    dW_aa = h_prev.reshape(-1, H).T @ dah.reshape(-1, G)
    return dxp, dW_aa, dh_next


def mgru_step(W_aa, xp, h):
    """One scaled-GRU step: xp (B, 6H) = [input side with the bias | scale offsets], h (B, H) -> (h, h).

    The scales are 1 + the offsets (the model's parameters hold the offsets).
    """
    H = h.shape[1]
    G = 3 * H
    a = h @ W_aa  # (B, 3H), fresh
    a *= xp[:, G:] + 1  # the scaled recurrent term
    ru = a[:, : 2 * H]
    ru += xp[:, : 2 * H]
    _sigmoid(ru, out=ru)
    n = a[:, 2 * H :]
    n *= ru[:, :H]
    n += xp[:, 2 * H : G]
    np.tanh(n, out=n)
    h_new = h - n
    h_new *= ru[:, H:]
    h_new += n
    return h_new, h_new


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
