"""Run the `creator` CLI as a real subprocess and check what it leaves behind.

Used by tests/test_cli_errors.py and tests/test_faults.py. Stdlib + pytest only; independent of
creator's own code (the checks re-implement the rules, they do not call creator.parse), so a bug in
the engine cannot hide itself from the tests.

    r = run_creator(*yesno_args(), "--setting", "naive", "--target", "20",
                    "--output", str(out), "--base_url", sim.base_url, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    records = check_output(out, target=20)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
EXAMPLES = REPO / "data"  # the project's own one-record exemplar files
SHARED_DATA = REPO.parent / "shared" / "data"  # the benchmark datasets, when present
DEFAULT_TIMEOUT = 60.0
YES_NO = ["True", "False"]

if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

from benchmarks.simproc import free_port  # noqa: E402


# ------------------------------------------------------------------------------ running


def creator_env(api_key: str | None = None, **extra: str) -> dict[str, str]:
    """The caller's environment without any real API key (tests must never use one), plus
    `api_key` as OPENAI_API_KEY when given."""
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + path if path else "")
    env["PYTHONUNBUFFERED"] = "1"
    if api_key is not None:
        env["OPENAI_API_KEY"] = api_key
    env.update(extra)
    return env


def creator_cmd(*args: str, quiet: bool = True) -> list[str]:
    cmd = [sys.executable, "-m", "creator", "create", *map(str, args)]
    return cmd + ["--quiet"] if quiet else cmd


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str
    duration: float

    @property
    def lines(self) -> list[str]:
        return [ln for ln in self.stderr.splitlines() if ln.strip()]


def run_creator(*args: Any, cwd: Path, timeout: float = DEFAULT_TIMEOUT, api_key: str | None = None,
                env: dict[str, str] | None = None) -> Result:
    """`python -m creator create ARGS --quiet` in `cwd`, bounded by `timeout` seconds."""
    started = time.monotonic()
    proc = subprocess.run(
        creator_cmd(*args), cwd=cwd, env=env or creator_env(api_key), stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=timeout,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - started)


def start_creator(*args: Any, cwd: Path, api_key: str | None = None) -> subprocess.Popen:
    """The same, in the background: finish it with `finish(proc, timeout)`."""
    return subprocess.Popen(
        creator_cmd(*args), cwd=cwd, env=creator_env(api_key), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def finish(proc: subprocess.Popen, timeout: float) -> Result:
    """Wait for a background creator; on timeout kill it (only it) and fail the test."""
    started = time.monotonic()
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate(timeout=10)
        pytest.fail(f"creator did not finish within {timeout:.0f}s; stderr:\n{err[-3000:]}")
    return Result(proc.returncode, out, err, time.monotonic() - started)


def stop(proc: subprocess.Popen) -> None:
    """Make sure a background creator we started is gone (test teardown)."""
    if proc.poll() is None:
        proc.kill()
        proc.communicate(timeout=10)


def line_count(path: Path) -> int:
    """Whole lines written so far (a torn last one, which a kill may leave, has no newline)."""
    return path.read_bytes().count(b"\n") if path.exists() else 0


def wait_for_lines(path: Path, n: int, timeout: float = 60) -> None:
    """Until a background creator has written `n` records (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if line_count(path) >= n:
            return
        time.sleep(0.02)
    raise AssertionError(f"{path} did not reach {n} lines in {timeout}s")


def run_on_a_terminal(cmd: list[str], cwd: Path, env: dict[str, str] | None = None,
                      timeout: float = 60) -> str:
    """Run cmd with a pseudo-terminal (100 columns) as its stdout/stderr; return what it printed.
    `env`: the child's environment (default: creator_env())."""
    import fcntl
    import pty
    import select
    import struct
    import termios

    pid, fd = pty.fork()
    if pid == 0:  # the child: a terminal of a real size, then the command
        fcntl.ioctl(1, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
        os.chdir(cwd)
        os.execve(cmd[0], cmd, env or creator_env())
    out, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.waitpid(pid, 0)
    return out.decode(errors="replace").replace("\r", "\n")


def early_in_a_clock_minute(within_s: float) -> None:
    """Waits for the next minute of the clock if more than `within_s` of this one have passed: a
    test whose requests must meet one window of the simulator's clock-aligned minutes begins
    early in one (same machine, same clock)."""
    if time.time() % 60 > within_s:
        time.sleep(60.5 - time.time() % 60)


def closed_port_url() -> str:
    """An OpenAI-style base URL on 127.0.0.1 where nothing listens."""
    return f"http://127.0.0.1:{free_port()}/v1"


# ------------------------------------------------------------------------------ data


def example_args(fmt: str = "yesno_close") -> list[str]:
    """--data_dir/--data_name of the project's own exemplar for a format
    (yesno_close, yesno_open, mcqa_2, mcqa_5)."""
    return ["--data_dir", str(EXAMPLES / fmt), "--data_name", "example"]


def shared_args(fmt: str, name: str) -> list[str]:
    """--data_dir/--data_name of a benchmark dataset in ../shared/data; skips when absent."""
    folder = SHARED_DATA / fmt / name
    if not (folder / "train.jsonl").is_file() and not (folder / "dev.jsonl").is_file():
        pytest.skip(f"benchmark data not present at {folder}")
    return ["--data_dir", str(SHARED_DATA / fmt), "--data_name", name]


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file (bytes), folder (None) and symlink (b"-> target") under root, by relative path."""
    out: dict[str, bytes | None] = {}
    for p in sorted(root.rglob("*")):
        if p.is_symlink():
            out[str(p.relative_to(root))] = b"-> " + os.fsencode(os.readlink(p))
        else:
            out[str(p.relative_to(root))] = p.read_bytes() if p.is_file() else None
    return out


def assert_unchanged(before: dict[str, bytes | None], root: Path) -> None:
    after = snapshot(root)
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    assert not (added or removed or changed), (
        f"files touched: added={added} removed={removed} changed={changed}"
    )


# ------------------------------------------------------------------------------ messages


def assert_no_traceback(r: Result) -> None:
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout, r.stderr


def assert_usage_error(r: Result, *needles: str) -> str:
    """Exit 2 with exactly one line `creator: error: ...` that contains every needle
    (case-insensitive). Returns the line."""
    assert_no_traceback(r)
    assert r.returncode == 2, f"exit {r.returncode}, stderr:\n{r.stderr}"
    assert len(r.lines) == 1, f"expected ONE line on stderr, got:\n{r.stderr}"
    line = r.lines[0]
    assert line.startswith("creator: error: "), line
    for needle in needles:
        assert needle.lower() in line.lower(), f"{needle!r} not in {line!r}"
    return line


def assert_argparse_error(r: Result, *needles: str) -> str:
    """A refusal by the argument parser: exit 2 and ONE line, `creator create: error: ...` that
    contains every needle and points to --help (no usage block)."""
    assert_no_traceback(r)
    assert r.returncode == 2, f"exit {r.returncode}, stderr:\n{r.stderr}"
    assert len(r.lines) == 1, f"expected ONE line on stderr, got:\n{r.stderr}"
    line = r.lines[0]
    assert line.startswith("creator create: error: "), line
    assert line.endswith("(see creator create --help)"), line
    for needle in needles:
        assert needle in line, line
    return line


def assert_run_failed(r: Result, *needles: str) -> str:
    """Exit 1 (the run stopped early) with a first line `creator: ...` naming the cause."""
    assert_no_traceback(r)
    assert r.returncode == 1, f"exit {r.returncode}, stderr:\n{r.stderr}"
    # (the run's first line says where its output goes; the cause comes after it)
    first = next(ln for ln in r.lines if not ln.startswith("creator: writing "))
    assert first.startswith("creator: "), first
    for needle in needles:
        assert needle.lower() in first.lower(), f"{needle!r} not in {first!r}"
    return first


# ------------------------------------------------------------------------------ output checks


def question_key(question: str) -> str:
    """Case and white space do not make a question new."""
    return " ".join(question.split()).casefold()


def summary_path(output: Path) -> Path:
    return output.with_name(output.stem + ".summary.json")


def read_summary(output: Path) -> dict[str, Any]:
    return json.loads(summary_path(output).read_text())


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Strict: the file ends with a newline and every line is one JSON object."""
    raw = path.read_bytes()
    if not raw:
        return []
    assert raw.endswith(b"\n"), f"{path} does not end on a whole line"
    rows = []
    for n, line in enumerate(raw.split(b"\n")[:-1], 1):
        try:
            obj = json.loads(line)
        except ValueError:
            pytest.fail(f"{path}:{n} is not valid JSON: {line[:200]!r}")
        assert isinstance(obj, dict), f"{path}:{n} is not an object"
        rows.append(obj)
    return rows


def check_records(output: Path, target: int | None = None,
                  exemplar: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every line valid; exactly `target` records (at most, when None); no question twice
    (case/white space normalised) nor the exemplar's own; label among the options; the options
    shaped like the exemplar's; meta ids unique and parents known."""
    rows = read_jsonl(output)
    if target is not None:
        assert len(rows) == target, f"{len(rows)} records, expected {target}"
    if exemplar is None:
        exemplar = read_summary(output)["identity"]["exemplar"]
    ex_options = list(exemplar["options"])
    yes_no = ex_options == YES_NO
    seen: dict[str, int] = {question_key(exemplar["question"]): 0}
    depth_of: dict[int, int] = {0: 0}
    for n, r in enumerate(rows, 1):
        assert set(r) == {"question", "context", "options", "label", "meta"}, f"line {n}: {r}"
        q = r["question"]
        assert isinstance(q, str) and q.strip(), f"line {n}: empty question"
        key = question_key(q)
        assert key not in seen, f"line {n} repeats line {seen[key]} (0 = exemplar): {q!r}"
        seen[key] = n
        opts = r["options"]
        assert isinstance(opts, list) and all(isinstance(o, str) and o for o in opts), f"line {n}"
        assert len(opts) == len(ex_options), f"line {n}: {len(opts)} options"
        if yes_no:
            assert opts == YES_NO, f"line {n}: yes/no options changed: {opts}"
        if yes_no:  # a yes/no label is a JSON boolean, as in the human data
            assert isinstance(r["label"], bool), f"line {n}: yes/no label {r['label']!r}"
        else:
            assert r["label"] in opts, f"line {n}: label {r['label']!r} not in {opts}"
        assert r["context"] is None or isinstance(r["context"], str), f"line {n}"
        if exemplar.get("context"):
            assert r["context"], f"line {n}: the exemplar has a context, the record none"
        meta = r["meta"]
        assert set(meta) == {"id", "parent", "depth", "chain"}, f"line {n}: {meta}"
        assert meta["id"] not in depth_of, f"line {n}: id {meta['id']} used twice"
        assert meta["parent"] in depth_of, f"line {n}: parent {meta['parent']} not created before"
        assert meta["depth"] == depth_of[meta["parent"]] + 1, f"line {n}: depth {meta}"
        depth_of[meta["id"]] = meta["depth"]
    return rows


RETRYABLE = ("rate_limited", "server_errors", "timeouts", "connection_errors")


def check_completed(output: Path, target: int, concurrency: int = 16) -> dict[str, Any]:
    """A finished run: the records (see check_records) and a summary that adds up."""
    summary = read_summary(output)
    check_records(output, target, summary["identity"]["exemplar"])
    assert summary["status"] == "completed", summary
    assert summary["accepted"] == target and summary["target"] == target, summary
    for key in ("requests", "completions", "retries", *RETRYABLE, "failed_requests",
                "prompt_tokens", "completion_tokens", "duration_s", "estimated_cost_usd"):
        assert isinstance(summary[key], (int, float)) and summary[key] >= 0, (key, summary[key])
    assert summary["completions"] >= 1 and summary["prompt_tokens"] > 0
    assert summary["completion_tokens"] > 0
    # every retryable failure was either retried or, after the last retry, given up
    gave_up = sum(v for k, v in summary["failed"].items() if k.startswith("gave_up"))
    assert summary["retries"] + gave_up == sum(summary[k] for k in RETRYABLE), summary
    assert summary["failed_requests"] == sum(summary["failed"].values()), summary
    # every attempt ended one way or another, or was still in flight when a session ended
    # (or was refused for good, which stops a session: also at most `concurrency` of them)
    ended = summary["completions"] + sum(summary[k] for k in RETRYABLE)
    assert ended <= summary["requests"] <= ended + concurrency * summary["sessions"], summary
    return summary
