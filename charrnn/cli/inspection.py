"""`charrnn info`, `plot`, `gradcheck` and `gradients`: looking inside models and runs."""
from __future__ import annotations

import sys

import typer

from charrnn.cli.app import app, emit_json
from charrnn.config import ModelConfig
from charrnn.display import info_table, loss_plot, stdout_console
from charrnn.errors import CharRNNError, UsageError
from charrnn.gradcheck import norm_error, numeric_and_analytic, worst_element_error
from charrnn.metrics_log import finite, read_log
from charrnn.network import Dropout
from charrnn.plot import line_plot
from charrnn.model import load
from charrnn.vocab import read_text


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
    m = load(path)
    if curve:
        print(loss_plot(m.history))
        return
    facts = m.info.to_dict()
    if json_output or not sys.stdout.isatty():
        emit_json(facts)
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

      charrnn train corpora/home.txt --steps 100 --hidden 32 -o logged.npz --log train.jsonl --log-every 5

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
    cell: str = typer.Option("rnn", help="Cell to check: rnn, lstm, gru or mgru."),
    layers: int = typer.Option(1, help="Stacked layers."),
    skip: bool = typer.Option(False, "--skip", help="Every layer's output feeds the output layer."),
    hidden: int = typer.Option(8, help="Hidden units (small: every weight is perturbed twice)."),
    seq_len: int = typer.Option(6, help="Time steps backpropagated through."),
    vocab: int = typer.Option(7, help="Vocabulary size of the random data."),
    dropout: float = typer.Option(0.0, help="Check with dropout masks too."),
    weight_drop: float = typer.Option(0.0, help="Check with a dropout mask of the recurrent weights too."),
    tolerance: float = typer.Option(1e-5, help="Largest relative error that passes."),
    seed: int = typer.Option(0, help="Seed of the random model and data."),
    json_output: bool = typer.Option(False, "--json", help="Print the errors as JSON."),
):
    """Check the BPTT gradients against central finite differences, in float64.

    Judges each parameter by the relative error of its whole gradient,
    ||a - n|| / (||a|| + ||n||), and exits 1 if any exceeds the tolerance. The
    worst single entry, |a - n| / (|a| + |n|), is shown too: it can be large
    where both numbers are tiny, so it is not the verdict.

    Examples:

      charrnn gradcheck

      charrnn gradcheck --cell lstm --layers 2 --hidden 6 --seq-len 8
    """
    mcfg = ModelConfig(vocab_size=vocab, hidden=hidden, cell=cell, layers=layers, skip=skip)
    mcfg.check()
    if seq_len < 1:
        raise UsageError(f"--seq-len must be positive, not {seq_len}")
    for flag, p in (("--dropout", dropout), ("--weight-drop", weight_drop)):
        if not 0 <= p < 1:
            raise UsageError(f"{flag} must be in [0, 1), not {p}")
    pairs = numeric_and_analytic(mcfg, seq_len=seq_len, batch=3, seed=seed, dropout=Dropout(dropout, weight_drop))
    errors = {name: norm_error(a, n) for name, (a, n) in pairs.items()}
    elements = {name: worst_element_error(a, n) for name, (a, n) in pairs.items()}
    worst = max(errors.values())
    if json_output:
        emit_json({"cell": cell, "layers": layers, "errors": errors, "element_errors": elements, "max": worst,
                   "tolerance": tolerance, "passed": worst < tolerance})
    else:
        print(f"gradient check: {cell}, {layers} layer(s), H={hidden}, T={seq_len}, float64, central differences")
        print(f"  {'param':<8} {'rel. error':>10}  {'worst entry':>11}")
        for name, err in errors.items():
            print(f"  {name:<8} {err:>10.2e}  {elements[name]:>11.2e}  {'ok' if err < tolerance else 'FAIL'}")
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
    m = load(model_path)
    try:
        norms = m.gradient_norms(read_text(corpus), span, samples, seed)
    except CharRNNError as e:
        raise CharRNNError(f"{corpus}: {e}") from None
    cfg = m.info.config
    if json_output:
        emit_json({"cell": cfg["cell"], "span": span, "samples": samples, "k": list(range(span + 1)),
                    "norm": [float(n) for n in norms]})
        return
    print(f"mean ||dL_t/da_(t-k)|| over {samples} positions, {cfg['cell']} {cfg['layers']}x{cfg['hidden']}")
    print(f"{'k':>4}  {'norm':>10}  {'vs k=0':>8}")
    for k, n in enumerate(norms):
        if k <= 10 or k % 5 == 0 or k == span:
            print(f"{k:>4}  {n:>10.3e}  {n / norms[0]:>8.2e}")
    print(line_plot({cfg["cell"]: (list(range(span + 1)), list(norms))}, log_y=True,
                    x_label="k (steps back)", y_label="gradient norm"))


