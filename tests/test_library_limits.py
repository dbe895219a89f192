"""The creator against limits it was not written beside: the simulator's --limit_mode limits-*
hands enforcement to the `limits` library (the engine of Flask-Limiter and slowapi, API
gateways' code; benchmarks/simserver.py LibraryWindow), with its own arithmetic, clock and reset
times. End to end, short runs; the benchmark's rows (benchmarks/README.md section 5) run them
for 90-120 s."""

from __future__ import annotations

import httpx
import pytest

import creatorproc
from benchmarks.simproc import start_simulator
from creatorproc import check_records, run_creator

YESNO = creatorproc.example_args("yesno_close")


def _admitted(sim) -> list[int]:
    return httpx.get(sim.root_url + "/stats/timeline", timeout=10).json()["admitted"]


@pytest.mark.parametrize("mode", ["limits-counter", "limits-fixed"])
def test_a_limit_stated_in_headers_is_held_under_a_librarys_window(mode, tmp_path):
    """600 RPM enforced per second by the library (a sliding window counter, Cloudflare's; a
    window from the first request), stated per minute in OpenAI's headers: no 429, and each
    whole second of the run admits 10 at most and ~10 on average."""
    out = tmp_path / "out.jsonl"
    with start_simulator(rpm=600, limit_mode=mode, window_s=1, ttft=0.2, seed=3) as sim:
        r = run_creator(*YESNO, "--setting", "naive", "--target", "400", "--concurrency", "32",
                        "--output", str(out), "--base_url", sim.base_url, cwd=tmp_path,
                        timeout=120)
        stats = sim.stats()
        admitted = _admitted(sim)
    assert r.returncode == 0, r.stderr
    check_records(out, 400)
    assert stats["rate_limited"] == 0
    first = next(i for i, n in enumerate(admitted) if n)
    last = max(i for i, n in enumerate(admitted) if n)
    middle = admitted[first + 1:last]  # whole seconds of the run
    assert len(middle) >= 5 and max(middle) <= 10, admitted
    assert sum(middle) / len(middle) >= 9.0, admitted


def test_nothing_known_is_learnt_under_a_librarys_window(tmp_path):
    """A window of a second from the first request (the library's fixed window) at 1,200 RPM with
    no headers, no Retry-After and no limit given: the rate is learnt from its 429s (the ramp's
    burst and a few edges), and the seconds after the first five hold most of it. (Not the
    counter: there the ramp's storm is read low in 2 runs of 6 and the run takes twice as long,
    benchmarks/README, "Limits enforced by code we did not write".)"""
    out = tmp_path / "out.jsonl"
    with start_simulator(rpm=1200, limit_mode="limits-fixed", window_s=1, headers="none",
                         retry_after="none", ttft=0.1, seed=3) as sim:
        r = run_creator(*YESNO, "--setting", "naive", "--target", "1500",
                        "--concurrency", "64", "--output", str(out), "--base_url", sim.base_url,
                        cwd=tmp_path, timeout=120)
        stats = sim.stats()
        admitted = _admitted(sim)
    assert r.returncode == 0, r.stderr
    check_records(out, 1500)
    assert stats["rate_limited"] <= 25, stats
    first = next(i for i, n in enumerate(admitted) if n)
    last = max(i for i, n in enumerate(admitted) if n)
    later = admitted[first + 5:last]
    assert len(later) >= 5, admitted
    assert sum(later) / len(later) >= 16.0, admitted  # 80% of 20 a second
