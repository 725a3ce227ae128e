"""Scoring text under a model: validation loss, eval, and next-character probabilities."""
from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass, field
from typing import Iterable, Iterator

import numpy as np

from charrnn import network
from charrnn.config import ModelConfig
from charrnn.data import padded_streams, stream_length
from charrnn.numerics import LN2, safe_log, softmax


def total_nll(params, cfg: ModelConfig, ids: np.ndarray, batch: int = 64, seq_len: int = 128,
              by=None, warm: int = 0) -> tuple[float, int]:
    """Sum of nats over every prediction in ``ids`` (n,) and their count: :func:`stream_nll`, summed."""
    nats, counts = stream_nll(params, cfg, ids, batch, seq_len, by, warm)
    return float(nats.sum()), int(counts.sum())


def stream_nll(params, cfg: ModelConfig, ids: np.ndarray, batch: int = 64, seq_len: int = 128,
               by=None, warm: int = 0, temps: tuple = ()) -> tuple[np.ndarray, np.ndarray]:
    """Nats summed over each stream's predictions of ``ids`` (n,), and each stream's count: two (b,) arrays
    (with ``temps``, the nats are (b, K), at each temperature: :func:`rows_nll`).

    The text is cut into up to ``batch`` contiguous streams, each starting
    from a zero state and carrying it chunk to chunk, so the whole of it is
    scored in batched forward passes. With ``warm``, each stream but the
    first first reads (unscored) up to that many characters before its part,
    so that it scores its part as a reading of the whole text would, up to
    what the state remembers from further back. With batch=1 this is the exact
    loss of reading the text from its start. ``by`` (a charrnn.gradients.Gradients)
    shares the streams between processes; None scores them here. The streams
    depend only on ``ids``, ``batch`` and ``warm``, so two models scored alike
    can be compared stream by stream.
    """
    if len(ids) < 2:
        return np.zeros((0, len(temps)) if temps else 0), np.zeros(0, dtype=np.int64)
    if warm:
        x, y, mask = scoring_streams(ids, piece=stream_length(len(ids) - 1, batch), warm=warm)
    else:
        x, y, mask = padded_streams(ids, batch)
    counts = mask.sum(axis=1)
    if by is None:
        return rows_nll(params, cfg, x, y, mask, seq_len, temps), counts
    key = (ids.__array_interface__["data"][0], len(ids), batch, warm)  # the same array as last time?
    return by.rows_nll(params, cfg, x, y, mask, seq_len, key, temps), counts


def rows_nll(params, cfg: ModelConfig, x, y, mask, seq_len: int = 128, temps: tuple = ()) -> np.ndarray:
    """Nats summed over the predictions of each row of padded streams x, y, mask (B, L), each read from a zero
    state: (B,) float64; with ``temps`` (K temperatures), (B, K): the nats with the logits divided by each.

    The streams are independent, so any split of the rows between workers
    gives the same sums (up to float rounding).
    """
    B, L = x.shape
    state = network.zero_state(cfg, B)
    total = np.zeros((B, len(temps)) if temps else B)
    for j in range(0, L, seq_len):
        xs, ys, ms = x[:, j : j + seq_len].T, y[:, j : j + seq_len].T, mask[:, j : j + seq_len].T  # (t, B)
        if temps:
            logits, state = network.chunk_logits(params, cfg, xs, state)  # (t, B, V)
            total += nll_at(logits, ys, temps).sum(axis=0, where=ms[..., None], dtype=np.float64)
        else:
            nll, state = network.chunk_nll(params, cfg, xs, ys, state)
            total += nll.sum(axis=0, where=ms, dtype=np.float64)  # nll (t, B)
    return total


def nll_at(logits: np.ndarray, y: np.ndarray, temps: tuple) -> np.ndarray:
    """Nats of each prediction with its ``logits`` (..., V) divided by each of K ``temps``: y (...,) -> (..., K)."""
    picked = np.take_along_axis(logits, y[..., None], axis=-1)[..., 0]
    top = logits.max(axis=-1)
    out = np.empty(y.shape + (len(temps),))
    for k, t in enumerate(temps):
        shifted = (logits - top[..., None]) * np.float32(1 / t)
        out[..., k] = np.log(np.exp(shifted).sum(axis=-1)) - (picked - top) / t
    return out


PIECE = 8192  # eval reads a long text as pieces of this many predictions, batched ...
WARM = 512  # ... each after reading (unscored) up to this many characters before it


def scoring_streams(ids: np.ndarray, piece: int = PIECE, warm: int = WARM):
    """x, y, mask (B, L) for scoring ``ids`` (n,) as independent pieces that agree with one reading.

    Piece i scores predictions [i*piece, (i+1)*piece); every piece but the
    first starts ``warm`` characters earlier with those predictions masked
    out, so its state has read the text before it. The streams depend only
    on the text, so however they are shared between workers the total is
    the same; against reading the whole text as one stream, the difference
    is what the state remembers from more than ``warm`` characters back.
    """
    n = len(ids) - 1  # predictions
    starts = list(range(0, n, piece))
    L = min(n, piece + (warm if len(starts) > 1 else 0))
    x = np.zeros((len(starts), L), dtype=ids.dtype)
    y = np.zeros_like(x)
    mask = np.zeros(x.shape, dtype=bool)
    for row, s in enumerate(starts):
        lead = min(warm, s)
        stop = min(n, s + piece)
        w = stop - (s - lead)
        x[row, :w], y[row, :w] = ids[s - lead : stop], ids[s - lead + 1 : stop + 1]
        mask[row, lead:w] = True
    return x, y, mask


