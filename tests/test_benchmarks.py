"""The benchmarks in --quick mode: each runs as `python -m benchmarks NAME --quick --out DIR`, writes
its JSON (the schema below) and its PNG, and its numbers are sane.

No timing thresholds here: the machine is shared and small, so the figures are noisy; the targets
are checked and recorded by the benchmarks themselves (see benchmarks/README.md). Two lanes run at
once to keep this file under two minutes: throughput then scale, and transports then embed_cost;
limits (about a minute) runs on its own after them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TIMEOUTS = {"throughput": 170, "transports": 90, "scale": 90, "embed_cost": 150, "limits": 180}
METRICS = ("name", "client", "requests", "completions", "accepted", "retries", "rate_limited",
           "failed_requests", "duration_s", "requests_per_s", "accepted_per_s", "latency_p50_s",
           "latency_p99_s", "physical_limit_rps", "achieved_fraction", "cpu_s",
           "cpu_ms_per_request", "peak_rss_mb", "server")  # fmt: skip


def _run(name: str, out: Path) -> tuple[subprocess.CompletedProcess[str], dict]:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", name, "--quick", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=TIMEOUTS[name],
    )
    print(f"benchmarks {name} --quick: {time.monotonic() - started:.0f} s")
    path = out / f"{name}.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    return proc, data


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple]:
    out = tmp_path_factory.mktemp("bench")

    def lane(names: tuple[str, ...]) -> dict[str, tuple]:
        return {name: _run(name, out) for name in names}

    with ThreadPoolExecutor(2) as pool:
        lanes = [pool.submit(lane, ("throughput", "scale")),
                 pool.submit(lane, ("transports", "embed_cost"))]
        done: dict[str, tuple] = {}
        for future in lanes:
            done.update(future.result())
    return {name: (proc, data, out) for name, (proc, data) in done.items()}


def _ok(results: dict, name: str) -> dict:
    proc, data, out = results[name]
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-4000:]
    assert data, f"{name}.json was not written"
    assert data["benchmark"] == name and data["quick"] is True
    assert data["command"].startswith(f"python -m benchmarks {name} --quick")
    machine = data["machine"]
    for key in ("cpu", "cores", "python", "packages", "date"):
        assert machine.get(key), key
    assert (out / f"{name}.png").stat().st_size > 10_000, "the plot was not drawn"
    assert "## " + name in proc.stdout  # the plain-text table
    return data


def _sane(run: dict) -> None:
    for key in METRICS:
        assert key in run, f"{run.get('name')}: no {key}"
    assert run["requests"] > 0 and run["completions"] > 0 and run["accepted"] > 0, run["name"]
    assert run["requests"] >= run["completions"]
    assert run["requests_per_s"] > 0 and run["duration_s"] > 0
    assert run["cpu_s"] > 0 and run["peak_rss_mb"] > 10
    assert run["latency_p50_s"] is not None and run["latency_p50_s"] <= run["latency_p99_s"]


def test_throughput(results):
    data = _ok(results, "throughput")
    sweep = data["sweep"]
    assert {m["concurrency"] for m in sweep if m["setting"] == "naive"} == {1, 4, 16, 64, 256, 1024}
    assert any(m["setting"] == "tree" for m in sweep)
    for m in sweep:
        _sane(m)
        assert m["failed_requests"] == 0 and m["extra"]["status"] == "completed", m["name"]
        assert m["physical_limit_rps"] > 0 and m["achieved_fraction"] > 0
        assert m["cpu_ms_per_request_net"] is not None
    clients = {b["client"] for b in data["baselines"]}
    assert clients == {"sequential", "async_openai"}
    for b in data["baselines"]:
        _sane(b)
    ratios = data["ratios"]
    assert ratios["creator_c64_vs_sequential"] > 1  # sanity only: concurrency beats one-at-a-time
    assert "creator_c64_vs_async_openai" in ratios
    for m in data["open_loop"]:
        _sane(m)
        assert m["offered_rps"] > 0 and m["failed_requests"] == 0
    assert data["startup_cpu_s"] > 0
    names = {t["name"] for t in data["targets"]}
    assert any("sequential" in n for n in names) and any("CPU" in n for n in names)
    for t in data["targets"]:
        assert isinstance(t["met"], bool)


def test_transports(results):
    data = _ok(results, "transports")
    rows = {r["name"]: r for r in data["transports"]}
    assert {"httpx", "openai (default)", "aiohttp", "creator ChatClient"} <= set(rows)
    for row in rows.values():
        if not row["available"]:
            assert row["reason"]
            continue
        assert row["requests_per_s"] > 0 and row["cpu_us_per_request"] > 0
        assert row["errors"] == 0, row["name"]
    assert data["fastest_by_cpu"] in rows and data["fastest_by_rate"] in rows


def test_scale(results):
    data = _ok(results, "scale")
    targets = data["params"]["targets"]
    for setting in ("naive", "tree"):
        runs = sorted((r for r in data["runs"] if r["setting"] == setting),
                      key=lambda r: r["accepted"])
        assert [r["accepted"] for r in runs] == targets
        for r in runs:
            assert r["extra"]["status"] == "completed" and r["failed_requests"] == 0
            assert r["peak_rss_mb"] > 10 and r["extra"]["seconds_per_1k"] > 0
        flat = data["flatness"][setting]
        for key in ("seconds_per_1k_ratio", "cpu_per_1k_ratio", "rss_growth_kb_per_1k_records"):
            assert flat[key] is not None


def test_embed_cost(results):
    proc, data, _ = results["embed_cost"]
    assert proc.returncode == 0, proc.stderr[-4000:]
    if not data.get("available", False):
        pytest.skip(f"no sentence encoder here: {data.get('reason')}")
    data = _ok(results, "embed_cost")
    records = data["params"]["records"]
    runs = data["runs"] + data["rpm_runs"]
    assert {r["setting"] for r in data["runs"]} >= {"tree", "diverse", "similar"}
    for r in runs:
        e = r["extra"]
        assert r["accepted"] == records and e["status"] == "completed" and r["failed_requests"] == 0
        assert r["requests_per_s"] > 0 and r["physical_limit_rps"] > 0
        if r["setting"] in ("diverse", "similar"):
            # every question once: no text twice, no more than the records kept + the exemplar
            assert e["repeat_encodes"] == 0 and e["one_encode_per_record"] is True
            assert 0 < e["encoded"] <= r["accepted"] + 1
            assert e["batches"] >= 1 and e["mean_batch"] >= 1
        else:
            assert "encoded" not in e
    for b in data["backends"]:
        if "error" in b:
            continue
        assert b["bulk_records_per_s"] > 0 and b["per_reply_records_per_s"] > 0
        assert -1 <= b["cosine_min"] <= b["cosine_mean"] <= 1.0001
        for k in ("real", "run"):
            if f"choice_{k}" in b:
                assert 0 <= b[f"choice_{k}"]["same_both"] <= 1 and b[f"choice_{k}"]["groups"] > 0
    ct2 = next(b for b in data["backends"] if b["backend"] == "ct2")
    assert ct2["cosine_min"] > 0.9999  # fp32: today's vectors
    assert [r["exit"] for r in data["report"]] == [0] * len(data["report"])
    assert all(r["encoded_questions"] >= data["params"]["report_records"] * 0.9
               for r in data["report"])
    assert data["targets"]


LIMITS_KEYS = ("name", "group", "mode", "knowledge", "bound", "client", "limit_per_s",
               "held_whole", "held_steady", "ceiling", "per_1000_429", "converge_s", "lost",
               "server_requests", "server_429s", "figures", "server", "sim_flags", "series",
               "ceiling_asked")


def test_limits(tmp_path):
    """Issue 15's benchmark in --quick: each case's server timeline is measured from the first
    request to the SIGINT; the creator loses nothing where the limit is known, holds a per-second
    limit it is given (generous bound: a busy machine), and the AsyncOpenAI loop without a pacer
    gets 429s from the same server."""
    proc, data = _run("limits", tmp_path)
    data = _ok({"limits": (proc, data, tmp_path)}, "limits")
    cases = data["cases"]
    assert len(cases) >= 6
    for c in cases:
        assert "error" not in c, c.get("error")
        for key in LIMITS_KEYS:
            assert key in c, f"{c['name']}: no {key}"
        s = c["series"]
        assert len(s["t"]) == len(s["admitted"]) == len(s["rate_limited"]) == len(s["units"]) > 5
        assert s["sigint_t"] >= c["duration_s"] - 1
        assert c["server_requests"] > 0 and 0.3 < c["held_whole"] < 1.5, c["name"]
        assert c["held_steady"] is None  # quick runs are shorter than 90 s
        assert c["limit_per_s"] > 0 and 0 < c["ceiling"] <= 1
        assert c["ceiling_asked"] is None or 0 < c["ceiling_asked"] <= 1
        if c["client"] == "creator":
            f = c["figures"]
            assert f["exit_code"] == 130 and f["status"] == "interrupted", (c["name"], f)
            assert f["records_in_file"] == f["accepted"] > 0 and f["torn_lines"] == 0
            if c["knowledge"] != "nothing":
                assert c["lost"] == 0, (c["name"], f)
    by = {(c["group"], c["mode"], c["knowledge"], c["bound"], c["client"]): c for c in cases}
    given = by[("matrix", "fixed 1s", "given", "rpm", "creator")]
    assert given["held_whole"] >= 0.85 and given["server_429s"] <= 5, given
    assert any(c["knowledge"] == "nothing" for c in cases)
    greedy = by[("baseline", "fixed 1s", "given", "rpm", "aoai")]
    assert greedy["server_429s"] > 0  # the server did limit
    assert by[("baseline", "fixed 1s", "given", "rpm", "aoai_paced")]["figures"]["calls"] > 0
    faults = next(c for c in cases if c["group"] == "faults")
    assert faults["server"][0]["errors_5xx"] > 0 and faults["server"][0]["truncated"] > 0
    assert faults["goodput_vs_limit_after_5xx"] > 0.3
    two = next(c for c in cases if c["group"] == "endpoints")
    assert len(two["server"]) == 2 and all(s["admitted"] > 0 for s in two["server"])
    assert two["limit_per_s"] == 30
    names = " ".join(t["name"] for t in data["targets"])
    for word in ("given or in headers", "no headers", "faults", "two endpoints"):
        assert word in names
    for t in data["targets"]:
        assert isinstance(t["met"], bool)


def test_limits_ceiling_at_the_max_tokens_asked():
    """The module docstring's bound, 1 / (1 + L d / (W a)), for fixed 1-s windows that refund
    only while the window is open (prompt 103, 265 used, latency 0.5 s): 38% for a client asking
    for 1,024 tokens, 89% asking for the ~228 the creator's fit asks (benchmarks/README.md)."""
    from benchmarks.limits import Case, ceiling

    case = Case("fixed 1s, given, TPM", "matrix", "fixed 1s", "given", "tpm")
    info = {"prompt_tokens_per_request": 103.0, "tokens_per_request": 265.0}
    assert round(ceiling(case, info), 3) == 0.381
    assert round(ceiling(case, info, 228), 3) == 0.889
    assert ceiling(Case("x", "matrix", "fixed 1s", "given", "rpm"), info, 228) == 1.0


