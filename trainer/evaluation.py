"""Evaluate a finished run's best model on datasets of its format: the work behind
trainer.evaluate (trainer/api.py) and `trainer evaluate`.

The paper trains on one dataset and tests on others of the same format (out of distribution). This
reads the run's metrics.json and best_model/, then each dataset's dev.jsonl and test.jsonl with the
run's own reading, encoding (format, number of options, max_seq_length) and evaluation, so the run's
own dataset gives back the accuracies the trainer reported. Runs under torchrun/accelerate launch too.
"""

from __future__ import annotations

import gc
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from trainer.data import YES_NO, Split, load_split
from trainer.errors import InputError
from trainer.results import BEST_MODEL, METRICS_FILE, SplitScore, TrainResult

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
    if not (run_dir / BEST_MODEL).is_dir():
        raise InputError(f"no {BEST_MODEL}/ in {run_dir} (is it a trainer output folder?)")
    metrics_path = run_dir / METRICS_FILE
    try:
        metrics = TrainResult.from_json(json.loads(metrics_path.read_text(encoding="utf-8")))
    except OSError as error:
        raise InputError(f"cannot read {metrics_path}: {error.strerror or error}") from None
    except (UnicodeDecodeError, ValueError) as error:  # InputError and JSONDecodeError included
        raise InputError(f"{metrics_path} is not a trainer's metrics.json ({error})") from None
    config = metrics.config
    return Run(
        path=run_dir,
        format=metrics.format,
        num_options=metrics.num_options,
        max_seq_length=config.max_seq_length,
        eval_batch_size=config.per_device_eval_batch_size,
        max_eval_examples=config.max_eval_examples,
        cpu=config.cpu,
        data_dir=config.data_dir,
        data_name=config.data_name,
        dev_acc=metrics.dev_acc,
        test_acc=metrics.test_acc,
    )


def split_paths(data_dir: Path, names: tuple[str, ...] | list[str]) -> dict[str, dict[str, Path | None]]:
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


def split_score(split: Split, task_format: str, accuracy: float, count: int,
                predictions: list[int]) -> SplitScore:
    """One split's figures: accuracy, examples, the majority baseline and what was predicted."""
    labels = [example.label for example in split.examples]
    predicted = Counter(
        split.examples[0].options[p] if task_format == YES_NO else str(p) for p in predictions
    )
    return SplitScore(acc=accuracy, examples=count, skipped=split.skipped,
                      majority=majority_share(labels), predicted_share=dict(predicted))


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
                 cpu: bool) -> dict[str, dict[str, SplitScore | None]]:
    """Load best_model once; evaluate every split (None: not there)."""
    from trainer.loop import own_accelerate_state, quiet_unless_main

    with quiet_unless_main(), own_accelerate_state():
        return _evaluate_run(run, splits, batch_size, cpu)


def _evaluate_run(run: Run, splits: dict[str, dict[str, Split | None]], batch_size: int,
                  cpu: bool) -> dict[str, dict[str, SplitScore | None]]:
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
    results: dict[str, dict[str, SplitScore | None]] = {}
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
            results[name][split_name] = split_score(
                split, run.format, evaluation.accuracy, evaluation.count, evaluation.predictions)
            del loader
    # As at the end of training: release what prepare() wrapped, or multi-process runs may hang.
    accelerator.wait_for_everyone()
    del model
    accelerator.free_memory()
    gc.collect()
    accelerator.end_training()
    return results


def summary_lines(datasets: dict[str, dict[str, SplitScore | None]]) -> list[str]:
    """One line per evaluated split, as `trainer evaluate` prints them."""
    lines = []
    for name, splits in datasets.items():
        for split_name, score in splits.items():
            if score is not None:
                majority = "n/a" if score.majority is None else f"{score.majority:.4f}"
                lines.append(f"{name} {split_name}: acc {score.acc:.4f} on {score.examples} "
                             f"examples (majority class {majority})")
    return lines
