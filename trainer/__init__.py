"""trainer: fine-tune a small model on created or human data (multiple choice or yes/no).

Public API (keyword arguments are the `trainer` command's flags, with the same defaults):

    trainer.train(data_dir=..., data_name=..., output_dir=..., ...) -> TrainResult   (metrics.json)
    trainer.evaluate(run_dir=..., data_name=[...], ...)             -> EvaluationResult
    trainer.sweep(output_dir=..., learning_rates=[...], **train_kwargs) -> SweepResult

Errors: TrainerError, and its subclasses InputError (bad argument, data, model or checkpoint: a
one-line message) and RunFailed (a sweep's run failed; `returncode`). TrainConfig, EvaluateConfig
and SweepConfig are the checked arguments. The `trainer` command (trainer.cli.main) is a thin layer
over these. Everything else is internal and may change.

Importing this package imports nothing heavy: the names are loaded on first use, and torch only
when a model is trained or evaluated.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from trainer.errors import InputError, RunFailed, TrainerError

_LAZY = {
    "train": "trainer.api",
    "evaluate": "trainer.api",
    "sweep": "trainer.api",
    "TrainConfig": "trainer.config",
    "EvaluateConfig": "trainer.config",
    "SweepConfig": "trainer.config",
    "TrainResult": "trainer.results",
    "Epoch": "trainer.results",
    "EvaluationResult": "trainer.results",
    "SplitScore": "trainer.results",
    "SweepResult": "trainer.results",
    "SweepRun": "trainer.results",
}

__all__ = ["TrainerError", "InputError", "RunFailed", *_LAZY]

if TYPE_CHECKING:
    from trainer.api import evaluate, sweep, train
    from trainer.config import EvaluateConfig, SweepConfig, TrainConfig
    from trainer.results import (
        Epoch,
        EvaluationResult,
        SplitScore,
        SweepResult,
        SweepRun,
        TrainResult,
    )


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'trainer' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
