"""Whatever computes a batch's gradients: one interface, three ways.

Training asks a :class:`Gradients` for the loss and gradients of each batch
and for the loss of validation text. It does not know who does the work:

    InProcess     this process (charrnn.network)
    WorkerPool    worker processes on this machine sharing each batch (charrnn.workers)
    MpiTeam       MPI ranks, possibly on other machines (charrnn.mpi)

All three return what one process computes on the whole batch, up to float
rounding. ``agree`` and ``align`` matter only where several copies of the
run exist (MPI): there rank 0 decides and its arrays win; elsewhere they
change nothing.
"""
from __future__ import annotations

import numpy as np

from charrnn import network
from charrnn.config import ModelConfig
from charrnn.score import rows_nll


class Gradients:
    """The interface; this base computes everything in this process (see InProcess)."""

    size = 1  # processes sharing each batch
    is_root = True  # whether this process reports and saves (MPI: rank 0 only)

    def loss_and_grads(self, params, cfg: ModelConfig, x, y, state0, dropout=0.0, rng=None):
        """:func:`charrnn.network.loss_and_grads` over the whole batch: x, y (T, B); state0 (L, B, S).

        Returns (loss nats/char, grads keyed as params, state_last (L, B, S)).
        """
        return network.loss_and_grads(params, cfg, x, y, state0, dropout, rng)

    def rows_nll(self, params, cfg: ModelConfig, x, y, mask, seq_len: int = 128, key=None, temps: tuple = ()
                 ) -> np.ndarray:
        """:func:`charrnn.score.rows_nll`: nats summed over each row of padded streams x, y, mask (B, L): (B,),
        or (B, K) at each of K ``temps``.

        ``key`` names the streams, so that implementations which send them
        elsewhere can reuse what they sent last time (validation passes).
        """
        return rows_nll(params, cfg, x, y, mask, seq_len, temps)

    def agree(self, value):
        """Rank 0's ``value`` on every process; here, ``value`` itself."""
        return value

    def align(self, *dicts: dict[str, np.ndarray]) -> None:
        """Make every copy of these arrays rank 0's; here there is one copy."""

    def close(self) -> None:
        """Release processes and memory; safe to repeat."""

    def __enter__(self) -> "Gradients":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class InProcess(Gradients):
    """Every gradient computed in this process, with its BLAS threads."""
