"""The command line: parse, read, call the library, print. Nothing else lives here.

stdout carries only data (text, JSON); progress, notes and errors go to stderr.
"""
from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from dataclasses import replace
from typing import List, Optional

import numpy as np
import typer
from typer.core import TyperGroup

try:  # newer typer releases vendor click; theirs are the exceptions raised
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - older typer on the real click
    from click import exceptions as click_errors

from charrnn import __version__, checkpoint, model
from charrnn.config import ModelConfig, TrainConfig
from charrnn.display import ProgressReporter, info_table, probs_table, stderr_console, stdout_console
from charrnn.errors import CharRNNError, UsageError
from charrnn.sample import generate
from charrnn.score import LN2, eval_report, next_char_probs, total_nll
from charrnn.train import Limits, best_path, new_checkpoint, parse_duration, stop_on_signals, train as run_training
from charrnn.vocab import Vocab, describe_chars, read_corpora, read_text

DEFAULT_STEPS = 2000  # training length when no --steps, --epochs or --time is given
_M, _T = ModelConfig(), TrainConfig()
EXIT_SIGNAL = {"SIGINT": 130, "SIGTERM": 143}


class _Group(TyperGroup):
    """Turns every error into one line on stderr with the right exit code."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            rv = super().main(
                args=args, prog_name=prog_name or "charrnn", complete_var=complete_var, standalone_mode=False, **extra
            )
        except click_errors.NoArgsIsHelpError:
            rv = 2  # the help has been printed
        except click_errors.UsageError as e:
            where = e.ctx.command_path if e.ctx else "charrnn"
            _error(f"{e.format_message()} (see '{where} --help')".replace("\n", " "), e.exit_code)
        except click_errors.ClickException as e:
            _error(e.format_message().replace("\n", " "), e.exit_code)
        except typer.Abort:
            _error("aborted", 1)
        except CharRNNError as e:
            _error(str(e), e.exit_code)
        except MemoryError:
            _error("out of memory; try a smaller --hidden or --batch, or a smaller corpus", 1)
        except Exception as e:  # a bug: still one line, with a way to see more
            if os.environ.get("CHARRNN_DEBUG"):
                raise
            _error(f"internal error: {type(e).__name__}: {e} (set CHARRNN_DEBUG=1 to see the traceback)", 1)
        sys.exit(rv if isinstance(rv, int) else 0)


def _error(message: str, code: int):
    print(f"charrnn: error: {message}", file=sys.stderr)
    sys.exit(code)


app = typer.Typer(
    cls=_Group,
    help="Character-level recurrent language models in pure NumPy: train, sample, score.",
    add_completion=True,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool):
    if value:
        print(f"charrnn {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
):
    """Character-level recurrent language models in pure NumPy: train, sample, score."""


@contextmanager
def _closed_pipe_is_fine():
    """A reader that goes away (``| head``) ends output quietly, exit 0."""
    try:
        yield
        sys.stdout.flush()
    except BrokenPipeError:
        try:  # stop the interpreter's final flush from complaining
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        raise typer.Exit(0)


def _note(message: str) -> None:
    print(message, file=sys.stderr)


def _read_arg_text(text: str, what: str) -> str:
    """TEXT as given, or stdin's text for ``-``."""
    return read_text("-") if text == "-" else text


def _emit_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")


# ---------------------------------------------------------------- train


