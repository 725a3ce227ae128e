"""The error types charrnn raises for problems a user can fix."""


class CharRNNError(Exception):
    """A user-facing problem: bad input, a bad file, an impossible request.

    The CLI prints ``str(error)`` as one line on stderr and exits with
    ``exit_code``; nothing else that charrnn raises is meant for a user's eyes.
    """

    exit_code = 1


class UsageError(CharRNNError):
    """An option value out of its range: a usage error, exit code 2."""

    exit_code = 2


class WorkerError(CharRNNError):
    """A process sharing the batch raised or died; the message names it and the cause."""
