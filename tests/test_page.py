"""The page, in a real browser: headless Chromium driven by Playwright, served and exported."""
import json
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("starlette", reason="the serve extra is not installed: pip install 'charrnn[serve]'")
playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("no Chromium on this machine: apt-get install -y chromium", allow_module_level=True)

import charrnn  # noqa: E402

from conftest import CORPORA  # noqa: E402
from test_serve import Served  # noqa: E402

FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    pg = context.new_page()
    requests = []
    pg.on("request", lambda r: requests.append(r.url))
    pg.requests = requests
    yield pg
    context.close()


def _ready(page):
    page.wait_for_selector("body[data-ready=yes]", timeout=30_000)


def test_the_served_page_generates_text_shaded_by_probability(page, home_model):
    server = Served(home_model)
    try:
        page.goto(f"http://127.0.0.1:{server.port}/")
        _ready(page)
        assert "rnn, 1 × 32 units" in page.text_content("#card")
        assert page.locator("#curve polyline").count() >= 1  # the training curve, drawn as SVG
        page.fill("#prime", "HO")
        page.fill("#length", "40")
        page.click("#generate")
        page.wait_for_function("document.querySelectorAll('#output .ch').length >= 40", timeout=30_000)
        spans = page.locator("#output .ch")
        text = "".join(spans.all_text_contents())
        assert text.startswith("ME\nHOME") and page.text_content("#output .prime") == "HO"
        colours = {spans.nth(i).evaluate("e => getComputedStyle(e).backgroundColor") for i in range(10)}
        assert colours and all(c != "rgba(0, 0, 0, 0)" for c in colours)  # each character is shaded
        spans.nth(0).hover()
        hover = page.text_content("#hover")
        assert page.is_visible("#hover") and hover.startswith("p = ") and hover.count("\n") == 5  # top five
        assert all(url.startswith(f"http://127.0.0.1:{server.port}/") for url in page.requests)  # nothing else
    finally:
        server.stop()


def test_typing_hom_into_a_home_models_page_puts_e_on_top(page, home_model):
    server = Served(home_model)
    try:
        page.goto(f"http://127.0.0.1:{server.port}/")
        _ready(page)
        page.type("#probe", "HOM", delay=30)
        page.wait_for_function("document.querySelector('#bars .bar') && "
                               "document.querySelector('#probe').value === 'HOM'", timeout=30_000)
        page.wait_for_timeout(300)
        first = page.locator("#bars .bar").first
        assert first.get_attribute("data-char") == "E" and float(first.get_attribute("data-p")) > 0.9
    finally:
        server.stop()


@pytest.fixture(scope="module")
def cell_models(tmp_path_factory):
    """A small model of each cell, trained briefly on the recipes (two layers for the LSTM and the scaled GRU)."""
    folder = tmp_path_factory.mktemp("cells")
    corpus = folder / "c.txt"
    corpus.write_text((CORPORA / "pantry.txt").read_text()[:20000])
    paths = {}
    for cell, layers in (("rnn", 1), ("lstm", 2), ("gru", 1), ("mgru", 2)):
        out = folder / f"{cell}.npz"
        charrnn.train(corpus, out, cell=cell, layers=layers, hidden=24, steps=40, lr=0.01, workers=1)
        paths[cell] = out
    paths["lstm-skip"] = folder / "lstm-skip.npz"  # every layer feeding the output
    charrnn.train(corpus, paths["lstm-skip"], cell="lstm", layers=2, skip=True, hidden=24, steps=40, lr=0.01, workers=1)
    return paths


def _top_five(pg) -> list:
    pg.wait_for_function("document.querySelectorAll('#bars .bar').length >= 5", timeout=30_000)
    bars = pg.locator("#bars .bar")
    return [(bars.nth(i).get_attribute("data-char"), float(bars.nth(i).get_attribute("data-p"))) for i in range(5)]


@pytest.mark.parametrize("float16", [False, True])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "mgru", "lstm-skip"])
def test_the_exported_page_runs_the_model_without_a_server(page, cell_models, tmp_path, cell, float16):
    model, html = cell_models[cell], tmp_path / f"{cell}.html"
    args = [sys.executable, "-m", "charrnn", "export", str(model), "-o", str(html)] + (["--float16"] if float16 else [])
    r = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    page.goto(html.as_uri())
    _ready(page)
    prime = "1. Add the "
    page.fill("#probe", prime)
    got = _top_five(page)
    cli = subprocess.run([sys.executable, "-m", "charrnn", "probs", "-m", str(model), prime, "--last", "-k", "5",
                          "--json"], capture_output=True, text=True, timeout=60)
    want = [(n["char"], n["p"]) for n in json.loads(cli.stdout)["next"]]
    assert [c for c, _ in got] == [c for c, _ in want]
    for (_, p), (_, q) in zip(got, want):
        assert abs(p - q) < (1e-3 if float16 else 1e-4)
    assert all(url.startswith("file://") for url in page.requests)  # no network at all
    page.fill("#length", "30")
    page.click("#generate")
    page.wait_for_function("document.querySelectorAll('#output .ch').length >= 30", timeout=30_000)
