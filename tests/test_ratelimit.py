"""The limiter on a fake clock: pure, no sleeping, no flakiness.

First the parts (the pacer, the budget from a server's remaining count, the probe, the learner),
then the whole against each way providers enforce limits (tests/fakeprovider.py): per-minute
bucket, fixed windows of 1 s and 10 s, a sliding minute, GCRA; limit given, stated in headers,
or nothing known; RPM- and TPM-bound.
"""

from __future__ import annotations

import math
import random
from collections import deque

import pytest

from creator.ratehints import RateLimitHint, Reading
from creator.ratelimit import (MARGIN, SPAN_SLACK_S, WINDOW_MARGIN, Budget, Learner, Limits,
                               Pacer, RefundAudit, RetryPolicy, Sent, SpanGuard, Ticket)
from fakeprovider import MODES, Provider, simulate


def openai_hint(limit=None, remaining=None, reset=None, tokens=None) -> RateLimitHint:
    return RateLimitHint(requests=Reading(limit, remaining, reset),
                         tokens=tokens or Reading())


# --- parts ------------------------------------------------------------------------------------


def test_pacer_spaces_requests_evenly_with_no_burst():
    pacer = Pacer(rate=10.0, now=0.0)
    sent = []
    now = 0.0
    while len(sent) < 20:  # callers always waiting: each goes as soon as the pacer allows
        now += pacer.wait_time(now)
        pacer.take(1, now)
        sent.append(now)
    gaps = [b - a for a, b in zip(sent, sent[1:])]
    assert all(g == pytest.approx(0.1) for g in gaps)
    # idle time is not banked: after a pause the next two are still a tenth of a second apart
    now = 100.0
    assert pacer.wait_time(now) == 0
    pacer.take(1, now)
    assert pacer.wait_time(now) == pytest.approx(0.1)


def test_pacer_refund_shortens_the_queue_and_credits_at_most_one_request():
    pacer = Pacer(rate=100.0, now=0.0)  # tokens per second
    pacer.take(50, 0.0)
    assert pacer.wait_time(0.0) == pytest.approx(0.5)
    pacer.give_back(30, 0.0)
    assert pacer.wait_time(0.0) == pytest.approx(0.2)
    pacer.give_back(1000, 0.0)  # more than queued: credit, capped at the largest request (50)
    assert pacer.wait_time(0.0) == 0 and pacer.credit == 50
    pacer.take(50, 0.0)  # paid by the credit
    assert pacer.wait_time(0.0) == 0
    pacer.take(50, 0.0)
    assert pacer.wait_time(0.0) == pytest.approx(0.5)


def test_a_given_limit_is_paced_at_the_margin_from_the_first_request():
    limits = Limits(max_in_flight=1000, rpm=600, now=0.0)
    times, now = [], 0.0
    for _ in range(50):
        now += limits.wait_time(100, now)
        limits.consume(100, now)
        times.append(now)
    assert times[0] == 0.0  # no probe needed: the limit is known
    rate = (len(times) - 1) / (times[-1] - times[0])
    assert rate == pytest.approx(10 * MARGIN)
    # no second of the run holds more than the per-second share
    assert max(sum(1 for t in times if s <= t < s + 1) for s in range(5)) <= 10


def test_our_own_sends_hold_a_limit_in_every_span_of_its_window():
    """A SpanGuard holds what we sent in the last `window` seconds, net of refunds, to its cap:
    the oldest leaving frees room, a refund into a request still in the span frees its share,
    one refunded after it left frees nothing more."""
    def ticket(at, tokens):
        return Ticket(at, 0, tokens, Sent(), 0)

    guard = SpanGuard("tokens", cap=1000, window=60, sent=deque([ticket(0.0, 400)]), now=0.5)
    assert guard.used == 400  # what went before the limit was known counts
    second = ticket(1.0, 500)
    guard.take(second)
    assert guard.wait_time(100, 1.0) == 0
    assert guard.wait_time(200, 1.0) == pytest.approx(59.0)  # till the first (400) leaves
    assert guard.wait_time(700, 1.0) == pytest.approx(60.0)  # ... and the second
    second.given_back["tokens"] = 300
    guard.give_back(second, 300, 2.0)
    assert guard.used == 600 and guard.wait_time(400, 2.0) == 0
    assert guard.wait_time(600, 2.0) == pytest.approx(58.0)
    assert guard.wait_time(1500, 70.0) == 0  # larger than the cap: into an empty span
    late = ticket(3.0, 500)
    guard.take(late)
    late.given_back["tokens"] = 500
    guard.give_back(late, 500, 63.5)  # it left the span at 63: nothing more to free
    assert guard.used == 0 and guard.wait_time(1000, 63.5) == 0


def test_a_known_limit_guards_every_span_of_its_window_a_second_is_the_pacers():
    limits = Limits(None, rpm=600, tpm=50_000)
    assert {k: [(g.window, g.cap) for g in gs] for k, gs in limits.guards.items()} == {
        "requests": [(60 + SPAN_SLACK_S, 600)], "tokens": [(60 + SPAN_SLACK_S, 50_000)]}
    limits.observe(RateLimitHint(tokens=Reading(40_000, 39_000, 1.0, window=10)), None, 0.0)
    assert [(g.window, g.cap) for g in limits.guards["tokens"]] == [
        (10 + SPAN_SLACK_S, 40_000), (60 + SPAN_SLACK_S, 50_000)]
    limits = Limits(None)
    limits.observe(RateLimitHint(requests=Reading(20, 19, None, window=1, refills=False)),
                   None, 0.0)
    assert "requests" in limits.pacers and not limits.guards


def test_a_429_when_our_own_minute_held_all_of_a_known_limit_arms_its_guard():
    """Until then the guard only counts: a bucket or fixed windows let a catch-up go."""
    limits = Limits(None, tpm=60_000)
    guard = limits.guards["tokens"][0]
    first = limits.consume(20_000, 0.0)
    limits.rate_limited(first, 0.01, RateLimitHint(limited="tokens"))
    assert not guard.armed  # a third of the minute: something else refused it
    limits.consume(20_000, 1.0)
    third, fourth = limits.consume(19_900, 2.0), limits.consume(100, 2.0)
    assert guard.used == 60_000
    limits.rate_limited(fourth, 2.01, RateLimitHint(limited="requests"))
    assert not guard.armed  # another limit refused it
    cuts, share = limits.learner.cuts, limits.refund_share
    assert limits.spans_held() == []
    limits.rate_limited(third, 2.02, RateLimitHint(limited="tokens"))
    assert guard.armed and (limits.learner.cuts, limits.refund_share) == (cuts, share)
    assert limits.spans_held() == [{"kind": "tokens", "window_s": 60.0, "limit": 60_000}]
    # (a refused request stays counted, the safe side) 300 more wait for the first to leave
    assert guard.wait_time(300, 3.0) == pytest.approx(60 + SPAN_SLACK_S - 3.0)


def test_in_flight_cap_waits_for_a_reply():
    limits = Limits(max_in_flight=2, rpm=6000, now=0.0)
    a = limits.consume(10, 0.0)
    limits.consume(10, 1.0)
    assert math.isinf(limits.wait_time(10, 1.0))
    limits.completed(a, 1.5, RateLimitHint(), 5, 0)
    assert limits.wait_time(10, 1.5) == 0


def test_a_429_that_names_a_concurrency_limit_caps_what_is_in_flight():
    """The cap is the most of ours in flight beside the refused request from its sending to its
    429 (one sent after it may have reached the server first); it teaches no rate, pauses
    nobody; a minute later with the cap reached, one more is tried."""
    limits = Limits(max_in_flight=64, rpm=6000, now=0.0)
    tickets = [limits.consume(10, 0.01 * i) for i in range(6)]
    refused = tickets[3]  # 3 ahead of it, but 5 in flight beside it once the last two went
    assert limits.rate_limited(refused, 0.1, RateLimitHint(limited="concurrency")) is None
    assert limits.in_flight_cap == 5 and limits.learner.rate is None
    assert math.isinf(limits.wait_time(10, 0.1))  # 5 in flight
    limits.completed(tickets[0], 30.0, RateLimitHint(), 5, 0)
    assert limits.in_flight_cap == 5 and limits.wait_time(10, 30.0) == 0
    limits.consume(10, 30.0)
    limits.completed(tickets[1], 61.0, RateLimitHint(), 5, 0)  # the cap held, no 429 since
    assert limits.in_flight_cap == 6


@pytest.mark.parametrize("spread", [0.05, 0.5])
def test_a_concurrency_limit_its_429s_name_is_held_whatever_the_latency(spread):
    """W&B Inference's "Concurrency limit reached for requests": 16 in flight at once, replies
    of 0.5 s (+- 50%): 32 requests a second on average. Learnt as a rate (the 429 that does not
    say so, below) it held 73-76% with the wide spread."""
    for seed in (1, 2, 3):
        provider = Provider(max_active=16, latency=0.5, latency_spread=spread, seed=seed)
        run, limits = simulate(provider, duration=120, concurrency=64, seed=seed)
        assert limits.in_flight_cap == 16
        assert run.held(32.0, start=5) >= 0.98
        assert len(run.refused) <= 3  # the first, and one for each minute's try of one more


def test_a_concurrency_limit_whose_429s_do_not_say_so_is_learnt_as_a_rate_without_collapse():
    """DeepInfra's 429 says "Rate limited" only: learnt as the rate its limit and the latency
    allow (89% with replies of 0.5 s +- 5%, 71-78% +- 50%: what moves with the latency is not
    a rate). Not collapsed, and few 429s."""
    for spread, least in ((0.05, 0.85), (0.5, 0.65)):
        provider = Provider(max_active=16, latency=0.5, latency_spread=spread, names_it=False,
                            seed=1)
        run, limits = simulate(provider, duration=120, concurrency=64, seed=1)
        assert run.held(32.0, start=60) >= least
        assert run.refused_share() <= 0.01


def test_the_first_request_goes_alone_until_answered_then_stated_limits_pace():
    limits = Limits(max_in_flight=64, now=0.0)
    first = limits.consume(100, 0.0)
    assert limits.wait_time(100, 0.1) > 0  # alone: its reply may state the limits
    assert limits.wait_time(100, 0.1) < 6  # ... or, at worst, the probe gives up
    limits.completed(first, 0.5, openai_hint(1200, 1199, 0.05), 50, 50)
    assert limits.stated["requests"].limit == 1200 and limits.stated["requests"].window == 60
    assert limits.pacers["requests"].rate == pytest.approx(20 * MARGIN)
    assert limits.wait_time(100, 0.5) == 0


def test_a_probe_that_is_never_answered_does_not_stall_the_run():
    limits = Limits(max_in_flight=64, now=0.0)
    limits.consume(100, 0.0)
    assert limits.wait_time(100, 6.0) == 0


def test_remaining_counts_lower_what_may_be_sent_and_never_license_a_burst():
    limits = Limits(max_in_flight=None, rpm=600, now=0.0)
    t = limits.consume(1, 0.0)
    # the server says plenty is left: the pace (10/s) still holds
    limits.completed(t, 0.2, openai_hint(6000, 5999, 0.01), 1, 0)
    assert limits.wait_time(1, 0.2) == 0
    limits.consume(1, 0.2)
    assert limits.wait_time(1, 0.2) == pytest.approx(1 / (10 * MARGIN))
    # the server says nothing is left: wait the share of its reset one request needs
    t = limits.consume(1, 0.3)
    limits.completed(t, 0.4, openai_hint(600, 0, 60.0), 1, 0)
    assert limits.wait_time(1, 0.4) == pytest.approx(0.1)  # 600/min: one per 0.1 s


