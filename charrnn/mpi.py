"""Training past one machine: MPI ranks share each batch, summing with one Allreduce.

``mpiexec -n N charrnn train ...`` starts N copies of the same command. Each
rank is one single-threaded worker (no local --workers): start one rank per
core. Rank 0 reads the corpus (and, with --resume, the checkpoint), builds
the run and broadcasts it, so every rank has the same vocabulary, weights,
data position and random state, and the other ranks need no copy of the
files. Each step, every rank computes the contribution of its share of the
streams into the flat buffer of charrnn.shards (the one the shared-memory
workers sum) and one ``Allreduce`` sums it; every rank then applies the same
clipping and optimizer update, so the ranks' weights stay identical.
Rank 0 decides when to stop (its clock, its signals) and tells the others
each step; only rank 0 writes checkpoints, logs and progress.

MPI is detected from the launcher's environment only, so a plain
``charrnn train`` never imports mpi4py. Any failure under MPI ends the whole
job (MPI_Abort) rather than leaving ranks waiting on a collective. MPI errors
are returned, not fatal, so when another rank dies mid-step this rank raises
a WorkerError: the training loop saves the last good state and says so.
"""
from __future__ import annotations

import numpy as np

from charrnn.config import ModelConfig
from charrnn.errors import CharRNNError, WorkerError
from charrnn.gradients import Gradients
from charrnn.launcher import launched_by_mpi
from charrnn.score import rows_nll
from charrnn.shards import Layout, contribute, shares, summed

INSTALL_HINT = "pip install 'charrnn[mpi]' (mpi4py and an MPI library)"
_current: "MpiTeam | None" = None


def current() -> "MpiTeam | None":
    """The team this process trains in, once one was joined; None otherwise."""
    return _current


def join() -> "MpiTeam | None":
    """The MPI team of this process if an MPI launcher started it (importing mpi4py), else None."""
    global _current
    if _current is None and launched_by_mpi():
        _current = MpiTeam()
    return _current


class MpiTeam(Gradients):
    """This rank's view of the job: its rank, the size, and the collective operations training needs."""

    def __init__(self):
        try:
            from mpi4py import MPI
        except ImportError:
            raise CharRNNError(f"this run was started by an MPI launcher, but mpi4py is not installed: {INSTALL_HINT}") \
                from None
        self.MPI, self.comm = MPI, MPI.COMM_WORLD
        self.comm.Set_errhandler(MPI.ERRORS_RETURN)  # a dead peer raises MPI.Exception here, see _together
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self._layouts = {}
        self.all_failing = False  # set when every rank knows the job is failing (no abort needed)

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def agree(self, value):
        """Rank 0's ``value``, on every rank (a broadcast; other ranks' values are ignored)."""
        return self._together(self.comm.bcast, value if self.is_root else None, root=0)

    def _together(self, collective, *args, **kwargs):
        """``collective(*args, **kwargs)``; an MPI error (another rank died) becomes a WorkerError."""
        try:
            return collective(*args, **kwargs)
        except self.MPI.Exception as exc:
            cause = (exc.Get_error_string().strip() or str(exc)).splitlines()[0]
            raise WorkerError(f"another MPI rank stopped, so the job cannot go on (MPI: {cause})") from None

    def loss_and_grads(self, params, cfg: ModelConfig, x, y, state0, dropout=0.0, rng=None):
        """:func:`charrnn.network.loss_and_grads` over the whole batch, shared between the ranks.

        Every rank passes the same x, y (T, B), state0 (L, B, S) and rng; each
        computes its own streams and one Allreduce sums the contributions.
        """
        B = x.shape[1]
        if B < self.size:
            raise CharRNNError(f"{self.size} MPI ranks need at least {self.size} streams; the batch has {B}")
        key = (repr(cfg), B)
        layout = self._layouts.get(key) or self._layouts.setdefault(key, Layout.contribution(cfg, B))
        start, stop = shares(B, self.size)[self.rank]
        flat = np.empty(layout.size, dtype=cfg.dtype)
        contribute(params, cfg, x[:, start:stop], y[:, start:stop], state0[:, start:stop], (start, stop, B),
                   layout.views(flat), dropout, rng)
        self._together(self.comm.Allreduce, self.MPI.IN_PLACE, flat, op=self.MPI.SUM)
        return summed(layout.views(flat), params)

    def rows_nll(self, params, cfg: ModelConfig, x, y, mask, seq_len: int = 128, key=None, temps: tuple = ()
                 ) -> np.ndarray:
        """:func:`charrnn.score.rows_nll` with the rows of x, y, mask (B, L) shared between the ranks: (B,), or
        (B, K) at each of K ``temps``."""
        parts = shares(len(x), min(self.size, len(x)))
        rows = np.zeros((len(x), len(temps)) if temps else len(x))  # each rank fills its rows; the sum has them all
        if self.rank < len(parts):
            start, stop = parts[self.rank]
            rows[start:stop] = rows_nll(params, cfg, x[start:stop], y[start:stop], mask[start:stop], seq_len, temps)
        self._together(self.comm.Allreduce, self.MPI.IN_PLACE, rows, op=self.MPI.SUM)
        return rows

    def align(self, *dicts: dict[str, np.ndarray]) -> None:
        """Make every rank's arrays (parameters, optimizer state) rank 0's, in place.

        The ranks apply identical updates, so on identical machines they never
        differ; across machines whose NumPy rounds differently they could
        drift apart, and each validation pass brings them back together.
        """
        for arrays in dicts:
            for name in sorted(arrays):
                if arrays[name].ndim:
                    self._together(self.comm.Bcast, arrays[name], root=0)
                else:
                    arrays[name][...] = self.agree(arrays[name].item())

    def broadcast_run(self, make_run):
        """Rank 0 calls ``make_run()`` (reading files); every rank returns the same run.

        If rank 0 fails (bad input), every rank learns it: rank 0 raises its
        error and the others exit with code 1 and say nothing.
        """
        if not self.is_root:
            run = self.agree(None)
            if run is None:
                self.all_failing = True
                raise SystemExit(1)
            return run
        try:
            run = make_run()
        except BaseException:
            self.all_failing = True
            self.agree(None)
            raise
        return self.agree(run)

    def abort(self, code: int) -> None:
        """End every rank of the job now (when only some ranks fail, the others would wait forever)."""
        if self.size > 1 and not self.all_failing:
            self.comm.Abort(code)
