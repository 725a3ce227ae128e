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
import zipfile
from dataclasses import dataclass, field

import numpy as np

from charrnn import __version__, network, optim
from charrnn.atomic import write_atomically
from charrnn.config import ModelConfig, TrainConfig, from_dict, to_dict
from charrnn.data import record_hash
from charrnn.errors import CharRNNError
from charrnn.vocab import Vocab

FORMAT = "charrnn-checkpoint"
VERSION = 2
HISTORIES = ("train", "val", "avg")  # loss histories kept: training, validation, the average's


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
        return self.served is None or (self.served_kind == "weights" and self.served_step == self.step)

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
            "served": {"kind": "last" if self.served_is_last else self.served_kind,
                       "step": self.step if self.served_is_last else self.served_step},
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


def _fail(path: str, why: str) -> CharRNNError:
    return CharRNNError(f"{path}: {why}")


def load(path: str) -> Checkpoint:
    """Read and fully validate a checkpoint; any problem raises CharRNNError naming it."""
    if not os.path.exists(path):
        raise _fail(path, "no such checkpoint; train one with 'charrnn train CORPUS -o PATH'")
    if os.path.isdir(path):
        raise _fail(path, "is a directory, not a checkpoint")
    if os.path.getsize(path) == 0:
        raise _fail(path, "is empty, not a checkpoint")
    try:
        with np.load(path, allow_pickle=False) as npz:
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise _fail(path, "is not a charrnn checkpoint (not an .npz archive)")
            return _read(path, npz)
    except CharRNNError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError) as e:
        raise _fail(path, f"is truncated or not a charrnn checkpoint ({type(e).__name__})") from None
    except Exception as e:  # damaged data of any other kind: never a traceback
        raise _fail(path, f"is damaged or not a charrnn checkpoint ({type(e).__name__}: {str(e)[:80]})") from None


def _get(path, npz, key, shape=None, dtype=None):
    if key not in npz.files:
        raise _fail(path, f"is not a complete charrnn checkpoint (missing {key})")
    if shape is not None:  # refuse to inflate an entry far larger than its expected shape
        expected = int(np.prod(shape)) * np.dtype(dtype).itemsize
        if npz.zip.getinfo(key + ".npy").file_size > expected + 4096:
            raise _fail(path, f"entry {key} is larger than its shape allows")
    arr = npz[key]
    if shape is not None and (arr.shape != tuple(shape) or arr.dtype != np.dtype(dtype)):
        raise _fail(path, f"entry {key} has shape {arr.shape} {arr.dtype}, expected {tuple(shape)} {np.dtype(dtype)}")
    return arr


def _read(path: str, npz) -> Checkpoint:
    if "meta" not in npz.files:
        raise _fail(path, "is an .npz archive but not a charrnn checkpoint (no meta entry)")
    raw = npz["meta"]
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise _fail(path, "has a malformed meta entry")
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _fail(path, "has unreadable metadata (not JSON)") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise _fail(path, "is an .npz archive but not a charrnn checkpoint")
    version = meta.get("version")
    if not isinstance(version, int) or version < 1:
        raise _fail(path, f"has an invalid format version {version!r}")
    if version > VERSION:
        raise _fail(path, f"has format version {version}, newer than this charrnn reads ({VERSION}); upgrade charrnn")
    mcfg, tcfg, vocab = _configs(path, meta)
    arrays = _arrays_of(path, npz, mcfg, tcfg)
    progress = _progress(path, meta, arrays["served"] is not None)
    return Checkpoint(model_config=mcfg, train_config=tcfg, vocab=vocab, record_hashes=_record_hashes(path, npz),
                      **arrays, **progress)


def _configs(path: str, meta: dict) -> tuple[ModelConfig, TrainConfig, Vocab]:
    try:
        mcfg = from_dict(ModelConfig, meta.get("model"))
        stored = meta.get("train")
        if isinstance(stored, dict) and "val_from" not in stored:
            stored = {**stored, "val_from": "end"}  # written before spread validation: it held out the end
        if isinstance(stored, dict) and "lookup_lr" not in stored:
            stored = {**stored, "lookup_lr": 1.0}  # written before the lookup table had its own rate
        tcfg = from_dict(TrainConfig, stored)
        mcfg.check()
        tcfg.check()
    except CharRNNError as e:
        raise _fail(path, f"has an invalid stored config ({e})") from None
    chars = meta.get("vocab")
    if not isinstance(chars, str):
        raise _fail(path, "has no vocabulary")
    vocab = Vocab(chars)
    if vocab.size != mcfg.vocab_size:
        raise _fail(path, f"vocabulary has {vocab.size} characters but the model expects {mcfg.vocab_size}")
    return mcfg, tcfg, vocab


