"""The reply parser: tolerant of layout, strict about content (property-based + examples)."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from creator.parse import (
    ANSWER_NOT_IN_OPTIONS,
    DUPLICATE,
    ECHO,
    EMPTY_REPLY,
    MALFORMED,
    NO_JSON,
    OPTIONS_CHANGED,
    OPTIONS_COUNT,
    parse_reply,
    question_key,
)
from creator.task import TaskFormat

YES_NO = TaskFormat(yes_no=True, num_options=2, has_context=False)
YES_NO_CTX = TaskFormat(yes_no=True, num_options=2, has_context=True)
MC3 = TaskFormat(yes_no=False, num_options=3, has_context=False)
FORMATS = [YES_NO, YES_NO_CTX, MC3, TaskFormat(False, 5, False), TaskFormat(False, 2, True)]


def yn(q: str, a: str = "True") -> dict:
    return {"Options": ["True", "False"], "Answer": a, "Question": q}


def mc(q: str, opts=("a", "b", "c"), a: str = "b") -> dict:
    return {"Question": q, "Options": list(opts), "Answer": a}


def blank_lines(objs) -> str:
    return "\n\n".join(json.dumps(o) for o in objs)


# --- layouts -------------------------------------------------------------------------------------

LAYOUTS = {
    "blank_lines": blank_lines,
    "array": lambda objs: json.dumps(objs, indent=2),
    "json_lines": lambda objs: "\n".join(json.dumps(o) for o in objs),
    "code_fence": lambda objs: "Here you go:\n```json\n" + json.dumps(objs) + "\n```\n",
    "numbered": lambda objs: "\n".join(f"{i}. {json.dumps(o)}" for i, o in enumerate(objs, 1)),
    "wrapper": lambda objs: json.dumps({"examples": objs}),
    "pretty_blank": lambda objs: "\n\n".join(json.dumps(o, indent=4) for o in objs),
}


def test_every_layout_gives_every_object():
    objs = [yn("Is ice cold?"), yn("Is fire wet?", "False"), yn("Can fish swim?")]
    for name, render in LAYOUTS.items():
        result = parse_reply(render(objs), YES_NO, set())
        assert [r.question for r in result.records] == [o["Question"] for o in objs], name
        assert not result.rejected, name


def test_wrong_number_of_objects_keeps_the_valid_ones():
    text = blank_lines([mc("Q1?"), mc("Q2?", opts=("x", "y")), mc("Q3?", a="zzz")])
    result = parse_reply(text, MC3, set())
    assert [r.question for r in result.records] == ["Q1?"]
    assert result.rejected == {OPTIONS_COUNT: 1, ANSWER_NOT_IN_OPTIONS: 1}


def test_yes_no_options_must_match_and_answers_normalise():
    text = blank_lines([
        {"Options": ["Yes", "No"], "Answer": "Yes", "Question": "A?"},
        {"options": ["True", "False"], "answer": False, "question": "B?"},
        {"Options": ["True", "False"], "Answer": "true", "Question": "C?"},
    ])
    result = parse_reply(text, YES_NO, set())
    assert [(r.question, r.label) for r in result.records] == [("B?", "False"), ("C?", "True")]
    assert result.rejected == {OPTIONS_CHANGED: 1}


def test_duplicates_and_echoes_are_rejected_case_and_space_insensitively():
    seen = {question_key("Old  question?")}
    text = blank_lines([yn("old question?"), yn("The EXEMPLAR?"), yn("New?"), yn("new? ")])
    result = parse_reply(text, YES_NO, seen, {question_key("the exemplar?")})
    assert [r.question for r in result.records] == ["New?"]
    assert result.rejected == {DUPLICATE: 2, ECHO: 1}
    assert seen == {question_key("Old question?")}  # the caller adds what it keeps


def test_empty_garbage_and_truncated_replies_are_counted():
    assert parse_reply("", YES_NO, set()).rejected == {EMPTY_REPLY: 1}
    assert parse_reply("Sorry, I cannot help.", YES_NO, set()).rejected == {NO_JSON: 1}
    truncated = json.dumps(yn("Whole?")) + "\n\n" + json.dumps(yn("Cut?"))[:25]
    result = parse_reply(truncated, YES_NO, set())
    assert [r.question for r in result.records] == ["Whole?"]
    assert result.rejected == {MALFORMED: 1}


def test_context_is_kept_for_open_book_and_dropped_otherwise():
    obj = {**yn("Q?"), "Context": " A passage. "}
    assert parse_reply(json.dumps(obj), YES_NO_CTX, set()).records[0].context == "A passage."
    assert parse_reply(json.dumps(obj), YES_NO, set()).records[0].context is None


# --- properties ----------------------------------------------------------------------------------

def normalised(question: str) -> str:
    """The dedup rule, written out here so that a bug in creator's question_key cannot hide."""
    return " ".join(question.split()).casefold()


@given(st.text(max_size=40))
def test_question_key_is_the_dedup_rule(question):
    assert question_key(question) == normalised(question)


def assert_valid(result, fmt, seen, echoes):
    keys = set()
    for record in result.records:
        key = normalised(record.question)
        assert record.question.strip()
        assert key not in seen and key not in echoes and key not in keys
        keys.add(key)
        assert len(record.options) == fmt.num_options
        if fmt.yes_no:
            assert record.options == ("True", "False")
        assert record.label in record.options
        assert fmt.has_context or record.context is None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(
        st.sampled_from(["Question", "question", "Options", "Answer", "Context", "x"]),
        inner,
        max_size=5,
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=400), fmt=st.sampled_from(FORMATS))
def test_arbitrary_text_never_crashes_and_accepts_only_valid(text, fmt):
    seen = {question_key("seen?")}
    result = parse_reply(text, fmt, seen, {question_key("echo?")})
    assert_valid(result, fmt, seen, {question_key("echo?")})


@settings(max_examples=300, deadline=None)
@given(values=st.lists(json_values, max_size=6), fmt=st.sampled_from(FORMATS),
       noise=st.text(alphabet="abc .\n:-", max_size=20))
def test_arbitrary_json_never_crashes_and_accepts_only_valid(values, fmt, noise):
    text = noise.join(json.dumps(v) for v in values)
    result = parse_reply(text, fmt, set())
    assert_valid(result, fmt, set(), set())


example_objects = st.builds(
    lambda q, opts, i: mc(q, opts, opts[i % len(opts)]),
    st.text(min_size=1, max_size=30).filter(lambda s: s.strip()),
    st.lists(st.text(min_size=1, max_size=10).filter(lambda s: s.strip()),
             min_size=3, max_size=3, unique_by=question_key),
    st.integers(0, 2),
)


@settings(max_examples=200, deadline=None)
@given(objs=st.lists(example_objects, min_size=1, max_size=6, unique_by=lambda o:
                     question_key(o["Question"])),
       layout=st.sampled_from(sorted(LAYOUTS)))
def test_valid_objects_survive_any_layout(objs, layout):
    result = parse_reply(LAYOUTS[layout](objs), MC3, set())
    assert [r.question for r in result.records] == [o["Question"].strip() for o in objs]
    assert [r.label for r in result.records] == [o["Answer"].strip() for o in objs]
