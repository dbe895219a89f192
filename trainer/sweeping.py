"""Learning-rate sweep: the work behind trainer.sweep (trainer/api.py) and `trainer sweep`.

Each rate trains in its own process (`python -m trainer ...`, under the launcher if one is given)
into OUT/lr_{rate}/, so runs cannot leak state into each other and a finished rate is not trained
again when the sweep is rerun. The sweep writes OUT/sweep.json (a SweepResult) and OUT/sweep.md.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from trainer.errors import InputError
from trainer.results import METRICS_FILE, SweepResult, SweepRun, TrainResult

COLUMNS = (
    "learning_rate",
    "dev_acc",
    "test_acc",
    "best_epoch",
    "train_examples",
    "train_seconds",
    "examples_per_second",
)


def run_dir(output_dir: Path, learning_rate: float) -> Path:
    return output_dir / f"lr_{learning_rate:g}"


def launcher_words(launcher: str) -> list[str]:
    try:
        return shlex.split(launcher)
    except ValueError as error:
        raise InputError(f"launcher: {error}: {launcher!r}") from None


def run_command(launcher: str, trainer_args: list[str], rate: float, output: Path) -> list[str]:
    # torchrun and accelerate launch both take `-m module` and start Python themselves.
    start = launcher_words(launcher) if launcher else [sys.executable]
    per_run = ["--learning_rate", repr(float(rate)), "--output_dir", str(output)]
    return [*start, "-m", "trainer", *trainer_args, *per_run]


def child_env() -> dict[str, str]:
    """The environment of a run: this one, with this trainer package importable (the run must use
    the same code as the sweep, also when it was imported from a source tree)."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    return env


def finished_metrics(output: Path) -> TrainResult | None:
    """The run's metrics.json when the run finished; None when it has not (or never started)."""
    if not (output / METRICS_FILE).is_file():
        return None
    metrics = TrainResult.read(output)
    return metrics if metrics.finished else None


def summarise(runs: list[SweepRun], trainer_args: list[str]) -> SweepResult:
    """Runs in rate order and the best: highest dev accuracy, the lower rate on a tie."""
    rows = sorted(runs, key=lambda row: row.learning_rate)
    best = max(rows, key=lambda row: (row.dev_acc or 0.0, -row.learning_rate), default=None)
    return SweepResult(best=best, runs=rows, trainer_args=list(trainer_args))


def table(result: SweepResult) -> str:
    """Markdown table, the best run marked with *."""

    def cell(value) -> str:
        if value is None:
            return "-"
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in result.runs:
        cells = [cell(getattr(row, column)) for column in COLUMNS]
        if row == result.best:
            cells[0] += " *"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
