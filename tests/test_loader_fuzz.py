"""Property tests: whatever bytes a user puts in a train.jsonl, an --exemplar file or an output to
resume, the loader either refuses them with a TaskError (one clear message, shown as is) or
accepts records that satisfy every validation rule.

Covers creator.task (record_from_json, read_records, load_exemplar, detect_format,
render_messages) and creator.sink.scan_output. The rules are re-implemented here (`is_valid`),
not imported, so a bug in the loader cannot hide itself.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from creator.sink import scan_output
from creator.task import (
    YES_NO_OPTIONS,
    Record,
    TaskError,
    detect_format,
    load_exemplar,
    read_records,
    record_from_json,
    render_messages,
)

FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# ------------------------------------------------------------------------------ strategies

# a few strings that collide often, so labels are often among the options
WORDS = st.sampled_from(["a", "b", "True", "False", "", " ", "\t", "x y", "ünï", "\"q\"", "\n",
                         "0", "null", "Yes"])
TEXT = st.one_of(WORDS, st.text(max_size=12))
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                    st.floats(allow_nan=False, allow_infinity=False), TEXT)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
OPTIONS = st.one_of(st.lists(TEXT, max_size=6), st.just(["True", "False"]), JSON_VALUES)
LABELS = st.one_of(st.booleans(), TEXT, JSON_VALUES)
META = st.one_of(
    st.fixed_dictionaries({}, optional={"id": st.integers(-3, 50), "parent": st.none() | st.integers(0, 50),
                                        "depth": st.integers(0, 9), "chain": st.integers(0, 9)}),
    st.none(), st.lists(st.integers(), max_size=2), TEXT,
)
RECORD_LIKE = st.fixed_dictionaries(
    {},
    optional={"question": st.one_of(TEXT, JSON_VALUES), "context": st.one_of(st.none(), TEXT, JSON_VALUES),
              "options": OPTIONS, "label": LABELS, "extra": JSON_VALUES},
)
# mostly well-formed records, so that the accepting path is exercised too
GOOD_RECORD = st.fixed_dictionaries(
    {"question": st.text(min_size=1, max_size=40), "options": st.just(["True", "False"]) | st.lists(
        st.text(min_size=1, max_size=8), min_size=2, max_size=5), "label": st.booleans() | TEXT},
    optional={"context": st.none() | st.text(max_size=30)},
)
VALID_RECORD = st.one_of(GOOD_RECORD.map(lambda r: {**r, "label": r["options"][0]}),
                         GOOD_RECORD.map(lambda r: {**r, "label": r["options"][-1]}))
OBJECTS = st.one_of(RECORD_LIKE, GOOD_RECORD, VALID_RECORD, JSON_VALUES)


def _encode(obj: Any) -> bytes:
    try:
        return orjson.dumps(obj)
    except (orjson.JSONEncodeError, TypeError):  # ints beyond 64 bits: let json write them
        return json.dumps(obj, ensure_ascii=False).encode()


LINE = st.one_of(
    OBJECTS.map(_encode),
    st.binary(max_size=40),
    st.text(max_size=40).map(str.encode),
    st.sampled_from([b"", b"   ", b"{", b"}", b"[]", b"null", b'{"question": "q"}', b"\xff\xfe",
                     b"\x00", b'"\\ud800"', b"1e999", b"[" * 2000]),
)
# files of valid records, with sometimes one bad or blank line somewhere
MOSTLY_VALID = st.tuples(st.lists(VALID_RECORD.map(_encode), min_size=1, max_size=5),
                         st.lists(LINE, max_size=1), st.integers(0, 5)).map(
    lambda t: t[0][: t[2]] + t[1] + t[0][t[2]:])
CONTENT = st.one_of(
    st.tuples(st.one_of(st.lists(LINE, max_size=6), MOSTLY_VALID),
              st.sampled_from([b"\n", b"\r\n"]), st.booleans()).map(
        lambda t: t[1].join(t[0]) + (t[1] if t[2] else b"")),
    st.binary(max_size=300),
)
# output files as the creator writes them: records with a meta field, one per line, maybe torn
OUTPUT_RECORD = st.tuples(VALID_RECORD, META).map(lambda t: _encode({**t[0], "meta": t[1]}))
OUTPUT_LINE = st.one_of(
    st.tuples(OBJECTS, META).map(lambda t: _encode({**t[0], "meta": t[1]}) if isinstance(t[0], dict)
                                 else _encode(t[0])),
    OUTPUT_RECORD,
    LINE,
)
OUTPUT_CONTENT = st.one_of(
    st.tuples(st.one_of(st.lists(OUTPUT_LINE, max_size=6), st.lists(OUTPUT_RECORD, max_size=6)),
              st.binary(max_size=20) | st.just(b"")).map(
        lambda t: b"".join(line + b"\n" for line in t[0]) + t[1]),
    st.binary(max_size=300),
)


# ------------------------------------------------------------------------------ the rules


def yes_no_options(opts: Any) -> bool:
    """The README's yes/no rule: two options, True and False, in any case or order."""
    return (isinstance(opts, list) and len(opts) == 2
            and all(isinstance(o, (str, bool)) for o in opts)
            and sorted(str(o).strip().lower() for o in opts) == ["false", "true"])


