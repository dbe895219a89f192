"""What the trainer returns and writes: metrics.json (TrainResult), evaluation.json
(EvaluationResult) and sweep.json (SweepResult), one dataclass each, with to_json/from_json.

The files are the same as before the dataclasses (same keys, same order, same values), so files
written by earlier versions read back, and `from_json(to_json())` gives the same object.
`from_json` raises InputError for data that is not such a file; keys it does not know are ignored.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any, Callable

from trainer.config import TrainConfig
from trainer.errors import InputError

METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.jsonl"
BEST_MODEL = "best_model"
EVALUATION_FILE = "evaluation.json"
SWEEP_FILE = "sweep.json"


def _plain(value: Any) -> Any:
    if hasattr(value, "to_json"):
        return value.to_json()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


class _Schema:
    """to_json/from_json for the dataclasses below; `_convert` turns JSON values into fields."""

    _convert: dict[str, Callable[[Any], Any]] = {}

    def to_json(self) -> dict[str, Any]:
        return {spec.name: _plain(getattr(self, spec.name)) for spec in fields(self)}  # type: ignore

    @classmethod
    def from_json(cls, data: Any):
        name = cls.__name__
        if not isinstance(data, dict):
            raise InputError(f"{name}: expected a JSON object, got {type(data).__name__}")
        specs = fields(cls)  # type: ignore[arg-type]
        missing = [s.name for s in specs if s.name not in data and s.default is MISSING]
        if missing:
            raise InputError(f"{name}: missing {', '.join(missing)}")
        try:
            return cls(**{s.name: cls._convert.get(s.name, _same)(data[s.name])
                          for s in specs if s.name in data})
        except (TypeError, ValueError, AttributeError) as error:
            raise InputError(f"{name}: {error}") from None

    @classmethod
    def read(cls, path: Path | str):
        """The file at `path` (or its usual name inside the folder `path`)."""
        path = Path(path)
        if path.is_dir():
            path = path / cls._file  # type: ignore[attr-defined]
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as error:
            raise InputError(f"cannot read {path}: {error.strerror or error}") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise InputError(f"{path} is not valid JSON ({error})") from None
        try:
            return cls.from_json(data)
        except InputError as error:
            raise InputError(f"{path}: {error}") from None


def _same(value: Any) -> Any:
    return value


def _optional(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else convert(value)


@dataclass(frozen=True)
class Epoch(_Schema):
    """One epoch of `history`: the mean training loss and the dev figures after it."""

    epoch: int
    train_loss: float
    dev_acc: float
    dev_loss: float
    dev_examples: int


@dataclass(frozen=True)
class TrainResult(_Schema):
    """metrics.json: a training run's figures and the config it ran with. Accuracies are at the
    best dev epoch; `finished` is False in the file while the run is under way."""

    finished: bool
    dev_acc: float | None
    dev_loss: float | None
    test_acc: float | None  # None without test.jsonl
    best_epoch: int | None
    epochs_run: int
    train_examples: int
    dev_examples: int
    test_examples: int | None
    skipped_examples: dict[str, int]  # per split: records whose label is not among their options
    train_seconds: float  # the training loop only
    examples_per_second: float | None  # training examples x epochs / train_seconds
    predictions: dict[str, str]  # {"file": "predictions.jsonl", "split": "test" or "dev"}
    format: str  # "yesno" or "mcqa"
    num_options: int
    train_file: Path
    num_processes: int
    distributed_type: str
    device: str
    mixed_precision: str
    history: list[Epoch]
    loss_curve: list[float]  # mean loss of every optimizer update on the main process
    config: TrainConfig

    _file = METRICS_FILE
    _convert = {
        "train_file": Path,
        "history": lambda items: [Epoch.from_json(item) for item in items],
        "config": TrainConfig.from_json,
    }

    @property
    def output_dir(self) -> Path:
        return self.config.output_dir

    @property
    def best_model_dir(self) -> Path:
        """The best model by dev accuracy, with its tokenizer (from_pretrained loads it)."""
        return self.output_dir / BEST_MODEL

    @property
    def predictions_path(self) -> Path:
        return self.output_dir / self.predictions["file"]


@dataclass(frozen=True)
class SplitScore(_Schema):
    """One split of one dataset in evaluation.json."""

    acc: float
    examples: int
    skipped: int
    majority: float | None  # accuracy of always answering the most frequent label (position)
    predicted_share: dict[str, int]  # how often each label (position) was predicted


def _datasets(data: dict) -> dict[str, dict[str, SplitScore | None]]:
    return {name: {split: _optional(SplitScore.from_json)(score) for split, score in splits.items()}
            for name, splits in data.items()}


@dataclass(frozen=True)
class EvaluationResult(_Schema):
    """evaluation.json: a run's best model scored on the dev and test splits of datasets of its
    format; `datasets[name][split]` is None where the split does not exist."""

    run_dir: Path
    format: str
    num_options: int
    max_eval_examples: int | None
    trainer_dev_acc: float | None  # what the run reported, to compare with its own dataset
    trainer_test_acc: float | None
    datasets: dict[str, dict[str, SplitScore | None]]

    _file = EVALUATION_FILE
    _convert = {"run_dir": Path, "datasets": _datasets}


@dataclass(frozen=True)
class SweepRun(_Schema):
    """One learning rate of a sweep: its run's main figures and where the run is."""

    learning_rate: float
    dev_acc: float | None
    test_acc: float | None
    best_epoch: int | None
    train_examples: int
    train_seconds: float
    examples_per_second: float | None
    output_dir: Path

    _convert = {"output_dir": Path}

    @classmethod
    def of(cls, learning_rate: float, metrics: TrainResult, output_dir: Path) -> SweepRun:
        return cls(learning_rate, metrics.dev_acc, metrics.test_acc, metrics.best_epoch,
                   metrics.train_examples, metrics.train_seconds, metrics.examples_per_second,
                   output_dir)

    def metrics(self) -> TrainResult:
        """The run's whole metrics.json."""
        return TrainResult.read(self.output_dir)


@dataclass(frozen=True)
class SweepResult(_Schema):
    """sweep.json: every rate's run in rate order and the best (highest dev accuracy, the lower
    rate on a tie); `trainer_args` are the arguments every run was given besides its rate."""

    best: SweepRun | None
    runs: list[SweepRun]
    trainer_args: list[str]

    _file = SWEEP_FILE
    _convert = {
        "best": _optional(SweepRun.from_json),
        "runs": lambda items: [SweepRun.from_json(item) for item in items],
    }