def test_limits_ceiling_of_a_sliding_window_counter_keeps_a_request_for_the_last_window():
    """The library's counter weighs the last window's count by the part still covered: an even
    sender of requests charged c (kept) fits floor((share + 1) / c) - 1 a window, one fewer than
    a fixed window's floor(share / c): at 5,000 tokens a second and 326 a request 14 (91.3%), not
    15 (97.8%); requests of one (RPM) lose nothing."""
    from benchmarks.limits import Case, ceiling

    info = {"prompt_tokens_per_request": 103.0, "tokens_per_request": 265.0}
    counter = Case("c", "library", "limits counter 1s", "given", "tpm", accounting="reserve")
    fixed = Case("f", "library", "limits fixed 1s", "given", "tpm", accounting="reserve")
    assert round(ceiling(counter, info, 223), 3) == round(14 * 326 / 5000, 3)
    assert round(ceiling(fixed, info, 223), 3) == round(15 * 326 / 5000, 3)
    assert ceiling(Case("r", "library", "limits counter 1s", "given", "rpm"), info) == 1.0


def test_limits_reports_a_client_that_died_early_by_its_exit_code():
    """A client that exits before its case's time is reaped by the polls that watch it; the
    benchmark then reported "ChildProcessError: No child processes" for the case (wait4 on a
    reaped child) and hid the client's own exit and stderr."""
    from benchmarks.limits import wait_for

    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    deadline = time.time() + 30
    while proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert wait_for(proc, timeout=5.0) == (3, None)
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.2)"])
    status, usage = wait_for(running, timeout=30.0)
    assert status == 0 and usage is not None and usage.ru_utime >= 0


