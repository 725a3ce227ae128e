"""`charrnn eval`: scoring text under a model, from a short string on stdin to folders of files."""
from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer

from charrnn.cli.app import app, closed_pipe_is_fine, emit_json, note
from charrnn.corpus import read_all, resolve
from charrnn.display import show_char, surprise_char
from charrnn.errors import CharRNNError
from charrnn.model import load
from charrnn.vocab import describe_chars


class EncodingErrors(str, Enum):
    strict = "strict"
    replace = "replace"


@app.command(name="eval")
def eval_(
    paths: List[str] = typer.Argument(..., help="Text to score: files, folders (read as train reads them) or - for "
                                                "stdin; or MODEL and then those.", show_default=False),
    model_path: Optional[str] = typer.Option(None, "-m", "--model", help="Checkpoint to use (default model.npz)."),
    per_char: bool = typer.Option(False, "--per-char", help="TSV per character: index, char, nats, bits, p_top."),
    color: bool = typer.Option(False, "--color", help="With --per-char: the text shaded by surprisal instead."),
    json_output: bool = typer.Option(False, "--json", help="Print the figures as one JSON object."),
    workers: Optional[int] = typer.Option(None, min=1, show_default=False, help="Processes sharing a long text's "
                                          "pieces; the figures do not change. (default: the cores, for texts of "
                                          "100,000 characters and more)"),
    glob: Optional[List[str]] = typer.Option(None, "--glob", help="With a folder: score only the files matching this "
                                                                  "pattern (repeatable).", show_default=False),
    encoding_errors: EncodingErrors = typer.Option(EncodingErrors.strict, help="strict: invalid UTF-8 is an error; "
                                                                               "replace: use U+FFFD."),
):
    """Score a text under the model: nats/char, bits/char and perplexity.

    The hidden state is carried through the whole text, which is streamed,
    so a file of any size can be scored; characters outside the vocabulary
    are skipped and counted.

    Examples:

      charrnn eval -m home.npz corpora/home.txt

      charrnn eval home.npz corpora/home.txt --json

      echo HOME | charrnn eval -m home.npz - --per-char

      charrnn eval -m pantry.npz corpora --glob 'pantry*'
    """
    if model_path is None and len(paths) >= 2:
        model_path, paths = paths[0], paths[1:]
    m = load(model_path or "model.npz")
    errors = encoding_errors.value
    where = ", ".join("stdin" if p == "-" else p for p in paths)
    try:
        if per_char:
            text = read_all(resolve(paths, glob), errors)
            result, unknown = m.per_char(text), m.unknown(text)
        else:
            result = m.score([Path(p) for p in paths], workers, glob, errors)
            unknown = result.unknown
    except CharRNNError as e:
        if "nothing to score" not in str(e):
            raise
        raise CharRNNError(f"{where}: {e}") from None
    if unknown:
        note(f"warning: skipped {sum(unknown.values())} character(s) not in the vocabulary: "
             f"{describe_chars(sorted(unknown))}")
    with closed_pipe_is_fine():
        if not per_char:
            _print_score(result.to_dict(), json_output)
        elif color:
            first = next(c for c in text if c in m.vocab)
            sys.stdout.write(first + "".join(surprise_char(c, n) for c, n in zip(result.chars, result.nats)))
            sys.stdout.write("\n" if (result.chars or first)[-1] != "\n" else "")
        else:
            sys.stdout.write("index\tchar\tnats\tbits\tp_top\n")
            for k, (c, n, b, pt) in enumerate(zip(result.chars, result.nats.tolist(), result.bits.tolist(),
                                                  result.p_top.tolist()), start=1):
                sys.stdout.write(f"{k}\t{show_char(c)}\t{n:.4f}\t{b:.4f}\t{pt:.4f}\n")


def _print_score(report: dict, json_output: bool) -> None:
    if json_output:
        emit_json(report)
    else:
        print(f"chars {report['chars']}\nnats_per_char {report['nats_per_char']:.4f}\n"
              f"bits_per_char {report['bits_per_char']:.4f}\nperplexity {report['perplexity']:.4f}\n"
              f"unknown_chars {report['unknown_chars']}")
