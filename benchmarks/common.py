"""What every benchmark shares: the simulator process, measured child processes, the machine, the
result files and the plain-text tables.

Metric names are the same in every benchmark (see `RunMetrics`): requests_per_s counts COMPLETED
requests per second, accepted_per_s the kept examples per second (goodput), cpu_ms_per_request the
client's CPU time per completed request, peak_rss_mb the client's peak resident memory.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from .simproc import SimProcess, flags_to_args, terminate  # noqa: F401 - terminate is re-exported

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
PACKAGES = ("aiohttp", "orjson", "openai", "httpx", "httpx-aiohttp", "numpy", "torch",
            "transformers", "matplotlib", "psutil", "llm-data-creator")


# --- the result schema: the same names in every benchmark --------------------------------------


@dataclass
class RunMetrics:
    """One measured run of one client against one simulator configuration."""

    name: str  # a short label, e.g. "creator naive c=64"
    client: str  # creator | sequential | async_openai | openloop
    setting: str | None = None
    concurrency: int | None = None
    offered_rps: float | None = None  # open loop only: the Poisson arrival rate
    requests: int = 0  # HTTP requests the client sent (including 429s, retries, cancelled)
    completions: int = 0  # requests answered with 200 and used
    accepted: int = 0  # examples kept
    retries: int = 0
    rate_limited: int = 0  # 429 answers
    failed_requests: int = 0  # requests given up (or errors printed, for the original loop)
    duration_s: float = 0.0
    requests_per_s: float = 0.0  # completions / duration_s
    accepted_per_s: float = 0.0  # goodput: accepted / duration_s
    latency_p50_s: float | None = None
    latency_p99_s: float | None = None
    physical_limit_rps: float | None = None  # min(RPM/60, TPM/60/tokens per request, c/latency)
    achieved_fraction: float | None = None  # requests_per_s / physical_limit_rps
    cpu_s: float = 0.0  # client process, user + system, whole process life
    cpu_ms_per_request: float | None = None  # cpu_s / completions
    cpu_ms_per_request_net: float | None = None  # without interpreter start-up and imports
    peak_rss_mb: float | None = None
    wall_s: float = 0.0  # the client process from start to exit
    extra: dict[str, Any] = field(default_factory=dict)  # benchmark-specific figures
    server: dict[str, Any] = field(default_factory=dict)  # the simulator's /stats after the run

    def finish(self) -> "RunMetrics":
        """Fill the derived rates from the counts."""
        if self.duration_s > 0:
            self.requests_per_s = round(self.completions / self.duration_s, 3)
            self.accepted_per_s = round(self.accepted / self.duration_s, 3)
        if self.completions:
            self.cpu_ms_per_request = round(1000 * self.cpu_s / self.completions, 4)
        if self.physical_limit_rps and self.achieved_fraction is None:
            self.achieved_fraction = round(self.requests_per_s / self.physical_limit_rps, 4)
        return self


@dataclass
class Target:
    """A goal from the brief, checked on this run's numbers."""

    name: str
    value: float | None
    threshold: float
    op: str  # ">=" or "<=" or "=="
    met: bool
    note: str = ""


def check(name: str, value: float | None, op: str, threshold: float, note: str = "") -> Target:
    if value is None:
        met = False
    elif op == ">=":
        met = value >= threshold
    elif op == "<=":
        met = value <= threshold
    else:
        met = value == threshold
    return Target(name, None if value is None else round(value, 4), threshold, op, met, note)


# --- the machine and the command ---------------------------------------------------------------


def machine_info(packages: tuple[str, ...] = PACKAGES) -> dict[str, Any]:
    from importlib import metadata

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for name in packages:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    commit = changed = None
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, text=True,
                                capture_output=True, timeout=5).stdout.strip() or None
        # the engine's files that differ from that commit (others may be editing them)
        changed = subprocess.run(["git", "status", "--porcelain", "--", "creator"], cwd=REPO,
                                 text=True, capture_output=True, timeout=5).stdout.split("\n")
        changed = [line[3:] for line in changed if line.strip()]
    except (OSError, subprocess.SubprocessError):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": _memory_gb(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        "git_commit": commit,
        "creator_files_changed_since_commit": changed,
        "load_average_at_start": load,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except (OSError, ValueError):
        pass
    return None


def command_line(argv: Sequence[str] | None = None) -> str:
    args = list(sys.argv[1:] if argv is None else argv)
    return "python -m benchmarks " + " ".join(shlex.quote(a) for a in args)


def output_dir(out: str | None, quick: bool) -> Path:
    """Full runs write the committed results; --quick writes to a temporary folder unless --out."""
    if out:
        path = Path(out)
    elif quick:
        path = Path(tempfile.mkdtemp(prefix="bench-quick-"))
    else:
        path = RESULTS
    path.mkdir(parents=True, exist_ok=True)
    return path


def to_jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {k: to_jsonable(v) for k, v in dataclasses.asdict(obj).items()}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_result(result: Any, out_dir: Path, name: str) -> Path:
    path = out_dir / f"{name}.json"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(to_jsonable(result), indent=2) + "\n")
    os.replace(tmp, path)
    return path


