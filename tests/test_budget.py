"""Hard budgets (--max_requests, --max_cost): what is sent never exceeds them, counted by the
simulator, at any concurrency, with 429s and 5xx; reaching one is its own status (budget_spent,
exit 3, one line) and the run resumes with a larger budget. Plus the bookkeeping on its own."""

from __future__ import annotations

import dataclasses
import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from creatorproc import (  # noqa: E402
    Result,
    assert_no_traceback,
    assert_usage_error,
    check_records,
    example_args,
    read_summary,
    run_creator,
)
from benchmarks.simproc import start_simulator  # noqa: E402
from creator.spend import Spend, prompt_token_bound  # noqa: E402

PRICE = 1000.0  # USD per 1M tokens, in and out: a token costs $0.001, a request ~$0.3


def sim_cost(stats: dict) -> float:
    """What the simulator served, at PRICE (it counts only the replies it completed)."""
    return (stats["prompt_tokens"] + stats["completion_tokens"]) * PRICE / 1e6


def assert_budget_spent(r, flag: str) -> None:
    assert_no_traceback(r)
    assert r.returncode == 3, f"exit {r.returncode}:\n{r.stderr}"
    # a clean stop: one line (after the run's first, which says where its output goes)
    lines = [ln for ln in r.lines if not ln.startswith("creator: writing ")]
    assert len(lines) == 1, r.stderr
    line = lines[0]
    assert line.startswith("creator: budget spent: ") and flag in line, line
    assert "--resume" in line, line


# --- the bookkeeping ------------------------------------------------------------------------


def test_reservations_never_let_the_sum_pass_either_budget():
    """Random interleavings of reserve / send / settle / refuse / lose / release, as thousands
    of concurrent requests and their retries make them: sent + held stays within both budgets,
    and every hold comes back."""
    for seed in range(200):
        rng = random.Random(seed)
        spend = Spend(max_requests=rng.randint(1, 60), max_cost=rng.uniform(0.01, 5.0),
                      price_in=rng.uniform(0, 50), price_out=rng.uniform(1, 100))
        holds = []
        for _ in range(400):
            action = rng.random()
            if action < 0.4:
                worst = spend.worst_case(rng.randint(10, 3000), rng.randint(1, 2048))
                hold = spend.reserve(worst)
                if hold is not None:
                    holds.append(hold)
            elif holds:
                hold = holds.pop(rng.randrange(len(holds)))
                spend.mark_sent(hold) if rng.random() < 0.9 else None
                end = rng.random()
                if end < 0.5:  # a reply: never more than the reservation's worst case
                    spend.settle(hold, 0, 0) if rng.random() < 0.1 else \
                        spend.settle_cost(hold, hold.cost * rng.random())
                elif end < 0.75:
                    spend.refused(hold)
                elif end < 0.9:
                    spend.lose(hold)
                else:
                    spend.release(hold)
            assert spend.requests + spend.reserved_requests <= spend.max_requests
            assert spend.cost + spend.reserved_cost <= spend.max_cost + 1e-9
        for hold in holds:
            spend.release(hold)
        assert spend.reserved_requests == 0 and abs(spend.reserved_cost) < 1e-9


def test_a_lost_reply_keeps_its_worst_case_and_a_refusal_costs_nothing():
    spend = Spend(max_cost=10.0, price_in=1e6, price_out=1e6)  # a token costs $1
    a, b, c = spend.reserve(3.0), spend.reserve(3.0), spend.reserve(3.0)
    assert spend.reserve(3.0) is None  # 9 held, 3 more would pass 10
    for hold in (a, b, c):
        spend.mark_sent(hold)
    spend.settle(a, 1, 1)  # billed 2 of its 3
    spend.refused(b)  # a 429: nothing
    spend.lose(c)  # a timeout: maybe billed, 3
    assert spend.cost == pytest.approx(5.0) and spend.requests == 3 and spend.lost_replies == 1
    assert spend.how_many_fit(2.0, 10) == 2


