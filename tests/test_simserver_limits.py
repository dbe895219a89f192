"""The simulator's provider rate-limit models (benchmarks/simserver.py): enforcement modes, token
accounting, header dialects, Retry-After forms, the 429 message and /stats/timeline.

The limiter objects are tested with explicit instants (no sleeping); every mode is also tested
against a real simulator subprocess. Assertions on a live server count admissions per window of
the server's clock (from /stats/timeline), with slack for a loaded machine, never timings to the
millisecond.
"""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import json
import math
import re
import subprocess
import sys
import time

import aiohttp
import httpx
import pytest

from benchmarks.simproc import REPO, start_simulator
from benchmarks.simserver import (GCRA, LIBRARY_MODES, Bucket, Clock, FixedWindow, LibraryWindow, SimConfig,
                                  SlidingWindow, parse_args)
from creatorproc import early_in_a_clock_minute
from tests.test_simserver import DURATION, MC, YN_CLOSED, body

# --------------------------------------------------------------------------- helpers


def small(**extra):
    """A cheap request: one yes/no example (prompt ~75 tokens, completion ~25)."""
    return body(YN_CLOSED, k=1, **extra)


def post(client, sim, payload=None, timeout=10.0):
    return client.post(sim.base_url + "/chat/completions", json=payload or small(), timeout=timeout)


def burst(base_url, payloads, timeout=30.0):
    """All payloads at once; [(status, headers, json)] in order."""
    async def run():
        conn = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=timeout)) as sess:
            async def one(p):
                async with sess.post(base_url + "/chat/completions", json=p) as r:
                    return r.status, r.headers.copy(), await r.json()
            return await asyncio.gather(*(one(p) for p in payloads))
    return asyncio.run(run())


def to_window_start(window_s=1.0, margin=0.02):
    """Sleep until just after the next whole multiple of window_s of the clock (the server's windows
    are aligned to the same clock: same machine)."""
    time.sleep(window_s - time.time() % window_s + margin)


def timeline(client, sim):
    return client.get(sim.root_url + "/stats/timeline").json()


def ratelimit_headers(headers):
    return {k.lower(): v for k, v in headers.items()
            if "ratelimit" in k.lower() or "tokenlimit" in k.lower() or "retry-after" in k.lower()}


def fake_clock(wall0=1_000_000.0):
    c = Clock()
    c.mono0, c.wall0 = 0.0, wall0
    return c


# --------------------------------------------------------------------------- limiter objects


def test_bucket_starts_full_and_refills():
    b = Bucket(60, now=0.0)  # 1 per second, capacity 60
    assert b.remaining(0.0) == 60 and b.wait_for(60, 0.0) == 0
    assert b.wait_for(61, 0.0) == math.inf  # more than the minute: never
    b.take(60, 0.0)
    assert b.wait_for(1, 0.0) == pytest.approx(1.0)
    assert b.wait_for(1, 0.5) == pytest.approx(0.5)
    assert b.reset_in(0.5) == pytest.approx(59.5)
    b.take(5, 1.0)  # a charge may go into debt (a counted 429, tokens charged as generated)
    assert b.remaining(1.0) == pytest.approx(-4.0)
    assert b.wait_for(1, 1.0) == pytest.approx(5.0)
    b.refund(None, 1000, 2.0)  # a refund never overfills
    assert b.remaining(2.0) == 60


def test_fixed_window_quantizes_and_resets_each_window():
    clock = fake_clock(1_000_000.0)  # a whole second: instant 0 starts a window
    w = FixedWindow(600, 1.0, clock)  # 10 per second
    assert w.capacity == 10
    for _ in range(10):
        assert w.wait_for(1, 0.1) == 0
        w.take(1, 0.1)
    assert w.wait_for(1, 0.1) == pytest.approx(0.9)  # until the next window, not 0.1 s
    assert w.wait_for(1, 0.999) == pytest.approx(0.001)
    assert w.remaining(1.0) == 10 and w.wait_for(1, 1.0) == 0  # a new window starts from zero
    assert w.wait_for(11, 1.0) == math.inf
    # a refund reaches only the window that was charged
    r = w.take(4, 1.2)
    w.refund(r, 3, 1.3)
    assert w.remaining(1.3) == 9
    w.take(5, 1.4)
    w.refund(r, 5, 2.1)  # the next window: nothing to give back
    assert w.remaining(2.1) == 10


def test_fixed_window_of_ten_seconds_aligned_to_the_clock():
    clock = fake_clock(1_000_005.0)  # half way through a 10 s window of the clock
    w = FixedWindow(600, 10.0, clock)  # Azure's 10 s period: 100 per window
    w.take(100, 0.0)
    assert w.wait_for(1, 0.0) == pytest.approx(5.0)
    assert w.reset_in(0.0) == pytest.approx(5.0)
    assert w.remaining(5.0) == 100


def test_fixed_window_fractional_share_keeps_the_minute_exact():
    w = FixedWindow(90, 1.0, fake_clock())  # 1.5 per second
    shares = [w.allowance(k) for k in range(1_000_000, 1_000_060)]
    assert set(shares) == {1.0, 2.0} and sum(shares) == 90
    assert w.capacity == 2