def _arrays_of(path: str, npz, mcfg: ModelConfig, tcfg: TrainConfig) -> dict:
    """Checkpoint keyword arguments: the weights (served, last, average), optimizer and carried state,
    loss histories; each checked against the configs."""
    shapes = network.param_shapes(mcfg)
    extra = [f for f in npz.files if f.split("/")[0] in ("param", "last", "avg") and f.split("/", 1)[1] not in shapes]
    if extra:
        raise _fail(path, f"has unexpected parameters: {', '.join(extra[:5])}")

    def weights(prefix: str):
        if prefix != "param" and not any(f.startswith(prefix + "/") for f in npz.files):
            return None
        return {k: _get(path, npz, f"{prefix}/{k}", s, mcfg.dtype) for k, s in shapes.items()}

    served, last = weights("param"), weights("last")
    params = served if last is None else last
    template = optim.init_state(params, tcfg.optimizer)
    opt_state = {k: _get(path, npz, f"opt/{k}", v.shape, v.dtype) for k, v in template.items()}
    state = _get(path, npz, "state")
    L, _, S = network.state_shape(mcfg, 1)
    if state.ndim != 3 or state.shape[0] != L or state.shape[2] != S or state.dtype != np.dtype(mcfg.dtype):
        raise _fail(path, f"carried state has shape {state.shape} {state.dtype}, expected ({L}, B, {S}) {mcfg.dtype}")
    history = {}
    for name in HISTORIES:
        h = _get(path, npz, f"hist/{name}") if name != "avg" or "hist/avg" in npz.files else np.zeros((0, 3))
        if h.ndim != 2 or h.shape[1] != 3 or h.dtype != np.float64:
            raise _fail(path, f"loss history {name} is malformed")
        history[name] = h.tolist()
    return dict(params=params, served=None if last is None else served, average=weights("avg"),
                opt_state=opt_state, state=state, history=history)


def _progress(path: str, meta: dict, has_served: bool) -> dict:
    """The run's counters, best validation, what is served, RNG and parent, as Checkpoint keyword arguments."""
    ints = {k: meta.get(k, 0) if k == "average_steps" else meta.get(k)
            for k in ("step", "chars_seen", "epoch", "pos", "average_steps")}
    for k, v in ints.items():
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise _fail(path, f"has an invalid {k} ({v!r})")
    seconds = meta.get("seconds", 0.0)
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not seconds >= 0:
        raise _fail(path, "has an invalid seconds")
    best_val, best_step = meta.get("best_val_nats"), meta.get("best_step")
    if best_val is not None and not isinstance(best_val, (int, float)):
        raise _fail(path, "has an invalid best_val_nats")
    rng = np.random.Generator(np.random.PCG64())
    try:
        rng.bit_generator.state = meta.get("rng")
    except Exception:
        raise _fail(path, "has an invalid random-number-generator state") from None
    parent = meta.get("parent")
    served = meta.get("served") if has_served else None
    if has_served and not (isinstance(served, dict) and served.get("kind") in ("weights", "average")
                           and isinstance(served.get("step"), int)):
        raise _fail(path, "has last-step weights but does not say which weights it serves")
    return dict(rng=rng, best_val=best_val, best_step=best_step, seconds=float(seconds), format_version=meta["version"],
                parent=parent if isinstance(parent, str) else None,
                served_kind=served["kind"] if served else "last", served_step=served["step"] if served else None,
                **ints)


def _record_hashes(path: str, npz) -> np.ndarray | None:
    if "records/hashes" not in npz.files:
        return None
    hashes = npz["records/hashes"]
    if hashes.dtype != np.uint64 or hashes.ndim != 1:
        raise _fail(path, "has malformed record fingerprints")
    return hashes
