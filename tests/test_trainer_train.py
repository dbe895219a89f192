"""End-to-end training on the benchmark data (../shared/data), sized for 2 CPU cores.

No accuracy claims: a few hundred examples and one or two epochs only show that the loss goes down,
that every dev example is evaluated, and that multi-process runs and resumed runs agree.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from trainer_helpers import (
    QUICK,
    data_dir,
    metrics_of,
    quarter_means,
    read_jsonl,
    require_default_model,
    run_trainer,
    trainer_command,
    trainer_env,
    write_jsonl,
)

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def default_model():
    require_default_model()


def common(format_dir: str, name: str, output_dir, extra: str = "") -> list[str]:
    """Quick training arguments for one dataset, plus `extra` flags (a string, split on spaces);
    without output_dir for the sweep, which sets it."""
    output = [] if output_dir is None else ["--output_dir", str(output_dir)]
    folder = ["--data_dir", str(data_dir(format_dir, name)), "--data_name", name]
    return folder + output + QUICK + extra.split()


def assert_succeeded(result) -> None:
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr


def test_yes_no_with_context_lowers_the_loss_and_evaluates_every_dev_example(tmp_path):
    """BioASQ (open-book: question paired with a passage), from a created-style --train_file."""
    folder = data_dir("yesno_open", "bioasq") / "bioasq"
    human = read_jsonl(folder / "train.jsonl")[:200]
    # created files carry "True"/"False" strings, human ones booleans: mix both, plus one bad label
    created = [
        dict(record, label=str(record["label"])) if i % 2 else record
        for i, record in enumerate(human)
    ] + [dict(human[0], label="Maybe")]
    train_file = write_jsonl(tmp_path / "train_tree.jsonl", created)
    output = tmp_path / "out"

    extra = f"--setting tree --train_file {train_file} --learning_rate 1e-4"
    result = run_trainer(common("yesno_open", "bioasq", output, extra))

    assert_succeeded(result)
    assert "warning: skipped 1 of 201 records" in result.stderr
    metrics = metrics_of(output)
    assert metrics["format"] == "yesno" and metrics["finished"]
    assert metrics["train_examples"] == 200 and metrics["skipped_examples"]["train"] == 1
    assert metrics["dev_examples"] == len(read_jsonl(folder / "dev.jsonl"))
    assert metrics["test_examples"] == len(read_jsonl(folder / "test.jsonl"))
    first, last = quarter_means(metrics["loss_curve"])
    assert last < first
    assert 0 <= metrics["dev_acc"] <= 1 and metrics["test_acc"] is not None
    assert metrics["train_seconds"] > 0 and metrics["examples_per_second"] > 0
    predictions = read_jsonl(output / "predictions.jsonl")
    assert [row["index"] for row in predictions] == list(range(metrics["test_examples"]))
    assert {row["prediction"] for row in predictions} <= {"True", "False"}
    assert (output / "best_model" / "config.json").is_file()


def test_multiple_choice_lowers_the_loss_and_evaluates_every_dev_example(tmp_path):
    """CommonsenseQA, 5 options: 200 examples, 2 epochs (one is too few for a visible change)."""
    output = tmp_path / "out"
    extra = (
        "--max_train_examples 200 --max_eval_examples 60 --num_train_epochs 2 --learning_rate 2e-4"
    )
    result = run_trainer(common("mcqa_5", "csqa", output, extra))

    assert_succeeded(result)
    metrics = metrics_of(output)
    assert (metrics["format"], metrics["num_options"]) == ("mcqa", 5)
    assert metrics["dev_examples"] == 60 and metrics["test_examples"] == 60
    assert [entry["dev_examples"] for entry in metrics["history"]] == [60, 60]
    first, last = quarter_means(metrics["loss_curve"])
    assert last < first - 0.02
    assert metrics["history"][1]["train_loss"] < metrics["history"][0]["train_loss"]
    assert metrics["best_epoch"] in (1, 2)


def test_two_processes_evaluate_the_same_examples_as_one(tmp_path):
    """torchrun, two gloo processes on the CPU; 101 dev examples do not split evenly in two."""
    extra = "--max_train_examples 64 --max_eval_examples 101"
    single = run_trainer(common("yesno_close", "strategyqa", tmp_path / "one", extra))
    two_processes = common("yesno_close", "strategyqa", tmp_path / "two", extra)
    double = run_trainer(two_processes, processes=2, threads=1, timeout=300)

    assert_succeeded(single)
    assert_succeeded(double)
    one, two = metrics_of(tmp_path / "one"), metrics_of(tmp_path / "two")
    assert (one["num_processes"], two["num_processes"]) == (1, 2)
    assert two["distributed_type"] == "MULTI_CPU"  # gloo data parallelism, not two lone processes
    assert one["dev_examples"] == two["dev_examples"] == 101
    assert one["test_examples"] == two["test_examples"] == 101
    indices = [row["index"] for row in read_jsonl(tmp_path / "two" / "predictions.jsonl")]
    assert indices == list(range(101))
    # each update sees twice the examples, so there are half as many
    assert len(two["loss_curve"]) == len(one["loss_curve"]) // 2


def test_resume_after_a_crash_matches_an_uninterrupted_run(tmp_path):
    extra = (
        "--max_train_examples 96 --max_eval_examples 32 --num_train_epochs 2 --learning_rate 1e-4"
    )
    whole = tmp_path / "whole"
    assert_succeeded(run_trainer(common("yesno_close", "strategyqa", whole, extra)))

    crashed = tmp_path / "crashed"
    command = trainer_command(common("yesno_close", "strategyqa", crashed, extra))
    with subprocess.Popen(
        command,
        env=trainer_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    ) as process:
        first_checkpoint = crashed / "checkpoints" / "epoch_1" / "trainer_state.json"
        deadline = time.monotonic() + 240
        while not first_checkpoint.is_file() and process.poll() is None:
            assert time.monotonic() < deadline, "no checkpoint after epoch 1"
            time.sleep(0.05)
        assert process.poll() is None, "the run ended before it could be crashed"
        os.killpg(process.pid, signal.SIGKILL)  # crash during epoch 2
    assert first_checkpoint.is_file()
    # the crash landed mid-run: epoch 2 neither checkpointed nor reported as finished
    assert not (crashed / "checkpoints" / "epoch_2").exists()
    assert not (crashed / "metrics.json").is_file() or not metrics_of(crashed)["finished"]

    resume = extra + " --resume_from_checkpoint latest"
    resumed = run_trainer(common("yesno_close", "strategyqa", crashed, resume))

    assert_succeeded(resumed)
    assert "resumed from" in resumed.stdout + resumed.stderr
    expected, got = metrics_of(whole), metrics_of(crashed)
    assert got["epochs_run"] == 2 and len(got["history"]) == 2
    assert got["loss_curve"] == pytest.approx(expected["loss_curve"], abs=1e-3)
    assert [h["dev_acc"] for h in got["history"]] == [h["dev_acc"] for h in expected["history"]]
    assert (got["dev_acc"], got["test_acc"]) == (expected["dev_acc"], expected["test_acc"])
    assert sorted(p.name for p in (crashed / "checkpoints").iterdir()) == ["epoch_2"]


def test_sweep_keeps_the_best_dev_run_and_reruns_nothing(tmp_path):
    sweep = f"-m trainer sweep --output_dir {tmp_path} --learning_rates 1e-4 3e-5".split()
    quick = common(
        "yesno_close", "strategyqa", None, "--max_train_examples 32 --max_eval_examples 16"
    )
    command = [sys.executable, *sweep, *quick]
    result = subprocess.run(command, env=trainer_env(), capture_output=True, text=True, timeout=300)

    assert_succeeded(result)
    summary = json.loads((tmp_path / "sweep.json").read_text())
    assert [run["learning_rate"] for run in summary["runs"]] == [3e-5, 1e-4]
    assert summary["best"]["dev_acc"] == max(run["dev_acc"] for run in summary["runs"])
    assert len((tmp_path / "sweep.md").read_text().splitlines()) == 4
    assert metrics_of(tmp_path / "lr_0.0001")["finished"]

    again = subprocess.run(command, env=trainer_env(), capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and again.stderr.count("already done") == 2
