"""The trainer's exceptions: every one it raises on purpose is a TrainerError.

InputError is bad input (an argument, a file, a record, a model name, a checkpoint): the message is
one line that says what and where, and the CLI prints it as `trainer: error: ...` with exit code 2.
RunFailed is a sweep whose training run (its own process) failed; the CLI exits with its code.
"""

from __future__ import annotations


class TrainerError(Exception):
    """Base class of the trainer's errors."""


class InputError(TrainerError, ValueError):
    """Bad input from the user; raised before anything is written when it can be known then."""


class RunFailed(TrainerError):
    """A training run started by the sweep exited with a non-zero `returncode`."""

    def __init__(self, message: str, returncode: int) -> None:
        super().__init__(message)
        self.returncode = returncode