def test_sliding_window_counts_the_last_w_seconds():
    s = SlidingWindow(300, 2.0)  # 10 per any 2 s
    for i in range(10):
        s.take(1, i * 0.1)  # 10 admissions over 0.0 .. 0.9
    assert s.wait_for(1, 1.0) == pytest.approx(1.0)  # the first one leaves the window at 2.0
    assert s.remaining(2.05) == 1  # (0.0 left)
    assert s.wait_for(3, 2.05) == pytest.approx(0.15)  # three must leave: 0.1 and 0.2 too
    assert s.wait_for(11, 5.0) == math.inf
    e = s.take(1, 2.05)
    s.refund(e, 1, 2.5)
    assert s.remaining(2.5) == pytest.approx(10 - 4)  # 0.5 .. 0.9 still in the window
    assert s.reset_in(2.5) == pytest.approx(2.05 + 2.0 - 2.5)


def test_gcra_burst_then_one_per_interval():
    g = GCRA(600, 1.0, now=0.0)  # one every 0.1 s, 1 s of tolerance: 10 at once
    assert g.capacity == 10
    admitted = 0
    for _ in range(30):
        if g.wait_for(1, 0.0) == 0:
            g.take(1, 0.0)
            admitted += 1
    assert admitted == 10
    assert g.wait_for(1, 0.0) == pytest.approx(0.1)
    assert g.wait_for(1, 0.1) == 0  # then spaced: one per 0.1 s
    g.take(1, 0.1)
    assert g.wait_for(1, 0.1) == pytest.approx(0.1)
    assert g.reset_in(0.1) == pytest.approx(1.0)
    assert GCRA(30, 1.0, now=0.0).capacity == 1  # at least one unit, whatever the rate


@pytest.mark.parametrize("mode", LIBRARY_MODES)
def test_a_window_the_limits_library_enforces_admits_its_share_then_says_when(mode):
    """The library's own arithmetic and clock: 10 a second admitted, the 11th waits until its
    window (or the weight of the one before) lets it in, within a window's length or two; more
    than a window holds never fits; what it charged it keeps."""
    w = LibraryWindow(mode, per_minute=600, window_s=1)
    assert w.capacity == 10 and w.wait_for(1, 0.0) == 0.0 and w.reset_in(0.0) == 0.0
    took = 0
    while w.wait_for(1, 0.0) == 0.0 and took < 12:  # (the counter may roll a window meanwhile)
        w.take(1, 0.0)
        took += 1
    assert 10 <= took <= 11, took
    assert 0.0 < w.wait_for(1, 0.0) <= 2.0 and w.remaining(0.0) <= 1
    assert w.wait_for(11, 0.0) == math.inf
    w.refund(None, 5, 0.0)
    assert w.remaining(0.0) <= 1


def test_config_validation_and_aliases():
    assert SimConfig(no_retry_after=True).retry_after == "none"
    assert SimConfig(no_ratelimit_headers=True).headers == "none"
    cfg = parse_args(["--limit_mode", "fixed", "--window_s", "10", "--token_window_s", "60", "--rpm", "600",
                      "--no_body_hint", "--count_rejected"])
    assert cfg.mode_for("rpm") == ("fixed", 10.0) and cfg.mode_for("tpm") == ("fixed", 60.0)
    assert cfg.body_hint is False and cfg.count_rejected is True
    with pytest.raises(SystemExit):  # less than one request per sliding window
        parse_args(["--limit_mode", "sliding", "--window_s", "1", "--rpm", "30"])
    with pytest.raises(SystemExit):
        parse_args(["--headers", "klingon"])
    with pytest.raises(SystemExit):  # the library counts whole seconds of window
        parse_args(["--limit_mode", "limits-fixed", "--window_s", "1.5", "--rpm", "600"])
    with pytest.raises(SystemExit):  # ... and refunds nothing
        parse_args(["--limit_mode", "limits-counter", "--tpm", "300000"])
    assert parse_args(["--limit_mode", "limits-counter", "--tpm", "300000", "--token_accounting",
                       "reserve"]).mode_for("tpm") == ("limits-counter", 1.0)


def test_help_lists_the_modes():
    out = subprocess.run([sys.executable, "-m", "benchmarks.simserver", "--help"], cwd=REPO, capture_output=True,
                         text=True, timeout=60, check=True).stdout
    for word in ("bucket", "fixed", "sliding", "gcra", "--itpm", "--otpm", "--token_accounting", "reserve", "actual",
                 "--count_rejected", "--headers", "anthropic", "together", "ietf", "--headers_report",
                 "--retry_after", "--no_body_hint", "platform.openai.com", "learn.microsoft.com",
                 "platform.claude.com", "docs.together.ai", "draft-ietf-httpapi-ratelimit-headers",
                 "limits-fixed", "limits-moving", "limits-counter"):
        assert word in out, word


# --------------------------------------------------------------------------- modes on a live server


