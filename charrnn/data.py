"""Splitting a corpus and cutting it into batched chunks for truncated BPTT.

The training ids are cut into B contiguous streams, one per batch row. Step
``s`` of an epoch trains on columns ``[s*T, s*T + T)`` of every stream, so the
hidden state carried out of one chunk is the right one for the next chunk of
the same stream.
"""
from __future__ import annotations

import hashlib

import numpy as np

from charrnn.errors import CharRNNError


MIN_BLOCK = 1024  # characters per spread validation block at least (16 chunks of T=64)
MAX_BLOCKS = 40  # spread validation blocks at most
SCAN = 1 << 16  # characters searched at a time for the next line start


class Spans:
    """Ranges [start, stop) of one id array, read as if joined: the text between held-out blocks.

    The array may be a memory map of a corpus cache: reading a range copies
    only that range, so nothing here ever holds the whole corpus.
    """

    def __init__(self, base: np.ndarray, ranges: list[tuple[int, int]]):
        self.base, self.ranges = base, [(a, b) for a, b in ranges if b > a]
        self.starts = np.cumsum([0] + [b - a for a, b in self.ranges])  # offset of each range in the join

    def __len__(self) -> int:
        return int(self.starts[-1])

    @property
    def dtype(self) -> np.dtype:
        return self.base.dtype

    def read(self, start: int, stop: int) -> np.ndarray:
        """A copy of ids [start, stop) of the joined ranges."""
        out = np.empty(max(0, stop - start), dtype=self.base.dtype)
        k = int(np.searchsorted(self.starts, start, side="right")) - 1
        at = 0
        while at < len(out):
            a, b = self.ranges[k]
            lo = a + start + at - int(self.starts[k])
            take = min(b - lo, len(out) - at)
            out[at : at + take] = self.base[lo : lo + take]
            at, k = at + take, k + 1
        return out

    def array(self) -> np.ndarray:
        """The joined ids as one array (for what is known to be small: validation text)."""
        return self.read(0, len(self))


def next_line_start(ids: np.ndarray, pos: int, newline_id: int) -> int:
    """The first offset >= max(pos, 1) that follows a newline (len(ids) if none): where a record begins."""
    at = max(pos, 1)
    while at < len(ids):
        hits = np.flatnonzero(ids[at - 1 : at - 1 + SCAN] == newline_id)
        if len(hits):
            return at + int(hits[0])
        at += SCAN
    return len(ids)


