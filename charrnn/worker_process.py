"""The worker side of charrnn.workers: one process that computes its share of each batch.

Started as ``python -m charrnn.worker_process FD PARENT_PID`` with single-threaded
BLAS. It talks to the parent over the socket FD, one message per request:

    ("init", index, cfg, shm_name, batch, n)  -> ("ready", pid)
    ("grads", x, y, dropout, rng_state)       -> ("done", rng_state after the masks)
    ("nll", rows or None, seq_len, temps)     -> ("nll", nats)   rows: (x, y, mask), None: as last time;
                                                               nats: per row, at each of temps if any
    ("stop",)                                 -> exits

Any exception is sent back as ("error", "Type: message") and the worker
exits. It exits too when the parent dies.
"""
from __future__ import annotations

import ctypes
import mmap
import os
import signal
import sys
from multiprocessing.connection import Connection

import numpy as np

from charrnn.alloc import keep_freed_memory
from charrnn.score import rows_nll
from charrnn.shards import SharedLayout, contribute, shares

FAULT_ENV = "CHARRNN_TEST_WORKER_FAULT"  # "I:K": worker I (1-based) raises on its K-th gradient request (tests)


def _exit_with_parent(parent_pid: int) -> None:
    """Ask Linux to kill this process when the parent dies; exit now if it already has."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: end-of-file on the socket still ends the worker
    if os.getppid() != parent_pid:
        os._exit(0)


def _attach(name: str, size: int):
    """Map the parent's shared-memory segment without registering it for cleanup here.

    (Python's SharedMemory would have this process's resource tracker unlink the
    segment when the worker exits; the parent owns it.)
    """
    path = f"/dev/shm/{name}"
    if os.path.exists(path):
        fd = os.open(path, os.O_RDWR)
        try:
            return mmap.mmap(fd, size)
        finally:
            os.close(fd)
    from multiprocessing import resource_tracker, shared_memory

    shm = shared_memory.SharedMemory(name=name)
    resource_tracker.unregister(shm._name, "shared_memory")  # noqa: SLF001 - the documented workaround
    return shm.buf


def _fault_at(index: int) -> int:
    spec = os.environ.get(FAULT_ENV, "")
    who, _, when = spec.partition(":")
    return int(when) if who == str(index + 1) and when.isdigit() else -1


class _Worker:
    def __init__(self, index, cfg, shm_name, batch, n):
        keep_freed_memory()  # as the training process does: per-step arrays reuse pages
        self.cfg, self.index = cfg, index
        layout = SharedLayout(cfg, batch, n)
        self.buf = _attach(shm_name, layout.nbytes)
        self.params, self.state_in, slots = layout.views(self.buf)
        self.out = layout.slot.views(slots[index])
        start, stop = shares(batch, n)[index]
        self.part = (start, stop, batch)
        self.rows, self.calls, self.fault = None, 0, _fault_at(index)

    def grads(self, x, y, dropout, rng_state):
        self.calls += 1
        if self.calls == self.fault:
            raise RuntimeError(f"fault injected by {FAULT_ENV}")
        rng = None
        if rng_state is not None:
            rng = np.random.Generator(getattr(np.random, rng_state["bit_generator"])())
            rng.bit_generator.state = rng_state
        start, stop, _ = self.part
        contribute(self.params, self.cfg, x, y, self.state_in[:, start:stop], self.part, self.out, dropout, rng)
        return ("done", None if rng is None else rng.bit_generator.state)

    def nll(self, rows, seq_len, temps):
        if rows is not None:
            self.rows = rows
        return ("nll", rows_nll(self.params, self.cfg, *self.rows, seq_len, temps))


def serve(fd: int, parent_pid: int) -> None:
    """Answer the parent's requests until it says stop or goes away."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and SIGTERM and closes us
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _exit_with_parent(parent_pid)
    conn = Connection(fd)
    worker = None
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            break
        kind = message[0]
        if kind == "stop":
            break
        try:
            if kind == "init":
                worker = _Worker(*message[1:])
                reply = ("ready", os.getpid())
            elif kind == "grads":
                reply = worker.grads(*message[1:])
            elif kind == "nll":
                reply = worker.nll(*message[1:])
            else:
                raise ValueError(f"unknown request {kind!r}")
        except Exception as exc:  # noqa: BLE001 - every failure goes back to the parent as one line
            try:
                conn.send(("error", f"{type(exc).__name__}: {exc}"))
            except OSError:
                pass
            break
        try:
            conn.send(reply)
        except OSError:
            break
    sys.exit(0)


if __name__ == "__main__":
    serve(int(sys.argv[1]), int(sys.argv[2]))
