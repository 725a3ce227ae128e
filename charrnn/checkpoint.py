"""Self-contained checkpoints: one .npz file, written atomically, loaded without pickle.

One file is both the model to use and the run to resume. Layout (every
entry an ordinary array; ``allow_pickle=False`` everywhere):

    meta           uint8   UTF-8 JSON: format, version, model and train configs,
                           vocabulary, step, chars_seen, data position, RNG state,
                           best validation loss, which weights are served, parent
    param/<name>   float   the weights to use: what sample, probs, eval, info and
                           --init-from read (see charrnn.network for the names)
    last/<name>    float   the last step's weights, where --resume continues; only
                           when they are not param/ (version 2)
    avg/<name>     float   the running average of the weights (version 2, averaging on)
    opt/<key>      float   optimizer state (see charrnn.optim), opt/t the update count
    state          float   (L, B, S) hidden state carried into the next chunk
    hist/train     float64 (n, 3) rows of (step, train nats/char, training seconds)
    hist/val       float64 (n, 3) rows of (step, validation nats/char, training seconds)
    hist/avg       float64 (n, 3) the same for the averaged weights (version 2)
    records/hashes uint64  (records mode only) sorted fingerprints of the training lines

A version-1 file (written before param/ could differ from the last step's
weights) has no last/ entry: its param/ is both what it serves and where a
resume continues.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np

from charrnn import __version__, network, optim
from charrnn.atomic import write_atomically
from charrnn.checkpoint_file import FORMAT, HISTORIES, VERSION, read_checkpoint
from charrnn.config import ModelConfig, TrainConfig, to_dict
from charrnn.data import record_hash
from charrnn.errors import CharRNNError
from charrnn.vocab import Vocab



@dataclass
class Checkpoint:
    """Everything a training run is: saved as a whole, restored as a whole."""

    model_config: ModelConfig  # the shape of the model: cell, sizes, vocabulary size
    train_config: TrainConfig  # how it is trained: optimizer, schedule, batch, validation
    vocab: Vocab
    params: dict[str, np.ndarray]  # the weights training continues from: the last step's
    opt_state: dict[str, np.ndarray]
    state: np.ndarray  # (L, B, S) carried hidden state
    rng: np.random.Generator
    step: int = 0  # optimizer steps taken, over all runs
    chars_seen: int = 0  # training characters consumed, over all runs
    epoch: int = 0  # completed passes over the training streams
    pos: int = 0  # next chunk within the current epoch
    best_val: float | None = None  # best validation nats/char seen, of the weights or their average
    best_step: int | None = None  # the step it was measured at
    served: dict[str, np.ndarray] | None = None  # the weights to use, when they are not ``params``
    served_kind: str = "last"  # what is served: "last" (params), "weights" or "average" of served_step
    served_step: int | None = None  # the step whose weights (or average) ``served`` holds
    served_temp: float = 1.0  # ``served``'s output layer is those weights' divided by this (charrnn.validation)
    average: dict[str, np.ndarray] | None = None  # running average of params (None: averaging off)
    average_steps: int = 0  # optimizer steps folded into ``average``
    seconds: float = 0.0  # wall-clock seconds spent training, over all runs
    history: dict[str, list] = field(default_factory=lambda: {k: [] for k in HISTORIES})  # rows (step, nats, s)
    parent: str | None = None  # checkpoint this one was fine-tuned from
    format_version: int = VERSION  # the format of the file it was read from
    record_hashes: np.ndarray | None = None  # records mode: fingerprints of the training lines, for --novel

    @property
    def use_params(self) -> dict[str, np.ndarray]:
        """The weights to use (sample, score, fine-tune): the served ones, else the last step's."""
        return self.params if self.served is None else self.served

    @property
    def served_is_last(self) -> bool:
        """Whether the served weights are exactly the last step's (so the file stores them once)."""
        return self.served is None or (self.served_kind == "weights" and self.served_step == self.step
                                       and self.served_temp == 1.0)

    @property
    def served_as(self) -> tuple[str, int, float]:
        """What the file serves, as saved and reported: (kind: "last", "weights" or "average"; its step; its
        temperature)."""
        if self.served_is_last:
            return "last", self.step, 1.0
        return self.served_kind, self.served_step, self.served_temp

    def is_training_record(self, text: str) -> bool:
        """Whether ``text`` (one generated record) is a line of the training corpus."""
        if self.record_hashes is None or not len(self.record_hashes):
            return False
        h = np.uint64(record_hash(text.rstrip("\n")))
        i = int(np.searchsorted(self.record_hashes, h))
        return i < len(self.record_hashes) and self.record_hashes[i] == h

    def meta(self) -> dict:
        return {
            "format": FORMAT,
            "version": VERSION,
            "charrnn_version": __version__,
            "model": to_dict(self.model_config),
            "train": to_dict(self.train_config),
            "vocab": self.vocab.chars,
            "step": self.step,
            "chars_seen": self.chars_seen,
            "seconds": self.seconds,
            "epoch": self.epoch,
            "pos": self.pos,
            "best_val_nats": self.best_val,
            "best_step": self.best_step,
            "served": dict(zip(("kind", "step", "temp"), self.served_as)),
            "average_steps": self.average_steps,
            "rng": self.rng.bit_generator.state,
            "parent": self.parent,
        }


