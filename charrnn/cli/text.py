"""`charrnn sample` and `probs`: generating text and looking at the next-character probabilities."""
from __future__ import annotations

import math
import sys
from typing import List, Optional

import typer

from charrnn.cli.app import app, closed_pipe_is_fine, emit_json, note, read_arg_text
from charrnn.display import heat_char, print_heat_legend, probs_table, stdout_console
from charrnn.errors import CharRNNError, UsageError
from charrnn.numerics import TINY, make_rng, top_k
from charrnn.sample import Decoding
from charrnn.model import Model, load


@app.command()
def sample(
    model_path: str = typer.Option("model.npz", "-m", "--model", help="Checkpoint to sample from."),
    length: int = typer.Option(500, "-n", "--length", help="Most new characters per sample; 0 is no limit."),
    temp: float = typer.Option(1.0, "-t", "--temp", help="Temperature: below 1 is safer, above 1 wilder, 0 is greedy."),
    prime: str = typer.Option("", "-p", "--prime", help="Text to start from, printed first; - reads it from stdin."),
    seed: Optional[int] = typer.Option(None, help="Seed for the random draws; the same seed gives the same text."),
    top_k: Optional[int] = typer.Option(None, "--top-k", help="Draw only among the K most likely characters."),
    top_p: Optional[float] = typer.Option(None, "--top-p", help="Nucleus sampling: the smallest set with probability >= P."),
    greedy: bool = typer.Option(False, "--greedy", help="Always the most likely character (same as --temp 0)."),
    beam: Optional[int] = typer.Option(None, "--beam", help="Beam search of this width for the likeliest --length characters."),
    stop: Optional[List[str]] = typer.Option(None, "--stop", help="End a sample right after this string (repeatable)."),
    lines: Optional[int] = typer.Option(None, "--lines", min=1, help="End a sample after this many newlines."),
    num_samples: int = typer.Option(1, "--num-samples", help="How many independent samples (with --beam: the N likeliest)."),
    sep: str = typer.Option("\n\n", "--sep", help="Printed between samples (backslash escapes allowed)."),
    show_probs: bool = typer.Option(False, "--show-probs", help="Colour by the model's confidence (terminal) or JSON per character."),
    novel: bool = typer.Option(False, "--novel", help="Records models: drop samples that are lines of the training corpus."),
    json_output: bool = typer.Option(False, "--json", help="JSON: one object per sample, or per character with --show-probs."),
):
    """Generate text, streaming it to stdout as it is drawn.

    Decoding applies temperature, then --top-k, then --top-p. Samples end at
    --length, a --stop string or --lines newlines, whichever comes first.

    Examples:

      charrnn sample -m home.npz -n 40 --seed 1

      charrnn sample -m home.npz --prime HOM -n 20 --temp 0

      charrnn sample -m home.npz --lines 3 --num-samples 2 --top-k 2 --json
    """
    if length < 0:
        raise UsageError(f"--length must be 0 or more, not {length}")
    if num_samples < 1:
        raise UsageError(f"--num-samples must be at least 1, not {num_samples}")
    if stop and any(s == "" for s in stop):
        raise UsageError("--stop needs a non-empty string")
    Decoding(temp=0.0 if greedy else temp, top_k=top_k, top_p=top_p).check()
    m = load(model_path)
    if novel and not m.records:
        raise UsageError("--novel needs a model trained with --records")
    if not length and not stop and lines is None and not m.records and num_samples > 1:
        raise UsageError("-n 0 with no --stop or --lines never ends, so --num-samples cannot follow it")
    prime_text = read_arg_text(prime) if prime else ""
    m.check_text(prime_text)  # reject unknown characters before printing anything
    separator = "" if m.records else sep.encode("utf-8").decode("unicode_escape")
    with closed_pipe_is_fine():
        if beam is not None:
            writer = _JsonSamples(prime_text) if json_output else _Text(prime_text, separator)
            _write_beams(m, writer, prime_text, length, beam, num_samples)
        else:
            writer = _writer(prime_text, separator, json_output, show_probs, m)
            options = dict(n=length or None, temp=0.0 if greedy else temp, prime=prime_text, top_k=top_k,
                           top_p=top_p, stop=stop, lines=lines,
                           seed=make_rng(seed))  # one Generator for all samples
            _write_samples(m, writer, num_samples, novel, options)
        if sys.stdout.isatty() and not json_output:
            sys.stdout.write("\n")


class _Text:
    """Samples as plain text, streamed as drawn: separator, prime, characters."""

    def __init__(self, prime: str, separator: str, heat: bool = False):
        self.prime, self.separator, self.heat = prime, separator, heat

    def start(self, i: int) -> None:
        sys.stdout.write((self.separator if i else "") + self.prime)

    def char(self, ch: str, p: float, probs) -> None:
        sys.stdout.write(heat_char(ch, p) if self.heat else ch)
        if ch == "\n":
            sys.stdout.flush()

    def chars(self, text: str) -> None:
        sys.stdout.write(text)

    def end(self, text: str, nats: float) -> None: ...