def test_the_servers_count_misses_what_went_out_just_before_the_reply():
    """A reply's remaining count is the server's as of the reply: what was sent after the
    replying request is taken off (the old limiter's 3-6 429s per 128-request burst), but only
    what went in the last REPLY_WRITTEN_S (0.5 s) before the reply came: the server had counted
    the rest when it wrote it (a slow reply's count had 2 s of sending taken off, ~13,000
    tokens, and a sliding minute near full read as overfull)."""
    limits = Limits(max_in_flight=None, rpm=None, now=0.0, learn=False)
    tickets = [limits.consume(1, 0.0) for _ in range(16)]
    limits.completed(tickets[0], 0.3, openai_hint(None, 10, 1.0), 1, 0)
    assert limits.budgets["requests"].left == 10 - 15
    limits.completed(tickets[-1], 0.3, openai_hint(None, 10, 1.0), 1, 0)
    assert limits.budgets["requests"].left == 10  # set anew, so the error does not pile up
    for t in (1.0, 1.5, 1.9, 2.2, 2.4):
        limits.consume(1, t)
    limits.completed(tickets[1], 2.5, openai_hint(None, 10, 1.0), 1, 0)  # a slow reply
    assert limits.budgets["requests"].left == 10 - 2  # sent at 2.2 and 2.4


def test_a_day_long_limit_is_a_budget_not_a_pace():
    """Groq's request headers state requests per DAY: a reset of minutes gives that away."""
    limits = Limits(max_in_flight=None, now=0.0)
    t = limits.consume(1, 0.0)
    limits.completed(t, 0.2, openai_hint(14400, 14399, 6.0 * 30), 1, 0)
    assert "requests" not in limits.stated  # not paced at 14,400 a minute...
    assert limits.budgets["requests"].left == 14399  # ... but its count is respected
    # with little of it used, its reset is short: read as a minute's until one says otherwise
    limits = Limits(max_in_flight=None, now=0.0)
    t = limits.consume(1, 0.0)
    limits.completed(t, 0.2, openai_hint(14400, 14399, 6.0), 1, 0)
    assert limits.stated["requests"].window == 60.0 and "requests" in limits.pacers
    t = limits.consume(1, 0.3)
    limits.completed(t, 0.5, openai_hint(14400, 14380, 6.0 * 20), 1, 0)
    assert "requests" not in limits.stated and "requests" not in limits.pacers
    assert limits.budgets["requests"].left == 14380 and limits.budgets["requests"].refill == 0


def test_per_second_dialects_and_stated_windows_are_read_as_such():
    limits = Limits(max_in_flight=None, now=0.0)
    t = limits.consume(1, 0.0)
    together = RateLimitHint(requests=Reading(20, 19, 0.25, window=1.0, refills=False))
    limits.completed(t, 0.2, together, 1, 0)
    # a second's own count, reported: its budget guards the second's end, so no margin
    assert limits.stated["requests"].counted
    assert limits.pacers["requests"].rate == pytest.approx(20 * WINDOW_MARGIN)
    # a minute's count (the IETF draft's w=60) may be enforced per second: the margin stays
    limits = Limits(max_in_flight=None, now=0.0)
    t = limits.consume(1, 0.0)
    ietf = RateLimitHint(requests=Reading(1200, 1100, 30, window=60.0, refills=False))
    limits.completed(t, 0.2, ietf, 1, 0)
    assert limits.pacers["requests"].rate == pytest.approx(20 * MARGIN)


def test_a_window_stated_on_its_429_with_its_reset_reopens_then_not_a_minute_after_our_sends():
    """OpenRouter states its minute only on the 429 that the ramp earns (X-RateLimit-*, a count
    reset at once, its reset the window's end). That count, and the budget it sets, guard the
    window: the pace is not held back for what went out before (2,400 requests of the ramp at 20
    a second: 122 s), nor is every minute-long span of our sends (a minute after the first ones:
    42 s past the window's end), so requests go again when the window reopens, at the pace."""
    limits = Limits(max_in_flight=None, now=0.0)
    sent = [limits.consume(1, i / 128) for i in range(1200)]  # the ramp's ~9 s at 128 a second
    for t in sent[:-1]:
        limits.completed(t, t.sent_at + 0.5, RateLimitHint(), 1, 0)
    window = Reading(1200, 0, 20.0, refills=False)  # reset: the window's end, 20 s from now
    now = sent[-1].sent_at + 0.05
    limits.rate_limited(sent[-1], now, RateLimitHint(retry_after=20.0, requests=window))
    assert limits.stated["requests"].counted and limits.pacers["requests"].rate == \
        pytest.approx(20 * MARGIN)
    assert limits.wait_time(1, now + 10) > 0  # the window is spent till its end
    assert limits.wait_time(1, now + 20.01) == 0  # ... and open again at it
    assert limits.spans_held() == []
    t = limits.consume(1, now + 20.01)
    assert limits.wait_time(1, now + 20.01 + 1 / (20 * MARGIN)) == pytest.approx(0, abs=1e-6)


@pytest.mark.parametrize("began_before_s, reopens_at_its_word", [(7.0, True), (0.2, False)])
def test_a_limit_stated_on_its_429_with_only_a_wait_is_trusted_where_it_reopens_sooner(
        began_before_s, reopens_at_its_word):
    """Gemini states its quota only on a 429 (Google's QuotaFailure: 1,200 a minute) and when to
    retry (RetryInfo), no count left, no reset. Its minute is the clock's: begun 7 s before our
    first request, spent by the ramp 9 s in, it reopens 44 s later, 9 s before our sends leave a
    minute-long span. At the server's word everybody waits, then goes at the pace; a guard over
    our own sends (the sliding window's reading) held them 9 s past the reopening. Where the wait
    the server names is that of a window over our sends (within SPAN_TRUST_S), the guard."""
    limits = Limits(max_in_flight=None, now=0.0)
    sent = [limits.consume(1, i / 128) for i in range(1200)]  # the ramp's ~9.4 s at 128 a second
    for t in sent[:-1]:
        limits.completed(t, t.sent_at + 0.5, RateLimitHint(), 1, 0)
    now = sent[-1].sent_at + 0.05
    wait = 60.0 - began_before_s - now  # to the server's minute's end
    quota = RateLimitHint(retry_after=wait, limited="requests",
                          requests=Reading(1200, window=60.0))
    limits.rate_limited(sent[-1], now, quota)
    assert limits.pacers["requests"].rate == pytest.approx(20 * MARGIN)
    assert limits.wait_time(1, now + wait - 1) > 0  # the window is spent till its end
    if reopens_at_its_word:
        assert limits.spans_held() == []
        assert limits.wait_time(1, now + wait + 0.01) == 0  # ... and open again at it
    else:
        assert limits.spans_held() == [{"kind": "requests", "window_s": 60.0, "limit": 1200}]


def test_a_429_with_a_token_pacer_first_withdraws_the_refunds():
    limits = Limits(max_in_flight=None, tpm=60_000, now=0.0)
    t = limits.consume(1200, 0.0, prompt=200)
    limits.rate_limited(t, 0.1)
    assert limits.refund_share == 0  # (the only request sent was refused: all of them)
    assert limits.learner.rate is None  # the refunds, not a hidden request limit, were wrong


@pytest.mark.parametrize("requested, charge, cost", [
    (1000, "max", 1000),  # max(prompt, max_tokens): OpenAI's sentence read literally
    (1200, "sum", 1200),  # prompt + max_tokens: what we assumed
    (200, "sum", 1200),  # the prompt alone (output counted as generated): refunds do the rest
    (600, "sum", 1200),  # neither: not a count we know, so nothing is learnt from it
])
def test_a_429_that_says_what_the_request_cost_teaches_how_tokens_are_counted(
        requested, charge, cost):
    """OpenAI, Azure and Groq write the refused request's cost in the 429 message ("Limit
    300000, Used 299612, Requested 1000"): it tells which count the server keeps."""
    limits = Limits(max_in_flight=None, tpm=60_000, now=0.0)
    ok = [limits.consume(1200, 0.0, prompt=200) for _ in range(20)]
    for t in ok:
        limits.completed(t, 0.5, RateLimitHint(), 200, 300)
    refused = limits.consume(1200, 1.0, prompt=200)
    limits.rate_limited(refused, 1.1, RateLimitHint(limited="tokens", requested=requested))
    assert limits.charge == charge
    assert limits.consume(1200, 2.0, prompt=200).tokens == cost
    assert limits.learner.rate is None  # a count we got wrong teaches no request rate
    if charge == "max":  # OpenAI's count, and OpenAI gives nothing back: nor do we from now
        assert limits.refund_share == 0.0 and limits.refunds_kept


@pytest.mark.parametrize("retry_after", [False, True])
@pytest.mark.parametrize("seed", [2, 4, 5])
def test_openai_s_count_learnt_stops_the_refunds_with_no_hole(seed, retry_after):
    """OpenAI-like: tokens counted max(prompt, max_tokens) per second and kept, 429s counted,
    the limit given, replies of 2.1 s +- 50%, the first requests asking 477 (3x the projection).
    The refunds we assume overfill a second; the first 429 says "Requested 477", OpenAI's count,
    and OpenAI documents no refund, so they stop there, and the storm the overfilled second
    makes does not wait for its probe's reply. Refunding on till more 429s cut them, with the
    probe's ~2-s reply waited for: 85-94% from the 3rd second on these seeds, seconds with
    nothing sent; now 95-98%."""
    provider = Provider(**MODES["fixed 1 s"], tpm=300_000, charge_max=True, count_rejected=True,
                        refund=False, latency=2.1, latency_spread=0.5, seed=seed,
                        retry_after=retry_after)
    run, limits = simulate(provider, duration=30, concurrency=64, seed=seed, tpm=300_000,
                           prompt=103, max_tokens=236, used=162, first_max_tokens=477, fit=True)
    assert limits.charge == "max" and limits.refunds_kept
    per_second = 300_000 / 60 / 236
    assert run.held(per_second, start=3) >= 0.95, run.per_second()
    assert min(run.per_second()[3:]) >= 0.25 * per_second, run.per_second()
    assert len(run.refused) <= 3


def _openai_s_count_on_a_bucket(seed, headers, refund=False, latency=0.5):
    """OpenAI's count (max(prompt, max_tokens), kept) on a bucket of a minute, or with `refund`
    a bucket that counts prompt + max_tokens and gives back the unused part."""
    provider = Provider(**MODES["bucket"], tpm=300_000, charge_max=not refund,
                        count_rejected=True, refund=refund, latency=latency,
                        latency_spread=0.5 if latency > 1 else 0.05, seed=seed, headers=headers)
    return simulate(provider, duration=60, concurrency=64, seed=seed,
                    tpm=None if headers else 300_000, prompt=103, max_tokens=236, used=162,
                    first_max_tokens=477, fit=True, read_limits=headers)


@pytest.mark.parametrize("latency", [0.5, 2.1])
def test_openai_s_count_on_a_minute_bucket_is_tried_and_kept(latency):
    """OpenAI's count on a bucket of a minute, not quantized to seconds, OpenAI's headers. No
    429 teaches it: the first asks' overshoot fits in the bucket, and after the fit a request
    costs max(103, 236) = 236 where we count 103 + 162 = 265 and pace at 98% of that, 87% of
    the limit (the old figure, seeds 1 and 2), with the bucket's count full all along. A count
    ~11% cheaper than ours, a bucket held near full: OpenAI's count is tried, and the server's
    counts, still full, do not refute it: 98%, no 429."""
    for seed in (1, 2):
        run, limits = _openai_s_count_on_a_bucket(seed, headers=True, latency=latency)
        assert limits.charge == "max" and limits.refunds_kept and limits.charge_tried
        assert run.held(300_000 / 60 / 236, start=10) >= 0.96, run.per_second()
        assert not run.refused


