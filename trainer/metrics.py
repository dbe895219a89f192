"""metrics.json (a TrainResult) and predictions.jsonl: pure builders plus the two writers."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from trainer.checkpoint import TrainerState, write_json
from trainer.config import TrainConfig
from trainer.data import Split, Task
from trainer.results import METRICS_FILE, PREDICTIONS_FILE, Epoch, TrainResult


def accuracy(predictions: Sequence[int], labels: Sequence[int]) -> float:
    return (
        sum(p == y for p, y in zip(predictions, labels, strict=True)) / len(labels)
        if labels
        else 0.0
    )


def prediction_rows(split: Split, indices: Sequence[int], predictions: Sequence[int]) -> list[dict]:
    """One row per evaluated example, in file order."""
    rows = []
    for index, predicted in sorted(zip(indices, predictions, strict=True)):
        example = split.examples[index]
        rows.append(
            {
                "index": index,
                "question": example.question,
                "label": example.options[example.label],
                "prediction": example.options[predicted],
                "correct": predicted == example.label,
            }
        )
    return rows


def write_predictions(output_dir: Path, rows: list[dict]) -> None:
    path = output_dir / PREDICTIONS_FILE
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(temporary, path)


def build_metrics(
    config: TrainConfig,
    task: Task,
    state: TrainerState,
    *,
    finished: bool,
    num_processes: int,
    distributed_type: str,
    device: str,
    mixed_precision: str,
) -> TrainResult:
    examples_per_second = (
        state.examples_trained / state.train_seconds if state.train_seconds else None
    )
    return TrainResult(
        finished=finished,
        dev_acc=state.best_dev_acc,
        dev_loss=state.best_dev_loss,
        test_acc=state.test_acc,
        best_epoch=state.best_epoch,
        epochs_run=state.epochs_done,
        train_examples=len(task.train.examples),
        dev_examples=state.dev_examples,
        test_examples=state.test_examples,
        skipped_examples={
            split.name: split.skipped
            for split in (task.train, task.dev, task.test)
            if split is not None
        },
        train_seconds=round(state.train_seconds, 3),
        examples_per_second=round(examples_per_second, 3) if examples_per_second else None,
        predictions={"file": PREDICTIONS_FILE, "split": "test" if task.test else "dev"},
        format=task.format,
        num_options=task.num_options,
        train_file=task.train.path,
        num_processes=num_processes,
        distributed_type=distributed_type,
        device=device,
        mixed_precision=mixed_precision,
        history=[Epoch.from_json(entry) for entry in state.history],
        loss_curve=list(state.loss_curve),
        config=config,
    )


def write_metrics(output_dir: Path, metrics: TrainResult) -> None:
    write_json(output_dir / METRICS_FILE, metrics.to_json())
