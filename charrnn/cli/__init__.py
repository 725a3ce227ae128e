"""The command line, a face on the library: each command parses, calls charrnn's API, prints.

    app.py         the typer app, one-line errors, shared output helpers
    train.py       train
    text.py        sample, probs
    score.py       eval
    inspection.py  info, plot, gradcheck, gradients
    cache.py       cache
    serve.py       serve, export
"""
from charrnn.launcher import quiet_blas_threads

quiet_blas_threads()  # under mpiexec, one BLAS thread per rank: before any command module loads NumPy

from charrnn.cli import cache, inspection, score, serve, text, train  # noqa: E402,F401  (each registers its commands on the app)
from charrnn.cli.app import app  # noqa: E402


def main() -> None:
    """Console-script entry point."""
    app()


__all__ = ["app", "main"]
