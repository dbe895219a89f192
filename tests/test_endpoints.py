"""Endpoints: the file, keys by environment variable, the circuit breaker, routing where there is
room (pure, on a fake clock), and end to end: two simulators with different limits, an endpoint
that fails, and a key that never shows."""

from __future__ import annotations

import json

import pytest

import creatorproc
from benchmarks.simproc import start_simulator
from creator.endpoints import Breaker, EndpointsError, Endpoint, Router, load_endpoints
from creatorproc import assert_usage_error, check_records, read_summary, run_creator

YESNO = creatorproc.example_args("yesno_close")


# --- the file -------------------------------------------------------------------------------


def test_yaml_and_json_files_with_keys_named_by_environment_variable(tmp_path):
    yaml_file = tmp_path / "endpoints.yaml"
    yaml_file.write_text("endpoints:\n"
                         "  - base_url: http://127.0.0.1:8000/v1/\n"
                         "    model: small\n    rpm: 600\n"
                         "  - base_url: https://api.example.com/v1\n"
                         "    api_key_env: EXAMPLE_KEY\n    tpm: 150000\n    max_concurrency: 8\n")
    a, b = load_endpoints(yaml_file, {"EXAMPLE_KEY": "sk-secret"})
    assert (a.base_url, a.model, a.rpm, a.api_key) == ("http://127.0.0.1:8000/v1", "small", 600,
                                                       None)
    assert (b.api_key, b.api_key_env, b.tpm, b.max_in_flight) == ("sk-secret", "EXAMPLE_KEY",
                                                                   150000, 8)
    assert "sk-secret" not in repr(b) and "sk-secret" not in json.dumps(b.describe())
    json_file = tmp_path / "endpoints.json"
    json_file.write_text(json.dumps(["http://127.0.0.1:1/v1", {"base_url": "http://h:2/v1"}]))
    assert [e.base_url for e in load_endpoints(json_file, {})] == ["http://127.0.0.1:1/v1",
                                                                  "http://h:2/v1"]


