"""max_tokens fitted to the replies where a token limit charges it (creator/replysize.py): the
pure object, when the engine uses it (Limits.counts_tokens), and end to end against the
simulator, which reports what each admitted request asked for (/stats/timeline reserved_tokens).
"""

from __future__ import annotations

import httpx
import pytest

import creatorproc
from benchmarks.simproc import start_simulator
from creator.ratehints import RateLimitHint, Reading
from creator.ratelimit import Limits
from creator.replysize import FIRST_MARGIN, LEAST, SEEN_BEFORE_FIT, SLACK, WINDOW, ReplySize
from creatorproc import check_records, read_summary, run_creator

YESNO = creatorproc.example_args("yesno_close")


# --------------------------------------------------------------------------- the pure object


def test_asks_for_the_ceiling_until_enough_replies_are_measured():
    size = ReplySize(1024)
    for _ in range(SEEN_BEFORE_FIT - 1):
        size.observe(150, "stop", 1024)
        assert size.max_tokens() == 1024
    size.observe(200, "stop", 1024)
    assert size.max_tokens() == 220 + SLACK  # 236: the longest, with headroom


def test_before_the_fit_a_few_times_the_expected_or_longest_reply():
    size = ReplySize(1024, expected=150)
    assert size.max_tokens() == FIRST_MARGIN * 150
    size.observe(120, "stop", size.max_tokens())  # shorter than expected: the guess stands
    assert size.max_tokens() == FIRST_MARGIN * 150
    size.observe(250, "stop", size.max_tokens())  # longer: the guess follows the longest
    assert size.max_tokens() == FIRST_MARGIN * 250
    size.observe(750, "length", 750)  # cut at the guess: counts as twice it, up to the ceiling
    assert size.cut == 1 and size.max_tokens() == 1024
    assert ReplySize(1024, expected=5).max_tokens() == LEAST
    assert ReplySize(300, expected=150).max_tokens() == 300
    fitted = ReplySize(1024, expected=150)
    for _ in range(SEEN_BEFORE_FIT):  # then the fit, the guess forgotten
        fitted.observe(100, "stop", 450)
    assert fitted.max_tokens() == 110 + SLACK


def test_never_above_the_ceiling_nor_below_the_least():
    long_replies, short_replies = ReplySize(300), ReplySize(1024)
    for _ in range(SEEN_BEFORE_FIT):
        long_replies.observe(290, "stop", 300)
        short_replies.observe(3, "stop", 1024)
    assert long_replies.max_tokens() == 300
    assert short_replies.max_tokens() == LEAST


def fitted_to_replies_of_100() -> ReplySize:
    size = ReplySize(1024)
    for _ in range(SEEN_BEFORE_FIT):
        size.observe(100, "stop", 1024)
    return size


def test_a_reply_cut_by_the_fit_counts_as_twice_the_cap_for_a_while():
    size = fitted_to_replies_of_100()
    cap = size.max_tokens()
    assert cap == 126
    size.observe(cap, "length", cap)  # the model wanted more than the fit allowed
    assert size.cut == 1 and size.max_tokens() == 278 + SLACK  # 1.1 x 2 x 126 + 16
    for _ in range(WINDOW - 1):
        size.observe(100, "stop", 1024)
    assert size.max_tokens() == 278 + SLACK
    size.observe(100, "stop", 1024)  # the cut reply is out of the window now
    assert size.max_tokens() == cap


def test_replies_cut_for_other_reasons_teach_nothing():
    size = fitted_to_replies_of_100()
    cap = size.max_tokens()
    size.observe(40, "length", cap)  # stopped short of the cap: the server's doing, not ours
    size.observe(1024, "length", 1024)  # the user's own cap
    assert size.cut == 0 and size.max_tokens() == cap and len(size.recent) == SEEN_BEFORE_FIT


def test_the_fit_follows_the_recent_replies():
    size = ReplySize(1024)
    size.observe(800, "stop", 1024)  # one long reply early on
    for _ in range(WINDOW):
        size.observe(100, "stop", 1024)
    assert size.max_tokens() == 110 + SLACK
    assert size.to_json() == {"max_tokens": 126, "replies_measured": WINDOW, "replies_cut": 0}


def test_a_token_limit_is_known_when_given_stated_or_named_by_a_429():
    assert Limits(8, tpm=30000).counts_tokens
    assert Limits(8, otpm=9000).counts_tokens
    assert not Limits(8, rpm=600).counts_tokens
    stated = Limits(8, rpm=600)
    stated.observe(RateLimitHint(tokens=Reading(limit=30000, remaining=29000, reset=1.0)), None, 0.0)
    assert stated.counts_tokens
    named = Limits(8, rpm=600)
    ticket = named.consume(1100, 0.0, prompt=76)
    named.rate_limited(ticket, 0.5, RateLimitHint(limited="requests"))
    assert not named.counts_tokens
    ticket = named.consume(1100, 1.0, prompt=76)
    named.rate_limited(ticket, 1.5, RateLimitHint(limited="tokens"))
    assert named.counts_tokens
    # nothing known: a token limit may be hidden (fitting early keeps a learnt request rate
    # true: it is learnt with requests as large as those that follow); a server known to have
    # no limits (the embedded one) is not fitted
    assert Limits(8).counts_tokens and not Limits(8, learn=False).counts_tokens


