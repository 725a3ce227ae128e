"""The command line: parse, read, call the library, print. Nothing else lives here.

stdout carries only data (text, JSON); progress, notes and errors go to stderr.
"""
from __future__ import annotations

import json
import math
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
from charrnn.display import (ProgressReporter, heat_char, info_table, loss_plot, print_heat_legend, probs_table,
                             show_char, stderr_console, stdout_console, summary_table, surprise_char)
from charrnn.metrics_log import MetricsLog, finite, read_log
from charrnn.errors import CharRNNError, UsageError
from charrnn.gradcheck import check_gradients
from charrnn.plot import line_plot
from charrnn.vanishing import gradient_norms
from charrnn.sample import Decoding, Stops, beam_search, generate_scored
from charrnn.score import LN2, entropy_bits, eval_report, next_char_probs, total_nll
from charrnn.score import per_char as per_char_scores
from charrnn.train import Limits, best_path, new_checkpoint, parse_duration, stop_on_signals, train as run_training
from charrnn.data import record_hashes
from charrnn.vocab import Vocab, check_unknown_policy, describe_chars, fit_to_vocab, read_corpora, read_text

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
    warmup: Optional[int] = typer.Option(None, help="Steps of linear learning-rate warm-up. (default 0)", show_default=False),
    lr_decay: Optional[float] = typer.Option(None, help="Step decay: multiply the learning rate by this... (default 1, off)", show_default=False),
    lr_decay_every: Optional[int] = typer.Option(None, help="...every this many steps.", show_default=False),
    cosine: bool = typer.Option(False, "--cosine", help="Cosine decay of the learning rate to a tenth over --steps."),
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


# ---------------------------------------------------------------- sample


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
    prime_text = _read_arg_text(prime, "--prime") if prime else ""
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
    text = _read_arg_text(text, "TEXT")
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
        "seconds": ck.seconds,
        "records": ck.model.reset_id >= 0,
        "best_val_nats": ck.best_val,
        "best_step": ck.best_step,
        "parent": ck.parent,
    }


@app.command()
def info(
    path: str = typer.Argument("model.npz", help="Checkpoint to describe."),
    curve: bool = typer.Option(False, "--curve", help="Plot the train and validation loss kept in the checkpoint."),
    json_output: bool = typer.Option(False, "--json", help="Print every fact as one JSON object."),
):
    """Show what a checkpoint holds: config, vocabulary, size, progress.

    Examples:

      charrnn info home.npz

      charrnn info home.npz --json
    """
    ck = checkpoint.load(path)
    if curve:
        print(loss_plot(ck.history))
        return
    facts = checkpoint_info(path, ck)
    if json_output or not sys.stdout.isatty():
        _emit_json(facts)
    else:
        stdout_console().print(info_table(facts))


@app.command()
def plot(
    log_file: str = typer.Argument(..., help="A --log file (JSON Lines or .csv).", show_default=False),
    width: int = typer.Option(60, help="Plot width in characters."),
    height: int = typer.Option(14, help="Plot height in lines."),
):
    """Plot the train and validation loss of a --log file in the terminal.

    Examples:

      charrnn train corpora/home.txt --steps 100 -o logged.npz --log train.jsonl --log-every 5

      charrnn plot train.jsonl
    """
    if width < 10 or height < 4:
        raise UsageError("--width must be at least 10 and --height at least 4")
    records = read_log(log_file)
    if not records:
        raise CharRNNError(f"{log_file}: has no records yet")
    series = {}
    for key, name in (("train_nats", "train"), ("val_nats", "val")):
        pts = [(r["step"], r[key]) for r in records if finite(r.get(key)) and finite(r.get("step"))]
        if pts:
            series[name] = ([p[0] for p in pts], [p[1] for p in pts])
    print(line_plot(series, width=width, height=height, x_label="step", y_label="loss, nats/char"))


# ---------------------------------------------------------------- gradcheck, gradients


