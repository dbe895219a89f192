"""JSONL splits -> validated examples with label indices (pure Python, no torch).

Records are `{"question", "context", "options", "label"}`. The format comes from the data: options
True/False make a yes/no task (2-label classification), anything else is multiple choice with as
many options as the first training record has. Yes/no labels may be JSON booleans (human files)
or the strings "True"/"False" (created files).

A record whose label is not among its options is skipped and counted (an LLM-created file may hold a
few); a record of the wrong shape stops the run, since it means the wrong file was given.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from trainer.config import InputError, TrainConfig

MULTIPLE_CHOICE = "mcqa"
YES_NO = "yesno"
# Fixed order of the yes/no head's labels, whatever order a record lists its options in.
YES_NO_OPTIONS = ("True", "False")


@dataclass(frozen=True)
class Example:
    question: str
    context: str | None
    options: tuple[str, ...]
    label: int  # index into options


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


def read_jsonl(path: Path, role: str) -> list[tuple[int, dict]]:
    """(line number, record) for each non-blank line; role names the file in error messages."""
    if not path.is_file():
        raise InputError(f"no {role} file: {path}")
    records = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise InputError(f"{path}:{number}: not valid JSON ({error.msg})") from None
            if not isinstance(record, dict):
                raise InputError(f"{path}:{number}: expected a JSON object")
            records.append((number, record))
    if not records:
        raise InputError(f"{role} file is empty: {path}")
    return records


def is_yes_no(options: object) -> bool:
    return (
        isinstance(options, list)
        and len(options) == 2
        and sorted(str(option) for option in options) == sorted(YES_NO_OPTIONS)
    )


def detect_format(first_record: dict) -> tuple[str, int]:
    """(format, number of options) from the first training record."""
    options = first_record.get("options")
    if is_yes_no(options):
        return YES_NO, 2
    if not isinstance(options, list) or len(options) < 2:
        raise InputError("the first training record needs a list of at least 2 options")
    return MULTIPLE_CHOICE, len(options)


def label_text(label: object) -> str:
    """A yes/no label as "True" or "False" (from JSON true/false or any case of the words)."""
    if isinstance(label, bool):
        return "True" if label else "False"
    text = str(label).strip()
    if text.lower() in ("true", "false"):
        return text.capitalize()
    return text


def parse_record(record: dict, task_format: str, num_options: int, where: str) -> Example | None:
    """A validated example, or None when the label is not among the options."""
    question = record.get("question")
    context = record.get("context")
    options = record.get("options")
    if not isinstance(question, str) or not question.strip():
        raise InputError(f"{where}: missing or empty question")
    if context is not None and not isinstance(context, str):
        raise InputError(f"{where}: context must be a string or null")
    if "label" not in record:
        raise InputError(f"{where}: missing label")
    if not isinstance(options, list):
        raise InputError(f"{where}: options must be a list")
    if task_format == YES_NO:
        if not is_yes_no(options):
            raise InputError(
                f'{where}: expected options ["True", "False"] in a yes/no task, got {options!r}'
            )
        options = list(YES_NO_OPTIONS)
    elif len(options) != num_options:
        raise InputError(
            f"{where}: {len(options)} options, expected {num_options} "
            "(the count of the first training record)"
        )
    options = tuple(str(option).strip() for option in options)
    # only yes/no labels are normalised: a multiple-choice option may well be "true"
    label = label_text(record["label"]) if task_format == YES_NO else str(record["label"]).strip()
    if label not in options:
        return None
    return Example(
        question=question.strip(),
        context=(context or "").strip() or None,
        options=options,
        label=options.index(label),
    )


def load_split(
    path: Path,
    name: str,
    task_format: str,
    num_options: int,
    limit: int | None = None,
    records: list[tuple[int, dict]] | None = None,
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
    task_format, num_options = detect_format(train_records[0][1])
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
