"""`charrnn train`: options in, a trained checkpoint out.

The command's flags are built from charrnn.options.TrainOptions, the one
declaration of the training options, plus the few that only concern the
terminal (output path, progress, samples, log, JSON). It calls
``charrnn.train`` with a reporter that draws the progress.
"""
from __future__ import annotations

import inspect
import sys
import typing
from dataclasses import MISSING, fields
from enum import Enum
from typing import List, Optional

import typer

from charrnn.cli.app import app, emit_json, note
from charrnn.display import (SAMPLE_AT_VALIDATION, ProgressReporter, loss_plot, served_text, stderr_console,
                             summary_table)
from charrnn.metrics_log import MetricsLog
from charrnn.numerics import nats_and_bits
from charrnn.options import TrainOptions
from charrnn.trainer import train as train_model

EXIT_SIGNAL = {"SIGINT": 130, "SIGTERM": 143}
HELP = """Train a character-level RNN on text files.

Stops at the first of --steps, --epochs and --time. Ctrl-C saves and exits 130.

Examples:

  charrnn train corpora/home.txt --steps 300 --hidden 64 -o home.npz

  charrnn train corpora/pantry.txt --steps 50 --hidden 64 -o pantry.npz

  cat corpora/home.txt | charrnn train - --steps 100 --hidden 32 -o piped.npz --force
"""

# The flags that concern only this command's output, not the run.
TERMINAL = [
    ("corpus", List[str], typer.Argument(..., help="Text files to learn from (UTF-8), or - for stdin.",
                                         show_default=False)),
    ("out", str, typer.Option("model.npz", "-o", "--out", help="Checkpoint to write.")),
    ("sample_every", Optional[int], typer.Option(
        None, min=0, show_default=False,
        help="Print a short sample to stderr every N steps; 0 never. (default: at each validation pass on a terminal)")),
    ("sample_length", int, typer.Option(200, min=1, help="Characters in each live sample.")),
    ("log", Optional[str], typer.Option(None, "--log", help="Write metrics here every --log-every steps: JSON Lines, "
                                                             "or CSV for a .csv name.")),
    ("log_every", int, typer.Option(10, min=1, help="Steps between --log records.")),
    ("quiet", bool, typer.Option(False, "-q", "--quiet", help="No progress bar or notes on stderr.")),
    ("json_output", bool, typer.Option(False, "--json", help="Print the final metrics as one JSON object on stdout.")),
]


def _flag(f) -> tuple[str, object, object]:
    """A TrainOptions field as (name, annotation, typer.Option): its help, its config's default, its choices."""
    hint = typing.get_type_hints(TrainOptions)[f.name]
    help_text = f.metadata.get("help", "")
    default = f.metadata.get("default", MISSING)
    if default not in (MISSING, None) and not isinstance(default, bool):
        help_text += f" (default {default:g})" if isinstance(default, float) else f" (default {default})"
    flag = "--" + f.name.replace("_", "-")
    if hint is bool:
        return f.name, bool, typer.Option(False, flag, help=help_text)
    if hint == Optional[bool]:  # a config's switch, unset unless given either way (a budget may set it)
        return f.name, hint, typer.Option(None, f"{flag}/--no-{flag[2:]}", help=help_text, show_default=False)
    choices = f.metadata.get("choices")
    if choices:
        hint = Optional[Enum(f.name.title().replace("_", ""), {c: c for c in choices}, type=str)]
    given = f.default  # None for the configs' fields (their default, or the checkpoint's on resume)
    return f.name, hint, typer.Option(given, flag, help=help_text, show_default=given is not None)


def _signature() -> inspect.Signature:
    params = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=hint, default=default)
              for name, hint, default in TERMINAL[:2] + [_flag(f) for f in fields(TrainOptions)] + TERMINAL[2:]]
    return inspect.Signature(params)


def train(corpus, out, sample_every, sample_length, log, log_every, quiet, json_output, **options):
    given = {k: v.value if isinstance(v, Enum) else v for k, v in options.items()}
    if sample_every is None:  # live samples by default only where someone watches
        sample_every = 0 if quiet or not sys.stderr.isatty() else SAMPLE_AT_VALIDATION
    reporter = ProgressReporter(quiet, sample_every, sample_length, MetricsLog(log, log_every) if log else None)
    result = train_model(corpus, out, reporter=reporter, **given)
    if not quiet and reporter.started:
        _report(result, out)
    if json_output and reporter.started:
        emit_json(result.to_dict())
    if result.stopped_by in EXIT_SIGNAL:
        raise typer.Exit(EXIT_SIGNAL[result.stopped_by])


train.__doc__ = HELP
train.__signature__ = _signature()
app.command(name="train")(train)


def _report(result, out: str) -> None:
    """The closing lines on stderr: where it was saved, the best model, the summary table and loss plot."""
    stopped = result.stopped_by
    val_text = f"val {nats_and_bits(result.val_nats)}" if result.val_nats is not None else "no validation split"
    note(f"{'interrupted by ' + stopped + ': ' if stopped in EXIT_SIGNAL else ''}"
         f"saved {out} at step {result.steps} ({val_text}, {result.chars_per_sec:,.0f} chars/s)")
    if result.best_val_nats is not None:
        note(f"best validation {result.best_val_nats:.4f} nats/char at step {result.best_step}; {out} serves "
             + served_text(result.served, result.served_step, result.steps, result.served_temp)
             .replace("; --resume", ", and --resume"))
    console = stderr_console()
    console.print(summary_table(result))
    console.print(loss_plot(result.model.history), markup=False, highlight=False)
