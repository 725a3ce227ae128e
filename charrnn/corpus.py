"""Reading corpora of any size: files, folders and stdin, streamed into character ids.

    inputs  -> sources       resolve(): files as given, folders walked, stdin
    sources -> vocabulary    scan(): one streaming pass, memory bounded by CHUNK
    sources -> ids           encode(): a second pass into any array (memory, or a memmap in the cache)

Nothing here holds a whole corpus as text: each file is read CHUNK bytes at a
time, decoded incrementally (so a character split between reads is whole),
and turned into code points in NumPy. The ids are the same as
``Vocab.from_text(text).encode(text)`` of the text read whole.

Joining: the texts are concatenated as given, like ``cat``; a file found in
a folder that does not end with a newline is followed by one, so that no
line (a record, with --records) runs into the next file. A folder is read
recursively in sorted order; names starting with a dot are skipped, as are
binary files (a NUL byte in their first 8 KiB), with a note each.
"""
from __future__ import annotations

import fnmatch
import hashlib
import os
import sys
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np

from charrnn import utf8
from charrnn.errors import CharRNNError
from charrnn.utf8 import Decoded, wide_characters

CHUNK = 1 << 18  # bytes read at a time (small pieces keep NumPy's temporaries in the CPU cache)
PIECE = 1 << 20  # code points counted or mapped at a time
BINARY_PROBE = 8192  # bytes of a folder's file looked at for a NUL


@dataclass
class Source:
    """One text to read: a file, or stdin's bytes."""

    path: str  # "-" for stdin
    in_folder: bool = False  # found by walking a folder: gets a newline at its end if it lacks one
    data: bytes | None = None  # stdin's bytes, read once

    @property
    def name(self) -> str:
        return "stdin" if self.path == "-" else self.path


@dataclass
class Scan:
    """What a first pass found: the characters present, how many, and a fingerprint of the bytes read."""

    present: np.ndarray  # (max code point + 1,) bool
    chars: int  # characters in all, separators included
    digest: str  # sha1 of every byte read, in order
    with_nul: list = field(default_factory=list)  # names of the sources holding a NUL character


def resolve(inputs: list[str], globs: list[str] | None = None, note: Callable[[str], None] = lambda m: None
            ) -> list[Source]:
    """The sources ``inputs`` name, in reading order: files as given, "-" (stdin), folders walked."""
    sources = []
    for path in inputs:
        if path == "-":
            sources.append(Source("-", data=_read_stdin()))
        elif os.path.isdir(path):
            skipped = []
            found = list(_walk(path, globs or [], skipped))
            if not found:
                what = f" matching {', '.join(globs)}" if globs else ""
                but = f" ({len(skipped)} binary or unreadable file(s) skipped)" if skipped else ""
                raise CharRNNError(f"{path}: no text files{what} in this folder{but}")
            for line in skipped:
                note(line)
            sources += found
        elif not os.path.exists(path):
            raise CharRNNError(f"{path}: no such file")
        else:
            sources.append(Source(path))
    return sources


def _read_stdin() -> bytes:
    if sys.stdin is None or sys.stdin.closed:
        raise CharRNNError("stdin is closed: pipe a corpus in, or give a file path")
    try:
        return sys.stdin.buffer.read()
    except (OSError, ValueError) as e:
        raise CharRNNError(f"stdin: cannot read ({getattr(e, 'strerror', None) or e})") from None


def _walk(folder: str, globs: list[str], skipped: list) -> Iterator[Source]:
    """The text files under ``folder``, sorted, following links to folders once each (no loop); a note for each
    file skipped goes into ``skipped``."""
    seen = set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        st = os.stat(root)
        if (st.st_dev, st.st_ino) in seen:
            dirs[:] = []  # a link back to a folder already read
            continue
        seen.add((st.st_dev, st.st_ino))
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(f for f in files if not f.startswith(".")):
            path = os.path.join(root, name)
            rel = os.path.relpath(path, folder)
            if globs and not any(fnmatch.fnmatch(rel if "/" in g else name, g) for g in globs):
                continue
            if not os.path.isfile(path):
                skipped.append(f"note: skipping {path} (not a readable file)")
                continue
            if _is_binary(path):
                skipped.append(f"note: skipping {path} (binary: it holds a NUL byte)")
                continue
            yield Source(path, in_folder=True)


