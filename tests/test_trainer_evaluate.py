"""`trainer evaluate`: a finished run's best model scored on its own and other datasets, as real
processes on real data (skips without ../shared/data), one and two processes; bad input is one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainer_helpers import QUICK, data_dir, metrics_of, require_default_model, run_trainer

EVAL_LIMIT = 24  # examples per split: small, and odd batches for two processes


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> tuple[Path, Path]:
    """One short StrategyQA run: (its output folder, the yes/no format folder)."""
    require_default_model()
    yesno = data_dir("yesno_close", "strategyqa")
    out = tmp_path_factory.mktemp("evaluate") / "run"
    result = run_trainer(["--data_dir", str(yesno), "--data_name", "strategyqa", "--output_dir",
                          str(out), "--max_train_examples", "32", "--max_eval_examples",
                          str(EVAL_LIMIT), *QUICK, "--per_device_eval_batch_size", "5"])
    assert result.returncode == 0, result.stderr[-3000:]
    return out, yesno


def _evaluation(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _one_line_error(result, *fragments: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("trainer: error: ")]
    assert len(errors) == 1, result.stderr[-3000:]
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


@pytest.mark.parametrize("processes", [1, 2])
def test_reproduces_the_run_and_scores_other_datasets(finished_run, tmp_path, processes):
    run_dir, yesno = finished_run
    output = tmp_path / "evaluation.json"
    result = run_trainer(["evaluate", "--run_dir", str(run_dir), "--data_dir", str(yesno),
                          "--data_name", "strategyqa", "creak", "--output", str(output)],
                         processes=processes, threads=1)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics, evaluation = metrics_of(run_dir), _evaluation(output)
    own, other = evaluation["datasets"]["strategyqa"], evaluation["datasets"]["creak"]
    # the run's own splits give back exactly what the trainer reported, with either process count
    assert own["dev"]["acc"] == metrics["dev_acc"] and own["test"]["acc"] == metrics["test_acc"]
    for split in (own["dev"], own["test"], other["dev"], other["test"]):
        assert split["examples"] == EVAL_LIMIT  # no example lost or repeated across processes
        assert 0.0 <= split["acc"] <= 1.0 and 0.5 <= split["majority"] <= 1.0
        assert sum(split["predicted_share"].values()) == EVAL_LIMIT
        assert set(split["predicted_share"]) <= {"True", "False"}
    printed = [line for line in result.stdout.splitlines() if " acc " in line]
    assert len(printed) == 4 and printed[0].startswith("strategyqa dev: acc "), result.stdout


def test_defaults_to_the_runs_own_dataset(finished_run):
    run_dir, _ = finished_run
    result = run_trainer(["evaluate", "--run_dir", str(run_dir)], threads=1)
    assert result.returncode == 0, result.stderr[-3000:]
    evaluation = _evaluation(run_dir / "evaluation.json")
    assert list(evaluation["datasets"]) == ["strategyqa"]
    assert evaluation["datasets"]["strategyqa"]["dev"]["acc"] == metrics_of(run_dir)["dev_acc"]


def test_bad_input_is_one_line(finished_run, tmp_path):
    run_dir, yesno = finished_run
    mcqa = data_dir("mcqa_5", "csqa")
    cases = [
        (["--run_dir", str(tmp_path / "nothing")], ["best_model"]),
        (["--run_dir", str(run_dir), "--data_dir", str(yesno), "--data_name", "no_such"],
         ["no dev.jsonl or test.jsonl"]),
        (["--run_dir", str(run_dir), "--data_dir", str(mcqa), "--data_name", "csqa"], ["csqa"]),
        (["--run_dir", str(run_dir), "--output", str(tmp_path / "missing" / "e.json")],
         ["no folder for output"]),
    ]
    for args, fragments in cases:
        _one_line_error(run_trainer(["evaluate", *args], threads=1), *fragments)
    broken = tmp_path / "broken"
    (broken / "best_model").mkdir(parents=True)
    (broken / "metrics.json").write_text("[1, 2]")
    _one_line_error(run_trainer(["evaluate", "--run_dir", str(broken)], threads=1),
                    "not a trainer's metrics.json")
