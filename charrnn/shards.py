"""Sharing one batch between workers: who owns which streams, and the flat buffer they sum.

Data-parallel training splits the B streams of a batch into contiguous
shares, one per worker (a local process or an MPI rank). Each worker runs the
forward/backward pass on its share and writes its *contribution* into one
flat buffer laid out by :class:`Layout`:

    grads   every parameter's gradient, scaled by b/B (b: the share's streams)
    loss    (1,) the share's mean loss, scaled by b/B
    state   (L, B, S) the carried state, zero outside the share's streams

Summing the contributions of all workers gives exactly what one process
computes on the whole batch: the mean-over-B*T gradient and loss, and the
whole batch's state. The sum is the one seam between the ways of running:
shared memory for local workers (charrnn.workers), Allreduce under MPI.
"""
from __future__ import annotations

import math

import numpy as np

from charrnn import model
from charrnn.config import ModelConfig

MIN_STREAMS_PER_WORKER = 8  # the default worker count keeps at least this many streams each


def shares(batch: int, n: int) -> list[tuple[int, int]]:
    """[start, stop) streams of each of ``n`` workers: contiguous, sizes differing by at most one."""
    if not 1 <= n <= batch:
        raise ValueError(f"cannot share {batch} streams between {n} workers")
    edges = [batch * i // n for i in range(n + 1)]
    return list(zip(edges[:-1], edges[1:]))


class Layout:
    """Where each named array lives in one flat buffer of a model's dtype."""

    def __init__(self, shapes: dict[str, tuple[int, ...]]):
        self.shapes = dict(shapes)
        self.offsets, off = {}, 0
        for name, shape in self.shapes.items():
            self.offsets[name] = off
            off += math.prod(shape)
        self.size = off  # elements in all

    @classmethod
    def contribution(cls, cfg: ModelConfig, batch: int) -> "Layout":
        """The layout of one worker's contribution: gradients, loss, whole-batch state."""
        shapes = dict(model.param_shapes(cfg))
        shapes["loss"] = (1,)
        shapes["state"] = model.state_shape(cfg, batch)
        return cls(shapes)

    def views(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        """Named views into ``flat`` (size,): writing a view writes the buffer."""
        return {name: flat[off : off + math.prod(shape)].reshape(shape)
                for (name, shape), off in zip(self.shapes.items(), self.offsets.values())}


def contribute(params, cfg: ModelConfig, x, y, state0, part: tuple[int, int, int], out: dict[str, np.ndarray],
               dropout: float = 0.0, rng: np.random.Generator | None = None) -> None:
    """Compute the share ``part`` = (start, stop, B) of a batch and write its contribution into ``out``.

    x, y (T, b) ids of the share's streams; state0 (L, b, S) their carried
    state; out: :meth:`Layout.views` of a contribution buffer. Dropout masks
    are drawn for the whole batch from ``rng`` and this share's columns kept,
    so they are the masks one process would use.
    """
    start, stop, B = part
    loss, grads, last = model.loss_and_grads(params, cfg, x, y, state0, dropout, rng, part=part)
    weight = (stop - start) / B
    for name, g in grads.items():
        np.multiply(g, weight, out=out[name])
    out["loss"][0] = loss * weight
    out["state"][...] = 0
    out["state"][:, start:stop] = last


def summed(total: dict[str, np.ndarray], param_names) -> tuple[float, dict[str, np.ndarray], np.ndarray]:
    """(loss, grads, state_last) from the views of a summed contribution buffer."""
    grads = {name: total[name] for name in param_names}
    return float(total["loss"][0]), grads, total["state"].copy()