def _is_binary(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return b"\x00" in f.read(BINARY_PROBE)
    except OSError:
        return False  # reading it will say what is wrong


def read_chunks(source: Source) -> Iterator[bytes]:
    """The bytes of ``source``, CHUNK at a time; errors name the source."""
    if source.data is not None:
        for i in range(0, len(source.data), CHUNK):
            yield source.data[i : i + CHUNK]
        return
    try:
        with open(source.path, "rb") as f:
            while chunk := f.read(CHUNK):
                yield chunk
    except FileNotFoundError:
        raise CharRNNError(f"{source.name}: no such file (did it vanish while being read?)") from None
    except PermissionError:
        raise CharRNNError(f"{source.name}: permission denied") from None
    except IsADirectoryError:
        raise CharRNNError(f"{source.name}: is a directory, not a text file") from None
    except OSError as e:
        raise CharRNNError(f"{source.name}: cannot read ({e.strerror or e})") from None


def decoded(source: Source, errors: str, hasher=None) -> Iterator[Decoded]:
    """The text of one source, a chunk at a time (charrnn.utf8); the raw bytes go to ``hasher`` if given."""
    return utf8.decoded(read_chunks(source), source.name, source.in_folder, errors, hasher)


def code_points(source: Source, errors: str, hasher=None) -> Iterator[np.ndarray]:
    """The characters of one source as arrays of code points: uint8 for ASCII stretches, else uint32.

    A leading byte-order mark is dropped. Invalid UTF-8 raises naming the
    byte offset (``errors="strict"``) or becomes U+FFFD (``"replace"``). A
    folder's file that does not end with a newline gets one.
    """
    for piece in decoded(source, errors, hasher):
        yield piece.code_points()


def digest(sources: list[Source]) -> str:
    """The sha1 of every byte of ``sources`` in order: what scan() fingerprints, without decoding."""
    hasher = hashlib.sha1()
    for source in sources:
        for chunk in read_chunks(source):
            hasher.update(chunk)
    return hasher.hexdigest()


def read_all(sources: list[Source], errors: str = "strict") -> str:
    """The whole text of ``sources``, joined as for training (for texts known to be small)."""
    parts = []
    for source in sources:
        for cps in code_points(source, errors):
            parts.append(cps.tobytes().decode("ascii") if cps.dtype == np.uint8
                         else cps.tobytes().decode("utf-32-le", "surrogatepass"))
    return "".join(parts)


def _pieces(cps: np.ndarray) -> Iterator[np.ndarray]:
    for i in range(0, len(cps), PIECE):
        yield cps[i : i + PIECE]


def scan(sources: list[Source], errors: str, note: Callable[[str], None] = lambda m: None) -> Scan:
    """The first pass: which characters occur and how many there are, in memory bounded by CHUNK."""
    present = np.zeros(128, dtype=bool)
    hasher, chars, with_nul = hashlib.sha1(), 0, []
    for source in sources:
        before = chars
        for piece in decoded(source, errors, hasher):
            if piece.exact:  # from the bytes: ASCII by counting them, the rest by decoding their leads
                raw = np.frombuffer(piece.raw, dtype=np.uint8)
                counts = np.bincount(raw, minlength=256)
                present[:128] |= counts[:128] > 0
                wide = wide_characters(raw)[1] if piece.text is not None else raw[:0]
                nul, n = counts[0] > 0, len(raw) if piece.text is None else len(piece.text)
            else:
                cps = piece.code_points()
                present[:128] |= np.bincount(cps[cps < 128], minlength=128)[:128] > 0
                wide, nul, n = cps[cps >= 128], not cps.all(), len(cps)
            if len(wide):
                top = int(wide.max()) + 1
                if top > len(present):  # at most 0x110000 flags, however rare the character
                    present = np.concatenate([present, np.zeros(top - len(present), dtype=bool)])
                present[wide] = True
            if nul and source.name not in with_nul:
                with_nul.append(source.name)
            chars += n
        if chars == before and not source.in_folder:
            raise CharRNNError(f"{source.name}: is empty; give a corpus with at least 2 characters")
    for name in with_nul:
        note(f"{name}: contains NUL bytes; is it a binary file? training on it anyway")
    return Scan(present, chars, hasher.hexdigest(), with_nul)


def vocab_chars(present: np.ndarray) -> str:
    """The vocabulary of a scan: the characters present, sorted by code point."""
    return np.flatnonzero(present).astype("<u4").tobytes().decode("utf-32-le", "surrogatepass")


def encode(sources: list[Source], errors: str, chars: str, out: np.ndarray, stats: list | None = None) -> None:
    """The second pass: write the ids of every character, under the vocabulary ``chars``, into ``out`` (n,).

    ``stats`` are the sources' os.stat results taken before the first pass:
    a source that changed since (its size, mtime or ctime), or a count or
    character the first pass did not see, raises CharRNNError.
    """
    cps = np.frombuffer(chars.encode("utf-32-le", "surrogatepass"), dtype="<u4")
    table = np.zeros(max(int(cps.max()) + 1 if len(cps) else 1, 256), dtype=out.dtype)
    table[cps] = np.arange(len(cps))
    byte_ids = table[:256].astype(np.uint8).tobytes() if out.dtype == np.uint8 else None  # ASCII byte -> id
    at = 0
    for source in sources:
        for piece in decoded(source, errors):
            try:
                ids = _ids(piece, table, byte_ids)
            except IndexError:  # a character the first pass did not see
                raise _changed(source) from None
            if at + len(ids) > len(out):
                raise _changed(source)
            out[at : at + len(ids)] = ids
            at += len(ids)
    if at != len(out):
        raise _changed(sources[-1] if len(sources) == 1 else None)
    for source, before in zip(sources, stats or []):
        if before is not None and source_stat(source) != before:
            raise _changed(source)


def _ids(piece: Decoded, table: np.ndarray, byte_ids: bytes | None) -> np.ndarray:
    """The ids of one stretch of text under ``table`` (code point -> id)."""
    if byte_ids is None or not piece.exact:
        return table[piece.code_points()]
    ids = np.frombuffer(bytearray(piece.raw.translate(byte_ids)), dtype=np.uint8)  # one byte, one id
    if piece.text is None:
        return ids
    raw = np.frombuffer(piece.raw, dtype=np.uint8)
    lead, cp = wide_characters(raw)
    ids[lead] = table[cp]
    return ids[(raw & 0xC0) != 0x80]  # a wide character's id sits on its first byte; the others go


def source_stat(source: Source) -> tuple | None:
    """What says a source file changed: (size, mtime, ctime, inode); None for stdin or a vanished file."""
    if source.data is not None:
        return None
    try:
        st = os.stat(source.path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino


def _changed(source: Source | None) -> CharRNNError:
    what = source.name if source is not None else "a corpus file"
    return CharRNNError(f"{what} changed while it was being read; try again once it is written")
