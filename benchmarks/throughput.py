"""Throughput of the creator against the simulator, with the baselines on the same server.

    python -m benchmarks throughput [--quick] [--out DIR]

Four load shapes, after vLLM's serving benchmark:

1. closed-loop sweep: `creator create --setting naive` at --concurrency 1..1024 against a server with a
   fixed latency (tree at one point); the physical limit is concurrency / latency.
2. baselines on the same server: (a) the original paper's loop (sequential, openai SDK, the reply
   split on blank lines, a batch kept only with exactly k objects, `except Exception: print(e)`);
   (b) a plain AsyncOpenAI + asyncio.Semaphore loop with the SDK's default retries.
3. open loop: Poisson arrivals through creator.client.ChatClient at several rates against a server
   with a fixed number of slots (capacity = slots / latency); achieved vs offered rate and latency.
4. rate-limited: its own benchmark, `python -m benchmarks limits` (benchmarks/limits.py).

Every client runs as its own process, measured from outside (CPU from wait4, peak RSS from VmHWM).
This file is also the child process of the baselines and the open-loop driver:
    python -m benchmarks.throughput --role sequential|async_openai|openloop ...
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .common import (
    REPO,
    RunMetrics,
    Simulator,
    Target,
    check,
    format_table,
    log,
    machine_info,
    percentile,
    python,
    run_measured,
    targets_table,
)

DATA = ["--data_dir", str(REPO / "data" / "yesno_close"), "--data_name", "example"]
EXEMPLAR_FILE = REPO / "data" / "yesno_close" / "example" / "train.jsonl"
K = 5  # examples per request, the paper's default
MAX_TOKENS = 1024  # the creator's default; the simulator's TPM reservation is prompt + max_tokens


@dataclass
class Params:
    latency_s: float  # the simulator's ttft; tpot 0, no jitter: every reply takes exactly this long
    concurrencies: list[int]
    rounds: int  # a sweep point sends about rounds x concurrency requests ...
    max_requests_per_point: int  # ... but no more than this
    tree_concurrency: int
    async_openai_concurrencies: list[int]
    sequential_requests: int
    # open loop
    openloop_latency_s: float
    openloop_slots: int
    openloop_load: list[float]  # offered rate as a fraction of the capacity slots / latency
    openloop_duration_s: float
    point_timeout_s: float


FULL = Params(
    latency_s=1.0, concurrencies=[1, 4, 16, 64, 256, 1024], rounds=20,
    max_requests_per_point=30000, tree_concurrency=64,
    async_openai_concurrencies=[4, 16, 64, 256, 1024], sequential_requests=20,
    openloop_latency_s=1.0, openloop_slots=64, openloop_load=[0.25, 0.5, 0.75, 0.9, 1.1],
    openloop_duration_s=20.0,
    point_timeout_s=120.0,
)  # fmt: skip
QUICK = Params(
    latency_s=0.25, concurrencies=[1, 4, 16, 64, 256, 1024], rounds=8,
    max_requests_per_point=2000, tree_concurrency=64,
    async_openai_concurrencies=[64], sequential_requests=8,
    openloop_latency_s=0.25, openloop_slots=16, openloop_load=[0.5, 0.9, 1.1],
    openloop_duration_s=3.0,
    point_timeout_s=40.0,
)  # fmt: skip


@dataclass
class ThroughputResult:
    benchmark: str
    command: str
    quick: bool
    machine: dict[str, Any]
    params: dict[str, Any]
    startup_cpu_s: float  # the creator's CPU for start-up alone (imports, one request, exit)
    sweep: list[RunMetrics] = field(default_factory=list)
    baselines: list[RunMetrics] = field(default_factory=list)
    open_loop: list[RunMetrics] = field(default_factory=list)
    ratios: dict[str, float | None] = field(default_factory=dict)
    targets: list[Target] = field(default_factory=list)
    wall_s: float = 0.0


# --- the creator as a measured child process ---------------------------------------------------


def creator_cmd(base_url: str, output: Path, setting: str, concurrency: int, target: int,
                extra: list[str] | None = None) -> list[str]:
    return [python(), "-m", "creator", "create", *DATA, "--setting", setting,
            "--target", str(target), "--concurrency", str(concurrency), "--base_url", base_url,
            "--output", str(output), "--overwrite", "--quiet", *(extra or [])]  # fmt: skip


def run_creator(sim: Simulator, name: str, workdir: Path, *, setting: str = "naive",
                concurrency: int, target: int, timeout: float, startup_cpu_s: float = 0.0,
                extra: list[str] | None = None) -> RunMetrics:
    output = workdir / f"{name.replace(' ', '_').replace('=', '')}.jsonl"
    sim.reset()
    sim_cpu = sim.cpu_s()
    proc = run_measured(creator_cmd(sim.base_url, output, setting, concurrency, target, extra),
                        timeout)
    server = sim.stats()
    server["sim_cpu_s"] = round(sim.cpu_s() - sim_cpu, 3)
    summary_file = output.with_name(output.stem + ".summary.json")
    if not summary_file.exists():
        raise RuntimeError(f"{name}: the creator wrote no summary (exit {proc.returncode}):\n"
                           f"{proc.stderr[-3000:]}")
    s = json.loads(summary_file.read_text())
    session = s["this_session"]
    cancelled = (s["requests"] - s["completions"] - s["rate_limited"] - s["server_errors"]
                 - s["timeouts"] - s["connection_errors"])  # in flight when the target was reached
    m = RunMetrics(
        name=name, client="creator", setting=setting, concurrency=concurrency,
        requests=s["requests"], completions=s["completions"], accepted=s["accepted"],
        retries=s["retries"], rate_limited=s["rate_limited"],
        failed_requests=s["failed_requests"], duration_s=session["duration_s"],
        latency_p50_s=session["latency_p50_s"], latency_p99_s=session["latency_p99_s"],
        cpu_s=proc.cpu_s, peak_rss_mb=proc.peak_rss_mb, wall_s=proc.wall_s,
        extra={"status": s["status"], "exit_code": proc.returncode, "target": target,
               "cancelled_at_end": cancelled, "over_target": s.get("over_target", 0),
               "failed_by_reason": s.get("failed") or {},
               "prompt_tokens": s["prompt_tokens"], "completion_tokens": s["completion_tokens"]},
        server=server,
    )  # fmt: skip
    m.finish()
    if m.completions and startup_cpu_s:
        m.cpu_ms_per_request_net = round(1000 * max(0.0, m.cpu_s - startup_cpu_s) / m.completions, 4)
    if proc.returncode not in (0, 130) or proc.timed_out:
        log(f"  ! {name}: exit {proc.returncode}{' (timed out)' if proc.timed_out else ''}: "
            f"{proc.stderr.strip().splitlines()[-1:] }")
    return m


def run_role(sim: Simulator, name: str, role: str, args: list[str],
             timeout: float) -> tuple[dict[str, Any], Any]:
    """A baseline or the open-loop driver as a measured child; returns (its JSON, ProcResult)."""
    sim.reset()
    sim_cpu = sim.cpu_s()
    cmd = [python(), "-m", "benchmarks.throughput", "--role", role, "--base_url", sim.base_url,
           *args]
    proc = run_measured(cmd, timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(f"{name}: no result (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    data = json.loads(lines[-1])
    data["server"] = sim.stats()
    data["server"]["sim_cpu_s"] = round(sim.cpu_s() - sim_cpu, 3)
    return data, proc


def baseline_metrics(name: str, client: str, data: dict[str, Any], proc: Any,
                     concurrency: int) -> RunMetrics:
    server = data["server"]
    m = RunMetrics(
        name=name, client=client, setting="naive", concurrency=concurrency,
        requests=server["requests"], completions=data["completions"], accepted=data["accepted"],
        retries=max(0, server["requests"] - data["calls"]), rate_limited=server["rate_limited"],
        failed_requests=data["errors"], duration_s=data["duration_s"],
        latency_p50_s=data["latency_p50_s"], latency_p99_s=data["latency_p99_s"],
        cpu_s=proc.cpu_s, peak_rss_mb=proc.peak_rss_mb, wall_s=proc.wall_s,
        extra={"exit_code": proc.returncode, "calls": data["calls"],
               "dropped_batches": data.get("dropped_batches", 0)},
        server=server,
    )  # fmt: skip
    m.finish()
    if m.completions:
        m.cpu_ms_per_request_net = round(1000 * data["loop_cpu_s"] / m.completions, 4)
    return m


# --- the baselines and the open-loop driver (run as children) -----------------------------------


def _exemplar() -> dict[str, Any]:
    # the original drew its exemplar from the train split; the project's example file has one
    return json.loads(EXEMPLAR_FILE.read_text().splitlines()[0])


def original_loop(base_url: str, requests: int, time_limit: float, k: int) -> dict[str, Any]:
    """The original paper's creation loop, as its code does it (the counter-example of STYLE.md):
    one request at a time, the prompt assembled by string formatting, the whole reply split on
    blank lines, the batch kept only if it has exactly k objects, errors printed and skipped."""
    import openai

    client = openai.OpenAI(base_url=base_url, api_key="x", max_retries=0)
    ex = _exemplar()
    label = "True" if ex["label"] is True else "False" if ex["label"] is False else ex["label"]
    system = (
        f"\n- You are creating {k} more examples that follow the format of the example provided, "
        "but with a different content.\n- The created examples **must** all have different "
        "answers.\n- The created examples **must** have the same options as the provided "
        "example.\n- The output **must** be in unnumbered JSON format.\n"
    )
    example = ("{\n" + f'"Options": {json.dumps(ex["options"])},\n"Answer": "{label}",\n'
               f'"Question": "{ex["question"]}"\n' + "}")
    created: list[dict[str, Any]] = []
    questions: set[str] = set()
    calls = completions = errors = dropped = 0
    latencies: list[float] = []
    cpu0, t0 = time.process_time(), time.perf_counter()
    while calls < requests and time.perf_counter() - t0 < time_limit:
        calls += 1
        try:
            started = time.perf_counter()
            response = client.chat.completions.create(
                model="sim-model",
                messages=[{"role": "system", "content": system},
                          {"role": "user", "content": example}],
                temperature=1, top_p=0,  # the original code's top_p=0 (the paper says 1)
            )
            latencies.append(time.perf_counter() - started)
            completions += 1
            reply = response.choices[0].message.content
            objects = [json.loads(part) for part in reply.split("\n\n")]
            if len(objects) != k:
                dropped += 1
                continue
            for obj in objects:
                if obj["Question"] not in questions:
                    questions.add(obj["Question"])
                    created.append(obj)
        except Exception as e:  # noqa: BLE001 - the original's error handling, on purpose
            print(e)
            errors += 1
    return {"calls": calls, "completions": completions, "accepted": len(created),
            "errors": errors, "dropped_batches": dropped,
            "duration_s": round(time.perf_counter() - t0, 4),
            "loop_cpu_s": round(time.process_time() - cpu0, 4),
            "latency_p50_s": percentile(latencies, 0.5), "latency_p99_s": percentile(latencies, 0.99)}


async def async_openai_loop(base_url: str, requests: int, time_limit: float, concurrency: int,
                            k: int) -> dict[str, Any]:
    """The popular bulk client: AsyncOpenAI (default httpx pool, default 2 retries) and a
    semaphore; replies parsed with the creator's own parser so goodput is comparable."""
    import openai

    from creator.parse import parse_reply, question_key
    from creator.task import detect_format, record_from_json, render_messages

    record = record_from_json(_exemplar(), "exemplar")
    fmt = detect_format(record)
    messages = render_messages(record, fmt, k)
    echo = {question_key(record.question)}
    client = openai.AsyncOpenAI(base_url=base_url, api_key="x")
    sem = asyncio.Semaphore(concurrency)
    seen: set[str] = set()
    latencies: list[float] = []
    counts = {"calls": 0, "completions": 0, "errors": 0}
    cpu0, t0 = time.process_time(), time.perf_counter()

    async def one() -> None:
        async with sem:
            if time.perf_counter() - t0 > time_limit:
                return
            counts["calls"] += 1
            started = time.perf_counter()
            try:
                response = await client.chat.completions.create(
                    model="sim-model", messages=messages, temperature=1, top_p=1,
                    max_tokens=MAX_TOKENS)
            except Exception:  # noqa: BLE001 - what such a loop does: count it and move on
                counts["errors"] += 1
                return
            latencies.append(time.perf_counter() - started)
            counts["completions"] += 1
            result = parse_reply(response.choices[0].message.content, fmt, seen, echo)
            seen.update(question_key(r.question) for r in result.records)

    await asyncio.gather(*(one() for _ in range(requests)))
    duration = time.perf_counter() - t0
    loop_cpu = time.process_time() - cpu0
    await client.close()
    return {**counts, "accepted": len(seen), "duration_s": round(duration, 4),
            "loop_cpu_s": round(loop_cpu, 4), "latency_p50_s": percentile(latencies, 0.5),
            "latency_p99_s": percentile(latencies, 0.99)}