def scoring_batches(chunks: Iterable[np.ndarray], piece: int = PIECE, warm: int = WARM, rows: int = 64
                    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The rows of :func:`scoring_streams`, ``rows`` at a time, from ids that arrive a chunk at a time.

    ``chunks`` yields id arrays that together are the text; only a piece
    and its warm-up are held at once beyond the current chunk, so a text of
    any length is scored in bounded memory. Yields x, y, mask (b, <= piece + warm).
    """
    buf, base, s, batch = np.zeros(0, dtype=np.int64), 0, 0, []
    for chunk in itertools.chain(chunks, [None]):
        if chunk is not None:
            buf = np.concatenate([buf, chunk]) if len(buf) else np.asarray(chunk)
        end = base + len(buf)  # ids [base, end) are in buf
        while s + piece + 1 <= end or (chunk is None and s < end - 1):
            lead, stop = min(warm, s), min(s + piece, end - 1)
            batch.append((buf[s - lead - base : stop + 1 - base], lead))
            s += piece
            if len(batch) == rows:
                yield _rows(batch)
                batch = []
        cut = max(0, s - warm - base)  # what no later piece reads
        buf, base = buf[cut:], base + cut
    if batch:
        yield _rows(batch)


def _rows(windows: list):
    """x, y, mask (b, width) from (ids window, warm-up length) pairs; width is the longest window's."""
    dtype, width = windows[0][0].dtype, max(len(w) for w, _ in windows) - 1
    x, y = np.zeros((len(windows), width), dtype=dtype), np.zeros((len(windows), width), dtype=dtype)
    mask = np.zeros((len(windows), width), dtype=bool)
    for row, (window, lead) in enumerate(windows):
        w = len(window) - 1
        x[row, :w], y[row, :w] = window[:-1], window[1:]
        mask[row, lead:w] = True
    return x, y, mask


def nats_per_char(params, cfg: ModelConfig, ids: np.ndarray, batch: int = 64) -> float:
    """Mean cross-entropy in nats/char over ``ids`` (NaN if there is nothing to score)."""
    total, n = total_nll(params, cfg, ids, batch)
    return total / n if n else float("nan")


CHUNK = 256  # characters per forward chunk when reading a text for its probabilities
ROWS = 1024  # characters x texts per forward chunk at most, so a pass over many texts stays a few MB


def chunk_length(texts: int) -> int:
    """Characters per forward chunk for a pass over ``texts`` streams: CHUNK, less as they grow past ROWS."""
    return max(16, min(CHUNK, ROWS // texts))


def next_char_probs(params, cfg: ModelConfig, ids: np.ndarray) -> np.ndarray:
    """(n, V) float64: row i is P(next char | ids[:i+1]), reading from a zero state."""
    return next_char_probs_many(params, cfg, [ids])[0] if len(ids) else np.zeros((0, cfg.vocab_size))


def next_char_probs_many(params, cfg: ModelConfig, texts: list[np.ndarray]) -> list[np.ndarray]:
    """[(n_i, V) float64] for ids texts[i] (n_i >= 1,): row j is P(next char | texts[i][:j + 1]), each from a zero state.

    The texts are the columns of one (max n_i, B) pass, padded with id 0 after each one's end.
    """
    n, B = max(len(t) for t in texts), len(texts)
    x = np.zeros((n, B), dtype=np.int64)  # (n, B)
    for b, ids in enumerate(texts):
        x[: len(ids), b] = ids
    state = network.zero_state(cfg, B)
    rows: list[list[np.ndarray]] = [[] for _ in texts]
    t = chunk_length(B)
    for j in range(0, n, t):
        logits, state = network.chunk_logits(params, cfg, x[j : j + t], state)  # (t, B, V)
        for b, ids in enumerate(texts):
            if len(ids) > j:
                rows[b].append(softmax(logits[: len(ids) - j, b, :]))
    return [np.concatenate(r) for r in rows]


@dataclass
class Score:
    """How well a model predicts a text."""

    chars: int  # predictions scored (the text's known characters, less the first)
    nats_per_char: float  # mean cross-entropy, nats per character
    bits_per_char: float  # the same in bits: nats / ln 2
    perplexity: float  # exp(nats_per_char)
    unknown_chars: int  # characters skipped because the vocabulary lacks them
    unknown: dict = field(default_factory=dict, repr=False)  # which ones: {char: count} (not in to_dict)

    def to_dict(self) -> dict:
        """The figures ``charrnn eval --json`` prints."""
        out = asdict(self)
        del out["unknown"]
        return out


def eval_report(nats_total: float, chars: int, unknown: int = 0, which: dict | None = None) -> Score:
    """The eval figures for ``chars`` >= 1 predictions: nats and bits per char, perplexity, counts."""
    npc = nats_total / chars
    return Score(chars=chars, nats_per_char=npc, bits_per_char=npc / LN2, perplexity=math.exp(npc),
                 unknown_chars=unknown, unknown=which or {})


def per_char(params, cfg: ModelConfig, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reading ids (n,) from a zero state: (nats (n-1,), p_top (n-1,)).

    nats[i] is -ln P(ids[i+1] | ids[:i+1]); p_top[i] the probability of the
    model's most likely character at that point.
    """
    p = next_char_probs(params, cfg, ids[:-1])  # (n-1, V)
    got = p[np.arange(len(ids) - 1), ids[1:]]
    return -safe_log(got), p.max(axis=1)


def entropy_bits(p: np.ndarray) -> np.ndarray:
    """Entropy in bits of each distribution along the last axis."""
    q = np.where(p > 0, p, 1.0)
    return -(p * np.log2(q)).sum(axis=-1)