def test_the_prompt_bound_is_above_any_count_of_its_tokens():
    messages = [{"role": "system", "content": "You are creating 5 more examples."},
                {"role": "user", "content": '{"Question": "Ça coûte combien, 東京?"}'}]
    bound = prompt_token_bound(messages)
    utf8 = sum(len(m["content"].encode()) for m in messages)
    assert bound >= utf8 + 3 * len(messages) + 3  # byte-level BPE: >= 1 byte per token


# --- against the simulator -------------------------------------------------------------------

# 429s the client must learn from (no headers, no Retry-After, a refused request still counts)
# and 5xx on a fifth of the requests
STORMY = {"rpm": 240, "limit_mode": "fixed", "window_s": 1, "count_rejected": True,
          "no_ratelimit_headers": True, "no_retry_after": True, "no_body_hint": True,
          "p_500": 0.2, "ttft": 0.05}


@pytest.mark.parametrize("concurrency", [1, 16, 64, 1024])
def test_max_requests_is_never_exceeded(concurrency, tmp_path):
    out = tmp_path / "out.jsonl"
    with start_simulator(seed=concurrency, **STORMY) as sim:
        r = run_creator(*example_args(), "--setting", "tree", "--target", "100000",
                        "--concurrency", concurrency, "--max_requests", "40", "--output", out,
                        "--base_url", sim.base_url, cwd=tmp_path, timeout=90)
        stats = sim.stats()
    assert_budget_spent(r, "--max_requests")
    assert stats["requests"] <= 40, stats  # what the server saw, 429s and 5xx included
    assert stats["requests"] >= 30, stats  # and the budget was used, not given up early
    summary = read_summary(out)
    assert summary["status"] == "budget_spent" and summary["requests"] == stats["requests"]
    assert summary["budget"]["requests"] == stats["requests"]
    if concurrency > 1:
        assert stats["errors_5xx"] + stats["rate_limited"] > 0, stats
    check_records(out)


@pytest.mark.parametrize("concurrency", [1, 16, 64, 1024])
def test_max_cost_is_never_exceeded(concurrency, tmp_path):
    out = tmp_path / "out.jsonl"
    with start_simulator(seed=10 + concurrency, **STORMY) as sim:
        r = run_creator(*example_args("mcqa_5"), "--setting", "naive", "--target", "100000",
                        "--concurrency", concurrency, "--max_cost", "8", "--max_tokens", "400",
                        "--price_in", PRICE, "--price_out", PRICE, "--output", out,
                        "--base_url", sim.base_url, cwd=tmp_path, timeout=90)
        stats = sim.stats()
    assert_budget_spent(r, "--max_cost")
    assert sim_cost(stats) <= 8.0, stats
    assert sim_cost(stats) >= 6.0, stats  # within ~a worst case of the budget: it was used
    summary = read_summary(out)
    assert summary["status"] == "budget_spent"
    assert summary["budget"]["spent_usd"] == pytest.approx(sim_cost(stats), rel=1e-6)
    assert summary["estimated_cost_usd"] == pytest.approx(sim_cost(stats), rel=1e-6)
    if concurrency > 1:
        assert stats["errors_5xx"] + stats["rate_limited"] > 0, stats


def test_lost_replies_count_at_their_worst_case(tmp_path):
    """Timeouts: the server may have done (and billed) the work, so the budget keeps their
    worst case; what it serves stays within the budget."""
    out = tmp_path / "out.jsonl"
    with start_simulator(seed=5, p_timeout=0.2, hang_s=30) as sim:
        r = run_creator(*example_args(), "--setting", "naive", "--target", "100000",
                        "--concurrency", "8", "--max_cost", "4", "--max_tokens", "300",
                        "--timeout", "1", "--price_in", PRICE, "--price_out", PRICE,
                        "--output", out, "--base_url", sim.base_url, cwd=tmp_path, timeout=90)
        stats = sim.stats()
    assert_budget_spent(r, "--max_cost")
    summary = read_summary(out)
    assert summary["timeouts"] > 0
    assert summary["budget"]["lost_replies_counted_at_worst_case"] == summary["timeouts"]
    assert sim_cost(stats) <= summary["budget"]["spent_usd"] <= 4.0


