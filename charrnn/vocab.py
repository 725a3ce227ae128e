"""The character vocabulary: sorted Unicode code points, and reading corpora.

A vocabulary is the sorted set of code points of the training text, so the
same text always gives the same ids. Ids are stored in the smallest unsigned
integer type that holds them (uint8 for up to 256 characters).
"""
from __future__ import annotations

import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np

from charrnn.errors import CharRNNError, UsageError

_CHUNK = 1 << 20  # characters converted at a time, to bound memory on huge corpora


def _code_points(text: str) -> np.ndarray:
    """(n,) uint32 code points of ``text``, without a Python loop over characters."""
    # surrogatepass keeps lone surrogates (from surrogateescape input) representable
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype="<u4")


def id_dtype(size: int) -> np.dtype:
    """The smallest unsigned integer type that holds ids 0..size-1."""
    for dt in (np.uint8, np.uint16, np.uint32):
        if size <= np.iinfo(dt).max + 1:
            return np.dtype(dt)
    raise CharRNNError(f"vocabulary of {size} characters is too large")


def describe_chars(chars: Iterable[str], limit: int = 12) -> str:
    """A short readable list of characters, e.g. ``'é' (U+00E9), '\\n' (U+000A)``."""
    chars = list(chars)
    shown = [f"{c!r} (U+{ord(c):04X})" for c in chars[:limit]]
    more = f" and {len(chars) - limit} more" if len(chars) > limit else ""
    return ", ".join(shown) + more


