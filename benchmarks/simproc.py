"""The in-tree OpenAI-compatible simulator (benchmarks/simserver.py) as a real subprocess.

One starter for the benchmarks and the tests (tests import it; benchmarks never import tests/):

    from benchmarks.simproc import start_simulator
    with start_simulator(rpm=60, p_500=0.1, seed=3) as sim:
        sim.base_url   # "http://127.0.0.1:PORT/v1"
        sim.stats()    # GET /stats as a dict
        sim.reset()    # POST /stats/reset
        sim.restart()  # stop it and start it again on the SAME port (same flags)

Flags: keyword arguments become ``--name value``; ``True`` becomes a bare ``--name``;
``False``/``None`` are omitted. Positional strings are passed through as they are. Stdlib only.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0
# After a kill the old socket may linger a moment: a restart on the same port retries this long.
RESTART_WINDOW_S = 30.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def flags_to_args(*args: str, **flags: Any) -> list[str]:
    """keyword=value -> ["--keyword", "value"]; True -> bare flag; None/False omitted."""
    out = [str(a) for a in args]
    for name, val in flags.items():
        if val is None or val is False:
            continue
        out += [f"--{name}"] if val is True else [f"--{name}", str(val)]
    return out


def terminate(proc: subprocess.Popen | None, timeout: float = STOP_TIMEOUT_S) -> None:
    """Stop a child server: SIGTERM, then SIGKILL after `timeout` s; nothing if it is gone already."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


class SimProcess:
    """One simulator subprocess, restartable on the same port; a context manager."""

    def __init__(self, args: list[str], port: int = 0, ready_timeout: float = READY_TIMEOUT_S) -> None:
        self.args = list(args)
        self.port = port
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen[str] | None = None
        self.base_url = ""
        self.root_url = ""
        self._stderr: IO[bytes] | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> SimProcess:
        if self.alive:
            raise RuntimeError("simulator already running")
        cmd = [sys.executable, "-m", "benchmarks.simserver", "--port", str(self.port), *self.args]
        deadline = time.monotonic() + (RESTART_WINDOW_S if self.port else 0.0)
        while True:  # bounded: one attempt on a free port, retries within the window on a fixed one
            self._spawn(cmd)
            line = self._ready_line()
            if line is not None:
                break
            error = self.stderr_text()
            terminate(self.proc)
            if time.monotonic() >= deadline:
                raise RuntimeError(f"simulator did not become ready ({shlex.join(cmd)}):\n{error[-4000:]}")
            time.sleep(0.5)
        self.base_url = line.split()[1]
        self.root_url = self.base_url.rsplit("/v1", 1)[0]
        self.port = int(self.root_url.rsplit(":", 1)[1])
        # keep draining stdout so the child never blocks on a full pipe
        threading.Thread(target=_drain, args=(self.proc.stdout,), daemon=True).start()
        return self

    def _spawn(self, cmd: list[str]) -> None:
        if self._stderr is not None:
            self._stderr.close()
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the child
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=_child_env(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=self._stderr, text=True)

    def _ready_line(self) -> str | None:
        assert self.proc is not None and self.proc.stdout is not None
        stdout = self.proc.stdout
        box: list[str] = []

        def reader() -> None:
            for line in stdout:
                if line.startswith("READY "):
                    box.append(line.strip())
                    return

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        thread.join(self.ready_timeout)
        return box[0] if box else None

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM, then SIGKILL after `timeout` s. Returns the exit code."""
        terminate(self.proc, timeout)
        return None if self.proc is None else self.proc.returncode

    def kill(self) -> None:
        """Die abruptly (SIGKILL), as a crashed server would."""
        if self.alive:
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(STOP_TIMEOUT_S)

    def restart(self, delay: float = 0.0, *, hard: bool = False) -> SimProcess:
        """Stop (or kill) and start again on the same port, with the same flags, after `delay` s.
        Counters, dedup memory and rate buckets start fresh."""
        self.kill() if hard else self.stop()
        if delay > 0:
            time.sleep(delay)
        return self.start()

    def close(self) -> None:
        self.stop()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> SimProcess:  # noqa: PYI034 - subclasses return themselves too
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ state

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stderr_text(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def cpu_s(self) -> float:
        """The simulator's own CPU seconds so far (it shares the machine with the client)."""
        assert self.proc is not None
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return float("nan")

    # ------------------------------------------------------------------ http

    def _call(self, method: str, path: str, timeout: float = 10.0) -> dict[str, Any]:
        req = urllib.request.Request(self.root_url + path, data=b"" if method == "POST" else None,
                                     method=method)
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/stats")

    def timeline(self) -> dict[str, Any]:
        """GET /stats/timeline: per-second counts since the start or the last reset."""
        return self._call("GET", "/stats/timeline")

    def reset(self) -> dict[str, Any]:
        return self._call("POST", "/stats/reset")


@contextlib.contextmanager
def start_simulator(*args: str, port: int = 0, ready_timeout: float = READY_TIMEOUT_S,
                    **flags: Any) -> Iterator[SimProcess]:
    """A running simulator, stopped (SIGTERM, then SIGKILL) on exit. ``port=N`` binds a given port
    (default 0: a free one)."""
    with SimProcess(flags_to_args(*args, **flags), port=port, ready_timeout=ready_timeout) as sim:
        yield sim


def _drain(stream: Any) -> None:
    try:
        for _ in stream:
            pass
    except (ValueError, OSError):
        pass