def new_checkpoint(vocab: Vocab, mcfg: ModelConfig, tcfg: TrainConfig) -> Checkpoint:
    """A fresh, untrained run: parameters drawn from a Generator seeded by tcfg.seed."""
    mcfg.check()
    tcfg.check()
    rng = np.random.default_rng(tcfg.seed)
    params = network.init_params(mcfg, rng)
    return Checkpoint(
        model_config=mcfg, train_config=tcfg, vocab=vocab, params=params,
        opt_state=optim.init_state(params, tcfg.optimizer),
        state=network.zero_state(mcfg, 1), rng=rng,
        average={k: v.copy() for k, v in params.items()} if tcfg.average > 0 else None,
    )


def _arrays(ck: Checkpoint) -> dict[str, np.ndarray]:
    meta = json.dumps(ck.meta(), ensure_ascii=True).encode("utf-8")
    arrays = {"meta": np.frombuffer(meta, dtype=np.uint8)}
    arrays.update({f"param/{k}": v for k, v in (ck.params if ck.served_is_last else ck.served).items()})
    if not ck.served_is_last:
        arrays.update({f"last/{k}": v for k, v in ck.params.items()})
    if ck.average is not None:
        arrays.update({f"avg/{k}": v for k, v in ck.average.items()})
    arrays.update({f"opt/{k}": v for k, v in ck.opt_state.items()})
    arrays["state"] = ck.state
    for name in HISTORIES:
        arrays[f"hist/{name}"] = np.asarray(ck.history[name], dtype=np.float64).reshape(-1, 3)
    if ck.record_hashes is not None:
        arrays["records/hashes"] = ck.record_hashes
    return arrays


def save(ck: Checkpoint, path: str) -> None:
    """Write ``ck`` to ``path`` atomically (charrnn.atomic).

    If anything fails, the previous file at ``path`` is left as it was and a
    CharRNNError says why.
    """
    check_writable(path)
    try:
        write_atomically(path, lambda f: np.savez(f, **_arrays(ck)))
    except OSError as e:
        raise CharRNNError(f"could not save checkpoint {path}: {e.strerror or e}; the previous one is unchanged") from None


def check_writable(path: str) -> None:
    """Fail early, with a clear message, if a checkpoint cannot be written at ``path``."""
    if os.path.isdir(path):
        raise CharRNNError(f"{path}: is a directory; give a file path for the checkpoint, e.g. {os.path.join(path, 'model.npz')}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise CharRNNError(f"{path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise CharRNNError(f"{path}: no permission to write in {folder}")


def load(path: str) -> Checkpoint:
    """Read and fully validate a checkpoint; any problem raises CharRNNError naming it."""
    return Checkpoint(**read_checkpoint(path))
