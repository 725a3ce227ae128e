"""The four cells exactly as the equations read: one character at a time, column vectors, no tricks.

Vanilla RNN:

    a_t   = tanh(W_aa a_{t-1} + W_ax x_t + b_a)      x_t one-hot (V,), a_t (H,)

LSTM (gates i, f, o and the candidate g):

    i = sigmoid(W_xi x_t + W_hi h_{t-1} + b_i)       and f, o alike
    g = tanh(W_xg x_t + W_hg h_{t-1} + b_g)
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)

GRU (reset r, update u, candidate n; the recurrent side has no bias):

    r = sigmoid(W_xr x_t + b_r + W_hr h_{t-1})       and u alike
    n = tanh(W_xn x_t + b_n + r * (W_hn h_{t-1}))
    h_t = (1 - u) * n + u * h_{t-1}

Scaled GRU, mgru (the GRU with its recurrent terms scaled by the input):

    s_r = 1 + W_sr x_t + c_r                          and s_u, s_n alike
    r = sigmoid(W_xr x_t + b_r + s_r * (W_hr h_{t-1}))   and u alike
    n = tanh(W_xn x_t + b_n + r * s_n * (W_hn h_{t-1}))
    h_t = (1 - u) * n + u * h_{t-1}

and for every cell

    y_hat = softmax(W_ya h_t + b_y)                  (V,)
    L     = mean over t of -log y_hat_t[target_t]    nats per character

This is for reading, and for tests: it computes the same loss and gradients
as charrnn.network.loss_and_grads (which batches streams, folds the bias
into a lookup table, runs one tanh over all gates and works in place), only
slowly. Matrices here are the textbook ones, one per gate;
:func:`from_params` cuts and transposes charrnn's row-major parameters.
"""
from __future__ import annotations

import numpy as np

GATES = {"rnn": ("a",), "lstm": ("i", "f", "o", "g"), "gru": ("r", "u", "n"), "mgru": ("r", "u", "n")}  # column order


def from_params(params: dict[str, np.ndarray], cell: str = "rnn") -> dict[str, np.ndarray]:
    """Textbook matrices from a one-layer model's params or gradients (charrnn computes x @ W, here W x)."""
    if cell == "rnn":
        return {"W_ax": params["W_ax.0"].T, "W_aa": params["W_aa.0"].T, "b_a": params["b_a.0"],
                "W_ya": params["W_ya"].T, "b_y": params["b_y"]}
    W = {"W_ya": params["W_ya"].T, "b_y": params["b_y"]}
    for k, gate in enumerate(GATES[cell]):
        cols = slice(k * params["W_aa.0"].shape[0], (k + 1) * params["W_aa.0"].shape[0])
        W[f"W_x{gate}"] = params["W_ax.0"][:, cols].T
        W[f"W_h{gate}"] = params["W_aa.0"][:, cols].T
        W[f"b_{gate}"] = params["b_a.0"][cols]
        if cell == "mgru":  # the scales' columns follow the projection's
            GH = params["W_aa.0"].shape[1]
            scols = slice(GH + cols.start, GH + cols.stop)
            W[f"W_s{gate}"] = params["W_ax.0"][:, scols].T
            W[f"c_{gate}"] = params["b_a.0"][scols]
    return W


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def one_hot(i: int, V: int) -> np.ndarray:
    x = np.zeros(V)
    x[i] = 1.0
    return x


def output_step(W, h, target: int, T: int, grads) -> tuple[float, np.ndarray]:
    """The softmax output at one step: its share of the loss, and dL/dh from it (adding to grads)."""
    z = W["W_ya"] @ h + W["b_y"]
    p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    dz = p.copy()
    dz[target] -= 1.0  # softmax + cross-entropy
    dz /= T  # the loss is a mean over the T characters
    grads["W_ya"] += np.outer(dz, h)
    grads["b_y"] += dz
    return -np.log(p[target]) / T, W["W_ya"].T @ dz


def loss_and_grads(W: dict[str, np.ndarray], inputs: list[int], targets: list[int], a_prev: np.ndarray):
    """Vanilla RNN: forward and backward through one sequence; returns (loss, grads with W's keys, a_last)."""
    V, T = W["W_ax"].shape[1], len(inputs)
    x, a = {}, {-1: a_prev}
    for t in range(T):  # forward
        x[t] = one_hot(inputs[t], V)
        a[t] = np.tanh(W["W_aa"] @ a[t - 1] + W["W_ax"] @ x[t] + W["b_a"])
    grads = {k: np.zeros_like(v) for k, v in W.items()}
    loss, da_next = 0.0, np.zeros_like(a_prev)  # dL/da_t arriving from step t+1
    for t in reversed(range(T)):  # backward through time
        step_loss, da = output_step(W, a[t], targets[t], T, grads)
        loss += step_loss
        dpre = (1.0 - a[t] ** 2) * (da + da_next)  # through tanh
        grads["W_ax"] += np.outer(dpre, x[t])
        grads["W_aa"] += np.outer(dpre, a[t - 1])
        grads["b_a"] += dpre
        da_next = W["W_aa"].T @ dpre
    return loss, grads, a[T - 1]


