"""Limits a server states only when it refuses, with resets written as Unix times (OpenRouter:
"X-RateLimit-* headers on the error response", the reset in Unix milliseconds), and limits spent
for hours (its free models' requests per day, until the UTC midnight). End to end against the
simulator's OpenRouter dialect; the router's part on its own, pure."""

from __future__ import annotations

import asyncio
import re
import time

import pytest

import creatorproc
from benchmarks.simproc import start_simulator
from creator.endpoints import Endpoint, NoEndpointLeft, Router
from creator.ratelimit import LONG_WAIT_S
from creatorproc import check_records, early_in_a_clock_minute, read_jsonl, read_summary, run_creator

YESNO = creatorproc.example_args("yesno_close")
OPENROUTER = dict(headers="openrouter", retry_after="none", ttft=0.05, tpot=0.002)


def run_against(tmp_path, target: int, timeout: float, **flags):
    """The creator (--concurrency 16) against a simulator of `flags`: (result, server stats,
    output path)."""
    out = tmp_path / "out.jsonl"
    with start_simulator(**flags) as sim:
        r = run_creator(*YESNO, "--setting", "naive", "--target", str(target), "--concurrency",
                        "16", "--output", str(out), "--base_url", sim.base_url, cwd=tmp_path,
                        timeout=timeout)
        return r, sim.stats(), out


# how long until the UTC midnight the spent day is said to last: "45 s", "106 min" or "7.5 h"
UNTIL_MIDNIGHT = r"allow no request for \d+(\.\d)? (s|min|h) \(until \d{4}-\d\d-\d\d 00:00 UTC\)"


def away_from_utc_midnight(run_s: float = 90.0) -> None:
    """A day spent less than LONG_WAIT_S before the UTC midnight is waited out, not stopped at
    (rightly): a test of the stop run then first waits for the new day (at most ~12 min, on
    ~1% of runs), so it neither flakes nor skips."""
    left = 86400 - time.time() % 86400
    if left < LONG_WAIT_S + run_s:
        time.sleep(left + 1)


def test_a_minute_stated_on_a_429_with_a_reset_in_unix_ms_is_waited_out(tmp_path):
    """20 requests a minute (OpenRouter's free models), in windows of the clock's minutes,
    stated on the 429 only. Its reset, read as a wait, held the run for 57,000 years after the
    first 429 (121 requests in 120 s at 120 a minute, then none); now it waits for the minute's
    end and paces the next at the limit the 429 stated."""
    # ~23 requests begun in a minute's last seconds fit in two windows with no 429 (CI at b5b92fe)
    early_in_a_clock_minute(within_s=30.0)
    r, stats, out = run_against(tmp_path, 110, 150, rpm=20, limit_mode="fixed", window_s=60,
                                **OPENROUTER)
    assert r.returncode == 0, r.stderr
    check_records(out, 110)
    assert stats["admitted"] > 20  # into a second minute
    assert 1 <= stats["rate_limited"] <= 3, stats  # the 429 that states the limit, and no storm
    endpoint = read_summary(out)["config"]["endpoints"][0]
    assert endpoint["stated_limits"]["requests"] == {"limit": 20, "window_s": 60.0}


def test_a_days_limit_spent_stops_the_run_once_what_is_in_flight_has_come_back(tmp_path):
    """Ten requests a day, spent in the first second: the 429 says until the UTC midnight. The
    run stops at once with that time and --resume, keeping the replies of all ten (admitted and
    counted by the server), instead of retrying for hours; the resume refuses to go on the same
    way until then, losing nothing."""
    away_from_utc_midnight()
    out = tmp_path / "out.jsonl"
    with start_simulator(rpm=6000, rpd=10, limit_mode="fixed", window_s=60, **OPENROUTER) as sim:
        args = [*YESNO, "--setting", "naive", "--target", "500", "--concurrency", "32",
                "--output", str(out), "--base_url", sim.base_url]
        r = run_creator(*args, cwd=tmp_path, timeout=60)
        stats = sim.stats()
        assert r.returncode == 1, r.stderr
        assert re.search(r"free-models-per-day.*" + UNTIL_MIDNIGHT +
                         r"; run the same command with --resume", r.stderr), r.stderr
        assert "Traceback" not in r.stderr
        assert stats["admitted"] == stats["ok"] == 10, stats  # every admitted reply came back
        assert stats["rate_limited"] <= 3, stats
        first = read_jsonl(out)
        assert len(first) >= 10  # (each reply gives several)
        summary = read_summary(out)
        assert summary["status"] == "failed" and "until" in summary["error"]
        again = run_creator(*args, "--resume", cwd=tmp_path, timeout=60)
        assert again.returncode == 1 and "00:00 UTC" in again.stderr, again.stderr
        assert read_jsonl(out) == first


