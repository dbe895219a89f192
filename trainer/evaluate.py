"""Evaluate a finished run's best model on other datasets: `trainer evaluate`.

    trainer evaluate --run_dir OUT [--data_dir DIR] [--data_name NAME ...] [--output FILE]
        [--max_eval_examples N] [--per_device_eval_batch_size N] [--cpu]
    (or: python -m trainer.evaluate ...)

The paper trains on one dataset and tests on others of the same format (out of distribution). This
reads OUT/metrics.json and OUT/best_model/, then each dataset's dev.jsonl and test.jsonl with the
run's own reading, encoding (format, number of options, max_seq_length) and evaluation, so the run's
own dataset gives back the accuracies the trainer reported. Without --data_dir/--data_name it
evaluates the run's own dataset. Writes OUT/evaluation.json (or --output) and prints one line per
split. Runs under `torchrun`/`accelerate launch` too. Exit codes: 0 done, 2 bad input.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from trainer.checkpoint import BEST_MODEL, write_json
from trainer.cli import OneLineParser, is_main_process, positive_int, say
from trainer.config import InputError
from trainer.data import YES_NO, Split, load_split
from trainer.metrics import METRICS_FILE

EVALUATION_FILE = "evaluation.json"
SPLITS = ("dev", "test")


@dataclass(frozen=True)
class Run:
    """What evaluation needs from a finished run's metrics.json."""

    path: Path
    format: str
    num_options: int
    max_seq_length: int
    eval_batch_size: int
    max_eval_examples: int | None
    cpu: bool
    data_dir: Path
    data_name: str
    dev_acc: float | None
    test_acc: float | None


def read_run(run_dir: Path) -> Run:
    """The run's metrics.json, checked; an InputError says what is missing."""
    metrics_path = run_dir / METRICS_FILE
    if not (run_dir / BEST_MODEL).is_dir():
        raise InputError(f"no {BEST_MODEL}/ in {run_dir} (is it a trainer output folder?)")
    try:
        metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
        config = metrics["config"]
        return Run(
            path=run_dir,
            format=str(metrics["format"]),
            num_options=int(metrics["num_options"]),
            max_seq_length=int(config["max_seq_length"]),
            eval_batch_size=int(config["per_device_eval_batch_size"]),
            max_eval_examples=config.get("max_eval_examples"),
            cpu=bool(config.get("cpu")),
            data_dir=Path(config["data_dir"]),
            data_name=str(config["data_name"]),
            dev_acc=metrics.get("dev_acc"),
            test_acc=metrics.get("test_acc"),
        )
    except OSError as error:
        raise InputError(f"cannot read {metrics_path}: {error.strerror or error}") from None
    except (ValueError, KeyError, TypeError) as error:
        raise InputError(f"{metrics_path} is not a trainer's metrics.json ({error!r})") from None


def split_paths(data_dir: Path, names: list[str]) -> dict[str, dict[str, Path | None]]:
    """{dataset: {split: path or None}}; a dataset with neither split is an error."""
    paths: dict[str, dict[str, Path | None]] = {}
    for name in names:
        found = {split: data_dir / name / f"{split}.jsonl" for split in SPLITS}
        paths[name] = {split: path if path.is_file() else None for split, path in found.items()}
        if not any(paths[name].values()):
            raise InputError(f"no dev.jsonl or test.jsonl in {data_dir / name}")
    return paths


def majority_share(labels: list[int]) -> float | None:
    """The accuracy of always answering the most frequent label (answer position for MC)."""
    return max(Counter(labels).values()) / len(labels) if labels else None


def split_result(split: Split, task_format: str, accuracy: float, count: int,
                 predictions: list[int]) -> dict:
    """One split's figures: accuracy, examples, the majority baseline and what was predicted."""
    labels = [example.label for example in split.examples]
    predicted = Counter(
        split.examples[0].options[p] if task_format == YES_NO else str(p) for p in predictions
    )
    return {
        "acc": accuracy,
        "examples": count,
        "skipped": split.skipped,
        "majority": majority_share(labels),
        "predicted_share": dict(predicted),
    }


