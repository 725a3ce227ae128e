"""The command line, a face on the library: each command parses, calls charrnn's API, prints.

    app.py         the typer app, one-line errors, shared output helpers
    training.py    train
    text.py        sample, probs, eval
    inspection.py  info, plot, gradcheck, gradients
"""
from charrnn.cli import inspection, text, training  # noqa: F401  (each registers its commands on the app)
from charrnn.cli.app import app


def main() -> None:
    """Console-script entry point."""
    app()


__all__ = ["app", "main"]