async def open_loop(base_url: str, rate: float, duration: float, seed: int, k: int) -> dict[str, Any]:
    """Poisson arrivals at `rate` per second for `duration` seconds through the creator's own
    client (limiter without a cap, retries, parsing); latency counts from the arrival."""
    from creator.client import ChatClient, RequestFailed
    from creator.parse import parse_reply, question_key
    from creator.endpoints import Endpoint
    from creator.ratelimit import RetryPolicy
    from creator.task import detect_format, record_from_json, render_messages

    record = record_from_json(_exemplar(), "exemplar")
    fmt = detect_format(record)
    messages = render_messages(record, fmt, k)
    echo = {question_key(record.question)}
    rng = random.Random(seed)
    arrivals: list[float] = []
    t = 0.0
    while True:
        t += rng.expovariate(rate)
        if t > duration:
            break
        arrivals.append(t)
    # learn=False: arrivals, not the limiter, set the pace here
    client = ChatClient([Endpoint(base_url)], "sim-model", RetryPolicy(), timeout=120.0,
                        seed=seed, learn=False)
    seen: set[str] = set()
    latencies: list[float] = []
    counts = {"completions": 0, "errors": 0}
    loop = asyncio.get_running_loop()
    done_at: list[float] = []

    async def one(arrival: float) -> None:
        try:
            completion = await client.complete(messages, temperature=1.0, top_p=1.0,
                                               max_tokens=MAX_TOKENS)
        except RequestFailed:
            counts["errors"] += 1
            return
        now = loop.time()
        latencies.append(now - arrival)
        done_at.append(now)
        counts["completions"] += 1
        result = parse_reply(completion.text, fmt, seen, echo)
        seen.update(question_key(r.question) for r in result.records)

    async with client:
        cpu0 = time.process_time()
        t0 = loop.time()
        tasks = []
        for at in arrivals:
            delay = t0 + at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one(t0 + at)))
        await asyncio.gather(*tasks)
        loop_cpu = time.process_time() - cpu0
    st = client.stats
    # rates between the first and the last event of each kind: no ramp-up or drain bias
    # (the first reply comes one latency after the first arrival, the last one after the last)
    offered = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) if len(arrivals) > 1 else 0.0
    span = max(done_at) - min(done_at) if len(done_at) > 1 else 0.0
    return {"calls": len(arrivals), "completions": counts["completions"], "accepted": len(seen),
            "errors": counts["errors"], "duration_s": round(span, 4),
            "requests_per_s": round((len(done_at) - 1) / span, 3) if span else 0.0,
            "offered_realized_rps": round(offered, 3),
            "arrival_window_s": round(arrivals[-1] if arrivals else 0.0, 4),
            "loop_cpu_s": round(loop_cpu, 4), "retries": st.retries,
            "rate_limited": st.rate_limited, "latency_p50_s": percentile(latencies, 0.5),
            "latency_p99_s": percentile(latencies, 0.99)}


