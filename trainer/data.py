"""JSONL splits -> validated examples with label indices (pure Python, no torch).

The record, the yes/no rule and validation are creator.records' (the same for the creator, the
report and the trainer); this module adds what training needs on top: the task's format (options
True/False make a yes/no task, 2-label classification; anything else is multiple choice with as many
options as the first training record has), the label as an index, and the split files.

A record whose label is not among its options (reason LABEL_NOT_IN_OPTIONS) is skipped and counted:
an LLM-created file may hold a few. Any other invalid record (not JSON, not an object, a missing
field, options or a label of the wrong type, a wrong number of options) stops the run with a one-line
InputError, since it means the wrong file was given. Yes/no labels may be JSON booleans (human
files, and created files since records.py) or the strings "True"/"False" (older created files).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from creator.records import (
    LABEL_NOT_IN_OPTIONS,
    YES_NO_OPTIONS,
    Invalid,
    Record,
    check_record,
    is_yes_no,
    iter_lines,
    parse_line,
)
from trainer.config import TrainConfig
from trainer.errors import InputError

MULTIPLE_CHOICE = "mcqa"
YES_NO = "yesno"
# YES_NO_OPTIONS (from creator.records) is also the fixed order of the yes/no head's labels:
# index 0 is True, whatever order a record lists its options in.
__all__ = ["MULTIPLE_CHOICE", "YES_NO", "YES_NO_OPTIONS", "Example", "Split", "Task",
           "read_jsonl", "detect_format", "parse_record", "load_split", "load_task",
           "skipped_warnings", "text_pair"]


@dataclass(frozen=True)
class Example:
    question: str
    context: str | None
    options: tuple[str, ...]
    label: int  # index into options

    @classmethod
    def from_record(cls, record: Record) -> Example:
        """The model's text is stripped; the options and the label stay as the record has them."""
        return cls(
            question=record.question.strip(),
            context=(record.context or "").strip() or None,
            options=record.options,
            label=record.label_index,
        )


@dataclass(frozen=True)
class Split:
    name: str
    path: Path
    examples: tuple[Example, ...]
    skipped: int  # records whose label is not among their options
    total: int  # records in the file


@dataclass(frozen=True)
class Task:
    format: str  # MULTIPLE_CHOICE or YES_NO
    num_options: int
    train: Split
    dev: Split
    test: Split | None

    def signature(self) -> dict:
        """What a checkpoint was trained on, to refuse resuming on other data."""
        return {
            "train_file": str(self.train.path.resolve()),
            "train_examples": len(self.train.examples),
            "format": self.format,
            "num_options": self.num_options,
        }


def read_jsonl(path: Path, role: str) -> list[tuple[int, Any]]:
    """(line number, parsed JSON) for each non-blank line; role names the file in error messages.
    A line that is not JSON is an InputError; what the value is, is parse_record's business."""
    if not path.is_file():
        raise InputError(f"no {role} file: {path}")
    records = []
    try:
        for number, line in iter_lines(path):
            value = parse_line(line)
            if isinstance(value, Invalid):
                raise InputError(f"{path}:{number}: {value.message}")
            records.append((number, value))
    except OSError as error:
        raise InputError(f"cannot read {role} file {path}: {error.strerror or error}") from None
    if not records:
        raise InputError(f"{role} file is empty: {path}")
    return records


def detect_format(first_record: Any) -> tuple[str, int]:
    """(format, number of options) from the first training record."""
    options = first_record.get("options") if isinstance(first_record, dict) else None
    if is_yes_no(options):
        return YES_NO, 2
    if not isinstance(options, list) or len(options) < 2:
        raise InputError("the first training record needs a list of at least 2 options")
    return MULTIPLE_CHOICE, len(options)


def _check_options(options: Any, task_format: str, num_options: int, where: str) -> None:
    """A well-formed record may still not fit the task: yes/no in a yes/no task, else the count."""
    if task_format == YES_NO:
        if not is_yes_no(options):
            raise InputError(
                f'{where}: expected options ["True", "False"] in a yes/no task, got {options!r}'
            )
    elif len(options) != num_options:
        raise InputError(
            f"{where}: {len(options)} options, expected {num_options} "
            "(the count of the first training record)"
        )


def parse_record(record: Any, task_format: str, num_options: int, where: str) -> Example | None:
    """A validated example, or None when the label is not among the options (skipped)."""
    outcome = check_record(record)
    if isinstance(outcome, Invalid):
        if outcome.reason != LABEL_NOT_IN_OPTIONS:
            raise InputError(f"{where}: {outcome.message}")
        # options are well formed when only the label is wrong: the count still has to fit
        _check_options(record["options"], task_format, num_options, where)
        return None
    _check_options(list(outcome.options), task_format, num_options, where)
    return Example.from_record(outcome)


def load_split(
    path: Path,
    name: str,
    task_format: str,
    num_options: int,
    limit: int | None = None,
    records: list[tuple[int, Any]] | None = None,
) -> Split:
    """Read and validate a split; `limit` keeps the first valid examples."""
    records = read_jsonl(path, name) if records is None else records
    examples, skipped = [], 0
    for number, record in records:
        example = parse_record(record, task_format, num_options, f"{path}:{number}")
        if example is None:
            skipped += 1
        else:
            examples.append(example)
    if not examples:
        raise InputError(
            f"{path}: none of the {len(records)} records has its label among its options"
        )
    if limit is not None:
        examples = examples[:limit]
    return Split(
        name=name, path=path, examples=tuple(examples), skipped=skipped, total=len(records)
    )


def load_task(config: TrainConfig) -> Task:
    """Train, dev and (when present) test splits of the configured dataset, validated."""
    if not config.dataset_dir.is_dir() and config.train_file is None:
        raise InputError(
            f"no dataset folder: {config.dataset_dir} "
            "(data_dir is the format folder, data_name the dataset inside it)"
        )
    train_records = read_jsonl(config.train_path, "train")
    number, first = train_records[0]
    outcome = check_record(first)
    if isinstance(outcome, Invalid) and outcome.reason != LABEL_NOT_IN_OPTIONS:
        raise InputError(f"{config.train_path}:{number}: {outcome.message}")
    task_format, num_options = detect_format(first)
    train = load_split(
        config.train_path,
        "train",
        task_format,
        num_options,
        limit=config.max_train_examples,
        records=train_records,
    )
    dev = load_split(
        config.dev_path, "dev", task_format, num_options, limit=config.max_eval_examples
    )
    test = None
    if config.test_path.is_file():
        test = load_split(
            config.test_path, "test", task_format, num_options, limit=config.max_eval_examples
        )
    return Task(format=task_format, num_options=num_options, train=train, dev=dev, test=test)


def skipped_warnings(task: Task) -> list[str]:
    """One line per split that had records skipped for a label outside their options."""
    return [
        f"skipped {split.skipped} of {split.total} records of {split.path} whose label is not "
        "among their options"
        for split in (task.train, task.dev, task.test)
        if split is not None and split.skipped
    ]


def text_pair(example: Example, option: str | None = None) -> tuple[str, str | None]:
    """The text pair the model reads.

    Yes/no: (question, context). Multiple choice: (question, option), or
    (context, question + option) when there is a context, so that truncation shortens the long
    context and never the option.
    """
    if option is None:
        return example.question, example.context
    if example.context:
        return example.context, f"{example.question} {option}"
    return example.question, option
