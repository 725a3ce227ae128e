"""Reading several texts at once: concurrent probs and score requests in one multi-stream pass.

A text read alone advances one stream a character at a time, and each step
is a matrix-vector product with Python around it. B texts read as the B
streams of one pass cost little more per step than one, so a :class:`Reader`
(one thread per model) takes every request waiting when it is free and reads
their texts together. Each text starts from a zero state and is cut into
chunks as :func:`charrnn.score.next_char_probs_many` cuts them; the texts
do not touch each other (padding only follows a text's end).
"""
from __future__ import annotations

import queue
import threading
from concurrent.futures import Future

import numpy as np

from charrnn import network
from charrnn.model import predictions
from charrnn.score import chunk_length, eval_report, next_char_probs_many

MAX_SHARED = 4096  # a longer text is read alone, so a pass never holds more than texts * MAX_SHARED * V floats
MAX_TEXTS = 64  # texts read in one pass at most


def nats_many(params, cfg, texts: list[np.ndarray]) -> np.ndarray:
    """(B,) float64: the total nats of reading each ids text (n_i >= 2,) from a zero state, in one pass.

    The texts are the rows of one padded (B, max n_i - 1) batch, read in
    chunks by charrnn.network.chunk_nll as Model.score reads a text of up to
    charrnn.corpus.PIECE characters.
    """
    seq_len = chunk_length(len(texts))
    L, B = max(len(t) for t in texts) - 1, len(texts)
    x, y = np.zeros((B, L), dtype=np.int64), np.zeros((B, L), dtype=np.int64)
    mask = np.zeros((B, L), dtype=bool)
    for b, ids in enumerate(texts):
        x[b, : len(ids) - 1], y[b, : len(ids) - 1], mask[b, : len(ids) - 1] = ids[:-1], ids[1:], True
    state, totals = network.zero_state(cfg, B), np.zeros(B)
    for j in range(0, L, seq_len):
        nll, state = network.chunk_nll(params, cfg, x[:, j : j + seq_len].T, y[:, j : j + seq_len].T, state)  # (t, B)
        totals += nll.sum(axis=0, where=mask[:, j : j + seq_len].T, dtype=np.float64)
    return totals


class Reader:
    """The probs and score requests of one model (a charrnn.Model), read together in one thread.

    :meth:`probs` and :meth:`score` return Futures of what Model.probs and
    Model.score return for a text with only the model's characters.
    """

    def __init__(self, model):
        self.model = model
        self.waiting: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="charrnn-reader", daemon=True)
        self.thread.start()

    def probs(self, text: str, k: int) -> Future:
        """A Future of Model.probs(text, k)."""
        return self._submit("probs", text, k)

    def score(self, text: str) -> Future:
        """A Future of Model.score(text)."""
        return self._submit("score", text, 0)

    def close(self) -> None:
        self.waiting.put(None)
        self.thread.join(timeout=5)

    def _submit(self, kind: str, text: str, k: int) -> Future:
        done: Future = Future()
        self.waiting.put((kind, text, k, done))
        return done

    def _run(self) -> None:
        while True:
            item = self.waiting.get()
            if item is None:
                return
            items = [item]
            while len(items) < MAX_TEXTS:
                try:
                    item = self.waiting.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self.waiting.put(None)  # close once this pass is answered
                    break
                items.append(item)
            self._answer(items)

    def _answer(self, items: list) -> None:
        m = self.model
        least = {"probs": 1, "score": 2}  # fewer characters than this: Model refuses the text, with its message
        shared = {"probs": [], "score": []}
        for kind, text, k, done in items:
            if least[kind] <= len(text) <= MAX_SHARED and (kind == "score" or k >= 1):
                shared[kind].append((text, k, done))
            else:  # long texts, and refused ones, as Model reads them alone
                _settle(done, lambda: m.probs(text, k) if kind == "probs" else m.score(text))
        params, cfg, vocab = m.weights(), m.checkpoint.model_config, m.checkpoint.vocab
        for kind, these in shared.items():
            if not these:
                continue
            try:
                ids = [vocab.encode(text) for text, _, _ in these]
                got = next_char_probs_many(params, cfg, ids) if kind == "probs" else nats_many(params, cfg, ids)
            except Exception as e:  # noqa: BLE001 - handed to every waiting request
                for *_, done in these:
                    done.set_exception(e)
                continue
            for (text, k, done), a, got_i in zip(these, ids, got):
                _settle(done, lambda: predictions(vocab.chars, text, got_i, k) if kind == "probs"
                        else eval_report(float(got_i), len(a) - 1))


def _settle(done: Future, compute) -> None:
    try:
        done.set_result(compute())
    except Exception as e:  # noqa: BLE001 - handed to the waiting request
        done.set_exception(e)