def role_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.throughput")
    p.add_argument("--role", required=True, choices=("sequential", "async_openai", "openloop"))
    p.add_argument("--base_url", required=True)
    p.add_argument("--requests", type=int, default=100)
    p.add_argument("--time_limit", type=float, default=60.0)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--rate", type=float, default=10.0)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--k", type=int, default=K)
    a = p.parse_args(argv)
    if a.role == "sequential":
        out = original_loop(a.base_url, a.requests, a.time_limit, a.k)
    elif a.role == "async_openai":
        out = asyncio.run(async_openai_loop(a.base_url, a.requests, a.time_limit, a.concurrency, a.k))
    else:
        out = asyncio.run(open_loop(a.base_url, a.rate, a.duration, a.seed, a.k))
    print(json.dumps(out), flush=True)
    return 0


# --- the benchmark ------------------------------------------------------------------------------


def run(quick: bool, command: str) -> ThroughputResult:
    p = QUICK if quick else FULL
    began = time.monotonic()
    result = ThroughputResult("throughput", command, quick, machine_info(),
                              {**p.__dict__, "k": K, "max_tokens": MAX_TOKENS,
                               "data": "data/yesno_close/example"}, 0.0)
    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as tmp:
        work = Path(tmp)
        with Simulator(ttft=p.latency_s, seed=1) as sim:
            result.startup_cpu_s = startup_cpu(sim, work)
            log(f"throughput: creator start-up CPU {result.startup_cpu_s:.3f} s")
            closed_loop_sweep(sim, p, work, result)
            baselines(sim, p, result)
        open_loop_runs(p, result)
    result.ratios, result.targets = ratios_and_targets(result, p)
    result.wall_s = round(time.monotonic() - began, 1)
    return result