def test_fixed_per_second_admits_its_share_then_the_next_window():
    with start_simulator(rpm=600, limit_mode="fixed", window_s=1) as s, httpx.Client() as c:
        to_window_start()
        res = burst(s.base_url, [small()] * 40)
        codes = [st for st, _, _ in res]
        assert set(codes) <= {200, 429}
        for st, h, d in res:
            if st == 429:
                assert d["error"]["type"] == "requests"
                assert 1 <= int(h["retry-after-ms"]) <= 1000  # until the window ends, at most 1 s
        tl = timeline(c, s)
        per_window = tl["admitted"]  # whole seconds of the server's clock = the 1 s windows
        assert max(per_window) == 10  # 40 in a burst: some window got >= 10 of them and admitted exactly 10
        assert all(n <= 10 for n in per_window)
        assert sum(per_window) == codes.count(200) and sum(tl["rate_limited"]) == codes.count(429) > 0
        to_window_start()
        assert post(c, s).status_code == 200  # the next window admits again


def test_a_round_trip_delays_every_answer_a_429_too():
    """--rtt: half a round trip before a request reaches the limits, half before its answer
    leaves; a 429 comes back a round trip after it was sent, not at once."""
    rtt = 0.4
    with start_simulator(rpm=60, limit_mode="fixed", window_s=1, rtt=rtt) as s, httpx.Client() as c:
        to_window_start()
        timed = []
        for _ in range(2):  # one a second is allowed: the second in the window is refused
            t0 = time.monotonic()
            r = post(c, s)
            timed.append((r.status_code, time.monotonic() - t0))
        (ok, t_ok), (no, t_no) = timed
        if t_ok < 0.6:  # both in one window of the server's clock (not so on a loaded machine)
            assert (ok, no) == (200, 429)
        assert 0.8 * rtt <= t_no < 0.8 * rtt + 1.0 and 0.8 * rtt <= t_ok
    with start_simulator(rpm=60, limit_mode="fixed", window_s=1) as s, httpx.Client() as c:
        to_window_start()
        post(c, s)
        t0 = time.monotonic()
        assert post(c, s).status_code == 429 and time.monotonic() - t0 < 0.8 * rtt


def test_fixed_ten_second_window_reports_the_window():
    # Azure's other period: 60 RPM over 10 s windows = 10 per window, reported per window
    with start_simulator(rpm=60, limit_mode="fixed", window_s=10, headers_report="window") as s, httpx.Client() as c:
        r = post(c, s)
        assert r.status_code == 200
        assert r.headers["x-ratelimit-limit-requests"] == "10"
        assert r.headers["x-ratelimit-remaining-requests"] in {"9", "10"}  # 10 if a new window began meanwhile
        assert DURATION.match(r.headers["x-ratelimit-reset-requests"])


def test_sliding_never_admits_more_than_the_window_share():
    with start_simulator(rpm=300, limit_mode="sliding", window_s=2) as s, httpx.Client() as c:
        start, sent, codes = time.monotonic(), 0, []
        while time.monotonic() - start < 4.0 and sent < 1500:  # hammer, ignoring Retry-After
            codes.append(post(c, s).status_code)
            sent += 1
            time.sleep(0.005)
        elapsed = time.monotonic() - start
        tl = timeline(c, s)
        adm = tl["admitted"]
        # any two consecutive whole seconds are a 2 s span: a sliding window never holds more than 10
        assert all(a + b <= 10 for a, b in zip(adm, adm[1:], strict=False)), adm
        assert codes.count(200) == sum(adm) and codes.count(429) > 0
        assert 10 <= sum(adm) <= 10 * (math.ceil(elapsed / 2) + 1)
        st = s.stats()
        assert st["rate_limited"] == st["rate_limited_requests"] == codes.count(429)


def test_gcra_admits_its_burst_then_spaces_requests():
    with start_simulator(rpm=600, limit_mode="gcra", burst=1) as s, httpx.Client() as c:
        t = time.monotonic()
        res = burst(s.base_url, [small()] * 30)
        took = time.monotonic() - t
        ok = [st for st, _, _ in res].count(200)
        assert 10 <= ok <= 10 + math.ceil(took * 10) + 1  # the burst, plus one per 0.1 s it took
        waits = [int(h["retry-after-ms"]) for st, h, _ in res if st == 429]
        assert waits and max(waits) <= 101  # spaced: the next unit is at most one interval away
        # then one per interval (0.1 s), not a lump per window
        start, spaced = time.monotonic(), []
        while time.monotonic() - start < 1.5:
            r = post(c, s)
            spaced.append(r.status_code)
            if r.status_code == 429:
                assert int(r.headers["retry-after-ms"]) <= 101
            time.sleep(0.01)
        elapsed = time.monotonic() - start
        assert 3 <= spaced.count(200) <= 10 * elapsed + 2


def test_gcra_for_requests_beside_a_token_bucket():
    # Anthropic-like: tokens in a per-minute bucket, requests spaced ("60 RPM ... as 1 request per second")
    with start_simulator(rpm=60, tpm=100000, limit_mode="gcra", token_limit_mode="bucket") as s, httpx.Client() as c:
        assert post(c, s).status_code == 200
        r = post(c, s)
        assert r.status_code == 429 and r.json()["error"]["type"] == "requests"  # a bucket would admit 60
        assert 1 <= int(r.headers["retry-after-ms"]) <= 1000  # the next slot, within one interval
        assert r.headers["x-ratelimit-limit-tokens"] == "100000"


