"""Held-out quality under a time budget: train on the first 90%, score the last 10%.

    python benchmarks/quality.py [CORPUS] [--time 5m] [--config NAME="FLAGS"]... [--json]

Splits CORPUS (default ../shared/data/tinyshakespeare.txt) by characters into
train.txt (first 90%) and held.txt (last 10%) in a temporary folder. For each
config it runs the real commands one after another, never two at once:

    charrnn train train.txt --time T -o NAME.npz FLAGS
    charrnn eval -m NAME.npz held.txt --json

and reports the held-out nats/char, plus two learning curves against
training seconds: the held-out loss of every checkpoint training saved (a
watcher copies NAME.npz each time training replaces it, at each validation
pass, and each copy is scored on held.txt afterwards), and the validation
loss (the last 10% of train.txt, which training never sees) from the
checkpoint's history. With no --config it runs the defaults (a GRU of 384),
each cell at 256 units, and the defaults trained on all of train.txt
(--val-frac 0, so no validation curve): about 35 minutes. --keep DIR keeps
the final models there; --keep-copies DIR keeps every saved copy, as
DIR/NAME/STEP.npz (benchmarks/calibration.py --copies studies them).

--budgets 5m,10m,20m instead trains, at each budget, the model the budget
chooses (no flags) and prints the budgets side by side: the model and
dropout chosen, characters seen, what stopped it, which weights the file
serves, the held-out loss and its change from the previous budget. Under
each budget's row go the run's own notes: what it chose and why, and any
re-fit of its regularisation. --table FILE prints that table again from its
--json output saved in FILE.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.common import default_corpus  # noqa: E402
from charrnn import checkpoint  # noqa: E402

DEFAULT_CONFIGS = ["defaults=", "gru256=--hidden 256", "lstm256=--cell lstm --hidden 256",
                   "rnn256=--cell rnn --hidden 256", "all-train=--val-frac 0"]
MARKS = (30, 60, 120, 180, 240, 300)
CHARRNN = [sys.executable, "-m", "charrnn"]


def charrnn(*args: str) -> str:
    r = subprocess.run([*CHARRNN, *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"charrnn {' '.join(args)} failed: {r.stderr.strip()}")
    return r.stdout


def train_watched(train_txt: str, out: str, flags: list[str], time_budget: str) -> tuple[dict, list[str]]:
    """Run charrnn train, copying ``out`` aside each time training replaces it; returns (metrics, copies).

    The metrics are the run's --json figures and ``notes``: its stderr lines that begin "note: " (what a
    budget chose and why, a re-fit of its regularisation, the way it trains). With stderr a pipe, the run
    draws no progress bar and no live samples."""
    proc = subprocess.Popen([*CHARRNN, "train", train_txt, "--time", time_budget, "-o", out,
                             "--json", *flags], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    copies, done = [], threading.Event()

    def watch():
        seen, finished = None, False
        while not finished:
            finished = done.wait(0.5)  # one more look after training ends, for its final save
            try:
                stamp = os.stat(out).st_mtime_ns
            except FileNotFoundError:
                continue
            if stamp != seen:  # saves are atomic renames, so the file is always whole
                seen = stamp
                copies.append(f"{out}.{len(copies)}")
                shutil.copyfile(out, copies[-1])

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    stdout, stderr = proc.communicate()
    done.set()
    watcher.join()
    if proc.returncode != 0:
        raise SystemExit(f"charrnn train failed: {stderr.strip()}")
    notes = [line for line in stderr.splitlines() if line.startswith("note: ")]
    return {**json.loads(stdout), "notes": notes}, copies


SPEAKER = re.compile(r"(?m)^[A-Z][A-Za-z ]+:$")  # a play's speaker line, e.g. "PETRUCHIO:"


def speaker_split(model: str, held_txt: str) -> dict:
    """Held-out nats/char on speaker-name lines and on everything else, from ``charrnn eval --per-char``."""
    with open(held_txt, encoding="utf-8") as f:
        text = f.read()
    in_name = [False] * len(text)
    for m in SPEAKER.finditer(text):
        in_name[m.start() : m.end()] = [True] * (m.end() - m.start())
    sums, counts = [0.0, 0.0], [0, 0]
    for line in charrnn("eval", "-m", model, held_txt, "--per-char").splitlines()[1:]:
        index, _, nats, _, _ = line.split("\t")
        kind = in_name[int(index)]
        sums[kind] += float(nats)
        counts[kind] += 1
    n = sum(counts)
    if not (counts[0] and counts[1]):
        return None  # a corpus without speaker-name lines (or of nothing else): no breakdown
    return {"name_frac": round(counts[1] / n, 4), "name_nats": round(sums[1] / counts[1], 4),
            "other_nats": round(sums[0] / counts[0], 4), "name_share_nats": round(sums[1] / n, 4)}


def curve_at(curve: list, seconds: float) -> float | None:
    """The last loss of ``curve`` (rows of seconds, nats, ...) measured at or before ``seconds`` of training."""
    points = [v for s, v, *_ in curve if s <= seconds + 1e-9]
    return points[-1] if points else None


def budget_check(corpus: str, budgets: list[str], json_output: bool = False) -> None:
    """Side by side, for each budget: the model it chose (no flags), what it saw, and its held-out loss. The
    table prints each budget's row as it ends (--json: all rows at the end)."""
    rows = []
    if not json_output:
        print_header(corpus)
    for budget in budgets:
        r = subprocess.run([sys.executable, __file__, corpus, "--time", budget, "--config", "chosen=", "--json"],
                           capture_output=True, text=True, check=True)
        rows.append({"budget": budget, **json.loads(r.stdout)[0]})
        if not json_output:
            print_row(rows[-1], rows[-2]["held_out_nats"] if len(rows) > 1 else None)
    if json_output:
        print(json.dumps(rows, indent=2))


