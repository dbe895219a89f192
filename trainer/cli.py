"""`trainer` command line, a thin layer over the API: argv -> config -> trainer.api -> exit code.

    trainer ARGS                      train (trainer.train)
    trainer evaluate ARGS             a finished run on other datasets (trainer.evaluate)
    trainer sweep ARGS TRAIN_ARGS     one run per learning rate (trainer.sweep)

The parsers are built from the config dataclasses' fields (trainer/config.py), so the flags are the
API's keyword arguments with the same defaults. Exit codes (creator.clitools): 0 done, 2 bad input
(one line on stderr, no traceback), 130 interrupted (Ctrl-C or SIGTERM); a sweep whose run failed
exits with that run's code. The CLI, not the API, shows the `trainer` logger's messages and turns
SIGTERM into an interruption.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from dataclasses import MISSING, fields
from typing import Any

from creator.clitools import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, OneLineParser
from trainer import api
from trainer.config import DATA, MODEL, RUN, EvaluateConfig, SweepConfig, TrainConfig
from trainer.errors import InputError, RunFailed
from trainer.evaluation import summary_lines
from trainer.results import METRICS_FILE, TrainResult
from trainer.runtime import is_main_process
from trainer.sweeping import table


class Parser(OneLineParser):
    """One-line refusals, said once: by the main process of a multi-process run."""

    speaks = staticmethod(is_main_process)


def add_arguments(parser: argparse.ArgumentParser, config_class: type,
                  groups: dict[str, Any] | None = None) -> None:
    """One flag per field of a config dataclass: `--{name}`, its parser, default and help."""
    for spec in fields(config_class):
        meta = spec.metadata
        target = groups[meta["group"]] if groups and meta["group"] else parser
        options: dict[str, Any] = {"help": meta["help"] or None}
        if meta["parse"] is None:
            options["action"] = "store_true"
        else:
            options["type"] = meta["parse"]
            for key in ("choices", "nargs", "metavar"):
                if meta[key]:
                    options[key] = meta[key]
        if spec.default is MISSING:
            options.update(required=True, default=argparse.SUPPRESS)  # no "(default: None)"
        else:
            options["default"] = spec.default
        target.add_argument(f"--{spec.name}", **options)


def build_parser(prog: str = "trainer") -> argparse.ArgumentParser:
    parser = Parser(
        prog=prog,
        description="Fine-tune a small model on created or human data (multiple choice or yes/no). "
        "Runs as is on a CPU or one GPU; under `accelerate launch` or `torchrun` on many.",
        epilog="Also: `trainer evaluate` (a finished run on other datasets) and `trainer sweep` "
        "(one run per learning rate); see their --help.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    groups = {name: parser.add_argument_group(name) for name in (DATA, MODEL, RUN)}
    add_arguments(parser, TrainConfig, groups)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("llm-data-creator")
    except PackageNotFoundError:
        return "(not installed)"


def parse_config(argv: list[str], prog: str = "trainer") -> TrainConfig:
    """Arguments -> TrainConfig (model None: the packaged MiniLM); a malformed command line exits
    with code 2."""
    return TrainConfig(**vars(build_parser(prog).parse_args(argv)))


def build_evaluate_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="trainer evaluate",
        description="Evaluate a finished run's best model on the dev and test splits of other "
        "datasets of the same format (or of its own).",
        allow_abbrev=False,
    )
    add_arguments(parser, EvaluateConfig)
    return parser


def build_sweep_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="trainer sweep",
        description="Learning-rate sweep: one training run per rate, each in its own process, "
        "the best by dev accuracy, one table of results.",
        allow_abbrev=False,
        epilog="Every other argument is passed to each training run (see trainer --help).",
    )
    add_arguments(parser, SweepConfig)
    return parser


def parse_sweep_args(argv: list[str]) -> tuple[SweepConfig, dict[str, Any]]:
    """(the sweep's own flags, the training options of every run); exits 2 on a bad command line,
    the passed-through arguments included (checked now, not after the first run)."""
    parser = build_sweep_parser()
    args, trainer_args = parser.parse_known_args(argv)
    if any(arg == "--learning_rate" or arg.startswith("--learning_rate=") for arg in trainer_args):
        parser.error("--learning_rate is set by the sweep for each run: use --learning_rates")
    sweep_config = SweepConfig(**vars(args))
    placeholders = ["--learning_rate", "1", "--output_dir", str(sweep_config.output_dir)]
    options = vars(build_parser("trainer sweep").parse_args(trainer_args + placeholders))
    del options["learning_rate"], options["output_dir"]
    return sweep_config, options


def config_kwargs(config: Any) -> dict[str, Any]:
    return {spec.name: getattr(config, spec.name) for spec in fields(config)}


def say(message: str) -> None:
    if is_main_process():
        print(f"trainer: {message}", file=sys.stderr, flush=True)


class _LogFormat(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        level = "warning: " if record.levelno >= logging.WARNING else ""
        return f"trainer: {level}{record.getMessage()}"


def show_messages() -> None:
    """The `trainer` logger's INFO and above on stderr, as `trainer: ...` lines (once)."""
    logger = logging.getLogger("trainer")
    if not any(getattr(handler, "trainer_cli", False) for handler in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_LogFormat())
        handler.trainer_cli = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM (a launcher stopping its workers): unwind as on Ctrl-C


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = argv[0] if argv[:1] in (["evaluate"], ["sweep"]) else "train"
    try:  # the parsers check each flag; the configs check values against each other
        if command == "train":
            config = parse_config(argv)
        elif command == "evaluate":
            config = EvaluateConfig(**vars(build_evaluate_parser().parse_args(argv[1:])))
        else:
            sweep_config, train_options = parse_sweep_args(argv[1:])
    except InputError as error:
        say(f"error: {error}")
        return EXIT_USAGE
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
    show_messages()
    try:
        if command == "train":
            result = api.train(**config_kwargs(config))
            if is_main_process():
                print(summary_line(result))
        elif command == "evaluate":
            evaluation = api.evaluate(**config_kwargs(config))
            if is_main_process():
                for line in summary_lines(evaluation.datasets):
                    print(line)
        else:
            swept = api.sweep(**config_kwargs(sweep_config), **train_options)
            print(table(swept), end="")
            print(f"best: learning rate {swept.best.learning_rate:g}, dev_acc "
                  f"{swept.best.dev_acc:.4f} -> {swept.best.output_dir}")
    except InputError as error:
        say(f"error: {error}")
        return EXIT_USAGE
    except RunFailed as error:
        say(f"error: {error}")
        return error.returncode
    except KeyboardInterrupt:
        say("interrupted; resume with --resume_from_checkpoint latest" if command == "train"
            else "interrupted")
        return EXIT_INTERRUPTED
    return EXIT_OK


def summary_line(result: TrainResult) -> str:
    test = "none" if result.test_acc is None else f"{result.test_acc:.4f}"
    return (
        f"dev_acc {result.dev_acc:.4f}  test_acc {test}  best_epoch {result.best_epoch}  "
        f"{result.examples_per_second} examples/s  -> {result.output_dir / METRICS_FILE}"
    )


if __name__ == "__main__":
    sys.exit(main())