@pytest.mark.parametrize("content,needle", [
    ("[]", "expected a list of endpoints"),
    ("- model: x", "base_url is required"),
    ("- base_url: http://h/v1\n  api_key: sk-123", "write no key in the file"),
    ("- base_url: http://h/v1\n  api_key_env: NOT_SET_HERE", "NOT_SET_HERE"),
    ("- base_url: http://h/v1\n  rpm: -5", "rpm must be a number greater than 0"),
    ("- base_url: http://h/v1\n  rmp: 5", "unknown field(s) rmp"),
    ("- base_url: [", "not valid YAML"),
])
def test_bad_endpoints_files_are_refused_with_the_entry_named(tmp_path, content, needle):
    path = tmp_path / "endpoints.yaml"
    path.write_text(content)
    with pytest.raises(EndpointsError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        load_endpoints(path, {})


# --- the breaker and the router, on a fake clock ----------------------------------------------


def test_the_breaker_sets_a_failing_endpoint_aside_and_probes_it_later():
    breaker = Breaker()
    for _ in range(Breaker.FAILURES):
        assert breaker.wait_time(0.0, 0) == 0
        breaker.failed(0.0)
    assert breaker.wait_time(0.0, 0) == pytest.approx(Breaker.COOLDOWN_S)
    assert breaker.wait_time(Breaker.COOLDOWN_S, 0) == 0  # one probe may go ...
    assert breaker.wait_time(Breaker.COOLDOWN_S, 1) == float("inf")  # ... alone
    breaker.failed(Breaker.COOLDOWN_S)  # the probe failed: a longer cooldown
    assert breaker.wait_time(Breaker.COOLDOWN_S, 0) == pytest.approx(2 * Breaker.COOLDOWN_S)
    breaker.succeeded()
    assert breaker.wait_time(100.0, 5) == 0 and breaker.trips == 2


def test_requests_go_where_there_is_room_in_proportion_to_the_limits():
    now = [0.0]
    router = Router([Endpoint("http://a/v1", rpm=600), Endpoint("http://b/v1", rpm=1200)], 64,
                    clock=lambda: now[0])
    counts = {"http://a/v1": 0, "http://b/v1": 0}
    while now[0] < 60:
        route, wait = router.choose(100, 50, now[0])
        if wait > 0:
            now[0] += wait
            continue
        route.limits.consume(100, now[0], 50)
        route.limits.in_flight -= 1  # answered at once
        counts[route.endpoint.base_url] += 1
    total = sum(counts.values())
    assert total >= 0.97 * 1800 and abs(counts["http://b/v1"] / total - 2 / 3) < 0.02


# --- end to end ---------------------------------------------------------------------------


def test_two_endpoints_with_their_own_limits_and_keys(tmp_path):
    """600 and 1,200 RPM, each stated in its headers and enforced per second, each with its own
    key: both used to their limit, no 429, and no key anywhere in what the run leaves."""
    out = tmp_path / "out.jsonl"
    flags = dict(ttft=0.3, limit_mode="fixed", window_s=1)
    with start_simulator(rpm=600, api_key="sk-first-0123456789", seed=1, **flags) as a, \
            start_simulator(rpm=1200, api_key="sk-second-0123456789", seed=2, **flags) as b:
        endpoints = tmp_path / "endpoints.yaml"
        endpoints.write_text(f"- base_url: {a.base_url}\n  api_key_env: KEY_A\n"
                             f"- base_url: {b.base_url}\n  api_key_env: KEY_B\n")
        r = run_creator(*YESNO, "--setting", "naive", "--target", "1500", "--concurrency", "64",
                        "--endpoints", str(endpoints), "--output", str(out), cwd=tmp_path,
                        timeout=90, env=creatorproc.creator_env(KEY_A="sk-first-0123456789",
                                                                KEY_B="sk-second-0123456789"))
        served = a.stats()["ok"], b.stats()["ok"]
        limited = a.stats()["rate_limited"] + b.stats()["rate_limited"]
    assert r.returncode == 0, r.stderr
    check_records(out, 1500)
    assert limited == 0
    assert 1.6 <= served[1] / served[0] <= 2.4, served  # shared by their limits, not evenly
    text = out.read_text() + (tmp_path / "out.summary.json").read_text() + r.stderr + r.stdout
    assert "sk-first" not in text and "sk-second" not in text
    summary = read_summary(out)
    assert [e["api_key_env"] for e in summary["config"]["endpoints"]] == ["KEY_A", "KEY_B"]


def test_an_endpoint_that_keeps_failing_is_set_aside_and_the_run_goes_on(tmp_path):
    """(A run long enough, ~6 s, for the failing one to fail Breaker.FAILURES times in a row:
    the ramp, at 4 a second, is not raised by failures, and the good one takes the rest.)"""
    out = tmp_path / "out.jsonl"
    with start_simulator(ttft=0.2, seed=1) as good, \
            start_simulator(ttft=0.05, p_500=1.0, seed=2) as bad:
        r = run_creator(*YESNO, "--setting", "naive", "--target", "1000", "--concurrency", "8",
                        "--base_url", good.base_url, "--base_url", bad.base_url,
                        "--output", str(out), cwd=tmp_path, timeout=90)
        bad_requests = bad.stats()["requests"]
    assert r.returncode == 0, r.stderr
    check_records(out, 1000)
    routes = {e["base_url"]: e for e in read_summary(out)["config"]["endpoints"]}
    assert routes[bad.base_url]["breaker_trips"] >= 1, json.dumps(routes)
    assert bad_requests < 40, bad_requests  # set aside after a few, probed now and then


def test_endpoints_and_base_url_together_are_refused(tmp_path):
    path = tmp_path / "e.yaml"
    path.write_text("- base_url: http://127.0.0.1:9/v1\n")
    r = run_creator(*YESNO, "--setting", "naive", "--target", "5", "--endpoints", str(path),
                    "--base_url", "http://127.0.0.1:9/v1", "--output", str(tmp_path / "o.jsonl"),
                    cwd=tmp_path)
    assert_usage_error(r, "--endpoints FILE and --base_url URL")


def test_a_missing_key_variable_is_refused_before_anything_is_sent(tmp_path):
    path = tmp_path / "e.yaml"
    path.write_text("- base_url: http://127.0.0.1:9/v1\n  api_key_env: NO_SUCH_VARIABLE_HERE\n")
    r = run_creator(*YESNO, "--setting", "naive", "--target", "5", "--endpoints", str(path),
                    "--output", str(tmp_path / "o.jsonl"), cwd=tmp_path)
    assert_usage_error(r, "NO_SUCH_VARIABLE_HERE")