@pytest.mark.xfail(strict=True, reason="a count cheaper than ours, no counts to check: not tried")
def test_openai_s_count_on_a_minute_bucket_with_no_headers_is_learnt():
    """The same with the limit given and no headers: nothing can check a trial of the cheaper
    count (a bucket that refunds would be overfilled for minutes before a 429 said so), so
    none is made: 87.2% from the 10th second. A known gap (benchmarks/README, "OpenAI's count
    on a minute bucket")."""
    run, limits = _openai_s_count_on_a_bucket(1, headers=False)
    assert run.held(300_000 / 60 / 236, start=10) >= 0.95, run.per_second()


@pytest.mark.parametrize("latency", [0.5, 2.1])
def test_a_trial_of_openai_s_count_that_the_counts_refute_ends(latency):
    """A bucket that counts prompt + max_tokens and refunds the unused part, in OpenAI's
    headers, held near full: OpenAI's count is tried too, and there costs ~12% more than we
    count; the bucket leaves full, and within ~3.5 s of the trial (not the ~10 s a span of the
    refund audit took: a sliding minute held that overshoot a minute later) we count our way
    again with refunds, no 429, and the limit held from then on."""
    for seed in (1, 2):
        run, limits = _openai_s_count_on_a_bucket(seed, headers=True, refund=True,
                                                  latency=latency)
        assert limits.charge_tried and limits.charge_trial is None
        assert limits.charge == "sum" and limits.refund_share == 1.0 and not limits.refunds_kept
        assert not run.refused
        assert run.held(300_000 / 60 / 265, start=30) >= 0.96, run.per_second()


@pytest.mark.parametrize("latency", [0.5, 2.1])
def test_a_trial_of_openai_s_count_on_a_sliding_minute_behind_a_bucket_s_figures(latency):
    """A sliding minute that refunds, its headers a bucket's per-minute figures (OpenAI's,
    enforced otherwise): the trial's overshoot is in the sliding minute, and its end comes soon
    enough for the minute's 2% margin to hold it a minute later: no 429, the limit held."""
    for seed in (1, 2):
        provider = Provider(**MODES["sliding 60 s"], tpm=300_000, latency=latency,
                            latency_spread=0.5 if latency > 1 else 0.05, seed=seed, headers=True,
                            minute_headers=True)
        run, limits = simulate(provider, duration=90, concurrency=64, seed=seed, prompt=103,
                               max_tokens=236, used=162, first_max_tokens=477, fit=True,
                               read_limits=True)
        assert limits.charge_tried and limits.charge == "sum" and limits.refund_share == 1.0
        assert not run.refused
        assert run.held(300_000 / 60 / 265, start=60) >= 0.96, run.per_second()


def test_no_trial_of_openai_s_count_under_a_lower_limit_of_the_user_s():
    """--tpm 150000 against a server stating 300,000 on a bucket that refunds: its count stays
    full whatever it counts, so it cannot refute a trial, which would send 12% over the user's
    limit as the server counts: none is made."""
    provider = Provider(**MODES["bucket"], tpm=300_000, latency=0.5, latency_spread=0.05, seed=1,
                        headers=True)
    run, limits = simulate(provider, duration=40, concurrency=64, seed=1, tpm=150_000,
                           prompt=103, max_tokens=236, used=162, first_max_tokens=477, fit=True)
    assert len(limits.full_deficits) == 20 and len(limits.charge_evidence) == 20
    assert not limits.charge_tried and limits.charge == "sum"
    assert 0.95 <= run.held(150_000 / 60 / 265, start=10) <= 0.99, run.per_second()


def test_a_429_during_a_trial_of_openai_s_count_ends_it_unless_it_says_that_count():
    def on_trial():
        limits = Limits(max_in_flight=None, tpm=300_000, now=0.0)
        limits.charge_tried, limits.charge_trial, limits.charge = True, 1.0, "max"
        limits.refund_share, limits.refunds_kept = 0.0, True
        return limits, limits.consume(339, 2.0, prompt=103)
    limits, ticket = on_trial()  # "Requested 339": prompt + max_tokens, ours
    limits.rate_limited(ticket, 2.1, RateLimitHint(limited="tokens", requested=339))
    assert limits.charge == "sum" and limits.refund_share == 1.0 and limits.charge_trial is None
    assert limits.learner.rate is None
    limits, ticket = on_trial()  # no count said: the trial is the likely cause
    limits.rate_limited(ticket, 2.1, RateLimitHint(limited="tokens"))
    assert limits.charge == "sum" and limits.learner.rate is None
    limits, ticket = on_trial()  # "Requested 236": OpenAI's count, which stays
    limits.rate_limited(ticket, 2.1, RateLimitHint(limited="tokens", requested=236))
    assert limits.charge == "max" and limits.refunds_kept and limits.charge_trial is None


def test_a_storm_our_refunds_explain_teaches_no_request_rate():
    """Azure counts prompt + max_tokens per minute and gives nothing back: a client that took
    refunds fills the minute early and then meets 429s in a row. That storm is the refunds'
    doing: they are cut (once for the run of 429s), and no request rate is learnt from it (one
    was, and the creator held 58% of the limit after it)."""
    limits = Limits(max_in_flight=None, tpm=60_000, now=0.0)
    for i in range(40):  # 40 answered: the storm's three are under a quarter of the last 20
        limits.completed(limits.consume(1200, i * 0.1, prompt=200), i * 0.1 + 0.5,
                         RateLimitHint(), 200, 300)
    storm = [limits.consume(1200, 5.0, prompt=200) for _ in range(3)]
    for t in storm:
        limits.rate_limited(t, 5.5, RateLimitHint(limited="tokens"))
    assert limits.storm_began is not None
    assert limits.refund_share == pytest.approx(0.8)  # one run of 429s, one cut
    after = limits.consume(1200, 8.0, prompt=200)
    limits.completed(after, 8.5, RateLimitHint(), 200, 300)
    assert limits.storm_began is None
    assert limits.learner.rate is None


def test_isolated_429_cuts_a_little_and_a_storm_pauses_everyone():
    limits = Limits(max_in_flight=None, now=0.0)
    first = limits.consume(1, 0.0)
    limits.completed(first, 0.1, RateLimitHint(), 1, 0)
    assert limits.learner.ramping
    now, sent = 0.1, []
    while now < 0.6:  # sending at the ramp's pace, each answered at once
        now += max(limits.wait_time(1, now), 0.001)
        limits.completed(limits.consume(1, now), now, RateLimitHint(), 1, 0)
    assert limits.learner.rate >= 4 * 2**3  # it doubled (every tenth of a second at most)
    sent = [limits.consume(1, now) for _ in range(3)]
    t = sent[-1]
    assert limits.rate_limited(t, now) is None  # isolated: only that request waits
    assert not limits.learner.ramping and limits.learner.cuts == 1
    assert limits.rate_limited(sent[-2], now) is None
    pause = limits.rate_limited(sent[-3], now, RateLimitHint(retry_after=2.5))
    assert pause == 2.5 and limits.wait_time(1, now) == pytest.approx(2.5)
    assert limits.storm_began is not None


def test_a_storm_probes_while_requests_sent_before_it_still_run_and_ends_when_the_probe_went():
    """Replies that take seconds: the requests let through before a storm are still running when
    it begins. They say nothing of now, so one request probes after the pause without waiting
    for them, and the storm is timed by when the probe was sent, not by its slow reply (it
    waited for all of them, then for its reply, and each storm on a window of a second lasted
    4.5 s, read as a long window spent: 45-50% of the limit in the benchmark's slow replies)."""
    limits = Limits(max_in_flight=None, now=0.0)
    limits.completed(limits.consume(1, 0.0), 2.0, RateLimitHint(), 1, 0)
    running = [limits.consume(1, 2.0 + i / 100) for i in range(10)]
    refused = [limits.consume(1, 2.2) for _ in range(3)]
    pause = [limits.rate_limited(t, 2.2) for t in refused][-1]
    assert limits.storm_began is not None and pause is not None
    probe_at = 2.2 + pause + 0.001
    # (the rate the first 429s cut paces it; no reply needs to come first)
    assert limits.in_flight == len(running) and limits.wait_time(1, probe_at) < math.inf
    probe = limits.consume(1, probe_at)
    # one probe at a time: nothing else goes until its 429 could have come back
    assert limits.wait_time(1, probe_at + 0.01) == pytest.approx(0.24)
    limits.completed(probe, probe_at + 0.2, RateLimitHint(), 1, 0)  # its reply ends it
    assert limits.storm_began is None
    assert limits.learner.window < 2.0  # the storm lasted until the probe went: not a long window
    assert limits.wait_time(1, probe_at + 0.2) < math.inf  # the others still run; sending goes on


def _storm_with_a_probe_out() -> tuple[Limits, Ticket, float]:
    """Nothing known, a first reply 2 s long, then three 429s that each took 0.1 s: a storm;
    its probe goes when the pause ends. Returns the limits, the probe and when it went."""
    limits = Limits(max_in_flight=None, now=0.0)
    limits.completed(limits.consume(1, 0.0), 2.0, RateLimitHint(), 1, 0)
    refused = [limits.consume(1, 2.2) for _ in range(3)]
    pause = [limits.rate_limited(t, 2.3) for t in refused][-1]
    assert limits.storm_began is not None and pause is not None
    return limits, limits.consume(1, 2.3 + pause), 2.3 + pause


def test_a_probe_with_no_429_by_the_time_one_would_have_come_was_let_through():
    """Servers refuse at once and answer as slowly as they generate: a storm's probe that three
    times the longest recent 429's turnaround after it went has had none was let through, and
    the storm ends then, not at its reply (with replies of 1.7 s each storm lasted ~2 s in
    which one request went: 63% of an OpenAI-like token limit over the first 30 s, nothing
    known, on two seeds of eight; 78-80% with this)."""
    limits, probe, probe_at = _storm_with_a_probe_out()  # (each 429 took 0.1 s)
    assert limits.wait_time(1, probe_at + 0.1) == pytest.approx(0.2)  # 3 x 0.1 after it went
    assert limits.storm_began is not None
    assert limits.wait_time(1, probe_at + 0.3) < math.inf
    assert limits.storm_began is None and limits.probes_in_flight == 0
    assert limits.refused_in_a_row == 0
    limits.completed(probe, probe_at + 2.0, RateLimitHint(), 1, 0)  # its slow reply changes nothing
    assert limits.in_flight == 0 and limits.probes_in_flight == 0 and limits.storm_began is None