def val_blocks(n: int, n_val: int, snap=None) -> list[tuple[int, int]]:
    """[start, end) of the held-out blocks: ``n_val`` of ``n`` characters, evenly spaced.

    Up to MAX_BLOCKS blocks of at least MIN_BLOCK characters, each centred in
    its own 1/k of the text, so every region of the corpus is both learned
    from and checked. With ``snap`` (offset -> the next line start, see
    :func:`next_line_start`), each edge moves forward to where a line begins,
    so no line is split.
    """
    k = max(1, min(MAX_BLOCKS, n_val // MIN_BLOCK))
    blocks, prev_end = [], 0
    for i in range(k):
        size = n_val // k + (i < n_val % k)
        start = max(prev_end, int((i + 0.5) * n / k - size / 2))
        end = min(n, start + size)
        if snap is not None:  # move both edges forward to where a line begins
            start, end = snap(start), snap(end)
        if end - start >= 2:
            blocks.append((start, end))
            prev_end = end
    return blocks


def split(ids: np.ndarray, val_frac: float, where: str = "end", newline_id: int = -1, val_max: int = 0
          ) -> tuple[Spans, Spans]:
    """(train, val) Spans of ``ids`` (n,): ``val_frac`` of them, at most ``val_max`` (0: no cap), held out.

    ``where="end"`` holds out the end; ``"spread"`` holds out evenly spaced
    blocks (see :func:`val_blocks`) and trains on what lies between them.
    With ``newline_id`` >= 0 (records mode) spread blocks start and end on
    line boundaries. A validation split too short to score (under 2
    characters) is empty instead.
    """
    n = len(ids)
    if n < 2:
        raise CharRNNError(f"the corpus has {n} character(s); at least 2 are needed to learn anything")
    n_val = int(n * val_frac)
    if val_max:
        n_val = min(n_val, val_max)
    if n_val < 2 or n - n_val < 2:
        return Spans(ids, [(0, n)]), Spans(ids, [])
    if where == "end":
        return Spans(ids, [(0, n - n_val)]), Spans(ids, [(n - n_val, n)])
    snap = (lambda pos: next_line_start(ids, pos, newline_id)) if newline_id >= 0 else None
    blocks = val_blocks(n, n_val, snap)
    if not blocks:
        return Spans(ids, [(0, n)]), Spans(ids, [])
    edges = [0] + [e for b in blocks for e in b] + [n]
    return Spans(ids, list(zip(edges[::2], edges[1::2]))), Spans(ids, blocks)


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


GOLDEN = 0.6180339887498949  # epoch e's streams start frac(e * GOLDEN) of a chunk in: offsets spread evenly


class Streams:
    """B contiguous streams over the training ids: stream b is ids[o + b*L : o + (b+1)*L], and y is x shifted by one.

    The offset o is 0, or with ``shift`` it moves each epoch (see
    :meth:`offset`), so the chunks of each pass end at other characters.
    """

    def __init__(self, ids: "Spans | np.ndarray", batch: int, seq_len: int, shift: bool = False):
        self.ids = ids if isinstance(ids, Spans) else Spans(ids, [(0, len(ids))])
        self.batch, self.seq_len = batch, seq_len  # B, T
        self.room = max(0, min(seq_len - 1, len(self.ids) - 1 - batch)) if shift else 0  # the largest offset
        self.length = (len(self.ids) - 1 - self.room) // batch  # L: characters per stream

    @classmethod
    def of(cls, ids: "Spans | np.ndarray", batch: int, seq_len: int, shift: bool = False) -> "Streams":
        return cls(ids, batch, seq_len, shift)

    def offset(self, epoch: int) -> int:
        """Where epoch ``epoch``'s streams start: 0 for the first, then spread over [0, T) (0 without shift)."""
        return int((epoch * GOLDEN) % 1.0 * (self.room + 1))  # (room + 1) is 1 without shift: always 0

    @property
    def chars(self) -> int:
        """Training characters in all the streams (B * L)."""
        return self.batch * self.length

    @property
    def steps_per_epoch(self) -> int:
        """Chunks per pass over the streams; the last one may be shorter than T."""
        return -(-self.length // self.seq_len)

    def chunk(self, pos: int, epoch: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Chunk number ``pos`` of epoch ``epoch`` as time-major (T, B) arrays x and y."""
        j = pos * self.seq_len + self.offset(epoch)
        width = min(self.seq_len, self.length - pos * self.seq_len)
        x = np.empty((width, self.batch), dtype=self.ids.dtype)
        y = np.empty_like(x)
        for b in range(self.batch):
            row = self.ids.read(b * self.length + j, b * self.length + j + width + 1)  # (width + 1,)
            x[:, b], y[:, b] = row[:-1], row[1:]
        return x, y


MIN_STREAM = 256  # scoring streams are at least this long, so few predictions start cold


def stream_length(n: int, batch: int) -> int:
    """Predictions per stream when ``n`` predictions are cut into at most ``batch`` streams of at least MIN_STREAM."""
    return -(-n // max(1, min(batch, n // MIN_STREAM)))


def padded_streams(ids: np.ndarray, batch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut ids into at most ``batch`` streams that together cover every prediction.

    Returns x, y (B, L) and a boolean mask (B, L) that is False on padding,
    which only ever sits at the end of the last stream.
    """
    n = len(ids) - 1  # predictions
    L = stream_length(n, batch)
    B = -(-n // L)
    x = np.zeros(B * L, dtype=ids.dtype)
    y = np.zeros(B * L, dtype=ids.dtype)
    mask = np.zeros(B * L, dtype=bool)
    x[:n], y[:n], mask[:n] = ids[:-1], ids[1:], True
    return x.reshape(B, L), y.reshape(B, L), mask.reshape(B, L)


def record_hash(record: str) -> int:
    """A 64-bit fingerprint of one record (a line without its newline)."""
    digest = hashlib.blake2b(record.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def record_hashes(ids: np.ndarray, decode, piece: int = 1 << 20) -> np.ndarray:
    """Sorted distinct fingerprints (uint64) of every non-empty line of the text of ``ids`` (n,).

    ``decode`` turns ids into text (Vocab.decode); the text is decoded a
    piece at a time, so ``ids`` may be a memory map of any size.
    """
    hashes, carry = set(), ""
    for i in range(0, len(ids), piece):
        lines = (carry + decode(ids[i : i + piece])).split("\n")
        carry = lines.pop()
        hashes.update(record_hash(line) for line in lines if line)
    if carry:
        hashes.add(record_hash(carry))
    return np.array(sorted(hashes), dtype=np.uint64)
