"""The character model: parameters, the chunk forward/backward pass, and one step.

Parameters live in one dict of named arrays; gradients use the same keys.
For layer k (0-based):

    W_ax.k  (V or H, G*H)  input projection; for layer 0 a row lookup by character id
    W_aa.k  (H, G*H)       recurrent weights
    b_a.k   (G*H,)         gate bias, added on the input side: x_t @ W_ax + b_a
                           (2G*H wide for a scaled cell, the scales' offsets in the second half)
    W_ya    (H, V)         output projection ((L*H, V) with skip: every layer's output, the first layer's first)
    b_y     (V,)           output bias

so that, for the vanilla RNN (G = 1),

    a_t   = tanh(a_{t-1} @ W_aa + x_t @ W_ax + b_a)      # (B, H)
    y_hat = softmax(a_t @ W_ya + b_y)                    # (B, V)

which is the textbook a_t = tanh(W_aa a_{t-1} + W_ax x_t + b_a) with rows
for batch entries. charrnn/reference.py writes exactly this, unbatched and
slow; this module computes the same numbers fast (see layers_forward for
the two tricks it uses) and tests pin the two together.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from charrnn.cells import CELLS
from charrnn.config import ModelConfig


def param_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """The name and shape of every parameter of a model with this config."""
    V, H = cfg.vocab_size, cfg.hidden
    GH = CELLS[cfg.cell].gates * H
    IH = 2 * GH if CELLS[cfg.cell].scaled else GH  # the input side: projection, then the scales' offsets
    shapes = {}
    for k in range(cfg.layers):
        shapes[f"W_ax.{k}"] = (V if k == 0 else H, IH)
        shapes[f"W_aa.{k}"] = (H, GH)
        shapes[f"b_a.{k}"] = (IH,)
    shapes["W_ya"] = (H * (cfg.layers if cfg.skip else 1), V)
    shapes["b_y"] = (V,)
    return shapes


def state_shape(cfg: ModelConfig, batch: int) -> tuple[int, int, int]:
    """(L, B, S): the carried recurrent state of every layer."""
    return (cfg.layers, batch, CELLS[cfg.cell].state_mult * cfg.hidden)


def zero_state(cfg: ModelConfig, batch: int) -> np.ndarray:
    """(L, B, S) zeros of the model's dtype: the state before any text has been read."""
    return np.zeros(state_shape(cfg, batch), dtype=cfg.dtype)