def lstm_loss_and_grads(W, inputs: list[int], targets: list[int], h_prev: np.ndarray, c_prev: np.ndarray):
    """LSTM: forward and backward through one sequence; returns (loss, grads, (h_last, c_last))."""
    V, T = W["W_xi"].shape[1], len(inputs)
    x, h, c, gate = {}, {-1: h_prev}, {-1: c_prev}, {}
    for t in range(T):  # forward
        x[t] = one_hot(inputs[t], V)
        pre = {k: W[f"W_x{k}"] @ x[t] + W[f"W_h{k}"] @ h[t - 1] + W[f"b_{k}"] for k in "ifog"}
        gate[t] = {k: sigmoid(pre[k]) for k in "ifo"} | {"g": np.tanh(pre["g"])}
        i, f, o, g = (gate[t][k] for k in "ifog")
        c[t] = f * c[t - 1] + i * g
        h[t] = o * np.tanh(c[t])
    grads = {k: np.zeros_like(v) for k, v in W.items()}
    loss, dh_next, dc_next = 0.0, np.zeros_like(h_prev), np.zeros_like(c_prev)
    for t in reversed(range(T)):  # backward through time
        step_loss, dh = output_step(W, h[t], targets[t], T, grads)
        loss += step_loss
        dh = dh + dh_next
        i, f, o, g = (gate[t][k] for k in "ifog")
        dc = dh * o * (1 - np.tanh(c[t]) ** 2) + dc_next
        dpre = {"i": dc * g * i * (1 - i), "f": dc * c[t - 1] * f * (1 - f),
                "o": dh * np.tanh(c[t]) * o * (1 - o), "g": dc * i * (1 - g ** 2)}
        dh_next = np.zeros_like(h_prev)
        for k in "ifog":
            grads[f"W_x{k}"] += np.outer(dpre[k], x[t])
            grads[f"W_h{k}"] += np.outer(dpre[k], h[t - 1])
            grads[f"b_{k}"] += dpre[k]
            dh_next += W[f"W_h{k}"].T @ dpre[k]
        dc_next = dc * f
    return loss, grads, (h[T - 1], c[T - 1])


def gru_loss_and_grads(W, inputs: list[int], targets: list[int], h_prev: np.ndarray):
    """GRU, or scaled GRU when W holds the scales' W_s{k}, c_{k} (else every s_k is 1): forward and backward
    through one sequence; returns (loss, grads, h_last)."""
    V, T = W["W_xr"].shape[1], len(inputs)
    scaled = "W_sr" in W
    x, h, gate = {}, {-1: h_prev}, {}
    for t in range(T):  # forward
        x[t] = one_hot(inputs[t], V)
        s = {k: 1.0 + W[f"W_s{k}"] @ x[t] + W[f"c_{k}"] if scaled else 1.0 for k in "run"}
        hk = {k: W[f"W_h{k}"] @ h[t - 1] for k in "run"}
        r = sigmoid(W["W_xr"] @ x[t] + W["b_r"] + s["r"] * hk["r"])
        u = sigmoid(W["W_xu"] @ x[t] + W["b_u"] + s["u"] * hk["u"])
        n = np.tanh(W["W_xn"] @ x[t] + W["b_n"] + r * s["n"] * hk["n"])
        gate[t] = (r, u, n, s, hk)
        h[t] = (1 - u) * n + u * h[t - 1]
    grads = {k: np.zeros_like(v) for k, v in W.items()}
    loss, dh_next = 0.0, np.zeros_like(h_prev)
    for t in reversed(range(T)):  # backward through time
        step_loss, dh = output_step(W, h[t], targets[t], T, grads)
        loss += step_loss
        dh = dh + dh_next
        r, u, n, s, hk = gate[t]
        dn = dh * (1 - u) * (1 - n ** 2)  # through h_t = (1 - u) n + u h_{t-1}, then tanh
        dpre = {"r": dn * s["n"] * hk["n"] * r * (1 - r), "u": dh * (h[t - 1] - n) * u * (1 - u), "n": dn}
        dscaled = {"r": dpre["r"], "u": dpre["u"], "n": dn * r}  # what reaches each s_k * (W_hk h_{t-1})
        dh_next = dh * u
        for k in "run":
            grads[f"W_x{k}"] += np.outer(dpre[k], x[t])
            grads[f"b_{k}"] += dpre[k]
            if scaled:
                grads[f"W_s{k}"] += np.outer(dscaled[k] * hk[k], x[t])
                grads[f"c_{k}"] += dscaled[k] * hk[k]
            grads[f"W_h{k}"] += np.outer(dscaled[k] * s[k], h[t - 1])
            dh_next = dh_next + W[f"W_h{k}"].T @ (dscaled[k] * s[k])
    return loss, grads, h[T - 1]
