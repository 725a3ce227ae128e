"""Held-out quality under a time budget: train on the first 90%, score the last 10%.

    python benchmarks/quality.py [CORPUS] [--time 5m] [--config NAME="FLAGS"]... [--json]

Splits CORPUS (default ../shared/data/tinyshakespeare.txt) by characters into
train.txt (first 90%) and held.txt (last 10%) in a temporary folder. For each
config it runs the real commands one after another, never two at once:

    charrnn train train.txt --time T -o NAME.npz FLAGS
    charrnn eval -m NAME.npz held.txt --json

and reports the held-out nats/char, plus the learning curve: the validation
loss (the last 10% of train.txt, which training never sees) at each
validation pass against training seconds, read from the checkpoint's history.
With no --config it compares the defaults with each cell at the default size.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from benchmarks.common import default_corpus  # noqa: E402
from charrnn import checkpoint  # noqa: E402

DEFAULT_CONFIGS = ["defaults=", "rnn=--cell rnn", "lstm=--cell lstm", "gru=--cell gru"]
MARKS = (30, 60, 120, 180, 240, 300)


def charrnn(*args: str) -> str:
    r = subprocess.run([sys.executable, "-m", "charrnn", *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"charrnn {' '.join(args)} failed: {r.stderr.strip()}")
    return r.stdout


def curve_at(history: list, seconds: float) -> float | None:
    """The last validation loss measured at or before ``seconds`` of training."""
    points = [v for _, v, s in history if s <= seconds + 1e-9]
    return points[-1] if points else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpus", nargs="?", default=default_corpus())
    ap.add_argument("--time", default="5m", help="training budget per config")
    ap.add_argument("--config", action="append", help='NAME="FLAGS" (repeatable)')
    ap.add_argument("--json", dest="json_output", action="store_true")
    args = ap.parse_args()
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
            metrics = json.loads(charrnn("train", train_txt, "--time", args.time, "-o", out, "--quiet", "--json",
                                         *shlex.split(flags)))
            held = json.loads(charrnn("eval", "-m", out, held_txt, "--json"))
            ck = checkpoint.load(out)
            rows.append({
                "config": name, "flags": flags, "cell": ck.model.cell, "hidden": ck.model.hidden,
                "layers": ck.model.layers, "steps": metrics["steps"], "chars_per_sec": metrics["chars_per_sec"],
                "held_out_nats": round(held["nats_per_char"], 4), "held_out_bits": round(held["bits_per_char"], 4),
                "curve": [[round(s, 1), round(v, 4)] for _, v, s in ck.history["val"]],
            })
            print(f"{name}: held-out {held['nats_per_char']:.4f} nats/char", file=sys.stderr)
    if args.json_output:
        print(json.dumps(rows, indent=2))
        return
    print(f"corpus {os.path.basename(args.corpus)}: train on the first 90%, score the last 10%; budget {args.time}")
    head = "".join(f"{m:>7}s" for m in MARKS)
    print(f"{'config':<12} {'model':<16} {'steps':>6} {'chars/s':>8} {'held-out':>9}   val nats/char at{head}")
    for r in rows:
        model = f"{r['cell']} {r['layers']}x{r['hidden']}"
        pts = "".join(f"{v:>8.3f}" if v is not None else f"{'-':>8}"
                      for v in (curve_at([[0, v, s] for s, v in r["curve"]], m) for m in MARKS))
        print(f"{r['config']:<12} {model:<16} {r['steps']:>6} {r['chars_per_sec']:>8,.0f} {r['held_out_nats']:>9.4f}"
              f"   {'':16}{pts}")


if __name__ == "__main__":
    main()