def startup_cpu(sim: Simulator, work: Path) -> float:
    """The creator's CPU for a run of one request: what every run pays once (interpreter,
    imports, set-up, exit). The lower of two runs."""
    return round(min(run_creator(sim, f"startup {i}", work, concurrency=1, target=K,
                                 timeout=60).cpu_s for i in range(2)), 4)


def closed_loop_sweep(sim: Simulator, p: Params, work: Path, result: ThroughputResult) -> None:
    points = [("naive", c) for c in p.concurrencies] + [("tree", p.tree_concurrency)]
    for setting, c in points:
        n = min(p.rounds * c, p.max_requests_per_point)
        m = run_creator(sim, f"creator {setting} c={c}", work, setting=setting, concurrency=c,
                        target=K * n, timeout=p.point_timeout_s,
                        startup_cpu_s=result.startup_cpu_s)
        m.physical_limit_rps = round(c / p.latency_s, 3)
        m.achieved_fraction = round(m.requests_per_s / m.physical_limit_rps, 4)
        result.sweep.append(m)
        log(f"  {m.name}: {m.requests_per_s:.1f} req/s of {m.physical_limit_rps:.0f} "
            f"({m.achieved_fraction:.0%}), cpu {m.cpu_ms_per_request_net} ms/req net")


def baselines(sim: Simulator, p: Params, result: ThroughputResult) -> None:
    data, proc = run_role(sim, "sequential", "sequential",
                          ["--requests", str(p.sequential_requests),
                           "--time_limit", str(p.point_timeout_s)], p.point_timeout_s + 30)
    m = baseline_metrics("original loop (sequential)", "sequential", data, proc, 1)
    m.physical_limit_rps = round(1 / p.latency_s, 3)
    m.achieved_fraction = round(m.requests_per_s / m.physical_limit_rps, 4)
    result.baselines.append(m)
    log(f"  {m.name}: {m.requests_per_s:.2f} req/s")
    for c in p.async_openai_concurrencies:
        n = min(p.rounds * c, p.max_requests_per_point)
        data, proc = run_role(sim, f"async_openai c={c}", "async_openai",
                              ["--requests", str(n), "--time_limit", str(p.point_timeout_s),
                               "--concurrency", str(c)], p.point_timeout_s + 30)
        m = baseline_metrics(f"AsyncOpenAI+semaphore c={c}", "async_openai", data, proc, c)
        m.physical_limit_rps = round(c / p.latency_s, 3)
        m.achieved_fraction = round(m.requests_per_s / m.physical_limit_rps, 4)
        result.baselines.append(m)
        log(f"  {m.name}: {m.requests_per_s:.1f} req/s, cpu {m.cpu_ms_per_request_net} ms/req")


