"""Spend, measured against the simulator: hard budgets, the projection, batch mode.

    python -m benchmarks.spend [--quick]        # writes benchmarks/results/spend.json

1. Budgets: `--max_requests 10` and `--max_cost` at concurrency 1, 16, 64 and 1,024, naive and
   tree, on a server that answers 429s (240 RPM enforced per second, no headers, a refused request
   still counts) and 5xx on a fifth of the requests. The simulator counts what it saw.
2. The projection: `--dry_run` for 400 records on every dataset at hand, then the run; projected
   vs simulator-counted cost, requests and tokens. And a resumed run: 40 requests, then
   `--dry_run --resume`, then the rest.
3. Batch mode: each setting to 1,000 records through the Batch API (24 h windows in seconds), one
   run with an expiring window; batches, rounds, lines resubmitted, cost at the batch price vs the
   list price.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from .simproc import start_simulator

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
SHARED = REPO.parent / "shared" / "data"
PRICE = 1000.0  # USD per 1M tokens for the budget runs: a request costs ~$0.3
STORMY = {"rpm": 240, "limit_mode": "fixed", "window_s": 1, "count_rejected": True,
          "no_ratelimit_headers": True, "no_retry_after": True, "no_body_hint": True,
          "p_500": 0.2, "ttft": 0.05}


def creator(*args: Any, cwd: Path, timeout: float = 300) -> tuple[int, str, float]:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "creator", "create", *map(str, args)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, check=False)
    return proc.returncode, proc.stderr, time.monotonic() - started


def summary(out: Path) -> dict[str, Any]:
    return json.loads(out.with_name(out.stem + ".summary.json").read_text())


def batch_stats(sim: Any) -> dict[str, Any]:
    with urllib.request.urlopen(f"{sim.root_url}/stats/batch", timeout=10) as resp:
        return json.loads(resp.read())


def datasets(quick: bool) -> list[tuple[str, list[str]]]:
    out = [(f"{fmt}/example", ["--data_dir", str(REPO / "data" / fmt), "--data_name", "example"])
           for fmt in ("yesno_close", "yesno_open", "mcqa_2", "mcqa_5")]
    if not quick:
        for fmt, name in (("yesno_close", "strategyqa"), ("yesno_close", "creak"),
                          ("yesno_open", "pubmedqa"), ("mcqa_5", "csqa"), ("mcqa_2", "piqa"),
                          ("mcqa_2", "winogrande")):
            if (SHARED / fmt / name).is_dir():
                out.append((f"{fmt}/{name}", ["--data_dir", str(SHARED / fmt),
                                              "--data_name", name]))
    return out


def budgets(work: Path, quick: bool) -> list[dict[str, Any]]:
    rows = []
    example = ["--data_dir", REPO / "data" / "yesno_close", "--data_name", "example"]
    for setting in ("naive", "tree"):
        for concurrency in (1, 16, 64, 1024):
            for kind, flags in (("max_requests", ["--max_requests", "10"]),
                                ("max_cost", ["--max_cost", "3", "--max_tokens", "400",
                                              "--price_in", PRICE, "--price_out", PRICE])):
                out = work / f"budget_{setting}_{concurrency}_{kind}.jsonl"
                with start_simulator(seed=concurrency, **STORMY) as sim:
                    code, err, wall = creator(*example, "--setting", setting, "--target",
                                              "100000", "--concurrency", concurrency, *flags,
                                              "--output", out, "--base_url", sim.base_url,
                                              "--quiet", cwd=work)
                    stats = sim.stats()
                s = summary(out)
                cost = (stats["prompt_tokens"] + stats["completion_tokens"]) * PRICE / 1e6
                rows.append({
                    "setting": setting, "concurrency": concurrency, "budget": kind,
                    "limit": 10 if kind == "max_requests" else 3.0, "exit": code,
                    "status": s["status"], "server_requests": stats["requests"],
                    "server_429": stats["rate_limited"], "server_5xx": stats["errors_5xx"],
                    "server_cost_usd": round(cost, 4), "spent_usd": s["budget"]["spent_usd"],
                    "records": s["accepted"], "message": err.strip().splitlines()[-1],
                    "wall_s": round(wall, 1)})
                print(json.dumps(rows[-1]), flush=True)
            if quick:
                break
    return rows


def projection(work: Path, quick: bool) -> dict[str, Any]:
    rows = []
    for name, data in datasets(quick):
        out = work / f"proj_{name.replace('/', '_')}.jsonl"
        code, err, _ = creator(*data, "--setting", "naive", "--target", "400", "--price_in",
                               "0.15", "--price_out", "0.6", "--output", out, "--dry_run",
                               "--base_url", "http://127.0.0.1:9/v1", cwd=work)
        dry = [ln for ln in err.splitlines() if ln.startswith("creator: projection:")]
        with start_simulator(seed=3) as sim:
            code, err, _ = creator(*data, "--setting", "naive", "--target", "400", "--price_in",
                                   "0.15", "--price_out", "0.6", "--output", out, "--quiet",
                                   "--base_url", sim.base_url, cwd=work)
            stats = sim.stats()
        s = summary(out)
        p = s["projection"]
        cost = (stats["prompt_tokens"] * 0.15 + stats["completion_tokens"] * 0.6) / 1e6
        rows.append({"dataset": name, "exit": code, "dry_run": dry,
                     "projected": {k: p[k] for k in ("requests", "prompt_tokens",
                                                     "completion_tokens", "cost_usd")},
                     "actual": {"requests": stats["requests"],
                                "prompt_tokens": stats["prompt_tokens"],
                                "completion_tokens": stats["completion_tokens"],
                                "cost_usd": round(cost, 6)},
                     "cost_ratio": round(p["cost_usd"] / cost, 3)})
        print(json.dumps({k: rows[-1][k] for k in ("dataset", "projected", "actual",
                                                    "cost_ratio")}), flush=True)
    # resumed: what the first 40 requests measured projects the rest
    resumed = []
    for name, data in datasets(True):
        out = work / f"resume_{name.replace('/', '_')}.jsonl"
        common = [*data, "--setting", "naive", "--target", "600", "--price_in", "0.15",
                  "--price_out", "0.6", "--output", out]
        with start_simulator(seed=4, p_duplicate=0.3) as sim:
            creator(*common, "--max_requests", "40", "--quiet", "--base_url", sim.base_url,
                    cwd=work)
            first = summary(out)
            _, err, _ = creator(*common, "--resume", "--dry_run", "--base_url", sim.base_url,
                                cwd=work)
            creator(*common, "--resume", "--quiet", "--base_url", sim.base_url, cwd=work)
        s = summary(out)
        rest = s["estimated_cost_usd"] - first["estimated_cost_usd"]
        resumed.append({"dataset": name, "up_front_cost_usd": first["projection"]["cost_usd"],
                        "whole_run_cost_usd": s["estimated_cost_usd"],
                        "resumed_projection_usd": s["projection"]["cost_usd"],
                        "rest_cost_usd": round(rest, 6),
                        "ratio": round(s["projection"]["cost_usd"] / rest, 3),
                        "dry_run": [ln for ln in err.splitlines() if "projection" in ln]})
        print(json.dumps({k: v for k, v in resumed[-1].items() if k != "dry_run"}), flush=True)
    return {"up_front": rows, "resumed": resumed}


def batch(work: Path, quick: bool) -> list[dict[str, Any]]:
    rows = []
    example = ["--data_dir", REPO / "data" / "mcqa_5", "--data_name", "example"]
    cases = [(s, {}) for s in ("naive", "tree", "random")] + [
        ("naive", {"batch_window_s": 3600}), ("tree", {"batch_p_error": 0.1,
                                                       "batch_p_cancel": 0.3})]
    for setting, extra in cases[:2] if quick else cases:
        out = work / f"batch_{setting}_{len(rows)}.jsonl"
        with start_simulator(seed=5, batch_time_scale=36000, batch_line_s=20, **extra) as sim:
            code, err, wall = creator(*example, "--setting", setting, "--target", "1000",
                                      "--chains", "32", "--model", "gpt-4o-mini", "--batch",
                                      "--batch_poll", "0.3", "--output", out, "--quiet",
                                      "--base_url", sim.base_url, cwd=work)
            stats = batch_stats(sim)
        s = summary(out)
        list_cost = (stats["prompt_tokens"] * 0.15 + stats["completion_tokens"] * 0.6) / 1e6
        rows.append({"setting": setting, "simulator": extra, "exit": code,
                     "records": s["accepted"], "rounds": s["batch"]["rounds"],
                     "batches": s["batch"]["batches"], "by_status": s["batch"]["by_status"],
                     "lines": stats["batch_lines"], "lines_resubmitted":
                     s["batch"]["lines_resubmitted"], "lines_expired": stats["lines_expired"],
                     "lines_completed_twice": stats["lines_completed_twice"],
                     "batches_from_a_used_file": stats["batches_from_a_used_file"],
                     "cost_usd_batch_price": s["estimated_cost_usd"],
                     "cost_usd_list_price": round(list_cost, 6), "wall_s": round(wall, 1)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few cells of each part")
    parser.add_argument("--out", type=Path, default=RESULTS / "spend.json")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        result = {"budgets": budgets(work, args.quick), "projection": projection(work, args.quick),
                  "batch": batch(work, args.quick)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
