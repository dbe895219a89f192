"""Client overhead: which HTTP stack sends chat completions with the least CPU.

    python -m benchmarks transports [--quick] [--out DIR]

Against a simulator with (near) zero latency, ONE client process keeps --concurrency requests in
flight with a fixed pool of workers, and we measure the completed requests per second and the
client's CPU per request (the CPU of the request loop, without interpreter start-up and imports),
for each stack:

  httpx               httpx.AsyncClient() with its default pool (100 connections, 20 kept alive)
  httpx2              httpx2.AsyncClient(), the httpx successor that recent openai SDKs are built
                      on (only where it is installed)
  openai (default)    openai.AsyncOpenAI with its default transport (httpx, or httpx2 in recent
                      versions: `sdk_transport` in the JSON says which), max_retries=0
  openai (aiohttp)    openai.AsyncOpenAI(http_client=openai.DefaultAioHttpClient()): aiohttp under
                      the SDK (vendored in recent versions; older ones need httpx-aiohttp)
  aiohttp             a plain aiohttp.ClientSession with orjson (what creator.client is built on)
  creator ChatClient  creator.client.ChatClient itself: aiohttp + the limiter + retries + stats

The simulator shares the 2 cores with the client, so requests/s is bounded by the two together;
CPU per request is the figure that belongs to the client alone. Each stack runs `reps` times in an
interleaved order and the median is reported.

This file is also the child: python -m benchmarks.transports --one NAME --base_url URL ...
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from .common import REPO, Simulator, format_table, log, machine_info, python, run_measured

STACKS = ("httpx", "httpx2", "openai (default)", "openai (aiohttp)", "aiohttp",
          "creator ChatClient")
EXEMPLAR = REPO / "data" / "yesno_close" / "example" / "train.jsonl"


@dataclass
class Params:
    requests: int
    concurrency: int
    warmup: int
    reps: int


FULL = Params(requests=5000, concurrency=64, warmup=200, reps=3)
QUICK = Params(requests=600, concurrency=64, warmup=50, reps=1)


@dataclass
class TransportRow:
    name: str
    available: bool
    reason: str | None = None  # why it is not available
    requests_per_s: float | None = None  # median over reps
    cpu_us_per_request: float | None = None  # median over reps, the loop only
    peak_rss_mb: float | None = None
    errors: int = 0
    sim_cpu_us_per_request: float | None = None
    reps: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class TransportsResult:
    benchmark: str
    command: str
    quick: bool
    machine: dict[str, Any]
    params: dict[str, Any]
    transports: list[TransportRow]
    fastest_by_cpu: str | None = None
    fastest_by_rate: str | None = None
    engine_uses: str = "aiohttp (creator ChatClient)"
    sdk_transport: str | None = None
    wall_s: float = 0.0


# --- the child: one stack, a pool of workers ------------------------------------------------------


def _body() -> dict[str, Any]:
    from creator.task import detect_format, record_from_json, render_messages

    record = record_from_json(json.loads(EXEMPLAR.read_text().splitlines()[0]), "exemplar")
    messages = render_messages(record, detect_format(record), 5)
    return {"model": "sim-model", "messages": messages, "temperature": 1.0, "top_p": 1.0,
            "max_tokens": 1024}


async def _make_sender(name: str, base_url: str, concurrency: int
                       ) -> tuple[Callable[[], Awaitable[str]], Callable[[], Awaitable[None]]]:
    """(send one request -> reply text, close)."""
    body = _body()
    url = base_url.rstrip("/") + "/chat/completions"
    if name.startswith("httpx"):
        import importlib

        import orjson

        httpx = importlib.import_module(name)  # httpx or httpx2: the same API
        client = httpx.AsyncClient(timeout=60)  # its default pool
        payload = orjson.dumps(body)
        headers = {"Content-Type": "application/json"}

        async def send() -> str:
            resp = await client.post(url, content=payload, headers=headers)
            resp.raise_for_status()
            return orjson.loads(resp.content)["choices"][0]["message"]["content"]

        return send, client.aclose
    if name.startswith("openai"):
        import openai

        kwargs: dict[str, Any] = {}
        if "aiohttp" in name:
            kwargs["http_client"] = openai.DefaultAioHttpClient()
        client = openai.AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0, **kwargs)

        async def send() -> str:
            resp = await client.chat.completions.create(**body)
            return resp.choices[0].message.content or ""

        return send, client.close
    if name == "aiohttp":
        import aiohttp
        import orjson

        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                        timeout=aiohttp.ClientTimeout(total=60))
        payload = orjson.dumps(body)
        headers = {"Content-Type": "application/json"}

        async def send() -> str:
            async with session.post(url, data=payload, headers=headers) as resp:
                raw = await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"HTTP {resp.status}")
            return orjson.loads(raw)["choices"][0]["message"]["content"]

        return send, session.close
    if name == "creator ChatClient":
        from creator.client import ChatClient
        from creator.endpoints import Endpoint
        from creator.ratelimit import RetryPolicy

        chat = ChatClient([Endpoint(base_url)], "sim-model", RetryPolicy(max_retries=0),
                          timeout=60, max_in_flight=concurrency, learn=False)
        await chat.__aenter__()
        params = {k: v for k, v in body.items() if k not in ("model", "messages")}

        async def send() -> str:
            return (await chat.complete(body["messages"], **params)).text

        async def close() -> None:
            await chat.__aexit__()

        return send, close
    raise ValueError(name)


async def measure_one(name: str, base_url: str, requests: int, concurrency: int,
                      warmup: int) -> dict[str, Any]:
    send, close = await _make_sender(name, base_url, concurrency)
    errors = 0
    left = [warmup]

    async def worker() -> None:
        nonlocal errors
        while left[0] > 0:
            left[0] -= 1
            try:
                await send()
            except Exception:  # noqa: BLE001 - counted; a transport that errors is reported
                errors += 1

    # warm up: connections opened, code paths hot
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    errors = 0
    left[0] = requests
    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    duration = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    await close()
    return {"requests": requests, "errors": errors, "duration_s": round(duration, 4),
            "loop_cpu_s": round(cpu, 4)}


def available(name: str) -> str | None:
    """None if the stack can run here, else why not."""
    import importlib

    try:
        if name.startswith("httpx"):
            importlib.import_module(name)
        elif name.startswith("openai"):
            import openai

            if "aiohttp" in name:

                async def probe() -> None:
                    # older SDKs need the httpx-aiohttp package; newer ones vendor it
                    client = openai.DefaultAioHttpClient()
                    await client.aclose()

                asyncio.run(probe())
        elif name == "aiohttp":
            import aiohttp  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} is not installed"
    except (AttributeError, RuntimeError) as exc:
        return f"openai.DefaultAioHttpClient unusable here: {exc} (pip install httpx-aiohttp)"
    return None


def sdk_transport() -> str | None:
    """Which HTTP library the installed openai SDK's default client is built on."""
    try:
        import openai
    except ImportError:
        return None
    base = openai.DefaultAsyncHttpxClient.__mro__[1]
    return f"{base.__module__.split('.')[0]}.{base.__name__} (openai {openai.__version__})"


