"""`charrnn train`: options in, a trained checkpoint out."""
from __future__ import annotations

import os
import sys
from dataclasses import replace
from typing import List, Optional

import typer

from charrnn import checkpoint, model
from charrnn.cli import _emit_json, _note, app
from charrnn.config import ModelConfig, TrainConfig
from charrnn.data import record_hashes
from charrnn.display import ProgressReporter, loss_plot, stderr_console, summary_table
from charrnn.errors import CharRNNError, UsageError
from charrnn.metrics_log import MetricsLog
from charrnn.score import LN2
from charrnn.train import Limits, best_path, new_checkpoint, parse_duration, stop_on_signals, train as run_training
from charrnn.vocab import Vocab, check_unknown_policy, fit_to_vocab, read_corpora

DEFAULT_STEPS = 2000  # training length when no --steps, --epochs or --time is given
_M, _T = ModelConfig(), TrainConfig()
EXIT_SIGNAL = {"SIGINT": 130, "SIGTERM": 143}


def _same_model(ck, mgiven: dict, given: dict) -> None:
    """Refuse model options that contradict an existing checkpoint's shape."""
    for k, v in mgiven.items():
        if getattr(ck.model, k) != v:
            raise UsageError(f"--{k} {v} differs from the checkpoint's {getattr(ck.model, k)}; drop it")
    if "optimizer" in given and given["optimizer"] != ck.train.optimizer:
        raise UsageError(f"--optimizer {given['optimizer']} differs from the checkpoint's {ck.train.optimizer}")


