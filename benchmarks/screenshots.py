"""Screenshots of the page, served and exported, for the docs.

    python benchmarks/screenshots.py [--out docs]

Trains a small GRU on corpora/pantry.txt for 300 steps, serves it with
`charrnn serve`, and in headless Chromium (Debian's, through Playwright)
generates a sample and types into the next-character box; saves
OUT/page-served.png. Then exports the model with `charrnn export`, opens the
file with no server, and saves OUT/page-exported.png.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"]


def shoot(page, url: str, path: str) -> None:
    page.goto(url)
    page.wait_for_selector("body[data-ready=yes]")
    page.fill("#prime", "1. ")
    page.fill("#length", "240")
    page.fill("#seed", "3")
    page.click("#generate")
    page.wait_for_function("document.querySelectorAll('#output .ch').length >= 240", timeout=120_000)
    page.fill("#probe", "Knead the w")
    page.wait_for_function("document.querySelectorAll('#bars .bar').length >= 5", timeout=60_000)
    page.locator("#output .ch").nth(40).hover()
    page.screenshot(path=path, full_page=True)
    print(f"wrote {path}")


def main() -> None:
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "docs"))
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="charrnn-shots-")
    model, html = os.path.join(tmp, "recipes.npz"), os.path.join(tmp, "recipes.html")
    charrnn = [sys.executable, "-m", "charrnn"]
    subprocess.run([*charrnn, "train", os.path.join(ROOT, "corpora", "pantry.txt"), "--steps", "300", "--hidden", "128",
                    "-o", model, "-q"], check=True)
    subprocess.run([*charrnn, "export", model, "-o", html], check=True)
    server = subprocess.Popen([*charrnn, "serve", model, "--port", "0"], stderr=subprocess.PIPE, text=True)
    port = int(server.stderr.readline().split("http://127.0.0.1:")[1].split("/")[0])
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=FLAGS)
            page = browser.new_page(viewport={"width": 1200, "height": 820})
            shoot(page, f"http://127.0.0.1:{port}/", os.path.join(args.out, "page-served.png"))
            shoot(page, "file://" + html, os.path.join(args.out, "page-exported.png"))
            browser.close()
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