def test_a_request_larger_than_the_enforced_window_is_too_large():
    # 6000 TPM enforced per second = 100 tokens a window: a ~75 + 50 token request can never fit
    with start_simulator(tpm=6000, limit_mode="fixed", window_s=1) as s, httpx.Client() as c:
        r = post(c, s, small(max_tokens=50))
        assert r.status_code == 429
        err = r.json()["error"]
        assert err["type"] == "tokens" and "Request too large" in err["message"]
        assert "enforced as 100 per 1s" in err["message"]
        assert "Retry-After" not in r.headers
        assert post(c, s, small(max_tokens=10)).status_code == 200  # ~85 tokens fit
        assert s.stats()["too_large"] == 1


# --------------------------------------------------------------------------- what a request costs


@pytest.mark.parametrize("accounting", ["refund", "reserve", "max", "actual"])
def test_token_accounting(accounting):
    with start_simulator(tpm=3000, token_accounting=accounting) as s, httpx.Client() as c:
        r = post(c, s, body(MC, k=20, max_tokens=2000))
        assert r.status_code == 200
        u = r.json()["usage"]
        assert u["completion_tokens"] > 400
        charged = {
            "refund": u["prompt_tokens"] + u["completion_tokens"],  # reserved, unused part given back
            "reserve": u["prompt_tokens"] + 2000,  # prompt + max_tokens, kept
            "max": 2000,  # max(prompt, max_tokens), kept
            "actual": u["prompt_tokens"] + u["completion_tokens"],  # the prompt, then what was generated
        }[accounting]
        rem = int(r.headers["x-ratelimit-remaining-tokens"])
        assert 0 <= rem - (3000 - charged) <= 30  # (plus what refilled meanwhile, 50 tokens/s)


def test_actual_accounting_ignores_max_tokens():
    with start_simulator(tpm=3000, otpm=600, token_accounting="actual") as s, httpx.Client() as c:
        r = post(c, s, small(max_tokens=100000))  # far above both limits: only what is generated counts
        assert r.status_code == 200
        assert s.stats()["too_large"] == 0


def test_output_tokens_limit_reserved_refunded_or_kept():
    # OTPM 600: a request reserves its max_tokens (400)
    with start_simulator(otpm=600, token_accounting="reserve", headers="anthropic") as s, httpx.Client() as c:
        first = post(c, s, small(max_tokens=400))
        assert first.status_code == 200
        assert first.headers["anthropic-ratelimit-output-tokens-limit"] == "600"
        r = post(c, s, small(max_tokens=400))
        assert r.status_code == 429  # 400 kept: 200 left
        err = r.json()["error"]
        assert err["type"] == "output_tokens" and "output tokens per min (OTPM)" in err["message"]
        assert s.stats()["rate_limited_output_tokens"] == 1
    with start_simulator(otpm=600, token_accounting="refund") as s, httpx.Client() as c:
        assert [post(c, s, small(max_tokens=400)).status_code for _ in range(2)] == [200, 200]  # unused given back
        r = post(c, s, small(max_tokens=700))  # more than the whole minute: never
        assert r.status_code == 429 and "Request too large" in r.json()["error"]["message"]
        assert r.json()["error"]["type"] == "output_tokens"


def test_input_tokens_limit():
    with start_simulator(itpm=200, headers="anthropic") as s, httpx.Client() as c:
        first = post(c, s)
        p = first.json()["usage"]["prompt_tokens"]
        assert 60 <= p <= 100
        codes = [first.status_code] + [post(c, s).status_code for _ in range(2)]
        assert codes == [200, 200, 429]  # 2 prompts fit in 200, not 3 (the bucket refills 3.3/s)
        r = post(c, s)
        err = r.json()["error"]
        assert err["type"] == "input_tokens" and "input tokens per min (ITPM)" in err["message"]
        assert r.headers["anthropic-ratelimit-input-tokens-limit"] == "200"
        assert "anthropic-ratelimit-output-tokens-limit" not in r.headers
    with start_simulator(itpm=50) as s, httpx.Client() as c:
        r = post(c, s)
        assert r.status_code == 429 and "Request too large" in r.json()["error"]["message"]


@pytest.mark.parametrize("counted", [False, True], ids=["not_counted", "counted"])
def test_count_rejected_makes_a_storm_last_longer(counted):
    # 600 RPM spaced (one per 0.1 s, 5 at once); a client that ignores Retry-After sends 3 bursts of 100
    with start_simulator(rpm=600, limit_mode="gcra", burst=0.5, count_rejected=counted) as s, httpx.Client() as c:
        rejected = 0
        for _ in range(3):
            rejected += [st for st, _, _ in burst(s.base_url, [small()] * 100)].count(429)
        assert rejected >= 250
        time.sleep(0.6)
        r = post(c, s)
        st = s.stats()
        if counted:  # every refused request pushed the next free slot 0.1 s further: ~25 s of debt
            assert r.status_code == 429 and int(r.headers["retry-after-ms"]) > 10000
            assert st["rejected_counted"] == rejected + 1
        else:  # the storm left nothing behind
            assert r.status_code == 200 and st["rejected_counted"] == 0


# --------------------------------------------------------------------------- timeline


