"""`charrnn train`: options in, a trained checkpoint out."""
from __future__ import annotations

import sys
from dataclasses import fields
from enum import Enum
from typing import List, Optional

import typer

from charrnn import model
from charrnn.cli.app import app, emit_json, note
from charrnn.config import ModelConfig, TrainConfig
from charrnn.display import SAMPLE_AT_VALIDATION, ProgressReporter, loss_plot, stderr_console, summary_table
from charrnn.metrics_log import MetricsLog
from charrnn.numerics import nats_and_bits
from charrnn.runs import DEFAULT_STEPS, TrainOptions, start_run
from charrnn.limits import stop_on_signals
from charrnn.training import best_path
from charrnn.training import train as train_loop

_M, _T = ModelConfig(), TrainConfig()
OPTION_NAMES = {f.name for f in fields(TrainOptions)} - {"time"}  # flags passed through to the library as named
EXIT_SIGNAL = {"SIGINT": 130, "SIGTERM": 143}


class ClipMode(str, Enum):
    norm = "norm"
    value = "value"


class ValFrom(str, Enum):
    spread = "spread"
    end = "end"


class EncodingErrors(str, Enum):
    strict = "strict"
    replace = "replace"


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
    lookup_lr: Optional[float] = typer.Option(None, help=f"The input lookup table learns at --lr times this. (default {_T.lookup_lr:g})", show_default=False),
    optimizer: Optional[str] = typer.Option(None, help=f"adam, adagrad or sgd (momentum {_T.momentum}). (default {_T.optimizer})", show_default=False),
    clip: Optional[float] = typer.Option(None, help=f"Gradient clipping threshold; 0 turns it off. (default {_T.clip:g})", show_default=False),
    clip_mode: Optional[ClipMode] = typer.Option(None, help="norm: rescale by the global norm; value: clip each element. (default norm)", show_default=False),
    val_frac: Optional[float] = typer.Option(None, help=f"Fraction of the text held out for validation. (default {_T.val_frac})", show_default=False),
    val_from: Optional[ValFrom] = typer.Option(None, help="spread: hold out evenly spaced blocks through the text; end: its last part. (default spread)", show_default=False),
    val_file: Optional[List[str]] = typer.Option(None, "--val-file", help="Validate on this file instead of holding text out (repeatable).", show_default=False),
    eval_every: Optional[int] = typer.Option(None, help="Steps between validation passes. (default automatic, ~5% of the time)", show_default=False),
    save_every: Optional[int] = typer.Option(None, help="Steps between saves. (default at each validation pass and at the end)", show_default=False),
    seed: Optional[int] = typer.Option(None, help=f"Seed for initialisation and training. (default {_T.seed})", show_default=False),
    steps: Optional[int] = typer.Option(None, help=f"Stop at this total step count. (default {DEFAULT_STEPS} if no other limit)", show_default=False),
    epochs: Optional[float] = typer.Option(None, help="Stop after this many passes over the text in total.", show_default=False),
    time_limit: Optional[str] = typer.Option(None, "--time", help="Stop after this long: seconds, or 90s, 5m, 1h.", show_default=False),
    warmup: Optional[int] = typer.Option(None, help="Steps of linear learning-rate warm-up. (default 0)", show_default=False),
    lr_decay: Optional[float] = typer.Option(None, help="Step decay: multiply the learning rate by this... (default 1, off)", show_default=False),
    lr_decay_every: Optional[int] = typer.Option(None, help="...every this many steps.", show_default=False),
    cosine: bool = typer.Option(False, "--cosine", help="Cosine decay of the learning rate to a tenth over --steps."),
    constant_lr: bool = typer.Option(False, "--constant-lr", help="With --time, keep the learning rate flat instead of decaying it over the budget."),
    sample_every: Optional[int] = typer.Option(None, min=0, help="Print a short sample to stderr every N steps; 0 never. (default: at each validation pass on a terminal)", show_default=False),
    sample_length: int = typer.Option(200, min=1, help="Characters in each live sample."),
    log: Optional[str] = typer.Option(None, "--log", help="Write metrics here every --log-every steps: JSON Lines, or CSV for a .csv name."),
    log_every: int = typer.Option(10, min=1, help="Steps between --log records."),
    resume: bool = typer.Option(False, "--resume", help="Continue the checkpoint at --out: weights, optimizer, data position, RNG."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing checkpoint at --out instead of refusing."),
    encoding_errors: EncodingErrors = typer.Option(EncodingErrors.strict, help="strict: invalid UTF-8 is an error; replace: use U+FFFD."),
    records: bool = typer.Option(False, "--records", help="Each line is an independent record: the state resets at newlines."),
    init_from: Optional[str] = typer.Option(None, "--init-from", help="Fine-tune: start from this checkpoint's weights and vocabulary."),
    unknown: str = typer.Option("error", help="With a fixed vocabulary (--init-from, --resume): error, skip or replace:C for new characters."),
    workers: Optional[int] = typer.Option(None, min=1, help="Processes sharing each batch. (default $CHARRNN_WORKERS, else the available cores, keeping >= 8 streams each)", show_default=False),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress bar or notes on stderr."),
    json_output: bool = typer.Option(False, "--json", help="Print the final metrics as one JSON object on stdout."),
):
    """Train a character-level RNN on text files.

    Stops at the first of --steps, --epochs and --time. Ctrl-C saves and exits 130.

    Examples:

      charrnn train corpora/home.txt --steps 300 -o home.npz

      charrnn train corpora/pantry.txt --steps 50 --hidden 64 -o pantry.npz

      cat corpora/home.txt | charrnn train - --steps 100 -o piped.npz --force
    """  # the options are passed on by name: TrainOptions (charrnn/runs.py) says what each does
    given = {k: v.value if isinstance(v, Enum) else v for k, v in locals().items() if k in OPTION_NAMES}
    run, team = start_run(corpus, out, TrainOptions(**given, time=time_limit), note if not quiet else (lambda m: None))
    root = team is None or team.is_root  # under MPI only rank 0 speaks and saves
    quiet = quiet or not root
    if sample_every is None:  # live samples by default only where someone watches
        sample_every = 0 if quiet or not sys.stderr.isatty() else SAMPLE_AT_VALIDATION
    reporter = ProgressReporter(quiet, sample_every, sample_length, MetricsLog(log, log_every) if log else None)
    ck = run.ck
    if not quiet:
        note(f"training {ck.model_config.cell} H={ck.model_config.hidden} on {len(run.ids):,} chars, "
             f"vocabulary {ck.vocab.size}, {model.num_params(ck.params):,} parameters"
             + (f", resuming at step {ck.step}" if run.resumed else ""))
    with stop_on_signals() as should_stop:
        metrics = train_loop(ck, run.ids, out if root else None, run.limits, reporter, should_stop, run.val_ids,
                             run.workers, team)
    if not quiet:
        _report(metrics, ck, out)
    if json_output and root:
        emit_json(metrics.to_dict())
    if metrics.stopped_by in EXIT_SIGNAL:
        raise typer.Exit(EXIT_SIGNAL[metrics.stopped_by])


def _report(metrics, ck, out: str) -> None:
    """The closing lines on stderr: where it was saved, the best model, the summary table and loss plot."""
    stopped = metrics.stopped_by
    val_text = f"val {nats_and_bits(metrics.val_nats)}" if metrics.val_nats is not None else "no validation split"
    note(f"{'interrupted by ' + stopped + ': ' if stopped in EXIT_SIGNAL else ''}"
         f"saved {out} at step {metrics.steps} ({val_text}, {metrics.chars_per_sec:,.0f} chars/s)")
    if ck.best_val is not None:
        note(f"best validation {ck.best_val:.4f} nats/char at step {ck.best_step}: {best_path(out)}")
    console = stderr_console()
    console.print(summary_table(metrics))
    console.print(loss_plot(ck.history), markup=False, highlight=False)
