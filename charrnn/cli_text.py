"""`charrnn sample`, `probs` and `eval`: generating and scoring text."""
from __future__ import annotations

import math
import sys
from typing import List, Optional

import numpy as np
import typer

from charrnn import checkpoint
from charrnn.cli import _closed_pipe_is_fine, _emit_json, _note, _read_arg_text, app
from charrnn.display import heat_char, print_heat_legend, probs_table, show_char, stdout_console, surprise_char
from charrnn.errors import CharRNNError, UsageError
from charrnn.sample import Decoding, Stops, beam_search, generate_scored
from charrnn.score import LN2, entropy_bits, eval_report, next_char_probs, total_nll
from charrnn.score import per_char as per_char_scores
from charrnn.vocab import describe_chars, read_text


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
    lines: Optional[int] = typer.Option(None, "--lines", help="End a sample after this many newlines."),
    num_samples: int = typer.Option(1, "--num-samples", help="How many independent samples."),
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
    if lines is not None and lines < 1:
        raise UsageError(f"--lines must be at least 1, not {lines}")
    if stop and any(s == "" for s in stop):
        raise UsageError("--stop needs a non-empty string")
    dec = Decoding(temp=0.0 if greedy else temp, top_k=top_k, top_p=top_p)
    dec.check()
    ck = checkpoint.load(model_path)
    records = ck.model.reset_id >= 0
    if novel and not records:
        raise UsageError("--novel needs a model trained with --records")
    stops = Stops(length=length or None, strings=list(stop or []), lines=lines)
    if records and lines is None and not stop:
        stops.lines = 1  # a records model generates whole records
    if stops.endless and num_samples > 1:
        raise UsageError("-n 0 with no --stop or --lines never ends, so --num-samples cannot follow it")
    prime_text = _read_arg_text(prime) if prime else ""
    ck.vocab.encode(prime_text)  # reject unknown characters before printing anything
    rng = np.random.default_rng(seed)
    separator = "" if records else sep.encode("utf-8").decode("unicode_escape")
    out = sys.stdout
    with _closed_pipe_is_fine():
        if beam is not None:
            if not length:
                raise UsageError("--beam needs a --length of at least 1")
            text, logp = beam_search(ck, prime_text, length, beam)
            if json_output:
                _emit_json({"prime": prime_text, "text": text, "nats": -logp, "chars": len(text)})
            else:
                out.write(prime_text + text + ("\n" if out.isatty() else ""))
            return
        heat = show_probs and not json_output and out.isatty()
        if heat:
            print_heat_legend()
        done, dropped, tries = 0, 0, 0
        while done < num_samples:
            tries += 1
            if novel and tries > 20 * num_samples:
                _note(f"warning: stopped after {tries - 1} tries with {done} novel sample(s)")
                break
            buffered = novel or (json_output and not show_probs)
            pieces, nats = [], 0.0
            if not buffered and not (json_output and show_probs):
                out.write((separator if done else "") + prime_text)
            for ch, p, probs in generate_scored(ck, prime_text, rng, dec, stops):
                nats -= math.log(max(p, 1e-300))
                if json_output and show_probs:
                    top = np.argsort(-probs, kind="stable")[:5]
                    _emit_json({"sample": done, "char": ch, "p": round(p, 6),
                                "top": [{"char": ck.vocab.chars[j], "p": round(float(probs[j]), 6)} for j in top]})
                elif buffered:
                    pieces.append(ch)
                else:
                    out.write(heat_char(ch, p) if heat else ch)
                    if ch == "\n":
                        out.flush()
            text = "".join(pieces)
            if novel and ck.is_training_record(text):
                dropped += 1
                continue
            if json_output and not show_probs:
                _emit_json({"prime": prime_text, "text": text, "nats": nats, "chars": len(text)})
            elif novel:
                out.write((separator if done else "") + prime_text + text)
            done += 1
        if novel:
            _note(f"dropped {dropped} sample(s) found verbatim in the training corpus")
        if out.isatty() and not json_output:
            out.write("\n")


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
    ck = checkpoint.load(model_path)
    text = _read_arg_text(text)
    if not text:
        raise CharRNNError("TEXT is empty; give at least one character")
    ids = ck.vocab.encode(text)
    p = next_char_probs(ck.params, ck.model, ids)  # (n, V)
    k = min(top, ck.vocab.size)
    order = np.argsort(-p, axis=1, kind="stable")[:, :k]
    ent = entropy_bits(p)
    rows = [
        {"index": i, "char": text[i], "entropy_bits": round(float(ent[i]), 4),
         "next": [{"char": ck.vocab.chars[j], "p": round(float(p[i, j]), 6)} for j in order[i]]}
        for i in range(len(ids))
    ]
    if last:
        rows = rows[-1:]
    with _closed_pipe_is_fine():
        if json_output or not sys.stdout.isatty():
            for r in rows:
                _emit_json(r)
        else:
            stdout_console().print(probs_table(rows))