def test_limits_paces_the_baseline_on_a_token_limit_at_a_share_of_its_requests():
    """The paced AsyncOpenAI loop on the Together-like token limit (nothing known, slow replies)
    sends at 91% and 94% of the requests 300,000 TPM allows at ~265 tokens a request, against the
    same server as the creator's row; on the per-second RPM case it paces at the limit."""
    from benchmarks.limits import FULL, RPM, TOKENS_PER_REQUEST, TPM, all_cases, client_cmd

    cases = all_cases(FULL)
    creator = next(c for c in cases if c.name == "together-like, slow replies, nothing, TPM")
    paced = [c for c in cases if c.client == "aoai_paced" and c.bound == "tpm"]
    assert [c.pace_share for c in paced] == [0.91, 0.94]
    for c in paced:
        assert (c.sim_flags, c.mode, c.accounting, c.duration_s, c.latency_s) == (
            creator.sim_flags, creator.mode, creator.accounting, creator.duration_s,
            creator.latency_s)
        cmd = client_cmd(c, ["URL"], Path("OUT.jsonl"))
        rpm = float(cmd[cmd.index("--pace_rpm") + 1])
        assert rpm == pytest.approx(c.pace_share * TPM / TOKENS_PER_REQUEST, rel=1e-4)
    at_limit = next(c for c in cases if c.client == "aoai_paced" and c.bound == "rpm")
    cmd = client_cmd(at_limit, ["URL"], Path("OUT.jsonl"))
    assert float(cmd[cmd.index("--pace_rpm") + 1]) == RPM


