"""The vanilla RNN exactly as the equations read: one character at a time, column vectors, no tricks.

    a_t   = tanh(W_aa a_{t-1} + W_ax x_t + b_a)      x_t one-hot (V,), a_t (H,)
    y_hat = softmax(W_ya a_t + b_y)                  (V,)
    L     = mean over t of -log y_hat_t[target_t]    nats per character

This is for reading, and for tests: it computes the same loss and gradients
as charrnn.model.loss_and_grads (which batches streams, folds the bias into a
lookup table and works in place), only slowly. Matrices here are the
textbook ones; :func:`from_params` transposes charrnn's row-major parameters.
"""
from __future__ import annotations

import numpy as np


def from_params(params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Textbook matrices from a one-layer vanilla model's params (charrnn computes x @ W, here W x)."""
    return {"W_ax": params["W_ax.0"].T, "W_aa": params["W_aa.0"].T, "b_a": params["b_a.0"],
            "W_ya": params["W_ya"].T, "b_y": params["b_y"]}


def loss_and_grads(W: dict[str, np.ndarray], inputs: list[int], targets: list[int], a_prev: np.ndarray):
    """Forward and backward through one sequence; returns (loss, grads with W's keys, a_last)."""
    V, H = W["W_ax"].shape[1], W["W_aa"].shape[0]
    T = len(inputs)
    x, a, p = {}, {-1: a_prev}, {}
    loss = 0.0
    for t in range(T):  # forward
        x[t] = np.zeros(V)
        x[t][inputs[t]] = 1.0
        a[t] = np.tanh(W["W_aa"] @ a[t - 1] + W["W_ax"] @ x[t] + W["b_a"])
        z = W["W_ya"] @ a[t] + W["b_y"]
        p[t] = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        loss += -np.log(p[t][targets[t]]) / T
    grads = {k: np.zeros_like(v) for k, v in W.items()}
    da_next = np.zeros(H)  # dL/da_t arriving from step t+1
    for t in reversed(range(T)):  # backward through time
        dz = p[t].copy()
        dz[targets[t]] -= 1.0  # softmax + cross-entropy
        dz /= T  # the loss is a mean over the T characters
        grads["W_ya"] += np.outer(dz, a[t])
        grads["b_y"] += dz
        da = W["W_ya"].T @ dz + da_next
        dpre = (1.0 - a[t] ** 2) * da  # through tanh
        grads["W_ax"] += np.outer(dpre, x[t])
        grads["W_aa"] += np.outer(dpre, a[t - 1])
        grads["b_a"] += dpre
        da_next = W["W_aa"].T @ dpre
    return loss, grads, a[T - 1]
