"""Trainer data handling: format detection, validation (creator.records' rule and reason codes),
paths, encoding, metrics (the TrainResult schema) and checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from trainer_helpers import write_jsonl

from trainer.checkpoint import (
    STATE_FILE,
    TrainerState,
    check_same_data,
    latest_checkpoint,
    resolve_resume,
)
from trainer.config import TrainConfig
from trainer.data import (
    MULTIPLE_CHOICE,
    YES_NO,
    Example,
    detect_format,
    load_task,
    parse_record,
    skipped_warnings,
    text_pair,
)
from trainer.errors import InputError
from trainer.metrics import accuracy, build_metrics, prediction_rows
from trainer.results import TrainResult


def yes_no(question="Is water wet?", label=True, context=None, options=("True", "False")):
    return {"question": question, "context": context, "options": list(options), "label": label}


def choice(question="Pick one", options=("a", "b", "c"), label="b"):
    return {"question": question, "context": None, "options": list(options), "label": label}


def config_for(tmp_path: Path, **overrides) -> TrainConfig:
    return TrainConfig(
        data_dir=tmp_path, data_name="toy", output_dir=tmp_path / "out", model="m", **overrides
    )


def test_format_comes_from_the_options():
    assert detect_format(yes_no()) == (YES_NO, 2)
    assert detect_format(yes_no(options=("False", "True"))) == (YES_NO, 2)
    assert detect_format(choice(options=("a", "b", "c", "d", "e"))) == (MULTIPLE_CHOICE, 5)
    with pytest.raises(InputError):
        detect_format({"question": "q", "options": ["only"], "label": "only"})


@pytest.mark.parametrize(
    "label, index",
    [(True, 0), (False, 1), ("True", 0), ("False", 1), ("true", 0), (" FALSE ", 1)],
)
def test_yes_no_labels_are_booleans_or_the_words(label, index):
    """Created files carry JSON booleans now, older ones the strings: both read the same."""
    assert parse_record(yes_no(label=label), YES_NO, 2, "x").label == index


def test_yes_no_options_in_any_case_and_order_are_fixed_to_true_false():
    assert detect_format(yes_no(options=("true", "FALSE"))) == (YES_NO, 2)
    # whatever order a record lists its options in, index 0 means True
    reversed_options = parse_record(yes_no(label=False, options=("False", "True")), YES_NO, 2, "x")
    assert reversed_options.options == ("True", "False") and reversed_options.label == 1
    lower = parse_record(yes_no(label="true", options=("false", "true")), YES_NO, 2, "x")
    assert lower.options == ("True", "False") and lower.label == 0


def test_multiple_choice_labels_are_matched_as_written():
    record = choice(options=("true", "false", "maybe"), label="true")
    assert parse_record(record, MULTIPLE_CHOICE, 3, "x").label == 0


def test_label_outside_the_options_is_skipped_not_fatal():
    assert parse_record(yes_no(label="Maybe"), YES_NO, 2, "x") is None
    assert parse_record(choice(label="z"), MULTIPLE_CHOICE, 3, "x") is None
    assert parse_record(choice(label=" b"), MULTIPLE_CHOICE, 3, "x") is None  # as written


@pytest.mark.parametrize(
    "record, message",
    [
        (choice(options=("a", "b")), "2 options, expected 3"),
        (choice(options=("a", "b"), label="z"), "2 options, expected 3"),  # not merely skipped
        ({"context": None, "options": ["a", "b", "c"], "label": "a"}, "missing field.s. question"),
        ({"question": "q", "options": ["a", "b", "c"]}, "missing field.s. label"),
        ({"question": "q", "options": "a,b,c", "label": "a"}, "'options' must be a list"),
        ({"question": " ", "options": ["a", "b", "c"], "label": "a"}, "'question' must be"),
        (choice(label=3), "label must be a string or a boolean, got int"),
        (yes_no(label=1), "label must be a string or a boolean, got int"),
        (dict(choice(), context=["a"]), "'context' must be a string or null"),
        (["a", "b"], "expected a JSON object"),
    ],
)
def test_records_of_the_wrong_shape_are_errors_that_say_where(record, message):
    with pytest.raises(InputError, match=f"^file:7: .*{message}"):
        parse_record(record, MULTIPLE_CHOICE, 3, "file:7")


def test_yes_no_record_with_other_options_is_an_error():
    with pytest.raises(InputError, match="yes/no"):
        parse_record(yes_no(label="Yes", options=("Yes", "No")), YES_NO, 2, "file:1")
    with pytest.raises(InputError, match="^file:1: "):  # a boolean label fits only True/False
        parse_record(yes_no(label=True, options=("Yes", "No")), YES_NO, 2, "file:1")


def test_text_pairs():
    plain = Example("Q?", None, ("a", "b"), 0)
    with_context = Example("Q?", "Long passage.", ("a", "b"), 0)
    assert text_pair(plain) == ("Q?", None)
    assert text_pair(with_context) == ("Q?", "Long passage.")
    assert text_pair(plain, "a") == ("Q?", "a")
    # the context goes first so that truncation cuts it, never the option
    assert text_pair(with_context, "b") == ("Long passage.", "Q? b")


def test_settings_name_their_train_files(tmp_path):
    assert config_for(tmp_path).train_path == tmp_path / "toy" / "train.jsonl"
    assert config_for(tmp_path, setting="tree").train_path == tmp_path / "toy" / "train_tree.jsonl"
    chosen = tmp_path / "created.jsonl"
    assert config_for(tmp_path, setting="naive", train_file=chosen).train_path == chosen


def test_load_task_counts_skips_limits_and_notes_a_missing_test(tmp_path):
    records = [yes_no(f"q{i}", label=i % 2 == 0) for i in range(10)] + [
        yes_no("bad", label="Maybe")
    ]
    write_jsonl(tmp_path / "toy" / "train.jsonl", records)
    write_jsonl(tmp_path / "toy" / "dev.jsonl", [yes_no("d", label="False")] * 3)
    task = load_task(config_for(tmp_path, max_train_examples=4))
    assert (task.format, task.num_options) == (YES_NO, 2)
    assert [example.question for example in task.train.examples] == ["q0", "q1", "q2", "q3"]
    assert (task.train.skipped, task.train.total) == (1, 11)
    assert len(task.dev.examples) == 3 and task.test is None
    assert skipped_warnings(task) == [
        f"skipped 1 of 11 records of {tmp_path / 'toy' / 'train.jsonl'} whose label is not among "
        "their options"
    ]


@pytest.mark.parametrize(
    "train, dev, message",
    [
        (None, [choice()], "no train file"),
        ([], [choice()], "train file is empty"),
        ([choice(label="z")] * 2, [choice()], "none of the 2 records"),
        ([choice()], [choice(options=("a", "b", "c", "d"))], "4 options, expected 3"),
        ([choice()], None, "no dev file"),
        ([yes_no()], [choice()], "yes/no"),
    ],
)
def test_load_task_errors(tmp_path, train, dev, message):
    folder = tmp_path / "toy"
    folder.mkdir()
    if train is not None:
        write_jsonl(folder / "train.jsonl", train)
    if dev is not None:
        write_jsonl(folder / "dev.jsonl", dev)
    with pytest.raises(InputError, match=message):
        load_task(config_for(tmp_path))


def test_invalid_json_names_the_line(tmp_path):
    folder = tmp_path / "toy"
    folder.mkdir()
    (folder / "train.jsonl").write_text(json.dumps(choice()) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"train.jsonl:2: not valid JSON"):
        load_task(config_for(tmp_path))
    (folder / "train.jsonl").write_text("[1, 2]\n" + json.dumps(choice()) + "\n")
    with pytest.raises(InputError, match=r"train.jsonl:1: expected a JSON object"):
        load_task(config_for(tmp_path))


@pytest.mark.parametrize("label_form", ["boolean", "string"])
def test_created_yes_no_files_with_boolean_or_string_labels_load_alike(tmp_path, label_form):
    """creator.records writes JSON booleans; files created before it wrote "True"/"False"."""
    from creator.records import Record, record_line

    records = [Record(f"q{i}?", None, ("True", "False"), "True" if i % 3 else "False")
               for i in range(6)]
    lines = [record_line(record, {"id": i}).decode() for i, record in enumerate(records)]
    if label_form == "string":
        lines = [line.replace('"label":true', '"label":"True"')
                 .replace('"label":false', '"label":"False"') for line in lines]
    assert ('"label":true' in lines[1]) == (label_form == "boolean")
    folder = tmp_path / "toy"
    folder.mkdir()
    (folder / "train_tree.jsonl").write_text("".join(lines))
    write_jsonl(folder / "dev.jsonl", [yes_no()])
    task = load_task(config_for(tmp_path, setting="tree"))
    assert task.format == YES_NO
    assert [example.label for example in task.train.examples] == [1, 0, 0, 1, 0, 0]


def test_encoding_and_padding():
    from trainer_helpers import require_default_model

    require_default_model()
    from transformers import AutoTokenizer

    from creator.assets import minilm_dir
    from trainer.encode import PadCollator, encode

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir(), local_files_only=True)
    collate = PadCollator(tokenizer.pad_token_id)
    choices = [
        Example("Where do fish live?", None, ("water", "a very long answer about trees"), 0),
        Example("Sky colour?", "Some context.", ("blue", "green"), 1),
    ]
    batch = collate(encode(tokenizer, choices, MULTIPLE_CHOICE, max_length=12))
    assert batch["input_ids"].shape[:2] == (2, 2) and batch["input_ids"].shape[2] <= 12
    assert batch["labels"].tolist() == [0, 1] and batch["index"].tolist() == [0, 1]
    padded = batch["attention_mask"] == 0
    assert (batch["input_ids"][padded] == tokenizer.pad_token_id).all()

    questions = [
        Example("Is it?", None, ("True", "False"), 0),
        Example("Is it so?", "Because of the passage.", ("True", "False"), 1),
    ]
    batch = collate(encode(tokenizer, questions, YES_NO, max_length=64))
    assert batch["input_ids"].dim() == 2 and batch["labels"].tolist() == [0, 1]
    # the second row holds both texts: two [SEP] tokens
    assert (batch["input_ids"][1] == tokenizer.sep_token_id).sum() == 2
    assert (
        PadCollator(0, pad_to_multiple_of=8)(encode(tokenizer, questions, YES_NO, 64))[
            "input_ids"
        ].shape[1]
        % 8
        == 0
    )


def test_accuracy_and_prediction_rows(tmp_path):
    assert accuracy([0, 1, 1], [0, 1, 0]) == pytest.approx(2 / 3)
    from trainer.data import Split

    split = Split(
        "test",
        Path("t.jsonl"),
        (Example("a", None, ("x", "y"), 0), Example("b", None, ("x", "y"), 1)),
        0,
        2,
    )
    rows = prediction_rows(split, indices=[1, 0], predictions=[1, 1])
    assert [row["index"] for row in rows] == [0, 1]
    assert rows[0] == {
        "index": 0,
        "question": "a",
        "label": "x",
        "prediction": "y",
        "correct": False,
    }


def test_metrics_have_the_promised_keys(tmp_path):
    write_jsonl(tmp_path / "toy" / "train.jsonl", [yes_no()])
    write_jsonl(tmp_path / "toy" / "dev.jsonl", [yes_no()])
    config = config_for(tmp_path)
    state = TrainerState(
        epochs_done=1,
        best_epoch=1,
        best_dev_acc=0.5,
        train_seconds=2.0,
        examples_trained=10,
        dev_examples=1,
    )
    result = build_metrics(
        config,
        load_task(config),
        state,
        finished=True,
        num_processes=1,
        distributed_type="NO",
        device="cpu",
        mixed_precision="no",
    )
    assert isinstance(result, TrainResult) and result.examples_per_second == 5.0
    metrics = result.to_json()
    for key in (
        "dev_acc",
        "test_acc",
        "best_epoch",
        "train_examples",
        "train_seconds",
        "examples_per_second",
    ):
        assert key in metrics
    assert metrics["test_acc"] is None and metrics["examples_per_second"] == 5.0
    assert metrics["config"]["data_dir"] == str(tmp_path)
    # serialisable, and back again
    assert TrainResult.from_json(json.loads(json.dumps(metrics))) == result


def test_only_complete_checkpoints_are_resumed(tmp_path):
    checkpoints = tmp_path / "checkpoints"
    for epoch, complete in ((1, True), (2, True), (3, False)):
        (checkpoints / f"epoch_{epoch}").mkdir(parents=True)
        if complete:
            (checkpoints / f"epoch_{epoch}" / STATE_FILE).write_text("{}")
    assert latest_checkpoint(tmp_path) == checkpoints / "epoch_2"
    assert resolve_resume("latest", tmp_path) == checkpoints / "epoch_2"
    assert resolve_resume(None, tmp_path) is None
    with pytest.raises(InputError, match="not a complete checkpoint"):
        resolve_resume(str(checkpoints / "epoch_3"), tmp_path)
    with pytest.raises(InputError, match="no complete checkpoint"):
        resolve_resume("latest", tmp_path / "elsewhere")


def test_resuming_on_other_data_is_refused(tmp_path):
    signature = {"train_file": "/d/train.jsonl", "train_examples": 10, "format": "yesno"}
    (tmp_path / STATE_FILE).write_text(json.dumps({"epochs_done": 1, "data": signature}))
    check_same_data(tmp_path, signature)
    with pytest.raises(InputError, match="train_examples 10 there, 20 now"):
        check_same_data(tmp_path, signature | {"train_examples": 20})