def test_timeline_sums_match_stats_and_reset():
    with start_simulator(rpm=600, tpm=30000, limit_mode="gcra", burst=2) as s, httpx.Client() as c:
        res = burst(s.base_url, [small(max_tokens=100)] * 60)  # (a gcra depth of 1000 tokens holds ~5)
        assert {st for st, _, _ in res} == {200, 429}
        for _ in range(5):
            post(c, s, small(max_tokens=100))
        tl, st = timeline(c, s), s.stats()
        assert isinstance(tl["t0"], int) and tl["t0"] <= time.time() < tl["t0"] + tl["seconds"] + 1
        for key in ("admitted", "rate_limited", "ok", "input_tokens", "output_tokens"):
            assert len(tl[key]) == tl["seconds"]
        assert sum(tl["admitted"]) == st["admitted"] == st["ok"] == sum(tl["ok"])
        assert sum(tl["rate_limited"]) == st["rate_limited"] > 0
        assert sum(tl["input_tokens"]) == st["prompt_tokens"] > 0
        assert sum(tl["output_tokens"]) == st["completion_tokens"] > 0
        lim = tl["limits"]
        assert lim["rpm"] == 600 and lim["tpm"] == 30000 and lim["per_second"]["rpm"] == 10
        assert lim["enforced"]["rpm"] == {"mode": "gcra", "capacity": 20, "window_s": 2}
        assert lim["limit_mode"] == "gcra" and lim["token_accounting"] == "refund"
        assert st["limits"] == lim  # /stats says the configuration too
        s.reset()
        tl2 = timeline(c, s)
        assert tl2["t0"] >= tl["t0"] and sum(tl2["admitted"]) == sum(tl2["rate_limited"]) == 0


# --------------------------------------------------------------------------- what the server says

IETF_POLICY = re.compile(r'^"([a-z-]+)";q=(\d+)(;qu="tokens")?;w=(\d+)$')
IETF_STATE = re.compile(r'^"([a-z-]+)";r=(\d+);t=(\d+)$')


def refused(client, sim, payload=None):
    """The first 429 of a few requests (the limits in these tests let at most one through)."""
    for _ in range(3):
        r = post(client, sim, payload)
        if r.status_code == 429:
            return r
    raise AssertionError("no 429")


def test_openai_dialect():
    with start_simulator(rpm=60, tpm=60000, itpm=30000) as s, httpx.Client() as c:
        r = post(c, s, small(max_tokens=100))
        h = ratelimit_headers(r.headers)
        assert set(h) == {f"x-ratelimit-{w}-{k}" for w in ("limit", "remaining", "reset") for k in ("requests", "tokens")}
        assert h["x-ratelimit-limit-requests"] == "60" and h["x-ratelimit-limit-tokens"] == "60000"
        assert DURATION.match(h["x-ratelimit-reset-requests"]) and DURATION.match(h["x-ratelimit-reset-tokens"])


def test_anthropic_dialect():
    with start_simulator(rpm=1, itpm=30000, otpm=8000, headers="anthropic", retry_after="seconds") as s, \
            httpx.Client() as c:
        r = post(c, s, small(max_tokens=1000))
        now = datetime.datetime.now(datetime.timezone.utc)
        h = ratelimit_headers(r.headers)
        names = {f"anthropic-ratelimit-{k}-{w}" for k in ("requests", "input-tokens", "output-tokens", "tokens")
                 for w in ("limit", "remaining", "reset")}
        assert set(h) == names  # and no x-ratelimit-*
        assert h["anthropic-ratelimit-requests-limit"] == "1" and h["anthropic-ratelimit-requests-remaining"] == "0"
        assert h["anthropic-ratelimit-input-tokens-limit"] == "30000"
        assert h["anthropic-ratelimit-output-tokens-limit"] == "8000"
        assert h["anthropic-ratelimit-tokens-limit"] == "38000"  # the sum of input and output
        for k in ("input-tokens", "output-tokens", "tokens"):  # "rounded to the nearest thousand"
            assert int(h[f"anthropic-ratelimit-{k}-remaining"]) % 1000 == 0
        assert h["anthropic-ratelimit-output-tokens-remaining"] == "8000"  # 8000 - 1000 + ~970 refunded
        for k in ("requests", "input-tokens", "output-tokens", "tokens"):
            reset = datetime.datetime.fromisoformat(h[f"anthropic-ratelimit-{k}-reset"])  # RFC 3339
            assert reset.tzinfo is not None
            assert now - datetime.timedelta(seconds=2) <= reset <= now + datetime.timedelta(seconds=62)
        requests_reset = datetime.datetime.fromisoformat(h["anthropic-ratelimit-requests-reset"])
        assert requests_reset >= now + datetime.timedelta(seconds=58)  # 1 RPM: full again in a minute
        r = refused(c, s)
        assert r.headers["retry-after"] in {"59", "60"} and "retry-after-ms" not in r.headers


