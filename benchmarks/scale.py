"""Memory and time per 1,000 records as the target grows.

    python -m benchmarks scale [--quick] [--out DIR]

`creator create` (settings naive and tree, --concurrency 64) against a simulator with zero latency,
for --target 1k, 10k, 100k (quick: 1k, 5k). Per run: the client's peak RSS, wall seconds and CPU
seconds per 1,000 records. Flat lines mean the engine's cost per record does not grow with the
run; the RSS growth per 1,000 records is what the run keeps in memory per record (the dedup set
holds every question key; tree also holds its frontier of unexpanded records).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .common import RunMetrics, Simulator, format_table, log, machine_info
from .throughput import K, run_creator, startup_cpu


@dataclass
class Params:
    targets: list[int]
    settings: list[str]
    concurrency: int
    timeout_s: float


FULL = Params(targets=[1000, 10000, 100000], settings=["naive", "tree"], concurrency=64,
              timeout_s=300)
QUICK = Params(targets=[1000, 5000], settings=["naive", "tree"], concurrency=64, timeout_s=60)


@dataclass
class ScaleResult:
    benchmark: str
    command: str
    quick: bool
    machine: dict[str, Any]
    params: dict[str, Any]
    startup_cpu_s: float
    runs: list[RunMetrics] = field(default_factory=list)
    flatness: dict[str, dict[str, Any]] = field(default_factory=dict)
    wall_s: float = 0.0


def run(quick: bool, command: str) -> ScaleResult:
    p = QUICK if quick else FULL
    began = time.monotonic()
    result = ScaleResult("scale", command, quick, machine_info(), {**p.__dict__, "k": K}, 0.0)
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp, Simulator(seed=11) as sim:
        work = Path(tmp)
        result.startup_cpu_s = startup_cpu(sim, work)
        for setting in p.settings:
            for target in p.targets:
                m = run_creator(sim, f"{setting} {target // 1000}k", work, setting=setting,
                                concurrency=p.concurrency, target=target, timeout=p.timeout_s,
                                startup_cpu_s=result.startup_cpu_s)
                per_k = m.accepted / 1000
                m.extra.update({
                    "seconds_per_1k": round(m.duration_s / per_k, 4),
                    "cpu_s_per_1k": round(max(0.0, m.cpu_s - result.startup_cpu_s) / per_k, 4),
                    "output_mb": round((work / f"{setting}_{target // 1000}k.jsonl").stat().st_size
                                       / 2**20, 2)
                    if (work / f"{setting}_{target // 1000}k.jsonl").exists() else None,
                })  # fmt: skip
                result.runs.append(m)
                log(f"  scale {m.name}: {m.duration_s:.1f} s, RSS {m.peak_rss_mb} MB, "
                    f"{m.extra['seconds_per_1k']:.3f} s/1k, status {m.extra['status']}")
    for setting in p.settings:
        rows = sorted((r for r in result.runs if r.setting == setting), key=lambda r: r.accepted)
        small, big = rows[0], rows[-1]
        records = big.accepted - small.accepted
        result.flatness[setting] = {
            "records": [small.accepted, big.accepted],
            # > 1 means the cost per record grew with the run
            "seconds_per_1k_ratio": round(big.extra["seconds_per_1k"] / small.extra["seconds_per_1k"], 3),
            "cpu_per_1k_ratio": round(big.extra["cpu_s_per_1k"] / small.extra["cpu_s_per_1k"], 3),
            "rss_growth_mb": round(big.peak_rss_mb - small.peak_rss_mb, 1),
            "rss_growth_kb_per_1k_records": round(
                1024 * (big.peak_rss_mb - small.peak_rss_mb) / (records / 1000), 1) if records else None,
        }  # fmt: skip
    result.wall_s = round(time.monotonic() - began, 1)
    return result


COLUMNS = [("name", "run", ""), ("accepted", "records", "d"), ("requests", "requests", "d"),
           ("duration_s", "seconds", ".2f"), ("seconds_per_1k", "s / 1k", ".3f"),
           ("cpu_s_per_1k", "cpu s / 1k", ".3f"), ("requests_per_s", "req/s", ".0f"),
           ("peak_rss_mb", "peak RSS MB", ".1f"), ("failed_requests", "failed", "d"),
           ("status", "status", "")]
FLAT_COLUMNS = [("setting", "setting", ""), ("range", "records", ""),
                ("seconds_per_1k_ratio", "s/1k big/small", ".2f"),
                ("cpu_per_1k_ratio", "cpu/1k big/small", ".2f"),
                ("rss_growth_mb", "RSS growth MB", ".1f"),
                ("rss_growth_kb_per_1k_records", "KB per 1k records", ".0f")]


def tables(data: dict[str, Any]) -> str:
    p = data["params"]
    rows = [{**r, **r["extra"]} for r in data["runs"]]
    flat = [{"setting": s, "range": f"{v['records'][0]} -> {v['records'][1]}", **v}
            for s, v in data["flatness"].items()]
    return "\n".join([
        f"creator, --concurrency {p['concurrency']}, k={p['k']}, zero-latency simulator "
        f"(start-up CPU {data['startup_cpu_s']:.3f} s excluded from cpu s / 1k)",
        format_table(rows, COLUMNS), "", format_table(flat, FLAT_COLUMNS)])