@dataclass(frozen=True)
class Vocab:
    """Characters in id order; ``chars[i]`` is the character with id ``i``."""

    chars: str
    _cps: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        cps = _code_points(self.chars)
        if len(cps) and np.any(np.diff(cps.astype(np.int64)) <= 0):
            raise CharRNNError("vocabulary is not a sorted set of distinct characters")
        object.__setattr__(self, "_cps", cps)

    @classmethod
    def from_text(cls, text: str) -> "Vocab":
        """Build the vocabulary of ``text``: ``sorted(set(text))``, computed in NumPy."""
        seen = np.zeros(0, dtype="<u4")
        for i in range(0, len(text), _CHUNK):
            seen = np.union1d(seen, np.unique(_code_points(text[i : i + _CHUNK])))
        return cls(seen.astype("<u4").tobytes().decode("utf-32-le", "surrogatepass"))

    @property
    def size(self) -> int:
        return len(self.chars)

    @property
    def dtype(self) -> np.dtype:
        return id_dtype(self.size)

    def unknown(self, text: str) -> Counter:
        """Count the characters of ``text`` that are not in the vocabulary."""
        bad: Counter = Counter()
        for i in range(0, len(text), _CHUNK):
            cps = _code_points(text[i : i + _CHUNK])
            pos = np.searchsorted(self._cps, cps).clip(0, max(self.size - 1, 0))
            miss = cps[self._cps[pos] != cps] if self.size else cps
            if len(miss):
                vals, counts = np.unique(miss, return_counts=True)
                for v, c in zip(vals.tolist(), counts.tolist()):
                    bad[chr(v)] += c
        return bad

    def encode(self, text: str, skip_unknown: bool = False) -> np.ndarray:
        """(n,) ids of ``text``; unknown characters raise, or are dropped if ``skip_unknown``.

        Works in chunks into one preallocated array, so a 100 MB corpus costs
        100 MB of uint8 ids and a few MB of scratch, not n int64s.
        """
        out = np.empty(len(text), dtype=self.dtype)
        n = 0
        for i in range(0, len(text), _CHUNK):
            cps = _code_points(text[i : i + _CHUNK])
            pos = np.searchsorted(self._cps, cps).clip(0, max(self.size - 1, 0))
            ok = self._cps[pos] == cps if self.size else np.zeros(len(cps), bool)
            if not ok.all():
                if not skip_unknown:
                    bad = self.unknown(text)
                    raise CharRNNError(
                        f"{sum(bad.values())} character(s) not in the model's vocabulary: "
                        f"{describe_chars(sorted(bad))}"
                    )
                pos = pos[ok]
            out[n : n + len(pos)] = pos
            n += len(pos)
        return out[:n] if n < len(out) else out

    def map_code_points(self, cps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ids of the known characters among code points ``cps``, the unknown code points): unknowns dropped."""
        pos = np.searchsorted(self._cps, cps).clip(0, max(self.size - 1, 0))
        ok = self._cps[pos] == cps if self.size else np.zeros(len(cps), bool)
        return pos[ok].astype(self.dtype), cps[~ok]

    def decode(self, ids: Iterable[int] | np.ndarray) -> str:
        """The text of ``ids``; ``decode(encode(t)) == t`` for any vocabulary text."""
        ids = np.asarray(ids, dtype=np.int64)
        return self._cps[ids].astype("<u4").tobytes().decode("utf-32-le", "surrogatepass")


def read_text(source: str, encoding_errors: str = "strict") -> str:
    """Read one corpus as UTF-8; ``-`` reads stdin. Raises CharRNNError naming the source."""
    name = "stdin" if source == "-" else source
    try:
        if source == "-":
            if sys.stdin is None or sys.stdin.closed:
                raise CharRNNError("stdin is closed: pipe a corpus in, or give a file path")
            data = sys.stdin.buffer.read()
        else:
            if os.path.isdir(source):
                raise CharRNNError(f"{name}: is a directory, not a text file")
            with open(source, "rb") as f:
                data = f.read()
    except FileNotFoundError:
        raise CharRNNError(f"{name}: no such file") from None
    except PermissionError:
        raise CharRNNError(f"{name}: permission denied") from None
    except (OSError, ValueError) as e:  # ValueError: read from a closed stdin
        raise CharRNNError(f"{name}: cannot read ({getattr(e, 'strerror', None) or e})") from None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]  # a UTF-8 byte-order mark is not text
    try:
        return data.decode("utf-8", errors=encoding_errors)
    except UnicodeDecodeError as e:
        raise CharRNNError(
            f"{name}: invalid UTF-8 at byte offset {e.start}; "
            f"fix the file or pass --encoding-errors replace"
        ) from None


def read_corpora(
    sources: list[str], encoding_errors: str = "strict", warn: Callable[[str], None] = lambda m: None
) -> str:
    """Read and concatenate corpora; an empty one, or binary content, is reported by name."""
    texts = []
    for src in sources:
        text = read_text(src, encoding_errors)
        name = "stdin" if src == "-" else src
        if not text:
            raise CharRNNError(f"{name}: is empty; give a corpus with at least 2 characters")
        if "\x00" in text:
            warn(f"{name}: contains NUL bytes; is it a binary file? training on it anyway")
        texts.append(text)
    return "".join(texts)


def fit_to_vocab(vocab: Vocab, text: str, policy: str = "error", what: str = "the corpus",
                 hint: str = "pass --unknown skip or --unknown replace:C") -> str:
    """Make ``text`` use only ``vocab``'s characters, as ``policy`` says.

    ``error`` raises, listing each unknown character with its count; ``skip``
    drops them; ``replace:C`` puts the vocabulary character C in their place.
    The vocabulary itself never changes.
    """
    bad = vocab.unknown(text)
    if not bad:
        return text
    if policy == "error":
        listed = ", ".join(f"{c!r} (U+{ord(c):04X}) x{n}" for c, n in bad.most_common(12))
        more = f" and {len(bad) - 12} more" if len(bad) > 12 else ""
        raise CharRNNError(f"{what} has {len(bad)} character(s) outside the model's vocabulary: {listed}{more}; "
                           f"{hint}")
    if policy == "skip":
        table = {ord(c): None for c in bad}
    else:
        table = {ord(c): policy[len("replace:"):] for c in bad}
    return text.translate(table)


def check_unknown_policy(policy: str, vocab: Vocab | None = None) -> None:
    """Validate an --unknown value; replace:C needs C to be one vocabulary character."""
    if policy in ("error", "skip"):
        return
    if policy.startswith("replace:") and len(policy) == len("replace:") + 1:
        c = policy[-1]
        if vocab is not None and c not in vocab.chars:
            raise UsageError(f"--unknown {policy}: {c!r} is not in the model's vocabulary")
        return
    raise UsageError(f"--unknown must be error, skip or replace:C (one character), not {policy!r}")