def _newline_id(vocab: Vocab) -> int:
    if "\n" not in vocab.chars:
        raise CharRNNError("--records needs one record per line, but the corpus has no newline")
    return vocab.chars.index("\n")


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
    warmup: Optional[int] = typer.Option(None, help="Steps of linear learning-rate warm-up. (default 0)", show_default=False),
    lr_decay: Optional[float] = typer.Option(None, help="Step decay: multiply the learning rate by this... (default 1, off)", show_default=False),
    lr_decay_every: Optional[int] = typer.Option(None, help="...every this many steps.", show_default=False),
    cosine: bool = typer.Option(False, "--cosine", help="Cosine decay of the learning rate to a tenth over --steps."),
    constant_lr: bool = typer.Option(False, "--constant-lr", help="With --time, keep the learning rate flat instead of decaying it over the budget."),
    sample_every: Optional[int] = typer.Option(None, help="Print a short sample to stderr every N steps; 0 never. (default: at each validation pass on a terminal)", show_default=False),
    sample_length: int = typer.Option(200, help="Characters in each live sample."),
    log: Optional[str] = typer.Option(None, "--log", help="Write metrics here every --log-every steps: JSON Lines, or CSV for a .csv name."),
    log_every: int = typer.Option(10, help="Steps between --log records."),
    resume: bool = typer.Option(False, "--resume", help="Continue the checkpoint at --out: weights, optimizer, data position, RNG."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing checkpoint at --out instead of refusing."),
    encoding_errors: str = typer.Option("strict", help="strict: invalid UTF-8 is an error; replace: use U+FFFD."),
    records: bool = typer.Option(False, "--records", help="Each line is an independent record: the state resets at newlines."),
    init_from: Optional[str] = typer.Option(None, "--init-from", help="Fine-tune: start from this checkpoint's weights and vocabulary."),
    unknown: str = typer.Option("error", help="With a fixed vocabulary (--init-from, --resume): error, skip or replace:C for new characters."),
    quiet: bool = typer.Option(False, "-q", "--quiet", help="No progress bar or notes on stderr."),
    json_output: bool = typer.Option(False, "--json", help="Print the final metrics as one JSON object on stdout."),
):
    """Train a character-level RNN on text files.

    Stops at the first of --steps, --epochs and --time. Ctrl-C saves and exits 130.

    Examples:

      charrnn train corpora/home.txt --steps 300 -o home.npz

      charrnn train corpora/pantry.txt --steps 50 --hidden 64 -o pantry.npz

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
                 val_frac=val_frac, eval_every=eval_every, save_every=save_every, seed=seed, dropout=dropout,
                 warmup=warmup, lr_decay=lr_decay, lr_decay_every=lr_decay_every)
    given = {k: v for k, v in given.items() if v is not None}
    mgiven = {k: v for k, v in dict(cell=cell, hidden=hidden, layers=layers).items() if v is not None}
    ModelConfig(vocab_size=1, **mgiven).check()
    TrainConfig(**given).check()
    checkpoint.check_writable(out)
    if resume and force:
        raise UsageError("--resume and --force contradict each other; choose one")
    if resume and init_from:
        raise UsageError("--resume continues --out; --init-from starts a new run from another model; choose one")
    check_unknown_policy(unknown)
    warn = _note if not quiet else (lambda m: None)

    if resume:
        ck = checkpoint.load(out)
        _same_model(ck, mgiven, given)
        ck.train = replace(ck.train, **given)
        text = fit_to_vocab(ck.vocab, read_corpora(corpus, encoding_errors, warn), unknown)
    else:
        if os.path.exists(out) and not force:
            raise CharRNNError(f"{out} already exists; pass --resume to continue it, --force to overwrite it, or -o another path")
        text = read_corpora(corpus, encoding_errors, warn)
        if init_from:
            parent = checkpoint.load(init_from)
            _same_model(parent, mgiven, {})
            check_unknown_policy(unknown, parent.vocab)
            text = fit_to_vocab(parent.vocab, text, unknown)
            mcfg = parent.model
            if records and mcfg.reset_id < 0:
                mcfg = replace(mcfg, reset_id=_newline_id(parent.vocab))
            ck = new_checkpoint(parent.vocab, mcfg, TrainConfig(**given))
            ck.params = {k: v.copy() for k, v in parent.params.items()}
            ck.parent = init_from
        else:
            if len(text) < 2:
                raise CharRNNError(f"the corpus has {len(text)} character(s); at least 2 are needed to learn anything")
            vocab = Vocab.from_text(text)
            mcfg = ModelConfig(vocab_size=vocab.size, **mgiven)
            if records:
                mcfg.reset_id = _newline_id(vocab)
            ck = new_checkpoint(vocab, mcfg, TrainConfig(**given))
        if ck.model.reset_id >= 0:
            ck.record_hashes = record_hashes(text)
    ids = ck.vocab.encode(text)
    del text

    if steps is None and epochs is None and seconds is None:
        steps = ck.step + DEFAULT_STEPS
    if cosine:
        if steps is None:
            raise UsageError("--cosine decays over --steps; give --steps too")
        ck.train.cosine_steps = steps
    # a --time budget anneals the learning rate over itself unless another schedule was asked for
    explicit_schedule = constant_lr or ck.train.cosine_steps or (ck.train.lr_decay_every and ck.train.lr_decay != 1.0)
    ck.train.cosine_seconds = seconds if seconds is not None and not explicit_schedule else 0.0
    if log_every < 1 or sample_length < 1 or (sample_every is not None and sample_every < 0):
        raise UsageError("--log-every and --sample-length must be positive, --sample-every 0 or more")
    if sample_every is None:  # live samples by default only where someone watches
        sample_every = 0 if quiet or not sys.stderr.isatty() else -1
    metrics_log = MetricsLog(log, log_every) if log else None
    reporter = ProgressReporter(quiet, sample_every, sample_length, metrics_log)
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
        console = stderr_console()
        console.print(summary_table(metrics, ck))
        console.print(loss_plot(ck.history), markup=False, highlight=False)
    if json_output:
        _emit_json(metrics)
    if stopped in EXIT_SIGNAL:
        raise typer.Exit(EXIT_SIGNAL[stopped])


