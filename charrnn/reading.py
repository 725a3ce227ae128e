"""Reading texts beside the generations: probs and score requests as rows of the engine's network steps.

A text read alone advances one stream a character at a time, each step a
small matrix product with Python around it, and on a few cores the matrix
products of a few rows cost little more than one. So the HTTP server's
engine (charrnn.engine) reads every waiting probs and score text as a row
of :class:`Reads`, and steps those rows in the same network step as the
samples it draws: thirty requests at once, of either kind, cost one matrix
product per character between them. Each text starts from a zero state;
rows join and leave between steps and never touch each other.
"""
from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

from charrnn import network
from charrnn.numerics import log_softmax, softmax
from charrnn.score import eval_report

MAX_SHARED = 4096  # a longer text is read alone (Model.probs, Model.score), not as a row
BUFFER = 32  # network steps whose top-layer outputs are kept, then scored in one output product
LEAST = {"probs": 1, "score": 2}  # characters a text needs; Model refuses a shorter one, with its message


def fits(kind: str, text: str) -> bool:
    """Whether a ``kind`` ("probs" or "score") request for ``text`` is read as a row of :class:`Reads`."""
    return LEAST[kind] <= len(text) <= MAX_SHARED


@dataclass
class Read:
    """One text being read."""

    kind: str  # "probs" or "score"
    text: str
    done: Future  # probs: gets the (n, V) next-character probabilities; score: what Model.score(text) returns
    probs: np.ndarray | None = None  # probs: (n, V) float64, row i P(next | text[: i + 1]), filled as it is read


class Reads:
    """The texts a model is reading as rows: their states, where each is, what each has gathered.

    The caller steps the network on :meth:`inputs` from :attr:`state`
    (charrnn.network.step_top) and hands the result to :meth:`stepped`, or
    lets :meth:`read_chunk` read several characters in one forward pass. The
    top layer's outputs wait in a buffer and are scored together, when the
    buffer is full or a row's text ends; a row read to its end answers its
    Future and leaves.
    """

    def __init__(self, model):
        self.vocab = model.checkpoint.vocab
        self.params, self.cfg = model.weights(), model.checkpoint.model_config
        self.rows: list[Read] = []
        self.state = network.zero_state(self.cfg, 0)  # (L, R, S)
        self.width = self.params["W_ya"].shape[0]  # what the output layer reads: H, or L*H with skip
        self.tops = np.zeros((BUFFER, 0, self.width), dtype=self.state.dtype)  # (BUFFER, R, width) unscored steps
        self.fill = 0  # steps in tops
        self.ids = np.zeros((0, 1), dtype=np.int64)  # (R, W) each row's text as ids, padded with 0 after its end
        self.pos = np.zeros(0, dtype=np.int64)  # (R,) characters each row has read
        self.ends = np.zeros(0, dtype=np.int64)  # (R,) characters it reads in all: n for probs, n - 1 for score
        self.scoring = np.zeros(0, dtype=bool)  # (R,) it is a score
        self.nats = np.zeros(0)  # (R,) a score's nats so far

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, read: Read) -> None:
        """Start reading ``read.text`` (one that :func:`fits`; raises for an unknown character)."""
        ids = self.vocab.encode(read.text)  # (n,)
        self.flush()  # every row's buffered steps start at the same step
        n, scoring = len(ids), read.kind == "score"
        if not scoring:
            read.probs = np.empty((n, self.vocab.size))
        width = max(self.ids.shape[1], n)
        self.ids = np.concatenate([np.pad(self.ids, ((0, 0), (0, width - self.ids.shape[1]))),
                                   np.pad(ids, (0, width - n))[None]])
        self.rows.append(read)
        L, _, S = self.state.shape
        self.state = np.concatenate([self.state, np.zeros((L, 1, S), dtype=self.state.dtype)], axis=1)
        self.tops = np.concatenate([self.tops, np.zeros((BUFFER, 1, self.width), dtype=self.tops.dtype)], axis=1)
        self.pos = np.append(self.pos, 0)
        self.ends = np.append(self.ends, n - 1 if scoring else n)
        self.scoring = np.append(self.scoring, scoring)
        self.nats = np.append(self.nats, 0.0)

    def inputs(self) -> np.ndarray:
        """(R,) the character id each row reads at the next step."""
        return self.ids[np.arange(len(self.rows)), self.pos + self.fill]

    def stepped(self, top: np.ndarray, state: np.ndarray) -> None:
        """The network's step over :meth:`inputs`: top-layer output (R, H), state (L, R, S)."""
        self.tops[self.fill] = top
        self.fill += 1
        self.state = state
        if self.fill == BUFFER or (self.pos + self.fill >= self.ends).any():
            self.flush()

    def read_chunk(self, most: int) -> None:
        """Read up to ``most`` characters of every row in one forward pass (no samples are stepped beside them)."""
        self.flush()
        t = int(min(most, (self.ends - self.pos).max()))
        cols = self.pos[None, :] + np.arange(t)[:, None]  # (t, R); past a row's end: filler, not used
        x = self.ids[np.arange(len(self.rows))[None, :], np.minimum(cols, self.ids.shape[1] - 1)]
        top, self.state, _ = network.layers_forward(self.params, self.cfg, x, self.state)  # (t, R, H)
        self._score(top)

    def flush(self) -> None:
        """Score the buffered steps; rows read to their end answer and leave."""
        if self.fill:
            tops, self.fill = self.tops[: self.fill], 0
            self._score(tops)

    def _score(self, top: np.ndarray) -> None:
        """Take t steps of every row from its position: top-layer outputs (t, R, H).

        A row with fewer than t characters left ends here; the rest of its
        steps, and the state it leaves, are not used.
        """
        t, R, H = top.shape
        logits = network.output(self.params, top.reshape(t * R, H)).reshape(t, R, -1)  # (t, R, V), one product
        cols = self.pos[None, :] + np.arange(t)[:, None]  # (t, R) the characters read
        scores, probs = np.flatnonzero(self.scoring), np.flatnonzero(~self.scoring)
        if len(scores):
            at = cols[:, scores]  # (t, S)
            target = self.ids[scores[None, :], np.minimum(at + 1, self.ids.shape[1] - 1)]  # (t, S) the next characters
            nll = -np.take_along_axis(log_softmax(logits[:, scores]), target[:, :, None], axis=2)[:, :, 0]  # (t, S)
            self.nats[scores] += nll.sum(axis=0, where=at < self.ends[scores][None, :])
        if len(probs):
            p = softmax(logits[:, probs])  # (t, P, V) P(next | what each row has read)
            for j, row in enumerate(probs):
                got = min(t, self.ends[row] - self.pos[row])
                self.rows[row].probs[self.pos[row] : self.pos[row] + got] = p[:got, j]
        self.pos = np.minimum(self.pos + t, self.ends)
        finished = self.pos >= self.ends
        for row in np.flatnonzero(finished):
            self._answer(self.rows[row], float(self.nats[row]))
        if finished.any():
            self._keep(~finished)

    @staticmethod
    def _answer(read: Read, nats: float) -> None:
        read.done.set_result(read.probs if read.kind == "probs" else eval_report(nats, len(read.text) - 1))

    def _keep(self, rows: np.ndarray) -> None:
        self.rows = [r for r, k in zip(self.rows, rows) if k]
        self.state, self.tops = self.state[:, rows], self.tops[:, rows]
        for name in ("ids", "pos", "ends", "scoring", "nats"):  # the per-row arrays
            setattr(self, name, getattr(self, name)[rows])
        if self.rows:  # no wider than the longest text left
            self.ids = self.ids[:, : max(len(r.text) for r in self.rows)]
