"""`charrnn serve` (the models behind a local HTTP API and a page) and `charrnn export` (a model as a page).

The server (charrnn.server) needs the serve extra, and is imported only
when `serve` runs: no other command, and not `import charrnn`, loads it.
"""
from __future__ import annotations

import os
import signal
import socket
from typing import List

import typer

from charrnn.cli.app import app, note
from charrnn.errors import CharRNNError, UsageError
from charrnn.model import load

INSTALL = "pip install 'charrnn[serve]'"


def _named(specs: list[str]) -> dict:
    """{name: path} from MODEL arguments: PATH (named by its file name) or NAME=PATH."""
    named = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep:
            path, name = spec, os.path.splitext(os.path.basename(spec))[0]
        if not name or name in named:
            raise UsageError(f"model names must be unique and not empty ({name!r}); name them as NAME=PATH")
        named[name] = path
    return named


@app.command()
def serve(
    models: List[str] = typer.Argument(..., help="Checkpoints to serve: PATH (named after its file) or NAME=PATH.",
                                       show_default=False),
    host: str = typer.Option("127.0.0.1", help="Address to listen on; another than 127.0.0.1 opens it to the "
                                               "network."),
    port: int = typer.Option(8000, help="Port to listen on; 0 picks a free one (printed on stderr)."),
    max_length: int = typer.Option(2000, min=1, help="Most characters a sample may ask for."),
    max_samples: int = typer.Option(64, min=1, help="Most samples one generate request may ask for."),
    max_body: int = typer.Option(1_000_000, min=1, help="Largest request body, in bytes."),
    body_timeout: float = typer.Option(10.0, min=0.1, help="Seconds a request body may take to arrive."),
):
    """Serve models over a local HTTP API, with a page to explore them at /.

    Loads each model once. The API is versioned (/v1/...): generate (streamed
    as NDJSON or server-sent events, or whole), probs, score, models. Ctrl-C
    or SIGTERM stops it. See docs/serving.md.

    Examples:

      charrnn serve home.npz --port 8000

      charrnn serve shakespeare=model.npz recipes=pantry.npz --host 0.0.0.0
    """
    try:
        import uvicorn

        from charrnn.server import Limits, create_app
    except ImportError:
        raise CharRNNError(f"charrnn serve needs the serve extra: {INSTALL}") from None
    loaded = {name: load(path) for name, path in _named(models).items()}
    application = create_app(loaded, Limits(max_body=max_body, max_length=max_length, max_samples=max_samples,
                                            body_seconds=body_timeout))
    sock = listening_socket(host, port)
    bound = sock.getsockname()[1]
    note(f"serving {', '.join(loaded)} on http://{host}:{bound}/ (Ctrl-C stops)")
    config = uvicorn.Config(application, log_level="warning", access_log=False, timeout_graceful_shutdown=2,
                            lifespan="on")
    stopped_by = []

    def stop(signum, frame):  # uvicorn shuts down gracefully, then raises the signal it caught again: here
        stopped_by.append(signum)

    old = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    note("stopped")
    if stopped_by:
        raise typer.Exit(128 + stopped_by[0])


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket listening on host:port whose accepted connections have Nagle's algorithm off.

    They inherit TCP_NODELAY from it. asyncio sets that only on sockets whose
    proto is TCP, and create_server's is 0: without this, a keep-alive
    response's body waited for the client's delayed ACK, ~40 ms, each time.
    """
    try:
        sock = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
    except OSError as e:
        raise CharRNNError(f"cannot listen on {host}:{port} ({e.strerror or e}); choose another --port") from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


@app.command()
def export(
    model_path: str = typer.Argument(..., help="Checkpoint to export.", show_default=False),
    out: str = typer.Option("model.html", "-o", "--out", help="The page to write."),
    float16: bool = typer.Option(False, "--float16", help="Store the weights as float16: half the size, "
                                                          "probabilities within 1e-3."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing page."),
):
    """Write a model as one self-contained HTML page that runs it in the browser, no server needed.

    The page holds the weights and a JavaScript RNN, LSTM and GRU with the
    sampler: the same page `charrnn serve` shows, working offline.

    Examples:

      charrnn export home.npz -o home.html

      charrnn export home.npz -o home16.html --float16
    """
    from charrnn.export import write_page

    if os.path.exists(out) and not force:
        raise CharRNNError(f"{out} already exists; pass --force to overwrite it, or -o another path")
    size = write_page(load(model_path), out, float16=float16)
    note(f"wrote {out} ({size:,} bytes); open it in a browser")
