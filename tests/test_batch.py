"""`creator create --batch` against the simulator's Batch API: every setting to the exact target
at the batch price; kill -9 while batches are in flight, then --resume (no batch submitted twice,
the simulator counts); expired, failed and cancelled batches and per-request errors resubmitted,
only what is missing; budgets; a server without a Batch API refused in one line."""

from __future__ import annotations

import json
import signal
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from creatorproc import (  # noqa: E402
    assert_no_traceback,
    assert_usage_error,
    check_records,
    example_args,
    finish,
    read_summary,
    run_creator,
    start_creator,
    stop,
)
from benchmarks.simproc import start_simulator  # noqa: E402

# 24 h in 2.4 s of real time; a line every 100 simulated s (2.8 ms)
FAST = {"batch_time_scale": 36000, "batch_line_s": 100}
BATCH = ["--batch", "--batch_poll", "0.3"]


def batch_stats(sim) -> dict[str, Any]:
    with urllib.request.urlopen(f"{sim.root_url}/stats/batch", timeout=10) as resp:
        return json.loads(resp.read())


def state_of(out: Path) -> dict[str, Any]:
    return json.loads(out.with_name(out.stem + ".batches.json").read_text())


def assert_never_twice(sim, summary: dict[str, Any]) -> dict[str, Any]:
    """The simulator saw no file submitted twice and no line answered twice; the summary's
    counts are the simulator's."""
    stats = batch_stats(sim)
    assert stats["batches_from_a_used_file"] == 0, stats
    assert stats["lines_completed_twice"] == 0, stats
    assert summary["requests"] == stats["batch_lines"], (summary["requests"], stats)
    assert summary["completions"] == stats["lines_completed"], (summary["completions"], stats)
    assert summary["prompt_tokens"] == stats["prompt_tokens"]
    assert summary["completion_tokens"] == stats["completion_tokens"]
    assert sim.stats()["requests"] == 0  # nothing went through /chat/completions
    return stats


@pytest.mark.parametrize("setting", ["naive", "tree", "random", "diverse", "similar"])
def test_each_setting_reaches_the_exact_target_at_the_batch_price(setting, tmp_path):
    out = tmp_path / f"train_{setting}.jsonl"
    with start_simulator(seed=1, **FAST) as sim:
        r = run_creator(*example_args("mcqa_5"), "--setting", setting, "--target", "120",
                        "--chains", "8", "--model", "gpt-4o-mini", "--output", out, *BATCH,
                        "--base_url", sim.base_url, cwd=tmp_path, timeout=120)
        assert r.returncode == 0, r.stderr
        summary = read_summary(out)
        stats = assert_never_twice(sim, summary)
    records = check_records(out, 120)
    assert summary["status"] == "completed"
    batch = summary["batch"]
    assert batch["by_status"] == {"completed": batch["batches"]} and not batch["active"]
    # the batch price: half of gpt-4o-mini's $0.15 / $0.60
    assert summary["price_per_1m_tokens_usd"] == {"input": 0.075, "output": 0.3}
    cost = (stats["prompt_tokens"] * 0.075 + stats["completion_tokens"] * 0.3) / 1e6
    assert summary["estimated_cost_usd"] == pytest.approx(cost, abs=1e-6)
    assert summary["budget"]["spent_usd"] == pytest.approx(cost, abs=1e-6)
    state = state_of(out)
    assert state["jobs"] == {} and all(b["processed"] for b in state["batches"])
    if setting == "naive":  # one batch: all the requests the target needs
        assert batch["rounds"] == 1 and all(r["meta"]["parent"] == 0 for r in records)
    elif setting == "tree":  # one batch per depth, breadth-first
        depths = [r["meta"]["depth"] for r in records]
        assert depths == sorted(depths) and batch["rounds"] == depths[-1] >= 3
        sizes = [b["lines"] for b in state["batches"]]
        assert sizes[:2] == [1, 5], sizes  # the root, then its 5 children
    else:  # one batch per step of all chains: at most one line per chain
        assert all(b["lines"] <= 8 for b in state["batches"]) and batch["rounds"] >= 3
        assert len({r["meta"]["chain"] for r in records}) == 8


