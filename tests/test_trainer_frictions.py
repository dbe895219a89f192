"""First-hour frictions on the trainer side (issue 16, items 5, 6, 9), through its command line."""

from __future__ import annotations

import json
import os
import time

import pytest

from trainer_helpers import run_trainer, write_jsonl

RECORDS = [{"question": f"Is {i} even?", "context": None, "options": ["True", "False"],
            "label": i % 2 == 0} for i in range(8)]


@pytest.fixture
def data(tmp_path):
    folder = tmp_path / "yesno" / "toy"
    for split in ("train", "dev"):
        write_jsonl(folder / f"{split}.jsonl", RECORDS)
    return ["--data_dir", str(tmp_path / "yesno"), "--data_name", "toy"]


def one_line_refusal(result, *needles):
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def finished_run(folder):
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"finished": True, "dev_acc": 0.9}))
    return (folder / "metrics.json").read_bytes()


def test_a_finished_run_is_not_trained_over(data, tmp_path):
    out = tmp_path / "run"
    before = finished_run(out)
    r = run_trainer([*data, "--output_dir", str(out)], timeout=120)
    one_line_refusal(r, "holds a finished run", "--overwrite_output_dir")
    assert (out / "metrics.json").read_bytes() == before


@pytest.mark.parametrize("kind", ["a file", "under a file"])
def test_an_output_dir_that_cannot_be_one_is_one_line(data, tmp_path, kind):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    out = blocker if kind == "a file" else blocker / "run"
    r = run_trainer([*data, "--output_dir", str(out)], timeout=120)
    one_line_refusal(r, "output_dir")


def test_an_unwritable_output_dir_is_one_line(data, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("this user writes anywhere (root on a writable mount)")
        r = run_trainer([*data, "--output_dir", str(locked / "run")], timeout=120)
        one_line_refusal(r, "cannot write")
    finally:
        locked.chmod(0o700)


def test_a_model_name_typo_is_refused_fast_offline(data, tmp_path):
    started = time.monotonic()
    r = run_trainer([*data, "--output_dir", str(tmp_path / "run"), "--model", "robera-large"],
                    timeout=120)
    one_line_refusal(r, "robera-large", "not in the local Hugging Face cache")
    assert time.monotonic() - started < 30


def test_a_learning_rate_typo_is_refused_unless_forced(data, tmp_path):
    r = run_trainer([*data, "--output_dir", str(tmp_path / "run"), "--learning_rate", "2e5"],
                    timeout=120)
    one_line_refusal(r, "learning_rate", "outside", "--force_learning_rate")
    assert not (tmp_path / "run").exists()


def test_trainer_version_and_help():
    r = run_trainer(["--version"], timeout=60)
    assert r.returncode == 0 and r.stdout.startswith("trainer ")
    r = run_trainer(["--help"], timeout=60)
    text = " ".join(r.stdout.split())
    assert "trainer evaluate" in text and "trainer sweep" in text
    assert "--learning_rate LEARNING_RATE peak learning rate" in text
    assert "2e-5) (default: 2e-05) --num_train_epochs" in text
    assert "--data_dir DATA_DIR format folder" in text and "--data_dir DATA_DIR (default" not in text
