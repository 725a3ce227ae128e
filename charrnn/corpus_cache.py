"""The corpus cache: a corpus encoded once into ids on disk, then memory-mapped by every later run.

Where: ``$CHARRNN_CACHE_DIR``, else ``$XDG_CACHE_HOME/charrnn``, else
``~/.cache/charrnn``. ``charrnn cache`` lists the caches and ``charrnn cache
--clear`` removes them; ``--no-cache`` trains without writing one.

Each cache is two files named by a key of the inputs (the files' real
paths, the --glob patterns, --encoding-errors):

    <key>.json           what was read: each file's size, mtime, ctime and inode, the sha1
                         of all the bytes, the vocabulary, the character count, the ids file
    <key>-<sha1>.npy     the ids (uint8, uint16 or uint32), a .npy array that np.load maps

Training reads the ids with pread (IdsFile), a few at a time, so its
memory does not grow with the corpus. The .npy is written first, the .json
last, each atomically: a cache is only
ever found through its .json, so a run killed while writing one (or a full
disk) leaves the old cache or none, never a partial one.

A cache is reused when every file has the same size, mtime, ctime and
inode. When only the times or inode differ, the files are hashed again and
the cache reused if their bytes are unchanged. Otherwise it is rebuilt, with
one note. (A file's ctime changes whenever it is written and cannot be set
back, so a file rewritten to the same size and mtime is still noticed.)
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass
from typing import Callable

import numpy as np

from charrnn.atomic import write_atomically
from charrnn.corpus import PIECE, digest, encode, resolve, scan, source_stat, vocab_chars
from charrnn.errors import CharRNNError
from charrnn.vocab import Vocab, id_dtype

FORMAT = "charrnn-corpus-cache"
VERSION = 1


class IdsFile:
    """The ids in a cache's .npy file, read with pread as they are needed.

    Slicing ``[a:b]`` returns a new array of those ids and nothing else is
    ever in memory: unlike a memory map, reading through a corpus does not
    grow the process's resident memory. Pickling (for MPI ranks) sends the
    ids themselves.
    """

    def __init__(self, path: str):
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, self.dtype = read(f)
            self.offset = f.tell()
        if len(shape) != 1 or fortran:
            raise ValueError("not a one-dimensional array")
        self.path, self.n = path, shape[0]
        if os.path.getsize(path) != self.offset + self.n * self.dtype.itemsize:
            raise ValueError("its size does not match its header (truncated?)")
        self.fd = os.open(path, os.O_RDONLY)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, key: slice) -> np.ndarray:
        start, stop, step = key.indices(self.n)
        if step != 1:
            raise IndexError("IdsFile reads contiguous ranges only")
        size = self.dtype.itemsize
        data = os.pread(self.fd, max(0, stop - start) * size, self.offset + start * size)
        return np.frombuffer(data, dtype=self.dtype)

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self[:], dtype=dtype)

    def max(self) -> int:
        return max((int(self[i : i + PIECE * 16].max()) for i in range(0, self.n, PIECE * 16)), default=0)

    def __reduce__(self):
        return np.array, (self[:],)

    def __del__(self):
        if getattr(self, "fd", None) is not None:
            os.close(self.fd)
            self.fd = None


@dataclass
class Corpus:
    """A corpus ready to train on: its ids and vocabulary."""

    ids: "np.ndarray | IdsFile"  # (n,) character ids: read from the cache, or an array in memory
    vocab: Vocab  # the corpus's own vocabulary: its characters, sorted
    sources: list  # the Sources read, in order
    cache: str | None = None  # the .npy file mapped, if any

    def ids_in(self, vocab: Vocab, policy: str = "error") -> np.ndarray:
        """The ids under another (a model's) vocabulary; characters it lacks follow ``policy``.

        ``error`` raises, listing each unknown character with its count; ``skip``
        drops them; ``replace:C`` puts C in their place. The same vocabulary
        returns the ids as they are (the memory map itself).
        """
        if self.vocab.chars == vocab.chars:
            return self.ids
        known = {c: i for i, c in enumerate(vocab.chars)}
        mapping = np.array([known.get(c, -1) for c in self.vocab.chars], dtype=np.int64)  # ours -> theirs
        if (mapping < 0).any():
            counts = np.zeros(self.vocab.size, dtype=np.int64)
            for i in range(0, len(self.ids), PIECE):
                counts += np.bincount(self.ids[i : i + PIECE], minlength=self.vocab.size)
            bad = Counter({self.vocab.chars[i]: int(counts[i]) for i in np.flatnonzero(mapping < 0)})
            if policy == "error":
                listed = ", ".join(f"{c!r} (U+{ord(c):04X}) x{n}" for c, n in bad.most_common(12))
                more = f" and {len(bad) - 12} more" if len(bad) > 12 else ""
                raise CharRNNError(f"the corpus has {len(bad)} character(s) outside the model's vocabulary: "
                                   f"{listed}{more}; pass --unknown skip or --unknown replace:C")
            if policy.startswith("replace:"):
                mapping[mapping < 0] = known[policy[len("replace:"):]]
        out = np.empty(len(self.ids), dtype=vocab.dtype)
        n = 0
        for i in range(0, len(self.ids), PIECE):
            ids = mapping[self.ids[i : i + PIECE]]
            ids = ids[ids >= 0]  # skip
            out[n : n + len(ids)] = ids
            n += len(ids)
        return out[:n]


def cache_dir() -> str:
    """Where corpus caches live (see the module's docstring)."""
    if os.environ.get("CHARRNN_CACHE_DIR"):
        return os.environ["CHARRNN_CACHE_DIR"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "charrnn")


def open_corpus(inputs: list[str], globs: list[str] | None = None, errors: str = "strict", cache: bool = True,
                note: Callable[[str], None] = lambda m: None) -> Corpus:
    """The corpus of ``inputs`` (files, folders, "-"), through the cache unless ``cache`` is False or it is stdin."""
    sources = resolve(inputs, globs, note)
    if not cache or any(s.data is not None for s in sources):
        return _in_memory(sources, errors, note)
    folder = cache_dir()
    try:
        os.makedirs(folder, exist_ok=True)
        if not os.access(folder, os.W_OK | os.X_OK):
            raise PermissionError(13, "permission denied")
    except OSError as e:
        note(f"note: cannot write the corpus cache in {folder} ({e.strerror or e}); reading the corpus into memory")
        return _in_memory(sources, errors, note)
    key = hashlib.sha1(json.dumps([[os.path.realpath(s.path) for s in sources], globs or [], errors, VERSION])
                       .encode()).hexdigest()[:20]
    return _reuse(folder, key, sources, errors, note) or _build(folder, key, sources, errors, note)


def _in_memory(sources, errors: str, note) -> Corpus:
    stats = [source_stat(s) for s in sources]
    found = scan(sources, errors, note)
    chars = vocab_chars(found.present)
    ids = np.empty(found.chars, dtype=id_dtype(max(len(chars), 1)))
    encode(sources, errors, chars, ids, stats)
    return Corpus(ids, Vocab(chars), sources)


def _stats(sources) -> list[dict]:
    out = []
    for s in sources:
        try:
            st = os.stat(s.path)
        except OSError as e:
            raise CharRNNError(f"{s.name}: cannot read ({e.strerror or e})") from None
        out.append({"path": os.path.realpath(s.path), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                    "ctime_ns": st.st_ctime_ns, "ino": st.st_ino})
    return out


def _reuse(folder: str, key: str, sources, errors: str, note) -> Corpus | None:
    """The cached corpus if its cache is whole and its files unchanged; else None (saying why, if it existed)."""
    meta_path = os.path.join(folder, key + ".json")
    if not os.path.exists(meta_path):
        return None
    names = ", ".join(s.name for s in sources[:3]) + (" ..." if len(sources) > 3 else "")
    try:
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
        if meta.get("format") != FORMAT or meta.get("version") != VERSION:
            raise ValueError("not a charrnn corpus cache")
        stats = _stats(sources)
        old = meta["sources"]
        if stats != old:
            if [s["size"] for s in stats] != [s["size"] for s in old] or digest(sources) != meta["digest"]:
                note(f"note: {names} changed since it was cached; encoding it again")
                return None
            meta["sources"] = stats  # touched, not changed: remember the new times
            write_atomically(meta_path, lambda f: f.write(json.dumps(meta).encode()))
        vocab = Vocab(meta["vocab"])
        ids = IdsFile(os.path.join(folder, meta["ids"]))
        if len(ids) != meta["chars"] or ids.dtype != id_dtype(max(vocab.size, 1)) or \
                (len(ids) and ids.max() >= vocab.size):
            raise ValueError("its ids do not fit its vocabulary")
    except CharRNNError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as e:
        note(f"note: the corpus cache of {names} is damaged ({type(e).__name__}); encoding the corpus again")
        return None
    for name in meta.get("with_nul", []):
        note(f"{name}: contains NUL bytes; is it a binary file? training on it anyway")
    return Corpus(ids, vocab, sources, os.path.join(folder, meta["ids"]))


def _build(folder: str, key: str, sources, errors: str, note) -> Corpus:
    """Encode the corpus into a new cache and map it; on a write failure, train from memory instead."""
    stats, before = _stats(sources), [source_stat(s) for s in sources]
    found = scan(sources, errors, note)
    chars = vocab_chars(found.present)
    dtype = id_dtype(max(len(chars), 1))
    name = f"{key}-{found.digest[:12]}.npy"
    path = os.path.join(folder, name)
    try:
        write_atomically(path, lambda f: _write_ids(f, sources, errors, chars, dtype, found.chars, before))
        meta = {"format": FORMAT, "version": VERSION, "sources": stats, "digest": found.digest, "vocab": chars,
                "chars": found.chars, "ids": name, "with_nul": found.with_nul}
        write_atomically(os.path.join(folder, key + ".json"), lambda f: f.write(json.dumps(meta).encode()))
    except OSError as e:
        note(f"note: could not write the corpus cache in {folder} ({e.strerror or e}); reading the corpus into memory")
        return _in_memory(sources, errors, lambda m: None)
    for old in glob.glob(os.path.join(glob.escape(folder), key + "-*.npy")):
        if old != path:
            os.remove(old)
    return Corpus(IdsFile(path), Vocab(chars), sources, path)


def _write_ids(f, sources, errors: str, chars: str, dtype, n: int, stats) -> None:
    """The .npy header, then the ids encoded straight into the file through a memory map."""
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": (n,)}
    np.lib.format.write_array_header_1_0(f, header)
    f.flush()
    start = f.tell()
    f.truncate(start + n * dtype.itemsize)
    if n:
        ids = np.memmap(f, dtype=dtype, mode="r+", offset=start, shape=(n,))
        encode(sources, errors, chars, ids, stats)
        ids.flush()
        del ids


def cache_entries() -> list[dict]:
    """The caches in cache_dir(): {"key", "files", "chars", "bytes"} each."""
    entries = []
    for meta_path in sorted(glob.glob(os.path.join(glob.escape(cache_dir()), "*.json"))):
        try:
            with open(meta_path, encoding="utf-8") as f:
                meta = json.load(f)
            size = os.path.getsize(os.path.join(cache_dir(), meta["ids"]))
            entries.append({"key": os.path.basename(meta_path)[:-5], "files": [s["path"] for s in meta["sources"]],
                            "chars": meta["chars"], "bytes": size})
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return entries


def clear_cache() -> int:
    """Remove every corpus cache (and any half-written file); returns the bytes freed."""
    freed = 0
    for path in glob.glob(os.path.join(glob.escape(cache_dir()), "*")):
        if path.endswith((".json", ".npy", ".tmp")) and os.path.isfile(path):
            freed += os.path.getsize(path)
            os.remove(path)
    return freed
