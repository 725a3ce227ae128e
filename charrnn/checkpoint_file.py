"""The checkpoint file's format, read back: every entry checked against the configs, nothing unpickled.

charrnn.checkpoint describes the layout and writes it; this module reads a
file into the fields of a Checkpoint, refusing with one CharRNNError that
names the problem anything missing, damaged, foreign or newer.
"""
from __future__ import annotations

import json
import os
import zipfile

import numpy as np

from charrnn import network, optim
from charrnn.config import ModelConfig, TrainConfig, from_dict
from charrnn.errors import CharRNNError
from charrnn.vocab import Vocab

FORMAT = "charrnn-checkpoint"
VERSION = 2  # 2: param/ is what is served, last/ and avg/ beside it; 1: param/ only
HISTORIES = ("train", "val", "avg")  # loss histories kept: training, validation, the average's


def _fail(path: str, why: str) -> CharRNNError:
    return CharRNNError(f"{path}: {why}")


def read_checkpoint(path: str) -> dict:
    """The Checkpoint fields of the file at ``path``, each validated; any problem raises CharRNNError naming it."""
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


def _read(path: str, npz) -> dict:
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
    return dict(model_config=mcfg, train_config=tcfg, vocab=vocab, record_hashes=_record_hashes(path, npz),
                **arrays, **progress)


def _configs(path: str, meta: dict) -> tuple[ModelConfig, TrainConfig, Vocab]:
    try:
        mcfg = from_dict(ModelConfig, meta.get("model"))
        stored = meta.get("train")
        if isinstance(stored, dict) and "val_from" not in stored:
            stored = {**stored, "val_from": "end"}  # written before spread validation: it held out the end
        if isinstance(stored, dict) and "lookup_lr" not in stored:
            stored = {**stored, "lookup_lr": 1.0}  # written before the lookup table had its own rate
        if isinstance(stored, dict) and "calibrate" not in stored:
            stored = {**stored, "calibrate": False}  # written before served weights were calibrated
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
    temp = served.get("temp", 1.0) if served else 1.0  # a file from before calibration: its weights as they were
    if isinstance(temp, bool) or not isinstance(temp, (int, float)) or not 0 < temp < float("inf"):
        raise _fail(path, f"has an invalid served temperature ({temp!r})")
    return dict(rng=rng, best_val=best_val, best_step=best_step, seconds=float(seconds), format_version=meta["version"],
                parent=parent if isinstance(parent, str) else None,
                served_kind=served["kind"] if served else "last", served_step=served["step"] if served else None,
                served_temp=float(temp),
                **ints)


def _record_hashes(path: str, npz) -> np.ndarray | None:
    if "records/hashes" not in npz.files:
        return None
    hashes = npz["records/hashes"]
    if hashes.dtype != np.uint64 or hashes.ndim != 1:
        raise _fail(path, "has malformed record fingerprints")
    return hashes