@app.command()
def gradcheck(
    cell: str = typer.Option("rnn", help="Cell to check: rnn, lstm or gru."),
    layers: int = typer.Option(1, help="Stacked layers."),
    hidden: int = typer.Option(8, help="Hidden units (small: every weight is perturbed twice)."),
    seq_len: int = typer.Option(6, help="Time steps backpropagated through."),
    vocab: int = typer.Option(7, help="Vocabulary size of the random data."),
    dropout: float = typer.Option(0.0, help="Check with dropout masks too."),
    tolerance: float = typer.Option(1e-5, help="Largest relative error that passes."),
    seed: int = typer.Option(0, help="Seed of the random model and data."),
    json_output: bool = typer.Option(False, "--json", help="Print the errors as JSON."),
):
    """Check the BPTT gradients against central finite differences, in float64.

    Prints each parameter's largest relative error |a - n| / (|a| + |n|); exits 1
    if any exceeds the tolerance.

    Examples:

      charrnn gradcheck

      charrnn gradcheck --cell lstm --layers 2 --hidden 6 --seq-len 8
    """
    mcfg = ModelConfig(vocab_size=vocab, hidden=hidden, cell=cell, layers=layers)
    mcfg.check()
    if seq_len < 1:
        raise UsageError(f"--seq-len must be positive, not {seq_len}")
    if not 0 <= dropout < 1:
        raise UsageError(f"--dropout must be in [0, 1), not {dropout}")
    errors = check_gradients(mcfg, seq_len=seq_len, batch=3, seed=seed, dropout=dropout)
    worst = max(errors.values())
    if json_output:
        _emit_json({"cell": cell, "layers": layers, "errors": errors, "max": worst, "tolerance": tolerance,
                    "passed": worst < tolerance})
    else:
        print(f"gradient check: {cell}, {layers} layer(s), H={hidden}, T={seq_len}, float64, central differences")
        for name, err in errors.items():
            print(f"  {name:<8} {err:.2e}  {'ok' if err < tolerance else 'FAIL'}")
        print(f"max relative error {worst:.2e} ({'passed' if worst < tolerance else 'failed'}: tolerance {tolerance:g})")
    if worst >= tolerance:
        raise typer.Exit(1)


@app.command()
def gradients(
    corpus: str = typer.Argument(..., help="Text to draw positions from, or - for stdin.", show_default=False),
    model_path: str = typer.Option("model.npz", "-m", "--model", help="Checkpoint to examine."),
    span: int = typer.Option(50, help="Largest distance k in steps."),
    samples: int = typer.Option(64, help="Random positions t to average over."),
    seed: int = typer.Option(0, help="Seed for choosing the positions."),
    json_output: bool = typer.Option(False, "--json", help="Print the norms as JSON."),
):
    """Show vanishing gradients: the mean norm of dL_t/da_(t-k) against k.

    Examples:

      charrnn gradients -m home.npz corpora/home.txt --span 20

      charrnn gradients -m home.npz corpora/home.txt --span 10 --json
    """
    if span < 1 or samples < 1:
        raise UsageError("--span and --samples must be positive")
    ck = checkpoint.load(model_path)
    ids = ck.vocab.encode(read_text(corpus), skip_unknown=True)
    try:
        norms = gradient_norms(ck, ids, span, samples, np.random.default_rng(seed))
    except ValueError as e:
        raise CharRNNError(f"{corpus}: {e}") from None
    if json_output:
        _emit_json({"cell": ck.model.cell, "span": span, "samples": samples, "k": list(range(span + 1)),
                    "norm": [float(n) for n in norms]})
        return
    print(f"mean ||dL_t/da_(t-k)|| over {samples} positions, {ck.model.cell} {ck.model.layers}x{ck.model.hidden}")
    print(f"{'k':>4}  {'norm':>10}  {'vs k=0':>8}")
    for k, n in enumerate(norms):
        if k <= 10 or k % 5 == 0 or k == span:
            print(f"{k:>4}  {n:>10.3e}  {n / norms[0]:>8.2e}")
    print(line_plot({ck.model.cell: (list(range(span + 1)), list(norms))}, log_y=True,
                    x_label="k (steps back)", y_label="gradient norm"))


def main() -> None:
    """Console-script entry point."""
    app()
