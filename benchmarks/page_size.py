"""How large a model an exported page can hold: file size, load time and speed in Chromium, by model size.

    python benchmarks/page_size.py [--sizes 128,512,1024,2048]

For each size, a one-layer GRU over the characters of corpora/pantry.txt (fresh weights: speed and size do
not depend on training) is saved, exported with
`charrnn export` (float32, and --float16), and opened from the file in
headless Chromium (Debian's, through Playwright). It reports the page's
size, the time from opening it to the model being ready, and the time to
show the next-character bars for the corpus's first 100 characters typed in at once.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from charrnn.checkpoint import new_checkpoint, save  # noqa: E402
from charrnn.config import ModelConfig, TrainConfig  # noqa: E402
from charrnn.vocab import Vocab  # noqa: E402

FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"]


def main() -> None:
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="128,512,1024,2048")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="charrnn-page-")
    with open(os.path.join(ROOT, "corpora", "pantry.txt"), encoding="utf-8") as f:
        corpus = f.read()
    vocab, typed = Vocab("".join(sorted(set(corpus)))), corpus[:100]
    print(f"{'model':<10} {'params':>10} {'weights':>8} {'page MB':>8} {'ready s':>8} {'bars s':>7}", flush=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=FLAGS)
        for hidden in (int(h) for h in args.sizes.split(",")):
            ck = new_checkpoint(vocab, ModelConfig(vocab_size=vocab.size, hidden=hidden), TrainConfig(average=0))
            model = os.path.join(tmp, f"g{hidden}.npz")
            save(ck, model)
            params = sum(v.size for v in ck.params.values())
            for half in (False, True):
                html = os.path.join(tmp, f"g{hidden}{'-16' if half else ''}.html")
                subprocess.run([sys.executable, "-m", "charrnn", "export", model, "-o", html, "--force"]
                               + (["--float16"] if half else []), check=True, capture_output=True)
                page = browser.new_page()
                t0 = time.perf_counter()
                page.goto("file://" + html)
                page.wait_for_selector("body[data-ready=yes]", timeout=600_000)
                ready = time.perf_counter() - t0
                t0 = time.perf_counter()
                page.fill("#probe", typed)
                page.wait_for_function("document.querySelectorAll('#bars .bar').length >= 5", timeout=600_000)
                bars = time.perf_counter() - t0
                page.close()
                print(f"gru-{hidden:<6} {params:>10,} {'float16' if half else 'float32':>8} "
                      f"{os.path.getsize(html) / 1e6:>8.1f} {ready:>8.2f} {bars:>7.2f}", flush=True)
        browser.close()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