def load_splits(run: Run, paths: dict[str, dict[str, Path | None]],
                limit: int | None) -> dict[str, dict[str, Split | None]]:
    """Read and validate every split before torch is imported: bad data fails fast."""
    return {
        name: {
            split_name: None if path is None
            else load_split(path, split_name, run.format, run.num_options, limit=limit)
            for split_name, path in splits.items()
        }
        for name, splits in paths.items()
    }


def evaluate_run(run: Run, splits: dict[str, dict[str, Split | None]], batch_size: int,
                 cpu: bool) -> dict:
    """Load best_model once; evaluate every split (None: not there)."""
    from accelerate import Accelerator
    from torch.utils.data import DataLoader
    from transformers import (
        AutoModelForMultipleChoice,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )

    from trainer.encode import PadCollator, encode
    from trainer.loop import evaluate, has_accelerator, load_pretrained

    model_dir = str(run.path / BEST_MODEL)
    accelerator = Accelerator(cpu=cpu or not has_accelerator())
    tokenizer = load_pretrained(AutoTokenizer, model_dir)
    auto = AutoModelForSequenceClassification if run.format == YES_NO else AutoModelForMultipleChoice
    model = accelerator.prepare(load_pretrained(auto, model_dir))
    results: dict[str, dict] = {}
    for name, dataset in splits.items():
        results[name] = {}
        for split_name, split in dataset.items():
            if split is None:
                results[name][split_name] = None
                continue
            features = encode(tokenizer, split.examples, run.format, run.max_seq_length)
            loader = accelerator.prepare(DataLoader(
                features, batch_size=batch_size, collate_fn=PadCollator(tokenizer.pad_token_id)))
            evaluation = evaluate(accelerator, model, loader)
            results[name][split_name] = split_result(
                split, run.format, evaluation.accuracy, evaluation.count, evaluation.predictions)
            del loader
    # As at the end of training: release what prepare() wrapped, or multi-process runs may hang.
    accelerator.wait_for_everyone()
    del model
    accelerator.free_memory()
    gc.collect()
    accelerator.end_training()
    return results


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="trainer evaluate",
        description="Evaluate a finished run's best model on the dev and test splits of other "
        "datasets of the same format (or of its own).",
        allow_abbrev=False,
    )
    parser.add_argument("--run_dir", type=Path, required=True,
                        help="a trainer output folder (metrics.json, best_model/)")
    parser.add_argument("--data_dir", type=Path, default=None,
                        help="format folder (default: the run's)")
    parser.add_argument("--data_name", nargs="+", default=None,
                        help="datasets in it (default: the run's)")
    parser.add_argument("--output", type=Path, default=None,
                        help=f"JSON to write (default: RUN_DIR/{EVALUATION_FILE})")
    parser.add_argument("--max_eval_examples", type=positive_int, default=None,
                        help="first N examples of each split (default: the run's setting)")
    parser.add_argument("--per_device_eval_batch_size", type=positive_int, default=None,
                        help="default: the run's")
    parser.add_argument("--cpu", action="store_true", help="stay on the CPU even with a GPU")
    return parser


def summary_lines(results: dict) -> list[str]:
    lines = []
    for name, splits in results.items():
        for split_name, result in splits.items():
            if result is not None:
                majority = "n/a" if result["majority"] is None else f"{result['majority']:.4f}"
                lines.append(f"{name} {split_name}: acc {result['acc']:.4f} on {result['examples']} "
                             f"examples (majority class {majority})")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        run = read_run(args.run_dir)
        data_dir = args.data_dir or run.data_dir
        names = args.data_name or [run.data_name]
        paths = split_paths(data_dir, names)
        output = args.output or args.run_dir / EVALUATION_FILE
        if not output.parent.is_dir():
            raise InputError(f"no folder for --output: {output.parent}")
        limit = args.max_eval_examples or run.max_eval_examples
        splits = load_splits(run, paths, limit)
        results = evaluate_run(run, splits, args.per_device_eval_batch_size or run.eval_batch_size,
                               args.cpu or run.cpu)
    except InputError as error:
        say(f"error: {error}")
        return 2
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    if is_main_process():
        write_json(output, {
            "run_dir": str(run.path),
            "format": run.format,
            "num_options": run.num_options,
            "max_eval_examples": limit,
            "trainer_dev_acc": run.dev_acc,
            "trainer_test_acc": run.test_acc,
            "datasets": results,
        })
        for line in summary_lines(results):
            print(line)
        say(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
