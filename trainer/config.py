"""What one training run is asked to do, and the error raised when the request cannot be met.

Kept free of torch and transformers so that argument and data errors are reported in a fraction of
a second, before the heavy imports.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from trainer.errors import InputError  # noqa: F401 - re-exported

SETTINGS = ("original", "naive", "random", "diverse", "similar", "tree")

# The paper sweeps these learning rates and keeps the run with the best dev accuracy.
PAPER_LEARNING_RATES = (5e-6, 1e-5, 2e-5)


@dataclass(frozen=True)
class TrainConfig:
    data_dir: Path
    data_name: str
    output_dir: Path
    model: str
    setting: str = "original"
    learning_rate: float = 2e-5
    num_train_epochs: int = 10
    max_seq_length: int = 256
    per_device_train_batch_size: int = 4
    per_device_eval_batch_size: int = 32
    gradient_accumulation_steps: int = 16
    weight_decay: float = 0.01
    warmup_steps: int = 100
    seed: int = 42
    train_file: Path | None = None
    max_train_examples: int | None = None
    max_eval_examples: int | None = None
    mixed_precision: str | None = None
    resume_from_checkpoint: str | None = None
    cpu: bool = False

    @property
    def dataset_dir(self) -> Path:
        return self.data_dir / self.data_name

    @property
    def train_path(self) -> Path:
        """`original` is the human split; every other setting names the data the creator wrote."""
        if self.train_file is not None:
            return self.train_file
        name = "train.jsonl" if self.setting == "original" else f"train_{self.setting}.jsonl"
        return self.dataset_dir / name

    @property
    def dev_path(self) -> Path:
        return self.dataset_dir / "dev.jsonl"

    @property
    def test_path(self) -> Path:
        return self.dataset_dir / "test.jsonl"

    def to_json(self) -> dict:
        return {
            key: str(value) if isinstance(value, Path) else value
            for key, value in asdict(self).items()
        }