def expected_label(label: Any, opts: Any = None) -> str | None:
    if isinstance(label, bool):
        return "True" if label else "False"
    if yes_no_options(opts) and isinstance(label, str) and \
            label.strip().lower() in ("true", "false"):
        return label.strip().capitalize()  # a yes/no label: the word in any case
    return label if isinstance(label, str) else None


def is_valid(obj: Any) -> bool:
    """The validation rules of an input record, written from the README, not from the code."""
    if not isinstance(obj, dict) or not {"question", "options", "label"} <= set(obj):
        return False
    q, opts, ctx = obj["question"], obj["options"], obj.get("context")
    if not isinstance(q, str) or not q.strip():
        return False
    if ctx is not None and not isinstance(ctx, str):
        return False
    if yes_no_options(opts):
        return expected_label(obj["label"], opts) in ("True", "False")
    if not isinstance(opts, list) or len(opts) < 2:
        return False
    if not all(isinstance(o, str) and o.strip() for o in opts):
        return False
    label = expected_label(obj["label"], opts)
    return label is not None and label in opts


def assert_record_ok(rec: Record) -> None:
    assert isinstance(rec, Record)
    assert isinstance(rec.question, str) and rec.question.strip()
    assert isinstance(rec.options, tuple) and len(rec.options) >= 2
    assert all(isinstance(o, str) and o.strip() for o in rec.options)
    assert isinstance(rec.label, str) and rec.label in rec.options
    assert rec.context is None or (isinstance(rec.context, str) and rec.context)


def assert_task_error(exc: TaskError) -> None:
    assert type(exc) is TaskError
    assert str(exc).strip(), "a TaskError must say what is wrong"


def assert_same_record(rec: Record, obj: dict) -> None:
    assert rec.question == obj["question"]
    yes_no = yes_no_options(obj["options"])
    assert rec.options == (("True", "False") if yes_no else tuple(obj["options"]))
    assert rec.label == expected_label(obj["label"], obj["options"])
    assert rec.context == (obj.get("context") or None)


# ------------------------------------------------------------------------------ record_from_json


