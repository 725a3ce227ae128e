"""What people see: progress on stderr, tables and panels, readable characters."""
from __future__ import annotations

import math
import os
import sys
import unicodedata

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from tqdm import tqdm

from charrnn.metrics_log import MetricsLog
from charrnn.plot import line_plot
from charrnn.numerics import LN2, nats_and_bits
from charrnn.sample import Decoding, Stops, generate
from charrnn.events import Reporter, RunMetrics, RunStart

_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r", " ": "␠"}


def show_char(c: str) -> str:
    """A visible stand-in for invisible characters: ``\\n``, ``␠``, ``\\x07``, ``U+200B``."""
    if c in _NAMED:
        return _NAMED[c]
    cat = unicodedata.category(c)
    if cat in ("Cc",) and ord(c) < 0x100:
        return f"\\x{ord(c):02x}"
    if cat in ("Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp", "Mn", "Me"):
        return f"U+{ord(c):04X}"
    return c


def stderr_console() -> Console:
    return Console(file=sys.stderr, highlight=False)


def stdout_console() -> Console:
    return Console(file=sys.stdout, highlight=False)


SAMPLE_AT_VALIDATION = "validation"  # sample_every value: a live sample after each validation pass


class ProgressReporter(Reporter):
    """A tqdm bar on stderr (only on a terminal), note lines, live samples and the --log file."""

    def __init__(self, quiet: bool = False, sample_every: int | str = 0, sample_length: int = 200,
                 log: MetricsLog | None = None):
        """``sample_every``: steps between live samples, 0 for none, or SAMPLE_AT_VALIDATION."""
        self.quiet, self.sample_every, self.sample_length, self.log = quiet, sample_every, sample_length, log
        self.bar = None
        self.last_val = None
        self.started = False  # set when a run starts (never, on an MPI rank other than 0)

    def start(self, run: RunStart):
        self.started = True
        self.note(f"training {run.cell} H={run.hidden} on {run.text_chars:,} chars, vocabulary {run.vocab_size}, "
                  f"{run.params:,} parameters" + (f", resuming at step {run.step}" if run.resumed else ""))
        show = not self.quiet and sys.stderr is not None and sys.stderr.isatty()
        if show:
            self.bar = tqdm(total=run.total, initial=run.step, file=sys.stderr, unit="step", dynamic_ncols=True,
                            leave=False)

    def step(self, ck, event):
        if event.val_nats is not None:
            self.last_val = event.val_nats
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(
                f"loss {event.train_nats / LN2:.3f} bits/char, {event.chars_per_sec:,.0f} chars/s, "
                f"lr {event.lr:.2g}", refresh=False)
        if self.log is not None and event.step % self.log.every == 0:
            self.log.write(event)
        if self.sample_every == SAMPLE_AT_VALIDATION:
            due = event.val_nats is not None
        else:
            due = self.sample_every > 0 and event.step % self.sample_every == 0
        if due and not self.quiet:
            self.live_sample(ck, event.step)

    def live_sample(self, ck, step):
        """A short sample on stderr, from its own Generator so training's randomness is untouched."""
        rng = np.random.default_rng([ck.train_config.seed, step])
        text = "".join(generate(ck, "", rng, Decoding(temp=0.8), Stops(length=self.sample_length)))
        val = f"val {self.last_val:.3f} nats/char" if self.last_val is not None else "no validation yet"
        tqdm.write(f"--- sample at step {step} ({val}), temperature 0.8 ---\n{text}\n---", file=sys.stderr)

    def note(self, message):
        if not self.quiet:
            tqdm.write(message, file=sys.stderr)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.log is not None:
            self.log.close()
            self.log = None