def read_result(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


# --- tables --------------------------------------------------------------------------------------


def _cell(value: Any, fmt: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if fmt and isinstance(value, (int, float)):
        return format(value, fmt)
    return str(value)


def format_table(rows: Iterable[dict[str, Any]], columns: Sequence[tuple[str, str, str]]) -> str:
    """columns: (key, header, format spec). Returns a plain-text table, right-aligned numbers."""
    rows = list(rows)
    cells = [[_cell(r.get(key), fmt) for key, _, fmt in columns] for r in rows]
    headers = [h for _, h, _ in columns]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(headers)]
    line = "  ".join(h.rjust(w) if i else h.ljust(w) for i, (h, w) in enumerate(zip(headers, widths)))
    out = [line, "  ".join("-" * w for w in widths)]
    for c in cells:
        out.append("  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(c, widths))))
    return "\n".join(out)


METRIC_COLUMNS = [
    ("name", "run", ""),
    ("requests_per_s", "req/s", ".1f"),
    ("accepted_per_s", "ex/s", ".1f"),
    ("physical_limit_rps", "limit", ".1f"),
    ("achieved_fraction", "achieved", ".1%"),
    ("latency_p50_s", "p50 s", ".3f"),
    ("latency_p99_s", "p99 s", ".3f"),
    ("rate_limited", "429s", "d"),
    ("retries", "retries", "d"),
    ("failed_requests", "failed", "d"),
    ("cpu_ms_per_request", "cpu ms/req", ".3f"),
    ("peak_rss_mb", "RSS MB", ".0f"),
]


def targets_table(targets: list[dict[str, Any]]) -> str:
    """The targets of a result (dicts of `check`'s Target), one row each."""
    rows = [{**t, "rule": f"{t['op']} {t['threshold']:g}"} for t in targets]
    return format_table(rows, [("name", "target", ""), ("value", "value", ".3f"),
                               ("rule", "rule", ""), ("met", "met", ""), ("note", "", "")])


def metrics_rows(runs: Iterable[Any]) -> list[dict[str, Any]]:
    return [to_jsonable(r) if not isinstance(r, dict) else r for r in runs]


# --- statistics ----------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (the engine's own definition), rounded to 0.1 ms."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 4)


# --- child processes ---------------------------------------------------------------------------


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


@dataclass
class ProcResult:
    returncode: int | None
    wall_s: float
    cpu_s: float  # user + system of the child alone
    peak_rss_mb: float
    stdout: str
    stderr: str
    timed_out: bool


def run_measured(
    cmd: Sequence[str],
    timeout: float,
    on_tick: Callable[[float], None] | None = None,
    tick_s: float = 0.5,
    grace_s: float = 10.0,
) -> ProcResult:
    """Run a child to its end and measure it: CPU seconds from wait4, peak RSS from its VmHWM.

    wait4's ru_maxrss is no good here: Linux carries the high-water mark of the memory image that
    exec replaced, which for a child forked (or vforked) from this process is THIS process's RSS.
    /proc/PID/status VmHWM belongs to the child's own image; it is read every 20 ms while the
    child runs (it only grows, so the last reading is the peak up to then).

    After `timeout` seconds it gets SIGTERM (the creator then writes its summary and exits), and
    SIGKILL `grace_s` later. `on_tick(elapsed)` is called about every `tick_s` while it runs."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.monotonic()
        proc = subprocess.Popen(list(cmd), cwd=REPO, env=child_env(), stdin=subprocess.DEVNULL,
                                stdout=out, stderr=err)
        timed_out = False
        termed_at = None
        status = None
        usage = None
        hwm_kb = 0
        next_tick = started + tick_s
        while True:
            hwm_kb = max(hwm_kb, _vm_hwm_kb(proc.pid))
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid == proc.pid:
                break
            now = time.monotonic()
            if termed_at is None and now - started > timeout:
                timed_out = True
                termed_at = now
                proc.send_signal(signal.SIGTERM)
            elif termed_at is not None and now - termed_at > grace_s:
                proc.kill()
                termed_at = math.inf  # killed: just reap it
            if on_tick is not None and now >= next_tick:
                on_tick(now - started)
                next_tick = now + tick_s
            time.sleep(0.02)
        wall = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)  # we reaped it: tell Popen
        out.seek(0)
        err.seek(0)
        return ProcResult(
            returncode=proc.returncode,
            wall_s=round(wall, 3),
            cpu_s=round(usage.ru_utime + usage.ru_stime, 4),
            peak_rss_mb=round(hwm_kb / 1024, 1),
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
            timed_out=timed_out,
        )


def _vm_hwm_kb(pid: int) -> int:
    """The peak resident set of a running process, in KiB (0 once it has exited)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


class Simulator(SimProcess):
    """`python -m benchmarks.simserver` with keyword flags, on a free port; a context manager."""

    def __init__(self, **sim_flags: Any) -> None:
        super().__init__(flags_to_args(**sim_flags))


def python() -> str:
    return sys.executable


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
