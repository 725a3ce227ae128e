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

from charrnn import network
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
        shapes = dict(network.param_shapes(cfg))
        shapes["loss"] = (1,)
        shapes["state"] = network.state_shape(cfg, batch)
        return cls(shapes)

    def views(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        """Named views into ``flat`` (size,): writing a view writes the buffer."""
        return {name: flat[off : off + math.prod(shape)].reshape(shape)
                for (name, shape), off in zip(self.shapes.items(), self.offsets.values())}


class SharedLayout:
    """The one shared-memory segment of a worker pool, as both sides see it.

    ``[params | carried state (L, B, S) | n contribution slots]``, in the
    model's dtype: the parent writes the parameters and state, worker i
    reads them and writes slot i, the parent sums the slots.
    """

    def __init__(self, cfg: ModelConfig, batch: int, n: int):
        self.params = Layout(network.param_shapes(cfg))
        self.slot = Layout.contribution(cfg, batch)
        self.state_shape = network.state_shape(cfg, batch)
        self.n, self.dtype = n, np.dtype(cfg.dtype)
        self.state_size = math.prod(self.state_shape)
        self.size = self.params.size + self.state_size + n * self.slot.size  # elements in all

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def views(self, buf) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        """(params by name, state (L, B, S), slots (n, slot size)): views into the segment ``buf``."""
        flat = np.ndarray((self.size,), dtype=self.dtype, buffer=buf)
        a, b = self.params.size, self.params.size + self.state_size
        return (self.params.views(flat[:a]), flat[a:b].reshape(self.state_shape),
                flat[b:].reshape(self.n, self.slot.size))


def contribute(params, cfg: ModelConfig, x, y, state0, part: tuple[int, int, int], out: dict[str, np.ndarray],
               dropout=0.0, rng: np.random.Generator | None = None) -> None:
    """Compute the share ``part`` = (start, stop, B) of a batch and write its contribution into ``out``.

    x, y (T, b) ids of the share's streams; state0 (L, b, S) their carried
    state; out: :meth:`Layout.views` of a contribution buffer. Dropout masks
    (``dropout``: a float or a charrnn.network.Dropout) are drawn for the whole
    batch from ``rng`` and this share's columns kept,
    so they are the masks one process would use.
    """
    start, stop, B = part
    loss, grads, last = network.loss_and_grads(params, cfg, x, y, state0, dropout, rng, part=part)
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