def init_params(cfg: ModelConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Uniform(-1/sqrt(H), 1/sqrt(H)) weights, zero biases; layer 0's lookup table is wider.

    The LSTM's forget-gate bias starts at 1, so that early in training the
    cell keeps its memory and gradients flow back through c_t.

    The lookup table W_ax.0 plays the part of an embedding followed by a
    projection, so its entries get that product's scale (about 0.58).
    """
    H, bound = cfg.hidden, 1.0 / np.sqrt(cfg.hidden)
    params = {}
    for name, shape in param_shapes(cfg).items():
        if name.startswith("b_"):
            params[name] = np.zeros(shape, dtype=cfg.dtype)
            if cfg.cell == "lstm" and name.startswith("b_a."):
                params[name][H : 2 * H] = 1.0  # forget-gate bias 1: remember by default at the start
        else:
            b = 1.0 if name == "W_ax.0" else bound
            params[name] = rng.uniform(-b, b, size=shape).astype(cfg.dtype)
            if CELLS[cfg.cell].scaled and name.startswith("W_ax."):
                params[name][:, shape[1] // 2 :] = 0  # scales of 1: the cell starts as its unscaled self
    return params


def num_params(params: dict[str, np.ndarray]) -> int:
    return int(sum(p.size for p in params.values()))


def reset_mask(cfg: ModelConfig, x, dtype):
    """Records mode: (T, B, 1) with 0 where x_t is the reset character (a newline), else None. The state
    entering a newline is zeroed, so what follows it, and the whole next record, ignores earlier records."""
    if cfg.reset_id < 0:
        return None
    return (x != cfg.reset_id).astype(dtype)[:, :, None]


class Dropout(NamedTuple):
    """Training-time dropout, drawn from the run's Generator (a plain float p means Dropout(p))."""

    outputs: float = 0.0  # each layer's output units: a fresh mask for every character and stream
    weights: float = 0.0  # entries of each W_aa (DropConnect): one mask per chunk, shared by its steps and streams

    @classmethod
    def of(cls, dropout: "float | Dropout | None") -> "Dropout":
        return cls() if dropout is None else dropout if isinstance(dropout, Dropout) else cls(float(dropout))

    @property
    def active(self) -> bool:
        return self.outputs > 0 or self.weights > 0


def _weight_mask(rng, W, p: float):
    """(H, G*H) inverted-dropout mask of a recurrent matrix: the same for every worker, drawn before the
    batch's output masks."""
    keep = rng.random(W.shape, dtype=np.float32) >= p
    return keep.astype(W.dtype) * W.dtype.type(1.0 / (1.0 - p))


def _dropout_mask(rng, shape, p: float, dtype, part=None):
    """Inverted dropout: keep with probability 1-p and scale by 1/(1-p), so eval needs no change. shape is
    (T, b, H). With ``part`` = (start, stop, B), the chunk holds streams start:stop of a batch of B: the draws
    are made for all B streams and this part's kept, so masks do not depend on how workers share a batch."""
    if part is None:
        draws = rng.random(shape, dtype=np.float32)
    else:
        start, stop, B = part
        draws = rng.random((shape[0], B, shape[2]), dtype=np.float32)[:, start:stop]
    keep = draws >= p
    return keep.astype(dtype) * dtype.type(1.0 / (1.0 - p))


class LayerCache(NamedTuple):
    """What one layer's forward pass over a chunk keeps for its backward pass."""

    inp: "np.ndarray | None"  # (T, B, H) the layer's input; None for layer 0, whose input is the ids
    W_aa: np.ndarray  # (H, GH) the recurrent matrix the chunk ran through (masked, with weight drop)
    weight_mask: "np.ndarray | None"  # (H, GH) that mask, or None
    cell: tuple  # the cell kernel's own cache (see charrnn.cells)
    out_mask: "np.ndarray | None"  # (T, B, H) the dropout mask of the layer's outputs, or None


def layers_forward(params, cfg, x, state0, dropout: "float | Dropout" = 0.0, rng=None, part=None):
    """Run every layer over a chunk. x (T, B) ids; state0 (L, B, S).

    Two exact rewrites make layer 0 fast. The bias is folded into the lookup
    table (row i of W_ax.0 + b_a.0 is x_t @ W_ax + b_a for character i), so
    the chunk's whole input projection is one row gather. And the columns
    of sigmoid gates are halved, because sigmoid(z) = (1 + tanh(z/2)) / 2
    lets a cell run one tanh over all its gates (see charrnn.cells).

    With dropout (training only, see Dropout), each layer's recurrent matrix
    is first multiplied by an inverted-dropout mask of its entries, one for
    the whole chunk, and each layer's output by a fresh mask before it feeds
    the next layer or the output projection, all drawn from ``rng``
    (``part``: see _dropout_mask). Returns (output (T, B, H), or (T, B, L*H) of every layer with cfg.skip;
    state_last (L, B, S); a LayerCache per layer).
    """
    cell = CELLS[cfg.cell]
    drop = Dropout.of(dropout)
    T, B = x.shape
    keep = reset_mask(cfg, x, state0.dtype)
    state_last = np.empty_like(state0)
    n_sig, GH = cell.n_sig * cfg.hidden, cell.gates * cfg.hidden
    halve = [slice(0, n_sig)] + ([slice(GH, GH + n_sig)] if cell.scaled else [])  # the sigmoid gates' columns
    inp, caches, outs = None, [], []
    for k in range(cfg.layers):
        W, b = params[f"W_ax.{k}"], params[f"b_a.{k}"]
        if n_sig or cell.scaled:  # exact: halving commutes with the sums and products
            W, b = W.copy(), b.copy()
            if cell.scaled:
                b[GH:] += 1  # scales are 1 + their offsets
            for cols in halve:
                W[:, cols], b[cols] = W[:, cols] * 0.5, b[cols] * 0.5
        if k == 0:
            xp = (W + b)[x]  # (T, B, GH or 2GH): the bias folded into the lookup table, then one row gather
        else:
            xp = (inp.reshape(T * B, -1) @ W).reshape(T, B, -1)
            xp += b
        W_aa, wmask = params[f"W_aa.{k}"], None
        if drop.weights > 0:
            wmask = _weight_mask(rng, W_aa, drop.weights)
            W_aa = W_aa * wmask  # (H, GH): the recurrent matrix this chunk trains through
        hs, state_last[k], cache = cell.forward(W_aa, xp, state0[k], keep)
        mask = None
        if drop.outputs > 0:
            mask = _dropout_mask(rng, hs.shape, drop.outputs, hs.dtype, part)
            hs = hs * mask
        caches.append(LayerCache(inp, W_aa, wmask, cache, mask))
        inp = hs
        outs.append(hs)
    return (np.concatenate(outs, axis=2) if cfg.skip else inp), state_last, caches


ONE_HOT_MAX_V = 256  # up to this vocabulary size, a one-hot product is the fastest scatter


def scatter_rows(ids, rows, V: int):
    """(V, W) sums of ``rows`` (N, W) grouped by ``ids`` (N,): the lookup table's gradient.

    np.add.at is exact but slow (7.6 ms at N=4096, W=256). For small
    vocabularies a (V, N) one-hot product runs as one BLAS call (0.8 ms);
    for large ones, sorting by id and np.add.reduceat (2.5 ms) does not grow
    with V.
    """
    N = len(ids)
    if V <= ONE_HOT_MAX_V:
        onehot = np.zeros((V, N), dtype=rows.dtype)
        onehot[ids, np.arange(N)] = 1
        return onehot @ rows
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    out = np.zeros((V, rows.shape[1]), dtype=rows.dtype)
    out[sorted_ids[starts]] = np.add.reduceat(rows[order], starts, axis=0)
    return out


def _log_softmax_nll(logits, y):
    """logits (N, V) shifted in place; y (N,). Returns (nll (N,), exp-shifted (N, V), sums (N, 1))."""
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    s = e.sum(axis=1, keepdims=True)
    nll = np.log(s[:, 0]) - logits[np.arange(len(y)), y]
    return nll, e, s


def loss_and_grads(params, cfg: ModelConfig, x, y, state0, dropout: "float | Dropout" = 0.0, rng=None, part=None):
    """Forward and backward over one chunk of truncated BPTT.

    x, y (T, B) int ids (y is x shifted by one); state0 (L, B, S) carried in.
    ``dropout`` (a float p for the outputs, or a Dropout) applies inverted
    dropout to every layer's outputs and, with Dropout.weights, to its
    recurrent matrix, with masks
    drawn from the Generator ``rng``; ``part`` = (start, stop, B) says the
    chunk is streams start:stop of a batch of B shared between workers, so
    the masks are that part of the whole batch's (see _dropout_mask).
    Returns (loss, grads, state_last): loss is the mean cross-entropy in
    nats/char over the T*B predictions, grads has the keys of params, and
    state_last (L, B, S) is what the caller carries into the next chunk.
    Gradients stop at the chunk boundary.
    """
    T, B = x.shape
    H = cfg.hidden
    cell = CELLS[cfg.cell]
    top, state_last, caches = layers_forward(params, cfg, x, state0, dropout, rng, part)
    h = top.reshape(T * B, -1)  # (N, H), or (N, L*H) with skip
    logits = output(params, h)  # (N, V)
    yf = y.reshape(-1)
    nll, e, s = _log_softmax_nll(logits, yf)
    N = T * B
    loss = float(nll.sum(dtype=np.float64) / N)

    dlogits = e  # becomes (softmax - onehot) / N
    dlogits /= s
    dlogits[np.arange(N), yf] -= 1
    dlogits *= 1.0 / N
    grads = {"W_ya": h.T @ dlogits, "b_y": dlogits.sum(axis=0)}
    dout = (dlogits @ params["W_ya"].T).reshape(T, B, -1)  # (T, B, H), or (T, B, L*H) with skip
    dh = dout[:, :, -H:]
    for k in range(cfg.layers - 1, -1, -1):
        c = caches[k]
        if cfg.skip and k < cfg.layers - 1:
            dh = dh + dout[:, :, k * H : (k + 1) * H]  # from the layer above and straight from the output
        if c.out_mask is not None:
            dh *= c.out_mask
        dxp, dW_aa, _ = cell.backward(c.W_aa, c.cell, dh)
        grads[f"W_aa.{k}"] = dW_aa if c.weight_mask is None else dW_aa * c.weight_mask  # chain rule through W_aa * mask
        dxp2 = dxp.reshape(T * B, -1)  # (N, GH)
        grads[f"b_a.{k}"] = dxp2.sum(axis=0)
        if k == 0:
            grads["W_ax.0"] = scatter_rows(x.reshape(-1), dxp2, cfg.vocab_size)
        else:
            grads[f"W_ax.{k}"] = c.inp.reshape(T * B, -1).T @ dxp2
            dh = (dxp2 @ params[f"W_ax.{k}"].T).reshape(T, B, H)
    return loss, grads, state_last


def chunk_nll(params, cfg: ModelConfig, x, y, state0, dropout: "float | Dropout" = 0.0, rng=None):
    """Forward only: per-prediction loss. x, y (T, B); returns (nll (T, B) nats, state_last). With ``dropout``,
    the masks drawn from ``rng`` are those loss_and_grads draws from a Generator in the same state."""
    T, B = x.shape
    top, state_last, _ = layers_forward(params, cfg, x, state0, dropout, rng)
    nll, _, _ = _log_softmax_nll(output(params, top.reshape(T * B, -1)), y.reshape(-1))
    return nll.reshape(T, B), state_last


def chunk_logits(params, cfg: ModelConfig, x, state0):
    """Forward only: x (T, B) ids -> (logits (T, B, V), state_last (L, B, S))."""
    T, B = x.shape
    top, state_last, _ = layers_forward(params, cfg, x, state0)
    return output(params, top.reshape(T * B, -1)).reshape(T, B, -1), state_last


def step(params, cfg: ModelConfig, ids, state):
    """One character for each of B streams: ids (B,), state (L, B, S) -> (logits (B, V), new state)."""
    h, new = step_top(params, cfg, ids, state)
    return output(params, h), new


def output(params, top):
    """The output layer: top-layer outputs (N, H) -> logits (N, V)."""
    logits = top @ params["W_ya"]
    logits += params["b_y"]
    return logits


def step_top(params, cfg: ModelConfig, ids, state):
    """:func:`step` short of the output layer: (the top layer's output (B, H), or every layer's (B, L*H) with
    cfg.skip; new state (L, B, S))."""
    cell = CELLS[cfg.cell]
    if cfg.reset_id >= 0:
        state = state * (ids != cfg.reset_id).astype(state.dtype)[None, :, None]
    new = np.empty_like(state)
    h, outs = None, []
    for k in range(cfg.layers):
        xp = params["W_ax.0"][ids] if k == 0 else h @ params[f"W_ax.{k}"]  # (B, G*H), fresh
        xp += params[f"b_a.{k}"]
        h, new[k] = cell.step(params[f"W_aa.{k}"], xp, state[k])
        outs.append(h)
    return (np.concatenate(outs, axis=1) if cfg.skip else h), new