@pytest.mark.parametrize("seed", [5, 8])
def test_storms_on_an_openai_like_token_limit_with_slow_replies_end_when_the_probe_is_not_refused(
        seed):
    """OpenAI-like (1-s windows of 5,000 tokens, max(prompt, max_tokens) kept, 429s counted),
    replies of 1.7 s +- 50%, nothing known. The first 429s overestimate (a span of 1-2 s holds
    two windows' allowance), and the storms that correct it each held sending for the probe's
    slow reply: 63% of the limit (21.9 requests a second) over the first 30 s, the ramp
    included, on these seeds (72-83% on the six others of 1-8). Ended when no 429 came for the
    probe: 78-80% (the others unchanged)."""
    provider = Provider(mode="fixed", window_s=1, tpm=300_000, charge_max=True,
                        count_rejected=True, latency=1.7, latency_spread=0.5, seed=seed,
                        retry_after=True)
    run, _ = simulate(provider, duration=30, concurrency=64, prompt=103, max_tokens=228,
                      used=162, first_max_tokens=1024, seed=seed)
    assert len(run.admitted) / (30 * 5000 / 228) >= 0.75


def test_the_probe_of_a_long_storm_is_waited_for():
    """A storm that lasted LONG_STORM_S before its probe went is a long window spent, which
    reopens a request or two at a time, as it was filled: the probe's reply ends it."""
    limits = Limits(max_in_flight=None, now=0.0)
    limits.completed(limits.consume(1, 0.0), 2.0, RateLimitHint(), 1, 0)
    for ticket in [limits.consume(1, 2.2) for _ in range(3)]:
        limits.rate_limited(ticket, 2.3)
    probe_at = 2.3 + Learner.LONG_STORM_S  # (after the pause: its probe went 2 s into it)
    probe = limits.consume(1, probe_at)
    assert limits.wait_time(1, probe_at + 1.0) == math.inf and limits.storm_began is not None
    limits.completed(probe, probe_at + 8.0, RateLimitHint(), 1, 0)
    assert limits.storm_began is None


def test_the_probe_of_a_storm_our_refunds_explain_is_waited_for():
    """A storm on a token limit we pace, with refunds given back of late: the refunds are the
    mistake (cut), the storm teaches no rate, and its probe's reply is waited for (hurrying
    into the window the refunds overfilled cost 7-8 429s instead of 3 on a sliding minute in
    headers with replies of 2-3 s, and the refunds were cut to nothing)."""
    limits = Limits(max_in_flight=None, tpm=300_000, now=0.0)
    now = 0.0
    for _ in range(20):  # replies that use 265 of the 1,127 tokens reserved: refunds
        limits.completed(limits.consume(1127, now, 103), now + 0.5, RateLimitHint(), 103, 162)
        now += 0.25
    refused = [limits.consume(1127, now, 103) for _ in range(3)]
    for t in refused:
        limits.rate_limited(t, now + 0.01, RateLimitHint(limited="tokens", retry_after=0.5))
    assert limits.storm_began is not None and not limits.storm_teaches
    assert limits.refund_share < 1.0
    probe_at = now + 0.6
    assert limits.wait_time(1127, probe_at, 103) == 0
    probe = limits.consume(1127, probe_at, 103)
    assert limits.wait_time(1127, probe_at + 1.0, 103) == math.inf
    limits.completed(probe, probe_at + 2.5, RateLimitHint(), 103, 162)
    assert limits.storm_began is None


def test_a_probe_taken_as_let_through_that_is_refused_after_all_counts_toward_the_next_storm():
    limits, probe, probe_at = _storm_with_a_probe_out()
    limits.wait_time(1, probe_at + 0.3)
    assert limits.storm_began is None
    assert limits.rate_limited(probe, probe_at + 0.5) is None  # one 429: no storm yet
    assert limits.refused_in_a_row == 1 and limits.in_flight == 0 and limits.probes_in_flight == 0


def test_the_ramp_judges_its_pace_over_a_few_requests():
    """Replies that take seconds: the ramp's first reply comes a second after it began at 4
    requests a second. Judged over 0.2 s, which held none of its requests, the ramp took its own
    rate for something else holding it back, ended, and let 64 requests go at once (33 of them
    429s on a window of a second); over a span that holds a few requests, it doubles."""
    learner = Learner()
    probe = Ticket(0.0, 1, 0, Sent(), 0, record=learner.sent(0.0))
    learner.succeeded(probe, 2.0)
    learner.start_ramp(2.0)
    sent = [Ticket(t, 1, 0, Sent(), 0, record=learner.sent(t)) for t in (2.0, 2.25, 2.5, 2.75)]
    learner.succeeded(sent[0], 2.95)
    assert learner.ramping and learner.rate == 2 * Learner.RAMP_START


def test_a_storm_probes_when_a_minute_since_the_first_request_has_passed():
    """A minute's window that the first requests spent (a sliding minute, a bucket of a minute
    that starts full) reopens a minute after they went: a storm's probe goes then, not up to a
    pause later (8 s pauses cost up to 8 s at nothing after the minute reopened)."""
    limits = Limits(max_in_flight=None, now=0.0)
    limits.completed(limits.consume(1, 0.0), 0.1, RateLimitHint(), 1, 0)
    waits = []
    for at in (57.0, 57.0, 57.0, 57.5, 58.5):  # three 429s begin a storm; then two probes
        waits.append(limits.rate_limited(limits.consume(1, at), at))
    assert waits[2:4] == [0.5, 1.0]
    assert waits[4] == pytest.approx(1.6)  # at 60.1 s, not 60.5 s
    assert limits.rate_limited(limits.consume(1, 60.05), 60.05) == pytest.approx(0.05)
    # not yet: the backoff starts again from the mark, as the window reopens about now
    assert limits.rate_limited(limits.consume(1, 60.1), 60.1) == 0.5


def test_retry_policy_backs_off_exponentially_with_jitter_and_honours_retry_after():
    policy = RetryPolicy(max_retries=8, base=0.5, cap=8.0)
    rng = random.Random(0)
    for attempt in range(10):
        delays = [policy.delay(attempt, None, rng) for _ in range(50)]
        assert all(0 <= d <= min(8.0, 0.5 * 2**attempt) for d in delays)
        assert len(set(delays)) > 1
    assert 2.0 <= policy.delay(0, 2.0, rng) <= 3.0
    assert policy.delay(0, 100.0, rng) <= 9.0


# --- the whole, against each way providers enforce limits -----------------------------------



@pytest.mark.parametrize("count_rejected", [False, True], ids=["", "429s count"])
@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("knowledge", ["given", "headers"])
def test_known_rpm_is_held_with_no_429s(mode, knowledge, count_rejected):
    provider = Provider(**MODES[mode], rpm=1200, headers=knowledge == "headers",
                        count_rejected=count_rejected, latency=0.5, seed=3)
    run, _ = simulate(provider, duration=60, concurrency=64,
                      rpm=1200 if knowledge == "given" else None)
    assert run.held(20.0) >= 0.96  # the probe costs headers-only one reply's time
    assert run.held(20.0, start=5) >= 0.97
    assert len(run.refused) == 0


@pytest.mark.parametrize("mode", ["bucket", "sliding 60 s", "gcra"])
@pytest.mark.parametrize("knowledge", ["given", "headers"])
def test_known_tpm_is_held_with_no_429s(mode, knowledge):
    provider = Provider(**MODES[mode], tpm=150_000, headers=knowledge == "headers", seed=3)
    run, _ = simulate(provider, duration=60, concurrency=64, prompt=200, max_tokens=1024,
                      used=300, tpm=150_000 if knowledge == "given" else None)
    per_request = 200 + 300  # the server refunds the unused max_tokens
    assert run.held(150_000 / 60 / per_request, start=5) >= 0.97
    assert len(run.refused) == 0


def test_a_server_that_keeps_what_was_reserved_is_learnt_from_few_429s():
    """OpenAI and Azure count prompt + max_tokens and give nothing back."""
    provider = Provider(mode="bucket", tpm=150_000, refund=False, seed=3)
    run, limits = simulate(provider, duration=120, concurrency=64, prompt=200, max_tokens=1024,
                           used=300, tpm=150_000)
    assert run.held(150_000 / 60 / 1224, start=60) >= 0.9
    assert run.refused_share() <= 0.03
    assert limits.refund_share <= 0.1


@pytest.mark.parametrize("mode", ["bucket", "fixed 1 s", "sliding 60 s", "gcra", "counter 1 s"])
def test_nothing_known_converges_without_collapsing(mode):
    """No headers, no Retry-After, no limit given: the case that collapsed to 2% of the limit."""
    provider = Provider(**MODES[mode], rpm=1800, latency=0.1, seed=3)
    run, limits = simulate(provider, duration=120, concurrency=64)
    assert run.held(30.0, start=60) >= 0.9
    assert run.refused_share() <= 0.02
    assert run.longest_below(30.0, 0.5, start=60) <= 5


@pytest.mark.parametrize("limit", [{"rpm": 1800}, {"tpm": 300_000}], ids=["rpm", "tpm"])
def test_a_bucket_that_starts_full_is_emptied_with_few_429s(limit):
    """The ramp empties a bucket of a minute (it starts full) at ~600 requests a second; the
    storm that follows pauses for its Retry-After (0.05 s), then sending resumes. At 89c2c81 it
    resumed at the ramp's rate, so the storm came back at once, again and again for a second:
    62-71 429s in the first 10 s, 16-25 per 1,000 over two minutes (the target is 20). A storm
    that comes back at once is now measured from when sending resumed: 13-21 and 5-10."""
    per_second = limit.get("rpm", 0) / 60 or limit.get("tpm", 0) / 60 / (103 + 162)
    for seed in (1, 2, 3):
        provider = Provider(**MODES["bucket"], **limit, retry_after=True, latency=0.1,
                            latency_spread=0.05, seed=seed)
        run, _ = simulate(provider, duration=120, concurrency=64, prompt=103, max_tokens=228,
                          used=162, seed=seed, first_max_tokens=1024)
        early = sum(1 for t in run.refused if t < 10)
        assert early <= 30, (seed, early)
        assert run.refused_share() <= 0.013, (seed, run.refused_share())
        assert run.held(per_second, start=60) >= 0.95, (seed, run.held(per_second, start=60))


def test_slow_varying_replies_with_nothing_known_are_held_without_collapsing():
    """Replies of 1.7 s +- 50% (a time per token generated, and load): nothing known, a limit
    enforced per second or as GCRA. At 6bc9ac4 57-75% of the limit over two minutes (seeds 2-3),
    the ramp ended into a burst and each storm lasted as long as its slowest reply; now 91-95%."""
    for mode in ("fixed 1 s", "gcra"):
        for seed in (1, 2, 3):
            provider = Provider(**MODES[mode], rpm=1800, latency=1.7, latency_spread=0.5,
                                seed=seed)
            run, _ = simulate(provider, duration=120, concurrency=64, seed=seed)
            assert run.held(30.0) >= 0.88, (mode, seed)
            assert run.held(30.0, start=60) >= 0.95, (mode, seed)
            assert run.refused_share() <= 0.02, (mode, seed)


@pytest.mark.parametrize("mode", ["fixed 1 s", "counter 1 s"])
def test_nothing_known_across_a_network_round_trip(mode):
    """A 429 comes back a round trip (0.2 s) after its request went, not at once. At 94a8f1c the
    ramp doubled every 0.1 s, 512 a second went into a limit of 30 before the first 429 was
    back, and an isolated 429 counted the requests still on their way as let through (64 a
    second learnt, cut 5% a storm for 15 s): 20-24 429s per 1,000, 83-95% of the limit (seeds
    1-3). Now the ramp steps no faster than the first reply came, and a 429 measures up to
    when its request went: 8-17 per 1,000, 95-96%."""
    for seed in (1, 2, 3):
        provider = Provider(**MODES[mode], rpm=1800, latency=0.1, rtt=0.2, seed=seed)
        run, _ = simulate(provider, duration=120, concurrency=64, seed=seed)
        assert run.held(30.0) >= 0.93, (mode, seed)
        assert run.refused_share() <= 0.018, (mode, seed)


