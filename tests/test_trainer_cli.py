"""The trainer's command line: paper defaults, and bad input -> one line on stderr, exit code 2."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from trainer_helpers import DATA, run_trainer, write_jsonl

from trainer.cli import parse_config, parse_sweep_args
from trainer.results import SweepRun
from trainer.sweeping import run_command, summarise, table

GOOD = {"question": "Pick", "context": None, "options": ["a", "b", "c"], "label": "a"}


def test_defaults_are_the_papers():
    config = parse_config(["--data_dir", "d", "--data_name", "n", "--output_dir", "o"])
    assert (config.num_train_epochs, config.max_seq_length) == (10, 256)
    assert (config.per_device_train_batch_size, config.gradient_accumulation_steps) == (4, 16)
    assert (config.weight_decay, config.warmup_steps, config.setting) == (0.01, 100, "original")
    assert config.model is None  # resolved to the packaged MiniLM by trainer.train


def dataset(tmp_path: Path, train=None, dev=(GOOD,)) -> list[str]:
    folder = tmp_path / "mcqa_3" / "toy"
    folder.mkdir(parents=True, exist_ok=True)
    if train is not None:
        write_jsonl(folder / "train.jsonl", list(train))
    if dev is not None:
        write_jsonl(folder / "dev.jsonl", list(dev))
    return [
        "--data_dir",
        str(tmp_path / "mcqa_3"),
        "--data_name",
        "toy",
        "--output_dir",
        str(tmp_path / "out"),
    ]


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("trainer: error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize(
    "train, fragments",
    [
        (None, ["no train file"]),
        ([], ["train file is empty"]),
        (
            [dict(GOOD, label="z"), dict(GOOD, label="y")],
            ["none of the 2 records", "among its options"],
        ),
        ([GOOD, dict(GOOD, options=["a", "b"])], ["train.jsonl:2", "2 options, expected 3"]),
    ],
)
def test_bad_train_data_is_one_line_and_exit_2(tmp_path, train, fragments):
    assert_one_line_error(run_trainer(dataset(tmp_path, train)), *fragments)


def test_wrong_options_count_in_dev(tmp_path):
    result = run_trainer(dataset(tmp_path, train=[GOOD], dev=[dict(GOOD, options=list("abcd"))]))
    assert_one_line_error(result, "dev.jsonl:1", "4 options, expected 3")


def test_missing_setting_file_and_dataset(tmp_path):
    args = dataset(tmp_path, train=[GOOD]) + ["--setting", "tree"]
    assert_one_line_error(run_trainer(args), "no train file", "train_tree.jsonl")
    args = [
        "--data_dir",
        str(tmp_path),
        "--data_name",
        "nothing",
        "--output_dir",
        str(tmp_path / "o"),
    ]
    assert_one_line_error(run_trainer(args), "no dataset folder")


def test_real_dataset_without_a_train_split(tmp_path):
    if not (DATA / "mcqa_2" / "piqa" / "dev.jsonl").is_file():
        pytest.skip("benchmark data not found")
    args = [
        "--data_dir",
        str(DATA / "mcqa_2"),
        "--data_name",
        "piqa",
        "--output_dir",
        str(tmp_path),
    ]
    assert_one_line_error(run_trainer(args), "no train file", "piqa/train.jsonl")


def test_unknown_model_is_one_line_and_exit_2(tmp_path):
    args = dataset(tmp_path, train=[GOOD])
    missing_folder = run_trainer(args + ["--model", str(tmp_path / "no_such_model")])
    assert_one_line_error(missing_folder, "no model folder")
    # a hub name while offline (tests run with HF_HUB_OFFLINE=1)
    assert_one_line_error(
        run_trainer(args + ["--model", "no-such-org/no-such-model"], timeout=120),
        "not in the local Hugging Face cache",
    )


def test_bad_resume_path(tmp_path):
    args = dataset(tmp_path, train=[GOOD]) + ["--resume_from_checkpoint", str(tmp_path)]
    assert_one_line_error(run_trainer(args, timeout=120), "not a complete checkpoint")


def test_malformed_command_line_exits_2(tmp_path):
    cases = [(["--setting", "bogus"], "invalid choice"), (["--learning_rate", "-1"], "must be greater than 0"),
             (["--max_seq_length", "abc"], "expected a whole number, got 'abc'"),
             (["--epochs", "3"], "unrecognized arguments: --epochs")]
    for extra, fragment in cases:
        result = run_trainer(dataset(tmp_path, train=[GOOD]) + extra)
        assert_one_line_error(result, fragment, "(see trainer --help)")


def test_sweep_arguments(tmp_path):
    args, passed = parse_sweep_args(
        [
            "--output_dir",
            str(tmp_path),
            "--data_dir",
            "d",
            "--data_name",
            "n",
            "--num_train_epochs",
            "1",
        ]
    )
    assert args.learning_rates == (5e-6, 1e-5, 2e-5) and args.output_dir == tmp_path
    assert (passed["data_dir"], passed["data_name"], passed["num_train_epochs"]) == (Path("d"), "n", 1)
    assert "learning_rate" not in passed and "output_dir" not in passed
    with pytest.raises(SystemExit):
        parse_sweep_args(
            ["--output_dir", "o", "--data_dir", "d", "--data_name", "n", "--learning_rate", "1e-5"]
        )
    with pytest.raises(SystemExit):  # the passed-through arguments are checked up front
        parse_sweep_args(["--output_dir", "o", "--data_dir", "d", "--data_name", "n", "--bogus"])
    with pytest.raises(SystemExit):
        parse_sweep_args(["--output_dir", "o", "--learning_rates", "-1e-5", "--data_dir", "d",
                          "--data_name", "n"])


def test_sweep_commands_and_table():
    plain = run_command("", ["--data_name", "n"], 1e-5, Path("out/lr_1e-05"))
    assert plain[:3] == [sys.executable, "-m", "trainer"]
    assert plain[-4:] == ["--learning_rate", "1e-05", "--output_dir", "out/lr_1e-05"]
    launched = run_command("torchrun --nproc_per_node 2", [], 2e-5, Path("o"))
    assert launched[:5] == ["torchrun", "--nproc_per_node", "2", "-m", "trainer"]

    rows = [
        SweepRun(lr, acc, None, 1, 10, 1.0, 10.0, Path(f"out/lr_{lr:g}"))
        for lr, acc in ((2e-5, 0.7), (5e-6, 0.7), (1e-5, 0.6))
    ]
    summary = summarise(rows, ["--data_name", "n"])
    assert [row.learning_rate for row in summary.runs] == [5e-6, 1e-5, 2e-5]
    assert summary.best.learning_rate == 5e-6  # a tie goes to the lower rate
    lines = table(summary).splitlines()
    assert len(lines) == 5 and lines[2].startswith("| 5e-06 * | 0.7 | - |")
    assert summary.to_json()["best"] == summary.to_json()["runs"][0]
    assert type(summary).from_json(summary.to_json()) == summary