@FUZZ
@given(obj=OBJECTS)
# found by this test in CI: a boolean label among options that are not yes/no was refused
@example(obj={"options": ["a", "True"], "question": "a", "label": True})
# ... and a yes/no label in another case, which the yes/no rule accepts (the oracle did not)
@example(obj={"question": "0", "options": ["True", "False"], "label": "TRUE"})
@example(obj={"question": "q", "options": ["false", "TRUE"], "label": " true "})
def test_record_from_json_accepts_exactly_the_valid_records(obj):
    try:
        rec = record_from_json(obj, "f.jsonl:1")
    except TaskError as exc:
        assert_task_error(exc)
        assert str(exc).startswith("f.jsonl:1: "), "the message says where"
        assert not is_valid(obj), f"a valid record was refused: {obj!r}: {exc}"
        return
    assert is_valid(obj), f"an invalid record was accepted: {obj!r}"
    assert_record_ok(rec)
    assert_same_record(rec, obj)


# ------------------------------------------------------------------------------ files


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("loader_fuzz")


def _valid_lines(content: bytes, lines_of=lambda b: b.split(b"\n")) -> list[dict] | None:
    """The records a strict reader must return, or None if the file must be refused.
    read_records splits on b"\n" (file iteration), scan_output on any line break (splitlines):
    the creator never writes a raw CR, so either is right for its own files."""
    rows = []
    for line in lines_of(content):
        if not line.strip():
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            return None
        if not is_valid(obj):
            return None
        rows.append(obj)
    return rows


@FUZZ
@given(content=CONTENT)
def test_read_records_never_raises_anything_but_task_error(content, fuzz_dir):
    path = fuzz_dir / "records.jsonl"
    path.write_bytes(content)
    expected = _valid_lines(content)
    try:
        records = read_records(path)
    except TaskError as exc:
        assert_task_error(exc)
        assert str(path) in str(exc)
        assert expected is None, f"a valid file was refused: {content!r}: {exc}"
        return
    assert expected is not None, f"an invalid file was accepted: {content!r}"
    assert len(records) == len(expected)
    for rec, obj in zip(records, expected):
        assert_record_ok(rec)
        assert_same_record(rec, obj)


@FUZZ
@given(content=CONTENT, split=st.sampled_from(["train.jsonl", "dev.jsonl"]),
       seed=st.integers(-(2**64), 2**64), as_exemplar_file=st.booleans())
def test_load_exemplar_never_raises_anything_but_task_error(content, split, seed,
                                                            as_exemplar_file, fuzz_dir):
    folder = fuzz_dir / "data" / "ds"
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("train.jsonl", "dev.jsonl"):
        (folder / name).unlink(missing_ok=True)
    (folder / split).write_bytes(content)
    expected = _valid_lines(content)
    try:
        if as_exemplar_file:
            exemplar, size = load_exemplar(fuzz_dir / "data", "nothing", seed, folder / split)
        else:
            exemplar, size = load_exemplar(fuzz_dir / "data", "ds", seed, None)
    except TaskError as exc:
        assert_task_error(exc)
        assert expected is None or expected == [], f"a usable file was refused: {content!r}: {exc}"
        return
    assert expected, f"an invalid or empty file was accepted: {content!r}"
    assert_record_ok(exemplar)
    if as_exemplar_file:
        assert size == 0
        assert_same_record(exemplar, expected[0])
    else:
        assert size == len(expected)
        assert_same_record(exemplar, random.Random(seed).choice(expected))
    fmt = detect_format(exemplar)
    assert fmt.num_options == len(exemplar.options)
    assert fmt.yes_no == (exemplar.options == YES_NO_OPTIONS)
    assert fmt.has_context == bool(exemplar.context)


def test_a_missing_or_unreadable_data_folder_is_a_task_error(tmp_path):
    for data_name in ("absent", "empty"):
        (tmp_path / "empty").mkdir(exist_ok=True)
        with pytest.raises(TaskError) as info:
            load_exemplar(tmp_path, data_name, 1, None)
        assert_task_error(info.value)
    (tmp_path / "dirs" / "train.jsonl").mkdir(parents=True)  # a folder where the file should be
    with pytest.raises(TaskError):
        load_exemplar(tmp_path, "dirs", 1, None)
    with pytest.raises(TaskError) as info:
        read_records(tmp_path / "dirs")  # a folder: cannot read
    assert_task_error(info.value)