def summary_table(metrics: RunMetrics) -> Table:
    """The end-of-training summary: steps, throughput, losses in nats and bits, best, where saved."""
    table = Table(title="training summary", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    m = metrics
    rows = [
        ("steps", f"{m.steps:,} ({m.run_steps:,} in this run, stopped by {m.stopped_by})"),
        ("characters seen", f"{m.chars_seen:,}"),
        ("time", f"{m.seconds:.1f} s"),
        ("characters/s", f"{m.chars_per_sec:,.0f}"),
        ("train loss", nats_and_bits(m.train_nats)),
        ("validation loss", nats_and_bits(m.val_nats)),
        ("best validation", nats_and_bits(m.best_val_nats) + (f" at step {m.best_step}" if m.best_step else "")),
        ("served", served_text(m.served, m.served_step, m.steps, m.served_temp)),
        ("checkpoint", m.checkpoint),
    ]
    for k, v in rows:
        table.add_row(k, escape(str(v)))
    return table


def served_text(served: str, served_step: int | None, resume_step: int, temp: float = 1.0) -> str:
    """Which weights a checkpoint serves and where a resume continues, as one phrase."""
    what = {"last": "the last step's weights", "weights": f"the weights of step {served_step}",
            "average": f"the averaged weights at step {served_step}"}[served]
    scaled = "" if temp == 1.0 else f", calibrated to temperature {temp:.2f}"
    return f"{what}{scaled}; --resume continues from step {resume_step}"


def loss_plot(history: dict, width: int = 60, height: int = 12) -> str:
    """Train and validation loss (nats/char) against steps, as text."""
    series = {}
    for name in ("train", "val"):
        rows = history.get(name) or []
        if rows:
            series[name] = ([r[0] for r in rows], [r[1] for r in rows])
    if not series:
        return "(no loss history yet)"
    return line_plot(series, width=width, height=height, x_label="step", y_label="loss, nats/char")


def probs_table(rows: list[dict]) -> Table:
    """Rich table of next-character distributions, with probability bars."""
    table = Table(title="next-character probabilities", show_lines=False)
    table.add_column("#", justify="right", style="dim")
    table.add_column("after", justify="center", style="bold")
    table.add_column("entropy", justify="right", style="dim")
    width = max((len(r["next"]) for r in rows), default=1)
    for k in range(width):
        table.add_column(f"top {k + 1}")
    for r in rows:
        cells = []
        for n in r["next"]:
            bar = "█" * max(1, round(n["p"] * 10)) if n["p"] >= 0.005 else ""
            cells.append(f"[bold]{escape(show_char(n['char']))}[/] {n['p']:.3f} [cyan]{bar}[/]")
        table.add_row(str(r["index"]), escape(show_char(r["char"])), f"{r['entropy_bits']:.2f} bits", *cells)
    return table


def describe_validation(tcfg: dict) -> str:
    """How a run chose its validation text, from its TrainConfig as a dict."""
    if tcfg.get("val_files"):
        return "the file(s) " + ", ".join(tcfg["val_files"]) + " (nothing held out of the corpus)"
    if not tcfg["val_frac"]:
        return "none (val_frac 0)"
    where = "the end of the corpus" if tcfg["val_from"] == "end" else "evenly spaced blocks through the corpus"
    return f"{tcfg['val_frac']:.0%} held out, from {where}"


def info_table(info: dict) -> Panel:
    """Rich panel of what a checkpoint holds."""
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    cfg = info["config"]
    rows = [
        ("format version", str(info["format_version"])),
        ("model", f"{cfg['cell']}, {cfg['layers']} layer(s) of {cfg['hidden']} units, {cfg['dtype']}"
                  + (", every layer to the output" if cfg.get("skip") else "")
                  + (", records mode" if info.get("records") else "")),
        ("parameters", f"{info['params']:,}"),
        ("vocabulary", f"{info['vocab_size']} characters: " + "".join(show_char(c) for c in info["vocab"])),
        ("validation", describe_validation(info["train_config"])),
        ("training", ", ".join(f"{k} {v}" for k, v in info["train_config"].items())),
        ("steps", f"{info['steps']:,}"),
        ("characters seen", f"{info['chars_seen']:,}"),
        ("best validation", nats_and_bits(info["best_val_nats"])
         + ("" if info["best_val_nats"] is None else f" at step {info['best_step']}")),
    ]
    rows.append(("served", served_text(info["served"], info["served_step"], info["resume_step"],
                                       info.get("served_temp", 1.0))))
    if info.get("parent"):
        rows.append(("fine-tuned from", info["parent"]))
    for k, v in rows:
        table.add_row(k, escape(v))
    return Panel(table, title=f"charrnn checkpoint {escape(info['path'])}", expand=False)


# confidence heat map for `sample --show-probs`: low probability red, high green
_HEAT = [(0.05, 196), (0.2, 208), (0.4, 220), (0.7, 148), (1.01, 46)]


def _heat_colour(p: float) -> int:
    return next(c for limit, c in _HEAT if p < limit)


def heat_char(ch: str, p: float) -> str:
    """``ch`` with a 256-colour background for the probability p (ANSI; only used on a terminal)."""
    if os.environ.get("NO_COLOR"):
        return ch
    if ch == "\n":
        return ch
    return f"\x1b[48;5;{_heat_colour(p)}m\x1b[38;5;16m{ch}\x1b[0m"


def print_heat_legend() -> None:
    """The colour key for heat_char, on stderr."""
    if os.environ.get("NO_COLOR"):
        print("(NO_COLOR is set: no confidence colours)", file=sys.stderr)
        return
    lo = 0.0
    parts = []
    for limit, colour in _HEAT:
        parts.append(f"\x1b[48;5;{colour}m\x1b[38;5;16m p<{min(limit, 1):.2g} \x1b[0m" if limit <= 1 else
                     f"\x1b[48;5;{colour}m\x1b[38;5;16m p≥{lo:.2g} \x1b[0m")
        lo = limit
    print("model's probability of each character: " + "".join(parts), file=sys.stderr)


def surprise_char(ch: str, nats: float) -> str:
    """``ch`` shaded by surprisal for `eval --per-char --color`: more surprising is redder."""
    if os.environ.get("NO_COLOR") or ch == "\n":
        return ch
    return heat_char(ch, math.exp(-nats))
