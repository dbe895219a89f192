"""Reply text -> candidate objects -> validated, de-duplicated records. Pure: no I/O.

LLMs wrap JSON in many ways: objects separated by blank lines (the paper's GPT replies), a JSON
array, one object per line, code fences, numbered lists, or {"examples": [...]} under structured
output. Rather than guess the layout, we find every top-level JSON object in the text with
`raw_decode`, which understands nesting and strings, and skip whatever lies between them.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from .records import YES_NO_OPTIONS, Record, is_yes_no, yes_no_label
from .task import TaskFormat

_decoder = json.JSONDecoder(strict=False)  # models put raw newlines and tabs inside strings
_SPACE = re.compile(r"\s+")

# rejection reasons, counted in the run summary
EMPTY_REPLY = "empty_reply"
NO_JSON = "no_json_object"
MALFORMED = "malformed_json"
NOT_AN_EXAMPLE = "missing_field"
BAD_TYPE = "bad_field_type"
OPTIONS_COUNT = "wrong_options_count"
OPTIONS_CHANGED = "options_differ_from_exemplar"
ANSWER_NOT_IN_OPTIONS = "answer_not_in_options"
DUPLICATE = "duplicate_question"
ECHO = "exemplar_echo"


def question_key(question: str) -> str:
    """Dedup key: case and white space do not make a question new."""
    return _SPACE.sub(" ", question).strip().casefold()


def scan_json(text: str) -> tuple[list[Any], int]:
    """Every top-level JSON value starting with '{' or '[' in text, left to right, and the number
    of '{' where no valid JSON starts (a broken or truncated object)."""
    values: list[Any] = []
    broken = 0
    pos = 0
    while True:
        starts = [i for i in (text.find("{", pos), text.find("[", pos)) if i >= 0]
        if not starts:
            return values, broken
        start = min(starts)
        try:
            value, end = _decoder.raw_decode(text, start)
        except ValueError:
            broken += text[start] == "{"
            pos = start + 1
            continue
        values.append(value)
        pos = end


def _flatten(value: Any) -> Iterator[Any]:
    """Arrays and {"examples": [...]} wrappers hold the objects we want."""
    if isinstance(value, list):
        for item in value:
            yield from _flatten(item)
    elif isinstance(value, dict):
        lists = [v for v in value.values() if isinstance(v, list) and v and isinstance(v[0], dict)]
        if len(value) == 1 and lists:
            yield from _flatten(lists[0])
        else:
            yield value


def extract_candidates(text: str) -> tuple[list[dict[str, Any]], int]:
    """All JSON objects a reply holds, arrays and wrappers unpacked, and the count of broken ones."""
    values, broken = scan_json(text)
    objects = [v for value in values for v in _flatten(value) if isinstance(v, dict)]
    return objects, broken


def _field(obj: dict[str, Any], name: str) -> Any:
    """Look a field up regardless of case ("Question", "question")."""
    if name in obj:
        return obj[name]
    lowered = name.lower()
    for key, value in obj.items():
        if isinstance(key, str) and key.strip().lower() == lowered:
            return value
    return None


def _answer_text(answer: Any) -> str | None:
    if isinstance(answer, bool):
        return "True" if answer else "False"
    if isinstance(answer, (str, int, float)):
        return str(answer).strip()
    return None


def validate(obj: dict[str, Any], fmt: TaskFormat) -> Record | str:
    """A candidate becomes a Record, or the reason it was rejected."""
    question = _field(obj, "Question")
    options = _field(obj, "Options")
    answer = _field(obj, "Answer")
    if question is None or options is None or answer is None:
        return NOT_AN_EXAMPLE
    if not isinstance(question, str) or not question.strip() or not isinstance(options, list):
        return BAD_TYPE
    if not all(isinstance(o, (str, bool)) for o in options):
        return BAD_TYPE
    options_text = [_answer_text(o) or "" for o in options]
    if len(options_text) != fmt.num_options or not all(options_text):
        return OPTIONS_COUNT
    context = _field(obj, "Context") if fmt.has_context else None
    if context is not None and not isinstance(context, str):
        return BAD_TYPE
    context = (context or "").strip() or None
    if fmt.yes_no:  # the records module's yes/no rule: True and False, any case or order
        if not is_yes_no(options_text):
            return OPTIONS_CHANGED
        label = yes_no_label(answer if isinstance(answer, bool) else _answer_text(answer))
        if label is None:
            return ANSWER_NOT_IN_OPTIONS if _answer_text(answer) is not None else BAD_TYPE
        return Record(question.strip(), context, YES_NO_OPTIONS, label)
    answer_text = _answer_text(answer)
    if answer_text is None:
        return BAD_TYPE
    # match the answer to an option loosely, then keep the option's own spelling as the label
    by_key = {question_key(o): o for o in options_text}
    label = by_key.get(question_key(answer_text))
    if label is None:
        return ANSWER_NOT_IN_OPTIONS
    return Record(question.strip(), context, tuple(options_text), label)


@dataclass
class ParseResult:
    records: list[Record] = field(default_factory=list)
    rejected: Counter[str] = field(default_factory=Counter)


def parse_reply(
    text: str | None, fmt: TaskFormat, seen: set[str], exemplar_keys: Iterable[str] = ()
) -> ParseResult:
    """Parse, validate and de-duplicate one reply.

    `seen` holds the question keys of every record kept so far; it is read, not changed: the
    caller adds the records it actually keeps (it may stop at the target). Questions repeated
    within this reply count as duplicates too.
    """
    result = ParseResult()
    if not text or not text.strip():
        result.rejected[EMPTY_REPLY] += 1
        return result
    candidates, broken = extract_candidates(text)
    if broken:
        result.rejected[MALFORMED] += broken
    if not candidates:
        if not broken:
            result.rejected[NO_JSON] += 1
        return result
    echoes = set(exemplar_keys)
    in_reply: set[str] = set()
    for obj in candidates:
        outcome = validate(obj, fmt)
        if isinstance(outcome, str):
            result.rejected[outcome] += 1
            continue
        key = question_key(outcome.question)
        if key in echoes:
            result.rejected[ECHO] += 1
        elif key in seen or key in in_reply:
            result.rejected[DUPLICATE] += 1
        else:
            in_reply.add(key)
            result.records.append(outcome)
    return result
