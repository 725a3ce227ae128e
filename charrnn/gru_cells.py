"""The GRU kernels: the GRU, and the GRU whose recurrent terms the input scales (mgru).

Conventions as in charrnn.cells: ``xp`` arrives projected (and, for the
scaled GRU, with the scales beside the projection), sigmoid gates' columns
halved; caches are returned, never kept.
"""
from __future__ import annotations

import numpy as np

from charrnn.gate_math import halved, prev_states, sigmoid


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
    W = halved(W_aa, 2 * H)
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
    h_prev = prev_states(h0, hs, keep)  # (T, B, H)
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
    sigmoid(ru, out=ru)
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
    h_prev = prev_states(h0, hs, keep)  # (T, B, H)
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
    sigmoid(ru, out=ru)
    n = a[:, 2 * H :]
    n *= ru[:, :H]
    n += xp[:, 2 * H : G]
    np.tanh(n, out=n)
    h_new = h - n
    h_new *= ru[:, H:]
    h_new += n
    return h_new, h_new
