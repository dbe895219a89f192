"""The projection (`--dry_run`, and the first lines of every run): requests, prompt and completion
tokens, cost and time before anything is sent, checked against what runs on the simulator then
cost; a resumed run projects from what it measured; the progress bar shows spent and projected
cost."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from creatorproc import (
    SHARED_DATA,
    assert_no_traceback,
    assert_unchanged,
    closed_port_url,
    creator_cmd,
    creator_env,
    example_args,
    read_summary,
    run_creator,
    run_on_a_terminal,
    snapshot,
)

import creator
from benchmarks.simproc import start_simulator

PRICES = ["--price_in", "0.15", "--price_out", "0.6"]  # gpt-4o-mini's list price


def project(data: list[str], **options):
    """The dry run, through the Python API: nothing sent, nothing written."""
    options.setdefault("base_url", "http://127.0.0.1:9/v1")  # never contacted: a dry run
    options.setdefault("price_in", 0.15)
    options.setdefault("price_out", 0.6)
    result = creator.create(data_dir=data[1], data_name=data[3], dry_run=True, **options)
    assert result.status == "dry_run" and result.requests == 0
    return result.projection


def test_dry_run_prints_the_projection_and_sends_and_writes_nothing(tmp_path):
    before = snapshot(tmp_path)
    r = run_creator(*example_args(), "--setting", "tree", "--target", "500", *PRICES,
                    "--rpm", "600", "--output", tmp_path / "out.jsonl", "--dry_run",
                    "--base_url", closed_port_url(), cwd=tmp_path)  # nothing listens there
    assert_no_traceback(r)
    assert r.returncode == 0, r.stderr
    assert len(r.lines) == 4 and all(ln.startswith("creator: projection: ") for ln in r.lines)
    text = r.stderr
    assert "500 records" in text and "requests" in text
    assert "prompt" in text and "completion tokens" in text
    assert "$0.15 in / $0.6 out per 1M tokens" in text and "--rpm 600" in text
    assert_unchanged(before, tmp_path)


def test_time_and_rounds_at_the_given_limits():
    p = project(example_args(), setting="naive", target=900, rpm=600)
    assert p.seconds == pytest.approx(p.requests / 10.0, abs=0.1)
    tokens = p.prompt_tokens_per_request + p.completion_tokens_per_request
    p = project(example_args(), setting="naive", target=900, tpm=tokens * 60)
    assert p.seconds == pytest.approx(p.requests, abs=0.1)  # one request's tokens per second
    p = project(example_args(), setting="naive", target=900)
    assert p.seconds is None and "unknown" in p.time_basis
    p = project(example_args(), setting="tree", target=900, batch=True)
    assert p.batch_rounds == 5  # 1 + 4.5 + 20 + 91 + 410 > 200 replies: 5 depths
    assert p.price_in == 0.15  # a price given is the price paid, batch or not
    p = creator.create(data_dir=example_args()[1], data_name="example", setting="naive",
                       target=900, dry_run=True, batch=True, model="gpt-4o-mini",
                       base_url="http://127.0.0.1:9/v1").projection
    assert (p.price_in, p.price_out) == (0.075, 0.3) and p.batch_rounds == 1


def test_the_acceptance_prior_and_the_target_set_the_requests():
    p = project(example_args(), setting="naive", target=450, acceptance_prior=0.5)
    assert p.per_reply == 2.5 and p.requests == 180
    p = project(example_args(), setting="naive", target=450, num_examples=10)
    assert p.requests == math.ceil(450 / 9)
    assert p.prompt_tokens == p.requests * p.prompt_tokens_per_request


# The up-front projection takes a reply to be k objects as long as the exemplar. The simulator's
# fields come from fixed templates whatever the exemplar (questions ~57 characters, options ~13,
# contexts ~100), so on the two exemplars with long fields its replies are much shorter than that:
# yesno_open's context is 191 characters and mcqa_2's options 33-35 (its replies: 0.83x and 0.66x
# the projected tokens). A real model goes the other way: the embedded default's replies were
# 0.94x to 2.1x exemplar-long on these four (8 requests each, --max_requests 8, its tokenizer).
# Shrinking the estimate to fit the simulator would only move the error onto real models; a
# resumed run measures (see the test after this one).
SHORTER_THAN_THE_EXEMPLAR = pytest.mark.xfail(
    strict=True, reason="the simulator writes template-long fields, not exemplar-long ones")


def cases():
    for fmt in ("yesno_close", "yesno_open", "mcqa_2", "mcqa_5"):
        marks = [SHORTER_THAN_THE_EXEMPLAR] if fmt in ("yesno_open", "mcqa_2") else []
        yield pytest.param(f"{fmt}/example", example_args(fmt), "naive", marks=marks,
                           id=f"{fmt}-naive")
    yield pytest.param("mcqa_5/example", example_args("mcqa_5"), "tree", id="mcqa_5-tree")
    folder = SHARED_DATA / "yesno_close" / "strategyqa"
    if folder.is_dir():
        yield pytest.param("yesno_close/strategyqa",
                           ["--data_dir", str(SHARED_DATA / "yesno_close"), "--data_name",
                            "strategyqa"], "random", id="strategyqa-random")


def within(projected: float, counted: float) -> bool:
    return abs(projected - counted) <= 0.15 * counted


@pytest.mark.parametrize("name,data,setting", list(cases()))
def test_the_dry_run_is_within_15_percent_of_what_the_run_then_cost(name, data, setting,
                                                                     tmp_path):
    """Projected requests, tokens per reply and cost (--price_in/--price_out) against what the
    simulator counted for the run that then made the 400 records."""
    out = tmp_path / "out.jsonl"
    dry = project(data, setting=setting, target=400, output=out)
    assert dry.tokens_basis.startswith("from the rendered exemplar") and dry.requests > 0
    with start_simulator(seed=3) as sim:
        r = run_creator(*data, "--setting", setting, "--target", "400", *PRICES,
                        "--output", out, "--base_url", sim.base_url, cwd=tmp_path, timeout=90)
        stats = sim.stats()
    assert r.returncode == 0, r.stderr
    summary = read_summary(out)
    assert summary["accepted"] == 400 and stats["requests"] >= 400 / 5
    assert summary["projection"] == dry.to_json()  # the run's first lines say what the dry run did
    cost = (stats["prompt_tokens"] * 0.15 + stats["completion_tokens"] * 0.6) / 1e6
    assert summary["estimated_cost_usd"] == pytest.approx(cost, abs=2e-6)
    tokens = stats["prompt_tokens"] + stats["completion_tokens"]
    print(f"{name} {setting}: projected ${dry.cost_usd:.5f} ({dry.requests} requests, "
          f"{dry.prompt_tokens} + {dry.completion_tokens} tokens), cost ${cost:.5f} "
          f"({stats['requests']} requests, {stats['prompt_tokens']} + "
          f"{stats['completion_tokens']} tokens): {dry.cost_usd / cost:.2f}x")
    assert within(dry.requests, stats["requests"])  # the acceptance prior (0.9) vs 1 here
    # tokens per reply: the totals also carry the requests' error, which is checked above
    assert within(dry.prompt_tokens_per_request + dry.completion_tokens_per_request,
                  tokens / stats["ok"])
    assert within(dry.cost_usd, cost)


@pytest.mark.parametrize("name,data,setting", [pytest.param(*c.values, id=c.id)
                                               for c in cases()])
def test_a_probe_brings_every_dry_run_within_15_percent(name, data, setting, tmp_path):
    """--dry_run --probe 8: eight real requests of the same job, into a temporary folder, and the
    projection made from what they measured; on the cases the up-front figure misses too."""
    out = tmp_path / "out.jsonl"
    before = snapshot(tmp_path)
    with start_simulator(seed=3) as sim:
        dry = project(data, setting=setting, target=400, output=out, probe=8,
                      base_url=sim.base_url)
        assert sim.stats()["requests"] == 8 and dry.probe["requests"] == 8
        assert_unchanged(before, tmp_path)  # the probe's records were thrown away
        r = run_creator(*data, "--setting", setting, "--target", "400", *PRICES,
                        "--output", out, "--base_url", sim.base_url, cwd=tmp_path, timeout=90)
        stats = sim.stats()
    assert r.returncode == 0, r.stderr
    assert read_summary(out)["accepted"] == 400
    assert dry.tokens_basis == "measured by --probe" and "by --probe over 8" in dry.acceptance_basis
    requests = stats["requests"] - 8
    cost = ((stats["prompt_tokens"] - dry.probe["prompt_tokens"]) * 0.15
            + (stats["completion_tokens"] - dry.probe["completion_tokens"]) * 0.6) / 1e6
    print(f"{name} {setting} --probe 8: projected ${dry.cost_usd:.5f} ({dry.requests} requests), "
          f"cost ${cost:.5f} ({requests} requests): {dry.cost_usd / cost:.2f}x")
    assert within(dry.requests, requests)
    assert within(dry.cost_usd, cost)


def test_a_probe_goes_with_a_dry_run_and_says_when_it_measured_nothing(tmp_path):
    common = [*example_args(), "--setting", "naive", "--target", "40", "--probe", "4",
              "--output", tmp_path / "out.jsonl"]
    r = run_creator(*common, "--base_url", closed_port_url(), cwd=tmp_path)
    assert_no_traceback(r)
    assert r.returncode == 2 and "--probe 4 measures the model for --dry_run" in r.stderr
    with start_simulator(seed=3, p_500=1.0) as sim:  # every request fails
        r = run_creator(*common, "--dry_run", "--max_retries", "0", "--base_url",
                        sim.base_url, cwd=tmp_path, timeout=60)
    assert_no_traceback(r)
    assert r.returncode == 1 and "--probe 4 got no reply to measure" in r.stderr, r.stderr
    assert list(tmp_path.iterdir()) == []


def test_create_async_probes_on_the_callers_loop(tmp_path):
    import asyncio

    data = example_args("mcqa_2")
    with start_simulator(seed=3) as sim:
        result = asyncio.run(creator.create_async(
            data_dir=data[1], data_name=data[3], setting="naive", target=100, dry_run=True,
            probe=4, output=tmp_path / "out.jsonl", base_url=sim.base_url))
        assert sim.stats()["requests"] == 4
    assert result.status == "dry_run" and result.projection.probe["replies"] == 4
    assert result.projection.tokens_basis == "measured by --probe"
    assert list(tmp_path.iterdir()) == []


def test_a_resumed_run_projects_from_what_it_measured(tmp_path):
    """mcqa_2's exemplar has long options and the simulator writes short ones, so the up-front
    projection is far off; after 40 requests the resumed run's projection (measured tokens per
    reply, measured acceptance with duplicates) is within 15% of what the rest then cost."""
    out = tmp_path / "out.jsonl"
    data = example_args("mcqa_2")
    common = [*data, "--setting", "naive", "--target", "600", *PRICES, "--output", out]
    with start_simulator(seed=4, p_duplicate=0.3) as sim:
        r = run_creator(*common, "--max_requests", "40", "--base_url", sim.base_url,
                        cwd=tmp_path, timeout=60)
        assert r.returncode == 3, r.stderr
        first = read_summary(out)
        up_front = first["projection"]
        resumed = project(data, setting="naive", target=600, output=out, resume=True)
        assert "measured over 40 replies" in resumed.acceptance_basis
        assert resumed.acceptance < 0.95  # duplicates: fewer kept than asked for
        assert resumed.tokens_basis == "measured"
        assert resumed.remaining == 600 - first["accepted"]
        r = run_creator(*common, "--resume", "--base_url", sim.base_url, cwd=tmp_path,
                        timeout=90)
        assert r.returncode == 0, r.stderr
    summary = read_summary(out)
    rest = summary["estimated_cost_usd"] - first["estimated_cost_usd"]
    print(f"up front ${up_front['cost_usd']:.5f} for the whole run, which cost "
          f"${summary['estimated_cost_usd']:.5f}; resumed: projected ${resumed.cost_usd:.5f}, "
          f"cost ${rest:.5f}")
    assert up_front["cost_usd"] > 1.3 * summary["estimated_cost_usd"]  # why measuring matters
    assert abs(resumed.cost_usd - rest) <= 0.15 * rest
    assert summary["projection"] == resumed.to_json()


def test_every_run_starts_with_its_projection_and_quiet_keeps_it_in_the_summary(tmp_path):
    import subprocess

    out = tmp_path / "out.jsonl"
    with start_simulator(seed=5) as sim:
        cmd = creator_cmd(*example_args(), "--setting", "naive", "--target", "30", *PRICES,
                          "--output", out, "--base_url", sim.base_url, quiet=False)
        proc = subprocess.run(cmd, check=False, cwd=tmp_path, env=creator_env(), capture_output=True,
                              text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0].startswith("creator: writing "), lines  # where the output goes, then
    assert all(ln.startswith("creator: projection: ") for ln in lines[1:5]), lines
    assert any(ln.startswith("creator: done:") for ln in lines[-2:]), lines  # then the figures
    assert read_summary(out)["projection"]["remaining"] == 30


def test_the_progress_bar_shows_spent_and_projected_cost(tmp_path):
    out = tmp_path / "out.jsonl"
    with start_simulator(seed=6, ttft=0.2) as sim:
        cmd = creator_cmd(*example_args(), "--setting", "naive", "--target", "300", *PRICES,
                          "--concurrency", "4", "--output", out, "--base_url", sim.base_url,
                          quiet=False)
        shown = run_on_a_terminal(cmd, tmp_path, timeout=90)
    assert "spent of ~$" in shown, shown[-2000:]
    summary = read_summary(out)
    assert summary["projected_cost_usd"] == pytest.approx(summary["estimated_cost_usd"],
                                                          rel=1e-6)  # at the target: all spent


@pytest.mark.parametrize("name", ["yesno_close", "mcqa_5"])
def test_the_projection_counts_the_verification_votes(name, tmp_path):
    """--verify 3: three short requests per candidate, most of the requests of the run (before
    they were counted the projection said 34 requests where the run sent ~490)."""
    out = tmp_path / "out.jsonl"
    data = example_args(name)
    dry = project(data, setting="naive", target=150, output=out, verify=3)
    with start_simulator(seed=3) as sim:
        r = run_creator(*data, "--setting", "naive", "--target", "150", "--verify", "3",
                        *PRICES, "--output", out, "--base_url", sim.base_url, cwd=tmp_path,
                        timeout=120)
        stats = sim.stats()
    assert r.returncode == 0, r.stderr
    cost = (stats["prompt_tokens"] * 0.15 + stats["completion_tokens"] * 0.6) / 1e6
    assert dry.vote_requests > 0.8 * dry.requests
    assert abs(dry.requests - stats["requests"]) <= 0.15 * stats["requests"]
    assert abs(dry.cost_usd - cost) <= 0.25 * cost  # the votes' tokens from the exemplar
    resumed = project(data, setting="naive", target=300, output=out, resume=True, verify=3)
    assert resumed.tokens_basis == "measured" and resumed.vote_requests > 0.8 * resumed.requests