def open_loop_runs(p: Params, result: ThroughputResult) -> None:
    """Poisson arrivals against a server with a fixed number of slots."""
    capacity = p.openloop_slots / p.openloop_latency_s
    with Simulator(ttft=p.openloop_latency_s, max_concurrency=p.openloop_slots, seed=3) as sim:
        for i, load in enumerate(p.openloop_load):
            rate = round(load * capacity, 2)
            data, proc = run_role(sim, f"openloop {rate}", "openloop",
                                  ["--rate", str(rate), "--duration", str(p.openloop_duration_s),
                                   "--seed", str(i)], p.openloop_duration_s * 4 + 30)
            m = RunMetrics(
                name=f"open loop {rate:g}/s", client="openloop", setting="naive",
                offered_rps=rate, requests=data["server"]["requests"],
                completions=data["completions"], accepted=data["accepted"],
                retries=data["retries"], rate_limited=data["rate_limited"],
                failed_requests=data["errors"], duration_s=data["duration_s"],
                latency_p50_s=data["latency_p50_s"], latency_p99_s=data["latency_p99_s"],
                cpu_s=proc.cpu_s, peak_rss_mb=proc.peak_rss_mb, wall_s=proc.wall_s,
                extra={"capacity_rps": capacity, "arrivals": data["calls"],
                       "arrival_window_s": data["arrival_window_s"],
                       "offered_realized_rps": data["offered_realized_rps"]},
                server=data["server"],
            )  # fmt: skip
            m.finish()
            m.requests_per_s = data["requests_per_s"]  # first to last reply (see open_loop)
            m.physical_limit_rps = round(min(data["offered_realized_rps"], capacity), 3)
            m.achieved_fraction = round(m.requests_per_s / m.physical_limit_rps, 4)
            m.cpu_ms_per_request_net = round(1000 * data["loop_cpu_s"] / max(m.completions, 1), 4)
            result.open_loop.append(m)
            log(f"  {m.name}: achieved {m.requests_per_s:.1f}/s, p50 {m.latency_p50_s}s "
                f"p99 {m.latency_p99_s}s")