class _JsonSamples(_Text):
    """One JSON object per sample: prime, text, its cost in nats, its length."""

    def __init__(self, prime: str):
        super().__init__(prime, "")

    def start(self, i): ...
    def char(self, ch, p, probs): ...
    def chars(self, text): ...

    def end(self, text, nats):
        emit_json({"prime": self.prime, "text": text, "nats": nats, "chars": len(text)})


class _JsonChars(_JsonSamples):
    """One JSON object per character: its probability and the model's top five."""

    def __init__(self, prime: str, vocab: str):
        super().__init__(prime)
        self.vocab, self.i = vocab, 0

    def start(self, i):
        self.i = i

    def char(self, ch, p, probs):
        emit_json({"sample": self.i, "char": ch, "p": round(p, 6),
                   "top": [{"char": self.vocab[j], "p": round(float(probs[j]), 6)} for j in top_k(probs, 5)]})

    def end(self, text, nats): ...


def _writer(prime: str, separator: str, json_output: bool, show_probs: bool, m: Model) -> _Text:
    if json_output:
        return _JsonChars(prime, m.vocab) if show_probs else _JsonSamples(prime)
    heat = show_probs and sys.stdout.isatty()
    if heat:
        print_heat_legend()
    return _Text(prime, separator, heat)


def _write_beams(m: Model, writer: _Text, prime: str, length: int, width: int, num_samples: int) -> None:
    """The likeliest continuations by beam search; a records model's end at the record's end."""
    if not length:
        raise UsageError("--beam needs a --length of at least 1")
    results = m.beam(length, width, prime, num_samples)
    for i, (text, logp) in enumerate(results):
        writer.start(i)
        writer.chars(text)
        writer.end(text, -logp)


def _write_samples(m: Model, writer: _Text, num_samples: int, novel: bool, options: dict) -> None:
    """Write ``num_samples`` samples; with ``novel``, skip lines of the training corpus.

    One sample is drawn on its own; more are drawn as batches (Model.stream_batch),
    the first of each streamed as it is drawn, the others written after it in order.
    """
    done, dropped, tries = 0, 0, 0
    while done < num_samples:
        tries += 1
        if novel and tries > 20:
            note(f"warning: stopped after {tries - 1} batches with {done} novel sample(s)")
            break
        k = num_samples - done
        if k == 1:
            drawn = [list(m.stream_scored(**options))] if novel else [m.stream_scored(**options)]
        else:
            seed = options["seed"]
            rest = {key: v for key, v in options.items() if key != "seed"}
            drawn = _batch(m.stream_batch(k, seed=seed, **rest), k, None if novel else (writer, done))
        for i, sample in enumerate(drawn):
            if novel and m.is_training_record("".join(ch for ch, _, _ in sample)):
                dropped += 1
                continue
            if k == 1 or novel or i > 0:  # the batch's first sample was written as it was drawn
                _write_one(writer, done, sample)
            done += 1
    if novel:
        note(f"dropped {dropped} sample(s) found verbatim in the training corpus")


def _batch(events, k: int, live) -> list:
    """The k samples of a batch as lists of (char, p, probs); with ``live`` = (writer, index), sample 0 is
    written as it is drawn."""
    samples = [[] for _ in range(k)]
    nats = 0.0
    if live is not None:
        live[0].start(live[1])
    for i, ch, p, probs, finished in events:
        samples[i].append((ch, p, probs))
        if live is not None and i == 0:
            live[0].char(ch, p, probs)
            nats -= math.log(max(p, TINY))
            if finished:
                live[0].end("".join(c for c, _, _ in samples[0]), nats)
    return samples


def _write_one(writer: _Text, index: int, sample) -> None:
    writer.start(index)
    pieces, nats = [], 0.0
    for ch, p, probs in sample:
        pieces.append(ch)
        nats -= math.log(max(p, TINY))  # math, not numpy: this runs once per sampled character
        writer.char(ch, p, probs)
    writer.end("".join(pieces), nats)


# ---------------------------------------------------------------- probs


@app.command()
def probs(
    text: str = typer.Argument(..., help="Text to read, or - for stdin.", show_default=False),
    model_path: str = typer.Option("model.npz", "-m", "--model", help="Checkpoint to use."),
    top: int = typer.Option(5, "-k", "--top", help="How many of the most likely next characters to show."),
    last: bool = typer.Option(False, "--last", help="Only the distribution after the whole text."),
    json_output: bool = typer.Option(False, "--json", help="JSON Lines, one object per position (the default off a terminal)."),
):
    """Show the model's most likely next characters after each character of TEXT.

    Each row also gives the entropy of the whole distribution in bits.

    Examples:

      charrnn probs -m home.npz HOM

      charrnn probs -m home.npz H --top 4 --json
    """
    if top < 1:
        raise UsageError(f"--top must be at least 1, not {top}")
    m = load(model_path)
    text = read_arg_text(text)
    if not text:
        raise CharRNNError("TEXT is empty; give at least one character")
    predictions = m.probs(text, top)
    rows = [{"index": r.index, "char": r.char, "entropy_bits": round(r.entropy_bits, 4),
             "next": [{"char": c, "p": round(p, 6)} for c, p in r.next]} for r in predictions]
    if last:
        rows = rows[-1:]
    with closed_pipe_is_fine():
        if json_output or not sys.stdout.isatty():
            for r in rows:
                emit_json(r)
        else:
            stdout_console().print(probs_table(rows))