# ------------------------------------------------------------------------------ rendering


@FUZZ
@given(obj=GOOD_RECORD, k=st.integers(1, 500))
def test_render_messages_gives_the_exemplar_as_json(obj, k):
    try:
        rec = record_from_json(obj, "x")
    except TaskError:
        return
    fmt = detect_format(rec)
    messages = render_messages(rec, fmt, k)
    assert [m["role"] for m in messages] == ["system", "user"]
    assert all(isinstance(m["content"], str) and m["content"] for m in messages)
    assert f"creating {k} more examples" in messages[0]["content"]
    assert ("same options" in messages[0]["content"]) == fmt.yes_no
    shown = json.loads(messages[1]["content"])
    assert isinstance(shown, dict)
    assert shown["Question"] == rec.question
    assert shown["Options"] == list(rec.options)
    assert shown["Answer"] == rec.label and shown["Answer"] in shown["Options"]
    if fmt.has_context:
        assert shown["Context"] == rec.context
    else:
        assert "Context" not in shown
    # the paper's field orders: yes/no puts Options and Answer first
    keys = list(shown)
    if fmt.yes_no:
        assert keys[:2] == ["Options", "Answer"] and keys[2] == "Question"
    else:
        assert keys[0] == "Question" and keys[-2:] == ["Options", "Answer"]


# ------------------------------------------------------------------------------ scan_output


def _expected_nodes(data: bytes) -> int | None:
    end = data.rfind(b"\n") + 1
    rows = _valid_lines(data[:end], bytes.splitlines)
    return None if rows is None else len(rows)


def _check_scan(data: bytes, path: Path) -> None:
    path.write_bytes(data)
    expected = _expected_nodes(data)
    try:
        scanned = scan_output(path)
    except TaskError as exc:
        assert_task_error(exc)
        assert str(path) in str(exc)
        assert expected is None, f"a resumable output was refused: {data!r}: {exc}"
        return
    assert expected is not None, f"an invalid output was accepted: {data!r}"
    assert scanned.torn_bytes == len(data) - (data.rfind(b"\n") + 1)
    assert len(scanned.nodes) == expected
    for node in scanned.nodes:
        assert_record_ok(node.record)
        assert isinstance(node.id, int) and node.id > 0
        assert isinstance(node.depth, int) and isinstance(node.chain, int)
        assert node.parent is None or isinstance(node.parent, int)


@FUZZ
@given(data=OUTPUT_CONTENT)
def test_scan_output_never_raises_anything_but_task_error(data, fuzz_dir):
    """Well-formed or absent `meta`; a broken `meta` is a TaskError (below)."""
    _check_scan(data, fuzz_dir / "out.jsonl")


def test_scan_output_of_a_missing_file_is_empty(tmp_path):
    scanned = scan_output(tmp_path / "none.jsonl")
    assert scanned.nodes == [] and scanned.torn_bytes == 0


BAD_META = [{"id": "x"}, {"id": None}, {"depth": "deep"}, {"chain": [0]},
            {"id": 1, "parent": [1]}, {"id": "1.5"}]


@pytest.mark.parametrize("meta", BAD_META, ids=lambda m: json.dumps(m))
def test_a_broken_meta_is_a_task_error(meta, tmp_path):
    line = {"question": "Is it?", "context": None, "options": ["True", "False"], "label": "True",
            "meta": meta}
    path = tmp_path / "out.jsonl"
    path.write_bytes(orjson.dumps(line) + b"\n")
    try:
        scanned = scan_output(path)
    except TaskError as exc:
        assert_task_error(exc)
        return
    node = scanned.nodes[0]  # accepted: then the meta it keeps must be usable
    assert isinstance(node.id, int) and isinstance(node.depth, int)
    assert isinstance(node.chain, int)
    assert node.parent is None or isinstance(node.parent, int)