def test_groq_dialect_states_the_day_not_the_minute():
    """Groq's request headers are the day's (RPD), a bucket whose reset is the time what was used
    takes to come back; RPM is enforced but stated nowhere; tokens are per minute."""
    with start_simulator(rpm=2, tpm=60000, rpd=14400, headers="groq", retry_after="seconds") as s, \
            httpx.Client() as c:
        first = ratelimit_headers(post(c, s, small(max_tokens=100)).headers)
        assert set(first) == {f"x-ratelimit-{w}-{k}" for w in ("limit", "remaining", "reset")
                              for k in ("requests", "tokens")}
        assert first["x-ratelimit-limit-requests"] == "14400"  # the day's, not --rpm
        assert first["x-ratelimit-remaining-requests"] == "14399"
        assert first["x-ratelimit-limit-tokens"] == "60000"
        second = ratelimit_headers(post(c, s, small(max_tokens=100)).headers)
        assert second["x-ratelimit-remaining-requests"] == "14398"
        # a day's bucket refills 14,400 / 86,400 s: two requests take ~12 s to come back
        assert DURATION.match(second["x-ratelimit-reset-requests"])
        reset = float(re.fullmatch(r"([\d.]+)s", second["x-ratelimit-reset-requests"]).group(1))
        assert 10.0 <= reset <= 12.5
        r = post(c, s)  # the third request in a minute of 2 RPM: refused by a limit no header states
        assert r.status_code == 429 and "requests per min (RPM)" in r.json()["error"]["message"]
        assert r.headers["x-ratelimit-limit-requests"] == "14400" and "retry-after" in r.headers
        limits = timeline(c, s)["limits"]
        assert limits["rpd"] == 14400 and limits["enforced"]["rpd"]["window_s"] == 86400


def test_cerebras_dialect_names_the_period_and_states_no_rpm():
    """Cerebras: x-ratelimit-*-requests-day (the UTC day) and -tokens-minute, resets in seconds
    with their fraction, as its documented example; RPM enforced, stated nowhere."""
    with start_simulator(rpm=2, tpm=60000, rpd=14400, headers="cerebras", token_limit_mode="fixed",
                         token_window_s=60, headers_report="window") as s, httpx.Client() as c:
        r = post(c, s, small(max_tokens=100))
        h = ratelimit_headers(r.headers)
        assert set(h) == {f"x-ratelimit-{w}-{k}" for w in ("limit", "remaining", "reset")
                          for k in ("requests-day", "tokens-minute")}
        assert (h["x-ratelimit-limit-requests-day"], h["x-ratelimit-remaining-requests-day"]) == (
            "14400", "14399")
        assert h["x-ratelimit-limit-tokens-minute"] == "60000"
        to_midnight = 86400 - time.time() % 86400
        off = float(h["x-ratelimit-reset-requests-day"]) - to_midnight
        assert abs((off + 43200) % 86400 - 43200) < 2.0  # (a midnight between the two: ~0 s)
        assert 0 < float(h["x-ratelimit-reset-tokens-minute"]) <= 60.0
        assert "." in h["x-ratelimit-reset-tokens-minute"]  # seconds with their fraction
        post(c, s)
        refused = post(c, s)  # the third request in a minute of 2 RPM (a bucket)
        assert refused.status_code == 429
        assert "requests per min (RPM)" in refused.json()["error"]["message"]
        assert timeline(c, s)["limits"]["enforced"]["rpd"]["window_s"] == 86400


def test_fireworks_dialect_states_prompt_and_generated_tokens():
    with start_simulator(itpm=3_600_000, otpm=36000, headers="fireworks",
                         token_accounting="actual") as s, httpx.Client() as c:
        h = ratelimit_headers(post(c, s, small(max_tokens=100)).headers)
        # the limits only: Fireworks documents no remaining count and no reset
        assert h == {"x-ratelimit-limit-tokens-prompt": "3600000",
                     "x-ratelimit-limit-tokens-generated": "36000"}


def test_together_dialect_per_second():
    with start_simulator(rpm=600, tpm=60000, limit_mode="fixed", window_s=1, headers="together",
                         headers_report="window", retry_after="seconds") as s, httpx.Client() as c:
        to_window_start()
        r = post(c, s, small(max_tokens=100))
        h = ratelimit_headers(r.headers)
        assert set(h) == {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset",
                          "x-tokenlimit-limit", "x-tokenlimit-remaining"}
        assert h["x-ratelimit-limit"] == "10" and h["x-tokenlimit-limit"] == "1000"  # per second
        assert int(h["x-ratelimit-remaining"]) <= 9 and int(h["x-tokenlimit-remaining"]) <= 1000 - 100
        assert 0 < float(h["x-ratelimit-reset"]) <= 1.0  # seconds, to the end of the window
    with start_simulator(rpm=600, headers="together") as s, httpx.Client() as c:
        assert post(c, s).headers["x-ratelimit-limit"] == "600"  # --headers_report minute


def third_in_a_clock_minute_of_two(c, s):
    """Two requests and a third in one minute of the clock, on a server that allows two a minute
    and states its limits on 429s only: the third's 429."""
    early_in_a_clock_minute(within_s=58.0)
    ok = [post(c, s) for _ in range(2)]
    assert all(r.status_code == 200 and not ratelimit_headers(r.headers) for r in ok)
    r = post(c, s)
    assert r.status_code == 429, r.text
    return r