def child_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.transports")
    p.add_argument("--one", required=True, choices=STACKS)
    p.add_argument("--base_url", required=True)
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--warmup", type=int, default=50)
    a = p.parse_args(argv)
    out = asyncio.run(measure_one(a.one, a.base_url, a.requests, a.concurrency, a.warmup))
    print(json.dumps(out), flush=True)
    return 0


# --- the benchmark ------------------------------------------------------------------------------


def run(quick: bool, command: str) -> TransportsResult:
    p = QUICK if quick else FULL
    began = time.monotonic()
    rows = {name: TransportRow(name, available=True) for name in STACKS}
    for name, row in rows.items():
        reason = available(name)
        if reason:
            row.available, row.reason = False, reason
            log(f"transports: {name}: not available: {reason}")
    runnable = [n for n in STACKS if rows[n].available]
    with Simulator(seed=5, backlog=4096) as sim:
        for rep in range(p.reps):
            order = runnable if rep % 2 == 0 else list(reversed(runnable))
            for name in order:
                sim.reset()
                sim_cpu = sim.cpu_s()
                proc = run_measured([python(), "-m", "benchmarks.transports", "--one", name,
                                     "--base_url", sim.base_url, "--requests", str(p.requests),
                                     "--concurrency", str(p.concurrency),
                                     "--warmup", str(p.warmup)], timeout=300)
                lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
                if not lines:
                    raise RuntimeError(f"transports: {name} failed:\n{proc.stderr[-3000:]}")
                data = json.loads(lines[-1])
                served = sim.stats()["ok"]
                data["sim_cpu_s"] = round(sim.cpu_s() - sim_cpu, 3)
                data["sim_ok"] = served
                data["peak_rss_mb"] = proc.peak_rss_mb
                data["process_cpu_s"] = proc.cpu_s
                rows[name].reps.append(data)
                log(f"  {name}: {p.requests / data['duration_s']:.0f} req/s, "
                    f"{1e6 * data['loop_cpu_s'] / p.requests:.0f} us CPU/request")
    for row in rows.values():
        if not row.reps:
            continue
        n = p.requests
        row.requests_per_s = round(statistics.median(n / r["duration_s"] for r in row.reps), 1)
        row.cpu_us_per_request = round(statistics.median(1e6 * r["loop_cpu_s"] / n
                                                         for r in row.reps), 1)
        row.peak_rss_mb = max(r["peak_rss_mb"] for r in row.reps)
        row.errors = sum(r["errors"] for r in row.reps)
        row.sim_cpu_us_per_request = round(statistics.median(
            1e6 * r["sim_cpu_s"] / max(r["sim_ok"], 1) for r in row.reps), 1)
    measured = [r for r in rows.values() if r.requests_per_s]
    result = TransportsResult(
        "transports", command, quick, machine_info(), p.__dict__, list(rows.values()),
        fastest_by_cpu=min(measured, key=lambda r: r.cpu_us_per_request).name if measured else None,
        fastest_by_rate=max(measured, key=lambda r: r.requests_per_s).name if measured else None,
        sdk_transport=sdk_transport(),
    )
    result.wall_s = round(time.monotonic() - began, 1)
    return result


COLUMNS = [("name", "stack", ""), ("requests_per_s", "req/s", ".0f"),
           ("cpu_us_per_request", "client CPU us/req", ".0f"),
           ("sim_cpu_us_per_request", "sim CPU us/req", ".0f"), ("peak_rss_mb", "RSS MB", ".0f"),
           ("errors", "errors", "d"), ("reason", "not available because", "")]


def tables(data: dict[str, Any]) -> str:
    p = data["params"]
    rows = data["transports"]
    return "\n".join([
        f"{p['requests']} requests x {p['reps']} reps, {p['concurrency']} in flight, "
        "simulator with zero latency (median of reps)",
        format_table(rows, COLUMNS), "",
        f"lowest CPU per request: {data['fastest_by_cpu']}; most requests/s: "
        f"{data['fastest_by_rate']}; the engine uses: {data['engine_uses']}; the openai SDK's "
        f"default transport here: {data['sdk_transport']}",
    ])


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