# ---------------------------------------------------------------- eval


@app.command(name="eval")
def eval_(
    paths: List[str] = typer.Argument(..., help="FILE to score (or - for stdin), or MODEL FILE.", show_default=False),
    model_path: Optional[str] = typer.Option(None, "-m", "--model", help="Checkpoint to use (default model.npz)."),
    per_char: bool = typer.Option(False, "--per-char", help="TSV per character: index, char, nats, bits, p_top."),
    color: bool = typer.Option(False, "--color", help="With --per-char: the text shaded by surprisal instead."),
    json_output: bool = typer.Option(False, "--json", help="Print the figures as one JSON object."),
):
    """Score a text under the model: nats/char, bits/char and perplexity.

    The hidden state is carried through the whole text; characters outside
    the vocabulary are skipped and counted.

    Examples:

      charrnn eval -m home.npz corpora/home.txt

      charrnn eval home.npz corpora/home.txt --json

      echo HOME | charrnn eval -m home.npz - --per-char
    """
    if len(paths) == 2 and model_path is None:
        model_path, file = paths
    elif len(paths) == 1:
        file = paths[0]
    else:
        raise UsageError("give FILE (with -m MODEL) or MODEL FILE")
    ck = checkpoint.load(model_path or "model.npz")
    text = read_text(file)
    unknown = ck.vocab.unknown(text)
    ids = ck.vocab.encode(text, skip_unknown=True)
    skipped = f"skipped {sum(unknown.values())} character(s) not in the vocabulary: {describe_chars(sorted(unknown))}"
    if len(ids) < 2:
        raise CharRNNError(f"{'stdin' if file == '-' else file}: fewer than 2 known characters; nothing to score"
                           + (f" ({skipped})" if unknown else ""))
    if unknown:
        _note(f"warning: {skipped}")
    with _closed_pipe_is_fine():
        if per_char:
            nats, p_top = per_char_scores(ck.params, ck.model, ids)
            chars = ck.vocab.chars
            if color:
                sys.stdout.write(chars[ids[0]] + "".join(surprise_char(chars[i], n) for i, n in zip(ids[1:], nats)))
                sys.stdout.write("\n" if chars[ids[-1]] != "\n" else "")
                return
            sys.stdout.write("index\tchar\tnats\tbits\tp_top\n")
            for k, (i, n, pt) in enumerate(zip(ids[1:].tolist(), nats.tolist(), p_top.tolist()), start=1):
                sys.stdout.write(f"{k}\t{show_char(chars[i])}\t{n:.4f}\t{n / LN2:.4f}\t{pt:.4f}\n")
            return
        total, n = total_nll(ck.params, ck.model, ids, batch=1, seq_len=256)
        report = eval_report(total, n, sum(unknown.values()))
        if json_output:
            _emit_json(report)
        else:
            print(f"chars {report['chars']}\nnats_per_char {report['nats_per_char']:.4f}\n"
                  f"bits_per_char {report['bits_per_char']:.4f}\nperplexity {report['perplexity']:.4f}\n"
                  f"unknown_chars {report['unknown_chars']}")