def test_kill_9_while_batches_are_in_flight_then_resume(tmp_path):
    out = tmp_path / "out.jsonl"
    args = [*example_args(), "--setting", "naive", "--target", "600", "--batch_size", "40",
            "--output", out, *BATCH]
    # 40 lines x 30 simulated s at 1800x: each batch runs ~0.7 s after validating
    with start_simulator(seed=2, batch_time_scale=1800, batch_line_s=30) as sim:
        proc = start_creator(*args, "--base_url", sim.base_url, cwd=tmp_path)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if batch_stats(sim)["in_flight"] >= 2:
                    break
                time.sleep(0.05)
            else:
                pytest.fail("no batch got in flight")
            time.sleep(0.2)
            proc.kill()  # kill -9
            proc.wait(10)
        finally:
            stop(proc)
        before = batch_stats(sim)
        assert before["in_flight"] >= 1, before  # the kill came while batches were running
        state = state_of(out)
        assert any(b["id"] and not b["processed"] for b in state["batches"])
        r = run_creator(*args, "--resume", "--base_url", sim.base_url, cwd=tmp_path,
                        timeout=90)
        assert r.returncode == 0, r.stderr
        summary = read_summary(out)
        after = assert_never_twice(sim, summary)
    check_records(out, 600)
    assert summary["sessions"] == 2 and summary["status"] == "completed"
    # the batches in flight at the kill were collected, not submitted again
    submitted = {b["id"] for b in state["batches"] if b["id"]}
    assert submitted <= {b["id"] for b in state_of(out)["batches"]}
    assert after["batches_created"] == len([b for b in state_of(out)["batches"] if b["id"]])


def test_a_batch_whose_creation_was_not_recorded_is_found_not_created_again(tmp_path):
    """A kill between creating a batch and writing its id: the state has the upload only. The
    resumed run finds the batch at the provider by its input file before creating anything."""
    out = tmp_path / "out.jsonl"
    args = [*example_args(), "--setting", "naive", "--target", "300", "--output", out, *BATCH]
    with start_simulator(seed=3, batch_time_scale=1800, batch_line_s=30) as sim:
        proc = start_creator(*args, "--base_url", sim.base_url, cwd=tmp_path)
        try:
            deadline = time.monotonic() + 30
            while batch_stats(sim)["in_flight"] < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.3)
            proc.kill()
            proc.wait(10)
        finally:
            stop(proc)
        path = out.with_name(out.stem + ".batches.json")
        state = json.loads(path.read_text())
        lost = [b for b in state["batches"] if b["id"] and not b["processed"]]
        assert lost, state
        for b in lost:  # as if the process had died before the id was written
            b["id"], b["status"] = None, "uploaded"
        path.write_text(json.dumps(state))
        created = batch_stats(sim)["batches_created"]
        r = run_creator(*args, "--resume", "--base_url", sim.base_url, cwd=tmp_path, timeout=60)
        assert r.returncode == 0, r.stderr
        summary = read_summary(out)
        stats = assert_never_twice(sim, summary)
    check_records(out, 300)
    assert stats["batches_created"] == created == 1  # one batch did it all, created once


def test_a_batch_the_summary_settled_but_the_state_did_not_is_not_counted_twice(tmp_path):
    """A kill between the summary's write (which counts a batch) and the state's: the resumed
    run puts the batch's jobs right without counting its lines, tokens or cost again."""
    out = tmp_path / "out.jsonl"
    args = [*example_args(), "--setting", "random", "--chains", "6", "--output", out, *BATCH,
            "--price_in", "1", "--price_out", "1"]
    with start_simulator(seed=4, **FAST) as sim:
        r = run_creator(*args, "--target", "40", "--base_url", sim.base_url, cwd=tmp_path,
                        timeout=60)
        assert r.returncode == 0, r.stderr
        path = out.with_name(out.stem + ".batches.json")
        state = json.loads(path.read_text())
        last = state["batches"][-1]
        last["processed"] = False
        for chain, cid in enumerate(last["custom_ids"]):
            state["jobs"][cid] = {"exemplar": 0, "chain": chain, "attempts": 1,
                                  "batch": last["input_file_id"]}
        path.write_text(json.dumps(state))
        r = run_creator(*args, "--target", "80", "--resume", "--base_url", sim.base_url,
                        cwd=tmp_path, timeout=60)
        assert r.returncode == 0, r.stderr
        summary = read_summary(out)
        assert_never_twice(sim, summary)  # tokens and lines as the simulator counts them
    check_records(out, 80)