def test_a_day_named_by_429s_that_say_no_wait_is_spent_once_nothing_goes_through(tmp_path):
    """Cerebras's "Tokens per day limit exceeded - too many tokens processed." says no wait, and
    no header says when the day comes back. Ten requests a day, then 429s that name the day
    and nothing else: the storm's probes went on for as long as the run did (30 429s in 90 s,
    not one reply, at 9ccd432); now, nothing let through for 30 s, the run stops as spent,
    keeping the ten replies."""
    r, stats, out = run_against(tmp_path, 300, 90, rpm=6000, rpd=10, headers="none",
                                retry_after="none", no_body_hint=True, ttft=0.05)
    assert r.returncode == 1, r.stderr
    assert re.search(r"requests per day \(RPD\).*a limit per day, and nothing let through for "
                     r"30 s; .*--resume later", r.stderr), r.stderr
    assert "Traceback" not in r.stderr
    assert stats["admitted"] == stats["ok"] == 10, stats
    assert stats["rate_limited"] <= 20, stats  # the ramp's, then a probe every few seconds
    assert len(read_jsonl(out)) >= 10


def test_a_days_requests_stated_under_cerebras_names_stop_the_run_when_spent(tmp_path):
    """Cerebras states the day's requests (x-ratelimit-remaining-requests-day, reset in seconds
    to the UTC midnight) on every reply: the run stops as that count runs out, before any 429,
    saying until when; those names were not read before d6c2482."""
    away_from_utc_midnight()
    r, stats, _ = run_against(tmp_path, 300, 60, rpm=600, tpm=100000, rpd=10, headers="cerebras",
                              headers_report="window", retry_after="none", no_body_hint=True,
                              ttft=0.05)
    assert r.returncode == 1, r.stderr
    assert re.search(UNTIL_MIDNIGHT + r"; run the same command with --resume", r.stderr), r.stderr
    assert stats["rate_limited"] == 0 and 8 <= stats["admitted"] == stats["ok"] <= 10, stats


def test_a_spent_endpoint_leaves_the_run_to_the_others(tmp_path):
    out = tmp_path / "out.jsonl"
    with start_simulator(rpm=6000, rpd=5, **OPENROUTER) as spent, \
            start_simulator(rpm=600, limit_mode="fixed", window_s=1) as other:
        r = run_creator(*YESNO, "--setting", "naive", "--target", "200", "--concurrency", "16",
                        "--output", str(out), "--base_url", spent.base_url,
                        "--base_url", other.base_url, cwd=tmp_path, timeout=60)
    assert r.returncode == 0, r.stderr
    check_records(out, 200)
    endpoints = read_summary(out)["config"]["endpoints"]
    assert "free-models-per-day" in endpoints[0]["set_aside"], endpoints[0]
    assert endpoints[1]["set_aside"] is None and endpoints[1]["completions"] > 0


def test_a_wait_of_hours_sets_every_endpoint_aside_as_spent():
    """The router's part, on a fake clock: limits that allow nothing for longer than
    ratelimit.LONG_WAIT_S (here a pause of two hours, as a 429's wait would set) end the
    waiting with NoEndpointLeft(spent=True), naming the time; a minute's wait is waited."""
    now = [1000.0]
    router = Router([Endpoint("http://127.0.0.1:9/v1", rpm=60)], 8, clock=lambda: now[0])
    route = router.routes[0]

    async def waits() -> NoEndpointLeft:
        route.limits.pause(now[0] + 30)
        with pytest.raises(asyncio.TimeoutError):  # a minute's wait: waited (the clock stands)
            await asyncio.wait_for(router.acquire(20, 10), 0.2)
        route.limits.pause(now[0] + 7200)
        with pytest.raises(NoEndpointLeft) as caught:
            await asyncio.wait_for(router.acquire(20, 10), 5.0)
        return caught.value

    spent = asyncio.run(waits())
    assert spent.spent and route.spent
    assert re.search(r"allow no request for 2\.0 h \(until .* UTC\)", str(spent))
