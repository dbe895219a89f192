"""The limiter and retry policy, on a fake clock: no sleeping, no flakiness."""

from __future__ import annotations

import asyncio
import math
import random

import pytest

from creator.ratelimit import (
    Capacity,
    RateLimiter,
    RateLimitHint,
    RetryPolicy,
    parse_duration,
)


def test_in_flight_limit_waits_for_a_release():
    cap = Capacity(max_in_flight=2, rpm=None, tpm=None, now=0.0)
    for _ in range(2):
        assert cap.wait_time(10, 0.0) == 0
        cap.consume(10, 0.0)
    assert math.isinf(cap.wait_time(10, 0.0))
    cap.release(10, 5, 0.0)
    assert cap.wait_time(10, 0.0) == 0


def test_rpm_bucket_starts_full_then_refills_continuously():
    cap = Capacity(None, rpm=60, tpm=None, now=0.0)
    for _ in range(60):
        cap.consume(1, 0.0)
    assert cap.wait_time(1, 0.0) == pytest.approx(1.0)  # 60/min = one a second
    assert cap.wait_time(1, 0.5) == pytest.approx(0.5)
    assert cap.wait_time(1, 1.0) == 0


def test_tpm_reserves_then_refunds_from_usage():
    cap = Capacity(None, rpm=None, tpm=6000, now=0.0)
    cap.consume(5000, 0.0)
    assert cap.wait_time(2000, 0.0) == pytest.approx(10.0)  # 1000 missing at 100 tokens/s
    cap.release(reserved=5000, used=1200, now=0.0)  # the reply used less than max_tokens
    assert cap.wait_time(2000, 0.0) == 0
    cap.consume(4000, 0.0)
    cap.release(reserved=4000, used=None, now=0.0)  # a failed request keeps its reservation
    assert cap.tokens.level == pytest.approx(6000 - 1200 - 4000)


def test_the_three_limits_together_and_a_pause():
    cap = Capacity(max_in_flight=10, rpm=120, tpm=1200, now=0.0)
    assert not cap.fits(1201) and cap.fits(1200)
    cap.consume(1200, 0.0)
    assert cap.wait_time(600, 0.0) == pytest.approx(30.0)  # tokens are the tighter limit
    cap.pause(until=40.0)
    assert cap.wait_time(600, 30.0) == pytest.approx(10.0)


class FakeTimeLimiter(RateLimiter):
    """Does not sleep: each wait just yields, and the test moves the clock."""

    async def _wait(self, timeout):
        if timeout is None:
            await super()._wait(None)
        else:
            await asyncio.sleep(0)


def test_rate_limiter_never_exceeds_rpm_on_a_fake_clock():
    """200 callers, 60 rpm: over 10 simulated seconds at most 60 + 10 requests may start."""

    async def scenario():
        now = [0.0]
        limiter = FakeTimeLimiter(max_in_flight=None, rpm=60, tpm=None, clock=lambda: now[0])
        starts = []

        async def caller():
            await limiter.acquire(1)
            starts.append(now[0])
            limiter.release(1, 1)

        tasks = [asyncio.create_task(caller()) for _ in range(200)]
        for _ in range(1000):  # advance the fake clock in 10 ms steps, bounded
            await asyncio.sleep(0)
            now[0] += 0.01
            if now[0] >= 10:
                break
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return starts

    starts = asyncio.run(scenario())
    assert 60 <= len(starts) <= 71
    assert starts == sorted(starts)


def test_rate_limiter_serves_waiters_in_order_when_in_flight_frees():
    async def scenario():
        limiter = RateLimiter(max_in_flight=1, rpm=None, tpm=None)
        order = []

        async def caller(i):
            await limiter.acquire(1)
            order.append(i)
            await asyncio.sleep(0)
            limiter.release(1, 1)

        await asyncio.wait_for(asyncio.gather(*(caller(i) for i in range(20))), 5)
        return order

    assert asyncio.run(scenario()) == list(range(20))