def test_an_expired_batch_has_only_its_missing_part_resubmitted(tmp_path):
    out = tmp_path / "out.jsonl"
    # a 1 h window, validating 60 s, a line every 100 s: a batch finishes 35 lines at most
    with start_simulator(seed=5, batch_window_s=3600, **FAST) as sim:
        r = run_creator(*example_args(), "--setting", "naive", "--target", "300",
                        "--output", out, *BATCH, "--base_url", sim.base_url, cwd=tmp_path,
                        timeout=60)
        assert r.returncode == 0, r.stderr
        summary = read_summary(out)
        stats = assert_never_twice(sim, summary)
    check_records(out, 300)
    assert stats["lines_expired"] > 0 and summary["batch"]["by_status"].get("expired", 0) >= 1
    # what was resubmitted is exactly what expired: every line answered once
    assert summary["batch"]["lines_resubmitted"] == stats["lines_expired"]
    assert stats["batch_lines"] == stats["lines_completed"] + stats["lines_expired"]
    state = state_of(out)
    first, second = state["batches"][0], state["batches"][1]
    assert first["status"] == "expired" and first["counts"]["completed"] == 35
    assert second["lines"] == first["lines"] - 35  # only the missing part


@pytest.mark.parametrize("faults", [
    {"batch_p_error": 0.25, "batch_errors_in_output": True},
    {"batch_p_error": 0.25},
    {"batch_p_fail": 0.4},
    {"batch_p_cancel": 0.6},
], ids=["errors_in_output", "errors_in_error_file", "failed_batches", "cancelled_batches"])
def test_failed_lines_and_batches_are_resubmitted_to_the_exact_target(faults, tmp_path):
    out = tmp_path / "out.jsonl"
    with start_simulator(seed=6, **faults, **FAST) as sim:
        r = run_creator(*example_args("yesno_open"), "--setting", "tree", "--target", "150",
                        "--output", out, *BATCH, "--base_url", sim.base_url, cwd=tmp_path,
                        timeout=90)
        assert r.returncode == 0, r.stderr
        summary = read_summary(out)
        stats = assert_never_twice(sim, summary)
    check_records(out, 150)
    batch = summary["batch"]
    if "batch_p_error" in faults:
        assert stats["lines_errored"] > 0 and sum(batch["line_errors"].values()) > 0
        assert set(batch["line_errors"]) <= {"http_429", "http_500", "http_503"}
    else:
        key = "failed" if "batch_p_fail" in faults else "cancelled"
        assert batch["by_status"].get(key, 0) >= 1, batch
    assert batch["lines_resubmitted"] > 0


def test_a_server_without_a_batch_api_is_refused_in_one_line(tmp_path):
    out = tmp_path / "out.jsonl"
    with start_simulator(no_batch=True) as sim:
        r = run_creator(*example_args(), "--setting", "naive", "--target", "20", "--output", out,
                        "--batch", "--base_url", sim.base_url, cwd=tmp_path, timeout=30)
        assert sim.stats()["requests"] == 0
    assert_no_traceback(r)
    lines = [ln for ln in r.lines if not ln.startswith("creator: writing ")]
    assert r.returncode == 1 and len(lines) == 1, r.stderr
    assert "no Batch API" in lines[0] and "without --batch" in lines[0], lines[0]
    assert r.duration < 15
    assert not out.exists()