def test_budget_spent_resumes_with_a_larger_budget_and_not_with_the_same(tmp_path):
    out = tmp_path / "out.jsonl"
    common = [*example_args(), "--setting", "random", "--target", "60", "--concurrency", "8",
              "--output", out, "--price_in", PRICE, "--price_out", PRICE]
    with start_simulator(seed=6) as sim:
        r = run_creator(*common, "--max_requests", "5", "--base_url", sim.base_url, cwd=tmp_path)
        assert_budget_spent(r, "--max_requests")
        assert sim.stats()["requests"] == 5
        kept = len(check_records(out))
        r = run_creator(*common, "--resume", "--max_requests", "5", "--base_url", sim.base_url,
                        cwd=tmp_path)
        assert_budget_spent(r, "--max_requests")
        assert sim.stats()["requests"] == 5  # the same budget: nothing more is sent
        assert len(check_records(out)) == kept
        spent = read_summary(out)["budget"]["spent_usd"]
        # a cost budget counts the earlier sessions too
        r = run_creator(*common, "--resume", "--max_cost", f"{spent + 0.001:.6f}",
                        "--max_tokens", "300", "--base_url", sim.base_url, cwd=tmp_path)
        assert_budget_spent(r, "--max_cost")
        assert sim.stats()["requests"] == 5
        r = run_creator(*common, "--resume", "--max_requests", "100", "--base_url",
                        sim.base_url, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        stats = sim.stats()
    assert stats["requests"] <= 100
    summary = read_summary(out)
    assert summary["status"] == "completed" and summary["requests"] == stats["requests"]
    assert summary["budget"]["spent_usd"] == pytest.approx(sim_cost(stats), rel=1e-6)
    check_records(out, 60)


def test_a_run_that_kept_nothing_still_counts_what_it_spent(tmp_path):
    """Every reply rejected: the output stays empty, and a resume must not forget the money."""
    out = tmp_path / "out.jsonl"
    common = [*example_args(), "--setting", "naive", "--target", "20", "--concurrency", "2",
              "--output", out, "--price_in", PRICE, "--price_out", PRICE]
    with start_simulator(seed=7, p_garbage=1.0) as sim:
        r = run_creator(*common, "--max_cost", "2", "--base_url", sim.base_url, cwd=tmp_path)
        assert_budget_spent(r, "--max_cost")
        first = sim_cost(sim.stats())
        r = run_creator(*common, "--resume", "--max_cost", "2", "--base_url", sim.base_url,
                        cwd=tmp_path)
        assert_budget_spent(r, "--max_cost")
        assert sim_cost(sim.stats()) == first <= 2.0


def without_where(r: Result) -> Result:
    """`r` without the run's first line, which says where its output goes (a price is known only
    once the server has named its model, after that line)."""
    kept = [ln for ln in r.stderr.splitlines() if not ln.startswith("creator: writing ")]
    return dataclasses.replace(r, stderr="\n".join(kept) + "\n")


def test_max_cost_needs_a_price_and_room_for_one_request(tmp_path):
    out = tmp_path / "out.jsonl"
    with start_simulator(seed=8) as sim:
        r = run_creator(*example_args(), "--setting", "naive", "--target", "10", "--output", out,
                        "--max_cost", "5", "--base_url", sim.base_url, cwd=tmp_path)
        assert_usage_error(without_where(r), "--max_cost", "--price_in")
        r = run_creator(*example_args(), "--setting", "naive", "--target", "10", "--output", out,
                        "--max_cost", "0.0001", "--model", "gpt-4o-mini",
                        "--base_url", sim.base_url, cwd=tmp_path)
        assert_usage_error(without_where(r), "--max_cost", "one request", "--max_tokens")
        assert sim.stats()["requests"] == 0
    assert not out.exists()


def test_the_python_api_reports_budget_spent(tmp_path):
    import creator

    with start_simulator(seed=9) as sim:
        result = creator.create(data_dir=example_args()[1], data_name="example",
                                setting="naive", target=1000, max_requests=3,
                                base_url=sim.base_url, output=tmp_path / "o.jsonl", quiet=True)
        assert sim.stats()["requests"] == 3
    assert result.status == "budget_spent" and not result.completed
    assert result.requests == 3 and "max_requests=3" in result.message, result.message
