import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from charrnn import checkpoint
from charrnn.cli import app
from charrnn.config import ModelConfig, TrainConfig
from charrnn.limits import Limits
from charrnn.checkpoint import new_checkpoint
from charrnn.trainer import train_checkpoint as train
from charrnn.vocab import Vocab

ROOT = Path(__file__).resolve().parent.parent
CORPORA = ROOT / "corpora"
SHAKESPEARE = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"


def train_small(text: str, out: str, steps: int, hidden: int = 32, cell: str = "rnn", **train_opts) -> checkpoint.Checkpoint:
    """Train a small model (a vanilla RNN unless told, no dropout) through the library; save it to ``out``."""
    vocab = Vocab.from_text(text)
    train_opts.setdefault("dropout", 0.0)
    ck = new_checkpoint(vocab, ModelConfig(vocab_size=vocab.size, hidden=hidden, cell=cell), TrainConfig(**train_opts))
    train(ck, vocab.encode(text), out, Limits(steps=steps))
    return ck


@pytest.fixture(scope="session")
def home_model(tmp_path_factory) -> str:
    """A model trained on corpora/home.txt until it knows HOME."""
    out = str(tmp_path_factory.mktemp("home") / "home.npz")
    train_small((CORPORA / "home.txt").read_text(), out, steps=200, hidden=32, lr=0.01)
    return out


@pytest.fixture(scope="session")
def pantry_model(tmp_path_factory) -> str:
    """A briefly trained model on the generated pantry corpus (a richer vocabulary)."""
    out = str(tmp_path_factory.mktemp("pantry") / "pantry.npz")
    train_small((CORPORA / "pantry.txt").read_text()[:60000], out, steps=60, hidden=48, lr=0.005)
    return out


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def cli(runner):
    """Run the real CLI in-process; returns the click Result (stdout and stderr apart)."""

    def run(*args, input=None, env=None):
        return runner.invoke(app, [str(a) for a in args], input=input, env=env)

    return run


def run_cmd(args, input=None, cwd=None, env=None, timeout=120) -> subprocess.CompletedProcess:
    """Run ``python -m charrnn ARGS`` as a real process."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "charrnn", *map(str, args)],
        input=input, capture_output=True, cwd=cwd, env=full_env, timeout=timeout,
    )


def run_shell(script: str, cwd=None, timeout=120) -> subprocess.CompletedProcess:
    """Run a shell pipeline where ``charrnn`` is this interpreter's module."""
    env = {**os.environ, "CHARRNN": f"{sys.executable} -m charrnn"}
    return subprocess.run(["bash", "-c", "set -o pipefail; " + script], capture_output=True, cwd=cwd, env=env,
                          timeout=timeout)


def one_line_error(stderr: str) -> str:
    """Assert stderr is exactly one error line without a traceback, and not a crash; return it."""
    lines = [l for l in stderr.splitlines() if l.strip()]
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, stderr
    assert lines[0].startswith("charrnn: error: "), stderr
    assert not lines[0].startswith("charrnn: error: internal error"), stderr  # a bug, not bad input
    return lines[0]


@pytest.fixture(autouse=True, scope="session")
def _own_corpus_cache(tmp_path_factory):
    """Corpus caches go to a folder of the test session's, never the user's ~/.cache."""
    os.environ["CHARRNN_CACHE_DIR"] = str(tmp_path_factory.mktemp("corpus-cache"))


@pytest.fixture(autouse=True)
def _no_inherited_workers(monkeypatch):
    """Tests choose their own worker count: a CHARRNN_WORKERS from the shell must not change them."""
    monkeypatch.delenv("CHARRNN_WORKERS", raising=False)


def start_training(args, cwd, log: Path, timeout: float = 120) -> subprocess.Popen:
    """Start ``python -m charrnn train ARGS --log LOG --log-every 1`` and return once a step is done.

    Readiness is the first record in the log, never a fixed sleep, so a
    loaded machine only makes the wait longer.
    """
    proc = subprocess.Popen([sys.executable, "-m", "charrnn", "train", *map(str, args), "--log", str(log),
                             "--log-every", "1"], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    while not (log.exists() and log.read_text().strip()):
        if proc.poll() is not None:
            raise AssertionError(f"training ended before its first step: {proc.stderr.read().decode()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"no training step within {timeout} s")
        time.sleep(0.05)
    return proc