@pytest.mark.parametrize("mode, limit", [("gcra", {"rpm": 30}), ("bucket", {"rpm": 30}),
                                         ("gcra", {"rpm": 12}), ("bucket", {"tpm": 6000})])
def test_a_limit_of_a_few_requests_a_minute_is_learnt_without_collapsing(mode, limit):
    """Free plans allow a few requests a minute (Groq's: 30 requests and some thousand tokens a
    minute per model, console.groq.com/docs/rate-limits), nothing known. A 429 soon after a
    storm's probe got through, or after the first reply, was measured over a span that held no
    request: nothing got through, so the rate fell to one a minute (4-8% of 30 a minute; 55-62%
    of a bucket, whose first minute is free). Now each estimate holds a few requests."""
    per_second = limit.get("rpm", 0) / 60 or limit.get("tpm", 0) / 60 / (103 + 162)
    for seed in (1, 2, 3):
        provider = Provider(**MODES[mode], **limit, retry_after=True, latency=0.1, seed=seed)
        run, limits = simulate(provider, duration=120, concurrency=64, prompt=103, max_tokens=228,
                               used=162, seed=seed, first_max_tokens=1024)
        # measured 0.92-1.2 after the first minute (0.0-0.04 for GCRA at 30 a minute before)
        assert run.held(per_second, start=60) >= 0.85, (seed, run.held(per_second, start=60))
        assert limits.learner.rate is not None and limits.learner.rate >= 0.5 * per_second


def test_a_blackout_with_slow_replies_is_not_read_as_one_request_a_minute():
    """A sliding minute of tokens spent by the ramp, replies of 1.7 s, no headers, no Retry-After:
    an isolated 429 among the blackout's probes was measured over a span in which nothing got
    through, and the rate fell to 1 a minute (50% of the limit over two minutes on four seeds of
    six, nothing sent for 50 s). Now such a span halves the rate instead (62-99%)."""
    for seed in (2, 4):
        provider = Provider(mode="sliding", window_s=60, tpm=300_000, latency=1.7,
                            latency_spread=0.3, seed=seed)
        run, limits = simulate(provider, duration=120, concurrency=64, prompt=103,
                               max_tokens=228, used=162, seed=seed, first_max_tokens=1024)
        assert run.held(300_000 / 60 / 265) >= 0.58, (seed, run.held(300_000 / 60 / 265))
        assert run.longest_below(300_000 / 60 / 265, 0.1, start=60) <= 5, seed
        assert limits.learner.rate is None or limits.learner.rate >= 1.0, seed


def test_requests_sent_before_the_first_reply_stated_the_limit_count_against_it():
    """The first reply takes 8 s: after PROBE_GIVE_UP_S the rest go at RAMP_BLIND, one a second,
    and when the reply states 30 a minute the pace goes on as if it had held from the first
    request (starting afresh, the four sent in 8 s and a full pace after them overfilled a
    sliding minute at its end: 429s that cut the pace to 55% of the limit)."""
    limits = Limits(max_in_flight=64, now=0.0)
    first = limits.consume(1, 0.0)
    assert limits.wait_time(1, 1.0) > 0  # alone, until its reply or PROBE_GIVE_UP_S
    for at in (5.0, 6.0, 7.0):
        assert limits.wait_time(1, at) == pytest.approx(0.0, abs=1e-9)
        limits.consume(1, at)
    assert limits.wait_time(1, 7.5) == pytest.approx(0.5)  # one a second, no burst
    limits.completed(first, 8.0, RateLimitHint(requests=Reading(limit=30, remaining=26,
                                                                 reset=8.0)))
    assert limits.learner.rate is None  # the stated limit paces now, not the ramp
    # four sent: the fifth goes at 4 / (98% of 0.5 a second) = 8.16 s after the first
    assert limits.wait_time(1, 8.0) == pytest.approx(4 / (MARGIN * 0.5) - 8.0)


@pytest.mark.parametrize("mode", ["gcra", "fixed 10 s", "sliding 60 s"])
def test_a_first_reply_slower_than_the_probe_waits_for_lets_no_burst_go(mode):
    """Replies of 8 s +- 30% (a long answer, a reasoning model): the first request goes alone for
    PROBE_GIVE_UP_S, then the rest went at once, 63 requests into a limit of 30 a minute that
    the first reply's headers would have stated three seconds later (330-630 429s per 1,000).
    Now they go at RAMP_BLIND until a reply comes."""
    for seed in (1, 2, 3):
        provider = Provider(**MODES[mode], rpm=30, headers=True, retry_after=True, latency=8.0,
                            latency_spread=0.3, seed=seed)
        run, _ = simulate(provider, duration=90, concurrency=64, seed=seed)
        assert run.refused_share() <= 0.06, (seed, run.refused_share())  # measured 0-0.023
        assert run.held(0.5) >= 0.9, (seed, run.held(0.5))  # measured 0.933-1.022


@pytest.mark.parametrize("window_s", [1, 10])
def test_a_fixed_window_that_keeps_late_refunds_is_held_with_few_429s(window_s):
    """A request's unused max_tokens come back only if its window is still open when it ends: a
    window of a second keeps half of them at 0.5 s latency, one of ten seconds a twentieth. The
    share of the unused tokens refunded is learnt from the 429s, without teaching a request rate."""
    provider = Provider(mode="fixed", window_s=window_s, tpm=300_000, latency=0.5, seed=5)
    run, limits = simulate(provider, duration=120, concurrency=64, prompt=100, max_tokens=240,
                           used=160, tpm=300_000)
    unused = 240 - 160
    # even sending: half (window 1 s) or a twentieth (10 s) of the refunds come too late
    per_request = 100 + 160 + unused * 0.5 / window_s
    assert run.held(300_000 / 60 / per_request, start=30) >= 0.9  # measured 0.917-0.995
    assert run.refused_share() <= 0.005
    assert limits.learner.rate is None
    assert 0 < limits.refund_share < 1 if window_s == 1 else limits.refund_share > 0.5


def test_a_fixed_window_that_keeps_every_refund_is_probed_ever_more_rarely():
    """Azure counts prompt + max_tokens and gives nothing back; with max_tokens fitted to the
    replies the refunds are a small error that the pacer's margin hides at first, so no storm
    says "keeps them all" at once: each 429 cuts the refunds and makes the next probe up wait
    twice as long."""
    provider = Provider(mode="fixed", window_s=10, tpm=300_000, refund=False, latency=0.5, seed=5)
    run, limits = simulate(provider, duration=180, concurrency=64, prompt=100, max_tokens=240,
                           used=160, tpm=300_000)
    assert run.held(300_000 / 60 / (100 + 240), start=30) >= 0.95  # measured 0.985
    assert run.refused_share() <= 0.003  # measured 0.0019 (0.005-0.008 probing every 50)
    assert limits.refund_share <= 0.1 and len(limits.refund_cuts) >= 3


@pytest.mark.parametrize("seed", [1, 2])
def test_429s_that_the_stopped_refunds_no_longer_explain_teach_a_rate(seed):
    """A sliding window counter of a second (the `limits` library's) that keeps prompt +
    max_tokens, the limit given. The first 429s come three in a row (our refunds were wrong):
    the refunds stop, and the 429s of the next minute were all taken for what the refunds had
    let through (the gate meant for a long window's storms), so none taught a rate: one every
    1.2 s for a minute, 36-40 per 1,000 over 90 s on these seeds. Isolated 429s after that are
    the pace's: 9 per 1,000, as on the seeds whose first 429s came apart (14-16)."""
    provider = Provider(mode="counter", window_s=1, tpm=300_000, refund=False, latency=0.5,
                        latency_spread=0.05, seed=seed)
    run, limits = simulate(provider, duration=90, concurrency=64, prompt=103, max_tokens=228,
                           used=162, first_max_tokens=477, tpm=300_000, fit=True, seed=seed)
    assert limits.refund_share == 0.0
    assert sum(1 for t in run.refused if 10 <= t < 60) <= 8  # measured 4-5 (34-37 before)
    assert run.refused_share() <= 0.012  # measured 0.009
    assert run.held(5000 / (103 + 228), start=10) >= 0.88  # measured 0.906


@pytest.mark.parametrize("knowledge", ["given", "headers"])
def test_fixed_windows_of_a_second_are_paced_in_whole_requests(knowledge):
    """OpenAI enforces a per-minute token limit per second and counts max(prompt, max_tokens):
    5,000 tokens a second hold 21 requests of 228, not 21.9. Paced at 98% (21.5 a second), every
    other window got a 22nd request and refused it (old: 7-8 429s in two minutes, and a request
    rate learnt from them). The first such 429 shows the short windows; then no window gets more
    requests than it holds."""
    provider = Provider(mode="fixed", window_s=1, tpm=300_000, charge_max=True, latency=0.5,
                        headers=knowledge == "headers", seed=3)
    run, limits = simulate(provider, duration=120, concurrency=64, prompt=103, max_tokens=228,
                           used=162, tpm=300_000 if knowledge == "given" else None, charge="max")
    assert len(run.refused) <= 1  # the one that shows the windows
    assert limits.short_windows and limits.learner.rate is None
    # 21 a second, less the margin against jitter: 0.98 x 21 x 228 / 5,000 = 0.938
    assert run.held(300_000 / 60 / 228, start=30) >= 0.93


def test_a_fitted_max_tokens_gives_a_little_to_fit_one_more_request_a_window():
    """Whole requests of 228 hold 21 x 228 = 95.8% of a second's 5,000 tokens, whatever the pace;
    a fitted max_tokens (110% of the longest reply, and some) lowered to 227 lets 22 in (99.9%).
    Paced at 98% the windows then take 21 or 22 each: >= 97% of the limit, and no 429 but the
    one that shows the windows."""
    provider = Provider(mode="fixed", window_s=1, tpm=300_000, charge_max=True, latency=0.5,
                        seed=3)
    run, limits = simulate(provider, duration=120, concurrency=64, prompt=103, max_tokens=228,
                           used=162, tpm=300_000, charge="max", fit=True)
    assert len(run.refused) <= 1 and limits.short_windows
    assert run.asked[0] == 228 and run.asked[-1] == 227 and limits.window_fits > 0
    admitted = sum(1 for t in run.admitted if t >= 30)
    assert admitted * 227 / (90 * 5000) >= 0.97


@pytest.mark.parametrize("read_limits", [False, True])
def test_a_rate_learnt_on_large_requests_grows_as_max_tokens_is_fitted(read_limits):
    """Nothing known, OpenAI-like (1-s windows of 5,000 tokens, max(prompt, max_tokens)): the first
    requests ask for 1,024 tokens and the 429s teach ~5 a second; 8 replies later they ask for 228
    and ~22 fit. The learnt rate is of requests of 1,024: it grows with them (old: 27-36% of the
    limit for 15 s, 71% from 10 s to 40 s, then a probe found the rest). The client's limits read
    of one token, first, is no request of that size (it left the rate unscaled: 20% of the limit
    for 30 s in the benchmark with slow replies)."""
    provider = Provider(mode="fixed", window_s=1, tpm=300_000, charge_max=True, latency=0.1,
                        seed=3)
    run, limits = simulate(provider, duration=60, concurrency=64, prompt=103, max_tokens=228,
                           first_max_tokens=1024, used=162, charge="max", seed=3,
                           read_limits=read_limits)
    assert limits.last_limited == "tokens" and limits.learned_charge == 228
    per_second = run.per_second()
    assert sum(per_second[5:60]) * 228 / (55 * 5000) >= 0.88  # measured 0.90-0.94, seeds 1-4
    assert len(run.refused) <= 20  # of ~1,200 requests


