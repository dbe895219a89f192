"""The task: a data dir -> its format, the exemplar, and the prompts that ask for more of it.

Pure functions plus one file reader. The prompt text follows the paper (EMNLP 2023, "Making Large
Language Models Better Data Creators"); the exemplar is rendered with json, never by string
formatting, so quotes and newlines in a question cannot break it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from . import records
from .errors import InputError
from .records import YES_NO_OPTIONS, Record, RecordError


class TaskError(InputError):
    """Bad input data: the message is shown to the user as it is."""


@dataclass(frozen=True)
class TaskFormat:
    """What every created example must look like, taken from the exemplar."""

    yes_no: bool  # options fixed to True/False ("fix" prompt) or free per example ("variant")
    num_options: int
    has_context: bool

    @property
    def fixed_options(self) -> tuple[str, ...] | None:
        return YES_NO_OPTIONS if self.yes_no else None


def record_from_json(obj: Any, where: str) -> Record:
    """Validate one input record (human data or an --exemplar file)."""
    try:
        return records.record_from_json(obj, where)
    except RecordError as exc:
        raise TaskError(str(exc)) from None


def detect_format(exemplar: Record) -> TaskFormat:
    return TaskFormat(
        yes_no=exemplar.yes_no,
        num_options=len(exemplar.options),
        has_context=bool(exemplar.context),
    )


def read_records(path: Path, limit: int | None = None) -> list[Record]:
    """Read a JSONL file of records; every line must be valid (bad data is an error, not skipped)."""
    try:
        return records.read_records(path, limit)
    except RecordError as exc:
        raise TaskError(str(exc)) from None
    except OSError as exc:
        raise TaskError(f"cannot read {path}: {exc.strerror}") from None


def _nearest(missing: Path) -> str:
    """' (did you mean X?)' when a folder beside the missing one has a close name."""
    import difflib

    parent = missing.parent
    try:
        names = [p.name for p in parent.iterdir() if p.is_dir()] if parent.is_dir() else []
    except OSError:
        names = []
    close = difflib.get_close_matches(missing.name, names, n=1, cutoff=0.6)
    return f" (did you mean {parent / close[0]}?)" if close else ""


def split_path(data_dir: Path, data_name: str) -> Path:
    """The human split to draw the exemplar from: train.jsonl, or dev.jsonl where train is missing."""
    folder = data_dir / data_name
    if not data_dir.is_dir():
        raise TaskError(f"data folder not found: {data_dir}{_nearest(data_dir)}")
    if not folder.is_dir():
        raise TaskError(f"data folder not found: {folder}{_nearest(folder)}")
    for name in ("train.jsonl", "dev.jsonl"):
        if (folder / name).is_file():
            return folder / name
    raise TaskError(f"no train.jsonl (or dev.jsonl) in {folder}")


def load_exemplar(
    data_dir: Path, data_name: str, seed: int, exemplar_file: Path | None
) -> tuple[Record, int]:
    """Return the exemplar and the size of the split it came from (the paper's default target)."""
    if exemplar_file is not None:
        records = read_records(exemplar_file)
        if not records:
            raise TaskError(f"{exemplar_file}: no exemplar in the file")
        return records[0], 0
    path = split_path(data_dir, data_name)
    records = read_records(path)
    if not records:
        raise TaskError(f"{path}: the file has no records")
    return random.Random(seed).choice(records), len(records)


def system_instruction(num_examples: int, fmt: TaskFormat) -> str:
    lines = [
        f"You are creating {num_examples} more examples that follow the format of the example "
        "provided, but with a different content.",
        "The created examples must all have different answers.",
    ]
    if fmt.yes_no:
        lines.append("The created examples must have the same options as the provided example.")
    lines.append("The output must be in unnumbered JSON format.")
    return "\n".join(f"- {line}" for line in lines)


def exemplar_fields(record: Record, fmt: TaskFormat) -> dict[str, Any]:
    """The exemplar as the paper shows it: yes/no puts Options and Answer first."""
    question = {"Question": record.question}
    context = {"Context": record.context} if fmt.has_context else {}
    options = {"Options": list(record.options), "Answer": record.label}
    if fmt.yes_no:
        return {**options, **question, **context}
    return {**question, **context, **options}


def render_messages(record: Record, fmt: TaskFormat, num_examples: int) -> list[dict[str, str]]:
    exemplar = orjson.dumps(exemplar_fields(record, fmt)).decode()
    return [
        {"role": "system", "content": system_instruction(num_examples, fmt)},
        {"role": "user", "content": exemplar},
    ]


def response_schema(fmt: TaskFormat, num_examples: int) -> dict[str, Any]:
    """A JSON schema for k created examples, for grammar-constrained / structured output."""
    # maxLength keeps small models from rambling until max_tokens cuts the JSON short
    short = {"type": "string", "maxLength": 100}
    options: dict[str, Any] = {"type": "array", "items": short}
    answer: dict[str, Any] = short
    if fmt.yes_no:
        options = {"enum": [list(YES_NO_OPTIONS)]}  # exactly ["True", "False"], in that order
        answer = {"type": "string", "enum": list(YES_NO_OPTIONS)}
    else:
        options = {**options, "minItems": fmt.num_options, "maxItems": fmt.num_options}
    question = {"type": "string", "minLength": 15, "maxLength": 300}  # no "1.2" questions
    properties: dict[str, Any] = {"Question": question}
    if fmt.has_context:
        # llama.cpp unrolls maxLength into its grammar: ~300 is safe, 1200 crashes its server
        properties["Context"] = {"type": "string", "maxLength": 300}
    properties.update({"Options": options, "Answer": answer})
    example = {"type": "object", "properties": properties, "required": list(properties)}
    return {
        "type": "object",
        "properties": {
            "examples": {
                "type": "array",
                "items": example,
                "minItems": num_examples,
                "maxItems": num_examples,
            }
        },
        "required": ["examples"],
    }
