"""What every command line of the project shares (creator, creator report, trainer and its
subcommands): exit codes, a parser whose refusals are one line, and the argument types."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable, NoReturn

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_BUDGET = 3  # creator create: --max_requests or --max_cost reached (resumable with more)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a refusal is one line on stderr (exit 2) that points to --help, not the
    usage block, and an unknown option is named with its subcommand. `speaks` says whether this
    process writes messages (in a multi-process run only the main one does)."""

    speaks: Callable[[], bool] = staticmethod(lambda: True)  # type: ignore[assignment]

    def error(self, message: str, prog: str | None = None) -> NoReturn:  # type: ignore[override]
        prog = prog or self.prog
        if self.speaks():
            sys.stderr.write(f"{prog}: error: {message} (see {prog} --help)\n")
        self.exit(EXIT_USAGE)

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        parsed, unknown = self.parse_known_args(args, namespace)
        if unknown:
            command = getattr(parsed, "command", None)
            self.error(f"unrecognized arguments: {' '.join(unknown)}",
                       f"{self.prog} {command}" if command else None)
        return parsed


def _number(text: str, kind: type) -> int | float:
    try:
        return kind(text)
    except ValueError:
        expected = "a whole number" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None


def positive_int(text: str) -> int:
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return int(value)


def non_negative_int(text: str) -> int:
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return int(value)


def positive_float(text: str) -> float:
    value = _number(text, float)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return float(value)


def non_negative_float(text: str) -> float:
    value = _number(text, float)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return float(value)


def unit_float(text: str) -> float:
    value = positive_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def temperature(text: str) -> float:
    value = _number(text, float)
    if not 0 <= value <= 2:
        raise argparse.ArgumentTypeError(f"must be between 0 and 2, got {text}")
    return float(value)


def why_folder_cannot_be_made(folder: Path) -> tuple[Path, str] | None:
    """Whether an output folder (there, or made on demand) can be written: None if so, else its
    nearest existing ancestor and "file" (it is not a folder) or "read-only"."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return existing, "file"
    if not os.access(existing, os.W_OK):
        return existing, "read-only"
    return None