def ratios_and_targets(r: ThroughputResult, p: Params) -> tuple[dict[str, Any], list[Target]]:
    seq = next((b for b in r.baselines if b.client == "sequential"), None)
    ratios: dict[str, Any] = {}
    by_c = {m.concurrency: m for m in r.sweep if m.setting == "naive"}
    for c, m in by_c.items():
        if seq and seq.requests_per_s:
            ratios[f"creator_c{c}_vs_sequential"] = round(m.requests_per_s / seq.requests_per_s, 2)
    for b in r.baselines:
        if b.client == "async_openai" and b.concurrency in by_c and b.requests_per_s:
            ratios[f"creator_c{b.concurrency}_vs_async_openai"] = round(
                by_c[b.concurrency].requests_per_s / b.requests_per_s, 3)
            if b.cpu_ms_per_request_net and by_c[b.concurrency].cpu_ms_per_request_net:
                ratios[f"cpu_per_request_async_openai_over_creator_c{b.concurrency}"] = round(
                    b.cpu_ms_per_request_net / by_c[b.concurrency].cpu_ms_per_request_net, 2)
    c64 = by_c.get(64)
    lat = f"{p.latency_s:g} s latency"
    targets = [
        check("creator c=64 vs the original sequential loop (x)",
              ratios.get("creator_c64_vs_sequential"), ">=", 50.0, lat),
        check("client CPU per request at c=64, ms (start-up excluded)",
              c64.cpu_ms_per_request_net if c64 else None, "<=", 1.0),
        check("client CPU per request, worst sweep point of >= 500 requests, ms",
              max((m.cpu_ms_per_request_net or 0 for m in r.sweep if m.completions >= 500),
                  default=None), "<=", 1.0, "start-up excluded"),
    ]
    return ratios, targets


# --- tables -----------------------------------------------------------------------------------


SWEEP_COLUMNS = [
    ("name", "run", ""), ("concurrency", "c", "d"), ("requests_per_s", "req/s", ".1f"),
    ("accepted_per_s", "ex/s", ".0f"), ("physical_limit_rps", "limit", ".1f"),
    ("achieved_fraction", "achieved", ".1%"), ("latency_p50_s", "p50 s", ".3f"),
    ("latency_p99_s", "p99 s", ".3f"), ("failed_requests", "failed", "d"),
    ("cpu_ms_per_request", "cpu ms/req", ".3f"), ("cpu_ms_per_request_net", "net", ".3f"),
    ("peak_rss_mb", "RSS MB", ".0f"),
]
OPENLOOP_COLUMNS = [
    ("name", "run", ""), ("offered_realized_rps", "offered/s", ".1f"),
    ("requests_per_s", "achieved/s", ".1f"), ("physical_limit_rps", "limit/s", ".1f"),
    ("achieved_fraction", "achieved", ".1%"), ("latency_p50_s", "p50 s", ".3f"),
    ("latency_p99_s", "p99 s", ".3f"), ("failed_requests", "failed", "d"),
    ("cpu_ms_per_request_net", "cpu ms/req", ".3f"), ("peak_rss_mb", "RSS MB", ".0f"),
]
def tables(data: dict[str, Any]) -> str:
    """The plain-text report, from the JSON (so the README's tables can be redone from a file)."""
    p = data["params"]
    out = [f"closed loop, latency {p['latency_s']:g} s, k={p['k']} (creator start-up CPU "
           f"{data['startup_cpu_s']:.3f} s, excluded in 'net')",
           format_table(data["sweep"] + data["baselines"], SWEEP_COLUMNS), ""]
    ol_rows = [{**m, **m["extra"]} for m in data["open_loop"]]
    out += [f"open loop: Poisson arrivals for {p['openloop_duration_s']:g} s (offered = as realised), "
            f"server capacity {p['openloop_slots']} slots / {p['openloop_latency_s']:g} s; "
            "limit = min(offered, capacity)", format_table(ol_rows, OPENLOOP_COLUMNS), ""]
    out.append("ratios: " + ", ".join(f"{k} {v}" for k, v in data["ratios"].items()))
    out.append("")
    out.append(targets_table(data["targets"]))
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(role_main(sys.argv[1:]))
