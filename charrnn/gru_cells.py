"""The GRU kernels: the GRU, and the GRU whose recurrent terms the input scales (mgru).

Conventions as in charrnn.cells: ``xp`` arrives projected (and, for the
scaled GRU, with the scales beside the projection), sigmoid gates' columns
halved; caches are returned, never kept.
"""
from __future__ import annotations

import numpy as np

from charrnn.gate_math import halved, prev_states, sigmoid


def _forward(W, z, h0, keep, scales=None):
    """The recurrence both GRUs run over a chunk.

    z (T, B, 3H) the input side with the r, u columns halved, overwritten
    with [r, u, n]; W (H, 3H); scales (T, B, 3H) or None. The recurrent
    terms are h_{t-1} @ W, times the scales if any; whichever of W and the
    scales is given halved carries the r, u halving.
    Returns (hs (T, B, H), A (T, B, 3H) = h_{t-1} @ W, unscaled).
    """
    T, B, G = z.shape
    H = G // 3
    hs = np.empty((T, B, H), dtype=z.dtype)
    A = np.empty((T, B, G), dtype=z.dtype)
    sa = None if scales is None else np.empty((B, G), dtype=z.dtype)  # one step's scaled terms
    tmp = np.empty((B, H), dtype=z.dtype)
    h = h0
    for t in range(T):
        if keep is not None:
            h = h * keep[t]
        zt, a = z[t], A[t]
        np.matmul(h, W, out=a)
        if scales is not None:
            a = np.multiply(a, scales[t], out=sa)
        ru = zt[:, : 2 * H]
        ru += a[:, : 2 * H]
        np.tanh(ru, out=ru)
        ru *= 0.5
        ru += 0.5  # r, u
        n = zt[:, 2 * H :]
        np.multiply(zt[:, :H], a[:, 2 * H :], out=tmp)
        n += tmp
        np.tanh(n, out=n)
        np.subtract(h, n, out=hs[t])  # h_t = n + u * (h_{t-1} - n)
        hs[t] *= zt[:, H : 2 * H]
        hs[t] += n
        h = hs[t]
    return hs, A


def _backward(W_aa, dxp, dhs, h0, gates, hs, an, keep, trace, scales=None):
    """The backward recurrence both GRUs run over a chunk. Returns (dW_aa, dh0 (B, H)).

    gates (T, B, 3H) the [r, u, n] of the forward pass; an (T, B, H) the
    candidate's recurrent term as it entered (scaled, if scales); scales
    (T, B, 3H, not halved) or None. Fills the first 3H columns of dxp
    (T, B, >=3H) with the gradient of the input side.
    """
    T, B, H = hs.shape
    r, u, n = gates[:, :, :H], gates[:, :, H : 2 * H], gates[:, :, 2 * H :]
    # chunk-wide factors that do not depend on the backward recurrence
    one_minus_u_dn = (1 - u) * (1 - n * n)  # d n_pre / d h_t, through (1 - u) and tanh'
    h_prev = prev_states(h0, hs, keep)  # (T, B, H)
    du_fac = (h_prev - n) * u * (1 - u)  # d u_pre / d h_t
    dr_fac = an * r * (1 - r)  # d r_pre / d n_pre
    r_n = r if scales is None else r * scales[:, :, 2 * H :]  # d n_pre / d (h_{t-1} @ W_aa)_n
    dah = np.empty((T, B, 3 * H), dtype=hs.dtype)  # gradient of h_{t-1} @ W_aa
    dh_next = np.zeros((B, H), dtype=hs.dtype)
    W_aa_T = np.ascontiguousarray(W_aa.T)  # (G*H, H): BLAS runs a row-major copy ~1.5x faster per step than the transposed view
    for t in range(T - 1, -1, -1):
        dh = dhs[t]
        dh += dh_next
        dx, da = dxp[t], dah[t]
        dzn = dx[:, 2 * H : 3 * H]
        np.multiply(dh, one_minus_u_dn[t], out=dzn)
        np.multiply(dzn, r_n[t], out=da[:, 2 * H :])
        np.multiply(dzn, dr_fac[t], out=dx[:, :H])
        np.multiply(dh, du_fac[t], out=dx[:, H : 2 * H])
        if scales is None:
            da[:, : 2 * H] = dx[:, : 2 * H]
        else:
            np.multiply(dx[:, : 2 * H], scales[t, :, : 2 * H], out=da[:, : 2 * H])
        np.matmul(da, W_aa_T, out=dh_next)
        dh *= u[t]
        dh_next += dh
        if keep is not None:
            dh_next *= keep[t]
        if trace is not None:
            trace.append(dh_next.copy())
    return h_prev.reshape(-1, H).T @ dah.reshape(-1, 3 * H), dh_next


