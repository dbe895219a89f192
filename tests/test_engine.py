"""The engine end to end: `creator create` as a real process against the simulator process."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

import creatorproc
from creatorproc import read_jsonl, read_summary, run_creator, start_creator, wait_for_lines
from benchmarks.simproc import start_simulator

REPO = creatorproc.REPO

YESNO = ["--data_dir", str(REPO / "data/yesno_close"), "--data_name", "example"]
MCQA5 = ["--data_dir", str(REPO / "data/mcqa_5"), "--data_name", "example"]


def check_records(path: Path, target: int) -> list[dict]:
    """creatorproc's checks (valid lines, exactly target, no repeat, labels, meta) and a summary."""
    records = creatorproc.check_records(path, target)
    assert read_summary(path)["accepted"] == target
    return records


@pytest.mark.parametrize("setting", ["naive", "random", "diverse", "similar", "tree"])
def test_each_setting_reaches_the_target_with_real_concurrency(setting, tmp_path):
    out = tmp_path / f"train_{setting}.jsonl"
    with start_simulator(ttft=0.05, seed=1) as sim:
        proc = run_creator(*MCQA5, "--setting", setting, "--target", "120",
                           "--concurrency", "8", "--base_url", sim.base_url, "--output", str(out),
                           cwd=tmp_path, timeout=180)
        stats = sim.stats()
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    records = check_records(out, 120)
    assert stats["max_in_flight"] >= 4, "requests were not concurrent"
    summary = read_summary(out)
    assert summary["status"] == "completed" and summary["accepted"] == 120
    for key in ("requests", "retries", "rate_limited", "prompt_tokens", "completion_tokens",
                "rejected", "duration_s", "estimated_cost_usd"):
        assert key in summary
    by_id = {r["meta"]["id"]: r for r in records}
    for r in records:
        parent = r["meta"]["parent"]
        if setting == "naive":
            assert parent == 0  # always the original exemplar
        elif parent != 0:
            assert by_id[parent]["meta"]["depth"] + 1 == r["meta"]["depth"]
            if setting != "tree":
                assert by_id[parent]["meta"]["chain"] == r["meta"]["chain"]  # chains stay apart
    if setting in ("random", "diverse", "similar"):
        assert len({r["meta"]["chain"] for r in records}) > 1, "only one chain ran"


