"""`creator create` against a misbehaving server (the in-tree simulator, a real subprocess).

Whatever the server does -- 429 storms with and without Retry-After, 5xx, hung requests, dropped
connections, malformed / duplicate / empty / wrongly formatted / garbage replies, dying and coming
back -- the run ends with exactly --target records, every line valid JSON, no question twice
(case and white space normalised), labels among the options, and a summary that counts what
happened. Plus: the same seeds give byte-identical output.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from creatorproc import (  # noqa: E402
    assert_no_traceback,
    check_completed,
    example_args,
    finish,
    run_creator,
    shared_args,
    start_creator,
    stop,
)
from benchmarks.simproc import start_simulator  # noqa: E402


def run_against(tmp_path: Path, sim_flags: dict[str, Any], *args: Any, target: int = 150,
                data: list[str] | None = None, setting: str = "naive", concurrency: int = 16,
                timeout: float = 45) -> tuple[dict, dict, Any]:
    """One complete run against a fresh simulator: (summary, simulator /stats, Result)."""
    out = tmp_path / "out.jsonl"
    with start_simulator(**sim_flags) as sim:
        r = run_creator(*(data or example_args()), "--setting", setting, "--target", target,
                        "--concurrency", concurrency, "--output", out, "--base_url", sim.base_url,
                        *args, cwd=tmp_path, timeout=timeout)
        stats = sim.stats()
    assert_no_traceback(r)
    assert r.returncode == 0, r.stderr
    assert r.lines[-2].startswith("creator: done:"), r.stderr  # then its figures
    summary = check_completed(out, target, concurrency)
    # the client never claims more than the server did
    assert summary["completions"] <= stats["ok"]
    assert 0 < summary["prompt_tokens"] <= stats["prompt_tokens"]
    assert summary["rate_limited"] <= stats["rate_limited"]
    return summary, stats, r


# ---------------------------------------------------------------------------- rate limits


@pytest.mark.parametrize("retry_after", [True, False], ids=["retry_after", "no_retry_after"])
def test_429_storm_completes(retry_after, tmp_path):
    """Server RPM 120 that does not say its limits (no x-ratelimit-*), 16 in flight, no client
    --rpm: the first 120 go at once, then 429s. 128 requests are needed, so the physical limit is
    ~4 s; a client that waited for a whole minute or gave up would fail here."""
    summary, stats, r = run_against(
        tmp_path, {"rpm": 120, "no_retry_after": not retry_after, "no_ratelimit_headers": True,
                   "seed": 4},
        "--num_examples", 10, target=1280, concurrency=16, timeout=40)
    assert stats["rate_limited"] > 0, "the storm did not happen"
    assert summary["rate_limited"] > 0 and summary["retries"] > 0
    assert summary["failed_requests"] == 0
    assert r.duration < 40


@pytest.mark.parametrize("mode", ["bucket", "fixed"])
def test_limits_learnt_from_ratelimit_headers_avoid_the_storm(mode, tmp_path):
    """A server saying its limits (600 RPM) in x-ratelimit-* headers, as a per-minute bucket or
    enforced per second: the client adopts them from the first reply and paces its requests, so
    no 429 is earned (the bucket's initial minute is not burst into)."""
    summary, stats, r = run_against(
        tmp_path, {"rpm": 600, "limit_mode": mode, "window_s": 1, "seed": 4},
        "--num_examples", 10, target=1280, concurrency=16, timeout=40)
    assert summary["failed_requests"] == 0
    assert stats["rate_limited"] == 0


# ---------------------------------------------------------------------------- transport faults


def test_server_errors_are_retried(tmp_path):
    summary, stats, _ = run_against(tmp_path, {"p_500": 0.3, "seed": 5})
    assert stats["errors_5xx"] > 0
    # each of the three statuses was served, and all of them were retried
    assert all(stats[f"errors_{code}"] > 0 for code in (500, 502, 503)), stats
    assert sum(stats[f"errors_{code}"] for code in (500, 502, 503)) == stats["errors_5xx"]
    assert 0 < summary["server_errors"] <= stats["errors_5xx"]
    assert summary["retries"] > 0


def test_hung_requests_time_out_and_are_retried(tmp_path):
    summary, stats, r = run_against(
        tmp_path, {"p_timeout": 0.2, "hang_s": 30, "seed": 6},
        "--timeout", 1, target=150, concurrency=4, timeout=40)
    assert stats["timeouts"] > 0
    assert 0 < summary["timeouts"] <= stats["timeouts"]
    assert summary["retries"] > 0
    assert r.duration < 30, "a hung request was waited on for longer than --timeout"


def test_dropped_connections_are_retried(tmp_path):
    summary, stats, _ = run_against(tmp_path, {"p_drop": 0.3, "seed": 7})
    assert stats["drops"] > 0
    assert 0 < summary["connection_errors"] <= stats["drops"]
    assert summary["retries"] > 0


# ---------------------------------------------------------------------------- content faults


def test_malformed_replies_are_rejected_and_counted(tmp_path):
    summary, stats, _ = run_against(tmp_path, {"p_malformed": 0.5, "seed": 8})
    assert stats["malformed"] > 0
    rejected = summary["rejected"]
    assert rejected.get("malformed_json", 0) + rejected.get("missing_field", 0) > 0, rejected


def test_duplicates_are_rejected_and_counted(tmp_path):
    summary, stats, _ = run_against(tmp_path, {"p_duplicate": 0.5, "seed": 9})
    assert stats["duplicates"] > 0
    rejected = summary["rejected"]
    assert rejected.get("duplicate_question", 0) > 0, rejected
    # duplicates of the exemplar itself are counted too (as echoes or duplicates)
    assert set(rejected) <= {"duplicate_question", "exemplar_echo"}, rejected


def test_empty_replies_are_counted(tmp_path):
    summary, stats, _ = run_against(tmp_path, {"p_empty": 0.3, "seed": 10})
    assert stats["empty"] > 0
    assert 0 < summary["rejected"].get("empty_reply", 0) <= stats["empty"], summary["rejected"]
    assert summary["unproductive_requests"] >= summary["rejected"]["empty_reply"]


def test_garbage_replies_are_counted(tmp_path):
    summary, stats, _ = run_against(tmp_path, {"p_garbage": 0.3, "seed": 11})
    assert stats["garbage"] > 0
    assert 0 < summary["rejected"].get("no_json_object", 0) <= stats["garbage"], summary["rejected"]


@pytest.mark.parametrize("fmt,extra", [
    ("yesno_close", []),
    ("yesno_open", []),
    ("mcqa_2", []),
    ("mcqa_5", []),
    ("mcqa_5", ["--json_schema"]),
])
def test_wrong_format_is_still_accepted(fmt, extra, tmp_path):
    """Arrays, code fences, numbered lists, JSON lines, {"examples": [...]}: every reply is a
    wrong layout, and every object in it is still kept."""
    summary, stats, _ = run_against(tmp_path, {"p_wrong_format": 1.0, "seed": 12}, *extra,
                                    data=example_args(fmt), target=100, concurrency=4)
    assert stats["wrong_format"] > 0
    assert summary["rejected"] == {}, summary["rejected"]
    assert summary["unproductive_requests"] == 0
    assert summary["requests"] <= 100 // 5 + 4  # each reply gave all 5 of its examples


@pytest.mark.parametrize("fmt,name,setting", [
    ("mcqa_5", "csqa", "random"),
    ("yesno_open", "bioasq", "tree"),
])
def test_every_fault_at_once_on_real_data(fmt, name, setting, tmp_path):
    faults = {"p_500": 0.1, "p_drop": 0.1, "p_timeout": 0.05, "hang_s": 30, "p_malformed": 0.15,
              "p_duplicate": 0.15, "p_empty": 0.1, "p_wrong_format": 0.3, "p_garbage": 0.1,
              "seed": 13}
    summary, stats, _ = run_against(tmp_path, faults, "--timeout", 1, data=shared_args(fmt, name),
                                    setting=setting, target=200, concurrency=8, timeout=45)
    assert summary["retries"] > 0 and summary["rejected"]


# ---------------------------------------------------------------------------- the server goes away


def _wait_for_lines(path: Path, n: int, proc, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_bytes().count(b"\n") >= n:
            return
        if proc.poll() is not None:
            pytest.fail(f"creator ended early (exit {proc.returncode}): {proc.stderr.read()}")
        time.sleep(0.02)
    pytest.fail(f"{path} did not reach {n} lines in {timeout}s")


def test_server_dies_and_comes_back(tmp_path):
    out = tmp_path / "out.jsonl"
    target = 500  # ~2.5 s of work at 4 in flight x 0.1 s: the outage hits mid-run
    with start_simulator(ttft=0.1, seed=14) as sim:
        proc = start_creator(*example_args(), "--setting", "naive", "--target", target,
                             "--concurrency", 4, "--output", out, "--base_url", sim.base_url,
                             cwd=tmp_path)
        try:
            _wait_for_lines(out, 30, proc)
            sim.restart(delay=2.0, hard=True)  # kill -9, 2 s of nothing, same port again
            restarted = time.monotonic()
            r = finish(proc, timeout=60)
        finally:
            stop(proc)
        stats = sim.stats()  # the restarted server's counters
    assert_no_traceback(r)
    assert r.returncode == 0, r.stderr
    summary = check_completed(out, target, 4)
    assert summary["connection_errors"] > 0, "the outage went unnoticed"
    assert stats["ok"] > 0, "nothing was asked of the restarted server"
    assert time.monotonic() - restarted < 60


# ---------------------------------------------------------------------------- reproducibility


@pytest.mark.parametrize("setting", ["naive", "tree"])
def test_same_seeds_give_byte_identical_output(setting, tmp_path):
    runs = []
    for i in range(2):
        out = tmp_path / f"run{i}.jsonl"
        with start_simulator(seed=21, p_malformed=0.2, p_duplicate=0.2) as sim:
            r = run_creator(*example_args("mcqa_5"), "--setting", setting, "--target", 60,
                            "--concurrency", 1, "--seed", 5, "--output", out,
                            "--base_url", sim.base_url, cwd=tmp_path, timeout=30)
        assert r.returncode == 0, r.stderr
        check_completed(out, 60, 1)
        runs.append(out.read_bytes())
    assert runs[0] == runs[1], "same --seed, same server seed, one request at a time: same bytes"
