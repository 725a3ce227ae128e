"""What people see: progress on stderr, tables and panels, readable characters."""
from __future__ import annotations

import sys
import unicodedata

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from tqdm import tqdm

from charrnn.score import LN2
from charrnn.train import Reporter

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


class ProgressReporter(Reporter):
    """A tqdm bar on stderr (only on a terminal) and note lines (unless quiet)."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.bar = None

    def start(self, total, done):
        show = not self.quiet and sys.stderr is not None and sys.stderr.isatty()
        if show:
            self.bar = tqdm(total=total, initial=done, file=sys.stderr, unit="step", dynamic_ncols=True, leave=False)

    def step(self, step, loss, chars_per_sec, lr):
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(f"loss {loss / LN2:.3f} bits/char, {chars_per_sec:,.0f} chars/s, lr {lr:.2g}", refresh=False)

    def note(self, message):
        if not self.quiet:
            tqdm.write(message, file=sys.stderr)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def probs_table(rows: list[dict]) -> Table:
    """Rich table of next-character distributions, with probability bars."""
    table = Table(title="next-character probabilities", show_lines=False)
    table.add_column("#", justify="right", style="dim")
    table.add_column("after", justify="center", style="bold")
    width = max((len(r["next"]) for r in rows), default=1)
    for k in range(width):
        table.add_column(f"top {k + 1}")
    for r in rows:
        cells = []
        for n in r["next"]:
            bar = "█" * max(1, round(n["p"] * 10)) if n["p"] >= 0.005 else ""
            cells.append(f"[bold]{escape(show_char(n['char']))}[/] {n['p']:.3f} [cyan]{bar}[/]")
        table.add_row(str(r["index"]), escape(show_char(r["char"])), *cells)
    return table


def info_table(info: dict) -> Table:
    """Rich table of what a checkpoint holds."""
    table = Table(show_header=False, title=f"checkpoint {info['path']}")
    table.add_column(style="bold")
    table.add_column()
    cfg = info["config"]
    rows = [
        ("format version", str(info["format_version"])),
        ("model", f"{cfg['cell']}, {cfg['layers']} layer(s) of {cfg['hidden']} units, {cfg['dtype']}"),
        ("parameters", f"{info['params']:,}"),
        ("vocabulary", f"{info['vocab_size']} characters: " + "".join(show_char(c) for c in info["vocab"])),
        ("training", ", ".join(f"{k} {v}" for k, v in info["train_config"].items())),
        ("steps", f"{info['steps']:,}"),
        ("characters seen", f"{info['chars_seen']:,}"),
        ("best validation", "—" if info["best_val_nats"] is None else
         f"{info['best_val_nats']:.4f} nats/char ({info['best_val_nats'] / LN2:.4f} bits/char) at step {info['best_step']}"),
    ]
    if info.get("parent"):
        rows.append(("fine-tuned from", info["parent"]))
    for k, v in rows:
        table.add_row(k, escape(v))
    return table