def test_limits_counts_a_profile_whose_binding_limit_no_header_states_as_nothing_known():
    """Groq's and Cerebras's headers state other limits than their RPM: with headers only, the
    RPM-bound rows are nothing-known rows as to the limit that binds; given, they are not."""
    from benchmarks.limits import binding_unstated

    row = dict(name="cerebras-like, slow replies, headers, RPM", knowledge="headers", bound="rpm")
    assert binding_unstated(row)
    assert binding_unstated({**row, "name": "groq-like, headers, RPM"})
    assert not binding_unstated({**row, "knowledge": "given"})
    assert not binding_unstated({**row, "bound": "tpm"})
    assert not binding_unstated({**row, "name": "openai-like, headers, RPM"})


def test_limits_runs_the_cases_chosen_for_as_long_as_asked():
    """`--only` takes |-separated parts of names; `--duration` runs each chosen case that long
    (only with --only: the committed results are whole runs of the set durations)."""
    from benchmarks.limits import FULL, chosen_cases

    names = "cerebras-like, headers, RPM|cerebras-like, slow replies, headers, RPM"
    cases = chosen_cases(FULL, names, 300.0)
    assert [c.name for c in cases] == names.split("|")
    assert {c.duration_s for c in cases} == {300.0}
    assert {c.duration_s for c in chosen_cases(FULL, names)} == {90.0}
    with pytest.raises(SystemExit, match="no case's name contains"):
        chosen_cases(FULL, "no such case")
    for argv in (["limits", "--duration", "300", "--out", "x"],
                 ["limits", "--only", "gcra", "--duration", "5", "--out", "x"]):
        run = subprocess.run([sys.executable, "-m", "benchmarks", *argv], capture_output=True,
                             text=True, timeout=60)
        assert run.returncode == 2 and "--duration is for limits with --only" in run.stderr


def test_fakeclock_rows_and_compare(tmp_path, capsys):
    """The fake clock's matrix (benchmarks/fakeclock.py): one row's figures, and --compare
    naming a row that moved and only that one."""
    from benchmarks import fakeclock

    rows = dict(fakeclock.rows())
    assert len(rows) == 60 and "sliding 60 s tpm lat1.7 rtt0.0" in rows
    figures = fakeclock.run_row(rows["gcra rpm lat0.1 rtt0.0"], [1], 90.0)
    held, steady, under_half, refused = figures[0]
    assert 0.5 < held < 1.2 and 0.5 < steady < 1.2 and under_half >= 0 and refused >= 0
    before = {"a": figures, "b": figures}
    after = {"a": figures, "b": [[held - 0.2, steady, under_half + 9, refused]]}
    (tmp_path / "before.json").write_text(json.dumps(before))
    (tmp_path / "after.json").write_text(json.dumps(after))
    assert fakeclock.main(["--compare", str(tmp_path / "before.json"),
                           str(tmp_path / "after.json")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith("b ")
    with pytest.raises(SystemExit):
        fakeclock.main(["--compare", str(tmp_path / "missing.json"), str(tmp_path / "after.json")])