# --------------------------------------------------------------------------- end to end


def asked(sim, out) -> float:
    """The mean max_tokens the admitted requests of the run asked for, as the simulator counted
    them (not the limits read's one token: client.LIMITS_READ)."""
    tl = httpx.get(sim.root_url + "/stats/timeline", timeout=10).json()
    admitted, ok = sum(tl["admitted"]), sum(tl["ok"])
    assert admitted == ok > 0  # every admitted request completed: its prompt is counted
    reads = read_summary(out)["config"]["endpoints"][0]["limit_reads"]
    return (sum(tl["reserved_tokens"]) - sum(tl["input_tokens"]) - reads) / (admitted - reads)


@pytest.mark.parametrize("fit", ["auto", "off"])
def test_under_a_token_limit_requests_ask_for_what_replies_need(tmp_path, fit):
    out = tmp_path / "out.jsonl"
    # a token limit stated in x-ratelimit-* headers, far above what the run sends
    with start_simulator(tpm=10_000_000, headers="openai") as sim:
        r = run_creator(*YESNO, "--setting", "naive", "--target", "400", "--concurrency", "4",
                        "--output", str(out), "--base_url", sim.base_url,
                        "--fit_max_tokens", fit, cwd=tmp_path, timeout=120)
        assert r.returncode == 0, r.stderr
        mean_asked = asked(sim, out)
        truncated = sim.stats()["truncated"]
    check_records(out, target=400)
    config = read_summary(out)["config"]
    fitted = config["fit_max_tokens"]
    truncated -= config["endpoints"][0]["limit_reads"]  # its one token is a reply cut there
    if fit == "off":
        assert fitted == "off" and mean_asked == 1024
        return
    # ~80 requests: the first 8 answered and the few in flight ask 3x the projection's 159, the
    # rest ~1.1x the longest reply (yes/no replies of 5 examples: ~110-200 tokens)
    assert fitted["token_limit"] and fitted["replies_measured"] >= SEEN_BEFORE_FIT
    assert 64 <= fitted["max_tokens"] <= 400
    assert mean_asked < 265, mean_asked  # 242 (293 when the first ones asked 1,024)
    assert fitted["replies_cut"] == truncated <= 2


def test_without_a_token_limit_requests_ask_for_max_tokens(tmp_path):
    out = tmp_path / "out.jsonl"
    with start_simulator(rpm=60_000, headers="openai") as sim:  # a request limit only
        r = run_creator(*YESNO, "--setting", "naive", "--target", "150", "--concurrency", "4",
                        "--output", str(out), "--base_url", sim.base_url, "--max_tokens", "900",
                        cwd=tmp_path, timeout=120)
        assert r.returncode == 0, r.stderr
        assert asked(sim, out) == 900
    fitted = read_summary(out)["config"]["fit_max_tokens"]
    assert fitted["replies_measured"] >= SEEN_BEFORE_FIT
    assert fitted["max_tokens"] == 900 and not fitted["token_limit"]


@pytest.mark.parametrize("accounting, charge", [("max", "max"), ("reserve", "sum")])
def test_the_server_s_own_token_count_is_learnt_from_its_429s(tmp_path, accounting, charge):
    """OpenAI counts "the maximum of max_tokens and the estimated number of tokens" (the
    simulator reads that literally: --token_accounting max), Azure prompt + max_tokens; both
    write the refused request's count in the 429 ("Requested 1024"). A 1-s window of 2,000
    tokens holds one request of max_tokens 1,024 at the start, so the first ones are refused
    and say how the server counts; the summary names it."""
    out = tmp_path / "out.jsonl"
    with start_simulator(tpm=120_000, limit_mode="fixed", window_s=1, ttft=0.2,
                         token_accounting=accounting, count_rejected=True, seed=3) as sim:
        r = run_creator(*YESNO, "--setting", "naive", "--target", "400", "--concurrency", "16",
                        "--output", str(out), "--base_url", sim.base_url, "--tpm", "120000",
                        cwd=tmp_path, timeout=120)
        assert r.returncode == 0, r.stderr
        stats = sim.stats()
    check_records(out, target=400)
    endpoint = read_summary(out)["config"]["endpoints"][0]
    assert stats["rate_limited"] > 0  # (what teaches it)
    assert endpoint["token_charge"] == charge