def test_tree_expands_breadth_first(tmp_path):
    out = tmp_path / "tree.jsonl"
    with start_simulator(seed=2) as sim:
        proc = run_creator(*YESNO, "--setting", "tree", "--target", "150",
                           "--concurrency", "1", "--base_url", sim.base_url, "--output", str(out),
                           cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    depths = [r["meta"]["depth"] for r in check_records(out, 150)]
    assert depths == sorted(depths) and depths[-1] >= 3  # one depth at a time, several deep


def test_done_when_command_on_strategyqa(shared_data, tmp_path):
    """The issue's acceptance run: 200 valid, distinct records and a summary."""
    out = tmp_path / "train_tree.jsonl"
    with start_simulator(ttft=0.02, seed=3) as sim:
        proc = run_creator("--data_dir", str(shared_data / "yesno_close"),
                           "--data_name", "strategyqa", "--setting", "tree", "--target", "200",
                           "--concurrency", "32", "--base_url", sim.base_url,
                           "--output", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    records = check_records(out, 200)
    assert all(r["options"] == ["True", "False"] for r in records)
    assert read_summary(out)["accepted"] == 200


def test_client_rpm_keeps_a_rate_limited_server_free_of_429s(tmp_path):
    out = tmp_path / "limited.jsonl"
    with start_simulator(rpm=120, seed=4) as sim:
        proc = run_creator(*YESNO, "--setting", "naive", "--target", "640",
                           "--concurrency", "64", "--rpm", "120", "--base_url", sim.base_url,
                           "--output", str(out), cwd=tmp_path, timeout=120)
        stats = sim.stats()
    assert proc.returncode == 0, proc.stderr
    check_records(out, 640)
    assert stats["rate_limited"] == 0 and read_summary(out)["rate_limited"] == 0


@pytest.mark.parametrize("setting", ["tree", "random"])
@pytest.mark.parametrize("kill_at", [15, 140])
def test_resume_after_kill_9_gives_exactly_the_target(setting, kill_at, tmp_path):
    out = tmp_path / "out.jsonl"
    target = 250
    with start_simulator(ttft=0.03, jitter=0.5, seed=kill_at) as sim:
        args = [*MCQA5, "--setting", setting, "--target", str(target),
                "--concurrency", "8", "--base_url", sim.base_url, "--output", str(out)]
        proc = start_creator(*args, cwd=tmp_path)
        try:
            wait_for_lines(out, kill_at)
        finally:
            proc.kill()
            proc.wait(10)
        before = read_jsonl(out) if out.read_bytes().endswith(b"\n") else None
        with out.open("ab") as f:  # as if the kill had torn the last line
            f.write(b'{"question": "torn rec')
        done = run_creator(*args, "--resume", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "torn last line" in done.stderr
    records = check_records(out, target)
    if before is not None:
        assert records[: len(before)] == before, "resume changed records already written"
    summary = read_summary(out)
    assert summary["sessions"] == 2 and summary["accepted"] == target


def test_sigterm_stops_cleanly_and_says_how_to_resume(tmp_path):
    out = tmp_path / "out.jsonl"
    with start_simulator(ttft=0.05, seed=5) as sim:
        args = [*YESNO, "--setting", "tree", "--target", "400", "--concurrency", "4",
                "--base_url", sim.base_url, "--output", str(out)]
        proc = start_creator(*args, cwd=tmp_path)
        wait_for_lines(out, 20)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=20)
        assert proc.returncode == 130, stderr
        assert "--resume" in stderr and "Traceback" not in stderr
        assert read_summary(out)["status"] == "interrupted"
        count = len(read_jsonl(out))
        assert 20 <= count < 400
        done = run_creator(*args, "--resume", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    check_records(out, 400)


def test_resume_of_a_finished_file_sends_nothing(tmp_path):
    out = tmp_path / "out.jsonl"
    with start_simulator(seed=6) as sim:
        args = [*YESNO, "--setting", "naive", "--target", "30",
                "--base_url", sim.base_url, "--output", str(out)]
        assert run_creator(*args, cwd=tmp_path).returncode == 0
        sim.reset()
        again = run_creator(*args, "--resume", cwd=tmp_path)
        assert again.returncode == 0, again.stderr
        assert sim.stats()["requests"] == 0
    check_records(out, 30)


def test_several_base_urls_share_the_load(tmp_path):
    out = tmp_path / "out.jsonl"
    with start_simulator(ttft=0.05, seed=7) as a, start_simulator(ttft=0.05, seed=8) as b:
        proc = run_creator(*YESNO, "--setting", "naive", "--target", "200",
                           "--concurrency", "8", "--base_url", a.base_url, "--base_url",
                           b.base_url, "--output", str(out), cwd=tmp_path)
        served = a.stats()["ok"], b.stats()["ok"]
    assert proc.returncode == 0, proc.stderr
    check_records(out, 200)
    assert min(served) >= 5, served


def test_json_schema_mode_asks_for_structured_output(tmp_path):
    out = tmp_path / "out.jsonl"
    with start_simulator(seed=9) as sim:
        proc = run_creator(*MCQA5, "--setting", "random", "--target", "50",
                           "--json_schema", "--base_url", sim.base_url, "--output", str(out),
                           cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    check_records(out, 50)


def test_default_output_beside_the_data(tmp_path):
    data = tmp_path / "yesno_close" / "mine"
    data.mkdir(parents=True)
    (data / "train.jsonl").write_bytes((REPO / "data/yesno_close/example/train.jsonl").read_bytes())
    with start_simulator(seed=10) as sim:
        proc = run_creator("--data_dir", str(tmp_path / "yesno_close"), "--data_name",
                           "mine", "--setting", "similar", "--target", "12", "--base_url",
                           sim.base_url, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    check_records(data / "train_similar.jsonl", 12)
    assert (data / "train_similar.summary.json").is_file()


def test_progress_bar_on_a_terminal_only(tmp_path):
    with start_simulator(ttft=0.05, seed=11) as sim:
        args = [*YESNO, "--setting", "tree", "--target", "100", "--base_url", sim.base_url]
        cmd = creatorproc.creator_cmd(*args, "--output", str(tmp_path / "tty.jsonl"), quiet=False)
        shown = creatorproc.run_on_a_terminal(cmd, tmp_path)
        piped = subprocess.run(
            creatorproc.creator_cmd(*args, "--output", str(tmp_path / "pipe.jsonl"), quiet=False),
            cwd=tmp_path, env=creatorproc.creator_env(), capture_output=True, text=True,
            timeout=60)
    assert "100/100" in shown and "req/s" in shown and "429s: 0" in shown
    assert piped.returncode == 0 and "req/s" not in piped.stderr  # quiet when not a terminal