def test_a_learnt_rate_follows_the_requests_size_not_how_it_is_counted():
    """The 429 that teaches a rate may also teach how the server counts ("Requested 340": the
    larger of prompt and max_tokens, not their sum). The requests are no smaller for that: the
    rate stays. (With requests asking for 340, as 4e7e9b6's loose early fit made them, it grew by
    443/340 and sent storms that cut it to a quarter: 63-86% of an OpenAI-like token limit over
    two minutes with replies of 1.7 s, seeds 1-6.) When max_tokens is fitted from 340 to 228, the
    rate grows by as much as the requests shrank."""
    limits = Limits(max_in_flight=None, now=0.0)
    limits.consume(103 + 340, 0.0, 103)
    limits.learner.rate, limits.learned_size = 18.0, (103, 340)
    assert limits.learned_charge == 443
    limits.charge = "max"  # as _learn_charge sets it
    assert limits.learned_charge == 340
    limits.consume(103 + 340, 0.1, 103)
    assert limits.learner.rate == 18.0
    limits.consume(103 + 228, 0.2, 103)
    assert limits.learner.rate == pytest.approx(18.0 * 340 / 228)
    assert limits.learned_charge == 228


def test_fit_window_gives_at_most_five_percent_and_only_on_short_windows():
    limits = Limits(max_in_flight=None, tpm=300_000, now=0.0)
    assert limits.fit_window(103, 215) == 215  # windows not known to be short: as fitted
    limits.short_windows = True
    limits._repace("tokens", 0.0)
    # prompt + max_tokens: 103 + 215 = 318 fits 15 times in 5,000; 16 fit at 312 = 103 + 209
    assert limits.fit_window(103, 215) == 209
    assert limits.fit_window(103, 230) == 230  # 209 would give up 9%
    limits.charge = "max"  # the larger of the two: 228 fits 21 times, 227 fits 22
    assert limits.fit_window(103, 228) == 227 and limits.fit_window(300, 228) == 228
    assert limits.window_fits == 2


def test_a_full_window_of_kept_reservations_is_waited_out_as_the_server_says():
    """Azure keeps prompt + max_tokens ("even if your actual response is much shorter"); with the
    refunds of a server that gives them back we send ~125% of the limit, and a 10-s window fills
    early. Each such run of 429s cuts the refunds by 0.2 (five runs before they stop), and the
    server's Retry-After says when its window reopens: everybody waits till then, so a run costs
    one 429 (old: three, the requests paced into the full window until three in a row paused
    us: 15 in 90 s, 11 per 1,000)."""
    for seed in (1, 2, 3):
        provider = Provider(mode="fixed", window_s=10, tpm=300_000, refund=False,
                            retry_after=True, latency=0.5, seed=seed)
        run, limits = simulate(provider, duration=90, concurrency=64, prompt=103, max_tokens=227,
                               used=162, tpm=300_000, seed=seed)
        assert len(run.refused) <= 5 and len(run.refused) / len(run.admitted) <= 0.005
        assert limits.refund_share <= 0.1 and limits.learner.rate is None
        assert len(run.admitted) * 330 / (90 * 5000) >= 0.97  # the server's count, kept