def test_openrouter_dialect_on_429s_only_with_resets_in_unix_milliseconds():
    """OpenRouter states its limits only on a 429 ("X-RateLimit-* headers on the error
    response"), the reset the refusing window's end in Unix ms, the three repeated in the body;
    free models' RPD is the UTC day."""
    with start_simulator(rpm=2, headers="openrouter", retry_after="none", limit_mode="fixed",
                         window_s=60) as s, httpx.Client() as c:
        r = third_in_a_clock_minute_of_two(c, s)
        h = ratelimit_headers(r.headers)
        assert set(h) == {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"}
        assert (h["x-ratelimit-limit"], h["x-ratelimit-remaining"]) == ("2", "0")
        reset_ms = int(h["x-ratelimit-reset"])
        assert 0 < reset_ms / 1000 - time.time() <= 60.5
        assert abs(reset_ms - round(reset_ms / 60000) * 60000) <= 1  # a whole minute's end
        error = r.json()["error"]
        assert error["message"].startswith("Rate limit exceeded: free-models-per-min")
        assert {k.lower(): v for k, v in error["metadata"]["headers"].items()} == h
    with start_simulator(rpm=600, rpd=1, headers="openrouter", retry_after="none") as s, \
            httpx.Client() as c:
        assert post(c, s).status_code == 200
        r = post(c, s)
        assert r.status_code == 429 and "free-models-per-day" in r.json()["error"]["message"]
        reset_ms = int(r.headers["X-RateLimit-Reset"])
        assert abs(reset_ms - round(reset_ms / 86_400_000) * 86_400_000) <= 1  # the UTC midnight
        assert 0 < reset_ms / 1000 - time.time() <= 86_400
        assert timeline(c, s)["limits"]["enforced"]["rpd"]["window_s"] == 86400


def test_gemini_dialect_in_google_s_error_model_and_read_by_the_client():
    """Gemini: no rate-limit header; a 429's body names the quota it broke (QuotaFailure: its id,
    unit and period, and its value), the wait to the nanosecond in the message and in whole
    seconds in RetryInfo; the client's parser reads the limit, its kind and the wait."""
    from creator.ratehints import RateLimitHint

    with start_simulator(rpm=2, headers="gemini", retry_after="none", limit_mode="fixed",
                         window_s=60) as s, httpx.Client() as c:
        r = third_in_a_clock_minute_of_two(c, s)
        assert not ratelimit_headers(r.headers)
        assert "retry-after" not in {k.lower() for k in r.headers}
        error = r.json()["error"]
        assert error["status"] == "RESOURCE_EXHAUSTED"
        said = float(re.search(r"Please retry in ([0-9.]+)s\.", error["message"])[1])
        assert 0 < said <= 60.5
        kinds = {d["@type"].rsplit(".", 1)[-1]: d for d in error["details"]}
        violation = kinds["QuotaFailure"]["violations"][0]
        assert violation["quotaId"] == "GenerateRequestsPerMinutePerProjectPerModel"
        assert violation["quotaValue"] == "2"
        assert kinds["RetryInfo"]["retryDelay"] == f"{math.floor(said)}s"
        hint = RateLimitHint.from_reply(r.headers, r.content)
        assert hint.limited == "requests" and hint.retry_after == pytest.approx(said)
        assert (hint.requests.limit, hint.requests.window) == (2, 60)
    with start_simulator("--no_body_hint", rpm=600, itpm=150, headers="gemini",
                         retry_after="none") as s, \
            httpx.Client() as c:
        statuses = [post(c, s) for _ in range(4)]  # prompts of ~75 tokens: the third is refused
        refused = next(r for r in statuses if r.status_code == 429)
        hint = RateLimitHint.from_reply(refused.headers, refused.content)
        assert "retry in" not in refused.json()["error"]["message"]
        assert hint.limited == "input" and hint.input_tokens.limit == 150
        assert hint.retry_after is not None and hint.retry_after == int(hint.retry_after)


def test_ietf_dialect():
    with start_simulator(rpm=60, tpm=60000, otpm=6000, headers="ietf") as s, httpx.Client() as c:
        r = post(c, s, small(max_tokens=100))
        policies = [IETF_POLICY.match(p.strip()) for p in r.headers["RateLimit-Policy"].split(",")]
        states = [IETF_STATE.match(p.strip()) for p in r.headers["RateLimit"].split(",")]
        assert all(policies) and all(states)
        pol = {m[1]: (int(m[2]), bool(m[3]), int(m[4])) for m in policies}
        state = {m[1]: (int(m[2]), int(m[3])) for m in states}
        assert pol == {"requests": (60, False, 60), "tokens": (60000, True, 60), "output-tokens": (6000, True, 60)}
        assert set(state) == set(pol)
        assert state["requests"][0] == 59 and 1 <= state["requests"][1] <= 2
        assert not any(k.lower().startswith("x-ratelimit") for k in r.headers)
    with start_simulator(rpm=600, limit_mode="fixed", window_s=2, headers="ietf", headers_report="window") as s, \
            httpx.Client() as c:
        r = post(c, s)
        assert r.headers["RateLimit-Policy"] == '"requests";q=20;w=2'


def test_no_headers_but_retry_after():
    with start_simulator(rpm=1, headers="none") as s, httpx.Client() as c:
        r = post(c, s)
        assert r.status_code == 200 and not ratelimit_headers(r.headers)
        r = refused(c, s)
        assert set(ratelimit_headers(r.headers)) == {"retry-after", "retry-after-ms"}
    with start_simulator("--no_ratelimit_headers", rpm=1, headers="anthropic") as s, httpx.Client() as c:
        assert not ratelimit_headers(post(c, s).headers)  # the alias wins


def test_minute_report_shows_room_while_the_window_refuses():
    # enforced per second, reported per minute (OpenAI, Azure): a 429 while "remaining" says 590
    with start_simulator(rpm=600, limit_mode="fixed", window_s=1) as s:
        to_window_start()
        res = burst(s.base_url, [small()] * 25)
        refusals = [h for st, h, _ in res if st == 429]
        assert refusals
        for h in refusals:
            assert h["x-ratelimit-limit-requests"] == "600"
            assert int(h["x-ratelimit-remaining-requests"]) >= 570
    with start_simulator(rpm=600, limit_mode="fixed", window_s=1, headers_report="window") as s:
        to_window_start()
        res = burst(s.base_url, [small()] * 25)
        refusals = [h for st, h, _ in res if st == 429]
        assert refusals
        for h in refusals:
            assert h["x-ratelimit-limit-requests"] == "10"
            assert h["x-ratelimit-remaining-requests"] == "0"


@pytest.mark.parametrize("form", ["ms", "seconds", "date", "none"])
def test_retry_after_forms(form):
    with start_simulator(rpm=1, retry_after=form) as s, httpx.Client() as c:
        assert post(c, s).status_code == 200
        r = refused(c, s)
        now = datetime.datetime.now(datetime.timezone.utc)
        h = ratelimit_headers(r.headers)
        assert h["x-ratelimit-remaining-requests"] == "0"
        if form == "none":
            assert "retry-after" not in h and "retry-after-ms" not in h
            return
        if form == "date":
            assert "retry-after-ms" not in h
            when = email.utils.parsedate_to_datetime(h["retry-after"])  # RFC 9110 HTTP-date
            assert h["retry-after"].endswith(" GMT") and when.tzinfo is not None
            assert 57 <= (when - now).total_seconds() <= 62
            return
        assert h["retry-after"] in {"59", "60"}  # whole seconds, rounded up
        if form == "ms":
            assert 58000 < int(h["retry-after-ms"]) <= 60000
            assert math.ceil(int(h["retry-after-ms"]) / 1000) == int(h["retry-after"])
        else:
            assert "retry-after-ms" not in h


@pytest.mark.parametrize("hint", [True, False], ids=["hint", "no_hint"])
def test_body_hint(hint):
    with start_simulator("--body_hint" if hint else "--no_body_hint", rpm=1) as s, httpx.Client() as c:
        post(c, s)
        msg = refused(c, s).json()["error"]["message"]
        assert msg.startswith("Rate limit reached for requests per min (RPM) on test-model: Limit 1, Used 1, Requested 1.")
        if hint:
            m = re.search(r" Please try again in (\S+)\.$", msg)
            assert m and DURATION.match(m[1])
        else:
            assert msg.endswith("Requested 1.") and "try again" not in msg


# --------------------------------------------------------------------------- truncation fault


def test_p_truncated_cuts_the_last_object_and_nothing_else():
    """--p_truncated: a 200 whose content stops inside its last object, finish_reason "length";
    the objects before it are whole and complete (no field removed, unlike --p_malformed)."""
    with start_simulator("--p_truncated", "1", seed=3) as s, httpx.Client() as c:
        for k in (1, 3, 5):
            r = post(c, s, body(YN_CLOSED, k=k))
            assert r.status_code == 200
            reply = r.json()
            choice = reply["choices"][0]
            assert choice["finish_reason"] == "length"
            content = choice["message"]["content"]
            parts = content.split("\n\n")
            assert len(parts) == k
            for part in parts[:-1]:  # whole objects, every field there
                obj = json.loads(part)
                assert set(obj) == {"Question", "Options", "Answer"}
            assert parts[-1].startswith("{")
            with pytest.raises(ValueError):
                json.loads(parts[-1])  # cut mid-object
            assert reply["usage"]["completion_tokens"] == max(1, -(-len(content) // 4))
        st = s.stats()
        assert st["truncated"] == 3 and st["ok"] == 3 and st["malformed"] == 0


def test_p_truncated_share_and_other_faults_unchanged():
    """About the share asked for is cut; --p_500 and the other flags still work beside it, and a
    run without the flag draws the same replies as before it existed (same seed, same content)."""
    with start_simulator(p_truncated=0.5, p_500=0.2, seed=5) as s, httpx.Client() as c:
        finishes = []
        for _ in range(60):
            r = post(c, s)
            if r.status_code == 200:
                finishes.append(r.json()["choices"][0]["finish_reason"])
            else:
                assert r.status_code in (500, 502, 503)
        st = s.stats()
        assert st["errors_5xx"] + st["ok"] == 60 and 3 <= st["errors_5xx"] <= 25
        assert finishes.count("length") == st["truncated"]
        assert 0.2 * len(finishes) <= st["truncated"] <= 0.8 * len(finishes)
    replies = []
    for args in ((), ("--p_truncated", "0")):
        with start_simulator(*args, seed=9, p_malformed=0.3) as s, httpx.Client() as c:
            replies.append([post(c, s).json()["choices"][0]["message"]["content"] for _ in range(8)])
    assert replies[0] == replies[1]


def test_p_truncated_flag_spellings():
    assert parse_args(["--p_truncated", "0.2"]).p_truncated == 0.2
    assert parse_args(["--p-truncated", "0.3"]).p_truncated == 0.3
    assert parse_args([]).p_truncated == 0.0
