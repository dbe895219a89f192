"""Start the in-tree OpenAI-compatible simulator (benchmarks/simserver.py) as a real subprocess.

    from tests.simproc import start_simulator      # or: from simproc import start_simulator
    with start_simulator(rpm=60, p_500=0.1, seed=3) as sim:
        sim.base_url   # "http://127.0.0.1:PORT/v1"
        sim.stats()    # GET /stats as a dict
        sim.reset()    # POST /stats/reset
        sim.restart()  # kill it and start it again on the SAME port (same flags)

Flags: keyword arguments become ``--name value``; ``True`` becomes a bare ``--name``;
``False``/``None`` are omitted. Positional strings are passed through as they are.
Stdlib only.
"""

from __future__ import annotations

import contextlib
import json
import os
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
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def flags_to_args(*args: str, **flags: Any) -> list[str]:
    out = [str(a) for a in args]
    for name, val in flags.items():
        if val is None or val is False:
            continue
        if val is True:
            out.append(f"--{name}")
        else:
            out += [f"--{name}", str(val)]
    return out


class SimProcess:
    """One simulator subprocess (restartable on the same port)."""

    def __init__(self, args: list[str], port: int = 0, ready_timeout: float = READY_TIMEOUT) -> None:
        self.args = list(args)
        self.port = port
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen | None = None
        self.base_url = ""
        self.root_url = ""
        self._stderr: Any = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> SimProcess:
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("simulator already running")
        cmd = [sys.executable, "-m", "benchmarks.simserver", "--port", str(self.port), *self.args]
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        if self._stderr is not None:
            self._stderr.close()
        self._stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            cmd, cwd=str(REPO_ROOT), env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=self._stderr, text=True, bufsize=1,
        )
        line = self._wait_ready()
        if line is None:
            err = self.stderr_text()
            self.stop()
            raise RuntimeError(f"simulator did not become ready ({' '.join(cmd)}):\n{err[-4000:]}")
        self.base_url = line.split()[1]
        self.root_url = self.base_url.rsplit("/v1", 1)[0]
        self.port = int(self.root_url.rsplit(":", 1)[1])
        # keep draining stdout so the child never blocks on a full pipe
        threading.Thread(target=_drain, args=(self.proc.stdout,), daemon=True).start()
        return self

    def _wait_ready(self) -> str | None:
        assert self.proc is not None and self.proc.stdout is not None
        box: list[str] = []
        done = threading.Event()

        def reader() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for ln in self.proc.stdout:
                if ln.startswith("READY "):
                    box.append(ln.strip())
                    break
            done.set()

        threading.Thread(target=reader, daemon=True).start()
        done.wait(self.ready_timeout)
        return box[0] if box else None

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, then SIGKILL after `timeout` s. Returns the exit code."""
        p = self.proc
        if p is None:
            return None
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout)
        return p.returncode

    def kill(self) -> None:
        """Die abruptly (SIGKILL), as a crashed server would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(STOP_TIMEOUT)

    def restart(self, delay: float = 0.0, *, hard: bool = False) -> SimProcess:
        """Stop (or kill) and start again on the same port, with the same flags.
        Counters, dedup memory and rate buckets start fresh."""
        port = self.port
        self.kill() if hard else self.stop()
        if delay > 0:
            time.sleep(delay)
        self.port = port
        return self.start()

    def stderr_text(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # ------------------------------------------------------------------ http helpers

    def _call(self, method: str, path: str, timeout: float = 5.0) -> dict:
        data = b"" if method == "POST" else None
        req = urllib.request.Request(self.root_url + path, data=data, method=method)
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read())

    def stats(self) -> dict:
        return self._call("GET", "/stats")

    def reset(self) -> dict:
        return self._call("POST", "/stats/reset")


@contextlib.contextmanager
def start_simulator(*args: str, port: int = 0, ready_timeout: float = READY_TIMEOUT, **flags: Any) -> Iterator[SimProcess]:
    """Context manager: a running simulator; terminated (SIGTERM, then kill after 5 s) on exit.
    Pass ``port=N`` to bind a given port (default 0 = a free one)."""
    sim = SimProcess(flags_to_args(*args, **flags), port=port, ready_timeout=ready_timeout)
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()
        if sim._stderr is not None:
            sim._stderr.close()


def _drain(stream: Any) -> None:
    try:
        for _ in stream:
            pass
    except (ValueError, OSError):
        pass
