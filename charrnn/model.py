"""A trained model to use from Python: load it, sample from it, score text with it.

    import charrnn
    m = charrnn.load("model.npz")
    m.sample(200, temp=0.8, seed=1)   # -> str
    m.score("some text").nats_per_char

Every method reads the model and never changes it, so one Model can serve
many calls (and threads).
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import asdict, dataclass, replace
from typing import Iterator, Sequence

import numpy as np

from charrnn import checkpoint, network
from charrnn.checkpoint import Checkpoint
from charrnn.errors import CharRNNError
from charrnn.numerics import LN2, make_rng, top_k
from charrnn.batch_sampling import Batch, sample_many, sample_texts
from charrnn.sample import Decoding, Stops, beam_search, generate_scored
from charrnn.score import Score, entropy_bits, eval_report, next_char_probs, scoring_batches
from charrnn.score import per_char as per_char_nats
from charrnn.scored_text import known_id_pieces, size_of
from charrnn.vanishing import gradient_norms
from charrnn.vocab import check_unknown_policy, describe_chars, fit_to_vocab
from charrnn.workers import WorkerPool, default_eval_workers
from charrnn.corpus import PIECE
from charrnn.gradients import InProcess


@dataclass
class ModelInfo:
    """What a checkpoint holds (``charrnn info --json`` prints exactly these fields)."""

    path: str | None  # where it was loaded from (None: in memory)
    format_version: int  # checkpoint format version
    config: dict  # ModelConfig: vocab_size, hidden, cell, layers, dtype, reset_id
    train_config: dict  # TrainConfig: optimizer, schedule, batch, validation, seed ...
    vocab: str  # the characters, in id order
    vocab_size: int
    params: int  # number of parameters
    steps: int  # optimizer steps taken
    chars_seen: int  # training characters consumed
    epoch: int  # completed passes over the training text
    seconds: float  # training time over all runs
    records: bool  # trained with --records (the state resets at newlines)
    best_val_nats: float | None  # best validation loss, nats/char
    best_step: int | None  # the step it was measured at
    served: str  # the weights served: "weights" or "average" of served_step, or "last" (the last step's)
    served_step: int  # the step whose weights (or average) are served
    served_temp: float  # their output layer is divided by this (1: as trained; charrnn.validation.calibrated)
    resume_step: int  # where --resume continues: the last step
    parent: str | None  # the checkpoint it was fine-tuned from

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Prediction:
    """The model's next-character distribution after text[:index + 1]."""

    index: int  # position in the text
    char: str  # the character at that position
    entropy_bits: float  # entropy of the whole distribution
    next: list[tuple[str, float]]  # the k likeliest next characters and their probabilities


def predictions(chars: str, text: str, p: np.ndarray, k: int) -> list[Prediction]:
    """One Prediction per character of ``text`` from its next-character probabilities p (n, V) over ``chars``."""
    order = top_k(p, k)  # (n, k)
    likeliest, ent = np.take_along_axis(p, order, axis=-1).tolist(), entropy_bits(p).tolist()  # Python floats
    return [Prediction(i, ch, e, [(chars[j], q) for j, q in zip(row, qs)])
            for i, (ch, e, row, qs) in enumerate(zip(text, ent, order.tolist(), likeliest))]


@dataclass
class PerChar:
    """Per-character scores of a text read from its start; entry i is about text[i + 1]."""

    chars: str  # the predicted characters (the text less its first character)
    nats: np.ndarray  # (n - 1,) -ln P(char | everything before it)
    p_top: np.ndarray  # (n - 1,) probability of the model's likeliest character at that point

    @property
    def bits(self) -> np.ndarray:
        return self.nats / LN2


