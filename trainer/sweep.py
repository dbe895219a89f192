"""Learning-rate sweep: one training run per rate, the best by dev accuracy, one table of results.

    python -m trainer.sweep --output_dir OUT [--learning_rates 5e-6 1e-5 2e-5]
        [--launcher "torchrun --standalone --nproc_per_node 2"] TRAINER ARGUMENTS...
    (or: trainer sweep ...)

Each rate trains in its own process (under the launcher, if given) into OUT/lr_{rate}/, so runs
cannot leak state into each other and a finished rate is not trained again when the sweep is rerun.
Writes OUT/sweep.json and OUT/sweep.md, and prints the table.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

from trainer.checkpoint import write_json
from trainer.cli import OneLineParser, build_parser
from trainer.config import PAPER_LEARNING_RATES
from trainer.metrics import METRICS_FILE

COLUMNS = (
    "learning_rate",
    "dev_acc",
    "test_acc",
    "best_epoch",
    "train_examples",
    "train_seconds",
    "examples_per_second",
)


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = OneLineParser(
        prog="trainer sweep",
        description=__doc__.split("\n\n")[0],
        allow_abbrev=False,
        epilog="Every other argument is passed to each training run (see trainer --help).",
    )
    parser.add_argument(
        "--output_dir",
        type=Path,
        required=True,
        help="one lr_{rate}/ folder per rate, plus sweep.json and sweep.md",
    )
    parser.add_argument(
        "--learning_rates",
        type=float,
        nargs="+",
        default=list(PAPER_LEARNING_RATES),
        help="default: %(default)s, the paper's",
    )
    parser.add_argument(
        "--launcher",
        default="",
        help='command that starts each run, e.g. "torchrun --nproc_per_node 4" or '
        '"accelerate launch"; default: this Python, one process',
    )
    args, trainer_args = parser.parse_known_args(argv)
    if any(arg == "--learning_rate" or arg.startswith("--learning_rate=") for arg in trainer_args):
        parser.error("--learning_rate is set by the sweep for each run: use --learning_rates")
    # Check the passed-through arguments now, not after the first run.
    build_parser("trainer sweep").parse_args(
        trainer_args + ["--learning_rate", "1", "--output_dir", str(args.output_dir)]
    )
    return args, trainer_args


def run_dir(output_dir: Path, learning_rate: float) -> Path:
    return output_dir / f"lr_{learning_rate:g}"


def run_command(launcher: str, trainer_args: list[str], rate: float, output: Path) -> list[str]:
    # torchrun and accelerate launch both take `-m module` and start Python themselves.
    start = shlex.split(launcher) if launcher else [sys.executable]
    per_run = ["--learning_rate", f"{rate:g}", "--output_dir", str(output)]
    return [*start, "-m", "trainer", *trainer_args, *per_run]


def read_metrics(output: Path) -> dict | None:
    path = output / METRICS_FILE
    if not path.is_file():
        return None
    metrics = json.loads(path.read_text(encoding="utf-8"))
    return metrics if metrics.get("finished") else None


def summarise(results: list[dict]) -> dict:
    """Rows in rate order and the best row: highest dev accuracy, the lower rate on a tie."""
    rows = sorted(results, key=lambda row: row["learning_rate"])
    best = max(rows, key=lambda row: (row["dev_acc"], -row["learning_rate"]), default=None)
    return {"best": best, "runs": rows}


def row_of(learning_rate: float, metrics: dict, output: Path) -> dict:
    return {
        "learning_rate": learning_rate,
        **{key: metrics.get(key) for key in COLUMNS[1:]},
        "output_dir": str(output),
    }


def table(summary: dict) -> str:
    """Markdown table, the best run marked with *."""

    def cell(value) -> str:
        if value is None:
            return "-"
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in summary["runs"]:
        cells = [cell(row[column]) for column in COLUMNS]
        if row is summary["best"]:
            cells[0] += " *"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args, trainer_args = parse_args(sys.argv[1:] if argv is None else argv)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for learning_rate in args.learning_rates:
        output = run_dir(args.output_dir, learning_rate)
        metrics = read_metrics(output)
        if metrics is None:
            command = run_command(args.launcher, trainer_args, learning_rate, output)
            print(f"sweep: {shlex.join(command)}", file=sys.stderr, flush=True)
            code = subprocess.call(command)
            if code != 0:
                failed = f"the run with learning rate {learning_rate:g} failed (exit code {code})"
                print(f"sweep: {failed}", file=sys.stderr)
                return code
            metrics = read_metrics(output)
        else:
            done = f"learning rate {learning_rate:g} already done in {output}"
            print(f"sweep: {done}", file=sys.stderr)
        results.append(row_of(learning_rate, metrics, output))
    summary = summarise(results)
    write_json(args.output_dir / "sweep.json", summary | {"trainer_args": trainer_args})
    (args.output_dir / "sweep.md").write_text(table(summary), encoding="utf-8")
    print(table(summary), end="")
    print(
        f"best: learning rate {summary['best']['learning_rate']:g}, dev_acc "
        f"{summary['best']['dev_acc']:.4f} -> {summary['best']['output_dir']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
