"""Resumable checkpoints (one per epoch, the latest kept) and the best model by dev accuracy.

A checkpoint is accelerate's own state (model, optimizer, scheduler, every process's RNG) plus
`trainer_state.json`, written last: a folder without it is an interrupted save and is never resumed.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from trainer.errors import InputError
from trainer.results import BEST_MODEL

STATE_FILE = "trainer_state.json"
CHECKPOINTS = "checkpoints"
__all__ = ["BEST_MODEL", "STATE_FILE", "CHECKPOINTS", "TrainerState", "write_json",
           "checkpoint_dir", "latest_checkpoint", "resolve_resume", "read_state", "check_same_data",
           "save_checkpoint", "load_checkpoint", "save_best_model"]


@dataclass
class TrainerState:
    """What the loop has done so far; everything metrics.json reports comes from here."""

    epochs_done: int = 0
    best_epoch: int | None = None
    best_dev_acc: float | None = None
    best_dev_loss: float | None = None
    test_acc: float | None = None
    dev_examples: int = 0
    test_examples: int | None = None
    train_seconds: float = 0.0
    examples_trained: int = 0  # over all processes and epochs
    history: list[dict] = field(default_factory=list)
    loss_curve: list[float] = field(default_factory=list)  # mean loss of each optimizer update
    data: dict = field(default_factory=dict)  # what is trained on (Task.signature)

    @classmethod
    def from_json(cls, data: dict) -> TrainerState:
        return cls(**{key: value for key, value in data.items() if key in cls.__dataclass_fields__})


def write_json(path: Path, data: dict) -> None:
    """Write whole or not at all: a crash mid-write leaves the previous file."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def checkpoint_dir(output_dir: Path, epoch: int) -> Path:
    return output_dir / CHECKPOINTS / f"epoch_{epoch}"


def latest_checkpoint(output_dir: Path) -> Path | None:
    complete = [
        path
        for path in (output_dir / CHECKPOINTS).glob("epoch_*")
        if (path / STATE_FILE).is_file() and path.name[len("epoch_") :].isdigit()
    ]
    return max(complete, key=lambda path: int(path.name[len("epoch_") :]), default=None)


def resolve_resume(argument: str | None, output_dir: Path) -> Path | None:
    """`--resume_from_checkpoint`: a checkpoint folder, or `latest` for the newest in output_dir."""
    if argument is None:
        return None
    if argument == "latest":
        path = latest_checkpoint(output_dir)
        if path is None:
            raise InputError(f"no complete checkpoint to resume under {output_dir / CHECKPOINTS}")
        return path
    path = Path(argument)
    if not (path / STATE_FILE).is_file():
        raise InputError(f"not a complete checkpoint (no {STATE_FILE}): {path}")
    return path


def _corrupt(path: Path, reason: str) -> InputError:
    return InputError(f"{path}: corrupt checkpoint ({reason}); remove it or resume from another")


def read_state(path: Path) -> TrainerState:
    """The checkpoint's trainer_state.json; anything unreadable is an InputError, not a traceback."""
    try:
        data = json.loads((path / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _corrupt(path, f"{STATE_FILE}: {error}") from None
    if not isinstance(data, dict):
        raise _corrupt(path, f"{STATE_FILE} is not a JSON object")
    epochs = data.get("epochs_done")
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 0:
        raise _corrupt(path, f"{STATE_FILE}: epochs_done {epochs!r} is not a count")
    if not isinstance(data.get("data", {}), dict):
        raise _corrupt(path, f"{STATE_FILE}: data is not a JSON object")
    return TrainerState.from_json(data)


def check_same_data(path: Path, signature: dict) -> None:
    """Refuse to resume on other training data: the epochs done would mean something else."""
    saved = read_state(path).data
    differences = [
        f"{key} {saved.get(key)!r} there, {value!r} now"
        for key, value in signature.items()
        if saved.get(key) != value
    ]
    if differences:
        raise InputError(f"{path} was trained on other data: " + "; ".join(differences))


def save_checkpoint(accelerator, output_dir: Path, state: TrainerState) -> Path:
    """Every process must call this; the state file goes last, then older checkpoints go."""
    path = checkpoint_dir(output_dir, state.epochs_done)
    accelerator.save_state(str(path))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_json(path / STATE_FILE, asdict(state))
        for older in (output_dir / CHECKPOINTS).glob("epoch_*"):
            if older != path:
                shutil.rmtree(older, ignore_errors=True)
    accelerator.wait_for_everyone()
    return path


def load_checkpoint(accelerator, path: Path) -> TrainerState:
    state = read_state(path)
    try:
        accelerator.load_state(str(path))
    except Exception as error:  # noqa: BLE001 - torch/safetensors/pickle each raise their own kind
        reason = f"{type(error).__name__}: {error}".splitlines()[0][:200]
        raise _corrupt(path, reason) from None
    return state


def save_best_model(accelerator, model, tokenizer, output_dir: Path) -> None:
    """A plain transformers folder (from_pretrained loads it); every process must call this."""
    path = output_dir / BEST_MODEL
    state_dict = accelerator.get_state_dict(model)  # collective under FSDP/DeepSpeed
    if accelerator.is_main_process:
        accelerator.unwrap_model(model).save_pretrained(path, state_dict=state_dict)
        tokenizer.save_pretrained(path)
    accelerator.wait_for_everyone()