class Model:
    """A trained character model: generation, next-character probabilities and scoring."""

    def __init__(self, ck: Checkpoint, path: str | None = None):
        self.checkpoint, self.path = ck, None if path is None else os.fspath(path)  # a str, also from a Path
        # what every method computes with: the checkpoint with the weights it serves in place of the last step's
        self._use = replace(ck, params=ck.use_params, served=None, average=None, opt_state={})

    def __repr__(self) -> str:
        c = self.checkpoint.model_config
        return f"<charrnn.Model {c.cell} {c.layers}x{c.hidden}, {c.vocab_size} chars, step {self.checkpoint.step}>"

    @property
    def vocab(self) -> str:
        """The characters the model knows, in id order."""
        return self.checkpoint.vocab.chars

    @property
    def records(self) -> bool:
        """Whether each line is an independent record (trained with --records)."""
        return self.checkpoint.model_config.reset_id >= 0

    @property
    def history(self) -> dict[str, list]:
        """The loss history kept in the checkpoint: {"train": rows, "val": rows} of (step, nats/char, seconds)."""
        return self.checkpoint.history

    def unknown(self, text: str) -> Counter:
        """How often each character of ``text`` outside the vocabulary occurs."""
        return self.checkpoint.vocab.unknown(text)

    def check_text(self, text: str) -> None:
        """Raise CharRNNError naming the characters of ``text`` the model does not know, if any."""
        self.checkpoint.vocab.encode(text)

    def fit(self, text: str, unknown: str = "error") -> tuple[str, dict]:
        """(``text`` with only the model's characters, {unknown character: count}): characters outside the
        vocabulary raise (``unknown="error"``), are dropped (``"skip"``) or become C (``"replace:C"``)."""
        check_unknown_policy(unknown, self.checkpoint.vocab)
        missing = self.checkpoint.vocab.unknown(text)
        fitted = fit_to_vocab(self.checkpoint.vocab, text, unknown, "the text", 'use unknown="skip" or "replace:C"')
        return fitted, dict(missing)

    def weights(self) -> dict[str, np.ndarray]:
        """The served weights by name (see charrnn.network); read them, don't change them."""
        return self._use.params

    def new_batch(self) -> Batch:
        """An empty charrnn.batch_sampling.Batch of this model's served weights, to draw many samples at once."""
        return Batch(self._use)

    def is_training_record(self, text: str) -> bool:
        """Records models: whether ``text`` (one generated record) is a line of the training corpus."""
        return self.checkpoint.is_training_record(text)

    @property
    def info(self) -> ModelInfo:
        ck = self.checkpoint
        return ModelInfo(
            path=self.path, format_version=ck.format_version, config=dict(vars(ck.model_config)),
            train_config=dict(vars(ck.train_config)), vocab=ck.vocab.chars, vocab_size=ck.vocab.size,
            params=network.num_params(ck.params), steps=ck.step, chars_seen=ck.chars_seen, epoch=ck.epoch,
            seconds=ck.seconds, records=self.records, best_val_nats=ck.best_val, best_step=ck.best_step,
            **dict(zip(("served", "served_step", "served_temp"), ck.served_as)), resume_step=ck.step,
            parent=ck.parent,
        )

    def stream_scored(self, n: int | None = 500, temp: float = 1.0, prime: str = "", top_k: int | None = None,
                      top_p: float | None = None, stop: str | Sequence[str] | None = None,
                      lines: int | None = None, seed: int | np.random.Generator | None = None,
                      ) -> Iterator[tuple[str, float, np.ndarray]]:
        """Like :meth:`stream`, yielding (char, p, probs (V,)): the model's own probabilities, temperature 1."""
        rng = make_rng(seed)
        return generate_scored(self._use, prime, rng, Decoding(temp, top_k, top_p), self._stops(n, stop, lines))

    def _stops(self, n: int | None, stop, lines: int | None) -> Stops:
        strings = [stop] if isinstance(stop, str) else list(stop or [])
        if any(s == "" for s in strings):
            raise CharRNNError("stop strings must not be empty")
        if self.records and lines is None and not strings:
            lines = 1  # a records model generates whole records
        return Stops(length=n or None, strings=strings, lines=lines)

    def stream_batch(self, k: int, n: int | None = 500, temp: float = 1.0, prime: str = "", top_k: int | None = None,
                     top_p: float | None = None, stop: str | Sequence[str] | None = None, lines: int | None = None,
                     seed: int | np.random.Generator | None = None) -> Iterator[tuple[int, str, float, np.ndarray, bool]]:
        """Draw ``k`` samples as one batch: one matrix product per character for all of them.

        Yields (sample index, char, p, probs (V,), finished) as characters are
        drawn, the samples interleaved; each ends at its own stop (see
        :meth:`stream`). The same ``seed`` gives the same samples; they need not
        equal :meth:`sample`'s, one at a time.
        """
        return sample_many(self._use, k, prime, *self._batch_args(k, n, temp, top_k, top_p, stop, lines, seed))

    def sample_batch(self, k: int, n: int | None = 500, temp: float = 1.0, prime: str = "", top_k: int | None = None,
                     top_p: float | None = None, stop: str | Sequence[str] | None = None, lines: int | None = None,
                     seed: int | np.random.Generator | None = None) -> list[str]:
        """``k`` samples drawn as one batch (see :meth:`stream_batch`), as strings in order."""
        return sample_texts(self._use, k, prime, *self._batch_args(k, n, temp, top_k, top_p, stop, lines, seed))

    def _batch_args(self, k, n, temp, top_k, top_p, stop, lines, seed) -> tuple[Decoding, Stops, int | None]:
        """(decoding, stops, seed) of a batch of ``k``, checked."""
        if k < 1:
            raise CharRNNError(f"k must be at least 1, not {k}")
        stops = self._stops(n, stop, lines)
        if stops.endless:
            raise CharRNNError("n=0 with no stop or lines never ends; a batch needs every sample to end")
        if isinstance(seed, np.random.Generator):
            seed = int(seed.integers(2**63))
        make_rng(seed)  # the same check of the seed as everywhere
        return Decoding(temp, top_k, top_p), stops, seed

    def stream(self, n: int | None = 500, temp: float = 1.0, prime: str = "", top_k: int | None = None,
               top_p: float | None = None, stop: str | Sequence[str] | None = None, lines: int | None = None,
               seed: int | np.random.Generator | None = None) -> Iterator[str]:
        """Yield generated characters one at a time, continuing ``prime`` (not yielded).

        Ends after ``n`` characters (None or 0: no limit), right after a
        ``stop`` string, or after ``lines`` newlines, whichever comes first; a
        records model ends at its record's end unless told otherwise. ``temp``
        divides the logits (0 is greedy), then ``top_k`` and ``top_p`` filter.
        The same ``seed`` gives the same text.
        """
        for ch, _, _ in self.stream_scored(n, temp, prime, top_k, top_p, stop, lines, seed):
            yield ch

    def sample(self, n: int | None = 500, temp: float = 1.0, prime: str = "", top_k: int | None = None,
               top_p: float | None = None, stop: str | Sequence[str] | None = None, lines: int | None = None,
               seed: int | np.random.Generator | None = None) -> str:
        """Generated text as one string (the prime not included); see :meth:`stream`."""
        if not n and not stop and lines is None and not self.records:
            raise CharRNNError("n=0 with no stop or lines never ends; use stream() for endless text")
        return "".join(self.stream(n, temp, prime, top_k, top_p, stop, lines, seed))

    def beam(self, length: int, width: int = 4, prime: str = "", n: int = 1) -> list[tuple[str, float]]:
        """The ``n`` likeliest continuations of ``prime`` of at most ``length`` characters, by beam search
        of ``width`` beams: [(text, total log-probability in nats)], likeliest first. A records model's
        continuations end at the record's end (its newline). Deterministic."""
        return beam_search(self._use, prime, length, width, "\n" if self.records else None, n)

    def gradient_norms(self, text: str, span: int = 50, samples: int = 64, seed: int = 0) -> np.ndarray:
        """Mean ||dL_t/da_(t-k)|| for k = 0..span over ``samples`` positions of ``text``: (span + 1,).

        How fast the gradient vanishes with the distance k (charrnn.vanishing).
        """
        ids = self.checkpoint.vocab.encode(text, skip_unknown=True)
        try:
            return gradient_norms(self._use, ids, span, samples, make_rng(seed))
        except ValueError as e:
            raise CharRNNError(str(e)) from None

    def probs(self, text: str, k: int = 5) -> list[Prediction]:
        """The k likeliest next characters after each prefix of ``text``, reading from its start."""
        if k < 1:
            raise CharRNNError(f"k must be at least 1, not {k}")
        if not text:
            raise CharRNNError("text is empty; give at least one character")
        ck = self._use
        p = next_char_probs(ck.params, ck.model_config, ck.vocab.encode(text))  # (n, V)
        return predictions(ck.vocab.chars, text, p, k)

    def _known_ids(self, text: str) -> tuple[np.ndarray, int]:
        ck = self.checkpoint
        unknown = ck.vocab.unknown(text)
        ids = ck.vocab.encode(text, skip_unknown=True)
        if len(ids) < 2:
            skipped = f" (skipped {describe_chars(sorted(unknown))})" if unknown else ""
            raise CharRNNError(f"fewer than 2 known characters; nothing to score{skipped}")
        return ids, sum(unknown.values())

    def score(self, text: "str | os.PathLike | Sequence[os.PathLike]", workers: int | None = 1,
              glob: Sequence[str] | None = None, encoding_errors: str = "strict") -> Score:
        """nats/char, bits/char and perplexity of ``text``, read from its start with the state carried.

        ``text`` is the text itself (a str), or a path (os.PathLike, e.g.
        pathlib.Path) or list of paths to files or folders (read as
        ``charrnn train`` reads them, ``glob`` choosing a folder's files),
        streamed so that a file of any size is scored in bounded memory.
        It is read as pieces of 8,192 characters, each after the 512 before it
        (charrnn.score.scoring_streams), 64 pieces at a time, shared between
        ``workers`` processes (None: as many as help, see
        charrnn.workers.default_eval_workers); the figures do not depend on
        ``workers``. Characters outside the vocabulary are skipped, counted in
        ``unknown_chars`` and listed in ``unknown``.
        """
        ck, unknown = self._use, Counter()
        size = size_of(text)
        n = default_eval_workers(-(-size // PIECE), size) if workers is None else max(1, workers)
        total, count = 0.0, 0
        pool = WorkerPool(min(n, 64), ck.model_config, min(n, 64)) if n > 1 else None
        try:
            for x, y, mask in scoring_batches(known_id_pieces(ck.vocab, text, unknown, glob, encoding_errors)):
                by = pool if pool is not None and len(x) > 1 else InProcess()
                total += float(by.rows_nll(ck.params, ck.model_config, x, y, mask, seq_len=256).sum())
                count += int(mask.sum())
        finally:
            if pool is not None:
                pool.close()
        if count < 1:
            skipped = f" (skipped {describe_chars(sorted(unknown))})" if unknown else ""
            raise CharRNNError(f"fewer than 2 known characters; nothing to score{skipped}")
        return eval_report(total, count, sum(unknown.values()), dict(unknown))

    def per_char(self, text: str) -> PerChar:
        """The cost of every character of ``text`` after the first (unknown characters skipped)."""
        ids, _ = self._known_ids(text)
        ck = self._use
        nats, p_top = per_char_nats(ck.params, ck.model_config, ids)
        return PerChar(ck.vocab.decode(ids[1:]), nats, p_top)


def load(path: str | os.PathLike) -> Model:
    """Load a checkpoint written by ``charrnn train``; raises CharRNNError naming any problem."""
    return Model(checkpoint.load(path), path)
