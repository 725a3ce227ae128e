"""The typer app, its error handling, and the output helpers every command shares.

stdout carries only data (text, JSON); progress, notes and errors go to stderr.
The commands live in training.py, text.py and inspection.py beside this
module; they import from here, never the other way round.
"""
from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager

import typer
from typer.core import TyperGroup

try:  # newer typer releases vendor click; theirs are the exceptions raised
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - older typer on the real click
    from click import exceptions as click_errors

from charrnn import __version__, mpi
from charrnn.errors import CharRNNError
from charrnn.vocab import read_text


class _Group(TyperGroup):
    """Turns every error into one line on stderr with the right exit code."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            rv = super().main(
                args=args, prog_name=prog_name or "charrnn", complete_var=complete_var, standalone_mode=False, **extra
            )
        except click_errors.NoArgsIsHelpError:
            rv = 2  # the help has been printed
        except click_errors.UsageError as e:
            where = e.ctx.command_path if e.ctx else "charrnn"
            fail(f"{e.format_message()} (see '{where} --help')".replace("\n", " "), e.exit_code)
        except click_errors.ClickException as e:
            fail(e.format_message().replace("\n", " "), e.exit_code)
        except typer.Abort:
            fail("aborted", 1)
        except CharRNNError as e:
            fail(str(e), e.exit_code)
        except MemoryError:
            fail("out of memory; try a smaller --hidden or --batch, or a smaller corpus", 1)
        except Exception as e:  # a bug: still one line, with a way to see more
            if os.environ.get("CHARRNN_DEBUG"):
                raise
            fail(f"internal error: {type(e).__name__}: {e} (set CHARRNN_DEBUG=1 to see the traceback)", 1)
        sys.exit(rv if isinstance(rv, int) else 0)


def fail(message: str, code: int):
    """Print ``charrnn: error: MESSAGE`` as one stderr line and exit with ``code``.

    Under MPI, only rank 0 says it (the other ranks fail the same way), unless
    the failure is this rank's own (a bug, memory); then the whole job ends.
    """
    team = mpi.current()
    if team is None or team.is_root or message.startswith(("internal error", "out of memory")):
        where = "" if team is None or team.is_root else f"rank {team.rank}: "
        print(f"charrnn: error: {where}{message}", file=sys.stderr)
    if team is not None:
        sys.stderr.flush()
        team.abort(code)
    sys.exit(code)


app = typer.Typer(
    cls=_Group,
    help="Character-level recurrent language models in pure NumPy: train, sample, score.",
    add_completion=True,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool):
    if value:
        print(f"charrnn {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
):
    """Character-level recurrent language models in pure NumPy: train, sample, score."""


@contextmanager
def closed_pipe_is_fine():
    """A reader that goes away (``| head``) ends output quietly, exit 0."""
    try:
        yield
        sys.stdout.flush()
    except BrokenPipeError:
        try:  # stop the interpreter's final flush from complaining
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass
        raise typer.Exit(0)


def note(message: str) -> None:
    """A line for people, on stderr."""
    print(message, file=sys.stderr)


def read_arg_text(text: str) -> str:
    """TEXT as given, or stdin's text for ``-``."""
    return read_text("-") if text == "-" else text


def emit_json(obj) -> None:
    """One JSON object on its own line on stdout; characters as they are, not escaped."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
