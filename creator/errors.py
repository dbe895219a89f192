"""The creator's exceptions, and how a message names an option (a flag on the command line, a
keyword argument in Python). No dependencies: every module may import this one."""

from __future__ import annotations

import contextvars
from typing import Any


class CreatorError(Exception):
    """Base of every error the creator raises on purpose; the message is one line for people."""


class InputError(CreatorError, ValueError):
    """Bad arguments or data. Raised before anything is sent or written."""


class APIError(CreatorError):
    """The API refused us for good (a bad key, no quota, not an OpenAI API): retrying cannot
    help. What was created so far is in the output, resumable."""


class ServerError(CreatorError):
    """The embedded llama.cpp server did not start."""


class OutputError(CreatorError):
    """The output could not be written (disk full, a read-only folder)."""


# Messages name options the way the caller gave them: "--resume" to a shell user,
# "resume=True" to a Python caller. The CLI sets this for the length of its call.
SURFACE: contextvars.ContextVar[str] = contextvars.ContextVar("creator_surface", default="python")


def option(name: str, value: Any = True) -> str:
    """`option("resume")` -> "--resume" or "resume=True"; `option("target", "N")` ->
    "--target N" or "target=N"."""
    if SURFACE.get() == "cli":
        return f"--{name}" if value is True else f"--{name} {value}"
    return f"{name}={value!r}" if not isinstance(value, str) else f"{name}={value}"
