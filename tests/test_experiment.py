"""The experiment runner end to end (python -m benchmarks.experiment) against the in-tree simulator:
create with the real creator CLI, train with the real trainer sweep, evaluate in and out of
distribution, write the table, the JSON and the chart; then rerun with --resume_experiment and
check nothing is redone. Tiny sizes, so the whole file stays well under 3 minutes on 2 cores.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from benchmarks.simproc import start_simulator

REPO = Path(__file__).resolve().parent.parent
TRAINER_ARGS = ("--num_train_epochs 1 --max_seq_length 32 --max_eval_examples 24 --warmup_steps 0 "
                "--per_device_train_batch_size 8 --gradient_accumulation_steps 1")


def experiment(*args: str, timeout: float = 200) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "benchmarks.experiment", *args], check=False,
                          cwd=REPO, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_experiment_end_to_end(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with start_simulator(seed=1) as sim:
        args = ["--data_dir", str(shared_data / "yesno_close"), "--data_name", "strategyqa",
                "--settings", "naive", "--target", "24", "--eval_on", "creak",
                "--base_url", sim.base_url, "--learning_rates", "2e-5",
                "--original_examples", "24", "--trainer_args", TRAINER_ARGS, "--out", str(out)]
        proc = experiment(*args)
        assert proc.returncode == 0, proc.stderr[-4000:]
        assert "Traceback" not in proc.stderr, proc.stderr[-4000:]

        data = json.loads((out / "experiment_strategyqa.json").read_text())
        assert data["finished"] is True
        assert data["command"].startswith("python -m benchmarks.experiment ")
        rows = {row["setting"]: row for row in data["rows"]}
        assert list(rows) == ["original", "naive"]
        for setting, row in rows.items():
            assert row["status"] == "ok", row
            assert isinstance(row["dev_acc"], float) and 0 <= row["dev_acc"] <= 1
            assert isinstance(row["test_acc"], float)
            assert isinstance(row["ood_creak_dev"], float) and isinstance(row["ood_creak_test"], float)
            assert row["train_examples"] == 24, setting
            assert row["best_learning_rate"] == 2e-5
            # the out-of-distribution evaluator reproduces the trainer's own accuracy
            assert row["eval_check"]["reproduced"], row["eval_check"]
        naive = rows["naive"]
        summary = naive["creation"]["summary"]
        assert naive["creation"]["created"] == 24 and summary["status"] == "completed"
        assert summary["prompt_tokens"] > 0 and summary["completion_tokens"] > 0
        assert naive["quality"]["majority_label_share"] >= 0.5
        assert 0.5 <= rows["original"]["quality"]["majority_label_share"] <= 1
        majority = data["baseline"]["majority"]
        assert set(majority) == {"strategyqa", "creak"} and majority["creak"]["dev"] >= 0.5

        table = (out / "experiment_strategyqa.md").read_text()
        assert "creak test (OOD)" in table
        for name in ("| original |", "| naive |", "| majority class |"):
            assert name in table
        assert (out / "experiment_strategyqa.png").stat().st_size > 10_000

        # The same command with --resume_experiment reuses the creation, the runs and the evaluations.
        again = experiment(*args, "--resume_experiment", timeout=90)
        assert again.returncode == 0, again.stderr[-4000:]
        assert "creation already completed" in again.stderr
        assert "already done" in (out / "logs" / "train_naive.log").read_text()
        assert "evaluate" not in again.stderr.split("creation already completed", 1)[1]
        redone = json.loads((out / "experiment_strategyqa.json").read_text())
        assert [r["dev_acc"] for r in redone["rows"]] == [r["dev_acc"] for r in data["rows"]]
        assert sim.stats()["requests"] == summary["requests"]  # no request sent the second time


def test_experiment_refuses_bad_input(shared_data: Path, tmp_path: Path) -> None:
    base = ["--data_dir", str(shared_data / "yesno_close"), "--data_name", "strategyqa",
            "--target", "10", "--out", str(tmp_path / "out")]
    for extra, message in (
        (["--eval_on", "csqa"], "same format folder"),
        (["--trainer_args", "--learning_rate 1e-5"], "--learning_rate"),
        (["--trainer_args", "--num_train_epochs zero"], "--trainer_args is not valid"),
        (["--creator_args", "--output x.jsonl"], "--output"),
        (["--original_examples", "some"], "--original_examples"),
    ):
        proc = experiment(*base, *extra, timeout=60)
        assert proc.returncode == 2, (extra, proc.stderr)
        assert message in proc.stderr, (extra, proc.stderr)
        assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()  # refused before anything was written