@pytest.mark.parametrize(
    "text,seconds",
    [("1s", 1.0), ("6m0s", 360.0), ("120ms", 0.12), ("1h2m3.5s", 3723.5), ("2.5", 2.5),
     ("", None), ("soon", None), ("5x", None)],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == (pytest.approx(seconds) if seconds is not None else None)


def test_hint_prefers_retry_after_ms():
    hint = RateLimitHint.from_headers({"retry-after": "3", "retry-after-ms": "1500",
                                       "x-ratelimit-remaining-requests": "0",
                                       "x-ratelimit-reset-requests": "2s"})
    assert hint.retry_after == 1.5 and hint.remaining_requests == 0 and hint.reset_requests == 2
    assert RateLimitHint.from_headers({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}).retry_after is None


def test_retry_policy_backs_off_exponentially_with_jitter_and_honours_retry_after():
    policy = RetryPolicy(max_retries=8, base=0.5, cap=8.0)
    rng = random.Random(0)
    for attempt in range(10):
        delays = [policy.delay(attempt, None, rng) for _ in range(50)]
        assert all(0 <= d <= min(8.0, 0.5 * 2**attempt) for d in delays)
        assert len(set(delays)) > 1  # jitter spreads the retries
    assert 2.0 <= policy.delay(0, 2.0, rng) <= 2.0 + 1.0
    assert policy.delay(0, 100.0, rng) <= 8.0 + 1.0  # capped


def test_limiter_adopts_the_servers_limits_and_follows_its_count():
    now = [100.0]
    limiter = RateLimiter(max_in_flight=None, rpm=None, tpm=None, clock=lambda: now[0])
    limiter.observe(RateLimitHint.from_headers({
        "x-ratelimit-limit-requests": "120", "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "60s", "x-ratelimit-limit-tokens": "6000",
        "x-ratelimit-remaining-tokens": "3000", "x-ratelimit-reset-tokens": "30s"}))
    assert limiter.capacity.wait_time(1, now[0]) == pytest.approx(0.5)  # 120/min: one per 0.5 s
    assert limiter.capacity.server_tokens.level == pytest.approx(3000)
    # a user's own lower limit stays in force beside the server's
    mine = RateLimiter(max_in_flight=None, rpm=60, tpm=None, clock=lambda: now[0])
    mine.observe(RateLimitHint.from_headers({"x-ratelimit-limit-requests": "120",
                                             "x-ratelimit-remaining-requests": "100"}))
    assert mine.capacity.requests.capacity == 60 and mine.capacity.requests.level == 60
    assert mine.capacity.server_requests.level == 100
    for _ in range(60):
        mine.capacity.consume(1, now[0])
    assert mine.capacity.wait_time(1, now[0]) == pytest.approx(1.0)  # ours: 60/min
    # a remaining count without a limit lowers our own limit
    mine.observe(RateLimitHint.from_headers({"x-ratelimit-remaining-tokens": "0"}))
    assert mine.capacity.tokens is None
    theirs = RateLimiter(max_in_flight=None, rpm=None, tpm=600, clock=lambda: now[0])
    theirs.observe(RateLimitHint.from_headers({"x-ratelimit-remaining-tokens": "200"}))
    assert theirs.capacity.tokens.level == 200 and theirs.capacity.server_tokens is None


def test_spent_budget_without_a_limit_header_pauses_briefly():
    now = [0.0]
    limiter = RateLimiter(max_in_flight=None, rpm=None, tpm=None, clock=lambda: now[0])
    limiter.observe(RateLimitHint.from_headers({"x-ratelimit-remaining-requests": "0",
                                                "x-ratelimit-reset-requests": "20s"}))
    assert limiter.capacity.wait_time(1, 0.0) == pytest.approx(1.0)


def test_a_limit_the_server_does_not_state_is_learnt_from_429s():
    cap = Capacity(max_in_flight=None, rpm=None, tpm=None, now=0.0)
    for i in range(120):  # the server served 120 requests in the last minute, then said 429
        cap.record_success(i * 0.1)
    cap.record_rate_limited(12.0)
    assert cap.learned and cap.requests.capacity == 120
    assert cap.wait_time(1, 12.0) == pytest.approx(0.5)  # spent now, refills at 120/min
    cap.record_rate_limited(12.5)  # within a second: one cut per burst of 429s
    assert cap.requests.capacity == 120
    cap.record_rate_limited(14.0)
    assert cap.requests.capacity == pytest.approx(108)  # multiplicative decrease
    cap.record_success(18.0)  # 4 s without a 429: probe upwards
    assert cap.requests.capacity == pytest.approx(108 * 1.05)


def test_a_stated_limit_is_not_relearnt():
    cap = Capacity(max_in_flight=None, rpm=60, tpm=None, now=0.0)
    cap.record_rate_limited(1.0)
    assert not cap.learned and cap.requests.capacity == 60


def test_a_429_from_a_server_that_states_a_token_limit_invents_no_request_rate():
    """The server meters tokens and says so: its 429 means our token count was off by a little,
    not that it has a request limit to learn (that would cap us below its token budget)."""
    now = [0.0]
    limiter = RateLimiter(max_in_flight=None, rpm=None, tpm=None, clock=lambda: now[0])
    for i in range(120):
        now[0] = i * 0.05
        limiter.capacity.consume(100, now[0])
        limiter.observe(RateLimitHint.from_headers({"x-ratelimit-limit-tokens": "150000",
                                                    "x-ratelimit-remaining-tokens": "90000"}))
        limiter.release(100, 80)
    limiter.rate_limited()
    assert not limiter.capacity.learned and limiter.capacity.requests is None
    assert limiter.capacity.server_tokens.capacity == 150000


def test_the_servers_count_misses_what_went_out_after_the_reply():
    """A reply's remaining count is as of when the server wrote it: requests sent after the
    replying one may not be in it, so they are taken off. Trusting the count as it stood put
    3-6 429s into every 128-request burst against the simulator (tests/test_faults.py)."""
    now = [0.0]
    limiter = RateLimiter(max_in_flight=None, rpm=None, tpm=None, clock=lambda: now[0])
    cap = limiter.capacity

    async def send(n: int) -> list:
        return [await limiter.acquire(100) for _ in range(n)]

    sent = asyncio.run(send(16))

    def reply(requests_left: int, tokens_left: int) -> RateLimitHint:
        return RateLimitHint.from_headers({
            "x-ratelimit-limit-requests": "120",
            "x-ratelimit-remaining-requests": str(requests_left),
            "x-ratelimit-limit-tokens": "150000", "x-ratelimit-remaining-tokens": str(tokens_left)})

    # the server had counted only the first request when it replied to it
    limiter.observe(reply(119, 149_900), sent[0])
    assert cap.server_requests.level == pytest.approx(119 - 15)
    assert cap.server_tokens.level == pytest.approx(149_900 - 15 * 100)
    # the reply to the last one counts all 16: nothing is taken off, and the count is SET, so
    # an error on the safe side (here: the server had counted more than the first) does not
    # stay with us
    limiter.observe(reply(110, 149_000), sent[-1])
    assert cap.server_requests.level == pytest.approx(110)
    assert cap.server_tokens.level == pytest.approx(149_000)
    # four more go out; a reply written before them (to the last of the 16) misses them
    more = asyncio.run(send(4))
    limiter.observe(reply(108, 148_800), sent[-1])
    assert cap.server_requests.level == pytest.approx(108 - 4)
    limiter.observe(reply(106, 148_600), more[-1])
    assert cap.server_requests.level == pytest.approx(106)
    # the same count without the replying request's own (older callers) is taken as it stands
    limiter.observe(reply(100, 148_000))
    assert cap.server_requests.level == pytest.approx(100)
    assert cap.requests is None and cap.tokens is None  # no limit of our own was invented
