"""The record: one example, the same for the creator, the report and the trainer. Pure, no I/O
but the JSONL reader at the bottom.

A record is `{"question", "context", "options", "label"}`. A record is yes/no when its two
options are True and False (any case, either order); its options are then ("True", "False") in
that order, and its label is a JSON boolean in every file the project writes, as in the human
data, so created and human files load and concatenate alike (`datasets` included). Older created
files wrote the strings "True"/"False": those still read.

Validation returns a reason code (the constants below), never a message to search: the creator
refuses bad input with the message, the report counts the codes, the trainer skips a record
whose label is not among its options.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import orjson

from .errors import InputError

YES_NO_OPTIONS = ("True", "False")

# why a record (a line of a JSONL file) is not valid input
NOT_JSON = "not_json"
NOT_AN_OBJECT = "not_an_object"
MISSING_FIELD = "missing_field"
BAD_QUESTION = "bad_question"
BAD_OPTIONS = "bad_options"
BAD_CONTEXT = "bad_context"
BAD_LABEL = "bad_label_type"
LABEL_NOT_IN_OPTIONS = "label_not_in_options"
REASONS = (NOT_JSON, NOT_AN_OBJECT, MISSING_FIELD, BAD_QUESTION, BAD_OPTIONS, BAD_CONTEXT,
           BAD_LABEL, LABEL_NOT_IN_OPTIONS)


class RecordError(InputError):
    """An invalid record where one is required: `reason` is the code, the message says where
    and what."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def is_yes_no(options: Any) -> bool:
    """The yes/no rule: two options, True and False, in any case and either order."""
    return (isinstance(options, (list, tuple)) and len(options) == 2
            and all(isinstance(o, (str, bool)) for o in options)
            and sorted(str(o).strip().lower() for o in options) == ["false", "true"])


def yes_no_label(label: Any) -> str | None:
    """A yes/no label as "True"/"False": a JSON boolean or the word in any case; else None."""
    if isinstance(label, bool):
        return YES_NO_OPTIONS[0] if label else YES_NO_OPTIONS[1]
    if isinstance(label, str) and label.strip().lower() in ("true", "false"):
        return label.strip().capitalize()
    return None


@dataclass(frozen=True, slots=True)
class Record:
    """One example. `label` is the text of one of `options`."""

    question: str
    context: str | None
    options: tuple[str, ...]
    label: str

    @property
    def yes_no(self) -> bool:
        return self.options == YES_NO_OPTIONS

    @property
    def label_index(self) -> int:
        return self.options.index(self.label)

    def to_json(self) -> dict[str, Any]:
        """The file form: a yes/no label is a JSON boolean, as in the human data."""
        label: Any = self.label == YES_NO_OPTIONS[0] if self.yes_no else self.label
        return {"question": self.question, "context": self.context,
                "options": list(self.options), "label": label}


@dataclass(frozen=True, slots=True)
class Invalid:
    """Why an object is not a record: a code from REASONS and a message for people."""

    reason: str
    message: str

    def error(self, where: str) -> RecordError:
        return RecordError(self.reason, f"{where}: {self.message}" if where else self.message)


def check_record(obj: Any) -> Record | Invalid:
    """An input object (a human record, a created one, an exemplar) as a Record, or why not."""
    if not isinstance(obj, dict):
        return Invalid(NOT_AN_OBJECT, "expected a JSON object")
    missing = [k for k in ("question", "options", "label") if k not in obj]
    if missing:
        return Invalid(MISSING_FIELD, f"missing field(s) {', '.join(missing)}")
    question, options, context = obj["question"], obj["options"], obj.get("context")
    if not isinstance(question, str) or not question.strip():
        return Invalid(BAD_QUESTION, "'question' must be a non-empty string")
    if context is not None and not isinstance(context, str):
        return Invalid(BAD_CONTEXT, "'context' must be a string or null")
    if is_yes_no(options):
        label = yes_no_label(obj["label"])
        if label is None:
            return _bad_label(obj["label"], YES_NO_OPTIONS)
        return Record(question, context or None, YES_NO_OPTIONS, label)
    if (not isinstance(options, list) or len(options) < 2
            or not all(isinstance(o, str) and o.strip() for o in options)):
        return Invalid(BAD_OPTIONS, "'options' must be a list of at least 2 non-empty strings")
    label = obj["label"]
    if isinstance(label, bool):  # a JSON boolean names the option "True" or "False" (README:
        label = yes_no_label(label)  # booleans are accepted everywhere), here among others
    if not isinstance(label, str):
        return Invalid(BAD_LABEL, f"label must be a string or a boolean, got "
                                  f"{type(label).__name__}")
    if label not in options:
        return _bad_label(label, tuple(options))
    return Record(question, context or None, tuple(options), label)


def _bad_label(label: Any, options: tuple[str, ...]) -> Invalid:
    if not isinstance(label, (str, bool)):
        return Invalid(BAD_LABEL, f"label must be a string or a boolean, got "
                                  f"{type(label).__name__}")
    return Invalid(LABEL_NOT_IN_OPTIONS, f"label {label!r} is not one of the options "
                                         f"{list(options)}")


def record_from_json(obj: Any, where: str = "") -> Record:
    """check_record, raising RecordError where a record is required."""
    outcome = check_record(obj)
    if isinstance(outcome, Invalid):
        raise outcome.error(where)
    return outcome


# --- JSONL ------------------------------------------------------------------------------------


def record_line(record: Record, meta: dict[str, Any] | None = None) -> bytes:
    """One line of a JSONL file the project writes (created records carry a `meta`)."""
    obj = record.to_json()
    if meta is not None:
        obj["meta"] = meta
    return orjson.dumps(obj) + b"\n"


def iter_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, line) for each non-blank line; OSError for an unreadable file."""
    with path.open("rb") as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                yield lineno, line


def parse_line(line: bytes | str) -> Any | Invalid:
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        return Invalid(NOT_JSON, "not valid JSON")


def read_records(path: Path, limit: int | None = None) -> list[Record]:
    """Every record of a JSONL file, which must all be valid: RecordError names the first bad
    line; an unreadable file is an OSError."""
    records = []
    for lineno, line in iter_lines(path):
        obj = parse_line(line)
        outcome = obj if isinstance(obj, Invalid) else check_record(obj)
        if isinstance(outcome, Invalid):
            raise outcome.error(f"{path}:{lineno}")
        records.append(outcome)
        if limit is not None and len(records) >= limit:
            break
    return records