def _step(W_aa, xt, h, scales=None):
    """One step of either GRU on the transposes: xt (3H, B) the input side with the bias, scales (3H, B) or None."""
    H = h.shape[1]
    a = W_aa.T @ h.T  # (3H, B), fresh: the gates are computed in it, in place
    if scales is not None:
        a *= scales
    ru = a[: 2 * H]
    ru += xt[: 2 * H]
    sigmoid(ru, out=ru)
    n = a[2 * H :]
    n *= ru[:H]
    n += xt[2 * H :]
    np.tanh(n, out=n)
    h_new = h.T - n
    h_new *= ru[H:]
    h_new += n  # n + u * (h - n), (H, B)
    return h_new.T, h_new.T


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
    H = xp.shape[2] // 3
    hs, A = _forward(halved(W_aa, 2 * H), xp, h0, keep)
    return hs, hs[-1].copy(), (h0, xp, hs, A[:, :, 2 * H :], keep)


def gru_backward(W_aa, cache, dhs, trace=None):
    """Backpropagate a chunk through the GRU. Returns (dxp (T, B, 3H), dW_aa, dh0 (B, H)).

    ``trace`` as for rnn_backward.
    """
    h0, gates, hs, an, keep = cache
    dxp = np.empty_like(gates)  # gradient of the input-side pre-activations
    dW_aa, dh0 = _backward(W_aa, dxp, dhs, h0, gates, hs, an, keep, trace)
    return dxp, dW_aa, dh0


def gru_step(W_aa, xp, h):
    """One GRU step: xp (B, 3H) with the bias added, h (B, H) -> (h, h).

    On the transposes (3H, B) each gate is one contiguous block of rows, so the
    gates' element-wise work runs over contiguous memory (faster for large B).
    """
    return _step(W_aa, xp.T, h)


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
    G = xp.shape[2] // 2
    hs, A = _forward(W_aa, xp[:, :, :G], h0, keep, scales=xp[:, :, G:])
    return hs, hs[-1].copy(), (h0, xp, hs, A, keep)


def mgru_backward(W_aa, cache, dhs, trace=None):
    """Backpropagate a chunk through the scaled GRU. Returns (dxp (T, B, 6H), dW_aa, dh0 (B, H)).

    dxp's last 3H columns are the gradient of the scales s_t. ``trace`` as for rnn_backward.
    """
    h0, xp, hs, A, keep = cache
    T, B, H = hs.shape
    G = 3 * H
    scales = xp[:, :, G:].copy()  # (T, B, 3H) ...
    scales[:, :, : 2 * H] *= 2  # ... undone from halving
    dxp = np.empty((T, B, 2 * G), dtype=hs.dtype)
    san = scales[:, :, 2 * H :] * A[:, :, 2 * H :]  # the candidate's scaled recurrent term
    dW_aa, dh0 = _backward(W_aa, dxp, dhs, h0, xp[:, :, :G], hs, san, keep, trace, scales)
    # the scales' gradient: the scaled terms' gradient times the unscaled terms
    np.multiply(dxp[:, :, : 2 * H], A[:, :, : 2 * H], out=dxp[:, :, G : G + 2 * H])
    np.multiply(dxp[:, :, 2 * H : G], xp[:, :, :H], out=dxp[:, :, G + 2 * H :])  # times r
    dxp[:, :, G + 2 * H :] *= A[:, :, 2 * H :]
    return dxp, dW_aa, dh0


def mgru_step(W_aa, xp, h):
    """One scaled-GRU step: xp (B, 6H) = [input side with the bias | scale offsets], h (B, H) -> (h, h).

    The scales are 1 + the offsets (the model's parameters hold the offsets).
    """
    G = xp.shape[1] // 2
    return _step(W_aa, xp[:, :G].T, h, xp[:, G:].T + 1)
