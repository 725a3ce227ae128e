"""Splitting a corpus and cutting it into batched chunks for truncated BPTT.

The training ids are cut into B contiguous streams, one per batch row. Step
``s`` of an epoch trains on columns ``[s*T, s*T + T)`` of every stream, so the
hidden state carried out of one chunk is the right one for the next chunk of
the same stream.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from charrnn.errors import CharRNNError


MIN_BLOCK = 1024  # characters per spread validation block at least (16 chunks of T=64)
MAX_BLOCKS = 40  # spread validation blocks at most


def val_blocks(n: int, n_val: int, line_starts: np.ndarray | None = None) -> list[tuple[int, int]]:
    """[start, end) of the held-out blocks: ``n_val`` of ``n`` characters, evenly spaced.

    Up to MAX_BLOCKS blocks of at least MIN_BLOCK characters, each centred in
    its own 1/k of the text, so every region of the corpus is both learned
    from and checked. With ``line_starts`` (sorted offsets where lines begin),
    each edge moves forward to the next line start, so no line is split.
    """
    k = max(1, min(MAX_BLOCKS, n_val // MIN_BLOCK))
    blocks, prev_end = [], 0
    for i in range(k):
        size = n_val // k + (i < n_val % k)
        start = max(prev_end, int((i + 0.5) * n / k - size / 2))
        end = min(n, start + size)
        if line_starts is not None:  # move both edges forward to where a line begins
            at = np.searchsorted(line_starts, [start, end])
            start, end = (int(line_starts[j]) if j < len(line_starts) else n for j in at)
        if end - start >= 2:
            blocks.append((start, end))
            prev_end = end
    return blocks


def split(ids: np.ndarray, val_frac: float, where: str = "end", newline_id: int = -1
          ) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) ids: ``val_frac`` of the ids held out for validation.

    ``where="end"`` holds out the last val_frac (train and val are views);
    ``"spread"`` holds out evenly spaced blocks (see :func:`val_blocks`) and
    trains on what lies between them, joined. With ``newline_id`` >= 0
    (records mode) spread blocks start and end on line boundaries. A
    validation split too short to score (under 2 characters) is empty instead.
    """
    if len(ids) < 2:
        raise CharRNNError(f"the corpus has {len(ids)} character(s); at least 2 are needed to learn anything")
    n_val = int(len(ids) * val_frac)
    if n_val < 2 or len(ids) - n_val < 2:
        return ids, ids[:0]
    if where == "end":
        return ids[: len(ids) - n_val], ids[len(ids) - n_val :]
    line_starts = None
    if newline_id >= 0:
        line_starts = np.flatnonzero(ids[:-1] == newline_id) + 1
    blocks = val_blocks(len(ids), n_val, line_starts)
    if not blocks:
        return ids, ids[:0]
    edges = [0] + [e for b in blocks for e in b] + [len(ids)]
    train = np.concatenate([ids[a:b] for a, b in zip(edges[::2], edges[1::2])])
    val = np.concatenate([ids[a:b] for a, b in blocks])
    return train, val


def fit_shape(n: int, batch: int, seq_len: int) -> tuple[int, int]:
    """The (B, T) actually used for ``n`` training characters.

    When n < B*(T+1), the batch shrinks first, then T, so that tiny corpora
    still train.
    """
    if n < 2:
        raise CharRNNError(f"the training split has {n} character(s); at least 2 are needed")
    B, T = batch, seq_len
    if n < B * (T + 1):
        B = max(1, n // (T + 1))
        if n < B * (T + 1):
            T = n - 1
    return B, T


@dataclass
class Streams:
    """B contiguous streams over the training ids; x[b, j] predicts y[b, j]."""

    x: np.ndarray  # (B, L) ids, a view of the corpus
    y: np.ndarray  # (B, L) the same, shifted by one character
    seq_len: int  # T

    @classmethod
    def of(cls, ids: np.ndarray, batch: int, seq_len: int) -> "Streams":
        L = (len(ids) - 1) // batch
        x = ids[: batch * L].reshape(batch, L)
        y = ids[1 : batch * L + 1].reshape(batch, L)
        return cls(x, y, seq_len)

    @property
    def batch(self) -> int:
        return self.x.shape[0]

    @property
    def steps_per_epoch(self) -> int:
        """Chunks per pass over the streams; the last one may be shorter than T."""
        return -(-self.x.shape[1] // self.seq_len)

    def chunk(self, pos: int) -> tuple[np.ndarray, np.ndarray]:
        """Chunk number ``pos`` of the epoch as time-major (T, B) arrays."""
        j = pos * self.seq_len
        x = self.x[:, j : j + self.seq_len].T
        y = self.y[:, j : j + self.seq_len].T
        return x, y


MIN_STREAM = 256  # scoring streams are at least this long, so few predictions start cold


def padded_streams(ids: np.ndarray, batch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut ids into at most ``batch`` streams that together cover every prediction.

    Returns x, y (B, L) and a boolean mask (B, L) that is False on padding,
    which only ever sits at the end of the last stream.
    """
    n = len(ids) - 1  # predictions
    B = max(1, min(batch, n // MIN_STREAM))
    L = -(-n // B)
    x = np.zeros(B * L, dtype=ids.dtype)
    y = np.zeros(B * L, dtype=ids.dtype)
    mask = np.zeros(B * L, dtype=bool)
    x[:n], y[:n], mask[:n] = ids[:-1], ids[1:], True
    return x.reshape(B, L), y.reshape(B, L), mask.reshape(B, L)


def record_hash(record: str) -> int:
    """A 64-bit fingerprint of one record (a line without its newline)."""
    digest = hashlib.blake2b(record.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def record_hashes(text: str) -> np.ndarray:
    """Sorted distinct fingerprints (uint64) of every non-empty line of ``text``."""
    hashes = {record_hash(line) for line in text.split("\n") if line}
    return np.array(sorted(hashes), dtype=np.uint64)