def test_a_window_that_states_no_reset_is_timed_by_its_remaining_counts():
    """Together states its token limit per second with no reset time. The budget a reply sets
    lasted a second from that reply, so a request that did not fit the end of one second waited
    for a reply of the next; the remaining counts show when the windows reset (here at x.30)."""
    limits = Limits(max_in_flight=None, now=0.0)
    for i in range(60):  # a reply every 0.05 s; each second's count falls 250 tokens a reply
        t = i * 0.05 + 0.01
        remaining = 5000 - 250 * (((t - 0.3) % 1.0) // 0.05 + 1)
        limits.observe(RateLimitHint(tokens=Reading(limit=5000, remaining=remaining, window=1.0,
                                                    refills=False)), None, t)
    assert 3.3 <= limits.budgets["tokens"].expires <= 3.35  # (old: 3.96, a second from 2.96)
    assert limits.budgets["tokens"].wait_time(330, 3.34) == 0.0


def test_a_request_held_by_a_windows_end_goes_at_the_reset_and_keeps_the_schedule():
    """A count that resets at once (no refill) held a request until its window reset: the pace
    is kept back to just before the reset, so what the hold cost goes at the start of the next
    window, and no more (the schedule before the hold, never an idle second banked)."""
    limits = Limits(max_in_flight=None, tpm=300_000, now=0.0)  # 4,900 tokens a second
    limits.consume(331, 0.0, prompt=103)
    limits.budgets["tokens"] = Budget(left=0, refill=0.0, at=0.0, expires=0.3)
    assert limits.wait_time(331, 0.07, prompt=103) == pytest.approx(0.23)
    went = 0
    while limits.wait_time(331, 0.3, prompt=103) == 0 and went < 10:
        limits.consume(331, 0.3, prompt=103)
        went += 1
    assert went == 4  # due at 0.068, 0.135, 0.203, 0.270 (old: 1, and the next at 0.368)
    assert limits.wait_time(331, 0.3, prompt=103) == pytest.approx(5 * 331 / 4900 - 0.3)
    # a reset long past (idle since), or a budget that refills (a bucket's count, which has no
    # reset to go at): the schedule starts from now
    for refill, now in ((0.0, 0.8), (5000.0, 0.3)):
        limits = Limits(max_in_flight=None, tpm=300_000, now=0.0)
        limits.consume(331, 0.0, prompt=103)
        limits.budgets["tokens"] = Budget(left=0, refill=refill, at=0.0, expires=0.3)
        limits.consume(331, now, prompt=103)
        assert limits.wait_time(331, now, prompt=103) == pytest.approx(331 / 4900)


@pytest.mark.parametrize("knowledge", ["given", "headers"])
def test_seconds_counted_as_generated_are_held_to_their_end(knowledge):
    """Together-like: tokens per second, the prompt charged at admission and the completion as
    it is generated (into the second then open), each second's remaining count in the headers
    with no reset time. At 98% the last request or so of each second found the count too low
    for its reservation and waited for the reset, and the pace restarted from there: each second
    lost what it waited (old: 95.4-96.2% of the limit after 30 s, seeds 1-3). Now the schedule
    is kept across the hold, and a second's own count guards its end, so the pace needs no
    margin: 98.0-99.3%, no 429."""
    held = []
    for seed in (1, 2, 3):
        provider = Provider(mode="fixed", window_s=1, tpm=300_000, as_generated=True,
                            headers=True, window_headers=True, retry_after=True, seed=seed)
        run, limits = simulate(provider, duration=90, concurrency=64, prompt=103, max_tokens=228,
                               used=162, tpm=300_000 if knowledge == "given" else None, seed=seed)
        held.append(run.held(300_000 / 60 / (103 + 162), start=30))
        assert not run.refused and limits.learner.rate is None
    assert min(held) >= 0.975, held


def test_a_429_that_begins_a_storm_is_not_taken_for_a_short_window():
    """Whole requests per second cost up to one request's share of each second: a long window
    that is full (a run of 429s) must not leave them in place."""
    limits = Limits(max_in_flight=None, tpm=300_000, now=0.0)
    limits.charge = "max"
    now, sent = 0.0, []
    while now < 3.0:  # paced at 21.5 a second, answered 0.5 s later (no refund: 103 + 162 > 228)
        now += limits.wait_time(331, now, prompt=103)
        sent.append(limits.consume(331, now, prompt=103))
        while sent[0].sent_at <= now - 0.5:
            limits.completed(sent.pop(0), now, RateLimitHint(), 103, 162)
    assert sum(1 for t in limits.recent if t.sent_at > now - 1.0) == 22  # 5,016 tokens
    limits.rate_limited(sent[-1], now, RateLimitHint(limited="tokens", requested=228))
    assert limits.short_windows and limits.pacers["tokens"].window_share == 5000
    limits.rate_limited(sent[-2], now, RateLimitHint(limited="tokens", requested=228))
    limits.rate_limited(sent[-3], now, RateLimitHint(limited="tokens", requested=228))
    assert limits.short_windows is None and limits.pacers["tokens"].window_share is None


def test_the_refund_audit_reads_a_buckets_and_a_windows_counts():
    """20 requests a second reserving 330 tokens and using 265, against a bucket of 300,000 a
    minute (5,000 a second back): the server that keeps reservations takes 6,600 a second, the
    one that refunds 5,300; each span of five seconds says which. The same against a count reset
    each minute reported as itself (its reset: the minute's end), from the drop alone, within one
    minute. A count that fell more than twice what we reserved (shared, or a 10-s window's in
    per-minute figures), a bucket that took more than we reserved (a sliding minute near full,
    freeing what it admitted a minute ago: 8,400 a second where the refill is 5,000), a span
    whose replies used all they reserved, a bucket that is full and one not seen for seconds
    say nothing."""
    rate = 5000.0
    for takes, given_back in ((330, 0.0), (265, 1.0), (670, None)):
        audit = RefundAudit()
        left, reserved, unused, said = 250_000.0, 0.0, 0.0, {}
        for tick in range(0, 220):  # every 0.05 s
            now = tick * 0.05
            reserved, unused = reserved + 330, unused + 65
            left += rate * 0.05 - takes
            reading = Reading(limit=300_000, remaining=left, reset=(300_000 - left) / rate)
            share = audit.observe(reading, rate, reserved, unused, now)
            if share is not None:
                said[tick] = share
        if given_back is None:
            assert not said
            continue
        # the first reading begins a span (none seen before it), which ends five seconds on
        assert list(said) == [101, 201] and all(
            share == pytest.approx(given_back, abs=0.01) for share in said.values())
    for scale, takes, given_back in ((1, 330, 0.0), (1, 265, 1.0), (6, 330, None)):
        audit, said = RefundAudit(), {}
        for tick in range(0, 200):  # 10 requests a second; a minute's count 10 s before its end
            now = tick * 0.1
            end, since = (10.0, tick) if now < 10.0 else (70.0, tick - 100)
            reading = Reading(limit=300_000, remaining=300_000 - scale * takes * (since + 1),
                              reset=math.ceil(end - now))  # in whole seconds, as Azure's
            share = audit.observe(reading, rate, 330 * (tick + 1), 65 * (tick + 1), now)
            if share is not None:
                said[tick] = share
        if given_back is None:
            assert not said
        else:  # spans of 5 s, none across the reset at 10 s
            assert list(said) == [50, 150] and all(
                share == pytest.approx(given_back, abs=0.01) for share in said.values())
    audit = RefundAudit()
    for tick in range(0, 220):  # replies that used all they reserved: nothing to tell
        reading = Reading(limit=300_000, remaining=200_000, reset=20.0)
        assert audit.observe(reading, rate, tick * 330, 0, tick * 0.05) is None
    # a client under the limit (held by something else) keeps the bucket full: the refill it
    # does not take must not look like tokens the server kept
    audit = RefundAudit()
    for tick in range(0, 220):
        reading = Reading(limit=300_000, remaining=300_000 - 330 * (tick % 2), reset=0.1)
        assert audit.observe(reading, rate, tick * 330, tick * 65, tick * 0.05) is None
    # nor may a bucket whose readings are seconds apart (it may have filled in between)
    audit = RefundAudit()
    for tick in range(0, 10):
        reading = Reading(limit=300_000, remaining=200_000, reset=20.0)
        assert audit.observe(reading, rate, tick * 30_000, tick * 5_000, tick * 2.0) is None


def test_a_sliding_minute_with_slow_replies_is_held_after_its_first_minute():
    """Headers only, a sliding minute of tokens that refunds, replies of 2.1 s +- 50%. As the
    first minute's requests leave the window, its count, near full, frees what was admitted a
    minute before (few, after the probe's slow reply), not the refill a bucket would: at
    30e4383 each count had 2.1 s of sending taken off (its reply's latency), and the refund
    audit read the count as a bucket that kept the refunds; the pace fell to 60-80% for 10-15 s
    (93-94% after the first 30 s, seeds 1-3); now 98% over 30-60 s and 70-90 s, no 429. Over
    60-70 s the window frees only what the slow start sent a minute before: 84-85% (a refund
    goes back into the request charged, as in the simulator; a058031's fake clock booked it as
    a credit at the refund's time, which hid this, and read 97% after the first 30 s)."""
    for seed in (1, 2, 3):
        provider = Provider(mode="sliding", window_s=60, tpm=300_000, headers=True,
                            retry_after=True, latency=2.1, latency_spread=0.5, seed=seed)
        run, limits = simulate(provider, duration=90, concurrency=64, prompt=103, max_tokens=228,
                               used=162, first_max_tokens=1024, fit=True, seed=seed)
        held = [run.held(5000 / 265, a, b) for a, b in ((30, 60), (60, 70), (70, 90))]
        assert held[0] >= 0.97 and held[1] >= 0.8 and held[2] >= 0.97, (seed, held)
        assert not run.refused and not limits.refunds_kept


@pytest.mark.parametrize("knowledge", ["given", "headers"])
def test_a_sliding_minute_holds_the_catch_up_after_a_slow_start_a_minute_later(knowledge):
    """A sliding minute of tokens that refunds into the request charged, replies of 2 s +- 50%.
    The first eight ask for --max_tokens 1,024, so the pace starts slow; their refunds let it
    catch up (38 requests in the 5th second against 19). A minute later the slow start has left
    the window and the catch-up is still in it: with the limit given, three 429s 61.6-62 s in,
    then two seconds of almost nothing, 93.6% of the limit over 90 s with a058031's limiter.
    The first 429 comes when our own sends of the last minute held all of it: from then each
    minute of them is held to the limit (SpanGuard), and the 429 teaches no rate and cuts no
    refund: 96.0%, one 429. With headers, their counts held it (93.2-93.8%, no 429) and do."""
    for seed in (1, 2):
        provider = Provider(mode="sliding", window_s=60, tpm=300_000,
                            headers=knowledge == "headers", retry_after=True, latency=2.0,
                            latency_spread=0.5, seed=seed)
        run, _ = simulate(provider, duration=90, concurrency=64, prompt=103, max_tokens=228,
                          used=162, first_max_tokens=1024, seed=seed,
                          tpm=300_000 if knowledge == "given" else None)
        assert len(run.refused) <= (1 if knowledge == "given" else 0), seed
        assert run.held(5000 / 265) >= (0.955 if knowledge == "given" else 0.925), seed


@pytest.mark.parametrize("reported", ["as a bucket", "as itself"])
@pytest.mark.parametrize("knowledge", ["given", "headers"])
def test_a_minute_count_that_keeps_reservations_is_learnt_from_its_headers(knowledge, reported):
    """Azure: a token count "reset each minute" that keeps prompt + max_tokens, requests per 10 s,
    headers with per-minute figures: a bucket's, or the minute's own count (falling to the
    minute's end, then whole again). With the refunds of a server that gives them back the
    client sent ~120% of the limit, filled each minute ~50 s in and waited out the rest with a
    429 a minute (each cutting the refunds by 0.2): 65-71% of the limit after the first minute,
    3-13 s under half, seeds 1-3 (the minute's own count: 59-66%, 3-14 s, and a request rate
    learnt, 11-13 a second of 15). The headers' counts show within ~10 s that nothing comes
    back (RefundAudit): 97.0-98.0% after the first minute, 0-3 429s."""
    for seed in (1, 2, 3):
        provider = Provider(mode="fixed", window_s=10, rpm=1200, tpm=300_000, token_window_s=60,
                            refund=False, count_rejected=True, headers=True,
                            minute_headers=reported == "as a bucket", retry_after=True,
                            latency=0.5, seed=seed)
        given = knowledge == "given"
        run, limits = simulate(provider, duration=150, concurrency=64, prompt=100, max_tokens=230,
                               used=160, rpm=1200 if given else None,
                               tpm=300_000 if given else None, seed=seed)
        per_second = 5000 / 330  # the server's count: prompt + max_tokens, kept
        assert run.held(per_second) >= 0.97
        assert run.held(per_second, start=60) >= 0.95
        assert len(run.refused) <= 3
        assert run.longest_below(per_second, 0.5, start=60) == 0
        assert limits.refunds_kept and limits.refund_share == 0.0
        # the 429s of a minute overfilled before the audit spoke teach no request rate (against
        # the simulator one taught 5-8 requests a second of 15 for half a minute)
        assert limits.learner.rate is None


def test_a_bucket_left_full_by_a_slower_client_is_not_read_as_refunds_kept():
    """Fixed windows of a second that lose the refunds coming after they close hold the client at
    ~82% of the limit, so the per-minute bucket its headers report stays full: counting the
    refill it wastes as tokens taken read as "keeps every refund" and stopped them (79% in the
    benchmark, 78.6-79.1% here); the audit skips counts near full."""
    for seed in (1, 2, 3):
        provider = Provider(mode="fixed", window_s=1, tpm=300_000, latency=0.5, headers=True,
                            minute_headers=True, retry_after=True, seed=seed)
        run, limits = simulate(provider, duration=120, concurrency=64, prompt=103, max_tokens=228,
                               used=162, seed=seed)
        assert not limits.refunds_kept and limits.refund_share > 0
        assert run.held(5000 / 265) >= 0.81  # measured 0.818


def test_a_minute_the_ramp_spent_is_measured_when_it_reopens():
    """Nothing known, tokens limited over a sliding minute: the ramp spends the whole minute in
    3 s, then a few requests get through on the refunds of those still running, and the rate
    measured between those storms (~5-6 requests a second of 18.9) stayed after the minute
    reopened, for the minute the long window makes the probe upward slow: 64.3-87.3% of the
    limit over two minutes, 6-56 s under half (seeds 1-3, at e6870fe). The storm that lasts until
    the minute reopens, with nothing through, measures the minute: 90.8-97.8%, at most 5 s."""
    for seed in (1, 2, 3):
        provider = Provider(mode="sliding", window_s=60, tpm=300_000, latency=0.1, seed=seed)
        run, _ = simulate(provider, duration=120, concurrency=64, prompt=103, max_tokens=228,
                          used=162, first_max_tokens=1024, seed=seed)
        per_second = 5000 / 265
        assert run.held(per_second) >= 0.9
        assert run.longest_below(per_second, 0.5, start=60) <= 5


def test_a_minute_spent_slowly_is_measured_over_the_minute_when_it_reopens():
    """Nothing known, tokens limited over a sliding minute, replies of 1.7 s +- 50%: 64 at once
    send twice the limit, and the minute is spent ~32 s in, with no 429 before. In the blackout,
    what the refunds of the requests still running let through cut the rate, edge by edge, to
    0.1 a second; the storm that ended as the minute reopened measured itself and as long before
    it, a span that held the blackout: 7.5 a second of 18.9, then a slow climb, 68.4% over two
    minutes and 56 s under half (seed 4; at e936d43). A blackout longer than a short window
    refuses, ending in the run's second minute, is measured over the minute before its end, which
    holds the window just spent: 92.9%, 4 s."""
    per_second = 300_000 / 60 / (103 + 162)
    for seed in (3, 4, 6):
        provider = Provider(mode="sliding", window_s=60, tpm=300_000, latency=1.7,
                            latency_spread=0.5, seed=seed)
        run, _ = simulate(provider, duration=120, concurrency=64, prompt=103, max_tokens=228,
                          used=162, first_max_tokens=477, seed=seed)
        assert run.longest_below(per_second, 0.5, start=60) <= 5, seed
        assert run.held(per_second) >= 0.84, (seed, run.held(per_second))  # 0.852-0.929


@pytest.mark.parametrize("latency, seeds", [(2.1, (1, 3, 5, 7, 11)), (1.7, (1, 8))])
def test_a_sliding_minute_is_held_for_five_minutes(latency, seeds):
    """Nothing known, tokens limited over a sliding minute, slow replies: two-minute runs hold
    it, but a sliding minute lets through the echo of what it let through a minute before. At
    afccb36 a storm at the second minute's end was measured over the half second after the
    storm before it (6.2 a second of 18.9 read), or a storm come back after the first blackout
    over a span that held that blackout (2.9); the slow probe of a long window then took minutes
    to climb back, or the probe above a minute measured spent the next minute 4 s early: 12-236 s
    under half on 7 runs of 20 (seeds 1-12 and 1-8; 41-78% of the limit over five minutes on six
    of them). Now 95-97% and 1-4 s on all 20."""
    per_second = 300_000 / 60 / (103 + 162)
    for seed in seeds:
        provider = Provider(mode="sliding", window_s=60, tpm=300_000, latency=latency,
                            latency_spread=0.5, seed=seed)
        run, _ = simulate(provider, duration=300, concurrency=64, prompt=103, max_tokens=228,
                          used=162, first_max_tokens=477, seed=seed)
        assert run.longest_below(per_second, 0.5, start=60) <= 5, seed
        assert run.held(per_second) >= 0.9, (seed, run.held(per_second))
        assert run.refused_share() <= 0.01, (seed, run.refused_share())


def test_a_window_spent_early_is_measured_from_its_reopening():
    """Nothing known, fixed windows of 10 s: the ramp spends the first window in a second and
    nothing gets through for nine; the next storm's rate, measured from the start of that first
    storm, counted those nine seconds as time the server allowed requests in (388 requests in
    28.6 s: 13.5 a second of 20) and the slow probe of a long window took a minute to climb
    back: 87.6-93.1% over two minutes on seeds 1-4 at 9b1854e; measured from the first storm's
    end: 95.3-98.6%."""
    helds = []
    for seed in (1, 2, 3, 4):
        provider = Provider(mode="fixed", window_s=10, rpm=1200, latency=0.1, seed=seed)
        run, _ = simulate(provider, duration=120, concurrency=64, prompt=103, max_tokens=228,
                          used=162, first_max_tokens=1024, seed=seed)
        helds.append(run.held(20.0))
        assert run.refused_share() <= 0.02
    assert min(helds) >= 0.93


@pytest.mark.parametrize("limit", [
    dict(mode="fixed", window_s=1, as_generated=True),  # Together, as the benchmark reads it
    dict(mode="sliding", window_s=60),
    dict(mode="fixed", window_s=10),
], ids=["as generated, 1 s", "sliding 60 s", "fixed 10 s"])
def test_a_429_as_a_storm_ends_is_not_measured_over_the_storms_probes(limit):
    """Nothing known, a token limit, replies of 1.7 s +- 50%. A 429 to a request sent as a storm
    ended was taken for an isolated one and measured over our last five requests: the storm's
    probes, one at a time, a reply's time apart (1.2 requests a second of 19 learnt, then climbed
    back 1% a second). At 49f456b, over two minutes on seeds 1-3: 34-83% as generated, 64-77%
    sliding, 38-68% fixed 10 s; with such 429s left to the storm they are part of (after a long
    storm, or one its first probe ended after a busy second): 83-85%, 85-99%, 70-72%."""
    per_second = 300_000 / 60 / (103 + 162)
    for seed in (1, 2, 3):
        provider = Provider(**limit, tpm=300_000, latency=1.7, latency_spread=0.5, seed=seed)
        run, _ = simulate(provider, duration=120, concurrency=64, prompt=103, max_tokens=228,
                          used=162, seed=seed, first_max_tokens=1024)
        assert run.held(per_second) >= 0.68, (seed, run.held(per_second))
        assert run.refused_share() <= 0.025, (seed, run.refused_share())


def test_a_window_of_the_clocks_minute_once_measured_is_not_probed_into_again():
    """Cerebras states no RPM and its example's resets are the clock's minute: nothing known,
    fixed windows of 60 s. Once a storm's cycle (or the whole minute before it) measured the
    window's allowance, probing 1% above it every six seconds spent a window early again two
    minutes on: from the fourth minute on, 85-99% of the limit and 6-16 s under half of it at a
    time at 49f456b (seeds 1-4, replies of 0.5 s and of 1.7 s +- 50%); probing one step a storm's
    length: 96-99%, at most 6 s."""
    for latency, spread in ((0.5, 0.05), (1.7, 0.5)):
        for seed in (1, 2, 3, 4):
            provider = Provider(mode="fixed", window_s=60, rpm=1200, latency=latency,
                                latency_spread=spread, seed=seed)
            run, limits = simulate(provider, duration=360, concurrency=64, seed=seed)
            assert limits.learner.minute_measured
            assert run.held(20.0, start=180) >= 0.95, (latency, seed, run.held(20.0, start=180))
            assert run.longest_below(20.0, 0.5, start=180) <= 6, (latency, seed)


def test_a_window_of_the_clocks_minute_that_reopens_is_not_burst_into():
    """Nothing known, fixed windows of the clock's minute (Cerebras's RPM): the ramp spends the
    first one in ~10 s, and the storm that follows ends when the minute does. Measured over the
    storm and as long before it, or since the first request (1,200 over 45.7 s, 26 a second of
    20), the next minute was spent early and refused everything till its end: at af482f2, 13-28
    s under half after the first minute on ten seeds of twelve (replies of 0.5 s, 2-minute
    runs); with the minute read from the clock, at most 3 s. Not where the minute ended 1.4 s
    after the ramp's wall (seed 6): a window of 10 s does that too, and the rate stays at the
    ramp's."""
    read = 0
    for seed in range(1, 13):
        provider = Provider(mode="fixed", window_s=60, rpm=1200, latency=0.5, seed=seed)
        run, limits = simulate(provider, duration=120, concurrency=64, seed=seed)
        read += limits.learner.clock_minutes > 0
        if seed != 6:
            assert run.longest_below(20.0, 0.5, start=60) <= 5, (seed, run.per_second())
            assert run.held(20.0, start=60) >= 0.9, seed
        assert run.refused_share() <= 0.01, seed
    assert read >= 10


@pytest.mark.parametrize("rtt, seeds", [(0.0, (10, 12, 17, 29, 30)),
                                         (0.2, (9, 11, 12, 17, 29, 30))])
def test_a_minute_spent_just_before_the_clocks_minute_ends_is_read_as_it(rtt, seeds):
    """... and where the run began 26-33 s before the clock's minute, the first one was spent
    (at 64 a second, replies of 1 s) only 1-11 s before it ended: a window of 10 s could refuse
    that long, so the storm taught nothing, and the next minute was spent in 19 s and refused
    everything for 40 s: 19-28 s under half after the first minute, 48-80% of the limit, at
    b5be1b0 (the seeds below, at once and across a round trip of 0.2 s). Every window of 10 s
    or less is ruled out by the counts (an earlier whole one let more through than the last
    one did before it refused everything): at most 5 s. (Not where the minute ended under a
    second after the wall: a window that short is not told from one of 10 s.)"""
    for seed in seeds:
        provider = Provider(mode="fixed", window_s=60, rpm=1200, latency=1.0, rtt=rtt, seed=seed)
        run, limits = simulate(provider, duration=120, concurrency=64, seed=seed)
        assert run.longest_below(20.0, 0.5, start=60) <= 5, (seed, run.per_second())
        assert run.held(20.0, start=60) >= 0.9, (seed, run.held(20.0, start=60))
        assert run.refused_share() <= 0.02, seed  # the target where nothing is known


@pytest.mark.parametrize("rtt, seeds", [(0.0, (4,)), (0.2, (3, 4, 7, 8))])
def test_a_trickle_through_a_spent_window_does_not_hold_the_rate_after_it_reopens(rtt, seeds):
    """A window of the clock's minute of tokens, replies of 1.7 s, nothing known: spent, it lets
    a trickle through as the requests still running give back what they did not use, and each
    429 of it cut the rate as an edge, to 0.1 a second. The last storm ended before the clock's
    minute did, so it was not read as the minute's; when the window reopened nothing said so,
    and 1% a step took minutes: 18-56 s under half after the first minute on these seeds at
    2af23f7. A rate under half the most that got through in a minute lately goes straight back
    there: 0-1 s."""
    per_second = 300_000 / 60 / (103 + 162)
    for seed in seeds:
        provider = Provider(mode="fixed", window_s=60, tpm=300_000, latency=1.7,
                            latency_spread=0.5, rtt=rtt, seed=seed)
        run, _ = simulate(provider, duration=120, concurrency=64, prompt=103, max_tokens=228,
                          used=162, first_max_tokens=477, seed=seed)
        assert run.longest_below(per_second, 0.5, start=60) <= 5, seed
        assert run.held(per_second, start=60) >= 0.6, (seed, run.held(per_second, start=60))
        assert run.refused_share() <= 0.02, seed


@pytest.mark.parametrize("latency", [0.1, 1.7])
def test_windows_of_ten_seconds_that_begin_with_the_clocks_minute_are_not_taken_for_it(latency):
    """... but fixed windows of 10 s begin with the clock's minute too, one in six, and cannot
    refuse everything for longer than 10 s. Where the ramp ran barely above them (replies of
    1.7 s) through one of their ends unrefused, and the next one's storm ended with the minute,
    a rule without that (dfaec91's: 429-free sending that began over 12 s before, 1.5 times as
    fast as the minute's count) read a minute's: 17-27% of the limit from then on, on three
    seeds of twelve."""
    for seed in range(1, 13):
        provider = Provider(mode="fixed", window_s=10, rpm=1800, latency=latency,
                            latency_spread=0.05 if latency < 1 else 0.5, seed=seed)
        run, limits = simulate(provider, duration=120, concurrency=64, seed=seed)
        assert limits.learner.clock_minutes == 0, seed
        assert run.held(30.0, start=60) >= 0.85, (seed, run.held(30.0, start=60))


@pytest.mark.parametrize("mode", ["gcra", "bucket"])
def test_a_429_as_a_storm_ends_still_teaches_a_limit_of_a_few_requests_a_minute(mode):
    """... but where the server let about one request through each pause of a storm (30 a
    minute), the storm's probes measured the server: taught as an edge, as before. Left to the
    storm, 13-14 429s in 90 s (gcra, replies of 0.1 s) and 28-32 (bucket) where 8-11 came."""
    for seed in (1, 2, 3, 4):
        provider = Provider(**MODES[mode], rpm=30, latency=0.1, seed=seed)
        run, _ = simulate(provider, duration=90, concurrency=64, prompt=103, max_tokens=228,
                          used=162, seed=seed, first_max_tokens=1024)
        assert len(run.refused) <= 12, (seed, len(run.refused))
        assert run.held(0.5) >= 0.95, (seed, run.held(0.5))


@pytest.mark.parametrize("resent", [4, 12])
@pytest.mark.parametrize("the_ramps", [True, False], ids=["the ramp's storm", "a later one"])
def test_a_storm_back_at_once_after_the_ramp_cuts_the_rate_but_keeps_the_estimate(resent,
                                                                                  the_ramps):
    """The ramp's burst into a sliding window counter of a second (the `limits` library's,
    Cloudflare's: it weighs the last window's count for a second more): a storm, its probe let
    through at once, then a storm back after a few more requests, one let through. What got
    through since sending resumed (1 in 0.22 s here; 2 in 0.26 s, 7.8 a second of 20, on the
    simulator's --limit_mode limits-counter) became the estimate, and the run took 23-28 s to
    climb back (2 runs in 4 of the benchmark's row). The rate is still cut to it (a bucket
    emptied by the ramp, answered at 600 a second, needs that cut), but the estimate is kept, so
    with every request let through the rate is back above 20 a second within 8 s. Not for a
    storm the ramp did not cause: storms back at once later are a long window spent, and keeping
    the estimate there burst into it again (a sliding minute with slow replies, fake clock: 11-13 s
    under half of the limit where 1-2 s)."""
    learner = Learner()
    if the_ramps:
        learner.ramp_began = 0.0  # (the ramp itself ended at its first 429, below)
    for i in range(50):  # 25 a second, each let through
        learner.sent(i * 0.04)[1] = True
    learner.rate, learner.ceiling = 27.0, 28.0  # (what the ramp's first 429 left)
    began = learner.storm_began(2.0)
    learner.sent(2.03)[1] = True  # the probe
    learner.storm_ended(began, 2.03, 2.14, last_pause=0.5)
    for k in range(resent):  # after the probe's reply: one let through, the rest refused
        learner.sent(2.15 + 0.1 * k / resent)[1] = k == 0
    assert learner.storm_began(2.25) == began  # the same storm, come back
    assert learner.rate < 5.0, learner.rate
    if not the_ramps:
        assert learner.ceiling < 5.0, learner.ceiling
        return
    assert learner.ceiling == 28.0
    now, next_send = 2.25, 2.25
    while now < 10.25:  # sending at the rate, every request let through
        now += 0.01
        if now >= next_send:
            ticket = Ticket(now, 1, 0, Sent(), learner.epoch)
            ticket.record = learner.sent(now)
            learner.succeeded(ticket, now + 0.1)
            next_send = now + 1 / learner.rate
    assert learner.rate > 20.0, learner.rate


@pytest.mark.parametrize("storm_at, taught", [(1.0, True), (5.0, False)],
                         ids=["the ramp's first second", "later"])
def test_a_429_as_a_quick_storm_ends_teaches_only_after_the_ramps_burst(storm_at, taught):
    """A storm its first probe ended, after a second in which 20 got through, then a 429 to a
    request sent at once: later in a run that span measured our pause (skipped); in the ramp's
    first second it is the one estimate there is (a bucket that starts full, the simulator's free
    plan: 25 429s in 90 s where 10 came when it was skipped)."""
    learner = Learner()
    for i in range(int(storm_at / 0.05)):  # 20 a second, each let through
        learner.sent(i * 0.05)[1] = True
    learner.rate, learner.ceiling = 40.0, 42.0  # (what the ramp's first 429 left)
    began = learner.storm_began(storm_at)
    learner.sent(began + 0.5)[1] = True  # the probe, after the first pause
    learner.storm_ended(began, began + 0.5, began + 0.55, last_pause=0.5)
    ticket = Ticket(began + 0.56, 1, 0, Sent(), learner.epoch)
    ticket.record = learner.sent(began + 0.56)
    ticket.record[1] = False
    learner.edge(ticket, began + 0.57)
    assert (learner.rate < 10.0) == taught, learner.rate
