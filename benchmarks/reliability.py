"""Reliability: a fault matrix. Faults injected, runs, records lost.

    python -m benchmarks.reliability [--quick] [--out DIR] [--scenarios a,b,...] [--seeds N]

Every run is `python -m creator create` as a real subprocess against the in-tree simulator
(`python -m benchmarks.simserver`, a real subprocess on 127.0.0.1) with one kind of fault:

- rate limits: RPM or TPM set just below what the run needs, so a 429 storm comes at the end of the
  server's initial bucket; with Retry-After + x-ratelimit-* headers, with Retry-After alone, and
  with neither (a server that says nothing);
- transport faults: 5xx, hung requests (the client's --timeout 1 against a 30 s hang), dropped
  connections; the server killed (SIGKILL) mid-run and restarted on the same port 1 s later;
- content faults: malformed, duplicate, empty, wrongly formatted, garbage replies, and all at once;
- an API quota: the run must stop with exit 1 and a resumable file; --resume against a fresh
  server (quota back) completes;
- creator crashes: kill -9 at random moments (5 times a run, 3 with --quick) then --resume; SIGTERM, SIGINT
  (each must exit 130) then --resume; a write failure (RLIMIT_FSIZE with SIGXFSZ ignored, so
  write() fails with EFBIG, possibly in the middle of a record) then --resume.

Each scenario runs with several seeds (3 full, 1 --quick); each seed picks another data format
(the project's own exemplars in data/) and setting (naive, random, tree), round robin.

Faults injected per run = the simulator's GET /stats fault counters (rate_limited, errors_5xx,
timeouts, drops, malformed, duplicates, empty, wrong_format, garbage, quota_exceeded; summed over
every simulator process of the run; the killed server's counters are read just before the kill)
plus what this script did: kill -9s, SIGTERMs, SIGINTs, server kills, write failures.

The final file is checked here, independently of the creator's code: records == target, every line
one JSON object, no question twice (case and white space normalised) nor the exemplar's, no torn
line, every label among its options, the exemplar's number of options. Records lost: each time a
creator is killed or stopped, its file's whole lines are kept; after the final resume they must be
a byte prefix of the final file (append-only: nothing rewritten, nothing dropped). A torn last
line (a record half-written when the process died) is not a record; resume cuts it off, and the
number of such cuts is reported as `torn_tails_cut`.

Writes DIR/reliability.json (command, machine, date, the matrix, one row per run, totals) and prints
a plain-text table. Full runs write benchmarks/results/; --quick writes to a temporary folder
unless --out. Exit 0 when every run passed every check, 1 otherwise.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import random
import resource
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .common import (
    REPO,
    RESULTS,
    child_env,
    format_table,
    log,
    machine_info,
    write_result,
)
from .simproc import SimProcess, flags_to_args

DATA = REPO / "data"  # the project's own one-exemplar folders
TARGET = 300
K = 5
SIM_FAULT_KEYS = ("rate_limited", "errors_5xx", "timeouts", "drops", "malformed", "duplicates",
                  "empty", "wrong_format", "garbage", "quota_exceeded")
ACTION_KEYS = ("kill9", "sigterm", "sigint", "server_kill", "write_failure")
SUMMARY_KEYS = ("requests", "completions", "retries", "rate_limited", "server_errors", "timeouts",
                "connection_errors", "failed_requests", "unproductive_requests", "sessions")
# (format folder in data/, setting): each seed of a scenario takes the next one
COMBOS = (("yesno_close", "tree"), ("mcqa_5", "random"), ("yesno_open", "naive"),
          ("mcqa_2", "tree"), ("yesno_close", "random"), ("mcqa_5", "naive"))
# prompt + completion tokens per request on the simulator (measured: 60 requests, k = 5)
TOKENS_PER_REQUEST = {"yesno_close": 267, "yesno_open": 475, "mcqa_2": 286, "mcqa_5": 356}
SESSION_TIMEOUT_S = 120.0  # one creator process, at most
WAIT_LINES_S = 60.0


# --------------------------------------------------------------------------- the simulator


class Sim(SimProcess):
    """The simulator, killed and restarted on the same port; counts what every instance did."""

    def __init__(self, **sim_flags: Any) -> None:
        super().__init__(flags_to_args(**sim_flags))
        self.totals: dict[str, int] = dict.fromkeys(SIM_FAULT_KEYS, 0)
        self.totals.update(requests=0, ok=0)
        self.instances = 0

    def start(self) -> Sim:
        super().start()
        self.instances += 1
        return self

    def _collect(self) -> None:
        """Add this instance's counters to the run's totals (before it goes away)."""
        try:
            st = self.stats()
        except OSError:
            return
        for key in self.totals:
            self.totals[key] += int(st.get(key, 0))

    def kill_and_restart(self, delay: float) -> None:
        """SIGKILL (a crashed server), `delay` s of nothing, then the same flags on the same port."""
        self._collect()
        self.restart(delay, hard=True)

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.alive:
            self._collect()
        return super().stop(timeout)


# --------------------------------------------------------------------------- the creator


@dataclass
class Session:
    """One creator process and how it ended."""

    how: str  # run | kill9 | sigterm | sigint | quota | write_failure
    returncode: int | None = None
    wall_s: float = 0.0
    stderr_tail: str = ""
    traceback: bool = False
    lines_at_stop: int | None = None


class Creator:
    def __init__(self, workdir: Path, args: list[str]) -> None:
        self.workdir = workdir
        self.args = args
        self.output = workdir / "out.jsonl"
        self.snapshots: list[bytes] = []  # the file right after each kill/stop
        self.sessions: list[Session] = []

    def command(self, resume: bool) -> list[str]:
        return [sys.executable, "-m", "creator", "create", *self.args, "--output",
                str(self.output), "--quiet", *(["--resume"] if resume else [])]

    def start(self, resume: bool, preexec_fn: Callable[[], None] | None = None) -> subprocess.Popen:
        err = tempfile.TemporaryFile(dir=self.workdir)  # noqa: SIM115 (closed in finish)
        proc = subprocess.Popen(self.command(resume), cwd=self.workdir, env=child_env(),
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                preexec_fn=preexec_fn)  # noqa: PLW1509 (setrlimit only)
        proc._rel_err = err  # type: ignore[attr-defined]
        proc._rel_started = time.monotonic()  # type: ignore[attr-defined]
        return proc

    def finish(self, proc: subprocess.Popen, how: str, timeout: float = SESSION_TIMEOUT_S,
               snapshot: bool = False) -> Session:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()  # only the process we started
            proc.wait(10)
            how += " (timed out, killed)"
        err = proc._rel_err  # type: ignore[attr-defined]
        err.seek(0)
        text = err.read().decode(errors="replace")
        err.close()
        session = Session(how, proc.returncode,
                          round(time.monotonic() - proc._rel_started, 2),  # type: ignore[attr-defined]
                          text[-600:], "Traceback" in text)
        if snapshot:
            data = self.output.read_bytes() if self.output.exists() else b""
            self.snapshots.append(data)
            session.lines_at_stop = data.count(b"\n")
        self.sessions.append(session)
        return session

    def run(self, resume: bool, preexec_fn: Callable[[], None] | None = None,
            how: str = "run", snapshot: bool = False) -> Session:
        return self.finish(self.start(resume, preexec_fn), how, snapshot=snapshot)

    def lines(self) -> int:
        try:
            return self.output.read_bytes().count(b"\n")
        except FileNotFoundError:
            return 0

    def wait_lines(self, proc: subprocess.Popen, n: int, timeout: float = WAIT_LINES_S) -> bool:
        """Until the file has n lines (True), or the process ended / time ran out (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.lines() >= n:
                return True
            if proc.poll() is not None:
                return False
            time.sleep(0.01)
        return False


def _limit_file_size(limit: int) -> Callable[[], None]:
    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() fails with EFBIG instead of dying
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return preexec


# --------------------------------------------------------------------------- checks


def question_key(question: str) -> str:
    return " ".join(question.split()).casefold()


def verify_file(output: Path, target: int, exemplar: dict[str, Any] | None) -> dict[str, Any]:
    """The final file, checked without the creator's code."""
    raw = output.read_bytes() if output.exists() else b""
    parts = raw.split(b"\n")
    tail = parts.pop()  # b"" when the file ends on a whole line
    torn = 1 if tail else 0
    invalid = 0
    rows: list[dict[str, Any]] = []
    for line in parts:
        try:
            obj = json.loads(line)
        except ValueError:
            invalid += 1
            continue
        if isinstance(obj, dict):
            rows.append(obj)
        else:
            invalid += 1
    seen: set[str] = set()
    ex_key = question_key(exemplar["question"]) if exemplar else None
    n_opts = len(exemplar["options"]) if exemplar else None
    dups = echoes = bad_label = bad_shape = 0
    for r in rows:
        q, opts, label = r.get("question"), r.get("options"), r.get("label")
        if not isinstance(q, str) or not q.strip() or not isinstance(opts, list):
            bad_shape += 1
            continue
        key = question_key(q)
        if key == ex_key:
            echoes += 1
        elif key in seen:
            dups += 1
        seen.add(key)
        if isinstance(label, bool):  # yes/no: a JSON boolean, as in the human data
            label = "True" if label else "False"
        if label not in opts:
            bad_label += 1
        if n_opts is not None and len(opts) != n_opts:
            bad_shape += 1
    return {"records": len(rows), "invalid_lines": invalid, "torn_lines": torn,
            "duplicates": dups, "exemplar_echoes": echoes, "labels_not_in_options": bad_label,
            "bad_shape": bad_shape, "labels_ok": len(rows) - bad_label,
            "bytes": len(raw)}


def records_lost(snapshots: list[bytes], final: bytes) -> tuple[int, int]:
    """(records lost, torn tails cut): every whole line of every snapshot must still be in the
    final file, at the same byte offset (the file is append-only)."""
    lost = torn = 0
    final_lines: set[bytes] | None = None
    for snap in snapshots:
        end = snap.rfind(b"\n") + 1
        whole, tail = snap[:end], snap[end:]
        torn += 1 if tail else 0
        if final.startswith(whole):
            continue
        if final_lines is None:
            final_lines = set(final.split(b"\n"))
        missing = sum(1 for line in whole.split(b"\n")[:-1] if line not in final_lines)
        lost += missing or 1  # every line survived but not in place: a rewrite counts as 1
    return lost, torn


# --------------------------------------------------------------------------- scenarios


@dataclass
class Ctx:
    """One run: a scenario with one seed."""

    scenario: Scenario
    seed: int
    fmt: str
    setting: str
    target: int
    workdir: Path
    rng: random.Random
    kills: int
    actions: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ACTION_KEYS, 0))
    expected_exits_ok: bool = True
    notes: list[str] = field(default_factory=list)

    def creator_args(self, *extra: Any) -> list[str]:
        return ["--data_dir", str(DATA / self.fmt), "--data_name", "example",
                "--setting", self.setting, "--num_examples", str(K), "--seed", str(self.seed),
                "--target", str(self.target), *map(str, extra)]

    def expect(self, ok: bool, note: str) -> None:
        if not ok:
            self.expected_exits_ok = False
            self.notes.append(note)