@app.command()
def train(
    corpus: List[str] = typer.Argument(..., help="Text files to learn from (UTF-8), or - for stdin.", show_default=False),
    out: str = typer.Option("model.npz", "-o", "--out", help="Checkpoint to write (the best one goes beside it as .best.npz)."),
    cell: Optional[str] = typer.Option(None, help=f"Recurrent cell: rnn, lstm or gru. (default {_M.cell})", show_default=False),
    hidden: Optional[int] = typer.Option(None, help=f"Hidden units per layer. (default {_M.hidden})", show_default=False),
    layers: Optional[int] = typer.Option(None, help=f"Stacked recurrent layers. (default {_M.layers})", show_default=False),
    dropout: Optional[float] = typer.Option(None, help=f"Dropout after each layer while training, in [0, 1). (default {_T.dropout:g})", show_default=False),
    seq_len: Optional[int] = typer.Option(None, help=f"Characters per BPTT chunk. (default {_T.seq_len})", show_default=False),
    batch: Optional[int] = typer.Option(None, help=f"Parallel streams per step. (default {_T.batch})", show_default=False),
    lr: Optional[float] = typer.Option(None, help=f"Learning rate. (default {_T.lr:g})", show_default=False),
    optimizer: Optional[str] = typer.Option(None, help=f"adam, adagrad or sgd (momentum {_T.momentum}). (default {_T.optimizer})", show_default=False),
    clip: Optional[float] = typer.Option(None, help=f"Gradient clipping threshold; 0 turns it off. (default {_T.clip:g})", show_default=False),
    clip_mode: Optional[str] = typer.Option(None, help="norm: rescale by the global norm; value: clip each element. (default norm)", show_default=False),
    val_frac: Optional[float] = typer.Option(None, help=f"Fraction of the text, from its end, held out for validation. (default {_T.val_frac})", show_default=False),
    eval_every: Optional[int] = typer.Option(None, help="Steps between validation passes. (default automatic, ~5% of the time)", show_default=False),
    save_every: Optional[int] = typer.Option(None, help="Steps between saves. (default at each validation pass and at the end)", show_default=False),
    seed: Optional[int] = typer.Option(None, help=f"Seed for initialisation and training. (default {_T.seed})", show_default=False),
    steps: Optional[int] = typer.Option(None, help=f"Stop at this total step count. (default {DEFAULT_STEPS} if no other limit)", show_default=False),
    epochs: Optional[float] = typer.Option(None, help="Stop after this many passes over the text in total.", show_default=False),
    time_limit: Optional[str] = typer.Option(None, "--time", help="Stop after this long: seconds, or 90s, 5m, 1h.", show_default=False),
    resume: bool = typer.Option(False, "--resume", help="Continue the checkpoint at --out: weights, optimizer, data position, RNG."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing checkpoint at --out instead of refusing."),
    encoding_errors: str = typer.Option("strict", help="strict: invalid UTF-8 is an error; replace: use U+FFFD."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress bar or notes on stderr."),
    json_output: bool = typer.Option(False, "--json", help="Print the final metrics as one JSON object on stdout."),
):
    """Train a character-level RNN on text files.

    Stops at the first of --steps, --epochs and --time. Ctrl-C saves and exits 130.

    Examples:

      charrnn train corpora/home.txt --steps 300 -o home.npz

      charrnn train corpora/pantry.txt --time 30s

      cat corpora/home.txt | charrnn train - --steps 100 -o piped.npz --force
    """
    if encoding_errors not in ("strict", "replace"):
        raise UsageError(f"--encoding-errors must be strict or replace, not {encoding_errors!r}")
    if steps is not None and steps <= 0:
        raise UsageError(f"--steps must be positive, not {steps}")
    if epochs is not None and not epochs > 0:
        raise UsageError(f"--epochs must be positive, not {epochs}")
    seconds = parse_duration(time_limit) if time_limit is not None else None
    given = dict(seq_len=seq_len, batch=batch, lr=lr, optimizer=optimizer, clip=clip, clip_mode=clip_mode,
                 val_frac=val_frac, eval_every=eval_every, save_every=save_every, seed=seed, dropout=dropout)
    given = {k: v for k, v in given.items() if v is not None}
    mgiven = {k: v for k, v in dict(cell=cell, hidden=hidden, layers=layers).items() if v is not None}
    ModelConfig(vocab_size=1, **mgiven).check()
    TrainConfig(**given).check()
    checkpoint.check_writable(out)
    if resume and force:
        raise UsageError("--resume and --force contradict each other; choose one")

    if resume:
        ck = checkpoint.load(out)
        for k, v in mgiven.items():
            if getattr(ck.model, k) != v:
                raise UsageError(f"--{k} {v} differs from the checkpoint's {getattr(ck.model, k)}; drop it to resume")
        if "optimizer" in given and given["optimizer"] != ck.train.optimizer:
            raise UsageError(f"--optimizer {given['optimizer']} differs from the checkpoint's {ck.train.optimizer}")
        ck.train = replace(ck.train, **given)
        text = read_corpora(corpus, encoding_errors, _note if not quiet else lambda m: None)
        ids = ck.vocab.encode(text)
    else:
        if os.path.exists(out) and not force:
            raise CharRNNError(f"{out} already exists; pass --resume to continue it, --force to overwrite it, or -o another path")
        text = read_corpora(corpus, encoding_errors, _note if not quiet else lambda m: None)
        if len(text) < 2:
            raise CharRNNError(f"the corpus has {len(text)} character(s); at least 2 are needed to learn anything")
        vocab = Vocab.from_text(text)
        ids = vocab.encode(text)
        ck = new_checkpoint(vocab, ModelConfig(vocab_size=vocab.size, **mgiven), TrainConfig(**given))
    del text

    if steps is None and epochs is None and seconds is None:
        steps = ck.step + DEFAULT_STEPS
    reporter = ProgressReporter(quiet)
    if not quiet:
        _note(f"training {ck.model.cell} H={ck.model.hidden} on {len(ids):,} chars, vocabulary {ck.vocab.size}, "
              f"{model.num_params(ck.params):,} parameters" + (f", resuming at step {ck.step}" if resume else ""))
    with stop_on_signals() as should_stop:
        metrics = run_training(ck, ids, out, Limits(steps, epochs, seconds), reporter, should_stop)
    stopped = metrics["stopped_by"]
    if not quiet:
        val = metrics["val_nats"]
        val_text = f"val {val:.4f} nats/char ({val / LN2:.4f} bits/char)" if val is not None else "no validation split"
        _note(f"{'interrupted by ' + stopped + ': ' if stopped in EXIT_SIGNAL else ''}"
              f"saved {out} at step {metrics['steps']} ({val_text}, {metrics['chars_per_sec']:,.0f} chars/s)")
        if ck.best_val is not None:
            _note(f"best validation {ck.best_val:.4f} nats/char at step {ck.best_step}: {best_path(out)}")
    if json_output:
        _emit_json(metrics)
    if stopped in EXIT_SIGNAL:
        raise typer.Exit(EXIT_SIGNAL[stopped])


# ---------------------------------------------------------------- sample


@app.command()
def sample(
    model_path: str = typer.Option("model.npz", "-m", "--model", help="Checkpoint to sample from."),
    length: int = typer.Option(500, "-n", "--length", help="Characters to generate after the prime."),
    temp: float = typer.Option(1.0, "-t", "--temp", help="Temperature: below 1 is safer, above 1 wilder, 0 is greedy."),
    prime: str = typer.Option("", "-p", "--prime", help="Text to start from, printed first; - reads it from stdin."),
    seed: Optional[int] = typer.Option(None, help="Seed for the random draws; the same seed gives the same text."),
):
    """Generate text, streaming it to stdout as it is drawn.

    Examples:

      charrnn sample -m home.npz -n 40 --seed 1

      charrnn sample -m home.npz --prime HOM -n 20 --temp 0
    """
    if length < 0:
        raise UsageError(f"--length must be 0 or more, not {length}")
    if temp < 0:
        raise UsageError(f"--temp must be 0 (greedy) or positive, not {temp}")
    ck = checkpoint.load(model_path)
    prime_text = _read_arg_text(prime, "--prime") if prime else ""
    ck.vocab.encode(prime_text)  # reject unknown characters before printing anything
    rng = np.random.default_rng(seed)
    out = sys.stdout
    tty = out.isatty()
    with _closed_pipe_is_fine():
        out.write(prime_text)
        last = prime_text[-1:]
        for ch in generate(ck, prime_text, length, temp, rng):
            out.write(ch)
            if ch == "\n":
                out.flush()
            last = ch
        if tty and last != "\n":
            out.write("\n")


# ---------------------------------------------------------------- probs


@app.command()
def probs(
    text: str = typer.Argument(..., help="Text to read, or - for stdin.", show_default=False),
    model_path: str = typer.Option("model.npz", "-m", "--model", help="Checkpoint to use."),
    top: int = typer.Option(5, "-k", "--top", help="How many of the most likely next characters to show."),
    json_output: bool = typer.Option(False, "--json", help="JSON Lines, one object per position (the default off a terminal)."),
):
    """Show the model's most likely next characters after each character of TEXT.

    Examples:

      charrnn probs -m home.npz HOM

      charrnn probs -m home.npz H --top 4 --json
    """
    if top < 1:
        raise UsageError(f"--top must be at least 1, not {top}")
    ck = checkpoint.load(model_path)
    text = _read_arg_text(text, "TEXT")
    if not text:
        raise CharRNNError("TEXT is empty; give at least one character")
    ids = ck.vocab.encode(text)
    p = next_char_probs(ck.params, ck.model, ids)  # (n, V)
    k = min(top, ck.vocab.size)
    order = np.argsort(-p, axis=1, kind="stable")[:, :k]
    rows = [
        {"index": i, "char": text[i], "next": [{"char": ck.vocab.chars[j], "p": round(float(p[i, j]), 6)} for j in order[i]]}
        for i in range(len(ids))
    ]
    with _closed_pipe_is_fine():
        if json_output or not sys.stdout.isatty():
            for r in rows:
                _emit_json(r)
        else:
            stdout_console().print(probs_table(rows))


# ---------------------------------------------------------------- eval


@app.command(name="eval")
def eval_(
    file: str = typer.Argument(..., help="Text to score, or - for stdin.", show_default=False),
    model_path: str = typer.Option("model.npz", "-m", "--model", help="Checkpoint to use."),
    json_output: bool = typer.Option(False, "--json", help="Print the figures as one JSON object."),
):
    """Score a text under the model: nats/char, bits/char and perplexity.

    The hidden state is carried through the whole text; characters outside
    the vocabulary are skipped and counted.

    Examples:

      charrnn eval -m home.npz corpora/home.txt

      charrnn eval -m home.npz corpora/home.txt --json
    """
    ck = checkpoint.load(model_path)
    text = read_text(file)
    unknown = ck.vocab.unknown(text)
    if unknown:
        _note(f"warning: skipped {sum(unknown.values())} character(s) not in the vocabulary: {describe_chars(sorted(unknown))}")
    ids = ck.vocab.encode(text, skip_unknown=True)
    if len(ids) < 2:
        raise CharRNNError(f"{'stdin' if file == '-' else file}: fewer than 2 known characters; nothing to score")
    total, n = total_nll(ck.params, ck.model, ids, batch=1, seq_len=256)
    report = eval_report(total, n, sum(unknown.values()))
    if json_output:
        _emit_json(report)
    else:
        print(f"chars {report['chars']}\nnats_per_char {report['nats_per_char']:.4f}\n"
              f"bits_per_char {report['bits_per_char']:.4f}\nperplexity {report['perplexity']:.4f}\n"
              f"unknown_chars {report['unknown_chars']}")


# ---------------------------------------------------------------- info


def checkpoint_info(path: str, ck) -> dict:
    return {
        "path": path,
        "format_version": checkpoint.VERSION,
        "config": {k: v for k, v in vars(ck.model).items()},
        "train_config": {k: v for k, v in vars(ck.train).items()},
        "vocab": ck.vocab.chars,
        "vocab_size": ck.vocab.size,
        "params": model.num_params(ck.params),
        "steps": ck.step,
        "chars_seen": ck.chars_seen,
        "epoch": ck.epoch,
        "best_val_nats": ck.best_val,
        "best_step": ck.best_step,
        "parent": ck.parent,
    }


@app.command()
def info(
    path: str = typer.Argument("model.npz", help="Checkpoint to describe."),
    json_output: bool = typer.Option(False, "--json", help="Print every fact as one JSON object."),
):
    """Show what a checkpoint holds: config, vocabulary, size, progress.

    Examples:

      charrnn info home.npz

      charrnn info home.npz --json
    """
    ck = checkpoint.load(path)
    facts = checkpoint_info(path, ck)
    if json_output or not sys.stdout.isatty():
        _emit_json(facts)
    else:
        stdout_console().print(info_table(facts))


def main() -> None:
    """Console-script entry point."""
    app()