def test_budgets_hold_in_batch_mode(tmp_path):
    out = tmp_path / "out.jsonl"
    with start_simulator(seed=7, **FAST) as sim:
        r = run_creator(*example_args(), "--setting", "naive", "--target", "1000",
                        "--max_requests", "30", "--output", out, *BATCH,
                        "--base_url", sim.base_url, cwd=tmp_path, timeout=60)
        assert r.returncode == 3, r.stderr
        assert batch_stats(sim)["batch_lines"] == 30
        # money: gpt-4o-mini at the batch price; the lines' worst cases are held at submission
        out2 = tmp_path / "out2.jsonl"
        r = run_creator(*example_args(), "--setting", "tree", "--target", "1000",
                        "--max_cost", "0.004", "--model", "gpt-4o-mini", "--output", out2,
                        *BATCH, "--base_url", sim.base_url, cwd=tmp_path, timeout=60)
        stats = batch_stats(sim)
    assert r.returncode == 3 and "--max_cost" in r.lines[-1], r.stderr
    summary = read_summary(out2)
    first = read_summary(out)
    served = ((stats["prompt_tokens"] - first["prompt_tokens"]) * 0.075
              + (stats["completion_tokens"] - first["completion_tokens"]) * 0.3) / 1e6
    assert served <= 0.004 and summary["budget"]["spent_usd"] == pytest.approx(served, abs=1e-7)
    assert summary["status"] == "budget_spent"


def test_batch_size_splits_a_round_into_several_batches(tmp_path):
    out = tmp_path / "out.jsonl"
    with start_simulator(seed=8, **FAST) as sim:
        r = run_creator(*example_args(), "--setting", "naive", "--target", "200",
                        "--batch_size", "10", "--output", out, *BATCH,
                        "--base_url", sim.base_url, cwd=tmp_path, timeout=60)
        assert r.returncode == 0, r.stderr
        assert_never_twice(sim, read_summary(out))
    state = state_of(out)
    assert {b["round"] for b in state["batches"]} == {1}
    assert [b["lines"] for b in state["batches"]] == [10, 10, 10, 10, 5]


def test_refusals_while_batches_are_outstanding(tmp_path):
    out = tmp_path / "out.jsonl"
    args = [*example_args(), "--setting", "naive", "--target", "300", "--output", out]
    with start_simulator(seed=9, batch_time_scale=600, batch_line_s=30) as sim:
        proc = start_creator(*args, *BATCH, "--base_url", sim.base_url, cwd=tmp_path)
        try:
            deadline = time.monotonic() + 30
            while batch_stats(sim)["in_flight"] < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.2)
            proc.send_signal(signal.SIGINT)  # Ctrl-C: stops cleanly, batches keep running
            r = finish(proc, 30)
        finally:
            stop(proc)
        assert r.returncode == 130, r.stderr
        assert batch_stats(sim)["in_flight"] == 1
        summary = read_summary(out)
        assert summary["status"] == "interrupted" and summary["batch"]["active"]
        before = out.read_bytes() if out.exists() else b""
        r = run_creator(*args, "--resume", "--base_url", sim.base_url, cwd=tmp_path)
        assert_usage_error(r, "--batch")  # resuming without --batch would lose the batches
        r = run_creator(*args, *BATCH, "--base_url", sim.base_url, cwd=tmp_path)
        assert_usage_error(r, "--resume", "--overwrite")
        assert (out.read_bytes() if out.exists() else b"") == before
        r = run_creator(*args, *BATCH, "--resume", "--base_url", sim.base_url, cwd=tmp_path,
                        timeout=90)
        assert r.returncode == 0, r.stderr
        assert_never_twice(sim, read_summary(out))
    check_records(out, 300)


def test_batch_arguments_refused_up_front(tmp_path):
    r = run_creator(*example_args(), "--setting", "naive", "--target", "10", "--batch",
                    "--output", tmp_path / "o.jsonl", cwd=tmp_path)
    assert_usage_error(r, "--batch", "embedded")
    r = run_creator(*example_args(), "--setting", "naive", "--target", "10", "--batch",
                    "--batch_size", "60000", "--base_url", "http://127.0.0.1:9/v1",
                    "--output", tmp_path / "o.jsonl", cwd=tmp_path)
    assert_usage_error(r, "--batch_size", "50,000")
    r = run_creator(*example_args(), "--setting", "naive", "--target", "10", "--batch",
                    "--base_url", "http://127.0.0.1:9/v1", "--base_url", "http://127.0.0.1:8/v1",
                    "--output", tmp_path / "o.jsonl", cwd=tmp_path)
    assert_usage_error(r, "--batch", "one")
    assert not (tmp_path / "o.jsonl").exists()