@dataclass
class Scenario:
    name: str
    group: str  # rate limit | transport | content | quota | crash
    what: str
    sim: Callable[[Ctx], dict[str, Any]] = lambda ctx: {}
    client: tuple[Any, ...] = ()
    kind: str = "plain"  # plain | restart | quota | kill9 | signal | fsize
    # counters of which at least one must be > 0 (the fault fired); () = none required (with
    # x-ratelimit-* headers the client may pace itself under the limit and earn no 429)
    needs: tuple[str, ...] = ()


def _requests_needed(ctx: Ctx) -> int:
    return -(-ctx.target // K)


def _rpm(ctx: Ctx) -> int:
    # the initial bucket holds 90% of the requests the run needs: the rest meet a 429 storm
    return max(2, int(_requests_needed(ctx) * 0.9))


def _tpm(ctx: Ctx) -> int:
    return max(2000, int(_requests_needed(ctx) * TOKENS_PER_REQUEST[ctx.fmt] * 0.92))


ALL_FAULTS = {"p_500": 0.08, "p_drop": 0.08, "p_timeout": 0.04, "hang_s": 30, "p_malformed": 0.1,
              "p_duplicate": 0.1, "p_empty": 0.05, "p_wrong_format": 0.3, "p_garbage": 0.05}

SCENARIOS = (
    Scenario("rpm_headers", "rate limit", "RPM < needed; 429 with Retry-After and x-ratelimit-*",
             lambda c: {"rpm": _rpm(c)}),  # a client that meters itself may earn no 429 at all
    Scenario("rpm_retry_after", "rate limit", "RPM < needed; Retry-After, no x-ratelimit-*",
             lambda c: {"rpm": _rpm(c), "no_ratelimit_headers": True}, needs=("rate_limited",)),
    Scenario("rpm_bare", "rate limit", "RPM < needed; neither Retry-After nor x-ratelimit-*",
             lambda c: {"rpm": _rpm(c), "no_ratelimit_headers": True, "no_retry_after": True},
             needs=("rate_limited",)),
    Scenario("tpm_headers", "rate limit", "TPM < needed; 429 with Retry-After and x-ratelimit-*",
             lambda c: {"tpm": _tpm(c)}, client=("--max_tokens", 600)),
    Scenario("tpm_bare", "rate limit", "TPM < needed; neither Retry-After nor x-ratelimit-*",
             lambda c: {"tpm": _tpm(c), "no_ratelimit_headers": True, "no_retry_after": True},
             client=("--max_tokens", 600), needs=("rate_limited",)),
    Scenario("http_5xx", "transport", "30% of requests answer 500/502/503",
             lambda c: {"p_500": 0.3}, needs=("errors_5xx",)),
    Scenario("hung_requests", "transport", "10% hang 30 s; client --timeout 1",
             lambda c: {"p_timeout": 0.1, "hang_s": 30}, client=("--timeout", 1),
             needs=("timeouts",)),
    Scenario("dropped_connections", "transport", "30% of connections dropped mid-reply",
             lambda c: {"p_drop": 0.3}, needs=("drops",)),
    Scenario("server_restart", "transport", "server kill -9 mid-run, back on the same port 1 s later",
             lambda c: {"ttft": 0.1, "jitter": 0.5}, client=("--concurrency", 4),
             kind="restart", needs=("server_kill",)),
    Scenario("malformed", "content", "40% of replies malformed JSON",
             lambda c: {"p_malformed": 0.4}, needs=("malformed",)),
    Scenario("duplicates", "content", "40% of replies repeat earlier questions",
             lambda c: {"p_duplicate": 0.4}, needs=("duplicates",)),
    Scenario("empty", "content", "30% of replies empty", lambda c: {"p_empty": 0.3},
             needs=("empty",)),
    Scenario("wrong_format", "content", "every reply in another layout (array, fences, numbered)",
             lambda c: {"p_wrong_format": 1.0}, needs=("wrong_format",)),
    Scenario("garbage", "content", "30% of replies prose, no JSON", lambda c: {"p_garbage": 0.3},
             needs=("garbage",)),
    Scenario("all_faults", "content", "every transport and content fault at once",
             lambda c: dict(ALL_FAULTS), client=("--timeout", 1, "--concurrency", 8),
             needs=("errors_5xx", "drops", "malformed", "duplicates", "wrong_format")),
    Scenario("quota", "quota", "quota of 20 completions: exit 1, then --resume on a fresh server",
             lambda c: {"quota": 20}, kind="quota", needs=("quota_exceeded",)),
    Scenario("kill9", "crash", "creator kill -9 at random moments, then --resume",
             lambda c: {"ttft": 0.2, "jitter": 0.5}, client=("--concurrency", 4), kind="kill9",
             needs=("kill9",)),
    Scenario("sigterm", "crash", "SIGTERM mid-run (exit 130), then --resume",
             lambda c: {"ttft": 0.2, "jitter": 0.5}, client=("--concurrency", 4), kind="sigterm",
             needs=("sigterm",)),
    Scenario("sigint", "crash", "SIGINT (Ctrl-C) mid-run (exit 130), then --resume",
             lambda c: {"ttft": 0.2, "jitter": 0.5}, client=("--concurrency", 4), kind="sigint",
             needs=("sigint",)),
    Scenario("write_failure", "crash", "RLIMIT_FSIZE: write() fails with EFBIG (exit 1), then --resume",
             lambda c: {"ttft": 0.02}, client=("--concurrency", 4), kind="fsize",
             needs=("write_failure",)),
)


def _random_threshold(ctx: Ctx, creator: Creator, kills_left: int) -> int:
    """A random record count between now and the target, leaving room for the later kills."""
    now = creator.lines()
    room = ctx.target - now - 10
    hi = now + max(2, room // (kills_left + 1) * 2 - 5)
    return ctx.rng.randint(now + 1, max(now + 1, min(hi, ctx.target - 10)))


def run_scenario(ctx: Ctx) -> dict[str, Any]:
    sc = ctx.scenario
    creator = Creator(ctx.workdir, ctx.creator_args(*sc.client))
    sim_flags = {"seed": 1000 + ctx.seed, **sc.sim(ctx)}
    with Sim(**sim_flags) as sim:
        creator.args += ["--base_url", sim.base_url]
        if sc.kind == "plain":
            s = creator.run(resume=False)
        elif sc.kind == "restart":
            proc = creator.start(resume=False)
            at = ctx.rng.randint(ctx.target // 10, ctx.target // 2)
            if creator.wait_lines(proc, at):
                sim.kill_and_restart(delay=1.0)
                ctx.actions["server_kill"] += 1
            else:
                ctx.notes.append(f"the run ended before {at} records: no restart")
            s = creator.finish(proc, "run")
        elif sc.kind == "quota":
            first = creator.run(resume=False, how="quota", snapshot=True)
            ctx.expect(first.returncode == 1 and "quota" in first.stderr_tail.lower(),
                       f"quota stop: exit {first.returncode}, expected 1 naming the quota")
            sim.stop()
            fresh_flags = {k: v for k, v in sim_flags.items() if k != "quota"}
            with Sim(**fresh_flags) as fresh:  # the quota is back
                creator.args[-1] = fresh.base_url
                s = creator.run(resume=True)
            for key, value in fresh.totals.items():
                sim.totals[key] += value
            sim.instances += fresh.instances
        elif sc.kind == "kill9":
            for i in range(ctx.kills):
                proc = creator.start(resume=i > 0)
                at = _random_threshold(ctx, creator, ctx.kills - i)
                if not creator.wait_lines(proc, at):
                    ctx.notes.append(f"kill {i + 1}: the session ended before {at} records")
                time.sleep(ctx.rng.uniform(0.0, 0.15))  # not always right after a write
                if proc.poll() is None:
                    proc.kill()
                    ctx.actions["kill9"] += 1
                creator.finish(proc, "kill9", snapshot=True)
            s = creator.run(resume=True)
        elif sc.kind in ("sigterm", "sigint"):
            sig = signal.SIGTERM if sc.kind == "sigterm" else signal.SIGINT
            proc = creator.start(resume=False)
            at = _random_threshold(ctx, creator, 1)
            creator.wait_lines(proc, at)
            if proc.poll() is None:
                proc.send_signal(sig)
                ctx.actions[sc.kind] += 1
            first = creator.finish(proc, sc.kind, timeout=30, snapshot=True)
            ctx.expect(first.returncode == 130 and "--resume" in first.stderr_tail,
                       f"{sc.kind}: exit {first.returncode}, expected 130 saying --resume")
            s = creator.run(resume=True)
        elif sc.kind == "fsize":
            limit = ctx.rng.randint(6_000, 18_000)  # bytes: well inside a 300-record file
            ctx.notes.append(f"RLIMIT_FSIZE {limit} bytes")
            first = creator.run(resume=False, preexec_fn=_limit_file_size(limit),
                                how="write_failure", snapshot=True)
            ok = first.returncode == 1 and "cannot write to" in first.stderr_tail
            ctx.expect(ok, f"write failure: exit {first.returncode}, expected 1 'cannot write to'")
            if ok:
                ctx.actions["write_failure"] += 1
            s = creator.run(resume=True)
        else:
            raise ValueError(sc.kind)
    return finish_row(ctx, creator, sim, s)


def finish_row(ctx: Ctx, creator: Creator, sim: Sim, final: Session) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    spath = creator.output.with_name(creator.output.stem + ".summary.json")
    try:
        summary = json.loads(spath.read_text())
    except (OSError, ValueError):
        ctx.notes.append("no readable summary")
    exemplar = (summary.get("identity") or {}).get("exemplar")
    check = verify_file(creator.output, ctx.target, exemplar)
    final_bytes = creator.output.read_bytes() if creator.output.exists() else b""
    lost, torn_cut = records_lost(creator.snapshots, final_bytes)
    sim_faults = {k: sim.totals[k] for k in SIM_FAULT_KEYS}
    injected = {**{k: v for k, v in sim_faults.items() if v},
                **{k: v for k, v in ctx.actions.items() if v}}
    needs = ctx.scenario.needs
    fired = not needs or any(injected.get(k, 0) > 0 for k in needs)
    tracebacks = sum(1 for s in creator.sessions if s.traceback)
    counters = {k: summary.get(k) for k in SUMMARY_KEYS}
    rejected = summary.get("rejected") or {}
    passed = (final.returncode == 0 and check["records"] == ctx.target and lost == 0
              and check["invalid_lines"] == 0 and check["torn_lines"] == 0
              and check["duplicates"] == 0 and check["exemplar_echoes"] == 0
              and check["labels_not_in_options"] == 0 and check["bad_shape"] == 0
              and ctx.expected_exits_ok and tracebacks == 0 and fired
              and summary.get("status") == "completed")
    if final.returncode != 0:
        ctx.notes.append(f"final exit {final.returncode}: {final.stderr_tail.strip()[-300:]}")
    if not fired:
        ctx.notes.append("the fault did not fire")
    return {
        "scenario": ctx.scenario.name, "group": ctx.scenario.group, "seed": ctx.seed,
        "format": ctx.fmt, "setting": ctx.setting, "target": ctx.target, "k": K,
        "sim_flags": {"seed": 1000 + ctx.seed, **ctx.scenario.sim(ctx)},
        "client_flags": [str(a) for a in ctx.scenario.client],
        "faults": injected, "faults_injected": sum(injected.values()),
        "server_requests": sim.totals["requests"], "server_ok": sim.totals["ok"],
        "simulator_processes": sim.instances,
        "creator": {**counters, "status": summary.get("status"), "rejected": rejected,
                    "failed": summary.get("failed") or {}},
        "rejected_total": sum(rejected.values()),
        "sessions": [s.__dict__ for s in creator.sessions],
        **check, "records_lost": lost, "torn_tails_cut": torn_cut,
        "stops": len(creator.snapshots), "tracebacks": tracebacks, "fault_fired": fired,
        "expected_exits": ctx.expected_exits_ok, "final_exit": final.returncode,
        "wall_s": round(sum(s.wall_s for s in creator.sessions), 2),
        "passed": passed, "notes": ctx.notes,
    }


# --------------------------------------------------------------------------- the matrix


def aggregate(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    by: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by.setdefault(r["scenario"], []).append(r)

    def summed(rs: list[dict[str, Any]], key: str) -> int:
        return sum(int(r.get(key) or 0) for r in rs)

    def c_summed(rs: list[dict[str, Any]], key: str) -> int:
        return sum(int(r["creator"].get(key) or 0) for r in rs)

    table = []
    for name, rs in by.items():
        kinds: dict[str, int] = {}
        for r in rs:
            for k, v in r["faults"].items():
                kinds[k] = kinds.get(k, 0) + v
        table.append({
            "scenario": name, "runs": len(rs), "passed": sum(r["passed"] for r in rs),
            "faults_injected": summed(rs, "faults_injected"),
            "fault_kinds": ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())),
            "requests": c_summed(rs, "requests"), "retries": c_summed(rs, "retries"),
            "rate_limited": c_summed(rs, "rate_limited"),
            "failed_requests": c_summed(rs, "failed_requests"),
            "rejected": summed(rs, "rejected_total"),
            "records": summed(rs, "records"), "records_lost": summed(rs, "records_lost"),
            "duplicates": summed(rs, "duplicates") + summed(rs, "exemplar_echoes"),
            "torn_lines": summed(rs, "torn_lines"), "invalid_lines": summed(rs, "invalid_lines"),
            "labels_not_in_options": summed(rs, "labels_not_in_options"),
            "torn_tails_cut": summed(rs, "torn_tails_cut"), "stops": summed(rs, "stops"),
            "wall_s": round(max(r["wall_s"] for r in rs), 1),
        })
    by_kind: dict[str, int] = {}
    for r in rows:
        for k, v in r["faults"].items():
            by_kind[k] = by_kind.get(k, 0) + v
    totals = {
        "scenarios": len(by), "runs": len(rows), "runs_passed": sum(r["passed"] for r in rows),
        "faults_injected": sum(r["faults_injected"] for r in rows), "faults_by_kind": by_kind,
        "stops_then_resumed": sum(r["stops"] for r in rows),
        "records_written": sum(r["records"] for r in rows),
        "records_lost": sum(r["records_lost"] for r in rows),
        "duplicates": sum(r["duplicates"] + r["exemplar_echoes"] for r in rows),
        "torn_lines": sum(r["torn_lines"] for r in rows),
        "invalid_lines": sum(r["invalid_lines"] for r in rows),
        "labels_not_in_options": sum(r["labels_not_in_options"] for r in rows),
        "torn_tails_cut_on_resume": sum(r["torn_tails_cut"] for r in rows),
        "creator_requests": sum(int(r["creator"].get("requests") or 0) for r in rows),
        "creator_retries": sum(int(r["creator"].get("retries") or 0) for r in rows),
        "tracebacks": sum(r["tracebacks"] for r in rows),
    }
    return table, totals


TABLE_COLUMNS = [
    ("scenario", "scenario", ""), ("runs", "runs", "d"), ("passed", "ok", "d"),
    ("faults_injected", "faults", "d"), ("requests", "requests", "d"), ("retries", "retries", "d"),
    ("rejected", "rejected", "d"), ("records", "records", "d"), ("records_lost", "lost", "d"),
    ("duplicates", "dups", "d"), ("torn_lines", "torn", "d"),
    ("labels_not_in_options", "bad labels", "d"), ("wall_s", "max s", ".1f"),
]


def tables(data: dict[str, Any]) -> str:
    rows = list(data["by_scenario"])
    t = data["totals"]
    rows.append({"scenario": f"TOTAL ({t['scenarios']} scenarios)", "runs": t["runs"],
                 "passed": t["runs_passed"], "faults_injected": t["faults_injected"],
                 "requests": t["creator_requests"], "retries": t["creator_retries"],
                 "rejected": sum(r["rejected"] for r in data["by_scenario"]),
                 "records": t["records_written"], "records_lost": t["records_lost"],
                 "duplicates": t["duplicates"], "torn_lines": t["torn_lines"],
                 "labels_not_in_options": t["labels_not_in_options"], "wall_s": None})
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(t["faults_by_kind"].items()))
    return (format_table(rows, TABLE_COLUMNS)
            + f"\n\nfaults by kind: {kinds}"
            + f"\nstops then resumed: {t['stops_then_resumed']}, torn tails cut on resume: "
            f"{t['torn_tails_cut_on_resume']}, tracebacks: {t['tracebacks']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.reliability",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one seed per scenario (~1 min)")
    parser.add_argument("--out", help="folder for reliability.json (default benchmarks/results, "
                        "or a temporary folder with --quick)")
    parser.add_argument("--seeds", type=int, help="seeds per scenario (default 3, 1 with --quick)")
    parser.add_argument("--scenarios", help="comma-separated subset of: "
                        + ", ".join(s.name for s in SCENARIOS))
    parser.add_argument("--target", type=int, default=TARGET)
    parser.add_argument("--kills", type=int,
                        help="kill -9s per kill9 run (default 5, 3 with --quick)")
    parser.add_argument("--budget_s", type=float,
                        help="stop starting runs after this many seconds (default 900, 150 quick)")
    args = parser.parse_args(argv)
    argv_list = list(sys.argv[1:] if argv is None else argv)
    command = " ".join(["python -m benchmarks.reliability", *map(shlex.quote, argv_list)])
    seeds = args.seeds or (1 if args.quick else 3)
    kills = args.kills or (3 if args.quick else 5)
    budget = args.budget_s or (150.0 if args.quick else 900.0)
    chosen = list(SCENARIOS)
    if args.scenarios:
        names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
        unknown = sorted(set(names) - {s.name for s in SCENARIOS})
        if unknown:
            parser.error(f"unknown scenario(s): {', '.join(unknown)}")
        chosen = [s for s in SCENARIOS if s.name in names]
    if args.out:
        out = Path(args.out)
    elif args.quick:
        out = Path(tempfile.mkdtemp(prefix="bench-quick-"))
    else:
        out = RESULTS
    out.mkdir(parents=True, exist_ok=True)

    started = time.monotonic()
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    with tempfile.TemporaryDirectory(prefix="reliability-") as tmp:
        for si, sc in enumerate(chosen):
            for j in range(seeds):
                seed = j + 1
                if time.monotonic() - started > budget:
                    skipped.append(f"{sc.name}/seed{seed}")
                    continue
                fmt, setting = COMBOS[(SCENARIOS.index(sc) + j) % len(COMBOS)]
                workdir = Path(tmp) / f"{sc.name}-{seed}"
                workdir.mkdir()
                ctx = Ctx(sc, seed, fmt, setting, args.target, workdir,
                          random.Random(f"{sc.name}/{seed}"), kills)
                t0 = time.monotonic()
                try:
                    row = run_scenario(ctx)
                except Exception as exc:  # noqa: BLE001 -- a harness failure is a failed run, not a crash
                    row = {"scenario": sc.name, "group": sc.group, "seed": seed, "format": fmt,
                           "setting": setting, "target": args.target, "k": K, "faults": {},
                           "faults_injected": 0, "creator": {}, "rejected_total": 0,
                           "records": 0, "invalid_lines": 0, "torn_lines": 0, "duplicates": 0,
                           "exemplar_echoes": 0, "labels_not_in_options": 0,
                           "records_lost": 0, "torn_tails_cut": 0, "stops": 0, "tracebacks": 0,
                           "wall_s": 0.0, "passed": False,
                           "notes": [f"harness error: {type(exc).__name__}: {exc}"]}
                rows.append(row)
                log(f"{sc.name:20s} seed {seed} {fmt}/{setting:6s} "
                    f"{'ok ' if row['passed'] else 'FAIL'} faults {row['faults_injected']:4d} "
                    f"records {row['records']} lost {row['records_lost']} "
                    f"({time.monotonic() - t0:.1f} s)"
                    + (f"  notes: {'; '.join(row['notes'])}" if row["notes"] else ""))
    by_scenario, totals = aggregate(rows)
    totals["wall_s"] = round(time.monotonic() - started, 1)
    result = {
        "benchmark": "reliability",
        "command": command,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "quick": args.quick,
        "config": {"target": args.target, "k": K, "seeds": seeds, "kills_per_kill9_run": kills,
                   "combos": [list(c) for c in COMBOS], "budget_s": budget,
                   "session_timeout_s": SESSION_TIMEOUT_S},
        "scenarios": [{"name": s.name, "group": s.group, "what": s.what,
                       "client_flags": [str(a) for a in s.client]} for s in chosen],
        "skipped_for_time": skipped,
        "by_scenario": by_scenario,
        "totals": totals,
        "rows": rows,
    }
    path = write_result(result, out, "reliability")
    print(f"\n## reliability  ({command})\n")
    print(tables(result))
    if skipped:
        print(f"\nskipped for time: {', '.join(skipped)}")
    log(f"== reliability done in {totals['wall_s']:.0f} s: {path}")
    return 0 if totals["runs_passed"] == totals["runs"] and not skipped else 1


if __name__ == "__main__":
    sys.exit(main())
