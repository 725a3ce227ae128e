"""Small pieces of arithmetic the cell kernels share."""
from __future__ import annotations

import numpy as np


def prev_states(s0, hs, keep):
    """(T, B, H): the state each step started from, after any reset by ``keep``."""
    prev = np.concatenate([s0[None], hs[:-1]])
    if keep is not None:
        prev *= keep
    return prev


def sigmoid(z, out=None):
    """Logistic function, in place when out is z; written via tanh to avoid exp overflow."""
    out = np.multiply(z, 0.5, out=out)
    np.tanh(out, out=out)
    out += 1
    out *= 0.5
    return out


def halved(W_aa, n_sig: int):
    """A copy of W_aa (H, G) with its first ``n_sig`` (sigmoid-gate) columns halved.

    sigmoid(z) = (1 + tanh(z / 2)) / 2, so with the sigmoid gates'
    pre-activations halved (xp arrives halved from the model, see
    ``Cell.n_sig``), each step needs a single tanh over all gates and an
    affine fix-up of the sigmoid ones.
    """
    W = W_aa.copy()
    W[:, :n_sig] *= 0.5
    return W
