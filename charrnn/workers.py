"""Data-parallel training on one machine: worker processes that share the batch.

The parent keeps the checkpoint and does everything but the passes over
text. A :class:`WorkerPool` starts ``n`` worker processes, each with
single-threaded BLAS (set in its environment before NumPy loads). Every step,
the parent copies the parameters and carried state into one shared-memory
segment and sends each worker its streams' ids; each worker writes its
contribution (charrnn.shards) into its own slot of the segment, and the
parent sums the slots. So ``pool.loss_and_grads`` returns what
``network.loss_and_grads`` returns for the whole batch, up to float rounding.

Faults: a worker that raises or dies ends the call with a :class:`WorkerError`
naming it and the cause; workers live in their own session (a Ctrl-C at the
terminal reaches only the parent, which saves and closes the pool), and exit
when the parent dies (PR_SET_PDEATHSIG, and end-of-file on their socket).
The segment is unlinked as soon as every worker has mapped it, so nothing
is left in /dev/shm whatever happens later.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from multiprocessing import shared_memory
from multiprocessing.connection import Connection

import numpy as np

from charrnn import network
from charrnn.config import ModelConfig
from charrnn.errors import CharRNNError, WorkerError
from charrnn.gradients import Gradients
from charrnn.shards import MIN_STREAMS_PER_WORKER, SharedLayout, shares, summed

SINGLE_THREADED = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                   "VECLIB_MAXIMUM_THREADS": "1", "NUMEXPR_NUM_THREADS": "1"}
EVAL_WORKERS_MIN = 100_000  # characters of text before eval uses workers by default
STOP_SECONDS = 2.0  # how long a closing worker may take before it is killed


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def environment_workers() -> int | None:
    """The workers $CHARRNN_WORKERS asks for, or None when it is unset or empty."""
    env = os.environ.get("CHARRNN_WORKERS", "").strip()
    if not env:
        return None
    if not env.isdigit() or int(env) < 1:
        raise CharRNNError(f"CHARRNN_WORKERS must be a whole number of at least 1 (it is {env!r})")
    return int(env)


def default_workers(batch: int) -> int:
    """Workers when none are asked for: $CHARRNN_WORKERS, else the available cores,
    capped so that each worker keeps at least MIN_STREAMS_PER_WORKER of the ``batch`` streams."""
    env = environment_workers()
    if env is not None:
        return min(env, batch)
    return max(1, min(available_cores(), batch // MIN_STREAMS_PER_WORKER))


def open_pool(workers: int | None, cfg: ModelConfig, batch: int) -> "WorkerPool | None":
    """A pool of ``workers`` processes (None: :func:`default_workers`) for ``batch`` streams; None for one."""
    n = default_workers(batch) if workers is None else workers
    if n > batch:
        raise CharRNNError(f"--workers {n} is more than the {batch} streams of a batch; use at most {batch}")
    return WorkerPool(n, cfg, batch) if n > 1 else None


def default_eval_workers(pieces: int, chars: int) -> int:
    """Workers for scoring ``chars`` characters cut into ``pieces`` streams: none below
    EVAL_WORKERS_MIN characters (starting them costs more than they save), else as
    $CHARRNN_WORKERS or the cores say, at most one per piece."""
    if chars < EVAL_WORKERS_MIN:
        return 1
    return max(1, min(default_workers(pieces * MIN_STREAMS_PER_WORKER), pieces))


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "stopped answering"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class WorkerPool(Gradients):
    """``n`` worker processes for a model of config ``cfg`` training a batch of ``batch`` streams.

    A :class:`charrnn.gradients.Gradients`. Use as a context manager, or call
    :meth:`close`; both are safe to repeat.
    """

    def __init__(self, n: int, cfg: ModelConfig, batch: int):
        self.n = self.size = n  # processes
        self.cfg, self.batch = cfg, batch
        self.parts = shares(batch, n)
        self.layout = SharedLayout(cfg, batch, n)
        self.shm = shared_memory.SharedMemory(create=True, size=self.layout.nbytes,
                                              name=f"charrnn_{os.getpid()}_{os.urandom(4).hex()}")
        self.unlinked, self.procs, self.conns, self.text_keys = False, [], [], [None] * n
        self.params_in, self.state_in, self.slots = self.layout.views(self.shm.buf)
        self.acc = np.empty(self.layout.slot.size, dtype=self.layout.dtype)  # the sum, in the parent's own memory
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    def _start(self) -> None:
        env = dict(os.environ, **SINGLE_THREADED)
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = here + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        for i in range(self.n):
            mine, theirs = socket.socketpair()
            cmd = [sys.executable, "-m", "charrnn.worker_process", str(theirs.fileno()), str(os.getpid())]
            proc = subprocess.Popen(cmd, env=env, pass_fds=[theirs.fileno()], start_new_session=True,
                                    stdin=subprocess.DEVNULL)
            theirs.close()
            self.procs.append(proc)
            self.conns.append(Connection(mine.detach()))
        for i, conn in enumerate(self.conns):
            conn.send(("init", i, self.cfg, self.shm.name, self.batch, self.n))
        self._gather("ready")
        self.shm.unlink()  # every worker has it mapped; the name is no longer needed
        self.unlinked = True

    def _gather(self, what: str, only=None) -> list:
        """Each addressed worker's answer, in order; a WorkerError if one raised or died."""
        answers = []
        for i in (range(self.n) if only is None else only):
            try:
                reply = self.conns[i].recv()
            except (EOFError, OSError):
                try:
                    code = self.procs[i].wait(timeout=STOP_SECONDS)
                except subprocess.TimeoutExpired:
                    code = None
                raise WorkerError(f"worker {i + 1} of {self.n} (pid {self.procs[i].pid}) {_describe_exit(code)} "
                                  f"while {what}") from None
            if reply[0] == "error":
                raise WorkerError(f"worker {i + 1} of {self.n} (pid {self.procs[i].pid}) failed while {what}: "
                                  f"{reply[1]}")
            answers.append(reply)
        return answers

    def _send(self, i: int, message) -> None:
        try:
            self.conns[i].send(message)
        except OSError:
            self._gather("receiving work", only=[i])  # names the dead worker
            raise WorkerError(f"worker {i + 1} of {self.n} cannot be reached") from None

    def _load_params(self, params) -> None:
        for name, view in self.params_in.items():
            view[...] = params[name]

    def loss_and_grads(self, params, cfg: ModelConfig, x, y, state0, dropout=0.0, rng=None):
        """:func:`charrnn.network.loss_and_grads` over the whole batch, shared between the workers.

        x, y (T, B) ids; state0 (L, B, S). Returns (loss, grads, state_last);
        grads are views into the pool's sum buffer, valid until the next call.
        Dropout masks are drawn from ``rng`` exactly as one process draws them,
        and ``rng`` is left where one process would leave it.
        """
        self._load_params(params)
        self.state_in[...] = state0
        rng_state = rng.bit_generator.state if network.Dropout.of(dropout).active else None
        for i, (start, stop) in enumerate(self.parts):
            self._send(i, ("grads", x[:, start:stop], y[:, start:stop], dropout, rng_state))
        answers = self._gather("computing gradients")
        if rng_state is not None:
            rng.bit_generator.state = answers[0][1]
        np.copyto(self.acc, self.slots[0])
        for slot in self.slots[1:]:
            self.acc += slot
        return summed(self.layout.slot.views(self.acc), self.params_in)

    def rows_nll(self, params, cfg: ModelConfig, x, y, mask, seq_len: int = 128, key=None, temps: tuple = ()
                 ) -> np.ndarray:
        """:func:`charrnn.score.rows_nll` with the rows of x, y, mask (B, L) shared between the workers: (B,),
        or (B, K) at each of K ``temps``.

        ``key`` names the streams: workers keep the rows they were last sent
        under a key and reuse them when it comes again (validation passes).
        """
        self._load_params(params)
        busy = []
        for i, (start, stop) in enumerate(shares(len(x), min(self.n, len(x)))):
            fresh = key is None or self.text_keys[i] != key
            self._send(i, ("nll", (x[start:stop], y[start:stop], mask[start:stop]) if fresh else None, seq_len,
                           temps))
            self.text_keys[i] = key
            busy.append(i)
        return np.concatenate([a[1] for a in self._gather("scoring text", only=busy)])  # in row order

    def close(self) -> None:
        """Stop the workers (killing any that linger) and release the shared memory."""
        for conn in self.conns:
            try:
                conn.send(("stop",))
            except OSError:
                pass
        for proc in self.procs:
            try:
                proc.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for conn in self.conns:
            conn.close()
        self.procs, self.conns = [], []
        if self.shm is not None:
            self.params_in = self.state_in = self.slots = None  # views must go before the mapping
            self.shm.close()
            if not self.unlinked:
                self.shm.unlink()
                self.unlinked = True
            self.shm = None