def print_table(corpus: str, saved: str) -> None:
    """The side-by-side table of budget_check's rows, read from ``saved`` (its --json output)."""
    with open(saved, encoding="utf-8") as f:
        rows = json.load(f)
    print_header(corpus)
    for i, row in enumerate(rows):
        print_row(row, rows[i - 1]["held_out_nats"] if i else None)


def print_header(corpus: str) -> None:
    """The heading of budget_check's side-by-side table."""
    print(f"corpus {os.path.basename(corpus)}: train on the first 90%, charrnn eval of the -o file on the last 10%")
    print(f"{'budget':<7} {'model':<15} {'chunks':>6} {'dropout':>7} {'w-drop':>6} {'decay':>5} {'chars/s':>8} "
          f"{'chars seen':>11} {'val+avg':>7} {'stopped by':>10} {'served':>21} {'held-out':>9} {'vs last':>8}",
          flush=True)


def print_row(row: dict, last: float | None) -> None:
    """One budget's row of the table; ``last`` is the held-out loss of the budget before it."""
    served = row["served"] if row["served"] == "last" else f"{row['served']}@{row['served_step']}"
    if row.get("served_temp", 1.0) != 1.0:
        served += f"/{row['served_temp']:.2f}"  # calibrated: the output layer divided by this
    gain = "" if last is None else f"{row['held_out_nats'] - last:+.4f}"
    share = row["val_seconds"] / row["seconds"] if row["seconds"] else 0.0
    layers = "" if row.get("layers", 1) == 1 else f"{row['layers']}x"
    model = f"{row['cell']}-{layers}{row['hidden']}" + ("+skip" if row.get("skip") else "")
    chunks = f"{row.get('batch', '?')}x{row.get('seq_len', '?')}"
    print(f"{row['budget']:<7} {model:<15} {chunks:>6} {row['dropout']:>7g} {row['weight_drop']:>6g} "
          f"{row.get('weight_decay', 0.0):>5g} "
          f"{row['chars_per_sec']:>8,.0f} {row['chars_seen']:>11,} {share:>7.1%} {row['stopped_by']:>10} "
          f"{served:>21} {row['held_out_nats']:>9.4f} {gain:>8}", flush=True)
    for line in row.get("notes", []):  # what the budget chose and why, and any re-fit
        print(f"        {line}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus", nargs="?", default=default_corpus())
    ap.add_argument("--time", default="5m", help="training budget per config")
    ap.add_argument("--config", action="append", help='NAME="FLAGS" (repeatable)')
    ap.add_argument("--budgets", metavar="LIST", help="e.g. 5m,10m,20m: each budget's own choice, side by side")
    ap.add_argument("--keep", metavar="DIR", help="copy each config's final model to DIR/NAME.npz")
    ap.add_argument("--keep-copies", metavar="DIR", help="keep every saved copy of each run as DIR/NAME/STEP.npz")
    ap.add_argument("--json", dest="json_output", action="store_true")
    ap.add_argument("--table", metavar="FILE", help="print the table of a --budgets --json output saved in FILE")
    args = ap.parse_args()
    if args.table:
        print_table(args.corpus, args.table)
        return
    if not os.path.isfile(args.corpus):
        sys.exit(f"quality.py: error: {args.corpus}: no such file; give the path of a UTF-8 text file")
    if args.budgets:
        budget_check(args.corpus, args.budgets.split(","), args.json_output)
        return
    with open(args.corpus, encoding="utf-8") as f:
        text = f.read()
    cut = len(text) - len(text) // 10
    rows = []
    with tempfile.TemporaryDirectory(prefix="charrnn-quality-") as tmp:
        train_txt, held_txt = os.path.join(tmp, "train.txt"), os.path.join(tmp, "held.txt")
        with open(train_txt, "w", encoding="utf-8") as f:
            f.write(text[:cut])
        with open(held_txt, "w", encoding="utf-8") as f:
            f.write(text[cut:])
        for spec in args.config or DEFAULT_CONFIGS:
            name, _, flags = spec.partition("=")
            out = os.path.join(tmp, f"{name}.npz")
            metrics, copies = train_watched(train_txt, out, shlex.split(flags), args.time)
            held = json.loads(charrnn("eval", "-m", out, held_txt, "--json"))
            ck = checkpoint.load(out)
            held_curve = []
            for copy in copies:  # scored after training, so they never compete with it for the CPU
                saved = checkpoint.load(copy)
                seconds, seen = saved.seconds, saved.chars_seen
                nats = json.loads(charrnn("eval", "-m", copy, held_txt, "--json"))["nats_per_char"]
                held_curve.append([round(seconds, 1), round(nats, 4), seen])
                if args.keep_copies:
                    os.makedirs(os.path.join(args.keep_copies, name), exist_ok=True)
                    shutil.move(copy, os.path.join(args.keep_copies, name, f"{saved.step:06d}.npz"))
                else:
                    os.remove(copy)
            if args.keep:
                os.makedirs(args.keep, exist_ok=True)
                shutil.copyfile(out, os.path.join(args.keep, f"{name}.npz"))
            rows.append({
                "config": name, "flags": flags, "cell": ck.model_config.cell, "hidden": ck.model_config.hidden,
                "layers": ck.model_config.layers, "skip": ck.model_config.skip, "batch": ck.train_config.batch,
                "seq_len": ck.train_config.seq_len, "steps": metrics["steps"], "chars_per_sec": metrics["chars_per_sec"],
                "chars_seen": metrics["chars_seen"], "dropout": ck.train_config.dropout,
                "weight_drop": ck.train_config.weight_drop, "weight_decay": ck.train_config.weight_decay,
                "patience": ck.train_config.patience,
                "seconds": metrics["seconds"], "val_seconds": metrics["val_seconds"],
                "stopped_by": metrics["stopped_by"], "served": metrics["served"], "served_step": metrics["served_step"],
                "served_temp": metrics["served_temp"],
                "held_out_nats": round(held["nats_per_char"], 4), "held_out_bits": round(held["bits_per_char"], 4),
                "held_curve": held_curve, "speakers": speaker_split(out, held_txt), "notes": metrics["notes"],
                "curve": [[round(s, 1), round(v, 4)] for _, v, s in ck.history["val"]],
            })
            print(f"{name}: held-out {held['nats_per_char']:.4f} nats/char", file=sys.stderr)
    if args.json_output:
        print(json.dumps(rows, indent=2))
        return
    print(f"corpus {os.path.basename(args.corpus)}: train on the first 90%, score the last 10%; budget {args.time}")
    head = "".join(f"{m:>7}s" for m in MARKS)
    print(f"{'config':<12} {'model':<16} {'steps':>6} {'chars/s':>8} {'held-out':>9}   {'curve':<8}{head}")
    for r in rows:
        model = f"{r['cell']} {r['layers']}x{r['hidden']}"
        for label, curve in (("held", r["held_curve"]), ("val", r["curve"])):
            pts = "".join(f"{v:>8.3f}" if v is not None else f"{'-':>8}"
                          for v in (curve_at(curve, m) for m in MARKS))
            lead = (f"{r['config']:<12} {model:<16} {r['steps']:>6} {r['chars_per_sec']:>8,.0f} "
                    f"{r['held_out_nats']:>9.4f}" if label == "held" else " " * 55)
            print(f"{lead}   {label:<8}{pts}")
    print("held-out nats/char on speaker-name lines (e.g. 'PETRUCHIO:') and on the rest:")
    for r in (r for r in rows if r["speakers"]):
        sp = r["speakers"]
        print(f"  {r['config']:<12} names {sp['name_nats']:.3f} ({sp['name_frac']:.1%} of the characters, "
              f"{sp['name_share_nats']:.3f} of the average), rest {sp['other_nats']:.3f}")


if __name__ == "__main__":
    main()
